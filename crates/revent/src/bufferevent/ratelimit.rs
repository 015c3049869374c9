//! Rate limiting: token buckets per bufferevent and per group (libevent's `ev_token_bucket_cfg` and
//! `bufferevent_rate_limit_group`).
//!
//! A bucket holds up to `burst` bytes of tokens and gains `rate` tokens every `tick`. Reading and
//! writing spend tokens; at zero the direction is suspended and a timer wakes it at the next tick. A
//! group's bucket is shared: each member may use its share of what the group has left (at least the
//! group's minimum share), as well as its own bucket.

use super::bev::{self, Cx, Store, SUSPEND_RATE};
use super::BufferEvent;
use crate::base::{Core, EventBase};
use crate::error::{Error, Handle, Result};
use crate::event::{EventId, What};
use crate::slab::Key;
use std::time::{Duration, Instant};

/// Token-bucket settings: bytes per tick and the most that can be saved up, for each direction.
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, RateLimit};
/// use std::time::Duration;
/// let mut base = EventBase::new().unwrap();
/// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// let slow = RateLimit { read_rate: 1024, read_burst: 4096, write_rate: 512, write_burst: 512, tick: Duration::from_secs(1) };
/// a.set_rate_limit(&mut base, Some(slow)).unwrap();
/// a.set_rate_limit(&mut base, None).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Bytes that may be read per tick.
    pub read_rate: usize,
    /// The most bytes that may be read at once.
    pub read_burst: usize,
    /// Bytes that may be written per tick.
    pub write_rate: usize,
    /// The most bytes that may be written at once.
    pub write_burst: usize,
    /// The refill period (libevent's default: one second).
    pub tick: Duration,
}

impl RateLimit {
    /// The same limit both ways: `rate` bytes per `tick`, at most `burst` at once.
    ///
    /// ```
    /// use revent::RateLimit;
    /// use std::time::Duration;
    /// let cfg = RateLimit::symmetric(1000, 4000, Duration::from_millis(100));
    /// assert_eq!((cfg.read_rate, cfg.write_burst), (1000, 4000));
    /// ```
    pub fn symmetric(rate: usize, burst: usize, tick: Duration) -> RateLimit {
        RateLimit {
            read_rate: rate,
            read_burst: burst,
            write_rate: rate,
            write_burst: burst,
            tick,
        }
    }

    fn check(&self) -> Result<()> {
        if self.tick.is_zero() || self.read_rate == 0 || self.write_rate == 0 {
            return Err(Error::InvalidArgument(
                "rate limit needs a tick and non-zero rates",
            ));
        }
        Ok(())
    }
}

/// libevent's default minimum share of a group's budget for each member.
const DEFAULT_MIN_SHARE: usize = 64;

#[derive(Debug)]
struct Bucket {
    cfg: RateLimit,
    read: i64,
    write: i64,
    epoch: Instant,
    tick: u64,
}

impl Bucket {
    fn new(cfg: RateLimit, now: Instant) -> Bucket {
        Bucket {
            cfg,
            read: cfg.read_burst as i64,
            write: cfg.write_burst as i64,
            epoch: now,
            tick: 0,
        }
    }

    fn tick_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.cfg.tick.as_nanos().max(1))
            as u64
    }

    fn refill(&mut self, now: Instant) {
        let t = self.tick_of(now);
        if t > self.tick {
            let n = (t - self.tick).min(1 << 20) as i64;
            self.read = (self.read + n * self.cfg.read_rate as i64).min(self.cfg.read_burst as i64);
            self.write =
                (self.write + n * self.cfg.write_rate as i64).min(self.cfg.write_burst as i64);
            self.tick = t;
        }
    }

    fn next_tick_in(&self, now: Instant) -> Duration {
        let next = self.epoch + self.cfg.tick * (self.tick_of(now) as u32 + 1);
        next.saturating_duration_since(now)
            .max(Duration::from_millis(1))
    }
}

