// The user's own account: profile, password, API tokens (the secret is shown once), teams,
// and closing the account.
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { api, call } from "../api/client";
import { Badge, Empty, ErrorBox, Field, FormError, Loaded, PageHeader, Time, useAction, useAsync, useConfirm, useEnumLabel, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

export function AccountPage() {
  const { t } = useI18n();
  const { me } = useSession();
  const role = useEnumLabel();
  if (!me) return null;
  return (
    <>
      <PageHeader title={t("account.title")} sub={me.user.username} />
      <div className="stack">
        <Profile />
        <section className="card">
          <h2>{t("account.teams")}</h2>
          {me.teams.length === 0 ? (
            <Empty>{t("account.noTeams")}</Empty>
          ) : (
            <ul className="kv">
              {me.teams.map((x) => (
                <li key={x.team}>
                  <Link to={`/teams/${x.team}`}>{x.team}</Link> · {role("role", x.role)}
                </li>
              ))}
            </ul>
          )}
        </section>
        <Password />
        <Tokens />
        <CloseAccount />
      </div>
    </>
  );
}

function Profile() {
  const { t } = useI18n();
  const { me, refresh } = useSession();
  const [form, setForm] = useState({ email: me?.user.email ?? "", display_name: me?.user.display_name ?? "" });
  const action = useAction();
  const toast = useToast();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await call(api.PATCH("/api/v1/me", { body: form }));
      await refresh();
      toast(t("account.saved"));
    });
  };
  return (
    <form className="card form" onSubmit={submit}>
      <h2>{t("account.profile")}</h2>
      <FormError error={action.error} fields={["email", "display_name"]} />
      <div className="grid-2">
        <Field label={t("field.email")} name="email" error={action.error}>
          {(p) => <input {...p} type="email" value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />}
        </Field>
        <Field label={t("field.displayName")} name="display_name" error={action.error}>
          {(p) => <input {...p} value={form.display_name} onChange={(e) => setForm({ ...form, display_name: e.target.value })} />}
        </Field>
      </div>
      <div className="form-actions">
        <button type="submit" className="btn" disabled={action.busy}>
          {t("common.save")}
        </button>
      </div>
    </form>
  );
}

function Password() {
  const { t } = useI18n();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const action = useAction();
  const toast = useToast();
  const mismatch = repeat !== "" && next !== repeat;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (mismatch) return;
    void action.run(async () => {
      await call(api.POST("/api/v1/me/password", { body: { current_password: current, new_password: next } }));
      setCurrent("");
      setNext("");
      setRepeat("");
      toast(t("account.passwordChanged"));
    });
  };
  return (
    <form className="card form" onSubmit={submit} data-testid="password-form">
      <h2>{t("account.password")}</h2>
      <FormError error={action.error} fields={["current_password", "new_password"]} />
      <div className="grid-3">
        <Field label={t("account.currentPassword")} name="current_password" error={action.error}>
          {(p) => <input {...p} type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />}
        </Field>
        <Field label={t("account.newPassword")} name="new_password" error={action.error}>
          {(p) => <input {...p} type="password" autoComplete="new-password" required value={next} onChange={(e) => setNext(e.target.value)} />}
        </Field>
        <div className={"field" + (mismatch ? " field-invalid" : "")}>
          <label htmlFor="pw-repeat">{t("account.repeatPassword")}</label>
          <input id="pw-repeat" type="password" autoComplete="new-password" required value={repeat} onChange={(e) => setRepeat(e.target.value)} aria-invalid={mismatch || undefined} />
          {mismatch && <div className="field-error">{t("account.mismatch")}</div>}
        </div>
      </div>
      <div className="form-actions">
        <button type="submit" className="btn" disabled={action.busy || mismatch}>
          {t("account.changePassword")}
        </button>
      </div>
    </form>
  );
}

