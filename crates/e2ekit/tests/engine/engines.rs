//! Engines people actually have: a private dockerd reached only over TCP, one speaking TLS
//! found through `DOCKER_HOST` + `DOCKER_TLS_VERIFY` + `DOCKER_CERT_PATH` and through a
//! Docker context (also by the reaper), the usual sockets in order, and discovery's errors.
//! Runnables started there are reachable on the engine's own address, and published ports
//! listen only there (or on all the engine host's addresses when it cannot bind that one).
//!
//! Discovery reads the process environment, which the other tests of this binary share, so
//! the scenarios that set `DOCKER_*` variables run in a child process: this binary again,
//! running only the same test with the variables set, which then plays the child's part
//! ([`discovered_engine_child`]), as the reaper tests do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use e2ekit::prelude::*;
use e2ekit_test_engines::PrivateEngine;

use crate::common;

/// The child's scenario and expectations, passed in its environment.
const MODE: &str = "E2EKIT_TEST_ENGINES_MODE";
const EXPECT_ADDR: &str = "E2EKIT_TEST_ENGINES_ADDR";
pub const NAME: &str = "E2EKIT_TEST_ENGINES_ENV";

fn start_engine(builder: e2ekit_test_engines::Builder) -> PrivateEngine {
    builder.start().unwrap_or_else(|e| {
        panic!("the remote-engine tests need a private dockerd (root, dockerd, nsenter, ip, iptables): {e}")
    })
}

