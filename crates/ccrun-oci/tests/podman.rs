//! podman (Debian's 4.3, with conmon) driving ccrun-oci through `--runtime`, and the same
//! commands through crun for comparison: `run --rm`, exit statuses, `-d` + `exec` +
//! `stop` + `rm`, `-it` under a pty the test owns, and the rlimit error.
//!
//! podman gets storage, run root, configuration and a cgroup parent of its own under
//! a temp dir (vfs storage, cgroupfs, file events, no network), so it writes no global
//! state. Quirks of this host, handled here:
//! - podman 4.3 as root asks for RLIMIT_NOFILE/NPROC 1048576 by default; root here lacks
//!   CAP_SYS_RESOURCE and has lower hard limits, so both runtimes would fail. The test
//!   configuration sets `default_ulimits = []` (the container inherits the limits).
//! - Debian's crun refuses the hybrid cgroup layout: it runs through a wrapper in a
//!   private mount namespace with /sys/fs/cgroup/unified unmounted, where it leaves
//!   directories in the bare unified directory (the host's hidden tmpfs); cleanup
//!   removes exactly those under this test's cgroup parent.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ccrun_testkit::pty::OnPty;

/// A private podman: its dirs, configuration and cgroup parent; everything removed on drop.
struct Podman {
    dir: tempfile::TempDir,
    cgroup_parent: String,
    image: String,
}

/// Which runtime podman is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    CcrunOci,
    Crun,
}

