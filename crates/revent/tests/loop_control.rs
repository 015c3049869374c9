//! Loop control: NoEvents, loopexit (now and delayed), loopbreak, loopcontinue, got_exit/got_break,
//! ONCE, NONBLOCK, NO_EXIT_ON_EMPTY, and a nested run.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use revent::{Error, EventBase, EventId, LoopExit, LoopFlags, Method, What};

const MS: Duration = Duration::from_millis(1);

/// A timer (never added) that logs `tag` when run, then runs `then`.
fn tagged<F>(base: &mut EventBase, log: &Log<&'static str>, tag: &'static str, then: F) -> EventId
where
    F: Fn(&mut EventBase) + 'static,
{
    let l = log.clone();
    base.new_timer(move |b, _| {
        l.push(tag);
        then(b);
    })
}

/// An empty base: the loop returns NoEvents at once, whatever the flags, unless NO_EXIT_ON_EMPTY.
fn empty_base_returns_noevents(m: Method) {
    let mut base = base(m);
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::NoEvents);
    assert_eq!(base.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
    assert_eq!(step(&mut base).unwrap(), LoopExit::NoEvents);
    assert_eq!(
        base.run(LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY)
            .unwrap(),
        LoopExit::Done,
        "NO_EXIT_ON_EMPTY: the empty base is polled once, then NONBLOCK returns"
    );
    assert_eq!(
        base.run(LoopFlags::ONCE | LoopFlags::NONBLOCK | LoopFlags::NO_EXIT_ON_EMPTY)
            .unwrap(),
        LoopExit::Done
    );
    assert!(!base.got_exit() && !base.got_break());
}

/// An event that is created but never added does not keep the loop running.
fn unadded_events_do_not_count(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let _ = base
        .new_event(a.as_raw_fd(), What::READ, |_, _| {})
        .unwrap();
    let _ = base.new_timer(|_, _| {});
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
}

/// loopexit(None) from a callback: the other callbacks already active in this iteration still run,
/// then the loop returns Done with got_exit set.
fn loopexit_now_runs_rest_of_iteration(m: Method) {
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(30));
    let log = Log::new();
    let a = tagged(&mut base, &log, "a", |b| b.loopexit(None).unwrap());
    let b = tagged(&mut base, &log, "b", |_| {});
    let c = tagged(&mut base, &log, "c", |_| {});
    for id in [a, b, c] {
        base.activate(id, What::TIMEOUT, 1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["a", "b", "c"]);
    assert!(base.got_exit());
    assert!(!base.got_break());
    assert!(!guard_fired.get());
    assert_eq!(
        base.pending(guard_id, What::TIMEOUT).unwrap().0,
        What::TIMEOUT,
        "the guard is still pending"
    );
    // The flags are cleared when the loop runs again.
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert!(!base.got_exit());
    base.free(guard_id).unwrap();
}

/// loopexit(None) before the loop runs: the loop runs the active callbacks, then returns.
fn loopexit_before_dispatch(m: Method) {
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(30));
    let log = Log::new();
    let x = tagged(&mut base, &log, "x", |_| {});
    base.activate(x, What::TIMEOUT, 1).unwrap();
    base.loopexit(None).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["x"]);
    assert!(base.got_exit() && !guard_fired.get());
    base.free(guard_id).unwrap();
}

/// loopexit with a delay: the loop runs other events until then, returns no earlier.
fn loopexit_with_delay(m: Method) {
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(30));
    let c = Counter::new();
    let c2 = c.clone();
    let tick = base
        .new_event(-1, What::PERSIST, move |_, _| c2.inc())
        .unwrap();
    base.add(tick, Some(5 * MS)).unwrap();
    let start = Instant::now();
    base.loopexit(Some(40 * MS)).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_at_least(start, Instant::now(), 40 * MS, "loopexit(40 ms)");
    assert!(base.got_exit() && !base.got_break() && !guard_fired.get());
    assert!(c.get() >= 1, "the 5 ms timer ran before the exit");
    base.free(tick).unwrap();
    base.free(guard_id).unwrap();
}

