//! Tests of both writers against temporary directory trees laid out like cgroupfs.
//! Real cgroupfs creates interface files on mkdir; here the tests pre-create them,
//! and the crate never creates files, so a write to an unexpected file fails.

use std::fs;
use std::path::{Path, PathBuf};

use ccrun_cgroups::{Cgroup, Error, Layout};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};
use tempfile::TempDir;

/// Files a cgroup2 directory has when cpu, memory, pids, io and cpuset are enabled.
const V2_FILES: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpu memory pids io cpuset"),
    ("cgroup.subtree_control", ""),
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("memory.max", "max"),
    ("memory.swap.max", "max"),
    ("memory.low", "0"),
    ("memory.current", "4096"),
    ("memory.peak", "8192"),
    (
        "memory.events",
        "low 0\nhigh 0\nmax 7\noom 3\noom_kill 2\noom_group_kill 0\n",
    ),
    ("cpu.max", "max 100000"),
    ("cpu.weight", "100"),
    (
        "cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 2\n",
    ),
    ("memory.stat", "anon 8192\nfile 100\n"),
    ("memory.swap.current", "0"),
    ("rdma.max", ""),
    ("hugetlb.2MB.max", "max"),
    ("hugetlb.2MB.rsvd.max", "max"),
    ("pids.max", "max"),
    ("pids.current", "3"),
    ("io.max", ""),
    ("io.weight", "default 100"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
];

/// Creates `dir` with the cgroup2 interface files.
fn fake_v2_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in V2_FILES {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// A fake cgroup2 mount with "/ccrun/c1" pre-populated; returns (tempdir, cgroup).
fn v2_cgroup() -> (TempDir, Cgroup) {
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["", "ccrun", "ccrun/c1"] {
        fake_v2_dir(&tmp.path().join(dir));
    }
    let cgroup = Cgroup::create(&Layout::unified_at(tmp.path()), "/ccrun/c1").unwrap();
    (tmp, cgroup)
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn leaf(tmp: &TempDir) -> PathBuf {
    tmp.path().join("ccrun/c1")
}

fn with_memory(limit: i64, swap: Option<i64>) -> LinuxResources {
    let mut memory = LinuxMemoryBuilder::default().limit(limit);
    if let Some(swap) = swap {
        memory = memory.swap(swap);
    }
    LinuxResourcesBuilder::default()
        .memory(memory.build().unwrap())
        .build()
        .unwrap()
}

fn with_cpu(quota: Option<i64>, period: Option<u64>, shares: Option<u64>) -> LinuxResources {
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(q) = quota {
        cpu = cpu.quota(q);
    }
    if let Some(p) = period {
        cpu = cpu.period(p);
    }
    if let Some(s) = shares {
        cpu = cpu.shares(s);
    }
    LinuxResourcesBuilder::default()
        .cpu(cpu.build().unwrap())
        .build()
        .unwrap()
}

fn with_pids(limit: i64) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn v2_create_enables_controllers_in_every_ancestor() {
    let (tmp, cgroup) = v2_cgroup();
    let all = "+cpu +memory +pids +io +cpuset";
    assert_eq!(read(tmp.path().join("cgroup.subtree_control")), all);
    assert_eq!(read(tmp.path().join("ccrun/cgroup.subtree_control")), all);
    // The leaf holds the processes; enabling controllers there would break joining.
    assert_eq!(read(leaf(&tmp).join("cgroup.subtree_control")), "");
    assert_eq!(cgroup.paths(), vec![leaf(&tmp)]);
}

#[test]
fn v2_create_only_enables_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v2_dir(tmp.path());
    fs::write(tmp.path().join("cgroup.subtree_control"), "cpu memory\n").unwrap();
    // The leaf is created by create() itself here (an empty directory, unlike cgroupfs).
    Cgroup::create(&Layout::unified_at(tmp.path()), "solo").unwrap();
    assert_eq!(
        read(tmp.path().join("cgroup.subtree_control")),
        "+pids +io +cpuset"
    );
    assert!(tmp.path().join("solo").is_dir());
}

#[test]
fn v2_memory_and_swap() {
    let (tmp, cgroup) = v2_cgroup();
    cgroup
        .apply(&with_memory(64 << 20, Some(96 << 20)))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "67108864");
    assert_eq!(read(leaf(&tmp).join("memory.swap.max")), "33554432");

    // memory == memory+swap: no swap at all.
    cgroup
        .apply(&with_memory(32 << 20, Some(32 << 20)))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "33554432");
    assert_eq!(read(leaf(&tmp).join("memory.swap.max")), "0");
}

