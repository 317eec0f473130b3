//! The external-registry client against a real registry (the built-in one, served over HTTP):
//! it must describe what it finds exactly as the registry itself does, follow pagination,
//! answer Basic and bearer-token challenges (tokens cached per scope, fetched again when
//! refused), and delete tags and images. Distribution itself is exercised end to end in
//! `crates/berth/tests/external_registries.rs`.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use berth_registry::{ImageSource, RegistryError, RemoteCredentials, RemoteRegistry, TagSummary};
use support::{OCI_INDEX, OCI_MANIFEST, PASSWORD, TestImage, TestRegistry, USER, descriptor};

fn credentials(password: &str) -> Option<RemoteCredentials> {
    Some(RemoteCredentials {
        username: USER.into(),
        password: password.into(),
    })
}

/// `team/a:v1` and `team/a:v2` (one image), `team/b:latest`, and `team/multi:v1`, an index of
/// two platform images.
async fn fill(reg: &TestRegistry) -> (TestImage, TestImage) {
    let a = reg.push_image("team/a", "v1", 2, 3000).await;
    let r = reg
        .push_manifest("team/a", "v2", &a.manifest, OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = reg.push_image("team/b", "latest", 1, 1000).await;
    let amd = reg.push_image("team/multi", "amd64", 1, 500).await;
    let arm = reg.push_image("team/multi", "arm64", 1, 700).await;
    let platform = |image: &TestImage, arch: &str| {
        let mut d = descriptor(OCI_MANIFEST, &image.digest, image.manifest.len());
        d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
        d
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [platform(&amd, "amd64"), platform(&arm, "arm64")],
    });
    let r = reg
        .push_manifest(
            "team/multi",
            "v1",
            &serde_json::to_vec(&index).unwrap(),
            OCI_INDEX,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    (a, b)
}

/// The built-in registry's answer as an external registry's client can know it.
fn without_push_times(mut tags: Vec<TagSummary>) -> Vec<TagSummary> {
    for t in &mut tags {
        t.pushed_at = None;
    }
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_a_registry_as_the_registry_itself_does() {
    let reg = support::start().await;
    let (a, b) = fill(&reg).await;
    let remote = RemoteRegistry::new(&reg.url(""), credentials(PASSWORD))
        .unwrap()
        .with_page_size(1);

    // Pages of one entry: the Link header is followed to the end.
    assert_eq!(
        remote.catalog().await.unwrap(),
        vec!["team/a", "team/b", "team/multi"]
    );
    assert_eq!(remote.tags("team/a").await.unwrap(), vec!["v1", "v2"]);
    assert_eq!(
        remote.resolve("team/a", "v2").await.unwrap(),
        a.digest.to_string()
    );
    let (digest, media_type, body) = remote.manifest("team/b", "latest").await.unwrap();
    assert_eq!(
        (digest, media_type, body.to_vec()),
        (
            b.digest.to_string(),
            OCI_MANIFEST.to_string(),
            b.manifest.clone()
        )
    );

    let built_in = reg.registry.list_repositories(None).await.unwrap();
    let listed = remote.list_repositories(None).await.unwrap();
    assert_eq!(listed.len(), 3);
    for (remote, local) in listed.iter().zip(&built_in) {
        assert_eq!(remote.name, local.name);
        assert_eq!(remote.tag_count, local.tag_count, "{}", local.name);
        assert_eq!(
            remote.manifest_count, local.manifest_count,
            "{}",
            local.name
        );
        assert_eq!(remote.size_bytes, local.size_bytes, "{}", local.name);
        assert_eq!(
            remote.last_pushed, None,
            "push times are not part of the API"
        );
    }
    let found = remote.list_repositories(Some("mul")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "team/multi");

    for (repo, reference) in [
        ("team/a", "v1"),
        ("team/a", a.digest.as_str()),
        ("team/b", "latest"),
        ("team/multi", "v1"),
        ("team/multi", "arm64"),
    ] {
        let mut local = reg.registry.image_detail(repo, reference).await.unwrap();
        local.pushed_at = None;
        assert_eq!(
            remote.image_detail(repo, reference).await.unwrap(),
            local,
            "{repo} {reference}"
        );
    }
    for repo in ["team/a", "team/b", "team/multi"] {
        assert_eq!(
            remote.list_tags(repo).await.unwrap(),
            without_push_times(reg.registry.list_tags(repo).await.unwrap()),
            "{repo}"
        );
        assert_eq!(
            remote.repository_usage(repo).await.unwrap(),
            reg.registry.repository_usage(repo).await.unwrap(),
            "{repo}"
        );
    }

    // Missing things are the same errors as for the built-in registry.
    assert!(matches!(
        remote.list_tags("team/nothing").await,
        Err(RegistryError::NameUnknown(_))
    ));
    assert!(matches!(
        remote.image_detail("team/a", "v9").await,
        Err(RegistryError::ManifestUnknown(_))
    ));
    assert!(matches!(
        remote.image_detail("../etc", "v1").await,
        Err(RegistryError::NameInvalid(_))
    ));

    // A tag shared with another one goes alone (the registry deletes tags); the last tag of
    // an image takes the image with it; deleting by digest names the tags that went.
    remote.delete_tag("team/a", "v1").await.unwrap();
    assert_eq!(reg.registry.list_tags("team/a").await.unwrap().len(), 1);
    remote.delete_tag("team/b", "latest").await.unwrap();
    assert!(matches!(
        reg.registry.image_detail("team/b", b.digest.as_str()).await,
        Err(RegistryError::ManifestUnknown(_))
    ));
    assert_eq!(
        remote
            .delete_manifest("team/a", a.digest.as_str())
            .await
            .unwrap(),
        vec!["v2"]
    );
    assert!(reg.registry.list_tags("team/a").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_failures_say_what_happened() {
    let reg = support::start().await;
    reg.push_image("team/a", "v1", 1, 100).await;
    let cases = [
        (None, "asks for credentials"),
        (credentials("not-the-password"), "refused the credentials"),
    ];
    for (credentials, want) in cases {
        let remote = RemoteRegistry::new(&reg.url(""), credentials).unwrap();
        match remote.catalog().await {
            Err(RegistryError::Upstream(message)) => {
                assert!(message.contains(want), "{message}");
                assert!(!message.contains("not-the-password"), "{message}");
            }
            other => panic!("{want}: {other:?}"),
        }
    }
    let nobody = RemoteRegistry::new("http://127.0.0.1:9", None).unwrap();
    assert!(matches!(
        nobody.catalog().await,
        Err(RegistryError::Upstream(m)) if m.contains("cannot reach http://127.0.0.1:9")
    ));
}

/// A token service in front of the registry: `/token` hands out tokens for Basic credentials;
/// the registry answers a Bearer challenge unless it gets a live token.
#[derive(Clone, Default)]
struct Tokens {
    live: Arc<Mutex<HashSet<String>>>,
    /// The scopes asked for, in order.
    asked: Arc<Mutex<Vec<String>>>,
    realm: Arc<Mutex<String>>,
}

async fn token(State(tokens): State<Tokens>, request: Request) -> Response {
    let expected = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let query = request.uri().query().unwrap_or_default();
    let scope = query
        .split('&')
        .filter_map(|p| p.strip_prefix("scope="))
        .map(|s| {
            s.replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2A", "*")
        })
        .collect::<Vec<_>>()
        .join(" ");
    assert!(query.contains("service=test-registry"), "{query}");
    let mut asked = tokens.asked.lock().unwrap();
    asked.push(scope);
    let token = format!("tok-{}", asked.len());
    tokens.live.lock().unwrap().insert(token.clone());
    axum::Json(serde_json::json!({"token": token, "expires_in": 300})).into_response()
}

async fn gate(State(tokens): State<Tokens>, mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if given.is_some_and(|t| tokens.live.lock().unwrap().contains(&t)) {
        // The registry behind accepts its password as a bearer token.
        request.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {PASSWORD}")).unwrap(),
        );
        return next.run(request).await;
    }
    let path = request.uri().path();
    let scope = match path.strip_prefix("/v2/") {
        Some("_catalog") => "registry:catalog:*".to_string(),
        Some(rest) => {
            let name = ["/manifests/", "/tags/", "/blobs/"]
                .iter()
                .find_map(|k| rest.find(k).map(|at| &rest[..at]))
                .unwrap_or(rest);
            let action = if request.method() == axum::http::Method::DELETE {
                "delete"
            } else {
                "pull"
            };
            format!("repository:{name}:{action}")
        }
        None => String::new(),
    };
    let challenge = format!(
        r#"Bearer realm="{}",service="test-registry",scope="{scope}""#,
        tokens.realm.lock().unwrap()
    );
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        axum::Json(
            serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "token needed"}]}),
        ),
    )
        .into_response()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_token_flow_and_caches_tokens() {
    let reg = support::start().await;
    let a = reg.push_image("team/a", "v1", 1, 100).await;
    let tokens = Tokens::default();
    let app = berth_registry::router(Arc::clone(&reg.registry))
        .layer(middleware::from_fn_with_state(tokens.clone(), gate))
        .route(
            "/token",
            axum::routing::get(token).with_state(tokens.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *tokens.realm.lock().unwrap() = format!("http://{addr}/token");
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}");

    let remote = RemoteRegistry::new(&url, credentials(PASSWORD)).unwrap();
    assert_eq!(remote.catalog().await.unwrap(), vec!["team/a"]);
    let detail = remote.image_detail("team/a", "v1").await.unwrap();
    assert_eq!(detail.digest, a.digest.to_string());
    remote.list_tags("team/a").await.unwrap();
    remote.catalog().await.unwrap();
    assert_eq!(
        *tokens.asked.lock().unwrap(),
        vec!["registry:catalog:*", "repository:team/a:pull"],
        "one token per scope, reused until it expires"
    );

    // A token the service no longer honours is replaced once.
    tokens.live.lock().unwrap().clear();
    assert_eq!(remote.tags("team/a").await.unwrap(), vec!["v1"]);
    assert_eq!(tokens.asked.lock().unwrap().len(), 3);

    // Deleting asks for the delete scope the challenge names.
    remote
        .delete_manifest("team/a", a.digest.as_str())
        .await
        .unwrap();
    assert!(
        tokens
            .asked
            .lock()
            .unwrap()
            .contains(&"repository:team/a:delete".to_string())
    );
    assert!(matches!(
        reg.registry.image_detail("team/a", a.digest.as_str()).await,
        Err(RegistryError::ManifestUnknown(_))
    ));

    let wrong = RemoteRegistry::new(&url, credentials("wrong")).unwrap();
    match wrong.catalog().await {
        Err(RegistryError::Upstream(message)) => {
            assert!(message.contains("wrong user name or password"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    server.abort();
}
