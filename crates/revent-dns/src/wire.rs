//! Queries out and replies in, through hickory-proto: encoding a question, and deciding what a
//! datagram is worth to the request waiting for it.

use crate::answer::{Answer, Records};
use crate::error::DnsError;
use hickory_proto::op::{
    Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use std::net::IpAddr;

/// Where the question's name starts in a message: right after the 12-byte header.
const QNAME_AT: usize = 12;

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
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a reply to this question: dropped, the request keeps waiting.
    Ignore,
    /// The right reply, with TC set: ask again over TCP.
    Truncated,
    /// The right reply, with records.
    Answer(Found),
    /// The right reply, with an error (or no records: [`DnsError::NoData`]).
    Error(DnsError),
}

/// What the right reply found: an [`Answer`] but for its name, which the request has
/// ([`QName::take_answer_name`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Found {
    /// The smallest TTL of the records.
    pub(crate) ttl: u32,
    /// Never empty.
    pub(crate) records: Records,
}

impl Found {
    /// The answer, with `name` (the name asked, as [`Answer::name`] holds it).
    pub(crate) fn answer(self, name: String) -> Answer {
        Answer {
            name,
            ttl: self.ttl,
            records: self.records,
        }
    }
}

/// A name to ask (an FQDN), checked. Most names are plain (labels of letters, digits, `_` and `-`
/// not first): those are kept as their text, which is all the query needs, rather than parsed
/// into a hickory-proto `Name` (its parser, with escapes and a new `Name` a label, was a fifth of
/// a lookup's work). Anything else is parsed by hickory-proto.
#[derive(Clone, Debug)]
pub(crate) enum QName {
    /// The labels separated by dots, no final dot.
    Plain(String),
    Parsed(Name),
}

impl QName {
    /// The query for this name: [`encode_query`].
    pub(crate) fn query(
        &self,
        id: u16,
        kind: Kind,
        scratch: &mut Vec<u8>,
        out: Vec<u8>,
    ) -> Option<Vec<u8>> {
        match self {
            QName::Plain(s) => encode_query(id, labels_of(s), kind, scratch, out),
            QName::Parsed(n) => encode_query(id, n.iter(), kind, scratch, out),
        }
    }

    /// The text of this name for [`Answer::name`], `query` being a query for it: what
    /// [`answer_name`] makes of the query. A plain name's text is that already but for its case,
    /// so it is taken (leaving `self` empty, for a request that is done with it) rather than
    /// written anew.
    pub(crate) fn take_answer_name(&mut self, query: &[u8]) -> String {
        match self {
            QName::Plain(s) => {
                let mut s = std::mem::take(s);
                s.make_ascii_lowercase();
                s
            }
            QName::Parsed(_) => answer_name(query),
        }
    }

    /// Whether two names are the same name (without regard to case, as DNS names are compared).
    pub(crate) fn same(&self, other: &QName) -> bool {
        fn labels(q: &QName) -> Vec<&[u8]> {
            match q {
                QName::Plain(s) => labels_of(s).collect(),
                QName::Parsed(n) => n.iter().collect(),
            }
        }
        let (a, b) = (labels(self), labels(other));
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.eq_ignore_ascii_case(y))
    }
}

/// The labels of a plain name (a byte split: `str::split` with a `char` pattern costs several
/// times more for these short names).
fn labels_of(s: &str) -> impl Iterator<Item = &[u8]> {
    s.as_bytes().split(|&b| b == b'.')
}

/// Whether `a` and `b` are the same DNS name: the same labels, without regard to ASCII case.
/// What `Name`'s `==` decides, label by label from the front without its per-byte lowercasing
/// from the back (a tenth of a lookup's work when every answer record was compared that way).
fn same_name(a: &Name, b: &Name) -> bool {
    a.num_labels() == b.num_labels()
        && a.is_fqdn() == b.is_fqdn()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// The query for `name` (an FQDN's labels) of type `kind`, class IN, with transaction id `id` and
/// recursion desired: hickory-proto's encoder writing the header and the one question, the name
/// uncompressed (the first name in a message has nothing to point to). `scratch` is reused between
/// calls (the encoder wants 512 bytes of room); the query is returned in `out`, emptied first (a
/// buffer of an earlier query, so that a query costs no allocation, or a new one).
///
/// The bytes are the transmission's record of what was asked: [`randomize_case`] changes them in
/// place, and [`check_reply`] compares a reply against them.
pub(crate) fn encode_query<'a>(
    id: u16,
    name: impl IntoIterator<Item = &'a [u8]>,
    kind: Kind,
    scratch: &mut Vec<u8>,
    mut out: Vec<u8>,
) -> Option<Vec<u8>> {
    scratch.clear();
    scratch.extend_from_slice(query_header()?);
    scratch[..2].copy_from_slice(&id.to_be_bytes());
    // The question after the header (`with_offset` writes from there on).
    let mut enc = BinEncoder::with_offset(scratch, QNAME_AT as u32);
    // The name label by label (`Name::emit` would also track labels for compression), then the
    // root label, type and class.
    for label in name {
        enc.emit_character_data(label).ok()?;
    }
    enc.emit_vec(question_tail(kind)?).ok()?;
    out.clear();
    out.extend_from_slice(scratch);
    Some(out)
}

