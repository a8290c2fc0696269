//! The security fields of the spec, checked from inside real containers: the five
//! capability sets in `/proc/self/status`, `noNewPrivileges`, a seccomp profile (a
//! blocked syscall failing with the profile's errno, argument conditions, the filter
//! loaded early and late, a seccomp agent answering `SCMP_ACT_NOTIFY`), `personality`,
//! the same settings in exec'd processes, and clear errors for what cannot be honoured
//! (AppArmor and SELinux on this host, a notify profile without its agent).
//! Runs without the threaded test harness because creation needs a single-threaded
//! process.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use ccrun_runtime::{signals, Container, CreateOptions, Error, ExecOptions, ExitStatus};
use ccrun_testkit::{require_root, status_field, NamedTest};
use common::{mount, pipe, read_all, Env, Guard};
use oci_spec::runtime::{
    LinuxBuilder, LinuxCapabilities, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPersonality,
    LinuxSeccomp, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

fn caps(json: &str) -> LinuxCapabilities {
    serde_json::from_str(json).expect("capabilities")
}

fn process(args: &[&str]) -> Process {
    let mut p = ProcessBuilder::default()
        .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/bin".to_string()])
        .cwd("/")
        .no_new_privileges(false)
        .build()
        .expect("process");
    p.set_rlimits(None);
    p
}

fn sh(script: &str) -> Process {
    process(&["sh", "-c", script])
}

/// What a test changes in the default container.
#[derive(Default)]
struct Setup {
    seccomp: Option<LinuxSeccomp>,
    personality: Option<LinuxPersonality>,
    mount_label: Option<String>,
}

fn spec(rootfs: &Path, p: Process, setup: Setup) -> Spec {
    let ns = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build().expect("ns"))
    .collect::<Vec<_>>();
    let mut linux = LinuxBuilder::default().namespaces(ns);
    if let Some(s) = setup.seccomp {
        linux = linux.seccomp(s);
    }
    if let Some(p) = setup.personality {
        linux = linux.personality(p);
    }
    if let Some(l) = setup.mount_label {
        linux = linux.mount_label(l);
    }
    SpecBuilder::default()
        .version("1.2.0")
        .process(p)
        .root(
            RootBuilder::default()
                .path(rootfs)
                .readonly(false)
                .build()
                .expect("root"),
        )
        .hostname("sectest")
        .mounts(vec![
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount("/dev", "tmpfs", "tmpfs", &["nosuid", "mode=755", "size=1m"]),
        ])
        .linux(linux.build().expect("linux"))
        .build()
        .expect("spec")
}

impl Env {
    fn try_create(
        &mut self,
        p: Process,
        setup: Setup,
        stdio: Option<[i32; 3]>,
    ) -> Result<Guard, Error> {
        let opts = CreateOptions {
            stdio,
            ..self.opts(spec(self.rootfs.path(), p, setup))
        };
        Container::create(opts).map(|c| Guard(Some(c)))
    }

    /// Runs `p` as the container's init; returns its exit status and output.
    fn run(&mut self, p: Process, setup: Setup) -> (ExitStatus, String) {
        let (r, w) = pipe();
        let null = File::open("/dev/null").expect("/dev/null");
        let mut g = self
            .try_create(
                p,
                setup,
                Some([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
            )
            .expect("create");
        drop(w);
        g.get_mut().start().expect("start");
        let out = read_all(r);
        let status = g.get().wait().expect("wait");
        (status, out)
    }

    /// Starts a `sleep 100` container with `p`'s settings, for exec.
    fn running(&mut self, mut p: Process, setup: Setup) -> Guard {
        p.set_args(Some(vec!["sleep".into(), "100".into()]));
        let mut g = self.try_create(p, setup, None).expect("create");
        g.get_mut().start().expect("start");
        g
    }
}

/// Execs `p` in `c`; returns its exit status and output.
fn exec(c: &Container, p: Process) -> (ExitStatus, String) {
    let (r, w) = pipe();
    let null = File::open("/dev/null").expect("/dev/null");
    let stdio = Some([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]);
    let proc = c
        .exec(ExecOptions {
            process: p,
            stdio,
            preserve_fds: 0,
        })
        .expect("exec");
    drop(w);
    let out = read_all(r);
    (proc.wait().expect("wait"), out)
}

/// The value of `field` in a `/proc/self/status` dump.
fn mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
}

const CHOWN: u32 = 0;
const KILL: u32 = 5;
const SETUID: u32 = 7;
const NET_BIND_SERVICE: u32 = 10;
const NET_RAW: u32 = 13;

const FIVE_SETS: &str = r#"{
    "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_NET_BIND_SERVICE"],
    "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
    "effective": ["CAP_CHOWN", "CAP_KILL"],
    "ambient": ["CAP_NET_BIND_SERVICE"]
}"#;

