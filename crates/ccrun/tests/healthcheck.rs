//! Healthchecks end to end: an image whose config has a `HEALTHCHECK`, pushed to the
//! real registry (Debian's docker-registry) on 127.0.0.1 and run detached (the
//! monitor runs the checks) and in the foreground (a helper of the foreground ccrun
//! does); `--health-*` and `--no-healthcheck` over it; `State.Health` and
//! `Config.Healthcheck` in `inspect`, `(healthy)` in `ps`, `ps --filter health=`,
//! `wait --condition`, timeouts, output, restarts; and `create --pull always -q`.
//!
//! Its own main (no libtest harness): the registry and image are built once, shared
//! by all tests, and torn down at the end even when tests fail. Intervals are short
//! (100-300 ms) so that the whole file takes seconds.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/registry.rs"]
mod registry;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use image_build::{base_layer, Layout};
use image_cli::Env;
use registry::{Format, Registry};

/// The registry with `test/health:health`, whose check passes once /tmp/ready exists.
struct Images {
    reg: Registry,
    _layouts: tempfile::TempDir,
}

impl Images {
    fn build() -> Images {
        let reg = Registry::start();
        let layouts = tempfile::tempdir().expect("tempdir");
        let mut layout = Layout::new(&layouts.path().join("oci"));
        let base = base_layer();
        layout.image_with_config(
            &[&base],
            "amd64",
            Some("health"),
            serde_json::json!({
                "Env": ["PATH=/bin"],
                "Cmd": ["sh", "-c", "sleep 0.6; touch /tmp/ready; exec sleep 60"],
                "Healthcheck": {
                    "Test": ["CMD-SHELL", "test -e /tmp/ready && echo ready"],
                    "Interval": 150_000_000u64,
                    "Timeout": 2_000_000_000u64,
                    "Retries": 50,
                },
            }),
        );
        reg.push(&layout.dir, "health", "test/health", Format::Oci);
        Images {
            reg,
            _layouts: layouts,
        }
    }
}

/// A private store and state root; containers a failed test left are removed on drop.
struct Ctx<'a> {
    env: Env,
    images: &'a Images,
}

