//! Compiles the C reference servers in `crates/revent-bench/c/` at run time (never at `cargo build`).
//!
//! A stand-in for the crate-wide C helper being written on another branch; once that is merged this
//! module becomes a call to it. `cc -O2` into `target/cref/`, reused while the source and flags are the
//! same. Programs linked with `-levent*` need Debian's `libevent-dev`; without its headers the error
//! says so.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn source_dir() -> PathBuf {
    match std::env::var_os("REVENT_BENCH_C_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("c"),
    }
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("cref");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    match exe.parent().and_then(Path::parent) {
        Some(target) => target.join("cref"),
        None => PathBuf::from("target/cref"),
    }
}

/// Compiles `c/<name>.c` with `link` (e.g. `["-levent_core"]`) and returns the executable's path.
pub fn build(name: &str, link: &[&str]) -> Result<PathBuf, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let src = source_dir().join(format!("{name}.c"));
    let text = fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    let cflags = ["-O2", "-Wall", "-Wextra"];
    let mut h = DefaultHasher::new();
    (&text, &cc, cflags, link).hash(&mut h);
    let out = cache_dir().join(format!("{name}-{:016x}", h.finish()));
    if out.exists() {
        return Ok(out);
    }
    if link.iter().any(|l| l.starts_with("-levent")) && !has_libevent(&cc) {
        return Err(format!(
            "{name} needs C libevent's headers (<event2/event.h>): install Debian's libevent-dev \
             (apt-get install -y libevent-dev)"
        ));
    }
    let dir = cache_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = Command::new(&cc)
        .args(cflags)
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .args(link)
        .status()
        .map_err(|e| format!("cannot run the C compiler `{cc}`: {e} (apt-get install -y gcc)"))?;
    if !status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(format!("compiling {} failed ({status})", src.display()));
    }
    fs::rename(&tmp, &out).map_err(|e| format!("cannot move {}: {e}", tmp.display()))?;
    Ok(out)
}

fn has_libevent(cc: &str) -> bool {
    let Ok(mut child) = Command::new(cc)
        .args(["-E", "-x", "c", "-o", "/dev/null", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"#include <event2/event.h>\n#include <event2/bufferevent.h>\n");
    }
    child.wait().is_ok_and(|s| s.success())
}
