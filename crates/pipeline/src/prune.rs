//! Old build images leave the engine: every pipeline keeps its newest few images there (the
//! build cache of its next builds; everything was pushed to the registry anyway) and the
//! older ones are removed, unless a container still uses them. Failed builds untag their image
//! at once (see [`crate::runner`]); this catches what is left over time.

use std::collections::BTreeMap;

use berth_engine::{EngineError, ImageBuilder, LocalImage, labels};

/// Images each pipeline keeps in the engine.
pub const KEPT_PER_PIPELINE: usize = 3;

/// The images to remove: per pipeline (the `berth.pipeline` label), all but the `keep`
/// newest. Images without the label are not a build's and stay.
pub fn stale_images(images: &[LocalImage], keep: usize) -> Vec<&LocalImage> {
    let mut by_pipeline: BTreeMap<&str, Vec<&LocalImage>> = BTreeMap::new();
    for image in images {
        if let Some(pipeline) = image.labels.get(labels::PIPELINE).filter(|p| !p.is_empty()) {
            by_pipeline.entry(pipeline).or_default().push(image);
        }
    }
    let mut stale = Vec::new();
    for mut images in by_pipeline.into_values() {
        images.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.id.cmp(&b.id)));
        stale.extend(images.into_iter().skip(keep));
    }
    stale
}

/// What a prune did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    pub removed: usize,
    /// Stale images a container still uses.
    pub in_use: usize,
}

/// Removes the stale build images of the installation `namespace`.
pub async fn prune_build_images(
    engine: &dyn ImageBuilder,
    namespace: &str,
    keep: usize,
) -> Result<PruneReport, EngineError> {
    let filter = BTreeMap::from([(labels::NAMESPACE.to_owned(), namespace.to_owned())]);
    let images = engine.list_images(&filter).await?;
    let mut report = PruneReport::default();
    for image in stale_images(&images, keep) {
        // An image goes with its last tag; an untagged one by its id.
        let references: Vec<&str> = if image.tags.is_empty() {
            vec![image.id.as_str()]
        } else {
            image.tags.iter().map(String::as_str).collect()
        };
        let mut removed = true;
        for reference in references {
            match engine.remove_image(reference).await {
                Ok(()) => {}
                Err(EngineError::Conflict(_)) => {
                    removed = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if removed {
            report.removed += 1;
        } else {
            report.in_use += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, pipeline: Option<&str>, created_ms: i64) -> LocalImage {
        LocalImage {
            id: id.into(),
            created_ms,
            tags: vec![format!("r/{id}:t")],
            labels: pipeline
                .map(|p| BTreeMap::from([(labels::PIPELINE.to_owned(), p.to_owned())]))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn each_pipeline_keeps_its_newest_images() {
        let images = [
            image("a1", Some("web/a"), 1),
            image("a4", Some("web/a"), 4),
            image("a2", Some("web/a"), 2),
            image("a3", Some("web/a"), 3),
            image("b1", Some("ops/b"), 1),
            image("x", None, 0),
            image("e", Some(""), 0),
        ];
        let ids = |keep| -> Vec<&str> {
            stale_images(&images, keep)
                .iter()
                .map(|i| i.id.as_str())
                .collect()
        };
        assert_eq!(ids(3), ["a1"]);
        assert_eq!(ids(2), ["a2", "a1"]);
        assert_eq!(ids(0), ["b1", "a4", "a3", "a2", "a1"]);
        assert!(ids(5).is_empty());
    }
}