/// The header of every query, id 0 (the caller writes its own): hickory-proto's encoding of a
/// recursion-desired standard query with one question, made once, since only the id changes.
fn query_header() -> Option<&'static [u8]> {
    static HEADER: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    HEADER
        .get_or_init(|| {
            let mut md = Metadata::new(0, MessageType::Query, OpCode::Query);
            md.recursion_desired = true;
            let header = Header {
                metadata: md,
                counts: HeaderCounts {
                    queries: 1,
                    ..HeaderCounts::default()
                },
            };
            let mut buf = Vec::with_capacity(QNAME_AT);
            header.emit(&mut BinEncoder::new(&mut buf)).ok()?;
            (buf.len() == QNAME_AT).then_some(buf)
        })
        .as_deref()
}

/// The end of every question of `kind`: the root label that ends its name, its type and class
/// IN, as hickory-proto encodes them, made once per kind (encoding them for each query, two
/// conversions and three writes, was an eighth of its cost).
fn question_tail(kind: Kind) -> Option<&'static [u8]> {
    const KINDS: [Kind; 3] = [Kind::A, Kind::Aaaa, Kind::Ptr];
    static TAILS: std::sync::OnceLock<Option<[[u8; 5]; 3]>> = std::sync::OnceLock::new();
    let tails = TAILS
        .get_or_init(|| {
            let mut tails = [[0; 5]; 3];
            for (tail, k) in tails.iter_mut().zip(KINDS) {
                let mut buf = Vec::new();
                let mut enc = BinEncoder::new(&mut buf);
                Name::root().emit(&mut enc).ok()?;
                k.record_type().emit(&mut enc).ok()?;
                DNSClass::IN.emit(&mut enc).ok()?;
                *tail = buf.try_into().ok()?;
            }
            Some(tails)
        })
        .as_ref()?;
    let i = KINDS.iter().position(|&k| k == kind)?;
    Some(&tails[i])
}

/// The labels of the question's name in a query made by [`encode_query`], as ranges of `query`.
fn question_labels(query: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut at = QNAME_AT;
    std::iter::from_fn(move || {
        let len = usize::from(*query.get(at)?);
        let label = at + 1..at + 1 + len;
        if len == 0 || label.end > query.len() {
            return None;
        }
        at = label.end;
        Some(label)
    })
}

/// Whether `n` is the question of `query` as a DNS name: the same labels, without regard to
/// ASCII case. A label is first compared as bytes: an owner name is usually a pointer to the
/// reply's question, which echoed the query's case exactly, and comparing without case costs
/// several times more a byte.
fn is_question(n: &Name, query: &[u8]) -> bool {
    let mut ours = question_labels(query);
    n.is_fqdn()
        && n.iter().all(|label| {
            ours.next().is_some_and(|r| {
                let q = &query[r];
                q == label || q.eq_ignore_ascii_case(label)
            })
        })
        && ours.next().is_none()
}

/// Whether `name` is, label for label and byte for byte (case included), the question of `query`.
fn asks_exactly(query: &[u8], name: &Name) -> bool {
    let mut ours = question_labels(query);
    name.iter()
        .all(|label| ours.next().is_some_and(|r| &query[r] == label))
        && ours.next().is_none()
}

/// Decides what `bytes` mean for the question of `query` (as sent: its id, its name in its exact
/// case, its type; class IN). `tcp`: the reply came over TCP, where a set TC bit is not obeyed
/// again.
///
/// The usual reply is decided by [`check_plain`] from its header and answer records alone;
/// any other by [`check_message`], from the whole message decoded. Both decide alike wherever
/// the first decides at all.
pub(crate) fn check_reply(bytes: &[u8], query: &[u8], kind: Kind, tcp: bool) -> Verdict {
    match check_plain(bytes, query, kind, tcp) {
        Some(v) => v,
        None => check_message(bytes, query, kind, tcp),
    }
}

/// The empty records of a lookup of `kind`, with room for `n`.
fn no_records(kind: Kind, n: usize) -> Records {
    match kind {
        Kind::A => Records::Ipv4(Vec::with_capacity(n)),
        Kind::Aaaa => Records::Ipv6(Vec::with_capacity(n)),
        Kind::Ptr => Records::Ptr(Vec::with_capacity(n)),
    }
}

/// A PTR record's name as [`Records::Ptr`] holds it: presentation form, no final dot.
fn ptr_text(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s
}