impl Podman {
    fn new(name: &str) -> Podman {
        ccrun_testkit::require_root();
        let dir = tempfile::Builder::new()
            .prefix("ccrun-oci-podman-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        ccrun_testkit::podman::write_private_config(d);
        let crun = d.join("crun.sh");
        std::fs::write(
            &crun,
            "#!/bin/sh\nexec unshare -m --propagation private sh -c \
             'if mountpoint -q /sys/fs/cgroup/unified; then umount -l /sys/fs/cgroup/unified; fi; \
             exec crun \"$@\"' crun \"$@\"\n",
        )
        .expect("crun wrapper");
        std::fs::set_permissions(&crun, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let podman = Podman {
            dir,
            cgroup_parent: format!("/ccrun-oci-podman-{}-{name}", std::process::id()),
            image: "localhost/ccrun-oci-test:1".into(),
        };
        podman.import_image();
        podman
    }

    /// A busybox image: `podman import` of a tar of the testkit's rootfs.
    fn import_image(&self) {
        let rootfs = ccrun_testkit::Rootfs::busybox();
        let tar = self.dir.path().join("image.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(rootfs.path())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "tar");
        let out = self
            .command(Runtime::CcrunOci, &["import"])
            .arg(&tar)
            .arg(&self.image)
            .output()
            .expect("podman import");
        assert!(out.status.success(), "podman import: {out:?}");
    }

    fn runtime_path(&self, runtime: Runtime) -> PathBuf {
        match runtime {
            Runtime::CcrunOci => support::bin(),
            Runtime::Crun => self.dir.path().join("crun.sh"),
        }
    }

    fn command(&self, runtime: Runtime, args: &[&str]) -> Command {
        let d = self.dir.path();
        let state = d.join(match runtime {
            Runtime::CcrunOci => "state-ccrun-oci",
            Runtime::Crun => "state-crun",
        });
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(self.runtime_path(runtime))
            .arg("--runtime-flag")
            .arg(format!("root={}", state.display()))
            .args(args);
        cmd
    }

    fn run(&self, runtime: Runtime, args: &[&str]) -> Output {
        self.command(runtime, args)
            .stdin(Stdio::null())
            .output()
            .expect("podman")
    }

    fn ok(&self, runtime: Runtime, args: &[&str]) -> String {
        let out = self.run(runtime, args);
        assert!(
            out.status.success(),
            "podman ({runtime:?}) {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `podman run` arguments up to the image: no network, this test's cgroup parent.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "run",
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup_parent,
        ];
        args.extend_from_slice(extra);
        args.push(&self.image);
        args
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for runtime in [Runtime::CcrunOci, Runtime::Crun] {
            let _ = self.run(runtime, &["rm", "--all", "--force", "--time", "0"]);
        }
        // podman mounts a tmpfs for each container's /dev/shm under its run root; rm
        // unmounts it, but make sure nothing is left mounted under the temp dir.
        support::unmount_under(self.dir.path());
        remove_cgroup_parent(&self.cgroup_parent);
    }
}

/// Removes the cgroups under `parent` in every hierarchy (conmon's `<parent>/conmon`,
/// the containers'), and the directories crun left for them in the bare unified
/// directory, which only a namespace without the cgroup2 mount sees.
fn remove_cgroup_parent(parent: &str) {
    let rel = parent.trim_start_matches('/');
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for entry in entries.flatten() {
            let top = entry.path().join(rel);
            if top.is_dir() && !entry.path().is_symlink() {
                remove_tree(&top);
            }
        }
    }
    let script = format!(
        "if mountpoint -q /sys/fs/cgroup/unified; then umount -l /sys/fs/cgroup/unified; fi; \
         d=/sys/fs/cgroup/unified/{rel}; \
         if [ -d \"$d\" ] && [ \"$(stat -f -c %T \"$d\")\" = tmpfs ]; then rm -rf --one-file-system \"$d\"; fi"
    );
    let _ = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .status();
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn podman_run_rm_prints_and_returns_the_status_like_crun() {
    let podman = Podman::new("run");
    for runtime in [Runtime::CcrunOci, Runtime::Crun] {
        let mut args = podman.run_args(&["--rm"]);
        args.extend(["echo", "hi"]);
        let out = podman.run(runtime, &args);
        assert!(out.status.success(), "{runtime:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi\n", "{runtime:?}");

        let mut args = podman.run_args(&["--rm"]);
        args.extend(["sh", "-c", "cat /rootfile; echo err >&2; exit 3"]);
        let out = podman.run(runtime, &args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{runtime:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "owned by root\n", "{runtime:?}");
        assert_eq!(text(&out.stderr), "err\n", "{runtime:?}");
    }
}

#[test]
fn podman_detached_exec_stop_rm_like_crun() {
    let podman = Podman::new("detached");
    let mut seen = Vec::new();
    for runtime in [Runtime::CcrunOci, Runtime::Crun] {
        let mut args = podman.run_args(&["-d", "--hostname", "box"]);
        args.extend(["sleep", "1000"]);
        let id = podman.ok(runtime, &args).trim().to_string();
        let status = podman.ok(runtime, &["inspect", "--format", "{{.State.Status}}", &id]);
        assert_eq!(status.trim(), "running", "{runtime:?}");

        let out = podman.run(
            runtime,
            &[
                "exec",
                &id,
                "sh",
                "-c",
                "echo $(hostname) $(cat /proc/1/cmdline | tr '\\0' ' '); exit 4",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(4),
            "{runtime:?}: {}",
            text(&out.stderr)
        );
        seen.push(text(&out.stdout));

        podman.ok(runtime, &["pause", &id]);
        let status = podman.ok(runtime, &["inspect", "--format", "{{.State.Status}}", &id]);
        assert_eq!(status.trim(), "paused", "{runtime:?}");
        podman.ok(runtime, &["unpause", &id]);

        // sleep as PID 1 ignores SIGTERM: stop escalates to SIGKILL after the timeout.
        podman.ok(runtime, &["stop", "--time", "1", &id]);
        let status = podman.ok(
            runtime,
            &[
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                &id,
            ],
        );
        assert_eq!(status.trim(), "exited 137", "{runtime:?}");
        podman.ok(runtime, &["rm", &id]);
        let out = podman.run(runtime, &["inspect", &id]);
        assert!(!out.status.success(), "{runtime:?}: still there after rm");
    }
    assert_eq!(seen[0], "box sleep 1000\n");
    assert_eq!(seen[0], seen[1], "ccrun-oci and crun differ");
}

#[test]
fn podman_interactive_terminal_like_crun() {
    let podman = Podman::new("tty");
    for runtime in [Runtime::CcrunOci, Runtime::Crun] {
        let mut args = podman.run_args(&["-it", "--rm"]);
        args.extend([
            "sh",
            "-c",
            "tty; stty size; read line; echo got $line; exit 5",
        ]);
        let pty = OnPty::spawn(podman.command(runtime, &args), 30, 100);
        pty.wait_for("30 100");
        pty.write(b"hello\r");
        pty.wait_for("got hello");
        let output = pty.text();
        assert_eq!(pty.exit_code(), Some(5), "{runtime:?}: {output:?}");
        assert!(output.contains("/dev/pts/0"), "{runtime:?}: {output:?}");
    }
}

#[test]
fn podman_reports_the_missing_cap_sys_resource_clearly() {
    let podman = Podman::new("rlimit");
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:\t"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    // CAP_SYS_RESOURCE is capability 24.
    let has_sys_resource = cap_eff & (1 << 24) != 0;
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit")
        .1;
    // One more than we have: only CAP_SYS_RESOURCE allows it.
    let ulimit = format!("nofile={0}:{0}", hard + 1);
    let mut args = podman.run_args(&["--rm", "--ulimit", &ulimit]);
    args.extend(["true"]);
    let out = podman.run(Runtime::CcrunOci, &args);
    if has_sys_resource {
        assert!(out.status.success(), "{}", text(&out.stderr));
    } else {
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("RLIMIT_NOFILE") && err.contains("CAP_SYS_RESOURCE"),
            "{err}"
        );
    }
}
