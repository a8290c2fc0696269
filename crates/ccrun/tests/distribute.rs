//! Images shipped with ccrun (issue 16 part 2), end to end against the real
//! `docker-registry` on 127.0.0.1 (open, behind a counting and misbehaving proxy,
//! and with token auth), skopeo and a private podman: `push` (uploads, a second
//! push that uploads nothing, cross-repository mounts, chunks and a failed chunk,
//! credentials, refusals), `save`/`load` both ways with podman and archives built
//! here, `commit` and `import`, and bad input.
//!
//! Its own main (see `support/harness.rs`): the registries are started once and
//! stopped at the end even when tests fail.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/image_proxy.rs"]
mod image_proxy;
#[path = "support/registry.rs"]
mod registry;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ccrun_testkit::podman::Podman;
use image_build::{base_layer, layer, Comp, Entry, Layer, Layout};
use image_cli::Env;
use image_proxy::Proxy;
use registry::{Format, Registry, PASSWORD, USER};

/// The registries and the images in them.
struct World {
    reg: Registry,
    /// In front of `reg`: counts requests, fails a PATCH on demand.
    proxy: Proxy,
    /// Also in front of `reg`, never told to fail: for a test that makes PATCHes of
    /// its own while another counts on `proxy` failing the Nth one.
    quiet: Proxy,
    token: Registry,
    _layouts: tempfile::TempDir,
}

impl World {
    fn build() -> World {
        let reg = Registry::start();
        let proxy = Proxy::start(&reg.addr);
        let quiet = Proxy::start(&reg.addr);
        let token = Registry::start_with_token_auth();
        let layouts = tempfile::tempdir().expect("tempdir");
        let mut layout = Layout::new(&layouts.path().join("oci"));
        let second = layer(
            &[
                Entry::Dir("srv/", 0o755),
                Entry::File("srv/second".into(), b"second layer\n".to_vec(), 0o644, 0),
            ],
            Comp::Gzip,
        );
        let config = serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"});
        layout.image_with_config(&[&base_layer(), &second], "amd64", Some("v1"), config);
        // The same image stored both ways: as Docker v2s2 and as OCI.
        reg.push(&layout.dir, "v1", "test/app", Format::DockerV2s2);
        reg.push(&layout.dir, "v1", "test/oci", Format::Oci);
        World {
            reg,
            proxy,
            quiet,
            token,
            _layouts: layouts,
        }
    }

    /// The Docker v2s2 image, named through the proxy.
    fn app(&self) -> String {
        format!("{}/test/app:v1", self.proxy.addr)
    }

    /// The OCI image, named through the proxy.
    fn oci(&self) -> String {
        format!("{}/test/oci:v1", self.proxy.addr)
    }

    /// How many requests the proxy has seen: requests after this mark are the
    /// ones a test made since (tests run at once; each looks at its own repository).
    fn mark(&self) -> usize {
        self.proxy.log.lock().expect("log").len()
    }

    /// Requests to repository `repo` since `mark`, as `METHOD path`.
    fn requests(&self, mark: usize, repo: &str) -> Vec<String> {
        let prefix = format!("/v2/{repo}/");
        let log = self.proxy.log.lock().expect("log");
        log[mark.min(log.len())..]
            .iter()
            .filter(|l| l.path.starts_with(&prefix))
            .map(|l| format!("{} {}", l.method, l.path))
            .collect()
    }

    /// Requests since `mark` that put blobs into `repo` (uploads or mounts).
    fn uploads_to(&self, mark: usize, repo: &str) -> Vec<String> {
        let prefix = format!("/v2/{repo}/blobs/uploads/");
        self.requests(mark, repo)
            .into_iter()
            .filter(|r| {
                r.split_whitespace()
                    .nth(1)
                    .is_some_and(|p| p.starts_with(&prefix))
            })
            .collect()
    }
}

/// A private store; the containers a failed test left are removed on drop.
struct Ctx {
    env: Env,
}

impl Ctx {
    fn new() -> Ctx {
        Ctx { env: Env::new() }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.env.ok(args).trim_end().to_string()
    }

    /// Runs ccrun, asserting it fails with 125 and one line on stderr; returns it.
    fn refused(&self, args: &[&str]) -> String {
        let err = self.env.fails(args);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        err.trim().to_string()
    }

