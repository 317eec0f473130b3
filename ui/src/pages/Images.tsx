// The built-in registry: search repositories, a repository's tags, one image's layers and
// config, deleting tags and images, storage usage, and garbage collection (admins).
import { useState } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { api, call, type GcReportDto, type ImageDto } from "../api/client";
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

/**
 * What GET /images/{repository} answers for a repository (no tag or digest). The server's
 * OpenAPI document declares only ImageDto for that route, so this one shape is written here
 * (crates/api/src/image_dto.rs RepositoryDetailDto, TagDto).
 */
interface RepositoryDetail {
  name: string;
  size_bytes: number;
  tags: { tag: string; digest: string; media_type: string; size_bytes: number; created?: string | null; pushed_at: string }[];
}

function getImage(reference: string) {
  return call(api.GET("/api/v1/images/{reference}", { params: { path: { reference } } }));
}

export function ImagesPage() {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [text, setText] = useState(q);
  const repos = useAsync(() => call(api.GET("/api/v1/images", { params: { query: { search: q || undefined } } })),
    [q],
  );
  return (
    <>
      <PageHeader
        title={t("images.title")}
        actions={
          <Link to="/registry" className="btn">
            {t("nav.registry")}
          </Link>
        }
      />
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
            <Empty>
              {q ? t("common.noMatch") : t("images.empty")}
              {!q && <pre className="hint-code">{`docker login ${location.host}\ndocker tag IMAGE ${location.host}/TEAM/NAME:TAG\ndocker push ${location.host}/TEAM/NAME:TAG`}</pre>}
            </Empty>
          ) : (
            <div className="table-wrap">
              <table className="table" data-testid="repos-table">
                <thead>
                  <tr>
                    <th>{t("images.repository")}</th>
                    <th>{t("images.tags")}</th>
                    <th>{t("images.size")}</th>
                    <th>{t("images.lastPushed")}</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((r) => (
                    <tr key={r.name}>
                      <td>
                        <Link to={`/images/${r.name}`} className="mono strong">
                          {r.name}
                        </Link>
                      </td>
                      <td className="num">{r.tag_count}</td>
                      <td className="num">{formatBytes(r.size_bytes)}</td>
                      <td>
                        <Time value={r.last_pushed} />
                      </td>
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

/** `/images/<team>/<name>` is a repository; with `:tag` or `@digest` it is one image. */
export function ImageDetailPage() {
  const reference = useParams()["*"] ?? "";
  const last = reference.split("/").pop() ?? "";
  const isImage = last.includes(":") || reference.includes("@");
  return isImage ? <ImageView reference={reference} /> : <RepositoryView name={reference} />;
}

function canPush(roleIn: (team: string) => string | null, repository: string) {
  const role = roleIn(repository.split("/")[0] ?? "");
  return role === "owner" || role === "member";
}

function RepositoryView({ name }: { name: string }) {
  const { t } = useI18n();
  const { roleIn } = useSession();
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const repo = useAsync(async () => (await getImage(name)) as unknown as RepositoryDetail, [name]);
  const remove = async (tag: string) => {
    const ok = await confirm({ title: t("images.deleteTagTitle", { ref: `${name}:${tag}` }), body: t("images.deleteTagBody"), confirm: t("common.delete"), danger: true });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/images/{reference}", { params: { path: { reference: `${name}:${tag}` } } }));
      toast(t("images.deleted", { ref: `${name}:${tag}` }));
      await repo.reload();
    });
  };
  return (
    <>
      <PageHeader
        title={<span className="mono">{name}</span>}
        sub={
          <Link to="/images">
            ← {t("images.title")}
          </Link>
        }
      />
      {action.error && <ErrorBox error={action.error} />}
      <Loaded state={repo}>
        {(r) => (
          <section className="card">
            <h2>
              {t("images.tags")} · {formatBytes(r.size_bytes)}
            </h2>
            {r.tags.length === 0 ? (
              <Empty>{t("images.noTags")}</Empty>
            ) : (
              <div className="table-wrap">
                <table className="table" data-testid="tags-table">
                  <thead>
                    <tr>
                      <th>{t("images.tag")}</th>
                      <th className="hide-narrow">{t("images.digest")}</th>
                      <th>{t("images.size")}</th>
                      <th>{t("images.pushed")}</th>
                      <th />
                    </tr>
                  </thead>
                  <tbody>
                    {r.tags.map((x) => (
                      <tr key={x.tag}>
                        <td>
                          <Link to={`/images/${name}:${x.tag}`} className="mono strong">
                            {x.tag}
                          </Link>
                        </td>
                        <td className="hide-narrow mono ellipsis" title={x.digest}>
                          {x.digest.slice(0, 19)}…
                        </td>
                        <td className="num">{formatBytes(x.size_bytes)}</td>
                        <td>
                          <Time value={x.pushed_at} />
                        </td>
                        <td>
                          {canPush(roleIn, name) && (
                            <button type="button" className="btn btn-small btn-danger-outline" onClick={() => remove(x.tag)} disabled={action.busy}>
                              {t("common.delete")}
                            </button>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        )}
      </Loaded>
    </>
  );
}

function ImageView({ reference }: { reference: string }) {
  const { t } = useI18n();
  const { roleIn } = useSession();
  const image = useAsync(() => getImage(reference), [reference]);
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const action = useAction();
  const repository = reference.split(/[:@]/)[0] ?? reference;
  const removeDigest = async (img: ImageDto) => {
    const ok = await confirm({
      title: t("images.deleteImageTitle"),
      body: (
        <p>
          {t("images.deleteImageBody", { tags: img.tags.join(", ") || "–" })} <code>{img.digest}</code>
        </p>
      ),
      confirm: t("common.delete"),
      danger: true,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/images/{reference}", { params: { path: { reference: `${img.repository}@${img.digest}` } } }));
      toast(t("images.deleted", { ref: img.digest.slice(0, 19) }));
      navigate(`/images/${img.repository}`);
    });
  };
  return (
    <>
      <PageHeader
        title={<span className="mono">{reference}</span>}
        sub={<Link to={`/images/${repository}`}>← {repository}</Link>}
        actions={
          image.data &&
          canPush(roleIn, repository) && (
            <button type="button" className="btn btn-danger-outline" onClick={() => removeDigest(image.data!)} disabled={action.busy}>
              {t("images.deleteImage")}
            </button>
          )
        }
      />
      {action.error && <ErrorBox error={action.error} />}
      <Loaded state={image}>{(img) => <ImageDetail img={img} />}</Loaded>
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
            {img.tags.map((x) => (
              <Badge key={x} tone="info">
                {x}
              </Badge>
            ))}
          </dd>
          <dt>{t("images.mediaType")}</dt>
          <dd className="mono">{img.media_type}</dd>
          <dt>{t("images.size")}</dt>
          <dd>{formatBytes(img.size_bytes)}</dd>
          <dt>{t("images.pushed")}</dt>
          <dd>
            <Time value={img.pushed_at} />
          </dd>
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
      <PageHeader title={t("registry.title")} />
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
    </>
  );
}
