//! Application images for the tests: nginx, redis and postgres configured like their
//! official Docker Hub images, built here from Debian's packages (never pulled
//! prebuilt from anywhere) and cached on disk between runs and between test binaries.
//!
//! **Build.** `apps/build-rootfs.sh` debootstraps Debian bookworm (minbase, as
//! debian:bookworm-slim, the official images' base) and installs nginx, redis-server
//! and postgresql-15 with apt inside it: one root filesystem for all three. apt runs
//! the packages' maintainer scripts, so the users (www-data, redis, postgres), their
//! directories and permissions are what Debian makes them; `apt-get download` plus
//! `dpkg -x` would skip those scripts and leave us redoing their work by hand. One
//! shared root makes the three images share their big layer, as images built `FROM`
//! one base do. Each image is that layer plus a small one of its own (entrypoint,
//! page, log symlinks, data directory) and an image config like the official one
//! (Env, Entrypoint, Cmd, WorkingDir, ExposedPorts, Volumes, StopSignal). On 2 cores a
//! cold build takes about 3 minutes, mostly debootstrap and apt downloading.
//!
//! **Cache.** `/var/tmp/ccrun-app-images/<key>/` (`$CCRUN_APP_IMAGES_DIR` instead of
//! `/var/tmp/ccrun-app-images` if set) holds the OCI layout `oci/`, tagged `nginx`,
//! `redis` and `postgres`, and `versions` (the Debian package versions inside). The
//! key hashes [`RECIPE`], the files in `apps/` and the versions that apt on this host
//! would install (`apt-cache policy` candidates; the rootfs uses the same bookworm
//! suites), so a recipe change or a Debian update builds anew and nothing else does.
//! The build runs under an exclusive lock on `<cache>/.lock`: test binaries started
//! together build once, the others wait and reuse it. It goes to `<key>.partial`,
//! renamed into place when complete, so an interrupted build leaves no half cache.
#![allow(dead_code)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use ccrun_image::Digest;

use crate::image_build::{Layer, Layout};

/// Version of what the Rust side of the recipe does (layers, image configs): bump it
/// when changing them. Changes to the files in `apps/` change the key by themselves.
pub const RECIPE: u32 = 2;

/// The applications, each an image tag in the layout.
pub const APPS: [&str; 3] = ["nginx", "redis", "postgres"];

/// The page the nginx image serves at `/` (and `/index.html`).
pub const NGINX_PAGE: &str = include_str!("apps/index.html");

/// The redis image's `/usr/local/bin/docker-entrypoint.sh`.
const REDIS_ENTRYPOINT: &str = include_str!("apps/redis-entrypoint.sh");

/// The postgres image's `/usr/local/bin/docker-entrypoint.sh`.
const POSTGRES_ENTRYPOINT: &str = include_str!("apps/postgres-entrypoint.sh");

/// The recipe's files, by name: their text is part of the cache key.
const RECIPE_FILES: [(&str, &str); 4] = [
    ("build-rootfs.sh", include_str!("apps/build-rootfs.sh")),
    ("index.html", NGINX_PAGE),
    ("redis-entrypoint.sh", REDIS_ENTRYPOINT),
    ("postgres-entrypoint.sh", POSTGRES_ENTRYPOINT),
];

/// The Debian packages the images are made of.
const PACKAGES: [&str; 3] = ["nginx", "redis-server", "postgresql-15"];

/// `PATH` of the images, as in Debian's root's environment.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Cached keys unused for this long are removed when another key is built.
const UNUSED_KEY_LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);

/// The built images: an OCI layout on disk.
pub struct AppImages {
    /// The OCI layout directory (tags: [`APPS`]).
    pub layout: PathBuf,
    /// `package=version` lines of the Debian packages inside.
    pub versions: String,
}

