//! `revent echo --tls CERT KEY` end to end: the real binary on an ephemeral port with a
//! certificate made here, talked to by a rustls client (exact bytes back), by a client that does not
//! speak TLS (dropped, the service unharmed), and stopped with SIGTERM.

mod common;

use common::*;
use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};
use revent::rustls::pki_types::{CertificateDer, ServerName};
use revent::rustls::{self, ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

/// A CA and a certificate for `localhost` it signed, as PEM files in a directory of this test's
/// own (removed on drop); the client trusts the CA.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new(tag: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("revent-echo-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem() + &ca.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca: ca.der().clone(),
        }
    }

    fn args(&self) -> [String; 3] {
        [
            "--tls".into(),
            self.dir.join("cert.pem").display().to_string(),
            self.dir.join("key.pem").display().to_string(),
        ]
    }

    fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn connect(&self, e: &Echo) -> StreamOwned<ClientConnection, TcpStream> {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(self.client_config(), name).unwrap();
        StreamOwned::new(conn, e.connect())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(pki: &Pki, extra: &[&str]) -> Echo {
    let a = pki.args();
    let mut args: Vec<&str> = a.iter().map(String::as_str).collect();
    args.extend_from_slice(extra);
    Echo::start(&args)
}

/// Writes `msg` and reads exactly as many bytes back.
fn tls_echo(s: &mut StreamOwned<ClientConnection, TcpStream>, msg: &[u8]) {
    s.write_all(msg).unwrap();
    s.flush().unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert!(back == msg, "the echo differs from what was sent");
}

#[test]
fn echoes_exact_bytes_over_tls() {
    let pki = Pki::new("exact");
    let mut e = start(&pki, &[]);
    let mut s = pki.connect(&e);
    tls_echo(&mut s, b"hello over TLS\n");
    // A MiB in blocks of odd sizes, every byte value many times over.
    let block = pattern_block();
    let mut sent = 15;
    for (i, size) in [1usize, 7, 1000, 16_383, 16_384, 16_385, 65_536, 200_000]
        .iter()
        .cycle()
        .take(24)
        .enumerate()
    {
        let off = i * 131 % (block.len() - size);
        tls_echo(&mut s, &block[off..off + size]);
        sent += size;
    }
    // A clean close: close_notify, then the server's own close_notify and EOF.
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    let n = s.read_to_end(&mut rest).unwrap();
    assert_eq!(n, 0, "nothing after the echo");
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        summary_line(&out),
        format!("revent echo: 1 connections, 0 refused, {sent} bytes echoed")
    );
}

/// A client that does not speak TLS is disconnected, and the service goes on serving.
#[test]
fn plain_client_is_dropped_without_harm() {
    let pki = Pki::new("plain");
    let mut e = start(&pki, &[]);
    let mut plain = e.connect();
    plain.write_all(b"hello, plain text\r\n\r\n").unwrap();
    let mut back = Vec::new();
    // EOF (possibly after an alert record): the server closed it; a reset is a close too.
    match plain.read_to_end(&mut back) {
        Ok(_) => assert!(back.is_empty() || back[0] == 0x15, "not an alert: {back:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(!back.windows(5).any(|w| w == b"hello"), "plain text echoed");
    // One that connects and says nothing, and one that sends a broken record.
    let silent = e.connect();
    let mut broken = e.connect();
    broken
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let _ = broken.read_to_end(&mut back);
    let mut s = pki.connect(&e);
    tls_echo(&mut s, b"still serving");
    drop((s, silent));
    let (status, out) = e.terminate();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        summary_line(&out).starts_with("revent echo: 4 connections, 0 refused"),
        "{out}"
    );
}

#[test]
fn missing_certificate_is_an_error_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_revent"))
        .args([
            "echo",
            "--port",
            "0",
            "--tls",
            "/nonexistent/cert.pem",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}
