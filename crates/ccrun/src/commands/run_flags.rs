//! The `run`/`create` flags of issue 15 (attach streams, cidfile, DNS and hosts,
//! shared namespaces, more cgroup limits, log drivers, healthchecks, …) and their
//! validation. Everything here is checked before anything is created, and every error
//! is a bad flag (exit 125).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use crate::containers::health::{parse_go_duration, HealthConfig};
use crate::containers::options::{LogDriver, RunOptions, DEFAULT_LOG_MAX_FILES};
use crate::spec_builder::{Limits, Throttle};
use crate::units;

/// `--cgroupns` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CgroupnsArg {
    /// A cgroup namespace of its own (default)
    Private,
    /// The host's cgroup namespace
    Host,
}

/// The flags of `run` and `create` added for Docker parity (flattened into `RunArgs`).
#[derive(Debug, Default, clap::Args)]
pub struct MoreRunArgs {
    /// Attach to STDIN, STDOUT or STDERR in a foreground run (repeatable)
    /// [default: stdout and stderr, stdin too with -i]
    #[arg(long, short = 'a', value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Write the container id to FILE (which must not exist)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Keys that detach from an -it container, leaving it running [default: ctrl-p,ctrl-q]
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// DNS search domain for /etc/resolv.conf ("." for none)
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// DNS option for /etc/resolv.conf, e.g. ndots:2
    #[arg(long, value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// The container's NIS domain name
    #[arg(long, value_name = "NAME")]
    pub domainname: Option<String>,
    /// Expose a port or range (PORT[/PROTO]) without publishing it
    #[arg(long, value_name = "PORT[/PROTO]")]
    pub expose: Vec<String>,
    /// Add a supplementary group (name in the container's /etc/group, or GID)
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// IPC namespace: private, shareable, none, host or container:NAME
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// PID namespace: private, host or container:NAME
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// UTS namespace: private, host or container:NAME
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
    /// Cgroup namespace: private or host
    #[arg(long, value_enum, value_name = "MODE")]
    pub cgroupns: Option<CgroupnsArg>,
    /// Parent cgroup of the container's cgroup (PATH/<id> instead of /ccrun/<id>)
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Read labels from a file (KEY=VALUE lines)
    #[arg(long, value_name = "FILE")]
    pub label_file: Vec<PathBuf>,
    /// Add a hosts entry for another running container: NAME[:ALIAS]
    #[arg(long, value_name = "NAME[:ALIAS]")]
    pub link: Vec<String>,
    /// The MAC address of the container's interface on its network
    #[arg(long, value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Memory soft limit, e.g. 32m
    #[arg(long, value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// How readily the container's anonymous pages are swapped (0 to 100; -1: the host's)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// Keep the OOM killer away from the container (cgroup v1)
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// CFS period in microseconds (1000 to 1000000)
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CFS quota in microseconds per period (at least 1000; -1: none)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Relative block I/O weight (10 to 1000)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// Limit reads from a device: DEVICE:RATE, e.g. /dev/sda:1mb
    #[arg(long, value_name = "DEVICE:RATE")]
    pub device_read_bps: Vec<String>,
    /// Limit writes to a device: DEVICE:RATE, e.g. /dev/sda:1mb
    #[arg(long, value_name = "DEVICE:RATE")]
    pub device_write_bps: Vec<String>,
    /// Limit read operations per second on a device: DEVICE:N
    #[arg(long, value_name = "DEVICE:N")]
    pub device_read_iops: Vec<String>,
    /// Limit write operations per second on a device: DEVICE:N
    #[arg(long, value_name = "DEVICE:N")]
    pub device_write_iops: Vec<String>,
    /// Add a device cgroup rule: 'TYPE MAJOR:MINOR ACCESS', e.g. 'c 1:3 rwm' (* for any)
    #[arg(long, value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// Logging driver: k8s-file (default), json-file, none (journald where available)
    #[arg(long, value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Pass the signals ccrun receives on to a foreground container (--sig-proxy=false: don't)
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub sig_proxy: bool,
    /// Mount the volumes and bind mounts of another container: NAME[:ro|rw]
    #[arg(long, value_name = "CONTAINER[:ro|rw]")]
    pub volumes_from: Vec<String>,
    /// Add an annotation to the runtime spec (KEY=VALUE)
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Pull quietly: no progress output
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Command to run to check health (run by /bin/sh -c in the container)
    #[arg(long, value_name = "COMMAND", allow_hyphen_values = true)]
    pub health_cmd: Option<String>,
    /// Time between health checks, e.g. 30s (ms|s|m|h) [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Maximum time a check may run [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy [default: 3]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub health_retries: Option<i64>,
    /// Time to initialize before failed checks count [default: 0s]
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Disable the image's HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
}

