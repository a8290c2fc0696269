//! `ccrun run`: builds a spec from the flags and runs it in the foreground through the
//! runtime core (create → start → forward signals until exit → delete).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ccrun_runtime::{Container, CreateOptions, ExitStatus, Forwarder};

use crate::cli::GlobalOpts;
use crate::spec_builder::{self, Limits, NetworkMode, RunSpec, UsernsMode};
use crate::{units, user};

/// `--userns` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsernsArg {
    /// Map container uids 0-65535 to an unprivileged host range (default)
    Private,
    /// Share the host's user namespace: container root is host root
    Host,
}

/// `--network` values available so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    /// Share the host's network stack
    Host,
    /// Own network namespace with loopback only
    None,
}

/// Options of `ccrun run`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Run a command in a new container",
    disable_help_flag = true,
    after_help = "Examples:\n  ccrun run --rootfs ./rootfs --hostname box sh -c 'hostname; id'\n  \
                  ccrun run --rootfs ./rootfs --memory 64m --cpus 0.5 --pids-limit 50 -- sh"
)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Use DIR as the container's root filesystem (instead of an image)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Container hostname [default: the short container id]
    #[arg(long, short = 'h', value_name = "NAME")]
    pub hostname: Option<String>,
    /// User namespace: private (container root is unprivileged on the host) or host
    #[arg(long, value_enum, default_value_t = UsernsArg::Private)]
    pub userns: UsernsArg,
    /// Network: host (share the host's) or none (loopback only)
    #[arg(long, value_enum, default_value_t = NetworkArg::Host)]
    pub network: NetworkArg,
    /// Memory limit, e.g. 64m, 1g (units b, k, m, g)
    #[arg(long, short = 'm', value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs, e.g. 0.5
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Relative CPU weight (cgroup v1 shares, default 1024)
    #[arg(long, short = 'c', value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on, e.g. 0-1 or 0,2
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1 for unlimited)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from ccrun's environment)
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(long = "workdir", short = 'w', value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as: UID, UID:GID, NAME or NAME:GROUP (from the container's /etc/passwd)
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// A fresh 64-hex-digit container id.
pub fn new_container_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `bytes`.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).context("getrandom");
        }
        filled += n as usize;
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Expands `-e KEY` (no `=`) from ccrun's own environment, as Docker does.
fn expand_env(items: &[String]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| {
            if item.contains('=') {
                Some(item.clone())
            } else {
                std::env::var(item).ok().map(|v| format!("{item}={v}"))
            }
        })
        .collect()
}

fn limits(args: &RunArgs) -> Result<Limits> {
    let memory = args.memory.as_deref().map(units::parse_bytes).transpose()?;
    let memory_swap = args
        .memory_swap
        .as_deref()
        .map(units::parse_swap)
        .transpose()?;
    if let (Some(m), Some(s)) = (memory, memory_swap) {
        if s != -1 && s < m {
            bail!("--memory-swap ({s} bytes) must be at least --memory ({m} bytes)");
        }
    }
    if memory_swap.is_some() && memory.is_none() {
        bail!("--memory-swap needs --memory");
    }
    if let Some(m) = memory {
        if m < 6 << 20 {
            bail!("--memory must be at least 6MB");
        }
    }
    Ok(Limits {
        memory,
        memory_swap,
        cpu_quota: args.cpus.as_deref().map(units::cpus_to_quota).transpose()?,
        cpu_shares: args.cpu_shares,
        cpuset_cpus: args.cpuset_cpus.clone(),
        cpuset_mems: args.cpuset_mems.clone(),
        pids: args.pids_limit,
    })
}

/// Runs `ccrun run`.
pub fn run(global: &GlobalOpts, args: RunArgs) -> Result<i32> {
    let Some(rootfs) = &args.rootfs else {
        bail!("running images is not supported yet: pass --rootfs DIR");
    };
    let rootfs = rootfs
        .canonicalize()
        .with_context(|| format!("rootfs {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    if args.command.is_empty() {
        bail!("no command given: ccrun run --rootfs DIR COMMAND [ARG...]");
    }
    let id = new_container_id()?;
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let identity = user::resolve(args.user.as_deref().unwrap_or(""), &rootfs)?;
    let run_spec = RunSpec {
        id: id.clone(),
        rootfs: rootfs.clone(),
        readonly: args.read_only,
        args: args.command.clone(),
        env: expand_env(&args.env),
        cwd: args.workdir.clone().unwrap_or_else(|| "/".to_string()),
        user: identity,
        hostname,
        userns: match args.userns {
            UsernsArg::Private => spec_builder::private_userns(),
            UsernsArg::Host => UsernsMode::Host,
        },
        network: match args.network {
            NetworkArg::Host => NetworkMode::Host,
            NetworkArg::None => NetworkMode::None,
        },
        limits: limits(&args)?,
    };
    let spec = spec_builder::build(&run_spec)?;

    // Block the forwarded signals before the clone so none is lost in between.
    let forwarder = Forwarder::block()?;
    let mut container = Container::create(CreateOptions {
        id: id.clone(),
        bundle: rootfs
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| rootfs.clone()),
        spec,
        state_root: global.state_root(),
        minimal_init: args.init,
        no_pivot: false,
    })?;
    let status = container
        .start()
        .and_then(|()| forwarder.forward_until_exit(container.pid()));
    let oom = matches!(
        status,
        Ok(ExitStatus::Signaled(nix::sys::signal::Signal::SIGKILL))
    ) && container.oom_killed();
    if let Err(e) = container.delete(true) {
        eprintln!("ccrun: cleaning up container {}: {e}", &id[..12]);
    }
    let status = status?;
    if oom {
        eprintln!(
            "ccrun: container {} was OOM killed (memory limit reached)",
            &id[..12]
        );
        return Ok(137);
    }
    Ok(status.code())
}
