//! Introspection: dump_events lists the inserted and the active events; foreach_event visits every
//! added or active event (libevent: "all added or active events") with its fd, flags, priority and
//! pending state, and stops when told; pending() returns flags and deadline.

mod common;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use revent::{EventBase, EventInfo, Method, What};

const ALL_WHAT: What = What::from_bits_truncate(0xff);

fn dump(base: &EventBase) -> (String, String) {
    let mut out = Vec::new();
    base.dump_events(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (ins, act) = text
        .split_once("Active events:")
        .unwrap_or_else(|| panic!("no 'Active events:' section in:\n{text}"));
    assert!(
        ins.starts_with("Inserted events:"),
        "dump starts with the inserted events:\n{text}"
    );
    (ins.to_string(), act.to_string())
}

/// The line of `section` that names `id`.
fn line_of(section: &str, id: revent::EventId) -> Option<String> {
    let tag = format!("{id:?} ");
    section
        .lines()
        .find(|l| l.contains(&tag))
        .map(str::to_string)
}

fn dump_events_lists_inserted_and_active(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let (c, _d) = socketpair();
    let rd = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::PERSIST,
        |_, _| {},
    )
    .unwrap();
    let tm = base.new_timer(|_, _| {});
    base.add(tm, Some(Duration::from_secs(10))).unwrap();
    let wr_not_added = base
        .new_event(c.as_raw_fd(), What::WRITE, |_, _| {})
        .unwrap();
    let act = base.new_timer(|_, _| {});
    base.activate(act, What::WRITE | What::TIMEOUT, 1).unwrap();

    let (ins, active) = dump(&base);
    let l = line_of(&ins, rd).unwrap_or_else(|| panic!("read event not listed:\n{ins}"));
    assert!(
        l.contains(&format!("fd {}", a.as_raw_fd())) && l.contains("Read") && l.contains("Persist"),
        "{l}"
    );
    assert!(!l.contains("Write"), "{l}");
    let l = line_of(&ins, tm).unwrap_or_else(|| panic!("timer not listed:\n{ins}"));
    assert!(l.contains("Timeout"), "{l}");
    assert!(
        line_of(&ins, wr_not_added).is_none(),
        "a non-added event is not inserted:\n{ins}"
    );
    assert!(
        line_of(&ins, act).is_none(),
        "an active, non-added event is not inserted:\n{ins}"
    );
    assert_eq!(
        ins.lines()
            .filter(|l| l.starts_with("  ") && !l.contains("Internal"))
            .count(),
        2,
        "{ins}"
    );
    let l = line_of(&active, act).unwrap_or_else(|| panic!("active event not listed:\n{active}"));
    assert!(l.contains("Write") && l.contains("Timeout"), "{l}");
    assert!(
        line_of(&active, rd).is_none() && line_of(&active, tm).is_none(),
        "{active}"
    );

    // After the loop ran it, the active event is gone from the dump; the deleted ones too.
    step(&mut base).unwrap();
    base.del(rd).unwrap();
    let (ins, active) = dump(&base);
    assert!(line_of(&active, act).is_none(), "{active}");
    assert!(line_of(&ins, rd).is_none(), "{ins}");
    assert!(line_of(&ins, tm).is_some(), "{ins}");
    base.del(tm).unwrap();
}

fn collect(base: &EventBase) -> HashMap<revent::EventId, EventInfo> {
    let mut seen = HashMap::new();
    base.foreach_event(|info| {
        assert!(
            seen.insert(info.id, info).is_none(),
            "visited twice: {info:?}"
        );
        true
    });
    seen
}

