//! `ccrun run IMAGE` end to end: images built here from busybox-static, pushed to the
//! real registry (Debian's docker-registry) on 127.0.0.1, pulled and run on overlayfs
//! snapshots in real namespaces and cgroups.
//!
//! Its own main (no libtest harness): the registry and images are built once, shared
//! by all tests, and torn down at the end even when tests fail.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/image_cli.rs"]
mod image_cli;
#[path = "support/registry.rs"]
mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ccrun_testkit::pty::OnPty;
use image_build::{base_layer, features_layer, layer, Comp, Entry, Layer, Layout};
use image_cli::Env;
use registry::{Format, Registry};

/// The registry and the images every test uses, built once per test binary.
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
        let features = features_layer();
        let env = |extra: serde_json::Value| {
            let mut c = serde_json::json!({
                "Env": ["PATH=/bin", "FROM_IMAGE=yes", "SHARED=image"],
                "Cmd": ["sh", "-c", "echo from-cmd"],
                "WorkingDir": "/srv/app",
                "Labels": {"org.test.kind": "base"},
                "ExposedPorts": {"8080/tcp": {}},
                "StopSignal": "SIGQUIT",
            });
            if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
                for (k, v) in extra {
                    c.insert(k.clone(), v.clone());
                }
            }
            c
        };
        layout.image_with_config(&[&base], "amd64", Some("base"), env(serde_json::json!({})));
        layout.image_with_config(
            &[&base],
            "amd64",
            Some("entry"),
            env(serde_json::json!({"Entrypoint": ["/bin/echo", "entry"], "Cmd": ["default"]})),
        );
        layout.image_with_config(
            &[&base],
            "amd64",
            Some("user"),
            env(serde_json::json!({"User": "app"})),
        );
        layout.image_with_config(
            &[&base, &features],
            "amd64",
            Some("multi"),
            env(serde_json::json!({})),
        );
        let many: Vec<Layer> = (0..64)
            .map(|i| {
                layer(
                    &[
                        Entry::Dir("layers/", 0o755),
                        Entry::File(
                            format!("layers/{i:02}"),
                            format!("{i}\n").into_bytes(),
                            0o644,
                            0,
                        ),
                        Entry::File("layers/top".into(), format!("{i}\n").into_bytes(), 0o644, 0),
                    ],
                    Comp::Gzip,
                )
            })
            .collect();
        let mut stack: Vec<&Layer> = vec![&base];
        stack.extend(many.iter());
        layout.image_with_config(&stack, "amd64", Some("many"), env(serde_json::json!({})));
        // A declared volume with content: owned by app (1000), a restrictive directory.
        let data = layer(
            &[
                Entry::Dir("data/", 0o750),
                Entry::File("data/file".into(), b"seeded\n".to_vec(), 0o640, 1000),
                Entry::Symlink("data/link", "file"),
            ],
            Comp::Gzip,
        );
        layout.image_with_config(
            &[&base, &data],
            "amd64",
            Some("volume"),
            env(serde_json::json!({"Volumes": {"/data": {}}})),
        );
        for tag in ["base", "entry", "user", "multi", "many", "volume"] {
            reg.push(&layout.dir, tag, &format!("test/{tag}"), Format::Oci);
        }
        Images {
            reg,
            _layouts: layouts,
        }
    }
}

/// A private store and state root; the temp dir is searchable so that the
/// container's unprivileged root can reach its rootfs below it.
struct Ctx<'a> {
    env: Env,
    images: &'a Images,
}

