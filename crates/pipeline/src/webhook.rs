//! Push webhooks from GitHub, GitLab and Gitea: which forge sent a request, whether it is
//! genuine, its delivery id (for duplicate protection), and the push it reports.
//!
//! Verification happens on the raw body before anything is parsed. GitHub signs the body
//! with HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`), Gitea too (`X-Gitea-Signature:
//! <hex>`, and GitHub's header as well), GitLab sends the shared secret itself
//! (`X-Gitlab-Token`). Every comparison is constant-time. The payloads are the forges' own
//! formats; only the fields a build needs are read.

use berth_core::secret::constant_time_eq;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::branch::{branch_from_ref, is_commit_id};

/// The forge a webhook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    GitHub,
    GitLab,
    Gitea,
}

impl Provider {
    /// The stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "github",
            Provider::GitLab => "gitlab",
            Provider::Gitea => "gitea",
        }
    }

    /// The forge that sent a request, from its event header. Gitea also sends GitHub's
    /// headers, so it is recognised first.
    pub fn detect(headers: &Headers<'_>) -> Option<Provider> {
        if headers.get("x-gitea-event").is_some() {
            Some(Provider::Gitea)
        } else if headers.get("x-gitlab-event").is_some() {
            Some(Provider::GitLab)
        } else if headers.get("x-github-event").is_some() {
            Some(Provider::GitHub)
        } else {
            None
        }
    }

    /// The event name (`push`, `ping`, `Push Hook`, …).
    pub fn event<'a>(self, headers: &Headers<'a>) -> Option<&'a str> {
        headers.get(match self {
            Provider::GitHub => "x-github-event",
            Provider::GitLab => "x-gitlab-event",
            Provider::Gitea => "x-gitea-event",
        })
    }

    /// The id of this delivery, the same when the forge redelivers it: a second request with
    /// an id already seen is a duplicate.
    pub fn delivery_id<'a>(self, headers: &Headers<'a>) -> Option<&'a str> {
        match self {
            Provider::GitHub => headers.get("x-github-delivery"),
            Provider::Gitea => headers.get("x-gitea-delivery"),
            // GitLab 17.4+ keeps an idempotency key across retries; older ones only an
            // event UUID.
            Provider::GitLab => headers
                .get("idempotency-key")
                .or_else(|| headers.get("x-gitlab-event-uuid")),
        }
        .filter(|id| !id.is_empty())
    }
}

/// A request's headers, looked up case-insensitively (the HTTP layer lends them).
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a>(pub &'a [(&'a str, &'a str)]);

impl<'a> Headers<'a> {
    /// The first value of `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("not a GitHub, GitLab or Gitea webhook (no event header)")]
    UnknownProvider,
    #[error("the pipeline has no webhook secret, so no webhook can be verified")]
    NoSecret,
    #[error("the {0} header is missing")]
    MissingSignature(&'static str),
    #[error("the signature does not match")]
    BadSignature,
    #[error("the push payload is invalid: {0}")]
    BadPayload(String),
}

impl WebhookError {
    /// Whether the request failed verification (answer 401) rather than being malformed.
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            WebhookError::NoSecret | WebhookError::MissingSignature(_) | WebhookError::BadSignature
        )
    }
}

