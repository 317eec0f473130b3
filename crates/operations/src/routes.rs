//! App traffic routes: which host names reach which app and which instances serve them, from
//! the apps in the store and the controller's endpoint table. The router builds its table from
//! these and never reads the store itself; a stop waits for the router's requests in flight
//! ([`RouterDrain`]) after the controller took the instance out of the table.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_auth::SecretBox;
use berth_controller::workers::WorkerReport;
use berth_controller::{Drain, EndpointMap, Endpoints, TrafficSource};
use berth_core::canary::TrafficCount;
use berth_core::certificate::StoredCertificate;
use berth_core::{App, Millis, RolloutPhase};
use berth_router::{
    AccessLog, Backend, CanarySplit, CatchAll, CertificateSet, RouteDomain, RoutedApp, RouterStats,
    RoutingTable, ValidatedCertificate, validate_certificate,
};
use berth_store::{Store, StoreResult};
use tokio::sync::watch;

use crate::actor::Actor;
use crate::certificates::{app_hosts, system_time};
use crate::error::{OpError, OpResult};
use crate::idle::Wakes;

/// The host name every external app gets: `<app>.<team>.<apps-domain>` (with the default
/// `localhost`, `web.shop.localhost` resolves to this machine without DNS).
pub fn default_host(app: &App, apps_domain: &str) -> String {
    berth_core::routes::default_host(&app.name, &app.team, apps_domain)
}

/// Where an app is reached from outside: its default host and its custom domains; nothing for
/// an internal app.
pub fn app_domains(app: &App, apps_domain: &str) -> Vec<RouteDomain> {
    if app.routes.internal {
        return Vec::new();
    }
    std::iter::once(RouteDomain::host(default_host(app, apps_domain)))
        .chain(app.routes.domains.iter().map(|d| RouteDomain {
            host: d.host.clone(),
            path: d.path.clone(),
        }))
        .collect()
}

/// One way an app is reached from outside, as users see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAddress {
    pub host: String,
    /// `/` or a prefix like `/api`.
    pub path: String,
    /// Whether this is the default host (`<app>.<team>.<apps-domain>`).
    pub default: bool,
    /// `http://host[:port]/path` on the router's HTTP listener; `None` when the router is off
    /// and for a wildcard (no single name to link to).
    pub url: Option<String>,
}

/// Every address of an app, the default host first; none for an internal app. `http_port` is
/// the router's HTTP port (`None`: the router is off).
pub fn app_addresses(app: &App, apps_domain: &str, http_port: Option<u16>) -> Vec<AppAddress> {
    app_domains(app, apps_domain)
        .into_iter()
        .enumerate()
        .map(|(index, domain)| {
            let wildcard = domain.host.starts_with("*.");
            let url = http_port.filter(|_| !wildcard).map(|port| {
                let port = if port == 80 {
                    String::new()
                } else {
                    format!(":{port}")
                };
                let path = if domain.path == "/" {
                    "/"
                } else {
                    &domain.path
                };
                format!("http://{}{port}{path}", domain.host)
            });
            AppAddress {
                host: domain.host,
                path: domain.path,
                default: index == 0,
                url,
            }
        })
        .collect()
}

/// Why an app with no ready instance cannot answer, in a sentence for its 503 page;
/// `wake_refused` says why waking it (scaled to 0 when idle) was refused lately.
pub fn unavailable(app: &App, wake_refused: Option<&str>) -> String {
    let name = &app.name;
    if app.idled.is_some() {
        return match wake_refused {
            Some(why) => {
                format!("app {name} is scaled to 0 when idle and starting it was refused: {why}")
            }
            None => format!("app {name} was scaled to 0 when idle and is starting"),
        };
    }
    if app.replicas == 0 {
        return format!("app {name} is scaled to 0 instances");
    }
    match app.rollout.phase {
        RolloutPhase::Progressing => format!(
            "app {name} is rolling out revision {}: no instance is ready yet",
            app.rollout.revision
        ),
        RolloutPhase::RollingBack => format!(
            "app {name} is rolling back to revision {}: no instance is ready yet",
            app.rollout.revision
        ),
        RolloutPhase::Complete | RolloutPhase::Failed | RolloutPhase::RolledBack => format!(
            "app {name} has no ready instance: its instances are starting, failing their \
             readiness check or crash-looping"
        ),
    }
}

