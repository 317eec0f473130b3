// An app's readiness and liveness probes in the console: the editor the create and deploy forms
// share (kind HTTP, TCP or none; path, port, period, timeout, thresholds, initial delay) and
// the one-line description the app's settings show.
import type { ApiError, Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { Field } from "./ui";

export type ProbeDto = Schemas["ProbeDto"];
export type ProbeRole = "readiness" | "liveness";

/** A probe as the form edits it: every number as typed, in milliseconds. */
export type ProbeForm = {
  kind: "http" | "tcp" | "none";
  path: string;
  port: string;
  period_ms: string;
  timeout_ms: string;
  failure_threshold: string;
  success_threshold: string;
  initial_delay_ms: string;
};

const text = (n: number | null | undefined, fallback: string) => (n == null ? fallback : String(n));

/** The form of a probe the app has (`null`: none), or of a new HTTP probe on `/healthz`. */
export function probeForm(probe: ProbeDto | null | undefined): ProbeForm {
  return {
    kind: probe === null ? "none" : (probe?.kind ?? "http"),
    path: probe?.path ?? "/healthz",
    port: text(probe?.port, ""),
    period_ms: text(probe?.period_ms, "1000"),
    timeout_ms: text(probe?.timeout_ms, "1000"),
    failure_threshold: text(probe?.failure_threshold, "3"),
    success_threshold: text(probe?.success_threshold, "1"),
    initial_delay_ms: text(probe?.initial_delay_ms, "0"),
  };
}

/** What the API is sent for the form: a whole probe, or `null` to have none. The server checks the values. */
export function probeBody(form: ProbeForm): ProbeDto | null {
  if (form.kind === "none") return null;
  const n = (v: string) => (v.trim() === "" ? null : Number(v));
  return {
    kind: form.kind,
    path: form.kind === "http" ? form.path : null,
    port: n(form.port),
    period_ms: n(form.period_ms),
    timeout_ms: n(form.timeout_ms),
    failure_threshold: n(form.failure_threshold),
    success_threshold: n(form.success_threshold),
    initial_delay_ms: n(form.initial_delay_ms),
  };
}

/** Whether two forms ask for the same probe. */
export function sameProbe(a: ProbeForm, b: ProbeForm): boolean {
  return JSON.stringify(probeBody(a)) === JSON.stringify(probeBody(b));
}

/** One line about a probe: `HTTP /healthz :8080 · every 1000 ms · …`, or "none". */
export function ProbeSummary({ probe, port }: { probe: ProbeDto | null | undefined; port: number }) {
  const { t } = useI18n();
  if (!probe) return <>{t("app.noProbe")}</>;
  const what = probe.kind === "tcp" ? "TCP" : `HTTP ${probe.path ?? "/healthz"}`;
  return (
    <>
      {t("probe.summary", {
        what,
        port: probe.port ?? port,
        period: probe.period_ms ?? 1000,
        timeout: probe.timeout_ms ?? 1000,
        failures: probe.failure_threshold ?? 3,
        delay: probe.initial_delay_ms ?? 0,
      })}
    </>
  );
}

/** The editor of one probe; its fields are named as the server names them (`readiness.path`). */
export function ProbeFields({
  role,
  value,
  onChange,
  error,
}: {
  role: ProbeRole;
  value: ProbeForm;
  onChange: (form: ProbeForm) => void;
  error?: ApiError;
}) {
  const { t } = useI18n();
  const set = (k: keyof ProbeForm) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    onChange({ ...value, [k]: e.target.value });
  const off = value.kind === "none";
  const number = (k: keyof ProbeForm, label: string, min: number, max?: number) => (
    <Field label={label} name={`${role}.${k}`} error={error}>
      {(p) => <input {...p} type="number" min={min} max={max} disabled={off} value={value[k]} onChange={set(k)} />}
    </Field>
  );
  return (
    <fieldset className="probe" data-testid={`probe-${role}`}>
      <legend>{t(role === "readiness" ? "field.readiness" : "field.liveness")}</legend>
      <p className="muted">{t(role === "readiness" ? "probe.readinessHelp" : "probe.livenessHelp")}</p>
      <div className="grid-3">
        <Field label={t("probe.kind")} name={`${role}.kind`} error={error}>
          {(p) => (
            <select {...p} value={value.kind} onChange={set("kind")}>
              <option value="http">{t("probe.kindHttp")}</option>
              <option value="tcp">{t("probe.kindTcp")}</option>
              <option value="none">{t("probe.kindNone")}</option>
            </select>
          )}
        </Field>
        <Field label={t("probe.path")} name={`${role}.path`} error={error}>
          {(p) => <input {...p} className="mono" disabled={value.kind !== "http"} value={value.path} onChange={set("path")} />}
        </Field>
        <Field label={t("probe.port")} name={`${role}.port`} error={error} hint={t("probe.portHint")}>
          {(p) => <input {...p} type="number" min={1} max={65535} disabled={off} value={value.port} onChange={set("port")} />}
        </Field>
      </div>
      <div className="grid-3">
        {number("period_ms", t("probe.period"), 100)}
        {number("timeout_ms", t("probe.timeout"), 50)}
        {number("initial_delay_ms", t("probe.delay"), 0)}
      </div>
      <div className="grid-3">
        {number("failure_threshold", t(role === "readiness" ? "probe.failuresReadiness" : "probe.failuresLiveness"), 1, 100)}
        {/* One passed liveness probe is enough: the server ignores its success threshold. */}
        {role === "readiness" && number("success_threshold", t("probe.successes"), 1, 100)}
      </div>
    </fieldset>
  );
}