fn as_user(mut p: Process, uid: u32) -> Process {
    p.set_user(
        UserBuilder::default()
            .uid(uid)
            .gid(uid)
            .build()
            .expect("user"),
    );
    p
}

/// A non-root process keeps across execve exactly its ambient set (permitted and
/// effective become the ambient set), its inheritable and its bounding set.
fn check_five_sets(status: &str) {
    assert_eq!(
        status_field(status, "CapBnd"),
        mask(&[CHOWN, KILL, NET_RAW, SETUID, NET_BIND_SERVICE])
    );
    assert_eq!(
        status_field(status, "CapInh"),
        mask(&[KILL, NET_BIND_SERVICE])
    );
    assert_eq!(status_field(status, "CapAmb"), mask(&[NET_BIND_SERVICE]));
    assert_eq!(status_field(status, "CapPrm"), mask(&[NET_BIND_SERVICE]));
    assert_eq!(status_field(status, "CapEff"), mask(&[NET_BIND_SERVICE]));
}

fn capability_sets_reach_a_non_root_process(env: &mut Env) {
    let mut p = as_user(process(&["cat", "/proc/self/status"]), 1000);
    p.set_capabilities(Some(caps(FIVE_SETS)));
    let (status, out) = env.run(p, Setup::default());
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    check_five_sets(&out);
    assert_eq!(status_field(&out, "Uid"), "1000\t1000\t1000\t1000");
}

fn capability_sets_of_root(env: &mut Env) {
    // Root's permitted and effective sets after execve are its bounding set.
    let mut p = process(&["cat", "/proc/self/status"]);
    p.set_capabilities(Some(caps(
        r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"permitted":["CAP_CHOWN","CAP_KILL"],
            "effective":["CAP_CHOWN","CAP_KILL"]}"#,
    )));
    let (status, out) = env.run(p, Setup::default());
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert_eq!(status_field(&out, "CapBnd"), mask(&[CHOWN, KILL]));
    assert_eq!(status_field(&out, "CapEff"), mask(&[CHOWN, KILL]));
    assert_eq!(status_field(&out, "CapPrm"), mask(&[CHOWN, KILL]));
    assert_eq!(status_field(&out, "CapInh"), mask(&[]));
    assert_eq!(status_field(&out, "CapAmb"), mask(&[]));
    // runc's default spec lists ambient capabilities without an inheritable set: the
    // kernel cannot raise those, and, as runc does, they are left out instead of failing.
    let mut p = process(&["cat", "/proc/self/status"]);
    p.set_capabilities(Some(caps(
        r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"permitted":["CAP_CHOWN","CAP_KILL"],
            "effective":["CAP_CHOWN","CAP_KILL"],"ambient":["CAP_CHOWN","CAP_KILL"]}"#,
    )));
    let (status, out) = env.run(p, Setup::default());
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert_eq!(status_field(&out, "CapAmb"), mask(&[]));
    assert_eq!(status_field(&out, "CapEff"), mask(&[CHOWN, KILL]));
    // Without CAP_SYS_CHROOT, chroot fails; without CAP_DAC_OVERRIDE root cannot write
    // a file of another user that is not writable to it.
    let mut p =
        sh("chroot / true && echo chroot-allowed; echo x >/rootfile-other 2>&1 || echo denied");
    p.set_capabilities(Some(caps(
        r#"{"bounding":["CAP_CHOWN"],"effective":["CAP_CHOWN"],"permitted":["CAP_CHOWN"]}"#,
    )));
    let other = env.rootfs.path().join("rootfile-other");
    std::fs::write(&other, "").expect("write");
    nix::unistd::chown(&other, Some(1000.into()), Some(1000.into())).expect("chown");
    ccrun_testkit::set_mode(&other, 0o644);
    let (_, out) = env.run(p, Setup::default());
    assert!(!out.contains("chroot-allowed"), "{out}");
    assert!(out.contains("denied"), "{out}");
}

