//! Azurite, a local replacement for Azure Blob Storage, and a one-shot writer that uploads a
//! host directory into it with the Azure CLI.

use std::path::{Path, PathBuf};

use super::certs::Certificates;
use super::{Options, Site, Spec};
use crate::env::Environment;
use crate::env::Runnable;
use crate::error::{Error, Result};
use crate::spec::Command;
use crate::spec::Flags;
use crate::spec::HttpProbe;

/// The connection string of Azurite's built-in development account (`devstoreaccount1` and
/// its well-known, public key), without an endpoint: append
/// `BlobEndpoint=http://<azurite internal endpoint "blob">/devstoreaccount1;` to use it.
pub const AZURITE_DEV_CONNECTION_STRING: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;";

/// The official Azurite image.
pub const IMAGE: &str = "mcr.microsoft.com/azure-storage/azurite:3.35.0";
/// The official Azure CLI image, for [`azurite_writer`].
pub const CLI_IMAGE: &str = "mcr.microsoft.com/azure-cli:2.64.0";
/// The name of Azurite's blob port (upstream's name).
const BLOB_PORT: &str = "blob";
/// Its container port.
const BLOB_PORT_NUMBER: u16 = 10000;
/// The marker of a TLS-serving Azurite: the path of the CA that signed its certificate.
#[derive(Debug, Clone)]
struct AzuriteCa(PathBuf);
/// Where [`azurite_writer`] sees the directory it uploads.
const WRITER_SOURCE: &str = "/shared";
/// The file [`azurite_writer`] creates in its directory once the upload succeeded.
const WRITER_DONE: &str = "uploaded";
/// The writer's script. The container name, the connection string and the path of the
/// success marker come as `$1`, `$2` and `$3`, so no value is ever parsed by the shell.
/// `--overwrite true` (not the bare flag, which some CLI versions reject) lets it run again.
const WRITER_SCRIPT: &str = r#"set -e
az storage container create --name "$1" --connection-string "$2"
az storage blob upload-batch --destination "$1" --source /shared --overwrite true --connection-string "$2"
touch "$3""#;

/// Azurite's blob service on port `"blob"` (10000), storing its data in the runnable's
/// directory as the host user. It exposes no metrics.
///
/// Its default account is the development account ([`AZURITE_DEV_CONNECTION_STRING`]);
/// [`Options::azurite_accounts`] replaces it (`AZURITE_ACCOUNTS`, `name1:key1;name2:key2`).
/// Ready when the blob service answers HTTP at all (any status below 500).
///
/// - [`Options::tls`]: serves HTTPS with a certificate for the internal name
///   (`<env>-<name>`, also `localhost`/`127.0.0.1`) and enables OAuth (`--oauth basic`, which
///   needs HTTPS). The certificate is `<dir>/certs/cert.pem`, its key `<dir>/certs/key.pem`,
///   and the CA that signed it `<dir>/certs/CAs/ca.crt`, which clients must trust.
/// - [`Options::flag`] adds or replaces `azurite-blob` flags (the defaults are `--blobHost`,
///   `--blobPort`, `--location`, `--skipApiVersionCheck`, so any SDK version is accepted, and
///   `--disableTelemetry`). [`Options::image`] must keep `azurite-blob` on the `PATH`.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo() -> e2ekit::Result<()> {
/// let env = Environment::new().await?;
/// let azurite = db::azurite(&env, "azurite-1", db::Options::new())?;
/// let writer = db::azurite_writer(
///     &env,
///     "azurite-writer-1",
///     &azurite,
///     "thanos",
///     std::path::Path::new("/tmp/blocks"),
///     db::Options::new(),
/// )?;
/// start_and_wait_ready(&[&azurite]).await?;
///
/// // The writer runs to completion.
/// writer.start().await?;
/// while writer.is_running() {
///     tokio::time::sleep(std::time::Duration::from_millis(200)).await;
/// }
/// assert!(writer.dir().join("uploaded").exists(), "the upload failed; see its output");
/// println!("blob service at http://{}/devstoreaccount1", azurite.endpoint("blob")?);
/// # Ok(()) }
/// ```
pub fn azurite(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    let runnable = super::deploy(env, name, |site| spec(site, &options))?;
    if options.tls {
        let ca = runnable.dir().join("certs/CAs/ca.crt");
        runnable.set_marker(AzuriteCa(ca));
    }
    Ok(runnable)
}

