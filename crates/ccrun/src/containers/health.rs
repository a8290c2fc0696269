//! Healthchecks as Docker defines them: the configuration (the image's `HEALTHCHECK`
//! merged with the `--health-*` flags), the state of the current run (`starting`,
//! `healthy`, `unhealthy`, the failing streak and the last five results), and how a
//! result moves that state. Both live in the container's record, so `ps`, `inspect`,
//! `wait --condition` and `ps --filter health=` read them like everything else, and
//! each check's result is stored under the store lock with the rest of the record.
//!
//! Who runs the checks: the monitor of a detached container (a timer in its poll
//! loop starting `ccrun healthcheck-run ID`), or, for a foreground container, a
//! `ccrun healthcheck-run --repeat ID` child of the foreground ccrun (see
//! [`crate::commands::health`]).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{Record, Status};

/// Docker's defaults for a zero interval, timeout and retries.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// See [`DEFAULT_INTERVAL`].
pub const DEFAULT_RETRIES: u32 = 3;
/// Results kept in `State.Health.Log`, as Docker keeps them.
pub const MAX_LOG_ENTRIES: usize = 5;
/// Bytes of a check's output kept, as Docker keeps them.
pub const MAX_OUTPUT: usize = 4096;

/// `Config.Healthcheck`, in the image config's (and Docker's inspect) form: durations
/// in nanoseconds, zero meaning "the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", prog, args…]`, `["CMD-SHELL", command]`, `["NONE"]` or empty (inherit).
    #[serde(default)]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// Time a check may take.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Time after the start in which failures do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

impl HealthConfig {
    /// Reads `config.Healthcheck` from an image config blob (the OCI model drops it).
    pub fn from_image_config(blob: &[u8]) -> Result<Option<HealthConfig>> {
        let value: serde_json::Value =
            serde_json::from_slice(blob).context("parsing the image config")?;
        match value.get("config").and_then(|c| c.get("Healthcheck")) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(h) => serde_json::from_value(h.clone())
                .map(Some)
                .context("the image config's Healthcheck"),
        }
    }

    /// Docker's merge of the flags' healthcheck over the image's: a test from the flags
    /// replaces the image's, and each zero duration or count takes the image's value.
    pub fn merge(flags: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
        let (mut flags, image) = match (flags, image) {
            (None, image) => return image,
            (Some(flags), None) => return Some(flags),
            (Some(flags), Some(image)) => (flags, image),
        };
        if flags.test.is_empty() {
            flags.test = image.test;
        }
        if flags.interval == 0 {
            flags.interval = image.interval;
        }
        if flags.timeout == 0 {
            flags.timeout = image.timeout;
        }
        if flags.start_period == 0 {
            flags.start_period = image.start_period;
        }
        if flags.retries == 0 {
            flags.retries = image.retries;
        }
        Some(flags)
    }

    /// Whether it runs checks (a test other than `NONE`).
    pub fn enabled(&self) -> bool {
        !matches!(self.test.first().map(String::as_str), None | Some("NONE"))
    }

    /// The command to run in the container.
    pub fn argv(&self) -> Result<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Ok(rest.to_vec()),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => Ok(vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                rest.join(" "),
            ]),
            _ => bail!("invalid healthcheck test {:?}", self.test),
        }
    }

    /// The interval in force.
    pub fn interval(&self) -> Duration {
        nonzero(self.interval).unwrap_or(DEFAULT_INTERVAL)
    }

    /// The timeout in force.
    pub fn timeout(&self) -> Duration {
        nonzero(self.timeout).unwrap_or(DEFAULT_TIMEOUT)
    }

    /// The start period in force.
    pub fn start_period(&self) -> Duration {
        Duration::from_nanos(self.start_period)
    }

    /// The retries in force.
    pub fn retries(&self) -> u32 {
        if self.retries == 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }
}

fn nonzero(ns: u64) -> Option<Duration> {
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// `starting`, `healthy` or `unhealthy`.
pub const STARTING: &str = "starting";
/// See [`STARTING`].
pub const HEALTHY: &str = "healthy";
/// See [`STARTING`].
pub const UNHEALTHY: &str = "unhealthy";

/// `State.Health` of the current (or last) run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthState {
    /// [`STARTING`], [`HEALTHY`] or [`UNHEALTHY`].
    pub status: String,
    /// Consecutive failures counted so far.
    pub failing_streak: u32,
    /// The last [`MAX_LOG_ENTRIES`] results, oldest first.
    pub log: Vec<HealthResult>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// When it started, RFC 3339.
    pub start: String,
    /// When it ended, RFC 3339.
    pub end: String,
    /// 0 healthy, anything else a failure (-1: it could not run or timed out).
    pub exit_code: i32,
    /// Its output (stdout and stderr), at most [`MAX_OUTPUT`] bytes.
    pub output: String,
}

impl HealthState {
    /// The state at every start.
    pub fn starting() -> HealthState {
        HealthState {
            status: STARTING.to_string(),
            failing_streak: 0,
            log: Vec::new(),
        }
    }

