//! The rustls implementation of [`TlsSession`] and the TLS bufferevent constructors that take a
//! rustls connection (feature `tls`).

use super::tls::{TlsError, TlsSession, TlsState};
use super::{BevOptions, BufferEvent};
use crate::base::EventBase;
use crate::error::Result;
use rustls::{AlertDescription, CertificateError, Connection};
use std::any::Any;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

/// A rustls connection (client or server) as a [`TlsSession`].
///
/// [`BufferEvent::tls_socket`] and [`BufferEvent::tls_filter`] make one; reach it again through
/// [`BufferEvent::tls_session`] and downcast it to read what rustls negotiated:
///
/// ```
/// use revent::{BevOptions, BufferEvent, EventBase, RustlsSession};
/// use std::sync::Arc;
///
/// let mut roots = rustls::RootCertStore::empty();
/// # let _ = &mut roots;
/// let provider = Arc::new(rustls::crypto::ring::default_provider());
/// let mut config = rustls::ClientConfig::builder_with_provider(provider)
///     .with_safe_default_protocol_versions()
///     .unwrap()
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// config.alpn_protocols = vec![b"h2".to_vec()];
/// let name = "example.test".try_into().unwrap();
/// let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
///
/// let mut base = EventBase::new().unwrap();
/// let (a, _b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
/// let t = BufferEvent::tls_filter(&mut base, a, conn, BevOptions::CLOSE_ON_FREE).unwrap();
/// let session = t.tls_session(&mut base).unwrap();
/// assert!(session.is_handshaking());
/// let rustls: &mut RustlsSession = session.as_any_mut().downcast_mut().unwrap();
/// assert!(rustls.connection().is_handshaking());
/// t.free(&mut base).unwrap();
/// ```
pub struct RustlsSession {
    conn: Connection,
    peer_closed: bool,
}

impl RustlsSession {
    /// Wraps a rustls client or server connection.
    pub fn new(conn: impl Into<Connection>) -> RustlsSession {
        RustlsSession {
            conn: conn.into(),
            peer_closed: false,
        }
    }

    /// The rustls connection: negotiated protocol version, cipher suite, ALPN, peer certificates,
    /// SNI, resumption.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The rustls connection, mutably (to export keying material, for one).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Whether the session was made as a client or a server.
    fn state(&self) -> TlsState {
        if !self.conn.is_handshaking() {
            return TlsState::Open;
        }
        match &self.conn {
            Connection::Client(_) => TlsState::Connecting,
            Connection::Server(_) => TlsState::Accepting,
        }
    }
}

/// The TLS alert that goes with a rustls error (what rustls sends for it, or 256 plus what the peer
/// sent), as [`TlsError::code`].
fn code_of(e: &rustls::Error) -> u64 {
    use rustls::Error as E;
    let alert = |a: AlertDescription| u64::from(u8::from(a));
    match e {
        E::AlertReceived(a) => 256 + alert(*a),
        E::InvalidCertificate(c) => alert(match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                AlertDescription::CertificateExpired
            }
            CertificateError::UnknownIssuer => AlertDescription::UnknownCA,
            CertificateError::Revoked => AlertDescription::CertificateRevoked,
            _ => AlertDescription::BadCertificate,
        }),
        E::DecryptError => alert(AlertDescription::DecryptError),
        E::InvalidMessage(_) => alert(AlertDescription::DecodeError),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            alert(AlertDescription::UnexpectedMessage)
        }
        E::NoApplicationProtocol => alert(AlertDescription::NoApplicationProtocol),
        E::PeerIncompatible(_) | E::PeerMisbehaved(_) => alert(AlertDescription::HandshakeFailure),
        _ => alert(AlertDescription::InternalError),
    }
}

fn tls_error(e: &rustls::Error) -> TlsError {
    TlsError::new(code_of(e), e.to_string())
}

impl TlsSession for RustlsSession {
    fn read_tls(&mut self, data: &[u8]) -> usize {
        // An error here means rustls holds enough already (its plaintext buffer is full): take
        // nothing, and be offered the bytes again once the plaintext is read.
        self.conn.read_tls(&mut &data[..]).unwrap_or(0)
    }

