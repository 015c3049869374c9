//! Servers measured side by side: rounds interleaved over the servers (the order rotated by one
//! place each round, after waiting for a quiet machine), and the Markdown table of the medians with
//! their ratios. Shared by the `http` and `tls` benchmarks.

use std::time::Duration;

/// One load run against one server.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Run {
    /// Operations (requests, trips, handshakes) per second.
    pub rate: f64,
    /// The server's syscalls per operation.
    pub per_op: Option<f64>,
    /// The server's CPU µs per operation.
    pub cpu_us: Option<f64>,
    /// The load saw errors or wrong bytes: not a result.
    pub bad: bool,
}

/// Runs `rounds` rounds of `measure(i)` over the servers `0..n`, each round starting one server
/// later, and returns the runs of each server. `label` (the row) and `names` go into the progress
/// lines on stderr. Before each run, waits up to `quiet` seconds for the machine to be quiet.
pub fn interleave(
    n: usize,
    rounds: usize,
    quiet: f64,
    label: &str,
    names: &[&str],
    mut measure: impl FnMut(usize) -> Result<Run, String>,
) -> Result<Vec<Vec<Run>>, String> {
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); n];
    for round in 1..=rounds {
        for k in 0..n {
            let i = (k + round - 1) % n;
            if quiet > 0.0 && !crate::machine::wait_quiet(0.15, Duration::from_secs_f64(quiet)) {
                eprintln!("note: the machine did not get quiet within {quiet} s");
            }
            let r = measure(i)?;
            eprintln!(
                "{label} round {round} {:<10} {:>9.0}/s {} syscalls/op {} CPU us/op{}",
                names.get(i).copied().unwrap_or("?"),
                r.rate,
                r.per_op.map_or("-".into(), |x| format!("{x:.3}")),
                r.cpu_us.map_or("-".into(), |x| format!("{x:.3}")),
                if r.bad { "  NOT A RESULT: errors" } else { "" }
            );
            runs[i].push(r);
            // Let the last run's connections close before the next server is measured.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(runs)
}

/// The Markdown table: a row per `(label, runs of each server)`, a column per server (median
/// rate in thousands; syscalls per operation; CPU µs per operation), then a ratio column for
/// each server against each base in `bases` present among `names` (a base is not divided by a
/// base listed after it: with bases libevent, hyper, the table has hyper / libevent but not
/// libevent / hyper).
pub fn table(names: &[&str], rows: &[(String, Vec<Vec<Run>>)], bases: &[&str]) -> String {
    let idx = |n: &str| names.iter().position(|s| *s == n);
    let mut ratios = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (bi, base) in bases.iter().enumerate() {
            if let Some(j) = idx(base) {
                let earlier_base = bases[..bi].contains(n);
                if i != j && !earlier_base {
                    ratios.push((format!("{n} / {base}"), i, j));
                }
            }
        }
    }
    let mut md = String::from("| row |");
    for n in names {
        md += &format!(" {n} |");
    }
    for (h, _, _) in &ratios {
        md += &format!(" {h} |");
    }
    md += "\n|---|";
    md += &"---|".repeat(names.len() + ratios.len());
    md.push('\n');
    let med = |rs: &[Run], f: fn(&Run) -> Option<f64>| {
        let v: Vec<f64> = rs.iter().filter(|r| !r.bad).filter_map(f).collect();
        (!v.is_empty()).then(|| crate::stats::median(&v))
    };
    for (label, runs) in rows {
        md += &format!("| {label} |");
        for rs in runs {
            let bad = rs.iter().filter(|r| r.bad).count();
            md += &match med(rs, |r| Some(r.rate)) {
                Some(t) => format!(
                    " {:.1}k; {}; {} µs{} |",
                    t / 1e3,
                    crate::stats::cell(med(rs, |r| r.per_op), 2),
                    crate::stats::cell(med(rs, |r| r.cpu_us), 2),
                    if bad > 0 {
                        format!(" ({bad} of {} runs had errors: not counted)", rs.len())
                    } else {
                        String::new()
                    }
                ),
                None => " no result (errors in every run) |".into(),
            };
        }
        for (_, a, b) in &ratios {
            let r = crate::stats::ratio(
                med(&runs[*a], |r| Some(r.rate)),
                med(&runs[*b], |r| Some(r.rate)),
            );
            md += &format!(" {}x |", crate::stats::cell(r, 2));
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, bad: bool) -> Run {
        Run {
            rate,
            per_op: Some(2.0),
            cpu_us: Some(5.0),
            bad,
        }
    }

    #[test]
    fn medians_ratios_and_bad_runs() {
        let rows = vec![(
            "r".to_string(),
            vec![
                vec![run(100.0, false), run(300.0, false), run(1e9, true)],
                vec![run(400.0, false)],
                vec![run(800.0, false)],
            ],
        )];
        let md = table(
            &["libevent", "hyper", "revent"],
            &rows,
            &["libevent", "hyper"],
        );
        let header = md.lines().next().unwrap();
        // libevent is not divided by hyper (a base listed after it); hyper is by libevent.
        assert_eq!(
            header,
            "| row | libevent | hyper | revent | hyper / libevent | revent / libevent | revent / hyper |"
        );
        let row = md.lines().nth(2).unwrap();
        assert!(
            row.starts_with("| r | 0.2k; 2.00; 5.00 µs (1 of 3 runs had errors: not counted) |")
        );
        assert!(row.ends_with(" 2.00x | 4.00x | 2.00x |"), "{row}");
    }

    #[test]
    fn rounds_rotate_the_order() {
        let mut order = Vec::new();
        let runs = interleave(3, 2, 0.0, "t", &["a", "b", "c"], |i| {
            order.push(i);
            Ok(run(i as f64, false))
        })
        .unwrap();
        assert_eq!(order, [0, 1, 2, 1, 2, 0]);
        assert_eq!(runs[2], [run(2.0, false), run(2.0, false)]);
    }
}
