//! Hand-written command-line parsing (`--flag value` and `--flag=value`).

use std::fmt;

/// Usage text printed by `--help` and after an argument error.
pub const USAGE: &str = "\
usage: demo-app [flags]

  --listen <addr>           address to listen on; ':PORT' means 0.0.0.0:PORT (default :8080)
  --name <s>                instance name (default: $HOSTNAME or 'demo-app')
  --ready-after-ms <n>      /ready answers 503 until n ms after start (default 0)
  --listen-delay-ms <n>     do not bind the socket until n ms after start (default 0)
  --exit-code <n>           exit with code n (0-255) after --exit-after-ms
  --exit-after-ms <m>       delay before --exit-code applies (default 0)
  --print-lines <n>         print 'line 1' .. 'line n' to stdout at start (default 0)
  --load-targets <list>     also generate load: GET http://<target><load-path>, one request
                            every interval, to each 'host:port' of the comma-separated list
                            in turn (default: none)
  --load-interval-ms <n>    interval between load requests, at least 1 (default 100)
  --load-path <path>        path (and query) of load requests (default /work)
  -h, --help                print this help
";

/// Parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Address to bind, normalised: `:PORT` becomes `0.0.0.0:PORT`.
    pub listen: String,
    /// Instance name, for logs and the `demo_app_info` gauge.
    pub name: String,
    pub ready_after_ms: u64,
    pub listen_delay_ms: u64,
    /// Exit with this code after `exit_after_ms`, if set.
    pub exit_code: Option<i32>,
    pub exit_after_ms: u64,
    pub print_lines: u64,
    /// `host:port` targets of the load generator; empty means no load.
    pub load_targets: Vec<String>,
    /// Interval between two load requests, at least 1.
    pub load_interval_ms: u64,
    /// Path (with an optional query) of the load requests; starts with `/`.
    pub load_path: String,
}

impl Args {
    /// Defaults; `hostname` is the value of `$HOSTNAME`, if any.
    pub fn defaults(hostname: Option<String>) -> Self {
        Args {
            listen: "0.0.0.0:8080".to_owned(),
            name: hostname
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "demo-app".to_owned()),
            ready_after_ms: 0,
            listen_delay_ms: 0,
            exit_code: None,
            exit_after_ms: 0,
            print_lines: 0,
            load_targets: Vec::new(),
            load_interval_ms: 100,
            load_path: "/work".to_owned(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Args),
    Help,
}

/// An invalid command line (the process exits with code 2).
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// Parses the arguments after the program name. `hostname` supplies the default `--name`.
pub fn parse<I, S>(args: I, hostname: Option<String>) -> Result<Parsed, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = Args::defaults(hostname);
    let mut exit_after_given = false;
    let mut it = args.into_iter().map(Into::into);

    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        if !arg.starts_with("--") {
            return Err(ArgError(format!("unexpected argument '{arg}'")));
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        if !KNOWN.contains(&flag.as_str()) {
            return Err(ArgError(format!("unknown flag '{flag}'")));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| ArgError(format!("flag '{flag}' needs a value")))?,
        };
        match flag.as_str() {
            "--listen" => out.listen = parse_listen(&value)?,
            "--name" => out.name = value,
            "--ready-after-ms" => out.ready_after_ms = parse_num(&flag, &value)?,
            "--listen-delay-ms" => out.listen_delay_ms = parse_num(&flag, &value)?,
            "--exit-code" => {
                let code: u8 = parse_num(&flag, &value)?;
                out.exit_code = Some(i32::from(code));
            }
            "--exit-after-ms" => {
                out.exit_after_ms = parse_num(&flag, &value)?;
                exit_after_given = true;
            }
            "--print-lines" => out.print_lines = parse_num(&flag, &value)?,
            "--load-targets" => out.load_targets = parse_targets(&value)?,
            "--load-interval-ms" => {
                out.load_interval_ms = parse_num(&flag, &value)?;
                if out.load_interval_ms == 0 {
                    return Err(ArgError(
                        "invalid value '0' for '--load-interval-ms': must be at least 1".to_owned(),
                    ));
                }
            }
            "--load-path" => out.load_path = parse_path(&value)?,
            _ => unreachable!("flag listed in KNOWN but not handled: {flag}"),
        }
    }

    if exit_after_given && out.exit_code.is_none() {
        return Err(ArgError("--exit-after-ms needs --exit-code".to_owned()));
    }
    Ok(Parsed::Run(out))
}

