//! The healthcheck timer. Without a daemon, the monitor is the one process that
//! lives as long as a detached container, so it starts the engine's check command
//! (`ccrun healthcheck-run ID`, which runs the check in the container and records
//! the result) every interval, one at a time, from its poll loop: no threads, one
//! child and its pidfd at most.

use std::ffi::OsString;
use std::os::unix::io::RawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sys;

/// What the command line asked for: every `interval_ms`, run `command`.
#[derive(Debug, PartialEq, Eq)]
pub struct Timer {
    /// Milliseconds between the end of one check and the start of the next.
    pub interval_ms: u64,
    /// The check command and its arguments.
    pub command: Vec<OsString>,
}

impl Timer {
    /// The timer of `--health-interval` and `--health-cmd`; both or neither.
    pub fn from_args(
        interval_ms: Option<u64>,
        command: Vec<OsString>,
    ) -> Result<Option<Timer>, String> {
        match (interval_ms, command.is_empty()) {
            (None, true) => Ok(None),
            (Some(0), false) => Err("--health-interval must be above 0".into()),
            (Some(interval_ms), false) => Ok(Some(Timer {
                interval_ms,
                command,
            })),
            (Some(_), true) => Err("--health-interval needs --health-cmd".into()),
            (None, false) => Err("--health-cmd needs --health-interval".into()),
        }
    }
}

/// A check in progress.
struct Running {
    child: Child,
    /// Readable once the child exits; -1 without pidfds (then polled).
    pidfd: RawFd,
}

/// The timer at work.
pub struct Checks<'a> {
    timer: Option<&'a Timer>,
    /// When the next check is due (while none runs).
    next: Instant,
    running: Option<Running>,
}

/// How often to look at a check without a pidfd.
const FALLBACK_POLL_MS: u64 = 100;

impl<'a> Checks<'a> {
    /// Starts the timer: the first check is due one interval from now, as Docker
    /// runs them.
    pub fn new(timer: Option<&'a Timer>) -> Checks<'a> {
        let interval = timer.map_or(0, |t| t.interval_ms);
        Checks {
            timer,
            next: Instant::now() + Duration::from_millis(interval),
            running: None,
        }
    }

    /// The fd to poll for the running check's end, else -1.
    pub fn pollfd(&self) -> RawFd {
        self.running.as_ref().map_or(-1, |r| r.pidfd)
    }

    /// How long poll may sleep before the timer needs attention, combined with
    /// the caller's own `timeout_ms` (-1: none).
    pub fn timeout_ms(&self, timeout_ms: libc::c_int) -> libc::c_int {
        let mine = match (&self.timer, &self.running) {
            (None, _) => return timeout_ms,
            (Some(_), Some(r)) if r.pidfd >= 0 => return timeout_ms,
            (Some(_), Some(_)) => FALLBACK_POLL_MS,
            (Some(_), None) => {
                let left = self.next.saturating_duration_since(Instant::now());
                // Rounded up, so that the check is due when poll returns.
                left.as_micros().div_ceil(1000) as u64
            }
        };
        let mine = libc::c_int::try_from(mine).unwrap_or(libc::c_int::MAX);
        if timeout_ms < 0 {
            mine
        } else {
            mine.min(timeout_ms)
        }
    }

    /// After each poll: reaps a check that ended and starts one that is due.
    pub fn tick(&mut self) {
        let Some(timer) = self.timer else {
            return;
        };
        if let Some(running) = &mut self.running {
            match running.child.try_wait() {
                Ok(None) => return,
                Ok(Some(_)) | Err(_) => {
                    sys::close(running.pidfd);
                    self.running = None;
                    self.next = Instant::now() + Duration::from_millis(timer.interval_ms);
                }
            }
        }
        if Instant::now() < self.next {
            return;
        }
        let Some((program, args)) = timer.command.split_first() else {
            return;
        };
        // The monitor's stdio is /dev/null already; the check records its own result.
        let spawned = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => {
                let pidfd = sys::pidfd_open(child.id() as libc::pid_t).unwrap_or(-1);
                self.running = Some(Running { child, pidfd });
            }
            Err(e) => {
                eprintln!("ccrun-monitor: cannot run the healthcheck {program:?}: {e}");
                self.next = Instant::now() + Duration::from_millis(timer.interval_ms);
            }
        }
    }

    /// Ends a check still running (the container is gone, so is what it checks).
    pub fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
            sys::close(running.pidfd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_on_the_interval_one_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marks = dir.path().join("marks");
        let script = format!("echo x >> {}", marks.display());
        let timer = Timer {
            interval_ms: 20,
            command: ["sh", "-c", &script].map(OsString::from).to_vec(),
        };
        let mut checks = Checks::new(Some(&timer));
        assert!(checks.timeout_ms(-1) <= 20);
        let deadline = Instant::now() + Duration::from_secs(10);
        let count = || std::fs::read_to_string(&marks).map_or(0, |s| s.lines().count());
        while count() < 3 {
            assert!(Instant::now() < deadline, "checks did not run");
            let mut fds = [libc::pollfd {
                fd: checks.pollfd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let _ = sys::poll(&mut fds, checks.timeout_ms(-1));
            checks.tick();
        }
        checks.stop();
        assert_eq!(checks.pollfd(), -1);
        assert_eq!(Checks::new(None).timeout_ms(-1), -1);
        assert_eq!(Checks::new(None).timeout_ms(100), 100);
    }
}
