//! MinIO: a local S3 replacement with one bucket, instrumented through its Prometheus endpoint.

use super::certs::{random_key_base64, Certificates};
use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::metrics::Instrumented;
use crate::spec::Command;
use crate::spec::Flags;
use crate::spec::{AllProbe, HttpProbe};

/// MinIO's access key (its root user), for S3 clients of [`minio`].
pub const MINIO_ACCESS_KEY: &str = "Cheescake";
/// MinIO's secret key (its root password), for S3 clients of [`minio`].
pub const MINIO_SECRET_KEY: &str = "supersecret";

/// The official image: the last releases that still have the single-directory ("FS") mode,
/// in which a directory of the data directory is a bucket.
pub const IMAGE: &str = "minio/minio:RELEASE.2022-03-14T18-25-24Z";
/// The container port of [`ACCESS_PORT`].
const PORT: u16 = 8090;
/// The name of the key [`Options::sse`] configures (upstream's name, so SSE-KMS requests
/// written for upstream's MinIO keep working).
const KMS_KEY_NAME: &str = "my-minio-key";
/// The cluster metrics, readable without credentials (`MINIO_PROMETHEUS_AUTH_TYPE=public`).
const METRICS_PATH: &str = "/minio/v2/metrics/cluster";

/// MinIO serving S3 on [`ACCESS_PORT`] (8090) with `bucket` already created, credentials
/// [`MINIO_ACCESS_KEY`] / [`MINIO_SECRET_KEY`], and its cluster metrics
/// (`/minio/v2/metrics/cluster`, no authentication) instrumented.
///
/// MinIO runs in single-directory mode as the host user, so everything it writes stays
/// removable: the objects of `bucket` are plain files under `<dir>/data/<bucket>/`.
///
/// Ready means ready to serve S3: `/minio/health/live` answers and an anonymous request on
/// the bucket is refused with `403 AccessDenied`. (MinIO answers its health endpoints before
/// its object layer is initialised; S3 calls then fail with `503 Server not initialized`.)
///
/// - [`Options::tls`]: serves HTTPS with a certificate for the internal name
///   (`<env>-<name>`, also `localhost`/`127.0.0.1`), signed by a CA generated for this runnable
///   and written to `<dir>/certs/CAs/ca.crt` (the server's pair is `<dir>/certs/public.crt` and
///   `<dir>/certs/private.key`). Metrics are then read over HTTPS.
/// - [`Options::sse`]: enables server-side encryption (SSE-S3, and SSE-KMS with the key id
///   `my-minio-key`) with a static 256-bit key generated for this runnable and given to MinIO
///   as `MINIO_KMS_SECRET_KEY`; no KMS server and no network access are involved. (SSE-C needs
///   [`Options::tls`] as well, as on real S3.)
/// - [`Options::flag`] adds or replaces `minio server` flags (`--address`, `--quiet` and, with
///   TLS, `--certs-dir` are the defaults); [`Options::image`] must keep `minio` on the `PATH`.
///
/// Errors with [`Error::InvalidArgument`] if `bucket` is not a valid S3 bucket name.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo() -> e2ekit::Result<()> {
/// let env = Environment::new().await?;
/// let s3 = db::minio(&env, "minio-1", "thanos", db::Options::new().tls())?;
/// start_and_wait_ready(&[&s3]).await?;
/// // Other runnables use the internal endpoint; the host uses the published one.
/// println!("https://{} (from peers)", s3.internal_endpoint(db::ACCESS_PORT)?);
/// println!("https://{} (from the host)", s3.endpoint(db::ACCESS_PORT)?);
/// println!("trust {}", s3.dir().join("certs/CAs/ca.crt").display());
/// s3.wait_sum_metrics(greater(0.0), ["minio_cluster_nodes_online_total"]).await?;
/// # Ok(()) }
/// ```
pub fn minio(
    env: &Environment,
    name: &str,
    bucket: &str,
    options: Options,
) -> Result<Instrumented> {
    let runnable = super::deploy(env, name, |site| spec(site, bucket, &options))?;
    let instrumented = Instrumented::new(runnable, ACCESS_PORT)?.metrics_path(METRICS_PATH);
    Ok(if options.tls {
        instrumented.https()
    } else {
        instrumented
    })
}

