//! `dns`: lookups of distinct names against a local server, revent-dns vs C libevent's evdns vs
//! hickory-resolver.
//!
//! The server runs in a process of its own pinned to one CPU: revent's own `ServerPort`
//! (`revent-bench dns-server`), answering `hI.bench.example` with A 10.(I>>16).(I>>8).I, or Debian's
//! dnsmasq answering every name under `bench.example` with 10.0.0.1 (`--address`, no upstream, no
//! cache). Each client is a process of its own pinned to another CPU, run one after another: it
//! resolves N distinct names (A records, absolute names, no search list), keeping INFLIGHT lookups
//! outstanding (each answer starts the next), and checks every address. It reports its wall time
//! and its CPU time (user + system from getrusage, over the lookups only); the harness adds the
//! server's CPU time over the same run (/proc/PID/stat).
//!
//! - `revent`: revent-dns's `Resolver` on an `EventBase` (`max_inflight` = INFLIGHT).
//! - `libevent`: `c/dns_evdns.c` on Debian's libevent 2.1 (`evdns_base_resolve_ipv4`,
//!   `max-inflight` = INFLIGHT); needs libevent-dev.
//! - `hickory`: hickory-resolver on a current-thread tokio runtime (`ipv4_lookup`, one UDP
//!   nameserver, `max_active_requests` = INFLIGHT, the response cache off since no name repeats,
//!   no hosts file).
//!
//! All use a 5 s timeout; a lookup that fails or returns a wrong address is counted, and a run
//! with any is reported as such. The kernel's count of UDP datagrams dropped for full receive
//! buffers during each run is printed too: a dropped query or answer costs its client a 5 s
//! timeout, and the run then measures retries rather than the client. With dnsmasq (whose socket
//! keeps the default 208 KiB buffer) that happens at 1,000 in flight; revent's server raises its
//! own buffer (SO_RCVBUFFORCE) and evdns's client socket gets `so-rcvbuf` (see c/dns_evdns.c).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::Args;
use crate::child::{parse_kv, Res};
use crate::stats::cell;

const USAGE: &str = "\
usage: revent-bench dns [options]
  --lookups 100000     distinct names per client run
  --inflight 1000      lookups outstanding at once
  --clients revent,libevent,hickory
  --server revent      revent (revent-bench dns-server) or dnsmasq (/usr/sbin/dnsmasq,
                       apt-get install dnsmasq-base)
  --rounds 1           runs of every client (order rotated each round); the table has each run
  --server-cpu 0       CPU of the server, or `none`
  --client-cpu 1       CPU of the clients, or `none`
";

/// The address dnsmasq gives every name under bench.example.
const DNSMASQ_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// What a client must get for `hI.bench.example`.
#[derive(Clone, Copy)]
enum Expect {
    /// 10.(I>>16).(I>>8).I, from revent-bench's own server.
    Derived,
    Fixed(Ipv4Addr),
}

impl Expect {
    fn parse(s: &str) -> Res<Expect> {
        if s == "derived" {
            return Ok(Expect::Derived);
        }
        Ok(Expect::Fixed(
            s.parse().map_err(|_| format!("bad expectation {s:?}"))?,
        ))
    }

    fn arg(self) -> String {
        match self {
            Expect::Derived => "derived".into(),
            Expect::Fixed(a) => a.to_string(),
        }
    }

    fn check(self, i: u64, got: Ipv4Addr) -> bool {
        match self {
            Expect::Derived => got == derived(i),
            Expect::Fixed(a) => got == a,
        }
    }
}

fn derived(i: u64) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff))
}

fn name(i: u64) -> String {
    format!("h{i}.bench.example.")
}

/// The server process; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    expect: Expect,
    label: &'static str,
    _dir: Option<TempDir>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pinned(cpu: Option<usize>, program: &Path) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

fn cpu_arg(a: &Args, name: &str, default: usize) -> Res<Option<usize>> {
    match a.str(name) {
        Some("none") => Ok(None),
        _ => Ok(Some(a.num(name, default)?)),
    }
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer (all sockets; the
/// `RcvbufErrors` of /proc/net/snmp).
fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// user + system CPU time of a process so far, in ns (/proc/PID/stat, clock ticks).
fn proc_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks * 1_000_000_000 / hz.max(1) as u64)
}

fn start_revent_server(cpu: Option<usize>) -> Res<Server> {
    let exe = std::env::current_exe()?;
    let mut child = pinned(cpu, &exe)
        .arg("dns-server")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let kv = parse_kv(&line);
    let port: u16 = kv
        .get("port")
        .map(|&p| p as u16)
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("dns-server said {line:?}"))?;
    Ok(Server {
        child,
        addr: (Ipv4Addr::LOCALHOST, port).into(),
        expect: Expect::Derived,
        label: "revent ServerPort",
        _dir: None,
    })
}

