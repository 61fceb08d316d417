//! Image references (`[registry[:port]/]repository[:tag][@digest]`), checked when a runnable is
//! defined, so a typo fails there, naming the runnable, rather than at the engine.
//!
//! The grammar is the one of the distribution reference every registry and engine uses:
//! a repository of lowercase path components (`[a-z0-9]` runs joined by `.`, `_`, `__` or
//! dashes), optionally behind a registry host (which may hold uppercase letters and a port);
//! a tag of at most 128 word characters, dots and dashes, not starting with a dot or dash;
//! a digest `algorithm:hex`.
//!
//! ```text
//! check_image_reference("quay.io/prometheus/prometheus:v2.53.0") == Ok(())
//! check_image_reference("e2ekit/Demo:1")  // Err: the repository must be lowercase
//! ```

use std::sync::OnceLock;

use regex::Regex;

/// Splits `repo[:tag][@digest]` into repository and tag (default `latest`).
pub(crate) fn split_image(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        // A colon before the last slash belongs to a registry port, not a tag.
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// How a reference looks, for error messages.
const FORM: &str = "a reference is [registry[:port]/]repository[:tag][@digest] with a lowercase \
                    repository, e.g. \"quay.io/prometheus/prometheus:v2.53.0\" or \"busybox\"";

/// The longest repository name (registry included) engines accept.
const MAX_NAME: usize = 255;

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    // The patterns are constants below; they compile.
    cell.get_or_init(|| Regex::new(pattern).expect("static regex"))
}

fn path_component(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").is_match(s)
}

fn registry(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let component = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])";
    let pattern = format!(r"^(?:\[[0-9A-Fa-f:]+\]|{component}(?:\.{component})*)(?::[0-9]+)?$");
    regex(&RE, &pattern).is_match(s)
}

fn tag(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").is_match(s)
}

fn digest(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(
        &RE,
        r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}$",
    )
    .is_match(s)
}

/// `Ok` when `reference` is a syntactically valid image reference; otherwise what is wrong
/// with it and what a reference looks like.
pub(crate) fn check_image_reference(reference: &str) -> Result<(), String> {
    match problem(reference) {
        Some(why) => Err(format!(
            "image reference {reference:?} is not valid: {why}; {FORM}"
        )),
        None => Ok(()),
    }
}

fn problem(reference: &str) -> Option<String> {
    if reference.is_empty() {
        return Some("it is empty".to_string());
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Some("it contains whitespace or control characters".to_string());
    }
    let (rest, digest_part) = match reference.split_once('@') {
        Some((rest, d)) => (rest, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest_part {
        if !digest(d) {
            return Some(format!(
                "the digest {d:?} must be algorithm:hex (e.g. \"sha256:\" and 64 hex digits)"
            ));
        }
    }
    // The tag follows the last ':' after the last '/' (a ':' before it is a registry port).
    let last_part = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag_part) = match rest[last_part..].rfind(':') {
        Some(i) => (&rest[..last_part + i], Some(&rest[last_part + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag_part {
        if t.is_empty() {
            return Some("the tag after ':' is empty".to_string());
        }
        if !tag(t) {
            return Some(format!(
                "the tag {t:?} must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"
            ));
        }
    }
    name_problem(name)
}

fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the repository name is empty".to_string());
    }
    if name.len() > MAX_NAME {
        return Some(format!(
            "the repository name is {} characters long; at most {MAX_NAME} are allowed",
            name.len()
        ));
    }
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let components: Vec<&str> = match rest {
        // A first component that is a valid registry host names the registry.
        Some(rest) if registry(first) => rest.split('/').collect(),
        _ => name.split('/').collect(),
    };
    let bad = components.iter().find(|c| !path_component(c))?;
    Some(if bad.is_empty() {
        format!("the repository {name:?} has an empty path component")
    } else if bad.chars().any(|c| c.is_ascii_uppercase()) {
        format!("the repository {name:?} must be lowercase")
    } else {
        format!(
            "the repository {name:?} may only hold lowercase letters and digits, joined by single \
             '.', '_' or '__' or by dashes ({bad:?} does not)"
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_references_split_into_repo_and_tag() {
        assert_eq!(split_image("busybox"), ("busybox", "latest"));
        assert_eq!(split_image("quay.io/p/p:v2"), ("quay.io/p/p", "v2"));
        assert_eq!(
            split_image("localhost:5000/x"),
            ("localhost:5000/x", "latest")
        );
        assert_eq!(split_image("localhost:5000/x:1"), ("localhost:5000/x", "1"));
    }

    use super::*;

    #[test]
    fn accepts_what_engines_accept() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        for good in [
            "busybox".to_string(),
            "busybox:1.36".to_string(),
            "e2ekit/demo-app:latest".to_string(),
            "quay.io/prometheus/prometheus:v2.53.0".to_string(),
            "localhost:5000/a/b:c".to_string(),
            "Registry.Example.com/team/app".to_string(),
            "a_b__c-d.e---f/g".to_string(),
            "[::1]:5000/app:1".to_string(),
            format!("app@{digest}"),
            format!("app:1@{digest}"),
            digest.clone(),
            "localhost:5000".to_string(),
        ] {
            assert_eq!(check_image_reference(&good), Ok(()), "{good}");
        }
    }

    #[test]
    fn says_what_is_wrong() {
        for (bad, why) in [
            ("", "empty"),
            ("a b", "whitespace"),
            ("App", "lowercase"),
            ("e2ekit/Demo:1", "lowercase"),
            ("app:", "tag after ':' is empty"),
            ("app:-x", "tag \"-x\""),
            ("app@sha256:12", "digest"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("a...b", "may only hold"),
            ("a/b!", "may only hold"),
            ("host:port/a", "may only hold"),
        ] {
            let err = check_image_reference(bad).expect_err(bad);
            assert!(err.contains(why) && err.contains(FORM), "{bad:?}: {err}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        assert!(check_image_reference(&long)
            .expect_err("long")
            .contains("at most 255"));
    }
}
