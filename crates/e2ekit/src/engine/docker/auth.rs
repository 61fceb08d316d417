//! Registry credentials for pulls and pushes, found where the Docker CLI keeps them: the
//! `DOCKER_AUTH_CONFIG` variable (config.json's JSON, as CI systems set it), then
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`). In each, a registry's
//! `credHelpers` entry wins, then an `auths` entry holding credentials (`auth`, the base64 of
//! `user:password`, or `username`/`password`, or an `identitytoken`), then the `credsStore`.
//! Helpers run as `docker-credential-<name> get`, reading the server on stdin and answering
//! JSON.
//!
//! Parsing and the choice are pure functions (unit-tested here); running a helper and
//! reading the files happen in [`credentials_for`].
//!
//! ```no_run
//! # async fn demo(env: &e2ekit::Environment) -> e2ekit::Result<()> {
//! // DOCKER_AUTH_CONFIG='{"auths":{"registry.example:5000":{"auth":"dXNlcjpwYXNz"}}}'
//! let app = env
//!     .runnable("app")
//!     .init(e2ekit::StartOptions::new("registry.example:5000/team/app:1"))?;
//! app.start().await?; // the pull sends those credentials
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::discovery::{config_dir, Snapshot};

/// Docker Hub's key in config.json, as `docker login` writes it.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// How long a credential helper may take (a keychain prompt is not expected in tests).
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub identity_token: Option<String>,
    /// The registry as the engine must be told (`https://index.docker.io/v1/` for Docker
    /// Hub, else `host[:port]`).
    pub server: String,
    /// Where they came from, for errors: `DOCKER_AUTH_CONFIG`, `/root/.docker/config.json`,
    /// `credential helper docker-credential-x`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets: this ends up in test output.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("server", &self.server)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn to_bollard(&self) -> bollard::auth::DockerCredentials {
        bollard::auth::DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            identitytoken: self.identity_token.clone(),
            serveraddress: Some(self.server.clone()),
            ..Default::default()
        }
    }
}

/// One `auths` entry of config.json.
#[derive(Debug, Default, Clone, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// The parts of config.json (or `DOCKER_AUTH_CONFIG`) that concern credentials.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct AuthConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    /// Where this config came from, for errors.
    #[serde(skip)]
    source: String,
}

impl AuthConfig {
    /// Parses config.json's JSON; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        let mut config: AuthConfig = serde_json::from_str(text)
            .map_err(|e| format!("{source} is not a valid Docker config (JSON): {e}"))?;
        config.source = source.to_string();
        Ok(config)
    }
}

/// What to do for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Send these.
    Found(Credentials),
    /// Ask `docker-credential-<helper> get` for `server`.
    Helper {
        helper: String,
        server: String,
        source: String,
    },
    /// Pull anonymously.
    None,
}

/// The registry an image reference names: its first path component when that looks like a
/// host (has a `.` or `:`, or is `localhost`), else Docker Hub (`docker.io`).
pub(crate) fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => normalize(first),
        _ => "docker.io".to_string(),
    }
}

/// A registry key as config.json may spell it (`https://host:port/v1/`, `HOST`, Docker Hub's
/// aliases), reduced to `host[:port]` in lower case, Docker Hub as `docker.io`.
pub(crate) fn normalize(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// The server name to give the engine and the helpers for a (normalized) registry.
fn server_name(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Decodes an `auths` entry; `None` when it holds no credentials (a `credsStore`
/// placeholder, `{}`).
fn entry_credentials(
    entry: &AuthEntry,
    registry: &str,
    source: &str,
) -> Result<Option<Credentials>, String> {
    let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = decode_base64(auth.trim()).ok_or_else(|| {
            format!("the `auth` of registry {registry} in {source} is not base64")
        })?;
        let decoded = String::from_utf8(decoded).map_err(|_| {
            format!("the `auth` of registry {registry} in {source} is not UTF-8 text")
        })?;
        let (u, p) = decoded.split_once(':').ok_or_else(|| {
            format!("the `auth` of registry {registry} in {source} is not `user:password`")
        })?;
        username = Some(u.to_string());
        password = Some(p.to_string());
    }
    let token = entry.identity_token.clone().filter(|t| !t.is_empty());
    if username.as_deref().is_none_or(str::is_empty) && token.is_none() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username,
        password,
        identity_token: token,
        server: server_name(registry),
        source: source.to_string(),
    }))
}

