//! The aliasing model of `revent::base` (module docs), driven through raw pointers the way the C ABI
//! will drive it. CI runs this file under Miri with Tree Borrows, which reports any access through a
//! pointer that an intervening unique borrow invalidated.
//!
//! The "C" side here keeps the base and the buffers as raw pointers. Outside the loop it makes a
//! short-lived `&mut` from them; inside a callback it re-enters the base only through the pointer
//! the trampoline derived from the callback's own `&mut EventBase`, and reads a buffer in a change
//! callback through the pointer derived from the `&mut Evbuffer` it was given.

use revent::{BevOptions, BufferEvent, Evbuffer, EventBase, EventId, LoopFlags, What};
use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::time::Duration;

thread_local! {
    /// The base a running callback re-enters through (the trampoline's pointer), null outside.
    static CURRENT: Cell<*mut EventBase> = const { Cell::new(ptr::null_mut()) };
}

/// What the C ABI's callback trampoline does: stash a pointer derived from the `&mut EventBase` the
/// dispatcher lent, run the foreign callback, clear the stash.
fn trampoline(base: &mut EventBase, foreign: impl FnOnce()) {
    let p: *mut EventBase = base;
    CURRENT.with(|c| c.set(p));
    foreign();
    CURRENT.with(|c| c.set(ptr::null_mut()));
}

/// A "C" function re-entering the base from inside a callback, as `event_add` would.
fn c_reenter(f: impl FnOnce(&mut EventBase)) {
    let p = CURRENT.with(Cell::get);
    assert!(!p.is_null(), "re-entered outside a callback");
    // SAFETY: `p` was derived from the `&mut EventBase` the dispatcher passed to the running
    // callback, which is not used while the foreign code runs; the reference made here ends before
    // the trampoline returns.
    f(unsafe { &mut *p });
}

#[test]
fn callbacks_reenter_through_the_pointer_they_were_given() {
    // The "C" program owns the base as a raw pointer.
    let base: *mut EventBase = Box::into_raw(Box::new(EventBase::new().unwrap()));
    let fired = std::rc::Rc::new(Cell::new(0u32));

    // Outside the loop: a short-lived `&mut` per call.
    // SAFETY: nothing else borrows the base between these calls.
    let second: EventId = unsafe { &mut *base }.new_timer({
        let fired = fired.clone();
        move |b, _| trampoline(b, || fired.set(fired.get() + 10))
    });
    // SAFETY: as above.
    let first = unsafe { &mut *base }.new_timer({
        let fired = fired.clone();
        move |b, me| {
            trampoline(b, || {
                fired.set(fired.get() + 1);
                // Re-entrant calls, as C's event_add/event_active/event_free from a callback.
                c_reenter(|b| b.add(second, Some(Duration::from_millis(1))).unwrap());
                c_reenter(|b| b.activate(second, What::TIMEOUT, 1).unwrap());
                c_reenter(|b| b.free(me.id).unwrap());
            })
        }
    });
    // SAFETY: as above.
    unsafe { &mut *base }.add(first, None).unwrap();
    // SAFETY: as above.
    unsafe { &mut *base }
        .activate(first, What::TIMEOUT, 1)
        .unwrap();
    // SAFETY: the loop's `&mut` lives for the call; callbacks re-enter only through CURRENT.
    unsafe { &mut *base }.dispatch().unwrap();
    // The second timer ran once: activated. As in libevent, running a non-persistent event deletes
    // it, so the timeout armed just before is gone.
    assert_eq!(fired.get(), 11);
    // SAFETY: `base` came from Box::into_raw and nothing borrows it any more.
    drop(unsafe { Box::from_raw(base) });
}