impl AppImages {
    /// The cached images, built first (under the cache's lock) if they are not there.
    pub fn get() -> AppImages {
        let root = cache_root();
        std::fs::create_dir_all(&root).expect("app image cache dir");
        let key = cache_key();
        let dir = root.join(&key);
        if !dir.join("oci/index.json").exists() {
            let lock = std::fs::File::create(root.join(".lock")).expect("cache lock file");
            // Blocks while another test binary builds; then its result is reused.
            lock.lock().expect("lock the app image cache");
            if !dir.join("oci/index.json").exists() {
                build(&root, &key);
                remove_unused_keys(&root, &key);
            }
        }
        // Marks the key as used, for remove_unused_keys.
        std::fs::write(dir.join("last-used"), b"").expect("touch last-used");
        AppImages {
            layout: dir.join("oci"),
            versions: std::fs::read_to_string(dir.join("versions")).expect("versions"),
        }
    }
}

/// The cache's directory: `$CCRUN_APP_IMAGES_DIR`, else `/var/tmp/ccrun-app-images`.
pub fn cache_root() -> PathBuf {
    std::env::var_os("CCRUN_APP_IMAGES_DIR")
        .map_or_else(|| PathBuf::from("/var/tmp/ccrun-app-images"), PathBuf::from)
}

/// `r<RECIPE>-<hash>`: the hash covers the recipe and the Debian candidate versions.
fn cache_key() -> String {
    let mut text = format!("recipe {RECIPE}\n");
    for (name, content) in RECIPE_FILES {
        text.push_str(&format!("--- {name}\n{content}"));
    }
    text.push_str(&candidates());
    format!("r{RECIPE}-{}", &Digest::of(text.as_bytes()).hex()[..16])
}

/// `package=candidate` lines from `apt-cache policy` (`(none)` before `apt-get update`:
/// the key is then stable, and the build fetches the current packages anyway).
fn candidates() -> String {
    let out = Command::new("apt-cache")
        .arg("policy")
        .args(PACKAGES)
        .output()
        .expect("run apt-cache");
    assert!(out.status.success(), "apt-cache policy failed");
    let mut lines = String::new();
    let mut package = "";
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        if !line.starts_with(' ') {
            package = line.trim_end_matches(':');
        } else if let Some(v) = line.trim().strip_prefix("Candidate:") {
            lines.push_str(&format!("{package}={}\n", v.trim()));
        }
    }
    lines
}

