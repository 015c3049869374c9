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
