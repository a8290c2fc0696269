//! Tests against the host's real cgroup filesystem. They need root and fail loudly
//! without it. Every cgroup lives under a unique top-level `/ccrun-test-<pid>-<n>`
//! (never under `/ccrun`, so real containers are never touched) and is removed by a
//! guard even when an assertion fails.
//!
//! The expected interface files are looked up per controller with the same rule the
//! crate uses (v2 if the unified hierarchy has the controller, else v1), so the tests
//! run on v1, hybrid and v2 hosts alike.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ccrun_cgroups::{Cgroup, DeviceBackend, Layout};
use nix::sys::signal::Signal;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder,
};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the real cgroup tests must run as root (they create cgroups under /sys/fs/cgroup)"
    );
}

/// A unique top-level test cgroup, destroyed (with everything below it) on drop.
struct TestTree {
    layout: Layout,
    top: String,
}

impl TestTree {
    fn new() -> TestTree {
        TestTree::with_layout(Layout::detect().expect("detect cgroup layout"))
    }

    fn with_layout(layout: Layout) -> TestTree {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        require_root();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        TestTree {
            layout,
            top: format!("/ccrun-test-{}-{n}", std::process::id()),
        }
    }

    /// The absolute cgroup path of `name` below the test's top-level cgroup.
    fn path(&self, name: &str) -> String {
        format!("{}/{name}", self.top)
    }

    /// The interface file of `controller` for the cgroup at `path`, per the v2-first rule.
    fn file(&self, path: &str, v1: (&str, &str), v2: (&str, &str)) -> PathBuf {
        let rel = path.trim_start_matches('/');
        let (controllers, unified) = match &self.layout {
            Layout::Unified { root } => (None, Some(root)),
            Layout::Legacy {
                controllers,
                unified,
            } => (Some(controllers), unified.as_ref()),
        };
        if let Some(root) = unified {
            let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap();
            if available.split_whitespace().any(|c| c == v2.0) {
                return root.join(rel).join(v2.1);
            }
        }
        let mount = controllers
            .and_then(|c| c.get(v1.0))
            .unwrap_or_else(|| panic!("controller {} not available on this host", v1.0));
        mount.join(rel).join(v1.1)
    }

    fn memsw_file(&self, path: &str) -> Option<PathBuf> {
        let f = self.file(
            path,
            ("memory", "memory.memsw.limit_in_bytes"),
            ("memory", "memory.swap.max"),
        );
        f.exists().then_some(f)
    }

    /// Whether the unified hierarchy has `v2_controller` (so the v2 writer is used).
    fn is_v2(&self, v2_controller: &str) -> bool {
        unified_root(&self.layout).is_some_and(|root| {
            read(root.join("cgroup.controllers"))
                .split_whitespace()
                .any(|c| c == v2_controller)
        })
    }

    fn cleanup(&self) -> ccrun_cgroups::Result<()> {
        Cgroup::open(&self.layout, &self.top)?.destroy()
    }
}

impl Drop for TestTree {
    fn drop(&mut self) {
        if let Err(e) = self.cleanup() {
            eprintln!("cleanup of test cgroup {} failed: {e}", self.top);
        }
    }
}

