//! `ccrun update`: change the resource limits and restart policy of containers
//! (see [`crate::containers::update`]).

use anyhow::{bail, Result};

use crate::cli::GlobalOpts;
use crate::containers::update::{self, Changes};
use crate::containers::ContainerStore;
use crate::units;

/// Flags of `update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Block I/O weight, 10 to 1000
    #[arg(long, value_name = "WEIGHT")]
    pub blkio_weight: Option<u16>,
    /// CFS period in microseconds
    #[arg(long, value_name = "MICROSECONDS")]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds per period
    #[arg(long, value_name = "MICROSECONDS", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Relative CPU weight
    #[arg(long, short = 'c', value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Number of CPUs, e.g. 0.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// CPUs the container may run on, e.g. 0-1
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit, e.g. 64m
    #[arg(long, short = 'm', value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (-1 for unlimited)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy: no, on-failure[:MAX_RETRIES], always or unless-stopped
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

fn changes(args: &UpdateArgs) -> Result<Changes> {
    let memory = args.memory.as_deref().map(units::parse_bytes).transpose()?;
    if memory.is_some_and(|m| m < 6 << 20) {
        bail!("--memory must be at least 6MB");
    }
    if args.blkio_weight.is_some_and(|w| !(10..=1000).contains(&w)) {
        bail!("--blkio-weight must be between 10 and 1000");
    }
    if args.cpus.is_some() && (args.cpu_quota.is_some() || args.cpu_period.is_some()) {
        bail!("conflicting options: --cpus and --cpu-quota/--cpu-period");
    }
    let cpu_quota = match &args.cpus {
        Some(cpus) => Some(units::cpus_to_quota(cpus)?),
        None => args.cpu_quota,
    };
    let changes = Changes {
        memory,
        memory_reservation: args
            .memory_reservation
            .as_deref()
            .map(units::parse_bytes)
            .transpose()?,
        memory_swap: args
            .memory_swap
            .as_deref()
            .map(units::parse_swap)
            .transpose()?,
        cpu_quota,
        cpu_period: args
            .cpu_period
            .or(args.cpus.as_ref().map(|_| units::CPU_PERIOD)),
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        pids: args.pids_limit,
        blkio_weight: args.blkio_weight,
        restart: args
            .restart
            .as_deref()
            .map(super::run::parse_restart)
            .transpose()?,
    };
    if changes == Changes::default() {
        bail!("you must provide one or more flags when using this command");
    }
    Ok(changes)
}

/// Runs `update`.
pub fn update(global: &GlobalOpts, args: UpdateArgs) -> Result<i32> {
    let changes = changes(&args)?;
    let store = ContainerStore::open(&global.store_root())?;
    super::for_each_named("update", &args.containers, |name| {
        update::update(global, &store, &store.find(name)?, &changes)?;
        println!("{name}");
        Ok(())
    })?;
    Ok(0)
}
