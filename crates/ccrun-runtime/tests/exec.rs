//! `Container::exec` against real containers: the exec'd process joins the container's
//! namespaces (with and without a user and network namespace), cgroup and root, takes
//! the requested identity, environment and working directory, passes its exit status
//! through, gets a terminal from the container's devpts when asked, and failures come
//! back typed. Runs without the threaded test harness because exec needs a
//! single-threaded process.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use ccrun_runtime::{
    signals, Container, CreateOptions, Error, ExecOptions, ExecProcess, ExitStatus, Status,
    ANNOTATION_ROOTFS_IDMAP,
};
use ccrun_testkit::{require_root, set_mode, NamedTest};
use common::{id_map, mount, pipe, read_all, Env, Guard};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Process, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder, UserBuilder,
};

const HOSTNAME: &str = "exectest";
/// Host uid/gid that the container's 0 maps to in the user namespace case.
const HOST_BASE: u32 = 100_000;

/// A `sleep 100` container with pid, mount, uts and ipc namespaces, plus user (with
/// uid/gid maps and an idmapped rootfs), network and cgroup namespaces when `isolated`.
fn spec(rootfs: &Path, args: &[&str], isolated: bool) -> Spec {
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ];
    if isolated {
        kinds.extend([
            LinuxNamespaceType::User,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Cgroup,
        ]);
    }
    let ns = kinds
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build().expect("ns"))
        .collect::<Vec<_>>();
    let mut linux = LinuxBuilder::default().namespaces(ns);
    let mut annotations = std::collections::HashMap::new();
    if isolated {
        linux = linux
            .uid_mappings(vec![id_map(0, HOST_BASE, 65536)])
            .gid_mappings(vec![id_map(0, HOST_BASE, 65536)]);
        annotations.insert(ANNOTATION_ROOTFS_IDMAP.to_string(), "true".to_string());
    }
    let mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "mode=755", "size=1m"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
    ];
    SpecBuilder::default()
        .version("1.2.0")
        .process(
            ProcessBuilder::default()
                .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .env(vec!["PATH=/bin".to_string()])
                .cwd("/")
                .build()
                .expect("process"),
        )
        .root(RootBuilder::default().path(rootfs).build().expect("root"))
        .hostname(HOSTNAME)
        .mounts(mounts)
        .linux(linux.build().expect("linux"))
        .annotations(annotations)
        .build()
        .expect("spec")
}

impl Env {
    /// Creates a container; it is force-deleted (and its init reaped) when the guard drops.
    fn create(&mut self, args: &[&str], isolated: bool) -> Guard {
        self.create_with(args, isolated, false)
    }

    fn create_with(&mut self, args: &[&str], isolated: bool, no_pivot: bool) -> Guard {
        let opts = CreateOptions {
            no_pivot,
            ..self.opts(spec(self.rootfs.path(), args, isolated))
        };
        Guard(Some(Container::create(opts).expect("create")))
    }

    /// Creates and starts a `sleep 100` container.
    fn running(&mut self, isolated: bool) -> Guard {
        let mut g = self.create(&["sleep", "100"], isolated);
        g.get_mut().start().expect("start");
        g
    }
}

fn process(args: &[&str]) -> Process {
    ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string(), "GREETING=hello".to_string()])
        .cwd("/")
        .build()
        .expect("process")
}

fn as_user(mut p: Process, uid: u32, gid: u32, extra: Vec<u32>) -> Process {
    p.set_user(
        UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .additional_gids(extra)
            .build()
            .expect("user"),
    );
    p
}

/// Execs `p` with stdin from `/dev/null` and stdout+stderr captured.
fn start(c: &Container, p: Process) -> Result<(ExecProcess, OwnedFd), Error> {
    let (r, w) = pipe();
    let null = File::open("/dev/null").expect("/dev/null");
    let stdio = Some([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]);
    let proc = c.exec(ExecOptions {
        process: p,
        stdio,
        preserve_fds: 0,
    })?;
    Ok((proc, r))
}

/// Execs `p`, returning its exit status and output.
fn run(c: &Container, p: Process) -> (ExitStatus, String) {
    let (proc, r) = start(c, p).expect("exec");
    let out = read_all(r);
    (proc.wait().expect("wait"), out)
}

/// Execs `p` and expects success; returns the trimmed output.
fn output(c: &Container, p: Process) -> String {
    let (status, out) = run(c, p);
    assert_eq!(status, ExitStatus::Exited(0), "output: {out}");
    out.trim().to_string()
}

