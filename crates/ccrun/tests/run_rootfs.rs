//! `ccrun run --rootfs`: isolation, identity, limits, exit codes and cleanup, checked
//! for real (namespaces, idmapped mounts, v1/v2 cgroups) from inside and from the host.

mod support;

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{host_mounts, proc_uids, stderr, stdout, Ccrun, Rootfs};

#[test]
fn echo_and_exit_codes() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(r.path(), &["echo", "hello", "world"]);
    assert_eq!(stdout(&out), "hello world");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(c.run(r.path(), &["false"]).status.code(), Some(1));
    assert_eq!(
        c.run(r.path(), &["sh", "-c", "exit 42"]).status.code(),
        Some(42)
    );
}

#[test]
fn missing_command_is_127_and_non_executable_is_126() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(r.path(), &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-command"), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one-line error: {}",
        stderr(&out)
    );
    let out = c.run(r.path(), &["/rootfile"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    let out = c.run(r.path(), &["/etc"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert_eq!(c.leftover_state(), 0);
}

#[test]
fn signal_death_is_128_plus_signal() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let running = c.spawn(r.path(), &["sleep", "30"]);
    kill(Pid::from_raw(running.pid), Signal::SIGKILL).expect("kill");
    let out = running.wait();
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn stdin_is_piped_through() {
    use std::io::Write;
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let mut child = c
        .cmd()
        // -i attaches stdin, as with docker run.
        .args(["run", "-i", "--rootfs"])
        .arg(r.path())
        .args(["tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"piped text\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out), "PIPED TEXT");
}

#[test]
fn hostname_is_private() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let host_before = nix::unistd::gethostname().expect("hostname");
    let out = c.run(r.path(), &["--hostname", "container-x", "hostname"]);
    assert_eq!(stdout(&out), "container-x");
    // Changing it takes CAP_SYS_ADMIN, as in Docker.
    let out = c.run(r.path(), &["sh", "-c", "hostname ignored-name"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "sethostname without CAP_SYS_ADMIN"
    );
    let out = c.run(
        r.path(),
        &[
            "--cap-add",
            "SYS_ADMIN",
            "sh",
            "-c",
            "hostname ignored-name && hostname",
        ],
    );
    assert_eq!(stdout(&out), "ignored-name");
    assert_eq!(nix::unistd::gethostname().expect("hostname"), host_before);
    // Without --hostname the short id is used, like Docker.
    let out = c.run(r.path(), &["hostname"]);
    assert_eq!(stdout(&out).len(), 12, "{}", stdout(&out));
}

#[test]
fn root_filesystem_is_confined() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let host_only = std::env::current_exe().expect("exe");
    let script = format!(
        "cd /; cd ..; cd ..; pwd; ls /; test -e {} && echo HOST-VISIBLE; test -e {} && echo ROOTFS-PATH-VISIBLE; true",
        host_only.display(),
        r.path().display()
    );
    let out = c.run(r.path(), &["sh", "-c", &script]);
    let text = stdout(&out);
    assert!(text.starts_with("/\n"), "{text}");
    assert!(text.contains("rootfile"), "{text}");
    assert!(!text.contains("VISIBLE"), "{text}");
}

#[test]
fn pid_namespace_shows_only_the_container() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(r.path(), &["ps", "-o", "pid,args"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "only ps itself: {text}");
    assert!(lines[0].trim_start().starts_with("1 ps"), "{text}");
    let out = c.run(
        r.path(),
        &["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
    );
    let text = stdout(&out);
    let mut it = text.lines();
    assert_eq!(it.next(), Some("1"), "{text}");
    let procs: u32 = it.next().expect("count").parse().expect("number");
    assert!(procs <= 3, "host processes visible: {text}");
}

#[test]
fn mounts_stay_private_and_are_gone_after_exit() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().canonicalize().expect("canonical");
    let running = c.spawn(r.path(), &["sleep", "30"]);
    let inside = std::fs::read_to_string(format!("/proc/{}/mountinfo", running.pid))
        .expect("container mountinfo");
    assert!(
        inside.contains(" /proc "),
        "container has its /proc: {inside}"
    );
    let host = host_mounts();
    assert!(
        !host.contains(&rootfs.display().to_string()),
        "container mounts leaked to the host:\n{host}"
    );
    drop(running);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!host_mounts().contains(&rootfs.display().to_string()));
}

#[test]
fn private_userns_maps_root_to_unprivileged_host_uid() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let running = c.spawn(r.path(), &["sleep", "30"]);
    let uids = proc_uids(running.pid);
    assert!(
        uids.iter().all(|&u| u != 0),
        "container root is host root: {uids:?}"
    );
    // The container's own --userns auto range, out of the harness's subordinate ids.
    let ranges = ccrun_runtime::subid::entries_of(
        std::path::Path::new(ccrun_runtime::subid::SUBUID),
        c.subid_owner(),
        None,
    )
    .expect("subuid");
    assert!(
        ranges
            .iter()
            .any(|e| uids[0] >= e.start + 65536 && u64::from(uids[0]) < e.end()),
        "{uids:?} in {ranges:?}"
    );
    drop(running);
    let out = c.run(r.path(), &["id", "-u"]);
    assert_eq!(stdout(&out), "0");
}