pub(crate) struct Limiter {
    own: Option<Bucket>,
    group: Option<RateLimitGroup>,
    /// The group's share for this member, as of the last refresh.
    group_read: usize,
    group_write: usize,
    timer: EventId,
}

impl Limiter {
    pub(crate) fn read_allowance(&self) -> usize {
        let own = self
            .own
            .as_ref()
            .map_or(usize::MAX, |b| b.read.max(0) as usize);
        own.min(self.group_read)
    }

    pub(crate) fn write_allowance(&self) -> usize {
        let own = self
            .own
            .as_ref()
            .map_or(usize::MAX, |b| b.write.max(0) as usize);
        own.min(self.group_write)
    }

    pub(crate) fn free(self, core: &mut Core) {
        let _ = core.free(self.timer);
    }
}

pub(crate) struct Group {
    bucket: Bucket,
    members: Vec<BufferEvent>,
    min_share: usize,
    /// Bytes the members read and wrote while in the group (libevent's group totals).
    total_read: u64,
    total_written: u64,
}

/// A handle to a group of bufferevents sharing one rate limit.
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, RateLimit, RateLimitGroup};
/// use std::time::Duration;
/// let mut base = EventBase::new().unwrap();
/// let group = RateLimitGroup::new(&mut base, RateLimit::symmetric(4096, 4096, Duration::from_millis(50))).unwrap();
/// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// group.add(&mut base, a).unwrap();
/// group.free(&mut base).unwrap();
/// ```
#[must_use = "a group lives in the base until freed"]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RateLimitGroup {
    index: u32,
    generation: u32,
}

impl RateLimitGroup {
    fn key(self) -> Key {
        Key {
            index: self.index,
            generation: self.generation,
        }
    }
}

const STALE_GROUP: Error = Error::Stale(Handle::RateLimitGroup);

fn group_mut(st: &mut Store, g: RateLimitGroup) -> Result<&mut Group> {
    st.groups.get_mut(g.key()).ok_or(STALE_GROUP)
}

/// Makes sure `h` has a limiter (with its wake-up timer).
fn limiter<'a>(core: &mut Core, st: &'a mut Store, h: BufferEvent) -> Result<&'a mut Limiter> {
    let b = st.get_mut(h)?;
    if b.rate.is_none() {
        // A counted event (as libevent's refill timer): a bufferevent waiting for tokens keeps the
        // loop alive.
        let timer = core.new_timer(move |base, _| wake(base, h));
        b.rate = Some(Box::new(Limiter {
            own: None,
            group: None,
            group_read: usize::MAX,
            group_write: usize::MAX,
            timer,
        }));
    }
    Ok(b.rate.as_mut().expect("just made"))
}

/// Drops the limiter when neither an own limit nor a group is left.
fn tidy(cx: &mut Cx, h: BufferEvent) {
    let Cx { core, st } = cx;
    let Ok(b) = st.get_mut(h) else { return };
    if matches!(&b.rate, Some(r) if r.own.is_none() && r.group.is_none()) {
        if let Some(r) = b.rate.take() {
            b.read_suspended &= !SUSPEND_RATE;
            b.write_suspended &= !SUSPEND_RATE;
            r.free(core);
            st.mark_dirty(h);
        }
    }
}

/// Sets (or with `None` removes) a bufferevent's own rate limit.
pub(crate) fn set(cx: &mut Cx, h: BufferEvent, cfg: Option<RateLimit>) -> Result<()> {
    if let Some(c) = &cfg {
        c.check()?;
    }
    let now = cx.core.now_cached();
    limiter(cx.core, cx.st, h)?.own = cfg.map(|c| Bucket::new(c, now));
    tidy(cx, h);
    refresh(cx, h);
    cx.st.mark_dirty(h);
    Ok(())
}

