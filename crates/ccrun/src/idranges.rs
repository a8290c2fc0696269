//! The host ids of root's containers: ccrun's own subordinate ranges in `/etc/subuid`
//! and `/etc/subgid` (made on first use, as Docker makes `dockremap`'s), cut into
//! 65536-id slots: slot 0 is `--userns private`'s shared range, every other slot goes
//! to one `--userns auto` container at a time.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use ccrun_runtime::subid::{self, Entry};
use serde::{Deserialize, Serialize};

use crate::containers::{ContainerStore, Record};
use crate::spec_builder::UsernsMode;

/// Ids of one container's range.
pub const SLOT: u32 = 65_536;
/// Ids allotted to ccrun's user when its entries are made: 1024 slots.
pub const DEFAULT_SIZE: u32 = SLOT * 1024;

/// A container's own host ids: container ids `0..count` are host `uid_start..` and
/// `gid_start..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// Host uid of the container's root.
    pub uid_start: u32,
    /// Host gid of the container's root.
    pub gid_start: u32,
    /// Ids mapped.
    pub count: u32,
}

impl IdRange {
    /// The user namespace mode that maps onto this range.
    pub fn mode(self) -> UsernsMode {
        UsernsMode::Private {
            uid_start: self.uid_start,
            gid_start: self.gid_start,
            count: self.count,
        }
    }
}

/// ccrun's subordinate ranges, as slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// `(uid_start, gid_start)` of each slot, in file order.
    slots: Vec<(u32, u32)>,
    /// The owner of the entries, for messages.
    owner: String,
}

impl Allocation {
    /// The entries of the configured owner (see [`crate::config::userns_user`]), made in
    /// a free region above what `useradd` hands out if either file has none.
    pub fn ensure() -> Result<Allocation> {
        let owner = crate::config::userns_user();
        let size = crate::config::userns_size().unwrap_or(DEFAULT_SIZE);
        Allocation::ensure_in(
            Path::new(subid::SUBUID),
            Path::new(subid::SUBGID),
            &owner,
            size,
            floor(),
        )
    }

    /// [`Allocation::ensure`] on the given files.
    pub fn ensure_in(
        subuid: &Path,
        subgid: &Path,
        owner: &str,
        size: u32,
        floor: u64,
    ) -> Result<Allocation> {
        let (uids, gids) = subid::ensure_allocation(subuid, subgid, owner, size, floor)
            .with_context(|| format!("allotting subordinate ids to {owner}"))?;
        Ok(Allocation {
            slots: slots(&uids).into_iter().zip(slots(&gids)).collect(),
            owner: owner.to_string(),
        })
    }

    /// `--userns private`: slot 0, shared by every such container.
    pub fn private(&self) -> Result<UsernsMode> {
        let &(uid_start, gid_start) = self.slots.first().with_context(|| {
            format!(
                "{}'s entries in /etc/subuid and /etc/subgid hold fewer than {SLOT} ids",
                self.owner
            )
        })?;
        Ok(UsernsMode::Private {
            uid_start,
            gid_start,
            count: SLOT,
        })
    }

    /// The lowest slot after the shared one that no record in `taken` holds and no
    /// live process on the host runs in (a killed container's stray process).
    pub fn free_slot(&self, taken: &[IdRange], busy: &BTreeSet<u32>) -> Result<IdRange> {
        self.slots
            .iter()
            .skip(1)
            .filter(|(uid, _)| !taken.iter().any(|r| r.uid_start == *uid))
            .find(|(uid, _)| busy.range(*uid..uid.saturating_add(SLOT)).next().is_none())
            .map(|&(uid_start, gid_start)| IdRange {
                uid_start,
                gid_start,
                count: SLOT,
            })
            .with_context(|| {
                format!(
                    "every --userns auto range of {} is in use ({} containers); remove \
                     containers, or give {} more ids in /etc/subuid and /etc/subgid",
                    self.owner,
                    self.slots.len().saturating_sub(1),
                    self.owner
                )
            })
    }
}

/// Splits entries into whole slots, in order.
fn slots(entries: &[Entry]) -> Vec<u32> {
    entries
        .iter()
        .flat_map(|e| (0..e.count / SLOT).map(move |i| e.start + i * SLOT))
        .collect()
}

