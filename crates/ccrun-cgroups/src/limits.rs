//! Conversion of OCI `LinuxResources` into a validated, version-neutral set of
//! limits that the v1 and v2 writers turn into file writes.
//!
//! Conventions follow runc: a value of 0 in the OCI spec means "not set" for memory,
//! swap, reservation, cpu shares/quota/period and blkio weight; -1 means unlimited.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxNetwork,
    LinuxResources,
};

use crate::error::{Error, Result};

/// A limit that is either a number or "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    /// No limit (v1 `-1`, v2 `max`).
    Max,
    /// A concrete value.
    Value(u64),
}

impl Limit {
    /// Rendering for v1 files, which take `-1` for unlimited.
    pub(crate) fn v1(self) -> String {
        match self {
            Limit::Max => "-1".to_string(),
            Limit::Value(v) => v.to_string(),
        }
    }

    /// Rendering for v2 files, which take `max` for unlimited.
    pub(crate) fn v2(self) -> String {
        match self {
            Limit::Max => "max".to_string(),
            Limit::Value(v) => v.to_string(),
        }
    }
}

/// Memory controller settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemoryLimits {
    /// Memory limit.
    pub limit: Option<Limit>,
    /// Memory+swap limit (OCI `swap`, v1 `memory.memsw.limit_in_bytes`).
    pub memsw: Option<Limit>,
    /// Swap-only limit (v2 `memory.swap.max` = memsw - limit).
    pub swap: Option<Limit>,
    /// Soft limit / protection (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`).
    pub reservation: Option<Limit>,
    /// Kernel memory limit (v1 `memory.kmem.limit_in_bytes`; deprecated, dropped by new kernels).
    pub kernel: Option<Limit>,
    /// Kernel TCP buffer limit (v1 `memory.kmem.tcp.limit_in_bytes`).
    pub kernel_tcp: Option<Limit>,
    /// v1 `memory.swappiness` (0..=100).
    pub swappiness: Option<u64>,
    /// v1 `memory.oom_control`: `Some(true)` disables the OOM killer, `Some(false)` enables it.
    pub disable_oom_killer: Option<bool>,
    /// v1 `memory.use_hierarchy`.
    pub use_hierarchy: Option<bool>,
    /// Refuse a new limit below the current usage (runc's `checkBeforeUpdate`).
    pub check_before_update: bool,
}

/// cpu controller settings (cpuset lives in [`CpusetLimits`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CpuLimits {
    /// v1 shares, already clamped to 2..=262144.
    pub shares: Option<u64>,
    /// CFS quota in microseconds per period.
    pub quota: Option<Limit>,
    /// CFS period in microseconds.
    pub period: Option<u64>,
    /// CFS burst in microseconds.
    pub burst: Option<u64>,
    /// Realtime runtime in microseconds (v1 only).
    pub realtime_runtime: Option<i64>,
    /// Realtime period in microseconds (v1 only).
    pub realtime_period: Option<u64>,
    /// SCHED_IDLE for the cgroup (0 or 1).
    pub idle: Option<i64>,
}

/// cpuset controller settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CpusetLimits {
    /// CPU list, e.g. `0-1`.
    pub cpus: Option<String>,
    /// Memory node list, e.g. `0`.
    pub mems: Option<String>,
}

/// A block device, as `major:minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Device {
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Throttling for one device; each field is a per-second rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Throttle {
    /// Read bytes per second.
    pub read_bps: Option<u64>,
    /// Write bytes per second.
    pub write_bps: Option<u64>,
    /// Read operations per second.
    pub read_iops: Option<u64>,
    /// Write operations per second.
    pub write_iops: Option<u64>,
}

/// A per-device weight; either part may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WeightDevice {
    /// The device.
    pub device: Device,
    /// Weight on the blkio scale (10..=1000).
    pub weight: Option<u16>,
    /// Leaf weight on the blkio scale (v1 CFQ only).
    pub leaf_weight: Option<u16>,
}

/// blkio (v1) / io (v2) settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IoLimits {
    /// Default weight on the blkio scale (10..=1000).
    pub weight: Option<u16>,
    /// Default leaf weight on the blkio scale (v1 CFQ only).
    pub leaf_weight: Option<u16>,
    /// Per-device weights on the blkio scale.
    pub weight_device: Vec<WeightDevice>,
    /// Per-device throttling, ordered by device.
    pub throttle: BTreeMap<Device, Throttle>,
}

/// One hugetlb limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HugetlbLimit {
    /// Page size as it appears in file names, e.g. `2MB`, `1GB`.
    pub page_size: String,
    /// Limit in bytes.
    pub limit: Limit,
}

