// The live tap: recent calls as the sidecars report them, newest first, with a filter by app, path
// prefix and status. One EventSource, opened again whenever the filter changes. Rows are added once
// per animation frame, so a busy mesh costs the page one redraw per frame, not one per call.
import { el, formatClock, formatMs, statusClass } from './format.js';

const MAX_ROWS = 250;

export class TapView {
  #form;
  #body;
  #counter;
  #state;
  #source = null;
  #pending = [];
  #frame = 0;
  #paused = false;
  #received = 0;
  #dropped = 0;
  #debounce = 0;

  constructor(root) {
    this.#form = root.querySelector('form');
    this.#body = root.querySelector('tbody');
    this.#counter = root.querySelector('.tap-count');
    this.#state = root.querySelector('.tap-state');
    this.#form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.connect();
    });
    this.#form.elements.app.addEventListener('change', () => this.connect());
    for (const name of ['path', 'status']) {
      this.#form.elements[name].addEventListener('input', () => {
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.connect(), 400);
      });
    }
    root.querySelector('.tap-pause').addEventListener('click', (e) => {
      this.#paused = !this.#paused;
      e.currentTarget.textContent = this.#paused ? 'Resume' : 'Pause';
      e.currentTarget.setAttribute('aria-pressed', String(this.#paused));
    });
    root.querySelector('.tap-clear').addEventListener('click', () => {
      this.#body.replaceChildren();
      this.#received = 0;
      this.#dropped = 0;
      this.#count();
    });
  }

  /** Keeps the app choices in step with the mesh, keeping the current choice. */
  setApps(appIds) {
    const select = this.#form.elements.app;
    const current = select.value;
    const ids = [...new Set([...appIds, ...(current ? [current] : [])])].sort();
    const have = [...select.options].slice(1).map((o) => o.value);
    if (have.join('\n') === ids.join('\n')) return;
    const any = select.options[0];
    select.replaceChildren(any, ...ids.map((id) => new Option(id, id)));
    select.value = current;
  }

  /** (Re)opens the stream with the form's filter. */
  connect() {
    this.#source?.close();
    const query = new URLSearchParams();
    for (const name of ['app', 'path', 'status']) {
      const value = this.#form.elements[name].value.trim();
      if (value !== '') query.set(name, value);
    }
    const status = this.#form.elements.status.value.trim();
    if (status !== '' && !/^(\d{1,3}|[1-5]xx)$/i.test(status)) {
      this.#setState('error', 'status: a status such as 503, or a class such as 5xx');
      return;
    }
    // Rows of the old filter would read as matches of the new one.
    this.#pending = [];
    this.#body.replaceChildren();
    this.#count();
    const source = new EventSource(`api/tap?${query}`);
    this.#source = source;
    this.#setState('connecting', 'connecting…');
    source.addEventListener('open', () => this.#setState('live', 'live'));
    source.addEventListener('error', () => this.#setState('connecting', 'reconnecting…'));
    source.addEventListener('call', (e) => {
      this.#received++;
      if (this.#paused) return;
      this.#pending.push(JSON.parse(e.data));
      if (this.#pending.length > MAX_ROWS) this.#pending.splice(0, this.#pending.length - MAX_ROWS);
      if (this.#frame === 0) this.#frame = requestAnimationFrame(() => this.#flush());
    });
    source.addEventListener('dropped', (e) => {
      this.#dropped += Number(e.data) || 0;
      this.#count();
    });
  }

  close() {
    this.#source?.close();
    this.#source = null;
  }

  #flush() {
    this.#frame = 0;
    const calls = this.#pending.splice(0);
    const rows = calls.reverse().map(row);
    this.#body.prepend(...rows);
    while (this.#body.childElementCount > MAX_ROWS) this.#body.lastElementChild.remove();
    this.#count();
  }

  #count() {
    this.#counter.textContent = `${this.#body.childElementCount} shown · ${this.#received} received${this.#dropped ? ` · ${this.#dropped} dropped (page too slow)` : ''}`;
  }

  #setState(state, text) {
    this.#state.dataset.state = state;
    this.#state.textContent = text;
  }
}

function row(call) {
  const tr = el('tr', 'tap-row');
  tr.dataset.status = String(call.status);
  const cells = [
    el('td', 'mono', formatClock(call.at)),
    el('td', `dir ${call.direction}`, call.direction === 'outbound' ? 'out' : 'in'),
    el('td', 'route-cell', `${call.srcAppId || '?'} → ${call.dstAppId || '?'}`),
    el('td', 'mono', call.method),
    el('td', 'mono path', call.path),
    el('td', `num mono code-${statusClass(call.status, call.method)}`, call.status === 0 && call.method !== 'GRPC' ? 'none' : String(call.status)),
    el('td', 'num mono', formatMs(call.latencyMs)),
    el('td', 'mono trace', call.traceId || '–'),
    el('td', 'mono', call.errorCode || ''),
  ];
  cells[1].title = `${call.direction}, reported by ${call.reportedBy}'s sidecar`;
  cells[4].title = call.path;
  if (call.traceId) cells[7].title = `trace ${call.traceId}`;
  if (call.headers.length > 0) cells[4].title += `\nheaders (values hidden): ${call.headers.join(', ')}`;
  tr.append(...cells);
  return tr;
}
