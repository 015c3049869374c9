//! The server's side of the wire, through hickory-proto: what an incoming message is worth
//! (a query to hand to the callback, an error to send back at once, or nothing), how an answer
//! is encoded (truncated to fit a UDP client), and how a TCP stream splits into messages.
//!
//! Everything here is a pure function of bytes, so the fuzz target drives exactly the code the
//! port runs.

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// A UDP answer always may be this long (RFC 1035), whatever the client's EDNS size says.
pub(crate) const UDP_MIN: usize = 512;
/// The most a UDP answer is ever made, even if the client offers more: what the port's receive
/// buffer and a typical path carry without fragmenting badly.
pub(crate) const UDP_MAX: usize = 4096;
/// The EDNS payload size the server announces in its answers.
pub(crate) const ADVERTISED_PAYLOAD: u16 = 4096;

/// Header flag bits as they sit in the 16-bit flags word (what libevent's
/// `evdns_server_request.flags` holds).
pub(crate) const FLAG_QR: u16 = 0x8000;
pub(crate) const FLAG_AA: u16 = 0x0400;
pub(crate) const FLAG_TC: u16 = 0x0200;
pub(crate) const FLAG_RD: u16 = 0x0100;
pub(crate) const FLAG_RA: u16 = 0x0080;

/// A query the callback gets to answer.
#[derive(Clone, Debug)]
pub(crate) struct ParsedQuery {
    pub(crate) id: u16,
    /// The query's header flags word.
    pub(crate) flags: u16,
    /// The questions, with their names exactly as received (case kept: resolvers that use 0x20
    /// case randomisation check it).
    pub(crate) queries: Vec<Query>,
    /// The client's EDNS UDP payload size, if the query had an OPT record.
    pub(crate) edns: Option<u16>,
    /// The question section's bytes as received, when the query has one question written
    /// without compression: an answer repeats them as they are (see [`encode_plain`]).
    pub(crate) question_wire: Option<Vec<u8>>,
}

impl ParsedQuery {
    /// How long a UDP answer to this query may be.
    pub(crate) fn udp_limit(&self) -> usize {
        match self.edns {
            Some(p) => usize::from(p).clamp(UDP_MIN, UDP_MAX),
            None => UDP_MIN,
        }
    }
}

/// What an incoming message is worth.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// Nothing to answer: too short to have a header, or a response (answering responses is
    /// how two servers end up in a loop).
    Drop,
    /// An answer to send at once (FORMERR for garbage, NOTIMP for another opcode).
    Reply(Vec<u8>),
    /// A query for the callback.
    Query(ParsedQuery),
}

fn flags_word(m: &hickory_proto::op::Metadata) -> u16 {
    let mut f = 0;
    if m.message_type == MessageType::Response {
        f |= FLAG_QR;
    }
    f |= u16::from(u8::from(m.op_code) & 0xf) << 11;
    if m.authoritative {
        f |= FLAG_AA;
    }
    if m.truncation {
        f |= FLAG_TC;
    }
    if m.recursion_desired {
        f |= FLAG_RD;
    }
    if m.recursion_available {
        f |= FLAG_RA;
    }
    if m.authentic_data {
        f |= 0x0020;
    }
    if m.checking_disabled {
        f |= 0x0010;
    }
    f | u16::from(m.response_code.low())
}

/// Decides what `bytes`, one message from a client, are worth.
pub(crate) fn parse_query(bytes: &[u8]) -> Incoming {
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return Incoming::Drop;
    };
    let md = header.metadata;
    if md.message_type == MessageType::Response {
        return Incoming::Drop;
    }
    let error = |code: ResponseCode| {
        let mut r = Message::error_msg(md.id, md.op_code, code);
        r.metadata.recursion_desired = md.recursion_desired;
        r.to_vec().map_or(Incoming::Drop, Incoming::Reply)
    };
    if md.op_code != OpCode::Query {
        return error(ResponseCode::NotImp);
    }
    let Ok(m) = Message::from_vec(bytes) else {
        // Garbage after a header: QDCOUNT lies, compression loops, names too long, bad records.
        return error(ResponseCode::FormErr);
    };
    if m.queries.is_empty() {
        return error(ResponseCode::FormErr);
    }
    let question_wire = match m.queries.len() {
        1 => plain_question(bytes).map(<[u8]>::to_vec),
        _ => None,
    };
    Incoming::Query(ParsedQuery {
        id: md.id,
        flags: flags_word(&m.metadata),
        queries: m.queries,
        edns: m.edns.as_ref().map(Edns::max_payload),
        question_wire,
    })
}

