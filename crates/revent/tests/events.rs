//! fd events: persistence, several events on one fd, timeouts on fd events, `activate`, `once`,
//! ET and CLOSED, and changes made from inside callbacks (free self, delete/free an active event, add
//! new events, stale ids after slot reuse).

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use revent::{Features, LoopExit, LoopFlags, Method, What};

const ALL_WHAT: What = What::from_bits_truncate(0xff);

fn backend_features(m: Method) {
    let base = base(m);
    let f = base.features();
    assert_eq!(
        f.contains(Features::ET),
        has_et(m),
        "{}: ET feature",
        name(m)
    );
    assert_eq!(
        f.contains(Features::O1),
        matches!(m, Method::Epoll | Method::IoUring),
        "{}: O1 feature",
        name(m)
    );
    assert_eq!(
        f.contains(Features::EARLY_CLOSE),
        has_closed(m),
        "{}: EARLY_CLOSE feature",
        name(m)
    );
}

/// A non-persistent read event fires once, sees READ and its fd, is no longer pending inside its
/// callback, and the loop then has nothing left and returns NoEvents.
fn read_nonpersistent_fires_once(m: Method) {
    let mut base = base(m);
    let (mut a, mut b) = socketpair();
    let afd = a.as_raw_fd();
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_event(afd, What::READ, move |base, f| {
            let (pending, _) = base.pending(f.id, ALL_WHAT).unwrap();
            l.push((f.fd, f.what, f.count, pending, read_fd(f.fd)));
        })
        .unwrap();
    base.add(id, None).unwrap();
    send(&mut b, b"hello");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(
        log.get(),
        vec![(afd, What::READ, 1, What::NONE, b"hello".to_vec())]
    );
    assert_eq!(base.pending(id, ALL_WHAT).unwrap().0, What::NONE);
    // More data: the event is no longer added, so nothing fires.
    send(&mut b, b"again");
    assert_eq!(step(&mut base).unwrap(), LoopExit::NoEvents);
    assert_eq!(log.len(), 1);
    assert_eq!(drain(&mut a), b"again");
}

/// A persistent read event fires once per message and stays pending inside its callback.
fn read_persistent_fires_repeatedly(m: Method) {
    let mut base = base(m);
    let (a, b) = socketpair();
    let afd = a.as_raw_fd();
    let b = std::rc::Rc::new(std::cell::RefCell::new(b));
    let log = Log::new();
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(20));
    let (l, b2) = (log.clone(), b.clone());
    let id = base
        .new_event(afd, What::READ | What::PERSIST, move |base, f| {
            let (pending, _) = base.pending(f.id, What::READ).unwrap();
            assert_eq!(
                pending,
                What::READ,
                "a persistent event stays pending in its callback"
            );
            assert_eq!(f.what, What::READ);
            let got = read_fd(f.fd);
            l.push(got);
            let n = l.len();
            if n < 3 {
                send(&mut b2.borrow_mut(), format!("m{n}").as_bytes());
            } else {
                base.del(f.id).unwrap();
                base.del(guard_id).unwrap();
            }
        })
        .unwrap();
    base.add(id, None).unwrap();
    send(&mut b.borrow_mut(), b"m0");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert!(!guard_fired.get());
    assert_eq!(
        log.get(),
        vec![b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]
    );
}

/// Level-triggered: a persistent read event whose data is not consumed fires at every iteration.
fn level_triggered_fires_while_data_unread(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let c = Counter::new();
    let c2 = c.clone();
    let _ = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::PERSIST,
        move |_, _| c2.inc(),
    )
    .unwrap();
    send(&mut b, b"x");
    for i in 1..=3 {
        assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
        assert_eq!(c.get(), i);
    }
}

/// A write event on a fresh socket fires with WRITE.
fn write_event_fires(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let _ = register(&mut base, a.as_raw_fd(), What::WRITE, move |_, f| {
        l.push((f.fd, f.what))
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![(a.as_raw_fd(), What::WRITE)]);
}

/// One event asking READ|WRITE sees only what is ready, then both.
fn read_write_event_sees_only_ready_flags(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::WRITE | What::PERSIST,
        move |_, f| l.push(f.what),
    )
    .unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    send(&mut b, b"x");
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    base.del(id).unwrap();
    assert_eq!(log.get(), vec![What::WRITE, What::READ | What::WRITE]);
}

