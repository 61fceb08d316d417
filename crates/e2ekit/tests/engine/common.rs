//! Images and helpers shared by the engine tests. Every image is built locally.

use std::sync::OnceLock;

use e2ekit::prelude::*;

/// A shell image from the host's static busybox (Debian's `busybox-static`).
pub async fn busybox(env: &Environment) -> Result<String> {
    let path = "/bin/busybox";
    assert!(
        std::path::Path::new(path).is_file(),
        "these tests need a static busybox at {path}: apt-get install busybox-static (see .ci/run)"
    );
    let mut image = HostImage::new("e2ekit-test/busybox").binary_at(path, "/bin/busybox");
    for tool in [
        "sh", "cat", "sleep", "echo", "nc", "wget", "httpd", "test", "ls", "touch", "id",
        "hostname", "kill", "true", "false", "ping", "timeout",
    ] {
        image = image.symlink(format!("/bin/{tool}"), "/bin/busybox");
    }
    image.build(env).await
}

/// The demo-app image.
pub async fn demo_app(env: &Environment) -> Result<String> {
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    let bin = match BIN.get() {
        Some(b) => b.clone(),
        None => {
            let b = cargo_bin("demo-app")?;
            BIN.get_or_init(|| b).clone()
        }
    };
    HostImage::new("e2ekit-test/demo-app")
        .binary(bin)
        .build(env)
        .await
}

/// A demo-app runnable listening on :8080 as port "http", ready on /ready.
pub async fn demo_runnable(env: &Environment, name: &str, extra: &[&str]) -> Result<Runnable> {
    let image = demo_app(env).await?;
    env.runnable(name).with_ports([("http", 8080)]).init(
        StartOptions::new(image)
            .command(
                Command::new("/bin/demo-app")
                    .args(["--listen", ":8080"])
                    .args(extra.iter().copied()),
            )
            .readiness(HttpProbe::new("http", "/ready")),
    )
}

/// Containers (any state) and networks of an environment that are still on the engine, as
/// the library sees them (`e2ekit::sweep::list_environments`; no `docker` CLI). Synchronous,
/// so it works both inside and outside a runtime: it asks from its own thread and runtime.
pub fn leftovers(env_name: &str) -> (usize, usize) {
    leftovers_on(None, env_name)
}

/// [`leftovers`] on the engine at `engine` (`None`: the default engine).
pub fn leftovers_on(engine: Option<&str>, env_name: &str) -> (usize, usize) {
    let envs = std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the leftover check")
                .block_on(e2ekit::sweep::list_environments(engine))
        })
        .join()
        .expect("the leftover check thread")
    })
    .expect("listing environments for a leftover check");
    envs.iter()
        .filter(|e| e.name == env_name)
        .fold((0, 0), |(c, n), e| (c + e.containers, n + e.networks))
}

/// Runs one test of this binary in a child process (for process-wide settings such as
/// environment variables) and returns its combined output. Panics if the child fails.
pub fn run_child_test(test: &str, envs: &[(&str, &str)]) -> String {
    let (ok, text) = run_child(test, envs);
    assert!(ok, "child test {test} failed:\n{text}");
    text
}

/// A child copy of this test binary running one test: the command, ready to spawn.
pub fn child_command(test: &str, envs: &[(&str, &str)]) -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .envs(envs.iter().copied());
    cmd
}

/// Runs one test in a child process; returns whether it passed and its combined output.
pub fn run_child(test: &str, envs: &[(&str, &str)]) -> (bool, String) {
    let out = child_command(test, envs)
        .output()
        .expect("run the child test");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Writes `cert.pem` and `key.pem` for the name `tls` into `dir`, signed by a fresh CA that
/// nobody trusts (so clients see an untrusted certificate, as with a self-signed one).
pub fn untrusted_cert(dir: &std::path::Path) {
    let certs = e2ekit::db::Certificates::generate("tls").expect("generating certificates");
    std::fs::write(dir.join("cert.pem"), &certs.cert_pem).expect("writing cert.pem");
    std::fs::write(dir.join("key.pem"), &certs.key_pem).expect("writing key.pem");
}
