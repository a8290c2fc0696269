//! Integration tests against the kernel: every test builds its own "host"
//! and "container" network namespaces and removes them, whatever happens.
//! No traffic leaves those namespaces.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use ccrun_net::{
    attach, detach, detach_exited, ensure_network, remove_stale, veth_name, Error, PortMapping,
    Protocol,
};
use common::{allocations, config, NsProcess, TestNs};

const TIMEOUT: Duration = Duration::from_secs(3);

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: None,
        host_port,
        container_port,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn ensure_network_creates_bridge_idempotently() {
    let host = TestNs::new();
    let cfg = config(90);
    host.enter(|| ensure_network(&cfg)).unwrap();
    host.enter(|| ensure_network(&cfg)).unwrap();

    let addr = host.ok(&["ip", "-4", "-o", "addr", "show", "dev", "ccrun-tbr"]);
    assert!(addr.contains("10.90.0.1/24"), "{addr}");
    let link = host.ok(&["ip", "-d", "link", "show", "dev", "ccrun-tbr"]);
    assert!(
        link.contains("bridge") && link.contains("mtu 1500"),
        "{link}"
    );
    assert!(link.contains(",UP"), "{link}");
    assert_eq!(
        host.ok(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );
    assert_eq!(
        host.ok(&["cat", "/proc/sys/net/ipv4/conf/ccrun-tbr/route_localnet"])
            .trim(),
        "1"
    );
    let table = host.nft_table();
    assert_eq!(table.matches("masquerade").count(), 3, "{table}");
    assert_eq!(table.matches("jump ports").count(), 2, "{table}");
    assert!(table.contains("oifname != \"ccrun-tbr\""), "{table}");
    assert!(table.contains("ip saddr 10.90.0.0/24"), "{table}");
    assert!(table.contains("ip saddr 127.0.0.0/8"), "{table}");
    assert!(table.contains("ct status dnat"), "{table}");
    assert!(table.contains("comment \"net=test\""), "{table}");

    host.enter(|| ccrun_net::remove_network(&cfg)).unwrap();
    assert!(!host.has_link("ccrun-tbr"));
    let table = host.nft_table();
    assert!(!table.contains("postrouting-test"), "{table}");
    assert!(table.contains("chain ports"), "{table}");
    host.enter(|| ccrun_net::remove_network(&cfg)).unwrap();
}

#[test]
fn ensure_network_concurrently() {
    let host = TestNs::new();
    let cfg = config(91);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| host.enter(|| ensure_network(&cfg))))
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    let table = host.nft_table();
    assert_eq!(table.matches("masquerade").count(), 3, "{table}");
    assert_eq!(table.matches("jump ports").count(), 2, "{table}");
    let addrs = host.ok(&["ip", "-4", "-o", "addr", "show", "dev", "ccrun-tbr"]);
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
}

#[test]
fn containers_reach_each_other_and_the_gateway() {
    let host = TestNs::new();
    let (c1, c2) = (TestNs::new(), TestNs::new());
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(92);
    let a1 = host
        .enter(|| attach(&cfg, ipam.path(), c1.fd(), "c1", None, &[]))
        .unwrap();
    let a2 = host
        .enter(|| attach(&cfg, ipam.path(), c2.fd(), "c2", None, &[]))
        .unwrap();
    assert_eq!(a1.ip, Ipv4Addr::new(10, 92, 0, 2));
    assert_eq!(a2.ip, Ipv4Addr::new(10, 92, 0, 3));
    assert_eq!(a1.host_veth, veth_name("c1"));
    assert_eq!(a1.mtu, 1500);

    let eth = c1.ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(eth.contains("10.92.0.2/24"), "{eth}");
    let route = c1.ok(&["ip", "route", "show", "default"]);
    assert!(route.contains("default via 10.92.0.1 dev eth0"), "{route}");
    let lo = c1.ok(&["ip", "link", "show", "dev", "lo"]);
    assert!(lo.contains(",UP"), "{lo}");
    let port = host.ok(&["ip", "link", "show", "dev", &a1.host_veth]);
    assert!(
        port.contains("master ccrun-tbr") && port.contains(",UP"),
        "{port}"
    );
    assert_eq!(allocations(ipam.path()), vec!["10.92.0.2", "10.92.0.3"]);

    let busybox = ccrun_testkit::busybox();
    let busybox = busybox.to_str().unwrap();
    c1.ok(&[busybox, "ping", "-c1", "-W2", "10.92.0.3"]);
    c2.ok(&[busybox, "ping", "-c1", "-W2", "10.92.0.2"]);
    c1.ok(&[busybox, "ping", "-c1", "-W2", "10.92.0.1"]);
}