    /// `ccrun ARGS` with `input` on stdin.
    fn with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .env
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ccrun");
        let mut stdin = child.stdin.take().expect("stdin");
        // A refused archive may not be read to its end.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().expect("wait ccrun")
    }

    /// The image's id (`sha256:…`).
    fn id(&self, image: &str) -> String {
        self.ok(&["image", "inspect", "-f", "{{.Id}}", image])
    }

    /// What the store holds: image records, layers, tar-split records, leftovers.
    fn store_contents(&self) -> (String, Vec<String>, Vec<String>, Vec<String>) {
        let records =
            std::fs::read_to_string(self.env.store().join("images.json")).unwrap_or_default();
        (
            records,
            self.env.list("layers"),
            self.env.list("tar-split"),
            self.env.list("tmp"),
        )
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in image_cli::list(&self.env.root().join("containers")) {
            if id.len() == 64 {
                let _ = self.env.run(&["rm", "-f", &id]);
            }
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn skopeo_digest(image: &str, creds: Option<&str>) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(c) = creds {
        cmd.arg(format!("--creds={c}"));
    }
    let out = cmd
        .arg(format!("docker://{image}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// podman's id of an image it has (`sha256:` and the hex, like ccrun's).
fn podman_id(podman: &Podman, image: &str) -> String {
    format!(
        "sha256:{}",
        podman
            .ok(&["image", "inspect", "--format", "{{.Id}}", image])
            .trim()
    )
}

/// Bytes that do not compress (so a layer holding them is as large as they are).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A flat filesystem tarball: busybox and `extra`.
fn rootfs_tar(extra: &[Entry]) -> Vec<u8> {
    let bb = std::fs::read(image_build::busybox_path()).expect("read busybox");
    let mut entries = vec![
        Entry::Dir("bin/", 0o755),
        Entry::File("bin/busybox".into(), bb, 0o755, 0),
    ];
    for applet in ["sh", "cat", "sha256sum", "stat", "test", "echo"] {
        entries.push(Entry::Raw(
            tar::EntryType::Symlink,
            format!("bin/{applet}"),
            "busybox".into(),
            Vec::new(),
        ));
    }
    let mut tar = layer(&entries, Comp::None).blob;
    // Splice in the rest before the end-of-archive blocks.
    let extra = layer(extra, Comp::None).blob;
    tar.truncate(tar.len() - 1024);
    tar.extend_from_slice(&extra);
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

fn sha256_hex(bytes: &[u8]) -> String {
    ccrun_image::Digest::of(bytes).hex().to_string()
}

fn push_uploads_mounts_and_then_skips_what_the_registry_has(w: &World) {
    let c = Ctx::new();
    c.ok(&["pull", "-q", &w.app()]);
    // A layer of its own over the pulled ones: one to upload, two to mount.
    c.ok(&[
        "run",
        "--name",
        "maker",
        &w.app(),
        "sh",
        "-c",
        "echo made here > /made; rm /etc/remove-me",
    ]);
    let target = format!("{}/dist/made:v1", w.proxy.addr);
    c.ok(&["commit", "maker", &target]);
    let mark = w.mark();
    let out = c.ok(&["push", &target]);
    assert!(out.contains("The push refers to repository"), "{out}");
    assert_eq!(out.matches(": Mounted from test/app").count(), 2, "{out}");
    assert_eq!(out.matches(": Pushed").count(), 1, "{out}");
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("v1: digest: sha256:") && last.contains(" size: "),
        "{out}"
    );
    let digest = last
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let uploads = w.uploads_to(mark, "dist/made");
    let mounts: Vec<&String> = uploads.iter().filter(|r| r.contains("mount=")).collect();
    assert_eq!(mounts.len(), 2, "{uploads:?}");
    assert!(
        mounts.iter().all(|m| m.contains("from=test/app")),
        "{mounts:?}"
    );

    // What went up is what skopeo and podman see.
    let direct = format!("{}/dist/made:v1", w.reg.addr);
    assert_eq!(skopeo_digest(&direct, None), digest);
    let podman = Podman::new();
    podman.ok(&["pull", "--quiet", "--tls-verify=false", &direct]);
    assert_eq!(podman_id(&podman, &direct), c.id(&target));

    // Again: the registry has everything, nothing goes up but the manifest.
    let mark = w.mark();
    let again = c.ok(&["push", &target]);
    assert_eq!(
        again.matches(": Layer already exists").count(),
        3,
        "{again}"
    );
    assert_eq!(again.lines().last(), Some(last), "{again}");
    let requests = w.requests(mark, "dist/made");
    let writes: Vec<&String> = requests
        .iter()
        .filter(|r| !r.starts_with("HEAD ") && !r.starts_with("GET "))
        .collect();
    assert_eq!(writes, ["PUT /v2/dist/made/manifests/v1"], "{requests:?}");

    // A pulled image pushed elsewhere in the registry keeps its manifest, byte for
    // byte (Docker v2s2 here), since every layer is mounted.
    let pulled_digest = c.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .RepoDigests 0}}",
        &w.app(),
    ]);
    let copy = format!("{}/dist/copy:v1", w.proxy.addr);
    c.ok(&["tag", &w.app(), &copy]);
    let out = c.ok(&["push", &copy]);
    let pushed = out.lines().last().unwrap_or_default().to_string();
    assert!(
        pulled_digest.ends_with(pushed.split_whitespace().nth(2).unwrap_or("?")),
        "{pulled_digest} vs {out}"
    );
    let media = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/dist/copy:v1", w.reg.addr))
        .output()
        .expect("skopeo");
    assert!(
        String::from_utf8_lossy(&media.stdout)
            .contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{}",
        String::from_utf8_lossy(&media.stdout)
    );
}

