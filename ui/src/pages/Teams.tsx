// Teams: their quotas with usage bars and usage over time against them (charts), members and roles, quota requests filed from the team
// page, renaming a team inline (owners and admins), and (for admins) creating teams and setting
// quotas.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, call, type QuotaDto, type TeamDto } from "../api/client";
import { MetricsCharts } from "../components/charts";
import {
  Empty,
  ErrorBox,
  Field,
  formatBytes,
  formatCpu,
  FormError,
  Loaded,
  PageHeader,
  UsageBar,
  useAction,
  useAsync,
  useConfirm,
  useEnumLabel,
  useToast,
} from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { QuotaRequestList } from "./QuotaRequests";

export const ROLES = ["owner", "member", "viewer"] as const;

export function QuotaBars({ team }: { team: TeamDto }) {
  const { t, num } = useI18n();
  return (
    <div className="usage-grid" data-testid="quota-bars">
      <UsageBar label={t("quota.cpu")} used={team.usage.cpu_millis} limit={team.quota.cpu_millis} format={(n) => formatCpu(n)} />
      <UsageBar label={t("quota.memory")} used={team.usage.memory_bytes} limit={team.quota.memory_bytes} format={formatBytes} />
      <UsageBar label={t("quota.instances")} used={team.usage.instances} limit={team.quota.instances} format={num} />
      <UsageBar label={t("quota.registry")} used={team.usage.registry_bytes} limit={team.quota.registry_bytes} format={formatBytes} />
      <UsageBar label={t("quota.volumes")} used={team.usage.volume_bytes ?? 0} limit={team.quota.volume_bytes} format={formatBytes} />
    </div>
  );
}

export function TeamsPage() {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const teams = useAsync(() => call(api.GET("/api/v1/teams")), []);
  const role = useEnumLabel();
  return (
    <>
      <PageHeader title={t("teams.title")} />
      <Loaded state={teams}>
        {(list) =>
          list.length === 0 ? (
            <Empty>{t("teams.empty")}</Empty>
          ) : (
            <div className="cards">
              {list.map((x) => (
                <Link key={x.name} to={`/teams/${x.name}`} className="card card-link" data-team={x.name}>
                  <h3>
                    {x.display_name || x.name} {x.role && <span className="muted small">· {role("role", x.role)}</span>}
                  </h3>
                  <QuotaBars team={x} />
                </Link>
              ))}
            </div>
          )
        }
      </Loaded>
      {isAdmin && <CreateTeam onCreated={() => void teams.reload()} />}
    </>
  );
}

function CreateTeam({ onCreated }: { onCreated: () => void }) {
  const { t } = useI18n();
  const [name, setName] = useState("");
  const [display, setDisplay] = useState("");
  const action = useAction();
  const toast = useToast();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await call(api.POST("/api/v1/teams", { body: { name, display_name: display || null } }));
      toast(t("teams.created", { name }));
      setName("");
      setDisplay("");
      onCreated();
    });
  };
  return (
    <form className="card form" onSubmit={submit}>
      <h2>{t("teams.create")}</h2>
      <FormError error={action.error} fields={["name", "display_name"]} />
      <div className="grid-2">
        <Field label={t("field.name")} name="name" error={action.error}>
          {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label={t("field.displayName")} name="display_name" error={action.error}>
          {(p) => <input {...p} value={display} onChange={(e) => setDisplay(e.target.value)} />}
        </Field>
      </div>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("teams.create")}
        </button>
      </div>
    </form>
  );
}

