//! Stand-in for the TLS material module when e2ekit is built without its `tls` feature: the
//! catalog options that need certificates or random keys fail with a clear error instead.

use crate::error::{Error, Result};

fn disabled(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what} needs e2ekit's `tls` feature, which this build leaves out (enable it in Cargo.toml: features = [\"tls\"])"
    ))
}

/// Never constructed: generating certificates needs the `tls` feature.
pub(crate) struct Certificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Certificates {
    pub(crate) fn generate(_server_name: &str) -> Result<Self> {
        Err(disabled("TLS for a catalog service (Options::tls)"))
    }
}

pub(super) fn random_key_base64<const N: usize>() -> Result<String> {
    Err(disabled("server-side encryption (Options::sse)"))
}
