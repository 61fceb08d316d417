//! An engine reached over TCP at a non-loopback address, as a CI job reaches a
//! Docker-in-Docker service: the engine (not the core) says where published ports are, so
//! endpoints name the engine's host, probes and metric waits go there, and nothing assumes
//! 127.0.0.1.
//!
//! The test forwards a TCP port on this machine's own non-loopback address to the local
//! engine's socket, so the same engine looks remote to e2ekit.

use std::net::{IpAddr, SocketAddr};

use e2ekit::prelude::*;
use tokio::net::{TcpListener, UnixStream};

use crate::common;

/// This machine's address on its default route (what a remote client would dial).
fn own_address() -> IpAddr {
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    probe
        .connect("192.0.2.254:9")
        .or_else(|_| probe.connect("10.255.255.254:9"))
        .expect("a route off this machine: the remote-engine test needs a non-loopback address");
    let ip = probe.local_addr().expect("the chosen source address").ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "the remote-engine test needs a non-loopback address, found {ip}"
    );
    ip
}

/// Forwards `ip:<free port>` to the local engine socket until the returned task is aborted.
async fn engine_over_tcp(ip: IpAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    let listener = TcpListener::bind((ip, 0)).await.expect("a TCP listener");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                continue;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut engine) = UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_engine_gives_endpoints_on_its_host_not_loopback() -> e2ekit::Result<()> {
    let ip = own_address();
    let (engine_addr, forwarder) = engine_over_tcp(ip).await;
    let env = Environment::builder()
        .name("e2ekit-t-remote")
        .engine(Engine::docker_host(format!("tcp://{engine_addr}")))
        .build()
        .await?;
    let app = Instrumented::new(common::demo_runnable(&env, "app", &[]).await?, "http")?;
    start_and_wait_ready(&[&app]).await?; // the HTTP probe goes through the engine's host

    let endpoint: SocketAddr = app
        .endpoint("http")?
        .parse()
        .expect("an endpoint is host:port");
    assert_eq!(
        endpoint.ip(),
        ip,
        "published ports are reached on the engine's host"
    );
    let body = reqwest::get(format!("http://{endpoint}/ready"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("the service answers on the engine's host");
    assert_eq!(body.text().await.expect("a body").trim(), "ready");
    app.wait_sum_metrics(equals(1.0), ["demo_app_ready"])
        .await?; // metrics too

    env.close().await;
    forwarder.abort();
    assert_eq!(common::leftovers("e2ekit-t-remote"), (0, 0));
    Ok(())
}
