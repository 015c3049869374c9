//! Bufferevents: buffered connections with watermarks, timeouts and callbacks.
//!
//! A [`BufferEvent`] owns an input and an output [`Evbuffer`]. Three kinds share one interface:
//! sockets (`socket`), in-memory pairs (`pair`) and filters over another bufferevent (`filter`).
//! Bufferevents live in a store inside the [`EventBase`]; a `BufferEvent` is a `Copy` handle checked
//! by generation, so a freed one is an error ([`Error::StaleEvent`]), never a dangling pointer.
//!
//! The write path: touching a bufferevent's buffers through its handle marks it *dirty*; before the
//! loop waits again it flushes every dirty bufferevent. For a socket that means writing its output
//! right away (no write-readiness round trip); write-readiness is armed only when the kernel buffer is
//! full. Reads go straight into the input buffer's tail, as much as the socket holds up to the read
//! high watermark.

mod filter;
mod pair;
pub(crate) mod ratelimit;
mod socket;

pub use filter::{FilterFn, FilterResult};
pub use ratelimit::{RateLimit, RateLimitGroup};

use crate::base::EventBase;
use crate::buffer::Evbuffer;
use crate::error::{Error, Result};
use crate::event::{EventId, What};
use crate::flags::flag_set;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::time::Duration;

/// What happened, as the event callback is told (libevent's `BEV_EVENT_*`, same values).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BevFlags(u16);

impl BevFlags {
    /// No flags.
    pub const NONE: BevFlags = BevFlags(0);
    /// While reading.
    pub const READING: BevFlags = BevFlags(0x01);
    /// While writing.
    pub const WRITING: BevFlags = BevFlags(0x02);
    /// End of file.
    pub const EOF: BevFlags = BevFlags(0x10);
    /// An error; [`BufferEvent::error`] tells which.
    pub const ERROR: BevFlags = BevFlags(0x20);
    /// A read or write timeout expired.
    pub const TIMEOUT: BevFlags = BevFlags(0x40);
    /// A `connect` finished.
    pub const CONNECTED: BevFlags = BevFlags(0x80);

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: BevFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for BevFlags {
    type Output = BevFlags;
    fn bitor(self, rhs: BevFlags) -> BevFlags {
        BevFlags(self.0 | rhs.0)
    }
}

impl std::fmt::Debug for BevFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = [
            (BevFlags::READING, "READING"),
            (BevFlags::WRITING, "WRITING"),
            (BevFlags::EOF, "EOF"),
            (BevFlags::ERROR, "ERROR"),
            (BevFlags::TIMEOUT, "TIMEOUT"),
            (BevFlags::CONNECTED, "CONNECTED"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(fl, _)| self.contains(*fl))
            .map(|(_, n)| *n)
            .collect();
        if set.is_empty() {
            f.write_str("NONE")
        } else {
            f.write_str(&set.join("|"))
        }
    }
}

flag_set! {
    /// Options of a bufferevent (libevent's `BEV_OPT_*`, same values).
    BevOptions {
        /// Close the fd (or free the underlying bufferevent) when this one is freed.
        CLOSE_ON_FREE = 0x01,
        /// Accepted for compatibility; revent bases are single-threaded.
        THREADSAFE = 0x02,
        /// Run callbacks from the event loop's active queue instead of right away.
        DEFER_CALLBACKS = 0x04,
        /// Accepted for compatibility.
        UNLOCK_CALLBACKS = 0x08,
    }
}

/// How hard [`BufferEvent::flush`] pushes (libevent's `BEV_NORMAL` / `BEV_FLUSH` / `BEV_FINISHED`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlushMode {
    /// As usual.
    Normal,
    /// Push out everything now, even past watermarks.
    Flush,
    /// No more data will come: push everything and signal end of file.
    Finished,
}

/// A read or write callback.
pub type DataCb = dyn FnMut(&mut EventBase, BufferEvent);
/// An event callback.
pub type EventCb = dyn FnMut(&mut EventBase, BufferEvent, BevFlags);

