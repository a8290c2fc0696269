//! Usage statistics of a cgroup, shaped like runc's `types.Stats` so that
//! `serde_json::to_value(&stats)` is what `runc events --stats` prints as `data`.
//!
//! Field names and the omission of zero values follow runc's JSON tags. A controller
//! missing on the host leaves its section at zero (runc does the same).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::fs;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Everything [`crate::Cgroup::stats`] reads (runc's `types.Stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// CPU usage and throttling.
    pub cpu: CpuStats,
    /// The cpuset in force.
    pub cpuset: CpusetStats,
    /// Memory usage and limits.
    pub memory: MemoryStats,
    /// Task counts.
    pub pids: PidsStats,
    /// Block I/O counters.
    pub blkio: BlkioStats,
    /// Huge page usage per page size (`2MB`, `1GB`, ...).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
}

/// CPU statistics (runc's `types.Cpu`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    /// Time consumed.
    pub usage: CpuUsage,
    /// CFS bandwidth throttling.
    pub throttling: Throttling,
}

/// CPU time consumed, in nanoseconds (runc's `types.CpuUsage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Total per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Kernel-mode time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// User-mode time per CPU (v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Time in kernel mode.
    pub kernel: u64,
    /// Time in user mode.
    pub user: u64,
}

/// CFS bandwidth throttling (runc's `types.Throttling`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    /// Enforcement periods that elapsed.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Total time throttled, in nanoseconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// The cpuset (runc's `types.CPUSet`). v2 fills only the effective CPUs and nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpusetStats {
    /// CPUs the tasks may run on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// `cpuset.cpu_exclusive`.
    pub cpu_exclusive: u64,
    /// Memory nodes the tasks may allocate on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// `cpuset.mem_hardwall`.
    pub mem_hardwall: u64,
    /// `cpuset.mem_exclusive`.
    pub mem_exclusive: u64,
    /// `cpuset.memory_migrate`.
    pub memory_migrate: u64,
    /// `cpuset.memory_spread_page`.
    pub memory_spread_page: u64,
    /// `cpuset.memory_spread_slab`.
    pub memory_spread_slab: u64,
    /// `cpuset.memory_pressure`.
    pub memory_pressure: u64,
    /// `cpuset.sched_load_balance`.
    pub sched_load_balance: u64,
    /// `cpuset.sched_relax_domain_level`.
    pub sched_relax_domain_level: i64,
}

