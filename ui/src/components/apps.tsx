// Shared pieces of the app pages: the health summary of an app, its rollout badge, CPU and
// memory in use (sampled by the server every few seconds) against the limits, and where the app
// answers (its domains as links, or that it is internal).
import { Link } from "react-router";
import type { AppDto, InstanceDto, RolloutDto } from "../api/client";
import { useI18n } from "../i18n";
import { Badge, formatBytes, formatCpu, type Tone } from "./ui";

export type Health = "healthy" | "starting" | "scaling" | "degraded" | "down" | "stopped" | "unknown";

/**
 * The app's health, as the server judges it (one rule for every view): fewer ready instances
 * than wanted is an expected transition while a rollout starts them ("starting") or after a
 * scale-up ("scaling"), as long as none of them failed; red ("down") and amber ("degraded")
 * are for failures.
 */
export function appHealth(app: AppDto): Health {
  return app.health as Health;
}

export const healthTone: Record<Health, Tone> = {
  healthy: "ok",
  starting: "info",
  scaling: "info",
  degraded: "warn",
  down: "bad",
  stopped: "muted",
  unknown: "muted",
};

export function HealthBadge({ app }: { app: AppDto }) {
  const { t } = useI18n();
  const h = appHealth(app);
  const title = app.engine_error ?? (h === "starting" ? t("health.startingTitle") : h === "scaling" ? t("health.scalingTitle") : undefined);
  return (
    <span data-testid="app-health" data-health={h}>
      <Badge tone={healthTone[h]} title={title}>
        {t(`health.${h}`)}
      </Badge>
    </span>
  );
}

const phaseTone: Record<string, Tone> = {
  progressing: "info",
  complete: "ok",
  rolling_back: "warn",
  rolled_back: "bad",
  failed: "bad",
};

export function RolloutBadge({ rollout }: { rollout: RolloutDto }) {
  const { t } = useI18n();
  const known = ["progressing", "complete", "rolling_back", "rolled_back", "failed"] as const;
  const phase = known.find((p) => p === rollout.phase);
  return (
    <span data-testid="rollout-phase" data-phase={rollout.phase}>
      <Badge tone={phaseTone[rollout.phase] ?? "muted"} title={rollout.message}>
        {phase ? t(`phase.${phase}`) : rollout.phase}
      </Badge>
    </span>
  );
}

export function InstanceBadge({ instance }: { instance: InstanceDto }) {
  const { t } = useI18n();
  if (instance.phase === "exited") return <Badge tone="bad">{t("instance.exited")}</Badge>;
  if (instance.phase === "terminating") return <Badge tone="muted">{t("instance.terminating")}</Badge>;
  if (instance.phase === "starting") return <Badge tone="info">{t("instance.starting")}</Badge>;
  if (instance.liveness === "failing") return <Badge tone="bad">{t("instance.failing")}</Badge>;
  if (instance.ready) return <Badge tone="ok">{t("instance.ready")}</Badge>;
  if (instance.readiness === "not_ready") return <Badge tone="warn">{t("instance.notReady")}</Badge>;
  return <Badge tone="info">{t("instance.checking")}</Badge>;
}

/** CPU in use now in cores ("0.12 CPU", or "0.12 / 0.5 CPU" against a limit); millicores and the one-minute average on hover. */
export function CpuUse({ now, avg, limit }: { now?: number | null; avg?: number | null; limit?: number | null }) {
  const { t } = useI18n();
  if (now == null) {
    return (
      <span className="muted" data-testid="cpu-use" title={t("usage.notSampled")}>
        –
      </span>
    );
  }
  return (
    <span
      data-testid="cpu-use"
      data-millis={now}
      title={avg != null ? t("usage.cpuAvgTitle", { millis: now, value: formatCpu(avg) }) : t("usage.cpuTitle", { millis: now })}
    >
      {limit ? `${formatCpu(now, false)} / ${formatCpu(limit)}` : formatCpu(now)}
    </span>
  );
}

/** Memory in use ("24 MiB", or "24 MiB / 256 MiB" against a limit). */
export function MemoryUse({ bytes, limit }: { bytes?: number | null; limit?: number | null }) {
  const { t } = useI18n();
  if (bytes == null) {
    return (
      <span className="muted" data-testid="memory-use" title={t("usage.notSampled")}>
        –
      </span>
    );
  }
  return (
    <span data-testid="memory-use" data-bytes={bytes}>
      {formatBytes(bytes)}
      {limit ? ` / ${formatBytes(limit)}` : ""}
    </span>
  );
}

/** A limit per instance times the wanted instances, or nothing when there is no limit. */
export function appLimit(perInstance: number | null | undefined, replicas: number): number | null {
  return perInstance ? perInstance * replicas : null;
}

/**
 * Where the app answers through the router: each domain as a link (the default host marked), or
 * an "internal" badge. `compact` shows only the first address (the apps list).
 */
export function AppLinks({ app, compact = false }: { app: AppDto; compact?: boolean }) {
  const { t } = useI18n();
  if (app.internal) {
    return (
      <Badge tone="muted" title={t("routes.internalHint", { name: app.name })}>
        {t("routes.internal")}
      </Badge>
    );
  }
  const shown = compact ? app.domains.slice(0, 1) : app.domains;
  return (
    <ul className="links" data-testid="app-links">
      {shown.map((d) => (
        <li key={d.domain}>
          {d.url ? (
            <a href={d.url} target="_blank" rel="noreferrer" className="mono" data-domain={d.domain}>
              {d.domain}
            </a>
          ) : (
            <span
              className="mono"
              title={d.domain.startsWith("*.") ? t("routes.wildcard") : t("routes.routerOff")}
            >
              {d.domain}
            </span>
          )}
          {d.default && !compact && (
            <>
              {" "}
              <Badge tone="muted">{t("routes.default")}</Badge>
            </>
          )}
        </li>
      ))}
      {compact && app.domains.length > 1 && <li className="muted small">{t("routes.more", { n: app.domains.length - 1 })}</li>}
    </ul>
  );
}

/** Apps by name, as links to their pages ("–" for none): the apps that use a volume or a secret. */
export function AppNameLinks({ apps, testId }: { apps: string[]; testId?: string }) {
  if (apps.length === 0) return <span className="muted">–</span>;
  return (
    <span data-testid={testId}>
      {apps.map((a, i) => (
        <span key={a}>
          {i > 0 && ", "}
          <Link to={`/apps/${a}`}>{a}</Link>
        </span>
      ))}
    </span>
  );
}
