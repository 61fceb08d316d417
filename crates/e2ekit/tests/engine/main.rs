//! Integration tests against the real container engine. They build every image they use
//! from host files (see `common`); nothing is pulled. A missing prerequisite fails loudly.

mod bad_input;
mod blocking;
mod catalog;
mod common;
mod container_options;
mod crash_safety;
mod databases;
mod demo;
mod dockerfile;
mod ecosystem;
mod engines;
mod environment;
mod faults;
mod images;
mod interactive;
mod lifecycle;
mod macro_test;
mod metrics;
mod monitoring;
mod out_of_workspace;
mod output;
mod probes;
mod probes_more;
mod profiling;
mod reaper;
mod registry_auth;
mod remote;
mod swarm;
mod workflow;
// The README's scenario verbatim, in the README's layout (checked by tests/readme_sync.rs).
#[rustfmt::skip]
mod readme;
