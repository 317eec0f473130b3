// Live streams: the app timeline and a build followed to its end (Server-Sent Events), and
// followed app logs (chunked text), all read with fetch so the session cookie goes along and
// every event name is seen (the server names each SSE message after its kind, which
// EventSource would only deliver to listeners registered per name).
import { ApiError, errorOf, type BuildDto, type EventDto, type TopologyDto } from "./client";

export interface StreamHandle {
  close(): void;
}

/** Reads lines from a streamed response body until it ends or `signal` aborts. */
async function readLines(response: Response, onLine: (line: string) => void, signal: AbortSignal) {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "";
  signal.addEventListener("abort", () => void reader.cancel().catch(() => {}));
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += value;
    let i: number;
    while ((i = rest.indexOf("\n")) >= 0) {
      onLine(rest.slice(0, i).replace(/\r$/, ""));
      rest = rest.slice(i + 1);
    }
  }
  if (rest) onLine(rest);
}

/** One Server-Sent Events message. */
interface SseMessage {
  event: string;
  id: string | null;
  data: string;
}

/** Reads Server-Sent Events messages from a streamed response until it ends or `signal` aborts. */
async function readSse(response: Response, onMessage: (m: SseMessage) => void, signal: AbortSignal) {
  let data: string[] = [];
  let event = "message";
  let id: string | null = null;
  await readLines(
    response,
    (line) => {
      if (line === "") {
        if (data.length) onMessage({ event, id, data: data.join("\n") });
        data = [];
        event = "message";
        id = null;
      } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      else if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("id:")) id = line.slice(3).trim();
      // Anything else (a `:` keep-alive comment, `retry:`) is skipped.
    },
    signal,
  );
}

/**
 * Follows a Server-Sent Events stream at `url()` (asked again on each reconnect), reconnecting
 * with a growing pause when it ends or fails, until closed or refused (401, 403, 404).
 */
function followSse(
  url: () => string,
  onMessage: (m: SseMessage) => void,
  onState: (connected: boolean, error?: string) => void,
): StreamHandle {
  const controller = new AbortController();
  let pause = 500;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        const response = await fetch(url(), {
          credentials: "same-origin",
          headers: { Accept: "text/event-stream" },
          signal: controller.signal,
        });
        if (!response.ok) {
          const error = await errorOf(response);
          onState(false, error.message);
          if (response.status === 404 || response.status === 401 || response.status === 403) return;
        } else {
          onState(true);
          pause = 500;
          await readSse(response, onMessage, controller.signal);
          onState(false);
        }
      } catch (e) {
        if (controller.signal.aborted) return;
        onState(false, e instanceof Error ? e.message : String(e));
      }
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 10_000);
    }
  };
  void run();
  return { close: () => controller.abort() };
}

/**
 * Follows `/apps/{name}/events/stream`, resuming after the last event seen when the stream
 * ends or fails (with a growing pause), until closed.
 */
export function streamEvents(
  app: string,
  after: number | null,
  onEvent: (e: EventDto) => void,
  onState: (connected: boolean, error?: string) => void,
): StreamHandle {
  let last = after;
  return followSse(
    () => `/api/v1/apps/${encodeURIComponent(app)}/events/stream${last !== null ? `?after=${last}` : ""}`,
    (m) => {
      try {
        const event = JSON.parse(m.data) as EventDto;
        last = m.id !== null ? Number(m.id) : event.id;
        onEvent(event);
      } catch {
        /* a malformed message: skip */
      }
    },
    onState,
  );
}

/** Follows `/topology/stream` (one team's, or every readable team's): each message is the whole picture. */
export function streamTopology(
  team: string | null,
  onTopology: (t: TopologyDto) => void,
  onState: (connected: boolean, error?: string) => void,
): StreamHandle {
  return followSse(
    () => `/api/v1/topology/stream${team ? `?team=${encodeURIComponent(team)}` : ""}`,
    (m) => {
      try {
        onTopology(JSON.parse(m.data) as TopologyDto);
      } catch {
        /* a malformed message: skip */
      }
    },
    onState,
  );
}

/** Follows `/apps/{name}/logs?follow=true`, one callback per line, until closed or ended. */
export function streamLogs(
  app: string,
  options: { instance?: string; tail?: number },
  onLine: (line: string) => void,
  onState: (state: "open" | "ended" | "error", error?: string) => void,
): StreamHandle {
  const controller = new AbortController();
  const q = new URLSearchParams({ follow: "true", tail: String(options.tail ?? 200) });
  if (options.instance) q.set("instance", options.instance);
  (async () => {
    try {
      const response = await fetch(`/api/v1/apps/${encodeURIComponent(app)}/logs?${q}`, {
        credentials: "same-origin",
        signal: controller.signal,
      });
      if (!response.ok) {
        onState("error", (await errorOf(response)).message);
        return;
      }
      onState("open");
      await readLines(response, onLine, controller.signal);
      if (!controller.signal.aborted) onState("ended");
    } catch (e) {
      if (!controller.signal.aborted) onState("error", e instanceof Error ? e.message : String(e));
    }
  })();
  return { close: () => controller.abort() };
}

export interface BuildHandlers {
  /** The build: first, then whenever it changes, and last when it has ended. */
  onBuild(build: BuildDto): void;
  /** More of the log: whole lines, each ending in a newline. */
  onLog(text: string): void;
  /** `open` while the build is followed, `ended` once it and its log have ended. */
  onState(state: "connecting" | "open" | "ended" | "error", error?: ApiError): void;
}

/**
 * Follows build `id` until it ends through `/builds/{id}/events`: `build` events (the
 * BuildDto, on each change), `log` events (whole lines; the SSE id is the log offset after
 * them) and a final `end`. A stream that closes without `end` is resumed after the last log
 * line received (`Last-Event-ID`), with a growing pause.
 */
export function followBuild(id: number, handlers: BuildHandlers): StreamHandle {
  const controller = new AbortController();
  const signal = controller.signal;
  let offset: string | null = null;
  let pause = 500;
  const run = async () => {
    handlers.onState("connecting");
    while (!signal.aborted) {
      let ended = false;
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (offset !== null) headers["Last-Event-ID"] = offset;
        const response = await fetch(`/api/v1/builds/${id}/events`, { credentials: "same-origin", headers, signal });
        if (!response.ok) {
          handlers.onState("error", await errorOf(response));
          if (response.status === 404 || response.status === 401 || response.status === 403) return;
        } else {
          handlers.onState("open");
          await readSse(
            response,
            (m) => {
              if (m.event === "log") {
                if (m.id !== null) offset = m.id;
                handlers.onLog(m.data);
                pause = 500;
              } else if (m.event === "build" || m.event === "end") {
                try {
                  handlers.onBuild(JSON.parse(m.data) as BuildDto);
                } catch {
                  return;
                }
                if (m.event === "end") ended = true;
              }
            },
            signal,
          );
          if (ended) {
            handlers.onState("ended");
            return;
          }
          if (!signal.aborted) handlers.onState("connecting");
        }
      } catch (e) {
        if (signal.aborted) return;
        handlers.onState("error", new ApiError(0, "network", e instanceof Error ? e.message : String(e)));
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pause);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      pause = Math.min(pause * 2, 10_000);
    }
  };
  void run();
  return { close: () => controller.abort() };
}
