//! The bufferevent kinds behind one small interface (libevent's `bufferevent_ops`): the generic code
//! calls these operations and never looks at the kind; this file is the only place that does.
//!
//! | operation | does |
//! |---|---|
//! | `sync` | bring kernel interest and data flow in line with the enable flags, suspensions and buffers (libevent's enable/disable, done lazily in the prepare phase) |
//! | `disable` | stop watching what was just disabled, at once, with no I/O |
//! | `flush` | push data through now |
//! | `destruct` | release the kind's resources when the bufferevent is freed |
//! | `adj_timeouts` | make new read/write timeouts take effect |
//! | `fd`, `forget_unowned_fd` | the socket, if any |

use super::bev::{parts, Bev};
use super::filter::Filter;
use super::pair::Pair;
use super::socket::Socket;
use super::{BevOptions, BufferEvent, FlushMode};
use crate::base::EventBase;
use crate::error::Result;
use crate::event::What;
use std::os::fd::RawFd;

pub(crate) enum Kind {
    Socket(Socket),
    Pair(Pair),
    Filter(Filter),
}

#[derive(Clone, Copy)]
enum Tag {
    Socket,
    Pair,
    Filter,
}

#[inline]
fn tag(base: &mut EventBase, h: BufferEvent) -> Option<Tag> {
    Some(match parts(base).1.get(h).ok()?.kind {
        Kind::Socket(_) => Tag::Socket,
        Kind::Pair(_) => Tag::Pair,
        Kind::Filter(_) => Tag::Filter,
    })
}

#[inline]
pub(crate) fn sync(base: &mut EventBase, h: BufferEvent) {
    match tag(base, h) {
        Some(Tag::Socket) => super::socket::sync(base, h),
        Some(Tag::Pair) => super::pair::sync(base, h),
        Some(Tag::Filter) => super::filter::sync(base, h),
        None => {}
    }
}

pub(crate) fn disable(base: &mut EventBase, h: BufferEvent) {
    match tag(base, h) {
        Some(Tag::Socket) => super::socket::disarm(base, h),
        // Pairs and filters move data only in `sync`, which sees the new flags.
        Some(Tag::Pair | Tag::Filter) | None => {}
    }
}

pub(crate) fn flush(
    base: &mut EventBase,
    h: BufferEvent,
    what: What,
    mode: FlushMode,
) -> Result<bool> {
    match tag(base, h) {
        Some(Tag::Socket) => super::socket::flush(base, h, what, mode),
        Some(Tag::Pair) => super::pair::flush(base, h, what, mode),
        Some(Tag::Filter) => super::filter::flush(base, h, what, mode),
        None => Ok(false),
    }
}

pub(crate) fn adj_timeouts(base: &mut EventBase, h: BufferEvent) {
    if let Some(Tag::Socket) = tag(base, h) {
        super::socket::rearm_timeouts(base, h);
    }
}

/// The bufferevent `b` (already out of the store) is being freed.
pub(crate) fn destruct(base: &mut EventBase, mut b: Bev) {
    let kind = std::mem::replace(&mut b.kind, Kind::Pair(Pair::default()));
    match kind {
        Kind::Socket(s) => s.destruct(base, &mut b),
        Kind::Pair(p) => p.destruct(base, &mut b),
        Kind::Filter(f) => f.destruct(base, b.options),
    }
    // Callbacks and buffers drop here, outside any borrow of the base.
    drop(b);
}

impl Kind {
    pub(crate) fn fd(&self) -> Option<RawFd> {
        match self {
            Kind::Socket(s) => s.raw_fd(),
            Kind::Pair(_) | Kind::Filter(_) => None,
        }
    }

    /// The other end of a pair.
    pub(crate) fn partner(&self) -> Option<BufferEvent> {
        match self {
            Kind::Pair(p) => p.partner,
            _ => None,
        }
    }

    /// The bufferevent under a filter.
    pub(crate) fn underlying(&self) -> Option<BufferEvent> {
        match self {
            Kind::Filter(f) => Some(f.underlying),
            _ => None,
        }
    }

    /// The base is dropping the bufferevent without `free`: leave a socket the user owns open.
    pub(crate) fn forget_unowned_fd(&mut self, options: BevOptions) {
        if let Kind::Socket(s) = self {
            s.forget_unowned_fd(options);
        }
    }
}
