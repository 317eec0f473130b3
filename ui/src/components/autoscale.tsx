// An app's CPU autoscaling: the setting (range, target share of the CPU limit, window), the
// latest evaluation with the numbers of the formula desired = ceil(sum of CPU use / target),
// the recorded decisions, and the form that turns it on, changes it or turns it off.
import { useState, type FormEvent } from "react";
import { api, call, type AppDto, type AutoscaleRequest, type AutoscaleView } from "../api/client";
import { eventMessage } from "./events";
import { Empty, Field, formatCpu, FormError, Time, useAction, useAsync, useToast } from "./ui";
import { useI18n, type Key } from "../i18n";

const FIELDS = [
  "min_instances",
  "max_instances",
  "cpu_percent",
  "window_seconds",
  "tolerance_percent",
  "scale_down_stabilization_seconds",
] as const;
type FieldName = (typeof FIELDS)[number];
type Form = Record<FieldName, string>;

function formOf(view: AutoscaleView | undefined): Form {
  const a = view?.autoscale;
  return {
    min_instances: String(a?.min_instances ?? 1),
    max_instances: String(a?.max_instances ?? Math.max(3, view?.replicas ?? 1)),
    cpu_percent: String(a?.cpu_percent ?? 100),
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
      const body = Object.fromEntries(FIELDS.map((f) => [f, Number(form[f])])) as AutoscaleRequest;
      done(await call(api.PUT("/api/v1/apps/{name}/autoscale", { ...path, body })), t("autoscale.saved"));
    });
  };
  const off = () =>
    void action.run(async () => {
      done(await call(api.DELETE("/api/v1/apps/{name}/autoscale", path)), t("autoscale.turnedOff"));
    });
  const latest = v?.evaluations[0];
  const setting = v?.autoscale;
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
          {app.template.cpu_millis ? t("autoscale.off") : t("autoscale.needsLimit")}
        </p>
      )}
      {!editing && setting && (
        <dl className="facts" data-testid="autoscale-setting">
          <dt>{t("autoscale.range")}</dt>
          <dd className="num">
            {t("autoscale.rangeText", { min: setting.min_instances, max: setting.max_instances, n: v.replicas })}
          </dd>
          <dt>{t("autoscale.target")}</dt>
          <dd className="num">
            {t("autoscale.targetText", {
              percent: setting.cpu_percent,
              limit: v.cpu_limit_millis != null ? formatCpu(v.cpu_limit_millis) : "–",
              window: setting.window_seconds,
            })}
          </dd>
          {latest && (
            <>
              <dt>{t("autoscale.latest")}</dt>
              <dd className="num" data-testid="autoscale-latest">
                {latest.raw == null
                  ? t("autoscale.noSamples")
                  : t("autoscale.formula", {
                      sum: latest.sum_percent.toFixed(1),
                      target: latest.target_percent.toFixed(1),
                      raw: latest.raw,
                      desired: latest.desired,
                    })}{" "}
                {latest.raw != null && <span className="muted">({t(`autoscale.verdict.${latest.verdict}` as Key)})</span>}
                {latest.quota && <div className="alert alert-warn small">{latest.quota}</div>}
              </dd>
            </>
          )}
        </dl>
      )}
      {editing && (
        <form className="form" onSubmit={save} data-testid="autoscale-form">
          <FormError error={action.error} fields={[...FIELDS, "cpu_millis"]} />
          <div className="grid-3">
            {FIELDS.map((f) => (
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
          <p className="muted small">{t("autoscale.hint")}</p>
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
