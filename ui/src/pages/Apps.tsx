// The apps list: health, instances, CPU and memory in use, revision and rollout, team;
// filtered by team and name (both in the URL); refreshed every few seconds.
import { Link } from "react-router";
import { api, call } from "../api/client";
import { AppLinks, appLimit, CpuUse, HealthBadge, MemoryUse, RolloutBadge } from "../components/apps";
import { Empty, formatBytes, formatCpu, Loaded, PageHeader, TeamFilter, Time, useAsync, useUrlFilters } from "../components/ui";
import { useI18n } from "../i18n";
import { useSession } from "../session";

export function AppsPage() {
  const { t } = useI18n();
  const { writableTeams, isAdmin } = useSession();
  const [params, update] = useUrlFilters();
  const team = params.get("team") ?? "";
  const q = params.get("q") ?? "";
  const apps = useAsync(() => call(api.GET("/api/v1/apps")), [], 3000);
  return (
    <>
      <PageHeader
        title={t("apps.title")}
        actions={
          (writableTeams.length > 0 || isAdmin) && (
            <>
              <Link to="/apps/import" className="btn">
                {t("apps.import")}
              </Link>
              <Link to="/apps/new" className="btn btn-primary">
                {t("apps.create")}
              </Link>
            </>
          )
        }
      />
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
      <Loaded state={apps}>
        {(list) => {
          const shown = list
            .filter((a) => !team || a.team === team)
            .filter((a) => !q || a.name.includes(q.toLowerCase()))
            .sort((a, b) => a.name.localeCompare(b.name));
          if (list.length === 0) return <Empty>{t("apps.empty")}</Empty>;
          if (shown.length === 0) return <Empty>{t("common.noMatch")}</Empty>;
          return (
            <div className="table-wrap">
              <table className="table" data-testid="apps-table">
                <thead>
                  <tr>
                    <th>{t("field.name")}</th>
                    <th>{t("apps.health")}</th>
                    <th>{t("apps.instances")}</th>
                    <th>{t("usage.cpu")}</th>
                    <th>{t("usage.memory")}</th>
                    <th>{t("apps.revision")}</th>
                    <th>{t("field.team")}</th>
                    <th className="hide-narrow">{t("routes.address")}</th>
                    <th className="hide-narrow">{t("field.image")}</th>
                    <th className="hide-narrow">{t("apps.resources")}</th>
                    <th className="hide-narrow">{t("apps.updated")}</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((a) => (
                    <tr key={a.name} data-app={a.name}>
                      <td>
                        <Link to={`/apps/${a.name}`} className="strong">
                          {a.name}
                        </Link>
                      </td>
                      <td>
                        <HealthBadge app={a} />
                      </td>
                      <td className="num">
                        {a.ready_instances}/{a.replicas}
                      </td>
                      <td className="num" data-testid="app-cpu">
                        <CpuUse
                          now={a.usage?.cpu_millis}
                          avg={a.usage?.cpu_millis_avg_1m}
                          limit={appLimit(a.template.cpu_millis, a.replicas)}
                        />
                      </td>
                      <td className="num" data-testid="app-memory">
                        <MemoryUse bytes={a.usage?.memory_bytes} limit={appLimit(a.template.memory_bytes, a.replicas)} />
                      </td>
                      <td>
                        #{a.current_revision} <RolloutBadge rollout={a.rollout} />
                      </td>
                      <td>
                        <Link to={`/teams/${a.team}`}>{a.team}</Link>
                      </td>
                      <td className="hide-narrow">
                        <AppLinks app={a} compact />
                      </td>
                      <td className="hide-narrow mono ellipsis" title={a.template.image}>
                        {a.template.image}
                      </td>
                      <td className="hide-narrow">
                        {formatCpu(a.template.cpu_millis)} · {formatBytes(a.template.memory_bytes)}
                      </td>
                      <td className="hide-narrow">
                        <Time value={a.updated_at} />
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
