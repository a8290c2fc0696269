//! Turns the engine's run options into an OCI runtime `Spec` with Docker's defaults:
//! the standard mounts, masked and read-only paths, namespaces, the user namespace
//! mapping, cgroup resources, and the security settings of [`crate::security`]
//! (capabilities, seccomp, devices and their cgroup rules, sysctls, rlimits).

use std::path::PathBuf;

use anyhow::{Context, Result};
use ccrun_image::layer_writer::Owners;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxIdMapping,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, LinuxThrottleDevice,
    LinuxThrottleDeviceBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use crate::security::Security;
use crate::user::Identity;

/// How the container's user namespace is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernsMode {
    /// A new user namespace mapping container 0..count to host `start..start+count`.
    Private {
        /// First host uid.
        uid_start: u32,
        /// First host gid.
        gid_start: u32,
        /// Number of ids mapped.
        count: u32,
    },
    /// No user namespace: container root is host root (rootless: the caller).
    Host,
    /// Rootless `--userns keep-id`: a user namespace inside the rootless one in which
    /// the caller's own uid and gid (`uid`, `gid`) are the caller; container ids below
    /// them are the rootless namespace's `1..`, those above the same ids, up to `count`.
    KeepId {
        /// The caller's uid on the host, its uid inside.
        uid: u32,
        /// The caller's gid on the host, its gid inside.
        gid: u32,
        /// Ids the rootless namespace maps (root included).
        count: u32,
    },
}

impl UsernsMode {
    /// Host uid and gid of the container's root.
    pub fn root_owner(&self) -> (u32, u32) {
        match *self {
            UsernsMode::Private {
                uid_start,
                gid_start,
                ..
            } => (uid_start, gid_start),
            UsernsMode::Host => (0, 0),
            UsernsMode::KeepId { .. } => self.host_ids(0, 0),
        }
    }

    /// Whether the container gets a user namespace of its own.
    pub fn has_own_namespace(&self) -> bool {
        !matches!(self, UsernsMode::Host)
    }

    /// Host uid and gid of container `uid`/`gid` (the overflow id 65534 when the
    /// mapping does not cover them).
    pub fn host_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        self.owners().host_ids(uid, gid)
    }

    /// The same mapping, as layers written from the container's files record owners.
    pub fn owners(&self) -> Owners {
        match *self {
            UsernsMode::Private {
                uid_start,
                gid_start,
                count,
            } => Owners::Unshift {
                uid_start,
                gid_start,
                count,
            },
            UsernsMode::Host => Owners::Keep,
            UsernsMode::KeepId { uid, gid, count } => Owners::KeepId { uid, gid, count },
        }
    }

    /// Container uid and gid of host `uid`/`gid`, the inverse of
    /// [`UsernsMode::host_ids`] (65534 for host ids outside the mapping).
    pub fn container_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        self.owners().container_ids(uid, gid)
    }
}

/// How the container is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Share the host's network namespace.
    Host,
    /// A private network namespace with only loopback.
    None,
    /// Another container's network namespace (`--network container:NAME`).
    Join(PathBuf),
}

