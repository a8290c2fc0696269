//! The container commands of issue 15 end to end on `--rootfs` containers: pause and
//! unpause, rename, update, events, info and version, attach (detached containers and
//! `run -it`), stats, cp, export and `container port`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccrun_testkit::pty::OnPty;
use support::{stderr, stdout, wait_until, Ccrun, Rootfs};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `ccrun ARGS`, asserting success; returns trimmed stdout.
fn ok(c: &Ccrun, args: &[&str]) -> String {
    let out = c.ccrun(args);
    assert!(
        out.status.success(),
        "ccrun {args:?} failed ({}): {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `ccrun ARGS`, asserting it fails as ccrun's own error (125); returns stderr.
fn fails(c: &Ccrun, args: &[&str]) -> String {
    let out = c.ccrun(args);
    assert_eq!(
        out.status.code(),
        Some(125),
        "ccrun {args:?} should fail: {} / {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.lines().last().is_some_and(|l| l.starts_with("ccrun: ")),
        "{err}"
    );
    err
}

fn inspect(c: &Ccrun, name: &str, template: &str) -> String {
    ok(c, &["inspect", "-f", template, name])
}

fn pid_of(c: &Ccrun, name: &str) -> i32 {
    inspect(c, name, "{{.State.Pid}}").parse().expect("pid")
}

/// The directory of `controller` (v1) holding process `pid`'s cgroup.
fn cgroup_dir(pid: i32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let path = text
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names
                .split(',')
                .any(|n| n == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup in {text}"));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let base = mounts
        .lines()
        .find(|l| {
            l.contains(" - cgroup ")
                && l.rsplit(' ')
                    .next()
                    .is_some_and(|o| o.split(',').any(|x| x == controller))
        })
        .and_then(|l| l.split(' ').nth(4))
        .unwrap_or_else(|| panic!("{controller} is not mounted"));
    PathBuf::from(base).join(path.trim_start_matches('/'))
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A child's output, collected by a thread.
fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

fn wait_exit(child: &mut Child) -> Option<i32> {
    let mut status = None;
    wait_until("the process to exit", WAIT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status.and_then(|s| s.code())
}

/// A child killed on drop (a failing test must not leave it behind).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pause_freezes_every_process_and_unpause_thaws_them() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    let id = c.run_detached(rootfs.path(), &["--name", "frozen", "sleep", "100"]);
    let freezer = cgroup_dir(pid_of(&c, "frozen"), "freezer").join("freezer.state");
    assert_eq!(ok(&c, &["pause", "frozen"]), "frozen");
    assert_eq!(read_trim(&freezer), "FROZEN");
    assert_eq!(
        inspect(&c, "frozen", "{{.State.Status}} {{.State.Paused}}"),
        "paused true"
    );
    let status = ok(&c, &["ps", "--format", "{{.Status}}"]);
    assert!(status.ends_with("(Paused)"), "{status}");
    assert_eq!(
        ok(&c, &["ps", "-q", "--filter", "status=paused"]),
        &id[..12]
    );
    assert!(fails(&c, &["pause", "frozen"]).contains("already paused"));

    assert_eq!(ok(&c, &["container", "unpause", "frozen"]), "frozen");
    assert_eq!(read_trim(&freezer), "THAWED");
    assert_eq!(inspect(&c, "frozen", "{{.State.Status}}"), "running");
    assert!(fails(&c, &["unpause", "frozen"]).contains("is not paused"));

    // A paused container still goes with rm -f: the kill reaches it once thawed.
    ok(&c, &["pause", "frozen"]);
    ok(&c, &["rm", "-f", "frozen"]);
    assert_eq!(ok(&c, &["ps", "-aq"]), "");
    assert!(fails(&c, &["pause", "frozen"]).contains("no such container"));
}

#[test]
fn rename_moves_the_name_and_frees_the_old_one() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    let id = c.run_detached(rootfs.path(), &["--name", "before", "sleep", "100"]);
    c.run_detached(rootfs.path(), &["--name", "taken", "sleep", "100"]);
    let out = c.ccrun(&["rename", "before", "after"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "Docker's rename prints nothing");
    assert_eq!(inspect(&c, "after", "{{.Id}}"), id);
    assert!(!c.ccrun(&["inspect", "before"]).status.success());
    assert!(fails(&c, &["rename", "after", "taken"]).contains("already in use"));
    assert!(fails(&c, &["rename", "after", "bad name"]).contains("invalid"));
    // The old name is free again.
    c.run_detached(rootfs.path(), &["--name", "before", "true"]);
    assert_eq!(inspect(&c, "after", "{{.Name}}"), "/after");
}

#[test]
fn update_changes_live_limits_the_saved_spec_and_the_restart_policy() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    c.run_detached(
        rootfs.path(),
        &["--name", "upd", "--memory", "64m", "sleep", "100"],
    );
    let pid = pid_of(&c, "upd");
    assert_eq!(
        ok(
            &c,
            &[
                "update",
                "--memory",
                "128m",
                "--pids-limit",
                "50",
                "--cpus",
                "0.5",
                "upd"
            ]
        ),
        "upd"
    );
    let memory = cgroup_dir(pid, "memory").join("memory.limit_in_bytes");
    assert_eq!(read_trim(&memory), (128u64 << 20).to_string());
    assert_eq!(read_trim(&cgroup_dir(pid, "pids").join("pids.max")), "50");
    assert_eq!(
        read_trim(&cgroup_dir(pid, "cpu").join("cpu.cfs_quota_us")),
        "50000"
    );
    assert_eq!(
        inspect(
            &c,
            "upd",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}"
        ),
        format!("{} 50 500000000", 128u64 << 20)
    );
    ok(&c, &["update", "--restart", "on-failure:3", "upd"]);
    assert_eq!(
        inspect(
            &c,
            "upd",
            "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure 3"
    );
    assert!(fails(&c, &["update", "--memory", "1k", "upd"]).contains("at least 6MB"));
    assert!(fails(&c, &["update", "upd"]).contains("one or more flags"));

    // A stopped container keeps the change for its next start.
    ok(&c, &["kill", "upd"]);
    assert_eq!(ok(&c, &["wait", "upd"]), "137");
    ok(&c, &["update", "--pids-limit", "60", "upd"]);
    ok(&c, &["start", "upd"]);
    let pid = pid_of(&c, "upd");
    assert_eq!(read_trim(&cgroup_dir(pid, "pids").join("pids.max")), "60");
    assert_eq!(
        read_trim(&cgroup_dir(pid, "memory").join("memory.limit_in_bytes")),
        (128u64 << 20).to_string()
    );
}

#[test]
fn events_are_logged_filtered_and_followed() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    // A first event, so that the log exists for the follower to open.
    ok(&c, &["volume", "create", "ev-vol"]);
    let log = c.store_root().join("events/events.log");
    let mut follower = c.cmd();
    follower
        .args([
            "events",
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut follower = Reaped(follower.spawn().expect("spawn events"));
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let out = follower.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    // The follower reads the log from its end: it must have it open first.
    let pid = follower.0.id();
    wait_until("the follower to open the log", WAIT, || {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == log))
        })
    });
    ok(&c, &["volume", "rm", "ev-vol"]);
    c.run_detached(rootfs.path(), &["--name", "ev", "sleep", "100"]);
    ok(&c, &["rename", "ev", "ev2"]);
    ok(&c, &["rm", "-f", "ev2"]);
    wait_until("the destroy event", WAIT, || {
        lines
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l == "destroy ev2")
    });
    let seen = lines.lock().expect("lock").clone();
    let want = [
        "create ev",
        "start ev",
        "rename ev2",
        "kill ev2",
        "die ev2",
        "destroy ev2",
    ];
    let mut at = 0;
    for line in &seen {
        if at < want.len() && line == want[at] {
            at += 1;
        }
    }
    assert_eq!(at, want.len(), "in order: {want:?} in {seen:?}");
    assert!(
        !seen.iter().any(|l| l.contains("ev-vol")),
        "type=container: {seen:?}"
    );

    // The past, bounded by --since/--until, with filters and formats.
    let died = ok(
        &c,
        &[
            "events",
            "--since",
            "1h",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--format",
            "json",
        ],
    );
    let event: serde_json::Value = serde_json::from_str(&died).expect("one JSON event");
    assert_eq!(event["Type"], "container");
    assert_eq!(event["status"], "die");
    assert_eq!(event["Actor"]["Attributes"]["exitCode"], "137");
    assert_eq!(event["Actor"]["Attributes"]["name"], "ev2");
    let volumes = ok(
        &c,
        &[
            "system",
            "events",
            "--until",
            "0s",
            "--filter",
            "volume=ev-vol",
        ],
    );
    let actions: Vec<&str> = volumes
        .lines()
        .filter_map(|l| l.split(' ').nth(2))
        .collect();
    assert_eq!(actions, ["create", "destroy"], "{volumes}");
    assert!(
        volumes
            .lines()
            .all(|l| l.contains(" volume ") && l.ends_with("(name=ev-vol)")),
        "{volumes}"
    );
    assert_eq!(ok(&c, &["events", "--since", "0s", "--until", "0s"]), "");
    assert!(fails(&c, &["events", "--filter", "color=red"]).contains("invalid filter"));
}

