//! What the database servers of the catalog ([`redis()`](super::redis()),
//! [`postgres()`](super::postgres()), [`mariadb()`](super::mariadb())) share: the credential,
//! database and exporter options, and the pieces of their connection URLs.

use std::fmt;

use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::{Environment, Runnable};
use crate::error::{Error, Result};
use crate::host::HostImage;
use crate::metrics::Instrumented;
use crate::spec::{Command, HttpProbe};

/// The database-server part of [`Options`]: who connects, to which database, and whether a
/// Prometheus exporter runs beside the server.
#[derive(Clone, Default)]
pub(crate) struct ServerOptions {
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) exporter: bool,
    pub(crate) exporter_image: Option<String>,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("user", &self.user)
            // A password never reaches logs or error messages.
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("database", &self.database)
            .field("exporter", &self.exporter)
            .field("exporter_image", &self.exporter_image)
            .finish()
    }
}

impl Options {
    /// The user a database server creates and the test connects as
    /// ([`postgres()`](super::postgres()): `POSTGRES_USER`, [`mariadb()`](super::mariadb()):
    /// `MARIADB_USER`). [`redis()`](super::redis()) has only its `default` user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.server.user = Some(user.into());
        self
    }

    /// The password of [`Options::user`] (`POSTGRES_PASSWORD`, `MARIADB_PASSWORD` and the
    /// root password; Redis' `--requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.server.password = Some(password.into());
        self
    }

    /// The database a server creates for [`Options::user`] (`POSTGRES_DB`,
    /// `MARIADB_DATABASE`; for Redis the database number the URL selects).
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.server.database = Some(database.into());
        self
    }

    /// Runs the server's Prometheus exporter beside it as the runnable `<name>-exporter`
    /// (official exporter image unless [`Options::exporter_image`] says otherwise).
    pub fn exporter(mut self) -> Self {
        self.server.exporter = true;
        self
    }

    /// Runs the exporter from this image (implies [`Options::exporter`]); it must keep the
    /// official exporter image's binary path.
    pub fn exporter_image(mut self, image: impl Into<String>) -> Self {
        self.server.exporter = true;
        self.server.exporter_image = Some(image.into());
        self
    }

    /// The user, or the entry's default.
    pub(crate) fn user_or(&self, default: &str) -> String {
        self.server.user.clone().unwrap_or_else(|| default.into())
    }

    /// The password, or the entry's default.
    pub(crate) fn password_or(&self, default: &str) -> String {
        self.server
            .password
            .clone()
            .unwrap_or_else(|| default.into())
    }

    /// The database, or the entry's default.
    pub(crate) fn database_or(&self, default: &str) -> String {
        self.server
            .database
            .clone()
            .unwrap_or_else(|| default.into())
    }
}

/// Fails with a clear error, naming the runnable, when a credential or database name is
/// empty or holds a character the server's init scripts cannot take (NUL, a newline).
pub(crate) fn check_value(runnable: &str, what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the {what} of database runnable {runnable:?} is empty"
        )));
    }
    if value.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
        return Err(Error::InvalidArgument(format!(
            "the {what} of database runnable {runnable:?} contains a NUL or line break"
        )));
    }
    Ok(())
}

/// Percent-encodes a URL's user, password or path segment (everything but RFC 3986's
/// unreserved characters), so any password fits in a connection URL.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `host:port` (or `[v6]:port`) as [`Runnable::endpoint`] gives it.
pub(crate) fn split_endpoint(runnable: &str, endpoint: &str) -> Result<(String, u16)> {
    let parsed = endpoint.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        port.parse::<u16>().ok().map(|p| (host.to_string(), p))
    });
    parsed.ok_or_else(|| {
        Error::Unexpected(format!(
            "the endpoint {endpoint:?} of runnable {runnable:?} is not host:port"
        ))
    })
}

/// `host:port` of the runnable's [`ACCESS_PORT`] from the test process, split.
pub(crate) fn host_port(runnable: &Runnable) -> Result<(String, u16)> {
    split_endpoint(runnable.name(), &runnable.endpoint(ACCESS_PORT)?)
}

