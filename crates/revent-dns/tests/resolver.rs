//! The resolver against scripted servers on 127.0.0.1 (see `common`).

mod common;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use revent::EventBase;
use revent_dns::{Answer, DnsError, Outcome, Records, ResolvConf, Resolver};
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A generous bound on any one test's loop: reaching it means something hung.
const WATCHDOG: Duration = Duration::from_secs(30);

fn conf(servers: &[&FakeServer]) -> ResolvConf {
    servers
        .iter()
        .fold(ResolvConf::new(), |c, s| c.with_nameserver(s.addr))
}

type Results = Rc<RefCell<Vec<(String, Outcome)>>>;

/// A callback that records its outcome under `tag`.
fn collect(results: &Results, tag: &str) -> impl FnOnce(&mut EventBase, Outcome) + 'static {
    let (results, tag) = (results.clone(), tag.to_string());
    move |_, r| results.borrow_mut().push((tag, r))
}

/// Runs the loop until every request is done (the loop runs out of events), within the watchdog.
fn run(base: &mut EventBase, resolver: &Resolver) {
    let watchdog = base.new_timer(|base, _| base.loopbreak());
    base.add(watchdog, Some(WATCHDOG)).unwrap();
    while resolver.pending() > 0 && !base.got_break() {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert!(!base.got_break(), "the watchdog fired: a request hung");
    base.free(watchdog).unwrap();
}

fn answers(q: &Message, udp_tcp: bool) -> Vec<Vec<u8>> {
    let _ = udp_tcp;
    let name = q.queries[0].name().to_ascii().to_ascii_lowercase();
    match (
        q.queries[0].query_type().to_string().as_str(),
        name.as_str(),
    ) {
        ("A", "host.example.") => vec![a_reply(q, &[[192, 0, 2, 1].into(), [192, 0, 2, 2].into()])],
        ("AAAA", "host.example.") => vec![aaaa_reply(q, &["2001:db8::1".parse().unwrap()])],
        ("PTR", "1.2.0.192.in-addr.arpa.") => vec![ptr_reply(q, "host.example.")],
        ("PTR", n) if n.ends_with("ip6.arpa.") => vec![ptr_reply(q, "six.example.")],
        ("A", "empty.example.") => vec![with_rcode(q, ResponseCode::NoError)],
        _ => vec![with_rcode(q, ResponseCode::NXDomain)],
    }
}

#[test]
fn a_aaaa_and_ptr_answers() {
    let server = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&server]));
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    resolver.resolve_ipv6(&mut base, "HOST.example.", collect(&results, "aaaa"));
    resolver.resolve_reverse(&mut base, [192, 0, 2, 1].into(), collect(&results, "ptr4"));
    resolver.resolve_reverse(
        &mut base,
        "2001:db8::1".parse().unwrap(),
        collect(&results, "ptr6"),
    );
    resolver.resolve_ipv4(&mut base, "nothere.example", collect(&results, "nx"));
    resolver.resolve_ipv4(&mut base, "empty.example", collect(&results, "nodata"));
    run(&mut base, &resolver);

    let mut results = results.take();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let get = |tag: &str| results.iter().find(|r| r.0 == tag).unwrap().1.clone();
    let a = get("a").unwrap();
    assert_eq!(
        a.records,
        Records::Ipv4(vec![
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2)
        ])
    );
    assert_eq!((a.name.as_str(), a.ttl), ("host.example", 300));
    assert_eq!(
        get("aaaa").unwrap().records,
        Records::Ipv6(vec!["2001:db8::1".parse::<Ipv6Addr>().unwrap()])
    );
    assert_eq!(get("ptr4").unwrap().names(), ["host.example"]);
    assert_eq!(get("ptr6").unwrap().names(), ["six.example"]);
    assert_eq!(get("nx"), Err(DnsError::NotExist));
    assert_eq!(get("nodata"), Err(DnsError::NoData));
    assert_eq!(results.len(), 6);

    // 0x20: across these questions (about 80 letters), the case was mixed.
    let seen = server.seen();
    assert_eq!(seen.len(), 6);
    // A socket of its own per query: six source ports; and ids drawn at random (six equal
    // ones would be a broken generator; 16 random bits repeat among six draws with p < 0.0003).
    let ports: std::collections::HashSet<u16> = seen.iter().map(|s| s.port).collect();
    assert_eq!(ports.len(), 6, "{seen:?}");
    let ids: std::collections::HashSet<u16> = seen.iter().map(|s| s.id).collect();
    assert!(ids.len() >= 5, "{seen:?}");
    assert!(seen
        .iter()
        .any(|s| s.name.chars().any(|c| c.is_ascii_uppercase())));
    assert!(seen
        .iter()
        .any(|s| s.name.chars().any(|c| c.is_ascii_lowercase())));
}

