//! `e2ekit-test-engines`: list and reap private Docker engines, for CI scripts and humans.

use std::process::ExitCode;

const USAGE: &str = "usage: e2ekit-test-engines <command>

commands:
  ls     list private engines (live and stale)
  reap   tear down every private engine whose owning process is gone
  swarm N -- COMMAND [ARGS]
         start N private engines, form a Docker Swarm of them, run COMMAND with
         E2EKIT_ENGINE=swarm and DOCKER_HOST=<the manager>, then tear the swarm down
         (also when COMMAND fails); exits with COMMAND's status";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ls") => ls(),
        Some("reap") => reap(),
        Some("swarm") => return swarm(&args[1..]),
        // Hidden: start an engine, print "INDEX DOCKER_HOST", then wait to be killed. The
        // crate's tests SIGKILL it to produce a stale engine.
        Some("hold") => hold(args.iter().any(|a| a == "--tcp")),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ls() -> Result<(), e2ekit_test_engines::Error> {
    let nodes = e2ekit_test_engines::list();
    if nodes.is_empty() {
        println!("no private engines");
        return Ok(());
    }
    println!(
        "{:<5} {:<14} {:<16} {:<8} {:<6} {:<6}",
        "INDEX", "NAME", "STATE", "DOCKERD", "NETNS", "SOCKET"
    );
    for n in nodes {
        let state = match (n.held, n.owner_pid) {
            (true, Some(pid)) => format!("held by {pid}"),
            (true, None) => "held".to_string(),
            (false, _) => "stale".to_string(),
        };
        let dockerd = n
            .dockerd_pid
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let yn = |b: bool| if b { "yes" } else { "no" };
        println!(
            "{:<5} {:<14} {:<16} {:<8} {:<6} {:<6}",
            n.index,
            n.name,
            state,
            dockerd,
            yn(n.netns),
            yn(n.socket)
        );
    }
    Ok(())
}

fn reap() -> Result<(), e2ekit_test_engines::Error> {
    let r = e2ekit_test_engines::reap_all()?;
    println!("reaped: {:?}; in use (left alone): {:?}", r.reaped, r.busy);
    Ok(())
}

fn hold(tcp: bool) -> Result<(), e2ekit_test_engines::Error> {
    use std::io::Write;
    let engine = e2ekit_test_engines::PrivateEngine::builder()
        .tcp(tcp)
        .start()?;
    println!("{} {}", engine.index(), engine.docker_host());
    let _ = std::io::stdout().flush();
    // Until killed. A closed stdin (the parent went away without killing us) also ends it,
    // so a crashed test run does not leave this process behind forever.
    let mut buf = String::new();
    let _ = std::io::stdin().read_line(&mut buf);
    drop(engine);
    Ok(())
}

/// `swarm N -- COMMAND...`: runs COMMAND against a fresh N-node swarm, then removes it.
fn swarm(args: &[String]) -> ExitCode {
    let n: usize = match args.first().and_then(|n| n.parse().ok()) {
        Some(n) if n > 0 => n,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let command: Vec<&String> = args.iter().skip(1).skip_while(|a| *a == "--").collect();
    let Some((program, rest)) = command.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // Nodes route only to each other: an agent's pull attempts then fail at once.
    let nodes = e2ekit_test_engines::PrivateEngine::builder().default_route(false);
    let cluster = match e2ekit_test_engines::Cluster::start_with(n, nodes)
        .and_then(|c| c.init_swarm().map(|()| c))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: starting the swarm: {e}");
            return ExitCode::FAILURE;
        }
    };
    let manager = cluster.engines()[0].tcp_host().unwrap_or_default();
    println!("e2ekit-test-engines: a {n}-node swarm is up, manager {manager}");
    let status = std::process::Command::new(program)
        .args(rest)
        .env("E2EKIT_ENGINE", "swarm")
        .env("DOCKER_HOST", &manager)
        .status();
    let teardown = cluster.stop();
    if let Err(e) = &teardown {
        eprintln!("error: tearing the swarm down: {e}");
    }
    match status {
        Ok(s) if s.success() && teardown.is_ok() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("e2ekit-test-engines: {} ended with {s}", program);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: running {program}: {e}");
            ExitCode::FAILURE
        }
    }
}
