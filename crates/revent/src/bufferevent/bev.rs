//! The generic half of a bufferevent: its buffers, watermarks, enable flags, callbacks and their
//! deferral, and the prepare phase. The kinds (socket, pair, filter) do the I/O behind the few
//! operations in `kind.rs` and report back through three functions only: [`read_done`],
//! [`write_done`] and [`report`].
//!
//! Bookkeeping works on a [`Cx`]: the loop's core and this layer's store side by side, found once
//! per entry point. It never runs user code. A callback it decides to run is either queued on the
//! store, and run by the entry point once the bookkeeping is done ([`run_queued`]: an event
//! callback of the bufferevent's own, as libevent runs read callbacks from its read event), or
//! deferred to the active queue (DEFER_CALLBACKS, pairs, the prepare phase, API calls).
//!
//! The write path: changing a bufferevent through its handle marks it *dirty*; in the loop's prepare
//! phase every dirty bufferevent is brought up to date (a socket writes its output then and there,
//! without a readiness round trip).

use super::kind::{self, Kind};
use super::ratelimit::{self, Group, Limiter};
use super::timeout::Timers;
use super::{BevFlags, BevOptions, BufferEvent, DataCb, EventCb};
use crate::base::{Core, EventBase, Layer};
use crate::buffer::Evbuffer;
use crate::error::{Error, Handle, Result};
use crate::event::{EventId, Fired, What};
use crate::slab::{Key, Slab};
use crate::sys::RawBox;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Duration;

/// Reads suspended for this reason (several may hold at once).
pub(crate) const SUSPEND_WM: u8 = 0x01;
pub(crate) const SUSPEND_RATE: u8 = 0x02;

/// How many times the prepare phase goes round while bufferevents keep dirtying each other (a
/// filter feeding its underlying bufferevent, a pair): the rest waits for the next iteration.
const PREPARE_ROUNDS: usize = 4;

/// Callbacks waiting to run from the active queue.
#[derive(Default)]
struct Pending {
    read: bool,
    write: bool,
    events: BevFlags,
}

#[derive(Default)]
#[repr(C)]
struct Callbacks {
    read: Option<Box<DataCb>>,
    write: Option<Box<DataCb>>,
    event: Option<Box<EventCb>>,
    /// Per slot (read, write, event), bumped whenever the slot is set or cleared: a callback taken
    /// out to run goes back only if nobody set its slot meanwhile, so a callback can clear itself.
    versions: [u32; 3],
}

impl Cb {
    fn slot(self) -> usize {
        match self {
            Cb::Read => 0,
            Cb::Write => 1,
            Cb::Event(_) => 2,
        }
    }
}

/// Which callback.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cb {
    Read,
    Write,
    Event(BevFlags),
}

// The layout is fixed (`repr(C)`) so that what an echo's read, callback and write touch comes first,
// next to the slab slot's generation: with many connections each line touched is a cache miss.
#[repr(C)]
pub(crate) struct Bev {
    // Raw-owned so that their addresses stay put and foreign pointers to them stay valid while Rust
    // uses them (see the aliasing model in `base`).
    pub(crate) input: RawBox<Evbuffer>,
    pub(crate) output: RawBox<Evbuffer>,
    pub(crate) read_low: usize,
    pub(crate) read_high: usize,
    pub(crate) write_low: usize,
    /// Boxed: only whether there is one is looked at on every read and write.
    pub(crate) rate: Option<Box<Limiter>>,
    pub(crate) enabled: What,
    pub(crate) options: BevOptions,
    pub(crate) read_suspended: u8,
    pub(crate) write_suspended: u8,
    /// Whether the buffers report changes to this bufferevent (see [`watch_buffers`]).
    watched: bool,
    dirty: bool,
    cbs: Callbacks,
    pub(crate) timeout_read: Option<Duration>,
    pub(crate) timeout_write: Option<Duration>,
    pub(crate) kind: Kind,
    // ---- less often ----
    pub(crate) write_high: usize,
    /// The most one read or write on the socket moves (`set_max_single`; `usize::MAX`: no cap).
    pub(crate) max_read: usize,
    pub(crate) max_write: usize,
    pub(crate) errno: Option<i32>,
    pub(crate) priority: Option<usize>,
    pending: Pending,
    /// The internal event that runs deferred callbacks (made on first use).
    work_ev: Option<EventId>,
    /// Pairs' and filters' timeout timers (made when a timeout is first wanted).
    pub(crate) timers: Option<Box<Timers>>,
    /// The filter stacked on this one, told when this one is freed.
    pub(crate) upper: Option<BufferEvent>,
}

