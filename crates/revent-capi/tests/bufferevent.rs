//! The bufferevent and listener C functions called from Rust, for what the C tests cannot reach:
//! filters without the evbuffer C functions (the filter functions here use revent's `Evbuffer`
//! directly), a bufferevent made with no base at all (libevent crashes there), filter functions
//! that try to call into the base, and bad arguments (libevent crashes on most of them).

use libc::{c_int, c_short, c_void};
use revent::Evbuffer;
use revent_capi::base::{event_base_free, event_base_loop, event_base_loopexit, event_base_new};
use revent_capi::bufferevent::*;
use revent_capi::listener::*;
use std::ptr;

const EV_READ: c_short = 0x02;
const EVLOOP_NONBLOCK: c_int = 0x02;
const BEV_OPT_CLOSE_ON_FREE: c_int = 0x01;

fn socketpair() -> [c_int; 2] {
    let mut sv = [0; 2];
    // SAFETY: socketpair writes two fds into the array.
    assert_eq!(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) },
        0
    );
    sv
}

fn fd_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD on any int.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

unsafe extern "C" fn upper(
    src: *mut Evbuffer,
    dst: *mut Evbuffer,
    _limit: isize,
    _mode: c_int,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: the filter's two evbuffers, live for the call; ctx is a counter of ours.
    let (src, dst) = unsafe { (&mut *src, &mut *dst) };
    unsafe { *ctx.cast::<u32>() += 1 };
    let mut buf = [0u8; 256];
    loop {
        let n = src.remove(&mut buf).unwrap();
        if n == 0 {
            return 0;
        }
        buf[..n].make_ascii_uppercase();
        dst.add(&buf[..n]).unwrap();
    }
}

unsafe extern "C" fn count_free(ctx: *mut c_void) {
    // SAFETY: ctx is a counter of ours.
    unsafe { *ctx.cast::<u32>() += 1000 };
}

