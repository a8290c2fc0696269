//! `ps --filter KEY=VALUE` with Docker's semantics: values of the same key are ORed,
//! different keys are ANDed.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use super::{Record, Status};

/// The keys `ps --filter` understands.
pub const KEYS: &[&str] = &["status", "name", "id", "label", "ancestor", "exited"];

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
                "exited" if value.parse::<i32>().is_err() => {
                    bail!("invalid filter 'exited={value}': an exit code must be an integer")
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

    /// The `ancestor=` values, for the caller to resolve to image ids.
    pub fn ancestors(&self) -> &[String] {
        self.by_key.get("ancestor").map_or(&[], Vec::as_slice)
    }

    /// Whether `record` passes every filter. `ancestor_ids` are the image ids the
    /// `ancestor=` values resolve to in the image store.
    pub fn matches(&self, record: &Record, ancestor_ids: &[String]) -> bool {
        self.by_key.iter().all(|(key, values)| {
            values
                .iter()
                .any(|v| matches_one(key, v, record, ancestor_ids))
        })
    }
}

fn matches_one(key: &str, value: &str, r: &Record, ancestor_ids: &[String]) -> bool {
    match key {
        "status" => r.state_name() == value,
        "name" => name_matches(&r.name, value),
        "id" => r.id.starts_with(value),
        "label" => match value.split_once('=') {
            Some((k, v)) => r.labels.get(k).is_some_and(|have| have == v),
            None => r.labels.contains_key(value),
        },
        "ancestor" => ancestor_matches(r, value, ancestor_ids),
        "exited" => r.status == Status::Exited && value.parse::<i32>().ok() == r.exit_code,
        _ => false,
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
            hostname: String::new(),
            extra_hosts: vec![],
            volume_mounts: vec![],
            binds: vec![],
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
        let f = filters(&["status=exited", "status=running"]);
        assert!(f.matches(&web, &[]) && f.matches(&db, &[]));
        let f = filters(&["status=exited", "label=app=shop"]);
        assert!(f.matches(&web, &[]) && !f.matches(&db, &[]));
        assert!(filters(&["label=tier"]).matches(&web, &[]));
        assert!(!filters(&["label=app=other"]).matches(&web, &[]));
        assert!(filters(&["exited=3"]).matches(&web, &[]));
        assert!(!filters(&["exited=0"]).matches(&web, &[]));
        assert!(filters(&["id=abc1"]).matches(&web, &[]));
        assert!(!filters(&["id=bc1"]).matches(&web, &[]));
    }

    #[test]
    fn names_and_ancestors() {
        let web = record("web-1", Status::Created, None, &[]);
        for yes in ["web", "b-1", "^web", "^/web", "-1$", "^web-1$", "/web"] {
            assert!(
                filters(&[&format!("name={yes}")]).matches(&web, &[]),
                "{yes}"
            );
        }
        for no in ["^eb", "web$", "^web$", "db"] {
            assert!(
                !filters(&[&format!("name={no}")]).matches(&web, &[]),
                "{no}"
            );
        }
        assert!(filters(&["ancestor=alpine"]).matches(&web, &[]));
        assert!(filters(&["ancestor=alpine:latest"]).matches(&web, &[]));
        assert!(filters(&["ancestor=fedc"]).matches(&web, &[]));
        assert!(!filters(&["ancestor=busybox"]).matches(&web, &[]));
        let id = web.image_id.clone().expect("id");
        assert!(filters(&["ancestor=other:tag"]).matches(&web, &[id]));
    }

    #[test]
    fn bad_filters_are_errors() {
        for bad in ["status=sleeping", "exited=x", "color=red", "novalue"] {
            assert!(Filters::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
