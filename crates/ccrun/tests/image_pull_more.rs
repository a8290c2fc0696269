//! More of `ccrun pull` against the real distribution registry (Debian's
//! docker-registry) on 127.0.0.1: 429 with Retry-After, zstd and mislabelled layer
//! compression, manifests whose Content-Type or body lie, and concurrent pulls
//! into one store.

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/image_proxy.rs"]
mod image_proxy;
#[path = "support/registry.rs"]
mod registry;

use std::os::unix::fs::MetadataExt;
use std::process::{Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ccrun_image::{Digest, Store};
use image_build::{busybox_layer, features_layer, layer, Built, Comp, Entry, Layer, Layout};
use image_cli::Env;
use image_proxy::Proxy;
use registry::{Format, Registry};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const ZSTD_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A registry with `test/busybox:one` (busybox) and `test/busybox:multi` (busybox +
/// the features layer), both OCI, in one repository.
struct Fixture {
    reg: Registry,
    _layouts: tempfile::TempDir,
    base: Layer,
    features: Layer,
    one: Built,
    multi: Built,
}

fn fixture() -> Fixture {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let base = busybox_layer();
    let features = features_layer();
    let mut layout = Layout::new(layouts.path());
    let one = layout.image(&[&base], "amd64", Some("one"));
    let multi = layout.image(&[&base, &features], "amd64", Some("multi"));
    reg.push(layouts.path(), "one", "test/busybox", Format::Oci);
    reg.push(layouts.path(), "multi", "test/busybox", Format::Oci);
    Fixture {
        reg,
        _layouts: layouts,
        base,
        features,
        one,
        multi,
    }
}

/// A layer of `entries` whose blob is the uncompressed tar run through `compress`,
/// announced with `media_type` (which may lie about the compression).
fn layer_with(
    entries: &[Entry],
    compress: fn(&[u8]) -> Vec<u8>,
    media_type: &'static str,
) -> Layer {
    let plain = layer(entries, Comp::None);
    let blob = compress(&plain.blob);
    Layer {
        digest: Digest::of(&blob),
        blob,
        diff_id: plain.diff_id,
        media_type,
    }
}

fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(tar, 3).expect("zstd")
}

fn uncompressed(tar: &[u8]) -> Vec<u8> {
    tar.to_vec()
}

/// A valid .xz stream (CRC32 check, one block of LZMA2 "uncompressed" chunks),
/// written by hand so the test needs no xz tool or crate.
fn xz(data: &[u8]) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> [u8; 4] {
        let mut crc = flate2::Crc::new();
        crc.update(bytes);
        crc.sum().to_le_bytes()
    }
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn pad4(v: &mut Vec<u8>, from: usize) {
        while !(v.len() - from).is_multiple_of(4) {
            v.push(0);
        }
    }
    let flags = [0x00, 0x01]; // check type CRC32
    let mut out = vec![0xfd, b'7', b'z', b'X', b'Z', 0x00];
    out.extend_from_slice(&flags);
    out.extend_from_slice(&crc32(&flags));
    // Block header: size, flags (one filter, no sizes), LZMA2 with a dict size byte.
    let block = out.len();
    let mut header = vec![0x02, 0x00, 0x21, 0x01, 0x16, 0, 0, 0];
    let header_crc = crc32(&header);
    header.extend_from_slice(&header_crc);
    out.extend_from_slice(&header);
    for (i, chunk) in data.chunks(64 << 10).enumerate() {
        out.push(if i == 0 { 0x01 } else { 0x02 }); // uncompressed, dict reset first
        out.extend_from_slice(&((chunk.len() - 1) as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0x00); // end of LZMA2 data
    let unpadded = (out.len() - block + 4) as u64;
    pad4(&mut out, block);
    out.extend_from_slice(&crc32(data));
    // Index: one record, then the stream footer.
    let index = out.len();
    out.push(0x00);
    varint(1, &mut out);
    varint(unpadded, &mut out);
    varint(data.len() as u64, &mut out);
    pad4(&mut out, index);
    let index_crc = crc32(&out[index..]);
    out.extend_from_slice(&index_crc);
    let mut footer = (((out.len() - index) / 4 - 1) as u32)
        .to_le_bytes()
        .to_vec();
    footer.extend_from_slice(&flags);
    out.extend_from_slice(&crc32(&footer));
    out.extend_from_slice(&footer);
    out.extend_from_slice(b"YZ");
    out
}

/// Deterministic, poorly compressible bytes, so a layer spans many reads.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The entries of a test layer carrying `marker` and `big` as file contents.
fn marker_entries(marker: &str, big: &[u8]) -> Vec<Entry> {
    vec![
        Entry::Dir("data/", 0o755),
        Entry::File("data/marker".into(), marker.as_bytes().to_vec(), 0o644, 0),
        Entry::File("data/big".into(), big.to_vec(), 0o600, 1000),
        Entry::Symlink("data/link", "marker"),
    ]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
}

/// Nothing of a failed pull is left in the store.
fn assert_store_empty(env: &Env, what: &str) {
    assert!(
        env.list("layers").is_empty(),
        "{what}: layers {:?}",
        env.list("layers")
    );
    assert!(
        env.list("blobs/sha256").is_empty(),
        "{what}: blobs {:?}",
        env.list("blobs/sha256")
    );
    assert!(
        env.list("tmp").is_empty(),
        "{what}: tmp {:?}",
        env.list("tmp")
    );
    assert!(
        env.ok(&["images", "-q"]).trim().is_empty(),
        "{what}: an image was recorded"
    );
}

fn sorted_hex(digests: &[&Digest]) -> Vec<String> {
    let mut v: Vec<String> = digests.iter().map(|d| d.hex().to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// One HTTP/1.1 request to the registry (`Connection: close`): status, headers
/// (lowercase names) and body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect to registry");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).expect("send request");
    conn.write_all(body).expect("send body");
    let mut response = Vec::new();
    conn.read_to_end(&mut response).expect("read response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

/// Pushes an image from an OCI layout to `repo:tag` byte for byte (blobs, then the
/// manifest), through the Distribution API, without skopeo's corrections.
fn push_verbatim(reg: &Registry, layout: &std::path::Path, image: &Built, repo: &str, tag: &str) {
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .expect("layout blob")
    };
    let manifest = blob(&image.manifest.to_string());
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    let mut digests = vec![parsed["config"]["digest"]
        .as_str()
        .expect("config")
        .to_string()];
    for l in parsed["layers"].as_array().expect("layers") {
        digests.push(l["digest"].as_str().expect("layer digest").to_string());
    }
    for d in digests {
        let (status, headers, body) = http(
            &reg.addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
            None,
            b"",
        );
        assert_eq!(
            status,
            202,
            "start upload: {}",
            String::from_utf8_lossy(&body)
        );
        let location = headers
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .expect("upload location");
        let path = location
            .strip_prefix(&format!("http://{}", reg.addr))
            .unwrap_or(&location);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, body) = http(
            &reg.addr,
            "PUT",
            &format!("{path}{sep}digest={d}"),
            Some("application/octet-stream"),
            &blob(&d),
        );
        assert_eq!(
            status,
            201,
            "upload {d}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, headers, body) = http(
        &reg.addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        Some(OCI_MANIFEST),
        &manifest,
    );
    assert_eq!(
        status,
        201,
        "put manifest: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "docker-content-digest" && *v == image.manifest.to_string()),
        "{headers:?}"
    );
}

#[test]
fn too_many_requests_waits_as_long_as_retry_after_says() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    // Two 429s, both on the first blob (the config). Each says `Retry-After: 1`:
    // honouring it waits 2 s in all; the plain backoff would be 0.5 s + 1 s.
    proxy.faults.too_many_requests.store(2, Ordering::Relaxed);
    let env = Env::new();
    let name = format!("{}/test/busybox:one", proxy.addr);
    let started = Instant::now();
    let out = env.run(&["pull", &name]);
    let took = started.elapsed();
    assert_ok(&out, "pull behind 429s");
    assert_eq!(proxy.faults.too_many_requests.load(Ordering::Relaxed), 0);
    assert!(
        took >= Duration::from_millis(1950),
        "Retry-After: 1 twice, yet the pull took {took:?}"
    );
    assert!(took < Duration::from_secs(30), "pull took {took:?}");

    let err = stderr(&out);
    let waits: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("429") && l.contains("Retry-After") && l.contains("waiting 1s"))
        .collect();
    assert_eq!(waits.len(), 2, "one waiting message per 429:\n{err}");

    // The config was asked for three times (429, 429, 200), then the layer once.
    let gets = proxy.blob_gets();
    let config = format!("/blobs/{}", f.one.config);
    let layer = format!("/blobs/{}", f.base.digest);
    assert_eq!(gets.len(), 4, "{gets:?}");
    assert!(
        gets[..3].iter().all(|g| g.path.ends_with(&config)),
        "{gets:?}"
    );
    assert!(gets[3].path.ends_with(&layer), "{gets:?}");

    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("pulled");
    assert_eq!(image.record.id, f.one.config);
    assert!(image.layer_dirs[0].join("bin/busybox").is_file());
}

#[test]
fn zstd_layer_is_unpacked_and_its_diff_id_verified() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let base = busybox_layer();
    let big = noise(3 << 20, 0x5eed);
    let zst = layer_with(&marker_entries("zstd\n", &big), zstd, ZSTD_LAYER);
    assert!(
        zst.blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "a zstd frame"
    );
    let mut layout = Layout::new(layouts.path());
    let built = layout.image(&[&base, &zst], "amd64", Some("zstd"));

    // The same zstd blob with a config claiming another diff_id: the uncompressed
    // stream is hashed and must match, not just the compressed bytes.
    let wrong = Layer {
        blob: zst.blob.clone(),
        digest: zst.digest.clone(),
        diff_id: Digest::of(b"not this tar"),
        media_type: ZSTD_LAYER,
    };
    layout.image(&[&wrong], "amd64", Some("wrong-diff-id"));
    reg.push(layouts.path(), "zstd", "test/zstd", Format::Oci);
    reg.push(layouts.path(), "wrong-diff-id", "test/zstd", Format::Oci);

    let env = Env::new();
    let err = env.fails(&["pull", &format!("{}/test/zstd:wrong-diff-id", reg.addr)]);
    assert!(
        err.contains("digest mismatch")
            && err.contains("diff_id")
            && err.contains(&wrong.diff_id.to_string())
            && err.contains(&zst.diff_id.to_string()),
        "{err}"
    );
    assert_store_empty(&env, "wrong diff_id");

    let name = format!("{}/test/zstd:zstd", reg.addr);
    env.ok(&["pull", &name]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("pulled");
    assert_eq!(image.record.id, built.config);
    assert_eq!(
        image.record.layers,
        vec![base.diff_id.clone(), zst.diff_id.clone()]
    );
    // The registry kept the zstd media type: this really was a zstd pull.
    let types: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| l.media_type().to_string())
        .collect();
    assert_eq!(types, [GZIP_LAYER, ZSTD_LAYER]);
    let dir = &image.layer_dirs[1];
    assert_eq!(
        std::fs::read(dir.join("data/marker")).expect("marker"),
        b"zstd\n"
    );
    assert_eq!(std::fs::read(dir.join("data/big")).expect("big"), big);
    assert_eq!(
        std::fs::read_link(dir.join("data/link"))
            .expect("link")
            .to_str(),
        Some("marker")
    );
    let meta = std::fs::metadata(dir.join("data/big")).expect("big");
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, 1000));
    assert_eq!(
        env.list("layers"),
        sorted_hex(&[&base.diff_id, &zst.diff_id])
    );
}

