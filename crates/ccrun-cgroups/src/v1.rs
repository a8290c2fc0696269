//! The cgroup v1 writer: one directory per controller hierarchy.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs;
use crate::limits::{
    CpuLimits, CpusetLimits, DeviceRule, HugetlbLimit, IoLimits, Limit, MemoryLimits, RdmaLimit,
};
use crate::writer::{FreezerState, Writer};

/// Writes v1 interface files in `dir`, this cgroup's directory in one v1 hierarchy.
pub(crate) struct V1<'a> {
    dir: &'a Path,
}

impl<'a> V1<'a> {
    /// A writer for the cgroup directory `dir`.
    pub(crate) fn new(dir: &'a Path) -> Self {
        V1 { dir }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn write(&self, name: &str, value: &str) -> Result<()> {
        fs::write(&self.file(name), value)
    }

    /// Writes to `name`, or fails naming `setting` if the file does not exist.
    fn write_supported(&self, setting: &str, name: &str, value: &str) -> Result<()> {
        let path = self.file(name);
        if !fs::exists(&path) {
            return Err(Error::Unsupported {
                setting: setting.to_string(),
                path,
            });
        }
        fs::write(&path, value)
    }

    /// Applies the device rules in order, starting from "deny everything": a fresh
    /// start every time, so applying again (an update) does not add to old rules.
    ///
    /// Must run before tasks join, or they briefly lose access to every device.
    /// v1 keeps one exception list per cgroup: a deny rule narrower than an earlier
    /// allow rule (e.g. `c 1:3 w` after `c *:* rwm`) can only remove an exception
    /// that has exactly the same type and numbers, as runc's v1 path also finds.
    pub(crate) fn devices(&self, rules: &[DeviceRule]) -> Result<()> {
        // Re-applying the list a cgroup already has (an update that repeats the
        // devices) would deny everything for a moment, and the kernel refuses the
        // "a" write once the container made child cgroups: skip it.
        let list = self.file("devices.list");
        if let Some(current) = fs::read_optional(&list)? {
            if normalized_list(&current) == expected_list(rules) {
                tracing::debug!(path = %list.display(), "device rules unchanged");
                return Ok(());
            }
        }
        self.deny_all()?;
        for rule in rules {
            let file = if rule.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            self.write(file, &rule.as_v1())?;
        }
        Ok(())
    }

    /// Writes `a` to `devices.deny`. The kernel refuses it (EINVAL) while the cgroup
    /// has online children, and a child removed just now goes offline
    /// asynchronously: retry briefly before reporting the refusal.
    fn deny_all(&self) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.write("devices.deny", "a") {
                Err(Error::Write { source, .. })
                    if source.raw_os_error() == Some(libc::EINVAL) && attempt < 10 =>
                {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// Sets `net_cls.classid`.
    pub(crate) fn net_cls(&self, class_id: u32) -> Result<()> {
        self.write("net_cls.classid", &class_id.to_string())
    }

    /// Sets the priority of each interface in `net_prio.ifpriomap`.
    pub(crate) fn net_prio(&self, priorities: &[(String, u32)]) -> Result<()> {
        for (name, prio) in priorities {
            self.write("net_prio.ifpriomap", &format!("{name} {prio}"))?;
        }
        Ok(())
    }

    /// The first of `names` that exists, or an `Unsupported` error naming the first.
    fn first_existing(&self, setting: &str, names: &[&str]) -> Result<PathBuf> {
        names
            .iter()
            .map(|n| self.file(n))
            .find(|p| fs::exists(p))
            .ok_or_else(|| Error::Unsupported {
                setting: setting.to_string(),
                path: self.file(names.first().copied().unwrap_or_default()),
            })
    }

    /// Sets `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes` in an order the
    /// kernel accepts: it insists on memsw >= memory after every single write.
    fn memory_and_swap(&self, limit: Option<Limit>, memsw: Option<Limit>) -> Result<()> {
        const MEMORY: &str = "memory.limit_in_bytes";
        const MEMSW: &str = "memory.memsw.limit_in_bytes";
        let memsw = match memsw {
            // Without swap accounting there is no memsw file; "unlimited" is then a no-op.
            Some(Limit::Max) if !fs::exists(&self.file(MEMSW)) => None,
            Some(s) if !fs::exists(&self.file(MEMSW)) => {
                return Err(Error::Unsupported {
                    setting: format!("memory+swap limit {}", s.v1()),
                    path: self.file(MEMSW),
                })
            }
            other => other,
        };
        match (limit, memsw) {
            (Some(limit), Some(memsw)) => {
                let current = fs::read_u64(&self.file(MEMORY))?;
                let memsw_first = match memsw {
                    Limit::Max => true,
                    Limit::Value(v) => v >= current,
                };
                if memsw_first {
                    self.write(MEMSW, &memsw.v1())?;
                    self.write(MEMORY, &limit.v1())
                } else {
                    // Lowering below the current memory limit: memory first keeps
                    // memory <= memsw at every step.
                    self.write(MEMORY, &limit.v1())?;
                    self.write(MEMSW, &memsw.v1())
                }
            }
            (Some(limit), None) => self.write(MEMORY, &limit.v1()),
            (None, Some(memsw)) => self.write(MEMSW, &memsw.v1()),
            (None, None) => Ok(()),
        }
    }

    /// `memory.kmem.limit_in_bytes`: deprecated, and refused (EOPNOTSUPP) or absent on
    /// kernels since 5.16; like runc, such a kernel ignores the setting with a note.
    fn kernel_memory(&self, limit: Limit) -> Result<()> {
        let path = self.file("memory.kmem.limit_in_bytes");
        if !fs::exists(&path) {
            tracing::debug!("kernel memory limit ignored: this kernel has no kmem accounting");
            return Ok(());
        }
        match fs::write(&path, &limit.v1()) {
            Err(Error::Write { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::debug!("kernel memory limit ignored: this kernel no longer supports it");
                Ok(())
            }
            other => other,
        }
    }

    fn cfs_bandwidth(&self, quota: Option<Limit>, period: Option<u64>) -> Result<()> {
        const QUOTA: &str = "cpu.cfs_quota_us";
        const PERIOD: &str = "cpu.cfs_period_us";
        match (quota, period) {
            (Some(quota), Some(period)) => {
                let period = period.to_string();
                match self.write(PERIOD, &period) {
                    Ok(()) => self.write(QUOTA, &quota.v1()),
                    // The new period may clash with the old quota (or the parent's);
                    // setting the quota first can resolve that.
                    Err(Error::Write { source, .. })
                        if source.raw_os_error() == Some(libc::EINVAL) =>
                    {
                        self.write(QUOTA, &quota.v1())?;
                        self.write(PERIOD, &period)
                    }
                    Err(e) => Err(e),
                }
            }
            (Some(quota), None) => self.write(QUOTA, &quota.v1()),
            (None, Some(period)) => self.write(PERIOD, &period.to_string()),
            (None, None) => Ok(()),
        }
    }
}

impl Writer for V1<'_> {
    fn memory(&self, m: &MemoryLimits) -> Result<()> {
        if m.check_before_update {
            check_usage(&self.file("memory.usage_in_bytes"), m.limit)?;
        }
        self.memory_and_swap(m.limit, m.memsw)?;
        if let Some(r) = m.reservation {
            self.write("memory.soft_limit_in_bytes", &r.v1())?;
        }
        if let Some(k) = m.kernel {
            self.kernel_memory(k)?;
        }
        if let Some(t) = m.kernel_tcp {
            self.write_supported(
                "kernel TCP memory limit",
                "memory.kmem.tcp.limit_in_bytes",
                &t.v1(),
            )?;
        }
        if let Some(s) = m.swappiness {
            self.write_supported("memory.swappiness", "memory.swappiness", &s.to_string())?;
        }
        if let Some(disable) = m.disable_oom_killer {
            self.write("memory.oom_control", if disable { "1" } else { "0" })?;
        }
        if let Some(h) = m.use_hierarchy {
            // Kernels since 5.x are always hierarchical and refuse 0 (EINVAL).
            self.write_supported(
                "memory.use_hierarchy",
                "memory.use_hierarchy",
                if h { "1" } else { "0" },
            )?;
        }
        Ok(())
    }

    fn cpu(&self, c: &CpuLimits) -> Result<()> {
        if let Some(shares) = c.shares {
            self.write("cpu.shares", &shares.to_string())?;
        }
        self.cfs_bandwidth(c.quota, c.period)?;
        if let Some(burst) = c.burst {
            self.write_supported("cpu burst", "cpu.cfs_burst_us", &burst.to_string())?;
        }
        if let Some(p) = c.realtime_period {
            self.write_supported("cpu realtime period", "cpu.rt_period_us", &p.to_string())?;
        }
        if let Some(r) = c.realtime_runtime {
            self.write_supported("cpu realtime runtime", "cpu.rt_runtime_us", &r.to_string())?;
        }
        if let Some(idle) = c.idle {
            self.write_supported("cpu idle", "cpu.idle", &idle.to_string())?;
        }
        Ok(())
    }

    fn cpuset(&self, c: &CpusetLimits) -> Result<()> {
        if let Some(cpus) = &c.cpus {
            self.write("cpuset.cpus", cpus)?;
        }
        if let Some(mems) = &c.mems {
            self.write("cpuset.mems", mems)?;
        }
        Ok(())
    }

    fn pids(&self, limit: Limit) -> Result<()> {
        // pids.max takes "max", not -1, even on v1.
        self.write("pids.max", &limit.v2())
    }

    fn io(&self, io: &IoLimits) -> Result<()> {
        const WEIGHT: &[&str] = &["blkio.weight", "blkio.bfq.weight"];
        const WEIGHT_DEVICE: &[&str] = &["blkio.weight_device", "blkio.bfq.weight_device"];
        if let Some(w) = io.weight {
            fs::write(
                &self.first_existing("blkio weight", WEIGHT)?,
                &w.to_string(),
            )?;
        }
        if let Some(w) = io.leaf_weight {
            // Only CFQ had leaf weights; it left the kernel in 5.0.
            self.write_supported("blkio leafWeight", "blkio.leaf_weight", &w.to_string())?;
        }
        for wd in &io.weight_device {
            let dev = wd.device;
            if let Some(w) = wd.weight {
                let path = self.first_existing("blkio weightDevice", WEIGHT_DEVICE)?;
                fs::write(&path, &format!("{dev} {w}"))?;
            }
            if let Some(w) = wd.leaf_weight {
                self.write_supported(
                    "blkio weightDevice leafWeight",
                    "blkio.leaf_weight_device",
                    &format!("{dev} {w}"),
                )?;
            }
        }
        for (dev, t) in &io.throttle {
            let files = [
                ("blkio.throttle.read_bps_device", t.read_bps),
                ("blkio.throttle.write_bps_device", t.write_bps),
                ("blkio.throttle.read_iops_device", t.read_iops),
                ("blkio.throttle.write_iops_device", t.write_iops),
            ];
            for (name, rate) in files {
                if let Some(rate) = rate {
                    self.write_supported("blkio throttling", name, &format!("{dev} {rate}"))?;
                }
            }
        }
        Ok(())
    }

    fn hugetlb(&self, h: &HugetlbLimit) -> Result<()> {
        let name = format!("hugetlb.{}.limit_in_bytes", h.page_size);
        let setting = format!("hugetlb limit for page size {}", h.page_size);
        self.write_supported(&setting, &name, &h.limit.v1())?;
        // Reservations are limited alike where the kernel accounts them (5.7+), as runc does.
        let rsvd = self.file(&format!("hugetlb.{}.rsvd.limit_in_bytes", h.page_size));
        if fs::exists(&rsvd) {
            fs::write(&rsvd, &h.limit.v1())?;
        }
        Ok(())
    }

    fn rdma(&self, device: &str, limit: &RdmaLimit) -> Result<()> {
        self.write_supported("rdma limits", "rdma.max", &limit.line(device))
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let path = self.file("memory.oom_control");
        let text = fs::read(&path)?;
        fs::keyed_u64(&path, &text, "oom_kill")
    }

    fn request_freeze(&self, frozen: bool) -> Result<()> {
        self.write("freezer.state", if frozen { "FROZEN" } else { "THAWED" })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        let path = self.file("freezer.state");
        match fs::read(&path)?.trim() {
            "THAWED" => Ok(FreezerState::Thawed),
            "FREEZING" => Ok(FreezerState::Freezing),
            "FROZEN" => Ok(FreezerState::Frozen),
            other => Err(Error::Parse {
                path,
                reason: format!("unknown freezer state {other:?}"),
            }),
        }
    }
}

/// Refuses a memory limit below the current usage read from `usage` (checkBeforeUpdate).
pub(crate) fn check_usage(usage: &Path, limit: Option<Limit>) -> Result<()> {
    let Some(Limit::Value(limit)) = limit else {
        return Ok(());
    };
    let current = fs::read_u64(usage)?;
    if limit < current {
        return Err(Error::InvalidResource {
            setting: "memory.limit",
            reason: format!(
                "{limit} is below the current usage {current} and checkBeforeUpdate is set"
            ),
        });
    }
    Ok(())
}

/// The lines of a `devices.list`, sorted.
fn normalized_list(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// What `devices.list` shows after [`V1::devices`] wrote `rules`, following the
/// kernel's v1 model: a default (allow or deny everything, set by a wildcard rule)
/// plus exceptions, where a rule agreeing with the default removes rights from an
/// exception of exactly the same type and numbers, and any other rule adds one.
/// With an allow-all default the list shows only `a *:* rwm`.
fn expected_list(rules: &[DeviceRule]) -> Vec<String> {
    use crate::limits::Access;
    let mut default_allow = false;
    // (type, major, minor) as printed, with the rights granted or denied.
    let mut exceptions: Vec<(String, Access)> = Vec::new();
    for rule in rules {
        if rule.is_wildcard() {
            default_allow = rule.allow;
            exceptions.clear();
            continue;
        }
        let printed = rule.as_v1();
        let key = printed
            .rsplit_once(' ')
            .map_or(printed.as_str(), |(k, _)| k)
            .to_string();
        let at = exceptions.iter().position(|(k, _)| *k == key);
        if rule.allow == default_allow {
            if let Some(i) = at {
                let a = &mut exceptions[i].1;
                a.read &= !rule.access.read;
                a.write &= !rule.access.write;
                a.mknod &= !rule.access.mknod;
                if !(a.read || a.write || a.mknod) {
                    exceptions.remove(i);
                }
            }
        } else if let Some(i) = at {
            let a = &mut exceptions[i].1;
            a.read |= rule.access.read;
            a.write |= rule.access.write;
            a.mknod |= rule.access.mknod;
        } else {
            exceptions.push((key, rule.access));
        }
    }
    if default_allow {
        return vec!["a *:* rwm".to_string()];
    }
    let mut lines: Vec<String> = exceptions
        .into_iter()
        .map(|(key, access)| format!("{key} {}", access.as_v1()))
        .collect();
    lines.sort();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Access, DeviceKind};

    fn rule(
        allow: bool,
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: Access {
                read: access.contains('r'),
                write: access.contains('w'),
                mknod: access.contains('m'),
            },
        }
    }

    #[test]
    fn expected_list_follows_the_kernel_model() {
        let rules = [
            rule(false, DeviceKind::All, None, None, "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(5), "rwm"),
            rule(true, DeviceKind::Char, Some(1), Some(3), "rwm"),
            rule(false, DeviceKind::Char, Some(1), Some(3), "w"),
            rule(true, DeviceKind::Char, Some(136), None, "rw"),
        ];
        assert_eq!(
            expected_list(&rules),
            ["c 136:* rw", "c 1:3 rm", "c 1:5 rwm"]
        );
        // An allow-all default shows as one line, whatever is denied after it.
        let open = [
            rule(true, DeviceKind::All, None, None, "rwm"),
            rule(false, DeviceKind::Block, Some(8), None, "rwm"),
        ];
        assert_eq!(expected_list(&open), ["a *:* rwm"]);
        assert_eq!(expected_list(&[]), Vec::<String>::new());
    }
}
