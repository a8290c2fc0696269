//! What a new container takes from other containers or the host: their PID, IPC and
//! UTS namespaces (`--pid`, `--ipc`, `--uts` with `host` or `container:NAME`), their
//! addresses (`--link`) and their volumes (`--volumes-from`).
//!
//! Sharing another container's PID or IPC namespace means sharing its user namespace
//! too: the kernel lets only a process privileged in the user namespace owning a PID
//! or IPC namespace mount its `/proc` or `/dev/mqueue`, and all of ccrun's private
//! user namespaces have the same mapping, so the files of either container look the
//! same from both.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, MountBuilder, Spec};

use crate::containers::options::RunOptions;
use crate::containers::{ContainerStore, Record, Status};
use crate::spec_builder::{Namespaces, NsMode, UsernsMode};
use crate::volumes::{self, MountRequest};

/// Where `/dev/shm` comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Shm {
    /// A tmpfs of its own (Docker's default mount).
    #[default]
    Own,
    /// The host's (`--ipc host`). Another container's `/dev/shm` is a mount in its
    /// own mount namespace, which cannot be cloned into ours: `--ipc container:NAME`
    /// shares System V IPC and POSIX message queues, not `/dev/shm`.
    Bind(PathBuf),
    /// None at all (`--ipc none`).
    Nothing,
}

/// The namespaces a container shares, resolved when it is created.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// For the spec.
    pub namespaces: Namespaces,
    /// The name of the UTS namespace it joins (for `/etc/hostname`).
    pub hostname: String,
    shm: Shm,
}

impl Shared {
    /// The `/dev/shm` mount that replaces Docker's default, if any. `--ipc none` gets
    /// an empty read-only tmpfs there: the directory exists, nothing can be shared.
    pub fn shm_mount(&self) -> Result<Option<Mount>> {
        let (typ, source, options) = match &self.shm {
            Shm::Own => return Ok(None),
            Shm::Bind(path) => ("bind", path.clone(), vec!["rbind", "rprivate"]),
            Shm::Nothing => (
                "tmpfs",
                PathBuf::from("tmpfs"),
                vec!["nosuid", "nodev", "noexec", "ro", "size=0"],
            ),
        };
        Ok(Some(
            MountBuilder::default()
                .destination("/dev/shm")
                .typ(typ)
                .source(source)
                .options(options.into_iter().map(String::from).collect::<Vec<_>>())
                .build()?,
        ))
    }
}

/// A running container named by `container:NAME` in `flag`.
fn running(containers: &ContainerStore, flag: &str, name: &str) -> Result<Record> {
    let other = containers
        .find(name)
        .with_context(|| format!("{flag} container:{name}"))?;
    if other.status != Status::Running {
        bail!(
            "{flag} container:{name}: container {} is not running",
            other.name
        );
    }
    Ok(other)
}

/// Whether process `pid` is in a user namespace other than ccrun's.
fn has_own_userns(pid: i32) -> Result<bool> {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/user"))
        .with_context(|| format!("reading the user namespace of process {pid}"))?;
    let ours = std::fs::metadata("/proc/self/ns/user").context("reading our user namespace")?;
    Ok(theirs.ino() != ours.ino() || theirs.dev() != ours.dev())
}

/// Resolves `--pid`, `--ipc`, `--uts` and `--cgroupns` (rewriting `container:NAME` in
/// `options` to `container:ID`, which survives renames) for a container with `userns`.
pub fn resolve(
    containers: &ContainerStore,
    options: &mut RunOptions,
    userns: &UsernsMode,
) -> Result<Shared> {
    let mut shared = Shared::default();
    let mut user_from: Option<(String, Record)> = None;
    for (flag, kind) in [("--pid", "pid"), ("--ipc", "ipc"), ("--uts", "uts")] {
        let mode = match kind {
            "pid" => &mut options.pid_mode,
            "ipc" => &mut options.ipc_mode,
            _ => &mut options.uts_mode,
        };
        let given = mode.clone();
        let ns = match given.as_str() {
            "host" => NsMode::Host,
            m => match m.strip_prefix("container:") {
                Some(name) => {
                    let other = running(containers, flag, name)?;
                    *mode = format!("container:{}", other.id);
                    if kind == "uts" {
                        shared.hostname = other.hostname.clone();
                    } else if user_from.is_none() {
                        user_from = Some((format!("{flag} {m}"), other.clone()));
                    }
                    NsMode::Join(PathBuf::from(format!("/proc/{}/ns/{kind}", other.pid)))
                }
                None => NsMode::Private,
            },
        };
        match kind {
            "pid" => shared.namespaces.pid = ns,
            "ipc" => shared.namespaces.ipc = ns,
            _ => shared.namespaces.uts = ns,
        }
    }
    match options.ipc_mode.as_str() {
        "host" => shared.shm = Shm::Bind(PathBuf::from("/dev/shm")),
        "none" => shared.shm = Shm::Nothing,
        _ => {}
    }
    if options.uts_mode == "host" {
        shared.hostname = nix::unistd::gethostname()
            .context("reading the host name")?
            .to_string_lossy()
            .into_owned();
    }
    if options.cgroupns_mode == "host" {
        shared.namespaces.cgroup = NsMode::Host;
    }
    if let Some((what, other)) = user_from {
        let own = has_own_userns(other.pid)?;
        match (userns.has_own_namespace(), own) {
            (true, true) => {
                shared.namespaces.user =
                    Some(PathBuf::from(format!("/proc/{}/ns/user", other.pid)));
            }
            (false, false) => {}
            (true, false) => bail!(
                "{what}: container {} runs in the host's user namespace; add --userns host",
                other.name
            ),
            (false, true) => bail!(
                "{what}: container {} runs in a user namespace of its own, which the \
                 host's cannot share; drop --userns host and --privileged",
                other.name
            ),
        }
    }
    Ok(shared)
}

