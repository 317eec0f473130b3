//! Build contexts: packing a directory as a tar archive, honouring its `.dockerignore`, and the
//! glob patterns both `.dockerignore` files and pipeline branch filters use.
//!
//! Patterns follow Docker's `.dockerignore` rules: `*` matches any run of characters but `/`,
//! `?` one character but `/`, `[a-z]`/`[!a-z]` a class, `\` escapes, and `**` any number of
//! path segments (`**/x` also matches `x`). Archives are deterministic (sorted entries, fixed
//! times and owners), so a fresh checkout of the same files reuses the engine's build cache.
//!
//! A build's labels go into the archive as one `LABEL` line at the end of a copy of the
//! Dockerfile ([`labelled_dockerfile`]): Docker's classic builder makes one step, each with
//! its own container and commit, per label of its `labels` option, and one for the line.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

/// Name of the file that lists what a context leaves out.
pub const DOCKERIGNORE: &str = ".dockerignore";
/// The Dockerfile path used when none is given.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";
/// Bytes per chunk sent to the engine while packing.
const CHUNK: usize = 64 * 1024;
/// Where a [`LabelledDockerfile`] goes in the archive (its root); the engine is told to build
/// from it, and drops it from the context after reading it (it is in `.dockerignore`).
pub const LABELLED_DOCKERFILE: &str = ".berth-build.Dockerfile";
/// A Dockerfile larger than this keeps its labels in the build's options.
const MAX_LABELLED_DOCKERFILE: u64 = 1024 * 1024;

/// Whether `text` (a `/`-separated path or a branch name) matches the glob `pattern`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

