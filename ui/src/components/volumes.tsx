// An app's volumes in the console: the mounts editor the create and deploy forms share (rows of
// name, path, scope and read-only, each field showing the server's `volumes[i].…` message), the
// mounts as the app page lists them (each volume a link to its page), and the choice, when an
// app is deleted, of deleting its volumes with it.
import { useState } from "react";
import { Link } from "react-router";
import type { ApiError, VolumeMountDto } from "../api/client";
import { useI18n } from "../i18n";
import { Badge, Field, fieldProblem, useEnumLabel } from "./ui";

/** One mount as the form edits it. */
export type MountForm = { name: string; path: string; scope: "shared" | "per_instance"; read_only: boolean };

/** The page of a team's volume. */
export function volumePath(team: string, name: string): string {
  return `/volumes/${encodeURIComponent(team)}/${encodeURIComponent(name)}`;
}

/** The form of an app's mounts. */
export function mountForms(mounts: VolumeMountDto[] | null | undefined): MountForm[] {
  return (mounts ?? []).map((m) => ({ name: m.name, path: m.path, scope: m.scope ?? "shared", read_only: !!m.read_only }));
}

/** What the API is sent: every row, in order, so that the server's `volumes[i]` names row i. */
export function mountsBody(rows: MountForm[]): VolumeMountDto[] {
  return rows.map((r) => ({ name: r.name.trim(), path: r.path.trim(), scope: r.scope, read_only: r.read_only }));
}

/** Whether two forms ask for the same mounts. */
export function sameMounts(a: MountForm[], b: MountForm[]): boolean {
  return JSON.stringify(mountsBody(a)) === JSON.stringify(mountsBody(b));
}

/** The editor of an app's mounts; its fields are named as the server names them (`volumes[0].path`). */
export function VolumeMountsEditor({
  value,
  onChange,
  error,
}: {
  value: MountForm[];
  onChange: (rows: MountForm[]) => void;
  error?: ApiError;
}) {
  const { t } = useI18n();
  const update = (i: number, change: Partial<MountForm>) => onChange(value.map((row, j) => (j === i ? { ...row, ...change } : row)));
  // A problem with the list as a whole (too many mounts), which no row's field shows.
  const whole = fieldProblem(error, "volumes");
  return (
    <fieldset className="probe" data-testid="volumes-editor">
      <legend>{t("field.volumes")}</legend>
      <p className="muted">{t("volumes.editorHelp")}</p>
      {value.map((row, i) => (
        <div className="volume-row" key={i} data-testid="volume-row">
          <Field label={t("volumes.volume")} name={`volumes[${i}].name`} error={error}>
            {(p) => <input {...p} required className="mono" value={row.name} onChange={(e) => update(i, { name: e.target.value })} />}
          </Field>
          <Field label={t("volumes.path")} name={`volumes[${i}].path`} error={error}>
            {(p) => (
              <input {...p} required className="mono" placeholder="/data" value={row.path} onChange={(e) => update(i, { path: e.target.value })} />
            )}
          </Field>
          <Field label={t("volumes.scope")} name={`volumes[${i}].scope`} error={error}>
            {(p) => (
              <select {...p} value={row.scope} onChange={(e) => update(i, { scope: e.target.value as MountForm["scope"] })}>
                <option value="shared">{t("volumes.scope.shared")}</option>
                <option value="per_instance">{t("volumes.scope.per_instance")}</option>
              </select>
            )}
          </Field>
          <label className="check">
            <input
              type="checkbox"
              name={`volumes[${i}].read_only`}
              checked={row.read_only}
              onChange={(e) => update(i, { read_only: e.target.checked })}
            />{" "}
            {t("volumes.readOnly")}
          </label>
          <button
            type="button"
            className="btn btn-danger-outline"
            aria-label={t("volumes.removeMount", { n: i + 1 })}
            onClick={() => onChange(value.filter((_, j) => j !== i))}
          >
            {t("volumes.removeMountShort")}
          </button>
        </div>
      ))}
      {whole?.field === "volumes" && (
        <div className="field-error" data-field="volumes">
          {t("field.volumes")}: {whole.message}
        </div>
      )}
      <div>
        <button
          type="button"
          className="btn btn-small"
          onClick={() => onChange([...value, { name: "", path: "", scope: "shared", read_only: false }])}
        >
          {t("volumes.addMount")}
        </button>
      </div>
    </fieldset>
  );
}

/** An app's mounts: volume (a link to its page) → path, its scope, read-only. */
export function MountList({ team, mounts }: { team: string; mounts: VolumeMountDto[] }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  if (mounts.length === 0) return <>–</>;
  return (
    <ul className="kv">
      {mounts.map((m) => (
        <li key={m.path} data-volume={m.name}>
          <Link to={volumePath(team, m.name)} className="mono">
            {m.name}
          </Link>{" "}
          → <span className="mono">{m.path}</span> <Badge tone="info">{label("volumes.scope", m.scope ?? "shared")}</Badge>
          {m.read_only && (
            <>
              {" "}
              <Badge tone="muted">{t("volumes.readOnly")}</Badge>
            </>
          )}
        </li>
      ))}
    </ul>
  );
}

/**
 * In the confirmation of an app's deletion: whether its volumes go with it, said back with the
 * volumes that are kept (or deleted). `onChange` hears the choice.
 */
export function DeleteVolumesChoice({ team, names, onChange }: { team: string; names: string[]; onChange: (yes: boolean) => void }) {
  const { t } = useI18n();
  const [checked, setChecked] = useState(false);
  const volumes = names.map((n) => `${team}/${n}`).join(", ");
  return (
    <div data-testid="delete-volumes">
      <label className="check">
        <input
          type="checkbox"
          name="delete_volumes"
          checked={checked}
          onChange={(e) => {
            setChecked(e.target.checked);
            onChange(e.target.checked);
          }}
        />{" "}
        {t("app.deleteVolumes")}
      </label>
      <p className="small" data-testid="delete-volumes-note">
        {t(checked ? "app.volumesDeletedNote" : "app.volumesKeptNote", { volumes })}
      </p>
    </div>
  );
}
