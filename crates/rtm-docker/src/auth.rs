//! Registry credentials from a Docker-style `config.json` (the `auths`
//! map), sent with each pull.
//!
//! Guarantees:
//! - an entry is matched by the *exact* registry host of the normalised
//!   image reference (the allow-list's rule): `ghcr.io` never lends its
//!   credentials to `ghcr.io.evil.example` or to `ghcr.io:5000`. Docker
//!   Hub's key forms (`https://index.docker.io/v1/`, `index.docker.io`,
//!   `registry-1.docker.io`, `docker.io`) all name `docker.io`;
//! - [`RegistryAuths::parse`] / [`RegistryAuths::load`] refuse a bad file
//!   with an error naming the file and the problem, never a secret;
//! - [`CredentialsFile`] re-reads the file when its size, modification
//!   time or inode changes, so rotated credentials are used by the next
//!   pull without a restart; a rotation that leaves a bad file keeps the
//!   last good credentials (and says so in the log);
//! - `Debug` of every type here redacts the secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use docker_api::opts::RegistryAuth;

/// Docker Hub's names; all are keyed as `docker.io`, the registry of a
/// normalised reference without a host.
const DOCKER_HUB_ALIASES: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    "registry.hub.docker.com",
];

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `auth` (base64 `user:password`) or `username` + `password`.
    Basic { username: String, password: String },
    /// `identitytoken` (an OAuth refresh token, e.g. from `docker login`
    /// against some registries).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken([redacted])"),
        }
    }
}

impl Credential {
    /// docker-api's form, sent as `X-Registry-Auth`.
    pub fn registry_auth(&self, host: &str) -> RegistryAuth {
        match self {
            Self::Basic { username, password } => RegistryAuth::builder()
                .username(username)
                .password(password)
                .server_address(host)
                .build(),
            Self::IdentityToken(token) => RegistryAuth::token(token),
        }
    }
}

/// A bad credentials file. The message names the file and the problem,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry auth file {}: {problem}", file.display())]
pub struct RegistryAuthError {
    pub file: PathBuf,
    pub problem: String,
}

/// The parsed `auths` map: registry host → credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuths {
    by_host: BTreeMap<String, Credential>,
}

impl fmt::Debug for RegistryAuths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hosts are not secret and help an operator; credentials are.
        f.debug_struct("RegistryAuths")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RegistryAuths {
    /// Reads and parses `file` (what `rtmanager check-config` and start-up
    /// call).
    pub fn load(file: &Path) -> Result<Self, RegistryAuthError> {
        let text = std::fs::read_to_string(file).map_err(|e| RegistryAuthError {
            file: file.to_path_buf(),
            problem: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|problem| RegistryAuthError {
            file: file.to_path_buf(),
            problem,
        })
    }

    /// Parses the JSON text of a credentials file; the error is the
    /// problem alone (the caller names the file).
    pub fn parse(text: &str) -> Result<Self, String> {
        // serde_json's message would quote the text around a syntax error,
        // which may be a secret: report only where it is.
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("not valid JSON (line {}, column {})", e.line(), e.column()))?;
        let auths = match doc.get("auths") {
            Some(serde_json::Value::Object(map)) => map,
            Some(_) => return Err("\"auths\" must be an object".to_owned()),
            None => {
                return Err(
                    "no \"auths\" map (credential helpers and credsStore are not supported)"
                        .to_owned(),
                )
            }
        };
        let mut by_host: BTreeMap<String, Credential> = BTreeMap::new();
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        for (key, entry) in auths {
            let host =
                normalise_key(key).ok_or_else(|| format!("entry {key:?}: not a registry host"))?;
            let credential = parse_entry(entry).map_err(|p| format!("entry {key:?}: {p}"))?;
            if let Some(first) = keys.insert(host.clone(), key.clone()) {
                return Err(format!(
                    "entries {first:?} and {key:?} both name registry {host}"
                ));
            }
            by_host.insert(host, credential);
        }
        Ok(Self { by_host })
    }

    /// The credential for exactly this registry host (as
    /// `ImageRef::registry` gives it), if any.
    pub fn get(&self, host: &str) -> Option<&Credential> {
        self.by_host.get(host)
    }

    /// The registry hosts that have credentials.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.by_host.keys().map(String::as_str)
    }
}