/// A handle to a bufferevent in an [`EventBase`].
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, What};
/// let mut base = EventBase::new().unwrap();
/// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// b.set_read_cb(&mut base, |base, bev| {
///     let mut line = [0u8; 5];
///     let n = bev.read(base, &mut line).unwrap();
///     assert_eq!(&line[..n], b"hello");
/// });
/// b.enable(&mut base, What::READ).unwrap();
/// a.write(&mut base, b"hello").unwrap();
/// base.dispatch().unwrap();
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufferEvent {
    index: u32,
    generation: u32,
}

impl std::fmt::Debug for BufferEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BufferEvent({}v{})", self.index, self.generation)
    }
}

/// Reads suspended for this reason (several may hold at once).
pub(crate) const SUSPEND_WM: u8 = 0x01;
pub(crate) const SUSPEND_RATE: u8 = 0x02;

pub(crate) enum Kind {
    Socket(socket::Socket),
    Pair(pair::Pair),
    Filter(filter::Filter),
}

/// Callbacks waiting to run from the active queue (DEFER_CALLBACKS, or connect results).
#[derive(Default)]
pub(crate) struct Deferred {
    read: bool,
    write: bool,
    events: BevFlags,
}

pub(crate) struct Bev {
    // Boxed so that their addresses stay put while the store grows (the C ABI hands them out).
    pub(crate) input: Box<Evbuffer>,
    pub(crate) output: Box<Evbuffer>,
    pub(crate) enabled: What,
    pub(crate) options: BevOptions,
    pub(crate) read_low: usize,
    pub(crate) read_high: usize,
    pub(crate) write_low: usize,
    pub(crate) write_high: usize,
    pub(crate) timeout_read: Option<Duration>,
    pub(crate) timeout_write: Option<Duration>,
    pub(crate) read_suspended: u8,
    pub(crate) write_suspended: u8,
    pub(crate) errno: Option<i32>,
    pub(crate) priority: Option<usize>,
    readcb: Option<Box<DataCb>>,
    writecb: Option<Box<DataCb>>,
    eventcb: Option<Box<EventCb>>,
    deferred: Deferred,
    deferred_ev: Option<EventId>,
    pub(crate) kind: Kind,
    /// The filter bufferevent stacked on this one, if any: it receives this one's callbacks.
    pub(crate) upper: Option<BufferEvent>,
    pub(crate) rate: Option<ratelimit::Limiter>,
    dirty: bool,
}

impl Drop for Bev {
    fn drop(&mut self) {
        // Dropped with the base: a socket the user still owns (no CLOSE_ON_FREE) stays open.
        if let Kind::Socket(s) = &mut self.kind {
            s.forget_unowned_fd(self.options);
        }
    }
}

struct Slot {
    generation: u32,
    bev: Option<Box<Bev>>,
}

/// All bufferevents of one base.
#[derive(Default)]
pub(crate) struct Store {
    slots: Vec<Slot>,
    free: Vec<u32>,
    dirty: Vec<BufferEvent>,
    pub(crate) groups: ratelimit::Groups,
}

impl Store {
    #[inline]
    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    #[inline]
    pub(crate) fn get(&self, h: BufferEvent) -> Result<&Bev> {
        match self.slots.get(h.index as usize) {
            Some(Slot {
                generation,
                bev: Some(b),
            }) if *generation == h.generation => Ok(b),
            _ => Err(Error::StaleEvent),
        }
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, h: BufferEvent) -> Result<&mut Bev> {
        match self.slots.get_mut(h.index as usize) {
            Some(Slot {
                generation,
                bev: Some(b),
            }) if *generation == h.generation => Ok(b),
            _ => Err(Error::StaleEvent),
        }
    }

    /// Queues `h` for the flush before the loop next waits.
    #[inline]
    pub(crate) fn mark_dirty(&mut self, h: BufferEvent) {
        if let Ok(b) = self.get_mut(h) {
            if !b.dirty {
                b.dirty = true;
                self.dirty.push(h);
            }
        }
    }

