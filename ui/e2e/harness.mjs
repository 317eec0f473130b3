// What every browser test of the console shares: a real `berth server` in its own engine
// namespace (removed afterwards with every container, network and labelled image it made),
// Debian's chromium driven by playwright-core, pages that record uncaught errors, screenshots
// into ui/test-output/, and signing in.
//
// BERTH_BIN names the binary (default: target/debug/berth, else target/release/berth);
// CHROMIUM the browser (default /usr/bin/chromium); BERTH_UI_KEEP_DATA=1 keeps the server's
// data directory (with server.log) for a look after a failure.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ui = join(dirname(fileURLToPath(import.meta.url)), "..");
export const repo = join(ui, "..");
export const shots = join(ui, "test-output");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

function berthBinary() {
  const candidates = [process.env.BERTH_BIN, join(repo, "target/debug/berth"), join(repo, "target/release/berth")];
  const found = candidates.find((c) => c && existsSync(c));
  if (!found) throw new Error("no berth binary: build it with cargo or set BERTH_BIN");
  return found;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function docker(args, env = {}) {
  return execFileSync("docker", args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] }).toString();
}

export function quietDocker(args) {
  try {
    return docker(args);
  } catch {
    return "";
  }
}

/** The last lines of the server's log, for an error that needs them. */
function logTail(state, lines = 40) {
  try {
    return readFileSync(state.serverLog, "utf8").split("\n").slice(-lines).join("\n");
  } catch (e) {
    return `(no server log: ${e.message})`;
  }
}

/** Waits for the server's health check; fails at once when the server exits first. */
async function waitHealthy(state, ms) {
  const url = `${state.base}/healthz`;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (state.server.exitCode !== null || state.server.signalCode !== null) {
      throw new Error(`the server exited (${state.server.exitCode ?? state.server.signalCode}) before ${url} answered; its log:\n${logTail(state)}`);
    }
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(5_000) })).ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${ms} ms; the server's log:\n${logTail(state)}`);
}

/**
 * Starts a server (and the browser) for one test file. Returns the state the helpers below
 * take: `base` (the server's URL), `port`, `token` (the first admin's secret), `namespace`,
 * `dataDir`, `serverLog`, `browser`, and `localImages` (tags to remove afterwards).
 * `extraArgs` go to `berth server` after the harness's own.
 */
export async function startBerth(prefix, extraArgs = []) {
  mkdirSync(shots, { recursive: true });
  const namespace = `bt-${prefix}-${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 7)}`;
  const state = { namespace, localImages: [], dataDir: mkdtempSync(join(tmpdir(), `berth-${prefix}-e2e-`)) };
  state.port = await freePort();
  state.base = `http://127.0.0.1:${state.port}`;
  // The router on a free loopback port of its own (its default, port 80, is one per machine).
  do state.routerPort = await freePort();
  while (state.routerPort === state.port);
  state.serverLog = join(state.dataDir, "server.log");
  const out = openSync(state.serverLog, "a");
  state.server = spawn(
    berthBinary(),
    [
      "server",
      "--listen",
      `127.0.0.1:${state.port}`,
      "--data-dir",
      join(state.dataDir, "data"),
      "--namespace",
      namespace,
      "--resync-interval",
      "5s",
      "--http-listen",
      `127.0.0.1:${state.routerPort}`,
      ...extraArgs,
    ],
    { stdio: ["ignore", out, out] },
  );
  try {
    await waitHealthy(state, 30_000);
    state.token = readFileSync(join(state.dataDir, "data/admin-token"), "utf8").trim();
    state.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    });
  } catch (e) {
    await stopBerth(state);
    throw e;
  }
  return state;
}

/** Stops the browser and the server and removes everything labelled with the namespace. */
export async function stopBerth(state) {
  if (!state) return;
  await state.browser?.close().catch(() => {});
  if (state.server && state.server.exitCode === null) {
    state.server.kill("SIGTERM");
    await new Promise((r) => {
      const timer = setTimeout(() => {
        state.server.kill("SIGKILL");
        r();
      }, 10_000);
      state.server.once("exit", () => {
        clearTimeout(timer);
        r();
      });
    });
  }
  const ns = state.namespace;
  // Containers (apps, builds, tests), the networks, images the builds made, local tags.
  const ids = quietDocker(["ps", "-aq", "--filter", `label=berth.namespace=${ns}`]).split(/\s+/).filter(Boolean);
  if (ids.length) quietDocker(["rm", "-f", "-v", ...ids]);
  // The namespace's network and its teams' (`<ns>-team-<team>`), by exact name.
  const networks = quietDocker(["network", "ls", "--format", "{{.Name}}"])
    .split(/\s+/)
    .filter((name) => name === ns || name.startsWith(`${ns}-team-`));
  for (const name of networks) quietDocker(["network", "rm", name]);
  const images = [...new Set(quietDocker(["images", "-q", "--filter", `label=berth.namespace=${ns}`]).split(/\s+/).filter(Boolean))];
  if (images.length) quietDocker(["rmi", "-f", ...images]);
  for (const image of state.localImages) quietDocker(["rmi", image]);
  // Volumes: the apps' and the namespace's claim (`<ns>-installation`).
  const volumes = quietDocker(["volume", "ls", "-q", "--filter", `label=berth.namespace=${ns}`]).split(/\s+/).filter(Boolean);
  if (volumes.length) quietDocker(["volume", "rm", "-f", ...volumes]);
  if (process.env.BERTH_UI_KEEP_DATA !== "1") rmSync(state.dataDir, { recursive: true, force: true });
}

/** The last lines of the server's log (for assertion messages). */
export function serverLogTail(state, lines = 60) {
  try {
    return readFileSync(state.serverLog, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** A new page (1366×768 unless told) that records uncaught page errors in `page.errors`. */
export async function newPage(state, viewport = { width: 1366, height: 768 }) {
  const context = await state.browser.newContext({ viewport, locale: "en-US", reducedMotion: "reduce" });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  return page;
}

export async function shot(page, name) {
  // From the top, so the sticky top bar is drawn where it belongs in the full-page image.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

export async function login(state, page, username, password) {
  await page.goto(`${state.base}/login`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/apps");
}

/** A link of the sidebar. */
export const nav = (page, name) => page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name, exact: true });

/**
 * Adds a variable to the environment editor of a create or deploy form (a row of name, value
 * and "sensitive"), and returns its row.
 */
export async function addEnv(page, key, value, { sensitive = false } = {}) {
  const editor = page.getByTestId("env-editor");
  await editor.getByRole("button", { name: "Add variable" }).click();
  const row = editor.getByTestId("env-row").last();
  await row.getByLabel("Variable", { exact: true }).fill(key);
  if (sensitive) await row.getByLabel("sensitive", { exact: true }).check();
  await row.getByLabel("Value", { exact: true }).fill(value);
  return row;
}
