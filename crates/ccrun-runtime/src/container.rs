//! The OCI lifecycle on the host side: `create` clones the init and waits until it is
//! set up and parked at the exec gate; `start` opens the gate; `state`, `kill`, `wait`
//! and `delete` drive and clean up. Each container keeps its state in
//! `<state root>/<id>/`, so these can be called from different processes.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccrun_cgroups::{Cgroup, Layout, Stats};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, HookState, Stage};
use crate::init::{self, InitPlan};
use crate::namespaces::{self, NamespacePlan};
use crate::rootfs::RootfsPlan;
use crate::security::{self, ContainerSecurity};
use crate::signals::{self, ExitStatus};
use crate::state::{self, State, Status};
use crate::sync::{self, FailureKind, Message};
use crate::{console, sys, userns};

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
    /// How many of the caller's fds after stdio (3, 4, …) the container's process
    /// keeps, as runc's `--preserve-fds`; every other fd is closed at its exec.
    pub preserve_fds: u32,
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
        crate::sched::validate(&process)?;
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

        crate::unsupported::check(spec)?;
        let ns = namespaces::plan(spec)?;
        let shared_security = ContainerSecurity::from_linux(spec.linux().as_ref())?;
        let mut security = security::Plan::new(&process, &shared_security, &opts.state_root)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
        let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
        if let Some(p) = linux.memory_policy() {
            crate::sched::validate_memory_policy(p)?;
        }
        let sysctl = linux.sysctl().clone().unwrap_or_default();
        crate::sysctl::validate(
            sysctl.keys(),
            owns(&ns, ns.net, libc::CLONE_NEWNET),
            owns(&ns, ns.ipc, libc::CLONE_NEWIPC),
            &ns,
        )?;
        let spec_hooks = spec.hooks().clone();
        if let Some(h) = &spec_hooks {
            hooks::validate(h)?;
        }
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

        // A joined user namespace's root is known once the init exists (chowned then).
        let fifo = make_exec_fifo(
            &state_dir,
            (ns.user && ns.user_join.is_none()).then(|| {
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
        let cgroup_path = match Cgroup::create(&layout, &cgroup_path) {
            Ok(cgroup) => {
                guard.cgroup = Some(cgroup);
                cgroup_path
            }
            Err(e) => crate::rootless::without_cgroup(e, linux.resources().as_ref())?,
        };
        if let Some(cg) = guard.cgroup.as_ref() {
            cg.apply(&with_default_device_rules(&linux))?;
        }

        // Inside a user namespace (rootless) nothing can mknod, even without one of the
        // container's own.
        let mut rootfs_plan = RootfsPlan::from_spec(
            spec,
            rootfs.clone(),
            opts.bundle.clone(),
            ns.user || crate::rootless::in_user_namespace(),
        )?;
        rootfs_plan.no_pivot = opts.no_pivot;
        rootfs_plan.new_mount_ns = ns.clone_flags & libc::CLONE_NEWNS != 0;
        rootfs_plan.own_mount_ns = ns.mount;
        let restricts_paths =
            !rootfs_plan.masked_paths.is_empty() || !rootfs_plan.readonly_paths.is_empty();
        if !ns.mount && restricts_paths {
            // As runc: masking a path for the container would hide it on the host too.
            return Err(Error::InvalidSpec(
                "unable to restrict sys entries without a private MNT namespace \
                 (linux.maskedPaths and linux.readonlyPaths need a mount namespace)"
                    .into(),
            ));
        }
        if let Some(cg) = guard.cgroup.as_ref() {
            rootfs_plan.cgroups = hierarchy_dirs(cg, &cgroup_path);
        }
        // Bind mounts are prepared here as detached trees, with the privileges the init
        // lacks: host root reaches their sources whatever the permissions on the way
        // there (the store is closed to other users), and an idmap needs privileges
        // over the source's filesystem. The trees stay open until the init has attached
        // them.
        let mut bind_trees = Vec::new();
        let container_idmap = match &ns.user_join {
            Some(path) => crate::mounts::ContainerIdmap::Joined(path),
            None => crate::mounts::ContainerIdmap::Maps(&uid_maps, &gid_maps),
        };
        for (i, m) in rootfs_plan.mounts.iter().enumerate() {
            if let Some(tree) = crate::mounts::bind_tree(&opts.bundle, m, container_idmap, ns.user)?
            {
                rootfs_plan.trees.push((i, tree.as_raw_fd()));
                bind_trees.push(tree);
            }
        }
        let sync_hooks = hooks::any_during_create(spec_hooks.as_ref());
        let annotations_for_hooks = annotations.clone();
        let hook_state = |status: Status, pid: Option<i32>| HookState {
            oci_version: spec.version().clone(),
            id: opts.id.clone(),
            status,
            pid,
            bundle: opts.bundle.clone(),
            annotations: annotations_for_hooks.clone(),
        };
        let plan = InitPlan {
            ns: namespaces::without_inherited(&ns),
            rootfs: rootfs_plan,
            process,
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
            sysctl,
            exec_fifo: fifo.as_raw_fd(),
            minimal_init: opts.minimal_init,
            stdio: opts.stdio,
            preserve_fds: opts.preserve_fds,
            security,
            memory_policy: linux.memory_policy().clone(),
            hooks: spec_hooks.clone().filter(|_| sync_hooks),
            hook_state: sync_hooks.then(|| hook_state(Status::Creating, None)),
        };

        let (parent_end, child_end) = sync::pair()?;
        // The init starts in the rootfs directory: a new mount namespace carries the
        // working directory over to its copy of the mount, so the init attaches the
        // rootfs there without looking up the host path, which its unprivileged root
        // may not be allowed to traverse.
        let cwd = WorkingDir::enter(&rootfs)?;
        let joins_itself = guard.cgroup.is_some() && ns.user_join.is_none();
        // Whether the init was started right in the cgroup's unified directory.
        let mut started_in_unified = false;
        let pid = match &ns.user_join {
            None => {
                // Shared network, UTS, IPC, PID and time namespaces are entered here,
                // around the clone, so the init inherits them: from inside a new user
                // namespace it could not join namespaces another user namespace owns.
                let inherited = namespaces::EnteredAround::enter(&ns)?;
                // The init moves itself into the v1 hierarchies, which spares the
                // grace period a move through cgroup.procs waits for (see SelfJoin).
                let mut self_joined = match guard.cgroup.as_ref() {
                    Some(cg) => Some(cg.open_self_join()?),
                    None => None,
                };
                // The unified hierarchy it starts in (see `clone_fork_into_cgroup`).
                let unified_dir = match guard.cgroup.as_ref() {
                    Some(cg) => cg.open_unified_dir()?,
                    None => None,
                };
                let cloned = match &unified_dir {
                    // SAFETY: we checked above that this process is single-threaded;
                    // the child only runs `init::main`, which never returns.
                    Some(dir) => {
                        match unsafe { sys::clone_fork_into_cgroup(ns.clone_flags, dir.as_fd()) } {
                            // Whatever clone3 refused (a kernel without it, a seccomp
                            // filter answering ENOSYS or EPERM, the cgroup itself), the
                            // plain clone and the move afterwards report it their way.
                            Err(e) => {
                                tracing::debug!(
                                    "clone3 into the cgroup: {e}; cloning, then moving"
                                );
                                started_in_unified = false;
                                // SAFETY: as above.
                                unsafe { sys::clone_fork(ns.clone_flags) }
                            }
                            other => {
                                started_in_unified = true;
                                other
                            }
                        }
                    }
                    // SAFETY: as above.
                    None => unsafe { sys::clone_fork(ns.clone_flags) },
                };
                if cloned == Ok(0) {
                    drop(parent_end);
                    init::main(&plan, child_end, self_joined.take());
                }
                // Our copies of the files: the init holds its own.
                drop(self_joined.take());
                drop(child_end);
                inherited.leave()?;
                cloned.ctx(|| "clone".into())?
            }
            Some(path) => spawn_init_in_userns(path, &ns, &plan, &parent_end, child_end)?,
        };
        drop(cwd);
        drop(fifo);
        guard.pid = Some(pid);

        if let Some(cg) = guard.cgroup.as_ref() {
            if joins_itself {
                if !started_in_unified {
                    cg.add_process_unified(pid)?;
                }
            } else {
                cg.add_process(pid)?;
            }
        }
        if ns.user && ns.user_join.is_none() {
            userns::write_maps(pid, &uid_maps, &gid_maps)?;
        }
        if let Some(fds) = opts.stdio {
            let user = plan.process.user();
            let owner = if ns.user {
                userns::host_ids_in(pid, user.uid(), user.gid())?
            } else {
                Some((user.uid(), user.gid()))
            };
            if let Some((uid, gid)) = owner {
                crate::process::give_stdio_pipes(&fds, uid, gid)?;
            }
        }
        if ns.user_join.is_some() {
            let (uid, gid) = userns::root_of(pid)?;
            let path = state_dir.join(EXEC_FIFO);
            nix::unistd::chown(&path, Some(uid.into()), Some(gid.into()))
                .ctx(|| format!("chown {}", path.display()))?;
        }
        // The rootfs as a detached tree (idmapped with the container's mapping when
        // asked), for the init to attach.
        let root_tree = if want_idmap {
            Some(userns::idmapped_rootfs(pid, &rootfs)?)
        } else {
            match sys::open_tree_clone(&rootfs) {
                Ok(tree) => Some(tree),
                // An unprivileged caller (rootless ccrun-oci) may not clone mounts of
                // the host's mount namespace; the init, root in its own user and mount
                // namespaces, clones its copy of the rootfs itself (from its working
                // directory), as runc's init binds it.
                Err(nix::errno::Errno::EPERM)
                    if !nix::unistd::geteuid().is_root() && plan.rootfs.new_mount_ns =>
                {
                    None
                }
                Err(e) => return Err(Error::sys(format!("open_tree {}", rootfs.display()), e)),
            }
        };
        parent_end.send(&Message::Continue, root_tree.as_ref().map(|t| t.as_fd()))?;
        drop(root_tree);
        let pid_start_time = state::proc_stat(pid).map(|s| s.0).unwrap_or(0);
        let mut state = State {
            oci_version: spec.version().clone(),
            id: opts.id.clone(),
            status: Status::Creating,
            pid,
            pid_start_time,
            bundle: opts.bundle.clone(),
            rootfs,
            created: state::now_rfc3339(),
            cgroup_path,
            annotations,
            owner: nix::unistd::geteuid().to_string(),
        };
        if let Some(h) = &spec_hooks {
            hooks::save(&state_dir, h)?;
        }
        let (mut reply, mut console) = parent_end.recv()?;
        if let (Message::CreateHooks, Some(h)) = (&reply, &spec_hooks) {
            // Hooks may ask the runtime for the state: record it first.
            state.save(&state_dir)?;
            let hs = hook_state(Status::Creating, Some(pid));
            let ran = hooks::run(Stage::Prestart, h, &hs)
                .and_then(|()| hooks::run(Stage::CreateRuntime, h, &hs));
            if let Err(e) = ran {
                let _ = parent_end.send(&Message::Failed(FailureKind::Setup, e.to_string()), None);
                return Err(e);
            }
            parent_end.send(&Message::HooksDone(pid), None)?;
            (reply, console) = parent_end.recv()?;
        }
        drop(bind_trees);
        match reply {
            Message::Ready => {}
            Message::Failed(kind, msg) => {
                return Err(match kind {
                    FailureKind::NotFound => Error::CommandNotFound(msg),
                    FailureKind::NotExecutable => Error::NotExecutable(msg),
                    // An `Error::Setup` inside the init already says so; say it once.
                    FailureKind::Setup => Error::Setup(
                        msg.strip_prefix("container setup failed: ")
                            .map_or(msg.clone(), str::to_string),
                    ),
                });
            }
            other => return Err(Error::Setup(format!("unexpected message {other:?}"))),
        }

        state.status = Status::Created;
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
        self.state.save(&self.state_dir)?;
        if let Some(h) = self.saved_hooks() {
            hooks::run_warn(Stage::Poststart, &h, &self.hook_state(Some(self.state.pid)));
        }
        Ok(())
    }

    /// The hooks saved at create; an unreadable file only costs the (warning-only)
    /// poststart and poststop hooks, not the start or delete.
    fn saved_hooks(&self) -> Option<oci_spec::runtime::Hooks> {
        hooks::load(&self.state_dir).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            eprintln!("ccrun: warning: {e}");
            None
        })
    }

    /// The state document hooks read, with the current status.
    fn hook_state(&self, pid: Option<i32>) -> HookState {
        HookState {
            oci_version: self.state.oci_version.clone(),
            id: self.state.id.clone(),
            status: self.state.status,
            pid,
            bundle: self.state.bundle.clone(),
            annotations: self.state.annotations.clone(),
        }
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
        if self.state.cgroup_path.is_empty() {
            return Err(Error::Setup(format!(
                "container {} has no cgroup (rootless without a delegated cgroup v2 subtree)",
                self.state.id
            )));
        }
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
        let saved_hooks = self.saved_hooks();
        match self.cgroup() {
            Ok(cg) => cg.destroy()?,
            Err(e) => tracing::debug!("no cgroup to remove: {e}"),
        }
        match std::fs::remove_dir_all(&self.state_dir) {
            Ok(()) => {}
            // Whoever else was deleting it (a monitor's cleanup, a concurrent `rm -f`)
            // finished first: the container is gone either way.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &self.state_dir, e)),
        }
        if let Some(h) = saved_hooks {
            self.state.status = Status::Stopped;
            hooks::run_warn(Stage::Poststop, &h, &self.hook_state(None));
        }
        Ok(())
    }
}

