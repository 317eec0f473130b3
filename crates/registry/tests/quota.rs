//! Namespace storage limits over HTTP: pushes that fit, pushes refused with `DENIED` whose
//! blob never becomes visible, and blobs the namespace already holds costing nothing.

mod support;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use berth_registry::{
    Digest, NamespaceLimits, Registry, RegistryConfig, StaticAuthorizer, StorageQuotaExceeded,
};
use reqwest::{Method, StatusCode};
use support::{OCI_MANIFEST, PASSWORD, TestRegistry, USER, descriptor, error_codes};

/// Fixed limits per namespace; others are unlimited.
struct Limits(HashMap<&'static str, u64>);

#[async_trait]
impl NamespaceLimits for Limits {
    async fn byte_limit(&self, namespace: &str) -> io::Result<Option<u64>> {
        Ok(self.0.get(namespace).copied())
    }

    fn exceeded_message(&self, e: &StorageQuotaExceeded) -> String {
        format!(
            "team {}: asked for {}, {} in use, limit {}",
            e.namespace, e.asked, e.in_use, e.limit
        )
    }
}

async fn start(limits: &[(&'static str, u64)]) -> TestRegistry {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(
        dir.path().join("registry"),
        Arc::new(StaticAuthorizer::new(USER, PASSWORD)),
        RegistryConfig::default(),
    )
    .unwrap()
    .with_limits(Arc::new(Limits(limits.iter().copied().collect())));
    support::serve(Arc::new(registry), dir).await
}

/// Distinct content of `size` bytes.
fn blob(seed: u8, size: usize) -> Vec<u8> {
    (0..size).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// Runs one step written `<op> <repository> <blob> [from <repository>]`: `push` uploads in one
/// request (`POST ?digest=`), `chunked` with `POST`, `PATCH`, `PUT ?digest=` (the `PUT`
/// answers), `mount` mounts from the other repository. Returns the answer, the repository and
/// the blob's digest.
async fn run(
    reg: &TestRegistry,
    step: &str,
    blobs: &HashMap<&str, Vec<u8>>,
) -> (reqwest::Response, String, Digest) {
    let words: Vec<&str> = step.split_whitespace().collect();
    let (op, repo, data) = (words[0], words[1].to_owned(), &blobs[words[2]]);
    let digest = Digest::of(data);
    let send = |m: Method, url: String| reg.req(m, &url);
    let r = match (op, &words[3..]) {
        ("push", []) => send(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap(),
        ("chunked", []) => {
            let r = send(Method::POST, format!("/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let location = r.headers()["location"].to_str().unwrap().to_owned();
            let r = send(Method::PATCH, reg.url(&location))
                .body(data.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            let location = r.headers()["location"].to_str().unwrap().to_owned();
            send(Method::PUT, reg.url(&format!("{location}?digest={digest}")))
                .send()
                .await
                .unwrap()
        }
        ("mount", ["from", from]) => send(
            Method::POST,
            format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"),
        )
        .send()
        .await
        .unwrap(),
        _ => panic!("bad step {step:?}"),
    };
    (r, repo, digest)
}

async fn visible(reg: &TestRegistry, repo: &str, digest: &Digest) -> bool {
    let r = reg
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    r.status() == StatusCode::OK
}

#[tokio::test]
async fn pushes_beyond_the_namespace_limit_are_denied() {
    let reg = start(&[("small", 1000)]).await;
    let blobs: HashMap<&str, Vec<u8>> = [
        ("a", blob(1, 600)),
        ("b", blob(2, 600)),
        ("c", blob(3, 300)),
        ("o", blob(4, 600)),
    ]
    .into();
    // (step, allowed, bytes `small` stores afterwards)
    let steps = [
        ("push small/one a", true, 600),
        ("push small/one b", false, 600),
        ("chunked small/one b", false, 600),
        // Another repository of the namespace: same budget.
        ("push small/two b", false, 600),
        // A blob the namespace holds is free, however it arrives.
        ("push small/two a", true, 600),
        ("chunked small/three a", true, 600),
        ("mount small/four a from small/one", true, 600),
        // Other namespaces are not limited by it, nor can they spill into it.
        ("push other/x o", true, 600),
        ("mount small/five o from other/x", false, 600),
        ("push small/two c", true, 900),
    ];
    for (step, allowed, usage) in steps {
        let (r, repo, digest) = run(&reg, step, &blobs).await;
        if allowed {
            assert_eq!(r.status(), StatusCode::CREATED, "{step}");
        } else {
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{step}");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["errors"][0]["code"], "DENIED", "{step}");
            assert_eq!(
                body["errors"][0]["message"], "team small: asked for 600, 600 in use, limit 1000",
                "{step}"
            );
        }
        assert_eq!(visible(&reg, &repo, &digest).await, allowed, "{step}");
        let stored = reg.registry.namespace_usage("small").await.unwrap();
        assert_eq!(stored, usage, "{step}");
    }
    assert_eq!(reg.registry.namespace_usage("other").await.unwrap(), 600);
    // Refused uploads leave nothing behind: b never reached blob storage.
    let hex = Digest::of(&blobs["b"]).hex().to_owned();
    assert!(
        !reg.blob_dir()
            .join("sha256")
            .join(&hex[..2])
            .join(&hex)
            .exists()
    );
    assert_eq!(support::file_count(&reg.upload_dir()), 0);
}

#[tokio::test]
async fn manifests_count_against_the_limit() {
    let layer = blob(7, 500);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_type = "application/vnd.oci.image.config.v1+json";
    let layer_type = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, &Digest::of(&config), config.len()),
        "layers": [descriptor(layer_type, &Digest::of(&layer), layer.len())],
    }))
    .unwrap();
    let blobs = (layer.len() + config.len()) as u64;
    let cases = [
        ("room for the manifest", blobs + manifest.len() as u64, true),
        ("one byte short", blobs + manifest.len() as u64 - 1, false),
    ];
    for (what, limit, allowed) in cases {
        let reg = start(&[("team", limit)]).await;
        reg.push_blob("team/app", &layer).await;
        reg.push_blob("team/app", &config).await;
        let r = reg
            .push_manifest("team/app", "v1", &manifest, OCI_MANIFEST)
            .await;
        if allowed {
            assert_eq!(r.status(), StatusCode::CREATED, "{what}");
        } else {
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
            assert_eq!(error_codes(r).await, ["DENIED"], "{what}");
        }
        let r = reg
            .req(Method::GET, "/v2/team/app/manifests/v1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().is_success(), allowed, "{what}");
        // The same manifest under another tag of the namespace costs nothing more.
        if allowed {
            let r = reg
                .push_manifest("team/app", "v2", &manifest, OCI_MANIFEST)
                .await;
            assert_eq!(r.status(), StatusCode::CREATED, "{what}");
        }
    }
}