/// [`check_reply`] for the usual reply, without building a hickory-proto `Message` (whose
/// decoding, a `Vec` of queries and one of `Record`s each copied in, and dropping were half of a
/// lookup's work): a successful answer (NOERROR, not truncated unless over TCP) with no authority
/// or additional records, its question the very bytes of the query's, and each answer record
/// of the type asked, class IN, owned by the question's name. Header, owner names and record
/// data are decoded by hickory-proto's own readers (`Header`, `Name`, `A`, `AAAA`, `PTR`), the
/// ones `Message::from_vec` calls; only the fixed fields of a record's header are read here.
///
/// `None`: not of that shape (CNAMEs, other records, EDNS, an error code, a malformed record...),
/// for [`check_message`] to decide. `Some` is what [`check_message`] would decide: a header
/// that is not a reply to this query's id is ignored by both; in a reply of this shape, each
/// record decodes as `Record::read` would decode it, and every record counts for the answer.
fn check_plain(bytes: &[u8], query: &[u8], kind: Kind, tcp: bool) -> Option<Verdict> {
    let question = query.get(QNAME_AT..)?;
    let mut d = BinDecoder::new(bytes);
    let Ok(Header {
        metadata: md,
        counts,
    }) = Header::read(&mut d)
    else {
        return Some(Verdict::Ignore);
    };
    if md.id != u16::from_be_bytes([query[0], query[1]])
        || md.message_type != MessageType::Response
        || md.op_code != OpCode::Query
        || counts.queries != 1
    {
        return Some(Verdict::Ignore);
    }
    if counts.authorities != 0
        || counts.additionals != 0
        || (md.truncation && !tcp)
        || md.response_code != ResponseCode::NoError
        || d.read_slice(question.len()).ok()?.unverified() != question
    {
        return None;
    }
    let want = u16::from(kind.record_type());
    let mut ttl = u32::MAX;
    // Room for every record, made at once rather than grown by the first push (bounded: the
    // count is the sender's word).
    let mut records = no_records(kind, usize::from(counts.answers).min(16));
    for _ in 0..counts.answers {
        let owner = Name::read(&mut d).ok()?;
        let rtype = d.read_u16().ok()?.unverified();
        let class = d.read_u16().ok()?.unverified();
        let rttl = d.read_u32().ok()?.unverified();
        let len = usize::from(d.read_u16().ok()?.unverified());
        if rtype != want
            || class != u16::from(DNSClass::IN)
            || len == 0
            || len > d.len()
            || !is_question(&owner, query)
        {
            return None;
        }
        let start = d.index();
        match &mut records {
            Records::Ipv4(v) => v.push(A::read(&mut d).ok()?.0),
            Records::Ipv6(v) => v.push(AAAA::read(&mut d).ok()?.0),
            Records::Ptr(v) => v.push(ptr_text(&PTR::read(&mut d).ok()?.0)),
        }
        if d.index() - start != len {
            return None;
        }
        ttl = ttl.min(rttl);
    }
    if records.is_empty() {
        return Some(Verdict::Error(DnsError::NoData));
    }
    Some(Verdict::Answer(Found { ttl, records }))
}

