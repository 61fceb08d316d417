//! The README's main command, the standalone demo, end to end (shortened by its time limit).

#[test]
fn the_standalone_demo_runs_end_to_end() {
    let exe = std::env::current_exe().expect("test binary path");
    let demo = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("standalone"))
        .expect("target dir layout");
    assert!(
        demo.is_file(),
        "cargo test builds examples; {} is missing",
        demo.display()
    );
    let chart = std::env::temp_dir().join("e2ekit-t-demo-chart.png");
    let _ = std::fs::remove_file(&chart);
    let out = std::process::Command::new(&demo)
        .envs([
            ("E2EKIT_DEMO_SECONDS", "10"),
            ("E2EKIT_DEMO_NAME", "e2ekit-t-demo"),
            (
                "E2EKIT_DEMO_CHART",
                chart.to_str().expect("utf-8 temp path"),
            ),
        ])
        .output()
        .expect("run the demo");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{text}");
    for expected in [
        "Prometheus  http://127.0.0.1:",
        "app-3       http://127.0.0.1:",
        "loadgen",
        "Open http://127.0.0.1:",
        "Chart of the run:",
        "Cleaned up.",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("requests: app-1 ") && l.contains("app-3")),
        "a live request-rate line for every replica:\n{text}"
    );
    // The load generator starts once every replica is ready: not one refused request.
    let load: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("loadgen: load requests="))
        .collect();
    assert!(
        !load.is_empty(),
        "the load generator reports its requests:\n{text}"
    );
    assert!(
        load.iter().all(|l| l.contains(" error=0")),
        "requests failed during the demo: {load:#?}"
    );
    let png = std::fs::read(&chart).expect("the chart is written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let reader = decoder.read_info().expect("a decodable PNG");
    assert!(reader.info().width >= 640 && reader.info().height >= 480);
    assert_eq!(crate::common::leftovers("e2ekit-t-demo"), (0, 0));
    let _ = std::fs::remove_file(&chart);
}
