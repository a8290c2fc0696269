//! The persistent event log behind `ccrun events`: with no daemon to broadcast them,
//! every command that changes state appends its events, as JSON lines in Docker's
//! event format, to `<root>/events/events.log`, under a lock and bounded in size.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::containers::Record;

/// The log is rotated past this size; one rotated file (`events.log.1`) is kept, so
/// the log never takes more than twice this.
pub const MAX_LOG_SIZE: u64 = 1 << 20;

const LOG_FILE: &str = "events.log";
const ROTATED_FILE: &str = "events.log.1";

/// Who an event is about (Docker's `Actor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The object's id (a container or network id, an image name or id, a volume name).
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name, image, labels, exit code, …
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, serialised as Docker's `events --format json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `container`, `image`, `volume` or `network`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// What happened: `create`, `start`, `die`, `pull`, `destroy`, …
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// An event that happens now.
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Event {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Event {
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".to_string(),
            time: nanos / 1_000_000_000,
            time_nano: nanos,
        }
    }

    /// The JSON Docker prints, with its legacy `status`, `id` and `from` fields for
    /// containers and images.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            if self.kind == "container" || self.kind == "image" {
                map.insert("status".into(), self.action.clone().into());
                map.insert("id".into(), self.actor.id.clone().into());
                if let Some(image) = self.actor.attributes.get("image") {
                    map.insert("from".into(), image.clone().into());
                }
            }
        }
        value
    }

    /// Docker's default line: `TIME TYPE ACTION ID (k=v, …)`.
    pub fn line(&self) -> String {
        let secs = u64::try_from(self.time_nano / 1_000_000_000).unwrap_or(0);
        let nanos = u32::try_from(self.time_nano % 1_000_000_000).unwrap_or(0);
        let time = UNIX_EPOCH + std::time::Duration::new(secs, nanos);
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{} {} {} {} ({})",
            humantime::format_rfc3339_nanos(time),
            self.kind,
            self.action,
            self.actor.id,
            attrs.join(", ")
        )
    }
}

/// The event log of a storage root.
#[derive(Debug, Clone)]
pub struct EventLog {
    dir: PathBuf,
}

impl EventLog {
    /// The log under storage root `root` (its directory is made on first append).
    pub fn new(root: &Path) -> EventLog {
        EventLog {
            dir: root.join("events"),
        }
    }

    /// The current log file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Appends `event` as one line under the log's lock, rotating first when the
    /// line would take the log past [`MAX_LOG_SIZE`].
    pub fn append(&self, event: &Event) -> Result<()> {
        self.append_all(std::slice::from_ref(event))
    }

