//! The commands of issue 15 that need image containers, end to end against the real
//! registry on 127.0.0.1: `diff` (the snapshot's upper directory against the layers),
//! `image history`, and `cp`/`export` of overlay snapshots through the user
//! namespace's idmapped layers, running and stopped; and the image events.
//!
//! Its own main (see `support/harness.rs`): the registry is started once and stopped
//! at the end even when tests fail.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/registry.rs"]
mod registry;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Stdio;

use image_build::{layer, Comp, Entry, Layout};
use image_cli::Env;
use registry::{Format, Registry};

/// The registry holding `test/app:app`: busybox, then a second layer, with a
/// history of three steps (one without a layer).
struct Images {
    reg: Registry,
    _layouts: tempfile::TempDir,
}

const LONG_STEP: &str =
    "/bin/sh -c echo a step whose command is longer than forty-five characters > /usr/data";

impl Images {
    fn build() -> Images {
        let reg = Registry::start();
        let layouts = tempfile::tempdir().expect("tempdir");
        let mut layout = Layout::new(&layouts.path().join("oci"));
        let bb = std::fs::read(image_build::busybox_path()).expect("read busybox");
        let mut entries = vec![
            Entry::Dir("bin/", 0o755),
            Entry::File("bin/busybox".into(), bb, 0o755, 0),
            Entry::Dir("etc/", 0o755),
            Entry::File(
                "etc/passwd".into(),
                b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
                0o644,
                0,
            ),
            Entry::File("etc/remove-me".into(), b"doomed\n".to_vec(), 0o644, 0),
            Entry::Dir("opt/", 0o755),
            Entry::Dir("opt/old/", 0o755),
            Entry::File("opt/old/data".into(), b"old\n".to_vec(), 0o644, 0),
            Entry::Dir("tmp/", 0o1777),
        ];
        for applet in ["sh", "cat", "echo", "rm", "stat", "sleep", "mkdir", "chown"] {
            entries.push(Entry::Raw(
                tar::EntryType::Symlink,
                format!("bin/{applet}"),
                "busybox".into(),
                Vec::new(),
            ));
        }
        let base = layer(&entries, Comp::Gzip);
        let second = layer(
            &[
                Entry::Dir("usr/", 0o755),
                Entry::File("usr/data".into(), b"data\n".to_vec(), 0o644, 0),
            ],
            Comp::Gzip,
        );
        let history = serde_json::json!([
            {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:busybox in /", "comment": "the base"},
            {"created": "2024-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
            {"created": "2024-01-03T00:00:00Z", "created_by": LONG_STEP},
        ]);
        layout.image_with_history(
            &[&base, &second],
            "amd64",
            Some("app"),
            serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]}),
            Some(history),
        );
        reg.push(&layout.dir, "app", "test/app", Format::Oci);
        Images {
            reg,
            _layouts: layouts,
        }
    }

    fn image(&self) -> String {
        format!("{}/test/app:app", self.reg.addr)
    }
}

/// A private store; whatever a failed test left running is removed on drop.
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

    fn upper(&self, name: &str) -> PathBuf {
        let id = self.ok(&["inspect", "-f", "{{.Id}}", name]);
        self.env.root().join("containers").join(id).join("upper")
    }

    /// The host uid and gid of container `name`'s root: the first entries of its
    /// `config.json` mappings (its own range under `--userns auto`).
    fn root_on_host(&self, name: &str) -> (u32, u32) {
        let id = self.ok(&["inspect", "-f", "{{.Id}}", name]);
        let path = self
            .env
            .root()
            .join("containers")
            .join(id)
            .join("config.json");
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("config.json")).expect("JSON");
        let first = |key: &str| {
            config["linux"][key][0]["hostID"]
                .as_u64()
                .expect("a user-namespace mapping") as u32
        };
        (first("uidMappings"), first("gidMappings"))
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

fn diff_lists_what_the_container_changed(images: &Images) {
    let c = Ctx::new();
    c.ok(&["run", "-d", "--name", "dd", &images.image(), "sleep", "100"]);
    c.ok(&[
        "exec", "dd", "sh", "-c",
        "echo new > /added; echo more >> /etc/passwd; rm /etc/remove-me; rm -r /opt/old; mkdir /newdir",
    ]);
    let diff = c.ok(&["diff", "dd"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "A /added",
        "C /etc",
        "C /etc/passwd",
        "D /etc/remove-me",
        "C /opt",
        "D /opt/old",
        "A /newdir",
    ] {
        assert!(lines.contains(&want), "{want} in {diff}");
    }
    for engine in [
        "/proc",
        "/sys",
        "/dev",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    ] {
        assert!(
            !lines.iter().any(|l| l.ends_with(engine)),
            "{engine} in {diff}"
        );
    }
    // The upper directory outlives the process.
    c.ok(&["stop", "-t", "0", "dd"]);
    assert_eq!(c.ok(&["container", "diff", "dd"]), diff);
    // A fresh container has nothing to show.
    c.ok(&["create", "--name", "fresh", &images.image()]);
    assert_eq!(c.ok(&["diff", "fresh"]), "");
}

fn history_lists_the_build_steps_newest_first(images: &Images) {
    let c = Ctx::new();
    c.ok(&["pull", "-q", &images.image()]);
    let id = c.ok(&["image", "inspect", "-f", "{{.Id}}", &images.image()]);
    let table = c.ok(&["image", "history", &images.image()]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    for column in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(rows[0].contains(column), "{table}");
    }
    let short = &id.trim_start_matches("sha256:")[..12];
    assert!(
        rows[1].starts_with(short),
        "the newest step is the image: {table}"
    );
    assert!(rows[1].contains("…"), "long steps are cut: {table}");
    assert!(
        rows[2].starts_with("<missing>") && rows[2].contains("0B"),
        "{table}"
    );
    assert!(rows[3].contains("the base"), "{table}");
    let formatted = c.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
        &images.image(),
    ]);
    let steps: Vec<Vec<&str>> = formatted.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0][0], LONG_STEP);
    assert_eq!(steps[0][1], "5B", "the second layer's size");
    assert_eq!(steps[1][1], "0B");
    assert_eq!(steps[2][2], "the base");
    assert_eq!(c.ok(&["history", "-q", &images.image()]).lines().count(), 3);
    let missing = c.env.fails(&["image", "history", "nothing:here"]);
    assert!(missing.contains("no such image"), "{missing}");
}

