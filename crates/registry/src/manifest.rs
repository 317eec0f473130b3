//! Manifest formats the registry accepts (Docker schema 2 manifest and manifest list, OCI
//! image manifest and index), their validation, and the image-config fields the introspection
//! API reports.
//!
//! Manifests are stored byte for byte; what is parsed here is only what the registry needs to
//! check references, answer the referrers API, collect garbage and describe images.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::RegistryError;
use crate::reference::{Digest, InvalidIdentifier};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform, or the referrers list).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

const DOCKER_SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Whether a manifest lists other manifests or describes one image/artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// Config + layers.
    Image,
    /// A list of manifests (usually one per platform).
    Index,
}

/// The kind of a manifest media type, `None` when the registry does not accept it.
pub fn kind_of(media_type: &str) -> Option<ManifestKind> {
    match media_type {
        DOCKER_MANIFEST | OCI_MANIFEST => Some(ManifestKind::Image),
        DOCKER_MANIFEST_LIST | OCI_INDEX => Some(ManifestKind::Index),
        _ => None,
    }
}

/// A platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`, ...).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows).
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Option<Vec<String>>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    subject: Option<RawDescriptor>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// A validated descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type (empty when the manifest did not say).
    pub media_type: String,
    /// Content hosted elsewhere (`urls`, Windows foreign layers): not required to be here.
    pub external: bool,
    /// Platform, for index entries.
    pub platform: Option<Platform>,
}

/// What the registry knows about a manifest after validating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The manifest's media type (the `Content-Type` it is served with).
    pub media_type: String,
    /// Image or index.
    pub kind: ManifestKind,
    /// Config descriptor (images).
    pub config: Option<Descriptor>,
    /// Layer descriptors (images).
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, SBOMs...).
    pub subject: Option<Descriptor>,
    /// `artifactType`, or for images without one the config's media type (referrers rule).
    pub artifact_type: Option<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ParsedManifest {
    /// Config + layers: what pulling an image transfers (0 for an index).
    pub fn image_size(&self) -> u64 {
        self.config.iter().chain(&self.layers).map(|d| d.size).sum()
    }

    /// The config descriptor when it is a container image config this crate can describe.
    pub fn image_config(&self) -> Option<&Descriptor> {
        self.config
            .as_ref()
            .filter(|c| is_image_config(&c.media_type))
    }
}

fn invalid(msg: impl Into<String>) -> RegistryError {
    RegistryError::ManifestInvalid(msg.into())
}

fn descriptor(raw: RawDescriptor, field: &str) -> Result<Descriptor, RegistryError> {
    let digest = Digest::parse(&raw.digest).map_err(|e| match e {
        InvalidIdentifier::UnsupportedDigest(d) => invalid(format!(
            "{field}: digest {d:?} uses an unsupported algorithm"
        )),
        _ => invalid(format!("{field}: invalid digest {:?}", raw.digest)),
    })?;
    let size = u64::try_from(raw.size)
        .map_err(|_| invalid(format!("{field}: size must not be negative")))?;
    Ok(Descriptor {
        digest,
        size,
        media_type: raw.media_type.unwrap_or_default(),
        external: raw.urls.is_some_and(|u| !u.is_empty()),
        platform: raw.platform,
    })
}

