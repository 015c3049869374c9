//! The resolver's configuration: parsed from `resolv.conf` text or built in code.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// Most nameservers kept (the failover bookkeeping is a 64-bit mask; glibc keeps 3).
pub const MAX_NAMESERVERS: usize = 32;
/// Most search domains kept.
pub const MAX_SEARCH: usize = 32;
/// Largest `ndots` accepted (glibc's limit); larger values are clamped.
pub const MAX_NDOTS: u32 = 15;
/// Largest `attempts` accepted; larger values are clamped.
pub const MAX_ATTEMPTS: u32 = 255;
/// Longest per-attempt timeout accepted; longer values are clamped.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// How the resolver behaves: nameservers, search domains and the `options` of `resolv.conf`.
///
/// Built from `resolv.conf` text with [`parse`](Self::parse) (unknown or malformed lines are
/// skipped, never an error) or in code, starting from [`new`](Self::new) (libevent's defaults,
/// no nameserver):
///
/// ```
/// use revent_dns::ResolvConf;
/// use std::time::Duration;
///
/// let conf = ResolvConf::parse(
///     "# a comment\n\
///      nameserver 192.0.2.1\n\
///      nameserver 2001:db8::53\n\
///      search example.com corp.example\n\
///      options ndots:2 timeout:3 attempts:4 rotate\n\
///      this line is garbage and is skipped\n",
/// );
/// assert_eq!(conf.nameservers().len(), 2);
/// assert_eq!(conf.nameservers()[0].port(), 53);
/// assert_eq!(conf.search(), ["example.com", "corp.example"]);
/// assert_eq!((conf.ndots(), conf.attempts(), conf.rotate()), (2, 4, true));
/// assert_eq!(conf.timeout(), Duration::from_secs(3));
///
/// let conf = ResolvConf::new()
///     .with_nameserver("127.0.0.1:5353".parse().unwrap())
///     .with_timeout(Duration::from_millis(500))
///     .with_attempts(2);
/// assert_eq!(conf.nameservers()[0].port(), 5353);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    nameservers: Vec<SocketAddr>,
    search: Vec<String>,
    ndots: u32,
    timeout: Duration,
    attempts: u32,
    rotate: bool,
    max_inflight: usize,
    max_timeouts: u32,
    tcp: bool,
    probe: Duration,
    randomize_case: bool,
    allow_skew: Duration,
    bind_to: Option<IpAddr>,
    so_rcvbuf: Option<usize>,
    so_sndbuf: Option<usize>,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf::new()
    }
}

