//! The C reference programs in `crates/revent-bench/c/`, compiled only when a benchmark asks for one.
//!
//! `cargo build` never touches C: a benchmark calls [`build`] at run time, which runs `cc -O2` into a
//! cache directory under `target/` (`target/cref/`) and reuses the binary while the sources and flags
//! are unchanged. Programs linked against libevent need Debian's `libevent-dev`; when its headers are
//! missing, [`build`] says what to install and the process exits non-zero.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{self, Command, Stdio};

/// Where the C sources live: `REVENT_BENCH_C_DIR`, else this crate's `c/` directory.
pub fn source_dir() -> PathBuf {
    match std::env::var_os("REVENT_BENCH_C_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("c"),
    }
}

/// Where compiled programs are cached: `REVENT_BENCH_CACHE`, else `$CARGO_TARGET_DIR/cref`, else
/// `cref/` next to the profile directory holding this executable (`target/cref`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("REVENT_BENCH_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("cref");
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("."));
    match exe.parent().and_then(Path::parent) {
        Some(target) => target.join("cref"),
        None => PathBuf::from("target/cref"),
    }
}

/// Compiles `c/<name>.c` (with every header in `c/`) linked with `link` (e.g. `&["-levent_core"]`) and
/// returns the path of the executable. Exits the process with a message when the compiler or, for a
/// program linked with `-levent*`, libevent's headers are missing, or when compilation fails.
pub fn build(name: &str, link: &[&str]) -> PathBuf {
    match try_build(name, link) {
        Ok(path) => path,
        Err(msg) => {
            eprintln!("revent-bench: {msg}");
            process::exit(2);
        }
    }
}

/// [`build`] without the exit: the error is a message for the user.
pub fn try_build(name: &str, link: &[&str]) -> Result<PathBuf, String> {
    try_build_src(&source_dir().join(format!("{name}.c")), name, &[], link)
}

/// Compiles the C file `main` (which may live outside `c/`; `c/` is still on the include path) into
/// the cache as `name`, with `cflags` after the usual ones (e.g. `-w` for a program that is not ours
/// and warns) and linked with `link`.
pub fn try_build_src(
    main: &Path,
    name: &str,
    cflags: &[&str],
    link: &[&str],
) -> Result<PathBuf, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let src_dir = source_dir();
    let main_text = fs::read(main).map_err(|e| format!("cannot read {}: {e}", main.display()))?;

    // Cache key: the main source, every header beside it, the compiler and the flags.
    let mut key = Fnv::new();
    key.feed(&main_text);
    let mut headers: Vec<PathBuf> = fs::read_dir(&src_dir)
        .map_err(|e| format!("cannot list {}: {e}", src_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .collect();
    headers.sort();
    for h in &headers {
        key.feed(h.file_name().unwrap_or_default().as_encoded_bytes());
        key.feed(&fs::read(h).map_err(|e| format!("cannot read {}: {e}", h.display()))?);
    }
    let cflags: Vec<&str> = ["-O2", "-Wall", "-Wextra"]
        .into_iter()
        .chain(cflags.iter().copied())
        .collect();
    for s in std::iter::once(cc.as_str())
        .chain(cflags.iter().copied())
        .chain(link.iter().copied())
    {
        key.feed(s.as_bytes());
    }

    let cache = cache_dir();
    let out = cache.join(format!("{name}-{:016x}", key.finish()));
    if out.exists() {
        return Ok(out);
    }
    if link.iter().any(|l| l.starts_with("-levent")) {
        check_header(&cc, "event2/event.h", "libevent-dev")?;
    }
    if link.contains(&"-lssl") {
        check_header(&cc, "openssl/ssl.h", "libssl-dev")?;
    }
    fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let tmp = out.with_extension(format!("tmp{}", process::id()));
    let status = Command::new(&cc)
        .args(&cflags)
        .arg("-I")
        .arg(&src_dir)
        .arg("-o")
        .arg(&tmp)
        .arg(main)
        .args(link)
        .status()
        .map_err(|e| {
            format!("cannot run the C compiler `{cc}` ({e}); install one: apt-get install gcc")
        })?;
    if !status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(format!("compiling {} failed ({status})", main.display()));
    }
    fs::rename(&tmp, &out).map_err(|e| format!("cannot move {} into place: {e}", tmp.display()))?;
    Ok(out)
}

/// Whether `<header>` is visible to the compiler; the error says which Debian package to install.
fn check_header(cc: &str, header: &str, package: &str) -> Result<(), String> {
    let child = Command::new(cc)
        .args(["-E", "-x", "c", "-o", "/dev/null", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = child.map_err(|e| {
        format!("cannot run the C compiler `{cc}` ({e}); install one: apt-get install gcc")
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("#include <{header}>\n").as_bytes());
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "this C reference program needs {header}, which was not found.\n\
             Install it with: apt-get install {package}"
        ))
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions, for the cache key.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
