//! End-to-end: `berth backup` of a running installation (an app from the built-in registry
//! with a secret, a hosted git repository), then everything destroyed — containers, the
//! engine's copy of the image, the data directory — and `berth restore` into a fresh one: the
//! server starts on it and the app comes back, pulled from the restored registry, with its
//! secret.

mod support;

use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::git_repo::{git, git_output, init};
use support::{LocalImages, Server, docker, docker_as, ready_instances, wait_until};

const ROLLOUT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "backed-up-9c41e7";

/// The test app's `/env` of the app's ready instance.
async fn instance_env(server: &Server, app: &str) -> Value {
    wait_until("one ready instance", ROLLOUT, || async {
        ready_instances(&server.app(app).await).len() == 1
    })
    .await;
    let instance = ready_instances(&server.app(app).await)[0].clone();
    let address = instance["address"].as_str().expect("address").to_string();
    let body = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{address}/env"))
        .send()
        .await
        .expect("the test app answers")
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).expect("env JSON")
}

/// `berth restore FILE --data-dir DIR`.
fn restore(file: &std::path::Path, data_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("restore")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run berth restore")
}

/// The names of a tar archive's entries, in order.
fn entries(file: &std::path::Path) -> Vec<String> {
    let mut archive = tar::Archive::new(std::fs::File::open(file).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_brings_the_installation_back_on_an_empty_data_directory() {
    let mut server = Server::start("backup").await;
    let namespace = server.namespace.namespace().to_string();
    let host = format!("127.0.0.1:{}", server.port);
    let image = format!("{host}/default/{namespace}:v1");
    let _cleanup = LocalImages(vec![image.clone()]);
    let config = tempfile::tempdir().unwrap();
    docker_as(
        config.path(),
        &["login", &host, "-u", "admin", "--password", &server.token],
    );
    docker_as(
        config.path(),
        &["tag", &berth_testkit::testapp_image(), &image],
    );
    docker_as(config.path(), &["push", &image]);
    docker_as(config.path(), &["rmi", &image]);

    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("password");
    std::fs::write(&secret, PASSWORD).unwrap();
    let out = server.cli_with_stdin(&["secrets", "create", "default/db-password"], &secret);
    assert!(out.status.success(), "{out:?}");
    server
        .create_app(
            "web",
            1,
            json!({"image": image, "secrets": [{"name": "db-password", "env": "DB_PASSWORD"}]}),
        )
        .await;
    server.wait_rollout("web", ROLLOUT).await;
    assert_eq!(instance_env(&server, "web").await["DB_PASSWORD"], PASSWORD);

    // A hosted repository with a branch the pipeline does not build.
    let (status, pipeline) = server
        .call(
            Method::PUT,
            "/api/v1/pipelines/default/site",
            Some(json!({"branch_pattern": "main", "target_repository": "default/site"})),
        )
        .await;
    assert_eq!(status, 201, "{pipeline}");
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    init(&repo);
    std::fs::write(repo.join("README"), "kept\n").unwrap();
    git(&repo, &["add", "README"]);
    git(&repo, &["commit", "--quiet", "-m", "kept"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    let remote = format!("http://admin:{}@{host}/git/default/site.git", server.token);
    let pushed = git_output(&repo, &["push", &remote, "main:keep"]);
    assert!(pushed.status.success(), "{pushed:?}");

    // Only an admin backs up.
    let member = server.register("backup-member", None).await;
    let (status, refused) = server
        .call_as(&member, Method::POST, "/api/v1/system/backups", None)
        .await;
    assert_eq!(status, 403, "{refused}");

    let backup = work.path().join("berth.tar");
    let out = server.cli(&["backup", "-o", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("backed up the installation"));
    let names = entries(&backup);
    assert_eq!(names.first().map(String::as_str), Some("BACKUP.json"));
    assert_eq!(names.last().map(String::as_str), Some("BACKUP-END"));
    for wanted in [
        "data/berth.db",
        "data/secret-key",
        "data/registry/blobs",
        "data/git/default/site.git/objects",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(wanted)),
            "{wanted} in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.ends_with("-wal")), "{names:?}");
    let audit = server
        .get("/api/v1/audit?action=system.backups.create")
        .await;
    assert_eq!(audit[0]["actor"], "admin", "{audit}");

    // Restoring over the running installation is refused.
    let refused = restore(&backup, &server.data_dir);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop it first"),
        "{refused:?}"
    );

    // Destroy: the server, its containers and claim, the image's local copy, its data.
    server.stop();
    for id in support::containers_of(&namespace, "web") {
        docker(&["rm", "-f", &id]);
    }
    docker(&["volume", "rm", &format!("{namespace}-installation")]);
    // The engine pulled the image for the first instance: only the registry keeps it now.
    docker(&["rmi", &image]);
    std::fs::remove_dir_all(&server.data_dir).unwrap();

    let restored = restore(&backup, &server.data_dir);
    assert!(restored.status.success(), "{restored:?}");
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(said.contains(&format!("namespace {namespace}")), "{said}");

    // The same server settings on the restored data directory.
    server.restart().await;
    let env = instance_env(&server, "web").await;
    assert_eq!(
        env["DB_PASSWORD"], PASSWORD,
        "the key and the secret came back"
    );
    let app = server.app("web").await;
    assert_eq!(app["template"]["image"], image.as_str(), "{app:#}");
    let listed = git(&repo, &["ls-remote", &remote, "keep"]);
    assert!(listed.starts_with(&commit), "{listed}");
    let audit = server
        .get("/api/v1/audit?action=system.backups.create")
        .await;
    assert!(audit.as_array().is_some_and(|e| !e.is_empty()), "{audit}");
}
