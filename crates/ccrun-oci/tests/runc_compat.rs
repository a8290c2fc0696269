//! Where ccrun-oci used to differ from runc (or from the runtime spec) in ways clients
//! depend on, one test each: runc's text log lines on stderr, unknown properties
//! ignored, hook order and environment, the seccomp agent's fd during create, specs
//! without a mount namespace, `exec --ignore-paused`/`--cgroup`, recursive atime
//! options, unbindable root propagation, symlinked /proc, `ps`, real-time signals and
//! `list --format json` with no containers.

mod support;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{cgroup_file, receive_fd, unique_id, Bundle, Oci};

/// A host directory bound read-write at `/out` in the container.
fn bind_out(config: &mut Value, dir: &Path) {
    config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": "/out",
            "type": "bind",
            "source": dir,
            "options": ["rbind", "rw"]
        }));
}

/// The last line of a text log line's shape: `time="…" level=error msg="…"`.
fn assert_runc_error(stderr: &str, msg: &str) {
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("time=\"") && line.contains(&format!(" level=error msg={msg:?}")),
        "not runc's error line for {msg:?}: {stderr:?}"
    );
}

#[test]
fn errors_are_runcs_text_log_lines() {
    let oci = Oci::new();
    for args in [
        vec!["state", "nope"],
        vec!["start", "nope"],
        vec!["kill", "nope"],
        vec!["delete", "nope"],
        vec!["pause", "nope"],
    ] {
        assert_runc_error(&oci.fails(&args), "container does not exist");
    }
    assert_runc_error(&oci.fails(&["kill", ""]), "container id cannot be empty");
    assert_runc_error(&oci.fails(&["state", ""]), "container id cannot be empty");

    let bundle = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("errfmt");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    assert_runc_error(
        &oci.fails(&["start", &id]),
        "cannot start an already running container",
    );
    assert_runc_error(
        &oci.fails(&["delete", &id]),
        &format!("cannot delete container {id} that is not stopped: running"),
    );
    oci.ok(&["kill", &id, "KILL"]);
    oci.wait_status(&id, "stopped");
    assert_runc_error(&oci.fails(&["kill", &id]), "container not running");
    assert_runc_error(
        &oci.fails(&["start", &id]),
        "cannot start a container that has stopped",
    );
    oci.ok(&["delete", &id]);

    // With --log the line goes to the file and stderr gets the bare message, as runc.
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("log");
    let log_arg = log.to_str().expect("utf-8");
    let err = oci.fails(&["--log", log_arg, "state", "nope"]);
    assert_eq!(err, "container does not exist\n");
    let text = std::fs::read_to_string(&log).expect("log");
    assert_runc_error(&text, "container does not exist");
    // JSON on stderr when asked and there is no file.
    let err = oci.fails(&["--log-format", "json", "state", "nope"]);
    let line: Value = serde_json::from_str(err.trim()).expect("a JSON line");
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], "container does not exist");
}

#[test]
fn unknown_properties_are_ignored_and_a_bad_version_refused() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sh", "-c", "echo ran"], |c| {
        c["unknown"] = json!({"nested": [1, 2]});
        c["linux"]["fooBar"] = json!(true);
        c["process"]["someday"] = json!("x");
    });
    let id = unique_id("unknown");
    let out = oci.ok(&["--debug", "run", "-b", bundle.path(), &id]);
    assert_eq!(out, "ran\n");

    let bundle = Bundle::new(&["true"], |c| c["ociVersion"] = json!("1.2"));
    let err = oci.fails(&["run", "-b", bundle.path(), &unique_id("badver")]);
    assert!(err.contains("is not a valid SemVer"), "{err}");
    // A known field ccrun does not honour is still refused by name.
    let bundle = Bundle::new(&["true"], |c| {
        c["linux"]["intelRdt"] = json!({"closID": "x"});
    });
    let err = oci.fails(&["run", "-b", bundle.path(), &unique_id("rdt")]);
    assert!(err.contains("linux.intelRdt not supported"), "{err}");
}

