// Retention rules of the built-in registry (on the registry page): the stored rules, a form to
// add or change one (the rule being changed is in the URL: `/registry?rule=team/app`), applying
// one now with what it deleted, and deleting one. Applying never deletes an image a kept app
// revision uses; the server's refusals are shown as it words them.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { api, ApiError, call, type RetentionReportDto, type RetentionRuleDto } from "../api/client";
import { useI18n } from "../i18n";
import { useSession } from "../session";
import { Empty, ErrorBox, Field, FormError, Loaded, Time, useAction, useAsync, useConfirm, useToast } from "./ui";

const DAY_MS = 86_400_000;

function canPush(roleIn: (team: string) => string | null, repository: string) {
  const role = roleIn(repository.split("/")[0] ?? "");
  return role === "owner" || role === "member";
}

/** Milliseconds as days, to two decimals (`1.5`). */
function days(ms: number): string {
  return String(Math.round((ms / DAY_MS) * 100) / 100);
}

export function RetentionRules({ repositories, onApplied }: { repositories: string[]; onApplied: () => void }) {
  const { t, lang } = useI18n();
  const { isAdmin, roleIn, writableTeams } = useSession();
  const dayFormat = new Intl.NumberFormat(lang, { style: "unit", unit: "day", unitDisplay: "long", maximumFractionDigits: 2 });
  const rules = useAsync(() => call(api.GET("/api/v1/registry/retention-rules")), []);
  const [params, setParams] = useSearchParams();
  const editing = params.get("rule");
  const confirm = useConfirm();
  const toast = useToast();
  const action = useAction();
  const [report, setReport] = useState<{ repository: string; report: RetentionReportDto } | null>(null);
  const canWrite = isAdmin || writableTeams.length > 0;

  const setEditing = (repository: string | null) =>
    setParams(
      (p) => {
        const next = new URLSearchParams(p);
        if (repository) next.set("rule", repository);
        else next.delete("rule");
        return next;
      },
      { replace: true },
    );

  const apply = async (rule: RetentionRuleDto) => {
    const ok = await confirm({
      title: t("retention.applyTitle", { repository: rule.repository }),
      body: t("retention.applyBody"),
      confirm: t("retention.apply"),
      danger: true,
    });
    if (!ok) return;
    setReport(null);
    await action.run(async () => {
      const r = await call(
        api.POST("/api/v1/registry/retention", {
          body: {
            repository: rule.repository,
            keep_newest_tags: rule.keep_newest_tags ?? null,
            delete_untagged_older_than_ms: rule.delete_untagged_older_than_ms ?? null,
          },
        }),
      );
      setReport({ repository: rule.repository, report: r });
      onApplied();
    });
  };

  const remove = async (rule: RetentionRuleDto) => {
    const ok = await confirm({
      title: t("retention.deleteTitle", { repository: rule.repository }),
      body: t("retention.deleteBody"),
      confirm: t("common.delete"),
      danger: true,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(api.DELETE("/api/v1/registry/retention-rules/{repository}", { params: { path: { repository: rule.repository } } }));
      toast(t("retention.deleted", { repository: rule.repository }));
      if (editing === rule.repository) setEditing(null);
      await rules.reload();
    });
  };

  const current = editing ? rules.data?.find((r) => r.repository === editing) : undefined;
  return (
    <section className="card" data-testid="retention-card" aria-labelledby="retention-title">
      <h2 id="retention-title">{t("retention.title")}</h2>
      <p className="muted">{t("retention.help")}</p>
      {action.error && <ErrorBox error={action.error} />}
      {report && <RetentionReport repository={report.repository} report={report.report} />}
      <Loaded state={rules}>
        {(list) =>
          list.length === 0 ? (
            <Empty>{t("retention.empty")}</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table stack-narrow" data-testid="retention-table">
                <thead>
                  <tr>
                    <th>{t("images.repository")}</th>
                    <th>{t("retention.keepNewest")}</th>
                    <th>{t("retention.untaggedOlderThan")}</th>
                    <th className="hide-narrow">{t("retention.updated")}</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {list.map((r) => (
                    <tr key={r.repository} data-rule={r.repository}>
                      <td>
                        <Link to={`/images/${r.repository}`} className="mono strong">
                          {r.repository}
                        </Link>
                      </td>
                      <td className="num" data-label={t("retention.keepNewest")}>
                        {r.keep_newest_tags ?? "–"}
                      </td>
                      <td data-label={t("retention.untaggedOlderThan")}>{r.delete_untagged_older_than_ms != null ? dayFormat.format(r.delete_untagged_older_than_ms / DAY_MS) : "–"}</td>
                      <td className="hide-narrow">
                        <Time value={r.updated_at} />
                      </td>
                      <td>
                        {canPush(roleIn, r.repository) && (
                          <div className="row-actions">
                            <Link
                              to={`?rule=${encodeURIComponent(r.repository)}`}
                              replace
                              className="btn btn-small"
                              aria-label={`${t("common.edit")} ${r.repository}`}
                            >
                              {t("common.edit")}
                            </Link>
                            <button
                              type="button"
                              className="btn btn-small"
                              onClick={() => apply(r)}
                              disabled={action.busy}
                              aria-label={`${t("retention.apply")} ${r.repository}`}
                            >
                              {t("retention.apply")}
                            </button>
                            <button
                              type="button"
                              className="btn btn-small btn-danger-outline"
                              onClick={() => remove(r)}
                              disabled={action.busy}
                              aria-label={`${t("common.delete")} ${r.repository}`}
                            >
                              {t("common.delete")}
                            </button>
                          </div>
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
      {canWrite && rules.data && (editing === null || current) && (
        <RuleForm
          key={editing ?? ""}
          initial={current ?? null}
          repositories={repositories.filter((r) => isAdmin || canPush(roleIn, r))}
          onCancel={() => setEditing(null)}
          onSaved={async (rule) => {
            toast(t("retention.saved", { repository: rule.repository }));
            setEditing(null);
            await rules.reload();
          }}
        />
      )}
      {editing !== null && rules.data && !current && (
        <div className="alert alert-error" role="alert">
          {t("retention.noRule", { repository: editing })}{" "}
          <button type="button" className="btn btn-small" onClick={() => setEditing(null)}>
            {t("common.dismiss")}
          </button>
        </div>
      )}
    </section>
  );
}

function RetentionReport({ repository, report }: { repository: string; report: RetentionReportDto }) {
  const { t } = useI18n();
  const nothing = report.tags_deleted.length === 0 && report.manifests_deleted.length === 0;
  return (
    <div className="alert alert-ok" data-testid="retention-report" role="status">
      <span>
        {nothing
          ? t("retention.reportNothing", { repository })
          : t("retention.report", { repository, tags: report.tags_deleted.length, manifests: report.manifests_deleted.length })}
      </span>
      {report.tags_deleted.length > 0 && <span className="mono break">{report.tags_deleted.join(", ")}</span>}
    </div>
  );
}

const FIELDS = ["repository", "keep_newest_tags", "delete_untagged_older_than_ms"];

function RuleForm({
  initial,
  repositories,
  onSaved,
  onCancel,
}: {
  initial: RetentionRuleDto | null;
  repositories: string[];
  onSaved: (rule: RetentionRuleDto) => Promise<void>;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  const [repository, setRepository] = useState(initial?.repository ?? "");
  const [keep, setKeep] = useState(initial?.keep_newest_tags != null ? String(initial.keep_newest_tags) : "");
  const [olderDays, setOlderDays] = useState(initial?.delete_untagged_older_than_ms != null ? days(initial.delete_untagged_older_than_ms) : "");
  const action = useAction();
  const form = useRef<HTMLFormElement>(null);
  // Editing a rule brings its form into view with the keyboard in it.
  useEffect(() => {
    if (initial) form.current?.querySelector<HTMLElement>("input[name=keep_newest_tags]")?.focus();
  }, [initial]);
  // After a refusal, the keyboard goes to the field the server named.
  useEffect(() => {
    if (action.error) form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [action.error]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void action.run(async () => {
      const repo = repository.trim();
      if (!repo) throw new ApiError(400, "invalid_field", t("retention.repositoryRequired"), "repository");
      const number = (text: string, field: string, scale = 1) => {
        if (text.trim() === "") return null;
        const n = Number(text);
        if (!Number.isFinite(n) || n < 0) throw new ApiError(400, "invalid_field", t("retention.notANumber"), field);
        return Math.round(n * scale);
      };
      const body = {
        keep_newest_tags: number(keep, "keep_newest_tags"),
        delete_untagged_older_than_ms: number(olderDays, "delete_untagged_older_than_ms", DAY_MS),
      };
      const saved = await call(api.PUT("/api/v1/registry/retention-rules/{repository}", { params: { path: { repository: repo } }, body }));
      await onSaved(saved);
      if (!initial) {
        setRepository("");
        setKeep("");
        setOlderDays("");
      }
    });
  };
  return (
    <form ref={form} className="form retention-form" onSubmit={submit} noValidate data-testid="retention-form" onKeyDown={(e) => {
      if (e.key === "Escape" && initial) onCancel();
    }}>
      <h3>{initial ? t("retention.editTitle", { repository: initial.repository }) : t("retention.add")}</h3>
      <FormError error={action.error} fields={FIELDS} />
      <div className="grid-3">
        <Field label={t("images.repository")} name="repository" error={action.error} hint={t("retention.repositoryHint")}>
          {(p) => (
            <input
              {...p}
              className="mono"
              list="retention-repositories"
              value={repository}
              onChange={(e) => setRepository(e.target.value)}
              readOnly={!!initial}
              autoComplete="off"
              spellCheck={false}
              placeholder="team/app"
            />
          )}
        </Field>
        <Field label={t("retention.keepNewest")} name="keep_newest_tags" error={action.error} hint={t("retention.keepNewestHint")}>
          {(p) => <input {...p} type="number" min={1} step={1} inputMode="numeric" value={keep} onChange={(e) => setKeep(e.target.value)} />}
        </Field>
        <Field label={t("retention.untaggedOlderThanDays")} name="delete_untagged_older_than_ms" error={action.error} hint={t("retention.untaggedHint")}>
          {(p) => <input {...p} type="number" min={0} step="any" inputMode="decimal" value={olderDays} onChange={(e) => setOlderDays(e.target.value)} />}
        </Field>
      </div>
      <datalist id="retention-repositories">
        {repositories.map((r) => (
          <option key={r} value={r} />
        ))}
      </datalist>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={action.busy}>
          {initial ? t("common.save") : t("retention.add")}
        </button>
        {initial && (
          <button type="button" className="btn" onClick={onCancel}>
            {t("common.cancel")}
          </button>
        )}
      </div>
    </form>
  );
}