fn foreach_event_visits_added_and_active(m: Method) {
    let mut base = base_prio(m, 3);
    let (a, _b) = socketpair();
    let rd = register(
        &mut base,
        a.as_raw_fd(),
        What::READ | What::PERSIST,
        |_, _| {},
    )
    .unwrap();
    let wr = base
        .new_event(a.as_raw_fd(), What::WRITE, |_, _| {})
        .unwrap();
    base.set_priority(wr, 0).unwrap();
    base.add(wr, Some(Duration::from_secs(10))).unwrap();
    let tm = base.new_timer(|_, _| {});
    base.set_priority(tm, 2).unwrap();
    base.add(tm, Some(Duration::from_secs(10))).unwrap();
    let act = base.new_timer(|_, _| {});
    base.activate(act, What::READ, 1).unwrap();
    let _idle = base.new_timer(|_, _| {});
    let _idle_fd = base
        .new_event(a.as_raw_fd(), What::READ, |_, _| {})
        .unwrap();

    let seen = collect(&base);
    assert_eq!(seen.len(), 4, "added or active events only: {seen:?}");
    let i = seen[&rd];
    assert_eq!(
        (i.fd, i.what, i.priority, i.pending),
        (a.as_raw_fd(), What::READ | What::PERSIST, 1, What::READ)
    );
    let i = seen[&wr];
    assert_eq!(
        (i.fd, i.what, i.priority, i.pending),
        (a.as_raw_fd(), What::WRITE, 0, What::WRITE | What::TIMEOUT)
    );
    let i = seen[&tm];
    assert_eq!((i.fd, i.priority, i.pending), (-1, 2, What::TIMEOUT));
    let i = seen[&act];
    assert_eq!((i.fd, i.pending), (-1, What::READ));

    // Returning false stops the walk.
    let mut n = 0;
    base.foreach_event(|_| {
        n += 1;
        n < 2
    });
    assert_eq!(n, 2);

    // A signal event is visited; the base's internal signal machinery is not.
    // SAFETY: installing SIG_IGN is a plain sigaction call; this binary raises no signals.
    unsafe { libc::signal(libc::SIGUSR2, libc::SIG_IGN) };
    let sig = base.new_signal(libc::SIGUSR2, |_, _| {}).unwrap();
    base.add(sig, None).unwrap();
    let seen = collect(&base);
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen[&sig].pending, What::SIGNAL);
    base.free(sig).unwrap();
    for id in [rd, wr, tm] {
        base.del(id).unwrap();
    }
    step(&mut base).unwrap();
    assert!(collect(&base).is_empty());
}

/// pending(): flags limited to what is asked; deadline only when TIMEOUT is asked and armed; active
/// flags count as pending.
fn pending_flags_and_deadline(m: Method) {
    let mut base = base(m);
    let (a, _b) = socketpair();
    let id = base
        .new_event(a.as_raw_fd(), What::READ | What::WRITE, |_, _| {})
        .unwrap();
    assert_eq!(base.pending(id, ALL_WHAT).unwrap(), (What::NONE, None));
    base.add(id, None).unwrap();
    assert_eq!(
        base.pending(id, ALL_WHAT).unwrap(),
        (What::READ | What::WRITE, None)
    );
    assert_eq!(base.pending(id, What::READ).unwrap(), (What::READ, None));
    assert_eq!(base.pending(id, What::TIMEOUT).unwrap(), (What::NONE, None));
    let before = Instant::now();
    base.add(id, Some(Duration::from_secs(5))).unwrap();
    let after = Instant::now();
    let (flags, deadline) = base.pending(id, What::READ | What::TIMEOUT).unwrap();
    assert_eq!(flags, What::READ | What::TIMEOUT);
    let deadline = deadline.unwrap();
    assert!(
        deadline + tol() >= before + Duration::from_secs(5)
            && deadline <= after + Duration::from_secs(5) + tol()
    );
    assert_eq!(
        base.pending(id, What::READ).unwrap(),
        (What::READ, None),
        "no deadline unless TIMEOUT is asked"
    );
    // Adding again without a timeout keeps the one it has (libevent: a NULL tv leaves it alone).
    base.add(id, None).unwrap();
    assert_eq!(
        base.pending(id, What::TIMEOUT).unwrap(),
        (What::TIMEOUT, Some(deadline))
    );
    base.del(id).unwrap();
    assert_eq!(base.pending(id, ALL_WHAT).unwrap(), (What::NONE, None));
    base.activate(id, What::CLOSED, 1).unwrap();
    assert_eq!(
        base.pending(id, ALL_WHAT).unwrap().0,
        What::CLOSED,
        "active flags are reported"
    );
    step(&mut base).unwrap();
    assert_eq!(base.pending(id, ALL_WHAT).unwrap(), (What::NONE, None));
}

per_backend!(
    dump_events_lists_inserted_and_active,
    foreach_event_visits_added_and_active,
    pending_flags_and_deadline,
);
