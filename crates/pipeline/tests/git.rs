//! Fetching real repositories made by the tests with the `git` binary: exact commits,
//! branch heads, and every failure named by its cause. Remote servers are only ever local:
//! paths, `file://`, and loopback ports that refuse or never answer.

mod support;

use std::path::Path;
use std::time::Duration;

use berth_pipeline::git::{self, Checkout, GitAuth, GitError, GitRemote, Revision};
use support::Repo;
use tokio_util::sync::CancellationToken;

fn remote(url: String) -> GitRemote {
    GitRemote {
        url,
        auth: GitAuth::None,
    }
}

fn revision(branch: Option<&str>, commit: Option<&str>) -> Revision {
    Revision {
        branch: branch.map(Into::into),
        commit: commit.map(Into::into),
    }
}

async fn fetch(remote: &GitRemote, revision: &Revision, work: &Path) -> Result<Checkout, GitError> {
    git::fetch(remote, revision, work, &|_| {}, &CancellationToken::new()).await
}

/// A repository with two commits on `main` and one on `feature/x`; returns their ids.
fn two_commits() -> (Repo, String, String, String) {
    let repo = Repo::new();
    let first = repo.commit(
        &[("app.txt", Some("one")), ("dir/nested.txt", Some("nested"))],
        "First commit",
    );
    let second = repo.commit(
        &[("app.txt", Some("two")), ("extra.txt", Some("extra"))],
        "Second commit\n\nWith a body.",
    );
    repo.checkout_new_branch("feature/x");
    let feature = repo.commit(&[("app.txt", Some("feature"))], "Feature work");
    repo.git(&["checkout", "--quiet", "main"]);
    (repo, first, second, feature)
}

