//! `revent http`: a static file server on revent-http.
//!
//! Serves `--dir` (GET and HEAD; other methods get 501): files with a content type from their
//! extension and single `Range` requests (206, or 416 when unsatisfiable), directories as an
//! `index.html` or an HTML listing, and `/plaintext` answering `Hello, World!` for benchmarks.
//! Paths never leave the directory: a `..` segment (also percent-encoded) is refused with 403, and
//! a path whose real location (symlinks resolved) is outside gets 403 too.
//!
//! Threads as in `revent echo`: with `--threads N`, N event bases each listen on the port with
//! SO_REUSEPORT and the kernel spreads the connections. SIGINT or SIGTERM stops taking
//! connections, closes idle ones, lets requests in progress finish (for up to five seconds) and
//! prints one summary line.

use crate::args::HttpArgs;
use revent::{EventBase, ListenerOptions};
use revent_http::{encode, html, Limits, Method, Request, Server};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stop waits for requests in progress.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    bytes: AtomicU64,
    connections: AtomicU64,
}

pub fn run(args: &HttpArgs) -> Result<(), String> {
    let root = std::fs::canonicalize(&args.dir)
        .map_err(|e| format!("--dir {}: {e}", args.dir.display()))?;
    if !root.is_dir() {
        return Err(format!("--dir {}: not a directory", args.dir.display()));
    }
    let totals = Arc::new(Totals::default());
    let reuse_port = args.threads > 1;
    let mut workers = Vec::new();
    let mut spawn_workers = |addr: SocketAddr| -> Result<Vec<OwnedFd>, String> {
        let mut stoppers = Vec::new();
        for i in 1..args.threads {
            let (rx, tx) = revent::util::socketpair().map_err(|e| e.to_string())?;
            stoppers.push(tx);
            let mut args = args.clone();
            args.addr = addr.ip();
            args.port = addr.port();
            let (totals, root) = (totals.clone(), root.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        serve(&args, &root, &totals, reuse_port, Some(rx), &mut no_workers)
                    })
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(stoppers)
    };
    let mut result = serve(args, &root, &totals, reuse_port, None, &mut spawn_workers);
    for w in workers {
        let r = w
            .join()
            .unwrap_or_else(|_| Err("worker thread panicked".into()));
        if result.is_ok() {
            result = r;
        }
    }
    println!(
        "revent http: {} requests, {} bytes, {} connections",
        totals.requests.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed),
        totals.connections.load(Ordering::Relaxed)
    );
    result
}

type SpawnWorkers<'a> = dyn FnMut(SocketAddr) -> Result<Vec<OwnedFd>, String> + 'a;

fn no_workers(_: SocketAddr) -> Result<Vec<OwnedFd>, String> {
    Ok(Vec::new())
}

