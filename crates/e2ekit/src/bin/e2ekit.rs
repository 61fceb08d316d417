//! `e2ekit`: list and remove e2ekit environments on the engine.
//!
//! ```text
//! e2ekit ls                 environments, their owner state and resource counts
//! e2ekit gc                 remove environments whose owner process is gone, or whose
//!                           owner is on another host and whose resources are all older
//!                           than 24 h (kept and owner-less ones stay)
//! e2ekit gc --env NAME      remove one environment, whoever owns it
//! e2ekit gc --all           remove every e2ekit environment, including kept and live ones
//! e2ekit gc --images        remove images built from host files that no container uses
//! ```
//! The engine is found as the Docker CLI finds it: `DOCKER_HOST` (TLS with `DOCKER_TLS_VERIFY`),
//! the current Docker context, else the usual local sockets.

use std::process::ExitCode;

use e2ekit::sweep::{self, OwnerState};

const USAGE: &str = "usage: e2ekit ls | e2ekit gc [--all | --env NAME | --images]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["ls"] => ls().await,
        ["gc"] => gc_orphans().await,
        ["gc", "--all"] => gc_all().await,
        ["gc", "--images"] => gc_images().await,
        ["gc", "--env", name] => sweep::remove_environment(None, name)
            .await
            .map(|_| println!("removed {name}")),
        ["-h" | "--help" | "help"] => {
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
            eprintln!("e2ekit: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn ls() -> e2ekit::Result<()> {
    let envs = sweep::list_environments(None).await?;
    if envs.is_empty() {
        println!("no e2ekit environments");
        return Ok(());
    }
    println!(
        "{:<42} {:<9} {:>10} {:>8} {:>7}  OWNER",
        "NAME", "STATE", "CONTAINERS", "NETWORKS", "VOLUMES"
    );
    for env in envs {
        let state = match env.state {
            OwnerState::Alive => "alive",
            OwnerState::Orphaned => "orphaned",
            OwnerState::Kept => "kept",
            OwnerState::Unknown => "unknown",
        };
        println!(
            "{:<42} {:<9} {:>10} {:>8} {:>7}  {}",
            env.name,
            state,
            env.containers,
            env.networks,
            env.volumes,
            env.owners.join(",")
        );
    }
    Ok(())
}

async fn gc_orphans() -> e2ekit::Result<()> {
    let removed = sweep::remove_orphans(None).await?;
    println!("removed {} orphaned environment(s)", removed.len());
    for name in removed {
        println!("  {name}");
    }
    Ok(())
}

async fn gc_all() -> e2ekit::Result<()> {
    let envs = sweep::list_environments(None).await?;
    for env in &envs {
        sweep::remove_environment(None, &env.name).await?;
        println!("removed {}", env.name);
    }
    println!("removed {} environment(s)", envs.len());
    Ok(())
}

async fn gc_images() -> e2ekit::Result<()> {
    let pruned = sweep::prune_images(None, None).await?;
    for tag in &pruned.removed {
        println!("removed {tag}");
    }
    for tag in &pruned.in_use {
        println!("kept {tag} (used by a container)");
    }
    println!(
        "{} image tag(s) removed, {} in use",
        pruned.removed.len(),
        pruned.in_use.len()
    );
    Ok(())
}
