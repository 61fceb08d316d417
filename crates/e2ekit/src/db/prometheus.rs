//! STUB (being written).
use super::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::metrics::Instrumented;

/// Prometheus.
#[derive(Debug, Clone)]
pub struct Prometheus;
/// Config.
#[derive(Debug, Clone)]
pub struct PrometheusConfig;
/// Scrape.
#[derive(Debug, Clone)]
pub struct ScrapeConfig;
/// Static.
#[derive(Debug, Clone)]
pub struct StaticConfig;

/// Prometheus.
pub fn prometheus(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let _ = (env, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}
