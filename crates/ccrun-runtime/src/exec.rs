//! `exec`: runs an extra process inside a running container, as `runc exec` and
//! `docker exec` do.
//!
//! The caller opens the namespaces of the container's init (checking afterwards that
//! the init is still the recorded process) and forks a helper. The helper joins the
//! container's cgroup while it still sees the host's cgroup filesystem, joins the
//! namespaces, and clones the final process with `CLONE_PARENT`: joining a PID or time
//! namespace only applies to children, and `CLONE_PARENT` makes the final process a
//! child of the caller, which reaps it. The helper reports the final pid over a
//! [`sync`] channel and exits. The final process, whose root is the container's since
//! it joined the mount namespace, sets up its stdio (or a new terminal from the
//! container's devpts), its identity and working directory, finds the program in the
//! container's `PATH` and execs it. Failures before the exec come back over the
//! channel; a successful exec closes the close-on-exec channel, which the caller sees
//! as end of file.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use ccrun_cgroups::Cgroup;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use crate::container::Container;
use crate::error::{Error, Result, SysContext};
use crate::sched::AffinityStage;
use crate::security::{self, ContainerSecurity};
use crate::signals::{self, ExitStatus};
use crate::state::{self, Status};
use crate::sync::{self, Channel, FailureKind, Message};
use crate::{console, process, sys};

/// Inputs of [`Container::exec`].
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to run: args, env, cwd (inside the container; it must exist), user
    /// (uid, gid, additional gids, umask), terminal, noNewPrivileges, capabilities,
    /// apparmorProfile, selinuxLabel and rlimits are honoured, and so are scheduler,
    /// ioPriority and execCPUAffinity; the container's seccomp filter and personality
    /// apply too. `PATH` from its env (or the default path) is searched for `args[0]`.
    pub process: Process,
    /// File descriptors to install as stdin, stdout and stderr; `None` inherits the
    /// caller's. They must stay open until `exec` returns. Ignored when
    /// `process.terminal` is true.
    pub stdio: Option<[RawFd; 3]>,
    /// How many of the caller's fds after stdio (3, 4, …) the process keeps, as runc's
    /// `exec --preserve-fds`; every other fd is closed at exec.
    pub preserve_fds: u32,
}

/// Where and when [`Container::exec_placed`] may start a process, beyond what
/// [`ExecOptions`] says (runc's `exec --ignore-paused` and `--cgroup`).
#[derive(Debug, Clone, Default)]
pub struct ExecPlacement {
    /// Start the process in a paused container too. It joins the frozen cgroup and so
    /// stays frozen, and the call blocks, until the container is resumed, as with runc.
    pub allow_paused: bool,
    /// Sub-cgroups of the container's cgroup the process goes into once it joined the
    /// container's: (controller, path relative to the container's cgroup). An empty
    /// controller means every hierarchy; each sub-cgroup must exist.
    pub sub_cgroups: Vec<(String, PathBuf)>,
}

/// A process started in a container by [`Container::exec`].
#[derive(Debug)]
pub struct ExecProcess {
    /// Its host pid. It is a child of the calling process, which must reap it (see
    /// [`ExecProcess::wait`], [`signals::wait_for`], [`crate::Forwarder::forward_until_exit`]).
    pub pid: i32,
    /// The master side of its terminal, when `process.terminal` asked for one.
    pub console: Option<OwnedFd>,
}

impl ExecProcess {
    /// Waits for the process to exit, without forwarding signals.
    pub fn wait(&self) -> Result<ExitStatus> {
        signals::wait_for(self.pid)
    }
}

/// Namespaces joined besides the user namespace, by their name in `/proc/<pid>/ns`.
const NAMESPACES: &[(&str, libc::c_int)] = &[
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// One namespace of the container's init that differs from the caller's.
#[derive(Debug)]
struct Namespace {
    name: &'static str,
    flag: libc::c_int,
    file: File,
}

impl Namespace {
    fn join(&self) -> nix::Result<()> {
        setns(&self.file, CloneFlags::from_bits_retain(self.flag))
    }
}

/// What the forked processes need, opened by the caller before the fork.
#[derive(Debug)]
struct Target {
    /// The container's user namespace, when it is not the caller's.
    user: Option<Namespace>,
    /// The other namespaces that are not the caller's.
    others: Vec<Namespace>,
    /// The container's cgroup, if it has one (a rootless container may not).
    cgroup: Option<Cgroup>,
    /// Directories of sub-cgroups to move into after joining `cgroup`.
    sub_cgroups: Vec<PathBuf>,
    /// The init's root, when the container shares the caller's mount namespace (a spec
    /// without one): joining no mount namespace leaves the caller's root, so the
    /// process `chroot`s here, as the init did.
    root: Option<OwnedFd>,
}

/// The process to start, validated by the caller.
#[derive(Debug)]
struct Plan<'a> {
    process: &'a Process,
    args: Vec<String>,
    env: Vec<String>,
    terminal: bool,
    stdio: Option<[RawFd; 3]>,
    /// Fds 3 .. 3 + this stay open across the exec.
    preserve_fds: u32,
    /// The process's capabilities and the container's seccomp filter and personality.
    security: security::Plan,
}

