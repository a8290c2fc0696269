//! Resolves `-u`/`User` values (`uid`, `uid:gid`, `name`, `name:group`) against the
//! container's own `/etc/passwd` and `/etc/group`, with supplementary groups.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A resolved identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups from `/etc/group`.
    pub additional_gids: Vec<u32>,
    /// Home directory (for `HOME`), when known.
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_passwd(rootfs: &Path) -> Vec<PasswdEntry> {
    let text =
        ccrun_runtime::fsroot::read_to_string(rootfs, Path::new("etc/passwd")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"/").to_string(),
            })
        })
        .collect()
}

fn read_group(rootfs: &Path) -> Vec<GroupEntry> {
    let text =
        ccrun_runtime::fsroot::read_to_string(rootfs, Path::new("etc/group")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `--group-add GROUP`: a gid, or a group name in the container's `/etc/group`.
pub fn resolve_group(group: &str, rootfs: &Path) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    read_group(rootfs)
        .into_iter()
        .find(|g| g.name == group)
        .map(|g| g.gid)
        .with_context(|| format!("unable to find group {group}: no matching entries in group file"))
}

/// Resolves `spec` (empty means root) inside `rootfs`.
pub fn resolve(spec: &str, rootfs: &Path) -> Result<Identity> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_passwd(rootfs);
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid),
        Err(_) => Some(passwd.iter().find(|p| p.name == user).with_context(|| {
            format!("unable to find user {user}: no matching entries in passwd file")
        })?),
    };
    let uid = match (user.parse::<u32>(), entry) {
        (Ok(uid), _) => uid,
        (Err(_), Some(e)) => e.uid,
        (Err(_), None) => bail!("unable to find user {user}"),
    };
    let groups = read_group(rootfs);
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .with_context(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
        None => entry.map_or(0, |e| e.gid),
    };
    // The primary group leads the supplementary list, as containerd sets it for Docker;
    // the user's other groups follow only for a passwd entry and no explicit group.
    let mut additional_gids = vec![gid];
    if let (Some(e), None) = (entry, group) {
        additional_gids.extend(
            groups
                .iter()
                .filter(|g| g.members.contains(&e.name) && g.gid != gid)
                .map(|g| g.gid),
        );
    }
    Ok(Identity {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:alice\n",
        )
        .expect("group");
        dir
    }

    #[test]
    fn numeric_and_named_users() {
        let r = rootfs();
        let alice = resolve("alice", r.path()).expect("alice");
        assert_eq!((alice.uid, alice.gid), (1000, 1000));
        assert_eq!(alice.additional_gids, vec![1000, 10, 29]);
        assert_eq!(alice.home.as_deref(), Some("/home/alice"));
        let n = resolve("1000:10", r.path()).expect("uid:gid");
        assert_eq!((n.uid, n.gid), (1000, 10));
        assert_eq!(n.additional_gids, vec![10]);
        let g = resolve("alice:wheel", r.path()).expect("name:group");
        assert_eq!((g.uid, g.gid), (1000, 10));
        let unknown_uid = resolve("4242", r.path()).expect("unknown uid");
        assert_eq!((unknown_uid.uid, unknown_uid.gid), (4242, 0));
        assert_eq!(resolve("", r.path()).expect("default").uid, 0);
    }

    #[test]
    fn unknown_names_are_errors() {
        let r = rootfs();
        assert!(resolve("mallory", r.path()).is_err());
        assert!(resolve("alice:nogroup", r.path()).is_err());
    }
}
