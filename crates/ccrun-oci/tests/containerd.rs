//! containerd (Debian's 1.6, with its containerd-shim-runc-v2) driving ccrun-oci as the
//! runc binary (`ctr run --runc-binary`, the path a Kubernetes RuntimeClass takes): an
//! imported OCI archive image, `run --rm`, a detached task with exec, pause, kill and
//! delete, and a terminal container under a pty the test owns.
//!
//! Each test starts its own containerd with root, state and sockets in a temp dir (the
//! CRI plugin disabled, the native snapshotter), and stops it by PID at the end, also
//! on failure. The shim keeps its sockets in the fixed /run/containerd/s; a
//! /run/containerd the test created is removed again. The tests take turns (a lock),
//! so that removal never races another test's shim.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ccrun_testkit::pty::OnPty;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const IMAGE: &str = "localhost/ccrun-oci-test:1";
const NAMESPACE: &str = "ccrun-oci-test";

/// A private containerd, stopped and cleaned up on drop.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    created_run_dir: bool,
    /// ccrun-oci's path.
    bin: String,
}

impl Containerd {
    fn start() -> Containerd {
        ccrun_testkit::require_root();
        let created_run_dir = !Path::new("/run/containerd").exists();
        let dir = tempfile::Builder::new()
            .prefix("ccrun-oci-containerd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("fifo")).expect("mkdir");
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{0}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{0}/containerd.sock.ttrpc\"\n\
                 [debug]\n  address = \"{0}/debug.sock\"\n\
                 [metrics]\n  address = \"\"\n",
                d.display()
            ),
        )
        .expect("config");
        let log = std::fs::File::create(d.join("containerd.log")).expect("log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let containerd = Containerd {
            dir,
            daemon: Some(daemon),
            created_run_dir,
            bin: support::bin().to_str().expect("utf-8 path").to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                std::fs::read_to_string(containerd.dir.path().join("containerd.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd.import_image();
        containerd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.path("containerd.sock"))
            .args(["--namespace", NAMESPACE])
            .args(args);
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An OCI archive of the busybox rootfs built with umoci (as an image build tool
    /// would), imported with `ctr image import`.
    fn import_image(&self) {
        let rootfs = ccrun_testkit::Rootfs::busybox();
        let layout = self.path("layout");
        let layout_ref = format!("{}:1", layout.display());
        let steps: [Vec<String>; 4] = [
            vec![
                "init".into(),
                "--layout".into(),
                layout.display().to_string(),
            ],
            vec!["new".into(), "--image".into(), layout_ref.clone()],
            vec![
                "insert".into(),
                "--image".into(),
                layout_ref.clone(),
                rootfs.path().display().to_string(),
                "/".into(),
            ],
            vec![
                "config".into(),
                "--image".into(),
                layout_ref,
                "--config.cmd".into(),
                "sh".into(),
            ],
        ];
        for step in steps {
            let out = Command::new("umoci").args(&step).output().expect("umoci");
            assert!(out.status.success(), "umoci {step:?}: {out:?}");
        }
        let archive = self.path("image.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .output()
            .expect("tar");
        assert!(out.status.success(), "tar: {out:?}");
        self.ok(&[
            "image",
            "import",
            "--snapshotter",
            "native",
            "--base-name",
            "localhost/ccrun-oci-test",
            archive.to_str().expect("utf-8"),
        ]);
        let images = self.ok(&["image", "ls", "-q"]);
        assert!(images.lines().any(|l| l == IMAGE), "{images}");
    }

    /// `ctr run` arguments up to the container id: ccrun-oci as the runc binary with a
    /// state root in the temp dir.
    fn run_args<'a>(&'a self, root: &'a str, fifo: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "run",
            "--snapshotter",
            "native",
            "--runc-binary",
            &self.bin,
            "--runc-root",
            root,
            "--fifo-dir",
            fifo,
        ];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args
    }

    fn task_status(&self, id: &str) -> String {
        self.ok(&["task", "ls"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks and containers first, so the shims exit and unmount the rootfs.
        let tasks = self.ctr(&["task", "ls", "-q"]);
        for id in String::from_utf8_lossy(&tasks.stdout).lines() {
            let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
            std::thread::sleep(Duration::from_millis(200));
            let _ = self.ctr(&["task", "delete", "--force", id]);
        }
        let containers = self.ctr(&["container", "ls", "-q"]);
        for id in String::from_utf8_lossy(&containers.stdout).lines() {
            let _ = self.ctr(&["container", "delete", id]);
        }
        if let Some(mut daemon) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(daemon.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = daemon.wait();
        }
        support::unmount_under(self.dir.path());
        if self.created_run_dir {
            // Only empty directories: anything else is not ours to remove.
            for d in [
                "/run/containerd/s",
                "/run/containerd/fifo",
                "/run/containerd/runc",
                "/run/containerd",
            ] {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn ctr_run_rm_prints_and_returns_the_status() {
    let _turn = lock();
    let c = Containerd::start();
    let root = c.path("runc-root").display().to_string();
    let fifo = c.path("fifo").display().to_string();

    let mut args = c.run_args(&root, &fifo, &["--rm"]);
    args.extend(["hi", "echo", "hi"]);
    let out = c.ctr(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");

    let mut args = c.run_args(&root, &fifo, &["--rm"]);
    args.extend(["status", "sh", "-c", "cat /rootfile; exit 3"]);
    let out = c.ctr(&args);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "owned by root\n");

    // A failure inside the container comes back through ccrun-oci's JSON log file,
    // which the shim reads.
    let mut args = c.run_args(&root, &fifo, &["--rm"]);
    args.extend(["missing", "/no/such/program"]);
    let out = c.ctr(&args);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("/no/such/program"),
        "{}",
        text(&out.stderr)
    );
    assert!(c.ok(&["container", "ls", "-q"]).trim().is_empty());
}

#[test]
fn ctr_detached_task_exec_pause_kill_delete() {
    let _turn = lock();
    let c = Containerd::start();
    let root = c.path("runc-root").display().to_string();
    let fifo = c.path("fifo").display().to_string();
    let mut args = c.run_args(&root, &fifo, &["-d"]);
    args.extend(["bg", "sleep", "1000"]);
    c.ok(&args);
    assert_eq!(c.task_status("bg"), "RUNNING");

    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "--fifo-dir",
        &fifo,
        "bg",
        "sh",
        "-c",
        "echo from-exec $(cat /proc/1/cmdline | tr '\\0' ' '); exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-exec sleep 1000\n");

    let ps = c.ok(&["task", "ps", "bg"]);
    assert_eq!(ps.lines().count(), 2, "one process: {ps}");

    c.ok(&["task", "pause", "bg"]);
    assert_eq!(c.task_status("bg"), "PAUSED");
    c.ok(&["task", "resume", "bg"]);
    assert_eq!(c.task_status("bg"), "RUNNING");

    c.ok(&["task", "kill", "--signal", "KILL", "bg"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.task_status("bg") != "STOPPED" {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.ok(&["task", "delete", "bg"]);
    c.ok(&["container", "delete", "bg"]);
    // ccrun-oci's state for it is gone too (the shim adds the namespace to the root).
    let state = Path::new(&root).join(NAMESPACE);
    assert!(state.is_dir(), "the shim used another root than {root}");
    let left = ccrun_testkit::container_state_dirs(&state);
    assert!(
        left.is_empty(),
        "state left in {}: {left:?}",
        state.display()
    );
}

#[test]
fn ctr_run_with_a_terminal() {
    let _turn = lock();
    let c = Containerd::start();
    let root = c.path("runc-root").display().to_string();
    let fifo = c.path("fifo").display().to_string();
    let mut args = c.run_args(&root, &fifo, &["-t", "--rm"]);
    args.extend(["tty", "sh", "-c", "tty; read line; echo got $line; exit 6"]);
    let pty = OnPty::spawn(c.command(&args), 24, 80);
    pty.wait_for("/dev/pts/0");
    // Nothing comes before the program's own output: no NUL byte, no caret-echoed one.
    let text = pty.text();
    assert!(text.starts_with("/dev/pts/0"), "{text:?}");
    pty.write(b"hello\r");
    pty.wait_for("got hello");
    assert_eq!(pty.exit_code(), Some(6));
}
