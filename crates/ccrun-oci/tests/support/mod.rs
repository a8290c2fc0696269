//! Shared by the ccrun-oci tests: the binary with a private state root, bundles made
//! from `ccrun-oci spec` output and a busybox rootfs, and cleanup of every container a
//! test created (by `delete --force`, which also removes its cgroup).
#![allow(dead_code)]

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ccrun_testkit::Rootfs;
use serde_json::Value;

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ccrun-oci"))
}

/// A container id unique to this test process and `name`.
pub fn unique_id(name: &str) -> String {
    format!("ocit-{}-{name}", std::process::id())
}

/// ccrun-oci with a private `--root`; deletes (with force) every container it was asked
/// to create, on drop.
pub struct Oci {
    root: tempfile::TempDir,
    created: std::cell::RefCell<Vec<String>>,
    /// The binary run: the build's, or a copy (see [`Oci::with_binary`]).
    binary: PathBuf,
}

impl Oci {
    pub fn new() -> Oci {
        ccrun_testkit::require_root();
        Oci {
            root: tempfile::Builder::new()
                .prefix("ccrun-oci-root-")
                .tempdir()
                .expect("tempdir"),
            created: Default::default(),
            binary: bin(),
        }
    }

    /// Runs `binary` (a copy of ccrun-oci, say) instead of the build's.
    pub fn with_binary(mut self, binary: &Path) -> Oci {
        self.binary = binary.to_path_buf();
        self
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A command with `--root` set; `args` follow.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(self.root.path()).args(args);
        // Remember ids of creating commands for cleanup (the id is the last argument).
        if matches!(args.first(), Some(&"create" | &"run")) {
            if let Some(id) = args.last() {
                self.created.borrow_mut().push(id.to_string());
            }
        }
        cmd
    }

    /// Runs to completion. Output goes through files, not pipes: after `create` or
    /// `run -d` the container's init keeps ccrun-oci's stdio (as under conmon), so a
    /// pipe would not see end of file until the container exits.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().expect("tempfile");
        let err = tempfile::tempfile().expect("tempfile");
        let status = self
            .command(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .status()
            .expect("spawn ccrun-oci");
        Output {
            status,
            stdout: read_all(out),
            stderr: read_all(err),
        }
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ccrun-oci {args:?} failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "ccrun-oci {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("status")
            .to_string()
    }

    /// Waits until the container's status is `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status(id);
            if status == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} stayed {status}, not {want}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        for id in self.created.borrow().iter() {
            let _ = Command::new(&self.binary)
                .arg("--root")
                .arg(self.root.path())
                .args(["delete", "--force", id])
                .output();
        }
    }
}

/// A bundle: a busybox rootfs and the `ccrun-oci spec` config, edited.
pub struct Bundle {
    dir: tempfile::TempDir,
    rootfs: Rootfs,
}

impl Bundle {
    /// `args` as the process, no terminal, a writable rootfs; `edit` changes the rest.
    pub fn new(args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("ccrun-oci-bundle-")
            .tempdir()
            .expect("tempdir");
        let rootfs = Rootfs::busybox();
        let out = Command::new(bin())
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .expect("spec");
        assert!(out.status.success(), "spec: {out:?}");
        let path = dir.path().join("config.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("JSON");
        config["root"]["path"] = rootfs.path().to_string_lossy().into();
        config["root"]["readonly"] = false.into();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        edit(&mut config);
        std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("JSON")).expect("write");
        Bundle { dir, rootfs }
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn rootfs(&self) -> &Path {
        self.rootfs.path()
    }
}

/// The file `name` of the container's cgroup for `controller` (v1: that hierarchy; v2:
/// the unified one), found through /proc/<pid>/cgroup as any tool would.
pub fn cgroup_file(pid: i64, controller: &str, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next(), parts.next(), parts.next());
        let (Some(list), Some(path)) = (list, path) else {
            continue;
        };
        if list.split(',').any(|c| c == controller) {
            let dir = PathBuf::from("/sys/fs/cgroup").join(list.split(',').next().unwrap_or(""));
            // A co-mounted hierarchy (cpu,cpuacct) is reachable under its joint name.
            let dir = if dir.exists() {
                dir
            } else {
                PathBuf::from("/sys/fs/cgroup").join(list)
            };
            return dir.join(path.trim_start_matches('/')).join(name);
        }
    }
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("no cgroup line for the controller");
    PathBuf::from("/sys/fs/cgroup")
        .join(v2.trim_start_matches('/'))
        .join(name)
}

/// Polls `f` until it is true (10 s).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(mut file: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    file.rewind().expect("rewind");
    let mut data = Vec::new();
    file.read_to_end(&mut data).expect("read output");
    data
}

/// Detaches every mount under `dir` (deepest first), left by a client's daemon or
/// container, so the temp dir can be removed.
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Receives one fd sent with SCM_RIGHTS on an accepted connection of `listener`.
pub fn receive_fd(listener: &UnixListener) -> (OwnedFd, Vec<u8>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    use std::os::fd::FromRawFd;
    let (conn, _) = listener.accept().expect("accept");
    let mut name = vec![0u8; 256];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    let len = msg.bytes;
    let fd = msg
        .cmsgs()
        .expect("cmsgs")
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("an fd in the control data");
    name.truncate(len);
    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
    (unsafe { OwnedFd::from_raw_fd(fd) }, name)
}
