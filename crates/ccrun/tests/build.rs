//! `ccrun build`: Dockerfiles built by ccrun run the same in ccrun and in podman, and
//! images podman builds from the same Dockerfile run the same in ccrun; the cache,
//! `.dockerignore`, build args, heredocs, cache mounts, whiteouts and ownership under
//! the user namespace; and bad input fails with one clear line, leaving nothing in
//! the store.
//!
//! The base image is a busybox image pushed to a `docker-registry` the test starts;
//! RUN steps have no network (`--network none`). podman gets storage, run root and
//! configuration of its own under a temp dir (vfs, cgroupfs).

mod support;

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/registry.rs"]
mod registry;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ccrun_image::layer_writer::{write_layer, WriteOptions};
use ccrun_image::{Digest, Store};
use image_build::{layer, Comp, Entry, Layout};
use image_cli::Env;
use registry::{Format, Registry};
use serde_json::Value;

/// Applets the test Dockerfiles use, as links to busybox.
const APPLETS: &[(&str, &str)] = &[
    ("bin/sh", "busybox"),
    ("bin/cat", "busybox"),
    ("bin/chown", "busybox"),
    ("bin/echo", "busybox"),
    ("bin/find", "busybox"),
    ("bin/id", "busybox"),
    ("bin/ls", "busybox"),
    ("bin/mkdir", "busybox"),
    ("bin/rm", "busybox"),
    ("bin/sort", "busybox"),
    ("bin/stat", "busybox"),
    ("bin/test", "busybox"),
    ("bin/touch", "busybox"),
    ("bin/true", "busybox"),
    ("bin/wc", "busybox"),
];

/// A registry holding `test/base:1`: busybox, its applets, a passwd with `app`
/// (1000:1000), /tmp.
fn registry_with_base() -> (Registry, String) {
    let reg = Registry::start();
    let bb = std::fs::read(image_build::busybox_path()).expect("read busybox");
    let mut entries = vec![
        Entry::Dir("bin/", 0o755),
        Entry::File("bin/busybox".into(), bb, 0o755, 0),
        Entry::Dir("etc/", 0o755),
        Entry::File(
            "etc/passwd".into(),
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n".to_vec(),
            0o644,
            0,
        ),
        Entry::File(
            "etc/group".into(),
            b"root:x:0:\napp:x:1000:\n".to_vec(),
            0o644,
            0,
        ),
        Entry::Dir("root/", 0o700),
        Entry::Dir("tmp/", 0o1777),
        Entry::Dir("usr/", 0o755),
    ];
    entries.extend(APPLETS.iter().map(|(p, t)| Entry::Symlink(p, t)));
    let base = layer(&entries, Comp::Gzip);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(&dir.path().join("oci"));
    // buildah wants one history entry per layer.
    layout.image_with_history(
        &[&base],
        "amd64",
        Some("1"),
        serde_json::json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"}),
        Some(serde_json::json!([{"created": "2024-01-02T03:04:05Z", "created_by": "base"}])),
    );
    reg.push(&layout.dir, "1", "test/base", Format::Oci);
    let name = format!("{}/test/base:1", reg.addr);
    (reg, name)
}

/// Writes `files` (path → content) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ccrun build` in `env` with a Dockerfile `text` in `ctx`; returns its output.
fn build(env: &Env, ctx: &Path, args: &[&str]) -> Output {
    let mut all = vec!["build", "--network", "none"];
    all.extend_from_slice(args);
    let ctx = ctx.to_string_lossy().into_owned();
    all.push(&ctx);
    env.cmd(&all).output().expect("run ccrun build")
}

fn build_ok(env: &Env, ctx: &Path, args: &[&str]) -> (String, String) {
    let out = build(env, ctx, args);
    assert!(out.status.success(), "ccrun build failed: {}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "image id {id:?}"
    );
    (id, stderr(&out))
}

/// Steps printed with CACHED, in order.
fn cached_steps(progress: &str) -> Vec<String> {
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
}