#[test]
fn root_owned_files_appear_owned_by_container_root_and_are_writable() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "sh",
            "-c",
            "stat -c %u:%g /rootfile /bin/busybox; echo new > /created; stat -c %u /created",
        ],
    );
    assert_eq!(stdout(&out), "0:0\n0:0\n0", "{}", stderr(&out));
    // Written through the idmapped mount: stored as host root, no chown of the rootfs.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(r.path().join("created")).expect("created on host");
    assert_eq!(meta.uid(), 0);
    let meta = std::fs::metadata(r.path().join("rootfile")).expect("rootfile");
    assert_eq!(meta.uid(), 0, "rootfs was chowned");
}

#[test]
fn host_userns_runs_as_host_root() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let running = c.spawn(r.path(), &["--userns", "host", "sleep", "30"]);
    assert_eq!(proc_uids(running.pid)[0], 0);
}

#[test]
fn env_workdir_and_user_are_applied() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "-e",
            "FOO=bar",
            "-w",
            "/srv/app",
            "-u",
            "user",
            "sh",
            "-c",
            "echo $FOO; pwd; id; echo $HOME",
        ],
    );
    assert_eq!(
        stdout(&out),
        "bar\n/srv/app\nuid=1000(user) gid=1000(user) groups=10(wheel),1000(user)\n/home/user",
        "{}",
        stderr(&out)
    );
    let out = c.run(r.path(), &["-u", "1234:5678", "id"]);
    assert_eq!(stdout(&out), "uid=1234 gid=5678 groups=5678");
    let out = c.run(r.path(), &["-u", "nobody-here", "id"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn standard_devices_and_filesystems_exist() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let script = "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c \
                  && test -d /dev/pts && test -L /dev/ptmx && test -L /dev/fd && echo ok > /dev/shm/f \
                  && cat /dev/shm/f && (touch /sys/x 2>/dev/null && echo SYS-WRITABLE || echo sys-ro) \
                  && (cat /proc/kcore 2>/dev/null | wc -c)";
    let out = c.run(r.path(), &["sh", "-c", script]);
    assert_eq!(stdout(&out), "4\n4\nok\nsys-ro\n0", "{}", stderr(&out));
}

#[test]
fn read_only_root_blocks_writes() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &["--read-only", "sh", "-c", "touch /x 2>/dev/null && echo WROTE || echo blocked; echo ok > /dev/shm/y && cat /dev/shm/y"],
    );
    assert_eq!(stdout(&out), "blocked\nok");
    assert!(!r.path().join("x").exists());
}

#[test]
fn oom_kill_is_reported_as_137() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "--memory",
            "32m",
            "sh",
            "-c",
            "x=$(head -c 200m /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert!(stderr(&out).contains("OOM"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("survived"));
}

/// The container's cgroup directory for `controller` (v1) or the unified one (v2).
fn cgroup_dir(controller: &str, id: &str) -> std::path::PathBuf {
    let layout = ccrun_cgroups::Layout::detect().expect("layout");
    let cg = ccrun_cgroups::Cgroup::open(&layout, &format!("/ccrun/{id}")).expect("open");
    let paths = cg.paths();
    // v1: the controller's own hierarchy; v2: the unified dir, if it has the controller.
    let v1 = paths
        .iter()
        .find(|p| p.to_string_lossy().contains(&format!("/{controller}/")));
    let v2 = paths.iter().find(|p| {
        std::fs::read_to_string(p.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|n| n == controller))
    });
    v2.or(v1).expect("cgroup dir for controller").clone()
}