/// A READ event and a WRITE event on the same fd each see only their own flag.
fn read_and_write_events_on_one_fd(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd();
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let _ = register(&mut base, fd, What::READ, move |_, f| {
        l1.push(("r", f.what, read_fd(f.fd)));
    })
    .unwrap();
    let _ = register(&mut base, fd, What::WRITE, move |_, f| {
        l2.push(("w", f.what, Vec::new()))
    })
    .unwrap();
    send(&mut b, b"data");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let mut got = log.get();
    got.sort_by_key(|x| x.0);
    assert_eq!(
        got,
        vec![
            ("r", What::READ, b"data".to_vec()),
            ("w", What::WRITE, Vec::new())
        ]
    );
}

/// Two READ events on one fd both fire, once each.
fn two_read_events_on_one_fd_both_fire(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd();
    let log = Log::new();
    for tag in [1, 2] {
        let l = log.clone();
        let _ = register(&mut base, fd, What::READ, move |_, f| l.push((tag, f.what))).unwrap();
    }
    send(&mut b, b"x");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let mut got = log.get();
    got.sort_by_key(|x| x.0);
    assert_eq!(got, vec![(1, What::READ), (2, What::READ)]);
}

/// Deleting one of two READ events on an fd leaves the other one watching it; deleting the last
/// leaves nothing.
fn del_one_of_two_events_on_one_fd(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let fd = a.as_raw_fd();
    let log = Log::new();
    let mut ids = Vec::new();
    for tag in [1, 2] {
        let l = log.clone();
        ids.push(
            register(&mut base, fd, What::READ | What::PERSIST, move |_, _| {
                l.push(tag)
            })
            .unwrap(),
        );
    }
    // Let the backend register the fd before changing interest again.
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    base.del(ids[0]).unwrap();
    send(&mut b, b"x");
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec![2]);
    base.del(ids[1]).unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![2]);
    // Re-adding the first one makes it fire again (data is still unread).
    base.add(ids[0], None).unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec![2, 1]);
}

/// A READ event with a timeout and no data fires with exactly TIMEOUT, no earlier than the timeout.
fn fd_event_timeout_fires(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_event(a.as_raw_fd(), What::READ, move |_, f| {
            l.push((f.what, Instant::now()))
        })
        .unwrap();
    let start = Instant::now();
    base.add(id, Some(Duration::from_millis(30))).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, What::TIMEOUT);
    assert!(
        got[0].1 - start >= Duration::from_millis(30),
        "fired after {:?}",
        got[0].1 - start
    );
}

/// A non-persistent READ event with a timeout that fires on READ loses its timeout too.
fn fd_event_read_before_timeout_cancels_timeout(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_event(a.as_raw_fd(), What::READ, move |_, f| l.push(f.what))
        .unwrap();
    base.add(id, Some(Duration::from_secs(10))).unwrap();
    send(&mut b, b"x");
    // NoEvents proves the 10 s timeout went away with the read.
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![What::READ]);
    assert_eq!(base.pending(id, ALL_WHAT).unwrap(), (What::NONE, None));
}

/// A persistent fd event with a timeout re-arms after each timeout: the k-th timeout comes no earlier
/// than k timeouts after the add.
fn persistent_fd_event_timeout_rearms(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_event(a.as_raw_fd(), What::READ | What::PERSIST, move |base, f| {
            l.push((f.what, Instant::now()));
            assert_eq!(
                base.pending(f.id, What::READ | What::TIMEOUT).unwrap().0,
                What::READ | What::TIMEOUT
            );
            if l.len() == 3 {
                base.del(f.id).unwrap();
            }
        })
        .unwrap();
    let start = Instant::now();
    base.add(id, Some(Duration::from_millis(15))).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 3);
    for (k, (what, at)) in got.iter().enumerate() {
        assert_eq!(*what, What::TIMEOUT);
        let min = Duration::from_millis(15) * (k as u32 + 1);
        assert!(
            *at - start >= min,
            "timeout #{k} after {:?}, expected >= {min:?}",
            *at - start
        );
    }
}

