//! Resumable pulls against the real distribution registry (Debian's
//! docker-registry) on 127.0.0.1, through a misbehaving proxy written for the tests:
//! a connection cut mid-blob, a registry that ignores `Range`, a `ccrun pull` killed
//! with SIGKILL mid-blob, and a partial download that is not the blob's.

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/image_proxy.rs"]
mod image_proxy;
#[path = "support/registry.rs"]
mod registry;

use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ccrun_image::Store;
use image_build::{busybox_layer, Layer, Layout};
use image_cli::Env;
use image_proxy::Proxy;
use registry::{Format, Registry};

/// A registry holding `test/busybox:one` (one busybox layer), and that layer.
struct Fixture {
    reg: Registry,
    _layouts: tempfile::TempDir,
    layer: Layer,
    id: ccrun_image::Digest,
}

fn fixture() -> Fixture {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let layer = busybox_layer();
    let mut layout = Layout::new(&layouts.path().join("oci"));
    let built = layout.image(&[&layer], "amd64", Some("one"));
    reg.push(&layout.dir, "one", "test/busybox", Format::Oci);
    Fixture {
        reg,
        _layouts: layouts,
        layer,
        id: built.config,
    }
}

/// The `Range` headers of the proxy's blob GETs for `layer`, in order.
fn ranges(proxy: &Proxy, layer: &Layer) -> Vec<Option<String>> {
    proxy
        .blob_gets()
        .into_iter()
        .filter(|l| l.path.ends_with(&layer.digest.to_string()))
        .map(|l| l.header("range").map(str::to_string))
        .collect()
}

/// The partial download of `layer` in `env`'s store, if any.
fn partial_file(env: &Env, layer: &Layer) -> std::path::PathBuf {
    env.store().join("partial").join(layer.digest.hex())
}

/// Checks that the pulled image is the fixture's, with the registry's busybox.
fn assert_pulled(env: &Env, f: &Fixture, name: &str) {
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(name)
        .expect("resolve")
        .expect("image present");
    assert_eq!(image.record.id, f.id);
    let bb = std::fs::read(image.layer_dirs[0].join("bin/busybox")).expect("busybox");
    assert_eq!(
        bb,
        std::fs::read(image_build::busybox_path()).expect("host busybox")
    );
    assert!(
        env.list("partial").is_empty(),
        "partial downloads left after a complete pull: {:?}",
        env.list("partial")
    );
    assert!(env.list("tmp").is_empty(), "{:?}", env.list("tmp"));
}

#[test]
fn connection_cut_mid_blob_resumes_at_the_bytes_received() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    let cut = 150_000;
    assert!(
        f.layer.blob.len() > 2 * cut,
        "the layer is too small to cut"
    );
    proxy.faults.drop_after.store(cut as u64, Ordering::Relaxed);
    let env = Env::new();
    let name = format!("{}/test/busybox:one", proxy.addr);
    env.ok(&["pull", &name]);
    assert_eq!(
        ranges(&proxy, &f.layer),
        vec![None, Some(format!("bytes={cut}-"))],
        "one GET from the start, cut after {cut} bytes, then one resuming there"
    );
    assert_pulled(&env, &f, &name);
}

#[test]
fn registry_ignoring_range_still_pulls() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    proxy.faults.strip_range.store(true, Ordering::Relaxed);
    proxy.faults.drop_after.store(100_000, Ordering::Relaxed);
    let env = Env::new();
    let name = format!("{}/test/busybox:one", proxy.addr);
    env.ok(&["pull", &name]);
    // The resume asked for a range, got the whole blob (200) and still verified.
    assert_eq!(
        ranges(&proxy, &f.layer),
        vec![None, Some("bytes=100000-".to_string())]
    );
    assert_pulled(&env, &f, &name);

    // Across pulls too: a partial download, then a registry that ignores Range.
    let env = Env::new();
    let held = 64 * 1024;
    std::fs::create_dir_all(env.store().join("partial")).expect("partial dir");
    std::fs::write(partial_file(&env, &f.layer), &f.layer.blob[..held]).expect("partial");
    proxy.clear();
    env.ok(&["pull", &name]);
    assert_eq!(
        ranges(&proxy, &f.layer),
        vec![Some(format!("bytes={held}-"))]
    );
    assert_pulled(&env, &f, &name);
}

