//! e2ekit as a user gets it: a crate outside this workspace that depends on e2ekit by path,
//! with exactly the dev-dependencies of the README's "Add it to your project" snippet, runs
//! the README's scenario with `cargo test`, offline.
//!
//! The crate is generated in a temporary directory from the README itself (the TOML snippet
//! with `e2ekit = "0.1"` replaced by a path, and the scenario's Rust block), so a snippet that
//! lacks a crate the scenario needs fails here. It builds into `<target>/e2ekit-out-of-workspace`,
//! kept between runs: the first run compiles e2ekit's dependencies once (205 s measured on 2
//! shared cores), later runs only what changed (6-7 s, incremental). Its own target directory, because the running
//! `cargo test` may hold the lock on the main one. The workspace's Cargo.lock is copied in, so
//! the versions are the tested ones and every crate is already in the local registry cache.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root: two levels above this crate (crates/e2ekit).
fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The lines of the first fenced block with `lang` after the heading `section`.
fn block(readme: &str, section: &str, lang: &str) -> String {
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.trim_end() == section)
        .unwrap_or_else(|| panic!("README.md has no {section:?} heading"));
    lines
        .by_ref()
        .take_while(|l| !l.starts_with("## "))
        .find(|l| l.trim_end() == format!("```{lang}"))
        .unwrap_or_else(|| panic!("no ```{lang} block under {section:?} in README.md"));
    let body: Vec<&str> = lines.take_while(|l| l.trim_end() != "```").collect();
    body.join("\n") + "\n"
}

/// `<target>` of this test binary (`<target>/debug/deps/engine-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the test binary lives in <target>/<profile>/deps")
}

#[test]
fn a_crate_outside_the_workspace_runs_the_readme_scenario() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let snippet = block(&readme, "## Add it to your project", "toml");
    let e2ekit_line = "e2ekit = \"0.1\"";
    assert!(
        snippet.lines().any(|l| l.trim() == e2ekit_line),
        "the README snippet should depend on {e2ekit_line}:\n{snippet}"
    );
    let e2ekit_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dependencies = snippet.replace(
        e2ekit_line,
        &format!(
            "e2ekit = {{ path = {:?} }}",
            e2ekit_dir.display().to_string()
        ),
    );
    let scenario = block(&readme, "## A scenario", "rust");

    let dir = std::env::temp_dir().join(format!("e2ekit-user-crate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tests")).expect("crate dir");
    std::fs::create_dir_all(dir.join("src")).expect("src dir");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"e2ekit-user\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             # Its own workspace: nothing of the e2ekit repository's applies.\n[workspace]\n\n{dependencies}"
        ),
    )
    .expect("Cargo.toml");
    std::fs::write(dir.join("src/lib.rs"), "").expect("lib.rs");
    std::fs::write(dir.join("tests/readme.rs"), scenario).expect("the scenario");
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");

    // The scenario's `cargo_bin("demo-app")` looks next to the test binary first: put this
    // workspace's demo-app there, as a user's own binary would be.
    let target = target_dir().join("e2ekit-out-of-workspace");
    let bin_dir = target.join("debug");
    std::fs::create_dir_all(&bin_dir).expect("target dir");
    let demo_app = e2ekit::cargo_bin("demo-app").expect("the demo-app binary");
    std::fs::copy(&demo_app, bin_dir.join("demo-app")).expect("copying demo-app");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = if Path::new("/usr/bin/nice").is_file() {
        // A background build: the engine tests running beside it keep the CPU first.
        let mut c = Command::new("/usr/bin/nice");
        c.args(["-n", "10"]).arg(&cargo);
        c
    } else {
        Command::new(&cargo)
    };
    command
        .args(["test", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target);
    // What the outer cargo set for this test binary is not the user crate's business.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            command.env_remove(&key);
        }
    }
    command.env("CARGO_TARGET_DIR", &target);
    let started = std::time::Instant::now();
    let output = command
        .output()
        .expect("running cargo test in the user crate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "cargo test in {} failed after {:?}:\n{stdout}\n{stderr}",
        dir.display(),
        started.elapsed()
    );
    assert!(
        stdout.contains("1 passed"),
        "the scenario ran and passed:\n{stdout}\n{stderr}"
    );
    eprintln!(
        "out-of-workspace crate: cargo test took {:?}",
        started.elapsed()
    );
    std::fs::remove_dir_all(&dir).expect("removing the user crate");
}
