//! Signals: arrivals counted and delivered, several events on one signal, the previous disposition
//! restored after the last event goes, a signal waking a sleeping loop, timeouts on signal events, and
//! bad signal numbers. Signal dispositions are process-wide, so every test here holds `serial()`.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use revent::util::raise;
use revent::{Error, LoopExit, LoopFlags, Method, What};

static HITS: AtomicU32 = AtomicU32::new(0);

extern "C" fn counting_handler(_: libc::c_int) {
    HITS.fetch_add(1, Ordering::SeqCst);
}

fn handler_addr() -> libc::sighandler_t {
    counting_handler as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// Installs a plain disposition (SIG_IGN, SIG_DFL or a handler address) for `signo`.
fn set_disposition(signo: i32, h: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction is valid; we pass live pointers to it.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = h;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(signo, &sa, std::ptr::null_mut()), 0);
    }
}

/// The current disposition of `signo`.
fn disposition(signo: i32) -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is valid; sigaction only writes into it.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signo, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Three arrivals before the loop runs: the callback(s) see SIGNAL, the signal number, and counts
/// that add up to exactly 3. Afterwards SIG_IGN is back.
fn arrivals_are_counted(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR1, libc::SIG_IGN);
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(20));
    let total = Counter::new();
    let t = total.clone();
    let id = base
        .new_signal(libc::SIGUSR1, move |b, f| {
            assert_eq!(f.what, What::SIGNAL);
            assert_eq!(f.fd, libc::SIGUSR1);
            assert!(f.count >= 1);
            for _ in 0..f.count {
                t.inc();
            }
            if t.get() >= 3 {
                b.free(f.id).unwrap();
                b.free(guard_id).unwrap();
            }
        })
        .unwrap();
    base.add(id, None).unwrap();
    assert_ne!(
        disposition(libc::SIGUSR1),
        libc::SIG_IGN,
        "revent's handler is installed"
    );
    for _ in 0..3 {
        raise(libc::SIGUSR1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert!(!guard_fired.get());
    assert_eq!(total.get(), 3);
    assert_eq!(
        disposition(libc::SIGUSR1),
        libc::SIG_IGN,
        "SIG_IGN restored after the event was freed"
    );
}

/// Two events on one signal both see every arrival; deleting one leaves the other working; deleting
/// the last restores the handler that was there before, which then gets the signal again.
fn several_events_one_signal_and_restore(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR2, handler_addr());
    let hits0 = HITS.load(Ordering::SeqCst);
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(20));
    let (ca, cb) = (Counter::new(), Counter::new());
    let (a2, b2) = (ca.clone(), cb.clone());
    let ea = base
        .new_signal(libc::SIGUSR2, move |_, f| {
            for _ in 0..f.count {
                a2.inc();
            }
        })
        .unwrap();
    let eb = base
        .new_signal(libc::SIGUSR2, move |_, f| {
            for _ in 0..f.count {
                b2.inc();
            }
        })
        .unwrap();
    base.add(ea, None).unwrap();
    base.add(eb, None).unwrap();
    raise(libc::SIGUSR2).unwrap();
    raise(libc::SIGUSR2).unwrap();
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!((ca.get(), cb.get()), (2, 2));
    base.del(ea).unwrap();
    assert_ne!(
        disposition(libc::SIGUSR2),
        handler_addr(),
        "one event is still watching"
    );
    raise(libc::SIGUSR2).unwrap();
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!((ca.get(), cb.get()), (2, 3));
    assert_eq!(
        HITS.load(Ordering::SeqCst),
        hits0,
        "the old handler saw nothing meanwhile"
    );
    base.del(eb).unwrap();
    assert_eq!(
        disposition(libc::SIGUSR2),
        handler_addr(),
        "the old handler is back"
    );
    raise(libc::SIGUSR2).unwrap();
    assert_eq!(HITS.load(Ordering::SeqCst), hits0 + 1);
    assert!(!guard_fired.get());
    base.free(guard_id).unwrap();
    // Adding again re-installs revent's handler; freeing restores again.
    base.add(ea, None).unwrap();
    assert_ne!(disposition(libc::SIGUSR2), handler_addr());
    base.free(ea).unwrap();
    assert_eq!(disposition(libc::SIGUSR2), handler_addr());
    set_disposition(libc::SIGUSR2, libc::SIG_IGN);
}

/// SIG_DFL is restored too (never raised here: it would kill the process).
fn restores_default_disposition(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR1, libc::SIG_DFL);
    {
        let mut base = base(m);
        let id = base.new_signal(libc::SIGUSR1, |_, _| {}).unwrap();
        base.add(id, None).unwrap();
        assert_ne!(disposition(libc::SIGUSR1), libc::SIG_DFL);
        base.del(id).unwrap();
        assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
        base.add(id, None).unwrap();
        assert_ne!(disposition(libc::SIGUSR1), libc::SIG_DFL);
        // Dropping the base with the event still added restores it as well.
    }
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_DFL);
    set_disposition(libc::SIGUSR1, libc::SIG_IGN);
}

