//! Issue 15's `run`/`create` flags end to end through the `ccrun` binary on busybox
//! `--rootfs` containers: DNS and domain names, groups, annotations, label files,
//! `--cidfile`, `-a`, shared and host namespaces, `--cgroup-parent` and the extra
//! cgroup limits (checked in the host's cgroup files), log drivers, `--volumes-from`,
//! `--sig-proxy`, `exec --privileged`, and the validation that refuses bad values
//! with exit 125 before anything is created.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use support::{alive, stderr, stdout, wait_until, Ccrun, Rootfs};

/// Runs `ccrun run --rm --rootfs R ARGS…`, asserting exit 0; returns stdout.
fn run_ok(c: &Ccrun, r: &Rootfs, args: &[&str]) -> String {
    let mut all = vec!["--rm"];
    all.extend_from_slice(args);
    let out = c.run(r.path(), &all);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The saved `config.json` of container `id`.
fn config(c: &Ccrun, id: &str) -> serde_json::Value {
    let path = c
        .store_root()
        .join("containers")
        .join(id)
        .join("config.json");
    serde_json::from_slice(&std::fs::read(path).expect("config.json")).expect("json")
}

fn container_count(c: &Ccrun) -> usize {
    std::fs::read_dir(c.store_root().join("containers"))
        .map(|d| d.flatten().filter(|e| e.file_name().len() == 64).count())
        .unwrap_or(0)
}

#[test]
fn dns_domain_groups_annotations_labels_and_exposed_ports() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let dir = tempfile::tempdir().expect("tempdir");
    let labels = dir.path().join("labels");
    std::fs::write(&labels, "# team labels\nteam=web\n\ntier=front\n").expect("label file");
    let out = run_ok(
        &c,
        &r,
        &[
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "a.test",
            "--dns-search",
            "b.test",
            "--dns-option",
            "ndots:3",
            "--domainname",
            "corp.test",
            "--group-add",
            "wheel",
            "--group-add",
            "4242",
            "--",
            "sh",
            "-c",
            "cat /etc/resolv.conf; cat /proc/sys/kernel/domainname; id -G",
        ],
    );
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.contains("search a.test b.test"), "{out}");
    assert!(out.contains("options ndots:3"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[lines.len() - 2], "corp.test");
    assert_eq!(lines[lines.len() - 1], "0 10 4242");
    // `--dns-search .` drops the search line.
    let out = run_ok(&c, &r, &["--dns-search", ".", "cat", "/etc/resolv.conf"]);
    assert!(!out.contains("search"), "{out}");

    let id = c.run_detached(
        r.path(),
        &[
            "--name",
            "labelled",
            "--label-file",
            labels.to_str().expect("utf-8"),
            "-l",
            "tier=back",
            "--annotation",
            "org.test.note=hello",
            "--expose",
            "7000-7001/udp",
            "--detach-keys",
            "ctrl-x,y",
            "sleep",
            "30",
        ],
    );
    let labels = stdout(&c.ccrun(&["inspect", "-f", "{{json .Config.Labels}}", "labelled"]));
    assert_eq!(labels, r#"{"team":"web","tier":"back"}"#);
    let ports = stdout(&c.ccrun(&["inspect", "-f", "{{json .Config.ExposedPorts}}", "labelled"]));
    assert_eq!(ports, r#"{"7000/udp":{},"7001/udp":{}}"#);
    assert_eq!(config(&c, &id)["annotations"]["org.test.note"], "hello");
    assert_eq!(c.record(&id)["options"]["detach_keys"], "ctrl-x,y");
    let out = c.ccrun(&["rm", "-f", "labelled"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn cidfile_gets_the_id_and_an_existing_one_is_refused() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let dir = tempfile::tempdir().expect("tempdir");
    let cid = dir.path().join("cid");
    let cid_arg = cid.to_str().expect("utf-8");
    let out = c.ccrun(&[
        "create",
        "--cidfile",
        cid_arg,
        "--rootfs",
        r.path().to_str().expect("utf-8"),
        "true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&cid).expect("cidfile"),
        stdout(&out)
    );
    let again = c.run(r.path(), &["--rm", "--cidfile", cid_arg, "true"]);
    assert_eq!(again.status.code(), Some(125));
    assert!(
        stderr(&again).contains("container ID file found"),
        "{}",
        stderr(&again)
    );
    assert_eq!(container_count(&c), 1, "the refused run created nothing");
    // A create that fails after the file was made removes it again.
    let cid2 = dir.path().join("cid2");
    let out = c.ccrun(&[
        "create",
        "--cidfile",
        cid2.to_str().expect("utf-8"),
        "--rootfs",
        r.path().to_str().expect("utf-8"),
        "-u",
        "nosuchuser",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(!cid2.exists(), "cidfile of a failed create left behind");
}

#[test]
fn attach_shows_only_the_chosen_streams() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let script = "echo to-out; echo to-err >&2";
    let out = c.run(r.path(), &["--rm", "-a", "STDERR", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        (stdout(&out), stderr(&out)),
        (String::new(), "to-err".into())
    );
    let out = c.run(r.path(), &["--rm", "-a", "stdout", "sh", "-c", script]);
    assert_eq!(
        (stdout(&out), stderr(&out)),
        ("to-out".into(), String::new())
    );
    // Both are still logged.
    let out = c.run(
        r.path(),
        &["--name", "att", "-a", "stdout", "sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0));
    let logs = c.ccrun(&["logs", "att"]);
    assert_eq!(
        (stdout(&logs), stderr(&logs)),
        ("to-out".into(), "to-err".into())
    );
    // -a with -d is a conflict, -a of something else a bad value.
    for bad in [&["-d", "-a", "stdout"][..], &["-a", "stdlog"][..]] {
        let mut args = bad.to_vec();
        args.push("true");
        let out = c.run(r.path(), &args);
        assert_eq!(out.status.code(), Some(125), "{bad:?}");
    }
}

#[test]
fn namespaces_are_shared_with_another_container_or_the_host() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let holder = c.run_detached(
        r.path(),
        &[
            "--name",
            "holder",
            "--hostname",
            "holderhost",
            "sleep",
            "60",
        ],
    );
    // The holder's own view (its init is not dumpable: the host may not read its links).
    let holder_ns = |kind: &str| {
        stdout(&c.ccrun(&[
            "exec",
            "holder",
            "readlink",
            &format!("/proc/self/ns/{kind}"),
        ]))
    };
    let ns_of = |pid: &str, kind: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
            .map(|p| p.display().to_string())
            .expect("ns link")
    };
    // Its user namespace comes along, and the rootfs is still idmapped through it.
    let owner = run_ok(
        &c,
        &r,
        &["--pid", "container:holder", "stat", "-c", "%u", "/rootfile"],
    );
    assert_eq!(owner, "0");
    // PID: the holder's sleep is PID 1 here.
    let out = run_ok(
        &c,
        &r,
        &["--pid", "container:holder", "ps", "-o", "pid,args"],
    );
    assert!(out.lines().any(|l| l.trim() == "1 sleep 60"), "{out}");
    // IPC and UTS: the same namespaces, the holder's hostname.
    let out = run_ok(
        &c,
        &r,
        &[
            "--ipc",
            "container:holder",
            "--uts",
            "container:holder",
            "sh",
            "-c",
            "readlink /proc/self/ns/ipc; hostname",
        ],
    );
    assert_eq!(out, format!("{}\nholderhost", holder_ns("ipc")));
    // The host's: its PID 1 and hostname, its cgroup namespace.
    let host_name = nix::unistd::gethostname().expect("hostname");
    let out = run_ok(
        &c,
        &r,
        &[
            "--pid",
            "host",
            "--uts",
            "host",
            "--cgroupns",
            "host",
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/cgroup; hostname",
        ],
    );
    assert_eq!(
        out,
        format!(
            "{}\n{}\n{}",
            ns_of("self", "pid"),
            ns_of("self", "cgroup"),
            host_name.to_string_lossy()
        )
    );
    let out = run_ok(&c, &r, &["--ipc", "host", "readlink", "/proc/self/ns/ipc"]);
    assert_eq!(out, ns_of("self", "ipc"));
    // A joined namespace follows the holder across its restart.
    let out = c.ccrun(&[
        "create",
        "--name",
        "joiner",
        "--pid",
        "container:holder",
        "--rootfs",
        r.path().to_str().expect("utf-8"),
        "ps",
        "-o",
        "pid,args",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = c.ccrun(&["restart", "-t", "0", "holder"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = c.ccrun(&["start", "-a", "joiner"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).lines().any(|l| l.trim() == "1 sleep 60"),
        "{}",
        stdout(&out)
    );
    // Conflicts and bad values.
    for bad in [
        &["--uts", "host", "-h", "x", "true"][..],
        &["--pid", "host", "--userns", "private", "true"][..],
        &["--pid", "container:nosuch", "true"][..],
        &["--ipc", "bogus", "true"][..],
        &["--cgroupns", "shared", "true"][..],
    ] {
        let out = c.run(r.path(), bad);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", stderr(&out));
    }
    for id in [holder.as_str(), "joiner"] {
        let out = c.ccrun(&["rm", "-f", id]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
}

/// A cgroup v1 file of the container's cgroup under `parent`.
fn cgroup_file(controller: &str, parent: &str, id: &str, file: &str) -> String {
    let path = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(parent.trim_start_matches('/'))
        .join(id)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn cgroup_parent_and_the_extra_limits_reach_the_cgroup() {
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: checks cgroup v1 files");
        return;
    }
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let parent = format!("ccrun-test-{}", std::process::id());
    let dev = ["/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0"]
        .into_iter()
        .find(|d| Path::new(d).exists())
        .expect("a block device");
    let rate = format!("{dev}:1mb");
    let iops = format!("{dev}:100");
    let id = c.run_detached(
        r.path(),
        &[
            "--cgroup-parent",
            &parent,
            "-m",
            "64m",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--device-read-bps",
            &rate,
            "--device-write-iops",
            &iops,
            "--device-cgroup-rule",
            "c 42:7 rw",
            "sleep",
            "30",
        ],
    );
    let file = |controller: &str, name: &str| cgroup_file(controller, &parent, &id, name);
    assert_eq!(file("memory", "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(file("memory", "memory.swappiness"), "10");
    assert!(file("memory", "memory.oom_control").contains("oom_kill_disable 1"));
    assert_eq!(file("cpu", "cpu.cfs_period_us"), "50000");
    assert_eq!(file("cpu", "cpu.cfs_quota_us"), "25000");
    assert!(file("blkio", "blkio.throttle.read_bps_device").ends_with(" 1048576"));
    assert!(file("blkio", "blkio.throttle.write_iops_device").ends_with(" 100"));
    assert!(file("devices", "devices.list").contains("c 42:7 rw"));
    let out = c.ccrun(&["rm", "-f", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!Path::new("/sys/fs/cgroup/memory")
        .join(&parent)
        .join(&id)
        .exists());
    for controller in [
        "memory",
        "cpu",
        "blkio",
        "devices",
        "pids",
        "cpuset",
        "freezer",
        "net_cls",
        "perf_event",
        "hugetlb",
        "rdma",
        "misc",
        "cpuacct",
        "net_prio",
        "systemd",
        "unified",
    ] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(controller).join(&parent));
    }
    // A weight the kernel cannot apply is dropped with Docker's warning, if so.
    let out = c.run(r.path(), &["--rm", "--blkio-weight", "300", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for bad in [
        &["--cpus", "0.5", "--cpu-quota", "20000"][..],
        &["--cpu-period", "10"][..],
        &["--memory-swappiness", "101"][..],
        &["-m", "32m", "--memory-reservation", "64m"][..],
        &["--blkio-weight", "5"][..],
        &["--device-read-bps", "/dev/null:1mb"][..],
        &["--device-cgroup-rule", "x 1:3 r"][..],
        &["--cgroup-parent", "../escape"][..],
    ] {
        let mut args = bad.to_vec();
        args.push("true");
        let out = c.run(r.path(), &args);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", stderr(&out));
    }
}

#[test]
fn log_drivers_json_file_none_and_max_file() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "--name",
            "json",
            "--log-driver",
            "json-file",
            "sh",
            "-c",
            "echo 'say \"hi\"'; echo oops >&2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&c.ccrun(&["inspect", "-f", "{{.Id}}", "json"]));
    let log = std::fs::read_to_string(
        c.store_root()
            .join("containers")
            .join(&id)
            .join("container.log"),
    )
    .expect("log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines[0]["log"], "say \"hi\"\n");
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(lines[1]["stream"], "stderr");
    let logs = c.ccrun(&["logs", "json"]);
    assert_eq!(
        (stdout(&logs), stderr(&logs)),
        ("say \"hi\"".into(), "oops".into())
    );
    assert_eq!(
        stdout(&c.ccrun(&["inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "json"])),
        "json-file"
    );

    let out = c.run(
        r.path(),
        &["--name", "quiet", "--log-driver", "none", "echo", "shown"],
    );
    assert_eq!(stdout(&out), "shown");
    let logs = c.ccrun(&["logs", "quiet"]);
    assert_eq!(logs.status.code(), Some(125));
    assert!(
        stderr(&logs).contains("does not support reading"),
        "{}",
        stderr(&logs)
    );

    // Detached, rotated at 4k, three files kept: .1 and .2 exist, .3 never.
    let id = c.run_detached(
        r.path(),
        &[
            "--log-opt",
            "max-size=4k",
            "--log-opt",
            "max-file=3",
            "sh",
            "-c",
            "i=0; while [ $i -lt 400 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done",
        ],
    );
    let out = c.ccrun(&["wait", &id]);
    assert_eq!(stdout(&out), "0", "{}", stderr(&out));
    let dir = c.store_root().join("containers").join(&id);
    assert!(dir.join("container.log.2").exists());
    assert!(!dir.join("container.log.3").exists());
    let logs = stdout(&c.ccrun(&["logs", &id]));
    assert!(logs.ends_with("line-399-padding-padding-padding"), "{logs}");
    let opts = stdout(&c.ccrun(&[
        "inspect",
        "-f",
        "{{json .HostConfig.LogConfig.Config}}",
        &id,
    ]));
    assert!(opts.contains(r#""max-file":"3""#), "{opts}");

    for bad in [
        &["--log-driver", "syslog"][..],
        &["--log-driver", "journald"][..],
        &["--log-opt", "max-file=0"][..],
        &["--log-opt", "compress=true"][..],
        &["--log-driver", "none", "--log-opt", "max-size=1m"][..],
    ] {
        let mut args = bad.to_vec();
        args.push("true");
        let out = c.run(r.path(), &args);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", stderr(&out));
    }
}

#[test]
fn volumes_from_mounts_the_same_volumes_and_binds() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("f"), "from-bind\n").expect("bind file");
    let bind = format!("{}:/b", host.path().display());
    let src = c.run_detached(
        r.path(),
        &[
            "--name",
            "src",
            "-v",
            &bind,
            "-v",
            "vf-named:/n",
            "-v",
            "/anon",
            "sleep",
            "60",
        ],
    );
    let out = c.ccrun(&[
        "exec",
        "src",
        "sh",
        "-c",
        "echo n > /n/x && echo a > /anon/y",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = c.run(
        r.path(),
        &[
            "--rm",
            "--volumes-from",
            "src:ro",
            "sh",
            "-c",
            "cat /b/f /n/x /anon/y; touch /n/z",
        ],
    );
    assert_eq!(stdout(&out), "from-bind\nn\na");
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    let out = run_ok(
        &c,
        &r,
        &["--volumes-from", "src", "sh", "-c", "touch /n/z && echo rw"],
    );
    assert_eq!(out, "rw");
    // --rm above did not take src's anonymous volume with it.
    let out = c.ccrun(&["exec", "src", "cat", "/anon/y"]);
    assert_eq!(stdout(&out), "a");
    let out = c.run(r.path(), &["--rm", "--volumes-from", "nosuch", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let out = c.ccrun(&["rm", "-f", "-v", &src]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = c.ccrun(&["volume", "rm", "vf-named"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn sig_proxy_false_keeps_signals_from_the_container() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let script = "trap 'exit 7' TERM; while true; do sleep 0.1; done";
    for (proxy, expect_exit) in [("--sig-proxy=true", true), ("--sig-proxy=false", false)] {
        let running = c.spawn(r.path(), &[proxy, "sh", "-c", script]);
        let ccrun_pid = nix::unistd::Pid::from_raw(running.ccrun_pid());
        // The trap is set once the shell runs its loop.
        std::thread::sleep(Duration::from_millis(300));
        nix::sys::signal::kill(ccrun_pid, nix::sys::signal::Signal::SIGTERM).expect("signal ccrun");
        if expect_exit {
            let out = running.wait();
            assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
        } else {
            std::thread::sleep(Duration::from_millis(500));
            assert!(alive(running.pid), "the container got the signal");
            let out = c.ccrun(&["kill", &running.id]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            let out = running.wait();
            assert_eq!(out.status.code(), Some(137));
        }
    }
}

#[test]
fn exec_privileged_has_every_capability_and_no_seccomp() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = c.run_detached(r.path(), &["sleep", "60"]);
    let status = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&id, "grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status"]);
        let out = c.ccrun(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let plain = status(&[]);
    assert!(
        plain.contains("CapEff:\t00000000a80425fb") && plain.contains("Seccomp:\t2"),
        "{plain}"
    );
    let privileged = status(&["--privileged", "--detach-keys", "ctrl-p,ctrl-q"]);
    assert!(privileged.contains("Seccomp:\t0"), "{privileged}");
    // Every capability ccrun itself has in its bounding set.
    let ours = std::fs::read_to_string("/proc/self/status").expect("status");
    let bounding = ours
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .expect("CapBnd")
        .split_whitespace()
        .nth(1)
        .expect("mask")
        .to_string();
    assert!(
        privileged.contains(&format!("CapEff:\t{bounding}")),
        "{privileged} vs {bounding}"
    );
    let out = c.ccrun(&["exec", "--detach-keys", "alt-x", &id, "true"]);
    assert_eq!(out.status.code(), Some(125));
    let out = c.ccrun(&["rm", "-f", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn bad_values_are_refused_before_anything_is_created() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--health-retries", "-1"],
            "--health-retries cannot be negative",
        ),
        (&["--health-interval", "10"], "invalid --health-interval"),
        (&["--health-timeout", "100us"], "cannot be less than 1ms"),
        (
            &["--no-healthcheck", "--health-cmd", "true"],
            "conflicts with --health-*",
        ),
        (
            &["--mac-address", "zz:42:ac:11:00:02"],
            "invalid --mac-address",
        ),
        (
            &["--mac-address", "02:42:ac:11:00:02", "--network", "host"],
            "--mac-address",
        ),
        (&["--expose", "0"], "invalid --expose"),
        (&["--dns-search", "bad domain"], "invalid --dns-search"),
        (&["--domainname", "-"], "invalid --domainname"),
        (&["--link", "nosuch:alias"], "no such container"),
        (&["--detach-keys", "ctrl-"], "invalid --detach-keys"),
        (&["--label-file", "/nonexistent/labels"], "label file"),
        (&["--annotation", "=x"], "annotation"),
    ];
    for (flags, message) in cases {
        let mut args = flags.to_vec();
        args.push("true");
        let out = c.run(r.path(), &args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        let err = stderr(&out);
        assert!(err.contains(message), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{flags:?}: one line: {err}");
    }
    assert_eq!(container_count(&c), 0, "a refused run left a container");
    assert_eq!(c.leftover_state(), 0);
}

/// `--sig-proxy` needs `=`: a following word stays the command.
#[test]
fn sig_proxy_takes_its_value_only_after_an_equals_sign() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c
        .cmd()
        .args(["run", "--rm", "--rootfs"])
        .arg(r.path())
        .args(["--sig-proxy", "echo", "ok"])
        .stdin(Stdio::null())
        .output()
        .expect("ccrun");
    assert_eq!(stdout(&out), "ok", "{}", stderr(&out));
    wait_until("no state left", Duration::from_secs(5), || {
        c.leftover_state() == 0
    });
}
