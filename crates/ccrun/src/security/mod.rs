//! Docker's security defaults and the flags that change them: the default capability
//! set with `--cap-add`/`--cap-drop`, `--security-opt` (no-new-privileges, seccomp,
//! apparmor, label, systempaths), `--privileged`, `--device`, `--sysctl`, `--ulimit`,
//! and the default device cgroup rules. [`Security`] is what the spec builder applies.

pub mod profile;

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Capability, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxSeccomp, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
};

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The process capabilities for a process of user `uid` whose bounding set is
/// `bounding`, as Docker (20.10+) sets them: root gets the whole set as effective and
/// permitted; any other user only the bounding set, with empty effective, permitted,
/// inheritable and ambient sets, exactly what `execve` would leave a non-root user.
/// This keeps `no-new-privileges` meaningful for non-root users: under it a
/// file-capability binary cannot gain what the process's permitted set lacks.
pub fn capabilities_for_user(
    bounding: &[Capability],
    uid: u32,
) -> Result<oci_spec::runtime::LinuxCapabilities> {
    use oci_spec::runtime::{Capabilities, LinuxCapabilitiesBuilder};
    let all: Capabilities = bounding.iter().copied().collect();
    let held = if uid == 0 {
        all.clone()
    } else {
        Capabilities::new()
    };
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(all)
        .effective(held.clone())
        .permitted(held)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()?)
}

/// A device from the host given to the container (`--device`, `--privileged`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Its path on the host.
    pub host: PathBuf,
    /// The node to provide in the container (its path there, type, numbers, mode).
    pub device: LinuxDevice,
    /// Cgroup access: some of `rwm`.
    pub access: String,
}

/// The security settings of a container, resolved from the flags.
#[derive(Debug, Clone)]
pub struct Security {
    /// `--privileged`.
    pub privileged: bool,
    /// Bounding, effective and permitted capabilities (Docker leaves inheritable and
    /// ambient empty).
    pub capabilities: Vec<Capability>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// The rendered seccomp profile; `None` is unconfined.
    pub seccomp: Option<LinuxSeccomp>,
    /// `--security-opt apparmor=PROFILE`.
    pub apparmor_profile: Option<String>,
    /// Keep Docker's masked and read-only paths (not with `--privileged` or
    /// `--security-opt systempaths=unconfined`).
    pub system_paths_masked: bool,
    /// `--device` and, with `--privileged`, every host device.
    pub devices: Vec<HostDevice>,
    /// `--sysctl`.
    pub sysctls: HashMap<String, String>,
    /// `--ulimit`.
    pub rlimits: Vec<PosixRlimit>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<u64>,
}

/// The flags [`Security::from_flags`] reads.
#[derive(Debug, Clone, Default)]
pub struct Flags<'a> {
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`.
    pub cap_add: &'a [String],
    /// `--cap-drop`.
    pub cap_drop: &'a [String],
    /// `--security-opt`.
    pub security_opt: &'a [String],
    /// `--device`.
    pub device: &'a [String],
    /// `--sysctl`.
    pub sysctl: &'a [String],
    /// `--ulimit`.
    pub ulimit: &'a [String],
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--shm-size`.
    pub shm_size: Option<&'a str>,
    /// The container shares another network namespace (the host's or a
    /// container's), so `net.*` sysctls would not be its own.
    pub shared_network: bool,
}

fn parse_caps(names: &[String], flag: &str) -> Result<(bool, Vec<Capability>)> {
    let mut all = false;
    let mut caps = Vec::new();
    for name in names {
        if name.eq_ignore_ascii_case("ALL") {
            all = true;
            continue;
        }
        caps.push(
            ccrun_runtime::caps::parse(name).with_context(|| format!("invalid {flag} {name:?}"))?,
        );
    }
    Ok((all, caps))
}

