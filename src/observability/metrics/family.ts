import type { Logger } from '../logging/index.js';

/**
 * Metric families for the request path. Each labelled series is an object made once per distinct
 * set of label values and then updated in place: a counter adds to a number, a histogram bumps one
 * slot of a typed array. Nothing is formatted or hashed per call; prom-client's Registry turns the
 * families into the exposition text when Prometheus scrapes (see registry.ts).
 */

/** Rewrites of label values (`spec.metrics.rules`): for a label, the first regex that matches names the value. */
export type LabelRules = ReadonlyMap<string, ReadonlyArray<readonly [replacement: string, pattern: RegExp]>>;

/** The most series one family keeps; label values past it are counted under `_overflow`. */
export const MAX_SERIES_PER_FAMILY = 5000;
const OVERFLOW = '_overflow';

/** What prom-client's Registry reads from a metric (`get()` and the fields it formats). */
export interface ExpositionValue {
  readonly value: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly metricName?: string;
}
export interface Exposition {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: 'sum';
  readonly values: readonly ExpositionValue[];
}

/** A metric prom-client's Registry can hold: a name, a help text, a type, and its values on demand. */
export interface RegistryMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<Exposition>;
}

/** One counter series. */
export class CounterSeries {
  value = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}
  inc(by = 1): void {
    this.value += by;
  }
}

/** One histogram series: observations per bucket (not cumulative; summed when scraped), count and sum. */
export class HistogramSeries {
  count = 0;
  sum = 0;
  readonly counts: Float64Array;
  readonly #bounds: Float64Array;
  constructor(
    readonly labels: Readonly<Record<string, string>>,
    bounds: Float64Array,
  ) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    const bounds = this.#bounds;
    // The first bound ≥ value (binary search; the last slot is +Inf).
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((bounds[mid] as number) < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo] = (this.counts[lo] as number) + 1;
    this.count++;
    this.sum += value;
  }
}

abstract class Family<S extends { readonly labels: Readonly<Record<string, string>> }> implements RegistryMetric {
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum' as const;
  /** Series by the label values as recorded (before rules), for the lookup on the request path. */
  #byRaw = new Map<string, S>();
  /** Series by their exposed label values (after rules): what is scraped. */
  readonly #byLabels = new Map<string, S>();
  #warned = false;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly rules: LabelRules | undefined,
    readonly logger: Logger | undefined,
  ) {}

  protected abstract make(labels: Record<string, string>): S;

  /** The series of these label values (in `labelNames` order). */
  series(...values: string[]): S {
    const key = values.length === 1 ? (values[0] as string) : values.join('\u0000');
    const found = this.#byRaw.get(key);
    if (found !== undefined) return found;
    return this.#create(key, values);
  }

  #create(rawKey: string, values: string[]): S {
    const rules = this.rules;
    const exposed = rules === undefined ? values : values.map((v, i) => rewrite(rules.get(this.labelNames[i] as string), v));
    let key = exposed.join('\u0000');
    let series = this.#byLabels.get(key);
    if (series === undefined) {
      if (this.#byLabels.size >= MAX_SERIES_PER_FAMILY) {
        if (!this.#warned) {
          this.#warned = true;
          this.logger?.warn({ metric: this.name, series: MAX_SERIES_PER_FAMILY }, 'metric has too many label combinations; new ones are counted as _overflow');
        }
        exposed.fill(OVERFLOW);
        key = exposed.join('\u0000');
        series = this.#byLabels.get(key);
      }
      if (series === undefined) {
        const labels: Record<string, string> = {};
        this.labelNames.forEach((name, i) => (labels[name] = exposed[i] as string));
        series = this.make(labels);
        this.#byLabels.set(key, series);
      }
    }
    // Raw values that rules fold together would grow the lookup map without bound: it is cleared now and then.
    if (this.#byRaw.size >= 4 * MAX_SERIES_PER_FAMILY) this.#byRaw = new Map();
    this.#byRaw.set(rawKey, series);
    return series;
  }

  protected all(): IterableIterator<S> {
    return this.#byLabels.values();
  }

  abstract get(): Promise<Exposition>;
}

function rewrite(rules: ReadonlyArray<readonly [string, RegExp]> | undefined, value: string): string {
  if (rules === undefined) return value;
  for (const [replacement, pattern] of rules) if (pattern.test(value)) return replacement;
  return value;
}

export class CounterFamily extends Family<CounterSeries> {
  readonly type = 'counter' as const;
  protected make(labels: Record<string, string>): CounterSeries {
    return new CounterSeries(labels);
  }
  get(): Promise<Exposition> {
    const values: ExpositionValue[] = [];
    for (const s of this.all()) values.push({ value: s.value, labels: s.labels });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram' as const;
  readonly #bounds: Float64Array;
  readonly #le: string[];
  constructor(name: string, help: string, labelNames: readonly string[], bounds: readonly number[], rules: LabelRules | undefined, logger: Logger | undefined) {
    super(name, help, labelNames, rules, logger);
    this.#bounds = Float64Array.from([...new Set(bounds)].sort((a, b) => a - b));
    this.#le = [...this.#bounds].map(String);
  }
  protected make(labels: Record<string, string>): HistogramSeries {
    return new HistogramSeries(labels, this.#bounds);
  }
  get(): Promise<Exposition> {
    const values: ExpositionValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all()) {
      let cumulative = 0;
      for (let i = 0; i < this.#le.length; i++) {
        cumulative += s.counts[i] as number;
        values.push({ metricName: bucket, value: cumulative, labels: { ...s.labels, le: this.#le[i] as string } });
      }
      values.push({ metricName: bucket, value: s.count, labels: { ...s.labels, le: '+Inf' } });
      values.push({ metricName: `${this.name}_sum`, value: s.sum, labels: s.labels });
      values.push({ metricName: `${this.name}_count`, value: s.count, labels: s.labels });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
}

/** A metric whose values are read when scraped (a gauge, or a counter kept elsewhere such as CPU time). */
export class GaugeFamily implements RegistryMetric {
  readonly aggregator = 'sum' as const;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly read: () => readonly ExpositionValue[],
    readonly type: 'gauge' | 'counter' = 'gauge',
  ) {}
  get(): Promise<Exposition> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() });
  }
}
