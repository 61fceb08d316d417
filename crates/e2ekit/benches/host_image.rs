//! Rebuilding host images whose inputs did not change (issue 14: the host Prometheus image
//! cost 10 s per `build()`, because every build re-read and re-hashed all input).
//!
//! For the Prometheus host image (`e2ekit::prometheus::host_image()`, Debian's binary and web
//! assets) and for `HostImage::debian_package("prometheus-alertmanager")`, the bench removes
//! the image's tags, builds it once (read, hash, import) and then rebuilds it
//! `E2EKIT_BENCH_ITERS` times (default 20) with nothing changed, reporting the first build and
//! the rebuilds' median, p90 and max, and the image's size. Compare with the 10.06 s
//! per build before the metadata cache.
//!
//! Run: `cargo bench -p e2ekit --bench host_image` (needs Debian's `prometheus` and
//! `prometheus-alertmanager`; `cargo xtask test` installs them).

use std::time::Instant;

use e2ekit::prelude::*;

#[allow(dead_code)] // uses a subset
mod common;
use common::{ms, percentile, sorted, Res};

async fn measure(env: &Environment, label: &str, image: HostImage, iters: usize) -> Res<()> {
    // A cold start: no tag of this repository on the engine.
    let repo = image.clone().build(env).await?;
    let repo = repo.split(':').next().unwrap_or_default().to_string();
    let tags = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", &repo])
        .output()?;
    for tag in String::from_utf8_lossy(&tags.stdout).lines() {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", tag])
            .output();
    }
    let t = Instant::now();
    let built = image.clone().build(env).await?;
    let first = t.elapsed();
    let mut rebuilds = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let again = image.clone().build(env).await?;
        rebuilds.push(t.elapsed());
        if again != built {
            return Err(format!("an unchanged rebuild gave {again}, not {built}").into());
        }
    }
    let size = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", &built])
        .output()?;
    let size: f64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0);
    let v = sorted(rebuilds.iter().map(|d| ms(*d)));
    println!(
        "{label}: image {:.1} MB; first build {:.0} ms; unchanged rebuild (n={}) median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        size / 1e6,
        ms(first),
        v.len(),
        percentile(&v, 50.0),
        percentile(&v, 90.0),
        v[v.len() - 1],
    );
    Ok(())
}

async fn run(iters: usize) -> Res<()> {
    let env = Environment::builder()
        .name("e2ekit-bench-host-image")
        .build()
        .await?;
    let result = async {
        measure(
            &env,
            "prometheus host image",
            e2ekit::prometheus::host_image(),
            iters,
        )
        .await?;
        let am = HostImage::debian_package("e2ekit-bench/alertmanager", "prometheus-alertmanager")?;
        measure(&env, "alertmanager debian_package", am, iters).await
    }
    .await;
    env.close().await;
    result
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("host_image: bench");
        return;
    }
    let iters = std::env::var("E2EKIT_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(iters)) {
        eprintln!("host_image bench: {e}");
        std::process::exit(1);
    }
}
