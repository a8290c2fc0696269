//! cgroup management for ccrun: detects the host's layout (pure v2, hybrid, v1)
//! and applies OCI `LinuxResources` to a per-container cgroup behind one interface.
//!
//! [`Layout::detect`] reads the mounts; [`Cgroup::create`] makes the cgroup at an
//! absolute path in every hierarchy; [`Cgroup::apply`] writes limits, using the v2
//! writer for a controller whenever the unified hierarchy has it and the v1 writer
//! otherwise.

#![warn(missing_docs)]

mod bpf;
mod cgroup;
mod error;
mod fs;
mod layout;
mod limits;
mod stats;
mod v1;
mod v2;
mod writer;

pub use cgroup::{Cgroup, DeviceBackend};
pub use error::{Error, Result};
pub use layout::Layout;
pub use stats::{
    BlkioEntry, BlkioStats, CpuStats, CpuUsage, HugetlbStats, MemoryEntry, MemoryStats, PidsStats,
    Stats, Throttling,
};
