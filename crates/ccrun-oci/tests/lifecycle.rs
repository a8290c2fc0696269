//! ccrun-oci's runc command line on bundles made from `ccrun-oci spec` output and a
//! busybox rootfs: the lifecycle and its states, exit statuses, exec, ps, list,
//! pause/resume, update, events, errors with runc's messages, the JSON log file, and
//! the console socket.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{cgroup_file, receive_fd, unique_id, wait_until, Bundle, Oci};

fn pid_of(state: &Value) -> i64 {
    state["pid"].as_i64().expect("pid")
}

#[test]
fn create_start_kill_delete_go_through_the_states() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |c| {
        c["annotations"] = serde_json::json!({"org.example.note": "kept"});
    });
    let id = unique_id("life");
    let pid_file = tempfile::NamedTempFile::new().expect("tmp");
    let pid_path = pid_file.path().to_str().expect("utf-8");
    oci.ok(&[
        "create",
        "--bundle",
        bundle.path(),
        "--pid-file",
        pid_path,
        &id,
    ]);

    let state = oci.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], bundle.path());
    assert_eq!(state["owner"], "root");
    assert_eq!(state["annotations"]["org.example.note"], "kept");
    assert!(state["created"].as_str().is_some_and(|c| c.contains('T')));
    let pid = pid_of(&state);
    assert_eq!(
        std::fs::read_to_string(pid_file.path()).expect("pid file"),
        pid.to_string()
    );
    // Parked at the exec gate: not yet the program.
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm().trim(), "sleep");

    oci.ok(&["start", &id]);
    assert_eq!(oci.status(&id), "running");
    wait_until("the program to run", || comm().trim() == "sleep");

    oci.ok(&["kill", &id, "KILL"]);
    oci.wait_status(&id, "stopped");
    assert_eq!(
        pid_of(&oci.state(&id)),
        0,
        "runc reports pid 0 once stopped"
    );
    let cgroup = cgroup_dir_of(&id);
    oci.ok(&["delete", &id]);
    let err = oci.fails(&["state", &id]);
    assert!(err.contains("container does not exist"), "{err}");
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());
}

/// The container's pids-controller cgroup directory (ccrun's default path).
fn cgroup_dir_of(id: &str) -> std::path::PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/pids/ccrun").join(id);
    if Path::new("/sys/fs/cgroup/pids").exists() {
        v1
    } else {
        Path::new("/sys/fs/cgroup/ccrun").join(id)
    }
}

#[test]
fn run_in_the_foreground_exits_with_the_containers_status() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 7"], |_| {});
    let id = unique_id("fg");
    let out = oci.run(&["run", "--bundle", bundle.path(), &id]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // Without --keep the container is gone afterwards, as with runc.
    assert!(oci.fails(&["state", &id]).contains("does not exist"));

    // Killed from outside (PID 1 of its namespace cannot SIGKILL itself): 128 + 9.
    let killed = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("fg9");
    let mut child = oci
        .command(&["run", "-b", killed.path(), &id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn run");
    wait_until("the container to run", || {
        oci.run(&["state", &id])
            .stdout
            .windows(9)
            .any(|w| w == b"\"running\"")
    });
    oci.ok(&["kill", &id, "KILL"]);
    assert_eq!(child.wait().expect("wait").code(), Some(137));
}

#[test]
fn exec_runs_in_the_container_and_returns_its_status() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |c| {
        c["process"]["env"] = serde_json::json!(["PATH=/bin", "FROM_SPEC=yes"]);
        c["hostname"] = "oci-exec".into();
    });
    let id = unique_id("exec");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);

    let out = oci.run(&[
        "exec",
        "-e",
        "EXTRA=1",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FROM_SPEC $EXTRA $(pwd) $(hostname) $(cat /rootfile); exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "yes 1 /tmp oci-exec owned by root\n"
    );

    // --process, as conmon and containerd's shim call it, detached with a pid file.
    let dir = tempfile::tempdir().expect("tmp");
    let process = dir.path().join("process.json");
    std::fs::write(
        &process,
        r#"{"args":["sh","-c","echo $$ > /tmp/exec-pid; sleep 1000"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":1000,"gid":1000}}"#,
    )
    .expect("write");
    let pid_file = dir.path().join("exec.pid");
    oci.ok(&[
        "exec",
        "--process",
        process.to_str().expect("utf-8"),
        "--detach",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        &id,
    ]);
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t1000\t")),
        "{status}"
    );
    let pids: Vec<i64> =
        serde_json::from_str(&oci.ok(&["ps", "--format", "json", &id])).expect("ps");
    assert!(pids.contains(&i64::from(pid)), "{pids:?} lacks {pid}");
    assert!(pids.contains(&pid_of(&oci.state(&id))));
    let table = oci.ok(&["ps", &id]);
    assert!(table.contains("sleep 1000"), "{table}");
    // The detached process is not ours: reparented when ccrun-oci exited.
    oci.ok(&["delete", "--force", &id]);
    wait_until("the exec'd process to go", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
}