fn cp_and_export_see_the_containers_owners_through_the_user_namespace(images: &Images) {
    let c = Ctx::new();
    c.ok(&[
        "run",
        "-d",
        "--name",
        "owners",
        &images.image(),
        "sleep",
        "100",
    ]);
    let src = tempfile::tempdir().expect("tempdir");
    let file = src.path().join("in");
    std::fs::write(&file, "copied\n").expect("write");
    c.ok(&["cp", &file.to_string_lossy(), "owners:/tmp/in"]);
    assert_eq!(
        c.ok(&["exec", "owners", "stat", "-c", "%u:%g", "/tmp/in"]),
        "0:0"
    );
    // On the host the file belongs to the container's root: the first id of its range.
    let stored = std::fs::metadata(c.upper("owners").join("tmp/in")).expect("in the upper dir");
    let root = c.root_on_host("owners");
    assert_ne!(
        root,
        (0, 0),
        "the container has a user namespace of its own"
    );
    assert_eq!((stored.uid(), stored.gid()), root);
    c.ok(&[
        "exec",
        "owners",
        "sh",
        "-c",
        "echo app > /tmp/app && chown 1000:1000 /tmp/app",
    ]);

    // A stopped container's snapshot, mounted privately: the same owners.
    c.ok(&["stop", "-t", "0", "owners"]);
    c.ok(&["cp", &file.to_string_lossy(), "owners:/usr/while-stopped"]);
    let out = src.path().join("out");
    c.ok(&["cp", "-a", "owners:/tmp/app", &out.to_string_lossy()]);
    let copied = std::fs::metadata(&out).expect("copied out");
    assert_eq!(
        (copied.uid(), copied.gid()),
        (1000, 1000),
        "-a keeps the container's owners"
    );
    let export = c
        .env
        .cmd(&["export", "owners"])
        .stdout(Stdio::piped())
        .output()
        .expect("export");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let mut owners = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(&export.stdout[..]);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let ids = (
            entry.header().uid().expect("uid"),
            entry.header().gid().expect("gid"),
        );
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("content");
        owners.insert(path, (ids, String::from_utf8_lossy(&content).into_owned()));
    }
    assert_eq!(
        owners["bin/busybox"].0,
        (0, 0),
        "the image's root shows as root"
    );
    assert_eq!(owners["tmp/app"], ((1000, 1000), "app\n".to_string()));
    assert_eq!(
        owners["usr/while-stopped"],
        ((0, 0), "copied\n".to_string())
    );
    c.ok(&["start", "owners"]);
    assert_eq!(
        c.ok(&["exec", "owners", "cat", "/usr/while-stopped"]),
        "copied"
    );
}

fn image_events_are_logged(images: &Images) {
    let c = Ctx::new();
    c.ok(&["pull", "-q", &images.image()]);
    c.ok(&["rmi", &images.image()]);
    let events = c.ok(&[
        "events",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--format",
        "{{.Action}}",
    ]);
    // One untag per name the image had (its tag and its digest), as in Docker.
    let actions: Vec<&str> = events.lines().collect();
    assert_eq!(actions.first(), Some(&"pull"), "{events}");
    assert_eq!(actions.last(), Some(&"delete"), "{events}");
    let untags = &actions[1..actions.len() - 1];
    assert!(
        !untags.is_empty() && untags.iter().all(|a| *a == "untag"),
        "{events}"
    );
}

fn main() {
    let tests: &[harness::Test<Images>] = &[
        (
            "diff_lists_what_the_container_changed",
            diff_lists_what_the_container_changed,
        ),
        (
            "history_lists_the_build_steps_newest_first",
            history_lists_the_build_steps_newest_first,
        ),
        (
            "cp_and_export_see_the_containers_owners_through_the_user_namespace",
            cp_and_export_see_the_containers_owners_through_the_user_namespace,
        ),
        ("image_events_are_logged", image_events_are_logged),
    ];
    harness::run(tests, 4, Images::build);
}
