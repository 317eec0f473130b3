//! The readiness and liveness probe flags of `apps create` and `deploy` (`--ready-…`,
//! `--live-…`), read into the API's probe settings, and how `apps show` prints a probe.

use berth_api::dto::{ProbeDto, ProbeKindDto};
use clap::Args;

use crate::units::millis;

/// Declares the flags of one probe; readiness and liveness have the same ones under their own
/// prefix (clap names a flag after its field, so each set needs its own field names), except
/// the success threshold: one passed liveness probe is enough.
macro_rules! probe_flags {
    (
        $name:ident, $role:literal, $prefix:literal, $heading:literal, $effect:literal,
        $path:ident, $tcp:ident, $port:ident, $period:ident, $timeout:ident,
        $failures:ident, $delay:ident, $off:ident $(, successes: $successes:ident)?
    ) => {
        #[derive(Debug, Args, Default)]
        pub struct $name {
            #[arg(long, help_heading = $heading, value_name = "PATH", help = concat!("HTTP ", $role, " probe: GET this path (e.g. /healthz); a 2xx or 3xx status passes"))]
            $path: Option<String>,
            #[arg(long, help_heading = $heading, conflicts_with = stringify!($path), help = concat!("TCP ", $role, " probe: a connection to the port passes (for services that do not speak HTTP)"))]
            $tcp: bool,
            #[arg(long, help_heading = $heading, value_name = "PORT", help = concat!("Port the ", $role, " probe talks to [default: the app's port]"))]
            $port: Option<u16>,
            #[arg(long, help_heading = $heading, value_name = "DURATION", help = concat!("Time between two ", $role, " probes, e.g. 2s [default: 1s]"))]
            $period: Option<String>,
            #[arg(long, help_heading = $heading, value_name = "DURATION", help = concat!("A ", $role, " probe taking longer fails, e.g. 500ms; at most the period [default: 1s or the period]"))]
            $timeout: Option<String>,
            #[arg(long, help_heading = $heading, value_name = "N", help = concat!("Consecutive failed ", $role, " probes that ", $effect, " [default: 3]"))]
            $failures: Option<u32>,
            $(
            #[arg(long, help_heading = $heading, value_name = "N", help_heading = $heading, help = concat!("Consecutive passed ", $role, " probes that put the instance back in service [default: 1]"))]
            $successes: Option<u32>,
            )?
            #[arg(long, help_heading = $heading, value_name = "DURATION", help = concat!("Give an instance this long after it starts before ", $role, " probes count, e.g. 5s [default: 0s]"))]
            $delay: Option<String>,
            #[arg(long, help_heading = $heading, conflicts_with_all = [stringify!($path), stringify!($tcp), stringify!($port), stringify!($period), stringify!($timeout), stringify!($failures), stringify!($delay) $(, stringify!($successes))?], help = concat!("No ", $role, " probe"))]
            $off: bool,
        }

        impl $name {
            fn flags(self) -> ProbeFlags {
                ProbeFlags {
                    prefix: $prefix,
                    path: self.$path,
                    tcp: self.$tcp,
                    port: self.$port,
                    period: self.$period,
                    timeout: self.$timeout,
                    failures: self.$failures,
                    successes: None $(.or(self.$successes))?,
                    delay: self.$delay,
                    off: self.$off,
                }
            }

            /// The probe to send: `None` keeps the app's, `Some(None)` removes it. `base` is
            /// the probe the flags change (the app's current one, or what `--health-path`
            /// sets); given flags on top of it.
            pub fn change(self, base: Option<ProbeDto>) -> Result<Option<Option<ProbeDto>>, String> {
                self.flags().change(base)
            }
        }
    };
}

probe_flags!(
    ReadyArgs,
    "readiness",
    "ready",
    "Readiness probe",
    "take the instance out of service",
    ready_path,
    ready_tcp,
    ready_port,
    ready_period,
    ready_timeout,
    ready_failures,
    ready_delay,
    no_ready,
    successes: ready_successes
);

probe_flags!(
    LiveArgs,
    "liveness",
    "live",
    "Liveness probe",
    "get the instance replaced",
    live_path,
    live_tcp,
    live_port,
    live_period,
    live_timeout,
    live_failures,
    live_delay,
    no_live
);

/// One probe's flags, whichever probe they are for.
struct ProbeFlags {
    /// The flags' prefix: `ready` or `live`.
    prefix: &'static str,
    path: Option<String>,
    tcp: bool,
    port: Option<u16>,
    period: Option<String>,
    timeout: Option<String>,
    failures: Option<u32>,
    successes: Option<u32>,
    delay: Option<String>,
    off: bool,
}

impl ProbeFlags {
    fn change(self, base: Option<ProbeDto>) -> Result<Option<Option<ProbeDto>>, String> {
        if self.off {
            return Ok(Some(None));
        }
        let flag = |name: &str| format!("{}-{name}", self.prefix);
        let kind = if self.tcp {
            Some(ProbeKindDto::Tcp)
        } else {
            self.path.as_ref().map(|_| ProbeKindDto::Http)
        };
        let given = ProbeDto {
            kind,
            path: self.path,
            port: self.port,
            period_ms: millis(&flag("period"), &self.period)?,
            timeout_ms: millis(&flag("timeout"), &self.timeout)?,
            failure_threshold: self.failures,
            success_threshold: self.successes,
            initial_delay_ms: millis(&flag("delay"), &self.delay)?,
        };
        if given == ProbeDto::default() {
            return Ok(None);
        }
        Ok(Some(Some(given.or(base.unwrap_or_default()))))
    }
}

