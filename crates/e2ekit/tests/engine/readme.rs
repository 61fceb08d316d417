//! The README's scenario ("## A scenario" in README.md), verbatim between the markers.
//!
//! `tests/readme_sync.rs` fails when the text between the markers and the README's rust
//! block differ: edit both together. rustfmt skips this file (see `main.rs`), so the README's
//! layout survives `cargo fmt`.

// README-BEGIN
// crates/e2ekit/tests/engine/readme.rs runs this exact scenario.
use e2ekit::prelude::*;

#[tokio::test]
async fn two_services_talk() -> e2ekit::Result<()> {
    let env = Environment::new().await?; // named after this test; old leftovers removed
    let image = HostImage::new("e2ekit/demo-app")
        .binary(cargo_bin("demo-app")?) // in the owning package: env!("CARGO_BIN_EXE_demo-app")
        .build(&env).await?;            // content-addressed: unchanged input = instant

    let future = env.runnable("backend").with_ports([("http", 8080)]).future()?;
    let backend_addr = future.internal_endpoint("http")?; // known before anything starts
    let backend = future.init(StartOptions::new(image.clone())
        .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
        .readiness(HttpProbe::new("http", "/ready")))?;
    let frontend = env.runnable("frontend").with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
            .env("BACKEND", backend_addr)
            .readiness(TcpProbe::new("http")))?;

    start_and_wait_ready(&[&backend, &frontend]).await?; // concurrent; fails fast on a crash
    let url = format!("http://{}/work", frontend.endpoint("http")?); // 127.0.0.1:<mapped>
    assert!(reqwest::get(url).await.expect("frontend answers").status().is_success());

    backend.disconnect().await?; // partition ...
    backend.connect().await?;    // ... and heal
    backend.kill().await?;
    backend.start().await?;      // a killed runnable starts again
    env.close().await;           // also on drop, and when the test panics
    Ok(())
}
// README-END
