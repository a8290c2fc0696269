//! User namespaces: root's `--userns auto` ranges (ccrun's own subordinate ids, one
//! range per container, released and reused) and rootless ccrun, run as an
//! unprivileged user each test creates (with its own `/etc/subuid` and `/etc/subgid`
//! entries, which `useradd` puts in a free range) and removes again, even on failure.

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/registry.rs"]
mod registry;
mod support;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ccrun_runtime::subid::{self, Entry};
use image_build::{base_layer, layer, Comp, Layout};
use registry::{Format, Registry};
use support::{alive, stderr, stdout, wait_until, Ccrun, Rootfs};

const CCRUN: &str = env!("CARGO_BIN_EXE_ccrun");

/// The `/proc/PID/uid_map` first line of a running container as (host start, count).
fn host_range(pid: i32) -> (u32, u32) {
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).expect("uid_map");
    let f: Vec<u32> = map
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    assert_eq!(f[0], 0, "{map}");
    (f[1], f[2])
}

fn pid_of(c: &Ccrun, name: &str) -> i32 {
    let out = c.ccrun(&["inspect", "-f", "{{.State.Pid}}", name]);
    stdout(&out).parse().expect("pid")
}

fn entries(owner: &str) -> (Vec<Entry>, Vec<Entry>) {
    let of = |f: &str| subid::entries_of(Path::new(f), owner, None).expect("read");
    (of(subid::SUBUID), of(subid::SUBGID))
}

fn overlaps(a: &Entry, b: &Entry) -> bool {
    u64::from(a.start) < b.end() && u64::from(b.start) < a.end()
}

