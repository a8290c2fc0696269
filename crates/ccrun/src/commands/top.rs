//! `ccrun top`: the processes of a running container, read from its cgroup and
//! shown as `docker top` shows them (`ps -ef` columns, host uids and pids).

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::cli::GlobalOpts;
use crate::containers::{ContainerStore, Record, Status};
use crate::format::print_table_min_width;

/// Flags of `top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// ps options (accepted for compatibility and ignored: the columns are ps -ef's)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PS OPTIONS"
    )]
    pub ps_options: Vec<String>,
}

/// Runs `top`.
pub fn top(global: &GlobalOpts, args: TopArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    if record.status != Status::Running {
        bail!("container {} is not running", args.container);
    }
    if !args.ps_options.is_empty() {
        tracing::info!("ignoring ps options {:?}", args.ps_options);
    }
    let pids = container_pids(&global.state_root(), &record)?;
    let clock = Clock::read()?;
    let users = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let mut table = vec![["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        .map(String::from)
        .to_vec()];
    for pid in pids {
        // A process may exit while we read; it is simply not shown.
        if let Some(row) = process_row(pid, &clock, &users) {
            table.push(row);
        }
    }
    print_table_min_width(&mut std::io::stdout().lock(), &table, 20)?;
    Ok(0)
}

/// Pids in the container's cgroup (`/ccrun/<id>`, or under its `--cgroup-parent`,
/// unless its runtime state says otherwise).
fn container_pids(state_root: &Path, record: &Record) -> Result<Vec<i32>> {
    let cgroup = match ccrun_runtime::Container::load(state_root, &record.id) {
        Ok(container) => container.cgroup()?,
        Err(e) => {
            tracing::debug!("no runtime state for {}: {e}", record.short_id());
            let layout = ccrun_cgroups::Layout::detect().context("finding the cgroup mounts")?;
            ccrun_cgroups::Cgroup::open(&layout, &record.options.cgroup_path(&record.id))?
        }
    };
    let pids = cgroup
        .procs()
        .with_context(|| format!("listing the processes of {}", record.short_id()))?;
    if pids.is_empty() {
        bail!("container {} is not running", record.name);
    }
    Ok(pids)
}

/// What turns clock ticks since boot into times.
struct Clock {
    ticks_per_sec: u64,
    boot_time: i64,
    uptime_secs: f64,
    now: i64,
}

impl Clock {
    fn read() -> Result<Clock> {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .context("sysconf(CLK_TCK)")?
            .and_then(|t| u64::try_from(t).ok())
            .filter(|&t| t > 0)
            .unwrap_or(100);
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let boot_time = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
            .context("no btime in /proc/stat")?;
        let uptime = std::fs::read_to_string("/proc/uptime").context("reading /proc/uptime")?;
        let uptime_secs = uptime
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .context("parsing /proc/uptime")?;
        Ok(Clock {
            ticks_per_sec: ticks,
            boot_time,
            uptime_secs,
            now: crate::format::now_secs(),
        })
    }
}

/// The fields of `/proc/PID/stat` that `ps -ef` shows.
struct Stat {
    ppid: i32,
    tty_nr: u64,
    cpu_ticks: u64,
    start_ticks: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let fields: Vec<&str> = text
        .get(text.rfind(')')? + 2..)?
        .split_whitespace()
        .collect();
    // fields[0] is field 3 (state) of proc(5).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: fields.get(1)?.parse().ok()?,
        tty_nr: field(7)?,
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
    })
}

fn process_row(pid: i32, clock: &Clock, users: &str) -> Option<Vec<String>> {
    let stat = read_stat(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = if cmdline.is_empty() {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        format!("[{}]", comm.trim_end())
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let hz = clock.ticks_per_sec;
    let cpu_secs = stat.cpu_ticks / hz;
    let started_after_boot = stat.start_ticks as f64 / hz as f64;
    let elapsed = (clock.uptime_secs - started_after_boot).max(0.0);
    Some(vec![
        user_name(uid, users),
        pid.to_string(),
        stat.ppid.to_string(),
        cpu_percent(stat.cpu_ticks as f64 / hz as f64, elapsed).to_string(),
        start_time(clock.boot_time + started_after_boot as i64, clock.now),
        tty_name(stat.tty_nr),
        cpu_time(cpu_secs),
        cmd,
    ])
}

/// The host's name for `uid`, or the number, as `ps` shows it.
fn user_name(uid: u32, passwd: &str) -> String {
    passwd
        .lines()
        .find_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// ps's `C`: integer percent of one CPU over the process's life, at most 99.
fn cpu_percent(cpu_secs: f64, elapsed_secs: f64) -> u64 {
    if elapsed_secs <= 0.0 {
        return 0;
    }
    ((cpu_secs * 100.0 / elapsed_secs) as u64).min(99)
}

/// ps's `TIME`: cumulative CPU time as `[dd-]hh:mm:ss`.
fn cpu_time(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if days > 0 {
        format!("{days}-{hms}")
    } else {
        hms
    }
}

/// ps's `STIME`: `HH:MM` within the last day, else `MonDD`, else the year (local time).
fn start_time(epoch: i64, now: i64) -> String {
    let Some(tm) = local_time(epoch) else {
        return "?".to_string();
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let age = now - epoch;
    if age < 86_400 {
        format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
    } else if age < 365 * 86_400 {
        let month = MONTHS
            .get(usize::try_from(tm.tm_mon).unwrap_or(0))
            .unwrap_or(&"???");
        format!("{month}{:02}", tm.tm_mday)
    } else {
        (tm.tm_year + 1900).to_string()
    }
}

fn local_time(epoch: i64) -> Option<libc::tm> {
    let t: libc::time_t = epoch;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call; localtime_r is
    // the thread-safe variant and writes only into `tm`.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    ok.then_some(tm)
}

/// ps's `TTY` from `tty_nr`: `pts/N`, `ttyN`, `ttySN`, or `?`.
fn tty_name(tty_nr: u64) -> String {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        0 => "?".to_string(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_columns() {
        assert_eq!(cpu_time(0), "00:00:00");
        assert_eq!(cpu_time(3_725), "01:02:05");
        assert_eq!(cpu_time(90_061), "1-01:01:01");
        assert_eq!(cpu_percent(1.0, 4.0), 25);
        assert_eq!(cpu_percent(10.0, 1.0), 99);
        assert_eq!(cpu_percent(1.0, 0.0), 0);
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        let passwd = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n";
        assert_eq!(user_name(1000, passwd), "bob");
        assert_eq!(user_name(100_000, passwd), "100000");
    }

    #[test]
    fn our_own_process_reads_like_ps() {
        let clock = Clock::read().expect("clock");
        let row = process_row(std::process::id() as i32, &clock, "").expect("row");
        assert_eq!(row[1], std::process::id().to_string());
        assert_eq!(row[0], nix::unistd::geteuid().as_raw().to_string());
        assert!(row[6].len() >= 8, "{row:?}");
        assert!(!row[7].is_empty());
    }
}
