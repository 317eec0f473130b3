//! A keyed, de-duplicating work queue: one key is never processed twice at once.
//!
//! Modeled on client-go's workqueue: a key added while queued is merged; a key added while
//! being processed is marked dirty and re-queued when its worker calls [`WorkQueue::done`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    /// Earliest pending delayed add per key, so timers do not pile up.
    scheduled: HashMap<String, Instant>,
}

/// The reconcile queue of app names.
#[derive(Default)]
pub struct WorkQueue {
    state: Mutex<State>,
    notify: Notify,
}

impl WorkQueue {
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `key` (merged with a pending entry; deferred while it is being processed).
    pub fn add(&self, key: &str) {
        let mut state = self.lock();
        if state.active.contains(key) {
            state.dirty.insert(key.to_string());
            return;
        }
        if state.queued.insert(key.to_string()) {
            state.queue.push_back(key.to_string());
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`, unless an earlier delayed add is already pending.
    pub fn add_after(self: &Arc<Self>, key: &str, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let due = Instant::now() + delay;
        {
            let mut state = self.lock();
            if let Some(existing) = state.scheduled.get(key)
                && *existing <= due
            {
                return;
            }
            state.scheduled.insert(key.to_string(), due);
        }
        let queue = Arc::clone(self);
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let current = {
                let mut state = queue.lock();
                let current = state.scheduled.get(&key) == Some(&due);
                if current {
                    state.scheduled.remove(&key);
                }
                current
            };
            // A timer superseded by an earlier one has nothing left to do.
            if current {
                queue.add(&key);
            }
        });
    }

    /// Waits for the next key and marks it active.
    pub async fn next(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if let Some(key) = state.queue.pop_front() {
                    state.queued.remove(&key);
                    state.active.insert(key.clone());
                    if !state.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` finished; re-queues it when it was added meanwhile.
    pub fn done(&self, key: &str) {
        let requeue = {
            let mut state = self.lock();
            state.active.remove(key);
            state.dirty.remove(key)
        };
        if requeue {
            self.add(key);
        }
    }

    /// Number of keys waiting (not counting active ones).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicates_merge_and_active_keys_defer() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        let first = q.next().await;
        assert_eq!(first, "a");
        // Added while active: not queued twice, re-queued after done.
        q.add("a");
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "b");
        q.done("b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.next().await, "a");
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_keep_the_earliest() {
        let q = WorkQueue::new();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(2));
        q.add_after("a", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        assert_eq!(q.len(), 1);
        assert_eq!(q.next().await, "a");
        q.done("a");
        tokio::time::sleep(Duration::from_secs(20)).await;
        // The 5 s and 10 s timers were superseded by the 2 s one.
        assert!(q.is_empty());
    }
}
