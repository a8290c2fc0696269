//! The default network of rootless containers: pasta (from passt) attached to the
//! container's network namespace, which gives it the host's addresses and routes,
//! carries its outbound traffic through host sockets and forwards published ports
//! (`-p`) from host sockets into it. pasta runs as the user, in the foreground, as a
//! child of the process that watches the container (ccrun in the foreground, else the
//! monitor) with the parent-death signal set: given the namespace as a descriptor it
//! cannot notice the namespace going, so it must never outlive its watcher, whatever
//! ends that. The cleanup ends it by its pid file before then.

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ccrun_net::{Attachment, PortMapping, Protocol};

use crate::containers::{ContainerStore, Record};

/// The network name rootless containers record for pasta.
pub const USER_NETWORK: &str = "pasta";
/// pasta's pid file in the container directory.
const PID_FILE: &str = "pasta.pid";
/// What pasta says, in the container directory.
const LOG_FILE: &str = "pasta.log";

/// The binary run; `CCRUN_PASTA` names another.
fn pasta() -> Result<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("CCRUN_PASTA") {
        return Ok(path.into());
    }
    ccrun_runtime::rootless::helper("pasta").map_err(|_| {
        anyhow::anyhow!(
            "rootless networking needs pasta, which is not installed: install the passt \
             package, or run with --network none or --network host"
        )
    })
}

/// pasta's `-t`/`-u` option for one published port.
fn port_option(p: &PortMapping) -> (String, String) {
    let flag = match p.protocol {
        Protocol::Udp => "-u",
        _ => "-t",
    };
    let addr = p.host_ip.map(|ip| format!("{ip}/")).unwrap_or_default();
    (
        flag.to_string(),
        format!("{addr}{}:{}", p.host_port, p.container_port),
    )
}

/// Starts pasta for the container whose init is `pid`, with its published ports.
pub fn connect(containers: &ContainerStore, record: &Record, pid: i32) -> Result<Attachment> {
    let ports = match &record.network {
        crate::containers::record::NetworkChoice::Bridge { ports, .. } => ports.clone(),
        _ => Vec::new(),
    };
    if nix::unistd::access(
        "/dev/net/tun",
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    )
    .is_err()
    {
        bail!(
            "rootless networking needs /dev/net/tun open to you (mode 0666, as udev sets \
             it on most distributions; here it is not): fix its mode, or run with \
             --network none or --network host"
        );
    }
    let mut chosen = Vec::new();
    for p in ports {
        let host_port = match p.host_port {
            0 => ccrun_net::ports::pick_free_port(p.host_ip, p.protocol)?,
            n => n,
        };
        chosen.push(PortMapping { host_port, ..p });
    }
    let pid_file = containers.dir_of(&record.id).join(PID_FILE);
    let _ = std::fs::remove_file(&pid_file);
    let mut cmd = std::process::Command::new(pasta()?);
    cmd.args([
        "--foreground",
        "--config-net",
        "--quiet",
        "--no-map-gw",
        "--runas",
        "0:0",
    ])
    .arg("--pid")
    .arg(&pid_file);
    for p in &chosen {
        let (flag, spec) = port_option(p);
        cmd.arg(flag).arg(spec);
    }
    // The container's init is not dumpable until its exec, so pasta (which drops its
    // capabilities early) could not open its namespaces: it gets them open from us.
    let inherited = ["net", "user"].map(|kind| {
        let path = format!("/proc/{pid}/ns/{kind}");
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::fcntl::fcntl(
            file.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .with_context(|| format!("passing {path} to pasta"))?;
        Ok::<_, anyhow::Error>(file)
    });
    let [net, user] = inherited;
    let (net, user) = (net?, user?);
    cmd.arg("--netns")
        .arg(format!("/proc/self/fd/{}", net.as_raw_fd()));
    if !same_namespace(&user, "/proc/self/ns/user") {
        // keep-id: the container has a user namespace of its own inside ours.
        cmd.arg("--userns")
            .arg(format!("/proc/self/fd/{}", user.as_raw_fd()));
    }
    let log = containers.dir_of(&record.id).join(LOG_FILE);
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_file);
    // SAFETY: only prctl, which is async-signal-safe, runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting pasta");
    drop((net, user));
    wait_ready(child?, &pid_file, &log)?;
    Ok(Attachment {
        container_id: record.id.clone(),
        network: USER_NETWORK.to_string(),
        ip: std::net::Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
        gateway: std::net::Ipv4Addr::UNSPECIFIED,
        host_veth: String::new(),
        mtu: 65520,
        ports: chosen,
    })
}

/// Waits until pasta has configured the namespace, which it says by writing its pid
/// file (after its netlink setup); fails with its own words if it exits first, and ends
/// it if it takes more than a few seconds.
fn wait_ready(mut pasta: std::process::Child, pid_file: &Path, log: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if pasta_pid(pid_file).is_some() {
            return Ok(());
        }
        if let Some(status) = pasta.try_wait().context("waiting for pasta")? {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "pasta could not network the container ({status}): {}",
                said.trim()
            );
        }
        if std::time::Instant::now() > deadline {
            let _ = pasta.kill();
            let _ = pasta.wait();
            bail!("pasta did not set up the container's network within 5 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether the namespace `file` is the one at `path`.
fn same_namespace(file: &std::fs::File, path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Brings up `lo` in the network namespace of process `pid` from a child process: a
/// rootless ccrun could enter the container's namespace but never come back to the
/// host's, which its user namespace does not own.
pub fn loopback_up(pid: i32) -> Result<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .context("opening the container's network namespace")?;
    // SAFETY: ccrun is single-threaded while it starts a container; the child only
    // enters the namespace, sends one netlink request and exits.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            let up = nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(ccrun_net::netlink::Netlink::new()?.set_up("lo")?));
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(i32::from(up.is_err())) }
        }
        nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            other => bail!("bringing up lo in the container: {other:?}"),
        },
    }
}

/// Ends the container's pasta, if it still runs (it also quits by itself once the
/// namespace is gone).
pub fn disconnect(containers: &ContainerStore, record: &Record) {
    let file = containers.dir_of(&record.id).join(PID_FILE);
    if let Some(pid) = pasta_pid(&file) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = std::fs::remove_file(&file);
}

/// The pid in `file` if that process is a pasta (`passt.avx2` and the like).
fn pasta_pid(file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let comm = comm.trim();
    (comm.starts_with("pasta") || comm.starts_with("passt")).then_some(pid)
}
