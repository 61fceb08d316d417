//! A command line: [`Command`], program plus arguments.
//!
//! ```
//! use e2ekit::Command;
//!
//! let c = Command::new("/bin/app").arg("-v").args(["--listen", ":8080"]);
//! assert_eq!(c.to_string(), "/bin/app -v --listen :8080");
//! assert_eq!(Command::sh("echo hi").to_vec(), ["sh", "-c", "echo hi"]);
//! ```

use std::fmt;

/// A command line: program plus arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) entrypoint_disabled: bool,
}

impl Command {
    /// A command running `program`.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs the program instead of the image's entrypoint rather than as arguments to it.
    pub fn disable_entrypoint(mut self) -> Self {
        self.entrypoint_disabled = true;
        self
    }

    /// A shell command: `sh -c <script>` (the image needs a shell).
    pub fn sh(script: impl Into<String>) -> Self {
        Self::new("sh").arg("-c").arg(script)
    }

    /// Program and arguments as one vector.
    pub fn to_vec(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_vec().join(" "))
    }
}

impl From<&str> for Command {
    fn from(program: &str) -> Self {
        Command::new(program)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_renders_program_and_args() {
        let c = Command::new("/bin/app").arg("-v").args(["--x", "1"]);
        assert_eq!(c.to_vec(), ["/bin/app", "-v", "--x", "1"]);
        assert_eq!(c.to_string(), "/bin/app -v --x 1");
        assert_eq!(Command::sh("echo hi").to_vec(), ["sh", "-c", "echo hi"]);
    }
}
