// Small building blocks every page uses: async data with loading and error states, polling,
// form fields that show the server's message next to the field it names, list filters kept
// in the URL (the team filter among them), confirmation dialogs, badges, bars, times and sizes.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useId,
  useRef,
  useState,
  type ReactNode,
} from "react";
import { api, ApiError, call } from "../api/client";
import { Link, useSearchParams } from "react-router";
import { hasKey, useI18n } from "../i18n";

// ---------- data ----------

export interface Async<D> {
  data: D | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload(): Promise<void>;
  setData(d: D): void;
}

function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, "client", e instanceof Error ? e.message : String(e));
}

/** Loads `fn()` when `deps` change; with `pollMs`, again every so often while mounted. */
export function useAsync<D>(fn: () => Promise<D>, deps: unknown[], pollMs?: number): Async<D> {
  const [data, setData] = useState<D | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const seq = useRef(0);

  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const d = await fnRef.current();
      if (mine === seq.current) {
        setData(d);
        setError(undefined);
      }
    } catch (e) {
      if (mine === seq.current) setError(asApiError(e));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  }, []);

  useEffect(() => {
    setLoading(true);
    setData(undefined);
    setError(undefined);
    void reload();
    if (!pollMs) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void reload();
    }, pollMs);
    return () => {
      clearInterval(timer);
      seq.current++;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, pollMs]);

  // Data the page sets itself (what a change answered) wins over a poll that was already on
  // its way: that answer may predate the change.
  const set = useCallback((d: D) => {
    seq.current++;
    setData(d);
    setError(undefined);
    setLoading(false);
  }, []);

  return { data, error, loading, reload, setData: set };
}

/** Runs an action, keeping its busy flag and its error. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const run = useCallback(async <R,>(fn: () => Promise<R>): Promise<R | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (e) {
      setError(asApiError(e));
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, setError, run };
}

// ---------- states ----------

export function Loading() {
  const { t } = useI18n();
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {t("common.loading")}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function ErrorBox({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  const { t } = useI18n();
  return (
    <div className="alert alert-error" role="alert">
      <strong>{error.status === 404 ? t("common.notFound") : t("common.error")}</strong> {error.message}
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          {t("common.retry")}
        </button>
      )}
    </div>
  );
}

/** Renders loading, error or the data. */
export function Loaded<D>({ state, children }: { state: Async<D>; children: (d: D) => ReactNode }) {
  if (state.data !== undefined) return <>{children(state.data)}</>;
  if (state.error) return <ErrorBox error={state.error} onRetry={() => void state.reload()} />;
  return <Loading />;
}

// ---------- forms ----------

/** Normalises a server field path: the template's fields are shown without `template.`. */
function normalise(field: string): string {
  return field.replace(/^template\./, "");
}

function matches(field: string | null | undefined, name: string): boolean {
  if (!field) return false;
  const f = normalise(field);
  return f === name || f.startsWith(name + ".") || f.startsWith(name + "[");
}

/** The server's message about `name`, if the error is about that field. */
export function fieldError(error: ApiError | undefined, name: string): string | undefined {
  const p = fieldProblem(error, name);
  return p && `${p.field}: ${p.message}`;
}

/**
 * The server's problem with `name`: the field path it names (`env.FOO`, `strategy.max_surge`)
 * and its message without the leading `path: ` (the server names the field in its messages;
 * the form says it with the field's label instead).
 */
export function fieldProblem(error: ApiError | undefined, name: string): { field: string; message: string } | undefined {
  if (!error) return undefined;
  const detail = error.details.find((d) => matches(d.field, name));
  if (detail) return { field: normalise(detail.field), message: withoutField(detail.message, detail.field) };
  if (error.field && matches(error.field, name)) return { field: normalise(error.field), message: withoutField(error.message, error.field) };
  return undefined;
}

function withoutField(message: string, field: string): string {
  for (const prefix of [field, normalise(field)]) if (message.startsWith(prefix + ": ")) return message.slice(prefix.length + 2);
  return message;
}

/** The field's label, and the part of the path below the field (`FOO` of `env.FOO`), if any. */
function labelled(label: string, name: string, field: string, message: string): string {
  const below = field.length > name.length ? field.slice(name.length).replace(/^[.[]/, "").replace(/]$/, "") : "";
  return below ? `${label} (${below}): ${message}` : `${label}: ${message}`;
}

