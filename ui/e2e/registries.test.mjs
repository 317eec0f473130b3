// External registries, retention rules and a team's display name in a real browser against a
// real `berth server`: Debian's Distribution registry (docker-registry, htpasswd auth) on a
// loopback port holds images copied from the local engine with skopeo; the console adds it
// (a bad URL reported next to its field, the password write-only), browses to an image's
// layers and deletes it after confirming. On the registry page a retention rule is refused,
// made, applied (sparing the tag a kept app revision uses, whose deletion the server then
// refuses), changed and deleted; a team is renamed inline. Pages in Chinese and on a phone.
// Screenshots go to ui/test-output/registries-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { login, nav, newPage, serverLogTail, shot, startBerth, stopBerth } from "./harness.mjs";

const DISTRIBUTION = process.env.BERTH_TEST_DISTRIBUTION ?? "/usr/bin/docker-registry";
const DIST_USER = "berth-ci";
const DIST_PASSWORD = "registry-e2e-pw";
// bcrypt (cost 4) of DIST_PASSWORD: Distribution reads bcrypt htpasswd entries only.
const DIST_HTPASSWD = "$2b$04$iJPwCGtOw6lctcyvLXdMqOoR1mhV7WbeRV48A2YWG9y4OprPHcZr6";

let state;
/** The Distribution registry: its process, port and directory. */
let dist;

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