/// Refills the buckets of `h` (and its group) up to now and recomputes its group share.
pub(crate) fn refresh(cx: &mut Cx, h: BufferEvent) {
    let now = cx.core.now_cached();
    let st = &mut *cx.st;
    let Ok(b) = st.get_mut(h) else { return };
    let Some(r) = &mut b.rate else { return };
    if let Some(own) = &mut r.own {
        own.refill(now);
    }
    let Some(g) = r.group else { return };
    let (read, write) = match group_mut(st, g) {
        Ok(group) => {
            group.bucket.refill(now);
            let n = group.members.len().max(1) as i64;
            let share = |tokens: i64| -> usize {
                if tokens <= 0 {
                    0
                } else {
                    ((tokens / n) as usize)
                        .max(group.min_share)
                        .min(tokens as usize)
                }
            };
            (share(group.bucket.read), share(group.bucket.write))
        }
        Err(_) => (usize::MAX, usize::MAX),
    };
    if let Some(r) = st.get_mut(h).ok().and_then(|b| b.rate.as_mut()) {
        r.group_read = read;
        r.group_write = write;
    }
}

/// Spends tokens for `n` bytes read (`read`) or written.
pub(crate) fn consumed(cx: &mut Cx, h: BufferEvent, n: usize, read: bool) {
    let st = &mut *cx.st;
    let Ok(b) = st.get_mut(h) else { return };
    let Some(r) = &mut b.rate else { return };
    if let Some(own) = &mut r.own {
        if read {
            own.read -= n as i64;
        } else {
            own.write -= n as i64;
        }
    }
    if let Some(g) = r.group {
        if let Ok(group) = group_mut(st, g) {
            if read {
                group.bucket.read -= n as i64;
                group.total_read += n as u64;
            } else {
                group.bucket.write -= n as i64;
                group.total_written += n as u64;
            }
        }
    }
    refresh(cx, h);
    let Ok(b) = cx.st.get_mut(h) else { return };
    let Some(r) = &b.rate else { return };
    let (ra, wa) = (r.read_allowance(), r.write_allowance());
    if ra == 0 || wa == 0 {
        if ra == 0 {
            b.read_suspended |= SUSPEND_RATE;
        }
        if wa == 0 {
            b.write_suspended |= SUSPEND_RATE;
        }
        arm(cx, h);
    }
}

/// Called when a direction ran out: sleep until the next tick.
pub(crate) fn suspended(cx: &mut Cx, h: BufferEvent) {
    arm(cx, h);
}

/// Arms the limiter's timer for the next tick of its own or its group's bucket, unless it is armed.
fn arm(cx: &mut Cx, h: BufferEvent) {
    let Cx { core, st } = cx;
    let now = core.now_cached();
    let Ok(b) = st.get(h) else { return };
    let Some(r) = &b.rate else { return };
    let own = r.own.as_ref().map(|b| b.next_tick_in(now));
    let group = r
        .group
        .and_then(|g| st.groups.get(g.key()))
        .map(|g| g.bucket.next_tick_in(now));
    let wait = match (own, group) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(Duration::from_millis(1)),
    };
    let armed = core
        .pending(r.timer, What::TIMEOUT)
        .map_or(true, |p| !p.0.is_empty());
    if !armed {
        let _ = core.add(r.timer, Some(wait));
    }
}

/// The timer: refill, and resume whatever has tokens again.
fn wake(base: &mut EventBase, h: BufferEvent) {
    let mut cx = bev::cx(base);
    refresh(&mut cx, h);
    let Ok(b) = cx.st.get_mut(h) else { return };
    let Some(r) = &b.rate else { return };
    let (ra, wa) = (r.read_allowance(), r.write_allowance());
    if ra > 0 {
        b.read_suspended &= !SUSPEND_RATE;
    }
    if wa > 0 {
        b.write_suspended &= !SUSPEND_RATE;
    }
    if ra == 0 || wa == 0 {
        arm(&mut cx, h);
    }
    cx.st.mark_dirty(h);
}