/// A device cgroup rule (one entry of `linux.resources.devices`), normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    /// Allow (`true`) or deny.
    pub allow: bool,
    /// `a` (all), `b` (block) or `c` (character).
    pub kind: DeviceKind,
    /// Major number; `None` matches every major.
    pub major: Option<u32>,
    /// Minor number; `None` matches every minor.
    pub minor: Option<u32>,
    /// Access bits.
    pub access: Access,
}

/// The device type a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    /// Block and character devices.
    All,
    /// Block devices.
    Block,
    /// Character devices.
    Char,
}

/// A set of device access rights: read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `m`.
    pub mknod: bool,
}

impl Access {
    /// Every right (`rwm`).
    pub(crate) const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };

    /// The `rwm` string used by v1 `devices.allow`/`devices.deny`.
    pub(crate) fn as_v1(self) -> String {
        [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')]
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, c)| *c)
            .collect()
    }
}

impl DeviceRule {
    /// True for `a *:* rwm`: the rule decides every access on its own.
    pub(crate) fn is_wildcard(&self) -> bool {
        self.kind == DeviceKind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == Access::ALL
    }

    /// The rule as v1 `devices.allow`/`devices.deny` take it, e.g. `c 1:3 rwm`
    /// (`a` alone for the wildcard).
    pub(crate) fn as_v1(&self) -> String {
        if self.is_wildcard() {
            return "a".to_string();
        }
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Block => 'b',
            DeviceKind::Char => 'c',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        format!(
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access.as_v1()
        )
    }
}

/// net_cls / net_prio settings (v1 only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetworkLimits {
    /// `net_cls.classid`.
    pub class_id: Option<u32>,
    /// `net_prio.ifpriomap` entries: interface name and priority.
    pub priorities: Vec<(String, u32)>,
}

/// One rdma device's limits (`rdma.max`); `None` leaves a key unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RdmaLimit {
    /// `hca_handle`.
    pub hca_handles: Option<u32>,
    /// `hca_object`.
    pub hca_objects: Option<u32>,
}

impl RdmaLimit {
    /// The `rdma.max` line for `device` (same format on v1 and v2).
    pub(crate) fn line(&self, device: &str) -> String {
        let mut line = device.to_string();
        if let Some(h) = self.hca_handles {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = self.hca_objects {
            line.push_str(&format!(" hca_object={o}"));
        }
        line
    }
}

/// Everything `Cgroup::apply` has to write, grouped by controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    /// memory controller.
    pub memory: Option<MemoryLimits>,
    /// cpu controller.
    pub cpu: Option<CpuLimits>,
    /// cpuset controller.
    pub cpuset: Option<CpusetLimits>,
    /// pids controller.
    pub pids: Option<Limit>,
    /// blkio / io controller.
    pub io: Option<IoLimits>,
    /// hugetlb controller.
    pub hugetlb: Vec<HugetlbLimit>,
    /// Device rules in spec order (empty: leave device access alone).
    pub devices: Vec<DeviceRule>,
    /// net_cls / net_prio.
    pub network: Option<NetworkLimits>,
    /// rdma limits per device name.
    pub rdma: BTreeMap<String, RdmaLimit>,
    /// Raw v2 `unified` key/value pairs, ordered by key.
    pub unified: BTreeMap<String, String>,
}

