// Admins: domain reservations (a domain and every name under it kept for one team) and the
// app that receives on-demand domains (customers' own hosts, certificates ordered at the first
// handshake after the app's ask path approves).
import { useState, type FormEvent } from "react";
import { api, ApiError, call } from "../api/client";
import { Empty, ErrorBox, Field, FormError, Loaded, PageHeader, Time, useAction, useAsync, useConfirm, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

export function AdminDomainsPage() {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  if (!isAdmin) return <ErrorBox error={new ApiError(403, "forbidden", t("admin.only"))} />;
  return (
    <>
      <PageHeader title={t("domains.title")} sub={t("domains.sub")} />
      <Reservations />
      <OnDemand />
    </>
  );
}

function Reservations() {
  const { t } = useI18n();
  const toast = useToast();
  const confirm = useConfirm();
  const action = useAction();
  const list = useAsync(() => call(api.GET("/api/v1/domain-reservations")), []);
  const [form, setForm] = useState({ domain: "", team: "" });
  const reserve = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await call(
        api.PUT("/api/v1/domain-reservations/{domain}", {
          params: { path: { domain: form.domain.trim() } },
          body: { team: form.team.trim() },
        }),
      );
      toast(t("domains.reserved", { domain: form.domain.trim(), team: form.team.trim() }));
      setForm({ domain: "", team: "" });
      await list.reload();
    });
  };
  const release = async (domain: string) => {
    const ok = await confirm({ title: t("domains.releaseTitle", { domain }), body: t("domains.releaseBody"), confirm: t("domains.release"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/domain-reservations/{domain}", { params: { path: { domain } } }));
      toast(t("domains.released", { domain }));
      await list.reload();
    });
  };
  return (
    <section className="card" data-testid="domain-reservations">
      <h2>{t("domains.reservations")}</h2>
      <p className="muted small">{t("domains.reservationsHelp")}</p>
      <Loaded state={list}>
        {(rows) =>
          rows.length === 0 ? (
            <Empty>{t("domains.noReservations")}</Empty>
          ) : (
            <table className="table">
              <thead>
                <tr>
                  <th>{t("domains.domain")}</th>
                  <th>{t("domains.team")}</th>
                  <th>{t("domains.by")}</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.domain} data-domain={r.domain}>
                    <td className="mono">{r.domain}</td>
                    <td>{r.team}</td>
                    <td className="muted">
                      {r.created_by} · <Time value={r.created_at} />
                    </td>
                    <td>
                      <button type="button" className="btn btn-small btn-danger-outline" onClick={() => void release(r.domain)} disabled={action.busy}>
                        {t("domains.release")}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
      <form className="form" onSubmit={reserve} data-testid="reserve-form">
        <FormError error={action.error} fields={["domain", "team"]} />
        <div className="grid-3">
          <Field label={t("domains.domain")} name="domain" error={action.error}>
            {(p) => <input {...p} required value={form.domain} onChange={(e) => setForm({ ...form, domain: e.target.value })} className="mono" placeholder="example.com" />}
          </Field>
          <Field label={t("domains.team")} name="team" error={action.error}>
            {(p) => <input {...p} required value={form.team} onChange={(e) => setForm({ ...form, team: e.target.value })} />}
          </Field>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={action.busy}>
            {t("domains.reserve")}
          </button>
        </div>
      </form>
    </section>
  );
}

function OnDemand() {
  const { t } = useI18n();
  const toast = useToast();
  const action = useAction();
  const current = useAsync(() => call(api.GET("/api/v1/system/on-demand-domains")), []);
  const [form, setForm] = useState({ app: "", ask_path: "" });
  const save = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const body = { app: form.app.trim(), ask_path: form.ask_path.trim() || null };
      current.setData(await call(api.PUT("/api/v1/system/on-demand-domains", { body })));
      toast(t("domains.onDemandSaved", { app: body.app }));
    });
  };
  const clear = () =>
    void action.run(async () => {
      await call(api.DELETE("/api/v1/system/on-demand-domains"));
      current.setData({ app: null, ask_path: null });
      toast(t("domains.onDemandCleared"));
    });
  return (
    <section className="card" data-testid="on-demand-domains">
      <h2>{t("domains.onDemand")}</h2>
      <p className="muted small">{t("domains.onDemandHelp")}</p>
      <Loaded state={current}>
        {(c) => (
          <p data-testid="on-demand-current">
            {c.app ? t("domains.onDemandApp", { app: c.app, ask: c.ask_path ?? t("domains.onDemandNoAsk") }) : t("domains.onDemandNone")}{" "}
            {c.app && (
              <button type="button" className="btn btn-small btn-danger-outline" onClick={clear} disabled={action.busy}>
                {t("domains.onDemandClear")}
              </button>
            )}
          </p>
        )}
      </Loaded>
      <form className="form" onSubmit={save} data-testid="on-demand-form">
        <FormError error={action.error} fields={["app", "ask_path"]} />
        <div className="grid-3">
          <Field label={t("domains.app")} name="app" error={action.error}>
            {(p) => <input {...p} required value={form.app} onChange={(e) => setForm({ ...form, app: e.target.value })} />}
          </Field>
          <Field label={t("domains.askPath")} name="ask_path" error={action.error} hint={t("domains.askPathHint")}>
            {(p) => <input {...p} value={form.ask_path} onChange={(e) => setForm({ ...form, ask_path: e.target.value })} className="mono" placeholder="/tls-ask" />}
          </Field>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={action.busy}>
            {t("domains.onDemandSave")}
          </button>
        </div>
      </form>
    </section>
  );
}
