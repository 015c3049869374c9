//! `/etc/hosts`: names answered without asking a server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Most addresses kept per name, and most names kept in all (a hostile file stays small).
const MAX_ADDRS_PER_NAME: usize = 64;
const MAX_NAMES: usize = 1 << 16;

/// A hosts file: names (case-insensitive) and their addresses, in file order.
///
/// ```
/// use revent_dns::Hosts;
/// let hosts = Hosts::parse("127.0.0.1 localhost\n::1 localhost ip6-localhost # v6\n garbage\n");
/// assert_eq!(hosts.lookup("LOCALHOST").len(), 2);
/// assert_eq!(hosts.lookup("ip6-localhost"), ["::1".parse::<std::net::IpAddr>().unwrap()]);
/// assert!(hosts.lookup("garbage").is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts {
    names: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// No entries.
    pub fn new() -> Hosts {
        Hosts::default()
    }

    /// Parses hosts-file text: `ADDRESS NAME [ALIAS...]` per line, `#` starting a comment. Lines
    /// whose address does not parse are skipped; nothing in the text can make it fail.
    pub fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_ascii_whitespace();
            let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in words {
                hosts.add(name, ip);
            }
        }
        hosts
    }

    /// Reads and parses a hosts file.
    pub fn from_file(path: impl AsRef<Path>) -> std::io::Result<Hosts> {
        let bytes = std::fs::read(path)?;
        Ok(Hosts::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// `/etc/hosts`, or no entries if it cannot be read.
    pub fn system() -> Hosts {
        Hosts::from_file("/etc/hosts").unwrap_or_default()
    }

    /// Adds an address for a name (a final dot is dropped; names that are not ASCII or longer than
    /// 253 bytes are ignored).
    pub fn add(&mut self, name: &str, ip: IpAddr) {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name.len() > 253 || !name.is_ascii() {
            return;
        }
        let key = name.to_ascii_lowercase();
        if !self.names.contains_key(&key) && self.names.len() >= MAX_NAMES {
            return;
        }
        let addrs = self.names.entry(key).or_default();
        if addrs.len() < MAX_ADDRS_PER_NAME && !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }

    /// Adds every entry of `other` (libevent's `evdns_base_load_hosts` adds to what was loaded).
    ///
    /// ```
    /// use revent_dns::Hosts;
    /// let mut h = Hosts::parse("192.0.2.1 a\n");
    /// h.merge(&Hosts::parse("192.0.2.2 a b\n"));
    /// assert_eq!(h.lookup("a").len(), 2);
    /// assert_eq!(h.len(), 2);
    /// ```
    pub fn merge(&mut self, other: &Hosts) {
        for (name, addrs) in &other.names {
            for &ip in addrs {
                self.add(name, ip);
            }
        }
    }

    /// The addresses of `name` (case-insensitive, a final dot ignored), in file order.
    pub fn lookup(&self, name: &str) -> &[IpAddr] {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.names
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// How many names there are.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no names.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text() {
        let mut text = String::from("\0\0\n#\n1.2.3.4\n999.1.1.1 bad\n1.2.3.4 a a A a. ünï\n");
        for i in 0..100 {
            text.push_str(&format!("10.0.0.{} many\n", i % 256));
        }
        text.push_str(&format!("1.1.1.1 {}\n", "x".repeat(300)));
        let h = Hosts::parse(&text);
        assert_eq!(h.lookup("a"), ["1.2.3.4".parse::<IpAddr>().unwrap()]);
        assert_eq!(h.lookup("many").len(), MAX_ADDRS_PER_NAME);
        assert!(h.lookup("bad").is_empty() && h.lookup("ünï").is_empty());
        assert_eq!(h.len(), 2);
    }
}