/// Before a server with an exporter is defined: the exporter's name `<name>-exporter` must
/// be valid and free, so a server is never left defined without the exporter asked for.
pub(crate) fn check_exporter_name(env: &Environment, name: &str, options: &Options) -> Result<()> {
    if !options.server.exporter {
        return Ok(());
    }
    let exporter = format!("{name}-exporter");
    let core = env.core();
    crate::host::naming::validate_runnable_name(&core.name, &exporter)?;
    if crate::host::fs::lock(&core.names).contains(&exporter) {
        return Err(Error::DuplicateRunnable {
            env: core.name.clone(),
            name: exporter,
        });
    }
    Ok(())
}

/// An exporter runnable beside a server: `command` in `image` (entrypoint disabled), with
/// `env`, serving `/metrics` on container port `port` as [`ACCESS_PORT`], instrumented there.
/// `files` are written into its directory as secrets (it then runs as the host user, who
/// alone may read them).
pub(crate) struct ExporterSpec {
    pub(crate) image: String,
    pub(crate) command: Command,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) port: u16,
    pub(crate) secret_files: Vec<(String, String)>,
}

/// Defines the exporter `<server>-exporter`, built by `build` from its site.
pub(crate) fn deploy_exporter(
    env: &Environment,
    server: &str,
    options: &Options,
    build: impl FnOnce(&Site) -> ExporterSpec,
) -> Result<Instrumented> {
    let name = format!("{server}-exporter");
    let runnable = super::deploy(env, &name, |site| Ok(exporter_spec(build(site), options)))?;
    Instrumented::new(runnable, ACCESS_PORT)
}

pub(crate) fn exporter_spec(exporter: ExporterSpec, options: &Options) -> Spec {
    let mut start = crate::spec::StartOptions::new(exporter.image)
        .command(exporter.command.disable_entrypoint())
        .readiness(HttpProbe::new(ACCESS_PORT, "/metrics"));
    if let Some(policy) = options.wait_policy {
        start = start.wait_policy(policy);
    }
    for (k, v) in exporter.env {
        start = start.env(k, v);
    }
    if !exporter.secret_files.is_empty() {
        start = start.host_user();
    }
    let mut spec = Spec::new(start).port(ACCESS_PORT, exporter.port);
    for (rel, text) in exporter.secret_files {
        spec = spec.secret_file(rel, text);
    }
    spec
}

/// What every server value holds: its runnable, the credentials and database it was set up
/// with, and its exporter if asked for.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) runnable: Runnable,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) database: String,
    pub(crate) exporter: Option<Instrumented>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("runnable", &self.runnable.name())
            .field("user", &self.user)
            .field("database", &self.database)
            .field(
                "exporter",
                &self
                    .exporter
                    .as_ref()
                    .map(|e| e.runnable().name().to_string()),
            )
            .finish_non_exhaustive()
    }
}

impl Server {
    /// `scheme://user:password@host:port/database` with `hostport` as the address; an empty
    /// user leaves the user out (Redis' `redis://:password@...`), an empty password leaves the
    /// password and its colon out.
    pub(crate) fn url(&self, scheme: &str, hostport: &str) -> String {
        let mut auth = url_encode(&self.user);
        if !self.password.is_empty() {
            auth.push(':');
            auth.push_str(&url_encode(&self.password));
        }
        let at = if auth.is_empty() { "" } else { "@" };
        format!(
            "{scheme}://{auth}{at}{hostport}/{}",
            url_encode(&self.database)
        )
    }
}

/// Where the offline stand-in images take their shell from (Debian's `busybox-static`).
const BUSYBOX: &str = "/bin/busybox";

