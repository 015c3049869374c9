//! TLS bufferevents: a TLS session between this bufferevent's plaintext buffers and an underlying
//! bufferevent that carries the ciphertext (libevent's `bufferevent_openssl`, both forms in one
//! mechanism). The socket form makes a hidden socket bufferevent underneath that it owns and frees;
//! the filter form runs over a bufferevent the caller made (a socket, a pair, another filter).
//!
//! The kind drives a [`TlsSession`] (rustls in `tls_rustls.rs`, OpenSSL in the C ABI): ciphertext
//! from the underlying input is fed in, decrypted plaintext goes to this input, this output is
//! encrypted into the underlying output. As a filter does, it takes over the underlying
//! bufferevent's callbacks. Memory stays bounded: ciphertext is fed only while this input is below
//! its high watermark (the underlying reads only then), and plaintext is encrypted only while the
//! underlying output is below a bound.

use super::bev::{self, read_done, report, run_queued, write_done, Bev, Cb, Cx, SUSPEND_RATE};
use super::kind::Kind;
use super::{ratelimit, BevFlags, BevOptions, BufferEvent, FlushMode};
use crate::base::EventBase;
use crate::error::{Error, Result};
use crate::event::What;
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::os::fd::OwnedFd;

/// A TLS error: a number and a readable message.
///
/// The number is the TLS library's: for rustls sessions the TLS alert involved (the alert sent, or
/// 256 plus the alert received), for OpenSSL sessions `ERR_get_error()`'s code. 0 means the error did
/// not come from the TLS library (e.g. the peer closed the connection without `close_notify`).
///
/// ```
/// use revent::TlsError;
/// let e = TlsError::new(42, "bad certificate");
/// assert_eq!((e.code(), e.message()), (42, "bad certificate"));
/// assert_eq!(e.to_string(), "bad certificate (TLS error 42)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    code: u64,
    message: String,
}

impl TlsError {
    /// An error with a library-specific `code` and a readable `message`.
    pub fn new(code: u64, message: impl Into<String>) -> TlsError {
        TlsError {
            code,
            message: message.into(),
        }
    }

    /// The TLS library's code (see the type's docs).
    pub fn code(&self) -> u64 {
        self.code
    }

    /// What went wrong, readable.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (TLS error {})", self.message, self.code)
    }
}

impl std::error::Error for TlsError {}

/// Where a TLS session starts (libevent's `BUFFEREVENT_SSL_CONNECTING`, `_ACCEPTING`, `_OPEN`).
///
/// ```
/// use revent::TlsState;
/// assert_ne!(TlsState::Connecting, TlsState::Accepting);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TlsState {
    /// A client: the handshake runs, then CONNECTED is reported.
    Connecting,
    /// A server: the handshake runs, then CONNECTED is reported.
    Accepting,
    /// The handshake already happened: data flows at once and no CONNECTED is reported.
    Open,
}