impl Ctx<'_> {
    fn new(images: &Images) -> Ctx<'_> {
        Ctx {
            env: Env::new(),
            images,
        }
    }

    fn image(&self) -> String {
        format!("{}/test/health:health", self.images.reg.addr)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env.run(args)
    }

    /// Runs ccrun, asserting success; returns trimmed stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn inspect(&self, template: &str, name: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
    }

    /// `ccrun wait --condition CONDITION NAME`, which must end within `timeout`.
    fn wait_condition(&self, condition: &str, name: &str, timeout: Duration) -> Output {
        let mut child = self
            .env
            .cmd(&["wait", "--condition", condition, name])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wait");
        let deadline = Instant::now() + timeout;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wait --condition {condition} {name} did not end in {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("wait output")
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        let dir = self.env.root().join("containers");
        for id in image_cli::list(&dir).into_iter().filter(|n| n.len() == 64) {
            let _ = self.run(&["rm", "-f", &id]);
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// Polls `f` every 20 ms until it holds; panics naming `what` after `timeout`.
fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn image_healthcheck_goes_from_starting_to_healthy_everywhere(images: &Images) {
    let c = Ctx::new(images);
    let image = c.image();
    c.ok(&["run", "-d", "--name", "web", &image]);
    // Not ready for 0.6 s, and 50 retries: starting, whatever ran already.
    assert_eq!(c.inspect("{{.State.Health.Status}}", "web"), "starting");
    let status = c.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(status.ends_with("(health: starting)"), "{status}");
    assert_eq!(c.ok(&["ps", "-q", "--filter", "health=starting"]).len(), 12);
    let out = c.wait_condition("healthy", "web", Duration::from_secs(20));
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "-1".into())
    );
    let status = c.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(status.ends_with("(healthy)"), "{status}");
    assert_eq!(c.ok(&["ps", "-q", "--filter", "health=starting"]), "");
    assert_eq!(c.ok(&["ps", "-q", "--filter", "health=healthy"]).len(), 12);
    let health: serde_json::Value =
        serde_json::from_str(&c.inspect("{{json .State.Health}}", "web")).expect("json");
    assert_eq!(health["FailingStreak"], 0);
    let log = health["Log"].as_array().expect("Log");
    assert!(!log.is_empty() && log.len() <= 5, "{health}");
    let last = log.last().expect("a result");
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "ready\n");
    assert!(last["Start"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(last["End"].as_str().is_some_and(|s| s.ends_with('Z')));
    let config: serde_json::Value =
        serde_json::from_str(&c.inspect("{{json .Config.Healthcheck}}", "web")).expect("json");
    assert_eq!(config["Test"][0], "CMD-SHELL");
    assert_eq!(config["Interval"], 150_000_000u64);
    // More checks keep at most five results.
    wait_until("five results", Duration::from_secs(10), || {
        c.inspect("{{len .State.Health.Log}}", "web") == "5"
    });
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.inspect("{{len .State.Health.Log}}", "web"), "5");
    // A restart starts over.
    c.ok(&["restart", "-t", "0", "web"]);
    assert_eq!(c.inspect("{{.State.Health.Status}}", "web"), "starting");
    c.ok(&["rm", "-f", "web"]);
}

fn flags_override_the_image_and_no_healthcheck_disables_it(images: &Images) {
    let c = Ctx::new(images);
    let image = c.image();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo sick >&2; exit 3",
        "--health-retries",
        "2",
        &image,
    ]);
    let out = c.wait_condition("unhealthy", "sick", Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let health: serde_json::Value =
        serde_json::from_str(&c.inspect("{{json .State.Health}}", "sick")).expect("json");
    assert_eq!(health["Status"], "unhealthy");
    assert!(health["FailingStreak"].as_u64() >= Some(2), "{health}");
    let last = health["Log"]
        .as_array()
        .and_then(|l| l.last())
        .cloned()
        .expect("a result");
    assert_eq!(
        (last["ExitCode"].as_i64(), last["Output"].as_str()),
        (Some(3), Some("sick\n"))
    );
    // The flags' command, the image's interval.
    let config: serde_json::Value =
        serde_json::from_str(&c.inspect("{{json .Config.Healthcheck}}", "sick")).expect("json");
    assert_eq!(config["Test"][1], "echo sick >&2; exit 3");
    assert_eq!(
        (config["Interval"].as_u64(), config["Retries"].as_u64()),
        (Some(150_000_000), Some(2))
    );
    let status = c.ok(&["ps", "--filter", "name=sick", "--format", "{{.Status}}"]);
    assert!(status.ends_with("(unhealthy)"), "{status}");

    c.ok(&["run", "-d", "--name", "plain", "--no-healthcheck", &image]);
    let details: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "plain"])).expect("json");
    assert!(details[0]["State"].get("Health").is_none(), "{details}");
    assert!(
        details[0]["Config"].get("Healthcheck").is_none(),
        "{details}"
    );
    let none = c.ok(&["ps", "--filter", "health=none", "--format", "{{.Names}}"]);
    assert_eq!(none, "plain");
    let out = c.run(&["wait", "--condition", "healthy", "plain"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("has no healthcheck"),
        "{}",
        text(&out.stderr)
    );
    let out = c.run(&["ps", "--filter", "health=sickly"]);
    assert_eq!(out.status.code(), Some(125));
    c.ok(&["rm", "-f", "sick", "plain"]);
}

