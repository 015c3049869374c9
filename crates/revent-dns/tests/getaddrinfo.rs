//! `Resolver::getaddrinfo` against scripted servers: numeric hosts and the hosts file at once, both
//! families side by side, the skew limit, cancellation.

mod common;

use common::*;
use hickory_proto::op::ResponseCode;
use revent::EventBase;
use revent_dns::{AddrOutcome, DnsError, Family, Hosts, ResolvConf, Resolver};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

type Got = Rc<RefCell<Vec<AddrOutcome>>>;

fn keep(got: &Got) -> impl FnOnce(&mut EventBase, AddrOutcome) + 'static {
    let got = got.clone();
    move |_, r| got.borrow_mut().push(r)
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn run_until(base: &mut EventBase, got: &Got, n: usize) {
    let watchdog = base.new_timer(|base, _| base.loopbreak());
    base.add(watchdog, Some(Duration::from_secs(30))).unwrap();
    while got.borrow().len() < n && !base.got_break() {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert!(!base.got_break(), "the watchdog fired");
    base.free(watchdog).unwrap();
}

/// A and AAAA for dual.example, only A for v4only.example, NXDOMAIN otherwise; AAAA queries for
/// slow6.example are dropped.
fn server() -> FakeServer {
    FakeServer::start(|_, q, _| {
        let name = qname(q).to_ascii().to_ascii_lowercase();
        let t = q.queries[0].query_type().to_string();
        match (t.as_str(), name.as_str()) {
            ("A", "dual.example." | "v4only.example." | "slow6.example.") => {
                vec![a_reply(q, &[[192, 0, 2, 1].into()])]
            }
            ("AAAA", "dual.example.") => vec![aaaa_reply(q, &["2001:db8::1".parse().unwrap()])],
            ("AAAA", "v4only.example.") => vec![with_rcode(q, ResponseCode::NoError)],
            ("AAAA", "slow6.example.") => Vec::new(),
            _ => vec![with_rcode(q, ResponseCode::NXDomain)],
        }
    })
}

#[test]
fn numeric_hosts_and_the_hosts_file_answer_at_once() {
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(ResolvConf::new());
    resolver.set_hosts(Hosts::parse("10.1.1.1 box\nfd00::1 box\n"));
    let got: Got = Default::default();
    for (host, family) in [
        ("192.0.2.5", Family::Any),
        ("[2001:db8::5]", Family::Any),
        ("2001:db8::5", Family::V4),
        ("BOX", Family::Any),
        ("box", Family::V6),
    ] {
        assert!(resolver
            .getaddrinfo(&mut base, host, 80, family, keep(&got))
            .is_none());
    }
    assert_eq!(
        got.take(),
        [
            Ok(addrs(&["192.0.2.5:80"])),
            Ok(addrs(&["[2001:db8::5]:80"])),
            Err(DnsError::NoData),
            Ok(addrs(&["10.1.1.1:80", "[fd00::1]:80"])),
            Ok(addrs(&["[fd00::1]:80"])),
        ]
    );
    // Not in the hosts file and no nameserver: a lookup, which fails from the loop.
    assert!(resolver
        .getaddrinfo(&mut base, "other", 80, Family::Any, keep(&got))
        .is_some());
    run_until(&mut base, &got, 1);
    assert_eq!(got.take(), [Err(DnsError::NoNameservers)]);
}

#[test]
fn both_families_side_by_side() {
    let s = server();
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(ResolvConf::new().with_nameserver(s.addr));
    let got: Got = Default::default();
    for (i, (host, family)) in [
        ("dual.example", Family::Any),
        ("dual.example", Family::V6),
        ("v4only.example", Family::Any),
        ("v4only.example", Family::V6),
        ("missing.example", Family::Any),
    ]
    .into_iter()
    .enumerate()
    {
        resolver.getaddrinfo(&mut base, host, 53, family, keep(&got));
        run_until(&mut base, &got, i + 1);
    }
    assert_eq!(
        got.take(),
        [
            Ok(addrs(&["192.0.2.1:53", "[2001:db8::1]:53"])),
            Ok(addrs(&["[2001:db8::1]:53"])),
            Ok(addrs(&["192.0.2.1:53"])),
            Err(DnsError::NoData),
            Err(DnsError::NotExist),
        ]
    );
}

#[test]
fn a_lagging_family_is_given_up_after_the_skew() {
    let s = server();
    let mut base = EventBase::new().unwrap();
    // Without the skew limit the AAAA query would wait an hour.
    let conf = ResolvConf::new()
        .with_nameserver(s.addr)
        .with_timeout(Duration::from_secs(3600));
    let resolver = Resolver::new(conf);
    let got: Got = Default::default();
    resolver.getaddrinfo(&mut base, "slow6.example", 80, Family::Any, keep(&got));
    run_until(&mut base, &got, 1);
    assert_eq!(got.take(), [Ok(addrs(&["192.0.2.1:80"]))]);
    assert_eq!(resolver.pending(), 0, "the AAAA query was cancelled");
}

#[test]
fn cancelled_lookups_never_call_back() {
    let s = server();
    let mut base = EventBase::new().unwrap();
    let resolver = Resolver::new(ResolvConf::new().with_nameserver(s.addr));
    let got: Got = Default::default();
    let lookup = resolver
        .getaddrinfo(&mut base, "dual.example", 80, Family::Any, keep(&got))
        .unwrap();
    assert_eq!(resolver.pending(), 2);
    assert!(lookup.cancel(&mut base));
    assert!(!lookup.cancel(&mut base));
    assert_eq!(resolver.pending(), 0);
    base.dispatch().unwrap();
    assert!(got.borrow().is_empty());
    assert_eq!(base.num_events(), 0);
}
