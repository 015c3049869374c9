//! A fast end-to-end check of the core on every backend: I/O, timers, signals, self-free.
use revent::{Config, ConfigFlags, EventBase, LoopExit, Method, What};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

fn base(m: Method) -> EventBase {
    let mut cfg = Config::new();
    for other in Method::ALL {
        if other != m {
            cfg.avoid_method(other);
        }
    }
    cfg.set_flag(ConfigFlags::IGNORE_ENV);
    let b = EventBase::with_config(&cfg).unwrap();
    assert_eq!(b.method(), m.name());
    b
}

fn io_timer_and_self_free(m: Method) {
    let mut b = base(m);
    let (a, mut peer) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let l = log.clone();
    let mut a2 = a.try_clone().unwrap();
    let ev = b
        .new_event(a.as_raw_fd(), What::READ | What::PERSIST, move |base, f| {
            let mut buf = [0u8; 16];
            let n = a2.read(&mut buf).unwrap();
            l.borrow_mut().push(format!(
                "read {:?} {}",
                f.what,
                String::from_utf8_lossy(&buf[..n])
            ));
            if &buf[..n] == b"bye" {
                base.free(f.id).unwrap();
            }
        })
        .unwrap();
    b.add(ev, None).unwrap();
    let l = log.clone();
    let t1 = b.new_timer(move |_, f| l.borrow_mut().push(format!("t1 {:?}", f.what)));
    let l = log.clone();
    let t2 = b.new_timer(move |_, f| l.borrow_mut().push(format!("t2 {:?}", f.what)));
    b.add(t2, Some(Duration::from_millis(20))).unwrap();
    b.add(t1, Some(Duration::from_millis(10))).unwrap();
    peer.write_all(b"hi").unwrap();
    assert_eq!(b.run(revent::LoopFlags::ONCE).unwrap(), LoopExit::Done);
    peer.write_all(b"bye").unwrap();
    assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(
        *log.borrow(),
        vec!["read READ hi", "read READ bye", "t1 TIMEOUT", "t2 TIMEOUT"]
    );
    assert!(matches!(b.add(ev, None), Err(revent::Error::StaleEvent)));
}

fn signal_counts(m: Method) {
    let mut b = base(m);
    let got = Rc::new(RefCell::new(vec![]));
    let g = got.clone();
    let ev = b
        .new_signal(libc::SIGUSR2, move |base, f| {
            g.borrow_mut().push((f.fd, f.what, f.count));
            base.del(f.id).unwrap();
        })
        .unwrap();
    b.add(ev, None).unwrap();
    revent::util::raise(libc::SIGUSR2).unwrap();
    revent::util::raise(libc::SIGUSR2).unwrap();
    b.dispatch().unwrap();
    assert_eq!(*got.borrow(), vec![(libc::SIGUSR2, What::SIGNAL, 2)]);
}

#[test]
fn smoke_all_backends() {
    for m in Method::ALL {
        io_timer_and_self_free(m);
    }
}

#[test]
fn smoke_signals() {
    for m in Method::ALL {
        signal_counts(m);
    }
}
