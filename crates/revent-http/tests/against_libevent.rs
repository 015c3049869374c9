//! The same inputs through revent-http and through the system's libevent 2.1 (Debian's
//! libevent-dev), answer for answer: URI parsing in both modes (every component and the join),
//! the six checked setters in both modes, encoding, both decoders, query strings (alone and in a
//! whole URI) and HTML escaping. `libevent/oracle.c` is compiled at run
//! time and asked over a pipe.
//!
//! Ignored by default, since it needs a C compiler and libevent-dev; `.ci/run` runs it when the
//! Debian packages are there:
//!
//! ```text
//! cargo test -p revent-http --test against_libevent -- --ignored
//! ```
//!
//! The deviations revent-http documents are the only differences allowed: inputs with a NUL are not
//! sent for the C-string functions (libevent would read up to the NUL; revent refuses or keeps it),
//! and where libevent's value is a C string (`evhttp_decode_uri`, query values) it is compared with
//! revent's up to the first NUL.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use revent_http::encode::{decode_uri, encode_uri_with, uridecode};
use revent_http::html::html_escape;
use revent_http::query::{parse_query_bytes, parse_query_str_bytes, QueryError};
use revent_http::{Uri, UriFlags};

/// How many generated inputs of each kind.
const CASES: usize = 4000;