fn no_capabilities_field_means_none(env: &mut Env) {
    let mut p = process(&["cat", "/proc/self/status"]);
    p.set_capabilities(None);
    let (_, out) = env.run(p, Setup::default());
    assert_eq!(status_field(&out, "CapEff"), mask(&[]));
    assert_eq!(status_field(&out, "CapBnd"), mask(&[]));
}

fn exec_gets_its_own_capabilities(env: &mut Env) {
    let mut p = process(&["true"]);
    p.set_capabilities(Some(caps(
        r#"{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}"#,
    )));
    let g = env.running(p, Setup::default());
    let mut e = as_user(process(&["cat", "/proc/self/status"]), 1000);
    e.set_capabilities(Some(caps(FIVE_SETS)));
    e.set_no_new_privileges(Some(true));
    let (status, out) = exec(g.get(), e);
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    check_five_sets(&out);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");
}

fn no_new_privileges(env: &mut Env) {
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let mut p = process(&["cat", "/proc/self/status"]);
        p.set_no_new_privileges(Some(nnp));
        let (_, out) = env.run(p, Setup::default());
        assert_eq!(status_field(&out, "NoNewPrivs"), want);
    }
}

/// Allows everything but: mkdir (EXDEV), chmod to a mode with all of o+rwx set
/// (MASKED_EQ, ENOTTY) and sethostname (EPERM, the default errno).
const PROFILE: &str = r#"{
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat", "no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18},
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 25,
         "args": [{"index": 1, "value": 7, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 25,
         "args": [{"index": 2, "value": 7, "valueTwo": 7, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}
    ]
}"#;

const SECCOMP_SCRIPT: &str = "grep Seccomp: /proc/self/status; \
     f=/tmp/f$$; mkdir /tmp/d 2>&1; touch $f; chmod 755 $f && echo chmod-755-ok; \
     chmod 777 $f 2>&1; rm $f; hostname other 2>&1; true";

fn check_seccomp_output(out: &str) {
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Invalid cross-device link"), "mkdir: {out}");
    assert!(out.contains("chmod-755-ok"), "{out}");
    assert!(
        out.contains("Not a tty") || out.contains("Inappropriate ioctl"),
        "chmod 777: {out}"
    );
    assert!(out.contains("Operation not permitted"), "hostname: {out}");
}

fn seccomp_profile_blocks_with_its_errno(env: &mut Env) {
    // Loaded late (no_new_privs) and early (neither no_new_privs nor CAP_SYS_ADMIN,
    // root with a few capabilities; and a non-root user without any).
    let cases: [(bool, Option<u32>); 3] = [(true, None), (false, None), (false, Some(1000))];
    for (nnp, user) in cases {
        let mut p = sh(SECCOMP_SCRIPT);
        p.set_no_new_privileges(Some(nnp));
        p.set_capabilities(Some(caps(
            r#"{"bounding":["CAP_CHOWN","CAP_FOWNER"],"effective":["CAP_CHOWN","CAP_FOWNER"],"permitted":["CAP_CHOWN","CAP_FOWNER"]}"#,
        )));
        if let Some(uid) = user {
            p = as_user(p, uid);
        }
        let setup = Setup {
            seccomp: Some(serde_json::from_str(PROFILE).expect("profile")),
            ..Setup::default()
        };
        let (status, out) = env.run(p, setup);
        assert_eq!(status, ExitStatus::Exited(0), "{out}");
        check_seccomp_output(&out);
    }
}

fn exec_gets_the_containers_seccomp_filter(env: &mut Env) {
    let setup = Setup {
        seccomp: Some(serde_json::from_str(PROFILE).expect("profile")),
        ..Setup::default()
    };
    let g = env.running(process(&["true"]), setup);
    let (status, out) = exec(g.get(), sh(SECCOMP_SCRIPT));
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    check_seccomp_output(&out);
}

fn seccomp_kill_process(env: &mut Env) {
    let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "syscalls":[{"names":["uname"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#;
    let setup = Setup {
        seccomp: Some(serde_json::from_str(profile).expect("profile")),
        ..Setup::default()
    };
    let (status, out) = env.run(process(&["uname"]), setup);
    assert_eq!(
        status,
        ExitStatus::Signaled(nix::sys::signal::Signal::SIGSYS),
        "{out}"
    );
}

/// Receives the agent's message: the container process state and the notify fd.
fn receive_from_runtime(conn: &UnixStream) -> (serde_json::Value, OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = vec![0u8; 8192];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let mut fd = None;
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS just gave us this fd.
            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
        }
    }
    let n = msg.bytes;
    let json = serde_json::from_slice(&buf[..n]).expect("state json");
    (json, fd.expect("notify fd"))
}

fn seccomp_notify_reaches_the_agent(env: &mut Env) {
    use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind");
    let profile = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"{}","listenerMetadata":"hello",
            "syscalls":[{{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_NOTIFY"}}]}}"#,
        sock.display()
    );
    let setup = Setup {
        seccomp: Some(serde_json::from_str(&profile).expect("profile")),
        ..Setup::default()
    };
    let (r, w) = pipe();
    let null = File::open("/dev/null").expect("/dev/null");
    let mut p = sh("mkdir /tmp/agent-made 2>&1; echo done");
    p.set_no_new_privileges(Some(true));
    let mut g = env
        .try_create(
            p,
            setup,
            Some([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
        )
        .expect("create");
    drop(w);
    // The runtime connected during create.
    let (conn, _) = listener.accept().expect("accept");
    g.get_mut().start().expect("start");
    let (state, notify_fd) = receive_from_runtime(&conn);
    let pid = g.get().pid();
    assert_eq!(state["fds"], serde_json::json!(["seccompFd"]), "{state}");
    assert_eq!(state["pid"], pid, "{state}");
    assert_eq!(state["metadata"], "hello", "{state}");
    assert_eq!(state["state"]["id"], g.get().id(), "{state}");
    assert_eq!(state["state"]["pid"], pid, "{state}");
    // One message per connection: the runtime ended it.
    let mut rest = Vec::new();
    (&conn).read_to_end(&mut rest).expect("read");
    assert!(rest.is_empty());
    // The agent answers mkdir with EXDEV.
    let req = ScmpNotifReq::receive(notify_fd.as_raw_fd()).expect("notification");
    let name = req.data.syscall.get_name().expect("syscall name");
    assert!(name.starts_with("mkdir"), "{name}");
    ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
        .respond(notify_fd.as_raw_fd())
        .expect("respond");
    let out = read_all(r);
    assert!(out.contains("Invalid cross-device link"), "{out}");
    assert!(out.contains("done"), "{out}");
    assert_eq!(g.get().wait().expect("wait"), ExitStatus::Exited(0));
    assert!(!env.rootfs.path().join("tmp/agent-made").exists());
    drop(g);

    // A process exec'd into such a container reaches the agent too.
    let setup = Setup {
        seccomp: Some(serde_json::from_str(&profile).expect("profile")),
        ..Setup::default()
    };
    let mut p = process(&["sleep", "100"]);
    p.set_no_new_privileges(Some(true));
    let g = env.running(p, setup);
    let (conn, _) = listener.accept().expect("accept");
    let (state, _init_fd) = receive_from_runtime(&conn);
    assert_eq!(state["pid"], g.get().pid(), "{state}");
    let (r, w) = pipe();
    let mut e = sh("mkdir /tmp/exec-made 2>&1; echo done");
    e.set_no_new_privileges(Some(true));
    let proc = g
        .get()
        .exec(ExecOptions {
            process: e,
            stdio: Some([null.as_raw_fd(), w.as_raw_fd(), w.as_raw_fd()]),
            preserve_fds: 0,
        })
        .expect("exec");
    drop(w);
    // Reaped even if an assertion fails: a zombie in the container's pid namespace
    // would keep its init from dying, and the guard waits for the init.
    let reaper = Reap(proc.pid);
    let (conn, _) = listener.accept().expect("accept");
    let (state, notify_fd) = receive_from_runtime(&conn);
    assert_eq!(state["pid"], proc.pid, "{state}");
    assert_eq!(state["state"]["status"], "running", "{state}");
    // From sh's child running mkdir.
    let req = ScmpNotifReq::receive(notify_fd.as_raw_fd()).expect("notification");
    ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
        .respond(notify_fd.as_raw_fd())
        .expect("respond");
    let out = read_all(r);
    assert!(out.contains("Invalid cross-device link"), "{out}");
    std::mem::forget(reaper);
    assert_eq!(proc.wait().expect("wait"), ExitStatus::Exited(0));
}

/// Kills and reaps an exec'd process when dropped.
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = signals::wait_for(self.0);
    }
}

fn personality_linux32(env: &mut Env) {
    let setup = || Setup {
        personality: Some(serde_json::from_str(r#"{"domain":"LINUX32"}"#).expect("personality")),
        ..Setup::default()
    };
    let (status, out) = env.run(process(&["uname", "-m"]), setup());
    assert_eq!(status, ExitStatus::Exited(0), "{out}");
    assert_eq!(out.trim(), "i686");
    let g = env.running(process(&["true"]), setup());
    assert_eq!(exec(g.get(), process(&["uname", "-m"])).1.trim(), "i686");
    let (_, out) = env.run(process(&["uname", "-m"]), Setup::default());
    assert_eq!(out.trim(), std::env::consts::ARCH);
}

fn unsupported_settings_are_clear_errors(env: &mut Env) {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    assert!(
        !apparmor && !selinux,
        "this test expects a host without AppArmor and SELinux"
    );
    let expect_err = |res: Result<Guard, Error>, needle: &str| match res {
        Err(Error::InvalidSpec(msg)) => assert!(msg.contains(needle), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("created despite {needle}"),
    };
    let mut p = process(&["true"]);
    p.set_apparmor_profile(Some("docker-default".into()));
    expect_err(
        env.try_create(p, Setup::default(), None),
        "AppArmor is not enabled",
    );
    let mut p = process(&["true"]);
    p.set_selinux_label(Some("system_u:system_r:container_t:s0".into()));
    expect_err(
        env.try_create(p, Setup::default(), None),
        "SELinux is not enabled",
    );
    let setup = Setup {
        mount_label: Some("system_u:object_r:container_file_t:s0".into()),
        ..Setup::default()
    };
    expect_err(
        env.try_create(process(&["true"]), setup, None),
        "mountLabel",
    );
    let notify = |listener: &str| Setup {
        seccomp: Some(
            serde_json::from_str(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW",{listener}
                    "syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
            ))
            .expect("profile"),
        ),
        ..Setup::default()
    };
    expect_err(
        env.try_create(process(&["true"]), notify(""), None),
        "listenerPath",
    );
    match env.try_create(
        process(&["true"]),
        notify(r#""listenerPath":"/nonexistent/agent.sock","#),
        None,
    ) {
        Err(e) => assert!(e.to_string().contains("seccomp agent"), "{e}"),
        Ok(_) => panic!("created without its seccomp agent"),
    }
    let setup = Setup {
        personality: Some(
            serde_json::from_str(r#"{"domain":"LINUX","flags":["NO_SUCH_FLAG"]}"#).expect("p"),
        ),
        ..Setup::default()
    };
    expect_err(
        env.try_create(process(&["true"]), setup, None),
        "NO_SUCH_FLAG",
    );
    // Unknown capability names are refused when the spec is read.
    let err = serde_json::from_str::<LinuxCapabilities>(r#"{"bounding":["CAP_NO_SUCH"]}"#)
        .expect_err("unknown capability");
    assert!(err.to_string().contains("CAP_NO_SUCH"), "{err}");
}

fn main() {
    require_root();
    let mut env = Env::busybox("sec");
    let tests: &[NamedTest<Env>] = &[
        (
            "capability_sets_reach_a_non_root_process",
            capability_sets_reach_a_non_root_process,
        ),
        ("capability_sets_of_root", capability_sets_of_root),
        (
            "no_capabilities_field_means_none",
            no_capabilities_field_means_none,
        ),
        (
            "exec_gets_its_own_capabilities",
            exec_gets_its_own_capabilities,
        ),
        ("no_new_privileges", no_new_privileges),
        (
            "seccomp_profile_blocks_with_its_errno",
            seccomp_profile_blocks_with_its_errno,
        ),
        (
            "exec_gets_the_containers_seccomp_filter",
            exec_gets_the_containers_seccomp_filter,
        ),
        ("seccomp_kill_process", seccomp_kill_process),
        (
            "seccomp_notify_reaches_the_agent",
            seccomp_notify_reaches_the_agent,
        ),
        ("personality_linux32", personality_linux32),
        (
            "unsupported_settings_are_clear_errors",
            unsupported_settings_are_clear_errors,
        ),
    ];
    let mut tally = ccrun_testkit::run_in_process(tests, &mut env);
    common::check_leftovers(&mut tally, &env.id_prefix, env.state.path());
    drop(env);
    tally.finish();
}
