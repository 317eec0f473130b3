// The app page's terminal: a command in one of the app's running instances, drawn by xterm.js
// and fitted to its box (each fit resizes the command's terminal). The instance is chosen
// among the running ones (in the URL, like the logs' filter); before a socket is opened the
// app is asked for again, so a stopped instance is said plainly instead of a socket the server
// would refuse (a browser cannot read why).
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { api, call, type AppDto } from "../api/client";
import { openExec, type ExecHandle } from "../api/exec";
import { useI18n } from "../i18n";
import { splitArgs } from "./builds";
import { Badge } from "./ui";

type State =
  | { s: "idle" }
  | { s: "connecting" }
  | { s: "connected"; instance: string }
  | { s: "exited"; code: number }
  | { s: "error"; message: string }
  | { s: "failed" }
  | { s: "closed" }
  | { s: "gone"; instance: string };

const running = (app: AppDto) => app.instances.filter((i) => i.phase === "running").map((i) => i.name);

export function AppTerminal({ app, canExec }: { app: AppDto; canExec: boolean }) {
  const { t } = useI18n();
  const [params, setParams] = useSearchParams();
  const names = running(app);
  const chosen = params.get("instance") ?? "";
  const instance = chosen && names.includes(chosen) ? chosen : (names[0] ?? "");
  const [command, setCommand] = useState("sh");
  const [state, setState] = useState<State>({ s: "idle" });
  const box = useRef<HTMLDivElement>(null);
  const term = useRef<Terminal | null>(null);
  const fit = useRef<FitAddon | null>(null);
  const session = useRef<ExecHandle | null>(null);

  useEffect(() => {
    if (!canExec || !box.current) return;
    const tm = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 5000 });
    const f = new FitAddon();
    tm.loadAddon(f);
    tm.open(box.current);
    term.current = tm;
    fit.current = f;
    const refit = () => {
      try {
        f.fit();
      } catch {
        /* not laid out yet */
      }
    };
    refit();
    const data = tm.onData((d) => session.current?.send(d));
    const resized = tm.onResize(({ cols, rows }) => session.current?.resize(cols, rows));
    const observer = new ResizeObserver(refit);
    observer.observe(box.current);
    window.addEventListener("resize", refit);
    // For tests and debugging: the terminal's text.
    (box.current as HTMLDivElement & { xterm?: Terminal }).xterm = tm;
    return () => {
      observer.disconnect();
      window.removeEventListener("resize", refit);
      data.dispose();
      resized.dispose();
      session.current?.close();
      session.current = null;
      tm.dispose();
      term.current = null;
      fit.current = null;
    };
  }, [canExec]);

  if (!canExec) {
    return (
      <section className="card" data-testid="app-terminal">
        <h2>{t("terminal.title")}</h2>
        <div className="alert alert-info" data-testid="terminal-denied">
          {t("terminal.denied")}
        </div>
      </section>
    );
  }

  const active = state.s === "connecting" || state.s === "connected";

  async function open(e: FormEvent) {
    e.preventDefault();
    const tm = term.current;
    if (!tm || active) return;
    setState({ s: "connecting" });
    // The app as it is now: is the instance still running?
    let target = instance;
    try {
      const fresh = await call(api.GET("/api/v1/apps/{name}", { params: { path: { name: app.name } } }));
      const now = running(fresh);
      if (!target || !now.includes(target)) {
        setState(target ? { s: "gone", instance: target } : { s: "idle" });
        return;
      }
    } catch (err) {
      setState({ s: "error", message: err instanceof Error ? err.message : String(err) });
      return;
    }
    const words = splitArgs(command.trim());
    try {
      fit.current?.fit();
    } catch {
      /* keep the current size */
    }
    tm.reset();
    tm.focus();
    session.current = openExec(
      app.name,
      target,
      { command: words.length ? words : ["sh"], cols: tm.cols, rows: tm.rows },
      {
        started: (name) => {
          setState({ s: "connected", instance: name });
          session.current?.resize(tm.cols, tm.rows);
        },
        output: (bytes) => tm.write(bytes),
        exit: (code) => setState({ s: "exited", code }),
        error: (message) => setState({ s: "error", message }),
        closed: (started) => {
          session.current = null;
          setState((s) =>
            s.s === "exited" || s.s === "error" ? s : started ? { s: "closed" } : { s: "failed" },
          );
        },
      },
    );
  }

  const status = (() => {
    switch (state.s) {
      case "idle":
        return t("terminal.state.idle");
      case "connecting":
        return t("terminal.state.connecting");
      case "connected":
        return t("terminal.state.connected", { instance: state.instance });
      case "exited":
        return t("terminal.state.exited", { code: state.code });
      case "error":
        return t("terminal.state.error", { message: state.message });
      case "failed":
        return t("terminal.state.failed");
      case "closed":
        return t("terminal.state.closed");
      case "gone":
        return t("terminal.state.gone", { instance: state.instance });
    }
  })();
  const tone =
    state.s === "connected"
      ? "ok"
      : state.s === "error" || state.s === "failed" || state.s === "gone" || (state.s === "exited" && state.code !== 0)
        ? "bad"
        : "muted";

  return (
    <section className="card" data-testid="app-terminal">
      <form className="card-head terminal-bar" onSubmit={(e) => void open(e)}>
        <h2>{t("terminal.title")}</h2>
        <select
          aria-label={t("terminal.instance")}
          value={instance}
          disabled={active || names.length === 0}
          onChange={(e) => {
            const next = new URLSearchParams(params);
            next.set("instance", e.target.value);
            setParams(next, { replace: true });
          }}
        >
          {names.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <input
          aria-label={t("terminal.command")}
          value={command}
          onChange={(e) => setCommand(e.target.value)}
          disabled={active}
          placeholder="sh"
          className="terminal-command"
          spellCheck={false}
          autoCapitalize="off"
          autoComplete="off"
        />
        <button type="submit" className="btn btn-small btn-primary" disabled={active || names.length === 0}>
          {t("terminal.open")}
        </button>
        <button type="button" className="btn btn-small" disabled={!active} onClick={() => session.current?.close()}>
          {t("terminal.close")}
        </button>
      </form>
      {names.length === 0 && (
        <div className="alert alert-warn" data-testid="terminal-no-instances">
          {t("terminal.noInstances")}
        </div>
      )}
      {tone === "bad" ? (
        // A failure's message may be long (the server's advice): an alert wraps it.
        <div data-testid="terminal-status" data-state={state.s} className="alert alert-error terminal-status" role="status">
          {status}
        </div>
      ) : (
        <div data-testid="terminal-status" data-state={state.s} className="terminal-status" role="status">
          <Badge tone={tone}>{status}</Badge>
        </div>
      )}
      <div className="terminal-box" ref={box} data-testid="terminal" />
    </section>
  );
}