/// What the control plane knows of an app beyond its row, for its route.
#[derive(Debug, Clone, Copy, Default)]
pub struct Standing<'a> {
    /// Its crashed instances wait out a crash-loop back-off.
    pub backing_off: bool,
    /// Why waking it (scaled to 0 when idle) was refused lately.
    pub wake_refused: Option<&'a str>,
}

/// Whether the router holds the app's requests while it has no ready instance (rather than
/// answering its 503 page at once): it wants instances, so one is being brought up, and it is
/// not waiting out a crash-loop back-off — or it was scaled to 0 when idle and the request
/// wakes it (unless waking it was just refused).
pub fn holds_requests(app: &App, standing: Standing<'_>) -> bool {
    if app.idled.is_some() {
        return standing.wake_refused.is_none();
    }
    app.replicas > 0 && !standing.backing_off
}

/// The routes of `app` given its ready endpoints and its standing.
pub fn routed_app(
    app: &App,
    endpoints: &EndpointMap,
    apps_domain: &str,
    standing: Standing<'_>,
) -> RoutedApp {
    RoutedApp {
        app: app.name.clone(),
        team: app.team.clone(),
        domains: app_domains(app, apps_domain),
        backends: endpoints
            .get(&app.name)
            .map(|list| {
                list.iter()
                    .map(|e| Backend {
                        instance: e.instance.clone(),
                        address: e.address.clone(),
                        port: e.port,
                        revision: e.revision,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        unavailable: unavailable(app, standing.wake_refused),
        https_redirect: false,
        canary: canary_split(app),
        hold: holds_requests(app, standing),
        wake: app.idled.is_some(),
    }
}

/// The canary's share of `app`'s traffic while a rollout judges one: from the moment the
/// rollout starts (its instance takes traffic once ready) until the verdict passes or the
/// rollout fails.
pub fn canary_split(app: &App) -> Option<CanarySplit> {
    let canary = app.canary_being_judged()?;
    Some(CanarySplit {
        revision: app.current_revision,
        weight_percent: canary.weight_percent,
        header: canary
            .header
            .as_ref()
            .map(|header| (header.name.clone(), header.value.clone())),
    })
}

/// The routes of `app` as the router gets them: with `served` (the hosts the HTTPS listener
/// has a certificate for; `None` when it is off) and the app's `https_redirect` on, the
/// domains on those hosts redirect plain HTTP to HTTPS and the others do not, so a host
/// without a certificate is never sent to a handshake that fails.
pub fn routed_entries(
    app: &App,
    endpoints: &EndpointMap,
    apps_domain: &str,
    served: Option<&BTreeSet<String>>,
    standing: Standing<'_>,
) -> Vec<RoutedApp> {
    let routed = routed_app(app, endpoints, apps_domain, standing);
    let Some(served) = served.filter(|_| app.routes.https_redirect) else {
        return vec![routed];
    };
    let (secure, plain): (Vec<RouteDomain>, Vec<RouteDomain>) = routed
        .domains
        .iter()
        .cloned()
        .partition(|domain| served.contains(&domain.host));
    if secure.is_empty() {
        return vec![routed];
    }
    let mut entries = vec![RoutedApp {
        domains: secure,
        https_redirect: true,
        ..routed.clone()
    }];
    if !plain.is_empty() {
        entries.push(RoutedApp {
            domains: plain,
            ..routed
        });
    }
    entries
}

/// The routes of every app (no HTTPS redirects).
pub async fn routed_apps(
    store: &dyn Store,
    endpoints: &EndpointMap,
    apps_domain: &str,
) -> StoreResult<Vec<RoutedApp>> {
    let (apps, _) = crate::apps::list_apps(store, None, None, None).await?;
    Ok(apps
        .iter()
        .map(|listed| routed_app(&listed.app, endpoints, apps_domain, Standing::default()))
        .collect())
}

/// The router's HTTPS side as [`keep_routes`] keeps it: the certificate set the listener
/// presents, and the box that opens the stored keys (in memory only).
#[derive(Clone)]
pub struct RouterTls {
    pub certificates: Arc<CertificateSet>,
    pub secrets: Arc<SecretBox>,
}

/// The stored certificates made ready to serve, remembered by host and version so that a
/// certificate is unsealed and parsed once per change, not once per refresh.
#[derive(Default)]
struct LoadedCertificates {
    by_host: BTreeMap<String, (Millis, Option<ValidatedCertificate>)>,
    /// What the set holds: (host, version) of each certificate.
    serving: Vec<(String, Millis)>,
}

impl LoadedCertificates {
    /// Brings the set to the stored certificates of hosts their apps still hold; returns
    /// those hosts.
    fn refresh(
        &mut self,
        tls: &RouterTls,
        stored: Vec<StoredCertificate>,
        apps: &[App],
        apps_domain: &str,
        catch_all: Option<&str>,
    ) -> BTreeSet<String> {
        let holders: BTreeMap<&str, BTreeSet<String>> = apps
            .iter()
            .map(|app| (app.name.as_str(), app_hosts(app, apps_domain)))
            .collect();
        let mut next = BTreeMap::new();
        for certificate in stored {
            let held = holders
                .get(certificate.app.as_str())
                .is_some_and(|hosts| hosts.contains(&certificate.host));
            // The catch-all app's on-demand certificates: hosts no app holds.
            let on_demand = catch_all == Some(certificate.app.as_str())
                && !holders
                    .values()
                    .any(|hosts| hosts.contains(&certificate.host));
            if !held && !on_demand {
                continue;
            }
            let loaded = match self.by_host.remove(&certificate.host) {
                Some((version, loaded)) if version == certificate.updated_at => loaded,
                _ => load(tls, &certificate),
            };
            next.insert(certificate.host.clone(), (certificate.updated_at, loaded));
        }
        self.by_host = next;
        let serving: Vec<(String, Millis)> = self
            .by_host
            .iter()
            .filter(|(_, (_, loaded))| loaded.is_some())
            .map(|(host, (version, _))| (host.clone(), *version))
            .collect();
        if serving != self.serving {
            tls.certificates.replace_all(
                self.by_host
                    .values()
                    .filter_map(|(_, loaded)| loaded.clone()),
            );
            tracing::info!(
                certificates = serving.len(),
                "router: the HTTPS certificate set changed"
            );
            self.serving = serving;
        }
        self.serving.iter().map(|(host, _)| host.clone()).collect()
    }
}

/// A stored certificate ready to serve: its key unsealed, its chain parsed; `None` (and a
/// warning) when it cannot be (a key sealed under another server key, a damaged row).
fn load(tls: &RouterTls, stored: &StoredCertificate) -> Option<ValidatedCertificate> {
    let host = &stored.host;
    let key = match tls
        .secrets
        .open(&stored.sealed_key, &StoredCertificate::secret_context(host))
    {
        Ok(key) => key,
        Err(error) => {
            tracing::warn!(%host, %error, "router: the certificate's key cannot be unsealed; not serving it");
            return None;
        }
    };
    // Validity in time was checked when it was stored; an expired certificate is served until
    // it is renewed or replaced rather than refused at the handshake.
    match validate_certificate(
        &stored.chain_pem,
        &key,
        host,
        system_time(stored.not_before),
    ) {
        Ok(validated) => Some(validated),
        Err(error) => {
            tracing::warn!(%host, %error, "router: a stored certificate is not usable; not serving it");
            None
        }
    }
}

/// What the router's table is made from: the apps in the store, the controller's endpoint
/// table (and its crash-loop back-offs), and the wakes refused lately.
#[derive(Clone)]
pub struct RouteSources {
    pub store: Arc<dyn Store>,
    pub endpoints: Endpoints,
    pub apps_domain: String,
    pub wakes: Arc<Wakes>,
    pub clock: berth_core::clock::Clock,
}

/// The catch-all app as the router table takes it: the app of the on-demand domains setting
/// when it exists and is not internal, never reaching the apps domain or a reserved domain.
async fn catch_all(
    store: &dyn Store,
    apps: &[App],
    apps_domain: &str,
) -> StoreResult<Option<CatchAll>> {
    let Some(setting) = crate::on_demand::stored_on_demand(store).await? else {
        return Ok(None);
    };
    let Some(app) = apps
        .iter()
        .find(|app| app.name == setting.app && !app.routes.internal)
    else {
        return Ok(None);
    };
    let mut excluded = vec![apps_domain.to_string()];
    excluded.extend(
        store
            .list_domain_reservations()
            .await?
            .into_iter()
            .map(|reservation| reservation.domain),
    );
    Ok(Some(CatchAll {
        team: app.team.clone(),
        app: app.name.clone(),
        excluded,
        ask_path: setting.ask_path,
    }))
}

/// Keeps the router's table current: rebuilt at once when the endpoint table changes (an
/// instance ready, not ready, stopping; an app deleted) and every `refresh` (apps created or
/// changed since). On a store failure the router keeps serving its last table.
pub async fn keep_routes(
    sources: RouteSources,
    table: watch::Sender<Arc<RoutingTable>>,
    refresh: Duration,
    report: Option<WorkerReport>,
    tls: Option<RouterTls>,
) {
    let RouteSources {
        store,
        endpoints,
        apps_domain,
        wakes,
        clock,
    } = sources;
    let mut changes = endpoints.subscribe();
    let mut loaded = LoadedCertificates::default();
    loop {
        let current = changes.borrow_and_update().clone();
        if let Some(report) = &report {
            report.busy();
        }
        let routed = async {
            let now = clock();
            let (listed, _) = crate::apps::list_apps(store.as_ref(), None, None, None).await?;
            let apps: Vec<App> = listed.into_iter().map(|listed| listed.app).collect();
            let catch_all = catch_all(store.as_ref(), &apps, &apps_domain).await?;
            let served = match &tls {
                Some(tls) => {
                    let stored = store.list_certificates(None).await?;
                    let catch_all_app = catch_all.as_ref().map(|c| c.app.as_str());
                    Some(loaded.refresh(tls, stored, &apps, &apps_domain, catch_all_app))
                }
                None => None,
            };
            StoreResult::Ok((
                apps.iter()
                    .flat_map(|app| {
                        let refusal = wakes.refusal(&app.name, now);
                        let standing = Standing {
                            backing_off: endpoints.backing_off(&app.name),
                            wake_refused: refusal.as_deref(),
                        };
                        routed_entries(app, &current, &apps_domain, served.as_ref(), standing)
                    })
                    .collect::<Vec<_>>(),
                catch_all,
            ))
        };
        match routed.await {
            Ok((apps, catch_all)) => {
                let routes = apps.len();
                let backends: usize = apps.iter().map(|a| a.backends.len()).sum();
                let built = RoutingTable::build_with_catch_all(apps, catch_all);
                table.send_replace(Arc::new(built));
                if let Some(report) = &report {
                    report.succeeded(format!("{routes} apps routed to {backends} instances"));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "router: cannot read the apps; serving the last table");
                if let Some(report) = &report {
                    report.failed(format!("cannot read the apps: {error}"));
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(refresh) => {}
        }
    }
}

/// The router's access log as admins see and switch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLogSetting {
    /// One request in this many is written; `None`: off.
    pub sample_one_in: Option<u32>,
    /// Lines dropped because the file could not keep up.
    pub dropped: u64,
}

impl crate::Platform {
    fn router_stats(&self) -> OpResult<&RouterStats> {
        self.router.as_ref().ok_or_else(|| {
            OpError::conflict(
                "router_off",
                "the router is off on this server (--http-listen off, or its address was taken)",
            )
        })
    }

    /// The access log's setting (admins only).
    pub fn access_log(&self, actor: &Actor) -> OpResult<AccessLogSetting> {
        actor.require_admin()?;
        let stats = self.router_stats()?;
        Ok(AccessLogSetting {
            sample_one_in: stats.access_log().map(|log| log.sample_one_in.max(1)),
            dropped: stats.access_log_dropped(),
        })
    }

    /// Turns the access log on (one request in `sample_one_in`) or off (`None` or 0), from the
    /// next request on (admins only).
    pub fn set_access_log(
        &self,
        actor: &Actor,
        sample_one_in: Option<u32>,
    ) -> OpResult<AccessLogSetting> {
        actor.require_admin()?;
        let stats = self.router_stats()?;
        let setting = sample_one_in
            .filter(|n| *n > 0)
            .map(|sample_one_in| AccessLog { sample_one_in });
        actor.audit.set_object("system/access-log");
        actor.audit.set_detail(match setting {
            Some(log) => format!("on, one request in {}", log.sample_one_in),
            None => "off".to_string(),
        });
        stats.set_access_log(setting);
        self.access_log(actor)
    }
}

/// The router as the controller sees it: a stop waits until no request to the instance is in
/// flight, and a canary is judged on its per-instance counts.
#[derive(Debug, Clone)]
pub struct RouterDrain {
    pub stats: RouterStats,
}

impl TrafficSource for RouterDrain {
    fn outcomes(&self, address: &str, port: u16) -> Option<TrafficCount> {
        self.stats
            .outcomes(address, port)
            .map(|(requests, errors)| TrafficCount { requests, errors })
    }
}

#[async_trait]
impl Drain for RouterDrain {
    async fn drained(&self, address: &str, port: u16, patience: Duration) {
        if tokio::time::timeout(patience, self.stats.wait_idle(address, port))
            .await
            .is_err()
        {
            tracing::warn!(
                address,
                port,
                "requests still in flight when the drain period ended; stopping anyway"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::spec::AppSpec;

    fn app(name: &str, replicas: u32, phase: RolloutPhase) -> App {
        let spec = AppSpec {
            replicas,
            ..AppSpec::default()
        };
        let mut app = App::created(name, "shop", &spec, 0);
        app.rollout.phase = phase;
        app.rollout.revision = 3;
        app
    }

    #[test]
    fn unavailable_pages_say_why() {
        // (replicas, phase, the sentence contains)
        let cases = [
            (0, RolloutPhase::Complete, "scaled to 0"),
            (2, RolloutPhase::Progressing, "rolling out revision 3"),
            (2, RolloutPhase::RollingBack, "rolling back to revision 3"),
            (2, RolloutPhase::Complete, "crash-looping"),
            (2, RolloutPhase::RolledBack, "no ready instance"),
            (0, RolloutPhase::Progressing, "scaled to 0"),
        ];
        for (replicas, phase, want) in cases {
            let sentence = unavailable(&app("web", replicas, phase), None);
            assert!(sentence.starts_with("app web "), "{sentence}");
            assert!(sentence.contains(want), "{replicas} {phase:?}: {sentence}");
        }
    }

    #[test]
    fn apps_get_their_default_host_and_their_ready_endpoints() {
        let web = app("web", 2, RolloutPhase::Complete);
        let endpoints: EndpointMap = [(
            "web".to_string(),
            vec![berth_controller::Endpoint {
                container_id: "c1".into(),
                instance: "web-1".into(),
                address: "10.1.0.5".into(),
                port: 8080,
                revision: 1,
            }],
        )]
        .into();
        // (apps domain, host)
        let cases = [
            ("localhost", "web.shop.localhost"),
            ("Apps.Example.COM", "web.shop.apps.example.com"),
            (".apps.example.com.", "web.shop.apps.example.com"),
        ];
        for (domain, host) in cases {
            let routed = routed_app(&web, &endpoints, domain, Standing::default());
            assert_eq!(routed.domains, [RouteDomain::host(host)], "{domain}");
            assert_eq!(routed.backends.len(), 1);
            assert_eq!(routed.backends[0].address, "10.1.0.5");
            assert_eq!(routed.backends[0].port, 8080);
        }
        let mut custom = web.clone();
        custom.routes.domains =
            berth_core::routes::parse_domains(&["shop.com", "x.com/api"]).expect("valid domains");
        let routed = routed_app(&custom, &endpoints, "localhost", Standing::default());
        let want = [
            RouteDomain::host("web.shop.localhost"),
            RouteDomain::host("shop.com"),
            RouteDomain {
                host: "x.com".into(),
                path: "/api".into(),
            },
        ];
        assert_eq!(routed.domains, want);
        custom.routes.internal = true;
        assert!(
            routed_app(&custom, &endpoints, "localhost", Standing::default())
                .domains
                .is_empty()
        );
        let addresses = app_addresses(&custom, "localhost", Some(8080));
        assert!(addresses.is_empty(), "an internal app has no address");
        custom.routes.internal = false;
        // (http port, the URLs)
        let cases = [
            (
                Some(8080),
                vec![
                    Some("http://web.shop.localhost:8080/"),
                    Some("http://shop.com:8080/"),
                    Some("http://x.com:8080/api"),
                ],
            ),
            (
                Some(80),
                vec![
                    Some("http://web.shop.localhost/"),
                    Some("http://shop.com/"),
                    Some("http://x.com/api"),
                ],
            ),
            (None, vec![None, None, None]),
        ];
        for (port, want) in cases {
            let addresses = app_addresses(&custom, "localhost", port);
            let urls: Vec<Option<&str>> = addresses.iter().map(|a| a.url.as_deref()).collect();
            assert_eq!(urls, want, "{port:?}");
            let defaults: Vec<bool> = addresses.iter().map(|a| a.default).collect();
            assert_eq!(defaults, [true, false, false]);
        }
        // A wildcard routes, but is no link: no single name stands for it.
        custom.routes.domains =
            berth_core::routes::parse_domains(&["*.shop.com"]).expect("a wildcard domain");
        let addresses = app_addresses(&custom, "localhost", Some(80));
        let urls: Vec<Option<&str>> = addresses.iter().map(|a| a.url.as_deref()).collect();
        assert_eq!(urls, [Some("http://web.shop.localhost/"), None]);
        assert_eq!(
            routed_app(&custom, &endpoints, "localhost", Standing::default()).domains[1],
            RouteDomain::host("*.shop.com")
        );
        let lonely = routed_app(
            &app("api", 1, RolloutPhase::Progressing),
            &endpoints,
            "x",
            Standing::default(),
        );
        assert!(!lonely.https_redirect);
        assert!(lonely.backends.is_empty());
        assert!(lonely.unavailable.contains("rolling out"));
    }

    #[test]
    fn requests_wait_only_for_apps_bringing_up_an_instance() {
        let idled = Some(berth_core::idle::Idled {
            replicas: 2,
            since: 0,
        });
        // (desired instances, idled, backing off, wake refused, held, wakes, 503 says)
        let cases = [
            (1, None, false, None, true, false, "rolling out"),
            (3, None, false, None, true, false, "rolling out"),
            (1, None, true, None, false, false, "rolling out"),
            (0, None, false, None, false, false, "scaled to 0 instances"),
            (0, None, true, None, false, false, "scaled to 0 instances"),
            (
                0,
                idled,
                false,
                None,
                true,
                true,
                "scaled to 0 when idle and is starting",
            ),
            (
                0,
                idled,
                true,
                None,
                true,
                true,
                "scaled to 0 when idle and is starting",
            ),
            (
                0,
                idled,
                false,
                Some("quota full"),
                false,
                true,
                "starting it was refused: quota full",
            ),
        ];
        for (replicas, idle, backing_off, refused, held, wakes, says) in cases {
            let mut web = app("web", replicas, RolloutPhase::Progressing);
            web.idled = idle;
            let standing = Standing {
                backing_off,
                wake_refused: refused,
            };
            let what = format!("{replicas} {idle:?} {backing_off} {refused:?}");
            assert_eq!(holds_requests(&web, standing), held, "{what}");
            let routed = routed_app(&web, &EndpointMap::new(), "localhost", standing);
            assert_eq!((routed.hold, routed.wake), (held, wakes), "{what}");
            assert!(
                routed.unavailable.contains(says),
                "{what}: {}",
                routed.unavailable
            );
        }
    }

    #[test]
    fn https_redirects_only_hosts_with_a_served_certificate() {
        let mut web = app("web", 1, RolloutPhase::Complete);
        web.routes.domains =
            berth_core::routes::parse_domains(&["shop.com", "shop.com/api", "x.com"])
                .expect("valid domains");
        let endpoints = EndpointMap::default();
        let hosts =
            |list: &[&str]| -> BTreeSet<String> { list.iter().map(|h| h.to_string()).collect() };
        // (app's redirect setting, served hosts (None: HTTPS off), (redirect?, hosts) per entry)
        type Case<'a> = (bool, Option<BTreeSet<String>>, Vec<(bool, Vec<&'a str>)>);
        let all = vec!["web.shop.localhost", "shop.com", "shop.com", "x.com"];
        let cases: Vec<Case> = vec![
            (
                false,
                Some(hosts(&["shop.com"])),
                vec![(false, all.clone())],
            ),
            (true, None, vec![(false, all.clone())]),
            (true, Some(hosts(&[])), vec![(false, all.clone())]),
            (
                true,
                Some(hosts(&["other.com"])),
                vec![(false, all.clone())],
            ),
            (
                true,
                Some(hosts(&["shop.com"])),
                vec![
                    (true, vec!["shop.com", "shop.com"]),
                    (false, vec!["web.shop.localhost", "x.com"]),
                ],
            ),
            (
                true,
                Some(hosts(&["web.shop.localhost", "shop.com", "x.com"])),
                vec![(true, all.clone())],
            ),
        ];
        for (redirect, served, want) in cases {
            web.routes.https_redirect = redirect;
            let entries = routed_entries(
                &web,
                &endpoints,
                "localhost",
                served.as_ref(),
                Standing::default(),
            );
            let got: Vec<(bool, Vec<&str>)> = entries
                .iter()
                .map(|e| {
                    (
                        e.https_redirect,
                        e.domains.iter().map(|d| d.host.as_str()).collect(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{redirect} {served:?}");
            assert!(entries.iter().all(|e| e.app == "web"));
        }
    }
}
