//! MariaDB from its official image (`mariadb`), set up through the image's environment
//! contract (`MARIADB_ROOT_PASSWORD`, `MARIADB_USER`, `MARIADB_PASSWORD`,
//! `MARIADB_DATABASE`), ready once a `SELECT 1` over TCP succeeds, with an optional
//! Prometheus exporter beside it.
//!
//! ```no_run
//! use e2ekit::prelude::*;
//!
//! # async fn demo(env: &Environment) -> e2ekit::Result<()> {
//! let sql = db::mariadb(
//!     env,
//!     "sql",
//!     db::Options::new().user("app").password("s3cret").database("orders"),
//! )?;
//! start_and_wait_ready(&[&sql]).await?;
//! // mysql://app:s3cret@127.0.0.1:<port>/orders, for mysql_async, sqlx...
//! println!("{}", sql.url()?);
//! # Ok(()) }
//! ```
//!
//! Without registry access, [`debian_image`] packs Debian's MariaDB in the official image's
//! layout.

use std::fmt;
use std::ops::Deref;

use super::servers::{self, ExporterSpec, Server};
use super::{Options, Site, Spec, ACCESS_PORT};
use crate::env::{AsRunnable, Environment, Runnable};
use crate::error::Result;
use crate::host::HostImage;
use crate::metrics::Instrumented;
use crate::spec::{CmdProbe, Command, Flags};

/// The official image [`mariadb()`](super::mariadb()) runs by default.
pub const IMAGE: &str = "mariadb:11";
/// The official exporter image [`Options::exporter`] runs by default.
pub const EXPORTER_IMAGE: &str = "quay.io/prometheus/mysqld-exporter:v0.15.1";
/// The server's port in the container (named [`ACCESS_PORT`]).
pub const PORT: u16 = 3306;
/// The exporter's metrics port in its container.
pub const EXPORTER_PORT: u16 = 9104;

/// The user, password and database when [`Options`] does not set them.
pub const DEFAULT_USER: &str = "test";
/// See [`DEFAULT_USER`].
pub const DEFAULT_PASSWORD: &str = "test";
/// See [`DEFAULT_USER`].
pub const DEFAULT_DATABASE: &str = "test";

/// A MariaDB server: the runnable (through `Deref`), its credentials, the URLs that reach
/// it, and its exporter if asked for.
#[derive(Clone)]
pub struct MariaDb {
    server: Server,
}

impl fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MariaDb").field(&self.server).finish()
    }
}

impl Deref for MariaDb {
    type Target = Runnable;
    fn deref(&self) -> &Runnable {
        &self.server.runnable
    }
}

impl AsRunnable for MariaDb {
    fn as_runnable(&self) -> &Runnable {
        &self.server.runnable
    }
}

impl MariaDb {
    /// The server's runnable.
    pub fn runnable(&self) -> &Runnable {
        &self.server.runnable
    }

    /// `mysql://user:password@host:port/database` from the test process (user, password and
    /// database percent-encoded). Errors when the server is not running.
    pub fn url(&self) -> Result<String> {
        let endpoint = self.server.runnable.endpoint(ACCESS_PORT)?;
        Ok(self.server.url("mysql", &endpoint))
    }

    /// The same URL as other runnables of the environment reach the server.
    pub fn internal_url(&self) -> Result<String> {
        let endpoint = self.server.runnable.internal_endpoint(ACCESS_PORT)?;
        Ok(self.server.url("mysql", &endpoint))
    }

    /// The host and port the test process connects to. Errors when the server is not
    /// running.
    pub fn host_port(&self) -> Result<(String, u16)> {
        servers::host_port(&self.server.runnable)
    }

    /// The user the server was set up with: all privileges on [`MariaDb::database`] (or
    /// `root`, when that is the user asked for).
    pub fn user(&self) -> &str {
        &self.server.user
    }

    /// That user's password, which is also `root`'s.
    pub fn password(&self) -> &str {
        &self.server.password
    }

    /// The database created for the user.
    pub fn database(&self) -> &str {
        &self.server.database
    }

    /// The exporter runnable (`<name>-exporter`), instrumented, when [`Options::exporter`]
    /// asked for it. It connects as `root`. Start it with the server; it reports `mysql_up`.
    pub fn exporter(&self) -> Option<&Instrumented> {
        self.server.exporter.as_ref()
    }
}