/// One token of a compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**` at the end: anything, `/` included.
    AnyPath,
    /// `**` elsewhere (a following `/` is part of it): zero or more whole segments.
    AnyDirs,
    /// `[…]`
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`; an unclosed `[` and a trailing `\` stand for themselves.
    pub fn new(pattern: &str) -> Self {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    i += 2;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    tokens.push(if i >= chars.len() {
                        Token::AnyPath
                    } else {
                        Token::AnyDirs
                    });
                    continue;
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::One),
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    tokens.push(Token::Literal(chars[i]));
                }
                '[' => match parse_class(&chars[i + 1..]) {
                    Some((token, used)) => {
                        tokens.push(token);
                        i += used + 1;
                        continue;
                    }
                    None => tokens.push(Token::Literal('[')),
                },
                c => tokens.push(Token::Literal(c)),
            }
            i += 1;
        }
        Self { tokens }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // memo[t * (len + 1) + s]: 0 unknown, 1 no, 2 yes. Keeps matching linear in
        // tokens × text whatever the pattern.
        let mut memo = vec![0u8; (self.tokens.len() + 1) * (text.len() + 1)];
        self.match_from(0, 0, &text, &mut memo)
    }

    fn match_from(&self, t: usize, s: usize, text: &[char], memo: &mut [u8]) -> bool {
        let slot = t * (text.len() + 1) + s;
        if memo[slot] != 0 {
            return memo[slot] == 2;
        }
        let here = text.get(s).copied();
        let not_sep = here.is_some_and(|c| c != '/');
        let result = match self.tokens.get(t) {
            None => s == text.len(),
            Some(Token::Literal(c)) => {
                here == Some(*c) && self.match_from(t + 1, s + 1, text, memo)
            }
            Some(Token::One) => not_sep && self.match_from(t + 1, s + 1, text, memo),
            Some(Token::Class { ranges, negated }) => {
                not_sep
                    && here.is_some_and(|c| {
                        ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
                    })
                    && self.match_from(t + 1, s + 1, text, memo)
            }
            Some(Token::Star) => {
                self.match_from(t + 1, s, text, memo)
                    || (not_sep && self.match_from(t, s + 1, text, memo))
            }
            Some(Token::AnyPath) => {
                self.match_from(t + 1, s, text, memo)
                    || (here.is_some() && self.match_from(t, s + 1, text, memo))
            }
            Some(Token::AnyDirs) => {
                self.match_from(t + 1, s, text, memo)
                    || (s..text.len())
                        .any(|j| text[j] == '/' && self.match_from(t + 1, j + 1, text, memo))
            }
        };
        memo[slot] = if result { 2 } else { 1 };
        result
    }
}

/// Parses the inside of `[…]` (after the `[`); returns the token and the characters used,
/// the closing `]` included, or `None` when it is not closed.
fn parse_class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class { ranges, negated }, i + 1));
        }
        first = false;
        if c == '\\' {
            i += 1;
            c = *chars.get(i)?;
        }
        let mut hi = c;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&n| n != ']') {
            i += 2;
            hi = chars[i];
            if hi == '\\' {
                i += 1;
                hi = *chars.get(i)?;
            }
        }
        ranges.push((c, hi));
        i += 1;
    }
}

/// One line of a `.dockerignore`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IgnoreRule {
    glob: Glob,
    /// A `!` line: matching paths are put back.
    exception: bool,
}

/// The rules of a `.dockerignore` file: the last rule matching a path (or one of its parent
/// directories) decides whether it is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    rules: Vec<IgnoreRule>,
}

impl DockerIgnore {
    /// Parses the file's text: one pattern a line, `#` comments, `!` exceptions; patterns are
    /// cleaned like paths (`./a//b/` is `a/b`, a leading `/` is dropped).
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let pattern = clean_path(pattern);
                (!pattern.is_empty()).then(|| IgnoreRule {
                    glob: Glob::new(&pattern),
                    exception,
                })
            })
            .collect();
        Self { rules }
    }

    /// Reads `<dir>/.dockerignore`; no file means no rules, and so does anything but a
    /// regular file (a symbolic link is never followed out of the context).
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(DOCKERIGNORE);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_file() => return Ok(Self::default()),
            _ => {}
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// Whether the `/`-separated relative `path` is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for rule in &self.rules {
            let hit = rule.glob.matches(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| rule.glob.matches(&path[..i]));
            if hit {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether any `!` rule exists (then an excluded directory may still hold included files).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

/// Why a path inside a build's checkout cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsidePathError {
    /// A `..` or a symbolic link leads out of the root.
    #[error("{0:?} leads out of the repository")]
    Escapes(String),
    /// Links that point at links, more than [`MAX_LINK_HOPS`] times (or in a loop).
    #[error("{0:?} goes through too many symbolic links")]
    TooManyLinks(String),
    #[error("{path:?}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Symbolic links followed while resolving one path (Linux allows 40).
pub const MAX_LINK_HOPS: usize = 40;

/// Resolves the `/`-separated relative `path` inside `root` the way a build must: symbolic
/// links are followed only while they stay inside `root` (a relative target resolved from
/// the link's directory; an absolute target, or a `..` above `root`, is refused rather than
/// reinterpreted), and the answer — relative to `root`, without `.`, `..` or links — names
/// something that is reached without leaving it. Components that do not exist are kept as
/// they are, for the caller to report as missing.
///
/// `root` itself is trusted (Berth made it); everything below it came from a repository.
pub fn resolve_inside(root: &Path, path: &str) -> Result<String, InsidePathError> {
    let mut todo: std::collections::VecDeque<String> = path.split('/').map(str::to_owned).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if resolved.pop().is_none() {
                    return Err(InsidePathError::Escapes(path.to_owned()));
                }
                continue;
            }
            _ => {}
        }
        let candidate = root.join(resolved.join("/")).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return Err(InsidePathError::TooManyLinks(path.to_owned()));
                }
                let target =
                    std::fs::read_link(&candidate).map_err(|e| InsidePathError::Unreadable {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    return Err(InsidePathError::Escapes(path.to_owned()));
                }
                for component in target.rsplit('/') {
                    todo.push_front(component.to_owned());
                }
            }
            Ok(_) => resolved.push(part),
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(part),
            Err(e) => {
                return Err(InsidePathError::Unreadable {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(resolved.join("/"))
}

/// Cleans a relative path like Go's `filepath.Clean`, without a leading `/`: empty and `.`
/// segments go, `..` removes its parent (and nothing above the root).
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Writes `dir` as a tar archive to `out`: every file, directory and symlink (not followed)
/// that `.dockerignore` does not exclude, in sorted order, with fixed times and owners. The
/// Dockerfile (`dockerfile`, relative) and `.dockerignore` are always included.
pub fn tar_directory(dir: &Path, dockerfile: &str, out: impl Write) -> io::Result<()> {
    tar_context(dir, dockerfile, None, out)
}

/// Like [`tar_directory`]; with `labelled`, the archive's root gets its Dockerfile (as
/// [`LABELLED_DOCKERFILE`]) and `.dockerignore` instead of the directory's own, and the
/// directory's Dockerfile is sent only when `.dockerignore` lets it (the engine reads the
/// generated one).
pub fn tar_context(
    dir: &Path,
    dockerfile: &str,
    labelled: Option<&LabelledDockerfile>,
    out: impl Write,
) -> io::Result<()> {
    let ignore = DockerIgnore::load(dir)?;
    let dockerfile = match clean_path(dockerfile) {
        p if p.is_empty() => DEFAULT_DOCKERFILE.to_owned(),
        p => p,
    };
    let (keep, replaced): (Vec<&str>, &[&str]) = match labelled {
        None => (vec![dockerfile.as_str(), DOCKERIGNORE], &[]),
        Some(_) => (Vec::new(), &[LABELLED_DOCKERFILE, DOCKERIGNORE]),
    };
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    if let Some(labelled) = labelled {
        append_generated(&mut builder, DOCKERIGNORE, &labelled.dockerignore)?;
        append_generated(&mut builder, LABELLED_DOCKERFILE, &labelled.dockerfile)?;
    }
    let walker = Walker {
        root: dir,
        ignore: &ignore,
        keep: &keep,
        replaced,
    };
    walker.walk(Path::new(""), &mut builder)?;
    builder.into_inner()?.flush()
}

/// A generated file, with the fixed owner, mode and time of the archive's other entries.
fn append_generated<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    content: &str,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    // The time tar's deterministic mode gives every entry.
    header.set_mtime(1_153_704_088);
    builder.append_data(&mut header, name, content.as_bytes())
}

struct Walker<'a> {
    root: &'a Path,
    ignore: &'a DockerIgnore,
    keep: &'a [&'a str],
    /// Entries at the root that the archive holds in another version (left out here).
    replaced: &'a [&'a str],
}

