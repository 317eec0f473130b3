//! Maps a request to a response and a side effect, without performing it, so routing is testable.

use std::time::Duration;

use crate::http::Response;
use crate::json;

/// Longest `/slow` wait we accept.
const MAX_SLOW: Duration = Duration::from_secs(600);
/// Largest `/admin/burn` request we accept.
const MAX_BURN_MILLICORES: u32 = 64_000;
const MAX_BURN_SECONDS: f64 = 3600.0;

/// What the app reports about itself on `GET /`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    pub app: String,
    pub instance: String,
    pub revision: String,
    pub hostname: String,
    pub version: String,
    /// `FAIL_REQUESTS=1`: `/` answers 500 (with the same body) while `/healthz` passes — a
    /// revision that is healthy but broken, as a canary's verdict must catch.
    pub fail_requests: bool,
    /// `APPROVED_DOMAINS=a.test,b.test`: `GET /tls-ask?domain=<host>` answers 200 for these
    /// hosts and 403 for others (an on-demand TLS approval endpoint).
    pub approved_domains: Vec<String>,
}

/// A side effect the connection handler carries out around sending the response.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    /// Set the health flag before responding.
    SetHealthy(bool),
    /// Wait this long before responding.
    Sleep(Duration),
    /// Start burning CPU in the background.
    Burn {
        millicores: u32,
        duration: Duration,
    },
    /// Exit with code 3 shortly after the response is sent.
    Crash,
    /// Answer with the file's text (404 when it cannot be read) instead of the response.
    ReadFile(String),
    /// Write the text to the file (creating it) and answer 200, or 500 saying why not.
    WriteFile {
        path: String,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub response: Response,
    pub effect: Effect,
}

impl Outcome {
    fn respond(response: Response) -> Self {
        Outcome {
            response,
            effect: Effect::None,
        }
    }

    fn with(response: Response, effect: Effect) -> Self {
        Outcome { response, effect }
    }
}

/// First value of query parameter `name`.
fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Routes one request. `healthy` is the current health flag.
pub fn route(
    method: &str,
    path: &str,
    query: &[(String, String)],
    healthy: bool,
    info: &Info,
) -> Outcome {
    match (method, path) {
        // `…/whoami` answers as `/` does, so a test can tell which app a path prefix reached.
        ("GET", _) if path == "/" || path.ends_with("/whoami") => Outcome::respond(Response::json(
            if info.fail_requests { 500 } else { 200 },
            json::string_object(&[
                ("app", &info.app),
                ("instance", &info.instance),
                ("revision", &info.revision),
                ("hostname", &info.hostname),
                ("version", &info.version),
            ]),
        )),
        ("GET", "/healthz") => Outcome::respond(if healthy {
            Response::text(200, "ok")
        } else {
            Response::text(500, "failing")
        }),
        ("GET", "/env") => Outcome::respond(Response::json(200, env_json())),
        ("GET", "/tls-ask") => {
            Outcome::respond(match param(query, "domain").map(str::to_ascii_lowercase) {
                Some(domain) if info.approved_domains.contains(&domain) => {
                    Response::text(200, "approved")
                }
                _ => Response::text(403, "not approved"),
            })
        }
        ("GET" | "POST", "/admin/fail-health") => Outcome::with(
            Response::text(200, "health: failing"),
            Effect::SetHealthy(false),
        ),
        ("GET" | "POST", "/admin/pass-health") => {
            Outcome::with(Response::text(200, "health: ok"), Effect::SetHealthy(true))
        }
        ("POST", "/admin/crash") => Outcome::with(Response::text(200, "crashing"), Effect::Crash),
        ("POST", "/admin/burn") => burn(query),
        // Files inside the container (a volume's, a mounted secret's): `?path=` absolute.
        ("GET", "/files") | ("PUT" | "POST", "/files") => files(method, query),
        // POST too: a request a proxy must not retry, for tests of draining.
        ("GET" | "POST", "/slow") => slow(query),
        _ => Outcome::respond(Response::text(404, "not found")),
    }
}

/// `GET /files?path=/abs` reads a file, `PUT /files?path=/abs&text=…` writes one.
fn files(method: &str, query: &[(String, String)]) -> Outcome {
    let Some(path) = param(query, "path").filter(|p| p.starts_with('/')) else {
        return Outcome::respond(Response::text(400, "path must be an absolute path"));
    };
    let effect = if method == "GET" {
        Effect::ReadFile(path.to_string())
    } else {
        Effect::WriteFile {
            path: path.to_string(),
            text: param(query, "text").unwrap_or_default().to_string(),
        }
    };
    Outcome::with(Response::text(200, ""), effect)
}