#[test]
fn servfail_moves_to_the_next_server_at_once() {
    let failing = FakeServer::start(|_, q, _| vec![with_rcode(q, ResponseCode::ServFail)]);
    let refusing = FakeServer::start(|_, q, _| vec![with_rcode(q, ResponseCode::Refused)]);
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    // A timeout far beyond the watchdog: only moving on at once can pass.
    let c = conf(&[&failing, &refusing, &good]).with_timeout(Duration::from_secs(3600));
    let resolver = Resolver::new(c);
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    run(&mut base, &resolver);
    assert!(results.borrow()[0].1.is_ok());
    assert_eq!(
        (
            failing.seen().len(),
            refusing.seen().len(),
            good.seen().len()
        ),
        (1, 1, 1)
    );
    assert_eq!(resolver.servers_down(), [false, false, false]);
}

#[test]
fn servfail_everywhere_is_the_result() {
    let a = FakeServer::start(|_, q, _| vec![with_rcode(q, ResponseCode::ServFail)]);
    let b = FakeServer::start(|_, q, _| vec![with_rcode(q, ResponseCode::ServFail)]);
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&a, &b]).with_timeout(Duration::from_secs(3600)));
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    run(&mut base, &resolver);
    assert_eq!(results.borrow()[0].1, Err(DnsError::ServerFailed));
    assert_eq!((a.seen().len(), b.seen().len()), (1, 1));
}

#[test]
fn a_server_that_drops_queries_times_out_then_fails_over() {
    let silent = FakeServer::silent();
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let c = conf(&[&silent, &good])
        .with_timeout(Duration::from_millis(200))
        .with_attempts(3)
        .with_max_timeouts(1);
    let resolver = Resolver::new(c);
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "first"));
    run(&mut base, &resolver);
    assert!(results.borrow()[0].1.is_ok());
    assert_eq!((silent.seen_at_least(1), good.seen().len()), (1, 1));
    // One timeout marks it down (max_timeouts 1): the next request starts at the good server.
    assert_eq!(resolver.servers_down(), [true, false]);
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "second"));
    run(&mut base, &resolver);
    assert!(results.borrow()[1].1.is_ok());
    assert_eq!((silent.seen().len(), good.seen().len()), (1, 2));
}

#[test]
fn every_server_down_fails_at_the_deadline() {
    let a = FakeServer::silent();
    let b = FakeServer::silent();
    // Before the base: its first deadlines count from its cached time, which is older than now.
    let t0 = Instant::now();
    let mut base = EventBase::new().unwrap();
    let timeout = Duration::from_millis(150);
    let resolver = Resolver::new(conf(&[&a, &b]).with_timeout(timeout).with_attempts(3));
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    resolver.resolve_ipv6(&mut base, "host.example", collect(&results, "aaaa"));
    run(&mut base, &resolver);
    // Three attempts of one timeout each, and no more.
    assert!(t0.elapsed() >= timeout * 3 - Duration::from_millis(30));
    assert!(results
        .borrow()
        .iter()
        .all(|r| r.1 == Err(DnsError::Timeout)));
    // (The servers' threads record the last queries a moment after they are sent.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.seen().len() + b.seen().len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(a.seen().len() + b.seen().len(), 6);
    assert!(
        a.seen().len() >= 2 && b.seen().len() >= 2,
        "both servers were tried"
    );
    assert_eq!(resolver.inflight(), 0);
}

