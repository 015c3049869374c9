//! One loop: the prepare phase runs no user code, deferred callbacks go through the active queues
//! (so priorities, ONCE and loopbreak hold for them), a bufferevent's buffers tell it of changes made
//! through foreign pointers, and its deferred buffer callbacks run from the loop. On every backend.

mod bev_common;

use bev_common::*;
use revent::{BevFlags, BevOptions, BufferEvent, EventBase, LoopFlags, What};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn loopbreak_in_a_write_callback_after_the_eager_write_ends_the_loop() {
    for m in backends() {
        let mut base = base(m);
        let (fd, _peer) = socketpair();
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::NONE).unwrap();
        let ran = Rc::new(Cell::new(0));
        let r = ran.clone();
        bev.set_write_cb(&mut base, move |base, _| {
            r.set(r.get() + 1);
            base.loopbreak();
        })
        .unwrap();
        // Reading keeps an event pending, so a loop that missed the break would sleep.
        bev.enable(&mut base, What::READ | What::WRITE).unwrap();
        bev.write(&mut base, b"x").unwrap();
        // A safety net only: the loop must end by the break, not by this.
        base.loopexit(Some(LIMIT)).unwrap();
        base.dispatch().unwrap();
        assert_eq!(ran.get(), 1, "{m:?}");
        assert!(base.got_break(), "{m:?}: the loop ran on after loopbreak");
        assert!(!base.got_exit(), "{m:?}");
        bev.free(&mut base).unwrap();
    }
}

#[test]
fn deferred_write_callbacks_wait_for_higher_priorities() {
    for m in backends() {
        let mut base = base(m);
        base.init_priorities(2).unwrap();
        let order = log();
        let (fd, _peer) = socketpair();
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::NONE).unwrap();
        bev.set_priority(&mut base, 1).unwrap();
        let o = order.clone();
        bev.set_write_cb(&mut base, move |_, _| push(&o, "low: write callback"))
            .unwrap();
        let o = order.clone();
        let urgent = base.new_timer(move |_, _| push(&o, "high: timer"));
        base.set_priority(urgent, 0).unwrap();
        bev.write(&mut base, b"x").unwrap();
        base.activate(urgent, What::TIMEOUT, 1).unwrap();
        run_until(&mut base, LIMIT, |_| order.borrow().len() >= 2);
        assert_eq!(
            entries(&order),
            ["high: timer", "low: write callback"],
            "{m:?}"
        );
        bev.free(&mut base).unwrap();
    }
}

#[test]
fn run_once_returns_after_a_deferred_callback() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        b.set_read_cb(&mut base, move |base, bev| {
            g.set(g.get() + drain_input(base, bev).len())
        })
        .unwrap();
        b.enable(&mut base, What::READ).unwrap();
        a.write(&mut base, b"hello").unwrap();
        // Nothing is pending on any fd: the deferred read callback alone is what ONCE waits for.
        base.run(LoopFlags::ONCE).unwrap();
        assert_eq!(got.get(), 5, "{m:?}");
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

#[test]
fn deferred_buffer_callbacks_run_from_the_loop() {
    for m in backends() {
        let mut base = base(m);
        let (fd, mut peer) = socketpair();
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::DEFER_CALLBACKS).unwrap();
        let added = Arc::new(AtomicUsize::new(0));
        let a = added.clone();
        bev.output(&mut base).unwrap().add_cb(move |_, info| {
            a.fetch_add(info.n_added, Ordering::Relaxed);
        });
        bev.write(&mut base, b"abc").unwrap();
        bev.write(&mut base, b"de").unwrap();
        assert_eq!(added.load(Ordering::Relaxed), 0, "{m:?}: ran inside write");
        run_until(&mut base, LIMIT, |_| added.load(Ordering::Relaxed) > 0);
        // Summed into one call.
        assert_eq!(added.load(Ordering::Relaxed), 5, "{m:?}");
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcde");
        bev.free(&mut base).unwrap();
    }
}

