//! What scripts rely on, through the `ccrun` binary: `--format` templates (variables,
//! `printf`, `slice`, `pad`, `table`, `{{.Label}}`, `json` = `{{json .}}`) on every
//! listing, `ps` and `images` filters, sizes and times as Docker prints them, inspect
//! values; the behaviour fixes (exit codes, create-time validation, EPIPE, colours,
//! registry errors without retries); the configuration file; `--platform`; the pull
//! progress on a narrow terminal; completions, man pages and the install script.

mod support;

#[path = "support/image_build.rs"]
mod image_build;
#[path = "support/registry.rs"]
mod registry;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use ccrun_testkit::pty::OnPty;
use image_build::{busybox_layer, layer, Comp, Entry, Layout};
use registry::{Format, Registry};
use serde_json::Value;
use support::{stderr, stdout, Ccrun, Rootfs};

/// Runs ccrun and asserts success; returns stdout.
fn ok(c: &Ccrun, args: &[&str]) -> String {
    let out = c.ccrun(args);
    assert!(
        out.status.success(),
        "ccrun {args:?}: {}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Runs ccrun, asserts exit 125 and a one-line error; returns it.
fn fails(c: &Ccrun, args: &[&str]) -> String {
    let out = c.ccrun(args);
    assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    err
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The default bridge network's subnet, through `network inspect -f` and `range`.
fn bridge_subnet(c: &Ccrun) -> String {
    let template = "{{range .IPAM.Config}}{{.Subnet}}{{end}}";
    ok(c, &["network", "inspect", "-f", template, "bridge"])
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A registry with `test/one:1` (label app=one, created 2024), `test/two:2`
/// (created 2025), the same image as `one` under `test/alias:1`, and a two-platform
/// `test/multi:1` (amd64 and arm64).
struct Images {
    reg: Registry,
    _layouts: tempfile::TempDir,
    /// Config digest (image id) of the arm64 image of `multi`.
    arm64_id: String,
    /// Manifest digest of `two`, to pull it by digest (untagged: dangling).
    two_manifest: String,
}

impl Images {
    fn build() -> Images {
        let reg = Registry::start();
        let layouts = tempfile::tempdir().expect("tempdir");
        let mut layout = Layout::new(&layouts.path().join("oci"));
        let base = busybox_layer();
        let own = |name: &str| {
            layer(
                &[
                    Entry::Dir("data/", 0o755),
                    Entry::File(
                        format!("data/{name}"),
                        name.repeat(5000).into_bytes(),
                        0o644,
                        0,
                    ),
                ],
                Comp::Gzip,
            )
        };
        let config = |label: &str| serde_json::json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"app": label}});
        let mut two_manifest = String::new();
        for (name, tag, created) in [
            ("one", "1", "2024-01-01T00:00:00Z"),
            ("two", "2", "2025-01-01T00:00:00Z"),
        ] {
            let mine = own(name);
            let built =
                layout.image_created_at(&[&base, &mine], "amd64", Some(tag), config(name), created);
            reg.push(&layout.dir, tag, &format!("test/{name}"), Format::Oci);
            if name == "one" {
                reg.push(&layout.dir, tag, "test/alias", Format::Oci);
            } else {
                two_manifest = built.manifest.to_string();
            }
        }
        let amd = layout.image(&[&base], "amd64", None);
        let arm = layout.image(&[&base, &own("arm")], "arm64", None);
        layout.index(&[(&amd, "amd64"), (&arm, "arm64")], "multi");
        reg.push(&layout.dir, "multi", "test/multi", Format::All);
        Images {
            reg,
            _layouts: layouts,
            arm64_id: arm.config.to_string(),
            two_manifest,
        }
    }

    fn name(&self, repo: &str, tag: &str) -> String {
        format!("{}/test/{repo}:{tag}", self.reg.addr)
    }
}

#[test]
fn images_filters_formats_and_inspect() {
    let c = Ccrun::new();
    let img = Images::build();
    let (one, two, alias) = (
        img.name("one", "1"),
        img.name("two", "2"),
        img.name("alias", "1"),
    );
    for name in [&one, &two, &alias] {
        ok(&c, &["pull", "-q", name]);
    }
    let repo = |r: &str| format!("{}/test/{r}", img.reg.addr);
    let shown = |args: &[&str]| -> BTreeSet<String> {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend_from_slice(args);
        lines(&ok(&c, &all))
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(shown(&[]), set(&[&one, &two, &alias]));
    assert_eq!(shown(&["-a"]), shown(&[]));
    assert_eq!(shown(&[&repo("one")]), set(&[&one]));
    assert_eq!(shown(&[&alias]), set(&[&alias]));
    assert!(shown(&[&img.name("one", "9")]).is_empty());
    assert_eq!(shown(&["--filter", "reference=*/test/one"]), set(&[&one]));
    assert_eq!(
        shown(&["-f", "reference=*/test/one", "-f", "reference=*/test/two:2"]),
        set(&[&one, &two])
    );
    assert_eq!(shown(&["--filter", "label=app=two"]), set(&[&two]));
    assert_eq!(shown(&["--filter", "label=app"]).len(), 3);
    assert_eq!(
        shown(&["--filter", &format!("before={two}")]),
        set(&[&one, &alias])
    );
    assert_eq!(shown(&["--filter", &format!("since={one}")]), set(&[&two]));
    assert!(shown(&["--filter", "dangling=true"]).is_empty());
    fails(&c, &["images", "--filter", "color=red"]);
    fails(&c, &["images", "--filter", "before=nope:1"]);

    // json is {{json .}}, with Docker's fields; table TEMPLATE has headers; sizes
    // and times as Docker prints them.
    let json = json_lines(&ok(&c, &["images", "--format", "json", &repo("one")]));
    let templated = json_lines(&ok(&c, &["images", "--format", "{{json .}}", &repo("one")]));
    assert_eq!(json, templated);
    let keys: BTreeSet<&str> = json[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize"
        ])
    );
    let size = json[0]["Size"].as_str().expect("size");
    assert!(
        size.ends_with("MB") && size.trim_end_matches("MB").parse::<f64>().is_ok(),
        "{size}"
    );
    assert!(
        size.trim_end_matches("MB").len() <= 4,
        "three significant digits: {size}"
    );
    assert!(json[0]["CreatedSince"]
        .as_str()
        .expect("since")
        .ends_with(" ago"));
    assert_eq!(json[0]["CreatedAt"], "2024-01-01 00:00:00 +0000 UTC");
    let table = ok(
        &c,
        &[
            "images",
            "--format",
            r"table {{.Tag}}\t{{.Size}}",
            &repo("two"),
        ],
    );
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].starts_with("TAG       SIZE"), "{table}");
    assert!(rows[1].starts_with("2         "), "{table}");

    // Image inspect: Docker's fields; RepoDigests follow the removal of a tag.
    let text = ok(&c, &["image", "inspect", &one]);
    assert!(
        text.starts_with("[\n    {\n        \"Id\": "),
        "Docker's order: {text}"
    );
    assert!(
        !text.contains("\"Variant\""),
        "no variant, no field: {text}"
    );
    let v: Value = serde_json::from_str(&text).expect("json");
    let item = &v[0];
    assert_eq!(item["Architecture"], "amd64");
    assert_eq!(item["Os"], "linux");
    assert_eq!(item["Config"]["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(item["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(item["RootFS"]["Type"], "layers");
    assert_eq!(item["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(item["Created"], "2024-01-01T00:00:00Z");
    assert!(item["Size"].as_u64().is_some_and(|s| s > 0));
    let tags = item["RepoTags"].as_array().expect("tags").len();
    assert_eq!(tags, 2, "{item}");
    let digests = |c: &Ccrun| -> Vec<String> {
        let v: Value = serde_json::from_str(&ok(c, &["image", "inspect", &one])).expect("json");
        v[0]["RepoDigests"]
            .as_array()
            .expect("digests")
            .iter()
            .filter_map(|d| d.as_str().map(str::to_string))
            .collect()
    };
    assert!(digests(&c)
        .iter()
        .any(|d| d.contains("/test/alias@sha256:")));
    let out = ok(&c, &["rmi", &alias]);
    assert!(
        out.contains("test/alias@sha256:"),
        "the digest is untagged too: {out}"
    );
    let left = digests(&c);
    assert!(!left.iter().any(|d| d.contains("/test/alias@")), "{left:?}");
    assert!(
        left.iter().any(|d| d.contains("/test/one@sha256:")),
        "{left:?}"
    );

    // An image pulled by digest only has no tag: dangling. (`rmi` of two's last tag
    // removes it with its digest names, as Docker does; then a pull by digest.)
    let out = ok(&c, &["rmi", &two]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    let by_digest = format!("{}@{}", repo("two"), img.two_manifest);
    ok(&c, &["pull", "-q", &by_digest]);
    let dangling = ok(&c, &["images", "-q", "--filter", "dangling=true"]);
    assert_eq!(lines(&dangling).len(), 1, "{dangling}");
    let tagged = ok(&c, &["images", "-q", "--filter", "dangling=false"]);
    assert!(!tagged.contains(&dangling), "{tagged}");

    // system df --format.
    let df = json_lines(&ok(&c, &["system", "df", "--format", "json"]));
    assert_eq!(df.len(), 4);
    assert_eq!(df[0]["Type"], "Images");
    assert_eq!(df[0]["TotalCount"], "2");
    assert_eq!(
        ok(&c, &["system", "df", "--format", "{{.Type}}={{.Active}}"]),
        "Images=0\nContainers=0\nLocal Volumes=0\nBuild Cache=0"
    );
    let table = ok(
        &c,
        &["system", "df", "--format", r"table {{.Type}}\t{{.Size}}"],
    );
    assert!(table.starts_with("TYPE"), "{table}");

    // --platform: the stored amd64 image is not run as arm64; the arm64 one is pulled.
    let multi = img.name("multi", "multi");
    ok(&c, &["pull", "-q", &multi]);
    let id = ok(
        &c,
        &[
            "create",
            "--platform",
            "linux/arm64",
            "--name",
            "arm",
            &multi,
            "true",
        ],
    );
    assert_eq!(id.lines().last().map(str::len), Some(64), "{id}");
    assert_eq!(
        ok(&c, &["inspect", "-f", "{{.Image}}", "arm"]),
        img.arm64_id
    );
    let v: Value = serde_json::from_str(&ok(&c, &["image", "inspect", &multi])).expect("json");
    assert_eq!(v[0]["Architecture"], "arm64");
}

#[test]
fn ps_filters_templates_and_inspect() {
    let c = Ccrun::in_netns();
    let r = Rootfs::busybox();
    let root = r.path().to_str().expect("utf-8");
    let create = |args: &[&str]| {
        let mut all = vec!["create", "--rootfs", root];
        all.extend_from_slice(args);
        ok(&c, &all)
    };
    create(&["--name", "ca", "-l", "app=web", "true"]);
    // Creation times have nanoseconds: the three are apart without waiting.
    create(&[
        "--name",
        "cb",
        "-p",
        "8080:80",
        "-v",
        "vol1:/data",
        "--entrypoint",
        "/bin/echo",
        "--dns",
        "9.9.9.9",
        "--add-host",
        "h:1.2.3.4",
        "--cap-add",
        "NET_ADMIN",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--shm-size",
        "16m",
        "hello",
        "world",
    ]);
    create(&["--name", "cc", "--network", "none", "-l", "app=db", "true"]);

    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["ps", "-a", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        let mut v: Vec<String> = lines(&ok(&c, &all))
            .into_iter()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["ca", "cb", "cc"]);
    assert_eq!(names(&["-f", "publish=8080"]), ["cb"]);
    assert_eq!(names(&["-f", "publish=8000-8100/tcp"]), ["cb"]);
    assert!(names(&["-f", "publish=80"]).is_empty());
    assert_eq!(names(&["-f", "expose=80/tcp"]), ["cb"]);
    assert_eq!(names(&["-f", "network=none"]), ["cc"]);
    assert_eq!(names(&["-f", "network=bridge"]), ["ca", "cb"]);
    assert_eq!(names(&["-f", "volume=vol1"]), ["cb"]);
    assert_eq!(names(&["-f", "volume=/data"]), ["cb"]);
    assert_eq!(names(&["-f", "before=cb"]), ["ca"]);
    assert_eq!(names(&["-f", "since=cb"]), ["cc"]);
    assert_eq!(names(&["-f", "since=ca", "-f", "before=cc"]), ["cb"]);
    assert_eq!(names(&["-f", "health=none"]), ["ca", "cb", "cc"]);
    assert!(names(&["-f", "health=healthy"]).is_empty());
    for bad in ["publish=http", "health=fine", "before=ghost"] {
        fails(&c, &["ps", "-a", "-f", bad]);
    }

    // {{.Label}}, table, json = {{json .}}, CREATED.
    assert_eq!(
        ok(
            &c,
            &[
                "ps",
                "-a",
                "-f",
                "name=^ca$",
                "--format",
                r#"{{.Names}}={{.Label "app"}}|{{.Label "none"}}|"#
            ]
        ),
        "ca=web||"
    );
    let table = ok(
        &c,
        &[
            "ps",
            "-a",
            "-f",
            "name=^cb$",
            "--format",
            r"table {{.ID}}\t{{.Names}}",
        ],
    );
    let rows = lines(&table);
    assert_eq!(rows[0], "CONTAINER ID   NAMES", "{table}");
    assert!(rows[1].ends_with("   cb") && rows[1].len() == 17, "{table}");
    let json = json_lines(&ok(&c, &["ps", "-a", "--format", "json"]));
    // The same objects, but for the age, which may have moved on a second.
    let ageless = |rows: &[Value]| -> Vec<Value> {
        let mut rows = rows.to_vec();
        for row in &mut rows {
            row.as_object_mut().map(|o| o.remove("RunningFor"));
        }
        rows
    };
    let templated = json_lines(&ok(&c, &["ps", "-a", "--format", "{{json .}}"]));
    assert_eq!(ageless(&json), ageless(&templated));
    let b = json.iter().find(|v| v["Names"] == "cb").expect("cb");
    assert_eq!(b["ID"].as_str().map(str::len), Some(12));
    assert_eq!(b["Networks"], "bridge");
    assert_eq!(b["Mounts"], "vol1");
    let ago = b["RunningFor"].as_str().expect("RunningFor");
    let secs = ago
        .trim_end_matches(" seconds ago")
        .trim_end_matches(" second ago");
    assert!(
        ago == "Less than a second ago" || secs.parse::<u32>().is_ok(),
        "{ago}"
    );
    let full = json_lines(&ok(&c, &["ps", "-a", "--no-trunc", "--format", "json"]));
    assert!(full
        .iter()
        .all(|v| v["ID"].as_str().map(str::len) == Some(64)));

    // Go template features on inspect.
    let t = |template: &str| ok(&c, &["inspect", "-f", template, "cb"]);
    assert_eq!(
        t("{{range $p, $b := .HostConfig.PortBindings}}{{$p}}->{{(index $b 0).HostPort}};{{end}}"),
        "80/tcp->8080;"
    );
    assert_eq!(
        t(r#"{{$n := .Name}}{{printf "%-4s|%3d" $n 7}}"#),
        "/cb |  7"
    );
    assert_eq!(t("{{slice .Id 0 12}}"), b["ID"].as_str().expect("id"));
    assert_eq!(t(r#"[{{pad .Name 1 2}}]"#), "[ /cb  ]");
    assert_eq!(
        t("{{json .Config.Entrypoint}} {{json .Config.Cmd}}"),
        r#"["/bin/echo"] ["hello","world"]"#
    );
    assert_eq!(
        t("{{json .HostConfig.Dns}} {{json .HostConfig.ExtraHosts}}"),
        r#"["9.9.9.9"] ["h:1.2.3.4"]"#
    );
    assert_eq!(
        t("{{json .HostConfig.CapAdd}} {{.HostConfig.ShmSize}}"),
        r#"["NET_ADMIN"] 16777216"#
    );
    assert_eq!(
        t("{{index .HostConfig.Sysctls \"net.ipv4.ip_forward\"}}"),
        "1"
    );
    // Published ports show in NetworkSettings once it runs; until then, nothing.
    assert_eq!(t("{{json .NetworkSettings.Ports}}"), "{}");
    assert_eq!(
        t("{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}}"),
        "no bridge"
    );
    assert!(c.ccrun(&["inspect", "-f", "{{$nope}}", "cb"]).status.code() == Some(125));

    // The other listings take templates, tables and json too.
    assert!(lines(&ok(
        &c,
        &["network", "ls", "--format", "{{.Name}} {{.Driver}}"]
    ))
    .contains(&"bridge bridge"));
    let nets = json_lines(&ok(&c, &["network", "ls", "--format", "json"]));
    assert!(nets
        .iter()
        .any(|n| n["Name"] == "bridge" && n["ID"].as_str().map(str::len) == Some(12)));
    // The first subnet of the default pool: nothing uses it in this fresh namespace.
    assert_eq!(bridge_subnet(&c), "172.17.0.0/16");
    let out = c.ccrun(&["network", "inspect", "-f", "{{.Name}}", "bridge", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        (stdout(&out).as_str(), stderr(&out).as_str()),
        ("bridge", "Error: No such network: ghost")
    );
    assert_eq!(
        ok(&c, &["volume", "ls", "--format", "{{.Name}}:{{.Driver}}"]),
        "vol1:local"
    );
    assert_eq!(
        lines(&ok(
            &c,
            &["volume", "ls", "--format", r"table {{.Name}}\t{{.Scope}}"]
        )),
        ["VOLUME NAME   SCOPE", "vol1          local"]
    );
    assert_eq!(
        ok(
            &c,
            &["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "vol1"]
        ),
        "vol1 local"
    );
    assert_eq!(
        lines(&ok(&c, &["volume", "ls"])),
        ["DRIVER    VOLUME NAME", "local     vol1"]
    );
}

#[test]
fn behaviour_fixes_exit_codes_and_validation() {
    let c = Ccrun::new();
    let r = Rootfs::busybox();
    let root = r.path().to_str().expect("utf-8");

    // rm -f of what is not there succeeds, as in Docker and Podman; rm does not.
    let out = c.ccrun(&["rm", "-f", "ghost"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    let out = c.ccrun(&["rm", "ghost"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("no such container: ghost"),
        "{}",
        stderr(&out)
    );

    // Refused at create, before anything exists.
    for (flag, value, says) in [
        ("--stop-signal", "BOGUS", "invalid --stop-signal \"BOGUS\""),
        ("-w", "relative/dir", "needs to be an absolute path"),
        ("-e", "=x", "invalid environment variable \"=x\""),
    ] {
        let err = fails(&c, &["create", "--rootfs", root, flag, value, "true"]);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    assert_eq!(ok(&c, &["ps", "-aq"]), "");

    // Negative numbers: the same error in both forms.
    assert_eq!(
        fails(&c, &["stop", "-t", "-5", "x"]),
        fails(&c, &["stop", "-t=-5", "x"])
    );
    let spaced = fails(&c, &["run", "--rootfs", root, "--cpus", "-1", "true"]);
    assert!(spaced.contains("must be greater than 0"), "{spaced}");
    assert_eq!(
        spaced,
        fails(&c, &["run", "--rootfs", root, "--cpus=-1", "true"])
    );

    // Bare ccrun: help on stdout, success; global options listed once.
    let bare = c.ccrun(&[]);
    assert_eq!(bare.status.code(), Some(0));
    assert!(
        stdout(&bare).contains("Usage: ccrun [OPTIONS] <COMMAND>"),
        "{}",
        stdout(&bare)
    );
    assert!(ok(&c, &["--help"]).contains("--root <DIR>"));
    for sub in [
        &["ps", "--help"][..],
        &["volume", "ls", "--help"],
        &["run", "--help"],
    ] {
        let help = ok(&c, sub);
        assert!(
            !help.contains("--root <DIR>") && !help.contains("--log-level"),
            "{sub:?}: {help}"
        );
    }
    // Still accepted after the subcommand.
    ok(&c, &["ps", "--log-level", "error"]);

    // A reader that went away: no "Broken pipe" message, ended by SIGPIPE.
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    let out = c
        .cmd()
        .args(["completion", "bash"])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run ccrun");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{out:?}");
    assert_eq!(stderr(&out), "");

    // Registry errors that cannot heal fail at once: no 16 s of retries.
    let start = Instant::now();
    let err = fails(&c, &["pull", "127.0.0.1:1/test/none:1"]);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}: {err}",
        start.elapsed()
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");

    // A wrong password: the token server's message, not its JSON.
    let reg = Registry::start_with_token_auth();
    let config = tempfile::tempdir().expect("tempdir");
    let mut login = c.cmd();
    login.env("DOCKER_CONFIG", config.path()).args([
        "login",
        "-u",
        registry::USER,
        "-p",
        "wrong",
        &reg.addr,
    ]);
    let out = login.stdin(Stdio::null()).output().expect("login");
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("incorrect username or password"), "{err}");
    assert!(!last.contains('{'), "{err}");
}

/// A ccrun whose configuration is `text` (through CCRUN_CONFIG). It shares the
/// test's network namespace, where the registry is; its containers use the host's
/// network, and the default bridge network is only ever described, never set up.
fn configured(text: &str) -> (Ccrun, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ccrun.toml");
    std::fs::write(&path, text).expect("write config");
    let c = Ccrun::new().with_env("CCRUN_CONFIG", path.to_str().expect("utf-8"));
    (c, dir)
}

#[test]
fn configuration_file_is_read_and_checked() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(&layouts.path().join("oci"));
    layout.image(&[&busybox_layer()], "amd64", Some("1"));
    reg.push(&layout.dir, "1", "test/bb", Format::Oci);

    // Errors: file, line, key, on one line, before anything is done.
    let (c, dir) = configured("[containers]\nuserns = \"host\"\nlog_size = 5\n");
    let err = fails(&c, &["ps"]);
    let path = dir.path().join("ccrun.toml");
    assert!(
        err.starts_with(&format!("ccrun: {}:3: log_size: ", path.display())),
        "{err}"
    );
    let (c, _dir) = configured("[network]\ndefault_subnet = \"10.1.2.3/40\"\n");
    assert!(fails(&c, &["ps"]).contains("ccrun.toml:2: default_subnet: "));
    let c = Ccrun::new().with_env("CCRUN_CONFIG", "/nonexistent/ccrun.toml");
    assert!(fails(&c, &["ps"]).contains("/nonexistent/ccrun.toml"));

    // Mirrors (an unreachable one is passed over), aliases, unqualified search.
    let text = format!(
        "unqualified-search-registries = [\"127.0.0.1:1\", \"{addr}\"]\n\
         [aliases]\nbb = \"{addr}/test/bb:1\"\n\
         [[registry]]\nlocation = \"mirrored.invalid:5000\"\n\
         [[registry.mirror]]\nlocation = \"127.0.0.1:1\"\n\
         [[registry.mirror]]\nlocation = \"{addr}\"\n\
         [containers]\ndefault_ulimits = [\"nofile=512:512\"]\nlog_size_max = \"8k\"\nuserns = \"host\"\n\
         [network]\ndefault_subnet = \"10.123.0.0/16\"\n",
        addr = reg.addr
    );
    let (c, _dir) = configured(&text);
    ok(&c, &["pull", "-q", "mirrored.invalid:5000/test/bb:1"]);
    let via_alias = ok(&c, &["pull", "-q", "bb"]);
    assert!(
        via_alias.ends_with(&format!("{}/test/bb:1", reg.addr)),
        "{via_alias}"
    );
    ok(&c, &["rmi", &format!("{}/test/bb:1", reg.addr)]);
    ok(&c, &["pull", "-q", "test/bb:1"]);
    let names = ok(&c, &["images", "--format", "{{.Repository}}"]);
    assert!(names.contains("mirrored.invalid:5000/test/bb"), "{names}");
    assert!(names.contains(&format!("{}/test/bb", reg.addr)), "{names}");

    // Container defaults: ulimits, log size, user namespace; the bridge's subnet.
    let out = ok(
        &c,
        &["run", "--name", "ulim", "bb", "sh", "-c", "ulimit -n"],
    );
    assert_eq!(out, "512");
    let out = ok(
        &c,
        &[
            "run",
            "--rm",
            "--ulimit",
            "nofile=256:256",
            "bb",
            "sh",
            "-c",
            "ulimit -n",
        ],
    );
    assert_eq!(out, "256", "a flag wins over the default");
    assert_eq!(
        ok(
            &c,
            &[
                "inspect",
                "-f",
                "{{index .HostConfig.LogConfig.Config \"max-size\"}} {{.HostConfig.UsernsMode}}",
                "ulim"
            ]
        ),
        "8192 host"
    );
    assert_eq!(bridge_subnet(&c), "10.123.0.0/16");
}

#[test]
fn pull_progress_fits_a_narrow_terminal_and_logs_have_no_colour() {
    let reg = Registry::start();
    let layouts = tempfile::tempdir().expect("tempdir");
    let mut layout = Layout::new(&layouts.path().join("oci"));
    let big = layer(
        &[Entry::File("big".into(), vec![7u8; 3 << 20], 0o644, 0)],
        Comp::None,
    );
    layout.image(&[&busybox_layer(), &big], "amd64", Some("1"));
    reg.push(&layout.dir, "1", "test/bb", Format::Oci);
    let c = Ccrun::new();
    let name = format!("{}/test/bb:1", reg.addr);
    let mut cmd = c.cmd();
    cmd.args(["pull", &name]);
    let mut pty = OnPty::spawn(cmd, 24, 40);
    assert_eq!(pty.wait_exit(), Some(0), "{}", pty.text());
    let text = pty.text();
    let plain = strip_ansi(&text);
    // Layer lines, `0123456789ab: …`, however often they were redrawn.
    let is_layer = |line: &&str| {
        line.len() > 13
            && line.as_bytes()[12] == b':'
            && line[..12].bytes().all(|b| b.is_ascii_hexdigit())
    };
    // indicatif fills each line to the terminal's width and lets it wrap, so a
    // layer line ends where the next one starts.
    let mut layer_lines = Vec::new();
    for segment in plain.split(['\n', '\r']) {
        let starts: Vec<usize> = (0..segment.len())
            .filter(|&i| {
                segment
                    .get(i..)
                    .is_some_and(|rest| is_layer(&rest) || rest.starts_with("Digest: "))
            })
            .filter(|&i| i == 0 || !segment.as_bytes()[i - 1].is_ascii_hexdigit())
            .collect();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(segment.len());
            let line = segment[start..end].trim_end();
            if is_layer(&line) {
                layer_lines.push(line);
            }
        }
    }
    let complete: BTreeSet<&str> = layer_lines
        .iter()
        .filter(|l| l.ends_with(": Pull complete"))
        .map(|l| &l[..12])
        .collect();
    assert_eq!(complete.len(), 2, "a line per layer, as Docker's: {plain}");
    for line in &layer_lines {
        assert!(
            line.chars().count() < 40,
            "{} columns: {line:?}",
            line.chars().count()
        );
    }

    // Log lines: plain in a file, coloured on a terminal unless NO_COLOR.
    let text = format!(
        "[[registry]]\nlocation = \"mirrored.invalid:5000\"\n[[registry.mirror]]\nlocation = \"127.0.0.1:1\"\n\
         [[registry.mirror]]\nlocation = \"{}\"\n",
        reg.addr
    );
    let (c, _dir) = configured(&text);
    let args = [
        "--log-level",
        "info",
        "pull",
        "-q",
        "mirrored.invalid:5000/test/bb:1",
    ];
    let out: Output = c
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("pull");
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("INFO") && log.contains("mirror 127.0.0.1:1"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "{log:?}");
    let mut on_tty = c.cmd();
    on_tty.args(args);
    let mut pty = OnPty::spawn(on_tty, 24, 200);
    assert_eq!(pty.wait_exit(), Some(0), "{}", pty.text());
    assert!(
        pty.text().contains("\x1b["),
        "colours on a terminal: {:?}",
        pty.text()
    );
    let mut no_color = c.cmd();
    no_color.env("NO_COLOR", "1").args(args);
    let mut pty = OnPty::spawn(no_color, 24, 200);
    assert_eq!(pty.wait_exit(), Some(0), "{}", pty.text());
    assert!(pty.text().contains("INFO"), "{}", pty.text());
    assert!(!pty.text().contains("\x1b["), "NO_COLOR: {:?}", pty.text());
}

/// The text with each ANSI escape sequence (CSI `ESC [ … letter`: cursor moves,
/// line clears) made a line break, so that redrawn lines come apart.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            out.push('\n');
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn completions_man_pages_and_install_script() {
    let c = Ccrun::new();
    assert!(ok(&c, &["completion", "bash"]).contains("complete -F _ccrun"));
    assert!(ok(&c, &["completion", "zsh"]).starts_with("#compdef ccrun"));
    assert!(ok(&c, &["completion", "fish"]).contains("complete -c ccrun"));
    fails(&c, &["completion", "tcsh"]);

    let prefix = tempfile::tempdir().expect("tempdir");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_ccrun"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/install.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .env("PREFIX", prefix.path())
        .env("BIN_DIR", &bin_dir)
        .output()
        .expect("install.sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let p = prefix.path();
    for file in [
        "bin/ccrun",
        "bin/ccrun-monitor",
        "share/bash-completion/completions/ccrun",
        "share/zsh/site-functions/_ccrun",
        "share/fish/vendor_completions.d/ccrun.fish",
        "share/man/man1/ccrun.1",
        "share/man/man1/ccrun-volume-ls.1",
    ] {
        assert!(p.join(file).is_file(), "{file} not installed");
    }
    let run_page = std::fs::read_to_string(p.join("share/man/man1/ccrun-run.1")).expect("page");
    assert!(run_page.contains("stop\\-signal"), "{run_page}");
    let bash =
        std::fs::read_to_string(p.join("share/bash-completion/completions/ccrun")).expect("bash");
    assert!(bash.contains("--stop-signal"));
}
