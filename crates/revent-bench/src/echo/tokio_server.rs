//! `revent-bench echo-server-tokio PORT`: the echo service on tokio's current-thread runtime, the Rust
//! peer in the echo benchmark. One task a connection; each read (up to 64 KiB) is written back with
//! `write_all`. Accepted sockets get TCP_NODELAY like the C reference servers. Prints `port=N` once
//! listening on 127.0.0.1 (PORT 0 = an ephemeral port).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn run(args: &[String]) -> Result<(), String> {
    let port: u16 = match args {
        [p] => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        _ => return Err("usage: revent-bench echo-server-tokio PORT".into()),
    };
    let _ = crate::sys::raise_nofile(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(serve(port))
}

async fn serve(port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("listen on 127.0.0.1:{port}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("port={} method=tokio-current-thread", local.port());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(echo(stream));
            }
            Err(e) => eprintln!("echo-server-tokio: accept: {e}"),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