/// Builds the images of `key` into `<root>/<key>`, through `<key>.partial`.
fn build(root: &Path, key: &str) {
    let started = Instant::now();
    eprintln!(
        "building the application test images in {} (cold cache: a few minutes)",
        root.join(key).display()
    );
    let partial = root.join(format!("{key}.partial"));
    // We hold the lock: a partial build is a dead one's.
    remove_dir(&partial);
    std::fs::create_dir_all(&partial).expect("partial dir");
    // What only the build needs (the root filesystem, the staged layers): removed at
    // the end, as the layers hold it all.
    let work = partial.join("work");
    std::fs::create_dir(&work).expect("work dir");
    let rootfs = work.join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/apps/build-rootfs.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&rootfs)
        .output()
        .expect("run build-rootfs.sh");
    assert!(
        out.status.success(),
        "{} failed (needs debootstrap and deb.debian.org: scripts/deps.sh):\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let versions =
        std::fs::read_to_string(rootfs.with_extension("versions")).expect("package versions");
    let version_of = |package: &str| -> String {
        versions
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{package}=")))
            .unwrap_or_else(|| panic!("{package} not installed: {versions}"))
            .to_string()
    };

    let base = dir_layer(&rootfs);
    // The packages are the host's architecture, in the OCI's words.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let mut layout = Layout::new(&partial.join("oci"));
    let labels = |package: &str| {
        serde_json::json!({
            "org.opencontainers.image.version": version_of(package),
            "org.opencontainers.image.base.name": "debian:bookworm (debootstrap --variant=minbase)",
        })
    };

    let nginx = Staging::new(&work, "nginx", &rootfs);
    // The official image's trick: nginx logs to the container's stdout and stderr.
    nginx.symlink("var/log/nginx/access.log", "/dev/stdout");
    nginx.symlink("var/log/nginx/error.log", "/dev/stderr");
    nginx.file("var/www/html/index.html", NGINX_PAGE.as_bytes(), 0o644);
    // Without an index: nginx refuses to list it and logs an error, for the tests.
    nginx.dir("var/www/html/empty");
    layout.image_with_config(
        &[&base, &nginx.layer()],
        arch,
        Some("nginx"),
        serde_json::json!({
            "Env": [format!("PATH={PATH}")],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "ExposedPorts": {"80/tcp": {}},
            // nginx's graceful shutdown.
            "StopSignal": "SIGQUIT",
            "Labels": labels("nginx"),
        }),
    );

    let redis = service_layer(&work, &rootfs, "redis", "data", REDIS_ENTRYPOINT);
    layout.image_with_config(
        &[&base, &redis],
        arch,
        Some("redis"),
        serde_json::json!({
            "Env": [format!("PATH={PATH}")],
            "Entrypoint": ["docker-entrypoint.sh"],
            // The official image's redis-server is built with protected mode off, so
            // that other containers may connect without a password; Debian's is not.
            "Cmd": ["redis-server", "--protected-mode", "no"],
            "WorkingDir": "/data",
            "Volumes": {"/data": {}},
            "ExposedPorts": {"6379/tcp": {}},
            "Labels": labels("redis-server"),
        }),
    );

    let postgres = service_layer(
        &work,
        &rootfs,
        "postgres",
        "var/lib/postgresql/data",
        POSTGRES_ENTRYPOINT,
    );
    layout.image_with_config(
        &[&base, &postgres],
        arch,
        Some("postgres"),
        serde_json::json!({
            // The server's own binaries first (the official image appends them): psql
            // is then the real one, not Debian's Perl wrapper that looks for clusters.
            "Env": [
                format!("PATH=/usr/lib/postgresql/15/bin:{PATH}"),
                "PG_MAJOR=15",
                "PGDATA=/var/lib/postgresql/data",
                "LANG=C.UTF-8",
            ],
            "Entrypoint": ["docker-entrypoint.sh"],
            "Cmd": ["postgres"],
            // postgres's fast shutdown: clients are disconnected, data is flushed.
            "StopSignal": "SIGINT",
            "Volumes": {"/var/lib/postgresql/data": {}},
            "ExposedPorts": {"5432/tcp": {}},
            "Labels": labels("postgresql-15"),
        }),
    );

    std::fs::write(partial.join("versions"), &versions).expect("write versions");
    std::fs::write(
        partial.join("key"),
        format!("{key}\n{}", candidates()).as_bytes(),
    )
    .expect("write key");
    remove_dir(&work);
    std::fs::rename(&partial, root.join(key)).expect("move the build into place");
    eprintln!(
        "built the application test images in {:.0?}:\n{versions}",
        started.elapsed()
    );
}

/// The layer of a service run by an entrypoint as `user` (of the base's passwd): its
/// data directory `data`, `user`'s, and `entrypoint` as
/// /usr/local/bin/docker-entrypoint.sh.
fn service_layer(work: &Path, base: &Path, user: &str, data: &str, entrypoint: &str) -> Layer {
    let layer = Staging::new(work, user, base);
    layer.dir(data);
    layer.chown(data, user);
    layer.file(
        "usr/local/bin/docker-entrypoint.sh",
        entrypoint.as_bytes(),
        0o755,
    );
    layer.layer()
}