const KNOWN: &[&str] = &[
    "--listen",
    "--name",
    "--ready-after-ms",
    "--listen-delay-ms",
    "--exit-code",
    "--exit-after-ms",
    "--print-lines",
    "--load-targets",
    "--load-interval-ms",
    "--load-path",
];

fn parse_num<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ArgError>
where
    T::Err: fmt::Display,
{
    value
        .parse()
        .map_err(|e| ArgError(format!("invalid value '{value}' for '{flag}': {e}")))
}

/// `:PORT` → `0.0.0.0:PORT`; otherwise `HOST:PORT` or `[V6]:PORT` with a valid port.
fn parse_listen(value: &str) -> Result<String, ArgError> {
    let bad = || {
        ArgError(format!(
            "invalid value '{value}' for '--listen': expected ':PORT' or 'HOST:PORT'"
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        Ok(format!("0.0.0.0:{port}"))
    } else {
        Ok(value.to_owned())
    }
}

/// A comma-separated list of `host:port`; blanks around items and empty items are ignored.
fn parse_targets(value: &str) -> Result<Vec<String>, ArgError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty()
                    && !host.contains(char::is_whitespace)
                    && port.parse::<u16>().is_ok_and(|p| p != 0) =>
            {
                Ok(t.to_owned())
            }
            _ => Err(ArgError(format!(
                "invalid target '{t}' in '--load-targets': expected 'HOST:PORT'"
            ))),
        })
        .collect()
}