/// A TLS state machine that a TLS bufferevent drives, fed and drained with bytes: ciphertext in with
/// [`read_tls`](Self::read_tls), [`process`](Self::process), plaintext out with
/// [`read_plaintext`](Self::read_plaintext); plaintext in with
/// [`write_plaintext`](Self::write_plaintext), ciphertext out with [`write_tls`](Self::write_tls).
///
/// rustls implements it with `rustls::Connection` (`RustlsSession`, feature `tls`); the C ABI with an
/// OpenSSL `SSL *` over memory BIOs (`BIO_write`/`SSL_do_handshake`/`SSL_read`/`SSL_write`/
/// `BIO_read`/`BIO_ctrl_pending`). The bufferevent calls [`write_plaintext`](Self::write_plaintext)
/// only once the handshake is done, never feeds an empty slice, and after a fatal error calls
/// nothing but [`wants_write`](Self::wants_write)/[`write_tls`](Self::write_tls) (to send the alert).
///
/// A session in memory, to show the calls (a real one encrypts):
///
/// ```
/// use revent::{TlsError, TlsSession};
/// use std::any::Any;
///
/// /// "TLS" that sends plaintext as is: no handshake, close_notify is an empty marker byte.
/// #[derive(Default)]
/// struct Clear {
///     inbox: Vec<u8>,
///     outbox: Vec<u8>,
///     closed: bool,
/// }
///
/// impl TlsSession for Clear {
///     fn read_tls(&mut self, data: &[u8]) -> usize {
///         self.inbox.extend_from_slice(data);
///         data.len()
///     }
///     fn process(&mut self) -> Result<(), TlsError> {
///         Ok(())
///     }
///     fn read_plaintext(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
///         let n = buf.len().min(self.inbox.len());
///         buf[..n].copy_from_slice(&self.inbox[..n]);
///         self.inbox.drain(..n);
///         Ok(n)
///     }
///     fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
///         self.outbox.extend_from_slice(data);
///         Ok(data.len())
///     }
///     fn wants_write(&self) -> bool {
///         !self.outbox.is_empty()
///     }
///     fn write_tls(&mut self, out: &mut [u8]) -> usize {
///         let n = out.len().min(self.outbox.len());
///         out[..n].copy_from_slice(&self.outbox[..n]);
///         self.outbox.drain(..n);
///         n
///     }
///     fn is_handshaking(&self) -> bool {
///         false
///     }
///     fn send_close_notify(&mut self) {}
///     fn received_close_notify(&self) -> bool {
///         self.closed
///     }
///     fn as_any_mut(&mut self) -> &mut dyn Any {
///         self
///     }
/// }
///
/// use revent::{BevOptions, BufferEvent, EventBase, TlsState, What};
/// let mut base = EventBase::new().unwrap();
/// let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// let s = Box::new(Clear::default());
/// let t = BufferEvent::tls_filter_with_session(&mut base, a, s, TlsState::Open, BevOptions::CLOSE_ON_FREE)
///     .unwrap();
/// t.write(&mut base, b"hi").unwrap();
/// b.set_read_cb(&mut base, |base, b| {
///     assert_eq!(b.input(base).unwrap().pullup_all().unwrap(), b"hi");
///     base.loopbreak();
/// })
/// .unwrap();
/// b.enable(&mut base, What::READ).unwrap();
/// base.dispatch().unwrap();
/// let clear: &mut Clear = t.tls_session(&mut base).unwrap().as_any_mut().downcast_mut().unwrap();
/// assert!(clear.outbox.is_empty());
/// ```
pub trait TlsSession {
    /// Feeds ciphertext received from the peer; returns how many bytes were taken. It may take less,
    /// or nothing, while it holds enough that is not processed or read yet: the rest is offered again
    /// after [`read_plaintext`](Self::read_plaintext) drained it.
    fn read_tls(&mut self, data: &[u8]) -> usize;

    /// Processes what was fed: advances the handshake, decrypts records. An error is fatal.
    fn process(&mut self) -> std::result::Result<(), TlsError>;

    /// Copies decrypted plaintext into `buf`; 0 when none is ready (or the peer closed). An error is
    /// fatal.
    fn read_plaintext(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TlsError>;

    /// Takes plaintext to encrypt; returns how much it took (0: none now, try after
    /// [`write_tls`](Self::write_tls) drained its ciphertext). Called only after the handshake.
    fn write_plaintext(&mut self, data: &[u8]) -> std::result::Result<usize, TlsError>;

    /// Whether ciphertext is waiting for [`write_tls`](Self::write_tls).
    fn wants_write(&self) -> bool;

    /// Moves waiting ciphertext into `out`; returns how many bytes.
    fn write_tls(&mut self, out: &mut [u8]) -> usize;

    /// Whether the handshake is still running.
    fn is_handshaking(&self) -> bool;

    /// Queues a `close_notify` alert (sent through [`write_tls`](Self::write_tls)).
    fn send_close_notify(&mut self);

    /// Whether the peer sent `close_notify`.
    fn received_close_notify(&self) -> bool;

    /// The protocol ALPN chose, once the handshake has done so.
    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        None
    }

    /// The server name (SNI) the client asked for: on a server, what the client sent; on a client,
    /// what it sends.
    fn server_name(&self) -> Option<String> {
        None
    }