fn timeouts_count_as_failures_and_a_stopped_container_ends_the_wait(images: &Images) {
    let c = Ctx::new(images);
    let image = c.image();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "sleep 10",
        "--health-timeout",
        "200ms",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        &image,
    ]);
    let out = c.wait_condition("unhealthy", "slow", Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let last = c.inspect("{{json (index .State.Health.Log 0)}}", "slow");
    let last: serde_json::Value = serde_json::from_str(&last).expect("json");
    assert_eq!(last["ExitCode"], -1);
    assert_eq!(last["Output"], "Health check exceeded timeout (200ms)");
    // No check is left running in the container beyond its timeout.
    let procs = c.ok(&["exec", "slow", "ps", "-o", "args"]);
    assert!(
        procs.lines().filter(|l| l.contains("sleep 10")).count() <= 1,
        "{procs}"
    );

    // A container that stops before it is healthy ends the wait with an error.
    c.ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "--health-cmd",
        "exit 1",
        &image,
        "sleep",
        "0.5",
    ]);
    let out = c.wait_condition("healthy", "brief", Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("stopped before it was healthy"),
        "{}",
        text(&out.stderr)
    );
    c.ok(&["rm", "-f", "slow", "brief"]);
}

fn foreground_containers_run_their_checks_too(images: &Images) {
    let c = Ctx::new(images);
    let image = c.image();
    let child = c
        .env
        .cmd(&[
            "run",
            "--name",
            "fg",
            &image,
            "sh",
            "-c",
            "touch /tmp/ready; sleep 3; echo done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn foreground run");
    // It pulls first.
    wait_until("the container", Duration::from_secs(20), || {
        !c.ok(&["ps", "-a", "-q", "--filter", "name=^fg$"])
            .is_empty()
    });
    let out = c.wait_condition("healthy", "fg", Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = child.wait_with_output().expect("foreground run");
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "done".into())
    );
    // The helper went with the container: no `healthcheck-run` of this store is left.
    let root = c.env.root().display().to_string();
    let helpers = || {
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("healthcheck-run") && c.contains(&root))
            .count()
    };
    assert_eq!(helpers(), 0);
    assert_eq!(c.inspect("{{.State.Health.Status}}", "fg"), "healthy");
    assert_eq!(c.inspect("{{.State.Status}}", "fg"), "exited");
    c.ok(&["rm", "fg"]);
}

fn create_pulls_quietly_with_pull_always(images: &Images) {
    let c = Ctx::new(images);
    let image = c.image();
    let out = c.run(&["create", "--pull", "always", "-q", "--name", "made", &image]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).len(),
        64,
        "only the id: {}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "", "quiet pull");
    let out = c.run(&[
        "create",
        "--pull",
        "never",
        "--name",
        "made2",
        "127.0.0.1:1/none:x",
    ]);
    assert_eq!(out.status.code(), Some(125));
    // Created, never started: no health yet, but the image's healthcheck.
    let details: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "made"])).expect("json");
    assert!(details[0]["State"].get("Health").is_none(), "{details}");
    assert_eq!(details[0]["Config"]["Healthcheck"]["Retries"], 50);
    c.ok(&["rm", "made"]);
}

type Test = fn(&Images);

fn main() {
    ccrun_testkit::require_root();
    let tests: &[(&str, Test)] = &[
        (
            "image_healthcheck_goes_from_starting_to_healthy_everywhere",
            image_healthcheck_goes_from_starting_to_healthy_everywhere,
        ),
        (
            "flags_override_the_image_and_no_healthcheck_disables_it",
            flags_override_the_image_and_no_healthcheck_disables_it,
        ),
        (
            "timeouts_count_as_failures_and_a_stopped_container_ends_the_wait",
            timeouts_count_as_failures_and_a_stopped_container_ends_the_wait,
        ),
        (
            "foreground_containers_run_their_checks_too",
            foreground_containers_run_their_checks_too,
        ),
        (
            "create_pulls_quietly_with_pull_always",
            create_pulls_quietly_with_pull_always,
        ),
    ];
    harness::run(tests, 4, Images::build);
}
