//! The images a Dockerfile builds on (`FROM`, `COPY --from=`), and the rule that a build
//! uses Berth's registry only within its own team.
//!
//! The engine's image cache is shared: an image another team pushed or deployed may be there
//! under its registry name, and the classic builder takes a local image without asking the
//! registry (whose credentials are scoped to the build's team). So the references are read
//! before the build, the way the builder will read them — build arguments and `ARG` defaults
//! substituted, stage names told apart from images — and refused when they name another
//! team's repository in Berth's registry, or an image by its ID. A reference whose variables
//! cannot be resolved ahead of the build is refused too, rather than guessed.

use std::collections::{BTreeMap, HashSet};

/// Which images a build may start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageScope {
    /// The team the build runs for: its repositories (`team/...`) are allowed.
    pub team: String,
    /// Every host name of Berth's registry (`127.0.0.1:7700`, `localhost:7700`, …).
    pub registry_hosts: Vec<String>,
}

impl ImageScope {
    /// Checks every image the Dockerfile names; the error is a sentence for the build log.
    pub fn check(
        &self,
        dockerfile: &str,
        build_args: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        for reference in image_references(dockerfile, build_args)? {
            self.allows(&reference)?;
        }
        Ok(())
    }

    fn allows(&self, reference: &str) -> Result<(), String> {
        if names_an_image_id(reference) {
            return Err(format!(
                "the Dockerfile uses {reference:?}, which reads as an image ID: name images \
                 (the engine's image cache is shared between teams)"
            ));
        }
        let Some(repository) = built_in_repository(reference, &self.registry_hosts) else {
            return Ok(());
        };
        let team = team_of_repository(repository);
        if team == self.team {
            Ok(())
        } else {
            Err(format!(
                "the Dockerfile uses {reference}, which is not team {}'s: a build may use \
                 only its own team's images from Berth's registry",
                self.team
            ))
        }
    }
}

use berth_core::image_ref::{built_in_repository, names_an_image_id, team_of_repository};

