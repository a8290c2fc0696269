//! Volumes and bind mounts for real: `-v`, `--mount`, the `volume` commands, `rm -v`,
//! and who owns what on the host under `--userns private` (container root = the first
//! id of ccrun's shared range; set as the default through a configuration file) and
//! with `--userns host`. (`--userns auto`'s idmapped volumes: tests/userns.rs.) Every test runs `--rootfs`
//! containers from a busybox root in its own storage root and checks that nothing is
//! left behind (containers, runtime state, mounts, processes, volumes).

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use support::{host_mounts, stderr, stdout, Ccrun, Rootfs};

/// A storage root, a busybox rootfs and a host directory to bind-mount.
struct Ctx {
    c: Ccrun,
    r: Rootfs,
    host: tempfile::TempDir,
    /// Host uid (and gid) of the container's root under `--userns private`.
    mapped_root: u32,
    _config: tempfile::TempDir,
}

impl Ctx {
    fn new() -> Ctx {
        let host = tempfile::Builder::new()
            .prefix("ccrun-vol-host-")
            .tempdir()
            .expect("host dir");
        // The container's root (an unprivileged host user) must reach bind sources.
        ccrun_testkit::set_mode(host.path(), 0o755);
        let config = tempfile::tempdir().expect("config dir");
        let file = config.path().join("ccrun.toml");
        std::fs::write(&file, "[containers]\nuserns = \"private\"\n").expect("config");
        let c = Ccrun::new().with_env("CCRUN_CONFIG", file.to_str().expect("utf-8"));
        let r = Rootfs::busybox();
        // The first run makes the harness's subordinate ids; private is their first range.
        let out = c.run(r.path(), &["--rm", "true"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let entries = ccrun_runtime::subid::entries_of(
            Path::new(ccrun_runtime::subid::SUBUID),
            c.subid_owner(),
            None,
        )
        .expect("subuid");
        let mapped_root = entries.first().expect("the harness's range").start;
        Ctx {
            c,
            r,
            host,
            mapped_root,
            _config: config,
        }
    }

    /// A directory below the host temp dir (searchable), created.
    fn host_dir(&self, name: &str) -> PathBuf {
        let dir = self.host.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        ccrun_testkit::set_mode(&dir, 0o755);
        dir
    }

    /// `ccrun run --rootfs <busybox> ARGS…`.
    fn run(&self, args: &[&str]) -> Output {
        self.c.run(self.r.path(), args)
    }

    /// `ccrun run --rm --rootfs <busybox> ARGS…`, asserted to succeed; stdout.
    fn run_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["--rm"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "run {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// `ccrun ARGS…` with stdin closed.
    fn ccrun(&self, args: &[&str]) -> Output {
        self.c.ccrun(args)
    }

    /// `ccrun ARGS…`, asserted to succeed; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ccrun(args);
        assert!(out.status.success(), "ccrun {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// `<root>/volumes/NAME/_data`.
    fn data(&self, name: &str) -> PathBuf {
        self.c.store_root().join("volumes").join(name).join("_data")
    }

    /// Volume names in the store.
    fn volumes(&self) -> Vec<String> {
        let text = self.ok(&["volume", "ls", "-q"]);
        text.lines().map(String::from).collect()
    }

    /// Removes every container and volume, then checks that nothing is left: no
    /// runtime state (so no cgroup), no volume, no mount or process under the root.
    fn finish(self) {
        let ids = self.ok(&["ps", "-aq", "--no-trunc"]);
        for id in ids.lines() {
            self.ok(&["rm", "-f", "-v", id]);
        }
        self.ok(&["volume", "prune", "-a", "-f"]);
        assert!(self.volumes().is_empty(), "{:?}", self.volumes());
        let volumes_dir = self.c.store_root().join("volumes");
        let left: Vec<_> = std::fs::read_dir(&volumes_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != ".lock")
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "left in {}: {left:?}",
            volumes_dir.display()
        );
        assert_eq!(self.c.leftover_state(), 0, "runtime state left");
        for id in ids.lines() {
            for cg in std::fs::read_dir("/sys/fs/cgroup")
                .expect("cgroupfs")
                .flatten()
            {
                let dir = cg.path().join("ccrun").join(id);
                assert!(!dir.exists(), "cgroup left: {}", dir.display());
            }
        }
        let root = self.c.store_root().to_string_lossy().into_owned();
        assert!(!host_mounts().contains(&root), "mount left under {root}");
        assert!(
            processes_under(self.c.store_root()).is_empty(),
            "processes left"
        );
        assert!(processes_under(self.r.path()).is_empty(), "processes left");
    }
}

/// Processes whose root directory is below `dir` (containers that did not go away).
fn processes_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(root) = std::fs::read_link(entry.path().join("root")) {
            if root.starts_with(dir) {
                found.push(name);
            }
        }
    }
    found
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(path).expect("stat");
    (m.uid(), m.gid())
}

#[test]
fn bind_mount_is_shared_both_ways() {
    let x = Ctx::new();
    let dir = x.host_dir("shared");
    // Owned by the container's mapped root, as `U` or a chown would leave it.
    std::os::unix::fs::chown(&dir, Some(x.mapped_root), Some(x.mapped_root)).expect("chown");
    std::fs::write(dir.join("from-host"), "host says hi\n").expect("write");
    let v = format!("{}:/mnt/shared", dir.display());
    let out = x.run_ok(&[
        "-v",
        &v,
        "sh",
        "-c",
        "cat /mnt/shared/from-host; echo container says hi > /mnt/shared/from-container",
    ]);
    assert_eq!(out, "host says hi");
    assert_eq!(
        std::fs::read_to_string(dir.join("from-container")).expect("read"),
        "container says hi\n"
    );
    assert_eq!(
        owner(&dir.join("from-container")),
        (x.mapped_root, x.mapped_root)
    );
    // A single file, onto a path the image does not have (created as a mount point).
    let file = format!("{}:/new/dir/motd", dir.join("from-host").display());
    assert_eq!(
        x.run_ok(&["-v", &file, "cat", "/new/dir/motd"]),
        "host says hi"
    );
    // Host root's files show as nobody inside, as with rootless Podman.
    let root_owned = x.host_dir("root-owned");
    std::fs::write(root_owned.join("f"), "x").expect("write");
    let v = format!("{}:/r", root_owned.display());
    assert_eq!(
        x.run_ok(&["-v", &v, "stat", "-c", "%u:%g", "/r/f"]),
        "65534:65534"
    );
    x.finish();
}

#[test]
fn read_only_bind_refuses_writes() {
    let x = Ctx::new();
    let dir = x.host_dir("ro");
    std::os::unix::fs::chown(&dir, Some(x.mapped_root), Some(x.mapped_root)).expect("chown");
    for spec in [
        format!("-v={}:/ro:ro,z", dir.display()),
        format!("--mount=type=bind,src={},dst=/ro,readonly", dir.display()),
    ] {
        let out = x.run(&["--rm", &spec, "sh", "-c", "touch /ro/x"]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        assert!(
            stderr(&out).contains("Read-only file system"),
            "{spec}: {}",
            stderr(&out)
        );
        assert!(!dir.join("x").exists());
    }
    // rw (explicit) still writes.
    let v = format!("{}:/rw:rw", dir.display());
    x.run_ok(&["-v", &v, "touch", "/rw/x"]);
    assert!(dir.join("x").exists());
    x.finish();
}

#[test]
fn missing_or_unreachable_bind_source_is_a_clear_error() {
    let x = Ctx::new();
    let missing = x.host.path().join("not-here");
    for spec in [
        format!("-v={}:/x", missing.display()),
        format!("--mount=type=bind,src={},dst=/x", missing.display()),
    ] {
        let out = x.run(&[&spec, "true"]);
        assert_eq!(out.status.code(), Some(125), "{spec}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
    // A source below a directory only host root may search is mounted all the same:
    // the runtime opens it as host root, the container's root only sees the mount.
    let locked = x.host_dir("locked");
    let inner = x.host_dir("locked/inner");
    std::fs::write(inner.join("seen"), "through the mount\n").expect("write");
    ccrun_testkit::set_mode(&locked, 0o700);
    let v = format!("{}:/x", inner.display());
    assert_eq!(x.run_ok(&["-v", &v, "cat", "/x/seen"]), "through the mount");
    x.run_ok(&["--userns", "host", "-v", &v, "true"]);
    // Bad specifications.
    for bad in ["rel/dir:/x", "/a:/b:rx", "/a:/", "vol:/x:rshared"] {
        let out = x.run(&["-v", bad, "true"]);
        assert_eq!(out.status.code(), Some(125), "{bad}");
    }
    let out = x.run(&["-v", "a1:/d", "-v", "a2:/d", "true"]);
    assert!(
        stderr(&out).contains("duplicate mount point"),
        "{}",
        stderr(&out)
    );
    // None of the failures made a container or a volume.
    assert_eq!(x.ok(&["ps", "-aq"]), "");
    assert!(x.volumes().is_empty());
    x.finish();
}

#[test]
fn named_volume_keeps_data_with_mapped_owners() {
    let x = Ctx::new();
    x.run_ok(&[
        "-v",
        "keep:/data",
        "sh",
        "-c",
        "echo one > /data/f; mkdir /data/shared; chmod 777 /data/shared",
    ]);
    // Created on first use, owned by the container's root as seen from the host.
    let data = x.data("keep");
    assert_eq!(owner(&data), (x.mapped_root, x.mapped_root));
    assert_eq!(owner(&data.join("f")), (x.mapped_root, x.mapped_root));
    // A later container reads and writes it as root.
    let out = x.run_ok(&[
        "-v",
        "keep:/data",
        "sh",
        "-c",
        "cat /data/f; echo two >> /data/f; stat -c %u:%g /data/f",
    ]);
    assert_eq!(out, "one\n0:0");
    assert_eq!(
        std::fs::read_to_string(data.join("f")).expect("read"),
        "one\ntwo\n"
    );
    // User 1000 in the container is host 101000.
    x.run_ok(&[
        "-u",
        "1000",
        "-v",
        "keep:/data",
        "sh",
        "-c",
        "echo mine > /data/shared/u",
    ]);
    assert_eq!(
        owner(&data.join("shared/u")),
        (x.mapped_root + 1000, x.mapped_root + 1000)
    );
    assert_eq!(
        x.run_ok(&[
            "-v",
            "keep:/data",
            "stat",
            "-c",
            "%u:%g %U",
            "/data/shared/u"
        ]),
        "1000:1000 user"
    );
    x.ok(&["volume", "rm", "keep"]);
    assert!(!data.exists());
    x.finish();
}

#[test]
fn host_userns_volume_is_owned_by_host_root() {
    let x = Ctx::new();
    x.run_ok(&[
        "--userns",
        "host",
        "-v",
        "hostvol:/data",
        "sh",
        "-c",
        "echo x > /data/f",
    ]);
    assert_eq!(owner(&x.data("hostvol")), (0, 0));
    assert_eq!(owner(&x.data("hostvol").join("f")), (0, 0));
    // A private container sees host root's files as nobody and cannot change them.
    let out = x.run(&[
        "--rm",
        "-v",
        "hostvol:/data",
        "sh",
        "-c",
        "stat -c %u /data/f; echo y >> /data/f",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "65534");
    // U hands the volume to the container's root.
    let out = x.run_ok(&[
        "-v",
        "hostvol:/data:U",
        "sh",
        "-c",
        "echo y >> /data/f && stat -c %u /data/f",
    ]);
    assert_eq!(out, "0");
    assert_eq!(
        owner(&x.data("hostvol").join("f")),
        (x.mapped_root, x.mapped_root)
    );
    x.finish();
}

#[test]
fn u_option_chowns_a_bind_source_to_the_container_user() {
    let x = Ctx::new();
    let dir = x.host_dir("give");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    std::fs::write(dir.join("sub/f"), "x").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).expect("symlink");
    let v = format!("{}:/g:U", dir.display());
    let out = x.run_ok(&[
        "-v",
        &v,
        "sh",
        "-c",
        "echo w > /g/sub/new; stat -c %u /g/sub/f",
    ]);
    assert_eq!(out, "0");
    for p in ["", "sub", "sub/f", "sub/new", "link"] {
        assert_eq!(owner(&dir.join(p)), (x.mapped_root, x.mapped_root), "{p}");
    }
    // The link was not followed.
    assert_eq!(owner(Path::new("/etc/passwd")), (0, 0));
    // With -u, to that user; through --mount too.
    let m = format!("type=bind,src={},dst=/g,U=true", dir.display());
    x.run_ok(&["-u", "1000", "--mount", &m, "touch", "/g/sub/by-user"]);
    assert_eq!(
        owner(&dir.join("sub/f")),
        (x.mapped_root + 1000, x.mapped_root + 1000)
    );
    // Never on a system directory.
    let out = x.run(&["-v", "/etc:/x:U", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("system directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(owner(Path::new("/etc")), (0, 0));
    x.finish();
}

#[test]
fn new_volume_is_seeded_from_the_root_filesystem_only_once() {
    let x = Ctx::new();
    let seed = x.r.path().join("srv/seed");
    std::fs::create_dir_all(seed.join("sub")).expect("mkdir");
    std::fs::write(seed.join("hello"), "from the image\n").expect("write");
    std::fs::write(seed.join("sub/owned"), "x").expect("write");
    std::os::unix::fs::chown(seed.join("sub/owned"), Some(1000), Some(1000)).expect("chown");
    std::os::unix::fs::symlink("hello", seed.join("link")).expect("symlink");
    ccrun_testkit::set_mode(&seed, 0o750);
    let out = x.run_ok(&[
        "-v",
        "seeded:/srv/seed",
        "sh",
        "-c",
        "cat /srv/seed/link; stat -c '%a %u' /srv/seed; stat -c %u /srv/seed/sub/owned",
    ]);
    assert_eq!(out, "from the image\n750 0\n1000");
    // On the host: the rootfs's raw ids shifted into the container's range.
    let data = x.data("seeded");
    assert_eq!(owner(&data), (x.mapped_root, x.mapped_root));
    assert_eq!(
        owner(&data.join("sub/owned")),
        (x.mapped_root + 1000, x.mapped_root + 1000)
    );
    assert_eq!(
        std::fs::read_link(data.join("link")).expect("link"),
        Path::new("hello")
    );
    // Changed by a container: the next one sees the change, not the image again.
    x.run_ok(&[
        "-v",
        "seeded:/srv/seed",
        "sh",
        "-c",
        "rm /srv/seed/hello; echo changed > /srv/seed/new",
    ]);
    let out = x.run_ok(&["-v", "seeded:/srv/seed", "ls", "/srv/seed"]);
    assert_eq!(out, "link\nnew\nsub");
    // nocopy, and a volume first used elsewhere: nothing is copied.
    x.run_ok(&["-v", "plain:/srv/seed:nocopy", "true"]);
    x.run_ok(&["-v", "elsewhere:/somewhere-else", "true"]);
    for name in ["plain", "elsewhere"] {
        let spec = format!("{name}:/srv/seed");
        assert_eq!(
            x.run_ok(&["-v", &spec, "ls", "-A", "/srv/seed"]),
            "",
            "{name}"
        );
    }
    x.finish();
}

#[test]
fn volume_commands() {
    let x = Ctx::new();
    assert_eq!(
        x.ok(&["volume", "create", "--label", "team=a", "named"]),
        "named"
    );
    // Creating it again is fine and changes nothing.
    assert_eq!(x.ok(&["volume", "create", "named"]), "named");
    let generated = x.ok(&["volume", "create"]);
    assert_eq!(generated.len(), 64, "{generated}");
    assert!(generated.chars().all(|c| c.is_ascii_hexdigit()));
    let out = x.ccrun(&["volume", "create", "x"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("invalid characters"),
        "{}",
        stderr(&out)
    );

    let table = x.ok(&["volume", "ls"]);
    let mut lines = table.lines();
    assert_eq!(
        lines
            .next()
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["DRIVER", "VOLUME", "NAME"])
    );
    assert!(
        table.contains("local") && table.contains("named"),
        "{table}"
    );
    assert_eq!(
        x.ok(&["volume", "ls", "-q", "--filter", "name=nam"]),
        "named"
    );
    assert_eq!(
        x.ok(&["volume", "ls", "-q", "--filter", "label=team=a"]),
        "named"
    );
    let json: serde_json::Value =
        serde_json::from_str(&x.ok(&["volume", "ls", "--format", "json", "-f", "name=named"]))
            .expect("json");
    assert_eq!(json["Name"], "named");
    assert_eq!(json["Labels"], "team=a");

    let inspect: serde_json::Value =
        serde_json::from_str(&x.ok(&["volume", "inspect", "named"])).expect("json");
    let v = &inspect[0];
    assert_eq!(v["Name"], "named");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"], serde_json::json!({"team": "a"}));
    assert!(v["Options"].is_null());
    assert!(v["CreatedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(
        v["Mountpoint"].as_str().map(PathBuf::from),
        Some(x.data("named"))
    );
    assert_eq!(
        x.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "named"]),
        x.data("named").display().to_string()
    );
    assert_eq!(
        x.ok(&["inspect", "--type", "volume", "-f", "{{.Name}}", "named"]),
        "named"
    );
    let missing = x.ccrun(&["volume", "inspect", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("No such volume: nope"));

    // In use by a stopped container: rm refuses, prune keeps it.
    let out = x.run(&["--name", "user", "-v", "named:/d", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        x.ok(&["volume", "ls", "-q", "-f", "dangling=false"]),
        "named"
    );
    let out = x.ccrun(&["volume", "rm", "named"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("in use") && err.contains("user"), "{err}");
    assert!(x.data("named").is_dir());
    assert_eq!(x.ccrun(&["volume", "rm", "nope"]).status.code(), Some(125));
    assert_eq!(x.ok(&["volume", "rm", "-f", "nope"]), "");

    // prune without -a: only anonymous ones; -a: every unused one.
    x.ok(&["volume", "create", "unused"]);
    let anon = x.run(&["--name", "anon", "-v", "/anon", "true"]);
    assert!(anon.status.success(), "{}", stderr(&anon));
    x.ok(&["rm", "anon"]);
    let anon_name = x
        .volumes()
        .into_iter()
        .find(|n| n.len() == 64 && *n != generated)
        .expect("anonymous volume");
    let refused =
        x.c.cmd()
            .args(["volume", "prune"])
            .stdin(Stdio::null())
            .output()
            .expect("prune");
    assert!(stdout(&refused).contains("[y/N]"));
    assert_eq!(x.volumes().len(), 4);
    let pruned = x.ok(&["volume", "prune", "-f"]);
    assert!(
        pruned.contains("Deleted Volumes:") && pruned.contains(&anon_name),
        "{pruned}"
    );
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    let mut left = x.volumes();
    left.sort();
    let mut expected = vec![generated.clone(), "named".to_string(), "unused".to_string()];
    expected.sort();
    assert_eq!(left, expected);
    let pruned = x.ok(&["volume", "prune", "-a", "-f"]);
    assert!(
        pruned.contains("unused") && pruned.contains(&generated),
        "{pruned}"
    );
    assert_eq!(x.volumes(), ["named"]);
    // system df counts it.
    let df = x.ok(&["system", "df"]);
    let row = df
        .lines()
        .find(|l| l.starts_with("Local Volumes"))
        .expect("volumes row");
    assert_eq!(row.split_whitespace().nth(2), Some("1"), "{row}");
    assert_eq!(row.split_whitespace().nth(3), Some("1"), "{row}");
    x.ok(&["rm", "user"]);
    x.ok(&["volume", "rm", "named"]);
    x.finish();
}

#[test]
fn rm_v_and_auto_remove_take_anonymous_volumes_only() {
    let x = Ctx::new();
    let out = x.run(&[
        "--name",
        "both",
        "-v",
        "kept:/named",
        "-v",
        "/anon",
        "--mount",
        "type=volume,dst=/anon2",
        "sh",
        "-c",
        "echo x > /anon/f; echo y > /named/f",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inspect: serde_json::Value =
        serde_json::from_str(&x.ok(&["inspect", "both"])).expect("json");
    let mounts = inspect[0]["Mounts"].as_array().expect("mounts").clone();
    assert_eq!(mounts.len(), 3, "{mounts:?}");
    let named = mounts
        .iter()
        .find(|m| m["Destination"] == "/named")
        .expect("named");
    assert_eq!(named["Type"], "volume");
    assert_eq!(named["Name"], "kept");
    assert_eq!(named["Driver"], "local");
    assert_eq!(named["RW"], true);
    assert_eq!(
        named["Source"].as_str().map(PathBuf::from),
        Some(x.data("kept"))
    );
    assert_eq!(
        inspect[0]["HostConfig"]["Binds"],
        serde_json::json!(["kept:/named"])
    );
    assert_eq!(x.volumes().len(), 3);
    // rm without -v keeps them all; with -v the anonymous ones go.
    x.ok(&["rm", "-v", "both"]);
    assert_eq!(x.volumes(), ["kept"]);
    assert_eq!(
        std::fs::read_to_string(x.data("kept").join("f")).expect("read"),
        "y\n"
    );
    x.run_ok(&["-v", "/scratch", "-v", "kept:/named", "touch", "/scratch/f"]);
    assert_eq!(x.volumes(), ["kept"], "--rm removes the anonymous volume");
    // Detached --rm: removed by the monitor's cleanup.
    let id = x.ok(&[
        "run",
        "-d",
        "--rm",
        "--rootfs",
        &x.r.path().display().to_string(),
        "-v",
        "/scratch",
        "true",
    ]);
    let wait = x.ccrun(&["wait", &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while x.volumes().len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "anonymous volume of a detached --rm container left: {:?} ({})",
            x.volumes(),
            stderr(&wait)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    x.ok(&["volume", "rm", "kept"]);
    x.finish();
}

#[test]
fn mount_flag_forms() {
    let x = Ctx::new();
    let dir = x.host_dir("m");
    std::fs::write(dir.join("f"), "bound\n").expect("write");
    let bind = format!("type=bind,source={},target=/b,readonly", dir.display());
    let out = x.run_ok(&[
        "--mount",
        &bind,
        "--mount",
        "type=volume,src=mvol,dst=/v,volume-label=k=v",
        "--mount",
        "type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "sh",
        "-c",
        "cat /b/f; touch /v/ok; stat -c %a /t; grep -E ' /t | /b ' /proc/mounts",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("bound"));
    assert_eq!(lines.next(), Some("1770"));
    let rest: Vec<&str> = lines.collect();
    let tmpfs = rest.iter().find(|l| l.contains(" /t ")).expect("tmpfs");
    assert!(tmpfs.contains("size=1024k"), "{tmpfs}");
    let b = rest.iter().find(|l| l.contains(" /b ")).expect("bind");
    assert!(b.contains(" ro,"), "{b}");
    assert!(x.data("mvol").join("ok").exists());
    let inspect: serde_json::Value =
        serde_json::from_str(&x.ok(&["volume", "inspect", "mvol"])).expect("json");
    assert_eq!(inspect[0]["Labels"], serde_json::json!({"k": "v"}));
    for bad in [
        "type=bind,dst=/x",
        "type=tmpfs,src=a,dst=/x",
        "type=bind,src=/tmp,dst=/x,volume-nocopy",
        "type=volume",
    ] {
        let out = x.run(&["--mount", bad, "true"]);
        assert_eq!(out.status.code(), Some(125), "{bad}");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    x.finish();
}