#[test]
fn a_closed_port_fails_over_without_waiting() {
    // A socket bound then closed: the port answers ICMP port unreachable.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let c = ResolvConf::new()
        .with_nameserver(closed)
        .with_nameserver(good.addr)
        .with_timeout(Duration::from_secs(3600));
    let resolver = Resolver::new(c);
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    run(&mut base, &resolver);
    assert!(results.borrow()[0].1.is_ok());
    assert_eq!(resolver.servers_down(), [true, false]);
}

#[test]
fn hostile_and_mismatched_replies_are_ignored() {
    let server = FakeServer::start(|raw, q, _| {
        let bad: Ipv4Addr = [6, 6, 6, 6].into();
        let good = a_reply(q, &[[192, 0, 2, 7].into()]);
        let mut wrong_id = Message::from_vec(&a_reply(q, &[bad])).unwrap();
        wrong_id.metadata.id = q.metadata.id.wrapping_add(1);
        let mut wrong_name = Message::from_vec(&a_reply(q, &[bad])).unwrap();
        wrong_name.queries[0].set_name("other.example.".parse().unwrap());
        let mut wrong_case = Message::from_vec(&a_reply(q, &[bad])).unwrap();
        let flipped: String = qname(q)
            .to_ascii()
            .chars()
            .map(|c| {
                if c.is_ascii_alphabetic() {
                    (c as u8 ^ 0x20) as char
                } else {
                    c
                }
            })
            .collect();
        wrong_case.queries[0].set_name(flipped.parse().unwrap());
        let mut wrong_type = Message::from_vec(&a_reply(q, &[bad])).unwrap();
        wrong_type.queries[0].set_query_type(hickory_proto::rr::RecordType::AAAA);
        let mut wrong_class = Message::from_vec(&a_reply(q, &[bad])).unwrap();
        wrong_class.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
        let mut no_qr = Message::from_vec(&a_reply(q, &[bad])).unwrap();
        no_qr.metadata.message_type = hickory_proto::op::MessageType::Query;
        // The owner name is a pointer to itself: at offset 12 + question length.
        let here = 12 + raw.len() - 12;
        let self_loop = [0xC0 | (here >> 8) as u8, here as u8];
        // Two pointers to each other.
        let ping_pong = [0xC0, (here + 2) as u8, 0xC0, here as u8];
        // Five labels of 63 bytes: 320 bytes, over the 255 limit.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63u8);
            long.extend_from_slice(&[b'x'; 63]);
        }
        long.push(0);
        // A label length with the reserved top bits 01.
        let reserved = [0x41, b'a', 0];
        let mut truncated_packet = good.clone();
        truncated_packet.truncate(good.len() - 3);
        vec![
            wrong_id.to_vec().unwrap(),
            wrong_name.to_vec().unwrap(),
            wrong_case.to_vec().unwrap(),
            wrong_type.to_vec().unwrap(),
            wrong_class.to_vec().unwrap(),
            no_qr.to_vec().unwrap(),
            raw_reply_with_owner(raw, &self_loop),
            raw_reply_with_owner(raw, &ping_pong[..2]),
            raw_reply_with_owner(raw, &long),
            raw_reply_with_owner(raw, &reserved),
            truncated_packet,
            vec![0xff; 3],
            Vec::new(),
            vec![0; 512],
            good,
        ]
    });
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&server]).with_timeout(Duration::from_secs(3600)));
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "victim.example", collect(&results, "a"));
    run(&mut base, &resolver);
    let r = results.borrow();
    assert_eq!(
        r[0].1.as_ref().unwrap().addrs(),
        [IpAddr::from([192, 0, 2, 7])]
    );
    assert_eq!(
        server.seen().len(),
        1,
        "one query: nothing made the resolver ask again"
    );
}