#[test]
fn info_and_version_answer_with_templates() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    c.run_detached(rootfs.path(), &["--name", "inf", "sleep", "100"]);
    assert_eq!(
        ok(
            &c,
            &[
                "info",
                "--format",
                "{{.Containers}} {{.ContainersRunning}} {{.Driver}} {{.OSType}}"
            ]
        ),
        "1 1 overlay linux"
    );
    let text = ok(&c, &["system", "info"]);
    for needle in [
        "Containers: 1",
        "Running: 1",
        "Cgroup Version:",
        "Storage Driver: overlay",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    assert_eq!(
        ok(
            &c,
            &["version", "--format", "{{.Client.Version}} {{.Server.Os}}"]
        ),
        format!("{} linux", env!("CARGO_PKG_VERSION"))
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&c, &["version", "--format", "json"])).expect("json");
    assert_eq!(json["Client"]["ApiVersion"], "1.43");
    assert!(ok(&c, &["version"]).contains("API version:"));
}

#[test]
fn attach_relays_a_detached_containers_stdio_and_its_exit() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    c.run_detached(
        rootfs.path(),
        &[
            "-i",
            "--name",
            "att",
            "sh",
            "-c",
            "while read l; do echo \"out $l\"; echo \"err $l\" >&2; done",
        ],
    );
    let mut attach = c.cmd();
    attach
        .args(["attach", "att"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut attach = Reaped(attach.spawn().expect("spawn attach"));
    let out = collect(attach.0.stdout.take().expect("stdout"));
    let err = collect(attach.0.stderr.take().expect("stderr"));
    let mut input = attach.0.stdin.take().expect("stdin");
    input.write_all(b"one\n").expect("write");
    wait_until("the container's answer", WAIT, || {
        out.lock().expect("lock").contains("out one")
            && err.lock().expect("lock").contains("err one")
    });
    assert!(
        !out.lock().expect("lock").contains("err one"),
        "stderr stays apart"
    );
    // Ctrl-P Ctrl-Q: attach ends, the container goes on.
    input.write_all(b"\x10\x11").expect("write");
    assert_eq!(wait_exit(&mut attach.0), Some(0));
    assert_eq!(inspect(&c, "att", "{{.State.Running}}"), "true");

    // Output only, then the container's end: attach exits with its code.
    let mut watcher = c.cmd();
    watcher
        .args(["container", "attach", "--no-stdin", "att"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut watcher = Reaped(watcher.spawn().expect("spawn attach"));
    wait_until("the second client", WAIT, || {
        std::fs::read_dir(format!("/proc/{}/fd", watcher.0.id())).is_ok_and(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
        })
    });
    ok(&c, &["kill", "att"]);
    assert_eq!(wait_exit(&mut watcher.0), Some(137));
    assert!(fails(&c, &["attach", "att"]).contains("cannot attach to a stopped container"));
}

#[test]
fn terminals_attach_and_run_it_detaches_leaving_the_container_running() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    let root = rootfs.path().to_str().expect("utf-8");
    c.run_detached(rootfs.path(), &["-it", "--name", "term", "sh"]);
    let mut attach = c.cmd();
    attach.args(["attach", "term"]);
    let mut on_pty = OnPty::spawn(attach, 24, 80);
    on_pty.write(b"echo attached $((6*7))\r");
    on_pty.wait_for("attached 42");
    on_pty.write(b"\x10\x11");
    assert_eq!(on_pty.wait_exit(), Some(0));
    assert_eq!(inspect(&c, "term", "{{.State.Running}}"), "true");

    // run -it in the foreground, left with other detach keys.
    let mut run = c.cmd();
    run.args([
        "run",
        "-it",
        "--name",
        "fg",
        "--detach-keys",
        "ctrl-a,d",
        "--rootfs",
        root,
        "sh",
    ]);
    let mut on_pty = OnPty::spawn(run, 24, 80);
    on_pty.write(b"echo foreground $((2+3))\r");
    on_pty.wait_for("foreground 5");
    on_pty.write(b"\x01d");
    assert_eq!(on_pty.wait_exit(), Some(0));
    assert_eq!(inspect(&c, "fg", "{{.State.Running}}"), "true");
    // Its output went to the log as well.
    assert!(ok(&c, &["logs", "fg"]).contains("foreground 5"));

    let mut again = c.cmd();
    again.args(["attach", "fg"]);
    let mut on_pty = OnPty::spawn(again, 24, 80);
    on_pty.write(b"echo back; exit 3\r");
    on_pty.wait_for("back");
    assert_eq!(on_pty.wait_exit(), Some(3));
    assert_eq!(
        inspect(&c, "fg", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );

    // Without detaching, run -it ends with the container's status, as before.
    let mut run = c.cmd();
    run.args(["run", "-it", "--rm", "--rootfs", root, "sh"]);
    let mut on_pty = OnPty::spawn(run, 24, 80);
    on_pty.write(b"exit 4\r");
    assert_eq!(on_pty.wait_exit(), Some(4));
    let names = ok(&c, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(
        names.lines().count(),
        2,
        "--rm removed it before run returned: {names}"
    );
}

#[test]
fn stats_read_the_containers_cgroup() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    c.run_detached(
        rootfs.path(),
        &[
            "--name",
            "st",
            "--memory",
            "32m",
            "sh",
            "-c",
            "sleep 100 & sleep 100 & wait",
        ],
    );
    wait_until("three processes", WAIT, || {
        ok(&c, &["top", "st"]).lines().count() == 4
    });
    let line = ok(
        &c,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}|{{.NetIO}}",
            "st",
        ],
    );
    let fields: Vec<&str> = line.split('|').collect();
    assert_eq!(fields[0], "st");
    assert!(fields[1].ends_with(" / 32MiB"), "{line}");
    assert_eq!(fields[2], "3");
    assert!(fields[3].ends_with('%'), "{line}");
    assert_eq!(fields[4], "0B / 0B", "host network: no traffic of its own");
    let table = ok(&c, &["container", "stats", "--no-stream"]);
    let mut rows = table.lines();
    let header = rows.next().expect("header");
    for column in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(column), "{column} in {header}");
    }
    assert!(rows.next().expect("a row").contains(" st "), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&c, &["stats", "--no-stream", "--format", "json", "st"]))
            .expect("json");
    assert_eq!(json["PIDs"], "3");
    ok(&c, &["kill", "st"]);
    assert_eq!(ok(&c, &["wait", "st"]), "137");
    let stopped = ok(
        &c,
        &[
            "stats",
            "--no-stream",
            "-a",
            "--format",
            "{{.Name}} {{.CPUPerc}} {{.PIDs}}",
        ],
    );
    assert_eq!(stopped, "st -- --");
    assert!(fails(&c, &["stats", "--no-stream", "nope"]).contains("no such container"));
}

