//! The bufferevent kinds behind one small interface (libevent's `bufferevent_ops`): the generic code
//! calls these operations and never looks at the kind; this file is the only place that does.
//!
//! | operation | does |
//! |---|---|
//! | `sync` | bring kernel interest and data flow in line with the enable flags, suspensions and buffers (libevent's enable/disable, done lazily in the prepare phase) |
//! | `disable` | stop watching what was just disabled, at once, with no I/O |
//! | `flush` | push data through now |
//! | `destruct` | release the kind's resources when the bufferevent is freed |
//! | `adj_timeouts` | make new read/write timeouts take effect (pairs and filters: `timeout.rs`) |
//! | `fd`, `forget_unowned_fd` | the socket, if any |
//!
//! The kinds: `socket`, `pair`, `filter`, and `tls` (a TLS session over an underlying bufferevent).

use super::bev::{Bev, Cx};
use super::filter::Filter;
use super::pair::Pair;
use super::socket::Socket;
use super::tls::Tls;
use super::{BevOptions, BufferEvent, FlushMode};
use crate::error::Result;
use crate::event::What;
use std::os::fd::{OwnedFd, RawFd};

pub(crate) enum Kind {
    Socket(Socket),
    Pair(Pair),
    Filter(Filter),
    Tls(Box<Tls>),
}

/// Which kind a bufferevent is, without borrowing it.
#[derive(Clone, Copy)]
pub(crate) enum Tag {
    Socket,
    Pair,
    Filter,
    Tls,
}

impl Kind {
    #[inline]
    pub(crate) fn tag(&self) -> Tag {
        match self {
            Kind::Socket(_) => Tag::Socket,
            Kind::Pair(_) => Tag::Pair,
            Kind::Filter(_) => Tag::Filter,
            Kind::Tls(_) => Tag::Tls,
        }
    }
}

#[inline]
fn tag(cx: &Cx, h: BufferEvent) -> Option<Tag> {
    Some(cx.st.get(h).ok()?.kind.tag())
}

#[inline]
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    if let Some(t) = tag(cx, h) {
        sync_as(cx, h, t);
    }
}

/// `sync` for a caller that has looked at the bufferevent already: no second lookup for the kind.
#[inline(always)]
pub(crate) fn sync_as(cx: &mut Cx, h: BufferEvent, tag: Tag) {
    match tag {
        Tag::Socket => super::socket::sync(cx, h),
        Tag::Pair => super::pair::sync(cx, h),
        Tag::Filter => super::filter::sync(cx, h),
        Tag::Tls => super::tls::sync(cx, h),
    }
}

pub(crate) fn disable(cx: &mut Cx, h: BufferEvent) {
    match tag(cx, h) {
        Some(Tag::Socket) => super::socket::disarm(cx, h),
        // The underlying bufferevent stops reading with this one.
        Some(Tag::Tls) => super::tls::disable(cx, h),
        // Pairs and filters move data only in `sync`, which sees the new flags; their timers stop
        // at once.
        Some(Tag::Pair | Tag::Filter) => super::timeout::adj(cx, h, What::NONE),
        None => {}
    }
}

/// An API call: callbacks it triggers are deferred.
pub(crate) fn flush(cx: &mut Cx, h: BufferEvent, what: What, mode: FlushMode) -> Result<bool> {
    match tag(cx, h) {
        Some(Tag::Socket) => super::socket::flush(cx, h, what, mode),
        Some(Tag::Pair) => super::pair::flush(cx, h, what, mode),
        Some(Tag::Filter) => super::filter::flush(cx, h, what, mode),
        Some(Tag::Tls) => super::tls::flush(cx, h, what, mode),
        None => Ok(false),
    }
}

pub(crate) fn adj_timeouts(cx: &mut Cx, h: BufferEvent) {
    match tag(cx, h) {
        Some(Tag::Socket) => super::socket::rearm_timeouts(cx, h),
        Some(Tag::Tls) => super::tls::adj_timeouts(cx, h),
        Some(Tag::Pair | Tag::Filter) => super::timeout::adj(cx, h, What::READ | What::WRITE),
        None => {}
    }
}

/// The bufferevent `b` (already out of the store) is being freed: an API call, so callbacks it
/// triggers on other bufferevents are deferred. Returns a socket the bufferevent did not own.
pub(crate) fn destruct(cx: &mut Cx, mut b: Bev) -> Option<OwnedFd> {
    let kind = std::mem::replace(&mut b.kind, Kind::Pair(Pair::default()));
    let fd = match kind {
        Kind::Socket(s) => s.destruct(cx, &mut b),
        Kind::Pair(p) => {
            p.destruct(cx, &mut b);
            None
        }
        Kind::Filter(f) => {
            f.destruct(cx, b.options);
            None
        }
        Kind::Tls(t) => t.destruct(cx, &mut b),
    };
    // Callbacks and buffers drop here; nothing of theirs runs.
    drop(b);
    fd
}

impl Kind {
    pub(crate) fn fd(&self) -> Option<RawFd> {
        match self {
            Kind::Socket(s) => s.raw_fd(),
            Kind::Pair(_) | Kind::Filter(_) | Kind::Tls(_) => None,
        }
    }

    /// The kind's own events (a socket's read and write events).
    pub(crate) fn events(&self) -> impl Iterator<Item = crate::event::EventId> {
        let evs = match self {
            Kind::Socket(s) => s.events().collect(),
            Kind::Pair(_) | Kind::Filter(_) | Kind::Tls(_) => Vec::new(),
        };
        evs.into_iter()
    }

    /// The other end of a pair.
    pub(crate) fn partner(&self) -> Option<BufferEvent> {
        match self {
            Kind::Pair(p) => p.partner,
            _ => None,
        }
    }

    /// The bufferevent under a filter or a TLS bufferevent (the hidden socket one included).
    pub(crate) fn underlying(&self) -> Option<BufferEvent> {
        match self {
            Kind::Filter(f) => Some(f.underlying),
            Kind::Tls(t) => Some(t.underlying),
            _ => None,
        }
    }

    /// The underlying bufferevent the user made (not the hidden socket of a TLS socket form).
    pub(crate) fn visible_underlying(&self) -> Option<BufferEvent> {
        match self {
            Kind::Tls(t) if t.hidden => None,
            _ => self.underlying(),
        }
    }

    /// The hidden socket bufferevent of a TLS socket form.
    pub(crate) fn hidden_socket(&self) -> Option<BufferEvent> {
        match self {
            Kind::Tls(t) if t.hidden => Some(t.underlying),
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