impl Container {
    /// Starts `opts.process` inside this container, which must be created or running:
    /// in its cgroup and namespaces, under its root. The new process is a child of the
    /// calling process, which must be single-threaded and must reap it.
    ///
    /// Errors: [`Error::WrongState`] when the container is not created or running,
    /// [`Error::CommandNotFound`] and [`Error::NotExecutable`] when the program cannot
    /// be run (Docker's exit codes 127 and 126), [`Error::Setup`] for other failures
    /// inside the container.
    pub fn exec(&self, opts: ExecOptions) -> Result<ExecProcess> {
        self.exec_with(opts, true, &ExecPlacement::default())
    }

    /// [`Container::exec`] without the container's seccomp filter, as Docker runs
    /// `exec --privileged` (the process's capabilities are the caller's choice).
    pub fn exec_unconfined(&self, opts: ExecOptions) -> Result<ExecProcess> {
        self.exec_with(opts, false, &ExecPlacement::default())
    }

    /// [`Container::exec`] placed as `placement` says: in a paused container, or in
    /// sub-cgroups of the container's cgroup.
    pub fn exec_placed(&self, opts: ExecOptions, placement: &ExecPlacement) -> Result<ExecProcess> {
        self.exec_with(opts, true, placement)
    }

    /// The directories of the sub-cgroups `wanted` names, checked to exist.
    fn sub_cgroup_dirs(&self, wanted: &[(String, PathBuf)]) -> Result<Vec<PathBuf>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let hierarchies =
            crate::container::hierarchy_dirs(&self.cgroup()?, &self.state.cgroup_path);
        let mut dirs = Vec::new();
        for (controller, path) in wanted {
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(Error::InvalidSpec(format!(
                    "exec cgroup {}: must be a path below the container's cgroup",
                    path.display()
                )));
            }
            let mut found = false;
            for (name, dir) in &hierarchies {
                // cgroup v2 (and the hybrid unified hierarchy) holds every controller.
                let matches = controller.is_empty()
                    || name.is_empty()
                    || name.split(',').any(|c| c == controller);
                if !matches {
                    continue;
                }
                found = true;
                let sub = dir.join(path);
                if !sub.is_dir() {
                    return Err(Error::InvalidSpec(format!(
                        "exec cgroup {}: {} does not exist",
                        path.display(),
                        sub.display()
                    )));
                }
                dirs.push(sub);
            }
            if !found {
                return Err(Error::InvalidSpec(format!(
                    "exec cgroup {controller}:{}: no such controller",
                    path.display()
                )));
            }
        }
        Ok(dirs)
    }

    fn exec_with(
        &self,
        opts: ExecOptions,
        seccomp: bool,
        placement: &ExecPlacement,
    ) -> Result<ExecProcess> {
        let args = opts.process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::InvalidSpec("process.args is empty".into()));
        }
        crate::sched::validate(&opts.process)?;
        crate::unsupported::check_process(&opts.process)?;
        let terminal = opts.process.terminal() == Some(true);
        // As with runc: the process's own capabilities, no_new_privs and LSM label, the
        // container's seccomp filter and personality.
        let mut shared = ContainerSecurity::load(&self.state_dir)?;
        if !seccomp {
            shared.seccomp = None;
        }
        let security = security::Plan::new(
            &opts.process,
            &shared,
            self.state_dir.parent().unwrap_or(&self.state_dir),
        )?;
        let mut plan = Plan {
            process: &opts.process,
            args,
            env: opts.process.env().clone().unwrap_or_default(),
            terminal,
            stdio: if terminal { None } else { opts.stdio },
            preserve_fds: opts.preserve_fds,
            security,
        };
        let threads =
            sys::thread_count().map_err(|e| Error::io("reading", "/proc/self/task", e))?;
        if threads != 1 {
            return Err(Error::Setup(format!(
                "internal error: exec needs a single-threaded process ({threads} threads)"
            )));
        }

        let mut state = self.state.clone();
        state.refresh(&self.state_dir);
        let wrong_state = |status: Status| Error::WrongState {
            id: state.id.clone(),
            status: status.to_string(),
            action: "exec",
        };
        let paused_ok = placement.allow_paused && state.status == Status::Paused;
        if !(paused_ok || matches!(state.status, Status::Created | Status::Running)) {
            return Err(wrong_state(state.status));
        }
        let sub_cgroups = self.sub_cgroup_dirs(&placement.sub_cgroups)?;
        if plan.security.listener_path().is_some() {
            // The exec'd process's notify fd goes to the container's seccomp agent too.
            plan.security.connect_listener(serde_json::json!({
                "ociVersion": state.oci_version,
                "id": state.id,
                "status": state.status.to_string(),
                "bundle": state.bundle,
                "annotations": state.annotations,
            }))?;
        }
        let cgroup = match state.cgroup_path.is_empty() {
            // A rootless container without a cgroup of its own: nothing to join.
            true => None,
            false => Some(self.cgroup()?),
        };
        let target = Target::open(state.pid, cgroup, sub_cgroups)?;
        if let Some(fds) = plan.stdio {
            let user = plan.process.user();
            let owner = if target.user.is_some() {
                crate::userns::host_ids_in(state.pid, user.uid(), user.gid())?
            } else {
                Some((user.uid(), user.gid()))
            };
            if let Some((uid, gid)) = owner {
                process::give_stdio_pipes(&fds, uid, gid)?;
            }
        }
        // The init was alive before and after the opens, so they are its namespaces, not
        // those of a process that reused its pid.
        if !state::process_is_alive(state.pid, state.pid_start_time) {
            return Err(wrong_state(Status::Stopped));
        }

        let (parent_end, child_end) = sync::pair()?;
        // SAFETY: we checked above that this process is single-threaded; the child only
        // runs `helper_main`, which never returns.
        let helper = unsafe { sys::clone_fork(0) }.ctx(|| "fork for exec".into())?;
        if helper == 0 {
            drop(parent_end);
            helper_main(&target, &plan, child_end);
        }
        drop(child_end);
        drop(target);
        collect(&parent_end, helper, terminal)
    }
}

