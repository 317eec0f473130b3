//! Registry commands: search and inspect repositories and images, delete them, storage use,
//! garbage collection and retention. `list`, `show` and `delete` also work on an external
//! registry (`--registry NAME`, see `berth registries`).

use std::process::ExitCode;

use berth_api::image_dto::{
    GcReportDto, GcRequest, ImageDto, RepositoryDetailDto, RepositoryDto, RetentionReportDto,
    RetentionRequest, RetentionRuleDto, RetentionRuleRequest, StorageUsageDto,
};
use clap::Subcommand;

use super::{query, segment};
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::{megabytes, millis};

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// List (or search) repositories
    List {
        /// Only repositories whose name contains this
        #[arg(long)]
        search: Option<String>,
        /// An external registry (`berth registries list`) instead of the built-in one
        #[arg(long)]
        registry: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Show a repository's tags (team/app) or an image (team/app:tag, team/app@sha256:…)
    Show {
        reference: String,
        /// An external registry (`berth registries list`) instead of the built-in one
        #[arg(long)]
        registry: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Delete a tag (team/app:tag) or an image with all its tags (team/app@sha256:…)
    Delete {
        reference: String,
        /// An external registry (`berth registries list`) instead of the built-in one
        #[arg(long)]
        registry: Option<String>,
    },
    /// Storage used per team and repository
    Usage {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
    /// Garbage-collect: free the disk of blobs no image references
    Gc {
        /// Also delete manifests that no tag reaches
        #[arg(long)]
        untagged: bool,
    },
    /// Apply a retention policy to a repository now
    Retention {
        repository: String,
        /// Keep only the N most recently pushed tags
        #[arg(long)]
        keep: Option<usize>,
        /// Delete untagged manifests older than this, e.g. 7d
        #[arg(long)]
        untagged_older_than: Option<String>,
        /// Store the rule: it is applied before every garbage collection (instead of once now)
        #[arg(long, conflicts_with = "remove")]
        save: bool,
        /// Remove the repository's stored rule
        #[arg(long)]
        remove: bool,
    },
    /// List the stored retention rules
    Rules {
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

pub async fn run(client: &Client, command: ImagesCommand) -> Result<ExitCode, String> {
    match command {
        ImagesCommand::List {
            search,
            registry,
            output,
        } => {
            let path = query(&images_path(registry.as_deref()), &[("search", search)]);
            let repositories: Vec<RepositoryDto> = client.get(&path).await?;
            output::list(
                output,
                &repositories,
                &["REPOSITORY", "TAGS", "SIZE", "LAST PUSHED"],
                |r| {
                    vec![
                        r.name.clone(),
                        r.tag_count.to_string(),
                        megabytes(r.size_bytes),
                        r.last_pushed.clone().unwrap_or_default(),
                    ]
                },
            );
        }
        ImagesCommand::Show {
            reference,
            registry,
            output,
        } => {
            let path = format!("{}/{reference}", images_path(registry.as_deref()));
            let value: serde_json::Value = client.get(&path).await?;
            if output == Format::Json {
                output::json(&value);
            } else if value.get("tags").is_some_and(|t| t.is_array())
                && value.get("digest").is_none()
            {
                let repository: RepositoryDetailDto =
                    serde_json::from_value(value).map_err(|e| format!("unexpected answer: {e}"))?;
                println!(
                    "repository: {} ({})\n",
                    repository.name,
                    megabytes(repository.size_bytes)
                );
                let rows: Vec<Vec<String>> = repository
                    .tags
                    .iter()
                    .map(|t| {
                        vec![
                            t.tag.clone(),
                            t.digest.clone(),
                            megabytes(t.size_bytes),
                            t.created.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["TAG", "DIGEST", "SIZE", "CREATED"], &rows)
                );
            } else {
                let image: ImageDto =
                    serde_json::from_value(value).map_err(|e| format!("unexpected answer: {e}"))?;
                print_image(&image);
            }
        }
        ImagesCommand::Delete {
            reference,
            registry,
        } => {
            let path = format!("{}/{reference}", images_path(registry.as_deref()));
            client.delete(&path).await?;
            match registry {
                None => println!("deleted {reference}; run `berth images gc` to free the disk now"),
                // The external registry frees its disk with its own garbage collection.
                Some(registry) => println!("deleted {reference} from registry {registry}"),
            }
        }
        ImagesCommand::Usage { output } => {
            let usage: StorageUsageDto = client.get("/registry/usage").await?;
            output::one(output, &usage, |usage| {
                println!(
                    "referenced: {}   on disk: {}\n",
                    megabytes(usage.total_bytes),
                    megabytes(usage.stored_bytes)
                );
                let rows: Vec<Vec<String>> = usage
                    .teams
                    .iter()
                    .map(|t| vec!["team".into(), t.name.clone(), megabytes(t.bytes)])
                    .chain(
                        usage
                            .repositories
                            .iter()
                            .map(|r| vec!["repository".into(), r.name.clone(), megabytes(r.bytes)]),
                    )
                    .collect();
                println!("{}", output::table(&["KIND", "NAME", "SIZE"], &rows));
            });
        }
        ImagesCommand::Gc { untagged } => {
            let report: GcReportDto = client
                .post(
                    "/registry/gc",
                    &GcRequest {
                        delete_untagged_manifests: Some(untagged),
                    },
                )
                .await?;
            println!(
                "freed {} in {} blobs ({} untagged manifests deleted, {} recent blobs spared) in {} ms",
                megabytes(report.bytes_freed),
                report.blobs_deleted,
                report.manifests_deleted,
                report.blobs_spared,
                report.duration_ms
            );
        }
        ImagesCommand::Retention {
            repository,
            keep,
            untagged_older_than,
            save,
            remove,
        } => {
            let older = millis("untagged-older-than", &untagged_older_than)?;
            if remove {
                client
                    .delete(&format!("/registry/retention-rules/{repository}"))
                    .await?;
                println!("retention rule of {repository} removed");
            } else if save {
                let request = RetentionRuleRequest {
                    keep_newest_tags: keep.map(|k| k.min(u32::MAX as usize) as u32),
                    delete_untagged_older_than_ms: older,
                };
                let rule: RetentionRuleDto = client
                    .put(&format!("/registry/retention-rules/{repository}"), &request)
                    .await?;
                println!(
                    "retention rule of {} saved; it runs before every garbage collection",
                    rule.repository
                );
            } else {
                let request = RetentionRequest {
                    repository,
                    keep_newest_tags: keep,
                    delete_untagged_older_than_ms: older,
                };
                let report: RetentionReportDto =
                    client.post("/registry/retention", &request).await?;
                println!(
                    "deleted {} tags ({}) and {} untagged manifests",
                    report.tags_deleted.len(),
                    report.tags_deleted.join(", "),
                    report.manifests_deleted.len()
                );
            }
        }
        ImagesCommand::Rules { output } => {
            let rules: Vec<RetentionRuleDto> = client.get("/registry/retention-rules").await?;
            output::list(
                output,
                &rules,
                &["REPOSITORY", "KEEP TAGS", "UNTAGGED OLDER THAN"],
                |r| {
                    vec![
                        r.repository.clone(),
                        r.keep_newest_tags.map_or("-".into(), |k| k.to_string()),
                        r.delete_untagged_older_than_ms.map_or("-".into(), |ms| {
                            humantime::format_duration(std::time::Duration::from_millis(ms))
                                .to_string()
                        }),
                    ]
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the images of the built-in registry (`None`) or of an external one live in the API.
fn images_path(registry: Option<&str>) -> String {
    match registry {
        None => "/images".to_string(),
        Some(name) => format!("/registries/{}/images", segment(name)),
    }
}

fn print_image(image: &ImageDto) {
    println!("image:      {}@{}", image.repository, image.digest);
    println!("tags:       {}", image.tags.join(", "));
    println!("media type: {}", image.media_type);
    println!("size:       {}", megabytes(image.size_bytes));
    println!(
        "pushed:     {}",
        image.pushed_at.as_deref().unwrap_or("unknown")
    );
    for platform in &image.platforms {
        println!(
            "platform:   {}/{} {}",
            platform.os, platform.architecture, platform.digest
        );
    }
    if let Some(config) = &image.config {
        println!("created:    {}", config.created.clone().unwrap_or_default());
        println!(
            "platform:   {}/{}",
            config.os.clone().unwrap_or_default(),
            config.architecture.clone().unwrap_or_default()
        );
        println!(
            "entrypoint: {:?}",
            config.entrypoint.clone().unwrap_or_default()
        );
        println!("cmd:        {:?}", config.cmd.clone().unwrap_or_default());
        println!("ports:      {}", config.exposed_ports.join(", "));
        for env in &config.env {
            println!("env:        {env}");
        }
        for (key, value) in &config.labels {
            println!("label:      {key}={value}");
        }
    }
    println!();
    let rows: Vec<Vec<String>> = image
        .layers
        .iter()
        .map(|l| vec![l.digest.clone(), megabytes(l.size), l.media_type.clone()])
        .collect();
    println!("{}", output::table(&["LAYER", "SIZE", "MEDIA TYPE"], &rows));
    if let Some(config) = &image.config
        && !config.history.is_empty()
    {
        println!();
        let rows: Vec<Vec<String>> = config
            .history
            .iter()
            .map(|h| {
                vec![
                    h.created.clone().unwrap_or_default(),
                    h.created_by.clone().unwrap_or_default(),
                ]
            })
            .collect();
        println!("{}", output::table(&["CREATED", "CREATED BY"], &rows));
    }
}