/// A request target: starts with `/`, no whitespace or control characters.
fn parse_path(value: &str) -> Result<String, ArgError> {
    if value.starts_with('/') && !value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(value.to_owned())
    } else {
        Err(ArgError(format!(
            "invalid value '{value}' for '--load-path': expected a path starting with '/', \
             without spaces"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Args {
        match parse(args.iter().copied(), None) {
            Ok(Parsed::Run(a)) => a,
            other => panic!("unexpected parse result {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        parse(args.iter().copied(), None).unwrap_err().0
    }

    #[test]
    fn defaults() {
        let a = run(&[]);
        assert_eq!(a, Args::defaults(None));
        assert_eq!(a.listen, "0.0.0.0:8080");
        assert_eq!(a.name, "demo-app");
        assert_eq!(a.exit_code, None);
    }

    #[test]
    fn name_defaults_to_hostname() {
        let p = parse(Vec::<String>::new(), Some("box-1".into())).unwrap();
        assert!(matches!(p, Parsed::Run(a) if a.name == "box-1"));
        let p = parse(Vec::<String>::new(), Some(String::new())).unwrap();
        assert!(matches!(p, Parsed::Run(a) if a.name == "demo-app"));
        let p = parse(["--name", "x"], Some("box-1".into())).unwrap();
        assert!(matches!(p, Parsed::Run(a) if a.name == "x"));
    }

    #[test]
    fn both_value_forms() {
        let a = run(&[
            "--listen",
            ":9090",
            "--name=app-1",
            "--ready-after-ms=250",
            "--listen-delay-ms",
            "100",
            "--exit-code=3",
            "--exit-after-ms",
            "500",
            "--print-lines=7",
        ]);
        assert_eq!(a.listen, "0.0.0.0:9090");
        assert_eq!(a.name, "app-1");
        assert_eq!(a.ready_after_ms, 250);
        assert_eq!(a.listen_delay_ms, 100);
        assert_eq!(a.exit_code, Some(3));
        assert_eq!(a.exit_after_ms, 500);
        assert_eq!(a.print_lines, 7);
    }

    #[test]
    fn inline_value_may_contain_equals_and_be_empty() {
        assert_eq!(run(&["--name=a=b"]).name, "a=b");
        assert_eq!(run(&["--name="]).name, "");
    }

    #[test]
    fn listen_forms() {
        assert_eq!(run(&["--listen=127.0.0.1:0"]).listen, "127.0.0.1:0");
        assert_eq!(run(&["--listen=[::1]:80"]).listen, "[::1]:80");
        assert_eq!(run(&["--listen=localhost:80"]).listen, "localhost:80");
        assert!(err(&["--listen=8080"]).contains("--listen"));
        assert!(err(&["--listen=:http"]).contains("--listen"));
        assert!(err(&["--listen=:70000"]).contains("--listen"));
    }

    #[test]
    fn load_flags() {
        let a = run(&[]);
        assert!(a.load_targets.is_empty());
        assert_eq!(a.load_interval_ms, 100);
        assert_eq!(a.load_path, "/work");

        let a = run(&[
            "--load-targets",
            "app-1:8080,10.0.0.7:9090, [::1]:80 ,",
            "--load-interval-ms=25",
            "--load-path",
            "/work?sleep_ms=5&code=201",
        ]);
        assert_eq!(a.load_targets, ["app-1:8080", "10.0.0.7:9090", "[::1]:80"]);
        assert_eq!(a.load_interval_ms, 25);
        assert_eq!(a.load_path, "/work?sleep_ms=5&code=201");

        assert_eq!(run(&["--load-targets=peer:1"]).load_targets, ["peer:1"]);
        assert!(run(&["--load-targets="]).load_targets.is_empty());
        // Without targets the other load flags are accepted and have no effect.
        assert_eq!(run(&["--load-path=/x"]).load_path, "/x");
    }

    #[test]
    fn load_flag_errors() {
        for bad in [
            "peer",
            "peer:",
            ":80",
            "peer:http",
            "peer:70000",
            "peer:0",
            "a b:80",
        ] {
            let e = err(&["--load-targets", &format!("ok:1,{bad}")]);
            assert_eq!(
                e,
                format!("invalid target '{bad}' in '--load-targets': expected 'HOST:PORT'")
            );
        }
        assert_eq!(
            err(&["--load-interval-ms=0"]),
            "invalid value '0' for '--load-interval-ms': must be at least 1"
        );
        assert!(err(&["--load-interval-ms=-5"]).starts_with("invalid value '-5'"));
        for bad in ["work", "", "/a b", "/a\tb"] {
            assert!(
                err(&["--load-path", bad]).contains("--load-path"),
                "accepted {bad:?}"
            );
        }
        assert_eq!(
            err(&["--load-targets"]),
            "flag '--load-targets' needs a value"
        );
    }

    #[test]
    fn last_value_wins() {
        assert_eq!(run(&["--name", "a", "--name", "b"]).name, "b");
    }

    #[test]
    fn help() {
        assert_eq!(parse(["--help"], None), Ok(Parsed::Help));
        assert_eq!(parse(["--name", "x", "-h"], None), Ok(Parsed::Help));
    }

    #[test]
    fn errors() {
        assert_eq!(err(&["--bogus"]), "unknown flag '--bogus'");
        assert_eq!(err(&["--bogus=1"]), "unknown flag '--bogus'");
        assert_eq!(err(&["-x"]), "unexpected argument '-x'");
        assert_eq!(err(&["extra"]), "unexpected argument 'extra'");
        assert_eq!(err(&["--name"]), "flag '--name' needs a value");
        assert!(err(&["--ready-after-ms=soon"]).starts_with("invalid value 'soon'"));
        assert!(err(&["--exit-code=256"]).contains("--exit-code"));
        assert!(err(&["--exit-code=-1"]).contains("--exit-code"));
        assert_eq!(
            err(&["--exit-after-ms=5"]),
            "--exit-after-ms needs --exit-code"
        );
    }
}
