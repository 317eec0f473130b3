// Events and rollout states said in the console's language. The server records each event
// with a stable `kind` and the values its message is made of (`params`: counts, reasons, exit
// codes, causes), and keeps an English `message` for logs and the CLI; the console builds its
// own sentence from the kind and the values and falls back to the English message when a value
// is missing (events recorded before the values were, or by a server that does not send them).
import type { AppDto, EventDto, RolloutDto } from "../api/client";
import { hasKey, type Key, type T, type Vars } from "../i18n";

/** The kind's label ("Rollout failed"), or the code itself for a kind this console does not know. */
export function eventKindLabel(t: T, kind: string): string {
  const key = `event.kind.${kind}`;
  return hasKey(key) ? t(key) : kind;
}

/** The values of `e`, its instance and revision included. */
function eventVars(e: EventDto): Vars {
  const vars: Vars = { ...(e.params ?? {}) };
  if (e.instance) vars.instance = e.instance;
  if (e.revision != null) vars.revision = e.revision;
  // Events recorded before their values were (and the API's own events that still carry
  // none) keep the counts in the English sentence only.
  if (e.kind === "scaled" && vars.from === undefined) {
    const m = /^scaled from (\d+) to (\d+) instances$/.exec(e.message);
    if (m) [vars.from, vars.to] = [m[1], m[2]];
  }
  if (e.kind === "app_created" && vars.replicas === undefined) {
    const m = / created with (\d+) replicas$/.exec(e.message);
    if (m) vars.replicas = m[1];
  }
  return vars;
}

/** The message key of an event: by kind, and by its `cause` where the kind has several. */
function eventKey(e: EventDto, vars: Vars): string {
  const cause = vars.cause;
  if (e.kind === "rollback_started") return vars.failed !== undefined ? "event.msg.rollback_started.auto" : "event.msg.rollback_started";
  const base = cause !== undefined && hasKey(`event.msg.${e.kind}.${cause}`) ? `event.msg.${e.kind}.${cause}` : `event.msg.${e.kind}`;
  // The autoscaler's request metrics have sentences of their own.
  const metric = vars.metric;
  if (metric !== undefined && metric !== "cpu" && hasKey(`${base}.${metric}`)) return `${base}.${metric}`;
  return base;
}

/** The event's sentence in the console's language (the English message when a value is missing). */
export function eventMessage(t: T, e: EventDto): string {
  const vars = eventVars(e);
  // The autoscaler's verdict, in words.
  const verdict = `autoscale.verdict.${vars.verdict}`;
  if (vars.verdict !== undefined && hasKey(verdict)) vars.why = t(verdict);
  // A manual rollback's message is the reason the user gave.
  if (e.kind === "rollback_started" && vars.failed === undefined && vars.reason === undefined) vars.reason = e.message;
  const key = eventKey(e, vars);
  if (!hasKey(key)) return e.message;
  const text = t(key as Key, vars);
  return /\{\w+\}/.test(text) ? e.message : text;
}

/** What the rollout has done or is doing, with the app's current counts, in the console's language. */
export function rolloutMessage(t: T, app: AppDto): string {
  const r: RolloutDto = app.rollout;
  const vars: Vars = { revision: r.revision, n: r.desired, ready: r.ready, failed: r.failed_revision ?? "?" };
  switch (r.phase) {
    case "progressing":
      if (r.canary && !r.canary.passed) return t("rollout.msg.canary", vars);
      return t("rollout.msg.progressing", vars);
    case "complete":
      // Counted now: the app may have been scaled since the rollout ended.
      return t(r.desired === 1 ? "rollout.msg.complete.one" : "rollout.msg.complete", vars);
    case "rolling_back":
      return t("rollout.msg.rolling_back", { ...vars, reason: r.message });
    case "rolled_back": {
      const m = /^rolled back to revision \d+ after revision \S+ failed: ([\s\S]*)$/.exec(r.message);
      return m ? t("rollout.msg.rolled_back", { ...vars, reason: m[1] }) : r.message;
    }
    case "failed": {
      const m = /^rollback to revision \d+ failed too: ([\s\S]*)$/.exec(r.message);
      return m
        ? t("rollout.msg.failed_rollback", { ...vars, reason: m[1] })
        : t("rollout.msg.failed", { ...vars, reason: r.message });
    }
    default:
      return r.message;
  }
}