#[test]
fn layer_compression_is_detected_by_magic_bytes_not_media_type() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let big = noise(256 << 10, 7);
    // Both say tar+gzip; one is a plain tar, the other zstd.
    let plain = layer_with(&marker_entries("plain\n", &big), uncompressed, GZIP_LAYER);
    let zst = layer_with(&marker_entries("zstd\n", &big), zstd, GZIP_LAYER);
    let mut layout = Layout::new(layouts.path());
    let built = layout.image(&[&plain, &zst], "amd64", Some("lying"));
    // skopeo would correct the media type of the zstd layer: push verbatim.
    push_verbatim(&reg, layouts.path(), &built, "test/lying", "lying");

    let env = Env::new();
    let name = format!("{}/test/lying:lying", reg.addr);
    env.ok(&["pull", &name]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("pulled");
    assert_eq!(image.record.id, built.config);
    let types: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| l.media_type().to_string())
        .collect();
    assert_eq!(types, [GZIP_LAYER, GZIP_LAYER], "the registry kept the lie");
    assert_eq!(image.record.layers, [plain.diff_id, zst.diff_id]);
    for (dir, marker) in image.layer_dirs.iter().zip(["plain\n", "zstd\n"]) {
        assert_eq!(
            std::fs::read_to_string(dir.join("data/marker")).expect("marker"),
            marker
        );
        assert_eq!(std::fs::read(dir.join("data/big")).expect("big"), big);
    }
}

