//! revent-dns's server port: revent's own resolver against it, and raw UDP and TCP clients
//! (std sockets on other threads) sending hostile bytes.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use revent::EventBase;
use revent_dns::{
    DnsError, Outcome, Question, Rcode, RecordData, Records, ResolvConf, Resolver, Section,
    ServerError, ServerOptions, ServerPort, ServerRequest,
};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

/// A generous bound on any one test's loop or blocking read: reaching it means something hung.
const WATCHDOG: Duration = Duration::from_secs(30);

/// What the zone saw: (question name as received, type, over TCP).
type Log = Rc<RefCell<Vec<(String, u16, bool)>>>;

/// The test zone, as a port callback. Names are matched without regard to case (the resolver
/// sends them in a random 0x20 case) and answered under the name as received.
fn zone(log: Log) -> impl FnMut(&mut EventBase, ServerRequest) + 'static {
    move |base, req| {
        let qs = req.questions().unwrap();
        let q = &qs[0];
        log.borrow_mut()
            .push((q.name.clone(), q.qtype, req.is_tcp().unwrap()));
        let lower = q.name.to_ascii_lowercase();
        let rcode = match (lower.as_str(), q.qtype) {
            ("www.example.com", Question::A) => {
                req.add_a(
                    &q.name,
                    &[[192, 0, 2, 1].into(), [192, 0, 2, 2].into()],
                    300,
                )
                .unwrap();
                Rcode::NOERROR
            }
            ("www.example.com", Question::AAAA) => {
                req.add_aaaa(&q.name, &["2001:db8::1".parse().unwrap()], 300)
                    .unwrap();
                Rcode::NOERROR
            }
            ("1.2.0.192.in-addr.arpa", Question::PTR) => {
                req.add_ptr(&q.name, "host.example.com", 300).unwrap();
                Rcode::NOERROR
            }
            (n, Question::PTR) if n.ends_with("ip6.arpa") => {
                let expect = revent_dns_reverse("2001:db8::1".parse().unwrap());
                if n == expect {
                    req.add_ptr(&q.name, "host6.example.com", 300).unwrap();
                    Rcode::NOERROR
                } else {
                    Rcode::NXDOMAIN
                }
            }
            ("alias.example.com", _) => {
                req.add_cname(&q.name, "mid.example.com", 300).unwrap();
                req.add_cname("mid.example.com", "target.example.com", 300)
                    .unwrap();
                req.add_a("target.example.com", &[[192, 0, 2, 9].into()], 300)
                    .unwrap();
                Rcode::NOERROR
            }
            ("txt.example.com", Question::TXT) => {
                req.add_txt(&q.name, &[b"hello", b"world"], 300).unwrap();
                Rcode::NOERROR
            }
            ("big.example.com", Question::A) => {
                let addrs: Vec<Ipv4Addr> = (0..60).map(|i| [10, 0, 0, i].into()).collect();
                req.add_a(&q.name, &addrs, 300).unwrap();
                Rcode::NOERROR
            }
            // The name exists, with no records of other types.
            ("txt.example.com", _) => Rcode::NOERROR,
            ("servfail.example.com", _) => Rcode::SERVFAIL,
            ("refused.example.com", _) => Rcode::REFUSED,
            ("late.example.com", Question::A) => {
                // Answered from a timer, after the callback has returned.
                let name = q.name.clone();
                let t = base.new_timer(move |base, fired| {
                    req.add_a(&name, &[[192, 0, 2, 50].into()], 60).unwrap();
                    req.respond(base, Rcode::NOERROR).unwrap();
                    base.free(fired.id).unwrap();
                });
                base.add(t, Some(Duration::from_millis(50))).unwrap();
                return;
            }
            ("drop.example.com", _) => {
                req.drop_request(base).unwrap();
                assert_eq!(req.drop_request(base), Err(ServerError::Stale));
                return;
            }
            _ => Rcode::NXDOMAIN,
        };
        req.respond(base, rcode).unwrap();
    }
}

fn revent_dns_reverse(ip: Ipv6Addr) -> String {
    let mut s = String::new();
    for b in ip.octets().iter().rev() {
        s.push_str(&format!("{:x}.{:x}.", b & 15, b >> 4));
    }
    s.push_str("ip6.arpa");
    s
}

