//! The interface both hierarchy writers ([`crate::v1`] and [`crate::v2`]) implement.
//! [`crate::Cgroup`] picks one per controller and calls it.

use crate::error::Result;
use crate::limits::{
    CpuLimits, CpusetLimits, HugetlbLimit, IoLimits, Limit, MemoryLimits, RdmaLimit,
};

/// State of the freezer as read back from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreezerState {
    /// Tasks run normally.
    Thawed,
    /// A freeze was requested and is still in progress (v1 only).
    Freezing,
    /// Every task is frozen.
    Frozen,
}

/// Writes limits into, and reads state from, one controller's directory of a cgroup.
pub(crate) trait Writer {
    /// Applies memory limits.
    fn memory(&self, limits: &MemoryLimits) -> Result<()>;
    /// Applies cpu bandwidth, weight, realtime and idle settings.
    fn cpu(&self, limits: &CpuLimits) -> Result<()>;
    /// Applies the cpuset.
    fn cpuset(&self, limits: &CpusetLimits) -> Result<()>;
    /// Applies the pids limit.
    fn pids(&self, limit: Limit) -> Result<()>;
    /// Applies block I/O weight and throttling.
    fn io(&self, limits: &IoLimits) -> Result<()>;
    /// Applies one hugetlb limit.
    fn hugetlb(&self, limit: &HugetlbLimit) -> Result<()>;
    /// Applies the rdma limits of one device.
    fn rdma(&self, device: &str, limit: &RdmaLimit) -> Result<()>;
    /// Number of OOM kills in this cgroup.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Asks the kernel to freeze (`true`) or thaw (`false`) the cgroup.
    fn request_freeze(&self, frozen: bool) -> Result<()>;
    /// Reads the freezer state back.
    fn freezer_state(&self) -> Result<FreezerState>;
}
