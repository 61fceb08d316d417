use e2ekit::prelude::*;

use crate::common;

#[tokio::test]
async fn demo_app_starts_and_is_ready() -> Result<()> {
    let env = Environment::new().await?;
    let app = common::demo_runnable(&env, "app", &["--ready-after-ms", "300"]).await?;
    start_and_wait_ready(&[&app]).await?;
    let ep = app.endpoint("http")?;
    assert!(ep.starts_with("127.0.0.1:"), "{ep}");
    let name = env.name().to_string();
    env.close().await;
    assert_eq!(common::leftovers(&name), (0, 0));
    Ok(())
}