#[test]
fn foreign_pointers_to_a_bufferevents_buffers_stay_valid_and_changes_are_written() {
    let base: *mut EventBase = Box::into_raw(Box::new(EventBase::new().unwrap()));
    // SAFETY: no other borrow of the base is alive during each of these calls.
    let (a, b) = BufferEvent::pair(unsafe { &mut *base }, BevOptions::NONE).unwrap();
    // SAFETY: as above.
    let (_, a_out): (NonNull<Evbuffer>, NonNull<Evbuffer>) =
        a.buffer_ptrs(unsafe { &mut *base }).unwrap();
    // SAFETY: as above.
    let (b_in, _) = b.buffer_ptrs(unsafe { &mut *base }).unwrap();
    let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    // SAFETY: as above.
    b.set_read_cb(unsafe { &mut *base }, move |base, bev| {
        trampoline(base, || {
            // C's evbuffer_remove(bufferevent_get_input(bev)) through the pointer C kept: no Rust
            // reference to that buffer is alive while a callback runs.
            let mut buf = [0u8; 64];
            // SAFETY: the buffer lives as long as the bufferevent (not freed yet) and nothing else
            // references it now.
            let n = unsafe { &mut *b_in.as_ptr() }.remove(&mut buf).unwrap();
            g.borrow_mut().extend_from_slice(&buf[..n]);
            // And a reply through the API, re-entering the base as C's bufferevent_write would.
            c_reenter(|base| bev.write(base, b"pong").unwrap());
        })
    })
    .unwrap();
    // SAFETY: as above.
    b.enable(unsafe { &mut *base }, What::READ).unwrap();
    // SAFETY: as above.
    a.enable(unsafe { &mut *base }, What::READ).unwrap();

    // C adds to a's output through the pointer it kept, outside any callback: the bufferevent must
    // notice and move the bytes to its partner.
    // SAFETY: no Rust reference to a's output is alive; the bufferevent is alive.
    unsafe { &mut *a_out.as_ptr() }.add(b"ping").unwrap();
    // A change callback on it: a pair defers its buffers' callbacks (as libevent does), so it runs
    // from the loop, not inside `add`.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    // SAFETY: as above.
    unsafe { &mut *a_out.as_ptr() }.add_cb(move |_, info| {
        s.fetch_add(info.n_added, std::sync::atomic::Ordering::Relaxed);
    });
    // SAFETY: as above.
    unsafe { &mut *a_out.as_ptr() }.add(b"!").unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 0);

    for _ in 0..20 {
        // SAFETY: no other borrow of the base is alive.
        if got.borrow().len() >= 5 && a.input(unsafe { &mut *base }).unwrap().len() >= 4 {
            break;
        }
        // SAFETY: the loop's `&mut` lives for the call; callbacks re-enter only through CURRENT.
        unsafe { &mut *base }.run(LoopFlags::NONBLOCK).unwrap();
    }
    assert_eq!(&got.borrow()[..], b"ping!");
    assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 1);
    let mut reply = [0u8; 8];
    // SAFETY: as above.
    let n = a.read(unsafe { &mut *base }, &mut reply).unwrap();
    assert_eq!(&reply[..n], b"pong");
    // SAFETY: `base` came from Box::into_raw and nothing borrows it any more.
    drop(unsafe { Box::from_raw(base) });
}

#[test]
fn a_change_callback_reads_its_buffer_through_the_pointer_it_is_given() {
    // A heap buffer that "C" holds by pointer (evbuffer_new).
    let buf: *mut Evbuffer = Box::into_raw(Box::new(Evbuffer::new()));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    // SAFETY: no other reference to the buffer is alive during each of these calls.
    unsafe { &mut *buf }.add_cb(move |b, info| {
        // What C's callback does with the `struct evbuffer *` it receives: read (and here, drain)
        // through a pointer derived from the reference the callback was given, never through the
        // pointer it kept.
        let p: *mut Evbuffer = b;
        // SAFETY: `p` comes from this callback's `&mut` and is used only while the callback runs.
        let len = unsafe { (*p).len() };
        s.lock().unwrap().push((info.n_added, info.n_deleted, len));
        if len > 3 {
            // SAFETY: as above.
            unsafe { (*p).drain(len - 3) }.unwrap();
        }
    });
    // SAFETY: as above.
    unsafe { &mut *buf }.add(b"hello").unwrap();
    // The drain inside the callback is reported in a second round, after the first.
    assert_eq!(*seen.lock().unwrap(), vec![(5, 0, 5), (0, 2, 3)]);
    // SAFETY: as above.
    assert_eq!(unsafe { &mut *buf }.pullup_all().unwrap(), b"llo");
    // SAFETY: `buf` came from Box::into_raw and nothing borrows it any more.
    drop(unsafe { Box::from_raw(buf) });
}
