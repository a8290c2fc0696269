//! `process.scheduler` (`sched_setattr(2)`) and `process.ioPriority` (`ioprio_set(2)`):
//! set on the init (or an exec'd process) before it execs, so the program inherits
//! both; and `process.execCPUAffinity` for exec'd processes (the spec says it does not
//! apply to the init); and `linux.memoryPolicy` (`set_mempolicy(2)`) for the init.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy,
    MemoryPolicyFlagType, MemoryPolicyModeType, Process, Scheduler,
};

use crate::error::{Error, Result};

/// `struct sched_attr` from `<linux/sched/types.h>` (`SCHED_ATTR_SIZE_VER0`: no
/// utilization clamps, which the spec cannot express).
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

fn policy(p: LinuxSchedulerPolicy) -> u32 {
    use LinuxSchedulerPolicy as P;
    match p {
        P::SchedOther => 0,
        P::SchedFifo => 1,
        P::SchedRr => 2,
        P::SchedBatch => 3,
        P::SchedIso => 4,
        P::SchedIdle => 5,
        P::SchedDeadline => 6,
    }
}

fn flag(f: LinuxSchedulerFlag) -> Result<u64> {
    use LinuxSchedulerFlag as F;
    Ok(match f {
        F::SchedResetOnFork => 0x01,
        F::SchedFlagReclaim => 0x02,
        F::SchedFlagDLOverrun => 0x04,
        F::SchedFlagKeepPolicy => 0x08,
        F::SchedFlagKeepParams => 0x10,
        F::SchedFlagUtilClampMin | F::SchedFlagUtilClampMax => {
            return Err(Error::InvalidSpec(format!(
                "process.scheduler.flags: {f} needs clamp values the runtime spec cannot \
                 give; not supported"
            )))
        }
    })
}

fn attr(s: &Scheduler) -> Result<SchedAttr> {
    let mut flags = 0;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= flag(*f)?;
    }
    let priority = s.priority().unwrap_or(0);
    let priority = u32::try_from(priority).map_err(|_| {
        Error::InvalidSpec(format!("process.scheduler.priority {priority} is negative"))
    })?;
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy(*s.policy()),
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: priority,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
    })
}

fn ioprio(p: &LinuxIOPriority) -> Result<libc::c_int> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let level = p.priority();
    if !(0..=7).contains(&level) {
        return Err(Error::InvalidSpec(format!(
            "process.ioPriority.priority {level} is out of range 0-7"
        )));
    }
    Ok((class << 13) | level as libc::c_int)
}

/// Parses a CPU list (`0-3,7`) into a CPU set.
pub fn parse_cpus(list: &str) -> Result<nix::sched::CpuSet> {
    let bad = || Error::InvalidSpec(format!("process.execCPUAffinity: bad CPU list {list:?}"));
    let mut set = nix::sched::CpuSet::new();
    for part in list.split(',') {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (from, to) = (from.map_err(|_| bad())?, to.map_err(|_| bad())?);
        if from > to {
            return Err(bad());
        }
        for cpu in from..=to {
            set.set(cpu).map_err(|_| bad())?;
        }
    }
    Ok(set)
}

/// Which moment of an exec an affinity is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityStage {
    /// Before the process joins the container's cgroup.
    Initial,
    /// In the container, right before the exec.
    Final,
}

/// Applies the `execCPUAffinity` of `stage` to the calling process, if the spec has one.
pub fn apply_exec_affinity(process: &Process, stage: AffinityStage) -> Result<()> {
    let Some(aff) = process.exec_cpu_affinity() else {
        return Ok(());
    };
    let list = match stage {
        AffinityStage::Initial => aff.initial(),
        AffinityStage::Final => aff.cpu_affinity_final(),
    };
    let Some(list) = list.as_deref().filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    let set = parse_cpus(list)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| Error::sys(format!("setting CPU affinity {list}"), e))
}

/// Node masks cover this many nodes (the kernel's largest `MAX_NUMNODES`).
const MAX_NODES: usize = 1024;

/// The `set_mempolicy` arguments for `linux.memoryPolicy`: mode with flags, node mask.
fn mempolicy(p: &LinuxMemoryPolicy) -> Result<(libc::c_int, Vec<u64>)> {
    use MemoryPolicyModeType as M;
    let (mode, needs_nodes) = match p.mode() {
        M::MpolDefault => (0, false),
        M::MpolPreferred => (1, true),
        M::MpolBind => (2, true),
        M::MpolInterleave => (3, true),
        M::MpolLocal => (4, false),
        M::MpolPreferredMany => (5, true),
        M::MpolWeightedInterleave => (6, true),
    };
    let mut flags = 0;
    for f in p.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let nodes = p.nodes().as_deref().unwrap_or("");
    let mut mask = vec![0u64; MAX_NODES / 64];
    if nodes.is_empty() == needs_nodes {
        let what = if needs_nodes { "needs" } else { "takes no" };
        return Err(Error::InvalidSpec(format!(
            "linux.memoryPolicy: mode {} {what} nodes",
            p.mode()
        )));
    }
    if !nodes.is_empty() {
        let bad = || Error::InvalidSpec(format!("linux.memoryPolicy.nodes: bad list {nodes:?}"));
        for part in nodes.split(',') {
            let (from, to) = part.split_once('-').unwrap_or((part, part));
            let (from, to) = (
                from.parse::<usize>().map_err(|_| bad())?,
                to.parse::<usize>().map_err(|_| bad())?,
            );
            if from > to || to >= MAX_NODES {
                return Err(bad());
            }
            for n in from..=to {
                mask[n / 64] |= 1 << (n % 64);
            }
        }
    }
    Ok((mode | flags, mask))
}

