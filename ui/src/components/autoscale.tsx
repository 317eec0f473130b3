// An app's autoscaling: the setting (range, metric — CPU share of the limit, requests in flight
// or requests per second per instance — and window), the latest evaluation with the numbers of
// the formula desired = ceil(sum / target) (and a request metric's burst and panic), the
// recorded decisions, and the form that turns it on, changes it or turns it off.
import { useState, type FormEvent } from "react";
import { api, call, type AppDto, type AutoscaleRequest, type AutoscaleView } from "../api/client";
import { eventMessage } from "./events";
import { Empty, Field, formatCpu, FormError, Time, useAction, useAsync, useToast } from "./ui";
import { useI18n, type Key } from "../i18n";

const METRICS = ["cpu", "concurrency", "rps"] as const;
type Metric = (typeof METRICS)[number];
const COMMON = ["min_instances", "max_instances", "window_seconds", "tolerance_percent", "scale_down_stabilization_seconds"] as const;
const CPU_FIELDS = ["cpu_percent"] as const;
const REQUEST_FIELDS = ["target", "panic_window_seconds", "panic_threshold_percent"] as const;
type FieldName = (typeof COMMON)[number] | (typeof CPU_FIELDS)[number] | (typeof REQUEST_FIELDS)[number];
type Form = Record<FieldName, string> & { metric: Metric };

/** The number fields the metric takes, in the order they are shown. */
function fieldsOf(metric: Metric): FieldName[] {
  const [min, max, ...rest] = COMMON;
  return [min, max, ...(metric === "cpu" ? CPU_FIELDS : REQUEST_FIELDS), ...rest];
}

function metricOf(name: string | undefined): Metric {
  return METRICS.find((m) => m === name) ?? "cpu";
}

function formOf(view: AutoscaleView | undefined): Form {
  const a = view?.autoscale;
  return {
    metric: metricOf(a?.metric),
    min_instances: String(a?.min_instances ?? 1),
    max_instances: String(a?.max_instances ?? Math.max(3, view?.replicas ?? 1)),
    cpu_percent: String(a?.cpu_percent ?? 100),
    target: String(a?.target || 10),
    panic_window_seconds: String(a?.panic_window_seconds ?? 6),
    panic_threshold_percent: String(a?.panic_threshold_percent ?? 200),
    window_seconds: String(a?.window_seconds ?? 60),
    tolerance_percent: String(a?.tolerance_percent ?? 10),
    scale_down_stabilization_seconds: String(a?.scale_down_stabilization_seconds ?? 300),
  };
}

