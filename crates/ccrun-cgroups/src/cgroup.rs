//! [`Cgroup`]: one container's cgroup across every hierarchy of a [`Layout`], routing
//! each controller to the v2 writer if the unified hierarchy has it, else to v1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::fs;
use crate::layout::Layout;
use crate::limits::{Limits, NetworkLimits};
use crate::stats::{self, Stats};
use crate::v1::V1;
use crate::v2::V2;
use crate::writer::{FreezerState, Writer};

/// Controllers this crate enables in `cgroup.subtree_control` of v2 ancestors.
const V2_MANAGED: &[&str] = &["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma"];

/// How long `destroy` waits for killed tasks to leave, and `freeze`/`thaw` to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Polling interval while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A controller as named in v1 and in v2, plus the name used in error messages.
struct Controller {
    v1: &'static str,
    v2: &'static str,
    display: &'static str,
}

const MEMORY: Controller = Controller {
    v1: "memory",
    v2: "memory",
    display: "memory",
};
const CPU: Controller = Controller {
    v1: "cpu",
    v2: "cpu",
    display: "cpu",
};
const CPUSET: Controller = Controller {
    v1: "cpuset",
    v2: "cpuset",
    display: "cpuset",
};
const PIDS: Controller = Controller {
    v1: "pids",
    v2: "pids",
    display: "pids",
};
const IO: Controller = Controller {
    v1: "blkio",
    v2: "io",
    display: "blkio/io",
};
const HUGETLB: Controller = Controller {
    v1: "hugetlb",
    v2: "hugetlb",
    display: "hugetlb",
};

const RDMA: Controller = Controller {
    v1: "rdma",
    v2: "rdma",
    display: "rdma",
};

/// How a cgroup enforces `linux.resources.devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceBackend {
    /// The v1 devices controller (`devices.allow`/`devices.deny`) in this directory.
    V1(PathBuf),
    /// An eBPF device program attached to this cgroup2 directory.
    Ebpf(PathBuf),
}

/// One controller's directory, in whichever hierarchy serves it.
enum Hierarchy<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// This cgroup's place in the unified (v2) hierarchy.
#[derive(Debug, Clone)]
struct Unified {
    /// Mount point of the cgroup2 filesystem.
    root: PathBuf,
    /// This cgroup's directory.
    dir: PathBuf,
    /// Controllers the unified hierarchy offers (root `cgroup.controllers`).
    controllers: BTreeSet<String>,
}

/// This cgroup's place in one v1 hierarchy.
#[derive(Debug, Clone)]
struct Legacy {
    /// Mount point of the hierarchy.
    root: PathBuf,
    /// This cgroup's directory.
    dir: PathBuf,
}

/// How often `create` starts over when a parent vanished under it.
const CREATE_ATTEMPTS: u32 = 5;

/// One container's cgroup: a single v2 directory, or one directory per v1 controller.
#[derive(Debug, Clone)]
pub struct Cgroup {
    /// The cgroup path relative to each hierarchy root, without a leading slash.
    path: PathBuf,
    /// Present when the layout has a cgroup2 mount.
    unified: Option<Unified>,
    /// v1 controller name -> hierarchy, for controllers the unified hierarchy lacks.
    legacy: BTreeMap<String, Legacy>,
}

impl Cgroup {
    /// Creates the cgroup at the absolute path `path` (e.g. `/ccrun/<id>`; a leading
    /// slash is optional, the path is never relative to the caller's own cgroup) in every
    /// hierarchy, creating parents; enables controllers in the parents' subtree_control on v2;
    /// initialises v1 cpuset.cpus/mems from the parent so tasks can join.
    ///
    /// An already existing directory is reused.
    pub fn create(layout: &Layout, path: &str) -> Result<Cgroup> {
        let cgroup = Cgroup::open(layout, path)?;
        let mut attempt = 1;
        // A shared parent (`/ccrun`) is removed by `destroy` once empty; if that races
        // with us, a level vanishes under our feet and we start again from the root.
        while let Err(e) = cgroup.create_dirs(layout) {
            if !e.is_vanished() || attempt == CREATE_ATTEMPTS {
                return Err(e);
            }
            attempt += 1;
        }
        Ok(cgroup)
    }