impl RateLimitGroup {
    /// A new group whose members share `cfg`'s budget.
    pub fn new(base: &mut EventBase, cfg: RateLimit) -> Result<RateLimitGroup> {
        cfg.check()?;
        let group = Group {
            bucket: Bucket::new(cfg, base.now_cached()),
            members: Vec::new(),
            min_share: DEFAULT_MIN_SHARE,
            total_read: 0,
            total_written: 0,
        };
        let k = bev::cx(base).st.groups.insert(group);
        Ok(RateLimitGroup {
            index: k.index,
            generation: k.generation,
        })
    }

    /// Adds `bev` to the group (leaving any group it was in).
    pub fn add(self, base: &mut EventBase, bev: BufferEvent) -> Result<()> {
        let mut cx = bev::cx(base);
        group_mut(cx.st, self)?;
        cx.st.get(bev)?;
        leave_group(&mut cx, bev);
        limiter(cx.core, cx.st, bev)?.group = Some(self);
        group_mut(cx.st, self)?.members.push(bev);
        refresh(&mut cx, bev);
        Ok(())
    }

    /// Takes `bev` out of the group.
    pub fn remove(self, base: &mut EventBase, bev: BufferEvent) -> Result<()> {
        let mut cx = bev::cx(base);
        group_mut(cx.st, self)?;
        leave_group(&mut cx, bev);
        Ok(())
    }

    /// The least each member may use of the group's budget even when many share it.
    pub fn set_min_share(self, base: &mut EventBase, bytes: usize) -> Result<()> {
        group_mut(bev::cx(base).st, self)?.min_share = bytes;
        Ok(())
    }

    /// Number of member bufferevents.
    pub fn members(self, base: &mut EventBase) -> Result<usize> {
        Ok(group_mut(bev::cx(base).st, self)?.members.len())
    }

    /// Frees the group; its members go on without it.
    pub fn free(self, base: &mut EventBase) -> Result<()> {
        let mut cx = bev::cx(base);
        let members = std::mem::take(&mut group_mut(cx.st, self)?.members);
        for m in members {
            leave_group(&mut cx, m);
        }
        cx.st.groups.remove(self.key());
        Ok(())
    }
}

/// Takes `h` out of its group, if any.
pub(crate) fn leave_group(cx: &mut Cx, h: BufferEvent) {
    let st = &mut *cx.st;
    let Some(g) = st
        .get_mut(h)
        .ok()
        .and_then(|b| b.rate.as_mut())
        .and_then(|r| r.group.take())
    else {
        return;
    };
    if let Ok(group) = group_mut(st, g) {
        group.members.retain(|&m| m != h);
    }
    if let Some(r) = st.get_mut(h).ok().and_then(|b| b.rate.as_mut()) {
        r.group_read = usize::MAX;
        r.group_write = usize::MAX;
    }
    tidy(cx, h);
}

/// Brings `h`'s rate suspension in line with its allowance after a bucket changed outside reading
/// and writing (a decrement through the API): a direction at zero is suspended (and the refill
/// timer armed), a direction with tokens resumes.
fn reassess(cx: &mut Cx, h: BufferEvent) {
    refresh(cx, h);
    let Ok(b) = cx.st.get_mut(h) else { return };
    let Some(r) = &b.rate else { return };
    let (ra, wa) = (r.read_allowance(), r.write_allowance());
    if ra == 0 {
        b.read_suspended |= SUSPEND_RATE;
    } else {
        b.read_suspended &= !SUSPEND_RATE;
    }
    if wa == 0 {
        b.write_suspended |= SUSPEND_RATE;
    } else {
        b.write_suspended &= !SUSPEND_RATE;
    }
    if ra == 0 || wa == 0 {
        arm(cx, h);
    }
    cx.st.mark_dirty(h);
}

// ---- inspection and manual adjustment (libevent's rate-limit inspection functions) ----

