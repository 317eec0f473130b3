// Shared pieces of the pipeline and build pages: status badges, durations, short commit ids,
// a copyable command, and the shell-like splitting of a test command typed in one line.
import { useEffect, useState } from "react";
import type { BuildDto } from "../api/client";
import { useI18n, type T } from "../i18n";
import { Badge, useEnumLabel, useToast, type Tone } from "./ui";

/** Statuses after which a build never changes again. */
export const TERMINAL = ["succeeded", "failed", "cancelled", "interrupted", "timed_out"];

export function isTerminal(status: string): boolean {
  return TERMINAL.includes(status);
}

const buildTone: Record<string, Tone> = {
  queued: "muted",
  fetching: "info",
  building: "info",
  testing: "info",
  pushing: "info",
  deploying: "info",
  succeeded: "ok",
  failed: "bad",
  cancelled: "warn",
  interrupted: "warn",
  timed_out: "bad",
};

const stepTone: Record<string, Tone> = {
  pending: "muted",
  running: "info",
  succeeded: "ok",
  skipped: "muted",
  failed: "bad",
  cancelled: "warn",
  timed_out: "bad",
  interrupted: "warn",
};

export function BuildStatusBadge({ status }: { status: string }) {
  const label = useEnumLabel();
  return (
    <span data-testid="build-status" data-status={status}>
      <Badge tone={buildTone[status] ?? "muted"}>
        {!isTerminal(status) && status !== "queued" && <span className="pulse" aria-hidden="true" />}
        {label("buildStatus", status)}
      </Badge>
    </span>
  );
}

export function StepStatusBadge({ status }: { status: string }) {
  const label = useEnumLabel();
  return <Badge tone={stepTone[status] ?? "muted"}>{label("stepStatus", status)}</Badge>;
}

/** The first 12 characters of a commit id, the whole id on hover. */
export function ShortSha({ sha }: { sha: string | null | undefined }) {
  if (!sha) return <span className="muted">–</span>;
  return (
    <code className="sha" title={sha}>
      {sha.slice(0, 12)}
    </code>
  );
}

/** "850 ms", "12.4 s", "3 min 05 s" in the current language. */
export function formatDuration(ms: number | null | undefined, t: T): string {
  if (ms === null || ms === undefined || ms < 0) return "–";
  if (ms < 1000) return t("duration.ms", { n: ms });
  if (ms < 60_000) return t("duration.s", { n: (ms / 1000).toFixed(ms < 10_000 ? 1 : 0) });
  const total = Math.floor(ms / 1000);
  return t("duration.min", { m: Math.floor(total / 60), s: String(total % 60).padStart(2, "0") });
}

/** A timestamp that advances every second while `active` (for durations of running steps). */
export function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [active]);
  return now;
}

/** How long a build ran (or has been running), in milliseconds. */
export function buildDuration(b: BuildDto, now: number): number | null {
  if (!b.started_at) return null;
  return (b.finished_at ?? now) - b.started_at;
}

/** A command or URL shown in full, with a button that copies it. */
export function CopyField({ value, label, testId }: { value: string; label: string; testId?: string }) {
  const { t } = useI18n();
  const toast = useToast();
  return (
    <div className="copy-field" data-testid={testId}>
      <code aria-label={label}>{value}</code>
      <button
        type="button"
        className="btn btn-small"
        aria-label={`${t("common.copy")}: ${label}`}
        onClick={() => {
          const done = () => toast(t("pipeline.copied"));
          if (navigator.clipboard) {
            navigator.clipboard.writeText(value).then(done, () => toast(t("pipeline.copyFailed"), "error"));
          } else {
            toast(t("pipeline.copyFailed"), "error");
          }
        }}
      >
        {t("common.copy")}
      </button>
    </div>
  );
}

/**
 * Splits a command line the way a POSIX shell splits words: blanks separate words, single
 * quotes keep everything literally, double quotes keep blanks (with \" \\ \$ \` escapes), a
 * backslash outside quotes escapes the next character. No expansion happens. Throws on an
 * unclosed quote.
 */
export function splitArgs(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error("unclosed '");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new Error('unclosed "');
        const d = line[i];
        if (d === '"') break;
        if (d === "\\" && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) {
          word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The inverse of `splitArgs`: words quoted where needed. */
export function joinArgs(words: string[]): string {
  return words
    .map((w) => (w !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}