impl Ctx<'_> {
    fn new(images: &Images) -> Ctx<'_> {
        let env = Env::new();
        Ctx { env, images }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/test/{tag}:{tag}", self.images.reg.addr)
    }

    fn state(&self) -> PathBuf {
        self.env.state()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.env.cmd(args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.env.run(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.env.ok(args)
    }

    fn containers_dir(&self) -> PathBuf {
        self.env.root().join("containers")
    }

    /// Container directories (ids) present in the store.
    fn container_ids(&self) -> Vec<String> {
        image_cli::list(&self.containers_dir())
            .into_iter()
            .filter(|n| n.len() == 64)
            .collect()
    }
}

impl Drop for Ctx<'_> {
    /// Whatever a failed test left running is killed and removed with its cgroup.
    fn drop(&mut self) {
        for id in self.container_ids() {
            let _ = self.run(&["rm", "-f", &id]);
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn pulls_and_runs_in_one_command(images: &Images) {
    let c = Ctx::new(images);
    let out = c.run(&["run", "--rm", &c.image("base"), "echo", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "hello\n",
        "only the container's output on stdout"
    );
    assert!(
        stderr(&out).contains("Unable to find image"),
        "{}",
        stderr(&out)
    );
    // The image is now in the store: the next run pulls nothing.
    let again = c.run(&["run", "--rm", "--pull", "never", &c.image("base"), "true"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!stderr(&again).contains("Pulling"), "{}", stderr(&again));
}

fn image_env_and_workdir_apply_and_flags_override_them(images: &Images) {
    let c = Ctx::new(images);
    let img = c.image("base");
    let out = c.ok(&[
        "run",
        "--rm",
        &img,
        "sh",
        "-c",
        "pwd; echo $FROM_IMAGE $SHARED $HOME",
    ]);
    assert_eq!(out, "/srv/app\nyes image /root\n");
    let env_file = c.env.dir.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=file\nSHARED=file\n").expect("env file");
    let out = c.ok(&[
        "run",
        "--rm",
        "-e",
        "SHARED=flag",
        "--env-file",
        &env_file.to_string_lossy(),
        "-w",
        "/elsewhere",
        &img,
        "sh",
        "-c",
        "pwd; echo $FROM_IMAGE $FROM_FILE $SHARED",
    ]);
    assert_eq!(out, "/elsewhere\nyes file flag\n");
}

fn entrypoint_and_cmd_follow_docker_rules(images: &Images) {
    let c = Ctx::new(images);
    assert_eq!(c.ok(&["run", "--rm", &c.image("base")]), "from-cmd\n");
    let entry = c.image("entry");
    assert_eq!(c.ok(&["run", "--rm", &entry]), "entry default\n");
    assert_eq!(c.ok(&["run", "--rm", &entry, "a", "b"]), "entry a b\n");
    assert_eq!(
        c.ok(&["run", "--rm", "--entrypoint", "/bin/echo", &entry, "x"]),
        "x\n"
    );
    assert_eq!(
        c.ok(&["run", "--rm", "--entrypoint", "", &entry, "echo", "cleared"]),
        "cleared\n"
    );
}

fn user_from_image_and_flag_by_name_and_number(images: &Images) {
    let c = Ctx::new(images);
    let user = c.image("user");
    assert_eq!(
        c.ok(&["run", "--rm", &user, "id"]),
        "uid=1000(app) gid=1000(app) groups=1000(app),2000(extra)\n"
    );
    assert_eq!(
        c.ok(&["run", "--rm", "-u", "root", &user, "id", "-u"]),
        "0\n"
    );
    assert_eq!(
        c.ok(&["run", "--rm", "-u", "1000:2000", &c.image("base"), "id"]),
        "uid=1000(app) gid=2000(extra) groups=2000(extra)\n"
    );
    let out = c.run(&["run", "--rm", "-u", "nobody-here", &user, "id"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("unable to find user nobody-here"),
        "{}",
        stderr(&out)
    );
}

fn layers_show_whiteouts_and_stay_untouched(images: &Images) {
    let c = Ctx::new(images);
    let multi = c.image("multi");
    let out = c.ok(&[
        "run",
        "--rm",
        &multi,
        "sh",
        "-c",
        "test -e /etc/remove-me && echo present; ls /opt; cat /usr/data-link; \
         stat -c '%U %a' /usr/suid /home/user-file",
    ]);
    assert_eq!(out, "new\nlinked\nroot 4755\napp 600\n");

    // One container's writes: invisible to another and to the layers.
    c.ok(&[
        "run",
        "--name",
        "writer",
        &multi,
        "sh",
        "-c",
        "echo mine > /opt/new; rm /usr/data; touch /made",
    ]);
    let out = c.ok(&[
        "run",
        "--rm",
        &multi,
        "sh",
        "-c",
        "cat /opt/new; cat /usr/data; ls /made 2>&1 || true",
    ]);
    assert!(out.starts_with("new\nlinked\n"), "{out}");
    assert!(out.contains("No such file"), "{out}");
    let layers = c.env.store().join("layers");
    for entry in std::fs::read_dir(&layers).expect("layers") {
        let dir = entry.expect("entry").path();
        assert!(!dir.join("made").exists());
        if dir.join("opt/new").exists() {
            assert_eq!(
                std::fs::read_to_string(dir.join("opt/new")).expect("read"),
                "new\n"
            );
        }
    }
    // The writer's changes are in its upper dir, owned by the mapped root.
    let id = c.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let upper = c.containers_dir().join(&id).join("upper");
    assert_eq!(
        std::fs::read_to_string(upper.join("opt/new")).expect("upper"),
        "mine\n"
    );
    let meta = std::fs::metadata(upper.join("made")).expect("made");
    let config = std::fs::read(c.containers_dir().join(&id).join("config.json")).expect("config");
    let config: serde_json::Value = serde_json::from_slice(&config).expect("config json");
    let mapped_root = config["linux"]["uidMappings"][0]["hostID"]
        .as_u64()
        .expect("mapping");
    assert_eq!(
        u64::from(std::os::unix::fs::MetadataExt::uid(&meta)),
        mapped_root
    );
    c.ok(&["rm", "writer"]);
}

fn read_only_root_and_tmpfs(images: &Images) {
    let c = Ctx::new(images);
    let out = c.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        &c.image("base"),
        "sh",
        "-c",
        "touch /x 2>&1; touch /scratch/y && echo tmpfs-ok",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.contains("tmpfs-ok"), "{text}");
}

fn rm_flag_leaves_nothing_behind(images: &Images) {
    let c = Ctx::new(images);
    let img = c.image("base");
    // The default hostname is the short id, which names the cgroup too.
    let short = c.ok(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        &img,
        "sh",
        "-c",
        "echo x > /file; hostname",
    ]);
    let short = short.trim();
    assert_eq!(short.len(), 12, "{short}");
    assert!(c.container_ids().is_empty(), "{:?}", c.container_ids());
    assert!(image_cli::list(&c.containers_dir().join("names")).is_empty());
    assert_eq!(c.ok(&["ps", "-aq"]), "");
    let root = c.env.root().to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&root), "mount left: {mounts}");
    assert!(
        ccrun_testkit::container_state_dirs(&c.state()).is_empty(),
        "runtime state left"
    );
    for controller in ["memory", "pids", "cpu,cpuacct"] {
        let left: Vec<String> =
            image_cli::list(&Path::new("/sys/fs/cgroup").join(controller).join("ccrun"))
                .into_iter()
                .filter(|n| n.starts_with(short))
                .collect();
        assert!(left.is_empty(), "cgroup left in {controller}: {left:?}");
    }
}

fn containers_are_records_until_removed(images: &Images) {
    let c = Ctx::new(images);
    let img = c.image("base");
    let out = c.run(&["run", "--name", "first", &img, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let ps = c.ok(&["ps", "-a"]);
    assert!(ps.starts_with("CONTAINER ID"), "{ps}");
    let line = ps.lines().find(|l| l.contains("first")).expect("listed");
    assert!(line.contains(&img), "{line}");
    assert!(line.contains("Exited (3)"), "{line}");
    assert!(line.contains("\"sh -c exit 3\""), "{line}");
    assert_eq!(
        c.ok(&["ps"]).lines().count(),
        1,
        "not running: only the header"
    );
    // A generated name, a name conflict, an id prefix.
    c.ok(&["run", &img, "true"]);
    let json = c.ok(&["ps", "-a", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(rows.len(), 2);
    let generated = rows
        .iter()
        .find(|r| r["Names"] != "first")
        .expect("second container");
    assert!(generated["Names"].as_str().expect("name").contains('_'));
    let conflict = c.run(&["run", "--name", "first", &img, "true"]);
    assert_eq!(conflict.status.code(), Some(125));
    assert!(
        stderr(&conflict).contains("already in use"),
        "{}",
        stderr(&conflict)
    );
    // rmi refuses while containers use the image.
    let rmi = c.run(&["rmi", &img]);
    assert!(!rmi.status.success());
    assert!(
        stderr(&rmi).contains("used by container"),
        "{}",
        stderr(&rmi)
    );
    let id = generated["ID"].as_str().expect("id");
    c.ok(&["rm", &id[..8], "first"]);
    assert!(c.container_ids().is_empty());
    let gone = c.run(&["rm", "first"]);
    assert!(
        stderr(&gone).contains("no such container"),
        "{}",
        stderr(&gone)
    );
    c.ok(&["rmi", &img]);
    // The saved config.json is the OCI spec that ran.
    c.ok(&["run", "--name", "kept", &img, "true"]);
    let id = c.ok(&["ps", "-aq", "--no-trunc"]).trim().to_string();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(c.containers_dir().join(&id).join("config.json")).expect("config.json"),
    )
    .expect("parse");
    assert_eq!(config["process"]["args"], serde_json::json!(["true"]));
    assert_eq!(config["process"]["cwd"], "/srv/app");
    c.ok(&["rm", "kept"]);
}

fn image_with_many_layers_runs(images: &Images) {
    let c = Ctx::new(images);
    let out = c.ok(&[
        "run",
        "--rm",
        &c.image("many"),
        "sh",
        "-c",
        "ls /layers | wc -l; cat /layers/top",
    ]);
    assert_eq!(out, "65\n63\n");
}

fn missing_image_with_pull_never_is_a_clear_error(images: &Images) {
    let c = Ctx::new(images);
    let out = c.run(&["run", "--pull", "never", &c.image("base"), "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not found") && err.contains("--pull"), "{err}");
    assert!(c.container_ids().is_empty());
    let out = c.run(&["run", "--rm", "127.0.0.1:1/none/such", "true"]);
    assert_eq!(out.status.code(), Some(125));
}

fn tty_gets_a_terminal_and_window_size_changes(images: &Images) {
    let c = Ctx::new(images);
    let script = "tty; stty size; trap 'stty size; exit 7' WINCH; echo ready; \
                  while :; do sleep 0.05; done";
    let cmd = c.cmd(&["run", "--rm", "-it", &c.image("base"), "sh", "-c", script]);
    let pty = OnPty::spawn(cmd, 33, 101);
    pty.wait_for("ready");
    let text = pty.text();
    assert!(
        text.contains("/dev/pts/0"),
        "a terminal of the container's own: {text:?}"
    );
    assert!(text.contains("33 101"), "initial size copied: {text:?}");
    pty.resize(40, 120);
    pty.wait_for("40 120");
    assert_eq!(pty.exit_code(), Some(7));
}

fn ctrl_c_goes_to_the_container(images: &Images) {
    let c = Ctx::new(images);
    let cmd = c.cmd(&[
        "run",
        "--rm",
        "-it",
        "--init",
        &c.image("base"),
        "sh",
        "-c",
        "echo ready; sleep 100",
    ]);
    let pty = OnPty::spawn(cmd, 24, 80);
    pty.wait_for("ready");
    pty.write(&[3]);
    // sleep dies of SIGINT from its terminal; ccrun itself exits normally with 130.
    assert_eq!(pty.exit_code(), Some(130));
}

fn interactive_stdin_reaches_the_container_and_is_closed_without_i(images: &Images) {
    let c = Ctx::new(images);
    let img = c.image("base");
    let mut child = c
        .cmd(&["run", "--rm", "-i", &img, "sh", "-c", "tr a-z A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"piped text\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out), "PIPED TEXT\n");
    let mut child = c
        .cmd(&["run", "--rm", &img, "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Without -i the container's stdin is /dev/null: cat ends at once even though
    // ccrun's own stdin stays open.
    let _keep_open = child.stdin.take();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(stdout(&out), "done\n");
}

type Test = fn(&Images);

/// Every mount table on the machine that mentions `needle` (mounts of ccrun's
/// snapshots live in private mount namespaces, not in the test's own).
fn mount_tables_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(table) = std::fs::read_to_string(entry.path().join("mountinfo")) {
            if table.contains(needle) {
                found.push(name);
            }
        }
    }
    found
}

fn detached_container_keeps_its_snapshot_across_stop_and_start(images: &Images) {
    let c = Ctx::new(images);
    let img = c.image("base");
    let id = c.ok(&[
        "run",
        "-d",
        "--name",
        "keep",
        &img,
        "sh",
        "-c",
        "echo run >> /runs; exec sleep 100",
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let runs = |c: &Ctx| c.ok(&["exec", "keep", "cat", "/runs"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .run(&["exec", "keep", "test", "-e", "/runs"])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "no /runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(runs(&c), "run\n");
    // The overlay is mounted only in the monitor's and the container's namespaces.
    let own = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!own.contains(&id), "snapshot mount leaked to the host");
    assert!(!mount_tables_mentioning(&id).is_empty());
    c.ok(&["stop", "-t", "0", "keep"]);
    assert!(
        mount_tables_mentioning(&id).is_empty(),
        "snapshot still mounted after stop"
    );
    c.ok(&["start", "keep"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while runs(&c) != "run\nrun\n" {
        assert!(
            Instant::now() < deadline,
            "second run not seen: {:?}",
            runs(&c)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.ok(&["rm", "-f", "keep"]);
    assert!(
        mount_tables_mentioning(&id).is_empty(),
        "mount left after rm -f"
    );
    assert!(c.container_ids().is_empty());
    assert!(
        ccrun_testkit::container_state_dirs(&c.state()).is_empty(),
        "runtime state left"
    );
}

fn image_volumes_become_seeded_anonymous_volumes(images: &Images) {
    use std::os::unix::fs::MetadataExt;
    let c = Ctx::new(images);
    let img = c.image("volume");
    let volumes = |c: &Ctx| image_cli::list(&c.env.root().join("volumes"));
    let out = c.ok(&[
        "run",
        "--name",
        "seeded",
        &img,
        "sh",
        "-c",
        "cat /data/link; stat -c '%a %u' /data /data/file; echo new > /data/added",
    ]);
    assert_eq!(out, "seeded\n750 0\n640 1000\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&c.ok(&["inspect", "seeded"])).expect("inspect json");
    let mount = &inspect[0]["Mounts"][0];
    assert_eq!(mount["Type"], "volume", "{mount}");
    assert_eq!(mount["Destination"], "/data");
    assert_eq!(mount["Driver"], "local");
    let name = mount["Name"].as_str().expect("name").to_string();
    assert_eq!(name.len(), 64, "{name}");
    assert_eq!(
        inspect[0]["Config"]["Volumes"],
        serde_json::json!({"/data": {}})
    );
    // On the host: the image's owners as the container sees them (--userns auto mounts
    // volumes idmapped, so any container's range sees the same).
    let data = PathBuf::from(mount["Source"].as_str().expect("source"));
    assert_eq!(data, c.env.root().join("volumes").join(&name).join("_data"));
    let meta = |p: &str| std::fs::symlink_metadata(data.join(p)).expect("stat");
    assert_eq!((meta("").uid(), meta("").mode() & 0o7777), (0, 0o750));
    assert_eq!((meta("file").uid(), meta("file").gid()), (1000, 1000));
    assert_eq!(meta("added").uid(), 0);
    // A named volume is seeded when new, and keeps its changes afterwards.
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "-v",
            "named:/data",
            &img,
            "sh",
            "-c",
            "cat /data/file; echo changed > /data/file",
        ]),
        "seeded\n"
    );
    assert_eq!(
        c.ok(&[
            "run",
            "--rm",
            "-v",
            "named:/data",
            &img,
            "cat",
            "/data/file"
        ]),
        "changed\n"
    );
    // rm -v takes the anonymous volume; --rm removes its own at exit.
    c.ok(&["rm", "-v", "seeded"]);
    assert!(!data.exists(), "anonymous volume left");
    c.ok(&["run", "--rm", &img, "true"]);
    assert_eq!(volumes(&c), [".lock", "named"]);
    c.ok(&["volume", "rm", "named"]);
    assert_eq!(volumes(&c), [".lock"]);
}

fn main() {
    let tests: &[(&str, Test)] = &[
        (
            "pulls_and_runs_in_one_command",
            pulls_and_runs_in_one_command,
        ),
        (
            "image_env_and_workdir_apply_and_flags_override_them",
            image_env_and_workdir_apply_and_flags_override_them,
        ),
        (
            "entrypoint_and_cmd_follow_docker_rules",
            entrypoint_and_cmd_follow_docker_rules,
        ),
        (
            "user_from_image_and_flag_by_name_and_number",
            user_from_image_and_flag_by_name_and_number,
        ),
        (
            "layers_show_whiteouts_and_stay_untouched",
            layers_show_whiteouts_and_stay_untouched,
        ),
        ("read_only_root_and_tmpfs", read_only_root_and_tmpfs),
        (
            "rm_flag_leaves_nothing_behind",
            rm_flag_leaves_nothing_behind,
        ),
        (
            "containers_are_records_until_removed",
            containers_are_records_until_removed,
        ),
        ("image_with_many_layers_runs", image_with_many_layers_runs),
        (
            "missing_image_with_pull_never_is_a_clear_error",
            missing_image_with_pull_never_is_a_clear_error,
        ),
        (
            "tty_gets_a_terminal_and_window_size_changes",
            tty_gets_a_terminal_and_window_size_changes,
        ),
        ("ctrl_c_goes_to_the_container", ctrl_c_goes_to_the_container),
        (
            "detached_container_keeps_its_snapshot_across_stop_and_start",
            detached_container_keeps_its_snapshot_across_stop_and_start,
        ),
        (
            "interactive_stdin_reaches_the_container_and_is_closed_without_i",
            interactive_stdin_reaches_the_container_and_is_closed_without_i,
        ),
        (
            "image_volumes_become_seeded_anonymous_volumes",
            image_volumes_become_seeded_anonymous_volumes,
        ),
    ];
    // A few tests at a time: each is mostly waiting on container processes.
    harness::run(tests, 4, Images::build);
}
