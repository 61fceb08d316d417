//! Redis from its official image (`redis`), optionally password-protected
//! (`--requirepass`), ready once `PING` is answered `PONG`, with an optional Prometheus
//! exporter beside it.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let cache = db::redis(env, "cache", db::Options::new().password("s3cret"))?;
//! start_and_wait_ready(&[&cache]).await?;
//! // redis://:s3cret@127.0.0.1:<port>/0, for the redis crate or any other client.
//! println!("{}", cache.url()?);
//! # Ok(()) }
//! ```
//!
//! Without registry access, [`debian_image`] packs Debian's Redis in the official image's
//! layout.

use std::fmt;
use std::ops::Deref;

use super::servers::{self, ExporterSpec, Server};
use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::{AsRunnable, Environment, Runnable};
use crate::error::{Error, Result};
use crate::host::HostImage;
use crate::metrics::Instrumented;
use crate::spec::{CmdProbe, Command, Flags};

/// The official image [`redis()`](super::redis()) runs by default.
pub const IMAGE: &str = "redis:7.4";
/// The exporter image [`Options::exporter`] runs by default (the community exporter the
/// Redis documentation points to).
pub const EXPORTER_IMAGE: &str = "oliver006/redis_exporter:v1.62.0";
/// The server's port in the container (named [`ACCESS_PORT`]).
pub const PORT: u16 = 6379;
/// The exporter's metrics port in its container.
pub const EXPORTER_PORT: u16 = 9121;

/// A Redis server: the runnable (through `Deref`), its password, the URLs that reach it,
/// and its exporter if asked for.
#[derive(Clone)]
pub struct Redis {
    server: Server,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Redis").field(&self.server).finish()
    }
}

impl Deref for Redis {
    type Target = Runnable;
    fn deref(&self) -> &Runnable {
        &self.server.runnable
    }
}

impl AsRunnable for Redis {
    fn as_runnable(&self) -> &Runnable {
        &self.server.runnable
    }
}

impl Redis {
    /// The server's runnable.
    pub fn runnable(&self) -> &Runnable {
        &self.server.runnable
    }

    /// `redis://:password@host:port/db` (or `redis://host:port/db` without a password) from
    /// the test process. Errors when the server is not running.
    pub fn url(&self) -> Result<String> {
        let endpoint = self.server.runnable.endpoint(ACCESS_PORT)?;
        Ok(self.server.url("redis", &endpoint))
    }

    /// The same URL as other runnables of the environment reach the server.
    pub fn internal_url(&self) -> Result<String> {
        let endpoint = self.server.runnable.internal_endpoint(ACCESS_PORT)?;
        Ok(self.server.url("redis", &endpoint))
    }

    /// The host and port the test process connects to. Errors when the server is not
    /// running.
    pub fn host_port(&self) -> Result<(String, u16)> {
        servers::host_port(&self.server.runnable)
    }

    /// The password (`--requirepass`), if one was set.
    pub fn password(&self) -> Option<&str> {
        Some(self.server.password.as_str()).filter(|p| !p.is_empty())
    }

    /// The database number the URLs select (`0` unless [`Options::database`] said
    /// otherwise).
    pub fn database(&self) -> &str {
        &self.server.database
    }

    /// The exporter runnable (`<name>-exporter`), instrumented, when [`Options::exporter`]
    /// asked for it. Start it with the server; it reports `redis_up`.
    pub fn exporter(&self) -> Option<&Instrumented> {
        self.server.exporter.as_ref()
    }
}

/// Redis on [`ACCESS_PORT`] (6379), in memory (no snapshots, no append-only file), with
/// [`Options::password`] as `--requirepass` (none by default) and [`Options::database`] the
/// database number its URLs select (default `0`). [`Options::user`] is refused (Redis has
/// only its `default` user here). [`Options::flag`] sets configuration directives, each
/// passed as two arguments (`("--maxmemory", "64mb")`; an empty value stays an empty
/// argument, as `--save ""` needs). Ready once `redis-cli PING` inside the container gets
/// `PONG`.
///
/// A custom image must keep the official layout: `redis-server` and `redis-cli` on `PATH`
/// and an entrypoint that runs its arguments.
pub fn redis(env: &Environment, name: &str, options: Options) -> Result<Redis> {
    let database = options.database_or("0");
    check_options(name, &options, &database)?;
    servers::check_exporter_name(env, name, &options)?;
    let password = options.server.password.clone().unwrap_or_default();
    let runnable = super::deploy(env, name, |site| redis_spec(site, &options))?;
    let mut server = Server {
        runnable,
        user: String::new(),
        password,
        database,
        exporter: None,
    };
    if options.server.exporter {
        let address = format!(
            "redis://{}",
            server.runnable.internal_endpoint(ACCESS_PORT)?
        );
        let password = server.password.clone();
        server.exporter = Some(servers::deploy_exporter(env, name, &options, |_site| {
            exporter_spec(&options, address, password)
        })?);
    }
    Ok(Redis { server })
}

fn check_options(name: &str, options: &Options, database: &str) -> Result<()> {
    if let Some(user) = options.server.user.as_deref().filter(|u| *u != "default") {
        return Err(Error::InvalidArgument(format!(
            "redis runnable {name:?}: user {user:?} is not supported; Redis runs with its \
             `default` user and Options::password"
        )));
    }
    if database.parse::<u16>().is_err() {
        return Err(Error::InvalidArgument(format!(
            "redis runnable {name:?}: the database must be a number (0-15 by default), not {database:?}"
        )));
    }
    if let Some(password) = &options.server.password {
        servers::check_value(name, "password", password)?;
    }
    Ok(())
}