impl Bev {
    pub(crate) fn new(kind: Kind, options: BevOptions) -> Bev {
        let mut input = Evbuffer::new();
        let mut output = Evbuffer::new();
        if options.contains(BevOptions::DEFER_CALLBACKS) {
            // As libevent: the buffers' change callbacks run from the loop too.
            input.set_deferred_callbacks(true);
            output.set_deferred_callbacks(true);
        }
        Bev {
            input: RawBox::new(input),
            output: RawBox::new(output),
            // libevent enables writing by default, not reading.
            enabled: What::WRITE,
            options,
            read_low: 0,
            read_high: 0,
            write_low: 0,
            write_high: 0,
            max_read: usize::MAX,
            max_write: usize::MAX,
            timeout_read: None,
            timeout_write: None,
            read_suspended: 0,
            write_suspended: 0,
            errno: None,
            priority: None,
            cbs: Callbacks::default(),
            pending: Pending::default(),
            work_ev: None,
            timers: None,
            watched: false,
            upper: None,
            rate: None,
            dirty: false,
            kind,
        }
    }

    #[inline]
    pub(crate) fn input(&mut self) -> &mut Evbuffer {
        self.input.get_mut()
    }

    #[inline]
    pub(crate) fn output(&mut self) -> &mut Evbuffer {
        self.output.get_mut()
    }

    /// How much one read may take: up to the high watermark and the rate limit.
    #[inline]
    pub(crate) fn read_budget(&self) -> usize {
        let mut n = usize::MAX;
        if self.read_high > 0 {
            n = self.read_high.saturating_sub(self.input.get().len());
        }
        if let Some(r) = &self.rate {
            n = n.min(r.read_allowance());
        }
        n
    }

    #[inline]
    pub(crate) fn write_budget(&self) -> usize {
        self.rate
            .as_ref()
            .map_or(usize::MAX, |r| r.write_allowance())
    }

    /// Whether this side wants to read now: enabled and not suspended.
    #[inline]
    pub(crate) fn wants_read(&self) -> bool {
        self.enabled.contains(What::READ) && self.read_suspended == 0
    }

    /// Whether this side has output it wants written now.
    #[inline]
    pub(crate) fn wants_write(&self) -> bool {
        self.enabled.contains(What::WRITE)
            && self.write_suspended == 0
            && !self.output.get().is_empty()
    }

    /// Whether foreign pointers to the buffers were handed out (see [`watch_buffers`]).
    #[inline]
    pub(crate) fn watched(&self) -> bool {
        self.watched
    }

    /// Whether a write needs `write_done`: a rate limit to charge or a write callback to consider.
    #[inline]
    pub(crate) fn has_write_followup(&self) -> bool {
        self.rate.is_some() || self.cbs.write.is_some()
    }

    fn has_cb(&self, which: Cb) -> bool {
        match which {
            Cb::Read => self.cbs.read.is_some(),
            Cb::Write => self.cbs.write.is_some(),
            Cb::Event(_) => self.cbs.event.is_some(),
        }
    }

    /// The buffers' deferred change callbacks have something to deliver.
    fn buffers_pending(&self) -> bool {
        self.options.contains(BevOptions::DEFER_CALLBACKS)
            && (self.input.get().has_pending_callbacks()
                || self.output.get().has_pending_callbacks())
    }
}

impl Drop for Bev {
    fn drop(&mut self) {
        // Dropped with the base: a socket the user still owns (no CLOSE_ON_FREE) stays open.
        self.kind.forget_unowned_fd(self.options);
    }
}