/// The Azurite definition: see [`azurite`].
pub(crate) fn spec(site: &Site, options: &Options) -> Result<Spec> {
    let mut defaults = Flags::new()
        .with("--blobHost", "0.0.0.0")
        .with("--blobPort", BLOB_PORT_NUMBER.to_string())
        .with("--location", site.dir.display().to_string())
        .with("--skipApiVersionCheck", "")
        .with("--disableTelemetry", "");
    if options.tls {
        defaults
            .insert("--cert", site.path("certs/cert.pem"))
            .insert("--key", site.path("certs/key.pem"))
            .insert("--oauth", "basic");
    }
    let flags = options.merged_flags(defaults);
    let command = Command::new("azurite-blob")
        .args(flags.to_args())
        .disable_entrypoint();

    // Azurite has no health endpoint; any HTTP answer (an error status for a request that
    // names no account) means the blob service is up.
    let mut probe = HttpProbe::new(BLOB_PORT, "/").status(200..=499);
    if options.tls {
        probe = probe.https();
    }
    let mut start = options
        .start_options(IMAGE)
        .command(command)
        .readiness(probe)
        .host_user();
    if let Some(accounts) = &options.azurite_accounts {
        start = start.env("AZURITE_ACCOUNTS", accounts.clone());
    }

    let mut spec = Spec::new(start).port(BLOB_PORT, BLOB_PORT_NUMBER);
    if options.tls {
        let certs = Certificates::generate(&site.host())?;
        spec = spec
            .file("certs/cert.pem", certs.cert_pem)
            .secret_file("certs/key.pem", certs.key_pem)
            .file("certs/CAs/ca.crt", certs.ca_pem);
    }
    Ok(spec)
}

/// A one-shot Azure CLI runnable that creates the blob container `container` in `azurite`
/// and uploads every file under the host directory `data_dir` into it, keeping relative
/// paths as blob names. (Azurite keeps blobs in its own database, so files cannot simply be
/// copied into its directory.)
///
/// It runs to completion: [`Runnable::start`] it once `azurite` is ready; the container exits
/// with 0 when the upload is done (it has no ports and no readiness probe). Wait for
/// [`Runnable::is_running`] to turn false; the upload succeeded if the file `uploaded` exists
/// in the writer's [`Runnable::dir`] (its output, in the environment's logs, says why not).
///
/// `data_dir` is mounted read-only at `/shared`. The CLI authenticates with the development
/// account on `azurite`'s internal blob endpoint (over HTTPS, trusting `azurite`'s CA, when
/// `azurite` serves TLS); [`Options::azurite_connection_string`] replaces that, and is needed
/// when `azurite` runs with custom [`Options::azurite_accounts`] (which disable the
/// development account). [`Options::image`] replaces the Azure CLI image.
///
/// Errors with [`Error::InvalidArgument`] if `container` is not a valid blob container name or
/// `data_dir` is not a directory.
pub fn azurite_writer(
    env: &Environment,
    name: &str,
    azurite: &Runnable,
    container: &str,
    data_dir: &Path,
    options: Options,
) -> Result<Runnable> {
    let data_dir = std::path::absolute(data_dir).map_err(|e| {
        Error::io(
            format!("resolving the data directory {}", data_dir.display()),
            e,
        )
    })?;
    if !data_dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "the Azurite writer uploads a directory, but {} is not one",
            data_dir.display()
        )));
    }
    let target = AzuriteTarget {
        blob_endpoint: azurite.internal_endpoint(BLOB_PORT)?,
        ca: azurite.marker::<AzuriteCa>().map(|AzuriteCa(ca)| ca),
    };
    super::deploy(env, name, |site| {
        writer_spec(site, &target, container, &data_dir, &options)
    })
}