/// A TCP echo server in `ns` on `port`, serving `n` connections.
fn tcp_echo(ns: &TestNs, port: u16, n: usize) -> std::thread::JoinHandle<()> {
    let listener = ns
        .enter(|| Ok(TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).unwrap()))
        .unwrap();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut buf = [0u8; 64];
            if let Ok(k) = conn.read(&mut buf) {
                let _ = conn.write_all(&buf[..k]);
            }
        }
    })
}

/// Connects to `addr` from `ns` and checks the echo.
fn tcp_roundtrip(ns: &TestNs, addr: SocketAddrV4) -> std::io::Result<()> {
    let mut conn = ns
        .enter(|| Ok(TcpStream::connect_timeout(&addr.into(), TIMEOUT)))
        .unwrap()?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.write_all(b"hello")?;
    let mut buf = [0u8; 5];
    conn.read_exact(&mut buf)?;
    assert_eq!(&buf, b"hello");
    Ok(())
}

#[test]
fn published_ports_reach_the_container() {
    let host = TestNs::new();
    let (c1, c2) = (TestNs::new(), TestNs::new());
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(93);
    let ports = vec![
        tcp(8080, 80),
        PortMapping {
            protocol: Protocol::Udp,
            ..tcp(5353, 53)
        },
        tcp(0, 81),
    ];
    let a1 = host
        .enter(|| attach(&cfg, ipam.path(), c1.fd(), "c1", None, &ports))
        .unwrap();
    host.enter(|| attach(&cfg, ipam.path(), c2.fd(), "c2", None, &[]))
        .unwrap();
    let random = a1.ports[2].host_port;
    assert_ne!(random, 0);
    assert_eq!(a1.ports[..2], ports[..2]);

    let server = tcp_echo(&c1, 80, 4);
    let server81 = tcp_echo(&c1, 81, 1);
    // (a) the bridge-side host address, (b) localhost, (c) hairpin from
    // another container through the gateway, (d) a picked host port.
    tcp_roundtrip(&host, SocketAddrV4::new(cfg.gateway, 8080)).expect("via gateway address");
    tcp_roundtrip(&host, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)).expect("via 127.0.0.1");
    tcp_roundtrip(&c2, SocketAddrV4::new(cfg.gateway, 8080)).expect("hairpin from c2");
    tcp_roundtrip(&c1, SocketAddrV4::new(cfg.gateway, 8080)).expect("hairpin to itself");
    tcp_roundtrip(&host, SocketAddrV4::new(Ipv4Addr::LOCALHOST, random)).expect("picked port");
    server.join().unwrap();
    server81.join().unwrap();

    // UDP echo through 127.0.0.1:5353.
    let usock = c1
        .enter(|| Ok(UdpSocket::bind("0.0.0.0:53").unwrap()))
        .unwrap();
    let userver = std::thread::spawn(move || {
        usock.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((k, from)) = usock.recv_from(&mut buf) {
            let _ = usock.send_to(&buf[..k], from);
        }
    });
    let client = host
        .enter(|| Ok(UdpSocket::bind("0.0.0.0:0").unwrap()))
        .unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send_to(b"ping", "127.0.0.1:5353").unwrap();
    let mut buf = [0u8; 16];
    let (k, _) = client.recv_from(&mut buf).expect("udp echo via 127.0.0.1");
    assert_eq!(&buf[..k], b"ping");
    userver.join().unwrap();

    let table = host.nft_table();
    assert!(
        table.contains("ctr=c1 tcp 0.0.0.0:8080 10.93.0.2:80"),
        "{table}"
    );
    assert!(table.contains("dnat to 10.93.0.2:80"), "{table}");
}

#[test]
fn detach_removes_veth_rules_and_allocation() {
    let host = TestNs::new();
    let c = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(94);
    let a = host
        .enter(|| attach(&cfg, ipam.path(), c.fd(), "gone", None, &[tcp(8081, 80)]))
        .unwrap();
    assert!(host.has_link(&a.host_veth));
    assert!(host.nft_table().contains("ctr=gone"));
    assert_eq!(allocations(ipam.path()).len(), 1);

    host.enter(|| detach(&cfg, ipam.path(), "gone")).unwrap();
    assert!(!host.has_link(&a.host_veth));
    assert!(!c.has_link("eth0"), "the peer goes with the host end");
    let table = host.nft_table();
    assert!(!table.contains("ctr=gone"), "{table}");
    assert!(table.contains("net=test"), "network rules stay: {table}");
    assert!(allocations(ipam.path()).is_empty());
    // Idempotent.
    host.enter(|| detach(&cfg, ipam.path(), "gone")).unwrap();

    // The container can be attached again, getting the same address.
    let again = host
        .enter(|| attach(&cfg, ipam.path(), c.fd(), "gone", None, &[tcp(8081, 80)]))
        .unwrap();
    assert_eq!(again.ip, a.ip);
}

