//! The OCI lifecycle on the host side: `create` clones the init and waits until it is
//! set up and parked at the exec gate; `start` opens the gate; `state`, `kill`, `wait`
//! and `delete` drive and clean up. Each container keeps its state in
//! `<state root>/<id>/`, so these can be called from different processes.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccrun_cgroups::{Cgroup, Layout};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::error::{Error, Result, SysContext};
use crate::init::{self, InitPlan};
use crate::namespaces;
use crate::rootfs::RootfsPlan;
use crate::security::{self, ContainerSecurity};
use crate::signals::{self, ExitStatus};
use crate::state::{self, State, Status};
use crate::sync::{self, FailureKind, Message};
use crate::{sys, userns};

/// Name of the exec gate inside the state directory.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Annotation asking the runtime to idmap the rootfs with the container's user namespace
/// mapping, so host-root-owned image files appear owned by the container's root.
pub const ANNOTATION_ROOTFS_IDMAP: &str = "io.ccrun.rootfs.idmap";

/// The cgroup of container `id` when its spec names none: absolute, under a `ccrun`
/// parent shared by all containers (never relative to the caller's own cgroup).
pub fn default_cgroup_path(id: &str) -> String {
    format!("/ccrun/{id}")
}

/// Inputs of [`Container::create`].
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Container id (unique under `state_root`).
    pub id: String,
    /// The bundle directory (base of a relative `root.path` and mount sources).
    pub bundle: PathBuf,
    /// The runtime spec.
    pub spec: Spec,
    /// Where container state directories live (e.g. `/run/ccrun`).
    pub state_root: PathBuf,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals.
    pub minimal_init: bool,
    /// Use `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
    /// File descriptors to give the container as stdin, stdout and stderr (e.g. a
    /// pty's slave); `None` lets it inherit ccrun's own. They must stay open until
    /// `create` returns.
    pub stdio: Option<[RawFd; 3]>,
}

/// A container known to this runtime.
#[derive(Debug)]
pub struct Container {
    /// Its state directory.
    pub state_dir: PathBuf,
    /// Its last known state.
    pub state: State,
    /// The master of its terminal, when `process.terminal` asked for one (only in the
    /// process that created it).
    console: Option<OwnedFd>,
}

/// Removes a half-created container's leftovers unless disarmed.
struct CreateGuard {
    state_dir: PathBuf,
    cgroup: Option<Cgroup>,
    pid: Option<i32>,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = signals::wait_for(pid);
        }
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("removing cgroup of failed container: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!(
            "invalid container id {id:?}: use letters, digits, '-', '_' and '.'"
        )))
    }
}

