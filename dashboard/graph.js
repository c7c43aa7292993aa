// The call graph: apps as nodes, caller→callee edges labelled with the window's rate, success and
// latencies. Laid out by dagre (layered, callers left of their callees), which keeps a mesh of tens
// of apps readable: edges run one way and rarely cross. The layout runs only when apps or edges come
// or go; a plain update changes labels and colours in place, so nodes never jump between updates.
import cytoscape from './vendor/cytoscape.js';
import dagre from './vendor/cytoscape-dagre.js';
import { formatMs, formatRps, formatSuccess, successClass } from './format.js';

cytoscape.use(dagre);

/** An edge that stops carrying calls stays drawn (idle) this long, so a pause in traffic does not redraw the graph. */
const EDGE_GRACE_MS = 60_000;

const STYLE = [
  {
    selector: 'node',
    style: {
      shape: 'round-rectangle',
      width: 'data(w)',
      height: 'data(h)',
      'background-color': '#ffffff',
      'border-width': 2,
      'border-color': '#2f855a',
      label: 'data(label)',
      'text-wrap': 'wrap',
      'text-valign': 'center',
      'text-halign': 'center',
      'font-family': 'system-ui, -apple-system, "Segoe UI", sans-serif',
      'font-size': 13,
      color: '#1a202c',
      'line-height': 1.3,
    },
  },
  { selector: 'node.degraded', style: { 'border-color': '#d69e2e', 'background-color': '#fffbea' } },
  { selector: 'node.down', style: { 'border-color': '#c53030', 'background-color': '#fff5f5' } },
  // Called, but no sidecar of it was found: an app outside the mesh, or one that has stopped.
  { selector: 'node.unknown', style: { 'border-color': '#a0aec0', 'border-style': 'dashed', color: '#718096' } },
  { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#2b6cb0' } },
  {
    selector: 'edge',
    style: {
      'curve-style': 'bezier',
      'target-arrow-shape': 'triangle',
      'arrow-scale': 0.9,
      width: 'data(width)',
      'line-color': '#38a169',
      'target-arrow-color': '#38a169',
      label: 'data(label)',
      'text-wrap': 'wrap',
      'font-family': 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
      'font-size': 10,
      // Labels too small to read are not drawn (zoom in, or select an app, to read them).
      'min-zoomed-font-size': 7,
      color: '#2d3748',
      'text-background-color': '#ffffff',
      'text-background-opacity': 0.9,
      'text-background-padding': 2,
      'text-background-shape': 'round-rectangle',
      'loop-direction': '-45deg',
      'loop-sweep': '-60deg',
    },
  },
  { selector: 'edge.warn', style: { 'line-color': '#d69e2e', 'target-arrow-color': '#d69e2e' } },
  { selector: 'edge.bad', style: { 'line-color': '#e53e3e', 'target-arrow-color': '#e53e3e' } },
  { selector: 'edge.idle', style: { 'line-color': '#a0aec0', 'target-arrow-color': '#a0aec0', 'line-style': 'dashed', color: '#718096' } },
  { selector: 'edge:selected', style: { 'line-color': '#2b6cb0', 'target-arrow-color': '#2b6cb0' } },
  // An app selected or under the pointer: its calls stand out, with labels at any zoom; the rest fades.
  // A busy graph draws its edges' labels only for the app in focus: at thirty apps the labels of
  // every edge would cover each other (the edges' width and colour still tell rate and success).
  { selector: 'edge.quiet', style: { 'text-opacity': 0, 'text-background-opacity': 0 } },
  { selector: '.faded', style: { opacity: 0.25 } },
  { selector: 'edge.near', style: { 'min-zoomed-font-size': 0, 'font-size': 11, 'z-index': 10, 'text-opacity': 1, 'text-background-opacity': 1 } },
];

/**
 * A graph with more edges or apps than this is dense: edge labels are drawn only for the app in focus,
 * nodes show only the app's name (the rest is in the tables), and the layers sit closer, so that at
 * thirty apps the graph fits its pane at a zoom where names are still readable.
 */
const DENSE_EDGES = 14;
const DENSE_APPS = 12;
const NODE_CLASSES = 'healthy degraded down unknown';
const EDGE_CLASSES = 'ok warn bad idle';

/** The zoom a layout's fit stops at, so that a mesh of two apps is not drawn huge. */
const MAX_FIT_ZOOM = 1.7;

export class CallGraph {
  #cy;
  #lastSeen = new Map();
  #userMoved = false;
  #laidOut = false;
  #dense = false;
  #onSelect;
  /** True while a layout or a fit moves the viewport (those moves are not the user's). */
  #fitting = false;

  constructor(container, { onSelect }) {
    this.#onSelect = onSelect;
    this.#cy = cytoscape({
      container,
      style: STYLE,
      minZoom: 0.2,
      maxZoom: 3,
      boxSelectionEnabled: false,
    });
    this.#cy.on('tap', 'node', (e) => this.#onSelect(e.target.id()));
    this.#cy.on('tap', (e) => {
      if (e.target === this.#cy) this.#onSelect('');
    });
    this.#cy.on('mouseover', 'node', (e) => this.#focus(e.target));
    this.#cy.on('mouseout', 'node', () => this.#focus(this.#cy.$('node:selected')));
    this.#cy.on('mouseover', 'edge', (e) => e.target.addClass('near'));
    this.#cy.on('mouseout', 'edge', (e) => {
      if (!e.target.connectedNodes().some((n) => n.selected())) e.target.removeClass('near');
    });
    // Once the user zooms, pans or drags, the view stays where they put it.
    this.#cy.on('viewport', () => {
      if (this.#laidOut && !this.#fitting) this.#userMoved = true;
    });
    this.#cy.on('dragfree', 'node', () => (this.#userMoved = true));
  }

  /** Fits the whole graph in view, and goes back to following the layout. */
  fit() {
    this.#userMoved = false;
    this.#withFit(() => {
      this.#cy.fit(undefined, 30);
      if (this.#cy.zoom() > MAX_FIT_ZOOM) {
        this.#cy.zoom(MAX_FIT_ZOOM);
        this.#cy.center();
      }
    });
  }

  select(appId) {
    this.#cy.$(':selected').unselect();
    if (appId) this.#cy.getElementById(appId).select();
    this.#focus(this.#cy.$('node:selected'));
  }

  /** Brings out one app's calls (or none: everything drawn alike). */
  #focus(nodes) {
    const cy = this.#cy;
    cy.batch(() => {
      cy.elements().removeClass('faded near');
      if (nodes.empty()) return;
      const near = nodes.closedNeighborhood();
      cy.elements().not(near).addClass('faded');
      near.edges().addClass('near');
    });
  }

  /** Applies a view; lays the graph out again only when nodes or edges were added or removed. */
  update(view) {
    const now = Date.now();
    const cy = this.#cy;
    let changed = false;
    const apps = new Map(view.apps.map((app) => [app.appId, app]));
    // An edge may name an app no sidecar was found for (an app being stopped, or outside the mesh).
    for (const edge of view.edges) {
      for (const id of [edge.src, edge.dst]) if (!apps.has(id)) apps.set(id, null);
    }
    for (const edge of view.edges) this.#lastSeen.set(edgeId(edge.src, edge.dst), now);
    const edges = new Map(view.edges.map((edge) => [edgeId(edge.src, edge.dst), edge]));
    // Recently seen edges stay (idle), with their apps.
    for (const [id, seen] of this.#lastSeen) {
      if (edges.has(id)) continue;
      if (now - seen > EDGE_GRACE_MS) {
        this.#lastSeen.delete(id);
        continue;
      }
      const [src, dst] = JSON.parse(id);
      if (!apps.has(src) || !apps.has(dst)) {
        // An app that is gone altogether takes its edges with it.
        this.#lastSeen.delete(id);
        continue;
      }
      edges.set(id, { src, dst, stats: null });
    }

    const dense = edges.size > DENSE_EDGES || apps.size > DENSE_APPS;
    if (dense !== this.#dense) {
      // Node sizes change with it: lay out again.
      this.#dense = dense;
      changed = true;
    }
    cy.batch(() => {
      for (const node of cy.nodes()) {
        if (!apps.has(node.id())) {
          node.remove();
          changed = true;
        }
      }
      for (const edge of cy.edges()) {
        if (!edges.has(edge.id())) {
          edge.remove();
          changed = true;
        }
      }
      for (const id of [...apps.keys()].sort()) {
        const data = nodeData(id, apps.get(id), dense);
        const node = cy.getElementById(id);
        if (node.empty()) {
          cy.add({ group: 'nodes', data, classes: data.cls });
          changed = true;
        } else {
          node.data(data);
          // Only the health classes change: focus and density classes stay.
          node.removeClass(NODE_CLASSES).addClass(data.cls);
        }
      }
      for (const id of [...edges.keys()].sort()) {
        const edge = edges.get(id);
        const data = edgeData(id, edge);
        const existing = cy.getElementById(id);
        if (existing.empty()) {
          cy.add({ group: 'edges', data, classes: data.cls });
          changed = true;
        } else {
          // An edge's ends never change (they are its id); only what it shows does.
          const { source: _source, target: _target, ...shown } = data;
          existing.data(shown);
          existing.removeClass(EDGE_CLASSES).addClass(data.cls);
        }
      }
    });
    if (changed) {
      cy.edges().toggleClass('quiet', dense);
      this.#focus(cy.$('node:selected'));
      this.#layout();
    }
  }

  /** What the graph shows, as text: for assistive technology and for checks. */
  snapshot() {
    return {
      nodes: this.#cy.nodes().map((n) => ({ id: n.id(), label: n.data('label'), detail: n.data('detail'), health: n.data('cls'), position: { ...n.position() } })),
      edges: this.#cy.edges().map((e) => ({ src: e.data('source'), dst: e.data('target'), rps: e.data('rps'), label: e.data('label') })),
    };
  }

  #layout() {
    const animate = this.#laidOut;
    const fit = !this.#userMoved;
    this.#fitting = true;
    const layout = this.#cy.layout({
      name: 'dagre',
      rankDir: 'LR',
      nodeSep: this.#dense ? 16 : 28,
      // Room for the edges' labels between layers; a dense graph draws few of them.
      rankSep: this.#dense ? 90 : 150,
      edgeSep: 12,
      ranker: 'network-simplex',
      // Input in a fixed order: the same apps and edges always get the same places.
      sort: (a, b) => (a.id() < b.id() ? -1 : a.id() > b.id() ? 1 : 0),
      fit,
      padding: 30,
      animate,
      animationDuration: 350,
    });
    layout.one('layoutstop', () => {
      this.#laidOut = true;
      if (fit && this.#cy.zoom() > MAX_FIT_ZOOM) {
        this.#cy.zoom(MAX_FIT_ZOOM);
        this.#cy.center();
      }
      // The viewport events the layout itself caused are not the user's.
      setTimeout(() => (this.#fitting = false), 0);
    });
    layout.run();
  }

  #withFit(fn) {
    this.#fitting = true;
    fn();
    setTimeout(() => (this.#fitting = false), 0);
  }
}

function edgeId(src, dst) {
  return JSON.stringify([src, dst]);
}

function nodeData(id, app, dense) {
  let cls = 'healthy';
  let detail;
  if (app === null) {
    cls = 'unknown';
    detail = 'no sidecar found';
  } else {
    const total = app.instances.length;
    const healthy = app.instances.filter((i) => i.health === 'healthy').length;
    if (healthy === 0) cls = 'down';
    else if (healthy < total) cls = 'degraded';
    detail = `${healthy}/${total} up · ${formatRps(app.inbound.rps)} rps in`;
  }
  const lines = dense ? [id] : [id, detail];
  const widest = Math.max(...lines.map((l) => l.length));
  return { id, label: lines.join('\n'), detail, w: Math.max(dense ? 64 : 96, Math.round(widest * 7.5 + 24)), h: dense ? 30 : 44, cls };
}

function edgeData(id, edge) {
  const s = edge.stats;
  const rps = s === null ? 0 : s.rps;
  const cls = s === null || s.calls === 0 ? 'idle' : successClass(s.successRate);
  const label = s === null || s.calls === 0 ? 'idle' : `${formatRps(s.rps)}/s  ${formatSuccess(s.successRate)}\np50 ${formatMs(s.p50)}  p99 ${formatMs(s.p99)}`;
  return {
    id,
    source: edge.src,
    target: edge.dst,
    label,
    rps,
    cls,
    // Thicker for busier edges, on a log scale so one hot edge does not dwarf the rest.
    width: 1.5 + Math.min(5, Math.log10(1 + rps) * 2),
  };
}