fn sh(script: &str) -> Process {
    process(&["sh", "-c", script])
}

fn ns_id(pid: i32, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .map(|l| l.display().to_string())
        .unwrap_or_else(|e| format!("<{e}>"))
}

/// Starts a long-running exec and checks from the host that it shares the init's
/// namespaces and cgroups; returns its host pid (killed and reaped afterwards).
fn check_membership(c: &Container, p: Process, check: impl FnOnce(i32)) {
    let (proc, r) = start(c, p).expect("exec");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let init = c.pid();
        for name in ["mnt", "pid", "uts", "ipc", "net", "user", "cgroup", "time"] {
            assert_eq!(
                ns_id(proc.pid, name),
                ns_id(init, name),
                "{name} namespace of the exec process"
            );
        }
        let own = std::fs::read_to_string(format!("/proc/{}/cgroup", proc.pid)).expect("cgroup");
        let init_cg = std::fs::read_to_string(format!("/proc/{init}/cgroup")).expect("cgroup");
        assert_eq!(own, init_cg, "cgroups of the exec process and the init");
        assert!(
            own.contains(&format!(":/ccrun/{}\n", c.id())),
            "not in the container's cgroup: {own}"
        );
        let procs = c.cgroup().expect("cgroup").procs().expect("procs");
        assert!(procs.contains(&proc.pid), "{} not in {procs:?}", proc.pid);
        check(proc.pid);
    }));
    let _ = kill(Pid::from_raw(proc.pid), Signal::SIGKILL);
    assert_eq!(
        proc.wait().expect("wait"),
        ExitStatus::Signaled(Signal::SIGKILL)
    );
    drop(r);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The checks shared by both kinds of containers.
fn check_common(c: &Container) {
    let cmdline = output(c, process(&["cat", "/proc/1/cmdline"])).replace('\0', " ");
    assert_eq!(
        cmdline.trim(),
        "sleep 100",
        "PID 1 seen by the exec process"
    );
    assert_eq!(output(c, process(&["hostname"])), HOSTNAME);
    assert_eq!(output(c, process(&["cat", "/rootfile"])), "owned by root");
    assert_eq!(output(c, sh("echo $GREETING")), "hello");
    let mut in_home = process(&["pwd"]);
    in_home.set_cwd("/home/user".into());
    assert_eq!(output(c, in_home), "/home/user");
    let ids = output(c, as_user(sh("id -u; id -g; id -G"), 1000, 1000, vec![10]));
    assert_eq!(ids, "1000\n1000\n1000 10");
    assert_eq!(run(c, sh("exit 7")).0, ExitStatus::Exited(7));
    // stdin is the given fd.
    let (r, w) = pipe();
    let (out_r, out_w) = pipe();
    let proc = c
        .exec(ExecOptions {
            process: process(&["cat"]),
            stdio: Some([r.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()]),
            preserve_fds: 0,
        })
        .expect("exec cat");
    drop((r, out_w));
    nix::unistd::write(&w, b"through stdin").expect("write");
    drop(w);
    assert_eq!(read_all(out_r), "through stdin");
    assert_eq!(proc.wait().expect("wait"), ExitStatus::Exited(0));
}

fn exec_joins_a_plain_container(env: &mut Env) {
    let g = env.running(false);
    let c = g.get();
    check_common(c);
    check_membership(c, process(&["sleep", "100"]), |_| {});
}

fn exec_joins_user_and_network_namespaces(env: &mut Env) {
    let g = env.running(true);
    // As another process (e.g. `ccrun-oci exec`) would find it.
    let c = Container::load(env.state.path(), g.get().id()).expect("load");
    check_common(&c);
    let devices = output(&c, process(&["cat", "/proc/net/dev"]));
    let names: Vec<&str> = devices
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .collect();
    assert_eq!(names, ["lo"], "{devices}");
    let cgroups = output(&c, process(&["cat", "/proc/self/cgroup"]));
    assert!(
        cgroups.lines().all(|l| l.ends_with(":/")),
        "cgroup namespace not joined: {cgroups}"
    );
    assert_eq!(output(&c, sh("stat -c %u:%g /rootfile")), "0:0");
    check_membership(
        &c,
        as_user(process(&["sleep", "100"]), 1000, 1000, vec![]),
        |pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            let uid_line = status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .expect("Uid line");
            let host_uid = (HOST_BASE + 1000).to_string();
            assert!(
                uid_line.split_whitespace().skip(1).all(|u| u == host_uid),
                "{uid_line}"
            );
        },
    );
}

