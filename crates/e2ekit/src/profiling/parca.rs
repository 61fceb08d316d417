//! Parca, the continuous profiler: its definition (used by [`crate::profiling::start`] and by
//! the catalog's `db::parca`), and its configuration file.
//!
//! Parca watches its configuration file and reloads it when it changes, including when the
//! file is replaced, so scrape jobs are set by rewriting the file atomically (temporary file
//! plus rename): Parca reads the old or the new configuration, never half of one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::profiled::Target;
use crate::env::Environment;
use crate::env::{AsRunnable, Runnable};
use crate::error::{Error, Result};
use crate::host::fs::open_permissions;
use crate::metrics::Instrumented;
use crate::prometheus::config::duration;
use crate::spec::{Command, Flags, HttpProbe, StartOptions};

/// Parca's official image, pinned.
pub const PARCA_IMAGE: &str = "ghcr.io/parca-dev/parca:v0.22.0";
/// Parca's HTTP port (UI, API, gRPC and `/metrics`).
const HTTP_PORT: u16 = 7070;
/// Its name (the catalog's `ACCESS_PORT`).
pub(crate) const PORT_NAME: &str = "http";
/// The configuration file, in the runnable's directory.
const CONFIG_FILE: &str = "parca.yml";
/// Where Parca's filesystem bucket (debug information) lives, in the runnable's directory.
const DATA_DIR: &str = "data";

/// A Parca server: instrumented on `"http"`, with scrape jobs set by
/// [`Parca::set_scrape_configs`]. [`crate::profiling::start`] runs one that follows every
/// profiled runnable by itself; the catalog's `db::parca` defines one to configure yourself.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment, app: Runnable) -> e2ekit::Result<()> {
/// let parca = db::parca(env, "parca", db::Options::new())?;
/// parca.set_scrape_configs([serde_json::json!({
///     "job_name": "app",
///     "scrape_interval": "5s",
///     "static_configs": [{"targets": [app.internal_endpoint("http")?]}],
/// })])?;
/// start_and_wait_ready(&[&parca]).await?;
/// println!("Parca UI: http://{}", parca.endpoint("http")?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Parca {
    instrumented: Instrumented,
    config: ConfigFile,
}

/// Defines Parca (not started): the image's `/parca` (`base` gives the image and wait policy)
/// with `--config-path` pointing at a configuration with filesystem object storage in its
/// directory and no scrape jobs, as the host user; `overrides` replace or add flags. Ready
/// once its HTTP server answers `/metrics` (Parca has no HTTP health path; its health is
/// gRPC only, marked serving right before the HTTP server starts).
pub(crate) fn define(
    env: &Environment,
    name: &str,
    base: StartOptions,
    overrides: &Flags,
) -> Result<Parca> {
    let future = env
        .runnable(name)
        .with_ports([(PORT_NAME, HTTP_PORT)])
        .future()?;
    let dir = future.dir().to_path_buf();
    let data = dir.join(DATA_DIR);
    std::fs::create_dir_all(&data).map_err(|e| {
        Error::io(
            format!("creating {} for runnable {name:?}", data.display()),
            e,
        )
    })?;
    open_permissions(&data);
    let config = ConfigFile::new(dir.join(CONFIG_FILE), base_config(&dir));
    config.set_scrape_configs(&[])?;
    let runnable = future.init(start_options(&dir, base, overrides))?;
    Ok(Parca {
        instrumented: Instrumented::new(runnable, PORT_NAME)?,
        config,
    })
}

/// Parca's start options, for a Parca whose files live in `dir`.
pub(crate) fn start_options(dir: &Path, base: StartOptions, overrides: &Flags) -> StartOptions {
    let flags = Flags::new()
        .with("--config-path", dir.join(CONFIG_FILE).display().to_string())
        .with("--http-address", format!(":{HTTP_PORT}"))
        .merge(overrides);
    base.command(Command::new("/parca").args(flags.to_args()))
        .host_user()
        .readiness(HttpProbe::new(PORT_NAME, "/metrics"))
}