/// Memory statistics (runc's `types.Memory`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    /// Page cache in bytes (v1 `cache`, v2 `file` of memory.stat).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory plus swap (v1 memsw; on v2 memory + swap, as runc reports it).
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every counter of `memory.stat`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter with its limit (runc's `types.MemoryEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    /// Limit in bytes (`u64::MAX` when unlimited on v2).
    pub limit: u64,
    /// Usage in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak usage in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Task counts (runc's `types.Pids`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    /// Tasks in the cgroup.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// `pids.max` (0 when unlimited).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Block I/O counters (runc's `types.Blkio`). Only the two lists every kernel
/// provides are filled; the others exist for the JSON shape and stay empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlkioStats {
    /// Bytes transferred per device and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// Operations per device and operation type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued operations (CFQ only).
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged operations (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Device time (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors (CFQ only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

/// One block I/O counter (runc's `types.BlkioEntry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// Device major number.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor number.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// `Read`, `Write`, `Sync`, `Async`, `Discard` or `Total`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The count.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Huge page usage of one page size (runc's `types.Hugetlb`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HugetlbStats {
    /// Bytes in use.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Peak bytes in use (v1 only).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times an allocation failed at the limit.
    pub failcnt: u64,
}

/// Parses a flat keyed file (`key value` lines) into a map; lines whose value is
/// not a number are skipped (v1 memory.stat has none, v2 cpu.stat neither).
fn keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let key = f.next()?;
            let value = f.next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// Reads a flat keyed file; a missing file gives an empty map.
fn read_keyed(path: &Path) -> Result<BTreeMap<String, u64>> {
    Ok(fs::read_optional(path)?
        .map(|t| keyed(&t))
        .unwrap_or_default())
}

/// A u64 file, 0 if missing; `max` reads as `max_value`.
fn read_num(path: &Path, max_value: u64) -> Result<u64> {
    match fs::read_optional(path)? {
        None => Ok(0),
        Some(t) if t.trim() == "max" => Ok(max_value),
        Some(t) => fs::parse_u64(path, &t),
    }
}

/// Space-separated numbers (v1 `cpuacct.usage_percpu*`); missing file gives none.
fn read_list(path: &Path) -> Result<Vec<u64>> {
    match fs::read_optional(path)? {
        None => Ok(Vec::new()),
        Some(t) => t
            .split_whitespace()
            .map(|n| fs::parse_u64(path, n))
            .collect(),
    }
}

/// Expands a cpu or node list such as `0-2,5` into its members.
fn parse_cpu_list(path: &Path, text: &str) -> Result<Vec<u16>> {
    let bad = || crate::Error::Parse {
        path: path.to_path_buf(),
        reason: format!("expected a cpu list, found {:?}", text.trim()),
    };
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let first: u16 = first.parse().map_err(|_| bad())?;
        let last: u16 = last.parse().map_err(|_| bad())?;
        if last < first {
            return Err(bad());
        }
        out.extend(first..=last);
    }
    Ok(out)
}

fn read_cpu_list(path: &Path) -> Result<Vec<u16>> {
    match fs::read_optional(path)? {
        Some(text) => parse_cpu_list(path, &text),
        None => Ok(Vec::new()),
    }
}

/// v1 cpuset statistics.
pub(crate) fn v1_cpuset(dir: &Path) -> Result<CpusetStats> {
    let num = |name: &str| read_num(&dir.join(format!("cpuset.{name}")), 0);
    let level_path = dir.join("cpuset.sched_relax_domain_level");
    let level = match fs::read_optional(&level_path)? {
        Some(t) => t.trim().parse().map_err(|_| crate::Error::Parse {
            path: level_path.clone(),
            reason: format!("expected an integer, found {:?}", t.trim()),
        })?,
        None => 0,
    };
    Ok(CpusetStats {
        cpus: read_cpu_list(&dir.join("cpuset.cpus"))?,
        cpu_exclusive: num("cpu_exclusive")?,
        mems: read_cpu_list(&dir.join("cpuset.mems"))?,
        mem_hardwall: num("mem_hardwall")?,
        mem_exclusive: num("mem_exclusive")?,
        memory_migrate: num("memory_migrate")?,
        memory_spread_page: num("memory_spread_page")?,
        memory_spread_slab: num("memory_spread_slab")?,
        memory_pressure: num("memory_pressure")?,
        sched_load_balance: num("sched_load_balance")?,
        sched_relax_domain_level: level,
    })
}

/// v2 cpuset statistics: the effective CPUs and memory nodes.
pub(crate) fn v2_cpuset(dir: &Path) -> Result<CpusetStats> {
    Ok(CpusetStats {
        cpus: read_cpu_list(&dir.join("cpuset.cpus.effective"))?,
        mems: read_cpu_list(&dir.join("cpuset.mems.effective"))?,
        ..CpusetStats::default()
    })
}

/// v1 memory statistics from the memory hierarchy directory.
pub(crate) fn v1_memory(dir: &Path) -> Result<MemoryStats> {
    let entry = |prefix: &str| -> Result<MemoryEntry> {
        let f = |name: &str| dir.join(format!("{prefix}.{name}"));
        Ok(MemoryEntry {
            limit: read_num(&f("limit_in_bytes"), u64::MAX)?,
            usage: read_num(&f("usage_in_bytes"), 0)?,
            max: read_num(&f("max_usage_in_bytes"), 0)?,
            failcnt: read_num(&f("failcnt"), 0)?,
        })
    };
    let raw = read_keyed(&dir.join("memory.stat"))?;
    Ok(MemoryStats {
        cache: raw.get("cache").copied().unwrap_or_default(),
        usage: entry("memory")?,
        swap: entry("memory.memsw")?,
        kernel: entry("memory.kmem")?,
        kernel_tcp: entry("memory.kmem.tcp")?,
        raw,
    })
}

/// v2 memory statistics. Like runc, `swap` reports memory+swap so that it means
/// the same as on v1.
pub(crate) fn v2_memory(dir: &Path) -> Result<MemoryStats> {
    let events = read_keyed(&dir.join("memory.events"))?;
    let usage = MemoryEntry {
        limit: read_num(&dir.join("memory.max"), u64::MAX)?,
        usage: read_num(&dir.join("memory.current"), 0)?,
        max: read_num(&dir.join("memory.peak"), 0)?,
        failcnt: events.get("max").copied().unwrap_or_default(),
    };
    let swap_path = dir.join("memory.swap.max");
    let swap = if fs::exists(&swap_path) {
        let swap_events = read_keyed(&dir.join("memory.swap.events"))?;
        let swap_limit = read_num(&swap_path, u64::MAX)?;
        MemoryEntry {
            limit: if usage.limit == u64::MAX || swap_limit == u64::MAX {
                u64::MAX
            } else {
                usage.limit.saturating_add(swap_limit)
            },
            usage: read_num(&dir.join("memory.swap.current"), 0)?.saturating_add(usage.usage),
            max: 0,
            failcnt: swap_events.get("max").copied().unwrap_or_default(),
        }
    } else {
        MemoryEntry::default()
    };
    let raw = read_keyed(&dir.join("memory.stat"))?;
    Ok(MemoryStats {
        cache: raw.get("file").copied().unwrap_or_default(),
        usage,
        swap,
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    })
}

/// v1 CPU usage from the cpuacct hierarchy directory.
pub(crate) fn v1_cpu_usage(dir: &Path) -> Result<CpuUsage> {
    // cpuacct.stat counts USER_HZ ticks.
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100);
    let stat = read_keyed(&dir.join("cpuacct.stat"))?;
    let ns = |key: &str| stat.get(key).copied().unwrap_or_default() * (1_000_000_000 / ticks);
    Ok(CpuUsage {
        total: read_num(&dir.join("cpuacct.usage"), 0)?,
        percpu: read_list(&dir.join("cpuacct.usage_percpu"))?,
        percpu_kernel: read_list(&dir.join("cpuacct.usage_percpu_sys"))?,
        percpu_user: read_list(&dir.join("cpuacct.usage_percpu_user"))?,
        kernel: ns("system"),
        user: ns("user"),
    })
}

/// v1 throttling from the cpu hierarchy directory.
pub(crate) fn v1_throttling(dir: &Path) -> Result<Throttling> {
    let stat = read_keyed(&dir.join("cpu.stat"))?;
    let get = |k: &str| stat.get(k).copied().unwrap_or_default();
    Ok(Throttling {
        periods: get("nr_periods"),
        throttled_periods: get("nr_throttled"),
        throttled_time: get("throttled_time"),
    })
}

/// v2 CPU statistics from `cpu.stat` (which exists even without the cpu controller).
pub(crate) fn v2_cpu(dir: &Path) -> Result<CpuStats> {
    let stat = read_keyed(&dir.join("cpu.stat"))?;
    let get = |k: &str| stat.get(k).copied().unwrap_or_default();
    Ok(CpuStats {
        usage: CpuUsage {
            total: get("usage_usec") * 1000,
            kernel: get("system_usec") * 1000,
            user: get("user_usec") * 1000,
            ..CpuUsage::default()
        },
        throttling: Throttling {
            periods: get("nr_periods"),
            throttled_periods: get("nr_throttled"),
            throttled_time: get("throttled_usec") * 1000,
        },
    })
}

/// pids statistics (same files on v1 and v2).
pub(crate) fn pids(dir: &Path) -> Result<PidsStats> {
    Ok(PidsStats {
        current: read_num(&dir.join("pids.current"), 0)?,
        limit: read_num(&dir.join("pids.max"), 0)?,
    })
}

/// Parses v1 blkio lines `MAJ:MIN Op value` (the `Total` line has no device).
fn v1_blkio_entries(path: &Path) -> Result<Vec<BlkioEntry>> {
    let Some(text) = fs::read_optional(path)? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [dev, op, value] = fields[..] else {
            continue;
        };
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        entries.push(BlkioEntry {
            major: fs::parse_u64(path, major)?,
            minor: fs::parse_u64(path, minor)?,
            op: op.to_string(),
            value: fs::parse_u64(path, value)?,
        });
    }
    Ok(entries)
}

