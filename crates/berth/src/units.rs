//! Amounts on the command line: CPU (cores or millicores), sizes (bytes with a unit), durations,
//! quota limits, and their short human forms.

use std::time::Duration;

/// Parses a CPU amount into millicores: `1.5` cores or `500m` millicores.
pub fn parse_cpu(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let millis = match text.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => match text.parse::<f64>() {
            Ok(cores) if cores >= 0.0 && cores.is_finite() => Some((cores * 1000.0).round() as u64),
            _ => None,
        },
    };
    millis.ok_or_else(|| "expected cores (0.5) or millicores (500m)".to_string())
}

/// Parses a size into bytes: plain bytes, or with a decimal (k, M, G, T) or binary (Ki, Mi, Gi,
/// Ti) unit.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "b" | "B" => 1,
        "k" | "K" | "kB" | "KB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        "T" | "TB" => 1_000_000_000_000,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        _ => return Err("unknown unit (use bytes, k, M, G, T, Ki, Mi, Gi or Ti)".to_string()),
    };
    match number.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok((n * multiplier as f64).round() as u64),
        _ => Err("expected a number with an optional unit, e.g. 256Mi".to_string()),
    }
}

/// Parses a whole count (instances).
pub fn parse_count(text: &str) -> Result<u64, String> {
    text.trim()
        .parse()
        .map_err(|_| "expected a whole number".to_string())
}

/// Runs `parse` on a flag's value; an error names the flag and the value.
pub fn flag<T>(
    name: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    parse(text).map_err(|e| format!("--{name} {text:?}: {e}"))
}

/// Parses an optional duration flag (`500ms`, `30s`, `7d`) into milliseconds.
pub fn millis(name: &str, value: &Option<String>) -> Result<Option<u64>, String> {
    value
        .as_deref()
        .map(|text| {
            flag(name, text, |t| {
                humantime::parse_duration(t)
                    .map(|d| d.as_millis() as u64)
                    .map_err(|e| format!("not a duration such as 500ms or 30s ({e})"))
            })
        })
        .transpose()
}

/// Parses a duration such as `1h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("not a duration such as 30m, 1h or 7d ({e})"))
}

/// A percentage flag: `60%` or `60`, a whole number.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let number = text.trim().trim_end_matches('%').trim();
    number
        .parse::<u32>()
        .map_err(|_| format!("{text:?} is not a percentage such as 60%"))
}

/// An idle timeout flag: a duration in whole seconds (`15m`, `90s`), or `off` (sent as 0,
/// which removes it). The server checks the bounds.
pub fn parse_idle_timeout(text: &str) -> Result<u32, String> {
    if text.trim() == "off" {
        return Ok(0);
    }
    let duration = parse_duration(text).map_err(|e| format!("{e}, or `off`"))?;
    if duration.as_secs() == 0 || duration.subsec_nanos() != 0 {
        return Err("must be whole seconds, at least 1s (or `off`)".to_string());
    }
    u32::try_from(duration.as_secs()).map_err(|_| "is too long".to_string())
}

/// A quota limit given on the command line: a number, or `unlimited` to remove the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Value(u64),
}

impl Limit {
    /// The value sent to the server: `None` is unlimited.
    pub fn value(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Value(v) => Some(v),
        }
    }

    fn parse(text: &str, amount: fn(&str) -> Result<u64, String>) -> Result<Self, String> {
        match text.trim() {
            "unlimited" | "none" => Ok(Limit::Unlimited),
            other => amount(other)
                .map(Limit::Value)
                .map_err(|e| format!("{e}, or `unlimited`")),
        }
    }

    /// A CPU limit (`2`, `500m`, `unlimited`), for clap.
    pub fn cpu(text: &str) -> Result<Self, String> {
        Limit::parse(text, parse_cpu)
    }

    /// A size limit (`2Gi`, `unlimited`), for clap.
    pub fn size(text: &str) -> Result<Self, String> {
        Limit::parse(text, parse_size)
    }

    /// A count limit (`10`, `unlimited`), for clap.
    pub fn count(text: &str) -> Result<Self, String> {
        Limit::parse(text, parse_count)
    }
}

/// Millicores as a short text that [`parse_cpu`] reads back: `2`, `1.5`, `250m`.
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else if millis < 1000 {
        format!("{millis}m")
    } else {
        let text = format!("{}.{:03}", millis / 1000, millis % 1000);
        text.trim_end_matches('0').to_string()
    }
}

