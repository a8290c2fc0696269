//! Starting a container's process from its directory: the saved `config.json` and the
//! record. The snapshot is mounted in ccrun's private mount namespace, the container
//! is created through the runtime core, and then either ccrun stays attached in the
//! foreground (it is the init's parent and watches it) or a detached monitor takes
//! over (see [`super::monitor`]).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ccrun_image::snapshot::{MountOptions, Snapshot};
use ccrun_runtime::{Container, CreateOptions, ExitStatus, Forwarder};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::finish::{self, Exit, Next};
use super::record::LOG_FILE;
use super::{monitor, ContainerStore, Record, RootfsSource, Status};
use crate::cli::GlobalOpts;
use crate::relay::{self, OutputSink};
use crate::tty;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;

/// File name of the OCI spec inside the container directory.
pub const CONFIG_FILE: &str = "config.json";

/// Writes the spec as the container's `config.json`, so any OCI runtime can replay it;
/// `durable` as in [`super::record::replace_file`] (a `--rm` container's goes with it).
pub fn save_config(dir: &Path, spec: &Spec, durable: bool) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(spec).context("serialising config.json")?;
    super::record::replace_file(&dir.join(CONFIG_FILE), &bytes, durable)
}

/// Reads the container's saved `config.json`.
pub fn load_config(dir: &Path) -> Result<Spec> {
    let path = dir.join(CONFIG_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Moves ccrun into a mount namespace of its own whose mounts do not propagate
/// back to the host (but the host's still reach it). Snapshots mounted afterwards
/// vanish with ccrun, its monitor and its container, whatever happens to them.
pub fn enter_private_mount_namespace() -> Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("creating a mount namespace (ccrun needs root)")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("making the mount namespace private")
}

/// Mounts the container's snapshot unless it already is (in this mount namespace),
/// with the layers idmapped through the user namespace mapping `spec` asks for.
pub fn mount_rootfs(record: &Record, dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let layers = match &record.rootfs {
        RootfsSource::Dir(dir) => return Ok(dir.clone()),
        RootfsSource::Image { layers } => layers,
    };
    let snapshot = Snapshot::new(dir);
    let merged = snapshot.merged();
    if is_mounted(&merged, dir) {
        return Ok(merged);
    }
    let linux = spec.linux().clone().unwrap_or_default();
    let private_userns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    let uids = linux.uid_mappings().clone().unwrap_or_default();
    let gids = linux.gid_mappings().clone().unwrap_or_default();
    // Rootless layers cannot be idmapped (the kernel allows it only to host root); they
    // hold the rootless namespace's ids already.
    let private_userns = private_userns && !crate::rootless::active();
    let userns_fd: Option<OwnedFd> = if private_userns {
        Some(ccrun_runtime::userns::new_userns_fd(&uids, &gids)?)
    } else {
        None
    };
    let root_owner = if private_userns {
        (
            ccrun_runtime::userns::host_id(&uids, 0).unwrap_or(0),
            ccrun_runtime::userns::host_id(&gids, 0).unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    snapshot
        .mount(
            layers,
            MountOptions {
                userns: userns_fd.as_ref().map(|fd| fd.as_fd()),
                root_owner,
                volatile: false,
            },
        )
        .context("mounting the container's root filesystem")
}

/// An overlay on `merged` has a device of its own.
fn is_mounted(merged: &Path, dir: &Path) -> bool {
    match (std::fs::metadata(merged), std::fs::metadata(dir)) {
        (Ok(m), Ok(d)) => m.dev() != d.dev(),
        _ => false,
    }
}

/// Runs a container in the foreground: ccrun is its parent, relays stdio (through a
/// pty with `-t`) and signals, and returns how it ended. The record says Running with
/// ccrun as the monitor until then.
pub fn foreground(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    mut spec: Spec,
    interactive: bool,
) -> Result<Exit> {
    crate::networks::refresh_shared_netns(store, record, &mut spec)?;
    crate::commands::sharing::refresh(store, record, &mut spec)?;
    let id = &record.id;
    let tty = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    let devnull = std::fs::File::open("/dev/null").context("opening /dev/null")?;
    let mut sink = OutputSink::for_record(&store.dir_of(id).join(LOG_FILE), record);
    // With -t the runtime gives the container a terminal of its own devpts; else its
    // output comes through pipes into ccrun's stdio and the log.
    let pipes = if tty {
        None
    } else {
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).context("pipe")?;
        Some(([out_r, err_r], [out_w, err_w]))
    };
    // `-a` without STDIN leaves the container's stdin closed even with -i.
    let interactive = interactive
        && (record.options.attach.is_empty() || record.options.attach.iter().any(|s| s == "stdin"));
    let stdin = if interactive { 0 } else { devnull.as_raw_fd() };
    let stdio = pipes
        .as_ref()
        .map(|(_, [out_w, err_w])| [stdin, out_w.as_raw_fd(), err_w.as_raw_fd()]);
    remove_stale_state(global, id);
    // Block the forwarded signals before the clone so none is lost in between.
    let forwarder = Forwarder::block()?;
    let mut container = Container::create(CreateOptions {
        id: id.clone(),
        bundle: store.dir_of(id),
        spec,
        state_root: global.state_root(),
        minimal_init: record.init,
        no_pivot: false,
        stdio,
        preserve_fds: 0,
    })?;
    drop(devnull);
    let readers = pipes.map(|(readers, _writers)| readers);
    let pid = container.pid();
    let attachment = match crate::networks::connect(store, record, pid) {
        Ok(a) => a,
        Err(e) => {
            let _ = container.delete(true);
            return Err(e);
        }
    };
    mark_running(
        store,
        record,
        &container,
        std::process::id() as i32,
        attachment,
    );
    // Checks run from a child of ours while the container lives (see commands::health).
    let _health = crate::commands::health::ForegroundChecks::start(global, record);
    let proxy = !record.options.no_sig_proxy;
    let status = match (container.take_console(), readers) {
        (Some(master), _) => {
            tty::sync_window_size(master.as_fd());
            let raw = if interactive {
                tty::RawMode::enter()?
            } else {
                None
            };
            let status = container
                .start()
                .map_err(anyhow::Error::from)
                .and_then(|()| tty::relay(&forwarder, &master, pid, interactive, &mut sink));
            drop(raw);
            status
        }
        (None, Some([out, err])) => container
            .start()
            .map_err(anyhow::Error::from)
            .and_then(|()| relay::relay_pipes(&forwarder, out, err, pid, &mut sink, proxy)),
        (None, None) => container
            .start()
            .and_then(|()| forwarder.forward_until_exit(pid))
            .map_err(anyhow::Error::from),
    };
    if status.is_err() {
        // Leave nothing running behind an error: the cleanup removes the cgroup.
        let _ = container.kill(nix::sys::signal::Signal::SIGKILL);
        let _ = ccrun_runtime::signals::wait_for(pid);
    }
    let status: ExitStatus = status?;
    Ok(Exit::now(status.code()))
}

/// Records that the container's process runs, watched by `monitor`, and where it is
/// attached.
pub fn mark_running(
    store: &ContainerStore,
    record: &Record,
    container: &Container,
    monitor: i32,
    attachment: Option<ccrun_net::Attachment>,
) {
    let started = ccrun_runtime::state::now_rfc3339();
    let pid = container.pid();
    let pid_start_time = container.state.pid_start_time;
    let monitor_start_time = ccrun_runtime::state::proc_stat(monitor).map_or(0, |s| s.0);
    let updated = store.update(&record.id, |r| {
        r.status = Status::Running;
        r.pid = pid;
        r.pid_start_time = pid_start_time;
        r.started_at = Some(started);
        r.finished_at = None;
        r.exit_code = None;
        r.oom_killed = false;
        r.error = None;
        r.paused = false;
        r.monitor_pid = monitor;
        r.monitor_start_time = monitor_start_time;
        r.attachment = attachment;
        // Every run starts its health afresh, as in Docker.
        r.health = r
            .options
            .healthcheck
            .as_ref()
            .map(|_| super::health::HealthState::starting());
    });
    match updated {
        Ok(Some(r)) => crate::events::container(store.root(), "start", &r, &[]),
        Ok(None) => {}
        Err(e) => eprintln!("ccrun: recording the start of {}: {e:#}", record.short_id()),
    }
}

/// Removes runtime state left by a previous run whose watcher died before cleaning
/// up (its process is gone; only the state directory and cgroup remain).
pub fn remove_stale_state(global: &GlobalOpts, id: &str) {
    if let Ok(old) = Container::load(&global.state_root(), id) {
        if let Err(e) = old.delete(true) {
            tracing::warn!("removing stale runtime state of {id}: {e}");
        }
    }
}

/// How `start` connects to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// A monitor watches it; ccrun returns at once.
    Detached,
    /// ccrun stays its parent and relays stdio and signals.
    Foreground {
        /// Relay stdin too.
        interactive: bool,
    },
    /// A monitor watches it and ccrun attaches to it (`-it`): the detach keys
    /// leave it running.
    Attached {
        /// The bytes that detach.
        detach_keys: Vec<u8>,
        /// Forward ccrun's signals to it.
        sig_proxy: bool,
    },
}

/// Starts an interactive terminal container (`run -it`, `start -ai`) under a
/// monitor with ccrun attached, so that the detach keys can leave it running.
/// Returns its exit code, or 0 when detached.
pub fn start_interactive(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    spec: Spec,
    detach_keys: Vec<u8>,
    sig_proxy: bool,
) -> Result<i32> {
    let stream = match monitor::start_attached(global, store, record, spec) {
        Ok(stream) => stream,
        Err(e) => {
            fail_start(global, store, &record.id, &e);
            return Err(e);
        }
    };
    // The record now holds the pid the signals go to.
    let running = store.get(&record.id)?.unwrap_or_else(|| record.clone());
    let opts = super::attach::Options {
        stdin: true,
        tty: true,
        detach_keys,
        sig_proxy,
        eof_ends_input: true,
    };
    let outcome = super::attach::relay(&stream, &running, &opts)?;
    super::attach::finish(store, &running, outcome)
}

/// Starts the process of an existing container from its `config.json`, in the same
/// snapshot. Needs a private mount namespace (see [`enter_private_mount_namespace`]).
/// Returns the exit code in the foreground, 0 when detached.
pub fn start_existing(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    attach: Attach,
) -> Result<i32> {
    let dir = store.dir_of(&record.id);
    if record.attachment.is_some() {
        // Left by a run whose watcher died: free its address and ports first.
        crate::networks::disconnect(store, record)?;
    }
    if let Attach::Attached {
        detach_keys,
        sig_proxy,
    } = attach
    {
        let spec = load_config(&dir).and_then(|spec| {
            mount_rootfs(record, &dir, &spec)?;
            Ok(spec)
        });
        return match spec {
            Ok(spec) => start_interactive(global, store, record, spec, detach_keys, sig_proxy),
            Err(e) => {
                fail_start(global, store, &record.id, &e);
                Err(e)
            }
        };
    }
    let started = load_config(&dir).and_then(|spec| {
        mount_rootfs(record, &dir, &spec)?;
        match attach {
            Attach::Foreground { interactive } => {
                foreground(global, store, record, spec, interactive).map(Some)
            }
            _ => monitor::start_detached(global, store, record, spec).map(|()| None),
        }
    });
    match started {
        Ok(Some(exit)) => after_exit(global, store, &record.id, exit),
        Ok(None) => Ok(0),
        Err(e) => {
            fail_start(global, store, &record.id, &e);
            Err(e)
        }
    }
}

/// Settles a foreground container that ended and applies its restart policy (the
/// restarted container runs detached, as with Podman). Returns its exit code.
pub fn after_exit(
    global: &GlobalOpts,
    store: &ContainerStore,
    id: &str,
    exit: Exit,
) -> Result<i32> {
    let code = exit.code;
    if let Next::Restart { delay } = finish::finish(global, store, id, Some(exit))? {
        restart_after(global, store, id, delay)?;
    }
    Ok(code)
}

/// Starts container `id` again, detached, after `delay`, unless it was stopped,
/// removed or started by someone else meanwhile.
pub fn restart_after(
    global: &GlobalOpts,
    store: &ContainerStore,
    id: &str,
    delay: std::time::Duration,
) -> Result<()> {
    std::thread::sleep(delay);
    let Some(record) = store.update(id, |r| {
        if finish::restart_delay(r).is_some() {
            r.restart_count += 1;
        }
    })?
    else {
        return Ok(());
    };
    if record.stopped_by_user || record.status != Status::Exited {
        return Ok(());
    }
    start_existing(global, store, &record, Attach::Detached).map(|_| ())
}

/// Records a failed start: the runtime left nothing behind; the record keeps the
/// error and the exit status it maps to, and `--rm` removes the container with its
/// anonymous volumes.
pub fn fail_start(global: &GlobalOpts, store: &ContainerStore, id: &str, err: &anyhow::Error) {
    let code = crate::exit::code_for(err);
    let message = crate::exit::one_line(err);
    remove_stale_state(global, id);
    super::attach::remove_socket(&store.dir_of(id));
    if let Ok(Some(record)) = store.get(id) {
        if let Err(e) = crate::networks::disconnect(store, &record) {
            eprintln!("ccrun: {e:#}");
        }
    }
    let updated = store.update(id, |r| {
        r.status = Status::Exited;
        r.exit_code = Some(code);
        r.error = Some(message);
        r.finished_at = Some(ccrun_runtime::state::now_rfc3339());
        r.monitor_pid = 0;
        r.monitor_start_time = 0;
        r.attachment = None;
    });
    let snapshot = Snapshot::new(&store.dir_of(id));
    let cleaned = match updated {
        Ok(Some(r)) if r.auto_remove => super::cleanup::discard(store, &r),
        Ok(_) => snapshot.unmount().map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = cleaned {
        eprintln!("ccrun: cleaning up after the failed start of {id}: {e:#}");
    }
}