/// v1 blkio statistics: the CFQ files where present, else BFQ's, else the
/// throttling layer's (which counts every I/O).
pub(crate) fn v1_blkio(dir: &Path) -> Result<BlkioStats> {
    let first = |names: &[&str]| -> Result<Vec<BlkioEntry>> {
        for name in names {
            let path = dir.join(name);
            if fs::exists(&path) {
                return v1_blkio_entries(&path);
            }
        }
        Ok(Vec::new())
    };
    Ok(BlkioStats {
        io_service_bytes_recursive: first(&[
            "blkio.io_service_bytes_recursive",
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ])?,
        io_serviced_recursive: first(&[
            "blkio.io_serviced_recursive",
            "blkio.bfq.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ])?,
        ..BlkioStats::default()
    })
}

/// v2 `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
pub(crate) fn v2_io(dir: &Path) -> Result<BlkioStats> {
    let path = dir.join("io.stat");
    let mut stats = BlkioStats::default();
    let Some(text) = fs::read_optional(&path)? else {
        return Ok(stats);
    };
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (major, minor) = (fs::parse_u64(&path, major)?, fs::parse_u64(&path, minor)?);
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let (list, op) = match key {
                "rbytes" => (&mut stats.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut stats.io_service_bytes_recursive, "Write"),
                "rios" => (&mut stats.io_serviced_recursive, "Read"),
                "wios" => (&mut stats.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: fs::parse_u64(&path, value)?,
            });
        }
    }
    Ok(stats)
}