fn burn(query: &[(String, String)]) -> Outcome {
    let millicores = match param(query, "millicores").map(str::parse::<u32>) {
        None => 1000,
        Some(Ok(m)) if m <= MAX_BURN_MILLICORES => m,
        Some(_) => {
            return Outcome::respond(Response::text(
                400,
                format!("millicores must be an integer from 0 to {MAX_BURN_MILLICORES}"),
            ));
        }
    };
    let seconds = match param(query, "seconds").map(str::parse::<f64>) {
        None => 10.0,
        Some(Ok(s)) if (0.0..=MAX_BURN_SECONDS).contains(&s) => s,
        Some(_) => {
            return Outcome::respond(Response::text(
                400,
                format!("seconds must be a number from 0 to {MAX_BURN_SECONDS}"),
            ));
        }
    };
    Outcome::with(
        Response::json(
            200,
            format!(r#"{{"millicores":{millicores},"seconds":{seconds}}}"#),
        ),
        Effect::Burn {
            millicores,
            duration: Duration::from_secs_f64(seconds),
        },
    )
}

fn slow(query: &[(String, String)]) -> Outcome {
    let ms = match param(query, "ms").map(str::parse::<u64>) {
        None => 1000,
        Some(Ok(ms)) if Duration::from_millis(ms) <= MAX_SLOW => ms,
        Some(_) => {
            return Outcome::respond(Response::text(
                400,
                format!("ms must be an integer from 0 to {}", MAX_SLOW.as_millis()),
            ));
        }
    };
    Outcome::with(
        Response::text(200, format!("slept {ms} ms")),
        Effect::Sleep(Duration::from_millis(ms)),
    )
}

/// All environment variables as a JSON object, sorted by name.
fn env_json() -> String {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    json::string_object(&vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::split_target;

    fn info() -> Info {
        Info {
            app: "demo".into(),
            instance: "demo-1".into(),
            revision: "7".into(),
            hostname: "box".into(),
            version: "v\"2".into(),
            fail_requests: false,
            approved_domains: Vec::new(),
        }
    }

    fn run(method: &str, target: &str, healthy: bool) -> Outcome {
        let (path, query) = split_target(target);
        route(method, &path, &query, healthy, &info())
    }

    #[test]
    fn a_failing_revision_answers_500_while_its_health_check_passes() {
        let broken = Info {
            fail_requests: true,
            ..info()
        };
        let status = |target: &str| {
            let (path, query) = split_target(target);
            route("GET", &path, &query, true, &broken).response.status
        };
        assert_eq!(status("/"), 500);
        let asking = Info {
            approved_domains: vec!["good.customer.test".into()],
            ..info()
        };
        let ask = |target: &str| {
            let (path, query) = split_target(target);
            route("GET", &path, &query, true, &asking).response.status
        };
        assert_eq!(ask("/tls-ask?domain=good.customer.test"), 200);
        assert_eq!(ask("/tls-ask?domain=Good.Customer.Test"), 200);
        assert_eq!(ask("/tls-ask?domain=bad.customer.test"), 403);
        assert_eq!(ask("/tls-ask"), 403);
        assert_eq!(status("/api/whoami"), 500);
        assert_eq!(status("/healthz"), 200);
    }

    #[test]
    fn routes_table() {
        struct Case {
            method: &'static str,
            target: &'static str,
            healthy: bool,
            status: u16,
            body: Option<&'static str>,
            effect: Effect,
        }
        let case = |method, target, healthy, status, body, effect| Case {
            method,
            target,
            healthy,
            status,
            body,
            effect,
        };
        let ms = Duration::from_millis;
        let cases = [
            case(
                "GET",
                "/",
                true,
                200,
                Some(
                    r#"{"app":"demo","instance":"demo-1","revision":"7","hostname":"box","version":"v\"2"}"#,
                ),
                Effect::None,
            ),
            case("GET", "/?x=1", false, 200, None, Effect::None),
            case(
                "GET",
                "/files?path=/data/a",
                true,
                200,
                None,
                Effect::ReadFile("/data/a".into()),
            ),
            case(
                "PUT",
                "/files?path=/data/a&text=hi%20there",
                true,
                200,
                None,
                Effect::WriteFile {
                    path: "/data/a".into(),
                    text: "hi there".into(),
                },
            ),
            case("GET", "/files?path=data/a", true, 400, None, Effect::None),
            case("GET", "/files", true, 400, None, Effect::None),
            case("GET", "/api/whoami", true, 200, None, Effect::None),
            case("GET", "/whoami", true, 200, None, Effect::None),
            case("POST", "/api/whoami", true, 404, None, Effect::None),
            case("GET", "/api/whoamix", true, 404, None, Effect::None),
            case("GET", "/healthz", true, 200, Some("ok"), Effect::None),
            case("GET", "/healthz", false, 500, Some("failing"), Effect::None),
            case(
                "GET",
                "/healthz?verbose",
                true,
                200,
                Some("ok"),
                Effect::None,
            ),
            case("POST", "/healthz", true, 404, None, Effect::None),
            case("GET", "/env", true, 200, None, Effect::None),
            case(
                "POST",
                "/admin/fail-health",
                true,
                200,
                None,
                Effect::SetHealthy(false),
            ),
            case(
                "GET",
                "/admin/fail-health",
                true,
                200,
                None,
                Effect::SetHealthy(false),
            ),
            case(
                "POST",
                "/admin/pass-health",
                false,
                200,
                None,
                Effect::SetHealthy(true),
            ),
            case(
                "GET",
                "/admin/pass-health",
                false,
                200,
                None,
                Effect::SetHealthy(true),
            ),
            case("POST", "/admin/crash", true, 200, None, Effect::Crash),
            case("GET", "/admin/crash", true, 404, None, Effect::None),
            case(
                "POST",
                "/admin/burn?millicores=500&seconds=2",
                true,
                200,
                Some(r#"{"millicores":500,"seconds":2}"#),
                Effect::Burn {
                    millicores: 500,
                    duration: ms(2000),
                },
            ),
            case(
                "POST",
                "/admin/burn?seconds=0.5",
                true,
                200,
                None,
                Effect::Burn {
                    millicores: 1000,
                    duration: ms(500),
                },
            ),
            case(
                "POST",
                "/admin/burn",
                true,
                200,
                None,
                Effect::Burn {
                    millicores: 1000,
                    duration: ms(10_000),
                },
            ),
            case(
                "POST",
                "/admin/burn?millicores=-1",
                true,
                400,
                None,
                Effect::None,
            ),
            case(
                "POST",
                "/admin/burn?millicores=999999",
                true,
                400,
                None,
                Effect::None,
            ),
            case(
                "POST",
                "/admin/burn?seconds=NaN",
                true,
                400,
                None,
                Effect::None,
            ),
            case(
                "POST",
                "/admin/burn?seconds=-1",
                true,
                400,
                None,
                Effect::None,
            ),
            case("GET", "/admin/burn", true, 404, None, Effect::None),
            case(
                "GET",
                "/slow?ms=25",
                true,
                200,
                Some("slept 25 ms"),
                Effect::Sleep(ms(25)),
            ),
            case("GET", "/slow?ms=0", true, 200, None, Effect::Sleep(ms(0))),
            case("GET", "/slow", true, 200, None, Effect::Sleep(ms(1000))),
            case(
                "POST",
                "/slow?ms=25",
                true,
                200,
                Some("slept 25 ms"),
                Effect::Sleep(ms(25)),
            ),
            case("GET", "/slow?ms=abc", true, 400, None, Effect::None),
            case("GET", "/slow?ms=999999999", true, 400, None, Effect::None),
            case("GET", "/nope", true, 404, Some("not found"), Effect::None),
            case("GET", "/healthz/", true, 404, None, Effect::None),
            case("DELETE", "/", true, 404, None, Effect::None),
        ];
        for c in cases {
            let out = run(c.method, c.target, c.healthy);
            let label = format!("{} {} healthy={}", c.method, c.target, c.healthy);
            assert_eq!(out.response.status, c.status, "{label}");
            assert_eq!(out.effect, c.effect, "{label}");
            if let Some(body) = c.body {
                assert_eq!(String::from_utf8_lossy(&out.response.body), body, "{label}");
            }
        }
    }

    #[test]
    fn env_is_a_json_object_with_path() {
        let out = run("GET", "/env", true);
        let body = String::from_utf8(out.response.body).unwrap();
        assert!(body.starts_with('{') && body.ends_with('}'), "{body}");
        assert_eq!(out.response.content_type, "application/json");
        if std::env::var_os("PATH").is_some() {
            assert!(body.contains(r#""PATH":"#), "{body}");
        }
    }
}
