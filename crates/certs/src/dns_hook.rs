//! ACME DNS-01 answers through an executable the operator provides (`--acme-dns-hook`), like
//! certbot's manual auth hooks and acme.sh's DNS scripts: Berth runs it with `present` before
//! the CA looks the TXT record up and `cleanup` afterwards, so any DNS provider with an API or
//! a CLI works without Berth knowing it.
//!
//! The hook is run as `HOOK present|cleanup RECORD VALUE` (RECORD is
//! `_acme-challenge.<domain>` without a trailing dot, VALUE the TXT record's content), with the
//! same in `BERTH_ACME_ACTION`, `BERTH_ACME_RECORD_NAME`, `BERTH_ACME_RECORD_VALUE`, and the
//! domain (without `*.`) in `BERTH_ACME_DOMAIN`. `present` must return once the record is
//! published; exit status 0 means done.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// The most of the hook's stderr an error quotes.
const STDERR_EXCERPT: usize = 500;

/// An executable that publishes and removes DNS-01 TXT records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHook {
    path: PathBuf,
    timeout: Duration,
}

impl DnsHook {
    /// The hook at `path`, checked to be an executable file (see [`DnsHook::check`]); one run
    /// may take at most `timeout`.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Result<DnsHook, String> {
        let path = path.into();
        DnsHook::check(&path)?;
        Ok(DnsHook { path, timeout })
    }

    /// The hook's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why `path` cannot be run as a hook: missing, not a file, or not executable.
    pub fn check(path: &Path) -> Result<(), String> {
        let metadata =
            std::fs::metadata(path).map_err(|e| format!("cannot use {}: {e}", path.display()))?;
        if !metadata.is_file() {
            return Err(format!("{} is not a file", path.display()));
        }
        if metadata.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "{} is not executable (chmod +x it)",
                path.display()
            ));
        }
        Ok(())
    }

    /// Publishes `value` as the TXT record `record` for `domain`.
    pub async fn present(&self, domain: &str, record: &str, value: &str) -> Result<(), String> {
        self.run("present", domain, record, value).await
    }

    /// Removes what [`DnsHook::present`] published.
    pub async fn cleanup(&self, domain: &str, record: &str, value: &str) -> Result<(), String> {
        self.run("cleanup", domain, record, value).await
    }

    async fn run(
        &self,
        action: &str,
        domain: &str,
        record: &str,
        value: &str,
    ) -> Result<(), String> {
        let what = format!(
            "the DNS hook (--acme-dns-hook) {} {action} {record}",
            self.path.display()
        );
        let mut child = Command::new(&self.path)
            .args([action, record, value])
            .env("BERTH_ACME_ACTION", action)
            .env("BERTH_ACME_DOMAIN", domain)
            .env("BERTH_ACME_RECORD_NAME", record)
            .env("BERTH_ACME_RECORD_VALUE", value)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{what} cannot be started: {e}"))?;
        let mut stderr = child.stderr.take();
        let ran = async {
            let mut text = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                // Only the start matters; a chatty hook must not fill memory.
                let _ = stderr.take(64 * 1024).read_to_end(&mut text).await;
            }
            (child.wait().await, text)
        };
        let (status, text) = tokio::time::timeout(self.timeout, ran)
            .await
            .map_err(|_| format!("{what} did not finish within {:?}", self.timeout))?;
        let status = status.map_err(|e| format!("{what} failed: {e}"))?;
        if status.success() {
            return Ok(());
        }
        let said = excerpt(&String::from_utf8_lossy(&text));
        let ended = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_string(),
        };
        Err(if said.is_empty() {
            format!("{what} {ended}")
        } else {
            format!("{what} {ended}: {said}")
        })
    }
}

/// The start of what a hook wrote, on one line: at most [`STDERR_EXCERPT`] bytes, control
/// characters replaced.
fn excerpt(text: &str) -> String {
    let line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.char_indices().nth(STDERR_EXCERPT) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The TXT record name DNS-01 looks up for `domain` (a wildcard's base for `*.`).
pub fn record_name(domain: &str) -> String {
    format!("_acme-challenge.{}", domain.trim_start_matches("*."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[tokio::test]
    async fn the_hook_gets_its_arguments_and_a_failure_says_how_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let good = script(
            dir.path(),
            "good",
            &format!(
                "echo \"$1 $2 $3 $BERTH_ACME_DOMAIN $BERTH_ACME_RECORD_VALUE\" >> {}",
                log.display()
            ),
            0o755,
        );
        let hook = DnsHook::new(&good, Duration::from_secs(10)).unwrap();
        hook.present("shop.test", "_acme-challenge.shop.test", "v1")
            .await
            .unwrap();
        hook.cleanup("shop.test", "_acme-challenge.shop.test", "v1")
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "present _acme-challenge.shop.test v1 shop.test v1\n\
             cleanup _acme-challenge.shop.test v1 shop.test v1\n"
        );

        let bad = script(
            dir.path(),
            "bad",
            "echo 'zone shop.test\nis not managed here' >&2; exit 3",
            0o755,
        );
        let error = DnsHook::new(&bad, Duration::from_secs(10))
            .unwrap()
            .present("shop.test", "_acme-challenge.shop.test", "v")
            .await
            .unwrap_err();
        assert!(error.contains("--acme-dns-hook"), "{error}");
        assert!(
            error.contains("exited with status 3: zone shop.test is not managed here"),
            "{error}"
        );
        let chatty = script(
            dir.path(),
            "chatty",
            "yes x | head -c 100000 >&2; exit 1",
            0o755,
        );
        let error = DnsHook::new(&chatty, Duration::from_secs(10))
            .unwrap()
            .present("shop.test", "_acme-challenge.shop.test", "v")
            .await
            .unwrap_err();
        assert!(error.len() < 1000 && error.ends_with('…'), "{error}");
        let slow = script(dir.path(), "slow", "sleep 30", 0o755);
        let error = DnsHook::new(&slow, Duration::from_millis(200))
            .unwrap()
            .present("shop.test", "_acme-challenge.shop.test", "v")
            .await
            .unwrap_err();
        assert!(error.contains("did not finish"), "{error}");
    }

    #[test]
    fn a_hook_must_be_an_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = script(dir.path(), "plain", "exit 0", 0o644);
        // (path, the refusal contains)
        let cases = [
            (dir.path().join("missing"), "cannot use"),
            (dir.path().to_path_buf(), "is not a file"),
            (plain, "is not executable"),
        ];
        for (path, want) in cases {
            let error = DnsHook::check(&path).unwrap_err();
            assert!(error.contains(want), "{}: {error}", path.display());
        }
        assert_eq!(record_name("*.shop.test"), "_acme-challenge.shop.test");
        assert_eq!(record_name("shop.test"), "_acme-challenge.shop.test");
    }
}