fn port(base: &mut EventBase, opts: ServerOptions) -> (ServerPort, Log) {
    let log: Log = Rc::default();
    let port = ServerPort::bind(
        base,
        "127.0.0.1:0".parse().unwrap(),
        opts,
        zone(log.clone()),
    )
    .unwrap();
    (port, log)
}

type Results = Rc<RefCell<Vec<(&'static str, Outcome)>>>;

fn collect(results: &Results, tag: &'static str) -> impl FnOnce(&mut EventBase, Outcome) {
    let results = results.clone();
    move |_, r| results.borrow_mut().push((tag, r))
}

/// Runs the loop until `done`, within the watchdog.
fn run_until(base: &mut EventBase, done: impl Fn() -> bool) {
    let watchdog = base.new_timer(|base, _| base.loopbreak());
    base.add(watchdog, Some(WATCHDOG)).unwrap();
    while !done() && !base.got_break() {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert!(!base.got_break(), "the watchdog fired: something hung");
    base.free(watchdog).unwrap();
}

#[test]
fn revent_resolver_against_revent_server() {
    let mut base = EventBase::new().unwrap();
    let (port, log) = port(&mut base, ServerOptions::default());
    let conf = ResolvConf::new()
        .with_nameserver(port.udp_addr().unwrap())
        .with_timeout(Duration::from_secs(5));
    let resolver = Resolver::new(conf);
    let results: Results = Rc::default();
    let b = &mut base;
    resolver.resolve_ipv4(b, "www.example.com", collect(&results, "a"));
    resolver.resolve_ipv6(b, "www.example.com", collect(&results, "aaaa"));
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    resolver.resolve_reverse(b, v4, collect(&results, "ptr4"));
    resolver.resolve_reverse(b, v6, collect(&results, "ptr6"));
    resolver.resolve_ipv4(b, "alias.example.com", collect(&results, "cname"));
    resolver.resolve_ipv4(b, "missing.example.com", collect(&results, "nx"));
    resolver.resolve_ipv4(b, "servfail.example.com", collect(&results, "servfail"));
    resolver.resolve_ipv4(b, "refused.example.com", collect(&results, "refused"));
    resolver.resolve_ipv4(b, "big.example.com", collect(&results, "big"));
    resolver.resolve_ipv4(b, "late.example.com", collect(&results, "late"));
    resolver.resolve_ipv6(b, "txt.example.com", collect(&results, "nodata"));
    run_until(&mut base, || resolver.pending() == 0);
    assert_eq!(port.pending(), 0, "every request was answered");

    let mut r = results.borrow_mut();
    r.sort_by_key(|(tag, _)| *tag);
    let get = |tag: &str| r.iter().find(|(t, _)| *t == tag).unwrap().1.clone();
    assert_eq!(
        get("a").unwrap().records,
        Records::Ipv4(vec![[192, 0, 2, 1].into(), [192, 0, 2, 2].into()])
    );
    assert_eq!(get("a").unwrap().ttl, 300);
    assert_eq!(
        get("aaaa").unwrap().records,
        Records::Ipv6(vec!["2001:db8::1".parse().unwrap()])
    );
    assert_eq!(get("ptr4").unwrap().names(), ["host.example.com"]);
    assert_eq!(get("ptr6").unwrap().names(), ["host6.example.com"]);
    assert_eq!(
        get("cname").unwrap().records,
        Records::Ipv4(vec![[192, 0, 2, 9].into()]),
        "the CNAME chain alias -> mid -> target is followed"
    );
    assert_eq!(get("nx"), Err(DnsError::NotExist));
    assert_eq!(get("servfail"), Err(DnsError::ServerFailed));
    assert_eq!(get("refused"), Err(DnsError::Refused));
    assert_eq!(get("nodata"), Err(DnsError::NoData));
    let big = get("big").unwrap();
    let want: Vec<Ipv4Addr> = (0..60).map(|i| [10, 0, 0, i].into()).collect();
    assert_eq!(
        big.records,
        Records::Ipv4(want),
        "the whole answer, over TCP"
    );
    assert_eq!(
        get("late").unwrap().records,
        Records::Ipv4(vec![[192, 0, 2, 50].into()])
    );
    assert_eq!(r.len(), 11);

    // The big answer was asked over UDP (truncated) and then over TCP; nothing else used TCP.
    let log = log.borrow();
    let big: Vec<bool> = log
        .iter()
        .filter(|(n, _, _)| n.eq_ignore_ascii_case("big.example.com"))
        .map(|(_, _, tcp)| *tcp)
        .collect();
    assert_eq!(big, [false, true]);
    assert_eq!(log.iter().filter(|(_, _, tcp)| *tcp).count(), 1);
    // The names arrived in the resolver's 0x20 case, and the answers echoed it (or the
    // resolver would have ignored them).
    assert!(log.iter().any(|(n, _, _)| n != &n.to_ascii_lowercase()));
    port.close(&mut base);
    base.dispatch().unwrap();
}

#[test]
fn a_dropped_request_times_out_at_the_resolver() {
    let mut base = EventBase::new().unwrap();
    let (port, log) = port(&mut base, ServerOptions::default());
    let conf = ResolvConf::new()
        .with_nameserver(port.udp_addr().unwrap())
        .with_timeout(Duration::from_millis(200))
        .with_attempts(2);
    let resolver = Resolver::new(conf);
    let results: Results = Rc::default();
    resolver.resolve_ipv4(&mut base, "drop.example.com", collect(&results, "drop"));
    run_until(&mut base, || resolver.pending() == 0);
    assert_eq!(results.borrow()[0].1, Err(DnsError::Timeout));
    assert_eq!(log.borrow().len(), 2, "asked twice, dropped twice");
    assert_eq!(port.pending(), 0);
    port.close(&mut base);
}

#[test]
fn stale_handles_are_errors() {
    let mut base = EventBase::new().unwrap();
    let kept: Rc<RefCell<Vec<ServerRequest>>> = Rc::default();
    let k = kept.clone();
    let port = ServerPort::bind(
        &mut base,
        "127.0.0.1:0".parse().unwrap(),
        ServerOptions::default(),
        move |_, req| k.borrow_mut().push(req),
    )
    .unwrap();
    let resolver = Resolver::new(
        ResolvConf::new()
            .with_nameserver(port.udp_addr().unwrap())
            .with_timeout(Duration::from_secs(5)),
    );
    let results: Results = Rc::default();
    resolver.resolve_ipv4(&mut base, "one.example", collect(&results, "one"));
    resolver.resolve_ipv4(&mut base, "two.example", collect(&results, "two"));
    run_until(&mut base, || kept.borrow().len() == 2);
    let (one, two) = (kept.borrow()[0].clone(), kept.borrow()[1].clone());
    assert_eq!(port.pending(), 2);
    assert!(one.is_live());
    assert_eq!(one.questions().unwrap()[0].qtype, Question::A);
    assert_eq!(one.questions().unwrap()[0].qclass, Question::IN);
    assert!(one.peer_addr().unwrap().ip().is_loopback());
    assert!(!one.is_tcp().unwrap());
    assert_eq!(one.query_flags().unwrap() & 0x0100, 0x0100, "RD as sent");
    assert_eq!(
        one.add_a("bad..name", &[], 1),
        Err(ServerError::InvalidName)
    );
    assert_eq!(
        one.add_record(
            Section::Answer,
            "x.example",
            Question::A,
            1,
            1,
            RecordData::Raw(vec![1, 2, 3])
        ),
        Err(ServerError::InvalidRecord),
        "an A record is 4 bytes"
    );
    assert_eq!(
        one.add_txt("x.example", &[&[b'x'; 256]], 1),
        Err(ServerError::InvalidRecord)
    );
    // At most 4,096 records an answer: what fits is kept, the rest is an error.
    let many = vec![Ipv4Addr::new(10, 0, 0, 1); 5000];
    assert_eq!(
        two.add_a("two.example", &many, 1),
        Err(ServerError::TooManyRecords)
    );
    assert_eq!(
        two.add_aaaa("two.example", &["::1".parse().unwrap()], 1),
        Err(ServerError::TooManyRecords),
        "the first call filled the answer"
    );
    assert_eq!(two.add_a("two.example", &[], 1), Ok(()), "nothing to add");
    one.respond(&mut base, Rcode::NXDOMAIN).unwrap();
    // Every call on the answered request, through either clone, is now an error.
    let again = one.clone();
    assert!(!again.is_live());
    assert_eq!(
        again.respond(&mut base, Rcode::NOERROR),
        Err(ServerError::Stale)
    );
    assert_eq!(again.drop_request(&mut base), Err(ServerError::Stale));
    assert_eq!(again.questions(), Err(ServerError::Stale));
    assert_eq!(again.add_a("x.example", &[], 1), Err(ServerError::Stale));
    assert_eq!(again.set_flags(0x400), Err(ServerError::Stale));
    assert_eq!(port.pending(), 1);
    // A new request reuses the freed slot; the old handle still does not reach it.
    resolver.resolve_ipv4(&mut base, "three.example", collect(&results, "three"));
    run_until(&mut base, || kept.borrow().len() == 3);
    let three = kept.borrow()[2].clone();
    assert_eq!(again.questions(), Err(ServerError::Stale));
    assert!(three.questions().unwrap()[0]
        .name
        .eq_ignore_ascii_case("three.example"));
    // Raw record data, valid for its type, in the answer section.
    three
        .add_record(
            Section::Answer,
            &three.questions().unwrap()[0].name,
            Question::A,
            Question::IN,
            30,
            RecordData::Raw(vec![198, 51, 100, 7]),
        )
        .unwrap();
    three.respond(&mut base, Rcode::NOERROR).unwrap();
    run_until(&mut base, || results.borrow().len() == 2);
    // Closing the port makes the pending request stale; its client gets nothing.
    port.close(&mut base);
    assert!(port.is_closed());
    assert_eq!(
        two.respond(&mut base, Rcode::NOERROR),
        Err(ServerError::Stale)
    );
    resolver.shutdown(&mut base, false);
    let r = results.borrow();
    assert_eq!(r[0], ("one", Err(DnsError::NotExist)));
    assert_eq!(r[1].0, "three");
    assert_eq!(
        r[1].1.as_ref().unwrap().records,
        Records::Ipv4(vec![[198, 51, 100, 7].into()])
    );
}

/// Runs the zone on this thread's loop while `client` runs on another thread with the port's
/// address; returns what the client returns.
fn with_server<R: Send + 'static>(
    opts: ServerOptions,
    client: impl FnOnce(SocketAddr) -> R + Send + 'static,
) -> (R, ServerPort) {
    let mut base = EventBase::new().unwrap();
    let (port, _log) = port(&mut base, opts);
    let addr = port.udp_addr().unwrap();
    let remote = base.remote().unwrap();
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| client(addr)));
        remote.loopbreak().unwrap();
        r
    });
    let watchdog = base.new_timer(|base, _| base.loopexit(None).unwrap());
    base.add(watchdog, Some(WATCHDOG)).unwrap();
    base.dispatch().unwrap();
    assert!(!base.got_exit(), "the watchdog fired: the client hung");
    let r = match t.join().unwrap() {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    };
    port.close(&mut base);
    (r, port)
}

