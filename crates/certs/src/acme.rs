//! Certificate issuance over ACME (RFC 8555): an account on a directory, an order for a set of
//! domains proven over HTTP-01 (the key authorizations published in the router's
//! [`AcmeChallenges`] while the order is validated) or, for wildcards and where the CA offers
//! nothing else, over DNS-01 through the operator's [`DnsHook`]; a CSR for a fresh key, and the
//! issued chain checked with [`validate_certificate`] before it is returned.

use std::time::{Duration, SystemTime};

use berth_router::tls::normalize_domain;
use berth_router::{AcmeChallenges, CertificateError, ValidatedCertificate, validate_certificate};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use tracing::{debug, info};

use crate::acme_https::AcmeHttps;
use crate::dns_hook::{DnsHook, record_name};

/// The most domains one order may name (Let's Encrypt's limit).
pub const MAX_DOMAINS_PER_ORDER: usize = 100;

/// Where and as whom certificates are ordered.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Contact URIs for the account, e.g. `mailto:ops@example.com`.
    pub contact: Vec<String>,
    /// PEM root certificate(s) to trust for the ACME server's own HTTPS instead of the system's
    /// (a test CA such as pebble's).
    pub server_root_pem: Option<String>,
    /// How long one HTTP request to the ACME server may take.
    pub request_timeout: Duration,
    pub poll: PollPolicy,
    /// Publishes DNS-01 answers; `None`: wildcards cannot be ordered.
    pub dns_hook: Option<DnsHook>,
}

/// How an order's progress is polled: from `initial_delay`, doubling, for at most `timeout` per
/// wait; one issuance takes at most `total_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    pub initial_delay: Duration,
    pub timeout: Duration,
    pub total_timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> PollPolicy {
        PollPolicy {
            initial_delay: Duration::from_millis(250),
            timeout: Duration::from_secs(90),
            total_timeout: Duration::from_secs(5 * 60),
        }
    }
}

impl AcmeSettings {
    /// Settings for `directory_url` with the default timeouts and the system's roots.
    pub fn new(directory_url: impl Into<String>) -> AcmeSettings {
        AcmeSettings {
            directory_url: directory_url.into(),
            contact: Vec::new(),
            server_root_pem: None,
            request_timeout: Duration::from_secs(30),
            poll: PollPolicy::default(),
            dns_hook: None,
        }
    }
}

/// Why an issuance failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("domain {domain:?}: {reason}")]
    InvalidDomain {
        domain: String,
        reason: &'static str,
    },
    #[error("the ACME client cannot be set up: {0}")]
    Setup(String),
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("the ACME server offers no http-01 challenge for {0}")]
    NoHttpChallenge(String),
    #[error(
        "{0} can only be proven over DNS-01, and no DNS hook is set (berth server \
         --acme-dns-hook PATH)"
    )]
    NoDnsHook(String),
    #[error("the ACME server offers neither an http-01 nor a dns-01 challenge for {0}")]
    NoChallenge(String),
    #[error("{0}")]
    DnsHook(String),
    #[error("the ACME server's challenge for {domain} is not valid: {reason}")]
    BadChallenge { domain: String, reason: String },
    #[error("authorization for {domain} is {status:?}")]
    Unauthorized {
        domain: String,
        status: AuthorizationStatus,
    },
    #[error("the order ended {0:?} instead of ready (a challenge failed)")]
    OrderFailed(OrderStatus),
    #[error("the certificate request cannot be made: {0}")]
    Csr(#[from] rcgen::Error),
    #[error("the issued certificate is not usable: {0}")]
    Certificate(#[from] CertificateError),
    #[error("issuance did not finish within {0:?}")]
    TimedOut(Duration),
}

/// An issued certificate: its PEM chain and key (for storage) and the validated form the
/// router's certificate set takes.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub chain_pem: String,
    pub key_pem: String,
    pub certificate: ValidatedCertificate,
}

/// An ACME account ready to order certificates.
pub struct AcmeClient {
    account: Account,
    challenges: AcmeChallenges,
    settings: AcmeSettings,
}

impl std::fmt::Debug for AcmeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeClient")
            .field("account", &self.account.id())
            .field("directory_url", &self.settings.directory_url)
            .finish_non_exhaustive()
    }
}

/// Unpublishes the tokens of an issuance however it ends.
struct Published<'a> {
    challenges: &'a AcmeChallenges,
    tokens: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.challenges.withdraw(token);
        }
    }
}

