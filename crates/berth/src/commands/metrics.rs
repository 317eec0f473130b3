//! `berth metrics`: the metrics history of an app (its series and its instances'), a node or
//! a team, one line per series — latest, min, mean, max and a sparkline over the range.

use std::process::ExitCode;

use berth_api::metrics_history::{MetricsDto, SeriesDto};
use clap::Args;

use super::segment;
use crate::client::Client;
use crate::output::{self, Format};
use crate::units::{format_cpu, format_size};

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// The app (or, with --node / --team, the node or team)
    name: String,
    /// NAME is a node
    #[arg(long, conflicts_with = "team")]
    node: bool,
    /// NAME is a team: its totals
    #[arg(long)]
    team: bool,
    /// How far back: 5m, 1h, 1d, 30d
    #[arg(long, default_value = "1h")]
    since: String,
    /// One point per step (a multiple of the tier's step), e.g. 1m [default: the tier's]
    #[arg(long)]
    step: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    output: Format,
}

/// The blocks of a sparkline, lowest first.
const SPARKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// At most this many characters of sparkline.
const SPARK_WIDTH: usize = 24;

pub async fn run(client: &Client, args: MetricsArgs) -> Result<ExitCode, String> {
    let kind = if args.node {
        "nodes"
    } else if args.team {
        "teams"
    } else {
        "apps"
    };
    let mut path = format!(
        "/{kind}/{}/metrics?from=-{}",
        segment(&args.name),
        segment(args.since.trim_start_matches('-'))
    );
    if let Some(step) = &args.step {
        path.push_str(&format!("&step={}", segment(step)));
    }
    let answer: MetricsDto = client.get(&path).await?;
    output::one(args.output, &answer, |answer| {
        let rows: Vec<Vec<String>> = answer.series.iter().map(row).collect();
        println!(
            "{}",
            output::table(
                &[
                    "SERIES",
                    "LATEST",
                    "MIN",
                    "MEAN",
                    "MAX",
                    "POINTS",
                    "OVER TIME"
                ],
                &rows
            )
        );
        println!(
            "{} points of {} s",
            answer.series.iter().map(|s| s.points.len()).sum::<usize>(),
            answer.step_ms / 1000
        );
    });
    Ok(ExitCode::SUCCESS)
}

fn row(series: &SeriesDto) -> Vec<String> {
    let label = match (series.scope.as_str(), &series.name) {
        ("instance", Some(name)) => format!("{} {name}", series.metric),
        _ => series.metric.clone(),
    };
    let means: Vec<f64> = series.points.iter().map(|p| p.mean).collect();
    let min = series.points.iter().map(|p| p.min).reduce(f64::min);
    let max = series.points.iter().map(|p| p.max).reduce(f64::max);
    let samples: u64 = series.points.iter().map(|p| p.samples).sum();
    let mean = (samples > 0).then(|| {
        series
            .points
            .iter()
            .map(|p| p.mean * p.samples as f64)
            .sum::<f64>()
            / samples as f64
    });
    let say = |v: Option<f64>| v.map_or("-".to_string(), |v| format_value(&series.metric, v));
    vec![
        label,
        say(means.last().copied()),
        say(min),
        say(mean),
        say(max),
        series.points.len().to_string(),
        sparkline(&means),
    ]
}

/// A value in its metric's unit.
pub fn format_value(metric: &str, value: f64) -> String {
    match metric {
        "cpu_millis" => format_cpu(value.round().max(0.0) as u64),
        "memory_bytes" => format_size(value.round().max(0.0) as u64),
        "cpu_percent" | "disk_used_percent" | "error_percent" => format!("{value:.1}%"),
        "requests_per_second" => format!("{value:.1}/s"),
        "latency_p95_ms" => format!("{value:.0}ms"),
        _ => format!("{}", (value * 10.0).round() / 10.0),
    }
}

/// The values as at most [`SPARK_WIDTH`] blocks from the range's low to its high (each
/// block the mean of the values it covers).
pub fn sparkline(values: &[f64]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let per_block = values.len().div_ceil(SPARK_WIDTH);
    let blocks: Vec<f64> = values
        .chunks(per_block)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let low = blocks.iter().copied().fold(f64::INFINITY, f64::min);
    let high = blocks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    blocks
        .iter()
        .map(|v| {
            let share = if high > low {
                (v - low) / (high - low)
            } else {
                0.0
            };
            SPARKS[((share * (SPARKS.len() - 1) as f64).round() as usize).min(SPARKS.len() - 1)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_low_to_high() {
        for (values, want) in [
            (vec![], ""),
            (vec![5.0], "▁"),
            (vec![1.0, 1.0], "▁▁"),
            (vec![0.0, 50.0, 100.0], "▁▅█"),
            // 48 values: two per block.
            ((0..48).map(f64::from).collect(), "▁▁▂▂▂▃▃▃▃▄▄▄▅▅▅▆▆▆▆▇▇▇██"),
        ] {
            assert_eq!(sparkline(&values), want, "{values:?}");
        }
    }

    #[test]
    fn values_are_said_in_their_units() {
        for (metric, value, want) in [
            ("cpu_millis", 249.6, "250m"),
            ("memory_bytes", 64.0 * 1024.0 * 1024.0, "64Mi"),
            ("error_percent", 12.345, "12.3%"),
            ("requests_per_second", 3.0, "3.0/s"),
            ("latency_p95_ms", 9.5, "10ms"),
            ("ready_instances", 2.0, "2"),
        ] {
            assert_eq!(format_value(metric, value), want, "{metric}");
        }
    }
}