function Tokens() {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const tokens = useAsync(() => call(api.GET("/api/v1/me/tokens")), []);
  const [name, setName] = useState("");
  const [days, setDays] = useState("90");
  const [scope, setScope] = useState<"full" | "metrics">("full");
  const [secret, setSecret] = useState<string | null>(null);
  const action = useAction();
  const confirm = useConfirm();
  const create = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const r = await call(api.POST("/api/v1/me/tokens", { body: { name, expires_in_days: days ? Number(days) : null, scope } }));
      setSecret(r.token);
      setName("");
      await tokens.reload();
    });
  };
  const revoke = async (id: number, tokenName: string) => {
    const ok = await confirm({ title: t("tokens.revokeTitle", { name: tokenName }), body: t("tokens.revokeBody"), confirm: t("tokens.revoke"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/me/tokens/{id}", { params: { path: { id } } }));
      await tokens.reload();
    });
  };
  return (
    <section className="card">
      <h2>{t("tokens.title")}</h2>
      <p className="muted">{t("tokens.help")}</p>
      {secret && (
        <div className="alert alert-ok" data-testid="token-secret">
          <div>{t("tokens.shownOnce")}</div>
          <code className="secret">{secret}</code>
          <div className="form-actions">
            <button type="button" className="btn btn-small" onClick={() => void navigator.clipboard?.writeText(secret)}>
              {t("common.copy")}
            </button>
            <button type="button" className="btn btn-small" onClick={() => setSecret(null)}>
              {t("common.dismiss")}
            </button>
          </div>
        </div>
      )}
      <form className="inline-form" onSubmit={create}>
        <Field label={t("field.name")} name="name" error={action.error}>
          {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <Field label={t("tokens.expiresInDays")} name="expires_in_days" error={action.error}>
          {(p) => <input {...p} type="number" min={1} className="input-narrow" value={days} onChange={(e) => setDays(e.target.value)} />}
        </Field>
        {isAdmin && (
          <Field label={t("tokens.scope")} name="scope" error={action.error}>
            {(p) => (
              <select {...p} value={scope} onChange={(e) => setScope(e.target.value === "metrics" ? "metrics" : "full")}>
                <option value="full">{t("tokens.scopeFull")}</option>
                <option value="metrics">{t("tokens.scopeMetrics")}</option>
              </select>
            )}
          </Field>
        )}
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("tokens.create")}
        </button>
      </form>
      {action.error && !["name", "expires_in_days", "scope"].includes(action.error.field ?? "") && <ErrorBox error={action.error} />}
      <Loaded state={tokens}>
        {(list) =>
          list.length === 0 ? (
            <Empty>{t("tokens.empty")}</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="tokens-table">
                <thead>
                  <tr>
                    <th>{t("field.name")}</th>
                    <th>{t("tokens.prefix")}</th>
                    <th>{t("apps.created")}</th>
                    <th className="hide-narrow">{t("tokens.expires")}</th>
                    <th className="hide-narrow">{t("tokens.lastUsed")}</th>
                    <th>{t("tokens.scope")}</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {list.map((x) => (
                    <tr key={x.id} data-token={x.name}>
                      <td className="strong">{x.name}</td>
                      <td className="mono">{x.prefix}…</td>
                      <td>
                        <Time value={x.created_at} />
                      </td>
                      <td className="hide-narrow">{x.expires_at ? <Time value={x.expires_at} /> : t("tokens.never")}</td>
                      <td className="hide-narrow">{x.last_used_at ? <Time value={x.last_used_at} /> : t("tokens.never")}</td>
                      <td>{x.scope === "metrics" ? t("tokens.scopeMetrics") : t("tokens.scopeFull")}</td>
                      <td>
                        {x.revoked ? (
                          <Badge tone="muted">{t("tokens.revoked")}</Badge>
                        ) : (
                          <button type="button" className="btn btn-small btn-danger-outline" onClick={() => void revoke(x.id, x.name)}>
                            {t("tokens.revoke")}
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </section>
  );
}

function CloseAccount() {
  const { t } = useI18n();
  const { logout } = useSession();
  const navigate = useNavigate();
  const [password, setPassword] = useState("");
  const action = useAction();
  const confirm = useConfirm();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await confirm({ title: t("account.closeTitle"), body: t("account.closeBody"), confirm: t("account.close"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/me", { body: { password } }));
      await logout().catch(() => {});
      navigate("/login");
    });
  };
  return (
    <form className="card form" onSubmit={(e) => void submit(e)}>
      <h2>{t("account.close")}</h2>
      <p className="muted">{t("account.closeHelp")}</p>
      <FormError error={action.error} fields={["password"]} />
      <div className="inline-form">
        <Field label={t("field.password")} name="password" error={action.error}>
          {(p) => <input {...p} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
        </Field>
        <button type="submit" className="btn btn-danger" disabled={action.busy}>
          {t("account.close")}
        </button>
      </div>
    </form>
  );
}