/// The MinIO definition: see [`minio`].
pub(crate) fn spec(site: &Site, bucket: &str, options: &Options) -> Result<Spec> {
    validate_bucket(bucket)?;
    // The data directory is a subdirectory, not the runnable's directory itself: in
    // single-directory mode every directory in it is listed as a bucket, and `certs` (and
    // `.minio` under `$HOME`) must not be.
    let data = site.path("data");

    let mut defaults = Flags::new()
        .with("--address", format!(":{PORT}"))
        .with("--quiet", "");
    if options.tls {
        defaults.insert("--certs-dir", site.path("certs"));
    }
    let flags = options.merged_flags(defaults);
    // `minio server [FLAGS] DIR`: the command-line parser wants the flags before the directory.
    let command = Command::new("minio")
        .arg("server")
        .args(flags.to_args())
        .arg(&data)
        .disable_entrypoint();

    let mut live = HttpProbe::new(ACCESS_PORT, "/minio/health/live");
    // Anonymous access to a private bucket is refused only once the object layer is up: before
    // that every S3 call answers 503 "Server not initialized", although the health endpoints
    // already answer 200. A 403 with AccessDenied therefore means "ready to serve".
    let mut s3 = HttpProbe::new(ACCESS_PORT, format!("/{bucket}/"))
        .status(403..=403)
        .body_contains("AccessDenied");
    if options.tls {
        live = live.https();
        s3 = s3.https();
    }

    let mut start = options
        .start_options(IMAGE)
        .command(command)
        .env("MINIO_ROOT_USER", MINIO_ACCESS_KEY)
        .env("MINIO_ROOT_PASSWORD", MINIO_SECRET_KEY)
        .env("MINIO_BROWSER", "off")
        .env("MINIO_PROMETHEUS_AUTH_TYPE", "public")
        // MinIO keeps its own configuration under $HOME/.minio; an arbitrary host uid has no
        // home in the image, so give it the runnable's directory (outside the data directory).
        .env("HOME", site.dir.display().to_string())
        .readiness(AllProbe::new([live.into(), s3.into()]))
        .host_user();
    if options.sse {
        start = start.env("MINIO_KMS_SECRET_KEY", kms_secret_key()?);
    }

    // Single-directory mode: a directory in the data directory is a bucket.
    let mut spec = Spec::new(start)
        .port(ACCESS_PORT, PORT)
        .dir(format!("data/{bucket}"));
    if options.tls {
        let certs = Certificates::generate(&site.host())?;
        spec = spec
            .file("certs/public.crt", certs.cert_pem)
            .secret_file("certs/private.key", certs.key_pem)
            .file("certs/CAs/ca.crt", certs.ca_pem);
    }
    Ok(spec)
}

/// `MINIO_KMS_SECRET_KEY`: `<key name>:<base64 of 32 random bytes>`.
fn kms_secret_key() -> Result<String> {
    Ok(format!("{KMS_KEY_NAME}:{}", random_key_base64::<32>()?))
}

