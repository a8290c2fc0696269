//! Commands that move existing containers through their lifecycle: `start`, `stop`,
//! `kill`, `restart`, `wait`, and the monitor's exit command `container-cleanup`.

use std::time::Duration;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

use crate::cli::GlobalOpts;
use crate::containers::attach;
use crate::containers::finish::{self, Exit, Next};
use crate::containers::launch::{self, Attach};
use crate::containers::pause;
use crate::containers::process::{parse_signal, ProcessHandle};
use crate::containers::record::DEFAULT_STOP_TIMEOUT;
use crate::containers::{ContainerStore, Record, Status};
use crate::events;

/// Flags of `start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach stdout/stderr and forward signals; exit with the container's status
    #[arg(short, long)]
    pub attach: bool,
    /// Attach stdin too
    #[arg(short, long)]
    pub interactive: bool,
    /// Keys that detach from a -t container started with -ai [default: ctrl-p,ctrl-q]
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `stop` and `restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL [default: the container's
    /// --stop-timeout, else 10]
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        value_name = "SECONDS",
        allow_negative_numbers = true,
        value_parser = crate::cli::seconds
    )]
    pub time: Option<u32>,
    /// Signal to send instead of the container's stop signal
    #[arg(short, long, value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send (name or number)
    #[arg(short, long, default_value = "KILL", value_name = "SIGNAL")]
    pub signal: String,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `wait`.
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// Wait for this condition (podman's): stopped (default), exited, running,
    /// healthy or unhealthy; other than stopped/exited, -1 is printed
    #[arg(long, value_enum, default_value = "stopped", value_name = "CONDITION")]
    pub condition: crate::containers::health::Condition,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Runs `f` on every named container (see [`super::for_each_named`]).
fn each(
    store: &ContainerStore,
    what: &str,
    names: &[String],
    mut f: impl FnMut(&Record) -> Result<()>,
) -> Result<()> {
    super::for_each_named(what, names, |name| store.find(name).and_then(|r| f(&r)))
}

/// Runs `start`.
pub fn start(global: &GlobalOpts, args: StartArgs) -> Result<i32> {
    if (args.attach || args.interactive) && args.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let store = ContainerStore::open(&global.store_root())?;
    launch::enter_private_mount_namespace()?;
    if args.attach || args.interactive {
        let record = store.find(&args.containers[0])?;
        if record.status == Status::Running {
            bail!("container {} is already running", record.name);
        }
        let record = reset_for_start(&store, &record)?;
        let attach = if args.interactive && record.tty {
            Attach::Attached {
                detach_keys: attach::parse_detach_keys(
                    args.detach_keys
                        .as_deref()
                        .unwrap_or(attach::DEFAULT_DETACH_KEYS),
                )?,
                sig_proxy: true,
            }
        } else {
            Attach::Foreground {
                interactive: args.interactive,
            }
        };
        return launch::start_existing(global, &store, &record, attach);
    }
    each(&store, "start", &args.containers, |record| {
        if record.status != Status::Running {
            let record = reset_for_start(&store, record)?;
            launch::start_existing(global, &store, &record, Attach::Detached)?;
        }
        println!("{}", shown_as(record, &args.containers));
        Ok(())
    })?;
    Ok(0)
}

/// Clears what a previous run and an earlier `stop` left in the record.
fn reset_for_start(store: &ContainerStore, record: &Record) -> Result<Record> {
    store
        .update(&record.id, |r| {
            r.stopped_by_user = false;
            r.error = None;
        })?
        .ok_or_else(|| anyhow::anyhow!("no such container: {}", record.name))
}

/// What Docker echoes for a container: the name or id the user gave.
fn shown_as<'a>(record: &'a Record, given: &'a [String]) -> &'a str {
    given
        .iter()
        .find(|g| *g == &record.name || record.id.starts_with(g.as_str()))
        .map_or(record.name.as_str(), String::as_str)
}

/// Runs `stop`.
pub fn stop(global: &GlobalOpts, args: StopArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let signal = args.signal.as_deref().map(parse_signal).transpose()?;
    each(&store, "stop", &args.containers, |record| {
        stop_one(&store, record, args.time, signal)?;
        println!("{}", shown_as(record, &args.containers));
        Ok(())
    })?;
    Ok(0)
}

/// Sends the stop signal, waits the timeout, then SIGKILL; returns once the monitor
/// has recorded the exit. Stopping a stopped container does nothing.
fn stop_one(
    store: &ContainerStore,
    record: &Record,
    time: Option<u32>,
    signal: Option<Signal>,
) -> Result<()> {
    let Some(record) = store.update(&record.id, |r| r.stopped_by_user = true)? else {
        bail!("no such container: {}", record.name);
    };
    let Some(record) = store.get(&record.id)? else {
        return Ok(());
    };
    if record.status != Status::Running {
        return Ok(());
    }
    let signal = match signal {
        Some(s) => s,
        None => record
            .stop_signal
            .as_deref()
            .map(parse_signal)
            .transpose()?
            .unwrap_or(Signal::SIGTERM),
    };
    let timeout = time.or(record.stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
    if let Some(process) = ProcessHandle::open(record.pid, record.pid_start_time)? {
        process.signal(signal)?;
        events::container(store.root(), "kill", &record, &[("signal", signum(signal))]);
        pause::thaw_to_end(store, &record);
        if !process.wait_exit(Duration::from_secs(timeout.into()))? {
            process.signal(Signal::SIGKILL)?;
            if !process.wait_exit(Duration::from_secs(10))? {
                bail!("container {} did not die after SIGKILL", record.short_id());
            }
        }
    }
    store.wait_settled(&record.id, Some(Duration::from_secs(10)))?;
    events::container(store.root(), "stop", &record, &[]);
    Ok(())
}

/// A signal's number, as Docker's events show it.
fn signum(signal: Signal) -> String {
    (signal as i32).to_string()
}

/// Runs `kill`.
pub fn kill(global: &GlobalOpts, args: KillArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let signal = parse_signal(&args.signal)?;
    each(&store, "kill", &args.containers, |record| {
        if record.status != Status::Running {
            bail!("cannot kill container {}: it is not running", record.name);
        }
        store.update(&record.id, |r| r.stopped_by_user = true)?;
        match ProcessHandle::open(record.pid, record.pid_start_time)? {
            Some(process) => process.signal(signal)?,
            None => bail!("cannot kill container {}: it is not running", record.name),
        }
        events::container(store.root(), "kill", record, &[("signal", signum(signal))]);
        if signal == Signal::SIGKILL {
            pause::thaw_to_end(&store, record);
        }
        println!("{}", shown_as(record, &args.containers));
        Ok(())
    })?;
    Ok(0)
}

/// Runs `restart`: stop (if running), then start detached.
pub fn restart(global: &GlobalOpts, args: StopArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let signal = args.signal.as_deref().map(parse_signal).transpose()?;
    launch::enter_private_mount_namespace()?;
    each(&store, "restart", &args.containers, |record| {
        stop_one(&store, record, args.time, signal)?;
        let record = reset_for_start(&store, record)?;
        launch::start_existing(global, &store, &record, Attach::Detached)?;
        events::container(store.root(), "restart", &record, &[]);
        println!("{}", shown_as(&record, &args.containers));
        Ok(())
    })?;
    Ok(0)
}

/// Runs `wait`: blocks until each container stops and prints its exit code.
pub fn wait(global: &GlobalOpts, args: WaitArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    each(&store, "wait for", &args.containers, |record| {
        if !args.condition.is_exit() {
            return crate::commands::health::wait_for(&store, record, args.condition);
        }
        if let Some(done) = store.wait_settled(&record.id, None)? {
            println!("{}", done.exit_code.unwrap_or(-1));
        } else {
            bail!("container {} was removed while waiting", record.name);
        }
        Ok(())
    })?;
    Ok(0)
}

/// Flags of the hidden `container-cleanup`.
#[derive(Debug, clap::Args)]
pub struct CleanupArgs {
    /// The container's full id
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Runs `container-cleanup`, the monitor's exit command: settles the record from the
/// exit file and applies the restart policy.
pub fn cleanup(global: &GlobalOpts, args: CleanupArgs) -> Result<i32> {
    let root = global.store_root();
    if !root.join("containers").is_dir() {
        // The store was removed under the running container: there is no record to
        // settle (and recreating the store would leave an empty one behind), but its
        // runtime state and cgroup must still go.
        launch::remove_stale_state(global, &args.id);
        if let Ok(layout) = ccrun_cgroups::Layout::detect() {
            if let Ok(cgroup) =
                ccrun_cgroups::Cgroup::open(&layout, &ccrun_runtime::default_cgroup_path(&args.id))
            {
                let _ = cgroup.destroy();
            }
        }
        return Ok(0);
    }
    let store = ContainerStore::open(&root)?;
    let exit = Exit::from_exit_file(&store.dir_of(&args.id));
    if let Next::Restart { delay } = finish::finish(global, &store, &args.id, exit)? {
        launch::restart_after(global, &store, &args.id, delay)?;
    }
    Ok(0)
}