/// MariaDB on [`ACCESS_PORT`] (3306) with [`Options::user`] (default `test`; `root` means
/// root only), [`Options::password`] (default `test`, also root's password) and
/// [`Options::database`] (default `test`), the user holding all privileges on that
/// database. [`Options::flag`] sets server options (`("--max-connections", "20")`). Ready
/// once `SELECT 1` succeeds as that user over TCP inside the container, so the temporary
/// server the official entrypoint runs during initialisation (no networking) does not count.
/// Data lives in the container, removed with it.
///
/// A custom image must keep the official layout: its `docker-entrypoint.sh`, `mariadbd` and
/// `mariadb` on `PATH`, the `MARIADB_*` variables.
pub fn mariadb(env: &Environment, name: &str, options: Options) -> Result<MariaDb> {
    let user = options.user_or(DEFAULT_USER);
    let password = options.password_or(DEFAULT_PASSWORD);
    let database = options.database_or(DEFAULT_DATABASE);
    servers::check_value(name, "user", &user)?;
    servers::check_value(name, "password", &password)?;
    servers::check_value(name, "database", &database)?;
    servers::check_exporter_name(env, name, &options)?;
    let runnable = super::deploy(env, name, |site| mariadb_spec(site, &options))?;
    let mut server = Server {
        runnable,
        user,
        password,
        database,
        exporter: None,
    };
    if options.server.exporter {
        let host = server.runnable.internal_endpoint(ACCESS_PORT)?;
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
        let my_cnf = exporter_config(host, &server.password);
        server.exporter = Some(servers::deploy_exporter(env, name, &options, |site| {
            exporter_spec(site, &options, my_cnf)
        })?);
    }
    Ok(MariaDb { server })
}

pub(crate) fn mariadb_spec(_site: &Site, options: &Options) -> Result<Spec> {
    let user = options.user_or(DEFAULT_USER);
    let password = options.password_or(DEFAULT_PASSWORD);
    let flags = options.merged_flags(
        Flags::new()
            // Tests do not survive power loss: write the redo log lazily.
            .with("--innodb-flush-log-at-trx-commit", "0")
            .with("--skip-name-resolve", ""),
    );
    let mut start = options
        .start_options(IMAGE)
        .command(Command::new("mariadbd").args(flags.to_args()))
        .env("MARIADB_ROOT_PASSWORD", password.clone());
    let password_var = if user == "root" {
        // The official entrypoint refuses MARIADB_USER=root: root is set up on its own.
        "MARIADB_ROOT_PASSWORD"
    } else {
        start = start
            .env("MARIADB_USER", user.clone())
            .env("MARIADB_PASSWORD", password);
        "MARIADB_PASSWORD"
    };
    start = start.env("MARIADB_DATABASE", options.database_or(DEFAULT_DATABASE));
    // Over TCP to 127.0.0.1 as the configured user: the entrypoint's temporary init server
    // has networking off, and the user exists only once initialisation is over.
    let probe = format!(
        "MYSQL_PWD=\"${password_var}\" mariadb --protocol=tcp -h 127.0.0.1 -P 3306 --skip-ssl \
         -u {} -D \"$MARIADB_DATABASE\" -e 'SELECT 1'",
        servers::sh_quote(&user)
    );
    start = start.readiness(CmdProbe::new(Command::sh(probe)));
    Ok(Spec::new(start).port(ACCESS_PORT, PORT))
}

/// The exporter's client configuration: `root` on the server's host, a my.cnf both the
/// Debian exporter (0.14) and the official image's (0.15) read. Their INI parser takes a
/// value between backticks as is (quotes, `#` and `;` included), so the password goes there.
fn exporter_config(host: &str, password: &str) -> String {
    let password = if password.contains('`') {
        format!("\"{password}\"")
    } else {
        format!("`{password}`")
    };
    format!("[client]\nuser=root\npassword={password}\nhost={host}\nport={PORT}\n")
}

