//! Integration tests against the real container engine. They build every image they use
//! from host files; nothing is pulled.

mod common;
mod smoke;