#[test]
fn twenty_concurrent_attaches_get_distinct_addresses() {
    let host = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(95);
    let containers: Vec<TestNs> = (0..20).map(|_| TestNs::new()).collect();
    let mut ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (host, cfg, ipam) = (&host, &cfg, ipam.path());
                s.spawn(move || {
                    host.enter(|| attach(cfg, ipam, c.fd(), &format!("par{i}"), None, &[]))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap().ip)
            .collect()
    });
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20);
    assert_eq!(allocations(ipam.path()).len(), 20);
    for (i, c) in containers.iter().enumerate() {
        let eth = c.ok(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(eth.contains("10.95.0."), "container {i}: {eth}");
    }
}

#[test]
fn conflicts_are_reported_and_rolled_back() {
    let host = TestNs::new();
    let (c1, c2) = (TestNs::new(), TestNs::new());
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(96);
    let wanted = Ipv4Addr::new(10, 96, 0, 50);
    let a1 = host
        .enter(|| {
            attach(
                &cfg,
                ipam.path(),
                c1.fd(),
                "first",
                Some(wanted),
                &[tcp(8080, 80)],
            )
        })
        .unwrap();
    assert_eq!(a1.ip, wanted);

    let err = host
        .enter(|| attach(&cfg, ipam.path(), c2.fd(), "second", Some(wanted), &[]))
        .unwrap_err();
    assert!(
        matches!(err, Error::AddressInUse { ref owner, .. } if owner == "first"),
        "{err}"
    );

    let err = host
        .enter(|| {
            attach(
                &cfg,
                ipam.path(),
                c2.fd(),
                "second",
                None,
                &[tcp(8080, 8080)],
            )
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::PortAllocated { ref owner, port: 8080, .. } if owner == "first"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("already published by container first"),
        "{err}"
    );

    let outside = Ipv4Addr::new(10, 97, 0, 5);
    let err = host
        .enter(|| attach(&cfg, ipam.path(), c2.fd(), "second", Some(outside), &[]))
        .unwrap_err();
    assert!(matches!(err, Error::AddressNotUsable { .. }), "{err}");

    // A port some host process listens on.
    let busy = host
        .enter(|| Ok(TcpListener::bind("0.0.0.0:9090").unwrap()))
        .unwrap();
    let err = host
        .enter(|| attach(&cfg, ipam.path(), c2.fd(), "second", None, &[tcp(9090, 80)]))
        .unwrap_err();
    assert!(matches!(err, Error::PortBusy { port: 9090, .. }), "{err}");
    drop(busy);

    // Nothing of the failed attempts is left behind.
    assert_eq!(allocations(ipam.path()), vec!["10.96.0.50"]);
    assert!(!host.has_link(&veth_name("second")));
    assert!(!c2.has_link("eth0"));
    assert!(!host.nft_table().contains("ctr=second"));
    // And it works once the conflicts are gone.
    host.enter(|| attach(&cfg, ipam.path(), c2.fd(), "second", None, &[tcp(9090, 80)]))
        .unwrap();
}

#[test]
fn remove_stale_cleans_up_dead_containers() {
    let host = TestNs::new();
    let alive = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(97);
    host.enter(|| {
        attach(
            &cfg,
            ipam.path(),
            alive.fd(),
            "alive",
            None,
            &[tcp(8001, 80)],
        )
    })
    .unwrap();
    // A "container" that is a process in its own namespace, then dies.
    let mut dead = NsProcess::spawn();
    {
        let ns = ccrun_net::netns::of_pid(dead.pid()).unwrap();
        use std::os::fd::AsFd;
        host.enter(|| {
            attach(
                &cfg,
                ipam.path(),
                ns.as_fd(),
                "dead",
                None,
                &[tcp(8002, 80)],
            )
        })
        .unwrap();
    }
    dead.kill();
    assert!(host.nft_table().contains("ctr=dead"));
    assert_eq!(allocations(ipam.path()).len(), 2);

    let removed = host
        .enter(|| remove_stale(&cfg, ipam.path(), |id| id == "alive"))
        .unwrap();
    assert_eq!(removed, vec!["dead".to_string()]);
    let table = host.nft_table();
    assert!(!table.contains("ctr=dead"), "{table}");
    assert!(table.contains("ctr=alive"), "{table}");
    assert_eq!(allocations(ipam.path()), vec!["10.97.0.2"]);
    assert!(host.has_link(&veth_name("alive")));
    // The dead container's veth disappears with its namespace (asynchronously).
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !host.has_link(&veth_name("dead"))
    });
    assert!(gone, "veth of the dead container is still there");
}