fn exporter_spec(site: &Site, options: &Options, my_cnf: String) -> ExporterSpec {
    ExporterSpec {
        image: options
            .server
            .exporter_image
            .clone()
            .unwrap_or_else(|| EXPORTER_IMAGE.into()),
        command: Command::new("/bin/mysqld_exporter")
            .arg(format!("--config.my-cnf={}", site.path("my.cnf")))
            .arg("--log.level=warn"),
        env: Vec::new(),
        port: EXPORTER_PORT,
        // The password is in it: only the test user (the exporter runs as it) may read it.
        secret_files: vec![("my.cnf".into(), my_cnf)],
    }
}

/// The server configuration of [`debian_image`] (Debian's own configuration, which binds to
/// 127.0.0.1, is not packed): listen on every address, as the official image does.
const SERVER_CNF: &str = "[client-server]\nsocket = /run/mysqld/mysqld.sock\n\n[mariadbd]\ndatadir = /var/lib/mysql\nbind-address = *\nskip-host-cache\n";

/// The entrypoint of [`debian_image`]: the official entrypoint's contract (the `MARIADB_*`
/// variables, a first-run initialisation with a temporary server without networking),
/// reduced to what tests use.
const ENTRYPOINT: &str = r#"#!/bin/sh
# e2ekit's offline stand-in for the official mariadb image's entrypoint.
set -eu
if [ "${1#-}" != "$1" ]; then
	set -- mariadbd "$@"
fi
# SQL string literal and identifier escaping.
lit() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
ident() { printf '%s' "$1" | sed -e 's/`/``/g'; }
if { [ "$1" = mariadbd ] || [ "$1" = mysqld ]; } && [ ! -d /var/lib/mysql/mysql ]; then
	if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" ]; then
		echo 'error: database is uninitialized and password option is not specified' >&2
		echo '  You need to specify one of MARIADB_ROOT_PASSWORD or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD' >&2
		exit 1
	fi
	if [ "${MARIADB_USER:-}" = root ]; then
		echo 'error: MARIADB_USER="root", MARIADB_USER and MARIADB_PASSWORD are for a regular user; use MARIADB_ROOT_PASSWORD' >&2
		exit 1
	fi
	echo 'Initializing database files'
	mariadb-install-db --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=normal --skip-name-resolve >/dev/null
	socket=/run/mysqld/init.sock
	"$@" --skip-networking --socket="$socket" &
	pid=$!
	until mariadb --socket="$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo 'error: the temporary server exited during initialization' >&2
			exit 1
		fi
		sleep 1
	done
	root=$(lit "${MARIADB_ROOT_PASSWORD:-}")
	{
		echo "SET @@SESSION.SQL_LOG_BIN=0;"
		# Only root@localhost and root@'%' keep root access, as in the official image.
		echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';"
		echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
		echo "CREATE USER 'root'@'%' IDENTIFIED BY '$root';"
		echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
		echo "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$root');"
		if [ -n "${MARIADB_DATABASE:-}" ]; then
			echo "CREATE DATABASE IF NOT EXISTS \`$(ident "$MARIADB_DATABASE")\`;"
		fi
		if [ -n "${MARIADB_USER:-}" ]; then
			user=$(lit "$MARIADB_USER")
			echo "CREATE USER '$user'@'%' IDENTIFIED BY '$(lit "${MARIADB_PASSWORD:-}")';"
			if [ -n "${MARIADB_DATABASE:-}" ]; then
				echo "GRANT ALL ON \`$(ident "$MARIADB_DATABASE")\`.* TO '$user'@'%';"
			fi
		fi
		echo "FLUSH PRIVILEGES;"
	} | mariadb --socket="$socket" -uroot
	MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-}" mariadb-admin --socket="$socket" -uroot shutdown
	wait "$pid" || true
	echo 'MariaDB init process done. Ready for start up.'
fi
exec "$@"
"#;

