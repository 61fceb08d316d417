//! The README's scenario and the engine test that runs it (`tests/engine/readme.rs`) are the
//! same text. No container engine needed: this compares files.

use std::path::{Path, PathBuf};

const SECTION: &str = "## A scenario";
const BEGIN: &str = "// README-BEGIN";
const END: &str = "// README-END";

/// The repository's README: two levels above this crate (crates/e2ekit).
fn readme_path() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .join("README.md")
}

fn test_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine/readme.rs")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The lines of the first ```rust block after the `SECTION` heading.
fn readme_block(readme: &str) -> Result<Vec<&str>, String> {
    let mut lines = readme.lines();
    lines
        .by_ref()
        .find(|l| l.trim_end() == SECTION)
        .ok_or_else(|| format!("no {SECTION:?} heading"))?;
    lines
        .by_ref()
        .take_while(|l| !l.starts_with("## "))
        .find(|l| l.trim_end() == "```rust")
        .ok_or_else(|| format!("no ```rust block under {SECTION:?}"))?;
    let block: Vec<&str> = lines
        .by_ref()
        .take_while(|l| l.trim_end() != "```")
        .collect();
    if block.is_empty() {
        return Err(format!("the ```rust block under {SECTION:?} is empty"));
    }
    Ok(block)
}

/// The lines strictly between the `BEGIN` and `END` marker lines, each present exactly once.
fn marked_block(source: &str) -> Result<Vec<&str>, String> {
    let lines: Vec<&str> = source.lines().collect();
    let only = |marker: &str| {
        let at: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].trim() == marker)
            .collect();
        match at[..] {
            [i] => Ok(i),
            _ => Err(format!(
                "{marker:?} must be on a line of its own exactly once, found {} times",
                at.len()
            )),
        }
    };
    let (begin, end) = (only(BEGIN)?, only(END)?);
    if end <= begin + 1 {
        return Err(format!("nothing between {BEGIN:?} and {END:?}"));
    }
    Ok(lines[begin + 1..end].to_vec())
}

/// A line diff of `a` (`-`) against `b` (`+`), unchanged lines as context (` `), with 1-based
/// line numbers within each block. Longest common subsequence; the blocks are short.
fn diff(a: &[&str], b: &[&str]) -> String {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out += &format!("  {:>3} {:>3} | {}\n", i + 1, j + 1, a[i]);
            i += 1;
            j += 1;
        } else if j == m || (i < n && lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("- {:>3}     | {}\n", i + 1, a[i]);
            i += 1;
        } else {
            out += &format!("+     {:>3} | {}\n", j + 1, b[j]);
            j += 1;
        }
    }
    out
}

#[test]
fn readme_scenario_is_the_engine_test_verbatim() {
    let (readme_file, test_file) = (readme_path(), test_path());
    let (readme, test) = (read(&readme_file), read(&test_file));
    let from_readme =
        readme_block(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme_file.display()));
    let from_test = marked_block(&test).unwrap_or_else(|e| panic!("{}: {e}", test_file.display()));
    assert!(
        from_readme == from_test,
        "the README's scenario and the engine test that runs it differ.\n\
         - {} (```rust block under {SECTION:?})\n\
         + {} (between {BEGIN:?} and {END:?})\n\
         Make them the same text (copy the block between the markers, or back).\n\n{}",
        readme_file.display(),
        test_file.display(),
        diff(&from_readme, &from_test)
    );
}

#[test]
fn extraction_finds_the_blocks_and_the_diff_shows_changes() {
    let readme = "# x\n## A scenario\n\ntext\n```rust\nfn a() {}\nfn b() {}\n```\n## Next\n";
    assert_eq!(readme_block(readme).unwrap(), ["fn a() {}", "fn b() {}"]);
    assert!(readme_block("## A scenario\n## Next\n```rust\nx\n```\n").is_err());
    let source = "//! doc\n// README-BEGIN\nfn a() {}\nfn c() {}\n// README-END\n";
    assert_eq!(marked_block(source).unwrap(), ["fn a() {}", "fn c() {}"]);
    assert!(marked_block("// README-BEGIN\nx\n").is_err());
    assert!(marked_block("// README-BEGIN\n// README-BEGIN\nx\n// README-END\n").is_err());
    let d = diff(&["fn a() {}", "fn b() {}"], &["fn a() {}", "fn c() {}"]);
    assert_eq!(
        d,
        "    1   1 | fn a() {}\n-   2     | fn b() {}\n+       2 | fn c() {}\n"
    );
}