/// A TLS private engine: its certificates (a fresh CA and a certificate for the node's
/// address, which also serves as the client certificate: it carries both purposes and the
/// CA signed it) are written to a temp directory as `ca.pem`, `cert.pem`, `key.pem`.
fn tls_engine(dir: &Path) -> PrivateEngine {
    let dir = dir.to_path_buf();
    start_engine(PrivateEngine::builder().tls(move |addr| {
        let certs = e2ekit::db::Certificates::generate(addr).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for (name, text) in [
            ("ca.pem", &certs.ca_pem),
            ("cert.pem", &certs.cert_pem),
            ("key.pem", &certs.key_pem),
        ] {
            std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
        }
        Ok(dir.clone())
    }))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("e2ekit-t-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

/// A busybox web server on the environment's engine, ready when it answers.
async fn web(env: &Environment) -> Result<Runnable> {
    let image = common::busybox(env).await?;
    let web = env.runnable("web").with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(Command::new("sh").args([
                "-c",
                "mkdir -p /www && echo hello-from-engine > /www/index.html && exec httpd -f -p 8080 -h /www",
            ]))
            .readiness(HttpProbe::new("http", "/index.html")),
    )?;
    start_and_wait_ready(&[&web]).await?;
    Ok(web)
}

/// Checks the endpoint names `addr` (the engine's host, not loopback) and answers from here.
async fn assert_served_at(web: &Runnable, addr: &str) -> SocketAddr {
    let endpoint: SocketAddr = web
        .endpoint("http")
        .expect("the published port's endpoint")
        .parse()
        .expect("an endpoint is host:port");
    assert_eq!(
        endpoint.ip().to_string(),
        addr,
        "published ports are reached on the engine's host"
    );
    let body = reqwest::get(format!("http://{endpoint}/index.html"))
        .await
        .and_then(|r| r.error_for_status())
        .expect("the runnable answers the test process on the engine's host");
    assert_eq!(
        body.text().await.expect("a body").trim(),
        "hello-from-engine"
    );
    endpoint
}

/// Whether a TCP connection to `addr` succeeds from inside the engine's network namespace
/// (the engine host's own view), and what bash said when it did not.
fn connects_inside(engine: &PrivateEngine, addr: SocketAddr) -> (bool, String) {
    let netns = format!("--net=/run/netns/{}", engine.name());
    let script = format!("exec 3<>/dev/tcp/{}/{}", addr.ip(), addr.port());
    let out = Process::new("nsenter")
        .args([netns.as_str(), "--", "bash", "-c", &script])
        .output()
        .expect("running nsenter and bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_only_engine_serves_runnables_on_its_address_and_binds_only_that() -> Result<()> {
    let engine = tokio::task::block_in_place(|| start_engine(PrivateEngine::builder().tcp(true)));
    let host = engine.tcp_host().expect("a TCP engine has a tcp:// host");
    let env = Environment::builder()
        .name("e2ekit-t-tcp-engine")
        .engine(Engine::docker_host(&host))
        .build()
        .await?;
    let web = web(&env).await?;
    let endpoint = assert_served_at(&web, &engine.node_addr()).await;

    // The port is open on the address the test process uses, and not on the engine host's
    // other interfaces (here: its loopback).
    tokio::task::block_in_place(|| {
        let (ok, said) = connects_inside(&engine, endpoint);
        assert!(
            ok,
            "the engine host reaches the published port on its own address: {said}"
        );
        let (ok, said) =
            connects_inside(&engine, SocketAddr::from(([127, 0, 0, 1], endpoint.port())));
        assert!(
            !ok,
            "the published port must not be open on the engine host's other addresses: {said}"
        );
    });

    env.close().await;
    assert_eq!(
        common::leftovers_on(Some(&host), "e2ekit-t-tcp-engine"),
        (0, 0)
    );
    tokio::task::block_in_place(|| engine.stop()).expect("tearing the private engine down");
    Ok(())
}

/// This machine's address on its default route (no packet is sent: connecting a UDP socket
/// only picks the route).
fn own_address() -> std::net::IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    probe
        .connect("192.0.2.254:9")
        .expect("a route off this machine: this test needs a non-loopback address");
    let ip = probe.local_addr().expect("the chosen source address").ip();
    assert!(
        !ip.is_loopback(),
        "this test needs a non-loopback address, found {ip}"
    );
    ip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_cannot_bind_the_address_it_is_reached_at_publishes_on_all_its_own(
) -> Result<()> {
    // The private engine reached through a forwarder on this machine's address, which its
    // host (its network namespace) does not own, as behind NAT or a forwarded port.
    let engine = tokio::task::block_in_place(|| start_engine(PrivateEngine::builder()));
    let ip = own_address();
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .expect("a TCP listener");
    let addr = listener.local_addr().expect("its address");
    let socket = engine.socket_path().to_path_buf();
    let forwarder = tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(mut api) = tokio::net::UnixStream::connect(&socket).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut api).await;
                }
            });
        }
    });
    let env = Environment::builder()
        .name("e2ekit-t-unbindable")
        .engine(Engine::docker_host(format!("tcp://{addr}")))
        .build()
        .await?;
    let image = common::busybox(&env).await?;
    let web =
        env.runnable("web")
            .with_ports([("http", 8080)])
            .init(StartOptions::new(image).command(Command::new("sh").args([
                "-c",
                "mkdir -p /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www",
            ])))?;
    // Binding `ip` fails on the engine's host; the start must still succeed.
    web.start().await?;
    assert!(web.is_running(), "the runnable started");
    let endpoint: SocketAddr = web.endpoint("http")?.parse().expect("host:port");
    assert_eq!(
        endpoint.ip(),
        ip,
        "endpoints still name the host it is reached at"
    );
    let node: std::net::IpAddr = engine.node_addr().parse().expect("an IP");
    tokio::task::block_in_place(|| {
        for at in [node, std::net::IpAddr::from([127, 0, 0, 1])] {
            // httpd may not listen yet right after the start (the engine's host reaches it
            // through a DNAT rule straight to the container): poll, bounded.
            let mut attempt = connects_inside(&engine, SocketAddr::new(at, endpoint.port()));
            for _ in 0..100 {
                if attempt.0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                attempt = connects_inside(&engine, SocketAddr::new(at, endpoint.port()));
            }
            let (ok, said) = attempt;
            assert!(
                ok,
                "published on every address of the engine's host, {at} too: {said}"
            );
        }
    });
    env.close().await;
    assert_eq!(
        common::leftovers_on(Some(&engine.docker_host()), "e2ekit-t-unbindable"),
        (0, 0)
    );
    forwarder.abort();
    tokio::task::block_in_place(|| engine.stop()).expect("tearing the private engine down");
    Ok(())
}