#[test]
fn mtu_follows_the_default_route_interface() {
    let host = TestNs::new();
    let c = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    // An uplink that exists only inside the test namespace; no traffic is sent.
    host.ok(&[
        "ip", "link", "add", "uplink0", "mtu", "1400", "type", "veth", "peer", "name", "uplink1",
    ]);
    host.ok(&["ip", "link", "set", "uplink0", "up"]);
    host.ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "uplink0"]);
    host.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.0.2.254",
        "dev",
        "uplink0",
    ]);
    let cfg = config(98);
    let a = host
        .enter(|| attach(&cfg, ipam.path(), c.fd(), "mtu", None, &[]))
        .unwrap();
    assert_eq!(a.mtu, 1400);
    let link = host.ok(&["ip", "link", "show", "dev", "ccrun-tbr"]);
    assert!(link.contains("mtu 1400"), "{link}");
    let eth = c.ok(&["ip", "link", "show", "dev", "eth0"]);
    assert!(eth.contains("mtu 1400"), "{eth}");

    // An explicit MTU wins for a new network.
    let host2 = TestNs::new();
    let c2 = TestNs::new();
    let cfg = ccrun_net::NetworkConfig {
        mtu: 1280,
        ..config(99)
    };
    let a = host2
        .enter(|| attach(&cfg, ipam.path(), c2.fd(), "mtu2", None, &[]))
        .unwrap();
    assert_eq!(a.mtu, 1280);
    let eth = c2.ok(&["ip", "link", "show", "dev", "eth0"]);
    assert!(eth.contains("mtu 1280"), "{eth}");
}

#[test]
fn attach_by_pid_style_namespace_and_timing() {
    let host = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(100);
    host.enter(|| ensure_network(&cfg)).unwrap();
    let proc = NsProcess::spawn();
    let ns = ccrun_net::netns::of_pid(proc.pid()).unwrap();
    let started = std::time::Instant::now();
    let a = host
        .enter(|| {
            attach(
                &cfg,
                ipam.path(),
                std::os::fd::AsFd::as_fd(&ns),
                "bypid",
                None,
                &[tcp(0, 80)],
            )
        })
        .unwrap();
    eprintln!(
        "attach with one published port took {:?}",
        started.elapsed()
    );
    let eth = common::run(std::process::Command::new("nsenter").args([
        "--net",
        &format!("--target={}", proc.pid()),
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
    ]));
    assert!(eth.contains(&format!("{}/24", a.ip)), "{eth}");
    let started = std::time::Instant::now();
    host.enter(|| detach(&cfg, ipam.path(), "bypid")).unwrap();
    eprintln!("detach took {:?}", started.elapsed());
}

#[test]
fn nftables_errors_name_the_operation() {
    let host = TestNs::new();
    let err = host
        .enter(|| {
            let mut nft = ccrun_net::nft::Nft::new()?;
            // No table yet: the kernel refuses the rule.
            nft.add_port_rules("x", Ipv4Addr::new(10, 1, 0, 2), &[tcp(80, 80)])
        })
        .unwrap_err();
    assert_eq!(err.netlink_errno(), Some(libc::ENOENT), "{err}");
    assert!(err.to_string().contains("add rule to ports"), "{err}");
    // Listing an absent table is empty, not an error.
    let rules = host
        .enter(|| ccrun_net::nft::Nft::new()?.rules(None))
        .unwrap();
    assert!(rules.is_empty());
}

#[test]
fn detach_exited_leaves_a_dead_namespace_its_veth() {
    let host = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(101);
    let mut proc = NsProcess::spawn();
    {
        let ns = ccrun_net::netns::of_pid(proc.pid()).unwrap();
        host.enter(|| {
            attach(
                &cfg,
                ipam.path(),
                std::os::fd::AsFd::as_fd(&ns),
                "exited",
                None,
                &[tcp(8101, 80)],
            )
        })
        .unwrap();
    }
    proc.kill();
    host.enter(|| detach_exited(&cfg, ipam.path(), "exited"))
        .unwrap();
    assert!(allocations(ipam.path()).is_empty());
    let table = host.nft_table();
    assert!(!table.contains("ctr=exited"), "{table}");
    // The kernel deletes the pair with the namespace, a moment later.
    let gone = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !host.has_link(&veth_name("exited"))
    });
    assert!(gone, "veth of the exited container is still there");
    // Idempotent.
    host.enter(|| detach_exited(&cfg, ipam.path(), "exited"))
        .unwrap();
}

