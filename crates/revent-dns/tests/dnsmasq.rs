//! The resolver against Debian's dnsmasq (package `dnsmasq-base`), answering from a hosts file on
//! 127.0.0.1 and a port of its own. Skipped with a note when dnsmasq is missing, except in CI
//! (`CI=true`), where that is a failure.

use revent::EventBase;
use revent_dns::{DnsError, Outcome, ResolvConf, Resolver};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// dnsmasq, killed on drop, then its files removed.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    // A port free for both UDP and TCP right now (dnsmasq binds both).
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start(hosts: &str) -> Option<Dnsmasq> {
    if !Path::new(DNSMASQ).exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{DNSMASQ} is missing: CI must install dnsmasq-base");
        }
        eprintln!("note: {DNSMASQ} not installed (apt-get install dnsmasq-base); skipping");
        return None;
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("revent-dns-dnsmasq-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let hosts_file = dir.0.join("hosts");
    std::fs::write(&hosts_file, hosts).unwrap();
    // The port may be taken between the check and dnsmasq's bind: try a few.
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(DNSMASQ)
            .args([
                "--no-daemon",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                &format!("--addn-hosts={}", hosts_file.display()),
                "--conf-file=/dev/null",
                // Names under .test that the hosts file lacks are NXDOMAIN, not forwarded.
                "--local=/test/",
                "--user=root",
                "--pid-file",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = KillOnDrop(Some(child));
        if wait_ready(child.0.as_mut().unwrap(), addr) {
            return Some(Dnsmasq {
                child: child.0.take().unwrap(),
                addr,
                _dir: dir,
            });
        }
    }
    panic!("dnsmasq did not start (5 tries)");
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits until dnsmasq answers a query (or exits).
fn wait_ready(child: &mut Child, addr: SocketAddr) -> bool {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // A query for "ready.test" A, id 0x1234.
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x05ready\x04test\x00\x00\x01\x00\x01");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let _ = probe.send_to(&q, addr);
        let mut buf = [0u8; 512];
        if let Ok((n, _)) = probe.recv_from(&mut buf) {
            if n >= 2 && buf[..2] == [0x12, 0x34] {
                return true;
            }
        }
    }
    false
}

#[test]
fn resolves_against_dnsmasq() {
    let Some(server) = start(
        "192.0.2.10 web.test web\n\
         2001:db8::10 web.test\n\
         192.0.2.11 mail.test\n",
    ) else {
        return;
    };
    let mut base = EventBase::new().unwrap();
    let conf = ResolvConf::new()
        .with_nameserver(server.addr)
        .with_search_domain("test")
        .with_timeout(Duration::from_secs(2));
    let resolver = Resolver::new(conf);
    let results: Rc<RefCell<Vec<(&str, Outcome)>>> = Default::default();
    for (tag, kind, name) in [
        ("a", 4, "web.test"),
        ("aaaa", 6, "web.test"),
        ("search", 4, "mail"),
        ("nx", 4, "nothere.test"),
    ] {
        let r = results.clone();
        let cb = move |_: &mut EventBase, o: Outcome| r.borrow_mut().push((tag, o));
        if kind == 4 {
            resolver.resolve_ipv4(&mut base, name, cb);
        } else {
            resolver.resolve_ipv6(&mut base, name, cb);
        }
    }
    let r = results.clone();
    resolver.resolve_reverse(&mut base, [192, 0, 2, 11].into(), move |_, o| {
        r.borrow_mut().push(("ptr", o))
    });
    let watchdog = base.new_timer(|base, _| base.loopbreak());
    base.add(watchdog, Some(Duration::from_secs(30))).unwrap();
    while resolver.pending() > 0 && !base.got_break() {
        base.run(revent::LoopFlags::ONCE).unwrap();
    }
    assert!(!base.got_break(), "dnsmasq did not answer in time");

    let results = results.take();
    let get = |tag: &str| results.iter().find(|r| r.0 == tag).unwrap().1.clone();
    assert_eq!(get("a").unwrap().addrs(), [IpAddr::from([192, 0, 2, 10])]);
    assert_eq!(
        get("aaaa").unwrap().addrs(),
        ["2001:db8::10".parse::<IpAddr>().unwrap()]
    );
    let mail = get("search").unwrap();
    assert_eq!(
        (mail.name.as_str(), mail.addrs()),
        ("mail.test", vec![IpAddr::from([192, 0, 2, 11])])
    );
    assert_eq!(get("nx"), Err(DnsError::NotExist));
    assert_eq!(get("ptr").unwrap().names(), ["mail.test"]);
}
