//! Real clients against the real registry: `docker login/push/pull` through the local Docker
//! Engine, and Debian's `skopeo` (copy, inspect, list-tags, delete, multi-arch index).
//!
//! Images the tests build carry the label `berth.test=registry` and are removed at the end;
//! docker credentials go to a temporary `DOCKER_CONFIG`, never to `~/.docker`.

mod support;

use std::path::Path;
use std::process::Output;

use berth_registry::Digest;
use support::{PASSWORD, TestRegistry, USER, random_bytes, random_hex};
use tokio::process::Command;

async fn run(program: &str, args: &[&str], envs: &[(&str, &Path)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env("DOCKER_BUILDKIT", "0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    });
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{program}: {e}"));
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    child.wait_with_output().await.unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn ok(program: &str, args: &[&str], envs: &[(&str, &Path)], stdin: Option<&str>) -> String {
    let o = run(program, args, envs, stdin).await;
    assert!(
        o.status.success(),
        "{program} {args:?} failed: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Removes the images a test tagged, whatever happens to the test.
struct ImageCleanup(Vec<String>);

impl Drop for ImageCleanup {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", image])
                .output();
        }
    }
}

/// Builds a `FROM scratch` image of two `COPY` layers of random bytes; returns its id.
async fn build_image(tag: &str, dir: &Path) -> String {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.bin"), random_bytes(96 * 1024)).unwrap();
    std::fs::write(ctx.join("b.bin"), random_bytes(160 * 1024)).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM scratch\nLABEL berth.test=registry\nLABEL nonce={}\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\nEXPOSE 8080/tcp\nENV MODE=test\nCMD [\"/a.bin\"]\n",
            random_hex(8)
        ),
    )
    .unwrap();
    ok(
        "docker",
        &["build", "-q", "-t", tag, ctx.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    image_id(tag).await
}

async fn image_id(image: &str) -> String {
    ok(
        "docker",
        &["image", "inspect", "-f", "{{.Id}}", image],
        &[],
        None,
    )
    .await
}

async fn docker_login(reg: &TestRegistry, config: &Path) {
    let host = reg.host();
    ok(
        "docker",
        &["login", &host, "-u", USER, "--password-stdin"],
        &[("DOCKER_CONFIG", config)],
        Some(PASSWORD),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_login_push_pull_roundtrip() {
    let reg = support::start().await;
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let tag = format!("{host}/team/app:v1");
    let tag2 = format!("{host}/team/other:v1");
    let envs = [("DOCKER_CONFIG", config.as_path())];

    // Wrong password: docker login reports the 401.
    let bad = run(
        "docker",
        &["login", &host, "-u", USER, "--password-stdin"],
        &envs,
        Some("wrong"),
    )
    .await;
    assert!(!bad.status.success(), "{}", text(&bad));

    // Without login, push is refused.
    let id = build_image(&tag, dir.path()).await;
    let _cleanup = ImageCleanup(vec![tag.clone(), tag2.clone(), id.clone()]);
    let anonymous = run("docker", &["push", &tag], &envs, None).await;
    assert!(!anonymous.status.success(), "{}", text(&anonymous));

    docker_login(&reg, &config).await;
    ok("docker", &["push", &tag], &envs, None).await;

    // The registry knows the image.
    let tags = reg.registry.list_tags("team/app").await.unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].tag, "v1");
    assert!(tags[0].created.is_some());
    assert!(tags[0].size_bytes > 256 * 1024, "{tags:?}");
    let detail = reg.registry.image_detail("team/app", "v1").await.unwrap();
    assert_eq!(detail.layers.len(), 2);
    let cfg = detail.config.expect("image config");
    assert_eq!(cfg.cmd, Some(vec!["/a.bin".to_string()]));
    assert!(cfg.env.iter().any(|e| e == "MODE=test"));
    assert_eq!(cfg.exposed_ports, vec!["8080/tcp".to_string()]);
    assert_eq!(
        cfg.labels.get("berth.test").map(String::as_str),
        Some("registry")
    );
    assert_eq!(
        format!("sha256:{}", &detail.config_digest.clone().unwrap()[7..]),
        id
    );

    // Same layers into another repository: docker mounts them across repositories.
    ok("docker", &["tag", &tag, &tag2], &[], None).await;
    ok("docker", &["push", &tag2], &envs, None).await;
    ok("docker", &["rmi", &tag2], &[], None).await;

    // Remove the local image and pull it back: same image id.
    ok("docker", &["rmi", &tag], &[], None).await;
    let gone = run("docker", &["image", "inspect", &tag], &[], None).await;
    assert!(!gone.status.success());
    ok("docker", &["pull", &tag], &envs, None).await;
    assert_eq!(image_id(&tag).await, id);
    ok("docker", &["pull", &tag2], &envs, None).await;
    assert_eq!(image_id(&tag2).await, id);

    // Pull by digest works too.
    let by_digest = format!("{host}/team/app@{}", tags[0].digest);
    ok("docker", &["pull", &by_digest], &envs, None).await;
    ok("docker", &["logout", &host], &envs, None).await;
}

fn skopeo_creds() -> String {
    format!("{USER}:{PASSWORD}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copy_inspect_list_delete() {
    let reg = support::start().await;
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let local = format!("berth-registry-test/skopeo:{}", random_hex(4));
    let id = build_image(&local, dir.path()).await;
    let _cleanup = ImageCleanup(vec![local.clone(), id.clone()]);
    let creds = skopeo_creds();
    let dest = format!("docker://{host}/team/x:v1");

    ok(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("docker-daemon:{local}"),
            &dest,
        ],
        &[],
        None,
    )
    .await;
    // A second tag of the same image: every blob is already there.
    ok(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &dest,
            &format!("docker://{host}/team/x:v2"),
        ],
        &[],
        None,
    )
    .await;

    let inspect = ok(
        "skopeo",
        &["inspect", "--tls-verify=false", "--creds", &creds, &dest],
        &[],
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Labels"]["berth.test"], "registry");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let digest = v["Digest"].as_str().unwrap().to_owned();

    // The config skopeo reads back is the one docker made.
    let config = ok(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &dest,
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(Digest::of(config.as_bytes()).to_string(), id);

    let tags = ok(
        "skopeo",
        &[
            "list-tags",
            "--tls-verify=false",
            "--creds",
            &creds,
            &format!("docker://{host}/team/x"),
        ],
        &[],
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(v["Tags"], serde_json::json!(["v1", "v2"]));

    // Wrong credentials are refused.
    let denied = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "admin:nope",
            &dest,
        ],
        &[],
        None,
    )
    .await;
    assert!(!denied.status.success());

    // skopeo delete removes the manifest (and so both tags).
    ok(
        "skopeo",
        &["delete", "--tls-verify=false", "--creds", &creds, &dest],
        &[],
        None,
    )
    .await;
    let gone = run(
        "skopeo",
        &["inspect", "--tls-verify=false", "--creds", &creds, &dest],
        &[],
        None,
    )
    .await;
    assert!(!gone.status.success());
    let err = reg
        .registry
        .image_detail("team/x", &digest)
        .await
        .unwrap_err();
    assert_eq!(err.code().as_str(), "MANIFEST_UNKNOWN");
    assert!(reg.registry.list_tags("team/x").await.unwrap().is_empty());
}

/// Writes an OCI layout holding an index of two single-layer images (linux/amd64 and
/// linux/arm64); returns the layout directory.
fn write_oci_layout(dir: &Path) -> std::path::PathBuf {
    let layout = dir.join("layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (Digest, usize) {
        let d = Digest::of(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        (d, data.len())
    };
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer = tar_with_file(&format!("{arch}.txt"), &random_bytes(4096));
        let (ld, ls) = put(&layer);
        let config = serde_json::json!({
            "created": "2024-03-04T05:06:07Z",
            "architecture": arch,
            "os": "linux",
            "config": { "Cmd": ["/bin/true"] },
            "rootfs": { "type": "layers", "diff_ids": [ld.as_str()] },
        });
        let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": support::OCI_MANIFEST,
            "config": support::descriptor("application/vnd.oci.image.config.v1+json", &cd, cs),
            "layers": [support::descriptor("application/vnd.oci.image.layer.v1.tar", &ld, ls)],
        });
        let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
        let mut desc = support::descriptor(support::OCI_MANIFEST, &md, ms);
        desc["platform"] = serde_json::json!({ "architecture": arch, "os": "linux" });
        entries.push(desc);
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": support::OCI_INDEX,
        "manifests": entries,
    });
    let (id, is) = put(&serde_json::to_vec(&index).unwrap());
    let mut top = support::descriptor(support::OCI_INDEX, &id, is);
    top["annotations"] = serde_json::json!({ "org.opencontainers.image.ref.name": "multi" });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({ "schemaVersion": 2, "manifests": [top] })).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

/// A ustar archive holding one file.
fn tar_with_file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(b"0000644");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_a_multi_arch_index() {
    let reg = support::start().await;
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let layout = write_oci_layout(dir.path());
    let creds = skopeo_creds();
    let dest = format!("docker://{host}/team/multi:v1");
    ok(
        "skopeo",
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:multi", layout.display()),
            &dest,
        ],
        &[],
        None,
    )
    .await;

    let raw = ok(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &dest,
        ],
        &[],
        None,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["mediaType"], support::OCI_INDEX);
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);

    // One platform, resolved by skopeo through the index.
    let arm = ok(
        "skopeo",
        &[
            "--override-arch",
            "arm64",
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            &dest,
        ],
        &[],
        None,
    )
    .await;
    let arm: serde_json::Value = serde_json::from_str(&arm).unwrap();
    assert_eq!(arm["Architecture"], "arm64");

    let detail = reg.registry.image_detail("team/multi", "v1").await.unwrap();
    assert_eq!(detail.media_type, support::OCI_INDEX);
    let mut archs: Vec<_> = detail
        .platforms
        .iter()
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect();
    archs.sort();
    assert_eq!(archs, ["linux/amd64", "linux/arm64"]);
    let tags = reg.registry.list_tags("team/multi").await.unwrap();
    assert_eq!(tags[0].created.as_deref(), Some("2024-03-04T05:06:07Z"));

    // And back out into a fresh layout, all platforms included.
    let out = dir.path().join("copy-back");
    ok(
        "skopeo",
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &dest,
            &format!("oci:{}:back", out.display()),
        ],
        &[],
        None,
    )
    .await;
    assert!(support::file_count(&out.join("blobs")) >= 7);
}