/// Where ccrun's region may start: above every id `useradd` may hand out
/// (`SUB_UID_MAX`/`SUB_GID_MAX` of `/etc/login.defs`), so that users added later never
/// get ids of ccrun's.
fn floor() -> u64 {
    let max = ["SUB_UID_MAX", "SUB_GID_MAX"]
        .iter()
        .filter_map(|k| subid::login_defs(k))
        .max()
        // shadow-utils' built-in default.
        .unwrap_or(600_100_000);
    max + 1
}

/// Gives `record` the lowest free `--userns auto` range; runs under the store lock
/// (see [`ContainerStore::create_with`]), so two creates never take the same one. A
/// range comes back when its container's record goes.
pub fn assign(allocation: &Allocation, store: &ContainerStore, record: &mut Record) -> Result<()> {
    let taken: Vec<IdRange> = store.list()?.iter().filter_map(|r| r.id_range).collect();
    let range = allocation.free_slot(&taken, &busy_uids())?;
    record.id_range = Some(range);
    Ok(())
}

/// A uid of every live process: the owner of its `/proc/PID`, which is its effective
/// uid, or for a process that is not dumpable the host uid of the root of its user
/// namespace. For a process in a container's user namespace (the stray process this
/// looks for) either is in the container's range, as every id of such a process is.
/// One `stat` per process: reading each `/proc/PID/status` for its `Uid:` line took
/// milliseconds on every `--userns auto` create.
fn busy_uids() -> BTreeSet<u32> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // A process that ended meanwhile is not busy.
        if let Ok(meta) = entry.metadata() {
            out.insert(meta.uid());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocation(text: &str) -> Allocation {
        let dir = tempfile::tempdir().expect("tempdir");
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, text).expect("write");
        std::fs::write(&g, text).expect("write");
        Allocation::ensure_in(&u, &g, "ccrun", SLOT * 4, 600_100_001).expect("allocation")
    }

    #[test]
    fn existing_entries_are_cut_into_slots() {
        let a = allocation("ccrun:100000:65536\nccrun:1000000:131072\n");
        assert_eq!(
            a.private().expect("private"),
            UsernsMode::Private {
                uid_start: 100000,
                gid_start: 100000,
                count: SLOT
            }
        );
        let first = a.free_slot(&[], &BTreeSet::new()).expect("slot");
        assert_eq!(first.uid_start, 1_000_000);
        let second = a.free_slot(&[first], &BTreeSet::new()).expect("slot");
        assert_eq!(second.uid_start, 1_065_536);
        assert!(a.free_slot(&[first, second], &BTreeSet::new()).is_err());
    }

    #[test]
    fn a_range_with_a_live_process_is_skipped() {
        let a = allocation("tester:100000:65536\n");
        let first = a.free_slot(&[], &BTreeSet::new()).expect("slot");
        let busy = BTreeSet::from([first.uid_start + 33]);
        let next = a.free_slot(&[], &busy).expect("slot");
        assert_eq!(next.uid_start, first.uid_start + SLOT);
    }

    #[test]
    fn busy_uids_sees_a_process_running_as_a_range_uid() {
        use std::os::unix::process::CommandExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to start a process as another uid");
            return;
        }
        let uid = 3_900_000_017;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .uid(uid)
            .gid(uid)
            .spawn()
            .expect("sleep as another uid");
        let busy = busy_uids();
        // Our own child, by its PID.
        let _ = child.kill();
        let _ = child.wait();
        assert!(busy.contains(&uid), "uid {uid} not among {busy:?}");
        assert!(
            !busy_uids().contains(&uid),
            "a process that ended is not busy"
        );
    }

    #[test]
    fn new_entries_start_above_useradds_region() {
        let a = allocation("tester:100000:65536\n");
        let UsernsMode::Private { uid_start, .. } = a.private().expect("private") else {
            panic!("not private");
        };
        assert!(u64::from(uid_start) > 600_100_000);
        assert_eq!(u64::from(uid_start) % 65536, 0);
    }
}
