//! Unit tests on the fake engine: container options reaching the engine, files in and out,
//! output so far and consumers, identity, and the shared directory on an engine that cannot
//! see this host's files.

use std::sync::{Arc, Mutex};

use crate::engine::fake::{FakeEngine, Script};
use crate::engine::EntryKind;
use crate::env::tests::{eventually, fake_env};
use crate::prelude::*;

#[tokio::test]
async fn container_options_reach_the_engine_as_typed_values() {
    let fake = FakeEngine::new();
    fake.script("img:opts", Script::new());
    let env = fake_env(&fake, "fk-opts").await;
    let app = env
        .runnable("app")
        .with_ports([("http", 80)])
        .init(
            StartOptions::new("img:opts")
                .named_volume("data", "/data")
                .named_volume_ro("seed", "/seed")
                .tmpfs("/scratch")
                .tmpfs_sized("/small", 1 << 20)
                .working_dir("/work")
                .read_only_rootfs(true)
                .shm_size(256 << 20)
                .ulimit("nofile", 1024, 4096)
                .extra_host("db.example", "10.1.2.3")
                .platform("linux/amd64")
                .host_port("http", 18080),
        )
        .expect("defined");
    app.start().await.expect("started");
    let spec = fake.spec_of(app.container_name()).expect("spec");
    let volumes: Vec<(String, String, bool)> = spec
        .volumes
        .iter()
        .map(|v| (v.name.clone(), v.target.clone(), v.read_only))
        .collect();
    let (data, seed) = (
        format!("{}-data", env.name()),
        format!("{}-seed", env.name()),
    );
    assert_eq!(
        volumes,
        [
            (data.clone(), "/data".to_string(), false),
            (seed.clone(), "/seed".to_string(), true)
        ]
    );
    assert_eq!(
        spec.tmpfs,
        [
            ("/scratch".to_string(), None),
            ("/small".to_string(), Some(1 << 20))
        ]
    );
    assert_eq!(spec.working_dir.as_deref(), Some("/work"));
    assert!(spec.read_only_rootfs);
    assert_eq!(spec.shm_size, Some(256 << 20));
    assert_eq!(spec.ulimits.len(), 1);
    assert_eq!(spec.extra_hosts, [("db.example".into(), "10.1.2.3".into())]);
    assert_eq!(spec.platform.as_deref(), Some("linux/amd64"));
    assert_eq!(spec.host_ports.get(&80), Some(&18080));
    assert_eq!(fake.volumes(), [data, seed]);
    env.close().await;
    assert!(
        fake.volumes().is_empty(),
        "the environment's volumes go with it: {:?}",
        fake.volumes()
    );
}

#[tokio::test]
async fn bad_container_options_are_refused_when_defined() {
    let fake = FakeEngine::new();
    let env = fake_env(&fake, "fk-bad-opts").await;
    let cases: Vec<(StartOptions, &str)> = vec![
        (
            StartOptions::new("i").named_volume("a b", "/d"),
            "volume name",
        ),
        (StartOptions::new("i").named_volume("v", "rel"), "absolute"),
        (StartOptions::new("i").tmpfs("/a/../b"), ".."),
        (StartOptions::new("i").tmpfs_sized("/t", 0), "0 bytes"),
        (StartOptions::new("i").working_dir("w"), "absolute"),
        (StartOptions::new("i").shm_size(0), "/dev/shm"),
        (
            StartOptions::new("i").ulimit("files", 1, 2),
            "not a known limit",
        ),
        (
            StartOptions::new("i").ulimit("nofile", 9, 2),
            "above the hard",
        ),
        (
            StartOptions::new("i").extra_host("a:b", "10.0.0.1"),
            "not a hostname",
        ),
        (
            StartOptions::new("i").extra_host("a", "nowhere"),
            "neither an IP",
        ),
        (StartOptions::new("i").platform("amd64"), "os/arch"),
        (StartOptions::new("i").host_port("http", 0), "host port 0"),
        (StartOptions::new("i").host_port("nope", 1234), "nope"),
        (
            StartOptions::new("i").copy(CopyFile::bytes(*b"x", "etc/x")),
            "absolute",
        ),
    ];
    for (i, (opts, expected)) in cases.into_iter().enumerate() {
        let err = env
            .runnable(format!("r{i}"))
            .with_ports([("http", 80)])
            .init(opts)
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains(expected), "case {i}: {text}");
    }
    env.close().await;
}

