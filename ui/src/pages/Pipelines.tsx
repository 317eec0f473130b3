// Code pipelines: the list (filtered by team in the URL, each with its last build), the form
// that creates or edits one (credentials and the webhook secret are write-only), and one
// pipeline's page: its builds (refreshed live), "build now", the git remote to push to, the
// webhook URL and its settings.
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { api, ApiError, call, type BuildDto, type PipelineDto, type PipelineRequest } from "../api/client";
import {
  BuildStatusBadge,
  buildDuration,
  CopyField,
  formatDuration,
  joinArgs,
  ShortSha,
  splitArgs,
  useNow,
  isTerminal,
} from "../components/builds";
import {
  Badge,
  Empty,
  ErrorBox,
  Field,
  FormError,
  Loaded,
  Loading,
  PageHeader,
  TeamFilter,
  Time,
  useAction,
  useAsync,
  useConfirm,
  useEnumLabel,
  useToast,
  useUrlFilters,
} from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { useDeployTeams } from "./CreateApp";

/** Whether the caller may change the team's pipelines and start or cancel builds. */
export function useCanBuild() {
  const { roleIn } = useSession();
  return (team: string) => ["owner", "member"].includes(roleIn(team) ?? "");
}

// ---------- list ----------

export function PipelinesPage() {
  const { t } = useI18n();
  const [params, update] = useUrlFilters();
  const team = params.get("team") ?? "";
  const q = params.get("q") ?? "";
  const deployTeams = useDeployTeams();
  const list = useAsync(
    async () => {
      const pipelines = await call(api.GET("/api/v1/pipelines", { params: { query: team ? { team } : {} } }));
      return pipelines.map((p) => ({ pipeline: p, last: p.last_build ?? null }));
    },
    [team],
    3000,
  );
  const canCreate = deployTeams.length > 0;
  const createLink = (
    <Link to={team ? `/pipelines/new?team=${encodeURIComponent(team)}` : "/pipelines/new"} className="btn btn-primary">
      {t("pipelines.create")}
    </Link>
  );
  return (
    <>
      <PageHeader title={t("pipelines.title")} actions={canCreate && createLink} />
      <div className="toolbar">
        <input
          type="search"
          placeholder={t("apps.searchPlaceholder")}
          aria-label={t("apps.searchPlaceholder")}
          value={q}
          onChange={(e) => update("q", e.target.value)}
        />
        <TeamFilter value={team} onChange={(v) => update("team", v)} />
      </div>
      <Loaded state={list}>
        {(rows) => {
          const shown = rows
            .filter((r) => !q || r.pipeline.name.includes(q.toLowerCase()))
            .sort((a, b) => `${a.pipeline.team}/${a.pipeline.name}`.localeCompare(`${b.pipeline.team}/${b.pipeline.name}`));
          if (rows.length === 0)
            return (
              <Empty>
                <p>{canCreate ? t("pipelines.empty") : t("pipelines.emptyReadOnly")}</p>
                {canCreate && createLink}
              </Empty>
            );
          if (shown.length === 0) return <Empty>{t("common.noMatch")}</Empty>;
          return (
            <div className="table-wrap">
              <table className="table" data-testid="pipelines-table">
                <thead>
                  <tr>
                    <th>{t("field.name")}</th>
                    <th>{t("pipelines.lastBuild")}</th>
                    <th className="hide-narrow">{t("pipelines.repository")}</th>
                    <th className="hide-narrow">{t("pipelines.branches")}</th>
                    <th className="hide-narrow">{t("pipelines.image")}</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map(({ pipeline: p, last }) => (
                    <tr key={`${p.team}/${p.name}`} data-pipeline={`${p.team}/${p.name}`}>
                      <td>
                        <Link to={`/pipelines/${p.team}/${p.name}`} className="strong">
                          {p.name}
                        </Link>
                        <div className="muted small">{p.team}</div>
                      </td>
                      <td>
                        {last ? (
                          <div className="last-build">
                            <Link to={`/builds/${last.id}`}>#{last.number}</Link> <BuildStatusBadge status={last.status} />
                            <span className="muted small">
                              <Time value={last.finished_at ?? last.started_at ?? last.created_at} />
                            </span>
                          </div>
                        ) : (
                          <span className="muted">{t("pipelines.neverBuilt")}</span>
                        )}
                      </td>
                      <td className="hide-narrow mono ellipsis" title={p.repository_url ?? ""}>
                        {p.repository_url ?? <Badge tone="info">{t("pipelines.hosted")}</Badge>}
                      </td>
                      <td className="hide-narrow mono">{p.branch_pattern}</td>
                      <td className="hide-narrow mono">{p.target_repository}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Loaded>
    </>
  );
}

// ---------- create / edit ----------

export function PipelineEditPage() {
  const { team, name } = useParams();
  if (!team || !name) return <PipelineForm initial={null} />;
  return <ExistingPipeline team={team} name={name} />;
}

function ExistingPipeline({ team, name }: { team: string; name: string }) {
  const p = useAsync(() => call(api.GET("/api/v1/pipelines/{team}/{name}", { params: { path: { team, name } } })), [team, name]);
  return <Loaded state={p}>{(d) => <PipelineForm initial={d} />}</Loaded>;
}

type CredKind = "none" | "keep" | "basic" | "ssh";

/** `KEY=VALUE` lines → a map, or an error naming the bad line. */
function parseBuildArgs(text: string, t: ReturnType<typeof useI18n>["t"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const i = line.indexOf("=");
    if (i <= 0) throw new ApiError(400, "invalid_field", t("deploy.badEnvLine", { line }), "build_args");
    out[line.slice(0, i).trim()] = line.slice(i + 1);
  }
  return out;
}

function PipelineForm({ initial }: { initial: PipelineDto | null }) {
  const { t } = useI18n();
  const navigate = useNavigate();
  const toast = useToast();
  const [params] = useSearchParams();
  const teams = useDeployTeams();
  const apps = useAsync(() => call(api.GET("/api/v1/apps")), []);
  const [form, setForm] = useState(() => ({
    team: initial?.team ?? params.get("team") ?? "",
    name: initial?.name ?? "",
    repository_url: initial?.repository_url ?? "",
    branch_pattern: initial?.branch_pattern ?? "main",
    dockerfile: initial?.dockerfile ?? "",
    context: initial?.context ?? "",
    build_args: Object.entries(initial?.build_args ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join("\n"),
    test_command: joinArgs(initial?.test_command ?? []),
    target: initial?.target_repository ?? "",
    deploy_app: initial?.deploy_app ?? "",
    username: "",
    password: "",
    ssh_key: "",
    known_hosts: "",
    webhook_secret: "",
  }));
  // The target repository follows team/name until the user edits it.
  const [targetEdited, setTargetEdited] = useState(!!initial);
  const [cred, setCred] = useState<CredKind>(initial?.has_credentials ? "keep" : "none");
  const [removeSecret, setRemoveSecret] = useState(false);
  const action = useAction();
  useEffect(() => {
    if (!form.team && teams.length) setForm((f) => ({ ...f, team: teams[0] }));
  }, [teams, form.team]);
  // After a refused save, the keyboard goes to the field the server named.
  useEffect(() => {
    if (action.error) document.querySelector<HTMLElement>('[data-testid="pipeline-form"] [aria-invalid="true"]')?.focus();
  }, [action.error]);
  const target = targetEdited ? form.target : form.team ? `${form.team}/${form.name}` : "";
  const teamApps = useMemo(
    () =>
      [...new Set([...(apps.data ?? []).filter((a) => a.team === form.team).map((a) => a.name), ...(form.deploy_app ? [form.deploy_app] : [])])].sort(),
    [apps.data, form.team, form.deploy_app],
  );
  const set =
    (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement>) =>
      setForm((f) => ({ ...f, [k]: e.target.value }));

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      if (!form.name.trim()) throw new ApiError(400, "invalid_field", t("pipeline.nameRequired"), "name");
      let test_command: string[];
      try {
        test_command = splitArgs(form.test_command);
      } catch {
        throw new ApiError(400, "invalid_field", t("pipeline.badQuote"), "test_command");
      }
      const body: PipelineRequest = {
        repository_url: form.repository_url.trim() || null,
        branch_pattern: form.branch_pattern.trim() || null,
        dockerfile: form.dockerfile.trim() || null,
        context: form.context.trim() || null,
        build_args: parseBuildArgs(form.build_args, t),
        test_command,
        target_repository: target.trim(),
        deploy_app: form.deploy_app || null,
      };
      if (cred === "basic") body.credentials = { username: form.username, password: form.password };
      if (cred === "ssh") body.credentials = { ssh_key: form.ssh_key, known_hosts: form.known_hosts.trim() || null };
      if (removeSecret) body.webhook_secret = "";
      else if (form.webhook_secret) body.webhook_secret = form.webhook_secret;
      const saved = await call(
        api.PUT("/api/v1/pipelines/{team}/{name}", { params: { path: { team: form.team, name: form.name.trim() } }, body }),
      );
      toast(t("pipeline.saved", { name: `${saved.team}/${saved.name}` }));
      navigate(`/pipelines/${saved.team}/${saved.name}`);
    });
  };

  const fields = [
    "team",
    "name",
    "repository_url",
    "branch_pattern",
    "dockerfile",
    "context",
    "build_args",
    "test_command",
    "target_repository",
    "deploy_app",
    "credentials",
    "webhook_secret",
  ];
  const title = initial ? t("pipeline.editTitle", { name: `${initial.team}/${initial.name}` }) : t("pipeline.new");
  return (
    <>
      <PageHeader
        title={title}
        sub={
          initial ? (
            <Link to={`/pipelines/${initial.team}/${initial.name}`}>← {`${initial.team}/${initial.name}`}</Link>
          ) : (
            <Link to="/pipelines">← {t("pipelines.title")}</Link>
          )
        }
      />
      <form className="form form-wide" onSubmit={submit} data-testid="pipeline-form" noValidate>
        <FormError error={action.error} fields={fields} />
        <section className="card form">
          <h2>{t("pipeline.source")}</h2>
          <div className="grid-2">
            <Field label={t("field.team")} name="team" error={action.error}>
              {(p) =>
                initial ? (
                  <input {...p} value={form.team} readOnly />
                ) : (
                  <select {...p} value={form.team} onChange={set("team")} required>
                    {[...new Set([...teams, ...(form.team ? [form.team] : [])])].map((x) => (
                      <option key={x}>{x}</option>
                    ))}
                  </select>
                )
              }
            </Field>
            <Field label={t("field.name")} name="name" error={action.error} hint={t("create.nameHint")}>
              {(p) => <input {...p} required value={form.name} onChange={set("name")} readOnly={!!initial} autoComplete="off" />}
            </Field>
          </div>
          <Field label={t("pipeline.field.repository")} name="repository_url" error={action.error} hint={t("pipeline.repositoryHint")}>
            {(p) => (
              <input
                {...p}
                className="mono"
                value={form.repository_url}
                onChange={set("repository_url")}
                placeholder="https://git.example.com/team/app.git"
                autoComplete="off"
                spellCheck={false}
              />
            )}
          </Field>
          <Field label={t("pipeline.field.branchPattern")} name="branch_pattern" error={action.error} hint={t("pipeline.branchPatternHint")}>
            {(p) => <input {...p} className="mono" value={form.branch_pattern} onChange={set("branch_pattern")} spellCheck={false} />}
          </Field>
        </section>

        <section className="card form">
          <h2>{t("pipeline.buildSection")}</h2>
          <div className="grid-2">
            <Field label={t("pipeline.field.dockerfile")} name="dockerfile" error={action.error} hint={t("pipeline.dockerfileHint")}>
              {(p) => <input {...p} className="mono" value={form.dockerfile} onChange={set("dockerfile")} placeholder="Dockerfile" spellCheck={false} />}
            </Field>
            <Field label={t("pipeline.field.context")} name="context" error={action.error} hint={t("pipeline.contextHint")}>
              {(p) => <input {...p} className="mono" value={form.context} onChange={set("context")} placeholder="." spellCheck={false} />}
            </Field>
          </div>
          <Field label={t("pipeline.field.buildArgs")} name="build_args" error={action.error} hint={t("pipeline.buildArgsHint")}>
            {(p) => (
              <textarea {...p} rows={3} className="mono" value={form.build_args} onChange={set("build_args")} spellCheck={false} placeholder="VERSION=1.2" />
            )}
          </Field>
          <Field label={t("pipeline.field.testCommand")} name="test_command" error={action.error} hint={t("pipeline.testCommandHint")}>
            {(p) => (
              <input
                {...p}
                className="mono"
                value={form.test_command}
                onChange={set("test_command")}
                placeholder='sh -c "make test"'
                autoComplete="off"
                spellCheck={false}
              />
            )}
          </Field>
        </section>

        <section className="card form">
          <h2>{t("pipeline.publishSection")}</h2>
          <div className="grid-2">
            <Field
              label={t("pipeline.field.target")}
              name="target_repository"
              error={action.error}
              hint={t("pipeline.targetHint", { team: form.team || "team" })}
            >
              {(p) => (
                <input
                  {...p}
                  required
                  className="mono"
                  value={target}
                  onChange={(e) => {
                    setTargetEdited(true);
                    setForm((f) => ({ ...f, target: e.target.value }));
                  }}
                  spellCheck={false}
                />
              )}
            </Field>
            <Field label={t("pipeline.field.deployApp")} name="deploy_app" error={action.error} hint={t("pipeline.deployAppHint")}>
              {(p) => (
                <select {...p} value={form.deploy_app} onChange={set("deploy_app")}>
                  <option value="">{t("pipeline.deployNone")}</option>
                  {teamApps.map((a) => (
                    <option key={a} value={a}>
                      {a}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          </div>
        </section>

        <section className="card form">
          <h2>{t("pipeline.secretsSection")}</h2>
          <Field
            label={t("pipeline.field.credentials")}
            name="credentials"
            error={action.error}
            hint={
              <>
                <StoredBadge stored={!!initial?.has_credentials} testId="credentials-stored" /> {t("pipeline.credentialsHint")}
              </>
            }
          >
            {(p) => (
              <select {...p} value={cred} onChange={(e) => setCred(e.target.value as CredKind)}>
                {initial?.has_credentials ? (
                  <option value="keep">{t("pipeline.cred.keep")}</option>
                ) : (
                  <option value="none">{t("pipeline.cred.none")}</option>
                )}
                <option value="basic">{t("pipeline.cred.basic")}</option>
                <option value="ssh">{t("pipeline.cred.ssh")}</option>
              </select>
            )}
          </Field>
          {cred === "basic" && (
            <div className="grid-2">
              <Field label={t("pipeline.field.gitUser")} name="credentials.username" error={action.error}>
                {(p) => <input {...p} value={form.username} onChange={set("username")} autoComplete="off" />}
              </Field>
              <Field label={t("pipeline.field.gitPassword")} name="credentials.password" error={action.error}>
                {(p) => <input {...p} type="password" value={form.password} onChange={set("password")} autoComplete="new-password" />}
              </Field>
            </div>
          )}
          {cred === "ssh" && (
            <>
              <Field label={t("pipeline.field.sshKey")} name="credentials.ssh_key" error={action.error}>
                {(p) => (
                  <textarea
                    {...p}
                    rows={5}
                    className="mono"
                    value={form.ssh_key}
                    onChange={set("ssh_key")}
                    spellCheck={false}
                    placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
                  />
                )}
              </Field>
              <Field label={t("pipeline.field.knownHosts")} name="credentials.known_hosts" error={action.error} hint={t("pipeline.knownHostsHint")}>
                {(p) => <textarea {...p} rows={2} className="mono" value={form.known_hosts} onChange={set("known_hosts")} spellCheck={false} />}
              </Field>
            </>
          )}
          <Field
            label={t("pipeline.field.webhookSecret")}
            name="webhook_secret"
            error={action.error}
            hint={
              <>
                <StoredBadge stored={!!initial?.has_webhook_secret} testId="webhook-secret-stored" />{" "}
                {initial?.has_webhook_secret ? t("pipeline.webhookSecretKeep") : t("pipeline.webhookSecretHint")}
              </>
            }
          >
            {(p) => (
              <input
                {...p}
                type="password"
                value={form.webhook_secret}
                onChange={set("webhook_secret")}
                autoComplete="new-password"
                disabled={removeSecret}
              />
            )}
          </Field>
          {initial?.has_webhook_secret && (
            <label className="check">
              <input type="checkbox" checked={removeSecret} onChange={(e) => setRemoveSecret(e.target.checked)} />
              {t("pipeline.removeSecret")}
            </label>
          )}
        </section>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={action.busy || !form.team}>
            {initial ? t("common.save") : t("pipelines.create")}
          </button>
          <Link to={initial ? `/pipelines/${initial.team}/${initial.name}` : "/pipelines"} className="btn">
            {t("common.cancel")}
          </Link>
        </div>
      </form>
    </>
  );
}

function StoredBadge({ stored, testId }: { stored: boolean; testId: string }) {
  const { t } = useI18n();
  return (
    <span data-testid={testId} data-stored={stored}>
      <Badge tone={stored ? "ok" : "muted"}>{stored ? t("pipeline.stored") : t("pipeline.notSet")}</Badge>
    </span>
  );
}

// ---------- one pipeline ----------

export function PipelineDetailPage() {
  const { team = "", name = "" } = useParams();
  const { t } = useI18n();
  const canBuild = useCanBuild()(team);
  const pipeline = useAsync(() => call(api.GET("/api/v1/pipelines/{team}/{name}", { params: { path: { team, name } } })), [team, name], 10_000);
  if (pipeline.data === undefined) {
    return pipeline.error ? <ErrorBox error={pipeline.error} onRetry={() => void pipeline.reload()} /> : <Loading />;
  }
  const p = pipeline.data;
  return (
    <>
      <PageHeader
        title={<span data-testid="pipeline-name">{`${p.team}/${p.name}`}</span>}
        sub={<Link to={`/pipelines?team=${encodeURIComponent(p.team)}`}>← {t("pipelines.title")}</Link>}
        actions={canBuild && <PipelineActions pipeline={p} />}
      />
      {pipeline.error && <div className="alert alert-warn">{t("common.staleData", { message: pipeline.error.message })}</div>}
      <div className="stack">
        <Builds pipeline={p} canBuild={canBuild} />
        <div className="grid-2 cards-2">
          <GitRemote pipeline={p} />
          <Webhook pipeline={p} />
        </div>
        <Settings pipeline={p} />
      </div>
    </>
  );
}

function PipelineActions({ pipeline: p }: { pipeline: PipelineDto }) {
  const { t } = useI18n();
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const action = useAction();
  const full = `${p.team}/${p.name}`;
  const remove = async () => {
    const ok = await confirm({
      title: t("pipeline.deleteTitle", { name: full }),
      body: t("pipeline.deleteBody"),
      confirm: t("common.delete"),
      danger: true,
      typeToConfirm: p.name,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/pipelines/{team}/{name}", { params: { path: { team: p.team, name: p.name } } }));
      toast(t("pipeline.deleted", { name: full }));
      navigate(`/pipelines?team=${encodeURIComponent(p.team)}`);
    });
  };
  return (
    <div className="app-actions">
      <Link to={`/pipelines/${p.team}/${p.name}/edit`} className="btn">
        {t("pipeline.edit")}
      </Link>
      <button type="button" className="btn btn-danger-outline" onClick={remove} disabled={action.busy}>
        {t("common.delete")}
      </button>
      {action.error && (
        <div className="alert alert-error action-error" role="alert">
          {action.error.message}
        </div>
      )}
    </div>
  );
}

const PAGE = 20;

function Builds({ pipeline: p, canBuild }: { pipeline: PipelineDto; canBuild: boolean }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  const [limit, setLimit] = useState(PAGE);
  const builds = useAsync(
    () => call(api.GET("/api/v1/builds", { params: { query: { team: p.team, pipeline: p.name, limit } } })),
    [p.team, p.name, limit],
    2000,
  );
  const running = (builds.data ?? []).some((b) => !isTerminal(b.status));
  const now = useNow(running);
  return (
    <section className="card" data-testid="builds-card">
      <div className="card-head">
        <h2>{t("pipeline.builds")}</h2>
      </div>
      {canBuild && <BuildNow pipeline={p} />}
      {builds.data === undefined ? (
        builds.error ? (
          <ErrorBox error={builds.error} onRetry={() => void builds.reload()} />
        ) : (
          <Loading />
        )
      ) : builds.data.length === 0 ? (
        <Empty>{t("pipeline.noBuilds")}</Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table className="table" data-testid="builds-table">
              <thead>
                <tr>
                  <th>{t("build.number")}</th>
                  <th>{t("build.status")}</th>
                  <th>{t("build.branch")}</th>
                  <th className="hide-narrow">{t("build.commit")}</th>
                  <th className="hide-narrow">{t("build.trigger")}</th>
                  <th className="hide-narrow">{t("build.queued")}</th>
                  <th>{t("build.duration")}</th>
                </tr>
              </thead>
              <tbody>
                {builds.data.map((b: BuildDto) => (
                  <tr key={b.id} data-build={b.number} data-status={b.status}>
                    <td>
                      <Link to={`/builds/${b.id}`} className="strong">
                        #{b.number}
                      </Link>
                    </td>
                    <td>
                      <BuildStatusBadge status={b.status} />
                    </td>
                    <td className="mono">{b.branch ?? "–"}</td>
                    <td className="hide-narrow">
                      <ShortSha sha={b.commit} />{" "}
                      {b.message && (
                        <span className="muted small ellipsis-inline" title={b.message}>
                          {b.message.split("\n")[0]}
                        </span>
                      )}
                    </td>
                    <td className="hide-narrow">{t("build.triggeredBy", { trigger: label("trigger", b.trigger), user: b.triggered_by })}</td>
                    <td className="hide-narrow">
                      <Time value={b.created_at} />
                    </td>
                    <td className="num">{formatDuration(buildDuration(b, now), t)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {builds.data.length >= limit && limit < 500 && (
            <div className="form-actions">
              <button type="button" className="btn btn-small" onClick={() => setLimit((l) => Math.min(500, l + PAGE))}>
                {t("common.loadMore")}
              </button>
            </div>
          )}
        </>
      )}
    </section>
  );
}

/** The default branch of "build now": the pattern when it names one branch. */
function defaultBranch(pattern: string): string {
  return /[*?[\]]/.test(pattern) ? "" : pattern;
}

function BuildNow({ pipeline: p }: { pipeline: PipelineDto }) {
  const { t } = useI18n();
  const toast = useToast();
  const navigate = useNavigate();
  const action = useAction();
  const [branch, setBranch] = useState(defaultBranch(p.branch_pattern));
  const [commit, setCommit] = useState("");
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const b = await call(
        api.POST("/api/v1/pipelines/{team}/{name}/builds", {
          params: { path: { team: p.team, name: p.name } },
          body: { branch: branch.trim() || null, commit: commit.trim() || null },
        }),
      );
      toast(t("pipeline.buildQueued", { n: b.number }));
      navigate(`/builds/${b.id}`);
    });
  };
  return (
    <form className="build-now" onSubmit={submit} data-testid="build-now" aria-label={t("pipeline.buildNow")}>
      <Field label={t("pipeline.buildBranch")} name="branch" error={action.error}>
        {(props) => <input {...props} className="mono" value={branch} onChange={(e) => setBranch(e.target.value)} placeholder={p.branch_pattern} spellCheck={false} />}
      </Field>
      <Field label={t("pipeline.buildCommit")} name="commit" error={action.error}>
        {(props) => (
          <input
            {...props}
            className="mono"
            value={commit}
            onChange={(e) => setCommit(e.target.value)}
            placeholder={t("build.headOfBranch")}
            spellCheck={false}
            autoComplete="off"
          />
        )}
      </Field>
      <button type="submit" className="btn btn-primary" disabled={action.busy}>
        {t("pipeline.buildNow")}
      </button>
      <FormError error={action.error} fields={["branch", "commit"]} />
    </form>
  );
}

function GitRemote({ pipeline: p }: { pipeline: PipelineDto }) {
  const { t } = useI18n();
  const url = window.location.origin + p.git_path;
  const branch = defaultBranch(p.branch_pattern) || "main";
  return (
    <section className="card" data-testid="git-remote">
      <h2>{t("pipeline.push")}</h2>
      <p className="muted">{p.repository_url ? t("pipeline.pushExternal", { url: p.repository_url }) : t("pipeline.pushHelp")}</p>
      <div className="field">
        <span className="label">{t("pipeline.gitRemote")}</span>
        <CopyField value={url} label={t("pipeline.gitRemote")} testId="git-url" />
      </div>
      <div className="field">
        <span className="label">{t("pipeline.remoteCommand")}</span>
        <CopyField value={`git remote add berth ${url}`} label="git remote add" testId="git-remote-command" />
        <CopyField value={`git push berth ${branch}`} label="git push" />
      </div>
    </section>
  );
}

function Webhook({ pipeline: p }: { pipeline: PipelineDto }) {
  const { t } = useI18n();
  const url = window.location.origin + p.webhook_path;
  return (
    <section className="card" data-testid="webhook">
      <h2>
        {t("pipeline.webhook")}{" "}
        <span data-testid="webhook-secret-state" data-stored={p.has_webhook_secret}>
          <Badge tone={p.has_webhook_secret ? "ok" : "warn"}>
            {t("pipeline.field.webhookSecret")}: {p.has_webhook_secret ? t("pipeline.stored") : t("pipeline.notSet")}
          </Badge>
        </span>
      </h2>
      <p className="muted">{t("pipeline.webhookHelp")}</p>
      <div className="field">
        <span className="label">{t("pipeline.webhookUrl")}</span>
        <CopyField value={url} label={t("pipeline.webhookUrl")} testId="webhook-url" />
      </div>
      {!p.has_webhook_secret && <div className="alert alert-warn">{t("pipeline.webhookNoSecret")}</div>}
    </section>
  );
}

function Settings({ pipeline: p }: { pipeline: PipelineDto }) {
  const { t } = useI18n();
  const args = Object.entries(p.build_args);
  return (
    <section className="card">
      <h2>{t("pipeline.settings")}</h2>
      <dl className="facts facts-wide" data-testid="pipeline-settings">
        <dt>{t("pipelines.repository")}</dt>
        <dd className="mono">{p.repository_url ?? <Badge tone="info">{t("pipelines.hosted")}</Badge>}</dd>
        <dt>{t("pipeline.field.branchPattern")}</dt>
        <dd className="mono">{p.branch_pattern}</dd>
        <dt>{t("pipeline.field.dockerfile")}</dt>
        <dd className="mono">{p.dockerfile || "Dockerfile"}</dd>
        <dt>{t("pipeline.field.context")}</dt>
        <dd className="mono">{p.context || "."}</dd>
        <dt>{t("pipeline.field.buildArgs")}</dt>
        <dd>
          {args.length === 0 ? (
            "–"
          ) : (
            <ul className="kv">
              {args.map(([k, v]) => (
                <li key={k} className="mono">
                  {k}={v}
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>{t("pipeline.field.testCommand")}</dt>
        <dd className="mono">{p.test_command.length ? joinArgs(p.test_command) : <span className="muted">{t("pipeline.noTests")}</span>}</dd>
        <dt>{t("pipeline.field.target")}</dt>
        <dd className="mono">
          <Link to={`/images/${p.target_repository}`}>{p.target_repository}</Link>
        </dd>
        <dt>{t("pipeline.field.deployApp")}</dt>
        <dd>{p.deploy_app ? <Link to={`/apps/${p.deploy_app}`}>{p.deploy_app}</Link> : <span className="muted">{t("pipeline.none")}</span>}</dd>
        <dt>{t("pipeline.field.credentials")}</dt>
        <dd>
          <Badge tone={p.has_credentials ? "ok" : "muted"}>{p.has_credentials ? t("pipeline.stored") : t("pipeline.notSet")}</Badge>
        </dd>
        <dt>{t("pipeline.createdBy")}</dt>
        <dd>
          {p.created_by} · <Time value={p.created_at} />
        </dd>
        <dt>{t("apps.updated")}</dt>
        <dd>
          <Time value={p.updated_at} />
        </dd>
      </dl>
    </section>
  );
}
