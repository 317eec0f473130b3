//! Domain reservation commands (admins): keep a domain and every name under it for one team.
//! An app's own domains are set with `berth apps create/deploy … --domain`.

use std::process::ExitCode;

use berth_api::domains::{ReservationDto, ReserveRequest};
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
    }
    Ok(ExitCode::SUCCESS)
}
