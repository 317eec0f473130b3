//! Reads the test app's behaviour switches from environment variables.

use std::time::Duration;

use crate::routes::Info;

/// Everything the environment can ask of the test app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `PORT`, default 8080.
    pub port: u16,
    /// `STARTUP_DELAY_MS`: wait before binding the port.
    pub startup_delay: Duration,
    /// `FAIL_HEALTH=1`: `/healthz` answers 500 from the start.
    pub fail_health: bool,
    /// `CRASH_AFTER_MS`: exit(3) this long after start.
    pub crash_after: Option<Duration>,
    /// `EXIT_IMMEDIATELY=CODE`: exit with CODE at once.
    pub exit_immediately: Option<i32>,
    /// `BURN_CPU_MILLICORES`: burn this much CPU for the whole run.
    pub burn_millicores: u32,
    /// `QUIET=1`: no log line per request (benchmarks of what is in front of the app, which
    /// must not measure the engine's log copying).
    pub quiet: bool,
    /// `CALL_ADDRESS` (`host:port`): call `GET /` there on a new connection every
    /// `CALL_EVERY_MS` (default 1000), as an app calling another one does.
    pub call: Option<(String, Duration)>,
    /// `BERTH_APP`, `BERTH_INSTANCE`, `BERTH_REVISION`, `VERSION`, `FAIL_REQUESTS`; hostname is
    /// filled in by main.
    pub info: Info,
}

/// Reads `name` through `get`, treating an empty value as unset.
fn non_empty(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<T>, String> {
    match non_empty(get, name) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a valid number")),
    }
}

fn flag(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool, String> {
    match non_empty(get, name)
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(v) => Err(format!("{name}={v:?} is not a boolean (use 1 or 0)")),
    }
}

impl Config {
    /// Builds the configuration from a variable lookup (`std::env::var` in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let text = |name| non_empty(&get, name).unwrap_or_default();
        Ok(Config {
            port: number(&get, "PORT")?.unwrap_or(8080),
            startup_delay: Duration::from_millis(number(&get, "STARTUP_DELAY_MS")?.unwrap_or(0)),
            fail_health: flag(&get, "FAIL_HEALTH")?,
            crash_after: number(&get, "CRASH_AFTER_MS")?.map(Duration::from_millis),
            exit_immediately: number(&get, "EXIT_IMMEDIATELY")?,
            burn_millicores: number(&get, "BURN_CPU_MILLICORES")?.unwrap_or(0),
            quiet: flag(&get, "QUIET")?,
            call: match non_empty(&get, "CALL_ADDRESS") {
                None => None,
                Some(address) => Some((
                    address,
                    Duration::from_millis(number(&get, "CALL_EVERY_MS")?.unwrap_or(1000)),
                )),
            },
            info: Info {
                app: text("BERTH_APP"),
                instance: text("BERTH_INSTANCE"),
                revision: text("BERTH_REVISION"),
                hostname: String::new(),
                version: text("VERSION"),
                fail_requests: flag(&get, "FAIL_REQUESTS")?,
                approved_domains: text("APPROVED_DOMAINS")
                    .split(',')
                    .map(|domain| domain.trim().to_ascii_lowercase())
                    .filter(|domain| !domain.is_empty())
                    .collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.startup_delay, Duration::ZERO);
        assert!(!c.fail_health);
        assert_eq!(c.crash_after, None);
        assert_eq!(c.exit_immediately, None);
        assert_eq!(c.burn_millicores, 0);
        assert!(!c.quiet);
        assert_eq!(c.call, None);
        assert_eq!(c.info, Info::default());
    }

    #[test]
    fn values() {
        let c = parse(&[
            ("PORT", "9090"),
            ("STARTUP_DELAY_MS", "1500"),
            ("FAIL_HEALTH", "1"),
            ("CRASH_AFTER_MS", " 200 "),
            ("EXIT_IMMEDIATELY", "42"),
            ("BURN_CPU_MILLICORES", "250"),
            ("QUIET", "1"),
            ("CALL_ADDRESS", "back:8080"),
            ("CALL_EVERY_MS", "250"),
            ("BERTH_APP", "web"),
            ("BERTH_INSTANCE", "web-3"),
            ("BERTH_REVISION", "12"),
            ("VERSION", "v2"),
        ])
        .unwrap();
        assert_eq!(c.port, 9090);
        assert_eq!(c.startup_delay, Duration::from_millis(1500));
        assert!(c.fail_health);
        assert_eq!(c.crash_after, Some(Duration::from_millis(200)));
        assert_eq!(c.exit_immediately, Some(42));
        assert_eq!(c.burn_millicores, 250);
        assert!(c.quiet);
        assert_eq!(
            c.call,
            Some(("back:8080".to_string(), Duration::from_millis(250)))
        );
        assert_eq!(c.info.app, "web");
        assert_eq!(c.info.instance, "web-3");
        assert_eq!(c.info.revision, "12");
        assert_eq!(c.info.version, "v2");
    }

    #[test]
    fn flags_and_empty_values() {
        let cases = [
            ("1", Some(true)),
            ("true", Some(true)),
            ("YES", Some(true)),
            ("0", Some(false)),
            ("false", Some(false)),
            ("", Some(false)),
            ("maybe", None),
        ];
        for (value, want) in cases {
            let got = parse(&[("FAIL_HEALTH", value)]).map(|c| c.fail_health).ok();
            assert_eq!(got, want, "FAIL_HEALTH={value:?}");
        }
        assert_eq!(parse(&[("PORT", "")]).unwrap().port, 8080);
    }

    #[test]
    fn rejects_bad_numbers() {
        for (name, value) in [
            ("PORT", "70000"),
            ("PORT", "http"),
            ("STARTUP_DELAY_MS", "-5"),
            ("CRASH_AFTER_MS", "1s"),
            ("EXIT_IMMEDIATELY", "x"),
            ("BURN_CPU_MILLICORES", "1.5"),
        ] {
            let err = parse(&[(name, value)]).expect_err(name);
            assert!(err.contains(name), "{err}");
        }
    }
}
