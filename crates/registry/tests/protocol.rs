//! The OCI Distribution protocol endpoint by endpoint, over real HTTP with reqwest: status
//! codes, headers and error codes, happy and unhappy paths.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use berth_registry::{
    Access, Action, AuthDecision, Authorizer, Credentials, Digest, RegistryConfig,
};
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use support::{OCI_INDEX, OCI_MANIFEST, TestRegistry, descriptor, error_codes, random_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Sends a request byte for byte (reqwest would normalise `..` away).
async fn raw_request(reg: &TestRegistry, request_line: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(reg.addr).await.unwrap();
    let req = format!(
        "{request_line}\r\nHost: {}\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        reg.host()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn base_endpoint_and_authentication() {
    let reg = support::start().await;
    let r = reg.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    let r = reg.req(Method::HEAD, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = reg
        .client
        .get(reg.url("/v2/"))
        .bearer_auth("secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    for r in [
        reg.client.get(reg.url("/v2/")).send().await.unwrap(),
        reg.client
            .get(reg.url("/v2/"))
            .basic_auth("admin", Some("wrong"))
            .send()
            .await
            .unwrap(),
        reg.client
            .get(reg.url("/v2/team/app/tags/list"))
            .send()
            .await
            .unwrap(),
        reg.client
            .post(reg.url("/v2/team/app/blobs/uploads/"))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some("Basic realm=\"Berth Registry\"")
        );
        assert_eq!(
            header(&r, "docker-distribution-api-version").as_deref(),
            Some("registry/2.0")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
        // Docker retries a push whose 401 carries no detail (see error.rs).
        assert!(!body["errors"][0]["detail"].is_null(), "{body}");
    }
}

/// Users `<team>` with password `<team>-pw` may push to `<team>/*` and pull it and `public/*`.
struct TeamAuthorizer;

#[async_trait]
impl Authorizer for TeamAuthorizer {
    async fn authorize(&self, credentials: Option<&Credentials>, access: &Access) -> AuthDecision {
        let Some(Credentials::Basic { username, password }) = credentials else {
            return AuthDecision::Unauthenticated;
        };
        if *password != format!("{username}-pw") {
            return AuthDecision::Unauthenticated;
        }
        let own = |r: &str| r.starts_with(&format!("{username}/"));
        match (access.action, access.repository.as_deref()) {
            (Action::Login | Action::Catalog, _) => AuthDecision::Allow,
            (Action::Pull, Some(r)) if own(r) || r.starts_with("public/") => AuthDecision::Allow,
            (_, Some(r)) if own(r) => AuthDecision::Allow,
            (_, r) => AuthDecision::Denied(format!("{username} may not do that to {r:?}")),
        }
    }
}

#[tokio::test]
async fn another_teams_repository_is_denied() {
    let reg = support::start_with(Arc::new(TeamAuthorizer), RegistryConfig::default(), None).await;
    let as_user = |user: &str, m: Method, path: &str| {
        reg.client
            .request(m, reg.url(path))
            .basic_auth(user, Some(format!("{user}-pw")))
    };
    let data = random_bytes(100);
    let digest = Digest::of(&data);
    let r = as_user(
        "alpha",
        Method::POST,
        &format!("/v2/alpha/app/blobs/uploads/?digest={digest}"),
    )
    .body(data.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // beta cannot push into alpha's namespace, nor read it.
    let r = as_user("beta", Method::POST, "/v2/alpha/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_codes(r).await, ["DENIED"]);
    let r = as_user(
        "beta",
        Method::GET,
        &format!("/v2/alpha/app/blobs/{digest}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = as_user(
        "beta",
        Method::DELETE,
        &format!("/v2/alpha/app/blobs/{digest}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Mounting from a repository beta may not pull gives an ordinary session instead.
    let r = as_user(
        "beta",
        Method::POST,
        &format!("/v2/beta/app/blobs/uploads/?mount={digest}&from=alpha/app"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = as_user(
        "beta",
        Method::HEAD,
        &format!("/v2/beta/app/blobs/{digest}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The catalog only lists what the caller may pull.
    let r = as_user(
        "beta",
        Method::POST,
        &format!("/v2/beta/app/blobs/uploads/?digest={digest}"),
    )
    .body(data)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = as_user("beta", Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["beta/app"]));
}

/// `admin` may do everything; `guest` (password `guest-pw`) everything but `secret/*`, which
/// is hidden from them. Counts the catalog filterings it is asked for.
#[derive(Default)]
struct HidingAuthorizer {
    catalog_calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Authorizer for HidingAuthorizer {
    async fn authorize(&self, credentials: Option<&Credentials>, access: &Access) -> AuthDecision {
        let Some(Credentials::Basic { username, password }) = credentials else {
            return AuthDecision::Unauthenticated;
        };
        match (username.as_str(), password.as_str()) {
            ("admin", "secret") => AuthDecision::Allow,
            ("guest", "guest-pw") => match &access.repository {
                Some(r) if r.starts_with("secret/") => AuthDecision::Hidden,
                _ => AuthDecision::Allow,
            },
            _ => AuthDecision::Unauthenticated,
        }
    }

    async fn readable(
        &self,
        credentials: Option<&Credentials>,
        _catalog: &Access,
        repositories: Vec<String>,
    ) -> Vec<String> {
        self.catalog_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guest = credentials.and_then(Credentials::username) == Some("guest");
        repositories
            .into_iter()
            .filter(|r| !(guest && r.starts_with("secret/")))
            .collect()
    }
}

fn as_guest(reg: &TestRegistry, method: Method, path: &str) -> reqwest::RequestBuilder {
    reg.client
        .request(method, reg.url(path))
        .basic_auth("guest", Some("guest-pw"))
}

/// Status, headers (but the date) and body (the repository name masked) of a guest's request
/// for `path` with `{repo}` replaced by `repo`.
async fn guest_answer(
    reg: &TestRegistry,
    method: &Method,
    path: &str,
    repo: &str,
) -> (StatusCode, Vec<(String, String)>, String) {
    let r = as_guest(reg, method.clone(), &path.replace("{repo}", repo))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    let body = r.text().await.unwrap().replace(repo, "<repo>");
    (status, headers, body)
}

#[tokio::test]
async fn hidden_repositories_answer_like_missing_ones() {
    let auth = Arc::new(HidingAuthorizer::default());
    let reg = support::start_with(auth.clone(), RegistryConfig::default(), None).await;
    let image = reg.push_image("secret/app", "v1", 1, 100).await;
    let (m, layer) = (&image.digest, &image.layers[0]);
    let paths = [
        (Method::GET, "/v2/{repo}/tags/list".to_owned()),
        (Method::GET, "/v2/{repo}/tags/list?n=1".to_owned()),
        (Method::GET, "/v2/{repo}/manifests/v1".to_owned()),
        (Method::HEAD, "/v2/{repo}/manifests/v1".to_owned()),
        (Method::GET, format!("/v2/{{repo}}/manifests/{m}")),
        (Method::GET, "/v2/{repo}/manifests/bad!tag".to_owned()),
        (Method::GET, format!("/v2/{{repo}}/blobs/{layer}")),
        (Method::HEAD, format!("/v2/{{repo}}/blobs/{layer}")),
        (Method::GET, "/v2/{repo}/blobs/sha256:abc".to_owned()),
        (Method::GET, format!("/v2/{{repo}}/referrers/{m}")),
        (
            Method::GET,
            format!("/v2/{{repo}}/referrers/{m}?artifactType=x"),
        ),
        (Method::GET, "/v2/{repo}/referrers/sha256:abc".to_owned()),
    ];
    for (method, path) in paths {
        let hidden = guest_answer(&reg, &method, &path, "secret/app").await;
        let missing = guest_answer(&reg, &method, &path, "absent/app").await;
        assert_eq!(hidden, missing, "{method} {path}");
        assert!(hidden.0 != StatusCode::FORBIDDEN, "{method} {path}");
    }
    // The admin still sees it; other actions are plainly denied to the guest.
    let r = reg
        .req(Method::GET, "/v2/secret/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for (method, path) in [
        (Method::POST, "/v2/secret/app/blobs/uploads/".to_owned()),
        (Method::DELETE, format!("/v2/secret/app/manifests/{m}")),
    ] {
        let r = as_guest(&reg, method.clone(), &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(error_codes(r).await, ["DENIED"]);
    }
    // The catalog is filtered by the authorizer's own `readable`.
    reg.push_blob("open/app", b"x").await;
    let r = as_guest(&reg, Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["open/app"]));
    assert_eq!(
        auth.catalog_calls.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn monolithic_upload_and_blob_fetch() {
    let reg = support::start().await;
    let data = random_bytes(5000);
    let digest = Digest::of(&data);
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        Some(format!("/v2/team/app/blobs/{digest}"))
    );
    assert_eq!(
        header(&r, "docker-content-digest"),
        Some(digest.to_string())
    );

    let r = reg
        .req(Method::HEAD, &format!("/v2/team/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length").as_deref(), Some("5000"));
    assert_eq!(
        header(&r, "docker-content-digest"),
        Some(digest.to_string())
    );
    assert_eq!(r.bytes().await.unwrap().len(), 0);

    let r = reg
        .req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "docker-content-digest"),
        Some(digest.to_string())
    );
    assert_eq!(header(&r, "accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(r.bytes().await.unwrap(), data);

    // Stored once, content-addressed.
    let path = reg
        .blob_dir()
        .join("sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex());
    assert_eq!(std::fs::read(path).unwrap(), data);

    // An empty blob is a blob too.
    let empty = Digest::of(b"");
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={empty}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .req(Method::GET, &format!("/v2/team/app/blobs/{empty}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-length").as_deref(), Some("0"));
}

#[tokio::test]
async fn post_then_put_upload() {
    let reg = support::start().await;
    let r = reg
        .req(Method::POST, "/v2/team/app/blobs/uploads/")
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = header(&r, "location").unwrap();
    let uuid = header(&r, "docker-upload-uuid").unwrap();
    assert_eq!(location, format!("/v2/team/app/blobs/uploads/{uuid}"));
    assert_eq!(header(&r, "range").as_deref(), Some("0-0"));

    let data = random_bytes(3000);
    let digest = Digest::of(&data);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        Some(format!("/v2/team/app/blobs/{digest}"))
    );
    // The session is over.
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_codes(r).await, ["BLOB_UPLOAD_UNKNOWN"]);
}

#[tokio::test]
async fn chunked_upload_with_content_range() {
    let reg = support::start().await;
    let location = reg.start_upload("team/app").await;
    let data = random_bytes(25);
    let patch = |range: &str, body: &[u8]| {
        reg.req(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(body.to_vec())
            .send()
    };

    let r = patch("0-9", &data[0..10]).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range").as_deref(), Some("0-9"));
    assert_eq!(header(&r, "location").as_deref(), Some(location.as_str()));
    assert!(header(&r, "docker-upload-uuid").is_some());

    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "range").as_deref(), Some("0-9"));
    assert_eq!(header(&r, "location").as_deref(), Some(location.as_str()));

    let r = patch("10-19", &data[10..20]).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range").as_deref(), Some("0-19"));

    // Out of order (a gap, an overlap) and malformed ranges: 416 with the current range.
    for (range, body) in [
        ("30-34", &data[20..25]),
        ("15-19", &data[15..20]),
        ("abc", &data[20..25]),
    ] {
        let r = patch(range, body).await.unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&r, "range").as_deref(), Some("0-19"), "{range}");
        assert_eq!(header(&r, "location").as_deref(), Some(location.as_str()));
        assert_eq!(error_codes(r).await, ["BLOB_UPLOAD_INVALID"]);
    }
    // A range that does not match the chunk's length changes nothing.
    let r = patch("20-29", &data[20..25]).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(r).await, ["SIZE_INVALID"]);
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(header(&r, "range").as_deref(), Some("0-19"));

    // The last chunk comes with the closing PUT.
    let digest = Digest::of(&data);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "20-24")
        .body(data[20..25].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn streamed_patch_without_content_range() {
    // What docker does: one PATCH with a chunked body, then an empty PUT.
    let reg = support::start().await;
    let location = reg.start_upload("team/app").await;
    let parts: Vec<Bytes> = (0..8)
        .map(|_| Bytes::from(random_bytes(64 * 1024)))
        .collect();
    let all: Vec<u8> = parts.iter().flat_map(|b| b.to_vec()).collect();
    let stream = futures::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
    let r = reg
        .req(Method::PATCH, &location)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&r, "range"), Some(format!("0-{}", all.len() - 1)));
    let digest = Digest::of(&all);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), all);
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_leaves_no_blob() {
    let reg = support::start().await;
    let data = random_bytes(2048);
    let actual = Digest::of(&data);
    let claimed = Digest::of(b"something else");

    // Chunked, then a PUT with the wrong digest.
    let location = reg.start_upload("team/app").await;
    let r = reg
        .req(Method::PATCH, &location)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={claimed}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "DIGEST_INVALID");
    assert_eq!(v["errors"][0]["detail"]["computed"], actual.as_str());

    // Monolithic with the wrong digest.
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={claimed}"),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(r).await, ["DIGEST_INVALID"]);

    for d in [&actual, &claimed] {
        let r = reg
            .req(Method::HEAD, &format!("/v2/team/app/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(support::file_count(&reg.blob_dir()), 0);
    assert_eq!(support::file_count(&reg.upload_dir()), 0);
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(error_codes(r).await, ["BLOB_UPLOAD_UNKNOWN"]);
}

#[tokio::test]
async fn digest_parameter_errors() {
    let reg = support::start().await;
    let location = reg.start_upload("team/app").await;
    let cases = [
        (location.clone(), "DIGEST_INVALID"),
        (format!("{location}?digest=sha256:abc"), "DIGEST_INVALID"),
        (
            format!("{location}?digest=sha512:{}", "ab".repeat(64)),
            "UNSUPPORTED",
        ),
    ];
    for (url, code) in cases {
        let r = reg.req(Method::PUT, &url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(error_codes(r).await, [code], "{url}");
    }
    // The session survived the bad requests.
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = reg
        .req(Method::GET, "/v2/team/app/blobs/sha256:nothex")
        .send()
        .await
        .unwrap();
    assert_eq!(error_codes(r).await, ["DIGEST_INVALID"]);
}

#[tokio::test]
async fn upload_sessions_are_scoped_and_cancellable() {
    let reg = support::start().await;
    let r = reg
        .req(
            Method::PATCH,
            "/v2/team/app/blobs/uploads/0b2bd8f8-3b1c-4b43-9f4c-0c1d2e3f4a5b",
        )
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_codes(r).await, ["BLOB_UPLOAD_UNKNOWN"]);

    let location = reg.start_upload("team/app").await;
    let other = location.replace("team/app", "team/other");
    let r = reg.req(Method::GET, &other).send().await.unwrap();
    assert_eq!(error_codes(r).await, ["BLOB_UPLOAD_UNKNOWN"]);

    let r = reg.req(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(support::file_count(&reg.upload_dir()), 0);
}

#[tokio::test]
async fn blob_range_requests() {
    let reg = support::start().await;
    let data = random_bytes(100);
    let digest = reg.push_blob("team/app", &data).await;
    let get = |range: &'static str| {
        reg.req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
            .header("range", range)
            .send()
    };
    let r = get("bytes=10-19").await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&r, "content-range").as_deref(),
        Some("bytes 10-19/100")
    );
    assert_eq!(header(&r, "content-length").as_deref(), Some("10"));
    assert_eq!(r.bytes().await.unwrap(), data[10..20]);

    let r = get("bytes=90-").await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), data[90..]);
    let r = get("bytes=-5").await.unwrap();
    assert_eq!(
        header(&r, "content-range").as_deref(),
        Some("bytes 95-99/100")
    );
    assert_eq!(r.bytes().await.unwrap(), data[95..]);

    for bad in ["bytes=100-", "bytes=200-300", "bytes=20-10"] {
        let r = get(bad).await.unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        assert_eq!(header(&r, "content-range").as_deref(), Some("bytes */100"));
    }
}

#[tokio::test]
async fn unknown_and_deleted_blobs() {
    let reg = support::start().await;
    let data = random_bytes(64);
    let digest = reg.push_blob("team/a", &data).await;
    // Another repository does not see it.
    for path in [
        format!("/v2/team/b/blobs/{digest}"),
        format!("/v2/team/a/blobs/{}", Digest::of(b"never pushed")),
    ] {
        let r = reg.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_codes(r).await, ["BLOB_UNKNOWN"]);
    }
    let r = reg
        .req(Method::DELETE, &format!("/v2/team/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg
        .req(Method::HEAD, &format!("/v2/team/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = reg
        .req(Method::DELETE, &format!("/v2/team/a/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_codes(r).await, ["BLOB_UNKNOWN"]);
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = support::start().await;
    let data = random_bytes(4096);
    let digest = reg.push_blob("team/a", &data).await;
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/a"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        Some(format!("/v2/team/b/blobs/{digest}"))
    );
    assert_eq!(
        header(&r, "docker-content-digest"),
        Some(digest.to_string())
    );
    let r = reg
        .req(Method::GET, &format!("/v2/team/b/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), data);

    // The source does not have it, or no source given: an upload session instead.
    let missing = Digest::of(b"nope");
    for query in [
        format!("mount={missing}&from=team/a"),
        format!("mount={digest}&from=team/empty"),
        format!("mount={digest}"),
    ] {
        let r = reg
            .req(Method::POST, &format!("/v2/team/c/blobs/uploads/?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{query}");
        assert!(
            header(&r, "location")
                .unwrap()
                .starts_with("/v2/team/c/blobs/uploads/")
        );
    }
}

#[tokio::test]
async fn manifest_push_and_pull() {
    let reg = support::start().await;
    let image = reg.push_image("team/app", "v1", 2, 1000).await;
    for reference in ["v1".to_string(), image.digest.to_string()] {
        let path = format!("/v2/team/app/manifests/{reference}");
        let r = reg
            .req(Method::GET, &path)
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "content-type").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            header(&r, "docker-content-digest"),
            Some(image.digest.to_string())
        );
        assert_eq!(
            header(&r, "content-length"),
            Some(image.manifest.len().to_string())
        );
        assert_eq!(r.bytes().await.unwrap(), image.manifest);

        let r = reg.req(Method::HEAD, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "docker-content-digest"),
            Some(image.digest.to_string())
        );
        assert_eq!(
            header(&r, "content-length"),
            Some(image.manifest.len().to_string())
        );
        assert!(r.bytes().await.unwrap().is_empty());
    }

    // Push by digest: 201 with the Location and digest.
    let r = reg
        .push_manifest(
            "team/app",
            image.digest.as_str(),
            &image.manifest,
            OCI_MANIFEST,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location"),
        Some(format!("/v2/team/app/manifests/{}", image.digest))
    );
    assert_eq!(
        header(&r, "docker-content-digest"),
        Some(image.digest.to_string())
    );

    // Pushed to the wrong digest.
    let wrong = Digest::of(b"x");
    let r = reg
        .push_manifest("team/app", wrong.as_str(), &image.manifest, OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(r).await, ["DIGEST_INVALID"]);

    // Unknown tag, unknown repository, invalid tag.
    let r = reg
        .req(Method::GET, "/v2/team/app/manifests/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_codes(r).await, ["MANIFEST_UNKNOWN"]);
    let r = reg
        .req(Method::GET, "/v2/team/nothing/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_codes(r).await, ["NAME_UNKNOWN"]);
    let r = reg
        .push_manifest("team/app", ".bad", &image.manifest, OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_codes(r).await, ["MANIFEST_INVALID"]);
}

#[tokio::test]
async fn manifest_validation_errors() {
    let reg = support::start().await;
    let layer = random_bytes(100);
    let layer_digest = reg.push_blob("team/app", &layer).await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = reg.push_blob("team/app", config).await;
    let other_repo_blob = reg.push_blob("team/other", &random_bytes(10)).await;
    let unknown = Digest::of(b"never pushed");
    let manifest = |layer: &Digest| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", &config_digest, config.len()),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer, 100)],
        }))
        .unwrap()
    };
    for missing in [&unknown, &other_repo_blob] {
        let r = reg
            .push_manifest("team/app", "v1", &manifest(missing), OCI_MANIFEST)
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["detail"]["digest"], missing.as_str());
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, &unknown, 10)],
    }))
    .unwrap();
    let r = reg
        .push_manifest("team/app", "idx", &index, OCI_INDEX)
        .await;
    assert_eq!(error_codes(r).await, ["MANIFEST_BLOB_UNKNOWN"]);

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), OCI_MANIFEST),
        (b"{}".to_vec(), OCI_MANIFEST),
        (manifest(&layer_digest), OCI_INDEX),
        (
            String::from_utf8(manifest(&layer_digest))
                .unwrap()
                .replace("\"schemaVersion\":2", "\"schemaVersion\":3")
                .into_bytes(),
            OCI_MANIFEST,
        ),
    ];
    for (body, ct) in cases {
        let r = reg.push_manifest("team/app", "v1", &body, ct).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_codes(r).await, ["MANIFEST_INVALID"]);
    }
    // Nothing was tagged by the failures; the valid one goes through.
    let r = reg
        .req(Method::GET, "/v2/team/app/tags/list")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], serde_json::json!([]));
    let r = reg
        .push_manifest("team/app", "v1", &manifest(&layer_digest), OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Too large.
    let huge = vec![b' '; 5 << 20];
    let r = reg
        .push_manifest("team/app", "big", &huge, OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn docker_schema2_manifest_list() {
    let reg = support::start().await;
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    let docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
    let config = br#"{"architecture":"arm64","os":"linux","created":"2023-01-01T00:00:00Z"}"#;
    let config_digest = reg.push_blob("team/app", config).await;
    let layer = random_bytes(300);
    let layer_digest = reg.push_blob("team/app", &layer).await;
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": docker_manifest,
        "config": descriptor("application/vnd.docker.container.image.v1+json", &config_digest, config.len()),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer_digest, layer.len())],
    }))
    .unwrap();
    let md = Digest::of(&m);
    let r = reg
        .push_manifest("team/app", md.as_str(), &m, docker_manifest)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut entry = descriptor(docker_manifest, &md, m.len());
    entry["platform"] =
        serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": docker_list,
        "manifests": [entry],
    }))
    .unwrap();
    let r = reg
        .push_manifest("team/app", "multi", &list, docker_list)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = reg
        .req(Method::GET, "/v2/team/app/manifests/multi")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "content-type").as_deref(), Some(docker_list));
    assert_eq!(r.bytes().await.unwrap(), list);

    let detail = reg
        .registry
        .image_detail("team/app", "multi")
        .await
        .unwrap();
    assert_eq!(detail.platforms.len(), 1);
    assert_eq!(detail.platforms[0].variant.as_deref(), Some("v8"));
    let tags = reg.registry.list_tags("team/app").await.unwrap();
    assert_eq!(tags[0].size_bytes, (config.len() + layer.len()) as u64);
    assert_eq!(tags[0].created.as_deref(), Some("2023-01-01T00:00:00Z"));
}