#[test]
fn cgroup_limits_land_in_cgroup_files_and_cgroup_is_removed() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let running = c.spawn(
        r.path(),
        &[
            "--cpus",
            "0.5",
            "--pids-limit",
            "42",
            "--memory",
            "64m",
            "--cpu-shares",
            "512",
            "sleep",
            "30",
        ],
    );
    let id = running.id.clone();
    let read = |controller: &str, v1: &str, v2: &str| {
        let dir = cgroup_dir(controller, &id);
        let file = if dir.join("cgroup.controllers").exists() {
            v2
        } else {
            v1
        };
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
            .trim()
            .to_string()
    };
    let quota = read("cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    assert_eq!(read("pids", "pids.max", "pids.max"), "42");
    assert_eq!(
        read("memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    let shares = read("cpu", "cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "{shares}");
    let procs = read("pids", "cgroup.procs", "cgroup.procs");
    assert!(
        procs.lines().any(|p| p == running.pid.to_string()),
        "{procs}"
    );
    let dirs = ccrun_cgroups::Cgroup::open(
        &ccrun_cgroups::Layout::detect().expect("layout"),
        &format!("/ccrun/{id}"),
    )
    .expect("open")
    .paths();
    kill(Pid::from_raw(running.pid), Signal::SIGKILL).expect("kill");
    let out = running.wait();
    assert_eq!(out.status.code(), Some(137));
    for d in dirs {
        assert!(!d.exists(), "cgroup left behind: {}", d.display());
    }
    assert_eq!(c.leftover_state(), 0);
}

#[test]
fn fork_loop_is_stopped_by_pids_limit() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "--pids-limit",
            "10",
            "sh",
            "-c",
            "n=0; while [ $n -lt 30 ]; do sleep 5 & n=$((n+1)); done; echo all-forked",
        ],
    );
    assert!(stderr(&out).contains("fork"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("all-forked"));
}

#[test]
fn sigterm_to_ccrun_reaches_the_container() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let running = c.spawn(
        r.path(),
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    // Give the shell time to install its trap after the container reports running.
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(running.ccrun_pid()), Signal::SIGTERM).expect("kill ccrun");
    let out = running.wait();
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
    assert!(stdout(&out).contains("got-term"));
}

#[test]
fn minimal_init_reaps_zombies_and_forwards_signals() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    // The shell leaves orphans (double-forked sleeps) that only PID 1 can reap.
    let out = c.run(
        r.path(),
        &["--init", "sh", "-c", "for i in 1 2 3; do (sleep 0.1 &) ; done; sleep 0.5; ps -o stat,args | grep -c '^Z' || true; ps -o pid,args | sed -n 2p"],
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "zombies left: {text}");
    assert!(lines.next().unwrap_or("").contains("1 "), "{text}");
    let running = c.spawn(
        r.path(),
        &[
            "--init",
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.1; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(running.ccrun_pid()), Signal::SIGTERM).expect("kill");
    assert_eq!(running.wait().status.code(), Some(7));
}

#[test]
fn bad_input_gives_one_line_error_and_125() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let cases: Vec<Vec<String>> = vec![
        vec!["run".into(), "--no-such-flag".into()],
        vec![
            "run".into(),
            "--rootfs".into(),
            "/nonexistent/rootfs".into(),
            "true".into(),
        ],
        vec![
            "run".into(),
            "--rootfs".into(),
            r.path().display().to_string(),
            "--memory".into(),
            "12q".into(),
            "true".into(),
        ],
        vec![
            "run".into(),
            "--rootfs".into(),
            r.path().display().to_string(),
            "--cpus".into(),
            "abc".into(),
            "true".into(),
        ],
        vec![
            "run".into(),
            "--rootfs".into(),
            r.path().display().to_string(),
        ],
    ];
    for args in cases {
        let out = c.cmd().args(&args).output().expect("spawn");
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(!err.is_empty(), "{args:?}: no message");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = c
        .cmd()
        .args(["run", "--rootfs", "/nonexistent/rootfs", "true"])
        .output()
        .expect("spawn");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("/nonexistent/rootfs"));
}
