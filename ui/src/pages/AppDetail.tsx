// One app: overview (rollout progress, instances with their CPU and memory use, spec),
// revisions with a diff between any two and rollback, deploying new settings, the live events
// timeline, live logs, and a terminal in a running instance (members and owners). Each tab is
// its own URL; the app refreshes every two seconds while the page is open.
import { lazy, Suspense, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useParams, useSearchParams } from "react-router";
import {
  api,
  ApiError,
  call,
  type AppChanges,
  type AppDto,
  type EventDto,
  type RevisionDto,
  type TemplateDto,
} from "../api/client";
import { streamEvents, streamLogs } from "../api/stream";
import { AppLinks, CpuUse, HealthBadge, InstanceBadge, MemoryUse, RolloutBadge } from "../components/apps";
import { Autoscaling } from "../components/autoscale";
import { MetricsCharts } from "../components/charts";
import { EnvEditor, EnvList, envForms, envOf, sameNames, SensitiveValue } from "../components/env";
import { eventKindLabel, eventMessage, rolloutMessage } from "../components/events";
import { ProbeFields, ProbeSummary, probeBody, probeForm, sameProbe } from "../components/probes";
import { SecretRefList, secretRefForms, secretRefsBody, sameSecretRefs, SecretRefsEditor } from "../components/secrets";
import { DeleteVolumesChoice, MountList, mountForms, mountsBody, sameMounts, VolumeMountsEditor } from "../components/volumes";
import {
  Badge,
  Empty,
  ErrorBox,
  Field,
  formatBytes,
  formatCpu,
  FormError,
  Loaded,
  Loading,
  PageHeader,
  Tabs,
  Time,
  useAction,
  useAsync,
  useConfirm,
  useToast,
  type Async,
} from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

// xterm.js is only loaded when the Terminal tab opens.
const AppTerminal = lazy(() => import("../components/terminal").then((m) => ({ default: m.AppTerminal })));

type Tab = "overview" | "revisions" | "deploy" | "metrics" | "events" | "logs" | "terminal";

export function AppDetailPage() {
  const { name = "" } = useParams();
  const { t } = useI18n();
  const location = useLocation();
  const base = `/apps/${name}`;
  const rest = location.pathname.slice(base.length).replace(/^\//, "");
  const tab: Tab = (["revisions", "deploy", "metrics", "events", "logs", "terminal"] as const).find((x) => rest.startsWith(x)) ?? "overview";
  const app = useAsync(() => call(api.GET("/api/v1/apps/{name}", { params: { path: { name } } })), [name], 2000);
  const { roleIn } = useSession();
  const role = app.data ? roleIn(app.data.team) : null;
  const canWrite = role === "owner" || role === "member";

  if (app.data === undefined) {
    return app.error ? <ErrorBox error={app.error} onRetry={() => void app.reload()} /> : <Loading />;
  }
  const a = app.data;
  return (
    <>
      <PageHeader
        title={
          <>
            <span data-testid="app-name">{a.name}</span> <HealthBadge app={a} />
          </>
        }
        sub={
          <>
            {t("field.team")}: <Link to={`/teams/${a.team}`}>{a.team}</Link> · {t("apps.revision")} #{a.current_revision}{" "}
            <RolloutBadge rollout={a.rollout} /> · {t("apps.instances")} {a.ready_instances}/{a.replicas}
            {a.idle && (
              <>
                {" "}
                <span data-testid="app-idle">
                  <Badge tone="muted" title={t("app.idleTitle", { n: a.idle.replicas })}>
                    {t("app.idle")}
                  </Badge>
                </span>
              </>
            )}
          </>
        }
        actions={canWrite && <AppActions app={a} onChange={(d) => app.setData(d)} />}
      />
      {app.error && <div className="alert alert-warn">{t("common.staleData", { message: app.error.message })}</div>}
      <Tabs
        items={[
          { to: base, label: t("app.tab.overview"), active: tab === "overview" },
          { to: `${base}/revisions`, label: t("app.tab.revisions"), active: tab === "revisions" },
          ...(canWrite ? [{ to: `${base}/deploy`, label: t("app.tab.deploy"), active: tab === "deploy" }] : []),
          { to: `${base}/metrics`, label: t("app.tab.metrics"), active: tab === "metrics" },
          { to: `${base}/events`, label: t("app.tab.events"), active: tab === "events" },
          { to: `${base}/logs`, label: t("app.tab.logs"), active: tab === "logs" },
          ...(canWrite ? [{ to: `${base}/terminal`, label: t("app.tab.terminal"), active: tab === "terminal" }] : []),
        ]}
      />
      {tab === "overview" && (
        <Overview app={a} canWrite={canWrite} onChange={(d) => app.setData(d)} onRefresh={() => void app.reload()} />
      )}
      {tab === "revisions" && <Revisions app={app} canWrite={canWrite} />}
      {tab === "deploy" && <Deploy app={a} onDeployed={(d) => app.setData(d)} />}
      {tab === "metrics" && (
        <section className="card" data-testid="app-metrics">
          <h2>{t("charts.title")}</h2>
          <MetricsCharts subject={{ kind: "app", name: a.name }} />
        </section>
      )}
      {tab === "events" && <Events app={a.name} />}
      {tab === "logs" && <Logs app={a} />}
      {tab === "terminal" && (
        <Suspense fallback={<Loading />}>
          <AppTerminal app={a} canExec={canWrite} />
        </Suspense>
      )}
    </>
  );
}

function AppActions({ app, onChange }: { app: AppDto; onChange: (a: AppDto) => void }) {
  const { t } = useI18n();
  const [replicas, setReplicas] = useState(String(app.replicas));
  const action = useAction();
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const last = useRef(app.replicas);
  useEffect(() => {
    // Follow the server's count unless the user is editing it.
    if (last.current !== app.replicas) {
      last.current = app.replicas;
      setReplicas(String(app.replicas));
    }
  }, [app.replicas]);
  const scale = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const a = await call(
        api.POST("/api/v1/apps/{name}/scale", { params: { path: { name: app.name } }, body: { replicas: Number(replicas) } }),
      );
      onChange(a);
      toast(t("app.scaled", { name: app.name, n: a.replicas }));
    });
  };
  const remove = async () => {
    const volumes = app.template.volumes.map((m) => m.name);
    let deleteVolumes = false;
    const ok = await confirm({
      title: t("app.deleteTitle", { name: app.name }),
      body: (
        <>
          <p>{t("app.deleteBody")}</p>
          {volumes.length > 0 && <DeleteVolumesChoice team={app.team} names={volumes} onChange={(yes) => (deleteVolumes = yes)} />}
        </>
      ),
      confirm: t("common.delete"),
      danger: true,
      typeToConfirm: app.name,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(
        api.DELETE("/api/v1/apps/{name}", {
          params: { path: { name: app.name }, query: deleteVolumes ? { delete_volumes: true } : undefined },
        }),
      );
      const list = volumes.map((v) => `${app.team}/${v}`).join(", ");
      toast(
        volumes.length === 0
          ? t("app.deleted", { name: app.name })
          : t(deleteVolumes ? "app.deletedWithVolumes" : "app.deletedVolumesKept", { name: app.name, volumes: list }),
      );
      navigate("/apps");
    });
  };
  return (
    <div className="app-actions">
      <form onSubmit={scale} className="inline-form" aria-label={t("app.scale")}>
        <label htmlFor="scale-replicas">{t("app.replicas")}</label>
        <input
          id="scale-replicas"
          name="replicas"
          type="number"
          min={0}
          className="input-narrow"
          value={replicas}
          disabled={app.autoscale != null}
          onChange={(e) => setReplicas(e.target.value)}
          aria-invalid={action.error?.field === "replicas" || undefined}
        />
        <button
          type="submit"
          className="btn"
          disabled={action.busy || replicas === String(app.replicas) || app.autoscale != null}
          title={app.autoscale != null ? t("app.autoscaled") : undefined}
        >
          {t("app.scale")}
        </button>
      </form>
      <button type="button" className="btn btn-danger-outline" onClick={remove} disabled={action.busy}>
        {t("common.delete")}
      </button>
      {action.error && (
        <div className="alert alert-error action-error" role="alert">
          {action.error.message}
        </div>
      )}
    </div>
  );
}