fn query_bytes(id: u16, name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(p) = edns {
        let mut e = Edns::new();
        e.set_max_payload(p);
        m.edns = Some(e);
    }
    m.to_vec().unwrap()
}

fn udp_client(server: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(server).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Message {
    let mut buf = [0u8; 65536];
    let n = s.recv(&mut buf).expect("an answer before the watchdog");
    Message::from_vec(&buf[..n]).expect("the answer decodes")
}

#[test]
fn hostile_datagrams_are_dropped_or_formerr() {
    let (seen, port) = with_server(ServerOptions::default(), |addr| {
        let s = udp_client(addr);
        let mut seen = Vec::new();
        // Each hostile datagram, then a good query: the next datagram back is either the
        // hostile one's error answer or, if it was dropped, the good one's answer (UDP on
        // loopback keeps order and the port handles datagrams in order).
        let good = query_bytes(0x7777, "www.example.com.", RecordType::A, None);
        let header = |id: u16, flags: u16, qd: u16| {
            let mut h = Vec::new();
            for v in [id, flags, qd, 0, 0, 0] {
                h.extend_from_slice(&v.to_be_bytes());
            }
            h
        };
        let mut loop_ptr = header(0x1001, 0x0100, 1);
        loop_ptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let mut qd_lie = header(0x1002, 0x0100, 5);
        qd_lie.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1]);
        let mut response = good.clone();
        response[0..2].copy_from_slice(&0x1003u16.to_be_bytes());
        response[2] |= 0x80;
        let mut status = good.clone();
        status[0..2].copy_from_slice(&0x1004u16.to_be_bytes());
        status[2] = (status[2] & !0x78) | (2 << 3);
        let mut oversized = header(0x1005, 0x0100, 1);
        oversized.extend_from_slice(&[0x3f; 8000]);
        let mut long_label = header(0x1006, 0x0100, 1);
        long_label.push(64);
        long_label.extend_from_slice(&[b'a'; 64]);
        long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
        let mut no_question = header(0x1007, 0x0100, 0);
        no_question.truncate(12);
        // Noise whose header says: a query (QR 0, opcode 0), id 138, QDCOUNT 0x32bc.
        let mut noise: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
        noise[2] = 0x01;
        noise[3] = 0;
        let hostile: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("short", vec![0x12, 0x34, 0x01]),
            ("loop", loop_ptr),
            ("qdcount lie", qd_lie),
            ("a response", response),
            ("opcode STATUS", status),
            ("oversized", oversized),
            ("label over 63", long_label),
            ("no question", no_question),
            ("random", noise),
        ];
        for (what, bytes) in hostile {
            s.send(&bytes).unwrap();
            s.send(&good).unwrap();
            let first = recv(&s);
            let code = first.metadata.response_code;
            if first.metadata.id == 0x7777 {
                seen.push((what, None));
            } else {
                // Then the good query's answer.
                assert_eq!(recv(&s).metadata.id, 0x7777, "{what}");
                assert_eq!(first.metadata.message_type, MessageType::Response);
                assert!(first.answers.is_empty());
                seen.push((what, Some((first.metadata.id, code))));
            }
        }
        seen
    });
    assert_eq!(port.pending(), 0);
    let expect: Vec<(&str, Option<(u16, ResponseCode)>)> = vec![
        ("empty", None),
        ("short", None),
        ("loop", Some((0x1001, ResponseCode::FormErr))),
        ("qdcount lie", Some((0x1002, ResponseCode::FormErr))),
        ("a response", None),
        ("opcode STATUS", Some((0x1004, ResponseCode::NotImp))),
        ("oversized", Some((0x1005, ResponseCode::FormErr))),
        ("label over 63", Some((0x1006, ResponseCode::FormErr))),
        ("no question", Some((0x1007, ResponseCode::FormErr))),
        ("random", Some((138, ResponseCode::FormErr))),
    ];
    assert_eq!(seen, expect);
}