/// S3's bucket naming rules (as MinIO enforces them), plus MinIO's reserved name.
fn validate_bucket(bucket: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid MinIO bucket name {bucket:?}: {reason}"
        )))
    };
    if !(3..=63).contains(&bucket.len()) {
        return invalid("it must be 3 to 63 characters long");
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return invalid(&format!(
            "{c:?} is not allowed; use lowercase letters, digits, '.' and '-'"
        ));
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(bucket.chars().next()) || !alnum(bucket.chars().last()) {
        return invalid("it must start and end with a letter or a digit");
    }
    if bucket.contains("..") || bucket.contains(".-") || bucket.contains("-.") {
        return invalid("'.' must not be next to another '.' or a '-'");
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return invalid("it must not look like an IP address");
    }
    if bucket == "minio" {
        return invalid("MinIO reserves it for its own API");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    #[cfg(feature = "tls")]
    fn env_value<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
        spec.options
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `(https, path, status range, body)` of an HTTP probe.
    type HttpSummary = (bool, String, (u16, u16), Option<String>);

    /// The summaries of the HTTP probes of an `AllProbe`.
    fn http_probes(spec: &Spec) -> Vec<HttpSummary> {
        let Some(Probe::All(all)) = &spec.options.readiness else {
            panic!("expected an AllProbe, got {:?}", spec.options.readiness);
        };
        all.probes
            .iter()
            .map(|p| match p {
                Probe::Http(h) => {
                    assert_eq!(h.port, ACCESS_PORT);
                    (
                        h.https,
                        h.path.clone(),
                        (*h.status.start(), *h.status.end()),
                        h.body.clone(),
                    )
                }
                other => panic!("expected HTTP probes, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn default_definition() {
        let s = site("minio-1");
        let spec = spec(&s, "thanos", &Options::new()).expect("spec");

        assert_eq!(spec.options.image, IMAGE);
        let command = spec.options.command.as_ref().expect("command");
        assert!(command.entrypoint_disabled, "runs minio directly, no shell");
        assert_eq!(
            command.to_vec(),
            [
                "minio",
                "server",
                "--address=:8090",
                "--quiet",
                "/tmp/e2e-test/data/minio-1/data",
            ]
        );
        assert_eq!(spec.ports, [(ACCESS_PORT.to_string(), 8090)]);
        assert_eq!(
            spec.env_vars(),
            [
                ("MINIO_ROOT_USER", "Cheescake"),
                ("MINIO_ROOT_PASSWORD", "supersecret"),
                ("MINIO_BROWSER", "off"),
                ("MINIO_PROMETHEUS_AUTH_TYPE", "public"),
                ("HOME", "/tmp/e2e-test/data/minio-1"),
            ]
        );
        // Runs as the host user (when there is one to find), never as the image's root.
        #[cfg(unix)]
        assert!(spec.options.user.is_some());
        assert_eq!(spec.dirs, ["data/thanos"]);
        assert!(spec.files.is_empty());
        assert_eq!(
            http_probes(&spec),
            [
                (false, "/minio/health/live".to_string(), (200, 299), None),
                (
                    false,
                    "/thanos/".to_string(),
                    (403, 403),
                    Some("AccessDenied".to_string())
                ),
            ]
        );
    }

    #[test]
    fn flags_override_defaults_and_are_placed_before_the_directory() {
        let s = site("minio-1");
        let options = Options::new()
            .flag("--quiet", "")
            .flag("--address", ":8090")
            .flag("--json", "");
        let spec = spec(&s, "bkt", &options).expect("spec");
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            [
                "minio",
                "server",
                "--address=:8090",
                "--quiet",
                "--json",
                "/tmp/e2e-test/data/minio-1/data",
            ]
        );
    }

    #[test]
    #[cfg(feature = "tls")]
    fn tls_writes_certificates_for_the_internal_name_and_probes_https() {
        let s = site("minio-1");
        let spec = spec(&s, "thanos", &Options::new().tls()).expect("spec");

        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            [
                "minio",
                "server",
                "--address=:8090",
                "--quiet",
                "--certs-dir=/tmp/e2e-test/data/minio-1/certs",
                "/tmp/e2e-test/data/minio-1/data",
            ]
        );
        let probes = http_probes(&spec);
        assert!(probes.iter().all(|(https, ..)| *https), "{probes:?}");

        let mut paths: Vec<&str> = spec.files.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            ["certs/CAs/ca.crt", "certs/private.key", "certs/public.crt"]
        );
        let cert = spec.file_text("certs/public.crt").expect("cert");
        let key = spec.file_text("certs/private.key").expect("key");
        let ca = spec.file_text("certs/CAs/ca.crt").expect("ca");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(cert, ca);
        assert_eq!(
            s.host(),
            "e2e-test-minio-1",
            "the name the certificate is for"
        );
        // The written files work together: a client trusting only the written CA accepts the
        // written certificate for the internal name, and for no other runnable's name.
        let written = Certificates {
            ca_pem: ca.clone(),
            cert_pem: cert,
            key_pem: key,
        };
        super::super::certs::tests::handshake(&written, &ca, &s.host())
            .expect("verifies for the internal name");
        super::super::certs::tests::handshake(&written, &ca, "e2e-test-minio-2")
            .expect_err("must not verify for another name");
    }

    #[test]
    #[cfg(feature = "tls")]
    fn sse_sets_a_fresh_static_kms_key_without_network_access() {
        let s = site("minio-1");
        let a = spec(&s, "thanos", &Options::new().sse()).expect("spec");
        let b = spec(&s, "thanos", &Options::new().sse()).expect("spec");
        let key_a = env_value(&a, "MINIO_KMS_SECRET_KEY").expect("key");
        let key_b = env_value(&b, "MINIO_KMS_SECRET_KEY").expect("key");
        assert_ne!(key_a, key_b, "every runnable gets its own key");

        let (name, material) = key_a.split_once(':').expect("<name>:<key>");
        assert_eq!(name, "my-minio-key");
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(material)
            .expect("base64");
        assert_eq!(decoded.len(), 32, "a 256-bit key");
        assert!(
            a.options
                .env
                .iter()
                .all(|(k, _)| !k.starts_with("MINIO_KMS_KES")),
            "no KES server"
        );
        assert!(env_value(
            &spec(&s, "thanos", &Options::new()).expect("spec"),
            "MINIO_KMS_SECRET_KEY"
        )
        .is_none());
    }

    #[test]
    fn image_and_wait_policy_are_taken_from_options() {
        let policy = crate::wait::WaitPolicy::timeout(std::time::Duration::from_secs(7));
        let options = Options::new()
            .image("minio/minio:RELEASE.2022-05-26T05-48-41Z")
            .wait_policy(policy);
        let spec = spec(&site("m"), "bkt", &options).expect("spec");
        assert_eq!(
            spec.options.image,
            "minio/minio:RELEASE.2022-05-26T05-48-41Z"
        );
        assert_eq!(spec.options.wait_policy, policy);
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["thanos", "abc", "my.bucket-1", "0a0", &"a".repeat(63)] {
            validate_bucket(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "",
            "ab",
            &"a".repeat(64),
            "Thanos",
            "my_bucket",
            "-abc",
            "abc-",
            ".abc",
            "a..b",
            "a.-b",
            "a-.b",
            "192.168.1.1",
            "minio",
            "a/b",
        ] {
            match spec(&site("m"), bad, &Options::new()) {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains("bucket name"), "{bad:?}: {msg}")
                }
                other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
}
