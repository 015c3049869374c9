//! Timers: lower bounds, deadline order (ties in insertion order), common timeouts, re-add resets the
//! deadline, delete, persistent timers, the cached time, and a proptest over random add/del/re-add/run
//! sequences.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use revent::{ConfigFlags, EventBase, EventId, LoopExit, LoopFlags, Method, What};

const MS: Duration = Duration::from_millis(1);

/// A timer that logs `tag` and the instant it ran.
fn logged_timer<T: Clone + 'static>(
    base: &mut EventBase,
    log: &Log<(T, Instant)>,
    tag: T,
) -> EventId {
    let l = log.clone();
    base.new_timer(move |_, f| {
        assert_eq!(f.what, What::TIMEOUT);
        assert_eq!(f.fd, -1);
        assert_eq!(f.count, 1);
        l.push((tag.clone(), Instant::now()));
    })
}

fn tags<T: Clone>(log: &Log<(T, Instant)>) -> Vec<T> {
    log.get().into_iter().map(|(t, _)| t).collect()
}

/// A 50 ms timer fires once, no earlier than 50 ms after it was added.
fn timer_fires_once_not_early(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let t = logged_timer(&mut base, &log, ());
    let start = Instant::now();
    base.add(t, Some(50 * MS)).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1 - start >= 50 * MS,
        "fired after {:?}",
        got[0].1 - start
    );
}

/// A zero timeout fires at the first iteration.
fn zero_timeout_fires(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let t = logged_timer(&mut base, &log, ());
    base.add(t, Some(Duration::ZERO)).unwrap();
    assert_eq!(step(&mut base).unwrap(), LoopExit::Done);
    assert_eq!(log.len(), 1);
    // NONBLOCK alone (no ONCE) goes on iterating after running callbacks, and then finds nothing
    // pending: NoEvents (libevent's 1).
    base.add(t, Some(Duration::ZERO)).unwrap();
    assert_eq!(base.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
    assert_eq!(log.len(), 2);
}

/// Timers fire in deadline order whatever the order they were added in, none early.
fn timers_fire_in_deadline_order(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let mut added = HashMap::new();
    for ms in [30u32, 10, 40, 0, 20] {
        let t = logged_timer(&mut base, &log, ms);
        added.insert(ms, Instant::now());
        base.add(t, Some(ms * MS)).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), vec![0, 10, 20, 30, 40]);
    for (ms, at) in log.get() {
        assert!(
            at - added[&ms] >= ms * MS,
            "{ms} ms timer fired after {:?}",
            at - added[&ms]
        );
    }
}

/// Equal durations added one after the other fire in insertion order.
fn equal_durations_fire_in_insertion_order(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    for i in 0..8 {
        let t = logged_timer(&mut base, &log, i);
        base.add(t, Some(10 * MS)).unwrap();
    }
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), (0..8).collect::<Vec<_>>());
}

/// Timers added in one callback share the cached time, hence exactly equal deadlines: they fire in
/// insertion order, and interleave correctly with shorter and longer ones.
fn equal_deadlines_from_callback_fire_in_insertion_order(m: Method) {
    let mut base = base(m);
    let log: Log<(String, Instant)> = Log::new();
    let l = log.clone();
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        for (tag, ms) in [
            ("a", 10u32),
            ("b", 10),
            ("x", 5),
            ("c", 10),
            ("y", 20),
            ("d", 10),
            ("e", 10),
        ] {
            let t = logged_timer(base, &l, tag.to_string());
            base.add(t, Some(ms * MS)).unwrap();
        }
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), vec!["x", "a", "b", "c", "d", "e", "y"]);
}

/// Deadlines that have all passed before the loop looks at them still run in deadline order, ties in
/// insertion order.
fn expired_batch_runs_in_deadline_order(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        for (tag, ms) in [(0, 6u32), (1, 2), (2, 4), (3, 2), (4, 0), (5, 6), (6, 4)] {
            let t = logged_timer(base, &l, tag);
            base.add(t, Some(ms * MS)).unwrap();
        }
        // Make every deadline pass before the loop collects expired timers.
        std::thread::sleep(10 * MS);
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), vec![4, 1, 3, 2, 6, 0, 5]);
}