/// The bytes of the first question of `msg` (a whole message that decoded), if its name has no
/// compression pointer: labels, the root, type and class.
fn plain_question(msg: &[u8]) -> Option<&[u8]> {
    let mut at = 12;
    loop {
        let len = usize::from(*msg.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a pointer (or a reserved label type)
        }
        at += 1 + len;
    }
    msg.get(12..at + 5)
}

/// The records an answer carries, by section.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sections {
    pub(crate) answers: Vec<Record>,
    pub(crate) authorities: Vec<Record>,
    pub(crate) additionals: Vec<Record>,
}

impl Sections {
    pub(crate) fn len(&self) -> usize {
        self.answers.len() + self.authorities.len() + self.additionals.len()
    }
}

fn skeleton(q: &ParsedQuery, flags: u16, rcode: u8) -> Message {
    let mut m = Message::new(q.id, MessageType::Response, OpCode::Query);
    let md = &mut m.metadata;
    md.recursion_desired = q.flags & FLAG_RD != 0;
    md.authoritative = flags & FLAG_AA != 0;
    md.recursion_available = flags & FLAG_RA != 0;
    md.response_code = ResponseCode::from_low(rcode & 0xf);
    m.queries = q.queries.clone();
    if q.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(ADVERTISED_PAYLOAD);
        m.edns = Some(e);
    }
    m
}

/// The answer to `q`: response code `rcode` (the low 4 bits), AA and RA from `flags` (the
/// other bits are the query's or fixed), the records of `s`. At most `limit` bytes: a longer
/// answer is sent as its question alone with TC set, so that the client asks again over TCP.
/// An answer that cannot be encoded at all (over 65535 bytes) becomes SERVFAIL.
pub(crate) fn encode_answer(
    q: &ParsedQuery,
    flags: u16,
    rcode: u8,
    s: Sections,
    limit: usize,
) -> Vec<u8> {
    match encode_plain(q, flags, rcode, &s, limit) {
        Some(bytes) => bytes,
        None => encode_message(q, flags, rcode, s, limit),
    }
}

/// [`encode_answer`] through a whole hickory-proto `Message`: every shape of answer.
fn encode_message(q: &ParsedQuery, flags: u16, rcode: u8, s: Sections, limit: usize) -> Vec<u8> {
    let mut m = skeleton(q, flags, rcode);
    m.answers = s.answers;
    m.authorities = s.authorities;
    m.additionals = s.additionals;
    let full = m.to_vec();
    if let Ok(bytes) = &full {
        if bytes.len() <= limit {
            return full.expect("checked Ok");
        }
    }
    let mut small = skeleton(q, flags, rcode);
    if full.is_ok() {
        small.metadata.truncation = true;
    } else {
        small.metadata.response_code = ResponseCode::ServFail;
    }
    match small.to_vec() {
        Ok(b) if b.len() <= limit => b,
        // Even the questions do not fit (many long names): the header alone.
        _ => {
            let mut bare = Message::new(q.id, MessageType::Response, OpCode::Query);
            bare.metadata.truncation = full.is_ok();
            bare.metadata.response_code = small.metadata.response_code;
            bare.metadata.recursion_desired = q.flags & FLAG_RD != 0;
            bare.to_vec().unwrap_or_default()
        }
    }
}

