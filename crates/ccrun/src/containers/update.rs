//! `update`: new resource limits for a container's live cgroup and its saved
//! `config.json` (so the next start keeps them), and a new restart policy.

use anyhow::{bail, Context, Result};
use ccrun_runtime::Container;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::launch::{load_config, save_config};
use super::record::RestartPolicy;
use super::{ContainerStore, Record, Status};
use crate::cli::GlobalOpts;

/// The limits to change; `None` leaves a limit as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    pub memory_reservation: Option<i64>,
    /// Memory + swap in bytes, -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// CFS quota (µs per period).
    pub cpu_quota: Option<i64>,
    /// CFS period (µs).
    pub cpu_period: Option<u64>,
    /// CPU shares.
    pub cpu_shares: Option<u64>,
    /// Allowed CPUs.
    pub cpuset_cpus: Option<String>,
    /// Allowed memory nodes.
    pub cpuset_mems: Option<String>,
    /// Process limit (-1 for none).
    pub pids: Option<i64>,
    /// Block I/O weight (10 to 1000).
    pub blkio_weight: Option<u16>,
    /// New restart policy.
    pub restart: Option<RestartPolicy>,
}

impl Changes {
    /// The resource changes alone, as a partial OCI resources object; `None` when
    /// only the restart policy changes.
    fn resources(&self) -> Option<LinuxResources> {
        let mut out = LinuxResources::default();
        let mut any = false;
        if self.memory.is_some() || self.memory_reservation.is_some() || self.memory_swap.is_some()
        {
            let mut memory = LinuxMemory::default();
            memory.set_limit(self.memory);
            memory.set_reservation(self.memory_reservation);
            memory.set_swap(self.memory_swap);
            out.set_memory(Some(memory));
            any = true;
        }
        if self.cpu_quota.is_some()
            || self.cpu_period.is_some()
            || self.cpu_shares.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
        {
            let mut cpu = LinuxCpu::default();
            cpu.set_quota(self.cpu_quota);
            cpu.set_period(self.cpu_period);
            cpu.set_shares(self.cpu_shares);
            cpu.set_cpus(self.cpuset_cpus.clone());
            cpu.set_mems(self.cpuset_mems.clone());
            out.set_cpu(Some(cpu));
            any = true;
        }
        if let Some(limit) = self.pids {
            let mut pids = LinuxPids::default();
            pids.set_limit(limit);
            out.set_pids(Some(pids));
            any = true;
        }
        if let Some(weight) = self.blkio_weight {
            let mut blkio = LinuxBlockIo::default();
            blkio.set_weight(Some(weight));
            out.set_block_io(Some(blkio));
            any = true;
        }
        any.then_some(out)
    }
}

/// Copies each field `new` sets onto `old`.
fn merge(old: &mut LinuxResources, new: &LinuxResources) {
    if let Some(n) = new.memory() {
        let m = old.memory_mut().get_or_insert_with(LinuxMemory::default);
        if n.limit().is_some() {
            m.set_limit(n.limit());
        }
        if n.reservation().is_some() {
            m.set_reservation(n.reservation());
        }
        if n.swap().is_some() {
            m.set_swap(n.swap());
        }
    }
    if let Some(n) = new.cpu() {
        let c = old.cpu_mut().get_or_insert_with(LinuxCpu::default);
        if n.quota().is_some() {
            c.set_quota(n.quota());
            c.set_period(c.period().or(Some(crate::units::CPU_PERIOD)));
        }
        if n.period().is_some() {
            c.set_period(n.period());
        }
        if n.shares().is_some() {
            c.set_shares(n.shares());
        }
        if n.cpus().is_some() {
            c.set_cpus(n.cpus().clone());
        }
        if n.mems().is_some() {
            c.set_mems(n.mems().clone());
        }
    }
    if new.pids().is_some() {
        old.set_pids(*new.pids());
    }
    if let Some(n) = new.block_io() {
        old.block_io_mut()
            .get_or_insert_with(LinuxBlockIo::default)
            .set_weight(n.weight());
    }
}

/// Applies `changes` to container `record`: to its cgroup while it runs, and to its
/// saved spec and record in any state.
pub fn update(
    global: &GlobalOpts,
    store: &ContainerStore,
    record: &Record,
    changes: &Changes,
) -> Result<()> {
    if let Some(policy) = changes.restart {
        if record.auto_remove && policy != RestartPolicy::No {
            bail!(
                "cannot update the restart policy of {}: it is removed when it exits (--rm)",
                record.name
            );
        }
    }
    if let Some(resources) = changes.resources() {
        let dir = store.dir_of(&record.id);
        let mut spec = load_config(&dir)?;
        let alive = ccrun_runtime::state::process_is_alive(record.pid, record.pid_start_time);
        if record.status == Status::Running && alive {
            // The live cgroup first: a limit the kernel refuses changes nothing.
            Container::load(&global.state_root(), &record.id)
                .and_then(|mut c| c.update(&resources))
                .with_context(|| format!("updating the cgroup of {}", record.name))?;
        }
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut all = linux.resources().clone().unwrap_or_default();
        merge(&mut all, &resources);
        linux.set_resources(Some(all));
        spec.set_linux(Some(linux));
        save_config(&dir, &spec, true)?;
    }
    if let Some(policy) = changes.restart {
        store.update(&record.id, |r| r.restart_policy = policy)?;
    }
    crate::events::container(store.root(), "update", record, &[]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_is_not_changed() {
        let mut old = Changes {
            memory: Some(64 << 20),
            cpu_shares: Some(512),
            pids: Some(10),
            ..Changes::default()
        }
        .resources()
        .expect("resources");
        let new = Changes {
            cpu_quota: Some(50_000),
            pids: Some(20),
            blkio_weight: Some(300),
            ..Changes::default()
        }
        .resources()
        .expect("resources");
        merge(&mut old, &new);
        assert_eq!(
            old.memory().as_ref().and_then(|m| m.limit()),
            Some(64 << 20)
        );
        let cpu = old.cpu().as_ref().expect("cpu");
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(crate::units::CPU_PERIOD));
        assert_eq!(old.pids().as_ref().map(|p| p.limit()), Some(20));
        assert_eq!(old.block_io().as_ref().and_then(|b| b.weight()), Some(300));
        assert!(Changes::default().resources().is_none());
    }
}