/// A persistent fd event with a timeout: when it fires on READ, its timeout restarts from then.
fn persistent_fd_event_read_resets_timeout(m: Method) {
    let mut base = base(m);
    let (a, b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let ev = base
        .new_event(a.as_raw_fd(), What::READ | What::PERSIST, move |base, f| {
            read_fd(f.fd);
            l.push((f.what, Instant::now()));
            if f.what.contains(What::TIMEOUT) {
                base.del(f.id).unwrap();
            }
        })
        .unwrap();
    // Wide margins: the test fails wrongly only if the thread stalls for longer than the timeout
    // minus the write's delay (270 ms), which a loaded shared machine can do to 35 ms.
    base.add(ev, Some(Duration::from_millis(300))).unwrap();
    // At ~30 ms, write one byte: READ fires, and the next TIMEOUT must come >= 300 ms after the
    // write, not 300 ms after the add.
    let wrote_at = std::rc::Rc::new(std::cell::Cell::new(None));
    let w = wrote_at.clone();
    let bfd = b.as_raw_fd();
    base.once(
        -1,
        What::TIMEOUT,
        Some(Duration::from_millis(30)),
        move |_, _| {
            w.set(Some(Instant::now()));
            write_fd(bfd, b"x");
        },
    )
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    let whats: Vec<What> = got.iter().map(|x| x.0).collect();
    assert_eq!(whats, vec![What::READ, What::TIMEOUT]);
    let wrote = wrote_at.get().unwrap();
    assert!(got[0].1 >= wrote);
    assert!(
        got[1].1 - wrote >= Duration::from_millis(300),
        "timeout came {:?} after the read, expected >= 300ms",
        got[1].1 - wrote
    );
}

/// `activate` on an event that is not added: the callback sees exactly the given flags, once.
fn activate_not_added_event(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_event(a.as_raw_fd(), What::READ, move |_, f| {
            l.push((f.what, f.count))
        })
        .unwrap();
    base.activate(id, What::WRITE, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![(What::WRITE, 1)]);
}

/// Activating an already active event ORs the flags into one callback.
fn activate_twice_ors_flags(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let id = base.new_timer(move |_, f| l.push(f.what));
    base.activate(id, What::READ, 1).unwrap();
    base.activate(id, What::TIMEOUT, 1).unwrap();
    base.activate(id, What::READ, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![What::READ | What::TIMEOUT]);
}

/// Activating a pending non-persistent timer runs it once and removes its timeout.
fn activate_pending_timer_runs_once(m: Method) {
    let mut base = base(m);
    let c = Counter::new();
    let c2 = c.clone();
    let id = base.new_timer(move |_, f| {
        assert_eq!(f.what, What::TIMEOUT);
        c2.inc();
    });
    base.add(id, Some(Duration::from_secs(10))).unwrap();
    base.activate(id, What::TIMEOUT, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(c.get(), 1);
    assert_eq!(base.pending(id, ALL_WHAT).unwrap(), (What::NONE, None));
}

/// Activating a pending persistent event leaves it pending after its callback.
fn activate_persistent_stays_pending(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::PERSIST,
        move |_, f| l.push(f.what),
    )
    .unwrap();
    base.activate(id, What::READ, 1).unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec![What::READ]);
    assert_eq!(base.pending(id, ALL_WHAT).unwrap().0, What::READ);
    // Not ready, not active: another non-blocking round runs nothing.
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(log.len(), 1);
}