    fn create_dirs(&self, layout: &Layout) -> Result<()> {
        if let Some(unified) = &self.unified {
            // On a pure v2 host the root must delegate the controllers, as runc and crun
            // ensure. On a hybrid host the unified root belongs to the machine's own setup:
            // use what it already delegates and never change it.
            let enable_at_root = matches!(layout, Layout::Unified { .. });
            create_v2(unified, &self.path, enable_at_root)?;
        }
        for legacy in self.distinct_legacy() {
            create_levels(&legacy.root, &self.path)?;
        }
        if let Some(cpuset) = self.legacy.get("cpuset") {
            init_v1_cpuset(&cpuset.root, &self.path)?;
        }
        Ok(())
    }

    /// Opens an existing cgroup (for kill/delete from another process).
    ///
    /// Only the hierarchy roots are read; the cgroup's own directories need not exist,
    /// so that `destroy` of an already removed cgroup succeeds.
    pub fn open(layout: &Layout, path: &str) -> Result<Cgroup> {
        let path = normalize(path)?;
        match layout {
            Layout::Unified { root } => Ok(Cgroup {
                unified: Some(unified(root, &path)?),
                legacy: BTreeMap::new(),
                path,
            }),
            Layout::Legacy {
                controllers,
                unified: unified_root,
            } => {
                let unified = unified_root
                    .as_deref()
                    .map(|root| unified(root, &path))
                    .transpose()?;
                let legacy = controllers
                    .iter()
                    .filter(|(name, _)| {
                        // The rule: a controller the unified hierarchy has is used there.
                        !unified
                            .as_ref()
                            .is_some_and(|u| u.controllers.contains(v2_name(name)))
                    })
                    .map(|(name, root)| {
                        let legacy = Legacy {
                            root: root.clone(),
                            dir: root.join(&path),
                        };
                        (name.clone(), legacy)
                    })
                    .collect();
                Ok(Cgroup {
                    path,
                    unified,
                    legacy,
                })
            }
        }
    }

    /// Applies OCI resources to a new cgroup, before any task joins: memory (limit,
    /// reservation, swap, kernel, kernelTCP, swappiness, disableOOMKiller,
    /// useHierarchy), cpu (shares/weight, quota/period, burst, realtime, idle),
    /// cpuset, pids, blkio/io (weights, leaf weights, throttling), hugetlb (and its
    /// reservations), devices, network (v1 net_cls/net_prio), rdma and unified.
    ///
    /// A setting whose controller (or interface file) is absent on this host is an
    /// error naming it, never silently dropped; the only exception is the kernel
    /// memory limit, which kernels since 5.16 refuse and which is then ignored with
    /// a debug log, as runc does.
    ///
    /// Devices go to the v1 devices controller when it is mounted (so on a hybrid host
    /// with both, v1 is used), else to an eBPF filter attached to the cgroup2
    /// directory; see [`Cgroup::device_backend`].
    pub fn apply(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.set(resources)
    }

