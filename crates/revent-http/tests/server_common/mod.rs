//! What the server tests share: a server on its own thread and loop, and a raw TCP client.
#![allow(dead_code)]

use revent::{EventBase, Remote};
use revent_http::Server;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Generous: only a guard against a hang, never a timed assertion.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// A server running on its own thread; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    remote: Remote,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server configured by `setup` on a base of its own, bound to 127.0.0.1:0.
    pub fn start(setup: impl FnOnce(&mut EventBase, &Server) + Send + 'static) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut base = EventBase::new().unwrap();
            let server = Server::new();
            setup(&mut base, &server);
            let l = server
                .bind(&mut base, "127.0.0.1:0".parse().unwrap())
                .unwrap();
            let addr = l.local_addr(&base).unwrap();
            base.set_state(server.clone());
            tx.send((addr, base.remote().unwrap())).unwrap();
            base.dispatch().unwrap();
            server.free(&mut base);
        });
        let (addr, remote) = rx.recv().unwrap();
        TestServer {
            addr,
            remote,
            thread: Some(thread),
        }
    }

    /// Runs `f` on the server's loop and returns its result.
    pub fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut EventBase, &Server) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = mpsc::channel();
        self.remote
            .run(move |base| {
                let server = base.state::<Server>().unwrap().clone();
                let _ = tx.send(f(base, &server));
            })
            .unwrap();
        rx.recv_timeout(HANG_GUARD)
            .expect("server loop did not answer")
    }

    /// Waits (polling, with the hang guard) until `cond` holds on the server.
    pub fn wait_for(
        &self,
        what: &str,
        cond: impl Fn(&mut EventBase, &Server) -> bool + Send + Sync + Copy + 'static,
    ) {
        let start = std::time::Instant::now();
        while !self.query(move |b, s| cond(b, s)) {
            assert!(start.elapsed() < HANG_GUARD, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn connect(&self) -> Client {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s.set_write_timeout(Some(HANG_GUARD)).unwrap();
        Client {
            stream: s,
            buf: Vec::new(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.remote.loopbreak();
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.unwrap();
            }
        }
    }
}

/// A response as read off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The head exactly as received, with the Date value replaced by `DATE`.
    pub head: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill() > 0,
                "EOF after {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response (to a request that was not HEAD).
    pub fn response(&mut self) -> Response {
        self.response_to(false)
    }

    /// Reads one response; `head_request`: it answers a HEAD (no body whatever the headers say).
    pub fn response_to(&mut self, head_request: bool) -> Response {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill() > 0,
                "EOF inside a head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let raw: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8(raw).unwrap();
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        let mut head = format!("{status_line}\r\n");
        for l in lines.filter(|l| !l.is_empty()) {
            let (n, v) = l.split_once(": ").unwrap();
            headers.push((n.to_string(), v.to_string()));
            if n == "Date" {
                head.push_str("Date: DATE\r\n");
            } else {
                head.push_str(l);
                head.push_str("\r\n");
            }
        }
        head.push_str("\r\n");
        let mut r = Response {
            head,
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 || status < 200 {
            return r;
        }
        if let Some(len) = r.header("Content-Length") {
            let len: usize = len.parse().unwrap();
            r.body = self.read_exact(len);
        } else if r.header("Transfer-Encoding") == Some("chunked") {
            loop {
                let line = self.line();
                let size = usize::from_str_radix(&line, 16).unwrap();
                let data = self.read_exact(size);
                r.body.extend_from_slice(&data);
                assert_eq!(self.read_exact(2), b"\r\n");
                if size == 0 {
                    break;
                }
            }
        } else {
            r.body = self.read_to_end();
        }
        r
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let l: Vec<u8> = self.buf.drain(..i + 2).collect();
                return String::from_utf8(l[..i].to_vec()).unwrap();
            }
            assert!(self.fill() > 0, "EOF inside a line");
        }
    }

    /// Everything until the server closes (or resets) the connection.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// Asserts the server closed the connection with nothing more sent.
    pub fn expect_closed(&mut self) {
        let rest = self.read_to_end();
        assert!(
            rest.is_empty(),
            "more bytes: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request's exchange: send, read one response, expect the connection closed after it.
pub fn refused(server: &TestServer, request: &[u8]) -> Response {
    let mut c = server.connect();
    c.send(request);
    let r = c.response();
    assert_eq!(r.header("Connection"), Some("close"), "{}", r.head);
    c.expect_closed();
    r
}
