//! The runtime spec honoured from the container's point of view: hooks in order with
//! their state, hook failures cleaning up, namespaces joined by path (PID, user), time
//! namespace offsets, mount propagation, `nosymfollow`, idmapped bind mounts, and the
//! refusals (unknown fields, unsupported fields, host-wide sysctls). Runs without the
//! threaded test harness because container creation needs a single-threaded process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccrun_cgroups::{Cgroup, Layout};
use ccrun_runtime::{Container, Error, ExitStatus};
use ccrun_testkit::{require_root, NamedTest};
use common::{id_map, mount as mount_entry, Env};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{
    Hook, HookBuilder, Hooks, HooksBuilder, LinuxBuilder, LinuxIdMapping, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxTimeOffsetBuilder, Mount, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder,
};

fn bind(dest: &str, src: &Path, opts: &[&str]) -> Mount {
    mount_entry(dest, "bind", &src.display().to_string(), opts)
}

/// A namespace entry: new when `path` is `None`.
fn ns(kind: LinuxNamespaceType, path: Option<String>) -> oci_spec::runtime::LinuxNamespace {
    let b = LinuxNamespaceBuilder::default().typ(kind);
    match path {
        Some(p) => b.path(p).build().expect("ns"),
        None => b.build().expect("ns"),
    }
}

/// What a test container is made of, beyond the defaults (new PID, mount, UTS, IPC
/// namespaces, /proc, the script run by `sh -c`).
#[derive(Default)]
struct Setup {
    script: String,
    mounts: Vec<Mount>,
    /// Namespaces replacing the defaults, when not empty.
    namespaces: Vec<oci_spec::runtime::LinuxNamespace>,
    uid_maps: Vec<LinuxIdMapping>,
    gid_maps: Vec<LinuxIdMapping>,
    hooks: Option<Hooks>,
    sysctl: Vec<(String, String)>,
    rootfs_propagation: Option<String>,
    time_offsets: Vec<(String, i64)>,
    scheduler: Option<oci_spec::runtime::Scheduler>,
    io_priority: Option<oci_spec::runtime::LinuxIOPriority>,
    /// A terminal of this size (rows, columns).
    terminal: Option<(u64, u64)>,
}

impl Setup {
    fn spec(self, rootfs: &Path) -> Spec {
        let namespaces = if self.namespaces.is_empty() {
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Ipc,
            ]
            .into_iter()
            .map(|t| ns(t, None))
            .collect()
        } else {
            self.namespaces
        };
        let mut mounts = vec![mount_entry(
            "/proc",
            "proc",
            "proc",
            &["nosuid", "noexec", "nodev"],
        )];
        mounts.extend(self.mounts);
        let mut linux = LinuxBuilder::default().namespaces(namespaces).sysctl(
            self.sysctl
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
        if !self.uid_maps.is_empty() {
            linux = linux
                .uid_mappings(self.uid_maps)
                .gid_mappings(self.gid_maps);
        }
        if let Some(p) = self.rootfs_propagation {
            linux = linux.rootfs_propagation(p);
        }
        if !self.time_offsets.is_empty() {
            let offsets = self
                .time_offsets
                .into_iter()
                .map(|(clock, secs)| {
                    let o = LinuxTimeOffsetBuilder::default()
                        .secs(secs)
                        .build()
                        .expect("offset");
                    (clock, o)
                })
                .collect::<std::collections::HashMap<_, _>>();
            linux = linux.time_offsets(offsets);
        }
        let mut process = ProcessBuilder::default()
            .args(vec!["sh".to_string(), "-c".to_string(), self.script])
            .env(vec!["PATH=/bin".to_string()])
            .cwd("/")
            .build()
            .expect("process");
        process.set_scheduler(self.scheduler);
        process.set_io_priority(self.io_priority);
        if let Some((rows, cols)) = self.terminal {
            process.set_terminal(Some(true));
            process.set_console_size(Some(
                oci_spec::runtime::BoxBuilder::default()
                    .height(rows)
                    .width(cols)
                    .build()
                    .expect("console size"),
            ));
        }
        let mut spec = SpecBuilder::default()
            .version("1.2.0")
            .process(process)
            .root(RootBuilder::default().path(rootfs).build().expect("root"))
            .mounts(mounts)
            .linux(linux.build().expect("linux"))
            .build()
            .expect("spec");
        spec.set_hooks(self.hooks);
        // The builder starts from oci-spec's default spec, which names a hostname.
        spec.set_hostname(None);
        spec
    }
}