fn free_port() -> Res<u16> {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0")?;
        let port = u.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

fn start_dnsmasq(cpu: Option<usize>) -> Res<Server> {
    let bin = Path::new("/usr/sbin/dnsmasq");
    if !bin.exists() {
        return Err("dnsmasq is missing: apt-get install dnsmasq-base".into());
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("revent-bench-dns-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let port = free_port()?;
    let child = pinned(cpu, bin)
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--cache-size=0",
            "--log-facility=-",
            "--dns-forward-max=10000",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--address=/bench.example/{DNSMASQ_ADDR}"))
        .arg(format!("--pid-file={}", dir.0.join("pid").display()))
        .arg("--user=root")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server {
        child,
        addr: (Ipv4Addr::LOCALHOST, port).into(),
        expect: Expect::Fixed(DNSMASQ_ADDR),
        label: "dnsmasq",
        _dir: Some(dir),
    };
    // Ready once it answers.
    let probe = UdpSocket::bind("127.0.0.1:0")?;
    probe.set_read_timeout(Some(Duration::from_millis(100)))?;
    let q = query_bytes("ready.bench.example.");
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    while t0.elapsed() < Duration::from_secs(5) {
        let _ = probe.send_to(&q, server.addr);
        if probe.recv(&mut buf).is_ok() {
            return Ok(server);
        }
    }
    Err("dnsmasq did not answer within 5 s".into())
}

fn query_bytes(name: &str) -> Vec<u8> {
    use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query};
    use hickory_resolver::proto::rr::{Name, RecordType};
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("a valid name"),
        RecordType::A,
    ));
    m.to_vec().expect("encodes")
}

/// One client run's figures.
struct Run {
    client: String,
    ok: u64,
    wrong: u64,
    failed: u64,
    wall_ns: u64,
    cpu_ns: u64,
    server_cpu_ns: Option<u64>,
    /// Datagrams the kernel dropped for full receive buffers during the run (machine-wide).
    drops: Option<u64>,
}