#[test]
fn v2_memory_unlimited_and_reservation() {
    let (tmp, cgroup) = v2_cgroup();
    fs::write(leaf(&tmp).join("memory.max"), "1000").unwrap();
    fs::write(leaf(&tmp).join("memory.swap.max"), "1000").unwrap();
    cgroup.apply(&with_memory(-1, None)).unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "max");
    assert_eq!(read(leaf(&tmp).join("memory.swap.max")), "max");

    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(1i64 << 30)
                .reservation(1i64 << 29)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "1073741824");
    assert_eq!(read(leaf(&tmp).join("memory.low")), "536870912");
    // Swap was not mentioned and memory is limited: swap left alone.
    assert_eq!(read(leaf(&tmp).join("memory.swap.max")), "max");
}

#[test]
fn v2_swap_without_swap_accounting() {
    let (tmp, cgroup) = v2_cgroup();
    fs::remove_file(leaf(&tmp).join("memory.swap.max")).unwrap();
    // Unlimited swap needs no file...
    cgroup.apply(&with_memory(100 << 20, Some(-1))).unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "104857600");
    // ...a swap limit does.
    let err = cgroup
        .apply(&with_memory(100 << 20, Some(200 << 20)))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("memory.swap.max"), "{err}");
}

#[test]
fn v2_cpu_max() {
    let (tmp, cgroup) = v2_cgroup();
    let cpu_max = leaf(&tmp).join("cpu.max");

    cgroup
        .apply(&with_cpu(Some(50_000), Some(100_000), None))
        .unwrap();
    assert_eq!(read(&cpu_max), "50000 100000");

    cgroup
        .apply(&with_cpu(Some(-1), Some(200_000), None))
        .unwrap();
    assert_eq!(read(&cpu_max), "max 200000");

    cgroup.apply(&with_cpu(Some(30_000), None, None)).unwrap();
    assert_eq!(read(&cpu_max), "30000");

    // Period alone keeps the quota that is in place.
    fs::write(&cpu_max, "20000 100000\n").unwrap();
    cgroup.apply(&with_cpu(None, Some(50_000), None)).unwrap();
    assert_eq!(read(&cpu_max), "20000 50000");
}

#[test]
fn v2_cpu_weight_conversion() {
    let (tmp, cgroup) = v2_cgroup();
    let weight = leaf(&tmp).join("cpu.weight");
    for (shares, expected) in [
        (1024, "39"),
        (2, "1"),
        (1, "1"),
        (262_144, "10000"),
        (u64::MAX, "10000"),
        (512, "20"),
    ] {
        cgroup.apply(&with_cpu(None, None, Some(shares))).unwrap();
        assert_eq!(read(&weight), expected, "shares {shares}");
    }
    // shares 0 means unset: the file keeps its last value.
    cgroup.apply(&with_cpu(None, None, Some(0))).unwrap();
    assert_eq!(read(&weight), "20");
    assert_eq!(read(leaf(&tmp).join("cpu.max")), "max 100000");
}

#[test]
fn v2_cpuset() {
    let (tmp, cgroup) = v2_cgroup();
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .cpus("0-1")
                .mems("0")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();
    assert_eq!(read(leaf(&tmp).join("cpuset.cpus")), "0-1");
    assert_eq!(read(leaf(&tmp).join("cpuset.mems")), "0");
}