/// Validates a manifest body pushed with `content_type`.
pub fn parse_manifest(
    body: &[u8],
    content_type: Option<&str>,
) -> Result<ParsedManifest, RegistryError> {
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("not a valid manifest document: {e}")))?;
    let content_type = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|ct| {
            !matches!(
                ct.as_str(),
                "" | "application/json" | "application/octet-stream"
            )
        });
    for t in [content_type.as_deref(), raw.media_type.as_deref()]
        .into_iter()
        .flatten()
    {
        if DOCKER_SCHEMA1.contains(&t) {
            return Err(RegistryError::Unsupported(
                "Docker schema 1 manifests are not supported; push schema 2 or OCI".into(),
            ));
        }
    }
    if let (Some(ct), Some(mt)) = (&content_type, &raw.media_type)
        && ct != mt
    {
        return Err(invalid(format!(
            "Content-Type {ct:?} does not match the manifest's mediaType {mt:?}"
        )));
    }
    let media_type = match content_type.or(raw.media_type.clone()) {
        Some(mt) => mt,
        None if raw.manifests.is_some() => OCI_INDEX.to_owned(),
        None if raw.config.is_some() => OCI_MANIFEST.to_owned(),
        None => return Err(invalid("cannot tell the manifest's media type")),
    };
    let kind = kind_of(&media_type)
        .ok_or_else(|| invalid(format!("unsupported manifest media type {media_type:?}")))?;
    if raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let subject = raw.subject.map(|s| descriptor(s, "subject")).transpose()?;
    let annotations = raw.annotations.unwrap_or_default();
    match kind {
        ManifestKind::Image => {
            if raw.manifests.is_some() {
                return Err(invalid("an image manifest has no \"manifests\""));
            }
            let config = descriptor(
                raw.config
                    .ok_or_else(|| invalid("an image manifest needs a \"config\""))?,
                "config",
            )?;
            let layers = match raw.layers {
                Some(l) => l,
                None if media_type == OCI_MANIFEST => Vec::new(),
                None => return Err(invalid("an image manifest needs \"layers\"")),
            };
            let layers = layers
                .into_iter()
                .enumerate()
                .map(|(i, l)| descriptor(l, &format!("layers[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            let artifact_type = raw
                .artifact_type
                .filter(|a| !a.is_empty())
                .or_else(|| Some(config.media_type.clone()).filter(|m| !m.is_empty()));
            Ok(ParsedManifest {
                media_type,
                kind,
                config: Some(config),
                layers,
                manifests: Vec::new(),
                subject,
                artifact_type,
                annotations,
            })
        }
        ManifestKind::Index => {
            if raw.config.is_some() || raw.layers.is_some() {
                return Err(invalid("an index has no \"config\" or \"layers\""));
            }
            let manifests = raw
                .manifests
                .ok_or_else(|| invalid("an index needs \"manifests\""))?
                .into_iter()
                .enumerate()
                .map(|(i, m)| descriptor(m, &format!("manifests[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ParsedManifest {
                media_type,
                kind,
                config: None,
                layers: Vec::new(),
                manifests,
                subject,
                artifact_type: raw.artifact_type.filter(|a| !a.is_empty()),
                annotations,
            })
        }
    }
}

/// One history entry of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct HistoryEntry {
    /// When the step ran (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// The command that made the layer.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Free comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default)]
    pub empty_layer: bool,
}

/// The fields of an image config (Docker or OCI) that describe how the image runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageConfig {
    /// Creation time (RFC 3339), as written by the builder.
    pub created: Option<String>,
    /// CPU architecture.
    pub architecture: Option<String>,
    /// Operating system.
    pub os: Option<String>,
    /// `ENTRYPOINT`.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    pub cmd: Option<Vec<String>>,
    /// `ENV` as `KEY=value`.
    pub env: Vec<String>,
    /// `EXPOSE` as `port/proto`, sorted.
    pub exposed_ports: Vec<String>,
    /// `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `WORKDIR`.
    pub working_dir: Option<String>,
    /// `USER`.
    pub user: Option<String>,
    /// Build history.
    pub history: Vec<HistoryEntry>,
}

#[derive(Deserialize)]
struct RawImageConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    config: Option<RawRunConfig>,
    #[serde(default)]
    history: Option<Vec<HistoryEntry>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

/// Whether a config media type is an image config the registry can describe.
pub fn is_image_config(media_type: &str) -> bool {
    matches!(media_type, DOCKER_CONFIG | OCI_CONFIG)
}

/// Parses an image config blob; `None` when it is not a JSON image config.
pub fn parse_image_config(body: &[u8]) -> Option<ImageConfig> {
    let raw: RawImageConfig = serde_json::from_slice(body).ok()?;
    let run = raw.config;
    let (entrypoint, cmd, env, exposed_ports, labels, working_dir, user) = match run {
        Some(r) => (
            r.entrypoint,
            r.cmd,
            r.env.unwrap_or_default(),
            r.exposed_ports
                .map(|p| p.into_keys().collect())
                .unwrap_or_default(),
            r.labels.unwrap_or_default(),
            r.working_dir.filter(|w| !w.is_empty()),
            r.user.filter(|u| !u.is_empty()),
        ),
        None => Default::default(),
    };
    Some(ImageConfig {
        created: raw.created,
        architecture: raw.architecture,
        os: raw.os,
        entrypoint,
        cmd,
        env,
        exposed_ports,
        labels,
        working_dir,
        user,
        history: raw.history.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn image(media_type: Option<&str>) -> String {
        let mt = media_type
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":10}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{D2}","size":20}}]}}"#
        )
    }

    #[test]
    fn accepts_and_rejects_manifests() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":3,"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#
        );
        let with_subject = format!(
            r#"{{"schemaVersion":2,"artifactType":"application/x.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D1}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":5}},"annotations":{{"a":"b"}}}}"#
        );
        let bad_digest = image(None).replace(D2, "sha256:nothex");
        let negative = image(None).replace("\"size\":20", "\"size\":-1");
        let with_params = format!("{DOCKER_MANIFEST}; charset=utf-8");
        let cases: Vec<(String, Option<&str>, Result<(&str, ManifestKind), &str>)> = vec![
            (
                image(Some(OCI_MANIFEST)),
                Some(OCI_MANIFEST),
                Ok((OCI_MANIFEST, ManifestKind::Image)),
            ),
            (image(None), None, Ok((OCI_MANIFEST, ManifestKind::Image))),
            (
                image(Some(DOCKER_MANIFEST)),
                Some(DOCKER_MANIFEST),
                Ok((DOCKER_MANIFEST, ManifestKind::Image)),
            ),
            (
                image(None),
                Some("application/json"),
                Ok((OCI_MANIFEST, ManifestKind::Image)),
            ),
            (
                image(Some(DOCKER_MANIFEST)),
                Some(with_params.as_str()),
                Ok((DOCKER_MANIFEST, ManifestKind::Image)),
            ),
            (
                index.clone(),
                Some(OCI_INDEX),
                Ok((OCI_INDEX, ManifestKind::Index)),
            ),
            (index.replace(OCI_INDEX, ""), None, Err("MANIFEST_INVALID")),
            (with_subject, None, Ok((OCI_MANIFEST, ManifestKind::Image))),
            (
                image(Some(OCI_MANIFEST)),
                Some(DOCKER_MANIFEST),
                Err("MANIFEST_INVALID"),
            ),
            (
                image(Some(OCI_MANIFEST)),
                Some(OCI_INDEX),
                Err("MANIFEST_INVALID"),
            ),
            (
                "not json".into(),
                Some(OCI_MANIFEST),
                Err("MANIFEST_INVALID"),
            ),
            ("{}".into(), None, Err("MANIFEST_INVALID")),
            (
                image(None).replace("\"schemaVersion\":2", "\"schemaVersion\":1"),
                None,
                Err("MANIFEST_INVALID"),
            ),
            (bad_digest, None, Err("MANIFEST_INVALID")),
            (negative, None, Err("MANIFEST_INVALID")),
            (
                r#"{"schemaVersion":1,"name":"x"}"#.into(),
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                Err("UNSUPPORTED"),
            ),
            (
                image(Some("application/x-unknown")),
                None,
                Err("MANIFEST_INVALID"),
            ),
        ];
        for (body, ct, want) in cases {
            let got = parse_manifest(body.as_bytes(), ct);
            match (want, got) {
                (Ok((mt, kind)), Ok(m)) => {
                    assert_eq!(m.media_type, mt, "{body}");
                    assert_eq!(m.kind, kind, "{body}");
                }
                (Err(code), Err(e)) => assert_eq!(e.code().as_str(), code, "{body}: {e}"),
                (want, got) => panic!("{body} ({ct:?}): want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn artifact_type_and_subject() {
        let m = parse_manifest(image(None).as_bytes(), None).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(OCI_CONFIG));
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.config.unwrap().size, 10);
        let sig = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x.sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D1}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":5}}}}"#
        );
        let m = parse_manifest(sig.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x.sig"));
        assert_eq!(m.subject.unwrap().digest.as_str(), D2);
    }

    #[test]
    fn image_config_fields() {
        let cfg = br#"{"created":"2024-01-02T03:04:05Z","architecture":"amd64","os":"linux",
            "config":{"Entrypoint":["/app"],"Cmd":["--port","80"],"Env":["A=1"],
            "ExposedPorts":{"8080/tcp":{},"53/udp":{}},"Labels":{"team":"x"},"WorkingDir":"/srv"},
            "history":[{"created_by":"COPY a /a"},{"created_by":"CMD","empty_layer":true}]}"#;
        let c = parse_image_config(cfg).unwrap();
        assert_eq!(c.created.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(c.entrypoint, Some(vec!["/app".to_string()]));
        assert_eq!(
            c.exposed_ports,
            vec!["53/udp".to_string(), "8080/tcp".to_string()]
        );
        assert_eq!(c.labels.get("team").map(String::as_str), Some("x"));
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.history.len(), 2);
        assert!(c.history[1].empty_layer);
        assert!(parse_image_config(b"[1,2]").is_none());
    }
}