/// cgroup limits requested on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// CFS quota in microseconds per [`crate::units::CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    /// Relative CPU weight (cgroup v1 shares).
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (cpuset list).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes.
    pub pids: Option<i64>,
    /// `--memory-reservation`: the soft limit in bytes.
    pub memory_reservation: Option<i64>,
    /// `--memory-swappiness` (0 to 100).
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--cpu-period` in microseconds (else [`crate::units::CPU_PERIOD`] with a quota).
    pub cpu_period: Option<u64>,
    /// `--blkio-weight` (10 to 1000).
    pub blkio_weight: Option<u16>,
    /// `--device-{read,write}-{bps,iops}`.
    pub throttle: Throttle,
    /// `--device-cgroup-rule`: more devices allowed.
    pub device_rules: Vec<LinuxDeviceCgroup>,
}

/// Per-device I/O limits: (major, minor, rate) each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Bytes read per second.
    pub read_bps: Vec<(i64, i64, u64)>,
    /// Bytes written per second.
    pub write_bps: Vec<(i64, i64, u64)>,
    /// Reads per second.
    pub read_iops: Vec<(i64, i64, u64)>,
    /// Writes per second.
    pub write_iops: Vec<(i64, i64, u64)>,
}

impl Throttle {
    fn is_empty(&self) -> bool {
        self.read_bps.is_empty()
            && self.write_bps.is_empty()
            && self.read_iops.is_empty()
            && self.write_iops.is_empty()
    }
}

/// Whether a namespace is the container's own, the host's or another's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NsMode {
    /// A new one (the default).
    #[default]
    Private,
    /// The host's: none is created.
    Host,
    /// The one at this path (`/proc/PID/ns/KIND` of another container's init).
    Join(PathBuf),
}

/// `--pid`, `--ipc`, `--uts`, `--cgroupns`, and the user namespace of a container
/// whose PID or IPC namespace is shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// PID namespace.
    pub pid: NsMode,
    /// IPC namespace.
    pub ipc: NsMode,
    /// UTS namespace.
    pub uts: NsMode,
    /// Cgroup namespace (private or host).
    pub cgroup: NsMode,
    /// Join this user namespace instead of making one (the mapping is the same).
    pub user: Option<PathBuf>,
}

/// Everything the spec is built from.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Absolute rootfs path.
    pub rootfs: PathBuf,
    /// Mount the rootfs read-only.
    pub readonly: bool,
    /// argv.
    pub args: Vec<String>,
    /// Environment (`K=V`), already merged; defaults are added when missing.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// The identity to run as.
    pub user: Identity,
    /// Hostname.
    pub hostname: String,
    /// User namespace mode.
    pub userns: UsernsMode,
    /// Network mode.
    pub network: NetworkMode,
    /// cgroup limits.
    pub limits: Limits,
    /// Mounts after Docker's defaults (the /etc files, `--tmpfs`, volumes); a default
    /// mount at the same destination is left out, as Docker does.
    pub mounts: Vec<Mount>,
    /// Give the process a terminal (`-t`).
    pub terminal: bool,
    /// Ask the runtime to idmap the rootfs for the user namespace (a plain directory
    /// rootfs; an overlay snapshot already has idmapped layers).
    pub idmap_rootfs: bool,
    /// Capabilities, seccomp, devices, sysctls, rlimits and the like.
    pub security: Security,
    /// Shared or host namespaces.
    pub namespaces: Namespaces,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--annotation`.
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The cgroup path (`/ccrun/<id>`, or under `--cgroup-parent`).
    pub cgroup_path: String,
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// Docker's standard mounts.
pub fn default_mounts() -> Result<Vec<Mount>> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        // The container's own cgroup, so runtimes (Java, Node, Go, .NET) see their limits.
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ])
}

/// Docker's default masked paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's default read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn id_map(start: u32, count: u32) -> Result<LinuxIdMapping> {
    line(0, start, count)
}

fn line(container: u32, host: u32, size: u32) -> Result<LinuxIdMapping> {
    Ok(LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()?)
}

/// The keep-id mapping of `own` (see [`UsernsMode::KeepId`]).
fn keep_id_map(own: u32, count: u32) -> Result<Vec<LinuxIdMapping>> {
    let mut maps = Vec::new();
    if own > 0 {
        maps.push(line(0, 1, own)?);
    }
    maps.push(line(own, 0, 1)?);
    if count > own + 1 {
        maps.push(line(own + 1, own + 1, count - own - 1)?);
    }
    Ok(maps)
}

/// The uid and gid mappings of a user namespace mode (empty for the host's).
pub fn build_id_mappings(mode: &UsernsMode) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>)> {
    match *mode {
        UsernsMode::Private {
            uid_start,
            gid_start,
            count,
        } => Ok((
            vec![id_map(uid_start, count)?],
            vec![id_map(gid_start, count)?],
        )),
        UsernsMode::Host => Ok((Vec::new(), Vec::new())),
        UsernsMode::KeepId { uid, gid, count } => {
            Ok((keep_id_map(uid, count)?, keep_id_map(gid, count)?))
        }
    }
}

fn namespace(kind: LinuxNamespaceType) -> Result<LinuxNamespace> {
    Ok(LinuxNamespaceBuilder::default().typ(kind).build()?)
}