/// Checks that `body` was sent by someone who knows `secret`.
pub fn verify(
    provider: Provider,
    headers: &Headers<'_>,
    body: &[u8],
    secret: &str,
) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::NoSecret);
    }
    match provider {
        Provider::GitHub => {
            let header = "X-Hub-Signature-256";
            let value = headers
                .get(header)
                .ok_or(WebhookError::MissingSignature(header))?;
            let hex = value
                .strip_prefix("sha256=")
                .ok_or(WebhookError::BadSignature)?;
            verify_hmac(secret, body, hex)
        }
        Provider::Gitea => {
            let hex = headers
                .get("X-Gitea-Signature")
                .or_else(|| {
                    headers
                        .get("X-Hub-Signature-256")
                        .and_then(|v| v.strip_prefix("sha256="))
                })
                .ok_or(WebhookError::MissingSignature("X-Gitea-Signature"))?;
            verify_hmac(secret, body, hex)
        }
        Provider::GitLab => {
            let header = "X-Gitlab-Token";
            let token = headers
                .get(header)
                .ok_or(WebhookError::MissingSignature(header))?;
            if constant_time_eq(token.as_bytes(), secret.as_bytes()) {
                Ok(())
            } else {
                Err(WebhookError::BadSignature)
            }
        }
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`, as the forges send it.
pub fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

fn verify_hmac(secret: &str, body: &[u8], signature_hex: &str) -> Result<(), WebhookError> {
    let signature = hex::decode(signature_hex).map_err(|_| WebhookError::BadSignature)?;
    mac(secret, body)
        .verify_slice(&signature)
        .map_err(|_| WebhookError::BadSignature)
}

/// What a verified webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// Commits were pushed to a branch.
    Push(PushEvent),
    /// The forge checks that the hook works (GitHub's `ping`).
    Ping,
    /// Nothing to build: another event, a tag, or a deleted branch.
    Ignored(String),
}

/// A push to a branch: what a build needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    pub branch: String,
    /// The full id of the pushed head commit.
    pub commit: String,
    pub author: String,
    pub author_email: Option<String>,
    pub message: String,
    /// The repository as the forge names it (`team/app`), if sent.
    pub repository: Option<String>,
    /// The branch's head before the push, when the payload names one (absent for a new
    /// branch, whose `before` is all zeros): Berth never builds it again after this push.
    pub before: Option<String>,
}

/// Reads a verified webhook. Call [`verify`] first: this trusts the body.
pub fn parse(
    provider: Provider,
    headers: &Headers<'_>,
    body: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    let event = provider.event(headers).unwrap_or_default();
    let is_push = match provider {
        Provider::GitHub | Provider::Gitea => event == "push",
        Provider::GitLab => event == "Push Hook",
    };
    if provider == Provider::GitHub && event == "ping" {
        return Ok(WebhookEvent::Ping);
    }
    if !is_push {
        return Ok(WebhookEvent::Ignored(format!(
            "{} event {event:?} is not a push",
            provider.as_str()
        )));
    }
    let payload: PushPayload =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
    payload.into_event()
}

/// The fields of GitHub's, Gitea's and GitLab's push payloads a build needs (the three
/// share most names).
#[derive(Debug, Deserialize)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: Option<String>,
    after: Option<String>,
    /// GitLab: the commit checked out after the push (null when the branch was deleted).
    checkout_sha: Option<String>,
    #[serde(default)]
    deleted: bool,
    head_commit: Option<Commit>,
    #[serde(default)]
    commits: Vec<Commit>,
    repository: Option<Repository>,
    project: Option<Repository>,
    pusher: Option<Person>,
    user_name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Commit {
    id: String,
    #[serde(default)]
    message: String,
    author: Option<Person>,
}

#[derive(Debug, Deserialize)]
struct Person {
    name: Option<String>,
    login: Option<String>,
    username: Option<String>,
    email: Option<String>,
}

impl Person {
    fn display_name(&self) -> Option<&str> {
        [&self.name, &self.login, &self.username]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .find(|n| !n.is_empty())
    }
}

#[derive(Debug, Deserialize)]
struct Repository {
    full_name: Option<String>,
    path_with_namespace: Option<String>,
}

impl PushPayload {
    fn into_event(self) -> Result<WebhookEvent, WebhookError> {
        let Some(branch) = branch_from_ref(&self.git_ref) else {
            return Ok(WebhookEvent::Ignored(format!(
                "{} is not a branch",
                self.git_ref
            )));
        };
        let head = self
            .checkout_sha
            .clone()
            .or_else(|| self.after.clone())
            .unwrap_or_default();
        if self.deleted || head.is_empty() || head.bytes().all(|b| b == b'0') {
            return Ok(WebhookEvent::Ignored(format!(
                "branch {branch} was deleted"
            )));
        }
        if !is_commit_id(&head) {
            return Err(WebhookError::BadPayload(format!(
                "{head:?} is not a commit id"
            )));
        }
        let commit = self
            .head_commit
            .filter(|c| c.id == head)
            .or_else(|| self.commits.into_iter().rev().find(|c| c.id == head));
        let (message, author_person) = match commit {
            Some(c) => (c.message, c.author),
            None => (String::new(), None),
        };
        let author = author_person
            .as_ref()
            .and_then(Person::display_name)
            .map(str::to_owned)
            .or(self.user_name)
            .or_else(|| {
                self.pusher
                    .as_ref()
                    .and_then(Person::display_name)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let repository = self
            .repository
            .into_iter()
            .chain(self.project)
            .find_map(|r| r.full_name.or(r.path_with_namespace));
        Ok(WebhookEvent::Push(PushEvent {
            branch: branch.to_owned(),
            commit: head,
            author,
            author_email: author_person.and_then(|p| p.email),
            message,
            repository,
            before: self
                .before
                .filter(|b| is_commit_id(b) && !b.bytes().all(|c| c == b'0')),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "It's a Secret to Everybody";
    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    /// GitHub's documented example: this body, this secret, this signature.
    #[test]
    fn github_documented_signature() {
        let body = b"Hello, World!";
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(SECRET, body), expected);
        let header = format!("sha256={expected}");
        let h = [
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", header.as_str()),
        ];
        assert_eq!(verify(Provider::GitHub, &Headers(&h), body, SECRET), Ok(()));
    }

    #[test]
    fn verification() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = sign(SECRET, body);
        let github_good = format!("sha256={good}");
        let other = sign("another secret", body);
        let github_other = format!("sha256={other}");
        let github_upper = format!("sha256={}", good.to_uppercase());
        type Case<'a> = (
            &'a str,
            Provider,
            Vec<(&'a str, &'a str)>,
            &'a str,
            Result<(), WebhookError>,
        );
        let cases: Vec<Case> = vec![
            (
                "github ok",
                Provider::GitHub,
                vec![("x-hub-signature-256", &github_good)],
                SECRET,
                Ok(()),
            ),
            (
                "github uppercase hex",
                Provider::GitHub,
                vec![("X-Hub-Signature-256", &github_upper)],
                SECRET,
                Ok(()),
            ),
            (
                "github other secret",
                Provider::GitHub,
                vec![("X-Hub-Signature-256", &github_other)],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
            (
                "github no prefix",
                Provider::GitHub,
                vec![("X-Hub-Signature-256", &good)],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
            (
                "github sha1 only",
                Provider::GitHub,
                vec![("X-Hub-Signature", "sha1=abc")],
                SECRET,
                Err(WebhookError::MissingSignature("X-Hub-Signature-256")),
            ),
            (
                "github not hex",
                Provider::GitHub,
                vec![("X-Hub-Signature-256", "sha256=zz")],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
            (
                "github truncated",
                Provider::GitHub,
                vec![("X-Hub-Signature-256", &github_good[..40])],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
            (
                "no secret configured",
                Provider::GitHub,
                vec![("X-Hub-Signature-256", &github_good)],
                "",
                Err(WebhookError::NoSecret),
            ),
            (
                "gitea ok",
                Provider::Gitea,
                vec![("X-Gitea-Signature", &good)],
                SECRET,
                Ok(()),
            ),
            (
                "gitea via github header",
                Provider::Gitea,
                vec![("X-Hub-Signature-256", &github_good)],
                SECRET,
                Ok(()),
            ),
            (
                "gitea bad",
                Provider::Gitea,
                vec![("X-Gitea-Signature", &other)],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
            (
                "gitea missing",
                Provider::Gitea,
                vec![],
                SECRET,
                Err(WebhookError::MissingSignature("X-Gitea-Signature")),
            ),
            (
                "gitlab ok",
                Provider::GitLab,
                vec![("X-Gitlab-Token", SECRET)],
                SECRET,
                Ok(()),
            ),
            (
                "gitlab wrong",
                Provider::GitLab,
                vec![("X-Gitlab-Token", "It's a Secret to Everybod")],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
            (
                "gitlab missing",
                Provider::GitLab,
                vec![],
                SECRET,
                Err(WebhookError::MissingSignature("X-Gitlab-Token")),
            ),
            (
                "gitlab hmac is not a token",
                Provider::GitLab,
                vec![("X-Gitlab-Token", &good)],
                SECRET,
                Err(WebhookError::BadSignature),
            ),
        ];
        for (name, provider, headers, secret, want) in cases {
            let got = verify(provider, &Headers(&headers), body, secret);
            assert_eq!(got, want, "{name}");
            if let Err(e) = got {
                assert!(e.is_unauthorized(), "{name}");
            }
        }
        // A tampered body fails with the original signature.
        let h = [("X-Hub-Signature-256", github_good.as_str())];
        assert_eq!(
            verify(
                Provider::GitHub,
                &Headers(&h),
                br#"{"ref":"refs/heads/evil"}"#,
                SECRET
            ),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn detects_providers_and_deliveries() {
        let cases: Vec<(Vec<(&str, &str)>, Option<Provider>, Option<&str>)> = vec![
            (
                vec![("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "d-1")],
                Some(Provider::GitHub),
                Some("d-1"),
            ),
            (
                vec![
                    ("X-GitHub-Event", "push"),
                    ("X-Gitea-Event", "push"),
                    ("X-Gitea-Delivery", "g-1"),
                    ("X-GitHub-Delivery", "g-1"),
                ],
                Some(Provider::Gitea),
                Some("g-1"),
            ),
            (
                vec![
                    ("X-Gitlab-Event", "Push Hook"),
                    ("X-Gitlab-Event-UUID", "u-1"),
                ],
                Some(Provider::GitLab),
                Some("u-1"),
            ),
            (
                vec![
                    ("X-Gitlab-Event", "Push Hook"),
                    ("X-Gitlab-Event-UUID", "u-1"),
                    ("Idempotency-Key", "k-1"),
                ],
                Some(Provider::GitLab),
                Some("k-1"),
            ),
            (
                vec![("X-GitHub-Event", "push"), ("X-GitHub-Delivery", "")],
                Some(Provider::GitHub),
                None,
            ),
            (vec![("Content-Type", "application/json")], None, None),
        ];
        for (headers, provider, delivery) in cases {
            let h = Headers(&headers);
            assert_eq!(Provider::detect(&h), provider, "{headers:?}");
            if let Some(p) = provider {
                assert_eq!(p.delivery_id(&h), delivery, "{headers:?}");
            }
        }
    }

    fn github_push(git_ref: &str, after: &str) -> String {
        format!(
            r#"{{"ref":"{git_ref}","before":"{zero}","after":"{after}","deleted":false,
            "repository":{{"full_name":"acme/shop","clone_url":"https://github.com/acme/shop.git"}},
            "pusher":{{"name":"octo","email":"octo@example.com"}},
            "head_commit":{{"id":"{after}","message":"Fix the cart\n\nDetails.","author":{{"name":"Mona Lisa","email":"mona@example.com","username":"mona"}}}},
            "commits":[{{"id":"{after}","message":"Fix the cart\n\nDetails."}}]}}"#,
            zero = "0".repeat(40)
        )
    }

    fn push(
        branch: &str,
        author: &str,
        email: Option<&str>,
        message: &str,
        repo: &str,
    ) -> WebhookEvent {
        WebhookEvent::Push(PushEvent {
            branch: branch.into(),
            commit: SHA.into(),
            author: author.into(),
            author_email: email.map(Into::into),
            message: message.into(),
            repository: Some(repo.into()),
            before: None,
        })
    }

    #[test]
    fn parses_push_payloads() {
        let gitea = format!(
            r#"{{"ref":"refs/heads/release/1.2","before":"{zero}","after":"{SHA}",
            "commits":[{{"id":"1111111111111111111111111111111111111111","message":"older"}},
                       {{"id":"{SHA}","message":"Bump version\n","author":{{"name":"Gitea User","email":"g@example.com","username":"gu"}}}}],
            "head_commit":null,
            "repository":{{"full_name":"team/app"}},"pusher":{{"login":"gu","full_name":"Gitea User"}}}}"#,
            zero = "0".repeat(40)
        );
        let gitlab = format!(
            r#"{{"object_kind":"push","ref":"refs/heads/main","before":"{zero}","after":"{SHA}","checkout_sha":"{SHA}",
            "user_name":"John Smith","user_username":"jsmith",
            "project":{{"path_with_namespace":"group/proj"}},
            "commits":[{{"id":"{SHA}","message":"Update Catalan translation\n","title":"Update Catalan translation","author":{{"name":"Jordi Mallach","email":"jordi@example.com"}}}}]}}"#,
            zero = "0".repeat(40)
        );
        let gitlab_deleted = format!(
            r#"{{"object_kind":"push","ref":"refs/heads/old","before":"{SHA}","after":"{zero}","checkout_sha":null,"user_name":"J","commits":[]}}"#,
            zero = "0".repeat(40)
        );
        let github_deleted = format!(
            r#"{{"ref":"refs/heads/old","before":"{SHA}","after":"{zero}","deleted":true,"head_commit":null,"commits":[]}}"#,
            zero = "0".repeat(40)
        );
        let cases: Vec<(
            &str,
            Provider,
            &str,
            String,
            Result<WebhookEvent, WebhookError>,
        )> = vec![
            (
                "github push",
                Provider::GitHub,
                "push",
                github_push("refs/heads/main", SHA),
                Ok(push(
                    "main",
                    "Mona Lisa",
                    Some("mona@example.com"),
                    "Fix the cart\n\nDetails.",
                    "acme/shop",
                )),
            ),
            (
                "gitea push to a nested branch, head from commits",
                Provider::Gitea,
                "push",
                gitea,
                Ok(push(
                    "release/1.2",
                    "Gitea User",
                    Some("g@example.com"),
                    "Bump version\n",
                    "team/app",
                )),
            ),
            (
                "gitlab push",
                Provider::GitLab,
                "Push Hook",
                gitlab,
                Ok(push(
                    "main",
                    "Jordi Mallach",
                    Some("jordi@example.com"),
                    "Update Catalan translation\n",
                    "group/proj",
                )),
            ),
            (
                "gitlab branch deleted",
                Provider::GitLab,
                "Push Hook",
                gitlab_deleted,
                Ok(WebhookEvent::Ignored("branch old was deleted".into())),
            ),
            (
                "github branch deleted",
                Provider::GitHub,
                "push",
                github_deleted,
                Ok(WebhookEvent::Ignored("branch old was deleted".into())),
            ),
            (
                "github tag push",
                Provider::GitHub,
                "push",
                github_push("refs/tags/v1.0", SHA),
                Ok(WebhookEvent::Ignored(
                    "refs/tags/v1.0 is not a branch".into(),
                )),
            ),
            (
                "github ping",
                Provider::GitHub,
                "ping",
                r#"{"zen":"Keep it logically awesome."}"#.into(),
                Ok(WebhookEvent::Ping),
            ),
            (
                "github issue event",
                Provider::GitHub,
                "issues",
                "{}".into(),
                Ok(WebhookEvent::Ignored(
                    "github event \"issues\" is not a push".into(),
                )),
            ),
            (
                "gitlab tag push hook",
                Provider::GitLab,
                "Tag Push Hook",
                "{}".into(),
                Ok(WebhookEvent::Ignored(
                    "gitlab event \"Tag Push Hook\" is not a push".into(),
                )),
            ),
            (
                "not json",
                Provider::GitHub,
                "push",
                "not json".into(),
                Err(WebhookError::BadPayload(
                    "expected ident at line 1 column 2".into(),
                )),
            ),
            (
                "a head that is not a commit id",
                Provider::GitHub,
                "push",
                github_push("refs/heads/main", "--upload-pack=touch%20x"),
                Err(WebhookError::BadPayload(
                    "\"--upload-pack=touch%20x\" is not a commit id".into(),
                )),
            ),
        ];
        for (name, provider, event, body, want) in cases {
            let header = match provider {
                Provider::GitHub => "X-GitHub-Event",
                Provider::GitLab => "X-Gitlab-Event",
                Provider::Gitea => "X-Gitea-Event",
            };
            let h = [(header, event)];
            assert_eq!(
                parse(provider, &Headers(&h), body.as_bytes()),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn push_names_the_previous_head() {
        let old = "1111111111111111111111111111111111111111";
        let body = format!(r#"{{"ref":"refs/heads/main","before":"{old}","after":"{SHA}"}}"#);
        let h = [("X-GitHub-Event", "push")];
        let Ok(WebhookEvent::Push(push)) = parse(Provider::GitHub, &Headers(&h), body.as_bytes())
        else {
            panic!("a push");
        };
        assert_eq!(push.before.as_deref(), Some(old));
        let body = format!(r#"{{"ref":"refs/heads/main","before":"nonsense","after":"{SHA}"}}"#);
        let Ok(WebhookEvent::Push(push)) = parse(Provider::GitHub, &Headers(&h), body.as_bytes())
        else {
            panic!("a push");
        };
        assert_eq!(push.before, None, "only a commit id counts");
    }

    #[test]
    fn push_without_commit_details_still_builds() {
        let body = format!(
            r#"{{"ref":"refs/heads/main","after":"{SHA}","pusher":{{"name":"octo"}},"commits":[]}}"#
        );
        let h = [("X-GitHub-Event", "push")];
        let event = parse(Provider::GitHub, &Headers(&h), body.as_bytes()).unwrap();
        assert_eq!(
            event,
            WebhookEvent::Push(PushEvent {
                branch: "main".into(),
                commit: SHA.into(),
                author: "octo".into(),
                author_email: None,
                message: String::new(),
                repository: None,
                before: None,
            })
        );
    }
}
