//! Timers a client connection reuses from request to request: the header-read timeout hyper
//! arms for every request head and the router's own request timeout.
//!
//! A new timer per request costs an entry added to and removed from the runtime's timer wheel
//! (under the driver's lock) plus an allocation, on every request. A connection's requests mostly
//! come one after the other, each with a deadline later than the one before, so one timer per
//! connection and purpose is enough: moving its deadline later only updates the entry (tokio
//! re-files it when the old deadline comes, without waking anyone), and dropping a lease keeps it
//! for the next request. A second request at the same time (HTTP/2) gets a timer of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;

/// One reusable timer, lent to one waiter at a time.
#[derive(Debug, Default)]
pub(crate) struct TimerSlot {
    idle: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl TimerSlot {
    /// A timer that fires at `deadline`: the slot's own one when no one holds it, else a new one.
    pub(crate) fn lease(self: &Arc<Self>, deadline: tokio::time::Instant) -> LeasedTimer {
        let reused = self.idle.try_lock().ok().and_then(|mut idle| idle.take());
        let sleep = match reused {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        LeasedTimer {
            sleep: Some(sleep),
            home: Arc::clone(self),
        }
    }
}

/// A timer lent by a [`TimerSlot`]; it goes back to the slot when dropped.
#[derive(Debug)]
pub(crate) struct LeasedTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    home: Arc<TimerSlot>,
}

impl LeasedTimer {
    fn sleep(&mut self) -> Pin<&mut Sleep> {
        self.sleep
            .as_mut()
            .expect("a lease holds its timer until dropped")
            .as_mut()
    }

    /// Runs `work` until it completes (`Some`) or the timer fires first (`None`).
    pub(crate) async fn bound<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            self.sleep().poll(cx).map(|()| None)
        })
        .await
    }
}

impl Future for LeasedTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep().poll(cx)
    }
}

impl hyper::rt::Sleep for LeasedTimer {}

impl Drop for LeasedTimer {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else {
            return;
        };
        if let Ok(mut idle) = self.home.idle.try_lock()
            && idle.is_none()
        {
            *idle = Some(sleep);
        }
    }
}

/// hyper's timer for one client connection: its header-read timeouts come from one slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnTimer {
    header_read: Arc<TimerSlot>,
}

impl hyper::rt::Timer for ConnTimer {
    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.header_read.lease(deadline.into()))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        if let Some(leased) = sleep.as_mut().downcast_mut_pin::<LeasedTimer>() {
            leased.get_mut().sleep().reset(new_deadline.into());
        } else {
            *sleep = self.sleep_until(new_deadline);
        }
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_fires_at_its_deadline_and_goes_back_for_the_next_one() {
        let slot = Arc::new(TimerSlot::default());
        let start = tokio::time::Instant::now();
        let mut first = slot.lease(start + Duration::from_secs(5));
        // Work that ends first is returned…
        assert_eq!(first.bound(async { 7 }).await, Some(7));
        // …work that never ends is cut at the deadline.
        assert_eq!(first.bound(std::future::pending::<()>()).await, None);
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(5));
        let first_timer = first.sleep.as_ref().map(|s| &**s as *const Sleep);
        drop(first);

        // The next lease reuses the same timer, with its own later deadline.
        let mut second = slot.lease(start + Duration::from_secs(12));
        assert_eq!(
            second.sleep.as_ref().map(|s| &**s as *const Sleep),
            first_timer
        );
        (&mut second).await;
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_moved_later_does_not_fire_at_its_old_deadline() {
        let slot = Arc::new(TimerSlot::default());
        let start = tokio::time::Instant::now();
        drop(slot.lease(start + Duration::from_secs(1)));
        let mut later = slot.lease(start + Duration::from_secs(30));
        assert_eq!(
            later
                .bound(tokio::time::sleep(Duration::from_secs(10)))
                .await,
            Some(())
        );
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(10));
        (&mut later).await;
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn leases_at_the_same_time_each_get_a_timer_and_keep_their_deadlines() {
        let slot = Arc::new(TimerSlot::default());
        let start = tokio::time::Instant::now();
        let mut long = slot.lease(start + Duration::from_secs(20));
        let mut short = slot.lease(start + Duration::from_secs(3));
        assert_ne!(
            long.sleep.as_ref().map(|s| &**s as *const Sleep),
            short.sleep.as_ref().map(|s| &**s as *const Sleep)
        );
        assert_eq!(short.bound(std::future::pending::<()>()).await, None);
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(3));
        assert_eq!(long.bound(std::future::pending::<()>()).await, None);
        assert_eq!(tokio::time::Instant::now(), start + Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn hyper_resets_move_a_leased_timer() {
        let timer = ConnTimer::default();
        let start = Instant::now();
        let mut sleep = hyper::rt::Timer::sleep(&timer, Duration::from_secs(2));
        hyper::rt::Timer::reset(&timer, &mut sleep, start + Duration::from_secs(9));
        let paused_start = tokio::time::Instant::now();
        sleep.await;
        assert!(tokio::time::Instant::now() - paused_start >= Duration::from_secs(8));
    }
}
