//! A container registry the scenario runs itself (the distribution registry, `registry:2`),
//! so the pull path can be tested without any public registry.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let registry = db::registry(env, "registry", db::Options::new())?;
//! registry.runnable().start().await?;
//! registry.runnable().wait_ready().await?;
//! // Tag a local image into the registry and push it; the engine can then pull it back.
//! let pushed = registry.push("e2ekit/demo-app:latest").await?;
//! let app = env.runnable("app").init(StartOptions::new(pushed))?; // pulled at start
//! # Ok(()) }
//! ```

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::{images, Options, Site, Spec, ACCESS_PORT};
use crate::engine::Backend;
use crate::env::{AsRunnable, Environment, Runnable};
use crate::error::{Error, Result};
use crate::metrics::Instrumented;
use crate::spec::reference::split_image;
use crate::spec::{Command, HttpProbe};

/// The port name of the registry's debug server, where its Prometheus metrics are.
pub const REGISTRY_METRICS_PORT: &str = "debug";

/// A registry runnable: instrumented on [`REGISTRY_METRICS_PORT`], with [`Registry::push`].
#[derive(Clone)]
pub struct Registry {
    instrumented: Instrumented,
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("runnable", &self.instrumented.runnable().name())
            .finish_non_exhaustive()
    }
}

impl Deref for Registry {
    type Target = Instrumented;
    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for Registry {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}

/// The distribution registry on [`ACCESS_PORT`] (5000), storing in the runnable's directory,
/// without authentication, deletes allowed; metrics on [`REGISTRY_METRICS_PORT`] (5001).
/// Ready when `/v2/` answers. A custom image must have `/bin/registry`, as the official one
/// does (Debian's `docker-registry` package: link `/bin/registry` to
/// `/usr/bin/docker-registry`).
pub fn registry(env: &Environment, name: &str, options: Options) -> Result<Registry> {
    Registry::deploy(env, name, options, None)
}

pub(crate) fn registry_spec(
    site: &Site,
    options: &Options,
    htpasswd: Option<&str>,
) -> Result<Spec> {
    let mut config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: :5000\n  debug:\n    addr: :5001\n    prometheus:\n      enabled: true\n      path: /metrics\n",
        site.path("data")
    );
    if htpasswd.is_some() {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: e2ekit\n    path: {}\n",
            site.path("htpasswd")
        ));
    }
    // With authentication, /v2/ answers 401 to anonymous requests once it serves.
    let ready = match htpasswd {
        Some(_) => HttpProbe::new(ACCESS_PORT, "/v2/").status(401..=401),
        None => HttpProbe::new(ACCESS_PORT, "/v2/"),
    };
    let start = options
        .start_options(images::REGISTRY)
        .command(
            Command::new("/bin/registry")
                .args(["serve".to_string(), site.path("config.yml")])
                .disable_entrypoint(),
        )
        .readiness(ready)
        .host_user();
    let spec = Spec::new(start)
        .port(ACCESS_PORT, 5000)
        .port(REGISTRY_METRICS_PORT, 5001)
        .file("config.yml", config)
        .dir("data");
    Ok(match htpasswd {
        Some(text) => spec.file("htpasswd", text),
        None => spec,
    })
}

impl Registry {
    /// [`registry`] requiring authentication: every request needs HTTP basic credentials
    /// listed in `htpasswd`, an htpasswd file's content with bcrypt entries (the only kind
    /// the registry accepts), one `user:hash` a line, as `htpasswd -Bbn user password`
    /// prints. Ready when `/v2/` answers 401 to the anonymous probe.
    ///
    /// Pushes and pulls then need credentials for [`Registry::address`], which e2ekit reads
    /// where the Docker CLI keeps them: `DOCKER_AUTH_CONFIG` or `$DOCKER_CONFIG/config.json`
    /// (`auths`, `credHelpers`, `credsStore`).
    ///
    /// ```no_run
    /// # async fn demo(env: &e2ekit::Environment) -> e2ekit::Result<()> {
    /// let htpasswd = "ci:$2y$05$…\n"; // htpasswd -Bbn ci secret
    /// let registry = e2ekit::db::Registry::with_htpasswd(
    ///     env,
    ///     "registry",
    ///     e2ekit::db::Options::new(),
    ///     htpasswd,
    /// )?;
    /// # let _ = registry;
    /// # Ok(()) }
    /// ```
    pub fn with_htpasswd(
        env: &Environment,
        name: &str,
        options: Options,
        htpasswd: impl Into<String>,
    ) -> Result<Registry> {
        let htpasswd = htpasswd.into();
        if !htpasswd.lines().any(|l| l.contains(':')) {
            return Err(Error::InvalidArgument(format!(
                "registry {name:?}: the htpasswd content has no `user:hash` line (make one with `htpasswd -Bbn user password`)"
            )));
        }
        Self::deploy(env, name, options, Some(htpasswd))
    }

