//! Running without root: moving the calling process into a user namespace that maps
//! it to root and its subordinate ranges (`/etc/subuid`, `/etc/subgid`) to the ids
//! after root, written by the setuid helpers `newuidmap`/`newgidmap` from a helper
//! process that stays outside, as podman and buildah do.

use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::subid::{self, Entry};

/// The id maps of a rootless user namespace: `0 → uid`, then the subordinate ranges
/// one after another from 1 on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootlessMaps {
    /// `(inside, outside, count)` lines for `newuidmap`.
    pub uids: Vec<(u32, u32, u32)>,
    /// `(inside, outside, count)` lines for `newgidmap`.
    pub gids: Vec<(u32, u32, u32)>,
}

impl RootlessMaps {
    /// The maps of the user `name` (uid `uid`, gid `gid`) from the subordinate id
    /// files; an error names the missing entry and how to add one.
    pub fn for_user(
        name: &str,
        uid: u32,
        gid: u32,
        subuid: &Path,
        subgid: &Path,
    ) -> Result<RootlessMaps> {
        let uids = subid::entries_of(subuid, name, Some(uid))?;
        let gids = subid::entries_of(subgid, name, Some(uid))?;
        for (entries, path, flag) in [
            (&uids, subuid, "--add-subuids"),
            (&gids, subgid, "--add-subgids"),
        ] {
            if entries.is_empty() {
                return Err(Error::Setup(format!(
                    "rootless ccrun needs subordinate ids: {} has no entry for {name} (uid \
                     {uid}); as root, add one, e.g. `usermod {flag} 200000-265535 {name}` or a \
                     line `{name}:200000:65536`",
                    path.display()
                )));
            }
        }
        Ok(RootlessMaps {
            uids: consecutive(uid, &uids),
            gids: consecutive(gid, &gids),
        })
    }

    /// How many ids the namespace maps (root included).
    pub fn size(&self) -> u64 {
        let count = |m: &[(u32, u32, u32)]| m.iter().map(|l| u64::from(l.2)).sum::<u64>();
        count(&self.uids).min(count(&self.gids))
    }
}

fn consecutive(own: u32, entries: &[Entry]) -> Vec<(u32, u32, u32)> {
    let mut maps = vec![(0, own, 1)];
    let mut next = 1u32;
    for e in entries {
        maps.push((next, e.start, e.count));
        next = next.saturating_add(e.count);
    }
    maps
}

/// Finds a setuid helper (`newuidmap`, `newgidmap`) in the usual places.
pub fn helper(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Setup(format!(
                "rootless ccrun needs {name} to map your subordinate ids, and it is not \
                 installed: install the uidmap package (Debian, Ubuntu) or shadow-utils"
            ))
        })
}