/// A non-persistent signal event fires once and is deleted, which restores the disposition.
fn nonpersistent_signal_fires_once(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR1, libc::SIG_IGN);
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_event(libc::SIGUSR1, What::SIGNAL, move |b, f| {
            l.push((f.what, f.count));
            assert_eq!(b.pending(f.id, What::SIGNAL).unwrap().0, What::NONE);
        })
        .unwrap();
    base.add(id, None).unwrap();
    raise(libc::SIGUSR1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![(What::SIGNAL, 1)]);
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_IGN);
}

/// A signal raised by another thread while the loop sleeps (nothing else due for 20 s) wakes it.
fn signal_wakes_sleeping_loop(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR1, libc::SIG_IGN);
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(20));
    let got = Counter::new();
    let g = got.clone();
    let id = base
        .new_signal(libc::SIGUSR1, move |b, f| {
            g.inc();
            b.free(f.id).unwrap();
            b.free(guard_id).unwrap();
        })
        .unwrap();
    base.add(id, None).unwrap();
    let start = Instant::now();
    let t = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: kill with our own pid and a signal number is a plain syscall.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) }, 0);
    });
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    t.join().unwrap();
    assert!(!guard_fired.get(), "the loop slept through the signal");
    assert_eq!(got.get(), 1);
    assert!(start.elapsed() >= Duration::from_millis(50));
}

/// Same, with the signal sent to the helper thread itself (`raise`): the handler runs there and must
/// still wake the loop's thread.
fn signal_raised_in_other_thread_wakes_loop(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR2, libc::SIG_IGN);
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(20));
    let got = Counter::new();
    let g = got.clone();
    let id = base
        .new_signal(libc::SIGUSR2, move |b, f| {
            g.inc();
            b.free(f.id).unwrap();
            b.free(guard_id).unwrap();
        })
        .unwrap();
    base.add(id, None).unwrap();
    let t = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(30));
        raise(libc::SIGUSR2).unwrap();
    });
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    t.join().unwrap();
    assert!(!guard_fired.get());
    assert_eq!(got.get(), 1);
}

/// `activate` on a signal event passes the count through.
fn activate_signal_with_count(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR1, libc::SIG_IGN);
    let mut base = base(m);
    let total = Counter::new();
    let t = total.clone();
    let id = base
        .new_signal(libc::SIGUSR1, move |_, f| {
            assert_eq!(f.what, What::SIGNAL);
            for _ in 0..f.count {
                t.inc();
            }
        })
        .unwrap();
    base.activate(id, What::SIGNAL, 3).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(total.get(), 3);
}

/// A signal event with a timeout fires with TIMEOUT when no signal comes.
fn signal_event_timeout(m: Method) {
    let _s = serial();
    set_disposition(libc::SIGUSR1, libc::SIG_IGN);
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let id = base
        .new_signal(libc::SIGUSR1, move |b, f| {
            l.push(f.what);
            if l.len() == 2 {
                b.free(f.id).unwrap();
            }
        })
        .unwrap();
    let start = Instant::now();
    base.add(id, Some(Duration::from_millis(15))).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_at_least(
        start,
        Instant::now(),
        Duration::from_millis(30),
        "two 15 ms timeouts",
    );
    assert_eq!(log.get(), vec![What::TIMEOUT, What::TIMEOUT]);
    assert_eq!(disposition(libc::SIGUSR1), libc::SIG_IGN);
}

/// Signal numbers that cannot be caught are refused with BadSignal; SIGNAL with READ is invalid.
fn bad_signals(m: Method) {
    let _s = serial();
    let mut base = base(m);
    for signo in [0, -1, 65, 1000, libc::SIGKILL, libc::SIGSTOP] {
        match base.new_signal(signo, |_, _| {}) {
            Err(Error::BadSignal(n)) => assert_eq!(n, signo),
            other => panic!("new_signal({signo}): expected BadSignal, got {other:?}"),
        }
        match base.new_event(signo, What::SIGNAL | What::PERSIST, |_, _| {}) {
            Err(Error::BadSignal(n)) => assert_eq!(n, signo),
            other => panic!("new_event({signo}, SIGNAL): expected BadSignal, got {other:?}"),
        }
    }
    assert!(matches!(
        base.new_event(libc::SIGUSR1, What::SIGNAL | What::READ, |_, _| {}),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
}

per_backend!(
    arrivals_are_counted,
    several_events_one_signal_and_restore,
    restores_default_disposition,
    nonpersistent_signal_fires_once,
    signal_wakes_sleeping_loop,
    signal_raised_in_other_thread_wakes_loop,
    activate_signal_with_count,
    signal_event_timeout,
    bad_signals,
);