/// Every bufferevent (and rate-limit group) of one base: the bufferevent layer's state in the base.
#[derive(Default)]
pub(crate) struct Store {
    pub(crate) bevs: Slab<Bev>,
    pub(crate) groups: Slab<Group>,
    dirty: Vec<BufferEvent>,
    /// Callbacks to run once the current entry point's bookkeeping is done (usually one).
    queued: Fifo,
    /// Set while the prepare phase or an API call runs: callbacks are deferred then.
    defer_all: bool,
}

impl Layer for Store {
    const SLOT: usize = 0;
    const PREPARE: Option<fn(&mut EventBase) -> bool> = Some(prepare);
}

/// A first-in first-out queue that stays allocated: a `Vec` and the index of its head, cheaper than a
/// `VecDeque` for the one or two entries it holds at a time.
#[derive(Default)]
struct Fifo {
    items: Vec<(BufferEvent, Cb)>,
    head: usize,
}

impl Fifo {
    #[inline]
    fn push(&mut self, item: (BufferEvent, Cb)) {
        self.items.push(item);
    }

    #[inline]
    fn pop(&mut self) -> Option<(BufferEvent, Cb)> {
        match self.items.get(self.head) {
            Some(&item) => {
                self.head += 1;
                Some(item)
            }
            None => {
                self.items.clear();
                self.head = 0;
                None
            }
        }
    }
}

fn key(h: BufferEvent) -> Key {
    Key {
        index: h.index,
        generation: h.generation,
    }
}

const STALE: Error = Error::Stale(Handle::BufferEvent);

impl Store {
    #[inline]
    pub(crate) fn get(&self, h: BufferEvent) -> Result<&Bev> {
        self.bevs.get(key(h)).ok_or(STALE)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, h: BufferEvent) -> Result<&mut Bev> {
        self.bevs.get_mut(key(h)).ok_or(STALE)
    }

    /// Two different bufferevents at once.
    pub(crate) fn get2_mut(
        &mut self,
        a: BufferEvent,
        b: BufferEvent,
    ) -> Option<(&mut Bev, &mut Bev)> {
        self.bevs.get2_mut(key(a), key(b))
    }

    pub(crate) fn insert(&mut self, bev: Bev) -> BufferEvent {
        let k = self.bevs.insert(bev);
        BufferEvent {
            index: k.index,
            generation: k.generation,
        }
    }

    pub(crate) fn remove(&mut self, h: BufferEvent) -> Option<Bev> {
        self.bevs.remove(key(h))
    }

    /// Queues `h` for the next prepare phase.
    #[inline]
    pub(crate) fn mark_dirty(&mut self, h: BufferEvent) {
        let _ = self.touch(h);
    }

    /// Marks `h` dirty and returns it, in one lookup.
    #[inline]
    pub(crate) fn touch(&mut self, h: BufferEvent) -> Result<&mut Bev> {
        let b = self.bevs.get_mut(key(h)).ok_or(STALE)?;
        mark_dirty_in(&mut self.dirty, b, h);
        Ok(b)
    }
}

/// The loop's core and the bufferevent store, side by side: what bookkeeping works on.
pub(crate) struct Cx<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) st: &'a mut Store,
}

/// The bufferevent layer of `base` (found once; pass the `Cx` around rather than the base).
#[inline]
pub(crate) fn cx(base: &mut EventBase) -> Cx<'_> {
    let (core, st) = base.split::<Store>();
    Cx { core, st }
}

/// The store, for reading, if the base has bufferevents at all.
#[inline]
pub(crate) fn store(base: &EventBase) -> Option<&Store> {
    base.layer::<Store>()
}

// ---- the prepare phase ----

/// Brings every dirty bufferevent up to date: writes socket output, moves pair and filter data,
/// resumes reading below the high watermark. Runs no user code (callbacks are deferred). Returns
/// whether work is left for the next iteration.
fn prepare(base: &mut EventBase) -> bool {
    let mut cx = cx(base);
    if cx.st.dirty.is_empty() {
        return false;
    }
    deferring(&mut cx, prepare_rounds)
}