/// Bytes with the largest binary unit that fits: `512Mi`, `2Gi`, `1.5Gi`, `100B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{}{unit}", bytes / size)
            } else {
                let text = format!("{:.1}", bytes as f64 / size as f64);
                format!("{}{unit}", text.trim_end_matches(".0"))
            };
        }
    }
    format!("{bytes}B")
}

/// Bytes in decimal megabytes with one decimal, as the registry commands print them.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// `used` as a whole percentage of `limit`: `37%`; `-` without a limit.
pub fn percent(used: u64, limit: Option<u64>) -> String {
    match limit {
        None => "-".to_string(),
        Some(0) if used == 0 => "0%".to_string(),
        Some(0) => "over".to_string(),
        Some(limit) => format!("{}%", u128::from(used) * 100 / u128::from(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeouts_are_whole_seconds_or_off() {
        let cases: &[(&str, Result<u32, ()>)] = &[
            ("15m", Ok(900)),
            ("10s", Ok(10)),
            ("1h 30m", Ok(5400)),
            ("off", Ok(0)),
            ("500ms", Err(())),
            ("1500ms", Err(())),
            ("0s", Err(())),
            ("soon", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_idle_timeout(text).map_err(|_| ()), *want, "{text}");
        }
    }

    #[test]
    fn cpu_amounts() {
        let cases = [
            ("500m", Some(500)),
            ("0.5", Some(500)),
            ("1.5", Some(1500)),
            ("2", Some(2000)),
            ("0", Some(0)),
            (" 250m ", Some(250)),
            ("abc", None),
            ("-1", None),
            ("1.5m", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_cpu(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("256Mi", Some(256 << 20)),
            ("512Mi", Some(512 << 20)),
            ("2Gi", Some(2 << 30)),
            ("1G", Some(1_000_000_000)),
            ("100M", Some(100_000_000)),
            ("1024", Some(1024)),
            ("1.5Gi", Some(3 << 29)),
            ("1Ti", Some(1 << 40)),
            ("12x", None),
            ("Mi", None),
            ("-1", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn limits() {
        let cases: [(fn(&str) -> Result<Limit, String>, &str, Option<Limit>); 7] = [
            (Limit::cpu, "2", Some(Limit::Value(2000))),
            (Limit::cpu, "unlimited", Some(Limit::Unlimited)),
            (Limit::size, "2Gi", Some(Limit::Value(2 << 30))),
            (Limit::size, "none", Some(Limit::Unlimited)),
            (Limit::count, "10", Some(Limit::Value(10))),
            (Limit::count, "1.5", None),
            (Limit::size, "lots", None),
        ];
        for (parse, text, want) in cases {
            assert_eq!(parse(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn formats_read_back() {
        let cpus = [
            (2000, "2"),
            (1500, "1.5"),
            (1250, "1.25"),
            (250, "250m"),
            (0, "0"),
        ];
        for (millis, want) in cpus {
            assert_eq!(format_cpu(millis), want);
            assert_eq!(parse_cpu(want), Ok(millis), "{want}");
        }
        let sizes = [
            (512 << 20, "512Mi"),
            (2 << 30, "2Gi"),
            (3 << 29, "1.5Gi"),
            (1 << 40, "1Ti"),
            (100, "100B"),
            (0, "0B"),
        ];
        for (bytes, want) in sizes {
            assert_eq!(format_size(bytes), want);
            assert_eq!(parse_size(want), Ok(bytes), "{want}");
        }
        assert_eq!(format_size(1_000_000_000), "953.7Mi");
    }

    #[test]
    fn percentages() {
        let cases = [
            (3, Some(10), "30%"),
            (0, Some(10), "0%"),
            (12, Some(10), "120%"),
            (5, None, "-"),
            (0, Some(0), "0%"),
            (1, Some(0), "over"),
            (u64::MAX, Some(u64::MAX), "100%"),
        ];
        for (used, limit, want) in cases {
            assert_eq!(percent(used, limit), want, "{used}/{limit:?}");
        }
    }

    #[test]
    fn flag_errors_name_the_flag() {
        assert_eq!(
            flag("cpu", "abc", parse_cpu),
            Err::<u64, _>("--cpu \"abc\": expected cores (0.5) or millicores (500m)".into())
        );
        assert_eq!(millis("stop-grace", &Some("10s".into())), Ok(Some(10_000)));
        assert!(millis("stop-grace", &Some("soon".into())).is_err());
        assert_eq!(millis("stop-grace", &None), Ok(None));
    }
}
