// Deployment templates: built-ins and the teams' own, edited as a JSON body with `${param}`
// placeholders plus typed parameters; "create app" opens the create page on the template.
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, ApiError, call, type DeploymentTemplateDto, type ParamDto } from "../api/client";
import { Empty, ErrorBox, Field, FormError, Loaded, PageHeader, Time, useAction, useAsync, useConfirm, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { useDeployTeams } from "./CreateApp";

export function TemplatesPage() {
  const { t } = useI18n();
  const { roleIn } = useSession();
  const list = useAsync(() => call(api.GET("/api/v1/templates")), []);
  const teams = useDeployTeams();
  const canEdit = (team: string) => team !== "builtin" && ["owner", "member"].includes(roleIn(team) ?? "");
  return (
    <>
      <PageHeader
        title={t("templates.title")}
        actions={
          teams.length > 0 && (
            <Link to="/templates/new" className="btn btn-primary">
              {t("templates.new")}
            </Link>
          )
        }
      />
      <Loaded state={list}>
        {(items) =>
          items.length === 0 ? (
            <Empty>{t("templates.empty")}</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="templates-table">
                <thead>
                  <tr>
                    <th>{t("field.name")}</th>
                    <th>{t("field.description")}</th>
                    <th className="hide-narrow">{t("templates.paramNames")}</th>
                    <th className="hide-narrow">{t("apps.updated")}</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {items.map((x) => (
                    <tr key={`${x.team}/${x.name}`}>
                      <td>
                        <Link to={`/templates/${x.team}/${x.name}`} className="mono strong">
                          {x.team}/{x.name}
                        </Link>
                      </td>
                      <td>{x.description || "–"}</td>
                      <td className="hide-narrow mono small">{x.params.map((p) => p.name).join(", ") || "–"}</td>
                      <td className="hide-narrow">
                        <Time value={x.updated_at} />
                      </td>
                      <td>
<div className="row-actions">
                        <Link to={`/apps/new?template=${x.team}/${x.name}`} className="btn btn-small">
                          {t("templates.createApp")}
                        </Link>
                        {canEdit(x.team) && (
                          <Link to={`/templates/${x.team}/${x.name}`} className="btn btn-small">
                            {t("common.edit")}
                          </Link>
                        )}
                      </div>
</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}

const EXAMPLE_PARAMS: ParamDto[] = [
  { name: "name", kind: "name", description: "App name" },
  { name: "image", kind: "image", description: "Image to run" },
  { name: "replicas", kind: "integer", default: 2, min: 1, max: 10, description: "" },
];
const EXAMPLE_BODY = { name: "${name}", image: "${image}", replicas: "${replicas}", health_path: "/healthz" };

export function TemplateEditPage() {
  const { team, name } = useParams();
  if (!team || !name) return <TemplateEditor initial={null} />;
  return <ExistingTemplate team={team} name={name} />;
}

function ExistingTemplate({ team, name }: { team: string; name: string }) {
  const tpl = useAsync(() => call(api.GET("/api/v1/templates/{team}/{name}", { params: { path: { team, name } } })), [team, name]);
  return <Loaded state={tpl}>{(d) => <TemplateEditor initial={d} />}</Loaded>;
}

function TemplateEditor({ initial }: { initial: DeploymentTemplateDto | null }) {
  const { t } = useI18n();
  const { roleIn } = useSession();
  const teams = useDeployTeams();
  const navigate = useNavigate();
  const toast = useToast();
  const confirm = useConfirm();
  const readOnly = !!initial && (initial.team === "builtin" || !["owner", "member"].includes(roleIn(initial.team) ?? ""));
  const [form, setForm] = useState(() => ({
    team: initial?.team ?? "",
    name: initial?.name ?? "",
    description: initial?.description ?? "",
    params: JSON.stringify(initial?.params ?? EXAMPLE_PARAMS, null, 2),
    body: JSON.stringify(initial?.body ?? EXAMPLE_BODY, null, 2),
  }));
  useEffect(() => {
    if (!form.team && teams.length) setForm((f) => ({ ...f, team: teams[0] }));
  }, [teams, form.team]);
  const action = useAction();
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>) =>
    setForm({ ...form, [k]: e.target.value });
  const parse = (field: "params" | "body") => {
    try {
      return JSON.parse(form[field]) as unknown;
    } catch (e) {
      throw new ApiError(400, "invalid_field", `${field}: ${t("templates.badJson")} (${e instanceof Error ? e.message : ""})`, field);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const params = parse("params") as ParamDto[];
      const body = parse("body");
      const d = await call(
        api.PUT("/api/v1/templates/{team}/{name}", {
          params: { path: { team: form.team, name: form.name } },
          body: { description: form.description || null, params, body },
        }),
      );
      toast(t("templates.saved", { name: `${d.team}/${d.name}` }));
      navigate(`/templates/${d.team}/${d.name}`, { replace: true });
    });
  };
  const remove = async () => {
    if (!initial) return;
    const ok = await confirm({ title: t("templates.deleteTitle", { name: `${initial.team}/${initial.name}` }), confirm: t("common.delete"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/templates/{team}/{name}", { params: { path: { team: initial.team, name: initial.name } } }));
      navigate("/templates");
    });
  };
  return (
    <>
      <PageHeader
        title={initial ? <span className="mono">{`${initial.team}/${initial.name}`}</span> : t("templates.new")}
        sub={<Link to="/templates">← {t("templates.title")}</Link>}
        actions={
          <>
            {initial && (
              <Link to={`/apps/new?template=${initial.team}/${initial.name}`} className="btn btn-primary">
                {t("templates.createApp")}
              </Link>
            )}
            {initial && !readOnly && (
              <button type="button" className="btn btn-danger-outline" onClick={remove}>
                {t("common.delete")}
              </button>
            )}
          </>
        }
      />
      {readOnly && <div className="alert alert-info">{t("templates.readOnly")}</div>}
      <form className="card form form-wide" onSubmit={submit} data-testid="template-form">
        <FormError error={action.error} fields={["team", "name", "description", "params", "body"]} />
        {action.error && action.error.status >= 500 && <ErrorBox error={action.error} />}
        <div className="grid-2">
          <Field label={t("field.team")} name="team" error={action.error}>
            {(p) =>
              initial ? (
                <input {...p} value={form.team} readOnly />
              ) : (
                <select {...p} value={form.team} onChange={set("team")}>
                  {teams.map((x) => (
                    <option key={x}>{x}</option>
                  ))}
                </select>
              )
            }
          </Field>
          <Field label={t("field.name")} name="name" error={action.error}>
            {(p) => <input {...p} required value={form.name} onChange={set("name")} readOnly={!!initial} />}
          </Field>
        </div>
        <Field label={t("field.description")} name="description" error={action.error}>
          {(p) => <input {...p} value={form.description} onChange={set("description")} readOnly={readOnly} />}
        </Field>
        <Field label={t("templates.params")} name="params" error={action.error} hint={t("templates.paramsHint")}>
          {(p) => <textarea {...p} rows={10} className="mono" spellCheck={false} value={form.params} onChange={set("params")} readOnly={readOnly} />}
        </Field>
        <Field label={t("templates.body")} name="body" error={action.error} hint={t("templates.bodyHint")}>
          {(p) => <textarea {...p} rows={12} className="mono" spellCheck={false} value={form.body} onChange={set("body")} readOnly={readOnly} />}
        </Field>
        {!readOnly && (
          <div className="form-actions">
            <button type="submit" className="btn btn-primary" disabled={action.busy}>
              {t("common.save")}
            </button>
          </div>
        )}
      </form>
    </>
  );
}
