//! Harness for black-box tests: runs the real `berth` binary against the real Docker Engine.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod git_repo;
pub mod load;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::NamespaceGuard;
use serde_json::{Value, json};

/// A running `berth server` with its own data directory and engine namespace.
pub struct Server {
    pub url: String,
    pub token: String,
    pub data_dir: PathBuf,
    pub namespace: NamespaceGuard,
    pub port: u16,
    /// Where the server's router serves apps' traffic (`--http-listen`).
    pub router_port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// The address the API (and registry) listens on: 127.0.0.1 unless a test needs another
    /// machine to reach it (Swarm nodes pulling from the registry).
    listen_host: String,
    /// Started as the README says: in a working directory, with the default relative
    /// `--data-dir` (`./berth-data`).
    default_data_dir: bool,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// The variable that runs the end-to-end tests on another store: `postgres` gives every
/// server the tests start a fresh PostgreSQL database (on the server `BERTH_TEST_POSTGRES`
/// names) unless the test chose a `--store` itself. `scripts/test.sh` runs a set of the tests
/// again this way.
pub const STORE_VARIABLE: &str = "BERTH_TEST_STORE";

/// The `--store` URL for a server of `test` under [`STORE_VARIABLE`]; `None`: the default.
async fn store_under_test(test: &str, extra_args: &[String]) -> Option<String> {
    let store = std::env::var(STORE_VARIABLE).ok()?;
    if extra_args.iter().any(|a| a == "--store") {
        return None;
    }
    match store.as_str() {
        "postgres" => berth_store::conformance::postgres_database(test).await,
        "sqlite" | "" => None,
        other => panic!("{STORE_VARIABLE}={other}: expected postgres or sqlite"),
    }
}

/// A loopback TCP port free at the time of asking, and never handed out before in this test
/// process: the kernel may give a port just released again, and the tests of one binary start
/// servers in parallel (two servers once got the same port, one's router on the other's API).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind a free port")
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

impl Server {
    /// Starts a server on the local engine; the test app image is built first.
    pub async fn start(test: &str) -> Server {
        Server::start_with(test, &[]).await
    }

    pub async fn start_with(test: &str, extra_args: &[&str]) -> Server {
        Server::launch(test, extra_args, false, &|_| {}).await
    }

    /// Starts a server whose API and registry listen on `host` (an address of this machine
    /// other machines reach) instead of 127.0.0.1.
    pub async fn start_on(test: &str, host: &str, extra_args: &[&str]) -> Server {
        Server::launch_on(test, host, extra_args).await
    }

    /// Starts a server whose data directory (not made yet) `prepare` sets up first — e.g.
    /// mounts a small file system there.
    pub async fn start_prepared(
        test: &str,
        extra_args: &[&str],
        prepare: &dyn Fn(&Path),
    ) -> Server {
        Server::launch(test, extra_args, false, prepare).await
    }

    /// Starts a server as the README does: run from a working directory with no `--data-dir`,
    /// so its data lives in the relative default `./berth-data`.
    pub async fn start_with_default_data_dir(test: &str) -> Server {
        Server::launch(test, &[], true, &|_| {}).await
    }

    async fn launch(
        test: &str,
        extra_args: &[&str],
        default_data_dir: bool,
        prepare: &dyn Fn(&Path),
    ) -> Server {
        Server::launch_full(
            test,
            "127.0.0.1",
            extra_args,
            default_data_dir,
            prepare,
            None,
        )
        .await
    }

    async fn launch_on(test: &str, host: &str, extra_args: &[&str]) -> Server {
        Server::launch_full(test, host, extra_args, false, &|_| {}, None).await
    }

    /// Starts a second server of `first`'s installation: the same engine namespace, a data
    /// directory of its own (the store and anything shared come in `extra_args`).
    pub async fn start_beside(test: &str, first: &Server, extra_args: &[&str]) -> Server {
        Server::launch_full(
            test,
            "127.0.0.1",
            extra_args,
            false,
            &|_| {},
            Some(first.namespace.namespace()),
        )
        .await
    }

