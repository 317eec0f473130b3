// Quota requests: members file them on the team page; admins approve (the quota rises at
// once) or reject them with a comment. Filterable by status and team in the URL.
import { useState } from "react";
import { Link, useSearchParams } from "react-router";
import { api, call, type QuotaDto, type QuotaRequestDto } from "../api/client";
import { Badge, Empty, ErrorBox, formatBytes, formatCpu, Loaded, PageHeader, Time, useAction, useAsync, useEnumLabel, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

export function QuotaRequestsPage() {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "pending";
  const team = params.get("team") ?? "";
  const label = useEnumLabel();
  const set = (k: string, v: string) => {
    const next = new URLSearchParams(params);
    next.set(k, v);
    if (!v && k === "team") next.delete(k);
    setParams(next, { replace: true });
  };
  return (
    <>
      <PageHeader title={t("quotaRequests.title")} />
      <div className="toolbar">
        <select aria-label={t("quotaRequests.status")} value={status} onChange={(e) => set("status", e.target.value)}>
          <option value="">{t("quotaRequests.all")}</option>
          {["pending", "approved", "rejected"].map((s) => (
            <option key={s} value={s}>
              {label("qstatus", s)}
            </option>
          ))}
        </select>
        <input aria-label={t("field.team")} placeholder={t("field.team")} value={team} onChange={(e) => set("team", e.target.value)} />
      </div>
      <p className="muted">{t("quotaRequests.help")}</p>
      <QuotaRequestList team={team} status={status} version={0} />
    </>
  );
}

function QuotaCell({ q, current }: { q: QuotaDto; current: QuotaDto }) {
  const { t } = useI18n();
  const rows: [string, number | null | undefined, number | null | undefined, (n: number) => string][] = [
    [t("quota.cpu"), current.cpu_millis, q.cpu_millis, formatCpu],
    [t("quota.memory"), current.memory_bytes, q.memory_bytes, formatBytes],
    [t("quota.instances"), current.instances, q.instances, String],
    [t("quota.registry"), current.registry_bytes, q.registry_bytes, formatBytes],
    [t("quota.volumes"), current.volume_bytes, q.volume_bytes, formatBytes],
  ];
  const fmt = (v: number | null | undefined, f: (n: number) => string) => (v == null ? "∞" : f(v));
  return (
    <ul className="kv small">
      {rows
        // Limits left out of a request (null) stay as they are.
        .filter(([, c, r]) => r != null && c !== r)
        .map(([name, c, r, f]) => (
          <li key={name}>
            {name}: {fmt(c, f)} → <strong>{fmt(r, f)}</strong>
          </li>
        ))}
    </ul>
  );
}

const tone = { pending: "info", approved: "ok", rejected: "bad" } as const;

export function QuotaRequestList({ team, status, version, onDecided }: { team: string; status: string; version: number; onDecided?: () => void }) {
  const { t } = useI18n();
  const { isAdmin } = useSession();
  const label = useEnumLabel();
  const list = useAsync(() => call(api.GET("/api/v1/quota-requests", { params: { query: { team: team || undefined, status: status || undefined } } })), [team, status, version], 10000);
  return (
    <Loaded state={list}>
      {(items) =>
        items.length === 0 ? (
          <Empty>{t("quotaRequests.empty")}</Empty>
        ) : (
          <div className="table-wrap">
            <table className="table" data-testid="quota-requests-table">
              <thead>
                <tr>
                  <th>#</th>
                  <th>{t("field.team")}</th>
                  <th>{t("quotaRequests.requested")}</th>
                  <th>{t("field.reason")}</th>
                  <th>{t("quotaRequests.status")}</th>
                  <th className="hide-narrow">{t("quotaRequests.by")}</th>
                  {isAdmin && <th />}
                </tr>
              </thead>
              <tbody>
                {items.map((r) => (
                  <tr key={r.id} data-request={r.id} data-status={r.status}>
                    <td className="num">{r.id}</td>
                    <td>
                      <Link to={`/teams/${r.team}`}>{r.team}</Link>
                    </td>
                    <td>
                      <QuotaCell q={r.requested} current={r.current} />
                    </td>
                    <td>{r.reason}</td>
                    <td>
                      <Badge tone={tone[r.status as keyof typeof tone] ?? "muted"}>{label("qstatus", r.status)}</Badge>
                      {r.decided_by && (
                        <div className="small muted">
                          {r.decided_by} · <Time value={r.decided_at ?? null} />
                          {r.comment && <div>“{r.comment}”</div>}
                        </div>
                      )}
                    </td>
                    <td className="hide-narrow">
                      {r.requested_by} · <Time value={r.created_at} />
                    </td>
                    {isAdmin && (
                      <td>
                        {r.status === "pending" && (
                          <Decide
                            request={r}
                            onDone={() => {
                              void list.reload();
                              onDecided?.();
                            }}
                          />
                        )}
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
  );
}

function Decide({ request, onDone }: { request: QuotaRequestDto; onDone: () => void }) {
  const { t } = useI18n();
  const [comment, setComment] = useState("");
  const action = useAction();
  const toast = useToast();
  const decide = (verb: "approve" | "reject") =>
    action.run(async () => {
      const path = verb === "approve" ? "/api/v1/quota-requests/{id}/approve" : "/api/v1/quota-requests/{id}/reject";
      await call(api.POST(path, { params: { path: { id: request.id } }, body: { comment: comment || null } }));
      toast(verb === "approve" ? t("quotaRequests.approved", { id: request.id }) : t("quotaRequests.rejected", { id: request.id }));
      onDone();
    });
  return (
    <div className="decide">
      <input
        aria-label={t("quotaRequests.comment")}
        placeholder={t("quotaRequests.comment")}
        value={comment}
        onChange={(e) => setComment(e.target.value)}
        aria-invalid={action.error?.field === "comment" || undefined}
      />
      <button type="button" className="btn btn-small btn-primary" onClick={() => void decide("approve")} disabled={action.busy}>
        {t("quotaRequests.approve")}
      </button>
      <button type="button" className="btn btn-small btn-danger-outline" onClick={() => void decide("reject")} disabled={action.busy}>
        {t("quotaRequests.reject")}
      </button>
      {action.error && <ErrorBox error={action.error} />}
    </div>
  );
}
