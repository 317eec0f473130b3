//! Asking the user: passwords (without echo on a terminal), plain answers and confirmations.
//!
//! No terminal crate is available to the project, so echo is switched off with `stty -echo`
//! for the length of one line; when that fails the password is read with echo and the user is
//! told so.

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

/// Whether standard input is an interactive terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Reads one line of standard input without its line ending; `None` at end of input.
pub fn read_line() -> Result<Option<String>, String> {
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if read == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
}

/// Prints `prompt` on standard error and reads the answer from the terminal.
pub fn ask(prompt: &str) -> Result<String, String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    read_line()?.ok_or_else(|| "no answer: standard input ended".to_string())
}

/// Prints `prompt` and reads a secret from the terminal with echo switched off.
pub fn ask_secret(prompt: &str) -> Result<String, String> {
    let echo_off = stty("-echo");
    if !echo_off {
        eprintln!("note: cannot switch off the terminal's echo; the password will be visible");
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let line = read_line();
    if echo_off {
        stty("echo");
        eprintln!();
    }
    line?.ok_or_else(|| "no password: standard input ended".to_string())
}

/// Asks for a new password twice on the terminal until both agree.
pub fn ask_new_secret(prompt: &str) -> Result<String, String> {
    loop {
        let first = ask_secret(prompt)?;
        let second = ask_secret("Repeat it: ")?;
        if first == second {
            return Ok(first);
        }
        eprintln!("the two passwords differ; try again");
    }
}

/// Asks a yes/no question on the terminal; only `y` or `yes` is a yes.
pub fn confirm(question: &str) -> Result<bool, String> {
    let answer = ask(&format!("{question} [y/N] "))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Where passwords come from: the terminal (asked for, without echo) or standard input (one
/// line per password, for scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Terminal,
    Stdin,
}

impl Secrets {
    /// The terminal when standard input is one and `from_stdin` was not asked for; an error
    /// when neither works.
    pub fn choose(from_stdin: bool) -> Result<Self, String> {
        if from_stdin {
            Ok(Secrets::Stdin)
        } else if interactive() {
            Ok(Secrets::Terminal)
        } else {
            Err(
                "standard input is not a terminal: pass --password-stdin and write the password \
                 on standard input"
                    .to_string(),
            )
        }
    }

    /// An existing password (asked once).
    pub fn password(self, prompt: &str) -> Result<String, String> {
        nonempty(match self {
            Secrets::Terminal => ask_secret(prompt)?,
            Secrets::Stdin => stdin_password()?,
        })
    }

    /// A new password (asked twice on the terminal).
    pub fn new_password(self, prompt: &str) -> Result<String, String> {
        nonempty(match self {
            Secrets::Terminal => ask_new_secret(prompt)?,
            Secrets::Stdin => stdin_password()?,
        })
    }
}

fn stdin_password() -> Result<String, String> {
    read_line()?.ok_or_else(|| "no password on standard input".to_string())
}

fn nonempty(password: String) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".to_string());
    }
    Ok(password)
}

/// Runs `stty` on the terminal of standard input; whether it worked.
fn stty(setting: &str) -> bool {
    Command::new("stty")
        .arg(setting)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