    /// Appends `events` as lines, in order, in one write under the log's lock (one
    /// lock, one open, one write for what happens together, as `die` and `destroy` of
    /// a `--rm` container), rotating first when they would take the log past
    /// [`MAX_LOG_SIZE`].
    pub fn append_all(&self, events: &[Event]) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let _lock = crate::storage::lock_exclusive(&self.dir.join("lock"))?;
        let mut line = Vec::new();
        for event in events {
            serde_json::to_writer(&mut line, event).context("serialising the event")?;
            line.push(b'\n');
        }
        let path = self.path();
        let size = fs::metadata(&path).map_or(0, |m| m.len());
        if size > 0 && size + line.len() as u64 > MAX_LOG_SIZE {
            fs::rename(&path, self.dir.join(ROTATED_FILE))
                .with_context(|| format!("rotating {}", path.display()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // One write of whole lines: readers never see half an event (they skip an
        // unfinished last line until it is complete).
        file.write_all(&line)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Every event kept (the rotated file first), oldest first.
    pub fn read_all(&self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        for name in [ROTATED_FILE, LOG_FILE] {
            let path = self.dir.join(name);
            match fs::read(&path) {
                Ok(bytes) => events.extend(parse_lines(&bytes).0),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            }
        }
        Ok(events)
    }

    /// Starts following the log: at its current end, or with `from_start` at its
    /// beginning (the rotated file included), so that the first
    /// [`Follower::poll`] returns every event kept.
    pub fn follow(&self, from_start: bool) -> Result<Follower> {
        let mut follower = Follower {
            path: self.path(),
            file: None,
            pending: Vec::new(),
            backlog: Vec::new(),
        };
        if from_start {
            let rotated = self.dir.join(ROTATED_FILE);
            match fs::read(&rotated) {
                Ok(bytes) => follower.backlog = parse_lines(&bytes).0,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("reading {}", rotated.display())),
            }
        }
        follower.reopen()?;
        if let (false, Some((file, _))) = (from_start, &mut follower.file) {
            file.seek(SeekFrom::End(0))
                .context("seeking the event log")?;
        }
        Ok(follower)
    }
}

/// Reads the events appended to the log after it was opened, across rotations.
pub struct Follower {
    path: PathBuf,
    /// The open log and its inode.
    file: Option<(File, u64)>,
    /// An unfinished last line.
    pending: Vec<u8>,
    /// Events of the rotated file, for the first poll.
    backlog: Vec<Event>,
}

impl Follower {
    fn reopen(&mut self) -> Result<()> {
        self.file = match File::open(&self.path) {
            Ok(file) => {
                let ino = file.metadata().context("stat the event log")?.ino();
                Some((file, ino))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
        };
        self.pending.clear();
        Ok(())
    }

    /// The events appended since the last call.
    pub fn poll(&mut self) -> Result<Vec<Event>> {
        let mut events = std::mem::take(&mut self.backlog);
        events.extend(self.read_open()?);
        let current = fs::metadata(&self.path).ok().map(|m| m.ino());
        let open = self.file.as_ref().map(|(_, ino)| *ino);
        if current != open {
            // Rotated (or created): the rest of the old file was read above.
            self.reopen()?;
            events.extend(self.read_open()?);
        }
        Ok(events)
    }

    fn read_open(&mut self) -> Result<Vec<Event>> {
        let Some((file, _)) = &mut self.file else {
            return Ok(Vec::new());
        };
        file.read_to_end(&mut self.pending)
            .context("reading the event log")?;
        let (events, used) = parse_lines(&self.pending);
        self.pending.drain(..used);
        Ok(events)
    }
}

/// Parses the complete lines of `bytes`; returns the events and how many bytes they
/// took. Lines that are not events (a crash can cut one) are skipped.
fn parse_lines(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut used = 0;
    while let Some(end) = bytes[used..].iter().position(|&b| b == b'\n') {
        if let Ok(event) = serde_json::from_slice(&bytes[used..used + end]) {
            events.push(event);
        }
        used += end + 1;
    }
    (events, used)
}

/// Appends an event to the log of storage root `root`. A log that cannot be written
/// never fails the command that changed the state: it is reported and skipped.
pub fn emit(root: &Path, event: Event) {
    if let Err(e) = EventLog::new(root).append(&event) {
        tracing::warn!("event log: {e:#}");
    }
}

/// The attributes Docker gives a container event: image, name and labels.
fn container_attributes(record: &Record) -> BTreeMap<String, String> {
    let mut attributes = record.labels.clone();
    attributes.insert("image".into(), record.image.clone());
    attributes.insert("name".into(), record.name.clone());
    attributes
}

/// Appends container event `action` for `record`, with `extra` attributes
/// (`exitCode`, `signal`, `oldName`, …).
pub fn container(root: &Path, action: &str, record: &Record, extra: &[(&str, String)]) {
    let mut attributes = container_attributes(record);
    attributes.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    emit(
        root,
        Event::new("container", action, &record.id, attributes),
    );
}

/// Appends container events `actions` (each with its extra attributes) for `record`
/// in one write, as [`container`] does one.
pub fn containers(root: &Path, record: &Record, actions: &[(&str, &[(&str, String)])]) {
    let events: Vec<Event> = actions
        .iter()
        .map(|(action, extra)| {
            let mut attributes = container_attributes(record);
            attributes.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
            Event::new("container", action, &record.id, attributes)
        })
        .collect();
    if let Err(e) = EventLog::new(root).append_all(&events) {
        tracing::warn!("event log: {e:#}");
    }
}

/// Appends an event about an image, volume or network, named `name`.
pub fn object(root: &Path, kind: &str, action: &str, id: &str, name: &str) {
    let attributes = BTreeMap::from([("name".to_string(), name.to_string())]);
    emit(root, Event::new(kind, action, id, attributes));
}

/// `events --filter` (`type=`, `event=`, `container=`, `image=`, `volume=`,
/// `network=`, `label=KEY[=VALUE]`): values of one key are ORed, keys ANDed.
#[derive(Debug, Default)]
pub struct Filter {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filter {
    /// Parses `KEY=VALUE` items; an unknown key is an error.
    pub fn parse(items: &[String]) -> Result<Filter> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                anyhow::bail!("invalid filter {item:?}: use KEY=VALUE");
            };
            match key {
                "type" | "event" | "container" | "image" | "volume" | "network" | "label" => {}
                _ => anyhow::bail!("invalid filter {key:?}: use type, event, container, image, volume, network or label"),
            }
            by_key
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        Ok(Filter { by_key })
    }

    /// Whether `event` passes every key.
    pub fn matches(&self, event: &Event) -> bool {
        self.by_key.iter().all(|(key, values)| {
            values.iter().any(|value| match key.as_str() {
                "type" => event.kind == *value,
                "event" => event.action == *value,
                "label" => match value.split_once('=') {
                    Some((k, v)) => event.actor.attributes.get(k).is_some_and(|a| a == v),
                    None => event.actor.attributes.contains_key(value),
                },
                "image" if event.kind == "container" => {
                    event.actor.attributes.get("image") == Some(value)
                }
                kind => event.kind == kind && names(event, value),
            })
        })
    }
}

/// Whether `value` names the event's object: its name, or a prefix of its id.
fn names(event: &Event, value: &str) -> bool {
    event
        .actor
        .attributes
        .get("name")
        .is_some_and(|n| n == value)
        || (!value.is_empty() && event.actor.id.starts_with(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str) -> Event {
        Event::new("volume", action, "v", BTreeMap::new())
    }

    #[test]
    fn appends_reads_and_rotates() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = EventLog::new(tmp.path());
        assert!(log.read_all().expect("read").is_empty());
        let mut follower = log.follow(false).expect("follow");
        log.append(&event("create")).expect("append");
        let seen = follower.poll().expect("poll");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].action, "create");
        // Past the size limit the log rotates; the follower reads on in the new file
        // and everything still fits in the two files.
        // About 120 bytes each: past the limit once, within the two files.
        let lines = (MAX_LOG_SIZE / 100) as usize;
        for _ in 0..lines {
            log.append(&event("destroy")).expect("append");
        }
        assert!(tmp.path().join("events").join(ROTATED_FILE).exists());
        let size = fs::metadata(log.path()).expect("stat").len();
        assert!(size <= MAX_LOG_SIZE, "{size}");
        assert_eq!(follower.poll().expect("poll").len(), lines);
        let all = log.read_all().expect("read");
        assert_eq!(all.len(), lines + 1);
    }

