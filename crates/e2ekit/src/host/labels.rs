//! Labels e2ekit puts on every container and network it creates, and the identity of the
//! process that owns them.
//!
//! ```text
//! docker ps --filter label=e2ekit.env            # everything e2ekit started
//! docker ps --filter label=e2ekit.env=my-test    # one environment
//! ```

use std::sync::OnceLock;

/// Environment name.
pub const ENV: &str = "e2ekit.env";
/// Owner process: `host:pid:start-time`, so a reused pid cannot pass for the owner.
pub const OWNER: &str = "e2ekit.owner";
/// Runnable name (containers only).
pub const RUNNABLE: &str = "e2ekit.runnable";
/// When the resource was created: RFC 3339 in UTC, whole seconds (`2024-05-01T12:00:00Z`).
/// Sweeps use it to tell a stale leftover of another host from a live one (see
/// `e2ekit::sweep`); labels cannot change, so it is the one time a resource can carry.
pub const CREATED: &str = "e2ekit.created";
/// On a heartbeat volume: the owner (`<host:pid:start>`) whose reaper keeps it fresh, so
/// sweeps on other hosts can see the owner is alive (labels cannot be updated; a new volume
/// with a new [`CREATED`] replaces the last one).
pub const ALIVE: &str = "e2ekit.alive";
/// Label on images built from host files ([`crate::HostImage`]), which `e2ekit gc --images`
/// may remove: they are caches, rebuilt on demand.
pub const HOST_IMAGE: &str = "e2ekit.host-image";

/// This process's owner label (`host:pid:start-time`). Label resources you create by hand
/// with it (and [`ENV`], [`CREATED`]) so sweeps know they are alive; like the environment's
/// own, they are removed by this process's reaper once the process is gone.
pub fn owner() -> &'static str {
    static OWNER_ID: OnceLock<String> = OnceLock::new();
    OWNER_ID.get_or_init(|| {
        let pid = std::process::id();
        format!("{}:{pid}:{}", hostname(), start_time(pid).unwrap_or(0))
    })
}

/// The current time as an [`CREATED`] label value.
pub(crate) fn created_now() -> String {
    format_rfc3339(now_secs())
}

/// Seconds since the Unix epoch, now (0 if the clock is before it).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`).
pub(crate) fn format_rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an RFC 3339 time (any offset, optional fraction) into seconds since the Unix
/// epoch; `None` for anything else, or a time before 1970.
pub(crate) fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(b.get(r)?).ok()?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let minutes = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) → days since 1970-01-01, the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The host part of an owner label (`host:pid:start`), if it has that shape.
pub(crate) fn owner_host(label: &str) -> Option<&str> {
    let mut parts = label.rsplitn(3, ':');
    let (_, _, host) = (parts.next()?, parts.next()?, parts.next()?);
    Some(host)
}

/// Whether the owner label names a process of another host, whose liveness this host cannot
/// check through its process table.
pub(crate) fn is_foreign_owner(label: &str) -> bool {
    owner_host(label).is_some_and(|h| h != hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

/// Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it start past the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the owner label names a process other than us that is still alive.
/// Owners on other hosts count as alive: we cannot see their processes.
pub(crate) fn is_other_live_owner(label: &str) -> bool {
    if label == owner() {
        return false;
    }
    let mut parts = label.rsplitn(3, ':');
    let (Some(start), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return true;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_owner_label_is_not_another_live_owner() {
        assert!(!is_other_live_owner(owner()));
        assert_eq!(owner().split(':').count(), 3);
    }

    #[test]
    fn dead_or_garbage_owner_is_not_live() {
        let host = hostname();
        assert!(!is_other_live_owner(&format!("{host}:4000000:1")));
        assert!(!is_other_live_owner("garbage"));
        assert!(is_other_live_owner("some-other-host:1:1"));
        assert!(is_foreign_owner("some-other-host:1:1"));
        assert!(!is_foreign_owner(owner()));
        assert!(!is_foreign_owner("garbage"));
    }

    #[test]
    fn rfc3339_round_trips_and_matches_known_times() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
        for secs in [0, 59, 86_399, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59.123456Z"),
            Some(1_709_251_199)
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T01:59:59+02:00"),
            Some(1_709_251_199)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T18:59:59-05:00"),
            Some(1_709_251_199)
        );
        let now = created_now();
        assert!(parse_rfc3339(&now).is_some(), "{now}");
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "yesterday",
            "2024-02-29",
            "2024-02-29T23:59:59",
            "2024-13-01T00:00:00Z",
            "2024-02-29T24:00:00Z",
            "2024-02-29T23:59:59Zjunk",
            "2024-02-29T23:59:59.Z",
            "+024-02-29T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "2024-02-29T23:59:59+0200",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?} was accepted");
        }
    }
}