#[test]
fn bytes_added_through_a_foreign_pointer_are_written() {
    for m in backends() {
        let mut base = base(m);
        let (fd, mut peer) = socketpair();
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::NONE).unwrap();
        bev.enable(&mut base, What::READ).unwrap();
        let (_, out) = bev.buffer_ptrs(&mut base).unwrap();
        // What C's evbuffer_add(bufferevent_get_output(bev), ...) does between two loop runs.
        // SAFETY: the bufferevent is alive and no reference to its output is held right now.
        unsafe { &mut *out.as_ptr() }
            .add(b"from a pointer")
            .unwrap();
        // Nothing else tells the bufferevent: it must hear it from the buffer.
        run_until(&mut base, LIMIT, |base| output_len(base, bev) == 0);
        let mut got = [0u8; 14];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"from a pointer", "{m:?}");
        bev.free(&mut base).unwrap();
    }
}

#[test]
fn bytes_moved_through_foreign_pointers_inside_a_callback_are_written() {
    let cases = backends()
        .into_iter()
        .flat_map(|m| [(m, BevOptions::NONE), (m, BevOptions::DEFER_CALLBACKS)]);
    for (m, options) in cases {
        let mut base = base(m);
        let (fd, mut peer) = socketpair();
        let bev = BufferEvent::socket(&mut base, Some(fd), options).unwrap();
        let (input, output) = bev.buffer_ptrs(&mut base).unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        // A C echo server's read callback: evbuffer_add_buffer(output, input) on the pointers it
        // got from bufferevent_get_input/output, no call on the bufferevent.
        bev.set_read_cb(&mut base, move |_, _| {
            c.set(c.get() + 1);
            // SAFETY: the bufferevent is alive, and while its callback runs no reference to its
            // buffers is held (the callback got none).
            let (i, o) = unsafe { (&mut *input.as_ptr(), &mut *output.as_ptr()) };
            o.add_buffer(i).unwrap();
        })
        .unwrap();
        bev.enable(&mut base, What::READ).unwrap();
        for (k, msg) in [&b"first"[..], b"second"].into_iter().enumerate() {
            peer.write_all(msg).unwrap();
            let mut got = vec![0u8; msg.len()];
            run_until(&mut base, LIMIT, |base| {
                calls.get() > k && output_len(base, bev) == 0
            });
            peer.read_exact(&mut got).unwrap();
            assert_eq!(got, msg, "{m:?}");
        }
        // From the event callback of a read timeout, where the bufferevent did no I/O of its own.
        let timeouts = Rc::new(Cell::new(0));
        let t = timeouts.clone();
        bev.set_event_cb(&mut base, move |_, _, what| {
            assert!(what.contains(BevFlags::TIMEOUT));
            t.set(t.get() + 1);
            // SAFETY: as in the read callback.
            unsafe { &mut *output.as_ptr() }.add(b"late").unwrap();
        })
        .unwrap();
        bev.set_timeouts(&mut base, Some(Duration::from_millis(1)), None)
            .unwrap();
        run_until(&mut base, LIMIT, |base| {
            timeouts.get() > 0 && output_len(base, bev) == 0
        });
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"late", "{m:?}");
        bev.free(&mut base).unwrap();
    }
}