/// A reply behind more junk than one wake-up reads (64 datagrams) is still found, without asking
/// again, and the socket (pooled, then reused for the next request) goes on working: a socket
/// watched edge-triggered would otherwise not be woken for what its budget left unread.
#[test]
fn a_reply_behind_a_flood_of_junk_is_found() {
    let server = FakeServer::start(|_, q, _| {
        let mut junk = Message::from_vec(&a_reply(q, &[[6, 6, 6, 6].into()])).unwrap();
        junk.metadata.id = q.metadata.id.wrapping_add(1);
        let mut out = vec![junk.to_vec().unwrap(); 150];
        out.push(a_reply(q, &[[192, 0, 2, 7].into()]));
        out
    });
    let mut base = EventBase::new().unwrap();
    let mut c = conf(&[&server])
        .with_timeout(Duration::from_secs(3600))
        .with_max_inflight(1);
    // Room for the whole flood: a datagram dropped by the kernel would not test the resolver.
    assert!(c.set_option("so-rcvbuf:4194304"));
    let resolver = Resolver::new(c);
    let results: Results = Default::default();
    for tag in ["a", "b", "c"] {
        resolver.resolve_ipv4(&mut base, "flood.example", collect(&results, tag));
    }
    run(&mut base, &resolver);
    let r = results.borrow();
    assert_eq!(r.len(), 3);
    for (tag, outcome) in r.iter() {
        assert_eq!(
            outcome.as_ref().unwrap().addrs(),
            [IpAddr::from([192, 0, 2, 7])],
            "{tag}"
        );
    }
    assert_eq!(server.seen().len(), 3, "one query each: none timed out");
    let ports: std::collections::HashSet<u16> = server.seen().iter().map(|s| s.port).collect();
    assert_eq!(ports.len(), 1, "one socket served all three, flood and all");
}

#[test]
fn truncated_replies_are_retried_over_tcp() {
    let server = FakeServer::start(|_, q, tcp| {
        if tcp {
            vec![a_reply(q, &[[192, 0, 2, 9].into()])]
        } else {
            let mut r = reply(q);
            r.metadata.truncation = true;
            vec![r.to_vec().unwrap()]
        }
    });
    let mut base = EventBase::new().unwrap();
    let c = conf(&[&server]).with_timeout(Duration::from_secs(3600));
    let resolver = Resolver::new(c.clone());
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "big.example", collect(&results, "tcp"));
    run(&mut base, &resolver);
    assert_eq!(
        results.borrow()[0].1.as_ref().unwrap().addrs(),
        [IpAddr::from([192, 0, 2, 9])]
    );
    let seen: Vec<bool> = server.seen().iter().map(|s| s.tcp).collect();
    assert_eq!(seen, [false, true]);

    // With TCP turned off, truncation is the result (libevent 2.1's behaviour).
    let resolver = Resolver::new(c.with_tcp(false));
    resolver.resolve_ipv4(&mut base, "big.example", collect(&results, "notcp"));
    run(&mut base, &resolver);
    assert_eq!(results.borrow()[1].1, Err(DnsError::Truncated));
}

#[test]
fn a_tcp_server_that_hangs_up_counts_as_a_failure() {
    // TC over UDP, and TCP connections closed without a reply: the attempt fails, the next
    // server is asked.
    let broken = FakeServer::start(|_, q, tcp| {
        if tcp {
            Vec::new()
        } else {
            let mut r = reply(q);
            r.metadata.truncation = true;
            vec![r.to_vec().unwrap()]
        }
    });
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&broken, &good]).with_timeout(Duration::from_secs(3600)));
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    run(&mut base, &resolver);
    assert!(results.borrow()[0].1.is_ok());
    assert_eq!(good.seen().len(), 1);
}

