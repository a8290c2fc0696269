//! Resource usage of running containers, as `docker stats` shows it: CPU % between
//! two samples (the container's CPU time against the host's), memory usage (less
//! the inactive page cache) and limit, network I/O of the container's network
//! namespace (`/proc/PID/net/dev`, loopback left out), block I/O and pids, from the
//! container's cgroup.

use std::collections::HashMap;

use anyhow::{Context, Result};
use ccrun_runtime::Container;

use super::record::NetworkChoice;
use super::{Record, Status};
use crate::cli::GlobalOpts;

/// One reading of a container's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Container CPU time, nanoseconds.
    cpu: u64,
    /// Host CPU time (all CPUs, every state), nanoseconds.
    system: u64,
    /// Memory in use, bytes (page cache that can be dropped left out).
    pub memory: u64,
    /// Memory limit, bytes (the host's memory when unlimited).
    pub memory_limit: u64,
    /// Bytes received and sent on the container's interfaces.
    pub net: (u64, u64),
    /// Bytes read from and written to block devices.
    pub block: (u64, u64),
    /// Tasks in the cgroup.
    pub pids: u64,
}

/// What a row of `stats` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// The latest sample.
    pub sample: Sample,
    /// CPU use since the previous sample, in percent of one CPU.
    pub cpu_percent: f64,
}

impl Usage {
    /// Memory in use as a share of the limit, in percent.
    pub fn memory_percent(&self) -> f64 {
        if self.sample.memory_limit == 0 {
            0.0
        } else {
            self.sample.memory as f64 * 100.0 / self.sample.memory_limit as f64
        }
    }
}

/// Host CPU time in nanoseconds: the `cpu` line of /proc/stat, in clock ticks.
fn system_cpu() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    // user, nice, system, idle, iowait, irq, softirq, as Docker sums them (guest
    // time is already part of user time).
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    Ok(ticks.saturating_mul(1_000_000_000) / hz)
}

/// Received and sent bytes over the interfaces of `/proc/PID/net/dev` but `lo`.
fn net_io(pid: i32) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return (0, 0);
    };
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            if name.trim() == "lo" {
                return None;
            }
            let fields: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((*fields.first()?, *fields.get(8)?))
        })
        .fold((0, 0), |(rx, tx), (r, t)| (rx + r, tx + t))
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Reads the counters of running container `record`.
pub fn sample(global: &GlobalOpts, record: &Record) -> Result<Sample> {
    let stats = Container::load(&global.state_root(), &record.id)
        .and_then(|c| c.stats())
        .with_context(|| format!("reading the cgroup of {}", record.name))?;
    let memory = &stats.memory;
    // Docker leaves out what the kernel can drop at once: inactive file pages.
    let inactive = ["total_inactive_file", "inactive_file"]
        .iter()
        .find_map(|k| memory.raw.get(*k))
        .copied()
        .unwrap_or(0);
    let host = host_memory();
    let limit = memory.usage.limit;
    let memory_limit = if limit == 0 || limit >= host {
        host
    } else {
        limit
    };
    let block = stats
        .blkio
        .io_service_bytes_recursive
        .iter()
        .fold((0, 0), |(r, w), e| {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => (r + e.value, w),
                "write" => (r, w + e.value),
                _ => (r, w),
            }
        });
    Ok(Sample {
        cpu: stats.cpu.usage.total,
        system: system_cpu()?,
        memory: memory.usage.usage.saturating_sub(inactive),
        memory_limit,
        // The host's own interfaces are not the container's traffic.
        net: if record.network == NetworkChoice::Host {
            (0, 0)
        } else {
            net_io(record.pid)
        },
        block,
        pids: stats.pids.current,
    })
}

/// Keeps each container's previous sample, for the CPU % between two readings.
#[derive(Debug, Default)]
pub struct Sampler {
    previous: HashMap<String, Sample>,
}

impl Sampler {
    /// Takes a sample of `record` and returns its usage since the previous one
    /// (all zero for a container that does not run).
    pub fn usage(&mut self, global: &GlobalOpts, record: &Record) -> Result<Usage> {
        if record.status != Status::Running {
            return Ok(Usage::default());
        }
        let now = sample(global, record)?;
        let cpu_percent = match self.previous.get(&record.id) {
            Some(before) => {
                let cpu = now.cpu.saturating_sub(before.cpu) as f64;
                let system = now.system.saturating_sub(before.system) as f64;
                if system > 0.0 {
                    cpu / system * crate::units::online_cpus() as f64 * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.previous.insert(record.id.clone(), now.clone());
        Ok(Usage {
            sample: now,
            cpu_percent,
        })
    }
}

/// Sizes in binary units, as Docker shows memory (`1.5MiB`).
pub fn binary_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        // Four significant digits, trailing zeros dropped (Go's %.4g).
        let whole_digits = v.log10().floor() as usize + 1;
        let text = format!("{v:.*}", 4usize.saturating_sub(whole_digits));
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        format!("{text}{}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes() {
        assert_eq!(binary_size(512), "512B");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(2_087_000_000), "1.944GiB");
    }

    #[test]
    fn usage_percent() {
        let usage = Usage {
            sample: Sample {
                memory: 25,
                memory_limit: 100,
                ..Sample::default()
            },
            cpu_percent: 0.0,
        };
        assert_eq!(usage.memory_percent(), 25.0);
        assert_eq!(Usage::default().memory_percent(), 0.0);
    }

    #[test]
    fn host_counters_read() {
        assert!(system_cpu().expect("cpu") > 0);
        assert!(host_memory() > 0);
    }
}
