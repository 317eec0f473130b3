//! HTTPS for app traffic: the certificates the router presents (chosen by SNI from a set that can
//! be swapped at runtime), the validation every certificate passes before it enters that set, and
//! the HTTPS listener that hands decrypted connections to the same data path as plain HTTP.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::RouterConfig;
use crate::proxy::serve_listener;
use crate::stats::RouterStats;
use crate::table::{RoutingTable, normalize_host};

/// The largest PEM text accepted for a certificate chain or a private key.
pub const MAX_PEM_BYTES: usize = 64 * 1024;
/// The most certificates a chain may hold (leaf and intermediates).
pub const MAX_CHAIN_LENGTH: usize = 8;

/// The input a [`CertificateError`] is about; the API answers 400 naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateField {
    Certificate,
    PrivateKey,
    Domain,
}

impl CertificateField {
    /// The field's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateField::Certificate => "certificate",
            CertificateField::PrivateKey => "private_key",
            CertificateField::Domain => "domain",
        }
    }
}

/// Why a certificate, its key or its domain was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateError {
    pub field: CertificateField,
    pub message: String,
}

impl CertificateError {
    fn new(field: CertificateField, message: impl Into<String>) -> CertificateError {
        CertificateError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field.as_str(), self.message)
    }
}

impl std::error::Error for CertificateError {}

/// A certificate chain and key that passed [`validate_certificate`] for one domain: ready to be
/// served, with what the control plane shows about it.
#[derive(Clone)]
pub struct ValidatedCertificate {
    /// The domain it was validated for and is served for (normalised; may be `*.example.com`).
    pub domain: String,
    /// The leaf's DNS names (subject alternative names), lowercase.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    /// The chain and the signing key, as the TLS handshake uses them.
    pub key: Arc<CertifiedKey>,
}

impl fmt::Debug for ValidatedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedCertificate")
            .field("domain", &self.domain)
            .field("names", &self.names)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// Checks a PEM certificate chain (leaf first, then intermediates) and its PEM private key for
/// `domain` at `now`: both parse, the key is unencrypted, alone and belongs to the leaf, the leaf
/// names `domain` among its DNS names (one-label wildcards included) and is valid at `now`.
pub fn validate_certificate(
    chain_pem: &str,
    key_pem: &str,
    domain: &str,
    now: SystemTime,
) -> Result<ValidatedCertificate, CertificateError> {
    use CertificateField::{Certificate, Domain, PrivateKey};
    let domain = normalize_domain(domain).ok_or_else(|| {
        CertificateError::new(
            Domain,
            "not a host name such as shop.example.com or *.example.com",
        )
    })?;
    let chain = read_chain(chain_pem)?;
    let key = read_key(key_pem)?;
    let signing_key = any_supported_type(&key).map_err(|_| {
        CertificateError::new(
            PrivateKey,
            "not a supported private key (RSA, ECDSA P-256/P-384 or Ed25519)",
        )
    })?;
    let mut leaf_names = Vec::new();
    let (not_before, not_after, serial);
    {
        let (rest, leaf) = X509Certificate::from_der(&chain[0]).map_err(|_| {
            CertificateError::new(Certificate, "the first certificate is not valid X.509")
        })?;
        if !rest.is_empty() {
            return Err(CertificateError::new(
                Certificate,
                "the first certificate has trailing data",
            ));
        }
        for (index, der) in chain.iter().enumerate().skip(1) {
            if X509Certificate::from_der(der).is_err() {
                return Err(CertificateError::new(
                    Certificate,
                    format!("certificate {} of the chain is not valid X.509", index + 1),
                ));
            }
        }
        let validity = leaf.validity();
        not_before = system_time(validity.not_before.timestamp());
        not_after = system_time(validity.not_after.timestamp());
        if now < not_before {
            return Err(CertificateError::new(
                Certificate,
                format!(
                    "the certificate is not valid before {}",
                    validity.not_before
                ),
            ));
        }
        if now > not_after {
            return Err(CertificateError::new(
                Certificate,
                format!("the certificate expired on {}", validity.not_after),
            ));
        }
        let san = leaf.subject_alternative_name().map_err(|_| {
            CertificateError::new(
                Certificate,
                "the certificate's subject alternative names cannot be read",
            )
        })?;
        for name in san.iter().flat_map(|san| &san.value.general_names) {
            if let GeneralName::DNSName(name) = name {
                leaf_names.push(name.trim_end_matches('.').to_ascii_lowercase());
            }
        }
        serial = leaf.raw_serial_as_string().replace(':', "");
    }
    if leaf_names.is_empty() {
        return Err(CertificateError::new(
            Certificate,
            "the certificate names no DNS host (subject alternative names; the common name is \
             not used)",
        ));
    }
    if !leaf_names.iter().any(|name| name_covers(name, &domain)) {
        return Err(CertificateError::new(
            Domain,
            format!(
                "the certificate is for {}, not for {domain}",
                leaf_names.join(", ")
            ),
        ));
    }
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(CertificateError::new(
                PrivateKey,
                "the private key does not belong to the certificate",
            ));
        }
        Err(_) => {
            return Err(CertificateError::new(
                PrivateKey,
                "whether the private key belongs to the certificate cannot be checked",
            ));
        }
    }
    Ok(ValidatedCertificate {
        domain,
        names: leaf_names,
        not_before,
        not_after,
        serial,
        key: Arc::new(certified),
    })
}

