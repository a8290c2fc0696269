//! Networking end to end with the legacy iptables backend (`CCRUN_FIREWALL=iptables`),
//! each test in a network namespace of its own, whose `nat` table ccrun shares with
//! rules of someone else: published ports reached from the namespace's loopback, over
//! the bridge, from another container (hairpin) and from another host, and nothing of
//! ccrun left in the table after rm and network rm — while the other rules stay.

mod support;

use support::net::{
    fetch, fetch_from_container, fetch_from_netns, nft_ruleset, outside_host, web_args,
};
use support::{stderr, stdout, Ccrun, Rootfs};

fn ccrun_iptables() -> Ccrun {
    Ccrun::in_netns().with_env("CCRUN_FIREWALL", "iptables")
}

/// `iptables-legacy -t nat -S` in the test's namespace.
fn nat_rules(c: &Ccrun) -> String {
    let out = c
        .netns()
        .command("iptables-legacy")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .expect("iptables-legacy");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn iptables(c: &Ccrun, rule: &str) {
    let out = c
        .netns()
        .command("iptables-legacy")
        .args(["-w", "-t", "nat"])
        .args(rule.split_whitespace())
        .output()
        .expect("iptables-legacy");
    assert!(out.status.success(), "{rule}: {}", stderr(&out));
}

#[test]
fn published_ports_work_and_leave_nothing_behind() {
    let (c, r) = (ccrun_iptables(), Rootfs::busybox());
    // Someone else's NAT rules, there before ccrun.
    iptables(&c, "-N OTHER");
    iptables(&c, "-A OTHER -s 192.0.2.0/24 -j RETURN");
    iptables(&c, "-A PREROUTING -i nosuch0 -j OTHER");
    iptables(
        &c,
        "-A POSTROUTING -s 198.51.100.0/24 -o nosuch0 -j MASQUERADE",
    );
    let before = nat_rules(&c);

    let out = c.ccrun(&["network", "create", "--subnet", "10.78.0.0/24", "ipnet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let web = web_args(
        "web",
        "hi-over-iptables",
        &["--network", "ipnet", "-p", "8080:80"],
    );
    let web: Vec<&str> = web.iter().map(String::as_str).collect();
    let id = c.run_detached(r.path(), &web);

    let rules = nat_rules(&c);
    assert!(rules.contains(&format!("ctr={id}")), "{rules}");
    assert!(rules.contains("-j CCRUN-POST-ipnet"), "{rules}");
    assert!(
        !nft_ruleset(&c).contains("ccrun"),
        "the nftables backend was used: {}",
        nft_ruleset(&c)
    );

    // From the namespace's loopback (OUTPUT DNAT, route_localnet, masquerade of
    // 127.0.0.0/8) and from its bridge address.
    assert_eq!(
        fetch_from_netns(&c, "http://127.0.0.1:8080/i.html"),
        "hi-over-iptables"
    );
    assert_eq!(
        fetch_from_netns(&c, "http://10.78.0.1:8080/i.html"),
        "hi-over-iptables"
    );
    // From another container of the network through the published port (hairpin).
    assert_eq!(
        fetch_from_container(
            &c,
            &r,
            &["--network", "ipnet"],
            "http://10.78.0.1:8080/i.html"
        ),
        "hi-over-iptables"
    );
    // From another host: a second namespace joined to the test's by a veth pair
    // (PREROUTING DNAT).
    let outside = outside_host(&c, "192.168.78");
    assert_eq!(
        fetch(
            || outside.command("busybox"),
            "http://192.168.78.1:8080/i.html"
        ),
        "hi-over-iptables"
    );

    // After rm the port rule is gone; after network rm nothing of ccrun is left and
    // the other rules are as they were.
    assert_eq!(c.ccrun(&["rm", "-f", "web"]).status.code(), Some(0));
    let rules = nat_rules(&c);
    assert!(!rules.contains("-j DNAT"), "{rules}");
    assert!(!rules.contains(&id), "{rules}");
    let out = c.ccrun(&["network", "rm", "ipnet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(nat_rules(&c), before);
}

#[test]
fn default_bridge_publishes_a_random_port() {
    let (c, r) = (ccrun_iptables(), Rootfs::busybox());
    let web = web_args("web", "hi-from-bridge", &["-p", "80"]);
    let web: Vec<&str> = web.iter().map(String::as_str).collect();
    c.run_detached(r.path(), &web);
    let bound = stdout(&c.ccrun(&["port", "web", "80"]));
    let port: u16 = bound
        .strip_prefix("0.0.0.0:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("port output {bound:?}"));
    assert_eq!(
        fetch_from_netns(&c, &format!("http://127.0.0.1:{port}/i.html")),
        "hi-from-bridge"
    );
    assert_eq!(
        fetch_from_netns(&c, &format!("http://172.17.0.1:{port}/i.html")),
        "hi-from-bridge"
    );
    // A host port already published is refused, found in the iptables rules.
    let rootfs = r.path().to_str().expect("utf-8");
    let taken = format!("{port}:80");
    let out = c.ccrun(&["run", "-d", "-p", &taken, "--rootfs", rootfs, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already published"),
        "{}",
        stderr(&out)
    );

    // An unknown backend is one clear line.
    let out = c
        .cmd()
        .env("CCRUN_FIREWALL", "ipchains")
        .args(["run", "--rm", "-p", "80", "--rootfs", rootfs, "true"])
        .output()
        .expect("ccrun");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("CCRUN_FIREWALL=\"ipchains\""), "{err}");

    assert_eq!(c.ccrun(&["stop", "-t", "0", "web"]).status.code(), Some(0));
    assert!(!nat_rules(&c).contains("-j DNAT"), "{}", nat_rules(&c));
    assert_eq!(c.ccrun(&["rm", "web"]).status.code(), Some(0));
    let rules = nat_rules(&c);
    assert!(!rules.contains("-j DNAT"), "{rules}");
    // The default network stays (it cannot be removed), with its masquerade chain.
    assert!(rules.contains("-N CCRUN-POST-bridge"), "{rules}");
}