fn chunked_upload_resumes_after_a_failed_chunk(w: &World) {
    let c = Ctx::new();
    let data = noise(600 * 1024, 7);
    let tar = rootfs_tar(&[
        Entry::Dir("data/", 0o755),
        Entry::File("data/blob".into(), data.clone(), 0o644, 0),
    ]);
    let name = format!("{}/dist/chunked:v1", w.proxy.addr);
    let import = c.with_stdin(&["import", "-", &name], &tar);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let mark = w.mark();
    // The third chunk fails once: the registry never sees it.
    w.proxy.faults.fail_patch.store(3, Ordering::Relaxed);
    let out = c.env.run(&["push", "--chunk-size", "128k", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resuming at byte"), "{stderr}");
    let requests = w.uploads_to(mark, "dist/chunked");
    let patches = requests.iter().filter(|r| r.starts_with("PATCH ")).count();
    // ~1.6 MB in 128 KiB chunks, one sent twice.
    assert!(patches >= 12, "{patches} PATCHes: {requests:?}");
    assert!(
        requests.iter().any(|r| r.starts_with("GET ")),
        "the upload's status was asked for: {requests:?}"
    );
    assert_eq!(
        w.proxy.faults.fail_patch.load(Ordering::Relaxed),
        0,
        "the fault fired"
    );

    // Whole and right: another store pulls it and finds the bytes.
    let other = Ctx::new();
    let direct = format!("{}/dist/chunked:v1", w.reg.addr);
    other.ok(&["pull", "-q", &direct]);
    assert_eq!(other.id(&direct), c.id(&name));
    let sum = other.ok(&["run", "--rm", &direct, "sha256sum", "/data/blob"]);
    assert!(sum.starts_with(&sha256_hex(&data)), "{sum}");
}

fn push_with_token_auth_and_without_permission(w: &World) {
    let c = Ctx::new();
    let tar = rootfs_tar(&[Entry::File("token-file".into(), b"t\n".to_vec(), 0o644, 0)]);
    let name = format!("{}/dist/auth:v1", w.token.addr);
    let import = c.with_stdin(&["import", "-", &name], &tar);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    // Anonymous users may pull, not push: the token server leaves push out. The
    // refused push leaves the store as it was: no record, no blob cache, no leftovers.
    let before = c.store_contents();
    let err = c.refused(&["push", &name]);
    assert!(
        err.contains("unauthorized") || err.contains("denied"),
        "{err}"
    );
    assert_eq!(
        c.store_contents(),
        before,
        "the refused push changed the store"
    );
    assert!(before.3.is_empty(), "tmp/ is clean: {:?}", before.3);
    assert!(!c.env.store().join("blob-cache.json").exists());

    let login = c.with_stdin(
        &["login", "-u", USER, "--password-stdin", &w.token.addr],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let out = c.ok(&["push", &name]);
    assert!(out.contains(": Pushed"), "{out}");
    let digest = out
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    assert_eq!(
        skopeo_digest(&name, Some(&format!("{USER}:{PASSWORD}"))),
        digest
    );
}

/// Credentials from `~/.docker/config.json` (no `DOCKER_CONFIG`, no login), as
/// `docker login` leaves them.
fn push_with_credentials_from_home_docker_config(w: &World) {
    use base64::Engine as _;
    let c = Ctx::new();
    let tar = rootfs_tar(&[Entry::File("home-file".into(), b"h\n".to_vec(), 0o644, 0)]);
    let name = format!("{}/dist/home:v1", w.token.addr);
    let import = c.with_stdin(&["import", "-", &name], &tar);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join(".docker")).expect("mkdir .docker");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({"auths": {w.token.addr.as_str(): {"auth": auth}}});
    std::fs::write(home.path().join(".docker/config.json"), config.to_string())
        .expect("write config.json");
    let out = c
        .env
        .cmd(&["push", &name])
        .env_remove("DOCKER_CONFIG")
        .env("HOME", home.path())
        .output()
        .expect("run ccrun");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(": Pushed"), "{stdout}");
    let digest = stdout
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("?");
    assert_eq!(
        skopeo_digest(&name, Some(&format!("{USER}:{PASSWORD}"))),
        digest
    );
}

fn push_to_an_unreachable_registry_fails_at_once(w: &World) {
    let c = Ctx::new();
    c.ok(&["pull", "-q", &w.oci()]);
    let nowhere = format!("127.0.0.1:{}/dist/nowhere:v1", registry::free_port());
    c.ok(&["tag", &w.oci(), &nowhere]);
    let before = c.store_contents();
    let started = Instant::now();
    let err = c.refused(&["push", &nowhere]);
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        c.store_contents(),
        before,
        "the failed push changed the store"
    );
    // Nothing to push under a name the store does not have.
    let err = c.refused(&["push", &format!("{}/dist/absent:v1", w.proxy.addr)]);
    assert!(err.contains("no such image"), "{err}");
}

