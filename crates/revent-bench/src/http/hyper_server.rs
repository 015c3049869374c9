//! `revent-bench http-server-hyper PORT DIR`: the plaintext HTTP server on hyper 1 over tokio's
//! current-thread runtime, the Rust peer in the HTTP benchmark. `/1mb.bin` answers with DIR/1mb.bin,
//! read once at start and sent from memory (hyper has no file path of its own); every other path
//! answers `Hello, World!` as text/plain. HTTP/1.1 only, with `pipeline_flush` (one write for the
//! answers to a batch of pipelined requests, as hyper's TechEmpower entry sets it). Accepted sockets
//! get TCP_NODELAY. Prints `port=N` once listening on 127.0.0.1 (PORT 0 = an ephemeral port).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub fn run(args: &[String]) -> Result<(), String> {
    let (port, dir): (u16, &str) = match args {
        [p, d] => (p.parse().map_err(|_| format!("bad port {p:?}"))?, d),
        _ => return Err("usage: revent-bench http-server-hyper PORT DIR".into()),
    };
    let file = std::fs::read(std::path::Path::new(dir).join("1mb.bin"))
        .map_err(|e| format!("cannot read {dir}/1mb.bin: {e}"))?;
    let _ = crate::sys::raise_nofile(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(serve(port, Bytes::from(file)))
}

async fn serve(port: u16, file: Bytes) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("listen on 127.0.0.1:{port}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("port={} method=hyper-tokio-current-thread", local.port());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("http-server-hyper: accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let file = file.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let file = file.clone();
                async move { Ok::<_, Infallible>(answer(&req, file)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(req: &Request<Incoming>, file: Bytes) -> Response<Full<Bytes>> {
    let (body, ctype) = if req.uri().path() == "/1mb.bin" {
        (file, "application/octet-stream")
    } else {
        (Bytes::from_static(b"Hello, World!"), "text/plain")
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}