/// The configuration without scrape jobs: debug information kept on the filesystem, in the
/// runnable's directory.
fn base_config(dir: &Path) -> Value {
    json!({
        "object_storage": {
            "bucket": {
                "type": "FILESYSTEM",
                "config": {"directory": dir.join(DATA_DIR).display().to_string()},
            },
        },
    })
}

/// The configuration file's content: the base plus the scrape jobs (JSON, which is YAML).
pub(crate) fn config_text(base: &Value, scrape_configs: &[Value]) -> String {
    let mut config = base.clone();
    if let Some(map) = config.as_object_mut() {
        map.insert(
            "scrape_configs".to_string(),
            Value::Array(scrape_configs.to_vec()),
        );
    }
    let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
    text.push('\n');
    text
}

/// One scrape job per profiled target: named after the runnable, scraping its internal
/// endpoint with its scheme (TLS not verified) and its profiling configuration.
pub(crate) fn scrape_configs(targets: &[Target], interval: Duration) -> Vec<Value> {
    targets
        .iter()
        .map(|t| {
            let mut job = json!({
                "job_name": t.name,
                "scrape_interval": duration(interval),
                "scheme": t.scheme,
                "static_configs": [{"targets": [t.endpoint]}],
                "tls_config": {"insecure_skip_verify": true},
            });
            if let (Some(config), Some(map)) = (&t.config, job.as_object_mut()) {
                map.insert("profiling_config".to_string(), config.clone());
            }
            job
        })
        .collect()
}

/// Parca's configuration file, shared by the runnable and the profiling listener. It holds no
/// runnable, so a listener keeping it does not keep the environment alive.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    path: PathBuf,
    base: Value,
    /// Serialises rewrites and remembers the last content written (to skip no-op rewrites,
    /// each of which would make Parca reload).
    last: Arc<Mutex<Option<String>>>,
}

impl ConfigFile {
    fn new(path: PathBuf, base: Value) -> Self {
        Self {
            path,
            base,
            last: Arc::default(),
        }
    }

    /// Replaces the scrape jobs, atomically.
    pub(crate) fn set_scrape_configs(&self, scrape_configs: &[Value]) -> Result<()> {
        let text = config_text(&self.base, scrape_configs);
        let mut last = crate::host::fs::lock(&self.last);
        if last.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        crate::host::fs::write_atomically(&self.path, &text)?;
        *last = Some(text);
        Ok(())
    }
}

impl Parca {
    /// Replaces the scrape jobs (Parca's `scrape_configs` entries, as its configuration
    /// documents them), keeping the object storage. Parca notices the change itself; a
    /// running Parca applies it within moments, a stopped one when it starts.
    pub fn set_scrape_configs<I>(&self, scrape_configs: I) -> Result<()>
    where
        I: IntoIterator<Item = Value>,
    {
        let jobs: Vec<Value> = scrape_configs.into_iter().collect();
        self.config.set_scrape_configs(&jobs)
    }

    /// The configuration file's path.
    pub fn config_path(&self) -> &Path {
        &self.config.path
    }

    /// The instrumented runnable.
    pub fn instrumented(&self) -> &Instrumented {
        &self.instrumented
    }

    pub(crate) fn config_file(&self) -> &ConfigFile {
        &self.config
    }
}

