//! The blocking facade from plain `#[test]` functions: the README scenario's calls without
//! async, and the error it gives inside a runtime.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use e2ekit::blocking::{start_and_wait_ready, Environment, Instrumented};
use e2ekit::prelude::{
    cargo_bin, greater, Command, HostImage, HttpProbe, MetricsOptions, StartOptions, TcpProbe,
};

use crate::common::leftovers;

fn demo_app_image(env: &Environment) -> e2ekit::Result<String> {
    env.build_image(&HostImage::new("e2ekit-test/demo-app").binary(cargo_bin("demo-app")?))
}

fn demo(image: &str) -> StartOptions {
    StartOptions::new(image).command(Command::new("/bin/demo-app").args(["--listen", ":8080"]))
}

/// `GET path` over plain HTTP/1.0 with the standard library; the status code.
fn get(addr: &str, path: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[test]
fn the_readme_scenario_runs_from_a_plain_test() -> e2ekit::Result<()> {
    // Named after this test, from its thread, as the async API names it: the binary, the
    // module path and the start of the test's name (plus a hash when cut).
    let env = Environment::new()?;
    assert!(
        env.name().starts_with("engine-blocking-the-readme"),
        "{}",
        env.name()
    );
    assert!(env.shared_dir().is_dir());
    let image = demo_app_image(&env)?;

    let future = env
        .runnable("backend")
        .with_ports([("http", 8080)])
        .future()?;
    let backend_addr = future.internal_endpoint("http")?;
    let backend = future.init(demo(&image).readiness(HttpProbe::new("http", "/ready")))?;
    let frontend = env.runnable("frontend").with_ports([("http", 8080)]).init(
        demo(&image)
            .env("BACKEND", backend_addr)
            .readiness(TcpProbe::new("http")),
    )?;
    assert!(!backend.is_running());
    start_and_wait_ready(&[&backend, &frontend])?;
    assert!(backend.is_running() && frontend.is_running());
    assert_eq!(get(&frontend.endpoint("http")?, "/work"), 200);

    let frontend = Instrumented::new(frontend, "http")?;
    frontend.wait_sum_metrics(greater(0.0), ["demo_requests_total"])?;
    let sums = frontend.sum_metrics(["demo_requests_total"], MetricsOptions::new())?;
    assert!(sums[0] >= 1.0, "{sums:?}");

    let out = backend.exec(Command::new("/bin/demo-app").arg("--help"))?;
    assert!(
        out.stdout.contains("--listen") || out.stderr.contains("--listen"),
        "{out:?}"
    );

    backend.pause()?;
    backend.unpause()?;
    backend.disconnect()?; // partition ...
    backend.connect()?; // ... and heal
    backend.kill()?;
    assert!(!backend.is_running());
    backend.start()?; // a killed runnable starts again
    backend.wait_ready()?;
    backend.stop()?;
    frontend.stop()?;
    let last = env
        .runnable("last")
        .with_ports([("http", 8080)])
        .init(demo(&image).readiness(HttpProbe::new("http", "/ready")))?;
    last.start_and_wait_ready()?;

    let name = env.name().to_string();
    env.close()?;
    assert!(env.is_closed());
    assert_eq!(leftovers(&name), (0, 0));
    Ok(())
}

#[test]
fn inside_a_runtime_blocking_calls_fail_and_say_to_use_the_async_api() {
    let env = Environment::builder()
        .name("e2ekit-t-blocking-in-rt")
        .build()
        .expect("outside a runtime it works");
    let r = env
        .runnable("r")
        .init(StartOptions::new("e2ekit-test/none"))
        .expect("definition needs no engine");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let err = r.start().unwrap_err().to_string();
        assert!(
            err.contains("e2ekit::blocking::Runnable::start was called inside an async runtime"),
            "{err}"
        );
        assert!(err.contains("use the async API there"), "{err}");
        let err = Environment::new().unwrap_err().to_string();
        assert!(err.contains("use the async API there"), "{err}");
        assert!(env.close().is_err());
        // The async API is right there.
        env.as_async().close().await;
    });
    assert_eq!(leftovers("e2ekit-t-blocking-in-rt"), (0, 0));
}

/// Not a check: prints what a blocking call costs over awaiting the same call (for the
/// module docs and BENCHMARKS.md). `cargo test -p e2ekit --test engine
/// blocking::measure_overhead -- --ignored --nocapture`
#[test]
#[ignore = "a measurement; run it by name"]
fn measure_overhead() {
    fn threads() -> usize {
        std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
    }
    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }
    let before = threads();
    let env = Environment::builder()
        .name("e2ekit-t-blocking-cost")
        .build()
        .expect("env");
    let after = threads();
    let image = demo_app_image(&env).expect("image");
    let app = env
        .runnable("app")
        .with_ports([("http", 8080)])
        .init(demo(&image).readiness(HttpProbe::new("http", "/ready")))
        .expect("define");
    app.start_and_wait_ready().expect("start");
    let app = Instrumented::new(app, "http").expect("instrumented");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rounds = 300;
    let closed = Environment::builder()
        .name("e2ekit-t-blocking-cost2")
        .build()
        .expect("env");
    closed.close().expect("close");
    let (mut noop_b, mut noop_a, mut fetch_b, mut fetch_a) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        // No I/O: closing an environment that is closed (a lock and a flag).
        let t = Instant::now();
        closed.close().expect("close");
        noop_b.push(t.elapsed());
        let t = Instant::now();
        rt.block_on(closed.as_async().close());
        noop_a.push(t.elapsed());
        // I/O: one metrics fetch over loopback HTTP.
        let t = Instant::now();
        app.metrics().expect("metrics");
        fetch_b.push(t.elapsed());
        let t = Instant::now();
        rt.block_on(app.as_async().metrics()).expect("metrics");
        fetch_a.push(t.elapsed());
    }
    let (mut exec_b, mut exec_a) = (vec![], vec![]);
    for _ in 0..20 {
        let cmd = || Command::new("/bin/demo-app").arg("--help");
        let t = Instant::now();
        let _ = app.exec(cmd());
        exec_b.push(t.elapsed());
        let t = Instant::now();
        let _ = rt.block_on(app.as_async().exec(cmd()));
        exec_a.push(t.elapsed());
    }
    println!(
        "BLOCKING-COST threads +{} (runtime workers and its I/O)",
        after.saturating_sub(before)
    );
    for (what, b, a) in [
        ("no-I/O call", noop_b, noop_a),
        ("metrics fetch", fetch_b, fetch_a),
        ("exec", exec_b, exec_a),
    ] {
        let (b, a) = (median(b), median(a));
        println!(
            "BLOCKING-COST {what}: blocking {b:?}, async on a current-thread runtime {a:?}, +{:?} ({:.2}x)",
            b.saturating_sub(a),
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    env.close().expect("close");
}
