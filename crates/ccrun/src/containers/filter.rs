//! `ps --filter KEY=VALUE` with Docker's semantics: values of the same key are ORed,
//! different keys are ANDed.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use super::record::NetworkChoice;
use super::{Record, Status};

/// The keys `ps --filter` understands.
pub const KEYS: &[&str] = &[
    "status", "name", "id", "label", "ancestor", "exited", "publish", "expose", "network",
    "volume", "before", "since", "health",
];

/// Health states Docker accepts in `health=`.
const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

/// What the filters need from outside the record, resolved by the caller: the image
/// ids `ancestor=` names, the creation times of the `before=`/`since=` containers,
/// and the network names `network=` values resolve to (a name or an id).
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Image ids of the `ancestor=` values.
    pub ancestor_ids: Vec<String>,
    /// Creation time (RFC 3339) of the `before=` container.
    pub before: Option<String>,
    /// Creation time (RFC 3339) of the `since=` container.
    pub since: Option<String>,
    /// `network=` values resolved to network names (unresolved values kept as given).
    pub networks: Vec<String>,
}

/// Statuses Docker accepts in `status=` (ccrun never reports the last three).
const STATUSES: &[&str] = &[
    "created",
    "running",
    "exited",
    "dead",
    "paused",
    "restarting",
    "removing",
];

/// Parsed `--filter` flags.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// Parses `KEY=VALUE` items, rejecting unknown keys and malformed values.
    pub fn parse(items: &[String]) -> Result<Filters> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                bail!("bad format of filter {item:?} (expected name=value)");
            };
            let key = key.trim().to_lowercase();
            if !KEYS.contains(&key.as_str()) {
                bail!(
                    "invalid filter '{key}': ccrun ps supports {}",
                    KEYS.join(", ")
                );
            }
            match key.as_str() {
                "status" if !STATUSES.contains(&value) => bail!(
                    "invalid filter 'status={value}': status is one of {}",
                    STATUSES.join(", ")
                ),
                "health" if !super::health::FILTER_VALUES.contains(&value) => bail!(
                    "invalid filter 'health={value}': health is one of {}",
                    super::health::FILTER_VALUES.join(", ")
                ),
                "exited" if value.parse::<i32>().is_err() => {
                    bail!("invalid filter 'exited={value}': an exit code must be an integer")
                }
                "health" if !HEALTH.contains(&value) => bail!(
                    "invalid filter 'health={value}': health is one of {}",
                    HEALTH.join(", ")
                ),
                "publish" | "expose" if PortFilter::parse(value).is_none() => {
                    bail!("invalid filter '{key}={value}': use PORT[/PROTO] or START-END[/PROTO]")
                }
                "before" | "since" if by_key.contains_key(&key) => {
                    bail!("invalid filter '{key}': give it once")
                }
                _ => {}
            }
            by_key.entry(key).or_default().push(value.to_string());
        }
        Ok(Filters { by_key })
    }

    /// Whether a filter on `key` was given.
    pub fn has(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// The values given for `key`, for the caller to resolve (see [`Resolved`]).
    pub fn values(&self, key: &str) -> &[String] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }

    /// The `ancestor=` values, for the caller to resolve to image ids.
    pub fn ancestors(&self) -> &[String] {
        self.values("ancestor")
    }

    /// Whether `record` passes every filter, with what the caller resolved.
    pub fn matches(&self, record: &Record, resolved: &Resolved) -> bool {
        self.by_key.iter().all(|(key, values)| {
            values
                .iter()
                .enumerate()
                .any(|(i, v)| matches_one(key, i, v, record, resolved))
        })
    }
}

fn matches_one(key: &str, index: usize, value: &str, r: &Record, resolved: &Resolved) -> bool {
    match key {
        "status" => r.state_name() == value,
        "name" => name_matches(&r.name, value),
        "id" => r.id.starts_with(value),
        "label" => match value.split_once('=') {
            Some((k, v)) => r.labels.get(k).is_some_and(|have| have == v),
            None => r.labels.contains_key(value),
        },
        "ancestor" => ancestor_matches(r, value, &resolved.ancestor_ids),
        "exited" => r.status == Status::Exited && value.parse::<i32>().ok() == r.exit_code,
        "publish" => PortFilter::parse(value)
            .is_some_and(|f| published(r).any(|(host, _, proto)| f.covers(host, proto))),
        "expose" => PortFilter::parse(value)
            .is_some_and(|f| exposed(r).any(|(port, proto)| f.covers(port, &proto))),
        "network" => {
            let wanted = resolved.networks.get(index).map_or(value, String::as_str);
            network_name(r) == wanted
        }
        "volume" => {
            r.volume_mounts
                .iter()
                .any(|m| m.name == value || m.destination == value)
                || r.binds.iter().any(|b| {
                    let mut parts = b.split(':');
                    parts.next() == Some(value) || parts.next() == Some(value)
                })
        }
        // RFC 3339 times of one format compare as text.
        "before" => resolved
            .before
            .as_deref()
            .is_some_and(|t| r.created.as_str() < t),
        "since" => resolved
            .since
            .as_deref()
            .is_some_and(|t| r.created.as_str() > t),
        "health" => super::health::filter_matches(r, value),
        _ => false,
    }
}