fn prepare_rounds(cx: &mut Cx) -> bool {
    let mut batch = Vec::new();
    for _ in 0..PREPARE_ROUNDS {
        if cx.st.dirty.is_empty() {
            break;
        }
        std::mem::swap(&mut batch, &mut cx.st.dirty);
        for &h in &batch {
            sync_bev(cx, h, true);
        }
        batch.clear();
    }
    if cx.st.dirty.is_empty() {
        // Keep the allocation for the next round.
        cx.st.dirty = batch;
        return false;
    }
    true
}

/// Makes the bufferevent's kernel interest and data flow consistent with its buffers and enable
/// flags (the kind does the work).
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    sync_bev(cx, h, false);
}

/// `sync`, and for the prepare phase (`prepared`) taking `h` off the dirty list in the same lookup.
#[inline(always)]
fn sync_bev(cx: &mut Cx, h: BufferEvent, prepared: bool) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    if prepared {
        b.dirty = false;
    }
    // Reading resumes once the user drained the input below the high watermark.
    if b.read_suspended & SUSPEND_WM != 0 && (b.read_high == 0 || b.input.get().len() < b.read_high)
    {
        b.read_suspended &= !SUSPEND_WM;
    }
    if b.watched {
        // Changes made from here on (through any path) must be noticed again.
        b.input().watch_seen();
        b.output().watch_seen();
    }
    let tag = b.kind.tag();
    if b.buffers_pending() {
        schedule(cx, h);
    }
    kind::sync_as(cx, h, tag);
}

// ---- what kinds report ----

/// A kind added `n` bytes to the input: spend rate tokens, suspend reading at the high watermark,
/// and run the read callback once the input reaches the low watermark.
#[inline(always)]
pub(crate) fn read_done(cx: &mut Cx, h: BufferEvent, n: usize) {
    let Ok(mut b) = cx.st.get_mut(h) else { return };
    if b.rate.is_some() {
        ratelimit::consumed(cx, h, n, true);
        let Ok(again) = cx.st.get_mut(h) else { return };
        b = again;
    }
    let len = b.input.get().len();
    let wake = len >= b.read_low && len > 0;
    if b.read_high > 0 && len >= b.read_high {
        b.read_suspended |= SUSPEND_WM;
        kind::sync(cx, h);
        if wake {
            run_cb(cx, h, Cb::Read);
        }
    } else if wake && b.has_cb(Cb::Read) {
        // `run_cb` on the bufferevent in hand (the usual read: one lookup in all).
        let defer = b.options.contains(BevOptions::DEFER_CALLBACKS) || cx.st.defer_all;
        route_cb(cx, h, Cb::Read, defer);
    }
}

/// A kind took `n` bytes from the output: spend rate tokens and run the write callback once the
/// output drained to the low watermark.
pub(crate) fn write_done(cx: &mut Cx, h: BufferEvent, n: usize) {
    let Ok(mut b) = cx.st.get_mut(h) else { return };
    if b.rate.is_some() {
        ratelimit::consumed(cx, h, n, false);
        let Ok(again) = cx.st.get_mut(h) else { return };
        b = again;
    }
    // As libevent: no write callback, nothing to check (an echo has none, and this runs after every
    // write).
    if b.cbs.write.is_some() && b.output.get().len() <= b.write_low {
        run_cb(cx, h, Cb::Write);
    }
}

/// A kind reports an event: EOF, errors and timeouts stop their direction, as in libevent.
pub(crate) fn report(cx: &mut Cx, h: BufferEvent, flags: BevFlags, errno: Option<i32>) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    if errno.is_some() {
        b.errno = errno;
    }
    if flags.intersects(BevFlags::EOF | BevFlags::ERROR | BevFlags::TIMEOUT) {
        let mut off = What::NONE;
        if flags.contains(BevFlags::READING) {
            off |= What::READ;
        }
        if flags.contains(BevFlags::WRITING) {
            off |= What::WRITE;
        }
        b.enabled &= !off;
        kind::sync(cx, h);
    }
    run_cb(cx, h, Cb::Event(flags));
}

