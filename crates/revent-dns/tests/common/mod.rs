//! A scripted DNS server for the tests: a UDP socket (and a TCP listener on the same port) on
//! 127.0.0.1, served by threads, answering each query with whatever datagrams the script returns.
#![allow(dead_code)]

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A query the server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub id: u16,
    /// The question's name exactly as sent (0x20 case kept), with the final dot.
    pub name: String,
    pub tcp: bool,
    /// The client's source port.
    pub port: u16,
}

/// The script: from the raw query and its decoded form, the datagrams to send back (none: drop).
pub type Script = dyn Fn(&[u8], &Message, bool) -> Vec<Vec<u8>> + Send + Sync;

pub struct FakeServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(
        script: impl Fn(&[u8], &Message, bool) -> Vec<Vec<u8>> + Send + Sync + 'static,
    ) -> FakeServer {
        let script: Arc<Script> = Arc::new(script);
        // A UDP port whose TCP twin is free too.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        udp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut threads = Vec::new();
        {
            let (script, seen, stop) = (script.clone(), seen.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(m) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    record(&seen, &m, false, from.port());
                    for d in script(&buf[..n], &m, false) {
                        let _ = udp.send_to(&d, from);
                    }
                }
            }));
        }
        {
            let (script, seen, stop) = (script, seen.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut s, from)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).is_err() {
                        continue;
                    }
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).is_err() {
                        continue;
                    }
                    let Ok(m) = Message::from_vec(&q) else {
                        continue;
                    };
                    record(&seen, &m, true, from.port());
                    if let Some(d) = script(&q, &m, true).into_iter().next() {
                        let mut framed = (d.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&d);
                        let _ = s.write_all(&framed);
                    }
                }
            }));
        }
        FakeServer {
            addr,
            seen,
            stop,
            threads,
        }
    }

    /// A server that never answers (its socket is open, so no ICMP error either).
    pub fn silent() -> FakeServer {
        FakeServer::start(|_, _, _| Vec::new())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many queries the server has seen, once it has seen at least `n` (its thread records
    /// them a moment after they are sent) or 10 s have passed.
    pub fn seen_at_least(&self, n: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let len = self.seen.lock().unwrap().len();
            if len >= n || std::time::Instant::now() >= deadline {
                return len;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn record(seen: &Mutex<Vec<Seen>>, m: &Message, tcp: bool, port: u16) {
    let name = m
        .queries
        .first()
        .map(|q| q.name().to_ascii())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        id: m.metadata.id,
        name,
        tcp,
        port,
    });
}

/// The reply skeleton for `q`: same id and question, QR set, RD copied, RA set.
pub fn reply(q: &Message) -> Message {
    let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.queries = q.queries.clone();
    r
}

pub fn qname(q: &Message) -> Name {
    q.queries[0].name().clone()
}

pub fn with_rcode(q: &Message, code: ResponseCode) -> Vec<u8> {
    let mut r = reply(q);
    r.metadata.response_code = code;
    r.to_vec().unwrap()
}

pub fn a_reply(q: &Message, addrs: &[Ipv4Addr]) -> Vec<u8> {
    let mut r = reply(q);
    for a in addrs {
        r.add_answer(Record::from_rdata(qname(q), 300, RData::A(A(*a))));
    }
    r.to_vec().unwrap()
}

pub fn aaaa_reply(q: &Message, addrs: &[Ipv6Addr]) -> Vec<u8> {
    let mut r = reply(q);
    for a in addrs {
        r.add_answer(Record::from_rdata(qname(q), 300, RData::AAAA(AAAA(*a))));
    }
    r.to_vec().unwrap()
}

pub fn ptr_reply(q: &Message, host: &str) -> Vec<u8> {
    let mut r = reply(q);
    let target = Name::from_ascii(host).unwrap();
    r.add_answer(Record::from_rdata(qname(q), 300, RData::PTR(PTR(target))));
    r.to_vec().unwrap()
}

/// The answer to the question as a raw reply built by hand around the query's own question
/// bytes, with `answer_name` (raw wire bytes) as the owner name of one A record for 6.6.6.6.
/// For names hickory would refuse to encode: compression loops, over-long names.
pub fn raw_reply_with_owner(query: &[u8], answer_name: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&query[..2]); // id
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
    r.extend_from_slice(&query[12..]); // the question, as asked
    r.extend_from_slice(answer_name);
    r.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 6, 6, 6, 6]);
    r
}
