//! Registry credentials: Docker's `~/.docker/config.json` (read by `docker login`
//! users, written by `ccrun login`) and `WWW-Authenticate` challenges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::reference::DOCKER_HUB;

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or personal access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// Docker's key for a registry in `auths`: Docker Hub keeps its historical URL.
pub fn config_key(registry: &str) -> String {
    if registry == DOCKER_HUB || registry == "index.docker.io" || registry == "registry-1.docker.io"
    {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// The credentials file: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The credentials stored for `registry` in the default credentials file, if any.
pub fn stored_credentials(registry: &str) -> Result<Option<Credentials>> {
    match default_config_path() {
        Some(path) => DockerConfig::load(&path)?.get(registry),
        None => Ok(None),
    }
}

/// A Docker `config.json`, keeping fields we do not know untouched on rewrite.
pub struct DockerConfig {
    path: PathBuf,
    doc: serde_json::Map<String, serde_json::Value>,
}

impl DockerConfig {
    /// Loads the file, or an empty config if it does not exist.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        let err = |message: String| Error::Credentials {
            path: path.to_path_buf(),
            message,
        };
        let doc = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| err(format!("not valid JSON: {e}")))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// The credentials stored for `registry` (as named in references), if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(auths) = self.doc.get("auths").and_then(|a| a.as_object()) else {
            return Ok(None);
        };
        let key = config_key(registry);
        // Docker also accepts keys written as URLs (https://host/...).
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| strip_url(k) == registry || strip_url(k) == strip_url(&key))
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else { return Ok(None) };
        if let Some(auth) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            let decoded = B64.decode(auth.trim()).map_err(|e| Error::Credentials {
                path: self.path.clone(),
                message: format!("auths.{key}.auth is not base64: {e}"),
            })?;
            let text = String::from_utf8(decoded).map_err(|_| Error::Credentials {
                path: self.path.clone(),
                message: format!("auths.{key}.auth is not UTF-8"),
            })?;
            let (user, pass) = text.split_once(':').ok_or_else(|| Error::Credentials {
                path: self.path.clone(),
                message: format!("auths.{key}.auth is not user:password"),
            })?;
            return Ok(Some(Credentials {
                username: user.to_string(),
                password: pass.to_string(),
            }));
        }
        let user = entry.get("username").and_then(|u| u.as_str());
        let pass = entry.get("password").and_then(|p| p.as_str());
        Ok(match (user, pass) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => None,
        })
    }

    /// Stores credentials for `registry` (in memory; call [`DockerConfig::save`]).
    pub fn set(&mut self, registry: &str, creds: &Credentials) {
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !auths.is_object() {
            *auths = serde_json::Value::Object(Default::default());
        }
        if let Some(map) = auths.as_object_mut() {
            let mut entry = BTreeMap::new();
            entry.insert(
                "auth",
                B64.encode(format!("{}:{}", creds.username, creds.password)),
            );
            map.insert(config_key(registry), serde_json::json!(entry));
        }
    }

    /// Removes credentials for `registry`; returns whether there were any.
    pub fn remove(&mut self, registry: &str) -> bool {
        let key = config_key(registry);
        self.doc
            .get_mut("auths")
            .and_then(|a| a.as_object_mut())
            .is_some_and(|m| m.remove(&key).is_some())
    }

    /// Writes the file atomically with mode 0600, creating its directory.
    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.doc).map_err(|e| Error::Credentials {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent() {
            fsutil::create_dir_all_mode(dir, 0o700)?;
        }
        fsutil::write_atomic(&self.path, &bytes, 0o600)
    }
}

fn strip_url(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Token auth: fetch a token from `realm`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// `service` parameter to pass on.
        service: Option<String>,
        /// `scope` the registry asked for, if it said.
        scope: Option<String>,
    },
    /// HTTP Basic auth with the stored credentials.
    Basic,
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(params);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(Challenge::Bearer {
        realm: get("realm")?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// Splits `k="v", k2=v2` allowing commas inside quotes (scopes contain them).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_string(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn config_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        std::fs::write(
            &path,
            r#"{"credsStore":"x","auths":{"https://ghcr.io":{"auth":"dTpw"}}}"#,
        )
        .expect("write");
        let mut c = DockerConfig::load(&path).expect("load");
        assert_eq!(
            c.get("ghcr.io").expect("get"),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        c.set(
            "docker.io",
            &Credentials {
                username: "me".into(),
                password: "s:ecret".into(),
            },
        );
        c.save().expect("save");
        let c = DockerConfig::load(&path).expect("reload");
        assert_eq!(
            c.get("docker.io").expect("get").map(|c| c.password),
            Some("s:ecret".into())
        );
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("https://index.docker.io/v1/") && text.contains("credsStore"));
        let mut c = c;
        assert!(c.remove("docker.io"));
        assert!(!c.remove("docker.io"));
    }
}
