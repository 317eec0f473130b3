// The built-in registry: search repositories, a repository's tags, one image's layers and
// config, deleting tags and images, storage usage, retention rules and garbage collection
// (admins). The repository and image views take an `ImageSource`, so external registries
// (Registries.tsx) are browsed with the same components.
import { useMemo, useState, type ReactNode } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import {
  api,
  call,
  type GcReportDto,
  type ImageDto,
  type RepositoryDetailDto,
  type RepositoryDto,
  type RepositoryOrImageDto,
} from "../api/client";
import { RetentionRules } from "../components/retention";
import {
  Badge,
  Empty,
  ErrorBox,
  formatBytes,
  Loaded,
  PageHeader,
  Time,
  UsageBar,
  useAction,
  useAsync,
  useConfirm,
  useToast,
} from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

/** Where repositories and images come from: the built-in registry or an external one. */
export interface ImageSource {
  /** Changes when the source does (views reload). */
  id: string;
  /** A repository with its tags (`repo`) or one image (`repo:tag`, `repo@sha256:…`). */
  get(reference: string): Promise<RepositoryOrImageDto>;
  /** Deletes a tag (`repo:tag`) or an image with all its tags (`repo@sha256:…`). */
  remove(reference: string): Promise<void>;
  /** The console's URL of a repository or an image of this source. */
  href(reference: string): string;
  /** The source's list of repositories. */
  home: { to: string; label: string };
  /** Whether the caller may delete from this repository. */
  canDelete(repository: string): boolean;
}

/** Whether the answer is one image (else a repository with its tags). */
export function isImage(answer: RepositoryOrImageDto): answer is ImageDto {
  return "layers" in answer;
}

/**
 * The repository of a reference, as the server splits it: `team/app@sha256:…` and
 * `team/app:tag` (a ':' in the last segment) name images of `team/app`; otherwise the
 * reference is the repository itself (`host:5000/app` has its ':' in the host).
 */
export function repositoryOf(reference: string): { repository: string; isImage: boolean } {
  const at = reference.indexOf("@");
  if (at >= 0) return { repository: reference.slice(0, at), isImage: true };
  const lastSlash = reference.lastIndexOf("/");
  const colon = reference.indexOf(":", lastSlash + 1);
  if (colon >= 0) return { repository: reference.slice(0, colon), isImage: true };
  return { repository: reference, isImage: false };
}

function canPush(roleIn: (team: string) => string | null, repository: string) {
  const role = roleIn(repository.split("/")[0] ?? "");
  return role === "owner" || role === "member";
}

/** The built-in registry as an image source. */
function useBuiltinSource(): ImageSource {
  const { t } = useI18n();
  const { roleIn } = useSession();
  return useMemo<ImageSource>(
    () => ({
      id: "builtin",
      get: (reference) => call(api.GET("/api/v1/images/{reference}", { params: { path: { reference } } })),
      remove: async (reference) => {
        await call(api.DELETE("/api/v1/images/{reference}", { params: { path: { reference } } }));
      },
      href: (reference) => `/images/${reference}`,
      home: { to: "/images", label: t("images.title") },
      canDelete: (repository) => canPush(roleIn, repository),
    }),
    [t, roleIn],
  );
}

/**
 * A search box (its text in the URL's `q`) over a list of repositories, each linking to its
 * page; `empty` is what an empty source shows.
 */
export function RepositoryBrowser({
  load,
  deps,
  href,
  empty,
}: {
  load: (search: string | undefined) => Promise<RepositoryDto[]>;
  deps: unknown[];
  href: (name: string) => string;
  empty: ReactNode;
}) {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [text, setText] = useState(q);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const repos = useAsync(() => load(q || undefined), [q, ...deps]);
  return (
    <>
      <form
        className="toolbar"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setParams(text ? { q: text } : {}, { replace: true });
        }}
      >
        <input type="search" aria-label={t("images.search")} placeholder={t("images.search")} value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit" className="btn">
          {t("common.search")}
        </button>
      </form>
      <Loaded state={repos}>
        {(list) =>
          list.length === 0 ? (
            <Empty>{q ? t("common.noMatch") : empty}</Empty>
          ) : (
            <RepositoryTable list={list} href={href} />
          )
        }
      </Loaded>
    </>
  );
}

