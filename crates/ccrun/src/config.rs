//! The configuration file: `/etc/ccrun/ccrun.toml`, then the user's
//! `$XDG_CONFIG_HOME/ccrun/ccrun.toml` (`~/.config/…`), whose settings win; or only
//! the file `CCRUN_CONFIG` names. Keys follow containers-registries.conf and
//! containers.conf where those have them:
//!
//! ```toml
//! unqualified-search-registries = ["docker.io"]
//!
//! [aliases]
//! busybox = "registry.local:5000/library/busybox"
//!
//! [[registry]]
//! location = "docker.io"
//! [[registry.mirror]]
//! location = "mirror.local:5000"
//! insecure = true
//!
//! [[registry]]
//! location = "registry.local:5000"
//! insecure = true
//!
//! [containers]
//! default_ulimits = ["nofile=1024:2048"]
//! log_driver = "k8s-file"
//! log_size_max = "10m"
//! userns = "auto"
//!
//! [userns]
//! user = "ccrun"
//! size = 67108864
//!
//! [network]
//! default_subnet = "10.88.0.0/16"
//! ```
//!
//! A file that does not parse, or a value that is wrong, is one line naming the
//! file, the line and the key. Each setting is applied where it is used, through
//! the small accessors below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// System-wide configuration file.
pub const SYSTEM_FILE: &str = "/etc/ccrun/ccrun.toml";

/// One configuration file as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Registries tried, in order, for a name without one (`busybox`).
    #[serde(rename = "unqualified-search-registries")]
    pub unqualified_search_registries: Option<Vec<String>>,
    /// Short names and what they stand for.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Per-registry settings.
    #[serde(default)]
    pub registry: Vec<RegistryConfig>,
    /// Container defaults.
    #[serde(default)]
    pub containers: ContainersConfig,
    /// Network defaults.
    #[serde(default)]
    pub network: NetworkConfig,
    /// ccrun's subordinate id ranges.
    #[serde(default)]
    pub userns: UsernsConfig,
}

/// `[userns]`: whose `/etc/subuid` and `/etc/subgid` entries hold the ids of root's
/// containers (`--userns private` and `auto`), and how many ids to give that user when
/// ccrun creates them.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsernsConfig {
    /// The owner of the entries [default: `ccrun`].
    pub user: Option<String>,
    /// Ids allotted on first use, a multiple of 65536 [default: 65536 × 1024].
    pub size: Option<u32>,
}

/// `[[registry]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `host[:port]` of the registry.
    pub location: String,
    /// Reach it over plain HTTP.
    #[serde(default)]
    pub insecure: bool,
    /// Mirrors tried before it, in order.
    #[serde(default)]
    pub mirror: Vec<MirrorConfig>,
}

/// `[[registry.mirror]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// `host[:port]` of the mirror.
    pub location: String,
    /// Reach it over plain HTTP.
    #[serde(default)]
    pub insecure: bool,
}

/// `[containers]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainersConfig {
    /// `--ulimit` values every container gets unless it sets its own.
    pub default_ulimits: Option<Vec<String>>,
    /// The log driver: only `k8s-file` (CRI lines in a file) exists.
    pub log_driver: Option<String>,
    /// Default `--log-opt max-size`.
    pub log_size_max: Option<SizeValue>,
    /// Default `--userns`: `auto`, `private`, `host` or `keep-id`.
    pub userns: Option<String>,
}

/// A size written as a string with a unit (`"10m"`) or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    /// Bytes.
    Bytes(i64),
    /// With a unit.
    Text(String),
}

/// `[network]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// The subnet of the default `bridge` network.
    pub default_subnet: Option<String>,
}