#[test]
fn detach_exited_cuts_off_a_namespace_someone_keeps() {
    let host = TestNs::new();
    // Kept alive by its bind mount under /run/netns, as a process that entered the
    // container's namespace would keep it.
    let kept = TestNs::new();
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(102);
    let a = host
        .enter(|| attach(&cfg, ipam.path(), kept.fd(), "kept", None, &[]))
        .unwrap();
    assert!(kept
        .ok(&["ip", "-o", "link", "show", "eth0"])
        .contains("LOWER_UP"));
    host.enter(|| detach_exited(&cfg, ipam.path(), "kept"))
        .unwrap();
    assert!(allocations(ipam.path()).is_empty());
    // Still there, but down: the container's side has no carrier any more, so the
    // address it still holds is off the bridge and can be handed out again.
    let veth = host.ok(&["ip", "-o", "link", "show", "dev", &a.host_veth]);
    assert!(!veth.contains(",UP"), "{veth}");
    let eth = kept.ok(&["ip", "-o", "link", "show", "eth0"]);
    assert!(eth.contains("NO-CARRIER"), "{eth}");
    // Plain detach deletes it.
    host.enter(|| detach(&cfg, ipam.path(), "kept")).unwrap();
    assert!(!host.has_link(&a.host_veth));
}

/// The link-layer address `ns` has cached for `ip` on `dev`, if any.
fn neighbour(ns: &TestNs, dev: &str, ip: Ipv4Addr) -> Option<String> {
    let out = ns.ok(&["ip", "neigh", "show", &ip.to_string(), "dev", dev]);
    let mut words = out.split_whitespace();
    words.position(|w| w == "lladdr")?;
    words.next().map(str::to_string)
}

#[test]
fn a_reattached_container_keeps_its_mac_and_neighbours_learn_it_at_once() {
    let host = TestNs::new();
    let (first, peer) = (TestNs::new(), TestNs::new());
    let ipam = tempfile::tempdir().unwrap();
    let cfg = config(103);
    let a = host
        .enter(|| attach(&cfg, ipam.path(), first.fd(), "web", None, &[]))
        .unwrap();
    host.enter(|| attach(&cfg, ipam.path(), peer.fd(), "peer", None, &[]))
        .unwrap();
    let [_, _, _, last] = a.ip.octets();
    let derived = format!("02:42:0a:67:00:{last:02x}");
    let mac = |ns: &TestNs| ns.ok(&["cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac(&first).trim(), derived);

    // Neighbours holding another MAC for the address (as they held a restarted
    // container's old one when MACs were random): the host on the bridge, a peer on
    // its eth0. The bridge's own MAC stays as ports come and go, so the host keeps
    // its cache (a change would flush it).
    let stale = "02:00:00:00:00:01";
    let ip = a.ip.to_string();
    for (ns, dev) in [(&host, "ccrun-tbr"), (&peer, "eth0")] {
        let plant = ["neigh", "replace", &ip, "lladdr", stale, "nud", "reachable"];
        ns.ok(&[&["ip"], &plant[..], &["dev", dev]].concat());
        assert_eq!(neighbour(ns, dev, a.ip).as_deref(), Some(stale));
    }

    // The restart: the container's namespace goes, a new one gets the same address.
    host.enter(|| detach(&cfg, ipam.path(), "web")).unwrap();
    let second = TestNs::new();
    let b = host
        .enter(|| attach(&cfg, ipam.path(), second.fd(), "web", Some(a.ip), &[]))
        .unwrap();
    assert_eq!(b.ip, a.ip);
    assert_eq!(mac(&second).trim(), derived);

    // Its announcement updates both caches without any traffic towards it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for (ns, dev) in [(&host, "ccrun-tbr"), (&peer, "eth0")] {
        while neighbour(ns, dev, a.ip).as_deref() != Some(derived.as_str()) {
            assert!(
                std::time::Instant::now() < deadline,
                "{dev} still has {:?} for {ip}: {}",
                neighbour(ns, dev, a.ip),
                ns.ok(&["ip", "neigh"])
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let busybox = ccrun_testkit::busybox();
    let busybox = busybox.to_str().unwrap();
    host.ok(&[busybox, "ping", "-c1", "-W2", &ip]);
    peer.ok(&[busybox, "ping", "-c1", "-W2", &ip]);
}
