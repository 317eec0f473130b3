// External registries: Distribution-compatible registries an admin points Berth at on behalf
// of a team. The list, the form (the password is write-only: the page only says whether one is
// stored), one registry with its repositories, and its repositories and images browsed with the
// built-in registry's views (Images.tsx), deletes included.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, ApiError, call, type ExternalRegistryDto, type ExternalRegistryRequest } from "../api/client";
import { Badge, Empty, ErrorBox, Field, FormError, Loaded, PageHeader, Time, useAction, useAsync, useConfirm, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { ReferenceView, RepositoryBrowser, type ImageSource } from "./Images";

function getRegistry(name: string) {
  return call(api.GET("/api/v1/registries/{name}", { params: { path: { name } } }));
}

function PasswordState({ registry }: { registry: Pick<ExternalRegistryDto, "has_password"> }) {
  const { t } = useI18n();
  return (
    <span data-testid="password-state" data-stored={registry.has_password}>
      <Badge tone={registry.has_password ? "ok" : "muted"}>{registry.has_password ? t("registries.passwordStored") : t("registries.noPassword")}</Badge>
    </span>
  );
}

/** Asks to confirm, then removes the registry from Berth (the registry itself is untouched). */
function useDeleteRegistry() {
  const { t } = useI18n();
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const remove = async (name: string, then: () => void | Promise<void>) => {
    const ok = await confirm({
      title: t("registries.deleteTitle", { name }),
      body: t("registries.deleteBody"),
      confirm: t("common.delete"),
      danger: true,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/registries/{name}", { params: { path: { name } } }));
      toast(t("registries.deleted", { name }));
      await then();
    });
  };
  return { remove, action };
}

export function RegistriesPage() {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const list = useAsync(() => call(api.GET("/api/v1/registries")), []);
  const { remove, action } = useDeleteRegistry();
  return (
    <>
      <PageHeader
        title={t("registries.title")}
        sub={
          <>
            <Link to="/images">{t("images.title")}</Link> · {t("registries.help")}
          </>
        }
        actions={
          isAdmin && (
            <Link to="/registries/new" className="btn btn-primary">
              {t("registries.add")}
            </Link>
          )
        }
      />
      {action.error && <ErrorBox error={action.error} />}
      <Loaded state={list}>
        {(items) =>
          items.length === 0 ? (
            <Empty>
              <p>{isAdmin ? t("registries.emptyAdmin") : t("registries.empty")}</p>
              {isAdmin && (
                <Link to="/registries/new" className="btn btn-primary">
                  {t("registries.add")}
                </Link>
              )}
            </Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="registries-table">
                <thead>
                  <tr>
                    <th>{t("field.name")}</th>
                    <th className="hide-narrow">{t("field.team")}</th>
                    <th className="hide-narrow">{t("registries.url")}</th>
                    <th className="hide-narrow">{t("registries.user")}</th>
                    <th>{t("field.password")}</th>
                    {isAdmin && <th />}
                  </tr>
                </thead>
                <tbody>
                  {items.map((r) => (
                    <tr key={r.name} data-registry={r.name}>
                      <td>
                        <Link to={`/registries/${r.name}`} className="strong">
                          {r.name}
                        </Link>
                      </td>
                      <td className="hide-narrow">
                        <Link to={`/teams/${r.team}`}>{r.team}</Link>
                      </td>
                      <td className="hide-narrow mono break">{r.url}</td>
                      <td className="hide-narrow">{r.username ?? <span className="muted">{t("registries.anonymous")}</span>}</td>
                      <td>
                        <PasswordState registry={r} />
                      </td>
                      {isAdmin && (
                        <td>
                          <div className="row-actions">
                            <Link to={`/registries/${r.name}/edit`} className="btn btn-small" aria-label={`${t("common.edit")} ${r.name}`}>
                              {t("common.edit")}
                            </Link>
                            <button
                              type="button"
                              className="btn btn-small btn-danger-outline"
                              disabled={action.busy}
                              onClick={() => remove(r.name, list.reload)}
                              aria-label={`${t("common.delete")} ${r.name}`}
                            >
                              {t("common.delete")}
                            </button>
                          </div>
                        </td>
                      )}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Loaded>
    </>
  );
}

// ---------- the form ----------

/** `/registries/new` and `/registries/:name/edit` (admins). */
export function RegistryEditPage() {
  const { name } = useParams();
  const { t } = useI18n();
  const { isAdmin } = useSession();
  if (!isAdmin) {
    return (
      <>
        <PageHeader title={t("registries.title")} sub={<Link to="/registries">← {t("registries.title")}</Link>} />
        <div className="alert alert-error" role="alert">
          {t("registries.adminsOnly")}
        </div>
      </>
    );
  }
  return name ? <ExistingRegistry name={name} /> : <RegistryForm initial={null} />;
}

function ExistingRegistry({ name }: { name: string }) {
  const registry = useAsync(() => getRegistry(name), [name]);
  return (
    <Loaded state={registry}>
      {(r) => <RegistryForm initial={r} />}
    </Loaded>
  );
}

const FORM_FIELDS = ["name", "team", "url", "username", "password"];

function RegistryForm({ initial }: { initial: ExternalRegistryDto | null }) {
  const { t } = useI18n();
  const navigate = useNavigate();
  const toast = useToast();
  const teams = useAsync(() => call(api.GET("/api/v1/teams")), []);
  const [form, setForm] = useState(() => ({
    name: initial?.name ?? "",
    team: initial?.team ?? "",
    url: initial?.url ?? "",
    username: initial?.username ?? "",
    password: "",
  }));
  const action = useAction();
  useEffect(() => {
    const first = teams.data?.[0]?.name;
    if (!form.team && first) setForm((f) => ({ ...f, team: first }));
  }, [teams.data, form.team]);
  // After a refused save, the keyboard goes to the field the server named.
  useEffect(() => {
    if (action.error) document.querySelector<HTMLElement>('[data-testid="registry-form"] [aria-invalid="true"]')?.focus();
  }, [action.error]);
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm((f) => ({ ...f, [k]: e.target.value }));
  const username = form.username.trim();
  // What an empty password field does: keep the stored one (same user name), or none.
  const keepsPassword = !!initial?.has_password && username !== "" && username === (initial.username ?? "");
  const dropsPassword = !!initial?.has_password && !keepsPassword && form.password === "";

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const name = form.name.trim();
      if (!name) throw new ApiError(400, "invalid_field", t("registries.nameRequired"), "name");
      if (form.password && !username) throw new ApiError(400, "invalid_field", t("registries.passwordNeedsUser"), "username");
      const body: ExternalRegistryRequest = {
        team: form.team,
        url: form.url.trim(),
        username: username || null,
      };
      if (form.password) body.password = form.password;
      const saved = await call(api.PUT("/api/v1/registries/{name}", { params: { path: { name } }, body }));
      toast(t("registries.saved", { name: saved.name }));
      navigate(`/registries/${saved.name}`);
    });
  };

  const teamNames = useMemo(() => {
    const names = (teams.data ?? []).map((x) => x.name);
    return form.team && !names.includes(form.team) ? [form.team, ...names] : names;
  }, [teams.data, form.team]);

  return (
    <>
      <PageHeader
        title={initial ? t("registries.editTitle", { name: initial.name }) : t("registries.add")}
        sub={
          initial ? (
            <Link to={`/registries/${initial.name}`}>← {initial.name}</Link>
          ) : (
            <Link to="/registries">← {t("registries.title")}</Link>
          )
        }
      />
      <form className="card form form-wide" onSubmit={submit} noValidate data-testid="registry-form">
        <FormError error={action.error} fields={FORM_FIELDS} />
        <div className="grid-2">
          <Field label={t("field.name")} name="name" error={action.error} hint={t("registries.nameHint")}>
            {(p) => <input {...p} required value={form.name} onChange={set("name")} readOnly={!!initial} autoComplete="off" spellCheck={false} />}
          </Field>
          <Field label={t("field.team")} name="team" error={action.error} hint={t("registries.teamHint")}>
            {(p) => (
              <select {...p} value={form.team} onChange={set("team")} required>
                {teamNames.map((x) => (
                  <option key={x} value={x}>
                    {x}
                  </option>
                ))}
              </select>
            )}
          </Field>
        </div>
        <Field label={t("registries.url")} name="url" error={action.error} hint={t("registries.urlHint")}>
          {(p) => (
            <input
              {...p}
              required
              className="mono"
              value={form.url}
              onChange={set("url")}
              placeholder="http://registry.example.com:5000"
              autoComplete="off"
              spellCheck={false}
            />
          )}
        </Field>
        <div className="grid-2">
          <Field label={t("registries.user")} name="username" error={action.error} hint={t("registries.userHint")}>
            {(p) => <input {...p} value={form.username} onChange={set("username")} autoComplete="off" spellCheck={false} />}
          </Field>
          <Field
            label={t("field.password")}
            name="password"
            error={action.error}
            hint={
              <>
                <PasswordState registry={{ has_password: !!initial?.has_password }} />{" "}
                {keepsPassword ? t("registries.passwordKeep") : dropsPassword ? t("registries.passwordDropped") : t("registries.passwordHint")}
              </>
            }
          >
            {(p) => <input {...p} type="password" value={form.password} onChange={set("password")} autoComplete="new-password" />}
          </Field>
        </div>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={action.busy || !form.team}>
            {initial ? t("common.save") : t("registries.add")}
          </button>
          <Link to={initial ? `/registries/${initial.name}` : "/registries"} className="btn">
            {t("common.cancel")}
          </Link>
        </div>
      </form>
    </>
  );
}

// ---------- one registry and its images ----------

/** The external registry `name` as an image source for the shared repository and image views. */
function useExternalSource(registry: ExternalRegistryDto | undefined): ImageSource | undefined {
  const { roleIn } = useSession();
  return useMemo(() => {
    if (!registry) return undefined;
    const name = registry.name;
    const role = roleIn(registry.team);
    return {
      id: `external:${name}`,
      get: (reference: string) => call(api.GET("/api/v1/registries/{name}/images/{reference}", { params: { path: { name, reference } } })),
      remove: async (reference: string) => {
        await call(api.DELETE("/api/v1/registries/{name}/images/{reference}", { params: { path: { name, reference } } }));
      },
      href: (reference: string) => `/registries/${name}/images/${reference}`,
      home: { to: `/registries/${name}`, label: name },
      canDelete: () => role === "owner" || role === "member",
    };
  }, [registry, roleIn]);
}

export function RegistryDetailPage() {
  const { name = "" } = useParams();
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const navigate = useNavigate();
  const registry = useAsync(() => getRegistry(name), [name]);
  const { remove, action } = useDeleteRegistry();
  return (
    <>
      <PageHeader
        title={name}
        sub={<Link to="/registries">← {t("registries.title")}</Link>}
        actions={
          isAdmin &&
          registry.data && (
            <>
              <Link to={`/registries/${name}/edit`} className="btn">
                {t("common.edit")}
              </Link>
              <button type="button" className="btn btn-danger-outline" disabled={action.busy} onClick={() => remove(name, () => navigate("/registries"))}>
                {t("common.delete")}
              </button>
            </>
          )
        }
      />
      {action.error && <ErrorBox error={action.error} />}
      <Loaded state={registry}>
        {(r) => (
          <div className="stack">
            <section className="card">
              <dl className="facts facts-wide" data-testid="registry-facts">
                <dt>{t("field.team")}</dt>
                <dd>
                  <Link to={`/teams/${r.team}`}>{r.team}</Link>
                </dd>
                <dt>{t("registries.url")}</dt>
                <dd className="mono break">{r.url}</dd>
                <dt>{t("registries.user")}</dt>
                <dd>{r.username ?? <span className="muted">{t("registries.anonymous")}</span>}</dd>
                <dt>{t("field.password")}</dt>
                <dd>
                  <PasswordState registry={r} />
                </dd>
                <dt>{t("registries.updated")}</dt>
                <dd>
                  <Time value={r.updated_at} />
                </dd>
              </dl>
            </section>
            <section className="card">
              <h2>{t("registries.repositories")}</h2>
              <RepositoryBrowser
                load={(search) => call(api.GET("/api/v1/registries/{name}/images", { params: { path: { name }, query: { search } } }))}
                deps={[name]}
                href={(repo) => `/registries/${name}/images/${repo}`}
                empty={t("registries.noRepositories")}
              />
            </section>
          </div>
        )}
      </Loaded>
    </>
  );
}

/** `/registries/:name/images/<repo>` is a repository; with `:tag` or `@digest` it is one image. */
export function ExternalImagePage() {
  const params = useParams();
  const name = params.name ?? "";
  const reference = params["*"] ?? "";
  const registry = useAsync(() => getRegistry(name), [name]);
  const source = useExternalSource(registry.data);
  if (!source) {
    return (
      <>
        <PageHeader title={<span className="mono">{reference}</span>} sub={<Link to={`/registries/${name}`}>← {name}</Link>} />
        <Loaded state={registry}>{() => null}</Loaded>
      </>
    );
  }
  return <ReferenceView source={source} reference={reference} />;
}
