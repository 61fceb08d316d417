//! Building a [`HostImage`] on any engine: content-addressed, so unchanged inputs are only
//! looked up, never imported again; and cached by input metadata, so unchanged inputs are
//! not even read.
//!
//! Two tags name a host image. `repo:<16 hex>` is the content tag, a hash of the root
//! filesystem and the config: same content, same tag. `repo:in-<32 hex>` is an input tag, a
//! hash of the inputs' metadata (`InputFingerprint` in `host::rootfs`: paths, sizes,
//! times, inodes, modes, link targets, inline content, config). A build first asks the engine
//! for the image holding its input tag; when it exists, its content tag is the answer and no
//! file is read. Otherwise the content is assembled and hashed as before, imported when the
//! content tag is new, and the input tag is added to the image, unless an input changed in
//! the last two seconds (it could change again without moving its timestamp) or changed
//! during the build.

use sha2::{Digest, Sha256};

use super::Backend;
use crate::error::Result;
use crate::host::HostImage;

/// The prefix of input tags.
pub(crate) const INPUT_TAG_PREFIX: &str = "in-";

/// Builds (or finds) `image` on the engine; returns the reference to run.
pub(crate) async fn build_host_image(backend: &dyn Backend, image: &HostImage) -> Result<String> {
    let repo = image.repo();
    let inputs = image.input_fingerprint()?;
    let input_tag = format!("{INPUT_TAG_PREFIX}{}", inputs.hex);
    let cached = backend
        .image_tags(&format!("{repo}:{input_tag}"))
        .await?
        .and_then(|tags| tags.into_iter().find(|t| is_content_tag(repo, t)));
    let reference = match cached {
        Some(reference) => {
            tracing::debug!(image = %reference, "host image inputs unchanged");
            reference
        }
        None => {
            let (tar, config) = image.assemble()?;
            let mut hasher = Sha256::new();
            hasher.update(&tar);
            hasher.update(config.fingerprint());
            let digest = hasher.finalize();
            let content_tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            let reference = format!("{repo}:{content_tag}");
            if !backend.image_exists(&reference).await? {
                tracing::info!(image = %reference, bytes = tar.len(), "importing host image");
                backend
                    .import_image(repo, &content_tag, tar, &config)
                    .await?;
            }
            // What was read is what the fingerprint described only if nothing moved since.
            if !inputs.racy && image.input_fingerprint()? == inputs {
                backend.tag_image(&reference, repo, &input_tag).await?;
            }
            reference
        }
    };
    match image.fixed_tag() {
        Some(tag) => {
            backend.tag_image(&reference, repo, tag).await?;
            Ok(format!("{repo}:{tag}"))
        }
        None => Ok(reference),
    }
}

/// Whether `reference` is `repo:` followed by a content tag (16 lowercase hex digits).
fn is_content_tag(repo: &str, reference: &str) -> bool {
    reference
        .strip_prefix(repo)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|tag| {
            tag.len() == 16 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::engine::fake::FakeEngine;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("e2ekit-host-image-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// Writes `data` to `path`, modified `secs_ago` seconds ago.
    fn write_aged(path: &Path, data: &str, secs_ago: u64) {
        std::fs::write(path, data).expect("write");
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago)))
            .expect("set mtime");
    }

    fn imports(fake: &FakeEngine) -> usize {
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("import_image "))
            .count()
    }

    #[tokio::test]
    async fn unchanged_inputs_are_found_by_metadata_without_reading_or_importing() {
        let dir = scratch("unchanged");
        let file = dir.join("data.bin");
        write_aged(&file, "payload", 60);
        let fake = FakeEngine::new();
        let image = HostImage::new("t/cache").file(&file, "/data.bin");

        let first = build_host_image(&fake, &image).await.expect("first build");
        assert!(is_content_tag("t/cache", &first), "{first}");
        assert_eq!(imports(&fake), 1);
        let recorded = fake.calls();
        assert!(
            recorded.iter().any(|c| c == &format!("tag_image {first}")),
            "the input tag is recorded on the image: {recorded:?}"
        );

        let before = fake.calls().len();
        let again = build_host_image(&fake, &image).await.expect("rebuild");
        assert_eq!(again, first, "same inputs, same content tag");
        let inputs = image.input_fingerprint().expect("fingerprint");
        assert_eq!(
            fake.calls()[before..],
            [format!("image_tags t/cache:in-{}", inputs.hex)],
            "one lookup, nothing else"
        );

        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[tokio::test]
    async fn a_changed_file_is_imported_again_and_same_content_keeps_its_tag() {
        let dir = scratch("changed");
        let file = dir.join("data.bin");
        write_aged(&file, "version1", 60);
        let fake = FakeEngine::new();
        let image = HostImage::new("t/cache").file(&file, "/data.bin");
        let v1 = build_host_image(&fake, &image).await.expect("v1");

        // Same size, new content, mtime one second later: a new image.
        write_aged(&file, "version2", 59);
        let v2 = build_host_image(&fake, &image).await.expect("v2");
        assert_ne!(v2, v1);
        assert_eq!(imports(&fake), 2);

        // Back to the first content with new metadata: hashed, found by content, not imported,
        // and the same tag as before.
        write_aged(&file, "version1", 58);
        let back = build_host_image(&fake, &image).await.expect("v1 again");
        assert_eq!(back, v1, "same content, same tag");
        assert_eq!(imports(&fake), 2);
        // ... and from now on found by its metadata.
        let before = fake.calls().len();
        assert_eq!(build_host_image(&fake, &image).await.expect("cached"), v1);
        assert_eq!(
            fake.calls().len(),
            before + 1,
            "{:?}",
            &fake.calls()[before..]
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[tokio::test]
    async fn a_just_modified_file_is_hashed_every_time_until_it_settles() {
        let dir = scratch("racy");
        let file = dir.join("data.bin");
        std::fs::write(&file, "fresh").expect("write");
        let fake = FakeEngine::new();
        let image = HostImage::new("t/racy").file(&file, "/data.bin");
        let first = build_host_image(&fake, &image).await.expect("first");
        let second = build_host_image(&fake, &image).await.expect("second");
        assert_eq!(first, second);
        assert_eq!(imports(&fake), 1, "found by content the second time");
        assert!(
            !fake.calls().iter().any(|c| c.starts_with("tag_image")),
            "no input tag for a file modified just now: {:?}",
            fake.calls()
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[tokio::test]
    async fn a_fixed_tag_is_applied_on_the_cached_path_too() {
        let fake = FakeEngine::new();
        let image = HostImage::new("t/fixed").content("/a", "1").tag("latest");
        assert_eq!(
            build_host_image(&fake, &image).await.expect("first"),
            "t/fixed:latest"
        );
        let before = fake.calls().len();
        assert_eq!(
            build_host_image(&fake, &image).await.expect("again"),
            "t/fixed:latest"
        );
        let calls = &fake.calls()[before..];
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(calls[1].starts_with("tag_image t/fixed:"), "{calls:?}");
    }

    #[test]
    fn content_tags_are_sixteen_hex_digits_of_the_repo() {
        assert!(is_content_tag("r/x", "r/x:0123456789abcdef"));
        assert!(!is_content_tag("r/x", "r/xy:0123456789abcdef"));
        assert!(!is_content_tag("r/x", "r/x:latest"));
        assert!(!is_content_tag("r/x", "r/x:in-0123456789abcdef"));
        assert!(!is_content_tag("r/x", "r/x:0123456789ABCDEF"));
    }
}
