//! Small helpers of the server: reason phrases, the `Date` header, error pages.

use std::time::{SystemTime, UNIX_EPOCH};

/// The standard reason phrase of a status code, `"Unknown"` for others.
pub(crate) fn reason(code: u16) -> &'static str {
    crate::message::standard_reason(code).unwrap_or("Unknown")
}

/// Whether a response with this status to this request carries a body (RFC 9110 §6.4.1): not 1xx,
/// 204 or 304.
pub(crate) fn status_has_body(code: u16) -> bool {
    !(code < 200 || code == 204 || code == 304)
}

/// An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[(days.rem_euclid(7)) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1-12) and day of the month of a count of days since 1970-01-01 (the proleptic
/// Gregorian calendar, by eras of 400 years).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The body of an error reply: a small HTML page naming the status.
pub(crate) fn error_page(code: u16, reason: &str) -> String {
    let reason = crate::html::html_escape(reason);
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1></body></html>\n"
    )
}

/// Whether `host` matches a virtual-host `pattern`: ASCII case is ignored, `*` matches any run of
/// characters (none included) and `?` any one character, as libevent's virtual hosts match.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.as_bytes(), host.as_bytes());
    // Iterative wildcard match with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut hi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi].eq_ignore_ascii_case(&h[hi])) {
            pi += 1;
            hi += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, hi));
            pi += 1;
        } else if let Some((sp, sh)) = star {
            pi = sp + 1;
            hi = sh + 1;
            star = Some((sp, sh + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn wildcards() {
        assert!(host_matches("*.example.com", "www.Example.COM"));
        assert!(host_matches("*.example.com", ".example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("ho?t", "host"));
        assert!(!host_matches("ho?t", "hot"));
        assert!(host_matches("*", ""));
        assert!(host_matches("a*b*c", "aXXbYYc"));
        assert!(!host_matches("a*b*c", "aXXbYY"));
    }
}

/// FNV-1a, the hasher of the route table: every request's path is hashed to find its route, and
/// SipHash cost more than the rest of the look-up. Flooding is no concern here: the table holds the
/// routes the application set, never keys a client chose; a client's path only looks one up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