#[test]
fn auto_ranges_are_disjoint_private_and_reused() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    let secret = "echo s3cret > /tmp/secret; chmod 600 /tmp/secret; sleep 100";
    let run_as_1000 = |name: &str, userns: &str| {
        let out = c.ccrun(&[
            "run",
            "-d",
            "--name",
            name,
            "--userns",
            userns,
            "-u",
            "1000:1000",
            "--rootfs",
            rootfs,
            "sh",
            "-c",
            secret,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        pid_of(&c, name)
    };
    let (p1, p2) = (run_as_1000("one", "auto"), run_as_1000("two", "auto"));
    let (r1, r2) = (host_range(p1), host_range(p2));
    assert_eq!((r1.1, r2.1), (65536, 65536));
    assert!(
        r1.0 + 65536 <= r2.0 || r2.0 + 65536 <= r1.0,
        "{r1:?} {r2:?}"
    );
    // Both ranges lie in the harness's own allocation, which overlaps no other entry.
    let owner = c.subid_owner().to_string();
    let (uids, gids) = entries(&owner);
    assert!(!uids.is_empty() && !gids.is_empty(), "{owner} has entries");
    for range in [r1, r2] {
        assert!(uids
            .iter()
            .any(|e| range.0 >= e.start && u64::from(range.0) + 65536 <= e.end()));
    }
    for (mine, file) in [(&uids, subid::SUBUID), (&gids, subid::SUBGID)] {
        for other in subid::read(Path::new(file)).expect("read") {
            if other.owner != owner {
                assert!(
                    !mine.iter().any(|m| overlaps(m, &other)),
                    "{other:?} in {file}"
                );
            }
        }
    }
    for pid in [p1, p2] {
        wait_until("secret written", Duration::from_secs(10), || {
            Path::new(&format!("/proc/{pid}/root/tmp/secret")).exists()
        });
    }
    // A process escaped from a container's mount namespace (still in its user
    // namespace, as its root) reads its own container's files through /proc/PID/root,
    // never the other's.
    let read_from = |userns_of: i32, pid: i32| {
        Command::new("nsenter")
            .args([
                &format!("--user=/proc/{userns_of}/ns/user"),
                "--setuid=0",
                "--setgid=0",
                "cat",
                &format!("/proc/{pid}/root/tmp/secret"),
            ])
            .output()
            .expect("nsenter")
    };
    for (own, other) in [(p1, p2), (p2, p1)] {
        let out = read_from(own, own);
        assert_eq!(stdout(&out), "s3cret", "{}", stderr(&out));
        let out = read_from(own, other);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{own}'s root read {other}'s secret"
        );
        assert!(
            stderr(&out).contains("Permission denied"),
            "{}",
            stderr(&out)
        );
    }
    // Removing one frees its range for the next container.
    assert_eq!(c.ccrun(&["rm", "-f", "one"]).status.code(), Some(0));
    let out = c.ccrun(&[
        "run", "-d", "--name", "three", "--rootfs", rootfs, "sleep", "100",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(host_range(pid_of(&c, "three")), r1);
    assert_eq!(
        c.ccrun(&["rm", "-f", "two", "three"]).status.code(),
        Some(0)
    );
}

#[test]
fn named_volumes_keep_their_owners_across_auto_ranges() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    let run = |script: &str| {
        c.ccrun(&[
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "--rootfs",
            rootfs,
            "sh",
            "-c",
            script,
        ])
    };
    let out = run("echo a > /data/by-root; touch /data/by-1000; chown 1000:1000 /data/by-1000");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Another container, another range, the same owners; and it may write there.
    let out = run("stat -c '%n %u' /data/by-root /data/by-1000; echo b >> /data/by-root");
    assert_eq!(
        stdout(&out),
        "/data/by-root 0\n/data/by-1000 1000",
        "{}",
        stderr(&out)
    );
    // Stored as the containers see them (the mount is idmapped).
    let data = c.root().join("volumes/shared/_data");
    let meta = std::fs::metadata(data.join("by-1000")).expect("by-1000");
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    assert_eq!(
        std::fs::read_to_string(data.join("by-root")).expect("by-root"),
        "a\nb\n"
    );
}

#[test]
fn ccrun_user_and_size_come_from_the_config() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let owner = format!("ccrun-cfg{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("ccrun.toml");
    std::fs::write(
        &config,
        format!("[userns]\nuser = \"{owner}\"\nsize = 196608\n"),
    )
    .expect("config");
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            for f in [subid::SUBUID, subid::SUBGID] {
                let _ = subid::remove_owner(Path::new(f), &self.0);
            }
        }
    }
    let _restore = Restore(owner.clone());
    let c = c
        .with_env("CCRUN_CONFIG", config.to_str().expect("utf-8"))
        .with_env("CCRUN_USERNS_USER", "");
    let out = c.ccrun(&[
        "run",
        "--rm",
        "--rootfs",
        r.path().to_str().expect("utf-8"),
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (uids, gids) = entries(&owner);
    assert_eq!(uids.len(), 1, "{uids:?}");
    assert_eq!((uids[0].count, uids[0].start % 65536), (196608, 0));
    assert_eq!(gids, uids);
}

/// An unprivileged user made for one test, with subordinate ids unless asked not to,
/// and a runtime directory of its own; removed (with its processes, home and
/// subordinate ids) on drop.
struct TestUser {
    name: String,
    uid: u32,
    home: PathBuf,
    xdg: tempfile::TempDir,
}

impl TestUser {
    fn create(subids: bool) -> TestUser {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ccrt{}x{n}", std::process::id());
        let mut cmd = Command::new("useradd");
        cmd.args(["-m", "-s", "/bin/sh"]);
        if !subids {
            cmd.args(["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]);
        }
        let out = cmd.arg(&name).output().expect("useradd");
        assert!(out.status.success(), "useradd: {}", stderr(&out));
        let xdg = tempfile::Builder::new()
            .prefix("ccrun-xdg-")
            .tempdir()
            .expect("tempdir");
        let id = Command::new("id").args(["-u", &name]).output().expect("id");
        let uid: u32 = stdout(&id).parse().expect("uid");
        let user = TestUser {
            home: PathBuf::from(format!("/home/{name}")),
            name,
            uid,
            xdg,
        };
        std::os::unix::fs::chown(user.xdg.path(), Some(uid), Some(uid)).expect("chown");
        std::fs::set_permissions(user.xdg.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        user
    }

    /// `program` run as the user, with a clean environment of a login.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={}", self.name),
            &format!("--regid={}", self.name),
            "--init-groups",
            program,
        ])
        .env_clear()
        .env("HOME", &self.home)
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("XDG_RUNTIME_DIR", self.xdg.path());
        c
    }

    fn ccrun(&self, args: &[&str]) -> Output {
        self.command(CCRUN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ccrun")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ccrun(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its containers (with their monitors and pasta), then the pause process.
        let ids = self.ccrun(&["ps", "-aq", "--no-trunc"]);
        for id in stdout(&ids).lines() {
            let _ = self.ccrun(&["rm", "-f", id]);
        }
        let pause = self.xdg.path().join("ccrun/pause.pid");
        if let Some(pid) = std::fs::read_to_string(&pause)
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = wait_gone(pid);
        }
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .output();
        for f in [subid::SUBUID, subid::SUBGID] {
            let _ = subid::remove_owner(Path::new(f), &self.name);
        }
    }
}

fn wait_gone(pid: i32) -> bool {
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A device node open to everyone for the test (udev makes /dev/fuse and
/// /dev/net/tun 0666; this host may not), its mode restored on drop.
struct DeviceOpen(&'static str, u32);

impl DeviceOpen {
    fn new(path: &'static str) -> DeviceOpen {
        let mode = std::fs::metadata(path).expect(path).mode() & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        DeviceOpen(path, mode)
    }
}

impl Drop for DeviceOpen {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(self.1));
    }
}

fn busybox_registry() -> (Registry, tempfile::TempDir, String) {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(&layouts.path().join("oci"));
    layout.image(&[&base_layer()], "amd64", Some("latest"));
    reg.push(&layout.dir, "latest", "test/busybox", Format::Oci);
    let image = format!("{}/test/busybox:latest", reg.addr);
    (reg, layouts, image)
}

/// fuse-overlayfs instead of the kernel's overlayfs (`CCRUN_ROOTLESS_OVERLAY=fuse`, the
/// fallback for kernels without overlayfs in user namespaces): the container's root is
/// a FUSE mount, the image's layers read as the kernel's overlay reads them (a file a
/// later layer deletes is gone), writes land in the container's upper directory, and
/// removal leaves no mount behind.
#[test]
fn rootless_fuse_overlayfs_serves_the_layers() {
    support::require_root();
    assert!(
        Path::new("/usr/bin/fuse-overlayfs").exists(),
        "fuse-overlayfs is needed (scripts/deps.sh installs it)"
    );
    let _fuse = DeviceOpen::new("/dev/fuse");
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(&layouts.path().join("oci"));
    let files = layer(
        &[
            image_build::Entry::Dir("srv/", 0o755),
            image_build::Entry::File("srv/keep".into(), b"kept\n".to_vec(), 0o644, 0),
            image_build::Entry::File("srv/gone".into(), b"gone\n".to_vec(), 0o644, 0),
        ],
        Comp::Gzip,
    );
    let deletes = layer(
        &[image_build::Entry::File(
            "srv/.wh.gone".into(),
            Vec::new(),
            0o644,
            0,
        )],
        Comp::Gzip,
    );
    layout.image(&[&base_layer(), &files, &deletes], "amd64", Some("latest"));
    reg.push(&layout.dir, "latest", "test/fuse", Format::Oci);
    let image = format!("{}/test/fuse:latest", reg.addr);
    let user = TestUser::create(true);
    let fuse = |args: &[&str]| -> String {
        let out = user
            .command(CCRUN)
            .env("CCRUN_ROOTLESS_OVERLAY", "fuse")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ccrun");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    fuse(&["pull", "-q", &image]);
    let out = fuse(&[
        "run",
        "--network",
        "none",
        "--name",
        "fused",
        &image,
        "sh",
        "-c",
        "grep ' / / ' /proc/self/mountinfo; cat /srv/keep; ls /srv; echo new > /srv/new",
    ]);
    let mut lines = out.lines();
    let root = lines.next().unwrap_or_default();
    assert!(root.contains(" - fuse"), "the root is a FUSE mount: {root}");
    assert_eq!(lines.collect::<Vec<_>>(), ["kept", "keep"], "{out}");
    let upper = user
        .home
        .join(".local/share/ccrun/containers")
        .join(fuse(&["inspect", "-f", "{{.Id}}", "fused"]))
        .join("upper/srv/new");
    assert_eq!(std::fs::read_to_string(&upper).expect("upper"), "new\n");
    fuse(&["rm", "fused"]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains("fuse-overlayfs"), "{mounts}");
}

/// A user-defined network of a rootless user: its bridge lives in the user's own
/// network namespace (the pause process's), where containers on it reach each other
/// by name and alias; nothing of it shows in the host's namespace; ports are refused
/// there with a clear message, and removal takes the bridge away.
#[test]
fn rootless_containers_talk_over_a_user_network() {
    support::require_root();
    let (_reg, _layouts, image) = busybox_registry();
    let user = TestUser::create(true);
    let image = image.as_str();
    let host_links = || {
        let out = Command::new("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip link");
        stdout(&out)
    };
    let before = host_links();
    user.ok(&["network", "create", "--subnet", "10.89.7.0/24", "lan"]);
    user.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "lan",
        "--network-alias",
        "store",
        image,
        "sleep",
        "100",
    ]);
    user.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "lan",
        image,
        "sleep",
        "100",
    ]);
    let out = user.ok(&[
        "exec",
        "app",
        "sh",
        "-c",
        "ping -c 1 -W 2 db && ping -c 1 -W 2 store",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    let ip = user.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.lan.IPAddress}}",
        "db",
    ]);
    assert!(ip.starts_with("10.89.7."), "{ip}");
    let out = user.ok(&[
        "run",
        "--rm",
        "--network",
        "lan",
        image,
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "app",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    assert_eq!(
        host_links(),
        before,
        "nothing in the host's network namespace"
    );

    // Through a restart (same address back) and a second network connected later.
    user.ok(&["restart", "-t", "0", "db"]);
    let out = user.ok(&["exec", "app", "ping", "-c", "1", "-W", "2", "store"]);
    assert!(out.contains("1 packets received"), "{out}");
    user.ok(&["network", "create", "--subnet", "10.89.8.0/24", "back"]);
    user.ok(&[
        "run",
        "-d",
        "--name",
        "cache",
        "--network",
        "back",
        image,
        "sleep",
        "100",
    ]);
    user.ok(&["network", "connect", "back", "app"]);
    let out = user.ok(&["exec", "app", "ping", "-c", "1", "-W", "2", "cache"]);
    assert!(out.contains("1 packets received"), "{out}");
    user.ok(&["network", "disconnect", "back", "app"]);
    let out = user.ccrun(&["exec", "app", "ping", "-c", "1", "-W", "1", "cache"]);
    assert_ne!(out.status.code(), Some(0), "disconnected from back");
    user.ok(&["rm", "-f", "cache"]);
    user.ok(&["network", "rm", "back"]);

    let out = user.ccrun(&[
        "run",
        "--rm",
        "--network",
        "lan",
        "-p",
        "8080:80",
        image,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("default network"), "{}", stderr(&out));

    user.ok(&["rm", "-f", "app", "db"]);
    user.ok(&["network", "rm", "lan"]);
    let pause: i32 = std::fs::read_to_string(user.xdg.path().join("ccrun/pause.pid"))
        .expect("pause.pid")
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pid");
    let links = Command::new("nsenter")
        .args([
            "-t",
            &pause.to_string(),
            "-U",
            "-n",
            "--preserve-credentials",
            "ip",
            "-o",
            "link",
        ])
        .output()
        .expect("nsenter");
    assert!(links.status.success(), "{}", stderr(&links));
    let links = stdout(&links);
    assert!(
        !links.contains("veth") && links.lines().count() == 1,
        "only lo is left: {links}"
    );
}

#[test]
fn rootless_user_runs_containers() {
    support::require_root();
    let _tun = DeviceOpen::new("/dev/net/tun");
    let (_reg, _layouts, image) = busybox_registry();
    let user = TestUser::create(true);
    let image = image.as_str();

    // Pull: layers unpacked in the user's namespace keep the image's owners.
    user.ok(&["pull", "-q", image]);
    let store = user.home.join(".local/share/ccrun");
    assert!(store.join("image/layers").is_dir());
    let out = user.ok(&[
        "run",
        "--rm",
        image,
        "sh",
        "-c",
        "id -u; stat -c %u /bin/busybox",
    ]);
    assert_eq!(out, "0\n0");

    // The container's root is the user on the host.
    let out = user.ok(&["run", "-d", "--name", "idle", image, "sleep", "100"]);
    assert_eq!(out.len(), 64);
    let pid: i32 = user
        .ok(&["inspect", "-f", "{{.State.Pid}}", "idle"])
        .parse()
        .expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(user.uid.to_string().as_str())
    );
    let out = user.ok(&["exec", "idle", "sh", "-c", "echo in-exec; id -u"]);
    assert_eq!(out, "in-exec\n0");
    assert!(user.ok(&["ps"]).contains("idle"));
    user.ok(&["stop", "-t", "1", "idle"]);
    assert!(user.ok(&["ps", "-a"]).contains("Exited"));
    user.ok(&["rm", "idle"]);
    assert!(!user.ok(&["ps", "-a"]).contains("idle"));

    // Logs of a detached container.
    user.ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        image,
        "sh",
        "-c",
        "echo hello-log",
    ]);
    wait_until("talk exits", Duration::from_secs(10), || {
        user.ok(&["ps", "-a"]).contains("Exited (0)")
    });
    assert_eq!(user.ok(&["logs", "talk"]), "hello-log");
    user.ok(&["rm", "talk"]);

    // A named volume, and a bind mount of the user's own directory.
    let data = user.home.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("in"), "from-host\n").expect("write");
    std::os::unix::fs::chown(&data, Some(user.uid), Some(user.uid)).expect("chown");
    std::os::unix::fs::chown(data.join("in"), Some(user.uid), Some(user.uid)).expect("chown");
    let bind = format!("{}:/data", data.display());
    let out = user.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/keep",
        "-v",
        &bind,
        image,
        "sh",
        "-c",
        "cat /data/in; echo out > /data/out; echo kept > /keep/f",
    ]);
    assert_eq!(out, "from-host");
    let meta = std::fs::metadata(data.join("out")).expect("out");
    assert_eq!(meta.uid(), user.uid, "written as the user");
    assert_eq!(
        user.ok(&["run", "--rm", "-v", "keep:/keep", image, "cat", "/keep/f"]),
        "kept"
    );
    user.ok(&["volume", "rm", "keep"]);

    // keep-id: the user's own uid inside.
    let out = user.ok(&[
        "run",
        "--rm",
        "--userns",
        "keep-id",
        "-v",
        &bind,
        image,
        "sh",
        "-c",
        "id -u; echo k > /data/k",
    ]);
    assert_eq!(out, user.uid.to_string());
    assert_eq!(
        std::fs::metadata(data.join("k")).expect("k").uid(),
        user.uid
    );

    // A published port, reached from the host through pasta.
    let port = registry::free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    user.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        image,
        "sh",
        "-c",
        "echo served > /index.html; httpd -f -p 8080 -h /",
    ]);
    let mut body = String::new();
    wait_until(
        "the published port answers",
        Duration::from_secs(15),
        || {
            body.clear();
            std::net::TcpStream::connect(("127.0.0.1", port))
                .and_then(|mut s| {
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
                    s.read_to_string(&mut body)
                })
                .is_ok()
                && body.contains("served")
        },
    );
    assert!(user.ok(&["port", "web"]).contains(&port.to_string()));
    // pasta goes with the container, however its watcher ends: here the monitor is
    // killed before any cleanup could end pasta by its pid file.
    let id = user.ok(&["inspect", "-f", "{{.Id}}", "web"]);
    let container_dir = store.join("containers").join(id.trim());
    let pasta: i32 = std::fs::read_to_string(container_dir.join("pasta.pid"))
        .expect("pasta.pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(alive(pasta), "pasta runs for the container");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(container_dir.join("container.json")).expect("record"),
    )
    .expect("record JSON");
    let monitor = record["monitor_pid"].as_i64().expect("monitor pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the monitor");
    wait_until(
        "pasta to end with its watcher",
        Duration::from_secs(10),
        || !alive(pasta),
    );
    user.ok(&["rm", "-f", "web"]);

    // -it on a terminal.
    let mut cmd = user.command(CCRUN);
    cmd.args(["run", "-it", "--rm", image, "sh"]);
    let pty = ccrun_testkit::pty::OnPty::spawn(cmd, 24, 80);
    pty.write(b"echo $((6*7))-tty; tty\n");
    pty.wait_for("42-tty");
    pty.wait_for("/dev/pts/0");
    pty.write(b"exit 3\n");
    assert_eq!(pty.exit_code(), Some(3));

    // Limits are refused here (cgroup v1/hybrid, nothing delegated), clearly.
    let out = user.ccrun(&["run", "--rm", "--memory", "64m", image, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("need cgroup v2 with a subtree delegated to you"),
        "{}",
        stderr(&out)
    );
    // The user's namespace is one, held by one pause process.
    let pause = std::fs::read_to_string(user.xdg.path().join("ccrun/pause.pid")).expect("pause");
    assert!(!pause.is_empty());
}

#[test]
fn rootless_errors_name_what_is_missing() {
    support::require_root();
    let user = TestUser::create(false);
    let out = user.ccrun(&["ps"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("/etc/subuid has no entry for") && err.contains(&user.name),
        "{err}"
    );
    let out = user
        .command(CCRUN)
        .env_remove("XDG_RUNTIME_DIR")
        .arg("ps")
        .output()
        .expect("ccrun");
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("XDG_RUNTIME_DIR"), "{}", stderr(&out));
}