fn save_and_load_round_trip_with_podman(w: &World) {
    let c = Ctx::new();
    c.ok(&["pull", "-q", &w.app()]);
    c.ok(&["pull", "-q", &w.oci()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let podman = Podman::new();
    // ccrun save → podman load, both formats: the same image ids.
    for format in ["docker-archive", "oci-archive"] {
        let file = dir.path().join(format!("ccrun-{format}.tar"));
        let file = file.to_str().expect("utf-8");
        c.ok(&["save", "--format", format, "-o", file, &w.app()]);
        let loaded = podman.ok(&["load", "-i", file]);
        assert!(loaded.contains("test/app:v1"), "{format}: {loaded}");
        let loaded_name = loaded
            .lines()
            .filter_map(|l| l.strip_prefix("Loaded image: "))
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(podman_id(&podman, &loaded_name), c.id(&w.app()), "{format}");
    }
    // Two images in one archive, to stdout.
    let both = c.env.run(&["save", &w.app(), &w.oci()]);
    assert!(
        both.status.success(),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );

    // podman save → ccrun load, both formats (and podman's multi-image archive).
    // An OCI archive gets the OCI image: podman rewrites a Docker v2s2 image's config
    // when it turns it into OCI, which gives it another id.
    let app = format!("{}/test/app:v1", w.reg.addr);
    let oci = format!("{}/test/oci:v1", w.reg.addr);
    podman.ok(&["pull", "--quiet", "--tls-verify=false", &app]);
    podman.ok(&["pull", "--quiet", "--tls-verify=false", &oci]);
    let cases = [
        ("docker-archive", None, &app, c.id(&w.app())),
        ("oci-archive", None, &oci, c.id(&w.oci())),
        ("docker-archive", Some("-m"), &app, c.id(&w.app())),
    ];
    for (format, extra, image, id) in cases {
        let file = dir
            .path()
            .join(format!("podman-{format}-{}.tar", extra.is_some()));
        let file = file.to_str().expect("utf-8");
        let mut args = vec!["save", "--format", format, "-o", file];
        args.extend(extra);
        args.push(image);
        podman.ok(&args);
        let other = Ctx::new();
        let out = other.ok(&["load", "-i", file]);
        assert!(out.contains("Loaded image: "), "{out}");
        assert_eq!(other.id(image), id, "{format} {extra:?}: {out}");
        let ran = other.ok(&["run", "--rm", image, "cat", "/srv/second"]);
        assert_eq!(ran, "second layer");
        // Saved again by ccrun: the same id once more.
        let again = other.env.run(&["save", image]);
        assert!(again.status.success());
        let third = Ctx::new();
        let out = third.with_stdin(&["load"], &again.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(third.id(image), id);
    }
}

/// A legacy `docker save` archive: `ID/layer.tar`, `ID/json`, `ID/VERSION`,
/// `CONFIG.json`, `manifest.json`, `repositories`; image b's first layer is a symlink
/// to image a's, as Docker writes shared layers.
fn legacy_archive(base: &Layer, top: &Layer) -> Vec<u8> {
    let config = |layers: &[&Layer], cmd: &str| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["sh", "-c", cmd]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        }))
        .expect("json")
    };
    let config_a = config(&[base], "echo image a");
    let config_b = config(&[base, top], "cat /legacy");
    let (ha, hb) = (sha256_hex(&config_a), sha256_hex(&config_b));
    let (id1, id2, id3) = ("1".repeat(64), "2".repeat(64), "3".repeat(64));
    let manifest = serde_json::json!([
        {"Config": format!("{ha}.json"), "RepoTags": ["test/legacy:a"], "Layers": [format!("{id1}/layer.tar")]},
        {"Config": format!("{hb}.json"), "RepoTags": ["test/legacy:b"], "Layers": [format!("{id3}/layer.tar"), format!("{id2}/layer.tar")]},
    ]);
    let repositories = serde_json::json!({"test/legacy": {"a": id1, "b": id2}});
    let mut b = tar::Builder::new(Vec::new());
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, data).expect("append");
    };
    for (id, l) in [(&id1, Some(base)), (&id2, Some(top)), (&id3, None)] {
        file(&mut b, &format!("{id}/VERSION"), b"1.0");
        file(
            &mut b,
            &format!("{id}/json"),
            format!("{{\"id\":\"{id}\"}}").as_bytes(),
        );
        match l {
            Some(l) => file(&mut b, &format!("{id}/layer.tar"), &l.blob),
            None => {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                h.set_mtime(0);
                h.set_uid(0);
                h.set_gid(0);
                b.append_link(
                    &mut h,
                    format!("{id}/layer.tar"),
                    format!("../{id1}/layer.tar"),
                )
                .expect("symlink");
            }
        }
    }
    file(&mut b, &format!("{ha}.json"), &config_a);
    file(&mut b, &format!("{hb}.json"), &config_b);
    file(&mut b, "manifest.json", manifest.to_string().as_bytes());
    file(&mut b, "repositories", repositories.to_string().as_bytes());
    b.into_inner().expect("tar")
}

fn docker_save_archives_built_here_load_and_run(_w: &World) {
    let c = Ctx::new();
    let base = layer(
        &[
            Entry::Dir("bin/", 0o755),
            Entry::File(
                "bin/busybox".into(),
                std::fs::read(image_build::busybox_path()).expect("busybox"),
                0o755,
                0,
            ),
            Entry::Raw(
                tar::EntryType::Symlink,
                "bin/sh".into(),
                "busybox".into(),
                Vec::new(),
            ),
            Entry::Raw(
                tar::EntryType::Symlink,
                "bin/cat".into(),
                "busybox".into(),
                Vec::new(),
            ),
            Entry::Raw(
                tar::EntryType::Symlink,
                "bin/echo".into(),
                "busybox".into(),
                Vec::new(),
            ),
        ],
        Comp::None,
    );
    let top = layer(
        &[Entry::File(
            "legacy".into(),
            b"from a legacy archive\n".to_vec(),
            0o644,
            0,
        )],
        Comp::None,
    );
    let archive = legacy_archive(&base, &top);
    // Compressed, through a pipe.
    let out = c.with_stdin(&["load"], &gzip(&archive));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = stdout(&out);
    assert!(
        said.contains("Loaded image: test/legacy:a")
            && said.contains("Loaded image: test/legacy:b"),
        "{said}"
    );
    assert_eq!(c.ok(&["run", "--rm", "test/legacy:a"]), "image a");
    assert_eq!(
        c.ok(&["run", "--rm", "test/legacy:b"]),
        "from a legacy archive"
    );
    let image_b = c.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "test/legacy:b",
    ]);
    assert!(
        image_b.contains(&base.diff_id.to_string()) && image_b.contains(&top.diff_id.to_string()),
        "{image_b}"
    );
}