#[test]
fn manifest_content_type_must_agree_with_its_media_type() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    let env = Env::new();
    let name = format!("{}/test/busybox:one", proxy.addr);

    // The body is an OCI manifest; the registry claims a Docker one.
    *proxy.faults.manifest_content_type.lock().expect("knob") = Some(DOCKER_MANIFEST.into());
    let err = env.fails(&["pull", &name]);
    assert!(
        err.contains(&format!(
            "mediaType {OCI_MANIFEST} disagrees with Content-Type {DOCKER_MANIFEST}"
        )),
        "{err}"
    );
    assert!(
        proxy.blob_gets().is_empty(),
        "nothing is downloaded: {:?}",
        proxy.blob_gets()
    );
    assert_store_empty(&env, "Content-Type mismatch");

    // Parameters do not hide a disagreement.
    *proxy.faults.manifest_content_type.lock().expect("knob") =
        Some(format!("{DOCKER_MANIFEST}; charset=utf-8"));
    let err = env.fails(&["pull", &name]);
    assert!(err.contains("disagrees with Content-Type"), "{err}");
    assert_store_empty(&env, "Content-Type mismatch with parameters");

    // A generic type is no claim about the kind: the body's mediaType decides.
    *proxy.faults.manifest_content_type.lock().expect("knob") = Some("application/json".into());
    env.ok(&["pull", &name]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("pulled");
    assert_eq!(image.record.id, f.one.config);
    assert_eq!(image.record.manifest_digest, f.one.manifest);
}