/// Common timeouts: `init_common_timeout` returns a duration whose timers fire in insertion order,
/// interleaved by deadline with ordinary timers and with another common timeout.
fn common_timeouts_order(m: Method) {
    let mut base = base(m);
    let c10 = base.init_common_timeout(10 * MS).unwrap();
    let c20 = base.init_common_timeout(20 * MS).unwrap();
    assert_eq!(
        base.init_common_timeout(10 * MS).unwrap(),
        c10,
        "same duration, same common timeout"
    );
    let log = Log::new();
    let l = log.clone();
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        let plan: [(&'static str, Duration); 8] = [
            ("c10a", c10),
            ("c20a", c20),
            ("h15", 15 * MS),
            ("c10b", c10),
            ("h5", 5 * MS),
            ("c20b", c20),
            ("c10c", c10),
            ("h25", 25 * MS),
        ];
        for (tag, d) in plan {
            let t = logged_timer(base, &l, tag);
            base.add(t, Some(d)).unwrap();
        }
    })
    .unwrap();
    let start = Instant::now();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(
        tags(&log),
        vec!["h5", "c10a", "c10b", "c10c", "h15", "c20a", "c20b", "h25"]
    );
    for (tag, at) in log.get() {
        let min = match tag {
            "h5" => 5,
            "c10a" | "c10b" | "c10c" => 10,
            "h15" => 15,
            "c20a" | "c20b" => 20,
            _ => 25,
        };
        assert!(at - start >= min * MS, "{tag} fired after {:?}", at - start);
    }
}

/// Re-adding a timer of a common timeout moves it to the end of that queue.
fn common_timeout_readd_moves_to_end(m: Method) {
    let mut base = base(m);
    let c = base.init_common_timeout(15 * MS).unwrap();
    let log = Log::new();
    let ids: Vec<EventId> = (0..4).map(|i| logged_timer(&mut base, &log, i)).collect();
    for &id in &ids {
        base.add(id, Some(c)).unwrap();
    }
    base.add(ids[1], Some(c)).unwrap();
    base.del(ids[2]).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), vec![0, 3, 1]);
}

/// Re-adding a pending timer resets its deadline (later or earlier); it fires once.
fn readd_resets_deadline(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let t = logged_timer(&mut base, &log, "t");
    let start = Instant::now();
    base.add(t, Some(30 * MS)).unwrap();
    // At 15 ms, push it back by 30 ms: it must not fire before 45 ms.
    let readd_at = Rc::new(std::cell::Cell::new(None));
    let r = readd_at.clone();
    base.once(-1, What::TIMEOUT, Some(15 * MS), move |base, _| {
        let (flags, before) = base.pending(t, What::TIMEOUT).unwrap();
        assert_eq!(flags, What::TIMEOUT);
        base.add(t, Some(30 * MS)).unwrap();
        let (_, after) = base.pending(t, What::TIMEOUT).unwrap();
        assert!(after.unwrap() > before.unwrap(), "the deadline moved later");
        r.set(Some(Instant::now()));
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 1, "a re-added timer fires once");
    assert!(
        got[0].1 - start >= 45 * MS,
        "fired after {:?}",
        got[0].1 - start
    );
    assert!(readd_at.get().unwrap() < got[0].1);

    // Earlier: 10 s, then re-added with 10 ms.
    let t2 = logged_timer(&mut base, &log, "t2");
    base.add(t2, Some(Duration::from_secs(10))).unwrap();
    base.add(t2, Some(10 * MS)).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), vec!["t", "t2"]);
}

