//! The audit command: the log of changes attempted through Berth, filtered, newest first.

use std::process::ExitCode;
use std::time::Duration;

use berth_api::audit::AuditDto;
use clap::{Args, ValueEnum};

use super::{millis_ago, or_dash, query, time, value_name};
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::parse_duration;

/// How an audited attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Outcome {
    Success,
    Denied,
    Failed,
}

/// Filters of `berth audit` (admins see all; team owners their teams').
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this team's objects
    #[arg(long)]
    team: Option<String>,
    /// Only what this user did
    #[arg(long)]
    actor: Option<String>,
    /// Only actions starting with this, e.g. apps.create, users.disable or apps (--help lists them)
    #[arg(long, long_help = action_help())]
    action: Option<String>,
    /// Only this object, e.g. apps/web, users/alice, members/bob or images/team/app:1.0
    #[arg(long)]
    object: Option<String>,
    #[arg(long, value_enum)]
    outcome: Option<Outcome>,
    /// Only the last DURATION, e.g. 30m, 1h, 7d
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    since: Option<Duration>,
    /// At most this many entries
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// The long help of `--action`: every action the server records.
fn action_help() -> String {
    format!(
        "Only actions starting with this (e.g. apps for every app change). The server records:\n{}",
        berth_core::audit::ACTIONS.join(", ")
    )
}

impl AuditArgs {
    fn path(&self) -> String {
        query(
            "/audit",
            &[
                ("team", self.team.clone()),
                ("actor", self.actor.clone()),
                ("action", self.action.clone()),
                ("object", self.object.clone()),
                ("outcome", self.outcome.map(|o| value_name(&o))),
                ("since", self.since.map(|d| millis_ago(d).to_string())),
                ("limit", Some(self.limit.to_string())),
            ],
        )
    }
}

pub async fn run(client: &Client, args: AuditArgs) -> Result<ExitCode, String> {
    let entries: Vec<AuditDto> = client.get(&args.path()).await?;
    output::list(
        args.output,
        &entries,
        &[
            "TIME", "ACTOR", "ACTION", "TEAM", "OBJECT", "OUTCOME", "STATUS", "SOURCE", "DETAIL",
        ],
        |e| {
            vec![
                time(e.at),
                e.actor.clone(),
                e.action.clone(),
                e.team.clone().unwrap_or_else(|| "-".into()),
                e.object.clone(),
                e.outcome.clone(),
                e.status.to_string(),
                e.source.clone(),
                or_dash(&e.detail),
            ]
        },
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: AuditArgs,
    }

    #[test]
    fn filters_become_a_query() {
        let parse = |args: &[&str]| {
            Wrapper::try_parse_from(std::iter::once("audit").chain(args.iter().copied()))
                .map(|w| w.args.path())
        };
        assert_eq!(parse(&[]).unwrap(), "/audit?limit=50");
        assert_eq!(
            parse(&["--team", "web", "--outcome", "denied", "--limit", "5"]).unwrap(),
            "/audit?team=web&outcome=denied&limit=5"
        );
        let since = parse(&["--since", "1h"]).unwrap();
        let ms: i64 = since
            .strip_prefix("/audit?since=")
            .and_then(|rest| rest.strip_suffix("&limit=50"))
            .unwrap()
            .parse()
            .unwrap();
        assert!((millis_ago(Duration::from_secs(3600)) - ms).abs() < 60_000);
        assert!(parse(&["--since", "soon"]).is_err());
        assert!(parse(&["--outcome", "maybe"]).is_err());
    }

    /// The help's examples are names the server records (plural, as in its routes), and the
    /// long help lists every action.
    #[test]
    fn help_names_what_the_server_records() {
        use clap::CommandFactory;
        let help = Wrapper::command().render_long_help().to_string();
        for action in berth_core::audit::ACTIONS {
            assert!(help.contains(action), "{action} missing from:\n{help}");
        }
        let short = Wrapper::command().render_help().to_string();
        for example in ["apps.create", "users.disable", "apps/web", "users/alice"] {
            assert!(short.contains(example), "{example} missing from:\n{short}");
        }
        for stale in ["app.create", "user.disable", " app/web", " user/alice"] {
            assert!(
                !help.contains(stale) && !short.contains(stale),
                "{stale} in the help"
            );
        }
    }
}
