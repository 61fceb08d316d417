//! [`Cluster`]: several private engines that can reach each other (for Docker Swarm tests).

use crate::engine::{Builder, PrivateEngine};
use crate::node;
use crate::sys;
use crate::Error;

/// `n` private engines, each with a TCP listener, whose nodes can reach each other.
///
/// Traffic between two nodes is routed through the host, where the main engine's FORWARD
/// policy drops it; the cluster inserts `-i e2k-hA -o e2k-hB -j ACCEPT` (both directions,
/// every pair) at the top of the DOCKER-USER chain. The rules carry the comment
/// `e2ekit-test-engines` and are removed with the engines (each engine's teardown removes
/// every such rule naming its veth, so a reaped stale cluster loses them too).
#[derive(Debug)]
pub struct Cluster {
    engines: Vec<PrivateEngine>,
}

impl Cluster {
    /// Starts `n` engines with [`Builder::tcp`] (concurrently) and opens forwarding between
    /// every pair of nodes. On failure, whatever was started is torn down again.
    pub fn start(n: usize) -> Result<Cluster, Error> {
        Self::start_with(n, PrivateEngine::builder())
    }

    /// Like [`start`](Self::start), with the given options for every engine (`tcp` is forced on).
    pub fn start_with(n: usize, builder: Builder) -> Result<Cluster, Error> {
        let tools = sys::tools()?;
        let builder = builder.tcp(true);
        let results: Vec<Result<PrivateEngine, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| s.spawn(|| builder.clone().start()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::State {
                            node: "cluster".into(),
                            what: "a thread starting an engine panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut engines = Vec::with_capacity(n);
        let mut first_err = None;
        for r in results {
            match r {
                Ok(e) => engines.push(e),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        // Dropping the started engines tears them down.
        if let Some(e) = first_err {
            return Err(e);
        }
        engines.sort_by_key(PrivateEngine::index);
        for a in &engines {
            for b in &engines {
                if a.index() != b.index() {
                    node::add_rule(a.name(), &tools.iptables, a.veth(), b.veth())?;
                }
            }
        }
        Ok(Cluster { engines })
    }

    /// Forms a Docker Swarm of the engines: the first initialises it, advertising its node
    /// address, and the others join it as workers (through the `docker` CLI). The swarm lives
    /// in the engines' data directories and goes with them. Start the engines with
    /// `default_route(false)`: a swarm node's agent tries to pull every task's image, which
    /// with a default route waits seconds for registry lookups that cannot succeed here.
    pub fn init_swarm(&self) -> Result<(), Error> {
        let first = self.engines.first().ok_or_else(|| Error::State {
            node: "cluster".into(),
            what: "a swarm needs at least one engine".into(),
        })?;
        let manager = first.node_addr();
        docker(first, &["swarm", "init", "--advertise-addr", &manager])?;
        let token = docker(first, &["swarm", "join-token", "-q", "worker"])?;
        let token = token.trim().to_string();
        for worker in &self.engines[1..] {
            docker(
                worker,
                &[
                    "swarm",
                    "join",
                    "--token",
                    &token,
                    &format!("{manager}:2377"),
                ],
            )?;
        }
        Ok(())
    }

    /// The engines, in index order.
    pub fn engines(&self) -> &[PrivateEngine] {
        &self.engines
    }

    /// The engines, for fault controls ([`PrivateEngine::kill`] and so on).
    pub fn engines_mut(&mut self) -> &mut [PrivateEngine] {
        &mut self.engines
    }

    /// Tears every engine down (and with them the DOCKER-USER rules), reporting all problems.
    pub fn stop(self) -> Result<(), Error> {
        let mut problems = Vec::new();
        for e in self.engines {
            if let Err(err) = e.stop() {
                problems.push(err.to_string());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Teardown {
                node: "cluster".into(),
                problems,
            })
        }
    }
}

/// Runs `docker -H <engine's socket> args`; its stdout.
fn docker(engine: &PrivateEngine, args: &[&str]) -> Result<String, Error> {
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(engine.docker_host())
        .args(args)
        .output()
        .map_err(|e| Error::io(engine.name().to_string(), "running the docker CLI", e))?;
    if !out.status.success() {
        return Err(Error::State {
            node: engine.name().to_string(),
            what: format!(
                "docker {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
