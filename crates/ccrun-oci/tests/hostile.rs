//! The hostile-input suite, runtime side: what a container (or a spec a client hands
//! over) tries against `ccrun-oci` on the host.
//!
//! - CVE-2019-5736 through `exec`: a container that makes the exec'd process run
//!   `/proc/self/exe` must not be able to overwrite ccrun-oci's binary, with and
//!   without a user namespace;
//! - device nodes: when a spec bind-mounts a host directory on `/dev`, the nodes there
//!   are the host's: the runtime must never change their owner or mode, nor follow a
//!   symlink planted in place of a device.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use ccrun_testkit::exe_overwrite::{ExeOverwrite, Outcome};
use serde_json::{json, Value};
use support::{unique_id, Bundle, Oci};

/// Gives `config` a user namespace mapping container ids 0–65535 to host 100000+.
fn with_user_namespace(config: &mut Value) {
    let namespaces = config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    namespaces.push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

fn exec_exe_overwrite(user_namespace: bool) {
    let kit = ExeOverwrite::new(&support::bin());
    let oci = Oci::new().with_binary(kit.binary());
    let rootfs = kit.rootfs().to_path_buf();
    let bundle = Bundle::new(&["sleep", "1000"], |config| {
        config["root"]["path"] = rootfs.to_string_lossy().into();
        if user_namespace {
            with_user_namespace(config);
        }
    });
    let id = unique_id(if user_namespace { "exe-userns" } else { "exe" });
    oci.ok(&["run", "-d", "--bundle", bundle.path(), &id]);
    oci.ok(&[
        "exec",
        "--env",
        ExeOverwrite::env(),
        &id,
        "/proc/self/exe",
        "--version",
    ]);
    // The attack reached the binary the runtime ran from, and the write was refused
    // because that image is sealed.
    match kit.outcome(Duration::from_secs(30)) {
        Outcome::Refused(error) => assert!(error.contains("Read-only file system"), "{error}"),
        other => panic!("the attack on ccrun-oci's binary ended with {other:?}"),
    }
    assert!(kit.binary_intact(), "ccrun-oci's binary changed");
    oci.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_cannot_overwrite_the_runtime_through_proc_self_exe() {
    exec_exe_overwrite(false);
}

#[test]
fn exec_cannot_overwrite_the_runtime_through_proc_self_exe_in_a_user_namespace() {
    exec_exe_overwrite(true);
}

/// A bundle running `true` whose `/dev` is the host directory `dev` (bind-mounted, no
/// other `/dev` mounts) and whose spec lists `device`.
fn with_host_dev(dev: &str, device: Value) -> Bundle {
    Bundle::new(&["true"], |config| {
        let mounts = config["mounts"].as_array_mut().expect("mounts");
        mounts.retain(|m| {
            m["destination"] != "/dev"
                && !m["destination"].as_str().unwrap_or("").starts_with("/dev/")
        });
        mounts.push(
            json!({"destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]}),
        );
        config["linux"]["devices"] = json!([device]);
    })
}

/// Owner and mode of `path` (not following a symlink).
fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).expect("stat");
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

#[test]
fn device_nodes_the_runtime_did_not_make_are_never_changed() {
    let oci = Oci::new();
    let host_dev = tempfile::tempdir().expect("tempdir");
    let decoy = host_dev.path().join("null");
    nix::sys::stat::mknod(
        &decoy,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod decoy");
    std::fs::set_permissions(&decoy, PermissionsExt::from_mode(0o600)).expect("chmod");
    let target = host_dev.path().join("victim");
    std::fs::write(&target, "host file\n").expect("victim");
    std::fs::set_permissions(&target, PermissionsExt::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::symlink(&target, host_dev.path().join("zero")).expect("symlink");
    let before = (owner_and_mode(&decoy), owner_and_mode(&target));

    let dev = host_dev.path().to_string_lossy().into_owned();
    let device = |path: &str, minor: i64| {
        json!({"path": path, "type": "c", "major": 1, "minor": minor,
               "fileMode": 0o666, "uid": 4242, "gid": 4242})
    };
    // The decoy is the right device: it is used, and left as it is.
    let bundle = with_host_dev(&dev, device("/dev/null", 3));
    let id = unique_id("decoy");
    oci.ok(&["run", "--bundle", bundle.path(), &id]);
    assert_eq!(
        owner_and_mode(&decoy),
        before.0,
        "the host's node was changed"
    );

    // A symlink where a device goes is refused, and what it points to is untouched.
    let bundle = with_host_dev(&dev, device("/dev/zero", 5));
    let id = unique_id("symlink");
    let err = oci.fails(&["run", "--bundle", bundle.path(), &id]);
    assert!(
        err.contains("/dev/zero already exists and is not the device"),
        "{err}"
    );
    assert_eq!(owner_and_mode(&target), before.1, "a host file was changed");
    assert_eq!(
        owner_and_mode(&decoy),
        before.0,
        "the host's node was changed"
    );
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "host file\n"
    );
}
