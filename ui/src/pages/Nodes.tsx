// The nodes: each machine with its status (red when a resource runs low, grey when it stopped
// reporting) and why, the engine's view of it (ready, down…, and whether it is drained or
// paused; admins drain, pause and activate it), its role and address, CPU, memory and disk bars
// (for the machine Berth runs on and the Swarm nodes its node agent reads: the others say "not measured"), capacity and labels
// (admins edit them), its latest events for admins, its history as charts (folded); refreshed
// every few seconds.
// `ClusterBanner` is the shell's banner saying the cluster needs another node when every node
// is low.
import { useState } from "react";
import { api, call, type Schemas } from "../api/client";
import { MetricsCharts } from "../components/charts";
import {
  Badge,
  Empty,
  formatBytes,
  Loaded,
  PageHeader,
  Time,
  useAction,
  useAsync,
  useConfirm,
  useEnumLabel,
  useToast,
  type Tone,
} from "../components/ui";
import { hasKey, useI18n, type Key, type T } from "../i18n";
import { useSession } from "../session";

type NodeDto = Schemas["NodeDto"];
type NodeReason = Schemas["NodeReasonDto"];
type PlatformEvent = Schemas["PlatformEventDto"];
type SpaceDto = Schemas["SpaceDto"];

const POLL_MS = 3000;

const STATUS_TONE: Record<string, Tone> = { ok: "ok", low: "bad", unknown: "muted" };

/** The engine's view of a node: red when down or disconnected, amber when it takes no new
 * instances (drained or paused). */
function stateTone(node: NodeDto): Tone {
  if (node.state === "down" || node.state === "disconnected") return "bad";
  if (node.state !== "ready") return "muted";
  return node.availability === "active" ? "ok" : "warn";
}

const AVAILABILITIES = ["drain", "pause", "active"] as const;
type Availability = (typeof AVAILABILITIES)[number];

/** A reason a node is low or unknown, in the console's language (English from the server when
 * this console does not know its code). */
function reasonText(t: T, reason: NodeReason, english: string): string {
  const key = `nodes.reason.${reason.code}`;
  return hasKey(key) ? t(key as Key, reason.values) : english;
}

/** A node event's sentence in the console's language, from its kind and values. */
function nodeEventText(t: T, e: PlatformEvent): string {
  const key = `nodes.event.${e.kind}`;
  if (!hasKey(key)) return e.message;
  const params = e.params ?? {};
  let reasons = params.reasons ?? "";
  try {
    const details = JSON.parse(params.reason_details ?? "[]") as { code: string; [value: string]: string }[];
    if (details.length > 0) {
      reasons = details
        .map(({ code, ...values }) => reasonText(t, { code, values }, ""))
        .filter(Boolean)
        .join(t("nodes.reasonSeparator"));
    }
  } catch {
    // Recorded before the details were: the English reasons.
  }
  return t(key as Key, { node: params.node ?? "", reasons });
}

/** The banner when every node is low (polled wherever the console is). */
export function ClusterBanner() {
  const { t } = useI18n();
  const nodes = useAsync(() => call(api.GET("/api/v1/nodes")), [], 10000);
  if (!nodes.data?.needs_another_node) return null;
  return (
    <div className="alert alert-error cluster-banner" role="status" data-testid="cluster-banner">
      {t("nodes.needsAnother")}
    </div>
  );
}

export function NodesPage() {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const nodes = useAsync(() => call(api.GET("/api/v1/nodes")), [], POLL_MS);
  return (
    <>
      <PageHeader title={t("nodes.title")} sub={t("nodes.sub")} />
      <Loaded state={nodes}>
        {(list) => {
          if (list.nodes.length === 0) return <Empty>{t("nodes.empty")}</Empty>;
          const th = list.thresholds;
          return (
            <>
              <p className="muted" data-testid="node-thresholds">
                {t("nodes.thresholds", {
                  cpu: th.cpu_busy_percent,
                  secs: th.cpu_busy_for_secs,
                  memory: th.memory_free_min_percent,
                  disk: th.disk_free_min_percent,
                })}
              </p>
              <div className="stack">
                {list.nodes.map((n) => (
                  <NodeCard key={n.name} node={n} onSaved={() => void nodes.reload()} />
                ))}
                {isAdmin && <ClusterEvents />}
              </div>
            </>
          );
        }}
      </Loaded>
    </>
  );
}

