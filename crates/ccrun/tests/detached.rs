//! Containers that outlive the command that started them: `run -d` with a monitor,
//! `ps`, `logs`, `exec`, `stop`, `kill`, `start`, `restart`, `wait`, `create`, restart
//! policies, and the truth after SIGKILL of a monitor or a container — all checked
//! against real processes, cgroups and files.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{alive, stderr, stdout, wait_until, Ccrun, Rootfs};

fn run_d(c: &Ccrun, r: &Rootfs, args: &[&str]) -> String {
    c.run_detached(r.path(), args)
}

/// `ps -a --no-trunc --format json` as (id, state, exit code) rows; the exit code
/// is read from Docker's `Status` ("Exited (3) 2 seconds ago").
fn ps_rows(c: &Ccrun) -> Vec<(String, String, Option<i64>)> {
    let out = c.ccrun(&["ps", "-a", "--no-trunc", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let code = v["Status"]
                .as_str()
                .and_then(|s| s.strip_prefix("Exited ("))
                .and_then(|s| s.split(')').next())
                .and_then(|n| n.parse().ok());
            (
                v["ID"].as_str().unwrap_or_default().to_string(),
                v["State"].as_str().unwrap_or_default().to_string(),
                code,
            )
        })
        .collect()
}

fn state_of(c: &Ccrun, id: &str) -> (String, Option<i64>) {
    ps_rows(c)
        .into_iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, s, code)| (s, code))
        .unwrap_or_else(|| ("gone".to_string(), None))
}

fn pid_of(c: &Ccrun, id: &str) -> i32 {
    c.record(id)["pid"].as_i64().expect("pid") as i32
}

/// Nothing of container `id` is left: no record, no cgroup, no runtime state, no mount.
fn assert_gone(c: &Ccrun, id: &str) {
    // The record goes first; the rest of the directory may take a moment longer.
    let dir = c.store_root().join("containers").join(id);
    wait_until(
        "the container directory to go",
        Duration::from_secs(5),
        || !dir.exists(),
    );
    assert!(!c.state_root().join(id).exists());
    for controller in ["memory", "pids", "cpu", "freezer"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("ccrun")
            .join(id);
        assert!(!dir.exists(), "{} left", dir.display());
    }
    let mounts = support::host_mounts();
    assert!(!mounts.contains(id), "mount of {id} left");
}

#[test]
fn detached_container_runs_and_stops_with_its_code() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let started = Instant::now();
    let id = run_d(
        &c,
        &r,
        &[
            "sh",
            "-c",
            "trap 'exit 3' TERM; while :; do sleep 0.1; done",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(state_of(&c, &id).0, "running");
    let out = c.ccrun(&["ps", "-q"]);
    assert_eq!(stdout(&out), id[..12]);
    let pid = pid_of(&c, &id);
    assert!(alive(pid));

    let out = c.ccrun(&["stop", "-t", "5", &id[..8]]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), &id[..8], "stop echoes the name given");
    assert_eq!(state_of(&c, &id), ("exited".to_string(), Some(3)));
    assert!(!alive(pid));
    assert_eq!(stdout(&c.ccrun(&["wait", &id])), "3");
    // Stopping a stopped container is not an error.
    assert_eq!(c.ccrun(&["stop", &id]).status.code(), Some(0));
    assert_eq!(c.ccrun(&["rm", &id]).status.code(), Some(0));
    assert_gone(&c, &id);
}

#[test]
fn stop_kills_after_the_timeout_and_wait_prints_the_code() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    // PID 1 without a handler ignores SIGTERM, so only SIGKILL ends it.
    let id = run_d(&c, &r, &["--name", "stubborn", "sleep", "100"]);
    let started = Instant::now();
    let out = c.ccrun(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "{took:?}");
    assert_eq!(state_of(&c, &id), ("exited".to_string(), Some(137)));
    assert_eq!(stdout(&c.ccrun(&["wait", "stubborn"])), "137");
    // The stop signal of the container is used: with --stop-signal the trap fires.
    let id = run_d(
        &c,
        &r,
        &[
            "--stop-signal",
            "USR1",
            "sh",
            "-c",
            "trap 'exit 10' USR1; while :; do sleep 0.1; done",
        ],
    );
    assert_eq!(c.ccrun(&["stop", &id]).status.code(), Some(0));
    assert_eq!(state_of(&c, &id).1, Some(10));
}

