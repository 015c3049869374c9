//! Priorities: default priority, limits, libevent 2.1's rule (each iteration runs only the
//! highest-priority non-empty queue, so a busy high priority starves the lower ones), and
//! max_dispatch_interval / max_callbacks.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::*;
use revent::{Error, EventBase, EventId, LoopExit, Method, What};

/// A never-added timer that logs `tag`, at priority `pri`, then runs `then`.
fn tagged<F>(
    base: &mut EventBase,
    log: &Log<&'static str>,
    tag: &'static str,
    pri: usize,
    then: F,
) -> EventId
where
    F: Fn(&mut EventBase) + 'static,
{
    let l = log.clone();
    let id = base.new_timer(move |b, _| {
        l.push(tag);
        then(b);
    });
    base.set_priority(id, pri).unwrap();
    id
}

fn is_invalid<T: std::fmt::Debug>(r: revent::Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArgument(_)))
}

/// New events get priority n/2; a fresh base has one queue.
fn default_priority_is_half(m: Method) {
    let mut base = base(m);
    let t = base.new_timer(|_, _| {});
    assert_eq!(base.event_info(t).unwrap().priority, 0);
    assert!(
        is_invalid(base.set_priority(t, 1)),
        "only priority 0 exists by default"
    );
    for (n, want) in [(1, 0), (2, 1), (3, 1), (4, 2), (255, 127)] {
        base.init_priorities(n).unwrap();
        let (a, _b) = socketpair();
        let ids = [
            base.new_timer(|_, _| {}),
            base.new_event(a.as_raw_fd(), What::READ, |_, _| {})
                .unwrap(),
        ];
        for id in ids {
            assert_eq!(
                base.event_info(id).unwrap().priority,
                want,
                "{n} priorities"
            );
            base.free(id).unwrap();
        }
    }
}

/// init_priorities takes 1..=255 (libevent: `npriorities < 1 || npriorities >= EVENT_MAX_PRIORITIES`
/// fails, EVENT_MAX_PRIORITIES being 256), and fails while an event is active.
fn init_priorities_limits(m: Method) {
    let mut base = base(m);
    assert!(is_invalid(base.init_priorities(0)));
    assert!(base.init_priorities(255).is_ok());
    assert!(
        base.init_priorities(256).is_err(),
        "libevent 2.1 refuses 256 priorities"
    );
    assert!(base.init_priorities(1000).is_err());
    base.init_priorities(3).unwrap();
    let t = base.new_timer(|_, _| {});
    base.activate(t, What::TIMEOUT, 1).unwrap();
    assert!(is_invalid(base.init_priorities(2)), "an event is active");
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    base.init_priorities(2).unwrap();
}

/// set_priority: in range only, and not while the event is active.
fn set_priority_rules(m: Method) {
    let mut base = base_prio(m, 3);
    let t = base.new_timer(|_, _| {});
    base.set_priority(t, 2).unwrap();
    assert_eq!(base.event_info(t).unwrap().priority, 2);
    assert!(is_invalid(base.set_priority(t, 3)));
    base.activate(t, What::TIMEOUT, 1).unwrap();
    assert!(is_invalid(base.set_priority(t, 0)), "active");
    assert_eq!(base.event_info(t).unwrap().priority, 2);
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    base.set_priority(t, 0).unwrap();
    // A pending (not active) event may change priority.
    base.add(t, Some(Duration::from_secs(10))).unwrap();
    base.set_priority(t, 1).unwrap();
    base.del(t).unwrap();
}

