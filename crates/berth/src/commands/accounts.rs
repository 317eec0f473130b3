//! Account commands: log in and out, who am I, register, change the password, API tokens, and
//! the admins' users and settings.

use std::process::ExitCode;
use std::time::Duration;

use berth_api::account_dto::{
    MeDto, NewTokenDto, NewTokenRequest, PasswordChange, RegisterRequest, SettingsDto, TeamRoleDto,
    TokenDto, TokenLoginRequest, TokenScopeDto, UserChanges, UserDto,
};
use clap::{Args, Subcommand, ValueEnum};

use super::{Global, or_dash, segment, time, time_or_dash, yes_no};
use crate::client::Client;
use crate::credentials::{self, Credentials, DEFAULT_SERVER, TokenSource};
use crate::output::{self, Format};
use crate::terminal::{self, Secrets};

/// The account commands, at the top level of `berth`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Log in: make an API token for this machine and save it in the credentials file
    Login(LoginArgs),
    /// Revoke the saved token on the server and remove the credentials file
    Logout,
    /// Who the token belongs to, their teams, and where the token came from
    Whoami {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Create an account, when registration is open
    Register {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Also create this team, with you as its owner
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input (one line) instead of the terminal
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change your password
    Passwd {
        /// Read the current and the new password from standard input (one line each)
        #[arg(long)]
        password_stdin: bool,
        /// Also revoke all your API tokens (this CLI's too: log in again afterwards)
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// Your API tokens
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Users (admins)
    #[command(subcommand)]
    Users(UsersCommand),
    /// Create a platform admin (admins)
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Platform settings: who may register
    #[command(subcommand)]
    Settings(SettingsCommand),
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Asked for on the terminal when not given
    #[arg(long)]
    username: Option<String>,
    /// Read the password from standard input (one line) instead of the terminal
    #[arg(long)]
    password_stdin: bool,
    /// Name of the API token made for this machine [default: berth-cli@HOSTNAME]
    #[arg(long)]
    token_name: Option<String>,
    /// The token stops working after this many days [default: never]
    #[arg(long)]
    expires_in_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List your tokens
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Make a token; it is printed once
    Create {
        name: String,
        /// The token stops working after this many days [default: never]
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// What the token may do: `full` (everything you may) [default] or `metrics` (only
        /// `GET /metrics`, for a Prometheus server; admins only)
        #[arg(long)]
        scope: Option<String>,
    },
    /// Revoke a token by its id (see `tokens list`)
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List every user
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a user and their teams
    Show {
        username: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Create a user
    Create {
        #[command(flatten)]
        user: NewUser,
        /// Make the user a platform admin
        #[arg(long)]
        admin: bool,
    },
    /// Disable a user: their sessions and tokens stop working at once
    Disable { username: String },
    /// Enable a disabled user
    Enable { username: String },
    /// Delete a user
    Delete {
        username: String,
        /// Do not ask for confirmation
        #[arg(long, short)]
        yes: bool,
    },
    /// Make a user a platform admin
    Promote { username: String },
    /// Take away a user's platform admin role
    Demote { username: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform admin (the same as `users create --admin`)
    Create(NewUser),
}

/// A user to create.
#[derive(Debug, Args)]
pub struct NewUser {
    username: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    display_name: Option<String>,
    /// Read the password from standard input (one line) instead of the terminal
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Show the settings
    Show {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Open or close self-registration (`berth register`)
    Registration { state: Registration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    Open,
    Closed,
}

pub async fn run(global: &Global, command: AccountCommand) -> Result<ExitCode, String> {
    match command {
        AccountCommand::Login(args) => login(global, args).await?,
        AccountCommand::Logout => logout().await?,
        AccountCommand::Whoami { output } => whoami(global, output).await?,
        AccountCommand::Register {
            username,
            email,
            team,
            display_name,
            password_stdin,
        } => {
            let password = Secrets::choose(password_stdin)?.new_password("Password: ")?;
            let client = Client::new(&server_without_token(global), None)?;
            let body = RegisterRequest {
                username,
                email,
                password,
                display_name,
                team: team.clone(),
                is_admin: None,
            };
            let user: UserDto = client.post("/auth/register", &body).await?;
            match team {
                Some(team) => println!("registered {}, owner of team {team}", user.username),
                None => println!("registered {}", user.username),
            }
            println!("log in with: berth login --username {}", user.username);
        }
        AccountCommand::Passwd {
            password_stdin,
            revoke_tokens,
        } => {
            let secrets = Secrets::choose(password_stdin)?;
            let current = secrets.password("Current password: ")?;
            let new = secrets.new_password("New password: ")?;
            let body = PasswordChange {
                current_password: current,
                new_password: new,
                revoke_tokens,
            };
            let client = global.client()?;
            let me = client.get::<MeDto>("/me").await?.user;
            client.post::<_, ()>("/me/password", &body).await?;
            println!("password changed; your other browser sessions have ended");
            if revoke_tokens {
                println!(
                    "all your API tokens are revoked, this CLI's too: log in again with `berth login --username {}`",
                    me.username
                );
            }
            if me.username == berth_api::accounts::FIRST_ADMIN && me.is_admin {
                println!(
                    "the first-start secret is retired: it no longer works as a token or password, and the server removed <data-dir>/admin-token (use `berth login --username {}`)",
                    me.username
                );
            }
        }
        AccountCommand::Tokens(command) => tokens(&global.client()?, command).await?,
        AccountCommand::Users(command) => users(&global.client()?, command).await?,
        AccountCommand::Admin(AdminCommand::Create(user)) => {
            create_user(&global.client()?, user, true).await?
        }
        AccountCommand::Settings(command) => settings(&global.client()?, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The server for commands that need no token (login, register): `--server`, else the saved
/// one, else the default.
fn server_without_token(global: &Global) -> String {
    global
        .server
        .clone()
        .or_else(|| {
            credentials::load()
                .ok()
                .flatten()
                .map(|(_, saved)| saved.server)
        })
        .unwrap_or_else(|| DEFAULT_SERVER.to_string())
}

async fn login(global: &Global, args: LoginArgs) -> Result<(), String> {
    let secrets = Secrets::choose(args.password_stdin)?;
    let username = match args.username {
        Some(username) => username,
        None if secrets == Secrets::Terminal => terminal::ask("Username: ")?.trim().to_string(),
        None => return Err("pass --username with --password-stdin".to_string()),
    };
    let password = secrets.password("Password: ")?;
    let server = server_without_token(global);
    let name = args.token_name.unwrap_or_else(default_token_name);
    let body = TokenLoginRequest {
        username: username.clone(),
        password,
        name,
        expires_in_days: args.expires_in_days,
    };
    let new: NewTokenDto = Client::new(&server, None)?
        .post("/auth/token", &body)
        .await?;
    // The token this one replaces would stay valid, unused: revoke it (best effort).
    let previous = credentials::load().ok().flatten();
    let path = credentials::save(&Credentials {
        server: server.clone(),
        username: username.clone(),
        token: new.token.clone(),
        token_id: Some(new.info.id),
    })?;
    if let Some((_, old)) = previous
        && old.token != new.token
        && tokio::time::timeout(Duration::from_secs(5), revoke_saved(&old))
            .await
            .is_ok_and(|revoked| revoked.is_ok())
    {
        println!(
            "revoked the token saved before (of {} at {})",
            old.username, old.server
        );
    }
    println!(
        "logged in to {server} as {username}: token {:?} ({}…) saved in {}",
        new.info.name,
        new.info.prefix,
        path.display()
    );
    if let Some(expires) = &new.info.expires_at {
        println!("the token expires at {}", time(*expires));
    }
    Ok(())
}

/// `berth-cli@HOSTNAME`, or `berth-cli` when the host name is unknown.
fn default_token_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    match host {
        Some(host) => format!("berth-cli@{host}"),
        None => "berth-cli".to_string(),
    }
}

/// Revokes the token of saved credentials with that token itself.
async fn revoke_saved(saved: &Credentials) -> Result<(), String> {
    let id = saved
        .token_id
        .ok_or_else(|| "the credentials file does not name the token's id".to_string())?;
    Client::new(&saved.server, Some(saved.token.clone()))?
        .delete(&format!("/me/tokens/{id}"))
        .await
}

async fn logout() -> Result<(), String> {
    let Some((path, saved)) = credentials::load()? else {
        let location = credentials::path().map_or("no credentials directory".to_string(), |p| {
            p.display().to_string()
        });
        return Err(format!("not logged in ({location} does not exist)"));
    };
    match revoke_saved(&saved).await {
        Ok(()) => println!("token revoked on {}", saved.server),
        Err(error) => eprintln!(
            "warning: the token could not be revoked on {} ({error}); log in again and revoke \
             it with `berth tokens revoke {}`",
            saved.server,
            saved.token_id.map_or("ID".to_string(), |id| id.to_string())
        ),
    }
    credentials::remove(&path)?;
    println!(
        "logged out of {} ({} removed)",
        saved.server,
        path.display()
    );
    Ok(())
}

async fn whoami(global: &Global, output: Format) -> Result<(), String> {
    let target = global.target()?;
    let source = match &target.source {
        TokenSource::Given => "--token or BERTH_TOKEN".to_string(),
        TokenSource::Credentials(path) => path.display().to_string(),
        TokenSource::AdminTokenFile => "./berth-data/admin-token".to_string(),
        TokenSource::None => {
            return Err(format!(
                "no token for {}: run `berth login`, or pass --token or set BERTH_TOKEN",
                target.server
            ));
        }
    };
    let client = Client::new(&target.server, target.token.clone())?;
    let me: MeDto = client.get("/me").await?;
    output::one(output, &me, |me| {
        println!(
            "{}",
            output::fields(&[
                ("user", me.user.username.clone()),
                ("display name", or_dash(&me.user.display_name)),
                ("email", me.user.email.clone()),
                ("admin", yes_no(me.user.is_admin)),
                ("server", target.server.clone()),
                ("auth", me.auth.clone()),
                ("token from", source),
            ])
        );
        print_teams(&me.teams);
    });
    Ok(())
}

async fn tokens(client: &Client, command: TokensCommand) -> Result<(), String> {
    match command {
        TokensCommand::List { output } => {
            let tokens: Vec<TokenDto> = client.get("/me/tokens").await?;
            output::list(
                output,
                &tokens,
                &[
                    "ID",
                    "NAME",
                    "PREFIX",
                    "STATE",
                    "CREATED",
                    "EXPIRES",
                    "LAST USED",
                    "SCOPE",
                ],
                |t| {
                    vec![
                        t.id.to_string(),
                        t.name.clone(),
                        t.prefix.clone(),
                        if t.revoked { "revoked" } else { "active" }.to_string(),
                        time(t.created_at),
                        time_or_dash(t.expires_at),
                        time_or_dash(t.last_used_at),
                        match t.scope {
                            TokenScopeDto::Full => "full",
                            TokenScopeDto::Metrics => "metrics",
                        }
                        .to_string(),
                    ]
                },
            );
        }
        TokensCommand::Create {
            name,
            expires_in_days,
            scope,
        } => {
            let body = NewTokenRequest {
                name,
                expires_in_days,
                scope,
            };
            let new: NewTokenDto = client.post("/me/tokens", &body).await?;
            println!("{}", new.token);
            eprintln!(
                "token {} (id {}) made; it is shown this once: keep it now",
                new.info.name, new.info.id
            );
        }
        TokensCommand::Revoke { id } => {
            client.delete(&format!("/me/tokens/{id}")).await?;
            println!("token {id} revoked");
        }
    }
    Ok(())
}

async fn users(client: &Client, command: UsersCommand) -> Result<(), String> {
    let user_path = |username: &str| format!("/users/{}", segment(username));
    let changed = |user: UserDto, what: &str| println!("user {} {what}", user.username);
    match command {
        UsersCommand::List { output } => {
            let users: Vec<UserDto> = client.get("/users").await?;
            output::list(
                output,
                &users,
                &[
                    "USERNAME",
                    "EMAIL",
                    "DISPLAY NAME",
                    "ADMIN",
                    "STATE",
                    "CREATED",
                ],
                |u| {
                    vec![
                        u.username.clone(),
                        u.email.clone(),
                        u.display_name.clone(),
                        yes_no(u.is_admin),
                        user_state(u),
                        time(u.created_at),
                    ]
                },
            );
        }
        UsersCommand::Show { username, output } => {
            let user: UserDto = client.get(&user_path(&username)).await?;
            output::one(output, &user, print_user);
        }
        UsersCommand::Create { user, admin } => create_user(client, user, admin).await?,
        UsersCommand::Disable { username } => {
            let path = format!("{}/disable", user_path(&username));
            changed(
                client.post_empty(&path).await?,
                "disabled: their sessions and tokens no longer work",
            );
        }
        UsersCommand::Enable { username } => {
            let path = format!("{}/enable", user_path(&username));
            changed(client.post_empty(&path).await?, "enabled");
        }
        UsersCommand::Delete { username, yes } => {
            if !yes {
                if !terminal::interactive() {
                    return Err(format!("pass --yes to delete user {username}"));
                }
                if !terminal::confirm(&format!("delete user {username}?"))? {
                    return Err("not deleted".to_string());
                }
            }
            client.delete(&user_path(&username)).await?;
            println!("user {username} deleted");
        }
        UsersCommand::Promote { username } => {
            let body = UserChanges {
                is_admin: Some(true),
                ..UserChanges::default()
            };
            changed(
                client.patch(&user_path(&username), &body).await?,
                "is now a platform admin",
            );
        }
        UsersCommand::Demote { username } => {
            let body = UserChanges {
                is_admin: Some(false),
                ..UserChanges::default()
            };
            changed(
                client.patch(&user_path(&username), &body).await?,
                "is no longer a platform admin",
            );
        }
    }
    Ok(())
}

async fn create_user(client: &Client, user: NewUser, admin: bool) -> Result<(), String> {
    let password = Secrets::choose(user.password_stdin)?
        .new_password(&format!("Password for {}: ", user.username))?;
    let body = RegisterRequest {
        username: user.username,
        email: user.email,
        password,
        display_name: user.display_name,
        team: None,
        is_admin: Some(admin),
    };
    let created: UserDto = client.post("/users", &body).await?;
    let role = if created.is_admin {
        "platform admin"
    } else {
        "user"
    };
    println!("{role} {} created", created.username);
    Ok(())
}

fn print_user(user: &UserDto) {
    println!(
        "{}",
        output::fields(&[
            ("user", user.username.clone()),
            ("id", user.id.to_string()),
            ("display name", or_dash(&user.display_name)),
            ("email", user.email.clone()),
            ("admin", yes_no(user.is_admin)),
            ("state", user_state(user)),
            ("created", time(user.created_at)),
            ("updated", time(user.updated_at)),
        ])
    );
    print_teams(&user.teams);
}

/// `active` or `disabled`.
fn user_state(user: &UserDto) -> String {
    if user.disabled { "disabled" } else { "active" }.to_string()
}

/// A user's teams and roles, after a blank line; nothing without teams.
fn print_teams(teams: &[TeamRoleDto]) {
    if !teams.is_empty() {
        println!();
        output::list(Format::Table, teams, &["TEAM", "ROLE"], |t| {
            vec![t.team.clone(), t.role.clone()]
        });
    }
}

async fn settings(client: &Client, command: SettingsCommand) -> Result<(), String> {
    let print = |settings: &SettingsDto| {
        let state = if settings.registration_open {
            "open (anyone can `berth register`)"
        } else {
            "closed (admins create users)"
        };
        println!("{}", output::fields(&[("registration", state.to_string())]));
    };
    match command {
        SettingsCommand::Show { output } => {
            let settings: SettingsDto = client.get("/settings").await?;
            output::one(output, &settings, print);
        }
        SettingsCommand::Registration { state } => {
            let body = SettingsDto {
                registration_open: state == Registration::Open,
            };
            let settings: SettingsDto = client.put("/settings", &body).await?;
            print(&settings);
        }
    }
    Ok(())
}