/// What one config says about `registry` (normalized): its helper, its `auths` entry, the
/// default store, in that order.
pub(crate) fn lookup_in(config: &AuthConfig, registry: &str) -> Result<Lookup, String> {
    let helper = config
        .cred_helpers
        .iter()
        .find(|(k, v)| normalize(k) == registry && !v.is_empty());
    if let Some((key, helper)) = helper {
        return Ok(Lookup::Helper {
            helper: helper.clone(),
            // The helper stores under the key `docker login` used.
            server: key.clone(),
            source: config.source.clone(),
        });
    }
    // Exact keys first, then any spelling of the same registry.
    let mut entries: Vec<(&String, &AuthEntry)> = config
        .auths
        .iter()
        .filter(|(k, _)| normalize(k) == registry)
        .collect();
    entries.sort_by_key(|(k, _)| k.as_str() != registry);
    for (_, entry) in entries {
        if let Some(found) = entry_credentials(entry, registry, &config.source)? {
            return Ok(Lookup::Found(found));
        }
    }
    if let Some(store) = config.creds_store.as_deref().filter(|s| !s.is_empty()) {
        return Ok(Lookup::Helper {
            helper: store.to_string(),
            server: server_name(registry),
            source: config.source.clone(),
        });
    }
    Ok(Lookup::None)
}

/// Standard base64 (padding optional). Written out here: the engine layer must not need
/// the `tls` feature's base64 crate for one decode.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover symbol (6 bits) cannot end valid base64.
    (bits < 6).then_some(out)
}

/// The first config (in order) that says anything about `registry` decides.
pub(crate) fn lookup(configs: &[AuthConfig], registry: &str) -> Result<Lookup, String> {
    for config in configs {
        match lookup_in(config, registry)? {
            Lookup::None => continue,
            found => return Ok(found),
        }
    }
    Ok(Lookup::None)
}

/// A helper's answer (`{"ServerURL": …, "Username": …, "Secret": …}`) as credentials;
/// `<token>` as the user name means the secret is an identity token, as Docker has it.
pub(crate) fn helper_answer(
    text: &str,
    registry: &str,
    source: &str,
) -> Result<Credentials, String> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_str(text.trim())
        .map_err(|e| format!("{source} answered something that is not its JSON: {e}"))?;
    let (username, password, identity_token) = if answer.username == "<token>" {
        (None, None, Some(answer.secret))
    } else {
        (Some(answer.username), Some(answer.secret), None)
    };
    Ok(Credentials {
        username,
        password,
        identity_token,
        server: server_name(registry),
        source: source.to_string(),
    })
}

