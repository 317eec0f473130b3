//! The endpoint table shared by every server of an installation on one database, so that each
//! server's router sends an app's traffic to the same ready instances — not only the leader's.
//!
//! The leader runs the controllers, so only its endpoint table is live. [`publish_endpoints`]
//! writes every change of it to the store (`LeaseStore::publish_as_leader`: only in the
//! leader's own term, so a deposed leader's late write changes nothing) and then calls a nudge
//! (a database notification); a follower's [`mirror_endpoints`] reads the table on each nudge,
//! and every [`MIRROR_POLL`] in case one was lost, into its own [`Endpoints`], which its router
//! follows as the leader's does. It stops mirroring when its server starts to lead.
//!
//! An instance must leave every router before it is told to stop: the leader's stops wait on a
//! [`SharedDrain`], which lets a stop go on only once a table without the instance has been
//! published, and [`FOLLOWER_GRACE`] later (the followers' requests already on their way to it
//! finish), then waits for the leader's own router as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::clock::Clock;
use berth_core::leadership::CONTROLLER_LEASE;
use berth_store::LeaseStore;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::endpoints::{Drain, Endpoint, EndpointMap, Endpoints};

/// The key the table is published under.
pub const ENDPOINTS_KEY: &str = "endpoints";

/// How often a follower reads the table without a nudge (a notification lost while its
/// listening connection was re-established).
pub const MIRROR_POLL: Duration = Duration::from_secs(2);

/// How long a stop waits after a table without the instance was published: the followers
/// apply it within milliseconds of the notification; requests they sent just before finish.
pub const FOLLOWER_GRACE: Duration = Duration::from_secs(1);

/// How soon the leader tries again when the store refused a write.
const RETRY: Duration = Duration::from_millis(500);

/// The table as it is published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTable {
    pub apps: BTreeMap<String, Vec<Endpoint>>,
    /// Apps waiting out a crash-loop back-off (their 503 page says so at once).
    #[serde(default)]
    pub backing_off: BTreeSet<String>,
}

impl SharedTable {
    fn of(endpoints: &Endpoints, apps: &EndpointMap) -> SharedTable {
        SharedTable {
            apps: apps.clone(),
            backing_off: endpoints.backing_off_apps(),
        }
    }
}

/// What the leader last published, for its [`SharedDrain`].
pub type Written = watch::Receiver<Arc<EndpointMap>>;

/// The start of sharing on a server that may lead: the published table's watch, handed to the
/// drain at once and to [`publish_endpoints`] when the server leads.
pub fn written_channel() -> (watch::Sender<Arc<EndpointMap>>, Written) {
    watch::channel(Arc::default())
}

