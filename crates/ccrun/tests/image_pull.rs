//! `ccrun pull/images/rmi/image inspect` against the real distribution registry
//! (Debian's docker-registry) on 127.0.0.1, with images pushed by skopeo.

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/image_proxy.rs"]
mod image_proxy;
#[path = "support/registry.rs"]
mod registry;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ccrun_image::Store;
use image_build::{busybox_layer, features_layer, layer, Comp, Entry, Layout};
use image_cli::Env;
use image_proxy::Proxy;
use registry::{Format, Registry};

/// A registry holding `one` (busybox, one layer) as OCI and Docker schema 2 and
/// `multi` (busybox + the features layer) as OCI.
struct Fixture {
    reg: Registry,
    _layouts: tempfile::TempDir,
    one_manifest: ccrun_image::Digest,
    one_id: ccrun_image::Digest,
    multi_id: ccrun_image::Digest,
}

fn fixture() -> Fixture {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let base = busybox_layer();
    let features = features_layer();
    let mut layout = Layout::new(&layouts.path().join("oci"));
    let one = layout.image(&[&base], "amd64", Some("one"));
    let multi = layout.image(&[&base, &features], "amd64", Some("multi"));
    reg.push(&layout.dir, "one", "test/busybox", Format::Oci);
    reg.push(
        &layout.dir,
        "one",
        "test/busybox-docker",
        Format::DockerV2s2,
    );
    reg.push(&layout.dir, "multi", "test/multi", Format::Oci);
    Fixture {
        reg,
        _layouts: layouts,
        one_manifest: one.manifest,
        one_id: one.config,
        multi_id: multi.config,
    }
}