/// Adds `PATH`, `HOSTNAME` and `HOME` when the environment lacks them.
pub fn with_default_env(mut env: Vec<String>, hostname: &str, home: &str) -> Vec<String> {
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={}", ccrun_runtime::process::DEFAULT_PATH));
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Builds the spec.
pub fn build(run: &RunSpec) -> Result<Spec> {
    let home = run.user.home.clone().unwrap_or_else(|| {
        if run.user.uid == 0 {
            "/root".into()
        } else {
            "/".into()
        }
    });
    let sec = &run.security;
    let capabilities = crate::security::capabilities_for_user(&sec.capabilities, run.user.uid)?;
    let mut process = ProcessBuilder::default()
        .terminal(run.terminal)
        .args(run.args.clone())
        .env(with_default_env(run.env.clone(), &run.hostname, &home))
        .cwd(run.cwd.clone())
        .user(
            UserBuilder::default()
                .uid(run.user.uid)
                .gid(run.user.gid)
                .additional_gids(run.user.additional_gids.clone())
                .build()?,
        )
        .no_new_privileges(sec.no_new_privileges)
        .capabilities(capabilities)
        .build()?;
    process.set_apparmor_profile(sec.apparmor_profile.clone());
    process.set_oom_score_adj(sec.oom_score_adj);
    // Docker's open-files default instead of the spec template's 1024; `--ulimit`
    // replaces the limit of the same kind.
    let mut rlimits = vec![crate::security::default_nofile()?];
    for limit in &sec.rlimits {
        rlimits.retain(|l| l.typ() != limit.typ());
        rlimits.push(*limit);
    }
    process.set_rlimits(Some(rlimits));

    let ns = &run.namespaces;
    let mut namespaces = vec![namespace(LinuxNamespaceType::Mount)?];
    for (kind, mode) in [
        (LinuxNamespaceType::Pid, &ns.pid),
        (LinuxNamespaceType::Ipc, &ns.ipc),
        (LinuxNamespaceType::Uts, &ns.uts),
        (LinuxNamespaceType::Cgroup, &ns.cgroup),
    ] {
        match mode {
            NsMode::Private => namespaces.push(namespace(kind)?),
            NsMode::Host => {}
            NsMode::Join(path) => namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(kind)
                    .path(path)
                    .build()?,
            ),
        }
    }
    match &run.network {
        NetworkMode::None => namespaces.push(namespace(LinuxNamespaceType::Network)?),
        NetworkMode::Join(path) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path)
                .build()?,
        ),
        NetworkMode::Host => {}
    }
    let mut linux = LinuxBuilder::default();
    let mut annotations: std::collections::HashMap<String, String> = run
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if run.userns.has_own_namespace() {
        match &ns.user {
            // Another container's user namespace, whose mapping is the same as ours.
            Some(path) => namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .path(path)
                    .build()?,
            ),
            None => {
                let (uids, gids) = build_id_mappings(&run.userns)?;
                namespaces.push(namespace(LinuxNamespaceType::User)?);
                linux = linux.uid_mappings(uids).gid_mappings(gids);
            }
        }
        if run.idmap_rootfs {
            annotations.insert(
                ccrun_runtime::ANNOTATION_ROOTFS_IDMAP.to_string(),
                "true".to_string(),
            );
        }
    }

    let l = &run.limits;
    let mut resources = LinuxResourcesBuilder::default();
    if l.memory.is_some()
        || l.memory_swap.is_some()
        || l.memory_reservation.is_some()
        || l.memory_swappiness.is_some()
        || l.oom_kill_disable
    {
        let mut mem = LinuxMemoryBuilder::default();
        if let Some(m) = l.memory {
            mem = mem.limit(m);
        }
        if let Some(s) = l.memory_swap {
            mem = mem.swap(s);
        }
        if let Some(r) = l.memory_reservation {
            mem = mem.reservation(r);
        }
        if let Some(s) = l.memory_swappiness {
            mem = mem.swappiness(s);
        }
        if l.oom_kill_disable {
            mem = mem.disable_oom_killer(true);
        }
        resources = resources.memory(mem.build()?);
    }
    if l.cpu_quota.is_some()
        || l.cpu_period.is_some()
        || l.cpu_shares.is_some()
        || l.cpuset_cpus.is_some()
        || l.cpuset_mems.is_some()
    {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(q) = l.cpu_quota {
            cpu = cpu
                .quota(q)
                .period(l.cpu_period.unwrap_or(crate::units::CPU_PERIOD));
        } else if let Some(p) = l.cpu_period {
            cpu = cpu.period(p);
        }
        if let Some(s) = l.cpu_shares {
            cpu = cpu.shares(s);
        }
        if let Some(c) = &l.cpuset_cpus {
            cpu = cpu.cpus(c.clone());
        }
        if let Some(m) = &l.cpuset_mems {
            cpu = cpu.mems(m.clone());
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(p) = l.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(p).build()?);
    }
    if l.blkio_weight.is_some() || !l.throttle.is_empty() {
        let throttles = |list: &[(i64, i64, u64)]| -> Result<Vec<LinuxThrottleDevice>> {
            list.iter()
                .map(|&(major, minor, rate)| {
                    Ok(LinuxThrottleDeviceBuilder::default()
                        .major(major)
                        .minor(minor)
                        .rate(rate)
                        .build()?)
                })
                .collect()
        };
        let mut io = LinuxBlockIoBuilder::default();
        if let Some(w) = l.blkio_weight {
            io = io.weight(w);
        }
        let t = &l.throttle;
        if !t.read_bps.is_empty() {
            io = io.throttle_read_bps_device(throttles(&t.read_bps)?);
        }
        if !t.write_bps.is_empty() {
            io = io.throttle_write_bps_device(throttles(&t.write_bps)?);
        }
        if !t.read_iops.is_empty() {
            io = io.throttle_read_iops_device(throttles(&t.read_iops)?);
        }
        if !t.write_iops.is_empty() {
            io = io.throttle_write_iops_device(throttles(&t.write_iops)?);
        }
        resources = resources.block_io(io.build()?);
    }
    let mut device_rules = crate::security::device_rules(sec.privileged, &sec.devices)?;
    device_rules.extend(l.device_rules.iter().cloned());
    resources = resources.devices(device_rules);
    // A private user namespace cannot mknod: its devices are bind mounts of the host's
    // nodes (still subject to the device cgroup).
    let mut device_mounts = Vec::new();
    let mut devices = Vec::new();
    for d in &sec.devices {
        if run.userns.has_own_namespace() {
            device_mounts.push(
                MountBuilder::default()
                    .destination(d.device.path().clone())
                    .typ("bind")
                    .source(d.host.clone())
                    .options(vec!["bind".to_string(), "nosuid".to_string()])
                    .build()?,
            );
        } else {
            devices.push(d.device.clone());
        }
    }
    if !devices.is_empty() {
        linux = linux.devices(devices);
    }
    if let Some(seccomp) = &sec.seccomp {
        linux = linux.seccomp(seccomp.clone());
    }
    if !sec.sysctls.is_empty() {
        linux = linux.sysctl(sec.sysctls.clone());
    }
    let (masked, readonly): (&[&str], &[&str]) = if sec.system_paths_masked {
        (MASKED_PATHS, READONLY_PATHS)
    } else {
        (&[], &[])
    };

    let linux = linux
        .namespaces(namespaces)
        .resources(resources.build()?)
        .cgroups_path(PathBuf::from(&run.cgroup_path))
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?;

    let mut spec = SpecBuilder::default()
        .version("1.2.0")
        .process(process)
        .root(
            RootBuilder::default()
                .path(run.rootfs.clone())
                .readonly(run.readonly)
                .build()?,
        )
        .hostname(run.hostname.clone())
        .mounts(
            default_mounts()?
                .into_iter()
                .map(|m| adjust_default_mount(m, sec))
                .filter(|d| {
                    !run.mounts
                        .iter()
                        .any(|m| m.destination() == d.destination())
                })
                .chain(run.mounts.iter().cloned())
                .chain(device_mounts)
                .collect::<Vec<_>>(),
        )
        .linux(linux)
        .annotations(annotations)
        .build()
        .context("building the runtime spec")?;
    // Only a UTS namespace of its own has a hostname (and domain name) to set.
    if ns.uts == NsMode::Private {
        spec.set_domainname(run.domainname.clone());
    } else {
        spec.set_hostname(None);
    }
    Ok(spec)
}

