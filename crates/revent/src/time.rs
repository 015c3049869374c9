//! The base's clock: monotonic nanoseconds for deadlines, read once per loop iteration and cached.

use crate::sys;
use std::time::{Duration, Instant, SystemTime};

/// How often the cached offset between the wall clock and the monotonic clock is refreshed.
const WALL_SYNC_NS: u64 = 5_000_000_000;

#[derive(Debug)]
pub(crate) struct Clock {
    coarse: bool,
    no_cache: bool,
    /// The cached time; 0 when the cache is clear.
    cached: u64,
    /// Times are nanoseconds since `origin`, plus one (so that 0 can mean "no cached time").
    origin: Instant,
    /// The coarse clock's reading at `origin`.
    origin_coarse: u64,
    /// Wall-clock time at `wall_at`.
    wall: SystemTime,
    wall_at: u64,
}

impl Clock {
    /// `precise` asks for the full-resolution clock; otherwise the coarse clock is used when its
    /// resolution is 1 ms or better (as libevent does). `no_cache` reads the clock on every call.
    pub(crate) fn new(precise: bool, no_cache: bool) -> Clock {
        let coarse = !precise && sys::coarse_resolution_ns() <= 1_000_000;
        let origin_coarse = if coarse {
            sys::monotonic_coarse_ns()
        } else {
            0
        };
        Clock {
            coarse,
            no_cache,
            cached: 0,
            origin: Instant::now(),
            origin_coarse,
            wall: SystemTime::now(),
            wall_at: 1,
        }
    }

    /// Reads the clock. The precise clock is `Instant` itself (CLOCK_MONOTONIC), so converting back
    /// with `instant()` is exact.
    #[inline]
    fn read(&self) -> u64 {
        if self.coarse {
            sys::monotonic_coarse_ns().saturating_sub(self.origin_coarse) + 1
        } else {
            self.origin.elapsed().as_nanos() as u64 + 1
        }
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
        self.origin + Duration::from_nanos(ns.saturating_sub(1))
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
