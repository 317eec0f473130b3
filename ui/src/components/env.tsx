// An app's environment variables in the console: the editor the create and deploy forms share
// (rows of name, value and a "sensitive" toggle in the shared `RowsEditor`; a sensitive value is
// typed into a masked input), and the way a value is shown wherever the console displays one —
// a sensitive variable's value masked, with a reveal for users who can deploy, and the
// `<redacted>` the server sends viewers instead of the value as a badge, never as a value.
import { useState } from "react";
import { ApiError, type TemplateDto } from "../api/client";
import { useI18n, type T } from "../i18n";
import { RowsEditor } from "./rows";
import { Badge, Field } from "./ui";

/** What viewers (who cannot deploy) get from the server instead of a sensitive variable's value. */
export const REDACTED = "<redacted>";

/** One variable as the form edits it; `shown` is whether a sensitive value is unmasked. */
export type EnvForm = { key: string; value: string; sensitive: boolean; shown?: boolean };

/** The form of a template's variables, sorted by name as the server keeps them. */
export function envForms(tp: Pick<TemplateDto, "env" | "sensitive_env"> | undefined): EnvForm[] {
  const sensitive = new Set(tp?.sensitive_env ?? []);
  return Object.entries(tp?.env ?? {}).map(([key, value]) => ({ key, value, sensitive: sensitive.has(key) }));
}

/**
 * The variables and the sensitive ones' names the rows ask for; a name given twice is refused
 * next to both rows (as the server names a variable's field, `env.NAME`).
 */
export function envOf(rows: EnvForm[], t: T): { env: Record<string, string>; sensitive: string[] } {
  const env: Record<string, string> = {};
  const sensitive: string[] = [];
  for (const row of rows) {
    const key = row.key.trim();
    if (key in env) throw new ApiError(400, "invalid_field", t("env.duplicate", { key }), `env.${key}`);
    env[key] = row.value;
    if (row.sensitive) sensitive.push(key);
  }
  return { env, sensitive: sensitive.sort() };
}

/** Whether two lists name the same variables. */
export function sameNames(a: string[], b: string[]): boolean {
  return JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
}

/** The editor of an app's variables; a variable's name field shows the server's `env.NAME` message. */
export function EnvEditor({ value, onChange, error }: { value: EnvForm[]; onChange: (rows: EnvForm[]) => void; error?: ApiError }) {
  const { t } = useI18n();
  return (
    <RowsEditor<EnvForm>
      legend={t("field.env")}
      help={t("env.editorHelp")}
      testId="env-editor"
      rowTestId="env-row"
      rowClass="env-row"
      value={value}
      onChange={onChange}
      blank={() => ({ key: "", value: "", sensitive: false })}
      addLabel={t("env.add")}
      removeLabel={(n) => t("env.remove", { n })}
      removeShort={t("common.remove")}
      whole={["env", "sensitive_env"]}
      error={error}
    >
      {(row, i, update) => (
        <>
          <Field label={t("env.name")} name={`env.${row.key.trim()}`} error={error}>
            {(p) => (
              <input
                {...p}
                required
                className="mono"
                autoComplete="off"
                spellCheck={false}
                placeholder="LOG_LEVEL"
                value={row.key}
                onChange={(e) => update({ key: e.target.value })}
              />
            )}
          </Field>
          <Field label={t("env.value")} name={`env[${i}].value`} error={error}>
            {(p) => (
              <input
                {...p}
                type={row.sensitive && !row.shown ? "password" : "text"}
                className="mono"
                autoComplete="off"
                spellCheck={false}
                value={row.value}
                onChange={(e) => update({ value: e.target.value })}
              />
            )}
          </Field>
          <div className="row-buttons">
            <label className="check" title={t("env.sensitiveHint")}>
              <input
                type="checkbox"
                name={`sensitive_env[${i}]`}
                checked={row.sensitive}
                onChange={(e) => update({ sensitive: e.target.checked, shown: false })}
              />{" "}
              {t("env.sensitive")}
            </label>
            {row.sensitive ? (
              <button
                type="button"
                className="btn btn-small btn-ghost"
                aria-pressed={!!row.shown}
                aria-label={t(row.shown ? "env.hideOf" : "env.revealOf", { key: row.key || String(i + 1) })}
                onClick={() => update({ shown: !row.shown })}
              >
                {t(row.shown ? "env.hide" : "env.reveal")}
              </button>
            ) : (
              <span className="reveal-slot" />
            )}
          </div>
        </>
      )}
    </RowsEditor>
  );
}

/**
 * A sensitive variable's value: the server's `<redacted>` as a badge; otherwise masked, with a
 * reveal when the user may deploy (who could read it in the deploy form anyway).
 */
export function SensitiveValue({ name, value, canReveal }: { name: string; value: string; canReveal: boolean }) {
  const { t } = useI18n();
  const [shown, setShown] = useState(false);
  if (value === REDACTED)
    return (
      <span data-testid="env-redacted">
        <Badge tone="muted" title={t("env.redactedTitle")}>
          {t("env.redacted")}
        </Badge>
      </span>
    );
  const masked = (
    <span className="masked" aria-label={t("env.masked")} data-testid="env-masked">
      ••••••••
    </span>
  );
  if (!canReveal) return masked;
  return (
    <>
      {shown ? <span className="mono" data-testid="env-revealed">{value}</span> : masked}{" "}
      <button
        type="button"
        className="btn btn-small btn-ghost"
        aria-pressed={shown}
        aria-label={t(shown ? "env.hideOf" : "env.revealOf", { key: name })}
        onClick={() => setShown((s) => !s)}
      >
        {t(shown ? "env.hide" : "env.reveal")}
      </button>
    </>
  );
}

/** An app's variables as the app page lists them: `NAME=value`, sensitive ones through `SensitiveValue`. */
export function EnvList({ env, sensitive, canReveal }: { env: Record<string, string>; sensitive: string[]; canReveal: boolean }) {
  const { t } = useI18n();
  const entries = Object.entries(env);
  if (entries.length === 0) return <>–</>;
  return (
    <ul className="kv">
      {entries.map(([k, v]) => (
        <li key={k} data-env={k}>
          {sensitive.includes(k) ? (
            <>
              <span className="mono">{k}=</span>
              <SensitiveValue name={k} value={v} canReveal={canReveal} />{" "}
              <Badge tone="warn" title={t("env.sensitiveHint")}>
                {t("env.sensitive")}
              </Badge>
            </>
          ) : (
            <span className="mono">
              {k}={v}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}
