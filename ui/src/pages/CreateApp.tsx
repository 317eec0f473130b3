// Creating an app: a form, or a deployment template with its typed parameters
// (`/apps/new?template=team/name`).
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, call, type AppChanges, type DeploymentTemplateDto, type ParamDto } from "../api/client";
import { EnvEditor, envOf, type EnvForm } from "../components/env";
import { ProbeFields, probeBody, probeForm } from "../components/probes";
import { SecretRefsEditor, secretRefsBody, type SecretRefForm } from "../components/secrets";
import { Field, FormError, Loaded, PageHeader, Tabs, useAction, useAsync, useToast } from "../components/ui";
import { mountsBody, VolumeMountsEditor, type MountForm } from "../components/volumes";
import { useI18n } from "../i18n";
import { useSession } from "../session";

/** The teams the caller may create apps in (all teams for admins). */
export function useDeployTeams(): string[] {
  const { writableTeams, isAdmin } = useSession();
  const teams = useAsync(() => (isAdmin ? call(api.GET("/api/v1/teams")) : Promise.resolve([])), [isAdmin]);
  return isAdmin ? (teams.data ?? []).map((x) => x.name) : writableTeams;
}

/**
 * The browser-side check of an app name (the server's rule: lowercase letters, digits and '-',
 * starting with a letter, not ending with '-'). Browsers compile `pattern` with the `v` flag,
 * where a bare '-' in a class is an error that silently turns the check off: it is escaped.
 */
const NAME_PATTERN = "[a-z](?:[a-z0-9\\-]*[a-z0-9])?";

export function CreateAppPage() {
  const { t } = useI18n();
  const [params] = useSearchParams();
  const template = params.get("template");
  return (
    <>
      <PageHeader title={t("create.title")} />
      <Tabs
        items={[
          { to: "/apps/new", label: t("create.fromForm"), active: !template && !params.has("templates") },
          { to: "/apps/new?templates", label: t("create.fromTemplate"), active: !!template || params.has("templates") },
        ]}
      />
      {template ? <FromTemplate id={template} /> : params.has("templates") ? <PickTemplate /> : <CreateForm />}
    </>
  );
}