#[test]
fn list_shows_containers_and_their_status() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |_| {});
    let running = unique_id("list-a");
    let created = unique_id("list-b");
    oci.ok(&["run", "-d", "-b", bundle.path(), &running]);
    oci.ok(&["create", "-b", bundle.path(), &created]);
    let ids = oci.ok(&["list", "-q"]);
    assert_eq!(ids, format!("{running}\n{created}\n"));
    let list: Vec<Value> =
        serde_json::from_str(&oci.ok(&["list", "--format", "json"])).expect("json");
    let status = |id: &str| {
        list.iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].clone())
            .expect("listed")
    };
    assert_eq!(status(&running), "running");
    assert_eq!(status(&created), "created");
    let table = oci.ok(&["ls"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&running) && table.contains("running"),
        "{table}"
    );
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let oci = Oci::new();
    let bundle = Bundle::new(
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; usleep 20000; done",
        ],
        |_| {},
    );
    let id = unique_id("pause");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    let counter = bundle.rootfs().join("tmp/n");
    let read = || std::fs::read_to_string(&counter).unwrap_or_default();
    wait_until("the counter to start", || !read().is_empty());

    oci.ok(&["pause", &id]);
    assert_eq!(oci.status(&id), "paused");
    let pid = pid_of(&oci.state(&id));
    let freezer = cgroup_file(pid, "freezer", "freezer.state");
    if freezer.exists() {
        assert_eq!(
            std::fs::read_to_string(&freezer).expect("freezer").trim(),
            "FROZEN"
        );
    } else {
        let freeze = cgroup_file(pid, "", "cgroup.freeze");
        assert_eq!(
            std::fs::read_to_string(&freeze).expect("freeze").trim(),
            "1"
        );
    }
    let before = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), before, "the counter moved while paused");
    // runc's message for pausing twice.
    assert!(oci.fails(&["pause", &id]).contains("container not running"));
    assert!(oci.fails(&["start", &id]).contains("already running"));

    oci.ok(&["resume", &id]);
    assert_eq!(oci.status(&id), "running");
    let frozen_at = read();
    wait_until("the counter to move again", || read() != frozen_at);
    assert!(oci.fails(&["resume", &id]).contains("container not paused"));
}