#[test]
fn concurrent_pulls_into_one_store_stay_consistent() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    // Slow enough (busybox is ~1 MB compressed: over a second) that the two overlap.
    proxy.faults.throttle_ms.store(20, Ordering::Relaxed);
    let multi = format!("{}/test/busybox:multi", proxy.addr);
    let pull_both = |env: &Env, a: &str, b: &str| -> (Output, Output) {
        let spawn = |name: &str| {
            env.cmd(&["pull", name])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ccrun pull")
        };
        let (first, second) = (spawn(a), spawn(b));
        (
            first.wait_with_output().expect("wait first pull"),
            second.wait_with_output().expect("wait second pull"),
        )
    };

    // The same image twice.
    let env = Env::new();
    let (a, b) = pull_both(&env, &multi, &multi);
    assert_ok(&a, "first concurrent pull");
    assert_ok(&b, "second concurrent pull");
    assert!(
        [&a, &b]
            .iter()
            .any(|o| stderr(o).contains("waiting for another ccrun process")),
        "one pull waited for the other's lock:\n{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    // Each blob came down once: the second pull found everything in the store.
    let mut paths: Vec<String> = proxy.blob_gets().into_iter().map(|g| g.path).collect();
    paths.sort();
    let mut expected: Vec<String> = [&f.base.digest, &f.features.digest, &f.multi.config]
        .iter()
        .map(|d| format!("/v2/test/busybox/blobs/{d}"))
        .collect();
    expected.sort();
    assert_eq!(paths, expected);

    let ids = env.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(
        ids.lines().collect::<Vec<_>>(),
        [f.multi.config.to_string()]
    );
    let table = env.ok(&["images"]);
    assert_eq!(table.lines().count(), 2, "header and one image:\n{table}");
    let inspect = env.ok(&["image", "inspect", &multi]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert_eq!(v[0]["Id"], f.multi.config.to_string());
    assert_eq!(
        env.list("layers"),
        sorted_hex(&[&f.base.diff_id, &f.features.diff_id])
    );
    assert_eq!(
        env.list("blobs/sha256"),
        sorted_hex(&[&f.multi.config, &f.multi.manifest])
    );
    assert!(env.list("tmp").is_empty());
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&multi)
        .expect("resolve")
        .expect("pulled");
    assert!(image.layer_dirs[0].join("bin/busybox").is_file());
    assert!(image.layer_dirs[1].join("opt/new").is_file());

    // Two images sharing the busybox layer: it is downloaded and stored once.
    proxy.clear();
    let env = Env::new();
    let one = format!("{}/test/busybox:one", proxy.addr);
    let (a, b) = pull_both(&env, &one, &multi);
    assert_ok(&a, "concurrent pull of one");
    assert_ok(&b, "concurrent pull of multi");
    let base_gets = proxy
        .blob_gets()
        .iter()
        .filter(|g| g.path.ends_with(&f.base.digest.to_string()))
        .count();
    assert_eq!(base_gets, 1, "{:?}", proxy.blob_gets());
    assert_eq!(proxy.blob_gets().len(), 4, "{:?}", proxy.blob_gets());
    let ids = env.ok(&["images", "-q", "--no-trunc"]);
    let mut ids: Vec<&str> = ids.lines().collect();
    ids.sort();
    let mut want = [f.one.config.to_string(), f.multi.config.to_string()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        env.list("layers"),
        sorted_hex(&[&f.base.diff_id, &f.features.diff_id])
    );
    let store = Store::open(&env.root()).expect("store");
    for name in [&one, &multi] {
        let image = store.resolve(name).expect("resolve").expect("pulled");
        assert!(image.layer_dirs[0].join("bin/busybox").is_file(), "{name}");
    }
}