/// True when the container has a namespace of kind `flag` for itself: a new one, or a
/// joined one that is not the runtime's own.
fn owns(ns: &NamespacePlan, has: bool, flag: libc::c_int) -> bool {
    has && ns
        .join
        .iter()
        .filter(|(f, _)| *f == flag)
        .all(|(_, path)| !namespaces::is_own(path, flag))
}

/// Starts the init inside the existing user namespace at `userns`: an intermediate
/// process enters the shared namespaces and the user namespace, then clones the init
/// with the new namespaces (so they belong to that user namespace) as a sibling
/// (`CLONE_PARENT`), reports its pid and exits. The caller must be single-threaded.
fn spawn_init_in_userns(
    userns: &Path,
    ns: &NamespacePlan,
    plan: &InitPlan,
    parent_end: &sync::Channel,
    child_end: sync::Channel,
) -> Result<i32> {
    let target =
        std::fs::File::open(userns).map_err(|e| Error::io("opening namespace", userns, e))?;
    // SAFETY: this process is single-threaded; the child below only enters namespaces,
    // clones and exits (or runs `init::main`, which never returns).
    let mid = unsafe { sys::clone_fork(0) }.ctx(|| "fork".into())?;
    if mid == 0 {
        // SAFETY: closing our copy of the parent's end; its owner never runs here again.
        unsafe { libc::close(parent_end.as_raw_fd()) };
        let entered = namespaces::EnteredAround::enter(ns).and_then(|entered| {
            nix::sched::setns(&target, nix::sched::CloneFlags::CLONE_NEWUSER)
                .map_err(|e| Error::sys(format!("joining user namespace {}", userns.display()), e))
                .map(|()| entered)
        });
        let msg = match entered {
            Ok(entered) => {
                // This process exits right away: nothing to return to.
                std::mem::forget(entered);
                // SAFETY: still single-threaded; the child only runs `init::main`.
                match unsafe { sys::clone_fork(ns.clone_flags | libc::CLONE_PARENT) } {
                    Ok(0) => init::main(plan, child_end, None),
                    Ok(pid) => Message::Pid(pid),
                    Err(e) => Message::Failed(FailureKind::Setup, format!("clone: {e}")),
                }
            }
            Err(e) => Message::Failed(FailureKind::Setup, e.to_string()),
        };
        let _ = child_end.send(&msg, None);
        // SAFETY: _exit ends this intermediate without running destructors.
        unsafe { libc::_exit(0) };
    }
    drop(child_end);
    let _ = nix::sys::wait::waitpid(Pid::from_raw(mid), None);
    match parent_end.recv()?.0 {
        Message::Pid(pid) => Ok(pid),
        Message::Failed(_, msg) => Err(Error::Setup(msg)),
        other => Err(Error::Setup(format!("unexpected message {other:?}"))),
    }
}

