//! Burns a requested amount of CPU with a duty cycle, to exercise CPU limits and metrics.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

/// One busy-then-idle cycle; short enough that the load looks steady to cgroup accounting.
const PERIOD: Duration = Duration::from_millis(20);

/// Splits a millicore budget over as few threads as possible, each at most one core.
pub fn split_millicores(total: u32) -> Vec<u32> {
    if total == 0 {
        return Vec::new();
    }
    let threads = total.div_ceil(1000);
    let base = total / threads;
    let extra = total % threads;
    (0..threads).map(|i| base + u32::from(i < extra)).collect()
}

/// Starts background threads burning `millicores` of CPU, until `duration` elapses or forever.
pub fn spawn(millicores: u32, duration: Option<Duration>) {
    let deadline = duration.map(|d| Instant::now() + d);
    for share in split_millicores(millicores) {
        let spawned = thread::Builder::new()
            .name("burn".into())
            .spawn(move || burn(share, deadline));
        if let Err(e) = spawned {
            eprintln!("cannot start burn thread: {e}");
        }
    }
}

fn burn(millicores: u32, deadline: Option<Instant>) {
    let busy = PERIOD * millicores.min(1000) / 1000;
    let mut x: u64 = 1;
    loop {
        let start = Instant::now();
        if deadline.is_some_and(|d| start >= d) {
            return;
        }
        while start.elapsed() < busy {
            for _ in 0..1000 {
                x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        let idle = PERIOD.saturating_sub(start.elapsed());
        if !idle.is_zero() {
            thread::sleep(idle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_budget_over_threads() {
        let cases: &[(u32, &[u32])] = &[
            (0, &[]),
            (1, &[1]),
            (250, &[250]),
            (1000, &[1000]),
            (1001, &[501, 500]),
            (1500, &[750, 750]),
            (2000, &[1000, 1000]),
            (2500, &[834, 833, 833]),
        ];
        for (total, want) in cases {
            let got = split_millicores(*total);
            assert_eq!(&got, want, "total {total}");
            assert_eq!(got.iter().sum::<u32>(), *total);
        }
    }

    #[test]
    fn bounded_burn_stops() {
        let deadline = Some(Instant::now() + Duration::from_millis(30));
        let handle = thread::spawn(move || burn(500, deadline));
        handle.join().unwrap();
    }
}
