// The console's pipelines and builds pages in a real browser against a real `berth server`
// and Docker: a pipeline made through the form from a git repository at a local path, "build
// now" with the log followed live until the build succeeds, a red test whose reason shows, a
// rebuild of the same commit, a cancelled build, the pages in Chinese, dark and on a phone.
// Screenshots go to ui/test-output/pipelines-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { login, nav, newPage, serverLogTail, shot, startBerth, stopBerth } from "./harness.mjs";

let state;
let gitDir;
let commit;

const ENDED = ["succeeded", "failed", "cancelled", "interrupted", "timed_out"];

/** git in the test repository, with a fixed identity and no user or system configuration. */
function git(...args) {
  return execFileSync("git", ["-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", ...args], {
    cwd: gitDir,
    env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  })
    .toString()
    .trim();
}

/**
 * The shell test image the repository builds FROM (the test app plus Debian's static busybox),
 * made the way crates/testkit makes it when no earlier test run left it behind.
 */
function ensureShellImage() {
  try {
    execFileSync("docker", ["image", "inspect", "berth-testapp-shell:latest"], { stdio: "ignore" });
    return;
  } catch {
    /* not there yet */
  }
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => existsSync(p));
  if (!busybox) throw new Error("busybox is not installed: install Debian's busybox-static");
  const context = mkdtempSync(join(tmpdir(), "berth-pl-shell-"));
  try {
    copyFileSync(busybox, join(context, "busybox"));
    writeFileSync(
      join(context, "Dockerfile"),
      'FROM berth-testapp:latest\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nLABEL berth.test="true"\n',
    );
    execFileSync("docker", ["build", "--quiet", "--tag", "berth-testapp-shell:latest", context], {
      env: { ...process.env, DOCKER_BUILDKIT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

before(async () => {
  ensureShellImage();
  state = await startBerth("pl");
  // A repository whose image is the shell test image plus two files; its test prints a line a
  // second for a few seconds, so the log can be seen growing while the build runs. The
  // namespace in test.sh keeps this run's image layers its own.
  gitDir = mkdtempSync(join(tmpdir(), "berth-pl-git-"));
  git("init", "--quiet", "--initial-branch=main");
  writeFileSync(join(gitDir, "Dockerfile"), "FROM berth-testapp-shell:latest\nCOPY app.txt test.sh /app/\n");
  writeFileSync(join(gitDir, "app.txt"), "ok");
  writeFileSync(
    join(gitDir, "test.sh"),
    `# ${state.namespace}\n` +
      'echo "testing $(cat /app/app.txt)"\n' +
      'for i in 1 2 3 4 5; do echo "check $i of 5 ok"; sleep 1; done\n' +
      "test \"$(cat /app/app.txt)\" = ok || { echo 'app.txt is wrong' >&2; exit 3; }\n" +
      "echo 'all tests passed'\n",
  );
  git("add", "--all");
  git("commit", "--quiet", "-m", "First version\n\nWith a test that takes a few seconds.");
  commit = git("rev-parse", "HEAD");
});

after(async () => {
  await stopBerth(state);
  if (gitDir) rmSync(gitDir, { recursive: true, force: true });
});

async function api(method, path, body) {
  const response = await fetch(`${state.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** A pipeline's builds (of team default) once none of them runs any more. */
async function endedBuilds(pipeline, ms = 240_000) {
  const end = Date.now() + ms;
  for (;;) {
    const { status, body } = await api("GET", `/api/v1/builds?team=default&pipeline=${pipeline}&limit=100`);
    assert.equal(status, 200, JSON.stringify(body));
    if (body.every((b) => ENDED.includes(b.status))) return body;
    if (Date.now() > end) throw new Error(`builds still running: ${JSON.stringify(body.map((b) => [b.number, b.status]))}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The build's status as the page shows it (the header's badge). */
const statusOf = (page) => page.locator(".page-header [data-testid=build-status]").getAttribute("data-status");

async function waitStatus(page, wanted, ms) {
  try {
    await page.locator(`.page-header [data-testid=build-status][data-status="${wanted}"]`).waitFor({ timeout: ms });
  } catch (e) {
    const log = await page.getByTestId("build-log").textContent().catch(() => "");
    throw new Error(`build did not reach ${wanted} (is ${await statusOf(page)}): ${e.message}\n--- log ---\n${log}\n--- server ---\n${serverLogTail(state)}`);
  }
}

/** Edits the pipeline's test command through the form. */
async function setTestCommand(page, command) {
  await page.goto(`${state.base}/pipelines/default/shop`);
  await page.getByRole("link", { name: "Edit", exact: true }).click();
  await page.waitForURL("**/pipelines/default/shop/edit");
  await page.getByLabel("Test command").fill(command);
  await page.getByRole("button", { name: "Save" }).click();
  await page.waitForURL("**/pipelines/default/shop");
}

async function buildNow(page) {
  await page.getByTestId("build-now").getByRole("button", { name: "Build now" }).click();
  await page.waitForURL(/\/builds\/\d+$/);
  return page.url();
}

/** No part of the page is wider than the window (nothing to scroll sideways). */
async function assertFits(page) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px window`);
}

test("pipelines and builds in the console", { timeout: 900_000 }, async (t) => {
  const page = await newPage(state);
  await login(state, page, "admin", state.token);
  let greenUrl;

  await t.test("the empty list invites to create a pipeline", async () => {
    await nav(page, "Pipelines").click();
    await page.waitForURL("**/pipelines");
    await page.getByText("No pipelines yet.").waitFor();
    await shot(page, "pipelines-01-empty");
    await page.locator("main .empty").getByRole("link", { name: "Create pipeline" }).click();
    await page.waitForURL("**/pipelines/new");
  });

  await t.test("the form reports the server's error next to its field, then creates the pipeline", async () => {
    const form = page.getByTestId("pipeline-form");
    await form.getByLabel("Team").selectOption("default");
    await form.getByLabel("Name", { exact: true }).fill("shop");
    await form.getByLabel("Git repository (optional)").fill(gitDir);
    await form.getByLabel("Branches to build").fill("main");
    await form.getByLabel("Test command").fill("/bin/sh /app/test.sh");
    // Write-only credentials (a local path uses none, but they are stored and never shown).
    await form.getByLabel("Git credentials").selectOption("basic");
    await form.getByLabel("Git user name").fill("git");
    await form.getByLabel("Password or token").fill("never-shown");
    await form.getByLabel("Webhook secret").fill("It's a Secret to Everybody");
    await form.getByLabel("Target image repository").fill("other/shop");
    await form.getByRole("button", { name: "Create pipeline" }).click();
    const error = page.locator('.field-error[data-field="target_repository"]');
    await error.waitFor();
    assert.match(await error.textContent(), /team default/);
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-invalid")), "true", "the bad field has the focus");
    await shot(page, "pipelines-02-form-error");

    await form.getByLabel("Target image repository").fill(`default/${state.namespace}`);
    await form.getByRole("button", { name: "Create pipeline" }).click();
    await page.waitForURL("**/pipelines/default/shop");
    await page.getByTestId("pipeline-name").waitFor();
    const remote = `${state.base}/git/default/shop.git`;
    assert.equal(await page.getByTestId("git-url").locator("code").textContent(), remote);
    assert.equal(await page.getByTestId("git-remote-command").locator("code").textContent(), `git remote add berth ${remote}`);
    assert.equal(
      await page.getByTestId("webhook-url").locator("code").textContent(),
      `${state.base}/api/v1/pipelines/default/shop/webhook`,
    );
    const settings = page.getByTestId("pipeline-settings");
    await settings.getByText(gitDir).waitFor();
    await settings.getByText("/bin/sh /app/test.sh").waitFor();
    await page.locator('[data-testid=webhook-secret-state][data-stored="true"]').waitFor();
    const html = await page.content();
    assert.ok(!html.includes("never-shown") && !html.includes("Secret to Everybody"), "secrets are never shown");
    await page.getByText("No builds yet.").waitFor();
  });

  await t.test("build now: the log is followed live and the build succeeds", async () => {
    greenUrl = await buildNow(page);
    const log = page.getByTestId("build-log");
    // A line of the test appears while the tests still run: the page follows the log live.
    await log.getByText("check 1 of 5 ok").waitFor({ timeout: 240_000 });
    const seen = await log.textContent();
    assert.ok(!seen.includes("all tests passed"), "the first check shows before the test ends");
    assert.ok(!ENDED.includes(await statusOf(page)), "the build is still running");
    await page.locator('[data-testid=build-steps] [data-step="test"][data-status="running"]').waitFor();
    await page.locator('[data-testid=log-state][data-state="open"]').waitFor();
    await shot(page, "pipelines-03-build-running");
    await waitStatus(page, "succeeded", 240_000);
    await log.getByText("all tests passed").waitFor();
    for (const step of ["fetch", "build", "test", "push"]) {
      await page.locator(`[data-testid=build-steps] [data-step="${step}"][data-status="succeeded"]`).waitFor();
    }
    assert.equal(await page.locator('[data-testid=build-steps] [data-status="failed"]').count(), 0);
    await page.locator('[data-testid=log-state][data-state="ended"]').waitFor();
    // The log kept its end in view.
    const gap = await log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
    assert.ok(gap < 30, `the log follows its end (gap ${gap}px)`);
    assert.equal(await page.getByTestId("build-commit").textContent(), commit.slice(0, 12));
    await page.getByTestId("build-summary").getByText("Ada Lovelace").waitFor();
    await page.getByTestId("build-summary").getByText("First version").waitFor();
    const image = page.getByTestId("build-image").getByRole("link");
    assert.match(await image.getAttribute("href"), new RegExp(`^/images/default/${state.namespace}@sha256:[0-9a-f]{64}$`));
    assert.equal(await page.getByTestId("build-reason").count(), 0);
    await shot(page, "pipelines-04-build-succeeded");
    await image.click();
    await page.waitForURL(/\/images\/default\/.*@sha256:/);
    await page.getByTestId("layers-table").waitFor();
  });

  await t.test("a red test fails the build and its reason is shown", async () => {
    await setTestCommand(page, `/bin/sh -c "echo 'checking app.txt'; echo 'app.txt is wrong' >&2; exit 3"`);
    await page.getByTestId("pipeline-settings").getByText("app.txt is wrong", { exact: false }).waitFor();
    await buildNow(page);
    await waitStatus(page, "failed", 240_000);
    const reason = page.getByTestId("build-reason");
    await reason.waitFor();
    assert.match(await reason.textContent(), /tests failed.*exited with code 3/);
    await page.locator('[data-testid=build-steps] [data-step="test"][data-status="failed"]').waitFor();
    // The test's own output (stderr), not Berth's line naming the command.
    await page.getByTestId("build-log").locator(".log-line:not(.log-berth)", { hasText: "app.txt is wrong" }).waitFor();
    assert.equal(await page.getByTestId("build-image").count(), 0, "a red build pushes nothing");
    await shot(page, "pipelines-05-build-failed");
  });

  await t.test("rebuild queues a new build of the same commit", async () => {
    const before = page.url();
    await page.getByRole("button", { name: "Rebuild" }).click();
    await page.waitForURL((u) => /\/builds\/\d+$/.test(u.pathname) && u.href !== before);
    const id = new URL(page.url()).pathname.split("/").pop();
    const { number } = (await api("GET", `/api/v1/builds/${id}`)).body;
    const previous = (await api("GET", `/api/v1/builds/${new URL(before).pathname.split("/").pop()}`)).body;
    assert.ok(number > previous.number, `a new build (#${number} after #${previous.number})`);
    await page.getByTestId("build-title").getByText(`#${number}`).waitFor();
    await waitStatus(page, "failed", 240_000);
    assert.equal(await page.getByTestId("build-commit").textContent(), commit.slice(0, 12));
  });

  await t.test("a running build is cancelled", async () => {
    await setTestCommand(page, 'sh -c "echo waiting; sleep 60"');
    await buildNow(page);
    const { number } = (await api("GET", `/api/v1/builds/${new URL(page.url()).pathname.split("/").pop()}`)).body;
    await page.locator('[data-testid=build-steps] [data-step="test"][data-status="running"]').waitFor({ timeout: 240_000 });
    // The test's own output line ("[test] waiting"), not Berth's line naming the command.
    await page
      .getByTestId("build-log")
      .locator(".log-line:not(.log-berth)")
      .filter({ hasText: /^\[test\] waiting\s*$/ })
      .waitFor({ timeout: 60_000 });
    await page.getByTestId("cancel-build").click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(`Cancel build #${number}?`, { exact: true }).waitFor();
    await dialog.getByRole("button", { name: "Cancel build" }).click();
    await waitStatus(page, "cancelled", 60_000);
    await page.locator('[data-testid=build-steps] [data-step="test"][data-status="cancelled"]').waitFor();
    assert.equal(await page.getByTestId("cancel-build").count(), 0, "an ended build cannot be cancelled");
    await shot(page, "pipelines-06-build-cancelled");
  });

  await t.test("a push to the git remote the page shows starts a build, listed live", async () => {
    await page.goto(`${state.base}/pipelines/new`);
    const form = page.getByTestId("pipeline-form");
    await form.getByLabel("Team").selectOption("default");
    await form.getByLabel("Name", { exact: true }).fill("hosted");
    // No repository: the pipeline builds what is pushed to Berth.
    await form.getByRole("button", { name: "Create pipeline" }).click();
    await page.waitForURL("**/pipelines/default/hosted");
    await page.getByTestId("pipeline-settings").getByText("hosted by Berth").waitFor();
    const command = await page.getByTestId("git-remote-command").locator("code").textContent();
    git(...command.split(" ").slice(1));
    // git asks for a Berth user and an API token or password; here they go in a header.
    const auth = Buffer.from(`admin:${state.token}`).toString("base64");
    const push = spawn(
      "git",
      ["-c", "credential.helper=", "-c", `http.extraHeader=Authorization: Basic ${auth}`, "push", "berth", "main"],
      { cwd: gitDir, env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null", GIT_CONFIG_NOSYSTEM: "1", GIT_TERMINAL_PROMPT: "0" } },
    );
    let output = "";
    push.stdout.on("data", (d) => (output += d));
    push.stderr.on("data", (d) => (output += d));
    const pushed = new Promise((resolve) => push.on("exit", resolve));
    // The builds list refreshes by itself: the pushed build appears without a reload.
    const row = page.locator('[data-testid=builds-table] tr[data-build="1"]');
    await row.waitFor({ timeout: 60_000 });
    await row.getByText("git push by admin").waitFor();
    await row.getByRole("link", { name: "#1" }).click();
    await waitStatus(page, "succeeded", 240_000);
    await page.locator('[data-testid=build-steps] [data-step="test"][data-status="skipped"]').waitFor();
    assert.equal(await page.getByTestId("build-commit").textContent(), commit.slice(0, 12));
    assert.equal(await pushed, 0, `git push failed:\n${output}`);
    assert.match(output, /remote:/, "the push shows the build's progress");
  });

  await t.test("the pipeline lists its builds and keeps its credentials write-only", async () => {
    // Whatever builds the earlier subtests left, once they have ended: each is listed with
    // the status the API gives it.
    const builds = await endedBuilds("shop");
    assert.ok(builds.length > 0, "the pipeline has builds");
    await page.goto(`${state.base}/pipelines/default/shop`);
    for (const b of builds) {
      await page.locator(`[data-testid=builds-table] tr[data-build="${b.number}"][data-status="${b.status}"]`).waitFor();
    }
    assert.equal(await page.locator("[data-testid=builds-table] tbody tr").count(), builds.length);
    await shot(page, "pipelines-07-pipeline");
    await page.getByRole("link", { name: "Edit", exact: true }).click();
    await page.locator('[data-testid=credentials-stored][data-stored="true"]').waitFor();
    await page.locator('[data-testid=webhook-secret-stored][data-stored="true"]').waitFor();
    assert.equal(await page.getByLabel("Git credentials").inputValue(), "keep");
    assert.equal(await page.getByLabel("Webhook secret").inputValue(), "", "write-only fields start empty");
    await page.getByLabel("Remove the stored secret").check();
    await page.getByRole("button", { name: "Save" }).click();
    await page.waitForURL("**/pipelines/default/shop");
    await page.locator('[data-testid=webhook-secret-state][data-stored="false"]').waitFor();
    await page.getByTestId("pipeline-settings").getByText("stored", { exact: true }).waitFor();

    await nav(page, "Pipelines").click();
    const row = page.locator('[data-testid=pipelines-table] tr[data-pipeline="default/shop"]');
    const last = builds.reduce((x, y) => (y.number > x.number ? y : x));
    await row.locator(`[data-testid=build-status][data-status="${last.status}"]`).waitFor();
    await row.getByText(`#${last.number}`, { exact: true }).waitFor();
    await page.goto(`${state.base}/pipelines?team=default`);
    await row.waitFor();
    await shot(page, "pipelines-08-list");
  });

  await t.test("the pipeline pages speak Chinese and have a dark theme", async () => {
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByRole("heading", { name: "流水线" }).waitFor();
    await page.getByRole("columnheader", { name: "最近构建" }).waitFor();
    // The last build's status in Chinese, whichever status it ended with.
    const zh = { succeeded: "成功", failed: "失败", cancelled: "已取消", interrupted: "已中断", timed_out: "超时" };
    const [last] = (await endedBuilds("shop")).sort((x, y) => y.number - x.number);
    await page
      .locator('[data-testid=pipelines-table] tr[data-pipeline="default/shop"] [data-testid=build-status]')
      .getByText(zh[last.status], { exact: true })
      .waitFor();
    await shot(page, "pipelines-09-list-zh");
    await page.goto(greenUrl);
    await page.getByTestId("build-steps").getByText("构建镜像").waitFor();
    await page.getByRole("heading", { name: "日志" }).waitFor();
    await shot(page, "pipelines-10-build-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    await page.getByRole("heading", { name: "Log" }).waitFor();
    await page.getByTestId("theme-toggle").click();
    await shot(page, "pipelines-11-build-dark");
    await page.getByTestId("theme-toggle").click();
  });

  await t.test("the pages fit a phone", async () => {
    const phone = await newPage(state, { width: 390, height: 844 });
    await login(state, phone, "admin", state.token);
    await phone.getByRole("button", { name: "Menu" }).click();
    await phone.getByRole("link", { name: "Pipelines" }).click();
    await phone.locator('[data-testid=pipelines-table] tr[data-pipeline="default/shop"]').waitFor();
    await assertFits(phone);
    await shot(phone, "pipelines-12-narrow-list");
    await phone.goto(`${state.base}/pipelines/default/shop`);
    await phone.getByTestId("builds-table").waitFor();
    await assertFits(phone);
    await shot(phone, "pipelines-13-narrow-pipeline");
    await phone.goto(greenUrl);
    await phone.locator('.page-header [data-testid=build-status][data-status="succeeded"]').waitFor();
    await phone.getByTestId("build-log").getByText("all tests passed").waitFor();
    await assertFits(phone);
    await shot(phone, "pipelines-14-narrow-build");
    assert.deepEqual(phone.errors, []);
    await phone.context().close();
  });

  await t.test("the pipeline is deleted after typing its name", async () => {
    await page.goto(`${state.base}/pipelines/default/shop`);
    await page.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    const confirm = dialog.getByRole("button", { name: "Delete" });
    assert.ok(await confirm.isDisabled(), "deleting needs the pipeline's name typed");
    await dialog.getByRole("textbox").fill("shop");
    await confirm.click();
    await page.waitForURL("**/pipelines?team=default");
    await page.locator('[data-testid=pipelines-table] tr[data-pipeline="default/hosted"]').waitFor();
    assert.equal(await page.locator('[data-testid=pipelines-table] tr[data-pipeline="default/shop"]').count(), 0);
    // Its builds went with it.
    await page.goto(greenUrl);
    await page.getByRole("alert").getByText("Not found:").waitFor();
  });

  assert.deepEqual(page.errors, [], "no uncaught errors in the page");
  await page.context().close();
});
