//! The catalog: ready-made runnables for the services scenarios usually need, configured as
//! their upstream projects recommend for tests (fast, in-memory where possible, quiet logs)
//! and with readiness probes that mean "ready to serve".
//!
//! Every entry takes the environment, a runnable name and [`Options`]: the official image is
//! the default, [`Options::image`] replaces it (e.g. with an image built locally) and
//! [`Options::flag`] adds or overrides command-line flags. Entries that expose Prometheus
//! metrics come back [`Instrumented`](crate::Instrumented) (or [`Observable`], metrics plus
//! pprof); they can be linked to before they start through `internal_endpoint`.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo() -> e2ekit::Result<()> {
//! let env = Environment::new().await?;
//! let prom = db::prometheus(&env, "prom-1", db::Options::new())?;
//! let etcd = db::etcd(&env, "etcd-1", db::Options::new().flag("--log-level", "info"))?;
//! let mc = db::memcached(&env, "mc-1", db::Options::new().image("memcached:1.6.29"))?;
//! start_and_wait_ready(&[&prom, &etcd, &mc]).await?;
//!
//! // Since Prometheus 2.40 this counter appears only with the first sample: wait for it to
//! // appear rather than fail at once because it is missing.
//! prom.wait_sum_metrics_with(
//!     greater(0.0),
//!     ["prometheus_tsdb_head_samples_appended_total"],
//!     MetricsOptions::new().wait_missing_metrics(),
//! )
//! .await?;
//! println!("memcached at {}", mc.endpoint(db::ACCESS_PORT)?);
//! # Ok(()) }
//! ```
//!
//! Default images (with their tags) are in [`images`].
//!
//! | Entry | Default image | Returns |
//! |---|---|---|
//! | [`prometheus`] | `quay.io/prometheus/prometheus` | [`Prometheus`] (instrumented, `set_config`) |
//! | [`minio`] | `minio/minio` | [`Instrumented`](crate::Instrumented) |
//! | [`consul`] | `consul` | [`Instrumented`](crate::Instrumented) |
//! | [`etcd`] | `gcr.io/etcd-development/etcd` | [`Instrumented`](crate::Instrumented) on `"metrics"` |
//! | [`memcached`] | `memcached` | [`Runnable`](crate::Runnable) |
//! | [`dynamodb`] | `amazon/dynamodb-local` | [`Runnable`](crate::Runnable) |
//! | [`bigtable`] | `shopify/bigtable-emulator` | [`Runnable`](crate::Runnable) |
//! | [`cassandra`] | `rinscy/cassandra` | [`Runnable`](crate::Runnable) |
//! | [`swift`] | `bouncestorage/swift-aio` | [`Runnable`](crate::Runnable) |
//! | [`azurite`], [`azurite_writer`] | `mcr.microsoft.com/azure-storage/azurite`, `mcr.microsoft.com/azure-cli` | [`Runnable`](crate::Runnable) |
//! | [`thanos_querier`], [`thanos_sidecar`], [`thanos_store`] | `quay.io/thanos/thanos` | [`Observable`] |
//! | [`jaeger`] | `jaegertracing/all-in-one` | [`Instrumented`](crate::Instrumented) on `"admin"` |
//! | [`parca`] | `ghcr.io/parca-dev/parca` | [`Parca`] (instrumented) |
//! | [`alertmanager`] | `quay.io/prometheus/alertmanager` | [`Instrumented`](crate::Instrumented) |
//! | [`pushgateway`] | `quay.io/prometheus/pushgateway` | [`Instrumented`](crate::Instrumented) |
//! | [`node_exporter`] | `quay.io/prometheus/node-exporter` | [`Instrumented`](crate::Instrumented) |
//! | [`exporter`] | yours | [`Instrumented`](crate::Instrumented) |
//! | [`registry`] | `registry` | [`Registry`] (instrumented on `"debug"`, `push`) |
//! | [`redis()`] | `redis` | [`Redis`] (URL, password; optional exporter) |
//! | [`postgres()`] | `postgres` | [`Postgres`] (URL, credentials; optional exporter) |
//! | [`mariadb()`] | `mariadb` | [`MariaDb`] (URL, credentials; optional exporter) |
//!
//! Without registry access, [`HostImage::debian_package`](crate::HostImage::debian_package)
//! packs an installed Debian package into an image (link its binary where the official image
//! has it: `.symlink("/bin/alertmanager", "/usr/bin/prometheus-alertmanager")`). The
//! database servers have ready-made stand-ins in the official layouts:
//! [`redis::debian_image`], [`postgres::debian_image`], [`mariadb::debian_image`].

mod azurite;
#[cfg(feature = "tls")]
mod certs;
#[cfg(not(feature = "tls"))]
#[path = "certs_disabled.rs"]
mod certs;
mod exporters;
pub mod images;
mod minio;
mod parca;
mod prometheus;
mod registry;
mod site;
mod stores;
mod thanos;
mod tracing_backend;
// The database servers test authors reach for first (issue 13).
pub mod mariadb;
pub mod postgres;
pub mod redis;
mod servers;