/// Manually activated events of one priority run in activation order.
fn activation_order_is_fifo(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let ids: Vec<_> = (0..5)
        .map(|i| {
            let l = log.clone();
            base.new_timer(move |_, _| l.push(i))
        })
        .collect();
    for i in [3, 0, 4, 1, 2] {
        base.activate(ids[i], What::TIMEOUT, 1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![3, 0, 4, 1, 2]);
}

/// `once` with a timeout: fires once with TIMEOUT no earlier than asked, leaves nothing pending.
fn once_timeout(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let start = Instant::now();
    base.once(
        -1,
        What::TIMEOUT,
        Some(Duration::from_millis(20)),
        move |_, f| l.push((f.fd, f.what, Instant::now())),
    )
    .unwrap();
    let mut visited = 0;
    base.foreach_event(|_| {
        visited += 1;
        true
    });
    assert_eq!(visited, 1, "the once event is added until it fires");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1), (-1, What::TIMEOUT));
    assert!(got[0].2 - start >= Duration::from_millis(20));
    let mut visited = 0;
    base.foreach_event(|_| {
        visited += 1;
        true
    });
    assert_eq!(visited, 0, "nothing is left after a once event fired");
}

/// `once` with no timeout and no fd runs at the next iteration.
fn once_immediate(m: Method) {
    let mut base = base(m);
    let c = Counter::new();
    let c2 = c.clone();
    base.once(-1, What::TIMEOUT, None, move |_, f| {
        assert_eq!(f.what, What::TIMEOUT);
        c2.inc();
    })
    .unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(c.get(), 1);
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(c.get(), 1);
}

/// `once` on an fd: fires once with READ even if data stays unread; nothing left pending.
fn once_fd_read(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    base.once(
        a.as_raw_fd(),
        What::READ,
        Some(Duration::from_secs(10)),
        move |_, f| l.push((f.fd, f.what)),
    )
    .unwrap();
    send(&mut b, b"x");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![(a.as_raw_fd(), What::READ)]);
}

/// `once` on an fd with a timeout and no data: fires once with TIMEOUT.
fn once_fd_timeout(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    base.once(
        a.as_raw_fd(),
        What::READ,
        Some(Duration::from_millis(15)),
        move |_, f| l.push(f.what),
    )
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![What::TIMEOUT]);
}

/// `once` refuses PERSIST and SIGNAL (libevent's event_base_once returns -1 for them).
fn once_rejects_persist_and_signal(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    assert!(base
        .once(a.as_raw_fd(), What::READ | What::PERSIST, None, |_, _| {})
        .is_err());
    assert!(base
        .once(libc::SIGUSR1, What::SIGNAL, None, |_, _| {})
        .is_err());
    assert_eq!(step(&mut base).unwrap(), LoopExit::NoEvents);
}

/// A once callback can schedule another once.
fn once_chain(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    base.once(
        -1,
        What::TIMEOUT,
        Some(Duration::from_millis(1)),
        move |b, _| {
            l.push(1);
            let l2 = l.clone();
            b.once(
                -1,
                What::TIMEOUT,
                Some(Duration::from_millis(1)),
                move |_, _| l2.push(2),
            )
            .unwrap();
        },
    )
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![1, 2]);
}

/// ET on epoll fires once per new data; on poll and select it is refused with Unsupported.
fn edge_triggered(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let c = Counter::new();
    let c2 = c.clone();
    let r = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::ET | What::PERSIST,
        move |_, f| {
            assert_eq!(f.what, What::READ);
            c2.inc();
        },
    );
    if !has_et(m) {
        assert_unsupported(r, name(m));
        return;
    }
    let _ = r.unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(c.get(), 0);
    send(&mut b, b"1");
    for _ in 0..3 {
        assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    }
    assert_eq!(
        c.get(),
        1,
        "one edge, one callback although the byte is still unread"
    );
    send(&mut b, b"2");
    for _ in 0..3 {
        assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    }
    assert_eq!(c.get(), 2);
}

/// CLOSED: the peer's shutdown is reported as CLOSED (epoll, poll); Unsupported on select.
fn closed_on_peer_shutdown(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let r = register(&mut base, a.as_raw_fd(), What::CLOSED, move |_, f| {
        l.push(f.what)
    });
    if !has_closed(m) {
        assert_unsupported(r, name(m));
        return;
    }
    let _ = r.unwrap();
    // Data alone is not a close.
    send(&mut b, b"x");
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert!(
        log.get().is_empty(),
        "CLOSED fired on data: {:?}",
        log.get()
    );
    b.shutdown(std::net::Shutdown::Write).unwrap();
    let (g, guard_fired) = guard(&mut base, Duration::from_secs(10));
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert!(!guard_fired.get());
    base.del(g).unwrap();
    assert_eq!(log.get(), vec![What::CLOSED]);
}