export function Autoscaling({ app, canWrite, onChange }: { app: AppDto; canWrite: boolean; onChange: () => void }) {
  const { t } = useI18n();
  const toast = useToast();
  const action = useAction();
  const path = { params: { path: { name: app.name } } };
  const view = useAsync(() => call(api.GET("/api/v1/apps/{name}/autoscale", path)), [app.name], 5000);
  const [editing, setEditing] = useState(false);
  const [form, setForm] = useState<Form>(formOf(undefined));
  const v = view.data;
  const edit = () => {
    setForm(formOf(v));
    setEditing(true);
  };
  const done = (next: AutoscaleView, message: string) => {
    view.setData(next);
    setEditing(false);
    onChange();
    toast(message);
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const numbers = Object.fromEntries(fieldsOf(form.metric).map((f) => [f, Number(form[f])]));
      const body = { ...numbers, metric: form.metric } as AutoscaleRequest;
      done(await call(api.PUT("/api/v1/apps/{name}/autoscale", { ...path, body })), t("autoscale.saved"));
    });
  };
  const off = () =>
    void action.run(async () => {
      done(await call(api.DELETE("/api/v1/apps/{name}/autoscale", path)), t("autoscale.turnedOff"));
    });
  const latest = v?.evaluations[0];
  const setting = v?.autoscale;
  const metric = metricOf(setting?.metric);
  const unit = (value: number) => t(`autoscale.unit.${metricOf(latest?.metric)}` as Key, { value: value.toFixed(metric === "cpu" ? 1 : 2) });
  return (
    <section className="card" data-testid="app-autoscale">
      <div className="card-head">
        <h2>{t("autoscale.title")}</h2>
        {canWrite && !editing && v && (
          <button type="button" className="btn btn-small" onClick={edit} data-testid="edit-autoscale">
            {setting ? t("autoscale.change") : t("autoscale.turnOn")}
          </button>
        )}
      </div>
      {!editing && !setting && (
        <p className="muted small" data-testid="autoscale-off">
          {app.template.cpu_millis ? t("autoscale.off") : t("autoscale.offNoLimit")}
        </p>
      )}
      {!editing && setting && (
        <dl className="facts" data-testid="autoscale-setting">
          <dt>{t("autoscale.range")}</dt>
          <dd className="num">
            {t("autoscale.rangeText", { min: setting.min_instances, max: setting.max_instances, n: v.replicas })}
          </dd>
          <dt>{t("autoscale.target")}</dt>
          <dd className="num" data-testid="autoscale-target">
            {metric === "cpu"
              ? t("autoscale.targetText", {
                  percent: setting.cpu_percent,
                  limit: v.cpu_limit_millis != null ? formatCpu(v.cpu_limit_millis) : "–",
                  window: setting.window_seconds,
                })
              : t(`autoscale.targetText.${metric}` as Key, {
                  target: setting.target,
                  window: setting.window_seconds,
                  panicWindow: setting.panic_window_seconds,
                  threshold: setting.panic_threshold_percent,
                })}
          </dd>
          {latest && (
            <>
              <dt>{t("autoscale.latest")}</dt>
              <dd className="num" data-testid="autoscale-latest">
                {latest.raw == null
                  ? t("autoscale.noSamples")
                  : t("autoscale.formula", {
                      sum: unit(latest.sum),
                      target: unit(latest.target),
                      raw: latest.raw,
                      desired: latest.desired,
                    })}{" "}
                {latest.burst != null && latest.burst_raw != null && (
                  <span data-testid="autoscale-burst">
                    {t(latest.panic ? "autoscale.burst.panic" : "autoscale.burst", {
                      window: setting.panic_window_seconds,
                      burst: unit(latest.burst),
                      raw: latest.burst_raw,
                    })}{" "}
                  </span>
                )}
                {latest.raw != null && <span className="muted">({t(`autoscale.verdict.${latest.verdict}` as Key)})</span>}
                {latest.quota && <div className="alert alert-warn small">{latest.quota}</div>}
              </dd>
            </>
          )}
        </dl>
      )}
      {editing && (
        <form className="form" onSubmit={save} data-testid="autoscale-form">
          <FormError error={action.error} fields={[...fieldsOf(form.metric), "metric", "cpu_millis"]} />
          <Field label={t("autoscale.field.metric")} name="metric" error={action.error}>
            {(p) => (
              <select {...p} value={form.metric} onChange={(e) => setForm({ ...form, metric: metricOf(e.target.value) })}>
                {METRICS.map((m) => (
                  <option key={m} value={m}>
                    {t(`autoscale.metric.${m}` as Key)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <div className="grid-3">
            {fieldsOf(form.metric).map((f) => (
              <Field key={f} label={t(`autoscale.field.${f}` as Key)} name={f} error={action.error}>
                {(p) => (
                  <input
                    {...p}
                    type="number"
                    min={0}
                    value={form[f]}
                    onChange={(e) => setForm({ ...form, [f]: e.target.value })}
                  />
                )}
              </Field>
            ))}
          </div>
          <p className="muted small">{t(form.metric === "cpu" ? "autoscale.hint" : "autoscale.hint.requests")}</p>
          <div className="form-actions">
            <button type="submit" className="btn btn-primary" disabled={action.busy}>
              {t("autoscale.save")}
            </button>
            {setting && (
              <button type="button" className="btn btn-danger-outline" onClick={off} disabled={action.busy} data-testid="autoscale-off-button">
                {t("autoscale.turnOff")}
              </button>
            )}
            <button type="button" className="btn" onClick={() => setEditing(false)}>
              {t("common.cancel")}
            </button>
          </div>
        </form>
      )}
      {!editing && v && v.decisions.length > 0 && (
        <>
          <h3>{t("autoscale.decisions")}</h3>
          <ul className="timeline" data-testid="autoscale-decisions">
            {v.decisions.slice(0, 10).map((e) => (
              <li key={e.id} data-kind={e.kind} className={e.warning ? "warning" : undefined}>
                <Time value={e.at} /> {eventMessage(t, e)}
              </li>
            ))}
          </ul>
        </>
      )}
      {!editing && v && setting && v.decisions.length === 0 && <Empty>{t("autoscale.noDecisions")}</Empty>}
    </section>
  );
}