    /// Takes `result` into account, as Docker does: a success makes the container
    /// healthy; a failure adds to the streak, except while it was never healthy and is
    /// still within its start period, and `retries` failures in a row make it unhealthy.
    pub fn record(&mut self, result: HealthResult, config: &HealthConfig, since_start: Duration) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HEALTHY.to_string();
        } else {
            let in_start_period = self.status == STARTING && since_start < config.start_period();
            if !in_start_period {
                self.failing_streak += 1;
                if self.failing_streak >= config.retries() {
                    self.status = UNHEALTHY.to_string();
                }
            }
        }
        self.log.push(result);
        if self.log.len() > MAX_LOG_ENTRIES {
            let extra = self.log.len() - MAX_LOG_ENTRIES;
            self.log.drain(..extra);
        }
    }
}

/// The health of a running container with a healthcheck, else `None`.
pub fn current(record: &Record) -> Option<&str> {
    if record.status != Status::Running {
        return None;
    }
    record.options.healthcheck.as_ref()?;
    Some(
        record
            .health
            .as_ref()
            .map_or(STARTING, |h| h.status.as_str()),
    )
}

/// What `ps` adds to `Up …`: ` (healthy)`, ` (unhealthy)` or ` (health: starting)`.
pub fn status_suffix(record: &Record) -> String {
    match current(record) {
        Some(STARTING) => " (health: starting)".to_string(),
        Some(status) => format!(" ({status})"),
        None => String::new(),
    }
}

/// `ps --filter health=…` values.
pub const FILTER_VALUES: &[&str] = &[STARTING, HEALTHY, UNHEALTHY, "none"];

/// Whether `record` passes `ps --filter health=value` (`none`: no healthcheck).
pub fn filter_matches(record: &Record, value: &str) -> bool {
    match record.options.healthcheck {
        None => value == "none",
        Some(_) => current(record) == Some(value),
    }
}

/// Parses a Go duration (`30s`, `1m30s`, `1.5s`, `500ms`, `2h`) as Docker's
/// `--health-*` flags take it; a bare `0` is zero.
pub fn parse_go_duration(flag: &str, text: &str) -> Result<Duration> {
    let bad =
        || anyhow::anyhow!("invalid {flag} {text:?}: use a duration such as 30s, 1m30s or 500ms");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let nanos = ccrun_build::duration_ns(text)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(bad)?;
    Ok(Duration::from_nanos(nanos))
}

/// `wait --condition` values (podman's), beyond `stopped`/`exited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Condition {
    /// Its process ended (the default).
    Stopped,
    /// Same as stopped.
    Exited,
    /// Its process runs.
    Running,
    /// Its healthcheck passed.
    Healthy,
    /// Its healthcheck failed `retries` times in a row.
    Unhealthy,
}

impl Condition {
    /// Whether the wait ends with the container's exit code rather than -1.
    pub fn is_exit(self) -> bool {
        matches!(self, Condition::Stopped | Condition::Exited)
    }

    /// Whether `record` is in the condition now.
    pub fn holds(self, record: &Record) -> bool {
        match self {
            Condition::Stopped | Condition::Exited => record.status != Status::Running,
            Condition::Running => record.status == Status::Running,
            Condition::Healthy => current(record) == Some(HEALTHY),
            Condition::Unhealthy => current(record) == Some(UNHEALTHY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn durations_parse_like_go() {
        let d = |s| parse_go_duration("--health-interval", s);
        assert_eq!(d("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(d("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(d("1.5s").ok(), Some(Duration::from_millis(1500)));
        assert_eq!(d("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(d("0").ok(), Some(Duration::ZERO));
        for bad in ["", "10", "5x", "s", "-1s"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_follows_docker() {
        let config = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            retries: 2,
            start_period: 10_000_000_000,
            ..HealthConfig::default()
        };
        let mut s = HealthState::starting();
        // Failures inside the start period do not count while it never was healthy.
        s.record(result(1), &config, Duration::from_secs(1));
        assert_eq!((s.status.as_str(), s.failing_streak), (STARTING, 0));
        s.record(result(1), &config, Duration::from_secs(11));
        assert_eq!((s.status.as_str(), s.failing_streak), (STARTING, 1));
        s.record(result(0), &config, Duration::from_secs(12));
        assert_eq!((s.status.as_str(), s.failing_streak), (HEALTHY, 0));
        s.record(result(1), &config, Duration::from_secs(13));
        assert_eq!(s.status, HEALTHY);
        for _ in 0..5 {
            s.record(result(2), &config, Duration::from_secs(14));
        }
        assert_eq!((s.status.as_str(), s.failing_streak), (UNHEALTHY, 6));
        assert_eq!(s.log.len(), MAX_LOG_ENTRIES);
    }

    #[test]
    fn flags_merge_over_the_image() {
        let image = HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 5,
            timeout: 6,
            start_period: 7,
            retries: 8,
        };
        let flags = HealthConfig {
            interval: 1,
            ..HealthConfig::default()
        };
        let merged = HealthConfig::merge(Some(flags), Some(image.clone())).expect("merged");
        assert_eq!(merged.test, image.test);
        assert_eq!((merged.interval, merged.retries), (1, 8));
        assert_eq!(merged.argv().expect("argv"), ["/bin/sh", "-c", "true"]);
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        };
        assert!(!none.enabled());
        let blob = br#"{"config":{"Healthcheck":{"Test":["CMD","x"],"Interval":1000000000}}}"#;
        let read = HealthConfig::from_image_config(blob)
            .expect("parse")
            .expect("some");
        assert_eq!(
            (read.test.len(), read.interval()),
            (2, Duration::from_secs(1))
        );
        assert_eq!(HealthConfig::from_image_config(b"{}").expect("parse"), None);
    }
}