/// The usual answer written directly, byte for byte what hickory-proto makes of it (a test and
/// the fuzz target hold the two to that): one question repeated as received, A and AAAA records
/// owned by the question's very name (case included, so a compression pointer to it), no other
/// sections, an OPT record when the query had one, and all within `limit`. `None` for anything
/// else (found while writing), which goes through a whole `Message`.
fn encode_plain(
    q: &ParsedQuery,
    flags: u16,
    rcode: u8,
    s: &Sections,
    limit: usize,
) -> Option<Vec<u8>> {
    let question = q.question_wire.as_deref()?;
    if !s.authorities.is_empty() || !s.additionals.is_empty() {
        return None;
    }
    let asked = q.queries.first()?.name();
    // The owner is a pointer to the question's name, except the root, which is its one byte.
    let owner: &[u8] = if asked.is_root() { &[0] } else { &[0xc0, 12] };
    let answers = u16::try_from(s.answers.len()).ok()?;
    // At most: the header, the question, each record with an AAAA's 16 bytes, the OPT record.
    let mut out =
        Vec::with_capacity(12 + question.len() + s.answers.len() * (owner.len() + 26) + 11);
    let word =
        FLAG_QR | (q.flags & FLAG_RD) | (flags & (FLAG_AA | FLAG_RA)) | u16::from(rcode & 0xf);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&word.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    out.extend_from_slice(question);
    for r in &s.answers {
        if !same_spelling(&r.name, asked) {
            return None;
        }
        out.extend_from_slice(owner);
        out.extend_from_slice(&u16::from(r.record_type()).to_be_bytes());
        out.extend_from_slice(&u16::from(r.dns_class).to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        match &r.data {
            RData::A(a) => rdata(&mut out, &a.0.octets()),
            RData::AAAA(a) => rdata(&mut out, &a.0.octets()),
            _ => return None,
        }
    }
    if q.edns.is_some() {
        // OPT: the root, type 41, the payload size as class, extended rcode, version and
        // flags all zero, no options.
        out.push(0);
        out.extend_from_slice(&41u16.to_be_bytes());
        out.extend_from_slice(&ADVERTISED_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0; 6]);
    }
    (out.len() <= limit).then_some(out)
}

/// A record's data with its length in front.
fn rdata(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Whether two names have the same labels, byte for byte.
fn same_spelling(a: &Name, b: &Name) -> bool {
    a.is_fqdn() == b.is_fqdn() && a.num_labels() == b.num_labels() && a.iter().eq(b.iter())
}

/// The next message in a TCP stream's buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// More bytes are needed.
    Incomplete,
    /// A message: `buf[2..end]`; the next one starts at `end`.
    Message { end: usize },
    /// A zero-length message: nothing a client sends; the connection is closed.
    Bad,
}

/// Splits off the next length-prefixed message (RFC 1035 4.2.2).
pub(crate) fn next_frame(buf: &[u8]) -> Frame {
    let [a, b, ..] = *buf else {
        return Frame::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([a, b]));
    if len == 0 {
        return Frame::Bad;
    }
    if buf.len() < 2 + len {
        return Frame::Incomplete;
    }
    Frame::Message { end: 2 + len }
}