/// [`check_reply`] for any reply: the whole message decoded by hickory-proto.
fn check_message(bytes: &[u8], query: &[u8], kind: Kind, tcp: bool) -> Verdict {
    let Ok(m) = Message::from_vec(bytes) else {
        return Verdict::Ignore;
    };
    let md = &m.metadata;
    if query.len() < QNAME_AT
        || md.id != u16::from_be_bytes([query[0], query[1]])
        || md.message_type != MessageType::Response
        || md.op_code != OpCode::Query
    {
        return Verdict::Ignore;
    }
    let [q] = m.queries.as_slice() else {
        return Verdict::Ignore;
    };
    let name = q.name();
    if !asks_exactly(query, name)
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
    // CNAME loop ends). Compared without case, as DNS names are. `aliases` stays empty, and so
    // unallocated, for the usual reply without CNAMEs.
    let mut aliases: Vec<&Name> = Vec::new();
    // The question's own name is compared with the query's bytes (what `name` matched exactly):
    // one pass over a decoded name's labels instead of two.
    let owns = |aliases: &[&Name], n: &Name| {
        is_question(n, query) || aliases.iter().any(|a| same_name(n, a))
    };
    'chain: for _ in 0..16 {
        let last = aliases.last().copied();
        for r in &m.answers {
            if let RData::CNAME(target) = &r.data {
                let from_last = match last {
                    Some(a) => same_name(&r.name, a),
                    None => is_question(&r.name, query),
                };
                if from_last && r.dns_class == DNSClass::IN && !owns(&aliases, &target.0) {
                    aliases.push(&target.0);
                    continue 'chain;
                }
            }
        }
        break;
    }
    let mut ttl = u32::MAX;
    let mut records = no_records(kind, 0);
    for r in &m.answers {
        if r.dns_class != DNSClass::IN || !owns(&aliases, &r.name) {
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
                v.push(ptr_text(&p.0));
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
    Verdict::Answer(Found { ttl, records })
}

/// The text of the name asked, for [`Answer::name`]: hickory-proto's presentation form
/// (`to_ascii`, escapes and all), in lowercase, without the final dot. `query` is the query as
/// sent, whose question the reply's matched byte for byte: names whose labels need no escaping
/// (letters, digits, `_`, and `-` but not first), the usual kind, are written straight from the
/// query's bytes, which is the same text without `to_ascii`'s work per byte; others are decoded
/// from them by hickory-proto.
fn answer_name(query: &[u8]) -> String {
    let slow = || {
        let name = query
            .get(QNAME_AT..)
            .and_then(|q| Name::read(&mut BinDecoder::new(q)).ok())
            .unwrap_or_default();
        let mut s = name.to_ascii();
        s.make_ascii_lowercase();
        if s.len() > 1 {
            s.pop();
        }
        s
    };
    let mut out = Vec::with_capacity(query.len());
    for label in question_labels(query) {
        let bytes = &query[label];
        if !plain_label(bytes) {
            return slow();
        }
        if !out.is_empty() {
            out.push(b'.');
        }
        out.extend_from_slice(bytes);
    }
    if out.is_empty() {
        return slow();
    }
    out.make_ascii_lowercase();
    String::from_utf8(out).unwrap_or_else(|_| slow())
}

/// `name` as an FQDN, or `None` if it cannot be one (empty, a label over 63 bytes, over 255
/// bytes in all, empty labels, not ASCII).
pub(crate) fn fqdn(name: &str) -> Option<QName> {
    // One pass for the usual plain name: labels of 1 to 63 plain bytes (so no empty label, no
    // leading dot, nothing but ASCII), 255 bytes in all on the wire (a length byte a label, and
    // the root's), which is what hickory-proto's parser accepts of such a name.
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.len() + 2 <= 255 && plain_name(bare.as_bytes()) {
        return Some(QName::Plain(bare.to_string()));
    }
    if name.is_empty() || !name.is_ascii() || name.contains("..") || name.starts_with('.') {
        return None;
    }
    parse_fqdn(name).map(QName::Parsed)
}

/// The bytes allowed anywhere in a plain label (`-` is checked apart: not first). A table,
/// since this runs over every byte of every name asked and answered.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        b += 1;
    }
    t
};

/// A label that hickory-proto's parser takes as it is, of a length it accepts: letters, digits,
/// `_`, and `-` but not first.
fn plain_label(label: &[u8]) -> bool {
    (1..=63).contains(&label.len())
        && label[0] != b'-'
        && label.iter().all(|&b| PLAIN[usize::from(b)])
}

/// Whether every label of `name` (labels separated by dots, no final dot) is a
/// [`plain_label`]: the same decision, in one pass over the bytes rather than a split into
/// labels and a pass over each.
fn plain_name(name: &[u8]) -> bool {
    let label_ok =
        |start: usize, end: usize| (1..=63).contains(&(end - start)) && name[start] != b'-';
    let mut start = 0;
    for (i, &b) in name.iter().enumerate() {
        if b == b'.' {
            if !label_ok(start, i) {
                return false;
            }
            start = i + 1;
        } else if !PLAIN[usize::from(b)] {
            return false;
        }
    }
    label_ok(start, name.len())
}

/// `name` parsed by hickory-proto as an FQDN.
fn parse_fqdn(name: &str) -> Option<Name> {
    let n = if name.ends_with('.') {
        Name::from_ascii(name)
    } else {
        Name::from_ascii(format!("{name}."))
    };
    n.ok().filter(|n| n.is_fqdn() && n.num_labels() > 0)
}

