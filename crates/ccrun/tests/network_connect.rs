//! `network connect`/`disconnect`, `--mac-address` and `--link` end to end, each test
//! in a network namespace of its own: a running container gets a second interface at
//! once and keeps it across restarts, peers on every network find it by name and
//! alias, and what connect and disconnect refuse.

mod support;

use support::{stderr, stdout, Ccrun, Rootfs};

fn ok(c: &Ccrun, args: &[&str]) -> String {
    let out = c.ccrun(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The container's interfaces other than lo.
fn interfaces(c: &Ccrun, name: &str) -> Vec<String> {
    let mut names: Vec<String> = ok(c, &["exec", name, "ls", "/sys/class/net"])
        .split_whitespace()
        .filter(|n| *n != "lo")
        .map(String::from)
        .collect();
    names.sort();
    names
}

fn ping(c: &Ccrun, from: &str, to: &str) -> bool {
    c.ccrun(&["exec", from, "ping", "-c", "1", "-W", "2", to])
        .status
        .success()
}

#[test]
fn connect_adds_an_interface_and_names_disconnect_takes_them_away() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    ok(
        &c,
        &["network", "create", "--subnet", "10.231.1.0/24", "front"],
    );
    ok(
        &c,
        &["network", "create", "--subnet", "10.231.2.0/24", "back"],
    );
    c.run_detached(
        r.path(),
        &["--name", "web", "--network", "front", "sleep", "100"],
    );
    c.run_detached(
        r.path(),
        &["--name", "db", "--network", "back", "sleep", "100"],
    );
    assert!(!ping(&c, "web", "db"), "not on the same network yet");

    ok(
        &c,
        &[
            "network",
            "connect",
            "--alias",
            "store",
            "--ip",
            "10.231.2.77",
            "back",
            "web",
        ],
    );
    assert_eq!(interfaces(&c, "web"), ["eth0", "eth1"]);
    let addr = ok(
        &c,
        &["exec", "web", "ip", "-4", "-o", "addr", "show", "eth1"],
    );
    assert!(addr.contains("10.231.2.77/24"), "{addr}");
    // No second default route: eth0 stays the way out.
    let routes = ok(&c, &["exec", "web", "ip", "route"]);
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    assert!(
        routes.contains("default via 10.231.1.1 dev eth0"),
        "{routes}"
    );
    // Names both ways, on both networks.
    assert!(ping(&c, "web", "db"));
    assert!(ping(&c, "db", "store"));
    assert!(ping(&c, "db", "web"));
    let hosts = ok(&c, &["exec", "db", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("10.231.2.77\t") && hosts.contains(" web store"),
        "{hosts}"
    );
    let inspect = ok(&c, &["network", "inspect", "back"]);
    assert!(inspect.contains("10.231.2.77/24"), "{inspect}");
    // `inspect` of the container lists both networks as Docker does, with the
    // addresses and MACs the container really has.
    let networks = ok(
        &c,
        &[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}} {{$v.MacAddress}} {{join $v.Aliases \",\"}};{{end}}",
            "web",
        ],
    );
    let mac = |ifname: &str| {
        ok(
            &c,
            &[
                "exec",
                "web",
                "cat",
                &format!("/sys/class/net/{ifname}/address"),
            ],
        )
        .trim()
        .to_string()
    };
    let eth0 = ok(
        &c,
        &["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"],
    );
    let front_ip = eth0
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("eth0 has an address")
        .to_string();
    let id = ok(&c, &["inspect", "-f", "{{.Id}}", "web"]);
    let short = &id.trim()[..12];
    assert_eq!(
        networks.trim(),
        format!(
            "back 10.231.2.77 {} web,{short},store;front {front_ip} {} web,{short};",
            mac("eth1"),
            mac("eth0")
        ),
        "{networks}"
    );
    let top = ok(
        &c,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.IPAddress}} {{.NetworkSettings.MacAddress}}",
            "web",
        ],
    );
    assert_eq!(top.trim(), format!("{front_ip} {}", mac("eth0")));

    // Kept across a restart, with the same address.
    ok(&c, &["restart", "-t", "0", "web"]);
    assert_eq!(interfaces(&c, "web"), ["eth0", "eth1"]);
    assert!(ping(&c, "db", "store"));

    ok(&c, &["network", "disconnect", "back", "web"]);
    assert_eq!(interfaces(&c, "web"), ["eth0"]);
    assert!(!ping(&c, "web", "db"));
    let hosts = ok(&c, &["exec", "db", "cat", "/etc/hosts"]);
    assert!(!hosts.contains("web"), "{hosts}");
    let held = std::fs::read_dir(c.store_root().join("networks/back/ipam"))
        .expect("ipam")
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(held, 1, "only db holds an address on back");

    // A stopped container is connected for its next start.
    ok(&c, &["stop", "-t", "0", "web"]);
    // Stopped: on its network without an address, as in Docker.
    let stopped = ok(
        &c,
        &[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}",
            "web",
        ],
    );
    assert_eq!(stopped.trim(), "front=;");
    ok(&c, &["network", "connect", "back", "web"]);
    ok(&c, &["start", "web"]);
    assert_eq!(interfaces(&c, "web"), ["eth0", "eth1"]);
    assert!(ping(&c, "web", "db"));
    let out = c.ccrun(&["network", "rm", "back"]);
    assert_eq!(out.status.code(), Some(125), "in use by web and db");
    ok(&c, &["rm", "-f", "web", "db"]);
    ok(&c, &["network", "rm", "front", "back"]);
}

