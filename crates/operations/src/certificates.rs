//! HTTPS certificates of apps' hosts: uploading one (validated for the host, its key sealed
//! before it is stored), ordering one over ACME, listing and deleting them, and renewing ACME
//! certificates before they expire. The router's certificate set is built from the store by
//! [`crate::routes::keep_routes`]; nothing here writes it, so the store stays the one truth.
//!
//! The ACME client is behind [`CertificateIssuer`] so that this crate does not build the ACME
//! stack (`berth-certs` implements it in the server).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use berth_auth::SecretBox;
use berth_core::accounts::TeamAction;
use berth_core::certificate::{CertificateSource, StoredCertificate};
use berth_core::{App, Event, EventKind, Millis};
use berth_router::tls::normalize_domain;
use berth_router::{ValidatedCertificate, validate_certificate};

use crate::Platform;
use crate::actor::Actor;
use crate::error::{OpError, OpResult};
use crate::routes::default_host;

/// The largest PEM text a certificate chain or a key may be.
pub use berth_router::tls::MAX_PEM_BYTES;

/// The code of the refusal of an ACME request on a server without ACME settings.
pub const ACME_NOT_CONFIGURED: &str = "acme_not_configured";
/// The code of the refusal of a wildcard ACME request on a server without a DNS hook.
pub const ACME_DNS_NOT_CONFIGURED: &str = "acme_dns_not_configured";
/// Who the renewal worker stores renewed certificates as.
pub const RENEWAL_ACTOR: &str = "certificate-renewal";

/// A certificate chain and its key as an issuer returns them.
#[derive(Clone)]
pub struct IssuedPem {
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedPem").finish_non_exhaustive()
    }
}

/// Orders certificates from a certificate authority (the server's ACME directory).
#[async_trait]
pub trait CertificateIssuer: Send + Sync + 'static {
    /// A certificate for `hosts` (host names, proven over HTTP-01 through the router, or
    /// wildcards, over DNS-01), or why not, in a sentence.
    async fn issue(&self, hosts: &[String]) -> Result<IssuedPem, String>;

    /// Whether it can prove names over DNS-01 (wildcards need it).
    fn solves_dns01(&self) -> bool;

    /// Whether a certificate valid from `not_before` to `not_after` is renewed at `now`.
    fn needs_renewal(&self, not_before: SystemTime, not_after: SystemTime, now: SystemTime)
    -> bool;
}

/// What the certificate operations need from the server.
#[derive(Clone)]
pub struct CertificateSettings {
    /// Seals private keys before they are stored.
    pub secrets: Arc<SecretBox>,
    /// `None`: ACME is not configured (`--acme-directory`).
    pub issuer: Option<Arc<dyn CertificateIssuer>>,
}

impl std::fmt::Debug for CertificateSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateSettings")
            .field("acme", &self.issuer.is_some())
            .finish_non_exhaustive()
    }
}

/// A stored certificate as users see it: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub host: String,
    pub app: String,
    pub source: CertificateSource,
    pub names: Vec<String>,
    pub not_before: Millis,
    pub not_after: Millis,
    /// Whole days left at the time of reading (negative once expired).
    pub days_left: i64,
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl CertificateInfo {
    fn of(certificate: &StoredCertificate, now: Millis) -> CertificateInfo {
        CertificateInfo {
            host: certificate.host.clone(),
            app: certificate.app.clone(),
            source: certificate.source,
            names: certificate.names.clone(),
            not_before: certificate.not_before,
            not_after: certificate.not_after,
            days_left: certificate.days_left(now),
            created_by: certificate.created_by.clone(),
            created_at: certificate.created_at,
            updated_at: certificate.updated_at,
        }
    }
}

/// What one run of the renewal worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenewalReport {
    pub checked: usize,
    pub renewed: Vec<String>,
    /// Hosts whose renewal failed, with why (their old certificate is kept).
    pub failed: Vec<(String, String)>,
}

