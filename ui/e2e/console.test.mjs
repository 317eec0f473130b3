// End-to-end test of the web console in a real browser (Debian's chromium driven by
// playwright-core) against a real `berth server` on the real Docker Engine.
//
// BERTH_BIN names the binary (default: target/debug/berth, else target/release/berth). The
// server runs in its own engine namespace; every container, network and local image the test
// makes is removed afterwards (harness.mjs). Screenshots of the main pages go to ui/test-output/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addEnv, docker, login as signIn, nav, newPage as openPage, shot, startBerth, stopBerth } from "./harness.mjs";

let state;

before(async () => {
  state = await startBerth("ui");
  // An image in the registry to browse: the test app pushed as default/e2e:v1.
  state.dockerConfig = mkdtempSync(join(tmpdir(), "berth-ui-docker-"));
  const env = { DOCKER_CONFIG: state.dockerConfig };
  const host = `127.0.0.1:${state.port}`;
  const ref = `${host}/default/e2e:v1`;
  docker(["login", host, "-u", "admin", "--password", state.token], env);
  docker(["tag", "berth-testapp:latest", ref], env);
  state.localImages.push(ref);
  docker(["push", ref], env);
});

after(async () => {
  await stopBerth(state);
  if (state?.dockerConfig) rmSync(state.dockerConfig, { recursive: true, force: true });
});

const newPage = (viewport) => openPage(state, viewport);

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
const login = (page, username, password) => signIn(state, page, username, password);

async function waitForRollout(page, revision, wanted, ms) {
  await page.waitForFunction(
    ([rev, w]) => {
      const p = document.querySelector('.page-sub [data-testid="rollout-phase"]');
      const sub = document.querySelector(".page-sub")?.textContent ?? "";
      return p && w.includes(p.getAttribute("data-phase")) && sub.includes(`#${rev}`);
    },
    [revision, wanted],
    { timeout: ms },
  );
}

