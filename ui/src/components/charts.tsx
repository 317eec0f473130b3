// Charts of the metrics history, drawn as plain SVG (no chart library): `LineChart` — axes,
// gaps where no samples were taken, a dashed limit line (a quota, a node's capacity), a
// read-out of the values under the pointer or finger — and `MetricsCharts`, which polls a
// range of an app's, a node's or a team's history every 5 s and lays its charts out.
import { useEffect, useRef, useState } from "react";
import { api, call, type Schemas } from "../api/client";
import { useI18n, type Key } from "../i18n";
import { ErrorBox, formatBytes, formatCpu, useAsync } from "./ui";

type MetricsDto = Schemas["MetricsDto"];
type SeriesDto = Schemas["SeriesDto"];
type QuotaDto = Schemas["QuotaDto"];

/** One line: a label and its points (unix ms, value). */
export interface Line {
  label: string;
  points: { at: number; value: number }[];
}

const COLORS = ["var(--primary)", "var(--ok)", "var(--warn)", "var(--bad)", "var(--info)", "var(--muted)"];
const HEIGHT = 150;
const PAD = { left: 64, right: 10, top: 8, bottom: 22 };
/** How often the charts fetch the range again. */
const POLL_MS = 5000;

/** The width of an element, following resizes (so text never scales with the chart). */
function useWidth<E extends HTMLElement>() {
  const ref = useRef<E>(null);
  const [width, setWidth] = useState(480);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.max(180, Math.round(entry.contentRect.width))));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width] as const;
}

