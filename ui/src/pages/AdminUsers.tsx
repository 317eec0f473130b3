// Admins: every user (disable, enable, delete, make admin), creating users, and whether
// anyone may register.
import { useState, type FormEvent } from "react";
import { api, ApiError, call, type UserDto } from "../api/client";
import { Badge, ErrorBox, Field, FormError, Loaded, PageHeader, Time, useAction, useAsync, useConfirm, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

export function AdminUsersPage() {
  const { t } = useI18n();
  const { isAdmin, me } = useSession();
  const users = useAsync(() => call(api.GET("/api/v1/users")), []);
  const settings = useAsync(() => call(api.GET("/api/v1/settings")), []);
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  if (!isAdmin) return <ErrorBox error={new ApiError(403, "forbidden", t("admin.only"))} />;
  const act = async (u: UserDto, verb: "disable" | "enable" | "delete" | "admin") => {
    if (verb === "delete") {
      const ok = await confirm({ title: t("admin.deleteTitle", { user: u.username }), body: t("admin.deleteBody"), confirm: t("common.delete"), danger: true, typeToConfirm: u.username });
      if (!ok) return;
    }
    if (verb === "disable") {
      const ok = await confirm({ title: t("admin.disableTitle", { user: u.username }), body: t("admin.disableBody"), confirm: t("admin.disable"), danger: true });
      if (!ok) return;
    }
    await action.run(async () => {
      const path = { params: { path: { username: u.username } } };
      if (verb === "disable") await call(api.POST("/api/v1/users/{username}/disable", path));
      if (verb === "enable") await call(api.POST("/api/v1/users/{username}/enable", path));
      if (verb === "delete") await call(api.DELETE("/api/v1/users/{username}", path));
      if (verb === "admin") await call(api.PATCH("/api/v1/users/{username}", { ...path, body: { is_admin: !u.is_admin } }));
      toast(t("admin.done", { user: u.username }));
      await users.reload();
    });
  };
  const toggleRegistration = (open: boolean) =>
    action.run(async () => {
      const s = await call(api.PUT("/api/v1/settings", { body: { registration_open: open } }));
      settings.setData(s);
    });
  return (
    <>
      <PageHeader title={t("admin.title")} />
      {action.error && <ErrorBox error={action.error} />}
      <section className="card">
        <h2>{t("admin.registration")}</h2>
        <Loaded state={settings}>
          {(s) => (
            <label className="check">
              <input type="checkbox" checked={s.registration_open} onChange={(e) => void toggleRegistration(e.target.checked)} data-testid="registration-open" />{" "}
              {t("admin.registrationOpen")}
            </label>
          )}
        </Loaded>
      </section>
      <section className="card">
        <h2>{t("admin.users")}</h2>
        <Loaded state={users}>
          {(list) => (
            <div className="table-wrap">
              <table className="table" data-testid="users-table">
                <thead>
                  <tr>
                    <th>{t("field.username")}</th>
                    <th className="hide-narrow">{t("field.email")}</th>
                    <th>{t("admin.status")}</th>
                    <th className="hide-narrow">{t("apps.created")}</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {list.map((u) => (
                    <tr key={u.id} data-user={u.username}>
                      <td>
                        <span className="strong">{u.username}</span>
                        {u.display_name && <div className="small muted">{u.display_name}</div>}
                      </td>
                      <td className="hide-narrow">{u.email}</td>
                      <td>
                        {u.is_admin && <Badge tone="info">{t("admin.admin")}</Badge>}{" "}
                        {u.disabled ? <Badge tone="bad">{t("admin.disabled")}</Badge> : <Badge tone="ok">{t("admin.active")}</Badge>}
                      </td>
                      <td className="hide-narrow">
                        <Time value={u.created_at} />
                      </td>
                      <td>
<div className="row-actions">
                        {u.username !== me?.user.username && (
                          <>
                            {u.disabled ? (
                              <button type="button" className="btn btn-small" onClick={() => void act(u, "enable")}>
                                {t("admin.enable")}
                              </button>
                            ) : (
                              <button type="button" className="btn btn-small" onClick={() => void act(u, "disable")}>
                                {t("admin.disable")}
                              </button>
                            )}
                            <button type="button" className="btn btn-small" onClick={() => void act(u, "admin")}>
                              {u.is_admin ? t("admin.revokeAdmin") : t("admin.makeAdmin")}
                            </button>
                            <button type="button" className="btn btn-small btn-danger-outline" onClick={() => void act(u, "delete")}>
                              {t("common.delete")}
                            </button>
                          </>
                        )}
                      </div>
</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Loaded>
      </section>
      <CreateUser onCreated={() => void users.reload()} />
    </>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const { t } = useI18n();
  const [form, setForm] = useState({ username: "", email: "", password: "", display_name: "", is_admin: false });
  const action = useAction();
  const toast = useToast();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      await call(api.POST("/api/v1/users", { body: { ...form, display_name: form.display_name || null } }));
      toast(t("admin.created", { user: form.username }));
      setForm({ username: "", email: "", password: "", display_name: "", is_admin: false });
      onCreated();
    });
  };
  const set = (k: "username" | "email" | "password" | "display_name") => (e: React.ChangeEvent<HTMLInputElement>) => setForm({ ...form, [k]: e.target.value });
  return (
    <form className="card form" onSubmit={submit}>
      <h2>{t("admin.createUser")}</h2>
      <FormError error={action.error} fields={["username", "email", "password", "display_name"]} />
      <div className="grid-2">
        <Field label={t("field.username")} name="username" error={action.error}>
          {(p) => <input {...p} required value={form.username} onChange={set("username")} />}
        </Field>
        <Field label={t("field.email")} name="email" error={action.error}>
          {(p) => <input {...p} type="email" required value={form.email} onChange={set("email")} />}
        </Field>
        <Field label={t("field.displayName")} name="display_name" error={action.error}>
          {(p) => <input {...p} value={form.display_name} onChange={set("display_name")} />}
        </Field>
        <Field label={t("field.password")} name="password" error={action.error}>
          {(p) => <input {...p} type="password" autoComplete="new-password" required value={form.password} onChange={set("password")} />}
        </Field>
      </div>
      <label className="check">
        <input type="checkbox" checked={form.is_admin} onChange={(e) => setForm({ ...form, is_admin: e.target.checked })} /> {t("admin.admin")}
      </label>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {t("admin.createUser")}
        </button>
      </div>
    </form>
  );
}
