// The live topology: every app as a graph (columns from the server's layers: apps nobody
// depends on on the left, their dependencies to the right; the outside world in front of the
// external apps), with health, counts, limits and use, rollout and autoscaling state and the
// edges (declared dependencies, connections observed between instances, the router's traffic); each team's quota and usage; and where every instance runs (datacenter →
// node → instances). It follows the server's live stream; a team filter narrows it.
import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";
import type { TopologyAppDto, TopologyDto } from "../api/client";
import { streamTopology } from "../api/stream";
import { healthTone, type Health } from "../components/apps";
import { Badge, Empty, formatBytes, formatCpu, Loading, PageHeader } from "../components/ui";
import { useI18n, type Key } from "../i18n";

const BOX_W = 230;
const BOX_H = 124;
const COL_GAP = 180;
const ROW_GAP = 26;
const OUTSIDE = "\u0000outside";


interface Box {
  key: string;
  x: number;
  y: number;
  app?: TopologyAppDto;
  ghost?: string;
}

/** Boxes in columns: the outside world first when any external app takes traffic, then by layer. */
function layout(topology: TopologyDto): { boxes: Map<string, Box>; width: number; height: number } {
  const outside = topology.edges.some((e) => e.from == null);
  const shift = outside ? 1 : 0;
  const columns = new Map<number, Box[]>();
  const put = (column: number, box: Omit<Box, "x" | "y">) => {
    const list = columns.get(column) ?? [];
    list.push({ ...box, x: 0, y: 0 });
    columns.set(column, list);
  };
  if (outside) put(0, { key: OUTSIDE });
  const apps = [...topology.apps].sort((a, b) => a.team.localeCompare(b.team) || a.name.localeCompare(b.name));
  for (const app of apps) put(app.layer + shift, { key: app.name, app });
  const deepest = Math.max(0, ...apps.map((a) => a.layer + shift));
  const shown = new Set(apps.map((a) => a.name));
  for (const e of topology.edges) if (e.dangling && !shown.has(e.to)) put(deepest + 1, { key: e.to, ghost: e.to });
  const boxes = new Map<string, Box>();
  let height = 0;
  let width = 0;
  for (const [column, list] of columns) {
    list.forEach((box, row) => {
      if (boxes.has(box.key)) return;
      box.x = 12 + column * (BOX_W + COL_GAP);
      box.y = 12 + row * (BOX_H + ROW_GAP);
      boxes.set(box.key, box);
      width = Math.max(width, box.x + BOX_W + 12);
      height = Math.max(height, box.y + BOX_H + 12);
    });
  }
  return { boxes, width, height };
}