/// READ|CLOSED: the peer's close shows as READ (EOF is readable) and CLOSED together.
fn read_closed_on_peer_close(m: Method) {
    let mut base = base(m);
    let (a, b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let r = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::CLOSED,
        move |_, f| l.push(f.what),
    );
    if !has_closed(m) {
        assert_unsupported(r, name(m));
        return;
    }
    let _ = r.unwrap();
    drop(b);
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![What::READ | What::CLOSED]);
}

/// A persistent event frees itself in its callback: its id is stale afterwards, the loop goes on.
fn free_self_in_callback(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let id = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::PERSIST,
        move |base, f| {
            l.push("read");
            base.free(f.id).unwrap();
            assert_stale(
                base.pending(f.id, What::READ),
                "pending after free in callback",
            );
        },
    )
    .unwrap();
    let l = log.clone();
    let t = base.new_timer(move |_, _| l.push("timer"));
    base.add(t, Some(Duration::from_millis(20))).unwrap();
    send(&mut b, b"x");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["read", "timer"]);
    assert_stale(base.add(id, None), "add after free");
}

/// Deleting (or freeing) another event that is already active cancels its callback.
fn del_active_event_cancels_callback(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let b_id = {
        let l = log.clone();
        base.new_timer(move |_, _| l.push("b"))
    };
    let c_id = {
        let l = log.clone();
        base.new_timer(move |_, _| l.push("c"))
    };
    let d_id = {
        let l = log.clone();
        base.new_timer(move |_, _| l.push("d"))
    };
    let a_id = {
        let l = log.clone();
        base.new_timer(move |base, _| {
            l.push("a");
            base.del(b_id).unwrap();
            base.free(c_id).unwrap();
        })
    };
    for id in [a_id, b_id, c_id, d_id] {
        base.activate(id, What::TIMEOUT, 1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["a", "d"]);
    assert_stale(base.activate(c_id, What::TIMEOUT, 1), "activate after free");
    // b was only deleted: it can be activated again.
    base.activate(b_id, What::TIMEOUT, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["a", "d", "b"]);
}

/// Two fds ready in the same iteration: whichever callback runs first deletes the other event, which
/// therefore never runs.
fn del_io_active_event_cancels_callback(m: Method) {
    let mut base = base(m);
    let (a1, mut b1) = socketpair();
    let (a2, mut b2) = socketpair();
    let log = Log::new();
    let ids = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for (tag, fd) in [(1, a1.as_raw_fd()), (2, a2.as_raw_fd())] {
        let (l, ids2) = (log.clone(), ids.clone());
        let id = register(&mut base, fd, What::READ | What::PERSIST, move |base, f| {
            l.push(tag);
            for &other in ids2.borrow().iter() {
                base.del(other).unwrap();
            }
            let _ = f;
        })
        .unwrap();
        ids.borrow_mut().push(id);
    }
    send(&mut b1, b"x");
    send(&mut b2, b"x");
    // Both are ready before the loop waits, so both become active in its first iteration.
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(
        log.len(),
        1,
        "only the first of two active events ran: {:?}",
        log.get()
    );
}

/// Callbacks add new events (an fd event and a timer) that then fire in the same dispatch.
fn add_events_from_callback(m: Method) {
    let mut base = base(m);
    let (a, mut b) = socketpair();
    send(&mut b, b"x");
    let afd = a.as_raw_fd();
    let log = Log::new();
    let l = log.clone();
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        l.push("first");
        let l1 = l.clone();
        let _ = register(base, afd, What::READ, move |_, f| {
            l1.push(if f.what == What::READ { "read" } else { "?" })
        })
        .unwrap();
        let l2 = l.clone();
        let t = base.new_timer(move |_, _| l2.push("timer"));
        base.add(t, Some(Duration::from_millis(20))).unwrap();
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["first", "read", "timer"]);
}

