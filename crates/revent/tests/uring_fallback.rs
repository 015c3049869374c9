//! Where the kernel refuses io_uring, a base that would use it takes the next method, and
//! `EVENT_SHOW_METHOD` says why. The refusal is real: a seccomp filter on the test's own thread makes
//! `io_uring_setup` fail with EPERM, as a container's profile does.

use revent::{Config, ConfigFlags, EventBase, Method};
use std::process::Command;

const CHILD_VAR: &str = "REVENT_TEST_URING_FALLBACK_CHILD";

/// Makes `io_uring_setup` fail with EPERM on the calling thread (and only there: no TSYNC).
fn refuse_io_uring_on_this_thread() {
    // Classic BPF: load the syscall number, EPERM for io_uring_setup, allow the rest.
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let prog = [
        libc::sock_filter {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0, // seccomp_data.nr
        },
        libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: RET_ALLOW,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `fprog` points to `prog`, both live for the call (the kernel copies
    // the program).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog
            ),
            0,
            "seccomp: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn refused_io_uring_falls_back_to_poll() {
    if !EventBase::method_available(Method::IoUring) {
        // The refusal this test makes is already in place (an old kernel, a container's seccomp
        // profile); CI runs where io_uring works.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "io_uring is unavailable on this machine, and CI=true requires it"
        );
        eprintln!("note: the kernel refuses io_uring here: test skipped");
        return;
    }
    std::thread::spawn(|| {
        refuse_io_uring_on_this_thread();
        assert!(!EventBase::method_available(Method::IoUring));
        let mut cfg = Config::new();
        cfg.avoid_method(Method::Epoll)
            .set_flag(ConfigFlags::IGNORE_ENV);
        let base = EventBase::with_config(&cfg).unwrap();
        assert_eq!(base.method(), "poll", "the next method after io_uring");
        // Asked for io_uring alone: nothing to fall back to.
        let mut only = Config::new();
        only.avoid_method(Method::Epoll)
            .avoid_method(Method::Poll)
            .avoid_method(Method::Select)
            .set_flag(ConfigFlags::IGNORE_ENV);
        assert!(matches!(
            EventBase::with_config(&only),
            Err(revent::Error::NoBackend)
        ));
    })
    .join()
    .unwrap();
}

/// Runs in a child process (see below): a base on a thread that cannot have io_uring.
#[test]
fn show_method_child() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return; // only meaningful as the child of `show_method_says_why_io_uring_was_skipped`
    }
    std::thread::spawn(|| {
        refuse_io_uring_on_this_thread();
        let mut cfg = Config::new();
        cfg.avoid_method(Method::Epoll);
        let base = EventBase::with_config(&cfg).unwrap();
        assert_eq!(base.method(), "poll");
    })
    .join()
    .unwrap();
}

#[test]
fn show_method_says_why_io_uring_was_skipped() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "show_method_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .env("EVENT_SHOW_METHOD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stderr}");
    assert!(
        stderr.contains("[msg] revent: io_uring unavailable (Operation not permitted"),
        "no reason given: {stderr}"
    );
    assert!(
        stderr.contains("[msg] libevent using: poll"),
        "no method shown: {stderr}"
    );
}

/// Asking whether io_uring is available leaves the calling thread alone: the kernel's teardown of
/// the probe's ring notifies the thread that used it, which made that thread's next timed blocking
/// read fail with EINTR (about one time in six) while the probe ran on the caller's thread.
#[test]
fn probing_io_uring_does_not_interrupt_the_callers_next_read() {
    use std::io::{ErrorKind, Read};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;
    let (mut a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    for round in 0..30 {
        let _ = EventBase::method_available(Method::IoUring);
        let e = a.read(&mut [0u8; 1]).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "round {round}: the read failed with {e}"
        );
    }
}
