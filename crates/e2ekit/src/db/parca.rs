//! Parca as a catalog entry: profiling's Parca definition with the catalog's options.

use super::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::profiling::parca::{define, Parca, PARCA_IMAGE};

/// Creates Parca (not started) on port [`ACCESS_PORT`](super::ACCESS_PORT) (7070): the
/// image's `/parca` with `--config-path` pointing at a configuration with filesystem object
/// storage in its directory and no scrape jobs (set them with [`Parca::set_scrape_configs`]),
/// as the host user. Flags in `options` override the defaults (`--config-path`,
/// `--http-address=:7070`). Ready once its HTTP server answers `/metrics` (Parca has no HTTP
/// health path; its health is gRPC only, marked serving right before the HTTP server
/// starts). `profiling::start` runs one that follows every profiled runnable by itself.
pub fn parca(env: &Environment, name: &str, options: Options) -> Result<Parca> {
    define(
        env,
        name,
        options.start_options(PARCA_IMAGE),
        &options.flags,
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::profiling::parca::{start_options, PORT_NAME};

    #[test]
    fn options_replace_the_image_and_add_or_override_flags() {
        assert_eq!(PORT_NAME, super::super::ACCESS_PORT);
        let options = Options::new()
            .image("parca:dev")
            .flag("--log-level", "debug")
            .flag("--http-address", ":7071");
        let start = start_options(
            Path::new("/tmp/e2e-test/data/parca"),
            options.start_options(PARCA_IMAGE),
            &options.flags,
        );
        assert_eq!(start.image, "parca:dev");
        assert_eq!(
            start.command.as_ref().expect("command").args,
            [
                "--config-path=/tmp/e2e-test/data/parca/parca.yml",
                "--http-address=:7071",
                "--log-level=debug",
            ]
        );
        let default = start_options(
            Path::new("/d"),
            Options::new().start_options(PARCA_IMAGE),
            &Options::new().flags,
        );
        assert_eq!(default.image, PARCA_IMAGE);
    }
}
