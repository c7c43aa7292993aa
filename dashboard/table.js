// A table whose rows are replaced on every update and that sorts by any column the user clicks.
// Rows keep a stable order (the default sort is by name, not by a rate that changes every window), so
// the eye can follow a row from one update to the next.
import { el } from './format.js';

export class SortableTable {
  #table;
  #columns;
  #options;
  #tbody;
  #rows = [];
  #sort;
  #note;

  /**
   * columns: [{ label, value(row) for sorting, text(row) shown, numeric?, cls?(row), title?(row) }]
   * options: { key(row), sort: { column, descending }, empty, limit? (rows kept, in the order given), rowClass?(row), rowData?(row) (data- attributes),
   *   onRowClick?(row), selected?() with selectKey?(row) (the row to mark as selected) }
   */
  constructor(table, columns, options) {
    this.#table = table;
    this.#columns = columns;
    this.#options = options;
    this.#sort = { ...options.sort };
    const head = el('thead');
    const tr = el('tr');
    columns.forEach((column, index) => {
      const th = el('th', column.numeric ? 'num' : '', column.label);
      th.tabIndex = 0;
      th.setAttribute('role', 'columnheader');
      const sortBy = () => {
        this.#sort = { column: index, descending: this.#sort.column === index ? !this.#sort.descending : Boolean(column.numeric) };
        this.#render();
      };
      th.addEventListener('click', sortBy);
      th.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          sortBy();
        }
      });
      tr.append(th);
    });
    head.append(tr);
    this.#tbody = el('tbody');
    table.replaceChildren(head, this.#tbody);
    this.#note = el('caption', 'note');
  }

  update(rows) {
    this.#rows = rows;
    this.#render();
  }

  /** Renders again with the same rows (a selection changed). */
  refresh() {
    this.#render();
  }

  #render() {
    const { column, descending } = this.#sort;
    const col = this.#columns[column];
    // The limit keeps the first rows in the order given (the busiest), then those are sorted.
    const limit = this.#options.limit ?? Infinity;
    const rows = this.#rows.slice(0, limit).sort((a, b) => {
      const va = col.value(a);
      const vb = col.value(b);
      // Rows without a value (no calls in the window) go last whichever way the column sorts.
      const cmp = va == null || vb == null ? compare(va, vb) : descending ? -compare(va, vb) : compare(va, vb);
      return cmp || compare(this.#options.key(a), this.#options.key(b));
    });
    this.#table.querySelectorAll('th').forEach((th, i) => {
      th.dataset.sort = i === column ? (descending ? 'desc' : 'asc') : '';
      th.setAttribute('aria-sort', i === column ? (descending ? 'descending' : 'ascending') : 'none');
    });
    const shown = rows;
    const selected = this.#options.selected?.();
    const body = shown.map((row) => {
      const tr = el('tr');
      tr.dataset.key = this.#options.key(row);
      Object.assign(tr.dataset, this.#options.rowData?.(row));
      const rowClass = this.#options.rowClass?.(row);
      if (rowClass) tr.className = rowClass;
      if (selected !== undefined && this.#options.selectKey?.(row) === selected) tr.classList.add('selected');
      if (this.#options.onRowClick) {
        tr.classList.add('clickable');
        tr.addEventListener('click', () => this.#options.onRowClick(row));
      }
      for (const c of this.#columns) {
        const td = el('td', [c.numeric ? 'num' : '', c.cls?.(row) ?? ''].join(' ').trim(), c.text(row));
        const title = c.title?.(row);
        if (title) td.title = title;
        tr.append(td);
      }
      return tr;
    });
    if (body.length === 0) {
      const tr = el('tr', 'empty');
      const td = el('td', '', this.#options.empty);
      td.colSpan = this.#columns.length;
      tr.append(td);
      body.push(tr);
    }
    this.#tbody.replaceChildren(...body);
    if (this.#rows.length > shown.length) {
      this.#note.textContent = `the ${shown.length} busiest of ${this.#rows.length} shown`;
      if (!this.#note.isConnected) this.#table.prepend(this.#note);
    } else this.#note.remove();
  }
}

function compare(a, b) {
  if (a === b) return 0;
  if (a == null) return 1;
  if (b == null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}