#[tokio::test]
async fn fetches_a_branch_head_without_git_metadata() {
    let (repo, _, second, _) = two_commits();
    let work = tempfile::tempdir().unwrap();
    let checkout = fetch(
        &remote(repo.url()),
        &revision(Some("main"), None),
        work.path(),
    )
    .await
    .unwrap();
    assert_eq!(checkout.commit.sha, second);
    assert_eq!(checkout.commit.author, "Ada Lovelace");
    assert_eq!(checkout.commit.author_email, "ada@example.com");
    assert_eq!(checkout.commit.message, "Second commit\n\nWith a body.");
    let src = checkout.path();
    assert_eq!(std::fs::read_to_string(src.join("app.txt")).unwrap(), "two");
    assert_eq!(
        std::fs::read_to_string(src.join("dir/nested.txt")).unwrap(),
        "nested"
    );
    assert!(!src.join(".git").exists(), "the checkout holds .git");
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app.txt", "dir", "extra.txt"]);

    // Dropping the checkout removes everything it made.
    drop(checkout);
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn fetches_exact_commits_over_file_urls() {
    let (repo, first, _, feature) = two_commits();
    let work = tempfile::tempdir().unwrap();
    // (branch, commit, app.txt, whether extra.txt exists)
    let cases = [
        (Some("main"), first.as_str(), "one", false),
        (None, first.as_str(), "one", false),
        (Some("feature/x"), feature.as_str(), "feature", true),
    ];
    for (branch, commit, content, extra) in cases {
        let checkout = fetch(
            &remote(repo.file_url()),
            &revision(branch, Some(commit)),
            work.path(),
        )
        .await
        .unwrap_or_else(|e| panic!("{branch:?} {commit}: {e}"));
        assert_eq!(checkout.commit.sha, commit);
        assert_eq!(
            std::fs::read_to_string(checkout.path().join("app.txt")).unwrap(),
            content
        );
        assert_eq!(checkout.path().join("extra.txt").exists(), extra);
    }
    let checkout = fetch(
        &remote(repo.file_url()),
        &revision(Some("feature/x"), None),
        work.path(),
    )
    .await
    .unwrap();
    assert_eq!(checkout.commit.sha, feature);
}

#[tokio::test]
async fn names_the_cause_of_a_failed_fetch() {
    let (repo, _, _, _) = two_commits();
    let work = tempfile::tempdir().unwrap();
    let missing_commit = "0123456789abcdef0123456789abcdef01234567";
    let nowhere = work.path().join("no-such-repo").display().to_string();
    let cases: Vec<(&str, GitRemote, Revision, fn(&GitError) -> bool)> = vec![
        (
            "unknown branch",
            remote(repo.url()),
            revision(Some("nope"), None),
            |e| matches!(e, GitError::UnknownBranch { branch, .. } if branch == "nope"),
        ),
        (
            "unknown commit",
            remote(repo.url()),
            revision(Some("main"), Some(missing_commit)),
            |e| matches!(e, GitError::UnknownCommit { .. }),
        ),
        (
            "unknown commit, no branch",
            remote(repo.file_url()),
            revision(None, Some(missing_commit)),
            |e| matches!(e, GitError::UnknownCommit { .. }),
        ),
        (
            "commit on an unknown branch",
            remote(repo.url()),
            revision(Some("nope"), Some(missing_commit)),
            |e| matches!(e, GitError::UnknownBranch { .. }),
        ),
        (
            "missing repository",
            remote(nowhere.clone()),
            revision(Some("main"), None),
            |e| matches!(e, GitError::NotFound { .. }),
        ),
        (
            "missing repository over file://",
            remote(format!("file://{nowhere}")),
            revision(Some("main"), None),
            |e| matches!(e, GitError::NotFound { .. }),
        ),
        (
            "https port that refuses",
            remote("https://127.0.0.1:1/team/app.git".into()),
            revision(Some("main"), None),
            |e| matches!(e, GitError::Unreachable { .. }),
        ),
        (
            "transport helper",
            remote("ext::sh -c touch%20/tmp/pwned".into()),
            revision(Some("main"), None),
            |e| matches!(e, GitError::InvalidRemote { .. }),
        ),
        (
            "option as branch",
            remote(repo.url()),
            revision(Some("--upload-pack=touch"), None),
            |e| matches!(e, GitError::InvalidRevision(_)),
        ),
        (
            "short commit id",
            remote(repo.url()),
            revision(None, Some("abc123")),
            |e| matches!(e, GitError::InvalidRevision(_)),
        ),
        (
            "nothing to fetch",
            remote(repo.url()),
            revision(None, None),
            |e| matches!(e, GitError::InvalidRevision(_)),
        ),
    ];
    for (name, remote, revision, expected) in cases {
        let err = fetch(&remote, &revision, work.path())
            .await
            .expect_err(name);
        assert!(expected(&err), "{name}: {err:?}");
        assert!(!err.to_string().is_empty());
    }
    // Failed fetches leave nothing behind.
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn an_ssh_deploy_key_is_used_and_a_refused_port_is_unreachable() {
    if std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("the ssh client is missing: install openssh-client");
    }
    let work = tempfile::tempdir().unwrap();
    let remote = GitRemote {
        url: "ssh://git@127.0.0.1:1/team/app.git".into(),
        auth: GitAuth::SshKey {
            private_key: "not really a key".into(),
            known_hosts: None,
        },
    };
    let lines = std::sync::Mutex::new(Vec::new());
    let err = git::fetch(
        &remote,
        &revision(Some("main"), None),
        work.path(),
        &|l| lines.lock().unwrap().push(l.to_owned()),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, GitError::Unreachable { detail, .. } if detail.contains("Connection refused")),
        "{err:?}; log {:?}",
        lines.lock().unwrap()
    );
}

#[tokio::test]
async fn cancel_stops_a_fetch_that_hangs() {
    // Accepts connections and never says a word: git waits in the TLS handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let work = tempfile::tempdir().unwrap();
    let remote = GitRemote {
        url: format!("https://127.0.0.1:{port}/team/app.git"),
        auth: GitAuth::Basic {
            username: "deploy".into(),
            password: "secret".into(),
        },
    };
    let cancel = CancellationToken::new();
    let main = revision(Some("main"), None);
    let fetching = git::fetch(&remote, &main, work.path(), &|_| {}, &cancel);
    let trigger = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(60), fetching),
        trigger
    );
    let err = result
        .expect("the cancelled fetch did not end")
        .unwrap_err();
    assert_eq!(err, GitError::Cancelled);
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    silent.abort();
}
