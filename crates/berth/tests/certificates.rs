//! End-to-end: HTTPS certificates on the real binary. A certificate made here for the app's
//! custom domain is uploaded with `berth certs upload` and served by the router's HTTPS
//! listener (SNI) to a client trusting only the test CA; a certificate for another domain, a
//! key that does not match, an expired certificate and garbage are refused with a 400 naming
//! the field and store nothing; a viewer and an outsider cannot upload; `--https-redirect`
//! makes plain HTTP answer 308 on hosts with a certificate only; `berth certs request` orders a
//! certificate from Debian's pebble (HTTP-01 through the router) which is then served; the
//! private key never appears in an API answer or the audit log; a deleted certificate is no
//! longer served.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use berth_testkit::Pebble;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, free_port, wait_until};

const DOMAIN: &str = "shop.berth.test";
const ACME_DOMAIN: &str = "api.berth.test";
const PATIENCE: Duration = Duration::from_secs(60);

/// A test CA: its PEM and what signs with it.
fn test_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    (pem, Issuer::new(params, key))
}

/// A leaf for `names` signed by `ca`: (chain PEM, key PEM). `expired`: valid only in 2020.
fn leaf(ca: &Issuer<'static, KeyPair>, names: &[&str], expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2020, 4, 1);
    }
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// GETs `path` over HTTPS from `addr` with SNI `server_name`, trusting only `root_pem`:
/// status and body, or why the handshake or request failed.
async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    root_pem: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let answer = berth_testkit::https_get(addr, server_name, root_pem, path).await?;
    Ok((answer.status, answer.body))
}

/// `GET path` on the router's plain listener with `Host: host`, redirects not followed.
async fn plain_request(port: u16, host: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .expect("plain request through the router")
}

/// [`plain_request`]: status and `Location`.
async fn plain_get(port: u16, host: &str, path: &str) -> (u16, Option<String>) {
    let response = plain_request(port, host, path).await;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (response.status().as_u16(), location)
}

async fn upload_as(
    server: &Server,
    token: &str,
    host: &str,
    certificate: &str,
    key: &str,
) -> (u16, Value) {
    server
        .call_as(
            token,
            Method::PUT,
            &format!("/api/v1/apps/shop/certificates/{host}"),
            Some(json!({"certificate": certificate, "private_key": key})),
        )
        .await
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth {args:?}: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    stdout
}

/// Pebble (certificates valid for `validity`, or its default) and the ports of a Berth server
/// that orders from it: the plain listener pebble validates HTTP-01 on, and the HTTPS one.
struct Acme {
    dir: tempfile::TempDir,
    pebble: Pebble,
    ca_file: std::path::PathBuf,
    http_port: u16,
    https_port: u16,
}

impl Acme {
    fn start(validity: Option<Duration>) -> Acme {
        assert!(
            Pebble::installed(),
            "Debian's pebble is needed (apt-get install pebble)"
        );
        let dir = tempfile::tempdir().unwrap();
        let (http_port, https_port) = (free_port(), free_port());
        let pebble = Pebble::start_with_validity(http_port, validity);
        let ca_file = dir.path().join("pebble-ca.pem");
        std::fs::write(&ca_file, &pebble.https_ca_pem).unwrap();
        Acme {
            dir,
            pebble,
            ca_file,
            http_port,
            https_port,
        }
    }