/// Active events run by priority, whatever the activation order; after a queue, the loop looks again
/// from the top, so an event a callback activates at a higher priority runs before the lower queues.
fn highest_priority_first(m: Method) {
    let mut base = base_prio(m, 3);
    let log = Log::new();
    let h2 = tagged(&mut base, &log, "h2", 0, |_| {});
    let l = tagged(&mut base, &log, "l", 2, |_| {});
    let m1 = tagged(&mut base, &log, "m1", 1, move |b| {
        b.activate(h2, What::TIMEOUT, 1).unwrap()
    });
    let m2 = tagged(&mut base, &log, "m2", 1, |_| {});
    let h = tagged(&mut base, &log, "h", 0, |_| {});
    for id in [l, m1, h, m2] {
        base.activate(id, What::TIMEOUT, 1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["h", "m1", "m2", "h2", "l"]);
}

/// Timers that expire together run by priority first, deadline second.
fn priority_beats_deadline(m: Method) {
    let mut base = base_prio(m, 2);
    let log = Log::new();
    let early_low = tagged(&mut base, &log, "early_low", 1, |_| {});
    let late_high = tagged(&mut base, &log, "late_high", 0, |_| {});
    base.once(-1, What::TIMEOUT, None, move |b, _| {
        b.add(early_low, Some(Duration::from_millis(1))).unwrap();
        b.add(late_high, Some(Duration::from_millis(3))).unwrap();
        // Both expire before the loop looks at timers again.
        std::thread::sleep(Duration::from_millis(10));
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["late_high", "early_low"]);
}

/// Starvation, libevent 2.1's rule: a high-priority persistent event that is active at every
/// iteration (an always-writable socket) keeps a low-priority one (also always writable) from
/// running at all, until it is deleted.
fn high_priority_starves_low(m: Method) {
    let mut base = base_prio(m, 2);
    let (a1, _b1) = socketpair();
    let (a2, _b2) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let hi = base
        .new_event(a1.as_raw_fd(), What::WRITE | What::PERSIST, move |b, f| {
            l.push("hi");
            if l.len() == 20 {
                b.del(f.id).unwrap();
            }
        })
        .unwrap();
    base.set_priority(hi, 0).unwrap();
    let l = log.clone();
    let lo = base
        .new_event(a2.as_raw_fd(), What::WRITE | What::PERSIST, move |b, f| {
            l.push("lo");
            b.del(f.id).unwrap();
        })
        .unwrap();
    base.set_priority(lo, 1).unwrap();
    base.add(lo, None).unwrap();
    base.add(hi, None).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let mut want = vec!["hi"; 20];
    want.push("lo");
    assert_eq!(log.get(), want);
}

/// max_callbacks: after that many callbacks of a limited priority, the loop polls again and looks at
/// higher priorities; priorities below `min_priority` are not limited.
fn max_callbacks_limits_a_queue(m: Method) {
    for (min_priority, want) in [
        (0, vec!["l1", "l2", "h", "l3", "l4"]),
        (1, vec!["l1", "l2", "h", "l3", "l4"]),
        (2, vec!["l1", "l2", "l3", "l4", "h"]),
    ] {
        let mut cfg = config(m);
        cfg.max_dispatch_interval(None, 2, min_priority);
        let mut base = base_with(m, &cfg);
        base.init_priorities(2).unwrap();
        let log = Log::new();
        let h = tagged(&mut base, &log, "h", 0, |_| {});
        let ls = [
            tagged(&mut base, &log, "l1", 1, move |b| {
                b.activate(h, What::TIMEOUT, 1).unwrap()
            }),
            tagged(&mut base, &log, "l2", 1, |_| {}),
            tagged(&mut base, &log, "l3", 1, |_| {}),
            tagged(&mut base, &log, "l4", 1, |_| {}),
        ];
        for id in ls {
            base.activate(id, What::TIMEOUT, 1).unwrap();
        }
        assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
        assert_eq!(log.get(), want, "min_priority {min_priority}");
    }
}

/// max_interval zero: the loop polls again after every callback of a limited priority.
fn max_interval_zero_polls_after_each_callback(m: Method) {
    let mut cfg = config(m);
    cfg.max_dispatch_interval(Some(Duration::ZERO), 0, 0);
    let mut base = base_with(m, &cfg);
    base.init_priorities(2).unwrap();
    let log = Log::new();
    let h = tagged(&mut base, &log, "h", 0, |_| {});
    let ls = [
        tagged(&mut base, &log, "l1", 1, move |b| {
            b.activate(h, What::TIMEOUT, 1).unwrap()
        }),
        tagged(&mut base, &log, "l2", 1, |_| {}),
        tagged(&mut base, &log, "l3", 1, |_| {}),
    ];
    for id in ls {
        base.activate(id, What::TIMEOUT, 1).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec!["l1", "h", "l2", "l3"]);
}

per_backend!(
    default_priority_is_half,
    init_priorities_limits,
    set_priority_rules,
    highest_priority_first,
    priority_beats_deadline,
    high_priority_starves_low,
    max_callbacks_limits_a_queue,
    max_interval_zero_polls_after_each_callback,
);