#[test]
fn pulls_by_tag_and_digest_oci_and_docker() {
    let f = fixture();
    let env = Env::new();
    let name = format!("{}/test/busybox:one", f.reg.addr);
    let out = env.ok(&["pull", &name]);
    assert!(out.contains("Status: Downloaded newer image"), "{out}");
    assert!(out.trim_end().ends_with(&name), "{out}");

    let store = Store::open(&env.root()).expect("store");
    let image = store
        .resolve(&name)
        .expect("resolve")
        .expect("image present");
    assert_eq!(image.record.id, f.one_id);
    assert_eq!(image.layer_dirs.len(), 1);
    assert!(image.layer_dirs[0].join("bin/busybox").is_file());
    assert_eq!(
        image.config.config().as_ref().and_then(|c| c.cmd().clone()),
        Some(vec!["/bin/sh".to_string()])
    );

    // By digest: the same image, nothing new.
    let by_digest = format!("{}/test/busybox@{}", f.reg.addr, f.one_manifest);
    let out = env.ok(&["pull", &by_digest]);
    assert!(out.contains("Image is up to date"), "{out}");
    assert!(store.resolve(&by_digest).expect("resolve").is_some());

    // Docker schema 2, same layers and config.
    let docker = format!("{}/test/busybox-docker:one", f.reg.addr);
    env.ok(&["pull", "-q", &docker]);
    let image = store
        .resolve(&docker)
        .expect("resolve")
        .expect("docker image");
    assert_eq!(image.record.id, f.one_id);
    assert_eq!(
        image
            .manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .as_deref(),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );

    let json = env.ok(&["images", "--format", "json"]);
    assert_eq!(json.lines().count(), 2, "{json}");
    assert!(json.contains("test/busybox-docker"), "{json}");
    let table = env.ok(&["images", "--digests"]);
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(table.contains(&f.one_manifest.to_string()), "{table}");
    let inspect = env.ok(&["image", "inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert_eq!(v[0]["Id"], f.one_id.to_string());
    assert_eq!(v[0]["Architecture"], "amd64");
}

#[test]
fn multi_layer_image_keeps_oci_semantics() {
    let f = fixture();
    let env = Env::new();
    let name = format!("{}/test/multi:multi", f.reg.addr);
    env.ok(&["pull", &name]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("present");
    assert_eq!(image.record.id, f.multi_id);
    let [lower, upper] = image.layer_dirs.as_slice() else {
        panic!("two layers expected")
    };
    assert!(lower.join("etc/remove-me").is_file());
    let wh = std::fs::symlink_metadata(upper.join("etc/remove-me")).expect("whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout as 0/0 char device"
    );
    let mut v = [0u8; 4];
    let n = rustix_getxattr(&upper.join("opt"), "trusted.overlay.opaque", &mut v);
    assert_eq!(&v[..n], b"y", "opaque dir marked");
    assert!(upper.join("opt/new").is_file());
    let a = std::fs::metadata(upper.join("usr/data")).expect("data");
    let b = std::fs::metadata(upper.join("usr/data-link")).expect("link");
    assert_eq!(a.ino(), b.ino(), "hardlink");
    assert_eq!(
        std::fs::read_link(upper.join("usr/sym"))
            .expect("symlink")
            .to_str(),
        Some("/etc/hostname")
    );
    let suid = std::fs::metadata(upper.join("usr/suid")).expect("suid");
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    let owned = std::fs::metadata(upper.join("home/user-file")).expect("owned");
    assert_eq!((owned.uid(), owned.gid()), (1000, 1000));
    assert_eq!(owned.mtime(), 1_700_000_000);
}

fn rustix_getxattr(path: &std::path::Path, name: &str, buf: &mut [u8]) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    // SAFETY: both strings are NUL-terminated and buf is valid for buf.len() bytes.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(r).unwrap_or(0)
}

#[test]
fn chooses_platform_from_index() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let base = busybox_layer();
    let arm_marker = layer(
        &[Entry::File("arch".into(), b"arm64\n".to_vec(), 0o644, 0)],
        Comp::Gzip,
    );
    let amd_marker = layer(
        &[Entry::File("arch".into(), b"amd64\n".to_vec(), 0o644, 0)],
        Comp::None,
    );
    let mut layout = Layout::new(layouts.path());
    let amd = layout.image(&[&base, &amd_marker], "amd64", None);
    let arm = layout.image(&[&base, &arm_marker], "arm64", None);
    let index = layout.index(&[(&amd, "amd64"), (&arm, "arm64")], "multi");
    reg.push(layouts.path(), "multi", "test/multiarch", Format::All);

    let env = Env::new();
    let name = format!("{}/test/multiarch:multi", reg.addr);
    let store = Store::open(&env.root()).expect("store");
    if std::env::consts::ARCH == "x86_64" {
        env.ok(&["pull", &name]);
        let image = store.resolve(&name).expect("resolve").expect("present");
        assert_eq!(
            image.record.id, amd.config,
            "host platform chosen, not the attestation"
        );
        assert_eq!(image.record.index_digest.as_ref(), Some(&index));
    }
    env.ok(&["pull", "--platform", "linux/arm64", &name]);
    let image = store.resolve(&name).expect("resolve").expect("present");
    assert_eq!(image.record.id, arm.config);
    assert_eq!(image.record.platform, "linux/arm64");
    let arch = std::fs::read_to_string(image.layer_dirs[1].join("arch")).expect("arch file");
    assert_eq!(arch, "arm64\n");
    // Pulling the index by digest resolves too.
    let by_digest = format!("{}/test/multiarch@{index}", reg.addr);
    assert!(store.resolve(&by_digest).expect("resolve").is_some());

    let err = env.fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    assert!(
        !err.contains("unknown/unknown"),
        "attestations are not offered: {err}"
    );
}

#[test]
fn second_pull_downloads_nothing_and_shared_layers_once() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    let env = Env::new();
    let one = format!("{}/test/busybox:one", proxy.addr);
    env.ok(&["pull", &one]);
    assert_eq!(
        proxy.blob_gets().len(),
        2,
        "one layer + config: {:?}",
        proxy.blob_gets()
    );

    proxy.clear();
    let out = env.ok(&["pull", &one]);
    assert!(out.contains("Image is up to date"), "{out}");
    assert!(
        proxy.blob_gets().is_empty(),
        "second pull fetched {:?}",
        proxy.blob_gets()
    );

    // The multi-layer image shares the busybox layer: only its own layer and config.
    proxy.clear();
    let out = env.ok(&["pull", &format!("{}/test/multi:multi", proxy.addr)]);
    assert!(out.contains("Already exists"), "{out}");
    assert_eq!(proxy.blob_gets().len(), 2, "{:?}", proxy.blob_gets());
    assert_eq!(env.list("layers").len(), 2);
}

#[test]
fn corrupted_blob_fails_and_stores_nothing() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    proxy.faults.corrupt_blobs.store(true, Ordering::Relaxed);
    let env = Env::new();
    let err = env.fails(&["pull", &format!("{}/test/multi:multi", proxy.addr)]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(
        env.list("layers").is_empty(),
        "layers left: {:?}",
        env.list("layers")
    );
    assert!(env.list("blobs/sha256").is_empty());
    assert!(env.list("tmp").is_empty());
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
}

#[test]
fn dropped_connection_resumes_with_range() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    proxy.faults.drop_after.store(100_000, Ordering::Relaxed);
    let env = Env::new();
    env.ok(&["pull", &format!("{}/test/busybox:one", proxy.addr)]);
    let ranged: Vec<_> = proxy
        .blob_gets()
        .into_iter()
        .filter(|l| l.header("range").is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "{:?}", proxy.blob_gets());
    assert_eq!(ranged[0].header("range"), Some("bytes=100000-"));
}

