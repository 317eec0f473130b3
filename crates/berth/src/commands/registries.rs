//! External registry commands: list the registries a team browses through Berth, add (or
//! replace) and remove them (admins). Browsing is `berth images … --registry NAME`.

use std::process::ExitCode;

use berth_api::image_dto::{ExternalRegistryDto, ExternalRegistryRequest};
use clap::Subcommand;

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};
use crate::terminal::Secrets;

#[derive(Debug, Subcommand)]
pub enum RegistriesCommand {
    /// List the external registries of your teams (admins: all)
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Add or replace an external registry, a Distribution-compatible registry that a team
    /// browses and cleans up with `berth images … --registry NAME` (admins)
    Add {
        name: String,
        /// The team whose members may browse it (any role) and delete from it (member)
        #[arg(long)]
        team: String,
        /// Its base URL, http://host[:port]
        #[arg(long)]
        url: String,
        /// User name for Basic auth or Docker's token flow (the password is asked, or read with
        /// --password-stdin); without it, Berth is anonymous there
        #[arg(long)]
        username: Option<String>,
        /// Read the password from standard input (one line) instead of the terminal
        #[arg(long, requires = "username", conflicts_with = "keep_password")]
        password_stdin: bool,
        /// When replacing a registry with the same username: keep its stored password
        #[arg(long, requires = "username")]
        keep_password: bool,
    },
    /// Remove an external registry from Berth (admins; the registry itself is untouched)
    Remove { name: String },
}

pub async fn run(client: &Client, command: RegistriesCommand) -> Result<ExitCode, String> {
    match command {
        RegistriesCommand::List { output } => {
            let registries: Vec<ExternalRegistryDto> = client.get("/registries").await?;
            output::list(
                output,
                &registries,
                &["NAME", "TEAM", "URL", "USERNAME", "PASSWORD"],
                |r| {
                    vec![
                        r.name.clone(),
                        r.team.clone(),
                        r.url.clone(),
                        r.username.clone().unwrap_or_else(|| "-".into()),
                        if r.has_password { "stored" } else { "-" }.into(),
                    ]
                },
            );
        }
        RegistriesCommand::Add {
            name,
            team,
            url,
            username,
            password_stdin,
            keep_password,
        } => {
            let password = match &username {
                Some(username) if !keep_password => Some(
                    Secrets::choose(password_stdin)?
                        .password(&format!("Password of {username} at {url}: "))?,
                ),
                _ => None,
            };
            let request = ExternalRegistryRequest {
                team,
                url,
                username,
                password,
            };
            let registry: ExternalRegistryDto = client
                .put(&format!("/registries/{}", segment(&name)), &request)
                .await?;
            println!(
                "registry {} ({}) saved for team {}; browse it with `berth images list --registry {}`",
                registry.name, registry.url, registry.team, registry.name
            );
        }
        RegistriesCommand::Remove { name } => {
            client
                .delete(&format!("/registries/{}", segment(&name)))
                .await?;
            println!("registry {name} removed from Berth (its images are untouched)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
