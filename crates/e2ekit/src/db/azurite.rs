//! STUB (being written): Azurite.
use std::path::Path;

use super::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::runnable::Runnable;

/// The development account's connection string.
pub const AZURITE_DEV_CONNECTION_STRING: &str = "";

/// Azurite.
pub fn azurite(env: &Environment, name: &str, options: Options) -> Result<Runnable> {
    let _ = (env, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}

/// Azurite writer.
pub fn azurite_writer(
    env: &Environment,
    name: &str,
    azurite: &Runnable,
    container: &str,
    data_dir: &Path,
    options: Options,
) -> Result<Runnable> {
    let _ = (env, azurite, container, data_dir, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}
