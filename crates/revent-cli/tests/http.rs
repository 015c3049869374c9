//! End-to-end tests of `revent http`: the real binary on an ephemeral port, raw TCP clients.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::LIMIT;

struct Http {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory to serve, with a file, a subdirectory, a name to escape, and a symlink out.
fn fixture(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("revent-http-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("sub dir")).unwrap();
    std::fs::write(www.join("hello.txt"), b"hello, file\n").unwrap();
    std::fs::write(www.join("page.html"), b"<p>hi</p>").unwrap();
    std::fs::write(
        www.join("sub dir").join("data.bin"),
        (0..=255u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(www.join("<b>&\"x\".txt"), b"escaped").unwrap();
    std::fs::write(dir.join("secret.txt"), b"outside").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), www.join("link-out.txt")).unwrap();
    std::os::unix::fs::symlink(www.join("hello.txt"), www.join("link-in.txt")).unwrap();
    dir
}

impl Http {
    fn start(tag: &str, extra: &[&str]) -> Http {
        let dir = fixture(tag);
        let mut child = Command::new(env!("CARGO_BIN_EXE_revent"))
            .args(["http", "--addr", "127.0.0.1", "--port", "0", "--dir"])
            .arg(dir.join("www"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let rest = line
            .strip_prefix("revent http: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
        Http {
            child,
            addr,
            stdout,
            dir,
        }
    }

    /// One request on a new connection (HTTP/1.0 semantics: the reply ends with the close).
    fn get(&self, request: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let end = common_find(&all, b"\r\n\r\n").expect("no head") + 4;
        let head = String::from_utf8(all[..end].to_vec()).unwrap();
        (head, all[end..].to_vec())
    }

    fn get_path(&self, path: &str) -> (String, Vec<u8>) {
        self.get(&format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        ))
    }

    fn terminate(&mut self) -> String {
        // SAFETY: kill sends a signal to our own child.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < LIMIT,
                "revent http did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "{status:?}");
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        rest
    }
}

fn common_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn status(head: &str) -> u16 {
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[test]
fn plaintext_files_and_content_types() {
    let h = Http::start("files", &[]);
    let (head, body) = h.get_path("/plaintext");
    assert_eq!(status(&head), 200);
    assert_eq!(header(&head, "Content-Type"), Some("text/plain"));
    assert_eq!(body, b"Hello, World!");
    let (head, body) = h.get_path("/hello.txt");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&head, "Content-Length"), Some("12"));
    assert_eq!(body, b"hello, file\n");
    let (head, _) = h.get_path("/page.html");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let (head, body) = h.get_path("/sub%20dir/data.bin");
    assert_eq!(
        header(&head, "Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(body, (0..=255u8).collect::<Vec<u8>>());
    // A symlink inside the directory is followed.
    assert_eq!(h.get_path("/link-in.txt").1, b"hello, file\n");
    // HEAD: the headers of GET, no body.
    let (head, body) = h.get("HEAD /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(
        (status(&head), header(&head, "Content-Length")),
        (200, Some("12"))
    );
    assert!(body.is_empty());
    assert_eq!(status(&h.get_path("/missing").0), 404);
    // Only GET and HEAD.
    let (head, _) = h.get("DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status(&head), 501);
}

#[test]
fn keep_alive_and_pipelining() {
    let h = Http::start("keepalive", &[]);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let one = "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n";
    s.write_all(one.repeat(16).as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while common_find(&got, b"Hello, World!").is_none()
        || got.windows(13).filter(|w| w == b"Hello, World!").count() < 16
    {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count(),
        16
    );
}

#[test]
fn directory_listing_escapes_and_redirects() {
    let h = Http::start("listing", &[]);
    let (head, body) = h.get_path("/");
    assert_eq!(status(&head), 200);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("<a href=\"hello.txt\">hello.txt</a>"),
        "{body}"
    );
    assert!(
        body.contains("<a href=\"sub%20dir/\">sub dir/</a>"),
        "{body}"
    );
    assert!(
        body.contains("&lt;b&gt;&amp;&quot;x&quot;.txt"),
        "the name is HTML-escaped: {body}"
    );
    assert!(!body.contains("<b>"), "{body}");
    let (head, _) = h.get_path("/sub%20dir");
    assert_eq!(status(&head), 301);
    assert_eq!(header(&head, "Location"), Some("/sub%20dir/"));
    let (head, body) = h.get_path("/sub%20dir/");
    assert_eq!(status(&head), 200);
    assert!(String::from_utf8(body).unwrap().contains("data.bin"));
}

#[test]
fn ranges() {
    let h = Http::start("ranges", &[]);
    let req = |r: &str| {
        h.get(&format!(
            "GET /sub%20dir/data.bin HTTP/1.1\r\nHost: t\r\nRange: {r}\r\nConnection: close\r\n\r\n"
        ))
    };
    let (head, body) = req("bytes=10-19");
    assert_eq!(status(&head), 206);
    assert_eq!(header(&head, "Content-Range"), Some("bytes 10-19/256"));
    assert_eq!(body, (10..20u8).collect::<Vec<u8>>());
    let (head, body) = req("bytes=250-");
    assert_eq!(header(&head, "Content-Range"), Some("bytes 250-255/256"));
    assert_eq!(body, (250..=255u8).collect::<Vec<u8>>());
    let (head, body) = req("bytes=-3");
    assert_eq!(header(&head, "Content-Range"), Some("bytes 253-255/256"));
    assert_eq!(body, [253, 254, 255]);
    let (head, body) = req("bytes=256-");
    assert_eq!(status(&head), 416);
    assert_eq!(header(&head, "Content-Range"), Some("bytes */256"));
    assert!(body.is_empty());
    // Several ranges, or nonsense: the whole file.
    let (head, body) = req("bytes=0-1,5-6");
    assert_eq!((status(&head), body.len()), (200, 256));
    let (head, _) = req("bytes=0x10-20");
    assert_eq!(status(&head), 200);
}

#[test]
fn paths_never_escape_the_directory() {
    let h = Http::start("escape", &[]);
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub%20dir/../../secret.txt",
        "/sub%20dir/%2e%2e/%2e%2e/secret.txt",
        "/.%2e/secret.txt",
        "/link-out.txt",
    ] {
        let (head, body) = h.get_path(path);
        let code = status(&head);
        assert!(code == 403 || code == 404 || code == 400, "{path}: {head}");
        assert!(
            common_find(&body, b"outside").is_none(),
            "{path} leaked the file"
        );
    }
    let (head, _) = h.get_path("/a%00b");
    assert_eq!(status(&head), 400);
}

#[test]
fn sigterm_prints_a_summary() {
    let mut h = Http::start("summary", &[]);
    for _ in 0..3 {
        h.get_path("/plaintext");
    }
    // An idle keep-alive connection does not hold the stop up.
    let mut idle = TcpStream::connect(h.addr).unwrap();
    idle.set_read_timeout(Some(LIMIT)).unwrap();
    idle.write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(idle.read(&mut buf).unwrap() > 0);
    let out = h.terminate();
    let line = common::summary_line(&out);
    let nums: Vec<u64> = line
        .strip_prefix("revent http: ")
        .unwrap()
        .split(", ")
        .map(|p| p.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(nums[0], 4, "{line}");
    assert!(nums[1] > 4 * 13, "{line}");
    assert_eq!(nums[2], 4, "{line}");
}

#[test]
fn two_threads_share_the_port() {
    let h = Http::start("threads", &["--threads", "2"]);
    let port = h.addr.port();
    let start = Instant::now();
    while common::listeners_on(port) < 2 {
        assert!(start.elapsed() < LIMIT, "the second thread never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..20 {
        assert_eq!(h.get_path("/plaintext").1, b"Hello, World!");
    }
}

#[test]
fn help_lists_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_revent"))
        .args(["http", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for opt in [
        "--dir",
        "--port",
        "--addr",
        "--threads",
        "8080",
        "/plaintext",
    ] {
        assert!(text.contains(opt), "{opt} missing from {text}");
    }
}