impl Container {
    /// Sends the master of the container's terminal to the unix socket at `socket`
    /// (runc's `--console-socket` protocol, see [`console::send_to_socket`]) and closes
    /// our copy. Errors when the container has no terminal.
    pub fn send_console(&mut self, socket: &Path) -> Result<()> {
        let master = self
            .console
            .take()
            .ok_or_else(|| Error::InvalidSpec("a console socket needs process.terminal".into()))?;
        console::send_to_socket(socket, master.as_fd())
    }

    /// Freezes every process of the container (cgroup freezer) and records it as paused.
    /// Only a running container can be paused, as with runc.
    pub fn pause(&mut self) -> Result<()> {
        self.require(Status::Running, "pause")?;
        self.cgroup()?.freeze()?;
        self.state.status = Status::Paused;
        self.state.save(&self.state_dir)
    }

    /// Thaws a paused container and records it as running again.
    pub fn resume(&mut self) -> Result<()> {
        self.require(Status::Paused, "resume")?;
        self.cgroup()?.thaw()?;
        self.state.status = Status::Running;
        self.state.save(&self.state_dir)
    }

    /// Applies `resources` to the live cgroup of a created, running or paused container;
    /// only the fields given change.
    pub fn update(&mut self, resources: &LinuxResources) -> Result<()> {
        self.state.refresh(&self.state_dir);
        if self.state.status == Status::Stopped {
            return Err(self.wrong_state("update"));
        }
        Ok(self.cgroup()?.update(resources)?)
    }