#[test]
fn logs_keep_both_streams_in_order_and_follow_a_live_container() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(
        &c,
        &r,
        &[
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2; printf 'no newline'",
        ],
    );
    assert_eq!(stdout(&c.ccrun(&["wait", &id])), "0");
    let out = c.ccrun(&["logs", &id]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out1\nout2\nno newline"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err1\n");
    let out = c.ccrun(&["logs", "--tail", "1", &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no newline");
    let out = c.ccrun(&["logs", "-t", &id]);
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(String::from);
    let first = first.expect("a line");
    assert!(
        first.len() > 30 && first.ends_with("Z out1") && first.contains('T'),
        "{first}"
    );
    // The log file itself is in the CRI format.
    let log = std::fs::read_to_string(
        c.store_root()
            .join("containers")
            .join(&id)
            .join("container.log"),
    )
    .expect("log file");
    assert!(log.lines().any(|l| l.ends_with(" stderr F err1")), "{log}");

    // -f streams lines while the container runs and ends when it does.
    let id = run_d(
        &c,
        &r,
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.4; done",
        ],
    );
    let mut follower = c
        .cmd()
        .args(["logs", "-f", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f");
    let mut lines = BufReader::new(follower.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("read");
    assert_eq!(first, "line1");
    assert_eq!(state_of(&c, &id).0, "running", "line1 arrived while it ran");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(rest, ["line2", "line3"]);
    let status = follower.wait().expect("wait logs");
    assert!(status.success());
}

#[test]
fn foreground_output_is_shown_and_logged() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    let out = c.ccrun(&[
        "run",
        "--name",
        "fg",
        "--rootfs",
        rootfs,
        "sh",
        "-c",
        "echo a; echo b >&2; exit 2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "b\n");
    let out = c.ccrun(&["logs", "fg"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "b\n");
}

#[test]
fn log_rotates_at_its_size_limit() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(
        &c,
        &r,
        &[
            "--log-opt",
            "max-size=4k",
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done",
        ],
    );
    assert_eq!(stdout(&c.ccrun(&["wait", &id])), "0");
    let dir = c.store_root().join("containers").join(&id);
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    assert!(size("container.log.1") > 0, "rotated file");
    assert!(size("container.log") <= 4096 && size("container.log.1") <= 4096);
    // Only the last rotation is kept: the newest lines, in order, end at line299.
    let out = stdout(&c.ccrun(&["logs", &id]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.last(), Some(&"line299"));
    let first: usize = lines[0].trim_start_matches("line").parse().expect("number");
    let expected: Vec<String> = (first..300).map(|i| format!("line{i}")).collect();
    assert_eq!(lines, expected);
}

#[test]
fn exec_joins_the_container_and_returns_the_status() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(
        &c,
        &r,
        &["--hostname", "box", "-e", "FOO=bar", "sleep", "100"],
    );
    let out = c.ccrun(&[
        "exec",
        &id[..12],
        "sh",
        "-c",
        "cat /proc/1/comm; hostname; echo $FOO; test -e /rootfile && echo rootfs; pwd",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "sleep\nbox\nbar\nrootfs\n/");
    let out = c.ccrun(&[
        "exec",
        "-e",
        "FOO=baz",
        "-w",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd",
    ]);
    assert_eq!(stdout(&out), "baz\n/tmp");
    let out = c.ccrun(&["exec", "-u", "1000:1000", &id, "id", "-u"]);
    assert_eq!(stdout(&out), "1000");
    assert_eq!(
        c.ccrun(&["exec", &id, "sh", "-c", "exit 5"]).status.code(),
        Some(5)
    );
    let out = c.ccrun(&["exec", &id, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // The exec'd process joins the container's cgroup (seen from the host: inside,
    // the cgroup namespace shows it as "/").
    let procs = std::path::Path::new("/sys/fs/cgroup/pids/ccrun")
        .join(&id)
        .join("cgroup.procs");
    let count = || {
        std::fs::read_to_string(&procs)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert_eq!(count(), 1);
    let mut sleeper = c
        .cmd()
        .args(["exec", &id, "sleep", "2"])
        .spawn()
        .expect("exec sleep");
    wait_until(
        "the exec'd sleep in the cgroup",
        Duration::from_secs(5),
        || count() == 2,
    );
    assert!(sleeper.wait().expect("wait").success());
    // stdin only with -i.
    let mut child = c
        .cmd()
        .args(["exec", "-i", &id, "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("exec -i");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"shout\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out), "SHOUT");
    assert_eq!(c.ccrun(&["rm", "-f", &id]).status.code(), Some(0));
    let out = c.ccrun(&["exec", &id, "true"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn exec_it_gets_a_terminal() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(&c, &r, &["sleep", "100"]);
    let mut cmd = c.cmd();
    cmd.args(["exec", "-it", &id, "sh"]);
    let pty = ccrun_testkit::pty::OnPty::spawn(cmd, 30, 100);
    pty.write(b"tty; stty size; exit 9\r");
    pty.wait_for("/dev/pts/");
    pty.wait_for("30 100");
    assert_eq!(pty.exit_code(), Some(9));
}

#[test]
fn sigkill_of_container_or_monitor_leaves_a_true_state() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    // The container killed: its monitor records 137.
    let id = run_d(&c, &r, &["sleep", "100"]);
    kill(Pid::from_raw(pid_of(&c, &id)), Signal::SIGKILL).expect("kill");
    assert_eq!(stdout(&c.ccrun(&["wait", &id])), "137");
    assert_eq!(state_of(&c, &id), ("exited".to_string(), Some(137)));
    assert_eq!(c.ccrun(&["rm", &id]).status.code(), Some(0));
    assert_gone(&c, &id);

    // The monitor killed: the container still runs and says so; once it dies
    // unobserved it is dead, and rm -f cleans everything.
    let id = run_d(&c, &r, &["sleep", "100"]);
    let monitor = c.record(&id)["monitor_pid"].as_i64().expect("monitor") as i32;
    assert!(alive(monitor));
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill monitor");
    wait_until("the monitor to die", Duration::from_secs(5), || {
        !alive(monitor)
    });
    assert_eq!(state_of(&c, &id).0, "running");
    let pid = pid_of(&c, &id);
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
    wait_until("the container to die", Duration::from_secs(5), || {
        !alive(pid)
    });
    assert_eq!(state_of(&c, &id), ("dead".to_string(), None));
    let out = c.ccrun(&["rm", "-f", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_gone(&c, &id);

    // The monitor killed, then rm -f of the still running container.
    let id = run_d(&c, &r, &["sleep", "100"]);
    let monitor = c.record(&id)["monitor_pid"].as_i64().expect("monitor") as i32;
    let pid = pid_of(&c, &id);
    kill(Pid::from_raw(monitor), Signal::SIGKILL).expect("kill monitor");
    let out = c.ccrun(&["rm", "-f", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_until("the container to die", Duration::from_secs(5), || {
        !alive(pid)
    });
    assert_gone(&c, &id);
}

#[test]
fn a_store_removed_under_a_running_container_leaves_no_cgroup() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(&c, &r, &["sleep", "100"]);
    let pid = pid_of(&c, &id);
    // The monitor may be creating the log right now: retry a directory that refills.
    let store = c.store_root().join("containers");
    let mut removed = std::fs::remove_dir_all(&store);
    for _ in 0..50 {
        if removed.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        removed = std::fs::remove_dir_all(&store);
    }
    removed.expect("remove the store");
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill");
    let cgroup = std::path::Path::new("/sys/fs/cgroup/pids/ccrun").join(&id);
    wait_until("the cgroup to go", Duration::from_secs(10), || {
        !cgroup.exists()
    });
    wait_until("the runtime state to go", Duration::from_secs(10), || {
        !c.state_root().join(&id).exists()
    });
    assert!(
        !c.store_root().join("containers").exists(),
        "the removed store was recreated"
    );
}

#[test]
fn twenty_concurrent_containers_are_all_recorded_and_removable() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let ids = c.start_concurrently(r.path(), 20, "many");
    let rows = ps_rows(&c);
    assert_eq!(rows.len(), 20);
    for id in &ids {
        assert!(
            rows.iter().any(|(i, s, _)| i == id && s == "running"),
            "{id} missing in {rows:?}"
        );
    }
    c.remove_concurrently(&ids);
    assert!(ps_rows(&c).is_empty());
    for id in &ids {
        assert_gone(&c, id);
    }
}

#[test]
fn restart_on_failure_restarts_twice() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(
        &c,
        &r,
        &["--restart", "on-failure:2", "sh", "-c", "echo run; exit 1"],
    );
    wait_until("two restarts", Duration::from_secs(20), || {
        let rec = c.record(&id);
        rec["restart_count"] == 2 && rec["status"] == "exited"
    });
    // Give a third (wrong) restart the time it would need, then check.
    std::thread::sleep(Duration::from_millis(800));
    let rec = c.record(&id);
    assert_eq!(rec["restart_count"], 2);
    assert_eq!(rec["status"], "exited");
    assert_eq!(rec["exit_code"], 1);
    let out = c.ccrun(&["logs", &id]);
    assert_eq!(stdout(&out), "run\nrun\nrun");
    // A stopped container with --restart always stays stopped.
    let id = run_d(&c, &r, &["--restart", "always", "sleep", "100"]);
    assert_eq!(c.ccrun(&["stop", "-t", "0", &id]).status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state_of(&c, &id).0, "exited");
    // --restart with --rm is refused.
    let out = c.ccrun(&[
        "run",
        "--rm",
        "--restart",
        "always",
        "--rootfs",
        r.path().to_str().expect("utf-8"),
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn create_start_restart_and_auto_remove() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    let out = c.ccrun(&[
        "create",
        "--name",
        "twostep",
        "--rootfs",
        rootfs,
        "sh",
        "-c",
        "echo hi; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out);
    assert_eq!(state_of(&c, &id).0, "created");
    let out = c.ccrun(&["start", "-a", "twostep"]);
    assert_eq!(stdout(&out), "hi");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(state_of(&c, &id), ("exited".to_string(), Some(4)));
    // Started again, detached: the log (which has the attached run's line too) gets
    // a second line.
    let out = c.ccrun(&["start", "twostep"]);
    assert_eq!(stdout(&out), "twostep");
    assert_eq!(stdout(&c.ccrun(&["wait", "twostep"])), "4");
    assert_eq!(stdout(&c.ccrun(&["logs", "twostep"])), "hi\nhi");

    let id = run_d(&c, &r, &["sleep", "100"]);
    let before = pid_of(&c, &id);
    let out = c.ccrun(&["restart", "-t", "0", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(state_of(&c, &id).0, "running");
    let after = pid_of(&c, &id);
    assert_ne!(before, after);
    assert!(!alive(before) && alive(after));

    let id = run_d(&c, &r, &["--rm", "sh", "-c", "exit 0"]);
    wait_until("--rm to remove it", Duration::from_secs(10), || {
        state_of(&c, &id).0 == "gone"
    });
    assert_gone(&c, &id);
}

#[test]
fn name_and_prefix_conflicts_are_clear_125_errors() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let rootfs = r.path().to_str().expect("utf-8");
    run_d(&c, &r, &["--name", "dup", "sleep", "100"]);
    let out = c.ccrun(&["run", "-d", "--name", "dup", "--rootfs", rootfs, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));
    // Two containers whose ids share a first digit make that digit ambiguous.
    let mut ids = Vec::new();
    let shared = loop {
        let out = c.ccrun(&["create", "--rootfs", rootfs, "true"]);
        let id = stdout(&out);
        if let Some(other) = ids.iter().find(|o: &&String| o[..1] == id[..1]) {
            break other[..1].to_string();
        }
        ids.push(id);
        assert!(ids.len() <= 17, "pigeonhole");
    };
    let out = c.ccrun(&["stop", &shared]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("multiple containers"),
        "{}",
        stderr(&out)
    );
    let out = c.ccrun(&["logs", &shared]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("multiple containers"),
        "{}",
        stderr(&out)
    );
    let out = c.ccrun(&["kill", "no-such-container"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no such container"),
        "{}",
        stderr(&out)
    );
}

/// The init is in its own cgroup in every hierarchy, the unified (cgroup2) one
/// included, where the runtime now creates it directly (clone3 `CLONE_INTO_CGROUP`)
/// instead of moving it (this checks where it is, not how it got there); and the
/// cgroups go with the container.
#[test]
fn init_starts_in_its_cgroups_the_unified_one_included() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = run_d(&c, &r, &["sleep", "30"]);
    let pid = pid_of(&c, &id);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let wanted = format!("/ccrun/{id}");
    for controller in ["memory", "pids"] {
        assert!(
            cgroups.lines().any(|l| l
                .split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == controller))
                && l.ends_with(&wanted)),
            "{controller}: {cgroups}"
        );
    }
    let unified = std::path::Path::new("/sys/fs/cgroup/unified");
    let is_cgroup2 = nix::sys::statfs::statfs(unified)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if is_cgroup2 {
        assert!(
            cgroups.lines().any(|l| l == format!("0::{wanted}")),
            "unified: {cgroups}"
        );
    }
    let out = c.ccrun(&["rm", "-f", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_gone(&c, &id);
    if is_cgroup2 {
        assert!(!unified.join("ccrun").join(&id).exists());
    }
}