/// The scenario this process plays when it is a child of one of these tests.
pub fn child_mode() -> Option<String> {
    std::env::var(MODE).ok()
}

/// Plays a child's part on a runtime of its own; a failure fails the child (and so its
/// parent).
pub fn in_child(scenario: impl std::future::Future<Output = Result<()>>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the child scenario");
    if let Err(e) = runtime.block_on(scenario) {
        panic!("the child scenario failed: {}", e.report());
    }
}

/// Runs test `test` of this binary (the caller itself) in a child process with `vars` set
/// (and the `DOCKER_*` variables not in `vars` removed), and returns its combined output;
/// fails the test when the child fails. The child finds its scenario in
/// `E2EKIT_TEST_ENGINES_MODE` ([`child_mode`]) and its environment's name in
/// `E2EKIT_TEST_ENGINES_ENV`.
pub fn run_test_child(test: &str, mode: &str, vars: &[(&str, String)]) -> String {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Process::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    run_child_command(cmd, test, mode, vars)
}

/// [`run_test_child`] in a private mount namespace where `/var/run/docker.sock` is
/// `/dev/null` (so it refuses connections) and nothing else changed: the machine's own
/// engine is then out of discovery's reach for the child only.
fn run_test_child_without_system_socket(test: &str, mode: &str, vars: &[(&str, String)]) -> String {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Process::new("unshare");
    cmd.args(["--mount", "--", "sh", "-c"])
        .arg("mount --bind /dev/null /var/run/docker.sock && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"]);
    run_child_command(cmd, test, mode, vars)
}

fn run_child_command(mut cmd: Process, test: &str, mode: &str, vars: &[(&str, String)]) -> String {
    for name in [
        "DOCKER_HOST",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_CONTEXT",
        "DOCKER_CONFIG",
        "DOCKER_AUTH_CONFIG",
    ] {
        cmd.env_remove(name);
    }
    cmd.env(MODE, mode);
    cmd.env(NAME, format!("e2ekit-t-discovered-{mode}"));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the child scenario {test} {mode} failed:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "the child scenario {test} {mode} did not run:\n{text}"
    );
    text
}

const TLS_TEST: &str =
    "engines::a_tls_engine_is_found_through_docker_host_and_through_a_docker_context";