/// Every capability ccrun itself holds in its bounding set: "all" for `--privileged`
/// and `--cap-add ALL`, as in Docker, so a restricted host (say, without
/// `CAP_SYS_RESOURCE`) still runs privileged containers.
fn all_available() -> Result<Vec<Capability>> {
    let bounding = ccrun_runtime::caps::current_bounding()?;
    Ok(ccrun_runtime::caps::all()
        .into_iter()
        .filter(|c| bounding & (1 << ccrun_runtime::caps::number(*c)) != 0)
        .collect())
}

/// Docker's capability arithmetic: defaults minus `--cap-drop` plus `--cap-add`;
/// `--cap-add ALL` is everything but the dropped ones, `--cap-drop ALL` only the added.
pub fn capabilities(add: &[String], drop: &[String], privileged: bool) -> Result<Vec<Capability>> {
    let (add_all, add) = parse_caps(add, "--cap-add")?;
    let (drop_all, drop) = parse_caps(drop, "--cap-drop")?;
    if privileged {
        return all_available();
    }
    let defaults: Vec<Capability> = DEFAULT_CAPS
        .iter()
        .map(|n| ccrun_runtime::caps::parse(n))
        .collect::<std::result::Result<_, _>>()?;
    let mut caps: Vec<Capability> = if add_all {
        all_available()?
            .into_iter()
            .filter(|c| !drop.contains(c))
            .collect()
    } else if drop_all {
        add
    } else {
        defaults
            .into_iter()
            .filter(|c| !drop.contains(c))
            .chain(add)
            .collect()
    };
    caps.sort_by_key(|c| ccrun_runtime::caps::number(*c));
    caps.dedup();
    check_available(&caps, ccrun_runtime::caps::current_bounding()?)?;
    Ok(caps)
}

/// A capability ccrun does not hold cannot be given: say so now rather than let the
/// container's start fail in `capset`.
fn check_available(caps: &[Capability], bounding: u64) -> Result<()> {
    for cap in caps {
        if bounding & (1 << ccrun_runtime::caps::number(*cap)) == 0 {
            bail!(
                "--cap-add {cap}: ccrun itself does not have this capability, so it cannot give it"
            );
        }
    }
    Ok(())
}

/// What `--security-opt` asked for.
#[derive(Debug, Default)]
struct Opts {
    no_new_privileges: bool,
    /// `Some(None)`: unconfined; `Some(Some(json))`: a profile file.
    seccomp: Option<Option<String>>,
    apparmor: Option<String>,
    systempaths_unconfined: bool,
}

fn parse_bool(opt: &str, value: &str) -> Result<bool> {
    match value {
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => bail!("invalid --security-opt {opt:?}: use true or false"),
    }
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn parse_security_opts(opts: &[String]) -> Result<Opts> {
    let mut out = Opts::default();
    for opt in opts {
        // Docker takes both `key=value` and the older `key:value`.
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, v),
            None => (opt.as_str(), ""),
        };
        match key {
            "no-new-privileges" => out.no_new_privileges = parse_bool(opt, value)?,
            "seccomp" => match value {
                "unconfined" => out.seccomp = Some(None),
                "" => {
                    bail!("invalid --security-opt {opt:?}: use seccomp=FILE or seccomp=unconfined")
                }
                file => {
                    let json = std::fs::read_to_string(file)
                        .with_context(|| format!("reading seccomp profile {file}"))?;
                    out.seccomp = Some(Some(json));
                }
            },
            "apparmor" => match value {
                "" => bail!("invalid --security-opt {opt:?}: use apparmor=PROFILE"),
                "unconfined" => out.apparmor = None,
                profile => out.apparmor = Some(profile.to_string()),
            },
            "label" => match value {
                "disable" => {}
                _ if !selinux_enabled() => {
                    bail!("invalid --security-opt {opt:?}: SELinux is not enabled on this host")
                }
                _ => bail!(
                    "invalid --security-opt {opt:?}: SELinux labels are not supported by ccrun yet"
                ),
            },
            "systempaths" => match value {
                "unconfined" => out.systempaths_unconfined = true,
                _ => bail!("invalid --security-opt {opt:?}: use systempaths=unconfined"),
            },
            _ => bail!(
                "invalid --security-opt {opt:?}: ccrun supports no-new-privileges[=true|false], \
                 seccomp=FILE|unconfined, apparmor=PROFILE, label=… and systempaths=unconfined"
            ),
        }
    }
    Ok(out)
}

