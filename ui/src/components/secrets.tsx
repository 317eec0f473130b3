// An app's secrets in the console: the editor the create and deploy forms share (rows of the
// team's secret — suggested from the team's list —, given as a variable or a file, and the
// variable's name or the file's path, in the shared `RowsEditor`, each field showing the
// server's `secrets[i].…` message), and the secrets as the app page lists them: target ← secret
// (a link to it on the Secrets page) with the version the revision uses. Never a value.
import { useId } from "react";
import { Link } from "react-router";
import { api, call, type ApiError, type SecretDto, type SecretRefDto } from "../api/client";
import { useI18n } from "../i18n";
import { RowsEditor } from "./rows";
import { Badge, Field, useAsync } from "./ui";

/** One secret given to an app, as the form edits it: as a variable (`env`) or a file (`path`). */
export type SecretRefForm = { name: string; kind: "env" | "path"; target: string };

/** A team's secret on the Secrets page. */
export function secretPath(team: string, name: string): string {
  return `/secrets?team=${encodeURIComponent(team)}&q=${encodeURIComponent(name)}`;
}

/** The form of an app's secrets. */
export function secretRefForms(refs: SecretRefDto[] | null | undefined): SecretRefForm[] {
  return (refs ?? []).map((r) =>
    r.path != null ? { name: r.name, kind: "path", target: r.path } : { name: r.name, kind: "env", target: r.env ?? "" },
  );
}

/**
 * What the API is sent: every row, in order, so that the server's `secrets[i]` names row i;
 * no version, so the server gives each the secret's current one.
 */
export function secretRefsBody(rows: SecretRefForm[]): SecretRefDto[] {
  return rows.map((r) => (r.kind === "path" ? { name: r.name.trim(), path: r.target.trim() } : { name: r.name.trim(), env: r.target.trim() }));
}

/** Whether two forms ask for the same secrets. */
export function sameSecretRefs(a: SecretRefForm[], b: SecretRefForm[]): boolean {
  return JSON.stringify(secretRefsBody(a)) === JSON.stringify(secretRefsBody(b));
}

/** The editor of an app's secrets, suggesting the secrets of `team`. */
export function SecretRefsEditor({
  team,
  value,
  onChange,
  error,
}: {
  team: string;
  value: SecretRefForm[];
  onChange: (rows: SecretRefForm[]) => void;
  error?: ApiError;
}) {
  const { t } = useI18n();
  const listId = useId();
  // Suggestions only: a name typed by hand is the server's to accept or refuse.
  const known = useAsync(
    () =>
      team
        ? call(api.GET("/api/v1/teams/{team}/secrets", { params: { path: { team } } })).then((x) => x.secrets)
        : Promise.resolve([] as SecretDto[]),
    [team],
  );
  return (
    <>
      <RowsEditor<SecretRefForm>
        legend={t("field.secrets")}
        help={
          <>
            {t("secrets.editorHelp")} <Link to={team ? `/secrets?team=${encodeURIComponent(team)}` : "/secrets"}>{t("secrets.manage")}</Link>
          </>
        }
        testId="secrets-editor"
        rowTestId="secret-row"
        rowClass="secret-row"
        value={value}
        onChange={onChange}
        blank={() => ({ name: "", kind: "env", target: "" })}
        addLabel={t("secrets.add")}
        removeLabel={(n) => t("secrets.remove", { n })}
        removeShort={t("common.remove")}
        whole={["secrets"]}
        error={error}
      >
        {(row, i, update) => (
          <>
            <Field label={t("secrets.secret")} name={`secrets[${i}].name`} error={error}>
              {(p) => (
                <input
                  {...p}
                  required
                  className="mono"
                  autoComplete="off"
                  list={listId}
                  value={row.name}
                  onChange={(e) => update({ name: e.target.value })}
                />
              )}
            </Field>
            <Field label={t("secrets.givenAs")} name={`secrets[${i}].kind`} error={error}>
              {(p) => (
                <select {...p} value={row.kind} onChange={(e) => update({ kind: e.target.value as SecretRefForm["kind"] })}>
                  <option value="env">{t("secrets.asEnv")}</option>
                  <option value="path">{t("secrets.asFile")}</option>
                </select>
              )}
            </Field>
            <Field label={t(row.kind === "env" ? "secrets.variable" : "secrets.filePath")} name={`secrets[${i}].${row.kind}`} error={error}>
              {(p) => (
                <input
                  {...p}
                  required
                  className="mono"
                  autoComplete="off"
                  placeholder={row.kind === "env" ? "DB_PASSWORD" : "/run/secrets/db-password"}
                  value={row.target}
                  onChange={(e) => update({ target: e.target.value })}
                />
              )}
            </Field>
          </>
        )}
      </RowsEditor>
      <datalist id={listId}>
        {(known.data ?? []).map((x) => (
          <option key={x.name} value={x.name}>
            {t("secrets.versionN", { n: x.version })}
          </option>
        ))}
      </datalist>
    </>
  );
}

/** An app's secrets: target ← secret (a link to it), the version the revision uses, variable or file. */
export function SecretRefList({ team, secrets }: { team: string; secrets: SecretRefDto[] }) {
  const { t } = useI18n();
  if (secrets.length === 0) return <>–</>;
  return (
    <ul className="kv">
      {secrets.map((s) => {
        const target = s.path ?? s.env ?? "";
        return (
          <li key={target} data-secret={s.name} data-target={target}>
            <span className="mono">{target}</span> ←{" "}
            <Link to={secretPath(team, s.name)} className="mono">
              {s.name}
            </Link>{" "}
            <Badge tone="info">{t("secrets.versionN", { n: s.version ?? 0 })}</Badge>{" "}
            <Badge tone="muted">{t(s.path != null ? "secrets.asFile" : "secrets.asEnv")}</Badge>
          </li>
        );
      })}
    </ul>
  );
}
