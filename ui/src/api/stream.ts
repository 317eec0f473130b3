// Live streams: the app timeline (Server-Sent Events) and followed logs (chunked text), both
// read with fetch so the session cookie goes along and every event name is seen (the server
// names each SSE message after the event kind, which EventSource would only deliver to
// listeners registered per name).
import { errorOf, type EventDto } from "./client";

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
  const controller = new AbortController();
  let last = after;
  let pause = 500;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        const q = last !== null ? `?after=${last}` : "";
        const response = await fetch(`/api/v1/apps/${encodeURIComponent(app)}/events/stream${q}`, {
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
          let data: string[] = [];
          let id: string | null = null;
          await readLines(
            response,
            (line) => {
              if (line === "") {
                if (data.length) {
                  try {
                    const event = JSON.parse(data.join("\n")) as EventDto;
                    last = id !== null ? Number(id) : event.id;
                    onEvent(event);
                  } catch {
                    /* a keep-alive comment or a malformed message: skip */
                  }
                }
                data = [];
                id = null;
              } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
              else if (line.startsWith("id:")) id = line.slice(3).trim();
            },
            controller.signal,
          );
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