#[test]
fn a_tls_engine_is_found_through_docker_host_and_through_a_docker_context() {
    if let Some(mode) = child_mode() {
        return in_child(discovered_engine_child(mode));
    }
    let dir = temp_dir("tls-engine");
    let certs = dir.join("certs");
    let engine = tls_engine(&certs);
    let host = engine.tcp_host().expect("a TLS engine has a tcp:// host");
    assert!(host.ends_with(":2376"), "{host}");
    let addr = engine.node_addr();

    // DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH.
    run_test_child(
        TLS_TEST,
        "serve",
        &[
            ("DOCKER_HOST", host.clone()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", certs.display().to_string()),
            (EXPECT_ADDR, addr.clone()),
        ],
    );

    // The current context of a DOCKER_CONFIG directory, with its TLS material where Docker
    // keeps it: contexts/meta/<sha256 of the name>/meta.json and contexts/tls/<same>/docker.
    let config = dir.join("docker-config");
    write_context(&config, &host, &certs);
    run_test_child(
        TLS_TEST,
        "serve",
        &[
            ("DOCKER_CONFIG", config.display().to_string()),
            (EXPECT_ADDR, addr.clone()),
        ],
    );

    // A client certificate the engine's CA did not sign: refused, with TLS named in the
    // error, and nothing created.
    let other = dir.join("other-certs");
    std::fs::create_dir_all(&other).expect("a dir");
    let stranger = e2ekit::db::Certificates::generate(&addr).expect("certificates");
    std::fs::write(other.join("ca.pem"), &stranger.ca_pem).expect("write");
    std::fs::write(other.join("cert.pem"), &stranger.cert_pem).expect("write");
    std::fs::write(other.join("key.pem"), &stranger.key_pem).expect("write");
    let said = run_test_child(
        TLS_TEST,
        "wrong-ca",
        &[
            ("DOCKER_HOST", host.clone()),
            ("DOCKER_TLS_VERIFY", "1".to_string()),
            ("DOCKER_CERT_PATH", other.display().to_string()),
        ],
    );

    println!("{said}");

    engine.stop().expect("tearing the private engine down");
    std::fs::remove_dir_all(&dir).expect("removing the temp dir");
}

#[test]
fn an_unknown_docker_context_is_a_clear_error_and_no_engine_is_used_instead() {
    if let Some(mode) = child_mode() {
        return in_child(discovered_engine_child(mode));
    }
    let dir = temp_dir("unknown-context");
    std::fs::write(dir.join("config.json"), r#"{"currentContext":"nope"}"#).expect("write");
    let said = run_test_child(
        "engines::an_unknown_docker_context_is_a_clear_error_and_no_engine_is_used_instead",
        "unknown-context",
        &[
            ("DOCKER_CONFIG", dir.display().to_string()),
            (NAME, "e2ekit-t-unknown-context".to_string()),
        ],
    );
    println!("{said}");
    // Nothing was created on the engine this machine does have.
    assert_eq!(common::leftovers("e2ekit-t-unknown-context"), (0, 0));
    std::fs::remove_dir_all(&dir).expect("removing the temp dir");
}

const SOCKETS_TEST: &str =
    "engines::without_settings_the_first_usual_socket_that_answers_is_used_and_the_error_lists_them";
/// The socket of the private engine a child must find.
const EXPECT_SOCKET: &str = "E2EKIT_TEST_ENGINES_SOCKET";

#[test]
fn without_settings_the_first_usual_socket_that_answers_is_used_and_the_error_lists_them() {
    if let Some(mode) = child_mode() {
        return in_child(discovered_engine_child(mode));
    }
    let dir = temp_dir("sockets");
    let home = dir.join("home");
    let runtime = dir.join("run");
    std::fs::create_dir_all(&home).expect("a home");
    std::fs::create_dir_all(&runtime).expect("a runtime dir");
    let vars = |runtime: &Path| {
        vec![
            ("HOME", home.display().to_string()),
            ("XDG_RUNTIME_DIR", runtime.display().to_string()),
        ]
    };

    // Nothing answers: the system socket refuses, the others are missing; the error lists
    // each one with its reason.
    let said = run_test_child_without_system_socket(SOCKETS_TEST, "none-answers", &vars(&runtime));
    println!("{said}");

    // Rootless Docker's socket (here: a private engine's, linked where rootless dockerd puts
    // it) is used when the system socket does not answer.
    let engine = start_engine(PrivateEngine::builder());
    std::os::unix::fs::symlink(engine.socket_path(), runtime.join("docker.sock"))
        .expect("linking the rootless socket");
    let mut with_engine = vars(&runtime);
    with_engine.push((EXPECT_SOCKET, engine.docker_host()));
    run_test_child_without_system_socket(SOCKETS_TEST, "rootless", &with_engine);

    engine.stop().expect("tearing the private engine down");
    std::fs::remove_dir_all(&dir).expect("removing the temp dir");
}

/// A Docker config directory whose current context `e2ekit-remote` is the TLS engine at
/// `host`, with the TLS material of `certs`.
fn write_context(config: &Path, host: &str, certs: &Path) {
    let id = sha256_hex("e2ekit-remote");
    let meta = config.join("contexts/meta").join(&id);
    let tls = config.join("contexts/tls").join(&id).join("docker");
    std::fs::create_dir_all(&meta).expect("the context's meta dir");
    std::fs::create_dir_all(&tls).expect("the context's TLS dir");
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(certs.join(name), tls.join(name)).expect("copying TLS material");
    }
    std::fs::write(
        meta.join("meta.json"),
        format!(
            r#"{{"Name":"e2ekit-remote","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        ),
    )
    .expect("writing meta.json");
    std::fs::write(
        config.join("config.json"),
        r#"{"auths":{},"currentContext":"e2ekit-remote"}"#,
    )
    .expect("writing config.json");
}

#[test]
fn the_reaper_of_a_process_on_a_context_tls_engine_reaches_it_too() {
    if let Some(mode) = child_mode() {
        return in_child(discovered_engine_child(mode));
    }
    let dir = temp_dir("tls-reaper");
    let certs = dir.join("certs");
    let engine = tls_engine(&certs);
    let host = engine.tcp_host().expect("a TLS engine has a tcp:// host");
    let config = dir.join("docker-config");
    write_context(&config, &host, &certs);
    let name = "e2ekit-t-discovered-hold";
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Process::new(exe)
        .args([
            "engines::the_reaper_of_a_process_on_a_context_tls_engine_reaches_it_too",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CONFIG", &config)
        .env(MODE, "hold")
        .env(NAME, name)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starting the child");
    let stdout = child.stdout.take().expect("the child's stdout");
    let mut seen = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.expect("a line of the child's output");
        if line.contains("CHILD-READY") {
            break;
        }
        seen.push(line);
    }
    // The engine's own socket: this process has no TLS settings for it.
    let socket = engine.docker_host();
    assert_eq!(
        common::leftovers_on(Some(&socket), name),
        (1, 1),
        "the child's environment is up on the context's engine; it said: {seen:?}"
    );
    let reapers = reapers_of(child.id());
    assert_eq!(
        reapers.len(),
        1,
        "one reaper watches the child: {reapers:?}"
    );
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    // Only the reaper, connecting with the context's TLS material, can remove it now.
    assert!(
        poll(|| common::leftovers_on(Some(&socket), name) == (0, 0)),
        "the reaper removed the SIGKILLed child's environment"
    );
    // It finishes cleanly (which it cannot without reaching the engine): it exits, and a
    // clean reaper removes its log.
    assert!(
        poll(|| !is_running(reapers[0])),
        "the reaper exits once done"
    );
    let base = std::env::var_os("E2E_TEMP_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let logs: Vec<String> = std::fs::read_dir(base.join(format!(
        "e2ekit-{}/.reapers",
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    )))
    .map(|d| {
        d.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&format!("_{}_", child.id())))
            .collect()
    })
    .unwrap_or_default();
    assert!(logs.is_empty(), "the reaper failed; its logs: {logs:?}");
    engine.stop().expect("tearing the private engine down");
    std::fs::remove_dir_all(&dir).expect("removing the temp dir");
}

