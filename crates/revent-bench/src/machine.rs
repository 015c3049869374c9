//! What a results table needs to say about where it was measured.

use std::process::Command;

/// `nproc`, the CPU model from /proc/cpuinfo, the kernel and the date (UTC).
pub fn describe() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{date}; nproc {nproc}; CPU {model}; Linux {kernel}")
}

/// Ticks (USER_HZ) the whole machine has spent busy (not idle, not waiting for I/O) and in total,
/// over all CPUs, from the first line of /proc/stat.
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is inside user.
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Ticks (USER_HZ) of CPU time, user + system over all threads, that process `pid` has used.
pub fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesized command name: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The number of CPUs /proc/stat counts (`cpuN` lines).
fn cpus() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                .count() as u64
        })
        .unwrap_or(1)
        .max(1)
}

/// CPU time used on the machine between two [`cpu_ticks`] samples, minus `own` ticks, in CPUs
/// (1.0 = one CPU busy all the time).
pub fn load_between(a: (u64, u64), b: (u64, u64), own: u64) -> f64 {
    let total = b.1.saturating_sub(a.1).max(1);
    let busy = b.0.saturating_sub(a.0).saturating_sub(own);
    busy as f64 / total as f64 * cpus() as f64
}

/// Waits until the machine has been quiet (less than `max_load` CPUs busy) over a quarter of a second,
/// for at most `limit`; returns whether it got quiet.
pub fn wait_quiet(max_load: f64, limit: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    loop {
        let Some(a) = cpu_ticks() else {
            return true;
        };
        std::thread::sleep(std::time::Duration::from_millis(250));
        let Some(b) = cpu_ticks() else {
            return true;
        };
        if load_between(a, b, 0) < max_load {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
    }
}

/// Read-like and write-like system calls process `pid` has made (all its threads): `syscr` and
/// `syscw` of /proc/PID/io, counted by the kernel without tracing.
pub fn proc_rw_syscalls(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| -> Option<u64> {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((field("syscr:")?, field("syscw:")?))
}

/// Voluntary context switches (the thread blocked: a sleep in epoll_wait, a futex wait, ...) of the
/// live threads of process `pid`, summed.
pub fn proc_sleeps(pid: u32) -> Option<u64> {
    let mut sum = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        sum += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())?;
    }
    Some(sum)
}

/// CPU time (user + system) of this process's children that have ended and been waited for, in
/// ticks (USER_HZ), as [`proc_ticks`] counts.
pub fn children_ticks() -> u64 {
    // SAFETY: getrusage writes one `rusage` into the live local.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
    // SAFETY: sysconf takes no pointers.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(ru.ru_utime) + us(ru.ru_stime)) * hz / 1_000_000
}

/// Measures what other processes use while something runs: [`OthersLoad::start`] before,
/// [`OthersLoad::end`] after, with the process ids whose CPU time is ours (servers); children that
/// ended and were waited for in between (load generators) count as ours too.
pub struct OthersLoad {
    machine: Option<(u64, u64)>,
    own: u64,
    children: u64,
}

impl OthersLoad {
    pub fn start(pids: &[u32]) -> OthersLoad {
        OthersLoad {
            machine: cpu_ticks(),
            own: pids.iter().filter_map(|&p| proc_ticks(p)).sum(),
            children: children_ticks(),
        }
    }

    /// CPUs' worth of time others used since `start` (NaN when /proc/stat cannot be read).
    pub fn end(&self, pids: &[u32]) -> f64 {
        let own = pids.iter().filter_map(|&p| proc_ticks(p)).sum::<u64>();
        let own = own.saturating_sub(self.own) + children_ticks().saturating_sub(self.children);
        match (self.machine, cpu_ticks()) {
            (Some(a), Some(b)) => load_between(a, b, own),
            _ => f64::NAN,
        }
    }
}
