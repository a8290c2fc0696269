//! Linux capabilities: the five sets of `process.capabilities` as bit masks, and the
//! system calls that give them to the container's process.
//!
//! The order matters and follows runc: the bounding set is cut while the process still
//! has `CAP_SETPCAP`; `PR_SET_KEEPCAPS` keeps the permitted set across the switch to a
//! non-root uid; `capset` then sets effective, permitted and inheritable; the ambient
//! set is raised last, as each ambient capability must already be permitted and
//! inheritable.

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::error::{Error, Result, SysContext};

/// A capability's number in the kernel's masks.
pub fn number(cap: Capability) -> u32 {
    use Capability as C;
    match cap {
        C::Chown => 0,
        C::DacOverride => 1,
        C::DacReadSearch => 2,
        C::Fowner => 3,
        C::Fsetid => 4,
        C::Kill => 5,
        C::Setgid => 6,
        C::Setuid => 7,
        C::Setpcap => 8,
        C::LinuxImmutable => 9,
        C::NetBindService => 10,
        C::NetBroadcast => 11,
        C::NetAdmin => 12,
        C::NetRaw => 13,
        C::IpcLock => 14,
        C::IpcOwner => 15,
        C::SysModule => 16,
        C::SysRawio => 17,
        C::SysChroot => 18,
        C::SysPtrace => 19,
        C::SysPacct => 20,
        C::SysAdmin => 21,
        C::SysBoot => 22,
        C::SysNice => 23,
        C::SysResource => 24,
        C::SysTime => 25,
        C::SysTtyConfig => 26,
        C::Mknod => 27,
        C::Lease => 28,
        C::AuditWrite => 29,
        C::AuditControl => 30,
        C::Setfcap => 31,
        C::MacOverride => 32,
        C::MacAdmin => 33,
        C::Syslog => 34,
        C::WakeAlarm => 35,
        C::BlockSuspend => 36,
        C::AuditRead => 37,
        C::Perfmon => 38,
        C::Bpf => 39,
        C::CheckpointRestore => 40,
    }
}

/// Parses a capability name as the spec and Docker's flags write it: `CAP_CHOWN` or
/// `CHOWN`, any case.
pub fn parse(name: &str) -> Result<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        Error::InvalidSpec(format!(
            "unknown capability {name:?}: use a name from capabilities(7), e.g. CAP_CHOWN"
        ))
    })
}

/// Every capability this runtime knows, lowest number first.
pub fn all() -> Vec<Capability> {
    let mut caps: Vec<Capability> = ALL_NAMES
        .iter()
        .filter_map(|name| parse(name).ok())
        .collect();
    caps.sort_by_key(|c| number(*c));
    caps
}

const ALL_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The highest capability number the running kernel knows (`cap_last_cap`).
pub fn last_cap() -> Result<u32> {
    let path = "/proc/sys/kernel/cap_last_cap";
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Setup(format!("unexpected {path}: {text:?}")))
}

/// The bounding set of the calling process, as a mask: the capabilities it can give.
pub fn current_bounding() -> Result<u64> {
    own_set("CapBnd")
}

/// The effective set of the calling process, as a mask: what it may do itself.
pub fn current_effective() -> Result<u64> {
    own_set("CapEff")
}

/// Makes every permitted capability effective again in the calling thread: a
/// switch of the filesystem uid away from 0 (`setfsuid`) clears the file
/// capabilities (`CAP_CHOWN`, `CAP_DAC_OVERRIDE`, …) from the effective set.
pub fn raise_effective() -> Result<()> {
    let permitted = own_set("CapPrm")?;
    capset(permitted, permitted, own_set("CapInh")?)
}

/// The set `field` (`CapBnd`, `CapEff`, …) of `/proc/self/status` as a mask.
fn own_set(field: &str) -> Result<u64> {
    let path = "/proc/self/status";
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| Error::Setup(format!("no {field} line in {path}")))
}

/// The five capability sets as masks (bit n = capability n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
    /// Highest capability number of the kernel: the bounding set is cut up to here.
    pub last_cap: u32,
}

