//! `event2/bufferevent_ssl.h` called from Rust, for what the C test (tests/c/openssl.c, which runs
//! TLS over the system's OpenSSL) cannot reach: a process without OpenSSL loaded (these test
//! binaries link no libssl), where the constructors refuse with NULL and leave the program's socket
//! open, and the getters on bufferevents that are not TLS ones.

use libc::c_int;
use revent_capi::base::{event_base_free, event_base_new};
use revent_capi::bufferevent::*;
use revent_capi::openssl::*;
use std::ptr;

const BEV_OPT_CLOSE_ON_FREE: c_int = 0x01;
const BUFFEREVENT_SSL_CONNECTING: c_int = 1;

fn fd_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD on any int.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

#[test]
fn without_openssl_the_constructors_refuse_and_leave_the_socket_open() {
    // SAFETY: dlsym with a NUL-terminated name.
    let ssl_read = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"SSL_read".as_ptr()) };
    assert!(ssl_read.is_null(), "this test binary has OpenSSL loaded");
    // SAFETY: the C API with live objects made here; each is freed once.
    unsafe {
        let base = event_base_new();
        assert!(!base.is_null());
        let mut sv = [0; 2];
        assert_eq!(
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()),
            0
        );
        // Any non-null pointer would do: without libssl in the process nothing looks at it.
        let mut fake_ssl = [0u64; 4];
        let ssl = fake_ssl.as_mut_ptr().cast();
        let bev = bufferevent_openssl_socket_new(
            base,
            sv[0],
            ssl,
            BUFFEREVENT_SSL_CONNECTING,
            BEV_OPT_CLOSE_ON_FREE,
        );
        assert!(bev.is_null());
        assert!(
            fd_open(sv[0]),
            "a refused constructor closed the program's socket"
        );
        let under = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
        assert!(!under.is_null());
        let f = bufferevent_openssl_filter_new(
            base,
            under,
            ssl,
            BUFFEREVENT_SSL_CONNECTING,
            BEV_OPT_CLOSE_ON_FREE,
        );
        assert!(f.is_null());
        // The underlying bufferevent is untouched and still the program's.
        assert_eq!(bufferevent_getfd(under), sv[1]);
        bufferevent_free(under);
        assert!(!fd_open(sv[1]));
        libc::close(sv[0]);
        event_base_free(base);
    }
}

#[test]
fn the_getters_on_other_bufferevents() {
    // SAFETY: the C API with live objects made here; each is freed once.
    unsafe {
        let base = event_base_new();
        let mut pair = [ptr::null_mut(); 2];
        assert_eq!(bufferevent_pair_new(base, 0, pair.as_mut_ptr()), 0);
        let p = pair[0];
        assert!(bufferevent_openssl_get_ssl(p).is_null());
        assert_eq!(bufferevent_openssl_get_allow_dirty_shutdown(p), -1);
        bufferevent_openssl_set_allow_dirty_shutdown(p, 1);
        assert_eq!(bufferevent_openssl_get_allow_dirty_shutdown(p), -1);
        assert_eq!(bufferevent_get_openssl_error(p), 0);
        assert_eq!(bufferevent_ssl_renegotiate(p), -1);
        // NULL is refused, not dereferenced.
        assert!(bufferevent_openssl_get_ssl(ptr::null_mut()).is_null());
        assert_eq!(
            bufferevent_openssl_get_allow_dirty_shutdown(ptr::null_mut()),
            -1
        );
        assert_eq!(bufferevent_get_openssl_error(ptr::null_mut()), 0);
        assert_eq!(bufferevent_ssl_renegotiate(ptr::null_mut()), -1);
        bufferevent_free(pair[0]);
        bufferevent_free(pair[1]);
        event_base_free(base);
    }
}
