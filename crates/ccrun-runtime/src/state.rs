//! The persisted state of one container (`<state root>/<id>/state.json`), shaped like
//! the OCI runtime-spec state plus what ccrun needs to find its processes again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Lifecycle status, as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The init is being set up.
    Creating,
    /// The init is set up and waits for `start`.
    Created,
    /// The user's program runs.
    Running,
    /// The container's processes are frozen.
    Paused,
    /// The container's init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What ccrun records about a container it created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// OCI runtime-spec version of this state document.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Status as last recorded (refresh with [`State::refresh`]).
    pub status: Status,
    /// Host pid of the container's init (0 when stopped before start).
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot, to detect pid reuse.
    pub pid_start_time: u64,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The absolute rootfs path.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// The cgroup path used (absolute in each hierarchy).
    pub cgroup_path: String,
    /// Spec annotations.
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The owner (uid of the creator) as runc reports it.
    #[serde(default)]
    pub owner: String,
}

impl State {
    /// Path of the state file inside a container's state directory.
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("state.json")
    }

    /// Reads the state file.
    pub fn load(state_dir: &Path) -> Result<State> {
        let path = Self::file(state_dir);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::State { path, source })
    }

    /// Writes the state file atomically (temp file, rename). Not fsynced: the state
    /// describes live processes, which a crash ends anyway (and the state root is a
    /// tmpfs on most hosts, `/run`); a flush would cost a journal commit on every
    /// create and start where it is on disk.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let path = Self::file(state_dir);
        let tmp = state_dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        f.write_all(&bytes)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("renaming", &path, e))
    }

    /// Re-derives the status from the live system: a dead or reused pid means stopped;
    /// an init still blocked on the exec gate means created.
    pub fn refresh(&mut self, state_dir: &Path) {
        if matches!(self.status, Status::Stopped | Status::Creating) && self.pid == 0 {
            return;
        }
        if self.pid <= 0 || !process_is_alive(self.pid, self.pid_start_time) {
            self.status = Status::Stopped;
            return;
        }
        // Paused stays paused; creating stays creating until `create` records created
        // (hooks may read the state meanwhile).
        if matches!(self.status, Status::Paused | Status::Creating) {
            return;
        }
        self.status = if state_dir.join(crate::container::EXEC_FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        };
    }
}

/// Start time (field 22 of /proc/PID/stat) and state letter of a process.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `state` is field 3; starttime is field 22, i.e. 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// True when `pid` exists, is not a zombie, and started at `start_time`.
pub fn process_is_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some((start, state)) => start == start_time && state != 'Z' && state != 'X',
        None => false,
    }
}

/// The current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_own_process() {
        let (start, state) = proc_stat(std::process::id() as i32).expect("own stat");
        assert!(start > 0);
        assert!(matches!(state, 'R' | 'S'));
    }

    #[test]
    fn dead_pid_is_not_alive() {
        assert!(!process_is_alive(i32::MAX, 0));
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = State {
            oci_version: "1.2.0".into(),
            id: "abc".into(),
            status: Status::Created,
            pid: 42,
            pid_start_time: 7,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            cgroup_path: "/ccrun/abc".into(),
            annotations: HashMap::new(),
            owner: String::new(),
        };
        state.save(dir.path()).expect("save");
        let back = State::load(dir.path()).expect("load");
        assert_eq!(back.id, "abc");
        assert_eq!(back.status, Status::Created);
        assert_eq!(back.pid, 42);
    }
}
