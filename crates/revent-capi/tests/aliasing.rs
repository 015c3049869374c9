//! The C-callback aliasing path, driven from Rust the way a C program drives it, so that Miri (Tree
//! Borrows, in `.ci/run`) checks it: C callbacks that re-enter the base (add, delete, free, activate
//! events, write to and free bufferevents, change evbuffers) while the loop that called them is
//! running; and foreign code that revent's own work reaches without lending the base (a callback on a
//! bufferevent's evbuffer), whose calls into the base are refused rather than aliased.
//!
//! Only timers, activations and bufferevent pairs: no fd reaches the backend (Miri's epoll needs
//! edge-triggered registrations).

use libc::{c_int, c_short, c_void};
use revent_capi::base::{event_base_free, event_base_loop, event_base_new};
use revent_capi::buffer::{evbuffer_add, evbuffer_add_cb, evbuffer_cb_info, evbuffer_get_length};
use revent_capi::bufferevent::*;
use revent_capi::event::*;
use std::ptr;

const EV_TIMEOUT: c_short = 0x01;
const EV_READ: c_short = 0x02;
const EV_PERSIST: c_short = 0x10;
const EVLOOP_NONBLOCK: c_int = 0x02;

/// What the callbacks share, reached only through the raw pointer they are given.
struct World {
    first: *mut event,
    second: *mut event,
    log: Vec<&'static str>,
    pair: [*mut bufferevent; 2],
    got: Vec<u8>,
    refused: c_int,
}

unsafe extern "C" fn first_cb(_fd: c_int, _what: c_short, arg: *mut c_void) {
    // SAFETY: `arg` is the test's World, alive for the whole loop; no other reference to it exists
    // while a callback runs.
    let w = unsafe { &mut *arg.cast::<World>() };
    w.log.push("first");
    // Re-enter the base from inside its loop: activate the second event, delete and free ourselves.
    // SAFETY: live events of a live base, as a C callback would use them.
    unsafe {
        event_active(w.second, EV_TIMEOUT as c_int, 1);
        assert_eq!(event_del(w.first), 0);
        event_free(w.first);
    }
    w.first = ptr::null_mut();
}

unsafe extern "C" fn second_cb(_fd: c_int, _what: c_short, arg: *mut c_void) {
    // SAFETY: as in first_cb.
    let w = unsafe { &mut *arg.cast::<World>() };
    w.log.push("second");
    // Start the pair's traffic from here: a write re-enters the base too.
    // SAFETY: a live bufferevent.
    assert_eq!(
        unsafe { bufferevent_write(w.pair[0], b"ping".as_ptr().cast(), 4) },
        0
    );
}

unsafe extern "C" fn read_cb(bev: *mut bufferevent, arg: *mut c_void) {
    // SAFETY: as in first_cb.
    let w = unsafe { &mut *arg.cast::<World>() };
    let mut buf = [0u8; 16];
    // SAFETY: a live bufferevent and a writable buffer.
    let n = unsafe { bufferevent_read(bev, buf.as_mut_ptr().cast(), buf.len()) };
    w.got.extend_from_slice(&buf[..n]);
    if w.got == b"ping" {
        // Answer through the output's evbuffer pointer, then free the other side.
        // SAFETY: live bufferevents; the output pointer stays valid while `bev` lives.
        unsafe {
            let out = bufferevent_get_output(bev);
            assert_eq!(evbuffer_add(out, b"pong".as_ptr().cast(), 4), 0);
        }
    } else if w.got == b"pingpong" {
        // SAFETY: a live bufferevent, freed once (the other side frees later).
        unsafe { bufferevent_free(w.pair[1]) };
        w.pair[1] = ptr::null_mut();
        w.log.push("freed");
    }
}

/// A callback on a bufferevent's input evbuffer: it runs while the pair moves bytes into that
/// buffer, inside revent's own work, so its call into the base is refused.
unsafe extern "C" fn input_changed(
    _buf: *mut revent::Evbuffer,
    info: *const evbuffer_cb_info,
    arg: *mut c_void,
) {
    // SAFETY: as in first_cb; `info` is live for the call.
    let (w, info) = unsafe { (&mut *arg.cast::<World>(), &*info) };
    if info.n_added > 0 {
        // SAFETY: a live event of a live base.
        w.refused = unsafe { event_add(w.second, ptr::null()) };
    }
}

#[test]
fn c_callbacks_reenter_the_base_without_aliasing() {
    // SAFETY: the C API used as a C program would; `w` is reached only through `wp`.
    unsafe {
        let base = event_base_new();
        assert!(!base.is_null());
        let wp: *mut World = Box::into_raw(Box::new(World {
            first: ptr::null_mut(),
            second: ptr::null_mut(),
            log: Vec::new(),
            pair: [ptr::null_mut(); 2],
            got: Vec::new(),
            refused: 0,
        }));
        (*wp).first = event_new(base, -1, EV_TIMEOUT, Some(first_cb), wp.cast());
        (*wp).second = event_new(base, -1, EV_TIMEOUT, Some(second_cb), wp.cast());
        assert_eq!(bufferevent_pair_new(base, 0, (*wp).pair.as_mut_ptr()), 0);
        let [a, b] = (*wp).pair;
        // `a` reads the pong, `b` reads the ping.
        bufferevent_setcb(a, Some(read_cb), None, None, wp.cast());
        bufferevent_setcb(b, Some(read_cb), None, None, wp.cast());
        // Echo on b: its read callback writes through the pointer (see read_cb).
        assert_eq!(bufferevent_enable(a, EV_READ), 0);
        assert_eq!(bufferevent_enable(b, EV_READ), 0);
        assert!(
            !evbuffer_add_cb(bufferevent_get_input(b), Some(input_changed), wp.cast()).is_null()
        );
        event_active((*wp).first, EV_TIMEOUT as c_int, 1);
        for _ in 0..20 {
            event_base_loop(base, EVLOOP_NONBLOCK);
            if (*wp).log.contains(&"freed") {
                break;
            }
        }
        assert_eq!((*wp).log, ["first", "second", "freed"]);
        assert_eq!((*wp).got, b"pingpong");
        assert_eq!(
            (*wp).refused,
            -1,
            "the evbuffer callback's call was refused"
        );
        assert_eq!(evbuffer_get_length(bufferevent_get_input(a)), 0);
        bufferevent_free(a);
        event_free((*wp).second);
        event_base_loop(base, EVLOOP_NONBLOCK);
        event_base_free(base);
        drop(Box::from_raw(wp));
    }
}

unsafe extern "C" fn tick(_fd: c_int, _what: c_short, arg: *mut c_void) {
    // SAFETY: the counter of the test, reached only through this pointer.
    let n = unsafe { &mut *arg.cast::<u32>() };
    *n += 1;
}

#[test]
fn persistent_timer_from_c() {
    // SAFETY: the C API used as a C program would.
    unsafe {
        let base = event_base_new();
        let n: *mut u32 = Box::into_raw(Box::new(0));
        let ev = event_new(base, -1, EV_PERSIST, Some(tick), n.cast());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 1000,
        };
        assert_eq!(event_add(ev, &tv), 0);
        while n.read() < 3 {
            event_base_loop(base, 0x01); // EVLOOP_ONCE
        }
        event_free(ev);
        event_base_free(base);
        drop(Box::from_raw(n));
    }
}