/// The leader's side: publishes `endpoints` now and after every change (and every
/// [`MIRROR_POLL`], for crash-loop back-offs, which change no endpoint), in term `epoch` of
/// `holder`; `nudge` tells the followers after each write, `written` the leader's drain.
/// Returns when the store answers that this server no longer holds that term.
pub async fn publish_endpoints(
    endpoints: Endpoints,
    store: Arc<dyn LeaseStore>,
    holder: String,
    epoch: i64,
    clock: Clock,
    nudge: Arc<dyn Fn() + Send + Sync>,
    written: watch::Sender<Arc<EndpointMap>>,
) {
    let mut changes = endpoints.subscribe();
    let mut last_body = None;
    loop {
        let apps = changes.borrow_and_update().clone();
        let table = SharedTable::of(&endpoints, &apps);
        let body = serde_json::to_string(&table).expect("a table serializes");
        if last_body.as_ref() != Some(&body) {
            match store
                .publish_as_leader(
                    CONTROLLER_LEASE,
                    &holder,
                    epoch,
                    ENDPOINTS_KEY,
                    &body,
                    clock(),
                )
                .await
            {
                Ok(true) => {
                    written.send_replace(apps);
                    last_body = Some(body);
                    nudge();
                }
                Ok(false) => {
                    tracing::info!(
                        epoch,
                        "no longer the leader's term: the endpoint table is not published any more"
                    );
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot publish the endpoint table; trying again");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(MIRROR_POLL) => {}
        }
    }
}

/// A follower's side: keeps `endpoints` equal to the published table — read now, on every
/// `nudged`, and every [`MIRROR_POLL`] — until `leads` says this server leads (its controllers
/// own the table from then on).
pub async fn mirror_endpoints(
    endpoints: Endpoints,
    store: Arc<dyn LeaseStore>,
    nudged: Arc<Notify>,
    leads: impl Fn() -> bool + Send + 'static,
) {
    let mut applied: Option<(i64, String)> = None;
    loop {
        if leads() {
            return;
        }
        match store.published(ENDPOINTS_KEY).await {
            Ok(Some(published)) => {
                let seen = (published.epoch, published.body);
                if applied.as_ref() != Some(&seen) {
                    match serde_json::from_str::<SharedTable>(&seen.1) {
                        Ok(table) if !leads() => {
                            endpoints.mirror(table.apps, table.backing_off);
                        }
                        Ok(_) => return,
                        Err(error) => tracing::warn!(
                            %error,
                            "the published endpoint table cannot be read; keeping the last one"
                        ),
                    }
                    applied = Some(seen);
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(
                %error,
                "cannot read the published endpoint table; routing to the last one"
            ),
        }
        tokio::select! {
            () = nudged.notified() => {}
            () = tokio::time::sleep(MIRROR_POLL) => {}
        }
    }
}

/// The leader's drain when other servers route too (see the module docs).
pub struct SharedDrain {
    /// The leader's own router, when it has one.
    pub local: Option<Arc<dyn Drain>>,
    pub written: Written,
    pub grace: Duration,
}

#[async_trait]
impl Drain for SharedDrain {
    async fn drained(&self, address: &str, port: u16, patience: Duration) {
        let deadline = Instant::now() + patience;
        let mut written = self.written.clone();
        let published = tokio::time::timeout_at(deadline, async {
            written
                .wait_for(|apps| {
                    !apps
                        .values()
                        .flatten()
                        .any(|e| e.address == address && e.port == port)
                })
                .await
                .is_ok()
        })
        .await;
        if published != Ok(true) {
            tracing::warn!(
                address,
                port,
                "no table without the instance was published within the drain period; \
                 stopping it anyway"
            );
        }
        tokio::time::sleep_until(deadline.min(Instant::now() + self.grace)).await;
        if let Some(local) = &self.local {
            let left = deadline.saturating_duration_since(Instant::now());
            local.drained(address, port, left).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str, address: &str) -> Endpoint {
        Endpoint {
            container_id: id.into(),
            instance: format!("web-{id}"),
            address: address.into(),
            port: 8080,
            revision: 1,
        }
    }

    #[test]
    fn a_table_round_trips_and_an_old_one_without_back_offs_reads() {
        let table = SharedTable {
            apps: BTreeMap::from([(
                "web".to_string(),
                vec![endpoint("a", "10.0.0.2"), endpoint("b", "10.0.0.3")],
            )]),
            backing_off: BTreeSet::from(["api".to_string()]),
        };
        let body = serde_json::to_string(&table).unwrap();
        assert_eq!(serde_json::from_str::<SharedTable>(&body).unwrap(), table);
        let without: SharedTable = serde_json::from_str(r#"{"apps":{}}"#).unwrap();
        assert_eq!(without, SharedTable::default());
        for bad in ["", "[]", r#"{"apps":{"web":[{"address":1}]}}"#] {
            assert!(serde_json::from_str::<SharedTable>(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_waits_for_a_published_table_without_the_instance_then_the_grace() {
        let (written, receiver) = written_channel();
        let with = Arc::new(EndpointMap::from([(
            "web".to_string(),
            vec![endpoint("a", "10.0.0.2"), endpoint("b", "10.0.0.3")],
        )]));
        written.send_replace(Arc::clone(&with));
        let drain = SharedDrain {
            local: None,
            written: receiver,
            grace: Duration::from_secs(1),
        };
        let started = Instant::now();
        let publish_later = async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            written.send_replace(Arc::new(EndpointMap::from([(
                "web".to_string(),
                vec![endpoint("b", "10.0.0.3")],
            )])));
        };
        let ((), ()) = tokio::join!(
            drain.drained("10.0.0.2", 8080, Duration::from_secs(30)),
            publish_later
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(4),
            "published at 3 s + 1 s"
        );

        // Never published: the drain period bounds the wait.
        let started = Instant::now();
        drain
            .drained("10.0.0.3", 8080, Duration::from_secs(5))
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // Not in any table: only the grace.
        let started = Instant::now();
        drain
            .drained("10.0.0.9", 8080, Duration::from_secs(5))
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
