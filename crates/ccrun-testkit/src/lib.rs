//! Test fixtures shared by ccrun's crates: a busybox root filesystem built from
//! Debian's busybox-static, a root check for tests that need real privileges, a
//! process on a pseudo-terminal ([`pty`]) and a private podman configuration
//! ([`podman`]).

pub mod exe_overwrite;
pub mod podman;
pub mod pty;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fails loudly when not root: tests using this need real namespaces, mounts, cgroups.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root (namespaces, mounts, cgroups)"
    );
}

/// Path of the static busybox the rootfs is built from.
pub fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox not found: install busybox-static")
}

/// Makes the process `cmd` starts die (SIGKILL) with the thread that starts it, so a
/// test run killed from outside leaves no daemon of its (a registry, containerd)
/// running.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it only sets the death signal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// chmod.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A busybox root filesystem in a temp dir (removed on drop): busybox with its applet
/// links, `/etc/passwd` and `/etc/group` (root, and `user` 1000 in group `wheel`), a
/// root-owned marker file `/rootfile`, and a world-writable `/tmp`.
pub struct Rootfs {
    dir: tempfile::TempDir,
}

impl Rootfs {
    /// Builds a fresh rootfs.
    pub fn busybox() -> Rootfs {
        let dir = tempfile::Builder::new()
            .prefix("ccrun-rootfs-")
            .tempdir()
            .expect("tempdir");
        // The user namespace's root must be able to reach the rootfs.
        set_mode(dir.path(), 0o755);
        let root = dir.path();
        for d in [
            "bin",
            "etc",
            "root",
            "tmp",
            "proc",
            "sys",
            "dev",
            "home/user",
        ] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::copy(busybox(), root.join("bin/busybox")).expect("copy busybox");
        // Exec the host's copy: the fresh one may still be open for writing in a child
        // that another test thread is forking right now (ETXTBSY).
        let list = Command::new(busybox())
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                    .expect("applet link");
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nuser:x:1000:\nwheel:x:10:user\n",
        )
        .expect("group");
        std::fs::write(root.join("rootfile"), "owned by root\n").expect("marker");
        set_mode(&root.join("tmp"), 0o1777);
        Rootfs { dir }
    }

    /// The rootfs path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The value of `field` in a `/proc/PID/status` text (e.g. `CapEff`, `Seccomp`),
/// trimmed; panics naming the field when it is missing.
pub fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

/// The container state directories under a runtime state root, sorted: every entry
/// but the dot-named ones, which the runtime shares between containers (its seccomp
/// program cache; container ids never start with a dot). Empty when the root is missing.
pub fn container_state_dirs(state_root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// How a run of [`run_in_process`] went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed (or leftovers found afterwards, counted by the caller).
    pub failed: usize,
}

impl Tally {
    /// Prints libtest's summary line and exits 1 if anything failed. Call it after
    /// dropping what the tests shared: `exit` skips destructors.
    pub fn finish(self) {
        let verdict = if self.failed == 0 { "ok" } else { "FAILED" };
        println!(
            "\ntest result: {verdict}. {} passed; {} failed",
            self.passed, self.failed
        );
        if self.failed > 0 {
            std::process::exit(1);
        }
    }
}

/// A test for [`run_in_process`]: its name and its function.
pub type NamedTest<E> = (&'static str, fn(&mut E));

/// Runs `tests` one after the other in this very process, for tests without the
/// libtest harness (container creation needs a single-threaded process). Arguments
/// that are not flags filter tests by name, as with libtest; a panic fails only its
/// test.
pub fn run_in_process<E>(tests: &[NamedTest<E>], env: &mut E) -> Tally {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut tally = Tally::default();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        // No thread is spawned, so the process stays single-threaded for the next one.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(env))) {
            Ok(()) => {
                println!("test {name} ... ok");
                tally.passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                tally.failed += 1;
            }
        }
    }
    tally
}