/// `--shm-size` sets the size of `/dev/shm`; `--privileged` makes `/sys` writable.
fn adjust_default_mount(mut m: Mount, sec: &Security) -> Mount {
    let dest = m.destination().to_string_lossy().into_owned();
    let mut options = m.options().clone().unwrap_or_default();
    match dest.as_str() {
        "/dev/shm" => {
            if let Some(size) = sec.shm_size {
                options.retain(|o| !o.starts_with("size="));
                options.push(format!("size={size}"));
            }
        }
        "/sys" | "/sys/fs/cgroup" if sec.privileged => options.retain(|o| o != "ro"),
        _ => {}
    }
    m.set_options(Some(options));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunSpec {
        RunSpec {
            rootfs: "/tmp/rootfs".into(),
            readonly: false,
            args: vec!["sh".into()],
            env: vec!["FOO=bar".into()],
            cwd: "/".into(),
            user: Identity {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                home: None,
            },
            hostname: "abc".into(),
            userns: UsernsMode::Private {
                uid_start: 100000,
                gid_start: 200000,
                count: 65536,
            },
            network: NetworkMode::Host,
            limits: Limits::default(),
            mounts: vec![],
            terminal: false,
            idmap_rootfs: true,
            security: Security::docker_defaults().expect("defaults"),
            namespaces: Namespaces::default(),
            domainname: None,
            annotations: Default::default(),
            cgroup_path: "/ccrun/abc".into(),
        }
    }

    #[test]
    fn private_userns_maps_root_and_asks_for_idmapped_rootfs() {
        let spec = build(&base()).expect("spec");
        let linux = spec.linux().as_ref().expect("linux");
        let uid = &linux.uid_mappings().as_ref().expect("uid maps")[0];
        assert_eq!(
            (uid.container_id(), uid.host_id(), uid.size()),
            (0, 100000, 65536)
        );
        let gid = &linux.gid_mappings().as_ref().expect("gid maps")[0];
        assert_eq!(gid.host_id(), 200000);
        let ns = linux.namespaces().as_ref().expect("namespaces");
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(
            spec.annotations().as_ref().expect("annotations")
                [ccrun_runtime::ANNOTATION_ROOTFS_IDMAP],
            "true"
        );
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(std::path::Path::new("/ccrun/abc"))
        );
    }

    #[test]
    fn host_userns_has_no_mapping() {
        let mut run = base();
        run.userns = UsernsMode::Host;
        run.network = NetworkMode::None;
        let spec = build(&run).expect("spec");
        let linux = spec.linux().as_ref().expect("linux");
        assert!(linux.uid_mappings().is_none());
        let ns = linux.namespaces().as_ref().expect("namespaces");
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn limits_land_in_resources() {
        let mut run = base();
        run.limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_quota: Some(50_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            cpuset_mems: None,
            pids: Some(20),
            ..Limits::default()
        };
        let spec = build(&run).expect("spec");
        let res = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .expect("resources");
        let mem = res.memory().as_ref().expect("memory");
        assert_eq!(mem.limit(), Some(64 << 20));
        assert_eq!(mem.swap(), Some(128 << 20));
        let cpu = res.cpu().as_ref().expect("cpu");
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(res.pids().as_ref().expect("pids").limit(), 20);
    }

    #[test]
    fn a_user_mount_replaces_the_default_at_its_destination() {
        let mut run = base();
        run.mounts = vec![mount("/dev/shm", "bind", "/srv/shm", &["rbind"]).expect("mount")];
        let spec = build(&run).expect("spec");
        let shm: Vec<_> = spec
            .mounts()
            .as_ref()
            .expect("mounts")
            .iter()
            .filter(|m| m.destination() == std::path::Path::new("/dev/shm"))
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0].typ().as_deref(), Some("bind"));
    }

    #[test]
    fn shared_namespaces_take_paths_or_are_left_out() {
        let mut run = base();
        run.namespaces = Namespaces {
            pid: NsMode::Join("/proc/42/ns/pid".into()),
            ipc: NsMode::Host,
            uts: NsMode::Host,
            cgroup: NsMode::Private,
            user: Some("/proc/42/ns/user".into()),
        };
        run.domainname = Some("ignored.test".into());
        let spec = build(&run).expect("spec");
        let linux = spec.linux().as_ref().expect("linux");
        let ns = linux.namespaces().as_ref().expect("namespaces");
        let path_of = |kind| {
            ns.iter()
                .find(|n| n.typ() == kind)
                .map(|n| n.path().clone())
        };
        assert_eq!(
            path_of(LinuxNamespaceType::Pid),
            Some(Some("/proc/42/ns/pid".into()))
        );
        assert_eq!(
            path_of(LinuxNamespaceType::User),
            Some(Some("/proc/42/ns/user".into()))
        );
        assert_eq!(path_of(LinuxNamespaceType::Ipc), None);
        assert_eq!(path_of(LinuxNamespaceType::Uts), None);
        assert_eq!(path_of(LinuxNamespaceType::Cgroup), Some(None));
        // A joined user namespace brings its own mapping; no UTS namespace, no names.
        assert!(linux.uid_mappings().is_none());
        assert!(spec.hostname().is_none() && spec.domainname().is_none());
    }

    #[test]
    fn host_ids_follow_the_mapping() {
        let private = base().userns;
        assert_eq!(private.host_ids(0, 0), (100000, 200000));
        assert_eq!(private.host_ids(1000, 1000), (101000, 201000));
        assert_eq!(private.host_ids(70000, 1), (65534, 200001));
        assert_eq!(UsernsMode::Host.host_ids(1000, 5), (1000, 5));
    }

    #[test]
    fn env_defaults_fill_gaps_only() {
        let env = with_default_env(vec!["PATH=/x".into(), "A=1".into()], "h", "/root");
        assert_eq!(env, vec!["PATH=/x", "A=1", "HOSTNAME=h", "HOME=/root"]);
    }

    #[test]
    fn default_mounts_match_docker() {
        let spec = build(&base()).expect("spec");
        let dests: Vec<_> = spec
            .mounts()
            .as_ref()
            .expect("mounts")
            .iter()
            .map(|m| m.destination().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
    }
}
