// Importing a Docker Compose file (`/apps/import`): the team, the apps' name prefix, the file
// (chosen or pasted) and the env files its services name; "Show plan" asks the server for a
// dry run — each service's app and what would happen to it, and every key that does not map —
// and "Import", once a plan was shown for exactly these inputs, makes the apps. A refusal names
// the place in the file (`services.api.build`), not a field of this form.
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { api, call, type ApiError, type Schemas } from "../api/client";
import { Badge, Field, formatBytes, PageHeader, useAction, useEnumLabel, useToast, type Tone } from "../components/ui";
import { useI18n } from "../i18n";
import { useDeployTeams } from "./CreateApp";

type ComposeImportDto = Schemas["ComposeImportDto"];

/** An env file: the path the compose file names it by (its file name unless changed) and its text. */
interface EnvFile {
  path: string;
  content: string;
}

/** The request's inputs, as one comparable string: a plan holds for the inputs it was made from. */
function inputsKey(team: string, prefix: string, compose: string, envFiles: EnvFile[]): string {
  return JSON.stringify([team, prefix, compose, envFiles.map((f) => [f.path, f.content])]);
}

const ACTION_TONES: Record<string, Tone> = { create: "info", update: "warn", unchanged: "muted" };

export function ComposeImportPage() {
  const { t } = useI18n();
  const toast = useToast();
  const teams = useDeployTeams();
  const [team, setTeam] = useState("");
  const [prefix, setPrefix] = useState("");
  const [compose, setCompose] = useState("");
  const [fileName, setFileName] = useState("");
  const [envFiles, setEnvFiles] = useState<EnvFile[]>([]);
  const [answer, setAnswer] = useState<{ key: string; team: string; dto: ComposeImportDto } | null>(null);
  const action = useAction();
  const composeInput = useRef<HTMLInputElement>(null);
  const envInput = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (!team && teams.length) setTeam(teams[0]);
  }, [teams, team]);

  const key = useMemo(() => inputsKey(team, prefix, compose, envFiles), [team, prefix, compose, envFiles]);
  const planned = answer?.dto.dry_run === true && answer.key === key;

  const chooseCompose = (e: React.ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    void file.text().then((text) => {
      setCompose(text);
      setFileName(file.name);
    });
  };
  const addEnvFiles = (e: React.ChangeEvent<HTMLInputElement>) => {
    const files = [...(e.target.files ?? [])];
    void Promise.all(files.map(async (f) => ({ path: f.name, content: await f.text() }))).then((added) => {
      setEnvFiles((rows) => [...rows.filter((r) => !added.some((a) => a.path === r.path)), ...added]);
      if (envInput.current) envInput.current.value = "";
    });
  };

  const send = (dryRun: boolean) =>
    action.run(async () => {
      const sent = key;
      const dto = await call(
        api.POST("/api/v1/teams/{team}/compose", {
          params: { path: { team } },
          body: { compose, prefix, env_files: Object.fromEntries(envFiles.map((f) => [f.path, f.content])), dry_run: dryRun },
        }),
      );
      setAnswer({ key: sent, team, dto });
      if (!dryRun) toast(t("compose.imported", { count: dto.apps.length }));
    });
  const plan = (e: FormEvent) => {
    e.preventDefault();
    void send(true);
  };

  return (
    <>
      <PageHeader title={t("compose.title")} />
      <div className="stack">
        <form className="card form form-wide" onSubmit={plan} data-testid="compose-form">
          <p className="muted">{t("compose.intro")}</p>
          <ComposeError error={action.error} />
          <div className="grid-2">
            <Field label={t("field.team")} name="team">
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
            <Field label={t("compose.prefix")} name="prefix" hint={t("compose.prefixHint")}>
              {(p) => <input {...p} className="mono" value={prefix} onChange={(e) => setPrefix(e.target.value)} placeholder="shop-" spellCheck={false} />}
            </Field>
          </div>
          <Field
            label={t("compose.file")}
            name="compose"
            hint={fileName ? t("compose.fileChosen", { file: fileName }) : t("compose.fileHint")}
          >
            {(p) => (
              <>
                <textarea
                  {...p}
                  rows={12}
                  required
                  className="mono"
                  spellCheck={false}
                  value={compose}
                  onChange={(e) => setCompose(e.target.value)}
                  placeholder={"services:\n  web:\n    image: berth-testapp:latest"}
                />
                <input
                  ref={composeInput}
                  type="file"
                  accept=".yml,.yaml,text/yaml,application/yaml"
                  aria-label={t("compose.chooseFile")}
                  onChange={chooseCompose}
                  data-testid="compose-file"
                />
              </>
            )}
          </Field>
          <fieldset className="probe" data-testid="env-files">
            <legend>{t("compose.envFiles")}</legend>
            <p className="muted">{t("compose.envFilesHint")}</p>
            {envFiles.map((f, i) => (
              <div className="editor-row env-file-row" key={i} data-testid="env-file-row">
                <Field label={t("compose.envPath")} name={`env_files[${i}]`}>
                  {(p) => (
                    <input
                      {...p}
                      required
                      className="mono"
                      spellCheck={false}
                      value={f.path}
                      onChange={(e) => setEnvFiles(envFiles.map((r, j) => (j === i ? { ...r, path: e.target.value } : r)))}
                    />
                  )}
                </Field>
                <span className="muted row-buttons">{formatBytes(new TextEncoder().encode(f.content).length)}</span>
                <button
                  type="button"
                  className="btn btn-danger-outline"
                  aria-label={t("compose.removeEnvFile", { path: f.path })}
                  onClick={() => setEnvFiles(envFiles.filter((_, j) => j !== i))}
                >
                  {t("common.remove")}
                </button>
              </div>
            ))}
            <input ref={envInput} type="file" multiple aria-label={t("compose.addEnvFiles")} onChange={addEnvFiles} data-testid="env-files-input" />
          </fieldset>
          <div className="form-actions">
            <button type="submit" className="btn" disabled={action.busy || !team || !compose.trim()}>
              {t("compose.plan")}
            </button>
            <button
              type="button"
              className="btn btn-primary"
              disabled={action.busy || !planned}
              title={planned ? undefined : t("compose.planFirst")}
              onClick={() => void send(false)}
            >
              {t("compose.import")}
            </button>
            <Link to="/apps" className="btn">
              {t("common.cancel")}
            </Link>
          </div>
          {!planned && answer?.dto.dry_run && <p className="muted">{t("compose.stale")}</p>}
        </form>
        {answer && <ImportAnswer dto={answer.dto} team={answer.team} stale={answer.key !== key} />}
      </div>
    </>
  );
}