#[test]
fn input_drained_through_a_foreign_pointer_resumes_reading() {
    for m in backends() {
        let mut base = base(m);
        let (fd, mut peer) = socketpair();
        let bev = BufferEvent::socket(&mut base, Some(fd), BevOptions::NONE).unwrap();
        bev.set_watermark(&mut base, What::READ, 0, 4).unwrap();
        bev.enable(&mut base, What::READ).unwrap();
        let (input, _) = bev.buffer_ptrs(&mut base).unwrap();
        peer.write_all(b"12345678").unwrap();
        run_until(&mut base, LIMIT, |base| input_len(base, bev) == 4);
        // Reading stopped at the high watermark; C drains the input through its pointer.
        let mut buf = [0u8; 4];
        // SAFETY: the bufferevent is alive and no reference to its input is held right now.
        assert_eq!(unsafe { &mut *input.as_ptr() }.remove(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"1234");
        run_until(&mut base, LIMIT, |base| input_len(base, bev) == 4);
        assert_eq!(drain_input(&mut base, bev), b"5678", "{m:?}");
        bev.free(&mut base).unwrap();
    }
}

#[test]
fn a_callback_can_clear_itself() {
    for m in backends() {
        let mut base = base(m);
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        b.enable(&mut base, What::READ).unwrap();
        let calls = Rc::new(Cell::new(0));
        let c = calls.clone();
        a.set_write_cb(&mut base, move |base, bev| {
            c.set(c.get() + 1);
            // libevent's bufferevent_setcb(bev, NULL, NULL, NULL, NULL) from inside a callback.
            bev.set_callbacks(base, None, None, None).unwrap();
        })
        .unwrap();
        for msg in [b"one", b"two"] {
            a.write(&mut base, msg).unwrap();
            run_until(&mut base, LIMIT, |base| input_len(base, b) == 3);
            drain_input(&mut base, b);
        }
        assert_eq!(calls.get(), 1, "{m:?}: the cleared callback came back");
        // Replacing a callback from inside it works the same way: the new one stays.
        let (o, n) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (o2, n2) = (o.clone(), n.clone());
        a.set_write_cb(&mut base, move |base, bev| {
            o2.set(o2.get() + 1);
            let n3 = n2.clone();
            bev.set_write_cb(base, move |_, _| n3.set(n3.get() + 1))
                .unwrap();
        })
        .unwrap();
        for msg in [b"thr", b"fou"] {
            a.write(&mut base, msg).unwrap();
            run_until(&mut base, LIMIT, |base| input_len(base, b) == 3);
            drain_input(&mut base, b);
        }
        assert_eq!((o.get(), n.get()), (1, 1), "{m:?}");
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

#[test]
fn a_pairs_callbacks_never_run_inside_a_call_on_the_other_side() {
    for m in backends() {
        let mut base = base(m);
        // No DEFER_CALLBACKS asked for: a pair defers all the same, as libevent's do.
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        let in_api = Rc::new(Cell::new(false));
        let order = log();
        let (o, ia) = (order.clone(), in_api.clone());
        b.set_read_cb(&mut base, move |base, bev| {
            assert!(!ia.get(), "read callback inside a call on the partner");
            push(&o, format!("read {}", drain_input(base, bev).len()));
        })
        .unwrap();
        let (o, ia) = (order.clone(), in_api.clone());
        b.set_event_cb(&mut base, move |_, _, f| {
            assert!(!ia.get(), "event callback inside a call on the partner");
            push(&o, format!("event {f:?}"));
        })
        .unwrap();
        b.enable(&mut base, What::READ).unwrap();
        in_api.set(true);
        a.write(&mut base, b"last words").unwrap();
        a.flush(&mut base, What::WRITE, revent::FlushMode::Flush)
            .unwrap();
        a.free(&mut base).unwrap();
        in_api.set(false);
        run_until(&mut base, LIMIT, |_| order.borrow().len() >= 2);
        assert_eq!(
            entries(&order),
            [
                "read 10",
                &format!("event {:?}", BevFlags::EOF | BevFlags::READING)
            ],
            "{m:?}"
        );
        b.free(&mut base).unwrap();
    }
}

#[test]
fn application_state_is_reachable_from_every_callback() {
    #[derive(Default)]
    struct Chat {
        lines: Vec<String>,
    }
    for m in backends() {
        let mut base = base(m);
        base.set_state(Chat::default());
        let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
        b.set_read_cb(&mut base, |base, bev| {
            while let Some(line) = bev.readln(base, revent::EolStyle::Lf).unwrap() {
                let line = String::from_utf8(line).unwrap();
                base.state_mut::<Chat>().unwrap().lines.push(line);
            }
        })
        .unwrap();
        b.enable(&mut base, What::READ).unwrap();
        a.write(&mut base, b"hi\nthere\n").unwrap();
        run_until(&mut base, LIMIT, |base| {
            base.state::<Chat>().unwrap().lines.len() == 2
        });
        assert_eq!(base.take_state::<Chat>().unwrap().lines, ["hi", "there"]);
        assert!(base.state::<Chat>().is_none());
        a.free(&mut base).unwrap();
        b.free(&mut base).unwrap();
    }
}

/// A loop with nothing but a base's internal work still runs that work before reporting it is
/// empty: a pair's deferred callbacks are internal events.
#[test]
fn dispatch_runs_deferred_callbacks_before_it_reports_no_events() {
    let mut base = EventBase::new().unwrap();
    let (a, b) = BufferEvent::pair(&mut base, BevOptions::NONE).unwrap();
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    b.set_read_cb(&mut base, move |_, _| g.set(true)).unwrap();
    b.enable(&mut base, What::READ).unwrap();
    a.write(&mut base, b"x").unwrap();
    assert_eq!(base.dispatch().unwrap(), revent::LoopExit::NoEvents);
    assert!(got.get());
    a.free(&mut base).unwrap();
    b.free(&mut base).unwrap();
}
