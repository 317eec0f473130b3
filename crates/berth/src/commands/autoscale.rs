//! `berth autoscale`: set an app's autoscaling range and target (CPU, requests in flight or
//! requests per second), turn it off, show it, and explain its latest decisions with their
//! numbers.

use std::process::ExitCode;

use berth_api::autoscale::{AutoscaleRequest, AutoscaleView};
use berth_core::idle::describe_timeout;
use clap::{Args, Subcommand};

use crate::client::Client;
use crate::output::{self, Format};
use crate::units;

/// Autoscaling of an app: `berth autoscale web --min 2 --max 10 --cpu 60%` (or
/// `--concurrency 10`, `--rps 50`), `--off`, or `berth autoscale explain web`.
///
/// Every 5 s Berth samples each instance's CPU, averages the window (1 minute by default) and
/// sets desired instances = ceil(sum of CPU utilisation / target), within the range and the
/// team's quota. Utilisation is measured against the app's CPU limit, so the app needs one.
/// With `--concurrency` or `--rps` the load is what the router counted instead (requests in
/// flight, or per second, per instance), and a burst over the short panic window adds
/// instances at once. While autoscaling is on, `berth scale` is refused: change the range
/// instead.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AutoscaleArgs {
    #[command(subcommand)]
    command: Option<AutoscaleCommand>,
    #[command(flatten)]
    set: SetArgs,
}

#[derive(Debug, Subcommand)]
enum AutoscaleCommand {
    /// Show the setting, the latest evaluations and the recorded decisions with their numbers
    Explain {
        name: String,
        #[arg(short, long, value_enum, default_value = "table")]
        output: Format,
    },
}

#[derive(Debug, Args)]
struct SetArgs {
    /// The app (without other options: show its setting)
    #[arg(required = true)]
    name: Option<String>,
    /// Fewest instances
    #[arg(long)]
    min: Option<u32>,
    /// Most instances
    #[arg(long)]
    max: Option<u32>,
    /// Scale on CPU: target use per instance, percent of its CPU limit [default: 100%, the limit]
    #[arg(long, value_parser = units::parse_percent, conflicts_with_all = ["concurrency", "rps"])]
    cpu: Option<u32>,
    /// Scale on requests in flight: the target per instance (as the router counts them)
    #[arg(long, conflicts_with = "rps")]
    concurrency: Option<u32>,
    /// Scale on requests per second: the target per instance (as the router counts them)
    #[arg(long)]
    rps: Option<u32>,
    /// With --concurrency or --rps: the short window whose burst adds instances at once, e.g. 6s [default: 6s]
    #[arg(long)]
    panic_window: Option<String>,
    /// With --concurrency or --rps: a burst that asks for this share of the ready instances starts a panic [default: 200%]
    #[arg(long, value_parser = units::parse_percent)]
    panic_threshold: Option<u32>,
    /// How far back CPU use is averaged, e.g. 15s [default: 1m]
    #[arg(long)]
    window: Option<String>,
    /// Usage within this share of the target changes nothing [default: 10%]
    #[arg(long, value_parser = units::parse_percent)]
    tolerance: Option<u32>,
    /// Scale down only to the highest recommendation of this long, e.g. 2m [default: 5m]
    #[arg(long)]
    scale_down_delay: Option<String>,
    /// Turn autoscaling off (the count stays where it is)
    #[arg(long, conflicts_with_all = ["min", "max", "cpu", "concurrency", "rps", "window", "tolerance", "scale_down_delay", "panic_window", "panic_threshold"])]
    off: bool,
}

/// Whole seconds of a duration flag.
fn seconds(flag: &str, value: &Option<String>) -> Result<Option<u32>, String> {
    value
        .as_deref()
        .map(|text| {
            let duration = units::parse_duration(text).map_err(|e| format!("{flag}: {e}"))?;
            u32::try_from(duration.as_secs()).map_err(|_| format!("{flag}: is too long"))
        })
        .transpose()
}