#[test]
fn v2_pids() {
    let (tmp, cgroup) = v2_cgroup();
    let pids_max = leaf(&tmp).join("pids.max");
    cgroup.apply(&with_pids(100)).unwrap();
    assert_eq!(read(&pids_max), "100");
    cgroup.apply(&with_pids(-1)).unwrap();
    assert_eq!(read(&pids_max), "max");
    cgroup.apply(&with_pids(7)).unwrap();
    cgroup.apply(&with_pids(0)).unwrap();
    assert_eq!(read(&pids_max), "max");
}

fn throttle(major: i64, minor: i64, rate: u64) -> oci_spec::runtime::LinuxThrottleDevice {
    LinuxThrottleDeviceBuilder::default()
        .major(major)
        .minor(minor)
        .rate(rate)
        .build()
        .unwrap()
}

#[test]
fn v2_io_max_line_and_weight() {
    let (tmp, cgroup) = v2_cgroup();
    let r = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500u16)
                .throttle_read_bps_device(vec![throttle(8, 0, 1 << 20)])
                .throttle_write_bps_device(vec![throttle(8, 0, 2 << 20)])
                .throttle_read_iops_device(vec![throttle(8, 0, 100)])
                .throttle_write_iops_device(vec![throttle(8, 0, 200)])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();
    assert_eq!(
        read(leaf(&tmp).join("io.max")),
        "8:0 rbps=1048576 wbps=2097152 riops=100 wiops=200"
    );
    assert_eq!(read(leaf(&tmp).join("io.weight")), "4950");

    // Only the limits given for a device appear on its line.
    let r = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .throttle_write_iops_device(vec![throttle(253, 3, 42)])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();
    assert_eq!(read(leaf(&tmp).join("io.max")), "253:3 wiops=42");
}

#[test]
fn v2_io_bfq_weight_takes_the_blkio_scale() {
    let (tmp, cgroup) = v2_cgroup();
    fs::write(leaf(&tmp).join("io.bfq.weight"), "default 100").unwrap();
    let r = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(300u16)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();
    assert_eq!(read(leaf(&tmp).join("io.bfq.weight")), "300");
    assert_eq!(read(leaf(&tmp).join("io.weight")), "default 100");
}

#[test]
fn v2_oom_kill_count_and_stats() {
    let (_tmp, cgroup) = v2_cgroup();
    assert_eq!(cgroup.oom_kill_count().unwrap(), 2);
    let stats = cgroup.stats().unwrap();
    assert_eq!(stats.memory.usage.usage, 4096);
    assert_eq!(stats.memory.usage.max, 8192);
    assert_eq!(stats.memory.usage.limit, u64::MAX, "memory.max is \"max\"");
    assert_eq!(stats.memory.usage.failcnt, 7, "memory.events max");
    assert_eq!(stats.memory.raw["file"], 100);
    assert_eq!(stats.memory.cache, 100);
    assert_eq!(stats.cpu.usage.total, 1_500_000);
    assert_eq!(stats.cpu.usage.user, 1_000_000);
    assert_eq!(stats.cpu.usage.kernel, 500_000);
    assert_eq!(stats.cpu.throttling.periods, 10);
    assert_eq!(stats.cpu.throttling.throttled_periods, 4);
    assert_eq!(stats.cpu.throttling.throttled_time, 2_000);
    assert_eq!(stats.pids.current, 3);
    assert_eq!(stats.pids.limit, 0, "pids.max is \"max\"");
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["cpu"]["usage"]["total"], 1_500_000);
    assert_eq!(json["memory"]["raw"]["file"], 100);
}

#[test]
fn v2_freeze_writes_cgroup_freeze_and_waits_for_events() {
    let (tmp, cgroup) = v2_cgroup();
    fs::write(leaf(&tmp).join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cgroup.freeze().unwrap();
    assert_eq!(read(leaf(&tmp).join("cgroup.freeze")), "1");

    // The kernel never reports "frozen 0": thaw must time out, not pretend.
    let err = cgroup.thaw().unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    fs::write(leaf(&tmp).join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    cgroup.thaw().unwrap();
    assert_eq!(read(leaf(&tmp).join("cgroup.freeze")), "0");
}

#[test]
fn absent_controller_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v2_dir(tmp.path());
    fs::write(
        tmp.path().join("cgroup.controllers"),
        "cpu memory io cpuset",
    )
    .unwrap();
    let cgroup = Cgroup::create(&Layout::unified_at(tmp.path()), "/x").unwrap();
    assert_eq!(
        read(tmp.path().join("cgroup.subtree_control")),
        "+cpu +memory +io +cpuset"
    );
    let err = cgroup.apply(&with_pids(10)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "pids",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"pids\""), "{err}");
}