impl CapSets {
    /// The masks of `process.capabilities`. As with runc, an absent set (or no
    /// `capabilities` at all) is empty, and capabilities the running kernel does not
    /// know are left out with a warning.
    pub fn from_spec(caps: Option<&LinuxCapabilities>, last_cap: u32) -> CapSets {
        let mask = |set: Option<&Capabilities>| -> u64 {
            let mut mask = 0u64;
            for cap in set.into_iter().flatten() {
                let n = number(*cap);
                if n > last_cap {
                    tracing::warn!("capability {cap} is not known to this kernel: ignored");
                    continue;
                }
                mask |= 1 << n;
            }
            mask
        };
        CapSets {
            bounding: mask(caps.and_then(|c| c.bounding().as_ref())),
            effective: mask(caps.and_then(|c| c.effective().as_ref())),
            permitted: mask(caps.and_then(|c| c.permitted().as_ref())),
            inheritable: mask(caps.and_then(|c| c.inheritable().as_ref())),
            ambient: mask(caps.and_then(|c| c.ambient().as_ref())),
            last_cap,
        }
    }

    /// True when the effective set holds `cap`.
    pub fn effective_has(&self, cap: Capability) -> bool {
        self.effective & (1 << number(cap)) != 0
    }

    /// Drops every capability outside the bounding set; needs `CAP_SETPCAP`, so it runs
    /// before the process gives up its privileges.
    pub fn drop_bounding(&self) -> Result<()> {
        for n in 0..=self.last_cap.min(63) {
            if self.bounding & (1 << n) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments has no memory effects.
            let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) };
            match Errno::result(ret) {
                Ok(_) => {}
                // Not supported by this kernel after all: nothing to drop.
                Err(Errno::EINVAL) => {}
                Err(e) => {
                    return Err(Error::sys(
                        format!("dropping capability {n} from the bounding set"),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    /// Sets the effective, permitted and inheritable sets, then the ambient set. Runs
    /// after the uid change, which [`keep_caps`] made keep the permitted set.
    pub fn apply(&self) -> Result<()> {
        capset(self.effective, self.permitted, self.inheritable)?;
        // SAFETY: prctl with integer arguments has no memory effects.
        let ret = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        Errno::result(ret).ctx(|| "clearing the ambient capabilities".into())?;
        // The kernel only raises an ambient capability that is also permitted and
        // inheritable. runc ignores the others (its default spec lists ambient ones
        // without an inheritable set), and so do we.
        let raisable = self.ambient & self.permitted & self.inheritable;
        for n in 0..=self.last_cap.min(63) {
            if raisable & (1 << n) == 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments has no memory effects.
            let ret = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    n as libc::c_ulong,
                    0,
                    0,
                )
            };
            Errno::result(ret).ctx(|| format!("raising ambient capability {n}"))?;
        }
        Ok(())
    }
}

/// Sets or clears `PR_SET_KEEPCAPS`: with it, a switch from uid 0 to another uid keeps
/// the permitted capabilities (the effective set is still cleared).
pub fn keep_caps(on: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments has no memory effects.
    let ret = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(on), 0, 0, 0) };
    Errno::result(ret)
        .map(drop)
        .ctx(|| "prctl(PR_SET_KEEPCAPS)".into())
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit masks as two 32-bit halves.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let half = |mask: u64, i: usize| (mask >> (32 * i)) as u32;
    let data: [CapData; 2] = std::array::from_fn(|i| CapData {
        effective: half(effective, i),
        permitted: half(permitted, i),
        inheritable: half(inheritable, i),
    });
    // SAFETY: header and data are valid for the call; version 3 reads two data structs.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    Errno::result(ret).map(drop).ctx(|| {
        format!(
            "capset (effective {effective:#x}, permitted {permitted:#x}, inheritable \
             {inheritable:#x}; effective must be within permitted, inheritable within the \
             bounding set)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_or_without_prefix() {
        assert_eq!(parse("CAP_SYS_ADMIN").expect("cap"), Capability::SysAdmin);
        assert_eq!(parse("net_raw").expect("cap"), Capability::NetRaw);
        let err = parse("CAP_NO_SUCH").unwrap_err();
        assert!(err.to_string().contains("unknown capability"), "{err}");
    }

    #[test]
    fn every_known_capability_has_its_own_number() {
        let all = all();
        assert_eq!(all.len(), ALL_NAMES.len());
        for (i, cap) in all.iter().enumerate() {
            assert_eq!(number(*cap) as usize, i, "{cap}");
        }
    }

    #[test]
    fn sets_become_masks_and_unknown_caps_are_dropped() {
        // Sets absent from the JSON are empty (the builder would fill in defaults).
        let caps: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL","CAP_CHECKPOINT_RESTORE"],"effective":["CHOWN","KILL"]}"#,
        )
        .expect("caps");
        let sets = CapSets::from_spec(Some(&caps), 39);
        assert_eq!(sets.bounding, 0b10_0001);
        assert_eq!(sets.effective, 0b10_0001);
        assert_eq!(sets.permitted, 0);
        assert_eq!(CapSets::from_spec(None, 40).bounding, 0);
    }
}
