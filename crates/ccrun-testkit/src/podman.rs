//! A podman that keeps everything in one directory: storage, run root, events,
//! volumes and network definitions, so a test writes no global podman state.

use std::path::Path;

/// Writes `storage.conf` (vfs, graph and run roots under `dir`) and
/// `containers.conf` (cgroupfs, file events, k8s-file logs, no default ulimits:
/// podman 4.3 as root asks for more than this host allows) into `dir`; point podman
/// at them with `CONTAINERS_STORAGE_CONF` and `CONTAINERS_CONF`.
pub fn write_private_config(dir: &Path) {
    std::fs::create_dir_all(dir.join("networks")).expect("mkdir networks");
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            dir.display()
        ),
    )
    .expect("storage.conf");
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[containers]\nlog_driver = \"k8s-file\"\ndefault_ulimits = []\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{0}/events.log\"\ntmp_dir = \"{0}/tmp\"\n\
             volume_path = \"{0}/volumes\"\n[network]\nnetwork_config_dir = \"{0}/networks\"\n",
            dir.display()
        ),
    )
    .expect("containers.conf");
}

/// A podman with storage (vfs), run root and configuration of its own in a temp dir
/// (see [`write_private_config`]); what it created is removed on drop.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    /// A fresh private podman.
    pub fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("ccrun-podman-")
            .tempdir()
            .expect("tempdir");
        write_private_config(dir.path());
        Podman { dir }
    }

    /// `podman ARGS` with this podman's storage and configuration.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let d = self.dir.path();
        let mut c = std::process::Command::new("podman");
        c.env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args)
            .stdin(std::process::Stdio::null());
        c
    }

    /// Runs `podman ARGS`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The directory everything of this podman is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Only created containers (never started, nothing mounted) and images: removing
        // them and the temp dir leaves nothing.
        let _ = self.command(&["rm", "--all", "--force"]).output();
    }
}