/// loopexit with a delay from a callback; the loop stops when it expires, not at the first event.
fn loopexit_with_delay_from_callback(m: Method) {
    let mut base = base(m);
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(30));
    let log = Log::new();
    let set_at = std::rc::Rc::new(std::cell::Cell::new(None));
    let s = set_at.clone();
    let l = log.clone();
    base.once(-1, What::TIMEOUT, None, move |b, _| {
        s.set(Some(Instant::now()));
        b.loopexit(Some(30 * MS)).unwrap();
        // Something to run meanwhile.
        let l2 = l.clone();
        b.once(-1, What::TIMEOUT, Some(5 * MS), move |_, _| {
            l2.push("meanwhile")
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_at_least(
        set_at.get().unwrap(),
        Instant::now(),
        30 * MS,
        "loopexit(30 ms) from a callback",
    );
    assert_eq!(log.get(), vec!["meanwhile"]);
    assert!(base.got_exit() && !guard_fired.get());
    base.free(guard_id).unwrap();
}

/// loopbreak stops right after the current callback: the other active callbacks wait for the next
/// run, which runs them in order.
fn loopbreak_stops_after_current_callback(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let a = tagged(&mut base, &log, "a", |b| b.loopbreak());
    let b = tagged(&mut base, &log, "b", |_| {});
    let c = tagged(&mut base, &log, "c", |_| {});
    for id in [a, b, c] {
        base.activate(id, What::TIMEOUT, 1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["a"]);
    assert!(base.got_break());
    assert!(!base.got_exit());
    assert_eq!(
        base.pending(b, What::TIMEOUT).unwrap().0,
        What::TIMEOUT,
        "b is still active"
    );
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["a", "b", "c"]);
    assert!(!base.got_break(), "cleared when the loop starts again");
}

/// loopbreak from a persistent fd event: the loop stops, the event stays pending.
fn loopbreak_from_persistent_event(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let c = Counter::new();
    let c2 = c.clone();
    let id = register(
        &mut base,
        a.as_raw_fd(),
        What::WRITE | What::PERSIST,
        move |b, _| {
            c2.inc();
            b.loopbreak();
        },
    )
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_eq!(c.get(), 1);
    assert_eq!(base.pending(id, What::WRITE).unwrap().0, What::WRITE);
    assert_eq!(base.dispatch().unwrap(), LoopExit::Done);
    assert_eq!(c.get(), 2);
}

/// libevent clears the break flag when the loop starts: loopbreak outside the loop has no effect.
fn loopbreak_outside_loop_is_ignored(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let x = tagged(&mut base, &log, "x", |_| {});
    base.loopbreak();
    base.activate(x, What::TIMEOUT, 1).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["x"]);
}

/// loopcontinue: the loop stops running the current queue and polls again, so a higher-priority
/// event activated by the callback runs before the rest of the lower queue; without it, the lower
/// queue is finished first.
fn loopcontinue_rechecks_priorities(m: Method) {
    for cont in [false, true] {
        let mut base = base_prio(m, 2);
        let log = Log::new();
        let h = tagged(&mut base, &log, "h", |_| {});
        base.set_priority(h, 0).unwrap();
        let a = tagged(&mut base, &log, "a", move |b| {
            b.activate(h, What::TIMEOUT, 1).unwrap();
            if cont {
                b.loopcontinue();
            }
        });
        let b = tagged(&mut base, &log, "b", |_| {});
        let c = tagged(&mut base, &log, "c", |_| {});
        for id in [a, b, c] {
            base.set_priority(id, 1).unwrap();
            base.activate(id, What::TIMEOUT, 1).unwrap();
        }
        assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
        if cont {
            assert_eq!(log.get(), vec!["a", "h", "b", "c"]);
        } else {
            assert_eq!(log.get(), vec!["a", "b", "c", "h"]);
        }
        assert!(!base.got_exit() && !base.got_break());
    }
}

/// ONCE: waits for the first event, runs it, returns Done; the later timer stays pending.
fn once_flag_runs_one_batch(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let t1 = tagged(&mut base, &log, "t1", |_| {});
    let t2 = tagged(&mut base, &log, "t2", |_| {});
    base.add(t1, Some(10 * MS)).unwrap();
    base.add(t2, Some(200 * MS)).unwrap();
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["t1"]);
    assert_eq!(base.pending(t2, What::TIMEOUT).unwrap().0, What::TIMEOUT);
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["t1", "t2"]);
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::NoEvents);
}

/// ONCE runs every callback active in that iteration, across all priorities.
fn once_flag_drains_all_active(m: Method) {
    let mut base = base_prio(m, 3);
    let log = Log::new();
    let ids: Vec<EventId> = ["l", "m", "h", "m2"]
        .into_iter()
        .map(|t| tagged(&mut base, &log, t, |_| {}))
        .collect();
    for (id, pri) in ids.iter().zip([2, 1, 0, 1]) {
        base.set_priority(*id, pri).unwrap();
        base.activate(*id, What::TIMEOUT, 1).unwrap();
    }
    let (guard_id, guard_fired) = guard(&mut base, Duration::from_secs(30));
    assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["h", "m", "m2", "l"]);
    assert!(!guard_fired.get());
    base.free(guard_id).unwrap();
}

/// NONBLOCK does not wait: a pending 30 s timer does not fire, and the run returns Done.
fn nonblock_does_not_wait(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let t = tagged(&mut base, &log, "t", |_| {});
    base.add(t, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(base.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::Done);
    assert!(log.get().is_empty());
    // Ready fds are still served.
    let (a, mut b) = socketpair();
    let l = log.clone();
    let _read = register(&mut base, a.as_raw_fd(), What::READ, move |_, _| {
        l.push("read")
    })
    .unwrap();
    send(&mut b, b"x");
    assert_eq!(base.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::Done);
    assert_eq!(log.get(), vec!["read"]);
    base.del(t).unwrap();
}

/// The loop cannot be run again from inside one of its callbacks.
fn nested_run_is_refused(m: Method) {
    let mut base = base(m);
    let ok = std::rc::Rc::new(std::cell::Cell::new(false));
    let o = ok.clone();
    base.once(-1, What::TIMEOUT, None, move |b, _| {
        assert!(matches!(b.dispatch(), Err(Error::InvalidArgument(_))));
        assert!(b.run(LoopFlags::NONBLOCK).is_err());
        o.set(true);
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert!(ok.get());
}

per_backend!(
    empty_base_returns_noevents,
    unadded_events_do_not_count,
    loopexit_now_runs_rest_of_iteration,
    loopexit_before_dispatch,
    loopexit_with_delay,
    loopexit_with_delay_from_callback,
    loopbreak_stops_after_current_callback,
    loopbreak_from_persistent_event,
    loopbreak_outside_loop_is_ignored,
    loopcontinue_rechecks_priorities,
    once_flag_runs_one_batch,
    once_flag_drains_all_active,
    nonblock_does_not_wait,
    nested_run_is_refused,
);
