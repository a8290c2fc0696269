//! The cgroup v2 writer: one directory in the unified hierarchy.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs;
use crate::limits::{
    blkio_weight_to_io_weight, shares_to_weight, CpuLimits, CpusetLimits, HugetlbLimit, IoLimits,
    Limit, MemoryLimits, RdmaLimit,
};
use crate::writer::{FreezerState, Writer};

/// Writes v2 interface files in `dir`, this cgroup's directory in the unified hierarchy.
pub(crate) struct V2<'a> {
    dir: &'a Path,
}

impl<'a> V2<'a> {
    /// A writer for the cgroup directory `dir`.
    pub(crate) fn new(dir: &'a Path) -> Self {
        V2 { dir }
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

    /// The error for a setting cgroup v2 does not have (`v1_file` names its v1 file).
    fn no_such_setting(&self, setting: &str, v1_file: &str) -> Error {
        Error::Unsupported {
            setting: format!("{setting} (cgroup v2 has no equivalent)"),
            path: self.file(v1_file),
        }
    }

    /// `cpu.max` is "QUOTA PERIOD" with QUOTA "max" for unlimited; either may change alone.
    fn cpu_max(&self, quota: Option<Limit>, period: Option<u64>) -> Result<()> {
        let value = match (quota, period) {
            (Some(q), Some(p)) => format!("{} {p}", q.v2()),
            (Some(q), None) => q.v2(),
            (None, Some(p)) => {
                // Keep the current quota; writing "max P" would silently drop it.
                let path = self.file("cpu.max");
                let current = fs::read(&path)?;
                let quota = current.split_whitespace().next().unwrap_or("max");
                format!("{quota} {p}")
            }
            (None, None) => return Ok(()),
        };
        self.write("cpu.max", &value)
    }
}

impl Writer for V2<'_> {
    fn memory(&self, m: &MemoryLimits) -> Result<()> {
        const SWAP: &str = "memory.swap.max";
        // Settings v2 has no file for: refuse rather than pretend.
        if m.kernel_tcp.is_some() {
            return Err(self.no_such_setting("memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes"));
        }
        if m.swappiness.is_some() {
            return Err(self.no_such_setting("memory.swappiness", "memory.swappiness"));
        }
        if m.disable_oom_killer == Some(true) {
            return Err(self.no_such_setting("memory.disableOOMKiller", "memory.oom_control"));
        }
        if m.use_hierarchy == Some(false) {
            return Err(self.no_such_setting(
                "memory.useHierarchy=false (v2 is always hierarchical)",
                "memory.use_hierarchy",
            ));
        }
        if m.kernel.is_some() {
            tracing::debug!("kernel memory limit ignored: cgroup v2 accounts it with memory.max");
        }
        if m.check_before_update {
            crate::v1::check_usage(&self.file("memory.current"), m.limit)?;
        }
        match m.swap {
            // No swap accounting (or no swap at all): unlimited is a no-op.
            Some(Limit::Max) if !fs::exists(&self.file(SWAP)) => {}
            Some(s) => {
                self.write_supported(&format!("swap limit {}", s.v2()), SWAP, &s.v2())?;
            }
            None => {}
        }
        if let Some(limit) = m.limit {
            self.write("memory.max", &limit.v2())?;
        }
        if let Some(r) = m.reservation {
            self.write("memory.low", &r.v2())?;
        }
        Ok(())
    }

    fn cpu(&self, c: &CpuLimits) -> Result<()> {
        if let Some(shares) = c.shares {
            self.write("cpu.weight", &shares_to_weight(shares).to_string())?;
        }
        self.cpu_max(c.quota, c.period)?;
        if let Some(burst) = c.burst {
            self.write_supported("cpu burst", "cpu.max.burst", &burst.to_string())?;
        }
        if c.realtime_period.is_some() || c.realtime_runtime.is_some() {
            return Err(Error::Unsupported {
                setting: "cpu realtime period/runtime".to_string(),
                path: self.file("cpu.rt_runtime_us"),
            });
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
        self.write("pids.max", &limit.v2())
    }

    fn io(&self, io: &IoLimits) -> Result<()> {
        if io.leaf_weight.is_some() || io.weight_device.iter().any(|w| w.leaf_weight.is_some()) {
            return Err(self.no_such_setting("blkio leafWeight", "blkio.leaf_weight"));
        }
        // BFQ uses the blkio scale (1..=1000) directly; io.weight has its own scale.
        let bfq = self.file("io.bfq.weight");
        let (weight_file, convert): (PathBuf, fn(u16) -> u64) = if fs::exists(&bfq) {
            (bfq, u64::from)
        } else {
            (self.file("io.weight"), blkio_weight_to_io_weight)
        };
        if let Some(w) = io.weight {
            fs::write(&weight_file, &convert(w).to_string())?;
        }
        for wd in &io.weight_device {
            if let Some(w) = wd.weight {
                fs::write(&weight_file, &format!("{} {}", wd.device, convert(w)))?;
            }
        }
        // One write per device: the kernel parses a single "MAJ:MIN key=value..." line.
        for (dev, t) in &io.throttle {
            let mut line = dev.to_string();
            let keys = [
                ("rbps", t.read_bps),
                ("wbps", t.write_bps),
                ("riops", t.read_iops),
                ("wiops", t.write_iops),
            ];
            for (key, rate) in keys {
                if let Some(rate) = rate {
                    line.push_str(&format!(" {key}={rate}"));
                }
            }
            self.write_supported("io throttling", "io.max", &line)?;
        }
        Ok(())
    }

    fn hugetlb(&self, h: &HugetlbLimit) -> Result<()> {
        let name = format!("hugetlb.{}.max", h.page_size);
        let setting = format!("hugetlb limit for page size {}", h.page_size);
        self.write_supported(&setting, &name, &h.limit.v2())?;
        // Reservations are limited alike where the kernel accounts them (5.7+), as runc does.
        let rsvd = self.file(&format!("hugetlb.{}.rsvd.max", h.page_size));
        if fs::exists(&rsvd) {
            fs::write(&rsvd, &h.limit.v2())?;
        }
        Ok(())
    }

    fn rdma(&self, device: &str, limit: &RdmaLimit) -> Result<()> {
        self.write_supported("rdma limits", "rdma.max", &limit.line(device))
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let path = self.file("memory.events");
        let text = fs::read(&path)?;
        fs::keyed_u64(&path, &text, "oom_kill")
    }

    fn request_freeze(&self, frozen: bool) -> Result<()> {
        self.write("cgroup.freeze", if frozen { "1" } else { "0" })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        let path = self.file("cgroup.events");
        let text = fs::read(&path)?;
        match fs::keyed_u64(&path, &text, "frozen")? {
            0 => Ok(FreezerState::Thawed),
            _ => Ok(FreezerState::Frozen),
        }
    }
}