#[test]
fn connect_and_disconnect_refuse_what_cannot_work() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    ok(
        &c,
        &["network", "create", "--subnet", "10.231.3.0/24", "one"],
    );
    c.run_detached(
        r.path(),
        &["--name", "member", "--network", "one", "sleep", "100"],
    );
    c.run_detached(
        r.path(),
        &["--name", "hosted", "--network", "host", "sleep", "100"],
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["network", "connect", "one", "member"],
            "already connected",
        ),
        (
            &["network", "connect", "one", "hosted"],
            "cannot be connected",
        ),
        (&["network", "connect", "nosuch", "member"], "not found"),
        (
            &["network", "connect", "--ip", "10.9.9.9", "bridge", "member"],
            "not a free host address",
        ),
        (
            &["network", "connect", "--alias", "x", "bridge", "member"],
            "user-defined network",
        ),
        (
            &["network", "connect", "--alias", "bad!", "bridge", "member"],
            "invalid --network-alias",
        ),
        (
            &["network", "disconnect", "one", "member"],
            "created on network one",
        ),
        (
            &["network", "disconnect", "bridge", "member"],
            "is not connected",
        ),
    ];
    for (args, message) in cases {
        let out = c.ccrun(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    ok(&c, &["rm", "-f", "member", "hosted"]);
    ok(&c, &["network", "rm", "one"]);
}

#[test]
fn mac_address_and_links() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    c.run_detached(
        r.path(),
        &[
            "--name",
            "target",
            "--mac-address",
            "02:AA:BB:CC:DD:EE",
            "sleep",
            "100",
        ],
    );
    let mac = ok(
        &c,
        &["exec", "target", "cat", "/sys/class/net/eth0/address"],
    );
    assert_eq!(mac, "02:aa:bb:cc:dd:ee");
    let inspect = ok(&c, &["network", "inspect", "bridge"]);
    assert!(inspect.contains("02:aa:bb:cc:dd:ee"), "{inspect}");
    // A link on the default bridge, which has no names of its own.
    let out = c.run(
        r.path(),
        &[
            "--rm",
            "--link",
            "target:db",
            "sh",
            "-c",
            "grep -w db /etc/hosts && ping -c 1 -W 2 db >/dev/null && echo reached",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = stdout(&out);
    assert!(got.contains(" target") && got.ends_with("reached"), "{got}");
    ok(&c, &["stop", "-t", "0", "target"]);
    let out = c.run(r.path(), &["--rm", "--link", "target", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("non-running"), "{}", stderr(&out));
    ok(&c, &["rm", "-f", "target"]);
}

#[test]
fn a_renamed_container_is_found_by_its_new_name_only() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    ok(
        &c,
        &["network", "create", "--subnet", "10.231.5.0/24", "lan"],
    );
    for name in ["old", "peer"] {
        c.run_detached(
            r.path(),
            &["--name", name, "--network", "lan", "sleep", "100"],
        );
    }
    assert!(ping(&c, "peer", "old"));
    ok(&c, &["rename", "old", "new"]);
    assert!(ping(&c, "peer", "new"), "peers find it by its new name");
    assert!(!ping(&c, "peer", "old"), "and no longer by the old one");
    let own = ok(&c, &["exec", "new", "cat", "/etc/hosts"]);
    assert!(own.contains("\tnew") || own.contains(" new"), "{own}");
    assert!(!own.contains("old"), "{own}");
    ok(&c, &["rm", "-f", "new", "peer"]);
    ok(&c, &["network", "rm", "lan"]);
}