/// The single-range mapping of the user namespace at `path` (`/proc/PID/ns/user`), read
/// from that process's maps: what a container joining it is mapped by.
pub fn joined_mode(path: &std::path::Path) -> Option<UsernsMode> {
    let proc_dir = path.parent()?.parent()?;
    let read = |file: &str| {
        let text = std::fs::read_to_string(proc_dir.join(file)).ok()?;
        match ccrun_runtime::userns::parse_map(&text)?.as_slice() {
            [m] if m.container_id() == 0 => Some((m.host_id(), m.size())),
            _ => None,
        }
    };
    let ((uid_start, count), (gid_start, gids)) = (read("uid_map")?, read("gid_map")?);
    Some(UsernsMode::Private {
        uid_start,
        gid_start,
        count: count.min(gids),
    })
}

/// Points the paths of `spec` that name another container's process (its shared
/// namespaces) at that container's current init: it may have been restarted since
/// `config.json` was written.
pub fn refresh(containers: &ContainerStore, record: &Record, spec: &mut Spec) -> Result<()> {
    let o = &record.options;
    let target = |mode: &str, flag: &str| -> Result<Option<i32>> {
        match mode.strip_prefix("container:") {
            Some(id) => match containers.get(id)? {
                Some(other) if other.status == Status::Running => Ok(Some(other.pid)),
                Some(other) => bail!(
                    "cannot start: {flag} container:{} is not running",
                    other.name
                ),
                None => bail!("cannot start: {flag} container:{id} no longer exists"),
            },
            None => Ok(None),
        }
    };
    let pid = target(&o.pid_mode, "--pid")?;
    let ipc = target(&o.ipc_mode, "--ipc")?;
    let uts = target(&o.uts_mode, "--uts")?;
    if pid.is_none() && ipc.is_none() && uts.is_none() {
        return Ok(());
    }
    let user = pid.or(ipc);
    if let Some(namespaces) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for ns in namespaces.iter_mut() {
            let (owner, kind) = match ns.typ() {
                LinuxNamespaceType::Pid => (pid, "pid"),
                LinuxNamespaceType::Ipc => (ipc, "ipc"),
                LinuxNamespaceType::Uts => (uts, "uts"),
                LinuxNamespaceType::User => (user, "user"),
                _ => continue,
            };
            if let (Some(p), Some(_)) = (owner, ns.path()) {
                ns.set_path(Some(PathBuf::from(format!("/proc/{p}/ns/{kind}"))));
            }
        }
    }
    Ok(())
}

/// `--link NAME[:ALIAS]`: `/etc/hosts` entries (names, address) for running
/// containers with an address, as Docker's legacy links write them.
pub fn link_hosts(
    containers: &ContainerStore,
    links: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    links
        .iter()
        .map(|(name, alias)| {
            let other = containers
                .find(name)
                .with_context(|| format!("--link {name}"))?;
            if other.status != Status::Running {
                bail!(
                    "cannot link to a non-running container: {} as {alias}",
                    other.name
                );
            }
            let Some(attachment) = &other.attachment else {
                bail!(
                    "cannot link to container {}: it has no address on a bridge network",
                    other.name
                );
            };
            let mut names = vec![alias.as_str()];
            for n in [other.hostname.as_str(), other.name.as_str()] {
                if !n.is_empty() && !names.contains(&n) {
                    names.push(n);
                }
            }
            Ok((names.join(" "), attachment.ip.to_string()))
        })
        .collect()
}

/// `--volumes-from CONTAINER[:ro|rw]`: the other container's volumes and bind mounts
/// at the same places (read-only as there, unless `ro`/`rw` says otherwise), except
/// where `requested` (`-v`, `--mount`) already mounts something.
pub fn volumes_from(
    containers: &ContainerStore,
    from: &[(String, Option<bool>)],
    requested: &[MountRequest],
) -> Result<Vec<MountRequest>> {
    let mut out: Vec<MountRequest> = Vec::new();
    for (name, readonly) in from {
        let other = containers
            .find(name)
            .with_context(|| format!("--volumes-from {name}"))?;
        let mut mounts = Vec::new();
        for v in &other.volume_mounts {
            mounts.push((
                volumes::spec::parse_volume_flag(&format!("{}:{}", v.name, v.destination))?,
                v.readonly,
            ));
        }
        for bind in &other.binds {
            let request = volumes::spec::parse_volume_flag(bind)
                .with_context(|| format!("--volumes-from {name}: its bind {bind:?}"))?;
            if let MountRequest::Bind(b) = &request {
                let ro = b.readonly;
                mounts.push((request, ro));
            }
        }
        for (mut request, was_readonly) in mounts {
            let dest = request.destination().to_string();
            let taken = requested
                .iter()
                .chain(out.iter())
                .any(|r| r.destination() == dest);
            if taken {
                continue;
            }
            let ro = readonly.unwrap_or(was_readonly);
            match &mut request {
                MountRequest::Bind(b) => b.readonly = ro,
                MountRequest::Volume(v) => {
                    v.readonly = ro;
                    // Already seeded by the container that made it.
                    v.nocopy = true;
                }
                MountRequest::Tmpfs(_) => continue,
            }
            out.push(request);
        }
    }
    Ok(out)
}
