//! Filtering bufferevents: a bufferevent stacked on another one, transforming the bytes that pass
//! (compression, TLS-like framing, line rewriting). Reads: underlying input → input filter → this
//! input. Writes: this output → output filter → underlying output.

use super::{run_cb, BevOptions, BufferEvent, Cb, FlushMode, Kind};
use crate::base::EventBase;
use crate::buffer::Evbuffer;
use crate::error::{Error, Result};
use crate::event::What;

/// What a filter did.
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

    pub(crate) fn close(self, base: &mut EventBase, options: BevOptions) {
        if let Ok(u) = base.bevs.get_mut(self.underlying) {
            u.upper = None;
        }
        if options.contains(BevOptions::CLOSE_ON_FREE) {
            let _ = self.underlying.free(base);
        }
    }
}

pub(crate) fn attach(base: &mut EventBase, h: BufferEvent, underlying: BufferEvent) -> Result<()> {
    base.bevs.get_mut(underlying)?.upper = Some(h);
    underlying.enable(base, What::READ | What::WRITE)
}

/// The underlying bufferevent was freed under us: nothing more will come.
pub(crate) fn underlying_gone(base: &mut EventBase, upper: BufferEvent) {
    run_cb(
        base,
        upper,
        Cb::Event(super::BevFlags::EOF | super::BevFlags::READING),
        false,
    );
}

fn underlying_of(base: &EventBase, h: BufferEvent) -> Option<BufferEvent> {
    match &base.bevs.get(h).ok()?.kind {
        Kind::Filter(f) => Some(f.underlying),
        _ => None,
    }
}

/// Runs the input filter: underlying input → our input. Returns bytes produced, or None on error.
fn filter_in(base: &mut EventBase, h: BufferEvent, mode: FlushMode) -> Option<usize> {
    let u = underlying_of(base, h)?;
    let (me, under) = base.bevs.pair_mut(h, u)?;
    if !me.enabled.contains(What::READ) || me.read_suspended != 0 || under.input.is_empty() {
        return Some(0);
    }
    let limit = if me.read_high > 0 {
        me.read_high.saturating_sub(me.input.len()) as isize
    } else {
        -1
    };
    let before = me.input.len();
    let super::Bev { input, kind, .. } = &mut *me;
    let Kind::Filter(f) = kind else {
        return Some(0);
    };
    let res = match &mut f.input {
        Some(filt) => filt(&mut under.input, input, limit, mode),
        None => {
            let n = if limit < 0 {
                usize::MAX
            } else {
                limit as usize
            };
            let _ = under.input.remove_buffer(input, n);
            FilterResult::Ok
        }
    };
    if res == FilterResult::Error {
        return None;
    }
    Some(me.input.len().saturating_sub(before))
}

/// Runs the output filter: our output → underlying output. Returns bytes produced, or None on error.
fn filter_out(base: &mut EventBase, h: BufferEvent, mode: FlushMode) -> Option<usize> {
    let u = underlying_of(base, h)?;
    let (me, under) = base.bevs.pair_mut(h, u)?;
    if mode == FlushMode::Normal && (!me.enabled.contains(What::WRITE) || me.output.is_empty()) {
        return Some(0);
    }
    let limit = if under.write_high > 0 {
        under.write_high.saturating_sub(under.output.len()) as isize
    } else {
        -1
    };
    let before = under.output.len();
    let super::Bev { output, kind, .. } = &mut *me;
    let Kind::Filter(f) = kind else {
        return Some(0);
    };
    let res = match &mut f.output {
        Some(filt) => filt(output, &mut under.output, limit, mode),
        None => {
            let n = if limit < 0 {
                usize::MAX
            } else {
                limit as usize
            };
            let _ = output.remove_buffer(&mut under.output, n);
            FilterResult::Ok
        }
    };
    if res == FilterResult::Error {
        return None;
    }
    let produced = under.output.len().saturating_sub(before);
    if produced > 0 {
        base.bevs.mark_dirty(u);
    }
    Some(produced)
}

fn filter_error(base: &mut EventBase, h: BufferEvent, dir: super::BevFlags) {
    super::report(base, h, super::BevFlags::ERROR | dir, Some(libc::EINVAL));
}

/// A callback of the underlying bufferevent, redirected to the filter on top of it.
pub(crate) fn from_underlying(base: &mut EventBase, h: BufferEvent, which: Cb) {
    match which {
        Cb::Read => match filter_in(base, h, FlushMode::Normal) {
            Some(n) if n > 0 => {
                let Ok(me) = base.bevs.get(h) else { return };
                if me.input.len() >= me.read_low {
                    run_cb(base, h, Cb::Read, false);
                }
            }
            Some(_) => {}
            None => filter_error(base, h, super::BevFlags::READING),
        },
        Cb::Write => {
            if filter_out(base, h, FlushMode::Normal).is_none() {
                filter_error(base, h, super::BevFlags::WRITING);
                return;
            }
            let Ok(me) = base.bevs.get(h) else { return };
            if me.output.len() <= me.write_low {
                run_cb(base, h, Cb::Write, false);
            }
        }
        Cb::Event(flags) => run_cb(base, h, Cb::Event(flags), false),
    }
}

/// The filter was touched: push its output down, pull input up if the user made room.
pub(crate) fn sync(base: &mut EventBase, h: BufferEvent) {
    if filter_out(base, h, FlushMode::Normal).is_none() {
        filter_error(base, h, super::BevFlags::WRITING);
        return;
    }
    from_underlying(base, h, Cb::Read);
}

pub(crate) fn flush(
    base: &mut EventBase,
    h: BufferEvent,
    what: What,
    mode: FlushMode,
) -> Result<bool> {
    let u = underlying_of(base, h).ok_or(Error::StaleEvent)?;
    let mut moved = false;
    if what.contains(What::WRITE) {
        match filter_out(base, h, mode) {
            Some(n) => moved |= n > 0,
            None => return Err(Error::InvalidArgument("output filter failed")),
        }
        moved |= u.flush(base, What::WRITE, mode)?;
    }
    if what.contains(What::READ) {
        match filter_in(base, h, mode) {
            Some(n) => moved |= n > 0,
            None => return Err(Error::InvalidArgument("input filter failed")),
        }
    }
    Ok(moved)
}