#[test]
fn cancel_from_inside_another_requests_callback() {
    // Answers "host.example" and drops everything else.
    let server = FakeServer::start(|_, q, tcp| {
        if qname(q).to_ascii().eq_ignore_ascii_case("host.example.") {
            answers(q, tcp)
        } else {
            Vec::new()
        }
    });
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&server]).with_timeout(Duration::from_secs(3600)));
    let slow_ran = Rc::new(RefCell::new(false));
    let s = slow_ran.clone();
    let slow = resolver.resolve_ipv4(&mut base, "slow.example", move |_, _| {
        *s.borrow_mut() = true
    });
    let results: Results = Default::default();
    let r = results.clone();
    let resolver2 = resolver.clone();
    let slow2 = slow.clone();
    resolver.resolve_ipv4(&mut base, "host.example", move |base, outcome| {
        assert!(slow2.cancel(base), "the slow request was pending");
        // And a request made from a callback works too.
        resolver2.resolve_ipv4(base, "host.example", move |_, o| {
            r.borrow_mut().push(("again".into(), o))
        });
        assert!(outcome.is_ok());
    });
    run(&mut base, &resolver);
    assert!(
        !*slow_ran.borrow(),
        "a cancelled request's callback never runs"
    );
    assert!(!slow.cancel(&mut base), "cancelled once only");
    assert!(results.borrow()[0].1.is_ok());
    assert_eq!(base.num_events(), 0, "nothing left behind in the base");
}

#[test]
fn cancel_and_notify_reports_cancelled() {
    let server = FakeServer::silent();
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&server]));
    let results: Results = Default::default();
    let req = resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    assert!(req.cancel_and_notify(&mut base));
    assert!(
        results.borrow().is_empty(),
        "from the loop, not from inside cancel"
    );
    base.dispatch().unwrap();
    assert_eq!(results.borrow()[0].1, Err(DnsError::Cancelled));
}

#[test]
fn search_domains_follow_ndots() {
    let server = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let c = conf(&[&server])
        .with_search_domain("nothing.test")
        .with_search_domain("example")
        .with_ndots(1);
    let resolver = Resolver::new(c);
    let results: Results = Default::default();
    // No dot, fewer than ndots: the search list first, the bare name last.
    resolver.resolve_ipv4(&mut base, "host", collect(&results, "short"));
    run(&mut base, &resolver);
    let answer: Answer = results.borrow()[0].1.clone().unwrap();
    assert_eq!(answer.name, "host.example");
    let names: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.name.to_ascii_lowercase())
        .collect();
    assert_eq!(names, ["host.nothing.test.", "host.example."]);

    // One dot, at least ndots: the name as it is first, then the search list.
    server.seen.lock().unwrap().clear();
    resolver.resolve_ipv4(&mut base, "no.where", collect(&results, "dotted"));
    run(&mut base, &resolver);
    assert_eq!(results.borrow()[1].1, Err(DnsError::NotExist));
    let names: Vec<String> = server
        .seen()
        .iter()
        .map(|s| s.name.to_ascii_lowercase())
        .collect();
    assert_eq!(
        names,
        ["no.where.", "no.where.nothing.test.", "no.where.example."]
    );

    // A final dot: only the name.
    server.seen.lock().unwrap().clear();
    resolver.resolve_ipv4(&mut base, "host.", collect(&results, "abs"));
    run(&mut base, &resolver);
    assert_eq!(server.seen().len(), 1);
}

#[test]
fn requests_beyond_the_limit_queue() {
    let answered = Arc::new(AtomicUsize::new(0));
    let a = answered.clone();
    let server = FakeServer::start(move |_, q, tcp| {
        a.fetch_add(1, Ordering::SeqCst);
        answers(q, tcp)
    });
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&server]).with_max_inflight(2));
    let results: Results = Default::default();
    for i in 0..7 {
        resolver.resolve_ipv4(&mut base, "host.example", collect(&results, &i.to_string()));
    }
    assert_eq!((resolver.pending(), resolver.inflight()), (7, 2));
    run(&mut base, &resolver);
    assert_eq!(results.borrow().len(), 7);
    assert!(results.borrow().iter().all(|r| r.1.is_ok()));
    assert_eq!(answered.load(Ordering::SeqCst), 7);
    assert_eq!(resolver.inflight(), 0);
}