/// `seconds` since the Unix epoch (negative before it) as a `SystemTime`.
fn system_time(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// The PEM sections of `text`, refusing oversized, empty and unreadable input.
fn pem_sections(
    text: &str,
    field: CertificateField,
    what: &str,
) -> Result<Vec<(SectionKind, Vec<u8>)>, CertificateError> {
    if text.len() > MAX_PEM_BYTES {
        return Err(CertificateError::new(
            field,
            format!("larger than {} KiB", MAX_PEM_BYTES / 1024),
        ));
    }
    if text.trim().is_empty() {
        return Err(CertificateError::new(field, format!("{what} is empty")));
    }
    let mut reader = text.as_bytes();
    let mut sections = Vec::new();
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some(section)) => sections.push(section),
            Ok(None) => break,
            Err(_) => {
                return Err(CertificateError::new(
                    field,
                    format!("{what} is not valid PEM"),
                ));
            }
        }
    }
    Ok(sections)
}

fn read_chain(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let field = CertificateField::Certificate;
    let mut chain = Vec::new();
    for (kind, der) in pem_sections(chain_pem, field, "the certificate")? {
        match kind {
            SectionKind::Certificate => chain.push(CertificateDer::from(der)),
            SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey => {
                return Err(CertificateError::new(
                    field,
                    "holds a private key: give it as the private key, never with the certificate",
                ));
            }
            _ => {
                return Err(CertificateError::new(
                    field,
                    "holds PEM sections that are not certificates",
                ));
            }
        }
    }
    if chain.is_empty() {
        return Err(CertificateError::new(
            field,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) found",
        ));
    }
    if chain.len() > MAX_CHAIN_LENGTH {
        return Err(CertificateError::new(
            field,
            format!("a chain of more than {MAX_CHAIN_LENGTH} certificates"),
        ));
    }
    Ok(chain)
}

fn read_key(key_pem: &str) -> Result<PrivateKeyDer<'static>, CertificateError> {
    let field = CertificateField::PrivateKey;
    // Encrypted keys are PEM sections the parser skips silently: name them instead.
    if key_pem.contains("ENCRYPTED") {
        return Err(CertificateError::new(
            field,
            "the private key is encrypted: give it without a passphrase",
        ));
    }
    let mut keys = Vec::new();
    for (kind, der) in pem_sections(key_pem, field, "the private key")? {
        match kind {
            SectionKind::RsaPrivateKey => keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::PrivateKey => keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::EcPrivateKey => keys.push(PrivateKeyDer::Sec1(der.into())),
            _ => {
                return Err(CertificateError::new(
                    field,
                    "holds PEM sections that are not a private key",
                ));
            }
        }
    }
    let mut keys = keys.into_iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key),
        (None, _) => Err(CertificateError::new(
            field,
            "no PEM private key (-----BEGIN PRIVATE KEY-----) found",
        )),
        (Some(_), Some(_)) => Err(CertificateError::new(
            field,
            "more than one private key: give only the certificate's",
        )),
    }
}

/// A domain as certificates are keyed by: a host name, or `*.` and a host name of at least two
/// labels; lowercase, no trailing dot, no port. `None` for anything else.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let (wildcard, host) = match domain.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, domain),
    };
    if host.contains(':') {
        return None;
    }
    let host = normalize_host(host)?;
    if wildcard && !host.contains('.') {
        return None;
    }
    Some(if wildcard {
        format!("*.{host}")
    } else {
        host.into_owned()
    })
}