fn bad_archives_leave_the_store_as_it_was(w: &World) {
    let source = Ctx::new();
    source.ok(&["pull", "-q", &w.app()]);
    let saved = source.env.run(&["save", &w.app()]);
    assert!(saved.status.success());
    let archive = saved.stdout;

    // Rewrites `archive` with `f` applied to each member's (path, bytes).
    let rewrite = |f: &dyn Fn(&str, &mut Vec<u8>)| -> Vec<u8> {
        let mut input = tar::Archive::new(&archive[..]);
        let mut out = tar::Builder::new(Vec::new());
        for entry in input.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            f(&path, &mut data);
            let mut h = entry.header().clone();
            h.set_size(data.len() as u64);
            h.set_cksum();
            out.append(&h, &data[..]).expect("append");
        }
        out.into_inner().expect("tar")
    };
    let config_hex = source
        .id(&w.app())
        .trim_start_matches("sha256:")
        .to_string();
    let tampered_config = rewrite(&|path, data| {
        if path.ends_with(&config_hex) {
            let text = String::from_utf8_lossy(data).replace("\"sh\"", "\"ls\"");
            *data = text.into_bytes();
        }
    });
    // One byte of a file's content, not of a tar header: only the digest can tell.
    let tampered_layer = rewrite(&|path, data| {
        if let Some(i) = data.windows(13).position(|w| w == b"second layer\n") {
            if path.starts_with("blobs/") {
                data[i] ^= 0x20;
            }
        }
    });
    let truncated = archive[..archive.len() / 2].to_vec();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", truncated, "archive"),
        ("tampered config", tampered_config, "digest"),
        ("tampered layer", tampered_layer, "digest"),
        ("not an archive", noise(100_000, 3), "archive"),
    ];
    for (what, bytes, says) in cases {
        let c = Ctx::new();
        let before = c.store_contents();
        let out = c.with_stdin(&["load"], &bytes);
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(out.status.code(), Some(125), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.contains(says), "{what}: {err}");
        let after = c.store_contents();
        assert_eq!(after.1, before.1, "{what}: layers");
        assert_eq!(after.2, before.2, "{what}: tar-split records");
        assert!(
            after.3.is_empty(),
            "{what}: leftovers in tmp/: {:?}",
            after.3
        );
        assert!(!after.0.contains("sha256"), "{what}: records: {}", after.0);
        // The file form refuses the same way.
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), &bytes).expect("write");
        let err = c.refused(&["load", "-i", file.path().to_str().expect("utf-8")]);
        assert!(err.contains(says), "{what}: {err}");
    }
}

fn commit_keeps_changes_whiteouts_owners_and_config(w: &World) {
    let c = Ctx::new();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FROM_RUN=yes",
        &w.app(),
        "sh",
        "-c",
        "rm /etc/remove-me; echo mine > /user-file; chown 1000:1000 /user-file; \
         echo root > /root-file; touch /ready; sleep 100",
    ]);
    let started = Instant::now();
    while c
        .env
        .run(&["exec", "box", "test", "-e", "/ready"])
        .status
        .code()
        != Some(0)
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the container did not get ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = c.ok(&[
        "commit",
        "-a",
        "Tester <t@example.com>",
        "-m",
        "the message",
        "--change",
        "ENV FOO=bar",
        "--change",
        r#"CMD ["cat", "/user-file"]"#,
        "--change",
        "LABEL stage=committed",
        "box",
        "committed/box:v1",
    ]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    // Frozen for the commit, running again after it.
    assert_eq!(
        c.ok(&["inspect", "-f", "{{.State.Status}}", "box"]),
        "running"
    );
    let events = c.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=box",
        "--format",
        "{{.Action}}",
    ]);
    let actions: Vec<&str> = events.lines().collect();
    let at = |a: &str| actions.iter().position(|x| *x == a);
    assert!(
        at("pause").is_some() && at("pause") < at("unpause") && at("unpause") < at("commit"),
        "{events}"
    );

    let image = "committed/box:v1";
    assert_eq!(c.ok(&["run", "--rm", image]), "mine", "the changed CMD");
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "test -e /etc/remove-me && echo there || echo gone; echo $FOO $FROM_RUN"
        ]),
        "gone\nbar yes"
    );
    // Owners as the container saw them, not the host's shifted ids.
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "--userns",
            "host",
            image,
            "stat",
            "-c",
            "%u:%g",
            "/user-file",
            "/root-file"
        ]),
        "1000:1000\n0:0"
    );
    let meta = c.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Author}}|{{.Comment}}|{{.Config.Labels.stage}}",
        image,
    ]);
    assert_eq!(meta, "Tester <t@example.com>|the message|committed");
    let history = c.ok(&["history", "--no-trunc", "--format", "{{.Comment}}", image]);
    assert_eq!(history.lines().next(), Some("the message"), "{history}");
    // The engine's mount points are not part of it.
    let layers = c.ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", image]);
    assert_eq!(layers, "3");
    let saved = c.env.run(&["save", "--format", "oci-archive", image]);
    assert!(saved.status.success());
    let config_hex = id.trim_start_matches("sha256:");
    let config: serde_json::Value = {
        let mut archive = tar::Archive::new(&saved.stdout[..]);
        let mut found = None;
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            if e.path().expect("path").ends_with(config_hex) {
                let mut s = String::new();
                e.read_to_string(&mut s).expect("read");
                found = serde_json::from_str(&s).ok();
            }
        }
        found.expect("the config in the archive")
    };
    let top = config["rootfs"]["diff_ids"][2]
        .as_str()
        .expect("top layer")
        .trim_start_matches("sha256:")
        .to_string();
    let mut archive = tar::Archive::new(&saved.stdout[..]);
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").ends_with(&top) {
            let mut layer = Vec::new();
            e.read_to_end(&mut layer).expect("read");
            let names: Vec<String> = tar::Archive::new(&layer[..])
                .entries()
                .expect("entries")
                .map(|x| {
                    x.expect("entry")
                        .path()
                        .expect("path")
                        .display()
                        .to_string()
                })
                .collect();
            for engine in ["etc/hosts", "etc/hostname", "etc/resolv.conf", "ready"] {
                assert_eq!(
                    names.iter().any(|n| n == engine),
                    engine == "ready",
                    "{engine} in {names:?}"
                );
            }
            assert!(names.iter().any(|n| n == "etc/.wh.remove-me"), "{names:?}");
        }
    }
    // --pause=false leaves it running throughout.
    c.ok(&["commit", "--pause=false", "box"]);
    assert_eq!(
        c.ok(&["inspect", "-f", "{{.State.Status}}", "box"]),
        "running"
    );
    c.ok(&["rm", "-f", "box"]);
}

