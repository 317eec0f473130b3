//! The CLI behaves like a Unix tool on a closed pipe (`berth apps list -o json | head -c 1`):
//! it stops quietly instead of panicking with a backtrace.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};

use support::Server;

#[tokio::test]
async fn a_closed_pipe_ends_the_cli_quietly() {
    let server = Server::start("clipipe").await;
    for args in [
        &["apps", "list", "-o", "json"][..],
        &["apps", "list"][..],
        &["audit", "-o", "json"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_SERVER", &server.url)
            .env("BERTH_TOKEN", &server.token)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run berth");
        // The reader goes away before the CLI has written anything: every write meets EPIPE.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "berth {args:?} on a closed pipe: {status}\n{stderr}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            // Killed by SIGPIPE like `cat` or `ls` (the shell reports 141), or done already.
            assert!(
                status.success() || status.signal() == Some(libc_sigpipe()),
                "berth {args:?}: {status}\n{stderr}"
            );
        }
    }
}

/// SIGPIPE's number on every Unix Berth runs on.
#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13
}