    fn deploy(
        env: &Environment,
        name: &str,
        options: Options,
        htpasswd: Option<String>,
    ) -> Result<Registry> {
        let runnable = super::deploy(env, name, |site| {
            registry_spec(site, &options, htpasswd.as_deref())
        })?;
        Ok(Registry {
            instrumented: Instrumented::new(runnable, REGISTRY_METRICS_PORT)?,
            backend: env.core().backend.clone(),
        })
    }

    /// Where the engine reaches this registry, for image references: its published port on
    /// the engine's own loopback (`127.0.0.1:<port>`), which engines accept over plain HTTP
    /// without an `insecure-registries` setting.
    pub fn address(&self) -> Result<String> {
        let endpoint = self.instrumented.runnable().endpoint(ACCESS_PORT)?;
        let port = endpoint.rsplit_once(':').map(|(_, p)| p).ok_or_else(|| {
            Error::Unexpected(format!("the registry's endpoint {endpoint:?} has no port"))
        })?;
        Ok(format!("127.0.0.1:{port}"))
    }

    /// Tags the local image `image` (`repo:tag`, or `repo` for `latest`) into this registry
    /// and pushes it; returns the reference to pull it by (`127.0.0.1:<port>/repo:tag`).
    pub async fn push(&self, image: &str) -> Result<String> {
        let (repo, tag) = split_image(image);
        // A registry host in the local name is replaced by this registry.
        let path = match repo.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
            _ => repo,
        };
        let target = format!("{}/{path}", self.address()?);
        self.backend.tag_image(image, &target, tag).await?;
        let reference = format!("{target}:{tag}");
        self.backend.push_image(&reference).await?;
        Ok(reference)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_registry_stores_in_its_directory_and_serves_metrics() {
        let site = Site {
            env: "e".into(),
            name: "reg".into(),
            dir: PathBuf::from("/tmp/e2e/data/reg"),
        };
        let spec = registry_spec(&site, &Options::new(), None).expect("spec");
        let args = spec.options.command.as_ref().expect("command").to_vec();
        assert_eq!(
            args,
            ["/bin/registry", "serve", "/tmp/e2e/data/reg/config.yml"]
        );
        let config = spec.file_text("config.yml").expect("config");
        assert!(
            config.contains("rootdirectory: /tmp/e2e/data/reg/data"),
            "{config}"
        );
        assert!(
            config.contains("prometheus:\n      enabled: true"),
            "{config}"
        );
        assert_eq!(spec.options.image(), images::REGISTRY);
        assert!(!config.contains("auth:"), "{config}");
        assert!(spec.file_text("htpasswd").is_none());
    }

    #[test]
    fn with_htpasswd_the_registry_requires_basic_auth_from_its_file() {
        let site = Site {
            env: "e".into(),
            name: "reg".into(),
            dir: PathBuf::from("/tmp/e2e/data/reg"),
        };
        let line = "ci:$2y$05$abcdefghijklmnopqrstuu\n";
        let spec = registry_spec(&site, &Options::new(), Some(line)).expect("spec");
        let config = spec.file_text("config.yml").expect("config");
        assert!(
            config.contains(
                "auth:\n  htpasswd:\n    realm: e2ekit\n    path: /tmp/e2e/data/reg/htpasswd\n"
            ),
            "{config}"
        );
        assert_eq!(spec.file_text("htpasswd").as_deref(), Some(line));
    }
}