#[test]
fn killed_pull_is_completed_by_the_next() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    proxy.faults.throttle_ms.store(40, Ordering::Relaxed);
    let env = Env::new();
    let name = format!("{}/test/multi:multi", proxy.addr);
    let mut child = env.spawn(&["pull", &name]);
    // Wait until a layer is being unpacked, then SIGKILL our own child.
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.list("tmp").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().expect("kill our pull");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the pull finished before it was killed");
    assert!(
        env.ok(&["images", "-q"]).trim().is_empty(),
        "no image after a killed pull"
    );

    proxy.faults.throttle_ms.store(0, Ordering::Relaxed);
    env.ok(&["pull", &name]);
    assert!(env.list("tmp").is_empty());
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("present");
    assert_eq!(image.record.id, f.multi_id);
    let bb = std::fs::read(image.layer_dirs[0].join("bin/busybox")).expect("busybox");
    assert_eq!(
        bb,
        std::fs::read(image_build::busybox_path()).expect("host busybox")
    );
}

#[test]
fn hostile_layers_write_nothing_outside() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let victim = tempfile::tempdir().expect("victim dir");
    let victim_path = victim.path().to_str().expect("utf8").to_string();
    std::fs::write(victim.path().join("file"), b"untouched").expect("victim file");
    let depth = "../".repeat(20);
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        (
            "traversal",
            vec![Entry::Raw(
                tar::EntryType::Regular,
                format!("{depth}{}/dotdot", &victim_path[1..]),
                String::new(),
                b"x".to_vec(),
            )],
        ),
        (
            "symlink",
            vec![
                Entry::Raw(
                    tar::EntryType::Symlink,
                    "escape".into(),
                    victim_path.clone(),
                    Vec::new(),
                ),
                Entry::Raw(
                    tar::EntryType::Regular,
                    "escape/through-symlink".into(),
                    String::new(),
                    b"x".to_vec(),
                ),
            ],
        ),
        (
            "hardlink",
            vec![Entry::Raw(
                tar::EntryType::Link,
                "stolen".into(),
                format!("{victim_path}/file"),
                Vec::new(),
            )],
        ),
        (
            "hardlink-dotdot",
            vec![Entry::Raw(
                tar::EntryType::Link,
                "stolen".into(),
                format!("{depth}{}/file", &victim_path[1..]),
                Vec::new(),
            )],
        ),
    ];
    let env = Env::new();
    let mut layout = Layout::new(layouts.path());
    for (tag, entries) in &cases {
        let l = layer(entries, Comp::Gzip);
        layout.image(&[&l], "amd64", Some(tag));
        reg.push(layouts.path(), tag, "test/hostile", Format::Oci);
        let err = env.fails(&["pull", &format!("{}/test/hostile:{tag}", reg.addr)]);
        assert!(err.contains("layer sha256:"), "{tag}: {err}");
        assert_eq!(
            image_cli::list(victim.path()),
            ["file"],
            "{tag} wrote outside the store"
        );
        assert_eq!(
            std::fs::read(victim.path().join("file")).expect("victim"),
            b"untouched"
        );
        assert!(env.list("layers").is_empty(), "{tag}: layer committed");
    }
    // An absolute path is taken relative to the layer root, like Docker does.
    let abs = layer(
        &[Entry::Raw(
            tar::EntryType::Regular,
            format!("{victim_path}/absolute"),
            String::new(),
            b"x".to_vec(),
        )],
        Comp::Gzip,
    );
    layout.image(&[&abs], "amd64", Some("absolute"));
    reg.push(layouts.path(), "absolute", "test/hostile", Format::Oci);
    let name = format!("{}/test/hostile:absolute", reg.addr);
    env.ok(&["pull", &name]);
    assert_eq!(image_cli::list(victim.path()), ["file"]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("present");
    assert!(image.layer_dirs[0]
        .join(&victim_path[1..])
        .join("absolute")
        .is_file());
}

#[test]
fn rmi_untags_then_frees_disk() {
    let f = fixture();
    let env = Env::new();
    let one = format!("{}/test/busybox:one", f.reg.addr);
    let docker = format!("{}/test/busybox-docker:one", f.reg.addr);
    env.ok(&["pull", "-q", &one]);
    env.ok(&["pull", "-q", &docker]);
    let used = image_size(&env);
    assert!(used > 500_000, "busybox is in the store ({used} bytes)");

    let out = env.ok(&["rmi", &one]);
    assert!(
        out.contains("Untagged:") && !out.contains("Deleted:"),
        "{out}"
    );
    assert!(
        !env.list("layers").is_empty(),
        "still used by the other tag"
    );

    let missing = env.fails(&["rmi", &one]);
    assert!(missing.contains("no such image"), "{missing}");

    let out = env.ok(&["rmi", &docker]);
    assert!(out.contains(&format!("Deleted: {}", f.one_id)), "{out}");
    assert!(env.list("layers").is_empty());
    assert!(env.list("blobs/sha256").is_empty());
    assert!(image_size(&env) < 100_000, "disk freed");
    assert!(env.ok(&["images", "-q"]).trim().is_empty());
}

fn image_size(env: &Env) -> u64 {
    fn walk(p: &std::path::Path) -> u64 {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if m.is_dir() {
            std::fs::read_dir(p)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        } else {
            m.blocks() * 512
        }
    }
    walk(&env.store())
}