/// Entries (path, uid, gid, content) of a tar archive.
fn tar_entries(bytes: &[u8]) -> Vec<(String, u64, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").to_string_lossy().into_owned();
            let (uid, gid) = (
                e.header().uid().expect("uid"),
                e.header().gid().expect("gid"),
            );
            let mut content = Vec::new();
            e.read_to_end(&mut content).expect("content");
            (path, uid, gid, content)
        })
        .collect()
}

#[test]
fn cp_copies_both_ways_and_never_leaves_the_containers_root() {
    use std::os::unix::fs::MetadataExt;
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    std::fs::write(
        rootfs.path().join("etc/passwd"),
        "root:x:0:0:container:/root:/bin/sh\n",
    )
    .expect("passwd");
    c.run_detached(rootfs.path(), &["--name", "cpc", "sleep", "100"]);
    ok(&c, &["exec", "cpc", "sh", "-c", "mkdir /data && echo inside > /data/f && ln -s /etc /data/etc-link && ln -s ../../../../.. /data/up"]);
    let host = tempfile::tempdir().expect("tempdir");
    let out = host.path();

    // Out: into a directory, to a new name, through symlinks that stay inside.
    ok(&c, &["cp", "cpc:/data/f", &format!("{}/", out.display())]);
    assert_eq!(
        std::fs::read_to_string(out.join("f")).expect("f"),
        "inside\n"
    );
    assert_eq!(std::fs::metadata(out.join("f")).expect("stat").uid(), 0);
    ok(
        &c,
        &[
            "cp",
            "cpc:/data/etc-link/passwd",
            &out.join("p1").to_string_lossy(),
        ],
    );
    ok(
        &c,
        &[
            "cp",
            "cpc:/data/up/etc/passwd",
            &out.join("p2").to_string_lossy(),
        ],
    );
    for p in ["p1", "p2"] {
        assert_eq!(
            std::fs::read_to_string(out.join(p)).expect("copy"),
            "root:x:0:0:container:/root:/bin/sh\n",
            "{p} is the container's"
        );
    }
    ok(
        &c,
        &["cp", "cpc:/data", &out.join("tree").to_string_lossy()],
    );
    assert_eq!(
        std::fs::read_link(out.join("tree/etc-link")).expect("link"),
        Path::new("/etc")
    );

    // In: owned by the container's root unless -a, through symlinks resolved inside.
    let src = out.join("from-host");
    std::fs::write(&src, "from host\n").expect("write");
    std::os::unix::fs::chown(&src, Some(1234), Some(55)).expect("chown");
    ok(&c, &["cp", &src.to_string_lossy(), "cpc:/data/"]);
    ok(&c, &["cp", "-a", &src.to_string_lossy(), "cpc:/data/kept"]);
    assert_eq!(
        ok(
            &c,
            &[
                "exec",
                "cpc",
                "sh",
                "-c",
                "cat /data/from-host; stat -c %u:%g /data/from-host /data/kept"
            ]
        ),
        "from host\n0:0\n1234:55"
    );
    ok(&c, &["cp", &src.to_string_lossy(), "cpc:/data/etc-link/"]);
    assert!(
        rootfs.path().join("etc/from-host").exists(),
        "landed in the container's /etc"
    );
    assert!(!Path::new("/etc/from-host").exists(), "never the host's");

    // Tar streams both ways.
    let archive = c
        .cmd()
        .args(["cp", "cpc:/data", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("cp");
    assert!(archive.status.success(), "{}", stderr(&archive));
    let entries = tar_entries(&archive.stdout);
    let f = entries
        .iter()
        .find(|e| e.0 == "data/f")
        .expect("data/f archived");
    assert_eq!((f.1, f.2, f.3.as_slice()), (0, 0, &b"inside\n"[..]));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(9);
    header.set_mode(0o640);
    header.set_uid(7);
    header.set_gid(7);
    builder
        .append_data(&mut header, "streamed", &b"from tar\n"[..])
        .expect("append");
    let bytes = builder.into_inner().expect("tar");
    let mut cp = c.cmd();
    cp.args(["cp", "-", "cpc:/data"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut cp = cp.spawn().expect("spawn cp");
    cp.stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("write");
    let done = cp.wait_with_output().expect("wait");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        ok(
            &c,
            &["exec", "cpc", "stat", "-c", "%a %u", "/data/streamed"]
        ),
        "640 0"
    );

    // A stopped container: its root is mounted privately for the copy.
    ok(&c, &["kill", "cpc"]);
    ok(&c, &["cp", &src.to_string_lossy(), "cpc:/stopped"]);
    ok(
        &c,
        &[
            "cp",
            "cpc:/data/f",
            &out.join("from-stopped").to_string_lossy(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("from-stopped")).expect("copy"),
        "inside\n"
    );
    ok(&c, &["start", "cpc"]);
    assert_eq!(ok(&c, &["exec", "cpc", "cat", "/stopped"]), "from host");

    assert!(fails(&c, &["cp", "cpc:/nope", &out.to_string_lossy()]).contains("/nope"));
    assert!(fails(&c, &["cp", "a", "b"]).contains("at least one container"));
    assert!(fails(
        &c,
        &["cp", &out.join("tree").to_string_lossy(), "cpc:/data/f"]
    )
    .contains("directory"));
}

#[test]
fn export_writes_the_filesystem_with_the_containers_owners() {
    let c = Ccrun::new();
    let rootfs = Rootfs::busybox();
    c.run_detached(rootfs.path(), &["--name", "ex", "sleep", "100"]);
    ok(
        &c,
        &[
            "exec",
            "ex",
            "sh",
            "-c",
            "echo made > /made && chown 1000:1001 /made",
        ],
    );
    let file = tempfile::NamedTempFile::new().expect("temp file");
    ok(&c, &["export", "-o", &file.path().to_string_lossy(), "ex"]);
    let entries = tar_entries(&std::fs::read(file.path()).expect("read"));
    let made = entries.iter().find(|e| e.0 == "made").expect("made");
    assert_eq!(
        (made.1, made.2, made.3.as_slice()),
        (1000, 1001, &b"made\n"[..])
    );
    let busybox = entries
        .iter()
        .find(|e| e.0 == "bin/busybox")
        .expect("busybox");
    assert_eq!(
        (busybox.1, busybox.2),
        (0, 0),
        "the container's root, not host uid 100000"
    );
    assert!(entries.iter().any(|e| e.0 == "proc"), "mount points stay");
    assert!(
        !entries.iter().any(|e| e.0.starts_with("proc/1")),
        "mounted filesystems do not"
    );
    // To stdout, as `container export`, once stopped too.
    ok(&c, &["kill", "ex"]);
    let out = c
        .cmd()
        .args(["container", "export", "ex"])
        .stdin(Stdio::null())
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tar_entries(&out.stdout).iter().any(|e| e.0 == "made"));
}

#[test]
fn container_port_lists_published_ports() {
    let c = Ccrun::in_netns();
    let rootfs = Rootfs::busybox();
    c.run_detached(
        rootfs.path(),
        &["--name", "web", "-p", "18080:80", "sleep", "100"],
    );
    assert_eq!(
        ok(&c, &["container", "port", "web"]),
        "80/tcp -> 0.0.0.0:18080"
    );
    assert_eq!(ok(&c, &["container", "port", "web", "80"]), "0.0.0.0:18080");
    assert!(fails(&c, &["container", "port", "web", "81"]).contains("81"));
}
