//! TLS certificates of apps' domains as Berth keeps them: one per host, uploaded by a user or
//! issued over ACME, the private key sealed by the server (never stored in plain text), and the
//! rule that says which hosts an app may hold a certificate for.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Where a stored certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// A user uploaded the chain and key; Berth never renews it.
    Uploaded,
    /// Issued by the server's ACME directory; the renewal worker renews it.
    Acme,
}

impl CertificateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateSource::Uploaded => "uploaded",
            CertificateSource::Acme => "acme",
        }
    }

    pub fn parse(text: &str) -> Option<CertificateSource> {
        [CertificateSource::Uploaded, CertificateSource::Acme]
            .into_iter()
            .find(|source| source.as_str() == text)
    }
}

/// The certificate the router presents for one host of one app.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCertificate {
    /// The host name it is served for (lowercase, no port): unique.
    pub host: String,
    /// The app's team when it was stored.
    pub team: String,
    pub app: String,
    pub source: CertificateSource,
    /// The PEM chain, leaf first.
    pub chain_pem: String,
    /// The PEM private key as sealed by the server's secret box, under
    /// [`StoredCertificate::secret_context`]; never the plain key.
    pub sealed_key: String,
    /// The leaf's DNS names.
    pub names: Vec<String>,
    pub not_before: Millis,
    pub not_after: Millis,
    /// Who stored it (a username; the renewal worker for renewed ones).
    pub created_by: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl std::fmt::Debug for StoredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sealed key is left out too: logs have no business holding it.
        f.debug_struct("StoredCertificate")
            .field("host", &self.host)
            .field("team", &self.team)
            .field("app", &self.app)
            .field("source", &self.source)
            .field("names", &self.names)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("created_by", &self.created_by)
            .finish_non_exhaustive()
    }
}

impl StoredCertificate {
    /// What the secret box binds a host's key to: a sealed key copied onto another host's row
    /// does not open there.
    pub fn secret_context(host: &str) -> String {
        format!("certificate/{host}")
    }

    /// Whole days left before `not_after` at `now` (negative once expired).
    pub fn days_left(&self, now: Millis) -> i64 {
        (self.not_after - now).div_euclid(DAY_MS)
    }
}

const DAY_MS: Millis = 24 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_and_unknown_ones_are_refused() {
        let cases = [
            ("uploaded", Some(CertificateSource::Uploaded)),
            ("acme", Some(CertificateSource::Acme)),
            ("Acme", None),
            ("", None),
            ("self-signed", None),
        ];
        for (text, want) in cases {
            assert_eq!(CertificateSource::parse(text), want, "{text}");
            if let Some(source) = want {
                assert_eq!(source.as_str(), text);
            }
        }
    }

    #[test]
    fn days_left_count_whole_days_and_go_negative_after_expiry() {
        let at = |days: i64| days * DAY_MS;
        // (not_after, now, days left)
        let cases = [
            (at(90), at(0), 90),
            (at(90), at(0) + 1, 89),
            (at(90), at(89), 1),
            (at(90), at(90), 0),
            (at(90), at(90) + 1, -1),
            (at(90), at(100), -10),
        ];
        for (not_after, now, want) in cases {
            let certificate = StoredCertificate {
                host: "shop.example.com".into(),
                team: "shop".into(),
                app: "web".into(),
                source: CertificateSource::Uploaded,
                chain_pem: String::new(),
                sealed_key: "v1.secret".into(),
                names: vec![],
                not_before: 0,
                not_after,
                created_by: "alice".into(),
                created_at: 0,
                updated_at: 0,
            };
            assert_eq!(certificate.days_left(now), want, "{not_after} at {now}");
            assert!(!format!("{certificate:?}").contains("v1.secret"));
        }
    }
}
