//! `inspect`, `ps --filter/--format`, `top`, the prune commands, `system df`, and
//! image garbage collection that keeps what containers use: run for real against
//! `--rootfs` containers and images pulled from the real registry on 127.0.0.1.

mod support;

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/registry.rs"]
mod registry;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use image_build::{busybox_layer, layer, Comp, Entry, Layout};
use image_cli::Env;
use registry::{Format, Registry};
use support::{stderr, stdout, Ccrun, Rootfs};

/// Runs ccrun (private root and state) with `args`.
fn ccrun(c: &Ccrun, args: &[&str]) -> Output {
    c.cmd().args(args).output().expect("spawn ccrun")
}

/// Runs ccrun and asserts success; returns stdout.
fn ok(c: &Ccrun, args: &[&str]) -> String {
    let out = ccrun(c, args);
    assert!(
        out.status.success(),
        "ccrun {args:?}: {}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Runs ccrun with `input` on stdin.
fn with_stdin(cmd: &mut std::process::Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccrun");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait ccrun")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn inspect_shows_a_finished_container_like_docker() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "--name",
            "finished",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "-l",
            "app=shop",
            "--tmpfs",
            "/scratch:size=1m",
            "sh",
            "-c",
            "exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let v = json(&ok(&c, &["inspect", "finished"]));
    let item = &v[0];
    assert_eq!(v.as_array().map(Vec::len), Some(1));
    assert_eq!(item["Name"], "/finished");
    assert_eq!(item["State"]["Status"], "exited");
    assert_eq!(item["State"]["ExitCode"], 3);
    assert_eq!(item["State"]["Running"], false);
    assert_eq!(item["State"]["Pid"], 0);
    assert_eq!(item["Path"], "sh");
    assert_eq!(item["Args"], serde_json::json!(["-c", "exit 3"]));
    assert_eq!(
        item["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "exit 3"])
    );
    assert_eq!(item["Config"]["Labels"]["app"], "shop");
    assert_eq!(item["Config"]["Entrypoint"], serde_json::Value::Null);
    assert_eq!(item["Config"]["WorkingDir"], "/");
    assert_eq!(item["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(item["HostConfig"]["NanoCpus"], 500_000_000);
    assert_eq!(item["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(item["HostConfig"]["Tmpfs"]["/scratch"], "size=1m");
    assert_eq!(item["Mounts"][0]["Type"], "tmpfs");
    assert_eq!(item["Mounts"][0]["Destination"], "/scratch");
    assert_eq!(item["Mounts"].as_array().map(Vec::len), Some(1));
    let id = item["Id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 64);
    let log = item["LogPath"].as_str().expect("log path");
    assert!(log.ends_with(&format!("{id}/container.log")), "{log}");
    // Docker indents by four spaces.
    assert!(ok(&c, &["inspect", "finished"]).starts_with("[\n    {\n        \"Id\""));

    // Templates.
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.State.ExitCode}}", "finished"]),
        "3"
    );
    assert_eq!(
        ok(
            &c,
            &[
                "container",
                "inspect",
                "--format",
                r#"{{.Name}} {{.State.Status}} {{json .Config.Cmd}} {{index .Config.Labels "app"}} {{range .Args}}<{{.}}>{{end}}"#,
                &id[..10],
            ]
        ),
        r#"/finished exited ["sh","-c","exit 3"] shop <-c><exit 3>"#
    );

    // Unknown names: the found ones are printed, the rest reported, exit 1, as Docker does.
    let out = ccrun(&c, &["inspect", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "[]");
    assert_eq!(stderr(&out), "Error: No such object: no-such-thing");
    let out = ccrun(&c, &["inspect", "-f", "{{.Name}}", "finished", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "/finished");
    assert_eq!(stderr(&out), "Error: No such object: ghost");
    let out = ccrun(&c, &["container", "inspect", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: No such container: ghost");
    let out = ccrun(&c, &["inspect", "--type", "image", "finished"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: No such image: finished");

    // A template naming a field that does not exist is ccrun's own error.
    let out = ccrun(&c, &["inspect", "-f", "{{.State.Nope}}", "finished"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("can't evaluate field Nope"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    let out = ccrun(&c, &["inspect", "-f", "{{.Name", "finished"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn ps_filters_and_formats_follow_docker() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    for (name, label, code) in [
        ("web-1", "app=web", "0"),
        ("db-1", "app=db", "3"),
        ("plain", "other=", "3"),
    ] {
        c.run(
            r.path(),
            &[
                "--name",
                name,
                "-l",
                label,
                "sh",
                "-c",
                &format!("exit {code}"),
            ],
        );
    }
    let names = |args: &[&str]| -> Vec<String> {
        let mut full = vec!["ps", "--format", "{{.Names}}"];
        full.extend_from_slice(args);
        let mut v: Vec<String> = ok(&c, &full).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    // A status filter looks at every container, as in Docker.
    assert_eq!(names(&["-f", "status=exited"]), ["db-1", "plain", "web-1"]);
    assert!(names(&[]).is_empty(), "none is running");
    assert!(names(&["-f", "status=running"]).is_empty());
    assert_eq!(names(&["-a", "-f", "name=web"]), ["web-1"]);
    assert_eq!(names(&["-a", "-f", "name=^/db"]), ["db-1"]);
    // Same key: OR.
    assert_eq!(
        names(&["-a", "-f", "name=web", "-f", "name=db"]),
        ["db-1", "web-1"]
    );
    assert_eq!(names(&["-a", "-f", "label=app"]), ["db-1", "web-1"]);
    assert_eq!(names(&["-a", "-f", "label=app=db"]), ["db-1"]);
    // Different keys: AND.
    assert_eq!(
        names(&["-f", "status=exited", "-f", "label=app", "-f", "exited=3"]),
        ["db-1"]
    );
    assert_eq!(names(&["-a", "-f", "exited=3"]), ["db-1", "plain"]);
    assert!(names(&["-a", "-f", "label=app=db", "-f", "name=web"]).is_empty());
    let id = ok(&c, &["ps", "-aq", "--no-trunc", "-f", "name=plain"]);
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(names(&["-a", "-f", &format!("id={}", &id[..6])]), ["plain"]);
    assert_eq!(names(&["-l"]), ["plain"]);
    assert_eq!(names(&["-n", "2"]).len(), 2);

    let out = ok(
        &c,
        &[
            "ps",
            "-a",
            "-f",
            "name=db",
            "--format",
            "{{.Names}}: {{.Status}} {{.Labels}}",
        ],
    );
    assert!(out.starts_with("db-1: Exited (3) "), "{out}");
    assert!(out.ends_with(" ago app=db"), "{out}");
    let out = ok(
        &c,
        &[
            "ps",
            "-a",
            "-f",
            "name=web",
            "--format",
            r"table {{.Names}}\t{{.State}}",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("NAMES") && lines[0].ends_with("STATE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("web-1") && lines[1].ends_with("exited"),
        "{out}"
    );
    let json_line = ok(&c, &["ps", "-a", "-f", "name=web", "--format", "json"]);
    assert_eq!(json(&json_line)["Names"], "web-1");

    for bad in [
        vec!["ps", "-f", "color=red"],
        vec!["ps", "-f", "status=asleep"],
        vec!["ps", "-f", "exited=x"],
        vec!["ps", "--format", "{{.Nope}}", "-a"],
    ] {
        let out = ccrun(&c, &bad);
        assert_eq!(out.status.code(), Some(125), "{bad:?}: {}", stdout(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

/// Waits until `ps` reports the container `name` as running.
fn wait_running(c: &Ccrun, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let filter = format!("name=^{name}$");
    while ok(c, &["ps", "-f", &filter, "--format", "{{.State}}"]) != "running" {
        assert!(Instant::now() < deadline, "{name} is not running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills and removes the named containers when dropped, even after a failed assertion.
struct Removes<'a>(&'a Ccrun, &'a [&'a str]);

impl Drop for Removes<'_> {
    fn drop(&mut self) {
        for name in self.1 {
            let _ = ccrun(self.0, &["rm", "-f", name]);
        }
    }
}

#[test]
fn top_lists_the_processes_of_a_running_container() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let _cleanup = Removes(&c, &["topped", "stopped"]);
    c.run(r.path(), &["--name", "stopped", "true"]);
    let running = c.spawn(
        r.path(),
        &["--name", "topped", "sh", "-c", "sleep 31 & exec sleep 30"],
    );
    wait_running(&c, "topped");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        // The background sleep may not have been forked yet.
        let text = ok(&c, &["top", "topped"]);
        if text.lines().count() == 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{text}"
    );
    assert_eq!(lines.len(), 3, "{text}");
    let init = lines
        .iter()
        .find(|l| l[1] == running.pid.to_string())
        .unwrap_or_else(|| panic!("pid {} not listed: {text}", running.pid));
    assert_eq!(init[6], "00:00:00");
    assert_eq!(init[7..].join(" "), "sleep 30");
    let child = lines
        .iter()
        .find(|l| l[7..].join(" ") == "sleep 31")
        .expect("child");
    assert_eq!(
        child[2],
        running.pid.to_string(),
        "its parent is the init: {text}"
    );
    // Host uids, not the container's root: the user namespace maps it elsewhere.
    assert_ne!(init[0], "root", "{text}");
    assert_eq!(
        ok(&c, &["container", "top", "topped", "-o", "pid"])
            .lines()
            .count(),
        3
    );

    let out = ccrun(&c, &["top", "stopped"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("container stopped is not running"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ccrun(&c, &["top", "ghost"]).status.code(), Some(125));

    drop(running);
}

#[test]
fn container_prune_removes_stopped_containers_only() {
    let (c, r) = (Ccrun::new(), Rootfs::busybox());
    let _cleanup = Removes(&c, &["alive"]);
    c.run(r.path(), &["--name", "done-1", "true"]);
    c.run(r.path(), &["--name", "done-2", "sh", "-c", "exit 9"]);
    let running = c.spawn(r.path(), &["--name", "alive", "sleep", "30"]);
    wait_running(&c, "alive");
    let stopped_ids: Vec<String> = ok(&c, &["ps", "-q", "--no-trunc", "-f", "status=exited"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(stopped_ids.len(), 2);

    // Anything but y leaves everything in place, and says nothing more.
    let out = with_stdin(c.cmd().args(["container", "prune"]), "n\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N]"
    );
    assert_eq!(ok(&c, &["ps", "-aq"]).lines().count(), 3);

    let out = with_stdin(c.cmd().args(["container", "prune"]), "y\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Deleted Containers:\n"), "{text}");
    for id in &stopped_ids {
        assert!(text.contains(id.as_str()), "{text}");
    }
    assert!(
        text.lines()
            .last()
            .unwrap_or("")
            .starts_with("Total reclaimed space: "),
        "{text}"
    );
    assert_eq!(
        ok(&c, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        "alive running"
    );

    // Nothing left to prune: just the total.
    assert_eq!(
        ok(&c, &["container", "prune", "-f"]),
        "Total reclaimed space: 0B"
    );
    assert_eq!(ok(&c, &["ps", "--format", "{{.Names}}"]), "alive");
    drop(running);
}

/// A registry with three small images sharing busybox, each with a layer of its own.
struct Images {
    reg: Registry,
    _layouts: tempfile::TempDir,
    /// Manifest digest of `loose`, pulled by digest so that it has no tag (dangling).
    loose_manifest: String,
}

impl Images {
    fn build() -> Images {
        let reg = Registry::start();
        let layouts = tempfile::tempdir().expect("tempdir");
        let mut layout = Layout::new(&layouts.path().join("oci"));
        let base = busybox_layer();
        let mut loose_manifest = String::new();
        for tag in ["keep", "spare", "loose"] {
            let own = layer(
                &[
                    Entry::Dir("data/", 0o755),
                    Entry::File(format!("data/{tag}"), tag.as_bytes().repeat(1000), 0o644, 0),
                ],
                Comp::Gzip,
            );
            let built = layout.image(&[&base, &own], "amd64", Some(tag));
            reg.push(&layout.dir, tag, &format!("test/{tag}"), Format::Oci);
            if tag == "loose" {
                loose_manifest = built.manifest.to_string();
            }
        }
        Images {
            reg,
            _layouts: layouts,
            loose_manifest,
        }
    }

    fn name(&self, tag: &str) -> String {
        format!("{}/test/{tag}:{tag}", self.reg.addr)
    }
}

/// Removes every container of an environment when dropped.
struct RemovesAll<'a>(&'a Env);

impl Drop for RemovesAll<'_> {
    fn drop(&mut self) {
        for id in image_cli::list(&self.0.root().join("containers")) {
            if id.len() == 64 {
                let _ = self.0.run(&["rm", "-f", &id]);
            }
        }
    }
}

/// The overlay lower directories of a container, from `inspect`.
fn lower_dirs(env: &Env, name: &str) -> Vec<PathBuf> {
    env.ok(&["inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", name])
        .trim()
        .split(':')
        .map(PathBuf::from)
        .collect()
}

fn image_ids(env: &Env) -> Vec<String> {
    let mut ids: Vec<String> = env
        .ok(&["images", "-q", "--no-trunc"])
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

#[test]
fn image_prune_and_gc_keep_what_containers_use() {
    let images = Images::build();
    let env = Env::new();
    let _cleanup = RemovesAll(&env);
    let (keep, spare) = (images.name("keep"), images.name("spare"));
    let loose = format!("{}/test/loose@{}", images.reg.addr, images.loose_manifest);
    env.ok(&["pull", "-q", &spare]);
    env.ok(&["pull", "-q", &loose]);
    let out = env.run(&[
        "run",
        "--name",
        "keeper",
        &keep,
        "sh",
        "-c",
        "echo hi > /written",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id_of = |name: &str| {
        env.ok(&["inspect", "-f", "{{.Id}}", name])
            .trim()
            .to_string()
    };
    let (keep_id, spare_id, loose_id) = (id_of(&keep), id_of(&spare), id_of(&loose));
    assert_eq!(image_ids(&env).len(), 3);
    // Without --type, a name that is no container is looked up as an image.
    let v = json(&env.ok(&["inspect", &spare]));
    assert_eq!(v[0]["Id"], spare_id.as_str());
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Image}}", "keeper"]).trim(),
        keep_id
    );

    let df = env.ok(&["system", "df"]);
    let images_row: Vec<&str> = df
        .lines()
        .find(|l| l.starts_with("Images"))
        .expect("images row")
        .split_whitespace()
        .collect();
    assert_eq!(images_row[1..3], ["3", "1"], "{df}");
    let containers_row = df
        .lines()
        .find(|l| l.starts_with("Containers"))
        .expect("row");
    assert!(
        containers_row.split_whitespace().nth(1) == Some("1"),
        "{df}"
    );
    assert!(env
        .ok(&["system", "df", "-v"])
        .contains("Containers space usage:"));

    // Dangling only: the image pulled by digest goes, tagged ones stay.
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains(&format!("deleted: {loose_id}")), "{out}");
    assert!(out.contains("untagged: "), "{out}");
    assert!(!out.contains(&spare_id) && !out.contains(&keep_id), "{out}");
    let mut left = vec![keep_id.clone(), spare_id.clone()];
    left.sort();
    assert_eq!(image_ids(&env), left);
    // Every image no container uses: spare goes, keep is the container's.
    let out = with_stdin(&mut env.cmd(&["image", "prune", "-a"]), "y\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("deleted: {spare_id}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(image_ids(&env), std::slice::from_ref(&keep_id));
    let layers_left = env.list("layers").len();
    assert_eq!(layers_left, 2, "busybox and keep's own layer");

    // rmi -f of the image a stopped container uses: the image goes, its layers stay
    // under the container, through rmi's gc and later prunes alike.
    let lower = lower_dirs(&env, "keeper");
    assert_eq!(lower.len(), 2);
    let out = env.ok(&["rmi", "-f", &keep]);
    assert!(out.contains(&format!("Deleted: {keep_id}")), "{out}");
    assert!(image_ids(&env).is_empty());
    for dir in &lower {
        assert!(
            dir.is_dir(),
            "{} was removed under the container",
            dir.display()
        );
    }
    env.ok(&["image", "prune", "-a", "-f"]);
    env.ok(&["image", "prune", "-f"]);
    for dir in &lower {
        assert!(
            dir.is_dir(),
            "{} was pruned under the container",
            dir.display()
        );
    }
    assert!(env
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .contains("keeper"));

    // Once the container is gone, a prune frees them.
    env.ok(&["rm", "keeper"]);
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(!out.contains("Deleted Images:"), "{out}");
    assert!(!out.trim().ends_with(" 0B"), "space was reclaimed: {out}");
    for dir in &lower {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(env.list("layers").is_empty(), "{:?}", env.list("layers"));
    assert!(
        env.list("blobs/sha256").is_empty(),
        "{:?}",
        env.list("blobs/sha256")
    );
}

#[test]
fn system_prune_asks_then_removes_containers_and_images() {
    let images = Images::build();
    let env = Env::new();
    let _cleanup = RemovesAll(&env);
    let spare = images.name("spare");
    let out = env.run(&["run", "--name", "once", &spare, "sh", "-c", "exit 0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_stdin(&mut env.cmd(&["system", "prune", "-a"]), "N\n");
    assert!(out.status.success());
    assert!(
        stdout(&out).starts_with("WARNING! This will remove:\n  - all stopped containers\n  - all images without at least one container associated to them\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(image_ids(&env).len(), 1);
    let out = env.ok(&["system", "prune", "-a", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains("\n\nDeleted Images:\nuntagged: "), "{out}");
    assert!(out
        .trim_end()
        .lines()
        .last()
        .unwrap_or("")
        .starts_with("Total reclaimed space: "));
    assert!(image_ids(&env).is_empty());
    assert!(env.ok(&["ps", "-aq"]).is_empty());
    assert!(env.list("layers").is_empty());
}
