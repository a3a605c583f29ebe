// Host charts (lazy chunk, loaded by the dashboard): a small line chart in plain SVG (no chart
// library) and the series it draws. The last 10 minutes come from the daemon's metrics history
// (GET /api/v1/metrics/query_range, one query per series, network and disk summed over their
// devices), then each live `metrics.sample` event of the tab's event stream adds a point.
// Where the history is off (503 `metrics_history_disabled`), the charts poll GET
// /system/metrics instead and keep what they saw for the tab.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api/client';
import { bytes } from './hooks';
import { samples, type Sample } from './store';

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

/** Chart slot → the history series summed into it. */
const SERIES: [key: string, label: string, metric: string, slot: number][] = [
  ['cpu', 'busy', 'cpu_busy_percent', 0],
  ['cpu', 'iowait', 'cpu_iowait_percent', 1],
  ['memory', 'used', 'memory_used_bytes', 0],
  ['network', 'received', 'network_receive_bytes_per_second', 0],
  ['network', 'sent', 'network_transmit_bytes_per_second', 1],
  ['disk', 'read', 'disk_read_bytes_per_second', 0],
  ['disk', 'written', 'disk_write_bytes_per_second', 1],
];

/** Points of several series (devices) at the same timestamps, summed. */
function sumByTime(result: { values: (number | string)[][] }[]): [number, number][] {
  const m = new Map<number, number>();
  for (const r of result) for (const [t, v] of r.values) m.set(Number(t), (m.get(Number(t)) ?? 0) + Number(v));
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

/** The history once (null when the daemon keeps none), then the live samples. */
async function loadHistory(from: number, to: number): Promise<boolean> {
  const answers = await Promise.all(
    SERIES.map(([, , metric]) => api.GET('/api/v1/metrics/query_range', { params: { query: { metric, start: String(Math.floor(from)), end: String(Math.ceil(to)) } } })),
  );
  if (answers.some((a) => !a.response.ok)) return false;
  answers.forEach((a, i) => {
    const [key, label, , slot] = SERIES[i]!;
    const list = (history[key] ??= []);
    list[slot] = { label, points: sumByTime(a.data?.data?.result ?? []) };
  });
  return true;
}

function addSample(s: Sample): void {
  for (const [key, label, metric, slot] of SERIES) {
    const vs = s.values.filter((v) => v.name === metric);
    if (vs.length) push(key, label, s.time, vs.reduce((a, v) => a + v.value, 0), slot);
  }
}

/** The metrics history, then `metrics.sample` events; `load` only hands out what it has. */
export const historySource: Source = {
  every: 2000,
  async load() {
    return history;
  },
};

const rate = (v: number) => `${bytes(v)}/s`;
const pct = (v: number) => `${v.toFixed(0)} %`;

let mode: Promise<Source> | null = null;
/** History when the daemon keeps it (loaded once per tab; live samples extend it), else polling. */
function pickSource(): Promise<Source> {
  const now = Date.now() / 1000;
  return (mode ??= loadHistory(now - KEEP, now).then(
    (ok) => {
      if (!ok) return pollSource;
      samples.subscribe((s) => s && addSample(s));
      return historySource;
    },
    () => pollSource,
  ));
}

export default function HostCharts({ memTotal }: { memTotal?: number }) {
  const [source, setSource] = useState<Source | null>(null);
  useEffect(() => {
    void pickSource().then(setSource);
  }, []);
  const [data, setData] = useState<Record<string, Series[]>>({ ...history });
  useEffect(() => {
    if (!source) return;
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
    <div class="cards" data-charts data-source={source === historySource ? 'history' : source ? 'poll' : undefined}>
      {chart('cpu', 'CPU', pct, 100)}
      {chart('memory', 'Memory', bytes, memTotal)}
      {chart('network', 'Network', rate)}
      {chart('disk', 'Disk', rate)}
    </div>
  );
}