impl Limits {
    /// Validates and converts OCI resources.
    pub(crate) fn from_oci(resources: &LinuxResources) -> Result<Limits> {
        let devices = resources
            .devices()
            .iter()
            .flatten()
            .map(device_rule)
            .collect::<Result<Vec<_>>>()?;
        let mut rdma = BTreeMap::new();
        for (name, r) in resources.rdma().iter().flatten() {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(invalid("rdma", format!("bad device name {name:?}")));
            }
            let limit = RdmaLimit {
                hca_handles: r.hca_handles(),
                hca_objects: r.hca_objects(),
            };
            if limit != RdmaLimit::default() {
                rdma.insert(name.clone(), limit);
            }
        }
        let mut hugetlb = Vec::new();
        for h in resources.hugepage_limits().iter().flatten() {
            let page_size = h.page_size().clone();
            if page_size.is_empty() || !page_size.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(invalid(
                    "hugepage_limits.page_size",
                    format!("{page_size:?}"),
                ));
            }
            hugetlb.push(HugetlbLimit {
                page_size,
                limit: signed_limit("hugepage_limits.limit", h.limit())?.unwrap_or(Limit::Max),
            });
        }
        let mut unified = BTreeMap::new();
        for (key, value) in resources.unified().iter().flatten() {
            if key.is_empty() || key.contains('/') || key.starts_with('.') {
                return Err(invalid("unified", format!("bad file name {key:?}")));
            }
            unified.insert(key.clone(), value.clone());
        }
        Ok(Limits {
            memory: resources
                .memory()
                .as_ref()
                .map(memory)
                .transpose()?
                // checkBeforeUpdate on its own asks for nothing to be written.
                .filter(|m| {
                    let mut bare = m.clone();
                    bare.check_before_update = false;
                    bare != MemoryLimits::default()
                }),
            cpu: resources
                .cpu()
                .as_ref()
                .map(cpu)
                .transpose()?
                .filter(|c| *c != CpuLimits::default()),
            cpuset: resources.cpu().as_ref().and_then(cpuset),
            pids: resources.pids().as_ref().map(|p| match p.limit() {
                n if n > 0 => Limit::Value(n.unsigned_abs()),
                _ => Limit::Max,
            }),
            io: resources
                .block_io()
                .as_ref()
                .map(io)
                .transpose()?
                .filter(|i| *i != IoLimits::default()),
            hugetlb,
            devices,
            network: resources
                .network()
                .as_ref()
                .map(network)
                .transpose()?
                .filter(|n| *n != NetworkLimits::default()),
            rdma,
            unified,
        })
    }
}

/// Converts one OCI device cgroup entry. A missing type means all, missing
/// major/minor (or a negative one) means any, and missing access means `rwm`.
fn device_rule(d: &LinuxDeviceCgroup) -> Result<DeviceRule> {
    let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => DeviceKind::All,
        LinuxDeviceType::B => DeviceKind::Block,
        // "u" (unbuffered character) is a character device to the kernel.
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::P => {
            return Err(invalid(
                "devices.type",
                "FIFOs (\"p\") are not subject to the device cgroup".to_string(),
            ))
        }
    };
    let number = |setting: &'static str, n: Option<i64>| -> Result<Option<u32>> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| invalid(setting, format!("{n} is out of range"))),
        }
    };
    let access = match d.access().as_deref() {
        None | Some("") => Access::ALL,
        Some(text) => {
            let mut access = Access {
                read: false,
                write: false,
                mknod: false,
            };
            for c in text.chars() {
                match c {
                    'r' => access.read = true,
                    'w' => access.write = true,
                    'm' => access.mknod = true,
                    _ => {
                        return Err(invalid(
                            "devices.access",
                            format!("{text:?} is not a combination of r, w and m"),
                        ))
                    }
                }
            }
            access
        }
    };
    Ok(DeviceRule {
        allow: d.allow(),
        kind,
        major: number("devices.major", d.major())?,
        minor: number("devices.minor", d.minor())?,
        access,
    })
}

fn network(n: &LinuxNetwork) -> Result<NetworkLimits> {
    let mut priorities = Vec::new();
    for p in n.priorities().iter().flatten() {
        let name = p.name();
        if name.is_empty() || name.contains(char::is_whitespace) || name.contains('/') {
            return Err(invalid(
                "network.priorities",
                format!("bad interface name {name:?}"),
            ));
        }
        priorities.push((name.clone(), p.priority()));
    }
    Ok(NetworkLimits {
        class_id: n.class_id(),
        priorities,
    })
}

fn invalid(setting: &'static str, reason: String) -> Error {
    Error::InvalidResource { setting, reason }
}

/// Converts an OCI signed limit: absent or 0 is unset, -1 is unlimited.
fn optional_limit(setting: &'static str, value: Option<i64>) -> Result<Option<Limit>> {
    match value {
        None | Some(0) => Ok(None),
        Some(v) => signed_limit(setting, v),
    }
}

/// Converts a signed value where -1 means unlimited and other negatives are invalid.
fn signed_limit(setting: &'static str, value: i64) -> Result<Option<Limit>> {
    match value {
        -1 => Ok(Some(Limit::Max)),
        v if v >= 0 => Ok(Some(Limit::Value(v.unsigned_abs()))),
        v => Err(invalid(
            setting,
            format!("{v} is negative (only -1 means unlimited)"),
        )),
    }
}