    /// Usage figures of the container's cgroup.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.cgroup()?.stats()?)
    }

    /// Every container under `state_root`, sorted by id, each with a freshly derived
    /// status. A missing root means no containers; directories without a readable state
    /// file (a create in progress, debris) are skipped.
    pub fn list(state_root: &Path) -> Result<Vec<Container>> {
        let entries = match std::fs::read_dir(state_root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", state_root, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading", state_root, e))?;
            if let Some(id) = entry.file_name().to_str() {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids
            .iter()
            .filter_map(|id| Container::load(state_root, id).ok())
            .collect())
    }

    /// Refreshes the status and fails unless it is `wanted`.
    fn require(&mut self, wanted: Status, action: &'static str) -> Result<()> {
        self.state.refresh(&self.state_dir);
        if self.state.status == wanted {
            Ok(())
        } else {
            Err(self.wrong_state(action))
        }
    }

    fn wrong_state(&self, action: &'static str) -> Error {
        Error::WrongState {
            id: self.state.id.clone(),
            status: self.state.status.to_string(),
            action,
        }
    }
}

/// The spec's resources with runc's device rules appended: after the spec's own rules,
/// access to the default devices and to every `linux.devices` node. As in runc, the
/// device cgroup starts from deny-all, so a spec without rules still gets /dev/null
/// and friends, and a client's `deny all` first rule cannot lock out the basics.
fn with_default_device_rules(
    linux: &oci_spec::runtime::Linux,
) -> oci_spec::runtime::LinuxResources {
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    rules.extend(ccrun_cgroups::default_allowed_devices());
    rules.extend(
        linux
            .devices()
            .iter()
            .flatten()
            .filter_map(ccrun_cgroups::allow_device),
    );
    resources.set_devices(Some(rules));
    resources
}