#[test]
fn a_failing_start_container_hook_lets_start_and_poststart_run() {
    let oci = Oci::new();
    let out = tempfile::tempdir().expect("tmp");
    let o = out.path().display();
    let bundle = Bundle::new(&["sh", "-c", "touch /out/program-ran"], |c| {
        bind_out(c, out.path());
        c["process"]["env"] = json!(["PATH=/bin", "FROM_PROCESS=yes"]);
        c["hooks"] = json!({
            // Runs in the container: /out is its bind mount.
            "startContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", "env > /out/start-env; exit 1"]}
            ],
            // Runs before pivot_root in the container's namespaces, path on the host.
            "createContainer": [
                {"path": "/bin/sh", "args": ["sh", "-c", format!("env > {o}/create-env")]}
            ],
            "poststart": [
                {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {o}/poststart")]}
            ]
        });
    });
    let id = unique_id("hooks");
    let created = oci
        .command(&["create", "-b", bundle.path(), &id])
        .env("CCRUN_HOST_ONLY", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("create");
    assert!(created.success());
    // As runc: start returns once the container is released; the hook fails after.
    oci.ok(&["start", &id]);
    assert!(
        out.path().join("poststart").exists(),
        "poststart did not run"
    );
    oci.wait_status(&id, "stopped");
    assert!(
        !out.path().join("program-ran").exists(),
        "the program ran despite the failed hook"
    );
    for file in ["start-env", "create-env"] {
        let env = std::fs::read_to_string(out.path().join(file)).expect(file);
        assert!(
            env.lines().any(|l| l == "FROM_PROCESS=yes"),
            "{file}: {env}"
        );
        assert!(!env.contains("CCRUN_HOST_ONLY"), "{file}: host env: {env}");
    }
    oci.ok(&["delete", &id]);
}

#[test]
fn the_seccomp_agent_gets_its_fd_during_create() {
    let oci = Oci::new();
    let dir = tempfile::tempdir().expect("tmp");
    let socket = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&socket).expect("listen");
    let bundle = Bundle::new(&["sleep", "1000"], |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": socket,
            "listenerMetadata": "agent-meta",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let id = unique_id("notify");
    oci.ok(&["create", "-b", bundle.path(), &id]);
    // No start: an agent that waits for the fd before starting the container gets it.
    listener.set_nonblocking(false).expect("blocking");
    let (_fd, message) = receive_fd(&listener);
    let message: Value = serde_json::from_slice(&message).expect("JSON");
    assert_eq!(message["metadata"], "agent-meta", "{message}");
    assert_eq!(message["state"]["id"], id.as_str(), "{message}");
    let pid = oci.state(&id)["pid"].as_i64().expect("pid");
    assert_eq!(message["state"]["pid"], pid, "{message}");
    oci.ok(&["delete", "--force", &id]);
}

#[test]
fn a_spec_without_a_mount_namespace_shares_the_runtimes() {
    let oci = Oci::new();
    let bundle = Bundle::new(
        &["sh", "-c", "cat /rootfile; readlink /proc/self/ns/mnt"],
        |c| {
            let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
            ns.retain(|n| n["type"] != "mount");
            // As runc: masking needs a mount namespace of the container's own.
            c["linux"]
                .as_object_mut()
                .expect("linux")
                .remove("maskedPaths");
            c["linux"]
                .as_object_mut()
                .expect("linux")
                .remove("readonlyPaths");
        },
    );
    let id = unique_id("nomnt");
    let run = oci.run(&["run", "-b", bundle.path(), &id]);
    // The mounts were made in this (the runtime's) mount namespace, under the rootfs.
    support::unmount_under(bundle.rootfs());
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let own = std::fs::read_link("/proc/self/ns/mnt").expect("own mnt ns");
    assert_eq!(stdout, format!("owned by root\n{}\n", own.display()));

    let bundle = Bundle::new(&["true"], |c| {
        let ns = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
        ns.retain(|n| n["type"] != "mount");
    });
    let err = oci.fails(&["run", "-b", bundle.path(), &unique_id("nomnt-mask")]);
    assert!(err.contains("without a private MNT namespace"), "{err}");
}

