//! Filtering bufferevents: a bufferevent stacked on another one, transforming the bytes that pass
//! (compression, TLS-like framing, line rewriting). Reads: underlying input → input filter → this
//! input. Writes: this output → output filter → underlying output.
//!
//! As in libevent, the filter takes over the underlying bufferevent's callbacks: its read callback
//! pulls data up, its write callback pushes more down, its event callback is passed on.

use super::bev::{self, read_done, report, run_queued, write_done, Bev, Cx};
use super::kind::Kind;
use super::timeout;
use super::{BevFlags, BevOptions, BufferEvent, FlushMode};
use crate::base::EventBase;
use crate::buffer::Evbuffer;
use crate::error::{Error, Result};
use crate::event::What;

/// What a filter did.
///
/// ```
/// use revent::{Evbuffer, FilterResult, FlushMode};
/// // A filter that passes whole 4-byte records and waits for the rest of a partial one.
/// let mut records = |src: &mut Evbuffer, dst: &mut Evbuffer, _limit: isize, _mode: FlushMode| {
///     let whole = src.len() / 4 * 4;
///     if whole == 0 {
///         return FilterResult::NeedMore;
///     }
///     src.remove_buffer(dst, whole).unwrap();
///     FilterResult::Ok
/// };
/// let (mut src, mut dst) = (Evbuffer::new(), Evbuffer::new());
/// src.add(b"abcdef").unwrap();
/// assert_eq!(records(&mut src, &mut dst, -1, FlushMode::Normal), FilterResult::Ok);
/// assert_eq!((src.len(), dst.len()), (2, 4));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FilterResult {
    /// It produced what it could.
    Ok,
    /// It needs more input before it can produce anything.
    NeedMore,
    /// The data is bad; the bufferevent reports ERROR.
    Error,
}

/// A filter: moves bytes from `src` to `dst`, transforming them, producing at most `limit` bytes
/// when `limit` is non-negative. `mode` says whether to hold back data (`Normal`) or push out
/// everything (`Flush`, `Finished`).
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, FilterFn, FilterResult};
/// let upper: Box<FilterFn> = Box::new(|src, dst, _, _| {
///     let bytes = src.pullup_all().unwrap().to_ascii_uppercase();
///     src.drain(bytes.len()).unwrap();
///     dst.add(&bytes).unwrap();
///     FilterResult::Ok
/// });
/// let mut base = EventBase::new().unwrap();
/// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// let f = BufferEvent::filter(&mut base, a, None, Some(upper), BevOptions::CLOSE_ON_FREE).unwrap();
/// f.free(&mut base).unwrap();
/// ```
pub type FilterFn = dyn FnMut(&mut Evbuffer, &mut Evbuffer, isize, FlushMode) -> FilterResult;

pub(crate) struct Filter {
    pub(crate) underlying: BufferEvent,
    input: Option<Box<FilterFn>>,
    output: Option<Box<FilterFn>>,
}

impl Filter {
    pub(crate) fn new(
        underlying: BufferEvent,
        input: Option<Box<FilterFn>>,
        output: Option<Box<FilterFn>>,
    ) -> Filter {
        Filter {
            underlying,
            input,
            output,
        }
    }

    /// The filter is freed: the underlying bufferevent gets its callbacks cleared (as libevent does)
    /// and, with CLOSE_ON_FREE, is freed too.
    pub(crate) fn destruct(self, cx: &mut Cx, options: BevOptions) {
        let u = self.underlying;
        if let Ok(under) = cx.st.get_mut(u) {
            under.upper = None;
            let _ = bev::set_callbacks(cx, u, Some(None), Some(None), Some(None));
        }
        if options.contains(BevOptions::CLOSE_ON_FREE) {
            let _ = super::free(cx, u);
        }
    }
}

/// Stacks `h` on `underlying`: takes over its callbacks and enables it both ways.
pub(crate) fn attach(cx: &mut Cx, h: BufferEvent, underlying: BufferEvent) -> Result<()> {
    let under = cx.st.get_mut(underlying)?;
    under.upper = Some(h);
    under.enabled |= What::READ | What::WRITE;
    cx.st.mark_dirty(underlying);
    bev::set_callbacks(
        cx,
        underlying,
        Some(Some(Box::new(move |base, _| {
            on_underlying(base, h, pull_up)
        }))),
        Some(Some(Box::new(move |base, _| {
            on_underlying(base, h, push_down)
        }))),
        Some(Some(Box::new(move |base, _, flags| {
            on_underlying(base, h, |cx, h| report(cx, h, flags, None))
        }))),
    )
}

/// A callback of the underlying bufferevent: the filter's bookkeeping, then its own callbacks.
fn on_underlying(base: &mut EventBase, h: BufferEvent, f: impl FnOnce(&mut Cx, BufferEvent)) {
    f(&mut bev::cx(base), h);
    run_queued(base);
}