#[test]
fn unsupported_hugepage_size_is_an_error_naming_the_file() {
    let (_tmp, cgroup) = v2_cgroup();
    let r = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(1i64 << 21)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    // The fake root lists no hugetlb controller.
    let err = cgroup.apply(&r).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "hugetlb",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_paths_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v2_dir(tmp.path());
    let layout = Layout::unified_at(tmp.path());
    for bad in ["", "/", "//", "../x", "/a/../b", "a/./b"] {
        let err = Cgroup::open(&layout, bad).unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err}");
    }
    let cgroup = Cgroup::open(&layout, "a/b").unwrap();
    assert_eq!(cgroup.paths(), vec![tmp.path().join("a/b")]);
}

#[test]
fn destroy_of_a_missing_cgroup_is_fine() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v2_dir(tmp.path());
    let cgroup = Cgroup::open(&Layout::unified_at(tmp.path()), "/ccrun/gone").unwrap();
    cgroup.destroy().unwrap();
    cgroup.destroy().unwrap();
    assert_eq!(cgroup.procs().unwrap(), Vec::<i32>::new());
}

/// Files of v1 directories, per controller.
fn fake_v1_dir(dir: &Path, controller: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("cgroup.procs"), "").unwrap();
    let files: &[(&str, &str)] = match controller {
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.soft_limit_in_bytes", "9223372036854771712"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n",
            ),
        ],
        "cpu" => &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
        ],
        "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")],
        "pids" => &[("pids.max", "max")],
        "blkio" => &[
            ("blkio.bfq.weight", "100"),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
        _ => &[],
    };
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// A fake hybrid host like this machine: v1 controllers plus a unified mount whose
/// controllers are `unified_controllers`; "/ccrun/c1" pre-populated everywhere.
fn hybrid(unified_controllers: &str) -> (TempDir, Cgroup) {
    let tmp = tempfile::tempdir().unwrap();
    let controllers = ["memory", "cpu", "cpuset", "pids", "blkio"];
    for c in controllers {
        for dir in ["", "ccrun", "ccrun/c1"] {
            fake_v1_dir(&tmp.path().join(c).join(dir), c);
        }
    }
    fs::write(tmp.path().join("cpuset/cpuset.cpus"), "0-3\n").unwrap();
    fs::write(tmp.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
    for dir in ["", "ccrun", "ccrun/c1"] {
        let dir = tmp.path().join("unified").join(dir);
        fake_v2_dir(&dir);
        fs::write(dir.join("cgroup.controllers"), unified_controllers).unwrap();
        fs::write(dir.join("hugetlb.2MB.max"), "max").unwrap();
    }
    let layout = Layout::legacy_at(tmp.path(), &controllers, Some("unified"));
    let cgroup = Cgroup::create(&layout, "ccrun/c1").unwrap();
    (tmp, cgroup)
}

#[test]
fn hybrid_routes_v1_controllers_to_v1_and_hugetlb_to_v2() {
    let (tmp, cgroup) = hybrid("hugetlb");
    let p = tmp.path();
    // The hybrid host's unified root is the machine's: left as it was.
    assert_eq!(read(p.join("unified/cgroup.subtree_control")), "");
    assert_eq!(
        read(p.join("unified/ccrun/cgroup.subtree_control")),
        "+hugetlb"
    );
    // cpuset.cpus/mems copied down through every created level.
    assert_eq!(read(p.join("cpuset/ccrun/cpuset.cpus")), "0-3");
    assert_eq!(read(p.join("cpuset/ccrun/c1/cpuset.cpus")), "0-3");
    assert_eq!(read(p.join("cpuset/ccrun/c1/cpuset.mems")), "0");

    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100i64 << 20)
                .swap(150i64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .quota(25_000i64)
                .period(50_000u64)
                .shares(512u64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(200u16)
                .throttle_read_bps_device(vec![throttle(8, 0, 1000)])
                .throttle_write_iops_device(vec![throttle(8, 16, 20)])
                .build()
                .unwrap(),
        )
        .hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4i64 << 20)
            .build()
            .unwrap()])
        .build()
        .unwrap();
    cgroup.apply(&r).unwrap();
    let c1 = |c: &str, f: &str| read(p.join(c).join("ccrun/c1").join(f));
    assert_eq!(c1("memory", "memory.limit_in_bytes"), "104857600");
    assert_eq!(c1("memory", "memory.memsw.limit_in_bytes"), "157286400");
    assert_eq!(c1("cpu", "cpu.cfs_quota_us"), "25000");
    assert_eq!(c1("cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(c1("cpu", "cpu.shares"), "512");
    assert_eq!(c1("pids", "pids.max"), "max");
    // Only blkio.bfq.weight exists, as on this machine.
    assert_eq!(c1("blkio", "blkio.bfq.weight"), "200");
    assert_eq!(c1("blkio", "blkio.throttle.read_bps_device"), "8:0 1000");
    assert_eq!(c1("blkio", "blkio.throttle.write_iops_device"), "8:16 20");
    assert_eq!(c1("unified", "hugetlb.2MB.max"), "4194304");
    // The v2 files of memory in the unified dir were not touched.
    assert_eq!(c1("unified", "memory.max"), "max");

    assert_eq!(cgroup.oom_kill_count().unwrap(), 5);
    let mut expected: Vec<PathBuf> = ["unified", "blkio", "cpu", "cpuset", "memory", "pids"]
        .iter()
        .map(|c| p.join(c).join("ccrun/c1"))
        .collect();
    expected[1..].sort();
    assert_eq!(cgroup.paths(), expected);
}

#[test]
fn hybrid_prefers_v2_when_unified_has_the_controller() {
    let (tmp, cgroup) = hybrid("memory hugetlb");
    cgroup.apply(&with_memory(10 << 20, None)).unwrap();
    let p = tmp.path();
    assert_eq!(read(p.join("unified/ccrun/c1/memory.max")), "10485760");
    assert_eq!(
        read(p.join("memory/ccrun/c1/memory.limit_in_bytes")),
        "9223372036854771712"
    );
    assert_eq!(cgroup.oom_kill_count().unwrap(), 2);
    assert!(!cgroup.paths().contains(&p.join("memory/ccrun/c1")));
}

#[test]
fn v1_swap_limit_without_memsw_file_is_an_error() {
    let (tmp, cgroup) = hybrid("hugetlb");
    let memsw = tmp
        .path()
        .join("memory/ccrun/c1/memory.memsw.limit_in_bytes");
    fs::remove_file(&memsw).unwrap();
    let err = cgroup
        .apply(&with_memory(10 << 20, Some(20 << 20)))
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(
        err.to_string().contains("memory.memsw.limit_in_bytes"),
        "{err}"
    );
    // Unlimited swap is fine without the file.
    cgroup.apply(&with_memory(10 << 20, Some(-1))).unwrap();
    assert_eq!(
        read(tmp.path().join("memory/ccrun/c1/memory.limit_in_bytes")),
        "10485760"
    );
}

#[test]
fn pure_v1_without_unified_has_no_hugetlb_and_no_v2_dir() {
    let tmp = tempfile::tempdir().unwrap();
    fake_v1_dir(&tmp.path().join("pids"), "pids");
    let layout = Layout::legacy_at(tmp.path(), &["pids"], None);
    let cgroup = Cgroup::create(&layout, "/a").unwrap();
    assert_eq!(cgroup.paths(), vec![tmp.path().join("pids/a")]);
    let err = cgroup.apply(&with_memory(1 << 20, None)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "memory",
                ..
            }
        ),
        "{err}"
    );
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