fn run_client(
    client: &str,
    server: &Server,
    n: u64,
    inflight: u64,
    cpu: Option<usize>,
) -> Res<Run> {
    let exe = std::env::current_exe()?;
    let common = [
        server.addr.to_string(),
        n.to_string(),
        inflight.to_string(),
        server.expect.arg(),
    ];
    let mut cmd = match client {
        "revent" | "hickory" => {
            let mut c = pinned(cpu, &exe);
            c.arg("dns-client").arg(client);
            c
        }
        "libevent" => pinned(cpu, &crate::cref::build("dns_evdns", &["-levent"])),
        other => return Err(format!("unknown client {other:?}").into()),
    };
    let before = proc_cpu_ns(server.child.id());
    let drops_before = udp_rcvbuf_errors();
    let out = cmd.args(common).stderr(Stdio::inherit()).output()?;
    let after = proc_cpu_ns(server.child.id());
    let drops = drops_before
        .zip(udp_rcvbuf_errors())
        .map(|(b, a)| a.saturating_sub(b));
    if !out.status.success() {
        return Err(format!("{client}: exited with {}", out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let kv = parse_kv(text.trim());
    let get = |k: &str| -> Res<u64> {
        kv.get(k)
            .map(|&v| v as u64)
            .ok_or_else(|| format!("{client}: no {k} in {text:?}").into())
    };
    Ok(Run {
        client: client.to_string(),
        ok: get("ok")?,
        wrong: get("wrong")?,
        failed: get("failed")?,
        wall_ns: get("wall_ns")?,
        cpu_ns: get("cpu_ns")?,
        server_cpu_ns: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
        drops,
    })
}

pub fn run(args: &[String]) -> Res<()> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    let a = Args::parse(
        args,
        &[
            "--lookups",
            "--inflight",
            "--clients",
            "--server",
            "--rounds",
            "--server-cpu",
            "--client-cpu",
        ],
        &[],
    )?;
    let n: u64 = a.num("--lookups", 100_000)?;
    let inflight: u64 = a.num("--inflight", 1000)?;
    let rounds: usize = a.num("--rounds", 1)?;
    let clients = a.words("--clients", &["revent", "libevent", "hickory"]);
    let server_cpu = cpu_arg(&a, "--server-cpu", 0)?;
    let client_cpu = cpu_arg(&a, "--client-cpu", 1)?;
    if clients.iter().any(|c| c == "libevent") {
        // Compiled before the server starts, so a missing libevent-dev stops the run at once.
        crate::cref::build("dns_evdns", &["-levent"]);
    }
    let server = match a.str("--server").unwrap_or("revent") {
        "revent" => start_revent_server(server_cpu)?,
        "dnsmasq" => start_dnsmasq(server_cpu)?,
        other => return Err(format!("unknown server {other:?}").into()),
    };
    let mut runs = Vec::new();
    for round in 0..rounds {
        for k in 0..clients.len() {
            let c = &clients[(k + round) % clients.len()];
            let r = run_client(c, &server, n, inflight, client_cpu)?;
            eprintln!(
                "round {round}: {c}: {} ok, {} wrong, {} failed in {:.2} s; UDP receive-buffer \
                 drops (machine-wide): {}",
                r.ok,
                r.wrong,
                r.failed,
                r.wall_ns as f64 / 1e9,
                r.drops.map_or("?".into(), |d| d.to_string()),
            );
            runs.push(r);
        }
    }
    println!(
        "{n} lookups of distinct names, {inflight} in flight, server: {} on 127.0.0.1 (CPU {}), \
         clients on CPU {}\n",
        server.label,
        server_cpu.map_or("any".into(), |c| c.to_string()),
        client_cpu.map_or("any".into(), |c| c.to_string()),
    );
    println!("| client | lookups/s | client CPU µs/lookup | server CPU µs/lookup | ok | wrong | failed |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &runs {
        let total = (r.ok + r.wrong + r.failed) as f64;
        let rate = total / (r.wall_ns as f64 / 1e9);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.client,
            cell(Some(rate), 0),
            cell(Some(r.cpu_ns as f64 / 1e3 / total), 2),
            cell(r.server_cpu_ns.map(|s| s as f64 / 1e3 / total), 2),
            r.ok,
            r.wrong,
            r.failed
        );
    }
    Ok(())
}

/// `dns-server`: revent's ServerPort on 127.0.0.1, answering `hI.bench.example` A with the derived
/// address (anything else NXDOMAIN); prints `port=P` and serves until killed. It takes no
/// arguments: anything given (`--help` included) gets the usage, not a server that never ends.
pub fn server(args: &[String]) -> Res<()> {
    use revent_dns::{Question, Rcode, ServerOptions, ServerPort};
    if !args.is_empty() {
        return Err(
            "usage: dns-server (no arguments): binds 127.0.0.1 on an ephemeral port, \
                    prints port=P, answers hI.bench.example until killed"
                .into(),
        );
    }
    let mut base = revent::EventBase::new()?;
    let udp = UdpSocket::bind("127.0.0.1:0")?;
    // A burst of INFLIGHT queries must not overflow the receive buffer.
    grow_rcvbuf(&udp, 8 << 20);
    let tcp = TcpListener::bind(udp.local_addr()?)?;
    let port = udp.local_addr()?.port();
    let opts = ServerOptions {
        max_pending: 100_000,
        ..ServerOptions::default()
    };
    let _port = ServerPort::new(&mut base, Some(udp), Some(tcp), opts, |base, req| {
        let rcode = match req.questions() {
            Ok(qs) => match qs.first() {
                Some(q) if q.qtype == Question::A => match index_of(&q.name) {
                    Some(i) => {
                        let _ = req.add_a(&q.name, &[derived(i)], 60);
                        Rcode::NOERROR
                    }
                    None => Rcode::NXDOMAIN,
                },
                _ => Rcode::NXDOMAIN,
            },
            Err(_) => return,
        };
        let _ = req.respond(base, rcode);
    })?;
    println!("port={port}");
    use std::io::Write;
    std::io::stdout().flush()?;
    base.dispatch()?;
    Ok(())
}

/// I of `hI.bench.example` in any case.
fn index_of(name: &str) -> Option<u64> {
    let (first, rest) = name.split_once('.')?;
    if !rest.eq_ignore_ascii_case("bench.example") {
        return None;
    }
    let digits = first
        .strip_prefix('h')
        .or_else(|| first.strip_prefix('H'))?;
    digits.parse().ok()
}

fn grow_rcvbuf(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt reads one c_int from the live local `bytes`; the fd is the live
        // socket's.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return; // SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped at rmem_max
        }
    }
}

fn rusage_cpu_ns() -> u64 {
    // SAFETY: rusage is plain integers, for which all zeros is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the live local `ru`.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * 1000
}

/// `dns-client KIND ADDR N INFLIGHT EXPECT`: one client run; prints its figures.
pub fn client(args: &[String]) -> Res<()> {
    let [kind, addr, n, inflight, expect] = args else {
        return Err("usage: dns-client KIND ADDR N INFLIGHT EXPECT".into());
    };
    let addr: SocketAddr = addr.parse()?;
    let n: u64 = n.parse()?;
    let inflight: u64 = inflight.parse()?;
    let expect = Expect::parse(expect)?;
    let tally = match kind.as_str() {
        "revent" => client_revent(addr, n, inflight, expect)?,
        "hickory" => client_hickory(addr, n, inflight, expect)?,
        other => return Err(format!("unknown client {other:?}").into()),
    };
    for (e, count) in &tally.errors {
        eprintln!("{kind}: {count} failed: {e}");
    }
    println!(
        "ok={} wrong={} failed={} wall_ns={} cpu_ns={}",
        tally.ok, tally.wrong, tally.failed, tally.wall_ns, tally.cpu_ns
    );
    Ok(())
}

