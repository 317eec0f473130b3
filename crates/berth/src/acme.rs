//! The server's ACME issuer: `berth_certs`' client behind the application layer's
//! [`CertificateIssuer`], with one account per directory made on first use and kept in the
//! store's settings (its credentials sealed with the server's secret box), so a restart
//! reuses it instead of registering a new one.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use berth_auth::SecretBox;
use berth_certs::{AccountCredentials, AcmeClient, AcmeSettings};
use berth_core::clock::Clock;
use berth_operations::certificates::{CertificateIssuer, IssuedPem};
use berth_router::AcmeChallenges;
use berth_store::Store;
use tokio::sync::Mutex;

use crate::config::AcmeConfig;

/// Orders certificates from the configured ACME directory.
pub struct AcmeIssuer {
    settings: AcmeSettings,
    challenges: AcmeChallenges,
    store: Arc<dyn Store>,
    secrets: Arc<SecretBox>,
    clock: Clock,
    /// `--acme-renew-before`; `None`: a third of the lifetime.
    renew_before: Option<std::time::Duration>,
    /// The account, once made or restored; one order at a time uses it to make it.
    client: Mutex<Option<Arc<AcmeClient>>>,
}

impl AcmeIssuer {
    pub fn new(
        config: &AcmeConfig,
        challenges: AcmeChallenges,
        store: Arc<dyn Store>,
        secrets: Arc<SecretBox>,
        clock: Clock,
    ) -> AcmeIssuer {
        let mut settings = AcmeSettings::new(config.directory_url.clone());
        settings.contact = config
            .email
            .iter()
            .map(|email| format!("mailto:{email}"))
            .collect();
        settings.server_root_pem = config.ca_pem.clone();
        settings.dns_hook = config.dns_hook.clone();
        AcmeIssuer {
            settings,
            challenges,
            store,
            secrets,
            clock,
            renew_before: config.renew_before,
            client: Mutex::new(None),
        }
    }

    /// The settings key the account of this directory is kept under.
    fn account_key(&self) -> String {
        format!("acme-account:{}", self.settings.directory_url)
    }

    async fn client(&self) -> Result<Arc<AcmeClient>, String> {
        let mut client = self.client.lock().await;
        if let Some(client) = client.as_ref() {
            return Ok(Arc::clone(client));
        }
        let key = self.account_key();
        if let Some(restored) = self.restore(&key).await {
            let restored = Arc::new(restored);
            *client = Some(Arc::clone(&restored));
            return Ok(restored);
        }
        let (created, credentials) =
            AcmeClient::create_account(self.settings.clone(), self.challenges.clone())
                .await
                .map_err(|e| format!("cannot register an ACME account: {e}"))?;
        match serde_json::to_string(&credentials) {
            Ok(json) => {
                let sealed = self.secrets.seal(&json, &key);
                if let Err(error) = self.store.put_setting(&key, &sealed, (self.clock)()).await {
                    tracing::warn!(%error, "acme: the account cannot be kept; a restart registers a new one");
                }
            }
            Err(error) => tracing::warn!(%error, "acme: the account credentials cannot be kept"),
        }
        let created = Arc::new(created);
        *client = Some(Arc::clone(&created));
        Ok(created)
    }

    /// The account kept for this directory, when there is one that still works.
    async fn restore(&self, key: &str) -> Option<AcmeClient> {
        let sealed = self.store.get_setting(key).await.ok()??;
        let json = self.secrets.open(&sealed, key).ok()?;
        let credentials: AccountCredentials = serde_json::from_str(&json).ok()?;
        match AcmeClient::from_credentials(
            self.settings.clone(),
            credentials,
            self.challenges.clone(),
        )
        .await
        {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::warn!(%error, "acme: the kept account cannot be used; registering a new one");
                None
            }
        }
    }
}

#[async_trait]
impl CertificateIssuer for AcmeIssuer {
    async fn issue(&self, hosts: &[String]) -> Result<IssuedPem, String> {
        let client = self.client().await?;
        let issued = client.issue(hosts).await.map_err(|e| e.to_string())?;
        Ok(IssuedPem {
            chain_pem: issued.chain_pem,
            key_pem: issued.key_pem,
        })
    }

    fn solves_dns01(&self) -> bool {
        self.settings.dns_hook.is_some()
    }

    fn needs_renewal(
        &self,
        not_before: SystemTime,
        not_after: SystemTime,
        now: SystemTime,
    ) -> bool {
        berth_certs::needs_renewal(not_before, not_after, now, self.renew_before)
    }
}
