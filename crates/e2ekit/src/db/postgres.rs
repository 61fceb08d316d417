//! PostgreSQL from its official image (`postgres`), set up through the image's environment
//! contract (`POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`), ready once a `SELECT 1`
//! over TCP succeeds, with an optional Prometheus exporter beside it.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let pg = db::postgres(
//!     env,
//!     "pg",
//!     db::Options::new().user("app").password("s3cret").database("orders").exporter(),
//! )?;
//! let exporter = pg.exporter().expect("asked for with Options::exporter");
//! start_and_wait_ready(&[&pg, exporter]).await?;
//! // postgres://app:s3cret@127.0.0.1:<port>/orders, for tokio-postgres, sqlx, diesel...
//! println!("{}", pg.url()?);
//! exporter.wait_sum_metrics(equals(1.0), ["pg_up"]).await?;
//! # Ok(()) }
//! ```
//!
//! Without registry access, [`debian_image`] packs Debian's PostgreSQL in the official
//! image's layout.

use std::fmt;
use std::ops::Deref;

use super::servers::{self, ExporterSpec, Server};
use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::{AsRunnable, Environment, Runnable};
use crate::error::Result;
use crate::host::HostImage;
use crate::metrics::Instrumented;
use crate::spec::{CmdProbe, Command, Flags};

/// The official image [`postgres()`](super::postgres()) runs by default.
pub const IMAGE: &str = "postgres:17";
/// The official exporter image [`Options::exporter`] runs by default.
pub const EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.15.0";
/// The server's port in the container (named [`ACCESS_PORT`]).
pub const PORT: u16 = 5432;
/// The exporter's metrics port in its container.
pub const EXPORTER_PORT: u16 = 9187;

/// The user, password and database when [`Options`] does not set them.
pub const DEFAULT_USER: &str = "postgres";
/// See [`DEFAULT_USER`].
pub const DEFAULT_PASSWORD: &str = "postgres";

/// A PostgreSQL server: the runnable (through `Deref`), its credentials, the URLs that
/// reach it, and its exporter if asked for.
#[derive(Clone)]
pub struct Postgres {
    server: Server,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Postgres").field(&self.server).finish()
    }
}

impl Deref for Postgres {
    type Target = Runnable;
    fn deref(&self) -> &Runnable {
        &self.server.runnable
    }
}

impl AsRunnable for Postgres {
    fn as_runnable(&self) -> &Runnable {
        &self.server.runnable
    }
}

impl Postgres {
    /// The server's runnable.
    pub fn runnable(&self) -> &Runnable {
        &self.server.runnable
    }

    /// `postgres://user:password@host:port/database` from the test process (user, password
    /// and database percent-encoded). Errors when the server is not running.
    pub fn url(&self) -> Result<String> {
        let endpoint = self.server.runnable.endpoint(ACCESS_PORT)?;
        Ok(self.server.url("postgres", &endpoint))
    }

    /// The same URL as other runnables of the environment reach the server.
    pub fn internal_url(&self) -> Result<String> {
        let endpoint = self.server.runnable.internal_endpoint(ACCESS_PORT)?;
        Ok(self.server.url("postgres", &endpoint))
    }

    /// The host and port the test process connects to, for clients configured field by
    /// field. Errors when the server is not running.
    pub fn host_port(&self) -> Result<(String, u16)> {
        servers::host_port(&self.server.runnable)
    }

    /// The user the server was set up with (a superuser, as in the official image).
    pub fn user(&self) -> &str {
        &self.server.user
    }

    /// That user's password.
    pub fn password(&self) -> &str {
        &self.server.password
    }

    /// The database created for the user.
    pub fn database(&self) -> &str {
        &self.server.database
    }

    /// The exporter runnable (`<name>-exporter`), instrumented, when [`Options::exporter`]
    /// asked for it. Start it with the server; it reports `pg_up`.
    pub fn exporter(&self) -> Option<&Instrumented> {
        self.server.exporter.as_ref()
    }
}

