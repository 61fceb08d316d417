//! STUB (being written): TLS certificates for catalog services.
use crate::error::Result;

/// A CA and a server certificate signed by it (PEM).
#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA certificate.
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server's private key.
    pub key_pem: String,
}

impl Certificates {
    /// Generates a CA and a server certificate for `server_name`.
    pub fn generate(server_name: &str) -> Result<Self> {
        Err(crate::Error::InvalidArgument(format!("not yet: {server_name}")))
    }
}
