//! cgroup management for ccrun: detects the host's layout (pure v2, hybrid, v1)
//! and applies OCI `LinuxResources` to a per-container cgroup behind one interface.
//!
//! [`Layout::detect`] reads the mounts; [`Cgroup::create`] makes the cgroup at an
//! absolute path in every hierarchy; [`Cgroup::apply`] writes limits, using the v2
//! writer for a controller whenever the unified hierarchy has it and the v1 writer
//! otherwise.
//!
//! # What is honoured
//!
//! Every field of `linux.resources` in the runtime spec:
//!
//! | spec field | v1 | v2 |
//! |---|---|---|
//! | `devices` | `devices.deny` `a`, then each rule to `devices.allow`/`devices.deny` | eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` filter on the cgroup directory |
//! | `memory.limit`, `reservation`, `swap` | `memory.limit_in_bytes`, `soft_limit_in_bytes`, `memsw.limit_in_bytes` | `memory.max`, `memory.low`, `memory.swap.max` (= swap - limit) |
//! | `memory.kernel` | `memory.kmem.limit_in_bytes` (ignored, debug log, where the kernel refuses it) | ignored (debug log), as runc |
//! | `memory.kernelTCP`, `swappiness`, `disableOOMKiller`, `useHierarchy` | `kmem.tcp.limit_in_bytes`, `swappiness`, `oom_control`, `use_hierarchy` | error when set (`false`/`true` no-ops accepted) |
//! | `memory.checkBeforeUpdate` | refuse a limit below `memory.usage_in_bytes` | below `memory.current` |
//! | `cpu.shares`, `quota`/`period`, `burst`, `idle` | `cpu.shares`, `cfs_quota_us`/`cfs_period_us`, `cfs_burst_us`, `cpu.idle` | `cpu.weight` (converted), `cpu.max`, `cpu.max.burst`, `cpu.idle` |
//! | `cpu.realtimeRuntime`/`realtimePeriod` | `cpu.rt_runtime_us`/`rt_period_us` | error |
//! | `cpu.cpus`/`mems` | `cpuset.cpus`/`mems` | same |
//! | `blockIO.weight`, `weightDevice` | `blkio.weight`/`weight_device` (or the `bfq.` ones) | `io.bfq.weight` or `io.weight` (converted) |
//! | `blockIO.leafWeight`, per-device `leafWeight` | `blkio.leaf_weight`/`leaf_weight_device` (CFQ only) | error |
//! | `blockIO.throttle*Device` | `blkio.throttle.*_device` | one `io.max` line per device |
//! | `hugepageLimits` | `hugetlb.<size>.limit_in_bytes` (+ `.rsvd.` where present) | `hugetlb.<size>.max` (+ `.rsvd.max`) |
//! | `network.classID`/`priorities` | `net_cls.classid`, `net_prio.ifpriomap` | error (no v2 equivalent) |
//! | `rdma` | `rdma.max` | `rdma.max` |
//! | `pids.limit` | `pids.max` | `pids.max` |
//! | `unified` | error (needs a cgroup2 mount) | written verbatim |
//!
//! A setting whose controller or interface file is missing on the host is an
//! [`Error::ControllerMissing`] or [`Error::Unsupported`] naming it, never ignored.
//!
//! # Devices
//!
//! The rules are evaluated like runc: default deny, last matching rule wins (per
//! access right). [`Cgroup::device_backend`] tells which mechanism a cgroup uses:
//! the v1 devices controller when mounted (also on hybrid hosts, where it is what
//! governs the tasks), else the eBPF filter on the cgroup2 directory (pure v2, or
//! a hybrid host without v1 devices). Applying again ([`Cgroup::update`]) replaces
//! the rules: v1 restarts from deny-all, the eBPF program is swapped with
//! `BPF_F_REPLACE`. Runtimes append [`default_allowed_devices`] (and
//! [`allow_device`] per `linux.devices` entry) to the spec's rules, as runc does.
//! Rules must be applied before tasks join: a v1 re-apply briefly denies all.
//!
//! # For an OCI runtime CLI
//!
//! - `update`: [`Cgroup::update`] writes only the settings given.
//! - `pause`/`resume`/state: [`Cgroup::freeze`], [`Cgroup::thaw`], [`Cgroup::is_frozen`].
//! - `kill --all`: [`Cgroup::kill_all`].
//! - `events --stats`: [`Cgroup::stats`] returns [`Stats`], serialisable to the
//!   JSON runc prints as the event's `data`.

#![warn(missing_docs)]

mod bpf;
mod cgroup;
mod devices;
mod error;
mod fs;
mod layout;
mod limits;
mod remount;
mod stats;
mod v1;
mod v2;
mod writer;

pub use cgroup::{Cgroup, DeviceBackend, SelfJoin};
pub use devices::{allow_device, default_allowed_devices};
pub use error::{Error, Result};
pub use layout::Layout;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, CpusetStats, HugetlbStats, MemoryEntry,
    MemoryStats, PidsStats, Stats, Throttling,
};