#[test]
fn bad_names_no_servers_and_shutdown() {
    let mut base = EventBase::new().unwrap();
    let results: Results = Default::default();
    let none = Resolver::new(ResolvConf::new());
    none.resolve_ipv4(&mut base, "host.example", collect(&results, "noservers"));
    let silent = FakeServer::silent();
    let resolver = Resolver::new(conf(&[&silent]));
    resolver.resolve_ipv4(&mut base, &"x".repeat(64), collect(&results, "label"));
    resolver.resolve_ipv4(&mut base, "a..b", collect(&results, "empty-label"));
    resolver.resolve_ipv4(&mut base, "höst", collect(&results, "unicode"));
    base.dispatch().unwrap();
    let got: Vec<(String, Outcome)> = results.take();
    assert_eq!(
        got,
        [
            ("noservers".into(), Err(DnsError::NoNameservers)),
            ("label".into(), Err(DnsError::InvalidName)),
            ("empty-label".into(), Err(DnsError::InvalidName)),
            ("unicode".into(), Err(DnsError::InvalidName)),
        ]
    );

    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "pending"));
    resolver.resolve_ipv6(&mut base, "host.example", collect(&results, "pending6"));
    assert_eq!(resolver.inflight(), 2);
    resolver.shutdown(&mut base, true);
    assert_eq!(
        results.take(),
        [
            ("pending".into(), Err(DnsError::Shutdown)),
            ("pending6".into(), Err(DnsError::Shutdown))
        ]
    );
    assert_eq!((resolver.pending(), resolver.inflight()), (0, 0));
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "after"));
    base.dispatch().unwrap();
    assert_eq!(results.borrow()[0].1, Err(DnsError::Shutdown));
    assert_eq!(base.num_events(), 0);
}

#[test]
fn a_down_server_is_probed_and_comes_back() {
    // Drops its first query, answers everything after.
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let flaky = FakeServer::start(move |_, q, tcp| {
        if c2.fetch_add(1, Ordering::SeqCst) == 0 {
            Vec::new()
        } else {
            answers(q, tcp)
        }
    });
    // Drops queries for hang.example, answers the rest.
    let good = FakeServer::start(|_, q, tcp| {
        if qname(q).to_ascii().eq_ignore_ascii_case("hang.example.") {
            Vec::new()
        } else {
            answers(q, tcp)
        }
    });
    let mut base = EventBase::new().unwrap();
    let c = conf(&[&flaky, &good])
        .with_timeout(Duration::from_millis(100))
        .with_attempts(255)
        .with_max_timeouts(1)
        .with_initial_probe_timeout(Duration::from_millis(50));
    let resolver = Resolver::new(c);
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    run(&mut base, &resolver);
    assert!(results.borrow()[0].1.is_ok());
    assert_eq!(resolver.servers_down(), [true, false]);
    assert_eq!(base.num_events(), 0, "an idle resolver does not probe");

    // While a request is pending, the probe goes out by itself and its answer brings the
    // server back.
    let hang = resolver.resolve_ipv4(&mut base, "hang.example", collect(&results, "hang"));
    let watchdog = base.new_timer(|base, _| base.loopbreak());
    base.add(watchdog, Some(WATCHDOG)).unwrap();
    while resolver.servers_down()[0] && !base.got_break() {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert_eq!(resolver.servers_down(), [false, false]);
    assert!(
        flaky.seen().iter().any(|s| s.name == "."),
        "a probe for the root"
    );
    base.free(watchdog).unwrap();
    hang.cancel(&mut base);
    run(&mut base, &resolver);
    assert_eq!(base.num_events(), 0, "nothing left: no request, no probe");

    // And requests start at it again.
    let (f, g) = (flaky.seen().len(), good.seen().len());
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "b"));
    run(&mut base, &resolver);
    assert!(results.borrow().last().unwrap().1.is_ok());
    assert_eq!(flaky.seen_at_least(f + 1), f + 1);
    let last = flaky.seen().last().unwrap().name.to_ascii_lowercase();
    assert_eq!(
        last, "host.example.",
        "the request went to the server that came back"
    );
    // (Queries for hang.example may still reach the good server's log; none for host.example.)
    let to_good = good.seen()[g..]
        .iter()
        .filter(|s| s.name.eq_ignore_ascii_case("host.example."))
        .count();
    assert_eq!(to_good, 0);
}