    fn insert(&mut self, bev: Bev) -> BufferEvent {
        let bev = Box::new(bev);
        match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.bev = Some(bev);
                BufferEvent {
                    index: i,
                    generation: s.generation,
                }
            }
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    bev: Some(bev),
                });
                BufferEvent {
                    index: (self.slots.len() - 1) as u32,
                    generation: 0,
                }
            }
        }
    }

    /// Two different bufferevents at once.
    pub(crate) fn pair_mut(
        &mut self,
        a: BufferEvent,
        b: BufferEvent,
    ) -> Option<(&mut Bev, &mut Bev)> {
        if a.index == b.index {
            return None;
        }
        self.get(a).ok()?;
        self.get(b).ok()?;
        let (lo, hi) = (a.index.min(b.index) as usize, a.index.max(b.index) as usize);
        let (left, right) = self.slots.split_at_mut(hi);
        let x = left[lo].bev.as_deref_mut()?;
        let y = right[0].bev.as_deref_mut()?;
        Some(if a.index < b.index { (x, y) } else { (y, x) })
    }

    fn remove(&mut self, h: BufferEvent) -> Option<Box<Bev>> {
        let s = self.slots.get_mut(h.index as usize)?;
        if s.generation != h.generation {
            return None;
        }
        let b = s.bev.take()?;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(h.index);
        Some(b)
    }
}

impl Bev {
    fn new(kind: Kind, options: BevOptions) -> Bev {
        Bev {
            input: Box::new(Evbuffer::new()),
            output: Box::new(Evbuffer::new()),
            // libevent enables writing by default, not reading.
            enabled: What::WRITE,
            options,
            read_low: 0,
            read_high: 0,
            write_low: 0,
            write_high: 0,
            timeout_read: None,
            timeout_write: None,
            read_suspended: 0,
            write_suspended: 0,
            errno: None,
            priority: None,
            readcb: None,
            writecb: None,
            eventcb: None,
            deferred: Deferred::default(),
            deferred_ev: None,
            kind,
            upper: None,
            rate: None,
            dirty: false,
        }
    }

    /// How much one read may take: up to the high watermark and the rate limit.
    pub(crate) fn read_budget(&self) -> usize {
        let mut n = usize::MAX;
        if self.read_high > 0 {
            n = self.read_high.saturating_sub(self.input.len());
        }
        if let Some(r) = &self.rate {
            n = n.min(r.read_allowance());
        }
        n
    }

    pub(crate) fn write_budget(&self) -> usize {
        self.rate
            .as_ref()
            .map_or(usize::MAX, |r| r.write_allowance())
    }
}

// ---- flushing dirty bufferevents: called by the loop before it waits ----

/// Brings every dirty bufferevent's kernel interest and buffers up to date: writes socket output,
/// moves pair and filter data, resumes reading below the high watermark.
pub(crate) fn flush_dirty(base: &mut EventBase) {
    // Bufferevents dirtied while this runs (by callbacks) are handled in the next round; the loop
    // does not sleep while any are left.
    let batch = std::mem::take(&mut base.bevs.dirty);
    for &h in &batch {
        match base.bevs.get_mut(h) {
            Ok(b) => b.dirty = false,
            Err(_) => continue,
        }
        sync(base, h);
    }
    let mut batch = batch;
    batch.clear();
    if base.bevs.dirty.is_empty() {
        base.bevs.dirty = batch;
    }
}

/// Makes the bufferevent's state consistent with its buffers and enable flags.
pub(crate) fn sync(base: &mut EventBase, h: BufferEvent) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    // Reading resumes once the user drained the input below the high watermark.
    if b.read_suspended & SUSPEND_WM != 0 && (b.read_high == 0 || b.input.len() < b.read_high) {
        b.read_suspended &= !SUSPEND_WM;
    }
    match b.kind {
        Kind::Socket(_) => socket::sync(base, h),
        Kind::Pair(_) => pair::sync(base, h),
        Kind::Filter(_) => filter::sync(base, h),
    }
}

// ---- running user callbacks ----

/// Which callback.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cb {
    Read,
    Write,
    Event(BevFlags),
}