/// The hosts an app may hold certificates for: its default host and its custom domains' hosts;
/// none for an internal app.
pub fn app_hosts(app: &App, apps_domain: &str) -> BTreeSet<String> {
    if app.routes.internal {
        return BTreeSet::new();
    }
    std::iter::once(default_host(app, apps_domain))
        .chain(app.routes.domains.iter().map(|d| d.host.clone()))
        .collect()
}

/// `millis` since the Unix epoch as a `SystemTime` (the validator's clock).
pub fn system_time(millis: Millis) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A `SystemTime` in milliseconds since the Unix epoch (saturating).
pub fn millis(time: SystemTime) -> Millis {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Platform {
    /// The app (when the actor may do `action` on it) and `host` normalised, checked to be
    /// one of the app's hosts (400 naming `domain` otherwise).
    async fn certificate_target(
        &self,
        actor: &Actor,
        name: &str,
        host: &str,
        action: TeamAction,
    ) -> OpResult<(App, String)> {
        let app = self.app(actor, name, action).await?.app;
        let host = normalize_domain(host).ok_or_else(|| {
            OpError::field(
                "domain",
                format!(
                    "{host:?} is not a host name such as shop.example.com (or a wildcard \
                     domain of the app such as *.shop.example.com)"
                ),
            )
        })?;
        actor.audit.set_object(format!("certificates/{host}"));
        let hosts = app_hosts(&app, &self.domains.apps_domain);
        if !hosts.contains(&host) {
            let known: Vec<&str> = hosts.iter().map(String::as_str).collect();
            return Err(OpError::field(
                "domain",
                if known.is_empty() {
                    format!("app {name} is internal: it has no host to serve {host} on")
                } else {
                    format!(
                        "{host} is not a host of app {name} (its hosts: {}); add it with \
                         --domain first",
                        known.join(", ")
                    )
                },
            ));
        }
        Ok((app, host))
    }

    /// Stores an uploaded certificate for `host`, one of the app's hosts: the chain and key
    /// must pass [`validate_certificate`] for `host` now (400 naming the field otherwise); the
    /// key is sealed before it is stored. Replaces the host's certificate. The router serves it
    /// within a second.
    pub async fn upload_certificate(
        &self,
        actor: &Actor,
        name: &str,
        host: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> OpResult<CertificateInfo> {
        let (app, host) = self
            .certificate_target(actor, name, host, TeamAction::Deploy)
            .await?;
        let now = self.now();
        let validated = validate_certificate(chain_pem, key_pem, &host, system_time(now))
            .map_err(|e| OpError::field(e.field.as_str(), e.message))?;
        let stored = StoredCertificate {
            team: app.team.clone(),
            app: app.name.clone(),
            source: CertificateSource::Uploaded,
            chain_pem: chain_pem.to_string(),
            sealed_key: self
                .certificates
                .secrets
                .seal(key_pem, &StoredCertificate::secret_context(&host)),
            names: validated.names,
            not_before: millis(validated.not_before),
            not_after: millis(validated.not_after),
            created_by: actor.username().to_string(),
            created_at: now,
            updated_at: now,
            host,
        };
        self.store.put_certificate(&stored).await?;
        actor.audit.set_detail(format!(
            "uploaded a certificate for {} (serial {}), valid until {}",
            stored.names.join(", "),
            validated.serial,
            date(stored.not_after)
        ));
        Ok(CertificateInfo::of(&stored, now))
    }

    /// Orders a certificate for `host`, one of the app's hosts, from the server's ACME
    /// directory (HTTP-01 through the router; DNS-01 through the DNS hook for a wildcard),
    /// stores it and returns it. Refused (409 `acme_not_configured`) on a server without ACME
    /// settings or without the router's plain listener, which HTTP-01 needs, and (409
    /// `acme_dns_not_configured`) for a wildcard on a server without a DNS hook.
    pub async fn request_certificate(
        &self,
        actor: &Actor,
        name: &str,
        host: &str,
    ) -> OpResult<CertificateInfo> {
        let (app, host) = self
            .certificate_target(actor, name, host, TeamAction::Deploy)
            .await?;
        let wildcard = host.starts_with("*.");
        let issuer = self.acme_issuer(!wildcard)?;
        if wildcard && !issuer.solves_dns01() {
            return Err(OpError::conflict(
                ACME_DNS_NOT_CONFIGURED,
                format!(
                    "domain: {host} is a wildcard, which ACME proves over DNS-01 only, and this \
                     server has no DNS hook (berth server --acme-dns-hook PATH): upload a \
                     wildcard certificate instead"
                ),
            ));
        }
        let (stored, _) = self
            .issue_and_store(issuer.as_ref(), &app, &host, actor.username())
            .await?;
        actor.audit.set_detail(format!(
            "certificate issued over ACME for {}, valid until {}",
            stored.names.join(", "),
            date(stored.not_after)
        ));
        Ok(CertificateInfo::of(&stored, self.now()))
    }

    /// The ACME issuer; `http01`: the order needs the router's plain listener.
    pub(crate) fn acme_issuer(&self, http01: bool) -> OpResult<Arc<dyn CertificateIssuer>> {
        let Some(issuer) = self.certificates.issuer.clone() else {
            return Err(OpError::conflict(
                ACME_NOT_CONFIGURED,
                "this server has no ACME settings (berth server --acme-directory URL \
                 --acme-email ADDRESS): upload a certificate instead",
            ));
        };
        if http01 && self.http_port.is_none() {
            return Err(OpError::conflict(
                ACME_NOT_CONFIGURED,
                "the router's HTTP listener is off (--http-listen): ACME's HTTP-01 challenge \
                 cannot be answered",
            ));
        }
        Ok(issuer)
    }

    /// Orders, checks and stores a certificate of `host` for `app`; returns it as stored and
    /// as the router serves it.
    pub(crate) async fn issue_and_store(
        &self,
        issuer: &dyn CertificateIssuer,
        app: &App,
        host: &str,
        by: &str,
    ) -> OpResult<(StoredCertificate, ValidatedCertificate)> {
        let issued = issuer
            .issue(&[host.to_string()])
            .await
            .map_err(|why| OpError::Upstream(format!("the ACME order for {host} failed: {why}")))?;
        let now = self.now();
        let validated =
            validate_certificate(&issued.chain_pem, &issued.key_pem, host, system_time(now))
                .map_err(|e| {
                    OpError::Upstream(format!("the issued certificate is not usable: {e}"))
                })?;
        let stored = StoredCertificate {
            host: host.to_string(),
            team: app.team.clone(),
            app: app.name.clone(),
            source: CertificateSource::Acme,
            sealed_key: self
                .certificates
                .secrets
                .seal(&issued.key_pem, &StoredCertificate::secret_context(host)),
            chain_pem: issued.chain_pem,
            names: validated.names.clone(),
            not_before: millis(validated.not_before),
            not_after: millis(validated.not_after),
            created_by: by.to_string(),
            created_at: now,
            updated_at: now,
        };
        self.store.put_certificate(&stored).await?;
        Ok((stored, validated))
    }

    /// The app's certificates, without their keys (readers of its team).
    pub async fn list_certificates(
        &self,
        actor: &Actor,
        name: &str,
    ) -> OpResult<Vec<CertificateInfo>> {
        self.app(actor, name, TeamAction::Read).await?;
        let now = self.now();
        Ok(self
            .store
            .list_certificates(Some(name))
            .await?
            .iter()
            .map(|c| CertificateInfo::of(c, now))
            .collect())
    }

    /// Deletes the app's certificate of `host`; the router stops serving it within a second.
    pub async fn delete_certificate(&self, actor: &Actor, name: &str, host: &str) -> OpResult<()> {
        self.app(actor, name, TeamAction::Deploy).await?;
        let host = normalize_domain(host).unwrap_or_else(|| host.to_string());
        actor.audit.set_object(format!("certificates/{host}"));
        let what = format!("certificate of {host} of app {name}");
        match self.store.get_certificate(&host).await? {
            Some(stored) if stored.app == name => {}
            _ => return Err(OpError::not_found(what)),
        }
        if self.store.delete_certificate(&host).await? {
            Ok(())
        } else {
            Err(OpError::not_found(what))
        }
    }

    /// Renews every ACME certificate the issuer says is due at `now`, recording an event on
    /// its app either way; a failed renewal keeps the old certificate. Nothing to do without
    /// ACME settings.
    pub async fn renew_certificates(&self) -> OpResult<RenewalReport> {
        let mut report = RenewalReport::default();
        let Some(issuer) = self.certificates.issuer.clone() else {
            return Ok(report);
        };
        let now = self.now();
        for stored in self.store.list_certificates(None).await? {
            if stored.source != CertificateSource::Acme {
                continue;
            }
            report.checked += 1;
            let due = issuer.needs_renewal(
                system_time(stored.not_before),
                system_time(stored.not_after),
                system_time(now),
            );
            if !due {
                continue;
            }
            let host = stored.host.clone();
            // A host the app gave up is not renewed: its certificate is no longer served. The
            // catch-all app's certificates are its on-demand hosts: renewed while it is.
            let Some(app) = self.store.get_app(&stored.app).await? else {
                continue;
            };
            let on_demand = crate::on_demand::stored_on_demand(self.store.as_ref())
                .await?
                .is_some_and(|setting| setting.app == app.name);
            if !on_demand && !app_hosts(&app, &self.domains.apps_domain).contains(&host) {
                continue;
            }
            let result = self
                .issue_and_store(issuer.as_ref(), &app, &host, RENEWAL_ACTOR)
                .await;
            let at = self.now();
            let event = match result {
                Ok((renewed, _)) => {
                    report.renewed.push(host.clone());
                    Event::new(
                        &app.name,
                        at,
                        EventKind::CertificateRenewed,
                        format!(
                            "certificate of {host} renewed: valid until {}",
                            date(renewed.not_after)
                        ),
                    )
                    .param("host", host.as_str())
                }
                Err(error) => {
                    tracing::warn!(%host, app = %app.name, %error, "certificate renewal failed");
                    report.failed.push((host.clone(), error.to_string()));
                    Event::new(
                        &app.name,
                        at,
                        EventKind::CertificateRenewalFailed,
                        format!(
                            "renewing the certificate of {host} failed (the current one, valid \
                             until {}, is still served): {error}",
                            date(stored.not_after)
                        ),
                    )
                    .param("host", host.as_str())
                }
            };
            self.controller.record(vec![event]).await;
        }
        Ok(report)
    }
}

/// A day as users read it: `2026-03-01` (UTC).
pub fn date(millis: Millis) -> String {
    let days = millis.div_euclid(86_400_000);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::spec::AppSpec;

    #[test]
    fn an_app_holds_certificates_for_its_default_host_and_domains_only() {
        let mut app = App::created("web", "shop", &AppSpec::default(), 0);
        // (internal, domains, hosts)
        let cases: &[(bool, &[&str], &[&str])] = &[
            (false, &[], &["web.shop.apps.test"]),
            (
                false,
                &["shop.example.com", "shop.example.com/api", "x.example.com"],
                &["shop.example.com", "web.shop.apps.test", "x.example.com"],
            ),
            (true, &[], &[]),
        ];
        for (internal, domains, want) in cases {
            app.routes.internal = *internal;
            app.routes.domains = berth_core::routes::parse_domains(domains).expect("valid domains");
            let hosts: Vec<String> = app_hosts(&app, "apps.test").into_iter().collect();
            assert_eq!(hosts, *want, "{internal} {domains:?}");
        }
    }

    #[test]
    fn times_convert_both_ways_and_dates_read_as_days() {
        // (millis, date)
        let cases = [
            (0, "1970-01-01"),
            (86_399_999, "1970-01-01"),
            (86_400_000, "1970-01-02"),
            (951_782_400_000, "2000-02-29"),
            (1_798_761_600_000, "2027-01-01"),
            (-1, "1969-12-31"),
        ];
        for (at, want) in cases {
            assert_eq!(date(at), want, "{at}");
            assert_eq!(millis(system_time(at)), at);
        }
    }
}