/** The error at the top of a form, unless a field of the form shows it. */
export function FormError({ error, fields }: { error: ApiError | undefined; fields: string[] }) {
  const { t } = useI18n();
  if (!error) return null;
  const shown = fields.some((f) => fieldError(error, f));
  if (shown)
    return (
      <div className="alert alert-error" role="alert">
        {t("common.fixFields")}
      </div>
    );
  return (
    <div className="alert alert-error" role="alert" data-code={error.code}>
      {error.message}
    </div>
  );
}

export function Field({
  label,
  name,
  error,
  hint,
  children,
}: {
  label: string;
  name: string;
  error?: ApiError;
  hint?: ReactNode;
  children: (props: { id: string; name: string; "aria-invalid"?: boolean; "aria-describedby"?: string }) => ReactNode;
}) {
  const id = useId();
  const problem = fieldProblem(error, name);
  const message = problem && labelled(label, name, problem.field, problem.message);
  const describedBy = message ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return (
    <div className={"field" + (message ? " field-invalid" : "")}>
      <label htmlFor={id}>{label}</label>
      {children({ id, name, "aria-invalid": message ? true : undefined, "aria-describedby": describedBy })}
      {message ? (
        <div className="field-error" id={`${id}-error`} data-field={name}>
          {message}
        </div>
      ) : hint ? (
        <div className="field-hint" id={`${id}-hint`}>
          {hint}
        </div>
      ) : null}
    </div>
  );
}

// ---------- filters ----------

/**
 * The page's filters, kept in its URL: the query and `set(key, value)`, which changes one (an
 * empty value removes it) without adding a history entry.
 */
export function useUrlFilters(): [URLSearchParams, (key: string, value: string) => void] {
  const [params, setParams] = useSearchParams();
  const set = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };
  return [params, set];
}

/** The team filter of a list: "all teams" or one of the teams the caller sees (the chosen one even if not listed). */
export function TeamFilter({ value, onChange }: { value: string; onChange: (team: string) => void }) {
  const { t } = useI18n();
  const teams = useAsync(() => call(api.GET("/api/v1/teams")), []);
  return (
    <select aria-label={t("field.team")} value={value} onChange={(e) => onChange(e.target.value)} data-testid="team-filter">
      <option value="">{t("apps.allTeams")}</option>
      {[...new Set([...(teams.data ?? []).map((x) => x.name), ...(value ? [value] : [])])].map((name) => (
        <option key={name} value={name}>
          {name}
        </option>
      ))}
    </select>
  );
}

// ---------- confirmation ----------

interface ConfirmOptions {
  title: string;
  body?: ReactNode;
  confirm: string;
  danger?: boolean;
  /** The user must type this text to confirm (for the most destructive actions). */
  typeToConfirm?: string;
}

type ConfirmFn = (o: ConfirmOptions) => Promise<boolean>;
const ConfirmCtx = createContext<ConfirmFn>(async () => false);

export function ConfirmProvider({ children }: { children: ReactNode }) {
  const { t } = useI18n();
  const dialog = useRef<HTMLDialogElement>(null);
  const [options, setOptions] = useState<ConfirmOptions | null>(null);
  const [typed, setTyped] = useState("");
  const resolver = useRef<((ok: boolean) => void) | null>(null);

  const confirm = useCallback<ConfirmFn>((o) => {
    setOptions(o);
    setTyped("");
    return new Promise<boolean>((resolve) => {
      resolver.current = resolve;
    });
  }, []);

  useEffect(() => {
    if (options && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [options]);

  const close = (ok: boolean) => {
    resolver.current?.(ok);
    resolver.current = null;
    dialog.current?.close();
    setOptions(null);
  };

  const blocked = !!options?.typeToConfirm && typed !== options.typeToConfirm;
  return (
    <ConfirmCtx.Provider value={confirm}>
      {children}
      <dialog ref={dialog} className="dialog" onCancel={() => close(false)} aria-labelledby="confirm-title">
        {options && (
          <form
            method="dialog"
            onSubmit={(e) => {
              e.preventDefault();
              if (!blocked) close(true);
            }}
          >
            <h2 id="confirm-title">{options.title}</h2>
            {options.body && <div className="dialog-body">{options.body}</div>}
            {options.typeToConfirm && (
              <label className="field">
                <span>{t("confirm.typeToConfirm", { text: options.typeToConfirm })}</span>
                <input autoFocus value={typed} onChange={(e) => setTyped(e.target.value)} />
              </label>
            )}
            <div className="dialog-actions">
              <button type="button" className="btn" onClick={() => close(false)} autoFocus={!options.typeToConfirm}>
                {t("common.cancel")}
              </button>
              <button type="submit" className={"btn " + (options.danger ? "btn-danger" : "btn-primary")} disabled={blocked}>
                {options.confirm}
              </button>
            </div>
          </form>
        )}
      </dialog>
    </ConfirmCtx.Provider>
  );
}

export function useConfirm(): ConfirmFn {
  return useContext(ConfirmCtx);
}

// ---------- toasts ----------

type ToastFn = (message: string, kind?: "ok" | "error") => void;
const ToastCtx = createContext<ToastFn>(() => {});

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<{ id: number; message: string; kind: string }[]>([]);
  const next = useRef(0);
  const toast = useCallback<ToastFn>((message, kind = "ok") => {
    const id = ++next.current;
    setToasts((ts) => [...ts, { id, message, kind }]);
    setTimeout(() => setToasts((ts) => ts.filter((x) => x.id !== id)), 5000);
  }, []);
  return (
    <ToastCtx.Provider value={toast}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((x) => (
          <div key={x.id} className={"toast toast-" + x.kind}>
            {x.message}
          </div>
        ))}
      </div>
    </ToastCtx.Provider>
  );
}

