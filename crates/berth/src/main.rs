//! The `berth` binary: `berth server` runs the control plane; every other command is a client
//! of its REST API.

mod acme;
mod client;
mod commands;
mod config;
mod credentials;
mod handover;
mod jobs;
mod output;
mod server;
mod tcp;
mod terminal;
mod units;

use std::process::ExitCode;

use clap::Parser;

use crate::commands::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.is_server() {
        // Before any thread runs: takes sockets a predecessor (or systemd) handed over.
        handover::capture();
    } else {
        restore_default_sigpipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Lets a client command die of SIGPIPE like any Unix tool when its reader goes away
/// (`berth apps list -o json | head -c 200`). Rust ignores SIGPIPE, so a write to a closed pipe
/// would fail with EPIPE and `println!` panic. Not for `berth server`: a client closing its
/// socket must never kill the server.
#[cfg(unix)]
#[allow(unsafe_code)] // the one FFI call; no other unsafe code in the workspace
fn restore_default_sigpipe() {
    // SAFETY: called at the start of main, before any thread is spawned; installing the
    // default disposition of a signal has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_default_sigpipe() {}