#[test]
fn manifest_fetched_by_digest_must_be_that_manifest() {
    let f = fixture();
    let proxy = Proxy::start(&f.reg.addr);
    let env = Env::new();
    let pinned = format!("{}/test/busybox@{}", proxy.addr, f.one.manifest);

    // Asked for `one` by digest, the registry answers with `multi`.
    *proxy.faults.swap_manifest.lock().expect("knob") =
        Some((f.one.manifest.to_string(), f.multi.manifest.to_string()));
    let err = env.fails(&["pull", &pinned]);
    assert!(
        err.contains("digest mismatch")
            && err.contains(&format!("expected {}", f.one.manifest))
            && err.contains(&format!("got {}", f.multi.manifest)),
        "{err}"
    );
    assert!(proxy.blob_gets().is_empty(), "{:?}", proxy.blob_gets());
    assert_store_empty(&env, "swapped manifest by digest");

    // By tag, the body must match the registry's own Docker-Content-Digest.
    *proxy.faults.swap_manifest.lock().expect("knob") =
        Some(("one".into(), f.multi.manifest.to_string()));
    let err = env.fails(&["pull", &format!("{}/test/busybox:one", proxy.addr)]);
    assert!(
        err.contains("digest mismatch")
            && err.contains("Docker-Content-Digest")
            && err.contains(&format!("expected {}", f.one.manifest))
            && err.contains(&format!("got {}", f.multi.manifest)),
        "{err}"
    );
    assert!(proxy.blob_gets().is_empty(), "{:?}", proxy.blob_gets());
    assert_store_empty(&env, "swapped manifest by tag");

    // An honest registry again: the pinned pull works.
    *proxy.faults.swap_manifest.lock().expect("knob") = None;
    env.ok(&["pull", &pinned]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&pinned)
        .expect("resolve")
        .expect("pulled");
    assert_eq!(image.record.manifest_digest, f.one.manifest);
    assert_eq!(image.record.id, f.one.config);
}