/// Serves `body` once over HTTP on 127.0.0.1; returns the URL.
fn serve_once(body: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/rootfs.tar.gz",
        listener.local_addr().expect("addr")
    );
    let thread = std::thread::spawn(move || {
        let _ = listener.set_nonblocking(false);
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut head = [0u8; 4096];
            let _ = conn.read(&mut head);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(&body);
        }
    });
    (url, thread)
}

fn import_from_a_file_stdin_and_a_url(_w: &World) {
    let c = Ctx::new();
    let tar = rootfs_tar(&[Entry::File(
        "hello".into(),
        b"imported\n".to_vec(),
        0o644,
        0,
    )]);
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &tar).expect("write");
    let path = file.path().to_str().expect("utf-8");

    let id = c.ok(&[
        "import",
        "--change",
        r#"CMD ["cat", "/hello"]"#,
        "--change",
        "WORKDIR /srv",
        path,
        "imported/file:v1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(c.ok(&["run", "--rm", "imported/file:v1"]), "imported");
    assert_eq!(
        c.ok(&["run", "--rm", "imported/file:v1", "sh", "-c", "echo $PWD"]),
        "/srv"
    );
    let history = c.ok(&["history", "--format", "{{.Comment}}", "imported/file:v1"]);
    assert_eq!(history, format!("Imported from {path}"));

    let out = c.with_stdin(
        &["import", "-m", "from a pipe", "-", "imported/stdin:v1"],
        &gzip(&tar),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        c.ok(&["run", "--rm", "imported/stdin:v1", "cat", "/hello"]),
        "imported"
    );
    assert_eq!(
        c.ok(&["history", "--format", "{{.Comment}}", "imported/stdin:v1"]),
        "from a pipe"
    );
    // The same tarball, the same layer.
    assert_eq!(
        c.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .RootFS.Layers}}",
            "imported/stdin:v1"
        ]),
        c.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .RootFS.Layers}}",
            "imported/file:v1"
        ])
    );

    let (url, server) = serve_once(gzip(&tar));
    c.ok(&[
        "import",
        "--change",
        "ENV GREETING=hi",
        &url,
        "imported/url:v1",
    ]);
    server.join().expect("server");
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "imported/url:v1",
            "sh",
            "-c",
            "cat /hello; echo $GREETING"
        ]),
        "imported\nhi"
    );

    // Bad input: an unsupported change, an unsafe tarball.
    let err = c.refused(&["import", "--change", "RUN true", path]);
    assert!(err.contains("RUN"), "{err}");
    let hostile = layer(
        &[Entry::Raw(
            tar::EntryType::Regular,
            "../escape".into(),
            String::new(),
            b"x".to_vec(),
        )],
        Comp::None,
    );
    let out = c.with_stdin(&["import", "-"], &hostile.blob);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("escape"));
    assert!(c.store_contents().3.is_empty(), "tmp/ is clean");
}