/// A deleted timer never fires, also when deleted from a callback just before its deadline.
fn deleted_timer_never_fires(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let a = logged_timer(&mut base, &log, "a");
    let b = logged_timer(&mut base, &log, "b");
    let c = logged_timer(&mut base, &log, "c");
    base.add(a, Some(5 * MS)).unwrap();
    base.add(b, Some(10 * MS)).unwrap();
    base.add(c, Some(15 * MS)).unwrap();
    base.del(a).unwrap();
    base.once(-1, What::TIMEOUT, Some(8 * MS), move |base, _| {
        base.del(c).unwrap()
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(tags(&log), vec!["b"]);
    // Deleting a non-pending event is fine.
    base.del(a).unwrap();
}

/// A persistent timer fires repeatedly; its k-th run is no earlier than k periods after the add.
fn persistent_timer_rearms(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let l = log.clone();
    let t = base
        .new_event(-1, What::PERSIST, move |base, f| {
            assert_eq!(f.what, What::TIMEOUT);
            assert_eq!(
                base.pending(f.id, What::TIMEOUT).unwrap().0,
                What::TIMEOUT,
                "re-armed already"
            );
            l.push(Instant::now());
            if l.len() == 4 {
                base.del(f.id).unwrap();
            }
        })
        .unwrap();
    let start = Instant::now();
    base.add(t, Some(12 * MS)).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 4);
    for (k, at) in got.iter().enumerate() {
        let min = 12 * MS * (k as u32 + 1);
        assert!(
            *at - start >= min,
            "run #{k} after {:?}, expected >= {min:?}",
            *at - start
        );
    }
}

/// The cached time is frozen during a callback unless refreshed; NO_CACHE_TIME disables the cache.
fn cached_time(m: Method) {
    for no_cache in [false, true] {
        let mut cfg = config(m);
        if no_cache {
            cfg.set_flag(ConfigFlags::NO_CACHE_TIME);
        }
        let mut base = base_with(m, &cfg);
        let before = Instant::now();
        let ok = Rc::new(std::cell::Cell::new(false));
        let ok2 = ok.clone();
        base.once(-1, What::TIMEOUT, None, move |base, _| {
            let t0 = base.now_cached();
            assert!(t0 + tol() >= before && t0 <= Instant::now() + tol());
            let mark = Instant::now();
            std::thread::sleep(20 * MS);
            let t1 = base.now_cached();
            if no_cache {
                assert!(
                    t1 + tol() >= mark + 20 * MS,
                    "NO_CACHE_TIME reads the clock"
                );
            } else {
                assert_eq!(t1, t0, "the cached time does not move inside a callback");
                base.update_cache_time();
                assert!(
                    base.now_cached() + tol() >= mark + 20 * MS,
                    "update_cache_time refreshes it"
                );
            }
            ok2.set(true);
        })
        .unwrap();
        assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
        assert!(ok.get());
        // Outside the loop, the time is read fresh.
        let mark = Instant::now();
        std::thread::sleep(5 * MS);
        assert!(
            base.now_cached() + tol() >= mark + 5 * MS,
            "outside the loop, now_cached reads the clock"
        );
    }
}

/// `now_cached()` outside the loop is the current time as an `Instant`: never earlier than an
/// `Instant::now()` read just before it, never later than one read just after (exactly, when the base
/// uses the precise clock; within one tick of the coarse clock otherwise).
fn now_cached_agrees_with_instant(m: Method) {
    for precise in [false, true] {
        let mut cfg = config(m);
        if precise {
            cfg.set_flag(ConfigFlags::PRECISE_TIMER);
        }
        let base = base_with(m, &cfg);
        let slack = if precise { Duration::ZERO } else { slack() };
        for i in 0..1000 {
            let a = Instant::now();
            let c = base.now_cached();
            let b = Instant::now();
            assert!(
                c + slack >= a && c <= b + slack,
                "read #{i} (precise: {precise}): now_cached() is {:?} before the Instant read just before it",
                a.saturating_duration_since(c)
            );
        }
    }
}

/// A timer added from a callback with a deadline computed from the cached time fires no earlier than
/// that deadline (pending() tells the deadline).
fn pending_deadline_bounds(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let t = logged_timer(&mut base, &log, ());
    assert_eq!(base.pending(t, What::TIMEOUT).unwrap(), (What::NONE, None));
    let before = Instant::now();
    base.add(t, Some(40 * MS)).unwrap();
    let after = Instant::now();
    let (flags, deadline) = base.pending(t, What::TIMEOUT | What::READ).unwrap();
    assert_eq!(flags, What::TIMEOUT);
    let deadline = deadline.expect("a deadline");
    assert!(
        deadline + tol() >= before + 40 * MS && deadline <= after + 40 * MS + tol(),
        "deadline {:?} after the add",
        deadline.saturating_duration_since(before)
    );
    assert_eq!(base.pending(t, What::READ).unwrap().0, What::NONE);
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert!(log.get()[0].1 >= deadline);
}

/// Re-adding a timer whose timeout already expired in this iteration (it is active, its callback not
/// yet run) reschedules it: the pending callback is dropped (libevent's event_add removes an event
/// active by timeout from the active queue).
fn readd_expired_active_timer_reschedules(m: Method) {
    let mut base = base(m);
    let log = Log::new();
    let b = logged_timer(&mut base, &log, "b");
    let l = log.clone();
    let a = base.new_timer(move |base, _| {
        l.push(("a", Instant::now()));
        assert_eq!(
            base.pending(b, What::TIMEOUT).unwrap().0,
            What::TIMEOUT,
            "b is active"
        );
        base.add(b, Some(20 * MS)).unwrap();
    });
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        base.add(a, Some(MS)).unwrap();
        base.add(b, Some(2 * MS)).unwrap();
        // Both expire before the loop collects timers again: a runs first and re-adds b.
        std::thread::sleep(10 * MS);
    })
    .unwrap();
    let start = Instant::now();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(
        tags(&log),
        vec!["a", "b"],
        "b ran once, after its new timeout"
    );
    let got = log.get();
    assert_at_least(got[0].1, got[1].1, 20 * MS, "b re-added for 20 ms");
    assert!(got[1].1 - start >= 20 * MS);
}