export function TeamPage() {
  const { team = "" } = useParams();
  const { t } = useI18n();
  const { isAdmin, roleIn } = useSession();
  const data = useAsync(() => call(api.GET("/api/v1/teams/{team}", { params: { path: { team } } })), [team], 5000);
  const role = roleIn(team);
  const canManage = isAdmin || role === "owner";
  const canRequest = role === "owner" || role === "member";
  const [requestsVersion, setRequestsVersion] = useState(0);
  const [renaming, setRenaming] = useState(false);
  const renameButton = useRef<HTMLButtonElement>(null);
  const confirm = useConfirm();
  const navigate = useNavigate();
  const action = useAction();
  const remove = async () => {
    const ok = await confirm({ title: t("teams.deleteTitle", { name: team }), body: t("teams.deleteBody"), confirm: t("common.delete"), danger: true, typeToConfirm: team });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/teams/{team}", { params: { path: { team } } }));
      navigate("/teams");
    });
  };
  return (
    <Loaded state={data}>
      {(x) => (
        <>
          <PageHeader
            title={<span data-testid="team-title">{x.display_name || x.name}</span>}
            sub={
              <>
                {x.display_name && (
                  <>
                    <span className="mono">{x.name}</span> ·{" "}
                  </>
                )}
                <Link to="/teams">← {t("teams.title")}</Link> · <Link to={`/apps?team=${x.name}`}>{t("nav.apps")}</Link> ·{" "}
                <Link to={`/images?q=${x.name}/`}>{t("nav.images")}</Link> ·{" "}
                <Link to={`/volumes?team=${x.name}`}>{t("nav.volumes")}</Link>
                {canManage && (
                  <>
                    {" "}
                    · <Link to={`/audit?team=${x.name}`}>{t("nav.audit")}</Link>
                  </>
                )}
              </>
            }
            actions={
              <>
                {canManage && !renaming && (
                  <button type="button" className="btn" ref={renameButton} onClick={() => setRenaming(true)}>
                    {t("teamName.edit")}
                  </button>
                )}
                {isAdmin && (
                  <button type="button" className="btn btn-danger-outline" onClick={remove}>
                    {t("common.delete")}
                  </button>
                )}
              </>
            }
          />
          {renaming && (
            <DisplayNameEditor
              team={x}
              onDone={(saved) => {
                if (saved) data.setData(saved);
                setRenaming(false);
                // The keyboard returns to the button that opened the editor.
                setTimeout(() => renameButton.current?.focus());
              }}
            />
          )}
          {action.error && <ErrorBox error={action.error} />}
          <div className="stack">
            <section className="card">
              <h2>{t("teams.quota")}</h2>
              <QuotaBars team={x} />
            </section>
            <section className="card" data-testid="team-metrics">
              <h2>{t("charts.title")}</h2>
              <MetricsCharts subject={{ kind: "team", name: x.name }} />
            </section>
            {isAdmin && <QuotaEditor team={x} onSaved={(d) => data.setData(d)} />}
            <Members team={x.name} canManage={canManage} />
            {canRequest && <RequestQuota team={x} onFiled={() => setRequestsVersion((v) => v + 1)} />}
            <section className="card">
              <h2>{t("quotaRequests.title")}</h2>
              <QuotaRequestList team={x.name} status="" version={requestsVersion} onDecided={() => void data.reload()} />
            </section>
          </div>
        </>
      )}
    </Loaded>
  );
}

/** Inline editor of the team's display name (owners and admins); Escape cancels. */
function DisplayNameEditor({ team, onDone }: { team: TeamDto; onDone: (saved: TeamDto | null) => void }) {
  const { t } = useI18n();
  const [value, setValue] = useState(team.display_name ?? "");
  const action = useAction();
  const toast = useToast();
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => {
    input.current?.focus();
    input.current?.select();
  }, []);
  useEffect(() => {
    if (action.error) input.current?.focus();
  }, [action.error]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const saved = await call(api.PATCH("/api/v1/teams/{team}", { params: { path: { team: team.name } }, body: { display_name: value } }));
      toast(t("teamName.saved"));
      onDone(saved);
    });
  };
  return (
    <form
      className="card form display-name-form"
      onSubmit={submit}
      noValidate
      data-testid="display-name-form"
      onKeyDown={(e) => {
        if (e.key === "Escape") {
          e.preventDefault();
          onDone(null);
        }
      }}
    >
      <FormError error={action.error} fields={["display_name"]} />
      <div className="inline-form">
        <Field label={t("field.displayName")} name="display_name" error={action.error} hint={t("teamName.hint", { name: team.name })}>
          {(p) => (
            <input {...p} ref={input} value={value} onChange={(e) => setValue(e.target.value)} autoComplete="off" placeholder={team.name} />
          )}
        </Field>
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("common.save")}
        </button>
        <button type="button" className="btn" onClick={() => onDone(null)}>
          {t("common.cancel")}
        </button>
      </div>
    </form>
  );
}

