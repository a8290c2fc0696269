//! Real applications in ccrun's defaults: nginx, redis and postgres images configured
//! like their official Docker Hub images, built from Debian's packages (see
//! support/app_images.rs), pushed to the real registry (Debian's docker-registry) on
//! 127.0.0.1 and run with `ccrun run -d` and only the flags a Docker user would type
//! (`-p`, `-v`, `--name`, `--network`, `-e`): a private user namespace, the default
//! bridge or a user-defined network, each test in a network namespace of its own.
//!
//! Its own main (no libtest harness): the registry is started once for all tests and
//! stopped at the end even when tests fail; the tests run one after the other, each
//! with its own store, so timings are not skewed by the others on 2 cores. The first
//! run on a machine builds the images (a few minutes); later ones take about 40 s.

mod support;

#[path = "support/app_images.rs"]
mod app_images;
#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/registry.rs"]
mod registry;

use std::time::{Duration, Instant};

use app_images::{AppImages, APPS, NGINX_PAGE};
use registry::{Format, Registry};
use support::{stderr, stdout, Ccrun};

/// How soon a restarted server must answer again: the time to start nginx or redis,
/// which Docker users see answering at once (their address and MAC stay the same).
const BACK_WITHIN: Duration = Duration::from_secs(2);

/// How long a first start may take: postgres runs initdb first.
const FIRST_START: Duration = Duration::from_secs(60);

/// The registry holding the images, shared by all tests.
struct Apps {
    reg: Registry,
}

impl Apps {
    fn start() -> Apps {
        let images = AppImages::get();
        eprintln!("application images:\n{}", images.versions);
        let reg = Registry::start();
        for app in APPS {
            reg.push(&images.layout, app, &format!("library/{app}"), Format::Oci);
        }
        Apps { reg }
    }

    /// The reference of an application's image.
    fn image(&self, app: &str) -> String {
        format!("{}/library/{app}:{app}", self.reg.addr)
    }
}

/// One test's ccrun: its own store and state, every command in a throw-away network
/// namespace, the application's image pulled into the store.
struct App {
    c: Ccrun,
    image: String,
}

impl App {
    /// Pulls `app`'s image outside the namespace (the registry is on the host's
    /// loopback), as a Docker daemon pulls from its own.
    fn new(apps: &Apps, app: &str) -> App {
        let c = Ccrun::in_netns();
        let image = apps.image(app);
        let out = c.ccrun_outside_netns(&["pull", "-q", &image]);
        assert!(out.status.success(), "pull {image}: {}", stderr(&out));
        App { c, image }
    }

