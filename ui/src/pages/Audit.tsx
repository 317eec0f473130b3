// The audit log: who changed what, when, from where and how it ended; every filter is in the
// URL; older entries load page by page.
import { useEffect, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { api, ApiError, call, type AuditDto } from "../api/client";
import { Badge, Empty, ErrorBox, Loading, PageHeader, Time, useEnumLabel } from "../components/ui";
import { useI18n } from "../i18n";

const FILTERS = ["team", "actor", "action", "object"] as const;
const PAGE = 100;

export function AuditPage() {
  const { t } = useI18n();
  const label = useEnumLabel();
  const [params, setParams] = useSearchParams();
  const [draft, setDraft] = useState(() => Object.fromEntries(FILTERS.map((f) => [f, params.get(f) ?? ""])) as Record<string, string>);
  const outcome = params.get("outcome") ?? "";
  const [items, setItems] = useState<AuditDto[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const key = params.toString();
  const load = async (before?: number) => {
    try {
      const query: Record<string, string | number | undefined> = { limit: PAGE };
      for (const f of [...FILTERS, "outcome"]) {
        const v = params.get(f);
        if (v) query[f] = v;
      }
      if (before) query.before_id = before;
      const page = await call(api.GET("/api/v1/audit", { params: { query } }));
      setItems((xs) => (before && xs ? [...xs, ...page] : page));
      setMore(page.length === PAGE);
      setError(null);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, "client", String(e)));
    }
  };
  useEffect(() => {
    setItems(null);
    void load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const f of FILTERS) if (draft[f]) next.set(f, draft[f]);
    if (outcome) next.set("outcome", outcome);
    setParams(next, { replace: true });
  };
  return (
    <>
      <PageHeader title={t("audit.title")} />
      <form className="toolbar" onSubmit={apply}>
        {FILTERS.map((f) => (
          <input
            key={f}
            aria-label={t(`audit.${f}`)}
            placeholder={t(`audit.${f}`)}
            value={draft[f]}
            onChange={(e) => setDraft({ ...draft, [f]: e.target.value })}
          />
        ))}
        <select
          aria-label={t("audit.outcome")}
          value={outcome}
          onChange={(e) => {
            const next = new URLSearchParams(params);
            if (e.target.value) next.set("outcome", e.target.value);
            else next.delete("outcome");
            setParams(next, { replace: true });
          }}
        >
          <option value="">{t("audit.anyOutcome")}</option>
          {["success", "denied", "failed"].map((o) => (
            <option key={o} value={o}>
              {label("outcome", o)}
            </option>
          ))}
        </select>
        <button type="submit" className="btn">
          {t("common.filter")}
        </button>
      </form>
      {error && <ErrorBox error={error} onRetry={() => void load()} />}
      {items === null ? (
        !error && <Loading />
      ) : items.length === 0 ? (
        <Empty>{t("audit.empty")}</Empty>
      ) : (
        <>
          <div className="table-wrap">
            <table className="table" data-testid="audit-table">
              <thead>
                <tr>
                  <th>{t("audit.when")}</th>
                  <th>{t("audit.actor")}</th>
                  <th>{t("audit.action")}</th>
                  <th>{t("audit.object")}</th>
                  <th>{t("audit.team")}</th>
                  <th>{t("audit.outcome")}</th>
                  <th className="hide-narrow">{t("audit.detail")}</th>
                  <th className="hide-narrow">{t("audit.source")}</th>
                </tr>
              </thead>
              <tbody>
                {items.map((a) => (
                  <tr key={a.id}>
                    <td>
                      <Time value={a.at} />
                    </td>
                    <td>{a.actor}</td>
                    <td className="mono small">{a.action}</td>
                    <td className="mono small ellipsis" title={a.object}>
                      {a.object}
                    </td>
                    <td>{a.team ?? "–"}</td>
                    <td>
                      <Badge tone={a.outcome === "success" ? "ok" : a.outcome === "denied" ? "warn" : "bad"} title={String(a.status)}>
                        {label("outcome", a.outcome)}
                      </Badge>
                    </td>
                    <td className="hide-narrow small">{a.detail || "–"}</td>
                    <td className="hide-narrow small mono">{a.source}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {more && (
            <div className="form-actions">
              <button type="button" className="btn" onClick={() => void load(items[items.length - 1]?.id)}>
                {t("common.loadMore")}
              </button>
            </div>
          )}
        </>
      )}
    </>
  );
}