#[test]
fn udp_truncation_follows_the_clients_edns_size() {
    let ((plain, edns, small_edns), _) = with_server(ServerOptions::default(), |addr| {
        let s = udp_client(addr);
        s.send(&query_bytes(1, "big.example.com.", RecordType::A, None))
            .unwrap();
        let plain = recv(&s);
        s.send(&query_bytes(
            2,
            "big.example.com.",
            RecordType::A,
            Some(1232),
        ))
        .unwrap();
        let edns = recv(&s);
        s.send(&query_bytes(
            3,
            "big.example.com.",
            RecordType::A,
            Some(100),
        ))
        .unwrap();
        (plain, edns, recv(&s))
    });
    // 60 A records do not fit in 512 bytes: the question alone, TC set.
    assert!(plain.metadata.truncation);
    assert!(plain.answers.is_empty());
    assert_eq!(plain.queries[0].name().to_ascii(), "big.example.com.");
    assert!(plain.edns.is_none());
    // They fit in the 1232 the client offers.
    assert!(!edns.metadata.truncation);
    assert_eq!(edns.answers.len(), 60);
    assert_eq!(edns.edns.as_ref().unwrap().max_payload(), 4096);
    // A client offering less than 512 still gets 512 (and here TC).
    assert!(small_edns.metadata.truncation);
}