    /// A server with the router on both ports, ordering from pebble, with `extra` settings.
    async fn server(&self, test: &str, extra: &[&str]) -> Server {
        let (http, https) = (
            format!("127.0.0.1:{}", self.http_port),
            format!("127.0.0.1:{}", self.https_port),
        );
        let mut args = vec![
            "--http-listen",
            &http,
            "--https-listen",
            &https,
            "--acme-directory",
            &self.pebble.directory_url,
            "--acme-ca-file",
            self.ca_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::start_with(test, &args).await
    }

    fn https(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.https_port).into()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_uploaded_or_ordered_and_served_over_https() {
    let acme = Acme::start(None);
    let (dir, pebble, http_port, https_port) =
        (&acme.dir, &acme.pebble, acme.http_port, acme.https_port);
    let server = acme
        .server("certs", &["--acme-email", "ops@berth.test"])
        .await;
    let https = acme.https();
    let alice = server.register("alice", Some("web")).await;
    let bob = server.register("bob", Some("ops")).await;
    let carol = server.register("carol", None).await;
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/teams/web/members/carol",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!((200..300).contains(&status), "{answer}");

    let (status, answer) = server
        .call_as(
            &alice,
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "shop", "team": "web", "image": berth_testkit::TESTAPP_IMAGE,
                "replicas": 1, "health_path": "/healthz", "cpu_millis": 100,
                "memory_bytes": 64 << 20, "domains": [DOMAIN]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    server.wait_rollout("shop", Duration::from_secs(120)).await;

    let (ca_pem, ca) = test_ca("berth test: uploads CA");
    let (good_chain, good_key) = leaf(&ca, &[DOMAIN, "www.shop.berth.test"], false);
    let (other_chain, other_key) = leaf(&ca, &["other.berth.test"], false);
    let (_, stranger_key) = leaf(&ca, &[DOMAIN], false);
    let (expired_chain, expired_key) = leaf(&ca, &[DOMAIN], true);
    let body_of = |pem: &str| -> String {
        pem.lines()
            .filter(|line| !line.starts_with("-----"))
            .collect::<Vec<_>>()
            .join("")
    };
    let key_body = body_of(&good_key);
    // The first line of every key's base64: none may ever appear in an answer or the audit.
    let key_lines: Vec<String> = [&good_key, &other_key, &stranger_key, &expired_key]
        .iter()
        .map(|pem| pem.lines().nth(1).unwrap().to_string())
        .collect();

    // Hostile uploads: 400 naming the field, nothing stored.
    let huge = "A".repeat(300 * 1024);
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (DOMAIN, &other_chain, &other_key, "domain"),
        (DOMAIN, &good_chain, &stranger_key, "private_key"),
        (DOMAIN, &expired_chain, &expired_key, "certificate"),
        (DOMAIN, "garbage", &good_key, "certificate"),
        (DOMAIN, &good_chain, "garbage", "private_key"),
        (DOMAIN, "", "", "certificate"),
        (DOMAIN, &good_key, &good_key, "certificate"),
        (DOMAIN, &good_chain, &good_chain, "private_key"),
        ("other.berth.test", &other_chain, &other_key, "domain"),
        ("*.berth.test", &good_chain, &good_key, "domain"),
        ("shop.berth.test:443", &good_chain, &good_key, "domain"),
    ];
    for (host, chain, key, field) in cases {
        let (status, answer) = upload_as(&server, &alice, host, chain, key).await;
        assert_eq!(status, 400, "{host} {field}: {answer}");
        assert_eq!(answer["error"]["field"], json!(field), "{host}: {answer}");
        assert!(!answer.to_string().contains(&key_body), "{answer}");
    }
    let (status, answer) = upload_as(&server, &alice, DOMAIN, &huge, &good_key).await;
    assert_eq!(status, 400, "a body beyond the limit: {answer}");
    assert_eq!(answer["error"]["code"], json!("invalid_json"), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{answer}"
    );
    let (status, answer) = server
        .call_as(
            &alice,
            Method::PUT,
            &format!("/api/v1/apps/shop/certificates/{DOMAIN}"),
            Some(json!({"certificate": good_chain, "private_key": good_key, "extra": 1})),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    // Who may not: a viewer of the team (403), another team (404, as if no such app).
    let (status, answer) = upload_as(&server, &carol, DOMAIN, &good_chain, &good_key).await;
    assert_eq!(status, 403, "viewer: {answer}");
    let (status, answer) = upload_as(&server, &bob, DOMAIN, &good_chain, &good_key).await;
    assert_eq!(status, 404, "outsider: {answer}");
    let (status, _) = server
        .call_as(&bob, Method::GET, "/api/v1/apps/shop/certificates", None)
        .await;
    assert_eq!(status, 404);
    let listed = server.get("/api/v1/apps/shop/certificates").await;
    assert_eq!(listed, json!([]), "nothing stored by refused uploads");
    let refused = https_get(https, DOMAIN, &ca_pem, "/whoami").await;
    assert!(refused.is_err(), "no certificate yet: {refused:?}");

    // Upload with the CLI (the key from a file), then HTTPS with SNI reaches the app.
    std::fs::write(dir.path().join("shop.pem"), &good_chain).unwrap();
    std::fs::write(dir.path().join("shop-key.pem"), &good_key).unwrap();
    let out = cli_ok(
        &server,
        &[
            "certs",
            "upload",
            "shop",
            DOMAIN,
            "--cert",
            dir.path().join("shop.pem").to_str().unwrap(),
            "--key",
            dir.path().join("shop-key.pem").to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("uploaded certificate for shop.berth.test, www.shop.berth.test"),
        "{out}"
    );
    assert!(!out.contains(&key_body));
    let listed = server.get("/api/v1/apps/shop/certificates").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let certificate = &listed[0];
    assert_eq!(certificate["host"], json!(DOMAIN));
    assert_eq!(certificate["source"], json!("uploaded"));
    assert_eq!(certificate["names"], json!([DOMAIN, "www.shop.berth.test"]));
    assert!(
        certificate["days_left"].as_i64().unwrap() > 300,
        "{certificate}"
    );
    let out = cli_ok(&server, &["certs", "list", "shop"]);
    assert!(out.contains(DOMAIN) && out.contains("uploaded"), "{out}");
    wait_until("HTTPS to the domain reaches the app", PATIENCE, || async {
        matches!(https_get(https, DOMAIN, &ca_pem, "/whoami").await,
            Ok((200, body)) if body.contains(r#""app":"shop""#))
    })
    .await;
    // The default host has no certificate: refused at the handshake, never another's shown.
    let default_host = https_get(https, "shop.web.localhost", &ca_pem, "/").await;
    assert!(default_host.is_err(), "{default_host:?}");

    // --https-redirect: plain HTTP to the host with a certificate answers 308; the default
    // host, without one, keeps serving plain HTTP.
    let (status, _) = plain_get(http_port, DOMAIN, "/whoami?x=1").await;
    assert_eq!(status, 200, "no redirect before it is asked for");
    cli_ok(&server, &["deploy", "shop", "--https-redirect"]);
    assert_eq!(server.app("shop").await["https_redirect"], json!(true));
    wait_until("plain HTTP is redirected", PATIENCE, || async {
        plain_get(http_port, DOMAIN, "/whoami?x=1").await.0 == 308
    })
    .await;
    let (_, location) = plain_get(http_port, DOMAIN, "/whoami?x=1").await;
    assert_eq!(
        location.as_deref(),
        Some(format!("https://{DOMAIN}:{https_port}/whoami?x=1").as_str())
    );
    assert_eq!(plain_get(http_port, "shop.web.localhost", "/").await.0, 200);

    // ACME: a second domain gets a certificate from pebble, proven through the router.
    let (status, answer) = server
        .call_as(
            &alice,
            Method::POST,
            &format!("/api/v1/apps/shop/certificates/{ACME_DOMAIN}/acme"),
            None,
        )
        .await;
    assert_eq!(status, 400, "not a host of the app yet: {answer}");
    assert_eq!(answer["error"]["field"], json!("domain"));
    cli_ok(
        &server,
        &[
            "deploy",
            "shop",
            "--domain",
            DOMAIN,
            "--domain",
            ACME_DOMAIN,
        ],
    );
    let (status, answer) = server
        .call_as(
            &carol,
            Method::POST,
            &format!("/api/v1/apps/shop/certificates/{ACME_DOMAIN}/acme"),
            None,
        )
        .await;
    assert_eq!(status, 403, "a viewer orders nothing: {answer}");
    let out = cli_ok(&server, &["certs", "request", "shop", ACME_DOMAIN]);
    assert!(out.contains("acme certificate for api.berth.test"), "{out}");
    let pebble_root = pebble.issuing_root().await;
    wait_until(
        "HTTPS to the ACME domain reaches the app",
        PATIENCE,
        || async {
            matches!(https_get(https, ACME_DOMAIN, &pebble_root, "/whoami").await,
            Ok((200, body)) if body.contains(r#""app":"shop""#))
        },
    )
    .await;
    let listed = server.get("/api/v1/apps/shop/certificates").await;
    let sources: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["host"].as_str().unwrap(), c["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [(ACME_DOMAIN, "acme"), (DOMAIN, "uploaded")]);
    assert_eq!(plain_get(http_port, ACME_DOMAIN, "/").await.0, 308);

    // The key never leaves the server: not in answers, not in the audit log.
    let audit = server.get("/api/v1/audit?limit=500").await.to_string();
    assert!(audit.contains("apps.certificates.put"), "{audit}");
    assert!(audit.contains("apps.certificates.acme"), "{audit}");
    for text in [&audit, &listed.to_string()] {
        for line in &key_lines {
            assert!(
                !text.contains(line.as_str()),
                "a private key leaked: {text}"
            );
        }
        // A PEM key as JSON would read `PRIVATE KEY-----\n…` (error messages name the
        // header, never with a body).
        assert!(
            !text.contains("PRIVATE KEY-----\\n"),
            "a PEM key leaked: {text}"
        );
    }

    // Deleted: HTTPS to it is refused and plain HTTP is served again.
    let (status, _) = server
        .call_as(
            &bob,
            Method::DELETE,
            &format!("/api/v1/apps/shop/certificates/{DOMAIN}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "another team's delete");
    cli_ok(&server, &["certs", "delete", "shop", DOMAIN]);
    wait_until(
        "the deleted certificate is no longer served",
        PATIENCE,
        || async { https_get(https, DOMAIN, &ca_pem, "/").await.is_err() },
    )
    .await;
    assert_eq!(plain_get(http_port, DOMAIN, "/whoami").await.0, 200);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/shop/certificates/{DOMAIN}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "deleted twice");
}

/// A server without ACME settings refuses to order, saying how to configure it.
#[tokio::test(flavor = "multi_thread")]
async fn ordering_without_acme_settings_is_refused_clearly() {
    let server = Server::start("certs-noacme").await;
    server
        .create_app("web", 0, json!({"domains": ["web.berth.test"]}))
        .await;
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/web/certificates/web.berth.test/acme",
            None,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], json!("acme_not_configured"));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--acme-directory"),
        "{answer}"
    );
    // Nor can an app receive on-demand domains: their certificates are ordered over ACME.
    let (status, answer) = server
        .call(
            Method::PUT,
            "/api/v1/system/on-demand-domains",
            Some(json!({"app": "web", "ask_path": "/tls-ask"})),
        )
        .await;
    support::assert_refused(status, &answer, 409, "--acme-directory");
    assert_eq!(answer["error"]["code"], json!("acme_not_configured"));
    assert_eq!(
        server.get("/api/v1/system/on-demand-domains").await["app"],
        json!(null)
    );
}

/// Renewal end to end: pebble issues one-hour certificates and the server renews those with
/// less than two hours left every two seconds, so the real renewal job replaces a freshly
/// ordered certificate at once: the router then presents another certificate for the host over
/// a real handshake, and the app's timeline says `certificate_renewed`.
#[tokio::test(flavor = "multi_thread")]
async fn the_renewal_job_replaces_a_due_certificate_and_the_router_serves_the_new_one() {
    let acme = Acme::start(Some(Duration::from_secs(3600)));
    let (pebble, https_port) = (&acme.pebble, acme.https_port);
    let server = acme
        .server(
            "certs-renewal",
            &["--acme-renew-before", "2h", "--acme-renew-interval", "2s"],
        )
        .await;
    let https: SocketAddr = ([127, 0, 0, 1], https_port).into();
    // No instance is needed: the router answers the challenge and presents the certificate.
    server
        .create_app("shop", 0, json!({"domains": [ACME_DOMAIN]}))
        .await;
    let out = cli_ok(&server, &["certs", "request", "shop", ACME_DOMAIN]);
    assert!(out.contains("acme certificate for api.berth.test"), "{out}");
    let listed = server.get("/api/v1/apps/shop/certificates").await;
    assert_eq!(
        listed[0]["days_left"],
        json!(0),
        "a short-lived certificate: {listed}"
    );

    let root = pebble.issuing_root().await;
    let presented = || async {
        berth_testkit::https_get(https, ACME_DOMAIN, &root, "/")
            .await
            .map(|answer| answer.leaf)
    };
    let started = std::time::Instant::now();
    let first = loop {
        let refused = match presented().await {
            Ok(leaf) => break leaf,
            Err(refused) => refused,
        };
        assert!(
            started.elapsed() < PATIENCE,
            "the ordered certificate is not served; last try: {refused}; certificates: {}",
            server.get("/api/v1/apps/shop/certificates").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_until("a renewed certificate is served", PATIENCE, || async {
        presented().await.is_ok_and(|leaf| leaf != first)
    })
    .await;

    let events = server.events("shop").await;
    let renewed: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == json!("certificate_renewed"))
        .collect();
    assert!(!renewed.is_empty(), "{events:#?}");
    assert!(
        renewed[0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("certificate of {ACME_DOMAIN} renewed")),
        "{renewed:?}"
    );
    let listed = server.get("/api/v1/apps/shop/certificates").await;
    assert_eq!(listed[0]["source"], json!("acme"), "{listed}");
    assert_eq!(
        listed[0]["created_by"],
        json!("certificate-renewal"),
        "{listed}"
    );
    let workers = server.get("/api/v1/system/workers").await.to_string();
    assert!(workers.contains("certificate-renewal"), "{workers}");

    // This server has no DNS hook: a wildcard cannot be ordered, and it says what is missing.
    server
        .create_app("wild", 0, json!({"domains": ["*.wild.berth.test"]}))
        .await;
    let (status, answer) = server
        .call(
            Method::POST,
            "/api/v1/apps/wild/certificates/*.wild.berth.test/acme",
            None,
        )
        .await;
    support::assert_refused(status, &answer, 409, "--acme-dns-hook");
    assert_eq!(answer["error"]["code"], json!("acme_dns_not_configured"));
}

/// `GET /` on the router's plain listener with `Host: host`: status and body.
async fn plain_body(port: u16, host: &str) -> (u16, String) {
    let response = plain_request(port, host, "/").await;
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Wildcard domains end to end: an app claims `*.shop.test` and answers every name under it
/// that no app claims exactly; another team can neither claim a name under it nor the wildcard
/// itself; `berth certs request` orders the wildcard certificate from pebble over DNS-01, the
/// test's hook publishing the TXT record in pebble-challtestsrv's DNS (through its management
/// API, with curl), and the router presents it for `a.shop.test` and `b.shop.test`; a failing
/// hook fails the order with its exit status and what it said; an uploaded wildcard
/// certificate is accepted for a wildcard domain.
#[tokio::test(flavor = "multi_thread")]
async fn wildcard_domains_route_and_get_certificates_over_dns01_through_the_hook() {
    let acme = Acme::start(None);
    let (dir, pebble, http_port, https_port) =
        (&acme.dir, &acme.pebble, acme.http_port, acme.https_port);
    // The hook as an operator would write it for their DNS provider's API.
    let calls = dir.path().join("hook-calls");
    let hook = dir.path().join("dns-hook");
    std::fs::write(
        &hook,
        format!(
            r#"#!/bin/sh
set -e
echo "$1 $2" >> {calls}
case "$BERTH_ACME_DOMAIN" in
  broken.*) echo "zone $BERTH_ACME_DOMAIN is not managed by this account" >&2; exit 3 ;;
esac
case "$1" in
  present) curl -sSf -X POST -d "{{\"host\":\"$2.\",\"value\":\"$3\"}}" http://{dns}/set-txt ;;
  cleanup) curl -sSf -X POST -d "{{\"host\":\"$2.\"}}" http://{dns}/clear-txt ;;
esac
"#,
            calls = calls.display(),
            dns = pebble.challtestsrv,
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let server = acme
        .server(
            "certs-wildcard",
            &["--acme-dns-hook", hook.to_str().unwrap()],
        )
        .await;
    let https: SocketAddr = ([127, 0, 0, 1], https_port).into();
    let alice = server.register("alice", Some("web")).await;
    let bob = server.register("bob", Some("ops")).await;
    let server = &server;
    let create = |token: &str, team: &str, name: &str, domains: &[&str]| {
        let body = json!({"name": name, "team": team, "image": berth_testkit::TESTAPP_IMAGE,
            "replicas": 0, "health_path": "/healthz", "cpu_millis": 100,
            "memory_bytes": 64 << 20, "domains": domains});
        let token = token.to_string();
        async move {
            server
                .call_as(&token, Method::POST, "/api/v1/apps", Some(body))
                .await
        }
    };

    // Claims: the wildcard is one app's; names under it are its team's.
    let (status, answer) = create(&alice, "web", "shop", &["*.Shop.test"]).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = create(&alice, "web", "exact", &["c.shop.test"]).await;
    assert_eq!(
        status, 201,
        "an exact name under the team's own wildcard: {answer}"
    );
    let (status, answer) = create(&bob, "ops", "spoof", &["a.shop.test"]).await;
    let message = support::assert_refused(status, &answer, 409, "under the wildcard *.shop.test");
    assert_eq!(answer["error"]["code"], json!("domain_taken"), "{answer}");
    assert!(message.contains("an app of another team"), "{message}");
    let (status, answer) = create(&bob, "ops", "spoof", &["*.shop.test"]).await;
    support::assert_refused(status, &answer, 409, "belongs to an app of another team");
    let (status, answer) = create(&bob, "ops", "spoof", &["*.test"]).await;
    assert_eq!(status, 400, "a wildcard of a top-level domain: {answer}");
    assert_eq!(answer["error"]["field"], json!("domains"), "{answer}");
    let (status, answer) = create(&bob, "ops", "spoof", &["*.localhost"]).await;
    assert_eq!(status, 400, "the apps domain's wildcard: {answer}");
    let (status, answer) = create(&bob, "ops", "spoof", &["*.web.localhost"]).await;
    support::assert_refused(status, &answer, 409, "team web's part");
    // A wildcard over a name another team holds would show it this team's certificate.
    let (status, answer) = create(&bob, "ops", "mine", &["x.mine.test"]).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = create(&alice, "web", "grab", &["*.mine.test"]).await;
    support::assert_refused(status, &answer, 409, "would stand for x.mine.test");
    let (status, _) = server
        .call_as(&bob, Method::GET, "/api/v1/apps/spoof", None)
        .await;
    assert_eq!(status, 404, "nothing half-created");

    let shop = server.app("shop").await;
    assert_eq!(shop["domains"][1]["domain"], json!("*.shop.test"), "{shop}");
    assert_eq!(
        shop["domains"][1]["url"],
        json!(null),
        "a wildcard is no link: {shop}"
    );

    // Routing: any one-label name under the wildcard, the exact name to its own app.
    wait_until("the wildcard routes", PATIENCE, || async {
        let (status, body) = plain_body(http_port, "a.shop.test").await;
        status == 503 && body.contains("app shop ")
    })
    .await;
    let (status, body) = plain_body(http_port, "B.Shop.Test").await;
    assert!(
        status == 503 && body.contains("app shop "),
        "{status} {body}"
    );
    let (status, body) = plain_body(http_port, "c.shop.test").await;
    assert!(
        status == 503 && body.contains("app exact "),
        "{status} {body}"
    );
    let (status, body) = plain_body(http_port, "x.y.shop.test").await;
    assert!(
        !body.contains("app shop "),
        "one label only: {status} {body}"
    );
    assert_eq!(plain_body(http_port, "shop.test").await.0, 404);

    // DNS-01 through the hook: one wildcard certificate for every name under it.
    let out = cli_ok(server, &["certs", "request", "shop", "*.shop.test"]);
    assert!(out.contains("acme certificate for *.shop.test"), "{out}");
    let hook_calls = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        hook_calls,
        "present _acme-challenge.shop.test\ncleanup _acme-challenge.shop.test\n"
    );
    let root = pebble.issuing_root().await;
    let mut leaves = Vec::new();
    for host in ["a.shop.test", "b.shop.test"] {
        let started = std::time::Instant::now();
        let answer = loop {
            if let Ok(answer) = berth_testkit::https_get(https, host, &root, "/").await {
                break Some(answer);
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{host}: no wildcard certificate served"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let answer = answer.unwrap();
        assert!(
            answer.status == 503 && answer.body.contains("app shop "),
            "{answer:?}"
        );
        leaves.push(answer.leaf);
    }
    assert_eq!(leaves[0], leaves[1], "one certificate for both names");
    let listed = server.get("/api/v1/apps/shop/certificates").await;
    assert_eq!(listed[0]["host"], json!("*.shop.test"), "{listed}");
    assert_eq!(listed[0]["names"], json!(["*.shop.test"]), "{listed}");

    // A hook that fails: the order fails naming its exit status and what it said.
    let (status, answer) = create(&alice, "web", "broken", &["*.broken.test"]).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = server
        .call_as(
            &alice,
            Method::POST,
            "/api/v1/apps/broken/certificates/*.broken.test/acme",
            None,
        )
        .await;
    let message = support::assert_refused(status, &answer, 502, "--acme-dns-hook");
    assert!(
        message.contains("exited with status 3: zone broken.test is not managed by this account"),
        "{message}"
    );
    let listed = server.get("/api/v1/apps/broken/certificates").await;
    assert_eq!(listed, json!([]), "nothing stored");

    // An uploaded wildcard certificate for a wildcard domain.
    let (_, ca) = test_ca("berth test: wildcard uploads CA");
    let (chain, key) = leaf(&ca, &["*.broken.test"], false);
    let (status, answer) = server
        .call_as(
            &alice,
            Method::PUT,
            "/api/v1/apps/broken/certificates/*.broken.test",
            Some(json!({"certificate": chain, "private_key": key})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["names"], json!(["*.broken.test"]), "{answer}");
    let (exact_chain, exact_key) = leaf(&ca, &["a.broken.test"], false);
    let (status, answer) = server
        .call_as(
            &alice,
            Method::PUT,
            "/api/v1/apps/broken/certificates/*.broken.test",
            Some(json!({"certificate": exact_chain, "private_key": exact_key})),
        )
        .await;
    assert_eq!(
        status, 400,
        "a certificate of one name for a wildcard: {answer}"
    );
    assert_eq!(answer["error"]["field"], json!("domain"), "{answer}");
}

/// On-demand certificates end to end: an admin makes app `sites` the catch-all (a team member
/// may not; a second app is refused while it is; an internal app, an unknown app and bad paths
/// are refused naming the field); the app's `/tls-ask` approves `good.customer.test` only. The
/// first HTTPS request to `good.customer.test` gets a certificate ordered from pebble during
/// the handshake and the app's answer (plain HTTP reaches the app too); `bad.customer.test` is
/// refused at the handshake, and the second attempt is refused from the denial cache without
/// asking the app again; both show as events on the app and in the log; the change is audited;
/// the on-demand certificate is renewed like any other; deleting the app clears the setting.
#[tokio::test(flavor = "multi_thread")]
async fn the_catch_all_app_gets_certificates_at_the_handshake_for_approved_hosts() {
    let acme = Acme::start(Some(Duration::from_secs(3600)));
    let (pebble, http_port, https_port) = (&acme.pebble, acme.http_port, acme.https_port);
    let server = acme
        .server(
            "certs-on-demand",
            &[
                "--on-demand-denial-ttl",
                "1h",
                "--acme-renew-before",
                "2h",
                "--acme-renew-interval",
                "2s",
            ],
        )
        .await;
    let https: SocketAddr = ([127, 0, 0, 1], https_port).into();
    let alice = server.register("alice", Some("web")).await;
    let (status, answer) = server
        .call_as(
            &alice,
            Method::POST,
            "/api/v1/apps",
            Some(
                json!({"name": "sites", "team": "web", "image": berth_testkit::TESTAPP_IMAGE,
                "replicas": 1, "health_path": "/healthz", "cpu_millis": 100,
                "memory_bytes": 64 << 20, "env": {"APPROVED_DOMAINS": "good.customer.test"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    server
        .create_app("other", 0, json!({"domains": ["other.berth.test"]}))
        .await;
    server
        .create_app("hidden", 0, json!({"internal": true}))
        .await;
    server.wait_rollout("sites", Duration::from_secs(120)).await;

    // Only admins choose the catch-all; bad input names its field and changes nothing.
    let put = |app: Value, ask: Value| json!({"app": app, "ask_path": ask});
    let path = "/api/v1/system/on-demand-domains";
    let (status, answer) = server
        .call_as(
            &alice,
            Method::PUT,
            path,
            Some(put(json!("sites"), json!("/tls-ask"))),
        )
        .await;
    assert_eq!(status, 403, "a team member: {answer}");
    for (body, want, field) in [
        (put(json!("sites"), json!("tls-ask")), 400, Some("ask_path")),
        (put(json!("sites"), json!("/a b")), 400, Some("ask_path")),
        (put(json!(null), json!("/tls-ask")), 400, Some("app")),
        (put(json!("hidden"), json!("/tls-ask")), 400, Some("app")),
        (put(json!("nope"), json!("/tls-ask")), 404, None),
    ] {
        let (status, answer) = server.call(Method::PUT, path, Some(body.clone())).await;
        assert_eq!(status, want, "{body}: {answer}");
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], json!(field), "{answer}");
        }
    }
    assert_eq!(server.get(path).await["app"], json!(null));
    let out = cli_ok(
        &server,
        &["domains", "on-demand-set", "sites", "--ask", "/tls-ask"],
    );
    assert!(out.contains("app sites receives"), "{out}");
    let (status, answer) = server
        .call(Method::PUT, path, Some(put(json!("other"), json!(null))))
        .await;
    support::assert_refused(status, &answer, 409, "sites");
    assert_eq!(answer["error"]["code"], json!("catch_all_taken"));
    assert_eq!(server.get(path).await["ask_path"], json!("/tls-ask"));

    // The first request to an approved host gets its certificate at the handshake.
    let root = pebble.issuing_root().await;
    // The router picks the setting up within a second.
    let started = std::time::Instant::now();
    let (status, body) = loop {
        match https_get(https, "good.customer.test", &root, "/").await {
            Ok(answer) => break answer,
            Err(why) => assert!(
                started.elapsed() < PATIENCE,
                "no certificate at the handshake: {why}\n{}",
                server.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"app\":\"sites\""), "{body}");
    let listed = server.get("/api/v1/apps/sites/certificates").await;
    assert_eq!(listed[0]["host"], json!("good.customer.test"), "{listed}");
    assert_eq!(listed[0]["source"], json!("acme"), "{listed}");
    let by = listed[0]["created_by"].clone();
    assert!(
        by == json!("on-demand") || by == json!("certificate-renewal"),
        "{listed}"
    );

    // Plain HTTP for the host reaches the app too.
    let (status, body) = plain_body(http_port, "good.customer.test").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"app\":\"sites\""), "{body}");

    // A host the app does not approve is refused, then refused from the denial cache.
    for _ in 0..2 {
        let refused = https_get(https, "bad.customer.test", &root, "/").await;
        assert!(refused.is_err(), "{refused:?}");
    }
    // Names under the apps domain never reach the catch-all.
    assert!(
        https_get(https, "x.web.localhost", &root, "/")
            .await
            .is_err()
    );
    let events = server.events("sites").await;
    let kinds = |kind: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["kind"] == json!(kind))
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let issued = kinds("certificate_issued");
    assert_eq!(issued.len(), 1, "{events:#?}");
    assert!(issued[0].contains("good.customer.test"), "{issued:?}");
    let refused = kinds("certificate_refused");
    assert_eq!(refused.len(), 2, "{events:#?}");
    assert!(
        refused.iter().all(|m| m.contains("bad.customer.test")),
        "{refused:?}"
    );
    assert!(
        refused[0].contains("403") || refused[1].contains("403"),
        "{refused:?}"
    );
    assert_eq!(
        refused.iter().filter(|m| m.contains("remembered")).count(),
        1,
        "the second refusal did not ask the app again: {refused:?}"
    );
    let log = server.log();
    assert!(
        log.contains("no on-demand certificate") && log.contains("bad.customer.test"),
        "a log line names the host and the reason"
    );
    let audit = server.get("/api/v1/audit?limit=500").await.to_string();
    assert!(audit.contains("system.on-demand-domains.put"), "{audit}");

    // Renewal covers on-demand certificates like any other.
    wait_until("the on-demand certificate is renewed", PATIENCE, || async {
        server.events("sites").await.iter().any(|e| {
            e["kind"] == json!("certificate_renewed")
                && e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("good.customer.test")
        })
    })
    .await;
    let (status, _) = https_get(https, "good.customer.test", &root, "/")
        .await
        .expect("the renewed certificate is served");
    assert_eq!(status, 200);

    // Deleting the catch-all app clears the setting: a new app of that name does not inherit it.
    let (status, answer) = server
        .call(Method::DELETE, "/api/v1/apps/sites", None)
        .await;
    assert!((200..300).contains(&status), "{answer}");
    assert_eq!(server.get(path).await["app"], json!(null));
}
