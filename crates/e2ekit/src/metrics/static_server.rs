//! A runnable that serves fixed bytes as `/metrics`, to test scrapers and metric waits.

use std::ops::Deref;
use std::path::PathBuf;

use super::instrumented::Instrumented;
use crate::env::Environment;
use crate::env::{AsRunnable, Runnable};
use crate::error::{Error, Result};
use crate::host::HostImage;
use crate::spec::HttpProbe;
use crate::spec::{Command, StartOptions};

/// Where the host's static busybox is looked for (`E2EKIT_BUSYBOX` overrides it).
const BUSYBOX: &str = "/bin/busybox";
const PORT: u16 = 8080;

/// Serves an exposition you control as `/metrics` on port `"http"`, from busybox's httpd in a
/// container (image built from the host's static busybox: Debian's `busybox-static`; no
/// registry). Change what it serves at any time with [`StaticMetricsServer::set`].
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let server = StaticMetricsServer::start(env, "fake", "up 0\n").await?;
/// server.set("up 1\n")?;
/// server.wait_sum_metrics(equals(1.0), ["up"]).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StaticMetricsServer {
    instrumented: Instrumented,
    file: PathBuf,
    /// Serialises sending new content to a remote engine's copy.
    pushing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl StaticMetricsServer {
    /// Starts the server and waits until it serves `exposition`.
    pub async fn start(
        env: &Environment,
        name: &str,
        exposition: impl Into<Vec<u8>>,
    ) -> Result<Self> {
        let busybox = std::env::var("E2EKIT_BUSYBOX").unwrap_or_else(|_| BUSYBOX.to_string());
        if !std::path::Path::new(&busybox).is_file() {
            return Err(Error::HostTool {
                tool: busybox,
                reason: "is missing: the static metrics server needs a static busybox (apt-get install busybox-static, or set E2EKIT_BUSYBOX)".to_string(),
            });
        }
        let image = HostImage::new("e2ekit/busybox")
            .binary_at(&busybox, "/bin/busybox")
            .build(env)
            .await?;
        let future = env.runnable(name).with_ports([("http", PORT)]).future()?;
        let root = future.dir().join("www");
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        let server = Self {
            file: root.join("metrics"),
            pushing: Default::default(),
            instrumented: Instrumented::new(
                future.init(
                    StartOptions::new(image)
                        .command(Command::new("/bin/busybox").args([
                            "httpd",
                            "-f",
                            "-p",
                            &PORT.to_string(),
                            "-h",
                            &root.display().to_string(),
                        ]))
                        .readiness(HttpProbe::new("http", "/metrics")),
                )?,
                "http",
            )?,
        };
        server.set(exposition)?;
        server.instrumented.runnable().start().await?;
        server.instrumented.runnable().wait_ready().await?;
        Ok(server)
    }

    /// Replaces what `/metrics` serves; the next request sees all of it or none of it.
    pub fn set(&self, exposition: impl Into<Vec<u8>>) -> Result<()> {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, exposition.into())
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &self.file)
            .map_err(|e| Error::io(format!("replacing {}", self.file.display()), e))?;
        let runnable = self.instrumented.runnable();
        if runnable.engine_sees_host_files() || !runnable.is_running() {
            return Ok(());
        }
        // On an engine that cannot see this host's files the server has its own copy: send
        // it the new content before returning, as the mounted file would be there at once.
        // On e2ekit's runtime (this may be called from any thread, async or not), one push
        // at a time.
        let (runnable, file, pushing) = (runnable.clone(), self.file.clone(), self.pushing.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        crate::runtime::spawn(async move {
            let _one_at_a_time = pushing.lock().await;
            let _ = done_tx.send(runnable.push_host_file(&file).await);
        });
        match done_rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(result) => result,
            Err(_) => Err(Error::Unexpected(format!(
                "sending the new content of {} to static server {:?} did not finish within 60 s",
                self.file.display(),
                self.instrumented.runnable().name()
            ))),
        }
    }

    /// The server as an instrumented runnable.
    pub fn instrumented(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl Deref for StaticMetricsServer {
    type Target = Instrumented;
    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for StaticMetricsServer {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}