/// A private podman: storage, run root and configuration in a temp dir.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("ccrun-podman-build-")
            .tempdir()
            .expect("tempdir");
        ccrun_testkit::podman::write_private_config(dir.path());
        Podman { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        Command::new("podman")
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            // Debian's crun refuses this host's hybrid cgroup layout; runc does not.
            .args(["--runtime", "runc"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podman {args:?}: {}", stderr(&out));
        stdout(&out)
    }
}

impl Podman {
    /// The cgroup parent of this test's podman containers (and conmon), removed on drop.
    fn cgroup_parent() -> String {
        format!("/ccrun-test-podman-build-{}", std::process::id())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force"]);
        let _ = self.run(&["rmi", "--all", "--force"]);
        // The cgroups podman and conmon left under our parent, deepest first.
        let parent = Podman::cgroup_parent();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let top = hierarchy.path().join(parent.trim_start_matches('/'));
            let mut dirs = vec![top.clone()];
            let mut i = 0;
            while i < dirs.len() {
                for e in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.path());
                    }
                }
                i += 1;
            }
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// Writes the image `name` of ccrun's store as an OCI layout for podman. The layers
/// ccrun built, written again from the store, must have the digests the manifest
/// names (the layer writer is deterministic); the base image's layer came from the
/// registry in another writer's bytes, so the config and manifest are written anew
/// with the diff-ids of the tarballs written here.
fn export_layout(env: &Env, name: &str, dir: &Path) {
    let store = Store::open(&env.root()).expect("store");
    let image = store.resolve(name).expect("resolve").expect("image");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let mut config: Value = serde_json::from_slice(
        &store
            .read_blob(&image.record.id)
            .expect("read")
            .expect("config"),
    )
    .expect("config json");
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (i, diff_id) in image.record.layers.iter().enumerate() {
        let mut tar = Vec::new();
        let written = write_layer(
            &store.layer_dir(diff_id),
            &mut tar,
            &WriteOptions::default(),
        )
        .expect("write layer");
        if i > 0 {
            assert_eq!(
                &written.diff_id, diff_id,
                "built layer {i} rewritten to another tarball"
            );
        }
        std::fs::write(blobs.join(written.diff_id.hex()), &tar).expect("write layer");
        diff_ids.push(written.diff_id.to_string());
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": written.diff_id.to_string(), "size": tar.len(),
        }));
    }
    config["rootfs"]["diff_ids"] = serde_json::json!(diff_ids);
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = Digest::of(&config);
    std::fs::write(blobs.join(config_digest.hex()), &config).expect("write config");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": descriptors,
    }))
    .expect("json");
    let manifest_digest = Digest::of(&manifest);
    std::fs::write(blobs.join(manifest_digest.hex()), &manifest).expect("write manifest");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "built"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
}

/// The Dockerfile both engines build: every instruction podman 4.3 also knows.
const COMMON_DOCKERFILE: &str = r#"ARG BASE
FROM $BASE AS build
ARG GREETING=hello
RUN mkdir -p /out && echo "$GREETING from build" > /out/msg && echo tmp > /out/tmp
RUN rm /out/tmp
FROM ${BASE}
LABEL org.test.kind="build test" org.test.other=1
ENV APP_HOME=/srv/app PATH=/bin
WORKDIR $APP_HOME
COPY --from=build /out/ ./from-build/
COPY --chown=1000:1000 files/ ./files/
COPY --chmod=0750 run.sh /usr/local/bin/run.sh
ADD archive.tar.gz /srv/extracted/
RUN echo data > owned && chown 1000:1000 owned && mkdir gone && touch gone/x keep
RUN rm -r gone
USER app
RUN id -u > /tmp/uid
EXPOSE 8080/tcp 53/udp
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/app/files/a"]
"#;

/// What a container of the image shows: its files, owners, modes and environment.
const PROBE: &str = "cd /srv/app && find . /srv/extracted | sort && cat from-build/msg files/a \
    /srv/extracted/inside.txt /tmp/uid && stat -c '%u:%g %a %n' owned files files/a \
    /usr/local/bin/run.sh from-build/msg /srv/extracted/inside.txt && id -u && echo $APP_HOME \
    && (test -e gone && echo gone-present || echo gone-absent)";