/// `rmi` and `image prune -a` keep the layers the build cache names, so a build after
/// its image was removed and the store pruned is fully cached and gives the same image;
/// once `builder prune` emptied the cache, `image prune -a` removes them too.
fn image_prune_keeps_what_the_build_cache_names(w: &World) {
    let c = Ctx::new();
    let ctx = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo made by a step > /made\nCOPY f /f\n",
            w.app()
        ),
    )
    .expect("write Dockerfile");
    std::fs::write(ctx.path().join("f"), "copied\n").expect("write f");
    let context = ctx.path().to_string_lossy().into_owned();
    let build = || {
        let out = c
            .env
            .run(&["build", "--network", "none", "-t", "cached:1", &context]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed: {stderr}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr,
        )
    };
    let cached = |progress: &str| -> Vec<String> {
        progress
            .lines()
            .filter(|l| l.starts_with('[') && l.ends_with(" CACHED"))
            .map(|l| {
                l.split("] ")
                    .nth(1)
                    .unwrap_or(l)
                    .trim_end_matches(" CACHED")
                    .to_string()
            })
            .collect()
    };
    let (first, progress) = build();
    assert!(cached(&progress).is_empty(), "{progress}");
    let layers: Vec<String> = serde_json::from_str::<Vec<String>>(&c.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "cached:1",
    ]))
    .expect("RootFS.Layers")
    .iter()
    .map(|l| l.trim_start_matches("sha256:").to_string())
    .collect();
    let made: Vec<String> = layers[layers.len() - 2..].to_vec();

    c.ok(&["rmi", "cached:1"]);
    c.ok(&["image", "prune", "-a", "-f"]);
    assert!(c.ok(&["images", "-q"]).is_empty(), "every image is gone");
    let kept = c.env.list("layers");
    for l in &made {
        assert!(
            kept.contains(l),
            "layer {l} of a cached step was kept: {kept:?}"
        );
    }
    assert!(
        !kept.contains(&layers[0]),
        "the base image's layers went: {kept:?}"
    );

    // FROM pulls the base again; both steps come from the cache.
    let (again, progress) = build();
    assert_eq!(
        cached(&progress),
        ["RUN /bin/sh -c echo made by a step > /made", "COPY f /f"],
        "{progress}"
    );
    assert_eq!(again, first, "the same image");
    let made_file = c.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "cached:1",
        "cat",
        "/made",
        "/f",
    ]);
    assert_eq!(made_file, "made by a step\ncopied");

    // Without the cache, nothing holds them.
    c.ok(&["rmi", "cached:1"]);
    c.ok(&["builder", "prune", "-f"]);
    c.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        c.env.list("layers").is_empty(),
        "{:?}",
        c.env.list("layers")
    );
}