impl Target {
    fn open(pid: i32, cgroup: Option<Cgroup>, sub_cgroups: Vec<PathBuf>) -> Result<Target> {
        let user = open_namespace(pid, "user", libc::CLONE_NEWUSER)?;
        let mut others = Vec::new();
        for &(name, flag) in NAMESPACES {
            if let Some(ns) = open_namespace(pid, name, flag)? {
                others.push(ns);
            }
        }
        let root = if others.iter().any(|ns| ns.flag == libc::CLONE_NEWNS) {
            None
        } else {
            let path = format!("/proc/{pid}/root");
            let dir = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
            Some(OwnedFd::from(dir))
        };
        Ok(Target {
            user,
            others,
            cgroup,
            sub_cgroups,
            root,
        })
    }
}

/// Opens `/proc/<pid>/ns/<name>`, or `None` when it is the caller's own namespace or
/// the kernel does not have that kind of namespace.
fn open_namespace(pid: i32, name: &'static str, flag: libc::c_int) -> Result<Option<Namespace>> {
    let path = format!("/proc/{pid}/ns/{name}");
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening namespace", &path, e)),
    };
    let theirs = file
        .metadata()
        .map_err(|e| Error::io("inspecting namespace", &path, e))?;
    let own_path = format!("/proc/self/ns/{name}");
    match std::fs::metadata(&own_path) {
        Ok(ours) if (ours.dev(), ours.ino()) == (theirs.dev(), theirs.ino()) => Ok(None),
        Ok(_) => Ok(Some(Namespace { name, flag, file })),
        Err(e) => Err(Error::io("inspecting namespace", &own_path, e)),
    }
}

