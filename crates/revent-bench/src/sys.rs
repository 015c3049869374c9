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

/// Pins the calling thread (not the whole process) to `cpu`.
pub fn pin_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array, for which all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::other(format!("CPU {cpu} is out of range")));
    }
    // SAFETY: CPU_SET sets one bit of the live local `set`; `cpu` is within it (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 means the calling thread; the kernel only reads the live local `set`.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) } == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::other(format!("pinning to CPU {cpu}: {e}")));
    }
    Ok(())
}

/// The CPU-time clock of another thread of this process, read with [`CpuClock::ns`].
pub struct CpuClock(libc::clockid_t);

impl CpuClock {
    /// The clock of `thread`, which must stay joinable (not joined, not detached) while it is read.
    pub fn of(thread: libc::pthread_t) -> io::Result<CpuClock> {
        let mut id: libc::clockid_t = 0;
        // SAFETY: `thread` is a live, joinable thread (the caller holds its JoinHandle); the call
        // writes one clockid_t into the live local `id`.
        let r = unsafe { libc::pthread_getcpuclockid(thread, &mut id) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(CpuClock(id))
    }

    /// The thread's CPU time so far (user + system), in ns; 0 if the clock cannot be read.
    pub fn ns(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one `timespec` into the live local `ts`.
        if unsafe { libc::clock_gettime(self.0, &mut ts) } != 0 {
            return 0;
        }
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

/// Writes one byte to `fd`: for an fd that something else (a bufferevent) owns, which the caller
/// only borrows for this call. Returns what `write(2)` returned, or its error.
pub fn write_byte(fd: std::os::fd::RawFd, byte: u8) -> io::Result<usize> {
    // SAFETY: write reads one byte from the live local `byte`; a stale fd number is at worst an
    // error (EBADF) or a byte to another file, never memory unsafety.
    let n = unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