// ---- running user callbacks ----

/// Decides how a callback of `h` runs: deferred to the active queue (DEFER_CALLBACKS, pairs, the
/// prepare phase, API calls) or queued for the entry point to run when its bookkeeping is done.
pub(crate) fn run_cb(cx: &mut Cx, h: BufferEvent, which: Cb) {
    let defer_all = cx.st.defer_all;
    let Ok(b) = cx.st.get_mut(h) else { return };
    // As libevent: no callback, nothing to run or to defer (an echo has no write callback, and this
    // runs after every write).
    if !b.has_cb(which) {
        return;
    }
    let defer = defer_all || b.options.contains(BevOptions::DEFER_CALLBACKS);
    route_cb(cx, h, which, defer);
}

/// Sends a callback of `h` that is to run either to the active queue (`defer`) or to the entry
/// point's queue.
#[inline(always)]
fn route_cb(cx: &mut Cx, h: BufferEvent, which: Cb, defer: bool) {
    if defer {
        defer_cb(cx, h, which);
    } else {
        cx.st.queued.push((h, which));
    }
}

/// Runs `f` with every callback it triggers deferred to the active queue: API calls (`flush`,
/// `connect`, freeing a pair's side) and the prepare phase run no user code.
pub(crate) fn deferring<R>(cx: &mut Cx, f: impl FnOnce(&mut Cx) -> R) -> R {
    let was = std::mem::replace(&mut cx.st.defer_all, true);
    // A filter function inside `f` is user code and may panic: the flag is restored all the same.
    let r = catch_unwind(AssertUnwindSafe(|| f(cx)));
    cx.st.defer_all = was;
    r.unwrap_or_else(|payload| resume_unwind(payload))
}

/// Queues a callback of `h` for the active queue, if it has one (from an API call).
pub(crate) fn defer(cx: &mut Cx, h: BufferEvent, which: Cb) {
    deferring(cx, |cx| run_cb(cx, h, which));
}

fn defer_cb(cx: &mut Cx, h: BufferEvent, which: Cb) {
    let Ok(b) = cx.st.get_mut(h) else { return };
    match which {
        Cb::Read => b.pending.read = true,
        Cb::Write => b.pending.write = true,
        Cb::Event(f) => b.pending.events |= f,
    }
    schedule(cx, h);
}

/// Activates `h`'s work event (making it on first use).
fn schedule(cx: &mut Cx, h: BufferEvent) {
    if let Some(ev) = work_event(cx, h) {
        let _ = cx.core.activate(ev, What::TIMEOUT, 1);
    }
}

fn work_event(cx: &mut Cx, h: BufferEvent) -> Option<EventId> {
    let b = cx.st.get_mut(h).ok()?;
    if let Some(ev) = b.work_ev {
        return Some(ev);
    }
    let ev = cx
        .core
        .new_internal(-1, What::NONE, move |base, fired| on_work(base, h, fired))
        .ok()?;
    if let Some(p) = b.priority {
        let _ = cx.core.set_priority(ev, p);
    }
    b.work_ev = Some(ev);
    Some(ev)
}

/// The work event: a buffer changed through a foreign pointer (WRITE), and/or deferred callbacks are
/// waiting. Runs in the active queue, so user code here obeys the loop's rules.
fn on_work(base: &mut EventBase, h: BufferEvent, fired: Fired) {
    let cx = cx(base);
    if fired.what.contains(What::WRITE) {
        cx.st.mark_dirty(h);
    }
    let Ok(b) = cx.st.get_mut(h) else { return };
    let p = std::mem::take(&mut b.pending);
    if b.buffers_pending() {
        b.input().run_deferred_callbacks();
        b.output().run_deferred_callbacks();
    }
    // libevent's order: read, write, then events.
    if p.read {
        call(base, h, Cb::Read);
    }
    if p.write {
        call(base, h, Cb::Write);
    }
    if !p.events.is_empty() {
        call(base, h, Cb::Event(p.events));
    }
}