/// Reads the reports of the helper and the final process until both are gone, reaps
/// the helper, and turns what it heard into the result.
fn collect(chan: &Channel, helper: i32, terminal: bool) -> Result<ExecProcess> {
    let mut pid = None;
    let mut console = None;
    let mut failure = None;
    loop {
        match chan.recv_or_closed() {
            Ok(None) => break,
            Ok(Some((Message::Pid(p), _))) => pid = Some(p),
            Ok(Some((Message::Console, fd))) => console = fd,
            Ok(Some((Message::Failed(kind, msg), _))) => {
                failure.get_or_insert(match kind {
                    FailureKind::NotFound => Error::CommandNotFound(msg),
                    FailureKind::NotExecutable => Error::NotExecutable(msg),
                    FailureKind::Setup => Error::Setup(msg),
                });
            }
            Ok(Some((other, _))) => {
                failure.get_or_insert(Error::Setup(format!(
                    "unexpected message {other:?} from exec"
                )));
            }
            Err(e) => {
                failure.get_or_insert(e);
                break;
            }
        }
    }
    match signals::wait_for(helper) {
        Ok(ExitStatus::Exited(0)) => {}
        Ok(status) => {
            failure.get_or_insert(Error::Setup(format!("exec helper ended with {status:?}")));
        }
        Err(e) => {
            failure.get_or_insert(e);
        }
    }
    let result = match (failure, pid) {
        (Some(e), _) => Err(e),
        (None, None) => Err(Error::Setup(
            "exec helper exited without starting the process".into(),
        )),
        (None, Some(_)) if terminal && console.is_none() => Err(Error::Setup(
            "exec process did not send its terminal".into(),
        )),
        (None, Some(pid)) => Ok(ExecProcess { pid, console }),
    };
    if let (Err(_), Some(pid)) = (&result, pid) {
        // It has usually exited after reporting; either way it is our child to reap.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = signals::wait_for(pid);
    }
    result
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit only ends the process; skipping atexit handlers is intended in a child.
    unsafe { libc::_exit(code) }
}

fn report(chan: &Channel, kind: FailureKind, msg: String) -> ! {
    let _ = chan.send(&Message::Failed(kind, msg), None);
    exit(1);
}

/// The forked helper: joins the cgroup and namespaces, clones the final process as a
/// child of the caller, reports its pid, and exits.
fn helper_main(target: &Target, plan: &Plan<'_>, chan: Channel) -> ! {
    // Before entering anything: container processes must never reach our /proc files
    // (the runtime's binary, our descriptors); the final process inherits this.
    if let Err(e) = process::set_dumpable(false) {
        report(&chan, FailureKind::Setup, e.to_string());
    }
    let initial = crate::sched::apply_exec_affinity(plan.process, AffinityStage::Initial);
    if let Err(e) = initial.and_then(|()| join(target)) {
        report(&chan, FailureKind::Setup, e.to_string());
    }
    // A seccomp agent is told the final process's host pid, which only we learn (from
    // clone): it goes to the final process over a pipe.
    let pid_pipe = if plan.security.has_listener() {
        match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(p) => Some(p),
            Err(e) => report(&chan, FailureKind::Setup, format!("pipe: {e}")),
        }
    } else {
        None
    };
    // SAFETY: this process is a fork of a single-threaded one; the child only runs
    // `final_main`, which never returns.
    match unsafe { sys::clone_fork(libc::CLONE_PARENT) } {
        Ok(0) => {
            if let Some((r, w)) = pid_pipe {
                drop(w);
                match read_pid(r) {
                    Ok(pid) => plan.security.set_host_pid(pid),
                    Err(e) => report(&chan, FailureKind::Setup, e.to_string()),
                }
            }
            final_main(plan, &chan)
        }
        Ok(pid) => {
            if let Some((_, w)) = &pid_pipe {
                let _ = nix::unistd::write(w, &pid.to_ne_bytes());
            }
            let code = i32::from(chan.send(&Message::Pid(pid), None).is_err());
            exit(code)
        }
        Err(e) => report(
            &chan,
            FailureKind::Setup,
            format!("cloning the exec process into the container: {e}"),
        ),
    }
}

/// Reads the pid the helper writes into `fd`.
fn read_pid(fd: OwnedFd) -> Result<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => return Err(Error::Setup("the exec helper sent no pid".into())),
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("reading the pid from the exec helper", e)),
        }
    }
    Ok(i32::from_ne_bytes(buf))
}

/// Joins the container's cgroup, then its namespaces.
///
/// The cgroup comes first: its paths are those of the host's cgroup filesystem, which
/// the container's mount namespace does not show. Namespaces are joined in two rounds:
/// first every one we may join with the caller's privileges (a namespace the container
/// joined from outside may be owned by a user namespace we lose our capabilities in once
/// we join the container's), then the user namespace, then those that were refused
/// before (joining one owned by the container's user namespace may need its capabilities).
fn join(target: &Target) -> Result<()> {
    let pid = nix::unistd::getpid().as_raw();
    if let Some(cgroup) = &target.cgroup {
        // This helper is single-threaded: it moves itself without a grace period.
        cgroup.join_self()?;
    }
    for dir in &target.sub_cgroups {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .map_err(|e| Error::io("joining sub-cgroup", Path::new(&procs), e))?;
    }
    let mut refused = Vec::new();
    for ns in &target.others {
        match ns.join() {
            Ok(()) => {}
            Err(Errno::EPERM) if target.user.is_some() => refused.push(ns),
            Err(e) => return Err(join_error(ns, e)),
        }
    }
    if let Some(user) = &target.user {
        user.join().map_err(|e| join_error(user, e))?;
    }
    for ns in refused {
        ns.join().map_err(|e| join_error(ns, e))?;
    }
    if let Some(root) = &target.root {
        nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "entering the container's root".into())?;
        nix::unistd::chroot(".").ctx(|| "chroot into the container's root".into())?;
    }
    Ok(())
}

