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
/// Label on images built from host files ([`crate::HostImage`]), which `e2ekit gc --images`
/// may remove: they are caches, rebuilt on demand.
pub const HOST_IMAGE: &str = "e2ekit.host-image";

/// This process's owner label (`host:pid:start-time`). Label resources you create by hand
/// with it (and [`ENV`]) so sweeps know they are alive.
pub fn owner() -> &'static str {
    static OWNER_ID: OnceLock<String> = OnceLock::new();
    OWNER_ID.get_or_init(|| {
        let pid = std::process::id();
        format!("{}:{pid}:{}", hostname(), start_time(pid).unwrap_or(0))
    })
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
    }
}