/// Runs the callbacks the bookkeeping queued: the last step of every entry point that may run user
/// code inline (a socket's read and write events, a filter's hooks on its underlying bufferevent).
/// Two store lookups per callback: one to take it out (and the queue entry), one to put it back.
#[inline]
pub(crate) fn run_queued(base: &mut EventBase) {
    let mut st = cx(base).st;
    while let Some((h, which)) = st.queued.pop() {
        let r = if let Cb::Read = which {
            // The usual callback (an echo's, a server's request reader), without the general
            // `Taken` wrapper around it.
            let Some((mut cb, version)) = take_read(st, h) else {
                continue;
            };
            let r = catch_unwind(AssertUnwindSafe(|| cb(base, h)));
            st = cx(base).st;
            put_back_read(st, h, cb, version);
            r
        } else {
            let Some((mut cb, version)) = take_cb(st, h, which) else {
                continue;
            };
            let r = catch_unwind(AssertUnwindSafe(|| cb.invoke(base, h)));
            st = cx(base).st;
            put_back(st, h, cb, version);
            r
        };
        if let Err(payload) = r {
            // What was queued behind the panicking callback still runs, from the loop.
            let mut cx = cx(base);
            while let Some((h, which)) = cx.st.queued.pop() {
                defer_cb(&mut cx, h, which);
            }
            resume_unwind(payload);
        }
    }
}

/// A user callback taken out of its bufferevent while it runs.
enum Taken {
    Read(Box<DataCb>),
    Write(Box<DataCb>),
    Event(Box<EventCb>, BevFlags),
}

impl Taken {
    fn slot(&self) -> usize {
        match self {
            Taken::Read(_) => 0,
            Taken::Write(_) => 1,
            Taken::Event(..) => 2,
        }
    }

    #[inline]
    fn invoke(&mut self, base: &mut EventBase, h: BufferEvent) {
        match self {
            Taken::Read(cb) | Taken::Write(cb) => cb(base, h),
            Taken::Event(cb, flags) => cb(base, h, *flags),
        }
    }
}

/// Takes the callback out of the bufferevent, so that it may free the bufferevent or replace its
/// own callbacks while it runs.
#[inline]
fn take_cb(st: &mut Store, h: BufferEvent, which: Cb) -> Option<(Taken, u32)> {
    let b = about_to_call(st, h)?;
    let taken = match which {
        Cb::Read => b.cbs.read.take().map(Taken::Read),
        Cb::Write => b.cbs.write.take().map(Taken::Write),
        Cb::Event(flags) => b.cbs.event.take().map(|cb| Taken::Event(cb, flags)),
    }?;
    Some((taken, b.cbs.versions[which.slot()]))
}

/// The bufferevent whose callback is about to run. If it is watched, the callback may well change
/// the buffers through the pointers `buffer_ptrs` handed out (a C callback does): look at them in
/// the prepare phase anyway, which costs less than the notice each first change would otherwise
/// post through the `Remote`.
#[inline(always)]
fn about_to_call(st: &mut Store, h: BufferEvent) -> Option<&mut Bev> {
    let b = st.bevs.get_mut(key(h))?;
    if b.watched {
        mark_dirty_in(&mut st.dirty, b, h);
        b.input().watch_expect();
        b.output().watch_expect();
    }
    Some(b)
}

/// Puts `b` (handle `h`) on the prepare phase's list, once.
#[inline(always)]
fn mark_dirty_in(dirty: &mut Vec<BufferEvent>, b: &mut Bev, h: BufferEvent) {
    if !b.dirty {
        b.dirty = true;
        dirty.push(h);
    }
}

/// `take_cb` for the read callback.
#[inline(always)]
fn take_read(st: &mut Store, h: BufferEvent) -> Option<(Box<DataCb>, u32)> {
    let b = about_to_call(st, h)?;
    let cb = b.cbs.read.take()?;
    Some((cb, b.cbs.versions[Cb::Read.slot()]))
}

/// `put_back` for the read callback.
#[inline(always)]
fn put_back_read(st: &mut Store, h: BufferEvent, cb: Box<DataCb>, version: u32) {
    if let Ok(b) = st.get_mut(h) {
        if b.cbs.versions[Cb::Read.slot()] == version {
            b.cbs.read.get_or_insert(cb);
        }
    }
}