    /// The session itself, for downcasting to its concrete type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The most ciphertext one encryption step queues on the underlying output when the underlying
/// bufferevent has no write high watermark of its own.
const OUT_BOUND: usize = 256 * 1024;
/// The hidden socket's write low watermark: refill before its output runs dry.
const HIDDEN_WRITE_LOW: usize = 64 * 1024;
/// Plaintext moved per step (one reservation in the input, one chunk of the output).
const STEP: usize = 64 * 1024;
/// Ciphertext taken from the session per `write_tls` call.
const TLS_CHUNK: usize = 32 * 1024;

pub(crate) struct Tls {
    pub(crate) underlying: BufferEvent,
    /// The socket form: the underlying bufferevent is ours, unseen by the user.
    pub(crate) hidden: bool,
    session: Box<dyn TlsSession>,
    /// CONNECTED is still to be reported (the session started connecting or accepting).
    handshake_pending: bool,
    allow_dirty: bool,
    /// Errors not yet taken (libevent's `bufferevent_get_openssl_error` queue).
    errors: VecDeque<TlsError>,
    last_error: Option<TlsError>,
    /// A fatal error was reported: no more TLS processing.
    failed: bool,
    /// The underlying bufferevent reported EOF; decided once its input is consumed.
    under_eof: bool,
    eof_reported: bool,
    close_sent: bool,
    /// `flush(Finished)`: close_notify once the output is encrypted, then finish the underlying.
    finish_pending: bool,
}

impl Tls {
    pub(crate) fn session_mut(&mut self) -> &mut dyn TlsSession {
        &mut *self.session
    }

    fn push_error(&mut self, e: TlsError) {
        // Bounded: a C program that never takes them does not grow the queue without end.
        if self.errors.len() >= 16 {
            self.errors.pop_front();
        }
        self.errors.push_back(e.clone());
        self.last_error = Some(e);
    }

    /// Moves the session's ciphertext into `out` (alerts, close_notify, records).
    fn drain_tls(&mut self, out: &mut crate::Evbuffer) -> bool {
        let mut moved = false;
        while self.session.wants_write() {
            let s = &mut self.session;
            let n = out.add_with(TLS_CHUNK, |buf| s.write_tls(buf)).unwrap_or(0);
            if n == 0 {
                break;
            }
            moved = true;
        }
        moved
    }

