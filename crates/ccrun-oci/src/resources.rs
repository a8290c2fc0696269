//! Everything that touches the container's cgroup beyond the lifecycle: `update`,
//! `kill --all`, `ps`, `events`. Kept in one module so it can move to the cgroup crate's
//! own `update`/`kill_all`/stats calls as they appear.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ccrun_runtime::{Container, Status};
use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::cli::{EventsArgs, UpdateArgs};

/// Applies `resources` to the container's live cgroup.
pub fn update(c: &mut Container, resources: &LinuxResources) -> Result<()> {
    Ok(c.update(resources)?)
}

/// The processes of the container (its cgroup's members).
pub fn pids(c: &Container) -> Result<Vec<i32>> {
    Ok(c.cgroup()?.procs()?)
}

/// Signals every process of the container; the cgroup is frozen around the walk so
/// nothing forks past the signal (as runc does).
pub fn kill_all(c: &Container, signal: i32) -> Result<()> {
    let cgroup = c.cgroup()?;
    if let Ok(sig) = Signal::try_from(signal) {
        return Ok(cgroup.kill_all(sig)?);
    }
    // A real-time signal, which the cgroup crate's `Signal` cannot carry: the same walk.
    let was_frozen = cgroup.is_frozen().unwrap_or(false);
    if !was_frozen {
        cgroup.freeze()?;
    }
    let result = cgroup
        .procs()
        .map_err(anyhow::Error::from)
        .and_then(|pids| {
            pids.into_iter().try_for_each(|pid| {
                // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
                match nix::errno::Errno::result(unsafe { libc::kill(pid, signal) }) {
                    Ok(_) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                    Err(e) => Err(anyhow::anyhow!("signalling {pid}: {e}")),
                }
            })
        });
    if !was_frozen {
        cgroup.thaw()?;
    }
    result
}

/// `update`'s resources: the `--resources` document, then the flags over it.
pub fn from_args(args: &UpdateArgs) -> Result<LinuxResources> {
    let mut doc: Value = match &args.resources {
        None => json!({}),
        Some(p) if p.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("parsing resources from stdin")?
        }
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", p.display()))?
        }
    };
    if !doc.is_object() {
        bail!("resources must be a JSON object (runtime-spec linux.resources)");
    }
    let mut set = |section: &str, key: &str, value: Value| {
        if !doc[section].is_object() {
            doc[section] = json!({});
        }
        doc[section][key] = value;
    };
    if let Some(v) = &args.memory {
        set("memory", "limit", json!(parse_size(v)?));
    }
    if let Some(v) = &args.memory_reservation {
        set("memory", "reservation", json!(parse_size(v)?));
    }
    if let Some(v) = &args.memory_swap {
        set("memory", "swap", json!(parse_size(v)?));
    }
    if let Some(v) = args.cpu_quota {
        set("cpu", "quota", json!(v));
    }
    if let Some(v) = args.cpu_period {
        set("cpu", "period", json!(v));
    }
    if let Some(v) = args.cpu_shares {
        set("cpu", "shares", json!(v));
    }
    if let Some(v) = &args.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = &args.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    if let Some(v) = args.pids_limit {
        // runc: 0 and -1 both mean no limit.
        set("pids", "limit", json!(if v <= 0 { -1 } else { v }));
    }
    if let Some(v) = args.blkio_weight {
        set("blockIO", "weight", json!(v));
    }
    serde_json::from_value(doc).context("invalid resources")
}

/// A size in bytes with an optional k/m/g/t suffix (binary units, as runc); -1 is
/// unlimited.
pub fn parse_size(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        Some('t') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: i64 = digits
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {text:?} too large"))
}

/// runc's stats event: `{"type":"stats","id":…,"data":{cpu, memory, pids, …}}`.
fn stats_event(c: &Container) -> Result<Value> {
    // The cgroup crate's Stats serialise to runc's `types.Stats` shape.
    Ok(json!({
        "type": "stats",
        "id": c.id(),
        "data": serde_json::to_value(c.stats()?)?,
    }))
}

/// `events`: with `--stats` one stats line; else a stats line every interval and an
/// `oom` line when the kernel OOM-kills in the container, until it stops.
pub fn events(c: &Container, args: &EventsArgs) -> Result<()> {
    if args.stats {
        println!("{}", stats_event(c)?);
        return Ok(());
    }
    let interval = humantime::parse_duration(&args.interval)
        .with_context(|| format!("invalid --interval {:?}", args.interval))?;
    if interval.is_zero() {
        bail!("--interval must be positive");
    }
    let cgroup = c.cgroup()?;
    let mut ooms = cgroup.oom_kill_count().unwrap_or(0);
    let mut next_stats = Instant::now();
    let mut state = c.state.clone();
    loop {
        state.refresh(&c.state_dir);
        if state.status == Status::Stopped {
            return Ok(());
        }
        let now = cgroup.oom_kill_count().unwrap_or(ooms);
        if now > ooms {
            println!("{}", json!({"type": "oom", "id": c.id()}));
            ooms = now;
        }
        if Instant::now() >= next_stats {
            println!("{}", stats_event(c)?);
            next_stats = Instant::now() + interval;
        }
        std::thread::sleep(interval.min(Duration::from_millis(200)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("512").expect("plain"), 512);
        assert_eq!(parse_size("4k").expect("k"), 4096);
        assert_eq!(parse_size("256M").expect("M"), 256 << 20);
        assert_eq!(parse_size("1gb").expect("gb"), 1 << 30);
        assert_eq!(parse_size("-1").expect("-1"), -1);
        assert!(parse_size("lots").is_err());
    }
}