/// A layer whose files changed under its tar-split record: the tar read back does not
/// hash to the diff-id, which is found only once the layer went up in chunks (they go
/// as they are compressed). That upload is never closed; the layer is written anew
/// and pushed, with a config naming its new diff-id, and what was pushed pulls whole.
fn push_writes_anew_a_layer_that_no_longer_matches_its_record(w: &World) {
    let c = Ctx::new();
    let mut data = noise(600 * 1024, 11);
    let tar = rootfs_tar(&[
        Entry::Dir("data/", 0o755),
        Entry::File("data/blob".into(), data.clone(), 0o644, 0),
    ]);
    // Through a proxy of its own: its PATCHes must not take the chunked test's fault.
    let name = format!("{}/dist/anew:v1", w.quiet.addr);
    let import = c.with_stdin(&["import", "-", &name], &tar);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let layers: Vec<String> =
        serde_json::from_str(&c.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", &name]))
            .expect("RootFS.Layers");
    let diff_id = layers[0].trim_start_matches("sha256:");
    // The same size, other bytes: the record still fits, the digest does not.
    data[1000] ^= 0xff;
    let file = c.env.store().join("layers").join(diff_id).join("data/blob");
    std::fs::write(&file, &data).expect("change the layer's file");

    let mark = w.quiet.log.lock().expect("log").len();
    let out = c.env.run(&["push", "--chunk-size", "64k", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("writing the layer anew"), "{stderr}");
    assert!(stderr.contains("the pushed image id is"), "{stderr}");
    let requests: Vec<String> = w.quiet.log.lock().expect("log")[mark..]
        .iter()
        .filter(|l| l.path.starts_with("/v2/dist/anew/blobs/uploads/"))
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    let closing: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("digest="))
        .collect();
    // The layer and the config: the abandoned upload was never closed.
    assert_eq!(closing.len(), 2, "{requests:?}");
    assert!(
        requests.iter().filter(|r| r.starts_with("PATCH ")).count() >= 2,
        "the first upload went in chunks: {requests:?}"
    );

    let other = Ctx::new();
    let direct = format!("{}/dist/anew:v1", w.reg.addr);
    other.ok(&["pull", "-q", &direct]);
    let sum = other.ok(&["run", "--rm", &direct, "sha256sum", "/data/blob"]);
    assert!(sum.starts_with(&sha256_hex(&data)), "{sum}");
}

/// `export` then `import`: a container's whole filesystem, its changes included, as a
/// one-layer image that runs.
fn export_then_import_gives_the_container_filesystem(w: &World) {
    let c = Ctx::new();
    c.ok(&["pull", "-q", &w.app()]);
    c.ok(&[
        "run",
        "--name",
        "exported",
        &w.app(),
        "sh",
        "-c",
        "echo made before export > /made; rm /etc/remove-me",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("fs.tar");
    let archive = archive.to_str().expect("utf-8");
    c.ok(&["export", "-o", archive, "exported"]);
    c.ok(&["import", archive, "reimported:v1"]);
    let layers: Vec<String> = serde_json::from_str(&c.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "reimported:v1",
    ]))
    .expect("RootFS.Layers");
    assert_eq!(layers.len(), 1, "{layers:?}");
    let out = c.ok(&[
        "run",
        "--rm",
        "reimported:v1",
        "sh",
        "-c",
        "cat /made /srv/second; test ! -e /etc/remove-me && echo removed",
    ]);
    assert_eq!(out, "made before export\nsecond layer\nremoved");
}

fn main() {
    let tests: &[harness::Test<World>] = &[
        (
            "push_uploads_mounts_and_then_skips_what_the_registry_has",
            push_uploads_mounts_and_then_skips_what_the_registry_has,
        ),
        (
            "chunked_upload_resumes_after_a_failed_chunk",
            chunked_upload_resumes_after_a_failed_chunk,
        ),
        (
            "push_writes_anew_a_layer_that_no_longer_matches_its_record",
            push_writes_anew_a_layer_that_no_longer_matches_its_record,
        ),
        (
            "push_with_token_auth_and_without_permission",
            push_with_token_auth_and_without_permission,
        ),
        (
            "push_with_credentials_from_home_docker_config",
            push_with_credentials_from_home_docker_config,
        ),
        (
            "push_to_an_unreachable_registry_fails_at_once",
            push_to_an_unreachable_registry_fails_at_once,
        ),
        (
            "save_and_load_round_trip_with_podman",
            save_and_load_round_trip_with_podman,
        ),
        (
            "docker_save_archives_built_here_load_and_run",
            docker_save_archives_built_here_load_and_run,
        ),
        (
            "bad_archives_leave_the_store_as_it_was",
            bad_archives_leave_the_store_as_it_was,
        ),
        (
            "commit_keeps_changes_whiteouts_owners_and_config",
            commit_keeps_changes_whiteouts_owners_and_config,
        ),
        (
            "import_from_a_file_stdin_and_a_url",
            import_from_a_file_stdin_and_a_url,
        ),
        (
            "export_then_import_gives_the_container_filesystem",
            export_then_import_gives_the_container_filesystem,
        ),
        (
            "image_prune_keeps_what_the_build_cache_names",
            image_prune_keeps_what_the_build_cache_names,
        ),
        (
            "search_finds_repositories_and_tags",
            search_finds_repositories_and_tags,
        ),
    ];
    harness::run(tests, 3, World::build);
}

/// `search` of a registry other than Docker Hub goes through its catalog, filtered by
/// the term; `--list-tags` lists a repository's tags; a catalog behind token auth
/// needs a login; an unreachable registry and a bad filter are one-line errors.
fn search_finds_repositories_and_tags(w: &World) {
    let c = Ctx::new();
    let names = |term: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["search", "--format", "{{.Name}}"];
        args.extend_from_slice(extra);
        args.push(term);
        let mut found: Vec<String> = c.ok(&args).lines().map(str::to_string).collect();
        found.sort();
        found
    };
    let reg = &w.reg.addr;
    assert_eq!(
        names(&format!("{reg}/test/"), &[]),
        [format!("{reg}/test/app"), format!("{reg}/test/oci")]
    );
    assert_eq!(
        names(&format!("{reg}/OCI"), &[]),
        [format!("{reg}/test/oci")]
    );
    assert_eq!(names(&format!("{reg}/test/"), &["--limit", "1"]).len(), 1);
    assert!(names(&format!("{reg}/no-such-thing"), &[]).is_empty());
    let table = c.ok(&["search", &format!("{reg}/test/app")]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"]
    );
    assert_eq!(
        lines
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [vec![format!("{reg}/test/app").as_str(), "0"]]
    );
    let json = c.ok(&["search", "--format", "json", &format!("{reg}/test/oci")]);
    let row: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(row["Name"], format!("{reg}/test/oci"));
    assert_eq!(row["IsOfficial"], "", "Docker's: [OK] or nothing");

    let app = format!("{reg}/test/app");
    let tags = c.ok(&["search", "--list-tags", &app]);
    let rows: Vec<Vec<&str>> = tags
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [vec!["NAME", "TAG"], vec![app.as_str(), "v1"]]);

    // Behind token auth the catalog needs a login.
    let token = &w.token.addr;
    let err = c.refused(&["search", &format!("{token}/dist")]);
    assert!(err.contains(token.as_str()), "{err}");
    let login = c.with_stdin(
        &["login", "-u", USER, "--password-stdin", token],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let tar = rootfs_tar(&[Entry::File("found-me".into(), b"f\n".to_vec(), 0o644, 0)]);
    let mine = format!("{token}/search/found-me:v1");
    let import = c.with_stdin(&["import", "-", &mine], &tar);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    c.ok(&["push", &mine]);
    let found = c.ok(&["search", "--format", "{{.Name}}", &format!("{token}/found")]);
    assert_eq!(found, format!("{token}/search/found-me"));

    let err = c.refused(&["search", &format!("127.0.0.1:{}/x", registry::free_port())]);
    assert!(err.contains("searching"), "{err}");
    let err = c.refused(&["search", "--filter", "stars=many", &format!("{reg}/x")]);
    assert!(err.contains("stars"), "{err}");
}