#[test]
fn update_changes_the_live_cgroup() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("update");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    let pid = pid_of(&oci.state(&id));

    oci.ok(&["update", "--pids-limit", "42", &id]);
    let pids_max = cgroup_file(pid, "pids", "pids.max");
    assert_eq!(
        std::fs::read_to_string(&pids_max).expect("pids.max").trim(),
        "42"
    );

    // The JSON document on stdin, as podman and containerd's shim send it.
    let mut child = oci
        .command(&["update", "--resources", "-", &id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"pids":{"limit":77},"memory":{"limit":67108864}}"#)
        .expect("write");
    assert!(child.wait().expect("wait").success());
    assert_eq!(
        std::fs::read_to_string(&pids_max).expect("pids.max").trim(),
        "77"
    );
    let memory = cgroup_file(pid, "memory", "memory.limit_in_bytes");
    let memory = if memory.exists() {
        memory
    } else {
        cgroup_file(pid, "memory", "memory.max")
    };
    assert_eq!(
        std::fs::read_to_string(&memory)
            .expect("memory limit")
            .trim(),
        "67108864"
    );

    let stats = oci.ok(&["events", "--stats", &id]);
    let event: Value = serde_json::from_str(&stats).expect("event JSON");
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    assert!(
        event["data"]["pids"]["current"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{event}"
    );
    assert!(
        event["data"]["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{event}"
    );
}

#[test]
fn kill_all_signals_every_process() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"], |_| {});
    let id = unique_id("killall");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    wait_until("three processes", || {
        serde_json::from_str::<Vec<i64>>(&oci.ok(&["ps", "-f", "json", &id]))
            .is_ok_and(|p| p.len() == 3)
    });
    oci.ok(&["kill", "--all", &id, "9"]);
    oci.wait_status(&id, "stopped");
    wait_until("an empty cgroup", || {
        serde_json::from_str::<Vec<i64>>(&oci.ok(&["ps", "-f", "json", &id]))
            .is_ok_and(|p| p.is_empty())
    });
    // As runc: signalling a stopped container's init fails.
    assert!(oci.fails(&["kill", &id]).contains("container not running"));
}

#[test]
fn errors_match_runc() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("errors");
    for args in [
        vec!["state", "nope"],
        vec!["start", "nope"],
        vec!["kill", "nope"],
        vec!["delete", "nope"],
        vec!["exec", "nope", "true"],
        vec!["pause", "nope"],
    ] {
        let err = oci.fails(&args);
        assert!(err.contains("container does not exist"), "{args:?}: {err}");
    }
    // runc ignores a missing container with --force.
    oci.ok(&["delete", "--force", "nope"]);

    oci.ok(&["create", "-b", bundle.path(), &id]);
    let err = oci.fails(&["create", "-b", bundle.path(), &id]);
    assert!(err.contains("container with id exists"), "{err}");
    oci.ok(&["start", &id]);
    let err = oci.fails(&["start", &id]);
    assert!(
        err.contains("cannot start an already running container"),
        "{err}"
    );
    let err = oci.fails(&["delete", &id]);
    assert!(err.contains("is not stopped: running"), "{err}");
    assert_eq!(
        oci.status(&id),
        "running",
        "a refused delete left it running"
    );
    let err = oci.fails(&["kill", &id, "NOSUCHSIG"]);
    assert!(err.contains("unknown signal"), "{err}");
    oci.ok(&["kill", &id, "9"]);
    oci.wait_status(&id, "stopped");
    let err = oci.fails(&["start", &id]);
    assert!(
        err.contains("cannot start a container that has stopped"),
        "{err}"
    );
    let err = oci.fails(&["exec", &id, "true"]);
    assert!(err.contains("cannot exec in a stopped container"), "{err}");
    oci.ok(&["delete", &id]);

    let err = oci.fails(&["--systemd-cgroup", "state", &id]);
    assert!(err.contains("--systemd-cgroup is not supported"), "{err}");
}

#[test]
fn errors_go_to_the_log_file_as_json_lines() {
    let oci = Oci::new();
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log.json");
    let log_arg = log.to_str().expect("utf-8");
    let err = oci.fails(&["--log", log_arg, "--log-format", "json", "state", "nope"]);
    assert!(err.contains("container does not exist"), "{err}");
    let text = std::fs::read_to_string(&log).expect("log");
    let line: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container does not exist");
    assert!(
        line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{line}"
    );

    // A setup failure inside the container reaches the log too (conmon shows it).
    let bundle = Bundle::new(&["/no/such/program"], |_| {});
    oci.fails(&[
        "--log",
        log_arg,
        "--log-format=json",
        "create",
        "-b",
        bundle.path(),
        &unique_id("logfail"),
    ]);
    let text = std::fs::read_to_string(&log).expect("log");
    let line: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
    assert!(
        line["msg"]
            .as_str()
            .is_some_and(|m| m.contains("/no/such/program")),
        "{line}"
    );
}