function RolloutCard({ app }: { app: AppDto }) {
  const { t } = useI18n();
  const r = app.rollout;
  const pct = r.desired ? Math.round((r.ready / r.desired) * 100) : 100;
  return (
    <section className="card" data-testid="rollout-card">
      <h2>
        {t("app.rollout")} #{r.revision} <RolloutBadge rollout={r} />
      </h2>
      {!r.done && (
        <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={r.desired} aria-valuenow={r.ready}>
          <div style={{ width: pct + "%" }} />
        </div>
      )}
      <dl className="facts">
        <dt>{t("rollout.ready")}</dt>
        <dd>
          {r.ready}/{r.desired}
        </dd>
        <dt>{t("rollout.updated")}</dt>
        <dd>{r.updated}</dd>
        <dt>{t("rollout.old")}</dt>
        <dd>{r.old}</dd>
        {r.failed_revision != null && (
          <>
            <dt>{t("rollout.failedRevision")}</dt>
            <dd>#{r.failed_revision}</dd>
          </>
        )}
        <dt>{t("rollout.started")}</dt>
        <dd>
          <Time value={r.started_at} />
        </dd>
        {r.finished_at && (
          <>
            <dt>{t("rollout.finished")}</dt>
            <dd>
              <Time value={r.finished_at} />
            </dd>
          </>
        )}
      </dl>
      <p className="rollout-message" data-testid="rollout-message" title={r.message}>
        {rolloutMessage(t, app)}
      </p>
    </section>
  );
}

