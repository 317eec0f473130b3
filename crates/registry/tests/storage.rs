//! Reclaiming storage against a real served registry: garbage collection under concurrent
//! pushes, the grace period, indexes and referrers, retention, upload expiry and crash safety,
//! and the image-management API that reports what is stored.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use berth_registry::{
    Clock, Digest, GcOptions, Registry, RegistryConfig, RetentionPolicy, StaticAuthorizer,
};
use reqwest::{Method, StatusCode};
use support::{
    ManualClock, OCI_INDEX, OCI_MANIFEST, PASSWORD, TestRegistry, USER, descriptor, dir_usage,
    random_bytes,
};

const HOUR: Duration = Duration::from_secs(3600);

async fn start_with_clock(clock: Arc<ManualClock>) -> TestRegistry {
    support::start_with(
        Arc::new(StaticAuthorizer::new(USER, PASSWORD)),
        RegistryConfig::default(),
        Some(clock),
    )
    .await
}

/// Pushes an image the way docker does: HEAD each blob, upload only what is missing, then the
/// manifest. Returns the manifest digest.
async fn push_like_docker(reg: &TestRegistry, repo: &str, tag: &str, layers: &[Vec<u8>]) -> Digest {
    let mut descs = Vec::new();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","n":"{}"}}"#,
        support::random_hex(6)
    );
    let mut blobs: Vec<(&str, Vec<u8>)> = layers
        .iter()
        .map(|l| ("application/vnd.oci.image.layer.v1.tar", l.clone()))
        .collect();
    blobs.push((
        "application/vnd.oci.image.config.v1+json",
        config.into_bytes(),
    ));
    for (media_type, data) in &blobs {
        let d = Digest::of(data);
        let head = reg
            .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .unwrap();
        if head.status() != StatusCode::OK {
            reg.push_blob(repo, data).await;
        }
        descs.push(descriptor(media_type, &d, data.len()));
    }
    let config = descs.pop().unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": descs,
    }))
    .unwrap();
    let r = reg.push_manifest(repo, tag, &manifest, OCI_MANIFEST).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    Digest::of(&manifest)
}