    fn process(&mut self) -> std::result::Result<(), TlsError> {
        let state = self.conn.process_new_packets().map_err(|e| tls_error(&e))?;
        self.peer_closed |= state.peer_has_closed();
        Ok(())
    }

    fn read_plaintext(&mut self, buf: &mut [u8]) -> std::result::Result<usize, TlsError> {
        match self.conn.reader().read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(TlsError::new(0, e.to_string())),
        }
    }

    fn write_plaintext(&mut self, data: &[u8]) -> std::result::Result<usize, TlsError> {
        self.conn
            .writer()
            .write(data)
            .map_err(|e| TlsError::new(0, e.to_string()))
    }

    fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    fn write_tls(&mut self, out: &mut [u8]) -> usize {
        self.conn.write_tls(&mut &mut out[..]).unwrap_or(0)
    }

    fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    fn received_close_notify(&self) -> bool {
        self.peer_closed
    }

    fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    fn server_name(&self) -> Option<String> {
        match &self.conn {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            // A client knows the name it connects to; rustls does not hand it back.
            Connection::Client(_) => None,
        }
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl BufferEvent {
    /// A TLS bufferevent on a socket over a rustls connection: a `rustls::ClientConnection`
    /// connects (SNI and ALPN as its config and name say), a `rustls::ServerConnection` accepts.
    /// CONNECTED is reported when the handshake completes. Everything else is as
    /// [`tls_socket_with_session`](Self::tls_socket_with_session). Feature `tls`.
    ///
    /// ```no_run
    /// use revent::{BevFlags, BevOptions, BufferEvent, EventBase, What};
    /// use std::sync::Arc;
    /// // Trust the roots you have (here none: a real client adds its CA certificates).
    /// fn config() -> Arc<rustls::ClientConfig> {
    ///     let provider = Arc::new(rustls::crypto::ring::default_provider());
    ///     let roots = rustls::RootCertStore::empty();
    ///     let config = rustls::ClientConfig::builder_with_provider(provider)
    ///         .with_safe_default_protocol_versions()
    ///         .unwrap()
    ///         .with_root_certificates(roots)
    ///         .with_no_client_auth();
    ///     Arc::new(config)
    /// }
    /// let mut base = EventBase::new().unwrap();
    /// let conn = rustls::ClientConnection::new(config(), "localhost".try_into().unwrap()).unwrap();
    /// let t = BufferEvent::tls_socket(&mut base, None, conn, BevOptions::CLOSE_ON_FREE).unwrap();
    /// t.set_event_cb(&mut base, |base, t, what| {
    ///     if what.contains(BevFlags::CONNECTED) {
    ///         t.write(base, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    ///     } else if what.contains(BevFlags::ERROR) {
    ///         eprintln!("{:?}", t.tls_error(base));
    ///     }
    /// })
    /// .unwrap();
    /// t.enable(&mut base, What::READ).unwrap();
    /// t.connect(&mut base, "127.0.0.1:8443".parse().unwrap()).unwrap();
    /// base.dispatch().unwrap();
    /// ```
    pub fn tls_socket(
        base: &mut EventBase,
        fd: Option<OwnedFd>,
        conn: impl Into<Connection>,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        let session = RustlsSession::new(conn);
        let state = session.state();
        BufferEvent::tls_socket_with_session(base, fd, Box::new(session), state, options)
    }

    /// A TLS bufferevent over another bufferevent with a rustls connection, as
    /// [`tls_filter_with_session`](Self::tls_filter_with_session). Feature `tls`. See
    /// [`RustlsSession`] for an example.
    pub fn tls_filter(
        base: &mut EventBase,
        underlying: BufferEvent,
        conn: impl Into<Connection>,
        options: BevOptions,
    ) -> Result<BufferEvent> {
        let session = RustlsSession::new(conn);
        let state = session.state();
        BufferEvent::tls_filter_with_session(base, underlying, Box::new(session), state, options)
    }
}
