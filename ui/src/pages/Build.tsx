// One build, live: what triggered it, the commit, its steps with their durations, the image it
// pushed and the rollout, why it ended, and its log followed as it is written (scrolling to
// the end unless the user scrolls up or turns that off). Cancel while it runs; rebuild the
// same branch and commit once it has ended.
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, ApiError, call, type BuildDto } from "../api/client";
import { followBuild } from "../api/stream";
import {
  BuildStatusBadge,
  buildDuration,
  formatDuration,
  isTerminal,
  ShortSha,
  StepStatusBadge,
  useNow,
} from "../components/builds";
import { Badge, ErrorBox, Loading, PageHeader, Time, useAction, useAsync, useConfirm, useEnumLabel, useToast } from "../components/ui";
import { useI18n } from "../i18n";
import { useCanBuild } from "./Pipelines";

const MAX_LOG_LINES = 20_000;
type LogState = "connecting" | "open" | "ended" | "error";

export function BuildDetailPage() {
  const { id = "" } = useParams();
  // A new build id is a new page: nothing of the previous build's log carries over.
  return <BuildView key={id} id={Number(id)} />;
}

function BuildView({ id }: { id: number }) {
  const { t } = useI18n();
  const [build, setBuild] = useState<BuildDto | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [lines, setLines] = useState<string[]>([]);
  const [logState, setLogState] = useState<{ s: LogState; error?: string }>({ s: "connecting" });
  const [run, setRun] = useState(0);
  const pending = useRef("");
  const partial = useRef("");

  useEffect(() => {
    if (!Number.isInteger(id) || id <= 0) {
      setError(new ApiError(404, "not_found", `build ${id}`));
      return;
    }
    setLines([]);
    pending.current = "";
    partial.current = "";
    // Log text arrives in chunks; lines are added to the view a few times a second.
    const flush = () => {
      if (!pending.current) return;
      const text = partial.current + pending.current;
      pending.current = "";
      const parts = text.split("\n");
      partial.current = parts.pop() ?? "";
      if (parts.length) setLines((ls) => (ls.length + parts.length > MAX_LOG_LINES ? [...ls, ...parts].slice(-MAX_LOG_LINES) : [...ls, ...parts]));
    };
    const timer = setInterval(flush, 150);
    const handle = followBuild(id, {
      onBuild: (b) => {
        setBuild(b);
        setError(undefined);
      },
      onLog: (text) => {
        pending.current += text;
      },
      onState: (s, failure) => {
        if (s === "ended") {
          flush();
          // The last line may lack its newline.
          const rest = partial.current;
          partial.current = "";
          if (rest) setLines((ls) => [...ls, rest]);
        }
        setLogState({ s, error: failure?.message });
        if (failure) setError(failure);
      },
    });
    return () => {
      clearInterval(timer);
      handle.close();
    };
  }, [id, run]);

  if (!build) {
    return error ? <ErrorBox error={error} onRetry={() => setRun((r) => r + 1)} /> : <Loading />;
  }
  return (
    <>
      <BuildHeader build={build} />
      <Reason build={build} />
      <div className="build-grid">
        <Summary build={build} />
        <Steps build={build} />
      </div>
      <Log
        lines={lines}
        state={logState}
        ended={isTerminal(build.status)}
        onReconnect={() => setRun((r) => r + 1)}
        title={t("build.log")}
      />
    </>
  );
}