/// The image references of `FROM` and `COPY --from=` instructions, with variables
/// substituted; stage names, stage numbers and `scratch` are left out.
pub fn image_references(
    dockerfile: &str,
    build_args: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: HashSet<String> = HashSet::new();
    let mut images = Vec::new();
    let mut seen_from = false;
    for instruction in instructions(dockerfile) {
        let mut words = instruction.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        match keyword.to_ascii_uppercase().as_str() {
            // Only the ARGs before the first FROM apply to FROM lines.
            "ARG" if !seen_from => {
                for declaration in &rest {
                    let (name, default) = match declaration.split_once('=') {
                        Some((name, value)) => (name, Some(unquote(value))),
                        None => (*declaration, None),
                    };
                    let value = build_args.get(name).cloned().or(default);
                    if let Some(value) = value {
                        args.insert(name.to_owned(), value);
                    }
                }
            }
            "FROM" => {
                seen_from = true;
                let mut operands = rest.iter().filter(|w| !w.starts_with("--"));
                let Some(image) = operands.next() else {
                    return Err("a FROM instruction names no image".into());
                };
                let image = substitute(image, &args)?;
                if !image.eq_ignore_ascii_case("scratch")
                    && !stages.contains(&image.to_ascii_lowercase())
                {
                    images.push(image);
                }
                if let (Some(as_word), Some(alias)) = (operands.next(), operands.next())
                    && as_word.eq_ignore_ascii_case("as")
                {
                    stages.insert(alias.to_ascii_lowercase());
                }
            }
            "COPY" | "ADD" => {
                for flag in rest.iter().take_while(|w| w.starts_with("--")) {
                    if let Some(source) = flag.strip_prefix("--from=") {
                        let source = unquote(source);
                        if source.contains('$') {
                            return Err(format!(
                                "COPY --from={source} uses a variable, which --from does not \
                                 expand"
                            ));
                        }
                        let is_stage = stages.contains(&source.to_ascii_lowercase())
                            || source.bytes().all(|b| b.is_ascii_digit());
                        if !is_stage {
                            images.push(source);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(images)
}

/// The Dockerfile's instructions: comments and parser directives dropped, continuation lines
/// joined (with the escape character the `escape` directive sets, `\` by default).
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut escape = '\\';
    let mut in_directives = true;
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if in_directives {
            if let Some(directive) = trimmed.strip_prefix('#') {
                if let Some((key, value)) = directive.split_once('=')
                    && key.trim().eq_ignore_ascii_case("escape")
                {
                    escape = value.trim().chars().next().unwrap_or('\\');
                }
                continue;
            }
            in_directives = false;
        }
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix(escape) {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

/// `$NAME` and `${NAME}` replaced by their values (unset: empty, as the builder does); any
/// other form (`${NAME:-default}`, `${NAME:+x}`) is refused.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    let word = unquote(word);
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek() == Some(&'{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.next() != Some('}') {
            return Err(format!(
                "FROM {word} uses a variable form Berth cannot check before the build; use \
                 $NAME or ${{NAME}}"
            ));
        }
        if name.is_empty() {
            return Err(format!("FROM {word} has a stray '$'"));
        }
        out.push_str(args.get(&name).map_or("", String::as_str));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> ImageScope {
        ImageScope {
            team: "web".into(),
            registry_hosts: vec!["127.0.0.1:7700".into(), "localhost:7700".into()],
        }
    }

    #[test]
    fn finds_the_images_a_dockerfile_names() {
        let args = BTreeMap::from([("TAG".to_owned(), "v2".to_owned())]);
        let cases: &[(&str, Result<Vec<&str>, ()>)] = &[
            ("FROM scratch\nCOPY . /\n", Ok(vec![])),
            ("FROM alpine:3\n", Ok(vec!["alpine:3"])),
            (
                "FROM base AS build\nRUN make\nFROM build\nCOPY --from=build /a /a\n",
                Ok(vec!["base"]),
            ),
            (
                "FROM a AS one\nFROM b\nCOPY --from=0 /x /x\nCOPY --from=one /y /y\n\
                 COPY --chown=1 --from=other/img:1 /z /z\n",
                Ok(vec!["a", "b", "other/img:1"]),
            ),
            (
                "ARG TAG=v1\nARG REG=127.0.0.1:7700\nFROM ${REG}/web/base:$TAG\n",
                Ok(vec!["127.0.0.1:7700/web/base:v2"]),
            ),
            ("ARG B=\"q/r\"\nFROM $B\n", Ok(vec!["q/r"])),
            (
                "FROM \\\n  --platform=linux/amd64 \\\n  x/y\n",
                Ok(vec!["x/y"]),
            ),
            ("# escape=`\nFROM `\n  x/y\n", Ok(vec!["x/y"])),
            (
                "# a comment\nfrom lower AS Stage\nfrom stage\n",
                Ok(vec!["lower"]),
            ),
            ("FROM ${X:-127.0.0.1:7700/other/app}\n", Err(())),
            ("FROM\n", Err(())),
            ("COPY --from=$X /a /a\n", Err(())),
        ];
        for (dockerfile, want) in cases {
            let got = image_references(dockerfile, &args);
            match want {
                Ok(images) => assert_eq!(
                    got.as_deref(),
                    Ok(&images.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
                    "{dockerfile}"
                ),
                Err(()) => assert!(got.is_err(), "{dockerfile}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_build_uses_only_its_own_teams_images_from_berth() {
        let none = BTreeMap::new();
        let cases = [
            ("FROM 127.0.0.1:7700/web/base:v1\n", true),
            ("FROM LOCALHOST:7700/web/base@sha256:00\n", true),
            ("FROM berth-testapp:latest\n", true),
            ("FROM registry.example.com/other/app\n", true),
            ("FROM 127.0.0.1:7700/other/app\n", false),
            ("FROM localhost:7700/other/app:v1\n", false),
            (
                "FROM scratch\nCOPY --from=127.0.0.1:7700/other/app / /\n",
                false,
            ),
            ("FROM 127.0.0.1:7700/webshop/app\n", false),
            ("FROM sha256:4f1c\n", false),
            ("FROM 4f1c2a\n", false),
            ("FROM scratch\nCOPY --from=4f1c2a / /\n", false),
            ("ARG R=127.0.0.1:7700/other\nFROM $R/app\n", false),
        ];
        for (dockerfile, allowed) in cases {
            let got = scope().check(dockerfile, &none);
            assert_eq!(got.is_ok(), allowed, "{dockerfile}: {got:?}");
        }
        // A build argument can point FROM elsewhere, and is checked as well.
        let args = BTreeMap::from([("R".to_owned(), "127.0.0.1:7700/other".to_owned())]);
        assert!(
            scope()
                .check("ARG R=127.0.0.1:7700/web\nFROM $R/app\n", &args)
                .is_err()
        );
    }
}
