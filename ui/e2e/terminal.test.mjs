// The app page's terminal in a real browser against the real binary: an app of the test image
// (which has no shell) is created through the API; opening the default `sh` says the server's
// message; `/berth-testapp run tty` prints `tty` (it has a terminal) and exits with code 0;
// `/berth-testapp run cat` echoes what is typed and ends with Ctrl-D or Close; a stopped
// instance is said before any socket is opened; a viewer of the team gets no terminal.
// Screenshots go to ui/test-output/terminal-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { login, newPage, serverLogTail, shot, startBerth, stopBerth } from "./harness.mjs";

let state;

before(async () => {
  state = await startBerth("ui-terminal");
});

after(async () => {
  await stopBerth(state);
});

/** An API call as the admin, outside the browser. */
async function call(method, path, body) {
  const res = await fetch(`${state.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The terminal's text, from xterm's buffer (the lines, trailing blanks trimmed). */
function terminalText(page) {
  return page.evaluate(() => {
    const term = document.querySelector('[data-testid="terminal"]')?.xterm;
    if (!term) return "";
    const buf = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buf.length; i++) lines.push(buf.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n").trimEnd();
  });
}

/** Waits until the status line is in `s` and returns its text. */
async function waitStatus(page, s, timeout = 30_000) {
  const status = page.getByTestId("terminal-status");
  await page
    .waitForFunction((want) => document.querySelector('[data-testid="terminal-status"]')?.getAttribute("data-state") === want, s, { timeout })
    .catch(async (e) => {
      assert.fail(`${e}: status ${await status.getAttribute("data-state")} "${await status.textContent()}"\n${serverLogTail(state, 20)}`);
    });
  return (await status.textContent()).trim();
}

async function openCommand(page, command) {
  const panel = page.getByTestId("app-terminal");
  await panel.getByLabel("Command").fill(command);
  await panel.getByRole("button", { name: "Open", exact: true }).click();
}

test("a terminal in a running instance from the app page", { timeout: 600_000 }, async (t) => {
  await call("POST", "/api/v1/apps", {
    name: "shell",
    team: "default",
    image: "berth-testapp:latest",
    replicas: 1,
    health_path: "/healthz",
    cpu_millis: 50,
    memory_bytes: 32 * 1024 * 1024,
  });
  let app = await call("GET", "/api/v1/apps/shell");
  for (let i = 0; i < 180 && !app.instances.some((x) => x.phase === "running" && x.ready); i++) {
    await new Promise((r) => setTimeout(r, 500));
    app = await call("GET", "/api/v1/apps/shell");
  }
  const instance = app.instances.find((x) => x.phase === "running")?.name;
  assert.ok(instance, `no running instance: ${JSON.stringify(app.instances)}`);

  const page = await newPage(state);
  await login(state, page, "admin", state.token);
  await page.goto(`${state.base}/apps/shell`);
  await page.getByRole("link", { name: "Terminal", exact: true }).click();
  await page.waitForURL("**/apps/shell/terminal");
  const panel = page.getByTestId("app-terminal");
  await panel.locator(".xterm").waitFor();

  await t.test("the default sh says the server's message: the image has no shell", async () => {
    assert.equal(await panel.getByLabel("Command").inputValue(), "sh");
    assert.equal(await panel.getByLabel("Instance").inputValue(), instance);
    await panel.getByRole("button", { name: "Open", exact: true }).click();
    const text = await waitStatus(page, "error");
    assert.match(text, /^Error: .*sh/, text);
    await shot(page, "terminal-01-no-sh");
  });

  await t.test("a program with a terminal prints tty and exits with code 0", async () => {
    await openCommand(page, "/berth-testapp run tty");
    const text = await waitStatus(page, "exited");
    assert.equal(text, "Exited with code 0");
    assert.match(await terminalText(page), /^tty$/m);
    await shot(page, "terminal-02-tty");
  });

  await t.test("an exit code is said in the status line", async () => {
    await openCommand(page, "/berth-testapp run exit 3");
    assert.equal(await waitStatus(page, "exited"), "Exited with code 3");
  });

  await t.test("cat echoes what is typed and ends with Ctrl-D, or with Close", async () => {
    await openCommand(page, "/berth-testapp run cat");
    assert.equal(await waitStatus(page, "connected"), `Connected to instance ${instance}`);
    // The buttons follow the session.
    assert.equal(await panel.getByRole("button", { name: "Open", exact: true }).isDisabled(), true);
    await panel.locator(".xterm").click();
    await page.keyboard.type("hello");
    await page.keyboard.press("Enter");
    // The terminal's echo and cat's own: "hello" twice.
    await page.waitForFunction(
      () => {
        const term = document.querySelector('[data-testid="terminal"]')?.xterm;
        const buf = term?.buffer.active;
        let n = 0;
        for (let i = 0; buf && i < buf.length; i++) if (buf.getLine(i)?.translateToString(true).trim() === "hello") n++;
        return n >= 2;
      },
      null,
      { timeout: 20_000 },
    );
    await shot(page, "terminal-03-cat");
    await page.keyboard.press("Control+d");
    assert.equal(await waitStatus(page, "exited"), "Exited with code 0");

    await openCommand(page, "/berth-testapp run cat");
    await waitStatus(page, "connected");
    await panel.getByRole("button", { name: "Close", exact: true }).click();
    await page.waitForFunction(() => ["closed", "exited", "error"].includes(document.querySelector('[data-testid="terminal-status"]')?.getAttribute("data-state") ?? ""));
    assert.equal(await panel.getByRole("button", { name: "Open", exact: true }).isDisabled(), false);
  });

  await t.test("the terminal is in Chinese too", async () => {
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await panel.getByRole("button", { name: "打开", exact: true }).waitFor();
    assert.match((await page.getByTestId("terminal-status").textContent()).trim(), /^(已关闭|已退出，退出码 \d+)$/);
    await shot(page, "terminal-04-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    await panel.getByRole("button", { name: "Open", exact: true }).waitFor();
  });

  await t.test("a viewer of the team gets no terminal", async () => {
    const res = await fetch(`${state.base}/api/v1/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "victor", email: "victor@example.com", password: "correct horse battery" }),
    });
    assert.ok(res.ok, `register: ${res.status} ${await res.text()}`);
    await call("PUT", "/api/v1/teams/default/members/victor", { role: "viewer" });
    const viewer = await newPage(state);
    await login(state, viewer, "victor", "correct horse battery");
    await viewer.goto(`${state.base}/apps/shell`);
    await viewer.getByTestId("app-name").waitFor();
    assert.equal(await viewer.getByRole("link", { name: "Terminal", exact: true }).count(), 0, "no Terminal tab");
    // Its URL says why, and opens nothing.
    const sockets = [];
    viewer.on("websocket", (ws) => sockets.push(ws.url()));
    await viewer.goto(`${state.base}/apps/shell/terminal`);
    await viewer.getByTestId("terminal-denied").waitFor();
    assert.match(await viewer.getByTestId("terminal-denied").textContent(), /members and owners/);
    assert.equal(await viewer.locator(".xterm").count(), 0);
    assert.deepEqual(sockets, []);
    await shot(viewer, "terminal-05-viewer");
    assert.deepEqual(viewer.errors, []);
    await viewer.context().close();
  });

  await t.test("a stopped instance is said before any socket is opened", async () => {
    await page.goto(`${state.base}/apps/shell/terminal`);
    await panel.locator(".xterm").waitFor();
    const sockets = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await call("POST", "/api/v1/apps/shell/scale", { replicas: 0 });
    await page.getByTestId("terminal-no-instances").waitFor({ timeout: 60_000 });
    assert.equal(await panel.getByRole("button", { name: "Open", exact: true }).isDisabled(), true);
    assert.deepEqual(sockets, []);
  });

  assert.deepEqual(page.errors, []);
  await page.context().close();
});
