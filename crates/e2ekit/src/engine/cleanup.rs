//! Removing files that containers wrote into the shared directory as another user (typically
//! root), which the test process cannot delete itself.
//!
//! A throwaway container, running as root with the directory mounted, deletes its content;
//! the image holds only the host's `rm` and the libraries it links (built once, content
//! addressed), so nothing is pulled.

use std::collections::BTreeMap;
use std::path::Path;

use super::{build_host_image, Backend, ContainerSpec, Mount};
use crate::error::{Error, Result};
use crate::host::{labels, HostImage};

const MOUNT: &str = "/e2ekit-cleanup";

fn host_rm() -> Option<&'static str> {
    ["/bin/rm", "/usr/bin/rm"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

/// Deletes everything inside `dir` as root, through the engine. `dir` itself stays (it is
/// the mount point), owned by the caller, who can remove it then.
pub(crate) async fn remove_contents_as_root(
    backend: &dyn Backend,
    env: &str,
    dir: &Path,
) -> Result<()> {
    let rm = host_rm().ok_or_else(|| Error::HostTool {
        tool: "rm".to_string(),
        reason: "is not in /bin or /usr/bin, so no cleanup image can be built from it".to_string(),
    })?;
    let image = build_host_image(
        backend,
        &HostImage::new("e2ekit/cleanup").binary_at(rm, "/bin/rm"),
    )
    .await?;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert(labels::ENV.to_string(), env.to_string());
    labels.insert(labels::OWNER.to_string(), labels::owner().to_string());
    labels.insert(labels::CREATED.to_string(), labels::created_now());
    labels.insert(labels::RUNNABLE.to_string(), "e2ekit-cleanup".to_string());
    let spec = ContainerSpec {
        name: format!("{env}-e2ekit-cleanup"),
        image,
        // `rm -rf` of the mount point empties it, then fails to remove the mount point
        // itself ("busy"); that last failure is expected.
        entrypoint: Some(vec!["/bin/rm".to_string()]),
        cmd: Some(vec!["-rf".to_string(), MOUNT.to_string()]),
        user: Some("0".to_string()),
        labels,
        mounts: vec![Mount {
            host: dir.to_path_buf(),
            container: MOUNT.to_string(),
            read_only: false,
        }],
        network: None,
        ..ContainerSpec::default()
    };
    let started = backend.create_and_start(&spec, "e2ekit-cleanup").await?;
    let waited = match started.exited {
        Some(code) => Ok(code),
        None => backend.wait_exit(&started.id).await,
    };
    let _ = backend.remove(&started.id).await;
    waited.map(|_| ())
}