#[test]
fn platform_manifest_from_an_index_must_match_its_digest() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let amd_marker = layer(
        &[Entry::File("arch".into(), b"amd64\n".to_vec(), 0o644, 0)],
        Comp::Gzip,
    );
    let arm_marker = layer(
        &[Entry::File("arch".into(), b"arm64\n".to_vec(), 0o644, 0)],
        Comp::Gzip,
    );
    let mut layout = Layout::new(layouts.path());
    let amd = layout.image(&[&amd_marker], "amd64", None);
    let arm = layout.image(&[&arm_marker], "arm64", None);
    layout.index(&[(&amd, "amd64"), (&arm, "arm64")], "multi");
    reg.push(layouts.path(), "multi", "test/multiarch", Format::All);
    let proxy = Proxy::start(&reg.addr);
    let env = Env::new();
    let name = format!("{}/test/multiarch:multi", proxy.addr);

    // The index is genuine; the amd64 manifest it names is answered with arm64's.
    *proxy.faults.swap_manifest.lock().expect("knob") =
        Some((amd.manifest.to_string(), arm.manifest.to_string()));
    let err = env.fails(&["pull", "--platform", "linux/amd64", &name]);
    assert!(
        err.contains("digest mismatch")
            && err.contains(&format!("expected {}", amd.manifest))
            && err.contains(&format!("got {}", arm.manifest)),
        "{err}"
    );
    assert!(proxy.blob_gets().is_empty(), "{:?}", proxy.blob_gets());
    assert_store_empty(&env, "swapped platform manifest");

    *proxy.faults.swap_manifest.lock().expect("knob") = None;
    env.ok(&["pull", "--platform", "linux/amd64", &name]);
    let image = Store::open(&env.root())
        .expect("store")
        .resolve(&name)
        .expect("resolve")
        .expect("pulled");
    assert_eq!(image.record.id, amd.config);
    assert_eq!(
        std::fs::read(image.layer_dirs[0].join("arch")).expect("arch"),
        b"amd64\n"
    );
}

#[test]
fn layer_in_an_unsupported_compression_is_refused_by_name() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let big = noise(200 << 10, 11);
    let lying = layer_with(&marker_entries("xz\n", &big), xz, GZIP_LAYER);
    let mut layout = Layout::new(layouts.path());
    let built = layout.image(&[&lying], "amd64", Some("xz"));
    push_verbatim(&reg, layouts.path(), &built, "test/lying", "xz");

    let env = Env::new();
    let err = env.fails(&["pull", &format!("{}/test/lying:xz", reg.addr)]);
    assert!(
        err.contains(&format!(
            "layer {}: compressed with xz; only gzip, zstd and uncompressed layers are supported",
            lying.digest
        )),
        "{err}"
    );
    assert_store_empty(&env, "xz layer");
}
