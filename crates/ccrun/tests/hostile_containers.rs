//! The hostile-input suite, engine side: what an attacker inside a container, or a
//! careless caller, tries against `ccrun` on the host.
//!
//! - descriptors the caller left open must not reach any container process or the
//!   monitor (`run`, `run -d`, `start`, `restart`, `exec`);
//! - CVE-2019-5736: a container that makes a ccrun process exec `/proc/self/exe` must
//!   not be able to overwrite ccrun's binary (`run`, `exec`, with and without a user
//!   namespace);
//! - `no-new-privileges` must stop file capabilities for root and non-root users;
//! - an unprivileged host user must not reach set-user-id files or device nodes that
//!   containers made in the store (volume data, upper directories);
//! - `kill -9` at any point of `run -d` or `rm -f` must leave no ghost: a name is
//!   either a container `ps -a` shows or free.

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ccrun_testkit::exe_overwrite::{ExeOverwrite, Outcome};
use support::{alive, stderr, stdout, wait_until, Ccrun, Rootfs};

/// Host objects a caller has open: a file, a directory and a listening socket.
struct Leaks {
    dir: tempfile::TempDir,
    file: std::fs::File,
    directory: std::fs::File,
    socket: std::os::unix::net::UnixListener,
}

/// The fd numbers the leaked objects get in the ccrun process.
const LEAKED_FDS: [i32; 3] = [7, 8, 9];

impl Leaks {
    fn new() -> Leaks {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "host secret\n").expect("secret");
        let file = std::fs::File::open(dir.path().join("secret")).expect("open");
        let directory = std::fs::File::open(dir.path()).expect("open dir");
        let socket = std::os::unix::net::UnixListener::bind(dir.path().join("sock")).expect("bind");
        Leaks {
            dir,
            file,
            directory,
            socket,
        }
    }

    /// `cmd` with the objects at fds 7, 8 and 9, inherited without close-on-exec as a
    /// shell's `exec 7<file` would leave them.
    fn pass_to(&self, cmd: &mut Command) {
        let fds = [
            self.file.as_raw_fd(),
            self.directory.as_raw_fd(),
            self.socket.as_raw_fd(),
        ];
        // SAFETY: only dup2, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for (from, to) in fds.into_iter().zip(LEAKED_FDS) {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// Whether process `pid` holds any of the objects.
    fn held_by(&self, pid: i32) -> Vec<String> {
        let socket_inode = std::fs::metadata(self.dir.path().join("sock"))
            .map(|_| {
                let fd = self.socket.as_raw_fd();
                std::fs::read_link(format!("/proc/self/fd/{fd}"))
                    .expect("own socket")
                    .display()
                    .to_string()
            })
            .expect("socket");
        let mut held = Vec::new();
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return held;
        };
        for entry in entries.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.display().to_string();
            if target.starts_with(&self.dir.path().display().to_string()) || target == socket_inode
            {
                held.push(target);
            }
        }
        held
    }
}

/// What the container reports about fds 7–9: the line `fds:` followed by the
/// numbers it can see, and whether the directory fd led anywhere.
const PROBE: &str =
    "printf 'fds:'; for fd in 7 8 9; do [ -e /proc/self/fd/$fd ] && printf ' %s' $fd; done; echo; \
     cat <&7 2>/dev/null && echo READ-THE-SECRET; \
     (cd /proc/self/fd/8 2>/dev/null && touch escaped 2>/dev/null && echo WROTE-ON-HOST); true";

fn assert_no_leak(output: &str, leaks: &Leaks, what: &str) {
    assert!(
        output.lines().any(|l| l.trim() == "fds:"),
        "{what}: the container saw leaked fds: {output}"
    );
    assert!(!output.contains("READ-THE-SECRET"), "{what}: {output}");
    assert!(!output.contains("WROTE-ON-HOST"), "{what}: {output}");
    assert!(!leaks.dir.path().join("escaped").exists(), "{what}");
}

/// Runs `ccrun ARGS` with the leaked fds; returns (exit code, stdout, stderr).
fn ccrun_leaking(c: &Ccrun, leaks: &Leaks, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = c.cmd();
    cmd.args(args).stdin(Stdio::null());
    leaks.pass_to(&mut cmd);
    let out = cmd.output().expect("spawn ccrun");
    (out.status.code(), stdout(&out), stderr(&out))
}