#[tokio::test]
async fn bad_names_are_rejected() {
    let reg = support::start().await;
    for path in [
        "/v2/Team/app/tags/list",
        "/v2/team/App/manifests/v1",
        "/v2/team/app%2F..%2F..%2Fetc/tags/list",
        "/v2/team__x___y/tags/list",
    ] {
        let r = reg.req(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_codes(r).await, ["NAME_INVALID"], "{path}");
    }
    for line in [
        "GET /v2/../etc/tags/list HTTP/1.1",
        "GET /v2/team/../../etc/manifests/v1 HTTP/1.1",
        "POST /v2/../../tmp/blobs/uploads/ HTTP/1.1",
        "GET /v2/./app/tags/list HTTP/1.1",
    ] {
        let (status, body) = raw_request(&reg, line).await;
        assert_eq!(status, 400, "{line}: {body}");
        assert!(body.contains("NAME_INVALID"), "{line}: {body}");
    }
    // Upload ids that are not ids name no file and no record: unknown, whatever they hold.
    for line in [
        "PATCH /v2/team/app/blobs/uploads/.. HTTP/1.1",
        "GET /v2/team/app/blobs/uploads/..%2F..%2Fetc HTTP/1.1",
        "PUT /v2/team/app/blobs/uploads/%2e%2e?digest=sha256:\
         0000000000000000000000000000000000000000000000000000000000000000 HTTP/1.1",
        "DELETE /v2/team/app/blobs/uploads/uploads HTTP/1.1",
    ] {
        let (status, body) = raw_request(&reg, line).await;
        assert_eq!(status, 404, "{line}: {body}");
        assert!(body.contains("BLOB_UPLOAD_UNKNOWN"), "{line}: {body}");
    }
    // Nothing was created outside the repositories tree.
    let meta = reg.dir.path().join("registry/meta");
    assert!(!meta.join("etc").exists());
    assert!(!reg.dir.path().join("etc").exists());

    let r = reg
        .req(Method::POST, "/v2/team/app/tags/list")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn tags_pagination() {
    let reg = support::start().await;
    let image = reg.push_image("team/app", "c", 1, 10).await;
    for tag in ["a", "e", "b", "d"] {
        let r = reg
            .push_manifest("team/app", tag, &image.manifest, OCI_MANIFEST)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let list = |q: &str| {
        reg.req(Method::GET, &format!("/v2/team/app/tags/list{q}"))
            .send()
    };
    let r = list("").await.unwrap();
    assert!(header(&r, "link").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v,
        serde_json::json!({"name": "team/app", "tags": ["a", "b", "c", "d", "e"]})
    );

    let mut next = Some("/v2/team/app/tags/list?n=2".to_string());
    let mut pages = Vec::new();
    while let Some(path) = next.take() {
        let r = reg.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        next = header(&r, "link").map(|l| {
            assert!(l.ends_with(">; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_string()
        });
        let v: serde_json::Value = r.json().await.unwrap();
        pages.push(v["tags"].clone());
    }
    assert_eq!(
        pages,
        [
            serde_json::json!(["a", "b"]),
            serde_json::json!(["c", "d"]),
            serde_json::json!(["e"])
        ]
    );
    let r = list("?n=2").await.unwrap();
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/team/app/tags/list?n=2&last=b>; rel=\"next\"")
    );
    let r = list("?n=0").await.unwrap();
    assert!(header(&r, "link").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], serde_json::json!([]));
    let r = list("?last=c").await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], serde_json::json!(["d", "e"]));
    let r = list("?n=x").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = reg
        .req(Method::GET, "/v2/team/none/tags/list")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_codes(r).await, ["NAME_UNKNOWN"]);
}