/// An image of the host's Debian MariaDB (`mariadb-server`, `mariadb-server-core`,
/// `mariadb-client`, `mariadb-client-core`, and `busybox-static` for the shell) in the
/// official image's layout: `mariadbd`, `mariadb` and `mariadb-install-db` on `PATH`, data
/// in `/var/lib/mysql`, and a `docker-entrypoint.sh` honouring `MARIADB_ROOT_PASSWORD`,
/// `MARIADB_ALLOW_EMPTY_ROOT_PASSWORD`, `MARIADB_USER`, `MARIADB_PASSWORD` and
/// `MARIADB_DATABASE`. It is the offline stand-in for [`IMAGE`] where no registry is
/// reachable: [`mariadb()`](super::mariadb()) runs on it unchanged. It runs as the `mysql`
/// account. The packages must be installed on the host.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let image = db::mariadb::debian_image()?.build(env).await?;
/// let sql = db::mariadb(env, "sql", db::Options::new().image(image))?;
/// # Ok(()) }
/// ```
pub fn debian_image() -> Result<HostImage> {
    let (uid, gid) = servers::system_account("mysql")?;
    let mut image = HostImage::debian_package("e2ekit/mariadb-debian", "mariadb-server")?;
    for package in [
        "mariadb-server-core",
        "mariadb-client",
        "mariadb-client-core",
    ] {
        image = image.with_debian_package(package)?;
    }
    let image = servers::with_busybox(
        image,
        &[
            "sh", "sed", "grep", "cat", "echo", "printf", "mkdir", "chmod", "chown", "rm",
            "dirname", "basename", "uname", "hostname", "sleep", "kill", "find", "id", "test",
            "tr", "cut", "head", "tail", "awk", "touch", "mv", "cp", "ls", "pwd", "env",
        ],
    )?;
    Ok(image
        .executable("/usr/local/bin/docker-entrypoint.sh", ENTRYPOINT)
        .content("/etc/mysql/my.cnf", SERVER_CNF)
        .dir("/var/lib/mysql")
        .owner("/var/lib/mysql", uid, gid)
        .dir("/run/mysqld")
        .owner("/run/mysqld", uid, gid)
        .env("PATH", "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .user("mysql")
        .entrypoint(["/usr/local/bin/docker-entrypoint.sh"])
        .cmd(["mariadbd"]))
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    fn probe(spec: &Spec) -> String {
        match &spec.options.readiness {
            Some(Probe::Cmd(p)) => p.command.to_vec().join(" "),
            other => panic!("expected a command probe, got {other:?}"),
        }
    }

    #[test]
    fn official_image_env_contract_and_a_tcp_select_probe() {
        let options = Options::new()
            .user("app")
            .password("pw")
            .database("orders")
            .flag("--max-connections", "20");
        let spec = mariadb_spec(&site("sql"), &options).expect("spec");
        assert_eq!(spec.options.image(), IMAGE);
        assert_eq!(spec.ports, [("http".to_string(), 3306)]);
        assert_eq!(
            spec.env_vars(),
            [
                ("MARIADB_ROOT_PASSWORD", "pw"),
                ("MARIADB_USER", "app"),
                ("MARIADB_PASSWORD", "pw"),
                ("MARIADB_DATABASE", "orders")
            ]
        );
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            [
                "mariadbd",
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-name-resolve",
                "--max-connections=20"
            ]
        );
        let probe = probe(&spec);
        assert!(probe.contains("--protocol=tcp -h 127.0.0.1"), "{probe}");
        assert!(probe.contains("MYSQL_PWD=\"$MARIADB_PASSWORD\""), "{probe}");
        assert!(probe.contains("-u 'app'"), "{probe}");
    }

    #[test]
    fn root_is_set_up_through_the_root_password_only() {
        let spec = mariadb_spec(&site("sql"), &Options::new().user("root")).expect("spec");
        assert_eq!(
            spec.env_vars(),
            [
                ("MARIADB_ROOT_PASSWORD", "test"),
                ("MARIADB_DATABASE", "test")
            ]
        );
        assert!(probe(&spec).contains("MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\""));
    }

    #[test]
    fn the_exporter_reads_a_private_my_cnf() {
        let cnf = exporter_config("e-sql", "p\"w;#");
        assert_eq!(
            cnf,
            "[client]\nuser=root\npassword=`p\"w;#`\nhost=e-sql\nport=3306\n"
        );
        let spec = servers::exporter_spec(
            exporter_spec(&site("sql-exporter"), &Options::new(), cnf),
            &Options::new(),
        );
        assert_eq!(spec.options.image(), EXPORTER_IMAGE);
        assert_eq!(spec.secrets, ["my.cnf"]);
        assert!(spec.options.user.is_some(), "runs as the host user");
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec()[1],
            "--config.my-cnf=/tmp/e2e-test/data/sql-exporter/my.cnf"
        );
    }
}