fn logs(c: &Ccrun, name: &str) -> String {
    let out = c.ccrun(&["logs", name]);
    format!("{}\n{}", stdout(&out), stderr(&out))
}

#[test]
fn caller_fds_reach_no_container_process_nor_the_monitor() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let leaks = Leaks::new();
    let rootfs = r.path().to_str().expect("utf-8");

    // Foreground run.
    let (code, out, err) = ccrun_leaking(
        &c,
        &leaks,
        &["run", "--rm", "--rootfs", rootfs, "sh", "-c", PROBE],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_no_leak(&out, &leaks, "run");

    // Detached run: the container, and the monitor that stays behind.
    let (code, _, err) = ccrun_leaking(
        &c,
        &leaks,
        &[
            "run",
            "-d",
            "--name",
            "leaky",
            "--rootfs",
            rootfs,
            "sh",
            "-c",
            &format!("{PROBE}; sleep 1000"),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    wait_until("the probe's output", Duration::from_secs(10), || {
        logs(&c, "leaky").contains("fds:")
    });
    assert_no_leak(&logs(&c, "leaky"), &leaks, "run -d");
    let id = c
        .ccrun(&["inspect", "-f", "{{.Id}}", "leaky"])
        .stdout_text();
    let monitor_holds = || {
        let monitor = c.record(&id)["monitor_pid"].as_i64().expect("monitor pid") as i32;
        assert!(alive(monitor), "the monitor runs");
        leaks.held_by(monitor)
    };
    assert_eq!(monitor_holds(), Vec::<String>::new(), "run -d: the monitor");

    // exec into it.
    let (code, out, err) = ccrun_leaking(&c, &leaks, &["exec", "leaky", "sh", "-c", PROBE]);
    assert_eq!(code, Some(0), "{err}");
    assert_no_leak(&out, &leaks, "exec");

    // restart, then stop + start: each runs the probe again, under a new monitor.
    let (code, _, err) = ccrun_leaking(&c, &leaks, &["restart", "-t", "0", "leaky"]);
    assert_eq!(code, Some(0), "{err}");
    wait_until("the restarted probe", Duration::from_secs(10), || {
        logs(&c, "leaky").matches("fds:").count() >= 2
    });
    assert_no_leak(&logs(&c, "leaky"), &leaks, "restart");
    assert_eq!(
        monitor_holds(),
        Vec::<String>::new(),
        "restart: the monitor"
    );
    c.ccrun(&["stop", "-t", "0", "leaky"]).stdout_text();
    let (code, _, err) = ccrun_leaking(&c, &leaks, &["start", "leaky"]);
    assert_eq!(code, Some(0), "{err}");
    wait_until("the started probe", Duration::from_secs(10), || {
        logs(&c, "leaky").matches("fds:").count() >= 3
    });
    assert_no_leak(&logs(&c, "leaky"), &leaks, "start");
    assert_eq!(monitor_holds(), Vec::<String>::new(), "start: the monitor");
    c.ccrun(&["rm", "-f", "leaky"]).stdout_text();
}

/// `Output` → trimmed stdout.
trait StdoutText {
    fn stdout_text(&self) -> String;
}

impl StdoutText for std::process::Output {
    fn stdout_text(&self) -> String {
        assert!(self.status.success(), "{}", stderr(self));
        stdout(self)
    }
}

/// The CVE-2019-5736 attack against a copy of ccrun, through `run` or `exec`.
fn exe_overwrite(through_exec: bool, userns: &str) {
    let kit = ExeOverwrite::new(Path::new(env!("CARGO_BIN_EXE_ccrun")));
    let c = Ccrun::new().with_binary(kit.binary());
    let rootfs = kit.rootfs().to_str().expect("utf-8");
    if through_exec {
        let out = c.ccrun(&[
            "run", "-d", "--name", "victim", "--userns", userns, "--rootfs", rootfs, "sleep",
            "1000",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = c.ccrun(&[
            "exec",
            "-e",
            ExeOverwrite::env(),
            "victim",
            "/proc/self/exe",
            "--version",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        let out = c.ccrun(&[
            "run",
            "-d",
            "--name",
            "victim",
            "--userns",
            userns,
            "-e",
            ExeOverwrite::env(),
            "--rootfs",
            rootfs,
            "/proc/self/exe",
            "--version",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // The attack reached the binary ccrun ran from, and the write was refused because
    // that image is sealed (a user namespace alone would make it EACCES).
    match kit.outcome(Duration::from_secs(30)) {
        Outcome::Refused(error) => assert!(error.contains("Read-only file system"), "{error}"),
        other => panic!("the attack on ccrun's binary ended with {other:?}"),
    }
    assert!(kit.binary_intact(), "ccrun's binary changed");
    let out = c.ccrun(&["rm", "-f", "victim"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The copy still works.
    let out = Command::new(kit.binary())
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
}

#[test]
fn run_cannot_overwrite_ccrun_through_proc_self_exe() {
    exe_overwrite(false, "host");
}

#[test]
fn run_cannot_overwrite_ccrun_through_proc_self_exe_in_a_user_namespace() {
    exe_overwrite(false, "private");
}

#[test]
fn exec_cannot_overwrite_ccrun_through_proc_self_exe() {
    exe_overwrite(true, "host");
}

#[test]
fn exec_cannot_overwrite_ccrun_through_proc_self_exe_in_a_user_namespace() {
    exe_overwrite(true, "private");
}

/// Sets `security.capability` on `path`: `cap_dac_override+ep` (VFS caps v2).
fn set_file_capability(path: &Path) {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
    const CAP_DAC_OVERRIDE: u32 = 1;
    let words = [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        1 << CAP_DAC_OVERRIDE, // permitted, low word
        0,                     // inheritable, low word
        0,                     // permitted, high word
        0,                     // inheritable, high word
    ];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let ret = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
        )
    };
    assert_eq!(ret, 0, "setxattr: {}", std::io::Error::last_os_error());
}

#[test]
fn no_new_privileges_stops_file_capabilities_for_every_user() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    // A root-only file, and `cat` (busybox picks the applet by name) with
    // cap_dac_override+ep, which reads it for anyone the capability works for.
    std::fs::write(r.path().join("secret"), "root only\n").expect("secret");
    std::fs::set_permissions(r.path().join("secret"), PermissionsExt::from_mode(0o600))
        .expect("chmod");
    std::fs::create_dir(r.path().join("capbin")).expect("mkdir");
    std::fs::copy(r.path().join("bin/busybox"), r.path().join("capbin/cat")).expect("copy");
    set_file_capability(&r.path().join("capbin/cat"));
    let read = |flags: &[&str]| -> bool {
        let mut args = vec!["--userns", "host"];
        args.extend_from_slice(flags);
        args.extend(["/capbin/cat", "/secret"]);
        let out = c.run(r.path(), &args);
        stdout(&out) == "root only"
    };
    let nnp = ["--security-opt", "no-new-privileges"];
    // Without the option a file capability works for a non-root user, as on any host.
    assert!(
        read(&["-u", "1000"]),
        "file capabilities without no-new-privileges"
    );
    assert!(
        !read(&["-u", "1000", nnp[0], nnp[1]]),
        "no-new-privileges must stop the file capability for a non-root user"
    );
    // Root reads it through its own capabilities either way; a file capability never
    // adds what the bounding set lacks.
    assert!(read(&[]));
    assert!(read(&[nnp[0], nnp[1]]));
    assert!(!read(&["-u", "1000", "--cap-drop", "DAC_OVERRIDE"]));
    // What a non-root process holds: nothing but the bounding set.
    let out = c.run(
        r.path(),
        &["-u", "1000", "grep", "^Cap", "/proc/self/status"],
    );
    let status = stdout(&out);
    for set in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(
            ccrun_testkit::status_field(&status, set),
            "0000000000000000",
            "{set}: {status}"
        );
    }
}

/// A program that prints its effective uid, built by the host's gcc.
fn euid_program(dir: &Path) -> PathBuf {
    let src = dir.join("euid.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\nint main(void){printf(\"euid=%d\\n\",(int)geteuid());return 0;}\n",
    )
    .expect("euid.c");
    let bin = dir.join("euid");
    let ok = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(ok.success(), "gcc -static euid.c");
    bin
}

/// Runs `path ARGS` as host uid/gid 65534; returns (success, stdout+stderr).
fn as_nobody(path: &Path, args: &[&str]) -> (bool, String) {
    match Command::new(path).args(args).uid(65534).gid(65534).output() {
        Ok(out) => (
            out.status.success(),
            format!("{}{}", stdout(&out), stderr(&out)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

#[test]
fn other_host_users_reach_nothing_containers_made_in_the_store() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let tools = tempfile::tempdir().expect("tempdir");
    let euid = euid_program(tools.path());
    std::fs::create_dir(r.path().join("tools")).expect("mkdir");
    std::fs::copy(&euid, r.path().join("tools/euid")).expect("copy");
    // A container with host root plants a set-uid-root program and a world-writable
    // block device node in a named volume.
    let out = c.run(
        r.path(),
        &[
            "--rm",
            "--userns",
            "host",
            "-v",
            "planted:/data",
            "sh",
            "-c",
            "cp /tools/euid /data/euid && chmod 4755 /data/euid && mknod -m 666 /data/disk b 7 0",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let data = c.store_root().join("volumes/planted/_data");
    let planted = std::fs::metadata(data.join("euid")).expect("planted");
    assert_eq!(planted.mode() & 0o4000, 0o4000, "the set-uid bit is there");
    // A host user finds the store closed: neither runs the program nor opens the node.
    let (ran, said) = as_nobody(&data.join("euid"), &[]);
    assert!(!ran && !said.contains("euid=0"), "{said}");
    let (opened, said) = as_nobody(
        Path::new("/bin/dd"),
        &[
            &format!("if={}", data.join("disk").display()),
            "of=/dev/null",
            "count=1",
        ],
    );
    assert!(!opened, "{said}");
    let mode = std::fs::metadata(c.store_root()).expect("root").mode() & 0o777;
    assert_eq!(mode, 0o700, "the store root is private");
    // Containers still use the volume through the closed store, in their user namespace.
    let out = c.run(r.path(), &["--rm", "-v", "planted:/data", "ls", "/data"]);
    assert!(stdout(&out).contains("euid"), "{}", stderr(&out));
}

/// Starts `ccrun ARGS` and kills it with SIGKILL after a delay that grows with `round`
/// (0.5 ms, 2 ms, 3.5 ms, …), so the rounds hit it at a spread of points.
fn kill_after(c: &Ccrun, args: &[&str], round: usize) {
    let mut child = c
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_micros(500 + 1500 * round as u64));
    let _ = child.kill();
    let _ = child.wait();
}

/// The names `ps -a` shows.
fn listed_names(c: &Ccrun) -> Vec<String> {
    let out = c.ccrun(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

/// After a killed command, `name` is either a container `ps -a` lists (and `rm -f`
/// removes it) or free (and `create --name` takes it).
fn assert_no_ghost(c: &Ccrun, r: &Rootfs, name: &str, round: usize) {
    let listed = listed_names(c).iter().any(|n| n == name);
    if listed {
        let out = c.ccrun(&["rm", "-f", name]);
        assert!(
            out.status.success(),
            "round {round}: rm -f {name}: {}",
            stderr(&out)
        );
    }
    let rootfs = r.path().to_str().expect("utf-8");
    let out = c.ccrun(&["create", "--name", name, "--rootfs", rootfs, "true"]);
    assert!(
        out.status.success(),
        "round {round}: {name} is neither listed nor free: {}",
        stderr(&out)
    );
    let out = c.ccrun(&["rm", "-f", name]);
    assert!(out.status.success(), "round {round}: {}", stderr(&out));
}

#[test]
fn kill_9_during_run_or_rm_leaves_no_ghost() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    // Killed during `run -d`, at a spread of moments over its first milliseconds.
    for round in 0..24 {
        let name = format!("ghost{round}");
        kill_after(
            &c,
            &[
                "run", "-d", "--name", &name, "--rootfs", rootfs, "sleep", "100",
            ],
            round,
        );
        assert_no_ghost(&c, &r, &name, round);
    }
    // Killed during `rm -f`.
    for round in 0..24 {
        let name = format!("doomed{round}");
        let out = c.ccrun(&[
            "run", "-d", "--name", &name, "--rootfs", rootfs, "sleep", "100",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        kill_after(&c, &["rm", "-f", &name], round);
        assert_no_ghost(&c, &r, &name, round);
    }
    // Nothing half-removed stays behind once pruned.
    let out = c.ccrun(&["container", "prune", "-f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> = std::fs::read_dir(c.store_root().join("containers"))
        .expect("containers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "names" && n != "lock")
        .collect();
    assert_eq!(left, Vec::<String>::new(), "debris in the store");
}
