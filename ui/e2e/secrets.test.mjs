// Team secrets and sensitive variables in a real browser against the real binary: a secret is
// set through the Secrets page's form (the value typed in the textarea) and listed at version 1
// with its value nowhere on the page; an app is created with it as a variable and as a file
// (a secret the team lacks refused next to its row first) and with a sensitive variable; the
// app page shows both references at version 1; setting the secret again says the app rolls out
// with it and the app reaches version 2, whose value its instance reads; the deploy form keeps
// the secrets and sends none when they did not change; deleting the secret in use is refused
// with the server's message, and one set from a file and unused is deleted; the sensitive variable is masked for the admin, who can reveal
// it, and a viewer of the team sees a "redacted" badge, never the value, nor actions. No
// response to the console ever holds a secret's value, nor one to the viewer the sensitive
// value. Screenshots go to ui/test-output/secrets-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { addEnv, login, nav, newPage, shot, startBerth, stopBerth } from "./harness.mjs";

let state;

before(async () => {
  state = await startBerth("ui-secrets");
});

after(async () => {
  await stopBerth(state);
});

const random = () => Math.random().toString(36).slice(2, 10);
const V1 = `first-${random()}-value`;
const V2 = `second-${random()}-value`;
const SENSITIVE = `api-key-${random()}`;
const FILE_VALUE = `-----BEGIN KEY-----\n${random()}\n-----END KEY-----\n`;

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

