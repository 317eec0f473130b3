//! End-to-end: persistent volumes on the real engine — a file written through one revision is
//! read by the next ones, after the instance is killed and after the server restarts;
//! per-instance volumes give each instance its own store; bad mounts are refused naming the
//! field with nothing created; a mounted volume cannot be deleted or restored; backup and
//! restore go through the CLI as tar streams, a hostile archive refused with the volume
//! intact; deleting an app keeps its volumes unless asked; another team sees nothing.

mod support;

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, assert_refused, docker, ready_instances, tar_entry, tar_of, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);

/// `GET|PUT /files` of the test app on one instance.
async fn file(instance: &Value, method: &str, path: &str, text: Option<&str>) -> (u16, String) {
    let address = instance["address"].as_str().expect("instance address");
    let mut url = format!("http://{address}/files?path={path}");
    if let Some(text) = text {
        url.push_str(&format!("&text={text}"));
    }
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method.parse().unwrap(), url)
        .send()
        .await
        .expect("the test app answers");
    let status = answer.status().as_u16();
    (status, answer.text().await.unwrap_or_default())
}

async fn only_instance(server: &Server, app: &str) -> Value {
    server.wait_rollout(app, ROLLOUT).await;
    wait_until("one ready instance", ROLLOUT, || async {
        ready_instances(&server.app(app).await).len() == 1
    })
    .await;
    ready_instances(&server.app(app).await)[0].clone()
}