/// The container's network as `ps` names it (`host`, `none`, a network's name,
/// `container:ID`).
pub fn network_name(r: &Record) -> String {
    match &r.network {
        NetworkChoice::Host => "host".to_string(),
        NetworkChoice::None => "none".to_string(),
        NetworkChoice::Bridge { network, .. } => network.clone(),
        NetworkChoice::Container { id } => format!("container:{id}"),
    }
}

/// (host port, container port, protocol) of each published port: the ones in use
/// while it runs, else the ones asked for (a random host port is 0 until then).
pub fn published(r: &Record) -> impl Iterator<Item = (u16, u16, &'static str)> + '_ {
    let requested: &[ccrun_net::PortMapping] = match &r.network {
        NetworkChoice::Bridge { ports, .. } => ports,
        _ => &[],
    };
    let ports = r
        .attachment
        .as_ref()
        .map_or(requested, |a| a.ports.as_slice());
    ports
        .iter()
        .map(|m| (m.host_port, m.container_port, m.protocol.as_str()))
}

/// (port, protocol) of each port the container exposes: its image's and the
/// container side of its published ones.
fn exposed(r: &Record) -> impl Iterator<Item = (u16, String)> + '_ {
    r.exposed_ports
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_string()))
        })
        .chain(published(r).map(|(_, port, proto)| (port, proto.to_string())))
}

/// `PORT[/PROTO]` or `START-END[/PROTO]` of `publish=`/`expose=` (any protocol when
/// none is given).
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortFilter {
    from: u16,
    to: u16,
    proto: Option<String>,
}

impl PortFilter {
    fn parse(value: &str) -> Option<PortFilter> {
        let (ports, proto) = match value.split_once('/') {
            Some((p, proto)) if matches!(proto, "tcp" | "udp" | "sctp") => {
                (p, Some(proto.to_string()))
            }
            Some(_) => return None,
            None => (value, None),
        };
        let (from, to) = match ports.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let p = ports.parse().ok()?;
                (p, p)
            }
        };
        (from <= to).then_some(PortFilter { from, to, proto })
    }

    fn covers(&self, port: u16, proto: &str) -> bool {
        (self.from..=self.to).contains(&port) && self.proto.as_deref().is_none_or(|p| p == proto)
    }
}

/// Docker matches a regular expression against `/name`; ccrun takes a substring,
/// optionally anchored with `^` and `$`.
fn name_matches(name: &str, pattern: &str) -> bool {
    let full = format!("/{name}");
    let (start, p) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    match (start, end) {
        (true, true) => full == p || name == p,
        (true, false) => full.starts_with(p) || name.starts_with(p),
        (false, true) => full.ends_with(p),
        (false, false) => full.contains(p),
    }
}

/// The image as given (`alpine` also matches `alpine:latest`), its id or an id prefix.
fn ancestor_matches(r: &Record, value: &str, ancestor_ids: &[String]) -> bool {
    if r.image == value || normalized(&r.image) == normalized(value) {
        return true;
    }
    let Some(id) = r.image_id.as_deref() else {
        return false;
    };
    if ancestor_ids.iter().any(|a| a == id) {
        return true;
    }
    let hex = value.strip_prefix("sha256:").unwrap_or(value);
    hex.len() >= 4
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && id.strip_prefix("sha256:").unwrap_or(id).starts_with(hex)
}

