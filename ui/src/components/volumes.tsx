// An app's volumes in the console: the mounts editor the create and deploy forms share (rows of
// name, path, scope and read-only in the shared `RowsEditor`, each field showing the server's
// `volumes[i].…` message), the mounts as the app page lists them (each volume a link to its
// page), and the choice, when an app is deleted, of deleting its volumes with it.
import { useState } from "react";
import { Link } from "react-router";
import type { ApiError, VolumeMountDto } from "../api/client";
import { useI18n } from "../i18n";
import { RowsEditor } from "./rows";
import { Badge, Field, useEnumLabel } from "./ui";

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
  return (
    <RowsEditor<MountForm>
      legend={t("field.volumes")}
      help={t("volumes.editorHelp")}
      testId="volumes-editor"
      rowTestId="volume-row"
      rowClass="volume-row"
      value={value}
      onChange={onChange}
      blank={() => ({ name: "", path: "", scope: "shared", read_only: false })}
      addLabel={t("volumes.addMount")}
      removeLabel={(n) => t("volumes.removeMount", { n })}
      removeShort={t("common.remove")}
      whole={["volumes"]}
      error={error}
    >
      {(row, i, update) => (
        <>
          <Field label={t("volumes.volume")} name={`volumes[${i}].name`} error={error}>
            {(p) => <input {...p} required className="mono" value={row.name} onChange={(e) => update({ name: e.target.value })} />}
          </Field>
          <Field label={t("volumes.path")} name={`volumes[${i}].path`} error={error}>
            {(p) => (
              <input {...p} required className="mono" placeholder="/data" value={row.path} onChange={(e) => update({ path: e.target.value })} />
            )}
          </Field>
          <Field label={t("volumes.scope")} name={`volumes[${i}].scope`} error={error}>
            {(p) => (
              <select {...p} value={row.scope} onChange={(e) => update({ scope: e.target.value as MountForm["scope"] })}>
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
              onChange={(e) => update({ read_only: e.target.checked })}
            />{" "}
            {t("volumes.readOnly")}
          </label>
        </>
      )}
    </RowsEditor>
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