use std::fmt;

use crate::spec::Flags;
use crate::spec::StartOptions;
use crate::wait::WaitPolicy;

pub use self::mariadb::{mariadb, MariaDb};
pub use self::postgres::{postgres, Postgres};
pub use self::redis::{redis, Redis};
pub use crate::profiling::{Observable, Parca};
pub use crate::prometheus::config::{
    target_groups, AlertingConfig, AlertmanagersConfig, FileSdConfig, GlobalConfig,
    PrometheusConfig, RemoteWriteConfig, ScrapeConfig, StaticConfig,
};
pub use crate::prometheus::server::Prometheus;
pub use azurite::{azurite, azurite_writer, AZURITE_DEV_CONNECTION_STRING};
#[cfg(feature = "tls")]
pub use certs::Certificates;
pub use exporters::{alertmanager, exporter, node_exporter, pushgateway, ALERTMANAGER_CONFIG};
pub use minio::{minio, MINIO_ACCESS_KEY, MINIO_SECRET_KEY};
pub use parca::parca;
pub use prometheus::prometheus;
pub use registry::{registry, Registry, REGISTRY_METRICS_PORT};
pub use stores::{
    bigtable, cassandra, consul, dynamodb, etcd, memcached, swift, ETCD_METRICS_PORT,
};
pub use thanos::{thanos_querier, thanos_sidecar, thanos_store};
pub use tracing_backend::jaeger;

pub(crate) use site::{deploy, Site, Spec};

/// The name of the port every catalog entry serves its main protocol on (upstream's
/// `AccessPortName`), so scenarios can link to any of them the same way.
pub const ACCESS_PORT: &str = "http";

/// Options shared by every catalog entry. Anything an entry does not use is ignored.
#[derive(Clone, Default)]
pub struct Options {
    pub(crate) image: Option<String>,
    pub(crate) flags: Flags,
    pub(crate) wait_policy: Option<WaitPolicy>,
    pub(crate) tls: bool,
    pub(crate) sse: bool,
    pub(crate) azurite_accounts: Option<String>,
    pub(crate) azurite_connection_string: Option<String>,
    /// Credentials, database and exporter of the database servers (`servers.rs`).
    pub(crate) server: servers::ServerOptions,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("image", &self.image)
            .field("flags", &self.flags)
            .field("wait_policy", &self.wait_policy)
            .field("tls", &self.tls)
            .field("sse", &self.sse)
            .field(
                "azurite_accounts",
                &self.azurite_accounts.as_ref().map(|_| "…"),
            )
            .field(
                "azurite_connection_string",
                &self.azurite_connection_string.as_ref().map(|_| "…"),
            )
            .field("server", &self.server)
            .finish()
    }
}

impl Options {
    /// The defaults: official image, the entry's own flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs this image instead of the official one (it must keep the official layout: the
    /// same binary paths and entrypoint).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Sets one flag (`"--log.level", "debug"`), replacing the entry's default for that key in
    /// place; an empty value renders a bare flag.
    pub fn flag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.flags.insert(key, value);
        self
    }

    /// Sets several flags at once, as [`Options::flag`] does.
    pub fn flags(mut self, flags: Flags) -> Self {
        self.flags = self.flags.merge(&flags);
        self
    }

    /// How long and how often to wait for readiness (slow starters such as Cassandra have a
    /// longer default).
    pub fn wait_policy(mut self, policy: WaitPolicy) -> Self {
        self.wait_policy = Some(policy);
        self
    }

    /// Serves over TLS with certificates generated for the runnable's internal name (MinIO,
    /// Azurite). The CA is in `<dir>/certs/CAs/ca.crt`.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Enables server-side encryption with a generated static key (MinIO).
    pub fn sse(mut self) -> Self {
        self.sse = true;
        self
    }

    /// Custom storage accounts (`AZURITE_ACCOUNTS`, `account1:key1;account2:key2`).
    pub fn azurite_accounts(mut self, accounts: impl Into<String>) -> Self {
        self.azurite_accounts = Some(accounts.into());
        self
    }

    /// The connection string the Azurite writer uses (default: the development account on
    /// the Azurite it is given).
    pub fn azurite_connection_string(mut self, connection: impl Into<String>) -> Self {
        self.azurite_connection_string = Some(connection.into());
        self
    }

    /// Start options for the override image or the entry's official default, with the
    /// user's wait policy if any.
    pub(crate) fn start_options(&self, default_image: &str) -> StartOptions {
        let image = self.image.as_deref().unwrap_or(default_image);
        let start = StartOptions::new(image);
        match self.wait_policy {
            Some(policy) => start.wait_policy(policy),
            None => start,
        }
    }

    /// The entry's default flags with the user's overrides applied.
    pub(crate) fn merged_flags(&self, defaults: Flags) -> Flags {
        defaults.merge(&self.flags)
    }
}