/** A GET of `path` on the app `app` of team `team` through Berth's router. */
function viaRouter(app, team, path) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: state.routerPort, path, headers: { Host: `${app}.${team}.localhost` } },
      (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * Records the bodies of the JSON answers of the API a page gets (event and log streams are not
 * JSON), to check afterwards that none holds a value it must not.
 */
function recordResponses(page) {
  const bodies = [];
  page.on("response", (response) => {
    const type = response.headers()["content-type"] ?? "";
    if (!new URL(response.url()).pathname.startsWith("/api/") || !type.includes("application/json")) return;
    bodies.push(
      response.text().then(
        (text) => ({ url: response.url(), text }),
        () => ({ url: response.url(), text: "" }),
      ),
    );
  });
  return async () => Promise.all(bodies);
}

/** Waits until the app's rollout to `revision` is complete. */
async function waitForRollout(page, revision) {
  await page.waitForFunction(
    (rev) => {
      const p = document.querySelector('.page-sub [data-testid="rollout-phase"]');
      return p?.getAttribute("data-phase") === "complete" && (document.querySelector(".page-sub")?.textContent ?? "").includes(`#${rev}`);
    },
    revision,
    { timeout: 90_000 },
  );
}

/** Asserts that none of `values` is in the page's HTML or text (inputs' values included). */
async function assertNotOnPage(page, values, what) {
  const html = await page.content();
  const text = await page.evaluate(() => document.body.innerText);
  const inputs = await page.evaluate(() => [...document.querySelectorAll("input, textarea")].map((el) => el.value).join("\n"));
  for (const value of values) {
    assert.ok(!html.includes(value), `${what}: the HTML holds ${value}`);
    assert.ok(!text.includes(value), `${what}: the text holds ${value}`);
    assert.ok(!inputs.includes(value), `${what}: an input holds ${value}`);
  }
}

test("secrets and sensitive variables in the console", { timeout: 600_000 }, async (t) => {
  const page = await newPage(state);
  const adminResponses = recordResponses(page);
  await login(state, page, "admin", state.token);
  const row = page.locator('[data-testid="secrets-table"] tr[data-secret="default/db-password"]');

  await t.test("a secret is set through the form and listed at version 1, its value nowhere on the page", async () => {
    await nav(page, "Secrets").click();
    await page.waitForURL("**/secrets");
    await page.getByText("No secrets yet.").waitFor();
    await page.getByRole("button", { name: "Set secret" }).click();
    const form = page.getByTestId("secret-form");
    await form.getByLabel("Team").selectOption("default");
    await form.getByLabel("Name", { exact: true }).fill("db-password");
    await form.getByLabel("Value", { exact: true }).fill(V1);
    await shot(page, "secrets-01-form");
    const [put] = await Promise.all([
      page.waitForRequest((r) => r.method() === "PUT" && r.url().endsWith("/api/v1/teams/default/secrets/db-password")),
      form.getByRole("button", { name: "Set secret" }).click(),
    ]);
    // The raw value is the body, not JSON (the instance reads exactly it, below).
    assert.equal(put.headers()["content-type"], "application/octet-stream");
    const result = page.getByTestId("secret-set-result");
    await result.waitFor();
    assert.match(await result.textContent(), /default\/db-password is at version 1; no app rolls out with it/);
    await row.waitFor();
    assert.equal(await row.getByTestId("secret-version").textContent(), "1");
    assert.match(await row.textContent(), /admin/);
    // The form is gone with its value; the value is nowhere.
    assert.equal(await page.getByTestId("secret-form").count(), 0);
    await assertNotOnPage(page, [V1], "after setting");
    // Opened again, the form is empty.
    await page.getByRole("button", { name: "Set secret" }).click();
    assert.equal(await page.getByTestId("secret-form").getByLabel("Value", { exact: true }).inputValue(), "");
    await page.getByTestId("secret-form").getByRole("button", { name: "Cancel" }).click();
    await shot(page, "secrets-02-list");
    assert.deepEqual(
      (await call("GET", "/api/v1/teams/default/secrets")).secrets.map((s) => [s.name, s.version]),
      [["db-password", 1]],
    );
  });

  await t.test("a secret the team does not have is refused next to its row of the create form", async () => {
    await nav(page, "Apps").click();
    await page.getByRole("link", { name: "Create app" }).click();
    await page.waitForURL("**/apps/new");
    await page.getByLabel("Name", { exact: true }).fill("vault");
    await page.getByLabel("Image", { exact: true }).fill("berth-testapp:latest");
    const editor = page.getByTestId("secrets-editor");
    await editor.getByRole("button", { name: "Add secret" }).click();
    const first = editor.getByTestId("secret-row").first();
    await first.getByLabel("Secret", { exact: true }).fill("no-such-secret");
    await first.getByLabel("Variable name").fill("DB_PASSWORD");
    await page.getByRole("button", { name: "Create app" }).click();
    const error = first.locator('.field-error[data-field="secrets[0].name"]');
    await error.waitFor();
    assert.match(await error.textContent(), /^Secret: team default has no secret no-such-secret/);
    assert.equal(await first.getByLabel("Secret", { exact: true }).getAttribute("aria-invalid"), "true");
    assert.equal(await page.locator(".field-error").count(), 1, "only the secret's name shows the error");
    await shot(page, "secrets-03-missing");
  });

  await t.test("an app is created with the secret as a variable and as a file, and a sensitive variable", async () => {
    const editor = page.getByTestId("secrets-editor");
    const first = editor.getByTestId("secret-row").first();
    // The team's secrets are suggested.
    await page.locator('datalist option[value="db-password"]').waitFor({ state: "attached" });
    assert.deepEqual(
      await first.getByLabel("Secret", { exact: true }).evaluate((el) => [...el.list.options].map((o) => o.value)),
      ["db-password"],
    );
    await first.getByLabel("Secret", { exact: true }).fill("db-password");
    await editor.getByRole("button", { name: "Add secret" }).click();
    const second = editor.getByTestId("secret-row").nth(1);
    await second.getByLabel("Secret", { exact: true }).fill("db-password");
    await second.getByLabel("Given as").selectOption("path");
    await second.getByLabel("File path").fill("/run/secrets/db-password");
    await addEnv(page, "COLOR", "blue");
    const key = await addEnv(page, "API_KEY", SENSITIVE, { sensitive: true });
    // A sensitive value is typed into a masked input.
    assert.equal(await key.getByLabel("Value", { exact: true }).getAttribute("type"), "password");
    await shot(page, "secrets-04-create-form");
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/api/v1/apps")),
      page.getByRole("button", { name: "Create app" }).click(),
    ]);
    const body = JSON.parse(request.postData());
    assert.deepEqual(body.secrets, [
      { name: "db-password", env: "DB_PASSWORD" },
      { name: "db-password", path: "/run/secrets/db-password" },
    ]);
    assert.deepEqual(body.env, { COLOR: "blue", API_KEY: SENSITIVE });
    assert.deepEqual(body.sensitive_env, ["API_KEY"]);
    await page.waitForURL("**/apps/vault");
    await waitForRollout(page, 1);
  });

  await t.test("the app page shows both references at version 1, linked to the Secrets page", async () => {
    const env = page.locator('[data-testid="app-secrets"] li[data-target="DB_PASSWORD"]');
    const file = page.locator('[data-testid="app-secrets"] li[data-target="/run/secrets/db-password"]');
    assert.equal(await env.textContent(), "DB_PASSWORD ← db-password version 1 variable");
    assert.equal(await file.textContent(), "/run/secrets/db-password ← db-password version 1 file");
    assert.equal(await env.getByRole("link", { name: "db-password" }).getAttribute("href"), "/secrets?team=default&q=db-password");
    // The instance got the value both ways.
    const vars = JSON.parse((await viaRouter("vault", "default", "/env")).body);
    assert.equal(vars.DB_PASSWORD, V1);
    assert.equal((await viaRouter("vault", "default", "/files?path=/run/secrets/db-password")).body, V1);
    await shot(page, "secrets-05-app");
    await env.getByRole("link", { name: "db-password" }).click();
    await page.waitForURL("**/secrets?team=default&q=db-password");
    await row.getByTestId("secret-used-by").getByRole("link", { name: "vault" }).waitFor();
  });

  await t.test("setting the secret again rolls the app out, which reaches version 2", async () => {
    await row.getByRole("button", { name: "Set a new version of default/db-password" }).click();
    const form = page.getByTestId("secret-form");
    await form.getByRole("heading", { name: "New version of default/db-password" }).waitFor();
    await form.getByLabel("Value", { exact: true }).fill(V2);
    await form.getByRole("button", { name: "Set secret" }).click();
    const result = page.getByTestId("secret-set-result");
    await result.getByText("default/db-password is at version 2; rolling out with it: vault").waitFor();
    await row.getByTestId("secret-version").getByText("2").waitFor();
    await assertNotOnPage(page, [V1, V2], "after the new version");
    await shot(page, "secrets-06-version-2");
    // In Chinese.
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByRole("heading", { name: "密钥" }).waitFor();
    await shot(page, "secrets-06b-list-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    await page.getByRole("heading", { name: "Secrets" }).waitFor();

    await row.getByTestId("secret-used-by").getByRole("link", { name: "vault" }).click();
    await page.waitForURL("**/apps/vault");
    await waitForRollout(page, 2);
    await page.locator('[data-testid="app-secrets"] li[data-target="DB_PASSWORD"]').getByText("version 2").waitFor();
    assert.equal(
      await page.locator('[data-testid="app-secrets"] li[data-target="/run/secrets/db-password"]').textContent(),
      "/run/secrets/db-password ← db-password version 2 file",
    );
    assert.equal((await viaRouter("vault", "default", "/files?path=/run/secrets/db-password")).body, V2);
  });

  await t.test("the deploy form keeps the secrets and leaves them out of a deploy that does not change them", async () => {
    await page.getByRole("link", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/vault/deploy");
    const rows = page.getByTestId("secrets-editor").getByTestId("secret-row");
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    assert.equal(await rows.first().getByLabel("Variable name").inputValue(), "DB_PASSWORD");
    assert.equal(await rows.nth(1).getByLabel("File path").inputValue(), "/run/secrets/db-password");
    // The sensitive variable's value is masked in its input until revealed.
    const key = page.getByTestId("env-row").filter({ has: page.locator('input[value="API_KEY"]') });
    const value = key.getByLabel("Value", { exact: true });
    assert.equal(await value.getAttribute("type"), "password");
    await key.getByRole("button", { name: "Reveal the value of API_KEY" }).click();
    assert.equal(await value.getAttribute("type"), "text");
    await page.getByTestId("env-row").filter({ has: page.locator('input[value="COLOR"]') }).getByLabel("Value", { exact: true }).fill("green");
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/api/v1/apps/vault/deploy")),
      page.getByRole("button", { name: "Deploy", exact: true }).click(),
    ]);
    assert.deepEqual(JSON.parse(request.postData()), { env: { COLOR: "green" } });
    await page.waitForURL("**/apps/vault");
    await waitForRollout(page, 3);
    const app = await call("GET", "/api/v1/apps/vault");
    assert.deepEqual(
      app.template.secrets.map((s) => [s.name, s.env ?? s.path, s.version]),
      [
        ["db-password", "DB_PASSWORD", 2],
        ["db-password", "/run/secrets/db-password", 2],
      ],
    );
    assert.deepEqual(app.template.sensitive_env, ["API_KEY"]);
  });

  await t.test("deleting the secret an app uses is refused with the server's message", async () => {
    await nav(page, "Secrets").click();
    await row.getByRole("button", { name: "Delete default/db-password" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText("Delete secret default/db-password?").waitFor();
    await dialog.getByRole("button", { name: "Delete" }).click();
    const error = page.getByTestId("secret-delete-error");
    await error.waitFor();
    assert.equal(await error.getAttribute("data-code"), "secret_in_use");
    assert.match(await error.textContent(), /used by app vault/);
    await row.waitFor();
    await shot(page, "secrets-07-delete-refused");
  });

  await t.test("the admin sees the sensitive variable masked and can reveal it, here and in the revisions", async () => {
    await page.goto(`${state.base}/apps/vault`);
    const key = page.locator('[data-testid="app-env"] li[data-env="API_KEY"]');
    await key.getByTestId("env-masked").waitFor();
    await assertNotOnPage(page, [SENSITIVE, V1, V2], "the app page, masked");
    assert.match(await page.locator('[data-testid="app-env"] li[data-env="COLOR"]').textContent(), /^COLOR=green$/);
    await key.getByRole("button", { name: "Reveal the value of API_KEY" }).click();
    assert.equal(await key.getByTestId("env-revealed").textContent(), SENSITIVE);
    await shot(page, "secrets-08-revealed");
    await key.getByRole("button", { name: "Hide the value of API_KEY" }).click();
    await key.getByTestId("env-masked").waitFor();

    // The diff masks it as well.
    await page.goto(`${state.base}/apps/vault/revisions?a=1&b=3`);
    const diff = page.getByTestId("revision-diff");
    await diff.getByText("env.COLOR").waitFor();
    await diff.getByLabel("Show unchanged fields").check();
    const line = diff.locator("tr").filter({ hasText: "env.API_KEY" });
    assert.equal(await line.getByTestId("env-masked").count(), 2);
    await assertNotOnPage(page, [SENSITIVE, V1, V2], "the revision diff");
    await line.getByRole("button", { name: "Reveal the value of API_KEY" }).first().click();
    await line.getByText(SENSITIVE).waitFor();
  });

  await t.test("a viewer of the team sees a redacted badge, never the value, and no actions", async () => {
    const res = await fetch(`${state.base}/api/v1/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "victor", email: "victor@example.com", password: "correct horse battery" }),
    });
    assert.ok(res.ok, `register: ${res.status} ${await res.text()}`);
    await call("PUT", "/api/v1/teams/default/members/victor", { role: "viewer" });
    const viewer = await newPage(state);
    const viewerResponses = recordResponses(viewer);
    await login(state, viewer, "victor", "correct horse battery");
    await viewer.goto(`${state.base}/apps/vault`);
    const key = viewer.locator('[data-testid="app-env"] li[data-env="API_KEY"]');
    await key.getByTestId("env-redacted").waitFor();
    assert.equal(await key.getByTestId("env-redacted").textContent(), "redacted");
    assert.equal(await key.getByRole("button").count(), 0, "no reveal for a viewer");
    await viewer.locator('[data-testid="app-secrets"] li[data-target="DB_PASSWORD"]').getByText("version 2").waitFor();
    assert.equal(await viewer.getByRole("link", { name: "Deploy", exact: true }).count(), 0);
    await assertNotOnPage(viewer, [SENSITIVE, V1, V2], "the viewer's app page");
    await shot(viewer, "secrets-09-viewer-app");

    await viewer.goto(`${state.base}/apps/vault/revisions?a=1&b=3`);
    const diff = viewer.getByTestId("revision-diff");
    await diff.getByText("env.COLOR").waitFor();
    await diff.getByLabel("Show unchanged fields").check();
    await diff.locator("tr").filter({ hasText: "env.API_KEY" }).getByTestId("env-redacted").first().waitFor();
    await assertNotOnPage(viewer, [SENSITIVE, V1, V2], "the viewer's revision diff");

    // The viewer sees the secrets, without the actions.
    await nav(viewer, "Secrets").click();
    const listed = viewer.locator('[data-testid="secrets-table"] tr[data-secret="default/db-password"]');
    await listed.waitFor();
    assert.equal(await listed.getByTestId("secret-version").textContent(), "2");
    assert.equal(await viewer.getByRole("button", { name: "Set secret" }).count(), 0);
    assert.equal(await listed.getByRole("button").count(), 0);
    await assertNotOnPage(viewer, [SENSITIVE, V1, V2], "the viewer's Secrets page");
    await shot(viewer, "secrets-10-viewer-list");

    const seen = await viewerResponses();
    assert.ok(seen.some((r) => r.url.endsWith("/api/v1/apps/vault")), "the viewer's responses were recorded");
    for (const r of seen) {
      for (const value of [SENSITIVE, V1, V2]) assert.ok(!r.text.includes(value), `${r.url} answered the viewer ${value}`);
    }
    assert.deepEqual(viewer.errors, []);
    await viewer.context().close();
  });

  await t.test("a secret set from a file is listed, and deleted once confirmed while unused", async () => {
    await page.goto(`${state.base}/secrets`);
    await page.getByRole("button", { name: "Set secret" }).click();
    const form = page.getByTestId("secret-form");
    await form.getByLabel("Team").selectOption("default");
    await form.getByLabel("Name", { exact: true }).fill("tls-key");
    await form.getByLabel("Value from a file").setInputFiles({ name: "key.pem", mimeType: "application/x-pem-file", buffer: Buffer.from(FILE_VALUE) });
    await form.getByText("The bytes of key.pem are sent as the value").waitFor();
    assert.ok(await form.getByLabel("Value", { exact: true }).isDisabled(), "the textarea is not used");
    const [put] = await Promise.all([
      page.waitForRequest((r) => r.method() === "PUT" && r.url().endsWith("/api/v1/teams/default/secrets/tls-key")),
      form.getByRole("button", { name: "Set secret" }).click(),
    ]);
    assert.equal(put.headers()["content-type"], "application/octet-stream");
    await page.getByTestId("secret-set-result").getByText("default/tls-key is at version 1; no app rolls out with it").waitFor();
    const listed = page.locator('[data-testid="secrets-table"] tr[data-secret="default/tls-key"]');
    assert.equal(await listed.getByTestId("secret-version").textContent(), "1");
    await assertNotOnPage(page, [FILE_VALUE], "after setting from a file");
    await listed.getByRole("button", { name: "Delete default/tls-key" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await page.locator(".toast").getByText("Secret default/tls-key deleted").waitFor();
    await listed.waitFor({ state: "detached" });
    assert.deepEqual(
      (await call("GET", "/api/v1/secrets")).secrets.map((s) => `${s.team}/${s.name}`),
      ["default/db-password"],
    );
  });

  await t.test("no answer to the console ever held a secret's value", async () => {
    const seen = await adminResponses();
    assert.ok(seen.some((r) => r.url.includes("/secrets")), "the secrets' responses were recorded");
    for (const r of seen) {
      for (const value of [V1, V2, FILE_VALUE]) assert.ok(!r.text.includes(value), `${r.url} answered ${value}`);
    }
    assert.deepEqual(page.errors, []);
  });
});
