//! Image retention rules of the built-in registry, stored as desired state.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::validate::ValidationErrors;

/// What to keep of one repository; applied on schedule before garbage collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRule {
    /// `team/name`.
    pub repository: String,
    /// Keep only the N most recently pushed tags.
    pub keep_newest_tags: Option<u32>,
    /// Delete manifests no tag reaches once older than this.
    pub delete_untagged_older_than_ms: Option<u64>,
    pub updated_at: Millis,
}

impl RetentionRule {
    /// Checks the rule says something and its numbers make sense.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if self.repository.is_empty() || self.repository.len() > 255 {
            errors.push("repository", "must be 1 to 255 characters");
        }
        if self.keep_newest_tags.is_none() && self.delete_untagged_older_than_ms.is_none() {
            errors.push(
                "keep_newest_tags",
                "give keep_newest_tags or delete_untagged_older_than_ms",
            );
        }
        if self.keep_newest_tags == Some(0) {
            errors.push(
                "keep_newest_tags",
                "must be at least 1 (delete the repository's tags instead)",
            );
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_must_say_something() {
        let rule = |keep, older| RetentionRule {
            repository: "team/app".into(),
            keep_newest_tags: keep,
            delete_untagged_older_than_ms: older,
            updated_at: 0,
        };
        let cases = [
            (rule(Some(5), None), None),
            (rule(None, Some(86_400_000)), None),
            (rule(None, None), Some("keep_newest_tags")),
            (rule(Some(0), None), Some("keep_newest_tags")),
            (
                RetentionRule {
                    repository: String::new(),
                    ..rule(Some(1), None)
                },
                Some("repository"),
            ),
        ];
        for (rule, want) in cases {
            let got = rule
                .validate()
                .err()
                .map(|e| e.first().unwrap().field.clone());
            assert_eq!(got.as_deref(), want, "{rule:?}");
        }
    }
}
