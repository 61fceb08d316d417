//! Building a [`DockerfileImage`] on any engine, content-cached: the image is tagged
//! `repo:df-<16 hex>`, a hash of everything the build is given (see
//! [`DockerfileImage`]); when the engine has that tag, nothing is built.

use std::collections::BTreeMap;

use super::{Backend, BuildRequest};
use crate::error::Result;
use crate::host::labels;
use crate::host::DockerfileImage;

/// The prefix of the content tags of Dockerfile images.
pub(crate) const DOCKERFILE_TAG_PREFIX: &str = "df-";
/// Label naming one build (`<unix nanoseconds>-<pid>`): every build the engine runs makes an
/// image of its own, so an unchanged image id shows that nothing was built (the engine's
/// layer cache for the steps before it still applies).
const BUILD_LABEL: &str = "e2ekit.build";

fn build_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos}-{}", std::process::id())
}

/// Builds (or finds) `image` on the engine; returns the reference to run. The context and
/// Dockerfile are checked before the engine is asked anything.
pub(crate) async fn build_dockerfile_image(
    backend: &dyn Backend,
    image: &DockerfileImage,
) -> Result<String> {
    let prepared = image.prepare()?;
    let repo = image.repository();
    let reference = format!("{repo}:{DOCKERFILE_TAG_PREFIX}{}", prepared.fingerprint);
    if backend.image_exists(&reference).await? {
        tracing::debug!(image = %reference, "Dockerfile context unchanged");
    } else {
        tracing::info!(image = %reference, bytes = prepared.context_tar.len(), "building image from a Dockerfile");
        let request = BuildRequest {
            context_tar: prepared.context_tar,
            dockerfile: prepared.dockerfile,
            build_args: image.build_args().clone(),
            target: image.target_stage().map(str::to_string),
            tag: reference.clone(),
            // A build cache like host images: `e2ekit gc --images` may remove it.
            labels: BTreeMap::from([
                (labels::HOST_IMAGE.to_string(), "dockerfile".to_string()),
                (labels::CREATED.to_string(), labels::created_now()),
                (BUILD_LABEL.to_string(), build_id()),
            ]),
            context_dir: image.context_dir().to_path_buf(),
        };
        backend.build_image(&request).await?;
    }
    match image.fixed_tag() {
        Some(tag) => {
            backend.tag_image(&reference, &repo, tag).await?;
            Ok(format!("{repo}:{tag}"))
        }
        None => Ok(reference),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    #[tokio::test]
    async fn unchanged_context_is_built_once_and_a_change_builds_again() {
        let dir = std::env::temp_dir().join(format!("e2ekit-df-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY a /a\n").expect("write");
        std::fs::write(dir.join("a"), "one").expect("write");
        let fake = FakeEngine::new();
        let image = DockerfileImage::new(&dir).repo("t/df").build_arg("K", "v");

        let first = build_dockerfile_image(&fake, &image).await.expect("build");
        assert!(first.starts_with("t/df:df-"), "{first}");
        let again = build_dockerfile_image(&fake, &image).await.expect("cached");
        assert_eq!(again, first);
        let builds = fake.builds();
        assert_eq!(builds.len(), 1, "the unchanged context is not built again");
        assert_eq!(builds[0].dockerfile, "Dockerfile");
        assert_eq!(builds[0].build_args.get("K").map(String::as_str), Some("v"));
        assert!(builds[0].labels.contains_key(labels::HOST_IMAGE));
        assert!(builds[0].labels.contains_key(BUILD_LABEL));

        std::fs::write(dir.join("a"), "two").expect("write");
        let changed = build_dockerfile_image(&fake, &image.clone().tag("latest"))
            .await
            .expect("rebuild");
        assert_eq!(changed, "t/df:latest");
        assert_eq!(fake.builds().len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn bad_input_fails_before_the_engine_is_asked() {
        let fake = FakeEngine::new();
        let missing = std::env::temp_dir().join("e2ekit-df-no-such-context");
        let err = build_dockerfile_image(&fake, &DockerfileImage::new(&missing))
            .await
            .expect_err("missing context");
        assert!(matches!(err, crate::Error::InvalidArgument(_)), "{err}");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn a_failed_build_is_reported_and_tags_nothing() {
        let dir = std::env::temp_dir().join(format!("e2ekit-df-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").expect("write");
        let fake = FakeEngine::new();
        fake.fail_next("build_image", "step 1 failed");
        let image = DockerfileImage::new(&dir).repo("t/fail").tag("latest");
        let err = build_dockerfile_image(&fake, &image)
            .await
            .expect_err("fails");
        assert!(err.report().contains("step 1 failed"), "{}", err.report());
        assert!(
            !fake.calls().iter().any(|c| c.starts_with("tag_image")),
            "{:?}",
            fake.calls()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
