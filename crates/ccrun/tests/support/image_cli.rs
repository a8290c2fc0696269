//! Runs the built `ccrun` binary against a private store and credentials directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A private image store root and Docker config directory, removed on drop.
pub struct Env {
    /// Temp dir holding both.
    pub dir: tempfile::TempDir,
    /// The owner of this environment's own subordinate ids (`CCRUN_USERNS_USER`),
    /// whose lines the drop removes.
    subid_owner: String,
}

impl Env {
    /// A fresh environment.
    pub fn new() -> Env {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            subid_owner: format!("ccrun-e{}-{n}", std::process::id()),
        }
    }

    /// The `--root` given to ccrun.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `$DOCKER_CONFIG`, so tests never read or write the real ~/.docker.
    pub fn docker_config(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    /// The `--state` given to ccrun (runtime state of running containers).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A `ccrun` command with `--root`, `--state` and a private `DOCKER_CONFIG`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ccrun"));
        c.arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .args(args)
            .env("DOCKER_CONFIG", self.docker_config())
            .env_remove("CCRUN_ROOT")
            .env("CCRUN_USERNS_USER", &self.subid_owner)
            .env_remove("CCRUN_INSECURE_REGISTRIES")
            .env("CCRUN_LOG", "warn")
            // A bridge network is only ever made inside namespaces the network tests create.
            .env("CCRUN_NETWORK", "host")
            .stdin(Stdio::null());
        c
    }

    /// Runs ccrun and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run ccrun")
    }

    /// Runs ccrun, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ccrun {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs ccrun, asserting it fails with 125; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "ccrun {args:?} should fail:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Spawns ccrun in the background.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ccrun")
    }

    /// The image store directory.
    pub fn store(&self) -> PathBuf {
        self.root().join("image")
    }

    /// Names in a store subdirectory.
    pub fn list(&self, sub: &str) -> Vec<String> {
        list(&self.store().join(sub))
    }
}

/// Sorted names in a directory (empty if it does not exist).
pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Drop for Env {
    fn drop(&mut self) {
        for file in [ccrun_runtime::subid::SUBUID, ccrun_runtime::subid::SUBGID] {
            let _ = ccrun_runtime::subid::remove_owner(Path::new(file), &self.subid_owner);
        }
    }
}
