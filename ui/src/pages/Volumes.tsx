// Volumes: the teams' persistent volumes (filtered by team and name in the URL) with their scope,
// measured size and the apps that mount them, and one volume's page: its facts, delete (refused
// by the server while an app mounts it), a backup downloaded as a tar and a restore uploaded
// from one (per-instance volumes: the slot in the URL).
import { useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, call, rawBody, volumeArchiveUrl, type VolumeDto } from "../api/client";
import { volumePath } from "../components/volumes";
import {
  Empty,
  ErrorBox,
  Field,
  formatBytes,
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
import { AppNameLinks } from "../components/apps";
import { useI18n } from "../i18n";
import { useSession } from "../session";


/** A volume's size as last measured, or "not measured yet". */
function Size({ volume }: { volume: VolumeDto }) {
  const { t } = useI18n();
  if (volume.size_bytes == null) return <span className="muted">{t("volumes.notMeasured")}</span>;
  return <>{formatBytes(volume.size_bytes)}</>;
}

export function VolumesPage() {
  const { t } = useI18n();
  const [params, update] = useUrlFilters();
  const team = params.get("team") ?? "";
  const q = params.get("q") ?? "";
  const label = useEnumLabel();
  const list = useAsync(
    () =>
      team
        ? call(api.GET("/api/v1/teams/{team}/volumes", { params: { path: { team } } }))
        : call(api.GET("/api/v1/volumes")),
    [team],
    10_000,
  );
  return (
    <>
      <PageHeader title={t("volumes.title")} />
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
      <p className="muted">{t("volumes.help")}</p>
      <Loaded state={list}>
        {({ volumes }) => {
          const shown = volumes
            .filter((v) => !q || v.name.includes(q.toLowerCase()))
            .sort((a, b) => `${a.team}/${a.name}`.localeCompare(`${b.team}/${b.name}`));
          if (volumes.length === 0) return <Empty>{t("volumes.empty")}</Empty>;
          if (shown.length === 0) return <Empty>{t("common.noMatch")}</Empty>;
          return (
            <div className="table-wrap">
              <table className="table" data-testid="volumes-table">
                <thead>
                  <tr>
                    <th>{t("volumes.volume")}</th>
                    <th>{t("volumes.scope")}</th>
                    <th>{t("volumes.size")}</th>
                    <th className="hide-narrow">{t("volumes.measured")}</th>
                    <th>{t("volumes.usedBy")}</th>
                    <th className="hide-narrow">{t("volumes.slots")}</th>
                    <th className="hide-narrow">{t("apps.created")}</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((v) => (
                    <tr key={`${v.team}/${v.name}`} data-volume={`${v.team}/${v.name}`}>
                      <td>
                        <Link to={volumePath(v.team, v.name)} className="strong mono">
                          {v.name}
                        </Link>
                        <div className="muted small">{v.team}</div>
                      </td>
                      <td>{label("volumes.scope", v.scope)}</td>
                      <td className="num" data-testid="volume-size">
                        <Size volume={v} />
                      </td>
                      <td className="hide-narrow">
                        <Time value={v.measured_at} />
                      </td>
                      <td>
                        <AppNameLinks testId="volume-used-by" apps={v.used_by} />
                      </td>
                      <td className="hide-narrow num">{v.scope === "per_instance" ? v.slots.join(", ") || "–" : "–"}</td>
                      <td className="hide-narrow">
                        <Time value={v.created_at} />
                      </td>
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

export function VolumeDetailPage() {
  const { team = "", name = "" } = useParams();
  const { t } = useI18n();
  const label = useEnumLabel();
  // Members and owners delete, back up and restore the team's volumes; readers see them.
  const role = useSession().roleIn(team);
  const canWrite = role === "owner" || role === "member";
  const volume = useAsync(
    () => call(api.GET("/api/v1/teams/{team}/volumes/{name}", { params: { path: { team, name } } })),
    [team, name],
    5000,
  );
  if (volume.data === undefined) {
    return volume.error ? <ErrorBox error={volume.error} onRetry={() => void volume.reload()} /> : <Loading />;
  }
  const v = volume.data;
  return (
    <>
      <PageHeader
        title={<span data-testid="volume-name">{`${v.team}/${v.name}`}</span>}
        sub={
          <>
            <Link to={`/volumes?team=${encodeURIComponent(v.team)}`}>← {t("volumes.title")}</Link> · {t("field.team")}:{" "}
            <Link to={`/teams/${v.team}`}>{v.team}</Link>
          </>
        }
        actions={canWrite && <DeleteVolume volume={v} />}
      />
      {volume.error && <div className="alert alert-warn">{t("common.staleData", { message: volume.error.message })}</div>}
      <div className="stack">
        <section className="card">
          <dl className="facts" data-testid="volume-facts">
            <dt>{t("volumes.scope")}</dt>
            <dd>
              {label("volumes.scope", v.scope)}
              <div className="muted small">{t(v.scope === "per_instance" ? "volumes.perInstanceHelp" : "volumes.sharedHelp")}</div>
            </dd>
            <dt>{t("volumes.size")}</dt>
            <dd data-testid="volume-size">
              <Size volume={v} />
            </dd>
            <dt>{t("volumes.measured")}</dt>
            <dd>
              <Time value={v.measured_at} />
            </dd>
            <dt>{t("volumes.usedBy")}</dt>
            <dd>
              <AppNameLinks testId="volume-used-by" apps={v.used_by} />
            </dd>
            {v.scope === "per_instance" && (
              <>
                <dt>{t("volumes.slots")}</dt>
                <dd>{v.slots.join(", ") || "–"}</dd>
              </>
            )}
            <dt>{t("apps.created")}</dt>
            <dd>
              <Time value={v.created_at} /> · {v.created_by}
            </dd>
          </dl>
        </section>
        {canWrite && <BackupRestore volume={v} onRestored={() => void volume.reload()} />}
      </div>
    </>
  );
}

function DeleteVolume({ volume: v }: { volume: VolumeDto }) {
  const { t } = useI18n();
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const action = useAction();
  const full = `${v.team}/${v.name}`;
  const remove = async () => {
    const ok = await confirm({
      title: t("volumes.deleteTitle", { name: full }),
      body: t("volumes.deleteBody"),
      confirm: t("common.delete"),
      danger: true,
      typeToConfirm: v.name,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/teams/{team}/volumes/{name}", { params: { path: { team: v.team, name: v.name } } }));
      toast(t("volumes.deleted", { name: full }));
      navigate(`/volumes?team=${encodeURIComponent(v.team)}`);
    });
  };
  return (
    <div className="app-actions">
      <button type="button" className="btn btn-danger-outline" onClick={remove} disabled={action.busy}>
        {t("common.delete")}
      </button>
      {action.error && (
        <div className="alert alert-error action-error" role="alert" data-testid="volume-delete-error">
          {action.error.message}
        </div>
      )}
    </div>
  );
}

/**
 * The backup (a link: the browser saves the tar as it streams) and the restore (a tar file put
 * as the request's body) of a volume, or of one slot of a per-instance volume.
 */
function BackupRestore({ volume: v, onRestored }: { volume: VolumeDto; onRestored: () => void }) {
  const { t } = useI18n();
  const [params, update] = useUrlFilters();
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const [file, setFile] = useState<File | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const perInstance = v.scope === "per_instance";
  const wanted = Number(params.get("slot") ?? v.slots[0]);
  const slot = perInstance ? (v.slots.includes(wanted) ? wanted : null) : null;
  const ready = !perInstance || slot !== null;
  const full = perInstance && slot !== null ? t("volumes.slotOf", { name: `${v.team}/${v.name}`, slot }) : `${v.team}/${v.name}`;
  const restore = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) return;
    const ok = await confirm({
      title: t("volumes.restoreTitle", { name: full }),
      body: t("volumes.restoreBody", { file: file.name }),
      confirm: t("volumes.restore"),
      danger: true,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(
        api.PUT("/api/v1/teams/{team}/volumes/{name}/archive", {
          params: { path: { team: v.team, name: v.name }, query: slot === null ? undefined : { slot } },
          ...rawBody(file, "application/x-tar"),
        }),
      );
      toast(t("volumes.restored", { name: full, file: file.name }));
      setFile(null);
      if (input.current) input.current.value = "";
      onRestored();
    });
  };
  return (
    <section className="card" data-testid="volume-backup">
      <h2>{t("volumes.backupTitle")}</h2>
      {perInstance &&
        (v.slots.length === 0 ? (
          <p className="muted">{t("volumes.noSlots")}</p>
        ) : (
          <div className="inline-form">
            <label htmlFor="volume-slot">{t("volumes.slot")}</label>
            <select id="volume-slot" value={slot ?? ""} onChange={(e) => update("slot", e.target.value)}>
              {v.slots.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </div>
        ))}
      <p className="muted">{t("volumes.backupHelp")}</p>
      <div className="form-actions">
        {ready ? (
          <a className="btn" href={volumeArchiveUrl(v.team, v.name, slot)} download data-testid="volume-download">
            {t("volumes.download")}
          </a>
        ) : (
          <button type="button" className="btn" disabled>
            {t("volumes.download")}
          </button>
        )}
      </div>
      <h3>{t("volumes.restore")}</h3>
      <p className="muted">{t("volumes.restoreHelp")}</p>
      <form className="form" onSubmit={restore} data-testid="volume-restore-form">
        <FormError error={action.error} fields={["archive"]} />
        <Field label={t("volumes.archive")} name="archive" error={action.error}>
          {(p) => (
            <input
              {...p}
              ref={input}
              type="file"
              accept=".tar,application/x-tar"
              required
              disabled={!ready}
              onChange={(e) => setFile(e.target.files?.[0] ?? null)}
            />
          )}
        </Field>
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={action.busy || !ready || !file}>
            {t("volumes.restore")}
          </button>
        </div>
      </form>
    </section>
  );
}