/// Checks `linux.memoryPolicy` before anything is created.
pub fn validate_memory_policy(p: &LinuxMemoryPolicy) -> Result<()> {
    mempolicy(p).map(drop)
}

/// Applies `linux.memoryPolicy` to the calling process (inherited across fork and exec).
pub fn apply_memory_policy(p: &LinuxMemoryPolicy) -> Result<()> {
    let (mode, mask) = mempolicy(p)?;
    // SAFETY: `mask` holds MAX_NODES bits; maxnode counts one more, as the kernel expects.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            mode,
            mask.as_ptr(),
            (MAX_NODES + 1) as libc::c_ulong,
        )
    };
    Errno::result(ret)
        .map(drop)
        .map_err(|e| Error::sys(format!("setting linux.memoryPolicy ({})", p.mode()), e))
}

/// Checks `process.scheduler` and `process.ioPriority` before anything is created.
pub fn validate(process: &Process) -> Result<()> {
    if let Some(s) = process.scheduler() {
        attr(s)?;
    }
    if let Some(p) = process.io_priority() {
        ioprio(p)?;
    }
    Ok(())
}

/// Applies `process.scheduler` and `process.ioPriority` to the calling process.
pub fn apply(process: &Process) -> Result<()> {
    if let Some(s) = process.scheduler() {
        let a = attr(s)?;
        // SAFETY: `a` is a valid sched_attr whose size field matches its layout.
        let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
        Errno::result(ret).map_err(|e| {
            Error::sys(
                format!("setting process.scheduler (policy {})", s.policy()),
                e,
            )
        })?;
    }
    if let Some(p) = process.io_priority() {
        const IOPRIO_WHO_PROCESS: libc::c_int = 1;
        let value = ioprio(p)?;
        // SAFETY: plain integer arguments; 0 names the calling process.
        let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
        Errno::result(ret).map_err(|e| Error::sys("setting process.ioPriority", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxIOPriorityBuilder, SchedulerBuilder};

    #[test]
    fn memory_policies_are_encoded_and_checked() {
        use oci_spec::runtime::LinuxMemoryPolicyBuilder;
        let bind = LinuxMemoryPolicyBuilder::default()
            .mode(MemoryPolicyModeType::MpolBind)
            .nodes("0,2-3")
            .flags(vec![MemoryPolicyFlagType::MpolFStaticNodes])
            .build()
            .expect("policy");
        let (mode, mask) = mempolicy(&bind).expect("valid");
        assert_eq!(mode, 2 | (1 << 15));
        assert_eq!(mask[0], 0b1101);
        let mut no_nodes = LinuxMemoryPolicy::default();
        no_nodes.set_mode(MemoryPolicyModeType::MpolInterleave);
        assert!(mempolicy(&no_nodes).is_err());
        let mut local_with_nodes = LinuxMemoryPolicy::default();
        local_with_nodes.set_mode(MemoryPolicyModeType::MpolLocal);
        local_with_nodes.set_nodes(Some("0".into()));
        assert!(mempolicy(&local_with_nodes).is_err());
    }

    #[test]
    fn cpu_lists_are_parsed() {
        let set = parse_cpus("0-2,5").expect("parse");
        let on: Vec<usize> = (0..8).filter(|c| set.is_set(*c).unwrap_or(false)).collect();
        assert_eq!(on, [0, 1, 2, 5]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("a").is_err());
    }

    #[test]
    fn io_priority_is_encoded_and_checked() {
        let p = LinuxIOPriorityBuilder::default()
            .class(IOPriorityClass::IoprioClassIdle)
            .priority(7)
            .build()
            .expect("ioprio");
        assert_eq!(ioprio(&p).expect("valid"), (3 << 13) | 7);
        let bad = LinuxIOPriorityBuilder::default()
            .class(IOPriorityClass::IoprioClassBe)
            .priority(8)
            .build()
            .expect("ioprio");
        assert!(ioprio(&bad).is_err());
    }

    #[test]
    fn scheduler_attr_carries_policy_and_flags() {
        let s = SchedulerBuilder::default()
            .policy(LinuxSchedulerPolicy::SchedBatch)
            .nice(5)
            .flags(vec![LinuxSchedulerFlag::SchedResetOnFork])
            .build()
            .expect("scheduler");
        let a = attr(&s).expect("attr");
        assert_eq!((a.sched_policy, a.sched_nice, a.sched_flags), (3, 5, 1));
        assert_eq!(a.size, 48);
        let clamp = SchedulerBuilder::default()
            .flags(vec![LinuxSchedulerFlag::SchedFlagUtilClampMin])
            .build()
            .expect("scheduler");
        assert!(attr(&clamp).is_err());
    }
}
