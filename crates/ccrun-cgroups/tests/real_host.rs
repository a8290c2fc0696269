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

use ccrun_cgroups::{Cgroup, Layout};
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
        static NEXT: AtomicU32 = AtomicU32::new(0);
        require_root();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        TestTree {
            layout: Layout::detect().expect("detect cgroup layout"),
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
    assert_eq!(stats.pids_current, Some(1));
    assert!(stats.memory_current.is_some());
    assert!(stats.cpu_usage_ns.is_some());

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