impl Walker<'_> {
    fn walk<W: Write>(&self, rel: &Path, builder: &mut tar::Builder<W>) -> io::Result<()> {
        let dir = self.root.join(rel);
        let mut entries = std::fs::read_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let rel_path = rel.join(entry.file_name());
            let name = rel_path.to_string_lossy().into_owned();
            if self.replaced.contains(&name.as_str()) {
                continue;
            }
            let kept = self.keep.contains(&name.as_str());
            let excluded = !kept && self.ignore.excludes(&name);
            let file_type = entry.file_type()?;
            let full = entry.path();
            if file_type.is_dir() {
                let prefix = format!("{name}/");
                let holds_kept = self.keep.iter().any(|k| k.starts_with(&prefix));
                if excluded && !self.ignore.has_exceptions() && !holds_kept {
                    continue;
                }
                if !excluded {
                    builder.append_path_with_name(&full, &rel_path)?;
                }
                self.walk(&rel_path, builder)?;
            } else if excluded {
                continue;
            } else if file_type.is_file() || file_type.is_symlink() {
                builder
                    .append_path_with_name(&full, &rel_path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", full.display())))?;
            } else {
                tracing::debug!(path = %full.display(), "skipping a special file in the build context");
            }
        }
        Ok(())
    }
}

/// The Dockerfile and `.dockerignore` of an archive whose Dockerfile sets the build's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledDockerfile {
    /// The context's Dockerfile with one `LABEL` line appended (see [`dockerfile_with_labels`]).
    pub dockerfile: String,
    /// The context's `.dockerignore` plus [`LABELLED_DOCKERFILE`] (see [`dockerignore_with`]).
    pub dockerignore: String,
}