    /// Changes the resources of a live cgroup (`runc update`): only the settings
    /// present in `resources` are written, the rest stay as they are. Memory
    /// `checkBeforeUpdate` refuses a limit below the current usage. A device list
    /// replaces the previous one as a whole (v1: re-applied from deny-all; v2: the
    /// eBPF filter is swapped atomically).
    ///
    /// A swap limit given without a memory limit (`runc update --memory-swap`) is
    /// taken relative to the cgroup's current memory limit.
    pub fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let swap_alone = resources.memory().as_ref().is_some_and(|m| {
            m.swap().is_some_and(|s| s != 0) && matches!(m.limit(), None | Some(0))
        });
        if !swap_alone {
            return self.set(resources);
        }
        let mut resources = resources.clone();
        let current = self.memory_limit()?;
        if let Some(memory) = resources.memory_mut() {
            memory.set_limit(Some(current));
        }
        self.set(&resources)
    }

    /// The current memory limit in the OCI convention (-1 for unlimited).
    fn memory_limit(&self) -> Result<i64> {
        let (path, text) = match self.hierarchy(&MEMORY) {
            Some(Hierarchy::V1(dir)) => {
                let path = dir.join("memory.limit_in_bytes");
                let text = fs::read(&path)?;
                (path, text)
            }
            Some(Hierarchy::V2(dir)) => {
                let path = dir.join("memory.max");
                let text = fs::read(&path)?;
                (path, text)
            }
            None => {
                return Err(Error::ControllerMissing {
                    controller: MEMORY.display,
                    setting: "memory.swap",
                })
            }
        };
        if text.trim() == "max" {
            return Ok(-1);
        }
        // v1 shows "unlimited" as the largest page-aligned i64.
        let value = fs::parse_u64(&path, &text)?;
        Ok(i64::try_from(value)
            .ok()
            .filter(|&v| v < 1 << 62)
            .unwrap_or(-1))
    }

    fn set(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let limits = Limits::from_oci(resources)?;
        if let Some(m) = &limits.memory {
            self.writer(&MEMORY, "memory limits")?.memory(m)?;
        }
        if let Some(c) = &limits.cpu {
            self.writer(&CPU, "cpu limits")?.cpu(c)?;
        }
        if let Some(c) = &limits.cpuset {
            self.writer(&CPUSET, "cpuset")?.cpuset(c)?;
        }
        if let Some(p) = limits.pids {
            self.writer(&PIDS, "pids limit")?.pids(p)?;
        }
        if let Some(io) = &limits.io {
            self.writer(&IO, "block I/O limits")?.io(io)?;
        }
        for h in &limits.hugetlb {
            self.writer(&HUGETLB, "hugepage limits")?.hugetlb(h)?;
        }
        for (device, limit) in &limits.rdma {
            self.writer(&RDMA, "rdma limits")?.rdma(device, limit)?;
        }
        if let Some(n) = &limits.network {
            self.network(n)?;
        }
        if !limits.devices.is_empty() {
            match self.device_backend()? {
                DeviceBackend::V1(dir) => V1::new(&dir).devices(&limits.devices)?,
                DeviceBackend::Ebpf(dir) => crate::bpf::apply(&dir, &limits.devices)?,
            }
        }
        if !limits.unified.is_empty() {
            let Some(unified) = &self.unified else {
                return Err(Error::ControllerMissing {
                    controller: "cgroup2",
                    setting: "unified resources",
                });
            };
            for (key, value) in &limits.unified {
                let path = unified.dir.join(key);
                if !fs::exists(&path) {
                    // The key's controller is not enabled here (or no such file).
                    return Err(Error::Unsupported {
                        setting: format!("unified {key:?}"),
                        path,
                    });
                }
                fs::write(&path, value)?;
            }
        }
        Ok(())
    }

    /// Where device rules are enforced: the v1 devices controller if it is mounted
    /// (preferred on hybrid hosts, where the container's tasks are subject to it
    /// anyway), else an eBPF program on the cgroup2 directory (pure v2, or a hybrid
    /// host without the v1 devices controller).
    pub fn device_backend(&self) -> Result<DeviceBackend> {
        if let Some(devices) = self.legacy.get("devices") {
            if self.unified.is_some() {
                tracing::debug!("hybrid host: device rules use the v1 devices controller");
            }
            return Ok(DeviceBackend::V1(devices.dir.clone()));
        }
        if let Some(unified) = &self.unified {
            return Ok(DeviceBackend::Ebpf(unified.dir.clone()));
        }
        Err(Error::ControllerMissing {
            controller: "devices",
            setting: "device rules",
        })
    }

    /// Number of eBPF device programs attached directly to this cgroup's cgroup2
    /// directory (0 or 1 when ccrun manages it); for tests and inspection.
    pub fn device_programs(&self) -> Result<usize> {
        let Some(unified) = &self.unified else {
            return Ok(0);
        };
        crate::bpf::attached_count(&unified.dir)
    }

    /// net_cls / net_prio exist only in v1.
    fn network(&self, n: &NetworkLimits) -> Result<()> {
        let missing = |controller, setting| Error::ControllerMissing {
            controller,
            setting,
        };
        if let Some(class_id) = n.class_id {
            let dir = self
                .legacy
                .get("net_cls")
                .ok_or_else(|| missing("net_cls", "network.classID (cgroup v1 only)"))?;
            V1::new(&dir.dir).net_cls(class_id)?;
        }
        if !n.priorities.is_empty() {
            let dir = self
                .legacy
                .get("net_prio")
                .ok_or_else(|| missing("net_prio", "network.priorities (cgroup v1 only)"))?;
            V1::new(&dir.dir).net_prio(&n.priorities)?;
        }
        Ok(())
    }

    /// Moves a process into the cgroup (all hierarchies).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::InvalidResource {
                setting: "pid",
                reason: format!("{pid} is not a process id"),
            });
        }
        for dir in self.paths() {
            fs::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Opens what a new, single-threaded process needs to move *itself* into the
    /// cgroup's v1 hierarchies (see [`SelfJoin`]); the hierarchies it does not cover
    /// (the unified one) still need [`Cgroup::add_process_unified`] for that process.
    pub fn open_self_join(&self) -> Result<SelfJoin> {
        let mut tasks = Vec::new();
        for legacy in self.distinct_legacy() {
            let path = legacy.dir.join("tasks");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| Error::Write {
                    path: path.clone(),
                    value: "0".into(),
                    source,
                })?;
            tasks.push((path, file));
        }
        Ok(SelfJoin { tasks })
    }

    /// Moves the calling process, which must be single-threaded, into the cgroup: as
    /// [`Cgroup::add_process`] with its own pid, without the grace period (see
    /// [`SelfJoin`]).
    pub fn join_self(&self) -> Result<()> {
        self.open_self_join()?.join()?;
        self.add_process_unified(std::process::id() as i32)
    }

    /// An open fd of the cgroup's unified (v2) directory, for starting a process right
    /// in it (clone3's `CLONE_INTO_CGROUP`) instead of moving it there with
    /// [`Cgroup::add_process_unified`]; `None` without a unified hierarchy.
    pub fn open_unified_dir(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let Some(unified) = &self.unified else {
            return Ok(None);
        };
        let dir = std::fs::File::open(&unified.dir).map_err(|source| Error::Read {
            path: unified.dir.clone(),
            source,
        })?;
        Ok(Some(dir.into()))
    }

    /// Moves process `pid` into the cgroup's unified (v2) directory only: the part of
    /// [`Cgroup::add_process`] a [`SelfJoin`] leaves to the parent.
    pub fn add_process_unified(&self, pid: i32) -> Result<()> {
        if let Some(unified) = &self.unified {
            fs::write(&unified.dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids currently in the cgroup, including those in child cgroups below it,
    /// sorted and without duplicates. Directories that do not exist contribute nothing.
    pub fn procs(&self) -> Result<Vec<i32>> {
        Ok(self.members()?.into_keys().collect())
    }

    /// Number of OOM kills recorded (v1 memory.oom_control `oom_kill`, v2 memory.events `oom_kill`).
    pub fn oom_kill_count(&self) -> Result<u64> {
        self.writer(&MEMORY, "OOM kill count")?.oom_kill_count()
    }

    /// Freezer (v1 freezer.state, v2 cgroup.freeze). Waits until every task is frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws a frozen cgroup and waits until it is thawed.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    /// True when the cgroup is frozen (paused). A v1 freeze still in progress
    /// (`FREEZING`) is not frozen yet.
    pub fn is_frozen(&self) -> Result<bool> {
        let (writer, _) = self.freezer()?;
        Ok(writer.freezer_state()? == FreezerState::Frozen)
    }

    /// Sends `signal` to every process in the cgroup and in cgroups below it
    /// (`kill --all`). The cgroup is frozen around the walk, where a freezer exists,
    /// so that no process forks past it; a cgroup that was paused stays paused
    /// unless the signal is SIGKILL (frozen tasks would never act on it).
    /// Processes that exit meanwhile are fine; this process and pid 1 are refused.
    pub fn kill_all(&self, signal: Signal) -> Result<()> {
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen
            && match self.freeze() {
                Ok(()) => true,
                Err(e) => {
                    // Signal anyway; never leave a half-done v1 FREEZING behind.
                    tracing::debug!(error = %e, "could not freeze before signalling");
                    self.thaw_if_frozen()?;
                    false
                }
            };
        let result = self.members().and_then(|members| {
            members
                .iter()
                .try_for_each(|(&pid, dir)| signal_member(pid, dir, signal))
        });
        if froze || (was_frozen && signal == Signal::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    /// SIGKILLs what is left, waits until empty, removes every directory (retrying EBUSY briefly).
    /// Idempotent: a cgroup already gone is fine.
    ///
    /// This cgroup's own directories (and child cgroups below them) are removed; its
    /// parents (e.g. the shared `/ccrun`) go too once empty, which `rmdir` decides
    /// atomically, so a parent other containers still use always stays.
    pub fn destroy(&self) -> Result<()> {
        if let Some(unified) = &self.unified {
            let kill_file = unified.dir.join("cgroup.kill");
            if fs::exists(&kill_file) {
                // Kills the whole subtree at once, racing no forks. Missing on old kernels.
                if let Err(e) = fs::write(&kill_file, "1") {
                    tracing::debug!(error = %e, "cgroup.kill failed; falling back to kill(2)");
                }
            }
        }
        let started = Instant::now();
        loop {
            let members = self.members()?;
            if members.is_empty() {
                break;
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                let dir = members.into_values().next().unwrap_or_default();
                return Err(Error::Timeout {
                    path: dir,
                    what: "become empty after SIGKILL",
                    waited: started.elapsed(),
                });
            }
            for (pid, dir) in members {
                signal_member(pid, &dir, Signal::SIGKILL)?;
            }
            // v1 frozen tasks do not act on SIGKILL until thawed.
            self.thaw_if_frozen()?;
            thread::sleep(POLL_INTERVAL);
        }
        for dir in self.paths() {
            fs::remove_tree(&dir)?;
        }
        let roots = self
            .unified
            .iter()
            .map(|u| &u.root)
            .chain(self.distinct_legacy().into_iter().map(|l| &l.root));
        for root in roots {
            fs::remove_empty_parents(root, &self.path);
        }
        Ok(())
    }

    /// Directories that make up this cgroup (for tests and inspect).
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.unified.iter().map(|u| u.dir.clone()).collect();
        for legacy in self.distinct_legacy() {
            paths.push(legacy.dir.clone());
        }
        paths
    }

    /// Usage statistics as `runc events --stats` reports them (see [`Stats`]):
    /// memory usage/limit/peak/failcnt for memory, memory+swap and (v1) kernel
    /// memory plus every `memory.stat` counter; cpu total/per-cpu/user/kernel time
    /// and throttling; the cpuset; pids current/limit; block I/O bytes and operations per device;
    /// hugetlb usage per page size. A controller absent on the host leaves its
    /// section at zero.
    pub fn stats(&self) -> Result<Stats> {
        let mut out = Stats::default();
        match self.hierarchy(&MEMORY) {
            Some(Hierarchy::V1(dir)) => out.memory = stats::v1_memory(dir)?,
            Some(Hierarchy::V2(dir)) => out.memory = stats::v2_memory(dir)?,
            None => {}
        }
        if let Some(cpuacct) = self.legacy.get("cpuacct") {
            out.cpu.usage = stats::v1_cpu_usage(&cpuacct.dir)?;
            if let Some(cpu) = self.legacy.get("cpu") {
                out.cpu.throttling = stats::v1_throttling(&cpu.dir)?;
            }
        } else if let Some(unified) = &self.unified {
            // cpu.stat's usage lines are part of the v2 core, with or without the controller.
            out.cpu = stats::v2_cpu(&unified.dir)?;
        }
        match self.hierarchy(&CPUSET) {
            Some(Hierarchy::V1(dir)) => out.cpuset = stats::v1_cpuset(dir)?,
            Some(Hierarchy::V2(dir)) => out.cpuset = stats::v2_cpuset(dir)?,
            None => {}
        }
        if let Some(Hierarchy::V1(dir) | Hierarchy::V2(dir)) = self.hierarchy(&PIDS) {
            out.pids = stats::pids(dir)?;
        }
        match self.hierarchy(&IO) {
            Some(Hierarchy::V1(dir)) => out.blkio = stats::v1_blkio(dir)?,
            Some(Hierarchy::V2(dir)) => out.blkio = stats::v2_io(dir)?,
            None => {}
        }
        match self.hierarchy(&HUGETLB) {
            Some(Hierarchy::V1(dir)) => out.hugetlb = stats::v1_hugetlb(dir)?,
            Some(Hierarchy::V2(dir)) => out.hugetlb = stats::v2_hugetlb(dir)?,
            None => {}
        }
        Ok(out)
    }

    /// The directory serving `controller`: v2 if the unified hierarchy has it, else v1.
    fn hierarchy(&self, controller: &Controller) -> Option<Hierarchy<'_>> {
        if let Some(unified) = &self.unified {
            if unified.controllers.contains(controller.v2) {
                return Some(Hierarchy::V2(&unified.dir));
            }
        }
        self.legacy
            .get(controller.v1)
            .map(|legacy| Hierarchy::V1(&legacy.dir))
    }

    /// The writer for `controller`: v2 if the unified hierarchy has it, else v1.
    fn writer(
        &self,
        controller: &Controller,
        setting: &'static str,
    ) -> Result<Box<dyn Writer + '_>> {
        match self.hierarchy(controller) {
            Some(Hierarchy::V2(dir)) => Ok(Box::new(V2::new(dir))),
            Some(Hierarchy::V1(dir)) => Ok(Box::new(V1::new(dir))),
            None => Err(Error::ControllerMissing {
                controller: controller.display,
                setting,
            }),
        }
    }

    /// The freezer writer: v1 `freezer` if mounted, else the unified hierarchy,
    /// where freezing is part of the core and needs no controller.
    fn freezer(&self) -> Result<(Box<dyn Writer + '_>, &Path)> {
        if let Some(legacy) = self.legacy.get("freezer") {
            return Ok((Box::new(V1::new(&legacy.dir)), &legacy.dir));
        }
        if let Some(unified) = &self.unified {
            return Ok((Box::new(V2::new(&unified.dir)), &unified.dir));
        }
        Err(Error::ControllerMissing {
            controller: "freezer",
            setting: "freeze/thaw",
        })
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let (writer, dir) = self.freezer()?;
        let wanted = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        let started = Instant::now();
        loop {
            // Re-requesting is harmless and lets a stuck v1 FREEZING make progress.
            writer.request_freeze(frozen)?;
            if writer.freezer_state()? == wanted {
                return Ok(());
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                return Err(Error::Timeout {
                    path: dir.to_path_buf(),
                    what: if frozen { "freeze" } else { "thaw" },
                    waited: started.elapsed(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Thaws the cgroup if it exists and is (being) frozen; does not wait.
    fn thaw_if_frozen(&self) -> Result<()> {
        let Ok((writer, dir)) = self.freezer() else {
            return Ok(());
        };
        if fs::exists(dir) && writer.freezer_state()? != FreezerState::Thawed {
            writer.request_freeze(false)?;
        }
        Ok(())
    }

    /// Every pid in any of this cgroup's directories (and below), with a directory
    /// it was found in.
    fn members(&self) -> Result<BTreeMap<i32, PathBuf>> {
        let mut members = BTreeMap::new();
        for dir in self.paths() {
            let mut pids = Vec::new();
            fs::collect_pids(&dir, &mut pids)?;
            for pid in pids {
                members.entry(pid).or_insert_with(|| dir.clone());
            }
        }
        Ok(members)
    }

    /// v1 hierarchies without duplicates (co-mounted controllers share one).
    fn distinct_legacy(&self) -> Vec<&Legacy> {
        let mut seen = BTreeSet::new();
        self.legacy
            .values()
            .filter(|l| seen.insert(l.dir.clone()))
            .collect()
    }
}

/// The v1 `tasks` files of a cgroup, opened by its creator for a new process to move
/// itself in with: writing `0` to `tasks` moves the writing thread alone, which the
/// kernel does without taking the global `cgroup_threadgroup_rwsem` for writing, so
/// without the RCU grace period (about 10 ms) that moving a process through
/// `cgroup.procs` waits for. The process must be single-threaded (then its one thread
/// is all of it) and must not yet have left the creator's cgroup namespace. The files
/// were opened by the creator, whose credentials (the opener's, not the writer's) the
/// kernel checks, so a child in a new user namespace may write them.
#[derive(Debug)]
pub struct SelfJoin {
    tasks: Vec<(PathBuf, std::fs::File)>,
}

impl SelfJoin {
    /// Moves the calling thread into every hierarchy, then closes the files. Only
    /// plain `write(2)` calls: safe in a child forked from a single-threaded process.
    pub fn join(self) -> Result<()> {
        for (path, file) in self.tasks {
            // SAFETY: a one-byte buffer that lives for the call, on a descriptor we own.
            let n = unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    c"0".as_ptr().cast(),
                    1,
                )
            };
            if n != 1 {
                return Err(Error::Write {
                    path,
                    value: "0".into(),
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        Ok(())
    }
}

/// The v2 name of a v1 controller, for the "unified hierarchy has it" check.
fn v2_name(v1: &str) -> &str {
    match v1 {
        "blkio" => "io",
        other => other,
    }
}

/// Reads the unified hierarchy's controllers and places `path` in it.
fn unified(root: &Path, path: &Path) -> Result<Unified> {
    let text = fs::read(&root.join("cgroup.controllers"))?;
    Ok(Unified {
        root: root.to_path_buf(),
        dir: root.join(path),
        controllers: text.split_whitespace().map(str::to_string).collect(),
    })
}

/// Turns "/ccrun/<id>" or "ccrun/<id>" into a relative path, rejecting anything that
/// could escape the hierarchy or name its root.
fn normalize(path: &str) -> Result<PathBuf> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(invalid("contains a NUL byte"));
    }
    let mut rel = PathBuf::new();
    // Split by hand: Path::components silently drops "." in the middle.
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(invalid("must not contain '.' or '..'"));
        }
        rel.push(part);
    }
    if rel.as_os_str().is_empty() {
        return Err(invalid("names the hierarchy root"));
    }
    Ok(rel)
}

/// Creates every level of `rel` below `root`.
fn create_levels(root: &Path, rel: &Path) -> Result<()> {
    let mut dir = root.to_path_buf();
    for part in rel.iter() {
        dir.push(part);
        fs::mkdir(&dir)?;
    }
    Ok(())
}

/// Creates `rel` in the unified hierarchy, enabling the controllers we manage in the
/// `cgroup.subtree_control` of the root and of every intermediate level, so that the
/// leaf gets their interface files.
fn create_v2(unified: &Unified, rel: &Path, enable_at_root: bool) -> Result<()> {
    let mut dir = unified.root.clone();
    for (level, part) in rel.iter().enumerate() {
        if level > 0 || enable_at_root {
            enable_controllers(&dir)?;
        }
        dir.push(part);
        fs::mkdir(&dir)?;
    }
    Ok(())
}

/// Enables in `dir/cgroup.subtree_control` every managed controller `dir` offers
/// that is not enabled yet, in a single write.
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = fs::read(&dir.join("cgroup.controllers"))?;
    let control = dir.join("cgroup.subtree_control");
    let enabled = fs::read(&control)?;
    let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| V2_MANAGED.contains(c) && !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::write(&control, &missing.join(" "))
}

/// New v1 cpuset directories start with empty `cpuset.cpus`/`cpuset.mems`, and a
/// task cannot join such a cpuset (ENOSPC). Copy them down from the parent at every
/// level of `rel` where they are empty.
fn init_v1_cpuset(root: &Path, rel: &Path) -> Result<()> {
    let mut parent = root.to_path_buf();
    for part in rel.iter() {
        let dir = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            if fs::read(&own)?.trim().is_empty() {
                let inherited = fs::read(&parent.join(file))?;
                fs::write(&own, inherited.trim())?;
            }
        }
        parent = dir;
    }
    Ok(())
}

/// Sends `signal` to one member of the cgroup found in `dir`; one that already
/// exited is fine.
fn signal_member(pid: i32, dir: &Path, signal: Signal) -> Result<()> {
    let own = nix::unistd::getpid().as_raw();
    // kill(2) with pid 0 or -1 would hit our process group or every process; pid 1
    // is init. Neither belongs to a container's cgroup as seen from here.
    if pid <= 1 || pid == own {
        return Err(Error::RefuseKill {
            pid,
            path: dir.to_path_buf(),
        });
    }
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(Error::Kill {
            signal,
            pid,
            path: dir.to_path_buf(),
            source,
        }),
    }
}
