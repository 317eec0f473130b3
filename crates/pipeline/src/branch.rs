//! Branches: which ones a pipeline builds (`main`, `release/*`), names from push refs, valid
//! branch names and commit ids, and the image tag a branch gets.
//!
//! Patterns are the globs of `.dockerignore` ([`berth_engine::context::Glob`]): `*` stays
//! within one `/`-separated part, `**` crosses them, `?` and `[a-z]` match one character.

use std::fmt;

use berth_engine::context::Glob;

/// The longest branch name or pattern accepted.
const MAX_LEN: usize = 255;
/// Docker's longest tag.
const MAX_TAG_LEN: usize = 128;

/// Which branches a pipeline builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchPattern {
    pattern: String,
    glob: Glob,
}

/// Why a branch pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid branch pattern {pattern:?}: {reason}")]
pub struct InvalidBranchPattern {
    pub pattern: String,
    pub reason: &'static str,
}

impl BranchPattern {
    /// Parses a pattern; `refs/heads/` in front is accepted and dropped.
    pub fn new(pattern: &str) -> Result<Self, InvalidBranchPattern> {
        let invalid = |reason| InvalidBranchPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let trimmed = pattern.strip_prefix("refs/heads/").unwrap_or(pattern);
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.len() > MAX_LEN {
            return Err(invalid("it is longer than 255 characters"));
        }
        if let Some(reason) = name_problem(trimmed, true) {
            return Err(invalid(reason));
        }
        Ok(Self {
            pattern: trimmed.to_owned(),
            glob: Glob::new(trimmed),
        })
    }

    /// Whether `branch` (a name like `release/1.2`, not a ref) is built.
    pub fn matches(&self, branch: &str) -> bool {
        self.glob.matches(branch)
    }

    /// The pattern as given (without `refs/heads/`).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl fmt::Display for BranchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// The branch a pushed ref names (`refs/heads/main` → `main`); `None` for tags and other refs.
pub fn branch_from_ref(git_ref: &str) -> Option<&str> {
    git_ref
        .strip_prefix("refs/heads/")
        .filter(|b| is_valid_branch(b))
}

/// Whether `name` is a branch name git accepts (`git check-ref-format --branch`) and that is
/// safe to pass to git: no leading `-`, no spaces or control characters, no `..`, `@{`, `\`,
/// glob characters, empty or dot-led parts, and no `.lock` ending.
pub fn is_valid_branch(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEN && name != "@" && name_problem(name, false).is_none()
}

/// What makes `name` unusable as a branch name (or, with `glob`, as a pattern).
fn name_problem(name: &str, glob: bool) -> Option<&'static str> {
    if name.starts_with('-') {
        return Some("it starts with '-'");
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Some("it has an empty part between '/'");
    }
    if name.ends_with('.') || name.ends_with(".lock") {
        return Some("it ends with '.' or '.lock'");
    }
    if name.contains("..") || name.contains("@{") {
        return Some("it contains '..' or '@{'");
    }
    if name.split('/').any(|part| part.starts_with('.')) {
        return Some("a part starts with '.'");
    }
    for c in name.chars() {
        if c.is_control() || c == ' ' || c == '~' || c == '^' || c == ':' || c == '\\' {
            return Some("it contains a space, a control character or one of ~ ^ : \\");
        }
        if !glob && matches!(c, '*' | '?' | '[') {
            return Some("it contains a glob character (* ? [)");
        }
    }
    None
}

/// Whether `sha` is a full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn is_commit_id(sha: &str) -> bool {
    matches!(sha.len(), 40 | 64)
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The image tag for a branch: characters Docker refuses become `-` (`release/1.2` →
/// `release-1.2`), it starts with a letter, digit or `_`, and is at most 128 characters.
pub fn branch_tag(branch: &str) -> String {
    let mut tag = docker_name(branch);
    if !tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
        tag.insert(0, '_');
    }
    tag.truncate(MAX_TAG_LEN);
    tag
}

/// `text` with every character Docker refuses in tags and container names (anything but
/// ASCII letters, digits, `_`, `.` and `-`) replaced by `-`.
pub fn docker_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_branches() {
        let cases: &[(&str, &str, bool)] = &[
            ("main", "main", true),
            ("main", "main-2", false),
            ("main", "feature/main", false),
            ("refs/heads/main", "main", true),
            ("release/*", "release/1.2", true),
            ("release/*", "release/1.2/hotfix", false),
            ("release/*", "release", false),
            ("release/**", "release/1.2/hotfix", true),
            ("*", "main", true),
            ("*", "feature/x", false),
            ("**", "feature/x", true),
            ("feature-*", "feature-login", true),
            ("v[0-9]*", "v2-beta", true),
            ("v[0-9]*", "vnext", false),
        ];
        for (pattern, branch, want) in cases {
            let p = BranchPattern::new(pattern).unwrap();
            assert_eq!(p.matches(branch), *want, "{pattern:?} vs {branch:?}");
        }
        assert_eq!(
            BranchPattern::new("refs/heads/main").unwrap().as_str(),
            "main"
        );
    }

    #[test]
    fn refuses_bad_patterns() {
        for bad in [
            "",
            "refs/heads/",
            "-main",
            "/main",
            "main/",
            "a//b",
            "a..b",
            "a b",
            "a\tb",
            "x.lock",
            ".hidden",
            "a/.b",
            "a:b",
            "a@{1}",
            "a\\b",
        ] {
            let err = BranchPattern::new(bad).unwrap_err();
            assert_eq!(err.pattern, bad);
            assert!(err.to_string().contains("invalid branch pattern"), "{err}");
        }
        assert!(BranchPattern::new(&"a".repeat(256)).is_err());
    }

    #[test]
    fn branch_names_and_refs() {
        let valid = ["main", "release/1.2", "feature/x-y_z", "a.b", "ü"];
        for name in valid {
            assert!(is_valid_branch(name), "{name:?}");
        }
        let invalid = [
            "", "@", "-x", "a..b", "a b", "a*", "a?", "a[", "a/", ".a", "a.lock", "a~1", "a^",
            "a:b", "a\\b", "a\n",
        ];
        for name in invalid {
            assert!(!is_valid_branch(name), "{name:?}");
        }
        let refs = [
            ("refs/heads/main", Some("main")),
            ("refs/heads/release/1.2", Some("release/1.2")),
            ("refs/tags/v1", None),
            ("main", None),
            ("refs/heads/", None),
            ("refs/heads/-x", None),
        ];
        for (r, want) in refs {
            assert_eq!(branch_from_ref(r), want, "{r}");
        }
    }

    #[test]
    fn commit_ids() {
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(is_commit_id(&"0123456789abcdef".repeat(4)));
        for bad in [
            "abc".to_owned(),
            "A".repeat(40),
            "g".repeat(40),
            "a".repeat(41),
            "--upload-pack=x".to_owned(),
        ] {
            assert!(!is_commit_id(&bad), "{bad:?}");
        }
    }

    #[test]
    fn tags_for_branches() {
        let cases = [
            ("main", "main".to_owned()),
            ("release/1.2", "release-1.2".to_owned()),
            ("feature/ü", "feature--".to_owned()),
            (".x", "_.x".to_owned()),
            ("-x", "_-x".to_owned()),
            ("_x", "_x".to_owned()),
            (&"b".repeat(200), "b".repeat(128)),
        ];
        for (branch, want) in cases {
            assert_eq!(branch_tag(branch), want, "{branch:?}");
        }
    }
}