fn tcp_client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WATCHDOG)).unwrap();
    s
}

fn framed(q: &[u8]) -> Vec<u8> {
    let mut v = (q.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(q);
    v
}

fn read_framed(s: &mut TcpStream) -> Option<Message> {
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).is_err() {
        return None;
    }
    let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m).expect("a whole message");
    Some(Message::from_vec(&m).expect("the answer decodes"))
}

/// Reads until the server closes the connection; false if the watchdog ran out first.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn tcp_several_queries_on_one_connection() {
    let (answers, port) = with_server(ServerOptions::default(), |addr| {
        let mut s = tcp_client(addr);
        // Two queries in one write, the second one's answer too big for UDP.
        let mut both = framed(&query_bytes(11, "www.example.com.", RecordType::A, None));
        both.extend(framed(&query_bytes(
            12,
            "big.example.com.",
            RecordType::A,
            None,
        )));
        s.write_all(&both).unwrap();
        let a = read_framed(&mut s).unwrap();
        let b = read_framed(&mut s).unwrap();
        // A third, sent a byte at a time.
        for byte in framed(&query_bytes(13, "txt.example.com.", RecordType::TXT, None)) {
            s.write_all(&[byte]).unwrap();
            s.flush().unwrap();
        }
        let c = read_framed(&mut s).unwrap();
        // Garbage in a well-formed frame: FORMERR on the same connection, which stays open.
        let mut junk = vec![0x44, 0x44, 0x01, 0x00, 0, 9, 0, 0, 0, 0, 0, 0];
        junk.extend_from_slice(&[3, b'a', b'b']);
        s.write_all(&framed(&junk)).unwrap();
        let d = read_framed(&mut s).unwrap();
        // Half-close: the answer still comes, then the server closes.
        s.write_all(&framed(&query_bytes(
            14,
            "nope.example.",
            RecordType::A,
            None,
        )))
        .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let e = read_framed(&mut s).unwrap();
        assert!(closed_by_server(&mut s));
        vec![a, b, c, d, e]
    });
    let ids: Vec<u16> = answers.iter().map(|m| m.metadata.id).collect();
    assert_eq!(ids, [11, 12, 13, 0x4444, 14]);
    assert_eq!(answers[0].answers.len(), 2);
    assert_eq!(answers[1].answers.len(), 60, "not truncated over TCP");
    assert!(!answers[1].metadata.truncation);
    match &answers[2].answers[0].data {
        RData::TXT(t) => {
            let strings: Vec<&[u8]> = t.txt_data.iter().map(|s| &s[..]).collect();
            assert_eq!(strings, [&b"hello"[..], &b"world"[..]]);
        }
        other => panic!("a TXT record: {other:?}"),
    }
    assert_eq!(answers[3].metadata.response_code, ResponseCode::FormErr);
    assert_eq!(answers[4].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(port.tcp_clients(), 0);
}

