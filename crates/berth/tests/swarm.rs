//! End-to-end on a 3-node Docker Swarm (`scripts/swarm-rig.sh`: extra dockerds in network
//! namespaces, nodes 1 and 2 in datacenter dc1, node 3 in dc2): Berth with `--engine swarm`
//! runs an app's instances as Swarm services, pulled by every node from Berth's registry,
//! spread over the nodes and the datacenters, each reached at its node's address; `berth nodes`
//! lists the Swarm's nodes, draining one moves its instances away (each replacement ready
//! before its instance stops), a rolling upgrade adds a secret file (a Swarm secret per
//! instance, gone with its instance), exec and CPU/memory
//! samples reach the instances on every node, node labels set through Berth constrain where an
//! app runs, a volume lives on one node its app may run on (its instances share it there and
//! stay with it; it is backed up from there and removed with its pin), and when a node dies
//! its instances come back on the others.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, hit, ready_instances, tar_entry, tar_of, wait_until};

const ROLLOUT: Duration = Duration::from_secs(180);
/// The host's address on the rig's network (nodes reach Berth's registry there).
const RIG_HOST: &str = "10.77.0.1";

/// Runs `scripts/swarm-rig.sh ARGS`; panics with its output when it fails.
fn rig(args: &[&str]) -> String {
    let script = berth_testkit::workspace_root().join("scripts/swarm-rig.sh");
    let output = Command::new(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/swarm-rig.sh");
    assert!(
        output.status.success(),
        "swarm-rig.sh {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The rig's settings (`swarm-rig.sh env`), bringing it up first when it is not.
fn rig_up() -> BTreeMap<String, String> {
    rig(&["up"]);
    rig(&["env"])
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// Removes the namespace's services, secrets and networks from the Swarm, even when the test
/// fails.
struct SwarmCleanup {
    manager: String,
    namespace: String,
    /// The engines of every node (the manager's first), where the test's volumes may be.
    engines: Vec<String>,
}

impl Drop for SwarmCleanup {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            Command::new("docker")
                .args(["-H", &self.manager])
                .args(args)
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        // A label the test set on a node goes even when the test failed before removing it.
        docker(&["node", "update", "--label-rm", "disk", "rig-node-2"]);
        docker(&[
            "node",
            "update",
            "--label-rm",
            "berth.drain",
            "--availability",
            "active",
            "rig-node-2",
        ]);
        let filter = format!("label=berth.namespace={}", self.namespace);
        // Services first: a secret is removed only once no service uses it.
        let remove_services = || {
            for kind in ["service", "secret"] {
                let listed = docker(&[kind, "ls", "-q", "--filter", &filter]);
                let ids: Vec<&str> = listed.split_whitespace().collect();
                if !ids.is_empty() {
                    let mut args = vec![kind, "rm"];
                    args.extend(ids);
                    docker(&args);
                }
            }
        };
        remove_services();
        // Volumes once their instances are gone, and Berth's pins of them on the nodes.
        let volume_filter = format!("label=berth.namespace={}", self.namespace);
        for engine in &self.engines {
            for _ in 0..10 {
                let listed = Command::new("docker")
                    .args([
                        "-H",
                        engine,
                        "volume",
                        "ls",
                        "-q",
                        "--filter",
                        &volume_filter,
                    ])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let names: Vec<&str> = listed
                    .split_whitespace()
                    .filter(|name| !name.ends_with("-installation"))
                    .collect();
                if names.is_empty() {
                    break;
                }
                let _ = Command::new("docker")
                    .args(["-H", engine, "volume", "rm"])
                    .args(&names)
                    .stderr(Stdio::null())
                    .output();
                for name in names {
                    for node in ["rig-node-1", "rig-node-2", "rig-node-3"] {
                        docker(&[
                            "node",
                            "update",
                            "--label-rm",
                            &format!("berth.volume.{name}"),
                            node,
                        ]);
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // The server, still running, may have started some again meanwhile.
        remove_services();
        let prefix = format!("{}-team-", self.namespace);
        for _ in 0..10 {
            let names = docker(&["network", "ls", "--format", "{{.Name}}"]);
            let left: Vec<&str> = names
                .split_whitespace()
                .filter(|n| n.starts_with(&prefix))
                .collect();
            if left.is_empty() {
                break;
            }
            for name in left {
                docker(&["network", "rm", name]);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// A Swarm node's spec as `docker node inspect --format FORMAT` prints it, through the manager.
fn node_spec(manager: &str, node: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["-H", manager, "node", "inspect", node, "--format", format])
        .output()
        .expect("run docker node inspect");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// How many of the app's ready instances run on each node.
fn per_node(app: &Value) -> BTreeMap<String, usize> {
    let mut nodes = BTreeMap::new();
    for instance in ready_instances(app) {
        *nodes
            .entry(instance["node"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_spread_over_nodes_and_datacenters_and_come_back_when_a_node_dies() {
    let settings = rig_up();
    let manager = settings
        .get("BERTH_RIG_MANAGER")
        .expect("BERTH_RIG_MANAGER in swarm-rig.sh env")
        .clone();
    let node_engines = settings
        .get("BERTH_RIG_NODE_ENGINES")
        .expect("BERTH_RIG_NODE_ENGINES in swarm-rig.sh env")
        .clone();
    let server = Server::start_on(
        "swarm",
        RIG_HOST,
        &[
            "--engine",
            "swarm",
            "--docker-host",
            &manager,
            "--node-engines",
            &node_engines,
            "--usage-interval",
            "2s",
        ],
    )
    .await;
    let namespace = server.namespace.namespace().to_string();
    // Each node's engine by node name (the manager's node: the manager).
    let mut engines: BTreeMap<String, String> = node_engines
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(node, engine)| (node.to_string(), engine.to_string()))
        .collect();
    engines.insert("rig-node-1".into(), manager.clone());
    let _cleanup = SwarmCleanup {
        manager: manager.clone(),
        namespace: namespace.clone(),
        engines: engines.values().cloned().collect(),
    };

    // The image reaches the nodes only through Berth's registry.
    let image = format!("{RIG_HOST}:{}/default/{namespace}:v1", server.port);
    server.push_testapp(&image);

    server.create_app("web", 6, json!({"image": image})).await;
    let app = server
        .wait_app("web", "6 ready instances", ROLLOUT, |a| {
            ready_instances(a).len() == 6
        })
        .await;
    let spread = per_node(&app);
    assert_eq!(spread.len(), 3, "every node runs some: {spread:?}\n{app:#}");
    // Half in dc2 (node 3 alone), half in dc1 (nodes 1 and 2).
    assert_eq!(spread.get("rig-node-3"), Some(&3), "{spread:?}");
    for instance in ready_instances(&app) {
        let address = instance["address"].as_str().unwrap();
        assert!(
            address.starts_with("10.77.0.1"),
            "a node's address: {address}"
        );
        assert_eq!(hit(&instance)["app"], "web");
    }

    // Every node, with the engine's state and its datacenter, and instances placed in them.
    let nodes = server.get("/api/v1/nodes").await;
    let listed: BTreeMap<String, (String, String)> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                (
                    n["state"].as_str().unwrap().to_string(),
                    n["datacenter"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    let ready = |dc: &str| ("ready".to_string(), dc.to_string());
    assert_eq!(
        listed,
        BTreeMap::from([
            ("rig-node-1".to_string(), ready("dc1")),
            ("rig-node-2".to_string(), ready("dc1")),
            ("rig-node-3".to_string(), ready("dc2")),
        ]),
        "{nodes:#}"
    );
    let topology = server.get("/api/v1/topology").await.to_string();
    assert!(
        topology.contains("dc2") && topology.contains("rig-node-3"),
        "{topology}"
    );

    // The other nodes are measured by the node agent Berth keeps on their engines: CPU (a
    // share needs two readings), memory (the rig's nodes share this machine's kernel, so its
    // total) and the node's own data root.
    let host_memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        * 1024;
    let measured = |nodes: &Value| {
        ["rig-node-2", "rig-node-3"].iter().all(|name| {
            nodes["nodes"].as_array().unwrap().iter().any(|n| {
                n["name"] == *name && n["measured"] == true && n["usage"]["cpu_percent"].is_number()
            })
        })
    };
    wait_until(
        "nodes 2 and 3 measured by their agents",
        ROLLOUT,
        || async { measured(&server.get("/api/v1/nodes").await) },
    )
    .await;
    let nodes = server.get("/api/v1/nodes").await;
    for (index, name) in ["rig-node-2", "rig-node-3"].iter().enumerate() {
        let node = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == *name)
            .unwrap();
        let usage = &node["usage"];
        assert_eq!(usage["memory"]["total_bytes"], host_memory, "{node:#}");
        let data_root = format!("/var/lib/berth-rig/node-{}", index + 2);
        assert_eq!(usage["disks"][0]["path"], data_root.as_str(), "{node:#}");
        assert!(
            usage["disks"][0]["space"]["total_bytes"].as_u64() > Some(0),
            "{node:#}"
        );
        assert_eq!(node["status"], "ok", "{node:#}");
    }

    // Draining node 2 moves its instances to the other nodes, health-gated: each one's
    // replacement is ready before it stops, so 6 stay ready throughout.
    assert!(per_node(&app).contains_key("rig-node-2"), "{app:#}");
    let out = server.cli(&["nodes", "drain", "rig-node-2"]);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(&["nodes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ready, drain"), "{text}");
    let drained_by = Instant::now() + ROLLOUT;
    let mut lowest = usize::MAX;
    let app = loop {
        let app = server.app("web").await;
        let ready = ready_instances(&app).len();
        lowest = lowest.min(ready);
        if ready == 6 && !per_node(&app).contains_key("rig-node-2") {
            break app;
        }
        assert!(Instant::now() < drained_by, "node 2 not drained: {app:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        lowest, 6,
        "ready instances fell to {lowest} during the drain"
    );
    assert_eq!(per_node(&app).get("rig-node-3"), Some(&3), "{app:#}");
    let events = server.events("web").await;
    assert!(
        events
            .iter()
            .any(|e| e["params"]["cause"] == "node_drained"),
        "the events say why: {events:#?}"
    );
    let out = server.cli(&["nodes", "activate", "rig-node-2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        node_spec(
            &manager,
            "rig-node-2",
            "{{.Spec.Availability}} {{json .Spec.Labels}}"
        ),
        r#"active {"datacenter":"dc1"}"#,
        "active again, Berth's mark gone"
    );

    // A rolling upgrade on the Swarm: health-gated, never below 6 ready instances; the new
    // revision has a secret file, which Swarm hands to each instance's node.
    let value = format!("swarm-secret-{namespace}");
    let file = std::env::temp_dir().join(format!("{namespace}-secret"));
    std::fs::write(&file, &value).unwrap();
    let out = server.cli_with_stdin(&["secrets", "create", "default/tls-cert"], &file);
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{out:?}");
    server
        .post(
            "/api/v1/apps/web/deploy",
            json!({"env": {"COLOR": "blue"},
                   "secrets": [{"name": "tls-cert", "path": "/run/secrets/tls"}]}),
        )
        .await;
    let (app, lowest) = server
        .watch_rollout("web", Duration::from_millis(100))
        .await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert!(
        lowest >= 6,
        "only {lowest} ready instances during the rollout"
    );
    let ready = ready_instances(&app);
    assert_eq!(ready.len(), 6, "{app:#}");
    for instance in &ready {
        assert_eq!(hit(instance)["revision"], "2");
        let address = instance["address"].as_str().unwrap();
        let (status, body) = berth_testkit::http_get(
            &format!("http://{address}/files?path=/run/secrets/tls"),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!((status, body.as_str()), (200, value.as_str()), "{instance}");
    }
    // One Swarm secret per running instance: the old instances' went with them.
    let file_secrets = Command::new("docker")
        .args(["-H", &manager, "secret", "ls", "-q", "--filter"])
        .arg(format!("label=berth.namespace={namespace}"))
        .output()
        .unwrap();
    let file_secrets = String::from_utf8_lossy(&file_secrets.stdout).to_string();
    assert_eq!(file_secrets.split_whitespace().count(), 6, "{file_secrets}");
    // Logs come from the nodes through the manager.
    let (status, logs) = server
        .call(reqwest::Method::GET, "/api/v1/apps/web/logs?tail=50", None)
        .await;
    assert_eq!(status, 200);
    assert!(logs.to_string().contains("listening on"), "{logs}");

    // Exec and CPU/memory samples reach every node's instances (the workers' through their
    // own engines): the command runs in the instance named, wherever it is.
    for instance in &ready {
        let name = instance["name"].as_str().unwrap();
        let out = server.cli(&[
            "exec",
            "web",
            "--instance",
            name,
            "-T",
            "--",
            "/berth-testapp",
            "run",
            "hostname",
        ]);
        assert!(
            out.status.success(),
            "exec in {name} on {}: {out:?}",
            instance["node"]
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            hit(instance)["hostname"].as_str().unwrap(),
            "the command ran in {name} on {}",
            instance["node"]
        );
    }
    let on_node_3 = ready
        .iter()
        .find(|i| i["node"] == "rig-node-3")
        .expect("an instance in dc2");
    let out = server.cli(&[
        "exec",
        "web",
        "--instance",
        on_node_3["name"].as_str().unwrap(),
        "-T",
        "--",
        "/berth-testapp",
        "run",
        "exit",
        "3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the exit code comes back from node 3: {out:?}"
    );

    // The router reaches the instances on every node: twelve requests in turn through it
    // answer from instances on all three.
    let node_of: BTreeMap<String, String> = ready
        .iter()
        .map(|i| {
            (
                hit(i)["hostname"].as_str().unwrap().to_string(),
                i["node"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut routed_to = BTreeSet::new();
    for _ in 0..12 {
        let answer = client
            .get(format!("http://127.0.0.1:{}/", server.router_port))
            .header("Host", "web.default.localhost")
            .send()
            .await
            .expect("the router answers");
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        let hostname = body["hostname"].as_str().unwrap();
        routed_to.insert(node_of.get(hostname).cloned().unwrap_or_default());
    }
    assert_eq!(
        routed_to,
        BTreeSet::from(["rig-node-1", "rig-node-2", "rig-node-3"].map(String::from)),
        "{node_of:?}"
    );

    // An app reaches its team's internal app by name from another node, over the team's
    // overlay network.
    server
        .create_app(
            "back",
            1,
            json!({"image": image, "internal": true,
                   "strategy": {"progress_deadline_ms": 8000}}),
        )
        .await;
    let back = server
        .wait_app("back", "1 ready instance", ROLLOUT, |a| {
            ready_instances(a).len() == 1
        })
        .await;
    let back_node = ready_instances(&back)[0]["node"].clone();
    let caller = ready
        .iter()
        .find(|i| i["node"] != back_node)
        .expect("an instance of web on another node than back's");
    let out = server.cli(&[
        "exec",
        "web",
        "--instance",
        caller["name"].as_str().unwrap(),
        "-T",
        "--",
        "/berth-testapp",
        "run",
        "get",
        "back:8080",
        "/whoami",
    ]);
    assert!(
        out.status.success(),
        "web on {} → back on {back_node}: {out:?}",
        caller["node"]
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("back's JSON");
    assert_eq!(answer["app"], "back", "{answer}");

    // A revision that fails its health check on the Swarm rolls back by itself, and the
    // instance of revision 1 keeps serving throughout.
    server
        .post(
            "/api/v1/apps/back/deploy",
            json!({"env": {"FAIL_HEALTH": "1"}}),
        )
        .await;
    let mut lowest = usize::MAX;
    let back = loop {
        let app = server.app("back").await;
        let serving = ready_instances(&app)
            .iter()
            .filter(|i| i["revision"] == 1)
            .count();
        lowest = lowest.min(serving);
        if app["rollout"]["done"] == json!(true) {
            break app;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(back["rollout"]["phase"], "rolled_back", "{back:#}");
    assert_eq!(back["current_revision"], 1, "{back:#}");
    assert!(
        lowest >= 1,
        "revision 1 stopped serving during the failed rollout"
    );
    let message = back["rollout"]["message"].as_str().unwrap();
    assert!(message.contains("HTTP 500"), "{message}");
    let out = server.cli(&["apps", "delete", "back"]);
    assert!(out.status.success(), "{out:?}");
    let app = server
        .wait_app(
            "web",
            "a CPU/memory sample of every instance",
            ROLLOUT,
            |a| {
                let ready = ready_instances(a);
                ready.len() == 6
                    && ready
                        .iter()
                        .all(|i| i["usage"]["memory_bytes"].as_u64().is_some_and(|m| m > 0))
            },
        )
        .await;
    assert!(
        app["usage"]["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{app:#}"
    );

    // Labels set through Berth are the Swarm's: an app constrained to disk==ssd runs only on
    // the node labelled so, and a constraint no node meets is refused with the nodes' labels.
    let out = server.cli(&["nodes", "label", "rig-node-2", "disk=ssd"]);
    assert!(out.status.success(), "{out:?}");
    let swarm_labels: Value =
        serde_json::from_str(&node_spec(&manager, "rig-node-2", "{{json .Spec.Labels}}")).unwrap();
    assert_eq!(swarm_labels, json!({"datacenter": "dc1", "disk": "ssd"}));
    let (status, refused) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/apps/web/deploy",
            Some(json!({"node_constraints": ["disk==nvme"]})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "node_constraints", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rig-node-2 (datacenter=dc1, disk=ssd)"),
        "{refused}"
    );
    let out = server.cli(&["deploy", "web", "--node-constraint", "disk==ssd"]);
    assert!(out.status.success(), "{out:?}");
    let app = server
        .wait_app("web", "6 ready instances on node 2 alone", ROLLOUT, |a| {
            a["rollout"]["phase"] == "complete"
                && ready_instances(a).len() == 6
                && per_node(a).keys().eq(["rig-node-2"])
        })
        .await;
    assert_eq!(
        app["template"]["node_constraints"],
        json!(["disk==ssd"]),
        "{app:#}"
    );
    // Any node again: the next revision spreads over the datacenters once more.
    let out = server.cli(&["deploy", "web", "--no-node-constraints"]);
    assert!(out.status.success(), "{out:?}");
    server
        .wait_app(
            "web",
            "6 ready instances over both datacenters",
            ROLLOUT,
            |a| {
                a["rollout"]["phase"] == "complete"
                    && ready_instances(a).len() == 6
                    && per_node(a).get("rig-node-3") == Some(&3)
            },
        )
        .await;
    // A volume lives on one node, chosen among those its app may run on (node 2 is the only
    // disk==ssd one) and reached through that node's engine; its instances share it there
    // and stay with it across a rollout; it is backed up from there and removed with its pin.
    let store = format!("{namespace}_default_notes");
    let pin = format!("berth.volume.{store}");
    server
        .create_app(
            "notes",
            2,
            json!({"image": image, "volumes": [{"name": "notes", "path": "/data"}],
                   "node_constraints": ["disk==ssd"]}),
        )
        .await;
    let app = server
        .wait_app("notes", "2 ready instances", ROLLOUT, |a| {
            ready_instances(a).len() == 2
        })
        .await;
    assert!(per_node(&app).keys().eq(["rig-node-2"]), "{app:#}");
    let pinned: Value =
        serde_json::from_str(&node_spec(&manager, "rig-node-2", "{{json .Spec.Labels}}")).unwrap();
    assert_eq!(pinned[&pin], "true", "{pinned}");
    let nodes = server.get("/api/v1/nodes").await;
    let node_2 = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "rig-node-2")
        .expect("node 2 is listed");
    assert_eq!(
        node_2["labels"],
        json!({"datacenter": "dc1", "disk": "ssd"}),
        "Berth's pin is not among the labels users see"
    );
    let volumes_on = |node: &str| {
        let out = Command::new("docker")
            .args(["-H", &engines[node], "volume", "ls", "-q"])
            .output()
            .expect("docker volume ls");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(volumes_on("rig-node-2").contains(&store));
    assert!(!volumes_on("rig-node-1").contains(&store));
    let files = |instance: &Value, method: reqwest::Method, query: String| {
        let url = format!(
            "http://{}/files?{query}",
            instance["address"].as_str().unwrap()
        );
        async move {
            let answer = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .request(method, url)
                .send()
                .await
                .expect("the test app answers");
            (
                answer.status().as_u16(),
                answer.text().await.unwrap_or_default(),
            )
        }
    };
    let ready = ready_instances(&app);
    let written = files(
        &ready[0],
        reqwest::Method::PUT,
        "path=/data/note&text=kept".into(),
    )
    .await;
    assert_eq!(written.0, 200, "{written:?}");
    let read = files(&ready[1], reqwest::Method::GET, "path=/data/note".into()).await;
    assert_eq!(
        read,
        (200, "kept".to_string()),
        "the other instance sees it"
    );
    let out = server.cli(&["deploy", "notes", "--env", "ROUND=2"]);
    assert!(out.status.success(), "{out:?}");
    let app = server
        .wait_app("notes", "revision 2 with its volume", ROLLOUT, |a| {
            a["rollout"]["phase"] == "complete"
                && ready_instances(a).len() == 2
                && ready_instances(a).iter().all(|i| i["revision"] == 2)
        })
        .await;
    assert!(per_node(&app).keys().eq(["rig-node-2"]), "{app:#}");
    for instance in ready_instances(&app) {
        let read = files(&instance, reqwest::Method::GET, "path=/data/note".into()).await;
        assert_eq!(read, (200, "kept".to_string()), "{instance}");
    }
    let out = server.cli(&["volumes", "backup", "default/notes"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(tar_entry(&out.stdout, "./note"), "kept");
    // A restore right after scaling to 0: the node lets go of the stopped instances'
    // containers first, and the restored files are what the instances see again.
    let out = server.cli(&["scale", "notes", "0"]);
    assert!(out.status.success(), "{out:?}");
    server
        .wait_app("notes", "no instance", ROLLOUT, |a| {
            a["instances"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let archive = tar_of(dir.path(), &[("note", "restored")]);
    let out = server.cli_with_stdin(&["volumes", "restore", "default/notes"], &archive);
    assert!(out.status.success(), "{out:?}");
    let out = server.cli(&["scale", "notes", "1"]);
    assert!(out.status.success(), "{out:?}");
    let app = server
        .wait_app("notes", "1 ready instance", ROLLOUT, |a| {
            ready_instances(a).len() == 1
        })
        .await;
    assert!(per_node(&app).keys().eq(["rig-node-2"]), "{app:#}");
    let read = files(
        &ready_instances(&app)[0],
        reqwest::Method::GET,
        "path=/data/note".into(),
    )
    .await;
    assert_eq!(read, (200, "restored".to_string()));
    let out = server.cli(&["apps", "delete", "notes", "--delete-volumes"]);
    assert!(out.status.success(), "{out:?}");
    wait_until("the volume and its pin are gone", ROLLOUT, || async {
        !volumes_on("rig-node-2").contains(&store)
            && !node_spec(&manager, "rig-node-2", "{{json .Spec.Labels}}").contains(&pin)
    })
    .await;

    let out = server.cli(&["nodes", "label", "rig-node-2", "disk-"]);
    assert!(out.status.success(), "{out:?}");

    // Node 3 dies: its instances come back on the others.
    rig(&["kill-node", "3"]);
    let died = Instant::now();
    let app = server
        .wait_app("web", "6 ready instances off node 3", ROLLOUT, |a| {
            let spread = per_node(a);
            ready_instances(a).len() == 6 && !spread.contains_key("rig-node-3")
        })
        .await;
    println!(
        "node 3 died: 6 instances ready again on {:?} after {:.1} s",
        per_node(&app),
        died.elapsed().as_secs_f64()
    );
    let events = server.events("web").await;
    assert!(
        events
            .iter()
            .any(|e| e.to_string().contains("node rig-node-3 is down")),
        "an event says why: {events:#?}"
    );
    rig(&["start-node", "3"]);
}
