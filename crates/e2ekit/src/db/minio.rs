//! STUB (being written): MinIO.
use super::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::metrics::Instrumented;

/// MinIO's access key.
pub const MINIO_ACCESS_KEY: &str = "Cheescake";
/// MinIO's secret key.
pub const MINIO_SECRET_KEY: &str = "supersecret";

/// MinIO.
pub fn minio(env: &Environment, name: &str, bucket: &str, options: Options) -> Result<Instrumented> {
    let _ = (env, bucket, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}