#[tokio::test]
async fn files_are_copied_before_start_and_in_and_out_while_running() {
    let fake = FakeEngine::new();
    fake.script("img:files", Script::new());
    let env = fake_env(&fake, "fk-files").await;
    let app = env
        .runnable("app")
        .init(
            StartOptions::new("img:files").copy(
                CopyFile::bytes(b"a: 1\n".to_vec(), "/etc/app.yml")
                    .mode(0o600)
                    .owner(10, 20),
            ),
        )
        .expect("defined");
    // Copies need a container.
    let early = app
        .copy_to(CopyFile::bytes(*b"x", "/x"))
        .await
        .expect_err("not running");
    assert!(matches!(early, Error::NotRunning { .. }), "{early}");
    app.start().await.expect("started");
    let files = fake.files_of(app.container_name());
    let config = files.get("/etc/app.yml").expect("copied before start");
    assert_eq!(config.kind, EntryKind::File(b"a: 1\n".to_vec()));
    assert_eq!((config.mode, config.uid, config.gid), (0o600, 10, 20));
    assert!(
        !files
            .keys()
            .any(|p| p.starts_with(&env.shared_dir().display().to_string())),
        "a local engine mounts the shared dir; nothing of it is copied"
    );

    app.copy_to(CopyFile::bytes(b"later".to_vec(), "/etc/later"))
        .await
        .expect("copied while running");
    assert_eq!(app.read_file("/etc/later").await.expect("read"), b"later");
    let missing = app.read_file("/etc/none").await.expect_err("missing");
    assert!(missing.to_string().contains("does not exist"), "{missing}");

    let out = env.shared_dir().join("out");
    app.copy_from("/etc/app.yml", &out)
        .await
        .expect("copied out");
    assert_eq!(std::fs::read(&out).expect("written"), b"a: 1\n");

    let gone = app
        .copy_to(CopyFile::host_path("/nonexistent/e2ekit", "/x"))
        .await
        .expect_err("missing source");
    assert!(
        matches!(&gone, Error::Copy { runnable, reason, .. } if runnable == "app" && reason.contains("does not exist")),
        "{gone}"
    );
    env.close().await;
}

#[tokio::test]
async fn a_missing_copy_source_fails_the_start_before_any_container_exists() {
    let fake = FakeEngine::new();
    fake.script("img:nosrc", Script::new());
    let env = fake_env(&fake, "fk-nosrc").await;
    let app = env
        .runnable("app")
        .init(StartOptions::new("img:nosrc").copy(CopyFile::host_path("/nonexistent/cfg", "/cfg")))
        .expect("defined");
    let err = app.start().await.expect_err("missing source");
    assert!(err.to_string().contains("/nonexistent/cfg"), "{err}");
    assert!(fake.containers().is_empty(), "{:?}", fake.containers());
    env.close().await;
}

#[tokio::test]
async fn output_so_far_consumers_silence_identity_and_exit_code() {
    let fake = FakeEngine::new();
    fake.script("img:out", Script::new().log("hello"));
    let env = fake_env(&fake, "fk-out").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app =
        env.runnable("app")
            .init(StartOptions::new("img:out").print_output(false).on_output(
                move |l: &OutputLine| {
                    let mut seen = sink.lock().expect("lock");
                    seen.push((
                        l.runnable().to_string(),
                        l.is_stderr(),
                        l.text().to_string(),
                    ));
                },
            ))
            .expect("defined");
    assert_eq!(app.container_id(), None);
    app.start().await.expect("started");
    fake.print_stderr(app.container_name(), "oops");
    eventually("the consumer saw both lines", || {
        seen.lock().expect("lock").len() == 2
    })
    .await;
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            ("app".to_string(), false, "hello".to_string()),
            ("app".to_string(), true, "oops".to_string())
        ]
    );
    let out = app.output().await.expect("output");
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.stderr, "oops\n");
    assert!(app.container_id().is_some());
    assert_eq!(app.exit_code(), None, "still running");
    fake.exit(app.container_name(), 3);
    eventually("the exit is seen", || app.exit_code() == Some(3)).await;
    env.close().await;
}

#[tokio::test]
async fn on_an_engine_without_this_hosts_files_the_shared_dir_is_copied_not_mounted() {
    let fake = FakeEngine::new();
    fake.remote();
    fake.script("img:remote", Script::new());
    let env = fake_env(&fake, "fk-remote-dir").await;
    let app = env.runnable("app").future().expect("future");
    std::fs::write(app.dir().join("config.yml"), "x: 1").expect("config");
    let app = app.init(StartOptions::new("img:remote")).expect("defined");
    app.start().await.expect("started");
    let spec = fake.spec_of(app.container_name()).expect("spec");
    assert!(
        spec.mounts.is_empty(),
        "no path of this host is mounted: {:?}",
        spec.mounts
    );
    let config = app.dir().join("config.yml").display().to_string();
    assert_eq!(
        spec.shared_dir.as_ref().map(|(path, _)| path.clone()),
        Some(env.shared_dir().display().to_string())
    );
    let files = fake.files_of(app.container_name());
    assert_eq!(
        files.get(&config).map(|f| f.kind.clone()),
        Some(EntryKind::File(b"x: 1".to_vec())),
        "{:?}",
        files.keys()
    );

    // A bind mount of a host path cannot work there: refused at start, nothing created.
    let host_dir = env.shared_dir().display().to_string();
    let mounted = env
        .runnable("mounted")
        .init(StartOptions::new("img:remote").volume(format!("{host_dir}:/m")))
        .expect("defined");
    let err = mounted.start().await.expect_err("refused");
    assert!(err.to_string().contains("cannot see"), "{err}");
    assert!(fake.spec_of(mounted.container_name()).is_none());
    env.close().await;
}
