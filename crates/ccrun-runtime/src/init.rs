//! The container's init: the code that runs in the cloned child. It finishes setup in
//! the new namespaces (user ids, cgroup namespace, rootfs, hostname, sysctls, rlimits,
//! program lookup), reports to the parent, waits at the exec gate until `start`, then
//! takes the process's identity (see [`crate::security`]) and execs the user's program as PID 1.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Hooks, Process};

use crate::error::{Error, Result, SysContext};
use crate::hooks::{self, HookState, Stage};
use crate::namespaces::NamespacePlan;
use crate::process;
use crate::rootfs::{self, RootfsPlan};
use crate::signals;
use crate::sync::{Channel, FailureKind, Message};

/// Everything the init needs, computed by the parent before the clone.
#[derive(Debug)]
pub struct InitPlan {
    /// Namespaces to join or create after the clone.
    pub ns: NamespacePlan,
    /// Filesystem view.
    pub rootfs: RootfsPlan,
    /// The process to run.
    pub process: Process,
    /// Hostname (UTS namespace only).
    pub hostname: Option<String>,
    /// NIS domain name (UTS namespace only).
    pub domainname: Option<String>,
    /// Sysctls to set inside the container.
    pub sysctl: HashMap<String, String>,
    /// `O_PATH` fd of the exec fifo.
    pub exec_fifo: RawFd,
    /// Run the minimal init as PID 1 with the program as its child.
    pub minimal_init: bool,
    /// Descriptors to install as fds 0, 1 and 2, if not inherited.
    pub stdio: Option<[RawFd; 3]>,
    /// Fds 3 .. 3 + this stay open across the exec; every other one is closed.
    pub preserve_fds: u32,
    /// Capabilities, seccomp, personality and LSM labels of the process.
    pub security: crate::security::Plan,
    /// `linux.memoryPolicy`, set on the init before it execs.
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
    /// The spec's hooks, when some run during create or start: the init then stops
    /// before `pivot_root` for the parent's, and runs `createContainer` and
    /// `startContainer` itself.
    pub hooks: Option<Hooks>,
    /// The state hooks read (its pid is filled in once known).
    pub hook_state: Option<HookState>,
}

/// What setup yields: the program to exec and its argv/envp.
struct Ready {
    /// The state for `startContainer` hooks, when there are any.
    hook_state: Option<HookState>,
    /// The master of the terminal made for `process.terminal`, for the parent.
    console: Option<OwnedFd>,
    program: PathBuf,
    args: Vec<CString>,
    env: Vec<CString>,
}

/// Entry point in the child. Never returns. `cgroup`: the v1 hierarchies the init
/// moves itself into first, before it leaves the runtime's cgroup namespace.
pub fn main(plan: &InitPlan, chan: Channel, cgroup: Option<ccrun_cgroups::SelfJoin>) -> ! {
    if let Some(Err(e)) = cgroup.map(ccrun_cgroups::SelfJoin::join) {
        let msg = format!("joining the container's cgroup: {e}");
        let _ = chan.send(&Message::Failed(FailureKind::Setup, msg), None);
        exit(1);
    }
    // While the host's /proc is still ours.
    plan.security.note_host_pid();
    if let Err(e) = attach_stdio(plan) {
        let _ = chan.send(&Message::Failed(FailureKind::Setup, e.to_string()), None);
        exit(1);
    }
    let ready = match prepare(plan, &chan) {
        Ok(ready) => ready,
        Err((kind, msg)) => {
            let _ = chan.send(&Message::Failed(kind, msg), None);
            exit(1);
        }
    };
    // A seccomp agent gets the filter's notify fd during create, as runc sends it:
    // an agent may wait for it before the container is started. The filter is loaded
    // here, while the init still has every capability, and so constrains the rest of
    // the init's way to exec, as runc's does.
    if let Err(e) = plan.security.load_for_agent() {
        let _ = chan.send(&Message::Failed(FailureKind::Setup, e.to_string()), None);
        exit(1);
    }
    if chan
        .send(&Message::Ready, ready.console.as_ref().map(|fd| fd.as_fd()))
        .is_err()
    {
        exit(1);
    }
    drop(chan);
    drop(ready.console);
    if let Err(e) = wait_at_gate(plan.exec_fifo) {
        fail_after_start(&format!("waiting for start: {e}"), 125);
    }
    // As runc: after `start` was released, so a failing hook ends the container (its
    // program never runs) without failing `start` or holding up `poststart`.
    if let (Some(hooks), Some(state)) = (&plan.hooks, ready.hook_state) {
        let env = plan.process.env().as_deref().unwrap_or(&[]);
        if let Err(e) = hooks::run_in_container(Stage::StartContainer, hooks, &state, env) {
            fail_after_start(&e.to_string(), 125);
        }
    }
    if let Err(e) = plan.security.take_identity(&plan.process) {
        fail_after_start(&e.to_string(), 125);
    }
    // Whatever the caller left open without O_CLOEXEC (a host file, a directory fd that
    // leads out of the rootfs) must not reach the program.
    if let Err(e) = process::close_fds_on_exec(plan.preserve_fds) {
        fail_after_start(&e.to_string(), 125);
    }
    signals::reset_for_exec();
    // The seccomp filter goes last, so it constrains the program and not our setup.
    if let Err(e) = plan.security.finish() {
        fail_after_start(&e.to_string(), 125);
    }
    if plan.minimal_init {
        crate::reaper::run(&ready.program, &ready.args, &ready.env);
    }
    let err = process::exec(&ready.program, &ready.args, &ready.env);
    let code = if err == Errno::ENOENT { 127 } else { 126 };
    fail_after_start(&format!("exec {}: {err}", ready.program.display()), code);
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit only ends the process; skipping atexit handlers is intended in a child.
    unsafe { libc::_exit(code) }
}