/// A non-persistent event re-adds itself from its callback and so fires again.
fn readd_self_from_callback(m: Method) {
    let mut base = base(m);
    let c = Counter::new();
    let c2 = c.clone();
    let id = base.new_timer(move |base, f| {
        c2.inc();
        assert_eq!(base.pending(f.id, ALL_WHAT).unwrap().0, What::NONE);
        if c2.get() < 3 {
            base.add(f.id, Some(Duration::from_millis(1))).unwrap();
        }
    });
    base.add(id, Some(Duration::from_millis(1))).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(c.get(), 3);
}

/// After free, a new event may reuse the slot; the old id stays stale for every operation and never
/// reaches the new event.
fn stale_id_after_slot_reuse(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let old = base.new_timer(move |_, _| l.push("old"));
    base.add(old, Some(Duration::from_secs(10))).unwrap();
    base.free(old).unwrap();
    let l = log.clone();
    let new = base.new_timer(move |_, _| l.push("new"));
    assert_ne!(old, new);
    assert_stale(base.add(old, None), "add");
    assert_stale(base.del(old), "del");
    assert_stale(base.activate(old, What::TIMEOUT, 1), "activate");
    assert_stale(base.pending(old, ALL_WHAT), "pending");
    assert_stale(base.set_priority(old, 0), "set_priority");
    assert_stale(base.free(old), "free twice");
    assert_eq!(
        base.pending(new, ALL_WHAT).unwrap(),
        (What::NONE, None),
        "new event untouched"
    );
    base.activate(new, What::TIMEOUT, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["new"]);
}

/// Same as above, from inside a callback: free an event, create another, use the old id.
fn stale_id_after_slot_reuse_in_callback(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let victim = base.new_timer(move |_, _| l.push("victim"));
    base.add(victim, Some(Duration::from_millis(30))).unwrap();
    let l = log.clone();
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        base.free(victim).unwrap();
        let l2 = l.clone();
        let fresh = base.new_timer(move |_, _| l2.push("fresh"));
        base.add(fresh, Some(Duration::from_millis(5))).unwrap();
        assert_stale(
            base.add(victim, Some(Duration::from_millis(1))),
            "add in callback",
        );
        assert_stale(
            base.activate(victim, What::TIMEOUT, 1),
            "activate in callback",
        );
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["fresh"]);
}

/// Freeing a pending event removes it: the loop has nothing left.
fn free_pending_event(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let c = Counter::new();
    let c2 = c.clone();
    let id = register(
        &mut base,
        a.as_raw_fd(),
        What::WRITE | What::PERSIST,
        move |_, _| c2.inc(),
    )
    .unwrap();
    let t = base.new_timer(|_, _| {});
    base.add(t, Some(Duration::from_secs(10))).unwrap();
    base.free(id).unwrap();
    base.free(t).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(c.get(), 0);
}

/// Dropping a base with pending events, callbacks holding resources, is clean (the closures are
/// dropped).
fn drop_base_drops_callbacks(m: Method) {
    let token = std::rc::Rc::new(());
    {
        let mut base = base(m);
        let (a, _b) = socketpair();
        let t1 = token.clone();
        let _ = register(&mut base, a.as_raw_fd(), What::READ, move |_, _| {
            drop(t1.clone())
        })
        .unwrap();
        let t2 = token.clone();
        base.once(
            -1,
            What::TIMEOUT,
            Some(Duration::from_secs(10)),
            move |_, _| drop(t2),
        )
        .unwrap();
        assert_eq!(std::rc::Rc::strong_count(&token), 3);
    }
    assert_eq!(std::rc::Rc::strong_count(&token), 1);
}

