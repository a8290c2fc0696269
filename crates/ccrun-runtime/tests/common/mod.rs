//! Shared by the runtime core's test programs (`mod common;`): what the tests of a
//! program share, a container guard, spec pieces, a pipe to capture a container's
//! output, and the leftover check run after all tests.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use ccrun_runtime::{signals, Container, CreateOptions};
use ccrun_testkit::{Rootfs, Tally};
use nix::fcntl::OFlag;
use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, Mount, MountBuilder, Spec};

/// What a program's tests share: the busybox rootfs, a state root and a counter that
/// makes container ids unique. Each program adds its own methods (`impl Env`).
pub struct Env {
    pub rootfs: Rootfs,
    pub state: tempfile::TempDir,
    pub n: usize,
    /// `NAME-PID-`, the start of every container id (and so cgroup name) of this run.
    pub id_prefix: String,
}

impl Env {
    /// A fresh busybox rootfs and an empty state root; container ids `name-PID-N`.
    pub fn busybox(name: &str) -> Env {
        Env {
            rootfs: Rootfs::busybox(),
            state: tempfile::tempdir().expect("state"),
            n: 0,
            id_prefix: format!("{name}-{}-", std::process::id()),
        }
    }

    /// Options for a new container with the next id: `spec`, the rootfs as bundle, the
    /// state root, everything else off.
    pub fn opts(&mut self, spec: Spec) -> CreateOptions {
        self.n += 1;
        CreateOptions {
            id: format!("{}{}", self.id_prefix, self.n),
            bundle: self.rootfs.path().to_path_buf(),
            spec,
            state_root: self.state.path().to_path_buf(),
            minimal_init: false,
            no_pivot: false,
            stdio: None,
            preserve_fds: 0,
        }
    }
}

/// Deletes its container in every outcome, test failures included.
pub struct Guard(pub Option<Container>);

impl Guard {
    /// The container.
    pub fn get(&self) -> &Container {
        self.0.as_ref().expect("container")
    }

    /// The container, to start it.
    pub fn get_mut(&mut self) -> &mut Container {
        self.0.as_mut().expect("container")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let pid = c.pid();
            if let Err(e) = c.delete(true) {
                eprintln!("deleting container: {e}");
            }
            // The init is our child; a stopped one has been reaped already.
            let _ = signals::wait_for(pid);
        }
    }
}

/// A spec mount of `src` (of type `typ`) at `dest` with `opts`.
pub fn mount(dest: &str, typ: &str, src: &str, opts: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(src)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("mount")
}

/// A uid/gid mapping of `size` ids from `container` to `host`.
pub fn id_map(container: u32, host: u32, size: u32) -> LinuxIdMapping {
    LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()
        .expect("mapping")
}

/// A close-on-exec pipe (read end, write end) to collect a container's output.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe")
}

/// Everything written to the pipe until its last writer closed it.
pub fn read_all(fd: OwnedFd) -> String {
    let mut out = String::new();
    File::from(fd)
        .read_to_string(&mut out)
        .expect("read output");
    out
}

/// Our containers' cgroup directories still present: those named `prefix…` under
/// each hierarchy's `ccrun` parent.
pub fn leftover_cgroups(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hierarchies.flatten() {
        let Ok(entries) = std::fs::read_dir(h.path().join("ccrun")) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

/// Counts one more failure when the tests left cgroups named `cgroup_prefix…` or
/// anything in `state_root` behind, so a leak fails the run even if each test passed.
pub fn check_leftovers(tally: &mut Tally, cgroup_prefix: &str, state_root: &Path) {
    let leftovers = leftover_cgroups(cgroup_prefix);
    let states = ccrun_testkit::container_state_dirs(state_root);
    if !leftovers.is_empty() || !states.is_empty() {
        println!("leftovers: cgroups {leftovers:?}, state {states:?}");
        tally.failed += 1;
    }
}