fn memory(m: &LinuxMemory) -> Result<MemoryLimits> {
    let limit = optional_limit("memory.limit", m.limit())?;
    let swap_total = optional_limit("memory.swap", m.swap())?;
    let (memsw, swap) = match (swap_total, limit) {
        // Unlimited memory without an explicit swap setting means unlimited swap too,
        // otherwise v1 would refuse a memory limit above the memsw limit.
        (None, Some(Limit::Max)) | (Some(Limit::Max), _) => (Some(Limit::Max), Some(Limit::Max)),
        (None, _) => (None, None),
        (Some(Limit::Value(total)), Some(Limit::Value(mem))) => {
            if total < mem {
                return Err(invalid(
                    "memory.swap",
                    format!("memory+swap {total} is below the memory limit {mem}"),
                ));
            }
            (Some(Limit::Value(total)), Some(Limit::Value(total - mem)))
        }
        (Some(Limit::Value(_)), None | Some(Limit::Max)) => {
            return Err(invalid(
                "memory.swap",
                "a swap limit needs a memory limit".to_string(),
            ))
        }
    };
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(invalid("memory.swappiness", format!("{s} is above 100")));
        }
    }
    Ok(MemoryLimits {
        limit,
        memsw,
        swap,
        reservation: optional_limit("memory.reservation", m.reservation())?,
        kernel: optional_limit("memory.kernel", m.kernel())?,
        kernel_tcp: optional_limit("memory.kernelTCP", m.kernel_tcp())?,
        swappiness: m.swappiness(),
        disable_oom_killer: m.disable_oom_killer(),
        use_hierarchy: m.use_hierarchy(),
        check_before_update: m.check_before_update() == Some(true),
    })
}

fn cpu(c: &LinuxCpu) -> Result<CpuLimits> {
    Ok(CpuLimits {
        shares: c.shares().filter(|&s| s != 0).map(|s| s.clamp(2, 262_144)),
        quota: optional_limit("cpu.quota", c.quota())?,
        period: c.period().filter(|&p| p != 0),
        burst: c.burst(),
        realtime_runtime: c.realtime_runtime().filter(|&r| r != 0),
        realtime_period: c.realtime_period().filter(|&p| p != 0),
        idle: c.idle(),
    })
}

fn cpuset(c: &LinuxCpu) -> Option<CpusetLimits> {
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let limits = CpusetLimits {
        cpus: non_empty(c.cpus()),
        mems: non_empty(c.mems()),
    };
    (limits.cpus.is_some() || limits.mems.is_some()).then_some(limits)
}

fn device(setting: &'static str, major: i64, minor: i64) -> Result<Device> {
    match (u64::try_from(major), u64::try_from(minor)) {
        (Ok(major), Ok(minor)) => Ok(Device { major, minor }),
        _ => Err(invalid(setting, format!("bad device {major}:{minor}"))),
    }
}