#[test]
fn v2_rdma_max_lines() {
    let (tmp, cgroup) = v2_cgroup();
    // The fake root lists no rdma controller: a clear error naming it.
    let r = resources(r#"{"rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 1000}}}"#);
    let err = cgroup.apply(&r).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "rdma",
                ..
            }
        ),
        "{err}"
    );

    for dir in ["", "ccrun", "ccrun/c1"] {
        fs::write(
            tmp.path().join(dir).join("cgroup.controllers"),
            "cpu memory pids io cpuset rdma",
        )
        .unwrap();
    }
    let cgroup = Cgroup::open(&Layout::unified_at(tmp.path()), "/ccrun/c1").unwrap();
    cgroup.apply(&r).unwrap();
    assert_eq!(
        read(leaf(&tmp).join("rdma.max")),
        "mlx5_0 hca_handle=3 hca_object=1000"
    );
    cgroup
        .apply(&resources(r#"{"rdma": {"mlx5_0": {"hcaObjects": 7}}}"#))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("rdma.max")), "mlx5_0 hca_object=7");
}

#[test]
fn v2_hugetlb_limits_reservations_too() {
    let (tmp, _) = v2_cgroup();
    for dir in ["", "ccrun", "ccrun/c1"] {
        fs::write(
            tmp.path().join(dir).join("cgroup.controllers"),
            "cpu memory pids io cpuset hugetlb",
        )
        .unwrap();
    }
    let cgroup = Cgroup::open(&Layout::unified_at(tmp.path()), "/ccrun/c1").unwrap();
    cgroup
        .apply(&resources(
            r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#,
        ))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("hugetlb.2MB.max")), "4194304");
    assert_eq!(read(leaf(&tmp).join("hugetlb.2MB.rsvd.max")), "4194304");
}