fn common_context(dir: &Path) {
    write_tree(
        dir,
        &[
            ("Dockerfile", COMMON_DOCKERFILE),
            ("files/a", "file a\n"),
            ("files/sub/b", "file b\n"),
            ("run.sh", "#!/bin/sh\necho run\n"),
        ],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut t = tar::Builder::new(&mut gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(7);
        h.set_mode(0o604);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(&mut h, "inside.txt", &b"inside\n"[..])
            .expect("tar");
        t.finish().expect("tar");
    }
    std::fs::write(dir.join("archive.tar.gz"), gz.finish().expect("gzip")).expect("write");
}

/// The config fields both engines set, from `ccrun image inspect`.
fn config_of(env: &Env, image: &str) -> Value {
    let out = env.ok(&["image", "inspect", image]);
    let v: Value = serde_json::from_str(&out).expect("inspect json");
    let c = &v[0]["Config"];
    let mut labels = c["Labels"].clone();
    if let Some(m) = labels.as_object_mut() {
        // buildah's own label.
        m.remove("io.buildah.version");
    }
    serde_json::json!({
        "Env": c["Env"], "Entrypoint": c["Entrypoint"], "Cmd": c["Cmd"],
        "WorkingDir": c["WorkingDir"], "User": c["User"], "ExposedPorts": c["ExposedPorts"],
        "Volumes": c["Volumes"], "Labels": labels, "StopSignal": c["StopSignal"],
    })
}

#[test]
fn built_images_run_alike_in_ccrun_and_podman_both_ways() {
    let (reg, base) = registry_with_base();
    let env = Env::new();
    let ctx = tempfile::tempdir().expect("tempdir");
    common_context(ctx.path());
    let base_arg = format!("BASE={base}");
    build_ok(
        &env,
        ctx.path(),
        &["-t", "built:1", "--build-arg", &base_arg],
    );

    // The image in ccrun.
    let ours = env.ok(&["run", "--rm", "--network", "none", "built:1", PROBE]);
    assert!(
        ours.contains("hello from build\nfile a\ninside\n1000\n"),
        "{ours}"
    );
    assert!(ours.contains("1000:1000 644 owned\n"), "{ours}");
    assert!(
        ours.contains("1000:1000 755 files\n1000:1000 644 files/a\n"),
        "{ours}"
    );
    assert!(ours.contains("0:0 750 /usr/local/bin/run.sh\n"), "{ours}");
    assert!(
        ours.contains("0:0 604 /srv/extracted/inside.txt\n"),
        "{ours}"
    );
    assert!(ours.ends_with("1000\n/srv/app\ngone-absent\n"), "{ours}");
    assert!(
        !ours.contains("./gone") && !ours.contains("tmp\n"),
        "whiteouts: {ours}"
    );
    assert_eq!(
        env.ok(&["run", "--rm", "--network", "none", "built:1"]),
        "file a\n"
    );
    let config = config_of(&env, "built:1");
    assert_eq!(config["User"], "app");
    assert_eq!(config["StopSignal"], "SIGUSR1");
    assert_eq!(config["Labels"]["org.test.kind"], "build test");
    let inspect: Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "built:1"])).expect("json");
    let store = Store::open(&env.root()).expect("store");
    let id: Digest = inspect[0]["Id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("digest");
    let raw: Value = serde_json::from_slice(&store.read_blob(&id).expect("read").expect("config"))
        .expect("config json");
    assert_eq!(
        raw["config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(raw["config"]["Healthcheck"]["Interval"], 5_000_000_000i64);
    assert_eq!(
        raw["config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered"])
    );
    let history = env.ok(&["history", "--no-trunc", "built:1"]);
    assert!(history.contains("RUN /bin/sh -c rm -r gone"), "{history}");

    // The same image in podman.
    let podman = Podman::new();
    // podman names the image after the layout's path, which must be lower case.
    let layout = tempfile::Builder::new()
        .prefix(&format!("ccrun-build-layout-{}", std::process::id()))
        .rand_bytes(0)
        .tempdir()
        .expect("tempdir");
    export_layout(&env, "built:1", layout.path());
    let oci = format!("oci:{}:built", layout.path().display());
    podman.ok(&["pull", "-q", &oci]);
    let parent = Podman::cgroup_parent();
    let theirs = podman.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        &parent,
        &oci,
        PROBE,
    ]);
    assert_eq!(theirs, ours, "podman runs ccrun's image alike");

    // podman builds the same Dockerfile; ccrun pulls and runs it alike.
    let pushed = format!("{}/test/podbuilt:1", reg.addr);
    podman.ok(&[
        "build",
        "--format",
        "docker",
        "--network",
        "none",
        "--tls-verify=false",
        "--build-arg",
        &base_arg,
        "-t",
        &pushed,
        &ctx.path().to_string_lossy(),
    ]);
    podman.ok(&["push", "--tls-verify=false", &pushed]);
    env.ok(&["pull", "-q", &pushed]);
    let from_podman = env.ok(&["run", "--rm", "--network", "none", &pushed, PROBE]);
    assert_eq!(from_podman, ours, "ccrun runs podman's build alike");
    assert_eq!(config_of(&env, &pushed), config);
}

