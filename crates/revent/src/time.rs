//! The base's clock: monotonic nanoseconds for deadlines, read once per loop iteration and cached.
//!
//! revent always reads `CLOCK_MONOTONIC` (through the vDSO, about 25 ns here), so `PRECISE_TIMER` is
//! what every base already has. libevent 2.1 reads `CLOCK_MONOTONIC_COARSE` by default: cheaper (about
//! 5 ns), but it lags the real time by up to a tick and more (5.7 ms measured on a 4 ms-tick VM), so
//! deadlines computed from it fire timers early. Inside the loop the time is cached per iteration, so
//! timers added by callbacks cost no clock read either way.

use crate::sys;
use std::time::{Duration, Instant, SystemTime};

/// How often the cached offset between the wall clock and the monotonic clock is refreshed.
const WALL_SYNC_NS: u64 = 5_000_000_000;

#[derive(Debug)]
pub(crate) struct Clock {
    no_cache: bool,
    /// The cached time (ns on the monotonic clock); 0 when the cache is clear.
    cached: u64,
    /// An `Instant` and the monotonic ns read just after it: both clocks are CLOCK_MONOTONIC, so
    /// `origin + (t - origin_ns)` is `t` as an `Instant`, early by at most the gap between the
    /// reads, never late: a deadline `pending` reports has passed when its timer runs.
    origin: Instant,
    origin_ns: u64,
    /// Wall-clock time at `wall_at`.
    wall: SystemTime,
    wall_at: u64,
}

impl Clock {
    /// `no_cache` reads the clock on every call.
    pub(crate) fn new(no_cache: bool) -> Clock {
        let origin = Instant::now();
        let origin_ns = sys::monotonic_ns();
        Clock {
            no_cache,
            cached: 0,
            origin,
            origin_ns,
            wall: SystemTime::now(),
            wall_at: origin_ns,
        }
    }

    #[inline]
    fn read(&self) -> u64 {
        sys::monotonic_ns()
    }

    /// The current time in ns: the cached value if there is one.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        if self.cached != 0 {
            self.cached
        } else {
            self.read()
        }
    }

    /// The deadline for a timeout of `d` ns starting at `from`.
    #[inline]
    pub(crate) fn deadline_from(&self, from: u64, d: u64) -> u64 {
        from.saturating_add(d)
    }

    /// The deadline for a timeout of `d` ns from now.
    #[inline]
    pub(crate) fn deadline(&self, d: u64) -> u64 {
        self.deadline_from(self.now(), d)
    }

    /// Drops the cached time, so reads go to the clock (done before the loop sleeps).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.cached = 0;
    }

    /// Reads the clock and caches it (unless caching is off); returns the time.
    #[inline]
    pub(crate) fn update(&mut self) -> u64 {
        let now = self.read();
        if !self.no_cache {
            self.cached = now;
        }
        if now.wrapping_sub(self.wall_at) >= WALL_SYNC_NS {
            self.wall = SystemTime::now();
            self.wall_at = now;
        }
        now
    }

    /// Converts a time of this clock to an `Instant`.
    pub(crate) fn instant(&self, ns: u64) -> Instant {
        if ns >= self.origin_ns {
            self.origin + Duration::from_nanos(ns - self.origin_ns)
        } else {
            self.origin
                .checked_sub(Duration::from_nanos(self.origin_ns - ns))
                .unwrap_or(self.origin)
        }
    }

    /// The current time as an `Instant`: the cached time in the loop, the exact time outside it.
    pub(crate) fn now_instant(&self) -> Instant {
        if self.cached != 0 {
            self.instant(self.cached)
        } else {
            Instant::now()
        }
    }

    /// Wall-clock time matching the current (cached) monotonic time.
    pub(crate) fn wall(&self) -> SystemTime {
        let now = self.now();
        if now >= self.wall_at {
            self.wall + Duration::from_nanos(now - self.wall_at)
        } else {
            self.wall - Duration::from_nanos(self.wall_at - now)
        }
    }
}

/// A duration in ns, saturating (a timeout of centuries is as good as never).
#[inline]
pub(crate) fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128 / 2) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock time turned into an `Instant` is never later than an `Instant` read after the clock:
    /// so the deadline `pending` reports has passed when the timer runs. (Each clock pairs its two
    /// reads anew; a pairing in the wrong order shows here within a few hundred tries.)
    #[test]
    fn converted_times_are_never_late() {
        for _ in 0..10_000 {
            let c = Clock::new(true);
            let ns = sys::monotonic_ns();
            let after = Instant::now();
            assert!(c.instant(ns) <= after, "converted time after the real one");
        }
    }
}
