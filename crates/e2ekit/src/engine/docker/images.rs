//! Images: presence, pulls, imports of host-built root filesystems (as `docker save`
//! archives), tags and pruning.

use std::collections::HashMap;

use bollard::query_parameters::{
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, ListImagesOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::StreamExt;

use super::calls::{is_not_found, status_code, within, CALL_TIMEOUT};
use super::{auth, discovery, DockerBackend, ImageConfig};
use crate::error::{Error, Result};
use crate::host::labels;
use crate::spec::reference::split_image;

impl DockerBackend {
    pub(super) async fn ensure_image(&self, image: &str, for_whom: &str) -> Result<()> {
        if self.image_exists(image).await? {
            return Ok(());
        }
        tracing::info!(image, runnable = for_whom, "pulling image");
        self.pull(image, for_whom).await
    }

    pub(super) async fn image_exists(&self, image: &str) -> Result<bool> {
        match within(
            || format!("inspecting image {image}"),
            CALL_TIMEOUT,
            self.docker.inspect_image(image),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn image_tags(&self, image: &str) -> Result<Option<Vec<String>>> {
        match within(
            || format!("inspecting image {image}"),
            CALL_TIMEOUT,
            self.docker.inspect_image(image),
        )
        .await
        {
            Ok(found) => Ok(Some(found.repo_tags.unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn import_image(
        &self,
        repo: &str,
        tag: &str,
        tar: Vec<u8>,
        config: &ImageConfig,
    ) -> Result<()> {
        // Not /images/create?fromSrc=-: Podman ignores its `tag` and applies only the first
        // of its `changes`. A `docker save` archive carries name and config in itself, and
        // both engines load it alike.
        let archive =
            docker_archive(repo, tag, &tar, config).map_err(|reason| Error::ImageBuild {
                image: format!("{repo}:{tag}"),
                reason,
            })?;
        let opts = ImportImageOptionsBuilder::default().quiet(true).build();
        let mut stream = self
            .docker
            .import_image(opts, bollard::body_full(archive.into()), None);
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => return Ok(()),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => {
                    return Err(Error::ImageBuild {
                        image: format!("{repo}:{tag}"),
                        reason: format!("the engine refused the import: {e}"),
                    })
                }
                Err(_) => {
                    return Err(Error::EngineTimeout {
                        action: format!("importing image {repo}:{tag}"),
                        after: CALL_TIMEOUT,
                    })
                }
            }
        }
    }

    pub(super) async fn list_host_images(&self) -> Result<Vec<Vec<String>>> {
        let label = labels::HOST_IMAGE.to_string();
        let filters = HashMap::from([("label".to_string(), vec![label.clone()])]);
        let images = within(
            || format!("listing images labelled {label}"),
            CALL_TIMEOUT,
            self.docker.list_images(Some(
                ListImagesOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            )),
        )
        .await?;
        Ok(images
            .into_iter()
            .map(|i| {
                let mut tags: Vec<String> = i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect();
                // Input tags (the metadata cache, `repo:in-…`) first: a prune that finds the
                // image in use then still leaves its content and fixed tags in place.
                tags.sort_by_key(|t| !is_input_tag(t));
                tags
            })
            .collect())
    }

    pub(super) async fn untag_image(&self, reference: &str) -> Result<bool> {
        match within(
            || format!("removing image {reference}"),
            CALL_TIMEOUT,
            self.docker.remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            ),
        )
        .await
        {
            Ok(_) => Ok(true),
            // In use by a container (running or not): keep it.
            Err(e) if status_code(&e) == Some(409) => Ok(false),
            Err(e) if is_not_found(&e) => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn pull(&self, image: &str, for_whom: &str) -> Result<()> {
        let (repo, tag) = split_image(image);
        let opts = CreateImageOptionsBuilder::default()
            .from_image(repo)
            .tag(tag)
            .build();
        let (creds, creds_problem) = registry_credentials(image).await;
        let fail = |reason: String| Error::ImageNotFound {
            runnable: for_whom.to_string(),
            image: image.to_string(),
            reason: explain_registry_failure(
                image,
                reason,
                creds.as_ref(),
                creds_problem.as_deref(),
            ),
        };
        let mut stream =
            self.docker
                .create_image(Some(opts), None, creds.as_ref().map(|c| c.to_bollard()));
        // Pulls can take minutes on slow links; each progress message proves liveness.
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => return Ok(()),
                // The engine reports some failures inside the stream rather than as an error.
                Ok(Some(Ok(info))) if info.error_detail.is_some() => {
                    let message = info
                        .error_detail
                        .and_then(|d| d.message)
                        .unwrap_or_else(|| "no detail".to_string());
                    return Err(fail(message));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(fail(e.to_string())),
                Err(_) => {
                    return Err(fail(format!(
                        "the pull made no progress for {CALL_TIMEOUT:?}"
                    )))
                }
            }
        }
    }

    pub(super) async fn push_image(&self, reference: &str) -> Result<()> {
        let (repo, tag) = split_image(reference);
        let action = || format!("pushing image {reference}");
        let (creds, creds_problem) = registry_credentials(reference).await;
        let explain = |message: String| {
            explain_registry_failure(reference, message, creds.as_ref(), creds_problem.as_deref())
        };
        let mut stream = self.docker.push_image(
            repo,
            Some(
                bollard::query_parameters::PushImageOptionsBuilder::default()
                    .tag(tag)
                    .build(),
            ),
            creds.as_ref().map(|c| c.to_bollard()),
        );
        // Each progress message proves the push is moving; the registry reports failures
        // inside the stream.
        loop {
            match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
                Ok(None) => return Ok(()),
                Ok(Some(Ok(info))) => {
                    if let Some(detail) = info.error_detail {
                        let message = detail.message.unwrap_or_else(|| "no detail".to_string());
                        return Err(Error::engine(action(), explain(message)));
                    }
                }
                Ok(Some(Err(e))) => return Err(Error::engine(action(), explain(e.to_string()))),
                Err(_) => {
                    return Err(Error::EngineTimeout {
                        action: action(),
                        after: CALL_TIMEOUT,
                    })
                }
            }
        }
    }

    pub(super) async fn tag_image(&self, image: &str, repo: &str, tag: &str) -> Result<()> {
        within(
            || format!("tagging image {image} as {repo}:{tag}"),
            CALL_TIMEOUT,
            self.docker.tag_image(
                image,
                Some(
                    TagImageOptionsBuilder::default()
                        .repo(repo)
                        .tag(tag)
                        .build(),
                ),
            ),
        )
        .await
    }
}

/// Credentials for the registry of `image` (see [`auth`](super::auth)), and why configured
/// ones could not be had: then the pull or push goes anonymously, and its error says so.
async fn registry_credentials(image: &str) -> (Option<auth::Credentials>, Option<String>) {
    match auth::credentials_for(image, &discovery::RealSnapshot).await {
        Ok(found) => (found, None),
        Err(problem) => {
            tracing::warn!(image, %problem, "no registry credentials; going anonymously");
            (None, Some(problem))
        }
    }
}

/// The engine's answer about a registry, with what e2ekit sent: which registry, which user
/// from where, or that no credentials were configured for it.
fn explain_registry_failure(
    image: &str,
    message: String,
    creds: Option<&auth::Credentials>,
    problem: Option<&str>,
) -> String {
    let registry = auth::registry_of(image);
    let lower = message.to_ascii_lowercase();
    // Docker's and the registries' words for a refusal (not bare codes: "401" is in many a
    // port number).
    let refused = [
        "unauthorized",
        "authentication required",
        "no basic auth credentials",
        "access to the resource is denied",
        "pull access denied",
        "incorrect username or password",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if !refused {
        return message;
    }
    let sent = match (creds, problem) {
        (Some(c), _) => format!(
            "the credentials sent (user {:?} from {}) were refused",
            c.username.as_deref().unwrap_or("<token>"),
            c.source
        ),
        (None, Some(p)) => format!("no credentials could be had ({p})"),
        (None, None) => "no credentials are configured for it (DOCKER_AUTH_CONFIG, or auths / credHelpers / credsStore in $DOCKER_CONFIG/config.json)".to_string(),
    };
    format!("registry {registry} refused access: {sent}; the engine said: {message}")
}

/// Whether `reference` carries an input tag of the host-image metadata cache.
fn is_input_tag(reference: &str) -> bool {
    split_image(reference)
        .1
        .starts_with(crate::engine::INPUT_TAG_PREFIX)
}

/// A `docker save` archive (manifest.json, image config, one layer) naming the image
/// `repo:tag`, with `config` as the image's runtime settings.
fn docker_archive(
    repo: &str,
    tag: &str,
    layer: &[u8],
    image: &ImageConfig,
) -> std::result::Result<Vec<u8>, String> {
    use serde_json::{json, Map, Value};
    use sha2::{Digest, Sha256};
    let hex = |data: &[u8]| -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut config = Map::new();
    let env: Vec<Value> = image
        .env
        .iter()
        .map(|(k, v)| Value::from(format!("{k}={v}")))
        .collect();
    config.insert("Env".into(), Value::Array(env));
    if let Some(dir) = &image.workdir {
        config.insert("WorkingDir".into(), Value::from(dir.as_str()));
    }
    if let Some(user) = &image.user {
        config.insert("User".into(), Value::from(user.as_str()));
    }
    if let Some(ep) = &image.entrypoint {
        config.insert("Entrypoint".into(), json!(ep));
    }
    if let Some(cmd) = &image.cmd {
        config.insert("Cmd".into(), json!(cmd));
    }
    if !image.labels.is_empty() {
        config.insert("Labels".into(), json!(image.labels));
    }
    let diff_id = hex(layer);
    let image_config = serde_json::to_vec(&json!({
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    }))
    .map_err(|e| e.to_string())?;
    let config_name = format!("{}.json", hex(&image_config));
    let layer_name = format!("{diff_id}/layer.tar");
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [format!("{repo}:{tag}")],
        "Layers": [layer_name],
    }]))
    .map_err(|e| e.to_string())?;
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [
        (config_name.as_str(), image_config.as_slice()),
        (layer_name.as_str(), layer),
        ("manifest.json", manifest.as_slice()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        archive
            .append_data(&mut header, name, data)
            .map_err(|e| format!("packing the image archive: {e}"))?;
    }
    archive
        .into_inner()
        .map_err(|e| format!("packing the image archive: {e}"))
}

/// The host's architecture as image configs name it (Go's GOARCH).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::{auth, docker_archive, explain_registry_failure};

    #[test]
    fn a_registry_refusal_names_the_registry_and_what_was_sent() {
        let creds = auth::Credentials {
            username: Some("ci".into()),
            password: Some("secret".into()),
            identity_token: None,
            server: "r.example:5000".into(),
            source: "/h/.docker/config.json".into(),
        };
        let said = "Docker responded with status code 500: unauthorized: authentication required";
        let text =
            explain_registry_failure("r.example:5000/a/b:1", said.into(), Some(&creds), None);
        assert!(
            text.starts_with("registry r.example:5000 refused access"),
            "{text}"
        );
        assert!(
            text.contains("user \"ci\" from /h/.docker/config.json"),
            "{text}"
        );
        assert!(text.ends_with(said), "{text}");
        assert!(!text.contains("secret"), "{text}");
        let text = explain_registry_failure("busybox", "pull access denied".into(), None, None);
        assert!(
            text.contains("registry docker.io refused access: no credentials are configured"),
            "{text}"
        );
        let text = explain_registry_failure(
            "r.example/x",
            "unauthorized".into(),
            None,
            Some("docker-credential-x failed"),
        );
        assert!(
            text.contains("no credentials could be had (docker-credential-x failed)"),
            "{text}"
        );
        // Other failures pass through untouched, port numbers with 401 in them too.
        let other = "Get http://127.0.0.1:40113/v2/: connection refused";
        assert_eq!(
            explain_registry_failure("127.0.0.1:40113/x", other.into(), None, None),
            other
        );
    }
    use crate::spec::ImageConfig;

    #[test]
    fn image_archive_carries_tag_and_every_setting() {
        let config = ImageConfig {
            env: vec![("PATH".into(), "/bin".into()), ("A".into(), "1=2".into())],
            entrypoint: Some(vec!["/bin/sh".into()]),
            cmd: Some(vec!["-c".into(), "true".into()]),
            workdir: Some("/w".into()),
            user: Some("65534".into()),
            labels: [("e2ekit.host-image".to_string(), "1".to_string())].into(),
        };
        let archive = docker_archive("r/x", "t1", b"layer", &config).unwrap();
        let mut files = std::collections::HashMap::new();
        for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            files.insert(name, data);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "r/x:t1");
        let layer = manifest[0]["Layers"][0].as_str().unwrap();
        assert_eq!(files[layer], b"layer");
        let config: serde_json::Value =
            serde_json::from_slice(&files[manifest[0]["Config"].as_str().unwrap()]).unwrap();
        let c = &config["config"];
        assert_eq!(c["Env"], serde_json::json!(["PATH=/bin", "A=1=2"]));
        assert_eq!(c["User"], "65534");
        assert_eq!(c["Labels"]["e2ekit.host-image"], "1");
        assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh"]));
        assert_eq!(c["Cmd"], serde_json::json!(["-c", "true"]));
        assert_eq!(c["WorkingDir"], "/w");
    }
}