/// Re-adding a persistent timer with another timeout from its callback changes its period: the next
/// deadline is 40 ms from then, and the one after 40 ms from that deadline (no drift).
fn persistent_readd_changes_period(m: Method) {
    let mut base = base(m);
    // (when the callback ran, the cached time then, the deadline pending() reports after it)
    let log: Log<(Instant, Instant, Instant)> = Log::new();
    let l = log.clone();
    let t = base
        .new_event(-1, What::PERSIST, move |base, f| {
            let ran = Instant::now();
            let cached = base.now_cached();
            if l.len() == 0 {
                base.add(f.id, Some(40 * MS)).unwrap();
            }
            let next = base.pending(f.id, What::TIMEOUT).unwrap().1.unwrap();
            l.push((ran, cached, next));
            if l.len() == 3 {
                base.del(f.id).unwrap();
            }
        })
        .unwrap();
    base.add(t, Some(5 * MS)).unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let got = log.get();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].2 - got[0].1,
        40 * MS,
        "re-added for 40 ms from the cached time"
    );
    assert_eq!(
        got[1].2 - got[0].2,
        40 * MS,
        "re-armed 40 ms after the previous deadline"
    );
    for (i, (ran, _, _)) in got.iter().enumerate().skip(1) {
        let deadline = got[i - 1].2;
        assert!(*ran + tol() >= deadline, "run #{i} before its deadline");
    }
}

/// An fd event whose data arrives and whose timeout expires in the same iteration: libevent's
/// timeout processing deletes the event (which also takes it off the active queue) and activates it
/// with TIMEOUT, so the callback runs once and sees exactly TIMEOUT.
fn read_and_timeout_in_same_iteration(m: Method) {
    let mut base = base(m);
    let (a, b) = socketpair();
    let log = Log::new();
    let l = log.clone();
    let ev = base
        .new_event(a.as_raw_fd(), What::READ, move |_, f| l.push(f.what))
        .unwrap();
    let bfd = b.as_raw_fd();
    base.once(-1, What::TIMEOUT, None, move |base, _| {
        base.add(ev, Some(MS)).unwrap();
        write_fd(bfd, b"x");
        std::thread::sleep(10 * MS);
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), vec![What::TIMEOUT]);
}

