//! Nodes end to end on the real binary and engine: a small tmpfs as the data directory filled
//! past the disk threshold turns the node low — with the reason, the crossing event and the
//! cluster's "needs another node" — and emptying it recovers the node; labels through the CLI
//! and the API, refused when bad (400 naming the label) or not an admin's (403); an app's node
//! constraints refused when no node meets them, and met once the node is labelled.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::Server;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A tmpfs mounted at a directory, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a tmpfs at {} (tests run as root)",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The free share (percent) of the file system holding `path`, as `stat -f` reads it.
fn free_percent(path: &str) -> f64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %b", path])
        .output()
        .expect("run stat");
    let text = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<f64> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    numbers[0] * 100.0 / numbers[1]
}

/// The only node of the list, as the API shows it.
async fn node(server: &Server) -> Value {
    let list = server.get("/api/v1/nodes").await;
    let nodes = list["nodes"].as_array().expect("nodes").clone();
    assert!(nodes.len() <= 1, "one node: {list}");
    nodes.first().cloned().unwrap_or(Value::Null)
}

/// Polls the node until `check` holds for it; panics after the timeout.
async fn wait_node(server: &Server, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let node = node(server).await;
        if check(&node) {
            return node;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "{what}: not after {TIMEOUT:?}: {node}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_status(server: &Server, want: &str) -> Value {
    wait_node(server, &format!("the node is {want}"), |n| {
        n["status"] == want
    })
    .await
}

fn kinds(events: &Value) -> Vec<String> {
    events
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_data_dir_turns_the_node_low_and_emptying_it_recovers() {
    // The engine's data root is watched too and may itself be short of space on a test
    // machine: a threshold below its free share keeps it out of the way.
    let host_free = free_percent("/var/lib/docker");
    let threshold = (host_free / 2.0).floor().min(10.0);
    assert!(
        threshold >= 1.0,
        "the engine's disk is nearly full ({host_free:.1} % free)"
    );
    let threshold_flag = format!("{threshold}%");
    // Declared first, so it is unmounted after the server has stopped.
    let mounted = std::cell::RefCell::new(None);
    let server = Server::start_prepared(
        "nodes-disk",
        &[
            "--node-sample-interval",
            "300ms",
            "--node-disk-free-min",
            &threshold_flag,
            // Only the disk may make this node low: other engineers' builds keep CPUs busy.
            "--node-cpu-busy-max",
            "100%",
            "--node-memory-free-min",
            "0%",
        ],
        &|dir| *mounted.borrow_mut() = Some(Tmpfs::mount(dir, "512m")),
    )
    .await;
    let _mounted = mounted.into_inner();
    let data_dir = server.data_dir.display().to_string();

    let ok = wait_status(&server, "ok").await;
    let name = ok["name"].as_str().expect("name").to_string();
    assert!(!name.is_empty());
    assert!(ok["capacity"]["cpus"].as_u64().unwrap() > 0, "{ok}");
    let disks = ok["usage"]["disks"].as_array().unwrap().clone();
    let ours = disks
        .iter()
        .find(|d| d["role"] == "berth_data_dir")
        .expect("the data dir is watched");
    assert_eq!(ours["path"], data_dir.as_str());
    assert_eq!(ours["space"]["total_bytes"], 512 << 20, "{ours}");
    assert!(
        disks.iter().any(|d| d["role"] == "engine_data_root"),
        "{disks:?}"
    );

    // Fill the tmpfs until half the threshold is free (megabytes still, for SQLite's log).
    let free = ours["space"]["free_bytes"].as_u64().unwrap();
    let filler = server.data_dir.join("filler");
    let size = free - ((512u64 << 20) as f64 * threshold / 200.0) as u64;
    std::fs::write(&filler, vec![7u8; size as usize]).unwrap();

    let low = wait_status(&server, "low").await;
    let reasons = low["reasons"].to_string();
    assert!(
        reasons.contains(&format!("disk {data_dir} "))
            && reasons.contains(&format!("% free (threshold {threshold} %)")),
        "{low}"
    );
    let list = server.get("/api/v1/nodes").await;
    assert_eq!(list["needs_another_node"], true, "{list}");
    assert!(
        list["message"]
            .as_str()
            .unwrap()
            .contains("needs another node"),
        "{list}"
    );
    let events = server.get(&format!("/api/v1/nodes/{name}/events")).await;
    assert_eq!(kinds(&events), ["node_low"], "{events}");
    assert!(
        events[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("disk {data_dir}")),
        "{events}"
    );
    assert_eq!(events[0]["warning"], true);
    let cluster = server.get("/api/v1/cluster/events").await;
    assert_eq!(kinds(&cluster), ["cluster_needs_node"], "{cluster}");

    let out = server.cli(&["nodes"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LOW"), "{text}");
    assert!(text.contains(&format!("disk {data_dir} ")), "{text}");
    assert!(text.contains("the cluster needs another node"), "{text}");

    std::fs::remove_file(&filler).unwrap();
    wait_status(&server, "ok").await;
    let events = server.get(&format!("/api/v1/nodes/{name}/events")).await;
    assert_eq!(kinds(&events), ["node_low", "node_recovered"], "{events}");
    let cluster = server.get("/api/v1/cluster/events").await;
    assert_eq!(
        kinds(&cluster),
        ["cluster_needs_node", "cluster_has_room"],
        "{cluster}"
    );
    let list = server.get("/api/v1/nodes").await;
    assert_eq!(list["needs_another_node"], false, "{list}");
    let out = server.cli(&["nodes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("needs another node"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_are_set_by_admins_through_the_cli_and_the_api() {
    let server = Server::start_with("nodes-labels", &["--node-sample-interval", "300ms"]).await;
    let sampled = wait_node(&server, "the node is sampled", |n| n["name"].is_string()).await;
    let name = sampled["name"].as_str().unwrap().to_string();

    let out = server.cli(&[
        "nodes",
        "label",
        &name,
        "datacenter=dc1",
        "zone=a",
        "rack=r7",
    ]);
    assert!(out.status.success(), "{out:?}");
    let shown = server.get(&format!("/api/v1/nodes/{name}")).await;
    assert_eq!(
        shown["labels"],
        json!({"datacenter": "dc1", "zone": "a", "rack": "r7"})
    );
    assert_eq!(shown["datacenter"], "dc1");
    assert_eq!(shown["zone"], "a");

    let out = server.cli(&["nodes", "label", &name, "zone-", "rack=r8"]);
    assert!(out.status.success(), "{out:?}");
    let shown = server.get(&format!("/api/v1/nodes/{name}")).await;
    assert_eq!(shown["labels"], json!({"datacenter": "dc1", "rack": "r8"}));
    assert_eq!(shown["zone"], Value::Null);
    let out = server.cli(&["nodes", "show", &name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dc1") && text.contains("rack=r8"), "{text}");

    // Bad input: 400 naming the label, nothing changed.
    let labels = format!("/api/v1/nodes/{name}/labels");
    for (bad, field) in [
        (json!({"Zone": "a"}), "labels.Zone"),
        (json!({"zone": "a b"}), "labels.zone"),
        (json!({"-x": "1"}), "labels.-x"),
    ] {
        let (status, answer) = server
            .call(Method::PUT, &labels, Some(json!({ "labels": bad })))
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_field", "{answer}");
    }
    let out = server.cli(&["nodes", "label", &name, "zone"]);
    assert!(!out.status.success());
    let (status, _) = server
        .call(
            Method::PUT,
            "/api/v1/nodes/no-such-node/labels",
            Some(json!({"labels": {}})),
        )
        .await;
    assert_eq!(status, 404);
    let shown = server.get(&format!("/api/v1/nodes/{name}")).await;
    assert_eq!(shown["labels"], json!({"datacenter": "dc1", "rack": "r8"}));

    // API: replace whole.
    let (status, answer) = server
        .call(
            Method::PUT,
            &labels,
            Some(json!({"labels": {"datacenter": "dc2", "zone": "b"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["labels"], json!({"datacenter": "dc2", "zone": "b"}));

    // A member sees nodes but may not label them nor read their events.
    let member = server.register("nodes-member", Some("nodes-team")).await;
    let (status, list) = server
        .call_as(&member, Method::GET, "/api/v1/nodes", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["nodes"][0]["labels"]["datacenter"], "dc2");
    let (status, answer) = server
        .call_as(
            &member,
            Method::PUT,
            &labels,
            Some(json!({"labels": {"zone": "c"}})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    let (status, _) = server
        .call_as(
            &member,
            Method::GET,
            &format!("/api/v1/nodes/{name}/events"),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .call_as(&member, Method::GET, "/api/v1/cluster/events", None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = server.call_as("", Method::GET, "/api/v1/nodes", None).await;
    assert_eq!(status, 401);

    // Availability: admins only, a known value, and a single engine cannot drain its one node.
    let availability = format!("/api/v1/nodes/{name}/availability");
    let (status, answer) = server
        .call_as(
            &member,
            Method::PUT,
            &availability,
            Some(json!({"availability": "drain"})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = server
        .call(
            Method::PUT,
            &availability,
            Some(json!({"availability": "away"})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "availability", "{answer}");
    let (status, answer) = server
        .call(
            Method::PUT,
            &availability,
            Some(json!({"availability": "drain"})),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "engine_unsupported", "{answer}");
    let node = server.get(&format!("/api/v1/nodes/{name}")).await;
    assert_eq!(node["availability"], "active", "{node}");
    assert_eq!(node["role"], "standalone", "{node}");

    // Audited.
    let audit = server.get("/api/v1/audit?action=nodes.labels.put").await;
    let entries = audit.as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["object"] == format!("nodes/{name}") && e["outcome"] == "success"),
        "{audit}"
    );
    assert!(entries.iter().any(|e| e["outcome"] == "denied"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_goes_only_where_its_node_constraints_hold() {
    let server = Server::start_with("nodes-placement", &["--node-sample-interval", "300ms"]).await;
    let sampled = wait_node(&server, "the node is sampled", |n| n["name"].is_string()).await;
    let name = sampled["name"].as_str().unwrap().to_string();
    let create = |constraints: Value| {
        json!({"name": "web", "image": berth_testkit::TESTAPP_IMAGE, "replicas": 1,
               "health_path": "/healthz", "node_constraints": constraints})
    };

    // Bad input names the constraint; a constraint no node meets names the nodes' labels.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(create(json!(["disk==ssd", "disk=ssd"]))),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "node_constraints[1]", "{answer}");
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(create(json!(["disk==ssd"]))),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "node_constraints", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no node meets disk==ssd")
            && message.contains(&format!("{name} (no labels)")),
        "{message}"
    );
    let (status, _) = server.call(Method::GET, "/api/v1/apps/web", None).await;
    assert_eq!(status, 404, "nothing was created");

    // Labelled, the node takes the app; the CLI shows where it may run.
    let out = server.cli(&["nodes", "label", &name, "disk=ssd", "zone=a"]);
    assert!(out.status.success(), "{out:?}");
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(create(json!(["disk==ssd", "zone!=b"]))),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let app = server.wait_rollout("web", TIMEOUT).await;
    assert_eq!(app["rollout"]["phase"], "complete", "{app:#}");
    assert_eq!(
        app["template"]["node_constraints"],
        json!(["disk==ssd", "zone!=b"])
    );
    let out = server.cli(&["apps", "show", "web"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("placement:  nodes with disk==ssd and zone!=b"),
        "{text}"
    );

    // A deploy no node meets is refused and changes nothing; one nobody else may make
    // learns nothing of the nodes.
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/web/deploy",
            Some(json!({"node_constraints": ["zone==b"], "env": {"COLOR": "red"}})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "node_constraints", "{answer}");
    let app = server.app("web").await;
    assert_eq!(app["current_revision"], 1, "{app:#}");
    let outsider = server
        .register("placement-outsider", Some("placement-team"))
        .await;
    let (status, answer) = server
        .call_as(
            &outsider,
            Method::POST,
            "/api/v1/apps/web/deploy",
            Some(json!({"node_constraints": ["zone==b"]})),
        )
        .await;
    assert!(status == 403 || status == 404, "{status} {answer}");

    // Any node again: a new revision without constraints.
    let out = server.cli(&["deploy", "web", "--no-node-constraints"]);
    assert!(out.status.success(), "{out:?}");
    let app = server.wait_rollout("web", TIMEOUT).await;
    assert_eq!(app["current_revision"], 2, "{app:#}");
    assert_eq!(app["template"]["node_constraints"], json!([]), "{app:#}");
}

/// Kills and reaps a child process when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The node agent of the real binary on the real engine: its image (the executable, its
/// interpreter and shared objects, from the running binary's own maps) is imported, its
/// container runs with no network, a read-only root, no capabilities and the host's /proc
/// and the engine's data root read-only, and a reading (an exec) reports this host's memory,
/// CPU ticks and the data root's disk. The next reading reuses the same container; one
/// removed meanwhile is made again.
#[tokio::test]
async fn the_node_agent_reads_the_host_from_its_container() {
    use berth_engine::DockerEngine;
    use berth_engine::node_agent::{CONTAINER_NAME, NodeAgent};

    // The agent is made of the binary as it runs: a `node-agent wait` of it shows its maps.
    let berth = env!("CARGO_BIN_EXE_berth");
    let running = Reaped(
        Command::new(berth)
            .args(["node-agent", "wait"])
            .spawn()
            .expect("start berth node-agent wait"),
    );
    let maps_path = format!("/proc/{}/maps", running.0.id());
    let mut maps = String::new();
    for _ in 0..100 {
        maps = std::fs::read_to_string(&maps_path).unwrap_or_default();
        if maps.contains("libc") || maps.lines().count() > 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let work = tempfile::tempdir().unwrap();
    let agent = NodeAgent::of_executable(
        Path::new(berth),
        &maps,
        work.path().to_path_buf(),
        vec!["node-agent".into(), "wait".into()],
        vec!["node-agent".into(), "read".into()],
    )
    .unwrap();
    drop(running);
    let _ = Command::new("docker")
        .args(["rm", "-f", CONTAINER_NAME])
        .output();
    let _ = Command::new("docker")
        .args(["rmi", "-f", agent.image()])
        .output();

    let engine = DockerEngine::connect_with(None).unwrap();
    let output = engine.read_host_with_agent(&agent).await.unwrap();
    let reading = berth_controller::host::parse_report(&output).unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_total_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert_eq!(
        reading.memory.unwrap().total_bytes,
        mem_total_kib * 1024,
        "the host's memory, not the container's"
    );
    assert!(
        reading
            .cpu
            .is_some_and(|c| c.total > 0 && c.busy <= c.total)
    );
    let data_root = docker_output(&["info", "--format", "{{.DockerRootDir}}"]);
    assert_eq!(reading.disks.len(), 1);
    assert_eq!(reading.disks[0].path, data_root);
    assert!(reading.disks[0].space.is_some_and(|s| s.total_bytes > 0));

    // The container as made: confined.
    let inspect: Value =
        serde_json::from_str(&docker_output(&["inspect", CONTAINER_NAME])).unwrap();
    let host_config = &inspect[0]["HostConfig"];
    assert_eq!(host_config["NetworkMode"], "none");
    assert_eq!(host_config["ReadonlyRootfs"], true);
    assert_eq!(host_config["CapDrop"], json!(["ALL"]));
    let mounts = inspect[0]["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    assert!(mounts.iter().all(|m| m["RW"] == false), "{mounts:?}");
    let id = inspect[0]["Id"].as_str().unwrap().to_owned();

    // The next reading reuses it; removed, it is made again.
    engine.read_host_with_agent(&agent).await.unwrap();
    assert_eq!(
        docker_output(&["inspect", "--format", "{{.Id}}", CONTAINER_NAME]),
        id
    );
    support::docker(&["rm", "-f", CONTAINER_NAME]);
    let again = engine.read_host_with_agent(&agent).await.unwrap();
    assert!(berth_controller::host::parse_report(&again).is_ok());
    assert_ne!(
        docker_output(&["inspect", "--format", "{{.Id}}", CONTAINER_NAME]),
        id
    );

    support::docker(&["rm", "-f", CONTAINER_NAME]);
    support::docker(&["rmi", "-f", agent.image()]);
}

/// What a docker command prints, trimmed (it must succeed).
fn docker_output(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker");
    assert!(output.status.success(), "docker {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