fn engine_volumes(namespace: &str) -> Vec<String> {
    // Apps' volumes carry their team; the namespace's claim (`<ns>-installation`) does not.
    let out = Command::new("docker")
        .args(["volume", "ls", "-q", "--filter"])
        .arg(format!("label=berth.namespace={namespace}"))
        .args(["--filter", "label=berth.team"])
        .output()
        .expect("docker volume ls");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_in_a_volume_outlives_rollouts_kills_and_restarts() {
    let mut server = Server::start("volumes").await;
    let namespace = server.namespace.namespace().to_string();
    server
        .create_app(
            "notes",
            1,
            json!({"volumes": [{"name": "data", "path": "/data"}], "strategy": {"kind": "recreate"}}),
        )
        .await;
    let first = only_instance(&server, "notes").await;
    let written = file(&first, "PUT", "/data/note", Some("kept")).await;
    assert_eq!(written.0, 200, "{written:?}");

    // Two rollouts (the CLI's --volume form), then the instance killed.
    for round in ["1", "2"] {
        let out = server.cli(&[
            "deploy",
            "notes",
            "--env",
            &format!("ROUND={round}"),
            "--volume",
            "data:/data",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let instance = only_instance(&server, "notes").await;
        assert_eq!(
            instance["revision"],
            json!(round.parse::<u32>().unwrap() + 1)
        );
        let read = file(&instance, "GET", "/data/note", None).await;
        assert_eq!(read, (200, "kept".to_string()), "revision {round}");
    }
    let victim = only_instance(&server, "notes").await;
    docker(&[
        "kill",
        victim["container_id"].as_str().expect("container id"),
    ]);
    wait_until("a replacement is ready", ROLLOUT, || async {
        let ready = ready_instances(&server.app("notes").await);
        ready.len() == 1 && ready[0]["name"] != victim["name"]
    })
    .await;
    let replacement = ready_instances(&server.app("notes").await)[0].clone();
    let read = file(&replacement, "GET", "/data/note", None).await;
    assert_eq!(read, (200, "kept".to_string()), "after the kill");
    server.restart().await;
    let after = only_instance(&server, "notes").await;
    let read = file(&after, "GET", "/data/note", None).await;
    assert_eq!(
        read,
        (200, "kept".to_string()),
        "after the server restarted"
    );

    // The volume as the API and the CLI show it.
    let volume = server.get("/api/v1/teams/default/volumes/data").await;
    assert_eq!(volume["scope"], "shared");
    assert_eq!(volume["used_by"], json!(["notes"]));
    let shown = server.cli(&["apps", "show", "notes"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("volume:     data:/data"));
    let listed = server.cli(&["volumes", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        listed.contains("default/data") && listed.contains("notes"),
        "{listed}"
    );

    // Per-instance volumes: each instance its own store, one slot each.
    server
        .create_app(
            "cache",
            2,
            json!({"volumes": [{"name": "scratch", "path": "/scratch", "scope": "per_instance"}]}),
        )
        .await;
    server.wait_rollout("cache", ROLLOUT).await;
    let pair = ready_instances(&server.app("cache").await);
    assert_eq!(pair.len(), 2);
    let (a, b) = (pair[0].clone(), pair[1].clone());
    assert_eq!(file(&a, "PUT", "/scratch/mine", Some("a")).await.0, 200);
    let seen = (
        file(&a, "GET", "/scratch/mine", None).await,
        file(&b, "GET", "/scratch/mine", None).await,
    );
    assert_eq!(seen.0, (200, "a".to_string()));
    assert_eq!(
        seen.1.0, 404,
        "the other instance has a store of its own: {seen:?}"
    );
    let scratch = server.get("/api/v1/teams/default/volumes/scratch").await;
    assert_eq!(scratch["scope"], "per_instance");
    assert_eq!(scratch["slots"], json!([0, 1]), "{scratch}");

    // Bad mounts: refused naming the field, no app made.
    for (volumes, field, says) in [
        (
            json!([{"name": "data", "path": "data"}]),
            "template.volumes[0].path",
            "absolute",
        ),
        (
            json!([{"name": "other/data", "path": "/d"}]),
            "template.volumes[0].name",
            "own team",
        ),
        (
            json!([{"name": "data", "path": "/d", "scope": "per_instance"}]),
            "template.volumes[0].scope",
            "is shared",
        ),
        (
            json!([{"name": "scratch", "path": "/d", "scope": "per_instance"}]),
            "template.volumes[0].scope",
            "app cache mounts it",
        ),
    ] {
        let (status, answer) = server
            .call(
                Method::POST,
                "/api/v1/apps",
                Some(json!({"name": "bad", "image": berth_testkit::TESTAPP_IMAGE, "volumes": volumes})),
            )
            .await;
        assert_refused(status, &answer, 400, says);
        assert_eq!(answer["error"]["field"], field, "{answer}");
        let (status, _) = server.call(Method::GET, "/api/v1/apps/bad", None).await;
        assert_eq!(status, 404, "nothing half-created");
    }

    // A mounted volume is neither deleted nor restored.
    let (status, answer) = server
        .call(Method::DELETE, "/api/v1/teams/default/volumes/data", None)
        .await;
    assert_refused(status, &answer, 409, "mounted by app notes");
    let dir = tempfile::tempdir().unwrap();
    let archive = tar_of(dir.path(), &[("restored.txt", "from the archive")]);
    let out = server.cli_with_stdin(&["volumes", "restore", "default/data"], &archive);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("scale them to 0"),
        "{out:?}"
    );

    // Backup through the CLI: the file is in the tar stream.
    let out = server.cli(&["volumes", "backup", "default/data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tar_entry(&out.stdout, "./note"), "kept");

    // Restore once nothing runs: a hostile archive is refused and changes nothing, a good
    // one replaces the files.
    let out = server.cli(&["scale", "notes", "0"]);
    assert!(out.status.success());
    wait_until("notes has no instance", ROLLOUT, || async {
        server.app("notes").await["instances"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    let hostile = dir.path().join("hostile.tar");
    std::fs::write(&hostile, hostile_archive()).unwrap();
    let out = server.cli_with_stdin(&["volumes", "restore", "default/data"], &hostile);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("archive") && said.contains("outside the volume"),
        "{said}"
    );
    let out = server.cli(&["volumes", "backup", "default/data"]);
    assert_eq!(
        tar_entry(&out.stdout, "./note"),
        "kept",
        "the refused restore changed nothing"
    );
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/teams/default/volumes/data/archive?slot=1",
            None,
        )
        .await;
    assert_refused(status, &answer, 400, "is shared");
    let out = server.cli_with_stdin(&["volumes", "restore", "default/data"], &archive);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.cli(&["scale", "notes", "1"]).status.success());
    let back = only_instance(&server, "notes").await;
    let read = (
        file(&back, "GET", "/data/restored.txt", None).await,
        file(&back, "GET", "/data/note", None).await,
    );
    assert_eq!(read.0, (200, "from the archive".to_string()));
    assert_eq!(read.1.0, 404, "a restore replaces what was there");

    // The team's volume storage quota: a restore beyond it is refused before anything
    // changes, and no new volume is made once the team is at it.
    let limit = |bytes: Value| json!({"quota": {"volume_bytes": bytes}});
    let (status, team) = server
        .call(
            Method::PATCH,
            "/api/v1/teams/default",
            Some(limit(json!(1000))),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["quota"]["volume_bytes"], 1000, "{team}");
    let big = tempfile::tempdir().unwrap();
    let big_archive = tar_of(big.path(), &[("big.txt", &"x".repeat(20_000))]);
    assert!(server.cli(&["scale", "notes", "0"]).status.success());
    wait_until("notes has no instance", ROLLOUT, || async {
        server.app("notes").await["instances"]
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
    let out = server.cli_with_stdin(&["volumes", "restore", "default/data"], &big_archive);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success() && said.contains("volume storage"),
        "{said}"
    );
    let (status, team) = server
        .call(
            Method::PATCH,
            "/api/v1/teams/default",
            Some(limit(json!(0))),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "fresh", "image": berth_testkit::TESTAPP_IMAGE,
                "volumes": [{"name": "fresh-data", "path": "/d"}]}),
            ),
        )
        .await;
    assert_refused(status, &answer, 403, "volume storage");
    let (status, _) = server
        .call(
            Method::GET,
            "/api/v1/teams/default/volumes/fresh-data",
            None,
        )
        .await;
    assert_eq!(status, 404, "no volume made");
    let (status, team) = server
        .call(
            Method::PATCH,
            "/api/v1/teams/default",
            Some(limit(Value::Null)),
        )
        .await;
    assert_eq!(status, 200, "{team}");
    assert!(server.cli(&["scale", "notes", "1"]).status.success());

    // Another team sees nothing of these volumes.
    let stranger = server.register("stranger", Some("elsewhere")).await;
    let (status, _) = server
        .call_as(
            &stranger,
            Method::GET,
            "/api/v1/teams/default/volumes",
            None,
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");
    let (status, _) = server
        .call_as(
            &stranger,
            Method::GET,
            "/api/v1/teams/default/volumes/data/archive",
            None,
        )
        .await;
    assert!(status == 403 || status == 404, "{status}");
    let (_, mine) = server
        .call_as(&stranger, Method::GET, "/api/v1/volumes", None)
        .await;
    assert_eq!(mine["volumes"], json!([]), "{mine}");

    // Deleting an app keeps its volume unless asked; then the volume is deleted alone.
    let out = server.cli(&["apps", "delete", "notes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("volumes kept: default/data"));
    let kept = server.get("/api/v1/teams/default/volumes/data").await;
    assert_eq!(kept["used_by"], json!([]));
    let data_store = format!("{namespace}_default_data");
    assert!(engine_volumes(&namespace).contains(&data_store));
    let out = server.cli(&["volumes", "delete", "default/data"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the data is removed", ROLLOUT, || async {
        !engine_volumes(&namespace).contains(&data_store)
    })
    .await;
    let out = server.cli(&["apps", "delete", "cache", "--delete-volumes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = server
        .call(Method::GET, "/api/v1/teams/default/volumes/scratch", None)
        .await;
    assert_eq!(status, 404);
    wait_until("the per-instance stores are removed", ROLLOUT, || async {
        engine_volumes(&namespace).is_empty()
    })
    .await;
}

/// A tar archive whose second entry climbs out of the volume.
fn hostile_archive() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for name in ["fine.txt", "../../escape.txt"] {
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        let field = &mut header.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, &b"hi"[..]).unwrap();
    }
    builder.into_inner().unwrap()
}
