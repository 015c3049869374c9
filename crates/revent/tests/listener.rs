//! Listener: batches of accepts, enable/disable, options, EMFILE pause (in a child process with a
//! low RLIMIT_NOFILE), and 1000 concurrent connections through an echo server on bufferevents.

mod bev_common;

use bev_common::*;
use revent::{
    BevFlags, BevOptions, BufferEvent, EventBase, Listener, ListenerOptions, LoopFlags, Method,
    What,
};
use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);
const LOCAL: &str = "127.0.0.1:0";

type Accepted = Rc<RefCell<Vec<OwnedFd>>>;

fn bind(base: &mut EventBase, opts: ListenerOptions) -> (Listener, Accepted) {
    let acc: Accepted = Rc::default();
    let a = acc.clone();
    let l = Listener::bind(
        base,
        LOCAL.parse().unwrap(),
        opts,
        -1,
        move |_, fd, peer| {
            assert!(peer.as_inet().unwrap().ip().is_loopback());
            a.borrow_mut().push(fd);
        },
    )
    .unwrap();
    (l, acc)
}

#[test]
fn accepts_several_connections_per_wakeup() {
    for m in backends() {
        let mut base = base(m);
        let (l, acc) = bind(&mut base, ListenerOptions::REUSEABLE);
        let addr = l.local_addr(&base).unwrap();
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0);
        let clients: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // One loop iteration: all ten were in the backlog, all ten are accepted.
        base.run(LoopFlags::ONCE).unwrap();
        assert_eq!(acc.borrow().len(), 10);
        // Accepted sockets are non-blocking unless told otherwise.
        for fd in acc.borrow().iter() {
            // SAFETY: F_GETFL only queries the descriptor.
            let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
            assert!(fl & libc::O_NONBLOCK != 0);
        }
        drop(clients);
        l.free(&mut base).unwrap();
        assert!(
            TcpStream::connect(addr).is_err(),
            "socket still listening after free"
        );
    }
}

#[test]
fn leave_sockets_blocking_and_close_on_exec() {
    let mut base = EventBase::new().unwrap();
    let (l, acc) = bind(
        &mut base,
        ListenerOptions::LEAVE_SOCKETS_BLOCKING | ListenerOptions::CLOSE_ON_EXEC,
    );
    let _c = TcpStream::connect(l.local_addr(&base).unwrap()).unwrap();
    run_until(&mut base, LIMIT, |_| acc.borrow().len() == 1);
    let fd = acc.borrow()[0].as_raw_fd();
    // SAFETY: F_GETFL/F_GETFD only query the descriptor.
    let (fl, fdfl, lfd) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETFL),
            libc::fcntl(fd, libc::F_GETFD),
            libc::fcntl(l.fd(&base).unwrap(), libc::F_GETFD),
        )
    };
    assert_eq!(fl & libc::O_NONBLOCK, 0, "accepted socket is non-blocking");
    assert!(fdfl & libc::FD_CLOEXEC != 0);
    assert!(lfd & libc::FD_CLOEXEC != 0);
    l.free(&mut base).unwrap();
}

#[test]
fn disabled_listener_leaves_connections_in_the_backlog() {
    for m in backends() {
        let mut base = base(m);
        let (l, acc) = bind(&mut base, ListenerOptions::DISABLED);
        let addr = l.local_addr(&base).unwrap();
        let _c1 = TcpStream::connect(addr).unwrap();
        run_for(&mut base, Duration::from_millis(50));
        assert_eq!(acc.borrow().len(), 0, "accepted while disabled");
        l.enable(&mut base).unwrap();
        run_until(&mut base, LIMIT, |_| acc.borrow().len() == 1);
        l.disable(&mut base).unwrap();
        let _c2 = TcpStream::connect(addr).unwrap();
        run_for(&mut base, Duration::from_millis(50));
        assert_eq!(acc.borrow().len(), 1, "accepted while disabled");
        l.enable(&mut base).unwrap();
        run_until(&mut base, LIMIT, |_| acc.borrow().len() == 2);
        l.free(&mut base).unwrap();
    }
}