function Overview({
  app,
  canWrite,
  onChange,
  onRefresh,
}: {
  app: AppDto;
  canWrite: boolean;
  onChange: (a: AppDto) => void;
  onRefresh: () => void;
}) {
  const { t } = useI18n();
  return (
    <div className="stack">
      {app.engine_error && <div className="alert alert-error">{app.engine_error}</div>}
      <RolloutCard app={app} />
      <Routes app={app} canWrite={canWrite} onChange={onChange} />
      {!app.internal && <Certificates app={app} canWrite={canWrite} />}
      {app.traffic && <Traffic app={app} />}
      <Autoscaling app={app} canWrite={canWrite} onChange={onRefresh} />
      <section className="card">
        <h2>{t("app.instances")}</h2>
        {app.instances.length === 0 ? (
          <Empty>{t("app.noInstances")}</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="instances-table">
              <thead>
                <tr>
                  <th>{t("field.name")}</th>
                  <th>{t("instance.state")}</th>
                  <th>{t("apps.revision")}</th>
                  <th>{t("usage.cpu")}</th>
                  <th>{t("usage.memory")}</th>
                  <th className="hide-narrow">{t("instance.address")}</th>
                  <th className="hide-narrow">{t("instance.node")}</th>
                  <th>{t("instance.restarts")}</th>
                  <th className="hide-narrow">{t("instance.started")}</th>
                  <th className="hide-narrow">{t("instance.lastFailure")}</th>
                  <th>
                    <span className="sr-only">{t("instance.logs")}</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {app.instances.map((i) => (
                  <tr key={i.container_id || i.name} data-instance={i.name} data-ready={i.ready}>
                    <td className="mono">{i.name}</td>
                    <td>
                      <InstanceBadge instance={i} />
                      {i.backoff_until && (
                        <div className="muted small">
                          {t("instance.backoff")} <Time value={i.backoff_until} />
                        </div>
                      )}
                    </td>
                    <td>#{i.revision}</td>
                    <td className="num" data-testid="instance-cpu">
                      <CpuUse
                        now={i.usage?.cpu_millis}
                        avg={i.usage?.cpu_millis_avg_1m}
                        limit={i.revision === app.current_revision ? app.template.cpu_millis : null}
                      />
                    </td>
                    <td className="num" data-testid="instance-memory">
                      <MemoryUse
                        bytes={i.usage?.memory_bytes}
                        limit={
                          i.revision === app.current_revision && app.template.memory_bytes
                            ? i.usage?.memory_limit_bytes
                            : null
                        }
                      />
                    </td>
                    <td className="hide-narrow mono">{i.address ?? "–"}</td>
                    <td className="hide-narrow">{i.node}</td>
                    <td className="num">{i.restarts}</td>
                    <td className="hide-narrow">
                      <Time value={i.started_at} />
                    </td>
                    <td className="hide-narrow small ellipsis" title={i.last_probe_failure ?? ""}>
                      {i.last_probe_failure ?? (i.exit_code != null ? t("instance.exitCode", { code: i.exit_code }) : "–")}
                    </td>
                    <td>
                      <Link
                        className="btn btn-small"
                        to={`/apps/${app.name}/logs?instance=${encodeURIComponent(i.name)}`}
                        aria-label={t("instance.logsOf", { name: i.name })}
                        data-testid="instance-logs"
                      >
                        {t("instance.logs")}
                      </Link>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <section className="card">
        <h2>{t("app.spec")}</h2>
        <Spec app={app} canWrite={canWrite} />
      </section>
    </div>
  );
}

/**
 * The app's TLS certificates, one per host: uploaded (PEM, checked by the server against the
 * host and the key) or ordered over ACME and renewed by Berth. Keys are never shown again.
 */
function Certificates({ app, canWrite }: { app: AppDto; canWrite: boolean }) {
  const { t } = useI18n();
  const toast = useToast();
  const confirm = useConfirm();
  const action = useAction();
  const list = useAsync(
    () => call(api.GET("/api/v1/apps/{name}/certificates", { params: { path: { name: app.name } } })),
    [app.name],
  );
  const hosts = [...new Set(app.domains.map((d) => d.host))];
  const [host, setHost] = useState(hosts[0] ?? "");
  const [certificate, setCertificate] = useState("");
  const [key, setKey] = useState("");
  const [open, setOpen] = useState(false);
  const upload = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await call(
        api.PUT("/api/v1/apps/{name}/certificates/{host}", {
          params: { path: { name: app.name, host } },
          body: { certificate, private_key: key },
        }),
      );
      setCertificate("");
      setKey("");
      setOpen(false);
      toast(t("certs.uploaded", { host }));
      await list.reload();
    });
  };
  const order = (target: string) =>
    void action.run(async () => {
      await call(api.POST("/api/v1/apps/{name}/certificates/{host}/acme", { params: { path: { name: app.name, host: target } } }));
      toast(t("certs.ordered", { host: target }));
      await list.reload();
    });
  const remove = async (target: string) => {
    const ok = await confirm({ title: t("certs.deleteConfirm", { host: target }), confirm: t("common.delete"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/apps/{name}/certificates/{host}", { params: { path: { name: app.name, host: target } } }));
      await list.reload();
    });
  };
  const readFile = (set: (text: string) => void) => (e: React.ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (file) void file.text().then(set);
  };
  return (
    <section className="card" data-testid="app-certificates">
      <div className="card-head">
        <h2>{t("certs.title")}</h2>
        {canWrite && !open && (
          <button type="button" className="btn btn-small" onClick={() => setOpen(true)} data-testid="upload-certificate">
            {t("certs.upload")}
          </button>
        )}
      </div>
      {!open && <FormError error={action.error} fields={[]} />}
      <Loaded state={list}>
        {(certs) =>
          certs.length === 0 ? (
            <Empty>{t("certs.none")}</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="certificates-table">
                <thead>
                  <tr>
                    <th>{t("certs.host")}</th>
                    <th>{t("certs.source")}</th>
                    <th>{t("certs.expires")}</th>
                    <th className="hide-narrow">{t("certs.names")}</th>
                    {canWrite && (
                      <th>
                        <span className="sr-only">{t("common.delete")}</span>
                      </th>
                    )}
                  </tr>
                </thead>
                <tbody>
                  {certs.map((c) => (
                    <tr key={c.host} data-host={c.host}>
                      <td className="mono">{c.host}</td>
                      <td>{c.source === "acme" ? t("certs.acme") : t("certs.uploadedSource")}</td>
                      <td>
                        <Badge tone={c.days_left < 0 ? "bad" : c.days_left < 14 ? "warn" : "ok"}>
                          {c.days_left < 0 ? t("certs.expired") : t("certs.daysLeft", { n: c.days_left })}
                        </Badge>{" "}
                        <Time value={c.not_after} />
                      </td>
                      <td className="hide-narrow mono small">{c.names.join(", ")}</td>
                      {canWrite && (
                        <td>
                          <button type="button" className="btn btn-small btn-danger" onClick={() => void remove(c.host)}>
                            {t("common.delete")}
                          </button>
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
      {open && (
        <form className="form" onSubmit={upload} data-testid="certificate-form">
          <FormError error={action.error} fields={["certificate", "private_key", "domain"]} />
          <Field label={t("certs.host")} name="domain" error={action.error}>
            {(p) => (
              <select {...p} value={host} onChange={(e) => setHost(e.target.value)}>
                {hosts.map((h) => (
                  <option key={h} value={h}>
                    {h}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label={t("certs.chain")} name="certificate" error={action.error} hint={t("certs.chainHint")}>
            {(p) => (
              <>
                <textarea {...p} rows={4} value={certificate} onChange={(e) => setCertificate(e.target.value)} className="mono" spellCheck={false} />
                <input type="file" accept=".pem,.crt,.cer" onChange={readFile(setCertificate)} aria-label={t("certs.chainFile")} />
              </>
            )}
          </Field>
          <Field label={t("certs.key")} name="private_key" error={action.error} hint={t("certs.keyHint")}>
            {(p) => (
              <>
                <textarea {...p} rows={4} value={key} onChange={(e) => setKey(e.target.value)} className="mono" spellCheck={false} autoComplete="off" />
                <input type="file" accept=".pem,.key" onChange={readFile(setKey)} aria-label={t("certs.keyFile")} />
              </>
            )}
          </Field>
          <div className="form-actions">
            <button type="submit" className="btn btn-primary" disabled={action.busy}>
              {t("certs.uploadSubmit")}
            </button>
            <button type="button" className="btn" disabled={action.busy || !host} onClick={() => order(host)} data-testid="order-certificate">
              {t("certs.order")}
            </button>
            <button type="button" className="btn" onClick={() => setOpen(false)}>
              {t("common.cancel")}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

/** What the router counted for the app since the server started. */
function Traffic({ app }: { app: AppDto }) {
  const { t } = useI18n();
  const x = app.traffic!;
  const errors = x.connect_failures + x.timeouts + x.broken_responses;
  const ms = (v: number | null | undefined) => (v == null ? "–" : t("duration.ms", { n: v }));
  return (
    <section className="card" data-testid="app-traffic">
      <h2>{t("traffic.title")}</h2>
      <dl className="facts">
        <dt>{t("traffic.requests")}</dt>
        <dd className="num" data-testid="traffic-requests">
          {x.requests}
        </dd>
        <dt>{t("traffic.byClass")}</dt>
        <dd className="num">
          2xx {x.responses["2xx"]} · 3xx {x.responses["3xx"]} · 4xx {x.responses["4xx"]} · 5xx {x.responses["5xx"]}
        </dd>
        <dt>{t("traffic.latency")}</dt>
        <dd className="num">
          p50 ≤ {ms(x.latency_p50_ms)} · p99 ≤ {ms(x.latency_p99_ms)}
        </dd>
        <dt>{t("traffic.bytes")}</dt>
        <dd className="num">
          ↑ {formatBytes(x.request_bytes)} · ↓ {formatBytes(x.response_bytes)}
        </dd>
        <dt>{t("traffic.upstreamErrors")}</dt>
        <dd className="num">
          {errors === 0 ? "0" : t("traffic.errorsText", { connect: x.connect_failures, timeouts: x.timeouts, broken: x.broken_responses })}
        </dd>
        <dt>{t("traffic.inFlight")}</dt>
        <dd className="num">{x.in_flight}</dd>
      </dl>
    </section>
  );
}

/** The custom domains of `app`, one per line, as the form edits them. */
function domainsText(app: AppDto): string {
  return app.domains
    .filter((d) => !d.default)
    .map((d) => d.domain)
    .join("\n");
}

/**
 * Where the app answers: its domains as links, or "internal". Owners and members change the
 * custom domains and whether the app is internal here; that moves traffic without a revision.
 */
function Routes({ app, canWrite, onChange }: { app: AppDto; canWrite: boolean; onChange: (a: AppDto) => void }) {
  const { t } = useI18n();
  const toast = useToast();
  const action = useAction();
  const [editing, setEditing] = useState(false);
  const [domains, setDomains] = useState(domainsText(app));
  const [internal, setInternal] = useState(app.internal);
  const [redirect, setRedirect] = useState(app.https_redirect);
  const edit = () => {
    setDomains(domainsText(app));
    setInternal(app.internal);
    setRedirect(app.https_redirect);
    setEditing(true);
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const list = domains
        .split("\n")
        .map((x) => x.trim())
        .filter(Boolean);
      const body: AppChanges = { internal, domains: internal ? [] : list, https_redirect: redirect };
      const d = await call(api.POST("/api/v1/apps/{name}/deploy", { params: { path: { name: app.name } }, body }));
      onChange(d);
      setEditing(false);
      toast(t("routes.saved"));
    });
  };
  return (
    <section className="card" data-testid="app-routes">
      <div className="card-head">
        <h2>{t("routes.title")}</h2>
        {canWrite && !editing && (
          <button type="button" className="btn btn-small" onClick={edit} data-testid="edit-routes">
            {t("routes.edit")}
          </button>
        )}
      </div>
      {!editing && <AppLinks app={app} />}
      {!editing && app.tcp_ports.length > 0 && (
        <ul className="links" data-testid="app-tcp-ports">
          {app.tcp_ports.map((p) => (
            <li key={p.host_port} className="mono">
              {t("routes.tcpPort", { address: p.address, port: p.container_port })}
            </li>
          ))}
        </ul>
      )}
      {!editing && app.internal && <p className="muted small">{t("routes.internalHint", { name: app.name })}</p>}
      {editing && (
        <form className="form" onSubmit={save} data-testid="routes-form">
          <FormError error={action.error} fields={["domains", "internal", "tcp_ports"]} />
          <label className="check">
            <input type="checkbox" checked={internal} onChange={(e) => setInternal(e.target.checked)} name="internal" />{" "}
            {t("routes.internalLabel")}
          </label>
          <label className="check">
            <input type="checkbox" checked={redirect} disabled={internal} onChange={(e) => setRedirect(e.target.checked)} name="https_redirect" />{" "}
            {t("routes.httpsRedirect")}
          </label>
          <Field label={t("routes.domains")} name="domains" error={action.error} hint={t("routes.domainsHint")}>
            {(p) => (
              <textarea
                {...p}
                rows={3}
                value={domains}
                disabled={internal}
                onChange={(e) => setDomains(e.target.value)}
                className="mono"
                spellCheck={false}
                placeholder="shop.example.com&#10;shop.example.com/api"
              />
            )}
          </Field>
          <div className="form-actions">
            <button type="submit" className="btn btn-primary" disabled={action.busy}>
              {t("routes.save")}
            </button>
            <button type="button" className="btn" onClick={() => setEditing(false)}>
              {t("common.cancel")}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

function Spec({ app, canWrite }: { app: AppDto; canWrite: boolean }) {
  const { t } = useI18n();
  const tp = app.template;
  const s = app.strategy;
  return (
    <dl className="facts facts-wide" data-testid="app-spec">
      <dt>{t("field.image")}</dt>
      <dd className="mono">{tp.image}</dd>
      {tp.command.length > 0 && (
        <>
          <dt>{t("field.command")}</dt>
          <dd className="mono">{tp.command.join(" ")}</dd>
        </>
      )}
      {tp.args.length > 0 && (
        <>
          <dt>{t("field.args")}</dt>
          <dd className="mono">{tp.args.join(" ")}</dd>
        </>
      )}
      <dt>{t("field.port")}</dt>
      <dd>{tp.port}</dd>
      <dt>{t("field.cpu")}</dt>
      <dd>{tp.cpu_millis ? formatCpu(tp.cpu_millis) : t("quota.unlimited")}</dd>
      <dt>{t("field.memory")}</dt>
      <dd>{tp.memory_bytes ? formatBytes(tp.memory_bytes) : t("quota.unlimited")}</dd>
      <dt>{t("field.env")}</dt>
      <dd data-testid="app-env">
        <EnvList env={tp.env} sensitive={tp.sensitive_env} canReveal={canWrite} />
      </dd>
      <dt>{t("field.secrets")}</dt>
      <dd data-testid="app-secrets">
        <SecretRefList team={app.team} secrets={tp.secrets} />
      </dd>
      <dt>{t("field.readiness")}</dt>
      <dd className="mono" data-testid="app-readiness">
        <ProbeSummary probe={tp.readiness} port={tp.port} />
      </dd>
      <dt>{t("field.liveness")}</dt>
      <dd className="mono" data-testid="app-liveness">
        <ProbeSummary probe={tp.liveness} port={tp.port} />
      </dd>
      <dt>{t("field.volumes")}</dt>
      <dd data-testid="app-volumes">
        <MountList team={app.team} mounts={tp.volumes} />
      </dd>
      <dt>{t("field.strategy")}</dt>
      <dd data-testid="app-strategy" data-kind={s.kind ?? "rolling"}>
        {s.kind === "recreate"
          ? t("app.strategyRecreate", { deadline: Math.round((s.progress_deadline_ms ?? 60000) / 1000) })
          : t("app.strategyText", {
              surge: s.max_surge ?? 1,
              unavailable: s.max_unavailable ?? 0,
              deadline: Math.round((s.progress_deadline_ms ?? 60000) / 1000),
            })}
      </dd>
      <dt>{t("field.dependencies")}</dt>
      <dd>{app.dependencies.length ? app.dependencies.join(", ") : "–"}</dd>
      <dt>{t("field.nodeConstraints")}</dt>
      <dd data-testid="app-node-constraints" className={tp.node_constraints.length ? "mono" : undefined}>
        {tp.node_constraints.length ? tp.node_constraints.join(" · ") : t("app.anyNode")}
      </dd>
      {Object.keys(tp.labels).length > 0 && (
        <>
          <dt>{t("field.labels")}</dt>
          <dd>
            <ul className="kv">
              {Object.entries(tp.labels).map(([k, v]) => (
                <li key={k} className="mono">
                  {k}={v}
                </li>
              ))}
            </ul>
          </dd>
        </>
      )}
      <dt>{t("apps.created")}</dt>
      <dd>
        <Time value={app.created_at} />
      </dd>
    </dl>
  );
}

/** Flattens a template to `path → text` rows for the diff. */
function flatten(tp: TemplateDto): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (prefix: string, v: unknown) => {
    if (v === null || v === undefined) {
      out.set(prefix, "–");
    } else if (Array.isArray(v)) {
      // A list of objects (the mounts) row by row, `volumes[0].path`; of plain values, one line.
      if (v.some((x) => x !== null && typeof x === "object")) v.forEach((x, i) => walk(`${prefix}[${i}]`, x));
      else out.set(prefix, v.length ? v.map(String).join(" ") : "–");
    } else if (typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.length === 0) out.set(prefix, "–");
      for (const [k, x] of entries) walk(prefix ? `${prefix}.${k}` : k, x);
    } else {
      out.set(prefix, String(v));
    }
  };
  walk("", tp);
  return out;
}

function Revisions({ app, canWrite }: { app: Async<AppDto>; canWrite: boolean }) {
  const { t } = useI18n();
  const a = app.data!;
  const [params, setParams] = useSearchParams();
  const revisions = useAsync(
    () => call(api.GET("/api/v1/apps/{name}/revisions", { params: { path: { name: a.name } } })),
    [a.name, a.latest_revision, a.current_revision],
  );
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const list = revisions.data ? [...revisions.data].sort((x, y) => y.number - x.number) : [];
  const current = a.current_revision;
  // By default the current revision against the one before it, or, when it is the oldest (after
  // a rollback to it), against the newest other one: always two distinct revisions.
  const others = list.filter((r) => r.number !== current);
  const other = (others.find((r) => r.number < current) ?? others[0])?.number;
  const selA = Number(params.get("a") ?? other ?? current);
  const selB = Number(params.get("b") ?? current);
  const pick = (k: "a" | "b", n: number) => {
    const next = new URLSearchParams(params);
    const o = k === "a" ? "b" : "a";
    const otherSel = k === "a" ? selB : selA;
    next.set(k, String(n));
    // Choosing the other side's revision swaps the two, so they never collapse into one.
    next.set(o, String(n === otherSel ? (k === "a" ? selA : selB) : otherSel));
    setParams(next, { replace: true });
  };
  const rollback = async (r: RevisionDto) => {
    // Going back to a revision newer than the current one (after a rollback) is a roll-forward.
    const forward = r.number > current;
    const ok = await confirm({
      title: t(forward ? "revisions.rollForwardTitle" : "revisions.rollbackTitle", { name: a.name, n: r.number }),
      body: (
        <p>
          {t("revisions.rollbackBody", { n: r.number })} <code>{r.template.image}</code>
        </p>
      ),
      confirm: t(forward ? "revisions.rollForward" : "revisions.rollback"),
      danger: !forward,
    });
    if (!ok) return;
    await action.run(async () => {
      const d = await call(
        api.POST("/api/v1/apps/{name}/rollback", {
          params: { path: { name: a.name } },
          body: { revision: r.number, reason: t(forward ? "revisions.rollForwardReason" : "revisions.rollbackReason") },
        }),
      );
      app.setData(d);
      toast(t(forward ? "revisions.rolledForward" : "revisions.rolledBack", { n: r.number }));
    });
  };
  return (
    <div className="stack">
      {action.error && <ErrorBox error={action.error} />}
      <Loaded state={revisions}>
        {() => (
          <div className="table-wrap">
            <table className="table" data-testid="revisions-table">
              <thead>
                <tr>
                  <th title={t("revisions.compareA")}>{t("revisions.from")}</th>
                  <th title={t("revisions.compareB")}>{t("revisions.to")}</th>
                  <th>#</th>
                  <th>{t("field.image")}</th>
                  <th className="hide-narrow">{t("revisions.reason")}</th>
                  <th className="hide-narrow">{t("revisions.by")}</th>
                  <th>{t("apps.created")}</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {list.map((r) => (
                  <tr key={r.number} data-revision={r.number}>
                    <td>
                      <input
                        type="radio"
                        name="rev-a"
                        aria-label={t("revisions.compareA") + " #" + r.number}
                        checked={selA === r.number}
                        onChange={() => pick("a", r.number)}
                      />
                    </td>
                    <td>
                      <input
                        type="radio"
                        name="rev-b"
                        aria-label={t("revisions.compareB") + " #" + r.number}
                        checked={selB === r.number}
                        onChange={() => pick("b", r.number)}
                      />
                    </td>
                    <td className="num">
                      {r.number} {r.current && <Badge tone="ok">{t("revisions.current")}</Badge>}{" "}
                      {a.stable_revision === r.number && !r.current && <Badge tone="info">{t("revisions.stable")}</Badge>}
                    </td>
                    <td className="mono ellipsis" title={r.template.image}>
                      {r.template.image}
                    </td>
                    <td className="hide-narrow">{r.reason || "–"}</td>
                    <td className="hide-narrow">{r.created_by}</td>
                    <td>
                      <Time value={r.created_at} />
                    </td>
                    <td>
                      {canWrite && !r.current && (
                        <button type="button" className="btn btn-small" onClick={() => rollback(r)} disabled={action.busy}>
                          {t(r.number > current ? "revisions.rollForward" : "revisions.rollback")}
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
      {revisions.data && <Diff list={revisions.data} a={selA} b={selB} sensitive={a.template.sensitive_env} canReveal={canWrite} />}
    </div>
  );
}

/**
 * The fields that differ between revisions `a` and `b`. A variable that is sensitive in either
 * revision or in the app now is shown as the app page shows it (masked, revealed only for those
 * who can deploy): an older revision, from before it was marked, must not give its value away.
 */
function Diff({
  list,
  a,
  b,
  sensitive: current,
  canReveal,
}: {
  list: RevisionDto[];
  a: number;
  b: number;
  sensitive: string[];
  canReveal: boolean;
}) {
  const { t } = useI18n();
  const [all, setAll] = useState(false);
  const ra = list.find((r) => r.number === a);
  const rb = list.find((r) => r.number === b);
  const sensitive = new Set([...current, ...(ra?.template.sensitive_env ?? []), ...(rb?.template.sensitive_env ?? [])]);
  const cell = (field: string, value: string) => {
    const key = field.startsWith("env.") ? field.slice("env.".length) : null;
    return key !== null && sensitive.has(key) && value !== "–" ? <SensitiveValue name={key} value={value} canReveal={canReveal} /> : value;
  };
  const rows = useMemo(() => {
    if (!ra || !rb) return [];
    const fa = flatten(ra.template);
    const fb = flatten(rb.template);
    const keys = [...new Set([...fa.keys(), ...fb.keys()])].sort();
    return keys.map((k) => ({ k, va: fa.get(k) ?? "–", vb: fb.get(k) ?? "–" }));
  }, [ra, rb]);
  if (!ra || !rb) return null;
  const changed = rows.filter((r) => r.va !== r.vb);
  const shown = all ? rows : changed;
  return (
    <section className="card" data-testid="revision-diff">
      <h2>{t("revisions.diffTitle", { a, b })}</h2>
      <label className="check">
        <input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> {t("revisions.showAll")}
      </label>
      {changed.length === 0 && <p className="muted">{t("revisions.same")}</p>}
      {shown.length > 0 && (
        <div className="table-wrap">
          <table className="table diff" key={`${a}-${b}`}>
            <thead>
              <tr>
                <th>{t("revisions.fieldCol")}</th>
                <th>#{a}</th>
                <th>#{b}</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((r) => (
                <tr key={r.k} className={r.va !== r.vb ? "changed" : undefined}>
                  <td className="mono">{r.k}</td>
                  <td className="mono del">{cell(r.k, r.va)}</td>
                  <td className="mono ins">{cell(r.k, r.vb)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Deploy({ app, onDeployed }: { app: AppDto; onDeployed: (a: AppDto) => void }) {
  const { t } = useI18n();
  const navigate = useNavigate();
  const toast = useToast();
  const tp = app.template;
  const initial = useMemo(
    () => ({
      image: tp.image,
      env: envForms(tp),
      port: String(tp.port),
      cpu: tp.cpu_millis ? String(tp.cpu_millis) : "",
      memory: tp.memory_bytes ? String(Math.round(tp.memory_bytes / 1048576)) : "",
      readiness: probeForm(tp.readiness ?? null),
      liveness: probeForm(tp.liveness ?? null),
      volumes: mountForms(tp.volumes),
      secrets: secretRefForms(tp.secrets),
      deadline: String(Math.round((app.strategy.progress_deadline_ms ?? 60000) / 1000)),
      kind: app.strategy.kind ?? "rolling",
      max_surge: String(app.strategy.max_surge ?? 1),
      max_unavailable: String(app.strategy.max_unavailable ?? 0),
      canary_percent: app.strategy.canary?.weight_percent ? String(app.strategy.canary.weight_percent) : "",
      canary_seconds: String(app.strategy.canary?.duration_seconds ?? 300),
      canary_header: app.strategy.canary?.header ? `${app.strategy.canary.header.name}: ${app.strategy.canary.header.value}` : "",
      idle_timeout: app.idle_timeout_seconds ? String(app.idle_timeout_seconds) : "",
      node_constraints: tp.node_constraints.join(" "),
      reason: "",
    }),
    // The form starts from the app as it was when the tab opened.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [app.name],
  );
  const [form, setForm] = useState(initial);
  const action = useAction();
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body: AppChanges = {};
    if (form.image !== initial.image) body.image = form.image;
    void action.run(async () => {
      // Only the variables that changed (null removes one), and the sensitive ones' names
      // only when they changed: they replace the app's.
      const { env, sensitive } = envOf(form.env, t);
      const changes: Record<string, string | null> = {};
      for (const [k, v] of Object.entries(env)) if (tp.env[k] !== v) changes[k] = v;
      for (const k of Object.keys(tp.env)) if (!(k in env)) changes[k] = null;
      if (Object.keys(changes).length) body.env = changes;
      if (!sameNames(sensitive, tp.sensitive_env)) body.sensitive_env = sensitive;
      if (form.port !== initial.port) body.port = Number(form.port);
      if (form.cpu !== initial.cpu) body.cpu_millis = form.cpu ? Number(form.cpu) : 0;
      if (form.memory !== initial.memory) body.memory_bytes = form.memory ? Number(form.memory) * 1048576 : 0;
      if (!sameProbe(form.readiness, initial.readiness)) body.readiness = probeBody(form.readiness);
      if (!sameProbe(form.liveness, initial.liveness)) body.liveness = probeBody(form.liveness);
      // Mounts are sent only when changed: they replace the app's, so a deploy of something
      // else leaves them alone.
      if (!sameMounts(form.volumes, initial.volumes)) body.volumes = mountsBody(form.volumes);
      if (!sameSecretRefs(form.secrets, initial.secrets)) body.secrets = secretRefsBody(form.secrets);
      const strategy: NonNullable<AppChanges["strategy"]> = {};
      if (form.deadline !== initial.deadline) strategy.progress_deadline_ms = Number(form.deadline) * 1000;
      if (form.kind !== initial.kind) strategy.kind = form.kind === "recreate" ? "recreate" : "rolling";
      if (form.max_surge !== initial.max_surge) strategy.max_surge = Number(form.max_surge);
      if (form.max_unavailable !== initial.max_unavailable) strategy.max_unavailable = Number(form.max_unavailable);
      if (
        form.canary_percent !== initial.canary_percent ||
        form.canary_seconds !== initial.canary_seconds ||
        form.canary_header !== initial.canary_header
      ) {
        const header = form.canary_header.trim();
        const colon = header.indexOf(":");
        if (header && colon <= 0) {
          throw new ApiError(400, "invalid_field", t("deploy.badCanaryHeader"), "strategy.canary.header");
        }
        const duration_seconds = Number(form.canary_seconds);
        strategy.canary = header
          ? { header: { name: header.slice(0, colon).trim(), value: header.slice(colon + 1).trim() }, duration_seconds }
          : form.canary_percent
            ? { weight_percent: Number(form.canary_percent), duration_seconds }
            : null;
      }
      if (form.idle_timeout !== initial.idle_timeout) body.idle_timeout_seconds = form.idle_timeout ? Number(form.idle_timeout) : 0;
      // They replace the app's: sent only when changed.
      if (form.node_constraints.trim() !== initial.node_constraints) {
        body.node_constraints = form.node_constraints.split(/[\s,]+/).filter(Boolean);
      }
      if (Object.keys(strategy).length) body.strategy = strategy;
      if (form.reason) body.reason = form.reason;
      if (Object.keys(body).length === 0 || (Object.keys(body).length === 1 && body.reason)) {
        throw new ApiError(400, "no_change", t("deploy.nothingChanged"));
      }
      const d = await call(api.POST("/api/v1/apps/{name}/deploy", { params: { path: { name: app.name } }, body }));
      onDeployed(d);
      // Settings such as the idle timeout create no revision.
      toast(d.latest_revision !== app.latest_revision ? t("deploy.started", { n: d.latest_revision }) : t("deploy.settingsSaved"));
      navigate(`/apps/${app.name}`);
    });
  };
  const fields = ["image", "env", "port", "cpu_millis", "memory_bytes", "readiness", "liveness", "volumes", "secrets", "sensitive_env", "strategy", "idle_timeout_seconds", "node_constraints", "reason"];
  return (
    <form className="card form form-wide" onSubmit={submit} data-testid="deploy-form">
      <h2>{t("deploy.title")}</h2>
      <p className="muted">{t("deploy.help")}</p>
      <FormError error={action.error} fields={fields} />
      <Field label={t("field.image")} name="image" error={action.error}>
        {(p) => <input {...p} required value={form.image} onChange={set("image")} className="mono" />}
      </Field>
      <EnvEditor value={form.env} onChange={(env) => setForm({ ...form, env })} error={action.error} />
      <SecretRefsEditor team={app.team} value={form.secrets} onChange={(secrets) => setForm({ ...form, secrets })} error={action.error} />
      <div className="grid-3">
        <Field label={t("field.port")} name="port" error={action.error}>
          {(p) => <input {...p} type="number" min={1} max={65535} value={form.port} onChange={set("port")} />}
        </Field>
        <Field label={t("field.cpuMillis")} name="cpu_millis" error={action.error}>
          {(p) => <input {...p} type="number" min={0} value={form.cpu} onChange={set("cpu")} />}
        </Field>
        <Field label={t("field.memoryMib")} name="memory_bytes" error={action.error}>
          {(p) => <input {...p} type="number" min={0} value={form.memory} onChange={set("memory")} />}
        </Field>
      </div>
      <ProbeFields role="readiness" value={form.readiness} onChange={(readiness) => setForm({ ...form, readiness })} error={action.error} />
      <ProbeFields role="liveness" value={form.liveness} onChange={(liveness) => setForm({ ...form, liveness })} error={action.error} />
      <VolumeMountsEditor value={form.volumes} onChange={(volumes) => setForm({ ...form, volumes })} error={action.error} />
      <Field label={t("field.rolloutKind")} name="strategy.kind" error={action.error} hint={t("deploy.rolloutKindHint")}>
        {(p) => (
          <select {...p} value={form.kind} onChange={set("kind")}>
            <option value="rolling">{t("deploy.rolling")}</option>
            <option value="recreate">{t("deploy.recreate")}</option>
          </select>
        )}
      </Field>
      <div className="grid-3">
        <Field label={t("field.progressDeadline")} name="strategy.progress_deadline_ms" error={action.error}>
          {(p) => <input {...p} type="number" min={1} value={form.deadline} onChange={set("deadline")} />}
        </Field>
        <Field label={t("field.maxSurge")} name="strategy.max_surge" error={action.error}>
          {(p) => <input {...p} type="number" min={0} value={form.max_surge} onChange={set("max_surge")} />}
        </Field>
        <Field label={t("field.maxUnavailable")} name="strategy.max_unavailable" error={action.error}>
          {(p) => <input {...p} type="number" min={0} value={form.max_unavailable} onChange={set("max_unavailable")} />}
        </Field>
      </div>
      <div className="grid-3">
        <Field
          label={t("field.canaryPercent")}
          name="strategy.canary.weight_percent"
          error={action.error}
          hint={t("deploy.canaryHint")}
        >
          {(p) => <input {...p} type="number" min={1} max={99} value={form.canary_percent} onChange={set("canary_percent")} />}
        </Field>
        <Field label={t("field.canarySeconds")} name="strategy.canary.duration" error={action.error}>
          {(p) => <input {...p} type="number" min={1} value={form.canary_seconds} onChange={set("canary_seconds")} />}
        </Field>
        <Field label={t("field.canaryHeader")} name="strategy.canary.header" error={action.error} hint={t("deploy.canaryHeaderHint")}>
          {(p) => <input {...p} value={form.canary_header} onChange={set("canary_header")} className="mono" placeholder="X-Canary: 1" />}
        </Field>
      </div>
      <Field label={t("field.idleTimeout")} name="idle_timeout_seconds" error={action.error} hint={t("deploy.idleHint")}>
        {(p) => <input {...p} type="number" min={0} value={form.idle_timeout} onChange={set("idle_timeout")} />}
      </Field>
      <Field label={t("field.nodeConstraints")} name="node_constraints" error={action.error} hint={t("deploy.nodeConstraintsHint")}>
        {(p) => <input {...p} value={form.node_constraints} onChange={set("node_constraints")} className="mono" placeholder="disk==ssd zone!=b" />}
      </Field>
      <Field label={t("field.reason")} name="reason" error={action.error}>
        {(p) => <input {...p} value={form.reason} onChange={set("reason")} />}
      </Field>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("deploy.submit")}
        </button>
        <button type="button" className="btn" onClick={() => setForm(initial)}>
          {t("common.reset")}
        </button>
      </div>
    </form>
  );
}

function Events({ app }: { app: string }) {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const warningsOnly = params.get("warnings") === "1";
  const [events, setEvents] = useState<EventDto[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  useEffect(() => {
    let handle: { close(): void } | null = null;
    let cancelled = false;
    setEvents(null);
    call(api.GET("/api/v1/apps/{name}/events", { params: { path: { name: app }, query: { limit: 200 } } }))
      .then((list) => {
        if (cancelled) return;
        setEvents(list);
        const after = list.length ? Math.max(...list.map((e) => e.id)) : 0;
        handle = streamEvents(
          app,
          after,
          (e) => setEvents((xs) => (xs && xs.some((x) => x.id === e.id) ? xs : [...(xs ?? []), e].slice(-1000))),
          (connected, err) => {
            setLive(connected);
            setError(err ?? null);
          },
        );
      })
      .catch((e: Error) => !cancelled && setError(e.message));
    return () => {
      cancelled = true;
      handle?.close();
    };
  }, [app]);
  const shown = (events ?? []).filter((e) => !warningsOnly || e.warning).slice().reverse();
  return (
    <section className="card">
      <div className="card-head">
        <h2>{t("events.title")}</h2>
        <span data-testid="events-live" data-live={live}>
          <Badge tone={live ? "ok" : "muted"}>{live ? t("events.live") : t("events.offline")}</Badge>
        </span>
        <label className="check">
          <input
            type="checkbox"
            checked={warningsOnly}
            onChange={(e) => {
              const next = new URLSearchParams(params);
              if (e.target.checked) next.set("warnings", "1");
              else next.delete("warnings");
              setParams(next, { replace: true });
            }}
          />{" "}
          {t("events.warningsOnly")}
        </label>
      </div>
      {error && <div className="alert alert-warn">{error}</div>}
      {events === null && !error ? (
        <Loading />
      ) : shown.length === 0 ? (
        <Empty>{t("events.empty")}</Empty>
      ) : (
        <ol className="timeline" data-testid="events-timeline">
          {shown.map((e) => (
            <li key={e.id} className={e.warning ? "warning" : undefined} data-kind={e.kind}>
              <div className="timeline-head">
                <span title={e.kind}>
                  <Badge tone={e.warning ? "warn" : "info"}>{eventKindLabel(t, e.kind)}</Badge>
                </span>
                {e.revision != null && <span className="muted">#{e.revision}</span>}
                {e.instance && <span className="mono small">{e.instance}</span>}
                <Time value={e.at} />
              </div>
              <div data-testid="event-message">{eventMessage(t, e)}</div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

const MAX_LOG_LINES = 5000;

function Logs({ app }: { app: AppDto }) {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const instance = params.get("instance") ?? "";
  const [lines, setLines] = useState<string[]>([]);
  const [state, setState] = useState<{ s: "connecting" | "open" | "ended" | "error"; error?: string }>({ s: "connecting" });
  const [paused, setPaused] = useState(false);
  const [run, setRun] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const box = useRef<HTMLPreElement>(null);
  const pending = useRef<string[]>([]);
  useEffect(() => {
    setLines([]);
    setState({ s: "connecting" });
    pending.current = [];
    const flush = setInterval(() => {
      if (pending.current.length && !pausedRef.current) {
        const add = pending.current;
        pending.current = [];
        setLines((ls) => [...ls, ...add].slice(-MAX_LOG_LINES));
      }
    }, 200);
    const handle = streamLogs(
      app.name,
      { instance: instance || undefined, tail: 200 },
      (line) => pending.current.push(line),
      (s, error) => setState({ s, error }),
    );
    return () => {
      clearInterval(flush);
      handle.close();
    };
  }, [app.name, instance, run]);
  useEffect(() => {
    const el = box.current;
    if (el && !paused) el.scrollTop = el.scrollHeight;
  }, [lines, paused]);
  const names = app.instances.map((i) => i.name);
  return (
    <section className="card">
      <div className="card-head">
        <h2>{t("logs.title")}</h2>
        <select
          aria-label={t("logs.instance")}
          value={instance}
          onChange={(e) => {
            const next = new URLSearchParams(params);
            if (e.target.value) next.set("instance", e.target.value);
            else next.delete("instance");
            setParams(next, { replace: true });
          }}
        >
          <option value="">{t("logs.allInstances")}</option>
          {[...new Set([...names, ...(instance ? [instance] : [])])].map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <button type="button" className="btn btn-small" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
          {paused ? t("logs.resume") : t("logs.pause")}
        </button>
        <button type="button" className="btn btn-small" onClick={() => setLines([])}>
          {t("logs.clear")}
        </button>
        <span data-testid="logs-state" data-state={state.s}>
          <Badge tone={state.s === "open" ? "ok" : state.s === "error" ? "bad" : "muted"}>{t(`logs.state.${state.s}`)}</Badge>
        </span>
        {(state.s === "ended" || state.s === "error") && (
          <button type="button" className="btn btn-small" onClick={() => setRun((r) => r + 1)}>
            {t("logs.reconnect")}
          </button>
        )}
      </div>
      {state.error && <div className="alert alert-warn">{state.error}</div>}
      <pre className="logs" ref={box} data-testid="logs" tabIndex={0} aria-label={t("logs.title")}>
        {lines.length === 0 ? <span className="muted">{t("logs.empty")}</span> : lines.join("\n")}
      </pre>
    </section>
  );
}