impl Env {
    /// Creates mount points in the (host-root-owned) rootfs, which the root of a user
    /// namespace could not create.
    fn mount_points(&self, dirs: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(self.rootfs.path().join(d)).expect("mount point");
        }
    }

    /// Creates, starts and waits for a container; it is deleted whatever happens.
    fn run(&mut self, setup: Setup) -> ExitStatus {
        let (started, status) = self.try_run(setup);
        started.expect("start");
        status.expect("wait")
    }

    /// Like `run`, for a start that may fail: what start and wait returned.
    fn try_run(&mut self, setup: Setup) -> (Result<(), Error>, Result<ExitStatus, Error>) {
        let spec = setup.spec(self.rootfs.path());
        let opts = self.opts(spec);
        let mut c = Container::create(opts).expect("create");
        let started = c.start();
        let status = c.wait();
        Container::load(self.state.path(), c.id())
            .expect("load")
            .delete(true)
            .expect("delete");
        (started, status)
    }

    /// Creates and starts a long-running container (`sleep 30`), for others to join.
    fn sleeper(&mut self, setup: Setup) -> Running {
        let spec = Setup {
            script: "exec sleep 30".into(),
            ..setup
        }
        .spec(self.rootfs.path());
        let opts = self.opts(spec);
        let mut c = Container::create(opts).expect("create sleeper");
        c.start().expect("start sleeper");
        Running {
            c: Some(c),
            state_root: self.state.path().to_path_buf(),
        }
    }
}

/// A running container that is force-deleted (and reaped) on drop.
struct Running {
    c: Option<Container>,
    state_root: PathBuf,
}

impl Running {
    fn pid(&self) -> i32 {
        self.c.as_ref().map_or(0, |c| c.pid())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.c.take() {
            if let Ok(loaded) = Container::load(&self.state_root, c.id()) {
                let _ = loaded.delete(true);
            }
            let _ = c.wait();
        }
    }
}

/// A host directory the container writes its findings into (world-writable so a user
/// namespace's root may write too).
fn out_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("out dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("reading {name}: {e}"))
        .trim()
        .to_string()
}

