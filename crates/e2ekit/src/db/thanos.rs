//! STUB (being written): Thanos.
use super::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::profiling::Observable;
use crate::runnable::AsRunnable;

/// Thanos querier.
pub fn thanos_querier<I, S>(env: &Environment, name: &str, endpoints: I, options: Options) -> Result<Observable>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let _ = (env, endpoints.into_iter().map(Into::into).collect::<Vec<String>>(), options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}

/// Thanos sidecar.
pub fn thanos_sidecar(env: &Environment, name: &str, prometheus: &dyn AsRunnable, options: Options) -> Result<Observable> {
    let _ = (env, prometheus, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}

/// Thanos store.
pub fn thanos_store(env: &Environment, name: &str, bucket_config_yaml: &str, options: Options) -> Result<Observable> {
    let _ = (env, bucket_config_yaml, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}
