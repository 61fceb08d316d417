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

/// `print_output(false)` on the environment silences every runnable, and a runnable's own
/// `print_output(true)` wins over it; consumers see the lines either way.
#[test]
fn printing_is_silenced_per_environment_and_a_runnable_may_speak_again() {
    if std::env::var_os("E2EKIT_CHILD_QUIET").is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let env = Environment::builder()
                .name("e2ekit-t-output-quiet")
                .print_output(false)
                .build()
                .await?;
            let image = crate::common::busybox(&env).await?;
            let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let sink = seen.clone();
            let quiet = env.runnable("quiet").init(
                StartOptions::new(&image)
                    .command(Command::sh("echo hush-1; echo hush-2; sleep 3600"))
                    .readiness(LogProbe::contains("hush-2"))
                    .on_output(move |l: &OutputLine| {
                        sink.lock().expect("lock").push(l.text().to_string())
                    }),
            )?;
            let loud = env.runnable("loud").init(
                StartOptions::new(&image)
                    .command(Command::sh("echo spoken; sleep 3600"))
                    .readiness(LogProbe::contains("spoken"))
                    .print_output(true),
            )?;
            start_and_wait_ready(&[&quiet, &loud]).await?;
            assert_eq!(*seen.lock().expect("lock"), ["hush-1", "hush-2"]);
            env.close().await;
            Ok::<_, Error>(())
        })
        .expect("child scenario");
        return;
    }
    let out = crate::common::run_child_test(
        "output::printing_is_silenced_per_environment_and_a_runnable_may_speak_again",
        &[("E2EKIT_CHILD_QUIET", "1")],
    );
    assert!(
        out.contains("loud: spoken"),
        "the runnable that asked to print did:\n{out}"
    );
    assert!(
        !out.contains("quiet: hush"),
        "the silenced runnable printed:\n{out}"
    );
}

/// A number written as `(N bytes cut)` in `text`, if any.
fn bytes_cut(text: &str) -> Option<u64> {
    let end = text.find(" bytes cut)")?;
    let start = text[..end].rfind('(')? + 1;
    text[start..end].parse().ok()
}

#[tokio::test]
async fn a_multi_megabyte_line_gives_a_small_error_that_says_how_much_was_cut() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-flood-line")
        .build()
        .await?;
    let image = crate::common::busybox(&env).await?;
    // One 3 MB line (no newline until the end), then a short line, then a non-zero exit; the
    // readiness probe never passes, so the exit ends the wait.
    let flood = env.runnable("flood").init(
        StartOptions::new(image)
            .command(Command::sh(
                "echo before; /bin/busybox head -c 3000000 /dev/zero | /bin/busybox tr '\\0' a; \
                 echo; echo done-flooding; exit 3",
            ))
            .readiness(LogProbe::contains("never printed")),
    )?;
    let err = start_and_wait_ready(&[&flood]).await.unwrap_err();
    let report = err.report();
    let head: String = report.chars().take(300).collect();
    assert_eq!(err.exit_code(), Some(3), "{head}");
    assert!(
        report.len() < 16 * 1024,
        "the error is {} bytes: {head}…",
        report.len()
    );
    let tail = err.log_tail().expect("a log tail");
    assert!(
        tail.iter().any(|l| l == "done-flooding"),
        "{head}… {:?}",
        tail.iter().map(|l| l.len()).collect::<Vec<_>>()
    );
    let long = tail
        .iter()
        .find(|l| l.starts_with("aaaa"))
        .expect("the long line, cut");
    assert!(long.len() < 2048, "kept {} bytes of the line", long.len());
    let cut = bytes_cut(long).expect("says how many bytes were cut");
    assert!(cut > 0, "{long}");
    env.close().await;
    Ok(())
}

#[tokio::test]
async fn an_out_of_memory_kill_is_named_in_the_error() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-flood-oom")
        .build()
        .await?;
    let image = crate::common::busybox(&env).await?;
    // The shell keeps the command substitution's 64 MB in memory: far over the 8 MiB limit.
    let hog = env.runnable("hog").init(
        StartOptions::new(image)
            .memory_bytes(8 << 20)
            .command(Command::sh(
                "echo allocating; \
                 x=$(/bin/busybox head -c 64000000 /dev/zero | /bin/busybox tr '\\0' a); \
                 echo survived ${#x}",
            ))
            .readiness(LogProbe::contains("never printed")),
    )?;
    let err = start_and_wait_ready(&[&hog]).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), Some(137), "{text}");
    assert!(
        text.contains(&format!(
            "killed: out of memory (memory limit {} bytes)",
            8 << 20
        )),
        "{text}"
    );
    env.close().await;
    Ok(())
}