/// True when this process runs in a user namespace other than the host's (its uid map
/// is not the identity over every id).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(text) => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// Moves the calling process into a new user namespace (and a new mount namespace it
/// owns) with `maps`, and makes it root there; it keeps its pid. A forked helper that
/// stays outside runs `newuidmap` and `newgidmap` on our pid once we have unshared.
/// The caller must be single-threaded.
pub fn enter(maps: &RootlessMaps) -> Result<()> {
    let newuidmap = helper("newuidmap")?;
    let newgidmap = helper("newgidmap")?;
    let (go_r, go_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", e))?;
    let (err_r, err_w) = nix::unistd::pipe().map_err(|e| Error::sys("pipe", e))?;
    let me = std::process::id().to_string();
    let args = |lines: &[(u32, u32, u32)]| -> Vec<String> {
        std::iter::once(me.clone())
            .chain(
                lines
                    .iter()
                    .flat_map(|(i, o, n)| [i.to_string(), o.to_string(), n.to_string()]),
            )
            .collect()
    };
    let (uid_args, gid_args) = (args(&maps.uids), args(&maps.gids));
    // SAFETY: the caller is single-threaded, so the child may run arbitrary code.
    let pid = match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork", e))? {
        nix::unistd::ForkResult::Child => {
            drop(go_w);
            drop(err_r);
            let mut byte = [0u8; 1];
            let ready = nix::unistd::read(go_r.as_raw_fd(), &mut byte) == Ok(1);
            let code = if !ready {
                2
            } else {
                let mut failed = None;
                for (tool, args) in [(&newuidmap, &uid_args), (&newgidmap, &gid_args)] {
                    match Command::new(tool).args(args).output() {
                        Ok(out) if out.status.success() => {}
                        Ok(out) => {
                            failed = Some(format!(
                                "{} {}: {}",
                                tool.display(),
                                args.join(" "),
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                            break;
                        }
                        Err(e) => {
                            failed = Some(format!("running {}: {e}", tool.display()));
                            break;
                        }
                    }
                }
                match failed {
                    None => 0,
                    Some(msg) => {
                        let _ = nix::unistd::write(&err_w, msg.as_bytes());
                        1
                    }
                }
            };
            // SAFETY: ends the helper without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(go_r);
    drop(err_w);
    let unshared = nix::sched::unshare(
        nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS,
    );
    if unshared.is_ok() {
        let _ = nix::unistd::write(&go_w, b"g");
    }
    drop(go_w);
    let status = nix::sys::wait::waitpid(pid, None).map_err(|e| Error::sys("waitpid", e))?;
    let mut message = String::new();
    let _ = std::fs::File::from(err_r).read_to_string(&mut message);
    unshared.map_err(|e| {
        Error::sys(
            "creating a user namespace (are unprivileged user namespaces disabled? see \
             sysctl kernel.unprivileged_userns_clone and user.max_user_namespaces)",
            e,
        )
    })?;
    if !matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)) {
        return Err(Error::Setup(format!(
            "mapping your subordinate ids failed: {}",
            if message.is_empty() {
                format!("{status:?}")
            } else {
                message
            }
        )));
    }
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .map_err(|e| Error::sys("setgid 0 in the user namespace", e))?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .map_err(|e| Error::sys("setuid 0 in the user namespace", e))?;
    // Supplementary groups of the host user are not mapped: drop them.
    let _ = nix::unistd::setgroups(&[]);
    Ok(())
}

/// Whether `resources` limits anything (device rules aside, which a user namespace
/// enforces anyway: it cannot make device nodes).
pub fn has_limits(resources: Option<&oci_spec::runtime::LinuxResources>) -> bool {
    resources.is_some_and(|r| {
        r.memory().is_some()
            || r.cpu().is_some()
            || r.pids().is_some()
            || r.block_io().is_some()
            || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
            || r.network().is_some()
            || r.rdma().as_ref().is_some_and(|m| !m.is_empty())
            || r.unified().as_ref().is_some_and(|u| !u.is_empty())
    })
}

/// What to do when the container's cgroup cannot be made (`err`): rootless (in a user
/// namespace, or not root) without a delegated subtree to write,
/// a container that asks for no limits runs without a cgroup of its own (returns the
/// empty cgroup path), as rootless runc does; one that does is refused, saying why.
pub fn without_cgroup(
    err: ccrun_cgroups::Error,
    resources: Option<&oci_spec::runtime::LinuxResources>,
) -> Result<String> {
    let rootless = in_user_namespace() || !nix::unistd::geteuid().is_root();
    if !err.is_denied() || !rootless {
        return Err(err.into());
    }
    if has_limits(resources) {
        return Err(Error::Setup(format!(
            "resource limits need a cgroup, and this rootless runtime may not create one \
             ({err}): limits work rootless only on cgroup v2 with a subtree delegated to \
             the user (a systemd user session); run without limits"
        )));
    }
    tracing::debug!("no cgroup for the container: {err}");
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_root_then_consecutive_ranges() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "alice:100000:65536\nbob:1:2\n1000:300000:10\n").expect("write");
        std::fs::write(&g, "alice:200000:65536\n").expect("write");
        let maps = RootlessMaps::for_user("alice", 1000, 1000, &u, &g).expect("maps");
        assert_eq!(
            maps.uids,
            vec![(0, 1000, 1), (1, 100000, 65536), (65537, 300000, 10)]
        );
        assert_eq!(maps.gids, vec![(0, 1000, 1), (1, 200000, 65536)]);
        assert_eq!(maps.size(), 65537);
    }

    #[test]
    fn a_missing_entry_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "alice:100000:65536\n").expect("write");
        let err = RootlessMaps::for_user("alice", 1000, 1000, &u, &g)
            .expect_err("no subgid entry")
            .to_string();
        assert!(err.contains("subgid has no entry for alice"), "{err}");
    }
}