export function TopologyPage() {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const team = params.get("team");
  const [topology, setTopology] = useState<TopologyDto | null>(null);
  const [state, setState] = useState<{ connected: boolean; error?: string }>({ connected: false });
  useEffect(() => {
    setTopology(null);
    const handle = streamTopology(team, setTopology, (connected, error) => setState({ connected, error }));
    return () => handle.close();
  }, [team]);
  const drawn = useMemo(() => (topology ? layout(topology) : null), [topology]);
  const [teams, setTeams] = useState<string[]>([]);
  useEffect(() => {
    // The filter keeps offering every team seen unfiltered.
    if (topology && !team) setTeams(topology.teams.map((x) => x.name));
  }, [topology, team]);

  return (
    <>
      <PageHeader
        title={t("topology.title")}
        sub={
          <span data-testid="topology-live" data-connected={state.connected}>
            {state.connected ? t("topology.live") : (state.error ?? t("topology.connecting"))}
          </span>
        }
        actions={
          <label className="inline-form">
            {t("topology.team")}{" "}
            <select
              value={team ?? ""}
              data-testid="topology-team"
              onChange={(e) => setParams(e.target.value ? { team: e.target.value } : {})}
            >
              <option value="">{t("topology.allTeams")}</option>
              {(teams.length ? teams : team ? [team] : []).map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </label>
        }
      />
      {!topology || !drawn ? (
        state.error && !state.connected ? <div className="alert alert-error">{state.error}</div> : <Loading />
      ) : (
        <div className="stack">
          {topology.engine_error && <div className="alert alert-error">{topology.engine_error}</div>}
          {topology.observed_edges_unavailable && (
            <div className="alert alert-info" data-testid="observed-unavailable">
              {t("topology.observedUnavailable", { reason: topology.observed_edges_unavailable })}
            </div>
          )}
          <section className="card">
            <h2>{t("topology.apps")}</h2>
            {topology.apps.length === 0 ? (
              <Empty>{t("topology.noApps")}</Empty>
            ) : (
              <div className="topology-scroll">
                <div className="topology-canvas" style={{ width: drawn.width, height: drawn.height }} data-testid="topology-graph">
                  <svg width={drawn.width} height={drawn.height} className="topology-edges" aria-hidden="true">
                    <defs>
                      <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" />
                      </marker>
                    </defs>
                    {topology.edges.map((e) => {
                      const from = drawn.boxes.get(e.from ?? OUTSIDE);
                      const to = drawn.boxes.get(e.to);
                      if (!from || !to) return null;
                      const x1 = from.x + BOX_W;
                      const y1 = from.y + BOX_H / 2;
                      const x2 = to.x;
                      const y2 = to.y + BOX_H / 2;
                      const mid = (x1 + x2) / 2;
                      return (
                        <g key={`${e.from}->${e.to}:${e.kind}`} className={`edge edge-${e.kind}${e.dangling ? " edge-dangling" : ""}`}>
                          <path d={`M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`} markerEnd="url(#arrow)" />
                          {e.kind === "observed" && (
                            <text x={mid} y={(y1 + y2) / 2 + 14} textAnchor="middle" data-testid="edge-observed" data-from={e.from} data-to={e.to}>
                              {t("topology.edgeObserved", {
                                n: (e.connections_per_minute ?? 0).toFixed(1),
                                open: e.open_connections ?? 0,
                                ports: (e.ports ?? []).join(", "),
                              })}
                            </text>
                          )}
                          {e.kind === "traffic" && (
                            <text x={mid} y={(y1 + y2) / 2 - 6} textAnchor="middle" data-testid="edge-traffic" data-to={e.to}>
                              {e.requests_per_second != null
                                ? t("topology.edgeRate", {
                                    rps: e.requests_per_second.toFixed(1),
                                    errors: (e.error_percent ?? 0).toFixed(1),
                                    p95: e.latency_p95_ms != null ? e.latency_p95_ms.toFixed(1) : "–",
                                  })
                                : t("topology.edgeText", {
                                    n: e.requests ?? 0,
                                    errors: (e.error_percent ?? 0).toFixed(1),
                                    p99: e.latency_p99_ms ?? "–",
                                  })}
                            </text>
                          )}
                        </g>
                      );
                    })}
                  </svg>
                  {[...drawn.boxes.values()].map((box) => (
                    <div
                      key={box.key}
                      className={`topology-box${box.app ? ` health-${box.app.health}` : " topology-ghost"}`}
                      style={{ left: box.x, top: box.y, width: BOX_W, height: BOX_H }}
                      data-testid={box.app ? "topology-app" : "topology-other"}
                      data-app={box.app?.name}
                      data-health={box.app?.health}
                    >
                      {box.app ? (
                        <AppBox app={box.app} />
                      ) : box.ghost ? (
                        <span className="muted small">{t("topology.notShown", { name: box.ghost })}</span>
                      ) : (
                        <strong>{t("topology.outside")}</strong>
                      )}
                    </div>
                  ))}
                </div>
                <p className="muted small topology-legend" data-testid="topology-legend">
                  <span className="legend-declared">{t("topology.legendDeclared")}</span>
                  <span className="legend-observed">{t("topology.legendObserved")}</span>
                  <span className="legend-traffic">{t("topology.legendTraffic")}</span>
                </p>
              </div>
            )}
          </section>
          <section className="card">
            <h2>{t("topology.teams")}</h2>
            <div className="table-wrap">
              <table className="table" data-testid="topology-teams">
                <thead>
                  <tr>
                    <th>{t("field.team")}</th>
                    <th>{t("usage.cpu")}</th>
                    <th>{t("usage.memory")}</th>
                    <th>{t("apps.instances")}</th>
                  </tr>
                </thead>
                <tbody>
                  {topology.teams.map((x) => (
                    <tr key={x.name} data-team={x.name}>
                      <td>
                        <Link to={`/teams/${x.name}`}>{x.name}</Link>
                      </td>
                      <td className="num">
                        {formatCpu(x.usage.cpu_millis)} / {x.quota.cpu_millis != null ? formatCpu(x.quota.cpu_millis) : "∞"}
                      </td>
                      <td className="num">
                        {formatBytes(x.usage.memory_bytes)} / {x.quota.memory_bytes != null ? formatBytes(x.quota.memory_bytes) : "∞"}
                      </td>
                      <td className="num" data-testid="team-instances">
                        {x.usage.instances} / {x.quota.instances ?? "∞"}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>
          <section className="card">
            <h2>{t("topology.placement")}</h2>
            {topology.datacenters.length === 0 && <Empty>{t("topology.noInstances")}</Empty>}
            {topology.datacenters.map((dc) => (
              <div key={dc.name} className="topology-dc" data-testid="topology-datacenter" data-datacenter={dc.name}>
                <h3>{t("topology.datacenter", { name: dc.name })}</h3>
                {dc.nodes.map((node) => (
                  <div key={node.name} className={`topology-node node-${node.status}`} data-testid="topology-node" data-node={node.name}>
                    <div className="topology-node-head">
                      <strong>{node.name}</strong>{" "}
                      <Badge tone={node.status === "ok" ? "ok" : node.status === "low" ? "bad" : "muted"}>
                        <span data-testid="topology-node-status">{t(`topology.node.${node.status}` as Key)}</span>
                      </Badge>{" "}
                      {node.zone && <span className="muted small">{t("topology.zone", { zone: node.zone })} · </span>}
                      <span className="muted small">{t("topology.instancesOn", { n: node.instances.length })}</span>
                    </div>
                    <div className="topology-chips">
                      {node.instances.map((i) => (
                        <Link
                          key={i.instance}
                          to={`/apps/${i.app}`}
                          className={`topology-chip${i.ready ? " ready" : ""}`}
                          data-instance={i.instance}
                          title={i.ready ? t("instance.ready") : t("instance.notReady")}
                        >
                          {i.instance}
                        </Link>
                      ))}
                    </div>
                  </div>
                ))}
              </div>
            ))}
          </section>
        </div>
      )}
    </>
  );
}

function AppBox({ app }: { app: TopologyAppDto }) {
  const { t } = useI18n();
  const limits = [
    app.cpu_limit_millis != null ? formatCpu(app.cpu_limit_millis) : null,
    app.memory_limit_bytes != null ? formatBytes(app.memory_limit_bytes) : null,
  ]
    .filter(Boolean)
    .join(" · ");
  return (
    <>
      <div className="topology-box-head">
        <Link to={`/apps/${app.name}`} className="mono">
          {app.name}
        </Link>
        <Badge tone={healthTone[app.health as Health] ?? "muted"}>{t(`health.${app.health}` as Key)}</Badge>
      </div>
      <div className="small topology-line">
        <span data-testid="topology-count">{t("topology.count", { ready: app.ready_instances, n: app.replicas })}</span> ·{" "}
        <span className="muted">{app.team}</span> ·{" "}
        <span data-testid="topology-exposure">{app.external ? t("topology.external") : t("topology.internal")}</span>
      </div>
      <div className="small muted topology-line">
        {t("topology.use", { cpu: formatCpu(app.cpu_millis), memory: formatBytes(app.memory_bytes) })}
      </div>
      {limits && <div className="small muted topology-line">{t("topology.limits", { limits })}</div>}
      <div className="small topology-flags">
        {app.rollout.phase === "progressing" && <Badge tone="info">{t("topology.rollingOut", { revision: app.rollout.revision })}</Badge>}
        {app.rollout.canary && <Badge tone="info">{t("topology.canary")}</Badge>}
        {app.draining_instances > 0 && (
          <span data-testid="topology-draining">
            <Badge tone="warn">{t("topology.draining", { n: app.draining_instances })}</Badge>
          </span>
        )}
        {app.idle && <Badge tone="muted">{t("app.idle")}</Badge>}
        {app.autoscale && (
          <Badge tone="muted">{t("topology.autoscaled", { min: app.autoscale.min_instances, max: app.autoscale.max_instances })}</Badge>
        )}
      </div>
    </>
  );
}