fn normalized(image: &str) -> Option<String> {
    ccrun_image::Reference::parse(image)
        .ok()
        .map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::RootfsSource;

    fn record(name: &str, status: Status, code: Option<i32>, labels: &[(&str, &str)]) -> Record {
        Record {
            id: format!("{:0<64}", "abc123"),
            name: name.into(),
            image: "alpine".into(),
            image_id: Some(format!("sha256:{:0<64}", "fedcba")),
            command: vec!["sh".into()],
            created: "2024-01-01T00:00:00Z".into(),
            status,
            pid: 0,
            pid_start_time: 0,
            exit_code: code,
            oom_killed: false,
            started_at: None,
            finished_at: None,
            rootfs: RootfsSource::Image { layers: vec![] },
            auto_remove: false,
            stop_signal: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            exposed_ports: vec![],
            volumes: vec![],
            tty: false,
            interactive: false,
            init: false,
            restart_policy: Default::default(),
            restart_count: 0,
            stopped_by_user: false,
            stop_timeout: None,
            monitor_pid: 0,
            monitor_start_time: 0,
            error: None,
            log_max_size: 0,
            network: Default::default(),
            attachment: None,
            paused: false,
            id_range: None,
            hostname: String::new(),
            extra_hosts: vec![],
            volume_mounts: vec![],
            binds: vec![],
            entrypoint: vec![],
            host_flags: Default::default(),
            options: Default::default(),
            health: None,
        }
    }

    fn filters(items: &[&str]) -> Filters {
        Filters::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("parse")
    }

    #[test]
    fn same_key_ors_and_different_keys_and() {
        let web = record(
            "web",
            Status::Exited,
            Some(3),
            &[("app", "shop"), ("tier", "")],
        );
        let db = record("db", Status::Running, None, &[("app", "shop")]);
        let none = Resolved::default();
        let f = filters(&["status=exited", "status=running"]);
        assert!(f.matches(&web, &none) && f.matches(&db, &none));
        let f = filters(&["status=exited", "label=app=shop"]);
        assert!(f.matches(&web, &none) && !f.matches(&db, &none));
        assert!(filters(&["label=tier"]).matches(&web, &none));
        assert!(!filters(&["label=app=other"]).matches(&web, &none));
        assert!(filters(&["exited=3"]).matches(&web, &none));
        assert!(!filters(&["exited=0"]).matches(&web, &none));
        assert!(filters(&["id=abc1"]).matches(&web, &none));
        assert!(!filters(&["id=bc1"]).matches(&web, &none));
    }

    #[test]
    fn names_and_ancestors() {
        let web = record("web-1", Status::Created, None, &[]);
        let none = Resolved::default();
        for yes in ["web", "b-1", "^web", "^/web", "-1$", "^web-1$", "/web"] {
            assert!(
                filters(&[&format!("name={yes}")]).matches(&web, &none),
                "{yes}"
            );
        }
        for no in ["^eb", "web$", "^web$", "db"] {
            assert!(
                !filters(&[&format!("name={no}")]).matches(&web, &none),
                "{no}"
            );
        }
        assert!(filters(&["ancestor=alpine"]).matches(&web, &none));
        assert!(filters(&["ancestor=alpine:latest"]).matches(&web, &none));
        assert!(filters(&["ancestor=fedc"]).matches(&web, &none));
        assert!(!filters(&["ancestor=busybox"]).matches(&web, &none));
        let id = web.image_id.clone().expect("id");
        let resolved = Resolved {
            ancestor_ids: vec![id],
            ..Resolved::default()
        };
        assert!(filters(&["ancestor=other:tag"]).matches(&web, &resolved));
    }

    #[test]
    fn ports_networks_volumes_and_times() {
        let mut web = record("web", Status::Created, None, &[]);
        web.exposed_ports = vec!["80/tcp".into()];
        web.network = NetworkChoice::Bridge {
            network: "appnet".into(),
            ip: None,
            ports: ccrun_net::parse_port_mappings(&["8080:443".to_string()]).expect("ports"),
            aliases: Vec::new(),
        };
        web.volume_mounts = vec![crate::containers::record::VolumeMount {
            name: "cache".into(),
            destination: "/cache".into(),
            anonymous: false,
            readonly: false,
        }];
        web.binds = vec!["/srv:/data:ro".into()];
        let none = Resolved::default();
        for yes in [
            "publish=8080",
            "publish=8000-8100/tcp",
            "expose=80",
            "expose=443/tcp",
            "network=appnet",
            "volume=cache",
            "volume=/cache",
            "volume=/srv",
            "volume=/data",
            "health=none",
        ] {
            assert!(filters(&[yes]).matches(&web, &none), "{yes}");
        }
        for no in [
            "publish=443",
            "publish=8080/udp",
            "expose=8080",
            "network=bridge",
            "volume=other",
            "health=healthy",
        ] {
            assert!(!filters(&[no]).matches(&web, &none), "{no}");
        }
        let by_id = Resolved {
            networks: vec!["appnet".into()],
            ..Resolved::default()
        };
        assert!(filters(&["network=0123abcd"]).matches(&web, &by_id));
        let times = |before: &str, since: &str| Resolved {
            before: Some(before.into()),
            since: Some(since.into()),
            ..Resolved::default()
        };
        let f = filters(&["before=a", "since=b"]);
        assert!(f.matches(&web, &times("2024-01-02T00:00:00Z", "2023-12-31T00:00:00Z")));
        assert!(!f.matches(&web, &times("2024-01-01T00:00:00Z", "2023-12-31T00:00:00Z")));
        assert!(!f.matches(&web, &times("2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z")));
    }

    #[test]
    fn bad_filters_are_errors() {
        for bad in [
            "status=sleeping",
            "exited=x",
            "color=red",
            "novalue",
            "publish=http",
            "expose=80/icmp",
            "health=fine",
        ] {
            assert!(Filters::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