/// The context's Dockerfile with the labels appended as one `LABEL` line, for
/// [`tar_context`]; `None` when the labels must go as the build's `labels` option instead:
/// no labels, a label [`label_instruction`] cannot write, a Dockerfile or `.dockerignore`
/// that is not a regular file inside `dir` (a symlink is not followed), a Dockerfile larger
/// than 1 MiB or ending in a line continuation.
///
/// Appended last, the line leaves every earlier step cacheable, and the labels land on the
/// final stage, as with the option. The original Dockerfile stays in the context unchanged,
/// and the generated one is listed in `.dockerignore` (as the docker CLI does for a
/// Dockerfile from stdin), so a `COPY .` sees neither a new nor a per-build file.
pub fn labelled_dockerfile(
    dir: &Path,
    dockerfile: &str,
    labels: &BTreeMap<String, String>,
) -> Option<LabelledDockerfile> {
    let dockerfile = match clean_path(dockerfile) {
        p if p.is_empty() => DEFAULT_DOCKERFILE.to_owned(),
        p => p,
    };
    let root = dir.canonicalize().ok()?;
    let path = dir.join(&dockerfile);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    let inside = path
        .canonicalize()
        .is_ok_and(|real| real.starts_with(&root) && real != root);
    if !meta.is_file() || !inside || meta.len() > MAX_LABELLED_DOCKERFILE {
        return None;
    }
    let dockerignore = match std::fs::symlink_metadata(dir.join(DOCKERIGNORE)) {
        Ok(meta) if meta.is_file() => Some(std::fs::read_to_string(dir.join(DOCKERIGNORE)).ok()?),
        Ok(_) => return None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => return None,
    };
    let text = std::fs::read_to_string(&path).ok()?;
    Some(LabelledDockerfile {
        dockerfile: dockerfile_with_labels(&text, labels)?,
        dockerignore: dockerignore_with(dockerignore.as_deref()),
    })
}

/// `dockerfile` with `labels` appended as one `LABEL` line (on a line of its own), or `None`
/// when there are no labels, one cannot be written ([`label_instruction`]), or the last line
/// ends in `\` or `` ` `` (a continuation would swallow the `LABEL`).
pub fn dockerfile_with_labels(
    dockerfile: &str,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let line = label_instruction(labels)?;
    let body = dockerfile.trim_end();
    if body.ends_with(['\\', '`']) {
        return None;
    }
    let mut out = String::with_capacity(dockerfile.len() + line.len() + 2);
    out.push_str(dockerfile);
    if !dockerfile.is_empty() && !dockerfile.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&line);
    out.push('\n');
    Some(out)
}

/// `LABEL 'key'='value' …` in key order, or `None` for no labels or one that single quotes
/// cannot carry through the Dockerfile parser: a quote, `\` or `` ` `` (escape characters,
/// whichever the Dockerfile chose), a control character, or an empty key or one with `=`.
/// Inside single quotes nothing is expanded, so `$` and spaces stay as they are.
pub fn label_instruction(labels: &BTreeMap<String, String>) -> Option<String> {
    let plain = |s: &str| {
        !s.chars()
            .any(|c| matches!(c, '\'' | '\\' | '`') || c.is_control())
    };
    if labels.is_empty() {
        return None;
    }
    let mut line = String::from("LABEL");
    for (key, value) in labels {
        if key.is_empty() || key.contains('=') || !plain(key) || !plain(value) {
            return None;
        }
        line.push_str(&format!(" '{key}'='{value}'"));
    }
    Some(line)
}

/// The `.dockerignore` of a labelled archive: the context's own (or, without one, a line
/// that leaves the generated `.dockerignore` itself out, as the docker CLI writes it) and
/// [`LABELLED_DOCKERFILE`], last so that no `!` exception can put it back.
pub fn dockerignore_with(original: Option<&str>) -> String {
    let mut out = original.unwrap_or(DOCKERIGNORE).to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(LABELLED_DOCKERFILE);
    out.push('\n');
    out
}

