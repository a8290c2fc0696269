//! Shared test harness: a busybox root filesystem built from Debian's busybox-static,
//! a `ccrun` command with a private state directory, and helpers to watch a running
//! container from the host.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use ccrun_testkit::{require_root, Rootfs};

pub mod net;

/// A `ccrun` invocation with its own state directory and storage root (removed on drop),
/// run in the test's network namespace or in a throw-away one of its own.
pub struct Ccrun {
    state: tempfile::TempDir,
    root: tempfile::TempDir,
    netns: Option<NetNs>,
    /// Extra environment of every command (see [`Ccrun::with_env`]).
    env: Vec<(String, String)>,
    /// The ccrun binary run (see [`Ccrun::with_binary`]).
    binary: std::path::PathBuf,
    /// The owner of this harness's own subordinate ids (`CCRUN_USERNS_USER`), whose
    /// `/etc/subuid` and `/etc/subgid` lines ccrun makes on first use and the drop
    /// removes: tests never leave ids allotted, nor share them with other runs.
    subid_owner: String,
}

/// A network namespace made for one test (`ip netns add`), deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// A fresh namespace with loopback up.
    pub fn new() -> NetNs {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ccrun-t-{}-{n}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name}");
        let ns = NetNs { name };
        let up = ns
            .command("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(up, "lo up in {}", ns.name);
        ns
    }

    /// Its name under /run/netns.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` run inside the namespace (through nsenter, which keeps the mounts,
    /// unlike `ip netns exec`, which remounts /sys without its cgroups).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name))
            .arg(program);
        c
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

impl Ccrun {
    /// A fresh state directory.
    pub fn new() -> Ccrun {
        require_root();
        let state = tempfile::Builder::new()
            .prefix("ccrun-state-")
            .tempdir()
            .expect("state dir");
        let root = tempfile::Builder::new()
            .prefix("ccrun-root-")
            .tempdir()
            .expect("root dir");
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ccrun {
            state,
            root,
            netns: None,
            env: Vec::new(),
            binary: env!("CARGO_BIN_EXE_ccrun").into(),
            subid_owner: format!("ccrun-t{}-{n}", std::process::id()),
        }
    }

    /// Like [`Ccrun::new`], but every command runs in a network namespace of its own,
    /// where ccrun's default bridge network, veths and NAT rules are made.
    pub fn in_netns() -> Ccrun {
        let mut c = Ccrun::new();
        c.netns = Some(NetNs::new());
        c
    }

    /// Sets `key=value` in the environment of every command this runs, cleanup
    /// on drop included.
    pub fn with_env(mut self, key: &str, value: &str) -> Ccrun {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs `binary` (a copy of ccrun, say) instead of the build's ccrun, with the
    /// build's monitor.
    pub fn with_binary(mut self, binary: &Path) -> Ccrun {
        self.binary = binary.to_path_buf();
        let monitor = Path::new(env!("CARGO_BIN_EXE_ccrun")).with_file_name("ccrun-monitor");
        self.with_env("CCRUN_MONITOR", monitor.to_str().expect("utf-8 path"))
    }

    /// The network namespace of [`Ccrun::in_netns`].
    pub fn netns(&self) -> &NetNs {
        self.netns.as_ref().expect("a Ccrun made with in_netns")
    }

    /// The owner of this harness's subordinate ids in `/etc/subuid` and `/etc/subgid`.
    pub fn subid_owner(&self) -> &str {
        &self.subid_owner
    }

    /// The storage root used.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The state root used.
    pub fn state_root(&self) -> &Path {
        self.state.path()
    }

    /// A command with `--state` set.
    pub fn cmd(&self) -> Command {
        self.cmd_with(&self.binary, self.netns.as_ref())
    }

    /// `ccrun <args>` in the test's own network namespace even for a [`Ccrun::in_netns`]:
    /// for `pull` from a test registry on the host's loopback, which the throw-away
    /// namespace cannot reach (as a Docker daemon pulls from its own namespace).
    pub fn ccrun_outside_netns(&self, args: &[&str]) -> Output {
        self.cmd_with(&self.binary, None)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ccrun")
    }

    /// A command running `binary` with this harness's state, root and environment, in
    /// `netns` if given.
    fn cmd_with(&self, binary: &Path, netns: Option<&NetNs>) -> Command {
        let mut c = match netns {
            Some(ns) => {
                let mut c = ns.command(binary.to_str().expect("utf-8 path"));
                c.env_remove("CCRUN_NETWORK");
                c
            }
            None => {
                let mut c = Command::new(binary);
                // Containers share the test's network stack: a bridge network is only
                // ever made inside namespaces the tests create (see in_netns).
                c.env("CCRUN_NETWORK", "host");
                c
            }
        };
        c.env("CCRUN_STATE", self.state.path());
        c.env("CCRUN_ROOT", self.root.path());
        c.env("CCRUN_USERNS_USER", &self.subid_owner);
        c.env_remove("CCRUN_LOG");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs `ccrun <args>` and collects its output.
    pub fn ccrun(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ccrun")
    }

    /// Runs `ccrun run -d --rootfs ROOTFS <args>`, asserts it worked, and returns the
    /// full id it printed.
    pub fn run_detached(&self, rootfs: &Path, args: &[&str]) -> String {
        let rootfs = rootfs.to_str().expect("utf-8 rootfs path");
        let mut all = vec!["run", "-d", "--rootfs", rootfs];
        all.extend_from_slice(args);
        let out = self.ccrun(&all);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let id = stdout(&out);
        assert_eq!(id.len(), 64, "run -d prints the full id: {id:?}");
        id
    }

    /// Starts `count` detached `sleep 100` containers named PREFIX0… all at once and
    /// returns their ids in name order.
    pub fn start_concurrently(&self, rootfs: &Path, count: usize, prefix: &str) -> Vec<String> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|i| {
                    let name = format!("{prefix}{i}");
                    s.spawn(move || self.run_detached(rootfs, &["--name", &name, "sleep", "100"]))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        })
    }

