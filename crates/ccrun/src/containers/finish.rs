//! What happens when a container's process has ended: its runtime state and cgroup
//! go, the record says how it ended, the snapshot is unmounted (or everything is
//! removed with `--rm`, anonymous volumes included), and the restart policy decides
//! whether it runs again.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use ccrun_image::Snapshot;
use ccrun_runtime::Container;

use super::record::{RestartPolicy, EXIT_FILE};
use super::{ContainerStore, Record, Status};
use crate::cli::GlobalOpts;

/// How a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128 + signal.
    pub code: i32,
    /// When it ended, RFC 3339.
    pub finished: String,
}

impl Exit {
    /// An exit with `code`, now.
    pub fn now(code: i32) -> Exit {
        Exit {
            code,
            finished: ccrun_runtime::state::now_rfc3339(),
        }
    }

    /// The exit the monitor wrote into the container directory, if it did.
    pub fn from_exit_file(dir: &Path) -> Option<Exit> {
        match ccrun_monitor::exitfile::read(&dir.join(EXIT_FILE)) {
            Ok(Some((code, at))) => Some(Exit {
                code,
                finished: rfc3339(at),
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("reading the exit file in {}: {e}", dir.display());
                None
            }
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_nanos(at).to_string()
}

/// What to do after [`finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the container stays stopped (or is gone with `--rm`).
    Done,
    /// Start it again after `delay`, as its restart policy says.
    Restart {
        /// Back-off before the restart.
        delay: Duration,
    },
}

/// Settles a container whose process ended with `exit` (`None`: unknown, nobody saw it
/// end). Safe to call more than once and on a container that is being removed.
pub fn finish(
    global: &GlobalOpts,
    store: &ContainerStore,
    id: &str,
    exit: Option<Exit>,
) -> Result<Next> {
    // Whoever watched it is done: nobody serves its attach socket any more.
    super::attach::remove_socket(&store.dir_of(id));
    let mut oom_killed = false;
    if let Ok(container) = Container::load(&global.state_root(), id) {
        oom_killed = exit.as_ref().is_some_and(|e| e.code == 137) && container.oom_killed();
        if let Err(e) = container.delete(true) {
            tracing::warn!("removing the runtime state of {id}: {e}");
        }
    }
    let current = store.get(id)?;
    if let Some(current) = &current {
        if let Err(e) = crate::networks::disconnect(store, current) {
            eprintln!("ccrun: {e:#}");
        }
    }
    let settle = |r: &mut Record| {
        r.monitor_pid = 0;
        r.monitor_start_time = 0;
        r.attachment = None;
        r.paused = false;
        match &exit {
            Some(exit) => {
                r.status = Status::Exited;
                r.exit_code = Some(exit.code);
                r.finished_at = Some(exit.finished.clone());
                r.oom_killed = oom_killed;
            }
            None => {
                r.status = Status::Dead;
                r.exit_code = None;
                r.finished_at = Some(ccrun_runtime::state::now_rfc3339());
                r.error = Some(UNOBSERVED.to_string());
            }
        }
    };
    let updated = match current {
        // A --rm container's record is removed right below: not written again first.
        Some(mut record) if record.auto_remove => {
            settle(&mut record);
            Some(record)
        }
        _ => store.update(id, settle)?,
    };
    let Some(record) = updated else {
        // Removed meanwhile (`rm -f`); nothing of it is left to settle.
        return Ok(Next::Done);
    };
    let code = record
        .exit_code
        .map_or_else(|| "-1".to_string(), |c| c.to_string());
    let die = [("exitCode", code)];
    if oom_killed {
        eprintln!(
            "ccrun: container {} was OOM killed (memory limit reached)",
            record.short_id()
        );
    }
    if record.auto_remove {
        super::cleanup::discard_with_events(store, &record, &[("die", &die)])?;
        return Ok(Next::Done);
    }
    crate::events::container(store.root(), "die", &record, &die);
    let snapshot = Snapshot::new(&store.dir_of(id));
    if let Some(delay) = restart_delay(&record) {
        snapshot.unmount()?;
        return Ok(Next::Restart { delay });
    }
    snapshot.unmount()?;
    Ok(Next::Done)
}

/// Why a container is dead when its end went unseen.
pub const UNOBSERVED: &str =
    "its process ended while no monitor was watching it; the exit code is unknown";

/// When the restart policy asks for another run: Docker's back-off, 100 ms doubling
/// with each restart, at most a minute.
pub fn restart_delay(record: &Record) -> Option<Duration> {
    if record.stopped_by_user || record.status != Status::Exited {
        return None;
    }
    let code = record.exit_code?;
    let wanted = match record.restart_policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            code != 0 && (max_retries == 0 || record.restart_count < max_retries)
        }
    };
    wanted.then(|| {
        let ms = 100u64.saturating_mul(1 << record.restart_count.min(10));
        Duration::from_millis(ms.min(60_000))
    })
}
