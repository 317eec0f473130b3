//! Fetching one exact commit of a remote repository into a fresh directory with the `git`
//! binary, with credentials that never touch disk longer than the fetch (nor a command line),
//! and errors that name the cause.
//!
//! The checkout has no `.git` inside (the repository lives beside it), so the build context
//! holds only the commit's files and is the same for the same commit, which keeps the
//! engine's build cache warm. Git runs isolated from the host's and user's configuration, in
//! the C locale (its messages are how causes are told apart), never prompts, and may only use
//! the `file`, `http`, `https` and `ssh` transports.
//!
//! Credentials: https user/password through a credential helper that reads them from the
//! child's environment; a bearer token as an `http.extraHeader` set through `GIT_CONFIG_*`
//! variables; an ssh deploy key as a 0600 file in a private temporary directory, used through
//! `GIT_SSH_COMMAND`, with the given `known_hosts` (or trust on first use without one).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::branch::{is_commit_id, is_valid_branch};

/// Transports git may use.
const ALLOWED_PROTOCOLS: &str = "file:http:https:ssh";
/// Seconds an https transfer may stay below 1 KB/s before git gives up.
const LOW_SPEED_SECONDS: &str = "60";

/// A remote repository and how to authenticate to it.
#[derive(Clone, PartialEq, Eq)]
pub struct GitRemote {
    /// `https://…`, `http://…`, `ssh://…`, `user@host:path`, `file://…` or an absolute path.
    pub url: String,
    pub auth: GitAuth,
}

/// Credentials for a remote.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum GitAuth {
    #[default]
    None,
    /// https user name and password (or access token as password).
    Basic { username: String, password: String },
    /// https `Authorization: Bearer <token>`.
    Bearer(String),
    /// ssh deploy key (OpenSSH private key text); `known_hosts` lines pin the host key.
    SshKey {
        private_key: String,
        known_hosts: Option<String>,
    },
}

// Secrets never show in logs or errors.
impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            GitAuth::Bearer(_) => f.write_str("Bearer(***)"),
            GitAuth::SshKey { known_hosts, .. } => {
                write!(f, "SshKey(***, known_hosts: {})", known_hosts.is_some())
            }
        }
    }
}

impl fmt::Debug for GitRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitRemote")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .finish()
    }
}

/// What to fetch: a commit, a branch's head, or a commit expected on a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub branch: Option<String>,
    /// A full commit id; when absent, the branch's current head is fetched.
    pub commit: Option<String>,
}

/// The fetched commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub author: String,
    pub author_email: String,
    pub message: String,
}

/// A fetched commit checked out in a directory, removed when dropped.
#[derive(Debug)]
pub struct Checkout {
    pub commit: CommitInfo,
    dir: tempfile::TempDir,
}

impl Checkout {
    /// The commit's files (no `.git` inside).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("src")
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("invalid repository address {url:?}: {reason}")]
    InvalidRemote { url: String, reason: String },
    #[error("invalid revision: {0}")]
    InvalidRevision(String),
    #[error("cannot reach the repository {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("no repository at {url}: {detail}")]
    NotFound { url: String, detail: String },
    #[error("the repository {url} refused the credentials: {detail}")]
    BadCredentials { url: String, detail: String },
    #[error("the ssh host key of {url} is unknown or changed: {detail}")]
    HostKeyRejected { url: String, detail: String },
    #[error("branch {branch:?} does not exist in {url}")]
    UnknownBranch { url: String, branch: String },
    #[error("commit {commit} does not exist in {url}")]
    UnknownCommit { url: String, commit: String },
    #[error("the fetch was cancelled")]
    Cancelled,
    #[error("git {command} failed: {detail}")]
    Failed { command: String, detail: String },
}

