//! Throw-away network namespaces and child processes for the integration
//! tests. Everything is removed on drop, also when a test panics.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use ccrun_net::{in_netns, NetworkConfig, Subnet};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace (`ip netns add ccrun-t-<pid>-<n>`), deleted on
/// drop.
pub struct TestNs {
    pub name: String,
    fd: OwnedFd,
}

impl TestNs {
    /// Creates the namespace and brings its `lo` up.
    pub fn new() -> TestNs {
        ccrun_testkit::require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ccrun-t-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = TestNs {
            fd: ccrun_net::netns::open(format!("/run/netns/{name}")).expect("open netns"),
            name,
        };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Runs `f` on this thread inside the namespace.
    pub fn enter<T>(&self, f: impl FnOnce() -> ccrun_net::Result<T>) -> ccrun_net::Result<T> {
        in_netns(self.fd(), f)
    }

    /// `ip netns exec <ns> args...`
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// Like `exec`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Our nftables table as `nft list` prints it (empty if absent).
    pub fn nft_table(&self) -> String {
        let out = self.exec(&["nft", "list", "table", "ip", "ccrun"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether link `name` exists here.
    pub fn has_link(&self, name: &str) -> bool {
        self.exec(&["ip", "link", "show", "dev", name])
            .status
            .success()
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !matches!(out, Ok(ref o) if o.status.success()) {
            eprintln!("warning: could not delete netns {}: {out:?}", self.name);
        }
    }
}

/// A process in a new network namespace (`unshare --net sleep`), killed and
/// reaped on drop.
pub struct NsProcess {
    child: Child,
}

impl NsProcess {
    pub fn spawn() -> NsProcess {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let proc = NsProcess { child };
        // Wait until unshare has exec'd sleep in the new namespace.
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        for _ in 0..200 {
            let theirs = std::fs::read_link(format!("/proc/{}/ns/net", proc.pid()));
            if matches!(theirs, Ok(ref t) if *t != own) {
                return proc;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("unshare --net did not enter a new network namespace");
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test network on `10.<octet>.0.0/24` with bridge `ccrun-tbr`.
pub fn config(octet: u8) -> NetworkConfig {
    NetworkConfig {
        name: "test".to_string(),
        bridge: "ccrun-tbr".to_string(),
        subnet: Subnet::new(Ipv4Addr::new(10, octet, 0, 0), 24).expect("subnet"),
        gateway: Ipv4Addr::new(10, octet, 0, 1),
        mtu: 0,
    }
}

/// Number of address files in an IPAM directory.
pub fn allocations(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