/// The cgroup access string of a device, checked.
fn parse_access(access: &str, item: &str) -> Result<String> {
    if access.is_empty() || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        bail!("invalid --device {item:?}: permissions must be some of r, w and m");
    }
    Ok(access.to_string())
}

/// The host device node at `path` as a spec device at `container`.
pub fn host_device(path: &Path, container: &Path) -> Result<LinuxDevice> {
    let meta = std::fs::metadata(path).with_context(|| format!("device {}", path.display()))?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        bail!("{} is not a device node", path.display());
    };
    let rdev = meta.rdev();
    Ok(LinuxDeviceBuilder::default()
        .path(container)
        .typ(typ)
        .major(nix::sys::stat::major(rdev) as i64)
        .minor(nix::sys::stat::minor(rdev) as i64)
        .file_mode(meta.mode() & 0o777)
        .uid(0u32)
        .gid(0u32)
        .build()?)
}

/// `--device HOST[:CONTAINER[:PERMS]]`.
pub fn parse_device(item: &str) -> Result<HostDevice> {
    let parts: Vec<&str> = item.split(':').collect();
    let (host, container, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if !p.starts_with('/') => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => bail!("invalid --device {item:?}: use HOST[:CONTAINER[:PERMS]]"),
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        bail!("invalid --device {item:?}: paths must be absolute");
    }
    let access = parse_access(access, item)?;
    let device = host_device(Path::new(host), Path::new(container))
        .with_context(|| format!("invalid --device {item:?}"))?;
    Ok(HostDevice {
        host: host.into(),
        device,
        access,
    })
}

/// Every device node under the host's `/dev`, for `--privileged` (as runc lists them:
/// not pts, shm, mqueue or the console).
pub fn all_host_devices() -> Result<Vec<HostDevice>> {
    fn walk(dir: &Path, out: &mut Vec<HostDevice>) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
        for e in entries.flatten() {
            let path = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                let name = e.file_name();
                if matches!(
                    name.to_str(),
                    Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
                ) {
                    continue;
                }
                walk(&path, out)?;
            } else if (ft.is_char_device() || ft.is_block_device())
                && path != Path::new("/dev/console")
            {
                if let Ok(device) = host_device(&path, &path) {
                    out.push(HostDevice {
                        host: path,
                        device,
                        access: "rwm".into(),
                    });
                }
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out)?;
    out.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(out)
}

/// Docker's namespaced sysctls: IPC ones and, with a network namespace of its own,
/// `net.*` (the runtime's classification). Anything else would change the host; the
/// UTS ones are set with `--hostname` instead.
fn check_sysctl(key: &str, shared_network: bool) -> Result<()> {
    use ccrun_runtime::sysctl::{namespace_of, Namespace};
    match namespace_of(key) {
        Some(Namespace::Ipc) => Ok(()),
        Some(Namespace::Net) if shared_network => bail!(
            "--sysctl {key}: net.* sysctls need the container's own network namespace, not a shared one"
        ),
        Some(Namespace::Net) => Ok(()),
        Some(Namespace::Uts) | None => bail!(
            "--sysctl {key} is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, \
             kernel.shm*, fs.mqueue.*, net.*) can be set per container"
        ),
    }
}

