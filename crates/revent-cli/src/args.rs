//! Command-line options shared by the services.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Args {
    pub addr: SocketAddr,
    pub idle_timeout: Option<Duration>,
    pub max_conns: usize,
    pub read_high: usize,
    pub threads: usize,
    pub verbose: bool,
}

impl Args {
    pub fn parse(argv: &[String], default_port: u16) -> Result<Args, String> {
        let mut ip: IpAddr = [0, 0, 0, 0].into();
        let mut port = default_port;
        let mut a = Args {
            addr: SocketAddr::new(ip, port),
            idle_timeout: None,
            max_conns: usize::MAX,
            read_high: 1 << 20,
            threads: 1,
            verbose: false,
        };
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--addr" => {
                    let v = value("--addr")?;
                    ip = v.parse().map_err(|_| format!("bad address {v:?}"))?;
                }
                "--port" => port = num(&value("--port")?)?,
                "--idle-timeout" => {
                    let secs: f64 = value("--idle-timeout")?
                        .parse()
                        .map_err(|_| "bad --idle-timeout".to_string())?;
                    if !(secs.is_finite() && secs > 0.0) {
                        return Err("--idle-timeout must be positive".into());
                    }
                    a.idle_timeout = Some(Duration::from_secs_f64(secs));
                }
                "--max-conns" => a.max_conns = num(&value("--max-conns")?)?,
                "--read-high" => a.read_high = num(&value("--read-high")?)?,
                "--threads" => {
                    a.threads = num(&value("--threads")?)?;
                    if a.threads == 0 {
                        return Err("--threads must be at least 1".into());
                    }
                }
                "-v" | "--verbose" => a.verbose = true,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        a.addr = SocketAddr::new(ip, port);
        Ok(a)
    }
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}