/// The directories of `cgroup` (whose path is `path` in every hierarchy), each with the
/// name of its hierarchy's mount point: `memory` for `/sys/fs/cgroup/memory/ccrun/ID`.
pub(crate) fn hierarchy_dirs(cgroup: &Cgroup, path: &str) -> Vec<(String, PathBuf)> {
    let depth = Path::new(path).components().count().saturating_sub(1);
    cgroup
        .paths()
        .into_iter()
        .map(|dir| {
            let name = dir
                .ancestors()
                .nth(depth)
                .and_then(|mount| mount.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, dir)
        })
        .collect()
}

/// This process's working directory moved to a directory for a while (around the
/// init's clone); it moves back on drop.
struct WorkingDir {
    saved: std::fs::File,
}

impl WorkingDir {
    fn enter(dir: &Path) -> Result<WorkingDir> {
        let saved = std::fs::File::open(".").map_err(|e| Error::io("opening", ".", e))?;
        nix::unistd::chdir(dir).ctx(|| format!("chdir {}", dir.display()))?;
        Ok(WorkingDir { saved })
    }
}

impl Drop for WorkingDir {
    fn drop(&mut self) {
        if let Err(e) = nix::unistd::fchdir(self.saved.as_raw_fd()) {
            tracing::warn!("returning to the working directory: {e}");
        }
    }
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
    fn ids_are_validated() {
        assert!(validate_id("abc-1_2.3").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("../etc").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id(".hidden").is_err());
    }
}