#[test]
fn tcp_half_a_length_prefix_then_silence_is_closed_when_idle() {
    let opts = ServerOptions {
        tcp_idle_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let (closed, port) = with_server(opts, |addr| {
        let mut s = tcp_client(addr);
        s.write_all(&[0x00]).unwrap();
        closed_by_server(&mut s)
    });
    assert!(closed, "the idle timeout closed the connection");
    assert_eq!(port.tcp_clients(), 0);
}

#[test]
fn tcp_zero_length_frame_and_client_limit() {
    let opts = ServerOptions {
        tcp_max_clients: 1,
        ..ServerOptions::default()
    };
    let (r, _) = with_server(opts, |addr| {
        let mut first = tcp_client(addr);
        first
            .write_all(&framed(&query_bytes(
                21,
                "www.example.com.",
                RecordType::A,
                None,
            )))
            .unwrap();
        let a = read_framed(&mut first).unwrap().metadata.id;
        // The first is open and answered, so a second is one too many: closed at once.
        let mut second = tcp_client(addr);
        let second_closed = closed_by_server(&mut second);
        // A zero length prefix closes the first.
        first.write_all(&[0, 0]).unwrap();
        let first_closed = closed_by_server(&mut first);
        (a, second_closed, first_closed)
    });
    assert_eq!(r, (21, true, true));
}

#[test]
fn tcp_pipeline_limit_pauses_reading_without_losing_queries() {
    let opts = ServerOptions {
        tcp_max_pipeline: 2,
        ..ServerOptions::default()
    };
    let (ids, port) = with_server(opts, |addr| {
        let mut s = tcp_client(addr);
        // Ten late answers (each from a timer): at most two wait at once, the rest stay in
        // the buffer until those are answered.
        let mut all = Vec::new();
        for id in 0..10u16 {
            all.extend(framed(&query_bytes(
                100 + id,
                "late.example.com.",
                RecordType::A,
                None,
            )));
        }
        s.write_all(&all).unwrap();
        let mut ids: Vec<u16> = (0..10)
            .map(|_| read_framed(&mut s).unwrap().metadata.id)
            .collect();
        ids.sort();
        ids
    });
    assert_eq!(ids, (100..110).collect::<Vec<u16>>());
    assert_eq!(port.pending(), 0);
}

#[test]
fn a_port_over_its_pending_limit_refuses() {
    let mut base = EventBase::new().unwrap();
    let kept: Rc<RefCell<Vec<ServerRequest>>> = Rc::default();
    let k = kept.clone();
    let opts = ServerOptions {
        max_pending: 1,
        ..ServerOptions::default()
    };
    let port = ServerPort::bind(
        &mut base,
        "127.0.0.1:0".parse().unwrap(),
        opts,
        move |_, r| k.borrow_mut().push(r),
    )
    .unwrap();
    let resolver = Resolver::new(
        ResolvConf::new()
            .with_nameserver(port.udp_addr().unwrap())
            .with_timeout(Duration::from_secs(5)),
    );
    let results: Results = Rc::default();
    resolver.resolve_ipv4(&mut base, "held.example", collect(&results, "held"));
    run_until(&mut base, || kept.borrow().len() == 1);
    resolver.resolve_ipv4(&mut base, "other.example", collect(&results, "other"));
    run_until(&mut base, || results.borrow().len() == 1);
    assert_eq!(results.borrow()[0], ("other", Err(DnsError::Refused)));
    assert_eq!(kept.borrow().len(), 1, "the callback never saw it");
    kept.borrow()[0]
        .respond(&mut base, Rcode::NXDOMAIN)
        .unwrap();
    run_until(&mut base, || results.borrow().len() == 2);
    assert_eq!(results.borrow()[1], ("held", Err(DnsError::NotExist)));
    port.close(&mut base);
}

#[test]
fn closing_the_port_from_its_callback() {
    let mut base = EventBase::new().unwrap();
    let slot: Rc<RefCell<Option<ServerPort>>> = Rc::default();
    let s = slot.clone();
    let port = ServerPort::bind(
        &mut base,
        "127.0.0.1:0".parse().unwrap(),
        ServerOptions::default(),
        move |base, req| {
            req.respond(base, Rcode::NXDOMAIN).unwrap();
            s.borrow().as_ref().unwrap().close(base);
        },
    )
    .unwrap();
    *slot.borrow_mut() = Some(port.clone());
    let addr = port.udp_addr().unwrap();
    let resolver = Resolver::new(
        ResolvConf::new()
            .with_nameserver(addr)
            .with_timeout(Duration::from_secs(5)),
    );
    let results: Results = Rc::default();
    resolver.resolve_ipv4(&mut base, "x.example", collect(&results, "x"));
    run_until(&mut base, || resolver.pending() == 0);
    assert_eq!(results.borrow()[0].1, Err(DnsError::NotExist));
    assert!(port.is_closed());
    // Its socket is closed: the address can be bound again.
    UdpSocket::bind(addr).unwrap();
    // The callback (which held a handle to the port) is gone, so nothing keeps a cycle.
    slot.borrow_mut().take();
    base.dispatch().unwrap();
}
