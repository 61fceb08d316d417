//! Health checks: the one a container is created with, the status the engine reports, and
//! whether an image defines one.

use bollard::models::{HealthConfig, HealthStatusEnum};

use super::calls::{within, CALL_TIMEOUT};
use super::{ContainerSpec, DockerBackend};
use crate::engine::ContainerHealth;
use crate::error::Result;

/// The container-create health check for `spec`, when its options give one. Docker runs the
/// test as `CMD` (an argument vector, no shell), counting durations in nanoseconds.
pub(super) fn health_config(spec: &ContainerSpec) -> Option<HealthConfig> {
    let check = spec.health_check.as_ref()?;
    let nanos = |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let mut test = vec!["CMD".to_string()];
    test.extend(check.test.to_vec());
    Some(HealthConfig {
        test: Some(test),
        interval: Some(nanos(check.interval)),
        timeout: Some(nanos(check.timeout)),
        retries: Some(i64::from(check.retries)),
        start_period: Some(nanos(check.start_period)),
        ..Default::default()
    })
}

/// Whether a health check's `Test` defines a check: empty inherits (none here) and `NONE`
/// disables it.
fn defines_check(test: Option<&[String]>) -> bool {
    match test {
        Some([first, ..]) => first != "NONE",
        _ => false,
    }
}

impl DockerBackend {
    pub(super) async fn health(&self, id: &str, for_whom: &str) -> Result<ContainerHealth> {
        let info = within(
            || format!("inspecting the health of container {id} for runnable {for_whom}"),
            CALL_TIMEOUT,
            self.docker.inspect_container(id, None),
        )
        .await?;
        let Some(health) = info.state.and_then(|s| s.health) else {
            return Ok(ContainerHealth::NoHealthCheck);
        };
        let last = health
            .log
            .unwrap_or_default()
            .into_iter()
            .last()
            .map(|r| (r.exit_code.unwrap_or(-1), r.output.unwrap_or_default()));
        Ok(match health.status {
            Some(HealthStatusEnum::HEALTHY) => ContainerHealth::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => ContainerHealth::Unhealthy {
                failing_streak: health.failing_streak.unwrap_or(0),
                last,
            },
            Some(HealthStatusEnum::STARTING) => ContainerHealth::Starting { last },
            // "none" or empty: the engine runs no check for this container.
            _ => ContainerHealth::NoHealthCheck,
        })
    }

    pub(super) async fn image_has_health_check(&self, image: &str) -> Result<bool> {
        let info = within(
            || format!("inspecting the health check of image {image}"),
            CALL_TIMEOUT,
            self.docker.inspect_image(image),
        )
        .await?;
        let test = info.config.and_then(|c| c.healthcheck).and_then(|h| h.test);
        Ok(defines_check(test.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::spec::{Command, HealthCheck};

    #[test]
    fn health_config_runs_the_command_without_a_shell_in_nanoseconds() {
        let spec = ContainerSpec {
            health_check: Some(
                HealthCheck::new(Command::new("/bin/test").args(["-f", "/ok"]))
                    .interval(Duration::from_millis(250))
                    .retries(2),
            ),
            ..Default::default()
        };
        let config = health_config(&spec).expect("a health check");
        assert_eq!(
            config.test.as_deref(),
            Some(&["CMD", "/bin/test", "-f", "/ok"].map(String::from)[..])
        );
        assert_eq!(config.interval, Some(250_000_000));
        assert_eq!(config.retries, Some(2));
        assert_eq!(config.timeout, Some(30_000_000_000));
        assert!(health_config(&ContainerSpec::default()).is_none());
        assert!(defines_check(Some(&[
            "CMD-SHELL".to_string(),
            "true".into()
        ])));
        assert!(!defines_check(Some(&["NONE".to_string()])));
        assert!(!defines_check(Some(&[])));
        assert!(!defines_check(None));
    }
}