impl std::ops::Deref for Parca {
    type Target = Instrumented;
    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for Parca {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Probe;

    fn target(name: &str, scheme: &str, config: Option<Value>) -> Target {
        Target {
            name: name.to_string(),
            endpoint: format!("e2e-test-{name}:8080"),
            scheme: scheme.to_string(),
            config,
        }
    }

    #[test]
    fn parca_runs_with_its_config_file_as_the_host_user() {
        let dir = Path::new("/tmp/e2e-test/data/parca");
        let opts = start_options(dir, StartOptions::new(PARCA_IMAGE), &Flags::new());
        assert_eq!(opts.image, PARCA_IMAGE);
        assert_eq!(
            opts.command.as_ref().expect("command").to_vec(),
            [
                "/parca",
                "--config-path=/tmp/e2e-test/data/parca/parca.yml",
                "--http-address=:7070",
            ]
        );
        assert!(opts.user.is_some(), "runs as the host user");
        match &opts.readiness {
            Some(Probe::Http(p)) => {
                let text = format!("{p:?}");
                assert!(
                    text.contains("\"http\"") && text.contains("\"/metrics\""),
                    "{text}"
                );
            }
            other => panic!("expected an HTTP probe, got {other:?}"),
        }
        let config: Value =
            serde_json::from_str(&config_text(&base_config(dir), &[])).expect("json");
        assert_eq!(
            config,
            json!({
                "object_storage": {"bucket": {
                    "type": "FILESYSTEM",
                    "config": {"directory": "/tmp/e2e-test/data/parca/data"},
                }},
                "scrape_configs": [],
            })
        );
    }

    #[test]
    fn overrides_replace_or_add_flags() {
        let overrides = Flags::new()
            .with("--log-level", "debug")
            .with("--http-address", ":7071");
        let opts = start_options(
            Path::new("/tmp/e2e-test/data/parca"),
            StartOptions::new("parca:dev"),
            &overrides,
        );
        assert_eq!(opts.image, "parca:dev");
        assert_eq!(
            opts.command.as_ref().expect("command").args,
            [
                "--config-path=/tmp/e2e-test/data/parca/parca.yml",
                "--http-address=:7071",
                "--log-level=debug",
            ]
        );
    }

    #[test]
    fn scrape_configs_have_one_job_per_target() {
        let jobs = scrape_configs(
            &[
                target("app", "http", None),
                target(
                    "secure",
                    "https",
                    Some(
                        json!({"pprof_config": {"fgprof": {"enabled": true, "path": "/debug/fgprof"}}}),
                    ),
                ),
            ],
            Duration::from_secs(5),
        );
        let text = config_text(&base_config(Path::new("/d")), &jobs);
        assert_eq!(
            text,
            r#"{
  "object_storage": {
    "bucket": {
      "config": {
        "directory": "/d/data"
      },
      "type": "FILESYSTEM"
    }
  },
  "scrape_configs": [
    {
      "job_name": "app",
      "scheme": "http",
      "scrape_interval": "5s",
      "static_configs": [
        {
          "targets": [
            "e2e-test-app:8080"
          ]
        }
      ],
      "tls_config": {
        "insecure_skip_verify": true
      }
    },
    {
      "job_name": "secure",
      "profiling_config": {
        "pprof_config": {
          "fgprof": {
            "enabled": true,
            "path": "/debug/fgprof"
          }
        }
      },
      "scheme": "https",
      "scrape_interval": "5s",
      "static_configs": [
        {
          "targets": [
            "e2e-test-secure:8080"
          ]
        }
      ],
      "tls_config": {
        "insecure_skip_verify": true
      }
    }
  ]
}
"#
        );
    }

    #[test]
    fn the_config_file_is_replaced_atomically_and_only_on_change() {
        let dir = std::env::temp_dir().join(format!("e2ekit-parca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("parca.yml");
        let file = ConfigFile::new(path.clone(), base_config(&dir));
        let jobs = scrape_configs(&[target("a", "http", None)], Duration::from_secs(1));
        file.set_scrape_configs(&jobs).expect("write");
        let first = std::fs::read_to_string(&path).expect("read");
        assert!(first.contains("e2e-test-a:8080"));
        assert!(!dir.join("parca.yml.tmp").exists());

        // An unchanged configuration is not rewritten (Parca would reload for nothing).
        std::fs::write(&path, "changed behind our back").expect("write");
        file.set_scrape_configs(&jobs).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "changed behind our back"
        );
        file.set_scrape_configs(&[]).expect("write");
        let emptied: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(emptied["scrape_configs"], json!([]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
