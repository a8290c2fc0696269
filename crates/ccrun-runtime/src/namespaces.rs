//! Which namespaces a container gets: new ones become `clone` flags; ones given by
//! `path` are joined with `setns` — network, UTS and IPC ones by the parent around the
//! clone (so the init inherits them even inside a new user namespace, which has no
//! privilege over namespaces another user namespace owns), the others by the init
//! before it does anything else.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The namespace plan derived from a spec.
#[derive(Debug, Default, Clone)]
pub struct NamespacePlan {
    /// Flags for namespaces created at clone time.
    pub clone_flags: libc::c_int,
    /// Create a cgroup namespace after the init joined its cgroup.
    pub new_cgroup: bool,
    /// Existing namespaces to join: (CLONE_NEW* flag, path).
    pub join: Vec<(libc::c_int, PathBuf)>,
    /// The container has its own user namespace (new or joined).
    pub user: bool,
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
const INHERITED: libc::c_int = libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;

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
    /// Enters the network, UTS and IPC namespaces among `joins`, remembering the
    /// caller's own. The caller must be single-threaded (setns changes the thread,
    /// and the clone copies it).
    pub fn enter(joins: &[(libc::c_int, PathBuf)]) -> Result<EnteredAround> {
        let mut entered = EnteredAround { own: Vec::new() };
        for (flag, path) in joins.iter().filter(|(f, _)| f & INHERITED != 0) {
            let kind = match *flag {
                libc::CLONE_NEWNET => "net",
                libc::CLONE_NEWUTS => "uts",
                _ => "ipc",
            };
            let own_path = format!("/proc/thread-self/ns/{kind}");
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
    for ns in namespaces {
        let kind = ns.typ();
        match ns.path() {
            Some(path) => {
                if matches!(kind, LinuxNamespaceType::User | LinuxNamespaceType::Pid) {
                    return Err(Error::InvalidSpec(format!(
                        "joining an existing {kind:?} namespace by path ({}) is not supported yet",
                        path.display()
                    )));
                }
                plan.join.push((flag(kind), path.clone()));
            }
            None if kind == LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
            None => plan.clone_flags |= flag(kind),
        }
        match kind {
            LinuxNamespaceType::User => plan.user = true,
            LinuxNamespaceType::Network => plan.net = true,
            LinuxNamespaceType::Uts => plan.uts = true,
            LinuxNamespaceType::Mount => plan.mount = true,
            _ => {}
        }
    }
    if !plan.mount {
        return Err(Error::InvalidSpec(
            "a mount namespace is required (ccrun pivots into the rootfs)".into(),
        ));
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
    fn mount_namespace_is_required() {
        assert!(plan(&spec_with(vec![ns(LinuxNamespaceType::Pid)])).is_err());
    }

    #[test]
    fn joining_network_by_path_is_planned() {
        let net = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/proc/1/ns/net")
            .build()
            .expect("ns");
        let p = plan(&spec_with(vec![ns(LinuxNamespaceType::Mount), net])).expect("plan");
        assert_eq!(p.join.len(), 1);
        assert_eq!(p.join[0].0, libc::CLONE_NEWNET);
        assert_eq!(p.clone_flags & libc::CLONE_NEWNET, 0);
    }
}
