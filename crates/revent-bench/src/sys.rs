//! The few raw system calls the harness needs.

use std::io;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit when it is below `need`; fails when even the hard
/// limit is too low.
pub fn raise_nofile(need: u64) -> io::Result<()> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the live local `rl`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if rl.rlim_cur >= need {
        return Ok(());
    }
    rl.rlim_cur = rl.rlim_max;
    // SAFETY: setrlimit only reads the live local `rl`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if rl.rlim_cur < need {
        return Err(io::Error::other(format!(
            "need {need} file descriptors, the hard limit is {}",
            rl.rlim_max
        )));
    }
    Ok(())
}

/// This thread's CPU time (user + system) in ns: unlike the wall clock, it leaves out the time the
/// thread was runnable but preempted by other processes on a shared machine.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` into the live local `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