function CreateForm() {
  const { t } = useI18n();
  const navigate = useNavigate();
  const toast = useToast();
  const teams = useDeployTeams();
  const [form, setForm] = useState({
    name: "",
    team: "",
    image: "",
    replicas: "1",
    port: "8080",
    cpu: "",
    memory: "",
    domains: "",
    internal: false,
  });
  const [readiness, setReadiness] = useState(() => probeForm(undefined));
  const [liveness, setLiveness] = useState(() => probeForm(undefined));
  const [volumes, setVolumes] = useState<MountForm[]>([]);
  const [secrets, setSecrets] = useState<SecretRefForm[]>([]);
  const [envRows, setEnvRows] = useState<EnvForm[]>([]);
  useEffect(() => {
    if (!form.team && teams.length) setForm((f) => ({ ...f, team: teams[0] }));
  }, [teams, form.team]);
  const action = useAction();
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const { env, sensitive } = envOf(envRows, t);
      const body: AppChanges = {
        name: form.name,
        team: form.team || null,
        image: form.image,
        replicas: Number(form.replicas),
        port: Number(form.port),
      };
      body.readiness = probeBody(readiness);
      body.liveness = probeBody(liveness);
      if (Object.keys(env).length) body.env = env;
      if (sensitive.length) body.sensitive_env = sensitive;
      if (volumes.length) body.volumes = mountsBody(volumes);
      if (secrets.length) body.secrets = secretRefsBody(secrets);
      if (form.cpu) body.cpu_millis = Number(form.cpu);
      if (form.memory) body.memory_bytes = Number(form.memory) * 1048576;
      const domains = form.domains
        .split("\n")
        .map((x) => x.trim())
        .filter(Boolean);
      if (form.internal) body.internal = true;
      else if (domains.length) body.domains = domains;
      const app = await call(api.POST("/api/v1/apps", { body }));
      toast(t("create.created", { name: app.name }));
      navigate(`/apps/${app.name}`);
    });
  };
  const fields = ["name", "team", "image", "replicas", "port", "readiness", "liveness", "env", "cpu_millis", "memory_bytes", "domains", "internal", "volumes", "secrets", "sensitive_env"];
  return (
    <form className="card form form-wide" onSubmit={submit} data-testid="create-form">
      <FormError error={action.error} fields={fields} />
      <div className="grid-2">
        <Field label={t("field.name")} name="name" error={action.error} hint={t("create.nameHint")}>
          {(p) => <input {...p} required autoFocus value={form.name} onChange={set("name")} pattern={NAME_PATTERN} title={t("create.nameHint")} />}
        </Field>
        <Field label={t("field.team")} name="team" error={action.error}>
          {(p) => (
            <select {...p} value={form.team} onChange={set("team")} required>
              {teams.map((x) => (
                <option key={x} value={x}>
                  {x}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <Field label={t("field.image")} name="image" error={action.error} hint={t("create.imageHint")}>
        {(p) => <input {...p} required value={form.image} onChange={set("image")} className="mono" list="image-suggestions" />}
      </Field>
      <div className="grid-3">
        <Field label={t("field.replicas")} name="replicas" error={action.error}>
          {(p) => <input {...p} type="number" min={0} required value={form.replicas} onChange={set("replicas")} />}
        </Field>
        <Field label={t("field.port")} name="port" error={action.error}>
          {(p) => <input {...p} type="number" min={1} max={65535} value={form.port} onChange={set("port")} />}
        </Field>
      </div>
      <ProbeFields role="readiness" value={readiness} onChange={setReadiness} error={action.error} />
      <ProbeFields role="liveness" value={liveness} onChange={setLiveness} error={action.error} />
      <div className="grid-2">
        <Field label={t("field.cpuMillis")} name="cpu_millis" error={action.error} hint={t("create.cpuHint")}>
          {(p) => <input {...p} type="number" min={0} value={form.cpu} onChange={set("cpu")} />}
        </Field>
        <Field label={t("field.memoryMib")} name="memory_bytes" error={action.error}>
          {(p) => <input {...p} type="number" min={0} value={form.memory} onChange={set("memory")} />}
        </Field>
      </div>
      <VolumeMountsEditor value={volumes} onChange={setVolumes} error={action.error} />
      <EnvEditor value={envRows} onChange={setEnvRows} error={action.error} />
      <SecretRefsEditor team={form.team} value={secrets} onChange={setSecrets} error={action.error} />
      <Field label={t("routes.domains")} name="domains" error={action.error} hint={t("routes.domainsHint")}>
        {(p) => (
          <textarea
            {...p}
            rows={2}
            value={form.domains}
            disabled={form.internal}
            onChange={set("domains")}
            className="mono"
            spellCheck={false}
            placeholder="shop.example.com"
          />
        )}
      </Field>
      <label className="check">
        <input
          type="checkbox"
          name="internal"
          checked={form.internal}
          onChange={(e) => setForm({ ...form, internal: e.target.checked })}
        />{" "}
        {t("routes.internalLabel")}
      </label>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("create.submit")}
        </button>
        <Link to="/apps" className="btn">
          {t("common.cancel")}
        </Link>
      </div>
    </form>
  );
}

function PickTemplate() {
  const list = useAsync(() => call(api.GET("/api/v1/templates")), []);
  return (
    <Loaded state={list}>
      {(templates) => (
        <div className="cards">
          {templates.map((x) => (
            <Link key={`${x.team}/${x.name}`} to={`/apps/new?template=${x.team}/${x.name}`} className="card card-link">
              <h3 className="mono">
                {x.team}/{x.name}
              </h3>
              <p className="muted">{x.description || "–"}</p>
            </Link>
          ))}
        </div>
      )}
    </Loaded>
  );
}

function inputFor(p: ParamDto): { type: string; min?: number; max?: number } {
  if (p.kind === "integer") return { type: "number", min: p.min ?? undefined, max: p.max ?? undefined };
  return { type: "text" };
}

export function FromTemplate({ id }: { id: string }) {
  const [team, name] = id.split("/");
  const tpl = useAsync(
    () => call(api.GET("/api/v1/templates/{team}/{name}", { params: { path: { team: team ?? "", name: name ?? "" } } })),
    [id],
  );
  return <Loaded state={tpl}>{(d) => <TemplateForm template={d} />}</Loaded>;
}

function TemplateForm({ template }: { template: DeploymentTemplateDto }) {
  const { t } = useI18n();
  const navigate = useNavigate();
  const toast = useToast();
  const teams = useDeployTeams();
  const initial = useMemo(() => {
    const v: Record<string, string> = {};
    for (const p of template.params) {
      const d = (p as { default?: unknown }).default;
      v[p.name] = d === undefined || d === null ? "" : String(d);
    }
    return v;
  }, [template]);
  const [values, setValues] = useState(initial);
  const [team, setTeam] = useState("");
  useEffect(() => {
    if (!team && teams.length) setTeam(teams[0]);
  }, [teams, team]);
  const action = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const typed: Record<string, unknown> = {};
      for (const p of template.params) {
        const v = values[p.name];
        if (v === "" || v === undefined) continue;
        typed[p.name] = p.kind === "integer" ? Number(v) : p.kind === "boolean" ? v === "true" : v;
      }
      const app = await call(
        api.POST("/api/v1/templates/{team}/{name}/apps", {
          params: { path: { team: template.team, name: template.name } },
          body: { team, values: typed },
        }),
      );
      toast(t("create.created", { name: app.name }));
      navigate(`/apps/${app.name}`);
    });
  };
  const fields = ["team", ...template.params.flatMap((p) => [p.name, `values.${p.name}`])];
  return (
    <form className="card form form-wide" onSubmit={submit} data-testid="template-app-form">
      <h2 className="mono">
        {template.team}/{template.name}
      </h2>
      {template.description && <p className="muted">{template.description}</p>}
      <FormError error={action.error} fields={fields} />
      <Field label={t("field.team")} name="team" error={action.error}>
        {(p) => (
          <select {...p} value={team} onChange={(e) => setTeam(e.target.value)} required>
            {teams.map((x) => (
              <option key={x} value={x}>
                {x}
              </option>
            ))}
          </select>
        )}
      </Field>
      {template.params.map((param) => (
        <Field
          key={param.name}
          label={`${param.name} (${param.kind})`}
          name={param.name}
          error={action.error}
          hint={param.description || undefined}
        >
          {(p) =>
            param.kind === "boolean" ? (
              <select {...p} value={values[param.name] ?? ""} onChange={(e) => setValues({ ...values, [param.name]: e.target.value })}>
                <option value="">–</option>
                <option value="true">true</option>
                <option value="false">false</option>
              </select>
            ) : (
              <input
                {...p}
                {...inputFor(param)}
                className={param.kind === "image" || param.kind === "path" ? "mono" : undefined}
                value={values[param.name] ?? ""}
                onChange={(e) => setValues({ ...values, [param.name]: e.target.value })}
              />
            )
          }
        </Field>
      ))}
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("create.submit")}
        </button>
        <Link to="/apps/new?templates" className="btn">
          {t("common.back")}
        </Link>
      </div>
    </form>
  );
}
