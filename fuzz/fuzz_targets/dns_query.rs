//! revent-dns's server on untrusted input: the bytes as one UDP datagram and as a TCP stream of
//! length-prefixed messages, each parsed as a query, answered with records made from its own
//! questions (A, AAAA, CNAME, PTR, TXT) and encoded for UDP (truncated to the client's limit) and
//! TCP, through `revent_dns::server_fuzzing::serve_bytes`, the code the server port runs. Nothing
//! may panic; every answer must decode, carry the query's id, and fit its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    revent_dns::server_fuzzing::serve_bytes(data);
});