fn exec_failures_are_typed(env: &mut Env) {
    let not_exec = env.rootfs.path().join("notexec");
    std::fs::write(&not_exec, "#!/bin/sh\necho never\n").expect("write");
    set_mode(&not_exec, 0o644);
    let g = env.running(false);
    let c = g.get();
    let err = start(c, process(&["definitely-missing"])).map(drop);
    assert!(
        matches!(&err, Err(Error::CommandNotFound(m)) if m.contains("definitely-missing")),
        "{err:?}"
    );
    let err = start(c, process(&["/notexec"])).map(drop);
    assert!(matches!(err, Err(Error::NotExecutable(_))), "{err:?}");
    let mut bad_cwd = process(&["true"]);
    bad_cwd.set_cwd("/no/such/dir".into());
    let err = start(c, bad_cwd).map(drop);
    assert!(
        matches!(&err, Err(Error::Setup(m)) if m.contains("/no/such/dir")),
        "{err:?}"
    );
    let err = start(c, process(&[])).map(drop);
    assert!(matches!(err, Err(Error::InvalidSpec(_))), "{err:?}");
    // The container is unharmed.
    assert_eq!(output(c, process(&["true"])), "");
}

fn tty_output(c: &Container) -> String {
    let mut p = process(&["tty"]);
    p.set_terminal(Some(true));
    let proc = c
        .exec(ExecOptions {
            process: p,
            stdio: None,
            preserve_fds: 0,
        })
        .expect("exec with terminal");
    let master = File::from(proc.console.expect("console"));
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    // Read until the slave side is gone (EIO).
    while let Ok(n @ 1..) = (&master).read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        signals::wait_for(proc.pid).expect("wait"),
        ExitStatus::Exited(0)
    );
    String::from_utf8_lossy(&out).trim().to_string()
}

fn exec_with_terminal(env: &mut Env) {
    for isolated in [false, true] {
        let g = env.running(isolated);
        let tty = tty_output(g.get());
        let n = tty
            .strip_prefix("/dev/pts/")
            .unwrap_or_else(|| panic!("{tty:?}"));
        assert!(n.parse::<u32>().is_ok(), "{tty:?}");
    }
}

fn exec_into_no_pivot_container(env: &mut Env) {
    // The init's root is a chroot, not its mount namespace's root.
    let mut g = env.create_with(&["sleep", "100"], false, true);
    g.get_mut().start().expect("start");
    let c = g.get();
    assert_eq!(output(c, process(&["cat", "/rootfile"])), "owned by root");
    assert_eq!(output(c, process(&["hostname"])), HOSTNAME);
}

fn exec_into_created_container(env: &mut Env) {
    let g = env.create(&["sleep", "100"], false);
    let c = g.get();
    assert_eq!(c.state.status, Status::Created);
    assert_eq!(output(c, process(&["hostname"])), HOSTNAME);
}

fn exec_into_stopped_container_is_refused(env: &mut Env) {
    let mut g = env.create(&["true"], false);
    g.get_mut().start().expect("start");
    assert_eq!(g.get().wait().expect("wait"), ExitStatus::Exited(0));
    let err = start(g.get(), process(&["true"])).map(drop);
    assert!(matches!(err, Err(Error::WrongState { .. })), "{err:?}");
}

fn main() {
    require_root();
    let mut env = Env::busybox("exec");
    let tests: &[NamedTest<Env>] = &[
        ("exec_joins_a_plain_container", exec_joins_a_plain_container),
        (
            "exec_joins_user_and_network_namespaces",
            exec_joins_user_and_network_namespaces,
        ),
        ("exec_failures_are_typed", exec_failures_are_typed),
        ("exec_with_terminal", exec_with_terminal),
        ("exec_into_no_pivot_container", exec_into_no_pivot_container),
        ("exec_into_created_container", exec_into_created_container),
        (
            "exec_into_stopped_container_is_refused",
            exec_into_stopped_container_is_refused,
        ),
    ];
    let mut tally = ccrun_testkit::run_in_process(tests, &mut env);
    common::check_leftovers(&mut tally, &env.id_prefix, env.state.path());
    // `exit` skips destructors: remove the rootfs and state dir first.
    drop(env);
    tally.finish();
}