/// PostgreSQL on [`ACCESS_PORT`] (5432) with [`Options::user`] (default `postgres`),
/// [`Options::password`] (default `postgres`) and [`Options::database`] (default: the user's
/// name), tuned for tests (no fsync). [`Options::flag`] sets server parameters
/// (`("--max_connections", "200")`). Ready once `SELECT 1` succeeds over TCP inside the
/// container, so the temporary server the official entrypoint runs during initialisation
/// (unix socket only) does not count. Data lives in the container, removed with it.
///
/// A custom image must keep the official layout: its `docker-entrypoint.sh`, `postgres` and
/// `psql` on `PATH`, the `POSTGRES_*` variables.
pub fn postgres(env: &Environment, name: &str, options: Options) -> Result<Postgres> {
    let user = options.user_or(DEFAULT_USER);
    let password = options.password_or(DEFAULT_PASSWORD);
    let database = options.database_or(&user);
    servers::check_value(name, "user", &user)?;
    servers::check_value(name, "password", &password)?;
    servers::check_value(name, "database", &database)?;
    servers::check_exporter_name(env, name, &options)?;
    let runnable = super::deploy(env, name, |site| postgres_spec(site, &options))?;
    let mut server = Server {
        runnable,
        user,
        password,
        database,
        exporter: None,
    };
    if options.server.exporter {
        let dsn = server.url(
            "postgresql",
            &server.runnable.internal_endpoint(ACCESS_PORT)?,
        ) + "?sslmode=disable";
        server.exporter = Some(servers::deploy_exporter(env, name, &options, |_site| {
            exporter_spec(&options, dsn)
        })?);
    }
    Ok(Postgres { server })
}

pub(crate) fn postgres_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let user = options.user_or(DEFAULT_USER);
    let flags = options.merged_flags(
        Flags::new()
            // Tests do not survive power loss: skip the disk flushes that make them slow.
            .with("--fsync", "off")
            .with("--synchronous_commit", "off")
            .with("--full_page_writes", "off"),
    );
    // Over TCP to 127.0.0.1: the entrypoint's temporary init server listens only on the
    // unix socket, so this succeeds only once the real server accepts queries.
    let probe = Command::sh(
        "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -h 127.0.0.1 -p 5432 -U \"$POSTGRES_USER\" \
         -d \"$POSTGRES_DB\" -v ON_ERROR_STOP=1 -qtAc 'SELECT 1'",
    );
    let start = options
        .start_options(IMAGE)
        .command(Command::new("postgres").args(flags.to_args()))
        .env("POSTGRES_USER", user.clone())
        .env("POSTGRES_PASSWORD", options.password_or(DEFAULT_PASSWORD))
        .env("POSTGRES_DB", options.database_or(&user))
        .readiness(CmdProbe::new(probe));
    Ok(Spec::new(start).port(ACCESS_PORT, PORT))
}

fn exporter_spec(options: &Options, dsn: String) -> ExporterSpec {
    ExporterSpec {
        image: options
            .server
            .exporter_image
            .clone()
            .unwrap_or_else(|| EXPORTER_IMAGE.into()),
        command: Command::new("/bin/postgres_exporter").arg("--log.level=warn"),
        env: vec![("DATA_SOURCE_NAME".into(), dsn)],
        port: EXPORTER_PORT,
        secret_files: Vec::new(),
    }
}

/// The entrypoint of [`debian_image`]: the official entrypoint's contract (the `POSTGRES_*`
/// variables, a first-run initialisation with a socket-only temporary server), reduced to
/// what tests use.
const ENTRYPOINT: &str = r#"#!/bin/sh
# e2ekit's offline stand-in for the official postgres image's entrypoint.
set -eu
if [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_USER:=postgres}"
	: "${POSTGRES_DB:=$POSTGRES_USER}"
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != trust ]; then
		echo 'Error: Database is uninitialized and superuser password is not specified.' >&2
		echo '       Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust).' >&2
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	pwfile=$(mktemp)
	printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
	initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" --locale=C -E UTF8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
	rm -f "$pwfile"
	echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
	printf 'host all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >> "$PGDATA/pg_hba.conf"
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	if [ "$POSTGRES_DB" != postgres ]; then
		echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d postgres -v db="$POSTGRES_DB"
	fi
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo 'PostgreSQL init process complete; ready for start up.'
fi
exec "$@"
"#;