#[test]
fn callback_may_disable_the_listener() {
    let mut base = EventBase::new().unwrap();
    let n = Rc::new(Cell::new(0));
    let slot: Rc<RefCell<Option<Listener>>> = Rc::default();
    let (c, s) = (n.clone(), slot.clone());
    let l = Listener::bind(
        &mut base,
        LOCAL.parse().unwrap(),
        ListenerOptions::NONE,
        -1,
        move |base, _fd, _| {
            c.set(c.get() + 1);
            s.borrow().as_ref().unwrap().disable(base).unwrap();
        },
    )
    .unwrap();
    *slot.borrow_mut() = Some(l);
    let addr = l.local_addr(&base).unwrap();
    let _cs: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    run_for(&mut base, Duration::from_millis(50));
    assert_eq!(n.get(), 1);
    l.enable(&mut base).unwrap();
    run_until(&mut base, LIMIT, |_| n.get() == 2);
    slot.borrow_mut().take();
    l.free(&mut base).unwrap();
}

#[test]
fn reuseable_port_lets_two_listeners_share_a_port() {
    let mut base = EventBase::new().unwrap();
    let opts = ListenerOptions::REUSEABLE | ListenerOptions::REUSEABLE_PORT;
    let (l1, acc1) = bind(&mut base, opts);
    let addr = l1.local_addr(&base).unwrap();
    let acc2: Accepted = Rc::default();
    let a2 = acc2.clone();
    let l2 = Listener::bind(&mut base, addr, opts, -1, move |_, fd, _| {
        a2.borrow_mut().push(fd)
    })
    .unwrap();
    assert_eq!(l2.local_addr(&base).unwrap(), addr);
    // Without the option, the port is taken.
    assert!(Listener::bind(
        &mut base,
        addr,
        ListenerOptions::REUSEABLE,
        -1,
        |_, _, _| {}
    )
    .is_err());
    let _cs: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    run_until(&mut base, LIMIT, |_| {
        acc1.borrow().len() + acc2.borrow().len() == 40
    });
    l1.free(&mut base).unwrap();
    l2.free(&mut base).unwrap();
}

#[test]
fn from_fd_without_close_on_free_leaves_the_socket_open() {
    let mut base = EventBase::new().unwrap();
    let std_l = TcpListener::bind(LOCAL).unwrap();
    let addr = std_l.local_addr().unwrap();
    let raw = std_l.as_raw_fd();
    let n = Rc::new(Cell::new(0));
    let c = n.clone();
    let l = Listener::from_fd(
        &mut base,
        std_l.try_clone().unwrap().into(),
        ListenerOptions::NONE,
        -1,
        move |_, _, _| c.set(c.get() + 1),
    )
    .unwrap();
    let _c = TcpStream::connect(addr).unwrap();
    run_until(&mut base, LIMIT, |_| n.get() == 1);
    let lfd = l.fd(&base).unwrap();
    let back = l.free(&mut base).unwrap().expect("the socket comes back");
    assert_eq!(back.as_raw_fd(), lfd);
    assert!(fd_is_open(lfd), "listener closed a socket it did not own");
    assert!(fd_is_open(raw));
    drop((back, std_l));
}

// ---- EMFILE: a child process with few fds ----

const EMFILE_ENV: &str = "REVENT_TEST_EMFILE_CHILD";
const EMFILE_CLIENTS: usize = 20;
const EMFILE_FREE_SLOTS: usize = 5;

/// Kills the child if the test panics.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's half of `emfile_pauses_then_resumes`: a no-op unless the parent started us.
#[test]
fn emfile_child_process() {
    if std::env::var_os(EMFILE_ENV).is_none() {
        return;
    }
    let mut base = EventBase::new().unwrap();
    let (l, acc) = bind(&mut base, ListenerOptions::REUSEABLE);
    let errors = Rc::new(RefCell::new(Vec::<Option<i32>>::new()));
    let e = errors.clone();
    l.set_error_cb(&mut base, move |_, err: &std::io::Error| {
        e.borrow_mut().push(err.raw_os_error())
    })
    .unwrap();
    // Few fds, then fill the table but for a handful of slots.
    let rl = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads one struct we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }, 0);
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => panic!("{e}"),
        }
    }
    fillers.truncate(fillers.len() - EMFILE_FREE_SLOTS);
    println!("addr {}", l.local_addr(&base).unwrap());
    std::io::stdout().flush().unwrap();

    run_until(&mut base, LIMIT, |_| !errors.borrow().is_empty());
    assert_eq!(acc.borrow().len(), EMFILE_FREE_SLOTS);
    assert_eq!(errors.borrow()[0], Some(libc::EMFILE));
    // The listener pauses: over one second the error callback runs a few times, it does not spin.
    let before = errors.borrow().len();
    run_for(&mut base, Duration::from_secs(1));
    let during = errors.borrow().len() - before;
    assert!(
        during <= 300,
        "{during} accept errors in 1 s: the loop spins"
    );
    assert!(during >= 1, "accepting never retried");
    assert_eq!(acc.borrow().len(), EMFILE_FREE_SLOTS);
    // Free fds: accepting resumes and takes the rest of the backlog.
    drop(fillers);
    run_until(&mut base, LIMIT, |_| acc.borrow().len() == EMFILE_CLIENTS);
    println!("ok errors-in-1s {during} method {}", base.method());
    l.free(&mut base).unwrap();
}