/// The configs to consult, in order: `DOCKER_AUTH_CONFIG`, then config.json.
pub(crate) fn configs(s: &dyn Snapshot) -> Result<Vec<AuthConfig>, String> {
    let mut out = Vec::new();
    if let Some(text) = s.var("DOCKER_AUTH_CONFIG").filter(|t| !t.trim().is_empty()) {
        out.push(AuthConfig::parse(&text, "DOCKER_AUTH_CONFIG")?);
    }
    if let Some(dir) = config_dir(s) {
        let path = dir.join("config.json");
        match s.read(&path) {
            Ok(text) => out.push(AuthConfig::parse(&text, &path.display().to_string())?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        }
    }
    Ok(out)
}

/// Credentials for the registry of `image`, or `None` to go anonymously. `Err` says why the
/// configured ones could not be had (a broken config, a failing helper).
pub(crate) async fn credentials_for(
    image: &str,
    s: &(dyn Snapshot + Sync),
) -> Result<Option<Credentials>, String> {
    let registry = registry_of(image);
    match lookup(&configs(s)?, &registry)? {
        Lookup::None => Ok(None),
        Lookup::Found(c) => Ok(Some(c)),
        Lookup::Helper {
            helper,
            server,
            source,
        } => run_helper(&helper, &server, &registry, &source).await,
    }
}

/// Runs `docker-credential-<helper> get` for `server`. "Not found" answers mean anonymous.
async fn run_helper(
    helper: &str,
    server: &str,
    registry: &str,
    config: &str,
) -> Result<Option<Credentials>, String> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let source = format!("credential helper {program} (named in {config})");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {source}: {e} (is it installed and on PATH?)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| format!("writing to {source}: {e}"))?;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{source} did not answer within {HELPER_TIMEOUT:?}"))?
        .map_err(|e| format!("running {source}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!(
            "{source} failed ({}) for {server}: {}",
            out.status,
            said.trim()
        ));
    }
    helper_answer(&stdout, registry, &source).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> AuthConfig {
        AuthConfig::parse(json, "cfg").unwrap()
    }

    /// A plain base64 encoder for the fixtures (the `base64` crate is optional).
    fn b64(s: &str) -> String {
        const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn base64_decodes_every_padding_and_rejects_garbage() {
        // Known encodings (RFC 4648's test vectors), then round trips.
        assert_eq!(b64("foob"), "Zm9vYg==");
        assert_eq!(b64("fooba"), "Zm9vYmE=");
        assert_eq!(b64("foobar"), "Zm9vYmFy");
        for text in ["", "a", "ab", "abc", "abcd", "user:pa:ss", "ü:ß"] {
            assert_eq!(
                decode_base64(&b64(text)).unwrap(),
                text.as_bytes(),
                "{text}"
            );
            let unpadded = b64(text).trim_end_matches('=').to_string();
            assert_eq!(decode_base64(&unpadded).unwrap(), text.as_bytes(), "{text}");
        }
        assert_eq!(decode_base64("a!b"), None);
        assert_eq!(decode_base64("abcde"), None);
    }

    fn found(l: Lookup) -> Credentials {
        match l {
            Lookup::Found(c) => c,
            other => panic!("expected credentials, got {other:?}"),
        }
    }

    #[test]
    fn the_registry_of_a_reference_is_its_host_or_docker_hub() {
        assert_eq!(registry_of("busybox"), "docker.io");
        assert_eq!(registry_of("library/busybox:1"), "docker.io");
        assert_eq!(registry_of("team/app"), "docker.io");
        assert_eq!(registry_of("docker.io/library/busybox"), "docker.io");
        assert_eq!(registry_of("index.docker.io/x/y"), "docker.io");
        assert_eq!(registry_of("127.0.0.1:5000/x:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("Registry.Example/x"), "registry.example");
        assert_eq!(registry_of("ghcr.io/o/r@sha256:abc"), "ghcr.io");
    }

    #[test]
    fn keys_are_normalized_like_the_docker_cli_writes_them() {
        assert_eq!(normalize("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize("index.docker.io"), "docker.io");
        assert_eq!(normalize("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize("https://ghcr.io/v2/"), "ghcr.io");
        assert_eq!(normalize(" GHCR.io "), "ghcr.io");
    }

    #[test]
    fn an_auth_entry_decodes_base64_user_and_password() {
        let c = config(&format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
            b64("me:pa:ss")
        ));
        let c = found(lookup_in(&c, "127.0.0.1:5000").unwrap());
        assert_eq!(c.username.as_deref(), Some("me"));
        // Only the first colon separates: passwords may hold colons.
        assert_eq!(c.password.as_deref(), Some("pa:ss"));
        assert_eq!(c.server, "127.0.0.1:5000");
        assert_eq!(c.source, "cfg");
    }

    #[test]
    fn username_and_password_fields_and_identity_tokens_work_too() {
        let c = config(r#"{"auths":{"r.example":{"username":"u","password":"p"}}}"#);
        let c = found(lookup_in(&c, "r.example").unwrap());
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("u"), Some("p"))
        );
        let c = config(r#"{"auths":{"r.example":{"identitytoken":"tok"}}}"#);
        let c = found(lookup_in(&c, "r.example").unwrap());
        assert_eq!(c.identity_token.as_deref(), Some("tok"));
        assert_eq!(c.to_bollard().identitytoken.as_deref(), Some("tok"));
    }

    #[test]
    fn docker_hub_is_found_under_any_of_its_spellings_and_sent_as_the_v1_url() {
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
        ] {
            let c = config(&format!(
                r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#,
                b64("a:b")
            ));
            let c = found(lookup_in(&c, &registry_of("busybox")).unwrap());
            assert_eq!(c.server, "https://index.docker.io/v1/", "{key}");
        }
    }

    #[test]
    fn other_registries_and_empty_entries_give_nothing() {
        let c = config(&format!(
            r#"{{"auths":{{"a.example":{{"auth":"{}"}},"b.example":{{}}}}}}"#,
            b64("u:p")
        ));
        assert_eq!(lookup_in(&c, "c.example").unwrap(), Lookup::None);
        assert_eq!(lookup_in(&c, "b.example").unwrap(), Lookup::None);
        // A port is part of the registry's name.
        assert_eq!(lookup_in(&c, "a.example:5000").unwrap(), Lookup::None);
    }

    #[test]
    fn a_cred_helper_wins_over_auths_and_the_store_comes_last() {
        let c = config(&format!(
            r#"{{"auths":{{"r.example":{{"auth":"{}"}},"s.example":{{}}}},
                "credHelpers":{{"r.example":"gcr"}},"credsStore":"desktop"}}"#,
            b64("u:p")
        ));
        assert_eq!(
            lookup_in(&c, "r.example").unwrap(),
            Lookup::Helper {
                helper: "gcr".into(),
                server: "r.example".into(),
                source: "cfg".into()
            }
        );
        // An `auths` placeholder without credentials: the store has them.
        assert_eq!(
            lookup_in(&c, "s.example").unwrap(),
            Lookup::Helper {
                helper: "desktop".into(),
                server: "s.example".into(),
                source: "cfg".into()
            }
        );
        match lookup_in(&c, "docker.io").unwrap() {
            Lookup::Helper { server, .. } => assert_eq!(server, "https://index.docker.io/v1/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_auth_config_comes_before_config_json() {
        let env = AuthConfig::parse(
            &format!(
                r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
                b64("env:1")
            ),
            "DOCKER_AUTH_CONFIG",
        )
        .unwrap();
        let file = AuthConfig::parse(
            &format!(
                r#"{{"auths":{{"r.example":{{"auth":"{}"}},"o.example":{{"auth":"{}"}}}}}}"#,
                b64("file:1"),
                b64("file:2")
            ),
            "/h/.docker/config.json",
        )
        .unwrap();
        let configs = [env, file];
        let c = found(lookup(&configs, "r.example").unwrap());
        assert_eq!(
            (c.username.as_deref(), c.source.as_str()),
            (Some("env"), "DOCKER_AUTH_CONFIG")
        );
        let c = found(lookup(&configs, "o.example").unwrap());
        assert_eq!(c.username.as_deref(), Some("file"));
        assert_eq!(lookup(&configs, "x.example").unwrap(), Lookup::None);
    }

    #[test]
    fn broken_configs_are_errors_naming_their_source() {
        let e = AuthConfig::parse("{nope", "DOCKER_AUTH_CONFIG").unwrap_err();
        assert!(e.contains("DOCKER_AUTH_CONFIG"), "{e}");
        let c = config(r#"{"auths":{"r.example":{"auth":"!!!"}}}"#);
        let e = lookup_in(&c, "r.example").unwrap_err();
        assert!(e.contains("r.example") && e.contains("base64"), "{e}");
        let c = config(&format!(
            r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
            b64("nocolon")
        ));
        assert!(lookup_in(&c, "r.example")
            .unwrap_err()
            .contains("user:password"));
    }

    #[test]
    fn helper_answers_become_credentials_and_token_answers_identity_tokens() {
        let c = helper_answer(
            r#"{"ServerURL":"r.example","Username":"u","Secret":"s"}"#,
            "r.example",
            "helper",
        )
        .unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("u"), Some("s"))
        );
        let c = helper_answer(r#"{"Username":"<token>","Secret":"t"}"#, "r.example", "h").unwrap();
        assert_eq!((c.username, c.identity_token.as_deref()), (None, Some("t")));
        assert!(helper_answer("oops", "r", "h")
            .unwrap_err()
            .contains("h answered"));
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let c = config(&format!(
            r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#,
            b64("u:hunter2")
        ));
        let c = found(lookup_in(&c, "r").unwrap());
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    struct Env(
        HashMap<&'static str, String>,
        HashMap<std::path::PathBuf, String>,
    );
    impl Snapshot for Env {
        fn var(&self, n: &str) -> Option<String> {
            self.0.get(n).cloned()
        }
        fn home(&self) -> Option<std::path::PathBuf> {
            Some("/h".into())
        }
        fn read(&self, p: &std::path::Path) -> std::io::Result<String> {
            self.1
                .get(p)
                .cloned()
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }
        fn exists(&self, p: &std::path::Path) -> bool {
            self.1.contains_key(p)
        }
    }

    #[test]
    fn configs_come_from_the_variable_then_docker_config_or_home() {
        let file = r#"{"auths":{}}"#.to_string();
        let s = Env(
            [("DOCKER_AUTH_CONFIG", "{}".to_string())].into(),
            [("/h/.docker/config.json".into(), file.clone())].into(),
        );
        let c = configs(&s).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].source, "DOCKER_AUTH_CONFIG");
        assert_eq!(c[1].source, "/h/.docker/config.json");
        let s = Env(
            [("DOCKER_CONFIG", "/cfg".to_string())].into(),
            [("/cfg/config.json".into(), file)].into(),
        );
        assert_eq!(configs(&s).unwrap()[0].source, "/cfg/config.json");
        let s = Env(HashMap::new(), HashMap::new());
        assert!(configs(&s).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_missing_helper_is_an_error_naming_it() {
        let s = Env(
            [(
                "DOCKER_AUTH_CONFIG",
                r#"{"credHelpers":{"r.example":"e2ekit-no-such-helper"}}"#.to_string(),
            )]
            .into(),
            HashMap::new(),
        );
        let e = credentials_for("r.example/x:1", &s).await.unwrap_err();
        assert!(e.contains("docker-credential-e2ekit-no-such-helper"), "{e}");
        assert!(e.contains("DOCKER_AUTH_CONFIG"), "{e}");
    }
}