function NodeCard({ node, onSaved }: { node: NodeDto; onSaved(): void }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  const { isAdmin } = useSession();
  const usage = node.usage;
  const cpu = usage?.cpu_percent;
  const notMeasured = t("nodes.notMeasured");
  const notMeasuredTitle = t("nodes.notMeasuredTitle");
  return (
    <section className={"card node-card node-" + node.status} data-node={node.name} data-status={node.status}>
      <div className="card-head">
        <h2>{node.name}</h2>
        <Badge tone={STATUS_TONE[node.status] ?? "muted"}>{t(`nodes.status.${node.status}` as "nodes.status.ok")}</Badge>
        <span data-testid="node-state" data-state={node.state} data-availability={node.availability}>
          <Badge tone={stateTone(node)} title={t("nodes.stateTitle")}>
            {label("nodes.state", node.state)}
            {node.availability !== "active" && " · " + label("nodes.availability", node.availability)}
          </Badge>
        </span>
        {node.datacenter && <Badge tone="info">{t("nodes.datacenter", { dc: node.datacenter })}</Badge>}
        {node.zone && <Badge tone="info">{t("nodes.zone", { zone: node.zone })}</Badge>}
        <span className="muted">{node.engine}</span>
      </div>
      {node.reasons.length > 0 && (
        <ul className={node.status === "low" ? "node-reasons bad" : "node-reasons"} data-testid="node-reasons">
          {node.reasons.map((r, i) => (
            <li key={r}>{node.reason_details[i] ? reasonText(t, node.reason_details[i], r) : r}</li>
          ))}
        </ul>
      )}
      <div className="grid-3">
        <Meter
          label={t("nodes.cpu")}
          value={cpu ?? null}
          text={!node.measured ? notMeasured : cpu === null || cpu === undefined ? "–" : `${cpu.toFixed(0)} %`}
          title={node.measured ? undefined : notMeasuredTitle}
          low={usage?.cpu_low ?? false}
          testid="node-cpu"
        />
        <SpaceMeter
          label={t("nodes.memory")}
          space={usage?.memory ?? null}
          unknown={node.measured ? undefined : notMeasured}
          title={node.measured ? undefined : notMeasuredTitle}
          testid="node-memory"
        />
        {(usage?.disks ?? []).map((d) => (
          <SpaceMeter
            key={d.role + d.path}
            label={t(`nodes.disk.${d.role}` as "nodes.disk.berth_data_dir", { path: d.path })}
            space={d.space ?? null}
            unknown={t("nodes.diskUnknown")}
            testid={"node-disk-" + d.role}
          />
        ))}
      </div>
      <dl className="facts">
        <dt>{t("nodes.node")}</dt>
        <dd data-testid="node-engine-state" className={stateTone(node) === "bad" ? "bad-text" : undefined}>
          {label("nodes.state", node.state)}
          {node.availability !== "active" && " · " + label("nodes.availability", node.availability)}
        </dd>
        <dt>{t("nodes.role")}</dt>
        <dd data-testid="node-role" data-role={node.role}>
          {label("nodes.role", node.role)}
        </dd>
        <dt>{t("nodes.address")}</dt>
        <dd data-testid="node-address">{node.address ? <span className="mono">{node.address}</span> : <span className="muted">{t("nodes.noAddress")}</span>}</dd>
        <dt>{t("nodes.capacity")}</dt>
        <dd>{t("nodes.capacityText", { cpus: node.capacity.cpus, memory: formatBytes(node.capacity.memory_bytes) })}</dd>
        <dt>{t("nodes.sampled")}</dt>
        <dd>
          <Time value={usage?.sampled_at} />
        </dd>
        <dt>{t("nodes.labels")}</dt>
        <dd data-testid="node-labels">
          {Object.keys(node.labels).length === 0 ? (
            <span className="muted">{t("nodes.noLabels")}</span>
          ) : (
            Object.entries(node.labels).map(([k, v]) => (
              <Badge key={k} tone="muted">
                {k}={v}
              </Badge>
            ))
          )}
        </dd>
      </dl>
      {node.measured && <NodeHistory node={node} />}
      {isAdmin && <AvailabilityActions node={node} onSaved={onSaved} />}
      {isAdmin && <LabelEditor node={node} onSaved={onSaved} />}
      {isAdmin && <NodeEvents name={node.name} />}
    </section>
  );
}

/** The node's history, folded; fetched only while unfolded. */
function NodeHistory({ node }: { node: NodeDto }) {
  const { t } = useI18n();
  const [open, setOpen] = useState(false);
  return (
    <details className="node-history" data-testid="node-history" onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>{t("charts.title")}</summary>
      {open && <MetricsCharts subject={{ kind: "node", name: node.name, memoryBytes: node.capacity.memory_bytes }} />}
    </details>
  );
}

function Meter({
  label,
  value,
  text,
  title,
  low,
  testid,
}: {
  label: string;
  value: number | null;
  text: string;
  title?: string;
  low: boolean;
  testid: string;
}) {
  const pct = value === null ? 0 : Math.max(0, Math.min(100, value));
  return (
    <div className="usage" data-testid={testid} data-low={low ? "true" : "false"}>
      <div className="usage-label">
        <span>{label}</span>
        <span className={low ? "bad-text" : title ? "muted" : undefined} title={title}>
          {text}
        </span>
      </div>
      <div
        className={"bar " + (value === null ? "bar-muted" : low ? "bar-bad" : "bar-ok")}
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
      >
        <div style={{ width: pct + "%" }} />
      </div>
    </div>
  );
}

