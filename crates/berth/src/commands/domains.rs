//! Domain commands for admins: reservations (keep a domain and every name under it for one
//! team) and the app that receives on-demand domains (customers' own domains, certificates
//! ordered at the first handshake). An app's own domains are set with
//! `berth apps create/deploy … --domain`.

use std::process::ExitCode;

use berth_api::domains::{ReservationDto, ReserveRequest};
use berth_api::system::OnDemandDomainsDto;
use clap::Subcommand;

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// List the reserved domains (admins)
    Reservations {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Keep a domain and every name under it for one team's apps (admins)
    Reserve {
        domain: String,
        #[arg(long)]
        team: String,
    },
    /// Remove a domain's reservation (admins)
    Unreserve { domain: String },
    /// Show which app receives the hosts no other app routes (admins)
    OnDemand,
    /// Make an app receive the hosts no other app routes, with HTTPS certificates ordered at the first handshake for the hosts it approves (admins; needs ACME and --https-listen)
    OnDemandSet {
        app: String,
        /// Path the app approves hosts on: `GET <PATH>?domain=<host>`, 2xx approves (else only the server's --on-demand-allow decides)
        #[arg(long, value_name = "PATH")]
        ask: Option<String>,
    },
    /// No app receives unknown hosts any more (admins)
    OnDemandClear,
}

pub async fn run(client: &Client, command: DomainsCommand) -> Result<ExitCode, String> {
    match command {
        DomainsCommand::Reservations { output } => {
            let reservations: Vec<ReservationDto> = client.get("/domain-reservations").await?;
            output::list(
                output,
                &reservations,
                &["DOMAIN", "TEAM", "BY", "CREATED"],
                |r| {
                    vec![
                        r.domain.clone(),
                        r.team.clone(),
                        r.created_by.clone(),
                        r.created_at.clone(),
                    ]
                },
            );
        }
        DomainsCommand::Reserve { domain, team } => {
            let reservation: ReservationDto = client
                .put(
                    &format!("/domain-reservations/{}", segment(&domain)),
                    &ReserveRequest { team },
                )
                .await?;
            println!(
                "{} and every name under it are reserved for team {}",
                reservation.domain, reservation.team
            );
        }
        DomainsCommand::Unreserve { domain } => {
            client
                .delete(&format!("/domain-reservations/{}", segment(&domain)))
                .await?;
            println!("{domain} is no longer reserved");
        }
        DomainsCommand::OnDemand => {
            let setting: OnDemandDomainsDto = client.get("/system/on-demand-domains").await?;
            match (setting.app, setting.ask_path) {
                (Some(app), Some(ask)) => println!("app {app} (asked at {ask})"),
                (Some(app), None) => println!("app {app} (the allow-list decides)"),
                (None, _) => println!("none: hosts no app routes are not answered"),
            }
        }
        DomainsCommand::OnDemandSet { app, ask } => {
            let setting: OnDemandDomainsDto = client
                .put(
                    "/system/on-demand-domains",
                    &OnDemandDomainsDto {
                        app: Some(app),
                        ask_path: ask,
                    },
                )
                .await?;
            println!(
                "app {} receives the hosts no other app routes",
                setting.app.unwrap_or_default()
            );
        }
        DomainsCommand::OnDemandClear => {
            client.delete("/system/on-demand-domains").await?;
            println!("no app receives on-demand domains");
        }
    }
    Ok(ExitCode::SUCCESS)
}