/// wall_cached() follows the wall clock.
fn wall_cached_follows_wall_clock(m: Method) {
    let mut base = base(m);
    let ok = Rc::new(std::cell::Cell::new(false));
    let o = ok.clone();
    let before = std::time::SystemTime::now();
    base.once(-1, What::TIMEOUT, Some(5 * MS), move |base, _| {
        let w = base.wall_cached();
        let now = std::time::SystemTime::now();
        assert!(
            w + tol() >= before + 5 * MS,
            "wall_cached {w:?} before {before:?} + 5 ms"
        );
        assert!(w <= now + tol(), "wall_cached {w:?} after now {now:?}");
        o.set(true);
    })
    .unwrap();
    assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    assert!(ok.get());
}

// ---------------------------------------------------------------------------------------------------
// proptest: random add / del / re-add / run sequences.

#[derive(Clone, Debug)]
enum Op {
    /// Add a new timer: index into DURS, whether to use the common timeout for it.
    Add(usize, bool),
    /// Add several new timers from inside a callback (same cached time: exact ties).
    AddBatch(Vec<(usize, bool)>),
    /// Delete the n-th timer created (mod count).
    Del(usize),
    /// Re-add the n-th timer created (mod count), pending or not.
    ReAdd(usize, usize, bool),
    /// Sleep this many ms (lets deadlines pass so they expire in one batch).
    Sleep(u64),
    /// Run the loop once without blocking.
    RunNonblock,
    /// Run the loop until one batch of callbacks ran.
    RunOnce,
}

const DURS: [u32; 6] = [0, 3, 10, 10, 25, 50];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..DURS.len(), any::<bool>()).prop_map(|(d, c)| Op::Add(d, c)),
        1 => prop::collection::vec((0..DURS.len(), any::<bool>()), 1..5).prop_map(Op::AddBatch),
        2 => any::<usize>().prop_map(Op::Del),
        2 => (any::<usize>(), 0..DURS.len(), any::<bool>()).prop_map(|(i, d, c)| Op::ReAdd(i, d, c)),
        1 => (0u64..15).prop_map(Op::Sleep),
        1 => Just(Op::RunNonblock),
        1 => Just(Op::RunOnce),
    ]
}

#[derive(Default)]
struct Model {
    /// Per timer: Some((deadline, seq)) while it is pending.
    live: HashMap<EventId, (Instant, u64)>,
    ids: Vec<EventId>,
    /// (id, deadline, seq, when it ran)
    fired: Vec<(EventId, Instant, u64, Instant)>,
    seq: u64,
    /// Common-timeout duration for each base duration.
    common: HashMap<u32, Duration>,
}

type Shared = Rc<RefCell<Model>>;

fn dur(model: &Shared, base: &mut EventBase, d: usize, common: bool) -> Duration {
    let ms = DURS[d];
    if !common || ms == 0 {
        return ms * MS;
    }
    if let Some(c) = model.borrow().common.get(&ms) {
        return *c;
    }
    let c = base.init_common_timeout(ms * MS).unwrap();
    model.borrow_mut().common.insert(ms, c);
    c
}

fn new_model_timer(model: &Shared, base: &mut EventBase) -> EventId {
    let mm = model.clone();
    let id = base.new_timer(move |_, f| {
        let now = Instant::now();
        let mut m = mm.borrow_mut();
        let (deadline, seq) = m.live.remove(&f.id).unwrap_or_else(|| {
            panic!(
                "{:?} fired but is not pending (deleted, or fired twice)",
                f.id
            )
        });
        m.fired.push((f.id, deadline, seq, now));
    });
    model.borrow_mut().ids.push(id);
    id
}