/// Docker's shortest healthcheck duration.
const MIN_HEALTH_DURATION: std::time::Duration = std::time::Duration::from_millis(1);

/// What the flags resolve to before the container exists.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Settings kept in the record (the healthcheck is merged with the image's later).
    pub options: RunOptions,
    /// `--health-*`: the flags' own healthcheck, to merge over the image's.
    pub health: Option<HealthConfig>,
    /// `--label-file` entries (before `--label`).
    pub file_labels: Vec<(String, String)>,
    /// `--expose` ports as `PORT/PROTO` keys.
    pub exposed: Vec<String>,
    /// `--link` targets: (container, alias).
    pub links: Vec<(String, String)>,
    /// `--volumes-from`: (container, read-only override).
    pub volumes_from: Vec<(String, Option<bool>)>,
}

impl MoreRunArgs {
    /// Validates the flags, with `run`'s `--log-opt` values and whether it runs
    /// detached.
    pub fn parse(&self, log_opt: &[String], detach: bool) -> Result<Parsed> {
        if let Some(keys) = &self.detach_keys {
            crate::containers::attach::parse_detach_keys(keys)?;
        }
        for d in &self.dns_search {
            if d != "." && !is_host_name(d) {
                bail!("invalid --dns-search {d:?}: not a domain name");
            }
        }
        for o in &self.dns_option {
            if o.is_empty() || o.contains(char::is_whitespace) {
                bail!("invalid --dns-option {o:?}: one word such as ndots:2");
            }
        }
        if let Some(d) = &self.domainname {
            if !is_host_name(d) {
                bail!("invalid --domainname {d:?}: not a domain name");
            }
        }
        let cgroup_parent = match &self.cgroup_parent {
            Some(parent) => {
                let trimmed = parent.trim_matches('/');
                if trimmed.is_empty()
                    || trimmed
                        .split('/')
                        .any(|c| c.is_empty() || c == "." || c == "..")
                {
                    bail!("invalid --cgroup-parent {parent:?}: a cgroup path such as /mygroup");
                }
                Some(format!("/{trimmed}"))
            }
            None => None,
        };
        if let Some(mac) = &self.mac_address {
            parse_mac(mac)?;
        }
        let (log_driver, log_max_files, log_opts) = self.log_settings(log_opt)?;
        let ipc_mode = match self.namespace_mode(
            "--ipc",
            self.ipc.as_deref(),
            &["private", "shareable", "none"],
        )? {
            mode if mode.is_empty() => "private".to_string(),
            mode => mode,
        };
        let options = RunOptions {
            attach: self.attach_streams(detach)?,
            detach_keys: self.detach_keys.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_option.clone(),
            domainname: self.domainname.clone(),
            group_add: self.group_add.clone(),
            pid_mode: self.namespace_mode("--pid", self.pid.as_deref(), &[""])?,
            uts_mode: self.namespace_mode("--uts", self.uts.as_deref(), &[""])?,
            ipc_mode,
            cgroupns_mode: match self.cgroupns {
                Some(CgroupnsArg::Host) => "host",
                _ => "private",
            }
            .to_string(),
            cgroup_parent,
            mac_address: self.mac_address.as_deref().map(str::to_ascii_lowercase),
            log_driver,
            log_max_files,
            log_opts,
            no_sig_proxy: !self.sig_proxy,
            volumes_from: self.volumes_from.clone(),
            annotations: super::parse_labels::<BTreeMap<_, _>>(&self.annotation)
                .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("label", "annotation")))?,
            ..RunOptions::default()
        };
        let mut file_labels = Vec::new();
        for file in &self.label_file {
            file_labels.extend(read_label_file(file)?);
        }
        let links = self
            .link
            .iter()
            .map(|l| {
                let (name, alias) = l.split_once(':').unwrap_or((l, l));
                if name.is_empty() || alias.is_empty() || !is_host_name(alias) {
                    bail!("invalid --link {l:?}: use NAME[:ALIAS]");
                }
                Ok((name.to_string(), alias.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let volumes_from = self
            .volumes_from
            .iter()
            .map(|v| match v.rsplit_once(':') {
                Some((name, "ro")) => Ok((name.to_string(), Some(true))),
                Some((name, "rw")) => Ok((name.to_string(), Some(false))),
                Some(_) => bail!("invalid --volumes-from {v:?}: use CONTAINER[:ro|rw]"),
                None => Ok((v.clone(), None)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Parsed {
            options,
            health: self.health_flags()?,
            file_labels,
            exposed: parse_expose(&self.expose)?,
            links,
            volumes_from,
        })
    }

    /// `-a` streams, lowercased; `-a` does not go with `-d`.
    fn attach_streams(&self, detach: bool) -> Result<Vec<String>> {
        if detach && !self.attach.is_empty() {
            bail!("conflicting options: -a and -d");
        }
        self.attach
            .iter()
            .map(|s| match s.to_ascii_lowercase().as_str() {
                s @ ("stdin" | "stdout" | "stderr") => Ok(s.to_string()),
                _ => bail!("invalid -a {s:?}: use STDIN, STDOUT or STDERR"),
            })
            .collect()
    }

    /// `host`, `container:NAME` or one of `local` (the private modes).
    fn namespace_mode(&self, flag: &str, value: Option<&str>, local: &[&str]) -> Result<String> {
        match value {
            None | Some("private") => Ok(String::new()),
            Some("host") => Ok("host".to_string()),
            Some(v) if local.contains(&v) => Ok(v.to_string()),
            Some(v) => match v.strip_prefix("container:") {
                Some(name) if !name.is_empty() => Ok(v.to_string()),
                _ => {
                    let mut modes = vec!["private", "host"];
                    modes.extend(local.iter().filter(|m| !m.is_empty()));
                    bail!(
                        "invalid {flag} {v:?}: use {} or container:NAME",
                        modes.join(", ")
                    )
                }
            },
        }
    }

    /// `--log-driver` and `--log-opt`: (driver, files kept, options as given).
    fn log_settings(
        &self,
        log_opt: &[String],
    ) -> Result<(LogDriver, u32, BTreeMap<String, String>)> {
        let driver = match self.log_driver.as_deref() {
            None | Some("k8s-file") => LogDriver::K8sFile,
            Some("json-file") => LogDriver::JsonFile,
            Some("none") => LogDriver::None,
            Some("journald") => {
                if !Path::new("/run/systemd/journal/socket").exists() {
                    bail!("log driver journald is not available on this host (no /run/systemd/journal/socket): use k8s-file, json-file or none");
                }
                bail!("log driver journald is not supported by ccrun yet: use k8s-file, json-file or none");
            }
            Some(other) => {
                bail!("unknown log driver {other:?}: use k8s-file, json-file or none")
            }
        };
        let mut max_files = DEFAULT_LOG_MAX_FILES;
        let mut opts = BTreeMap::new();
        for opt in log_opt {
            let Some((key, value)) = opt.split_once('=') else {
                bail!("invalid --log-opt {opt:?}: use KEY=VALUE");
            };
            if driver == LogDriver::None {
                bail!("--log-opt {opt:?}: the none log driver takes no options");
            }
            match key {
                "max-size" => {}
                "max-file" => {
                    max_files = value.parse().ok().filter(|n| *n >= 1).with_context(|| {
                        format!(
                            "invalid --log-opt {opt:?}: max-file must be a number of at least 1"
                        )
                    })?;
                }
                _ => {
                    bail!("unknown --log-opt {opt:?}: ccrun supports max-size=SIZE and max-file=N")
                }
            }
            opts.insert(key.to_string(), value.to_string());
        }
        Ok((driver, max_files, opts))
    }

    /// The `--health-*` flags as a healthcheck (zero fields: the image's or Docker's
    /// defaults); `Some(["NONE"])` with `--no-healthcheck`.
    fn health_flags(&self) -> Result<Option<HealthConfig>> {
        let any = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some();
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(HealthConfig {
                test: vec!["NONE".to_string()],
                ..HealthConfig::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        let duration = |flag: &str, value: &Option<String>| -> Result<u64> {
            let Some(text) = value else { return Ok(0) };
            let d = parse_go_duration(flag, text)?;
            if d < MIN_HEALTH_DURATION && !d.is_zero() {
                bail!("{flag} cannot be less than 1ms");
            }
            Ok(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        let retries = match self.health_retries {
            Some(n) if n < 0 => bail!("--health-retries cannot be negative"),
            Some(n) => u32::try_from(n).context("--health-retries is too large")?,
            None => 0,
        };
        let test = match &self.health_cmd {
            Some(cmd) if cmd.trim().is_empty() => bail!("--health-cmd cannot be empty"),
            Some(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
            None => Vec::new(),
        };
        Ok(Some(HealthConfig {
            test,
            interval: duration("--health-interval", &self.health_interval)?,
            timeout: duration("--health-timeout", &self.health_timeout)?,
            start_period: duration("--health-start-period", &self.health_start_period)?,
            retries,
        }))
    }

    /// The cgroup limits of these flags, added to `limits`.
    pub fn add_limits(&self, limits: &mut Limits) -> Result<()> {
        if let Some(r) = &self.memory_reservation {
            let bytes = units::parse_bytes(r)?;
            if let Some(m) = limits.memory {
                if bytes > m {
                    bail!("minimum memory limit cannot be less than memory reservation limit: --memory must be at least --memory-reservation");
                }
            }
            limits.memory_reservation = Some(bytes);
        }
        match self.memory_swappiness {
            None | Some(-1) => {}
            Some(n @ 0..=100) => limits.memory_swappiness = Some(n as u64),
            Some(n) => bail!("invalid --memory-swappiness {n}: a value from 0 to 100, or -1"),
        }
        limits.oom_kill_disable = self.oom_kill_disable;
        if (self.cpu_period.is_some() || self.cpu_quota.is_some()) && limits.cpu_quota.is_some() {
            bail!("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set");
        }
        if let Some(p) = self.cpu_period {
            if !(1000..=1_000_000).contains(&p) {
                bail!("invalid --cpu-period {p}: from 1000 to 1000000 microseconds");
            }
            limits.cpu_period = Some(p);
        }
        match self.cpu_quota {
            None | Some(-1) | Some(0) => {}
            Some(q) if q < 1000 => bail!("invalid --cpu-quota {q}: at least 1000 microseconds"),
            Some(q) => limits.cpu_quota = Some(q),
        }
        match self.blkio_weight {
            None | Some(0) => {}
            Some(w @ 10..=1000) => {
                if blkio_weight_supported() {
                    limits.blkio_weight = Some(w);
                } else {
                    eprintln!("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.");
                }
            }
            Some(w) => bail!("invalid --blkio-weight {w}: from 10 to 1000"),
        }
        limits.throttle = Throttle {
            read_bps: parse_throttles("--device-read-bps", &self.device_read_bps, true)?,
            write_bps: parse_throttles("--device-write-bps", &self.device_write_bps, true)?,
            read_iops: parse_throttles("--device-read-iops", &self.device_read_iops, false)?,
            write_iops: parse_throttles("--device-write-iops", &self.device_write_iops, false)?,
        };
        limits.device_rules = self
            .device_cgroup_rule
            .iter()
            .map(|r| parse_device_cgroup_rule(r))
            .collect::<Result<_>>()?;
        Ok(())
    }
}

/// Whether block I/O weights can be set: cgroup v1 needs a proportional scheduler
/// (CFQ's `blkio.weight` or BFQ's `blkio.bfq.weight`).
fn blkio_weight_supported() -> bool {
    let v1 = Path::new("/sys/fs/cgroup/blkio");
    if v1.is_dir() {
        return ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .any(|f| v1.join(f).exists());
    }
    std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"))
}

/// A DNS name: labels of letters, digits, `-` and `_`, separated by dots.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// `aa:bb:cc:dd:ee:ff`, unicast.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bad = || {
        anyhow::anyhow!(
            "invalid --mac-address {text:?}: use six hex bytes such as 02:42:ac:11:00:02"
        )
    };
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        bail!("invalid --mac-address {text:?}: a multicast address");
    }
    Ok(mac)
}

/// `--expose 80`, `80/udp`, `8000-8002/tcp` as `PORT/PROTO` keys.
fn parse_expose(items: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for item in items {
        let (ports, proto) = item.split_once('/').unwrap_or((item, "tcp"));
        if !matches!(proto, "tcp" | "udp" | "sctp") {
            bail!("invalid --expose {item:?}: the protocol is tcp, udp or sctp");
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("invalid --expose {item:?}: {p:?} is not a port"))
        };
        let (first, last) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(ports)?, port(ports)?),
        };
        if last < first {
            bail!("invalid --expose {item:?}: the range is backwards");
        }
        for p in first..=last {
            let key = format!("{p}/{proto}");
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    Ok(out)
}

/// A `--label-file`: `KEY=VALUE` lines; blank lines and `#` comments skipped.
fn read_label_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading label file {}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    super::parse_labels(&lines).with_context(|| format!("label file {}", path.display()))
}

/// The major and minor numbers of block device `path`.
fn block_device(flag: &str, path: &str) -> Result<(i64, i64)> {
    let meta = std::fs::metadata(path).with_context(|| format!("{flag}: device {path}"))?;
    if !meta.file_type().is_block_device() {
        bail!("{flag}: {path} is not a block device");
    }
    let rdev = meta.rdev();
    Ok((
        i64::from(nix::sys::stat::major(rdev) as u32),
        i64::from(nix::sys::stat::minor(rdev) as u32),
    ))
}

/// `DEVICE:RATE` items: a size for bytes per second, a count for operations.
fn parse_throttles(flag: &str, items: &[String], bytes: bool) -> Result<Vec<(i64, i64, u64)>> {
    items
        .iter()
        .map(|item| {
            let (path, rate) = item
                .rsplit_once(':')
                .with_context(|| format!("invalid {flag} {item:?}: use DEVICE:RATE"))?;
            let rate = if bytes {
                units::parse_bytes(rate)
                    .ok()
                    .and_then(|r| u64::try_from(r).ok())
            } else {
                rate.parse::<u64>().ok()
            }
            .filter(|r| *r > 0)
            .with_context(|| format!("invalid {flag} {item:?}: {rate:?} is not a positive rate"))?;
            let (major, minor) = block_device(flag, path)?;
            Ok((major, minor, rate))
        })
        .collect()
}

/// `TYPE MAJOR:MINOR ACCESS` (`a`, `b` or `c`; `*` for any number; some of `rwm`).
fn parse_device_cgroup_rule(rule: &str) -> Result<LinuxDeviceCgroup> {
    let bad = || {
        anyhow::anyhow!("invalid --device-cgroup-rule {rule:?}: use 'TYPE MAJOR:MINOR ACCESS', e.g. 'c 1:3 rwm'")
    };
    let words: Vec<&str> = rule.split_whitespace().collect();
    let [kind, numbers, access] = words.as_slice() else {
        return Err(bad());
    };
    let typ = match *kind {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => return Err(bad()),
    };
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| -> Result<Option<i64>> {
        if n == "*" {
            Ok(None)
        } else {
            n.parse::<i64>().map(Some).map_err(|_| bad())
        }
    };
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .access(access.to_string());
    if let Some(m) = number(major)? {
        b = b.major(m);
    }
    if let Some(m) = number(minor)? {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

/// `--cidfile`: made (empty) before the container, so that a second run with the same
/// file fails before creating anything, as Docker's does; the id is written once the
/// container exists.
#[derive(Debug)]
pub struct CidFile {
    path: PathBuf,
    file: std::fs::File,
}

impl CidFile {
    /// Creates the file; an existing one is an error.
    pub fn claim(path: &Path) -> Result<CidFile> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(file) => Ok(CidFile {
                path: path.to_path_buf(),
                file,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
                "container ID file found, make sure the other container isn't running or delete {}",
                path.display()
            ),
            Err(e) => Err(e).with_context(|| format!("creating the --cidfile {}", path.display())),
        }
    }

    /// Writes the container's id.
    pub fn write(&self, id: &str) -> Result<()> {
        use std::io::Write;
        (&self.file)
            .write_all(id.as_bytes())
            .with_context(|| format!("writing the --cidfile {}", self.path.display()))
    }

    /// Removes the file (the container was not created after all).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_ranges_and_protocols() {
        let got = parse_expose(&["80".into(), "53/udp".into(), "8000-8001".into()]).unwrap();
        assert_eq!(got, ["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]);
        assert!(parse_expose(&["0".into()]).is_err());
        assert!(parse_expose(&["9-8".into()]).is_err());
        assert!(parse_expose(&["80/icmp".into()]).is_err());
    }

    #[test]
    fn device_cgroup_rules() {
        let r = parse_device_cgroup_rule("c 1:3 rwm").unwrap();
        assert_eq!((r.major(), r.minor()), (Some(1), Some(3)));
        let r = parse_device_cgroup_rule("b *:* m").unwrap();
        assert_eq!((r.major(), r.minor()), (None, None));
        for bad in ["c 1:3", "x 1:3 r", "c 1 r", "c 1:3 rx"] {
            assert!(parse_device_cgroup_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:AC:11:00:09").unwrap()[5], 9);
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("02:42:ac:11:00").is_err());
    }
}
