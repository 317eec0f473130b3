// The Nodes page in a real browser against the real binary: a server whose memory threshold no
// machine meets (99 % free) shows its node red with the reason, the banner that the cluster
// needs another node (and the cluster's event, for admins), and lets an admin set labels (a bad one is refused with the server's
// message), and unfolds the node's history: charts drawn from the metrics history that grow as
// the recorder adds points. The engine's view of the node: the local node is ready, standalone;
// an admin's Drain is refused by a single Docker Engine with the server's message, a
// non-admin has no Drain; a node Berth does not measure (shown from a rewritten answer) says
// "not measured" and a down node is red. Screenshots go to ui/test-output/.
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

async function call(method, path, body) {
  const res = await fetch(`${state.base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

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

test("the engine's view of a node, and draining it", { timeout: 180_000 }, async (t) => {
  const page = await openPage(state);
  await signIn(state, page, "admin", state.token);
  await page.goto(`${state.base}/nodes`);
  const card = page.locator("section.node-card").first();
  await card.waitFor();

  await t.test("the local node is ready, standalone, and measured", async () => {
    const nodeState = card.getByTestId("node-state");
    await page.waitForFunction(() => document.querySelector('[data-testid="node-state"]')?.getAttribute("data-state") === "ready");
    assert.equal(await nodeState.getAttribute("data-availability"), "active");
    assert.equal((await nodeState.textContent()).trim(), "ready");
    assert.equal((await card.getByTestId("node-engine-state").textContent()).trim(), "ready");
    assert.equal(await card.getByTestId("node-role").getAttribute("data-role"), "standalone");
    assert.equal((await card.getByTestId("node-role").textContent()).trim(), "standalone");
    await card.getByTestId("node-address").waitFor();
    // Berth runs on it: its CPU and memory are read, not "not measured".
    assert.doesNotMatch(await card.getByTestId("node-memory").textContent(), /not measured/);
    await shot(page, "nodes-04-state");
    await page.getByTestId("lang-switch").selectOption("zh-CN");
    await card.getByTestId("node-state").getByText("就绪").waitFor();
    await card.getByTestId("node-role").getByText("独立引擎").waitFor();
    await page.getByTestId("lang-switch").selectOption("en");
    await card.getByTestId("node-state").getByText("ready").waitFor();
  });

  await t.test("an admin's Drain is confirmed, then refused by a single engine with the server's message", async () => {
    const name = await card.getAttribute("data-node");
    const actions = card.getByTestId("node-availability");
    assert.ok(await actions.getByRole("button", { name: "Activate" }).isDisabled(), "an active node is not activated again");
    await actions.getByRole("button", { name: "Drain" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(`Drain node ${name}?`).waitFor();
    await dialog.getByText(/its instances move to other nodes/i).waitFor();
    // Cancelling sends nothing.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "hidden" });
    assert.equal(await card.getByTestId("node-availability-error").count(), 0);

    await actions.getByRole("button", { name: "Drain" }).click();
    const answer = page.waitForResponse((r) => r.request().method() === "PUT" && r.url().endsWith(`/api/v1/nodes/${encodeURIComponent(name)}/availability`));
    await dialog.getByRole("button", { name: "Drain" }).click();
    assert.equal((await answer).status(), 409);
    const error = card.getByTestId("node-availability-error");
    await error.waitFor();
    assert.equal(
      (await error.textContent()).trim(),
      "a single Docker Engine is one node: draining needs a multi-node engine (--engine swarm)",
    );
    // The node stays active, on the page and on the server.
    assert.equal(await card.getByTestId("node-state").getAttribute("data-availability"), "active");
    assert.equal((await card.getByTestId("node-state").textContent()).trim(), "ready");
    const node = await call("GET", `/api/v1/nodes/${encodeURIComponent(name)}`);
    assert.equal(node.status, 200);
    assert.equal(node.body.availability, "active");
    await shot(page, "nodes-05-drain-refused");
  });

  await t.test("a node Berth does not measure says so, and a down, drained node is flagged", async () => {
    // A multi-node engine's other node, added to the server's real answer.
    const other = await openPage(state);
    await other.route("**/api/v1/nodes", async (route) => {
      const response = await route.fetch();
      const list = await response.json();
      const real = list.nodes[0];
      list.nodes.push({
        ...real,
        name: "worker-2",
        status: "unknown",
        reasons: [],
        reason_details: [],
        role: "worker",
        state: "down",
        availability: "drain",
        address: "10.0.0.12",
        measured: false,
        labels: { datacenter: "dc2" },
        datacenter: "dc2",
        zone: null,
        usage: { ...(real.usage ?? {}), cpu_percent: null, memory: null, disks: [], cpu_low: false },
      });
      await route.fulfill({ response, json: list });
    });
    await signIn(state, other, "admin", state.token);
    await other.goto(`${state.base}/nodes`);
    const worker = other.locator('section.node-card[data-node="worker-2"]');
    await worker.waitFor();
    const nodeState = worker.getByTestId("node-state");
    assert.equal((await nodeState.textContent()).trim(), "down · drain");
    assert.equal(await nodeState.locator(".badge").getAttribute("class"), "badge badge-bad");
    assert.equal(await worker.getByTestId("node-engine-state").getAttribute("class"), "bad-text");
    assert.equal((await worker.getByTestId("node-role").textContent()).trim(), "worker");
    assert.equal((await worker.getByTestId("node-address").textContent()).trim(), "10.0.0.12");
    for (const meter of ["node-cpu", "node-memory"]) {
      const text = worker.getByTestId(meter).getByText("not measured", { exact: true });
      await text.waitFor();
      assert.match(await text.getAttribute("title"), /on Swarm nodes whose engine it reaches \(--node-engines\)/);
    }
    assert.equal(await worker.getByTestId("node-history").count(), 0, "no history for a node Berth does not measure");
    assert.ok(await worker.getByRole("button", { name: "Drain" }).isDisabled(), "a drained node is not drained again");
    await shot(other, "nodes-06-not-measured");
    await other.getByTestId("lang-switch").selectOption("zh-CN");
    await worker.getByTestId("node-state").getByText("宕机 · 排空").waitFor();
    await worker.getByTestId("node-cpu").getByText("未测量", { exact: true }).waitFor();
    await other.getByTestId("lang-switch").selectOption("en");
    assert.deepEqual(other.errors, []);
    await other.context().close();
  });

  await t.test("a non-admin sees the node's state but no Drain", async () => {
    const res = await fetch(`${state.base}/api/v1/auth/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: "nora", email: "nora@example.com", password: "correct horse battery" }),
    });
    assert.ok(res.ok, `register: ${res.status} ${await res.text()}`);
    const member = await openPage(state);
    await signIn(state, member, "nora", "correct horse battery");
    await member.goto(`${state.base}/nodes`);
    const memberCard = member.locator("section.node-card").first();
    await memberCard.getByTestId("node-state").getByText("ready").waitFor();
    assert.equal((await memberCard.getByTestId("node-role").textContent()).trim(), "standalone");
    assert.equal(await member.getByTestId("node-availability").count(), 0);
    assert.equal(await member.getByRole("button", { name: "Drain" }).count(), 0, "no Drain for a non-admin");
    assert.equal(await member.getByRole("button", { name: "Pause" }).count(), 0);
    assert.equal(await member.getByRole("button", { name: "Activate" }).count(), 0);
    await shot(member, "nodes-07-member");
    assert.deepEqual(member.errors, []);
    await member.context().close();
  });

  assert.deepEqual(page.errors, []);
});