impl AcmeClient {
    /// Registers a new account (agreeing to the directory's terms of service). The credentials
    /// returned restore it with [`AcmeClient::from_credentials`].
    pub async fn create_account(
        settings: AcmeSettings,
        challenges: AcmeChallenges,
    ) -> Result<(AcmeClient, AccountCredentials), AcmeError> {
        let http = AcmeHttps::new(
            settings.server_root_pem.as_deref(),
            settings.request_timeout,
        )
        .map_err(AcmeError::Setup)?;
        let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(Box::new(http))
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                settings.directory_url.clone(),
                None,
            )
            .await?;
        info!(account = account.id(), directory = %settings.directory_url, "acme: account created");
        Ok((
            AcmeClient {
                account,
                challenges,
                settings,
            },
            credentials,
        ))
    }

    /// Restores an account created earlier.
    pub async fn from_credentials(
        settings: AcmeSettings,
        credentials: AccountCredentials,
        challenges: AcmeChallenges,
    ) -> Result<AcmeClient, AcmeError> {
        let http = AcmeHttps::new(
            settings.server_root_pem.as_deref(),
            settings.request_timeout,
        )
        .map_err(AcmeError::Setup)?;
        let account = Account::builder_with_http(Box::new(http))
            .from_credentials(credentials)
            .await?;
        Ok(AcmeClient {
            account,
            challenges,
            settings,
        })
    }

    /// Orders a certificate for `domains` (host names, or `*.` wildcards when a DNS hook is
    /// set), with a fresh ECDSA P-256 key. Every name is proven over HTTP-01 (it must reach
    /// this server's router on port 80 while the order is validated) unless the CA offers only
    /// DNS-01 for it, as for wildcards. At most `poll.total_timeout`.
    pub async fn issue(&self, domains: &[String]) -> Result<IssuedCertificate, AcmeError> {
        let domains = checked_domains(domains)?;
        if self.settings.dns_hook.is_none()
            && let Some(wildcard) = domains.iter().find(|d| d.starts_with("*."))
        {
            return Err(AcmeError::NoDnsHook(wildcard.clone()));
        }
        self.issue_checked(&domains).await
    }

    /// The order within `poll.total_timeout`; the DNS hook's records are cleaned up even when
    /// the time runs out.
    async fn issue_checked(&self, domains: &[String]) -> Result<IssuedCertificate, AcmeError> {
        let total = self.settings.poll.total_timeout;
        let deadline = tokio::time::Instant::now() + total;
        let timed_out = |_| AcmeError::TimedOut(total);
        let identifiers: Vec<Identifier> =
            domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
        let mut order = tokio::time::timeout_at(
            deadline,
            self.account.new_order(&NewOrder::new(&identifiers)),
        )
        .await
        .map_err(timed_out)??;
        let mut published = Published {
            challenges: &self.challenges,
            tokens: Vec::new(),
        };
        // (domain, record, value) of each TXT record the hook published.
        let mut records: Vec<(String, String, String)> = Vec::new();
        let validated = tokio::time::timeout_at(deadline, async {
            self.answer_challenges(&mut order, &mut published, &mut records)
                .await?;
            Ok::<_, AcmeError>(order.poll_ready(&self.retries()).await?)
        })
        .await
        .map_err(timed_out)
        .and_then(|status| status);
        drop(published);
        if let Some(hook) = &self.settings.dns_hook {
            for (domain, record, value) in &records {
                if let Err(error) = hook.cleanup(domain, record, value).await {
                    tracing::warn!(%domain, %error, "acme: a DNS-01 record was not cleaned up");
                }
            }
        }
        let status = validated?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::OrderFailed(status));
        }
        tokio::time::timeout_at(deadline, self.finish(order, domains))
            .await
            .map_err(timed_out)?
    }

    fn retries(&self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(self.settings.poll.initial_delay)
            .backoff(2.0)
            .timeout(self.settings.poll.timeout)
    }

    /// Publishes an answer to each pending authorization (HTTP-01 when offered for a name that
    /// is not a wildcard, else DNS-01 through the hook) and tells the CA it is ready.
    async fn answer_challenges(
        &self,
        order: &mut instant_acme::Order,
        published: &mut Published<'_>,
        records: &mut Vec<(String, String, String)>,
    ) -> Result<(), AcmeError> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            let domain = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => return Err(AcmeError::Unauthorized { domain, status }),
            }
            let offers =
                |kind: ChallengeType| authorization.challenges.iter().any(|c| c.r#type == kind);
            let use_http = !domain.starts_with("*.") && offers(ChallengeType::Http01);
            if !use_http && !offers(ChallengeType::Dns01) {
                return Err(
                    if domain.starts_with("*.") || offers(ChallengeType::TlsAlpn01) {
                        AcmeError::NoChallenge(domain)
                    } else {
                        AcmeError::NoHttpChallenge(domain)
                    },
                );
            }
            if use_http {
                let mut challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .ok_or_else(|| AcmeError::NoHttpChallenge(domain.clone()))?;
                let token = challenge.token.clone();
                let key_authorization = challenge.key_authorization();
                self.challenges
                    .publish(&token, key_authorization.as_str())
                    .map_err(|e| AcmeError::BadChallenge {
                        domain: domain.clone(),
                        reason: e.to_string(),
                    })?;
                published.tokens.push(token);
                debug!(%domain, "acme: http-01 challenge published");
                challenge.set_ready().await?;
            } else {
                let hook = self
                    .settings
                    .dns_hook
                    .as_ref()
                    .ok_or_else(|| AcmeError::NoDnsHook(domain.clone()))?;
                let mut challenge = authorization
                    .challenge(ChallengeType::Dns01)
                    .ok_or_else(|| AcmeError::NoChallenge(domain.clone()))?;
                let value = challenge.key_authorization().dns_value();
                let base = domain.trim_start_matches("*.").to_string();
                let record = record_name(&domain);
                hook.present(&base, &record, &value)
                    .await
                    .map_err(AcmeError::DnsHook)?;
                records.push((base, record, value));
                debug!(%domain, "acme: dns-01 record published");
                challenge.set_ready().await?;
            }
        }
        Ok(())
    }

    /// Finalizes a ready order with a CSR for a fresh key and checks the chain issued.
    async fn finish(
        &self,
        mut order: instant_acme::Order,
        domains: &[String],
    ) -> Result<IssuedCertificate, AcmeError> {
        let retries = self.retries();
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(domains.to_vec())?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key)?;
        order.finalize_csr(csr.der()).await?;
        let chain_pem = order.poll_certificate(&retries).await?;
        let key_pem = key.serialize_pem();
        let now = SystemTime::now();
        let certificate = validate_certificate(&chain_pem, &key_pem, &domains[0], now)?;
        for domain in &domains[1..] {
            validate_certificate(&chain_pem, &key_pem, domain, now)?;
        }
        info!(domains = %domains.join(","), serial = %certificate.serial, "acme: certificate issued");
        Ok(IssuedCertificate {
            chain_pem,
            key_pem,
            certificate,
        })
    }
}