function SpaceMeter({
  label,
  space,
  unknown,
  title,
  testid,
}: {
  label: string;
  space: SpaceDto | null;
  unknown?: string;
  title?: string;
  testid: string;
}) {
  const { t } = useI18n();
  if (!space) return <Meter label={label} value={null} text={unknown ?? "–"} title={title} low={false} testid={testid} />;
  const used = 100 - space.free_percent;
  return (
    <Meter
      label={label}
      value={used}
      text={t("nodes.used", {
        used: formatBytes(space.total_bytes - space.free_bytes),
        total: formatBytes(space.total_bytes),
        free: space.free_percent,
      })}
      low={space.low}
      testid={testid}
    />
  );
}

/** Drain (after a confirmation: its instances move to other nodes), pause or activate a node;
 * the server's refusal (a single Docker Engine is one node) is shown beside the buttons. */
function AvailabilityActions({ node, onSaved }: { node: NodeDto; onSaved(): void }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const set = async (availability: Availability) => {
    if (availability === "drain") {
      const ok = await confirm({
        title: t("nodes.drainTitle", { node: node.name }),
        body: t("nodes.drainBody"),
        confirm: t("nodes.drain"),
        danger: true,
      });
      if (!ok) return;
    }
    const saved = await action.run(() =>
      call(api.PUT("/api/v1/nodes/{name}/availability", { params: { path: { name: node.name } }, body: { availability } })),
    );
    if (saved) {
      toast(t("nodes.availabilitySet", { node: node.name, availability: label("nodes.availability", saved.availability) }));
      onSaved();
    }
  };
  const buttons: Record<Availability, { text: string; className: string }> = {
    drain: { text: t("nodes.drain"), className: "btn btn-danger-outline" },
    pause: { text: t("nodes.pause"), className: "btn" },
    active: { text: t("nodes.activate"), className: "btn" },
  };
  return (
    <div className="toolbar node-availability" data-testid="node-availability">
      {AVAILABILITIES.map((a) => (
        <button
          key={a}
          type="button"
          className={buttons[a].className}
          disabled={action.busy || node.availability === a}
          title={t(`nodes.${a}Help` as "nodes.drainHelp")}
          onClick={() => void set(a)}
        >
          {buttons[a].text}
        </button>
      ))}
      {action.error && (
        <span className="bad-text" role="alert" data-testid="node-availability-error">
          {action.error.message}
        </span>
      )}
    </div>
  );
}

/** `key=value` pairs separated by spaces, as `berth nodes label` takes them. */
function LabelEditor({ node, onSaved }: { node: NodeDto; onSaved(): void }) {
  const { t } = useI18n();
  const initial = Object.entries(node.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const [text, setText] = useState<string | null>(null);
  const action = useAction();
  const value = text ?? initial;
  const save = async () => {
    const labels: Record<string, string> = {};
    for (const pair of value.split(/\s+/).filter(Boolean)) {
      const at = pair.indexOf("=");
      if (at < 0) labels[pair] = "";
      else labels[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const saved = await action.run(() =>
      call(api.PUT("/api/v1/nodes/{name}/labels", { params: { path: { name: node.name } }, body: { labels } })),
    );
    if (saved) {
      setText(null);
      onSaved();
    }
  };
  return (
    <form
      className="toolbar"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <input
        aria-label={t("nodes.editLabels")}
        placeholder="datacenter=dc1 zone=a"
        value={value}
        onChange={(e) => setText(e.target.value)}
        data-testid="node-labels-input"
      />
      <button type="submit" className="btn" disabled={action.busy}>
        {t("nodes.saveLabels")}
      </button>
      {action.error && (
        <span className="bad-text" role="alert" data-testid="node-labels-error">
          {action.error.message}
        </span>
      )}
    </form>
  );
}

function NodeEvents({ name }: { name: string }) {
  const { t } = useI18n();
  const events = useAsync(
    () => call(api.GET("/api/v1/nodes/{name}/events", { params: { path: { name }, query: { limit: 5 } } })),
    [name],
    POLL_MS,
  );
  return (
    <div className="node-events">
      <h3>{t("nodes.events")}</h3>
      <EventList list={events.data ?? []} testid="node-events" />
    </div>
  );
}

/** The cluster's own events (every node low, and room again), for admins. */
function ClusterEvents() {
  const { t } = useI18n();
  const events = useAsync(() => call(api.GET("/api/v1/cluster/events", { params: { query: { limit: 10 } } })), [], POLL_MS);
  return (
    <section className="card cluster-events">
      <h2>{t("nodes.clusterEvents")}</h2>
      <p className="muted small">{t("nodes.clusterEventsSub")}</p>
      <EventList list={events.data ?? []} testid="cluster-events" />
    </section>
  );
}

/** Platform events, oldest first; warnings in red. */
function EventList({ list, testid }: { list: PlatformEvent[]; testid: string }) {
  const { t } = useI18n();
  return list.length === 0 ? (
    <p className="muted" data-testid={testid + "-empty"}>
      {t("nodes.noEvents")}
    </p>
  ) : (
    <ul data-testid={testid}>
      {[...list].reverse().map((e) => (
        <li key={e.id} data-kind={e.kind} className={e.warning ? "bad-text" : undefined}>
          <Time value={e.at} /> {nodeEventText(t, e)}
        </li>
      ))}
    </ul>
  );
}