/// Cgroup directories of container `id` that still exist.
fn leftover_cgroups(id: &str) -> Vec<PathBuf> {
    let layout = Layout::detect().expect("layout");
    match Cgroup::open(&layout, &ccrun_runtime::default_cgroup_path(id)) {
        Ok(cg) => cg.paths().into_iter().filter(|p| p.exists()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A hook running `sh -c SCRIPT NAME LOG`, which appends `NAME STATUS PID WHERE` to LOG
/// (WHERE is `container` when the container's /rootfile is visible).
fn logging_hook(name: &str, log: &str, timeout: Option<i64>) -> Hook {
    let script = r#"s=$(cat)
st=$(echo "$s" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
pid=$(echo "$s" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
id=$(echo "$s" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
if [ -e /rootfile ]; then w=container; else w=host; fi
echo "$0 $st $pid $w $id" >> "$1""#;
    let mut b = HookBuilder::default().path("/bin/sh").args(vec![
        "sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        name.to_string(),
        log.to_string(),
    ]);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().expect("hook")
}

fn shell_hook(script: &str, timeout: Option<i64>) -> Hook {
    let mut b = HookBuilder::default().path("/bin/sh").args(vec![
        "sh".to_string(),
        "-c".to_string(),
        script.to_string(),
    ]);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().expect("hook")
}

fn hooks_run_in_order_with_their_state(env: &mut Env) {
    assert!(
        !Path::new("/rootfile").exists(),
        "the host must not have /rootfile"
    );
    let out = out_dir();
    let log = out.path().join("log").display().to_string();
    let hooks = HooksBuilder::default()
        .prestart(vec![logging_hook("prestart", &log, Some(10))])
        .create_runtime(vec![logging_hook("createRuntime", &log, Some(10))])
        .create_container(vec![logging_hook("createContainer", &log, None)])
        .start_container(vec![logging_hook("startContainer", "/out/log", None)])
        .poststart(vec![logging_hook("poststart", &log, None)])
        .poststop(vec![logging_hook("poststop", &log, None)])
        .build()
        .expect("hooks");
    let spec = Setup {
        // The program runs after startContainer: its line is already there.
        script: "grep -c startContainer /out/log > /out/program".into(),
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        hooks: Some(hooks),
        ..Default::default()
    }
    .spec(env.rootfs.path());
    let opts = env.opts(spec);
    let id = opts.id.clone();
    let mut c = Container::create(opts).expect("create");
    let pid = c.pid();
    let after_create = read(out.path(), "log");
    c.start().expect("start");
    assert_eq!(c.wait().expect("wait"), ExitStatus::Exited(0));
    Container::load(env.state.path(), &id)
        .expect("load")
        .delete(false)
        .expect("delete");

    let expected = [
        format!("prestart creating {pid} host {id}"),
        format!("createRuntime creating {pid} host {id}"),
        format!("createContainer creating {pid} host {id}"),
        format!("startContainer created {pid} container {id}"),
        format!("poststart running {pid} host {id}"),
        format!("poststop stopped  host {id}"),
    ];
    assert_eq!(after_create, expected[..3].join("\n"));
    assert_eq!(read(out.path(), "log"), expected.join("\n"));
    assert_eq!(read(out.path(), "program"), "1");
}

fn failing_create_hooks_leave_nothing_behind(env: &mut Env) {
    for (name, hooks, wanted) in [
        (
            "failing createRuntime",
            HooksBuilder::default()
                .create_runtime(vec![shell_hook("exit 3", None)])
                .build()
                .expect("hooks"),
            "createRuntime hook #0",
        ),
        (
            "slow createContainer",
            HooksBuilder::default()
                .create_container(vec![shell_hook("sleep 20", Some(1))])
                .build()
                .expect("hooks"),
            "timed out after 1s",
        ),
    ] {
        let spec = Setup {
            script: "true".into(),
            hooks: Some(hooks),
            ..Default::default()
        }
        .spec(env.rootfs.path());
        let opts = env.opts(spec);
        let id = opts.id.clone();
        let begun = Instant::now();
        let err = Container::create(opts).expect_err(name).to_string();
        assert!(err.contains(wanted), "{name}: {err}");
        assert!(begun.elapsed() < Duration::from_secs(10), "{name}");
        assert!(!env.state.path().join(&id).exists(), "{name}: state left");
        assert_eq!(leftover_cgroups(&id), Vec::<PathBuf>::new(), "{name}");
    }
}

/// As runc: `start` has returned when the hook runs; the failure ends the container
/// before its program runs (the init's setup-failure status, 125).
fn failing_start_container_hook_ends_the_container(env: &mut Env) {
    let hooks = HooksBuilder::default()
        .start_container(vec![shell_hook("exit 1", None)])
        .build()
        .expect("hooks");
    let (started, status) = env.try_run(Setup {
        script: "exit 0".into(),
        hooks: Some(hooks),
        ..Default::default()
    });
    started.expect("start returns despite the hook");
    assert_eq!(status.expect("wait"), ExitStatus::Exited(125));
}

fn failing_poststart_and_poststop_hooks_are_warnings(env: &mut Env) {
    let hooks = HooksBuilder::default()
        .poststart(vec![shell_hook("exit 1", None)])
        .poststop(vec![shell_hook("exit 1", None)])
        .build()
        .expect("hooks");
    let spec = Setup {
        script: "exit 3".into(),
        hooks: Some(hooks),
        ..Default::default()
    }
    .spec(env.rootfs.path());
    let opts = env.opts(spec);
    let id = opts.id.clone();
    let mut c = Container::create(opts).expect("create");
    let started = c.start();
    let status = c.wait();
    let deleted = Container::load(env.state.path(), &id)
        .expect("load")
        .delete(false);
    started.expect("start despite the poststart hook");
    assert_eq!(status.expect("wait"), ExitStatus::Exited(3));
    deleted.expect("delete despite the poststop hook");
    assert!(!env.state.path().join(&id).exists());
}

fn pid_namespace_joined_by_path(env: &mut Env) {
    let first = env.sleeper(Setup::default());
    let out = out_dir();
    let status = env.run(Setup {
        script: "cat /proc/1/cmdline | tr '\\0' ' ' > /out/one".into(),
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        namespaces: vec![
            ns(
                LinuxNamespaceType::Pid,
                Some(format!("/proc/{}/ns/pid", first.pid())),
            ),
            ns(LinuxNamespaceType::Mount, None),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    // PID 1 of the joined namespace is the first container's program.
    assert_eq!(read(out.path(), "one"), "sleep 30");
    drop(first);
}

fn cgroup_namespace_joined_by_path(env: &mut Env) {
    let first = env.sleeper(Setup {
        namespaces: [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
        ]
        .into_iter()
        .map(|t| ns(t, None))
        .collect(),
        ..Default::default()
    });
    let first_id = first.c.as_ref().map(|c| c.id().to_string()).expect("id");
    let out = out_dir();
    let status = env.run(Setup {
        script: "cat /proc/self/cgroup > /out/cgroup".into(),
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        namespaces: vec![
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
            ns(
                LinuxNamespaceType::Cgroup,
                Some(format!("/proc/{}/ns/cgroup", first.pid())),
            ),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    // Seen from the first container's cgroup namespace, our cgroup is its sibling.
    let own_id = format!("spec-{}-{}", std::process::id(), env.n);
    let cgroups = read(out.path(), "cgroup");
    assert!(
        cgroups
            .lines()
            .any(|l| l.ends_with(&format!(":/../{own_id}"))),
        "{cgroups}"
    );
    assert!(!cgroups.contains(&first_id), "{cgroups}");
    drop(first);
}

/// A child process holding a mount namespace of its own, in which `dir` has a tmpfs
/// with a file `marker`; killed on drop.
struct MountNsHolder {
    pid: nix::unistd::Pid,
}

impl MountNsHolder {
    fn new(dir: &Path) -> MountNsHolder {
        let (ready_r, ready_w) = nix::unistd::pipe().expect("pipe");
        // SAFETY: the test process is single-threaded; the child only makes syscalls
        // and writes a file before it pauses or exits.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_ok()
                    && mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .is_ok()
                    && mount(
                        Some("tmpfs"),
                        dir,
                        Some("tmpfs"),
                        MsFlags::empty(),
                        Some("size=64k"),
                    )
                    .is_ok()
                    && std::fs::write(dir.join("marker"), "joined").is_ok();
                if ok {
                    let _ = nix::unistd::write(&ready_w, b"1");
                    loop {
                        nix::unistd::pause();
                    }
                }
                // SAFETY: ends the forked child without running the test's destructors.
                unsafe { libc::_exit(1) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(ready_w);
                let holder = MountNsHolder { pid: child };
                let mut byte = [0u8; 1];
                let n = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut byte);
                assert_eq!(n, Ok(1), "mount namespace holder failed");
                holder
            }
        }
    }
}

impl Drop for MountNsHolder {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

fn mount_namespace_joined_by_path(env: &mut Env) {
    let dir = tempfile::tempdir().expect("dir");
    let holder = MountNsHolder::new(dir.path());
    assert!(
        !dir.path().join("marker").exists(),
        "the tmpfs leaked to the host"
    );
    let out = out_dir();
    let status = env.run(Setup {
        script: "cat /d/marker > /out/marker".into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            bind("/d", dir.path(), &["rbind"]),
        ],
        namespaces: vec![
            ns(LinuxNamespaceType::Pid, None),
            ns(
                LinuxNamespaceType::Mount,
                Some(format!("/proc/{}/ns/mnt", holder.pid)),
            ),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    // The bind source was resolved in the joined namespace, where the tmpfs is.
    assert_eq!(read(out.path(), "marker"), "joined");
    drop(holder);
}

fn user_namespace_joined_by_path(env: &mut Env) {
    let maps = Setup {
        namespaces: vec![
            ns(LinuxNamespaceType::User, None),
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
        ],
        uid_maps: vec![id_map(0, 200_000, 65_536)],
        gid_maps: vec![id_map(0, 200_000, 65_536)],
        ..Default::default()
    };
    let first = env.sleeper(maps);
    env.mount_points(&["out", "mapped"]);
    let out = out_dir();
    let data = tempfile::tempdir().expect("data");
    std::fs::write(data.path().join("file"), "host root's").expect("write");
    let status = env.run(Setup {
        script: "cat /proc/self/uid_map > /out/uid_map; id -u > /out/uid; \
                 touch /out/made-by-root; stat -c %u:%g /mapped/file > /out/mapped"
            .into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            // idmapped with the joined namespace's own mapping.
            bind("/mapped", data.path(), &["rbind", "idmap"]),
        ],
        namespaces: vec![
            ns(
                LinuxNamespaceType::User,
                Some(format!("/proc/{}/ns/user", first.pid())),
            ),
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    let map: Vec<String> = read(out.path(), "uid_map")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(map, ["0", "200000", "65536"]);
    assert_eq!(read(out.path(), "uid"), "0");
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(out.path().join("made-by-root"))
        .expect("file made in the container")
        .uid();
    assert_eq!(owner, 200_000);
    assert_eq!(read(out.path(), "mapped"), "0:0");
    drop(first);
}

fn host_uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .expect("uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .expect("host uptime")
}

/// The boottime shift seen by a container running `cut ... /proc/uptime` with `setup`.
fn uptime_shift(env: &mut Env, setup: Setup) -> f64 {
    let out = out_dir();
    let host = host_uptime();
    let status = env.run(Setup {
        script: "cut -d. -f1 /proc/uptime > /out/uptime".into(),
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        ..setup
    });
    assert_eq!(status, ExitStatus::Exited(0));
    let inside: f64 = read(out.path(), "uptime").parse().expect("uptime inside");
    inside - host
}

fn time_namespace_offsets_apply(env: &mut Env) {
    let ns_link = |name: &str| std::fs::read_link(format!("/proc/self/ns/{name}")).expect("ns");
    let own_before = ns_link("time");
    let time_ns = Setup {
        namespaces: vec![
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
            ns(LinuxNamespaceType::Time, None),
        ],
        time_offsets: vec![("boottime".into(), 1_000_000)],
        ..Default::default()
    };
    let shift = uptime_shift(env, time_ns);
    assert!((999_990.0..1_000_100.0).contains(&shift), "shift {shift}");

    // A second container joining the first one's time namespace by path.
    let first = env.sleeper(Setup {
        namespaces: vec![
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
            ns(LinuxNamespaceType::Time, None),
        ],
        time_offsets: vec![("boottime".into(), 2_000_000)],
        ..Default::default()
    });
    let joined = Setup {
        namespaces: vec![
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
            ns(
                LinuxNamespaceType::Time,
                Some(format!("/proc/{}/ns/time", first.pid())),
            ),
        ],
        ..Default::default()
    };
    let shift = uptime_shift(env, joined);
    assert!((1_999_990.0..2_000_100.0).contains(&shift), "shift {shift}");
    drop(first);
    // The runtime itself is back in its own time namespace, for itself and children.
    assert_eq!(ns_link("time"), own_before);
    assert_eq!(ns_link("time_for_children"), own_before);
}

/// A tmpfs mounted on the host (unmounted on drop), shared if asked: source of
/// propagation and recursive-attribute tests.
struct HostTmpfs {
    dir: tempfile::TempDir,
}

impl HostTmpfs {
    fn new(shared: bool) -> HostTmpfs {
        let dir = tempfile::tempdir().expect("dir");
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=64k,mode=755"),
        )
        .expect("mount tmpfs");
        let m = HostTmpfs { dir };
        if shared {
            mount(
                None::<&str>,
                m.dir.path(),
                None::<&str>,
                MsFlags::MS_SHARED,
                None::<&str>,
            )
            .expect("make shared");
        }
        m
    }

    /// The peer group id of the host mount.
    fn peer_group(&self) -> String {
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let point = self.dir.path().display().to_string();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point.as_str()))
            .expect("host mount listed");
        line.split(' ')
            .find_map(|f| f.strip_prefix("shared:"))
            .expect("host mount is shared")
            .to_string()
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
    }
}

/// The optional fields (`shared:N`, `master:N`) of mount point `point` in a mountinfo.
fn tags(mountinfo: &str, point: &str) -> Vec<String> {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(point))
        .unwrap_or_else(|| panic!("{point} not in mountinfo:\n{mountinfo}"));
    line.split(' ')
        .skip(6)
        .take_while(|f| *f != "-")
        .map(str::to_string)
        .collect()
}

fn mount_propagation_is_applied(env: &mut Env) {
    let host = HostTmpfs::new(true);
    let group = host.peer_group();
    let out = out_dir();
    let mut mountinfo = |mounts: Vec<Mount>, rootfs_propagation: Option<&str>| {
        let mut all = vec![bind("/out", out.path(), &["rbind"])];
        all.extend(mounts);
        let status = env.run(Setup {
            script: "cat /proc/self/mountinfo > /out/mountinfo".into(),
            mounts: all,
            rootfs_propagation: rootfs_propagation.map(str::to_string),
            ..Default::default()
        });
        assert_eq!(status, ExitStatus::Exited(0));
        read(out.path(), "mountinfo")
    };

    // By default (rprivate) nothing is shared with the host; `rshared` on a mount makes
    // it shared in a peer group of its own.
    let info = mountinfo(
        vec![
            bind("/sh", host.dir.path(), &["rbind", "rshared"]),
            bind("/pr", host.dir.path(), &["rbind"]),
        ],
        None,
    );
    let sh = tags(&info, "/sh");
    assert_eq!(sh.len(), 1, "{sh:?}");
    assert!(sh[0].starts_with("shared:"), "{sh:?}");
    assert_ne!(sh[0], format!("shared:{group}"));
    assert_eq!(tags(&info, "/pr"), Vec::<String>::new());
    assert_eq!(tags(&info, "/"), Vec::<String>::new());

    // rootfsPropagation rslave: host mounts propagate in, nothing goes out.
    let info = mountinfo(
        vec![bind("/sl", host.dir.path(), &["rbind"])],
        Some("rslave"),
    );
    assert_eq!(tags(&info, "/sl"), [format!("master:{group}")]);

    // rootfsPropagation rshared: the mount stays a peer of the host's (bidirectional).
    let info = mountinfo(
        vec![bind("/sh", host.dir.path(), &["rbind"])],
        Some("rshared"),
    );
    assert_eq!(tags(&info, "/sh"), [format!("shared:{group}")]);

    // A per-mount rslave makes the host's mount its master; the rshared root then
    // shares it again (runc applies rootfsPropagation last, recursively).
    let info = mountinfo(
        vec![bind("/sl", host.dir.path(), &["rbind", "rslave"])],
        Some("rshared"),
    );
    let sl = tags(&info, "/sl");
    assert!(sl.contains(&format!("master:{group}")), "{sl:?}");
    assert!(!sl.contains(&format!("shared:{group}")), "{sl:?}");
    drop(host);
}

fn nosymfollow_blocks_symlinks(env: &mut Env) {
    let data = tempfile::tempdir().expect("data");
    std::fs::write(data.path().join("file"), "content").expect("write");
    std::os::unix::fs::symlink("file", data.path().join("link")).expect("symlink");
    let out = out_dir();
    let status = env.run(Setup {
        script: "cat /plain/link > /out/plain 2>&1; cat /nofollow/link > /out/nofollow 2>&1; \
                 cat /nofollow/file > /out/file"
            .into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            bind("/plain", data.path(), &["rbind", "ro"]),
            bind("/nofollow", data.path(), &["rbind", "ro", "nosymfollow"]),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(read(out.path(), "plain"), "content");
    assert_eq!(read(out.path(), "file"), "content");
    let blocked = read(out.path(), "nofollow");
    assert!(
        blocked.contains("Too many levels of symbolic links"),
        "{blocked}"
    );
}

fn recursive_read_only_reaches_submounts(env: &mut Env) {
    let data = tempfile::tempdir().expect("data");
    std::fs::create_dir(data.path().join("sub")).expect("mkdir");
    let sub = HostTmpfs::new(false);
    mount(
        Some(sub.dir.path()),
        &data.path().join("sub"),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind submount");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(data.path().join("sub"));
    let out = out_dir();
    let probe = |dir: &str| {
        format!(
            "(touch {dir}/sub/x 2>>/out/err && echo rw || echo ro) > /out/{dir_name}",
            dir_name = dir.trim_start_matches('/')
        )
    };
    let status = env.run(Setup {
        script: format!("{}; {}", probe("/plain"), probe("/rec")),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            bind("/plain", data.path(), &["rbind", "ro"]),
            bind("/rec", data.path(), &["rbind", "rro"]),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    // `ro` only covers the top mount; `rro` the submount too.
    assert_eq!(read(out.path(), "plain"), "rw");
    assert_eq!(read(out.path(), "rec"), "ro");
}

fn exec_cpu_affinity_applies_to_exec(env: &mut Env) {
    use oci_spec::runtime::ExecCPUAffinityBuilder;
    let out = out_dir();
    let running = env.sleeper(Setup {
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        ..Default::default()
    });
    let mut process = ProcessBuilder::default()
        .args(vec![
            "sh".to_string(),
            "-c".to_string(),
            "grep Cpus_allowed_list /proc/self/status > /out/cpus".to_string(),
        ])
        .env(vec!["PATH=/bin".to_string()])
        .cwd("/")
        .build()
        .expect("process");
    process.set_exec_cpu_affinity(Some(
        ExecCPUAffinityBuilder::default()
            .initial("0")
            .cpu_affinity_final("1")
            .build()
            .expect("affinity"),
    ));
    let c = running.c.as_ref().expect("container");
    let p = c
        .exec(ccrun_runtime::ExecOptions {
            process,
            stdio: None,
            preserve_fds: 0,
        })
        .expect("exec");
    assert_eq!(p.wait().expect("wait"), ExitStatus::Exited(0));
    let cpus = read(out.path(), "cpus");
    assert_eq!(cpus.split_whitespace().nth(1), Some("1"), "{cpus}");
    drop(running);
}

fn idmapped_bind_mount_shows_mapped_owner(env: &mut Env) {
    let data = tempfile::tempdir().expect("data");
    std::fs::write(data.path().join("file"), "root's").expect("write");
    let out = out_dir();
    let mut idmapped = bind("/mapped", data.path(), &["rbind"]);
    idmapped.set_uid_mappings(Some(vec![id_map(0, 1234, 1)]));
    idmapped.set_gid_mappings(Some(vec![id_map(0, 2345, 1)]));
    let status = env.run(Setup {
        script: "stat -c %u:%g /plain/file > /out/plain; \
                 stat -c %u:%g /mapped/file > /out/mapped"
            .into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            bind("/plain", data.path(), &["rbind"]),
            idmapped,
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(read(out.path(), "plain"), "0:0");
    assert_eq!(read(out.path(), "mapped"), "1234:2345");

    // `idmap` with the container's user namespace mapping: host root's file is the
    // container root's.
    env.mount_points(&["out", "plain", "mapped"]);
    let out = out_dir();
    let status = env.run(Setup {
        script: "stat -c %u:%g /mapped/file > /out/mapped; stat -c %u:%g /plain/file > /out/plain"
            .into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            bind("/plain", data.path(), &["rbind"]),
            bind("/mapped", data.path(), &["rbind", "idmap"]),
        ],
        namespaces: vec![
            ns(LinuxNamespaceType::User, None),
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
        ],
        uid_maps: vec![id_map(0, 200_000, 65_536)],
        gid_maps: vec![id_map(0, 200_000, 65_536)],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(read(out.path(), "mapped"), "0:0");
    assert_eq!(read(out.path(), "plain"), "65534:65534");
}

fn unknown_fields_are_ignored_and_unsupported_ones_rejected(_env: &mut Env) {
    let bundle = tempfile::tempdir().expect("bundle");
    let write = |text: &str| {
        std::fs::write(bundle.path().join("config.json"), text).expect("config.json");
    };
    let base = r#"{"ociVersion": "1.2.0", "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}] LINUX}}"#;
    write(&base.replace("LINUX", ""));
    ccrun_runtime::spec::load(bundle.path()).expect("plain config loads");

    // The runtime spec: unknown properties MUST be ignored.
    write(&base.replace("LINUX", r#", "fooBar": {"x": 1}"#));
    let parsed =
        ccrun_runtime::spec::load_reporting(bundle.path()).expect("unknown field is ignored");
    assert_eq!(parsed.ignored, ["linux.fooBar"]);

    write(&base.replace("LINUX", r#", "intelRdt": {"closID": "a"}"#));
    let err = ccrun_runtime::spec::load(bundle.path())
        .expect_err("unsupported field")
        .to_string();
    assert!(err.contains("linux.intelRdt not supported"), "{err}");
}

fn host_wide_sysctls_are_rejected(env: &mut Env) {
    for (key, value) in [("vm.swappiness", "10"), ("net.ipv4.ip_forward", "1")] {
        let spec = Setup {
            script: "true".into(),
            sysctl: vec![(key.to_string(), value.to_string())],
            ..Default::default()
        }
        .spec(env.rootfs.path());
        let opts = env.opts(spec);
        let id = opts.id.clone();
        let err = Container::create(opts).expect_err(key);
        assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
        assert!(err.to_string().contains(key), "{err}");
        assert!(!env.state.path().join(&id).exists(), "{key}: state left");
    }
    // With its own network and IPC namespaces the container may set theirs.
    let out = out_dir();
    let status = env.run(Setup {
        script: "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni > /out/values".into(),
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        namespaces: [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Network,
        ]
        .into_iter()
        .map(|t| ns(t, None))
        .collect(),
        sysctl: vec![
            ("net.ipv4.ip_forward".into(), "1".into()),
            ("kernel.shmmni".into(), "1234".into()),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(read(out.path(), "values"), "1\n1234");
}

fn scheduler_and_io_priority_apply(env: &mut Env) {
    use oci_spec::runtime::{
        IOPriorityClass, LinuxIOPriorityBuilder, LinuxSchedulerPolicy, SchedulerBuilder,
    };
    let out = out_dir();
    let status = env.run(Setup {
        // Fields 19 and 41 of /proc/PID/stat: nice and scheduling policy.
        script: "cut -d' ' -f19,41 /proc/self/stat > /out/sched; ionice > /out/io".into(),
        mounts: vec![bind("/out", out.path(), &["rbind"])],
        scheduler: Some(
            SchedulerBuilder::default()
                .policy(LinuxSchedulerPolicy::SchedBatch)
                .nice(7)
                .build()
                .expect("scheduler"),
        ),
        io_priority: Some(
            LinuxIOPriorityBuilder::default()
                .class(IOPriorityClass::IoprioClassBe)
                .priority(6)
                .build()
                .expect("ioprio"),
        ),
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    // SCHED_BATCH is policy 3.
    assert_eq!(read(out.path(), "sched"), "7 3");
    assert_eq!(read(out.path(), "io"), "best-effort: prio 6");
}

fn memory_policy_is_set(env: &mut Env) {
    use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyModeType};
    // No tool in the container reads a task's memory policy back, but the kernel checks
    // the nodes: binding to node 0 works, binding to a node that is not online fails.
    for (nodes, works) in [("0", true), ("1023", false)] {
        let mut spec = Setup {
            script: "true".into(),
            ..Default::default()
        }
        .spec(env.rootfs.path());
        let mut policy = LinuxMemoryPolicy::default();
        policy.set_mode(MemoryPolicyModeType::MpolBind);
        policy.set_nodes(Some(nodes.into()));
        if let Some(linux) = spec.linux_mut() {
            linux.set_memory_policy(Some(policy));
        }
        let opts = env.opts(spec);
        let id = opts.id.clone();
        match Container::create(opts) {
            Ok(c) => {
                let pid = c.pid();
                let deleted = c.delete(true);
                // Reap the killed init.
                let _ = ccrun_runtime::signals::wait_for(pid);
                deleted.expect("delete");
                assert!(works, "binding to node {nodes} should fail");
            }
            Err(e) => {
                assert!(!works, "node {nodes}: {e}");
                assert!(e.to_string().contains("linux.memoryPolicy"), "{e}");
                assert!(!env.state.path().join(&id).exists());
            }
        }
    }
}

fn console_size_applies(env: &mut Env) {
    let out = out_dir();
    let status = env.run(Setup {
        script: "stty size > /out/size".into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            mount_entry("/dev", "tmpfs", "tmpfs", &["nosuid", "mode=755", "size=1m"]),
            mount_entry(
                "/dev/pts",
                "devpts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                ],
            ),
        ],
        terminal: Some((33, 111)),
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(read(out.path(), "size"), "33 111");
}

fn tmpcopyup_seeds_the_tmpfs(env: &mut Env) {
    use std::os::unix::fs::MetadataExt;
    let seed = env.rootfs.path().join("seed");
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(seed.clone());
    std::fs::create_dir_all(seed.join("b")).expect("mkdir");
    std::fs::write(seed.join("a"), "file a").expect("write");
    std::fs::set_permissions(seed.join("a"), std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    nix::unistd::chown(&seed.join("a"), Some(1000.into()), Some(1000.into())).expect("chown");
    std::fs::write(seed.join("b/c"), "file c").expect("write");
    std::os::unix::fs::symlink("a", seed.join("l")).expect("symlink");
    let out = out_dir();
    let status = env.run(Setup {
        script: "stat -c '%a %u:%g' /seed/a > /out/a; cat /seed/b/c > /out/c; \
                 readlink /seed/l > /out/l; grep ' /seed ' /proc/self/mountinfo | \
                 cut -d' ' -f9 > /out/fstype; touch /seed/new"
            .into(),
        mounts: vec![
            bind("/out", out.path(), &["rbind"]),
            mount_entry("/seed", "tmpfs", "tmpfs", &["tmpcopyup", "size=1m"]),
        ],
        ..Default::default()
    });
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(read(out.path(), "a"), "640 1000:1000");
    assert_eq!(read(out.path(), "c"), "file c");
    assert_eq!(read(out.path(), "l"), "a");
    assert_eq!(read(out.path(), "fstype"), "tmpfs");
    // Writes went to the tmpfs, not the image.
    assert!(!seed.join("new").exists());
    assert_eq!(
        std::fs::metadata(seed.join("a")).expect("a").uid(),
        1000,
        "image file changed"
    );
}

fn main() {
    require_root();
    let mut env = Env::busybox("spec");
    let tests: &[NamedTest<Env>] = &[
        (
            "hooks_run_in_order_with_their_state",
            hooks_run_in_order_with_their_state,
        ),
        (
            "failing_create_hooks_leave_nothing_behind",
            failing_create_hooks_leave_nothing_behind,
        ),
        (
            "failing_start_container_hook_ends_the_container",
            failing_start_container_hook_ends_the_container,
        ),
        (
            "failing_poststart_and_poststop_hooks_are_warnings",
            failing_poststart_and_poststop_hooks_are_warnings,
        ),
        ("pid_namespace_joined_by_path", pid_namespace_joined_by_path),
        (
            "user_namespace_joined_by_path",
            user_namespace_joined_by_path,
        ),
        (
            "mount_namespace_joined_by_path",
            mount_namespace_joined_by_path,
        ),
        (
            "cgroup_namespace_joined_by_path",
            cgroup_namespace_joined_by_path,
        ),
        ("time_namespace_offsets_apply", time_namespace_offsets_apply),
        ("mount_propagation_is_applied", mount_propagation_is_applied),
        ("nosymfollow_blocks_symlinks", nosymfollow_blocks_symlinks),
        (
            "idmapped_bind_mount_shows_mapped_owner",
            idmapped_bind_mount_shows_mapped_owner,
        ),
        (
            "unknown_fields_are_ignored_and_unsupported_ones_rejected",
            unknown_fields_are_ignored_and_unsupported_ones_rejected,
        ),
        (
            "host_wide_sysctls_are_rejected",
            host_wide_sysctls_are_rejected,
        ),
        (
            "scheduler_and_io_priority_apply",
            scheduler_and_io_priority_apply,
        ),
        (
            "recursive_read_only_reaches_submounts",
            recursive_read_only_reaches_submounts,
        ),
        (
            "exec_cpu_affinity_applies_to_exec",
            exec_cpu_affinity_applies_to_exec,
        ),
        ("console_size_applies", console_size_applies),
        ("memory_policy_is_set", memory_policy_is_set),
        ("tmpcopyup_seeds_the_tmpfs", tmpcopyup_seeds_the_tmpfs),
    ];
    let tally = ccrun_testkit::run_in_process(tests, &mut env);
    // `exit` skips destructors: remove the rootfs and state dir first.
    drop(env);
    tally.finish();
}