pub(crate) fn redis_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let mut defaults = Flags::new()
        .with("--port", PORT.to_string())
        // In memory: tests start from nothing and need nothing kept.
        .with("--save", "")
        .with("--appendonly", "no");
    if let Some(password) = &options.server.password {
        defaults = defaults.with("--requirepass", password.clone());
    }
    let flags = options.merged_flags(defaults);
    let mut args = Vec::with_capacity(flags.len() * 2);
    for (k, v) in flags.iter() {
        args.push(k.to_string());
        args.push(v.to_string());
    }
    let mut start = options
        .start_options(IMAGE)
        .command(Command::new("redis-server").args(args))
        // PONG, not just an open port: a server still loading answers `-LOADING`.
        .readiness(CmdProbe::new(Command::sh(
            "redis-cli -h 127.0.0.1 -p 6379 PING | grep -q PONG",
        )));
    if let Some(password) = &options.server.password {
        // redis-cli (the probe, and anyone's `exec`) authenticates from this variable,
        // which keeps the password out of the probe's command line.
        start = start.env("REDISCLI_AUTH", password.clone());
    }
    Ok(Spec::new(start).port(ACCESS_PORT, PORT))
}

fn exporter_spec(options: &Options, address: String, password: String) -> ExporterSpec {
    let mut env = vec![("REDIS_ADDR".to_string(), address)];
    if !password.is_empty() {
        env.push(("REDIS_PASSWORD".to_string(), password));
    }
    ExporterSpec {
        image: options
            .server
            .exporter_image
            .clone()
            .unwrap_or_else(|| EXPORTER_IMAGE.into()),
        command: Command::new("/redis_exporter"),
        env,
        port: EXPORTER_PORT,
        secret_files: Vec::new(),
    }
}

/// The entrypoint of [`debian_image`], as the official one behaves: arguments that are
/// options run `redis-server`; protected mode is off (the official build disables it: in a
/// container every client comes from another address).
const ENTRYPOINT: &str = r#"#!/bin/sh
# e2ekit's offline stand-in for the official redis image's entrypoint.
set -eu
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
	shift
	set -- redis-server --protected-mode no "$@"
fi
exec "$@"
"#;

/// An image of the host's Debian Redis (`redis-server`, `redis-tools`, and `busybox-static`
/// for the shell) in the official image's layout: `redis-server` and `redis-cli` on `PATH`,
/// data in `/data` (the working directory), running as the `redis` account, and a
/// `docker-entrypoint.sh` behaving as the official one. It is the offline stand-in for
/// [`IMAGE`] where no registry is reachable: [`redis()`](super::redis()) runs on it
/// unchanged. The packages must be installed on the host.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let image = db::redis::debian_image()?.build(env).await?;
/// let cache = db::redis(env, "cache", db::Options::new().image(image))?;
/// # Ok(()) }
/// ```
pub fn debian_image() -> Result<HostImage> {
    let (uid, gid) = servers::system_account("redis")?;
    let image = HostImage::debian_package("e2ekit/redis-debian", "redis-server")?
        .with_debian_package("redis-tools")?;
    let image = servers::with_busybox(image, &["sh", "grep", "cat", "echo"])?;
    Ok(image
        .executable("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT)
        .dir("/data")
        .owner("/data", uid, gid)
        .workdir("/data")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .user("redis")
        .entrypoint(["/usr/local/bin/docker-entrypoint.sh"])
        .cmd(["redis-server"]))
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    #[test]
    fn in_memory_with_the_password_as_requirepass_and_a_ping_probe() {
        let options = Options::new()
            .password("pw")
            .flag("--maxmemory", "64mb")
            .flag("--appendonly", "yes");
        let spec = redis_spec(&site("cache"), &options).expect("spec");
        assert_eq!(spec.options.image(), IMAGE);
        assert_eq!(spec.ports, [("http".to_string(), 6379)]);
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            [
                "redis-server",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--requirepass",
                "pw",
                "--maxmemory",
                "64mb"
            ]
        );
        assert_eq!(spec.env_vars(), [("REDISCLI_AUTH", "pw")]);
        match &spec.options.readiness {
            Some(Probe::Cmd(p)) => {
                assert!(p.command.to_vec().join(" ").contains("PING | grep -q PONG"))
            }
            other => panic!("expected a command probe, got {other:?}"),
        }
    }

    #[test]
    fn without_a_password_nothing_is_required() {
        let spec = redis_spec(&site("cache"), &Options::new()).expect("spec");
        let args = spec.options.command.as_ref().expect("command").to_vec();
        assert!(!args.contains(&"--requirepass".to_string()), "{args:?}");
        assert!(spec.env_vars().is_empty());
    }

    #[test]
    fn users_and_named_databases_are_refused() {
        let err = check_options("c", &Options::new().user("alice"), "0").expect_err("user");
        assert!(err.to_string().contains("\"alice\""), "{err}");
        assert!(check_options("c", &Options::new().user("default"), "0").is_ok());
        let err = check_options("c", &Options::new(), "orders").expect_err("database");
        assert!(err.to_string().contains("must be a number"), "{err}");
        assert!(check_options("c", &Options::new().password(""), "0").is_err());
    }

    #[test]
    fn the_exporter_gets_the_address_and_password() {
        let spec = exporter_spec(&Options::new(), "redis://h:6379".into(), "pw".into());
        assert_eq!(spec.image, EXPORTER_IMAGE);
        assert_eq!(spec.port, 9121);
        assert_eq!(
            spec.env,
            [
                ("REDIS_ADDR".to_string(), "redis://h:6379".to_string()),
                ("REDIS_PASSWORD".to_string(), "pw".to_string())
            ]
        );
    }
}
