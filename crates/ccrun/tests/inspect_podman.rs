//! `inspect` in Docker's shape, checked against podman 4.3's `inspect` of the same
//! image and an equivalent container: every key podman shows (two levels deep) is
//! there with the same JSON type, except the documented podman-only keys and the few
//! places where podman departs from Docker's API, where ccrun follows Docker.
//!
//! podman gets storage, run root and configuration of its own under a temp dir (vfs,
//! cgroupfs, file events) and only pulls and creates, so no OCI runtime is started.

mod support;

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/registry.rs"]
mod registry;

use ccrun_testkit::podman::Podman;
use std::collections::BTreeMap;

use image_build::{busybox_layer, Layout};
use registry::{Format, Registry};
use serde_json::Value;
use support::{stderr, stdout, Ccrun};

/// Keys podman shows that Docker's `ContainerJSON` does not have (libpod's own:
/// its runtime files, pods, capabilities sets, conmon, checkpoints, its own cgroup
/// settings), or that Docker shows only in other cases (`State.Health` only with a
/// healthcheck; `KernelMemory` is omitted when zero since API 1.42).
const PODMAN_ONLY_CONTAINER: &[&str] = &[
    "BoundingCaps",
    "Config.Annotations",
    "Config.CreateCommand",
    "Config.HealthcheckOnFailureAction",
    "Config.Passwd",
    "Config.Timeout",
    "Config.Umask",
    "Config.sdNotifyMode",
    "ConmonPidFile",
    "Dependencies",
    "EffectiveCaps",
    "HostConfig.CgroupConf",
    "HostConfig.CgroupManager",
    "HostConfig.CgroupMode",
    "HostConfig.Cgroups",
    "HostConfig.DiskQuota",
    "HostConfig.KernelMemory",
    "ImageDigest",
    "IsInfra",
    "IsService",
    "Namespace",
    "OCIRuntime",
    "PidFile",
    "Pod",
    "Rootfs",
    "State.CheckpointedAt",
    "State.Health",
    "State.OciVersion",
    "State.RestoredAt",
    "StaticDir",
];

/// Keys podman shows that Docker's `ImageInspect` does not have.
const PODMAN_ONLY_IMAGE: &[&str] = &[
    "Annotations",
    "Digest",
    "History",
    "Labels",
    "ManifestType",
    "NamesHistory",
    "User",
    "Version",
];

/// Where podman 4.3's JSON type departs from Docker's API (ccrun follows Docker):
/// `Entrypoint` is a string there (an array in Docker), `StopSignal` a number (a
/// name such as "SIGTERM" in Docker).
const PODMAN_TYPES_DIFFER: &[&str] = &["Config.Entrypoint", "Config.StopSignal"];

/// `path → JSON type` of every key, two levels deep.
fn key_types(v: &Value) -> BTreeMap<String, &'static str> {
    fn kind(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
    let mut out = BTreeMap::new();
    if let Value::Object(top) = v {
        for (k, x) in top {
            out.insert(k.clone(), kind(x));
            if let Value::Object(inner) = x {
                for (k2, y) in inner {
                    out.insert(format!("{k}.{k2}"), kind(y));
                }
            }
        }
    }
    out
}