/// Flips the case of each ASCII letter of the question's name in a query made by
/// [`encode_query`] where the random bits of `bits` say so (0x20 randomisation; the server must
/// echo the case exactly, which a blind spoofer cannot guess): each letter takes the next bit of
/// a word, 64 letters a word. Applied to a name whose case is already random, the result is as
/// random: each letter's new case is its old one XOR a fresh bit.
pub(crate) fn randomize_case(query: &mut [u8], mut bits: impl FnMut() -> u64) {
    let (mut word, mut left) = (0u64, 0u32);
    let mut at = QNAME_AT;
    while let Some(&len) = query.get(at) {
        let end = at + 1 + usize::from(len);
        if len == 0 || end > query.len() {
            break;
        }
        for b in &mut query[at + 1..end] {
            if b.is_ascii_alphabetic() {
                if left == 0 {
                    (word, left) = (bits(), 64);
                }
                *b ^= ((word & 1) as u8) << 5;
                word >>= 1;
                left -= 1;
            }
        }
        at = end;
    }
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
    use hickory_proto::op::Query;

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

    /// Plain names are taken exactly when hickory-proto's parser takes them, as the same labels.
    #[test]
    fn plain_names_are_what_the_parser_makes() {
        let long = ["abcdefghi"; 25].join(".");
        let longest = format!("{long}.x");
        let too_long = format!("{long}.xy");
        let max_label = "x".repeat(63);
        let over_label = "x".repeat(64);
        for text in [
            "www.Example.com",
            "www.Example.com.",
            "h12345.bench.example",
            "_srv._tcp.x",
            "a-b.c-d",
            "-a.b",
            "a.-b",
            "0.1.2.3",
            "single",
            long.as_str(),
            longest.as_str(),
            too_long.as_str(),
            max_label.as_str(),
            over_label.as_str(),
            "a*b.c",
            "*.c",
            "a\\.b.c",
            "a\\065.c",
            "sp ace.c",
        ] {
            let parsed = parse_fqdn(text);
            let ours = fqdn(text);
            assert_eq!(ours.is_some(), parsed.is_some(), "{text}");
            if let (Some(q), Some(n)) = (&ours, &parsed) {
                let wire = q.query(1, Kind::A, &mut Vec::new(), Vec::new()).unwrap();
                assert!(asked(&wire).name().eq_case(n), "{text}");
                assert!(q.same(&QName::Parsed(n.clone())), "{text}");
                // The answer's name, taken from a plain name or written from the query.
                let mut randomized = wire.clone();
                randomize_case(&mut randomized, || u64::MAX);
                assert_eq!(
                    q.clone().take_answer_name(&randomized),
                    answer_name(&randomized),
                    "{text}"
                );
            }
        }
        assert!(matches!(fqdn("h1.bench.example"), Some(QName::Plain(_))));
        assert!(fqdn("A.b").unwrap().same(&fqdn("a.B.").unwrap()));
        assert!(!fqdn("a.b").unwrap().same(&fqdn("a.b.c").unwrap()));
    }

    /// One pass over a name decides as a split into labels does.
    #[test]
    fn plain_names_in_one_pass() {
        let long = "x".repeat(63);
        let over = "x".repeat(64);
        let mut names: Vec<String> = [
            "",
            ".",
            "a",
            "a.",
            ".a",
            "a..b",
            "-",
            "a-",
            "-a",
            "a.-b",
            "a_b.c",
            "a b",
            "a*b",
            "0.1",
            "\\x",
            "\u{e9}t\u{e9}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend([
            long.clone(),
            over.clone(),
            format!("{long}.{long}"),
            format!("{long}.{over}"),
            format!("{over}.a"),
            format!("a.{long}."),
        ]);
        for b in 0..=255u8 {
            names.push(String::from_utf8_lossy(&[b'a', b, b'.', b, b'z']).into_owned());
        }
        for n in &names {
            let split = !n.is_empty() && labels_of(n).all(plain_label);
            assert_eq!(plain_name(n.as_bytes()), split, "{n:?}");
        }
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
        assert_eq!(
            parse_fqdn("Host.Example").unwrap().to_ascii(),
            "Host.Example."
        );
    }

    fn query(id: u16, name: &Name, kind: Kind) -> Vec<u8> {
        encode_query(id, name.iter(), kind, &mut Vec::new(), Vec::new()).unwrap()
    }

    /// The question a query carries, decoded by hickory-proto.
    fn asked(q: &[u8]) -> Query {
        Message::from_vec(q).unwrap().queries[0].clone()
    }

    #[test]
    fn queries_are_what_a_message_encodes() {
        for (name, kind) in [
            ("www.Example.com.", Kind::A),
            ("x.", Kind::Aaaa),
            ("1.2.0.192.in-addr.arpa.", Kind::Ptr),
            (".", Kind::A),
        ] {
            let name = Name::from_ascii(name).unwrap();
            let mut m = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
            m.metadata.recursion_desired = true;
            m.add_query(Query::query(name.clone(), kind.record_type()));
            assert_eq!(query(0xBEEF, &name, kind), m.to_vec().unwrap(), "{name}");
        }
        let mut scratch = Vec::new();
        let mut fresh = |id, name| {
            encode_query(
                id,
                &parse_fqdn(name).unwrap(),
                Kind::A,
                &mut scratch,
                Vec::new(),
            )
            .unwrap()
        };
        let (a, b) = (fresh(1, "a.example"), fresh(2, "b.example"));
        assert_eq!((a[1], b[1]), (1, 2), "scratch reused, queries apart");
        assert_eq!(asked(&a).name().to_ascii(), "a.example.");
        // A buffer given back holds the new query only.
        let long = parse_fqdn("a.much.longer.name.example").unwrap();
        let reused = encode_query(
            3,
            &parse_fqdn("c.x").unwrap(),
            Kind::A,
            &mut scratch,
            query(9, &long, Kind::Aaaa),
        );
        assert_eq!(
            reused.unwrap(),
            query(3, &parse_fqdn("c.x").unwrap(), Kind::A)
        );
    }

    #[test]
    fn case_randomisation_keeps_the_name() {
        let n = parse_fqdn("www.example.com").unwrap();
        let mut q = query(5, &n, Kind::A);
        randomize_case(&mut q, || u64::MAX);
        let flipped = asked(&q).name().clone();
        assert_eq!(flipped.to_ascii(), "WWW.EXAMPLE.COM.");
        assert_eq!(flipped, n, "the same name");
        assert!(!flipped.eq_case(&n), "in another case");
        // Random bits give each letter a random case; digits, hyphens and lengths are kept.
        let n = parse_fqdn("abcdefghijklmnopqrstuvwxyz-0123456789.example").unwrap();
        let mut q = query(5, &n, Kind::A);
        let mut rng = crate::rng::Rng::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            randomize_case(&mut q, || rng.u64());
            let got = asked(&q).name().clone();
            assert_eq!(got, n);
            seen.insert(got.to_ascii());
        }
        assert!(seen.len() > 15, "33 random bits repeat rarely: {seen:?}");
        assert_eq!(
            Message::from_vec(&q).unwrap().metadata.id,
            5,
            "the id is kept"
        );
    }

    /// The answer's name is `to_ascii`'s text, lowercased, without the final dot, whether or not
    /// the labels take the short way.
    #[test]
    fn answer_names_are_the_presentation_form() {
        let slow = |n: &Name| {
            let mut s = n.to_ascii().to_ascii_lowercase();
            if s.len() > 1 {
                s.pop();
            }
            s
        };
        let labels: [&[u8]; 12] = [
            b"www",
            b"Example",
            b"COM",
            b"a-b",
            b"-lead",
            b"_srv",
            b"*",
            b"dot.ted",
            b"sp ace",
            b"\\x",
            b"\xe9t\xe9",
            b"0",
        ];
        let name = |labels: &[&[u8]]| Name::from_labels(labels.iter().copied()).unwrap();
        let text = |n: &Name| answer_name(&query(1, n, Kind::A));
        for a in labels {
            for b in labels {
                let n = name(&[a, b, b"tail"]);
                assert_eq!(text(&n), slow(&n), "{n:?}");
            }
        }
        assert_eq!(text(&Name::root()), ".");
        assert_eq!(text(&name(&[b"Host", b"EXAMPLE"])), "host.example");
    }

    /// A reply counts only if it echoes the question exactly as sent: id, case, type, class.
    #[test]
    fn replies_must_echo_the_question_as_sent() {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::Record;
        let n = parse_fqdn("www.example.com").unwrap();
        let mut q = query(77, &n, Kind::A);
        randomize_case(&mut q, || u64::MAX);
        let reply = |id: u16, name: &Name, rt: RecordType| {
            let mut m = Message::new(id, MessageType::Response, OpCode::Query);
            m.add_query(Query::query(name.clone(), rt));
            m.add_answer(Record::from_rdata(
                name.clone(),
                60,
                RData::A(A([192, 0, 2, 9].into())),
            ));
            m.to_vec().unwrap()
        };
        let upper = parse_fqdn("WWW.EXAMPLE.COM").unwrap();
        match check_reply(&reply(77, &upper, RecordType::A), &q, Kind::A, false) {
            Verdict::Answer(a) => {
                assert_eq!(a.records, Records::Ipv4(vec![[192, 0, 2, 9].into()]));
                assert_eq!(answer_name(&q), "www.example.com");
            }
            v => panic!("the echo is the reply: {v:?}"),
        }
        let wrong_case = parse_fqdn("WWW.EXAMPLE.COm").unwrap();
        let longer = parse_fqdn("WWW.EXAMPLE.COM.X").unwrap();
        let shorter = parse_fqdn("WWW.EXAMPLE").unwrap();
        for bad in [
            reply(77, &n, RecordType::A),
            reply(77, &wrong_case, RecordType::A),
            reply(77, &longer, RecordType::A),
            reply(77, &shorter, RecordType::A),
            reply(78, &upper, RecordType::A),
            reply(77, &upper, RecordType::AAAA),
        ] {
            assert!(matches!(
                check_reply(&bad, &q, Kind::A, false),
                Verdict::Ignore
            ));
        }
    }

    /// An answer record belongs to the question whatever the case of its owner name (DNS names
    /// compare without case), and to no other name; a CNAME's target owns what follows it.
    #[test]
    fn answer_owners_compare_without_case() {
        use hickory_proto::rr::rdata::{A, CNAME};
        use hickory_proto::rr::Record;
        let asked = parse_fqdn("www.example.com").unwrap();
        let q = query(5, &asked, Kind::A);
        let reply = |records: &[(&str, RData)]| {
            let mut m = Message::new(5, MessageType::Response, OpCode::Query);
            m.add_query(Query::query(asked.clone(), RecordType::A));
            for (owner, data) in records {
                m.add_answer(Record::from_rdata(
                    parse_fqdn(owner).unwrap(),
                    60,
                    data.clone(),
                ));
            }
            m.to_vec().unwrap()
        };
        let a = |x: u8| RData::A(A([192, 0, 2, x].into()));
        let got = |bytes: &[u8]| match check_reply(bytes, &q, Kind::A, false) {
            Verdict::Answer(ans) => Some(ans.records),
            Verdict::Error(DnsError::NoData) => None,
            v => panic!("{v:?}"),
        };
        let v4 = |xs: &[u8]| {
            Some(Records::Ipv4(
                xs.iter().map(|&x| [192, 0, 2, x].into()).collect(),
            ))
        };
        assert_eq!(got(&reply(&[("WWW.Example.COM", a(1))])), v4(&[1]));
        assert_eq!(got(&reply(&[("www.example.org", a(2))])), None);
        assert_eq!(got(&reply(&[("example.com", a(3))])), None);
        assert_eq!(got(&reply(&[("x.www.example.com", a(4))])), None);
        let cname = RData::CNAME(CNAME(parse_fqdn("Alias.Example.NET").unwrap()));
        assert_eq!(
            got(&reply(&[
                ("www.EXAMPLE.com", cname),
                ("alias.example.net", a(5)),
                ("other.example.net", a(6)),
            ])),
            v4(&[5])
        );
    }

    /// Replies with random bytes changed, cut or appended: never a panic, and an accepted
    /// answer always has records.
    #[test]
    fn mangled_replies_never_panic() {
        use hickory_proto::rr::rdata::{A, CNAME};
        use hickory_proto::rr::Record;
        let name = parse_fqdn("www.example.com").unwrap();
        let mut m = Message::new(99, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        let alias = parse_fqdn("alias.example.com").unwrap();
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
        let queries = [Kind::A, Kind::Aaaa, Kind::Ptr].map(|k| (k, query(99, &name, k)));
        match check_reply(&good, &queries[0].1, Kind::A, false) {
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
            for (kind, q) in &queries {
                if let Verdict::Answer(a) = check_reply(&b, q, *kind, next() % 2 == 0) {
                    assert!(!a.records.is_empty());
                }
            }
        }
    }

    /// Replies of many shapes, whole and mangled: wherever the short way decides, it decides as
    /// the whole message decoded does; and it does decide the usual replies.
    #[test]
    fn the_short_way_decides_as_the_whole_message() {
        use hickory_proto::op::Edns;
        use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA};
        use hickory_proto::rr::Record;
        let asked = parse_fqdn("www.Example.com").unwrap();
        let other = parse_fqdn("other.example.com").unwrap();
        // Asked in upper case (as 0x20 might have made it), answered by owners in either case.
        let upper = Name::from_ascii(asked.to_ascii().to_ascii_uppercase()).unwrap();
        let queries = [Kind::A, Kind::Aaaa, Kind::Ptr].map(|k| (k, query(0x4242, &upper, k)));
        let a = |x: u8| RData::A(A([192, 0, 2, x].into()));
        let aaaa = |x: u16| RData::AAAA(AAAA([0x2001, 0xdb8, 0, 0, 0, 0, 0, x].into()));
        let ptr = |n: &str| RData::PTR(PTR(parse_fqdn(n).unwrap()));
        let soa = RData::SOA(SOA::new(other.clone(), other.clone(), 1, 2, 3, 4, 5));
        // (question type, answers, authority, EDNS with this high rcode, TC, rcode)
        type Shape = (
            RecordType,
            Vec<(Name, RData)>,
            Option<RData>,
            Option<u8>,
            bool,
            ResponseCode,
        );
        let ok = ResponseCode::NoError;
        let shapes: Vec<Shape> = vec![
            (
                RecordType::A,
                vec![(upper.clone(), a(1))],
                None,
                None,
                false,
                ok,
            ),
            (
                RecordType::A,
                vec![
                    (upper.clone(), a(1)),
                    (asked.clone(), a(2)),
                    (upper.clone(), a(3)),
                ],
                None,
                None,
                false,
                ok,
            ),
            (
                RecordType::AAAA,
                vec![(upper.clone(), aaaa(1))],
                None,
                None,
                false,
                ok,
            ),
            (
                RecordType::PTR,
                vec![
                    (upper.clone(), ptr("host.example")),
                    (upper.clone(), ptr("b\\.c.d")),
                ],
                None,
                None,
                false,
                ok,
            ),
            (RecordType::A, vec![], None, None, false, ok),
            (RecordType::A, vec![], Some(soa.clone()), None, false, ok),
            (
                RecordType::A,
                vec![],
                Some(soa.clone()),
                None,
                false,
                ResponseCode::NXDomain,
            ),
            (
                RecordType::A,
                vec![],
                None,
                None,
                false,
                ResponseCode::ServFail,
            ),
            (
                RecordType::A,
                vec![(upper.clone(), a(1))],
                None,
                Some(0),
                false,
                ok,
            ),
            (
                RecordType::A,
                vec![(upper.clone(), a(1))],
                None,
                Some(1),
                false,
                ok,
            ),
            (
                RecordType::A,
                vec![(upper.clone(), a(1))],
                None,
                None,
                true,
                ok,
            ),
            (
                RecordType::A,
                vec![(other.clone(), a(1))],
                None,
                None,
                false,
                ok,
            ),
            (
                RecordType::A,
                vec![(upper.clone(), aaaa(1))],
                None,
                None,
                false,
                ok,
            ),
            (
                RecordType::A,
                vec![
                    (upper.clone(), RData::CNAME(CNAME(other.clone()))),
                    (other.clone(), a(7)),
                ],
                None,
                None,
                false,
                ok,
            ),
        ];
        let mut replies = Vec::new();
        for (rt, answers, authority, edns, tc, rcode) in shapes {
            let mut m = Message::new(0x4242, MessageType::Response, OpCode::Query);
            m.metadata.truncation = tc;
            m.metadata.response_code = rcode;
            m.add_query(Query::query(upper.clone(), rt));
            for (owner, data) in answers {
                m.add_answer(Record::from_rdata(owner, 60, data));
            }
            if let Some(data) = authority {
                m.add_authority(Record::from_rdata(other.clone(), 30, data));
            }
            if let Some(high) = edns {
                let mut e = Edns::new();
                e.set_rcode_high(high);
                m.set_edns(e);
            }
            replies.push(m.to_vec().unwrap());
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // How many checks the short way decided, and how many of those were answers.
        let check = |b: &[u8], tcp: bool| {
            let (mut decided, mut answered) = (0, 0);
            for (kind, q) in &queries {
                if let Some(v) = check_plain(b, q, *kind, tcp) {
                    assert_eq!(v, check_message(b, q, *kind, tcp), "{b:02x?}");
                    decided += 1;
                    answered += usize::from(matches!(v, Verdict::Answer(_)));
                }
            }
            (decided, answered)
        };
        let mut answered = 0;
        for good in &replies {
            answered += check(good, false).1 + check(good, true).1;
        }
        // Four answers over UDP and TCP, and the truncated one over TCP.
        assert_eq!(answered, 9, "the usual answers are decided the short way");
        let mut decided = 0;
        for _ in 0..20_000 {
            let good = &replies[(next() as usize) % replies.len()];
            let mut b = good.clone();
            for _ in 0..=(next() % 3) {
                let i = (next() as usize) % b.len();
                match next() % 5 {
                    0 => b[i] = next() as u8,
                    1 => b.truncate(i),
                    2 => b.insert(i, next() as u8),
                    3 => b[i] ^= 0xC0,
                    _ => b[i] ^= 1 << (next() % 8),
                }
                if b.is_empty() {
                    break;
                }
            }
            decided += check(&b, next() % 2 == 0).0;
        }
        assert!(
            decided > 10_000,
            "mangled replies reach the short way: {decided}"
        );
    }

    #[test]
    fn the_fuzz_entry_point_reaches_answers() {
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::Record;
        let name = parse_fqdn("Fuzz.example").unwrap();
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
        let mut q = query(7, &parse_fqdn("abc.example").unwrap(), Kind::A);
        randomize_case(&mut q, || u64::MAX);
        let n = parse_fqdn("ABC.EXAMPLE").unwrap();
        assert!(asked(&q).name().eq_case(&n));
        // A reply to itself is not a reply: QR is clear.
        assert!(matches!(
            check_reply(&q.clone(), &q, Kind::A, false),
            Verdict::Ignore
        ));
    }
}