/// Runs (or, with DEFER_CALLBACKS or `force_defer`, queues) a callback of `h`. A bufferevent under a
/// filter hands its callbacks to the filter instead.
pub(crate) fn run_cb(base: &mut EventBase, h: BufferEvent, which: Cb, force_defer: bool) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    if let Some(upper) = b.upper {
        filter::from_underlying(base, upper, which);
        return;
    }
    // As libevent: no callback, nothing to run or to defer (an echo has no write callback, and this
    // runs after every write).
    let has_cb = match which {
        Cb::Read => b.readcb.is_some(),
        Cb::Write => b.writecb.is_some(),
        Cb::Event(_) => b.eventcb.is_some(),
    };
    if !has_cb {
        return;
    }
    if force_defer || b.options.contains(BevOptions::DEFER_CALLBACKS) {
        match which {
            Cb::Read => b.deferred.read = true,
            Cb::Write => b.deferred.write = true,
            Cb::Event(f) => b.deferred.events = b.deferred.events | f,
        }
        let ev = match b.deferred_ev {
            Some(ev) => ev,
            None => {
                let priority = b.priority;
                let ev = base.new_timer(move |base, _| run_deferred(base, h));
                if let Some(p) = priority {
                    let _ = base.set_priority(ev, p);
                }
                if let Ok(b) = base.bevs.get_mut(h) {
                    b.deferred_ev = Some(ev);
                }
                ev
            }
        };
        let _ = base.activate(ev, What::TIMEOUT, 1);
        return;
    }
    call(base, h, which);
}

fn run_deferred(base: &mut EventBase, h: BufferEvent) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let d = std::mem::take(&mut b.deferred);
    // libevent's order: read, write, then events.
    if d.read {
        call(base, h, Cb::Read);
    }
    if d.write {
        call(base, h, Cb::Write);
    }
    if !d.events.is_empty() {
        call(base, h, Cb::Event(d.events));
    }
}

/// Calls the user's callback now. It is taken out of the bufferevent while it runs, so the callback
/// may free the bufferevent or replace its own callbacks.
#[inline]
fn call(base: &mut EventBase, h: BufferEvent, which: Cb) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    match which {
        Cb::Read | Cb::Write => {
            let slot = if which == Cb::Read {
                &mut b.readcb
            } else {
                &mut b.writecb
            };
            let Some(mut cb) = slot.take() else { return };
            cb(base, h);
            if let Ok(b) = base.bevs.get_mut(h) {
                let slot = if which == Cb::Read {
                    &mut b.readcb
                } else {
                    &mut b.writecb
                };
                if slot.is_none() {
                    *slot = Some(cb);
                }
            }
        }
        Cb::Event(flags) => {
            let Some(mut cb) = b.eventcb.take() else {
                return;
            };
            cb(base, h, flags);
            if let Ok(b) = base.bevs.get_mut(h) {
                if b.eventcb.is_none() {
                    b.eventcb = Some(cb);
                }
            }
        }
    }
}

/// After reading into the input: suspend at the high watermark, run the read callback at the low one.
pub(crate) fn after_read(base: &mut EventBase, h: BufferEvent, n: usize) {
    let Ok(limited) = base.bevs.get(h).map(|b| b.rate.is_some()) else {
        return;
    };
    if limited {
        ratelimit::consumed(base, h, n, true);
    }
    let Ok(b) = base.bevs.get_mut(h) else { return };
    let len = b.input.len();
    let wake = len >= b.read_low && len > 0;
    if b.read_high > 0 && len >= b.read_high {
        b.read_suspended |= SUSPEND_WM;
        sync(base, h);
    }
    if wake {
        run_cb(base, h, Cb::Read, false);
    }
}

/// After writing from the output: run the write callback once it drained to the low watermark.
/// `defer` queues the callback for the loop (writes done inside an API call such as `flush`).
pub(crate) fn after_write(base: &mut EventBase, h: BufferEvent, n: usize, defer: bool) {
    let Ok(b) = base.bevs.get(h) else { return };
    if b.rate.is_some() {
        ratelimit::consumed(base, h, n, false);
    }
    let Ok(b) = base.bevs.get(h) else { return };
    if b.output.len() <= b.write_low {
        run_cb(base, h, Cb::Write, defer);
    }
}

/// Reports an event: EOF and errors stop that direction, as in libevent.
pub(crate) fn report(base: &mut EventBase, h: BufferEvent, flags: BevFlags, errno: Option<i32>) {
    let Ok(b) = base.bevs.get_mut(h) else { return };
    if errno.is_some() {
        b.errno = errno;
    }
    if flags.contains(BevFlags::EOF)
        || flags.contains(BevFlags::ERROR)
        || flags.contains(BevFlags::TIMEOUT)
    {
        let mut off = What::NONE;
        if flags.contains(BevFlags::READING) {
            off |= What::READ;
        }
        if flags.contains(BevFlags::WRITING) {
            off |= What::WRITE;
        }
        b.enabled &= !off;
        sync(base, h);
    }
    run_cb(base, h, Cb::Event(flags), false);
}

