//! Docker's secure defaults and the flags that change them, checked from inside
//! containers run by the real binary: capabilities, the default seccomp profile,
//! no-new-privileges, --privileged, --device, --sysctl, --ulimit, --oom-score-adj,
//! --shm-size, exec'd processes, and clear errors (exit 125) for bad or unsupported
//! settings.

mod support;

use ccrun_testkit::status_field;
use support::{stderr, stdout, Ccrun, Rootfs};

/// Docker's default capability set as a mask.
const DOCKER_CAPS: &str = "00000000a80425fb";

/// Runs `cat /proc/self/status` with `flags`; returns the status text.
fn status_with(c: &Ccrun, r: &Rootfs, flags: &[&str]) -> String {
    let mut args = flags.to_vec();
    args.extend(["cat", "/proc/self/status"]);
    let out = c.run(r.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

/// Runs `sh -c script` with `flags`; asserts success and returns stdout+stderr.
fn sh_with(c: &Ccrun, r: &Rootfs, flags: &[&str], script: &str) -> String {
    let mut args = flags.to_vec();
    args.extend(["sh", "-c", script]);
    let out = c.run(r.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    format!("{}\n{}", stdout(&out), stderr(&out))
}

fn assert_rejected(c: &Ccrun, r: &Rootfs, flags: &[&str], needle: &str) {
    let mut args = flags.to_vec();
    args.push("true");
    let out = c.run(r.path(), &args);
    assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(needle), "{flags:?}: {}", stderr(&out));
    assert_eq!(c.leftover_state(), 0, "{flags:?} left state behind");
}

#[test]
fn default_capabilities_and_seccomp_are_dockers() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let status = status_with(&c, &r, &[]);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&status, set), DOCKER_CAPS, "{set}");
    }
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    // A non-root user gets no effective capabilities, as with Docker.
    let status = status_with(&c, &r, &["--user", "1000"]);
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapBnd"), DOCKER_CAPS);
}

#[test]
fn cap_add_and_cap_drop() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let status = status_with(&c, &r, &["--cap-drop", "ALL"]);
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "CapBnd"), "0000000000000000");
    let status = status_with(&c, &r, &["--cap-add", "SYS_ADMIN"]);
    assert_eq!(status_field(&status, "CapEff"), "00000000a82425fb");
    let status = status_with(
        &c,
        &r,
        &[
            "--cap-drop",
            "all",
            "--cap-add",
            "cap_chown",
            "--cap-add",
            "KILL",
        ],
    );
    assert_eq!(status_field(&status, "CapEff"), "0000000000000021");
    let status = status_with(
        &c,
        &r,
        &["--cap-drop", "NET_RAW", "--cap-drop", "CAP_MKNOD"],
    );
    assert_eq!(status_field(&status, "CapEff"), "00000000a00405fb");
    // Without CAP_CHOWN, root cannot chown.
    let out = sh_with(
        &c,
        &r,
        &["--cap-drop", "CHOWN"],
        "touch /tmp/o; chown 1000 /tmp/o 2>&1 || echo chown-denied",
    );
    assert!(out.contains("chown-denied"), "{out}");
    assert_rejected(&c, &r, &["--cap-add", "CAP_NO_SUCH"], "unknown capability");
}

