//! `revent-bench tls-load HOST PORT CONNS SIZE SECS CA.pem [--handshakes]`: the closed-loop,
//! byte-verifying TLS echo load generator (rustls on a tokio current-thread runtime).
//!
//! Echo mode: CONNS connections (TCP_NODELAY) complete their handshakes first; then, for SECS
//! seconds, each sends a message of SIZE bytes, reads SIZE bytes back, checks every byte against what
//! it sent and sends again. Prints
//! `conns=C size=S secs=T trips=N trips_per_s=X errors=E mismatches=M suite=NAME`.
//!
//! `--handshakes`: each of CONNS tasks connects, completes a full handshake (no session resumption),
//! echoes one 64-byte message, sends close_notify and closes, again and again for SECS seconds.
//! Prints `conns=C secs=T handshakes=N handshakes_per_s=X errors=E mismatches=M suite=NAME`.
//!
//! The server's certificate must chain to CA.pem and name `localhost`. Exits 1 when any connection
//! saw an error or a wrong byte.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What one run measured.
#[derive(Default)]
struct Totals {
    done: u64,
    errors: u64,
    mismatches: u64,
    suite: Option<String>,
}

impl Totals {
    fn add(&mut self, o: Totals) {
        self.done += o.done;
        self.errors += o.errors;
        self.mismatches += o.mismatches;
        if self.suite.is_none() {
            self.suite = o.suite;
        }
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: revent-bench tls-load HOST PORT CONNS SIZE SECS CA.pem [--handshakes]";
    let (args, handshakes) = match args {
        [a @ .., f] if f == "--handshakes" => (a, true),
        a => (a, false),
    };
    let [host, port, conns, size, secs, ca] = args else {
        return Err(usage.into());
    };
    let ip: IpAddr = host.parse().map_err(|_| format!("bad host {host:?}"))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    let conns: usize = conns.parse().map_err(|_| format!("bad CONNS {conns:?}"))?;
    let size: usize = size.parse().map_err(|_| format!("bad SIZE {size:?}"))?;
    let secs: f64 = secs.parse().map_err(|_| format!("bad SECS {secs:?}"))?;
    if conns == 0 || size == 0 || !(secs.is_finite() && secs > 0.0) {
        return Err("CONNS, SIZE and SECS must be positive".into());
    }
    crate::sys::raise_nofile(conns as u64 * 2 + 64).map_err(|e| e.to_string())?;
    let connector = connector(ca)?;
    let addr = SocketAddr::new(ip, port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (totals, took) = rt.block_on(async move {
        if handshakes {
            handshake_load(addr, connector, conns, secs).await
        } else {
            echo_load(addr, connector, conns, size, secs).await
        }
    })?;
    let suite = totals.suite.as_deref().unwrap_or("none");
    let rate = totals.done as f64 / took;
    if handshakes {
        println!(
            "conns={conns} secs={took:.2} handshakes={} handshakes_per_s={rate:.0} errors={} \
             mismatches={} suite={suite}",
            totals.done, totals.errors, totals.mismatches
        );
    } else {
        println!(
            "conns={conns} size={size} secs={took:.2} trips={} trips_per_s={rate:.0} errors={} \
             mismatches={} suite={suite}",
            totals.done, totals.errors, totals.mismatches
        );
    }
    if totals.errors > 0 || totals.mismatches > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// A client configuration trusting only CA.pem, without session resumption (every handshake is a
/// full one, the costly case a server must be measured on).
fn connector(ca: &str) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        roots
            .add(cert.map_err(|e| format!("{ca}: {e}"))?)
            .map_err(|e| format!("{ca}: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(addr: SocketAddr, connector: &TlsConnector) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from("localhost").expect("a valid name");
    connector.connect(name, tcp).await
}

fn suite_of(s: &Tls) -> Option<String> {
    s.get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
}

/// The message of trip `trip` on connection `conn`: bytes no server makes up by accident.
fn fill(msg: &mut [u8], conn: usize, trip: u64) {
    let seed = (conn as u64).wrapping_mul(0x9e37_79b9) ^ trip.wrapping_mul(0x85eb_ca6b);
    for (i, b) in msg.iter_mut().enumerate() {
        *b = (seed.wrapping_add(i as u64).wrapping_mul(0x2545_f491) >> 24) as u8;
    }
}

impl Totals {
    /// One message of connection `conn` there and back, counted as done, a mismatch or an
    /// error; whether the connection may go on.
    async fn trip(&mut self, s: &mut Tls, conn: usize, msg: &mut [u8], back: &mut [u8]) -> bool {
        fill(msg, conn, self.done);
        let res = async {
            s.write_all(msg).await?;
            s.read_exact(back).await?;
            std::io::Result::Ok(back == msg)
        };
        match res.await {
            Ok(true) => {
                self.done += 1;
                true
            }
            Ok(false) => {
                self.mismatches += 1;
                false
            }
            Err(_) => {
                self.errors += 1;
                false
            }
        }
    }
}

async fn echo_load(
    addr: SocketAddr,
    connector: TlsConnector,
    conns: usize,
    size: usize,
    secs: f64,
) -> Result<(Totals, f64), String> {
    // Every handshake first, so that the trips measure the record layer only.
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        streams.push(
            connect(addr, &connector)
                .await
                .map_err(|e| format!("handshake with {addr}: {e}"))?,
        );
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(c, mut s)| {
            tokio::spawn(async move {
                let mut t = Totals {
                    suite: suite_of(&s),
                    ..Totals::default()
                };
                let (mut msg, mut back) = (vec![0u8; size], vec![0u8; size]);
                while Instant::now() < end {
                    if !t.trip(&mut s, c, &mut msg, &mut back).await {
                        break;
                    }
                }
                t
            })
        })
        .collect();
    let totals = join(tasks).await?;
    Ok((totals, start.elapsed().as_secs_f64()))
}

async fn handshake_load(
    addr: SocketAddr,
    connector: TlsConnector,
    conns: usize,
    secs: f64,
) -> Result<(Totals, f64), String> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let connector = connector.clone();
            tokio::spawn(async move {
                let mut t = Totals::default();
                let (mut msg, mut back) = ([0u8; 64], [0u8; 64]);
                while Instant::now() < end {
                    let mut s = match connect(addr, &connector).await {
                        Ok(s) => s,
                        Err(_) => {
                            t.errors += 1;
                            break;
                        }
                    };
                    if t.suite.is_none() {
                        t.suite = suite_of(&s);
                    }
                    if !t.trip(&mut s, c, &mut msg, &mut back).await {
                        break;
                    }
                    // close_notify, then close: the server sees a clean end.
                    let _ = s.shutdown().await;
                }
                t
            })
        })
        .collect();
    let totals = join(tasks).await?;
    Ok((totals, start.elapsed().as_secs_f64()))
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Totals>>) -> Result<Totals, String> {
    let mut all = Totals::default();
    for t in tasks {
        all.add(t.await.map_err(|e| e.to_string())?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use tokio::net::TcpListener;

    /// A TLS echo server on an ephemeral port that flips the first byte of every read when
    /// `corrupt`; returns its address and the CA file the client needs.
    async fn server(corrupt: bool, dir: &std::path::Path) -> SocketAddr {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if corrupt {
                            buf[0] ^= 1;
                        }
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn echo_trips_are_counted_and_wrong_bytes_caught() {
        for corrupt in [false, true] {
            let dir = std::env::temp_dir().join(format!(
                "revent-bench-tls-test-{}-{corrupt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let (totals, _) = rt().block_on(async {
                let addr = server(corrupt, &dir).await;
                let c = connector(dir.join("ca.pem").to_str().unwrap()).unwrap();
                echo_load(addr, c, 3, 100, 0.3).await.unwrap()
            });
            std::fs::remove_dir_all(&dir).unwrap();
            assert_eq!(totals.errors, 0);
            if corrupt {
                assert_eq!((totals.done, totals.mismatches), (0, 3));
            } else {
                assert!(totals.done > 0 && totals.mismatches == 0);
                assert!(totals.suite.is_some_and(|s| s.starts_with("TLS13")));
            }
        }
    }

    #[test]
    fn handshakes_are_full_and_counted() {
        let dir = std::env::temp_dir().join(format!("revent-bench-tls-hs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (totals, _) = rt().block_on(async {
            let addr = server(false, &dir).await;
            let c = connector(dir.join("ca.pem").to_str().unwrap()).unwrap();
            handshake_load(addr, c, 2, 0.3).await.unwrap()
        });
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(totals.done > 0);
        assert_eq!((totals.errors, totals.mismatches), (0, 0));
    }
}