/// Entry points for the fuzz target (`fuzz/fuzz_targets/dns_reply.rs`); not part of the API.
pub mod fuzzing {
    use super::*;

    /// Checks `bytes` as a reply to the question it carries itself (so that the fuzzer reaches
    /// the answer's records) and to a fixed question, for every kind of lookup, over UDP and TCP;
    /// where the short way for the usual reply decides, it must decide as the whole message does.
    /// Returns how many of those checks accepted an answer, which always has records.
    pub fn check_reply_bytes(bytes: &[u8]) -> usize {
        let mut questions = vec![(0x1234, Name::from_ascii("www.Example.com.").expect("valid"))];
        if let Ok(m) = Message::from_vec(bytes) {
            if let Some(q) = m.queries.first() {
                questions.push((m.metadata.id, q.name().clone()));
            }
        }
        let mut accepted = 0;
        let mut scratch = Vec::new();
        for (id, name) in &questions {
            for kind in [Kind::A, Kind::Aaaa, Kind::Ptr] {
                let Some(query) = encode_query(*id, name.iter(), kind, &mut scratch, Vec::new())
                else {
                    continue;
                };
                for tcp in [false, true] {
                    if let Some(v) = check_plain(bytes, &query, kind, tcp) {
                        assert_eq!(v, check_message(bytes, &query, kind, tcp), "the short way");
                    }
                    if let Verdict::Answer(a) = check_reply(bytes, &query, kind, tcp) {
                        assert!(!a.records.is_empty(), "an answer without records");
                        accepted += 1;
                    }
                }
            }
        }
        accepted
    }
}