#[test]
fn default_seccomp_blocks_namespaces_mount_and_odd_personalities() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let script = "unshare -U true 2>&1 && echo unshare-ok; \
                  mount -t tmpfs none /mnt 2>&1 && echo mount-ok; \
                  linux32 uname -m; linux32 -R true 2>&1 && echo personality-ok; true";
    let out = sh_with(&c, &r, &[], &format!("mkdir -p /mnt; {script}"));
    assert!(
        out.contains("unshare(0x10000000): Operation not permitted"),
        "{out}"
    );
    assert!(
        !out.contains("unshare-ok") && !out.contains("mount-ok"),
        "{out}"
    );
    assert!(out.contains("i686"), "LINUX32 is allowed: {out}");
    assert!(
        out.contains("personality(0x40008): Operation not permitted"),
        "{out}"
    );
    // Unconfined, unshare needs no capability; mount needs CAP_SYS_ADMIN.
    let out = sh_with(
        &c,
        &r,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "--cap-add",
            "SYS_ADMIN",
        ],
        &format!("mkdir -p /mnt; {script}"),
    );
    assert!(out.contains("unshare-ok"), "{out}");
    assert!(out.contains("mount-ok"), "{out}");
    assert!(out.contains("personality-ok"), "{out}");
    let status = status_with(&c, &r, &["--security-opt", "seccomp=unconfined"]);
    assert_eq!(status_field(&status, "Seccomp"), "0");
    // With CAP_SYS_ADMIN the default profile allows mount, as Docker's does.
    let out = sh_with(
        &c,
        &r,
        &["--cap-add", "SYS_ADMIN"],
        "mkdir -p /mnt; mount -t tmpfs none /mnt && echo mount-ok",
    );
    assert!(out.contains("mount-ok"), "{out}");
}

#[test]
fn seccomp_profile_from_a_file() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":18}]}"#,
    )
    .expect("write profile");
    let opt = format!("seccomp={}", profile.display());
    let out = sh_with(&c, &r, &["--security-opt", &opt], "mkdir /tmp/x 2>&1; true");
    assert!(out.contains("Invalid cross-device link"), "{out}");
    std::fs::write(&profile, "{not json").expect("write profile");
    assert_rejected(&c, &r, &["--security-opt", &opt], "seccomp profile");
}

#[test]
fn no_new_privileges_security_opt() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    for (opt, want) in [
        ("no-new-privileges", "1"),
        ("no-new-privileges:true", "1"),
        ("no-new-privileges=false", "0"),
    ] {
        let status = status_with(&c, &r, &["--security-opt", opt]);
        assert_eq!(status_field(&status, "NoNewPrivs"), want, "{opt}");
    }
    assert_rejected(
        &c,
        &r,
        &["--security-opt", "no-new-privileges=maybe"],
        "true or false",
    );
    assert_rejected(&c, &r, &["--security-opt", "bogus=1"], "--security-opt");
}

#[test]
fn lsm_options_are_clear_errors_without_apparmor_or_selinux() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y");
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    assert!(
        !apparmor && !selinux,
        "this test expects a host without AppArmor and SELinux"
    );
    assert_rejected(
        &c,
        &r,
        &["--security-opt", "apparmor=docker-default"],
        "AppArmor is not enabled",
    );
    assert_rejected(
        &c,
        &r,
        &["--security-opt", "label=type:container_t"],
        "SELinux is not enabled",
    );
    // Turning them off is always fine.
    let out = c.run(
        r.path(),
        &[
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "label=disable",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn privileged_gets_everything() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let host = std::fs::read_to_string("/proc/self/status").expect("status");
    let status = status_with(&c, &r, &["--privileged"]);
    assert_eq!(
        status_field(&status, "CapEff"),
        status_field(&host, "CapBnd"),
        "all the capabilities ccrun has"
    );
    assert_eq!(status_field(&status, "Seccomp"), "0");
    let out = sh_with(
        &c,
        &r,
        &["--privileged"],
        "ls -l /dev/kmsg /dev/loop-control; grep ' /sys ' /proc/mounts; \
         echo keys=$(wc -c </proc/keys); echo procmasks=$(grep -c ' /proc/' /proc/mounts)",
    );
    assert!(out.contains("1,  11") && out.contains("/dev/kmsg"), "{out}");
    assert!(out.contains("/dev/loop-control"), "{out}");
    assert!(out.contains("sysfs /sys sysfs rw"), "{out}");
    assert!(!out.contains("keys=0"), "/proc/keys is not masked: {out}");
    assert!(out.contains("procmasks=0"), "no masks under /proc: {out}");
    // Unprivileged: no host devices, /sys read-only, /proc/keys masked.
    let out = sh_with(
        &c,
        &r,
        &[],
        "ls /dev/kmsg 2>&1; grep ' /sys ' /proc/mounts; echo keys=$(wc -c </proc/keys)",
    );
    assert!(out.contains("No such file"), "{out}");
    assert!(out.contains("sysfs /sys sysfs ro"), "{out}");
    assert!(out.contains("keys=0"), "{out}");
    assert_rejected(
        &c,
        &r,
        &["--privileged", "--userns", "private"],
        "--privileged needs --userns host",
    );
}

#[test]
fn device_flag_provides_host_devices() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    for userns in ["private", "host"] {
        let out = sh_with(
            &c,
            &r,
            &[
                "--userns",
                userns,
                "--device",
                "/dev/fuse",
                "--device",
                "/dev/null:/dev/mynull:rw",
            ],
            "ls -l /dev/fuse /dev/mynull; echo x >/dev/mynull && echo wrote; true",
        );
        assert!(
            out.contains("10, 229") && out.contains("/dev/fuse"),
            "{userns}: {out}"
        );
        assert!(
            out.contains("1,   3") && out.contains("/dev/mynull"),
            "{userns}: {out}"
        );
        assert!(out.contains("wrote"), "{userns}: {out}");
    }
    assert_rejected(&c, &r, &["--device", "/etc/hostname"], "not a device node");
    assert_rejected(&c, &r, &["--device", "/dev/null:/dev/n:rwx"], "permissions");
}

