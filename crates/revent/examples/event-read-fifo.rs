//! libevent's `event-read-fifo` sample: watch a named pipe and print what is written into it.
//!
//! Usage: `event-read-fifo [PATH]` (default `event.fifo` in the current directory).
//!
//! The program makes the FIFO, opens it for reading without blocking and adds a persistent READ
//! event on it. Each time the FIFO is readable the callback reads one chunk and prints it. When the
//! last writer closes, the read returns 0 (end of file); like libevent's sample, the program then
//! stops rather than reopen the FIFO for the next writer, so one run serves one writing session
//! (e.g. `echo hello > event.fifo`, or a `cat > event.fifo` until Ctrl-D). SIGINT stops it too. On
//! the way out it removes the FIFO.

use revent::{sig, EventBase, What};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "event.fifo".into()),
    );
    if let Err(e) = make_fifo(&path) {
        eprintln!(
            "event-read-fifo: cannot make the FIFO {}: {e}",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    let result = run(&path);
    // Removed whatever happened in `run`: the FIFO is ours, made above.
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("event-read-fifo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Replaces a FIFO (or socket, or symlink) left at `path` by an earlier run with a new FIFO, but
/// refuses to delete a regular file or a directory: a mistyped path must not cost someone data.
fn make_fifo(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() || m.is_dir() => {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                "exists and is not a FIFO",
            ))
        }
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(ErrorKind::InvalidInput, "the path contains a NUL byte"))?;
    // The standard library has no mkfifo, and a dependency (nix) or spawning mkfifo(1) for one
    // system call would weigh more than these three lines.
    // SAFETY: `c_path` is a NUL-terminated string that lives across the call; mkfifo only reads it.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn run(path: &Path) -> Result<(), revent::Error> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer shows up, and
    // reads must never block the loop. Until a writer has opened it, the FIFO is simply not
    // readable (Linux reports no EOF for a FIFO that never had a writer).
    let fifo = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let fd = fifo.as_raw_fd();

    let mut base = EventBase::new()?;
    let on_sigint = base.new_signal(sig::SIGINT, |base, _| base.loopbreak())?;
    base.add(on_sigint, None)?;
    // The event knows the fd only by number; the callback owns the `File`, so the FIFO stays open
    // exactly as long as the event exists, and closes when the event is freed (or the base dropped).
    let mut fifo = fifo;
    let reader = base.new_event(fd, What::READ | What::PERSIST, move |base, fired| {
        match read_chunk(&mut fifo) {
            Ok(Some(text)) => println!("Read: {text}"),
            // A wake-up with nothing to read after all.
            Ok(None) => {}
            Err(e) => {
                if e.kind() == ErrorKind::UnexpectedEof {
                    eprintln!("Connection closed");
                } else {
                    eprintln!("read: {e}");
                }
                // The signal event is still pending, so the loop would not end by itself.
                base.free(fired.id)
                    .expect("the event is alive while it runs");
                base.loopbreak();
            }
        }
    })?;
    base.add(reader, None)?;
    eprintln!("Write data to {}", path.display());
    base.dispatch()?;
    Ok(())
}

/// One read of at most 255 bytes: `Some(text)`, `None` if nothing was there, or an error, with
/// end of file as `UnexpectedEof`.
fn read_chunk(f: &mut File) -> io::Result<Option<String>> {
    let mut buf = [0u8; 255];
    match f.read(&mut buf) {
        Ok(0) => Err(ErrorKind::UnexpectedEof.into()),
        Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
