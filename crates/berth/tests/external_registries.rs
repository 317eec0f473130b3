//! End-to-end: an external registry — Debian's `docker-registry` (Distribution 2.8) with an
//! htpasswd user — configured in the real `berth server`, browsed, inspected and cleaned up
//! through the API and the CLI by its team, hidden from other teams, and its password never
//! shown nor stored in plaintext.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, wait_until};

const DIST_USER: &str = "berth-ci";

/// A Distribution registry on a free loopback port, storage and config in a temp dir, one
/// htpasswd user, deletes enabled. Stopped when dropped.
struct Distribution {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Distribution {
    fn binary() -> PathBuf {
        let path = std::env::var_os("BERTH_TEST_DISTRIBUTION")
            .map_or_else(|| PathBuf::from("/usr/bin/docker-registry"), PathBuf::from);
        assert!(
            path.exists(),
            "{} is missing: install Debian's Distribution (apt-get install docker-registry) or set BERTH_TEST_DISTRIBUTION",
            path.display()
        );
        path
    }

    async fn start(password: &str) -> Distribution {
        let binary = Self::binary();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Distribution reads bcrypt entries only; cost 4 keeps the test quick.
        let entry = bcrypt::hash(password, 4).unwrap();
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("{DIST_USER}:{entry}\n"),
        )
        .unwrap();
        let config = format!(
            "version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
  secret: berth-test-secret
auth:
  htpasswd:
    realm: berth-test
    path: {htpasswd}
",
            data = dir.path().join("data").display(),
            htpasswd = dir.path().join("htpasswd").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Distribution { child, port, dir };
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://{}/v2/", registry.host());
        wait_until(
            "Distribution answers /v2/",
            Duration::from_secs(30),
            || async { http.get(&url).send().await.is_ok_and(|r| r.status() == 401) },
        )
        .await;
        registry
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- docker-registry log ----\n{}", self.log());
        }
    }
}