fn underlying_of(b: &Bev) -> Option<BufferEvent> {
    match &b.kind {
        Kind::Filter(f) => Some(f.underlying),
        _ => None,
    }
}

fn limit_of(room: Option<usize>) -> isize {
    room.map_or(-1, |n| n.min(isize::MAX as usize) as isize)
}

/// Runs the input filter: underlying input → our input. Returns bytes produced, or None on error.
fn filter_in(cx: &mut Cx, h: BufferEvent, mode: FlushMode) -> Option<usize> {
    let st = &mut *cx.st;
    let u = underlying_of(st.get(h).ok()?)?;
    let (me, under) = st.get2_mut(h, u)?;
    if !me.wants_read() || under.input.get().is_empty() {
        return Some(0);
    }
    let room = (me.read_high > 0).then(|| me.read_high.saturating_sub(me.input.get().len()));
    let before = me.input.get().len();
    let Bev { input, kind, .. } = me;
    let Kind::Filter(f) = kind else {
        return Some(0);
    };
    let (src, dst) = (under.input.get_mut(), input.get_mut());
    let res = match &mut f.input {
        Some(filt) => filt(src, dst, limit_of(room), mode),
        None => {
            let _ = src.remove_buffer(dst, room.unwrap_or(usize::MAX));
            FilterResult::Ok
        }
    };
    if res == FilterResult::Error {
        return None;
    }
    let produced = dst.len().saturating_sub(before);
    // The underlying input shrank: it may read again.
    st.mark_dirty(u);
    Some(produced)
}

/// Runs the output filter: our output → underlying output. Returns how much of our output it took,
/// or None on error.
fn filter_out(cx: &mut Cx, h: BufferEvent, mode: FlushMode) -> Option<usize> {
    let st = &mut *cx.st;
    let u = underlying_of(st.get(h).ok()?)?;
    let (me, under) = st.get2_mut(h, u)?;
    if mode == FlushMode::Normal && !me.wants_write() {
        return Some(0);
    }
    let room =
        (under.write_high > 0).then(|| under.write_high.saturating_sub(under.output.get().len()));
    let before = me.output.get().len();
    let Bev { output, kind, .. } = me;
    let Kind::Filter(f) = kind else {
        return Some(0);
    };
    let (src, dst) = (output.get_mut(), under.output.get_mut());
    let produced_before = dst.len();
    let res = match &mut f.output {
        Some(filt) => filt(src, dst, limit_of(room), mode),
        None => {
            let _ = src.remove_buffer(dst, room.unwrap_or(usize::MAX));
            FilterResult::Ok
        }
    };
    if res == FilterResult::Error {
        return None;
    }
    let taken = before.saturating_sub(src.len());
    if dst.len() != produced_before {
        st.mark_dirty(u);
    }
    Some(taken)
}

fn filter_error(cx: &mut Cx, h: BufferEvent, dir: BevFlags) {
    report(cx, h, BevFlags::ERROR | dir, Some(libc::EINVAL));
}

/// The underlying bufferevent has input: filter it up and tell our reader.
fn pull_up(cx: &mut Cx, h: BufferEvent) {
    match filter_in(cx, h, FlushMode::Normal) {
        Some(n) if n > 0 => {
            timeout::adj(cx, h, What::READ);
            read_done(cx, h, n)
        }
        Some(_) => {}
        None => filter_error(cx, h, BevFlags::READING),
    }
}

/// The underlying bufferevent drained its output: filter more of ours down.
fn push_down(cx: &mut Cx, h: BufferEvent) {
    match filter_out(cx, h, FlushMode::Normal) {
        Some(n) if n > 0 => {
            timeout::adj(cx, h, What::WRITE);
            write_done(cx, h, n)
        }
        Some(_) => {}
        None => filter_error(cx, h, BevFlags::WRITING),
    }
}

/// The filter was touched: push its output down, pull input up if the user made room.
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    push_down(cx, h);
    pull_up(cx, h);
    timeout::adj(cx, h, What::NONE);
}

/// An API call: callbacks it triggers are deferred.
pub(crate) fn flush(cx: &mut Cx, h: BufferEvent, what: What, mode: FlushMode) -> Result<bool> {
    let u = underlying_of(cx.st.get(h)?).ok_or(Error::Stale(crate::Handle::BufferEvent))?;
    bev::deferring(cx, |cx| {
        let mut moved = false;
        if what.contains(What::WRITE) {
            let n =
                filter_out(cx, h, mode).ok_or(Error::InvalidArgument("output filter failed"))?;
            if n > 0 {
                moved = true;
                write_done(cx, h, n);
            }
            if cx.st.get(u).is_ok() {
                moved |= super::kind::flush(cx, u, What::WRITE, mode)?;
            }
        }
        if what.contains(What::READ) {
            let n = filter_in(cx, h, mode).ok_or(Error::InvalidArgument("input filter failed"))?;
            if n > 0 {
                moved = true;
                read_done(cx, h, n);
            }
        }
        Ok(moved)
    })
}
