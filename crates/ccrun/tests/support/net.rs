//! Helpers of the networking tests (`network`, `network_iptables`): a web server
//! container, fetching from the test's namespace, a container or another "host", and
//! the firewall state of the test's namespace.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{stderr, stdout, Ccrun, NetNs, Rootfs};

/// Arguments of a busybox httpd container `name` serving `text` at /i.html on port 80,
/// with `extra` options (`-p`, `--network`) before the command.
pub fn web_args(name: &str, text: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["--name".into(), name.into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "sh".into(),
        "-c".into(),
        format!("mkdir -p /www-{name} && echo {text} > /www-{name}/i.html && exec httpd -f -p 80 -h /www-{name}"),
    ]);
    args
}

/// Fetches `url` with busybox wget run by `cmd` (a `busybox` command in some namespace)
/// until it answers, as httpd may still be starting. No -T: it crashes Debian's
/// busybox-static.
pub fn fetch(cmd: impl FnMut() -> Command, url: &str) -> String {
    fetch_within(cmd, url, Duration::from_secs(10))
}

/// [`fetch`], giving up after `timeout`.
pub fn fetch_within(mut cmd: impl FnMut() -> Command, url: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = cmd()
            .args(["wget", "-q", "-O", "-", url])
            .output()
            .expect("wget");
        if out.status.success() {
            return stdout(&out);
        }
        assert!(Instant::now() < deadline, "{url}: {}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fetches `url` from inside the test's network namespace (see [`fetch`]).
pub fn fetch_from_netns(c: &Ccrun, url: &str) -> String {
    fetch(|| c.netns().command("busybox"), url)
}

/// Fetches `url` from a fresh container (default network unless `network_args` say)
/// until it answers.
pub fn fetch_from_container(c: &Ccrun, r: &Rootfs, network_args: &[&str], url: &str) -> String {
    let rootfs = r.path().to_str().expect("utf-8");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(network_args);
        // No -T: Debian's busybox-static wget crashes (SIGSEGV) with it.
        args.extend(["--rootfs", rootfs, "wget", "-q", "-O", "-", url]);
        let out = c.ccrun(&args);
        if out.status.success() {
            return stdout(&out);
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {:?} {}",
            out.status,
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Another "host": a namespace joined to the test's by a veth pair, `{net}.1/24` on
/// the test's side (vext) and `{net}.2/24` on its own (vout), e.g. `net` = "192.168.77".
pub fn outside_host(c: &Ccrun, net: &str) -> NetNs {
    let outside = NetNs::new();
    let ip = |ns: &str, cmd: &str| {
        let ok = Command::new("ip")
            .args(["-n", ns])
            .args(cmd.split_whitespace())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip -n {ns} {cmd}");
    };
    let inside = c.netns().name();
    ip(
        inside,
        &format!(
            "link add vext type veth peer name vout netns {}",
            outside.name()
        ),
    );
    ip(inside, &format!("addr add {net}.1/24 dev vext"));
    ip(inside, "link set vext up");
    ip(outside.name(), &format!("addr add {net}.2/24 dev vout"));
    ip(outside.name(), "link set vout up");
    outside
}

/// `nft list ruleset` in the test's namespace.
pub fn nft_ruleset(c: &Ccrun) -> String {
    let out = c
        .netns()
        .command("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    stdout(&out)
}
