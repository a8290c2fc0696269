//! The runtime core's OCI lifecycle, driven through its API as the engine and the
//! runc-compatible CLI do: create parks the init at the exec gate, start releases it,
//! state is derived from the live system, delete cleans up; spec mounts apply in order
//! with their options. Runs without the threaded test harness because container
//! creation needs a single-threaded process.

mod common;

use std::path::Path;
use std::time::Duration;

use ccrun_runtime::{Container, Error, ExitStatus, Status};
use ccrun_testkit::{require_root, NamedTest};
use common::{mount, Env};
use nix::sys::signal::Signal;
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, Mount, ProcessBuilder, RootBuilder,
    Spec, SpecBuilder,
};

fn spec(rootfs: &Path, args: &[&str], extra_mounts: Vec<Mount>) -> Spec {
    let ns = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ]
    .into_iter()
    .map(|t| LinuxNamespaceBuilder::default().typ(t).build().expect("ns"))
    .collect::<Vec<_>>();
    let mut mounts = vec![mount(
        "/proc",
        "proc",
        "proc",
        &["nosuid", "noexec", "nodev"],
    )];
    mounts.extend(extra_mounts);
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
        .hostname("lifecycle")
        .mounts(mounts)
        .linux(
            LinuxBuilder::default()
                .namespaces(ns)
                .build()
                .expect("linux"),
        )
        .build()
        .expect("spec")
}

impl Env {}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn create_start_wait_delete(env: &mut Env) {
    let spec = spec(env.rootfs.path(), &["sh", "-c", "exit 7"], vec![]);
    let opts = env.opts(spec);
    let id = opts.id.clone();
    let mut c = Container::create(opts).expect("create");
    assert_eq!(c.state.status, Status::Created);
    // The init waits at the gate: it is still our binary, not the user's program.
    assert!(!cmdline(c.pid()).starts_with("sh "), "{}", cmdline(c.pid()));
    let loaded = Container::load(env.state.path(), &id).expect("load");
    assert_eq!(loaded.state.status, Status::Created);
    assert_eq!(loaded.state.pid, c.pid());

    c.start().expect("start");
    let again = c.start();
    assert!(matches!(again, Err(Error::WrongState { .. })), "{again:?}");
    assert_eq!(c.wait().expect("wait"), ExitStatus::Exited(7));
    let loaded = Container::load(env.state.path(), &id).expect("load");
    assert_eq!(loaded.state.status, Status::Stopped);
    let cgroup_dirs = loaded.cgroup().expect("cgroup").paths();
    assert!(cgroup_dirs.iter().any(|d| d.exists()));
    loaded.delete(false).expect("delete stopped");
    assert!(!env.state.path().join(&id).exists());
    assert!(cgroup_dirs.iter().all(|d| !d.exists()), "{cgroup_dirs:?}");
    assert!(matches!(
        Container::load(env.state.path(), &id),
        Err(Error::NotFound(_))
    ));
}

fn running_container_needs_force_to_delete(env: &mut Env) {
    let spec = spec(env.rootfs.path(), &["sleep", "30"], vec![]);
    let opts = env.opts(spec);
    let id = opts.id.clone();
    let mut c = Container::create(opts).expect("create");
    c.start().expect("start");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        cmdline(c.pid()).starts_with("sleep 30"),
        "{}",
        cmdline(c.pid())
    );
    let loaded = Container::load(env.state.path(), &id).expect("load");
    assert_eq!(loaded.state.status, Status::Running);
    let refused = loaded.delete(false);
    assert!(
        matches!(refused, Err(Error::WrongState { .. })),
        "{refused:?}"
    );
    Container::load(env.state.path(), &id)
        .expect("load")
        .delete(true)
        .expect("force delete");
    assert_eq!(
        c.wait().expect("wait"),
        ExitStatus::Signaled(Signal::SIGKILL)
    );
}

