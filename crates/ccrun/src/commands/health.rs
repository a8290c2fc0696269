//! Running healthchecks: the hidden `ccrun healthcheck-run ID`, which runs the
//! container's check once in the container (like `exec`, with its user, environment
//! and working directory, output captured, killed at the timeout) and records the
//! result in the container's record (see [`crate::containers::health`]).
//!
//! Who starts it: a detached container's monitor, on its interval timer (see
//! [`monitor_args`]); for a foreground container, a `healthcheck-run --repeat ID`
//! child of the foreground ccrun ([`ForegroundChecks`]), which runs the checks on the
//! interval until the container's process ends. Either way no daemon is involved and
//! each check runs in a fresh single-threaded process, as `exec` needs.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use ccrun_runtime::exec::ExecOptions;
use ccrun_runtime::Container;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::cli::GlobalOpts;
use crate::containers::health::{HealthConfig, HealthResult, HealthState, MAX_OUTPUT};
use crate::containers::launch::load_config;
use crate::containers::process::ProcessHandle;
use crate::containers::{ContainerStore, Record, Status};

/// Flags of the hidden `healthcheck-run`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckRunArgs {
    /// Run the checks on the container's interval until its process ends (the
    /// foreground ccrun's helper)
    #[arg(long)]
    pub repeat: bool,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Runs `healthcheck-run`: 0 when the check passed, 1 when it failed.
pub fn run(global: &GlobalOpts, args: HealthcheckRunArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    if !args.repeat {
        let (passed, _) = check_and_record(global, &store, &record)?;
        return Ok(if passed { 0 } else { 1 });
    }
    let Some(config) = record.options.healthcheck.clone() else {
        return Ok(0);
    };
    let Some(process) = ProcessHandle::open(record.pid, record.pid_start_time)? else {
        return Ok(0);
    };
    // The first check one interval after the start, then one interval after the end
    // of each, as Docker times them.
    while !process.wait_exit(config.interval())? {
        let (_, still_ours) = check_and_record(global, &store, &record)?;
        if !still_ours {
            break;
        }
    }
    Ok(0)
}

/// Runs the check of running container `seen` and records its result. Returns
/// whether it passed and whether the result still belonged to the run `seen` shows.
fn check_and_record(
    global: &GlobalOpts,
    store: &ContainerStore,
    seen: &Record,
) -> Result<(bool, bool)> {
    if seen.status != Status::Running {
        bail!("container {} is not running", seen.name);
    }
    let Some(config) = seen.options.healthcheck.clone() else {
        bail!("container {} has no healthcheck", seen.name);
    };
    let result = check(global, store, seen, &config)?;
    let passed = result.exit_code == 0;
    let started = seen
        .started_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let since_start = started
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    let mut ours = false;
    store.update(&seen.id, |r| {
        // A result of an earlier run (restarted meanwhile) is dropped.
        if r.status != Status::Running || r.started_at != seen.started_at {
            return;
        }
        ours = true;
        r.health
            .get_or_insert_with(HealthState::starting)
            .record(result, &config, since_start);
    })?;
    Ok((passed, ours))
}