/// Adds the host's static busybox to a stand-in image, with `applets` linked in `/bin`
/// (the entrypoint scripts run under its `sh`).
pub(crate) fn with_busybox(image: HostImage, applets: &[&str]) -> Result<HostImage> {
    if !std::path::Path::new(BUSYBOX).is_file() {
        return Err(Error::InvalidArgument(format!(
            "the stand-in database images need a static busybox at {BUSYBOX}: apt-get install busybox-static"
        )));
    }
    let mut image = image.binary_at(BUSYBOX, BUSYBOX);
    for applet in applets {
        image = image.symlink(format!("/bin/{applet}"), BUSYBOX);
    }
    Ok(image)
}

/// The uid and gid of a system account of this host (packed into stand-in images by
/// [`HostImage::debian_package`]), so its directories can be made its own.
pub(crate) fn system_account(name: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| Error::io("reading /etc/passwd for a stand-in image", e))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() != Some(&name) || fields.len() < 4 {
                return None;
            }
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        })
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "this host has no system account {name:?} (its Debian package creates it)"
            ))
        })
}

/// Quotes `text` for a POSIX shell (single quotes, with `'` written as `'\''`).
pub(crate) fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(url_encode("plain-._~09AZaz"), "plain-._~09AZaz");
        assert_eq!(url_encode("p@ss:w/rd%"), "p%40ss%3Aw%2Frd%25");
        assert_eq!(url_encode("é"), "%C3%A9");
    }

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(
            split_endpoint("r", "127.0.0.1:5432").expect("split"),
            ("127.0.0.1".to_string(), 5432)
        );
        assert_eq!(
            split_endpoint("r", "[::1]:6379").expect("split"),
            ("::1".to_string(), 6379)
        );
        let err = split_endpoint("r", "nowhere").expect_err("no port");
        assert!(err.to_string().contains("\"r\""), "{err}");
    }

    #[test]
    fn bad_values_are_refused_with_the_runnable_named() {
        assert!(check_value("pg", "password", "s3cret with spaces'\"").is_ok());
        let err = check_value("pg", "user", "").expect_err("empty");
        assert!(
            err.to_string().contains("user of database runnable \"pg\""),
            "{err}"
        );
        assert!(check_value("pg", "database", "a\nb").is_err());
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let options = Options::new().user("u").password("hunter2").database("d");
        let text = format!("{options:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("\"u\""), "{text}");
    }

    #[tokio::test]
    async fn servers_define_their_exporter_and_refuse_a_taken_exporter_name() {
        use crate::engine::fake::FakeEngine;

        let env = crate::env::tests::fake_env(&FakeEngine::new(), "fk-dbs").await;
        let pg = crate::db::postgres(&env, "pg", Options::new().exporter()).expect("defined");
        let exporter = pg.exporter().expect("asked for");
        assert_eq!(exporter.runnable().name(), "pg-exporter");
        assert_eq!(
            exporter.runnable().options().image(),
            super::super::images::POSTGRES_EXPORTER
        );
        // Not running yet: the URL needs the published port, and says so.
        let err = pg.url().expect_err("not running");
        assert!(err.to_string().contains("\"pg\""), "{err}");
        let internal = pg.internal_url().expect("internal");
        assert_eq!(
            internal,
            format!(
                "postgres://postgres:postgres@{}/postgres",
                pg.internal_endpoint(ACCESS_PORT).expect("endpoint")
            )
        );
        assert!(internal.ends_with("-pg:5432/postgres"), "{internal}");
        let redis = crate::db::redis(&env, "cache", Options::new()).expect("defined");
        assert!(redis.exporter().is_none());
        assert_eq!(redis.password(), None);

        // `sql-exporter` is taken: nothing is defined, so `sql` stays free.
        env.runnable("sql-exporter")
            .future()
            .expect("taken by the test");
        let err = crate::db::mariadb(&env, "sql", Options::new().exporter()).expect_err("taken");
        assert!(
            matches!(&err, crate::Error::DuplicateRunnable { name, .. } if name == "sql-exporter"),
            "{err}"
        );
        crate::db::mariadb(&env, "sql", Options::new()).expect("the name is still free");
        env.close().await;
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
