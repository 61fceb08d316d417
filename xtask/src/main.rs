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
    if !args.is_empty() {
        command.args(args);
        return run(&mut command);
    }
    // The swarm tests run in a process of their own: each forms and removes swarms at the
    // same private addresses, which the other tests' private engines reuse meanwhile.
    command.args(["--workspace", "--", "--skip", "swarm::"]);
    run(&mut command)?;
    run(Command::new(cargo()).args([
        "test",
        "--package",
        "e2ekit",
        "--test",
        "engine",
        "--",
        "swarm::",
    ]))?;
    // The skip above also matched the Swarm backend's unit tests.
    run(Command::new(cargo()).args(["test", "--package", "e2ekit", "--lib", "--", "swarm::"]))?;
    // The whole suite also runs on a swarm; a filtered run (`cargo xtask test ARGS`) does not.
    test_on_swarm()
}

/// Engine tests that do not run on a Docker Swarm, and why; the README's "Docker Swarm"
/// section lists the same. Every other engine test runs a second time against a 3-node swarm.
const NOT_ON_SWARM: &[(&str, &str)] = &[
    ("swarm::", "they start their own swarms"),
    ("faults::", "they kill and freeze private engines of their own"),
    ("engines::", "they test finding an engine, with private engines and settings of their own"),
    ("registry_auth::", "it points its child processes at engines and registries of its own"),
    ("out_of_workspace::", "it builds a crate outside the workspace; swarm::the_readme_scenario_runs_unchanged_with_e2ekit_engine_swarm runs the same scenario on a swarm"),
    ("demo::", "the standalone demo runs on the local engine"),
    ("reaper::", "they plant leftovers with the local engine's CLI"),
    ("container_options::on_a_remote_engine", "it starts a private remote engine of its own"),
    ("catalog::etcd_elects_itself_and_stores_a_key", "it reads the files the service wrote from this host; on a swarm they stay on the task's node"),
    ("catalog::prometheus_scrapes_itself_and_reloads_a_new_config", "it reads the files the service wrote from this host; on a swarm they stay on the task's node"),
    ("environment::shared_dir_has_the_same_path_inside_and_outside", "a swarm gets a copy of the shared directory, not a mount"),
    ("environment::close_removes_files_containers_wrote_as_root", "nothing a task writes lands on this host"),
    ("environment::volumes_and_cpu_limit_apply_to_every_runnable", "host-path volumes cannot reach another host"),
    ("workflow::a_shared_setup_notices_a_crash", "it triggers the crash through a file written on this host"),
    ("lifecycle::start_options_reach_the_container", "services cannot ask for a user-namespace mode"),
    ("container_options::a_fixed_host_port", "it expects the port on 127.0.0.1; a swarm publishes it on the task's node"),
    ("container_options::named_volumes_tmpfs", "it lists volumes and runs read-only-root copies on the local engine"),
    ("container_options::output_identity_and_exit_code", "it checks the container id with the local engine's CLI"),
    ("crash_safety::keep_on_failure", "it expects endpoints on 127.0.0.1"),
    ("monitoring::container_metrics_and_typed_query_results", "it expects the UI on 127.0.0.1"),
    ("profiling::parca_follows", "it expects the UI on 127.0.0.1"),
    ("ecosystem::an_image_pushed_to_the_scenarios_registry", "the registry's port is published on a node, where the manager's engine cannot push to 127.0.0.1"),
    ("images::unused_host_images_are_pruned", "pruning sees the containers of the manager's engine only"),
    ("probes_more::unhealthy_fails_fast", "Swarm kills an unhealthy task itself: the wait fails with its exit (137) instead"),
];

/// Runs the engine tests again on a fresh 3-node Docker Swarm (private engines in network
/// namespaces; root needed), skipping [`NOT_ON_SWARM`].
fn test_on_swarm() -> Result<(), String> {
    println!("xtask: running the engine tests again on a 3-node Docker Swarm");
    let mut command = Command::new(cargo());
    command.args([
        "run",
        "--quiet",
        "--package",
        "e2ekit-test-engines",
        "--",
        "swarm",
        "3",
        "--",
    ]);
    command
        .arg(cargo())
        .args(["test", "--package", "e2ekit", "--test", "engine", "--"]);
    for (test, _why) in NOT_ON_SWARM {
        command.args(["--skip", test]);
    }
    command.args(["--test-threads", "2"]);
    // The swarm goes the moment the tests end: a reaper of theirs would find nothing to
    // reach. Kills are covered by the sweep tests here, and by reaper:: on the local engine.
    command.env("E2EKIT_NO_REAPER", "1");
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