#[derive(Default)]
struct Tally {
    ok: u64,
    wrong: u64,
    failed: u64,
    wall_ns: u64,
    cpu_ns: u64,
    /// Why lookups failed, by error, for the report on stderr.
    errors: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, i: u64, expect: Expect, got: Result<Option<Ipv4Addr>, String>) {
        match got {
            Ok(Some(a)) if expect.check(i, a) => self.ok += 1,
            Ok(Some(_)) => self.wrong += 1,
            Ok(None) => {
                self.failed += 1;
                *self.errors.entry("no address".into()).or_default() += 1;
            }
            Err(e) => {
                self.failed += 1;
                *self.errors.entry(e).or_default() += 1;
            }
        }
    }
}

fn client_revent(addr: SocketAddr, n: u64, inflight: u64, expect: Expect) -> Res<Tally> {
    use revent_dns::{Records, ResolvConf, Resolver};
    use std::cell::RefCell;
    use std::rc::Rc;

    struct St {
        resolver: Resolver,
        next: u64,
        n: u64,
        expect: Expect,
        tally: Tally,
    }
    fn issue(st: &Rc<RefCell<St>>, base: &mut revent::EventBase) {
        let (i, resolver) = {
            let mut s = st.borrow_mut();
            if s.next >= s.n {
                return;
            }
            s.next += 1;
            (s.next - 1, s.resolver.clone())
        };
        let st2 = st.clone();
        resolver.resolve_ipv4(base, &name(i), move |base, r| {
            {
                let mut s = st2.borrow_mut();
                let got = match r {
                    Ok(a) => Ok(match a.records {
                        Records::Ipv4(v) => v.first().copied(),
                        _ => None,
                    }),
                    Err(e) => Err(e.name().to_string()),
                };
                let expect = s.expect;
                s.tally.count(i, expect, got);
            }
            issue(&st2, base);
        });
    }

    let mut base = revent::EventBase::new()?;
    let conf = ResolvConf::new()
        .with_nameserver(addr)
        .with_max_inflight(inflight as usize)
        .with_timeout(Duration::from_secs(5));
    let st = Rc::new(RefCell::new(St {
        resolver: Resolver::new(conf),
        next: 0,
        n,
        expect,
        tally: Tally::default(),
    }));
    let (w0, c0) = (Instant::now(), rusage_cpu_ns());
    for _ in 0..inflight {
        issue(&st, &mut base);
    }
    base.dispatch()?;
    let mut s = st.borrow_mut();
    s.tally.wall_ns = w0.elapsed().as_nanos() as u64;
    s.tally.cpu_ns = rusage_cpu_ns() - c0;
    Ok(std::mem::take(&mut s.tally))
}

fn client_hickory(addr: SocketAddr, n: u64, inflight: u64, expect: Expect) -> Res<Tally> {
    use hickory_resolver::config::{
        ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
    };
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::Resolver;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut conn = ConnectionConfig::udp();
        conn.port = addr.port();
        let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
        let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(5);
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.max_active_requests = inflight as usize;
        opts.num_concurrent_reqs = 1;
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| format!("hickory resolver: {e}"))?;
        let mut tally = Tally::default();
        let mut set = tokio::task::JoinSet::new();
        type Got = Result<Option<Ipv4Addr>, String>;
        let spawn = |set: &mut tokio::task::JoinSet<(u64, Got)>, i: u64| {
            let r = resolver.clone();
            set.spawn(async move {
                let got = match r.ipv4_lookup(name(i)).await {
                    Ok(l) => Ok(l.answers().iter().find_map(|rec| match &rec.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })),
                    Err(e) => Err(e.to_string()),
                };
                (i, got)
            });
        };
        let (w0, c0) = (Instant::now(), rusage_cpu_ns());
        let mut next = 0;
        while next < n.min(inflight) {
            spawn(&mut set, next);
            next += 1;
        }
        while let Some(done) = set.join_next().await {
            let (i, got) = done.map_err(|e| format!("task: {e}"))?;
            tally.count(i, expect, got);
            if next < n {
                spawn(&mut set, next);
                next += 1;
            }
        }
        tally.wall_ns = w0.elapsed().as_nanos() as u64;
        tally.cpu_ns = rusage_cpu_ns() - c0;
        Ok::<Tally, Box<dyn std::error::Error>>(tally)
    })
}
