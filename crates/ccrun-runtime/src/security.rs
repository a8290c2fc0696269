//! The security settings of a container's process, planned by the caller before it
//! forks and applied by the process just before it execs: personality, AppArmor or
//! SELinux exec label, `no_new_privs`, capabilities, the uid/gid switch, and seccomp.
//!
//! The order follows runc. The seccomp filter is loaded as late as possible (right
//! before `execve`) so it does not constrain the runtime's own setup; but loading a
//! filter without `no_new_privs` needs `CAP_SYS_ADMIN`, so when the process will have
//! neither, the filter is loaded before the capabilities are dropped.
//!
//! With `SCMP_ACT_NOTIFY`, the caller connects to the seccomp agent's `listenerPath`
//! before it forks ([`Plan::connect_listener`]); right after loading the filter the
//! process sends the agent the spec's container process state with the filter's
//! notify fd (`SCM_RIGHTS`), once, and closes the connection. A container's init loads
//! such a filter during create ([`Plan::load_for_agent`]), as runc does, so the agent
//! has the fd before the container is started.

use std::cell::Cell;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use oci_spec::runtime::{
    Capability, Linux, LinuxPersonality, LinuxPersonalityDomain, LinuxSeccomp, Process,
};
use serde::{Deserialize, Serialize};

use crate::caps::{self, CapSets};
use crate::error::{Error, Result, SysContext};
use crate::process;
use crate::seccomp::{self, Filter};

/// The parts of `linux` that processes exec'd into the container share with its init
/// (saved in the state directory for [`crate::Container::exec`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerSecurity {
    /// `linux.seccomp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<LinuxSeccomp>,
    /// `linux.personality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<LinuxPersonality>,
}

/// File in the state directory holding a container's [`ContainerSecurity`].
pub const SECURITY_FILE: &str = "security.json";

impl ContainerSecurity {
    /// Takes the shared settings from the spec's `linux` section and checks the ones
    /// that only the container as a whole has (`mountLabel`).
    pub fn from_linux(linux: Option<&Linux>) -> Result<ContainerSecurity> {
        if let Some(label) = linux.and_then(|l| l.mount_label().as_deref()) {
            if !label.is_empty() {
                if selinux_enabled() {
                    return Err(Error::InvalidSpec(format!(
                        "linux.mountLabel {label:?}: SELinux mount labels are not supported by ccrun yet"
                    )));
                }
                return Err(Error::InvalidSpec(format!(
                    "linux.mountLabel {label:?} is set but SELinux is not enabled on this host"
                )));
            }
        }
        Ok(ContainerSecurity {
            seccomp: linux.and_then(|l| l.seccomp().clone()),
            personality: linux.and_then(|l| l.personality().clone()),
        })
    }

    /// Saves these settings in `state_dir` (nothing when there are none).
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        if self.seccomp.is_none() && self.personality.is_none() {
            return Ok(());
        }
        let path = state_dir.join(SECURITY_FILE);
        let json = serde_json::to_vec(self).map_err(|e| Error::State {
            path: path.clone(),
            source: e,
        })?;
        std::fs::write(&path, json).map_err(|e| Error::io("writing", &path, e))
    }

    /// Loads the settings saved in `state_dir` (none when the file is missing).
    pub fn load(state_dir: &Path) -> Result<ContainerSecurity> {
        let path = state_dir.join(SECURITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::State { path, source: e })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ContainerSecurity::default()),
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }
}

/// A label to write to `/proc/self/attr/...` so the kernel applies it at `execve`.
#[derive(Debug, Clone)]
struct ExecLabel {
    /// Which LSM, for messages.
    lsm: &'static str,
    /// The attribute file.
    path: &'static str,
    /// What is written to it.
    value: String,
}

/// The connection to a seccomp agent and what to tell it.
#[derive(Debug)]
struct Listener {
    socket: OwnedFd,
    /// The container process state without its `pid`, filled in when sent.
    message: serde_json::Value,
}