#[test]
fn sysctls_are_set_and_checked() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = sh_with(
        &c,
        &r,
        &[
            "--network",
            "none",
            "--sysctl",
            "kernel.shmmax=123456789",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "fs.mqueue.msg_max=20",
        ],
        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward /proc/sys/fs/mqueue/msg_max",
    );
    assert_eq!(out.trim(), "123456789\n1\n20");
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").expect("shmmax");
    assert_ne!(host_shmmax.trim(), "123456789", "the host's value changed");
    assert_rejected(&c, &r, &["--sysctl", "kernel.hostname=x"], "not allowed");
    assert_rejected(&c, &r, &["--sysctl", "vm.swappiness=10"], "not allowed");
    assert_rejected(
        &c,
        &r,
        &["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
        "network namespace",
    );
}

#[test]
fn ulimit_oom_score_adj_and_shm_size() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = sh_with(
        &c,
        &r,
        &[
            "--ulimit",
            "nofile=512:768",
            "--oom-score-adj",
            "500",
            "--shm-size",
            "10m",
        ],
        "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; df -k /dev/shm | tail -1",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["512", "768", "500"], "{out}");
    let shm: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(shm[1], "10240", "{out}");
    // The default /dev/shm is 64m.
    let out = sh_with(&c, &r, &[], "df -k /dev/shm | tail -1");
    assert_eq!(out.split_whitespace().nth(1), Some("65536"), "{out}");
    assert_rejected(&c, &r, &["--ulimit", "nofile=2:1"], "soft limit");
    assert_rejected(&c, &r, &["--ulimit", "bogus=1"], "unknown limit");
    assert_rejected(
        &c,
        &r,
        &["--oom-score-adj", "1001"],
        "between -1000 and 1000",
    );
    assert_rejected(&c, &r, &["--shm-size", "0"], "greater than 0");
}

#[test]
fn exec_gets_the_containers_capabilities_and_seccomp() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let id = c.run_detached(
        r.path(),
        &[
            "--cap-drop",
            "ALL",
            "--cap-add",
            "KILL",
            "--security-opt",
            "no-new-privileges",
            "sleep",
            "100",
        ],
    );
    let out = c.ccrun(&["exec", &id, "cat", "/proc/self/status"]);
    let removed = c.ccrun(&["rm", "-f", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = stdout(&out);
    assert_eq!(status_field(&status, "CapEff"), "0000000000000020");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(removed.status.code(), Some(0), "{}", stderr(&removed));
}