    /// `rm -f` of all `ids` at once, each asserted to succeed.
    pub fn remove_concurrently(&self, ids: &[String]) {
        std::thread::scope(|s| {
            for id in ids {
                s.spawn(move || {
                    let out = self.ccrun(&["rm", "-f", id]);
                    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
                });
            }
        });
    }

    /// The storage root used.
    pub fn store_root(&self) -> &Path {
        self.root.path()
    }

    /// The stored record of container `id` (full id), as JSON.
    pub fn record(&self, id: &str) -> serde_json::Value {
        let path = self
            .root
            .path()
            .join("containers")
            .join(id)
            .join("container.json");
        serde_json::from_slice(&std::fs::read(&path).expect("read record")).expect("parse record")
    }

    /// Runs `ccrun run --rootfs ROOTFS <args>` and collects its output.
    pub fn run(&self, rootfs: &Path, args: &[&str]) -> Output {
        self.cmd()
            .arg("run")
            .arg("--rootfs")
            .arg(rootfs)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ccrun")
    }

    /// Starts `ccrun run` in the background and waits until the container is running.
    pub fn spawn(&self, rootfs: &Path, args: &[&str]) -> Running {
        let child = self
            .cmd()
            .arg("run")
            .arg("--rootfs")
            .arg(rootfs)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ccrun");
        let mut running = Running {
            child: Some(child),
            id: String::new(),
            pid: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((id, pid, status)) = self.only_container() {
                if status == "running" {
                    running.id = id;
                    running.pid = pid;
                    return running;
                }
            }
            if let Some(Ok(Some(status))) = running.child.as_mut().map(|c| c.try_wait()) {
                panic!("ccrun exited early with {status}");
            }
            assert!(Instant::now() < deadline, "container did not start in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// (id, pid, status) of the single container in the state root, if any.
    pub fn only_container(&self) -> Option<(String, i32, String)> {
        let dir = ccrun_testkit::container_state_dirs(self.state.path())
            .into_iter()
            .next()?;
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("state.json")).ok()?).ok()?;
        Some((
            state["id"].as_str()?.to_string(),
            state["pid"].as_i64()? as i32,
            state["status"].as_str()?.to_string(),
        ))
    }

    /// Number of container state directories left.
    pub fn leftover_state(&self) -> usize {
        ccrun_testkit::container_state_dirs(self.state.path()).len()
    }
}

impl Drop for Ccrun {
    fn drop(&mut self) {
        // Containers a failing test left behind: `rm -f` kills them, lets their
        // monitors finish and removes their cgroups, state and files.
        let dir = self.root.path().join("containers");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if id.len() == 64 {
                    // The build's binary: a copy under attack may be broken by now.
                    let _ = self
                        .cmd_with(Path::new(env!("CARGO_BIN_EXE_ccrun")), self.netns.as_ref())
                        .args(["rm", "-f", &id])
                        .stdin(Stdio::null())
                        .output();
                }
            }
        }
        for file in [ccrun_runtime::subid::SUBUID, ccrun_runtime::subid::SUBGID] {
            let _ = ccrun_runtime::subid::remove_owner(Path::new(file), &self.subid_owner);
        }
    }
}

/// A container running in the background; killed on drop.
pub struct Running {
    /// The `ccrun run` process (taken by [`Running::wait`]).
    pub child: Option<Child>,
    /// Container id.
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
}

impl Running {
    /// Waits for ccrun to exit and returns its output.
    pub fn wait(mut self) -> Output {
        let child = self.child.take().expect("ccrun process");
        child.wait_with_output().expect("wait ccrun")
    }

    /// Host pid of the `ccrun run` process.
    pub fn ccrun_pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.pid > 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Polls `f` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// stdout as a trimmed string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// stderr as a trimmed string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// The host's mount table, as text.
pub fn host_mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo")
}

/// The `Uid:` line of a process's status (real, effective, saved, fs).
pub fn proc_uids(pid: i32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line")
        .split_whitespace()
        .map(|v| v.parse().expect("uid"))
        .collect()
}