#[test]
fn the_terminal_master_goes_to_the_console_socket() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sh"], |c| {
        c["process"]["terminal"] = true.into();
        c["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 77});
    });
    let id = unique_id("console");
    // runc's rule: a detached terminal needs a socket to go to.
    let err = oci.fails(&["create", "-b", bundle.path(), &id]);
    assert!(
        err.contains("cannot allocate tty if runc will detach without setting console socket"),
        "{err}"
    );
    assert!(oci.fails(&["state", &id]).contains("does not exist"));

    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("console.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    oci.ok(&[
        "create",
        "-b",
        bundle.path(),
        "--console-socket",
        socket.to_str().expect("utf-8"),
        &id,
    ]);
    let (master, name) = receive_fd(&listener);
    assert!(!name.is_empty(), "runc sends a name with the fd");
    oci.ok(&["start", &id]);
    let mut pty = std::fs::File::from(master);
    pty.write_all(b"tty; stty size\n")
        .expect("write to the terminal");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    let answered = |seen: &[u8]| {
        let text = String::from_utf8_lossy(seen);
        // The echoed command line holds neither; the answers do.
        text.contains("/dev/pts/0") && text.contains("33 77")
    };
    while !answered(&seen) {
        assert!(
            Instant::now() < deadline,
            "no /dev/pts/0 and 33 77 in {:?}",
            String::from_utf8_lossy(&seen)
        );
        // Poll first, so a terminal that stays silent fails the test instead of hanging it.
        let mut fds = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&pty),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).expect("poll") == 0 {
            continue;
        }
        let n = pty.read(&mut buf).expect("read the terminal");
        seen.extend_from_slice(&buf[..n]);
    }
    pty.write_all(b"exit 0\n").expect("write");
    oci.wait_status(&id, "stopped");
}

