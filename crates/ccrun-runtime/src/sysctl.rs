//! `linux.sysctl`: key validation and the namespace rule. Only sysctls that belong to a
//! namespace the container has for itself may be set (as runc decides): writing a
//! host-wide one from a container would change the host.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::namespaces::NamespacePlan;

/// IPC sysctls outside `fs.mqueue.*` (see ipc-namespaces(7)).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The file under `/proc/sys` of a sysctl key. Dotted keys become paths; a key with a
/// `/` is taken as a path already, so interface names with dots (`eth0.100`) work.
pub fn proc_path(key: &str) -> Result<PathBuf> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let bad = rel.is_empty()
        || rel.starts_with('/')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::InvalidSpec(format!(
            "linux.sysctl: invalid key {key:?}"
        )));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// The namespace a sysctl belongs to: setting it changes that namespace only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// `kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`.
    Ipc,
    /// `net.*`.
    Net,
    /// `kernel.hostname`, `kernel.domainname`.
    Uts,
}

/// The namespace of a sysctl key (dotted or written with `/`), or None for a host-wide
/// one, which no container may set. Shared with the engine's `--sysctl` check so both
/// draw the line in the same place.
pub fn namespace_of(key: &str) -> Option<Namespace> {
    let dotted = key.replace('/', ".");
    if IPC_SYSCTLS.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
        Some(Namespace::Ipc)
    } else if dotted.starts_with("net.") {
        Some(Namespace::Net)
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some(Namespace::Uts)
    } else {
        None
    }
}

/// Checks every key: well formed and in a namespace the container owns (`plan.ipc`,
/// `plan.net`, `plan.uts` say which ones it has, new or joined).
pub fn validate<'a>(
    keys: impl IntoIterator<Item = &'a String>,
    own_net: bool,
    own_ipc: bool,
    plan: &NamespacePlan,
) -> Result<()> {
    for key in keys {
        proc_path(key)?;
        let allowed = match namespace_of(key) {
            Some(Namespace::Ipc) => own_ipc,
            Some(Namespace::Net) => own_net,
            Some(Namespace::Uts) => plan.uts,
            None => false,
        };
        if !allowed {
            return Err(Error::InvalidSpec(format!(
                "linux.sysctl: {key} is not in a namespace the container has for itself \
                 (net.* needs a network namespace, kernel IPC ones an IPC namespace, \
                 others are host-wide)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_proc_paths() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward").expect("path"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            proc_path("net/ipv4/conf/eth0.100/forwarding").expect("path"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
        for bad in ["", "/etc/passwd", "net/../../etc", "net..ipv4", "a//b"] {
            assert!(proc_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_wide_sysctls_are_refused() {
        let plan = NamespacePlan {
            uts: true,
            ..Default::default()
        };
        let keys = |k: &str| vec![k.to_string()];
        assert!(validate(&keys("net.ipv4.ip_forward"), true, false, &plan).is_ok());
        assert!(validate(&keys("net.ipv4.ip_forward"), false, true, &plan).is_err());
        assert!(validate(&keys("kernel.shmmax"), false, true, &plan).is_ok());
        assert!(validate(&keys("fs.mqueue.msg_max"), false, false, &plan).is_err());
        assert!(validate(&keys("kernel.hostname"), false, false, &plan).is_ok());
        let err = validate(&keys("vm.swappiness"), true, true, &plan)
            .expect_err("host-wide")
            .to_string();
        assert!(err.contains("vm.swappiness"), "{err}");
    }
}