/// Runs one base until stopped; the main thread (`stop_rx` None) starts the workers once it
/// listens and relays the signals to them.
fn serve(
    args: &HttpArgs,
    root: &Path,
    totals: &Arc<Totals>,
    reuse_port: bool,
    stop_rx: Option<OwnedFd>,
    spawn_workers: &mut SpawnWorkers<'_>,
) -> Result<(), String> {
    let mut base = crate::service::new_base(args.method)?;
    let server = Server::new();
    server.set_allowed_methods([Method::Get, Method::Head]);
    server.set_default_content_type(None);
    server.set_limits(Limits {
        max_head_bytes: 16 * 1024,
        max_headers: 64,
        max_body: 64 * 1024,
        ..Limits::default()
    });
    let files = Rc::new(root.to_path_buf());
    server.set_gencb(move |base, req| handle(base, req, &files));
    let mut opts = ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_EXEC;
    if reuse_port {
        opts |= ListenerOptions::REUSEABLE_PORT;
    }
    let addr = SocketAddr::new(args.addr, args.port);
    let listener = server
        .bind_with(&mut base, addr, opts)
        .map_err(|e| format!("listen on {addr}: {e}"))?;
    let local = listener.local_addr(&base).map_err(|e| e.to_string())?;
    let stoppers = if stop_rx.is_none() {
        spawn_workers(local)?
    } else {
        Vec::new()
    };

    // The stop: no new connections, idle ones closed, busy ones given DRAIN to finish.
    let stop = {
        let server = server.clone();
        Rc::new(move |base: &mut EventBase| {
            server.stop_listening(base);
            server.close_idle(base);
            let deadline = Instant::now() + DRAIN;
            let server = server.clone();
            let check = base.new_persistent_timer(move |base, fired| {
                server.close_idle(base);
                if server.stats().open == 0 || Instant::now() >= deadline {
                    server.free(base);
                    let _ = base.free(fired.id);
                    let _ = base.loopexit(None);
                }
            });
            let _ = base.add(check, Some(Duration::from_millis(20)));
        })
    };
    let stop_events = crate::service::install_stop(&mut base, stop_rx.as_ref(), stoppers, stop)?;
    if stop_rx.is_none() {
        println!(
            "revent http: listening on {local} ({} thread(s), {}), serving {}",
            args.threads,
            base.method(),
            root.display()
        );
        let _ = std::io::stdout().flush();
    }
    base.dispatch().map_err(|e| e.to_string())?;
    for ev in stop_events {
        let _ = base.free(ev);
    }
    let s = server.stats();
    totals.requests.fetch_add(s.requests, Ordering::Relaxed);
    totals.bytes.fetch_add(s.bytes, Ordering::Relaxed);
    totals
        .connections
        .fetch_add(s.connections, Ordering::Relaxed);
    Ok(())
}

fn handle(base: &mut EventBase, req: &mut Request, root: &Path) {
    if req.uri().path() == Some("/plaintext") {
        let _ = req.output_headers_mut().add("Content-Type", "text/plain");
        let _ = req.send_reply(base, 200, "OK", b"Hello, World!");
        return;
    }
    let path = req.uri().path().unwrap_or("/").to_string();
    let target = match resolve(root, &path) {
        Ok(t) => t,
        Err(code) => {
            let _ = req.send_error(base, code, None);
            return;
        }
    };
    if target.is_dir() {
        if !path.ends_with('/') {
            // Relative links in the listing need the slash.
            let mut location = format!("{path}/");
            if let Some(q) = req.uri().query() {
                location.push('?');
                location.push_str(q);
            }
            let _ = req.output_headers_mut().add("Location", location);
            let _ = req.send_reply(base, 301, "", b"");
            return;
        }
        let index = target.join("index.html");
        if index.is_file() {
            serve_file(base, req, &index);
        } else {
            listing(base, req, &target, &path);
        }
    } else {
        serve_file(base, req, &target);
    }
}

/// The file or directory a URL path names, inside `root`: 400 for a NUL, 403 for a `..` segment
/// or a real path outside `root`, 404 for what does not exist.
fn resolve(root: &Path, url_path: &str) -> Result<PathBuf, u16> {
    let decoded = encode::uridecode(url_path, false);
    if decoded.contains(&0) {
        return Err(400);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| 404u16)?;
    let mut p = root.to_path_buf();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            // Refused rather than resolved: nothing legitimate needs it.
            ".." => return Err(403),
            s => p.push(s),
        }
    }
    let real = std::fs::canonicalize(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => 403u16,
        _ => 404,
    })?;
    if !real.starts_with(root) {
        return Err(403);
    }
    Ok(real)
}

