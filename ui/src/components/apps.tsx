// Shared pieces of the app pages: the health summary of an app and its rollout badge.
import type { AppDto, InstanceDto, RolloutDto } from "../api/client";
import { useI18n } from "../i18n";
import { Badge, type Tone } from "./ui";

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
