//! revent-dns's handling of untrusted input: a reply datagram checked against questions (its own
//! and a fixed one, for A, AAAA and PTR, over UDP and TCP), and the same bytes read as
//! `resolv.conf` and hosts-file text. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    revent_dns::fuzzing::check_reply_bytes(data);
    let text = String::from_utf8_lossy(data);
    let conf = revent_dns::ResolvConf::parse(&text);
    assert!(conf.nameservers().len() <= revent_dns::MAX_NAMESERVERS);
    let hosts = revent_dns::Hosts::parse(&text);
    let _ = hosts.lookup("localhost");
});