/// The domains of an order, normalised: at least one, at most [`MAX_DOMAINS_PER_ORDER`], host
/// names only, no duplicates.
fn checked_domains(domains: &[String]) -> Result<Vec<String>, AcmeError> {
    if domains.is_empty() {
        return Err(AcmeError::InvalidDomain {
            domain: String::new(),
            reason: "an order names at least one domain",
        });
    }
    if domains.len() > MAX_DOMAINS_PER_ORDER {
        return Err(AcmeError::InvalidDomain {
            domain: domains[MAX_DOMAINS_PER_ORDER].clone(),
            reason: "an order names at most 100 domains",
        });
    }
    let mut checked: Vec<String> = Vec::with_capacity(domains.len());
    for domain in domains {
        let normal = normalize_domain(domain).ok_or_else(|| AcmeError::InvalidDomain {
            domain: domain.clone(),
            reason: "not a host name",
        })?;
        let top_level = normal.rsplit('.').next().unwrap_or_default();
        if top_level.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AcmeError::InvalidDomain {
                domain: domain.clone(),
                reason: "an IP address is not a domain",
            });
        }
        if !normal.trim_start_matches("*.").contains('.') {
            return Err(AcmeError::InvalidDomain {
                domain: domain.clone(),
                reason: "a public certificate needs a name with a dot",
            });
        }
        if !checked.contains(&normal) {
            checked.push(normal);
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_name_only_host_names() {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let too_many: Vec<String> = (0..=MAX_DOMAINS_PER_ORDER)
            .map(|i| format!("d{i}.example.com"))
            .collect();
        let cases: Vec<(Vec<String>, Option<Vec<String>>)> = vec![
            (
                strings(&["shop.example.com"]),
                Some(strings(&["shop.example.com"])),
            ),
            (
                strings(&["Shop.Example.com.", "shop.example.com", "www.example.com"]),
                Some(strings(&["shop.example.com", "www.example.com"])),
            ),
            (strings(&[]), None),
            (
                strings(&["*.Example.com", "example.com"]),
                Some(strings(&["*.example.com", "example.com"])),
            ),
            (strings(&["*.com"]), None),
            (strings(&["*.10.0.0.1"]), None),
            (strings(&["a.*.example.com"]), None),
            (strings(&["localhost"]), None),
            (strings(&["shop.example.com:80"]), None),
            (strings(&["shop.example.com", "bad host"]), None),
            (strings(&["shop.example.com/../x"]), None),
            (strings(&["127.0.0.1:80"]), None),
            (strings(&["127.0.0.1"]), None),
            (strings(&["10.0.0.1."]), None),
            (strings(&["1.example.123"]), None),
            (too_many, None),
        ];
        for (input, want) in cases {
            assert_eq!(checked_domains(&input).ok(), want, "{input:?}");
        }
    }
}