/// Puts a callback back after it ran (or unwound), unless callbacks were set or cleared meanwhile
/// (libevent's `bufferevent_setcb` from inside a callback) or the bufferevent was freed.
#[inline(always)]
fn put_back(st: &mut Store, h: BufferEvent, cb: Taken, version: u32) {
    let Ok(b) = st.get_mut(h) else { return };
    if b.cbs.versions[cb.slot()] != version {
        return;
    }
    match cb {
        Taken::Read(cb) => {
            b.cbs.read.get_or_insert(cb);
        }
        Taken::Write(cb) => {
            b.cbs.write.get_or_insert(cb);
        }
        Taken::Event(cb, _) => {
            b.cbs.event.get_or_insert(cb);
        }
    }
}

/// Calls the user's callback now (the work event's deferred callbacks).
fn call(base: &mut EventBase, h: BufferEvent, which: Cb) {
    let Some((mut cb, version)) = take_cb(cx(base).st, h, which) else {
        return;
    };
    let r = catch_unwind(AssertUnwindSafe(|| cb.invoke(base, h)));
    put_back(cx(base).st, h, cb, version);
    if let Err(payload) = r {
        resume_unwind(payload);
    }
}

// ---- the user's side ----

/// Replaces some callbacks: each `Some` sets one (`Some(None)` clears it), `None` leaves it.
pub(crate) fn set_callbacks(
    cx: &mut Cx,
    h: BufferEvent,
    read: Option<Option<Box<DataCb>>>,
    write: Option<Option<Box<DataCb>>>,
    event: Option<Option<Box<EventCb>>>,
) -> Result<()> {
    let b = cx.st.get_mut(h)?;
    let v = &mut b.cbs.versions;
    if let Some(r) = read {
        b.cbs.read = r;
        v[0] = v[0].wrapping_add(1);
    }
    if let Some(w) = write {
        b.cbs.write = w;
        v[1] = v[1].wrapping_add(1);
    }
    if let Some(e) = event {
        b.cbs.event = e;
        v[2] = v[2].wrapping_add(1);
    }
    Ok(())
}

/// Makes the buffers tell `h` of changes made through foreign pointers (see `buffer_ptrs`).
pub(crate) fn watch_buffers(base: &mut EventBase, h: BufferEvent) -> Result<()> {
    if cx(base).st.get(h)?.watched {
        return Ok(());
    }
    let remote = base.remote()?;
    let mut cx = cx(base);
    let ev = work_event(&mut cx, h).ok_or(STALE)?;
    let b = cx.st.get_mut(h)?;
    for buf in [b.input.get_mut(), b.output.get_mut()] {
        let r = remote.clone();
        buf.set_watch(Box::new(move || {
            let _ = r.activate(ev, What::WRITE);
        }));
    }
    b.watched = true;
    Ok(())
}

/// Takes `h` out of the store and releases what the generic half holds; the caller hands the kind's
/// part to `kind::destruct`.
pub(crate) fn unlink(cx: &mut Cx, h: BufferEvent) -> Result<Bev> {
    cx.st.get(h)?;
    ratelimit::leave_group(cx, h);
    let mut b = cx.st.remove(h).ok_or(STALE)?;
    if let Some(ev) = b.work_ev.take() {
        let _ = cx.core.free(ev);
    }
    if let Some(t) = b.timers.take() {
        t.free(cx.core);
    }
    if let Some(r) = b.rate.take() {
        r.free(cx.core);
    }
    Ok(b)
}

/// Sets the priority of the work event (the kind sets its own events').
pub(crate) fn set_work_priority(cx: &mut Cx, h: BufferEvent, pri: usize) -> Result<()> {
    let b = cx.st.get_mut(h)?;
    b.priority = Some(pri);
    if let Some(ev) = b.work_ev {
        cx.core.set_priority(ev, pri)?;
    }
    if let Some(t) = &b.timers {
        t.set_priority(cx.core, pri)?;
    }
    Ok(())
}