/// A directory packed as a tar stream in the background, and the packing error, if any.
pub(crate) struct PackedContext {
    pub stream: BoxStream<'static, io::Result<Bytes>>,
    /// Set when packing failed (the stream then ends with an error).
    pub failure: Arc<Mutex<Option<String>>>,
}

/// Packs `dir` on a blocking thread while the engine reads the stream; packing stops when the
/// stream is dropped.
pub(crate) fn pack_directory(
    dir: PathBuf,
    dockerfile: String,
    labelled: Option<LabelledDockerfile>,
) -> PackedContext {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let failure = Arc::new(Mutex::new(None));
    let failed = failure.clone();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = tar_context(&dir, &dockerfile, labelled.as_ref(), writer) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return;
            }
            let message = format!("cannot pack the build context {}: {e}", dir.display());
            if let Ok(mut slot) = failed.lock() {
                *slot = Some(message.clone());
            }
            let _ = tx.blocking_send(Err(io::Error::other(message)));
        }
    });
    let stream = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    PackedContext { stream, failure }
}

/// Sends what is written in chunks over a channel (from a blocking thread).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_dockerignore() {
        let cases: &[(&str, &str, bool)] = &[
            ("main", "main", true),
            ("main", "main2", false),
            ("main", "mai", false),
            ("release/*", "release/1.0", true),
            ("release/*", "release/", true),
            ("release/*", "release/1.0/hotfix", false),
            ("release/*", "release", false),
            ("release/**", "release/1.0/hotfix", true),
            ("release/**", "release/x", true),
            ("**", "a/b/c", true),
            ("**/*.log", "x.log", true),
            ("**/*.log", "a/b/x.log", true),
            ("**/*.log", "a/b/x.txt", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/xb", false),
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("feat-?", "feat-a", true),
            ("feat-?", "feat-ab", false),
            ("feat-?", "feat-/", false),
            ("v[0-9]*", "v1.2", true),
            ("v[0-9]*", "vx", false),
            ("v[!0-9]*", "vx", true),
            ("v[!0-9]*", "v1", false),
            ("v[^0-9]", "v1", false),
            ("[]]", "]", true),
            ("a[/]b", "a/b", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("a[", "a[", true),
            ("", "", true),
            ("", "x", false),
            ("*", "", true),
            (
                "*a*a*a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
            ("hotfix-*-π", "hotfix-1-π", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), *want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn cleans_paths() {
        let cases = [
            ("a/b", "a/b"),
            ("./a//b/", "a/b"),
            ("/a/b", "a/b"),
            ("a/../b", "b"),
            ("../../a", "a"),
            (".", ""),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }

    #[test]
    fn dockerignore_rules() {
        let ignore = DockerIgnore::parse(
            "# comment\n\n  *.log  \nsecret/\n/build\n!build/keep.txt\ntmp/**/*.bin\n!important.log\n",
        );
        let cases = [
            ("app.log", true),
            ("important.log", false),
            ("src/app.log", false),
            ("secret", true),
            ("secret/key.pem", true),
            ("secretive", false),
            ("build", true),
            ("build/out.o", true),
            ("build/keep.txt", false),
            ("tmp/a.bin", true),
            ("tmp/x/y/a.bin", true),
            ("tmp/a.txt", false),
            ("Dockerfile", false),
            ("# comment", false),
        ];
        for (path, want) in cases {
            assert_eq!(ignore.excludes(path), want, "{path}");
        }
        assert!(ignore.has_exceptions());
        assert!(!DockerIgnore::parse("a\nb/").has_exceptions());
        assert_eq!(
            DockerIgnore::parse("  \n# x\n!\n./\n"),
            DockerIgnore::default()
        );
    }

    fn entries(archive: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut archive = tar::Archive::new(archive);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn packs_a_directory_honouring_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/nested")).unwrap();
        std::fs::create_dir_all(root.join("target/debug")).unwrap();
        std::fs::create_dir_all(root.join("docker")).unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(root.join("src/nested/x.txt"), "x").unwrap();
        std::fs::write(root.join("target/debug/app"), "binary").unwrap();
        std::fs::write(root.join("debug.log"), "noise").unwrap();
        std::fs::write(root.join("docker/Dockerfile"), "FROM scratch").unwrap();
        std::fs::write(
            root.join(".dockerignore"),
            "target\n*.log\ndocker\n.dockerignore\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("src/main.rs", root.join("link")).unwrap();

        let mut out = Vec::new();
        tar_directory(root, "./docker/Dockerfile", &mut out).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "docker/Dockerfile",
                "link",
                "src",
                "src/main.rs",
                "src/nested",
                "src/nested/x.txt",
            ]
        );
        let kind = |name: &str| got.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(kind("link"), tar::EntryType::Symlink);
        assert_eq!(kind("src"), tar::EntryType::Directory);
        assert_eq!(kind("src/main.rs"), tar::EntryType::Regular);

        // Deterministic: the same files give the same bytes, whatever their times.
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        let mut again = Vec::new();
        tar_directory(root, "docker/Dockerfile", &mut again).unwrap();
        assert_eq!(out, again);
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_instructions_quote_or_refuse() {
        let cases: &[(&[(&str, &str)], Option<&str>)] = &[
            (&[], None),
            (&[("a", "1")], Some("LABEL 'a'='1'")),
            (
                &[("org.x.rev", "abc"), ("berth.build", "ns-build-7")],
                Some("LABEL 'berth.build'='ns-build-7' 'org.x.rev'='abc'"),
            ),
            (
                &[("k", "two words $HOME \"q\" a=b")],
                Some("LABEL 'k'='two words $HOME \"q\" a=b'"),
            ),
            (&[("k", "")], Some("LABEL 'k'=''")),
            (&[("k", "it's")], None),
            (&[("k", "back\\slash")], None),
            (&[("k", "back`tick")], None),
            (&[("k", "two\nlines")], None),
            (&[("k", "cr\r")], None),
            (&[("", "v")], None),
            (&[("a=b", "v")], None),
            (&[("it's", "v")], None),
            (&[("ok", "v"), ("bad", "'")], None),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                label_instruction(&labels(pairs)).as_deref(),
                *want,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn dockerfiles_get_one_label_line_at_the_end() {
        let one = labels(&[("a", "1")]);
        let cases: &[(&str, Option<&str>)] = &[
            ("FROM x\nRUN y\n", Some("FROM x\nRUN y\nLABEL 'a'='1'\n")),
            ("FROM x", Some("FROM x\nLABEL 'a'='1'\n")),
            ("FROM x\r\n", Some("FROM x\r\nLABEL 'a'='1'\n")),
            (
                "FROM x\n\n# end\n",
                Some("FROM x\n\n# end\nLABEL 'a'='1'\n"),
            ),
            ("", Some("LABEL 'a'='1'\n")),
            ("FROM x\nRUN a \\\n", None),
            ("FROM x\nRUN a \\  \n\n", None),
            ("# escape=`\nFROM x\nRUN a `\n", None),
        ];
        for (dockerfile, want) in cases {
            assert_eq!(
                dockerfile_with_labels(dockerfile, &one).as_deref(),
                *want,
                "{dockerfile:?}"
            );
        }
        assert_eq!(dockerfile_with_labels("FROM x\n", &BTreeMap::new()), None);
    }

    #[test]
    fn dockerignore_leaves_the_generated_dockerfile_out() {
        let cases: &[(Option<&str>, &str)] = &[
            (None, ".dockerignore\n.berth-build.Dockerfile\n"),
            (Some(""), ".berth-build.Dockerfile\n"),
            (Some(".git\n"), ".git\n.berth-build.Dockerfile\n"),
            (
                Some("*.log\n!keep.log"),
                "*.log\n!keep.log\n.berth-build.Dockerfile\n",
            ),
        ];
        for (original, want) in cases {
            assert_eq!(dockerignore_with(*original), *want, "{original:?}");
        }
    }

    fn file_of(archive: &[u8], name: &str) -> Option<String> {
        let mut archive = tar::Archive::new(archive);
        archive.entries().unwrap().find_map(|e| {
            let mut e = e.unwrap();
            (e.path().unwrap().to_string_lossy() == name).then(|| {
                let mut text = String::new();
                io::Read::read_to_string(&mut e, &mut text).unwrap();
                text
            })
        })
    }

    #[test]
    fn a_labelled_archive_carries_the_generated_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("docker")).unwrap();
        std::fs::write(root.join("docker/Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        std::fs::write(root.join("app.txt"), "app").unwrap();
        std::fs::write(root.join("debug.log"), "noise").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.log").unwrap();
        // A context file that happens to have the generated name is replaced.
        std::fs::write(root.join(LABELLED_DOCKERFILE), "stale").unwrap();
        let set = labels(&[("berth.build", "b-1"), ("berth.namespace", "ns")]);

        let labelled = labelled_dockerfile(root, "./docker/Dockerfile", &set).unwrap();
        assert_eq!(
            labelled.dockerfile,
            "FROM scratch\nCOPY . /\nLABEL 'berth.build'='b-1' 'berth.namespace'='ns'\n"
        );
        let mut out = Vec::new();
        tar_context(root, "docker/Dockerfile", Some(&labelled), &mut out).unwrap();
        let names: Vec<String> = entries(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                LABELLED_DOCKERFILE,
                "app.txt",
                "docker",
                "docker/Dockerfile"
            ]
        );
        assert_eq!(
            file_of(&out, LABELLED_DOCKERFILE).as_deref(),
            Some(labelled.dockerfile.as_str())
        );
        assert_eq!(
            file_of(&out, ".dockerignore").as_deref(),
            Some("*.log\n.berth-build.Dockerfile\n")
        );
        assert_eq!(
            file_of(&out, "docker/Dockerfile").as_deref(),
            Some("FROM scratch\nCOPY . /\n")
        );
        // Deterministic, like every archive.
        let mut again = Vec::new();
        tar_context(root, "docker/Dockerfile", Some(&labelled), &mut again).unwrap();
        assert_eq!(out, again);

        // A Dockerfile the .dockerignore excludes is not sent (the engine reads the copy).
        std::fs::write(root.join(".dockerignore"), "docker\n").unwrap();
        let labelled = labelled_dockerfile(root, "docker/Dockerfile", &set).unwrap();
        let mut out = Vec::new();
        tar_context(root, "docker/Dockerfile", Some(&labelled), &mut out).unwrap();
        let names: Vec<String> = entries(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [".dockerignore", LABELLED_DOCKERFILE, "app.txt", "debug.log"]
        );
    }

    #[test]
    fn labels_stay_in_the_build_options_when_the_files_are_not_plain() {
        let set = labels(&[("a", "1")]);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(outside.path().join("ignore"), "secret\n").unwrap();

        // No Dockerfile.
        assert_eq!(labelled_dockerfile(root, "", &set), None);
        // A symlink, inside or out, is not followed.
        std::os::unix::fs::symlink(outside.path().join("Dockerfile"), root.join("Dockerfile"))
            .unwrap();
        assert_eq!(labelled_dockerfile(root, "", &set), None);
        std::fs::remove_file(root.join("Dockerfile")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).unwrap();
        assert_eq!(labelled_dockerfile(root, "linked/Dockerfile", &set), None);
        std::fs::write(root.join("Dockerfile"), "FROM x\n").unwrap();
        assert!(labelled_dockerfile(root, "Dockerfile", &set).is_some());
        std::os::unix::fs::symlink(outside.path().join("ignore"), root.join(".dockerignore"))
            .unwrap();
        assert_eq!(labelled_dockerfile(root, "Dockerfile", &set), None);
        std::fs::remove_file(root.join(".dockerignore")).unwrap();
        // A label the line cannot carry.
        assert_eq!(
            labelled_dockerfile(root, "Dockerfile", &labels(&[("a", "it's")])),
            None
        );
        assert_eq!(
            labelled_dockerfile(root, "Dockerfile", &set).map(|l| l.dockerignore),
            Some(".dockerignore\n.berth-build.Dockerfile\n".to_owned())
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = tar_directory(&missing, "Dockerfile", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