fn fail_after_start(msg: &str, code: i32) -> ! {
    let _ = writeln!(std::io::stderr(), "ccrun: {msg}");
    exit(code);
}

/// Installs the given stdio and, for `process.terminal` with given stdio, makes fd 0
/// (a pty slave) the controlling terminal of a new session. Without given stdio the
/// terminal is made inside the container later (see [`crate::console`]).
fn attach_stdio(plan: &InitPlan) -> Result<()> {
    if let Some(fds) = plan.stdio {
        for (target, fd) in (0..).zip(fds) {
            if fd != target {
                nix::unistd::dup2(fd, target).ctx(|| format!("dup2 onto fd {target}"))?;
            }
        }
    }
    if plan.stdio.is_some() && plan.process.terminal() == Some(true) {
        crate::console::make_controlling_terminal()?;
    }
    Ok(())
}

fn setup_err(e: Error) -> (FailureKind, String) {
    (FailureKind::Setup, e.to_string())
}

fn prepare(plan: &InitPlan, chan: &Channel) -> std::result::Result<Ready, (FailureKind, String)> {
    let (msg, root_tree) = chan.recv().map_err(setup_err)?;
    if !matches!(msg, Message::Continue) {
        return Err((FailureKind::Setup, format!("unexpected message {msg:?}")));
    }
    become_root(plan).map_err(setup_err)?;
    join_namespaces(plan).map_err(setup_err)?;
    let mut hook_state = None;
    let mut before_pivot = || -> Result<()> {
        // Through the runtime's /proc, still visible: a sysctl file shows the writer's
        // namespaces whichever proc it is in, and the container's /proc/sys may be
        // read-only by now (linux.readonlyPaths).
        for (key, value) in &plan.sysctl {
            let path = crate::sysctl::proc_path(key)?;
            std::fs::write(&path, value).map_err(|e| Error::io("setting sysctl", &path, e))?;
        }
        if let (Some(hooks), Some(state)) = (&plan.hooks, &plan.hook_state) {
            let env = plan.process.env().as_deref().unwrap_or(&[]);
            hook_state = Some(runtime_hooks(chan, hooks, state, env)?);
        }
        Ok(())
    };
    rootfs::setup(&plan.rootfs, root_tree, &mut before_pivot).map_err(setup_err)?;
    set_names(plan).map_err(setup_err)?;
    let console = if plan.process.terminal() == Some(true) && plan.stdio.is_none() {
        Some(crate::console::create().map_err(setup_err)?)
    } else {
        None
    };
    crate::termsize::apply(&plan.process).map_err(setup_err)?;
    if let Some(adj) = plan.process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| setup_err(Error::io("writing", "/proc/self/oom_score_adj", e)))?;
    }
    enter_cwd(&plan.process).map_err(setup_err)?;
    let args = plan.process.args().clone().unwrap_or_default();
    let env = plan.process.env().clone().unwrap_or_default();
    let first = args
        .first()
        .ok_or((FailureKind::Setup, "process.args is empty".to_string()))?;
    let program = process::find_program(first, &env)?;
    if let Some(limits) = plan.process.rlimits() {
        process::apply_rlimits(limits).map_err(setup_err)?;
    }
    crate::sched::apply(&plan.process).map_err(setup_err)?;
    if let Some(p) = &plan.memory_policy {
        crate::sched::apply_memory_policy(p).map_err(setup_err)?;
    }
    // Until the exec, nobody in the container may open our /proc files: they lead to
    // the runtime's binary and descriptors.
    process::set_dumpable(false).map_err(setup_err)?;
    Ok(Ready {
        hook_state,
        console,
        program,
        args: process::c_strings(&args).map_err(setup_err)?,
        env: process::c_strings(&env).map_err(setup_err)?,
    })
}