    async fn launch_full(
        test: &str,
        listen_host: &str,
        extra_args: &[&str],
        default_data_dir: bool,
        prepare: &dyn Fn(&Path),
        namespace: Option<&str>,
    ) -> Server {
        berth_testkit::require_docker();
        berth_testkit::testapp_image();
        let mut extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        if let Some(url) = store_under_test(test, &extra_args).await {
            extra_args.extend(["--store".to_string(), url]);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server {
            url: String::new(),
            token: String::new(),
            data_dir: dir.path().join(if default_data_dir {
                "berth-data"
            } else {
                "data"
            }),
            namespace: match namespace {
                Some(shared) => NamespaceGuard(shared.to_string()),
                None => NamespaceGuard::new(test),
            },
            port: free_port(),
            router_port: free_port(),
            child: None,
            extra_args,
            listen_host: listen_host.to_string(),
            default_data_dir,
            _dir: dir,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        server.url = format!("http://{listen_host}:{}", server.port);
        prepare(&server.data_dir);
        server.spawn().await;
        // A second server of an installation makes no first-start secret.
        server.token = std::fs::read_to_string(server.data_dir.join("admin-token"))
            .map(|token| token.trim().to_string())
            .unwrap_or_else(|_| {
                assert!(namespace.is_some(), "admin token missing\n{}", server.log());
                String::new()
            });
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.parent().unwrap().join("server.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command.arg("server");
        if self.default_data_dir {
            command.current_dir(self._dir.path());
        } else {
            command.arg("--data-dir").arg(&self.data_dir);
        }
        if !self.extra_args.iter().any(|a| a == "--http-listen") {
            command.args(["--http-listen", &format!("127.0.0.1:{}", self.router_port)]);
        }
        let child = command
            .args(["--listen", &format!("{}:{}", self.listen_host, self.port)])
            .args(["--namespace", self.namespace.namespace()])
            .args([
                "--resync-interval",
                "2s",
                "--crash-backoff",
                "500ms",
                "--crash-backoff-max",
                "4s",
            ])
            .args(&self.extra_args)
            .env("BERTH_LOG", "info,berth_controller=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start berth server");
        self.child = Some(child);
        wait_until(
            "server answers /healthz",
            Duration::from_secs(30),
            || async {
                self.http
                    .get(format!("{}/healthz", self.url))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
    }

    /// The server's log so far (printed when a test fails).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.parent().unwrap().join("server.log"))
            .unwrap_or_default()
    }

    /// Stops the server process (SIGTERM) and waits for it; containers stay. A server that
    /// handed over (`kill -USR2`) has exited already: its successor, named by the pid file, is
    /// stopped instead.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
        if let Some(pid) = self.pid().filter(|pid| process_alive(*pid)) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while process_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills the server process outright (SIGKILL: no shutdown, nothing handed over).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process has exited (and its exit status), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// The process id of the server serving now (its pid file).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Calls the API as the first admin.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_as(&self.token, method, path, body).await
    }

    /// Calls the API with `token` as the bearer token (empty: no credentials at all).
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Registers `username` (password `<username>-password-1`), owner of a new `team` when
    /// given, and returns an API token of theirs.
    pub async fn register(&self, username: &str, team: Option<&str>) -> String {
        let password = format!("{username}-password-1");
        let mut body = json!({"username": username, "email": format!("{username}@example.com"), "password": password});
        if let Some(team) = team {
            body["team"] = json!(team);
        }
        let (status, answer) = self
            .call_as(
                "",
                reqwest::Method::POST,
                "/api/v1/auth/register",
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "register {username}: {answer}");
        let (status, answer) = self
            .call_as(
                "",
                reqwest::Method::POST,
                "/api/v1/auth/token",
                Some(json!({"username": username, "password": password, "name": "tests"})),
            )
            .await;
        assert_eq!(status, 201, "token of {username}: {answer}");
        answer["token"].as_str().expect("token").to_string()
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "POST {path}: {status} {answer}"
        );
        answer
    }

    pub async fn app(&self, name: &str) -> Value {
        self.get(&format!("/api/v1/apps/{name}")).await
    }

    /// Creates an app from the test app image with a health check.
    pub async fn create_app(&self, name: &str, replicas: u32, extra: Value) -> Value {
        let mut body = json!({"name": name, "image": berth_testkit::TESTAPP_IMAGE, "replicas": replicas, "health_path": "/healthz"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.post("/api/v1/apps", body).await
    }

    /// Copies the test app image from the local engine into this server's registry as
    /// `image` (skopeo, with the admin credential), as a user pushes an image.
    pub fn push_testapp(&self, image: &str) {
        let copied = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false", "--dest-creds"])
            .arg(format!("admin:{}", self.token))
            .arg(format!("docker-daemon:{}", berth_testkit::testapp_image()))
            .arg(format!("docker://{image}"))
            .output()
            .expect("run skopeo");
        assert!(
            copied.status.success(),
            "skopeo copy to {image}: {copied:?}"
        );
    }

    /// Waits until the app's rollout is done; returns the app.
    pub async fn wait_rollout(&self, name: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let app = self.app(name).await;
            if app["rollout"]["done"] == json!(true) {
                return app;
            }
            assert!(
                start.elapsed() < timeout,
                "rollout of {name} not done after {timeout:?}: {app:#}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `check` holds for the app.
    pub async fn wait_app(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let app = self.app(name).await;
            if check(&app) {
                return app;
            }
            assert!(
                start.elapsed() < timeout,
                "{name}: {what} not reached after {timeout:?}: {app:#}\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the app's rollout to end, polling every `every`; answers the app then and the
    /// fewest ready instances seen meanwhile.
    pub async fn watch_rollout(&self, name: &str, every: Duration) -> (Value, usize) {
        let mut lowest = usize::MAX;
        loop {
            let app = self.app(name).await;
            lowest = lowest.min(ready_instances(&app).len());
            if app["rollout"]["done"] == json!(true) {
                return (app, lowest);
            }
            tokio::time::sleep(every).await;
        }
    }

    pub async fn events(&self, name: &str) -> Vec<Value> {
        self.get(&format!("/api/v1/apps/{name}/events?limit=1000"))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_SERVER", &self.url)
            .env("BERTH_TOKEN", &self.token)
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }
}

impl Server {
    /// Runs the CLI against this server with `stdin` as its standard input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_SERVER", &self.url)
            .env("BERTH_TOKEN", &self.token)
            .stdin(std::fs::File::open(stdin).expect("open the CLI's stdin"))
            .output()
            .expect("run berth")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- berth server log ----\n{}", self.log());
        }
    }
}

/// Whether process `pid` runs (and is not a zombie waiting to be reaped).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Asserts that an API call was refused with `want` and a message containing `says`; returns
/// the message.
pub fn assert_refused(status: u16, answer: &Value, want: u16, says: &str) -> String {
    assert_eq!(status, want, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{says:?} not in: {answer}");
    message.to_string()
}

/// The hex HMAC-SHA256 of `body` under `secret`, computed by `openssl` as a forge would.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(hex.len(), 64, "openssl said {text:?}");
    hex
}

/// Polls `check` every 100 ms until it holds; panics after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "{what}: not true after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The instances of an app JSON that are running and ready.
pub fn ready_instances(app: &Value) -> Vec<Value> {
    app["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["ready"] == json!(true))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// GET / of an instance through its address; returns the JSON the test app answers.
pub fn hit(instance: &Value) -> Value {
    let address = instance["address"].as_str().expect("instance address");
    let (status, body) =
        berth_testkit::http_get(&format!("http://{address}/"), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("GET http://{address}/: {e}"));
    assert_eq!(status, 200, "GET http://{address}/ answered {status}");
    serde_json::from_str(&body).expect("test app JSON")
}

pub fn containers_of(namespace: &str, app: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-a", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=berth.namespace={namespace}"))
        .arg("--filter")
        .arg(format!("label=berth.app={app}"))
        .output()
        .expect("docker ps");
    let mut ids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

pub fn docker(args: &[&str]) {
    let status = Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("docker");
    assert!(status.success(), "docker {args:?} failed");
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// Runs docker with a private client config (so logins of different users do not clash).
pub fn docker_with(config: &Path, args: &[&str]) -> Output {
    Command::new("docker")
        .env("DOCKER_CONFIG", config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
}

/// [`docker_with`], panicking with docker's output when it fails; answers its stdout.
pub fn docker_as(config: &Path, args: &[&str]) -> String {
    let output = docker_with(config, args);
    assert!(
        output.status.success(),
        "docker {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// Removes the images a test tagged, even when it fails.
pub struct LocalImages(pub Vec<String>);

impl Drop for LocalImages {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = Command::new("docker")
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A tar archive (in `dir`) of `files` (name, text), made by the system's tar as a user would.
pub fn tar_of(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let source = dir.join("source");
    std::fs::create_dir_all(&source).unwrap();
    for (name, text) in files {
        std::fs::write(source.join(name), text).unwrap();
    }
    let archive = dir.join("archive.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&source)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    archive
}

/// The text of the file `name` (e.g. `./note`) in the tar archive `archive`, as the system's
/// tar reads it.
pub fn tar_entry(archive: &[u8], name: &str) -> String {
    let mut tar = Command::new("tar")
        .args(["-xOf", "-", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let mut stdin = tar.stdin.take().expect("tar's stdin");
    let archive = archive.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&archive));
    let out = tar.wait_with_output().expect("tar");
    let _ = writer.join();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