/// Adds `id` with duration index `d` and records its deadline as reported by `pending`.
fn model_add(model: &Shared, base: &mut EventBase, id: EventId, d: usize, common: bool) {
    let dd = dur(model, base, d, common);
    let before = if base_is_running(model) {
        None
    } else {
        Some(Instant::now())
    };
    base.add(id, Some(dd)).unwrap();
    let (flags, deadline) = base.pending(id, What::TIMEOUT).unwrap();
    assert_eq!(flags, What::TIMEOUT);
    let deadline = deadline.unwrap();
    if let Some(before) = before {
        assert!(
            deadline + tol() >= before + DURS[d] * MS,
            "deadline before add time + duration"
        );
    }
    let mut m = model.borrow_mut();
    m.seq += 1;
    let seq = m.seq;
    m.live.insert(id, (deadline, seq));
}

thread_local! {
    static IN_CALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn base_is_running(_: &Shared) -> bool {
    IN_CALLBACK.with(|c| c.get())
}

fn run_model(m: Method, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut base = base(m);
    let model: Shared = Rc::default();
    for op in ops {
        match op {
            Op::Add(d, c) => {
                let id = new_model_timer(&model, &mut base);
                model_add(&model, &mut base, id, d, c);
            }
            Op::AddBatch(list) => {
                let mm = model.clone();
                base.once(-1, What::TIMEOUT, None, move |base, _| {
                    IN_CALLBACK.with(|c| c.set(true));
                    for &(d, c) in &list {
                        let id = new_model_timer(&mm, base);
                        model_add(&mm, base, id, d, c);
                    }
                    IN_CALLBACK.with(|c| c.set(false));
                })
                .unwrap();
                base.run(LoopFlags::NONBLOCK).unwrap();
            }
            Op::Del(i) => {
                let ids = model.borrow().ids.clone();
                if !ids.is_empty() {
                    let id = ids[i % ids.len()];
                    base.del(id).unwrap();
                    model.borrow_mut().live.remove(&id);
                    prop_assert_eq!(base.pending(id, What::TIMEOUT).unwrap().0, What::NONE);
                }
            }
            Op::ReAdd(i, d, c) => {
                let ids = model.borrow().ids.clone();
                if !ids.is_empty() {
                    let id = ids[i % ids.len()];
                    model_add(&model, &mut base, id, d, c);
                }
            }
            Op::Sleep(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Op::RunNonblock => {
                base.run(LoopFlags::NONBLOCK).unwrap();
            }
            Op::RunOnce => {
                if !model.borrow().live.is_empty() {
                    prop_assert_eq!(base.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
                }
            }
        }
    }
    // Everything still pending fires now.
    prop_assert_eq!(base.dispatch().unwrap(), LoopExit::NoEvents);
    let m = model.borrow();
    prop_assert!(m.live.is_empty(), "timers never fired: {:?}", m.live);
    for w in m.fired.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        prop_assert!(
            (a.1, a.2) < (b.1, b.2),
            "out of order: {:?} (deadline {:?}, seq {}) ran before {:?} (deadline {:?}, seq {})",
            a.0,
            a.1,
            a.2,
            b.0,
            b.1,
            b.2
        );
    }
    for (id, deadline, _, ran) in &m.fired {
        prop_assert!(ran >= deadline, "{:?} ran {:?} early", id, *deadline - *ran);
    }
    Ok(())
}

fn timers_proptest(m: Method) {
    let cfg = ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(ops in prop::collection::vec(op(), 1..25))| {
        run_model(m, ops)?;
    });
}

per_backend!(
    timer_fires_once_not_early,
    zero_timeout_fires,
    timers_fire_in_deadline_order,
    equal_durations_fire_in_insertion_order,
    equal_deadlines_from_callback_fire_in_insertion_order,
    expired_batch_runs_in_deadline_order,
    common_timeouts_order,
    common_timeout_readd_moves_to_end,
    readd_resets_deadline,
    deleted_timer_never_fires,
    persistent_timer_rearms,
    cached_time,
    pending_deadline_bounds,
    now_cached_agrees_with_instant,
    readd_expired_active_timer_reschedules,
    persistent_readd_changes_period,
    read_and_timeout_in_same_iteration,
    wall_cached_follows_wall_clock,
    timers_proptest,
);