fn join_error(ns: &Namespace, e: Errno) -> Error {
    Error::sys(format!("joining the container's {} namespace", ns.name), e)
}

/// What the final process execs.
struct Ready {
    program: std::path::PathBuf,
    args: Vec<std::ffi::CString>,
    env: Vec<std::ffi::CString>,
}

/// The final process, in the container's namespaces and cgroup. Never returns.
fn final_main(plan: &Plan<'_>, chan: &Channel) -> ! {
    let ready = match prepare(plan, chan) {
        Ok(ready) => ready,
        Err((kind, msg)) => report(chan, kind, msg),
    };
    signals::reset_for_exec();
    if let Err(e) = plan.security.finish() {
        report(chan, FailureKind::Setup, e.to_string());
    }
    let err = process::exec(&ready.program, &ready.args, &ready.env);
    let kind = if err == Errno::ENOENT {
        FailureKind::NotFound
    } else {
        FailureKind::NotExecutable
    };
    report(
        chan,
        kind,
        format!("exec {}: {err}", ready.program.display()),
    );
}

fn setup_err(e: Error) -> (FailureKind, String) {
    (FailureKind::Setup, e.to_string())
}

/// Everything before the exec. Joining the mount namespace made its root our root and
/// working directory: the kernel takes the topmost mount on the namespace's `/`, which
/// is the container's rootfs after `pivot_root` and after the `MS_MOVE` of `no_pivot`.
fn prepare(plan: &Plan<'_>, chan: &Channel) -> std::result::Result<Ready, (FailureKind, String)> {
    if plan.terminal {
        let master = console::create_for_exec().map_err(setup_err)?;
        // Sized before the master leaves, so a caller's later resize wins.
        crate::termsize::apply(plan.process).map_err(setup_err)?;
        chan.send(&Message::Console, Some(master.as_fd()))
            .map_err(setup_err)?;
    } else {
        if let Some(fds) = plan.stdio {
            install_stdio(fds).map_err(setup_err)?;
        }
        nix::unistd::setsid()
            .ctx(|| "setsid".into())
            .map_err(setup_err)?;
    }
    if let Some(limits) = plan.process.rlimits() {
        process::apply_rlimits(limits).map_err(setup_err)?;
    }
    crate::sched::apply(plan.process).map_err(setup_err)?;
    crate::sched::apply_exec_affinity(plan.process, AffinityStage::Final).map_err(setup_err)?;
    plan.security
        .take_identity(plan.process)
        .map_err(setup_err)?;
    // After taking the identity, so the user must be able to enter it, as with runc.
    let cwd = plan.process.cwd();
    nix::unistd::chdir(cwd.as_path())
        .ctx(|| format!("chdir to cwd {}", cwd.display()))
        .map_err(setup_err)?;
    let first = plan
        .args
        .first()
        .ok_or((FailureKind::Setup, "process.args is empty".to_string()))?;
    let program = process::find_program(first, &plan.env)?;
    let ready = Ready {
        program,
        args: process::c_strings(&plan.args).map_err(setup_err)?,
        env: process::c_strings(&plan.env).map_err(setup_err)?,
    };
    process::close_fds_on_exec(plan.preserve_fds).map_err(setup_err)?;
    Ok(ready)
}

/// Installs `fds` as fds 0, 1 and 2. They are first copied above 2, so that one given
/// as, say, fd 1 for stdin is not overwritten by the stdout it is to be replaced with.
fn install_stdio(fds: [RawFd; 3]) -> Result<()> {
    let mut copies = Vec::with_capacity(fds.len());
    for fd in fds {
        let copy =
            fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3)).ctx(|| format!("duplicating fd {fd}"))?;
        // SAFETY: fcntl just returned this new fd and nothing else owns it.
        copies.push(unsafe { OwnedFd::from_raw_fd(copy) });
    }
    for (target, fd) in (0..).zip(&copies) {
        nix::unistd::dup2(fd.as_raw_fd(), target).ctx(|| format!("dup2 onto fd {target}"))?;
    }
    Ok(())
}
