//! `revent resolve`: every name looked up at once with revent-dns, one line each, in order.

use crate::args::ResolveArgs;
use revent::EventBase;
use revent_dns::{DnsError, Family, ResolvConf, Resolver};
use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;

/// A name's line: its answer as text, or the error; `None` until it is in.
type Line = Option<Result<String, DnsError>>;

/// Runs the lookups; `Ok(true)` if every one succeeded.
pub fn run(a: &ResolveArgs) -> Result<bool, String> {
    let mut conf = if a.server.is_empty() {
        ResolvConf::system()
    } else {
        // The system's options and search list, the servers given.
        let sys = ResolvConf::from_file("/etc/resolv.conf").unwrap_or_default();
        let mut c = ResolvConf::new()
            .with_ndots(sys.ndots())
            .with_timeout(sys.timeout())
            .with_attempts(sys.attempts());
        for d in sys.search() {
            c = c.with_search_domain(d);
        }
        a.server.iter().fold(c, |c, &s| c.with_nameserver(s))
    };
    if let Some(t) = a.timeout {
        conf = conf.with_timeout(t);
    }
    if let Some(n) = a.attempts {
        conf = conf.with_attempts(n);
    }
    if let Some(n) = a.max_inflight {
        conf = conf.with_max_inflight(n);
    }
    let family = match (a.ipv4, a.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    let mut base = EventBase::new().map_err(|e| e.to_string())?;
    let resolver = Resolver::new(conf);
    let lines: Rc<RefCell<Vec<Line>>> = Rc::new(RefCell::new(vec![None; a.names.len()]));
    for (i, name) in a.names.iter().enumerate() {
        let lines = lines.clone();
        if let Ok(ip) = name.parse::<IpAddr>() {
            resolver.resolve_reverse(&mut base, ip, move |_, r| {
                lines.borrow_mut()[i] = Some(r.map(|a| a.names().join(" ")));
            });
        } else {
            // No hosts file: this asks the servers, always.
            resolver.getaddrinfo(&mut base, name, 0, family, move |_, r| {
                let text = r.map(|v| {
                    v.iter()
                        .map(|s| s.ip().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                });
                lines.borrow_mut()[i] = Some(text);
            });
        }
    }
    base.dispatch().map_err(|e| e.to_string())?;
    let mut all_ok = true;
    for (name, line) in a.names.iter().zip(lines.borrow().iter()) {
        match line {
            Some(Ok(text)) => println!("{name}: {text}"),
            Some(Err(e)) => {
                all_ok = false;
                println!("{name}: error {} ({e})", e.name());
            }
            None => {
                all_ok = false;
                println!("{name}: error (no answer)");
            }
        }
    }
    Ok(all_ok)
}
