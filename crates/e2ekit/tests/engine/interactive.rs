//! Interactive helpers return on a hit of the printed URL, on a signal, and on a time limit.

use std::io::BufRead;
use std::time::Duration;

use e2ekit::interactive::{self, FinishEndpoint, Finished};

#[tokio::test]
async fn returns_when_the_url_is_opened() -> e2ekit::Result<()> {
    let endpoint = FinishEndpoint::bind(0).await?;
    let url = endpoint.url();
    let waiting = tokio::spawn(endpoint.wait(None));
    let body = reqwest::get(&url)
        .await
        .expect("GET the finish URL")
        .text()
        .await
        .expect("body");
    assert!(body.contains("cleaning up"), "{body}");
    assert_eq!(waiting.await.expect("wait task")?, Finished::EndpointHit);
    let limited =
        interactive::run_until_endpoint_hit_on(0, Some(Duration::from_millis(50))).await?;
    assert_eq!(limited, Finished::TimeLimit);
    Ok(())
}

#[test]
fn returns_on_sigint() {
    if std::env::var_os("E2EKIT_CHILD_SIGNAL").is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let finished = rt.block_on(async {
            let wait = interactive::run_until_signal();
            tokio::pin!(wait);
            // Handlers are installed on the first poll; only then may the parent signal us.
            tokio::select! {
                r = &mut wait => return r,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            println!("CHILD-WAITING");
            wait.await
        });
        println!("CHILD-FINISHED {finished:?}");
        return;
    }
    let mut child = crate::common::child_command(
        "interactive::returns_on_sigint",
        &[("E2EKIT_CHILD_SIGNAL", "1")],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("spawn child");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map_while(|l| l.ok());
    assert!(
        lines.any(|l| l.contains("CHILD-WAITING")),
        "the child never waited"
    );
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(kill.success());
    let rest: Vec<String> = lines.collect();
    let status = child.wait().expect("child exit");
    assert!(
        rest.iter().any(|l| l.contains("CHILD-FINISHED Ok(Signal)")),
        "{rest:?}"
    );
    assert!(status.success(), "{rest:?}");
}

#[test]
fn open_in_browser_uses_the_opener_and_explains_a_missing_one() {
    // $BROWSER is process-wide, so each case runs in a child copy of this test binary.
    if let Ok(expect_ok) = std::env::var("E2EKIT_CHILD_BROWSER") {
        let result = interactive::open_in_browser("http://127.0.0.1:1/");
        match (expect_ok.as_str(), result) {
            ("ok", Ok(())) => println!("CHILD-OPENED"),
            ("err", Err(e)) => println!("CHILD-ERROR {e}"),
            (_, other) => panic!("unexpected {other:?}"),
        }
        return;
    }
    let test = "interactive::open_in_browser_uses_the_opener_and_explains_a_missing_one";
    let out =
        crate::common::run_child_test(test, &[("E2EKIT_CHILD_BROWSER", "ok"), ("BROWSER", "true")]);
    assert!(out.contains("CHILD-OPENED"), "{out}");
    let out = crate::common::run_child_test(
        test,
        &[
            ("E2EKIT_CHILD_BROWSER", "err"),
            ("BROWSER", "/nonexistent/browser"),
        ],
    );
    assert!(
        out.contains("CHILD-ERROR") && out.contains("open the URL by hand"),
        "{out}"
    );
}
