//! The runtime settings an image carries: environment, entrypoint, command, working
//! directory, user and labels, as typed values (never Dockerfile instruction strings).
//!
//! ```
//! # use e2ekit::HostImage;
//! // HostImage turns its settings into this value; engines turn it into their own format.
//! let image = HostImage::new("e2ekit/app").env("A", "1").entrypoint(["/bin/app"]);
//! # let _ = image;
//! ```

use std::collections::BTreeMap;

/// Settings stored in an image and applied to every container made from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageConfig {
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// The program run by default (exec form).
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (exec form).
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Default user.
    pub user: Option<String>,
    /// Image labels.
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// A stable byte rendering, for content-addressed image tags.
    pub(crate) fn fingerprint(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut field = |name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        };
        for (k, v) in &self.env {
            field("env", &format!("{k}={v}"));
        }
        for (k, v) in &self.labels {
            field("label", &format!("{k}={v}"));
        }
        for (name, argv) in [("entrypoint", &self.entrypoint), ("cmd", &self.cmd)] {
            if let Some(argv) = argv {
                field(name, &argv.join("\u{1}"));
            }
        }
        if let Some(w) = &self.workdir {
            field("workdir", w);
        }
        if let Some(u) = &self.user {
            field("user", u);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_every_setting() {
        let base = ImageConfig::default();
        let variants = [
            ImageConfig {
                env: vec![("A".into(), "1".into())],
                ..Default::default()
            },
            ImageConfig {
                entrypoint: Some(vec!["/a".into()]),
                ..Default::default()
            },
            ImageConfig {
                cmd: Some(vec!["/a".into()]),
                ..Default::default()
            },
            ImageConfig {
                workdir: Some("/w".into()),
                ..Default::default()
            },
            ImageConfig {
                user: Some("1".into()),
                ..Default::default()
            },
        ];
        for v in &variants {
            assert_ne!(v.fingerprint(), base.fingerprint(), "{v:?}");
        }
        assert_ne!(variants[1].fingerprint(), variants[2].fingerprint());
    }
}
