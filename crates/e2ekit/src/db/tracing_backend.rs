//! STUB (being written): Jaeger.
use super::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::metrics::Instrumented;

/// Jaeger all-in-one.
pub fn jaeger(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let _ = (env, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}