/// `https://ghcr.io/v1/` → `ghcr.io`; Docker Hub's forms → `docker.io`.
/// `None` when nothing host-like is left.
fn normalise_key(key: &str) -> Option<String> {
    let key = key.to_ascii_lowercase();
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(&key);
    let host = rest.split('/').next()?.to_owned();
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !valid {
        return None;
    }
    if DOCKER_HUB_ALIASES.contains(&host.as_str()) {
        return Some("docker.io".to_owned());
    }
    Some(host)
}

fn parse_entry(entry: &serde_json::Value) -> Result<Credential, String> {
    let obj = entry
        .as_object()
        .ok_or_else(|| "must be an object".to_owned())?;
    let field = |name: &str| -> Result<Option<&str>, String> {
        match obj.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("\"{name}\" must be a string")),
        }
    };
    if let Some(token) = field("identitytoken")? {
        return Ok(Credential::IdentityToken(token.to_owned()));
    }
    if let Some(auth) = field("auth")? {
        return decode_auth(auth);
    }
    match (field("username")?, field("password")?) {
        (Some(username), Some(password)) => Ok(Credential::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }),
        (Some(_), None) => Err("\"username\" without \"password\"".to_owned()),
        (None, Some(_)) => Err("\"password\" without \"username\"".to_owned()),
        (None, None) => {
            Err("no credentials (expected auth, username/password or identitytoken)".to_owned())
        }
    }
}

/// `auth` is base64 of `user:password` (standard alphabet; padding
/// optional, as some tools write it without).
fn decode_auth(auth: &str) -> Result<Credential, String> {
    let trimmed = auth.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .map_err(|_| "\"auth\" is not base64".to_owned())?;
    let text = String::from_utf8(bytes).map_err(|_| "\"auth\" is not UTF-8 text".to_owned())?;
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok(Credential::Basic {
                username: user.to_owned(),
                password: password.to_owned(),
            })
        }
        _ => Err("\"auth\" must encode user:password (both non-empty)".to_owned()),
    }
}

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ino: u64,
}

fn stamp(file: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(file)?;
    Ok(Stamp {
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ino: m.ino(),
    })
}

/// The credentials file, re-read when it changes.
#[derive(Debug)]
pub struct CredentialsFile {
    file: PathBuf,
    /// A std Mutex: held only for a stat and, on a change, a read of a
    /// small file; never across an `.await`.
    state: Mutex<(Option<Stamp>, RegistryAuths)>,
}

impl CredentialsFile {
    /// Loads `file` once; a bad file is an error (start-up refuses it).
    pub fn open(file: &Path) -> Result<Self, RegistryAuthError> {
        let st = stamp(file).ok();
        let auths = RegistryAuths::load(file)?;
        Ok(Self {
            file: file.to_path_buf(),
            state: Mutex::new((st, auths)),
        })
    }