#[test]
fn spec_and_features_describe_the_runtime() {
    let dir = tempfile::tempdir().expect("tmp");
    let oci = Oci::new();
    oci.ok(&["spec", "--bundle", dir.path().to_str().expect("utf-8")]);
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).expect("read"))
            .expect("JSON");
    assert_eq!(config["root"]["path"], "rootfs");
    assert_eq!(config["process"]["args"][0], "sh");
    let err = oci.fails(&["spec", "--bundle", dir.path().to_str().expect("utf-8")]);
    assert!(err.contains("exists"), "{err}");

    let rootless = tempfile::tempdir().expect("tmp");
    oci.ok(&[
        "spec",
        "--rootless",
        "-b",
        rootless.path().to_str().expect("utf-8"),
    ]);
    let config: Value =
        serde_json::from_slice(&std::fs::read(rootless.path().join("config.json")).expect("read"))
            .expect("JSON");
    let namespaces = config["linux"]["namespaces"]
        .as_array()
        .expect("namespaces");
    assert!(namespaces.iter().any(|n| n["type"] == "user"));
    assert!(config["linux"]["uidMappings"].is_array());

    let features: Value = serde_json::from_str(&oci.ok(&["features"])).expect("JSON");
    assert_eq!(features["ociVersionMin"], "1.0.0");
    assert!(features["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.len() == 8));
    assert_eq!(features["linux"]["cgroup"]["v1"], true);
    assert_eq!(features["linux"]["seccomp"]["enabled"], true);
    assert!(features["linux"]["seccomp"]["actions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == "SCMP_ACT_NOTIFY")));
    assert!(features["mountOptions"]
        .as_array()
        .is_some_and(|o| o.iter().any(|x| x == "rbind")));

    let version = oci.ok(&["--version"]);
    assert!(version.starts_with("ccrun-oci version "), "{version}");
}

#[test]
fn preserved_fds_reach_the_container_and_no_others() {
    const READ_PRESERVED: &str =
        "cat <&3; cat <&4; if [ -e /proc/self/fd/5 ]; then echo fd 5 leaked; fi";
    let oci = Oci::new();
    let bundle = Bundle::new(&["sh", "-c", READ_PRESERVED], |_| {});
    let dir = tempfile::tempdir().expect("tmp");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, "three\n").expect("write");
    std::fs::write(&b, "four\n").expect("write");
    // The shell opens fds 3 to 5 without close-on-exec, as a manager passes its fds;
    // only the two preserved ones may reach the container.
    let with_fds = |args: &[&str]| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec 3<"$1" 4<"$2" 5<"$1"; shift 2; exec "$@""#)
            .arg("sh")
            .arg(&a)
            .arg(&b)
            .arg(support::bin())
            .arg("--root")
            .arg(oci.root())
            .args(args)
            .output()
            .expect("ccrun-oci");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = unique_id("fds");
    let run = ["run", "--preserve-fds", "2", "-b", bundle.path(), &id];
    // Registered for removal on drop, like every container the tests make.
    drop(oci.command(&run));
    assert_eq!(with_fds(&run), "three\nfour\n");

    // exec passes them the same way.
    let sleeper = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("fdsexec");
    oci.ok(&["run", "-d", "-b", sleeper.path(), &id]);
    let exec = [
        "exec",
        "--preserve-fds",
        "2",
        &id,
        "sh",
        "-c",
        READ_PRESERVED,
    ];
    assert_eq!(with_fds(&exec), "three\nfour\n");
    oci.ok(&["delete", "--force", &id]);
}

#[test]
fn foreground_run_and_exec_relay_their_terminal() {
    let oci = Oci::new();
    let bundle = Bundle::new(
        &["sh", "-c", "tty; read line; echo got $line; exit 2"],
        |c| {
            c["process"]["terminal"] = true.into();
        },
    );
    let id = unique_id("fgtty");
    let pty =
        ccrun_testkit::pty::OnPty::spawn(oci.command(&["run", "-b", bundle.path(), &id]), 24, 80);
    pty.wait_for("/dev/pts/0");
    pty.write(b"hello\r");
    pty.wait_for("got hello");
    assert_eq!(pty.exit_code(), Some(2));

    let bundle = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("exectty");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    let pty = ccrun_testkit::pty::OnPty::spawn(
        oci.command(&["exec", "-t", &id, "sh", "-c", "tty; stty size; exit 4"]),
        30,
        100,
    );
    pty.wait_for("30 100");
    let text = pty.text();
    assert_eq!(pty.exit_code(), Some(4));
    assert!(text.contains("/dev/pts/"), "{text:?}");
}

#[test]
fn events_report_stats_and_oom_kills() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |c| {
        c["linux"]["resources"] = serde_json::json!({"memory": {"limit": 33554432}});
    });
    let id = unique_id("oom");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    let mut events = oci
        .command(&["events", "--interval", "100ms", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("events");
    let stdout = events.stdout.take().expect("stdout");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = std::sync::Arc::clone(&lines);
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let event: Value = serde_json::from_str(&line).expect("event JSON");
            sink.lock().expect("lock").push(event);
        }
    });
    let has = |kind: &str| {
        lines
            .lock()
            .expect("lock")
            .iter()
            .any(|e| e["type"] == kind)
    };
    wait_until("a stats event", || has("stats"));
    // 64 MiB in a shell variable, in a 32 MiB cgroup without swap.
    let out = oci.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "x=$(head -c 67108864 /dev/zero | tr '\\0' x); echo survived",
    ]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("survived"),
        "{out:?}"
    );
    wait_until("an oom event", || has("oom"));
    // events ends by itself once the container stops.
    oci.ok(&["kill", &id, "KILL"]);
    let status = events.wait().expect("wait events");
    assert!(status.success(), "{status:?}");
    reader.join().expect("reader");
    let all = lines.lock().expect("lock");
    assert!(all.iter().all(|e| e["id"] == id.as_str()), "{all:?}");
}