    /// On free: the last plaintext and a close_notify go into the underlying output (a socket
    /// underneath gets one last write attempt when it is freed), then the underlying bufferevent is
    /// released: always in the socket form, with CLOSE_ON_FREE in the filter form. Returns the
    /// socket of the socket form when the bufferevent does not own it.
    pub(crate) fn destruct(mut self, cx: &mut Cx, b: &mut Bev) -> Option<OwnedFd> {
        let u = self.underlying;
        if let Ok(under) = cx.st.get_mut(u) {
            if !self.failed && !self.session.is_handshaking() {
                let out = b.output.get_mut();
                while !out.is_empty() {
                    let chunk = out
                        .peek(STEP)
                        .ok()
                        .and_then(|mut p| p.next())
                        .unwrap_or(&[]);
                    let n = self.session.write_plaintext(chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    let _ = out.drain(n);
                    self.drain_tls(under.output.get_mut());
                }
                if !self.close_sent {
                    self.close_sent = true;
                    self.session.send_close_notify();
                }
            }
            self.drain_tls(under.output.get_mut());
            under.upper = None;
            cx.st.mark_dirty(u);
            let _ = bev::set_callbacks(cx, u, Some(None), Some(None), Some(None));
        }
        if self.hidden || b.options.contains(BevOptions::CLOSE_ON_FREE) {
            let fd = super::free(cx, u).ok().flatten();
            return if self.hidden { fd } else { None };
        }
        None
    }
}

/// Makes a TLS bufferevent over `underlying` (a fresh hidden socket bufferevent when `hidden`).
pub(crate) fn create(
    cx: &mut Cx,
    underlying: BufferEvent,
    hidden: bool,
    session: Box<dyn TlsSession>,
    state: TlsState,
    options: BevOptions,
) -> Result<BufferEvent> {
    if cx.st.get(underlying)?.upper.is_some() {
        return Err(Error::InvalidArgument(
            "bufferevent already has a filter on it",
        ));
    }
    let tls = Tls {
        underlying,
        hidden,
        session,
        handshake_pending: state != TlsState::Open,
        allow_dirty: false,
        errors: VecDeque::new(),
        last_error: None,
        failed: false,
        under_eof: false,
        eof_reported: false,
        close_sent: false,
        finish_pending: false,
    };
    let h = cx.st.insert(Bev::new(Kind::Tls(Box::new(tls)), options));
    let under = cx.st.get_mut(underlying)?;
    under.upper = Some(h);
    under.enabled |= What::READ | What::WRITE;
    if hidden {
        under.write_low = HIDDEN_WRITE_LOW;
    }
    cx.st.mark_dirty(underlying);
    // The handshake starts in the next prepare phase (a client's hello goes out then).
    cx.st.mark_dirty(h);
    let r = bev::set_callbacks(
        cx,
        underlying,
        Some(Some(Box::new(move |base, _| on_underlying(base, h, pump)))),
        Some(Some(Box::new(move |base, _| on_underlying(base, h, pump)))),
        Some(Some(Box::new(move |base, u, flags| {
            on_underlying(base, h, |cx, h| under_event(cx, h, u, flags))
        }))),
    );
    if let Err(e) = r {
        let _ = super::free(cx, h);
        return Err(e);
    }
    Ok(h)
}

/// A callback of the underlying bufferevent: the TLS bookkeeping, then this one's own callbacks.
fn on_underlying(base: &mut EventBase, h: BufferEvent, f: impl FnOnce(&mut Cx, BufferEvent)) {
    f(&mut bev::cx(base), h);
    run_queued(base);
}

fn tls_mut(b: &mut Bev) -> Option<&mut Tls> {
    match &mut b.kind {
        Kind::Tls(t) => Some(t),
        _ => None,
    }
}

fn tls_of<'a>(cx: &'a mut Cx<'_>, h: BufferEvent) -> Result<&'a mut Tls> {
    tls_in(cx.st, h)
}

fn tls_in(st: &mut bev::Store, h: BufferEvent) -> Result<&mut Tls> {
    tls_mut(st.get_mut(h)?).ok_or(Error::Unsupported("not a TLS bufferevent"))
}

/// What one step of [`step`] did, reported once the borrows are released.
#[derive(Default)]
struct Step {
    progress: bool,
    read: usize,
    written: usize,
    connected: bool,
    error: Option<BevFlags>,
    eof: bool,
    rate_suspended: bool,
    finish_under: bool,
}

/// Moves bytes as far as they go: ciphertext in, plaintext up, plaintext down, ciphertext out;
/// reports CONNECTED, reads, writes, EOF and errors.
pub(crate) fn pump(cx: &mut Cx, h: BufferEvent) {
    // Bounded, so that one bufferevent cannot hold the loop; what is left goes on in the next
    // prepare phase.
    let mut rounds = 0;
    loop {
        rounds += 1;
        if rounds > 256 {
            cx.st.mark_dirty(h);
            break;
        }
        let s = step(cx, h, false);
        if s.read > 0 {
            read_done(cx, h, s.read);
        }
        if s.written > 0 {
            write_done(cx, h, s.written);
        }
        if s.rate_suspended {
            ratelimit::suspended(cx, h);
        }
        if s.connected {
            bev::run_cb(cx, h, Cb::Event(BevFlags::CONNECTED));
        }
        if let Some(flags) = s.error {
            report(cx, h, flags, None);
        } else if s.eof {
            report(cx, h, BevFlags::EOF | BevFlags::READING, None);
        }
        if s.finish_under {
            if let Ok(u) = tls_of(cx, h).map(|t| t.underlying) {
                let _ = super::kind::flush(cx, u, What::WRITE, FlushMode::Finished);
            }
        }
        if !s.progress || s.error.is_some() {
            break;
        }
    }
    mirror(cx, h);
}

/// One round of [`pump`]. `force`: encrypt all output regardless of the underlying's bound (flush).
fn step(cx: &mut Cx, h: BufferEvent, force: bool) -> Step {
    let mut s = Step::default();
    if cx.st.get(h).is_ok_and(|b| b.rate.is_some()) {
        ratelimit::refresh(cx, h);
    }
    let st = &mut *cx.st;
    let Some(u) = st.get(h).ok().and_then(|b| match &b.kind {
        Kind::Tls(t) => Some(t.underlying),
        _ => None,
    }) else {
        return s;
    };
    let Some((me, under)) = st.get2_mut(h, u) else {
        return s;
    };
    let wants_read = me.wants_read();
    let read_budget = me.read_budget();
    let write_enabled = me.enabled.contains(What::WRITE) && me.write_suspended == 0;
    let write_budget = me.write_budget();
    let read_high = me.read_high;
    let Bev {
        input,
        output,
        kind,
        read_suspended,
        write_suspended,
        ..
    } = me;
    let Kind::Tls(t) = kind else { return s };
    if t.failed {
        return s;
    }
    let mut under_touched = false;

    // 1. Ciphertext in, while the handshake runs or plaintext is wanted.
    let handshaking = t.session.is_handshaking();
    if (handshaking || (wants_read && read_budget > 0)) && !under.input.get().is_empty() {
        let n = {
            let uin = under.input.get();
            let chunk = uin.peek(usize::MAX).ok().and_then(|mut p| p.next());
            chunk.map_or(0, |c| t.session.read_tls(c))
        };
        if n > 0 {
            let _ = under.input().drain(n);
            under_touched = true;
            s.progress = true;
            if let Err(e) = t.session.process() {
                fail(t, under, &mut s, e, BevFlags::READING);
                return s;
            }
        }
    }
    if t.handshake_pending && !t.session.is_handshaking() {
        t.handshake_pending = false;
        s.connected = true;
        s.progress = true;
    }

    // 2. Plaintext up, to the high watermark and the rate limit.
    if !t.session.is_handshaking() && wants_read && !t.eof_reported {
        let mut budget = read_budget;
        if budget == 0 && (read_high == 0 || input.get().len() < read_high) {
            // Out of read tokens (not at the watermark): sleep until they refill.
            *read_suspended |= SUSPEND_RATE;
            s.rate_suspended = true;
        }
        while budget > 0 {
            let want = budget.min(STEP);
            let mut err = None;
            let session = &mut t.session;
            let n = input
                .get_mut()
                // `add_with` may offer more room than asked: the budget is what counts.
                .add_with(want, |buf| match session.read_plaintext(&mut buf[..want]) {
                    Ok(n) => n,
                    Err(e) => {
                        err = Some(e);
                        0
                    }
                })
                .unwrap_or(0);
            if let Some(e) = err {
                s.read += n;
                fail(t, under, &mut s, e, BevFlags::READING);
                return s;
            }
            if n == 0 {
                break;
            }
            s.read += n;
            budget -= n;
            s.progress = true;
        }
        if budget > 0 && t.session.received_close_notify() {
            // Everything before the close_notify is in the input.
            t.eof_reported = true;
            s.eof = true;
        }
    }

    // 3. Plaintext down, while the underlying output is below its bound.
    if !t.session.is_handshaking() && !t.close_sent && write_enabled {
        let bound = if under.write_high > 0 {
            under.write_high
        } else {
            OUT_BOUND
        };
        let mut room = if force {
            usize::MAX
        } else {
            bound.saturating_sub(under.output.get().len())
        };
        room = room.min(write_budget);
        if write_budget == 0 && !output.get().is_empty() {
            *write_suspended |= SUSPEND_RATE;
            s.rate_suspended = true;
        }
        let out = output.get_mut();
        while room > 0 && !out.is_empty() {
            let want = room.min(STEP);
            let chunk = out
                .peek(want)
                .ok()
                .and_then(|mut p| p.next())
                .unwrap_or(&[]);
            let n = match t.session.write_plaintext(chunk) {
                Ok(n) => n,
                Err(e) => {
                    fail(t, under, &mut s, e, BevFlags::WRITING);
                    return s;
                }
            };
            let _ = out.drain(n);
            s.written += n;
            room = room.saturating_sub(n);
            // Ciphertext out as it is made, so that the session's own buffer stays small.
            under_touched |= t.drain_tls(under.output.get_mut());
            if n == 0 {
                break;
            }
            s.progress = true;
        }
        if t.finish_pending && out.is_empty() {
            t.finish_pending = false;
            t.close_sent = true;
            t.session.send_close_notify();
            s.finish_under = true;
        }
    }

    // 4. Ciphertext out: handshake messages, records, alerts.
    under_touched |= t.drain_tls(under.output.get_mut());

    // 5. The peer's EOF, once all its ciphertext is consumed.
    // (Ciphertext still waiting while the user is not reading waits with it, as a plain
    // socket's EOF waits behind unread data.)
    if t.under_eof && !t.eof_reported && under.input.get().is_empty() {
        t.eof_reported = true;
        if t.session.is_handshaking() {
            t.push_error(TlsError::new(
                0,
                "the connection closed during the TLS handshake",
            ));
            s.error = Some(BevFlags::ERROR | BevFlags::READING);
        } else if t.session.received_close_notify() || t.allow_dirty {
            s.eof = true;
        } else {
            t.push_error(TlsError::new(
                0,
                "the peer closed the connection without close_notify",
            ));
            s.error = Some(BevFlags::ERROR | BevFlags::READING);
        }
    }
    if under_touched {
        st.mark_dirty(u);
    }
    s
}

/// A fatal TLS error: recorded, its alert queued for the peer, no more processing.
fn fail(t: &mut Tls, under: &mut Bev, s: &mut Step, e: TlsError, dir: BevFlags) {
    t.failed = true;
    t.push_error(e);
    t.drain_tls(under.output.get_mut());
    s.error = Some(BevFlags::ERROR | dir);
}

/// The underlying bufferevent reads only while this one wants input (or the handshake runs), so
/// that its read timeout means what it means on a plain socket, and ciphertext does not pile up
/// while the user is not reading.
fn mirror(cx: &mut Cx, h: BufferEvent) {
    let st = &mut *cx.st;
    let Ok(b) = st.get(h) else { return };
    let wants_read = b.wants_read();
    let Kind::Tls(t) = &b.kind else { return };
    let u = t.underlying;
    let read = !t.failed && !t.eof_reported && (t.session.is_handshaking() || wants_read);
    let Ok(under) = st.get_mut(u) else { return };
    if under.enabled.contains(What::READ) != read {
        under.enabled.set(What::READ, read);
        st.mark_dirty(u);
        if !read {
            super::kind::disable(cx, u);
        }
    }
}

/// An event of the underlying bufferevent.
fn under_event(cx: &mut Cx, h: BufferEvent, u: BufferEvent, flags: BevFlags) {
    if flags.contains(BevFlags::CONNECTED) {
        // The socket connected: the handshake's first flight is already queued on it. Without a
        // handshake the user hears of the connection now.
        let Ok(t) = tls_of(cx, h) else { return };
        if !t.handshake_pending {
            bev::run_cb(cx, h, Cb::Event(BevFlags::CONNECTED));
        }
        pump(cx, h);
        return;
    }
    if flags.contains(BevFlags::EOF) {
        if let Ok(t) = tls_of(cx, h) {
            t.under_eof = true;
        }
        // Whatever ciphertext came before the EOF (a close_notify, perhaps) is processed first.
        pump(cx, h);
        return;
    }
    // Errors and timeouts pass up as they are, with the socket's errno.
    let errno = cx.st.get(u).ok().and_then(|b| b.errno);
    if flags.contains(BevFlags::ERROR) {
        if let Ok(t) = tls_of(cx, h) {
            t.failed = true;
        }
    }
    report(cx, h, flags, errno);
    mirror(cx, h);
}

/// The bufferevent was touched (written to, drained, enabled): move what can move.
pub(crate) fn sync(cx: &mut Cx, h: BufferEvent) {
    pump(cx, h);
}

/// Reading or writing was disabled: the underlying stops reading at once.
pub(crate) fn disable(cx: &mut Cx, h: BufferEvent) {
    mirror(cx, h);
}

/// The timeouts apply to the underlying bufferevent's I/O; its TIMEOUT events pass up.
pub(crate) fn adj_timeouts(cx: &mut Cx, h: BufferEvent) {
    let Ok(b) = cx.st.get(h) else { return };
    let (r, w) = (b.timeout_read, b.timeout_write);
    let Some(u) = b.kind.underlying() else { return };
    if let Ok(under) = cx.st.get_mut(u) {
        under.timeout_read = r;
        under.timeout_write = w;
        super::kind::adj_timeouts(cx, u);
    }
}

/// An API call: callbacks it triggers are deferred.
pub(crate) fn flush(cx: &mut Cx, h: BufferEvent, what: What, mode: FlushMode) -> Result<bool> {
    let u = tls_of(cx, h)?.underlying;
    bev::deferring(cx, |cx| {
        let before = cx
            .st
            .get(h)
            .map(|b| (b.input.get().len(), b.output.get().len()))?;
        if what.contains(What::WRITE) && mode == FlushMode::Finished {
            tls_of(cx, h)?.finish_pending = true;
        }
        if mode != FlushMode::Normal && what.contains(What::WRITE) {
            let s = step(cx, h, true);
            if s.written > 0 {
                write_done(cx, h, s.written);
            }
            if let Some(flags) = s.error {
                report(cx, h, flags, None);
            }
            if s.finish_under {
                let _ = super::kind::flush(cx, u, What::WRITE, FlushMode::Finished);
            }
        }
        pump(cx, h);
        let mut moved = false;
        if what.contains(What::WRITE) && cx.st.get(u).is_ok() {
            // The underlying one finishes only after the close_notify (`finish_under`), which may
            // wait for the handshake and the output.
            let m = if mode == FlushMode::Finished {
                FlushMode::Flush
            } else {
                mode
            };
            moved |= super::kind::flush(cx, u, What::WRITE, m)?;
        }
        let after = cx
            .st
            .get(h)
            .map(|b| (b.input.get().len(), b.output.get().len()))?;
        Ok(moved || after.0 != before.0 || after.1 != before.1)
    })
}

/// The TLS bufferevent's own settings, for the public methods.
pub(crate) fn set_allow_dirty(cx: &mut Cx, h: BufferEvent, allow: bool) -> Result<()> {
    tls_of(cx, h)?.allow_dirty = allow;
    Ok(())
}

pub(crate) fn allow_dirty(t: &Tls) -> bool {
    t.allow_dirty
}

pub(crate) fn last_error(t: &Tls) -> Option<TlsError> {
    t.last_error.clone()
}

pub(crate) fn take_error(cx: &mut Cx, h: BufferEvent) -> Result<Option<TlsError>> {
    Ok(tls_of(cx, h)?.errors.pop_front())
}

impl BufferEvent {
    /// A TLS bufferevent on a socket, driving `session` (libevent's `bufferevent_openssl_socket_new`).
    /// The socket is carried by a socket bufferevent the TLS one keeps to itself; `None` makes one
    /// without a socket yet, for [`connect`](Self::connect) (the handshake follows the connect).
    /// [`fd`](Self::fd), [`set_fd`](Self::set_fd) and [`connect`](Self::connect) reach that socket.
    /// With CLOSE_ON_FREE the socket is closed when this one is freed; without,
    /// [`free`](Self::free) hands it back. `state` says whether the session connects (client),
    /// accepts (server) or is already open.
    ///
    /// ```
    /// # use revent::{BevOptions, BufferEvent, EventBase, TlsError, TlsSession, TlsState};
    /// # use std::any::Any;
    /// # struct Null;
    /// # impl TlsSession for Null {
    /// #     fn read_tls(&mut self, d: &[u8]) -> usize { d.len() }
    /// #     fn process(&mut self) -> Result<(), TlsError> { Ok(()) }
    /// #     fn read_plaintext(&mut self, _: &mut [u8]) -> Result<usize, TlsError> { Ok(0) }
    /// #     fn write_plaintext(&mut self, d: &[u8]) -> Result<usize, TlsError> { Ok(d.len()) }
    /// #     fn wants_write(&self) -> bool { false }
    /// #     fn write_tls(&mut self, _: &mut [u8]) -> usize { 0 }
    /// #     fn is_handshaking(&self) -> bool { false }
    /// #     fn send_close_notify(&mut self) {}
    /// #     fn received_close_notify(&self) -> bool { false }
    /// #     fn as_any_mut(&mut self) -> &mut dyn Any { self }
    /// # }
    /// let mut base = EventBase::new().unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let t = BufferEvent::tls_socket_with_session(
    ///     &mut base, Some(a.into()), Box::new(Null), TlsState::Open, BevOptions::CLOSE_ON_FREE,
    /// )
    /// .unwrap();
    /// assert!(t.fd(&base).is_ok());
    /// assert!(t.underlying(&base).unwrap().is_none());
    /// t.free(&mut base).unwrap();
    /// ```
    pub fn tls_socket_with_session(
        base: &mut EventBase,
        fd: Option<OwnedFd>,
        session: Box<dyn TlsSession>,
        state: TlsState,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        // The hidden socket follows the TLS bufferevent's ownership of the fd; its callbacks are
        // the TLS bufferevent's bookkeeping, run inline (the TLS one defers its own if asked).
        let inner = options & BevOptions::CLOSE_ON_FREE;
        let under = BufferEvent::socket(base, fd, inner)?;
        match create(&mut bev::cx(base), under, true, session, state, options) {
            Ok(h) => Ok(h),
            Err(e) => {
                // Hand nothing back: a failed constructor drops the socket it was given.
                let _ = under.free(base);
                Err(e)
            }
        }
    }