function Members({ team, canManage }: { team: string; canManage: boolean }) {
  const { t } = useI18n();
  const members = useAsync(() => call(api.GET("/api/v1/teams/{team}/members", { params: { path: { team } } })), [team]);
  const roleLabel = useEnumLabel();
  const confirm = useConfirm();
  const action = useAction();
  const [username, setUsername] = useState("");
  const [role, setRole] = useState<string>("member");
  const put = (user: string, r: string) =>
    action.run(async () => {
      await call(api.PUT("/api/v1/teams/{team}/members/{username}", { params: { path: { team, username: user } }, body: { role: r } }));
      await members.reload();
    });
  const remove = async (user: string) => {
    const ok = await confirm({ title: t("members.removeTitle", { user, team }), confirm: t("members.remove"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/teams/{team}/members/{username}", { params: { path: { team, username: user } } }));
      await members.reload();
    });
  };
  return (
    <section className="card">
      <h2>{t("members.title")}</h2>
      {action.error && <ErrorBox error={action.error} />}
      <Loaded state={members}>
        {(list) => (
          <div className="table-wrap">
            <table className="table" data-testid="members-table">
              <thead>
                <tr>
                  <th>{t("field.username")}</th>
                  <th>{t("field.displayName")}</th>
                  <th>{t("members.role")}</th>
                  {canManage && <th />}
                </tr>
              </thead>
              <tbody>
                {list.map((m) => (
                  <tr key={m.username}>
                    <td className="strong">{m.username}</td>
                    <td>{m.display_name}</td>
                    <td>
                      {canManage ? (
                        <select aria-label={t("members.role") + " " + m.username} value={m.role} onChange={(e) => void put(m.username, e.target.value)}>
                          {ROLES.map((r) => (
                            <option key={r} value={r}>
                              {roleLabel("role", r)}
                            </option>
                          ))}
                        </select>
                      ) : (
                        roleLabel("role", m.role)
                      )}
                    </td>
                    {canManage && (
                      <td>
                        <button type="button" className="btn btn-small btn-danger-outline" onClick={() => remove(m.username)}>
                          {t("members.remove")}
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Loaded>
      {canManage && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void put(username, role).then(() => setUsername(""));
          }}
        >
          <input aria-label={t("field.username")} placeholder={t("field.username")} required value={username} onChange={(e) => setUsername(e.target.value)} />
          <select aria-label={t("members.role")} value={role} onChange={(e) => setRole(e.target.value)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {roleLabel("role", r)}
              </option>
            ))}
          </select>
          <button type="submit" className="btn" disabled={action.busy}>
            {t("members.add")}
          </button>
        </form>
      )}
    </section>
  );
}

/** Quota form values in display units (CPU millicores, MiB, instances, MiB, MiB). */
interface QuotaForm {
  cpu: string;
  memory: string;
  instances: string;
  registry: string;
  volumes: string;
}

const MIB = 1048576;

function toForm(q: QuotaDto): QuotaForm {
  return {
    cpu: q.cpu_millis != null ? String(q.cpu_millis) : "",
    memory: q.memory_bytes != null ? String(Math.round(q.memory_bytes / MIB)) : "",
    instances: q.instances != null ? String(q.instances) : "",
    registry: q.registry_bytes != null ? String(Math.round(q.registry_bytes / MIB)) : "",
    volumes: q.volume_bytes != null ? String(Math.round(q.volume_bytes / MIB)) : "",
  };
}

function fromForm(f: QuotaForm): QuotaDto {
  const n = (s: string, scale = 1) => (s.trim() === "" ? null : Number(s) * scale);
  return {
    cpu_millis: n(f.cpu),
    memory_bytes: n(f.memory, MIB),
    instances: n(f.instances),
    registry_bytes: n(f.registry, MIB),
    volume_bytes: n(f.volumes, MIB),
  };
}

function QuotaFields({ form, setForm, error, prefix }: { form: QuotaForm; setForm: (f: QuotaForm) => void; error: ReturnType<typeof useAction>["error"]; prefix: string }) {
  const { t } = useI18n();
  const set = (k: keyof QuotaForm) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [k]: e.target.value });
  return (
    <div className="grid-3">
      <Field label={t("field.cpuMillis")} name={`${prefix}cpu_millis`} error={error}>
        {(p) => <input {...p} type="number" min={0} value={form.cpu} onChange={set("cpu")} placeholder={t("quota.unlimited")} />}
      </Field>
      <Field label={t("field.memoryMib")} name={`${prefix}memory_bytes`} error={error}>
        {(p) => <input {...p} type="number" min={0} value={form.memory} onChange={set("memory")} placeholder={t("quota.unlimited")} />}
      </Field>
      <Field label={t("quota.instances")} name={`${prefix}instances`} error={error}>
        {(p) => <input {...p} type="number" min={0} value={form.instances} onChange={set("instances")} placeholder={t("quota.unlimited")} />}
      </Field>
      <Field label={t("field.registryMib")} name={`${prefix}registry_bytes`} error={error}>
        {(p) => <input {...p} type="number" min={0} value={form.registry} onChange={set("registry")} placeholder={t("quota.unlimited")} />}
      </Field>
      <Field label={t("field.volumesMib")} name={`${prefix}volume_bytes`} error={error}>
        {(p) => <input {...p} type="number" min={0} value={form.volumes} onChange={set("volumes")} placeholder={t("quota.unlimited")} />}
      </Field>
    </div>
  );
}

function QuotaEditor({ team, onSaved }: { team: TeamDto; onSaved: (t: TeamDto) => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState(() => toForm(team.quota));
  const action = useAction();
  const toast = useToast();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const d = await call(api.PATCH("/api/v1/teams/{team}", { params: { path: { team: team.name } }, body: { quota: fromForm(form) } }));
      onSaved(d);
      toast(t("teams.quotaSaved"));
    });
  };
  return (
    <form className="card form" onSubmit={submit}>
      <h2>{t("teams.setQuota")}</h2>
      <FormError error={action.error} fields={["quota"]} />
      <QuotaFields form={form} setForm={setForm} error={action.error} prefix="quota." />
      <div className="form-actions">
        <button type="submit" className="btn" disabled={action.busy}>
          {t("common.save")}
        </button>
      </div>
    </form>
  );
}

