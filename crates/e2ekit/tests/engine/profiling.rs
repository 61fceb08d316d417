//! Profiling discovery against the real engine. There is no Parca image without a registry, so
//! a stand-in with Parca's layout (`/parca`, HTTP on 7070 serving `/metrics`) plays its part:
//! what is under test is e2ekit keeping Parca's scrape jobs equal to the profiled runnables.

use std::time::Duration;

use e2ekit::prelude::*;
use e2ekit::profiling::{Profiled, ProfilingOptions};
use serde_json::Value;

use crate::common;

/// busybox httpd answering where Parca does; it ignores Parca's flags.
async fn stand_in_parca(env: &Environment) -> Result<String> {
    let busybox = "/bin/busybox";
    assert!(
        std::path::Path::new(busybox).is_file(),
        "this test needs a static busybox at {busybox}: apt-get install busybox-static (see .ci/run)"
    );
    HostImage::new("e2ekit-test/parca-stand-in")
        .binary_at(busybox, "/bin/busybox")
        .symlink("/bin/sh", "/bin/busybox")
        .symlink("/bin/httpd", "/bin/busybox")
        .executable("/parca", "#!/bin/sh\nexec httpd -f -p 7070 -h /www\n")
        .content("/www/metrics", "parca_stand_in_up 1\n")
        .build(env)
        .await
}

fn jobs(config_file: &std::path::Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(config_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", config_file.display()));
    let config: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {text}", config_file.display()));
    config["scrape_configs"]
        .as_array()
        .map(|jobs| {
            jobs.iter()
                .map(|j| {
                    (
                        j["job_name"].as_str().unwrap_or_default().to_string(),
                        j["static_configs"][0]["targets"][0]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn parca_follows_profiled_runnables_as_they_start_and_stop() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-profiling")
        .build()
        .await?;
    let early = Profiled::new(common::demo_runnable(&env, "early", &[]).await?, "http")?;
    start_and_wait_ready(&[early.runnable()]).await?;
    let plain = common::demo_runnable(&env, "plain", &[]).await?;
    start_and_wait_ready(&[&plain]).await?;

    let image = stand_in_parca(&env).await?;
    let profiling = profiling::start_with(
        &env,
        ProfilingOptions::new()
            .parca_image(image)
            .scrape_interval(Duration::from_secs(2)),
    )
    .await?;
    let config = profiling.parca().config_path().to_path_buf();
    let early_target = early.runnable().internal_endpoint("http")?;
    assert_eq!(jobs(&config), [("early".to_string(), early_target.clone())]);

    let late = Observable::new(common::demo_runnable(&env, "late", &[]).await?, "http")?;
    start_and_wait_ready(&[&late]).await?;
    let late_target = late.internal_endpoint("http")?;
    let mut now = jobs(&config);
    now.sort();
    assert_eq!(
        now,
        [
            ("early".to_string(), early_target),
            ("late".to_string(), late_target.clone())
        ]
    );

    early.runnable().stop().await?;
    assert_eq!(jobs(&config), [("late".to_string(), late_target)]);
    assert!(profiling.ui_url()?.starts_with("http://127.0.0.1:"));
    env.close().await;
    Ok(())
}