pub async fn run(client: &Client, args: AutoscaleArgs) -> Result<ExitCode, String> {
    if let Some(AutoscaleCommand::Explain { name, output }) = args.command {
        let view: AutoscaleView = client.get(&format!("/apps/{name}/autoscale")).await?;
        output::one(output, &view, explain);
        return Ok(ExitCode::SUCCESS);
    }
    let set = args.set;
    let name = set.name.ok_or("give the app's name")?;
    let path = format!("/apps/{name}/autoscale");
    if set.off {
        client.delete(&path).await?;
        println!("app {name}: autoscaling off; the instance count stays where it is");
        return Ok(ExitCode::SUCCESS);
    }
    let current: AutoscaleView = client.get(&path).await?;
    let changing = set.min.is_some()
        || set.max.is_some()
        || set.cpu.is_some()
        || set.concurrency.is_some()
        || set.rps.is_some()
        || set.panic_window.is_some()
        || set.panic_threshold.is_some()
        || set.window.is_some()
        || set.tolerance.is_some()
        || set.scale_down_delay.is_some();
    if !changing {
        print_setting(&current);
        return Ok(ExitCode::SUCCESS);
    }
    // Flags left out keep the app's current setting, or take the defaults.
    let existing = current.autoscale.as_ref();
    let (Some(min_instances), Some(max_instances)) = (
        set.min.or(existing.map(|a| a.min_instances)),
        set.max.or(existing.map(|a| a.max_instances)),
    ) else {
        return Err(format!(
            "app {name} is not autoscaled yet: give both --min and --max"
        ));
    };
    // The metric named by a flag, or the app's current one.
    let (metric, target) = match (set.cpu, set.concurrency, set.rps) {
        (Some(_), _, _) => ("cpu".to_string(), None),
        (_, Some(target), _) => ("concurrency".to_string(), Some(target)),
        (_, _, Some(target)) => ("rps".to_string(), Some(target)),
        _ => match existing {
            Some(a) => (a.metric.clone(), (a.metric != "cpu").then_some(a.target)),
            None => ("cpu".to_string(), None),
        },
    };
    let on_requests = metric != "cpu";
    let same_metric = existing.filter(|a| a.metric == metric);
    let request = AutoscaleRequest {
        min_instances,
        max_instances,
        cpu_percent: if on_requests {
            None
        } else {
            set.cpu.or(same_metric.map(|a| a.cpu_percent))
        },
        target,
        panic_window_seconds: seconds("--panic-window", &set.panic_window)?.or(same_metric
            .filter(|_| on_requests)
            .map(|a| a.panic_window_seconds)),
        panic_threshold_percent: set.panic_threshold.or(same_metric
            .filter(|_| on_requests)
            .map(|a| a.panic_threshold_percent)),
        metric: Some(metric),
        window_seconds: seconds("--window", &set.window)?.or(existing.map(|a| a.window_seconds)),
        tolerance_percent: set.tolerance.or(existing.map(|a| a.tolerance_percent)),
        scale_down_stabilization_seconds: seconds("--scale-down-delay", &set.scale_down_delay)?
            .or(existing.map(|a| a.scale_down_stabilization_seconds)),
    };
    let view: AutoscaleView = client.put(&path, &request).await?;
    print_setting(&view);
    Ok(ExitCode::SUCCESS)
}

fn print_setting(view: &AutoscaleView) {
    let Some(settings) = &view.autoscale else {
        println!(
            "app {}: not autoscaled ({} instances)",
            view.app, view.replicas
        );
        return;
    };
    let limit = view
        .cpu_limit_millis
        .map_or_else(|| "none".to_string(), units::format_cpu);
    println!(
        "app {}: autoscaled between {} and {} instances (now {})",
        view.app, settings.min_instances, settings.max_instances, view.replicas
    );
    let target = match settings.metric.as_str() {
        "concurrency" => format!("{} requests in flight", settings.target),
        "rps" => format!("{} requests per second", settings.target),
        _ => format!("{} % of the CPU limit ({limit})", settings.cpu_percent),
    };
    println!(
        "  target {target} per instance, averaged over {}",
        describe_timeout(settings.window_seconds)
    );
    if settings.metric != "cpu" {
        println!(
            "  panic when the last {} asks for {} % of the ready instances: add them at once, \
             remove none for {}",
            describe_timeout(settings.panic_window_seconds),
            settings.panic_threshold_percent,
            describe_timeout(settings.window_seconds)
        );
    }
    println!(
        "  tolerance {} %, scale down after {} of lower recommendations",
        settings.tolerance_percent,
        describe_timeout(settings.scale_down_stabilization_seconds)
    );
}

/// A load in its metric's unit.
fn amount(metric: &str, value: f64, of_cpu_limit: &str) -> String {
    match metric {
        "concurrency" => format!("{value:.2} in flight"),
        "rps" => format!("{value:.2} req/s"),
        _ => format!("{value:.1} %{of_cpu_limit}"),
    }
}

fn explain(view: &AutoscaleView) {
    print_setting(view);
    if let Some(latest) = view.evaluations.first() {
        println!();
        println!("latest evaluation ({}):", latest.at);
        println!(
            "{}",
            output::fields(&[
                ("instances", latest.current.to_string()),
                (
                    "sampled",
                    format!(
                        "{} ready ({} without samples, {} not ready)",
                        latest.sampled, latest.missing, latest.not_ready
                    )
                ),
                ("metric", latest.metric.clone()),
                ("sum", amount(&latest.metric, latest.sum, " of the limit")),
                ("target", amount(&latest.metric, latest.target, "")),
                (
                    "burst",
                    match (latest.burst, latest.burst_raw) {
                        (Some(burst), Some(raw)) => format!(
                            "{} → {raw}{}",
                            amount(&latest.metric, burst, ""),
                            if latest.panic { " (panic)" } else { "" }
                        ),
                        _ => "-".to_string(),
                    }
                ),
                (
                    "formula",
                    latest.raw.map_or_else(
                        || "no samples yet".to_string(),
                        |raw| format!("ceil(sum / target) = {raw}"),
                    )
                ),
                (
                    "decision",
                    format!("{} ({})", latest.desired, latest.verdict)
                ),
            ])
        );
        if let Some(quota) = &latest.quota {
            println!("  quota: {quota}");
        }
    }
    if view.decisions.is_empty() {
        println!("\nno decision recorded yet");
        return;
    }
    println!("\ndecisions (newest first):");
    for event in &view.decisions {
        println!("  {}  {}", event.at, event.message);
    }
}