fn kill_reaches_a_created_container(env: &mut Env) {
    let spec = spec(env.rootfs.path(), &["true"], vec![]);
    let opts = env.opts(spec);
    let id = opts.id.clone();
    let mut c = Container::create(opts).expect("create");
    c.kill(Signal::SIGKILL).expect("kill");
    assert_eq!(
        c.wait().expect("wait"),
        ExitStatus::Signaled(Signal::SIGKILL)
    );
    let mut loaded = Container::load(env.state.path(), &id).expect("load");
    assert_eq!(loaded.state.status, Status::Stopped);
    assert!(matches!(
        loaded.kill(Signal::SIGTERM),
        Err(Error::WrongState { .. })
    ));
    loaded.delete(false).expect("delete");
}

fn spec_mounts_apply_in_order_with_options(env: &mut Env) {
    let host = tempfile::tempdir().expect("host dir");
    let ro = host.path().join("ro");
    let rw = host.path().join("rw");
    std::fs::create_dir_all(&ro).expect("mkdir");
    std::fs::create_dir_all(&rw).expect("mkdir");
    std::fs::write(ro.join("data"), "from host").expect("write");
    let mounts = vec![
        mount("/data", "bind", &ro.display().to_string(), &["rbind", "ro"]),
        mount("/out", "bind", &rw.display().to_string(), &["bind", "rw"]),
        mount(
            "/scratch",
            "tmpfs",
            "tmpfs",
            &["nosuid", "size=1m", "mode=1777"],
        ),
        // Created inside the previous mount: order matters.
        mount("/scratch/sub", "tmpfs", "tmpfs", &["size=64k"]),
    ];
    let script = "cat /data/data > /out/read; \
                  (touch /data/x 2>/out/err && echo writable || echo ro) > /out/ro; \
                  stat -c %a /scratch > /out/mode; \
                  grep -cE ' /scratch(/sub)? ' /proc/self/mountinfo > /out/count; \
                  grep ' /scratch ' /proc/self/mountinfo | grep -o 'size=[0-9]*k' > /out/size; \
                  hostname > /out/hostname";
    let spec = spec(env.rootfs.path(), &["sh", "-c", script], mounts);
    let opts = env.opts(spec);
    let mut c = Container::create(opts).expect("create");
    c.start().expect("start");
    assert_eq!(c.wait().expect("wait"), ExitStatus::Exited(0));
    c.delete(false).expect("delete");
    let read = |f: &str| {
        std::fs::read_to_string(rw.join(f))
            .expect(f)
            .trim()
            .to_string()
    };
    assert_eq!(read("read"), "from host");
    assert_eq!(read("ro"), "ro");
    assert_eq!(read("mode"), "1777");
    assert_eq!(read("count"), "2");
    assert_eq!(read("size"), "size=1024k");
    assert_eq!(read("hostname"), "lifecycle");
    assert!(!ro.join("x").exists());
}

fn missing_program_fails_create_with_its_kind(env: &mut Env) {
    let spec = spec(env.rootfs.path(), &["definitely-missing"], vec![]);
    let opts = env.opts(spec);
    let id = opts.id.clone();
    let err = Container::create(opts).expect_err("must fail");
    assert!(matches!(err, Error::CommandNotFound(_)), "{err:?}");
    assert!(!env.state.path().join(id).exists(), "state left behind");
}

fn duplicate_ids_are_refused(env: &mut Env) {
    let spec1 = spec(env.rootfs.path(), &["true"], vec![]);
    let opts = env.opts(spec1);
    let dup = opts.clone();
    let c = Container::create(opts).expect("create");
    let err = Container::create(dup).expect_err("duplicate");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    c.delete(false).expect("delete created");
}

fn main() {
    require_root();
    let mut env = Env::busybox("lifecycle");
    let tests: &[NamedTest<Env>] = &[
        ("create_start_wait_delete", create_start_wait_delete),
        (
            "running_container_needs_force_to_delete",
            running_container_needs_force_to_delete,
        ),
        (
            "kill_reaches_a_created_container",
            kill_reaches_a_created_container,
        ),
        (
            "spec_mounts_apply_in_order_with_options",
            spec_mounts_apply_in_order_with_options,
        ),
        (
            "missing_program_fails_create_with_its_kind",
            missing_program_fails_create_with_its_kind,
        ),
        ("duplicate_ids_are_refused", duplicate_ids_are_refused),
    ];
    let tally = ccrun_testkit::run_in_process(tests, &mut env);
    // `exit` skips destructors: remove the rootfs and state dir first.
    drop(env);
    tally.finish();
}