/// The four OCI throttle lists.
#[derive(Clone, Copy)]
enum ThrottleKind {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

fn io(b: &LinuxBlockIo) -> Result<IoLimits> {
    let mut weight_device = Vec::new();
    for wd in b.weight_device().iter().flatten() {
        if wd.weight().is_some() || wd.leaf_weight().is_some() {
            weight_device.push(WeightDevice {
                device: device("blkio.weight_device", wd.major(), wd.minor())?,
                weight: wd.weight(),
                leaf_weight: wd.leaf_weight(),
            });
        }
    }
    let mut throttle: BTreeMap<Device, Throttle> = BTreeMap::new();
    for (kind, list) in [
        (ThrottleKind::ReadBps, b.throttle_read_bps_device()),
        (ThrottleKind::WriteBps, b.throttle_write_bps_device()),
        (ThrottleKind::ReadIops, b.throttle_read_iops_device()),
        (ThrottleKind::WriteIops, b.throttle_write_iops_device()),
    ] {
        for td in list.iter().flatten() {
            let dev = device("blkio.throttle", td.major(), td.minor())?;
            let entry = throttle.entry(dev).or_default();
            let slot = match kind {
                ThrottleKind::ReadBps => &mut entry.read_bps,
                ThrottleKind::WriteBps => &mut entry.write_bps,
                ThrottleKind::ReadIops => &mut entry.read_iops,
                ThrottleKind::WriteIops => &mut entry.write_iops,
            };
            *slot = Some(td.rate());
        }
    }
    Ok(IoLimits {
        weight: b.weight().filter(|&w| w != 0),
        leaf_weight: b.leaf_weight().filter(|&w| w != 0),
        weight_device,
        throttle,
    })
}

/// Converts v1 cpu shares (2..=262144) to a v2 cpu.weight (1..=10000), the same
/// way runc, crun and systemd do.
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// Converts a v1 blkio weight (10..=1000) to a v2 io.weight (1..=10000), as runc does.
pub(crate) fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + ((weight - 10) * 9999) / 990
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
    };

    fn mem(limit: Option<i64>, swap: Option<i64>) -> Result<MemoryLimits> {
        let mut m = LinuxMemory::default();
        m.set_limit(limit);
        m.set_swap(swap);
        memory(&m)
    }

    #[test]
    fn swap_is_memory_plus_swap() {
        let m = mem(Some(100), Some(300)).unwrap();
        assert_eq!(m.limit, Some(Limit::Value(100)));
        assert_eq!(m.memsw, Some(Limit::Value(300)));
        assert_eq!(m.swap, Some(Limit::Value(200)));

        let m = mem(Some(100), Some(100)).unwrap();
        assert_eq!(m.swap, Some(Limit::Value(0)));
    }

    #[test]
    fn swap_unlimited_and_unset() {
        let m = mem(Some(100), Some(-1)).unwrap();
        assert_eq!((m.memsw, m.swap), (Some(Limit::Max), Some(Limit::Max)));
        let m = mem(Some(100), None).unwrap();
        assert_eq!((m.memsw, m.swap), (None, None));
        let m = mem(Some(-1), None).unwrap();
        assert_eq!(m.limit, Some(Limit::Max));
        assert_eq!((m.memsw, m.swap), (Some(Limit::Max), Some(Limit::Max)));
        let m = mem(Some(0), Some(0)).unwrap();
        assert_eq!(m, MemoryLimits::default());
    }

    #[test]
    fn inconsistent_swap_is_rejected() {
        assert!(mem(Some(200), Some(100)).is_err());
        assert!(mem(None, Some(100)).is_err());
        assert!(mem(Some(-1), Some(100)).is_err());
        assert!(mem(Some(-2), None).is_err());
    }

    #[test]
    fn weight_conversion_edges() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn pids_zero_and_negative_mean_unlimited() {
        for (given, expected) in [(0, Limit::Max), (-1, Limit::Max), (42, Limit::Value(42))] {
            let r = LinuxResourcesBuilder::default()
                .pids(LinuxPidsBuilder::default().limit(given).build().unwrap())
                .build()
                .unwrap();
            assert_eq!(Limits::from_oci(&r).unwrap().pids, Some(expected));
        }
    }

    #[test]
    fn cpu_and_cpuset_are_split() {
        let r = LinuxResourcesBuilder::default()
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1u64)
                    .quota(-1i64)
                    .period(100_000u64)
                    .cpus("0")
                    .mems("")
                    .build()
                    .unwrap(),
            )
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(1i64 << 20)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let l = Limits::from_oci(&r).unwrap();
        let cpu = l.cpu.unwrap();
        assert_eq!(cpu.shares, Some(2));
        assert_eq!(cpu.quota, Some(Limit::Max));
        assert_eq!(cpu.period, Some(100_000));
        assert_eq!(
            l.cpuset,
            Some(CpusetLimits {
                cpus: Some("0".into()),
                mems: None
            })
        );
        assert_eq!(l.memory.unwrap().limit, Some(Limit::Value(1 << 20)));
        assert_eq!(l.pids, None);
        assert_eq!(l.io, None);
    }

    #[test]
    fn empty_sections_request_nothing() {
        // Nothing set means no controller is needed (so none can be missing).
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemory::default())
            .cpu(LinuxCpu::default())
            .block_io(LinuxBlockIo::default())
            .build()
            .unwrap();
        assert_eq!(Limits::from_oci(&r).unwrap(), Limits::default());
    }

    #[test]
    fn throttles_are_grouped_per_device() {
        let td = |major: i64, minor: i64, rate: u64| {
            LinuxThrottleDeviceBuilder::default()
                .major(major)
                .minor(minor)
                .rate(rate)
                .build()
                .unwrap()
        };
        let b = LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![td(8, 0, 1000), td(8, 16, 5)])
            .throttle_write_iops_device(vec![td(8, 0, 30)])
            .build()
            .unwrap();
        let l = io(&b).unwrap();
        let sda = Device { major: 8, minor: 0 };
        let sdb = Device {
            major: 8,
            minor: 16,
        };
        assert_eq!(
            l.throttle[&sda],
            Throttle {
                read_bps: Some(1000),
                write_iops: Some(30),
                ..Throttle::default()
            }
        );
        assert_eq!(l.throttle[&sdb].read_bps, Some(5));
        assert!(io(&LinuxBlockIoBuilder::default()
            .throttle_read_bps_device(vec![td(-1, 0, 1)])
            .build()
            .unwrap())
        .is_err());
    }
}