function RequestQuota({ team, onFiled }: { team: TeamDto; onFiled: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState(() => toForm(team.quota));
  const [reason, setReason] = useState("");
  const action = useAction();
  const toast = useToast();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      // Only the limits the user changed are requested.
      const wanted = fromForm(form);
      const current = team.quota;
      const q: QuotaDto = {};
      for (const k of ["cpu_millis", "memory_bytes", "instances", "registry_bytes", "volume_bytes"] as const) {
        if (wanted[k] != null && wanted[k] !== current[k]) q[k] = wanted[k];
      }
      await call(api.POST("/api/v1/teams/{team}/quota-requests", { params: { path: { team: team.name } }, body: { ...q, reason } }));
      toast(t("quotaRequests.filed"));
      setReason("");
      onFiled();
    });
  };
  return (
    <form className="card form" onSubmit={submit} data-testid="quota-request-form">
      <h2>{t("quotaRequests.file")}</h2>
      <p className="muted">{t("quotaRequests.fileHelp")}</p>
      <FormError error={action.error} fields={["cpu_millis", "memory_bytes", "instances", "registry_bytes", "volume_bytes", "reason"]} />
      <QuotaFields form={form} setForm={setForm} error={action.error} prefix="" />
      <Field label={t("field.reason")} name="reason" error={action.error}>
        {(p) => <textarea {...p} rows={2} required value={reason} onChange={(e) => setReason(e.target.value)} />}
      </Field>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("quotaRequests.submit")}
        </button>
      </div>
    </form>
  );
}
