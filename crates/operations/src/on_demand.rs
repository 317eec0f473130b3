//! On-demand domains: the one app per installation that receives the hosts no other app routes
//! (customers' own domains), the `ask` path it approves hosts on, and the issuer the router's
//! HTTPS listener calls at the handshake to order, store (sealed, owned by that app) and record
//! a certificate for an approved host. The setting lives in the store's server settings.

use std::sync::{Arc, OnceLock};

use berth_core::{Event, EventKind};
use berth_router::{OnDemandIssuer, ValidatedCertificate};
use berth_store::{Store, StoreResult};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::actor::Actor;
use crate::certificates::date;
use crate::error::{OpError, OpResult};

/// The server setting naming the catch-all app.
pub const ON_DEMAND_SETTING: &str = "on-demand-domains";
/// The code of the refusal to make an app the catch-all while another one is.
pub const CATCH_ALL_TAKEN: &str = "catch_all_taken";
/// Who on-demand certificates are stored as.
pub const ON_DEMAND_ACTOR: &str = "on-demand";
/// The longest `ask` path accepted.
pub const MAX_ASK_PATH_LEN: usize = 256;

/// The catch-all app and where it approves hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandDomains {
    pub app: String,
    /// `GET <ask_path>?domain=<host>` on one of the app's instances: 2xx approves.
    pub ask_path: Option<String>,
}

/// The stored setting; `None` when no app is the catch-all (or the setting cannot be read,
/// which is logged: the router then routes no unknown host).
pub async fn stored_on_demand(store: &dyn Store) -> StoreResult<Option<OnDemandDomains>> {
    let Some(json) = store.get_setting(ON_DEMAND_SETTING).await? else {
        return Ok(None);
    };
    match serde_json::from_str::<OnDemandDomains>(&json) {
        Ok(setting) if !setting.app.is_empty() => Ok(Some(setting)),
        Ok(_) => Ok(None),
        Err(error) => {
            tracing::warn!(%error, "the on-demand domains setting cannot be read; ignoring it");
            Ok(None)
        }
    }
}

/// Checks an `ask` path: absolute, at most [`MAX_ASK_PATH_LEN`] bytes, a valid request target
/// without a fragment. 400 naming `ask_path` otherwise.
pub fn check_ask_path(path: &str) -> OpResult<()> {
    let bad = |why: &str| OpError::field("ask_path", format!("{path:?} {why}"));
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(bad("is not a path such as /ask (it starts with one /)"));
    }
    if path.len() > MAX_ASK_PATH_LEN {
        return Err(bad(&format!("is longer than {MAX_ASK_PATH_LEN} bytes")));
    }
    if path.contains('#') || path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(bad(
            "is not a valid URL path (no spaces, control characters or #)",
        ));
    }
    Ok(())
}

impl Platform {
    /// The catch-all app, if any (admins only).
    pub async fn on_demand_domains(&self, actor: &Actor) -> OpResult<Option<OnDemandDomains>> {
        actor.require_admin()?;
        Ok(stored_on_demand(self.store.as_ref()).await?)
    }

    /// Makes `app` the catch-all app, asked at `ask_path` (admins only). Refused: 404 for an
    /// unknown app, 400 for an internal app or a bad path, 409 `catch_all_taken` while another
    /// app is the catch-all, 409 `acme_not_configured` without ACME and the router's HTTP
    /// listener. Setting the same app again changes its path.
    pub async fn set_on_demand_domains(
        &self,
        actor: &Actor,
        app: &str,
        ask_path: Option<&str>,
    ) -> OpResult<OnDemandDomains> {
        actor.require_admin()?;
        actor.audit.set_object("system/on-demand-domains");
        if let Some(path) = ask_path {
            check_ask_path(path)?;
        }
        let found = self
            .store
            .get_app(app)
            .await?
            .ok_or_else(|| OpError::not_found(format!("app {app}")))?;
        if found.routes.internal {
            return Err(OpError::field(
                "app",
                format!("app {app} is internal: it cannot receive other domains"),
            ));
        }
        self.acme_issuer(true)?;
        if let Some(current) = stored_on_demand(self.store.as_ref()).await?
            && current.app != app
        {
            return Err(OpError::conflict(
                CATCH_ALL_TAKEN,
                format!(
                    "app: app {} already receives the on-demand domains; clear it first \
                     (berth domains on-demand-clear)",
                    current.app
                ),
            ));
        }
        let setting = OnDemandDomains {
            app: app.to_string(),
            ask_path: ask_path.map(str::to_string),
        };
        let json = serde_json::to_string(&setting).expect("the setting serialises");
        self.store
            .put_setting(ON_DEMAND_SETTING, &json, self.now())
            .await?;
        actor.audit.set_detail(match &setting.ask_path {
            Some(path) => format!("app {app} receives on-demand domains, approved at {path}"),
            None => format!("app {app} receives on-demand domains (allow-list only)"),
        });
        Ok(setting)
    }

