// Shared pieces of the app pages: the health summary of an app, its rollout badge, and CPU and
// memory in use (sampled by the server every few seconds) against the limits.
import type { AppDto, InstanceDto, RolloutDto } from "../api/client";
import { useI18n } from "../i18n";
import { Badge, formatBytes, formatCpu, type Tone } from "./ui";

export type Health = "healthy" | "degraded" | "down" | "stopped" | "unknown";

export function appHealth(app: AppDto): Health {
  if (app.engine_error) return "unknown";
  if (app.replicas === 0) return "stopped";
  if (app.ready_instances >= app.replicas) return "healthy";
  if (app.ready_instances === 0) return "down";
  return "degraded";
}

const healthTone: Record<Health, Tone> = { healthy: "ok", degraded: "warn", down: "bad", stopped: "muted", unknown: "muted" };

export function HealthBadge({ app }: { app: AppDto }) {
  const { t } = useI18n();
  const h = appHealth(app);
  return (
    <span data-testid="app-health" data-health={h}>
      <Badge tone={healthTone[h]} title={app.engine_error ?? undefined}>
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

/** CPU in use now ("120m", or "120m / 500m" against a limit); the one-minute average on hover. */
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
    <span data-testid="cpu-use" data-millis={now} title={t("usage.avg1m", { value: formatCpu(avg) })}>
      {formatCpu(now)}
      {limit ? ` / ${formatCpu(limit)}` : ""}
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