export function useToast(): ToastFn {
  return useContext(ToastCtx);
}

// ---------- display ----------

export type Tone = "ok" | "warn" | "bad" | "info" | "muted";

export function Badge({ tone, children, title }: { tone: Tone; children: ReactNode; title?: string }) {
  return (
    <span className={"badge badge-" + tone} title={title}>
      {children}
    </span>
  );
}

/** A usage bar: `used` of `limit` (no limit: an empty bar labelled unlimited). */
export function UsageBar({ label, used, limit, format }: { label: string; used: number; limit: number | null | undefined; format: (n: number) => string }) {
  const { t } = useI18n();
  const pct = limit ? Math.min(100, (used / limit) * 100) : 0;
  const tone = !limit ? "muted" : pct >= 90 ? "bad" : pct >= 70 ? "warn" : "ok";
  return (
    <div className="usage">
      <div className="usage-label">
        <span>{label}</span>
        <span>
          {format(used)} / {limit ? format(limit) : t("quota.unlimited")}
        </span>
      </div>
      <div
        className={"bar bar-" + tone}
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={limit ?? 0}
        aria-valuenow={used}
      >
        <div style={{ width: pct + "%" }} />
      </div>
    </div>
  );
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** CPU in cores with its unit ("0.25 CPU", "2 CPU"; 1000 millicores are one core); `unit` false leaves it off. */
export function formatCpu(millis: number | null | undefined, unit = true): string {
  if (millis === null || millis === undefined) return "–";
  const cores = String(Math.round(millis) / 1000);
  return unit ? `${cores} CPU` : cores;
}

/** A time (RFC 3339 string or unix milliseconds), relative, with the exact time on hover. */
export function Time({ value }: { value: string | number | null | undefined }) {
  const { lang, t } = useI18n();
  if (value === null || value === undefined || value === "" || value === 0) return <span className="muted">–</span>;
  const date = new Date(value);
  if (isNaN(date.getTime())) return <span>{String(value)}</span>;
  const exact = date.toLocaleString(lang);
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  let text: string;
  const abs = Math.abs(seconds);
  if (abs < 10) text = t("time.now");
  else if (abs < 60) text = rtf.format(-seconds, "second");
  else if (abs < 3600) text = rtf.format(-Math.round(seconds / 60), "minute");
  else if (abs < 86400) text = rtf.format(-Math.round(seconds / 3600), "hour");
  else if (abs < 86400 * 30) text = rtf.format(-Math.round(seconds / 86400), "day");
  else text = date.toLocaleDateString(lang);
  return (
    <time dateTime={date.toISOString()} title={exact}>
      {text}
    </time>
  );
}

export function Tabs({ items }: { items: { to: string; label: string; active: boolean }[] }) {
  return (
    <nav className="tabs">
      {items.map((i) => (
        <Link key={i.to} to={i.to} aria-current={i.active ? "page" : undefined} className={i.active ? "tab active" : "tab"}>
          {i.label}
        </Link>
      ))}
    </nav>
  );
}

export function PageHeader({ title, actions, sub }: { title: ReactNode; actions?: ReactNode; sub?: ReactNode }) {
  return (
    <header className="page-header">
      <div>
        <h1>{title}</h1>
        {sub && <div className="page-sub">{sub}</div>}
      </div>
      {actions && <div className="page-actions">{actions}</div>}
    </header>
  );
}

/** A translated label for an enumerated server value (`prefix.value`), else the value itself. */
export function useEnumLabel() {
  const { t } = useI18n();
  return (prefix: string, value: string) => {
    const key = `${prefix}.${value}`;
    return hasKey(key) ? t(key) : value;
  };
}
