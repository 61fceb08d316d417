//! TLS material for catalog services that serve HTTPS (MinIO, Azurite): a throw-away CA and a
//! server certificate it signed, generated in memory.
//!
//! Keys are ECDSA P-256 (generated with `ring`, the crypto backend rustls already uses here), so
//! generation takes microseconds and needs no `openssl` binary.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// How long generated certificates are valid.
const VALIDITY: Duration = Duration::from_secs(3652 * 24 * 3600); // 10 years
/// How far in the past validity starts, so a container whose clock lags the host's (a Docker
/// VM after a host suspend) does not see a certificate from the future.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);

/// A fresh CA and a server certificate signed by it, as PEM text.
///
/// The server certificate names `server_name`, `localhost`, `127.0.0.1` and `::1`, carries the
/// server and client authentication purposes and is valid for ten years. Clients verify the
/// server by trusting [`Certificates::ca_pem`] alone.
///
/// ```
/// let certs = e2ekit::db::Certificates::generate("e2e-test-minio-1")?;
/// assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(certs.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
/// # Ok::<(), e2ekit::Error>(())
/// ```
#[derive(Clone)]
pub struct Certificates {
    /// The CA certificate (self-signed); the only certificate a client needs to trust.
    pub ca_pem: String,
    /// The server certificate, signed by the CA.
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keep the private key out of logs and assertion messages.
        f.debug_struct("Certificates")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"…")
            .finish()
    }
}

impl Certificates {
    /// Generates a new CA and a server certificate for `server_name` (a DNS name, usually a
    /// runnable's internal host name `<env>-<name>`). The CA's key is dropped: nothing else
    /// can be signed with it.
    ///
    /// Errors with [`Error::InvalidArgument`] if `server_name` cannot be put in a certificate
    /// (it must be a non-empty ASCII DNS name or an IP address).
    pub fn generate(server_name: &str) -> Result<Self> {
        let fail = |what: &str, e: rcgen::Error| {
            Error::InvalidArgument(format!(
                "cannot generate TLS certificates for {server_name:?}: {what}: {e}"
            ))
        };
        if server_name.is_empty() {
            return Err(Error::InvalidArgument(
                "cannot generate TLS certificates for an empty server name".to_string(),
            ));
        }
        let now = SystemTime::now();
        let not_before = (now - BACKDATE).into();
        let not_after = (now + VALIDITY).into();

        // A unique subject per CA, so clients that find issuers by name (every one of them)
        // never confuse two CAs generated for the same server name, e.g. by two test runs.
        let id: String = random_bytes::<8>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut ca = CertificateParams::default();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name.push(
            DnType::CommonName,
            format!("e2ekit CA {id} for {server_name}"),
        );
        ca.distinguished_name
            .push(DnType::OrganizationName, "e2ekit");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_before = not_before;
        ca.not_after = not_after;
        let ca_key = KeyPair::generate().map_err(|e| fail("CA key", e))?;
        let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail("CA", e))?;

        let mut server = CertificateParams::new(vec![
            server_name.to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(|e| fail("subject alternative names", e))?;
        server.distinguished_name = rcgen::DistinguishedName::new();
        server
            .distinguished_name
            .push(DnType::CommonName, server_name);
        server.is_ca = IsCa::ExplicitNoCa;
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        server.use_authority_key_identifier_extension = true;
        server.not_before = not_before;
        server.not_after = not_after;
        let server_key = KeyPair::generate().map_err(|e| fail("server key", e))?;
        let issuer = Issuer::new(ca, ca_key);
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(|e| fail("server certificate", e))?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: server_cert.pem(),
            key_pem: server_key.serialize_pem(),
        })
    }
}

/// `N` random bytes, base64-encoded (a key for a service configuration).
pub(super) fn random_key_base64<const N: usize>() -> Result<String> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(random_bytes::<N>()?))
}

