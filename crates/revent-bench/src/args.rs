//! A small command-line reader: `--key value` options and `--flag` switches, nothing else.

use std::collections::BTreeMap;

pub struct Args {
    opts: BTreeMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// Reads `args`; `with_value` lists the options that take a value, `switches` the bare flags.
    pub fn parse(args: &[String], with_value: &[&str], switches: &[&str]) -> Result<Args, String> {
        let mut opts = BTreeMap::new();
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if with_value.contains(&a.as_str()) {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                opts.insert(a.clone(), v.clone());
            } else if switches.contains(&a.as_str()) {
                flags.push(a.clone());
            } else {
                return Err(format!("unknown argument {a:?}"));
            }
        }
        Ok(Args { opts, flags })
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.opts.get(name).map(String::as_str)
    }

    /// A number, or `default` when the option is absent.
    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.opts.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name}: not a number: {v:?}")),
        }
    }

    /// A comma-separated list of numbers, or `default`.
    pub fn list<T: std::str::FromStr + Clone>(
        &self,
        name: &str,
        default: &[T],
    ) -> Result<Vec<T>, String> {
        match self.opts.get(name) {
            None => Ok(default.to_vec()),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .map_err(|_| format!("{name}: not a number: {s:?}"))
                })
                .collect(),
        }
    }

    /// A comma-separated list of words, or `default`.
    pub fn words(&self, name: &str, default: &[&str]) -> Vec<String> {
        match self.opts.get(name) {
            None => default.iter().map(|s| s.to_string()).collect(),
            Some(v) => v.split(',').map(|s| s.trim().to_string()).collect(),
        }
    }
}
