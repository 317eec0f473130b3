// Compose import in a real browser against the real binary: the Apps page links to the import
// page; a compose file of three services (web, worker, cache, all berth-testapp, with
// depends_on, an env file and one key that does not map) is read from a chosen file and its
// plan lists three "create" rows in dependency order and the note naming `services.web.restart`,
// with nothing made; Import waits for a plan of the same inputs; importing makes the three apps,
// which the Apps page lists (web becomes healthy, its env file's variable set); a file with
// `version: "1"` is refused naming `version`, with nothing made; importing the same file again
// changes nothing. Screenshots go to ui/test-output/compose-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { login, nav, newPage, shot, startBerth, stopBerth } from "./harness.mjs";

let state;

before(async () => {
  state = await startBerth("ui-compose");
});

after(async () => {
  await stopBerth(state);
});

/** An API call as the admin, outside the browser. */
async function call(method, path) {
  const res = await fetch(`${state.base}${path}`, { method, headers: { Authorization: `Bearer ${state.token}` } });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const appNames = async () => (await call("GET", "/api/v1/apps")).map((a) => a.name).sort();

const COMPOSE = `services:
  web:
    image: berth-testapp:latest
    ports: ["8080"]
    env_file: [web.env]
    depends_on: [worker, cache]
    restart: always
  worker:
    image: berth-testapp:latest
    depends_on:
      cache: {condition: service_started}
    environment: ["ROLE=worker"]
  cache:
    image: berth-testapp:latest
    expose: ["8080"]
`;

const BAD = `version: "1"
services:
  other:
    image: berth-testapp:latest
`;

/** The rows of the plan or result table as `service app action revision`. */
async function rows(section) {
  return section.locator("tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim()).join(" ")),
  );
}

test("a compose file is planned, imported and imported again from the console", { timeout: 600_000 }, async (t) => {
  const page = await newPage(state);
  await login(state, page, "admin", state.token);
  const form = page.getByTestId("compose-form");
  const importButton = form.getByRole("button", { name: "Import", exact: true });

  await t.test("the Apps page links to the import page", async () => {
    await page.getByRole("link", { name: "Import compose file" }).click();
    await page.waitForURL("**/apps/import");
    await page.getByRole("heading", { name: "Import a compose file" }).waitFor();
    assert.equal(await importButton.isDisabled(), true, "no import before a plan");
  });

  await t.test("the plan of an uploaded file: three creates in dependency order and the unmapped key", async () => {
    await form.getByLabel("Team").selectOption("default");
    await form.getByLabel("App name prefix").fill("shop-");
    await form.getByTestId("compose-file").setInputFiles({ name: "docker-compose.yml", mimeType: "text/yaml", buffer: Buffer.from(COMPOSE) });
    // The file's text lands in the textarea, where it can be edited.
    await page.waitForFunction((text) => document.querySelector('[data-testid="compose-form"] textarea')?.value === text, COMPOSE);
    await form.getByText("Read from docker-compose.yml").waitFor();
    await form.getByTestId("env-files-input").setInputFiles({ name: "web.env", mimeType: "text/plain", buffer: Buffer.from("GREETING=hello\n") });
    const envRow = form.getByTestId("env-file-row");
    await envRow.waitFor();
    assert.equal(await envRow.getByLabel("Path in the compose file").inputValue(), "web.env");

    const [request] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/teams/default/compose") && r.method() === "POST"),
      form.getByRole("button", { name: "Show plan" }).click(),
    ]);
    assert.deepEqual(JSON.parse(request.postData()), { compose: COMPOSE, prefix: "shop-", env_files: { "web.env": "GREETING=hello\n" }, dry_run: true });
    const plan = page.getByTestId("compose-plan");
    await plan.waitFor();
    assert.deepEqual(await rows(plan), ["cache shop-cache create –", "worker shop-worker create –", "web shop-web create –"]);
    const notes = await plan.getByTestId("compose-notes").locator("li").allTextContents();
    assert.ok(
      notes.some((n) => n.startsWith("services.web.restart: ")),
      `a note names services.web.restart: ${JSON.stringify(notes)}`,
    );
    assert.ok(!notes.some((n) => n.includes("web.env")), `the env file was read: ${JSON.stringify(notes)}`);
    assert.deepEqual(await appNames(), [], "a plan makes nothing");
    assert.equal(await importButton.isEnabled(), true);
    await shot(page, "compose-01-plan");

    // A changed input needs a new plan.
    await form.getByLabel("App name prefix").fill("shop2-");
    assert.equal(await importButton.isDisabled(), true);
    await form.getByText("The inputs changed since the plan").waitFor();
    await form.getByLabel("App name prefix").fill("shop-");
    assert.equal(await importButton.isEnabled(), true);
  });

  await t.test("importing makes the three apps, which the Apps page lists", async () => {
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/teams/default/compose") && r.method() === "POST"),
      importButton.click(),
    ]);
    assert.equal(JSON.parse(request.postData()).dry_run, false);
    const result = page.getByTestId("compose-result");
    await result.waitFor();
    assert.deepEqual(await rows(result), ["cache shop-cache create #1", "worker shop-worker create #1", "web shop-web create #1"]);
    assert.equal(await result.getByRole("link", { name: "shop-web" }).getAttribute("href"), "/apps/shop-web");
    await page.locator(".toast").getByText("Compose file imported: 3 apps").waitFor();
    assert.equal(await importButton.isDisabled(), true, "a done import is not repeated without a new plan");
    assert.deepEqual(await appNames(), ["shop-cache", "shop-web", "shop-worker"]);
    const web = await call("GET", "/api/v1/apps/shop-web");
    assert.equal(web.template.env.GREETING, "hello");
    await shot(page, "compose-02-imported");

    await nav(page, "Apps").click();
    await page.waitForURL("**/apps");
    for (const name of ["shop-cache", "shop-worker", "shop-web"]) await page.locator(`[data-testid="apps-table"] tr[data-app="${name}"]`).waitFor();
    await page
      .locator('[data-testid="apps-table"] tr[data-app="shop-web"] [data-testid="app-health"][data-health="healthy"]')
      .waitFor({ timeout: 90_000 });
    await shot(page, "compose-03-apps");
  });

  await t.test('a file with version "1" is refused naming `version`, and nothing is made', async () => {
    await page.getByRole("link", { name: "Import compose file" }).click();
    await page.waitForURL("**/apps/import");
    await form.getByLabel("App name prefix").fill("bad-");
    await form.getByLabel("Compose file", { exact: true }).fill(BAD);
    await form.getByRole("button", { name: "Show plan" }).click();
    const error = page.getByTestId("compose-error");
    await error.waitFor();
    const problem = error.locator('li[data-field="version"]');
    assert.match(await problem.textContent(), /^version: \S/);
    assert.match(await error.textContent(), /nothing was created/);
    assert.equal(await page.getByTestId("compose-plan").count(), 0);
    assert.equal(await importButton.isDisabled(), true);
    assert.deepEqual(await appNames(), ["shop-cache", "shop-web", "shop-worker"]);
    await shot(page, "compose-04-refused");
  });

  await t.test("importing the same file again changes nothing", async () => {
    await form.getByLabel("App name prefix").fill("shop-");
    await form.getByTestId("compose-file").setInputFiles({ name: "docker-compose.yml", mimeType: "text/yaml", buffer: Buffer.from(COMPOSE) });
    await page.waitForFunction((text) => document.querySelector('[data-testid="compose-form"] textarea')?.value === text, COMPOSE);
    await form.getByTestId("env-files-input").setInputFiles({ name: "web.env", mimeType: "text/plain", buffer: Buffer.from("GREETING=hello\n") });
    await form.getByTestId("env-file-row").waitFor();
    await form.getByRole("button", { name: "Show plan" }).click();
    const plan = page.getByTestId("compose-plan");
    await plan.waitFor();
    assert.equal(await page.getByTestId("compose-error").count(), 0, "the refusal is gone");
    assert.deepEqual(await rows(plan), ["cache shop-cache unchanged #1", "worker shop-worker unchanged #1", "web shop-web unchanged #1"]);
    await importButton.click();
    const result = page.getByTestId("compose-result");
    await result.waitFor();
    assert.deepEqual(await rows(result), ["cache shop-cache unchanged #1", "worker shop-worker unchanged #1", "web shop-web unchanged #1"]);
    for (const name of ["shop-cache", "shop-worker", "shop-web"]) assert.equal((await call("GET", `/api/v1/apps/${name}`)).current_revision, 1);
    // In Chinese.
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByRole("heading", { name: "导入 compose 文件" }).waitFor();
    assert.deepEqual(await rows(result), ["cache shop-cache 不变 #1", "worker shop-worker 不变 #1", "web shop-web 不变 #1"]);
    await shot(page, "compose-05-unchanged-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    assert.deepEqual(page.errors, []);
  });
});
