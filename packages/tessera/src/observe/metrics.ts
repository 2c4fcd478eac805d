/**
 * A small Prometheus registry (text exposition format 0.0.4): counters and
 * gauges with labels, and gauges computed at scrape time.
 */
type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly values: Map<string, { labels: Labels; value: number }>;
  collect?: () => Promise<number | [Labels, number][]>;
  buckets?: readonly number[];
  hist?: Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>;
}

export class MetricsRegistry {
  readonly #families = new Map<string, Family>();

  #family(name: string, help: string, type: Family['type']): Family {
    let f = this.#families.get(name);
    if (!f) this.#families.set(name, (f = { name, help, type, values: new Map() }));
    return f;
  }

  /** Adds `by` to a counter. */
  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const f = this.#family(name, help, 'counter');
    const key = labelText(labels);
    const v = f.values.get(key);
    if (v) v.value += by;
    else f.values.set(key, { labels, value: by });
  }

  /** Sets a gauge. */
  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.#family(name, help, 'gauge').values.set(labelText(labels), { labels, value });
  }

  /** A gauge whose value is computed when scraped. */
  gaugeFn(name: string, help: string, collect: () => Promise<number | [Labels, number][]>): void {
    this.#family(name, help, 'gauge').collect = collect;
  }

  /** Records an observation in a histogram (seconds). */
  observe(name: string, help: string, value: number, labels: Labels = {}, buckets: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]): void {
    const f = this.#family(name, help, 'histogram');
    f.buckets ??= buckets;
    f.hist ??= new Map();
    const key = labelText(labels);
    let h = f.hist.get(key);
    if (!h) f.hist.set(key, (h = { labels, counts: new Array<number>(f.buckets.length).fill(0), sum: 0, count: 0 }));
    f.buckets.forEach((b, i) => {
      if (value <= b) h!.counts[i]!++;
    });
    h.sum += value;
    h.count++;
  }

  /** The exposition text. A failing collector reports nothing for its family rather than failing the scrape. */
  async render(): Promise<string> {
    let out = '';
    for (const f of this.#families.values()) {
      let rows = [...f.values.values()];
      if (f.collect) {
        try {
          const r = await f.collect();
          rows = typeof r === 'number' ? [{ labels: {}, value: r }] : r.map(([labels, value]) => ({ labels, value }));
        } catch {
          rows = [];
        }
      }
      out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
      if (f.type === 'histogram') {
        for (const h of f.hist?.values() ?? []) {
          f.buckets!.forEach((b, i) => (out += `${f.name}_bucket${labelText({ ...h.labels, le: String(b) })} ${h.counts[i]}\n`));
          out += `${f.name}_bucket${labelText({ ...h.labels, le: '+Inf' })} ${h.count}\n${f.name}_sum${labelText(h.labels)} ${h.sum}\n${f.name}_count${labelText(h.labels)} ${h.count}\n`;
        }
        continue;
      }
      for (const r of rows) out += `${f.name}${labelText(r.labels)} ${r.value}\n`;
    }
    return out;
  }
}