/// The reapers watching process `pid` (their environment names it as the owner).
fn reapers_of(pid: u32) -> Vec<u32> {
    let owner = format!(":{pid}:");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| {
                    std::fs::read(format!("/proc/{p}/environ")).is_ok_and(|env| {
                        env.split(|b| *b == 0).any(|var| {
                            String::from_utf8_lossy(var)
                                .strip_prefix("E2EKIT_REAPER=")
                                .is_some_and(|o| o.contains(&owner))
                        })
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` runs (and is not a zombie).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Polls `done` every 100 ms for up to a minute (a hang guard, not a timing check).
fn poll(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..600 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn sha256_hex(text: &str) -> String {
    // The test keeps its own copy of Docker's naming rule rather than calling e2ekit's.
    let out = Process::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("running sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// The child side of the scenarios above: discovery with the variables its parent set.
async fn discovered_engine_child(mode: String) -> Result<()> {
    let name = std::env::var(NAME).expect("the environment's name");
    match mode.as_str() {
        "serve" => {
            let addr = std::env::var(EXPECT_ADDR).expect("the engine's address");
            let env = Environment::builder()
                .name(&name)
                .engine(Engine::docker())
                .build()
                .await?;
            let web = web(&env).await?;
            assert_served_at(&web, &addr).await;
            env.close().await;
            assert_eq!(common::leftovers_on(None, &name), (0, 0));
        }
        "wrong-ca" => {
            let err = tokio::time::timeout(
                Duration::from_secs(60),
                Environment::builder().name(&name).build(),
            )
            .await
            .expect("connecting must fail, not hang")
            .expect_err("the engine's certificate is not signed by this CA");
            let text = err.report().to_string();
            println!("{text}");
            assert!(matches!(err, Error::EngineUnreachable { .. }), "{text}");
            assert!(text.contains("(DOCKER_HOST)"), "{text}");
            assert!(
                text.to_lowercase().contains("certificate"),
                "the TLS failure's reason: {text}"
            );
        }
        "hold" => {
            let env = Environment::builder().name(&name).build().await?;
            let image = common::busybox(&env).await?;
            let app = env
                .runnable("victim")
                .init(StartOptions::new(image).command(Command::new("sleep").arg("3600")))?;
            app.start().await?;
            println!("CHILD-READY");
            // Until the parent's SIGKILL.
            tokio::time::sleep(Duration::from_secs(600)).await;
            panic!("the parent never killed this child");
        }
        "none-answers" => {
            let err = Environment::builder()
                .name(&name)
                .build()
                .await
                .expect_err("no engine answers");
            let text = err.to_string();
            println!("{text}");
            assert!(matches!(err, Error::EngineUnreachable { .. }), "{text}");
            let home = std::env::var("HOME").expect("HOME");
            let run = std::env::var("XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR");
            for expected in [
                "any of the 8 places tried".to_string(),
                "the system Docker socket at unix:///var/run/docker.sock: ".to_string(),
                format!("rootless Docker at unix://{run}/docker.sock: no socket there"),
                format!("Docker Desktop at unix://{home}/.docker/run/docker.sock: no socket there"),
                format!("Colima at unix://{home}/.colima/default/docker.sock: no socket there"),
                format!("rootless Podman at unix://{run}/podman/podman.sock: no socket there"),
                "Podman at unix:///run/podman/podman.sock: no socket there".to_string(),
            ] {
                assert!(text.contains(&expected), "{expected:?} in {text}");
            }
            assert!(
                !text.contains(
                    "the system Docker socket at unix:///var/run/docker.sock: no socket there"
                ),
                "the system socket exists but refuses: its own reason: {text}"
            );
        }
        "rootless" => {
            let socket = std::env::var(EXPECT_SOCKET).expect("the private engine's socket");
            let env = Environment::builder().name(&name).build().await?;
            let image = common::busybox(&env).await?;
            let app = env.runnable("app").init(
                StartOptions::new(image)
                    .command(Command::new("sh").args(["-c", "echo up; exec sleep 600"]))
                    .readiness(LogProbe::contains("up")),
            )?;
            start_and_wait_ready(&[&app]).await?;
            assert_eq!(
                common::leftovers_on(Some(&socket), &name),
                (1, 1),
                "the environment is on the engine behind the rootless socket"
            );
            env.close().await;
            assert_eq!(common::leftovers_on(Some(&socket), &name), (0, 0));
        }
        "unknown-context" => {
            let err = Environment::builder()
                .name(&name)
                .build()
                .await
                .expect_err("an unknown context");
            let text = err.to_string();
            println!("{text}");
            assert!(matches!(err, Error::EngineUnreachable { .. }), "{text}");
            assert!(
                text.contains("Docker context \"nope\" does not exist"),
                "{text}"
            );
        }
        other => panic!("unknown mode {other}"),
    }
    Ok(())
}