/// `--sysctl KEY=VALUE` (keys may be written with `/`).
pub fn parse_sysctls(items: &[String], shared_network: bool) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            bail!("invalid --sysctl {item:?}: use KEY=VALUE");
        };
        let key = key.trim().replace('/', ".");
        if key.is_empty() || key.contains("..") || key.starts_with('.') {
            bail!("invalid --sysctl {item:?}");
        }
        check_sysctl(&key, shared_network)?;
        out.insert(key, value.to_string());
    }
    Ok(out)
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    use PosixRlimitType as R;
    Some(match name {
        "as" => R::RlimitAs,
        "core" => R::RlimitCore,
        "cpu" => R::RlimitCpu,
        "data" => R::RlimitData,
        "fsize" => R::RlimitFsize,
        "locks" => R::RlimitLocks,
        "memlock" => R::RlimitMemlock,
        "msgqueue" => R::RlimitMsgqueue,
        "nice" => R::RlimitNice,
        "nofile" => R::RlimitNofile,
        "nproc" => R::RlimitNproc,
        "rss" => R::RlimitRss,
        "rtprio" => R::RlimitRtprio,
        "rttime" => R::RlimitRttime,
        "sigpending" => R::RlimitSigpending,
        "stack" => R::RlimitStack,
        _ => return None,
    })
}

/// The open-files limit containers get unless `--ulimit nofile` says otherwise:
/// Docker's and podman's 1048576 (capped at the kernel's `fs.nr_open`), or, when ccrun
/// may not raise a hard limit (no `CAP_SYS_RESOURCE`), ccrun's own hard limit, the
/// most it can hand on.
pub fn default_nofile() -> Result<PosixRlimit> {
    const DOCKER_NOFILE: u64 = 1_048_576;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(DOCKER_NOFILE);
    let mut limit = DOCKER_NOFILE.min(nr_open);
    let sys_resource = 1u64 << ccrun_runtime::caps::number(Capability::SysResource);
    // Capabilities in a user namespace (rootless) do not raise host limits.
    let may_raise = ccrun_runtime::caps::current_effective()? & sys_resource != 0
        && !ccrun_runtime::rootless::in_user_namespace();
    if !may_raise {
        let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .context("reading ccrun's open-files limit")?;
        limit = limit.min(hard);
    }
    Ok(PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(limit)
        .hard(limit)
        .build()?)
}

/// `--ulimit NAME=SOFT[:HARD]` (-1 for unlimited).
pub fn parse_ulimit(item: &str) -> Result<PosixRlimit> {
    let (name, values) = item
        .split_once('=')
        .with_context(|| format!("invalid --ulimit {item:?}: use NAME=SOFT[:HARD]"))?;
    let typ = rlimit_type(name).with_context(|| {
        format!("invalid --ulimit {item:?}: unknown limit {name:?} (nofile, nproc, core, stack, …)")
    })?;
    let value = |v: &str| -> Result<u64> {
        if v == "-1" {
            return Ok(u64::MAX);
        }
        v.parse::<u64>()
            .with_context(|| format!("invalid --ulimit {item:?}: {v:?} is not a number"))
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(values)?, value(values)?),
    };
    if soft > hard {
        bail!("invalid --ulimit {item:?}: the soft limit exceeds the hard limit");
    }
    Ok(PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()?)
}

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_string());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    Ok(b.build()?)
}

/// The device cgroup rules: deny everything, then Docker's allowed devices (or
/// everything with `--privileged`), then the devices given with `--device`.
pub fn device_rules(privileged: bool, devices: &[HostDevice]) -> Result<Vec<LinuxDeviceCgroup>> {
    use LinuxDeviceType::{B, C};
    let mut rules = vec![rule(false, None, None, None, "rwm")?];
    if privileged {
        rules.push(rule(true, None, None, None, "rwm")?);
        return Ok(rules);
    }
    rules.push(rule(true, Some(C), None, None, "m")?);
    rules.push(rule(true, Some(B), None, None, "m")?);
    for (major, minor) in [
        (1, Some(3)),    // null
        (1, Some(5)),    // zero
        (1, Some(7)),    // full
        (1, Some(8)),    // random
        (1, Some(9)),    // urandom
        (5, Some(0)),    // tty
        (5, Some(1)),    // console
        (5, Some(2)),    // ptmx
        (136, None),     // pts/*
        (10, Some(200)), // net/tun
    ] {
        rules.push(rule(true, Some(C), Some(major), minor, "rwm")?);
    }
    for d in devices {
        rules.push(rule(
            true,
            Some(d.device.typ()),
            Some(d.device.major()),
            Some(d.device.minor()),
            &d.access,
        )?);
    }
    Ok(rules)
}