impl BufferEvent {
    /// The tokens left in this bufferevent's own bucket, `(read, write)`, refilled up to now;
    /// `None` without an own limit (a group's bucket is not counted). Negative once
    /// [`decrement_rate_limit`](Self::decrement_rate_limit) took more than there was.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase, RateLimit};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// assert_eq!(a.rate_limit_tokens(&mut base).unwrap(), None);
    /// let cfg = RateLimit::symmetric(100, 400, Duration::from_secs(60));
    /// a.set_rate_limit(&mut base, Some(cfg)).unwrap();
    /// assert_eq!(a.rate_limit_tokens(&mut base).unwrap(), Some((400, 400)));
    /// ```
    pub fn rate_limit_tokens(self, base: &mut EventBase) -> Result<Option<(i64, i64)>> {
        let mut cx = bev::cx(base);
        cx.st.get(self)?;
        refresh(&mut cx, self);
        let b = cx.st.get(self)?;
        Ok(b.rate
            .as_ref()
            .and_then(|r| r.own.as_ref())
            .map(|own| (own.read, own.write)))
    }

    /// How many bytes this bufferevent may read and write now under its own bucket and its share
    /// of its group's, `(read, write)`; `usize::MAX` for a direction nothing limits.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase, RateLimit};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// assert_eq!(a.rate_limit_allowance(&mut base).unwrap(), (usize::MAX, usize::MAX));
    /// let cfg = RateLimit { read_rate: 10, read_burst: 30, write_rate: 5, write_burst: 20, tick: Duration::from_secs(60) };
    /// a.set_rate_limit(&mut base, Some(cfg)).unwrap();
    /// assert_eq!(a.rate_limit_allowance(&mut base).unwrap(), (30, 20));
    /// ```
    pub fn rate_limit_allowance(self, base: &mut EventBase) -> Result<(usize, usize)> {
        let mut cx = bev::cx(base);
        cx.st.get(self)?;
        refresh(&mut cx, self);
        let b = cx.st.get(self)?;
        Ok(b.rate.as_ref().map_or((usize::MAX, usize::MAX), |r| {
            (r.read_allowance(), r.write_allowance())
        }))
    }

    /// Takes `read` and `write` tokens out of this bufferevent's own bucket (negative amounts put
    /// tokens in, even above the burst), leaving its group's bucket alone. A direction whose
    /// allowance drops to zero stops until the bucket refills; one that gets tokens back resumes.
    /// An error without an own limit.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase, RateLimit};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// assert!(a.decrement_rate_limit(&mut base, 1, 0).is_err());
    /// let cfg = RateLimit::symmetric(100, 400, Duration::from_secs(60));
    /// a.set_rate_limit(&mut base, Some(cfg)).unwrap();
    /// a.decrement_rate_limit(&mut base, 500, -50).unwrap();
    /// assert_eq!(a.rate_limit_tokens(&mut base).unwrap(), Some((-100, 450)));
    /// assert_eq!(a.rate_limit_allowance(&mut base).unwrap(), (0, 450));
    /// ```
    pub fn decrement_rate_limit(self, base: &mut EventBase, read: i64, write: i64) -> Result<()> {
        let mut cx = bev::cx(base);
        let own = cx
            .st
            .get_mut(self)?
            .rate
            .as_mut()
            .and_then(|r| r.own.as_mut())
            .ok_or(Error::InvalidArgument(
                "the bufferevent has no rate limit of its own",
            ))?;
        own.read = own.read.saturating_sub(read);
        own.write = own.write.saturating_sub(write);
        reassess(&mut cx, self);
        Ok(())
    }
}

impl RateLimitGroup {
    /// Replaces the group's settings. Tokens above the new bursts are dropped; the refill ticks
    /// start again from now.
    ///
    /// ```
    /// use revent::{EventBase, RateLimit, RateLimitGroup};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let g = RateLimitGroup::new(&mut base, RateLimit::symmetric(100, 1000, Duration::from_secs(60))).unwrap();
    /// g.set_config(&mut base, RateLimit::symmetric(10, 300, Duration::from_secs(60))).unwrap();
    /// assert_eq!(g.tokens(&mut base).unwrap(), (300, 300));
    /// ```
    pub fn set_config(self, base: &mut EventBase, cfg: RateLimit) -> Result<()> {
        cfg.check()?;
        let mut cx = bev::cx(base);
        let now = cx.core.now_cached();
        let group = group_mut(cx.st, self)?;
        let b = &mut group.bucket;
        b.cfg = cfg;
        b.read = b.read.min(cfg.read_burst as i64);
        b.write = b.write.min(cfg.write_burst as i64);
        b.epoch = now;
        b.tick = 0;
        for m in group.members.clone() {
            reassess(&mut cx, m);
        }
        Ok(())
    }