fn unified_root(layout: &Layout) -> Option<&Path> {
    match layout {
        Layout::Unified { root } => Some(root),
        Layout::Legacy { unified, .. } => unified.as_deref(),
    }
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A child process killed on drop if a test fails before it is reaped.
struct Proc(Child);

impl Proc {
    fn sleep() -> Proc {
        Proc(
            Command::new("sleep")
                .arg("30")
                .spawn()
                .expect("spawn sleep"),
        )
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_timeout(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "child did not exit in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Bounded: a task left frozen by a failing test would block wait() forever.
        let _ = self.0.kill();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("child {} did not exit; leaving it", self.0.id());
    }
}

fn memory(limit: i64, swap: Option<i64>) -> LinuxResources {
    let mut m = LinuxMemoryBuilder::default().limit(limit);
    if let Some(swap) = swap {
        m = m.swap(swap);
    }
    LinuxResourcesBuilder::default()
        .memory(m.build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn layout_has_the_basic_controllers() {
    let tree = TestTree::new();
    for (v1, v2) in [("memory", "memory"), ("cpu", "cpu"), ("pids", "pids")] {
        // Panics if the controller is in neither hierarchy.
        tree.file("/", (v1, "x"), (v2, "x"));
    }
}

#[test]
fn limits_procs_and_destroy() {
    let tree = TestTree::new();
    let path = tree.path("c");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    for dir in cgroup.paths() {
        assert!(dir.is_dir(), "{} missing", dir.display());
        assert!(dir.ends_with(path.trim_start_matches('/')));
    }

    let swap = tree.memsw_file(&path).map(|_| 128i64 << 20);
    let r = LinuxResourcesBuilder::default()
        .memory({
            let m = LinuxMemoryBuilder::default().limit(64i64 << 20);
            match swap {
                Some(s) => m.swap(s).build().unwrap(),
                None => m.build().unwrap(),
            }
        })
        .cpu(
            LinuxCpuBuilder::default()
                .quota(50_000i64)
                .period(100_000u64)
                .shares(512u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(64).build().unwrap())
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();

    let mem = tree.file(
        &path,
        ("memory", "memory.limit_in_bytes"),
        ("memory", "memory.max"),
    );
    assert_eq!(read(mem), "67108864");
    if let Some(memsw) = tree.memsw_file(&path) {
        let expected = if tree.is_v2("memory") {
            "67108864"
        } else {
            "134217728"
        };
        assert_eq!(read(memsw), expected);
    }
    if tree.is_v2("cpu") {
        assert_eq!(
            read(tree.file(&path, ("cpu", ""), ("cpu", "cpu.max"))),
            "50000 100000"
        );
        assert_eq!(
            read(tree.file(&path, ("cpu", ""), ("cpu", "cpu.weight"))),
            "20"
        );
    } else {
        assert_eq!(
            read(tree.file(&path, ("cpu", "cpu.cfs_quota_us"), ("cpu", ""))),
            "50000"
        );
        assert_eq!(
            read(tree.file(&path, ("cpu", "cpu.cfs_period_us"), ("cpu", ""))),
            "100000"
        );
        assert_eq!(
            read(tree.file(&path, ("cpu", "cpu.shares"), ("cpu", ""))),
            "512"
        );
    }
    assert_eq!(
        read(tree.file(&path, ("pids", "pids.max"), ("pids", "pids.max"))),
        "64"
    );
    let cpus = tree.file(&path, ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.cpus"));
    assert_eq!(read(cpus), "0");

    let mut child = Proc::sleep();
    cgroup.add_process(child.pid()).unwrap();
    assert_eq!(cgroup.procs().unwrap(), vec![child.pid()]);
    // A second handle, as another ccrun process would open it, sees the same.
    let reopened = Cgroup::open(&tree.layout, &path).unwrap();
    assert_eq!(reopened.procs().unwrap(), vec![child.pid()]);
    let stats = cgroup.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 64);
    assert_eq!(stats.memory.usage.limit, 64 << 20);

    // The child is still unreaped (a zombie once killed), as in a real runtime.
    reopened.destroy().unwrap();
    let status = child.wait_timeout(Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    for dir in cgroup.paths() {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
    // Idempotent.
    cgroup.destroy().unwrap();

    // The guard's cleanup removes the top-level test cgroup from every hierarchy.
    let top = Cgroup::open(&tree.layout, &tree.top).unwrap();
    tree.cleanup().unwrap();
    for dir in top.paths() {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
}

#[test]
fn joining_works_at_every_nested_level() {
    // Without copying cpuset.cpus/mems down each created level, joining fails with ENOSPC.
    let tree = TestTree::new();
    let path = tree.path("a/b/c");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let child = Proc::sleep();
    cgroup.add_process(child.pid()).unwrap();
    assert_eq!(cgroup.procs().unwrap(), vec![child.pid()]);
    // procs() of an ancestor includes its descendants.
    let ancestor = Cgroup::open(&tree.layout, &tree.path("a")).unwrap();
    assert_eq!(ancestor.procs().unwrap(), vec![child.pid()]);
    cgroup.destroy().unwrap();
    assert!(cgroup.procs().unwrap().is_empty());
}

#[test]
fn memory_and_swap_can_be_raised_and_lowered() {
    let tree = TestTree::new();
    let path = tree.path("m");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let Some(memsw) = tree.memsw_file(&path) else {
        panic!("this test needs swap accounting (memory.memsw.limit_in_bytes / memory.swap.max)");
    };
    let mem = tree.file(
        &path,
        ("memory", "memory.limit_in_bytes"),
        ("memory", "memory.max"),
    );
    let v2 = tree.is_v2("memory");
    // Each step would fail on v1 if the two files were written in the wrong order.
    for (limit, swap) in [(100, 200), (50, 60), (300, 400), (10, 10), (500, 1000)] {
        cgroup
            .apply(&memory(limit << 20, Some(swap << 20)))
            .unwrap_or_else(|e| panic!("{limit}M/{swap}M: {e}"));
        assert_eq!(read(&mem), (limit << 20).to_string());
        let expected = if v2 { swap - limit } else { swap };
        assert_eq!(read(&memsw), (expected << 20).to_string());
    }
    // An update of swap alone is relative to the current memory limit.
    cgroup
        .update(&resources(r#"{"memory": {"swap": 2097152000}}"#))
        .unwrap();
    assert_eq!(read(&mem), (500 << 20).to_string());
    let expected: u64 = if v2 {
        2_097_152_000 - (500 << 20)
    } else {
        2_097_152_000
    };
    assert_eq!(read(&memsw), expected.to_string());
    cgroup.apply(&memory(-1, None)).unwrap();
    if v2 {
        assert_eq!(read(&mem), "max");
        assert_eq!(read(&memsw), "max");
    } else {
        // v1 reports "unlimited" as a huge page-aligned number.
        assert!(read(&mem).parse::<u64>().unwrap() > 1 << 62);
        assert!(read(&memsw).parse::<u64>().unwrap() > 1 << 62);
    }
}

#[test]
fn oom_kill_is_counted() {
    let tree = TestTree::new();
    let path = tree.path("oom");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let swap = tree.memsw_file(&path).map(|_| 20i64 << 20);
    cgroup.apply(&memory(20 << 20, swap)).unwrap();
    assert_eq!(cgroup.oom_kill_count().unwrap(), 0);

    // The shell waits for a line on stdin so that it only allocates once it has
    // joined; `tail` buffers all of a newline-free stream in memory.
    let child = Command::new("sh")
        .args(["-c", "read _ && head -c 200m /dev/zero | tail"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Proc(child);
    cgroup.add_process(child.pid()).unwrap();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let status = child.wait_timeout(Duration::from_secs(30));
    assert!(!status.success(), "memory hog survived: {status}");
    assert!(cgroup.oom_kill_count().unwrap() >= 1);
    cgroup.destroy().unwrap();
}

#[test]
fn freeze_thaw_and_destroy_while_frozen() {
    let tree = TestTree::new();
    let path = tree.path("f");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let mut child = Proc::sleep();
    cgroup.add_process(child.pid()).unwrap();

    let (state, frozen, thawed) = match &tree.layout {
        Layout::Legacy { controllers, .. } if controllers.contains_key("freezer") => (
            controllers["freezer"]
                .join(path.trim_start_matches('/'))
                .join("freezer.state"),
            "FROZEN",
            "THAWED",
        ),
        layout => (
            unified_root(layout)
                .unwrap()
                .join(path.trim_start_matches('/'))
                .join("cgroup.freeze"),
            "1",
            "0",
        ),
    };
    cgroup.freeze().unwrap();
    assert_eq!(read(&state), frozen);
    cgroup.thaw().unwrap();
    assert_eq!(read(&state), thawed);

    cgroup.freeze().unwrap();
    cgroup.destroy().unwrap();
    let status = child.wait_timeout(Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    for dir in cgroup.paths() {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
}

#[test]
fn hugetlb_goes_where_the_controller_is() {
    let tree = TestTree::new();
    let path = tree.path("h");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    let available = match &tree.layout {
        Layout::Legacy { controllers, .. } if controllers.contains_key("hugetlb") => true,
        // On a hybrid host ccrun never changes the unified root's delegation, so the
        // controller is usable only if the machine already delegates it.
        Layout::Legacy { .. } => {
            tree.is_v2("hugetlb")
                && unified_root(&tree.layout).is_some_and(|root| {
                    read(root.join("cgroup.subtree_control"))
                        .split_whitespace()
                        .any(|c| c == "hugetlb")
                })
        }
        Layout::Unified { .. } => tree.is_v2("hugetlb"),
    };
    if !available {
        let err = cgroup.apply(&r).unwrap_err();
        assert!(err.to_string().contains("hugetlb"), "{err}");
        return;
    }
    cgroup.apply(&r).unwrap();
    let file = tree.file(
        &path,
        ("hugetlb", "hugetlb.2MB.limit_in_bytes"),
        ("hugetlb", "hugetlb.2MB.max"),
    );
    assert_eq!(read(file), "4194304");
}

#[test]
fn shared_parent_goes_with_its_last_child_only() {
    let tree = TestTree::new();
    let first = Cgroup::create(&tree.layout, &tree.path("parent/one")).unwrap();
    let second = Cgroup::create(&tree.layout, &tree.path("parent/two")).unwrap();
    let parents = |c: &Cgroup| -> Vec<PathBuf> {
        c.paths()
            .iter()
            .map(|p| p.parent().unwrap().to_path_buf())
            .collect()
    };
    let shared = parents(&first);
    assert!(!shared.is_empty());
    first.destroy().unwrap();
    for p in &shared {
        assert!(
            p.is_dir(),
            "{} is still used by the second cgroup",
            p.display()
        );
    }
    second.destroy().unwrap();
    for p in &shared {
        assert!(!p.exists(), "{} left behind", p.display());
        assert!(
            !p.parent().unwrap().exists(),
            "the test's top level left behind"
        );
    }
}

#[test]
fn destroy_of_something_never_created_is_fine() {
    let tree = TestTree::new();
    let cgroup = Cgroup::open(&tree.layout, &tree.path("never")).unwrap();
    cgroup.destroy().unwrap();
    assert!(cgroup.procs().unwrap().is_empty());
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// A shell that waits for a line on stdin (so it acts only once it has joined the
/// cgroup), then runs `script`; stdout and stderr are captured.
fn waiting_shell(script: &str) -> Proc {
    let child = Command::new("sh")
        .args(["-c", &format!("read _ || exit 99; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    Proc(child)
}

/// Lets a waiting shell go and collects (stdout, stderr) once it exits.
fn release(mut proc: Proc) -> (String, String) {
    proc.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    proc.wait_timeout(Duration::from_secs(10));
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    proc.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    proc.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err)
}

/// Opens /dev/zero for reading and /dev/null for reading and writing, one
/// subshell each (a failed redirection on `exec` ends only the subshell), and
/// prints which worked. Errors go to the captured stderr, never to /dev/null.
const DEVICE_PROBE: &str = "\
if (exec 3</dev/zero); then echo zero-r:ok; else echo zero-r:denied; fi; \
if (exec 3</dev/null); then echo null-r:ok; else echo null-r:denied; fi; \
if (exec 3>/dev/null); then echo null-w:ok; else echo null-w:denied; fi";

/// Runs the device probe in a fresh process that joined `cgroup` first.
fn probe_devices(cgroup: &Cgroup) -> (String, String) {
    let proc = waiting_shell(DEVICE_PROBE);
    cgroup.add_process(proc.pid()).unwrap();
    release(proc)
}

/// Allow /dev/zero and /dev/null (read and write), deny everything else.
const DEVICES_BOTH: &str = r#"{"devices": [
    {"allow": false, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}"#;
/// As above, but /dev/null may no longer be written (a later deny wins).
const DEVICES_NULL_RO: &str = r#"{"devices": [
    {"allow": false, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]}"#;

fn assert_probe(result: &(String, String), zero_r: &str, null_r: &str, null_w: &str) {
    let (out, err) = result;
    let expected = format!("zero-r:{zero_r}\nnull-r:{null_r}\nnull-w:{null_w}\n");
    assert_eq!(out, &expected, "stderr: {err}");
    if out.contains("denied") {
        // The kernel's answer is EPERM, as for runc's and crun's filters.
        assert!(err.contains("Operation not permitted"), "stderr: {err}");
    }
}

#[test]
fn v1_devices_block_a_real_process_and_update_reapplies() {
    let tree = TestTree::new();
    let Layout::Legacy { controllers, .. } = &tree.layout else {
        panic!("this host has no v1 layout; the eBPF test covers devices here");
    };
    let devices_root = controllers
        .get("devices")
        .expect("the v1 devices controller is mounted on this host")
        .clone();
    let path = tree.path("dev");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let dir = devices_root.join(path.trim_start_matches('/'));
    assert_eq!(
        cgroup.device_backend().unwrap(),
        DeviceBackend::V1(dir.clone())
    );

    cgroup.apply(&resources(DEVICES_NULL_RO)).unwrap();
    // The kernel's list: deny-all removed the default "a *:* rwm", the allows added
    // exceptions, and the deny took "w" off /dev/null's.
    assert_eq!(read(dir.join("devices.list")), "c 1:5 rwm\nc 1:3 rm");
    assert_probe(&probe_devices(&cgroup), "ok", "ok", "denied");

    // Update: re-applied from deny-all, so nothing of the old list lingers.
    cgroup.update(&resources(DEVICES_BOTH)).unwrap();
    assert_eq!(read(dir.join("devices.list")), "c 1:5 rwm\nc 1:3 rwm");
    assert_probe(&probe_devices(&cgroup), "ok", "ok", "ok");

    // Repeating the same list is a no-op, which also works once the container has
    // child cgroups (the kernel then refuses the deny-all a re-apply starts with).
    let child_dir = dir.join("nested");
    fs::create_dir(&child_dir).unwrap();
    cgroup.update(&resources(DEVICES_BOTH)).unwrap();
    let err = cgroup.update(&resources(DEVICES_NULL_RO)).unwrap_err();
    assert!(err.to_string().contains("devices.deny"), "{err}");
    fs::remove_dir(&child_dir).unwrap();

    cgroup
        .update(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}"#,
        ))
        .unwrap();
    assert_probe(&probe_devices(&cgroup), "denied", "ok", "ok");
    cgroup.destroy().unwrap();
}

/// The unified hierarchy of this host as a layout of its own, so the eBPF path is
/// used even where v1 devices exist (on a pure v2 host it is the detected layout).
fn unified_only_layout() -> Layout {
    match Layout::detect().expect("detect cgroup layout") {
        Layout::Legacy {
            unified: Some(root),
            ..
        } => Layout::Legacy {
            controllers: Default::default(),
            unified: Some(root),
        },
        Layout::Legacy { unified: None, .. } => {
            panic!("no cgroup2 mount on this host: the eBPF device filter cannot be tested")
        }
        unified => unified,
    }
}

#[test]
fn ebpf_device_filter_blocks_a_real_process_and_update_replaces_it() {
    let tree = TestTree::with_layout(unified_only_layout());
    let path = tree.path("bpf");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let dir = unified_root(&tree.layout)
        .unwrap()
        .join(path.trim_start_matches('/'));
    assert_eq!(cgroup.device_backend().unwrap(), DeviceBackend::Ebpf(dir));
    assert_eq!(cgroup.device_programs().unwrap(), 0);

    // Without a filter every device works (the control for the checks below).
    assert_probe(&probe_devices(&cgroup), "ok", "ok", "ok");

    cgroup.apply(&resources(DEVICES_NULL_RO)).unwrap();
    assert_eq!(cgroup.device_programs().unwrap(), 1);
    assert_probe(&probe_devices(&cgroup), "ok", "ok", "denied");

    // Update: the new filter replaces the old one, it does not stack on it.
    cgroup.update(&resources(DEVICES_BOTH)).unwrap();
    assert_eq!(cgroup.device_programs().unwrap(), 1);
    assert_probe(&probe_devices(&cgroup), "ok", "ok", "ok");

    cgroup
        .update(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]}"#,
        ))
        .unwrap();
    assert_eq!(cgroup.device_programs().unwrap(), 1);
    assert_probe(&probe_devices(&cgroup), "denied", "ok", "ok");

    // Allow-all as the last word lets everything through again.
    cgroup
        .update(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "access": "rwm"}]}"#,
        ))
        .unwrap();
    assert_probe(&probe_devices(&cgroup), "ok", "ok", "ok");
    cgroup.destroy().unwrap();
    assert!(!cgroup.paths()[0].exists());
}

#[test]
fn memory_extras_land_in_v1_files_or_fail_clearly() {
    let tree = TestTree::new();
    let path = tree.path("mx");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    if tree.is_v2("memory") {
        let err = cgroup
            .apply(&resources(r#"{"memory": {"swappiness": 10}}"#))
            .unwrap_err();
        assert!(err.to_string().contains("swappiness"), "{err}");
        return;
    }
    let f = |name: &str| tree.file(&path, ("memory", name), ("memory", name));
    cgroup
        .apply(&resources(
            r#"{"memory": {"limit": 67108864, "reservation": 33554432, "kernel": 16777216,
                "kernelTCP": 8388608, "swappiness": 10, "disableOOMKiller": true,
                "useHierarchy": true}}"#,
        ))
        .unwrap();
    assert_eq!(read(f("memory.limit_in_bytes")), "67108864");
    assert_eq!(read(f("memory.soft_limit_in_bytes")), "33554432");
    assert_eq!(read(f("memory.kmem.tcp.limit_in_bytes")), "8388608");
    assert_eq!(read(f("memory.swappiness")), "10");
    assert!(read(f("memory.oom_control")).contains("oom_kill_disable 1"));
    assert_eq!(read(f("memory.use_hierarchy")), "1");

    // Update: only what is given changes.
    cgroup
        .update(&resources(
            r#"{"memory": {"swappiness": 30, "disableOOMKiller": false}}"#,
        ))
        .unwrap();
    assert_eq!(read(f("memory.swappiness")), "30");
    assert!(read(f("memory.oom_control")).contains("oom_kill_disable 0"));
    assert_eq!(read(f("memory.limit_in_bytes")), "67108864");

    // checkBeforeUpdate: a limit below what the cgroup already uses is refused.
    let proc = waiting_shell("x=$(head -c 4000000 /dev/zero | tr '\\0' a); read _");
    cgroup.add_process(proc.pid()).unwrap();
    let mut proc = proc;
    proc.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let start = Instant::now();
    while cgroup.stats().unwrap().memory.usage.usage < 1 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "usage never grew"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = cgroup
        .update(&resources(
            r#"{"memory": {"limit": 65536, "checkBeforeUpdate": true}}"#,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("checkBeforeUpdate"), "{err}");
    assert_eq!(read(f("memory.limit_in_bytes")), "67108864");
    cgroup.destroy().unwrap();
}

#[test]
fn cpu_extras_land_in_the_files() {
    let tree = TestTree::new();
    let path = tree.path("cx");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    cgroup
        .apply(&resources(
            r#"{"cpu": {"quota": 20000, "period": 50000, "burst": 10000, "idle": 0}}"#,
        ))
        .unwrap();
    if tree.is_v2("cpu") {
        assert_eq!(
            read(tree.file(&path, ("cpu", ""), ("cpu", "cpu.max"))),
            "20000 50000"
        );
        assert_eq!(
            read(tree.file(&path, ("cpu", ""), ("cpu", "cpu.max.burst"))),
            "10000"
        );
    } else {
        let f = |name: &str| tree.file(&path, ("cpu", name), ("cpu", name));
        assert_eq!(read(f("cpu.cfs_quota_us")), "20000");
        assert_eq!(read(f("cpu.cfs_period_us")), "50000");
        assert_eq!(read(f("cpu.cfs_burst_us")), "10000");
        assert_eq!(read(f("cpu.idle")), "0");
        // A realtime period is accepted; a runtime needs the parents to grant one,
        // and the kernel's refusal is reported, not swallowed.
        cgroup
            .apply(&resources(r#"{"cpu": {"realtimePeriod": 500000}}"#))
            .unwrap();
        assert_eq!(read(f("cpu.rt_period_us")), "500000");
        let err = cgroup
            .apply(&resources(r#"{"cpu": {"realtimeRuntime": 1000}}"#))
            .unwrap_err();
        assert!(err.to_string().contains("cpu.rt_runtime_us"), "{err}");
        // Update of the quota alone keeps the period.
        cgroup
            .update(&resources(r#"{"cpu": {"quota": 40000}}"#))
            .unwrap();
        assert_eq!(read(f("cpu.cfs_quota_us")), "40000");
        assert_eq!(read(f("cpu.cfs_period_us")), "50000");
    }
    cgroup.destroy().unwrap();
}

/// A real block device of this host as (major, minor), skipping loop and zram devices.
fn block_device() -> (u64, u64) {
    for entry in fs::read_dir("/sys/block").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("zram") || name.starts_with("ram") {
            continue;
        }
        let dev = read(entry.path().join("dev"));
        let (major, minor) = dev.split_once(':').unwrap();
        return (major.parse().unwrap(), minor.parse().unwrap());
    }
    panic!("no block device found under /sys/block");
}

#[test]
fn block_io_throttling_lands_and_missing_weight_fails_clearly() {
    let tree = TestTree::new();
    let path = tree.path("io");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let (major, minor) = block_device();
    let r = resources(&format!(
        r#"{{"blockIO": {{"throttleReadBpsDevice": [{{"major": {major}, "minor": {minor}, "rate": 1048576}}],
            "throttleWriteIOPSDevice": [{{"major": {major}, "minor": {minor}, "rate": 100}}]}}}}"#
    ));
    cgroup.apply(&r).unwrap();
    if tree.is_v2("io") {
        let max = read(tree.file(&path, ("blkio", ""), ("io", "io.max")));
        assert!(
            max.contains(&format!("{major}:{minor} rbps=1048576")),
            "{max}"
        );
        assert!(max.contains("wiops=100"), "{max}");
    } else {
        let f = |name: &str| tree.file(&path, ("blkio", name), ("io", ""));
        assert_eq!(
            read(f("blkio.throttle.read_bps_device")),
            format!("{major}:{minor} 1048576")
        );
        assert_eq!(
            read(f("blkio.throttle.write_iops_device")),
            format!("{major}:{minor} 100")
        );
        // Weights need CFQ or BFQ; whether this host has them decides success.
        let weight = tree.file(&path, ("blkio", "blkio.weight"), ("io", ""));
        let bfq = tree.file(&path, ("blkio", "blkio.bfq.weight"), ("io", ""));
        let result = cgroup.apply(&resources(r#"{"blockIO": {"weight": 500}}"#));
        if weight.exists() || bfq.exists() {
            result.unwrap();
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(err, ccrun_cgroups::Error::Unsupported { .. }),
                "{err}"
            );
            assert!(err.to_string().contains("blkio.weight"), "{err}");
        }
        let err = cgroup
            .apply(&resources(r#"{"blockIO": {"leafWeight": 500}}"#))
            .unwrap_err();
        assert!(err.to_string().contains("leaf"), "{err}");
    }
    cgroup.destroy().unwrap();
}

#[test]
fn controllers_missing_here_are_errors_naming_them() {
    let tree = TestTree::new();
    let path = tree.path("missing");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let has_v1 = |name: &str| match &tree.layout {
        Layout::Legacy { controllers, .. } => controllers.contains_key(name),
        Layout::Unified { .. } => false,
    };
    let cases = [
        (
            r#"{"network": {"classID": 1048577}}"#,
            "net_cls",
            has_v1("net_cls"),
        ),
        (
            r#"{"network": {"priorities": [{"name": "lo", "priority": 1}]}}"#,
            "net_prio",
            has_v1("net_prio"),
        ),
        (
            r#"{"rdma": {"mlx5_0": {"hcaHandles": 1}}}"#,
            "rdma",
            has_v1("rdma") || tree.is_v2("rdma"),
        ),
    ];
    let mut checked = 0;
    for (json, controller, present) in cases {
        if present {
            continue;
        }
        let err = cgroup.apply(&resources(json)).unwrap_err();
        assert!(err.to_string().contains(controller), "{json}: {err}");
        checked += 1;
    }
    eprintln!("{checked} missing controllers checked");
    cgroup.destroy().unwrap();
}

#[test]
fn stats_report_what_runc_reports() {
    let tree = TestTree::new();
    let path = tree.path("stats");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    cgroup
        .apply(&resources(
            r#"{"memory": {"limit": 134217728}, "pids": {"limit": 50}, "cpu": {"quota": 50000, "period": 100000}}"#,
        ))
        .unwrap();
    // Burn a little CPU and memory after joining, then wait.
    let mut proc = waiting_shell(
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; x=$(head -c 2000000 /dev/zero | tr '\\0' a); echo busy-done; read _",
    );
    cgroup.add_process(proc.pid()).unwrap();
    proc.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let start = Instant::now();
    let stats = loop {
        let stats = cgroup.stats().unwrap();
        if stats.cpu.usage.total > 0 && stats.memory.usage.usage > 0 {
            break stats;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no usage: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(stats.memory.usage.limit, 134_217_728);
    assert!(stats.memory.usage.max >= stats.memory.usage.usage || tree.is_v2("memory"));
    assert!(!stats.memory.raw.is_empty());
    assert!(stats.pids.current >= 1);
    assert_eq!(stats.pids.limit, 50);
    if !tree.is_v2("cpu") {
        assert!(!stats.cpu.usage.percpu.is_empty());
    }
    // No cpuset was set: the cgroup has the root's, i.e. every online CPU.
    let mut online = Vec::new();
    for part in read("/sys/devices/system/cpu/online").split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        online.extend(a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap());
    }
    assert_eq!(stats.cpuset.cpus, online);
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["memory"]["usage"]["limit"], 134_217_728u64);
    assert_eq!(json["pids"]["limit"], 50);
    assert!(json["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    cgroup.destroy().unwrap();
}

#[test]
fn kill_all_signals_every_process_and_keeps_a_paused_cgroup_paused() {
    let tree = TestTree::new();
    let path = tree.path("kill");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let mut first = Proc::sleep();
    let mut second = Proc::sleep();
    cgroup.add_process(first.pid()).unwrap();
    cgroup.add_process(second.pid()).unwrap();
    assert!(!cgroup.is_frozen().unwrap());

    cgroup.kill_all(Signal::SIGTERM).unwrap();
    for p in [&mut first, &mut second] {
        assert_eq!(
            p.wait_timeout(Duration::from_secs(5)).signal(),
            Some(libc::SIGTERM)
        );
    }
    assert!(
        !cgroup.is_frozen().unwrap(),
        "kill_all left the cgroup frozen"
    );

    // Paused: a catchable signal waits for the thaw, the cgroup stays paused.
    let mut third = Proc::sleep();
    cgroup.add_process(third.pid()).unwrap();
    cgroup.freeze().unwrap();
    assert!(cgroup.is_frozen().unwrap());
    cgroup.kill_all(Signal::SIGTERM).unwrap();
    assert!(cgroup.is_frozen().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        third.0.try_wait().unwrap().is_none(),
        "a frozen task acted on SIGTERM"
    );
    cgroup.thaw().unwrap();
    assert_eq!(
        third.wait_timeout(Duration::from_secs(5)).signal(),
        Some(libc::SIGTERM)
    );

    // SIGKILL on a paused cgroup thaws it so the tasks die.
    let mut fourth = Proc::sleep();
    cgroup.add_process(fourth.pid()).unwrap();
    cgroup.freeze().unwrap();
    cgroup.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(
        fourth.wait_timeout(Duration::from_secs(5)).signal(),
        Some(libc::SIGKILL)
    );
    cgroup.destroy().unwrap();
}

#[test]
fn unified_keys_are_written_verbatim_or_refused_by_name() {
    let tree = TestTree::new();
    let path = tree.path("unified");
    let cgroup = Cgroup::create(&tree.layout, &path).unwrap();
    let Some(root) = unified_root(&tree.layout) else {
        let err = cgroup
            .apply(&resources(
                r#"{"unified": {"cgroup.max.descendants": "5"}}"#,
            ))
            .unwrap_err();
        assert!(err.to_string().contains("cgroup2"), "{err}");
        return;
    };
    let dir = root.join(path.trim_start_matches('/'));
    // A core file every cgroup2 directory has.
    cgroup
        .apply(&resources(
            r#"{"unified": {"cgroup.max.descendants": "5"}}"#,
        ))
        .unwrap();
    assert_eq!(read(dir.join("cgroup.max.descendants")), "5");
    if !dir.join("memory.high").exists() {
        let err = cgroup
            .apply(&resources(r#"{"unified": {"memory.high": "1000000"}}"#))
            .unwrap_err();
        assert!(
            matches!(err, ccrun_cgroups::Error::Unsupported { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("memory.high"), "{err}");
    }
    cgroup.destroy().unwrap();
}

/// Runs, in a fresh process that joined `cgroup`, a read-open of each device and
/// reports which opened.
fn probe_reads(cgroup: &Cgroup, devices: &[&str]) -> String {
    let script: Vec<String> = devices
        .iter()
        .map(|d| format!("if (exec 3<{d}); then echo {d}:ok; else echo {d}:denied; fi"))
        .collect();
    let proc = waiting_shell(&script.join("; "));
    cgroup.add_process(proc.pid()).unwrap();
    release(proc).0
}

#[test]
fn runc_default_device_list_works_with_both_backends() {
    let mut rules = vec![serde_json::from_str(r#"{"allow": false, "access": "rwm"}"#).unwrap()];
    rules.extend(ccrun_cgroups::default_allowed_devices());
    let r = LinuxResourcesBuilder::default()
        .devices(rules)
        .build()
        .unwrap();
    let devices = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/urandom",
        "/dev/kmsg",
    ];
    let expected = "/dev/null:ok\n/dev/zero:ok\n/dev/full:ok\n/dev/urandom:ok\n/dev/kmsg:denied\n";
    for layout in [Layout::detect().unwrap(), unified_only_layout()] {
        let tree = TestTree::with_layout(layout);
        let cgroup = Cgroup::create(&tree.layout, &tree.path("defaults")).unwrap();
        // Control: without rules root can open /dev/kmsg.
        assert!(probe_reads(&cgroup, &["/dev/kmsg"]).contains("ok"));
        cgroup.apply(&r).unwrap();
        let backend = cgroup.device_backend().unwrap();
        assert_eq!(probe_reads(&cgroup, &devices), expected, "{backend:?}");
        cgroup.destroy().unwrap();
    }
}
