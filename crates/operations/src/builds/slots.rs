//! Build slots shared fairly between teams: at most `concurrency` builds run at once, and
//! when a slot frees up it goes to the team whose turn it is (round-robin over the teams that
//! have builds waiting; first come, first served within a team). One team queueing many
//! builds therefore never holds every other team back for longer than one build each.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Waiting items by team, served round-robin. Pure: no clock, no IO.
#[derive(Debug)]
pub struct FairQueue<T> {
    /// Teams with something waiting, in the order of their turns.
    turns: VecDeque<String>,
    waiting: HashMap<String, VecDeque<T>>,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            turns: VecDeque::new(),
            waiting: HashMap::new(),
        }
    }
}

impl<T> FairQueue<T> {
    /// Adds `item` behind the team's earlier ones; a team new to the queue takes the last turn.
    pub fn push(&mut self, team: &str, item: T) {
        let queue = self.waiting.entry(team.to_owned()).or_default();
        if queue.is_empty() {
            self.turns.push_back(team.to_owned());
        }
        queue.push_back(item);
    }

    /// The first item of the team whose turn it is; that team goes to the back of the turns.
    pub fn pop(&mut self) -> Option<(String, T)> {
        let team = self.turns.pop_front()?;
        let queue = self.waiting.get_mut(&team)?;
        let item = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&team);
        } else {
            self.turns.push_back(team.clone());
        }
        Some((team, item))
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

struct Inner {
    free: usize,
    queue: FairQueue<oneshot::Sender<Slot>>,
}

/// The slots; clones share them.
#[derive(Clone)]
pub struct BuildSlots {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for BuildSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildSlots").finish_non_exhaustive()
    }
}

/// The right to run one build; handed to the next waiter when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Option<BuildSlots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.release();
        }
    }
}

impl BuildSlots {
    pub fn new(concurrency: usize) -> Self {
        BuildSlots {
            inner: Arc::new(Mutex::new(Inner {
                free: concurrency.max(1),
                queue: FairQueue::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot for a build of `team`. Dropping the future gives up the place.
    pub async fn acquire(&self, team: &str) -> Slot {
        let waiting = {
            let mut inner = self.lock();
            if inner.free > 0 && inner.queue.is_empty() {
                inner.free -= 1;
                return Slot {
                    slots: Some(self.clone()),
                };
            }
            let (sender, receiver) = oneshot::channel();
            inner.queue.push(team, sender);
            receiver
        };
        match waiting.await {
            Ok(slot) => slot,
            // The slots went away with the server: nothing left to wait for.
            Err(_) => std::future::pending().await,
        }
    }

    /// Hands a freed slot to the next waiter still waiting, or keeps it free.
    fn release(&self) {
        let mut inner = self.lock();
        while let Some((_, waiter)) = inner.queue.pop() {
            let slot = Slot {
                slots: Some(self.clone()),
            };
            match waiter.send(slot) {
                Ok(()) => return,
                // That waiter gave up: forget the slot value without releasing it again.
                Err(mut slot) => {
                    slot.slots = None;
                }
            }
        }
        inner.free += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_take_turns() {
        let mut queue = FairQueue::default();
        for (team, build) in [("a", 1), ("a", 2), ("a", 3), ("b", 4), ("c", 5), ("b", 6)] {
            queue.push(team, build);
        }
        let mut order = Vec::new();
        while let Some((team, build)) = queue.pop() {
            order.push((team, build));
            if build == 1 {
                // A team arriving late takes its turn after those already in line.
                queue.push("d", 7);
            }
        }
        let order: Vec<(&str, i32)> = order.iter().map(|(t, b)| (t.as_str(), *b)).collect();
        assert_eq!(
            order,
            [
                ("a", 1),
                ("b", 4),
                ("c", 5),
                ("a", 2),
                ("d", 7),
                ("b", 6),
                ("a", 3)
            ]
        );
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_next_team() {
        let slots = BuildSlots::new(1);
        let first = slots.acquire("a").await;
        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (team, build) in [("a", 2), ("a", 3), ("b", 4)] {
            let slots = slots.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let slot = slots.acquire(team).await;
                done.send(build).unwrap();
                drop(slot);
            }));
            // Queue them in this order.
            tokio::task::yield_now().await;
        }
        // One gives up its place: the slot skips it.
        let slots_for_quitter = slots.clone();
        let quitter = tokio::spawn(async move { slots_for_quitter.acquire("c").await });
        tokio::task::yield_now().await;
        quitter.abort();
        let _ = quitter.await;
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        let mut order = Vec::new();
        while let Ok(build) = finished.try_recv() {
            order.push(build);
        }
        assert_eq!(order, [2, 4, 3]);
        // Every slot came back.
        let again = slots.acquire("z").await;
        drop(again);
    }
}
