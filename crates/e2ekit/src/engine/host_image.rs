//! Building a [`HostImage`] on any engine: content-addressed, so unchanged inputs are only
//! looked up, never imported again.

use sha2::{Digest, Sha256};

use super::Backend;
use crate::error::Result;
use crate::host::HostImage;

/// Builds (or finds) `image` on the engine; returns the reference to run.
pub(crate) async fn build_host_image(backend: &dyn Backend, image: &HostImage) -> Result<String> {
    let (tar, config) = image.assemble()?;
    let mut hasher = Sha256::new();
    hasher.update(&tar);
    hasher.update(config.fingerprint());
    let digest = hasher.finalize();
    let content_tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let repo = image.repo();
    let reference = format!("{repo}:{content_tag}");
    if !backend.image_exists(&reference).await? {
        tracing::info!(image = %reference, bytes = tar.len(), "importing host image");
        backend
            .import_image(repo, &content_tag, tar, &config)
            .await?;
    }
    match image.fixed_tag() {
        Some(tag) => {
            backend.tag_image(&reference, repo, tag).await?;
            Ok(format!("{repo}:{tag}"))
        }
        None => Ok(reference),
    }
}
