// Number and text formatting shared by the dashboard's views. Every value from the mesh reaches the
// page through textContent, never as HTML: paths and app ids come from callers.

/** Requests per second: two significant decimals for small rates, whole numbers for large ones. */
export function formatRps(rps) {
  if (rps == null || !Number.isFinite(rps)) return '–';
  if (rps === 0) return '0';
  if (rps < 10) return rps.toFixed(2);
  if (rps < 100) return rps.toFixed(1);
  return Math.round(rps).toLocaleString('en-US');
}

/** A success rate (0..1) as a percentage; a dash without calls. */
export function formatSuccess(rate) {
  if (rate == null || !Number.isFinite(rate)) return '–';
  if (rate >= 1) return '100%';
  const pct = rate * 100;
  return `${pct >= 99 ? pct.toFixed(2) : pct.toFixed(1)}%`;
}

/** A latency in ms, with the unit. */
export function formatMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '–';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** An uptime: the two largest units. */
export function formatUptime(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Local wall-clock time with milliseconds, for the tap. */
export function formatClock(ms) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** The health class of a success rate: ok, warn (below 99%), bad (below 95%), idle (no calls). */
export function successClass(rate) {
  if (rate == null) return 'idle';
  if (rate >= 0.99) return 'ok';
  if (rate >= 0.95) return 'warn';
  return 'bad';
}

/** The class of a status: 2xx/3xx ok, 4xx warn, 5xx and no answer (0) bad. gRPC codes: 0 is OK. */
export function statusClass(status, method) {
  if (method === 'GRPC') return status === 0 ? 'ok' : 'bad';
  if (status === 0 || status >= 500) return 'bad';
  if (status >= 400) return 'warn';
  return 'ok';
}

/** Creates an element with a class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}