/// Every tag of every repository can be pulled completely and every blob matches its digest.
async fn assert_everything_pullable(reg: &TestRegistry) -> usize {
    let mut checked = 0;
    for repo in reg.registry.list_repositories(None).await.unwrap() {
        for tag in reg.registry.list_tags(&repo.name).await.unwrap() {
            let detail = reg
                .registry
                .image_detail(&repo.name, &tag.tag)
                .await
                .unwrap();
            let mut digests: Vec<String> = detail.layers.iter().map(|l| l.digest.clone()).collect();
            digests.extend(detail.config_digest.clone());
            for d in digests {
                let r = reg
                    .req(Method::GET, &format!("/v2/{}/blobs/{d}", repo.name))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::OK,
                    "{}:{} blob {d}",
                    repo.name,
                    tag.tag
                );
                let body = r.bytes().await.unwrap();
                assert_eq!(Digest::of(&body).to_string(), d);
            }
            checked += 1;
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_under_concurrent_pushes_frees_only_garbage() {
    let clock = ManualClock::new(SystemTime::now());
    let reg = Arc::new(start_with_clock(clock.clone()).await);
    let shared_base = random_bytes(32 * 1024);
    let mut unique = Vec::new();
    for i in 0..6 {
        let own = random_bytes(48 * 1024);
        push_like_docker(
            &reg,
            "team/app",
            &format!("t{i}"),
            &[shared_base.clone(), own.clone()],
        )
        .await;
        unique.push(own);
    }
    // Untag three images and delete a fourth outright.
    for tag in ["t0", "t1", "t2"] {
        let r = reg
            .req(Method::DELETE, &format!("/v2/team/app/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let t3 = reg
        .registry
        .image_detail("team/app", "t3")
        .await
        .unwrap()
        .digest;
    reg.registry.delete_manifest("team/app", &t3).await.unwrap();
    clock.advance(HOUR);
    let disk_before = dir_usage(&reg.blob_dir());

    // A pusher keeps going during collection, re-using t0's now unreferenced layer (which it
    // finds with HEAD and does not upload again unless it is gone) plus a fresh one.
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let (reg, stop, pushed, reused) =
            (reg.clone(), stop.clone(), pushed.clone(), unique[0].clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) || i < 3 {
                let fresh = random_bytes(16 * 1024);
                push_like_docker(&reg, "team/app", &format!("p{i}"), &[reused.clone(), fresh])
                    .await;
                pushed.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    let mut total = berth_registry::GcReport::default();
    for _ in 0..5 {
        let report = reg
            .registry
            .garbage_collect(
                clock.now(),
                GcOptions {
                    delete_untagged_manifests: true,
                },
            )
            .await
            .unwrap();
        total.blobs_deleted += report.blobs_deleted;
        total.bytes_freed += report.bytes_freed;
        total.manifests_deleted += report.manifests_deleted;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    pusher.await.unwrap();
    assert!(pushed.load(Ordering::SeqCst) >= 3);

    // Three untagged manifests went; the unique layers of t1..t3 (t0's is in use again) and
    // the configs and manifests of t0..t3 are gone from disk.
    assert_eq!(total.manifests_deleted, 3, "{total:?}");
    assert!(total.bytes_freed >= 3 * 48 * 1024, "{total:?}");
    assert!(total.blobs_deleted >= 3 + 4 + 4, "{total:?}");
    for own in &unique[1..4] {
        let d = Digest::of(own);
        let r = reg
            .req(Method::HEAD, &format!("/v2/team/app/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let disk_after_without_new = dir_usage(&reg.blob_dir());
    // Per pushed image a fresh layer, a config and a manifest; maybe t0's layer once again.
    let added = pushed.load(Ordering::SeqCst) as u64 * (16 * 1024 + 1024) + 48 * 1024;
    assert!(
        disk_after_without_new < disk_before + added - 3 * 48 * 1024,
        "before {disk_before}, after {disk_after_without_new}, added by the pusher at most {added}"
    );

    // Every remaining tag is whole: t4, t5 and everything the pusher pushed.
    let tags = assert_everything_pullable(&reg).await;
    assert_eq!(tags, 2 + pushed.load(Ordering::SeqCst));

    // A second pass with nothing new to collect frees nothing referenced.
    clock.advance(HOUR);
    let again = reg
        .registry
        .garbage_collect(clock.now(), GcOptions::default())
        .await
        .unwrap();
    assert_eq!(again.manifests_deleted, 0);
    assert_everything_pullable(&reg).await;
}

#[tokio::test]
async fn gc_grace_period_protects_recent_pushes() {
    let clock = ManualClock::new(SystemTime::now());
    let reg = start_with_clock(clock.clone()).await;
    let image = reg.push_image("team/app", "v1", 2, 4096).await;
    // An upload whose manifest has not come yet.
    let pending = reg.push_blob("team/app", &random_bytes(1000)).await;
    reg.registry
        .delete_manifest("team/app", image.digest.as_str())
        .await
        .unwrap();

    let report = reg
        .registry
        .garbage_collect(
            clock.now(),
            GcOptions {
                delete_untagged_manifests: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 0);
    assert!(report.blobs_spared >= 4, "{report:?}");
    let r = reg
        .req(Method::HEAD, &format!("/v2/team/app/blobs/{pending}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    clock.advance(HOUR);
    let before = reg.registry.storage_usage().await.unwrap();
    let report = reg
        .registry
        .garbage_collect(clock.now(), GcOptions::default())
        .await
        .unwrap();
    // Two layers, the config, the manifest and the pending blob.
    assert_eq!(report.blobs_deleted, 5, "{report:?}");
    assert_eq!(report.bytes_freed, before.stored_bytes);
    assert_eq!(support::file_count(&reg.blob_dir()), 0);
    // Links to collected blobs went with them.
    let r = reg
        .req(Method::HEAD, &format!("/v2/team/app/blobs/{pending}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        reg.registry
            .list_repositories(None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn gc_keeps_platforms_of_tagged_indexes_and_their_referrers() {
    let clock = ManualClock::new(SystemTime::now());
    let reg = start_with_clock(clock.clone()).await;
    let amd = reg.push_image("team/multi", "tmp-amd", 1, 2048).await;
    let arm = reg.push_image("team/multi", "tmp-arm", 1, 2048).await;
    // Children untagged, reachable only through the index.
    for tag in ["tmp-amd", "tmp-arm"] {
        reg.registry.delete_tag("team/multi", tag).await.unwrap();
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(OCI_MANIFEST, &amd.digest, amd.manifest.len()),
            descriptor(OCI_MANIFEST, &arm.digest, arm.manifest.len()),
        ],
    }))
    .unwrap();
    let r = reg
        .push_manifest("team/multi", "v1", &index, OCI_INDEX)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let index_digest = Digest::of(&index);
    // An untagged signature of the index.
    let empty = reg.push_blob("team/multi", b"{}").await;
    let sig = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": descriptor("application/vnd.oci.empty.v1+json", &empty, 2),
        "layers": [],
        "subject": descriptor(OCI_INDEX, &index_digest, index.len()),
    }))
    .unwrap();
    let r = reg
        .push_manifest("team/multi", Digest::of(&sig).as_str(), &sig, OCI_MANIFEST)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    clock.advance(HOUR);
    let opts = GcOptions {
        delete_untagged_manifests: true,
    };
    let report = reg
        .registry
        .garbage_collect(clock.now(), opts)
        .await
        .unwrap();
    assert_eq!(report.manifests_deleted, 0, "{report:?}");
    assert_eq!(report.blobs_deleted, 0, "{report:?}");
    for child in [&amd, &arm] {
        let r = reg
            .req(
                Method::GET,
                &format!("/v2/team/multi/manifests/{}", child.digest),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let tags = reg.registry.list_tags("team/multi").await.unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].size_bytes, amd_size(&amd) + amd_size(&arm));

    // Untag the index: the index, both platforms and the signature go, then all blobs.
    reg.registry.delete_tag("team/multi", "v1").await.unwrap();
    let report = reg
        .registry
        .garbage_collect(clock.now(), opts)
        .await
        .unwrap();
    assert_eq!(report.manifests_deleted, 4, "{report:?}");
    assert_eq!(support::file_count(&reg.blob_dir()), 0, "{report:?}");
}

fn amd_size(image: &support::TestImage) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap();
    v["config"]["size"].as_u64().unwrap()
        + v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["size"].as_u64().unwrap())
            .sum::<u64>()
}

#[tokio::test]
async fn retention_keeps_newest_tags_and_drops_old_untagged() {
    let clock = ManualClock::new(SystemTime::now());
    let reg = start_with_clock(clock.clone()).await;
    let mut digests = Vec::new();
    for i in 0..5 {
        digests.push(
            reg.push_image("team/app", &format!("build-{i}"), 1, 512)
                .await
                .digest,
        );
        clock.advance(Duration::from_secs(60));
    }
    let report = reg
        .registry
        .apply_retention(
            "team/app",
            &RetentionPolicy {
                keep_newest_tags: Some(2),
                delete_untagged_older_than: None,
                ..RetentionPolicy::default()
            },
            clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(report.tags_deleted, ["build-0", "build-1", "build-2"]);
    assert!(report.manifests_deleted.is_empty());
    let tags: Vec<String> = reg
        .registry
        .list_tags("team/app")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.tag)
        .collect();
    assert_eq!(tags, ["build-3", "build-4"]);

    // Untagged manifests younger than the limit stay.
    let policy = RetentionPolicy {
        keep_newest_tags: None,
        delete_untagged_older_than: Some(Duration::from_secs(24 * 3600)),
        ..RetentionPolicy::default()
    };
    let report = reg
        .registry
        .apply_retention("team/app", &policy, clock.now())
        .await
        .unwrap();
    assert!(report.manifests_deleted.is_empty());
    clock.advance(Duration::from_secs(25 * 3600));
    let report = reg
        .registry
        .apply_retention("team/app", &policy, clock.now())
        .await
        .unwrap();
    let mut want: Vec<String> = digests[..3].iter().map(|d| d.to_string()).collect();
    want.sort();
    let mut got = report.manifests_deleted.clone();
    got.sort();
    assert_eq!(got, want);

    // Disk comes back at the next collection.
    let report = reg
        .registry
        .garbage_collect(clock.now(), GcOptions::default())
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 9, "{report:?}");
    assert_eq!(assert_everything_pullable(&reg).await, 2);
}

#[tokio::test]
async fn abandoned_upload_is_invisible_and_expires() {
    let clock = ManualClock::new(SystemTime::now());
    let reg = start_with_clock(clock.clone()).await;
    let data = random_bytes(10_000);
    let r = reg
        .req(Method::POST, "/v2/team/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "0-4999")
        .body(data[..5000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Neither the partial nor the whole content is a blob.
    for d in [Digest::of(&data[..5000]), Digest::of(&data)] {
        let r = reg
            .req(Method::GET, &format!("/v2/team/app/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(support::file_count(&reg.blob_dir()), 0);
    assert_eq!(support::file_count(&reg.upload_dir()), 1);

    // Not expired yet, then expired.
    let report = reg.registry.expire_uploads(clock.now()).await.unwrap();
    assert_eq!(report.uploads_expired, 0);
    clock.advance(HOUR + Duration::from_secs(1));
    let report = reg.registry.expire_uploads(clock.now()).await.unwrap();
    assert_eq!(report.uploads_expired, 1);
    assert_eq!(report.bytes_freed, 5000);
    assert_eq!(support::file_count(&reg.upload_dir()), 0);
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "5000-9999")
        .body(data[5000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn crash_mid_upload_leaves_no_blob_and_the_orphan_expires() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let auth = Arc::new(StaticAuthorizer::new(USER, PASSWORD));
    let data = random_bytes(20_000);
    {
        let registry =
            Arc::new(Registry::open(&root, auth.clone(), RegistryConfig::default()).unwrap());
        let reg = support::serve(registry, tempfile::tempdir().unwrap()).await;
        let location = reg.start_upload("team/app").await;
        let r = reg.patch_upload(&location, &data[..8000]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        // The "crash": the server and its sessions vanish mid-upload.
    }
    assert_eq!(support::file_count(&root.join("uploads")), 1);

    let registry = Arc::new(Registry::open(&root, auth, RegistryConfig::default()).unwrap());
    let reg = support::serve(registry.clone(), dir).await;
    for d in [Digest::of(&data[..8000]), Digest::of(&data)] {
        let r = reg
            .req(Method::HEAD, &format!("/v2/team/app/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(support::file_count(&root.join("blobs")), 0);
    // The orphan is judged by its age on disk.
    let report = registry.expire_uploads(SystemTime::now()).await.unwrap();
    assert_eq!(report.uploads_expired, 0);
    let report = registry
        .expire_uploads(SystemTime::now() + 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(report.uploads_expired, 1);
    assert_eq!(support::file_count(&root.join("uploads")), 0);
    // And the registry works after the restart.
    reg.push_image("team/app", "v1", 1, 100).await;
}

#[tokio::test]
async fn image_management_api() {
    let reg = support::start().await;
    let a = reg.push_image("alpha/web", "v1", 2, 1000).await;
    reg.push_image("alpha/worker", "v1", 1, 3000).await;
    reg.push_image("beta/web", "latest", 1, 500).await;
    // Same layer mounted into another repository of the team: counted once per team.
    let r = reg
        .req(
            Method::POST,
            &format!(
                "/v2/alpha/api/blobs/uploads/?mount={}&from=alpha/web",
                a.layers[0]
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let all = reg.registry.list_repositories(None).await.unwrap();
    let names: Vec<_> = all.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["alpha/api", "alpha/web", "alpha/worker", "beta/web"]
    );
    let web: Vec<_> = reg
        .registry
        .list_repositories(Some("web"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(web, ["alpha/web", "beta/web"]);
    let alpha_web = &all[1];
    assert_eq!(alpha_web.tag_count, 1);
    assert_eq!(alpha_web.manifest_count, 1);
    assert!(alpha_web.last_pushed.is_some());
    assert_eq!(
        alpha_web.size_bytes,
        2000 + config_size(&reg, &a).await + a.manifest.len() as u64
    );

    let tags = reg.registry.list_tags("alpha/web").await.unwrap();
    assert_eq!(tags[0].digest, a.digest.to_string());
    assert_eq!(tags[0].created.as_deref(), Some("2024-05-06T07:08:09Z"));
    assert_eq!(tags[0].size_bytes, 2000 + config_size(&reg, &a).await);

    let detail = reg.registry.image_detail("alpha/web", "v1").await.unwrap();
    assert_eq!(detail.tags, ["v1"]);
    assert_eq!(detail.media_type, OCI_MANIFEST);
    assert_eq!(detail.layers.len(), 2);
    assert_eq!(detail.layers[0].size, 1000);
    let config = detail.config.unwrap();
    assert_eq!(config.architecture.as_deref(), Some("amd64"));
    assert_eq!(config.cmd, Some(vec!["/app".to_string()]));
    assert_eq!(detail.manifest["schemaVersion"], 2);

    let usage = reg.registry.storage_usage().await.unwrap();
    let ns: Vec<_> = usage
        .namespaces
        .iter()
        .map(|n| n.namespace.as_str())
        .collect();
    assert_eq!(ns, ["alpha", "beta"]);
    let api = usage
        .repositories
        .iter()
        .find(|r| r.name == "alpha/api")
        .unwrap();
    assert_eq!(api.bytes, 1000);
    let alpha = &usage.namespaces[0];
    let alpha_sum: u64 = usage
        .repositories
        .iter()
        .filter(|r| r.name.starts_with("alpha/"))
        .map(|r| r.bytes)
        .sum();
    assert_eq!(
        alpha.bytes,
        alpha_sum - 1000,
        "the mounted layer counts once"
    );
    assert_eq!(usage.total_bytes, usage.stored_bytes);
    assert_eq!(
        reg.registry.repository_usage("beta/web").await.unwrap(),
        usage.repositories[3].bytes
    );

    // Deleting through the API.
    reg.registry.delete_tag("beta/web", "latest").await.unwrap();
    assert_eq!(
        reg.registry
            .delete_tag("beta/web", "latest")
            .await
            .unwrap_err()
            .code()
            .as_str(),
        "MANIFEST_UNKNOWN"
    );
    let removed = reg
        .registry
        .delete_manifest("alpha/web", a.digest.as_str())
        .await
        .unwrap();
    assert_eq!(removed, ["v1"]);
    assert_eq!(
        reg.registry
            .list_tags("../x")
            .await
            .unwrap_err()
            .code()
            .as_str(),
        "NAME_INVALID"
    );
    assert_eq!(
        reg.registry
            .image_detail("alpha/web", "v1")
            .await
            .unwrap_err()
            .code()
            .as_str(),
        "MANIFEST_UNKNOWN"
    );
}

async fn config_size(reg: &TestRegistry, image: &support::TestImage) -> u64 {
    let r = reg
        .req(
            Method::HEAD,
            &format!("/v2/alpha/web/blobs/{}", image.config),
        )
        .send()
        .await
        .unwrap();
    r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Two servers of one installation serve the same registry directory (`--shared-dir`) behind
/// a load balancer that is not sticky: a push's requests land on either. An upload begun on
/// one goes on and ends on the other, back and forth; a server that last saw the session
/// before the other wrote to it takes it up from storage; once finished on one, the session is
/// gone on both; and one server's expiry job leaves alone a session the other is writing to.
#[tokio::test]
async fn an_upload_goes_on_across_servers_sharing_the_storage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let auth = Arc::new(StaticAuthorizer::new(USER, PASSWORD));
    let open = || Registry::open(&root, auth.clone(), RegistryConfig::default()).unwrap();
    // a's clock is two hours behind: the sessions it touches look long idle to it.
    let behind = ManualClock::new(SystemTime::now() - 2 * HOUR);
    let a = support::serve(
        Arc::new(open().with_clock(behind)),
        tempfile::tempdir().unwrap(),
    )
    .await;
    let b = support::serve(Arc::new(open()), tempfile::tempdir().unwrap()).await;
    let data = random_bytes(30_000);

    let location = a.start_upload("team/app").await;
    // (server, chunk): b has never seen the session; a saw it at 0 bytes, before b wrote.
    let steps: [(&TestRegistry, std::ops::Range<usize>); 3] =
        [(&b, 0..10_000), (&a, 10_000..20_000), (&b, 20_000..25_000)];
    for (server, chunk) in steps {
        let r = server
            .req(Method::PATCH, &location)
            .header(
                "content-range",
                format!("{}-{}", chunk.start, chunk.end - 1),
            )
            .body(data[chunk.clone()].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "chunk {chunk:?}");
        assert_eq!(
            r.headers()["range"].to_str().unwrap(),
            format!("0-{}", chunk.end - 1)
        );
    }
    // Each says where the upload stands, whoever wrote last.
    for server in [&a, &b] {
        let r = server.req(Method::GET, &location).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["range"].to_str().unwrap(), "0-24999");
    }
    // a's expiry job: to a, the session has been idle for two hours, but b wrote to it just
    // now.
    let report = a
        .registry
        .expire_uploads(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(report.uploads_expired, 0);

    let digest = Digest::of(&data);
    let r = a
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .header("content-range", "25000-29999")
        .body(data[25_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for server in [&a, &b] {
        let r = server
            .req(Method::GET, &format!("/v2/team/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap(), data);
        // Finished: the session is gone everywhere.
        let r = server.patch_upload(&location, b"more").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(support::file_count(&root.join("uploads")), 0);

    // A wrong digest at the end, on the other server: refused, and the upload discarded.
    let location = b.start_upload("team/app").await;
    let r = a.patch_upload(&location, &data[..100]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = b
        .req(Method::PUT, &format!("{location}?digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(support::error_codes(r).await, ["DIGEST_INVALID"]);
    assert_eq!(support::file_count(&root.join("uploads")), 0);
    // Another repository cannot take the session up.
    let location = b.start_upload("team/app").await;
    let elsewhere = location.replace("/team/app/", "/team/other/");
    for server in [&a, &b] {
        let r = server.patch_upload(&elsewhere, &data[..100]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    // ... and disturbs nothing: the session goes on where it was.
    for server in [&b, &a] {
        let r = server.patch_upload(&location, &data[..100]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = a.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-199");
}

/// A [`berth_registry::GcFence`] for registries in one test: a read-write lock they share.
struct SharedFence(Arc<tokio::sync::RwLock<()>>);

#[async_trait::async_trait]
impl berth_registry::GcFence for SharedFence {
    async fn shared(&self) -> std::io::Result<berth_registry::FenceHold> {
        Ok(berth_registry::FenceHold::new(
            Arc::clone(&self.0).read_owned().await,
        ))
    }
    async fn exclusive(&self) -> std::io::Result<berth_registry::FenceHold> {
        Ok(berth_registry::FenceHold::new(
            Arc::clone(&self.0).write_owned().await,
        ))
    }
}

#[tokio::test]
async fn two_servers_on_one_registry_keep_each_others_touched_blobs_and_wait_for_each_other() {
    let clock = ManualClock::new(SystemTime::now());
    let fence = Arc::new(SharedFence(Arc::new(tokio::sync::RwLock::new(()))));
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Registry::open(
            dir.path().join("registry"),
            Arc::new(StaticAuthorizer::new(USER, PASSWORD)),
            RegistryConfig::default(),
        )
        .unwrap()
        .with_clock(clock.clone())
        .with_gc_fence(fence.clone())
    };
    // The other server sweeps: a registry on the same storage that serves nothing here.
    let other = open();
    let served = support::serve(Arc::new(open()), dir).await;

    let image = served.push_image("team/app", "v1", 2, 4096).await;
    served
        .registry
        .delete_manifest("team/app", image.digest.as_str())
        .await
        .unwrap();
    clock.advance(HOUR);
    // A client about to reuse a layer checks it on the serving server (docker's HEAD).
    let reused = &image.layers[0];
    let head = served
        .req(Method::HEAD, &format!("/v2/team/app/blobs/{reused}"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);

    // The other server's sweep spares it (it never saw the check in its own memory) and
    // takes the rest: the other layer, the config and the manifest.
    let report = other
        .garbage_collect(clock.now(), GcOptions::default())
        .await
        .unwrap();
    assert_eq!(report.blobs_deleted, 3, "{report:?}");
    let head = served
        .req(Method::HEAD, &format!("/v2/team/app/blobs/{reused}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.status(),
        StatusCode::OK,
        "the checked layer is still there"
    );

    // A sweep waits while the serving server checks and writes (it holds the fence shared).
    let held = berth_registry::GcFence::shared(&*fence).await.unwrap();
    let other = Arc::new(other);
    let sweep = {
        let (other, now) = (Arc::clone(&other), clock.now() + 2 * HOUR);
        tokio::spawn(async move { other.garbage_collect(now, GcOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!sweep.is_finished(), "the sweep waits for the hold");
    drop(held);
    // Once the grace period has passed, the layer goes, with its touch record.
    let report = sweep.await.unwrap().unwrap();
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(support::file_count(&served.blob_dir()), 0);
    let touches = served.dir.path().join("registry/meta/touches/sha256");
    assert_eq!(
        std::fs::read_dir(&touches).map_or(0, |entries| entries.count()),
        0,
        "touch records past the grace period are removed"
    );
}
