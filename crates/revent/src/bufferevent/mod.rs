//! Bufferevents: buffered connections with watermarks, timeouts and callbacks.
//!
//! A [`BufferEvent`] owns an input and an output [`Evbuffer`]. Four kinds share one interface:
//! sockets (`socket`), in-memory pairs (`pair`), filters over another bufferevent (`filter`) and TLS
//! over a socket or another bufferevent (`tls`, driving a [`TlsSession`]; `tls_rustls` is the rustls
//! one, with the `tls` feature).
//! Bufferevents live in the [`EventBase`]; a `BufferEvent` is a `Copy` handle checked by generation,
//! so a freed one is an error ([`Error::Stale`]), never a dangling pointer.
//!
//! Layout: `bev.rs` is the generic half (watermarks, callbacks, deferral, the prepare phase),
//! `kind.rs` the interface the kinds implement, one file per kind, and `ratelimit.rs` the token
//! buckets. A socket bufferevent on an io_uring base does its I/O on the ring (`ring.rs`: receives
//! and sends whose completions come back through the loop) unless
//! [`Config::uring_readiness_only`](crate::Config::uring_readiness_only) says otherwise.

mod bev;
mod filter;
mod kind;
mod pair;
pub(crate) mod ratelimit;
mod ring;
mod socket;
mod timeout;
mod tls;
#[cfg(feature = "tls")]
mod tls_rustls;

pub use filter::{FilterFn, FilterResult};
pub use ratelimit::{RateLimit, RateLimitGroup};
pub use tls::{TlsError, TlsSession, TlsState};
#[cfg(feature = "tls")]
pub use tls_rustls::RustlsSession;

use crate::base::EventBase;
use crate::buffer::{EolStyle, Evbuffer};
use crate::error::{Error, Result};
use crate::event::What;
use crate::flags::flags;
use bev::{cx, Bev, Cb, Cx};
use kind::Kind;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

flags! {
    /// What happened, as the event callback is told (libevent's `BEV_EVENT_*`, same values).
    ///
    /// ```
    /// use revent::BevFlags;
    /// let f = BevFlags::EOF | BevFlags::READING;
    /// assert!(f.intersects(BevFlags::EOF | BevFlags::ERROR));
    /// ```
    BevFlags: u16 {
        /// While reading.
        const READING = 0x01;
        /// While writing.
        const WRITING = 0x02;
        /// End of file.
        const EOF = 0x10;
        /// An error; [`BufferEvent::error`] tells which.
        const ERROR = 0x20;
        /// A read or write timeout expired.
        const TIMEOUT = 0x40;
        /// A `connect` finished.
        const CONNECTED = 0x80;
    }
}

flags! {
    /// Options of a bufferevent (libevent's `BEV_OPT_*`, same values).
    ///
    /// ```
    /// use revent::BevOptions;
    /// let o = BevOptions::CLOSE_ON_FREE | BevOptions::DEFER_CALLBACKS;
    /// assert!(o.contains(BevOptions::CLOSE_ON_FREE));
    /// ```
    BevOptions: u32 {
        /// Close the fd (or free the underlying bufferevent) when this one is freed.
        const CLOSE_ON_FREE = 0x01;
        /// Accepted for compatibility; a bufferevent lives on its base's thread.
        const THREADSAFE = 0x02;
        /// Run callbacks (and the buffers' change callbacks) from the event loop's active queue
        /// instead of right away. Pairs always have it.
        const DEFER_CALLBACKS = 0x04;
        /// Accepted for compatibility.
        const UNLOCK_CALLBACKS = 0x08;
    }
}

/// How hard [`BufferEvent::flush`] pushes (libevent's `BEV_NORMAL` / `BEV_FLUSH` / `BEV_FINISHED`).
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, FlushMode, What};
/// let mut base = EventBase::new().unwrap();
/// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// a.write(&mut base, b"now").unwrap();
/// assert!(a.flush(&mut base, What::WRITE, FlushMode::Flush).unwrap());
/// assert_eq!(b.input(&mut base).unwrap().len(), 3);
/// ```
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
///
/// ```
/// use revent::{BevOptions, BufferEvent, DataCb, EventBase, EventCb};
/// let read: Box<DataCb> = Box::new(|base, bev| {
///     let _ = bev.input(base).map(|i| i.len());
/// });
/// let event: Box<EventCb> = Box::new(|base, bev, what| {
///     println!("{what:?}");
///     let _ = bev.free(base);
/// });
/// let mut base = EventBase::new().unwrap();
/// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// a.set_callbacks(&mut base, Some(read), None, Some(event)).unwrap();
/// ```
pub type DataCb = dyn FnMut(&mut EventBase, BufferEvent);
/// An event callback (see [`DataCb`] for an example).
pub type EventCb = dyn FnMut(&mut EventBase, BufferEvent, BevFlags);

