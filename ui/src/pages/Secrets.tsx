// Secrets: the teams' secrets (filtered by team and name in the URL) with their version, who
// changed them when, and the apps that use them — never a value. Members and owners set a
// secret (a new one, or a new version of one) from a textarea or a file, sent as the raw body
// and forgotten by the form once the server took it, and delete one (refused by the server
// while an app uses it).
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, call, rawBody, type SecretDto } from "../api/client";
import {
  Empty,
  Field,
  FormError,
  Loaded,
  PageHeader,
  TeamFilter,
  Time,
  useAction,
  useAsync,
  useConfirm,
  useToast,
  useUrlFilters,
} from "../components/ui";
import { AppNameLinks } from "../components/apps";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { useDeployTeams } from "./CreateApp";


export function SecretsPage() {
  const { t } = useI18n();
  const [params, update] = useUrlFilters();
  const team = params.get("team") ?? "";
  const q = params.get("q") ?? "";
  const { roleIn } = useSession();
  // Members and owners set and delete the team's secrets; readers see their names.
  const canWrite = (x: string) => ["owner", "member"].includes(roleIn(x) ?? "");
  const writable = useDeployTeams();
  const confirm = useConfirm();
  const toast = useToast();
  const remove = useAction();
  const list = useAsync(
    () =>
      team
        ? call(api.GET("/api/v1/teams/{team}/secrets", { params: { path: { team } } }))
        : call(api.GET("/api/v1/secrets")),
    [team],
    10_000,
  );
  /** The form, open for a new secret or a new version of one. */
  const [editing, setEditing] = useState<{ team: string; name: string } | null>(null);
  const [result, setResult] = useState<string | null>(null);
  const top = useRef<HTMLDivElement>(null);
  const edit = (target: { team: string; name: string }) => {
    setResult(null);
    remove.setError(undefined);
    setEditing(target);
    top.current?.scrollIntoView({ block: "start" });
  };
  const set = (s: SecretDto) => {
    const full = `${s.team}/${s.name}`;
    const rolled = s.rolled_out ?? [];
    setResult(
      rolled.length
        ? t("secrets.setRolling", { name: full, n: s.version, apps: rolled.join(", ") })
        : t("secrets.setNoApps", { name: full, n: s.version }),
    );
    setEditing(null);
    void list.reload();
  };
  const del = async (s: SecretDto) => {
    const full = `${s.team}/${s.name}`;
    setResult(null);
    const ok = await confirm({
      title: t("secrets.deleteTitle", { name: full }),
      body: t("secrets.deleteBody"),
      confirm: t("common.delete"),
      danger: true,
    });
    if (!ok) return;
    await remove.run(async () => {
      await call(api.DELETE("/api/v1/teams/{team}/secrets/{name}", { params: { path: { team: s.team, name: s.name } } }));
      toast(t("secrets.deleted", { name: full }));
      await list.reload();
    });
  };
  return (
    <>
      <div ref={top} />
      <PageHeader
        title={t("secrets.title")}
        actions={
          writable.length > 0 &&
          !editing && (
            <button type="button" className="btn btn-primary" onClick={() => edit({ team: team && canWrite(team) ? team : "", name: "" })}>
              {t("secrets.set")}
            </button>
          )
        }
      />
      <div className="toolbar">
        <input
          type="search"
          placeholder={t("apps.searchPlaceholder")}
          aria-label={t("apps.searchPlaceholder")}
          value={q}
          onChange={(e) => update("q", e.target.value)}
        />
        <TeamFilter value={team} onChange={(v) => update("team", v)} />
      </div>
      <p className="muted">{t("secrets.help")}</p>
      {result && (
        <div className="alert alert-ok" role="status" data-testid="secret-set-result">
          <span>{result}</span>
          <button type="button" className="btn btn-small" onClick={() => setResult(null)}>
            {t("common.dismiss")}
          </button>
        </div>
      )}
      {editing && (
        <SetSecretForm
          key={`${editing.team}/${editing.name}`}
          teams={writable}
          initial={editing}
          onSet={set}
          onCancel={() => setEditing(null)}
        />
      )}
      {remove.error && (
        <div className="alert alert-error" role="alert" data-testid="secret-delete-error" data-code={remove.error.code}>
          {remove.error.message}
        </div>
      )}
      <Loaded state={list}>
        {({ secrets }) => {
          const shown = secrets
            .filter((s) => !q || s.name.includes(q.toLowerCase()))
            .sort((a, b) => `${a.team}/${a.name}`.localeCompare(`${b.team}/${b.name}`));
          if (secrets.length === 0) return <Empty>{t("secrets.empty")}</Empty>;
          if (shown.length === 0) return <Empty>{t("common.noMatch")}</Empty>;
          const actions = shown.some((s) => canWrite(s.team));
          return (
            <div className="table-wrap">
              <table className="table" data-testid="secrets-table">
                <thead>
                  <tr>
                    <th>{t("secrets.secret")}</th>
                    <th>{t("secrets.version")}</th>
                    <th>{t("secrets.changed")}</th>
                    <th>{t("secrets.usedBy")}</th>
                    <th className="hide-narrow">{t("apps.created")}</th>
                    {actions && (
                      <th>
                        <span className="sr-only">{t("secrets.actions")}</span>
                      </th>
                    )}
                  </tr>
                </thead>
                <tbody>
                  {shown.map((s) => (
                    <tr key={`${s.team}/${s.name}`} data-secret={`${s.team}/${s.name}`}>
                      <td>
                        <span className="strong mono">{s.name}</span>
                        <div className="muted small">{s.team}</div>
                      </td>
                      <td className="num" data-testid="secret-version">
                        {s.version}
                      </td>
                      <td>
                        <Time value={s.updated_at} /> · {s.updated_by}
                      </td>
                      <td>
                        <AppNameLinks testId="secret-used-by" apps={s.used_by} />
                      </td>
                      <td className="hide-narrow">
                        <Time value={s.created_at} /> · {s.created_by}
                      </td>
                      {actions && (
                        <td>
                          {canWrite(s.team) && (
                            <div className="app-actions">
                              <button
                                type="button"
                                className="btn btn-small"
                                aria-label={t("secrets.setValueOf", { name: `${s.team}/${s.name}` })}
                                onClick={() => edit({ team: s.team, name: s.name })}
                              >
                                {t("secrets.setValue")}
                              </button>
                              <button
                                type="button"
                                className="btn btn-small btn-danger-outline"
                                aria-label={t("secrets.deleteOf", { name: `${s.team}/${s.name}` })}
                                onClick={() => void del(s)}
                                disabled={remove.busy}
                              >
                                {t("common.delete")}
                              </button>
                            </div>
                          )}
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Loaded>
    </>
  );
}

/**
 * Setting a secret: its team and name (given when a new version of an existing one is set),
 * and its value typed in a textarea or read from a file, sent as the request's raw body. The
 * value is dropped from the form once the server answered; it is never shown again.
 */
function SetSecretForm({
  teams,
  initial,
  onSet,
  onCancel,
}: {
  teams: string[];
  initial: { team: string; name: string };
  onSet: (s: SecretDto) => void;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  const action = useAction();
  const existing = !!initial.name;
  const [team, setTeam] = useState(initial.team);
  const [name, setName] = useState(initial.name);
  const [value, setValue] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (!team && teams.length) setTeam(teams[0]);
  }, [teams, team]);
  const clearFile = () => {
    setFile(null);
    if (fileInput.current) fileInput.current.value = "";
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const body = file ?? new Blob([value]);
      const s = await call(
        api.PUT("/api/v1/teams/{team}/secrets/{name}", {
          params: { path: { team, name: name.trim() } },
          ...rawBody(body, "application/octet-stream"),
        }),
      );
      setValue("");
      clearFile();
      onSet(s);
    });
  };
  return (
    <form className="card form form-wide" onSubmit={submit} data-testid="secret-form" autoComplete="off">
      <h2>{existing ? t("secrets.setVersionTitle", { name: `${initial.team}/${initial.name}` }) : t("secrets.setTitle")}</h2>
      <p className="muted">{t("secrets.formHelp")}</p>
      <FormError error={action.error} fields={["team", "name", "value"]} />
      <div className="grid-2">
        <Field label={t("field.team")} name="team" error={action.error}>
          {(p) => (
            <select {...p} value={team} onChange={(e) => setTeam(e.target.value)} required disabled={existing}>
              {[...new Set([...teams, ...(team ? [team] : [])])].map((x) => (
                <option key={x} value={x}>
                  {x}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label={t("field.name")} name="name" error={action.error} hint={t("create.nameHint")}>
          {(p) => (
            <input
              {...p}
              required
              autoFocus={!existing}
              readOnly={existing}
              className="mono"
              value={name}
              onChange={(e) => setName(e.target.value)}
              placeholder="db-password"
            />
          )}
        </Field>
      </div>
      <Field label={t("secrets.value")} name="value" error={action.error} hint={file ? t("secrets.fileChosen", { file: file.name }) : t("secrets.valueHint")}>
        {(p) => (
          <>
            <textarea
              {...p}
              rows={4}
              className="mono"
              spellCheck={false}
              autoComplete="off"
              autoFocus={existing}
              disabled={!!file}
              value={value}
              onChange={(e) => setValue(e.target.value)}
            />
            <div className="inline-form">
              <input
                ref={fileInput}
                type="file"
                aria-label={t("secrets.valueFile")}
                onChange={(e) => setFile(e.target.files?.[0] ?? null)}
              />
              {file && (
                <button type="button" className="btn btn-small" onClick={clearFile}>
                  {t("secrets.clearFile")}
                </button>
              )}
            </div>
          </>
        )}
      </Field>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("secrets.setSubmit")}
        </button>
        <button type="button" className="btn" onClick={onCancel}>
          {t("common.cancel")}
        </button>
      </div>
    </form>
  );
}