function BuildHeader({ build: b }: { build: BuildDto }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  const canBuild = useCanBuild()(b.team);
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const action = useAction();
  const ended = isTerminal(b.status);
  const cancel = async () => {
    const ok = await confirm({
      title: t("build.cancelTitle", { n: b.number }),
      body: t("build.cancelBody"),
      confirm: t("build.cancel"),
      danger: true,
    });
    if (!ok) return;
    await action.run(async () => {
      await call(api.POST("/api/v1/builds/{id}/cancel", { params: { path: { id: b.id } } }));
      toast(t("build.cancelRequested", { n: b.number }));
    });
  };
  const rebuild = () =>
    void action.run(async () => {
      const next = await call(
        api.POST("/api/v1/pipelines/{team}/{name}/builds", {
          params: { path: { team: b.team, name: b.pipeline } },
          body: { branch: b.branch ?? null, commit: b.commit ?? null },
        }),
      );
      toast(t("pipeline.buildQueued", { n: next.number }));
      navigate(`/builds/${next.id}`);
    });
  return (
    <PageHeader
      title={
        <>
          <span data-testid="build-title">
            {b.pipeline} · {t("build.title", { n: b.number })}
          </span>
          <BuildStatusBadge status={b.status} />
        </>
      }
      sub={
        <>
          <Link to={`/pipelines/${b.team}/${b.pipeline}`}>
            ← {b.team}/{b.pipeline}
          </Link>{" "}
          · {t("build.triggeredBy", { trigger: label("trigger", b.trigger), user: b.triggered_by })} · <Time value={b.created_at} />
        </>
      }
      actions={
        canBuild && (
          <div className="app-actions">
            {!ended && (
              <button type="button" className="btn btn-danger-outline" onClick={cancel} disabled={action.busy} data-testid="cancel-build">
                {t("build.cancel")}
              </button>
            )}
            {ended && (
              <button type="button" className="btn" onClick={rebuild} disabled={action.busy} title={t("build.rebuildHint")}>
                {t("build.rebuild")}
              </button>
            )}
            {action.error && (
              <div className="alert alert-error action-error" role="alert">
                {action.error.message}
              </div>
            )}
          </div>
        )
      }
    />
  );
}

function Reason({ build: b }: { build: BuildDto }) {
  const { t } = useI18n();
  if (!b.reason) return null;
  const bad = ["failed", "timed_out", "interrupted"].includes(b.status);
  return (
    <div className={"alert reason " + (bad ? "alert-error" : "alert-warn")} role={bad ? "alert" : "status"} data-testid="build-reason">
      <strong>{t("build.why")}</strong> <span>{b.reason}</span>
    </div>
  );
}

function Summary({ build: b }: { build: BuildDto }) {
  const { t } = useI18n();
  const now = useNow(!isTerminal(b.status));
  // The image lives in the pipeline's target repository of Berth's registry.
  const pipeline = useAsync(
    () => call(api.GET("/api/v1/pipelines/{team}/{name}", { params: { path: { team: b.team, name: b.pipeline } } })),
    [b.team, b.pipeline],
  );
  const target = pipeline.data?.target_repository;
  return (
    <section className="card" data-testid="build-summary">
      <h2>{t("build.summary")}</h2>
      <dl className="facts facts-wide">
        <dt>{t("build.branch")}</dt>
        <dd className="mono">{b.branch ?? "–"}</dd>
        <dt>{t("build.commit")}</dt>
        <dd data-testid="build-commit">
          <ShortSha sha={b.commit} />
        </dd>
        {b.author && (
          <>
            <dt>{t("build.author")}</dt>
            <dd>
              {b.author}
              {b.author_email && <span className="muted"> &lt;{b.author_email}&gt;</span>}
            </dd>
          </>
        )}
        {b.message && (
          <>
            <dt>{t("build.message")}</dt>
            <dd className="commit-message">{b.message}</dd>
          </>
        )}
        <dt>{t("build.queued")}</dt>
        <dd>
          <Time value={b.created_at} />
        </dd>
        <dt>{t("build.started")}</dt>
        <dd>
          <Time value={b.started_at} />
        </dd>
        {b.finished_at && (
          <>
            <dt>{t("build.finished")}</dt>
            <dd>
              <Time value={b.finished_at} />
            </dd>
          </>
        )}
        <dt>{t("build.duration")}</dt>
        <dd className="num" data-testid="build-duration">
          {formatDuration(buildDuration(b, now), t)}
        </dd>
        {b.image_digest && (
          <>
            <dt>{t("build.image")}</dt>
            <dd className="mono" data-testid="build-image">
              {target && b.image_digest.startsWith("sha256:") ? (
                <Link to={`/images/${target}@${b.image_digest}`} title={`${target}@${b.image_digest}`}>
                  {target}@{b.image_digest.slice(0, 19)}…
                </Link>
              ) : (
                <span title={b.image_digest}>{b.image_digest}</span>
              )}
            </dd>
          </>
        )}
        {b.rollout_outcome && (
          <>
            <dt>{t("build.rollout")}</dt>
            <dd data-testid="build-rollout">{b.rollout_outcome}</dd>
          </>
        )}
      </dl>
    </section>
  );
}