/// Kills our own child with SIGKILL once `ready` holds (or the deadline passes).
fn kill_when(mut child: Child, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() && Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Child::kill sends SIGKILL to this child's PID only.
    let _ = child.kill();
    let status = child.wait().expect("wait for our pull");
    assert!(!status.success(), "the pull finished before it was killed");
}

#[test]
fn pull_killed_mid_blob_is_resumed_by_the_next() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    // 16 KiB every 50 ms: the layer takes seconds, so the kill lands mid-blob.
    proxy.faults.throttle_ms.store(50, Ordering::Relaxed);
    let env = Env::new();
    let name = format!("{}/test/busybox:one", proxy.addr);
    let partial = partial_file(&env, &f.layer);
    let child = env.spawn(&["pull", &name]);
    kill_when(child, || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() >= 100_000)
    });
    let held = std::fs::read(&partial).expect("the killed pull left its partial download");
    assert!(
        !held.is_empty() && held.len() < f.layer.blob.len(),
        "{} of {} bytes held",
        held.len(),
        f.layer.blob.len()
    );
    assert!(
        f.layer.blob.starts_with(&held),
        "the partial download is a prefix of the blob"
    );
    assert!(
        env.ok(&["images", "-q"]).trim().is_empty(),
        "no image after a killed pull"
    );

    proxy.faults.throttle_ms.store(0, Ordering::Relaxed);
    proxy.clear();
    env.ok(&["pull", &name]);
    assert_eq!(
        ranges(&proxy, &f.layer),
        vec![Some(format!("bytes={}-", held.len()))],
        "the second pull asks only for what the first did not receive"
    );
    assert_pulled(&env, &f, &name);
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "/bin/sh",
        "-c",
        "echo resumed-ok",
    ]);
    assert_eq!(out.trim(), "resumed-ok");
}

#[test]
fn bad_partial_download_is_deleted_and_the_layer_downloaded_again() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    let env = Env::new();
    let name = format!("{}/test/busybox:one", proxy.addr);
    // Bytes that are not the blob's prefix: a flipped byte in the middle.
    let mut bad = f.layer.blob[..80_000].to_vec();
    bad[40_000] ^= 0x55;
    std::fs::create_dir_all(env.store().join("partial")).expect("partial dir");
    std::fs::write(partial_file(&env, &f.layer), &bad).expect("partial");
    let out = env.run(&["pull", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("digest mismatch") && stderr.contains("from the start"),
        "the bad partial download is reported: {stderr}"
    );
    assert_eq!(
        ranges(&proxy, &f.layer),
        vec![Some("bytes=80000-".to_string()), None],
        "resumed once, then downloaded whole"
    );
    assert_pulled(&env, &f, &name);

    // A registry that serves bad bytes fails the pull and keeps nothing of them.
    proxy.faults.corrupt_blobs.store(true, Ordering::Relaxed);
    let env = Env::new();
    let err = env.fails(&["pull", &name]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(env.list("partial").is_empty(), "{:?}", env.list("partial"));
}

#[test]
fn prune_removes_partial_downloads() {
    let f = fixture();
    let env = Env::new();
    let name = format!("{}/test/busybox:one", f.reg.addr);
    env.ok(&["pull", &name]);
    std::fs::create_dir_all(env.store().join("partial")).expect("partial dir");
    std::fs::write(env.store().join("partial").join("0".repeat(64)), b"stale").expect("partial");
    // Not an image: listing and pulling ignore it.
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
    env.ok(&["image", "prune", "-f"]);
    assert!(env.list("partial").is_empty(), "{:?}", env.list("partial"));
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);

    std::fs::write(env.store().join("partial").join("1".repeat(64)), b"stale").expect("partial");
    env.ok(&["system", "prune", "-f"]);
    assert!(env.list("partial").is_empty(), "{:?}", env.list("partial"));
}

/// Sends `DELETE path` to `addr` and returns the status line.
fn delete(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to the registry");
    write!(
        conn,
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_blob_the_registry_refuses_leaves_no_partial_file() {
    let f = fixture();
    let status = delete(
        &f.reg.addr,
        &format!("/v2/test/busybox/blobs/{}", f.layer.digest),
    );
    assert!(status.contains(" 202"), "deleting the layer blob: {status}");
    let env = Env::new();
    let err = env.fails(&["pull", &format!("{}/test/busybox:one", f.reg.addr)]);
    assert!(err.contains("not found"), "{err}");
    assert!(env.list("partial").is_empty(), "{:?}", env.list("partial"));
}
