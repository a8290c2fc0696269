//! Which namespaces a container gets: new ones become `clone` flags; ones given by
//! `path` are joined with `setns` — network, UTS, IPC, PID and time ones by the parent
//! around the clone (so the init inherits them even inside a new user namespace, which
//! has no privilege over namespaces another user namespace owns; a PID or time
//! namespace only applies to children anyway), mount and cgroup ones by the init before
//! it does anything else. A user namespace given by path is joined by an intermediate
//! process, which then clones the init with the other new namespaces, so they belong to
//! the joined user namespace. A new time namespace cannot be asked of `clone`: the
//! parent unshares it for its children, writes its offsets, and returns afterwards.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, LinuxTimeOffset, Spec};

use crate::error::{Error, Result};

/// The namespace plan derived from a spec.
#[derive(Debug, Default, Clone)]
pub struct NamespacePlan {
    /// Flags for namespaces created at clone time.
    pub clone_flags: libc::c_int,
    /// Create a cgroup namespace after the init joined its cgroup.
    pub new_cgroup: bool,
    /// Create a time namespace (with `time_offsets`) for the init.
    pub new_time: bool,
    /// `linux.timeOffsets` as `/proc/PID/timens_offsets` lines.
    pub time_offsets: String,
    /// Existing namespaces to join: (CLONE_NEW* flag, path); never the user namespace.
    pub join: Vec<(libc::c_int, PathBuf)>,
    /// An existing user namespace to join.
    pub user_join: Option<PathBuf>,
    /// The container has its own user namespace (new or joined).
    pub user: bool,
    /// The container has its own IPC namespace.
    pub ipc: bool,
    /// The container has its own network namespace.
    pub net: bool,
    /// The container has its own UTS namespace (hostname may be set).
    pub uts: bool,
    /// The container has its own mount namespace.
    pub mount: bool,
}

fn flag(kind: LinuxNamespaceType) -> libc::c_int {
    match kind {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

/// Namespace kinds the parent enters around the clone instead of the init.
const INHERITED: libc::c_int = libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWTIME;

/// `/proc/PID/ns` name of a namespace kind.
fn kind_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        _ => "time",
    }
}

/// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Checks that `path` is a namespace of kind `flag`, so a wrong path fails with a clear
/// message instead of an `EINVAL` from `setns` (or, worse, joining the wrong kind).
pub fn check_kind(path: &Path, flag: libc::c_int) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("opening namespace", path, e))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let ret = unsafe { libc::ioctl(f.as_fd().as_raw_fd(), NS_GET_NSTYPE) };
    let name = kind_name(flag);
    match nix::errno::Errno::result(ret) {
        Ok(kind) if kind == flag => Ok(()),
        Ok(kind) => Err(Error::InvalidSpec(format!(
            "linux.namespaces: {} is a {} namespace, not a {name} namespace",
            path.display(),
            kind_name(kind)
        ))),
        Err(_) => Err(Error::InvalidSpec(format!(
            "linux.namespaces: {} is not a namespace (expected a {name} namespace)",
            path.display()
        ))),
    }
}

/// True when `path` is the caller's own namespace of kind `flag` (joining it gives the
/// container nothing of its own).
pub fn is_own(path: &Path, flag: libc::c_int) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = format!("/proc/self/ns/{}", kind_name(flag));
    match (std::fs::metadata(path), std::fs::metadata(own)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Renders `linux.timeOffsets` for `/proc/PID/timens_offsets`.
pub fn render_time_offsets(offsets: &HashMap<String, LinuxTimeOffset>) -> Result<String> {
    let mut out = String::new();
    let mut keys: Vec<&String> = offsets.keys().collect();
    keys.sort();
    for clock in keys {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::InvalidSpec(format!(
                "linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
            )));
        }
        let o = &offsets[clock];
        out.push_str(&format!(
            "{clock} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    Ok(out)
}

/// `plan` without the joins the parent does (see [`EnteredAround`]).
pub fn without_inherited(plan: &NamespacePlan) -> NamespacePlan {
    let mut plan = plan.clone();
    plan.join.retain(|(flag, _)| flag & INHERITED == 0);
    plan
}

/// The caller's own namespaces while it sits in shared ones for a clone.
#[derive(Debug)]
pub struct EnteredAround {
    own: Vec<(libc::c_int, std::os::fd::OwnedFd)>,
}

impl EnteredAround {
    /// Enters the network, UTS, IPC, PID and time namespaces of `plan.join`, and a new
    /// time namespace with its offsets if asked, remembering the caller's own. The
    /// caller must be single-threaded (setns changes the thread, and the clone copies it).
    pub fn enter(plan: &NamespacePlan) -> Result<EnteredAround> {
        let mut entered = EnteredAround { own: Vec::new() };
        if plan.new_time {
            let own_path = "/proc/thread-self/ns/time";
            let own = std::fs::File::open(own_path)
                .map_err(|e| Error::io("opening namespace", own_path, e))?;
            nix::sched::unshare(nix::sched::CloneFlags::from_bits_retain(
                libc::CLONE_NEWTIME,
            ))
            .map_err(|e| Error::sys("creating a time namespace", e))?;
            entered.own.push((libc::CLONE_NEWTIME, own.into()));
            // Offsets can only be written before a process lives in the namespace.
            let offsets = "/proc/self/timens_offsets";
            std::fs::write(offsets, &plan.time_offsets)
                .map_err(|e| Error::io("writing time offsets to", offsets, e))?;
        }
        for (flag, path) in plan.join.iter().filter(|(f, _)| f & INHERITED != 0) {
            let own_path = format!("/proc/thread-self/ns/{}", kind_name(*flag));
            let own = std::fs::File::open(&own_path)
                .map_err(|e| Error::io("opening namespace", &own_path, e))?;
            let target =
                std::fs::File::open(path).map_err(|e| Error::io("opening namespace", path, e))?;
            nix::sched::setns(&target, nix::sched::CloneFlags::from_bits_retain(*flag))
                .map_err(|e| Error::sys(format!("joining namespace {}", path.display()), e))?;
            entered.own.push((*flag, own.into()));
        }
        Ok(entered)
    }

    /// Returns to the caller's own namespaces.
    pub fn leave(mut self) -> Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> Result<()> {
        while let Some((flag, own)) = self.own.pop() {
            nix::sched::setns(&own, nix::sched::CloneFlags::from_bits_retain(flag))
                .map_err(|e| Error::sys("returning to ccrun's own namespace", e))?;
        }
        Ok(())
    }
}

impl Drop for EnteredAround {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            // Carrying on in another container's namespace would configure the wrong
            // one; there is no safe way forward.
            eprintln!("ccrun: {e}");
            std::process::abort();
        }
    }
}