/// A callback frees its own event and creates another, which may take the same slot: the new event
/// keeps its own callback (the old one is dropped, not put back into the slot).
fn free_self_and_reuse_slot_in_callback(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let a = base.new_timer(move |base, f| {
        l.push("a");
        base.free(f.id).unwrap();
        let l2 = l.clone();
        let b = base.new_timer(move |_, _| l2.push("b"));
        assert_ne!(b, f.id);
        base.activate(b, What::TIMEOUT, 1).unwrap();
        assert_stale(base.pending(f.id, What::TIMEOUT), "own id after free");
    });
    base.activate(a, What::TIMEOUT, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["a", "b"]);
}

/// With EPOLL_USE_CHANGELIST (ignored by poll and select), churn in callbacks still works: del and
/// re-add in one callback, a second event on the fd added and deleted.
fn changelist_flag_churn(m: Method) {
    let mut cfg = config(m);
    cfg.set_flag(revent::ConfigFlags::EPOLL_USE_CHANGELIST);
    let mut base = base_with(m, &cfg);
    let (a, b) = socketpair();
    let fd = a.as_raw_fd();
    let b = std::rc::Rc::new(std::cell::RefCell::new(b));
    let log = Log::new();
    let (l, b2) = (log.clone(), b.clone());
    let id = register(&mut base, fd, What::READ | What::PERSIST, move |base, f| {
        l.push(read_fd(f.fd));
        base.del(f.id).unwrap();
        base.add(f.id, None).unwrap();
        let w = register(base, f.fd, What::WRITE, |_, _| {}).unwrap();
        base.free(w).unwrap();
        if l.len() < 3 {
            send(&mut b2.borrow_mut(), b"more");
        } else {
            base.del(f.id).unwrap();
        }
    })
    .unwrap();
    send(&mut b.borrow_mut(), b"first");
    let (g, guard_fired) = guard(&mut base, Duration::from_secs(10));
    while log.len() < 3 && !guard_fired.get() {
        base.run(LoopFlags::ONCE).unwrap();
    }
    assert!(!guard_fired.get());
    base.free(g).unwrap();
    assert_eq!(
        log.get(),
        vec![b"first".to_vec(), b"more".to_vec(), b"more".to_vec()]
    );
    assert_eq!(base.pending(id, ALL_WHAT).unwrap().0, What::NONE);
}

per_backend!(
    backend_features,
    read_nonpersistent_fires_once,
    read_persistent_fires_repeatedly,
    level_triggered_fires_while_data_unread,
    write_event_fires,
    read_write_event_sees_only_ready_flags,
    read_and_write_events_on_one_fd,
    two_read_events_on_one_fd_both_fire,
    del_one_of_two_events_on_one_fd,
    fd_event_timeout_fires,
    fd_event_read_before_timeout_cancels_timeout,
    persistent_fd_event_timeout_rearms,
    persistent_fd_event_read_resets_timeout,
    activate_not_added_event,
    activate_twice_ors_flags,
    activate_pending_timer_runs_once,
    activate_persistent_stays_pending,
    activation_order_is_fifo,
    once_timeout,
    once_immediate,
    once_fd_read,
    once_fd_timeout,
    once_rejects_persist_and_signal,
    once_chain,
    edge_triggered,
    closed_on_peer_shutdown,
    read_closed_on_peer_close,
    free_self_in_callback,
    del_active_event_cancels_callback,
    del_io_active_event_cancels_callback,
    add_events_from_callback,
    readd_self_from_callback,
    stale_id_after_slot_reuse,
    stale_id_after_slot_reuse_in_callback,
    free_pending_event,
    drop_base_drops_callbacks,
    free_self_and_reuse_slot_in_callback,
    changelist_flag_churn,
);

/// A handle read from zeroed memory (a C caller's `struct event` before `event_assign`) never names
/// a live event, even when slot 0 is in use.
#[test]
fn a_zeroed_handle_is_never_live() {
    let mut base = revent::EventBase::new().unwrap();
    let ev = base.new_timer(|_, _| {});
    assert_eq!(ev.to_raw() as u32, 0, "the first event takes slot 0");
    let zeroed = revent::EventId::from_raw(0);
    assert_stale(base.add(zeroed, None), "zeroed handle");
    assert_stale(base.free(zeroed), "zeroed handle");
    base.free(ev).unwrap();
}
