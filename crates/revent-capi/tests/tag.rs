//! `event2/tag.h` through the C ABI, driven from Rust (so `cargo test` covers it; the C test
//! `tests/c/tag.c` checks the same against Debian's libevent from `run.sh`): return values, NUL-
//! terminated strings from the program's allocator, a payload moved within one buffer, and the
//! refusals that go beyond libevent 2.1.12.

use libc::{c_char, c_void, timeval};
use revent_capi::buffer::*;
use revent_capi::tag::*;
use std::ptr;

fn contents(b: *mut evbuffer) -> Vec<u8> {
    // SAFETY: a live buffer from evbuffer_new; the copy has room for its length.
    unsafe {
        let n = evbuffer_get_length(b);
        let mut v = vec![0u8; n];
        assert_eq!(evbuffer_remove(b, v.as_mut_ptr().cast(), n), n as i32);
        v
    }
}

#[test]
fn every_function_round_trips() {
    // SAFETY: live buffers and pointers to locals throughout; strings are NUL-terminated.
    unsafe {
        let b = evbuffer_new();
        evtag_init();
        evtag_marshal_int(b, 0x166, 0x1234);
        evtag_marshal_int64(b, 2, u64::MAX);
        let mut tv = timeval {
            tv_sec: 1_700_000_000,
            tv_usec: 250_000,
        };
        evtag_marshal_timeval(b, 3, &mut tv);
        let text = std::ffi::CString::new("text").unwrap();
        evtag_marshal_string(b, 4, text.as_ptr());
        evtag_marshal(b, 5, b"fix".as_ptr().cast(), 3);
        let data = evbuffer_new();
        evbuffer_add(data, b"moved".as_ptr().cast(), 5);
        evtag_marshal_buffer(b, 6, data);
        assert_eq!(evbuffer_get_length(data), 0);
        evtag_encode_tag(b, 0x4000);
        evtag_encode_int(b, 7);
        evtag_encode_int64(b, 1 << 40);

        let (mut t, mut len, mut v, mut v64) = (0u32, 0u32, 0u32, 0u64);
        assert_eq!(evtag_peek(b, &mut t), 2);
        assert_eq!(t, 0x166);
        assert_eq!(evtag_payload_length(b, &mut len), 0);
        assert_eq!(len, 3);
        assert_eq!(evtag_peek_length(b, &mut len), 0);
        assert_eq!(len, 6);
        assert_eq!(evtag_unmarshal_int(b, 0x166, &mut v), 3);
        assert_eq!(v, 0x1234);
        assert_eq!(evtag_unmarshal_int64(b, 2, &mut v64), 9);
        assert_eq!(v64, u64::MAX);
        let mut out = timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        assert_eq!(evtag_unmarshal_timeval(b, 3, &mut out), 0);
        assert_eq!((out.tv_sec, out.tv_usec), (1_700_000_000, 250_000));
        let mut s: *mut c_char = ptr::null_mut();
        assert_eq!(evtag_unmarshal_string(b, 4, &mut s), 0);
        assert_eq!(std::ffi::CStr::from_ptr(s).to_bytes(), b"text");
        libc::free(s.cast());
        let mut fixed = [0u8; 3];
        assert_eq!(evtag_unmarshal_fixed(b, 5, fixed.as_mut_ptr().cast(), 3), 0);
        assert_eq!(&fixed, b"fix");
        // The payload goes to the end of the same buffer, as libevent's does.
        assert_eq!(evtag_unmarshal(b, &mut t, b), 5);
        assert_eq!(t, 6);
        assert_eq!(evtag_decode_tag(&mut t, b), 3);
        assert_eq!(t, 0x4000);
        assert_eq!(evtag_decode_int(&mut v, b), 0);
        assert_eq!(v, 7);
        assert_eq!(evtag_decode_int64(&mut v64, b), 0);
        assert_eq!(v64, 1 << 40);
        assert_eq!(contents(b), b"moved");
        evbuffer_free(data);
        evbuffer_free(b);
    }
}

#[test]
fn errors_are_minus_one() {
    // SAFETY: live buffers and pointers to locals.
    unsafe {
        let b = evbuffer_new();
        let (mut t, mut v) = (0u32, 0u32);
        assert_eq!(evtag_peek(b, &mut t), -1);
        assert_eq!(evtag_consume(b), -1);
        // Wrong tag: the tag goes, as in libevent.
        evtag_marshal_int(b, 1, 77);
        assert_eq!(evtag_unmarshal_int(b, 2, &mut v), -1);
        assert_eq!(contents(b), [0x02, 0x1d, 0x40]);
        // A fifth tag byte with its continuation bit: -1, nothing taken.
        evbuffer_add(
            b,
            [0xffu8, 0xff, 0xff, 0xff, 0x8f, 0, 1, 0].as_ptr().cast(),
            8,
        );
        assert_eq!(evtag_peek(b, &mut t), -1);
        assert_eq!(evtag_unmarshal_header(b, &mut t), -1);
        assert_eq!(evbuffer_get_length(b), 8);
        evbuffer_drain(b, 8);
        // A whole length above 32 bits: -1 where libevent 2.1.12 wraps around.
        evtag_encode_tag(b, 1);
        evtag_encode_int(b, u32::MAX);
        let mut len = 0u32;
        assert_eq!(evtag_peek_length(b, &mut len), -1);
        assert_eq!(evtag_payload_length(b, &mut len), 0);
        assert_eq!(len, u32::MAX);
        evbuffer_free(b);
    }
}

/// A payload length above INT_MAX whose bytes are all there (2 GiB of untouched address space):
/// -1 from every function that returns or uses the length as an int.
#[test]
fn a_length_above_int_max_is_refused() {
    let big = 0x8000_0000usize + 8;
    // SAFETY: a fresh private read-only mapping, never written; unmapped at the end.
    let space = unsafe {
        libc::mmap(
            ptr::null_mut(),
            big,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if space == libc::MAP_FAILED {
        eprintln!("no 2 GiB of address space: skipped");
        return;
    }
    // SAFETY: live buffers; the mapping outlives them (they are freed before munmap).
    unsafe {
        let b = evbuffer_new();
        let dst = evbuffer_new();
        let mut t = 0u32;
        for round in 0..4 {
            evtag_encode_tag(b, 1);
            evtag_encode_int(b, 0x8000_0000);
            assert_eq!(
                evbuffer_add_reference(b, space as *const c_void, big, None, ptr::null_mut()),
                0
            );
            let r = match round {
                0 => evtag_unmarshal_header(b, &mut t),
                1 => evtag_unmarshal(b, &mut t, dst),
                2 => evtag_consume(b),
                _ => {
                    let mut s: *mut c_char = ptr::null_mut();
                    let r = evtag_unmarshal_string(b, 1, &mut s);
                    assert!(s.is_null());
                    r
                }
            };
            assert_eq!(r, -1);
            // The header went (as in libevent), the payload is untouched.
            assert_eq!(evbuffer_get_length(b), big);
            assert_eq!(evbuffer_get_length(dst), 0);
            evbuffer_drain(b, big);
        }
        evbuffer_free(dst);
        evbuffer_free(b);
        libc::munmap(space, big);
    }
}