    /// `ccrun ARGS`, asserted to succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.c.ccrun(args);
        assert!(
            out.status.success(),
            "ccrun {args:?}: {}\n{}\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `ccrun run -d OPTIONS IMAGE ARGS`, asserted to succeed.
    fn run_d(&self, options: &[&str], args: &[&str]) {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(options);
        all.push(&self.image);
        all.extend_from_slice(args);
        self.ok(&all);
    }

    /// Runs `ccrun ARGS` until its stdout is `want`; panics with the last answer when
    /// `timeout` has passed, also when a try that began in time answered too late.
    fn until(&self, timeout: Duration, args: &[&str], want: &str) {
        self.poll(timeout, args, want, None);
    }

    /// Like [`App::until`] for the first answers of a starting server, failing at once
    /// when its container `name` has ended (a failed start need not wait it out).
    fn until_up(&self, name: &str, timeout: Duration, args: &[&str], want: &str) {
        self.poll(timeout, args, want, Some(name));
    }

    fn poll(&self, timeout: Duration, args: &[&str], want: &str, server: Option<&str>) {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let out = self.c.ccrun(args);
            if stdout(&out) == want {
                assert!(
                    Instant::now() <= deadline,
                    "ccrun {args:?} answered {want:?} only after {:?}, not within {timeout:?}",
                    started.elapsed()
                );
                return;
            }
            if let Some(name) = server {
                let status = self.inspect("{{.State.Status}}", name);
                assert_eq!(status, "running", "{name} ended while starting");
            }
            assert!(
                Instant::now() < deadline,
                "ccrun {args:?} did not answer {want:?} within {timeout:?}; last: {}\n{}\n{}",
                out.status,
                stdout(&out),
                stderr(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ccrun inspect -f TEMPLATE NAME`.
    fn inspect(&self, template: &str, name: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
    }

    /// Waits until `ccrun logs NAME` shows `needle` on its stderr if `on_stderr`, else
    /// on its stdout: the monitor writes the log as output arrives.
    fn wait_for_log(&self, name: &str, needle: &str, on_stderr: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.c.ccrun(&["logs", name]);
            let text = if on_stderr {
                stderr(&out)
            } else {
                stdout(&out)
            };
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not in the {} of `ccrun logs {name}`:\n--- stdout\n{}\n--- stderr\n{}",
                if on_stderr { "stderr" } else { "stdout" },
                stdout(&out),
                stderr(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fetches `url` from the test's namespace with curl (each try bounded to 1 s, so
    /// that a connection going nowhere cannot outlast `timeout`) until it answers.
    fn fetch(&self, timeout: Duration, url: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self
                .c
                .netns()
                .command("curl")
                .args(["-fsS", "--max-time", "1", url])
                .output()
                .expect("run curl");
            if out.status.success() {
                return String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{url} did not answer within {timeout:?}: {}",
                stderr(&out)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for App {
    /// A failing test shows what its containers said; Ccrun's drop then removes them.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let names = self.c.ccrun(&["ps", "-a", "--format", "{{.Names}}"]);
        for name in stdout(&names).lines() {
            let logs = self.c.ccrun(&["logs", "--tail", "40", name]);
            eprintln!(
                "--- ccrun logs {name}: stdout\n{}\n--- ccrun logs {name}: stderr\n{}",
                stdout(&logs),
                stderr(&logs)
            );
        }
    }
}

/// nginx serves its page through a published port as soon as it runs, logs the
/// requests to `ccrun logs` through its /dev/stdout and /dev/stderr symlinks, and
/// serves again right after `ccrun restart`.
fn nginx_serves_logs_and_comes_back_after_restart(apps: &mut Apps) {
    let t = App::new(apps, "nginx");
    t.run_d(&["--name", "web", "-p", "8080:80"], &[]);
    let page = t.fetch(
        Duration::from_secs(10),
        "http://127.0.0.1:8080/?probe=first",
    );
    assert_eq!(page, NGINX_PAGE);
    // access.log -> /dev/stdout, error.log -> /dev/stderr.
    t.wait_for_log("web", "\"GET /?probe=first HTTP/1.1\" 200", false);
    // A directory without an index is refused, and nginx logs that as an error.
    let refused =
        t.c.netns()
            .command("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg("http://127.0.0.1:8080/empty/")
            .output()
            .expect("run curl");
    assert_eq!(stdout(&refused), "403", "{}", stderr(&refused));
    t.wait_for_log(
        "web",
        "directory index of \"/var/www/html/empty/\" is forbidden",
        true,
    );

    t.ok(&["restart", "web"]);
    let page = t.fetch(BACK_WITHIN, "http://127.0.0.1:8080/?probe=restarted");
    assert_eq!(page, NGINX_PAGE);
    t.wait_for_log("web", "\"GET /?probe=restarted HTTP/1.1\" 200", false);
    t.ok(&["rm", "-f", "web"]);
}

/// The arguments that make redis persist every write (its documented way).
const REDIS_PERSISTENT: [&str; 5] = [
    "redis-server",
    "--protected-mode",
    "no",
    "--appendonly",
    "yes",
];

/// redis, run as user redis by its entrypoint, keeps what it wrote on a named volume
/// when its container is removed with `rm -f` (SIGKILL: only what reached the disk
/// counts), and a new container on that volume serves it; it gets the file limit
/// its maxclients needs.
fn redis_keeps_its_data_on_a_named_volume_across_rm_f(apps: &mut Apps) {
    let t = App::new(apps, "redis");
    t.run_d(
        &["--name", "cache", "-v", "redisdata:/data"],
        &REDIS_PERSISTENT,
    );
    t.until_up(
        "cache",
        FIRST_START,
        &["exec", "cache", "redis-cli", "ping"],
        "PONG",
    );
    let redis_uid = t.ok(&["exec", "cache", "id", "-u", "redis"]);
    let status = t.ok(&["exec", "cache", "cat", "/proc/1/status"]);
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    assert_eq!(
        uids.split_whitespace().collect::<Vec<_>>(),
        [redis_uid.as_str(); 4],
        "redis-server runs as redis"
    );
    assert_eq!(
        t.ok(&["exec", "cache", "redis-cli", "set", "greeting", "kept"]),
        "OK"
    );
    // What redis wrote in the volume is its own.
    assert_eq!(
        t.ok(&["exec", "cache", "stat", "-c", "%U", "/data/appendonlydir"]),
        "redis"
    );
    t.ok(&["rm", "-f", "cache"]);
    t.run_d(
        &["--name", "cache2", "-v", "redisdata:/data"],
        &REDIS_PERSISTENT,
    );
    t.until_up(
        "cache2",
        FIRST_START,
        &["exec", "cache2", "redis-cli", "get", "greeting"],
        "kept",
    );
    // redis raises its soft file limit to maxclients + 32 if the hard limit allows,
    // else it shrinks maxclients (and warns); Docker's default hard limit allows it.
    assert_eq!(
        t.ok(&["exec", "cache2", "redis-cli", "config", "get", "maxclients"]),
        "maxclients\n10000"
    );
    t.ok(&["rm", "-f", "cache2"]);
    t.ok(&["volume", "rm", "redisdata"]);
}

/// A client container finds the redis server by name on a user-defined network, with
/// the redis-cli of the same image, and keeps finding it after the server restarts
/// (which saves on its stop signal and reloads) and after the client restarts.
fn redis_is_reached_by_name_across_restarts(apps: &mut Apps) {
    let t = App::new(apps, "redis");
    t.ok(&["network", "create", "appnet"]);
    t.run_d(&["--name", "cache", "--network", "appnet"], &[]);
    // A client that idles until told to stop (as PID 1, `sleep` would ignore SIGTERM
    // and make every stop wait for the timeout and SIGKILL).
    t.run_d(
        &["--name", "client", "--network", "appnet"],
        &["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"],
    );
    // Each try bounded to 1 s: a connection to a stale address or MAC would wait for
    // TCP's retransmissions, long past any deadline.
    let from_client = |command: &[&'static str]| -> Vec<&'static str> {
        let cli = ["exec", "client", "timeout", "1", "redis-cli", "-h", "cache"];
        [&cli[..], command].concat()
    };
    let get = from_client(&["get", "k"]);
    let set = from_client(&["set", "k", "v1"]);
    t.until_up("cache", FIRST_START, &set, "OK");
    assert_eq!(t.ok(&get), "v1");

    t.ok(&["restart", "cache"]);
    t.until(BACK_WITHIN, &get, "v1");

    t.ok(&["restart", "client"]);
    t.until(BACK_WITHIN, &get, "v1");

    // A new container finds it too.
    let new_client = ["run", "--rm", "--network", "appnet", &t.image];
    let new_client = [&new_client[..], &["redis-cli", "-h", "cache", "get", "k"]].concat();
    assert_eq!(t.ok(&new_client), "v1");
    t.ok(&["rm", "-f", "-v", "client", "cache"]);
    t.ok(&["network", "rm", "appnet"]);
}

/// The superuser's password of the postgres tests.
const PG_PASSWORD: &str = "app-test-secret";

/// postgres with its data directory on `volume` (the `-v` argument): initialised on
/// first start by the entrypoint, reached with the password over the network, and its
/// rows intact after `stop`/`start` (a clean shutdown on SIGINT, exit 0) and after a
/// SIGKILL of its main process from the host and `start` (crash recovery). Returns
/// the test's ccrun for more checks.
fn postgres_keeps_its_rows(apps: &Apps, volume: &str) -> App {
    let t = App::new(apps, "postgres");
    let env = format!("POSTGRES_PASSWORD={PG_PASSWORD}");
    t.run_d(&["--name", "db", "-e", &env, "-v", volume], &[]);
    let psql = |sql: &'static str| -> [&'static str; 8] {
        ["exec", "db", "psql", "-U", "postgres", "-qAt", "-c", sql]
    };
    let count = psql("select count(*), sum(n) from t");
    t.until_up("db", FIRST_START, &psql("select 1"), "1");
    t.ok(&psql(
        "create table t (n int); insert into t select generate_series(1, 1000)",
    ));
    assert_eq!(t.ok(&count), "1000|500500");

    // From another container on the default bridge, with the password.
    let ip = t.inspect("{{.NetworkSettings.IPAddress}}", "db");
    let pgpassword = format!("PGPASSWORD={PG_PASSWORD}");
    assert_eq!(
        t.ok(&[
            "run",
            "--rm",
            "-e",
            &pgpassword,
            &t.image,
            "psql",
            "-h",
            &ip,
            "-U",
            "postgres",
            "-Atc",
            "select count(*) from t",
        ]),
        "1000"
    );

    t.ok(&["stop", "db"]);
    assert_eq!(
        t.inspect("{{.State.ExitCode}}", "db"),
        "0",
        "a clean shutdown"
    );
    t.ok(&["start", "db"]);
    t.until_up("db", FIRST_START, &count, "1000|500500");

    let pid: i32 = t
        .inspect("{{.State.Pid}}", "db")
        .parse()
        .expect("the container's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 the container's main process");
    t.until(
        Duration::from_secs(10),
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "db",
        ],
        "exited 137",
    );
    t.ok(&["start", "db"]);
    t.until_up("db", FIRST_START, &count, "1000|500500");
    t.wait_for_log(
        "db",
        "database system was not properly shut down; automatic recovery in progress",
        true,
    );
    t
}

/// postgres's data on a named volume.
fn postgres_keeps_its_rows_on_a_named_volume(apps: &mut Apps) {
    let t = postgres_keeps_its_rows(apps, "pgdata:/var/lib/postgresql/data");
    t.ok(&["rm", "-f", "db"]);
    t.ok(&["volume", "rm", "pgdata"]);
}

/// postgres's data on an idmapped bind mount of a host directory: the files there
/// carry the container's own uids (postgres's, not a shifted host uid).
fn postgres_keeps_its_rows_on_an_idmapped_bind_mount(apps: &mut Apps) {
    let host = tempfile::Builder::new()
        .prefix("ccrun-app-pgdata-")
        .tempdir()
        .expect("host dir");
    // The bind source must be reachable by the container's unprivileged root.
    ccrun_testkit::set_mode(host.path(), 0o755);
    let volume = format!("{}:/var/lib/postgresql/data:idmap", host.path().display());
    let t = postgres_keeps_its_rows(apps, &volume);
    let postgres_uid: u32 = t
        .ok(&["exec", "db", "id", "-u", "postgres"])
        .parse()
        .expect("uid");
    let owner = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(host.path().join("PG_VERSION")).expect("PG_VERSION on the host"),
    );
    assert_eq!(
        owner, postgres_uid,
        "PGDATA's files are postgres's on the host"
    );
    t.ok(&["rm", "-f", "db"]);
}

/// Puts the tests' temporary files (stores and state, the registry's storage, bind
/// sources) on a tmpfs: removing a store holding an unpacked application image (some
/// 400 MB) from this machine's disk, mounted with `discard`, takes about 20 s, from a
/// tmpfs a fraction of one. The tmpfs is mounted on a directory of its own, made the
/// temporary directory (`TMPDIR`) of this process and its children, in a private mount
/// namespace that ccrun, its monitors and the containers share as this process's
/// children: it shows nowhere else and is gone with them however the run ends. The
/// build's binaries and the image cache stay visible wherever they are (a checkout
/// below /tmp included). Returns the directory.
fn scratch_on_tmpfs() -> std::path::PathBuf {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let dir = std::env::temp_dir().join(format!("ccrun-apps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    // Still single-threaded here, as unsharing CLONE_NEWNS (with CLONE_FS) needs.
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare the mount namespace");
    // Nothing mounted here propagates to the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make mounts private");
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=8g,mode=1777"),
    )
    .expect("mount a tmpfs on the scratch directory");
    // Single-threaded still: nothing reads the environment concurrently.
    std::env::set_var("TMPDIR", &dir);
    dir
}

/// Detaches the scratch tmpfs and removes its (empty) mount point.
fn remove_scratch(dir: &std::path::Path) {
    let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(dir);
}

fn main() {
    ccrun_testkit::require_root();
    let tests: &[ccrun_testkit::NamedTest<Apps>] = &[
        (
            "nginx_serves_logs_and_comes_back_after_restart",
            nginx_serves_logs_and_comes_back_after_restart,
        ),
        (
            "redis_keeps_its_data_on_a_named_volume_across_rm_f",
            redis_keeps_its_data_on_a_named_volume_across_rm_f,
        ),
        (
            "redis_is_reached_by_name_across_restarts",
            redis_is_reached_by_name_across_restarts,
        ),
        (
            "postgres_keeps_its_rows_on_a_named_volume",
            postgres_keeps_its_rows_on_a_named_volume,
        ),
        (
            "postgres_keeps_its_rows_on_an_idmapped_bind_mount",
            postgres_keeps_its_rows_on_an_idmapped_bind_mount,
        ),
    ];
    // `cargo test NAME` passes NAME to every test binary: build nothing for no test.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f));
    if !tests.iter().any(|(name, _)| selected(name)) {
        println!("no tests selected");
        return;
    }
    let scratch = scratch_on_tmpfs();
    let mut apps = Apps::start();
    let tally = ccrun_testkit::run_in_process(tests, &mut apps);
    // The registry and the scratch space go before exit, which skips destructors.
    drop(apps);
    remove_scratch(&scratch);
    tally.finish();
}