    /// A TLS bufferevent over another bufferevent, driving `session` (libevent's
    /// `bufferevent_openssl_filter_new`). It takes over `underlying`'s callbacks and enables it; its
    /// read and write timeouts become `underlying`'s. With CLOSE_ON_FREE, freeing this one frees
    /// `underlying`. See [`TlsSession`] for an example.
    pub fn tls_filter_with_session(
        base: &mut EventBase,
        underlying: BufferEvent,
        session: Box<dyn TlsSession>,
        state: TlsState,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        create(
            &mut bev::cx(base),
            underlying,
            false,
            session,
            state,
            options,
        )
    }

    /// The TLS session of a TLS bufferevent (downcast it with
    /// [`as_any_mut`](TlsSession::as_any_mut)). An error for other kinds.
    pub fn tls_session(self, base: &mut EventBase) -> Result<&mut dyn TlsSession> {
        Ok(tls_in(bev::cx(base).st, self)?.session_mut())
    }

    /// The last TLS error reported with ERROR (it stays readable; see
    /// [`tls_take_error`](Self::tls_take_error)). `None` for other kinds or before any.
    pub fn tls_error(self, base: &EventBase) -> Option<TlsError> {
        match &super::get(base, self).ok()?.kind {
            Kind::Tls(t) => last_error(t),
            _ => None,
        }
    }

    /// Takes the oldest TLS error not taken yet (libevent's `bufferevent_get_openssl_error`: each
    /// error once, oldest first; the last 16 are kept).
    pub fn tls_take_error(self, base: &mut EventBase) -> Result<Option<TlsError>> {
        take_error(&mut bev::cx(base), self)
    }

    /// Whether an EOF from the peer without `close_notify` is a plain EOF (`true`) or an ERROR
    /// (`false`, the default: a truncation attack looks like such an EOF).
    pub fn set_tls_allow_dirty_shutdown(self, base: &mut EventBase, allow: bool) -> Result<()> {
        set_allow_dirty(&mut bev::cx(base), self, allow)
    }

    /// See [`set_tls_allow_dirty_shutdown`](Self::set_tls_allow_dirty_shutdown).
    pub fn tls_allow_dirty_shutdown(self, base: &EventBase) -> Result<bool> {
        match &super::get(base, self)?.kind {
            Kind::Tls(t) => Ok(allow_dirty(t)),
            _ => Err(Error::Unsupported("not a TLS bufferevent")),
        }
    }
}