#[test]
fn emfile_pauses_then_resumes() {
    if std::env::var_os(EMFILE_ENV).is_some() {
        return;
    }
    emfile_run_child(&[]);
}

/// The same with the default base on io_uring (EVENT_NOEPOLL), where the listener accepts with
/// a multishot accept on the ring.
#[test]
fn emfile_pauses_then_resumes_io_uring() {
    if std::env::var_os(EMFILE_ENV).is_some() || !EventBase::method_available(Method::IoUring) {
        return;
    }
    let out = emfile_run_child(&[("EVENT_NOEPOLL", "1")]);
    assert!(out.contains("method io_uring"), "{out}");
}

/// Runs `emfile_child_process` in a child with `env`; returns what it printed.
fn emfile_run_child(env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "emfile_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .env(EMFILE_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child gave no address"
        );
        // libtest may print "test emfile_child_process ... " on the same line.
        if let Some(i) = line.find("addr ") {
            break line[i + 5..].trim().parse().unwrap();
        }
    };
    let clients: Vec<TcpStream> = (0..EMFILE_CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "child failed: {status}\n{rest}\n{err}");
    assert!(rest.contains("ok errors-in-1s"), "{rest}");
    eprintln!("child: {}", rest.trim());
    drop(clients);
    rest
}

// ---- 1000 concurrent connections through an echo server ----

/// An echo server on its own thread and base; returns its address and a stopper.
fn echo_server(
    m: Method,
) -> (
    SocketAddr,
    std::os::unix::net::UnixStream,
    std::thread::JoinHandle<usize>,
) {
    let (stop_rx, stop_tx) = std::os::unix::net::UnixStream::pair().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut base = base(m);
        let served = Rc::new(Cell::new(0usize));
        let s = served.clone();
        let l = Listener::bind(
            &mut base,
            LOCAL.parse().unwrap(),
            ListenerOptions::REUSEABLE,
            4096,
            move |base, fd, _| {
                let bev = BufferEvent::socket(base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
                bev.set_read_cb(base, |base, bev| {
                    let (i, o) = bev.buffers(base).unwrap();
                    o.add_buffer(i).unwrap();
                })
                .unwrap();
                let s = s.clone();
                bev.set_event_cb(base, move |base, bev, f| {
                    if f.contains(BevFlags::EOF) || f.contains(BevFlags::ERROR) {
                        s.set(s.get() + 1);
                        bev.free(base).unwrap();
                    }
                })
                .unwrap();
                bev.enable(base, What::READ | What::WRITE).unwrap();
            },
        )
        .unwrap();
        addr_tx.send(l.local_addr(&base).unwrap()).unwrap();
        let stop = base
            .new_event(stop_rx.as_raw_fd(), What::READ, |base, _| base.loopbreak())
            .unwrap();
        base.add(stop, None).unwrap();
        base.dispatch().unwrap();
        l.free(&mut base).unwrap();
        served.get()
    });
    (addr_rx.recv().unwrap(), stop_tx, h)
}