/// Everything [`Plan::take_identity`] and [`Plan::finish`] do, decided up front.
#[derive(Debug)]
pub struct Plan {
    /// The seccomp agent's socket path, when the filter notifies one.
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    listener: Option<Listener>,
    /// The process's pid on the host, for the agent (see [`Plan::note_host_pid`]).
    host_pid: Cell<i32>,
    caps: CapSets,
    no_new_privs: bool,
    seccomp: Option<Filter>,
    /// Load the filter before dropping capabilities: the process ends up without
    /// `no_new_privs` and without `CAP_SYS_ADMIN`.
    seccomp_early: bool,
    /// The filter is loaded already (for a seccomp agent, see [`Plan::load_for_agent`]).
    seccomp_loaded: Cell<bool>,
    personality: Option<libc::c_ulong>,
    labels: Vec<ExecLabel>,
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// The `personality(2)` value of `linux.personality`.
pub fn personality_value(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    let mut value: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    for flag in p.flags().iter().flatten() {
        value |= match flag.as_str() {
            "UNAME26" => 0x002_0000,
            "ADDR_NO_RANDOMIZE" => 0x004_0000,
            "FDPIC_FUNCPTRS" => 0x008_0000,
            "MMAP_PAGE_ZERO" => 0x010_0000,
            "ADDR_COMPAT_LAYOUT" => 0x020_0000,
            "READ_IMPLIES_EXEC" => 0x040_0000,
            "ADDR_LIMIT_32BIT" => 0x080_0000,
            "SHORT_INODE" => 0x100_0000,
            "WHOLE_SECONDS" => 0x200_0000,
            "STICKY_TIMEOUTS" => 0x400_0000,
            "ADDR_LIMIT_3GB" => 0x800_0000,
            other => {
                return Err(Error::InvalidSpec(format!(
                    "unknown linux.personality flag {other:?}"
                )))
            }
        };
    }
    Ok(value)
}

impl Plan {
    /// Plans the security of `process` in a container with `shared` settings. Fails on
    /// what cannot be honoured here: an unknown name, a seccomp profile libseccomp
    /// rejects, an AppArmor profile or SELinux label on a host without them. Compiled
    /// seccomp programs are cached under `state_root` (see [`seccomp`]).
    pub fn new(process: &Process, shared: &ContainerSecurity, state_root: &Path) -> Result<Plan> {
        let last_cap = caps::last_cap()?;
        let caps = CapSets::from_spec(process.capabilities().as_ref(), last_cap);
        let no_new_privs = process.no_new_privileges() == Some(true);
        let cache = seccomp::cache_dir(state_root);
        let seccomp = shared
            .seccomp
            .as_ref()
            .map(|spec| seccomp::compile(spec, Some(&cache)))
            .transpose()?;
        let seccomp_early =
            seccomp.is_some() && !no_new_privs && !caps.effective_has(Capability::SysAdmin);
        let personality = shared
            .personality
            .as_ref()
            .map(personality_value)
            .transpose()?;
        let mut labels = Vec::new();
        if let Some(profile) = process
            .apparmor_profile()
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            if !apparmor_enabled() {
                return Err(Error::InvalidSpec(format!(
                    "process.apparmorProfile {profile:?} is set but AppArmor is not enabled on this host"
                )));
            }
            let path = if Path::new("/proc/self/attr/apparmor/exec").exists() {
                "/proc/self/attr/apparmor/exec"
            } else {
                "/proc/self/attr/exec"
            };
            labels.push(ExecLabel {
                lsm: "AppArmor profile",
                path,
                value: format!("exec {profile}"),
            });
        }
        if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
            if !selinux_enabled() {
                return Err(Error::InvalidSpec(format!(
                    "process.selinuxLabel {label:?} is set but SELinux is not enabled on this host"
                )));
            }
            labels.push(ExecLabel {
                lsm: "SELinux label",
                path: "/proc/self/attr/exec",
                value: label.to_string(),
            });
        }
        let (listener_path, listener_metadata) = match (&seccomp, &shared.seccomp) {
            (Some(f), Some(spec)) if f.notifies() => (
                spec.listener_path().clone(),
                spec.listener_metadata().clone(),
            ),
            _ => (None, None),
        };
        Ok(Plan {
            listener_path,
            listener_metadata,
            listener: None,
            host_pid: Cell::new(0),
            caps,
            no_new_privs,
            seccomp,
            seccomp_early,
            seccomp_loaded: Cell::new(false),
            personality,
            labels,
        })
    }

    /// The seccomp agent's socket when the filter notifies one: the caller must then
    /// [`Plan::connect_listener`].
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// Connects to the seccomp agent. `state` is the container's state (`ociVersion`,
    /// `id`, `status`, `bundle`, `annotations`); its `pid` is filled in when sent.
    pub fn connect_listener(&mut self, state: serde_json::Value) -> Result<()> {
        let Some(path) = &self.listener_path else {
            return Ok(());
        };
        let stream = std::os::unix::net::UnixStream::connect(path)
            .map_err(|e| Error::io("connecting to the seccomp agent at", path, e))?;
        self.listener = Some(Listener {
            socket: stream.into(),
            message: serde_json::json!({
                "ociVersion": "1.0.2",
                "fds": ["seccompFd"],
                "metadata": self.listener_metadata.clone().unwrap_or_default(),
                "state": state,
            }),
        });
        Ok(())
    }

    /// Records the process's pid as the host sees it, for the seccomp agent. Call it
    /// while the host's `/proc` is still this process's (before `pivot_root`): its
    /// `self` link names the pid in the host's pid namespace.
    pub fn note_host_pid(&self) {
        if self.listener.is_none() {
            return;
        }
        if let Some(pid) = std::fs::read_link("/proc/self")
            .ok()
            .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        {
            self.host_pid.set(pid);
        }
    }

    /// Sets the process's host pid when the caller learnt it another way (an exec'd
    /// process is told by the helper that cloned it).
    pub fn set_host_pid(&self, pid: i32) {
        self.host_pid.set(pid);
    }

    /// True when the filter's notify fd goes to a seccomp agent.
    pub fn has_listener(&self) -> bool {
        self.listener.is_some()
    }

    /// For a container's init whose filter notifies a seccomp agent: loads the filter
    /// now and sends the agent its fd, so the agent has it once `create` returns, as
    /// with runc. Does nothing without an agent.
    pub fn load_for_agent(&self) -> Result<()> {
        match &self.seccomp {
            Some(filter) if self.listener.is_some() => self.load_seccomp(filter),
            _ => Ok(()),
        }
    }

    fn load_seccomp(&self, filter: &Filter) -> Result<()> {
        if self.seccomp_loaded.replace(true) {
            return Ok(());
        }
        filter.load()?;
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        let fd = filter.notify_fd()?;
        let pid = self.host_pid.get();
        let mut message = listener.message.clone();
        message["pid"] = pid.into();
        message["state"]["pid"] = pid.into();
        let bytes = serde_json::to_vec(&message)
            .map_err(|e| Error::Setup(format!("encoding the seccomp agent's message: {e}")))?;
        let fds = [fd];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        nix::sys::socket::sendmsg::<()>(
            listener.socket.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .ctx(|| "sending the seccomp notify fd to the agent".into())?;
        // The container must not keep the notify fd: it could answer its own
        // notifications. libseccomp is not asked for it again.
        // SAFETY: the fd is the filter's listener, which only the agent needs now.
        unsafe { libc::close(fd) };
        // One message per connection: end it now (the fd itself closes at exec).
        nix::sys::socket::shutdown(
            listener.socket.as_raw_fd(),
            nix::sys::socket::Shutdown::Both,
        )
        .ctx(|| "closing the connection to the seccomp agent".into())
    }

    /// Takes the process's identity: personality, exec labels, `no_new_privs`, the
    /// bounding set, uid/gid/groups/umask and the other capability sets (and the
    /// seccomp filter first when it cannot wait, see the module doc).
    pub fn take_identity(&self, process: &Process) -> Result<()> {
        if let Some(value) = self.personality {
            // SAFETY: personality takes an integer and has no memory effects.
            let ret = unsafe { libc::personality(value) };
            Errno::result(ret).ctx(|| format!("personality({value:#x})"))?;
        }
        if !self.labels.is_empty() {
            // /proc/self/attr is closed to a non-dumpable process in a user namespace.
            process::set_dumpable(true)?;
        }
        for label in &self.labels {
            std::fs::write(label.path, &label.value).map_err(|e| {
                Error::Setup(format!(
                    "setting the {} {:?} via {}: {e}",
                    label.lsm, label.value, label.path
                ))
            })?;
        }
        if !self.labels.is_empty() {
            process::set_dumpable(false)?;
        }
        if self.no_new_privs {
            process::set_no_new_privs()?;
        }
        if self.seccomp_early {
            if let Some(filter) = &self.seccomp {
                self.load_seccomp(filter)?;
            }
        }
        self.caps.drop_bounding()?;
        caps::keep_caps(true)?;
        process::set_identity(process)?;
        caps::keep_caps(false)?;
        self.caps.apply()
    }

    /// The last step before `execve`: loads the seccomp filter unless it was loaded
    /// early.
    pub fn finish(&self) -> Result<()> {
        match &self.seccomp {
            Some(filter) if !self.seccomp_early => self.load_seccomp(filter),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personality_values() {
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE"]}"#)
                .expect("personality");
        assert_eq!(personality_value(&p).expect("value"), 0x4_0008);
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX","flags":["BOGUS"]}"#).expect("personality");
        assert!(personality_value(&p).is_err());
    }
}
