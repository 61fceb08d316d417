//! A private registry with htpasswd authentication (Debian's `docker-registry`): pushes and
//! pulls take their credentials from `$DOCKER_CONFIG/config.json` (`auths`, `credHelpers`)
//! and `DOCKER_AUTH_CONFIG`, as the Docker CLI does, and a refusal is a clear error.
//!
//! Credentials are read from the process environment, which the other tests of this binary
//! share, so the scenario runs in a child process with `DOCKER_CONFIG` pointing at a temp
//! directory (whose config.json the child rewrites between steps) and a fake credential
//! helper on `PATH`; the `DOCKER_AUTH_CONFIG` step runs in a grandchild.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use e2ekit::prelude::*;

use crate::engines::{child_mode, in_child, run_test_child, NAME};

const USER: &str = "e2e";
const PASSWORD: &str = "s3cret-pw";
/// Variables the parent and child pass on.
const HTPASSWD: &str = "E2EKIT_TEST_HTPASSWD";
const CONFIG_DIR: &str = "E2EKIT_TEST_CONFIG_DIR";
const ASKED: &str = "E2EKIT_TEST_HELPER_LOG";
const REFERENCE: &str = "E2EKIT_TEST_REFERENCE";
/// The test below, which a child process runs again to play its part.
const CHILD: &str = "registry_auth::a_registry_with_htpasswd_auth_takes_credentials_from_config_helpers_and_the_variable";

/// A bcrypt htpasswd line for `user`, from apache2-utils' `htpasswd`.
fn htpasswd_line(user: &str, password: &str) -> String {
    let out = Process::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs `htpasswd`: apt-get install apache2-utils ({e})")
        });
    assert!(out.status.success(), "htpasswd failed: {out:?}");
    String::from_utf8(out.stdout).expect("htpasswd prints text")
}

/// `user:password` in base64, as config.json's `auth` holds it (coreutils' `base64`).
fn basic_auth(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = Process::new("base64")
        .args(["-w0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("running base64");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{user}:{password}").as_bytes())
        .expect("writing to base64");
    let out = child.wait_with_output().expect("base64's output");
    String::from_utf8(out.stdout).expect("base64 text")
}

