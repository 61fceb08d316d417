//! `cargo xtask demo` and `cargo xtask test`: the two commands of the README, doing their own
//! set-up.
//!
//! e2ekit needs no registry: every image the tests and the demo run is built from files on
//! this host. A few come from Debian packages (busybox for shells and `httpd`, Prometheus,
//! its Alertmanager, Pushgateway and node exporter, the distribution registry, PostgreSQL,
//! Redis, MariaDB and their exporters, etcd, memcached, a font for chart text). These commands check for them, install what is
//! missing with `apt-get` (saying what and why, using `sudo` when not root), then run the demo
//! or the tests. Without `apt-get` they say exactly what to install instead.

use std::path::Path;
use std::process::{Command, ExitCode};

/// A host file the tests or the demo build images from, and the Debian package providing it.
struct Need {
    path: &'static str,
    package: &'static str,
    why: &'static str,
    /// The package starts a system service the scenarios do not want (they run their own).
    service: Option<&'static str>,
}

const BUSYBOX: Need = Need {
    path: "/bin/busybox",
    package: "busybox-static",
    why: "shells, httpd and nc inside test containers",
    service: None,
};
const PROMETHEUS: Need = Need {
    path: "/usr/bin/prometheus",
    package: "prometheus",
    why: "the Prometheus server of monitoring and the catalog",
    service: Some("prometheus"),
};
const ETCD: Need = Need {
    path: "/usr/bin/etcd",
    package: "etcd-server",
    why: "the catalog's etcd test",
    service: Some("etcd"),
};
const MEMCACHED: Need = Need {
    path: "/usr/bin/memcached",
    package: "memcached",
    why: "the catalog's memcached test",
    service: Some("memcached"),
};
const ALERTMANAGER: Need = Need {
    path: "/usr/bin/prometheus-alertmanager",
    package: "prometheus-alertmanager",
    why: "the catalog's Alertmanager test (packed by HostImage::debian_package)",
    service: Some("prometheus-alertmanager"),
};
const PUSHGATEWAY: Need = Need {
    path: "/usr/bin/prometheus-pushgateway",
    package: "prometheus-pushgateway",
    why: "the catalog's Pushgateway test",
    service: Some("prometheus-pushgateway"),
};
const NODE_EXPORTER: Need = Need {
    path: "/usr/bin/prometheus-node-exporter",
    package: "prometheus-node-exporter",
    why: "the catalog's node exporter test",
    service: Some("prometheus-node-exporter"),
};
const REGISTRY: Need = Need {
    path: "/usr/bin/docker-registry",
    package: "docker-registry",
    why: "the catalog's registry tests (push, pull back; htpasswd auth)",
    service: Some("docker-registry"),
};
const POSTGRES: Need = Need {
    path: "/usr/lib/postgresql/15/bin/postgres",
    package: "postgresql-15",
    why: "a PostgreSQL packed by HostImage::debian_package, with its client",
    service: Some("postgresql"),
};
const POSTGRES_CLIENT: Need = Need {
    path: "/usr/lib/postgresql/15/bin/psql",
    package: "postgresql-client-15",
    why: "psql in the PostgreSQL stand-in image (db::postgres readiness)",
    service: None,
};
const TZDATA: Need = Need {
    path: "/usr/share/zoneinfo/UTC",
    package: "tzdata",
    why: "time zones in the PostgreSQL stand-in image",
    service: None,
};
const REDIS: Need = Need {
    path: "/usr/bin/redis-server",
    package: "redis-server",
    why: "db::redis::debian_image(), the Redis stand-in for the official image",
    service: Some("redis-server"),
};
const REDIS_TOOLS: Need = Need {
    path: "/usr/bin/redis-cli",
    package: "redis-tools",
    why: "redis-cli for db::redis readiness in the stand-in image",
    service: None,
};
const MARIADB: Need = Need {
    path: "/usr/sbin/mariadbd",
    package: "mariadb-server",
    why: "db::mariadb::debian_image(), the MariaDB stand-in for the official image",
    service: Some("mariadb"),
};
const MARIADB_CLIENT: Need = Need {
    path: "/usr/bin/mariadb",
    package: "mariadb-client",
    why: "the mariadb client for db::mariadb readiness in the stand-in image",
    service: None,
};
const REDIS_EXPORTER: Need = Need {
    path: "/usr/bin/prometheus-redis-exporter",
    package: "prometheus-redis-exporter",
    why: "the Redis exporter sidecar test",
    service: Some("prometheus-redis-exporter"),
};
const POSTGRES_EXPORTER: Need = Need {
    path: "/usr/bin/prometheus-postgres-exporter",
    package: "prometheus-postgres-exporter",
    why: "the PostgreSQL exporter sidecar test",
    service: Some("prometheus-postgres-exporter"),
};
const MYSQLD_EXPORTER: Need = Need {
    path: "/usr/bin/prometheus-mysqld-exporter",
    package: "prometheus-mysqld-exporter",
    why: "the MariaDB exporter sidecar test",
    service: Some("prometheus-mysqld-exporter"),
};
const HTPASSWD: Need = Need {
    path: "/usr/bin/htpasswd",
    package: "apache2-utils",
    why: "htpasswd lines for the registry-with-credentials test",
    service: None,
};
const FONT: Need = Need {
    path: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    package: "fonts-dejavu-core",
    why: "text in the demo's chart",
    service: None,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        _ => {
            eprintln!(
                "usage:\n  cargo xtask demo            run the standalone demo\n  cargo xtask test [ARGS]     run the tests (ARGS go to `cargo test`; default --workspace)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: &[String]) -> Result<(), String> {
    check_engine()?;
    ensure(&[BUSYBOX, PROMETHEUS, FONT])?;
    run(Command::new(cargo())
        .args([
            "run",
            "--package",
            "e2ekit",
            "--example",
            "standalone",
            "--",
        ])
        .args(args))
}

fn test(args: &[String]) -> Result<(), String> {
    check_engine()?;
    ensure(&[
        BUSYBOX,
        PROMETHEUS,
        ETCD,
        MEMCACHED,
        ALERTMANAGER,
        PUSHGATEWAY,
        NODE_EXPORTER,
        REGISTRY,
        POSTGRES,
        POSTGRES_CLIENT,
        TZDATA,
        REDIS,
        REDIS_TOOLS,
        MARIADB,
        MARIADB_CLIENT,
        REDIS_EXPORTER,
        POSTGRES_EXPORTER,
        MYSQLD_EXPORTER,
        HTPASSWD,
        FONT,
    ])?;
    let mut command = Command::new(cargo());
    command.arg("test");
    if args.is_empty() {
        command.arg("--workspace");
    } else {
        command.args(args);
    }
    run(&mut command)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The tests and the demo talk to a Docker engine; say so plainly when there is none.
fn check_engine() -> Result<(), String> {
    let socket =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    if let Some(path) = socket.strip_prefix("unix://") {
        if !Path::new(path).exists() {
            return Err(format!(
                "no Docker engine socket at {path}: start dockerd (or Podman's Docker-compatible service) or point DOCKER_HOST at an engine"
            ));
        }
    }
    Ok(())
}

/// Installs the packages behind missing files, or explains how to.
fn ensure(needs: &[Need]) -> Result<(), String> {
    let missing: Vec<&Need> = needs
        .iter()
        .filter(|n| !Path::new(n.path).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    println!(
        "xtask: these host files are missing; installing the Debian packages that provide them:"
    );
    for n in &missing {
        println!("  {:<20} {} ({})", n.package, n.path, n.why);
    }
    if !has("apt-get") {
        return Err(format!(
            "apt-get is not available here; install the equivalents of: {}",
            packages.join(" ")
        ));
    }
    let root = is_root();
    if !root && !has("sudo") {
        return Err(format!(
            "installing needs root; run as root or install: apt-get install {}",
            packages.join(" ")
        ));
    }
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update", "-qq"]))?;
    let mut install = apt(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(&packages);
    run(&mut install)?;
    // Debian starts these as system services; the scenarios run their own in containers.
    for service in missing.iter().filter_map(|n| n.service) {
        let stopped = quiet(Command::new("systemctl").args(["stop", service]))
            || quiet(Command::new("service").args([service, "stop"]))
            || quiet(Command::new("pkill").args(["-x", service]));
        if stopped {
            println!("xtask: stopped the {service} system service the package started");
        }
    }
    match missing.iter().find(|n| !Path::new(n.path).exists()) {
        Some(n) => Err(format!(
            "{} is still missing after installing {}",
            n.path, n.package
        )),
        None => Ok(()),
    }
}

fn has(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    // The owner of our own /proc entry is our effective user; no libc call needed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn quiet(command: &mut Command) -> bool {
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("could not run {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}
