//! Environment and runnable names: derivation from the running test, and validation.
//!
//! A derived name is stable across runs of the same test (so leftovers of a killed run are
//! found and removed) and distinct between tests, including same-named tests in different
//! test binaries.

use crate::error::{Error, Result};

/// Longest environment name; leaves room for `-<runnable>` within a 63-character DNS label.
pub(crate) const MAX_ENV_NAME: usize = 40;

fn valid_chars(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Validates an explicit environment name.
pub(crate) fn validate_env_name(name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidName {
        what: "environment",
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_ENV_NAME {
        return Err(invalid(format!(
            "must be 1 to {MAX_ENV_NAME} characters long"
        )));
    }
    if !valid_chars(name) {
        return Err(invalid(
            "use letters, digits, '-', '_' or '.', starting with a letter or digit".to_string(),
        ));
    }
    Ok(())
}

/// Checks a name against the names the engine keeps for itself (its built-in networks).
/// A derived name that collides gets a hash suffix instead of an error.
pub(crate) fn avoid_reserved(name: String, explicit: bool, reserved: &[&str]) -> Result<String> {
    if !reserved.contains(&name.as_str()) {
        return Ok(name);
    }
    if explicit {
        return Err(Error::InvalidName {
            what: "environment",
            reason: format!("{name:?} is reserved by the container engine (one of {reserved:?})"),
            name,
        });
    }
    let hash = format!("{:08x}", stable_hash(&name) as u32);
    Ok(format!("{name}-{hash}"))
}

/// Validates a runnable name within an environment.
pub(crate) fn validate_runnable_name(env: &str, name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidName {
        what: "runnable",
        name: name.to_string(),
        reason,
    };
    // The container name `<env>-<name>` doubles as a DNS name on the network.
    let max = 63 - env.len() - 1;
    if name.is_empty() || name.len() > max {
        return Err(invalid(format!(
            "must be 1 to {max} characters long in environment {env:?}"
        )));
    }
    if !valid_chars(name) {
        return Err(invalid(
            "use letters, digits, '-', '_' or '.', starting with a letter or digit".to_string(),
        ));
    }
    Ok(())
}

/// FNV-1a: a hash that is stable across Rust versions, unlike `DefaultHasher`.
pub(crate) fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lowercase, with every run of other characters than ASCII letters and digits turned into
/// one `-` (none at the ends).
pub(crate) fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Strips cargo's `-<16 hex digits>` suffix from a test binary's file stem.
fn binary_name(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {
            base
        }
        _ => stem,
    }
}

/// Characters of the binary's name kept when a derived name must be cut.
const BINARY_KEEP: usize = 8;

/// Builds a valid environment name from a binary stem and a test (thread) name.
pub(crate) fn derive(binary_stem: &str, test: Option<&str>) -> String {
    let binary = binary_name(binary_stem);
    let test = test.filter(|t| *t != "main" && !t.is_empty());
    let raw = match test {
        Some(t) => format!("{binary}-{t}"),
        None => binary.to_string(),
    };
    let mut name = sanitize(&raw);
    if name.is_empty() {
        name = "e2ekit".to_string();
    }
    if name.len() > MAX_ENV_NAME {
        // Keep the head so `docker ps` says where the environment comes from: the binary
        // (at most BINARY_KEEP characters), the module path, the start of the test's name;
        // a hash of it all keeps names apart.
        let hash = format!("{:08x}", stable_hash(&raw) as u32);
        let keep = MAX_ENV_NAME - hash.len() - 1;
        let binary = sanitize(binary);
        let short_binary = binary[..binary.len().min(BINARY_KEEP)].trim_end_matches('-');
        let rest = test.map(sanitize).unwrap_or_default();
        let readable = if rest.is_empty() {
            short_binary.to_string()
        } else {
            format!("{short_binary}-{rest}")
        };
        let head = readable[..readable.len().min(keep)].trim_end_matches('-');
        name = format!("{head}-{hash}");
    }
    name
}

/// The `n`th name for environments derived from `base` in one process (`n` from 1): `base`
/// itself, then `base-2`, `base-3`, ... cut to fit [`MAX_ENV_NAME`]. Stable across runs, so
/// the leftovers of a killed run are found by the same test's next run.
pub(crate) fn nth(base: &str, n: usize) -> String {
    if n <= 1 {
        return base.to_string();
    }
    let suffix = format!("-{n}");
    let keep = base.len().min(MAX_ENV_NAME - suffix.len());
    format!("{}{suffix}", base[..keep].trim_end_matches('-'))
}

/// Whether a thread name is a runtime's worker rather than a test: libtest names each test's
/// thread after the test's path, while `tokio::spawn` on a multi-thread runtime runs on
/// `tokio-runtime-worker` threads (and other runtimes name theirs alike).
fn is_worker_thread(name: &str) -> bool {
    name.contains("worker") || name.starts_with("tokio-") || name.starts_with("e2ekit-")
}

/// The test this process runs alone, from libtest's arguments (`--exact <name>`, as nextest
/// runs every test in its own process).
fn test_from_args(args: &[String]) -> Option<&str> {
    let exact = args.iter().any(|a| a == "--exact");
    let names: Vec<&str> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    (exact && names.len() == 1).then(|| names[0])
}

/// The name of the calling test: libtest names each test's thread after the test path. On a
/// runtime's worker thread (inside `tokio::spawn` on a multi-thread runtime), the test named
/// on the command line (nextest runs one test per process) or else the binary alone; the
/// environment then gets an ordinal if that name is already open in this process.
pub(crate) fn derive_from_current_test() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_ref()
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("e2ekit");
    let thread = std::thread::current();
    match thread.name() {
        Some(name) if is_worker_thread(name) => {
            let args: Vec<String> = std::env::args().collect();
            derive(stem, test_from_args(&args))
        }
        name => derive(stem, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_are_stable_sanitised_and_short() {
        let a = derive(
            "integration-0123456789abcdef",
            Some("env::starts_and_stops"),
        );
        assert_eq!(a, "integration-env-starts-and-stops");
        assert_eq!(
            a,
            derive(
                "integration-0123456789abcdef",
                Some("env::starts_and_stops")
            )
        );
        let long = derive(
            "some_really_long_test_binary-0123456789abcdef",
            Some("module::submodule::a_test_with_a_very_long_descriptive_name"),
        );
        assert!(long.len() <= MAX_ENV_NAME, "{long}");
        validate_env_name(&long).unwrap();
        assert!(
            long.starts_with("some-rea-module-submodule-a-tes"),
            "the binary and module path stay readable: {long}"
        );
        assert_ne!(
            long,
            derive(
                "some_really_long_test_binary-0123456789abcdef",
                Some("module::submodule::a_test_with_a_very_long_descriptive_other")
            ),
            "the hash tells apart names with the same head"
        );
    }

    #[test]
    fn ordinals_keep_names_valid_stable_and_distinct() {
        assert_eq!(nth("engine-t", 1), "engine-t");
        assert_eq!(nth("engine-t", 2), "engine-t-2");
        let full = "x".repeat(MAX_ENV_NAME);
        let second = nth(&full, 2);
        assert_eq!(second.len(), MAX_ENV_NAME);
        assert!(second.ends_with("-2"));
        validate_env_name(&second).unwrap();
        assert_ne!(nth(&full, 2), nth(&full, 3));
    }

    #[test]
    fn worker_threads_take_the_test_from_the_command_line_or_the_binary() {
        assert!(is_worker_thread("tokio-runtime-worker"));
        assert!(is_worker_thread("tokio-rt-worker"));
        assert!(!is_worker_thread("faults::a_test"));
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            test_from_args(&args(&["bin", "--exact", "mod::t", "--nocapture"])),
            Some("mod::t")
        );
        assert_eq!(
            test_from_args(&args(&["bin", "mod::t"])),
            None,
            "a filter, not one test"
        );
        assert_eq!(test_from_args(&args(&["bin"])), None);
    }

    #[test]
    fn same_test_name_in_two_binaries_differs() {
        assert_ne!(
            derive("a-0123456789abcdef", Some("t")),
            derive("b-0123456789abcdef", Some("t"))
        );
    }

    #[test]
    fn main_thread_uses_the_binary_name() {
        assert_eq!(derive("standalone", Some("main")), "standalone");
        assert_eq!(derive("standalone", None), "standalone");
        assert_eq!(derive("___", None), "e2ekit");
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        for bad in ["", "-x", "a b", &"x".repeat(41), "ünï", "x/../victim", ".."] {
            let err = validate_env_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid environment name"), "{err}");
        }
        validate_env_name("demo_1.a-b").unwrap();
        assert!(validate_runnable_name("env", "a/b").is_err());
        assert!(validate_runnable_name("env", &"x".repeat(60)).is_err());
        validate_runnable_name("env", "prometheus-1").unwrap();
    }

    #[test]
    fn reserved_names_are_refused_when_explicit_and_hashed_when_derived() {
        let reserved = ["bridge", "host", "none"];
        assert!(avoid_reserved("host".into(), true, &reserved).is_err());
        let derived = avoid_reserved("host".into(), false, &reserved).expect("derived");
        assert!(
            derived.starts_with("host-") && derived.len() == 13,
            "{derived}"
        );
        assert_eq!(
            avoid_reserved("app".into(), true, &reserved).expect("free"),
            "app"
        );
    }
}
