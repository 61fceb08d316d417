//! The official image of every catalog entry: what runs unless [`Options::image`](super::Options::image)
//! says otherwise.
//!
//! ```
//! assert!(e2ekit::db::images::PROMETHEUS.starts_with("quay.io/prometheus/prometheus:"));
//! ```

pub use super::azurite::{CLI_IMAGE as AZURE_CLI, IMAGE as AZURITE};
pub use super::mariadb::{EXPORTER_IMAGE as MYSQLD_EXPORTER, IMAGE as MARIADB};
pub use super::minio::IMAGE as MINIO;
pub use super::postgres::{EXPORTER_IMAGE as POSTGRES_EXPORTER, IMAGE as POSTGRES};
pub use super::redis::{EXPORTER_IMAGE as REDIS_EXPORTER, IMAGE as REDIS};
pub use super::thanos::THANOS_IMAGE as THANOS;
pub use super::tracing_backend::JAEGER_IMAGE as JAEGER;
pub use crate::profiling::PARCA_IMAGE as PARCA;
pub use crate::prometheus::image::DEFAULT_IMAGE as PROMETHEUS;

/// Prometheus' Alertmanager.
pub const ALERTMANAGER: &str = "quay.io/prometheus/alertmanager:v0.27.0";
/// Prometheus' Pushgateway.
pub const PUSHGATEWAY: &str = "quay.io/prometheus/pushgateway:v1.9.0";
/// Prometheus' node exporter.
pub const NODE_EXPORTER: &str = "quay.io/prometheus/node-exporter:v1.8.2";
/// The distribution registry.
pub const REGISTRY: &str = "registry:2.8.3";
/// Consul (HashiCorp's image; the old `consul` library image is no longer published).
pub const CONSUL: &str = "hashicorp/consul:1.19.2";
/// etcd.
pub const ETCD: &str = "gcr.io/etcd-development/etcd:v3.5.15";
/// Memcached.
pub const MEMCACHED: &str = "memcached:1.6.29";
/// DynamoDB local.
pub const DYNAMODB: &str = "amazon/dynamodb-local:2.5.2";
/// The Bigtable emulator.
pub const BIGTABLE: &str = "shopify/bigtable-emulator:0.1.0";
/// Cassandra.
pub const CASSANDRA: &str = "rinscy/cassandra:3.11.0";
/// OpenStack Swift, all in one container.
pub const SWIFT: &str = "bouncestorage/swift-aio:55ba4331";
