//! A callback that panics: the panic reaches the caller of `dispatch`, and the base stays usable (the
//! loop is not stuck "running", the callback is still there, a `once` event is not leaked, the
//! bufferevent keeps its callbacks). On every backend.

mod common;

use common::all;
use revent::{BevOptions, BufferEvent, EventBase, LoopFlags, What};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

fn base(m: revent::Method) -> EventBase {
    common::base(m)
}

/// Runs the loop, expecting the panic `msg` to come out of it.
fn dispatch_panics(base: &mut EventBase, msg: &str) {
    let r = catch_unwind(AssertUnwindSafe(|| base.dispatch()));
    let payload = r.expect_err("the callback's panic did not reach dispatch's caller");
    let got = payload
        .downcast_ref::<&str>()
        .copied()
        .or(payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("?");
    assert_eq!(got, msg);
}

#[test]
fn a_panicking_event_callback_leaves_the_base_usable() {
    for m in all() {
        let mut base = base(m);
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        let ev = base
            .new_event(-1, What::PERSIST, move |_, _| {
                c.set(c.get() + 1);
                if c.get() == 1 {
                    panic!("first call");
                }
            })
            .unwrap();
        base.add(ev, None).unwrap();
        base.activate(ev, What::TIMEOUT, 1).unwrap();
        dispatch_panics(&mut base, "first call");
        // Not stuck running: a new run is accepted. The callback is still the event's.
        base.activate(ev, What::TIMEOUT, 1).unwrap();
        base.run(LoopFlags::NONBLOCK).unwrap();
        assert_eq!(calls.get(), 2, "{m:?}");
        assert!(base.pending(ev, What::TIMEOUT).is_ok());
        base.free(ev).unwrap();
        assert_eq!(base.num_events(), 0);
    }
}

#[test]
fn a_panicking_once_callback_is_not_leaked() {
    for m in all() {
        let mut base = base(m);
        base.once(-1, What::TIMEOUT, None, |_, _| panic!("once"))
            .unwrap();
        dispatch_panics(&mut base, "once");
        assert_eq!(base.num_events(), 0, "{m:?}: the once event leaked");
        assert_eq!(base.dispatch().unwrap(), revent::LoopExit::NoEvents);
    }
}

#[test]
fn events_queued_behind_a_panic_still_run() {
    for m in all() {
        let mut base = base(m);
        let ran = Rc::new(Cell::new(false));
        let bad = base.new_timer(|_, _| panic!("bad"));
        let r = ran.clone();
        let good = base.new_timer(move |_, _| r.set(true));
        base.activate(bad, What::TIMEOUT, 1).unwrap();
        base.activate(good, What::TIMEOUT, 1).unwrap();
        dispatch_panics(&mut base, "bad");
        assert!(!ran.get());
        base.dispatch().unwrap();
        assert!(
            ran.get(),
            "{m:?}: an event active behind the panic was lost"
        );
        base.free(bad).unwrap();
        base.free(good).unwrap();
    }
}

#[test]
fn a_panicking_bufferevent_callback_keeps_its_place() {
    for m in all() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        b.set_read_cb(&mut base, move |base, bev| {
            c.set(c.get() + 1);
            let mut buf = [0u8; 8];
            bev.read(base, &mut buf).unwrap();
            if c.get() == 1 {
                panic!("read callback");
            }
        })
        .unwrap();
        b.enable(&mut base, What::READ).unwrap();
        a.write(&mut base, b"one").unwrap();
        dispatch_panics(&mut base, "read callback");
        a.write(&mut base, b"two").unwrap();
        base.dispatch().unwrap();
        assert_eq!(
            calls.get(),
            2,
            "{m:?}: the read callback was lost in the panic"
        );
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

#[test]
fn a_panic_in_a_socket_read_callback_keeps_the_bufferevent_working() {
    use std::io::Write;
    for m in all() {
        let mut base = base(m);
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let bev = BufferEvent::socket(&mut base, Some(ours.into()), BevOptions::NONE).unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        bev.set_read_cb(&mut base, move |base, bev| {
            c.set(c.get() + 1);
            let n = bev.input(base).unwrap().len();
            bev.input(base).unwrap().drain(n).unwrap();
            if c.get() == 1 {
                panic!("socket read");
            }
            base.loopbreak();
        })
        .unwrap();
        bev.enable(&mut base, What::READ).unwrap();
        peer.write_all(b"a").unwrap();
        dispatch_panics(&mut base, "socket read");
        peer.write_all(b"b").unwrap();
        base.dispatch().unwrap();
        assert_eq!(calls.get(), 2, "{m:?}");
        bev.free(&mut base).unwrap();
    }
}