/// Where the writer uploads to.
#[derive(Debug, Clone)]
pub(crate) struct AzuriteTarget {
    /// `<host>:<port>` of Azurite's blob service on the environment network.
    pub blob_endpoint: String,
    /// The CA to trust when Azurite serves TLS.
    pub ca: Option<PathBuf>,
}

impl AzuriteTarget {
    /// The development account on this Azurite.
    fn dev_connection_string(&self) -> String {
        match &self.ca {
            None => format!(
                "{AZURITE_DEV_CONNECTION_STRING}BlobEndpoint=http://{}/devstoreaccount1;",
                self.blob_endpoint
            ),
            Some(_) => format!(
                "{}BlobEndpoint=https://{}/devstoreaccount1;",
                AZURITE_DEV_CONNECTION_STRING.replacen(
                    "DefaultEndpointsProtocol=http;",
                    "DefaultEndpointsProtocol=https;",
                    1
                ),
                self.blob_endpoint
            ),
        }
    }
}

/// The writer definition: see [`azurite_writer`].
pub(crate) fn writer_spec(
    site: &Site,
    target: &AzuriteTarget,
    container: &str,
    data_dir: &Path,
    options: &Options,
) -> Result<Spec> {
    validate_container(container)?;
    let source = data_dir.to_str().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "the Azurite writer's data directory {} is not valid UTF-8",
            data_dir.display()
        ))
    })?;
    if !data_dir.is_absolute() || source.contains(':') {
        return Err(Error::InvalidArgument(format!(
            "the Azurite writer's data directory {source:?} must be an absolute path without ':'"
        )));
    }
    let connection = options
        .azurite_connection_string
        .clone()
        .unwrap_or_else(|| target.dev_connection_string());

    // `sh -c SCRIPT NAME ARGS...`: the arguments are `$1`, `$2`, `$3` in the script.
    let command = Command::new("sh")
        .args(["-c", WRITER_SCRIPT, "azurite-writer"])
        .arg(container)
        .arg(connection)
        .arg(site.path(WRITER_DONE))
        .disable_entrypoint();
    let mut start = options
        .start_options(CLI_IMAGE)
        .command(command)
        .volume(format!("{source}:{WRITER_SOURCE}:ro"))
        // The CLI writes its configuration and logs under its config dir; the host user has no
        // home in the image, so both go to the runnable's directory.
        .env("HOME", site.dir.display().to_string())
        .env("AZURE_CONFIG_DIR", site.path(".azure"))
        .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
        .host_user();
    if let Some(ca) = &target.ca {
        // The CLI's HTTP stack (Python requests) trusts this bundle instead of the system's.
        start = start.env("REQUESTS_CA_BUNDLE", ca.display().to_string());
    }
    Ok(Spec::new(start))
}