/// Which of an app's probes a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Readiness,
    Liveness,
}

/// One line about a probe for `apps show`: `http /healthz :8080 every 1000ms …`, or `none`.
/// A liveness line has no success threshold: one passed probe is enough.
pub fn describe(probe: Option<&ProbeDto>, app_port: u16, role: Role) -> String {
    let Some(p) = probe else {
        return "none".to_string();
    };
    let what = match p.kind {
        Some(ProbeKindDto::Tcp) => "tcp".to_string(),
        _ => format!("http {}", p.path.as_deref().unwrap_or("/healthz")),
    };
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v}ms"));
    let count = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let successes = match role {
        Role::Readiness => format!(" successes {}", count(p.success_threshold)),
        Role::Liveness => String::new(),
    };
    format!(
        "{what} :{} every {} timeout {} failures {}{successes} delay {}",
        p.port.unwrap_or(app_port),
        ms(p.period_ms),
        ms(p.timeout_ms),
        count(p.failure_threshold),
        ms(p.initial_delay_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        ready: ReadyArgs,
        #[command(flatten)]
        live: LiveArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, String> {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_become_probe_settings() {
        let current = ProbeDto {
            kind: Some(ProbeKindDto::Http),
            path: Some("/up".into()),
            period_ms: Some(1_000),
            timeout_ms: Some(1_000),
            failure_threshold: Some(3),
            ..ProbeDto::default()
        };
        let cli = parse(&[
            "--ready-tcp",
            "--ready-port",
            "5432",
            "--ready-period",
            "2s",
            "--ready-timeout",
            "500ms",
            "--ready-failures",
            "4",
            "--ready-successes",
            "2",
            "--ready-delay",
            "5s",
            "--no-live",
        ])
        .unwrap();
        assert_eq!(
            cli.ready.change(Some(current.clone())).unwrap(),
            Some(Some(ProbeDto {
                kind: Some(ProbeKindDto::Tcp),
                path: Some("/up".into()),
                port: Some(5432),
                period_ms: Some(2_000),
                timeout_ms: Some(500),
                failure_threshold: Some(4),
                success_threshold: Some(2),
                initial_delay_ms: Some(5_000),
            }))
        );
        assert_eq!(cli.live.change(Some(current.clone())).unwrap(), Some(None));

        // No flag keeps the app's probe; one flag changes only its setting.
        let cli = parse(&["--live-timeout", "200ms"]).unwrap();
        assert_eq!(cli.ready.change(Some(current.clone())).unwrap(), None);
        assert_eq!(
            cli.live.change(Some(current.clone())).unwrap(),
            Some(Some(ProbeDto {
                timeout_ms: Some(200),
                ..current.clone()
            }))
        );
        // A path makes an HTTP probe again.
        let cli = parse(&["--live-path", "/alive"]).unwrap();
        let tcp = ProbeDto {
            kind: Some(ProbeKindDto::Tcp),
            ..current
        };
        let live = cli.live.change(Some(tcp)).unwrap().unwrap().unwrap();
        assert_eq!(
            (live.kind, live.path.as_deref()),
            (Some(ProbeKindDto::Http), Some("/alive"))
        );
    }

    #[test]
    fn bad_probe_flags_are_refused_naming_the_flag() {
        for (args, says) in [
            (&["--ready-period", "soon"][..], "--ready-period \"soon\""),
            (&["--live-delay", "5 parsecs"][..], "--live-delay"),
        ] {
            let cli = parse(args).unwrap();
            let error = cli
                .ready
                .change(None)
                .and(cli.live.change(None))
                .unwrap_err();
            assert!(error.contains(says), "{args:?}: {error}");
        }
        for (args, says) in [
            (&["--ready-tcp", "--ready-path", "/x"][..], "--ready-path"),
            (&["--no-live", "--live-period", "1s"][..], "--live-period"),
            (&["--ready-port", "70000"][..], "--ready-port"),
            (&["--live-failures", "lots"][..], "--live-failures"),
        ] {
            let error = parse(args).unwrap_err();
            assert!(error.contains(says), "{args:?}: {error}");
        }
    }

    #[test]
    fn probes_are_described() {
        assert_eq!(describe(None, 8080, Role::Readiness), "none");
        let probe = ProbeDto {
            kind: Some(ProbeKindDto::Tcp),
            period_ms: Some(2_000),
            timeout_ms: Some(500),
            failure_threshold: Some(3),
            success_threshold: Some(1),
            initial_delay_ms: Some(0),
            ..ProbeDto::default()
        };
        assert_eq!(
            describe(Some(&probe), 6379, Role::Readiness),
            "tcp :6379 every 2000ms timeout 500ms failures 3 successes 1 delay 0ms"
        );
        assert_eq!(
            describe(Some(&probe), 6379, Role::Liveness),
            "tcp :6379 every 2000ms timeout 500ms failures 3 delay 0ms"
        );
    }
}