unsafe extern "C" fn collect(bev: *mut bufferevent, arg: *mut c_void) {
    // SAFETY: arg is a Vec<u8> of the test's.
    let out = unsafe { &mut *arg.cast::<Vec<u8>>() };
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: a live bufferevent and a writable buffer.
        let n = unsafe { bufferevent_read(bev, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn run_for(b: *mut revent_capi::base::CBase, ms: i64) {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: ms * 1000,
    };
    // SAFETY: a live base and a live timeval.
    unsafe {
        event_base_loopexit(b, &tv);
        event_base_loop(b, 0);
    }
}

#[test]
fn filter_both_ways() {
    // SAFETY: the C API used as a C program would.
    unsafe {
        let b = event_base_new();
        let mut p = [ptr::null_mut(); 2];
        assert_eq!(bufferevent_pair_new(b, 0, p.as_mut_ptr()), 0);
        // What C callbacks write to is reached only through raw pointers from here on (reading a
        // local that a pointer derived from `&mut` writes to would be undefined behaviour).
        let calls: *mut u32 = Box::into_raw(Box::new(0));
        let ctx = calls.cast::<c_void>();
        let f = bufferevent_filter_new(
            p[0],
            Some(upper),
            Some(upper),
            BEV_OPT_CLOSE_ON_FREE,
            Some(count_free),
            ctx,
        );
        assert!(!f.is_null());
        assert_eq!(bufferevent_get_underlying(f), p[0]);
        let far: *mut Vec<u8> = Box::into_raw(Box::default());
        bufferevent_setcb(p[1], Some(collect), None, None, far.cast());
        bufferevent_enable(p[1], EV_READ);
        assert_eq!(bufferevent_write(f, b"down we go".as_ptr().cast(), 10), 0);
        run_for(b, 30);
        assert_eq!(*far, b"DOWN WE GO");
        let near: *mut Vec<u8> = Box::into_raw(Box::default());
        bufferevent_setcb(f, Some(collect), None, None, near.cast());
        bufferevent_enable(f, EV_READ);
        assert_eq!(bufferevent_write(p[1], b"and up".as_ptr().cast(), 6), 0);
        run_for(b, 30);
        assert_eq!(*near, b"AND UP");
        assert!(*calls >= 2);
        // The program drops its own reference to the underlying side first: the filter keeps it
        // alive, and freeing the filter (CLOSE_ON_FREE) frees it.
        bufferevent_free(f);
        assert!(*calls >= 1000, "free_context ran");
        bufferevent_free(p[1]);
        event_base_loop(b, EVLOOP_NONBLOCK);
        event_base_free(b);
        drop(Box::from_raw(calls));
        drop(Box::from_raw(far));
        drop(Box::from_raw(near));
    }
}

/// A filter function that calls into the base: refused (a warning), not undefined behaviour.
unsafe extern "C" fn reentrant(
    src: *mut Evbuffer,
    dst: *mut Evbuffer,
    _limit: isize,
    _mode: c_int,
    ctx: *mut c_void,
) -> c_int {
    let bev = ctx.cast::<bufferevent>();
    // SAFETY: a live bufferevent; the call must fail cleanly.
    let r = unsafe { bufferevent_write(bev, b"x".as_ptr().cast(), 1) };
    assert_eq!(r, -1);
    // SAFETY: the filter's evbuffers.
    unsafe { (&mut *dst).add_buffer(&mut *src).unwrap() };
    0
}

#[test]
fn filter_cannot_reenter_the_base() {
    // SAFETY: the C API used as a C program would.
    unsafe {
        let b = event_base_new();
        let mut p = [ptr::null_mut(); 2];
        assert_eq!(bufferevent_pair_new(b, 0, p.as_mut_ptr()), 0);
        let f = bufferevent_filter_new(p[0], None, Some(reentrant), 0, None, p[1].cast());
        assert!(!f.is_null());
        let far: *mut Vec<u8> = Box::into_raw(Box::default());
        bufferevent_setcb(p[1], Some(collect), None, None, far.cast());
        bufferevent_enable(p[1], EV_READ);
        assert_eq!(bufferevent_write(f, b"abc".as_ptr().cast(), 3), 0);
        run_for(b, 30);
        assert_eq!(*far, b"abc");
        bufferevent_free(f);
        bufferevent_free(p[0]);
        bufferevent_free(p[1]);
        event_base_free(b);
        drop(Box::from_raw(far));
    }
}

#[test]
fn no_base_until_base_set() {
    // SAFETY: the C API used as a C program would. No test here calls event_init, so there is no
    // current base: the bufferevent waits for one.
    unsafe {
        let sv = socketpair();
        let bev = bufferevent_socket_new(ptr::null_mut(), sv[0], BEV_OPT_CLOSE_ON_FREE);
        assert!(!bev.is_null());
        assert!(bufferevent_get_input(bev).is_null());
        assert_eq!(bufferevent_getfd(bev), sv[0]);
        assert_eq!(bufferevent_enable(bev, EV_READ), -1);
        assert_eq!(bufferevent_write(bev, b"x".as_ptr().cast(), 1), -1);
        let mut got: Vec<u8> = Vec::new();
        bufferevent_setcb(
            bev,
            Some(collect),
            None,
            None,
            (&mut got as *mut Vec<u8>).cast(),
        );
        bufferevent_setwatermark(bev, EV_READ, 0, 3);
        let b = event_base_new();
        assert_eq!(bufferevent_base_set(b, bev), 0);
        assert!(!bufferevent_get_input(bev).is_null());
        assert_eq!(bufferevent_enable(bev, EV_READ), 0);
        assert_eq!(libc::write(sv[1], b"hello".as_ptr().cast(), 5), 5);
        run_for(b, 30);
        assert_eq!(got, b"hello");
        bufferevent_free(bev);
        assert!(!fd_open(sv[0]));
        libc::close(sv[1]);
        event_base_free(b);

        // Freed before it ever had a base: CLOSE_ON_FREE still closes the fd.
        let sv = socketpair();
        let bev = bufferevent_socket_new(ptr::null_mut(), sv[0], BEV_OPT_CLOSE_ON_FREE);
        bufferevent_free(bev);
        assert!(!fd_open(sv[0]));
        libc::close(sv[1]);
    }
}

#[test]
fn bad_arguments_fail_cleanly() {
    // SAFETY: the C API with NULL and nonsense arguments: each call must fail without touching
    // memory.
    unsafe {
        let null = ptr::null_mut::<bufferevent>();
        assert_eq!(bufferevent_write(null, b"x".as_ptr().cast(), 1), -1);
        assert_eq!(bufferevent_read(null, ptr::null_mut(), 0), 0);
        assert_eq!(bufferevent_enable(null, EV_READ), -1);
        assert_eq!(bufferevent_disable(null, EV_READ), -1);
        assert_eq!(bufferevent_getfd(null), -1);
        assert_eq!(bufferevent_setfd(null, 0), -1);
        assert!(bufferevent_get_input(null).is_null());
        assert!(bufferevent_get_base(null).is_null());
        assert_eq!(bufferevent_decref(null), -1);
        assert_eq!(bufferevent_socket_connect(null, ptr::null(), 0), -1);
        assert_eq!(bufferevent_flush(null, EV_READ, 0), -1);
        bufferevent_free(null);
        bufferevent_incref(null);
        bufferevent_setcb(null, None, None, None, ptr::null_mut());
        bufferevent_trigger(null, EV_READ, 0);
        assert!(bufferevent_filter_new(null, None, None, 0, None, ptr::null_mut()).is_null());
        assert_eq!(
            bufferevent_pair_new(ptr::null_mut(), 0, ptr::null_mut()),
            -1
        );
        assert!(bufferevent_rate_limit_group_new(ptr::null_mut(), ptr::null()).is_null());
        assert_eq!(
            bufferevent_rate_limit_group_set_min_share(ptr::null_mut(), 1),
            -1
        );
        bufferevent_rate_limit_group_free(ptr::null_mut());
        ev_token_bucket_cfg_free(ptr::null_mut());
        assert!(evconnlistener_new(ptr::null_mut(), None, ptr::null_mut(), 0, -1, -1).is_null());
        assert!(evconnlistener_new_bind(
            ptr::null_mut(),
            None,
            ptr::null_mut(),
            0,
            -1,
            ptr::null(),
            0
        )
        .is_null());
        evconnlistener_free(ptr::null_mut());
        assert_eq!(evconnlistener_enable(ptr::null_mut()), -1);
        assert_eq!(evconnlistener_get_fd(ptr::null_mut()), -1);

        let b = event_base_new();
        // Not a socket: refused, and the fd is left alone.
        let mut pipe = [0; 2];
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
        assert!(evconnlistener_new(b, None, ptr::null_mut(), 0, 0, pipe[0]).is_null());
        assert!(fd_open(pipe[0]));
        libc::close(pipe[0]);
        libc::close(pipe[1]);
        let not_open = 1_000_000;
        assert!(bufferevent_socket_new(b, not_open, 0).is_null());
        let sv = socketpair();
        let bev = bufferevent_socket_new(b, sv[0], 0);
        assert_eq!(bufferevent_flush(bev, EV_READ, 7), -1);
        assert_eq!(bufferevent_setfd(bev, not_open), -1);
        assert_eq!(bufferevent_decrement_read_limit(bev, 1), -1);
        assert_eq!(bufferevent_socket_connect(bev, ptr::null(), 0), 0);
        let short_addr = [0u8; 1];
        assert_eq!(
            bufferevent_socket_connect(bev, short_addr.as_ptr().cast(), 1),
            -1
        );
        bufferevent_free(bev);
        assert!(fd_open(sv[0]));
        libc::close(sv[0]);
        libc::close(sv[1]);
        event_base_loop(b, EVLOOP_NONBLOCK);
        event_base_free(b);
    }
}

unsafe extern "C" fn record_event(_bev: *mut bufferevent, what: c_short, arg: *mut c_void) {
    // SAFETY: arg is the test's c_short.
    unsafe { *arg.cast::<c_short>() = what };
}

#[test]
fn hostname_lookup_failure_reaches_the_event_callback() {
    // SAFETY: the C API used as a C program would.
    unsafe {
        let b = event_base_new();
        let bev = bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
        let mut what: c_short = 0;
        let arg = (&mut what as *mut c_short).cast::<c_void>();
        bufferevent_setcb(bev, None, None, Some(record_event), arg);
        let name = c"revent-no-such-host.invalid";
        assert_eq!(
            bufferevent_socket_connect_hostname(
                bev,
                ptr::null_mut(),
                libc::AF_INET,
                name.as_ptr(),
                80
            ),
            0
        );
        run_for(b, 30);
        assert_eq!(what, 0x20, "BEV_EVENT_ERROR");
        assert_ne!(bufferevent_socket_get_dns_error(bev), 0);
        bufferevent_free(bev);
        event_base_free(b);
    }
}