/// Runs the check once in the container.
fn check(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    config: &HealthConfig,
) -> Result<HealthResult> {
    let spec = load_config(&store.dir_of(&record.id))?;
    let mut process = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    process.set_args(Some(config.argv()?));
    process.set_terminal(Some(false));
    let container = Container::load(&global.state_root(), &record.id)
        .with_context(|| format!("container {} has no runtime state", record.name))?;
    let devnull = std::fs::File::open("/dev/null").context("opening /dev/null")?;
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let start = ccrun_runtime::state::now_rfc3339();
    let began = Instant::now();
    let started = container.exec(ExecOptions {
        process,
        stdio: Some([devnull.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()]),
        preserve_fds: 0,
    });
    drop(out_w);
    let finish = |exit_code: i32, output: String| HealthResult {
        start: start.clone(),
        end: ccrun_runtime::state::now_rfc3339(),
        exit_code,
        output,
    };
    let started = match started {
        Ok(p) => p,
        // Docker records a check that could not run as a failure with the reason.
        Err(e) => return Ok(finish(-1, e.to_string())),
    };
    crate::relay::set_nonblocking(out_r.as_fd())?;
    let deadline = began + config.timeout();
    let mut output = Vec::new();
    let mut buf = [0u8; 4096];
    let mut open = true;
    let code = loop {
        if let Some(status) = ccrun_runtime::signals::try_reap(started.pid)? {
            drain(&out_r, &mut output, &mut buf, &mut open)?;
            break Some(status.code());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(started.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = ccrun_runtime::signals::wait_for(started.pid);
            break None;
        }
        // Short naps: the process may end while a background child keeps the pipe.
        let nap = left.min(Duration::from_millis(20));
        if open {
            let mut fds = [PollFd::new(out_r.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(nap.as_millis() as u16)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll"),
            }
            drain(&out_r, &mut output, &mut buf, &mut open)?;
        } else {
            std::thread::sleep(nap);
        }
    };
    let mut text = String::from_utf8_lossy(&output).into_owned();
    if text.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(match code {
        Some(code) => finish(code, text),
        None => finish(
            -1,
            format!(
                "Health check exceeded timeout ({})",
                humantime::format_duration(config.timeout())
            ),
        ),
    })
}

/// Reads what the pipe holds now into `output` (keeping at most [`MAX_OUTPUT`] bytes).
fn drain(
    fd: &std::os::fd::OwnedFd,
    output: &mut Vec<u8>,
    buf: &mut [u8],
    open: &mut bool,
) -> Result<()> {
    while *open {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(0) => *open = false,
            Ok(n) => {
                let room = MAX_OUTPUT.saturating_sub(output.len());
                output.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(Errno::EAGAIN) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("reading the check's output"),
        }
    }
    Ok(())
}

/// The monitor's arguments for running `command` (a `healthcheck-run`) on the check's
/// interval.
pub fn monitor_args(check: &HealthConfig, command: &[OsString]) -> Vec<OsString> {
    let ms = check.interval().as_millis().max(1);
    let mut argv: Vec<OsString> = vec!["--health-interval".into(), ms.to_string().into()];
    for word in command {
        argv.push("--health-cmd".into());
        argv.push(word.clone());
    }
    argv
}

/// The checks of a foreground container: a `healthcheck-run --repeat` child, killed
/// when this is dropped (the container's process has ended by then).
#[derive(Debug)]
pub struct ForegroundChecks {
    child: Option<Child>,
}

impl ForegroundChecks {
    /// Starts the checks of `record`, if it has a healthcheck. A failure to start them
    /// is reported, not fatal: the container runs anyway.
    pub fn start(global: &GlobalOpts, record: &Record) -> ForegroundChecks {
        if record.options.healthcheck.is_none() {
            return ForegroundChecks { child: None };
        }
        let spawned = std::path::absolute(global.store_root()).and_then(|root| {
            let state = std::path::absolute(global.state_root())?;
            use std::os::unix::process::CommandExt;
            Command::new("/proc/self/exe")
                .arg("--root")
                .arg(root)
                .arg("--state")
                .arg(state)
                .arg("--log-level")
                .arg(&global.log_level)
                .args(["healthcheck-run", "--repeat", &record.id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // Its own process group: a Ctrl-C meant for the container is not its.
                .process_group(0)
                .spawn()
        });
        match spawned {
            Ok(child) => ForegroundChecks { child: Some(child) },
            Err(e) => {
                eprintln!(
                    "ccrun: the healthchecks of {} do not run: {e}",
                    record.short_id()
                );
                ForegroundChecks { child: None }
            }
        }
    }
}

impl Drop for ForegroundChecks {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `wait --condition running|healthy|unhealthy`: polls the record until the condition
/// holds, then prints -1 as podman does; fails if the container ends first (it can no
/// longer become healthy) or is removed.
pub fn wait_for(
    store: &ContainerStore,
    record: &Record,
    condition: crate::containers::health::Condition,
) -> Result<()> {
    use crate::containers::health::Condition;
    if condition != Condition::Running && record.options.healthcheck.is_none() {
        bail!("container {} has no healthcheck", record.name);
    }
    loop {
        let Some(now) = store.get(&record.id)? else {
            bail!("container {} was removed while waiting", record.name);
        };
        if condition.holds(&now) {
            println!("-1");
            return Ok(());
        }
        // A created container may still start; one that ran and ended cannot change.
        if condition != Condition::Running && matches!(now.status, Status::Exited | Status::Dead) {
            bail!(
                "container {} stopped before it was {}",
                record.name,
                match condition {
                    Condition::Healthy => "healthy",
                    _ => "unhealthy",
                }
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
