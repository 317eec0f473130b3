// The Nodes page in a real browser against the real binary: a server whose memory threshold no
// machine meets (99 % free) shows its node red with the reason, the banner that the cluster
// needs another node (and the cluster's event, for admins), and lets an admin set labels (a bad one is refused with the server's
// message), and unfolds the node's history: charts drawn from the metrics history that grow as
// the recorder adds points. Screenshots go to ui/test-output/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { login as signIn, newPage as openPage, shot, startBerth, stopBerth } from "./harness.mjs";

let state;

before(async () => {
  state = await startBerth("ui-nodes", [
    "--node-sample-interval",
    "500ms",
    "--node-memory-free-min",
    "99%",
    "--metrics-interval",
    "1s",
  ]);
});

after(async () => {
  await stopBerth(state);
});

test("the Nodes page shows a low node in red and edits its labels", { timeout: 180_000 }, async (t) => {
  const page = await openPage(state);
  await signIn(state, page, "admin", state.token);

  await t.test("the node is red with its reason, and the banner says the cluster needs a node", async () => {
    await page.getByRole("link", { name: "Nodes", exact: true }).click();
    await page.waitForURL("**/nodes");
    const card = page.locator("section.node-card");
    await card.first().waitFor();
    await page.waitForFunction(() => document.querySelector("section.node-card")?.getAttribute("data-status") === "low", null, {
      timeout: 30_000,
    });
    const reasons = await card.first().getByTestId("node-reasons").textContent();
    assert.match(reasons, /memory \d+ % free \(threshold 99 %\)/);
    assert.equal(await card.first().getByTestId("node-memory").getAttribute("data-low"), "true");
    assert.equal(await card.first().locator('[data-testid="node-memory"] .bar').getAttribute("class"), "bar bar-bad");
    await page.getByTestId("cluster-banner").waitFor({ timeout: 15_000 });
    assert.match(await page.getByTestId("cluster-banner").textContent(), /the cluster needs another node/);
    // The crossing event is listed for admins, and the cluster's own event beside the nodes.
    await card.first().locator('[data-testid="node-events"] li[data-kind="node_low"]').waitFor();
    const clusterEvent = page.locator('[data-testid="cluster-events"] li[data-kind="cluster_needs_node"]');
    await clusterEvent.first().waitFor({ timeout: 15_000 });
    assert.match(await clusterEvent.first().textContent(), /Every node is low: the cluster needs another node/);
    await shot(page, "nodes-01-low");
    // In Chinese: the reason and the event are said from their codes and values.
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await card.first().getByTestId("node-reasons").getByText(/^内存剩余 \d+ %（阈值 99 %）$/).waitFor();
    await card
      .first()
      .locator('[data-testid="node-events"] li[data-kind="node_low"]')
      .filter({ hasText: /节点 \S+ 资源不足：内存剩余 \d+ %（阈值 99 %）/ })
      .first()
      .waitFor();
    await clusterEvent.filter({ hasText: "所有节点资源不足：集群需要再加一个节点" }).first().waitFor();
    await shot(page, "nodes-01b-low-zh");
    await page.getByTestId("lang-switch").selectOption("en");
    await card.first().getByTestId("node-reasons").getByText(/^memory \d+ % free/).waitFor();
  });

  await t.test("an admin sets labels; a bad one is refused with the server's message", async () => {
    const card = page.locator("section.node-card").first();
    const input = card.getByTestId("node-labels-input");
    await input.fill("datacenter=dc1 zone=a");
    await card.getByRole("button", { name: "Save labels" }).click();
    await card.getByText("datacenter=dc1").waitFor();
    await card.getByText("datacenter dc1").waitFor();
    await card.getByText("zone a").waitFor();
    await input.fill("Zone=a");
    await card.getByRole("button", { name: "Save labels" }).click();
    const error = await card.getByTestId("node-labels-error").textContent();
    assert.match(error, /labels\.Zone/);
    await shot(page, "nodes-02-labels");
  });

  await t.test("the node's history charts its CPU, memory and disk and updates live", async () => {
    const card = page.locator("section.node-card").first();
    await card.getByTestId("node-history").locator("summary").click();
    const name = await card.getAttribute("data-node");
    const cpu = card.getByTestId(`chart-node-${name}-cpu_percent`);
    await cpu.waitFor();
    const points = async () => Number(await cpu.getAttribute("data-points"));
    await page.waitForFunction((id) => Number(document.querySelector(`[data-testid="${id}"]`)?.getAttribute("data-points")) > 0, `chart-node-${name}-cpu_percent`, {
      timeout: 30_000,
    });
    const first = await points();
    assert.ok((await cpu.locator("path.chart-line").getAttribute("d")).startsWith("M"), "a line is drawn");
    for (const metric of ["memory_bytes", "disk_used_percent"]) {
      assert.ok(Number(await card.getByTestId(`chart-node-${name}-${metric}`).getAttribute("data-points")) > 0, metric);
    }
    // A new 5 s point arrives with a later poll, without reloading the page.
    await page.waitForFunction(
      ([id, before]) => Number(document.querySelector(`[data-testid="${id}"]`)?.getAttribute("data-points")) > before,
      [`chart-node-${name}-cpu_percent`, first],
      { timeout: 30_000 },
    );
    // Hovering reads the values out.
    const box = await cpu.locator("svg").boundingBox();
    await page.mouse.move(box.x + box.width - 15, box.y + box.height / 2);
    assert.match(await card.getByTestId(`chart-readout-node-${name}-cpu_percent`).textContent(), /%/);
    await shot(page, "nodes-03-history");
  });
});
