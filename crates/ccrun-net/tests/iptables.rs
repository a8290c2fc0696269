//! The iptables backend against the kernel's legacy `ip_tables`, each test
//! in a network namespace of its own (its own `nat` table), checked with
//! `iptables-legacy`.

mod common;

use std::net::Ipv4Addr;

use ccrun_net::firewall::{Backend, Firewall};
use ccrun_net::{PortMapping, Protocol, Subnet};
use common::TestNs;

fn iptables(ns: &TestNs) -> Firewall {
    ns.enter(|| Firewall::with_backend(Backend::Iptables))
        .expect("open iptables")
}

/// `iptables-legacy -t nat -S` in the namespace.
fn rules(ns: &TestNs) -> String {
    ns.ok(&["iptables-legacy", "-w", "-t", "nat", "-S"])
}

/// `iptables-legacy-save -c -t nat` without its comment lines (dates).
fn save(ns: &TestNs) -> Vec<String> {
    ns.ok(&["iptables-legacy-save", "-c", "-t", "nat"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn subnet(octet: u8) -> Subnet {
    Subnet::new(Ipv4Addr::new(10, octet, 0, 0), 24).expect("subnet")
}

fn mapping(host_ip: Option<[u8; 4]>, host: u16, ctr: u16, protocol: Protocol) -> PortMapping {
    PortMapping {
        host_ip: host_ip.map(Ipv4Addr::from),
        host_port: host,
        container_port: ctr,
        protocol,
    }
}

#[test]
fn masquerade_and_port_rules_are_added_and_removed() {
    let host = TestNs::new();
    let mut fw = iptables(&host);
    assert_eq!(fw.backend(), Backend::Iptables);
    host.enter(|| fw.network_ready("test"))
        .map(|ready| assert!(!ready))
        .unwrap();
    host.enter(|| fw.ensure_network("test", "ccrun-tbr", subnet(93)))
        .unwrap();
    let s = rules(&host);
    for line in [
        "-N CCRUN-PORTS",
        "-N CCRUN-POST-test",
        "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"ccrun published ports\" -j CCRUN-PORTS",
        "-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment \"ccrun published ports\" -j CCRUN-PORTS",
        "-A POSTROUTING -m comment --comment \"net=test\" -j CCRUN-POST-test",
        "-A CCRUN-POST-test -s 10.93.0.0/24 ! -d 10.93.0.0/24 ! -o ccrun-tbr -m comment --comment \"net=test\" -j MASQUERADE",
        "-A CCRUN-POST-test -s 10.93.0.0/24 -o ccrun-tbr -m conntrack --ctstate DNAT -m comment --comment \"net=test\" -j MASQUERADE",
        "-A CCRUN-POST-test -s 127.0.0.0/8 -o ccrun-tbr -m comment --comment \"net=test\" -j MASQUERADE",
    ] {
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
    }
    assert!(host.enter(|| fw.network_ready("test")).unwrap());
    // Idempotent: a second run leaves exactly the same table.
    host.enter(|| fw.ensure_network("test", "ccrun-tbr", subnet(93)))
        .unwrap();
    assert_eq!(rules(&host), s);

    let ip = Ipv4Addr::new(10, 93, 0, 2);
    let ports = [
        mapping(None, 8080, 80, Protocol::Tcp),
        mapping(Some([127, 0, 0, 1]), 5353, 53, Protocol::Udp),
    ];
    host.enter(|| fw.add_ports("c1", ip, &ports)).unwrap();
    host.enter(|| {
        fw.add_ports(
            "c2",
            Ipv4Addr::new(10, 93, 0, 3),
            &[mapping(None, 9090, 90, Protocol::Tcp)],
        )
    })
    .unwrap();
    let s = rules(&host);
    for line in [
        "-A CCRUN-PORTS -p tcp -m tcp --dport 8080 -m comment --comment \"ctr=c1 tcp 0.0.0.0:8080 10.93.0.2:80\" -j DNAT --to-destination 10.93.0.2:80",
        "-A CCRUN-PORTS -d 127.0.0.1/32 -p udp -m udp --dport 5353 -m comment --comment \"ctr=c1 udp 127.0.0.1:5353 10.93.0.2:53\" -j DNAT --to-destination 10.93.0.2:53",
        "-A CCRUN-PORTS -p tcp -m tcp --dport 9090 -m comment --comment \"ctr=c2 tcp 0.0.0.0:9090 10.93.0.3:90\" -j DNAT --to-destination 10.93.0.3:90",
    ] {
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
    }
    let listed = host.enter(|| fw.port_rules()).unwrap();
    let c1: Vec<PortMapping> = listed
        .iter()
        .filter(|r| r.container_id == "c1")
        .map(|r| r.mapping)
        .collect();
    assert_eq!(c1, ports);
    assert!(listed
        .iter()
        .all(|r| r.container_id != "c1" || r.container_ip == ip));

    assert_eq!(host.enter(|| fw.remove_container("c1")).unwrap(), 2);
    assert_eq!(host.enter(|| fw.remove_container("c1")).unwrap(), 0);
    let s = rules(&host);
    assert!(!s.contains("ctr=c1"), "{s}");
    assert!(s.contains("ctr=c2"), "{s}");

    // The network goes; CCRUN-PORTS stays while c2 publishes a port...
    host.enter(|| fw.remove_network("test")).unwrap();
    let s = rules(&host);
    assert!(!s.contains("CCRUN-POST-test"), "{s}");
    assert!(s.contains("-N CCRUN-PORTS"), "{s}");
    assert!(!host.enter(|| fw.network_ready("test")).unwrap());
    // ...and once the last port and network are gone nothing of ccrun is left.
    host.enter(|| fw.ensure_network("test", "ccrun-tbr", subnet(93)))
        .unwrap();
    assert_eq!(host.enter(|| fw.remove_container("c2")).unwrap(), 1);
    host.enter(|| fw.remove_network("test")).unwrap();
    host.enter(|| fw.remove_network("test")).unwrap();
    let s = rules(&host);
    assert!(!s.contains("CCRUN"), "{s}");
    assert!(!s.contains("ccrun"), "{s}");
    // The nftables backend was not used.
    assert_eq!(host.nft_table(), "");
}

#[test]
fn foreign_rules_and_counters_survive() {
    let host = TestNs::new();
    // Someone else's rules, chains and counters, in every chain ccrun touches.
    for cmd in [
        "-N FOREIGN",
        "-A FOREIGN -s 192.0.2.0/24 -j RETURN",
        "-A FOREIGN -p tcp -m tcp --dport 22 -j DNAT --to-destination 192.0.2.1:2222",
        "-A PREROUTING -i eth9 -j FOREIGN",
        "-A PREROUTING -c 3 300 -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353",
        "-A OUTPUT -d 198.51.100.7/32 -j FOREIGN",
        "-A POSTROUTING -c 7 700 -s 192.0.2.0/24 -o eth9 -m comment --comment keep-me -j MASQUERADE",
        "-A POSTROUTING -d 203.0.113.0/24 -j SNAT --to-source 192.0.2.9",
    ] {
        let mut args = vec!["iptables-legacy", "-w", "-t", "nat"];
        args.extend(cmd.split_whitespace());
        host.ok(&args);
    }
    let before = save(&host);
    assert!(
        before.iter().any(|l| l.starts_with("[7:700]")),
        "{before:?}"
    );

    let mut fw = iptables(&host);
    host.enter(|| fw.ensure_network("test", "ccrun-tbr", subnet(94)))
        .unwrap();
    host.enter(|| {
        fw.add_ports(
            "c1",
            Ipv4Addr::new(10, 94, 0, 2),
            &[mapping(None, 8080, 80, Protocol::Tcp)],
        )
    })
    .unwrap();
    let foreign = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| !l.contains("CCRUN") && !l.contains("ccrun"))
            .cloned()
            .collect()
    };
    let during = save(&host);
    assert_eq!(foreign(&during), before, "{during:#?}");
    // ccrun's jumps come first in the built-in chains.
    let pre = rules(&host);
    let first = pre
        .lines()
        .find(|l| l.starts_with("-A PREROUTING"))
        .unwrap_or_default();
    assert!(first.ends_with("-j CCRUN-PORTS"), "{pre}");

    // iptables itself rewrites the table (parsing ccrun's rules) between
    // ccrun's changes; ccrun still finds its rules afterwards.
    host.ok(&[
        "iptables-legacy",
        "-w",
        "-t",
        "nat",
        "-A",
        "FOREIGN",
        "-j",
        "RETURN",
    ]);
    let before = foreign(&save(&host));
    assert_eq!(host.enter(|| fw.port_rules()).unwrap().len(), 1);
    assert!(host.enter(|| fw.network_ready("test")).unwrap());
    assert_eq!(host.enter(|| fw.remove_container("c1")).unwrap(), 1);
    host.enter(|| fw.remove_network("test")).unwrap();
    let after = save(&host);
    assert_eq!(after, before, "{after:#?}");
}

#[test]
fn many_port_rules_in_one_table() {
    let host = TestNs::new();
    let mut fw = iptables(&host);
    host.enter(|| fw.ensure_network("test", "ccrun-tbr", subnet(95)))
        .unwrap();
    for i in 0..50u16 {
        let ports: Vec<PortMapping> = (0..4)
            .map(|j| mapping(None, 20000 + i * 4 + j, 80 + j, Protocol::Tcp))
            .collect();
        host.enter(|| {
            fw.add_ports(
                &format!("c{i}"),
                Ipv4Addr::new(10, 95, 0, 2 + i as u8),
                &ports,
            )
        })
        .unwrap();
    }
    assert_eq!(host.enter(|| fw.port_rules()).unwrap().len(), 200);
    let dnat = rules(&host).matches("-j DNAT").count();
    assert_eq!(dnat, 200);
    for i in (0..50).step_by(2) {
        assert_eq!(
            host.enter(|| fw.remove_container(&format!("c{i}")))
                .unwrap(),
            4
        );
    }
    let left = host.enter(|| fw.port_rules()).unwrap();
    assert_eq!(left.len(), 100);
    assert!(left.iter().all(|r| {
        let n: u16 = r.container_id[1..].parse().unwrap();
        n % 2 == 1
    }));
}

#[test]
fn concurrent_changes_are_not_lost() {
    let host = TestNs::new();
    iptables(&host);
    // Four threads, each its own connection, changing the same table at once:
    // iptables' lock and the kernel's EAGAIN on a stale replacement keep every
    // change.
    std::thread::scope(|s| {
        let handles: Vec<std::thread::ScopedJoinHandle<ccrun_net::Result<()>>> = (0..4u16)
            .map(|t| {
                let host = &host;
                s.spawn(move || {
                    let mut fw = iptables(host);
                    host.enter(|| fw.ensure_network("test", "ccrun-tbr", subnet(96)))?;
                    for i in 0..10u16 {
                        let id = format!("t{t}-{i}");
                        let ip = Ipv4Addr::new(10, 96, t as u8, i as u8 + 2);
                        let ports = [mapping(None, 30000 + t * 100 + i, 80, Protocol::Tcp)];
                        host.enter(|| fw.add_ports(&id, ip, &ports))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("changes");
        }
    });
    let mut fw = iptables(&host);
    assert_eq!(host.enter(|| fw.port_rules()).unwrap().len(), 40);
    let s = rules(&host);
    assert_eq!(s.matches("-j CCRUN-POST-test").count(), 1, "{s}");
    assert_eq!(s.matches("-j CCRUN-PORTS").count(), 2, "{s}");
    assert_eq!(s.matches("-A CCRUN-POST-test").count(), 3, "{s}");
}

#[test]
fn nftables_answers_on_this_kernel() {
    // The automatic choice (no CCRUN_FIREWALL) asks nf_tables first; this kernel
    // has it, so the probe must succeed, in a fresh namespace too.
    let host = TestNs::new();
    host.enter(|| ccrun_net::nft::Nft::new()?.probe()).unwrap();
    let fw = host
        .enter(|| Firewall::with_backend(Backend::Nftables))
        .unwrap();
    assert_eq!(fw.backend().to_string(), "nftables");
}
