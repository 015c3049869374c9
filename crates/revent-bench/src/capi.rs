//! The `capi` contender: a C program built against Debian's libevent, run on revent's C ABI.
//!
//! The very binary of the `libevent` contender (compiled by [`crate::cref`] with `-levent_core` etc.),
//! started with `LD_LIBRARY_PATH` set to the directory `crates/revent-capi/build-libs.sh` fills with
//! revent's `libevent-2.1.so.7`, `libevent_core-2.1.so.7`, ... So the two differ only in the library
//! the dynamic linker loads: libevent.so against revent's.
//!
//! Three checks keep a wrong set-up from producing numbers:
//! - [`libs`] builds the directory when it lacks `libevent_core-2.1.so.7` (and, for the default
//!   directory, when revent's sources are newer than it), so a stale library is not measured;
//! - [`preflight`] runs `ldd -r` on the program with the directory in `LD_LIBRARY_PATH`: every
//!   libevent library must resolve into the directory and no symbol may be undefined (a function the C
//!   ABI does not have yet makes the contender "not available", not a crash in the middle of a run);
//! - [`check_maps`] reads `/proc/PID/maps` of the started process: it must map libevent only from the
//!   directory (for the `libevent` contender: never from it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// The option's line for the usage texts.
pub const USAGE_LINE: &str = "\
  --capi-libs DIR         revent's libevent-2.1 libraries for the `capi` contenders (the same C
                          binary as `libevent`, run with LD_LIBRARY_PATH=DIR). Default:
                          target/revent-libs, (re)built with crates/revent-capi/build-libs.sh when
                          missing or older than revent's sources; a DIR given here is built only
                          when it lacks libevent_core-2.1.so.7";

/// The library every capi directory has.
const CORE: &str = "libevent_core-2.1.so.7";

/// The workspace root this crate was built in.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$CARGO_TARGET_DIR/revent-libs`, else `revent-libs` next to the profile directory holding this
/// executable (`target/revent-libs`), as [`crate::cref::cache_dir`] finds `target/`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("revent-libs");
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("."));
    match exe.parent().and_then(Path::parent) {
        Some(target) => target.join("revent-libs"),
        None => PathBuf::from("target/revent-libs"),
    }
}

/// The newest modification time of the files the libraries are built from.
fn sources_mtime() -> Option<SystemTime> {
    fn walk(p: &Path, newest: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                walk(&e.path(), newest);
            }
        } else if let Ok(t) = meta.modified() {
            *newest = (*newest).max(Some(t));
        }
    }
    let root = workspace();
    let mut newest = None;
    for p in [
        "crates/revent/src",
        "crates/revent/Cargo.toml",
        "crates/revent-capi/src",
        "crates/revent-capi/c",
        "crates/revent-capi/Cargo.toml",
        "crates/revent-capi/build-libs.sh",
    ] {
        walk(&root.join(p), &mut newest);
    }
    newest
}

fn build(dir: &Path) -> Result<(), String> {
    let script = workspace().join("crates/revent-capi/build-libs.sh");
    let cmd = format!("{} {}", script.display(), dir.display());
    if !script.exists() {
        return Err(format!(
            "{} has no {CORE} and there is no build script to make it; run: {cmd}",
            dir.display()
        ));
    }
    eprintln!("capi: building revent's libevent libraries: {cmd}");
    let status = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !status.success() || !dir.join(CORE).exists() {
        return Err(format!(
            "building the capi libraries failed ({status}): {cmd}"
        ));
    }
    Ok(())
}