impl Container {
    /// Creates the container: its init is set up inside its namespaces and waits for
    /// [`Container::start`]. The calling process becomes the init's parent and must be
    /// single-threaded.
    pub fn create(opts: CreateOptions) -> Result<Container> {
        validate_id(&opts.id)?;
        let spec = &opts.spec;
        let process = spec
            .process()
            .clone()
            .ok_or_else(|| Error::InvalidSpec("spec has no process".into()))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::InvalidSpec("process.args is empty".into()));
        }
        let root_path = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .ok_or_else(|| Error::InvalidSpec("spec has no root".into()))?;
        let rootfs = opts.bundle.join(root_path);
        let rootfs = rootfs
            .canonicalize()
            .map_err(|e| Error::io("rootfs", &rootfs, e))?;
        if !rootfs.is_dir() {
            return Err(Error::InvalidSpec(format!(
                "rootfs {} is not a directory",
                rootfs.display()
            )));
        }
        let threads =
            sys::thread_count().map_err(|e| Error::io("reading", "/proc/self/task", e))?;
        if threads != 1 {
            return Err(Error::Setup(format!(
                "internal error: container creation needs a single-threaded process ({threads} threads)"
            )));
        }

        let ns = namespaces::plan(spec)?;
        let shared_security = ContainerSecurity::from_linux(spec.linux().as_ref())?;
        let mut security = security::Plan::new(&process, &shared_security)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
        let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
        if ns.user && ns.clone_flags & libc::CLONE_NEWUSER != 0 && uid_maps.is_empty() {
            return Err(Error::InvalidSpec(
                "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
            ));
        }
        let annotations: HashMap<String, String> = spec.annotations().clone().unwrap_or_default();
        let want_idmap = ns.user
            && annotations
                .get(ANNOTATION_ROOTFS_IDMAP)
                .is_some_and(|v| v == "true");

        if ns.user {
            let uid = userns::host_id(&uid_maps, 0).unwrap_or(u32::MAX);
            let gid = userns::host_id(&gid_maps, 0).unwrap_or(u32::MAX);
            check_reachable(&rootfs, uid, gid)?;
        }

        std::fs::create_dir_all(&opts.state_root)
            .map_err(|e| Error::io("creating", &opts.state_root, e))?;
        let state_dir = opts.state_root.join(&opts.id);
        match std::fs::create_dir(&state_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(opts.id.clone()))
            }
            Err(e) => return Err(Error::io("creating", &state_dir, e)),
        }
        let mut guard = CreateGuard {
            state_dir: state_dir.clone(),
            cgroup: None,
            pid: None,
        };
        // For processes exec'd into the container later.
        shared_security.save(&state_dir)?;
        if security.listener_path().is_some() {
            security.connect_listener(serde_json::json!({
                "ociVersion": spec.version(),
                "id": opts.id,
                "status": "creating",
                "bundle": opts.bundle,
                "annotations": spec.annotations().clone().unwrap_or_default(),
            }))?;
        }

        let fifo = make_exec_fifo(
            &state_dir,
            ns.user.then(|| {
                (
                    userns::host_id(&uid_maps, 0).unwrap_or(0),
                    userns::host_id(&gid_maps, 0).unwrap_or(0),
                )
            }),
        )?;

        let cgroup_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| default_cgroup_path(&opts.id));
        let layout = Layout::detect()?;
        let cgroup = Cgroup::create(&layout, &cgroup_path)?;
        guard.cgroup = Some(cgroup);
        if let (Some(res), Some(cg)) = (linux.resources(), guard.cgroup.as_ref()) {
            cg.apply(res)?;
        }

        let mut rootfs_plan =
            RootfsPlan::from_spec(spec, rootfs.clone(), opts.bundle.clone(), ns.user);
        rootfs_plan.no_pivot = opts.no_pivot;
        let plan = InitPlan {
            ns: namespaces::without_inherited(&ns),
            rootfs: rootfs_plan,
            process,
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
            sysctl: linux.sysctl().clone().unwrap_or_default(),
            exec_fifo: fifo.as_raw_fd(),
            minimal_init: opts.minimal_init,
            stdio: opts.stdio,
            security,
        };

        let (parent_end, child_end) = sync::pair()?;
        // Shared network, UTS and IPC namespaces are entered here, around the clone, so
        // the init inherits them: from inside a new user namespace it could not join
        // namespaces that another user namespace owns.
        let inherited = namespaces::EnteredAround::enter(&ns.join)?;
        // SAFETY: we checked above that this process is single-threaded; the child only
        // runs `init::main`, which never returns.
        let cloned = unsafe { sys::clone_fork(ns.clone_flags) };
        if cloned == Ok(0) {
            drop(parent_end);
            init::main(&plan, child_end);
        }
        inherited.leave()?;
        let pid = cloned.ctx(|| "clone".into())?;
        drop(child_end);
        drop(fifo);
        guard.pid = Some(pid);

        if let Some(cg) = guard.cgroup.as_ref() {
            cg.add_process(pid)?;
        }
        if ns.user {
            userns::write_maps(pid, &uid_maps, &gid_maps)?;
        }
        let idmapped = if want_idmap {
            Some(userns::idmapped_rootfs(pid, &rootfs)?)
        } else {
            None
        };
        parent_end.send(&Message::Continue, idmapped.as_ref().map(|f| f.as_fd()))?;
        drop(idmapped);
        let (reply, console) = parent_end.recv()?;
        match reply {
            Message::Ready => {}
            Message::Failed(kind, msg) => {
                return Err(match kind {
                    FailureKind::NotFound => Error::CommandNotFound(msg),
                    FailureKind::NotExecutable => Error::NotExecutable(msg),
                    FailureKind::Setup => Error::Setup(msg),
                })
            }
            other => return Err(Error::Setup(format!("unexpected message {other:?}"))),
        }

        let pid_start_time = state::proc_stat(pid).map(|s| s.0).unwrap_or(0);
        let state = State {
            oci_version: spec.version().clone(),
            id: opts.id.clone(),
            status: Status::Created,
            pid,
            pid_start_time,
            bundle: opts.bundle.clone(),
            rootfs,
            created: state::now_rfc3339(),
            cgroup_path,
            annotations,
            owner: nix::unistd::geteuid().to_string(),
        };
        state.save(&state_dir)?;
        // Success: keep everything.
        guard.pid = None;
        guard.cgroup = None;
        std::mem::forget(guard);
        Ok(Container {
            state_dir,
            state,
            console,
        })
    }

    /// Takes the master side of the container's terminal (see `process.terminal`).
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    /// Loads a container by id from `state_root`, with a freshly derived status.
    pub fn load(state_root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let state_dir = state_root.join(id);
        if !State::file(&state_dir).exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let mut state = State::load(&state_dir)?;
        state.refresh(&state_dir);
        Ok(Container {
            state_dir,
            state,
            console: None,
        })
    }

    /// Container id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Host pid of the init.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// Releases the init from the exec gate: it takes its identity and execs the program.
    pub fn start(&mut self) -> Result<()> {
        self.state.refresh(&self.state_dir);
        if self.state.status != Status::Created {
            return Err(Error::WrongState {
                id: self.state.id.clone(),
                status: self.state.status.to_string(),
                action: "start",
            });
        }
        let fifo = self.state_dir.join(EXEC_FIFO);
        let fd: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| Error::io("opening", &fifo, e))?
            .into();
        self.read_gate(fd)?;
        let _ = std::fs::remove_file(&fifo);
        self.state.status = Status::Running;
        self.state.save(&self.state_dir)
    }

    /// Waits until the init has written to the gate (it opened the fifo once we did).
    fn read_gate(&self, fd: OwnedFd) -> Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(0) | Err(Errno::EINTR) => {}
                Ok(_) => {
                    let mut buf = [0u8; 1];
                    match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                        Ok(1) => return Ok(()),
                        Ok(_) | Err(Errno::EAGAIN) => {}
                        Err(e) => return Err(Error::sys("reading exec fifo", e)),
                    }
                }
                Err(e) => return Err(Error::sys("poll on exec fifo", e)),
            }
            if !state::process_is_alive(self.state.pid, self.state.pid_start_time) {
                return Err(Error::Setup("container init died before start".into()));
            }
            if Instant::now() > deadline {
                return Err(Error::Setup("timed out waiting for container init".into()));
            }
        }
    }

    /// Sends `signal` to the init.
    pub fn kill(&mut self, signal: Signal) -> Result<()> {
        self.state.refresh(&self.state_dir);
        if self.state.status == Status::Stopped {
            return Err(Error::WrongState {
                id: self.state.id.clone(),
                status: self.state.status.to_string(),
                action: "kill",
            });
        }
        kill(Pid::from_raw(self.state.pid), signal).ctx(|| format!("kill {signal}"))
    }

    /// Waits for the init to exit; only the process that created it can do this.
    pub fn wait(&self) -> Result<ExitStatus> {
        signals::wait_for(self.state.pid)
    }

    /// The container's cgroup.
    pub fn cgroup(&self) -> Result<Cgroup> {
        Ok(Cgroup::open(&Layout::detect()?, &self.state.cgroup_path)?)
    }

    /// True when the kernel OOM-killed something in the container's cgroup.
    pub fn oom_killed(&self) -> bool {
        self.cgroup()
            .and_then(|cg| Ok(cg.oom_kill_count()?))
            .is_ok_and(|n| n > 0)
    }

    /// Removes the container: its cgroup (killing what is left) and state. A running
    /// container needs `force`, as with runc.
    pub fn delete(mut self, force: bool) -> Result<()> {
        self.state.refresh(&self.state_dir);
        match self.state.status {
            Status::Running | Status::Paused if !force => {
                return Err(Error::WrongState {
                    id: self.state.id.clone(),
                    status: self.state.status.to_string(),
                    action: "delete without force",
                })
            }
            Status::Stopped => {}
            _ => {
                let _ = kill(Pid::from_raw(self.state.pid), Signal::SIGKILL);
            }
        }
        match self.cgroup() {
            Ok(cg) => cg.destroy()?,
            Err(e) => tracing::debug!("no cgroup to remove: {e}"),
        }
        std::fs::remove_dir_all(&self.state_dir)
            .map_err(|e| Error::io("removing", &self.state_dir, e))
    }
}