    #[test]
    fn unfinished_lines_wait_for_their_end() {
        let (events, used) = parse_lines(b"{\"broken\n");
        assert!(events.is_empty());
        assert_eq!(used, 9);
        let line = serde_json::to_vec(&event("create")).expect("json");
        let (events, used) = parse_lines(&line);
        assert!(events.is_empty());
        assert_eq!(used, 0);
    }

    #[test]
    fn filters_or_values_and_keys() {
        let mut e = Event::new(
            "container",
            "start",
            "abcdef",
            BTreeMap::from([
                ("name".to_string(), "web".to_string()),
                ("image".to_string(), "busybox".to_string()),
                ("tier".to_string(), "front".to_string()),
            ]),
        );
        let f = |items: &[&str]| {
            Filter::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("filter")
        };
        assert!(f(&[]).matches(&e));
        assert!(f(&["container=web", "event=stop", "event=start"]).matches(&e));
        assert!(f(&["container=abc", "image=busybox", "label=tier=front"]).matches(&e));
        assert!(!f(&["container=web", "event=stop"]).matches(&e));
        assert!(!f(&["volume=web"]).matches(&e));
        assert!(!f(&["label=tier=back"]).matches(&e));
        e.kind = "network".into();
        assert!(f(&["network=web", "type=network"]).matches(&e));
        assert!(Filter::parse(&["bogus=1".to_string()]).is_err());
    }

    #[test]
    fn docker_line_and_json() {
        let mut e = event("create");
        e.actor.attributes.insert("name".into(), "v".into());
        e.time_nano = 1_700_000_000_123_456_789;
        assert_eq!(
            e.line(),
            "2023-11-14T22:13:20.123456789Z volume create v (name=v)"
        );
        let json = e.to_json();
        assert_eq!(json["Type"], "volume");
        assert!(json.get("status").is_none());
    }
}