/// Azure's blob container naming rules.
fn validate_container(container: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid Azure blob container name {container:?}: {reason}"
        )))
    };
    if !(3..=63).contains(&container.len()) {
        return invalid("it must be 3 to 63 characters long");
    }
    if let Some(c) = container
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return invalid(&format!(
            "{c:?} is not allowed; use lowercase letters, digits and '-'"
        ));
    }
    if container.starts_with('-') || container.ends_with('-') || container.contains("--") {
        return invalid("every '-' must be between letters or digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    fn blob_probe(spec: &Spec) -> &HttpProbe {
        match &spec.options.readiness {
            Some(Probe::Http(p)) => p,
            other => panic!("expected an HTTP probe, got {other:?}"),
        }
    }

    fn target(ca: Option<&str>) -> AzuriteTarget {
        AzuriteTarget {
            blob_endpoint: "e2e-test-azurite-1:10000".to_string(),
            ca: ca.map(PathBuf::from),
        }
    }

    #[test]
    fn default_definition() {
        let spec = spec(&site("azurite-1"), &Options::new()).expect("spec");
        assert_eq!(spec.options.image, IMAGE);
        let command = spec.options.command.as_ref().expect("command");
        assert!(
            command.entrypoint_disabled,
            "runs azurite-blob directly, no shell"
        );
        assert_eq!(
            command.to_vec(),
            [
                "azurite-blob",
                "--blobHost=0.0.0.0",
                "--blobPort=10000",
                "--location=/tmp/e2e-test/data/azurite-1",
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ]
        );
        assert_eq!(spec.ports, [("blob".to_string(), 10000)]);
        assert!(spec.options.env.is_empty());
        #[cfg(unix)]
        assert!(spec.options.user.is_some(), "runs as the host user");
        assert!(spec.files.is_empty());

        let probe = blob_probe(&spec);
        assert_eq!(
            (probe.port.as_str(), probe.path.as_str(), probe.https),
            ("blob", "/", false)
        );
        assert_eq!(probe.status, 200..=499);
        assert_eq!(probe.body, None);
    }

    #[test]
    fn accounts_flags_image_and_wait_policy_come_from_options() {
        let policy = crate::wait::WaitPolicy::timeout(std::time::Duration::from_secs(9));
        let options = Options::new()
            .azurite_accounts("acc1:a2V5MQ==;acc2:a2V5Mg==")
            .flag("--loose", "")
            .flag("--blobHost", "::")
            .image("mcr.microsoft.com/azure-storage/azurite:3.34.0")
            .wait_policy(policy);
        let spec = spec(&site("azurite-1"), &options).expect("spec");
        assert_eq!(
            spec.env_vars(),
            [("AZURITE_ACCOUNTS", "acc1:a2V5MQ==;acc2:a2V5Mg==")]
        );
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            [
                "azurite-blob",
                "--blobHost=::",
                "--blobPort=10000",
                "--location=/tmp/e2e-test/data/azurite-1",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--loose",
            ]
        );
        assert_eq!(
            spec.options.image,
            "mcr.microsoft.com/azure-storage/azurite:3.34.0"
        );
        assert_eq!(spec.options.wait_policy, policy);
    }

    #[test]
    #[cfg(feature = "tls")]
    fn tls_serves_generated_certificates_with_oauth() {
        let s = site("azurite-1");
        let spec = spec(&s, &Options::new().tls()).expect("spec");
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            [
                "azurite-blob",
                "--blobHost=0.0.0.0",
                "--blobPort=10000",
                "--location=/tmp/e2e-test/data/azurite-1",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--cert=/tmp/e2e-test/data/azurite-1/certs/cert.pem",
                "--key=/tmp/e2e-test/data/azurite-1/certs/key.pem",
                "--oauth=basic",
            ]
        );
        assert!(blob_probe(&spec).https);
        let mut paths: Vec<&str> = spec.files.iter().map(|(p, _)| p.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            ["certs/CAs/ca.crt", "certs/cert.pem", "certs/key.pem"]
        );
        let cert = spec.file_text("certs/cert.pem").expect("cert");
        let ca = spec.file_text("certs/CAs/ca.crt").expect("ca");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_ne!(cert, ca);
        assert!(spec
            .file_text("certs/key.pem")
            .expect("key")
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn dev_connection_string_points_at_the_internal_blob_endpoint() {
        assert_eq!(
            target(None).dev_connection_string(),
            format!(
                "{AZURITE_DEV_CONNECTION_STRING}BlobEndpoint=http://e2e-test-azurite-1:10000/devstoreaccount1;"
            )
        );
        assert_eq!(
            target(Some("/ca.crt")).dev_connection_string(),
            "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=https://e2e-test-azurite-1:10000/devstoreaccount1;"
        );
        assert!(!AZURITE_DEV_CONNECTION_STRING.contains("BlobEndpoint"));
        assert!(!AZURITE_DEV_CONNECTION_STRING.contains("0.0.0.0"));
    }

    #[test]
    fn writer_uploads_with_positional_arguments_and_no_shell_quoting() {
        let s = site("writer-1");
        let spec = writer_spec(
            &s,
            &target(None),
            "thanos",
            Path::new("/tmp/blocks dir"),
            &Options::new(),
        )
        .expect("spec");
        assert_eq!(spec.options.image, CLI_IMAGE);
        assert!(spec.ports.is_empty());
        assert!(spec.options.readiness.is_none(), "runs to completion");
        let command = spec.options.command.as_ref().expect("command");
        assert!(command.entrypoint_disabled);
        let argv = command.to_vec();
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert_eq!(
            argv[3..],
            [
                "azurite-writer".to_string(),
                "thanos".to_string(),
                format!(
                    "{AZURITE_DEV_CONNECTION_STRING}BlobEndpoint=http://e2e-test-azurite-1:10000/devstoreaccount1;"
                ),
                "/tmp/e2e-test/data/writer-1/uploaded".to_string(),
            ]
        );
        let script = &argv[2];
        assert!(
            script.contains(r#"az storage container create --name "$1" --connection-string "$2""#)
        );
        assert!(script.contains(
            r#"az storage blob upload-batch --destination "$1" --source /shared --overwrite true --connection-string "$2""#
        ));
        assert!(script.starts_with("set -e\n") && script.ends_with(r#"touch "$3""#));
        assert!(!script.contains("thanos") && !script.contains("AccountKey"));

        assert_eq!(spec.options.volumes, ["/tmp/blocks dir:/shared:ro"]);
        assert_eq!(
            spec.env_vars(),
            [
                ("HOME", "/tmp/e2e-test/data/writer-1"),
                ("AZURE_CONFIG_DIR", "/tmp/e2e-test/data/writer-1/.azure"),
                ("AZURE_CORE_COLLECT_TELEMETRY", "false"),
            ]
        );
    }

    #[test]
    #[cfg(feature = "tls")]
    fn writer_trusts_the_ca_of_a_tls_azurite_and_takes_overrides() {
        let s = site("writer-1");
        let tls = writer_spec(
            &s,
            &target(Some("/tmp/e2e-test/data/azurite-1/certs/CAs/ca.crt")),
            "thanos",
            Path::new("/data"),
            &Options::new(),
        )
        .expect("spec");
        assert!(tls.options.env.contains(&(
            "REQUESTS_CA_BUNDLE".to_string(),
            "/tmp/e2e-test/data/azurite-1/certs/CAs/ca.crt".to_string()
        )));
        let argv = tls.options.command.as_ref().expect("command").to_vec();
        assert!(argv[5].contains("BlobEndpoint=https://e2e-test-azurite-1:10000/"));

        let custom = "DefaultEndpointsProtocol=http;AccountName=acc1;AccountKey=a2V5MQ==;BlobEndpoint=http://x:10000/acc1;";
        let spec = writer_spec(
            &s,
            &target(None),
            "thanos",
            Path::new("/data"),
            &Options::new()
                .azurite_connection_string(custom)
                .image("mcr.microsoft.com/azure-cli:2.63.0"),
        )
        .expect("spec");
        let argv = spec.options.command.as_ref().expect("command").to_vec();
        assert_eq!(argv[5], custom);
        assert_eq!(spec.options.image, "mcr.microsoft.com/azure-cli:2.63.0");
    }

    #[test]
    fn writer_rejects_bad_container_names_and_directories() {
        let s = site("writer-1");
        for ok in ["abc", "thanos-blocks-1", &"a".repeat(63)] {
            validate_container(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Thanos",
            "a_b",
            "a.b",
            "-abc",
            "abc-",
            "a--b",
            "x'; rm -rf / #",
        ] {
            match writer_spec(&s, &target(None), bad, Path::new("/data"), &Options::new()) {
                Err(Error::InvalidArgument(msg)) => {
                    assert!(msg.contains("container name"), "{bad:?}: {msg}")
                }
                other => panic!("{bad:?}: expected InvalidArgument, got {other:?}"),
            }
        }
        for bad_dir in ["relative/dir", "/a:b"] {
            match writer_spec(
                &s,
                &target(None),
                "abc",
                Path::new(bad_dir),
                &Options::new(),
            ) {
                Err(Error::InvalidArgument(msg)) => assert!(msg.contains(bad_dir), "{msg}"),
                other => panic!("{bad_dir:?}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
}