/// Where Debian keeps PostgreSQL 15's programs.
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// An image of the host's Debian PostgreSQL 15 (`postgresql-15`, `postgresql-client-15`,
/// `tzdata`, and `busybox-static` for the shell) in the official image's layout: `postgres`,
/// `psql` and `initdb` on `PATH`, data in `/var/lib/postgresql/data` (`PGDATA`), and a
/// `docker-entrypoint.sh` honouring `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`,
/// `POSTGRES_INITDB_ARGS` and `POSTGRES_HOST_AUTH_METHOD`. It is the offline stand-in for
/// [`IMAGE`] where no registry is reachable: [`postgres()`](super::postgres()) runs on it
/// unchanged. It runs as the `postgres` account. The packages must be installed on the host.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let image = db::postgres::debian_image()?.build(env).await?;
/// let pg = db::postgres(env, "pg", db::Options::new().image(image))?;
/// # Ok(()) }
/// ```
pub fn debian_image() -> Result<HostImage> {
    let (uid, gid) = servers::system_account("postgres")?;
    let image = HostImage::debian_package("e2ekit/postgres-debian", "postgresql-15")?
        .with_debian_package("postgresql-client-15")?
        .with_debian_package("tzdata")?;
    let image = servers::with_busybox(
        image,
        &["sh", "mkdir", "chmod", "rm", "mktemp", "cat", "echo", "env"],
    )?;
    // The server's programs on PATH, as in the official image (links: initdb and pg_ctl
    // find `postgres` beside their real path).
    let mut image = image;
    let entries = std::fs::read_dir(BIN_DIR)
        .map_err(|e| crate::error::Error::io(format!("listing {BIN_DIR}"), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        image = image.symlink(
            format!("/usr/local/bin/{name}"),
            format!("{BIN_DIR}/{name}"),
        );
    }
    Ok(image
        .executable("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT)
        .dir("/var/lib/postgresql/data")
        .owner("/var/lib/postgresql", uid, gid)
        .owner("/var/lib/postgresql/data", uid, gid)
        .mode("/var/lib/postgresql/data", 0o700)
        // The socket directory Debian's server and clients default to.
        .dir("/var/run/postgresql")
        .owner("/var/run/postgresql", uid, gid)
        .env("PGDATA", "/var/lib/postgresql/data")
        .user("postgres")
        .entrypoint(["/usr/local/bin/docker-entrypoint.sh"])
        .cmd(["postgres"]))
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    #[test]
    fn official_image_env_contract_and_a_tcp_select_probe() {
        let options = Options::new()
            .user("app")
            .password("pw")
            .database("orders")
            .flag("--max_connections", "20");
        let spec = postgres_spec(&site("pg"), &options).expect("spec");
        assert_eq!(spec.options.image(), IMAGE);
        assert_eq!(spec.ports, [("http".to_string(), 5432)]);
        assert_eq!(
            spec.env_vars(),
            [
                ("POSTGRES_USER", "app"),
                ("POSTGRES_PASSWORD", "pw"),
                ("POSTGRES_DB", "orders")
            ]
        );
        let command = spec.options.command.as_ref().expect("command").to_vec();
        assert_eq!(
            command,
            [
                "postgres",
                "--fsync=off",
                "--synchronous_commit=off",
                "--full_page_writes=off",
                "--max_connections=20"
            ]
        );
        match &spec.options.readiness {
            Some(Probe::Cmd(p)) => {
                let script = p.command.to_vec().join(" ");
                assert!(script.contains("-h 127.0.0.1"), "{script}");
                assert!(script.contains("SELECT 1"), "{script}");
            }
            other => panic!("expected a command probe, got {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_official_image() {
        let spec = postgres_spec(&site("pg"), &Options::new().image("local/pg")).expect("spec");
        assert_eq!(spec.options.image(), "local/pg");
        assert_eq!(
            spec.env_vars(),
            [
                ("POSTGRES_USER", "postgres"),
                ("POSTGRES_PASSWORD", "postgres"),
                ("POSTGRES_DB", "postgres")
            ]
        );
    }

    #[test]
    fn the_exporter_reads_the_server_through_its_dsn() {
        let spec = servers::exporter_spec(
            exporter_spec(&Options::new(), "postgresql://u:p@h:5432/d".into()),
            &Options::new(),
        );
        assert_eq!(spec.options.image(), EXPORTER_IMAGE);
        assert_eq!(spec.ports, [("http".to_string(), 9187)]);
        assert_eq!(
            spec.env_vars(),
            [("DATA_SOURCE_NAME", "postgresql://u:p@h:5432/d")]
        );
        let custom = exporter_spec(&Options::new().exporter_image("local/pgx"), String::new());
        assert_eq!(custom.image, "local/pgx");
    }
}
