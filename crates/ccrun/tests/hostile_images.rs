//! `ccrun pull`, `rmi` and `image prune` against hostile images and registries, with
//! the real distribution registry (Debian's docker-registry) on 127.0.0.1. The
//! attackers: an image author whose layers name `..` in a whiteout, expand a few MB
//! into gigabytes, or nest directories deeper than fd limits and stacks allow; and a
//! registry (or whoever edits its manifests) that sends more than a descriptor
//! declares or declares absurd sizes. Each must end in one clear line and exit 125,
//! nothing half-written left in the store, and the images pulled before still
//! listed and running.

#[path = "../../ccrun-image/tests/support/hostile.rs"]
mod hostile;
#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/image_proxy.rs"]
mod image_proxy;
#[path = "support/registry.rs"]
mod registry;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use ccrun_image::{Digest, Store};
use hostile::{deep_tree, gzip, gzip_bomb, Immutable};
use image_build::{busybox_layer, layer, Built, Comp, Entry, Layer, Layout};
use image_cli::Env;
use image_proxy::Proxy;
use registry::{Format, Registry};

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry with `test/good:latest` (busybox) and a layout to add images to.
struct Fixture {
    reg: Registry,
    layouts: tempfile::TempDir,
    layout: Layout,
}

impl Fixture {
    fn new() -> Fixture {
        let reg = Registry::start();
        let layouts = tempfile::tempdir().expect("tempdir");
        let mut layout = Layout::new(layouts.path());
        layout.image(&[&busybox_layer()], "amd64", Some("latest"));
        reg.push(layouts.path(), "latest", "test/good", Format::Oci);
        Fixture {
            reg,
            layouts,
            layout,
        }
    }

    /// Pushes an image of `layers` as `test/REPO:latest` and returns its name.
    fn push(&mut self, repo: &str, layers: &[&Layer]) -> (String, Built) {
        let built = self.layout.image(layers, "amd64", Some(repo));
        self.reg.push(
            self.layouts.path(),
            repo,
            &format!("test/{repo}"),
            Format::Oci,
        );
        (format!("{}/test/{repo}:{repo}", self.reg.addr), built)
    }

    fn good(&self) -> String {
        format!("{}/test/good:latest", self.reg.addr)
    }

    /// A store with the good image pulled, whose containers may run.
    fn env(&self) -> Env {
        let env = Env::new();
        // Searchable: the container's unprivileged root reaches its /etc files below it.
        std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        env.ok(&["pull", "-q", &self.good()]);
        env
    }

    /// Pushes, pulls and removes a small new image: the store still works.
    fn later_pull_works(&mut self, env: &Env) {
        let small = layer(
            &[Entry::File("hello".into(), b"hi".to_vec(), 0o644, 0)],
            Comp::Gzip,
        );
        let (later, _) = self.push("later", &[&small]);
        env.ok(&["pull", "-q", &later]);
        env.ok(&["rmi", &later]);
    }

    /// After a refusal: nothing left in `tmp/`, the good image still listed and still
    /// running, and its layer the only one.
    fn store_intact(&self, env: &Env) {
        assert!(
            env.list("tmp").is_empty(),
            "left in tmp: {:?}",
            env.list("tmp")
        );
        let good = self.good();
        let store = Store::open(&env.root()).expect("store");
        let image = store.resolve(&good).expect("resolve").expect("good image");
        let images = env.ok(&["images", "-q", "--no-trunc"]);
        assert_eq!(images.trim(), image.record.id.to_string(), "{images}");
        let out = env.ok(&["run", "--rm", &good, "sh", "-c", "echo alive"]);
        assert_eq!(out.trim(), "alive");
        let layer = image.layer_dirs[0].file_name().expect("name");
        assert_eq!(env.list("layers"), [layer.to_string_lossy()]);
    }
}

/// A layer of gzip `blob` announced with `diff_id` (hostile layers are refused
/// before anyone could check it).
fn gzip_layer(blob: Vec<u8>, diff_id: Digest) -> Layer {
    Layer {
        digest: Digest::of(&blob),
        blob,
        diff_id,
        media_type: GZIP_LAYER,
    }
}