#[test]
fn rotate_spreads_requests_over_the_servers() {
    let a = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let b = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let results: Results = Default::default();
    let resolver = Resolver::new(conf(&[&a, &b]).with_rotate(true));
    for _ in 0..4 {
        resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "r"));
    }
    run(&mut base, &resolver);
    assert_eq!((a.seen().len(), b.seen().len()), (2, 2));
    let resolver = Resolver::new(conf(&[&a, &b]));
    for _ in 0..4 {
        resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "first"));
    }
    run(&mut base, &resolver);
    assert_eq!(
        (a.seen().len(), b.seen().len()),
        (6, 2),
        "without rotate: the first server"
    );
    assert!(results.borrow().iter().all(|r| r.1.is_ok()));
}

#[test]
fn every_backend_runs_the_resolver() {
    use revent::{Config, ConfigFlags, Method};
    let all = [Method::Epoll, Method::IoUring, Method::Poll, Method::Select];
    let tc = FakeServer::start(|_, q, tcp| {
        if tcp || !qname(q).to_ascii().eq_ignore_ascii_case("big.example.") {
            answers(q, tcp)
        } else {
            let mut r = reply(q);
            r.metadata.truncation = true;
            vec![r.to_vec().unwrap()]
        }
    });
    let silent = FakeServer::silent();
    for m in all {
        if !EventBase::method_available(m) {
            eprintln!("note: backend {} is not available here; skipped", m.name());
            continue;
        }
        let mut cfg = Config::new();
        for other in all.into_iter().filter(|&o| o != m) {
            cfg.avoid_method(other);
        }
        cfg.set_flag(ConfigFlags::IGNORE_ENV);
        let mut base = EventBase::with_config(&cfg).unwrap();
        assert_eq!(base.method(), m.name());
        let c = conf(&[&silent, &tc]).with_timeout(Duration::from_millis(100));
        let resolver = Resolver::new(c);
        let results: Results = Default::default();
        resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "failover"));
        resolver.resolve_ipv4(&mut base, "big.example", collect(&results, "tcp"));
        resolver.resolve_reverse(&mut base, [192, 0, 2, 1].into(), collect(&results, "ptr"));
        run(&mut base, &resolver);
        let r = results.take();
        assert_eq!(r.len(), 3, "{}", m.name());
        for (tag, outcome) in &r {
            match tag.as_str() {
                "failover" | "ptr" => assert!(outcome.is_ok(), "{}: {tag}: {outcome:?}", m.name()),
                // big.example is not in `answers`: NXDOMAIN, but only over TCP.
                _ => assert_eq!(*outcome, Err(DnsError::NotExist), "{}", m.name()),
            }
        }
    }
    assert!(tc.seen().iter().any(|s| s.tcp));
}

