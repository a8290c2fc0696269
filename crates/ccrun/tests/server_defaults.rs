//! What real server images (nginx, redis, postgres, JVMs) need from ccrun's defaults,
//! checked with busybox: stdio they can reopen as `/dev/stdout` in the private user
//! namespace, an `--init` that lets `run -d` return and hides the host, their own
//! cgroup under `/sys/fs/cgroup`, Docker's open-files limit, a rootfs anywhere on the
//! host, bind mounts with `:idmap` and relative sources, and `ip netns exec`.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{stderr, stdout, wait_until, Ccrun, Rootfs};

/// Runs `ccrun ARGS`, failing the test unless it succeeds; returns stdout.
fn ok(c: &Ccrun, args: &[&str]) -> String {
    let out = c.ccrun(args);
    assert!(out.status.success(), "ccrun {args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn stdio_can_be_reopened_in_the_user_namespace() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    let script = "echo out > /dev/stdout && echo err > /dev/stderr && echo fd >> /proc/self/fd/1";
    for user in ["0", "1000"] {
        let out = c.run(r.path(), &["--rm", "-u", user, "sh", "-c", script]);
        assert!(out.status.success(), "-u {user}: {}", stderr(&out));
        assert_eq!(stdout(&out), "out\nfd", "-u {user}");
        assert_eq!(stderr(&out), "err", "-u {user}");
    }
    // Detached: the monitor's pipes, then again after stop + start.
    ok(
        &c,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--rootfs",
            rootfs,
            "sh",
            "-c",
            &format!("{script}; sleep 1000"),
        ],
    );
    let logs = |c: &Ccrun| {
        let out = c.ccrun(&["logs", "web"]);
        format!("{}|{}", stdout(&out), stderr(&out))
    };
    wait_until("the detached output", Duration::from_secs(10), || {
        logs(&c) == "out\nfd|err"
    });
    ok(&c, &["stop", "-t", "0", "web"]);
    ok(&c, &["start", "web"]);
    wait_until("the restarted output", Duration::from_secs(10), || {
        logs(&c).matches("out").count() == 2
    });
    // exec, with ccrun's stdout a pipe, and a file (relayed through a pipe of its own).
    assert_eq!(ok(&c, &["exec", "web", "sh", "-c", script]), "out\nfd");
    assert_eq!(
        ok(&c, &["exec", "-u", "1000", "web", "sh", "-c", script]),
        "out\nfd"
    );
    let file = tempfile::NamedTempFile::new().expect("tempfile");
    let status = c
        .cmd()
        .args(["exec", "web", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(file.reopen().expect("reopen"))
        .stderr(Stdio::null())
        .status()
        .expect("exec");
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(file.path()).expect("read"),
        "out\nfd\n"
    );
    ok(&c, &["rm", "-f", "web"]);
}

/// Runs `ccrun ARGS` and fails if it does not return within `limit`.
fn returns_within(c: &Ccrun, args: &[&str], limit: Duration) -> String {
    let mut child = c
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            assert!(status.success(), "ccrun {args:?}: {}", stderr(&out));
            return stdout(&out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ccrun {args:?} did not return within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn init_lets_run_detach_and_shows_nothing_of_the_host() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    let limit = Duration::from_secs(10);
    returns_within(
        &c,
        &[
            "run", "-d", "--init", "--name", "tini", "--rootfs", rootfs, "sleep", "1000",
        ],
        limit,
    );
    let cmdline = ok(
        &c,
        &["exec", "tini", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"],
    );
    assert!(
        cmdline.starts_with("ccrun-init -- sleep 1000"),
        "{cmdline:?}"
    );
    let host_bin = Path::new(env!("CARGO_BIN_EXE_ccrun"));
    assert!(
        !cmdline.contains(&host_bin.display().to_string()),
        "{cmdline}"
    );
    // Its binary and descriptors are out of the container's reach.
    let exe = c.ccrun(&["exec", "tini", "readlink", "/proc/1/exe"]);
    assert!(!stdout(&exe).contains(&host_bin.display().to_string()));
    let fds = ok(
        &c,
        &[
            "exec",
            "tini",
            "sh",
            "-c",
            "ls /proc/1/fd 2>/dev/null | wc -l",
        ],
    );
    assert!(
        fds.parse::<u32>().expect("count") <= 3,
        "PID 1 holds {fds} fds"
    );
    ok(&c, &["stop", "-t", "1", "tini"]);
    returns_within(&c, &["start", "tini"], limit);
    ok(&c, &["rm", "-f", "tini"]);
}

/// Where a container finds its memory and pids limits (cgroup v2, or v1/hybrid).
fn limit_files() -> (&'static str, &'static str) {
    let v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if v2 {
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max")
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        )
    }
}

#[test]
fn containers_see_their_own_cgroup_and_its_limits() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let (memory, pids) = limit_files();
    let out = c.run(
        r.path(),
        &[
            "--rm",
            "-m",
            "100m",
            "--pids-limit",
            "77",
            "cat",
            memory,
            pids,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "104857600\n77");
    // Read-only unless privileged.
    let out = c.run(r.path(), &["--rm", "sh", "-c", &format!("echo 5 > {pids}")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Read-only"), "{}", stderr(&out));
}

/// What ccrun may hand a container as its open-files limit (see `default_nofile`).
fn expected_nofile() -> u64 {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .expect("nr_open")
        .trim()
        .parse()
        .expect("number");
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let eff =
        u64::from_str_radix(&ccrun_testkit::status_field(&status, "CapEff"), 16).expect("mask");
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    let mut limit = 1_048_576u64.min(nr_open);
    if eff & (1 << 24) == 0 {
        limit = limit.min(hard);
    }
    limit
}

#[test]
fn open_files_limit_defaults_to_dockers() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let want = expected_nofile();
    assert!(
        want > 1024,
        "this host caps ccrun at {want}: nothing to check"
    );
    let out = c.run(
        r.path(),
        &["--name", "files", "sh", "-c", "ulimit -n; ulimit -Hn"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{want}\n{want}"));
    let shown = ok(
        &c,
        &["inspect", "-f", "{{json .HostConfig.Ulimits}}", "files"],
    );
    assert_eq!(
        shown,
        format!(r#"[{{"Hard":{want},"Name":"nofile","Soft":{want}}}]"#)
    );
    // --ulimit still wins.
    let out = c.run(
        r.path(),
        &[
            "--rm",
            "--ulimit",
            "nofile=512:1000",
            "sh",
            "-c",
            "ulimit -n",
        ],
    );
    assert_eq!(stdout(&out), "512", "{}", stderr(&out));
    ok(&c, &["rm", "files"]);
}

#[test]
fn a_rootfs_below_a_private_directory_works_in_the_user_namespace() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(home.path(), PermissionsExt::from_mode(0o700)).expect("chmod");
    let rootfs = home.path().join("rf");
    let copied = Command::new("cp")
        .args(["-a"])
        .arg(r.path())
        .arg(&rootfs)
        .status()
        .expect("cp");
    assert!(copied.success());
    let out = c.run(
        &rootfs,
        &["--rm", "sh", "-c", "echo from-a-private-home; id -u"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-a-private-home\n0");
}

#[test]
fn idmapped_and_relative_bind_mounts() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(host.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let work = host.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    nix::unistd::chown(&work, Some(1000.into()), Some(1000.into())).expect("chown");
    std::fs::write(host.path().join("rootowned"), "x").expect("write");
    let run_in = |args: &[&str]| {
        c.cmd()
            .current_dir(host.path())
            .arg("run")
            .arg("--rootfs")
            .arg(r.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn")
    };
    // A relative source, idmapped: host owners appear as themselves, and what the
    // container's user 1000 writes lands as host uid 1000.
    let out = run_in(&[
        "--rm",
        "-u",
        "1000",
        "-v",
        "./work:/work:idmap",
        "sh",
        "-c",
        "stat -c %u /work && echo hi > /work/made",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1000");
    assert_eq!(
        std::fs::metadata(work.join("made")).expect("made").uid(),
        1000
    );
    let out = run_in(&[
        "--rm",
        "--mount",
        "type=bind,src=.,dst=/h,idmap",
        "sh",
        "-c",
        "stat -c %u /h/rootowned && chown 70:70 /h/rootowned",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "0");
    assert_eq!(
        std::fs::metadata(host.path().join("rootowned"))
            .expect("stat")
            .uid(),
        70
    );
    // Without idmap, in the user namespace, host owners are not mapped.
    let out = run_in(&["--rm", "-v", "./work:/work", "stat", "-c", "%u", "/work"]);
    assert_eq!(stdout(&out), "65534", "{}", stderr(&out));
    // idmap needs the container's own user namespace.
    let out = run_in(&[
        "--rm",
        "--userns",
        "host",
        "-v",
        "./work:/work:idmap",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("user namespace"), "{}", stderr(&out));
}

#[test]
fn runs_under_ip_netns_exec() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let ns = format!("ccrun-t-{}-ipexec", std::process::id());
    let added = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .expect("ip");
    assert!(added.success());
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(ns.clone());
    let before = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let cmd = c.cmd();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(cmd.get_program())
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--pids-limit",
            "42",
            "--rootfs",
        ])
        .arg(r.path())
        .args(["cat", limit_files().1])
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .output()
        .expect("ip netns exec");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "42");
    let after = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert_eq!(
        before.lines().filter(|l| l.contains("cgroup")).count(),
        after.lines().filter(|l| l.contains("cgroup")).count(),
        "the host's mounts changed"
    );
}
