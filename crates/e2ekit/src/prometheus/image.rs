//! Which Prometheus image runs: the official one, or one packed from the host's Prometheus
//! when the official one cannot be pulled (machines without registry access).

use std::path::Path;

use crate::env::Environment;
use crate::error::{Error, Result};
use crate::host::HostImage;

/// The official image. Public as `db::images::PROMETHEUS`, its one public name.
pub const DEFAULT_IMAGE: &str = "quay.io/prometheus/prometheus:v2.53.0";
/// The Prometheus of Debian's `prometheus` package, packed when the official image is absent.
const HOST_BINARY: &str = "/usr/bin/prometheus";
const HOST_WEB_ASSETS: &str = "/usr/share/prometheus/web";

/// `requested` if given; else the official image if present or pullable; else one built from
/// the host's Prometheus (for runnable `runnable`, named in errors).
pub(crate) async fn resolve(
    env: &Environment,
    runnable: &str,
    requested: Option<&str>,
) -> Result<String> {
    if let Some(image) = requested {
        return Ok(image.to_string());
    }
    match env
        .core()
        .backend
        .ensure_image(DEFAULT_IMAGE, runnable)
        .await
    {
        Ok(()) => Ok(DEFAULT_IMAGE.to_string()),
        Err(pull_error) => {
            if !Path::new(HOST_BINARY).is_file() {
                return Err(Error::ImageNotFound {
                    runnable: runnable.to_string(),
                    image: DEFAULT_IMAGE.to_string(),
                    reason: format!(
                        "{pull_error}; and no host Prometheus at {HOST_BINARY} to build one from (apt-get install prometheus)"
                    ),
                });
            }
            eprintln!(
                "e2ekit: cannot pull {DEFAULT_IMAGE} ({pull_error}); building an equivalent image from the host's {HOST_BINARY} (Debian package prometheus)"
            );
            host_image().build(env).await
        }
    }
}

/// An image with the host's Prometheus (Debian's `prometheus` package) in the official
/// image's layout (`/bin/prometheus`, on the `PATH`), for machines without registry access:
/// give it to `db::Options::image` or `MonitoringOptions::prometheus_image`.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let image = e2ekit::prometheus::host_image().build(env).await?;
/// let prom = db::prometheus(env, "prom-1", db::Options::new().image(image))?;
/// # let _ = prom;
/// # Ok(()) }
/// ```
pub fn host_image() -> HostImage {
    let mut image = HostImage::new("e2ekit/prometheus")
        .binary_at(HOST_BINARY, "/bin/prometheus")
        .dir("/prometheus")
        .dir("/etc/prometheus");
    if Path::new(HOST_WEB_ASSETS).is_dir() {
        image = image.file(HOST_WEB_ASSETS, HOST_WEB_ASSETS);
    }
    image
}