/// A tiny HTTP server answering every request with `body`, for `ADD URL`.
fn serve(body: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        // One request per build: the test builds four times.
        for stream in listener.incoming().take(4) {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    (format!("http://{addr}/dl/data.txt"), handle)
}

#[test]
fn cache_ignore_args_heredocs_cache_mounts_and_reproducibility() {
    let (_reg, base) = registry_with_base();
    let env = Env::new();
    let ctx = tempfile::tempdir().expect("tempdir");
    let (url, server) = serve(b"downloaded\n");
    let sum = Digest::of(b"downloaded\n").to_string();
    let dockerfile = format!(
        r#"# syntax=docker/dockerfile:1
# escape=\
FROM {base}
ARG V=1
COPY one.txt /one.txt
RUN echo "v=$V" > /v \
    && echo step3
COPY two.txt /two.txt
RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /runs
RUN <<EOF
echo "heredoc $HOME" > /heredoc
cat > /generated <<INNER
inner
INNER
EOF
COPY <<EOF /copied-heredoc
made by ${{V}}
EOF
COPY . /ctx/
ADD --checksum={sum} {url} /dl/
"#
    );
    write_tree(
        ctx.path(),
        &[
            ("Dockerfile", &dockerfile),
            ("one.txt", "one\n"),
            ("two.txt", "two\n"),
            ("ignored.log", "noise\n"),
            ("logs/a.log", "a\n"),
            ("logs/keep.log", "keep\n"),
            (".dockerignore", "*.log\n**/*.log\n!logs/keep.log\n"),
        ],
    );
    let (first, progress) = build_ok(&env, ctx.path(), &["-t", "cached:1"]);
    assert!(
        progress.contains("# syntax=docker/dockerfile:1 ignored"),
        "{progress}"
    );
    assert!(cached_steps(&progress).is_empty(), "{progress}");
    let shown = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "cached:1",
        "sh",
        "-c",
        "cat /v /runs /heredoc /generated /copied-heredoc /dl/data.txt && find /ctx | sort",
    ]);
    assert_eq!(
        shown,
        "v=1\n1\nheredoc /root\ninner\nmade by 1\ndownloaded\n/ctx\n/ctx/.dockerignore\n\
         /ctx/Dockerfile\n/ctx/logs\n/ctx/logs/keep.log\n/ctx/one.txt\n/ctx/two.txt\n"
    );

    // Nothing changed: every step is cached (the download is fetched again and has
    // the same content), and the image is the same.
    let (again, progress) = build_ok(&env, ctx.path(), &["-t", "cached:1"]);
    let cached = cached_steps(&progress);
    assert_eq!(cached.len(), 8, "{progress}");
    assert_eq!(again, first, "a fully cached build gives the same image");

    // An ignored file changes nothing; a copied one invalidates exactly what follows.
    write_tree(
        ctx.path(),
        &[("logs/a.log", "changed\n"), ("two.txt", "TWO\n")],
    );
    let (_, progress) = build_ok(&env, ctx.path(), &["-t", "cached:1"]);
    assert_eq!(
        cached_steps(&progress),
        [
            "COPY one.txt /one.txt",
            "RUN /bin/sh -c echo \"v=$V\" > /v     && echo step3"
        ],
        "{progress}"
    );
    // The cache mount kept its content across builds.
    let runs = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "cached:1",
        "cat",
        "/runs",
    ]);
    assert_eq!(runs, "2\n");

    // A build arg in use invalidates from its first use.
    let (_, progress) = build_ok(&env, ctx.path(), &["-t", "cached:2", "--build-arg", "V=2"]);
    assert_eq!(
        cached_steps(&progress),
        ["COPY one.txt /one.txt"],
        "{progress}"
    );
    let v = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "cached:2",
        "cat",
        "/v",
        "/copied-heredoc",
    ]);
    assert_eq!(v, "v=2\nmade by 2\n");
    server.join().expect("server");

    // --no-cache uses nothing; builder prune empties the cache.
    let out = env.ok(&["builder", "prune", "-f"]);
    assert!(out.starts_with("Total reclaimed space: "), "{out}");
    let files = std::fs::read_dir(env.root().join("build/cache")).map_or(0, |d| d.count());
    assert_eq!(files, 0);

    // Reproducible: with SOURCE_DATE_EPOCH two uncached builds give the same id.
    let repro = tempfile::tempdir().expect("tempdir");
    write_tree(
        repro.path(),
        &[
            (
                "Dockerfile",
                &format!("FROM {base}\nCOPY f /f\nRUN echo made > /made && touch /f2\n"),
            ),
            ("f", "content\n"),
        ],
    );
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let out = env
                .cmd(&[
                    "build",
                    "--network",
                    "none",
                    "--no-cache",
                    "-q",
                    &repro.path().to_string_lossy(),
                ])
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .output()
                .expect("build");
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(stderr(&out), "", "-q prints nothing but the id");
            stdout(&out).trim().to_string()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    let created = env.ok(&["image", "inspect", "--format", "{{.Created}}", &ids[0]]);
    assert!(created.starts_with("2023-11-14T22:13:20"), "{created}");
}