impl Config {
    /// Parses and checks one file's text; errors name `path`, the line and the key.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |span| text[..span.start].matches('\n').count() + 1);
            let key = key_on_line(text, line);
            let message = e.message().lines().next().unwrap_or("invalid").to_string();
            anyhow::anyhow!("{}:{line}: {key}{message}", path.display())
        })?;
        config.check(text, path)?;
        Ok(config)
    }

    /// Checks the values serde cannot: units, subnets, ulimits, names.
    fn check(&self, text: &str, path: &Path) -> Result<()> {
        let fail = |key: &str, message: String| -> anyhow::Error {
            let line = line_of(text, key);
            anyhow::anyhow!("{}:{line}: {key}: {message}", path.display())
        };
        if let Some(limits) = &self.containers.default_ulimits {
            for l in limits {
                crate::security::parse_ulimit(l)
                    .map_err(|e| fail("default_ulimits", crate::exit::one_line(&e)))?;
            }
        }
        if let Some(driver) = self.containers.log_driver.as_deref() {
            if driver != "k8s-file" {
                return Err(fail(
                    "log_driver",
                    format!("{driver:?} is not available: ccrun writes k8s-file logs"),
                ));
            }
        }
        if self.containers.log_size_max.is_some() {
            self.log_size_max()
                .map_err(|e| fail("log_size_max", crate::exit::one_line(&e)))?;
        }
        if let Some(userns) = self.containers.userns.as_deref() {
            if !matches!(userns, "auto" | "private" | "host" | "keep-id") {
                return Err(fail(
                    "userns",
                    format!("{userns:?}: use auto, private, host or keep-id"),
                ));
            }
        }
        if let Some(user) = self.userns.user.as_deref() {
            if user.is_empty() || user.contains([':', '\n', '/']) {
                return Err(fail("user", format!("{user:?} is not a user name")));
            }
        }
        if let Some(size) = self.userns.size {
            if size == 0 || size % 65_536 != 0 {
                return Err(fail("size", format!("{size}: use a multiple of 65536")));
            }
        }
        if let Some(subnet) = self.network.default_subnet.as_deref() {
            subnet
                .parse::<ccrun_net::Subnet>()
                .map_err(|e| fail("default_subnet", format!("{subnet:?}: {e}")))?;
        }
        for r in &self.registry {
            if r.location.is_empty() || r.mirror.iter().any(|m| m.location.is_empty()) {
                return Err(fail("location", "must not be empty".to_string()));
            }
        }
        for (short, full) in &self.aliases {
            ccrun_image::Reference::parse(full)
                .map_err(|e| fail(short, format!("{full:?} is not an image reference: {e}")))?;
        }
        Ok(())
    }

    /// `log_size_max` in bytes.
    fn log_size_max(&self) -> Result<Option<u64>> {
        let bytes = match &self.containers.log_size_max {
            None => return Ok(None),
            Some(SizeValue::Bytes(n)) => *n,
            Some(SizeValue::Text(t)) => crate::units::parse_bytes(t)?,
        };
        if bytes < 4096 {
            bail!("must be at least 4k");
        }
        Ok(Some(bytes as u64))
    }

    /// `other`'s settings over ours, key by key.
    fn overlay(mut self, other: Config) -> Config {
        self.unqualified_search_registries = other
            .unqualified_search_registries
            .or(self.unqualified_search_registries);
        self.aliases.extend(other.aliases);
        for r in other.registry {
            self.registry.retain(|mine| mine.location != r.location);
            self.registry.push(r);
        }
        let (mine, theirs) = (&mut self.containers, other.containers);
        mine.default_ulimits = theirs.default_ulimits.or(mine.default_ulimits.take());
        mine.log_driver = theirs.log_driver.or(mine.log_driver.take());
        mine.log_size_max = theirs.log_size_max.or(mine.log_size_max.take());
        mine.userns = theirs.userns.or(mine.userns.take());
        self.network.default_subnet = other.network.default_subnet.or(self.network.default_subnet);
        self.userns.user = other.userns.user.or(self.userns.user);
        self.userns.size = other.userns.size.or(self.userns.size);
        self
    }
}

/// `key = ` at the start of line `line` (1-based), as `key: ` for messages.
fn key_on_line(text: &str, line: usize) -> String {
    text.lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| format!("{}: ", k.trim().trim_matches('"')))
        .unwrap_or_default()
}

/// The first line that sets `key` (1 if none does).
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| k.trim().trim_matches('"') == key)
        })
        .map_or(1, |i| i + 1)
}

/// The files read, in order (later ones win): `CCRUN_CONFIG` alone, or the system
/// file and then the user's.
pub fn files() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("CCRUN_CONFIG") {
        return vec![PathBuf::from(path)];
    }
    let mut out = vec![PathBuf::from(SYSTEM_FILE)];
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = user {
        out.push(dir.join("ccrun/ccrun.toml"));
    }
    out
}

/// Reads the configuration files. A missing file is no error, except the one
/// `CCRUN_CONFIG` names.
pub fn load() -> Result<Config> {
    let explicit = std::env::var_os("CCRUN_CONFIG").is_some();
    let mut config = Config::default();
    for path in files() {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        config = config.overlay(Config::parse(&text, &path)?);
    }
    Ok(config)
}

static LOADED: OnceLock<Config> = OnceLock::new();

/// Loads the configuration once, at start: a bad file stops ccrun before it does
/// anything.
pub fn init() -> Result<()> {
    let config = load()?;
    // Only main calls this, once; a second call would keep the first result.
    let _ = LOADED.set(config);
    Ok(())
}

/// The configuration in force (empty until [`init`]).
pub fn get() -> &'static Config {
    LOADED.get_or_init(Config::default)
}

