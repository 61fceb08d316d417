//! Jaeger all-in-one: a tracing backend (collector, in-memory storage, query UI) for
//! scenarios that export traces.

use super::{Options, Site, Spec};
use crate::env::Environment;
use crate::error::Result;
use crate::metrics::Instrumented;
use crate::spec::Command;
use crate::spec::Flags;
use crate::spec::HttpProbe;

/// The default image, pinned.
pub const JAEGER_IMAGE: &str = "jaegertracing/all-in-one:1.57";

const PORTS: [(&str, u16); 5] = [
    ("http.front", 16686),
    ("jaeger.thrift", 14268),
    ("otlp.grpc", 4317),
    ("otlp.http", 4318),
    ("admin", 14269),
];

/// Jaeger all-in-one (not started), keeping traces in memory. Ports: `"http.front"` (UI and
/// query API, 16686), `"jaeger.thrift"` (collector HTTP, 14268, `/api/traces`),
/// `"otlp.grpc"` (4317), `"otlp.http"` (4318) and `"admin"` (14269: health at `/`,
/// `/metrics`). Ready when the admin health check answers 200 (it answers 503 until Jaeger
/// serves). Flags given through [`Options::flag`] are passed as arguments.
///
/// ```no_run
/// use e2ekit::prelude::*;
///
/// # async fn demo(env: &Environment) -> e2ekit::Result<()> {
/// let jaeger = db::jaeger(env, "tracing", db::Options::new())?;
/// // Exporters in other runnables send OTLP to this address.
/// let otlp = jaeger.internal_endpoint("otlp.grpc")?;
/// start_and_wait_ready(&[&jaeger]).await?;
/// println!("traces from {otlp}: http://{}", jaeger.endpoint("http.front")?);
/// # Ok(()) }
/// ```
pub fn jaeger(env: &Environment, name: &str, options: Options) -> Result<Instrumented> {
    let runnable = super::deploy(env, name, |site| spec(site, &options))?;
    Instrumented::new(runnable, "admin")
}

/// Jaeger's definition. The image's entrypoint is the binary; without flags the image's
/// own defaults apply (no command).
pub(crate) fn spec(_site: &Site, options: &Options) -> Result<Spec> {
    let args = options.merged_flags(Flags::new()).to_args();
    let mut start = options
        .start_options(JAEGER_IMAGE)
        .readiness(HttpProbe::new("admin", "/").status(200..=200));
    if let Some((first, rest)) = args.split_first() {
        start = start.command(Command::new(first.clone()).args(rest.iter().cloned()));
    }
    Ok(PORTS.iter().fold(Spec::new(start), |spec, (name, port)| {
        spec.port(name, *port)
    }))
}

#[cfg(test)]
mod tests {
    use super::super::site::testing::site;
    use super::*;
    use crate::spec::Probe;

    #[test]
    fn jaeger_exposes_its_ports_and_is_ready_on_the_admin_health_check() {
        let spec = spec(&site("tracing"), &Options::new()).expect("spec");
        let ports: Vec<(&str, u16)> = spec.ports.iter().map(|(n, p)| (n.as_str(), *p)).collect();
        assert_eq!(
            ports,
            [
                ("http.front", 16686),
                ("jaeger.thrift", 14268),
                ("otlp.grpc", 4317),
                ("otlp.http", 4318),
                ("admin", 14269),
            ]
        );
        let opts = &spec.options;
        assert_eq!(opts.image, JAEGER_IMAGE);
        assert!(opts.command.is_none(), "the image's defaults apply");
        assert!(opts.user.is_none(), "the image's own user");
        match &opts.readiness {
            Some(Probe::Http(p)) => {
                let text = format!("{p:?}");
                assert!(
                    text.contains("port: \"admin\"") && text.contains("path: \"/\""),
                    "{text}"
                );
                assert!(text.contains("status: 200..=200"), "{text}");
            }
            other => panic!("expected an HTTP probe, got {other:?}"),
        }
        assert!(spec.files.is_empty() && spec.dirs.is_empty());
    }

    #[test]
    fn flags_become_arguments() {
        let options = Options::new()
            .image("jaeger:dev")
            .flag("--log-level", "debug")
            .flag("--memory.max-traces", "1000");
        let spec = spec(&site("tracing"), &options).expect("spec");
        assert_eq!(spec.options.image, "jaeger:dev");
        assert_eq!(
            spec.options.command.as_ref().expect("command").to_vec(),
            ["--log-level=debug", "--memory.max-traces=1000"]
        );
    }
}