#[tokio::test]
async fn catalog_with_pagination() {
    let reg = support::start().await;
    for repo in ["team/b", "other", "team/a", "team/a/sub"] {
        reg.push_blob(repo, &random_bytes(10)).await;
    }
    let r = reg.req(Method::GET, "/v2/_catalog").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["other", "team/a", "team/a/sub", "team/b"])
    );
    let r = reg
        .req(Method::GET, "/v2/_catalog?n=3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/_catalog?n=3&last=team/a/sub>; rel=\"next\"")
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["other", "team/a", "team/a/sub"])
    );
    let r = reg
        .req(Method::GET, "/v2/_catalog?n=3&last=team/a/sub")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "link").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["repositories"], serde_json::json!(["team/b"]));
}

#[tokio::test]
async fn referrers_with_artifact_type_filter() {
    let reg = support::start().await;
    let image = reg.push_image("team/app", "v1", 1, 100).await;
    let empty = br#"{}"#;
    let empty_digest = reg.push_blob("team/app", empty).await;
    let artifact = |artifact_type: &str, subject: &Digest, note: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor("application/vnd.oci.empty.v1+json", &empty_digest, 2),
            "layers": [],
            "subject": descriptor(OCI_MANIFEST, subject, 100),
            "annotations": { "note": note },
        }))
        .unwrap()
    };
    let sig = artifact("application/vnd.example.sig", &image.digest, "signature");
    let sbom = artifact("application/vnd.example.sbom", &image.digest, "sbom");
    for body in [&sig, &sbom] {
        let d = Digest::of(body);
        let r = reg
            .push_manifest("team/app", d.as_str(), body, OCI_MANIFEST)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(header(&r, "oci-subject"), Some(image.digest.to_string()));
    }
    // A referrer may arrive before its subject.
    let future_subject = Digest::of(b"not pushed yet");
    let early = artifact("application/vnd.example.sig", &future_subject, "early");
    let r = reg
        .push_manifest(
            "team/app",
            Digest::of(&early).as_str(),
            &early,
            OCI_MANIFEST,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let path = format!("/v2/team/app/referrers/{}", image.digest);
    let r = reg.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type").as_deref(), Some(OCI_INDEX));
    assert!(header(&r, "oci-filters-applied").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let mut types: Vec<_> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap().to_owned())
        .collect();
    types.sort();
    assert_eq!(
        types,
        [
            "application/vnd.example.sbom",
            "application/vnd.example.sig"
        ]
    );

    let r = reg
        .req(
            Method::GET,
            &format!("{path}?artifactType=application/vnd.example.sig"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "oci-filters-applied").as_deref(),
        Some("artifactType")
    );
    let v: serde_json::Value = r.json().await.unwrap();
    let entries = v["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], Digest::of(&sig).as_str());
    assert_eq!(entries[0]["mediaType"], OCI_MANIFEST);
    assert_eq!(entries[0]["size"], sig.len());
    assert_eq!(entries[0]["annotations"]["note"], "signature");

    // No referrers: an empty index, not a 404.
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/team/app/referrers/{}", Digest::of(b"zzz")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));
    let r = reg
        .req(Method::GET, "/v2/team/app/referrers/sha256:bad")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Deleting a referrer removes it from the list.
    let r = reg
        .req(
            Method::DELETE,
            &format!("/v2/team/app/manifests/{}", Digest::of(&sig)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = reg.req(Method::GET, &path).send().await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn delete_tag_versus_delete_manifest() {
    let reg = support::start().await;
    let image = reg.push_image("team/app", "v1", 1, 100).await;
    let r = reg
        .push_manifest("team/app", "v2", &image.manifest, OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let status = |reference: String| {
        let reg = &reg;
        async move {
            reg.req(Method::GET, &format!("/v2/team/app/manifests/{reference}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    let r = reg
        .req(Method::DELETE, "/v2/team/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status("v1".into()).await, StatusCode::NOT_FOUND);
    assert_eq!(status("v2".into()).await, StatusCode::OK);
    assert_eq!(status(image.digest.to_string()).await, StatusCode::OK);

    let r = reg
        .req(
            Method::DELETE,
            &format!("/v2/team/app/manifests/{}", image.digest),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(status("v2".into()).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status(image.digest.to_string()).await,
        StatusCode::NOT_FOUND
    );
    let r = reg
        .req(Method::GET, "/v2/team/app/tags/list")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["tags"], serde_json::json!([]));

    for (path, code) in [
        (
            format!("/v2/team/app/manifests/{}", image.digest),
            "MANIFEST_UNKNOWN",
        ),
        ("/v2/team/app/manifests/v1".to_string(), "MANIFEST_UNKNOWN"),
        ("/v2/team/ghost/manifests/v1".to_string(), "NAME_UNKNOWN"),
    ] {
        let r = reg.req(Method::DELETE, &path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_codes(r).await, [code], "{path}");
    }
    // The layers stay until garbage collection.
    let r = reg
        .req(
            Method::HEAD,
            &format!("/v2/team/app/blobs/{}", image.layers[0]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