/// Builds the plan from `spec.linux.namespaces`.
pub fn plan(spec: &Spec) -> Result<NamespacePlan> {
    let empty = Vec::new();
    let namespaces: &Vec<LinuxNamespace> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .unwrap_or(&empty);
    let mut plan = NamespacePlan::default();
    let mut seen = 0;
    for ns in namespaces {
        let kind = ns.typ();
        if seen & flag(kind) != 0 {
            return Err(Error::InvalidSpec(format!(
                "linux.namespaces: {} namespace listed twice",
                kind_name(flag(kind))
            )));
        }
        seen |= flag(kind);
        match ns.path() {
            Some(path) if kind == LinuxNamespaceType::User => plan.user_join = Some(path.clone()),
            Some(path) => plan.join.push((flag(kind), path.clone())),
            None if kind == LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
            None if kind == LinuxNamespaceType::Time => plan.new_time = true,
            None => plan.clone_flags |= flag(kind),
        }
        match kind {
            LinuxNamespaceType::User => plan.user = true,
            LinuxNamespaceType::Network => plan.net = true,
            LinuxNamespaceType::Uts => plan.uts = true,
            LinuxNamespaceType::Ipc => plan.ipc = true,
            LinuxNamespaceType::Mount => plan.mount = true,
            _ => {}
        }
    }
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    if let Some(offsets) = offsets.filter(|o| !o.is_empty()) {
        if !plan.new_time {
            return Err(Error::InvalidSpec(
                "linux.timeOffsets needs a new time namespace in linux.namespaces".into(),
            ));
        }
        plan.time_offsets = render_time_offsets(offsets)?;
    }
    for (flag, path) in &plan.join {
        check_kind(path, *flag)?;
    }
    if let Some(path) = &plan.user_join {
        check_kind(path, libc::CLONE_NEWUSER)?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder, SpecBuilder};

    fn spec_with(ns: Vec<LinuxNamespace>) -> Spec {
        SpecBuilder::default()
            .linux(
                LinuxBuilder::default()
                    .namespaces(ns)
                    .build()
                    .expect("linux"),
            )
            .build()
            .expect("spec")
    }

    fn ns(kind: LinuxNamespaceType) -> LinuxNamespace {
        LinuxNamespaceBuilder::default()
            .typ(kind)
            .build()
            .expect("ns")
    }

    #[test]
    fn new_namespaces_become_clone_flags() {
        let p = plan(&spec_with(vec![
            ns(LinuxNamespaceType::Mount),
            ns(LinuxNamespaceType::Pid),
            ns(LinuxNamespaceType::User),
            ns(LinuxNamespaceType::Cgroup),
        ]))
        .expect("plan");
        assert_eq!(
            p.clone_flags,
            libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUSER
        );
        assert!(p.new_cgroup && p.user && !p.net);
    }

    #[test]
    fn no_mount_namespace_shares_the_runtimes() {
        let p = plan(&spec_with(vec![ns(LinuxNamespaceType::Pid)])).expect("plan");
        assert!(!p.mount);
        assert_eq!(p.clone_flags & libc::CLONE_NEWNS, 0);
    }

    #[test]
    fn a_path_of_the_wrong_kind_is_refused() {
        let wrong = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Pid)
            .path("/proc/self/ns/net")
            .build()
            .expect("ns");
        let err = plan(&spec_with(vec![ns(LinuxNamespaceType::Mount), wrong]))
            .expect_err("wrong kind")
            .to_string();
        assert!(
            err.contains("is a net namespace, not a pid namespace"),
            "{err}"
        );
        let not_ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::User)
            .path("/proc/self/status")
            .build()
            .expect("ns");
        let err = plan(&spec_with(vec![ns(LinuxNamespaceType::Mount), not_ns]))
            .expect_err("not a namespace")
            .to_string();
        assert!(err.contains("is not a namespace"), "{err}");
    }

    #[test]
    fn time_namespace_is_never_a_clone_flag() {
        let p = plan(&spec_with(vec![
            ns(LinuxNamespaceType::Mount),
            ns(LinuxNamespaceType::Time),
        ]))
        .expect("plan");
        assert!(p.new_time);
        assert_eq!(p.clone_flags & libc::CLONE_NEWTIME, 0);
    }

    #[test]
    fn joining_network_by_path_is_planned() {
        let net = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/proc/self/ns/net")
            .build()
            .expect("ns");
        let p = plan(&spec_with(vec![ns(LinuxNamespaceType::Mount), net])).expect("plan");
        assert_eq!(p.join.len(), 1);
        assert_eq!(p.join[0].0, libc::CLONE_NEWNET);
        assert_eq!(p.clone_flags & libc::CLONE_NEWNET, 0);
    }
}