/// A request's input: its bytes in hex (nothing for the empty input).
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An answer's byte string: hex, or `""` for the empty string.
fn unhex(s: &str) -> Vec<u8> {
    if s == "\"\"" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn field(s: &str) -> Option<Vec<u8>> {
    (s != "-").then(|| unhex(s))
}

fn opt(s: Option<&str>) -> Option<Vec<u8>> {
    s.map(|s| s.as_bytes().to_vec())
}

fn until_nul(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// Whether libevent's answer to a Q or W request is revent's `ours`, its values up to any NUL.
fn same_query(ours: &Result<Vec<(String, Vec<u8>)>, QueryError>, theirs: &str) -> bool {
    let f: Vec<&str> = theirs.split(' ').collect();
    match (ours, f[0]) {
        (Err(_), "ERR") => true,
        (Ok(pairs), "OK") => {
            f.len() == 1 + 2 * pairs.len()
                && pairs.iter().enumerate().all(|(i, (k, v))| {
                    Some(k.as_bytes().to_vec()) == field(f[1 + 2 * i])
                        && Some(until_nul(v).to_vec()) == field(f[2 + 2 * i])
                })
        }
        _ => false,
    }
}

fn oracle() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = dir.join("revent-http-oracle");
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/libevent/oracle.c");
    let status = Command::new("cc")
        .args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-levent")
        .status()
        .expect("running cc");
    assert!(
        status.success(),
        "cannot build {}: is libevent-dev installed?",
        src.display()
    );
    exe
}

fn sample<S: Strategy>(runner: &mut TestRunner, s: &S, n: usize) -> Vec<S::Value> {
    (0..n)
        .map(|_| s.new_tree(runner).unwrap().current())
        .collect()
}

/// The setters compared, by the letter oracle.c knows them by.
const SETTERS: [char; 6] = ['s', 'u', 'h', 'p', 'q', 'f'];

/// Hand-picked corners: libevent's regress URIs and the edges of each check.
const CORNERS: &[&str] = &[
    "",
    "//",
    "http://",
    "http://www.test.com/?q=t%33est",
    "http://%77ww.test.com",
    "http://www.test.com:/",
    "http://www.test.com:",
    "http://:8000/",
    "http://8000/",
    "ftp://[::1]:999/?q=test",
    "ftp://[ff00::127.0.0.1]/?q=test",
    "ftp://[v99.not_(any:time)_soon]/?q=test",
    "scheme://user:pass@foo.com:42/?q=test&s=some+thing#fragment",
    "scheme://%75ser@foo.com/#frag@ment",
    "file:///some/path/to/the/file",
    "///some/path/to/the-file",
    "/s:ome/path/to/the-file?q=99#fred",
    "relative/path/with/co:lon",
    "bob?q=99&q2=q?33#fr?ed",
    "#fr?ed",
    "mailto:foo@bar",
    "http://www.test.com/ why hello",
    "http://www.test.com/why-hello%7",
    "http://www.test.com/foo?ba%r",
    "http://www.test.com/foo#ba%r",
    "h%3ttp://www.test.com/why-hello",
    "99:99/foo",
    "http://www.test.com:999x/",
    "http://[hello-there]/",
    "http://[::1]]/",
    "http://[::1/",
    "http://[/",
    "http://[]/",
    "http://[v5]/",
    "http://[v5X]/",
    "http://[v1.]/",
    "http://[V1.x]/",
    "http://[v5.fo%o]/",
    "http://f%0red@www.example.com/",
    "http://www.example.com:9999999999999999999999999999999999999/",
    "http://h:65535/",
    "http://h:65536/",
    "http://h:000000000000000000080/",
    "://www.example.com/",
    "http://u@:0/",
    "http://@h",
    "http://a@b@c/",
    "http:////x",
    "a:b:c",
    "http://[::ffff:1.2.3.4]/",
    "http://[1::2:3:4:5:6:7]/",
    "http://[1:2:3:4:5:6:7:8::]/",
    "http://[::1.02.3.4]/",
    "http://[::1.2.3]/",
    "http://[12345::]/",
    "http://[:::]/",
    "http://[0000000000000000000000000000000000000000000000000000000000::1]/",
    "http://[00000000000000000000000000000000000000000000000000000000000::1]/",
    "http://[fe80::1%25eth0]/",
    "/a#b#c",
    "/caf\u{e9}?\u{e9}#\u{e9}",
];

#[test]
#[ignore = "needs cc and libevent-dev: cargo test -p revent-http --test against_libevent -- --ignored"]
fn same_answers_as_libevent() {
    let mut runner = TestRunner::deterministic();
    let mut uris: Vec<String> = CORNERS.iter().map(|s| s.to_string()).collect();
    let mut groups = vec![("corners", uris.len())];
    uris.extend(sample(
        &mut runner,
        &"[a-zA-Z0-9:/?#\\[\\]@!$&'()*+,;=%._~ v\u{1}\u{e9}-]{0,40}",
        CASES,
    ));
    groups.push(("URI-like text", CASES));
    uris.extend(sample(
        &mut runner,
        &"(http|[a-z]{1,3})?(:)?(//([a-z%0-9:@]{0,6}@)?([a-z0-9.%!]{0,8}|\\[[0-9a-fA-FvV:.%]{0,24}\\])(:[0-9]{0,7})?)?(/[a-z%0-9:@ ]{0,5}){0,3}(\\?[a-z=&%+0-9?/ ]{0,10})?(#[a-z%0-9?#/ ]{0,6})?",
        CASES,
    ));
    groups.push(("URI-shaped", CASES));
    // IP literals: libevent reads them with its own parser, whose corners matter.
    uris.extend(sample(
        &mut runner,
        &proptest::prop_oneof![
            // Mostly well-formed: groups around one "::", an IPv4 tail with scanf's corners.
            r"http://\[(([0-9a-fA-F]{1,4}|0[xX][0-9a-f]{1,2}):){0,4}:(:[0-9a-fA-F]{1,5}){0,4}:?([0-9]{1,3}(\.[ +\t-]{0,2}[0-9]{1,11}){3})?\](:[0-9]{0,3})?/",
            // Anything near it.
            "http://\\[(::)?(([0-9a-fA-F]{1,4}|0[xX][0-9a-f]{1,2}|[0-9a-f]{5}|v)(::?)?){0,8}([0-9]{1,3}(\\.[ +\t-]{0,2}[0-9]{1,4}){2,4}[ %]?)?\\](:[0-9]{0,3})?/",
        ],
        CASES,
    ));
    groups.push(("IP literals", CASES));
    let queries = sample(&mut runner, &"[a-z=&%+0-9A-F? \u{e9}]{0,24}", CASES);
    let setter_inputs = sample(
        &mut runner,
        &proptest::prop_oneof![
            r"[a-zA-Z0-9:/?#\[\]@!$&'()*+,;=%._~ v\x01\x{e9}-]{0,16}",
            r"\[(v[0-9a-f]{0,2}\.?[a-z:!]{0,4}|[0-9a-fx:.]{0,14})\]?",
        ],
        CASES / 2,
    );
    let texts = sample(&mut runner, &"[a-z<>&\"'%+? \u{e9}\u{1}]{0,24}", CASES / 4);
    let bytes = sample(
        &mut runner,
        &proptest::collection::vec(1u8..=255, 0..24),
        CASES,
    );
    let with_nul = sample(
        &mut runner,
        &proptest::collection::vec(proptest::num::u8::ANY, 0..24),
        CASES / 4,
    );

    let mut requests = String::new();
    for u in &uris {
        requests.push_str(&format!(
            "P0 {}\nP1 {}\n",
            hex(u.as_bytes()),
            hex(u.as_bytes())
        ));
    }
    for q in &queries {
        let h = hex(q.as_bytes());
        let whole = hex(format!("/p?{q}").as_bytes());
        requests.push_str(&format!("Q {h}\nW {whole}\n"));
    }
    for u in &uris {
        requests.push_str(&format!("W {}\n", hex(u.as_bytes())));
    }
    for v in &setter_inputs {
        for part in SETTERS {
            for f in 0..2 {
                requests.push_str(&format!("S{part}{f} {}\n", hex(v.as_bytes())));
            }
        }
    }
    for t in &texts {
        requests.push_str(&format!("H {}\n", hex(t.as_bytes())));
    }
    for b in &bytes {
        let h = hex(b);
        requests.push_str(&format!("E0 {h}\nE1 {h}\nU0 {h}\nU1 {h}\nD {h}\n"));
    }
    for b in &with_nul {
        requests.push_str(&format!("E0 {}\n", hex(b)));
    }

    let mut child = Command::new(oracle())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the oracle");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(requests.as_bytes()).unwrap());
    let mut answers = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap());
    let mut next = || answers.next().expect("an answer a request");

    let mut diffs = Vec::new();
    // How many of each group each mode accepted.
    let mut accepted = vec![[0usize; 2]; groups.len()];
    let group_of = |mut k: usize| {
        groups
            .iter()
            .position(|&(_, n)| {
                let here = k < n;
                k = k.saturating_sub(n);
                here
            })
            .unwrap()
    };
    for (k, u) in uris.iter().enumerate() {
        let g = group_of(k);
        for (i, flags) in [UriFlags::empty(), UriFlags::NONCONFORMANT]
            .into_iter()
            .enumerate()
        {
            let theirs = next();
            let f: Vec<&str> = theirs.split(' ').collect();
            let ours = Uri::parse_with(u, flags);
            let same = match (&ours, f[0]) {
                (Err(_), "ERR") => true,
                (Ok(uri), "OK") => {
                    accepted[g][i] += 1;
                    let port = uri.port().map_or(-1, i32::from);
                    (opt(uri.scheme()), opt(uri.userinfo()), opt(uri.host()))
                        == (field(f[1]), field(f[2]), field(f[3]))
                        && port.to_string() == f[4]
                        && (opt(uri.path()), opt(uri.query()), opt(uri.fragment()))
                            == (field(f[5]), field(f[6]), field(f[7]))
                        && Some(uri.join().into_bytes()) == field(f[8])
                }
                _ => false,
            };
            if !same {
                diffs.push(format!(
                    "parse {u:?} {flags:?}: ours {ours:?}, libevent {theirs}"
                ));
            }
        }
    }
    for q in &queries {
        let ours = parse_query_str_bytes(q);
        let theirs = next();
        if !same_query(&ours, &theirs) {
            diffs.push(format!("query {q:?}: ours {ours:?}, libevent {theirs}"));
        }
        let whole = format!("/p?{q}");
        let ours = parse_query_bytes(&whole);
        let theirs = next();
        if !same_query(&ours, &theirs) {
            diffs.push(format!(
                "parse_query {whole:?}: ours {ours:?}, libevent {theirs}"
            ));
        }
    }
    for u in &uris {
        let ours = parse_query_bytes(u);
        let theirs = next();
        if !same_query(&ours, &theirs) {
            diffs.push(format!(
                "parse_query {u:?}: ours {ours:?}, libevent {theirs}"
            ));
        }
    }
    let mut set = 0;
    for v in &setter_inputs {
        for part in SETTERS {
            for flags in [UriFlags::empty(), UriFlags::NONCONFORMANT] {
                let mut uri = Uri::new();
                uri.set_flags(flags);
                let value = Some(v.as_str());
                let ours = match part {
                    's' => uri.set_scheme(value),
                    'u' => uri.set_userinfo(value),
                    'h' => uri.set_host(value),
                    'p' => uri.set_path(value),
                    'q' => uri.set_query(value),
                    _ => uri.set_fragment(value),
                };
                set += usize::from(ours.is_ok());
                let theirs = next();
                if (ours.is_ok() && theirs != "0") || (ours.is_err() && theirs != "-1") {
                    diffs.push(format!(
                        "set {part} {v:?} {flags:?}: ours {ours:?}, libevent {theirs}"
                    ));
                }
            }
        }
    }
    for t in &texts {
        let theirs = unhex(&next());
        if html_escape(t).as_bytes() != theirs {
            diffs.push(format!(
                "html_escape {t:?}: libevent {:?}",
                String::from_utf8_lossy(&theirs)
            ));
        }
    }
    for b in &bytes {
        for (name, ours, full) in [
            ("uriencode 0", encode_uri_with(b, false).into_bytes(), true),
            ("uriencode 1", encode_uri_with(b, true).into_bytes(), true),
            ("uridecode 0", uridecode(b, false), true),
            ("uridecode 1", uridecode(b, true), true),
            ("decode_uri", decode_uri(b), false),
        ] {
            let theirs = unhex(&next());
            let ours = if full { &ours[..] } else { until_nul(&ours) };
            if ours != theirs {
                diffs.push(format!("{name} {b:?}: ours {ours:?}, libevent {theirs:?}"));
            }
        }
    }
    for b in &with_nul {
        let theirs = unhex(&next());
        if encode_uri_with(b, false).as_bytes() != theirs {
            diffs.push(format!("uriencode with NUL {b:?}"));
        }
    }
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        diffs.is_empty(),
        "{} differences, the first:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(20)].join("\n")
    );
    // The generators must reach acceptance too, or the comparison says little about it.
    for (&(name, n), &[strict, nonconformant]) in groups.iter().zip(&accepted) {
        eprintln!("{name}: {n} URIs, {strict} accepted strictly, {nonconformant} nonconformant");
        assert!(
            strict * 20 > n && nonconformant >= strict,
            "too few {name} accepted"
        );
    }
    let parsed = queries
        .iter()
        .filter(|q| parse_query_str_bytes(q).is_ok())
        .count();
    assert!(parsed * 10 > queries.len(), "queries parsed: {parsed}");
    let calls = setter_inputs.len() * SETTERS.len() * 2;
    assert!(
        set * 10 > calls && set * 10 < calls * 9,
        "setters took {set} of {calls}"
    );
    eprintln!(
        "{calls} setter calls ({set} taken), {} queries ({parsed} parsed; each alone and in a URI), {} texts, {} byte strings: no difference",
        queries.len(),
        texts.len(),
        bytes.len() + with_nul.len()
    );
}