/// Compares ccrun's keys with podman's: what podman has and ccrun lacks, and where
/// the types differ (null goes with anything: an unset value).
fn differences(
    ours: &Value,
    podman: &Value,
    podman_only: &[&str],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (ours, theirs) = (key_types(ours), key_types(podman));
    // A listed key covers what is inside it.
    let listed = |k: &str| {
        podman_only.contains(&k) || podman_only.contains(&k.split('.').next().unwrap_or(k))
    };
    let missing: Vec<String> = theirs
        .keys()
        .filter(|k| !ours.contains_key(*k) && !listed(k))
        .cloned()
        .collect();
    // The allow-list stays honest: a listed key ccrun now has must come off it.
    let listed_but_present: Vec<String> = podman_only
        .iter()
        .filter(|k| ours.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    let types: Vec<String> = theirs
        .iter()
        .filter_map(|(k, t)| {
            let o = ours.get(k)?;
            (o != t && *o != "null" && *t != "null" && !PODMAN_TYPES_DIFFER.contains(&k.as_str()))
                .then(|| format!("{k}: ccrun {o}, podman {t}"))
        })
        .collect();
    (missing, listed_but_present, types)
}

#[test]
fn inspect_has_podmans_keys_and_types() {
    let c = Ccrun::new();
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(&layouts.path().join("oci"));
    layout.image_with_config(
        &[&busybox_layer()],
        "amd64",
        Some("1"),
        serde_json::json!({
            "Cmd": ["/bin/sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/",
            "Labels": {"org.test": "yes"},
        }),
    );
    reg.push(&layout.dir, "1", "test/bb", Format::Oci);
    let image = format!("{}/test/bb:1", reg.addr);
    let podman = Podman::new();
    podman.ok(&["pull", "--quiet", "--tls-verify=false", &image]);
    let pulled = c.ccrun(&["pull", "-q", &image]);
    assert!(pulled.status.success(), "{}", stderr(&pulled));

    let flags = [
        "--name",
        "same",
        "--network",
        "host",
        "--cap-add",
        "NET_ADMIN",
        "--dns",
        "1.1.1.1",
        "--add-host",
        "h:1.2.3.4",
        "--shm-size",
        "32m",
        "--entrypoint",
        "/bin/sh",
        "--restart",
        "on-failure:2",
        "--ulimit",
        "nofile=100:200",
        "-e",
        "X=1",
        "-v",
        "/tmp:/data:ro",
        "--tmpfs",
        "/scratch",
        "--stop-signal",
        "SIGTERM",
        "--stop-timeout",
        "10",
        &image,
        "-c",
        "true",
    ];
    podman.ok(&[&["create"][..], &flags].concat());
    let created = c.ccrun(&[&["create"][..], &flags].concat());
    assert!(created.status.success(), "{}", stderr(&created));

    let json = |text: &str| -> Value {
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        v[0].clone()
    };
    let ours = json(&stdout(&c.ccrun(&["inspect", "same"])));
    let theirs = json(&podman.ok(&["inspect", "same"]));
    let (missing, stale, types) = differences(&ours, &theirs, PODMAN_ONLY_CONTAINER);
    assert!(
        missing.is_empty(),
        "container keys podman has, ccrun lacks: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "ccrun has these now; unlist them: {stale:?}"
    );
    assert!(types.is_empty(), "container types differ: {types:?}");
    // The values that matter to scripts agree too.
    for path in [
        "/Config/Cmd",
        "/HostConfig/Dns",
        "/HostConfig/ExtraHosts",
        "/HostConfig/ShmSize",
        "/HostConfig/RestartPolicy",
        "/HostConfig/NetworkMode",
        "/Path",
        "/Args",
    ] {
        let (o, t) = (ours.pointer(path), theirs.pointer(path));
        assert!(o.is_some() && o == t, "{path}: ccrun {o:?}, podman {t:?}");
    }
    // podman's string form of the entrypoint, Docker's list in ccrun.
    assert_eq!(ours["Config"]["Entrypoint"], serde_json::json!(["/bin/sh"]));
    assert_eq!(theirs["Config"]["Entrypoint"], "/bin/sh");
    // Docker shows capabilities as given; podman adds the CAP_ prefix.
    assert_eq!(
        ours["HostConfig"]["CapAdd"],
        serde_json::json!(["NET_ADMIN"])
    );
    assert_eq!(ours["Config"]["StopSignal"], "SIGTERM");

    let ours = json(&stdout(&c.ccrun(&["image", "inspect", &image])));
    let theirs = json(&podman.ok(&["image", "inspect", &image]));
    let (missing, stale, types) = differences(&ours, &theirs, PODMAN_ONLY_IMAGE);
    assert!(
        missing.is_empty(),
        "image keys podman has, ccrun lacks: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "ccrun has these now; unlist them: {stale:?}"
    );
    assert!(types.is_empty(), "image types differ: {types:?}");
    // Docker's image ids carry the algorithm; podman's are bare hex.
    assert_eq!(
        ours["Id"]
            .as_str()
            .and_then(|id| id.strip_prefix("sha256:")),
        theirs["Id"].as_str()
    );
    for path in [
        "/Config/Env",
        "/Config/Cmd",
        "/Config/Labels",
        "/Architecture",
        "/Os",
        "/RootFS/Layers",
        "/Created",
    ] {
        let (o, t) = (ours.pointer(path), theirs.pointer(path));
        assert!(o.is_some() && o == t, "{path}: ccrun {o:?}, podman {t:?}");
    }
}