function Steps({ build: b }: { build: BuildDto }) {
  const { t } = useI18n();
  const label = useEnumLabel();
  const now = useNow(b.steps.some((s) => s.status === "running"));
  return (
    <section className="card" data-testid="build-steps">
      <h2>{t("build.steps")}</h2>
      {b.steps.length === 0 ? (
        <p className="muted">{t("buildStatus.queued")}</p>
      ) : (
        <ol className="steps">
          {b.steps.map((s) => {
            const ms = s.duration_ms ?? (s.started_at && s.status === "running" ? now - s.started_at : null);
            return (
              <li key={s.name} className={"step step-" + s.status} data-step={s.name} data-status={s.status}>
                <span className="step-dot" aria-hidden="true" />
                <span className="step-name">{label("step", s.name)}</span>
                <StepStatusBadge status={s.status} />
                <span className="step-time num muted">{ms !== null ? formatDuration(ms, t) : ""}</span>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}

/** A log line `[step] ==> text` (Berth's own) or `[step] | text` (the build's output). */
function LogLine({ line }: { line: string }) {
  const m = /^\[([a-z_]+)\] (==>|\|) ?(.*)$/.exec(line);
  if (!m) return <span className="log-line">{line + "\n"}</span>;
  return (
    <span className={"log-line" + (m[2] === "==>" ? " log-berth" : "")}>
      <span className="log-step">[{m[1]}]</span> {m[2] === "==>" ? "==> " : ""}
      {m[3] + "\n"}
    </span>
  );
}

function Log({
  lines,
  state,
  ended,
  onReconnect,
  title,
}: {
  lines: string[];
  state: { s: LogState; error?: string };
  ended: boolean;
  onReconnect: () => void;
  title: string;
}) {
  const { t } = useI18n();
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLPreElement>(null);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [lines, follow]);
  // Scrolling up stops following the end; scrolling back down to it resumes.
  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    if (atEnd !== follow) setFollow(atEnd);
  };
  const shownState: LogState = state.s === "open" && ended ? "ended" : state.s;
  return (
    <section className="card" data-testid="build-log-card">
      <div className="card-head">
        <h2>{title}</h2>
        <span data-testid="log-state" data-state={shownState}>
          <Badge tone={shownState === "open" ? "ok" : shownState === "error" ? "bad" : "muted"}>{t(`logs.state.${shownState}`)}</Badge>
        </span>
        <label className="check log-follow">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} data-testid="log-autoscroll" />
          {t("build.autoScroll")}
        </label>
        {state.s === "error" && (
          <button type="button" className="btn btn-small" onClick={onReconnect}>
            {t("logs.reconnect")}
          </button>
        )}
      </div>
      {state.error && state.s === "error" && <div className="alert alert-warn">{state.error}</div>}
      <pre className="logs build-log" ref={box} data-testid="build-log" tabIndex={0} aria-label={title} onScroll={onScroll}>
        {lines.length === 0 ? <span className="muted">{t("build.logEmpty")}</span> : lines.map((l, i) => <LogLine key={i} line={l} />)}
      </pre>
    </section>
  );
}