/// Asserts that ccrun failed with 125 and one line on stderr; returns that line.
fn one_line_125(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(
        out.status.code(),
        Some(125),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ccrun: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_string()
}

/// Runs ccrun with `RLIMIT_NOFILE` at 1024.
fn with_1024_fds(env: &Env, args: &[&str]) -> Output {
    hostile::with_1024_fds(&mut env.cmd(args))
        .output()
        .expect("run ccrun")
}

#[test]
fn whiteout_of_dotdot_is_refused() {
    let mut f = Fixture::new();
    let env = f.env();
    let hostile = layer(
        &[Entry::Raw(
            tar::EntryType::Regular,
            ".wh...".into(),
            String::new(),
            Vec::new(),
        )],
        Comp::Gzip,
    );
    let (name, _) = f.push("whiteout", &[&hostile]);
    let err = one_line_125(&env.run(&["pull", &name]));
    assert!(
        err.contains(&format!(
            "layer {}: .wh...: whiteout of \"..\"",
            hostile.digest
        )),
        "{err}"
    );
    f.store_intact(&env);
}

#[test]
fn gzip_bomb_is_refused_at_the_size_limit() {
    let mut f = Fixture::new();
    let env = f.env();
    let bomb = gzip_layer(gzip_bomb(1 << 30), Digest::of(b"never checked"));
    let (name, _) = f.push("bomb", &[&bomb]);
    let out = env
        .cmd(&["pull", &name])
        .env("CCRUN_MAX_LAYER_SIZE", "64m")
        .output()
        .expect("pull");
    let err = one_line_125(&out);
    assert!(
        err.ends_with(&format!(
            "layer {}: unpacks to more than 64.0 MiB, the limit set by CCRUN_MAX_LAYER_SIZE; refused",
            bomb.digest
        )),
        "{err}"
    );
    f.store_intact(&env);
    f.later_pull_works(&env);

    let out = env
        .cmd(&["pull", &name])
        .env("CCRUN_MAX_LAYER_SIZE", "lots")
        .output()
        .expect("pull");
    let err = one_line_125(&out);
    assert!(
        err.contains("invalid CCRUN_MAX_LAYER_SIZE: \"lots\": expected a number of bytes"),
        "{err}"
    );
}

#[test]
fn deep_layer_pulls_and_is_removed_under_1024_fds() {
    let mut f = Fixture::new();
    let env = f.env();
    let tar = deep_tree(5000, Some(50));
    let deep = gzip_layer(gzip(&tar), Digest::of(&tar));
    let (name, _) = f.push("deep", &[&deep]);
    let out = with_1024_fds(&env, &["pull", "-q", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.list("layers").len(), 2);
    let out = with_1024_fds(&env, &["rmi", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.store_intact(&env);
}

#[test]
fn too_deep_layer_is_refused_and_the_next_pull_works() {
    let mut f = Fixture::new();
    let env = f.env();
    let deep = gzip_layer(gzip(&deep_tree(30_000, None)), Digest::of(b"never checked"));
    let (name, _) = f.push("deeper", &[&deep]);
    let err = one_line_125(&env.run(&["pull", &name]));
    assert!(
        err.contains(&format!("layer {}: d/d/d/", deep.digest))
            && err.ends_with("30001 levels deep; at most 8192 are allowed"),
        "{err}"
    );
    assert!(err.len() < 500, "one readable line: {err}");
    f.store_intact(&env);
    f.later_pull_works(&env);
    f.store_intact(&env);
}

#[test]
fn prune_goes_on_past_a_layer_it_cannot_remove() {
    let mut f = Fixture::new();
    let env = f.env();
    let mut dangling = Vec::new();
    for i in 0..4 {
        let l = layer(
            &[
                Entry::Dir("data/", 0o755),
                Entry::File(
                    "data/own".into(),
                    format!("image {i}").into_bytes(),
                    0o644,
                    0,
                ),
            ],
            Comp::Gzip,
        );
        let (_, built) = f.push(&format!("spare{i}"), &[&l]);
        // By digest, so untagged: what `image prune` removes.
        let name = format!("{}/test/spare{i}@{}", f.reg.addr, built.manifest);
        env.ok(&["pull", "-q", &name]);
        dangling.push(name);
    }
    let store = Store::open(&env.root()).expect("store");
    let stuck_dir = store
        .resolve(&dangling[2])
        .expect("resolve")
        .expect("spare2")
        .layer_dirs[0]
        .clone();
    let stuck = stuck_dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let immutable = Immutable::set(&stuck_dir.join("data/own"), store.dir());
    // The images are deleted and listed as such; the layer that stayed is named.
    let out = env.run(&["image", "prune", "-f"]);
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(stdout.contains("Deleted Images:"), "{stdout}");
    assert_eq!(stdout.matches("deleted: sha256:").count(), 4, "{stdout}");
    assert!(
        err.contains(&stuck) && err.contains("Operation not permitted"),
        "{err}"
    );
    assert!(
        err.ends_with("ccrun: could not remove 1 object(s)\n"),
        "{err}"
    );
    // The others are gone, and the stuck one is out of the store's layers; the next
    // command that locks the store retries it and says so, but is not stopped by it.
    assert!(env.list("tmp").iter().any(|n| n.contains(&stuck)));
    let out = env.run(&["image", "prune", "-f"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("leftover work in the image store not removed") && stderr.contains(&stuck),
        "{stderr}"
    );
    drop(immutable);
    env.ok(&["image", "prune", "-f"]);
    f.store_intact(&env);
}

/// Stores `manifest` as `test/REPO:TAG` with a raw HTTP PUT: the blobs it names are
/// already there, and no client would push a manifest that lies about them.
fn put_manifest(reg: &Registry, repo: &str, tag: &str, manifest: &serde_json::Value) {
    let body = manifest.to_string();
    let mut conn = std::net::TcpStream::connect(&reg.addr).expect("connect");
    write!(
        conn,
        "PUT /v2/test/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reg.addr,
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    conn.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

/// A pushed one-layer image's manifest with its layer's size set to `size`, stored
/// as `test/REPO:lying`; returns the name to pull and the layer's digest.
fn lying_size(f: &mut Fixture, repo: &str, size: u64) -> (String, Layer) {
    let l = layer(
        &[Entry::File(
            "file".into(),
            b"honest content".repeat(4000),
            0o644,
            0,
        )],
        Comp::Gzip,
    );
    let (_, built) = f.push(repo, &[&l]);
    let path = f
        .layouts
        .path()
        .join("blobs/sha256")
        .join(built.manifest.hex());
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("manifest")).expect("json");
    manifest["layers"][0]["size"] = size.into();
    put_manifest(&f.reg, repo, "lying", &manifest);
    (format!("{}/test/{repo}:lying", f.reg.addr), l)
}

#[test]
fn a_blob_longer_than_its_descriptor_is_named_by_sizes() {
    let mut f = Fixture::new();
    let env = f.env();
    let (name, l) = lying_size(&mut f, "long", 100);
    let err = one_line_125(&env.run(&["pull", &name]));
    assert!(
        err.ends_with(&format!(
            "invalid layer {}: expected 100 bytes (the size its descriptor declares), the \
             registry sent more",
            l.digest
        )),
        "{err}"
    );
    assert!(!err.contains("e3b0c442"), "{err}");
    f.store_intact(&env);
}

#[test]
fn an_absurd_declared_size_is_refused_before_downloading() {
    let mut f = Fixture::new();
    let env = f.env();
    let (name, l) = lying_size(&mut f, "absurd", 1_000_000_000_000_000);
    let proxy = Proxy::start(&f.reg.addr);
    let through_proxy = name.replace(&f.reg.addr, &proxy.addr);
    let err = one_line_125(&env.run(&["pull", &through_proxy]));
    assert!(
        err.contains(&format!(
            "layer {}: its descriptor declares 1000000000000000 bytes (909.5 TiB), more than \
             a layer may unpack to here: ",
            l.digest
        )) && err.contains("the free space of ")
            && err.ends_with("; not downloading it"),
        "{err}"
    );
    let layer_gets: Vec<_> = proxy
        .blob_gets()
        .into_iter()
        .filter(|g| g.path.contains(&l.digest.to_string()))
        .collect();
    assert!(layer_gets.is_empty(), "{layer_gets:?}");
    f.store_intact(&env);
}