fn serve_file(base: &mut EventBase, req: &mut Request, path: &Path) {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
                403
            } else {
                404
            };
            let _ = req.send_error(base, code, None);
            return;
        }
    };
    let len = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => {
            let _ = req.send_error(base, 403, None);
            return;
        }
    };
    let h = req.output_headers_mut();
    let _ = h.add("Content-Type", content_type(path));
    let _ = h.add("Accept-Ranges", "bytes");
    let range = req.headers().find_str("Range").map(str::to_string);
    match range.as_deref().map(|r| parse_range(r, len)) {
        Some(RangeResult::Unsatisfiable) => {
            let _ = req
                .output_headers_mut()
                .add("Content-Range", format!("bytes */{len}"));
            let _ = req.send_reply(base, 416, "", b"");
        }
        Some(RangeResult::Range(start, end)) => {
            let _ = req
                .output_headers_mut()
                .add("Content-Range", format!("bytes {start}-{end}/{len}"));
            // (A HEAD reply gets the same Content-Length, and no body.)
            let _ = req.send_file(base, 206, "", file.into(), start, end - start + 1);
        }
        Some(RangeResult::Ignore) | None => {
            let _ = req.send_file(base, 200, "", file.into(), 0, len);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RangeResult {
    /// Serve bytes `start..=end`.
    Range(u64, u64),
    /// No byte of the file is in the range: 416.
    Unsatisfiable,
    /// Not one byte range this server honours (malformed, several ranges, another unit): the
    /// whole file, as RFC 9110 §14.2 allows.
    Ignore,
}

/// A `Range` value against a file of `len` bytes (RFC 9110 §14.1.2): `bytes=a-b`, `bytes=a-`,
/// `bytes=-n`.
fn parse_range(value: &str, len: u64) -> RangeResult {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeResult::Ignore;
    };
    if spec.contains(',') {
        return RangeResult::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeResult::Ignore;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeResult::Ignore,
        (true, false) => match num(b) {
            // The last n bytes.
            Some(0) => RangeResult::Unsatisfiable,
            Some(_) if len == 0 => RangeResult::Unsatisfiable,
            Some(n) => RangeResult::Range(len.saturating_sub(n), len - 1),
            None => RangeResult::Ignore,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeResult::Ignore;
            };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeResult::Ignore,
                }
            };
            if start >= len {
                return RangeResult::Unsatisfiable;
            }
            RangeResult::Range(start, end.map_or(len - 1, |e| e.min(len - 1)))
        }
    }
}

fn listing(base: &mut EventBase, req: &mut Request, dir: &Path, url_path: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        let _ = req.send_error(base, 403, None);
        return;
    };
    let mut entries: Vec<(String, bool)> = rd
        .filter_map(Result::ok)
        .map(|e| {
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    entries.sort();
    let title = html::html_escape(url_path);
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        page.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir) in entries {
        let slash = if is_dir { "/" } else { "" };
        page.push_str(&format!(
            "<li><a href=\"{}{slash}\">{}{slash}</a></li>\n",
            encode::encode_uri(&name),
            html::html_escape(&name)
        ));
    }
    page.push_str("</ul></body></html>\n");
    let _ = req
        .output_headers_mut()
        .add("Content-Type", "text/html; charset=utf-8");
    let _ = req.send_reply(base, 200, "OK", page.as_bytes());
}

/// The content type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "text" | "log" | "rs" | "c" | "h" | "toml" | "sh" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "avif" => "image/avif",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeResult::*;
        assert_eq!(parse_range("bytes=0-9", 100), Range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range(90, 99));
        assert_eq!(parse_range("bytes=90-200", 100), Range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range(90, 99));
        assert_eq!(parse_range("bytes=-200", 100), Range(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-4", 100), Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range("items=0-1", 100), Ignore);
        assert_eq!(parse_range("bytes=+1-2", 100), Ignore);
        assert_eq!(parse_range("bytes=-", 100), Ignore);
        assert_eq!(parse_range("bytes=99999999999999999999999-", 100), Ignore);
    }

    #[test]
    fn types() {
        assert_eq!(
            content_type(Path::new("a/B.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x.png")), "image/png");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn paths_stay_inside() {
        let root = std::env::temp_dir();
        let root = std::fs::canonicalize(root).unwrap();
        assert_eq!(resolve(&root, "/../etc/passwd"), Err(403));
        assert_eq!(resolve(&root, "/%2e%2e/etc/passwd"), Err(403));
        assert_eq!(resolve(&root, "/a/%2E%2E/%2e%2E/x"), Err(403));
        assert_eq!(resolve(&root, "/a%00b"), Err(400));
        assert_eq!(resolve(&root, "/"), Ok(root.clone()));
        assert_eq!(resolve(&root, "/surely-not-here-4711"), Err(404));
    }
}