/// Checks a remote address before git sees it: a known transport, no transport helpers
/// (`ext::`), no option-like address, no credentials inside it.
pub fn validate_remote_url(url: &str) -> Result<(), GitError> {
    let invalid = |reason: &str| GitError::InvalidRemote {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if url.is_empty() {
        return Err(invalid("it is empty"));
    }
    if url.starts_with('-') {
        return Err(invalid("it starts with '-'"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("it contains spaces or control characters"));
    }
    if url.contains("::") {
        return Err(invalid("transport helpers (`<helper>::`) are not allowed"));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "file") {
            return Err(invalid("use https://, http://, ssh://, file:// or a path"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if matches!(scheme, "https" | "http") && authority.contains('@') {
            return Err(invalid(
                "credentials belong in the pipeline's credentials, not in the address",
            ));
        }
        if scheme != "file" && authority.is_empty() {
            return Err(invalid("it has no host"));
        }
        return Ok(());
    }
    if url.starts_with('/') {
        return Ok(());
    }
    // scp-like `user@host:path`: a ':' before any '/'.
    match (url.find(':'), url.find('/')) {
        (Some(colon), slash) if colon > 0 && slash.is_none_or(|s| colon < s) => Ok(()),
        _ => Err(invalid(
            "use https://, http://, ssh://, file://, user@host:path or an absolute path",
        )),
    }
}

/// Refuses credentials with control characters: a line break would add lines to the
/// credential helper's answer or to an HTTP header.
fn validate_credentials(auth: &GitAuth) -> Result<(), &'static str> {
    let fields: Vec<&str> = match auth {
        GitAuth::None | GitAuth::SshKey { .. } => Vec::new(),
        GitAuth::Basic { username, password } => vec![username, password],
        GitAuth::Bearer(token) => vec![token],
    };
    if fields.iter().any(|f| f.chars().any(char::is_control)) {
        return Err("credentials must not contain line breaks or control characters");
    }
    Ok(())
}

/// Fetches `revision` of `remote` into a fresh directory under `work_root` and checks it out.
/// Progress lines go to `log`; `cancel` stops git at once.
pub async fn fetch(
    remote: &GitRemote,
    revision: &Revision,
    work_root: &Path,
    log: &(dyn Fn(&str) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<Checkout, GitError> {
    validate_remote_url(&remote.url)?;
    validate_credentials(&remote.auth).map_err(|reason| GitError::InvalidRemote {
        url: remote.url.clone(),
        reason: reason.to_owned(),
    })?;
    if let Some(branch) = &revision.branch
        && !is_valid_branch(branch)
    {
        return Err(GitError::InvalidRevision(format!(
            "{branch:?} is not a valid branch name"
        )));
    }
    if let Some(commit) = &revision.commit
        && !is_commit_id(commit)
    {
        return Err(GitError::InvalidRevision(format!(
            "{commit:?} is not a full commit id"
        )));
    }
    if revision.branch.is_none() && revision.commit.is_none() {
        return Err(GitError::InvalidRevision(
            "neither a branch nor a commit".into(),
        ));
    }
    std::fs::create_dir_all(work_root).map_err(|e| io_failure("create the work directory", e))?;
    let dir = tempfile::Builder::new()
        .prefix("fetch-")
        .tempdir_in(work_root)
        .map_err(|e| io_failure("create the work directory", e))?;
    let git = Git::prepare(remote, dir.path())?;
    git.run(&["init", "--quiet", "--bare"], log, cancel).await?;

    let sha = match (&revision.commit, &revision.branch) {
        (Some(commit), branch) => {
            git.fetch_commit(commit, branch.as_deref(), log, cancel)
                .await?;
            commit.clone()
        }
        (None, Some(branch)) => git.fetch_branch_head(branch, log, cancel).await?,
        (None, None) => unreachable!("checked above"),
    };
    log(&format!("checking out {sha}"));
    std::fs::create_dir(dir.path().join("src")).map_err(|e| io_failure("create src", e))?;
    git.run(
        &[
            "--work-tree=src",
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            &sha,
            "--",
        ],
        log,
        cancel,
    )
    .await?;
    let commit = git.commit_info(&sha, cancel).await?;
    drop(git);
    Ok(Checkout { commit, dir })
}

fn io_failure(what: &str, e: std::io::Error) -> GitError {
    GitError::Failed {
        command: what.to_owned(),
        detail: e.to_string(),
    }
}

/// The environment and files git needs for one remote; the key directory goes when dropped.
struct Git {
    url: String,
    /// The bare repository.
    repo: PathBuf,
    env: Vec<(String, String)>,
    _secrets: Option<tempfile::TempDir>,
}

impl Git {
    fn prepare(remote: &GitRemote, dir: &Path) -> Result<Self, GitError> {
        let repo = dir.join("repo.git");
        let secrets = match &remote.auth {
            GitAuth::SshKey { .. } => Some(
                tempfile::Builder::new()
                    .prefix("berth-git-key-")
                    .tempdir()
                    .map_err(|e| io_failure("create the key directory", e))?,
            ),
            _ => None,
        };
        let env = git_environment(&remote.auth, secrets.as_ref().map(|d| d.path()), dir)
            .map_err(|e| io_failure("write the ssh key", e))?;
        Ok(Self {
            url: remote.url.clone(),
            repo,
            env,
            _secrets: secrets,
        })
    }

    /// `git fetch` of one commit; when the server refuses to serve it by id (older servers
    /// only serve advertised refs), the branch (or every branch) is fetched and searched.
    async fn fetch_commit(
        &self,
        commit: &str,
        branch: Option<&str>,
        log: &(dyn Fn(&str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        log(&format!("fetching commit {commit} from {}", self.url));
        let direct = self
            .run(&fetch_args(&self.url, commit, true), log, cancel)
            .await;
        match direct {
            Ok(_) => return Ok(()),
            Err(GitError::Failed { detail, .. }) if is_unknown_object(&detail) => {}
            Err(e) => return Err(e),
        }
        let refspec = match branch {
            Some(b) => format!("+refs/heads/{b}:refs/remotes/origin/{b}"),
            None => "+refs/heads/*:refs/remotes/origin/*".to_owned(),
        };
        log("the server does not serve commits by id: fetching the branch history");
        self.run(&fetch_args(&self.url, &refspec, false), log, cancel)
            .await
            .map_err(|e| self.unknown_branch(e, branch))?;
        let object = format!("{commit}^{{commit}}");
        match self
            .run(&["cat-file", "-e", &object], &|_| {}, cancel)
            .await
        {
            Ok(_) => Ok(()),
            Err(GitError::Cancelled) => Err(GitError::Cancelled),
            Err(_) => Err(GitError::UnknownCommit {
                url: self.url.clone(),
                commit: commit.to_owned(),
            }),
        }
    }

    /// `git fetch` of a branch's head; returns its commit id.
    async fn fetch_branch_head(
        &self,
        branch: &str,
        log: &(dyn Fn(&str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        log(&format!("fetching branch {branch} from {}", self.url));
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.run(&fetch_args(&self.url, &refspec, true), log, cancel)
            .await
            .map_err(|e| self.unknown_branch(e, Some(branch)))?;
        let rev = format!("refs/remotes/origin/{branch}^{{commit}}");
        let out = self
            .run(&["rev-parse", "--verify", "--quiet", &rev], log, cancel)
            .await?;
        Ok(out.trim().to_owned())
    }

    fn unknown_branch(&self, e: GitError, branch: Option<&str>) -> GitError {
        match (e, branch) {
            (GitError::Failed { detail, .. }, Some(branch))
                if detail.contains("couldn't find remote ref") =>
            {
                GitError::UnknownBranch {
                    url: self.url.clone(),
                    branch: branch.to_owned(),
                }
            }
            (e, _) => e,
        }
    }

    async fn commit_info(
        &self,
        sha: &str,
        cancel: &CancellationToken,
    ) -> Result<CommitInfo, GitError> {
        let out = self
            .run(
                &["log", "-1", "--format=%H%x00%an%x00%ae%x00%B", sha, "--"],
                &|_| {},
                cancel,
            )
            .await?;
        let mut parts = out.splitn(4, '\0');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        Ok(CommitInfo {
            sha: next(),
            author: next(),
            author_email: next(),
            message: next().trim_end().to_owned(),
        })
    }

    /// Runs `git --git-dir <repo> ARGS`; stderr lines go to `log`, stdout is returned.
    async fn run(
        &self,
        args: &[&str],
        log: &(dyn Fn(&str) + Send + Sync),
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let mut command = Command::new("git");
        command
            .arg("--git-dir")
            .arg(&self.repo)
            .args(args)
            .current_dir(self.repo.parent().unwrap_or(Path::new("/")))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let verb = args
            .iter()
            .find(|a| !a.starts_with('-') && !a.contains('='))
            .copied()
            .unwrap_or("git")
            .to_owned();
        let mut child = command.spawn().map_err(|e| GitError::Failed {
            command: verb.clone(),
            detail: format!("cannot run git: {e}"),
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let work = async {
            let read_out = async {
                let mut out = String::new();
                if let Some(mut stdout) = stdout {
                    use tokio::io::AsyncReadExt;
                    let _ = stdout.read_to_string(&mut out).await;
                }
                out
            };
            let read_err = async {
                let mut lines = Vec::new();
                if let Some(stderr) = stderr {
                    let mut reader = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = reader.next_line().await {
                        let line = line.trim_end().to_owned();
                        if !line.is_empty() {
                            log(&line);
                            lines.push(line);
                        }
                    }
                }
                lines
            };
            let (out, err) = tokio::join!(read_out, read_err);
            let status = child.wait().await;
            (out, err, status)
        };
        let (out, err_lines, status) = tokio::select! {
            r = work => r,
            () = cancel.cancelled() => return Err(GitError::Cancelled),
        };
        let status = status.map_err(|e| GitError::Failed {
            command: verb.clone(),
            detail: e.to_string(),
        })?;
        if status.success() {
            return Ok(out);
        }
        let detail = error_detail(&err_lines, status.code());
        Err(classify(&self.url, &verb, detail))
    }
}

/// The arguments of a fetch of `what` (a commit id or a refspec) from `url`.
fn fetch_args<'a>(url: &'a str, what: &'a str, shallow: bool) -> Vec<&'a str> {
    let mut args = vec!["fetch", "--no-tags", "--no-write-fetch-head", "--quiet"];
    if shallow {
        args.push("--depth=1");
    }
    // `--` ends the options: neither the address nor the refspec can pass as one.
    args.extend(["--", url, what]);
    args
}

/// The `fatal:`/`error:` lines of git's stderr (else its last line), prefixes removed.
fn error_detail(lines: &[String], code: Option<i32>) -> String {
    let strip = |l: &str| {
        l.trim_start_matches("fatal: ")
            .trim_start_matches("error: ")
            .trim_start_matches("remote: ")
            .to_owned()
    };
    let important: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("fatal:") || l.starts_with("error:") || l.starts_with("ssh:"))
        .map(|l| strip(l))
        .collect();
    match (important.is_empty(), lines.last()) {
        (false, _) => important.join("; "),
        (true, Some(last)) => strip(last),
        (true, None) => format!("exit code {}", code.unwrap_or(-1)),
    }
}

fn is_unknown_object(detail: &str) -> bool {
    ["not our ref", "no such remote ref", "unadvertised object"]
        .iter()
        .any(|m| detail.contains(m))
}

/// Tells apart why git failed from its (C locale) messages.
fn classify(url: &str, command: &str, detail: String) -> GitError {
    let lower = detail.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    let url = url.to_owned();
    if has(&[
        "host key verification failed",
        "remote host identification has changed",
    ]) {
        GitError::HostKeyRejected { url, detail }
    } else if has(&[
        "authentication failed",
        "permission denied",
        "could not read username",
        "could not read password",
        "terminal prompts disabled",
        "access denied",
        "returned error: 401",
        "returned error: 403",
        "invalid credentials",
    ]) {
        GitError::BadCredentials { url, detail }
    } else if has(&[
        "could not resolve host",
        "couldn't connect",
        "failed to connect",
        "connection refused",
        "connection timed out",
        "operation timed out",
        "network is unreachable",
        "no route to host",
        "could not resolve hostname",
        "connection reset",
        "ssl certificate problem",
        "unable to access",
    ]) {
        GitError::Unreachable { url, detail }
    } else if has(&[
        "does not appear to be a git repository",
        "repository not found",
        "not found",
        "returned error: 404",
    ]) {
        GitError::NotFound { url, detail }
    } else {
        GitError::Failed {
            command: command.to_owned(),
            detail,
        }
    }
}

/// The environment git runs with for `auth`: isolated configuration, C locale, no prompts,
/// allowed transports, and the credentials. An ssh key is written into `secrets` (0600).
fn git_environment(
    auth: &GitAuth,
    secrets: Option<&Path>,
    home: &Path,
) -> std::io::Result<Vec<(String, String)>> {
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("HOME".into(), home.display().to_string()),
        ("LC_ALL".into(), "C".into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("GIT_ASKPASS".into(), "/bin/false".into()),
        ("SSH_ASKPASS".into(), "/bin/false".into()),
        ("GIT_ALLOW_PROTOCOL".into(), ALLOWED_PROTOCOLS.into()),
        ("GIT_HTTP_LOW_SPEED_LIMIT".into(), "1000".into()),
        ("GIT_HTTP_LOW_SPEED_TIME".into(), LOW_SPEED_SECONDS.into()),
    ];
    let mut config: Vec<(&str, String)> = Vec::new();
    match auth {
        GitAuth::None => {}
        GitAuth::Basic { username, password } => {
            // An empty value first resets any helper list; the helper answers only `get`.
            config.push(("credential.helper", String::new()));
            config.push((
                "credential.helper",
                "!f() { test \"$1\" = get || exit 0; \
                 printf 'username=%s\\npassword=%s\\n' \"$BERTH_GIT_USERNAME\" \"$BERTH_GIT_PASSWORD\"; }; f"
                    .into(),
            ));
            env.push(("BERTH_GIT_USERNAME".into(), username.clone()));
            env.push(("BERTH_GIT_PASSWORD".into(), password.clone()));
        }
        GitAuth::Bearer(token) => {
            config.push(("http.extraHeader", format!("Authorization: Bearer {token}")));
        }
        GitAuth::SshKey {
            private_key,
            known_hosts,
        } => {
            let dir = secrets.ok_or_else(|| std::io::Error::other("no directory for the key"))?;
            let key = dir.join("id");
            write_private(&key, &normalise_key(private_key))?;
            let hosts = dir.join("known_hosts");
            write_private(&hosts, known_hosts.as_deref().unwrap_or_default())?;
            let checking = if known_hosts.is_some() {
                "yes"
            } else {
                "accept-new"
            };
            env.push((
                "GIT_SSH_COMMAND".into(),
                format!(
                    "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none \
                     -o BatchMode=yes -o ConnectTimeout=30 -o UserKnownHostsFile={} \
                     -o StrictHostKeyChecking={checking}",
                    shell_quote(&key.display().to_string()),
                    shell_quote(&hosts.display().to_string()),
                ),
            ));
        }
    }
    env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
    for (i, (key, value)) in config.into_iter().enumerate() {
        env.push((format!("GIT_CONFIG_KEY_{i}"), key.to_owned()));
        env.push((format!("GIT_CONFIG_VALUE_{i}"), value));
    }
    Ok(env)
}

/// OpenSSH refuses a key without its final newline (easily lost in a form field).
fn normalise_key(key: &str) -> String {
    let key = key.trim().replace("\r\n", "\n");
    format!("{key}\n")
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content.as_bytes())
}

/// Quotes a word for `sh` (GIT_SSH_COMMAND is run by a shell).
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_map(env: &[(String, String)]) -> std::collections::BTreeMap<&str, &str> {
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn validates_remote_addresses() {
        let ok = [
            "https://git.example.com/team/app.git",
            "http://127.0.0.1:3000/app.git",
            "ssh://git@git.example.com:2222/team/app.git",
            "git@github.com:team/app.git",
            "file:///srv/git/app.git",
            "/srv/git/app.git",
        ];
        for url in ok {
            assert_eq!(validate_remote_url(url), Ok(()), "{url}");
        }
        let bad = [
            ("", "empty"),
            ("-uhack", "'-'"),
            ("--upload-pack=touch /tmp/x", "'-'"),
            ("ext::sh -c touch% /tmp/x", "spaces"),
            ("ext::sh", "transport helpers"),
            ("fd::3", "transport helpers"),
            ("https://user:pw@example.com/a.git", "credentials"),
            ("https:///a.git", "no host"),
            ("ftp://example.com/a.git", "use https"),
            ("git://example.com/a.git", "use https"),
            ("relative/path", "use https"),
            ("a b", "spaces"),
        ];
        for (url, why) in bad {
            match validate_remote_url(url) {
                Err(GitError::InvalidRemote { reason, .. }) => {
                    assert!(reason.contains(why), "{url}: {reason}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_credentials_with_line_breaks() {
        let basic = |username: &str, password: &str| GitAuth::Basic {
            username: username.into(),
            password: password.into(),
        };
        let cases = [
            (GitAuth::None, true),
            (basic("deploy", "pa ss;'\"$x"), true),
            (basic("deploy", "pw\nusername=evil"), false),
            (basic("de\rploy", "pw"), false),
            (GitAuth::Bearer("tok".into()), true),
            (GitAuth::Bearer("tok\r\nX-Evil: 1".into()), false),
        ];
        for (auth, ok) in cases {
            assert_eq!(validate_credentials(&auth).is_ok(), ok, "{auth:?}");
        }
    }

    #[test]
    fn builds_fetch_commands() {
        assert_eq!(
            fetch_args("/srv/a.git", "abc", true),
            [
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--quiet",
                "--depth=1",
                "--",
                "/srv/a.git",
                "abc"
            ]
        );
        assert!(!fetch_args("u", "r", false).contains(&"--depth=1"));
    }

    #[test]
    fn environment_is_isolated_and_prompt_free() {
        let home = Path::new("/work/fetch-1");
        let env = git_environment(&GitAuth::None, None, home).unwrap();
        let env = env_map(&env);
        assert_eq!(env["GIT_TERMINAL_PROMPT"], "0");
        assert_eq!(env["GIT_CONFIG_NOSYSTEM"], "1");
        assert_eq!(env["GIT_CONFIG_GLOBAL"], "/dev/null");
        assert_eq!(env["LC_ALL"], "C");
        assert_eq!(env["GIT_ALLOW_PROTOCOL"], "file:http:https:ssh");
        assert_eq!(env["HOME"], "/work/fetch-1");
        assert_eq!(env["GIT_CONFIG_COUNT"], "0");
        assert!(!env.contains_key("GIT_SSH_COMMAND"));
    }

    #[test]
    fn basic_credentials_go_through_a_helper_and_the_environment() {
        let auth = GitAuth::Basic {
            username: "deploy".into(),
            password: "s3cr;et'$(x)".into(),
        };
        let env = git_environment(&auth, None, Path::new("/h")).unwrap();
        let map = env_map(&env);
        assert_eq!(map["GIT_CONFIG_COUNT"], "2");
        assert_eq!(map["GIT_CONFIG_KEY_0"], "credential.helper");
        assert_eq!(map["GIT_CONFIG_VALUE_0"], "");
        assert_eq!(map["GIT_CONFIG_KEY_1"], "credential.helper");
        let helper = map["GIT_CONFIG_VALUE_1"];
        assert!(helper.starts_with('!'), "{helper}");
        // The secret is never part of the helper (a config value anyone reading it sees).
        assert!(!helper.contains("s3cr"), "{helper}");
        assert_eq!(map["BERTH_GIT_USERNAME"], "deploy");
        assert_eq!(map["BERTH_GIT_PASSWORD"], "s3cr;et'$(x)");
        assert!(!format!("{auth:?}").contains("s3cr"));
    }

    #[test]
    fn the_credential_helper_answers_get_only() {
        let auth = GitAuth::Basic {
            username: "deploy".into(),
            password: "pa ss'\"$HOME".into(),
        };
        let env = git_environment(&auth, None, Path::new("/h")).unwrap();
        let map = env_map(&env);
        let helper = map["GIT_CONFIG_VALUE_1"].trim_start_matches('!');
        let run = |action: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{helper} \"$@\""))
                .arg("sh")
                .arg(action)
                .env_clear()
                .env("BERTH_GIT_USERNAME", map["BERTH_GIT_USERNAME"])
                .env("BERTH_GIT_PASSWORD", map["BERTH_GIT_PASSWORD"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{action}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(run("get"), "username=deploy\npassword=pa ss'\"$HOME\n");
        assert_eq!(run("store"), "");
        assert_eq!(run("erase"), "");
    }

    #[test]
    fn bearer_tokens_become_a_header() {
        let env = git_environment(&GitAuth::Bearer("tok".into()), None, Path::new("/h")).unwrap();
        let map = env_map(&env);
        assert_eq!(map["GIT_CONFIG_COUNT"], "1");
        assert_eq!(map["GIT_CONFIG_KEY_0"], "http.extraHeader");
        assert_eq!(map["GIT_CONFIG_VALUE_0"], "Authorization: Bearer tok");
    }

    #[test]
    fn ssh_keys_are_private_files_used_by_the_ssh_command() {
        use std::os::unix::fs::PermissionsExt;
        let secrets = tempfile::tempdir().unwrap();
        for (known_hosts, checking) in [
            (
                Some("git.example.com ssh-ed25519 AAAA"),
                "StrictHostKeyChecking=yes",
            ),
            (None, "StrictHostKeyChecking=accept-new"),
        ] {
            let dir = secrets.path().join(checking);
            std::fs::create_dir(&dir).unwrap();
            let auth = GitAuth::SshKey {
                private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\r\nabc\r\n-----END OPENSSH PRIVATE KEY-----".into(),
                known_hosts: known_hosts.map(Into::into),
            };
            let env = git_environment(&auth, Some(&dir), Path::new("/h")).unwrap();
            let map = env_map(&env);
            let ssh = map["GIT_SSH_COMMAND"];
            let key = dir.join("id");
            assert!(ssh.contains(&format!("-i '{}'", key.display())), "{ssh}");
            assert!(ssh.contains("BatchMode=yes"), "{ssh}");
            assert!(ssh.contains("IdentitiesOnly=yes"), "{ssh}");
            assert!(ssh.contains(checking), "{ssh}");
            assert!(
                ssh.contains(&format!(
                    "UserKnownHostsFile='{}'",
                    dir.join("known_hosts").display()
                )),
                "{ssh}"
            );
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let written = std::fs::read_to_string(&key).unwrap();
            assert_eq!(
                written,
                "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
            );
            assert_eq!(
                std::fs::read_to_string(dir.join("known_hosts")).unwrap(),
                known_hosts.unwrap_or_default()
            );
            assert_eq!(map["GIT_CONFIG_COUNT"], "0");
        }
        assert_eq!(shell_quote("/tmp/it's"), "'/tmp/it'\\''s'");
    }

    #[test]
    fn classifies_git_failures() {
        let url = "https://git.example.com/a.git";
        let cases: &[(&str, &str)] = &[
            (
                "Authentication failed for 'https://git.example.com/a.git/'",
                "credentials",
            ),
            (
                "could not read Username for 'https://git.example.com': terminal prompts disabled",
                "credentials",
            ),
            ("HTTP Basic: Access denied", "credentials"),
            ("The requested URL returned error: 403", "credentials"),
            (
                "git@github.com: Permission denied (publickey).",
                "credentials",
            ),
            ("Host key verification failed.", "host key"),
            (
                "unable to access 'https://git.example.com/a.git/': Could not resolve host: git.example.com",
                "reach",
            ),
            (
                "unable to access 'https://127.0.0.1:1/x.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
                "reach",
            ),
            (
                "ssh: connect to host 127.0.0.1 port 1: Connection refused",
                "reach",
            ),
            (
                "'/tmp/nothere' does not appear to be a git repository; Could not read from remote repository.",
                "no repository",
            ),
            (
                "repository 'https://git.example.com/a.git/' not found",
                "no repository",
            ),
            ("something else entirely", "git fetch failed"),
        ];
        for (detail, want) in cases {
            let err = classify(url, "fetch", (*detail).to_owned());
            assert!(err.to_string().contains(want), "{detail:?} gave {err}");
        }
    }

    #[test]
    fn picks_the_error_lines() {
        let lines: Vec<String> = [
            "remote: Counting objects",
            "fatal: couldn't find remote ref refs/heads/nope",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            error_detail(&lines, Some(128)),
            "couldn't find remote ref refs/heads/nope"
        );
        assert_eq!(
            error_detail(&["just this".to_owned()], Some(1)),
            "just this"
        );
        assert_eq!(error_detail(&[], Some(1)), "exit code 1");
    }
}
