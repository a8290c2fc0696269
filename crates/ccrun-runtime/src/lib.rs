//! The ccrun runtime core: turns an OCI runtime spec (`oci_spec::runtime::Spec`) and a
//! root filesystem into an isolated, resource-limited process, following the OCI
//! lifecycle (create → start → state/kill → delete), and runs extra processes in
//! running containers ([`Container::exec`]). Both the `ccrun` engine and the
//! runc-compatible CLI drive containers through [`Container`].

pub mod caps;
pub mod console;
pub mod container;
pub mod copyup;
pub mod devices;
pub mod error;
pub mod exec;
pub mod exeseal;
pub mod fsroot;
pub mod hooks;
pub mod init;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod reaper;
pub mod rootfs;
pub mod rootless;
pub mod sched;
pub mod seccomp;
pub mod security;
pub mod signals;
pub mod spec;
pub mod state;
pub mod subid;
pub mod sync;
pub mod sys;
pub mod sysctl;
pub mod termsize;
pub mod unsupported;
pub mod userns;

pub use container::{default_cgroup_path, Container, CreateOptions, ANNOTATION_ROOTFS_IDMAP};
pub use error::{Error, Result};
pub use exec::{ExecOptions, ExecPlacement, ExecProcess};
pub use signals::{ExitStatus, Forwarder};
pub use state::{State, Status};