/// A handle to a bufferevent in an [`EventBase`].
///
/// Callbacks run from the loop: the read callback when new input reaches the low watermark, the
/// write callback when the output drains to the write low watermark, the event callback on EOF,
/// errors, timeouts and connects. No callback runs inside a call on the handle (`enable`, `write`,
/// `flush`, `free` ...): what such a call triggers is deferred to the loop.
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, What};
/// let mut base = EventBase::new().unwrap();
/// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// b.set_read_cb(&mut base, |base, bev| {
///     let mut line = [0u8; 5];
///     let n = bev.read(base, &mut line).unwrap();
///     assert_eq!(&line[..n], b"hello");
/// })
/// .unwrap();
/// b.enable(&mut base, What::READ).unwrap();
/// a.write(&mut base, b"hello").unwrap();
/// base.dispatch().unwrap();
/// ```
#[must_use = "a bufferevent lives in the base until freed; keep its handle to free it"]
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

/// The bufferevent, marked for the prepare phase (everything that changes it through the handle
/// does this).
#[inline]
fn touch(base: &mut EventBase, h: BufferEvent) -> Result<&mut Bev> {
    let b = cx(base).st.touch(h)?;
    if b.watched() {
        // The prepare phase will look at the buffers anyway: no notice needed for what the caller
        // is about to do through the references it gets.
        b.input().watch_expect();
        b.output().watch_expect();
    }
    Ok(b)
}

impl BufferEvent {
    /// A bufferevent on a connected (or, with [`connect`](Self::connect), to-be-connected) socket.
    /// `None` makes one without a socket yet. The socket is made non-blocking. With CLOSE_ON_FREE
    /// the bufferevent closes it when freed; without, [`free`](Self::free) hands it back.
    pub fn socket(
        base: &mut EventBase,
        fd: Option<OwnedFd>,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        let mut cx = cx(base);
        let h = cx
            .st
            .insert(Bev::new(Kind::Socket(Default::default()), options));
        if let Err(e) = socket::set_fd(&mut cx, h, fd) {
            cx.st.remove(h);
            return Err(e);
        }
        Ok(h)
    }

    /// Two bufferevents connected to each other in memory: what one writes, the other reads. As in
    /// libevent, their callbacks are always deferred to the loop.
    pub fn pair(base: &mut EventBase, options: BevOptions) -> Result<(BufferEvent, BufferEvent)> {
        let options = options | BevOptions::DEFER_CALLBACKS;
        let mut cx = cx(base);
        let a = cx
            .st
            .insert(Bev::new(Kind::Pair(Default::default()), options));
        let b = cx
            .st
            .insert(Bev::new(Kind::Pair(Default::default()), options));
        pair::link(&mut cx, a, b);
        Ok((a, b))
    }

    /// A bufferevent that passes data through `input` (from the underlying bufferevent to this one's
    /// input) and `output` (from this one's output to the underlying's) filters. `None` copies as is.
    /// The filter takes over the underlying bufferevent's callbacks. With CLOSE_ON_FREE, freeing this
    /// one frees the underlying one.
    pub fn filter(
        base: &mut EventBase,
        underlying: BufferEvent,
        input: Option<Box<FilterFn>>,
        output: Option<Box<FilterFn>>,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        let mut cx = cx(base);
        if cx.st.get(underlying)?.upper.is_some() {
            return Err(Error::InvalidArgument(
                "bufferevent already has a filter on it",
            ));
        }
        let h = cx.st.insert(Bev::new(
            Kind::Filter(filter::Filter::new(underlying, input, output)),
            options,
        ));
        if let Err(e) = filter::attach(&mut cx, h, underlying) {
            let _ = free(&mut cx, h);
            return Err(e);
        }
        Ok(h)
    }

    // ---- callbacks ----