/** The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above `v`: a round top for the y axis. */
export function niceCeiling(v: number): number {
  if (!(v > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= v - 1e-9) return m * power;
  return 10 * power;
}

/** As `niceCeiling` in binary units (KiB, MiB, GiB…), for byte axes: 23.5 GiB → 25 GiB. */
export function niceBytesCeiling(v: number): number {
  if (!(v > 0)) return 1;
  const unit = Math.pow(1024, Math.max(0, Math.floor(Math.log(v) / Math.log(1024))));
  return unit * niceCeiling(v / unit);
}

/** The SVG path of `points`, a new segment after every gap longer than 1.5 steps. */
export function linePath(points: { at: number; value: number }[], step: number, x: (at: number) => number, y: (v: number) => number): string {
  let d = "";
  let previous: number | null = null;
  for (const p of points) {
    const jump = previous === null || p.at - previous > step * 1.5;
    d += `${jump ? "M" : "L"}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`;
    previous = p.at;
  }
  return d;
}

/** What the caption says: the values under the pointer, else each line's latest; a chart of
 * one line leaves its label out (the title says it). */
function readoutText(
  readout: { label: string; point?: { value: number } }[] | null,
  hover: number | null,
  lines: Line[],
  format: (v: number) => string,
  when: (at: number) => string,
): string {
  const say = (label: string, value: number) => (lines.length > 1 ? `${label} ${format(value)}` : format(value));
  if (hover !== null && readout && readout.length > 0) {
    return `${when(hover)} · ` + readout.map((r) => say(r.label, r.point!.value)).join(" · ");
  }
  return lines
    .filter((l) => l.points.length > 0)
    .map((l) => say(l.label, l.points[l.points.length - 1].value))
    .join(" · ");
}

export function LineChart({
  title,
  lines,
  from,
  to,
  step,
  format,
  limit,
  minTop = 1,
  ceiling = niceCeiling,
  testid,
}: {
  title: string;
  lines: Line[];
  from: number;
  to: number;
  step: number;
  format: (v: number) => string;
  /** A dashed line: a quota or a capacity. */
  limit?: { value: number; label: string } | null;
  /** The y axis reaches at least this high (so noise near 0 does not fill the chart). */
  minTop?: number;
  /** The round top of the y axis for the highest value. */
  ceiling?: (v: number) => number;
  testid: string;
}) {
  const { lang, t } = useI18n();
  const [box, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | null>(null);
  const innerW = width - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const values = lines.flatMap((l) => l.points.map((p) => p.value));
  const top = ceiling(Math.max(minTop, limit?.value ?? 0, ...values));
  const span = Math.max(1, to - from);
  const x = (at: number) => PAD.left + ((at - from) / span) * innerW;
  const y = (v: number) => PAD.top + innerH - (Math.max(0, v) / top) * innerH;
  const time = new Intl.DateTimeFormat(lang, span > 36 * 3600_000 ? { month: "short", day: "numeric" } : { hour: "2-digit", minute: "2-digit" });
  const exact = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const count = values.length;
  const pointAt = (clientX: number, el: Element) => {
    const rect = el.getBoundingClientRect();
    const at = from + ((clientX - rect.left - PAD.left) / innerW) * span;
    return from + Math.round((at - from) / step) * step;
  };
  const readout =
    hover === null
      ? null
      : lines
          .map((l) => ({ label: l.label, point: l.points.find((p) => p.at === hover) }))
          .filter((r) => r.point !== undefined);
  return (
    <figure className="chart" data-testid={"chart-" + testid} data-points={count}>
      <figcaption>
        <span className="chart-title">{title}</span>
        <span className="chart-readout" aria-live="polite" data-testid={"chart-readout-" + testid}>
          {readoutText(readout, hover, lines, format, (at) => exact.format(at))}
        </span>
      </figcaption>
      <div ref={box} className="chart-box">
        <svg
          width={width}
          height={HEIGHT}
          role="img"
          aria-label={title}
          onPointerMove={(e) => setHover(pointAt(e.clientX, e.currentTarget))}
          onPointerDown={(e) => setHover(pointAt(e.clientX, e.currentTarget))}
          onPointerLeave={() => setHover(null)}
        >
          {[0, top / 2, top].map((v) => (
            <g key={v}>
              <line className="chart-grid" x1={PAD.left} x2={width - PAD.right} y1={y(v)} y2={y(v)} />
              <text className="chart-axis" x={PAD.left - 6} y={y(v) + 4} textAnchor="end">
                {format(v)}
              </text>
            </g>
          ))}
          {[from, from + span / 2, to].map((at, i) => (
            <text key={i} className="chart-axis" x={x(at)} y={HEIGHT - 6} textAnchor={i === 0 ? "start" : i === 2 ? "end" : "middle"}>
              {time.format(at)}
            </text>
          ))}
          {limit && (
            <g>
              <line className="chart-limit" x1={PAD.left} x2={width - PAD.right} y1={y(limit.value)} y2={y(limit.value)} />
              <text className="chart-axis" x={width - PAD.right} y={y(limit.value) < PAD.top + 12 ? y(limit.value) + 12 : y(limit.value) - 3} textAnchor="end">
                {limit.label}
              </text>
            </g>
          )}
          {lines.map((l, i) => (
            <path key={l.label} className="chart-line" d={linePath(l.points, step, x, y)} stroke={COLORS[i % COLORS.length]} />
          ))}
          {lines.map((l, i) => {
            const last = l.points[l.points.length - 1];
            return last ? <circle key={l.label} cx={x(last.at)} cy={y(last.value)} r={2.5} fill={COLORS[i % COLORS.length]} /> : null;
          })}
          {hover !== null && hover >= from && hover <= to && <line className="chart-cursor" x1={x(hover)} x2={x(hover)} y1={PAD.top} y2={PAD.top + innerH} />}
          {count === 0 && (
            <text className="chart-axis" x={PAD.left + innerW / 2} y={PAD.top + innerH / 2} textAnchor="middle">
              {t("charts.noData")}
            </text>
          )}
        </svg>
      </div>
      {lines.length > 1 && (
        <ul className="chart-legend">
          {lines.map((l, i) => (
            <li key={l.label}>
              <span className="chart-swatch" style={{ background: COLORS[i % COLORS.length] }} />
              {l.label}
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}

/** The ranges offered, as spans before now (`from=-1h`: the server's clock decides). */
const RANGES = ["1h", "6h", "1d", "7d", "30d"] as const;
type Range = (typeof RANGES)[number];

export type MetricsSubject = { kind: "app"; name: string } | { kind: "node"; name: string; memoryBytes?: number } | { kind: "team"; name: string };

type Answer = MetricsDto & { quota?: QuotaDto };

function fetchRange(subject: MetricsSubject, range: Range): Promise<Answer> {
  const query = { from: "-" + range };
  switch (subject.kind) {
    case "app":
      return call(api.GET("/api/v1/apps/{name}/metrics", { params: { path: { name: subject.name }, query } }));
    case "node":
      return call(api.GET("/api/v1/nodes/{name}/metrics", { params: { path: { name: subject.name }, query } }));
    case "team":
      return call(api.GET("/api/v1/teams/{team}/metrics", { params: { path: { team: subject.name }, query } }));
  }
}

function toLine(s: SeriesDto, label: string): Line {
  return { label, points: s.points.map((p) => ({ at: p.at, value: p.mean })) };
}

/** A chart to draw: which metric, of which scope, how to say its values. */
interface ChartSpec {
  metric: string;
  title: Key;
  format: (v: number) => string;
  /** Also draw each instance's line (app charts). */
  instances?: boolean;
  /** See `LineChart`'s `minTop` and `ceiling`. */
  minTop?: number;
  ceiling?: (v: number) => number;
  limit?: (answer: Answer) => { value: number; label: string } | null;
}

const percent = (v: number) => `${v.toFixed(v < 10 ? 1 : 0)} %`;
/** Millicores below a core (`250m`, as the CLI writes them), cores above. */
const cpu = (v: number) => (v < 1000 ? `${Math.round(v)}m` : formatCpu(v));
const bytes = (v: number) => formatBytes(v);
const perSecond = (v: number) => `${v < 10 ? v.toFixed(1) : v.toFixed(0)}/s`;
const millis = (v: number) => `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ms`;
const count = (v: number) => `${Math.round(v * 10) / 10}`;

function specs(subject: MetricsSubject, quotaLabel: string, capacityLabel: string): ChartSpec[] {
  switch (subject.kind) {
    case "app":
      return [
        { metric: "cpu_millis", title: "charts.cpu", format: cpu, instances: true, minTop: 100 },
        { metric: "memory_bytes", title: "charts.memory", format: bytes, instances: true, minTop: 16 << 20, ceiling: niceBytesCeiling },
        { metric: "requests_per_second", title: "charts.requests", format: perSecond },
        { metric: "error_percent", title: "charts.errors", format: percent },
        { metric: "latency_p95_ms", title: "charts.p95", format: millis },
        { metric: "ready_instances", title: "charts.instances", format: count },
      ];
    case "node":
      return [
        { metric: "cpu_percent", title: "charts.cpuPercent", format: percent, limit: () => ({ value: 100, label: "100 %" }) },
        {
          metric: "memory_bytes",
          title: "charts.memory",
          format: bytes,
          ceiling: niceBytesCeiling,
          limit: () => (subject.memoryBytes ? { value: subject.memoryBytes, label: capacityLabel } : null),
        },
        { metric: "disk_used_percent", title: "charts.disk", format: percent, limit: () => ({ value: 100, label: "100 %" }) },
      ];
    case "team": {
      const quota = (pick: (q: QuotaDto) => number | null | undefined) => (a: Answer) => {
        const v = a.quota ? pick(a.quota) : null;
        return v === null || v === undefined ? null : { value: v, label: quotaLabel };
      };
      return [
        { metric: "cpu_millis", title: "charts.cpu", format: cpu, limit: quota((q) => q.cpu_millis), minTop: 100 },
        { metric: "memory_bytes", title: "charts.memory", format: bytes, limit: quota((q) => q.memory_bytes), minTop: 16 << 20, ceiling: niceBytesCeiling },
        { metric: "ready_instances", title: "charts.instances", format: count, limit: quota((q) => q.instances) },
      ];
    }
  }
}

/** The history of an app, a node or a team: a range picker and a chart per metric, live. */
export function MetricsCharts({ subject }: { subject: MetricsSubject }) {
  const { t } = useI18n();
  const [range, setRange] = useState<Range>("1h");
  const answer = useAsync(() => fetchRange(subject, range), [subject.kind, subject.name, range], POLL_MS);
  const data = answer.data;
  const id = `${subject.kind}-${subject.name}`;
  return (
    <div className="metrics-charts" data-testid={"metrics-" + id}>
      <div className="toolbar" role="group" aria-label={t("charts.range")}>
        {RANGES.map((r) => (
          <button
            key={r}
            type="button"
            className={"btn btn-small" + (r === range ? " btn-primary" : "")}
            aria-pressed={r === range}
            onClick={() => setRange(r)}
          >
            {t(`charts.range.${r}` as Key)}
          </button>
        ))}
      </div>
      {answer.error && <ErrorBox error={answer.error} onRetry={() => void answer.reload()} />}
      {data && (
        <div className="chart-grid-layout">
          {specs(subject, t("charts.quota"), t("charts.capacity")).map((spec) => {
            const own = data.series.filter((s) => s.metric === spec.metric && s.scope === subject.kind);
            const instances = spec.instances ? data.series.filter((s) => s.metric === spec.metric && s.scope === "instance") : [];
            const lines = [
              ...own.map((s) => toLine(s, instances.length > 0 ? t("charts.total") : t(spec.title))),
              ...instances.map((s) => toLine(s, s.name ?? "")),
            ];
            return (
              <LineChart
                key={spec.metric}
                testid={`${id}-${spec.metric}`}
                title={t(spec.title)}
                lines={lines}
                from={data.from}
                to={data.to}
                step={data.step_ms}
                format={spec.format}
                limit={spec.limit?.(data) ?? null}
                minTop={spec.minTop}
                ceiling={spec.ceiling}
              />
            );
          })}
        </div>
      )}
    </div>
  );
}
