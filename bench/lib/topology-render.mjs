// Benchmark 12's browser part: how long Debian's chromium takes to lay out the console's
// Topology page, and what its live updates cost the page.
//
// node bench/lib/topology-render.mjs BASE USERNAME PASSWORD APPS [SECONDS]
//
// Signs in, opens /topology and times (a) navigation to the moment every one of the APPS app
// boxes is drawn and the live stream is connected — the first layout — and (b) over SECONDS of
// live updates (the stream sends a new topology every 2 s, the page lays it out again) the
// longest main-thread task (PerformanceObserver "longtask": only tasks over 50 ms are reported,
// so none means every update took less) and the busy time they add up to. Prints one JSON line.
// playwright-core comes from ui/node_modules (npm), the browser from /usr/bin/chromium.
import { createRequire } from "node:module";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "ui", "package.json"));
const { chromium } = require("playwright-core");

const [base, username, password, appsArg, secondsArg] = process.argv.slice(2);
const apps = Number(appsArg);
const seconds = Number(secondsArg ?? 20);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: "en-US" })).newPage();
  page.setDefaultTimeout(60_000);
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
    }).observe({ type: "longtask", buffered: true });
  });
  await page.goto(`${base}/login`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/apps");
  const t0 = Date.now();
  await page.goto(`${base}/topology`);
  await page.waitForFunction(
    (n) =>
      document.querySelectorAll('[data-testid="topology-app"]').length >= n &&
      document.querySelector('[data-testid="topology-live"][data-connected="true"]'),
    apps,
    { polling: 10 },
  );
  const firstLayoutMs = Date.now() - t0;
  const drawn = await page.locator('[data-testid="topology-app"]').count();
  const instances = await page.locator('[data-testid="topology-node"] [data-instance]').count();
  await page.evaluate(() => (window.__longTasks = []));
  await page.waitForTimeout(seconds * 1000);
  const tasks = await page.evaluate(() => window.__longTasks);
  console.log(
    JSON.stringify({
      first_layout_ms: firstLayoutMs,
      apps_drawn: drawn,
      instances_drawn: instances,
      update_seconds: seconds,
      long_tasks: tasks.length,
      longest_task_ms: tasks.length ? Math.max(...tasks) : 0,
      long_task_ms_total: tasks.reduce((a, b) => a + b, 0),
    }),
  );
} finally {
  await browser.close();
}
