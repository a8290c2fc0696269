//! Networking end to end, each test in a network namespace of its own (so the bridge,
//! veths and NAT rules never touch the host's): containers on the default bridge and on
//! a user-defined network, published ports from the namespace's loopback and bridge
//! side, name resolution, `--network none`, and what is left after stop and rm.

mod support;

use std::time::{Duration, Instant};

use support::net::{
    fetch, fetch_from_container, fetch_from_netns, fetch_within, nft_ruleset, outside_host,
    web_args,
};
use support::{stderr, stdout, Ccrun, Rootfs};

fn run_d(c: &Ccrun, r: &Rootfs, args: &[&str]) -> String {
    c.run_detached(r.path(), args)
}

fn ip_of(c: &Ccrun, name: &str) -> String {
    stdout(&c.ccrun(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name]))
}

fn links(c: &Ccrun) -> String {
    let out = c
        .netns()
        .command("ip")
        .args(["-br", "link"])
        .output()
        .expect("ip link");
    stdout(&out)
}

/// Asserts that no container veth is left in the test's namespace. A container's veth
/// goes with its network namespace, which the kernel destroys asynchronously after the
/// container's last process is gone, so this waits a little for that.
fn assert_no_veth_left(c: &Ccrun) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while links(c).contains("veth") {
        assert!(Instant::now() < deadline, "veth left: {}", links(c));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn allocations(c: &Ccrun, network: &str) -> Vec<String> {
    let dir = c.store_root().join("networks").join(network).join("ipam");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn default_bridge_connects_containers_and_publishes_ports() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    let web = web_args("web", "hi-from-web", &["-p", "8080:80"]);
    let web: Vec<&str> = web.iter().map(String::as_str).collect();
    let id = run_d(&c, &r, &web);
    let ip = ip_of(&c, "web");
    assert!(ip.starts_with("172.17."), "{ip}");
    // Container to container over the bridge.
    let got = fetch_from_container(&c, &r, &[], &format!("http://{ip}/i.html"));
    assert_eq!(got, "hi-from-web");
    // The published port, from the namespace's loopback and from the bridge side.
    assert_eq!(
        fetch_from_netns(&c, "http://127.0.0.1:8080/i.html"),
        "hi-from-web"
    );
    assert_eq!(
        fetch_from_netns(&c, "http://172.17.0.1:8080/i.html"),
        "hi-from-web"
    );
    assert_eq!(stdout(&c.ccrun(&["port", "web"])), "80/tcp -> 0.0.0.0:8080");
    // A container sharing web's network namespace reaches it on localhost and sees
    // its interface, with and without a user namespace of its own.
    for userns in ["private", "host"] {
        let out = c.ccrun(&[
            "run", "--rm", "--userns", userns, "--network", "container:web", "--rootfs",
            r.path().to_str().expect("utf-8"), "sh", "-c",
            "wget -q -O - http://127.0.0.1/i.html; ls /sys/class/net | grep -c eth0; grep -c 172.17 /etc/hosts",
        ]);
        assert_eq!(
            stdout(&out),
            "hi-from-web\n1\n1",
            "{userns}: {}",
            stderr(&out)
        );
    }
    // From another host: a second namespace joined to the test's by a veth pair.
    let outside = outside_host(&c, "192.168.77");
    assert_eq!(
        fetch(
            || outside.command("busybox"),
            "http://192.168.77.1:8080/i.html"
        ),
        "hi-from-web"
    );
    let ps = stdout(&c.ccrun(&["ps"]));
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    // /etc/hosts names the container's own address.
    let hosts = stdout(&c.ccrun(&["exec", "web", "cat", "/etc/hosts"]));
    assert!(hosts.contains(&format!("{ip}\t{}", &id[..12])), "{hosts}");

    // A random host port, reported by `port`.
    let web2 = web_args("web2", "hi-from-web2", &["-p", "80"]);
    let web2: Vec<&str> = web2.iter().map(String::as_str).collect();
    run_d(&c, &r, &web2);
    let bound = stdout(&c.ccrun(&["port", "web2", "80"]));
    let port: u16 = bound
        .strip_prefix("0.0.0.0:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("port output {bound:?}"));
    assert_ne!(port, 0);
    assert_eq!(
        fetch_from_netns(&c, &format!("http://127.0.0.1:{port}/i.html")),
        "hi-from-web2"
    );

    // A host port already published is a clear error.
    let rootfs = r.path().to_str().expect("utf-8");
    let out = c.ccrun(&[
        "run", "-d", "-p", "8080:80", "--rootfs", rootfs, "sleep", "10",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("8080"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    // After stop and rm nothing of the container is left: no veth, no rule, no address.
    assert!(links(&c).contains("veth"));
    assert_eq!(c.ccrun(&["stop", "-t", "0", "web"]).status.code(), Some(0));
    assert!(!nft_ruleset(&c).contains(&id), "rules left after stop");
    assert_eq!(c.ccrun(&["rm", "web"]).status.code(), Some(0));
    assert_eq!(c.ccrun(&["rm", "-f", "web2"]).status.code(), Some(0));
    let leftover: Vec<String> = c
        .ccrun(&["ps", "-aq"])
        .stdout
        .iter()
        .map(|b| b.to_string())
        .collect();
    for id in leftover.iter().filter(|s| s.len() == 12) {
        let _ = c.ccrun(&["rm", "-f", id]);
    }
    assert_no_veth_left(&c);
    assert!(!nft_ruleset(&c).contains("dport"), "{}", nft_ruleset(&c));
    assert_eq!(allocations(&c, "bridge"), Vec::<String>::new());
}

#[test]
fn user_network_resolves_names_and_none_has_only_loopback() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    let out = c.ccrun(&["network", "create", "--subnet", "10.77.0.0/24", "testnet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let db = web_args(
        "db",
        "hi-from-db",
        &["--network", "testnet", "--ip", "10.77.0.50"],
    );
    let db: Vec<&str> = db.iter().map(String::as_str).collect();
    run_d(&c, &r, &db);
    assert_eq!(ip_of(&c, "db"), "10.77.0.50");
    // By name, from another container on the same network.
    let got = fetch_from_container(&c, &r, &["--network", "testnet"], "http://db/i.html");
    assert_eq!(got, "hi-from-db");
    // The default bridge does not resolve names (as in Docker).
    let rootfs = r.path().to_str().expect("utf-8");
    let out = c.ccrun(&[
        "run",
        "--rm",
        "--rootfs",
        rootfs,
        "sh",
        "-c",
        "grep -cw db /etc/hosts || true",
    ]);
    assert_eq!(stdout(&out), "0");
    // --network none: loopback only.
    let out = c.ccrun(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        rootfs,
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(stdout(&out), "lo");
    // A container that died unobserved (its monitor was killed first) leaves its
    // address and port rule behind; the next container that needs them gets them.
    let stale = run_d(
        &c,
        &r,
        &[
            "--network",
            "testnet",
            "--ip",
            "10.77.0.60",
            "-p",
            "9090:80",
            "sleep",
            "100",
        ],
    );
    let record = c.record(&stale);
    for key in ["monitor_pid", "pid"] {
        let pid = record[key].as_i64().expect("pid") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill");
        support::wait_until(
            &format!("{key} {pid} to die"),
            Duration::from_secs(5),
            || !support::alive(pid),
        );
    }
    let fresh = c.ccrun(&[
        "run",
        "-d",
        "--network",
        "testnet",
        "--ip",
        "10.77.0.60",
        "-p",
        "9090:80",
        "--rootfs",
        rootfs,
        "sleep",
        "100",
    ]);
    assert_eq!(fresh.status.code(), Some(0), "{}", stderr(&fresh));
    assert_eq!(
        c.ccrun(&["rm", "-f", &stale, &stdout(&fresh)])
            .status
            .code(),
        Some(0)
    );
    // A network in use cannot go; an unused one can, with its bridge.
    let out = c.ccrun(&["network", "rm", "testnet"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("db"), "{}", stderr(&out));
    assert_eq!(c.ccrun(&["rm", "-f", "db"]).status.code(), Some(0));
    let bridge = stdout(&c.ccrun(&["network", "inspect", "testnet"]));
    assert!(bridge.contains("br-"), "{bridge}");
    assert_eq!(
        c.ccrun(&["network", "rm", "testnet"]).status.code(),
        Some(0)
    );
    assert!(!links(&c).contains("br-"), "{}", links(&c));
    let out = c.ccrun(&[
        "run",
        "--rm",
        "--network",
        "testnet",
        "--rootfs",
        rootfs,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn twenty_concurrent_containers_get_distinct_addresses() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    let ids = c.start_concurrently(r.path(), 20, "n");
    let mut ips: Vec<String> = (0..20).map(|i| ip_of(&c, &format!("n{i}"))).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
    assert_eq!(allocations(&c, "bridge").len(), 20);
    c.remove_concurrently(&ids);
    assert_eq!(allocations(&c, "bridge"), Vec::<String>::new());
    assert_no_veth_left(&c);
}

/// The MAC ccrun gives the container with address `ip`: 02:42 and the address, as Docker.
fn derived_mac(ip: &str) -> String {
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().expect("octet")).collect();
    let hex: Vec<String> = octets.iter().map(|o| format!("{o:02x}")).collect();
    format!("02:42:{}", hex.join(":"))
}

#[test]
fn a_restarted_container_answers_on_its_published_port_at_once() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    let web = web_args("web", "hi-again", &["-p", "8080:80"]);
    let web: Vec<&str> = web.iter().map(String::as_str).collect();
    run_d(&c, &r, &web);
    // The namespace's neighbour cache learns the container's MAC on the way.
    assert_eq!(
        fetch_from_netns(&c, "http://127.0.0.1:8080/i.html"),
        "hi-again"
    );
    let ip = ip_of(&c, "web");
    let mac = || stdout(&c.ccrun(&["exec", "web", "cat", "/sys/class/net/eth0/address"]));
    assert_eq!(mac(), derived_mac(&ip));
    let out = c.ccrun(&["restart", "-t", "0", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(ip_of(&c, "web"), ip);
    assert_eq!(mac(), derived_mac(&ip));
    let out = c.ccrun(&["network", "inspect", "bridge"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    let macs: Vec<&str> = json[0]["Containers"]
        .as_object()
        .expect("containers")
        .values()
        .filter_map(|c| c["MacAddress"].as_str())
        .collect();
    assert_eq!(macs, [derived_mac(&ip)]);
    // Each try gives up after a second: a connection to a MAC nobody has any more
    // would hang on SYN retransmissions.
    let got = fetch_within(
        || {
            let mut cmd = c.netns().command("timeout");
            cmd.args(["1", "busybox"]);
            cmd
        },
        "http://127.0.0.1:8080/i.html",
        Duration::from_secs(2),
    );
    assert_eq!(got, "hi-again");
}

#[test]
fn none_has_loopback_up() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    let out = c.run(
        r.path(),
        &[
            "--rm",
            "--network",
            "none",
            "ping",
            "-c1",
            "-W1",
            "127.0.0.1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Runs `ip ARGS` in the test's namespace, asserting it works.
fn ip_cmd(c: &Ccrun, args: &str) {
    let out = c
        .netns()
        .command("ip")
        .args(args.split_whitespace())
        .output()
        .expect("ip");
    assert!(out.status.success(), "ip {args}: {}", stderr(&out));
}

fn subnet_of(c: &Ccrun, network: &str) -> String {
    let out = c.ccrun(&["network", "inspect", network]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    json[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .expect("subnet")
        .to_string()
}

#[test]
fn networks_get_subnets_the_host_does_not_use() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    // Podman's default subnet and the first of ccrun's pool are taken (on a bridge: the
    // kernel has no dummy interfaces here), by an address
    // and by a route.
    ip_cmd(&c, "link add taken0 type bridge");
    ip_cmd(&c, "link set taken0 up");
    ip_cmd(&c, "addr add 10.88.0.1/16 dev taken0");
    ip_cmd(&c, "route add 172.17.0.0/16 dev taken0");
    assert_eq!(subnet_of(&c, "bridge"), "172.18.0.0/16");
    run_d(&c, &r, &["--name", "one", "sleep", "100"]);
    assert!(
        ip_of(&c, "one").starts_with("172.18."),
        "{}",
        ip_of(&c, "one")
    );
    // Chosen once: it stays when the route that was in the way goes.
    ip_cmd(&c, "route del 172.17.0.0/16 dev taken0");
    assert_eq!(subnet_of(&c, "bridge"), "172.18.0.0/16");

    // An explicit subnet overlapping the host's addresses or routes is refused.
    let out = c.ccrun(&["network", "create", "--subnet", "10.88.7.0/24", "clash"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("10.88.0.0/16"), "{}", stderr(&out));
    // A picked one skips them too (podman's networks take 10.89.N.0/24 as well).
    ip_cmd(&c, "route add 10.89.0.0/24 dev taken0");
    let out = c.ccrun(&["network", "create", "mine"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(subnet_of(&c, "mine"), "10.89.1.0/24");
}

/// The address `name` resolves to in container `inside`: the first line of its
/// /etc/hosts naming it, as the C library reads it.
fn resolve(c: &Ccrun, inside: &str, name: &str) -> Option<String> {
    let out = c.ccrun(&["exec", inside, "cat", "/etc/hosts"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).lines().find_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let addr = words.next()?;
        words.any(|w| w == name).then(|| addr.to_string())
    })
}

/// Asserts that every container of `members` resolves every (name, container) of
/// `names` to that container's current address.
fn assert_resolves(c: &Ccrun, members: &[&str], names: &[(&str, &str)]) {
    for who in members {
        for (name, owner) in names {
            assert_eq!(
                resolve(c, who, name),
                Some(ip_of(c, owner)),
                "{name} (container {owner}) seen from {who}"
            );
        }
    }
}

#[test]
fn user_network_names_follow_restarts_stops_ip_changes_and_removal() {
    let (c, r) = (Ccrun::in_netns(), Rootfs::busybox());
    let out = c.ccrun(&["network", "create", "--subnet", "10.78.0.0/24", "names"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for name in ["app", "db", "web"] {
        run_d(
            &c,
            &r,
            &["--name", name, "--network", "names", "sleep", "100"],
        );
    }
    let everyone = [("app", "app"), ("db", "db"), ("web", "web")];
    assert_resolves(&c, &["app", "db", "web"], &everyone);

    // A restart: its peers find it again as soon as it is back, through the resolver.
    let out = c.ccrun(&["restart", "-t", "0", "db"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_resolves(&c, &["app", "db", "web"], &everyone);
    let ping = c.ccrun(&["exec", "app", "ping", "-c1", "-W2", "db"]);
    assert_eq!(
        ping.status.code(),
        Some(0),
        "{}{}",
        stdout(&ping),
        stderr(&ping)
    );

    // A stop: it is gone from its peers' files.
    let old_web = ip_of(&c, "web");
    assert_eq!(c.ccrun(&["stop", "-t", "0", "web"]).status.code(), Some(0));
    assert_eq!(resolve(&c, "app", "web"), None);
    assert_eq!(resolve(&c, "db", "web"), None);

    // Meanwhile a newcomer with aliases takes its address, so it comes back with
    // another one; everyone, itself included, sees the new one.
    run_d(
        &c,
        &r,
        &[
            "--name",
            "other",
            "--network",
            "names",
            "--ip",
            &old_web,
            "--network-alias",
            "cache",
            "--network-alias",
            "kv",
            "sleep",
            "100",
        ],
    );
    let out = c.ccrun(&["start", "web"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(ip_of(&c, "web"), old_web);
    let all = ["app", "db", "web", "other"];
    let names = [
        ("app", "app"),
        ("db", "db"),
        ("web", "web"),
        ("other", "other"),
        ("cache", "other"),
        ("kv", "other"),
    ];
    assert_resolves(&c, &all, &names);

    // Removal.
    assert_eq!(c.ccrun(&["rm", "-f", "other"]).status.code(), Some(0));
    for name in ["other", "cache", "kv"] {
        assert_eq!(resolve(&c, "app", name), None, "{name}");
    }
    assert_resolves(&c, &["app", "db", "web"], &everyone);

    // Aliases are for user-defined networks only, as in Docker.
    let rootfs = r.path().to_str().expect("utf-8");
    for network in ["bridge", "none", "host"] {
        let out = c.ccrun(&[
            "run",
            "--rm",
            "--network",
            network,
            "--network-alias",
            "x",
            "--rootfs",
            rootfs,
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{network}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("alias"), "{}", stderr(&out));
    }
}
