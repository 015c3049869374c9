//! Queries out and replies in, through hickory-proto: encoding a question, and deciding what a
//! datagram is worth to the request waiting for it.

use crate::answer::{Answer, Records};
use crate::error::DnsError;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use std::net::IpAddr;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    A,
    Aaaa,
    Ptr,
}

impl Kind {
    fn record_type(self) -> RecordType {
        match self {
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
            Kind::Ptr => RecordType::PTR,
        }
    }
}

/// A reply's meaning for the request that is waiting.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Not a reply to this question: dropped, the request keeps waiting.
    Ignore,
    /// The right reply, with TC set: ask again over TCP.
    Truncated,
    /// The right reply, with records.
    Answer(Answer),
    /// The right reply, with an error (or no records: [`DnsError::NoData`]).
    Error(DnsError),
}

/// The query for `name` (an FQDN, already in its 0x20 case) with transaction id `id`.
pub(crate) fn encode_query(id: u16, name: &Name, kind: Kind) -> Option<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let mut q = Query::query(name.clone(), kind.record_type());
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m.to_vec().ok()
}

/// Decides what `bytes` mean for the question (`id`, `name` in its exact case, `kind`, class IN).
/// `tcp`: the reply came over TCP, where a set TC bit is not obeyed again.
pub(crate) fn check_reply(bytes: &[u8], id: u16, name: &Name, kind: Kind, tcp: bool) -> Verdict {
    let Ok(m) = Message::from_vec(bytes) else {
        return Verdict::Ignore;
    };
    let md = &m.metadata;
    if md.id != id || md.message_type != MessageType::Response || md.op_code != OpCode::Query {
        return Verdict::Ignore;
    }
    let [q] = m.queries.as_slice() else {
        return Verdict::Ignore;
    };
    if !q.name().eq_case(name)
        || q.query_type() != kind.record_type()
        || q.query_class() != DNSClass::IN
    {
        return Verdict::Ignore;
    }
    if md.truncation && !tcp {
        return Verdict::Truncated;
    }
    match md.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Verdict::Error(DnsError::NotExist),
        ResponseCode::ServFail => return Verdict::Error(DnsError::ServerFailed),
        ResponseCode::Refused => return Verdict::Error(DnsError::Refused),
        ResponseCode::NotImp => return Verdict::Error(DnsError::NotImplemented),
        ResponseCode::FormErr => return Verdict::Error(DnsError::Format),
        _ => return Verdict::Error(DnsError::Unknown),
    }
    // The names that answer: the question's, then the targets of a CNAME chain (bounded, so a
    // CNAME loop ends).
    let mut owners = vec![name.clone()];
    'chain: for _ in 0..16 {
        let last = owners.last().expect("starts with one");
        for r in &m.answers {
            if let RData::CNAME(target) = &r.data {
                if r.name == *last && r.dns_class == DNSClass::IN && !owners.contains(&target.0) {
                    owners.push(target.0.clone());
                    continue 'chain;
                }
            }
        }
        break;
    }
    let mut ttl = u32::MAX;
    let mut records = match kind {
        Kind::A => Records::Ipv4(Vec::new()),
        Kind::Aaaa => Records::Ipv6(Vec::new()),
        Kind::Ptr => Records::Ptr(Vec::new()),
    };
    for r in &m.answers {
        if r.dns_class != DNSClass::IN || !owners.contains(&r.name) {
            continue;
        }
        let took = match (&mut records, &r.data) {
            (Records::Ipv4(v), RData::A(a)) => {
                v.push(a.0);
                true
            }
            (Records::Ipv6(v), RData::AAAA(a)) => {
                v.push(a.0);
                true
            }
            (Records::Ptr(v), RData::PTR(p)) => {
                let mut s = p.0.to_ascii();
                if s.len() > 1 && s.ends_with('.') {
                    s.pop();
                }
                v.push(s);
                true
            }
            _ => false,
        };
        if took {
            ttl = ttl.min(r.ttl);
        }
    }
    if records.is_empty() {
        return Verdict::Error(DnsError::NoData);
    }
    let mut qname = name.to_ascii().to_ascii_lowercase();
    if qname.len() > 1 {
        qname.pop();
    }
    Verdict::Answer(Answer {
        name: qname,
        ttl,
        records,
    })
}

/// `name` as an FQDN, or `None` if it cannot be one (empty, a label over 63 bytes, over 255
/// bytes in all, empty labels, not ASCII).
pub(crate) fn fqdn(name: &str) -> Option<Name> {
    if name.is_empty() || !name.is_ascii() || name.contains("..") || name.starts_with('.') {
        return None;
    }
    let n = if name.ends_with('.') {
        Name::from_ascii(name)
    } else {
        Name::from_ascii(format!("{name}."))
    };
    n.ok().filter(|n| n.is_fqdn() && n.num_labels() > 0)
}

/// `name` with each ASCII letter's case chosen by one bit of `bits` (0x20 randomisation; the
/// server must echo it exactly, which a blind spoofer cannot guess).
pub(crate) fn randomize_case(name: &Name, mut bits: impl FnMut() -> bool) -> Name {
    let s: String = name
        .to_ascii()
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() && bits() {
                (c as u8 ^ 0x20) as char
            } else {
                c
            }
        })
        .collect();
    Name::from_ascii(&s).unwrap_or_else(|_| name.clone())
}