    /// The tokens left in the group's bucket, `(read, write)`, refilled up to now; negative once
    /// [`decrement`](Self::decrement) took more than there was.
    ///
    /// ```
    /// use revent::{EventBase, RateLimit, RateLimitGroup};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let g = RateLimitGroup::new(&mut base, RateLimit::symmetric(100, 1000, Duration::from_secs(60))).unwrap();
    /// assert_eq!(g.tokens(&mut base).unwrap(), (1000, 1000));
    /// ```
    pub fn tokens(self, base: &mut EventBase) -> Result<(i64, i64)> {
        let cx = bev::cx(base);
        let now = cx.core.now_cached();
        let group = group_mut(cx.st, self)?;
        group.bucket.refill(now);
        Ok((group.bucket.read, group.bucket.write))
    }

    /// Takes `read` and `write` tokens out of the group's bucket (negative amounts put tokens in);
    /// the members stop or resume accordingly. Members' own buckets are left alone. As with
    /// [`BufferEvent::decrement_rate_limit`], putting tokens in may lift the bucket above its burst
    /// until it is spent.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase, RateLimit, RateLimitGroup};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let g = RateLimitGroup::new(&mut base, RateLimit::symmetric(100, 1000, Duration::from_secs(60))).unwrap();
    /// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// g.add(&mut base, a).unwrap();
    /// g.decrement(&mut base, 1000, -100).unwrap();
    /// assert_eq!(g.tokens(&mut base).unwrap(), (0, 1100));
    /// assert_eq!(a.rate_limit_allowance(&mut base).unwrap().0, 0);
    /// ```
    pub fn decrement(self, base: &mut EventBase, read: i64, write: i64) -> Result<()> {
        let mut cx = bev::cx(base);
        let now = cx.core.now_cached();
        let group = group_mut(cx.st, self)?;
        let b = &mut group.bucket;
        b.refill(now);
        b.read = b.read.saturating_sub(read);
        b.write = b.write.saturating_sub(write);
        for m in group.members.clone() {
            reassess(&mut cx, m);
        }
        Ok(())
    }

    /// Bytes the group's members read and wrote while members, `(read, written)`, since the group
    /// was made or [`reset_totals`](Self::reset_totals) was called.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase, RateLimit, RateLimitGroup, What};
    /// use std::time::Duration;
    /// let mut base = EventBase::new().unwrap();
    /// let g = RateLimitGroup::new(&mut base, RateLimit::symmetric(1000, 1000, Duration::from_secs(60))).unwrap();
    /// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// g.add(&mut base, b).unwrap();
    /// b.enable(&mut base, What::READ).unwrap();
    /// a.write(&mut base, b"twelve bytes").unwrap();
    /// base.loopexit(Some(Duration::from_millis(20))).unwrap();
    /// base.dispatch().unwrap();
    /// assert_eq!(g.totals(&mut base).unwrap(), (12, 0));
    /// g.reset_totals(&mut base).unwrap();
    /// assert_eq!(g.totals(&mut base).unwrap(), (0, 0));
    /// ```
    pub fn totals(self, base: &mut EventBase) -> Result<(u64, u64)> {
        let group = group_mut(bev::cx(base).st, self)?;
        Ok((group.total_read, group.total_written))
    }

    /// Sets the group's totals (see [`totals`](Self::totals)) back to zero.
    pub fn reset_totals(self, base: &mut EventBase) -> Result<()> {
        let group = group_mut(bev::cx(base).st, self)?;
        group.total_read = 0;
        group.total_written = 0;
        Ok(())
    }
}