#[test]
fn exec_ignore_paused_and_into_a_sub_cgroup() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["sleep", "1000"], |_| {});
    let id = unique_id("execpaused");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    oci.ok(&["pause", &id]);
    let err = oci.fails(&["exec", &id, "true"]);
    assert!(err.contains("use --ignore-paused to override"), "{err}");
    // As with runc, the process joins the frozen container and finishes once resumed.
    let mut exec = oci
        .command(&[
            "exec",
            "--ignore-paused",
            &id,
            "sh",
            "-c",
            "echo ran; exit 4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("exec");
    let frozen_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < frozen_until {
        assert!(
            exec.try_wait().expect("try_wait").is_none(),
            "exec finished in a paused container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    oci.ok(&["resume", &id]);
    let out = exec.wait_with_output().expect("exec output");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");

    // --cgroup: an existing sub-cgroup of the container's.
    let pid = oci.state(&id)["pid"].as_i64().expect("pid");
    let memory = cgroup_file(pid, "memory", "");
    let sub = memory.join("sub");
    std::fs::create_dir(&sub).expect("mkdir sub-cgroup");
    let out = oci.run(&[
        "exec",
        "--cgroup",
        "memory:sub",
        &id,
        "grep",
        "memory",
        "/proc/self/cgroup",
    ]);
    let _ = std::fs::remove_dir(&sub);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.trim_end().ends_with("/sub"), "{line}");
    let err = oci.fails(&["exec", "--cgroup", "nosuch", &id, "true"]);
    assert!(err.contains("does not exist"), "{err}");
    oci.ok(&["delete", "--force", &id]);
}

#[test]
fn recursive_atime_options_and_unbindable_root_propagation() {
    let oci = Oci::new();
    let src = tempfile::tempdir().expect("tmp");
    let bundle = Bundle::new(&["cat", "/proc/self/mountinfo"], |c| {
        let mounts = c["mounts"].as_array_mut().expect("mounts");
        for (dest, opt) in [
            ("/noatime", "rnoatime"),
            ("/strict", "rstrictatime"),
            ("/norelatime", "rnorelatime"),
            ("/relatime", "rrelatime"),
        ] {
            mounts.push(json!({
                "destination": dest, "type": "bind", "source": src.path(),
                "options": ["rbind", "rnoatime", opt]
            }));
        }
        c["linux"]["rootfsPropagation"] = json!("unbindable");
    });
    let out = oci.ok(&["run", "-b", bundle.path(), &unique_id("atime")]);
    let options_of = |point: &str| -> String {
        let line = out
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no {point} in {out}"));
        line.to_string()
    };
    let field = |line: &str, n: usize| line.split(' ').nth(n).unwrap_or_default().to_string();
    // Mount options are field 6; the later option wins over rnoatime.
    assert!(field(&options_of("/noatime"), 5).contains("noatime"));
    for strict in ["/strict", "/norelatime"] {
        let opts = field(&options_of(strict), 5);
        assert!(
            !opts.contains("noatime") && !opts.contains("relatime"),
            "{strict}: {opts}"
        );
    }
    assert!(field(&options_of("/relatime"), 5).contains("relatime"));
    // The root mount is unbindable (optional fields follow the options).
    assert!(
        options_of("/").contains(" unbindable"),
        "{}",
        options_of("/")
    );
}

#[test]
fn proc_on_a_symlink_is_refused_with_runcs_words() {
    let oci = Oci::new();
    let bundle = Bundle::new(&["true"], |_| {});
    let proc_dir = bundle.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).expect("rmdir proc");
    std::os::unix::fs::symlink("/tmp", &proc_dir).expect("symlink");
    let err = oci.fails(&["run", "-b", bundle.path(), &unique_id("procsym")]);
    // The message is quoted in the log line: its own quotes are escaped.
    assert!(
        err.contains(r#"filesystem \"proc\" must be mounted on ordinary directory"#),
        "{err}"
    );
}

#[test]
fn ps_kill_with_real_time_signals_and_an_empty_list() {
    let oci = Oci::new();
    assert_eq!(oci.ok(&["list", "--format", "json"]), "null\n");
    // A handler for SIGRTMIN+3 (the container's init ignores signals it has none for).
    let rt = libc::SIGRTMIN() + 3;
    let script = format!("trap 'exit 7' {rt}; while :; do sleep 0.1; done");
    let bundle = Bundle::new(&["sh", "-c", &script], |_| {});
    let id = unique_id("rtsig");
    oci.ok(&["run", "-d", "-b", bundle.path(), &id]);
    let ps = oci.ok(&["ps", &id]);
    let mut lines = ps.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let pid = oci.state(&id)["pid"].as_i64().expect("pid").to_string();
    assert!(
        lines.any(|l| l.split_whitespace().nth(1) == Some(pid.as_str()) && l.contains("trap")),
        "{ps}"
    );
    let listed: Value = serde_json::from_str(&oci.ok(&["list", "--format", "json"])).expect("json");
    assert_eq!(listed[0]["id"], id.as_str());
    oci.ok(&["kill", &id, "RTMIN+3"]);
    oci.wait_status(&id, "stopped");
    oci.ok(&["delete", &id]);
    let err = oci.fails(&["kill", &id, "RTMAX+1"]);
    assert!(err.contains("unknown signal"), "{err}");
}