test("the console drives Berth end to end", { timeout: 600_000 }, async (t) => {
  const page = await newPage();

  await t.test("a visitor registers with a new team and is logged in", async () => {
    await page.goto(`${state.base}/`);
    await page.waitForURL("**/login**");
    await shot(page, "01-login");
    await page.getByRole("link", { name: "Register" }).click();
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Email").fill("alice@example.com");
    await page.getByLabel("Display name").fill("Alice");
    await page.getByLabel("Password").fill("correct horse battery");
    await page.getByLabel("New team (optional)").fill("web");
    await shot(page, "02-register");
    await page.getByRole("button", { name: "Register" }).click();
    await page.waitForURL("**/apps");
    await page.getByText("No apps yet").waitFor();
    assert.equal(await page.getByTestId("user-link").textContent(), "Alice");
  });

  await t.test("a bad field is reported next to that field", async () => {
    const warnings = [];
    page.on("console", (m) => warnings.push(m.text()));
    await page.getByRole("link", { name: "Create app" }).click();
    // The browser checks the name itself: its pattern compiles (with the `v` flag) and refuses
    // what the server would.
    const name = page.getByLabel("Name", { exact: true });
    for (const [value, bad] of [["Shop_1", true], ["-shop", true], ["shop-", true], ["shop-1", false]]) {
      await name.fill(value);
      assert.equal(await name.evaluate((el) => el.validity.patternMismatch), bad, `pattern on ${value}`);
    }
    assert.deepEqual(warnings.filter((w) => /pattern/i.test(w)), [], "the pattern attribute is valid");
    await page.getByLabel("Name", { exact: true }).fill("a".repeat(45));
    await page.getByLabel("Image", { exact: true }).fill("berth-testapp:latest");
    await page.getByLabel("CPU (millicores)").fill("100");
    await page.getByLabel("Memory (MiB)").fill("64");
    await page.getByRole("button", { name: "Create app" }).click();
    const error = page.locator('.field-error[data-field="name"]');
    await error.waitFor();
    assert.match(await error.textContent(), /40/);
    // Said with the field's label, not the server's key.
    assert.match(await error.textContent(), /^Name: /);
    await shot(page, "03-create-app-error");
  });

  await t.test("an app is created and becomes healthy", async () => {
    // Every health the page shows from here to the end of the scale-up, recorded as it changes:
    // starting instances are "starting" or "scaling", never red or amber.
    await page.evaluate(() => {
      window.healthSeen = new Set();
      const note = () => document.querySelectorAll("[data-health]").forEach((el) => window.healthSeen.add(el.getAttribute("data-health")));
      new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-health"] });
    });
    await page.getByLabel("Name", { exact: true }).fill("shop");
    await page.getByLabel("Replicas").fill("2");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.waitForURL("**/apps/shop");
    await page.locator('[data-testid="app-health"][data-health="healthy"]').first().waitFor({ timeout: 60_000 });
    await waitForRollout(page, 1, ["complete"], 60_000);
    assert.equal(await page.locator('[data-testid="instances-table"] tbody tr[data-ready="true"]').count(), 2);
    await shot(page, "04-app-overview");
  });

  await t.test("the app's routes are links, edited in place, and answer through the router", async () => {
    const routes = page.getByTestId("app-routes");
    const team = "web";
    const defaultLink = routes.locator(`a[data-domain="shop.${team}.localhost"]`);
    await defaultLink.waitFor();
    assert.equal(await defaultLink.getAttribute("href"), `http://shop.${team}.localhost:${state.routerPort}/`);
    // A hostile domain is refused next to the field; nothing changes.
    await routes.getByRole("button", { name: "Edit" }).click();
    await routes.getByLabel("Custom domains").fill("shop.localhost:8080");
    await routes.getByRole("button", { name: "Save routes" }).click();
    const error = routes.locator('.field-error[data-field="domains"]');
    await error.waitFor();
    assert.match(await error.textContent(), /port/);
    await routes.getByLabel("Custom domains").fill("store.localhost\nstore.localhost/api");
    await routes.getByRole("button", { name: "Save routes" }).click();
    const custom = routes.locator('a[data-domain="store.localhost"]');
    await custom.waitFor();
    assert.equal(await custom.getAttribute("href"), `http://store.localhost:${state.routerPort}/`);
    await routes.locator('a[data-domain="store.localhost/api"]').waitFor();
    await shot(page, "04b-app-routes");
    // The browser follows the link to the app itself (Chromium resolves *.localhost to loopback).
    const visit = await newPage();
    let body = "";
    for (let i = 0; i < 40 && !body.includes('"app":"shop"'); i++) {
      const answer = await visit.goto(`http://store.localhost:${state.routerPort}/`).catch(() => null);
      body = answer ? await answer.text() : "";
      if (!body.includes('"app":"shop"')) await visit.waitForTimeout(250);
    }
    await visit.close();
    assert.match(body, /"app":"shop"/);
    // The page counts that traffic (it refreshes every two seconds).
    const counted = await page
      .waitForFunction(() => Number(document.querySelector('[data-testid="traffic-requests"]')?.textContent ?? 0) >= 1, null, { timeout: 15_000 })
      .then(() => true)
      .catch(() => false);
    assert.ok(counted, "the visit is counted");
    // Internal: no external route, said on the page.
    await routes.getByRole("button", { name: "Edit" }).click();
    await routes.getByRole("checkbox", { name: /Internal/ }).check();
    await routes.getByRole("button", { name: "Save routes" }).click();
    await routes.getByText("internal", { exact: true }).waitFor();
    assert.equal(await routes.locator("a[data-domain]").count(), 0);
    await routes.getByRole("button", { name: "Edit" }).click();
    await routes.getByRole("checkbox", { name: /Internal/ }).uncheck();
    await routes.getByRole("button", { name: "Save routes" }).click();
    await defaultLink.waitFor();
  });

  await t.test("a certificate is uploaded for the app's host and a wrong one is refused", async () => {
    // Self-signed certificates made by openssl, as a user would bring them.
    const dir = mkdtempSync(join(tmpdir(), "berth-ui-certs-"));
    const make = (name, host) => {
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
        "-subj", `/CN=${host}`, "-addext", `subjectAltName=DNS:${host}`,
        "-keyout", join(dir, `${name}.key`), "-out", join(dir, `${name}.crt`),
      ], { stdio: "ignore" });
      return { cert: readFileSync(join(dir, `${name}.crt`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") };
    };
    const good = make("good", "shop.web.localhost");
    const wrong = make("wrong", "elsewhere.example.com");
    rmSync(dir, { recursive: true, force: true });
    const card = page.getByTestId("app-certificates");
    await card.getByRole("button", { name: "Add a certificate" }).click();
    await card.getByLabel("Certificate chain (PEM)").fill(wrong.cert);
    await card.getByLabel("Private key (PEM)").fill(wrong.key);
    await card.getByRole("button", { name: "Upload", exact: true }).click();
    const error = card.locator('.field-error[data-field="domain"], .field-error[data-field="certificate"]').first();
    await error.waitFor();
    assert.match(await error.textContent(), /shop\.web\.localhost|cover/);
    await card.getByLabel("Certificate chain (PEM)").fill(good.cert);
    await card.getByLabel("Private key (PEM)").fill(good.key);
    await card.getByRole("button", { name: "Upload", exact: true }).click();
    const row = card.locator('[data-testid="certificates-table"] tr[data-host="shop.web.localhost"]');
    await row.waitFor();
    assert.match(await row.textContent(), /uploaded/);
    assert.match(await row.textContent(), /(29|30) days left/);
    assert.ok(!(await page.content()).includes("PRIVATE KEY"), "the key is not shown again");
    await shot(page, "04c-app-certificates");
  });

  await t.test("the app is scaled", async () => {
    await page.locator("#scale-replicas").fill("3");
    await page.getByRole("button", { name: "Scale", exact: true }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="instances-table"] tbody tr[data-ready="true"]').length === 3, null, {
      timeout: 60_000,
    });
    await page.locator('[data-testid="app-health"][data-health="healthy"]').first().waitFor({ timeout: 60_000 });
    // The rollout message counts the instances now, not when the rollout ended.
    await page.getByTestId("rollout-message").getByText("Revision #1 is running on 3 instances", { exact: true }).waitFor();
    const seen = await page.evaluate(() => [...window.healthSeen]);
    assert.deepEqual(
      seen.filter((h) => !["starting", "scaling", "healthy"].includes(h)),
      [],
      `expected transitions only, saw ${seen.join(", ")}`,
    );
    // An instance's logs are an explicit link of its row.
    const row = page.locator('[data-testid="instances-table"] tbody tr').first();
    const instance = await row.getAttribute("data-instance");
    await row.getByRole("link", { name: `Logs of ${instance}` }).click();
    await page.waitForURL(`**/apps/shop/logs?instance=${instance}`);
    await page.goto(`${state.base}/apps/shop`);
    await page.getByTestId("instances-table").waitFor();
    // CPU is said in cores with its unit; millicores on hover.
    const cpu = page.locator('[data-testid="instance-cpu"] [data-millis]').first();
    await cpu.waitFor({ timeout: 30_000 });
    assert.match(await cpu.textContent(), /^[\d.]+ \/ 0\.1 CPU$/);
    assert.match(await cpu.getAttribute("title"), /millicores/);
  });

  await t.test("the apps list shows the app's memory in use", async () => {
    await page.goto(`${state.base}/apps`);
    const memory = page.locator('tr[data-app="shop"] [data-testid="app-memory"] [data-bytes]');
    await memory.waitFor({ timeout: 30_000 });
    assert.ok(Number(await memory.getAttribute("data-bytes")) > 0, "memory in use is sampled");
    assert.match(await memory.textContent(), /iB \/ 192 MiB$/);
    await page.goto(`${state.base}/apps/shop`);
    await page.getByTestId("app-name").waitFor();
  });

  await t.test("the app's Metrics tab charts its history, its instances as lines of their own", async () => {
    await page.getByRole("link", { name: "Metrics", exact: true }).click();
    await page.waitForURL("**/apps/shop/metrics");
    const memory = page.getByTestId("chart-app-shop-memory_bytes");
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-app-shop-memory_bytes"]')?.getAttribute("data-points")) > 0, null, {
      timeout: 30_000,
    });
    // The total and one line per instance.
    assert.ok((await memory.locator("path.chart-line").count()) >= 2, "total and instances");
    assert.match(await memory.locator(".chart-legend").textContent(), /total.*shop-\d+/);
    // The visit through the router earlier is a request rate.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-app-shop-requests_per_second"]')?.getAttribute("data-points")) > 0, null, {
      timeout: 30_000,
    });
    await shot(page, "04c-app-metrics");
    // Live: a new round (every 5 s) adds points without a reload.
    const before = Number(await memory.getAttribute("data-points"));
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="chart-app-shop-memory_bytes"]')?.getAttribute("data-points")) > n,
      before,
      { timeout: 30_000 },
    );
    // The team's page charts the team's totals against its quota.
    await page.goto(`${state.base}/teams/web`);
    await page.getByTestId("team-metrics").waitFor();
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-team-web-memory_bytes"]')?.getAttribute("data-points")) > 0, null, {
      timeout: 30_000,
    });
    assert.equal(await page.getByTestId("chart-team-web-ready_instances").count(), 1);
    await page.goto(`${state.base}/apps/shop`);
    await page.getByTestId("app-name").waitFor();
  });

  await t.test("new settings are deployed as revision 2", async () => {
    await page.getByRole("link", { name: "Deploy" }).click();
    await page.waitForURL("**/apps/shop/deploy");
    await addEnv(page, "COLOR", "blue");
    await shot(page, "05-deploy-form");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/shop");
    await waitForRollout(page, 2, ["complete"], 90_000);
  });

  await t.test("a failing revision is rolled back by itself, live on the page", async () => {
    await page.getByRole("link", { name: "Events" }).click();
    await page.locator('[data-testid="events-live"][data-live="true"]').waitFor();
    await page.getByRole("link", { name: "Deploy" }).click();
    // The form starts from the app: COLOR=blue is its first row.
    await addEnv(page, "FAIL_HEALTH", "1");
    await page.getByLabel("Progress deadline (s)").fill("8");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/shop");
    await page.getByRole("link", { name: "Events" }).click();
    // The timeline is fed by the SSE stream: the failure shows without a reload.
    await page.locator('[data-testid="events-timeline"] li[data-kind="rollout_failed"]').waitFor({ timeout: 90_000 });
    await waitForRollout(page, 2, ["rolled_back"], 90_000);
    await shot(page, "06-events-rolled-back");
    await page.getByRole("link", { name: "Overview" }).click();
    await page.getByTestId("rollout-message").waitFor();
    await shot(page, "07-app-rolled-back");
  });

  await t.test("revisions are compared and the app is rolled back by hand", async () => {
    await page.goto(`${state.base}/apps/shop/revisions?a=2&b=3`);
    const diff = page.getByTestId("revision-diff");
    await diff.getByText("env.FAIL_HEALTH").waitFor();
    await shot(page, "08-revisions-diff");
    await page.locator('tr[data-revision="1"]').getByRole("button", { name: "Roll back" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Roll shop back to revision 1?").waitFor();
    await dialog.getByRole("button", { name: "Roll back" }).click();
    await waitForRollout(page, 1, ["complete"], 90_000);
    await page.locator('tr[data-revision="1"]').getByText("current").waitFor();
    // Back from #1, the newer revisions are rolled forward to; the columns say which side is which.
    await page.locator('tr[data-revision="3"]').getByRole("button", { name: "Roll forward" }).waitFor();
    await page.locator('tr[data-revision="2"]').getByRole("button", { name: "Roll forward" }).waitFor();
    await page.getByRole("columnheader", { name: "From" }).waitFor();
    await page.getByRole("columnheader", { name: "To" }).waitFor();
    // Without a choice in the URL, two distinct revisions are compared.
    await page.goto(`${state.base}/apps/shop/revisions`);
    await page.getByTestId("revision-diff").getByRole("heading", { name: "Changes from #3 to #1" }).waitFor();
    // Choosing on one side the revision of the other swaps them.
    // A click, then the outcome: the radio is controlled by the URL, which the router updates
    // a moment later (`check()` would read the state in between).
    await page.getByRole("radio", { name: "Compare from #1" }).click();
    await page.getByTestId("revision-diff").getByRole("heading", { name: "Changes from #1 to #3" }).waitFor();
  });

  await t.test("a canary setting is saved from the deploy form and turned off again", async () => {
    const strategy = async () => {
      const res = await fetch(`${state.base}/api/v1/apps/shop`, { headers: { Authorization: `Bearer ${state.token}` } });
      return (await res.json()).strategy;
    };
    await page.goto(`${state.base}/apps/shop/deploy`);
    await page.getByLabel("Canary share (%)").fill("20");
    await page.getByLabel("Canary duration (s)").fill("2");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    // Refused by the server, naming the field; nothing changes.
    await page.getByText("2 s is not between 5 s and 24 h").first().waitFor();
    assert.equal((await strategy()).canary, null);
    await page.getByLabel("Canary share (%)").fill("20");
    await page.getByLabel("Canary duration (s)").fill("45");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/shop");
    assert.deepEqual((await strategy()).canary, { weight_percent: 20, duration_seconds: 45 });
    await page.goto(`${state.base}/apps/shop/deploy`);
    assert.equal(await page.getByLabel("Canary share (%)").inputValue(), "20");
    await page.getByLabel("Canary share (%)").fill("");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/shop");
    assert.equal((await strategy()).canary, null);
    // A header canary: only requests carrying it go to the new revision.
    await page.goto(`${state.base}/apps/shop/deploy`);
    await page.getByLabel("Canary header").fill("X-Canary");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.getByText("Write the canary header as Name: value").first().waitFor();
    await page.getByLabel("Canary header").fill("X-Canary: yes");
    await page.getByLabel("Canary duration (s)").fill("45");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/shop");
    const canary = (await strategy()).canary;
    assert.equal(canary.header.name.toLowerCase(), "x-canary");
    assert.equal(canary.header.value, "yes");
    await page.goto(`${state.base}/apps/shop/deploy`);
    assert.match(await page.getByLabel("Canary header").inputValue(), /^x-canary: yes$/i);
    await page.getByLabel("Canary header").fill("");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/shop");
    assert.equal((await strategy()).canary, null);
    await page.goto(`${state.base}/apps/shop/revisions`);
  });

  await t.test("the idle timeout is set from the deploy form without a new revision", async () => {
    const shop = () => call("GET", "/api/v1/apps/shop");
    const before = await shop();
    await page.goto(`${state.base}/apps/shop/deploy`);
    await page.getByLabel("Idle timeout (s)").fill("5");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    // Refused by the server next to the field; nothing changes.
    await page.getByTestId("deploy-form").getByText("must be between 10 and 2592000 seconds", { exact: false }).first().waitFor();
    assert.equal((await shop()).idle_timeout_seconds ?? null, null);
    await page.getByLabel("Idle timeout (s)").fill("900");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.getByText("Settings saved (no new revision)").waitFor();
    const after = await shop();
    assert.equal(after.idle_timeout_seconds, 900);
    assert.equal(after.latest_revision, before.latest_revision);
    await page.goto(`${state.base}/apps/shop/deploy`);
    assert.equal(await page.getByLabel("Idle timeout (s)").inputValue(), "900");
    await page.getByLabel("Idle timeout (s)").fill("");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.getByText("Settings saved (no new revision)").waitFor();
    assert.equal((await shop()).idle_timeout_seconds ?? null, null);
    await page.goto(`${state.base}/apps/shop/revisions`);
  });

  await t.test("the recreate strategy is chosen in the deploy form, shown on the app page, and undone", async () => {
    const shop = () => call("GET", "/api/v1/apps/shop");
    const before = await shop();
    await page.goto(`${state.base}/apps/shop/deploy`);
    await page.getByLabel("Rollout strategy").selectOption("recreate");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.getByText("Settings saved (no new revision)").waitFor();
    assert.equal((await shop()).strategy.kind, "recreate");
    await page.goto(`${state.base}/apps/shop`);
    const strategy = page.getByTestId("app-strategy");
    await page.locator('[data-testid="app-strategy"][data-kind="recreate"]').waitFor();
    assert.match(await strategy.textContent(), /every instance stops before a new revision starts/);
    await page.goto(`${state.base}/apps/shop/deploy`);
    assert.equal(await page.getByLabel("Rollout strategy").inputValue(), "recreate");
    await page.getByLabel("Rollout strategy").selectOption("rolling");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.getByText("Settings saved (no new revision)").waitFor();
    const after = await shop();
    assert.equal(after.strategy.kind, "rolling");
    assert.equal(after.latest_revision, before.latest_revision);
    await page.goto(`${state.base}/apps/shop/revisions`);
  });

  await t.test("autoscaling is turned on from the app page, a bad range is refused, and it is turned off", async () => {
    await page.goto(`${state.base}/apps/shop`);
    const card = page.getByTestId("app-autoscale");
    await card.getByTestId("edit-autoscale").click();
    await card.getByLabel("Min instances").fill("4");
    await card.getByLabel("Max instances").fill("2");
    await card.getByRole("button", { name: "Save", exact: true }).click();
    // Refused by the server next to the field; nothing is stored.
    await card.getByText("must not be above max_instances (4 > 2)").waitFor();
    await card.getByLabel("Min instances").fill("1");
    await card.getByLabel("Max instances").fill("3");
    await card.getByLabel("Target CPU (% of limit)").fill("60");
    await card.getByRole("button", { name: "Save", exact: true }).click();
    await card.getByTestId("autoscale-setting").getByText("1–3 instances", { exact: false }).waitFor();
    assert.match(await card.getByTestId("autoscale-setting").textContent(), /60 % of the CPU limit \(0\.1 CPU\)/);
    // Berth owns the count now: the manual scale is off, and an evaluation shows its numbers.
    await page.waitForFunction(() => document.querySelector("#scale-replicas")?.disabled === true);
    await card.getByTestId("autoscale-latest").waitFor({ timeout: 30_000 });
    assert.match(await card.getByTestId("autoscale-latest").textContent(), /target 60\.0 %|no samples yet/);
    await shot(page, "06-autoscale");
    // On requests in flight instead: the form asks for a target per instance and the panic window.
    await card.getByTestId("edit-autoscale").click();
    await card.getByLabel("Scale on").selectOption("concurrency");
    assert.equal(await card.getByLabel("Target CPU (% of limit)").count(), 0);
    await card.getByLabel("Target per instance").fill("0");
    await card.getByRole("button", { name: "Save", exact: true }).click();
    await card.getByText("must be between 1 and 100000 (requests in flight per instance)").waitFor();
    await card.getByLabel("Target per instance").fill("5");
    await card.getByLabel("Panic window (s)").fill("4");
    await card.getByRole("button", { name: "Save", exact: true }).click();
    await card.getByTestId("autoscale-target").getByText("5 requests in flight per instance", { exact: false }).waitFor();
    assert.match(await card.getByTestId("autoscale-target").textContent(), /a burst over 4 s that asks for 200 %/);
    assert.deepEqual(
      { metric: (await call("GET", "/api/v1/apps/shop/autoscale")).autoscale.metric },
      { metric: "concurrency" },
    );
    await card.getByTestId("edit-autoscale").click();
    await card.getByTestId("autoscale-off-button").click();
    await card.getByTestId("autoscale-off").waitFor();
    await page.waitForFunction(() => !document.querySelector("#scale-replicas")?.disabled);
    // Where the next step starts (the overview links every instance's logs too).
    await page.goto(`${state.base}/apps/shop/revisions`);
  });

  await t.test("the topology shows the app, its team's quota and where its instances run, live", async () => {
    await page.goto(`${state.base}/topology`);
    const box = page.locator('[data-testid="topology-app"][data-app="shop"]');
    await box.waitFor({ timeout: 30_000 });
    assert.equal(await box.getAttribute("data-health"), "healthy");
    assert.match(await box.getByTestId("topology-count").textContent(), /^3\/3 ready$/);
    assert.equal(await box.getByTestId("topology-exposure").textContent(), "external");
    await page.locator('[data-testid="topology-live"][data-connected="true"]').waitFor();
    // Requests through the router reached it before: the outside world's edge carries them.
    await page.locator('[data-testid="edge-traffic"][data-to="shop"]').waitFor();
    assert.equal(await page.locator('[data-testid="topology-node"] [data-instance^="shop-"]').count(), 3);
    await page.locator('[data-testid="topology-teams"] tr[data-team="web"]').waitFor();
    await shot(page, "07-topology");
    // Live: a scale shows without reloading (the app stays at 2 from here on).
    await call("POST", "/api/v1/apps/shop/scale", { replicas: 2 });
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="topology-node"] [data-instance^="shop-"]').length === 2, null, {
      timeout: 60_000,
    });
    // An app calling shop's instance directly (over the team network, not the router) shows
    // as an observed edge, drawn apart from declared and router edges, with its numbers.
    // (Once the instance scaled away is gone: it could be the one picked.)
    let shop = await call("GET", "/api/v1/apps/shop");
    for (let i = 0; i < 120 && shop.instances.length !== 2; i++) {
      await new Promise((r) => setTimeout(r, 500));
      shop = await call("GET", "/api/v1/apps/shop");
    }
    const target = shop.instances.find((i) => i.ready).address;
    await call("POST", "/api/v1/apps", {
      name: "caller",
      team: shop.team,
      image: shop.template.image,
      replicas: 1,
      health_path: "/healthz",
      cpu_millis: 50,
      memory_bytes: 32 * 1024 * 1024,
      env: { CALL_ADDRESS: target, CALL_EVERY_MS: "250" },
    });
    const observed = page.locator('[data-testid="edge-observed"][data-from="caller"][data-to="shop"]');
    await observed.waitFor({ timeout: 60_000 }).catch(async (error) => {
      const now = await call("GET", "/api/v1/topology");
      assert.fail(`${error}: ${JSON.stringify({ edges: now.edges, unavailable: now.observed_edges_unavailable, apps: now.apps.map((a) => [a.name, a.health]) })}`);
    });
    await page.waitForFunction(() => /^[1-9][0-9.]* conn\/min · \d+ open · tcp\/8080$/.test(document.querySelector('[data-testid="edge-observed"][data-from="caller"]')?.textContent ?? ""), null, {
      timeout: 30_000,
    });
    assert.equal(await page.locator('[data-testid="observed-unavailable"]').count(), 0);
    assert.match(await page.getByTestId("topology-legend").textContent(), /connections seen between instances/);
    await call("DELETE", "/api/v1/apps/caller");
    await page.goto(`${state.base}/apps/shop/revisions`);
  });

  await t.test("logs are followed live", async () => {
    await page.getByRole("link", { name: "Logs" }).click();
    await page.locator('[data-testid="logs-state"][data-state="open"]').waitFor();
    await shot(page, "09-logs");
  });

  await t.test("a quota request is filed", async () => {
    await page.goto(`${state.base}/teams/web`);
    await page.getByTestId("quota-bars").waitFor();
    const form = page.getByTestId("quota-request-form");
    await form.getByLabel("Instances").fill("50");
    await form.getByLabel("Reason").fill("launch week");
    await form.getByRole("button", { name: "File request" }).click();
    await page.locator('[data-testid="quota-requests-table"] tr[data-status="pending"]').waitFor();
    await shot(page, "10-team");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login/);
  });

  await t.test("an admin approves the quota request", async () => {
    await login(page, "admin", state.token);
    await nav(page, "Quota requests").click();
    const row = page.locator('[data-testid="quota-requests-table"] tr[data-status="pending"]').filter({ hasText: "launch week" });
    await row.waitFor();
    await shot(page, "11-quota-requests");
    await row.getByRole("button", { name: "Approve" }).click();
    await page.getByText("No quota requests.").waitFor();
    await page.goto(`${state.base}/teams/web`);
    await page.getByTestId("quota-bars").getByText("/ 50").waitFor();
  });

  await t.test("an image is browsed down to its layers and config", async () => {
    await nav(page, "Images").click();
    await page.getByRole("link", { name: "default/e2e" }).click();
    await page.waitForURL("**/images/default/e2e");
    await page.getByRole("link", { name: "v1", exact: true }).click();
    await page.waitForURL("**/images/default/e2e:v1");
    await page.getByTestId("layers-table").waitFor();
    assert.ok((await page.locator('[data-testid="layers-table"] tbody tr').count()) >= 1);
    await page.getByTestId("image-config").getByText("/berth-testapp").first().waitFor();
    await shot(page, "12-image");
    await page.goto(`${state.base}/registry`);
    await page.getByTestId("gc-card").waitFor();
    await shot(page, "13-registry");
    for (const [path, name] of [
      ["/templates", "14-templates"],
      ["/admin/users", "16-users"],
    ]) {
      await page.goto(`${state.base}${path}`);
      await page.locator("main h1").waitFor();
      await page.waitForLoadState("networkidle").catch(() => {});
      await shot(page, name);
    }
  });

  await t.test("an admin deletes a tag, disables and enables a user, and filters the audit log", async () => {
    await page.goto(`${state.base}/images/default/e2e`);
    await page.getByTestId("tags-table").getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Delete default/e2e:v1?").waitFor();
    await dialog.getByRole("button", { name: "Delete" }).click();
    await page.getByText("This repository has no tags.").waitFor();

    await nav(page, "Users").click();
    const alice = page.locator('[data-testid="users-table"] tr[data-user="alice"]');
    await alice.getByRole("button", { name: "Disable" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Disable" }).click();
    await alice.getByText("disabled").waitFor();
    await alice.getByRole("button", { name: "Enable" }).click();
    await alice.getByText("active").waitFor();

    await page.goto(`${state.base}/audit?team=web&outcome=success`);
    const rows = page.locator('[data-testid="audit-table"] tbody tr');
    await rows.first().waitFor();
    assert.ok((await rows.count()) >= 5, "the team's changes are on the audit trail");
    await shot(page, "15-audit");
  });

  await t.test("an admin reserves a domain for a team, a bad one is refused, and on-demand domains need ACME", async () => {
    await nav(page, "Domains").click();
    await page.waitForURL("**/admin/domains");
    const card = page.getByTestId("domain-reservations");
    await card.getByText("No domain is reserved.").waitFor();
    const form = page.getByTestId("reserve-form");
    await form.getByLabel("Domain").fill("not_a_domain");
    await form.getByLabel("Team").fill("web");
    await form.getByRole("button", { name: "Reserve" }).click();
    await form.getByText("is not a host name with at least two labels").waitFor();
    await form.getByLabel("Domain").fill("Shop.Example.test");
    await form.getByRole("button", { name: "Reserve" }).click();
    const row = card.locator('tr[data-domain="shop.example.test"]');
    await row.getByText("web", { exact: true }).waitFor();
    assert.deepEqual(
      (await call("GET", "/api/v1/domain-reservations")).map((r) => [r.domain, r.team]),
      [["shop.example.test", "web"]],
    );
    await row.getByRole("button", { name: "Remove" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove" }).click();
    await card.getByText("No domain is reserved.").waitFor();
    // On-demand domains: a bad ask path names its field; without ACME the server says so.
    const onDemand = page.getByTestId("on-demand-domains");
    await onDemand.getByTestId("on-demand-current").getByText("No app receives on-demand domains.").waitFor();
    await onDemand.getByLabel("App").fill("shop");
    await onDemand.getByLabel("Ask path").fill("tls-ask");
    await onDemand.getByRole("button", { name: "Make it the receiver" }).click();
    await onDemand.locator('.field-error[data-field="ask_path"]').getByText("is not a path such as /ask").waitFor();
    await onDemand.getByLabel("Ask path").fill("/tls-ask");
    await onDemand.getByRole("button", { name: "Make it the receiver" }).click();
    await onDemand.getByText(/ACME/).first().waitFor();
    assert.equal((await call("GET", "/api/v1/system/on-demand-domains")).app ?? null, null);
    await shot(page, "15b-domains");
  });

  await t.test("a member makes an app from a template, deletes it, and manages API tokens", async () => {
    const other = await newPage();
    await login(other, "alice", "correct horse battery");
    await other.goto(`${state.base}/templates`);
    await other.locator("tr").filter({ hasText: "builtin/http-service" }).getByRole("link", { name: "Create app" }).click();
    await other.waitForURL(/template=builtin\/http-service/);
    const form = other.getByTestId("template-app-form");
    await form.getByLabel("name (name)").fill("api");
    await form.getByLabel("image (image)").fill("berth-testapp:latest");
    await form.getByLabel("replicas (integer)").fill("1");
    await form.getByLabel("cpu_millis (integer)").fill("100");
    await form.getByLabel("memory_bytes (integer)").fill(String(64 * 1024 * 1024));
    await shot(other, "23-template-app");
    await form.getByRole("button", { name: "Create app" }).click();
    await other.waitForURL("**/apps/api");
    await other.locator('[data-testid="app-health"][data-health="healthy"]').first().waitFor({ timeout: 60_000 });
    await other.getByRole("button", { name: "Delete" }).click();
    const dialog = other.getByRole("dialog");
    const confirm = dialog.getByRole("button", { name: "Delete" });
    assert.ok(await confirm.isDisabled(), "deleting needs the app's name typed");
    await dialog.getByRole("textbox").fill("api");
    await confirm.click();
    await other.waitForURL("**/apps");

    await other.goto(`${state.base}/account`);
    await other.getByLabel("Name", { exact: true }).fill("ci");
    await other.getByRole("button", { name: "Create token" }).click();
    const secret = await other.getByTestId("token-secret").locator("code").textContent();
    assert.match(secret, /^berth_/);
    const ok = await fetch(`${state.base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(ok.status, 200);
    await shot(other, "17-account");
    await other.locator('[data-testid="tokens-table"] tr[data-token="ci"]').getByRole("button", { name: "Revoke" }).click();
    await other.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
    await other.locator('[data-testid="tokens-table"] tr[data-token="ci"]').getByText("revoked").waitFor();
    const revoked = await fetch(`${state.base}/api/v1/me`, { headers: { Authorization: `Bearer ${secret}` } });
    assert.equal(revoked.status, 401);
    assert.deepEqual(other.errors, []);
    await other.context().close();
  });

  await t.test("the language switches to Simplified Chinese and back at run time", async () => {
    await page.goto(`${state.base}/apps`);
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByRole("heading", { name: "应用" }).waitFor();
    await page.getByRole("link", { name: "配额申请" }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), "zh-CN");
    await shot(page, "18-apps-zh");
    await page.goto(`${state.base}/apps/shop`);
    await page.getByRole("link", { name: "概览" }).waitFor();
    await page.getByTestId("rollout-message").getByText("版本 #1 正在 2 个实例上运行", { exact: true }).waitFor();
    await shot(page, "19-app-zh");
    // Events are said in Chinese from their kind and values.
    await page.getByRole("link", { name: "事件" }).click();
    const timeline = page.getByTestId("events-timeline");
    await timeline.locator('li[data-kind="rollout_failed"]').getByText("发布失败", { exact: true }).waitFor();
    await timeline.locator('li[data-kind="scaled"] [data-testid=event-message]').getByText("实例数从 2 调整为 3", { exact: true }).waitFor();
    await timeline
      .locator('li[data-kind="rolled_back"] [data-testid=event-message]')
      .filter({ hasText: /^版本 #3 失败后已回滚到版本 #2：/ })
      .waitFor();
    await shot(page, "19b-events-zh");
    await page.getByTestId("theme-toggle").click();
    await shot(page, "20-app-zh-theme-toggled");
    await page.getByTestId("lang-switch").selectOption("en");
    await page.getByRole("link", { name: "Overview" }).waitFor();
  });

  await t.test("readiness and liveness probes are set in the create and deploy forms, a bad one refused next to its field", async () => {
    const probed = () => call("GET", "/api/v1/apps/probed");
    await page.goto(`${state.base}/apps/new`);
    await page.getByLabel("Name", { exact: true }).fill("probed");
    await page.getByLabel("Image", { exact: true }).fill("berth-testapp:latest");
    const ready = page.getByTestId("probe-readiness");
    const live = page.getByTestId("probe-liveness");
    assert.equal(await ready.getByLabel("Path").inputValue(), "/healthz");
    await ready.getByLabel("Kind").selectOption("tcp");
    assert.ok(await ready.getByLabel("Path").isDisabled(), "a TCP probe has no path");
    await ready.getByLabel("Period (ms)").fill("500");
    await ready.getByLabel("Timeout (ms)").fill("300");
    await live.getByLabel("Kind").selectOption("none");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.waitForURL("**/apps/probed");
    let app = await probed();
    assert.deepEqual(
      [app.template.readiness.kind, app.template.readiness.period_ms, app.template.readiness.timeout_ms, app.template.liveness],
      ["tcp", 500, 300, null],
    );
    await page.getByTestId("app-readiness").getByText("TCP :8080 · every 500 ms · timeout 300 ms", { exact: false }).waitFor();
    assert.equal(await page.getByTestId("app-liveness").textContent(), "none");
    await waitForRollout(page, 1, ["complete"], 60_000);

    // A timeout longer than the period is refused next to that field; nothing is deployed.
    await page.goto(`${state.base}/apps/probed/deploy`);
    assert.equal(await ready.getByLabel("Kind").inputValue(), "tcp", "the form starts from the app's probe");
    await ready.getByLabel("Kind").selectOption("http");
    await ready.getByLabel("Timeout (ms)").fill("3000");
    await live.getByLabel("Kind").selectOption("http");
    await live.getByLabel("Failures before replacing").fill("5");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    const error = ready.locator('.field-error[data-field="readiness.timeout_ms"]');
    await error.waitFor();
    assert.match(await error.textContent(), /^Timeout \(ms\): must not exceed period_ms \(500\)/);
    assert.equal((await probed()).latest_revision, 1);
    await ready.getByLabel("Timeout (ms)").fill("400");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/probed");
    app = await probed();
    assert.equal(app.latest_revision, 2);
    assert.deepEqual(
      [app.template.readiness.kind, app.template.readiness.path, app.template.readiness.timeout_ms],
      ["http", "/healthz", 400],
    );
    assert.deepEqual([app.template.liveness.kind, app.template.liveness.failure_threshold], ["http", 5]);
    await page.getByTestId("app-liveness").getByText("HTTP /healthz :8080 · every 1000 ms · timeout 1000 ms · 5 failures", { exact: false }).waitFor();
    await waitForRollout(page, 2, ["complete"], 60_000);

    // Said in Chinese.
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByTestId("app-readiness").getByText("每 500 毫秒 · 超时 400 毫秒", { exact: false }).waitFor();
    await page.goto(`${state.base}/apps/probed/deploy`);
    await ready.getByText("就绪探针", { exact: true }).waitFor();
    assert.equal(await live.getByLabel("失败几次后替换").inputValue(), "5");
    await shot(page, "20b-deploy-probes-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    const gone = await fetch(`${state.base}/api/v1/apps/probed`, { method: "DELETE", headers: { Authorization: `Bearer ${state.token}` } });
    assert.equal(gone.status, 204);
    await page.goto(`${state.base}/apps/shop`);
    await page.getByRole("link", { name: "Overview" }).waitFor();
  });

  await t.test("node constraints are set in the deploy form, one no node meets is refused next to its field, and shown on the app page", async () => {
    const placed = () => call("GET", "/api/v1/apps/placed");
    await call("POST", "/api/v1/apps", { name: "placed", team: "web", image: "berth-testapp:latest", replicas: 1, health_path: "/healthz", cpu_millis: 50, memory_bytes: 32 * 1048576 });
    // The node, once the monitor has seen it, labelled disk=ssd.
    let node;
    for (let i = 0; i < 100 && !node; i++) {
      node = (await call("GET", "/api/v1/nodes")).nodes[0]?.name;
      if (!node) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(node, "the node monitor lists the node");
    await call("PUT", `/api/v1/nodes/${node}/labels`, { labels: { disk: "ssd" } });
    await page.goto(`${state.base}/apps/placed`);
    assert.equal(await page.getByTestId("app-node-constraints").textContent(), "any node");
    await waitForRollout(page, 1, ["complete"], 60_000);
    await page.goto(`${state.base}/apps/placed/deploy`);
    const constraints = page.getByLabel("Node constraints");
    await constraints.fill("disk==nvme");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.locator('.field-error[data-field="node_constraints"]').getByText("no node meets disk==nvme", { exact: false }).waitFor();
    assert.equal((await placed()).latest_revision, 1, "nothing changed");
    await constraints.fill("disk==ssd");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/placed");
    assert.deepEqual((await placed()).template.node_constraints, ["disk==ssd"]);
    await page.getByTestId("app-node-constraints").getByText("disk==ssd", { exact: true }).waitFor();
    await waitForRollout(page, 2, ["complete"], 60_000);
    // Any node again.
    await page.goto(`${state.base}/apps/placed/deploy`);
    assert.equal(await constraints.inputValue(), "disk==ssd");
    await constraints.fill("");
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/placed");
    await page.getByTestId("app-node-constraints").getByText("any node", { exact: true }).waitFor();
    assert.deepEqual((await placed()).template.node_constraints, []);
    await call("PUT", `/api/v1/nodes/${node}/labels`, { labels: {} });
    const gone = await fetch(`${state.base}/api/v1/apps/placed`, { method: "DELETE", headers: { Authorization: `Bearer ${state.token}` } });
    assert.equal(gone.status, 204);
  });

  await t.test("the console works on a narrow screen", async () => {
    const phone = await newPage({ width: 390, height: 844 });
    await login(phone, "admin", state.token);
    await phone.goto(`${state.base}/apps/shop`);
    await phone.locator('[data-testid="app-health"]').first().waitFor();
    // Every tab of the app is in view (they wrap rather than run off the screen).
    const width = await phone.evaluate(() => window.innerWidth);
    for (const tab of ["Overview", "Revisions", "Deploy", "Events", "Logs"]) {
      const box = await phone.locator("nav.tabs").getByRole("link", { name: tab, exact: true }).boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= width, `tab ${tab} is in view: ${JSON.stringify(box)}`);
    }
    await shot(phone, "21-narrow-app");
    // The closed menu is out of the tab order.
    assert.equal(await phone.getByTestId("sidebar").evaluate((el) => el.inert), true, "the closed menu is inert");
    for (let i = 0; i < 12; i++) {
      await phone.keyboard.press("Tab");
      const inMenu = await phone.evaluate(() => !!document.activeElement?.closest("[data-testid=sidebar]"));
      assert.equal(inMenu, false, "Tab does not reach the closed menu's links");
    }
    await phone.getByRole("button", { name: "Menu" }).click();
    assert.equal(await phone.getByTestId("sidebar").evaluate((el) => el.inert), false, "the open menu is not inert");
    await phone.getByRole("link", { name: "Teams" }).click();
    await phone.waitForURL("**/teams");
    await shot(phone, "22-narrow-teams");
    assert.deepEqual(phone.errors, []);
    await phone.context().close();
  });

  assert.deepEqual(page.errors, [], "no uncaught errors in the page");
  await page.context().close();
});