fn thousand_connections(m: Method) {
    const N: usize = 1000;
    let (addr, mut stop, server) = echo_server(m);
    let mut base = base(m);
    let done = Rc::new(Cell::new(0usize));
    let mut bevs = Vec::new();
    for i in 0..N {
        let bev = BufferEvent::socket(&mut base, None, BevOptions::CLOSE_ON_FREE).unwrap();
        let msg = format!("connection {i:04} says {}\n", "x".repeat(i % 97)).into_bytes();
        let want = msg.clone();
        let d = done.clone();
        bev.set_read_cb(&mut base, move |base, bev| {
            let input = bev.input(base).unwrap();
            if input.len() >= want.len() {
                let mut got = vec![0u8; input.len()];
                input.remove(&mut got).unwrap();
                assert_eq!(got, want, "connection {i} got another's bytes");
                d.set(d.get() + 1);
                bev.free(base).unwrap();
            }
        })
        .unwrap();
        bev.set_event_cb(&mut base, |_, _, f| {
            assert!(
                !f.contains(BevFlags::ERROR) && !f.contains(BevFlags::EOF),
                "client {f:?}"
            )
        })
        .unwrap();
        bev.enable(&mut base, What::READ | What::WRITE).unwrap();
        bev.connect(&mut base, addr).unwrap();
        bev.write(&mut base, &msg).unwrap();
        bevs.push(bev);
    }
    run_until(&mut base, Duration::from_secs(120), |_| done.get() == N);
    stop.write_all(b"x").unwrap();
    server.join().unwrap();
}

#[test]
fn thousand_concurrent_connections_epoll_and_poll() {
    raise_nofile(8192);
    for m in backends() {
        // select cannot watch fds past FD_SETSIZE (1024).
        if m != Method::Select {
            thousand_connections(m);
        }
    }
}

#[test]
fn a_unix_domain_listener_keeps_the_connections_it_accepts() {
    let dir = std::env::temp_dir().join(format!("revent-unix-listener-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    for m in backends() {
        let mut base = base(m);
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let l = Listener::bind_unix(
            &mut base,
            &path,
            ListenerOptions::NONE,
            -1,
            move |base, fd, peer| {
                assert!(matches!(peer, revent::PeerAddr::Unix(_)), "{peer:?}");
                let bev = BufferEvent::socket(base, Some(fd), BevOptions::CLOSE_ON_FREE).unwrap();
                let g = g.clone();
                bev.set_read_cb(base, move |base, bev| {
                    let data = drain_input(base, bev);
                    g.borrow_mut().extend_from_slice(&data);
                    bev.write(base, &data).unwrap();
                })
                .unwrap();
                bev.enable(base, What::READ | What::WRITE).unwrap();
            },
        )
        .unwrap();
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        client.set_read_timeout(Some(LIMIT)).unwrap();
        client.write_all(b"over unix").unwrap();
        run_until(&mut base, LIMIT, |_| got.borrow().len() == 9);
        // The echo goes out in the next prepare phase.
        base.run(LoopFlags::NONBLOCK).unwrap();
        let mut back = [0u8; 9];
        client.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"over unix", "{m:?}");
        l.free(&mut base).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn a_listener_whose_handle_is_dropped_keeps_accepting_without_spinning() {
    for m in backends() {
        let mut base = base(m);
        let (l, acc) = bind(&mut base, ListenerOptions::REUSEABLE);
        let addr = l.local_addr(&base).unwrap();
        // The handle goes away; the listener lives in the base until freed or the base drops.
        let _ = l;
        let _c = TcpStream::connect(addr).unwrap();
        run_until(&mut base, LIMIT, |_| acc.borrow().len() == 1);
        // Nothing to accept: one loop iteration blocks until the timeout instead of spinning on a
        // dead fd (a counting timer shows how many iterations ran).
        let iterations = Rc::new(Cell::new(0));
        let it = iterations.clone();
        let tick = base.new_persistent_timer(move |_, _| it.set(it.get() + 1));
        base.add(tick, Some(Duration::from_millis(20))).unwrap();
        base.loopexit(Some(Duration::from_millis(110))).unwrap();
        let mut loops = 0;
        while !base.got_exit() {
            base.run(LoopFlags::ONCE).unwrap();
            loops += 1;
            assert!(loops < 1000, "{m:?}: the loop spins");
        }
        base.free(tick).unwrap();
        drop(base);
        assert!(
            TcpStream::connect(addr).is_err(),
            "{m:?}: the base's drop did not close it"
        );
    }
}
