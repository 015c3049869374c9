//! `revent resolve` end to end: the real binary against a scripted UDP server on 127.0.0.1.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::UdpSocket;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Answers A for names starting "ok", PTR for any reverse name, NXDOMAIN for names starting
/// "nx", NODATA for everything else; stops on drop.
struct Server {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn server() -> Server {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !s.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(question) = q.queries.first() else {
                continue;
            };
            let name = question.name().clone();
            let lower = name.to_ascii().to_ascii_lowercase();
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.queries = q.queries.clone();
            match question.query_type() {
                RecordType::A if lower.starts_with("ok") => {
                    r.add_answer(Record::from_rdata(
                        name,
                        60,
                        RData::A(A([192, 0, 2, 4].into())),
                    ));
                }
                RecordType::PTR => {
                    let target = Name::from_ascii("ptr.example.").unwrap();
                    r.add_answer(Record::from_rdata(name, 60, RData::PTR(PTR(target))));
                }
                _ if lower.starts_with("nx") => r.metadata.response_code = ResponseCode::NXDomain,
                _ => {}
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from);
        }
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

#[test]
fn resolves_names_and_addresses_in_order() {
    let s = server();
    let out = Command::new(env!("CARGO_BIN_EXE_revent"))
        .args(["resolve", "--server", &s.addr.to_string(), "--timeout", "5"])
        .args([
            "ok.example.",
            "nx.example.",
            "192.0.2.4",
            "2001:db8::4",
            "ok2.example.",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "ok.example.: 192.0.2.4\n\
         nx.example.: error NXDOMAIN (name does not exist)\n\
         192.0.2.4: ptr.example\n\
         2001:db8::4: ptr.example\n\
         ok2.example.: 192.0.2.4\n"
    );
    assert_eq!(out.status.code(), Some(1), "one lookup failed");

    let out = Command::new(env!("CARGO_BIN_EXE_revent"))
        .args([
            "resolve",
            "--server",
            &s.addr.to_string(),
            "-4",
            "ok.example.",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok.example.: 192.0.2.4\n"
    );
    assert!(out.status.success());
}

#[test]
fn a_server_that_never_answers_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_revent"))
        .args([
            "resolve",
            "--server",
            &silent.local_addr().unwrap().to_string(),
        ])
        .args(["--timeout", "0.2", "--attempts", "2", "x.example."])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "x.example.: error TIMEOUT (request timed out)\n"
    );
    assert_eq!(out.status.code(), Some(1));
}