function RepositoryTable({ list, href }: { list: RepositoryDto[]; href: (name: string) => string }) {
  const { t } = useI18n();
  // External registries do not say when a tag was pushed: no column of dashes.
  const pushTimes = list.some((r) => r.last_pushed);
  return (
    <div className="table-wrap">
      <table className="table" data-testid="repos-table">
        <thead>
          <tr>
            <th>{t("images.repository")}</th>
            <th>{t("images.tags")}</th>
            <th>{t("images.size")}</th>
            {pushTimes && <th>{t("images.lastPushed")}</th>}
          </tr>
        </thead>
        <tbody>
          {list.map((r) => (
            <tr key={r.name} data-repository={r.name}>
              <td>
                <Link to={href(r.name)} className="mono strong">
                  {r.name}
                </Link>
              </td>
              <td className="num">{r.tag_count}</td>
              <td className="num">{formatBytes(r.size_bytes)}</td>
              {pushTimes && (
                <td>
                  <Time value={r.last_pushed} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function ImagesPage() {
  const { t } = useI18n();
  return (
    <>
      <PageHeader
        title={t("images.title")}
        actions={
          <>
            <Link to="/registries" className="btn">
              {t("registries.title")}
            </Link>
            <Link to="/registry" className="btn">
              {t("nav.registry")}
            </Link>
          </>
        }
      />
      <RepositoryBrowser
        load={(search) => call(api.GET("/api/v1/images", { params: { query: { search } } }))}
        deps={[]}
        href={(name) => `/images/${name}`}
        empty={
          <>
            {t("images.empty")}
            <pre className="hint-code">{`docker login ${location.host}\ndocker tag IMAGE ${location.host}/TEAM/NAME:TAG\ndocker push ${location.host}/TEAM/NAME:TAG`}</pre>
          </>
        }
      />
    </>
  );
}

/** `/images/<team>/<name>` is a repository; with `:tag` or `@digest` it is one image. */
export function ImageDetailPage() {
  const reference = useParams()["*"] ?? "";
  const source = useBuiltinSource();
  return <ReferenceView source={source} reference={reference} />;
}

/**
 * A repository or an image of a source, as the server answers the reference: the page shows
 * whichever shape came back.
 */
export function ReferenceView({ source, reference }: { source: ImageSource; reference: string }) {
  const answer = useAsync(() => source.get(reference), [source.id, reference]);
  const d = answer.data;
  if (d === undefined) {
    const { repository, isImage: image } = repositoryOf(reference);
    return (
      <>
        <PageHeader
          title={<span className="mono">{reference}</span>}
          sub={image ? <Link to={source.href(repository)}>← {repository}</Link> : <Link to={source.home.to}>← {source.home.label}</Link>}
        />
        <Loaded state={answer}>{() => null}</Loaded>
      </>
    );
  }
  // A failed refresh (the last tag deleted took the repository with it) shows under the header.
  const stale = answer.error && <ErrorBox error={answer.error} onRetry={() => void answer.reload()} />;
  return isImage(d) ? (
    <ImageView source={source} reference={reference} img={d} stale={stale} />
  ) : (
    <RepositoryView source={source} repo={d} reload={answer.reload} stale={stale} />
  );
}

function RepositoryView({
  source,
  repo,
  reload,
  stale,
}: {
  source: ImageSource;
  repo: RepositoryDetailDto;
  reload: () => Promise<void>;
  stale: ReactNode;
}) {
  const { t } = useI18n();
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const name = repo.name;
  const canDelete = source.canDelete(name);
  const remove = async (tag: string) => {
    const ok = await confirm({ title: t("images.deleteTagTitle", { ref: `${name}:${tag}` }), body: t("images.deleteTagBody"), confirm: t("common.delete"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await source.remove(`${name}:${tag}`);
      toast(t("images.deleted", { ref: `${name}:${tag}` }));
      await reload();
    });
  };
  const pushTimes = repo.tags.some((x) => x.pushed_at);
  return (
    <>
      <PageHeader
        title={<span className="mono">{name}</span>}
        sub={
          <Link to={source.home.to}>
            ← {source.home.label}
          </Link>
        }
      />
      {stale}
      {action.error && <ErrorBox error={action.error} />}
      <section className="card">
        <h2>
          {t("images.tags")} · {formatBytes(repo.size_bytes)}
        </h2>
        {repo.tags.length === 0 ? (
          <Empty>{t("images.noTags")}</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="tags-table">
              <thead>
                <tr>
                  <th>{t("images.tag")}</th>
                  <th className="hide-narrow">{t("images.digest")}</th>
                  <th>{t("images.size")}</th>
                  <th>{pushTimes ? t("images.pushed") : t("images.created")}</th>
                  {canDelete && <th />}
                </tr>
              </thead>
              <tbody>
                {repo.tags.map((x) => (
                  <tr key={x.tag} data-tag={x.tag}>
                    <td>
                      <Link to={source.href(`${name}:${x.tag}`)} className="mono strong">
                        {x.tag}
                      </Link>
                    </td>
                    <td className="hide-narrow mono ellipsis" title={x.digest}>
                      {x.digest.slice(0, 19)}…
                    </td>
                    <td className="num">{formatBytes(x.size_bytes)}</td>
                    <td>
                      <Time value={pushTimes ? x.pushed_at : x.created} />
                    </td>
                    {canDelete && (
                      <td>
                        <button
                          type="button"
                          className="btn btn-small btn-danger-outline"
                          onClick={() => remove(x.tag)}
                          disabled={action.busy}
                          aria-label={`${t("common.delete")} ${name}:${x.tag}`}
                        >
                          {t("common.delete")}
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function ImageView({ source, reference, img, stale }: { source: ImageSource; reference: string; img: ImageDto; stale: ReactNode }) {
  const { t } = useI18n();
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const action = useAction();
  const repository = img.repository;
  const removeDigest = async () => {
    const ok = await confirm({
      title: t("images.deleteImageTitle"),
      body: (
        <p>
          {t("images.deleteImageBody", { tags: img.tags.join(", ") || "–" })} <code className="break">{img.digest}</code>
        </p>
      ),
      confirm: t("common.delete"),
      danger: true,
    });
    if (!ok) return;
    await action.run(async () => {
      await source.remove(`${img.repository}@${img.digest}`);
      toast(t("images.deleted", { ref: img.digest.slice(0, 19) }));
      navigate(source.href(img.repository));
    });
  };
  return (
    <>
      <PageHeader
        title={<span className="mono break">{reference}</span>}
        sub={<Link to={source.href(repository)}>← {repository}</Link>}
        actions={
          source.canDelete(repository) && (
            <button type="button" className="btn btn-danger-outline" onClick={removeDigest} disabled={action.busy}>
              {t("images.deleteImage")}
            </button>
          )
        }
      />
      {stale}
      {action.error && <ErrorBox error={action.error} />}
      <ImageDetail img={img} />
    </>
  );
}

function ImageDetail({ img }: { img: ImageDto }) {
  const { t } = useI18n();
  const c = img.config;
  return (
    <div className="stack" data-testid="image-detail">
      <section className="card">
        <h2>{t("images.summary")}</h2>
        <dl className="facts facts-wide">
          <dt>{t("images.digest")}</dt>
          <dd className="mono break">{img.digest}</dd>
          <dt>{t("images.tags")}</dt>
          <dd>
            {img.tags.length === 0
              ? "–"
              : img.tags.map((x) => (
                  <Badge key={x} tone="info">
                    {x}
                  </Badge>
                ))}
          </dd>
          <dt>{t("images.mediaType")}</dt>
          <dd className="mono">{img.media_type}</dd>
          <dt>{t("images.size")}</dt>
          <dd>{formatBytes(img.size_bytes)}</dd>
          {img.pushed_at && (
            <>
              <dt>{t("images.pushed")}</dt>
              <dd>
                <Time value={img.pushed_at} />
              </dd>
            </>
          )}
          {c?.created && (
            <>
              <dt>{t("images.created")}</dt>
              <dd>
                <Time value={c.created} />
              </dd>
            </>
          )}
          {c && (
            <>
              <dt>{t("images.platform")}</dt>
              <dd>
                {c.os ?? "?"}/{c.architecture ?? "?"}
              </dd>
            </>
          )}
        </dl>
      </section>
      {img.platforms.length > 0 && (
        <section className="card">
          <h2>{t("images.platforms")}</h2>
          <ul className="kv">
            {img.platforms.map((p) => (
              <li key={p.digest} className="mono">
                {p.os}/{p.architecture}
                {p.variant ? `/${p.variant}` : ""} · {formatBytes(p.size)} · {p.digest.slice(0, 19)}…
              </li>
            ))}
          </ul>
        </section>
      )}
      <section className="card">
        <h2>
          {t("images.layers")} ({img.layers.length})
        </h2>
        <div className="table-wrap">
          <table className="table" data-testid="layers-table">
            <thead>
              <tr>
                <th>#</th>
                <th>{t("images.digest")}</th>
                <th>{t("images.size")}</th>
                <th className="hide-narrow">{t("images.mediaType")}</th>
              </tr>
            </thead>
            <tbody>
              {img.layers.map((l, i) => (
                <tr key={l.digest + i}>
                  <td className="num">{i + 1}</td>
                  <td className="mono ellipsis" title={l.digest}>
                    {l.digest}
                  </td>
                  <td className="num">{formatBytes(l.size)}</td>
                  <td className="hide-narrow mono small">{l.media_type}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      {c && (
        <section className="card">
          <h2>{t("images.config")}</h2>
          <dl className="facts facts-wide" data-testid="image-config">
            <dt>{t("images.entrypoint")}</dt>
            <dd className="mono">{c.entrypoint?.join(" ") || "–"}</dd>
            <dt>{t("images.cmd")}</dt>
            <dd className="mono">{c.cmd?.join(" ") || "–"}</dd>
            <dt>{t("images.workingDir")}</dt>
            <dd className="mono">{c.working_dir || "–"}</dd>
            <dt>{t("images.user")}</dt>
            <dd className="mono">{c.user || "–"}</dd>
            <dt>{t("images.ports")}</dt>
            <dd className="mono">{c.exposed_ports.join(", ") || "–"}</dd>
            <dt>{t("field.env")}</dt>
            <dd>
              <ul className="kv">
                {c.env.map((e) => (
                  <li key={e} className="mono break">
                    {e}
                  </li>
                ))}
              </ul>
            </dd>
            <dt>{t("field.labels")}</dt>
            <dd>
              {Object.keys(c.labels).length === 0 ? (
                "–"
              ) : (
                <ul className="kv">
                  {Object.entries(c.labels).map(([k, v]) => (
                    <li key={k} className="mono break">
                      {k}={String(v)}
                    </li>
                  ))}
                </ul>
              )}
            </dd>
          </dl>
          {c.history.length > 0 && (
            <>
              <h3>{t("images.history")}</h3>
              <ol className="history">
                {c.history.map((h, i) => (
                  <li key={i} className={h.empty_layer ? "muted" : undefined}>
                    <code className="break">{h.created_by || h.comment || "–"}</code>
                  </li>
                ))}
              </ol>
            </>
          )}
        </section>
      )}
    </div>
  );
}

export function RegistryPage() {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const usage = useAsync(() => call(api.GET("/api/v1/registry/usage")), []);
  const teams = useAsync(() => call(api.GET("/api/v1/teams")), []);
  const confirm = useConfirm();
  const action = useAction();
  const [untagged, setUntagged] = useState(false);
  const [report, setReport] = useState<GcReportDto | null>(null);
  const gc = async () => {
    const ok = await confirm({
      title: t("registry.gcTitle"),
      body: untagged ? t("registry.gcBodyUntagged") : t("registry.gcBody"),
      confirm: t("registry.gcRun"),
      danger: untagged,
    });
    if (!ok) return;
    await action.run(async () => {
      const r = await call(api.POST("/api/v1/registry/gc", { body: { delete_untagged_manifests: untagged } }));
      setReport(r);
      await usage.reload();
    });
  };
  const quotaOf = (team: string) => teams.data?.find((x) => x.name === team)?.quota.registry_bytes;
  return (
    <>
      <PageHeader
        title={t("registry.title")}
        actions={
          <Link to="/registries" className="btn">
            {t("registries.title")}
          </Link>
        }
      />
      <div className="stack">
        <Loaded state={usage}>
          {(u) => (
            <div className="stack">
              {isAdmin && (
                <section className="card">
                  <h2>{t("registry.total")}</h2>
                  <dl className="facts">
                    <dt>{t("registry.logical")}</dt>
                    <dd>{formatBytes(u.total_bytes)}</dd>
                    <dt>{t("registry.stored")}</dt>
                    <dd>{formatBytes(u.stored_bytes)}</dd>
                  </dl>
                </section>
              )}
              <section className="card">
                <h2>{t("registry.byTeam")}</h2>
                {u.teams.length === 0 ? (
                  <Empty>{t("images.empty")}</Empty>
                ) : (
                  u.teams.map((x) => <UsageBar key={x.name} label={x.name} used={x.bytes} limit={quotaOf(x.name)} format={formatBytes} />)
                )}
              </section>
              <section className="card">
                <h2>{t("registry.byRepository")}</h2>
                {u.repositories.length === 0 ? (
                  <Empty>{t("images.empty")}</Empty>
                ) : (
                  <div className="table-wrap">
                    <table className="table">
                      <tbody>
                        {[...u.repositories]
                          .sort((a, b) => b.bytes - a.bytes)
                          .map((r) => (
                            <tr key={r.name}>
                              <td>
                                <Link to={`/images/${r.name}`} className="mono">
                                  {r.name}
                                </Link>
                              </td>
                              <td className="num">{formatBytes(r.bytes)}</td>
                            </tr>
                          ))}
                      </tbody>
                    </table>
                  </div>
                )}
              </section>
            </div>
          )}
        </Loaded>
        <RetentionRules repositories={usage.data?.repositories.map((r) => r.name) ?? []} onApplied={() => void usage.reload()} />
        {isAdmin && (
          <section className="card" data-testid="gc-card">
            <h2>{t("registry.gc")}</h2>
            <p className="muted">{t("registry.gcHelp")}</p>
            <label className="check">
              <input type="checkbox" checked={untagged} onChange={(e) => setUntagged(e.target.checked)} /> {t("registry.gcUntagged")}
            </label>
            <div className="form-actions">
              <button type="button" className="btn btn-primary" onClick={gc} disabled={action.busy}>
                {action.busy ? t("registry.gcRunning") : t("registry.gcRun")}
              </button>
            </div>
            {action.error && <ErrorBox error={action.error} />}
            {report && (
              <div className="alert alert-ok" data-testid="gc-report">
                {t("registry.gcReport", {
                  freed: formatBytes(report.bytes_freed),
                  blobs: report.blobs_deleted,
                  manifests: report.manifests_deleted,
                  ms: report.duration_ms,
                })}
              </div>
            )}
          </section>
        )}
      </div>
    </>
  );
}