/// Page sizes for which `dir` has a hugetlb file ending in `suffix`
/// (`hugetlb.2MB.limit_in_bytes` -> `2MB`), skipping reservation files.
fn page_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(crate::Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut sizes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(suffix))
        {
            if !size.contains('.') {
                sizes.push(size.to_string());
            }
        }
    }
    sizes.sort();
    Ok(sizes)
}

/// v1 hugetlb statistics per page size.
pub(crate) fn v1_hugetlb(dir: &Path) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    for size in page_sizes(dir, ".limit_in_bytes")? {
        let f = |n: &str| dir.join(format!("hugetlb.{size}.{n}"));
        let stats = HugetlbStats {
            usage: read_num(&f("usage_in_bytes"), 0)?,
            max: read_num(&f("max_usage_in_bytes"), 0)?,
            failcnt: read_num(&f("failcnt"), 0)?,
        };
        out.insert(size, stats);
    }
    Ok(out)
}

/// v2 hugetlb statistics per page size.
pub(crate) fn v2_hugetlb(dir: &Path) -> Result<BTreeMap<String, HugetlbStats>> {
    let mut out = BTreeMap::new();
    for size in page_sizes(dir, ".max")? {
        let f = |n: &str| dir.join(format!("hugetlb.{size}.{n}"));
        let events = read_keyed(&f("events"))?;
        let stats = HugetlbStats {
            usage: read_num(&f("current"), 0)?,
            max: 0,
            failcnt: events.get("max").copied().unwrap_or_default(),
        };
        out.insert(size, stats);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_io_stat_becomes_runc_entries() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("io.stat"),
            "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
        )
        .unwrap();
        let s = v2_io(tmp.path()).unwrap();
        assert_eq!(s.io_service_bytes_recursive.len(), 2);
        assert_eq!(s.io_service_bytes_recursive[0].op, "Read");
        assert_eq!(s.io_service_bytes_recursive[0].value, 4096);
        assert_eq!(s.io_serviced_recursive[0].value, 1);
    }

    #[test]
    fn v1_blkio_skips_the_total_line() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("blkio.throttle.io_serviced_recursive"),
            "8:0 Read 3\n8:0 Write 2\nTotal 5\n",
        )
        .unwrap();
        let s = v1_blkio(tmp.path()).unwrap();
        assert_eq!(s.io_serviced_recursive.len(), 2);
        assert_eq!(s.io_serviced_recursive[1].op, "Write");
        assert!(s.io_service_bytes_recursive.is_empty());
    }

    #[test]
    fn cpu_lists_expand() {
        let p = Path::new("cpuset.cpus");
        assert_eq!(parse_cpu_list(p, "0-2,5\n").unwrap(), [0, 1, 2, 5]);
        assert_eq!(parse_cpu_list(p, "\n").unwrap(), Vec::<u16>::new());
        assert!(parse_cpu_list(p, "3-1").is_err());
        assert!(parse_cpu_list(p, "a").is_err());
    }

    #[test]
    fn json_shape_matches_runc() {
        let mut stats = Stats::default();
        stats.memory.usage.limit = 10;
        stats.cpu.throttling.throttled_periods = 2;
        stats.pids.current = 1;
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["memory"]["usage"]["limit"], 10);
        assert_eq!(json["memory"]["usage"]["failcnt"], 0);
        assert!(json["memory"]["usage"].get("usage").is_none());
        assert!(json["memory"].get("kernelTCP").is_some());
        assert_eq!(json["cpu"]["throttling"]["throttledPeriods"], 2);
        assert_eq!(json["cpu"]["usage"]["kernel"], 0);
        assert_eq!(json["pids"]["current"], 1);
        assert!(json["hugetlb"].as_object().unwrap().is_empty());
        assert_eq!(json["cpuset"]["sched_relax_domain_level"], 0);
        assert!(json["cpuset"].get("cpus").is_none());
    }
}