/// Work directories of builds and mounts left behind: none.
fn assert_clean(env: &Env) {
    let work = env.root().join("build/work");
    let left = std::fs::read_dir(&work).map_or(0, |d| d.count());
    assert_eq!(left, 0, "leftovers in {}", work.display());
    let root = env.root().to_string_lossy().into_owned();
    assert!(
        !support::host_mounts().contains(&root),
        "mounts left under {root}"
    );
}

#[test]
fn bad_input_fails_with_one_line_and_leaves_nothing() {
    let (_reg, base) = registry_with_base();
    let env = Env::new();
    let ctx = tempfile::tempdir().expect("tempdir");
    let outside = ctx.path().join("../outside-of-context");
    write_tree(
        ctx.path(),
        &[
            ("secret.key", "s\n"),
            (".dockerignore", "*.key\n"),
            ("ok", "ok\n"),
        ],
    );
    let cases: Vec<(String, &str)> = vec![
        (
            format!("FROM {base}\n\nRUN true\n  FOO bar\n"),
            "Dockerfile:4:3: unknown instruction: FOO",
        ),
        (
            format!("FROM {base}\nCOPY ../outside-of-context /x\n"),
            "Dockerfile:2: COPY ../outside-of-context /x: ../outside-of-context: outside the build context",
        ),
        (
            format!("FROM {base}\nCOPY secret.key /x\n"),
            "Dockerfile:2: COPY secret.key /x: secret.key: excluded by .dockerignore",
        ),
        (
            format!("FROM {base}\nCOPY missing /x\n"),
            "Dockerfile:2: COPY missing /x: missing: not found in the build context",
        ),
    ];
    std::fs::write(&outside, "x").expect("write");
    for (dockerfile, want) in &cases {
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).expect("write");
        let out = build(&env, ctx.path(), &["-q", "-t", "bad:1"]);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{dockerfile}: {}",
            stderr(&out)
        );
        assert_eq!(stderr(&out), format!("ccrun: {want}\n"));
    }
    let _ = std::fs::remove_file(&outside);

    // A failing RUN: its output, its exit code, one line naming both.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {base}\nCOPY ok /ok\nRUN echo partial > /p && echo failing-output && exit 3\n"
        ),
    )
    .expect("write");
    let out = build(&env, ctx.path(), &["-t", "bad:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("failing-output\n"), "{err}");
    assert!(
        err.ends_with(
            "ccrun: Dockerfile:3: process \"/bin/sh -c echo partial > /p && echo failing-output \
             && exit 3\" did not complete successfully: exit code: 3\n"
        ),
        "{err}"
    );
    // With -q the output is shown only because the step failed.
    let out = build(&env, ctx.path(), &["-q", "-t", "bad:1"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("failing-output\n"));

    let images = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images.lines().count(), 1, "only the base image: {images}");
    assert!(!images.contains("bad"), "{images}");
    assert_clean(&env);
}

/// `-` as the context: a tar archive on stdin.
#[test]
fn context_from_stdin() {
    let (_reg, base) = registry_with_base();
    let env = Env::new();
    let mut t = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("Dockerfile", format!("FROM {base}\nCOPY hello /hello\n")),
        ("hello", "hi\n".into()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(&mut h, name, data.as_bytes()).expect("tar");
    }
    let archive = t.into_inner().expect("tar");
    let mut child = env
        .cmd(&["build", "-q", "-t", "stdin:1", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&archive)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "stdin:1",
            "cat",
            "/hello"
        ]),
        "hi\n"
    );
    assert_clean(&env);
    let _: PathBuf = env.root();
}