    /// The current credential for `host`, re-reading the file first when
    /// it changed on disk.
    pub fn get(&self, host: &str) -> Option<Credential> {
        let mut state = match self.state.lock() {
            Ok(g) => g,
            // A panic while holding the lock left valid data behind (the
            // tuple is replaced whole), so recover it.
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = stamp(&self.file).ok();
        if now != state.0 {
            match RegistryAuths::load(&self.file) {
                Ok(auths) => {
                    tracing::info!(file = %self.file.display(), hosts = ?auths.hosts().collect::<Vec<_>>(),
                        "registry credentials re-read");
                    *state = (now, auths);
                }
                Err(e) => {
                    // Remember the bad version so the warning is logged
                    // once per change, not once per pull.
                    state.0 = now;
                    tracing::warn!(error = %e, "keeping the previous registry credentials");
                }
            }
        }
        state.1.get(host).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_the_three_entry_forms_and_hub_aliases() {
        let text = format!(
            r#"{{"auths": {{
                "ghcr.io": {{"auth": "{}"}},
                "https://index.docker.io/v1/": {{"username": "u2", "password": "p2"}},
                "127.0.0.1:5000": {{"identitytoken": "tok"}}
            }}, "credsStore": "ignored"}}"#,
            b64("u1:p:1")
        );
        let a = RegistryAuths::parse(&text).expect("valid");
        assert_eq!(
            a.get("ghcr.io"),
            Some(&Credential::Basic {
                username: "u1".into(),
                password: "p:1".into()
            })
        );
        assert_eq!(
            a.get("docker.io"),
            Some(&Credential::Basic {
                username: "u2".into(),
                password: "p2".into()
            })
        );
        assert_eq!(
            a.get("127.0.0.1:5000"),
            Some(&Credential::IdentityToken("tok".into()))
        );
    }

    #[test]
    fn matches_the_exact_host_only() {
        let a = RegistryAuths::parse(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("u:p")
        ))
        .expect("valid");
        for other in [
            "ghcr.io:443",
            "ghcr.io.evil.example",
            "evil.ghcr.io",
            "docker.io",
        ] {
            assert!(a.get(other).is_none(), "{other}");
        }
    }

    #[test]
    fn hub_key_forms_all_name_docker_io() {
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "registry-1.docker.io",
            "docker.io",
            "HTTPS://Index.Docker.IO/v1",
        ] {
            assert_eq!(normalise_key(key).as_deref(), Some("docker.io"), "{key}");
        }
        assert_eq!(
            normalise_key("http://127.0.0.1:5000/v2/").as_deref(),
            Some("127.0.0.1:5000")
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong_without_secrets() {
        let cases = [
            ("{", "not valid JSON"),
            ("{\"auths\": 1}", "must be an object"),
            ("{\"credsStore\": \"desktop\"}", "no \"auths\" map"),
            (r#"{"auths": {"ghcr.io": {}}}"#, "no credentials"),
            (r#"{"auths": {"ghcr.io": {"auth": "!!!"}}}"#, "not base64"),
            (
                r#"{"auths": {"ghcr.io": {"username": "u"}}}"#,
                "without \"password\"",
            ),
            (
                r#"{"auths": {"": {"auth": "dTpw"}}}"#,
                "not a registry host",
            ),
            (
                r#"{"auths": {"docker.io": {"auth": "dTpw"}, "index.docker.io": {"auth": "dTpw"}}}"#,
                "both name registry docker.io",
            ),
        ];
        for (text, want) in cases {
            let err = RegistryAuths::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
        // A password without its user must not be echoed.
        let err = RegistryAuths::parse(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}}}}}"#,
            b64("s3cret-only")
        ))
        .expect_err("no colon");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn debug_redacts() {
        let a = RegistryAuths::parse(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}, "q.io": {{"identitytoken": "tok-secret"}}}}}}"#,
            b64("user:pw-secret")
        ))
        .expect("valid");
        let shown = format!("{a:?} {:?} {:?}", a.get("ghcr.io"), a.get("q.io"));
        assert!(
            !shown.contains("pw-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
        assert!(shown.contains("ghcr.io"), "{shown}");
    }

    #[test]
    fn a_changed_file_is_re_read_and_a_bad_rotation_keeps_the_last_good() {
        let dir = std::env::temp_dir().join(format!("rtm-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("config.json");
        let write = |user: &str| {
            std::fs::write(
                &file,
                format!(r#"{{"auths": {{"r.io": {{"username": "{user}", "password": "p"}}}}}}"#),
            )
            .expect("write");
        };
        let user = |c: Option<Credential>| match c {
            Some(Credential::Basic { username, .. }) => username,
            other => panic!("unexpected {other:?}"),
        };
        write("old");
        let creds = CredentialsFile::open(&file).expect("valid");
        assert_eq!(user(creds.get("r.io")), "old");
        // A different length changes the stamp even within one mtime tick.
        write("rotated");
        assert_eq!(user(creds.get("r.io")), "rotated");
        std::fs::write(&file, "{ broken").expect("write");
        assert_eq!(user(creds.get("r.io")), "rotated");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
