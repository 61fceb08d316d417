//! STUB (being written): profiling.
use crate::db::Options;
use crate::env::Environment;
use crate::error::Result;
use crate::metrics::Instrumented;
use crate::runnable::{AsRunnable, Runnable};

/// Instrumented and profiled.
#[derive(Debug, Clone)]
pub struct Observable {
    instrumented: Instrumented,
}

impl std::ops::Deref for Observable {
    type Target = Instrumented;
    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for Observable {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}

/// Parca.
#[derive(Debug, Clone)]
pub struct Parca {
    instrumented: Instrumented,
}

impl std::ops::Deref for Parca {
    type Target = Instrumented;
    fn deref(&self) -> &Instrumented {
        &self.instrumented
    }
}

impl AsRunnable for Parca {
    fn as_runnable(&self) -> &Runnable {
        self.instrumented.runnable()
    }
}

/// Parca.
pub fn parca(env: &Environment, name: &str, options: Options) -> Result<Parca> {
    let _ = (env, options);
    Err(crate::Error::InvalidArgument(format!("not yet: {name}")))
}