#[test]
fn a_registry_with_htpasswd_auth_takes_credentials_from_config_helpers_and_the_variable() {
    if let Some(mode) = child_mode() {
        return in_child(registry_auth_child(mode));
    }
    let dir = std::env::temp_dir().join(format!("e2ekit-t-registry-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = dir.join("docker-config");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&config).expect("a config dir");
    std::fs::create_dir_all(&bin).expect("a bin dir");
    // A credential helper as Docker runs them: `get`, the server on stdin, JSON out. It
    // notes each server it was asked about, so the test can tell it was used.
    let asked = dir.join("asked");
    let helper = bin.join("docker-credential-e2ekit-test");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\necho \"$server\" >> {asked}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked = asked.display()
        ),
    )
    .expect("writing the helper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755))
            .expect("making the helper executable");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let said = run_test_child(
        CHILD,
        "registry",
        &[
            ("DOCKER_CONFIG", config.display().to_string()),
            (CONFIG_DIR, config.display().to_string()),
            ("PATH", path),
            (HTPASSWD, htpasswd_line(USER, PASSWORD)),
            (ASKED, asked.display().to_string()),
        ],
    );
    println!("{said}");
    assert_eq!(
        crate::common::leftovers("e2ekit-t-discovered-registry"),
        (0, 0)
    );
    std::fs::remove_dir_all(&dir).expect("removing the temp dir");
}

fn write_config(dir: &Path, json: &str) {
    std::fs::write(dir.join("config.json"), json).expect("writing config.json");
}

/// Removes the local tag `reference` (the only copy must then be the registry's): `-f`
/// untags it even while a container of an earlier step uses it.
fn remove_local(reference: &str) {
    let out = Process::new("docker")
        .args(["image", "rm", "-f", reference])
        .output()
        .expect("the docker CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn present_locally(reference: &str) -> bool {
    Process::new("docker")
        .args(["image", "inspect", reference])
        .output()
        .expect("the docker CLI")
        .status
        .success()
}

/// Containers of environment `env` on the default engine, in any state.
fn containers_of(env: &str) -> usize {
    let out = Process::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=e2ekit.env={env}")])
        .output()
        .expect("the docker CLI");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A runnable from `reference` that says so and stays up.
async fn start_from(env: &Environment, name: &str, reference: &str) -> Result<Runnable> {
    let app = env.runnable(name).init(
        StartOptions::new(reference)
            .command(Command::new("sh").args(["-c", "echo pulled-and-running; exec sleep 600"]))
            .readiness(LogProbe::contains("pulled-and-running")),
    )?;
    start_and_wait_ready(&[&app]).await?;
    Ok(app)
}

/// The child (and grandchild) side of the test above.
async fn registry_auth_child(mode: String) -> Result<()> {
    let name = std::env::var(NAME).expect("the environment's name");
    let env = Environment::builder().name(&name).build().await?;
    if mode == "pull" {
        // The grandchild: only DOCKER_AUTH_CONFIG has the credentials.
        let reference = std::env::var(REFERENCE).expect("the reference to pull");
        start_from(&env, "from-variable", &reference).await?;
        env.close().await;
        return Ok(());
    }
    assert_eq!(mode, "registry");
    let config = PathBuf::from(std::env::var(CONFIG_DIR).expect("the config dir"));
    let image = HostImage::debian_package("e2ekit-test/docker-registry", "docker-registry")
        .unwrap_or_else(|e| panic!("{e} (cargo xtask test installs it)"))
        .symlink("/bin/registry", "/usr/bin/docker-registry")
        .build(&env)
        .await?;
    let registry = db::Registry::with_htpasswd(
        &env,
        "registry",
        db::Options::new().image(image),
        std::env::var(HTPASSWD).expect("the htpasswd line"),
    )?;
    start_and_wait_ready(&[&registry]).await?;
    let addr = registry.address()?;
    let local = crate::common::busybox(&env).await?;

    // No credentials: the push is refused, and the error says what was (not) sent.
    write_config(&config, "{}");
    let err = registry.push(&local).await.expect_err("anonymous push");
    let text = err.report().to_string();
    println!("anonymous push: {text}");
    assert!(text.contains(&format!("pushing image {addr}/")), "{text}");
    assert!(
        text.contains(&format!("registry {addr} refused access"))
            && text.contains("no credentials are configured"),
        "{text}"
    );

    // `auths` with the base64 `auth`: the push authenticates.
    write_config(
        &config,
        &format!(
            r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
            basic_auth(USER, PASSWORD)
        ),
    );
    let pushed = registry.push(&local).await?;
    assert!(pushed.starts_with(&format!("{addr}/")), "{pushed}");
    // Only the registry has it now: a start pulls it back, authenticating.
    remove_local(&pushed);
    start_from(&env, "pulled", &pushed).await?;

    // A wrong password: a clear error naming registry, user, source and runnable, and
    // nothing left (no container for it, no image pulled).
    write_config(
        &config,
        &format!(r#"{{"auths":{{"{addr}":{{"username":"{USER}","password":"wrong"}}}}}}"#),
    );
    remove_local(&pushed);
    let before = containers_of(&name);
    let err = start_from(&env, "denied", &pushed)
        .await
        .expect_err("a wrong password");
    let text = err.to_string();
    println!("wrong password: {text}");
    assert!(
        matches!(&err, Error::ImageNotFound { runnable, .. } if runnable == "denied"),
        "{text}"
    );
    assert!(
        text.contains(&format!("registry {addr} refused access"))
            && text.contains(&format!("user \"{USER}\""))
            && text.contains("config.json"),
        "{text}"
    );
    assert_eq!(
        containers_of(&name),
        before,
        "nothing created for \"denied\""
    );
    assert!(!present_locally(&pushed), "nothing pulled");

    // A credential helper for that registry (credHelpers): asked with the registry's name.
    write_config(
        &config,
        &format!(r#"{{"credHelpers":{{"{addr}":"e2ekit-test"}}}}"#),
    );
    start_from(&env, "helped", &pushed).await?;
    let asked = std::fs::read_to_string(std::env::var(ASKED).expect("the helper's log"))
        .expect("the helper was run");
    assert_eq!(asked.trim(), addr, "the helper is asked for the registry");

    // DOCKER_AUTH_CONFIG alone (config.json empty), in a grandchild whose environment has it.
    write_config(&config, "{}");
    remove_local(&pushed);
    let auth_config =
        format!(r#"{{"auths":{{"{addr}":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#);
    let said = tokio::task::block_in_place(|| {
        run_test_child(
            CHILD,
            "pull",
            &[
                ("DOCKER_CONFIG", config.display().to_string()),
                ("DOCKER_AUTH_CONFIG", auth_config),
                (REFERENCE, pushed.clone()),
            ],
        )
    });
    println!("{said}");
    assert!(present_locally(&pushed), "the grandchild pulled it");

    env.close().await;
    remove_local(&pushed);
    Ok(())
}