async function startDistribution() {
  const dir = mkdtempSync(join(tmpdir(), "berth-rg-dist-"));
  const port = await freePort();
  writeFileSync(join(dir, "htpasswd"), `${DIST_USER}:${DIST_HTPASSWD}\n`);
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
  secret: berth-e2e-secret
auth:
  htpasswd:
    realm: berth-e2e
    path: ${join(dir, "htpasswd")}
`,
  );
  const out = openSync(join(dir, "registry.log"), "a");
  const child = spawn(DISTRIBUTION, ["serve", join(dir, "config.yml")], { stdio: ["ignore", out, out] });
  const registry = { child, port, dir, host: `127.0.0.1:${port}` };
  const end = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`http://${registry.host}/v2/`)).status === 401) return registry;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end || child.exitCode !== null) {
      await stopDistribution(registry);
      throw new Error(`docker-registry did not start:\n${readFileSync(join(dir, "registry.log"), "utf8")}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopDistribution(registry) {
  if (!registry) return;
  if (registry.child.exitCode === null) {
    const exited = new Promise((r) => registry.child.once("exit", r));
    registry.child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (registry.child.exitCode === null) registry.child.kill("SIGKILL");
  }
  rmSync(registry.dir, { recursive: true, force: true });
}

/** Copies an image of the local engine to `destination` (host/repo:tag) over plain http. */
function skopeoCopy(image, destination, creds) {
  execFileSync(
    "skopeo",
    ["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds, `docker-daemon:${image}`, `docker://${destination}`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
}

/** Calls Berth's API as the first admin. */
async function api(method, path, body) {
  const response = await fetch(`${state.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** No part of the page is wider than the window (nothing to scroll sideways). */
async function assertFits(page) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px window`);
}

before(async () => {
  state = await startBerth("rg");
  dist = await startDistribution();
  // Two repositories in the external registry (the same image): one to delete, one to keep.
  const distCreds = `${DIST_USER}:${DIST_PASSWORD}`;
  skopeoCopy("berth-testapp:latest", `${dist.host}/shop/web:v1`, distCreds);
  skopeoCopy("berth-testapp:latest", `${dist.host}/shop/api:v1`, distCreds);
  // Three tags in the built-in registry for the retention rule, pushed one after the other.
  const berthCreds = `admin:${state.token}`;
  for (const tag of ["v1", "v2", "v3"]) skopeoCopy("berth-testapp:latest", `127.0.0.1:${state.port}/default/keep:${tag}`, berthCreds);
  // A kept revision uses default/keep:v1 (no instances: nothing runs).
  const app = await api("POST", "/api/v1/apps", {
    name: "keeper",
    team: "default",
    image: `127.0.0.1:${state.port}/default/keep:v1`,
    replicas: 0,
    cpu_millis: 100,
    memory_bytes: 64 * 1024 * 1024,
  });
  assert.ok(app.status === 201 || app.status === 200, `create app: ${app.status} ${JSON.stringify(app.body)}`);
});

after(async () => {
  await stopDistribution(dist);
  await stopBerth(state);
});

test("external registries, retention rules and team names in the console", { timeout: 600_000 }, async (t) => {
  const page = await newPage(state);
  await login(state, page, "admin", state.token);

  await t.test("an admin adds an external registry; a bad URL is reported next to its field", async () => {
    await nav(page, "External registries").click();
    await page.waitForURL("**/registries");
    await page.getByText("No external registries yet.", { exact: false }).waitFor();
    await shot(page, "registries-01-empty");
    await page.locator("main .empty").getByRole("link", { name: "Add registry" }).click();
    await page.waitForURL("**/registries/new");
    const form = page.getByTestId("registry-form");
    await form.getByLabel("Name", { exact: true }).fill("dist");
    await form.getByLabel("Team").selectOption("default");
    await form.getByLabel("URL").fill("ftp://" + dist.host);
    await form.getByLabel("User name").fill(DIST_USER);
    await form.getByLabel("Password").fill(DIST_PASSWORD);
    await form.getByRole("button", { name: "Add registry" }).click();
    const error = page.locator('.field-error[data-field="url"]');
    await error.waitFor();
    assert.match(await error.textContent(), /http:\/\//);
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-invalid")), "true", "the bad field has the focus");
    await shot(page, "registries-02-form-error");

    await form.getByLabel("URL").fill(`http://${dist.host}`);
    await form.getByRole("button", { name: "Add registry" }).click();
    await page.waitForURL("**/registries/dist");
    await page.locator('[data-testid=registry-facts] [data-testid=password-state][data-stored="true"]').waitFor();
    await page.getByTestId("registry-facts").getByText(`http://${dist.host}`).waitFor();
    const rows = page.locator("[data-testid=repos-table] tbody tr");
    await page.locator('[data-testid=repos-table] tr[data-repository="shop/web"]').waitFor();
    assert.equal(await rows.count(), 2);
    assert.ok(!(await page.content()).includes(DIST_PASSWORD), "the password is never shown");
    await shot(page, "registries-03-registry");
  });

  await t.test("the registry's repositories are searched and its image's layers shown", async () => {
    await page.getByRole("searchbox").fill("web");
    await page.getByRole("button", { name: "Search" }).click();
    await page.waitForURL("**/registries/dist?q=web");
    await page.locator('[data-testid=repos-table] tr[data-repository="shop/api"]').waitFor({ state: "detached" });
    await page.getByRole("link", { name: "shop/web" }).click();
    await page.waitForURL("**/registries/dist/images/shop/web");
    await page.locator('[data-testid=tags-table] tr[data-tag="v1"]').getByRole("link", { name: "v1" }).click();
    await page.waitForURL("**/registries/dist/images/shop/web:v1");
    const layers = page.locator("[data-testid=layers-table] tbody tr");
    await layers.first().waitFor();
    assert.ok((await layers.count()) >= 1);
    assert.match(await layers.first().textContent(), /sha256:[0-9a-f]{12}/);
    await page.getByTestId("image-config").waitFor();
    await shot(page, "registries-04-image");
    // The view has its own URL: opened anew, it shows the same image.
    await page.reload();
    await page.locator("[data-testid=layers-table] tbody tr").first().waitFor();
  });

  await t.test("the edit form keeps the stored password when left empty", async () => {
    await page.goto(`${state.base}/registries/dist/edit`);
    const form = page.getByTestId("registry-form");
    await form.locator('[data-testid=password-state][data-stored="true"]').waitFor();
    await form.getByText("Leave empty to keep the stored password.").waitFor();
    assert.equal(await form.getByLabel("Password").inputValue(), "", "a write-only field starts empty");
    assert.equal(await form.getByLabel("Name", { exact: true }).getAttribute("readonly"), "");
    await form.getByLabel("User name").fill("someone-else");
    await form.getByText("The stored password is dropped", { exact: false }).waitFor();
    await form.getByLabel("User name").fill(DIST_USER);
    await form.getByRole("button", { name: "Save" }).click();
    await page.waitForURL("**/registries/dist");
    await page.locator('[data-testid=registry-facts] [data-testid=password-state][data-stored="true"]').waitFor();
    // Still the right credentials: the registry answers.
    await page.locator('[data-testid=repos-table] tr[data-repository="shop/web"]').waitFor();
  });

  await t.test("an image of the external registry is deleted after confirming", async () => {
    await page.goto(`${state.base}/registries/dist/images/shop/web:v1`);
    await page.getByRole("button", { name: "Delete image" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Delete this image?").waitFor();
    await shot(page, "registries-05-delete-confirm");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    assert.equal((await api("GET", "/api/v1/registries/dist/images/shop/web:v1")).status, 200, "cancel deletes nothing");
    await page.getByRole("button", { name: "Delete image" }).click();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.waitForURL((u) => u.pathname === "/registries/dist/images/shop/web");
    await page.getByText("This repository has no tags.").waitFor();
    assert.equal((await api("GET", "/api/v1/registries/dist/images/shop/web:v1")).status, 404, "the image is gone");
    assert.equal((await api("GET", "/api/v1/registries/dist/images/shop/api:v1")).status, 200, "the other repository stays");
  });

  await t.test("a retention rule is refused, made, applied, changed and deleted", async () => {
    await nav(page, "Registry storage").click();
    await page.waitForURL("**/registry");
    const card = page.getByTestId("retention-card");
    await card.getByText("No retention rules").waitFor();
    const form = page.getByTestId("retention-form");
    await form.getByLabel("Repository").fill("default/keep");
    await form.getByLabel("Keep the newest tags").fill("0");
    await form.getByRole("button", { name: "Add rule" }).click();
    const error = form.locator('.field-error[data-field="keep_newest_tags"]');
    await error.waitFor();
    assert.match(await error.textContent(), /at least 1/);
    await shot(page, "registries-06-retention-refused");

    await form.getByLabel("Keep the newest tags").fill("1");
    await form.getByRole("button", { name: "Add rule" }).click();
    const row = card.locator('[data-testid=retention-table] tr[data-rule="default/keep"]');
    await row.waitFor();
    assert.equal((await row.locator("td").nth(1).textContent()).trim(), "1");

    // Applying keeps the newest tag and the one a kept revision uses; v2 goes.
    await row.getByRole("button", { name: "Apply now default/keep" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Apply the retention rule of default/keep now?").waitFor();
    await dialog.getByRole("button", { name: "Apply now" }).click();
    const report = card.getByTestId("retention-report");
    await report.waitFor();
    assert.match(await report.textContent(), /default\/keep: deleted 1 tag\(s\) and 0 untagged image\(s\)\.\s*v2/);
    await shot(page, "registries-07-retention-applied");
    const tags = await api("GET", "/api/v1/images/default/keep");
    assert.deepEqual(tags.body.tags.map((x) => x.tag).sort(), ["v1", "v3"]);

    // The server refuses to delete the tag a kept revision uses, and the page says why.
    await page.goto(`${state.base}/images/default/keep`);
    await page.getByRole("button", { name: "Delete default/keep:v1" }).click();
    await dialog.getByRole("button", { name: "Delete" }).click();
    const refusal = page.getByRole("alert");
    await refusal.getByText("is used by app keeper revision 1", { exact: false }).waitFor();
    await page.locator('[data-testid=tags-table] tr[data-tag="v1"]').waitFor();

    // Changed through its own URL, then deleted after confirming.
    await page.goto(`${state.base}/registry`);
    await row.getByRole("link", { name: "Edit default/keep" }).click();
    await page.waitForURL((u) => u.searchParams.get("rule") === "default/keep");
    await form.getByRole("heading", { name: "Edit the rule of default/keep" }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("name")), "keep_newest_tags", "the form has the focus");
    await form.getByLabel("Delete untagged images older than (days)").fill("7");
    await form.getByRole("button", { name: "Save" }).click();
    await row.getByText("7 days").waitFor();
    assert.equal(new URL(page.url()).searchParams.get("rule"), null);
    await row.getByRole("button", { name: "Delete default/keep" }).click();
    await dialog.getByText("Delete the retention rule of default/keep?").waitFor();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await card.getByText("No retention rules").waitFor();
    assert.deepEqual((await api("GET", "/api/v1/registry/retention-rules")).body, []);
  });

  await t.test("an owner renames the team inline", async () => {
    await page.goto(`${state.base}/teams/default`);
    await page.getByRole("button", { name: "Rename" }).click();
    const form = page.getByTestId("display-name-form");
    const input = form.getByLabel("Display name");
    await form.waitFor();
    // Focus moves in an effect after the render: wait for it rather than read it at once.
    const focused = (test) => page.waitForFunction(test, null, { timeout: 5_000 });
    await focused(() => document.activeElement?.getAttribute("name") === "display_name"); // the editor has the focus
    // Escape gives up and gives the keyboard back to the button.
    await page.keyboard.press("Escape");
    await form.waitFor({ state: "detached" });
    await focused(() => document.activeElement?.tagName === "BUTTON" && document.activeElement.textContent === "Rename");
    await page.keyboard.press("Enter");
    await form.waitFor();
    await focused(() => document.activeElement?.getAttribute("name") === "display_name");
    await input.fill("x".repeat(101));
    await form.getByRole("button", { name: "Save" }).click();
    const error = form.locator('.field-error[data-field="display_name"]');
    await error.waitFor();
    assert.match(await error.textContent(), /at most 100/);
    await shot(page, "registries-08-team-rename-refused");
    await input.fill("Shop floor");
    await input.press("Enter");
    await form.waitFor({ state: "detached" });
    await page.getByTestId("team-title").getByText("Shop floor", { exact: true }).waitFor();
    await shot(page, "registries-09-team-renamed");
    assert.equal((await api("GET", "/api/v1/teams/default")).body.display_name, "Shop floor");
    await page.reload();
    await page.getByTestId("team-title").getByText("Shop floor").waitFor();
  });

  await t.test("the registry pages speak Chinese", async () => {
    await page.goto(`${state.base}/registries`);
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByRole("heading", { name: "外部镜像仓库" }).waitFor();
    await page.locator('[data-testid=registries-table] tr[data-registry="dist"]').getByText("已保存", { exact: true }).waitFor();
    await shot(page, "registries-10-list-zh");
    await page.goto(`${state.base}/registry`);
    await page.getByRole("heading", { name: "保留规则" }).waitFor();
    await page.getByTestId("lang-switch").selectOption("en");
    await page.getByRole("heading", { name: "Retention rules" }).waitFor();
  });

  await t.test("the pages fit a phone", async () => {
    const phone = await newPage(state, { width: 390, height: 844 });
    await login(state, phone, "admin", state.token);
    await phone.getByRole("button", { name: "Menu" }).click();
    await phone.getByRole("link", { name: "External registries" }).click();
    await phone.locator('[data-testid=registries-table] tr[data-registry="dist"]').waitFor();
    await assertFits(phone);
    await shot(phone, "registries-11-narrow-list");
    await phone.goto(`${state.base}/registries/dist`);
    await phone.locator('[data-testid=repos-table] tr[data-repository="shop/api"]').waitFor();
    await assertFits(phone);
    await shot(phone, "registries-12-narrow-registry");
    await phone.goto(`${state.base}/registries/dist/images/shop/api:v1`);
    await phone.locator("[data-testid=layers-table] tbody tr").first().waitFor();
    await assertFits(phone);
    await shot(phone, "registries-13-narrow-image");
    await phone.goto(`${state.base}/registries/dist/edit`);
    await phone.getByTestId("registry-form").waitFor();
    await assertFits(phone);
    await shot(phone, "registries-14-narrow-form");
    // A rule to show (made through the API, removed afterwards).
    const rule = await api("PUT", "/api/v1/registry/retention-rules/default/keep", { keep_newest_tags: 5, delete_untagged_older_than_ms: 86_400_000 });
    assert.equal(rule.status, 200, JSON.stringify(rule.body));
    await phone.goto(`${state.base}/registry`);
    await phone.locator('[data-testid=retention-table] tr[data-rule="default/keep"]').waitFor();
    await phone.getByTestId("retention-form").waitFor();
    await assertFits(phone);
    await shot(phone, "registries-15-narrow-retention");
    assert.equal((await api("DELETE", "/api/v1/registry/retention-rules/default/keep")).status, 204);
    await phone.goto(`${state.base}/teams/default`);
    await phone.getByRole("button", { name: "Rename" }).click();
    await phone.getByTestId("display-name-form").waitFor();
    await assertFits(phone);
    await shot(phone, "registries-16-narrow-team");
    assert.deepEqual(phone.errors, []);
    await phone.context().close();
  });

  await t.test("the registry is removed from Berth after confirming", async () => {
    await page.goto(`${state.base}/registries`);
    await page.getByRole("button", { name: "Delete dist" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Remove registry dist from Berth?").waitFor();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.getByText("No external registries yet.", { exact: false }).waitFor();
    // Berth forgot it; the registry itself still holds its image.
    assert.equal((await api("GET", "/api/v1/registries/dist")).status, 404);
    const still = await fetch(`http://${dist.host}/v2/shop/api/tags/list`, {
      headers: { Authorization: "Basic " + Buffer.from(`${DIST_USER}:${DIST_PASSWORD}`).toString("base64") },
    });
    assert.equal(still.status, 200);
  });

  assert.deepEqual(page.errors, [], `no uncaught errors in the page\n${serverLogTail(state)}`);
  await page.context().close();
});