/// Has the parent run the `prestart` and `createRuntime` hooks, then runs the
/// `createContainer` ones here, in the container's namespaces; returns the state for
/// `startContainer`.
fn runtime_hooks(
    chan: &Channel,
    hooks: &Hooks,
    state: &HookState,
    env: &[String],
) -> Result<HookState> {
    chan.send(&Message::CreateHooks, None)?;
    let pid = match chan.recv()?.0 {
        Message::HooksDone(pid) => pid,
        Message::Failed(_, msg) => return Err(Error::Setup(msg)),
        other => return Err(Error::Setup(format!("unexpected message {other:?}"))),
    };
    let mut state = state.clone();
    state.pid = Some(pid);
    hooks::run_in_container(Stage::CreateContainer, hooks, &state, env)?;
    state.status = crate::state::Status::Created;
    Ok(state)
}

/// In a new user namespace, become its root (the parent has written the maps by now).
fn become_root(plan: &InitPlan) -> Result<()> {
    if !plan.ns.user {
        return Ok(());
    }
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "setgid 0 in user namespace".into())?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .ctx(|| "setuid 0 in user namespace".into())?;
    // The uid change made us non-dumpable, which makes /proc/self host-root-owned and
    // so closed to us (oom_score_adj); runc restores it the same way, and `prepare`
    // clears it again once setup no longer needs /proc/self.
    process::set_dumpable(true)
}

fn join_namespaces(plan: &InitPlan) -> Result<()> {
    for (flag, path) in &plan.ns.join {
        let f = std::fs::File::open(path).map_err(|e| Error::io("opening namespace", path, e))?;
        setns(f, CloneFlags::from_bits_retain(*flag))
            .ctx(|| format!("joining namespace {}", path.display()))?;
    }
    if plan.ns.new_cgroup {
        // After the parent moved us into our cgroup, so that cgroup becomes our root.
        unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "creating cgroup namespace".into())?;
    }
    Ok(())
}

fn set_names(plan: &InitPlan) -> Result<()> {
    if let Some(name) = &plan.hostname {
        if !plan.ns.uts {
            return Err(Error::InvalidSpec(
                "hostname set without a UTS namespace".into(),
            ));
        }
        nix::unistd::sethostname(name).ctx(|| format!("sethostname {name}"))?;
    }
    if let Some(name) = &plan.domainname {
        if !plan.ns.uts {
            return Err(Error::InvalidSpec(
                "domainname set without a UTS namespace".into(),
            ));
        }
        // SAFETY: the pointer and length describe `name`'s bytes for the call.
        let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        Errno::result(ret).ctx(|| format!("setdomainname {name}"))?;
    }
    Ok(())
}

fn enter_cwd(process: &Process) -> Result<()> {
    let cwd = process.cwd();
    if let Err(e) = std::fs::create_dir_all(cwd) {
        // A missing cwd is created as Docker does; other errors surface on chdir.
        tracing::debug!("creating cwd {}: {e}", cwd.display());
    }
    nix::unistd::chdir(cwd.as_path()).ctx(|| format!("chdir to cwd {}", cwd.display()))
}

/// Blocks until `start` opens the exec fifo for reading, then signals `start` (which
/// fails if the init dies before that).
fn wait_at_gate(fifo: RawFd) -> Result<()> {
    let path = format!("/proc/self/fd/{fifo}");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening exec fifo", &path, e))?;
    f.write_all(b"0")
        .map_err(|e| Error::io("writing exec fifo", &path, e))?;
    // SAFETY: the O_PATH fd was inherited for this purpose and is not used afterwards.
    unsafe { libc::close(fifo) };
    Ok(())
}

/// Keeps an fd alive and closes it on drop (used for fds passed through the clone).
#[derive(Debug)]
pub struct InheritedFd(pub OwnedFd);

impl InheritedFd {
    /// The raw fd number the child will see.
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