#[test]
fn a_resolver_outlives_its_base() {
    let silent = FakeServer::silent();
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let resolver = Resolver::new(conf(&[&silent]).with_timeout(Duration::from_secs(3600)));
    let old_ran = Rc::new(RefCell::new(false));
    let pending = {
        let mut base = EventBase::new().unwrap();
        let r = old_ran.clone();
        let req = resolver.resolve_ipv4(&mut base, "host.example", move |_, _| {
            *r.borrow_mut() = true
        });
        assert_eq!(resolver.pending(), 1);
        req
        // The base goes, with the request's events.
    };
    // A new base whose events take the slots the old one used.
    let mut base = EventBase::new().unwrap();
    let fired = Rc::new(RefCell::new(0));
    let mut timers = Vec::new();
    for _ in 0..4 {
        let f = fired.clone();
        let t = base.new_timer(move |_, _| *f.borrow_mut() += 1);
        base.add(t, Some(Duration::from_millis(1))).unwrap();
        timers.push(t);
    }
    assert!(!pending.cancel(&mut base), "the request went with its base");
    assert_eq!(resolver.pending(), 0);
    // The old request's ids were never used on the new base: its timers all fire.
    base.dispatch().unwrap();
    assert_eq!(*fired.borrow(), 4);
    // And the resolver works on the new base.
    let req = resolver.resolve_ipv4(&mut base, "host.example", |_, _| {});
    assert_eq!(silent.seen_at_least(2), 2, "sent from the new base");
    assert!(req.cancel(&mut base));
    assert_eq!(base.num_events(), 0);
    let other = Resolver::new(conf(&[&good]));
    let results: Results = Default::default();
    other.resolve_ipv4(&mut base, "host.example", collect(&results, "new"));
    run(&mut base, &other);
    assert!(results.borrow()[0].1.is_ok());
    assert!(!*old_ran.borrow());
}

#[test]
fn suspended_requests_wait_and_go_to_the_servers_added_before_resume() {
    // A silent server holds the first request in flight when the resolver is suspended.
    let silent = FakeServer::silent();
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(conf(&[&silent]).with_timeout(Duration::from_secs(20)));
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "in flight"));
    assert_eq!(resolver.inflight(), 1);
    assert_eq!(silent.seen_at_least(1), 1);
    resolver.clear_nameservers_and_suspend(&mut base);
    assert!(resolver.conf().nameservers().is_empty());
    assert_eq!((resolver.inflight(), resolver.pending()), (0, 1));
    // Made while suspended: queued, not failed for want of a server.
    resolver.resolve_ipv6(&mut base, "host.example", collect(&results, "made later"));
    base.run(revent::LoopFlags::NONBLOCK).unwrap();
    assert!(results.borrow().is_empty(), "nothing runs while suspended");
    resolver.configure(|c| c.with_nameserver(good.addr));
    resolver.resume(&mut base);
    run(&mut base, &resolver);
    let got = results.borrow();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "in flight", "the older request first");
    assert!(got.iter().all(|(_, r)| r.is_ok()), "{got:?}");
    assert_eq!(
        silent.seen().len(),
        1,
        "nothing more went to the removed server"
    );
    assert_eq!(good.seen().len(), 2);
}

#[test]
fn resume_without_nameservers_fails_the_waiting_requests() {
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(ResolvConf::new());
    resolver.clear_nameservers_and_suspend(&mut base);
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host.example", collect(&results, "a"));
    resolver.resume(&mut base);
    assert!(results.borrow().is_empty(), "reported from the loop");
    assert_eq!(resolver.pending(), 0);
    base.dispatch().unwrap();
    assert_eq!(results.borrow()[0].1, Err(DnsError::NoNameservers));
}

#[test]
fn configure_adds_servers_search_domains_and_options_to_a_live_resolver() {
    let good = FakeServer::start(|_, q, tcp| answers(q, tcp));
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(ResolvConf::new());
    resolver.configure(|mut c| {
        assert!(c.set_option("randomize-case:0"));
        c.with_nameserver(good.addr).with_search_domain("example")
    });
    let results: Results = Default::default();
    resolver.resolve_ipv4(&mut base, "host", collect(&results, "searched"));
    run(&mut base, &resolver);
    assert!(results.borrow()[0].1.is_ok(), "{:?}", results.borrow());
    // Without 0x20 the name goes in the case it was asked in.
    let seen = good.seen();
    assert!(seen.iter().any(|s| s.name == "host.example."), "{seen:?}");
    // Nameservers that `configure` drops are kept; search domains go.
    resolver.configure(|c| c.without_nameservers().without_search());
    assert_eq!(resolver.conf().nameservers(), [good.addr]);
    resolver.resolve_ipv4(&mut base, "host", collect(&results, "not searched"));
    run(&mut base, &resolver);
    assert_eq!(results.borrow()[1].1, Err(DnsError::NotExist));
}