/// The init sets up the rootfs as the user namespace's root, which is an unprivileged
/// host user: every directory above the rootfs must be searchable by it. Checking first
/// turns an opaque EACCES during setup into an error that says what to change.
fn check_reachable(rootfs: &Path, host_uid: u32, host_gid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for dir in rootfs.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io("checking", dir, e))?;
        let mode = meta.mode();
        let searchable = if meta.uid() == host_uid {
            mode & 0o100 != 0
        } else if meta.gid() == host_gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(Error::InvalidSpec(format!(
                "rootfs {} is not reachable by the container's root (host uid {host_uid}): \
                 {} is not searchable by others (mode {:o}); chmod o+x it, move the rootfs, \
                 or use --userns=host",
                rootfs.display(),
                dir.display(),
                mode & 0o7777
            )));
        }
    }
    Ok(())
}

/// Creates the exec fifo and opens it `O_PATH` for the init to inherit; in a user
/// namespace it belongs to the container's root so the init may open it for writing.
fn make_exec_fifo(state_dir: &Path, owner: Option<(u32, u32)>) -> Result<OwnedFd> {
    let path = state_dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600))
        .ctx(|| format!("mkfifo {}", path.display()))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(&path, Some(uid.into()), Some(gid.into()))
            .ctx(|| format!("chown {}", path.display()))?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("chmod", &path, e))?;
    // Not close-on-exec across the clone: the init needs it; it is closed before exec.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    // std opens with O_CLOEXEC; the init must inherit this fd through the clone (it
    // closes it itself before exec).
    let fd: OwnedFd = file.into();
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .ctx(|| "clearing close-on-exec on exec fifo".into())?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_rootfs_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let locked = tmp.path().join("locked");
        std::fs::create_dir_all(locked.join("rootfs")).expect("mkdir");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        let err = check_reachable(&locked.join("rootfs"), 100000, 100000).unwrap_err();
        assert!(err.to_string().contains("not searchable"), "{err}");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        check_reachable(&locked.join("rootfs"), 100000, 100000).expect("reachable");
    }

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("abc-1_2.3").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("../etc").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id(".hidden").is_err());
    }
}
