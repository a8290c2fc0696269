//! Rootless `ccrun-oci`, as runc supports it: an unprivileged user made for the test
//! (removed afterwards with its home and processes) writes `spec --rootless`, and runs
//! it with `run`, and with `create`/`start`/`exec`/`kill`/`delete`, state kept under its
//! `$XDG_RUNTIME_DIR`. The container's root is the user, and what it writes in the
//! rootfs belongs to the user on the host.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ccrun_testkit::Rootfs;
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An unprivileged user without subordinate ids (runc's rootless spec maps only the
/// user itself), a runtime directory of its own, and a bundle it owns.
struct User {
    name: String,
    uid: u32,
    xdg: tempfile::TempDir,
    bundle: tempfile::TempDir,
}

impl User {
    fn create() -> User {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ccot{}x{n}", std::process::id());
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0"])
            .args(["-K", "SUB_GID_COUNT=0", &name])
            .output()
            .expect("useradd");
        assert!(out.status.success(), "useradd: {}", stderr(&out));
        let id = Command::new("id").args(["-u", &name]).output().expect("id");
        let uid: u32 = stdout(&id).trim().parse().expect("uid");
        let private_dir = |prefix: &str| {
            let dir = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .expect("tempdir");
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).expect("chown");
            dir
        };
        let user = User {
            xdg: private_dir("ccrun-oci-xdg-"),
            bundle: private_dir("ccrun-oci-rootless-"),
            name,
            uid,
        };
        ccrun_testkit::set_mode(user.xdg.path(), 0o700);
        ccrun_testkit::set_mode(user.bundle.path(), 0o755);
        // The user's own copy of a busybox rootfs, as a rootless user has one.
        let rootfs = Rootfs::busybox();
        let copy = Command::new("cp")
            .arg("-a")
            .arg(rootfs.path())
            .arg(user.rootfs())
            .status()
            .expect("cp");
        assert!(copy.success());
        let chown = Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(user.rootfs())
            .status()
            .expect("chown");
        assert!(chown.success());
        user
    }

    fn rootfs(&self) -> PathBuf {
        self.bundle.path().join("rootfs")
    }

    /// ccrun-oci as the user, in the bundle, with a login's clean environment. The
    /// output goes through files: a created container keeps ccrun-oci's stdio open,
    /// so pipes would not see their end before it exits.
    fn oci(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().expect("stdout file");
        let err = tempfile::tempfile().expect("stderr file");
        let read = |mut f: &std::fs::File| {
            use std::io::{Read, Seek};
            let mut bytes = Vec::new();
            f.rewind().expect("rewind");
            f.read_to_end(&mut bytes).expect("read");
            bytes
        };
        let status = Command::new("setpriv")
            .args([
                &format!("--reuid={}", self.name),
                &format!("--regid={}", self.name),
                "--init-groups",
            ])
            .arg(support::bin())
            .args(args)
            .current_dir(self.bundle.path())
            .env_clear()
            .env("HOME", format!("/home/{}", self.name))
            .env("PATH", "/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", self.xdg.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .status()
            .expect("ccrun-oci");
        Output {
            status,
            stdout: read(&out),
            stderr: read(&err),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.oci(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// Rewrites the bundle's config.json through `edit`.
    fn edit_config(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.bundle.path().join("config.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("JSON");
        edit(&mut config);
        std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("JSON")).expect("write");
    }

    fn set_args(&self, args: &[&str]) {
        self.edit_config(|c| {
            c["process"]["terminal"] = false.into();
            c["root"]["readonly"] = false.into();
            c["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        });
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let listed = self.oci(&["list", "-q"]);
        for id in stdout(&listed).lines() {
            let _ = self.oci(&["delete", "--force", id]);
        }
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .output();
    }
}

#[test]
fn an_unprivileged_user_runs_the_rootless_spec() {
    let user = User::create();
    user.ok(&["spec", "--rootless"]);
    user.set_args(&[
        "sh",
        "-c",
        "id -u; hostname; cat /proc/self/uid_map; echo written > /tmp/out",
    ]);
    let out = user.ok(&["run", "rl-run"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"0"), "root in the container: {out}");
    assert_eq!(lines.get(1), Some(&"ccrun-oci"), "{out}");
    let map: Vec<&str> = lines.get(2).expect("uid_map").split_whitespace().collect();
    assert_eq!(map, ["0", &user.uid.to_string(), "1"], "{out}");
    // What the container's root wrote is the user's on the host.
    let written = user.rootfs().join("tmp/out");
    assert_eq!(std::fs::read_to_string(&written).expect("out"), "written\n");
    assert_eq!(std::fs::metadata(&written).expect("stat").uid(), user.uid);
    // Gone after run: nothing listed, its state removed.
    assert_eq!(user.ok(&["list", "-q"]).trim(), "");

    // The lifecycle a manager drives, state under $XDG_RUNTIME_DIR/ccrun-oci.
    user.set_args(&["sleep", "100"]);
    user.ok(&["create", "rl-life"]);
    assert!(
        user.xdg.path().join("ccrun-oci/rl-life").is_dir(),
        "state in $XDG_RUNTIME_DIR/ccrun-oci"
    );
    user.ok(&["start", "rl-life"]);
    let state: Value = serde_json::from_str(&user.ok(&["state", "rl-life"])).expect("JSON");
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let host_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .expect("Uid line");
    assert_eq!(host_uid, user.uid.to_string(), "the init runs as the user");
    let exec = user.ok(&["exec", "rl-life", "sh", "-c", "id -u; cat /tmp/out"]);
    assert_eq!(exec, "0\nwritten\n");
    user.ok(&["kill", "rl-life", "KILL"]);
    support::wait_until("the container stops", || {
        let out = user.oci(&["state", "rl-life"]);
        stdout(&out).contains("\"stopped\"")
    });
    user.ok(&["delete", "rl-life"]);
    assert!(!user.xdg.path().join("ccrun-oci/rl-life").exists());
    // Gone, or a zombie until whoever it was given to reaps it.
    support::wait_until("the init is gone", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit(") ")
                .next()
                .is_some_and(|rest| rest.starts_with('Z'))
        })
    });
}

#[test]
fn rootless_limits_without_a_cgroup_are_refused() {
    let user = User::create();
    user.ok(&["spec", "--rootless"]);
    user.set_args(&["true"]);
    user.edit_config(|c| {
        c["linux"]["resources"] = serde_json::json!({ "memory": { "limit": 67108864 } });
    });
    let out = user.oci(&["run", "rl-limit"]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(err.contains("cgroup"), "{err}");
    assert_eq!(user.ok(&["list", "-q"]).trim(), "");
}
