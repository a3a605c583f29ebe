// Host charts (lazy chunk, loaded by the dashboard): a small line chart in plain SVG (no chart
// library) and the series it draws. Today the samples come from polling GET /system/metrics
// (each answer is a rate over its own interval) and are kept for this tab only; a history
// source (GET /api/v1/metrics/query_range, when the daemon has it) only has to produce the
// same `Series` shape — see `Source` below.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api/client';
import { bytes } from './hooks';

/** One line: points are [unix seconds, value]. */
export interface Series {
  label: string;
  points: [number, number][];
}

/** Where a chart's series come from: called every `every` ms with the time range wanted. */
export interface Source {
  every: number;
  load(from: number, to: number): Promise<Record<string, Series[]>>;
}

const W = 320;
const H = 120;
const PAD = { l: 58, r: 6, t: 6, b: 16 };

export function LineChart({ title, series, format, max }: { title: string; series: Series[]; format: (v: number) => string; max?: number }) {
  const all = series.flatMap((s) => s.points);
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]));
  const top = max ?? Math.max(1e-9, ...all.map((p) => p[1])) * 1.1;
  const x = (t: number) => PAD.l + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - (Math.min(v, top) / top) * (H - PAD.t - PAD.b);
  const last = series.map((s) => s.points[s.points.length - 1]?.[1]);
  const summary = series.map((s, i) => `${s.label} ${last[i] != null ? format(last[i]!) : 'no data'}`).join(', ');
  return (
    <figure class="chart-box">
      <figcaption>{title}</figcaption>
      <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}: now ${summary}`}>
        {[0, 0.5, 1].map((f) => (
          <g key={f}>
            <line class="grid" x1={PAD.l} x2={W - PAD.r} y1={y(top * f)} y2={y(top * f)} />
            <text class="axis" x={PAD.l - 4} y={y(top * f) + 3} text-anchor="end">{format(top * f)}</text>
          </g>
        ))}
        {all.length > 1 &&
          series.map((s, i) => (
            <polyline key={s.label} class={`s${i % 3}`} points={s.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')} />
          ))}
      </svg>
      <ul class="legend">
        {series.map((s, i) => (
          <li key={s.label} class={`k${i % 3}`}>■ <span>{s.label}: {last[i] != null ? format(last[i]!) : '–'}</span></li>
        ))}
      </ul>
    </figure>
  );
}

/** Samples of GET /system/metrics kept for the tab (the last 10 minutes), shared by mounts. */
const KEEP = 600;
const history: Record<string, Series[]> = {};

function push(key: string, label: string, t: number, v: number, slot: number): void {
  const list = (history[key] ??= []);
  const s = (list[slot] ??= { label, points: [] });
  s.points.push([t, v]);
  while (s.points.length && s.points[0]![0] < t - KEEP) s.points.shift();
}

export const pollSource: Source = {
  every: 5000,
  async load() {
    const { data } = await api.GET('/api/v1/system/metrics', { params: { query: { interval_ms: 1000 } } });
    if (!data) return history;
    const t = Date.parse(data.sampled_at ?? '') / 1000 || Date.now() / 1000;
    if (data.cpu) {
      push('cpu', 'busy', t, data.cpu.busy_percent, 0);
      push('cpu', 'iowait', t, data.cpu.iowait_percent, 1);
    }
    if (data.memory) push('memory', 'used', t, data.memory.used_bytes, 0);
    const sum = <T,>(xs: T[] | undefined, f: (x: T) => number) => (xs ?? []).reduce((a, x) => a + f(x), 0);
    const nics = data.interfaces?.filter((i) => i.name !== 'lo');
    push('network', 'received', t, sum(nics, (i) => i.rx_bytes_per_sec), 0);
    push('network', 'sent', t, sum(nics, (i) => i.tx_bytes_per_sec), 1);
    push('disk', 'read', t, sum(data.disks, (d) => d.read_bytes_per_sec), 0);
    push('disk', 'written', t, sum(data.disks, (d) => d.write_bytes_per_sec), 1);
    return history;
  },
};

const rate = (v: number) => `${bytes(v)}/s`;
const pct = (v: number) => `${v.toFixed(0)} %`;

export default function HostCharts({ source = pollSource, memTotal }: { source?: Source; memTotal?: number }) {
  const [data, setData] = useState<Record<string, Series[]>>({ ...history });
  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      const now = Date.now() / 1000;
      try {
        const d = await source.load(now - KEEP, now);
        if (live) setData({ ...d });
      } catch {
        // A failed sample leaves a gap; the next one comes.
      }
      if (live) timer = setTimeout(tick, source.every);
    };
    void tick();
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [source]);
  const chart = (key: string, title: string, format: (v: number) => string, max?: number) => (
    <LineChart title={title} series={data[key] ?? [{ label: 'waiting for data', points: [] }]} format={format} max={max} />
  );
  return (
    <div class="cards" data-charts>
      {chart('cpu', 'CPU', pct, 100)}
      {chart('memory', 'Memory', bytes, memTotal)}
      {chart('network', 'Network', rate)}
      {chart('disk', 'Disk', rate)}
    </div>
  );
}