/// Copies the test app image from the local engine into the registry with skopeo.
fn push(image: &str, destination: &str, password: &str) {
    let output = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
        .arg(format!("{DIST_USER}:{password}"))
        .arg(format!("docker-daemon:{image}"))
        .arg(format!("docker://{destination}"))
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo copy {image} {destination}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An API path under the external registry `dist`'s images.
fn images(rest: &str) -> String {
    format!("/api/v1/registries/dist/images{rest}")
}

/// Every answer the test saw, to check that the password is in none of them.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    /// Calls the API with `token` and keeps the answer.
    async fn call(
        &mut self,
        server: &Server,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let answer = server.call_as(token, method, path, body).await;
        self.0.push(answer.1.to_string());
        answer
    }

    /// `PUT /api/v1/registries/{name}` as the first admin.
    async fn put_registry(&mut self, server: &Server, name: &str, body: Value) -> (u16, Value) {
        let path = format!("/api/v1/registries/{name}");
        self.call(server, &server.token, Method::PUT, &path, Some(body))
            .await
    }

    async fn get(&mut self, server: &Server, token: &str, path: &str) -> (u16, Value) {
        self.call(server, token, Method::GET, path, None).await
    }

    async fn delete(&mut self, server: &Server, token: &str, path: &str) -> (u16, Value) {
        self.call(server, token, Method::DELETE, path, None).await
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn all_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_inspect_and_delete_an_external_registry() {
    let mut server = Server::start("extreg").await;
    let password = format!("dist-pw-{}", std::process::id());
    let dist = Distribution::start(&password).await;
    let host = dist.host();
    let image = berth_testkit::testapp_image();
    push(&image, &format!("{host}/shop/web:v1"), &password);
    push(&image, &format!("{host}/shop/web:v2"), &password);
    push(&image, &format!("{host}/shop/tools:latest"), &password);

    let alice = server.register("alice", Some("shop")).await;
    let bob = server.register("bob", Some("other")).await;
    let carol = server.register("carol", None).await;
    let mut seen = Transcript::default();
    let (status, body) = seen
        .call(
            &server,
            &alice,
            Method::PUT,
            "/api/v1/teams/shop/members/carol",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Only platform admins configure registries; bad input changes nothing.
    let config = json!({
        "team": "shop", "url": format!("http://{host}"), "username": DIST_USER, "password": password,
    });
    let (status, body) = seen
        .call(
            &server,
            &alice,
            Method::PUT,
            "/api/v1/registries/dist",
            Some(config.clone()),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    for (change, field) in [
        (json!({"url": "https://registry.example.com"}), "url"),
        (json!({"url": format!("http://{host}/v2/")}), "url"),
        (json!({"team": "no-such-team"}), "team"),
        (json!({"username": "a:b"}), "username"),
    ] {
        let mut bad = config.clone();
        bad.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        let (status, body) = seen.put_registry(&server, "dist", bad).await;
        assert_eq!(status, 400, "{change}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = seen.put_registry(&server, "dist", config.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["has_password"], true);
    assert_eq!(body["username"], DIST_USER);
    assert!(body.get("password").is_none(), "{body}");

    // The team sees it; another team does not, not even that it exists.
    let (_, list) = seen.get(&server, &alice, "/api/v1/registries").await;
    assert_eq!(list[0]["name"], "dist", "{list}");
    let (_, list) = seen.get(&server, &bob, "/api/v1/registries").await;
    assert_eq!(list, json!([]));
    for (method, path) in [
        (Method::GET, "/api/v1/registries/dist"),
        (Method::GET, "/api/v1/registries/dist/images"),
        (Method::GET, "/api/v1/registries/dist/images/shop/web"),
        (Method::GET, "/api/v1/registries/dist/images/shop/web:v1"),
        (Method::DELETE, "/api/v1/registries/dist/images/shop/web:v1"),
        (Method::GET, "/api/v1/registries/missing/images"),
    ] {
        let (status, body) = seen.call(&server, &bob, method.clone(), path, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }

    // Browse and inspect, with the same shapes as the built-in registry.
    let (status, repositories) = seen.get(&server, &alice, &images("")).await;
    assert_eq!(status, 200, "{repositories}");
    let names: Vec<&str> = repositories
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["shop/tools", "shop/web"]);
    let web = &repositories[1];
    assert_eq!(web["tag_count"], 2, "{web}");
    assert_eq!(web["manifest_count"], 1, "{web}");
    assert!(web["size_bytes"].as_u64().unwrap() > 100_000, "{web}");
    assert_eq!(web["last_pushed"], Value::Null);
    let (_, found) = seen.get(&server, &carol, &images("?search=tool")).await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["name"], "shop/tools");

    let (_, repository) = seen.get(&server, &alice, &images("/shop/web")).await;
    let tags = repository["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2, "{repository}");
    assert_eq!(tags[0]["tag"], "v1");
    assert_eq!(tags[0]["digest"], tags[1]["digest"], "{repository}");
    assert_eq!(tags[0]["pushed_at"], Value::Null);
    assert!(tags[0]["created"].is_string(), "{repository}");
    assert_eq!(repository["size_bytes"], web["size_bytes"]);

    let (status, detail) = seen.get(&server, &alice, &images("/shop/web:v1")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(
        detail["config"]["entrypoint"][0], "/berth-testapp",
        "{detail}"
    );
    assert!(!detail["layers"].as_array().unwrap().is_empty());
    assert_eq!(detail["tags"], json!(["v1", "v2"]));
    assert_eq!(detail["pushed_at"], Value::Null);
    let digest = detail["digest"].as_str().unwrap().to_string();
    let (_, by_digest) = seen
        .get(&server, &alice, &images(&format!("/shop/web@{digest}")))
        .await;
    assert_eq!(by_digest["digest"], digest.as_str());
    let (status, body) = seen.get(&server, &alice, &images("/shop/web:nope")).await;
    assert_eq!(status, 404, "{body}");

    // Deleting: viewers may not; a tag sharing its image with another cannot go alone on
    // Distribution 2.8; an image a kept revision uses is refused; then it goes.
    let (status, body) = seen.delete(&server, &carol, &images("/shop/web:v2")).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = seen.delete(&server, &alice, &images("/shop/web:v2")).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("v1") && message.contains(&format!("shop/web@{digest}")),
        "{message}"
    );
    let app = json!({
        "name": "pinned", "team": "shop", "image": format!("{host}/shop/web:v1"), "replicas": 0,
        "cpu_millis": 100, "memory_bytes": 64 << 20,
    });
    let (status, body) = seen
        .call(&server, &alice, Method::POST, "/api/v1/apps", Some(app))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = seen
        .delete(&server, &alice, &images(&format!("/shop/web@{digest}")))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "image_in_use");
    let (status, _) = server
        .call_as(&alice, Method::DELETE, "/api/v1/apps/pinned", None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = seen
        .delete(&server, &alice, &images(&format!("/shop/web@{digest}")))
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = seen.get(&server, &alice, &images("/shop/web:v1")).await;
    assert_eq!(status, 404);
    // The last tag of an image takes the image with it (all Distribution can delete).
    let (status, body) = seen
        .delete(&server, &alice, &images("/shop/tools:latest"))
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, repository) = seen.get(&server, &alice, &images("/shop/tools")).await;
    assert_eq!(repository["tags"], json!([]), "{repository}");

    // The CLI: the same routes.
    push(&image, &format!("{host}/shop/web:v3"), &password);
    let output = server.cli(&["registries", "list"]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{output:?}");
    assert!(
        text.contains("dist") && text.contains("stored") && !text.contains(&password),
        "{text}"
    );
    let output = server.cli(&["images", "show", "shop/web:v3", "--registry", "dist"]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{output:?}");
    assert!(
        text.contains("/berth-testapp") && text.contains("pushed:     unknown"),
        "{text}"
    );
    let output = server.cli(&["images", "list", "--registry", "dist", "-o", "json"]);
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed[1]["tag_count"], 1, "{listed}");

    // Wrong credentials: a 502 that says so, without the password.
    let wrong = format!("wrong-{password}");
    let broken = json!({
        "team": "shop", "url": format!("http://{host}"), "username": DIST_USER, "password": wrong,
    });
    let (status, _) = seen.put_registry(&server, "broken", broken).await;
    assert_eq!(status, 201);
    let (status, body) = seen
        .get(&server, &alice, "/api/v1/registries/broken/images")
        .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{body}"
    );

    // The key survives a restart; replacing without a password keeps the stored one.
    server.restart().await;
    let url = format!("http://{host}/");
    let output = server.cli(&[
        "registries",
        "add",
        "dist",
        "--team",
        "shop",
        "--url",
        &url,
        "--username",
        DIST_USER,
        "--keep-password",
    ]);
    assert!(output.status.success(), "{output:?}");
    let (_, listed) = seen.get(&server, &server.token, "/api/v1/registries").await;
    assert_eq!(listed[1]["name"], "dist", "{listed}");
    assert_eq!(listed[1]["has_password"], true, "{listed}");
    assert_eq!(listed[1]["url"], format!("http://{host}"), "{listed}");
    let (status, body) = seen.get(&server, &alice, &images("/shop/web:v3")).await;
    assert_eq!(status, 200, "{body}");

    // The password is in no answer, no audit record, no log line and no database file.
    let (_, audit) = seen.get(&server, &server.token, "/api/v1/audit").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "registries.put" && r["team"] == "shop"),
        "{audit}"
    );
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "registries.images.delete"
                && r["object"] == format!("images/shop/web@{digest}")),
        "{audit}"
    );
    for (i, answer) in seen.0.iter().enumerate() {
        assert!(!answer.contains(&password), "answer {i}: {answer}");
    }
    assert!(!server.log().contains(&password), "the server log");
    for file in all_files_under(&server.data_dir) {
        if file.starts_with(server.data_dir.join("registry")) {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        assert!(!contains(&bytes, &password), "{}", file.display());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(server.data_dir.join("secret-key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    // Removing it from Berth leaves the registry alone.
    let (status, _) = server
        .call(Method::DELETE, "/api/v1/registries/dist", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .call_as(&alice, Method::GET, "/api/v1/registries/dist/images", None)
        .await;
    assert_eq!(status, 404);
    drop(dist);
}