// ---- the public interface ----

impl BufferEvent {
    /// A bufferevent on a connected (or, with [`connect`](Self::connect), to-be-connected) socket.
    /// `None` makes one without a socket yet. The socket is made non-blocking.
    pub fn socket(
        base: &mut EventBase,
        fd: Option<OwnedFd>,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        let h = base
            .bevs
            .insert(Bev::new(Kind::Socket(socket::Socket::default()), options));
        if let Err(e) = socket::set_fd(base, h, fd) {
            base.bevs.remove(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Two bufferevents connected to each other in memory: what one writes, the other reads.
    pub fn pair(base: &mut EventBase, options: BevOptions) -> Result<(BufferEvent, BufferEvent)> {
        let a = base
            .bevs
            .insert(Bev::new(Kind::Pair(pair::Pair::default()), options));
        let b = base
            .bevs
            .insert(Bev::new(Kind::Pair(pair::Pair::default()), options));
        pair::link(base, a, b);
        Ok((a, b))
    }

    /// A bufferevent that passes data through `input` (from the underlying bufferevent to this one's
    /// input) and `output` (from this one's output to the underlying's) filters. `None` copies as is.
    /// With CLOSE_ON_FREE, freeing this one frees the underlying one.
    pub fn filter(
        base: &mut EventBase,
        underlying: BufferEvent,
        input: Option<Box<FilterFn>>,
        output: Option<Box<FilterFn>>,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        let under = base.bevs.get_mut(underlying)?;
        if under.upper.is_some() {
            return Err(Error::InvalidArgument(
                "bufferevent already has a filter on it",
            ));
        }
        let h = base.bevs.insert(Bev::new(
            Kind::Filter(filter::Filter::new(underlying, input, output)),
            options,
        ));
        filter::attach(base, h, underlying)?;
        Ok(h)
    }

    /// Sets all three callbacks at once (libevent's `bufferevent_setcb`); `None` clears one.
    pub fn set_callbacks(
        self,
        base: &mut EventBase,
        read: Option<Box<DataCb>>,
        write: Option<Box<DataCb>>,
        event: Option<Box<EventCb>>,
    ) -> Result<()> {
        let b = base.bevs.get_mut(self)?;
        b.readcb = read;
        b.writecb = write;
        b.eventcb = event;
        Ok(())
    }

    /// Sets the read callback: runs when new input reaches the low watermark.
    pub fn set_read_cb(
        self,
        base: &mut EventBase,
        cb: impl FnMut(&mut EventBase, BufferEvent) + 'static,
    ) {
        if let Ok(b) = base.bevs.get_mut(self) {
            b.readcb = Some(Box::new(cb));
        }
    }

    /// Sets the write callback: runs when the output drains to the low watermark.
    pub fn set_write_cb(
        self,
        base: &mut EventBase,
        cb: impl FnMut(&mut EventBase, BufferEvent) + 'static,
    ) {
        if let Ok(b) = base.bevs.get_mut(self) {
            b.writecb = Some(Box::new(cb));
        }
    }

    /// Sets the event callback: EOF, errors, timeouts, connect results.
    pub fn set_event_cb(
        self,
        base: &mut EventBase,
        cb: impl FnMut(&mut EventBase, BufferEvent, BevFlags) + 'static,
    ) {
        if let Ok(b) = base.bevs.get_mut(self) {
            b.eventcb = Some(Box::new(cb));
        }
    }

    /// Starts reading and/or writing (from the loop, before it next waits: as in libevent, no
    /// callback runs inside this call).
    pub fn enable(self, base: &mut EventBase, what: What) -> Result<()> {
        let b = base.bevs.get_mut(self)?;
        b.enabled |= what & (What::READ | What::WRITE);
        base.bevs.mark_dirty(self);
        Ok(())
    }

    /// Stops reading and/or writing, at once.
    pub fn disable(self, base: &mut EventBase, what: What) -> Result<()> {
        let b = base.bevs.get_mut(self)?;
        b.enabled &= !(what & (What::READ | What::WRITE));
        if let Kind::Socket(_) = b.kind {
            socket::disarm(base, self);
        }
        base.bevs.mark_dirty(self);
        Ok(())
    }

    /// Which of READ and WRITE are enabled.
    pub fn enabled(self, base: &EventBase) -> Result<What> {
        Ok(base.bevs.get(self)?.enabled)
    }

    /// Sets the low and high watermarks of READ and/or WRITE. Read low: the read callback waits for
    /// this much input. Read high: stop reading at this much input (0 = unlimited). Write low: the
    /// write callback runs when the output drains to this much. Write high is used by filters.
    pub fn set_watermark(
        self,
        base: &mut EventBase,
        what: What,
        low: usize,
        high: usize,
    ) -> Result<()> {
        let b = base.bevs.get_mut(self)?;
        if what.contains(What::READ) {
            b.read_low = low;
            b.read_high = if high > 0 { high.max(low) } else { 0 };
        }
        if what.contains(What::WRITE) {
            b.write_low = low;
            b.write_high = high;
        }
        base.bevs.mark_dirty(self);
        Ok(())
    }

    /// `(low, high)` of the READ or WRITE watermark.
    pub fn watermark(self, base: &EventBase, what: What) -> Result<(usize, usize)> {
        let b = base.bevs.get(self)?;
        Ok(if what.contains(What::READ) {
            (b.read_low, b.read_high)
        } else {
            (b.write_low, b.write_high)
        })
    }

    /// Sets the read and write timeouts. A timeout reports TIMEOUT|READING or TIMEOUT|WRITING to the
    /// event callback and disables that direction.
    pub fn set_timeouts(
        self,
        base: &mut EventBase,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> Result<()> {
        let b = base.bevs.get_mut(self)?;
        b.timeout_read = read;
        b.timeout_write = write;
        if let Kind::Socket(_) = b.kind {
            socket::rearm_timeouts(base, self);
        }
        Ok(())
    }

    /// The input buffer (what was read). Draining it below the read high watermark resumes reading.
    pub fn input(self, base: &mut EventBase) -> Result<&mut Evbuffer> {
        base.bevs.mark_dirty(self);
        Ok(&mut base.bevs.get_mut(self)?.input)
    }

    /// The output buffer (what will be written, before the loop next waits).
    pub fn output(self, base: &mut EventBase) -> Result<&mut Evbuffer> {
        base.bevs.mark_dirty(self);
        Ok(&mut base.bevs.get_mut(self)?.output)
    }

    /// Both buffers at once, e.g. to echo: `output.add_buffer(input)`.
    pub fn buffers(self, base: &mut EventBase) -> Result<(&mut Evbuffer, &mut Evbuffer)> {
        base.bevs.mark_dirty(self);
        let b = base.bevs.get_mut(self)?;
        Ok((&mut b.input, &mut b.output))
    }

    /// Appends `data` to the output.
    pub fn write(self, base: &mut EventBase, data: &[u8]) -> Result<()> {
        self.output(base)?.add(data)
    }

    /// Moves all of `src` to the output, without copying.
    pub fn write_buffer(self, base: &mut EventBase, src: &mut Evbuffer) -> Result<()> {
        self.output(base)?.add_buffer(src)
    }

    /// Takes up to `out.len()` bytes from the input.
    pub fn read(self, base: &mut EventBase, out: &mut [u8]) -> Result<usize> {
        self.input(base)?.remove(out)
    }

    /// Moves all input to `dst`, without copying.
    pub fn read_buffer(self, base: &mut EventBase, dst: &mut Evbuffer) -> Result<()> {
        dst.add_buffer(self.input(base)?)
    }

    /// Pushes data through now. For a socket: writes what the kernel takes (`Normal`/`Flush`).
    /// `Finished` on a socket shuts down its writing side once the output is written; on a pair it
    /// gives the partner EOF; on a filter it also flushes the filter's state. Returns whether data
    /// moved.
    pub fn flush(self, base: &mut EventBase, what: What, mode: FlushMode) -> Result<bool> {
        let b = base.bevs.get(self)?;
        match b.kind {
            Kind::Socket(_) => socket::flush(base, self, what, mode),
            Kind::Pair(_) => pair::flush(base, self, what, mode),
            Kind::Filter(_) => filter::flush(base, self, what, mode),
        }
    }

    /// Connects the socket to `addr` (creating a socket if there is none). The event callback gets
    /// CONNECTED, or ERROR (e.g. connection refused; see [`error`](Self::error)).
    pub fn connect(self, base: &mut EventBase, addr: std::net::SocketAddr) -> Result<()> {
        socket::connect(base, self, addr)
    }

    /// Replaces the socket (libevent's `bufferevent_setfd`). The old socket is closed with
    /// CLOSE_ON_FREE and otherwise left open.
    pub fn set_fd(self, base: &mut EventBase, fd: Option<OwnedFd>) -> Result<()> {
        match base.bevs.get(self)?.kind {
            Kind::Socket(_) => socket::set_fd(base, self, fd),
            _ => Err(Error::Unsupported(
                "set_fd on a bufferevent without a socket",
            )),
        }
    }

    /// The socket's fd, if any.
    pub fn fd(self, base: &EventBase) -> Result<Option<RawFd>> {
        match &base.bevs.get(self)?.kind {
            Kind::Socket(s) => Ok(s.raw_fd()),
            Kind::Filter(f) => f.underlying.fd(base),
            Kind::Pair(_) => Ok(None),
        }
    }

    /// The last error reported with ERROR.
    pub fn error(self, base: &EventBase) -> Option<io::Error> {
        base.bevs
            .get(self)
            .ok()?
            .errno
            .map(io::Error::from_raw_os_error)
    }

    /// Sets the priority of the bufferevent's events.
    pub fn set_priority(self, base: &mut EventBase, pri: usize) -> Result<()> {
        if pri >= base.priorities() {
            return Err(Error::InvalidArgument("priority out of range"));
        }
        let b = base.bevs.get_mut(self)?;
        b.priority = Some(pri);
        let mut evs = vec![];
        if let Some(ev) = b.deferred_ev {
            evs.push(ev);
        }
        if let Kind::Socket(s) = &b.kind {
            evs.extend(s.events());
        }
        for ev in evs {
            base.set_priority(ev, pri)?;
        }
        Ok(())
    }

    /// Limits this bufferevent's reading and writing to `cfg`'s rates; `None` lifts the limit.
    pub fn set_rate_limit(self, base: &mut EventBase, cfg: Option<RateLimit>) -> Result<()> {
        ratelimit::set(base, self, cfg)
    }

    /// The other end of a pair.
    pub fn partner(self, base: &EventBase) -> Result<Option<BufferEvent>> {
        match &base.bevs.get(self)?.kind {
            Kind::Pair(p) => Ok(p.partner),
            _ => Ok(None),
        }
    }

    /// The bufferevent under a filter.
    pub fn underlying(self, base: &EventBase) -> Result<Option<BufferEvent>> {
        match &base.bevs.get(self)?.kind {
            Kind::Filter(f) => Ok(Some(f.underlying)),
            _ => Ok(None),
        }
    }

    /// Frees the bufferevent. A socket's pending output gets one last non-blocking write attempt;
    /// with CLOSE_ON_FREE the socket is then closed. A pair's partner sees EOF. No callback of this
    /// bufferevent runs afterwards, and the handle becomes stale.
    pub fn free(self, base: &mut EventBase) -> Result<()> {
        base.bevs.get(self)?;
        ratelimit::leave_group(base, self);
        let Some(mut b) = base.bevs.remove(self) else {
            return Err(Error::StaleEvent);
        };
        if let Some(ev) = b.deferred_ev.take() {
            let _ = base.free(ev);
        }
        if let Some(r) = b.rate.take() {
            r.free(base);
        }
        if let Some(upper) = b.upper.take() {
            filter::underlying_gone(base, upper);
        }
        let kind = std::mem::replace(&mut b.kind, Kind::Pair(pair::Pair::default()));
        match kind {
            Kind::Socket(s) => s.close(base, &mut b),
            Kind::Pair(p) => pair::unlink(base, p, &mut b.output),
            Kind::Filter(f) => f.close(base, b.options),
        }
        // Callbacks and buffers drop here, outside any borrow of the base.
        drop(b);
        Ok(())
    }
}