impl Security {
    /// Docker's defaults: its capabilities and seccomp profile, masked system paths.
    #[cfg(test)]
    pub fn docker_defaults() -> Result<Security> {
        Security::from_flags(&Flags::default())
    }

    /// Resolves the flags; every error is a bad flag (exit 125).
    pub fn from_flags(f: &Flags<'_>) -> Result<Security> {
        let capabilities = capabilities(f.cap_add, f.cap_drop, f.privileged)?;
        let opts = parse_security_opts(f.security_opt)?;
        let seccomp = match (&opts.seccomp, f.privileged) {
            (Some(None), _) => None,
            (Some(Some(json)), _) => Some(
                profile::render(json, &profile::Target::host(capabilities.clone()))
                    .context("invalid --security-opt seccomp profile")?,
            ),
            // Docker runs privileged containers unconfined unless asked otherwise.
            (None, true) => None,
            (None, false) => Some(profile::render(
                profile::DEFAULT_PROFILE,
                &profile::Target::host(capabilities.clone()),
            )?),
        };
        let mut devices = if f.privileged {
            all_host_devices()?
        } else {
            Vec::new()
        };
        for d in f.device {
            let d = parse_device(d)?;
            devices.retain(|x| x.device.path() != d.device.path());
            devices.push(d);
        }
        let rlimits = f
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>>>()?;
        if let Some(adj) = f.oom_score_adj {
            if !(-1000..=1000).contains(&adj) {
                bail!("invalid --oom-score-adj {adj}: it must be between -1000 and 1000");
            }
        }
        let shm_size = f
            .shm_size
            .map(|s| -> Result<u64> {
                let bytes = crate::units::parse_bytes(s)?;
                if bytes <= 0 {
                    bail!("invalid --shm-size {s:?}: it must be greater than 0");
                }
                Ok(bytes as u64)
            })
            .transpose()?;
        Ok(Security {
            privileged: f.privileged,
            capabilities,
            no_new_privileges: opts.no_new_privileges,
            seccomp,
            apparmor_profile: opts.apparmor,
            system_paths_masked: !f.privileged && !opts.systempaths_unconfined,
            devices,
            sysctls: parse_sysctls(f.sysctl, f.shared_network)?,
            rlimits,
            oom_score_adj: f.oom_score_adj,
            shm_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(caps: &[Capability]) -> u64 {
        caps.iter()
            .fold(0, |m, c| m | 1 << ccrun_runtime::caps::number(*c))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn capability_arithmetic_follows_docker() {
        assert_eq!(
            mask(&capabilities(&[], &[], false).expect("caps")),
            0xa804_25fb
        );
        assert_eq!(
            capabilities(&[], &strings(&["ALL"]), false).expect("caps"),
            vec![]
        );
        assert_eq!(
            capabilities(&strings(&["sys_admin"]), &strings(&["all"]), false).expect("caps"),
            vec![Capability::SysAdmin]
        );
        let caps = capabilities(&strings(&["CAP_SYS_ADMIN"]), &strings(&["NET_RAW"]), false)
            .expect("caps");
        assert_eq!(mask(&caps), 0xa804_25fb - (1 << 13) + (1 << 21));
        let all = capabilities(&strings(&["ALL"]), &strings(&["KILL"]), false).expect("caps");
        assert!(!all.contains(&Capability::Kill) && all.contains(&Capability::SysAdmin));
        assert_eq!(
            mask(&capabilities(&[], &[], true).expect("caps")),
            ccrun_runtime::caps::current_bounding().expect("bounding")
        );
        assert!(capabilities(&strings(&["NOPE"]), &[], false).is_err());
        let err = check_available(&[Capability::Chown, Capability::SysResource], 0xa804_25fb)
            .unwrap_err();
        assert!(err.to_string().contains("SYS_RESOURCE"), "{err}");
        check_available(&[Capability::Chown], 1).expect("available");
    }

    #[test]
    fn security_opts_parse() {
        let o = parse_security_opts(&strings(&["no-new-privileges"])).expect("opts");
        assert!(o.no_new_privileges);
        let o = parse_security_opts(&strings(&["no-new-privileges:true", "seccomp=unconfined"]))
            .expect("opts");
        assert!(o.no_new_privileges && o.seccomp == Some(None));
        let o = parse_security_opts(&strings(&["no-new-privileges=false"])).expect("opts");
        assert!(!o.no_new_privileges);
        assert!(parse_security_opts(&strings(&["no-new-privileges=maybe"])).is_err());
        assert!(parse_security_opts(&strings(&["bogus"])).is_err());
        assert!(parse_security_opts(&strings(&["seccomp=/no/such/file"])).is_err());
        assert_eq!(
            parse_security_opts(&strings(&["apparmor=docker-default"]))
                .expect("opts")
                .apparmor
                .as_deref(),
            Some("docker-default")
        );
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let s = parse_sysctls(
            &strings(&["kernel.shmmax=1000", "net/ipv4/ip_forward=1"]),
            false,
        )
        .expect("sysctls");
        assert_eq!(s["kernel.shmmax"], "1000");
        assert_eq!(s["net.ipv4.ip_forward"], "1");
        assert!(parse_sysctls(&strings(&["kernel.hostname=x"]), false).is_err());
        assert!(parse_sysctls(&strings(&["vm.swappiness=1"]), false).is_err());
        assert!(parse_sysctls(&strings(&["net.ipv4.ip_forward=1"]), true).is_err());
        assert!(parse_sysctls(&strings(&["noequals"]), false).is_err());
    }

    #[test]
    fn ulimits_parse() {
        let l = parse_ulimit("nofile=512:1024").expect("ulimit");
        assert_eq!(
            (l.typ(), l.soft(), l.hard()),
            (PosixRlimitType::RlimitNofile, 512, 1024)
        );
        let l = parse_ulimit("core=-1").expect("ulimit");
        assert_eq!((l.soft(), l.hard()), (u64::MAX, u64::MAX));
        assert!(parse_ulimit("nofile=2:1").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert!(parse_ulimit("nofile").is_err());
    }

    #[test]
    fn devices_parse() {
        let d = parse_device("/dev/null:/dev/mynull:rw").expect("device");
        assert_eq!(d.device.path(), Path::new("/dev/mynull"));
        assert_eq!((d.device.major(), d.device.minor()), (1, 3));
        assert_eq!(d.access, "rw");
        let d = parse_device("/dev/zero:r").expect("device");
        assert_eq!(
            (d.device.path().as_path(), d.access.as_str()),
            (Path::new("/dev/zero"), "r")
        );
        assert!(parse_device("/etc/passwd").is_err());
        assert!(parse_device("/dev/null:/dev/x:rwx").is_err());
        let rules = device_rules(false, &[d]).expect("rules");
        assert!(!rules[0].allow());
        assert_eq!(rules.len(), 14);
        let last = rules.last().expect("rule");
        assert_eq!(
            (last.major(), last.minor(), last.access().as_deref()),
            (Some(1), Some(5), Some("r"))
        );
    }
}