/// The PTR name of an address: `4.3.2.1.in-addr.arpa` or the 32 nibbles under `ip6.arpa`.
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(73);
            for b in v6.octets().iter().rev() {
                s.push(char::from_digit((b & 15) as u32, 16).expect("a nibble"));
                s.push('.');
                s.push(char::from_digit((b >> 4) as u32, 16).expect("a nibble"));
                s.push('.');
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa."
        );
        assert_eq!(
            reverse_name("2001:db8::567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn names_that_cannot_be_sent() {
        assert!(fqdn("").is_none());
        assert!(fqdn("a..b").is_none());
        assert!(fqdn(".a").is_none());
        assert!(fqdn(&"x".repeat(64)).is_none());
        assert!(fqdn(&["abcdefghi"; 30].join(".")).is_none());
        assert!(fqdn("ünïcode.example").is_none());
        assert!(fqdn("host.example.").is_some());
        assert_eq!(fqdn("Host.Example").unwrap().to_ascii(), "Host.Example.");
    }

    #[test]
    fn case_randomisation_keeps_the_name() {
        let n = fqdn("www.example.com").unwrap();
        let flipped = randomize_case(&n, || true);
        assert_eq!(flipped.to_ascii(), "WWW.EXAMPLE.COM.");
        assert_eq!(flipped, n, "the same name");
        assert!(!flipped.eq_case(&n), "in another case");
    }

    /// Replies with random bytes changed, cut or appended: never a panic, and an accepted
    /// answer always has records.
    #[test]
    fn mangled_replies_never_panic() {
        use hickory_proto::rr::rdata::{A, CNAME};
        use hickory_proto::rr::Record;
        let name = fqdn("www.example.com").unwrap();
        let mut m = Message::new(99, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        let alias = fqdn("alias.example.com").unwrap();
        m.add_answer(Record::from_rdata(
            name.clone(),
            60,
            RData::CNAME(CNAME(alias.clone())),
        ));
        m.add_answer(Record::from_rdata(
            alias,
            60,
            RData::A(A([192, 0, 2, 1].into())),
        ));
        let good = m.to_vec().unwrap();
        match check_reply(&good, 99, &name, Kind::A, false) {
            Verdict::Answer(a) => assert_eq!(a.records, Records::Ipv4(vec![[192, 0, 2, 1].into()])),
            v => panic!("the CNAME chain is followed: {v:?}"),
        }
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let mut b = good.clone();
            for _ in 0..=(next() % 4) {
                let i = (next() as usize) % b.len();
                match next() % 4 {
                    0 => b[i] = next() as u8,
                    1 => b.truncate(i),
                    2 => b.insert(i, next() as u8),
                    _ => b[i] ^= 0xC0,
                }
                if b.is_empty() {
                    break;
                }
            }
            for kind in [Kind::A, Kind::Aaaa, Kind::Ptr] {
                if let Verdict::Answer(a) = check_reply(&b, 99, &name, kind, next() % 2 == 0) {
                    assert!(!a.records.is_empty());
                }
            }
        }
    }

    #[test]
    fn the_fuzz_entry_point_reaches_answers() {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::Record;
        let name = fqdn("Fuzz.example").unwrap();
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(
            name,
            1,
            RData::A(A([192, 0, 2, 1].into())),
        ));
        // As a reply to its own question, for A, over UDP and TCP.
        assert_eq!(fuzzing::check_reply_bytes(&m.to_vec().unwrap()), 2);
        assert_eq!(fuzzing::check_reply_bytes(b"\xc0\xc0"), 0);
    }

    #[test]
    fn query_round_trip_keeps_case() {
        let n = randomize_case(&fqdn("abc.example").unwrap(), || true);
        let q = encode_query(7, &n, Kind::A).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert!(m.queries[0].name().eq_case(&n));
        // A reply to itself is not a reply: QR is clear.
        assert!(matches!(
            check_reply(&q, 7, &n, Kind::A, false),
            Verdict::Ignore
        ));
    }
}

/// Entry points for the fuzz target (`fuzz/fuzz_targets/dns_reply.rs`); not part of the API.
pub mod fuzzing {
    use super::*;

    /// Checks `bytes` as a reply to the question it carries itself (so that the fuzzer reaches
    /// the answer's records) and to a fixed question, for every kind of lookup, over UDP and TCP.
    /// Returns how many of those checks accepted an answer, which always has records.
    pub fn check_reply_bytes(bytes: &[u8]) -> usize {
        let mut questions = vec![(0x1234, Name::from_ascii("www.Example.com.").expect("valid"))];
        if let Ok(m) = Message::from_vec(bytes) {
            if let Some(q) = m.queries.first() {
                questions.push((m.metadata.id, q.name().clone()));
            }
        }
        let mut accepted = 0;
        for (id, name) in &questions {
            for kind in [Kind::A, Kind::Aaaa, Kind::Ptr] {
                for tcp in [false, true] {
                    if let Verdict::Answer(a) = check_reply(bytes, *id, name, kind, tcp) {
                        assert!(!a.records.is_empty(), "an answer without records");
                        accepted += 1;
                    }
                }
            }
        }
        accepted
    }
}