/**
 * The server's refusal: each problem with the place in the compose file it names
 * (`services.api.build: …`), or its message alone when it names none.
 */
function ComposeError({ error }: { error: ApiError | undefined }) {
  const { t } = useI18n();
  if (!error) return null;
  const problems = error.details.length
    ? error.details
    : error.field
      ? [{ field: error.field, message: error.message }]
      : [];
  if (!problems.length)
    return (
      <div className="alert alert-error" role="alert" data-code={error.code} data-testid="compose-error">
        {error.message}
      </div>
    );
  return (
    <div className="alert alert-error compose-error" role="alert" data-code={error.code} data-testid="compose-error">
      <strong>{t("compose.refused")}</strong>
      <ul>
        {problems.map((p, i) => (
          <li key={i} data-field={p.field}>
            <code className="strong">{p.field}</code>: {withoutField(p.message, p.field)}
          </li>
        ))}
      </ul>
    </div>
  );
}

function withoutField(message: string, field: string): string {
  return message.startsWith(field + ": ") ? message.slice(field.length + 2) : message;
}

/** The plan (a dry run) or what the import did: each service's app, its action and revision, and the notes. */
function ImportAnswer({ dto, team, stale }: { dto: ComposeImportDto; team: string; stale: boolean }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  return (
    <section className="card" data-testid={dto.dry_run ? "compose-plan" : "compose-result"} data-stale={stale || undefined}>
      <div className="card-head">
        <h2>{dto.dry_run ? t("compose.planTitle") : t("compose.resultTitle")}</h2>
        {!dto.dry_run && <Link to={`/apps?team=${encodeURIComponent(team)}`}>{t("compose.viewApps")}</Link>}
      </div>
      <p className="muted">{dto.dry_run ? t("compose.planHelp") : t("compose.resultHelp")}</p>
      <div className="table-wrap">
        <table className="table">
          <thead>
            <tr>
              <th>{t("compose.service")}</th>
              <th>{t("compose.app")}</th>
              <th>{t("compose.action")}</th>
              <th>{t("apps.revision")}</th>
            </tr>
          </thead>
          <tbody>
            {dto.apps.map((a) => (
              <tr key={a.service} data-service={a.service} data-action={a.action}>
                <td className="mono">{a.service}</td>
                <td>{dto.dry_run ? <span className="strong">{a.app}</span> : <Link to={`/apps/${a.app}`} className="strong">{a.app}</Link>}</td>
                <td>
                  <Badge tone={ACTION_TONES[a.action] ?? "muted"}>{label("compose.action", a.action)}</Badge>
                </td>
                <td>{a.revision == null ? <span className="muted">–</span> : `#${a.revision}`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>{t("compose.notes")}</h3>
      {dto.notes.length ? (
        <>
          <p className="muted">{t("compose.notesHelp")}</p>
          <ul className="compose-notes" data-testid="compose-notes">
            {dto.notes.map((n, i) => {
              const at = n.indexOf(": ");
              return (
                <li key={i}>
                  {at > 0 ? (
                    <>
                      <code>{n.slice(0, at)}</code>: {n.slice(at + 2)}
                    </>
                  ) : (
                    n
                  )}
                </li>
              );
            })}
          </ul>
        </>
      ) : (
        <p className="muted" data-testid="compose-notes">
          {t("compose.noNotes")}
        </p>
      )}
    </section>
  );
}
