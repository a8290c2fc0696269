//! Image references with Docker's normalisation rules
//! (`alpine` → `docker.io/library/alpine:latest`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The registry name Docker uses for Docker Hub in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host actually serving Docker Hub's Distribution API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Docker's limit on the length of a repository name including the registry.
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference: registry, repository, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference the way `docker pull` does. A reference without tag or
    /// digest gets the tag `latest`.
    pub fn parse(input: &str) -> Result<Reference> {
        let err = |reason| Error::InvalidReference {
            reference: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty reference"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(
                    Digest::parse(d)
                        .map_err(|_| err("invalid digest (only sha256:<64 hex> is supported)"))?,
                ),
            ),
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let (n, t) = rest.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(err("invalid tag"));
            }
        }
        let (registry, remainder) = split_registry(name);
        if let Some(reg) = &registry {
            if !valid_registry(reg) {
                return Err(err("invalid registry host"));
            }
        }
        if remainder.is_empty() {
            return Err(err("empty repository name"));
        }
        if remainder.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository name must be lowercase"));
        }
        if !remainder.split('/').all(valid_component) {
            return Err(err("invalid repository name"));
        }
        let registry = match registry.as_deref() {
            None | Some("index.docker.io") => DOCKER_HUB.to_string(),
            Some(r) => r.to_string(),
        };
        let repository = if registry == DOCKER_HUB && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_string()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(err("repository name must not be more than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry as named in references (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The `host[:port]` to talk the Distribution API to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path within the registry (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the fully qualified name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker shows it: without `docker.io/` and `library/`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_key(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with a digest instead of a tag.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Reference> {
        Reference::parse(s)
    }
}

/// Splits off the registry host if the first component looks like one (Docker's rule:
/// it contains `.` or `:`, is `localhost`, or has uppercase letters).
fn split_registry(name: &str) -> (Option<String>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first.to_string()), rest)
        }
        _ => (None, name),
    }
}

/// `host[:port]`, host being DNS labels or a bracketed IPv6 address.
fn valid_registry(reg: &str) -> bool {
    let (host, port) = if let Some(rest) = reg.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => {
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match tail {
                    "" => return true,
                    t => match t.strip_prefix(':') {
                        Some(p) => return !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match reg.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (reg, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalisation_table() {
        let d = D;
        let table: Vec<(String, String)> = vec![
            ("alpine".into(), "docker.io/library/alpine:latest".into()),
            ("alpine:3.20".into(), "docker.io/library/alpine:3.20".into()),
            (
                "library/alpine".into(),
                "docker.io/library/alpine:latest".into(),
            ),
            ("user/app".into(), "docker.io/user/app:latest".into()),
            (
                "docker.io/alpine".into(),
                "docker.io/library/alpine:latest".into(),
            ),
            (
                "index.docker.io/alpine".into(),
                "docker.io/library/alpine:latest".into(),
            ),
            (
                "docker.io/user/app:v1".into(),
                "docker.io/user/app:v1".into(),
            ),
            (
                "ubuntu:24.04".into(),
                "docker.io/library/ubuntu:24.04".into(),
            ),
            ("localhost/app".into(), "localhost/app:latest".into()),
            (
                "localhost:5000/app".into(),
                "localhost:5000/app:latest".into(),
            ),
            (
                "127.0.0.1:5000/a/b/c:t".into(),
                "127.0.0.1:5000/a/b/c:t".into(),
            ),
            ("ghcr.io/org/app".into(), "ghcr.io/org/app:latest".into()),
            (
                format!("ghcr.io/org/app@{d}"),
                format!("ghcr.io/org/app@{d}"),
            ),
            (
                format!("alpine:3@{d}"),
                format!("docker.io/library/alpine:3@{d}"),
            ),
            (
                "quay.io/a-b/c_d.e__f".into(),
                "quay.io/a-b/c_d.e__f:latest".into(),
            ),
            ("[::1]:5000/app".into(), "[::1]:5000/app:latest".into()),
            ("Registry/app".into(), "Registry/app:latest".into()),
        ];
        for (input, want) in table {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
    }

    #[test]
    fn parts() {
        let r = Reference::parse("alpine").expect("parse");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar_name(), "alpine");
        let r = Reference::parse(&format!("localhost:5000/x@{D}")).expect("parse");
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_key(), D);
        assert_eq!(r.familiar_name(), "localhost:5000/x");
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "Alpine",
            "user/App",
            "alpine:",
            "alpine:-x",
            "alpine@sha256:abc",
            "alpine@md5:0123",
            "a//b",
            "/alpine",
            "alpine/",
            "-alpine",
            "al--pine_",
            "a___b",
            "host:port/app",
            "exa_mple.com/app",
            "alpine:tag:extra",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("x/{}", "a".repeat(260));
        assert!(Reference::parse(&long).is_err());
    }
}
