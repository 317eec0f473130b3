// A command in an app's running instance over a WebSocket (`GET /api/v1/apps/{name}/exec`),
// for the app page's terminal. The session cookie authenticates it and the browser's Origin
// is the console's own. The protocol (crates/api/src/exec.rs): the first text message starts
// the command; binary messages carry input and output; text `{"resize": …}` resizes; the server
// says `started`, then `exit` or `error`, and closes. Errors before the upgrade (403, 404, 409)
// cannot be read by a browser: the socket just closes without `started`.

export interface ExecStart {
  command: string[];
  cols: number;
  rows: number;
}

export interface ExecHandlers {
  started: (instance: string) => void;
  output: (bytes: Uint8Array) => void;
  exit: (code: number) => void;
  error: (message: string) => void;
  /** The socket closed; `started` tells whether the command ever started. */
  closed: (started: boolean) => void;
}

export interface ExecHandle {
  send: (data: string | Uint8Array) => void;
  resize: (cols: number, rows: number) => void;
  close: () => void;
}

export function openExec(app: string, instance: string | undefined, start: ExecStart, h: ExecHandlers): ExecHandle {
  const q = new URLSearchParams();
  if (instance) q.set("instance", instance);
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const qs = q.toString();
  const url = `${scheme}://${window.location.host}/api/v1/apps/${encodeURIComponent(app)}/exec${qs ? `?${qs}` : ""}`;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  let started = false;
  let done = false;
  const encoder = new TextEncoder();
  ws.onopen = () => {
    ws.send(JSON.stringify({ command: start.command, tty: true, cols: start.cols, rows: start.rows }));
  };
  ws.onmessage = (e) => {
    if (typeof e.data === "string") {
      let msg: { started?: { instance: string }; exit?: { code: number }; error?: string };
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      if (msg.started) {
        started = true;
        h.started(msg.started.instance);
      } else if (msg.exit) {
        h.exit(msg.exit.code);
      } else if (typeof msg.error === "string") {
        h.error(msg.error);
      }
    } else {
      h.output(new Uint8Array(e.data as ArrayBuffer));
    }
  };
  ws.onclose = () => {
    if (done) return;
    done = true;
    h.closed(started);
  };
  const open = () => ws.readyState === WebSocket.OPEN && started;
  return {
    send: (data) => {
      if (open()) ws.send(typeof data === "string" ? encoder.encode(data) : data);
    },
    resize: (cols, rows) => {
      if (open()) ws.send(JSON.stringify({ resize: { cols, rows } }));
    },
    close: () => {
      if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close();
    },
  };
}