impl ResolvConf {
    /// libevent's defaults: no nameserver, no search domain, `ndots:1`, `timeout:5`, `attempts:3`,
    /// no rotation, 64 requests in flight, a server marked down after 3 timeouts in a row and
    /// probed 10 s later, and truncated replies retried over TCP.
    pub fn new() -> ResolvConf {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 3,
            rotate: false,
            max_inflight: 64,
            max_timeouts: 3,
            tcp: true,
            probe: Duration::from_secs(10),
            randomize_case: true,
            allow_skew: Duration::from_secs(3),
            bind_to: None,
            so_rcvbuf: None,
            so_sndbuf: None,
        }
    }

    /// Parses `resolv.conf` text. Lines it does not understand (unknown keywords, addresses that do
    /// not parse, options with bad values) are skipped; nothing in the text can make it fail.
    /// As in glibc, the last `search` or `domain` line wins, and `#` or `;` starts a comment.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::new();
        for line in text.lines() {
            let line = match line.find(['#', ';']) {
                Some(i) => &line[..i],
                None => line,
            };
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let (Some(w), None) = (words.next(), words.next()) {
                        if let Ok(ip) = w.parse::<IpAddr>() {
                            conf = conf.with_nameserver(SocketAddr::new(ip, 53));
                        }
                    }
                }
                Some("domain") => {
                    if let (Some(d), None) = (words.next(), words.next()) {
                        conf.search.clear();
                        conf = conf.with_search_domain(d);
                    }
                }
                Some("search") => {
                    conf.search.clear();
                    for d in words {
                        conf = conf.with_search_domain(d);
                    }
                }
                Some("options") => {
                    for opt in words {
                        conf.apply_option(opt);
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// Reads and parses a `resolv.conf` file.
    pub fn from_file(path: impl AsRef<Path>) -> std::io::Result<ResolvConf> {
        let bytes = std::fs::read(path)?;
        Ok(ResolvConf::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The system's configuration, `/etc/resolv.conf`; when it is missing or names no nameserver,
    /// `127.0.0.1:53` (libevent's fallback).
    pub fn system() -> ResolvConf {
        let conf = ResolvConf::from_file("/etc/resolv.conf").unwrap_or_default();
        if conf.nameservers.is_empty() {
            conf.with_nameserver(SocketAddr::from(([127, 0, 0, 1], 53)))
        } else {
            conf
        }
    }

    /// One `options` word: `ndots:N`, `timeout:N`, `attempts:N`, `rotate`, and libevent's
    /// `max-timeouts:N`, `max-inflight:N` and `initial-probe-timeout:N`. Anything else is ignored.
    fn apply_option(&mut self, opt: &str) {
        let _ = self.set_option(opt);
    }

    /// Applies one option word as `resolv.conf`'s `options` line or libevent's
    /// `evdns_base_set_option` give it: `ndots:N`, `timeout:SECONDS` (fractions allowed),
    /// `attempts:N`, `rotate`, `max-timeouts:N`, `max-inflight:N`, `initial-probe-timeout:SECONDS`,
    /// `randomize-case:0|1`, `getaddrinfo-allow-skew:SECONDS`, `so-rcvbuf:BYTES`, `so-sndbuf:BYTES`,
    /// `bind-to:ADDRESS` (an IP address, or one with a port, whose port is not used: every query
    /// has a socket and a random port of its own). Returns whether the word was one of these with a valid value (the
    /// configuration is unchanged otherwise); values out of range are clamped as the setters do.
    ///
    /// ```
    /// use revent_dns::ResolvConf;
    /// let mut conf = ResolvConf::new();
    /// assert!(conf.set_option("timeout:0.5") && conf.set_option("randomize-case:0"));
    /// assert_eq!(conf.timeout(), std::time::Duration::from_millis(500));
    /// assert!(!conf.randomize_case());
    /// assert!(!conf.set_option("ndots:many") && !conf.set_option("no-such-option:1"));
    /// ```
    pub fn set_option(&mut self, opt: &str) -> bool {
        if opt == "rotate" {
            self.rotate = true;
            return true;
        }
        let Some((key, value)) = opt.split_once(':') else {
            return false;
        };
        let value = value.trim();
        if key == "bind-to" {
            let ip = value
                .parse::<IpAddr>()
                .ok()
                .or_else(|| value.parse::<SocketAddr>().ok().map(|a| a.ip()));
            return match ip {
                Some(ip) => {
                    self.bind_to = Some(ip);
                    true
                }
                None => false,
            };
        }
        if key == "getaddrinfo-allow-skew" {
            let Ok(secs) = value.parse::<f64>() else {
                return false;
            };
            if !secs.is_finite() || secs < 0.0 {
                return false;
            }
            self.allow_skew = Duration::from_secs_f64(secs.min(MAX_TIMEOUT.as_secs_f64()));
            return true;
        }
        if key == "timeout" || key == "initial-probe-timeout" {
            let Ok(secs) = value.parse::<f64>() else {
                return false;
            };
            if !secs.is_finite() || secs < 0.0 {
                return false;
            }
            let d = Duration::from_secs_f64(secs.min(MAX_TIMEOUT.as_secs_f64()));
            *self = if key == "timeout" {
                std::mem::take(self).with_timeout(d)
            } else {
                std::mem::take(self).with_initial_probe_timeout(d)
            };
            return true;
        }
        let Ok(n) = value.parse::<u64>() else {
            return false;
        };
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        match key {
            "ndots" => self.ndots = n32.min(MAX_NDOTS),
            "attempts" => self.attempts = n32.clamp(1, MAX_ATTEMPTS),
            "max-timeouts" => self.max_timeouts = n32.clamp(1, 255),
            "max-inflight" => self.max_inflight = (n as usize).clamp(1, 65535),
            "randomize-case" => self.randomize_case = n != 0,
            "so-rcvbuf" => self.so_rcvbuf = Some((n as usize).min(1 << 30)),
            "so-sndbuf" => self.so_sndbuf = Some((n as usize).min(1 << 30)),
            _ => return false,
        }
        true
    }

    /// Sets whether queries carry the name in a random 0x20 case (the default; libevent's
    /// `randomize-case`). With it off the name goes as asked (replies must echo it in that case).
    pub fn with_randomize_case(mut self, on: bool) -> ResolvConf {
        self.randomize_case = on;
        self
    }

    /// Whether queries carry the name in a random 0x20 case.
    pub fn randomize_case(&self) -> bool {
        self.randomize_case
    }

    /// How long a [`getaddrinfo`](crate::Resolver::getaddrinfo) lookup waits for the second family
    /// once the first has answered (libevent's `getaddrinfo-allow-skew`, 3 s by default).
    pub fn allow_skew(&self) -> Duration {
        self.allow_skew
    }

    /// The local address the queries' UDP sockets bind to (of the nameserver's family; any
    /// address by default).
    pub fn bind_to(&self) -> Option<IpAddr> {
        self.bind_to
    }

    /// The `SO_RCVBUF` and `SO_SNDBUF` sizes set on the queries' UDP sockets (the system's
    /// defaults when `None`).
    pub fn socket_buffers(&self) -> (Option<usize>, Option<usize>) {
        (self.so_rcvbuf, self.so_sndbuf)
    }

    /// Removes every nameserver.
    pub fn without_nameservers(mut self) -> ResolvConf {
        self.nameservers.clear();
        self
    }

    /// Removes every search domain (libevent's `evdns_base_search_clear`).
    pub fn without_search(mut self) -> ResolvConf {
        self.search.clear();
        self
    }

    /// Adds a nameserver (any port; repeated addresses and those past [`MAX_NAMESERVERS`] are
    /// ignored).
    pub fn with_nameserver(mut self, addr: SocketAddr) -> ResolvConf {
        if self.nameservers.len() < MAX_NAMESERVERS && !self.nameservers.contains(&addr) {
            self.nameservers.push(addr);
        }
        self
    }

    /// Adds a search domain (a leading or trailing dot is dropped; empty, over-long or repeated
    /// domains and those past [`MAX_SEARCH`] are ignored).
    pub fn with_search_domain(mut self, domain: &str) -> ResolvConf {
        let d = domain.trim_start_matches('.').trim_end_matches('.');
        if !d.is_empty()
            && d.len() <= 253
            && d.is_ascii()
            && self.search.len() < MAX_SEARCH
            && !self.search.iter().any(|s| s.eq_ignore_ascii_case(d))
        {
            self.search.push(d.to_string());
        }
        self
    }

    /// Names with at least this many dots are tried as they are before the search domains.
    pub fn ndots(&self) -> u32 {
        self.ndots
    }

    /// Sets [`ndots`](Self::ndots) (clamped to [`MAX_NDOTS`]).
    pub fn with_ndots(mut self, n: u32) -> ResolvConf {
        self.ndots = n.min(MAX_NDOTS);
        self
    }

    /// Sets the time one attempt waits for a reply (clamped to 10 ms ..= [`MAX_TIMEOUT`]).
    pub fn with_timeout(mut self, d: Duration) -> ResolvConf {
        self.timeout = d.clamp(Duration::from_millis(10), MAX_TIMEOUT);
        self
    }

    /// Sets how many times a request is sent before it fails with a timeout (1 ..= [`MAX_ATTEMPTS`]).
    pub fn with_attempts(mut self, n: u32) -> ResolvConf {
        self.attempts = n.clamp(1, MAX_ATTEMPTS);
        self
    }

    /// Sets whether requests start at the nameservers in turn (`options rotate`) rather than
    /// always at the first.
    pub fn with_rotate(mut self, on: bool) -> ResolvConf {
        self.rotate = on;
        self
    }

    /// Sets how many requests may wait for a reply at once; more are queued (at least 1).
    pub fn with_max_inflight(mut self, n: usize) -> ResolvConf {
        self.max_inflight = n.max(1);
        self
    }

    /// Sets how many timeouts in a row mark a nameserver down (at least 1).
    pub fn with_max_timeouts(mut self, n: u32) -> ResolvConf {
        self.max_timeouts = n.max(1);
        self
    }

    /// Sets whether a truncated reply is retried over TCP (the default) or fails with
    /// [`DnsError::Truncated`](crate::DnsError::Truncated), as in libevent 2.1.
    pub fn with_tcp(mut self, on: bool) -> ResolvConf {
        self.tcp = on;
        self
    }

    /// Sets how long after being marked down a nameserver is first probed (clamped to
    /// 10 ms ..= [`MAX_TIMEOUT`]); each probe that goes unanswered triples the wait, up to an hour.
    pub fn with_initial_probe_timeout(mut self, d: Duration) -> ResolvConf {
        self.probe = d.clamp(Duration::from_millis(10), MAX_TIMEOUT);
        self
    }

    /// How long after being marked down a nameserver is first probed.
    pub fn initial_probe_timeout(&self) -> Duration {
        self.probe
    }

    /// The nameservers, in order.
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.nameservers
    }

    /// The search domains, in order.
    pub fn search(&self) -> &[String] {
        &self.search
    }

    /// The time one attempt waits for a reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many times a request is sent before it fails with a timeout.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether requests start at the nameservers in turn.
    pub fn rotate(&self) -> bool {
        self.rotate
    }

    /// How many requests may wait for a reply at once.
    pub fn max_inflight(&self) -> usize {
        self.max_inflight
    }

    /// How many timeouts in a row mark a nameserver down.
    pub fn max_timeouts(&self) -> u32 {
        self.max_timeouts
    }

    /// Whether truncated replies are retried over TCP.
    pub fn tcp(&self) -> bool {
        self.tcp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_keyword() {
        let c = ResolvConf::parse(
            "nameserver 10.0.0.1\nnameserver ::1\ndomain old.example\nsearch a.example. .b.example\n\
             options ndots:3 timeout:2 attempts:5 rotate max-timeouts:7 max-inflight:9\n\
             options initial-probe-timeout:30\n",
        );
        assert_eq!(
            c.nameservers(),
            ["10.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        assert_eq!(
            c.search(),
            ["a.example", "b.example"],
            "the last search line wins"
        );
        assert_eq!(
            (c.ndots(), c.attempts(), c.max_timeouts(), c.max_inflight()),
            (3, 5, 7, 9)
        );
        assert_eq!(c.timeout(), Duration::from_secs(2));
        assert_eq!(c.initial_probe_timeout(), Duration::from_secs(30));
        assert!(c.rotate());
    }

    #[test]
    fn domain_after_search_replaces_it() {
        let c = ResolvConf::parse("search a.example b.example\ndomain c.example\n");
        assert_eq!(c.search(), ["c.example"]);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let c = ResolvConf::parse(
            "nameserver\nnameserver 300.1.1.1\nnameserver 1.2.3.4 extra\nnameserver fe80::1%eth0\n\
             nameserver 1.2.3.4:53\n\0\0\0\nnameserver\t192.0.2.7 # comment\n;nameserver 192.0.2.8\n\
             options ndots:-1 ndots:x timeout: attempts:0 ndots:99999999999999999999999 foo:1 :\n\
             options timeout:18446744073709551615 attempts:4294967296\n\
             search\nsearch \u{fffd}\u{202e}.example\ndomain a b\n\u{1F600} nameserver 192.0.2.9\n",
        );
        assert_eq!(c.nameservers(), ["192.0.2.7:53".parse().unwrap()]);
        assert!(c.search().is_empty(), "non-ASCII domains are refused");
        assert_eq!(c.ndots(), 1, "unparseable values leave the default");
        assert_eq!(
            c.attempts(),
            MAX_ATTEMPTS,
            "0 is raised to 1, then the huge value clamped"
        );
        assert_eq!(c.timeout(), MAX_TIMEOUT);
    }

    #[test]
    fn limits_hold_against_huge_files() {
        let mut text = String::new();
        for i in 0..10_000u32 {
            text.push_str(&format!(
                "nameserver 10.{}.{}.{}\n",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            ));
        }
        text.push_str("search");
        for i in 0..10_000 {
            text.push_str(&format!(" d{i}.example"));
        }
        text.push('\n');
        text.push_str(&"x".repeat(1 << 20));
        text.push_str("\nsearch ");
        text.push_str(&"y".repeat(300));
        let c = ResolvConf::parse(&text);
        assert_eq!(c.nameservers().len(), MAX_NAMESERVERS);
        assert!(c.search().is_empty(), "a 300-byte domain is not a domain");
        let c = ResolvConf::parse(&text[..text.len() - 310]);
        assert_eq!(c.search().len(), MAX_SEARCH);
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift stream of bytes biased towards the keywords' characters.
        let alphabet = b"nameserver search domain options ndots:timeout:attempts:rotate 0123456789.:#;\n\t\r\0\xff";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            let mut bytes = Vec::new();
            for _ in 0..(x % 300) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let c = ResolvConf::parse(&String::from_utf8_lossy(&bytes));
            assert!(c.nameservers().len() <= MAX_NAMESERVERS);
            assert!(c.ndots() <= MAX_NDOTS && (1..=MAX_ATTEMPTS).contains(&c.attempts()));
        }
    }

    #[test]
    fn builder_clamps_and_dedups() {
        let a: SocketAddr = "[2001:db8::1]:5353".parse().unwrap();
        let c = ResolvConf::new()
            .with_nameserver(a)
            .with_nameserver(a)
            .with_search_domain("Example.com")
            .with_search_domain("example.COM.")
            .with_search_domain("")
            .with_ndots(100)
            .with_attempts(0)
            .with_timeout(Duration::ZERO)
            .with_max_inflight(0)
            .with_tcp(false);
        assert_eq!(c.nameservers(), [a]);
        assert_eq!(c.search(), ["Example.com"]);
        assert_eq!(
            (c.ndots(), c.attempts(), c.max_inflight()),
            (MAX_NDOTS, 1, 1)
        );
        assert_eq!(c.timeout(), Duration::from_millis(10));
        assert!(!c.tcp());
    }

    #[test]
    fn missing_file_is_an_error_and_system_has_a_server() {
        assert!(ResolvConf::from_file("/nonexistent/resolv.conf").is_err());
        assert!(!ResolvConf::system().nameservers().is_empty());
    }
}
