//! The standalone demo: three `demo-app` replicas on a private network, built into an image
//! from the local binary (no registry), with their URLs printed. It waits until you open the
//! printed "finish" URL or press Ctrl-C, then removes everything.
//!
//! ```text
//! cargo run --example standalone
//! E2EKIT_DEMO_SECONDS=5 cargo run --example standalone   # unattended: finish after 5 s
//! ```

use std::time::Duration;

use e2ekit::prelude::*;

#[tokio::main]
async fn main() -> Result<()> {
    let limit = std::env::var("E2EKIT_DEMO_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);

    let env = Environment::builder().name("e2ekit-demo").build().await?;
    let image = HostImage::new("e2ekit/demo-app")
        .binary(cargo_bin("demo-app")?)
        .tag("latest")
        .build(&env)
        .await?;

    let mut replicas = Vec::new();
    for i in 1..=3 {
        let name = format!("app-{i}");
        let replica = env
            .runnable(name.clone())
            .with_ports([("http", 8080)])
            .init(
                StartOptions::new(image.clone())
                    .command(
                        Command::new("/bin/demo-app").args(["--listen", ":8080", "--name", &name]),
                    )
                    .readiness(HttpProbe::new("http", "/ready")),
            )?;
        replicas.push(replica);
    }
    let all: Vec<&dyn AsRunnable> = replicas.iter().map(|r| r as &dyn AsRunnable).collect();
    start_and_wait_ready(&all).await?;

    println!("\nEnvironment {:?} is up:", env.name());
    for r in &replicas {
        let url = format!("http://{}", r.endpoint("http")?);
        println!(
            "  {:<6} {url}/  (metrics: {url}/metrics, load: {url}/work)",
            r.name()
        );
        // A first request so the counters have something to show.
        let _ = reqwest::get(format!("{url}/work")).await;
    }
    println!(
        "  inside the network: {}",
        replicas[0].internal_endpoint("http")?
    );

    let finished = interactive::run_until_endpoint_hit_on(0, limit).await?;
    println!("Finished ({finished:?}); cleaning up.");
    env.close().await;
    Ok(())
}