/// A gzip layer of everything below `dir`, owners and modes as they are, hard links
/// kept (GNU tar: the tar crate makes copies of hard links). Hashed and compressed by
/// sha256sum and gzip, as this test code is built unoptimised and the base layer is
/// hundreds of megabytes.
fn dir_layer(dir: &Path) -> Layer {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .expect("read layer dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    names.sort();
    let tar = dir.with_extension("tar");
    let out = Command::new("tar")
        .args(["--create", "--numeric-owner", "--sort=name"])
        .arg("--file")
        .arg(&tar)
        .arg("--directory")
        .arg(dir)
        .arg("--")
        .args(&names)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let diff_id = sha256sum(&tar);
    let out = Command::new("gzip")
        .args(["-1", "-n", "-f"])
        .arg(&tar)
        .output()
        .expect("run gzip");
    assert!(out.status.success(), "gzip: {}", stderr_text(&out));
    let gz = tar.with_extension("tar.gz");
    let layer = Layer {
        digest: sha256sum(&gz),
        blob: std::fs::read(&gz).expect("read layer"),
        diff_id,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    std::fs::remove_file(&gz).expect("remove layer file");
    layer
}

/// The sha256 digest of a file, by sha256sum.
fn sha256sum(file: &Path) -> Digest {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum: {}", stderr_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or("");
    Digest::parse(&format!("sha256:{hex}")).expect("sha256sum output")
}

fn stderr_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The files of one image's own layer, staged in a directory whose parents copy the
/// base's owners and modes (a layer's directory entries replace the base's).
struct Staging<'a> {
    dir: PathBuf,
    base: &'a Path,
}

impl<'a> Staging<'a> {
    fn new(work: &Path, name: &str, base: &'a Path) -> Staging<'a> {
        let dir = work.join(format!("layer-{name}"));
        std::fs::create_dir(&dir).expect("staging dir");
        Staging { dir, base }
    }

    /// Creates `rel` and its parents, each like the base's (0755 root if new).
    fn dir(&self, rel: &str) -> PathBuf {
        let mut path = self.dir.clone();
        let mut base = self.base.to_path_buf();
        for part in Path::new(rel).components() {
            path.push(part);
            base.push(part);
            if path.exists() {
                continue;
            }
            std::fs::create_dir(&path).expect("staging mkdir");
            let (mode, uid, gid) = std::fs::symlink_metadata(&base)
                .map_or((0o755, 0, 0), |m| (m.mode() & 0o7777, m.uid(), m.gid()));
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("staging chown");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .expect("staging chmod");
        }
        path
    }

    /// Where `rel` goes, its parent directory made.
    fn parent_of(&self, rel: &str) -> PathBuf {
        let parent = Path::new(rel).parent().and_then(Path::to_str).unwrap_or("");
        if !parent.is_empty() {
            self.dir(parent);
        }
        self.dir.join(rel)
    }

    /// A root-owned file.
    fn file(&self, rel: &str, content: &[u8], mode: u32) {
        let path = self.parent_of(rel);
        std::fs::write(&path, content).expect("staging file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("staging chmod");
    }

    /// A symlink.
    fn symlink(&self, rel: &str, target: &str) {
        std::os::unix::fs::symlink(target, self.parent_of(rel)).expect("staging symlink");
    }

    /// Gives `rel` to `user` (and their primary group) of the base's `/etc/passwd`.
    fn chown(&self, rel: &str, user: &str) {
        let passwd = std::fs::read_to_string(self.base.join("etc/passwd")).expect("passwd");
        let (uid, gid) = passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&user))
            .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
            .unwrap_or_else(|| panic!("no user {user} in the base's /etc/passwd"));
        std::os::unix::fs::chown(self.dir.join(rel), Some(uid), Some(gid)).expect("staging chown");
    }

    fn layer(&self) -> Layer {
        dir_layer(&self.dir)
    }
}

/// Removes `dir` if it exists.
fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", dir.display()),
    }
}

/// Removes the cached builds of other keys that no test used for a while (other work
/// trees may still use a recent one).
fn remove_unused_keys(root: &Path, key: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == key {
            continue;
        }
        let used = std::fs::metadata(entry.path().join("last-used"))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if used.elapsed().is_ok_and(|age| age > UNUSED_KEY_LIFETIME) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
