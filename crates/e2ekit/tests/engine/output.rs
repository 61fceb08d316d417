//! Container output reaches the test's output with a `name: ` prefix.

use e2ekit::prelude::*;

#[test]
fn container_output_is_printed_with_the_runnable_name() {
    if std::env::var_os("E2EKIT_CHILD_OUTPUT").is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let env = Environment::builder()
                .name("e2ekit-t-output")
                .build()
                .await?;
            let app = crate::common::demo_runnable(&env, "talker", &["--print-lines", "3"]).await?;
            start_and_wait_ready(&[&app]).await?;
            app.stop().await?;
            env.close().await;
            Ok::<_, Error>(())
        })
        .expect("child scenario");
        return;
    }
    let out = crate::common::run_child_test(
        "output::container_output_is_printed_with_the_runnable_name",
        &[("E2EKIT_CHILD_OUTPUT", "1")],
    );
    for expected in [
        "talker: line 1",
        "talker: line 3",
        "talker: listening on",
        "talker: shutting down",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}
