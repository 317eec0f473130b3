//! Scale to zero when idle: Berth's own scale of an app that received no request through the
//! router for its idle timeout, and the wake on the next request (the router signals it through
//! [`Wakes`]; the held requests go on once an instance is ready). Both are ordinary changes of
//! the app (quota admission, events, the controller woken), made without an actor.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_core::idle::{Activity, Idled, describe_timeout, idle_due};
use berth_core::{Event, EventKind, Millis};
use tokio::sync::Notify;

use crate::apps::Modification;
use crate::error::{OpError, OpResult};

/// After a refused wake, requests get the refusal at once for this long before the next
/// attempt (so a full quota is not retried on every request).
pub const WAKE_RETRY_AFTER_MS: Millis = 10_000;

/// The apps the router asked to wake, coalesced (one wake per app however many requests
/// arrive), and the wakes the quota refused lately.
#[derive(Debug, Default)]
pub struct Wakes {
    pending: Mutex<BTreeSet<String>>,
    asked: Notify,
    /// App → (why, when).
    refused: Mutex<HashMap<String, (String, Millis)>>,
}

impl berth_router::Wake for Wakes {
    fn wake(&self, _team: &str, app: &str) {
        let mut pending = lock(&self.pending);
        if !pending.contains(app) {
            pending.insert(app.to_string());
            self.asked.notify_one();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain sets of names: a panic elsewhere cannot leave them inconsistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Wakes {
    /// Why waking `app` was refused, when that was less than [`WAKE_RETRY_AFTER_MS`] ago.
    pub fn refusal(&self, app: &str, now: Millis) -> Option<String> {
        lock(&self.refused)
            .get(app)
            .filter(|(_, at)| now - at < WAKE_RETRY_AFTER_MS)
            .map(|(why, _)| why.clone())
    }

    async fn next(&self) -> Vec<String> {
        loop {
            let asked: Vec<String> = std::mem::take(&mut *lock(&self.pending))
                .into_iter()
                .collect();
            if !asked.is_empty() {
                return asked;
            }
            self.asked.notified().await;
        }
    }
}

impl crate::Platform {
    /// Scales `name` to 0 when it is due (see [`idle_due`]) given what the router saw,
    /// remembering its instance count; returns whether it did.
    pub async fn idle_out(&self, name: &str, activity: Activity) -> OpResult<bool> {
        let mut idled = false;
        self.modify(None, name, |app, _, now| {
            idled = idle_due(app, activity, now);
            let Some(timeout) = app.idle_timeout_secs.filter(|_| idled) else {
                return Ok(Modification::Unchanged);
            };
            let replicas = app.replicas;
            app.idled = Some(Idled {
                replicas,
                since: now,
            });
            app.replicas = 0;
            let timeout = describe_timeout(timeout);
            Ok(Modification::Settings(vec![
                Event::new(
                    name,
                    now,
                    EventKind::IdledOut,
                    format!("idle for {timeout}: scaled to 0; the next request starts it"),
                )
                .param("timeout", timeout)
                .param("replicas", replicas),
            ]))
        })
        .await?;
        Ok(idled)
    }

    /// Scales an app Berth scaled to 0 when idle back to the count it had, as the quota
    /// admits; `false` when it was not idle (woken already, or scaled by someone since).
    pub async fn wake_app(&self, name: &str) -> OpResult<bool> {
        let mut woken = false;
        self.modify(None, name, |app, _, now| {
            let Some(idled) = app.idled.take() else {
                woken = false;
                return Ok(Modification::Unchanged);
            };
            woken = true;
            app.replicas = idled.replicas;
            Ok(Modification::Settings(vec![
                Event::new(
                    name,
                    now,
                    EventKind::Woken,
                    format!(
                        "a request arrived: scaled from 0 back to {} instances",
                        idled.replicas
                    ),
                )
                .param("replicas", idled.replicas),
            ]))
        })
        .await?;
        Ok(woken)
    }

    /// Wakes the apps the router asks for, one after the other, for as long as the server
    /// runs. A wake the quota refuses is recorded (an event, and [`Wakes::refusal`] for the
    /// router's 503 page) and not tried again for [`WAKE_RETRY_AFTER_MS`].
    pub async fn keep_waking(&self, wakes: Arc<Wakes>) {
        loop {
            for name in wakes.next().await {
                let now = self.now();
                if wakes.refusal(&name, now).is_some() {
                    continue;
                }
                match self.wake_app(&name).await {
                    Ok(_) => {
                        lock(&wakes.refused).remove(&name);
                    }
                    Err(OpError::QuotaExceeded { team, exceeded }) => {
                        let why = OpError::quota_message(&team, &exceeded);
                        tracing::warn!(app = %name, %why, "waking an idle app was refused");
                        self.controller
                            .record(vec![
                                Event::new(
                                    &name,
                                    now,
                                    EventKind::WakeRefused,
                                    format!(
                                        "a request arrived but starting the app was refused: {why}"
                                    ),
                                )
                                .param("reason", &why),
                            ])
                            .await;
                        lock(&wakes.refused).insert(name, (why, now));
                    }
                    Err(error) => {
                        tracing::warn!(app = %name, %error, "cannot wake an idle app");
                    }
                }
            }
        }
    }

    /// Every `period`, scales to 0 the apps with an idle timeout that received no request
    /// through the router for that long. Needs the router (without it nothing is seen, and
    /// nothing could wake the app): returns at once when it is off.
    pub async fn keep_idling(&self, period: Duration) {
        let Some(stats) = self.router.clone() else {
            return;
        };
        let watching_since = self.now();
        loop {
            tokio::time::sleep(period).await;
            let apps = match crate::apps::list_apps(self.store.as_ref(), None, None, None).await {
                Ok((apps, _)) => apps,
                Err(error) => {
                    tracing::warn!(%error, "idle check: cannot list the apps");
                    continue;
                }
            };
            let now = self.now();
            for listed in apps {
                let app = listed.app;
                let counters = stats.app_counters_of(&app.team, &app.name);
                let activity = Activity {
                    last_request: counters.as_ref().and_then(|c| c.last_request_at),
                    in_progress: counters.as_ref().map_or(0, |c| c.in_flight),
                    watching_since,
                };
                if !idle_due(&app, activity, now) {
                    continue;
                }
                if let Err(error) = self.idle_out(&app.name, activity).await {
                    tracing::warn!(app = %app.name, %error, "cannot scale an idle app to 0");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_router::Wake;

    #[tokio::test]
    async fn wakes_are_coalesced_per_app() {
        let wakes = Wakes::default();
        for app in ["web", "api", "web", "web"] {
            wakes.wake("shop", app);
        }
        assert_eq!(wakes.next().await, ["api", "web"]);
        wakes.wake("shop", "web");
        assert_eq!(wakes.next().await, ["web"]);
    }

    #[test]
    fn a_refused_wake_is_reported_for_a_while() {
        let wakes = Wakes::default();
        lock(&wakes.refused).insert("web".into(), ("quota full".into(), 1_000));
        // (now, refusal reported)
        let cases = [
            (1_000, true),
            (1_000 + WAKE_RETRY_AFTER_MS - 1, true),
            (1_000 + WAKE_RETRY_AFTER_MS, false),
        ];
        for (now, reported) in cases {
            assert_eq!(wakes.refusal("web", now).is_some(), reported, "{now}");
            assert_eq!(wakes.refusal("api", now), None);
        }
    }
}