    /// No app receives unknown hosts any more (admins only); certificates already issued stay
    /// stored but are no longer served.
    pub async fn clear_on_demand_domains(&self, actor: &Actor) -> OpResult<()> {
        actor.require_admin()?;
        actor.audit.set_object("system/on-demand-domains");
        let previous = stored_on_demand(self.store.as_ref()).await?;
        self.put_no_on_demand_app().await?;
        actor.audit.set_detail(match previous {
            Some(previous) => format!("app {} no longer receives on-demand domains", previous.app),
            None => "no app received on-demand domains".to_string(),
        });
        Ok(())
    }

    /// Clears the setting when it names `app` (a deleted app).
    pub(crate) async fn forget_on_demand_app(&self, app: &str) -> OpResult<()> {
        if stored_on_demand(self.store.as_ref())
            .await?
            .is_some_and(|setting| setting.app == app)
        {
            self.put_no_on_demand_app().await?;
            tracing::info!(%app, "the deleted app no longer receives on-demand domains");
        }
        Ok(())
    }

    async fn put_no_on_demand_app(&self) -> OpResult<()> {
        let none = serde_json::json!({ "app": "" }).to_string();
        self.store
            .put_setting(ON_DEMAND_SETTING, &none, self.now())
            .await?;
        Ok(())
    }

    /// Orders and stores a certificate for an approved host of the catch-all `app`.
    async fn issue_on_demand(&self, host: &str, app: &str) -> OpResult<ValidatedCertificate> {
        let issuer = self.acme_issuer(true)?;
        let app = self
            .store
            .get_app(app)
            .await?
            .ok_or_else(|| OpError::not_found(format!("app {app}")))?;
        if let Some(existing) = self.store.get_certificate(host).await?
            && existing.app != app.name
        {
            return Err(OpError::conflict(
                CATCH_ALL_TAKEN,
                format!("{host} has a certificate of app {}", existing.app),
            ));
        }
        let (stored, validated) = self
            .issue_and_store(issuer.as_ref(), &app, host, ON_DEMAND_ACTOR)
            .await?;
        let event = Event::new(
            &app.name,
            self.now(),
            EventKind::CertificateIssued,
            format!(
                "certificate of {host} issued on demand: valid until {}",
                date(stored.not_after)
            ),
        )
        .param("host", host);
        self.controller.record(vec![event]).await;
        Ok(validated)
    }
}

/// The router's on-demand issuer: the platform's ACME issuer, storage and events. The router
/// starts before the platform is assembled, so the platform is attached once it is; until then
/// every host is refused.
///
/// The router serves on threads of its own; an order runs on the runtime the platform was
/// attached on, where the platform's database pool and HTTP clients live.
#[derive(Default)]
pub struct PlatformOnDemand {
    platform: OnceLock<(Platform, tokio::runtime::Handle)>,
}

impl PlatformOnDemand {
    pub fn new() -> Arc<PlatformOnDemand> {
        Arc::new(PlatformOnDemand::default())
    }

    /// Lets the issuer use `platform` (the first one attached stays), on the calling task's
    /// runtime.
    pub fn attach(&self, platform: Platform) {
        let _ = self
            .platform
            .set((platform, tokio::runtime::Handle::current()));
    }
}

impl OnDemandIssuer for PlatformOnDemand {
    fn issue<'a>(
        &'a self,
        host: &'a str,
        _team: &'a str,
        app: &'a str,
    ) -> BoxFuture<'a, Result<ValidatedCertificate, String>> {
        Box::pin(async move {
            let Some((platform, runtime)) = self.platform.get() else {
                return Err("the server is still starting".to_string());
            };
            let (platform, host, app) = (platform.clone(), host.to_string(), app.to_string());
            runtime
                .spawn(async move { platform.issue_on_demand(&host, &app).await })
                .await
                .map_err(|error| format!("the order was interrupted: {error}"))?
                .map_err(|error| error.to_string())
        })
    }

    fn refused(&self, host: &str, _team: &str, app: &str, reason: &str) {
        let Some((platform, runtime)) = self.platform.get() else {
            return;
        };
        let event = Event::new(
            app,
            platform.now(),
            EventKind::CertificateRefused,
            format!("no certificate for {host}: {reason}"),
        )
        .param("host", host)
        .param("reason", reason);
        let controller = platform.controller.clone();
        runtime.spawn(async move { controller.record(vec![event]).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ask_paths_are_absolute_url_paths() {
        let long = format!("/{}", "a".repeat(MAX_ASK_PATH_LEN));
        let cases: &[(&str, bool)] = &[
            ("/ask", true),
            ("/internal/tls-ask", true),
            ("/ask?token=abc", true),
            ("ask", false),
            ("", false),
            ("//evil.example/ask", false),
            ("http://evil.example/ask", false),
            ("/ask me", false),
            ("/ask\r\nHost: x", false),
            ("/ask#frag", false),
            (&long, false),
        ];
        for (path, ok) in cases {
            let got = check_ask_path(path);
            assert_eq!(got.is_ok(), *ok, "{path:?}: {got:?}");
            if let Err(error) = got {
                assert!(error.to_string().contains("ask_path"), "{error}");
            }
        }
    }
}