/// Registries to reach over plain HTTP: the flag's and the file's (registries and
/// mirrors marked `insecure`).
pub fn insecure_registries(from_flags: &[String]) -> Vec<String> {
    let config = get();
    let mut out = from_flags.to_vec();
    for r in &config.registry {
        if r.insecure {
            out.push(r.location.clone());
        }
        out.extend(
            r.mirror
                .iter()
                .filter(|m| m.insecure)
                .map(|m| m.location.clone()),
        );
    }
    out
}

/// Mirrors of `registry`, in the order to try them.
pub fn mirrors(registry: &str) -> Vec<String> {
    get()
        .registry
        .iter()
        .filter(|r| r.location == registry)
        .flat_map(|r| r.mirror.iter().map(|m| m.location.clone()))
        .collect()
}

/// The image names a user's `name` may stand for, in order: an alias's target, or
/// for a short name (no registry) each unqualified-search registry, or the name itself.
pub fn candidates(name: &str) -> Vec<String> {
    let config = get();
    if let Some(full) = config.aliases.get(name) {
        return vec![full.clone()];
    }
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match &config.unqualified_search_registries {
        Some(registries) if !has_registry && !registries.is_empty() => {
            registries.iter().map(|r| format!("{r}/{name}")).collect()
        }
        _ => vec![name.to_string()],
    }
}

/// The first of `name`'s [`candidates`] that `find` finds (an alias or a short name
/// resolved through the unqualified-search registries).
pub fn find_image<T, E>(
    name: &str,
    find: impl Fn(&str) -> std::result::Result<Option<T>, E>,
) -> std::result::Result<Option<T>, E> {
    for candidate in candidates(name) {
        if let Some(found) = find(&candidate)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `--ulimit` values for a container: the flags, then the defaults for the limits
/// the flags do not set.
pub fn ulimits(from_flags: &[String]) -> Vec<String> {
    let name = |l: &str| l.split('=').next().unwrap_or(l).trim().to_string();
    let mut out = from_flags.to_vec();
    for default in get().containers.default_ulimits.iter().flatten() {
        if !from_flags.iter().any(|f| name(f) == name(default)) {
            out.push(default.clone());
        }
    }
    out
}

/// The default `--log-opt max-size`, if the file sets one.
pub fn log_size_max() -> Option<u64> {
    get().log_size_max().ok().flatten()
}

/// The default `--userns` (`auto`, `private`, `host` or `keep-id`), if the file sets one.
pub fn userns() -> Option<&'static str> {
    get().containers.userns.as_deref()
}

/// The owner of ccrun's subordinate id entries: `CCRUN_USERNS_USER`, else the file's
/// `[userns] user`, else `ccrun`.
pub fn userns_user() -> String {
    std::env::var("CCRUN_USERNS_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| get().userns.user.clone())
        .unwrap_or_else(|| "ccrun".to_string())
}

/// How many ids to allot ccrun's user when its entries are made (`[userns] size`).
pub fn userns_size() -> Option<u32> {
    get().userns.size
}

/// The subnet of the default bridge network, if the file sets one.
pub fn default_subnet() -> Option<ccrun_net::Subnet> {
    get()
        .network
        .default_subnet
        .as_deref()
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/etc/ccrun/ccrun.toml"))
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
unqualified-search-registries = ["docker.io", "quay.io"]
[aliases]
bb = "127.0.0.1:5000/library/busybox"
[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000"
insecure = true
[containers]
default_ulimits = ["nofile=1024:2048"]
log_size_max = "1m"
userns = "host"
[network]
default_subnet = "10.99.0.0/16"
"#,
        )
        .expect("parse");
        assert_eq!(c.registry[0].mirror[0].location, "mirror.local:5000");
        assert_eq!(c.log_size_max().expect("size"), Some(1 << 20));
        assert_eq!(c.aliases["bb"], "127.0.0.1:5000/library/busybox");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[containers]\nuserns = \"private\"\nlog_size = \"1m\"\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("/etc/ccrun/ccrun.toml:3: log_size: "),
            "{text}"
        );
        let e = parse("[containers]\n\nuserns = \"other\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/ccrun/ccrun.toml:3: userns: "), "{e}");
        let e = parse("[network]\ndefault_subnet = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/ccrun/ccrun.toml:2: default_subnet: "),
            "{e}"
        );
        let e = parse("[containers]\ndefault_ulimits = [\"nofile=x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/ccrun/ccrun.toml:2: default_ulimits: "),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn user_file_wins_key_by_key() {
        let system =
            parse("[containers]\nuserns = \"host\"\nlog_size_max = 8192\n").expect("system");
        let user = parse("[containers]\nuserns = \"private\"\n").expect("user");
        let c = system.overlay(user);
        assert_eq!(c.containers.userns.as_deref(), Some("private"));
        assert_eq!(c.log_size_max().expect("size"), Some(8192));
    }
}