/// Whether a certificate's DNS name `pattern` covers `domain` (both lowercase): the same name, or
/// a `*.` pattern and a domain one label deeper than its base. A wildcard domain is covered only
/// by the same wildcard.
pub fn name_covers(pattern: &str, domain: &str) -> bool {
    if pattern == domain {
        return true;
    }
    let Some(base) = pattern.strip_prefix("*.") else {
        return false;
    };
    if domain.starts_with("*.") {
        return false;
    }
    match domain.split_once('.') {
        Some((label, rest)) => !label.is_empty() && rest == base,
        None => false,
    }
}

/// The certificates the HTTPS listener presents, by domain (exact names and `*.` wildcards).
/// Handshakes read it under a short read lock; changes build a new map and swap it in, so a
/// handshake never waits for a change to be computed.
#[derive(Default)]
pub struct CertificateSet {
    by_domain: RwLock<Arc<HashMap<String, ValidatedCertificate>>>,
}

impl fmt::Debug for CertificateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateSet")
            .field("domains", &self.domains())
            .finish()
    }
}

impl CertificateSet {
    pub fn new() -> Arc<CertificateSet> {
        Arc::new(CertificateSet::default())
    }

    fn current(&self) -> Arc<HashMap<String, ValidatedCertificate>> {
        self.by_domain
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn change(&self, change: impl FnOnce(&mut HashMap<String, ValidatedCertificate>)) {
        let mut guard = self
            .by_domain
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::clone(&guard);
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// Serves `certificate` for the domain it was validated for, replacing what served it.
    pub fn insert(&self, certificate: ValidatedCertificate) {
        self.change(|map| {
            map.insert(certificate.domain.clone(), certificate);
        });
    }

    /// Stops serving a certificate for `domain`; whether there was one.
    pub fn remove(&self, domain: &str) -> bool {
        let Some(domain) = normalize_domain(domain) else {
            return false;
        };
        let mut removed = false;
        self.change(|map| removed = map.remove(&domain).is_some());
        removed
    }

    /// Serves exactly `certificates` from now on (the last one wins for a domain given twice).
    pub fn replace_all(&self, certificates: impl IntoIterator<Item = ValidatedCertificate>) {
        let next: HashMap<_, _> = certificates
            .into_iter()
            .map(|certificate| (certificate.domain.clone(), certificate))
            .collect();
        *self
            .by_domain
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// The domains served, sorted.
    pub fn domains(&self) -> Vec<String> {
        let mut domains: Vec<String> = self.current().keys().cloned().collect();
        domains.sort();
        domains
    }

    /// The certificate for a server name (SNI): the exact name first, else the wildcard one
    /// label up. `None` for names that are not host names.
    pub fn find(&self, server_name: &str) -> Option<ValidatedCertificate> {
        let name = normalize_domain(server_name)?;
        let map = self
            .by_domain
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(certificate) = map.get(&name) {
            return Some(certificate.clone());
        }
        let (_, parent) = name.split_once('.')?;
        map.get(&format!("*.{parent}")).cloned()
    }
}

impl ResolvesServerCert for CertificateSet {
    /// No SNI or an unknown name resolves to nothing: rustls then ends the handshake with an
    /// alert, and no other app's certificate is ever shown.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        if name.starts_with("*.") {
            return None;
        }
        self.find(name).map(|certificate| certificate.key)
    }
}

/// The rustls crypto provider Berth uses everywhere: *ring*, chosen for a light build (aws-lc-rs
/// needs cmake and a long C build). Passed explicitly, so no process-wide default is assumed.
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    // rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; accepted
    // until ring or the build budget changes (see ARCHITECTURE.md, router TLS).
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// The TLS settings of the HTTPS listener: certificates from `certificates` by SNI, TLS 1.2 and
/// 1.3 with the ring provider, ALPN `http/1.1`.
pub fn server_config(
    certificates: Arc<CertificateSet>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    // HTTP/2 or HTTP/1.1, as the client prefers: the data path speaks both.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves app traffic over HTTPS on `listener` until `shutdown` resolves: like
/// [`serve`](crate::serve), with a TLS handshake (at most `config.tls_handshake_timeout`) before
/// each connection and `X-Forwarded-Proto: https` on the requests passed on.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    table: watch::Receiver<Arc<RoutingTable>>,
    config: RouterConfig,
    stats: RouterStats,
    shutdown: impl Future<Output = ()>,
) {
    serve_listener(listener, Some(tls), table, config, stats, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd,
    };

    fn at(year: i32, month: u8, day: u8) -> SystemTime {
        system_time(date_time_ymd(year, month, day).unix_timestamp())
    }

    /// A certificate for `names` valid from 2030-01-01 to 2031-01-01, signed by `issuer` (else
    /// self-signed), and its key.
    fn leaf(names: &[&str], issuer: Option<&Issuer<'_, KeyPair>>) -> (String, KeyPair) {
        leaf_valid(names, (2030, 1, 1), (2031, 1, 1), issuer)
    }

    fn leaf_valid(
        names: &[&str],
        from: (i32, u8, u8),
        until: (i32, u8, u8),
        issuer: Option<&Issuer<'_, KeyPair>>,
    ) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = date_time_ymd(from.0, from.1, from.2);
        params.not_after = date_time_ymd(until.0, until.1, until.2);
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.pem(), key)
    }

    /// A CA certificate (PEM) and the issuer it makes, signed by `parent` (else self-signed).
    fn ca(name: &str, parent: Option<&Issuer<'_, KeyPair>>) -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = match parent {
            Some(parent) => params.signed_by(&key, parent).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (cert.pem(), Issuer::new(params, key))
    }

    #[test]
    fn name_coverage_follows_one_label_wildcard_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("shop.example.com", "shop.example.com", true),
            ("shop.example.com", "www.shop.example.com", false),
            ("shop.example.com", "example.com", false),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "shop.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", "aexample.com", false),
            ("*.example.com", "a.example.org", false),
            ("*.example.com", "*.example.com", true),
            ("*.example.com", "*.a.example.com", false),
            ("a.example.com", "*.example.com", false),
            ("*.a.example.com", "b.a.example.com", true),
            ("*.a.example.com", "a.example.com", false),
            ("a*.example.com", "ab.example.com", false),
            ("*", "localhost", false),
        ];
        for (pattern, domain, want) in cases {
            assert_eq!(
                name_covers(pattern, domain),
                *want,
                "{pattern} covers {domain}"
            );
        }
    }

    #[test]
    fn domains_are_host_names_or_one_label_wildcards() {
        let long = format!("{}.com", "a".repeat(64));
        let cases: &[(&str, Option<&str>)] = &[
            ("shop.example.com", Some("shop.example.com")),
            ("Shop.Example.COM.", Some("shop.example.com")),
            ("*.example.com", Some("*.example.com")),
            ("*.Example.com", Some("*.example.com")),
            ("localhost", Some("localhost")),
            ("", None),
            ("*", None),
            ("*.", None),
            ("*.com", None),
            ("**.example.com", None),
            ("*.*.example.com", None),
            ("a.*.example.com", None),
            ("a*.example.com", None),
            ("shop.example.com:443", None),
            ("*.example.com:443", None),
            ("shop example.com", None),
            ("shop.example.com/x", None),
            ("[::1]", None),
            ("shop.example.com\0", None),
            (&long, None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_domain(input).as_deref(), *want, "{input:?}");
        }
    }

    /// What a case expects: the names of an accepted certificate, or the field refused.
    enum Want {
        Accepted(&'static [&'static str]),
        Refused(CertificateField),
    }

    #[test]
    fn validate_certificate_accepts_only_matching_current_certificates() {
        use CertificateField::{Certificate, Domain, PrivateKey};
        let (shop, shop_key) = leaf(&["shop.example.com"], None);
        let shop_key = shop_key.serialize_pem();
        let (wild, wild_key) = leaf(&["*.example.com", "example.com"], None);
        let wild_key = wild_key.serialize_pem();
        let (_, other_key) = leaf(&["shop.example.com"], None);
        let other_key = other_key.serialize_pem();
        let (old, old_key) = leaf_valid(&["shop.example.com"], (2020, 1, 1), (2021, 1, 1), None);
        let old_key = old_key.serialize_pem();
        let (future, future_key) =
            leaf_valid(&["shop.example.com"], (2040, 1, 1), (2041, 1, 1), None);
        let future_key = future_key.serialize_pem();
        let (ip_only, ip_key) = leaf(&["127.0.0.1"], None);
        let ip_key = ip_key.serialize_pem();
        let ed_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let ed_cert = CertificateParams::new(vec!["ed.example.com".to_string()])
            .map(|mut params| {
                params.not_before = date_time_ymd(2030, 1, 1);
                params.not_after = date_time_ymd(2031, 1, 1);
                params
            })
            .unwrap()
            .self_signed(&ed_key)
            .unwrap()
            .pem();
        let ed_key = ed_key.serialize_pem();
        let (root, root_issuer) = ca("Test Root", None);
        let (intermediate, intermediate_issuer) = ca("Test Intermediate", Some(&root_issuer));
        let (chained, chained_key) = leaf(&["api.example.com"], Some(&intermediate_issuer));
        let chained_key = chained_key.serialize_pem();
        let full_chain = format!("{chained}{intermediate}{root}");
        let reversed_chain = format!("{intermediate}{chained}");
        let two_keys = format!("{shop_key}{other_key}");
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let legacy_encrypted = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF\n\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\n";
        let oversized = format!("{shop}{}", " ".repeat(MAX_PEM_BYTES));
        let too_long_chain = shop.repeat(MAX_CHAIN_LENGTH + 1);
        let bad_base64 =
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        let not_x509 = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        let key_and_cert = format!("{shop}{shop_key}");
        let public_key = "-----BEGIN PUBLIC KEY-----\naGVsbG8=\n-----END PUBLIC KEY-----\n";
        let bad_intermediate = format!("{shop}{not_x509}");
        let now = at(2030, 6, 1);

        let cases: Vec<(&str, &str, &str, &str, Want)> = vec![
            (
                "exact name",
                &shop,
                &shop_key,
                "shop.example.com",
                Want::Accepted(&["shop.example.com"]),
            ),
            (
                "domain case and dot",
                &shop,
                &shop_key,
                "SHOP.example.com.",
                Want::Accepted(&["shop.example.com"]),
            ),
            (
                "wrong domain",
                &shop,
                &shop_key,
                "www.example.com",
                Want::Refused(Domain),
            ),
            (
                "parent domain",
                &shop,
                &shop_key,
                "example.com",
                Want::Refused(Domain),
            ),
            (
                "wildcard covers one label",
                &wild,
                &wild_key,
                "a.example.com",
                Want::Accepted(&["*.example.com", "example.com"]),
            ),
            (
                "wildcard and apex",
                &wild,
                &wild_key,
                "example.com",
                Want::Accepted(&["*.example.com", "example.com"]),
            ),
            (
                "wildcard not two labels",
                &wild,
                &wild_key,
                "a.b.example.com",
                Want::Refused(Domain),
            ),
            (
                "wildcard domain",
                &wild,
                &wild_key,
                "*.example.com",
                Want::Accepted(&["*.example.com", "example.com"]),
            ),
            (
                "wildcard domain, exact cert",
                &shop,
                &shop_key,
                "*.example.com",
                Want::Refused(Domain),
            ),
            (
                "invalid domain",
                &shop,
                &shop_key,
                "shop.example.com:443",
                Want::Refused(Domain),
            ),
            ("empty domain", &shop, &shop_key, "", Want::Refused(Domain)),
            (
                "mismatched key",
                &shop,
                &other_key,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "expired",
                &old,
                &old_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "not yet valid",
                &future,
                &future_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "IP address only",
                &ip_only,
                &ip_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "ed25519",
                &ed_cert,
                &ed_key,
                "ed.example.com",
                Want::Accepted(&["ed.example.com"]),
            ),
            (
                "chain with intermediates",
                &full_chain,
                &chained_key,
                "api.example.com",
                Want::Accepted(&["api.example.com"]),
            ),
            (
                "chain in the wrong order",
                &reversed_chain,
                &chained_key,
                "api.example.com",
                Want::Refused(Certificate),
            ),
            (
                "two keys",
                &shop,
                &two_keys,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "encrypted key",
                &shop,
                encrypted,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "legacy encrypted key",
                &shop,
                legacy_encrypted,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "empty certificate",
                "",
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "blank certificate",
                " \n\t",
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "empty key",
                &shop,
                "",
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "garbage certificate",
                "hello, I am a certificate",
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "garbage key",
                &shop,
                "\u{0}\u{1}binary",
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "bad base64",
                bad_base64,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "not X.509",
                not_x509,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "bad intermediate",
                &bad_intermediate,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "oversized certificate",
                &oversized,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "oversized key",
                &shop,
                &oversized,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "chain too long",
                &too_long_chain,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "key in the certificate field",
                &key_and_cert,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
            (
                "certificate in the key field",
                &shop,
                &key_and_cert,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "public key as the key",
                &shop,
                public_key,
                "shop.example.com",
                Want::Refused(PrivateKey),
            ),
            (
                "key as the certificate",
                &shop_key,
                &shop_key,
                "shop.example.com",
                Want::Refused(Certificate),
            ),
        ];
        for (name, chain, key, domain, want) in cases {
            let got = validate_certificate(chain, key, domain, now);
            match (want, got) {
                (Want::Accepted(names), Ok(certificate)) => {
                    assert_eq!(certificate.names, names, "{name}");
                    assert_eq!(certificate.not_before, at(2030, 1, 1), "{name}");
                    assert_eq!(certificate.not_after, at(2031, 1, 1), "{name}");
                    assert!(!certificate.serial.is_empty(), "{name}");
                }
                (Want::Refused(field), Err(error)) => {
                    assert_eq!(error.field, field, "{name}: {error}");
                    assert!(!error.message.is_empty(), "{name}");
                }
                (Want::Accepted(_), Err(error)) => panic!("{name}: refused: {error}"),
                (Want::Refused(field), Ok(_)) => {
                    panic!("{name}: accepted, want refused for {}", field.as_str())
                }
            }
        }
        // The chain is served whole.
        let certificate =
            validate_certificate(&full_chain, &chained_key, "api.example.com", now).unwrap();
        assert_eq!(certificate.key.cert.len(), 3);
        assert_eq!(certificate.domain, "api.example.com");
    }

    #[test]
    fn validity_bounds_are_inclusive() {
        let (shop, key) = leaf(&["shop.example.com"], None);
        let key = key.serialize_pem();
        let cases: &[(SystemTime, bool)] = &[
            (at(2030, 1, 1) - Duration::from_secs(1), false),
            (at(2030, 1, 1), true),
            (at(2031, 1, 1), true),
            (at(2031, 1, 1) + Duration::from_secs(1), false),
        ];
        for (now, want) in cases {
            assert_eq!(
                validate_certificate(&shop, &key, "shop.example.com", *now).is_ok(),
                *want,
                "{now:?}"
            );
        }
    }

    fn validated(names: &[&str], domain: &str) -> ValidatedCertificate {
        let (cert, key) = leaf(names, None);
        validate_certificate(&cert, &key.serialize_pem(), domain, at(2030, 6, 1)).unwrap()
    }

    #[test]
    fn certificate_set_prefers_exact_names_then_one_label_wildcards() {
        let set = CertificateSet::new();
        let exact = validated(&["shop.example.com"], "shop.example.com");
        let wildcard = validated(&["*.example.com"], "*.example.com");
        set.insert(exact.clone());
        set.insert(wildcard.clone());
        let cases: &[(&str, Option<&str>)] = &[
            ("shop.example.com", Some(&exact.serial)),
            ("SHOP.example.com.", Some(&exact.serial)),
            ("www.example.com", Some(&wildcard.serial)),
            ("example.com", None),
            ("a.b.example.com", None),
            ("other.test", None),
            ("*.example.com", Some(&wildcard.serial)),
            ("", None),
            ("shop.example.com:443", None),
            ("shop example.com", None),
        ];
        for (name, want) in cases {
            assert_eq!(
                set.find(name).map(|c| c.serial).as_deref(),
                *want,
                "find({name:?})"
            );
        }
        assert_eq!(set.domains(), ["*.example.com", "shop.example.com"]);
    }

    #[test]
    fn certificate_set_changes_apply_to_the_next_lookups() {
        let set = CertificateSet::new();
        let first = validated(&["shop.example.com"], "shop.example.com");
        let second = validated(&["shop.example.com"], "shop.example.com");
        set.insert(first.clone());
        assert_eq!(set.find("shop.example.com").unwrap().serial, first.serial);
        set.insert(second.clone());
        assert_eq!(set.find("shop.example.com").unwrap().serial, second.serial);
        assert!(set.remove("Shop.Example.com"));
        assert!(!set.remove("shop.example.com"));
        assert!(!set.remove("not a domain"));
        assert!(set.find("shop.example.com").is_none());
        let api = validated(&["api.example.com"], "api.example.com");
        set.insert(first);
        set.replace_all([api.clone(), second.clone()]);
        assert_eq!(set.domains(), ["api.example.com", "shop.example.com"]);
        assert_eq!(set.find("shop.example.com").unwrap().serial, second.serial);
        set.replace_all([]);
        assert!(set.domains().is_empty());
    }
}