#[test]
fn v2_refuses_memory_settings_it_does_not_have() {
    let (tmp, cgroup) = v2_cgroup();
    for (json, needle) in [
        (r#"{"memory": {"swappiness": 10}}"#, "memory.swappiness"),
        (r#"{"memory": {"kernelTCP": 1048576}}"#, "memory.kernelTCP"),
        (
            r#"{"memory": {"disableOOMKiller": true}}"#,
            "memory.disableOOMKiller",
        ),
        (
            r#"{"memory": {"useHierarchy": false}}"#,
            "memory.useHierarchy",
        ),
        (r#"{"blockIO": {"leafWeight": 100}}"#, "leafWeight"),
    ] {
        let err = cgroup.apply(&resources(json)).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{json}: {err}");
        assert!(err.to_string().contains(needle), "{json}: {err}");
    }
    // Harmless values of the same settings are accepted; kernel memory is ignored.
    cgroup
        .apply(&resources(
            r#"{"memory": {"disableOOMKiller": false, "useHierarchy": true, "kernel": 1048576}}"#,
        ))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "max");
}

#[test]
fn v2_check_before_update_refuses_a_limit_below_usage() {
    let (tmp, cgroup) = v2_cgroup();
    // memory.current is 4096 in the fake tree.
    let below = r#"{"memory": {"limit": 2048, "checkBeforeUpdate": true}}"#;
    let err = cgroup.update(&resources(below)).unwrap_err();
    assert!(err.to_string().contains("checkBeforeUpdate"), "{err}");
    assert_eq!(read(leaf(&tmp).join("memory.max")), "max");
    cgroup
        .update(&resources(
            r#"{"memory": {"limit": 8192, "checkBeforeUpdate": true}}"#,
        ))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.max")), "8192");
}

#[test]
fn v2_update_writes_only_what_is_given() {
    let (tmp, cgroup) = v2_cgroup();
    cgroup
        .apply(&resources(
            r#"{"memory": {"limit": 1048576, "swap": 3145728}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 10}}"#,
        ))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("memory.swap.max")), "2097152");
    cgroup
        .update(&resources(r#"{"cpu": {"quota": 50000}}"#))
        .unwrap();
    assert_eq!(read(leaf(&tmp).join("cpu.max")), "50000");
    assert_eq!(read(leaf(&tmp).join("memory.max")), "1048576");
    assert_eq!(read(leaf(&tmp).join("memory.swap.max")), "2097152");
    assert_eq!(read(leaf(&tmp).join("pids.max")), "10");
}

#[test]
fn network_needs_v1_controllers() {
    let (_tmp, cgroup) = v2_cgroup();
    let err = cgroup
        .apply(&resources(r#"{"network": {"classID": 1048577}}"#))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "net_cls",
                ..
            }
        ),
        "{err}"
    );
    let err = cgroup
        .apply(&resources(
            r#"{"network": {"priorities": [{"name": "eth0", "priority": 5}]}}"#,
        ))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "net_prio",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn v1_network_classid_and_ifpriomap() {
    let tmp = tempfile::tempdir().unwrap();
    for c in ["net_cls", "net_prio"] {
        for dir in ["", "ccrun", "ccrun/c1"] {
            let d = tmp.path().join(c).join(dir);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cgroup.procs"), "").unwrap();
            fs::write(
                d.join(format!(
                    "{c}.{}",
                    if c == "net_cls" {
                        "classid"
                    } else {
                        "ifpriomap"
                    }
                )),
                "",
            )
            .unwrap();
        }
    }
    let layout = Layout::legacy_at(tmp.path(), &["net_cls", "net_prio"], None);
    let cgroup = Cgroup::open(&layout, "/ccrun/c1").unwrap();
    cgroup
        .apply(&resources(
            r#"{"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 2}]}}"#,
        ))
        .unwrap();
    assert_eq!(
        read(tmp.path().join("net_cls/ccrun/c1/net_cls.classid")),
        "1048577"
    );
    assert_eq!(
        read(tmp.path().join("net_prio/ccrun/c1/net_prio.ifpriomap")),
        "lo 2"
    );
}

#[test]
fn v1_devices_are_written_in_order_from_deny_all() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("devices/ccrun/c1");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("devices.allow"), "").unwrap();
    fs::write(d.join("devices.deny"), "").unwrap();
    let layout = Layout::legacy_at(tmp.path(), &["devices"], None);
    let cgroup = Cgroup::open(&layout, "/ccrun/c1").unwrap();
    assert_eq!(
        cgroup.device_backend().unwrap(),
        ccrun_cgroups::DeviceBackend::V1(d.clone())
    );
    // A plain file keeps only the last write, which is enough to see the last rule
    // of each kind; the real-host test checks the kernel's resulting list.
    cgroup
        .apply(&resources(
            r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}, {"allow": false, "type": "b", "major": 8}]}"#,
        ))
        .unwrap();
    assert_eq!(read(d.join("devices.allow")), "c 1:3 rw");
    assert_eq!(read(d.join("devices.deny")), "b 8:* rwm");

    let err = cgroup
        .apply(&resources(
            r#"{"devices": [{"allow": true, "access": "rwx"}]}"#,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("devices.access"), "{err}");
}

#[test]
fn devices_without_any_devices_controller_use_ebpf_on_v2() {
    let (tmp, cgroup) = v2_cgroup();
    assert_eq!(
        cgroup.device_backend().unwrap(),
        ccrun_cgroups::DeviceBackend::Ebpf(leaf(&tmp))
    );
    let no_devices = Layout::legacy_at(tmp.path(), &["memory"], None);
    let err = Cgroup::open(&no_devices, "/x")
        .unwrap()
        .device_backend()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "devices",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn unified_on_v1_only_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::legacy_at(tmp.path(), &["memory"], None);
    let cgroup = Cgroup::open(&layout, "/ccrun/c1").unwrap();
    let err = cgroup
        .apply(&resources(r#"{"unified": {"memory.high": "1000000"}}"#))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ControllerMissing {
                controller: "cgroup2",
                ..
            }
        ),
        "{err}"
    );
}