/// `bytes` with the 2-byte length prefix of TCP in front (the caller keeps it under 65536).
pub(crate) fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Entry points for the fuzz target (`fuzz/fuzz_targets/dns_query.rs`); not part of the API.
pub mod fuzzing {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, TXT};
    use hickory_proto::rr::{Name, RData, RecordType};

    /// Handles `bytes` as the port does: as one UDP datagram, and as a TCP stream of
    /// length-prefixed messages. Each query is answered with records made from its own
    /// questions (A, AAAA, CNAME, PTR, TXT as asked), encoded for UDP and for TCP, and every
    /// answer is checked: it decodes, it is a response with the query's id, and a UDP answer
    /// fits the client's limit. Returns how many answers were made.
    pub fn serve_bytes(bytes: &[u8]) -> usize {
        handle(bytes, true) + serve_stream(bytes)
    }

    /// `bytes` as a TCP stream: each complete length-prefixed message handled in turn.
    pub(super) fn serve_stream(bytes: &[u8]) -> usize {
        let mut made = 0;
        let mut rest = bytes;
        while let Frame::Message { end } = next_frame(rest) {
            made += handle(&rest[2..end], false);
            rest = &rest[end..];
        }
        made
    }

    fn handle(msg: &[u8], udp: bool) -> usize {
        match parse_query(msg) {
            Incoming::Drop => 0,
            Incoming::Reply(r) => {
                let m = Message::from_vec(&r).expect("an error answer decodes");
                assert_eq!(m.metadata.message_type, MessageType::Response);
                assert!(r.len() <= UDP_MIN, "an error answer is small");
                1
            }
            Incoming::Query(q) => {
                let mut s = Sections::default();
                for query in &q.queries {
                    let name = query.name().clone();
                    let rdata = match query.query_type() {
                        RecordType::A => RData::A(A::new(192, 0, 2, 1)),
                        RecordType::AAAA => RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                        RecordType::CNAME => RData::CNAME(CNAME(name.clone())),
                        RecordType::PTR => RData::PTR(PTR(Name::root())),
                        _ => RData::TXT(TXT::new(vec![name.to_ascii(); 3])),
                    };
                    s.answers.push(Record::from_rdata(name, 60, rdata));
                }
                let limit = if udp { q.udp_limit() } else { 65535 };
                for rcode in [0u8, 3] {
                    if let Some(plain) = encode_plain(&q, FLAG_AA, rcode, &s, limit) {
                        let full = encode_message(&q, FLAG_AA, rcode, s.clone(), limit);
                        assert_eq!(plain, full, "the short way and hickory-proto differ");
                    }
                    let a = encode_answer(&q, FLAG_AA, rcode, s.clone(), limit);
                    assert!(a.len() <= limit, "an answer over its limit");
                    let m = Message::from_vec(&a).expect("an answer decodes");
                    assert_eq!(m.metadata.id, q.id);
                    assert_eq!(m.metadata.message_type, MessageType::Response);
                    if !udp {
                        let framed = frame(&a);
                        assert_eq!(next_frame(&framed), Frame::Message { end: framed.len() });
                    }
                }
                1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, AAAA, TXT};
    use hickory_proto::rr::{Name, RData, RecordType};

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    #[test]
    fn a_query_is_parsed_with_its_case() {
        let Incoming::Query(q) = parse_query(&query("WwW.Example.COM.", RecordType::A)) else {
            panic!("a query");
        };
        assert_eq!(q.id, 0x4242);
        assert_eq!(q.flags, FLAG_RD);
        assert_eq!(q.queries[0].name().to_ascii(), "WwW.Example.COM.");
        assert_eq!(q.udp_limit(), 512);
    }

    #[test]
    fn responses_and_short_datagrams_are_dropped() {
        let mut r = query("a.example.", RecordType::A);
        r[2] |= 0x80;
        assert!(matches!(parse_query(&r), Incoming::Drop));
        assert!(matches!(parse_query(&r[..11]), Incoming::Drop));
        assert!(matches!(parse_query(b""), Incoming::Drop));
    }

    #[test]
    fn garbage_after_a_header_is_formerr() {
        // QDCOUNT says 5, one question follows.
        let mut q = query("a.example.", RecordType::A);
        q[5] = 5;
        let Incoming::Reply(r) = parse_query(&q) else {
            panic!("FORMERR");
        };
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        // A name that points at itself.
        let mut looped = q[..12].to_vec();
        looped[5] = 1;
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(parse_query(&looped), Incoming::Reply(_)));
        // No question at all.
        let mut none = q[..12].to_vec();
        none[5] = 0;
        assert!(matches!(parse_query(&none), Incoming::Reply(_)));
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let mut q = query("a.example.", RecordType::A);
        q[2] = (q[2] & !0x78) | (2 << 3); // STATUS
        let Incoming::Reply(r) = parse_query(&q) else {
            panic!("NOTIMP");
        };
        assert_eq!(
            Message::from_vec(&r).unwrap().metadata.response_code,
            ResponseCode::NotImp
        );
    }

    #[test]
    fn big_answers_are_truncated_for_udp_only() {
        let Incoming::Query(q) = parse_query(&query("big.example.", RecordType::A)) else {
            panic!("a query");
        };
        let mut s = Sections::default();
        for i in 0..100u8 {
            s.answers.push(Record::from_rdata(
                Name::from_ascii("big.example.").unwrap(),
                60,
                RData::A(A::new(10, 0, 0, i)),
            ));
        }
        let udp = encode_answer(&q, 0, 0, s.clone(), q.udp_limit());
        let m = Message::from_vec(&udp).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        assert_eq!(m.queries, q.queries);
        let tcp = encode_answer(&q, 0, 0, s, 65535);
        let m = Message::from_vec(&tcp).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 100);
    }

    /// The usual answer written directly is hickory-proto's, byte for byte, in every variation
    /// of the query and answer it takes; the shapes it leaves alone go the long way.
    #[test]
    fn plain_answers_are_hickorys_bytes() {
        let mut plain = 0;
        for name in ["WwW.ExAmple.COM.", "a.", "h123.bench.example.", "."] {
            for t in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                for edns in [None, Some(512u16), Some(1232), Some(65000)] {
                    for (rd, cd) in [(false, false), (true, false), (true, true)] {
                        let mut m = Message::new(0xbeef, MessageType::Query, OpCode::Query);
                        m.metadata.recursion_desired = rd;
                        m.metadata.checking_disabled = cd;
                        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
                        if let Some(p) = edns {
                            let mut e = Edns::new();
                            e.set_max_payload(p);
                            m.edns = Some(e);
                        }
                        let Incoming::Query(q) = parse_query(&m.to_vec().unwrap()) else {
                            panic!("a query");
                        };
                        assert!(q.question_wire.is_some());
                        let owner = q.queries[0].name().clone();
                        for n in 0..4u8 {
                            let mut s = Sections::default();
                            for i in 0..n {
                                let data = if i % 2 == 0 {
                                    RData::A(A::new(10, 0, 0, i))
                                } else {
                                    RData::AAAA(AAAA::new(0xfd00, 0, 0, 0, 0, 0, 0, i.into()))
                                };
                                s.answers.push(Record::from_rdata(owner.clone(), 300, data));
                            }
                            for (flags, rcode) in [(0, 0), (FLAG_AA, 3), (FLAG_RA, 2), (0xffff, 5)]
                            {
                                let limit = q.udp_limit();
                                let full = encode_message(&q, flags, rcode, s.clone(), limit);
                                if let Some(p) = encode_plain(&q, flags, rcode, &s, limit) {
                                    assert_eq!(p, full, "{name} {t} {edns:?} {n} {flags:x}");
                                    plain += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(
            plain,
            4 * 3 * 4 * 3 * 4 * 4,
            "every variation took the short way"
        );
        // What it leaves alone: another owner (case counts), another type, a compressed question.
        let Incoming::Query(q) = parse_query(&query("a.example.", RecordType::A)) else {
            panic!("a query");
        };
        let other = |owner: &str, data: RData| {
            let mut s = Sections::default();
            s.answers.push(Record::from_rdata(
                Name::from_ascii(owner).unwrap(),
                60,
                data,
            ));
            encode_plain(&q, 0, 0, &s, 512)
        };
        assert!(other("a.example.", RData::A(A::new(1, 2, 3, 4))).is_some());
        assert!(other("A.example.", RData::A(A::new(1, 2, 3, 4))).is_none());
        assert!(other("b.example.", RData::A(A::new(1, 2, 3, 4))).is_none());
        assert!(other("a.example.", RData::TXT(TXT::new(vec!["x".into()]))).is_none());
        // Two questions (the second's name a pointer to the first's): the long way. A first
        // question cannot be compressed at all (a pointer must look back), so one question
        // always has its bytes.
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("a.example.").unwrap(),
            RecordType::A,
        ));
        m.add_query(Query::query(
            Name::from_ascii("a.example.").unwrap(),
            RecordType::AAAA,
        ));
        let Incoming::Query(q) = parse_query(&m.to_vec().unwrap()) else {
            panic!("a query of two questions");
        };
        assert!(q.question_wire.is_none());
    }

    #[test]
    fn frames() {
        assert_eq!(next_frame(b""), Frame::Incomplete);
        assert_eq!(next_frame(b"\x00"), Frame::Incomplete);
        assert_eq!(next_frame(b"\x00\x00"), Frame::Bad);
        assert_eq!(next_frame(b"\x00\x02a"), Frame::Incomplete);
        assert_eq!(next_frame(b"\x00\x02abX"), Frame::Message { end: 4 });
        assert_eq!(frame(b"ab"), b"\x00\x02ab");
    }

    #[test]
    fn the_fuzz_entry_point_answers() {
        let q = query("fuzz.example.", RecordType::TXT);
        assert_eq!(fuzzing::serve_bytes(&q), 1);
        assert_eq!(fuzzing::serve_stream(&q), 0, "not framed");
        assert_eq!(fuzzing::serve_stream(&frame(&q)), 1);
        let mut two = frame(&q);
        two.extend(frame(&query("x.example.", RecordType::AAAA)));
        assert_eq!(fuzzing::serve_stream(&two), 2);
        two.extend(b"\x00\x00");
        two.extend(frame(&q));
        assert_eq!(fuzzing::serve_stream(&two), 2, "nothing after a bad frame");
    }
}
