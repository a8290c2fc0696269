//! `ccrun info` (= `system info`) and `ccrun version`: what the engine is and what
//! the host gives it, as text or through `--format`.

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::cli::GlobalOpts;
use crate::containers::{ContainerStore, Status};
use crate::formatted::Format;

/// Flags of `info` and `version`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Output format: "json" or a Go template such as '{{.ServerVersion}}'
    #[arg(short, long)]
    pub format: Option<String>,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The API version ccrun answers to, as Docker 24's client reports it.
const API_VERSION: &str = "1.43";

/// `uname`'s kernel release and machine.
fn uname() -> (String, String) {
    nix::sys::utsname::uname().map_or_else(
        |_| (String::new(), String::new()),
        |u| {
            (
                u.release().to_string_lossy().into_owned(),
                u.machine().to_string_lossy().into_owned(),
            )
        },
    )
}

/// Go's name for the machine (`amd64`, `arm64`, …), as Docker reports it.
fn go_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i386" => "386",
        other => other,
    }
}

/// `PRETTY_NAME` of /etc/os-release.
fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The facts `info` shows, under Docker's field names.
fn facts(global: &GlobalOpts) -> Result<Value> {
    let root = global.store_root();
    let containers = ContainerStore::open(&root)?.list()?;
    let count =
        |f: &dyn Fn(&crate::containers::Record) -> bool| containers.iter().filter(|r| f(r)).count();
    let running = count(&|r| r.status == Status::Running && !r.paused);
    let paused = count(&|r| r.status == Status::Running && r.paused);
    let images = ccrun_image::Store::open(&root)
        .with_context(|| format!("opening image store in {}", root.display()))?
        .list()?
        .len();
    let (cgroup_version, cgroup_mode) = match ccrun_cgroups::Layout::detect() {
        Ok(ccrun_cgroups::Layout::Unified { .. }) => ("2", "unified"),
        Ok(ccrun_cgroups::Layout::Legacy {
            unified: Some(_), ..
        }) => ("1", "hybrid"),
        Ok(ccrun_cgroups::Layout::Legacy { .. }) => ("1", "legacy"),
        Err(_) => ("", "unknown"),
    };
    let (kernel, machine) = uname();
    let firewall = ccrun_net::Backend::detect()
        .map_or_else(|e| format!("unavailable ({e})"), |b| b.as_str().to_string());
    Ok(json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": containers.len() - running - paused,
        "Images": images,
        "Driver": "overlay",
        "DockerRootDir": root,
        "StateDir": global.state_root(),
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "CgroupMode": cgroup_mode,
        "KernelVersion": kernel,
        "OperatingSystem": operating_system(),
        "OSType": "linux",
        "Architecture": machine,
        "NCPU": crate::units::online_cpus(),
        "MemTotal": mem_total(),
        "Name": nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        "ServerVersion": VERSION,
        "DefaultRuntime": "ccrun",
        "Runtimes": { "ccrun": { "path": "built in" } },
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=userns"],
        "LoggingDriver": "k8s-file",
        "Firewall": firewall,
        "Daemonless": true,
    }))
}

/// Runs `info`.
pub fn info(global: &GlobalOpts, args: InfoArgs) -> Result<i32> {
    let facts = facts(global)?;
    let mut out = std::io::stdout().lock();
    if let Some(format) = &args.format {
        writeln!(out, "{}", Format::parse(format)?.line(&facts, &facts)?)?;
        return Ok(0);
    }
    let f = |key: &str| match &facts[key] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let lines = [
        "Client:".to_string(),
        format!(" Version:    {VERSION}"),
        " Context:    default (daemonless)".to_string(),
        String::new(),
        "Server:".to_string(),
        format!(" Containers: {}", f("Containers")),
        format!("  Running: {}", f("ContainersRunning")),
        format!("  Paused: {}", f("ContainersPaused")),
        format!("  Stopped: {}", f("ContainersStopped")),
        format!(" Images: {}", f("Images")),
        format!(" Server Version: {}", f("ServerVersion")),
        format!(" Storage Driver: {}", f("Driver")),
        format!(" Logging Driver: {}", f("LoggingDriver")),
        format!(" Cgroup Driver: {}", f("CgroupDriver")),
        format!(
            " Cgroup Version: {} ({})",
            f("CgroupVersion"),
            f("CgroupMode")
        ),
        format!(" Firewall Backend: {}", f("Firewall")),
        format!(" Default Runtime: {}", f("DefaultRuntime")),
        " Security Options:".to_string(),
        "  seccomp".to_string(),
        "   Profile: builtin".to_string(),
        "  userns".to_string(),
        format!(" Kernel Version: {}", f("KernelVersion")),
        format!(" Operating System: {}", f("OperatingSystem")),
        format!(" OSType: {}", f("OSType")),
        format!(" Architecture: {}", f("Architecture")),
        format!(" CPUs: {}", f("NCPU")),
        format!(
            " Total Memory: {}",
            crate::format::human_size(facts["MemTotal"].as_u64().unwrap_or(0))
        ),
        format!(" Name: {}", f("Name")),
        format!(" Docker Root Dir: {}", f("DockerRootDir")),
        format!(" State Dir: {}", f("StateDir")),
    ];
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(0)
}

/// Runs `version`.
pub fn version(args: InfoArgs) -> Result<i32> {
    let (kernel, machine) = uname();
    let component = json!({
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "Os": "linux",
        "Arch": go_arch(&machine),
        "KernelVersion": kernel,
    });
    let mut server = component.clone();
    server["Components"] = json!([{ "Name": "Engine", "Version": VERSION }]);
    let facts = json!({ "Client": component, "Server": server });
    let mut out = std::io::stdout().lock();
    if let Some(format) = &args.format {
        writeln!(out, "{}", Format::parse(format)?.line(&facts, &facts)?)?;
        return Ok(0);
    }
    for (title, c) in [
        ("Client:", &facts["Client"]),
        ("Server: ccrun Engine (daemonless)", &facts["Server"]),
    ] {
        writeln!(out, "{title}")?;
        writeln!(
            out,
            " Version:           {}",
            c["Version"].as_str().unwrap_or_default()
        )?;
        writeln!(out, " API version:       {}", API_VERSION)?;
        writeln!(
            out,
            " OS/Arch:           linux/{}",
            c["Arch"].as_str().unwrap_or_default()
        )?;
        writeln!(
            out,
            " Kernel version:    {}",
            c["KernelVersion"].as_str().unwrap_or_default()
        )?;
    }
    Ok(0)
}
