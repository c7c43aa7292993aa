// Request rate and latency over time for one app, drawn with uPlot. The points come from the
// server's recent history when the page opens, then one per view.
import uPlot from './vendor/uplot.js';
import { formatMs, formatRps } from './format.js';

/** Points kept per chart (at the default 2 s window, ten minutes). */
const MAX_POINTS = 300;

const AXIS = { stroke: '#4a5568', grid: { stroke: '#edf2f7' }, ticks: { stroke: '#e2e8f0' }, font: '11px system-ui, sans-serif' };
/** Wall-clock times on the x axis, at least 70 px apart. */
const TIME_AXIS = { ...AXIS, space: 70, values: (_u, ticks) => ticks.map((t) => clock(t)) };

function clock(seconds) {
  const d = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export class AppCharts {
  #points = [];
  #appId = '';
  #rate;
  #latency;
  #root;

  constructor(root) {
    this.#root = root;
    const width = this.#width();
    this.#rate = new uPlot(
      {
        title: 'Requests per second',
        width,
        height: 150,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
        axes: [TIME_AXIS, { ...AXIS, size: 50, values: (_u, ticks) => ticks.map((t) => formatRps(t)) }],
        series: [
          {},
          { label: 'received', stroke: '#2b6cb0', width: 2, fill: 'rgba(43,108,176,0.08)', value: (_u, v) => formatRps(v) },
          { label: 'failed', stroke: '#e53e3e', width: 1.5, value: (_u, v) => formatRps(v) },
          { label: 'sent', stroke: '#805ad5', width: 1.5, dash: [4, 3], value: (_u, v) => formatRps(v) },
        ],
        legend: { live: true },
      },
      [[], [], [], []],
      root.querySelector('.chart-rate'),
    );
    this.#latency = new uPlot(
      {
        title: 'Latency of calls received',
        width,
        height: 150,
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 1) * 1.1)] } },
        axes: [TIME_AXIS, { ...AXIS, size: 56, values: (_u, ticks) => ticks.map((t) => formatMs(t)) }],
        series: [
          {},
          { label: 'p50', stroke: '#38a169', width: 1.5, value: (_u, v) => formatMs(v), spanGaps: false },
          { label: 'p95', stroke: '#d69e2e', width: 1.5, value: (_u, v) => formatMs(v), spanGaps: false },
          { label: 'p99', stroke: '#c53030', width: 2, value: (_u, v) => formatMs(v), spanGaps: false },
        ],
        legend: { live: true },
      },
      [[], [], [], []],
      root.querySelector('.chart-latency'),
    );
    new ResizeObserver(() => {
      const w = this.#width();
      this.#rate.setSize({ width: w, height: 150 });
      this.#latency.setSize({ width: w, height: 150 });
    }).observe(root);
  }

  get appId() {
    return this.#appId;
  }

  /** Replaces the points (the server's history, when the page connects). */
  setHistory(points) {
    this.#points = points.slice(-MAX_POINTS);
    this.#draw();
  }

  add(point) {
    // The view a page gets on connecting is already the history's last point.
    const last = this.#points.at(-1);
    if (last !== undefined && last.at >= point.at) return;
    this.#points.push(point);
    if (this.#points.length > MAX_POINTS) this.#points.splice(0, this.#points.length - MAX_POINTS);
    this.#draw();
  }

  show(appId) {
    this.#appId = appId;
    this.#draw();
  }

  #width() {
    return Math.max(240, this.#root.clientWidth - 8);
  }

  #draw() {
    const xs = [];
    const rate = [[], [], []];
    const latency = [[], [], []];
    for (const point of this.#points) {
      const app = point.apps[this.#appId];
      xs.push(point.at / 1000);
      rate[0].push(app ? app.rps : null);
      rate[1].push(app ? app.failRps : null);
      rate[2].push(app ? app.outRps : null);
      latency[0].push(app?.p50 ?? null);
      latency[1].push(app?.p95 ?? null);
      latency[2].push(app?.p99 ?? null);
    }
    for (const [chart, data] of [[this.#rate, [xs, ...rate]], [this.#latency, [xs, ...latency]]]) {
      chart.setData(data);
      // Without the pointer over it, the legend reads the latest values rather than dashes.
      if (chart.cursor.left == null || chart.cursor.left < 0) chart.setLegend({ idx: xs.length - 1 });
    }
  }
}

/** The chart point of a view, the same shape as the server's history. */
export function pointOf(view) {
  const apps = {};
  for (const app of view.apps) {
    apps[app.appId] = {
      rps: app.inbound.rps,
      failRps: view.windowSeconds > 0 ? app.inbound.failures / view.windowSeconds : 0,
      outRps: app.outbound.rps,
      p50: app.inbound.p50,
      p95: app.inbound.p95,
      p99: app.inbound.p99,
    };
  }
  return { at: view.at, apps };
}
