//! Team commands: teams and their members, quotas with their usage, and quota requests.

use std::process::ExitCode;

use berth_api::team_dto::{
    DecisionRequest, MemberDto, MemberRoleRequest, NewQuotaRequest, NewTeamRequest, QuotaDto,
    QuotaRequestDto, TeamChanges, TeamDto, UsageDto,
};
use clap::{Args, Subcommand, ValueEnum};

use super::{or_dash, query, segment, time, value_name};
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::{Limit, format_cpu, format_size, percent};

/// The team commands, at the top level of `berth`.
#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// Teams, their members and quotas
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Quota use, and requests for a larger quota
    #[command(subcommand)]
    Quota(QuotaCommand),
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// List the teams you can read (admins: all), with their use of the quota
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a team: your role, its quota and use
    Show {
        team: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Create a team (admins); without quota flags it gets the server's default quota, with
    /// some, the limits not given are unlimited
    Create {
        team: String,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        quota: QuotaArgs,
    },
    /// Delete a team (admins; refused while it owns apps)
    Delete { team: String },
    /// List a team's members
    Members {
        team: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Add a member, or change a member's role (owners, admins)
    AddMember {
        team: String,
        username: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// Remove a member (owners, admins)
    RemoveMember { team: String, username: String },
    /// Change a team's limits (admins); limits not given stay as they are
    SetQuota {
        team: String,
        #[command(flatten)]
        quota: QuotaArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// A team's use against its limits
    Show {
        team: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Ask the admins for larger limits (members, owners)
    Request {
        team: String,
        #[command(flatten)]
        quota: QuotaArgs,
        /// Why the team needs it
        #[arg(long)]
        reason: String,
    },
    /// List quota requests, newest first (admins: all; owners: their teams'; others: their own)
    Requests {
        #[arg(long)]
        team: Option<String>,
        #[arg(long, value_enum)]
        status: Option<RequestStatus>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Approve a request: the team's limits rise at once (admins)
    Approve {
        id: i64,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a request, saying why (admins)
    Reject {
        id: i64,
        #[arg(long)]
        comment: String,
    },
}

/// A role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Everything in the team, manages members
    Owner,
    /// Deploys, pushes images, saves templates, files quota requests
    Member,
    /// Reads only
    Viewer,
}

/// Where a quota request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
}

/// Limits given on the command line.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// CPU: cores (2, 1.5) or millicores (500m); `unlimited` removes the limit
    #[arg(long, value_parser = Limit::cpu)]
    cpu: Option<Limit>,
    /// Memory: bytes or with a unit (512Mi, 2Gi, 1G, 100M); `unlimited` removes the limit
    #[arg(long, value_parser = Limit::size)]
    memory: Option<Limit>,
    /// Number of instances; `unlimited` removes the limit
    #[arg(long, value_parser = Limit::count)]
    instances: Option<Limit>,
    /// Registry storage: bytes or with a unit (10Gi); `unlimited` removes the limit
    #[arg(long, value_parser = Limit::size)]
    registry: Option<Limit>,
    /// Volume storage: bytes or with a unit (20Gi); `unlimited` removes the limit
    #[arg(long, value_parser = Limit::size)]
    volumes: Option<Limit>,
}

impl QuotaArgs {
    fn given(&self) -> [(&'static str, Option<Limit>); 5] {
        [
            ("cpu", self.cpu),
            ("memory", self.memory),
            ("instances", self.instances),
            ("registry", self.registry),
            ("volumes", self.volumes),
        ]
    }

    fn is_empty(&self) -> bool {
        self.given().iter().all(|(_, limit)| limit.is_none())
    }

    /// `base` with the limits given here.
    fn apply(&self, base: QuotaDto) -> QuotaDto {
        let pick = |limit: Option<Limit>, old: Option<u64>| limit.map_or(old, Limit::value);
        QuotaDto {
            cpu_millis: pick(self.cpu, base.cpu_millis),
            memory_bytes: pick(self.memory, base.memory_bytes),
            instances: pick(self.instances, base.instances),
            registry_bytes: pick(self.registry, base.registry_bytes),
            volume_bytes: pick(self.volumes, base.volume_bytes),
        }
    }

    /// The limits asked for in a quota request: numbers only, at least one.
    fn requested(&self) -> Result<QuotaDto, String> {
        if self.is_empty() {
            return Err(
                "give at least one of --cpu, --memory, --instances, --registry, --volumes"
                    .to_string(),
            );
        }
        if let Some((flag, _)) = self
            .given()
            .into_iter()
            .find(|(_, limit)| *limit == Some(Limit::Unlimited))
        {
            return Err(format!(
                "--{flag}: a request asks for a number, not `unlimited`"
            ));
        }
        Ok(self.apply(QuotaDto::default()))
    }
}

/// One resource of a quota: its name, its limit and how to print an amount of it.
struct Resource {
    name: &'static str,
    limit: Option<u64>,
    used: u64,
    format: fn(u64) -> String,
}

impl Resource {
    fn limit_text(&self) -> String {
        self.limit.map_or("unlimited".to_string(), self.format)
    }
}

/// The five resources, in a fixed order.
fn resources(quota: &QuotaDto, usage: &UsageDto) -> [Resource; 5] {
    let count: fn(u64) -> String = |n| n.to_string();
    [
        Resource {
            name: "cpu",
            limit: quota.cpu_millis,
            used: usage.cpu_millis,
            format: format_cpu,
        },
        Resource {
            name: "memory",
            limit: quota.memory_bytes,
            used: usage.memory_bytes,
            format: format_size,
        },
        Resource {
            name: "instances",
            limit: quota.instances,
            used: usage.instances,
            format: count,
        },
        Resource {
            name: "registry",
            limit: quota.registry_bytes,
            used: usage.registry_bytes,
            format: format_size,
        },
        Resource {
            name: "volumes",
            limit: quota.volume_bytes,
            used: usage.volume_bytes,
            format: format_size,
        },
    ]
}

/// The limits a request changes, from what they were: `cpu 2 → 4, instances unlimited → 20`.
fn describe_change(current: &QuotaDto, requested: &QuotaDto) -> String {
    let before = resources(current, &UsageDto::default());
    let after = resources(requested, &UsageDto::default());
    let changes: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|(_, wanted)| wanted.limit.is_some())
        .map(|(old, wanted)| {
            format!(
                "{} {} → {}",
                old.name,
                old.limit_text(),
                wanted.limit_text()
            )
        })
        .collect();
    changes.join(", ")
}

/// The limits that are set: `cpu 4, instances 20`.
fn describe_limits(quota: &QuotaDto) -> String {
    let set: Vec<String> = resources(quota, &UsageDto::default())
        .iter()
        .filter(|r| r.limit.is_some())
        .map(|r| format!("{} {}", r.name, r.limit_text()))
        .collect();
    set.join(", ")
}

/// A team: its names, and its quota and use as a table, one row per resource.
fn print_team(team: &TeamDto) {
    let mut fields = vec![("team", team.name.clone())];
    if !team.display_name.is_empty() {
        fields.push(("display name", team.display_name.clone()));
    }
    if let Some(role) = &team.role {
        fields.push(("your role", role.clone()));
    }
    fields.push(("created", time(team.created_at)));
    println!("{}\n", output::fields(&fields));
    let rows: Vec<Vec<String>> = resources(&team.quota, &team.usage)
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                (r.format)(r.used),
                r.limit_text(),
                percent(r.used, r.limit),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["RESOURCE", "USED", "LIMIT", "USE"], &rows)
    );
}

pub async fn run(client: &Client, command: TeamCommand) -> Result<ExitCode, String> {
    match command {
        TeamCommand::Teams(command) => teams(client, command).await?,
        TeamCommand::Quota(command) => quota(client, command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn team_path(team: &str) -> String {
    format!("/teams/{}", segment(team))
}

async fn teams(client: &Client, command: TeamsCommand) -> Result<(), String> {
    match command {
        TeamsCommand::List { output } => {
            let teams: Vec<TeamDto> = client.get("/teams").await?;
            output::list(
                output,
                &teams,
                &[
                    "NAME",
                    "DISPLAY NAME",
                    "ROLE",
                    "CPU",
                    "MEMORY",
                    "INSTANCES",
                    "REGISTRY",
                ],
                |t| {
                    let mut row = vec![
                        t.name.clone(),
                        or_dash(&t.display_name),
                        t.role.clone().unwrap_or_else(|| "-".into()),
                    ];
                    row.extend(resources(&t.quota, &t.usage).iter().map(|r| {
                        let limit = r.limit.map_or("∞".to_string(), r.format);
                        format!("{}/{limit}", (r.format)(r.used))
                    }));
                    row
                },
            );
        }
        TeamsCommand::Show { team, output } => {
            let team: TeamDto = client.get(&team_path(&team)).await?;
            output::one(output, &team, print_team);
        }
        TeamsCommand::Create {
            team,
            display_name,
            quota,
        } => {
            let quota = (!quota.is_empty()).then(|| quota.apply(QuotaDto::default()));
            let body = NewTeamRequest {
                name: team,
                display_name,
                quota,
            };
            let created: TeamDto = client.post("/teams", &body).await?;
            println!("team {} created\n", created.name);
            print_team(&created);
        }
        TeamsCommand::Delete { team } => {
            client.delete(&team_path(&team)).await?;
            println!("team {team} deleted");
        }
        TeamsCommand::Members { team, output } => {
            let members: Vec<MemberDto> =
                client.get(&format!("{}/members", team_path(&team))).await?;
            output::list(
                output,
                &members,
                &["USERNAME", "DISPLAY NAME", "ROLE"],
                |m| vec![m.username.clone(), or_dash(&m.display_name), m.role.clone()],
            );
        }
        TeamsCommand::AddMember {
            team,
            username,
            role,
        } => {
            let path = format!("{}/members/{}", team_path(&team), segment(&username));
            let body = MemberRoleRequest {
                role: value_name(&role),
            };
            let member: MemberDto = client.put(&path, &body).await?;
            println!("{} is now {} of team {team}", member.username, member.role);
        }
        TeamsCommand::RemoveMember { team, username } => {
            let path = format!("{}/members/{}", team_path(&team), segment(&username));
            client.delete(&path).await?;
            println!("{username} removed from team {team}");
        }
        TeamsCommand::SetQuota { team, quota } => {
            if quota.is_empty() {
                return Err(
                    "give at least one of --cpu, --memory, --instances, --registry".to_string(),
                );
            }
            // The server replaces the whole quota: start from the current one.
            let current: TeamDto = client.get(&team_path(&team)).await?;
            let body = TeamChanges {
                quota: Some(quota.apply(current.quota)),
                ..TeamChanges::default()
            };
            let updated: TeamDto = client.patch(&team_path(&team), &body).await?;
            println!("quota of team {} updated\n", updated.name);
            print_team(&updated);
        }
    }
    Ok(())
}

async fn quota(client: &Client, command: QuotaCommand) -> Result<(), String> {
    match command {
        QuotaCommand::Show { team, output } => {
            let team: TeamDto = client.get(&team_path(&team)).await?;
            output::one(output, &team, print_team);
        }
        QuotaCommand::Request {
            team,
            quota,
            reason,
        } => {
            let requested = quota.requested()?;
            let body = NewQuotaRequest {
                cpu_millis: requested.cpu_millis,
                memory_bytes: requested.memory_bytes,
                instances: requested.instances,
                registry_bytes: requested.registry_bytes,
                volume_bytes: requested.volume_bytes,
                reason,
            };
            let path = format!("{}/quota-requests", team_path(&team));
            let request: QuotaRequestDto = client.post(&path, &body).await?;
            println!(
                "quota request {} filed for team {}: {}; an admin decides",
                request.id,
                request.team,
                describe_change(&request.current, &request.requested)
            );
        }
        QuotaCommand::Requests {
            team,
            status,
            output,
        } => {
            let path = query(
                "/quota-requests",
                &[("team", team), ("status", status.map(|s| value_name(&s)))],
            );
            let requests: Vec<QuotaRequestDto> = client.get(&path).await?;
            output::list(
                output,
                &requests,
                &[
                    "ID",
                    "TEAM",
                    "BY",
                    "STATUS",
                    "REQUESTED",
                    "CREATED",
                    "REASON",
                    "DECISION",
                ],
                |r| {
                    let decision = match (&r.decided_by, &r.comment) {
                        (Some(by), Some(comment)) => format!("{by}: {comment}"),
                        (Some(by), None) => by.clone(),
                        (None, _) => "-".to_string(),
                    };
                    vec![
                        r.id.to_string(),
                        r.team.clone(),
                        r.requested_by.clone(),
                        r.status.clone(),
                        // `current` is the team's quota now: a change only while pending.
                        if r.status == "pending" {
                            describe_change(&r.current, &r.requested)
                        } else {
                            describe_limits(&r.requested)
                        },
                        time(r.created_at),
                        r.reason.clone(),
                        decision,
                    ]
                },
            );
        }
        QuotaCommand::Approve { id, comment } => {
            let request = decide(client, id, "approve", comment).await?;
            println!(
                "quota request {id} approved: team {} now has {}",
                request.team,
                describe_limits(&request.requested)
            );
        }
        QuotaCommand::Reject { id, comment } => {
            let request = decide(client, id, "reject", Some(comment)).await?;
            println!("quota request {id} of team {} rejected", request.team);
        }
    }
    Ok(())
}

/// Approves or rejects a quota request.
async fn decide(
    client: &Client,
    id: i64,
    decision: &str,
    comment: Option<String>,
) -> Result<QuotaRequestDto, String> {
    let path = format!("/quota-requests/{id}/{decision}");
    client.post(&path, &DecisionRequest { comment }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cpu: Option<Limit>, memory: Option<Limit>) -> QuotaArgs {
        QuotaArgs {
            cpu,
            memory,
            instances: None,
            registry: None,
            volumes: None,
        }
    }

    #[test]
    fn quota_flags_apply_over_the_current_quota() {
        let current = QuotaDto {
            cpu_millis: Some(2000),
            memory_bytes: Some(1 << 30),
            instances: Some(10),
            registry_bytes: None,
            volume_bytes: Some(20 << 30),
        };
        let cases = [
            (args(None, None), current),
            (
                args(Some(Limit::Value(4000)), None),
                QuotaDto {
                    cpu_millis: Some(4000),
                    ..current
                },
            ),
            (
                args(None, Some(Limit::Unlimited)),
                QuotaDto {
                    memory_bytes: None,
                    ..current
                },
            ),
        ];
        for (flags, want) in cases {
            assert_eq!(flags.apply(current), want, "{flags:?}");
        }
    }

    #[test]
    fn requests_ask_for_numbers() {
        assert!(args(None, None).requested().is_err());
        assert!(args(Some(Limit::Unlimited), None).requested().is_err());
        assert_eq!(
            args(Some(Limit::Value(500)), None).requested(),
            Ok(QuotaDto {
                cpu_millis: Some(500),
                ..QuotaDto::default()
            })
        );
    }

    #[test]
    fn changes_read_plainly() {
        let current = QuotaDto {
            cpu_millis: Some(2000),
            instances: None,
            ..QuotaDto::default()
        };
        let requested = QuotaDto {
            cpu_millis: Some(4500),
            instances: Some(20),
            memory_bytes: None,
            registry_bytes: Some(10 << 30),
            volume_bytes: None,
        };
        assert_eq!(
            describe_change(&current, &requested),
            "cpu 2 → 4.5, instances unlimited → 20, registry unlimited → 10Gi"
        );
        assert_eq!(
            describe_limits(&requested),
            "cpu 4.5, instances 20, registry 10Gi"
        );
    }
}
