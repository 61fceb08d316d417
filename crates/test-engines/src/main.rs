//! `e2ekit-test-engines`: list and reap private Docker engines, for CI scripts and humans.

use std::process::ExitCode;

const USAGE: &str = "usage: e2ekit-test-engines <command>

commands:
  ls     list private engines (live and stale)
  reap   tear down every private engine whose owning process is gone";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ls") => ls(),
        Some("reap") => reap(),
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