/// `N` bytes from the system's secure random source.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Error::io(
                "reading the system's random source",
                std::io::Error::other("ring::rand::SystemRandom failed"),
            )
        })?;
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    //! The certificates are checked the way clients will use them: a real TLS handshake
    //! (rustls, in memory) between a server holding the generated certificate and key and a
    //! client that trusts only the generated CA.

    use std::sync::Arc;

    use rustls::crypto::ring::default_provider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{
        CertificateError, ClientConfig, ClientConnection, RootCertStore, ServerConfig,
        ServerConnection,
    };

    use super::Certificates;

    fn rejected_certificate(result: Result<(), rustls::Error>) -> CertificateError {
        match result {
            Err(rustls::Error::InvalidCertificate(e)) => e,
            other => panic!("expected the client to reject the certificate, got {other:?}"),
        }
    }

    /// Runs a TLS handshake to `server_name` between a server holding `server`'s certificate
    /// and key and a client trusting only `trusted_ca`; `Err` is the client's verdict. A broken
    /// setup (unparsable PEM, a server-side failure) panics.
    pub(crate) fn handshake(
        server: &Certificates,
        trusted_ca: &str,
        server_name: &str,
    ) -> Result<(), rustls::Error> {
        let provider = Arc::new(default_provider());
        let chain = vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes())
            .expect("server certificate PEM")];
        let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).expect("key PEM");
        let server_config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("the server accepts the certificate and key");

        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(trusted_ca.as_bytes()).expect("CA PEM"))
            .expect("CA is a usable trust anchor");
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();

        let name = ServerName::try_from(server_name.to_string()).expect("server name");
        let mut client = ClientConnection::new(Arc::new(client_config), name).expect("client");
        let mut server = ServerConnection::new(Arc::new(server_config)).expect("server");

        for _ in 0..20 {
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).expect("client write");
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("server read");
            }
            server.process_new_packets().expect("server handshake");

            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).expect("server write");
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("client read");
            }
            client.process_new_packets()?;
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn certificate_verifies_against_its_ca_for_the_right_name_only() {
        let certs = Certificates::generate("e2e-test-minio-1").expect("generate");

        handshake(&certs, &certs.ca_pem, "e2e-test-minio-1").expect("internal name");
        handshake(&certs, &certs.ca_pem, "localhost").expect("localhost");
        handshake(&certs, &certs.ca_pem, "127.0.0.1").expect("IPv4 loopback");
        handshake(&certs, &certs.ca_pem, "::1").expect("IPv6 loopback");

        for wrong in ["e2e-test-minio-2", "minio-1", "example.com", "10.0.0.1"] {
            let err = rejected_certificate(handshake(&certs, &certs.ca_pem, wrong));
            assert!(
                matches!(
                    err,
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ),
                "{wrong}: unexpected error {err:?}"
            );
        }
    }

    #[test]
    fn certificate_does_not_verify_against_another_ca() {
        let certs = Certificates::generate("e2e-test-minio-1").expect("generate");
        let other = Certificates::generate("e2e-test-minio-1").expect("generate");
        assert_ne!(certs.ca_pem, other.ca_pem, "every call makes a new CA");
        let err = rejected_certificate(handshake(&certs, &other.ca_pem, "e2e-test-minio-1"));
        assert!(
            matches!(err, CertificateError::UnknownIssuer),
            "unexpected error {err:?}"
        );
    }

    #[test]
    fn pem_texts_have_the_expected_shape_and_debug_hides_the_key() {
        let certs = Certificates::generate("e2e-test-azurite-1").expect("generate");
        for pem in [&certs.ca_pem, &certs.cert_pem] {
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
            assert!(
                pem.trim_end().ends_with("-----END CERTIFICATE-----"),
                "{pem}"
            );
        }
        assert!(certs.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let debug = format!("{certs:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    }

    #[test]
    fn unusable_names_are_invalid_arguments() {
        for bad in ["", "bücher.example"] {
            match Certificates::generate(bad) {
                Err(crate::Error::InvalidArgument(msg)) => {
                    assert!(msg.contains("TLS certificates"), "{msg}")
                }
                other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
}