/// The capi library directory, canonical: `opt` (`--capi-libs`) or [`default_dir`], built first when
/// it lacks `libevent_core-2.1.so.7`; the default directory also when revent's sources are newer.
pub fn libs(opt: Option<&str>) -> Result<PathBuf, String> {
    let dir = opt.map_or_else(default_dir, PathBuf::from);
    let lib = dir.join(format!("{CORE}.0.1"));
    let lib = if lib.exists() { lib } else { dir.join(CORE) };
    let built = std::fs::metadata(&lib).and_then(|m| m.modified()).ok();
    let stale = match (built, sources_mtime()) {
        (Some(b), Some(s)) => s > b,
        _ => false,
    };
    if built.is_none() || (stale && opt.is_none()) {
        build(&dir)?;
    } else if stale {
        eprintln!(
            "capi: note: {} is older than revent's sources (rebuild: crates/revent-capi/build-libs.sh {})",
            dir.display(),
            dir.display()
        );
    }
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("capi: revent's libraries from {}", dir.display());
    Ok(dir)
}

/// The environment of a capi child.
pub fn env(dir: &Path) -> Vec<(String, String)> {
    vec![("LD_LIBRARY_PATH".into(), dir.display().to_string())]
}

/// Whether `prog` can run on the libraries in `dir`: `LD_LIBRARY_PATH=DIR ldd -r PROG` must resolve
/// every `libevent*` library into `dir` and report no undefined symbol. The error says what is missing.
pub fn preflight(prog: &Path, dir: &Path) -> Result<(), String> {
    let out = Command::new("ldd")
        .arg("-r")
        .arg(prog)
        .env("LD_LIBRARY_PATH", dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut outside = Vec::new();
    let mut inside = 0;
    let mut undefined = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("undefined symbol: ") {
            undefined.push(rest.split_whitespace().next().unwrap_or(rest).to_string());
        } else if let Some((name, rest)) = line.split_once(" => ") {
            if !name.starts_with("libevent") {
                continue;
            }
            let path = rest.split(" (").next().unwrap_or(rest).trim();
            let canon = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
            if canon.starts_with(dir) {
                inside += 1;
            } else if canon.as_path() == Path::new(path) {
                outside.push(format!("{name} => {path}"));
            } else {
                outside.push(format!("{name} => {path} = {}", canon.display()));
            }
        }
    }
    if !outside.is_empty() {
        return Err(format!(
            "libevent libraries that are not revent's from {}: {} (a library missing there is \
             taken from the system, on top of revent's)",
            dir.display(),
            outside.join(", ")
        ));
    }
    if inside == 0 {
        return Err(format!(
            "{} does not link libevent (ldd -r: {text})",
            prog.display()
        ));
    }
    if !undefined.is_empty() {
        undefined.sort();
        undefined.dedup();
        return Err(format!(
            "revent's C ABI lacks {} function(s) it calls: {}",
            undefined.len(),
            undefined.join(" ")
        ));
    }
    Ok(())
}

/// Which libevent a started contender must have mapped.
#[derive(Clone, Debug)]
pub enum Maps {
    /// revent's, from this directory, and no other.
    From(PathBuf),
    /// Not revent's from this directory (the `libevent` contender in a run with capi ones).
    NotFrom(PathBuf),
}

/// Checks `/proc/PID/maps` of a started contender against `want`: the libevent files it maps.
pub fn check_maps(name: &str, pid: u32, want: &Maps) -> Result<(), String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("{name}: cannot read /proc/{pid}/maps: {e}"))?;
    let mut files: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| {
            Path::new(p)
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("libevent"))
        })
        .collect();
    files.sort_unstable();
    files.dedup();
    let ok = match want {
        Maps::From(dir) => !files.is_empty() && files.iter().all(|f| Path::new(f).starts_with(dir)),
        Maps::NotFrom(dir) => {
            !files.is_empty() && !files.iter().any(|f| Path::new(f).starts_with(dir))
        }
    };
    if ok {
        return Ok(());
    }
    Err(match want {
        Maps::From(dir) => format!(
            "{name} (pid {pid}) does not run on revent's libraries only: it maps [{}], expected \
             libevent from {} and nowhere else",
            files.join(", "),
            dir.display()
        ),
        Maps::NotFrom(dir) => format!(
            "{name} (pid {pid}) should run on the system's libevent but maps [{}] (is \
             LD_LIBRARY_PATH set to {}?)",
            files.join(", "),
            dir.display()
        ),
    })
}
