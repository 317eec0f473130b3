// Logging in (session cookie + CSRF token) and registering a new account.
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { api, call } from "../api/client";
import { Field, FormError, useAction } from "../components/ui";
import { LangSwitch, ThemeSwitch } from "../components/switches";
import { useI18n } from "../i18n";
import { useSession } from "../session";

function AuthFrame({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <div className="auth">
      <div className="auth-tools">
        <LangSwitch />
        <ThemeSwitch />
      </div>
      <div className="auth-card card">
        <div className="brand auth-brand">
          <img src="/favicon.svg" alt="" width={32} height={32} /> Berth
        </div>
        <h1>{title}</h1>
        {children}
      </div>
    </div>
  );
}

export function LoginPage() {
  const { t } = useI18n();
  const { login } = useSession();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(() => login(username, password));
  };
  return (
    <AuthFrame title={t("login.title")}>
      <form onSubmit={submit} className="form">
        <FormError error={action.error} fields={["username", "password"]} />
        <Field label={t("field.username")} name="username" error={action.error}>
          {(p) => <input {...p} autoComplete="username" autoFocus required value={username} onChange={(e) => setUsername(e.target.value)} />}
        </Field>
        <Field label={t("field.password")} name="password" error={action.error}>
          {(p) => <input {...p} type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />}
        </Field>
        <button type="submit" className="btn btn-primary btn-block" disabled={action.busy}>
          {action.busy ? t("login.signingIn") : t("login.submit")}
        </button>
      </form>
      <p className="auth-alt">
        {t("login.noAccount")} <Link to="/register">{t("login.register")}</Link>
      </p>
    </AuthFrame>
  );
}

export function RegisterPage() {
  const { t } = useI18n();
  const { login } = useSession();
  const navigate = useNavigate();
  const [form, setForm] = useState({ username: "", email: "", display_name: "", password: "", team: "" });
  const action = useAction();
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [k]: e.target.value });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await call(
        api.POST("/api/v1/auth/register", {
          body: {
            username: form.username,
            email: form.email,
            password: form.password,
            display_name: form.display_name || null,
            team: form.team || null,
          },
        }),
      );
      await login(form.username, form.password);
      navigate("/apps");
    });
  };
  const fields = ["username", "email", "display_name", "password", "team"];
  return (
    <AuthFrame title={t("register.title")}>
      <form onSubmit={submit} className="form">
        <FormError error={action.error} fields={fields} />
        <Field label={t("field.username")} name="username" error={action.error}>
          {(p) => <input {...p} autoComplete="username" autoFocus required value={form.username} onChange={set("username")} />}
        </Field>
        <Field label={t("field.email")} name="email" error={action.error}>
          {(p) => <input {...p} type="email" autoComplete="email" required value={form.email} onChange={set("email")} />}
        </Field>
        <Field label={t("field.displayName")} name="display_name" error={action.error}>
          {(p) => <input {...p} autoComplete="name" value={form.display_name} onChange={set("display_name")} />}
        </Field>
        <Field label={t("field.password")} name="password" error={action.error}>
          {(p) => <input {...p} type="password" autoComplete="new-password" required value={form.password} onChange={set("password")} />}
        </Field>
        <Field label={t("register.team")} name="team" error={action.error} hint={t("register.teamHint")}>
          {(p) => <input {...p} value={form.team} onChange={set("team")} />}
        </Field>
        <button type="submit" className="btn btn-primary btn-block" disabled={action.busy}>
          {t("register.submit")}
        </button>
      </form>
      <p className="auth-alt">
        {t("register.haveAccount")} <Link to="/login">{t("login.submit")}</Link>
      </p>
    </AuthFrame>
  );
}