    /// Sets all three callbacks at once (libevent's `bufferevent_setcb`); `None` clears one.
    pub fn set_callbacks(
        self,
        base: &mut EventBase,
        read: Option<Box<DataCb>>,
        write: Option<Box<DataCb>>,
        event: Option<Box<EventCb>>,
    ) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, Some(read), Some(write), Some(event))
    }

    /// Sets the read callback: runs when new input reaches the low watermark.
    pub fn set_read_cb(
        self,
        base: &mut EventBase,
        cb: impl FnMut(&mut EventBase, BufferEvent) + 'static,
    ) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, Some(Some(Box::new(cb))), None, None)
    }

    /// Sets the write callback: runs when the output drains to the low watermark.
    pub fn set_write_cb(
        self,
        base: &mut EventBase,
        cb: impl FnMut(&mut EventBase, BufferEvent) + 'static,
    ) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, None, Some(Some(Box::new(cb))), None)
    }

    /// Sets the event callback: EOF, errors, timeouts, connect results.
    pub fn set_event_cb(
        self,
        base: &mut EventBase,
        cb: impl FnMut(&mut EventBase, BufferEvent, BevFlags) + 'static,
    ) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, None, None, Some(Some(Box::new(cb))))
    }

    /// Removes the read callback.
    pub fn clear_read_cb(self, base: &mut EventBase) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, Some(None), None, None)
    }

    /// Removes the write callback.
    pub fn clear_write_cb(self, base: &mut EventBase) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, None, Some(None), None)
    }

    /// Removes the event callback.
    pub fn clear_event_cb(self, base: &mut EventBase) -> Result<()> {
        bev::set_callbacks(&mut cx(base), self, None, None, Some(None))
    }

    // ---- enabling, watermarks, timeouts ----

    /// Starts reading and/or writing (from the loop, before it next waits: as in libevent, no
    /// callback runs inside this call).
    pub fn enable(self, base: &mut EventBase, what: What) -> Result<()> {
        touch(base, self)?.enabled |= what & (What::READ | What::WRITE);
        Ok(())
    }

    /// Stops reading and/or writing, at once.
    pub fn disable(self, base: &mut EventBase, what: What) -> Result<()> {
        touch(base, self)?.enabled &= !(what & (What::READ | What::WRITE));
        kind::disable(&mut cx(base), self);
        Ok(())
    }

    /// Which of READ and WRITE are enabled.
    pub fn enabled(self, base: &EventBase) -> Result<What> {
        Ok(get(base, self)?.enabled)
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
        let b = touch(base, self)?;
        if what.contains(What::READ) {
            b.read_low = low;
            b.read_high = if high > 0 { high.max(low) } else { 0 };
        }
        if what.contains(What::WRITE) {
            b.write_low = low;
            b.write_high = high;
        }
        Ok(())
    }

    /// Caps how much one read (READ) and/or one write (WRITE) on the socket moves, as libevent's
    /// `bufferevent_set_max_single_read`/`_write`: a flood on one connection then takes its turn
    /// with the others in smaller steps. 0 removes the cap: revent's default, where a read takes
    /// what the socket has (up to the high watermark and the rate limit), libevent's is 16384.
    /// Socket bufferevents apply it on every backend; other kinds keep it without use.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase, What};
    /// let mut base = EventBase::new().unwrap();
    /// let bev = BufferEvent::socket(&mut base, None, BevOptions::CLOSE_ON_FREE).unwrap();
    /// bev.set_max_single(&mut base, What::READ, 4096).unwrap();
    /// assert_eq!(bev.max_single(&base, What::READ).unwrap(), 4096);
    /// assert_eq!(bev.max_single(&base, What::WRITE).unwrap(), 0);
    /// ```
    pub fn set_max_single(self, base: &mut EventBase, what: What, max: usize) -> Result<()> {
        let b = touch(base, self)?;
        let cap = if max == 0 { usize::MAX } else { max };
        if what.contains(What::READ) {
            b.max_read = cap;
        }
        if what.contains(What::WRITE) {
            b.max_write = cap;
        }
        Ok(())
    }

    /// The cap [`set_max_single`](Self::set_max_single) set on READ or WRITE; 0 for none.
    pub fn max_single(self, base: &EventBase, what: What) -> Result<usize> {
        let b = get(base, self)?;
        let cap = if what.contains(What::READ) {
            b.max_read
        } else {
            b.max_write
        };
        Ok(if cap == usize::MAX { 0 } else { cap })
    }

    /// `(low, high)` of the READ or WRITE watermark.
    pub fn watermark(self, base: &EventBase, what: What) -> Result<(usize, usize)> {
        let b = get(base, self)?;
        Ok(if what.contains(What::READ) {
            (b.read_low, b.read_high)
        } else {
            (b.write_low, b.write_high)
        })
    }

    /// Sets the read and write timeouts. A timeout reports TIMEOUT|READING or TIMEOUT|WRITING to the
    /// event callback and disables that direction. Every kind has them: sockets time their reads
    /// and writes, pairs and filters the data that reaches them or leaves them (libevent's
    /// generic timeouts: the write timeout runs only while output waits), TLS its underlying I/O.
    pub fn set_timeouts(
        self,
        base: &mut EventBase,
        read: Option<Duration>,
        write: Option<Duration>,
    ) -> Result<()> {
        let b = touch(base, self)?;
        b.timeout_read = read;
        b.timeout_write = write;
        kind::adj_timeouts(&mut cx(base), self);
        Ok(())
    }

    // ---- data ----

    /// The input buffer (what was read). Draining it below the read high watermark resumes reading.
    pub fn input(self, base: &mut EventBase) -> Result<&mut Evbuffer> {
        Ok(touch(base, self)?.input())
    }

    /// The output buffer (what will be written, before the loop next waits).
    pub fn output(self, base: &mut EventBase) -> Result<&mut Evbuffer> {
        Ok(touch(base, self)?.output())
    }

    /// Both buffers at once, e.g. to echo: `output.add_buffer(input)`.
    #[inline]
    pub fn buffers(self, base: &mut EventBase) -> Result<(&mut Evbuffer, &mut Evbuffer)> {
        let b = touch(base, self)?;
        Ok((b.input.get_mut(), b.output.get_mut()))
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

    /// Takes one line from the input, without its end-of-line bytes (`None` if no whole line is
    /// there yet).
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EolStyle, EventBase};
    /// let mut base = EventBase::new().unwrap();
    /// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// a.input(&mut base).unwrap().add(b"one\r\ntwo").unwrap();
    /// assert_eq!(a.readln(&mut base, EolStyle::CrlfStrict).unwrap(), Some(b"one".to_vec()));
    /// assert_eq!(a.readln(&mut base, EolStyle::CrlfStrict).unwrap(), None);
    /// ```
    pub fn readln(self, base: &mut EventBase, style: EolStyle) -> Result<Option<Vec<u8>>> {
        Ok(self.input(base)?.readln(style)?.map(|(line, _)| line))
    }

    /// Moves all of this bufferevent's input to `dst`'s output in one step, without copying (C's
    /// `evbuffer_add_buffer(bufferevent_get_output(dst), bufferevent_get_input(src))`, as a proxy
    /// does). Returns how many bytes moved.
    ///
    /// ```
    /// use revent::{BevOptions, BufferEvent, EventBase};
    /// let mut base = EventBase::new().unwrap();
    /// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    /// a.input(&mut base).unwrap().add(b"proxied").unwrap();
    /// assert_eq!(a.move_input_to(&mut base, b).unwrap(), 7);
    /// assert_eq!(b.output(&mut base).unwrap().len(), 7);
    /// ```
    pub fn move_input_to(self, base: &mut EventBase, dst: BufferEvent) -> Result<usize> {
        let st = cx(base).st;
        st.mark_dirty(self);
        st.mark_dirty(dst);
        let (src, d) = st.get2_mut(self, dst).ok_or(Error::InvalidArgument(
            "move_input_to needs two different live bufferevents",
        ))?;
        let n = src.input.get().len();
        d.output().add_buffer(src.input())?;
        Ok(n)
    }

    /// Pointers to the input and output buffers that stay valid until the bufferevent is freed, for
    /// code that cannot hold a borrow of the base (a C ABI handing out `struct evbuffer *`). Changes
    /// made through them are noticed: the bufferevent writes (or resumes reading) in the next
    /// prepare phase.
    ///
    /// Using the pointers is `unsafe` for the caller: only on the base's thread, and never while a
    /// reference to the same buffer from this API (or from a callback's arguments) is alive. The
    /// module docs of `base` describe the model.
    pub fn buffer_ptrs(
        self,
        base: &mut EventBase,
    ) -> Result<(NonNull<Evbuffer>, NonNull<Evbuffer>)> {
        bev::watch_buffers(base, self)?;
        let b = cx(base).st.get(self)?;
        Ok((b.input.as_ptr(), b.output.as_ptr()))
    }

    /// Pushes data through now. For a socket: writes what the kernel takes (`Normal`/`Flush`).
    /// `Finished` on a socket shuts down its writing side once the output is written; on a pair it
    /// gives the partner EOF; on a filter it also flushes the filter's state. Returns whether data
    /// moved.
    pub fn flush(self, base: &mut EventBase, what: What, mode: FlushMode) -> Result<bool> {
        let mut cx = cx(base);
        cx.st.get(self)?;
        kind::flush(&mut cx, self, what, mode)
    }

    // ---- sockets ----

    /// Connects the socket to `addr` (creating a socket if there is none). The event callback gets
    /// CONNECTED, or ERROR (e.g. connection refused; see [`error`](Self::error)).
    pub fn connect(self, base: &mut EventBase, addr: std::net::SocketAddr) -> Result<()> {
        // A TLS socket form connects its hidden socket; the handshake follows.
        let target = get(base, self)?.kind.hidden_socket().unwrap_or(self);
        socket::connect(&mut cx(base), target, addr)
    }

    /// Replaces the socket (libevent's `bufferevent_setfd`). The old socket is closed with
    /// CLOSE_ON_FREE, and otherwise handed back.
    pub fn set_fd(self, base: &mut EventBase, fd: Option<OwnedFd>) -> Result<Option<OwnedFd>> {
        let target = get(base, self)?.kind.hidden_socket().unwrap_or(self);
        socket::set_fd(&mut cx(base), target, fd)
    }

    /// The socket's fd (for a filter, its underlying bufferevent's). An error for a bufferevent
    /// without a socket.
    pub fn fd(self, base: &EventBase) -> Result<RawFd> {
        let b = get(base, self)?;
        if let Some(fd) = b.kind.fd() {
            return Ok(fd);
        }
        match b.kind.underlying() {
            Some(u) => u.fd(base),
            None => Err(Error::InvalidArgument("the bufferevent has no socket")),
        }
    }

    /// The last error reported with ERROR.
    pub fn error(self, base: &EventBase) -> Option<io::Error> {
        get(base, self)
            .ok()?
            .errno
            .map(io::Error::from_raw_os_error)
    }

    /// Sets the priority of the bufferevent's events and deferred callbacks.
    pub fn set_priority(self, base: &mut EventBase, pri: usize) -> Result<()> {
        if pri >= base.priorities() {
            return Err(Error::InvalidArgument("priority out of range"));
        }
        let mut cx = cx(base);
        bev::set_work_priority(&mut cx, self, pri)?;
        for ev in cx.st.get(self)?.kind.events() {
            cx.core.set_priority(ev, pri)?;
        }
        if let Some(hidden) = cx.st.get(self)?.kind.hidden_socket() {
            return hidden.set_priority(base, pri);
        }
        Ok(())
    }

    /// Limits this bufferevent's reading and writing to `cfg`'s rates; `None` lifts the limit.
    pub fn set_rate_limit(self, base: &mut EventBase, cfg: Option<RateLimit>) -> Result<()> {
        ratelimit::set(&mut cx(base), self, cfg)
    }

    /// The other end of a pair (`None` once it is freed, or for other kinds).
    pub fn partner(self, base: &EventBase) -> Result<Option<BufferEvent>> {
        Ok(get(base, self)?.kind.partner())
    }

    /// The bufferevent under a filter or a TLS filter form (`None` for other kinds, and for the
    /// socket a TLS socket form keeps to itself).
    pub fn underlying(self, base: &EventBase) -> Result<Option<BufferEvent>> {
        Ok(get(base, self)?.kind.visible_underlying())
    }

    /// Frees the bufferevent. A socket's pending output gets one last non-blocking write attempt;
    /// with CLOSE_ON_FREE the socket is then closed, and without it the socket is handed back
    /// (libevent leaves such a socket open for its owner; here the owner gets it). A pair's partner
    /// sees EOF, and a filter on top of this one sees EOF (both from the loop). No callback of this
    /// bufferevent runs afterwards, and the handle becomes stale.
    pub fn free(self, base: &mut EventBase) -> Result<Option<OwnedFd>> {
        free(&mut cx(base), self)
    }
}

/// Frees `h`: an API call, so what it triggers on other bufferevents is deferred.
fn free(cx: &mut Cx, h: BufferEvent) -> Result<Option<OwnedFd>> {
    let b = bev::unlink(cx, h)?;
    if let Some(up) = b.upper {
        bev::defer(cx, up, Cb::Event(BevFlags::EOF | BevFlags::READING));
    }
    Ok(kind::destruct(cx, b))
}

fn get(base: &EventBase, h: BufferEvent) -> Result<&Bev> {
    match bev::store(base) {
        Some(st) => st.get(h),
        None => Err(Error::Stale(crate::error::Handle::BufferEvent)),
    }
}
