// Persistent volumes in a real browser against the real binary: an app is created with a volume
// through the form (a relative path refused next to its field) and its page lists the mount; the
// deploy form adds a per-instance one and leaves the mounts out of a deploy that does not change
// them; the Volumes page lists both with the app using them; deleting a mounted volume is
// refused with the server's message; a tar is restored into the volume once its app is scaled
// to 0 (refused before, and a compressed one refused next to the file field) and the backup
// downloaded afterwards holds its file; the team page shows the volume storage bar and a quota
// request asks for more; the app is deleted with its volumes. Screenshots go to
// ui/test-output/volumes-*.png.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addEnv, login, nav, newPage, shot, startBerth, stopBerth } from "./harness.mjs";

let state;
/** Where the test's archives live. */
let dir;

before(async () => {
  state = await startBerth("ui-volumes");
  dir = mkdtempSync(join(tmpdir(), "berth-ui-volumes-"));
  writeFileSync(join(dir, "hello.txt"), "hello from the console\n");
  execFileSync("tar", ["-cf", join(dir, "restore.tar"), "-C", dir, "hello.txt"]);
  execFileSync("tar", ["-czf", join(dir, "compressed.tar"), "-C", dir, "hello.txt"]);
});

after(async () => {
  await stopBerth(state);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** An API call as the admin, outside the browser. */
async function call(method, path) {
  const res = await fetch(`${state.base}${path}`, { method, headers: { Authorization: `Bearer ${state.token}` } });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
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

/** The entries of a tar archive (the `tar` CLI fails on anything else). */
function tarEntries(path) {
  return execFileSync("tar", ["-tf", path]).toString().split("\n").filter(Boolean);
}

test("volumes are mounted, listed, backed up, restored and deleted from the console", { timeout: 600_000 }, async (t) => {
  const page = await newPage(state);
  await login(state, page, "admin", state.token);

  await t.test("a relative mount path is refused next to the path field of its row", async () => {
    await page.getByRole("link", { name: "Create app" }).click();
    await page.getByLabel("Name", { exact: true }).fill("notes");
    await page.getByLabel("Image", { exact: true }).fill("berth-testapp:latest");
    const editor = page.getByTestId("volumes-editor");
    await editor.getByRole("button", { name: "Add volume" }).click();
    const row = editor.getByTestId("volume-row").first();
    await row.getByLabel("Volume", { exact: true }).fill("data");
    await row.getByLabel("Mount path").fill("data");
    await page.getByRole("button", { name: "Create app" }).click();
    const error = row.locator('.field-error[data-field="volumes[0].path"]');
    await error.waitFor();
    // Said with the field's label, under the row's path input.
    assert.match(await error.textContent(), /^Mount path: /);
    assert.equal(await row.getByLabel("Mount path").getAttribute("aria-invalid"), "true");
    assert.equal(await page.locator(".field-error").count(), 1, "only the path shows the error");
    await shot(page, "volumes-01-bad-path");
  });

  await t.test("an app is created with a volume and its page shows the mount", async () => {
    const row = page.getByTestId("volume-row").first();
    await row.getByLabel("Mount path").fill("/data");
    await page.getByRole("button", { name: "Create app" }).click();
    await page.waitForURL("**/apps/notes");
    await waitForRollout(page, 1);
    const mount = page.locator('[data-testid="app-volumes"] li[data-volume="data"]');
    await mount.waitFor();
    assert.match(await mount.textContent(), /^data → \/data shared$/);
    assert.equal(await mount.getByRole("link", { name: "data" }).getAttribute("href"), "/volumes/default/data");
    assert.deepEqual((await call("GET", "/api/v1/apps/notes")).template.volumes, [{ name: "data", path: "/data", scope: "shared", read_only: false }]);
    await shot(page, "volumes-02-app");
  });

  await t.test("the deploy form adds a per-instance volume and leaves the mounts out of other deploys", async () => {
    await page.getByRole("link", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/notes/deploy");
    const editor = page.getByTestId("volumes-editor");
    // The app's mount is the form's first row.
    assert.equal(await editor.getByTestId("volume-row").first().getByLabel("Volume", { exact: true }).inputValue(), "data");
    await editor.getByRole("button", { name: "Add volume" }).click();
    const row = editor.getByTestId("volume-row").nth(1);
    await row.getByLabel("Volume", { exact: true }).fill("cache");
    await row.getByLabel("Mount path").fill("/cache");
    await row.getByLabel("Scope").selectOption("per_instance");
    await shot(page, "volumes-03-deploy-form");
    // On a phone each mount's fields stack.
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, "volumes-03b-deploy-form-narrow");
    await page.setViewportSize({ width: 1366, height: 768 });
    await page.getByRole("button", { name: "Deploy", exact: true }).click();
    await page.waitForURL("**/apps/notes");
    await waitForRollout(page, 2);
    const cache = page.locator('[data-testid="app-volumes"] li[data-volume="cache"]');
    await cache.waitFor();
    assert.match(await cache.textContent(), /^cache → \/cache per instance$/);

    // A deploy of something else sends no mounts, and they stay.
    await page.getByRole("link", { name: "Deploy", exact: true }).click();
    await addEnv(page, "COLOR", "green");
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/api/v1/apps/notes/deploy") && r.method() === "POST"),
      page.getByRole("button", { name: "Deploy", exact: true }).click(),
    ]);
    assert.deepEqual(JSON.parse(request.postData()), { env: { COLOR: "green" } });
    await page.waitForURL("**/apps/notes");
    await waitForRollout(page, 3);
    assert.deepEqual(
      (await call("GET", "/api/v1/apps/notes")).template.volumes.map((m) => `${m.name}:${m.path}:${m.scope}`),
      ["data:/data:shared", "cache:/cache:per_instance"],
    );
  });

  await t.test("the Volumes page lists the volumes with the app using them", async () => {
    await nav(page, "Volumes").click();
    await page.waitForURL("**/volumes");
    const data = page.locator('[data-testid="volumes-table"] tr[data-volume="default/data"]');
    await data.waitFor();
    assert.equal(await data.getByTestId("volume-used-by").getByRole("link", { name: "notes" }).getAttribute("href"), "/apps/notes");
    assert.match(await data.textContent(), /shared/);
    const cache = page.locator('[data-testid="volumes-table"] tr[data-volume="default/cache"]');
    assert.match(await cache.textContent(), /per instance/);
    // The team filter is in the URL.
    await page.getByTestId("team-filter").selectOption("default");
    await page.waitForURL("**/volumes?team=default");
    await data.waitFor();
    await shot(page, "volumes-04-list");
    // In Chinese.
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await page.getByRole("heading", { name: "存储卷" }).waitFor();
    assert.match(await cache.textContent(), /每实例独立/);
    await shot(page, "volumes-04b-list-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    await page.getByRole("heading", { name: "Volumes" }).waitFor();
  });

  await t.test("deleting a mounted volume is refused with the server's message", async () => {
    await page.locator('tr[data-volume="default/data"]').getByRole("link", { name: "data" }).click();
    await page.waitForURL("**/volumes/default/data");
    await page.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("textbox").fill("data");
    await dialog.getByRole("button", { name: "Delete" }).click();
    const error = page.getByTestId("volume-delete-error");
    await error.waitFor();
    assert.match(await error.textContent(), /is mounted by app notes/);
    assert.equal((await call("GET", "/api/v1/teams/default/volumes/data")).name, "data");
  });

  await t.test("a tar is restored into the volume of an app scaled to 0, and its backup holds the file", async () => {
    const form = page.getByTestId("volume-restore-form");
    const restore = async (file) => {
      await form.getByLabel("Tar archive").setInputFiles(join(dir, file));
      await form.getByRole("button", { name: "Restore" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Restore" }).click();
    };
    // Refused while the app's instance runs.
    await restore("restore.tar");
    await form.getByText(/scale them to 0 first/).waitFor();
    await shot(page, "volumes-05-restore-refused");

    await page.goto(`${state.base}/apps/notes`);
    await page.locator("#scale-replicas").fill("0");
    await page.getByRole("button", { name: "Scale", exact: true }).click();
    await page.getByText("No instances run.").waitFor({ timeout: 60_000 });
    await page.locator('[data-testid="app-volumes"]').getByRole("link", { name: "data" }).click();
    await page.waitForURL("**/volumes/default/data");

    // A compressed archive is refused under the file field.
    await restore("compressed.tar");
    await form.locator('.field-error[data-field="archive"]').waitFor();
    assert.match(await form.locator('.field-error[data-field="archive"]').textContent(), /^Tar archive: /);

    await restore("restore.tar");
    await page.locator(".toast").getByText("default/data restored from restore.tar").waitFor();
    assert.equal(await form.locator(".alert-error, .field-error").count(), 0);

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("volume-download").click()]);
    assert.equal(download.suggestedFilename(), "default-data.tar");
    const saved = join(dir, "backup.tar");
    await download.saveAs(saved);
    const entry = tarEntries(saved).find((e) => e.replace(/^\.\//, "") === "hello.txt");
    assert.ok(entry, `hello.txt in ${tarEntries(saved).join(", ")}`);
    assert.equal(execFileSync("tar", ["-xOf", saved, entry]).toString(), "hello from the console\n");
    await shot(page, "volumes-06-restored");
  });

  await t.test("a per-instance volume is backed up slot by slot", async () => {
    await page.goto(`${state.base}/volumes/default/cache`);
    const slot = page.getByLabel("Slot");
    await slot.waitFor();
    // Slot 0, and the surge instance of the last rolling rollout had a slot of its own.
    const slots = await slot.locator("option").allTextContents();
    assert.ok(slots.includes("0"), `slots ${slots}`);
    const link = page.getByTestId("volume-download");
    assert.equal(await link.getAttribute("href"), `/api/v1/teams/default/volumes/cache/archive?slot=${slots[0]}`);
    const last = slots[slots.length - 1];
    await slot.selectOption(last);
    await page.waitForURL(`**/volumes/default/cache?slot=${last}`);
    // The URL changes before the page renders the new slot's link: wait for the render.
    const href = `/api/v1/teams/default/volumes/cache/archive?slot=${last}`;
    await page.waitForFunction((want) => document.querySelector('[data-testid="volume-download"]')?.getAttribute("href") === want, href, {
      timeout: 5_000,
    });
    assert.equal(await link.getAttribute("href"), href);
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    assert.equal(download.suggestedFilename(), `default-cache-${last}.tar`);
    const saved = join(dir, "cache.tar");
    await download.saveAs(saved);
    tarEntries(saved);
  });

  await t.test("the team page shows the volume storage bar; its limit is set and a quota request asks for more", async () => {
    await page.goto(`${state.base}/teams/default`);
    const bar = page.getByTestId("quota-bars").getByRole("meter", { name: "Volume storage" });
    await bar.waitFor();
    assert.equal(await bar.getAttribute("aria-valuemax"), "0", "the default team's volume storage is unlimited");
    // An admin sets the limit in MiB.
    const quota = page.locator("form").filter({ has: page.getByRole("heading", { name: "Set quota" }) });
    await quota.getByLabel("Volume storage (MiB)").fill("20480");
    await quota.getByRole("button", { name: "Save" }).click();
    await page.getByTestId("quota-bars").getByText(/\/ 20\.0 GiB$/).waitFor();
    assert.equal(Number(await bar.getAttribute("aria-valuemax")), 20 * 1024 ** 3);
    assert.equal((await call("GET", "/api/v1/teams/default")).quota.volume_bytes, 20 * 1024 ** 3);
    // A member asks for more.
    const form = page.getByTestId("quota-request-form");
    await form.getByLabel("Volume storage (MiB)").fill("40960");
    await form.getByLabel("Reason").fill("more notes");
    await form.getByRole("button", { name: "File request" }).click();
    const row = page.locator('[data-testid="quota-requests-table"] tr[data-status="pending"]').filter({ hasText: "more notes" });
    await row.getByText("Volume storage: 20.0 GiB → 40.0 GiB").waitFor();
    await shot(page, "volumes-07-team");
  });

  await t.test("the app is deleted with its volumes", async () => {
    await page.goto(`${state.base}/apps/notes`);
    await page.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByRole("dialog");
    const note = dialog.getByTestId("delete-volumes-note");
    assert.equal(await note.textContent(), "Otherwise these volumes are kept, with their data: default/data, default/cache");
    await dialog.getByLabel("Also delete its volumes and their data").check();
    assert.equal(await note.textContent(), "These volumes and their data are deleted too: default/data, default/cache");
    await shot(page, "volumes-08-delete-app");
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.method() === "DELETE"),
      (async () => {
        await dialog.getByRole("textbox").fill("notes");
        await dialog.getByRole("button", { name: "Delete" }).click();
      })(),
    ]);
    assert.match(request.url(), /\/api\/v1\/apps\/notes\?delete_volumes=true$/);
    await page.waitForURL("**/apps");
    await nav(page, "Volumes").click();
    await page.getByText("No volumes yet").waitFor();
    assert.deepEqual((await call("GET", "/api/v1/volumes")).volumes, []);
    assert.deepEqual(page.errors, []);
  });
});
