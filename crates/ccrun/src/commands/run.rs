//! `ccrun run`: one path from an image (or a `--rootfs` directory) to a running
//! container: pull if needed, reserve an id and name, mount an overlayfs snapshot,
//! apply the image config and flags to an OCI spec (saved as `config.json`), run it in
//! the foreground through the runtime core, and record how it ended.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_image::snapshot::{MountOptions, Snapshot};
use ccrun_image::Store;
use oci_spec::runtime::{Mount, MountBuilder, Spec};

use crate::cli::GlobalOpts;
use crate::containers::health::HealthConfig;
use crate::containers::record::{HostFlags, NetworkChoice, RestartPolicy};
use crate::containers::store::new_container_id;
use crate::containers::{
    attach, cleanup, launch, monitor, ContainerStore, Record, RootfsSource, Status,
};
use crate::etc_files::{self, EtcFiles};
use crate::image_config::{self, ImageDefaults};
use crate::networks::NetworkStore;
use crate::security::{Flags as SecurityFlags, Security};
use crate::spec_builder::{self, Limits, NetworkMode, RunSpec, UsernsMode};
use crate::volumes::{self, IdShift, MountRequest};
use crate::{units, user};

use super::{run_flags, sharing};

/// `--userns` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsernsArg {
    /// A 65536-id host range of the container's own, released on removal (root's
    /// default)
    Auto,
    /// Map container uids 0-65535 to ccrun's one shared unprivileged host range
    Private,
    /// Share ccrun's user namespace: container root is host root (rootless: you; the
    /// rootless default)
    Host,
    /// Rootless: your own uid and gid inside, root below them in your subordinate ids
    #[value(name = "keep-id")]
    KeepId,
}

impl UsernsArg {
    /// The configuration file's `userns` value.
    fn from_config(value: &str) -> Option<UsernsArg> {
        <UsernsArg as clap::ValueEnum>::from_str(value, false).ok()
    }
}

/// `--pull` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull when the image is not in the store (default)
    Missing,
    /// Pull before every run
    Always,
    /// Never pull; fail if the image is missing
    Never,
}

/// Options of `ccrun run`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Run a command in a new container",
    disable_help_flag = true,
    override_usage = "ccrun run [OPTIONS] IMAGE [COMMAND] [ARG...]\n       \
                      ccrun run [OPTIONS] --rootfs DIR COMMAND [ARG...]",
    after_help = "Examples:\n  ccrun run --rm alpine echo hello\n  \
                  ccrun run -it --name box ubuntu:24.04 bash\n  \
                  ccrun run --rm --memory 64m --cpus 0.5 --pids-limit 50 alpine sh\n  \
                  ccrun run --rootfs ./rootfs --hostname box sh -c 'hostname; id'"
)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Use DIR as the container's root filesystem (instead of an image)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Name the container (unique) [default: a generated adjective_surname]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Remove the container and its changes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container id
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Restart policy: no, on-failure[:MAX_RETRIES], always or unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no")]
    pub restart: String,
    /// Seconds between the stop signal and SIGKILL on stop [default: 10]
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true, value_parser = crate::cli::seconds)]
    pub stop_timeout: Option<u32>,
    /// Log option: max-size=SIZE rotates the log file at SIZE [default: 10m];
    /// max-file=N keeps N files [default: 2]
    #[arg(long, value_name = "OPT=VALUE")]
    pub log_opt: Vec<String>,
    /// Pull the image: missing, always or never
    #[arg(long, value_enum, default_value_t = PullPolicy::Missing)]
    pub pull: PullPolicy,
    /// Platform to pull if the image is multi-platform, e.g. linux/arm64
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Keep stdin open (attach it to the container)
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Give the container a pseudo-terminal
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Override the image's entrypoint ("" clears it; a JSON array for several words)
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Read environment variables from a file (KEY=VALUE lines)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Mount a tmpfs at PATH (PATH[:OPTIONS], e.g. /run:size=64m,mode=755)
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Bind mount a host path or mount a volume: /host:/ctr[:OPTS], NAME:/ctr[:OPTS] or
    /// /ctr (anonymous); OPTS: ro, rw, z, Z, U, nocopy, a propagation
    #[arg(long, short = 'v', value_name = "SRC:DST[:OPTS]")]
    pub volume: Vec<String>,
    /// Attach a mount: type=bind|volume|tmpfs,src=…,dst=…[,readonly][,tmpfs-size=…]…
    #[arg(long, value_name = "type=…,src=…,dst=…")]
    pub mount: Vec<String>,
    /// Set a label (KEY=VALUE)
    #[arg(long, short = 'l', value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Signal that stops the container [default: the image's StopSignal, else SIGTERM]
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Container hostname [default: the short container id]
    #[arg(long, short = 'h', value_name = "NAME")]
    pub hostname: Option<String>,
    /// User namespace: private (container root is unprivileged on the host) or host
    /// [default: private; host with --privileged]
    #[arg(long, value_enum)]
    pub userns: Option<UsernsArg>,
    /// Network: bridge (the default network), a network's name, none (loopback
    /// only) or host (share the host's)
    #[arg(
        long,
        env = "CCRUN_NETWORK",
        default_value = "bridge",
        value_name = "NETWORK"
    )]
    pub network: String,
    /// The container's IPv4 address on its network
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Another name the container's peers on a user-defined network find it by
    #[arg(long = "network-alias", value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// Publish a port: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], ranges allowed
    #[arg(long = "publish", short = 'p', value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a random host port
    #[arg(long = "publish-all", short = 'P')]
    pub publish_all: bool,
    /// Add an /etc/hosts entry (HOST:IP)
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// DNS server for /etc/resolv.conf
    #[arg(long, value_name = "IP")]
    pub dns: Vec<std::net::IpAddr>,
    /// Memory limit, e.g. 64m, 1g (units b, k, m, g)
    #[arg(long, short = 'm', value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs, e.g. 0.5
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpus: Option<String>,
    /// Relative CPU weight (cgroup v1 shares, default 1024)
    #[arg(long, short = 'c', value_name = "N", allow_negative_numbers = true)]
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
    /// Give the container every capability and host device, no seccomp filter, no
    /// masked paths and a writable /sys (implies --userns host)
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability (CAP_NAME or NAME; ALL for every one)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CAP_NAME or NAME; ALL for every one)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security option: no-new-privileges[=true|false], seccomp=FILE|unconfined,
    /// apparmor=PROFILE, label=…, systempaths=unconfined
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Give the container a host device: HOST[:CONTAINER[:PERMS]] (PERMS of rwm)
    #[arg(long, value_name = "HOST[:CTR[:PERMS]]")]
    pub device: Vec<String>,
    /// Set a namespaced kernel parameter, e.g. net.ipv4.ip_forward=1
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// Set a resource limit: NAME=SOFT[:HARD], e.g. nofile=1024:2048 (-1: unlimited)
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Tune the OOM killer's preference for the container (-1000 to 1000)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i32>,
    /// Size of /dev/shm, e.g. 64m [default: 64m]
    #[arg(long, value_name = "BYTES")]
    pub shm_size: Option<String>,
    #[command(flatten)]
    pub more: super::run_flags::MoreRunArgs,
    /// The image, then the command and its arguments (only the command with --rootfs)
    #[arg(trailing_var_arg = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub command: Vec<String>,
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
        ..Limits::default()
    })
}

/// Where the container comes from, resolved before anything is created.
struct Source {
    /// What `ps` shows as the image.
    shown: String,
    /// Image id, for images.
    image_id: Option<String>,
    rootfs: RootfsSource,
    defaults: ImageDefaults,
    /// The image's `HEALTHCHECK`.
    healthcheck: Option<HealthConfig>,
    /// The trailing arguments after the image (all of them with `--rootfs`).
    args: Vec<String>,
}

/// Runs `ccrun run`.
pub fn run(global: &GlobalOpts, args: RunArgs) -> Result<i32> {
    run_or_create(global, args, false)
}

/// Runs `ccrun create`: everything `run` does up to starting the process.
pub fn create(global: &GlobalOpts, args: RunArgs) -> Result<i32> {
    run_or_create(global, args, true)
}

fn run_or_create(global: &GlobalOpts, args: RunArgs, create_only: bool) -> Result<i32> {
    // Validate everything that needs no side effects first.
    validate(&args)?;
    let mut limits = limits(&args)?;
    args.more.add_limits(&mut limits)?;
    crate::rootless::check_limits(&limits)?;
    let mut parsed = args.more.parse(&args.log_opt, args.detach)?;
    let labels: Vec<_> = super::parse_labels(&args.label)?;
    let restart_policy = parse_restart(&args.restart)?;
    if args.rm && restart_policy != RestartPolicy::No {
        bail!("conflicting options: --restart and --rm");
    }
    let log_max_size = parse_log_opts(&args.log_opt)?;
    let published = ccrun_net::parse_port_mappings(&args.publish)?;
    let extra_hosts = parse_add_hosts(&args.add_host)?;
    let tmpfs = args
        .tmpfs
        .iter()
        .map(|t| tmpfs_mount(t))
        .collect::<Result<Vec<_>>>()?;
    let mut mount_requests = args
        .volume
        .iter()
        .map(|v| volumes::spec::parse_volume_flag(v))
        .collect::<Result<Vec<_>>>()?;
    for m in &args.mount {
        mount_requests.push(volumes::spec::parse_mount_flag(m)?);
    }
    let volumes_from = parsed.volumes_from.clone();
    // A private user namespace cannot hold host privileges: --privileged implies the
    // host's (Docker refuses --privileged with user namespace remapping too), and so do
    // the host's PID and IPC namespaces, whose /proc and mqueue it could not mount.
    let host_namespace = [
        ("--pid", &parsed.options.pid_mode),
        ("--ipc", &parsed.options.ipc_mode),
    ]
    .into_iter()
    .find(|(_, mode)| mode.as_str() == "host")
    .map(|(flag, _)| flag);
    let chosen_userns = args
        .userns
        .or_else(|| crate::config::userns().and_then(UsernsArg::from_config));
    let userns_arg = match (chosen_userns, args.privileged, host_namespace) {
        (Some(UsernsArg::Host), _, _) | (None, true, _) | (None, false, Some(_)) => UsernsArg::Host,
        (Some(other), true, _) => {
            bail!("conflicting options: --privileged needs --userns host, not {other:?}")
        }
        (Some(_), false, Some(flag)) => {
            bail!("conflicting options: {flag} host needs --userns host")
        }
        (Some(chosen), false, None) => chosen,
        (None, false, None) if crate::rootless::active() => UsernsArg::Host,
        (None, false, None) => UsernsArg::Auto,
    };
    let (userns, allocation) = crate::rootless::userns_mode(userns_arg)?;
    if args.hostname.is_some() && !parsed.options.uts_mode.is_empty() {
        bail!(
            "conflicting options: --hostname and --uts {}",
            parsed.options.uts_mode
        );
    }
    if args.more.domainname.is_some() && !parsed.options.uts_mode.is_empty() {
        bail!(
            "conflicting options: --domainname and --uts {}",
            parsed.options.uts_mode
        );
    }
    if parsed.options.mac_address.is_some()
        && (args.network == "host"
            || args.network == "none"
            || args.network.starts_with("container:"))
    {
        bail!(
            "conflicting options: --mac-address and --network {}",
            args.network
        );
    }
    let cidfile = args
        .more
        .cidfile
        .as_deref()
        .map(run_flags::CidFile::claim)
        .transpose()?;
    let security = Security::from_flags(&SecurityFlags {
        privileged: args.privileged,
        cap_add: &args.cap_add,
        cap_drop: &args.cap_drop,
        security_opt: &args.security_opt,
        device: &args.device,
        sysctl: &args.sysctl,
        ulimit: &crate::config::ulimits(&args.ulimit),
        oom_score_adj: args.oom_score_adj,
        shm_size: args.shm_size.as_deref(),
        shared_network: args.network == "host" || args.network.starts_with("container:"),
    })?;
    let mut flag_env = Vec::new();
    for file in &args.env_file {
        flag_env.extend(image_config::read_env_file(file)?);
    }
    flag_env.extend(args.env.iter().cloned());
    let flag_env = image_config::expand_from_host(&flag_env);
    if let Some(name) = &args.name {
        crate::containers::names::validate(name)?;
    }
    let detach_keys = attach::parse_detach_keys(
        args.more
            .detach_keys
            .as_deref()
            .unwrap_or(attach::DEFAULT_DETACH_KEYS),
    )?;
    let foreground = !args.detach && !create_only;
    if foreground
        && args.interactive
        && args.tty
        && !std::io::IsTerminal::is_terminal(&std::io::stdin())
    {
        bail!("the input device is not a TTY; drop -t or run from a terminal");
    }

    launch::enter_private_mount_namespace()?;
    let root = global.store_root();
    // First, so that a new storage root gets its searchable modes (see ContainerStore::open).
    let containers = ContainerStore::open(&root)?;
    let mut source = resolve_source(global, &root, &args)?;
    parsed.options.healthcheck =
        HealthConfig::merge(parsed.health.take(), source.healthcheck.take())
            .filter(HealthConfig::enabled);
    for port in &parsed.exposed {
        if !source.defaults.exposed_ports.contains(port) {
            source.defaults.exposed_ports.push(port.clone());
        }
    }
    let shared = sharing::resolve(&containers, &mut parsed.options, &userns)?;
    let mut extra_hosts = extra_hosts;
    extra_hosts.extend(sharing::link_hosts(&containers, &parsed.links)?);
    parsed.options.links = parsed
        .links
        .iter()
        .map(|(name, alias)| format!("{name}:{alias}"))
        .collect();
    parsed.options.dns = args.dns.iter().map(|a| a.to_string()).collect();
    let argv = image_config::command(args.entrypoint.as_deref(), &source.args, &source.defaults)?;
    let network = network_choice(&root, &args, published, &source.defaults.exposed_ports)?;
    let tmpfs_destinations: Vec<String> = tmpfs
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect();
    mount_requests.extend(sharing::volumes_from(
        &containers,
        &volumes_from,
        &mount_requests,
    )?);
    let planned = volumes::plan(
        mount_requests,
        &source.defaults.volumes,
        &tmpfs_destinations,
    )?;
    let id = new_container_id()?;
    let mut record = Record {
        id: id.clone(),
        name: String::new(),
        image: source.shown.clone(),
        image_id: source.image_id.clone(),
        command: argv.clone(),
        created: ccrun_runtime::state::now_rfc3339(),
        status: Status::Created,
        pid: 0,
        pid_start_time: 0,
        exit_code: None,
        oom_killed: false,
        started_at: None,
        finished_at: None,
        rootfs: source.rootfs.clone(),
        auto_remove: args.rm,
        stop_signal: args
            .stop_signal
            .clone()
            .or_else(|| source.defaults.stop_signal.clone()),
        labels: source
            .defaults
            .labels
            .clone()
            .into_iter()
            .chain(parsed.file_labels.clone())
            .chain(labels)
            .collect(),
        exposed_ports: source.defaults.exposed_ports.clone(),
        volumes: source.defaults.volumes.clone(),
        tty: args.tty,
        interactive: args.interactive,
        init: args.init,
        restart_policy,
        restart_count: 0,
        stopped_by_user: false,
        stop_timeout: args.stop_timeout,
        monitor_pid: 0,
        monitor_start_time: 0,
        error: None,
        log_max_size,
        hostname: match (&args.hostname, parsed.options.uts_mode.as_str()) {
            (Some(h), _) => h.clone(),
            (None, "") => id[..12].to_string(),
            // The UTS namespace's own name, shown in /etc/hostname as Docker does.
            (None, _) => shared.hostname.clone(),
        },
        network,
        attachment: None,
        extra_hosts,
        volume_mounts: volumes::volume_mounts(&planned),
        binds: args
            .volume
            .iter()
            .filter(|v| v.contains(':'))
            .cloned()
            .collect(),
        entrypoint: image_config::entrypoint(args.entrypoint.as_deref(), &source.defaults)?,
        host_flags: host_flags(&args),
        options: parsed.options,
        health: None,
        paused: false,
        id_range: None,
    };
    // A joined user namespace (--pid/--ipc container:) brings its container's range.
    let allocation = allocation.filter(|_| shared.namespaces.user.is_none());
    let dir = containers.create(
        &mut record,
        args.name.as_deref(),
        |store, r| match &allocation {
            Some(allocation) => crate::idranges::assign(allocation, store, r),
            None => Ok(()),
        },
    )?;
    let userns = match (record.id_range, &shared.namespaces.user) {
        (Some(range), _) => range.mode(),
        (None, Some(joined)) => sharing::joined_mode(joined).unwrap_or(userns),
        (None, None) => userns,
    };
    if let Some(cidfile) = &cidfile {
        if let Err(e) = cidfile.write(&id) {
            let _ = cleanup::discard(&containers, &record);
            return Err(e);
        }
    }
    crate::events::container(&root, "create", &record, &[]);
    let run_user = match (&args.user, &userns) {
        (Some(user), _) => user.clone(),
        // keep-id runs as the caller by default, as podman's does.
        (None, UsernsMode::KeepId { uid, gid, .. }) => format!("{uid}:{gid}"),
        (None, _) => source.defaults.user.clone().unwrap_or_default(),
    };
    let job = Job {
        args: &args,
        containers: &containers,
        record: &record,
        dir: &dir,
        store_root: &root,
        userns,
        limits,
        security,
        shared,
        tmpfs,
        planned,
        env: image_config::merge_env(&source.defaults.env, &flag_env),
        workdir: args
            .workdir
            .clone()
            .or_else(|| source.defaults.working_dir.clone())
            .unwrap_or_else(|| "/".to_string()),
        user: run_user,
        argv,
        mounted_once: args.rm && !create_only,
    };
    let spec = match job.prepare() {
        Ok(spec) => spec,
        Err(e) if create_only => {
            // `create` leaves nothing behind when it fails.
            let _ = cleanup::discard(&containers, &record);
            if let Some(cidfile) = &cidfile {
                cidfile.remove();
            }
            return Err(e);
        }
        Err(e) => {
            launch::fail_start(global, &containers, &record.id, &e);
            return Err(e);
        }
    };
    if create_only {
        Snapshot::new(&dir).unmount()?;
        println!("{id}");
        return Ok(0);
    }
    if !args.detach && args.interactive && args.tty {
        // Under a monitor, attached: the detach keys can leave it running.
        return launch::start_interactive(
            global,
            &containers,
            &record,
            spec,
            detach_keys,
            args.more.sig_proxy,
        );
    }
    let started = if args.detach {
        monitor::start_detached(global, &containers, &record, spec).map(|()| None)
    } else {
        launch::foreground(global, &containers, &record, spec, args.interactive).map(Some)
    };
    match started {
        Ok(None) => {
            println!("{id}");
            Ok(0)
        }
        Ok(Some(exit)) => launch::after_exit(global, &containers, &id, exit),
        Err(e) => {
            launch::fail_start(global, &containers, &record.id, &e);
            Err(e)
        }
    }
}

/// `--network`, `--ip`, `-p` and `-P` as a record's network choice. Named networks
/// must exist (the default `bridge` is created on first use).
fn network_choice(
    root: &Path,
    args: &RunArgs,
    mut ports: Vec<ccrun_net::PortMapping>,
    exposed: &[String],
) -> Result<NetworkChoice> {
    if args.publish_all {
        let specs: Vec<String> = exposed.to_vec();
        ports.extend(ccrun_net::parse_port_mappings(&specs).context("the image's exposed ports")?);
    }
    let bridge = |network: String| NetworkChoice::Bridge {
        network,
        ip: args.ip,
        ports: ports.clone(),
        aliases: args.network_alias.clone(),
    };
    crate::networks::check_aliases(&args.network_alias)?;
    let no_aliases = |network: &str| {
        if args.network_alias.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "--network-alias needs a user-defined network, not --network {network}"
            ))
        }
    };
    let choice = match args.network.as_str() {
        shared if shared.starts_with("container:") => {
            let name = &shared["container:".len()..];
            if !ports.is_empty() || args.ip.is_some() {
                bail!("conflicting options: port publishing and --ip do not go with --network container:NAME");
            }
            no_aliases(shared)?;
            let other = ContainerStore::open(root)?.find(name)?;
            if other.status != Status::Running {
                bail!(
                    "cannot join the network of container {}: it is not running",
                    other.name
                );
            }
            NetworkChoice::Container { id: other.id }
        }
        "host" | "none" => {
            no_aliases(&args.network)?;
            if !ports.is_empty() {
                eprintln!(
                    "WARNING: published ports are discarded with --network {}",
                    args.network
                );
            }
            if args.ip.is_some() {
                bail!(
                    "--ip needs a bridge network, not --network {}",
                    args.network
                );
            }
            if args.network == "host" {
                NetworkChoice::Host
            } else {
                NetworkChoice::None
            }
        }
        "bridge" if crate::rootless::active() => {
            no_aliases(&args.network)?;
            if args.ip.is_some() {
                bail!("--ip needs a bridge network, which rootless ccrun does not make");
            }
            bridge(crate::rootless::network::USER_NETWORK.to_string())
        }
        name if crate::rootless::active() && !ports.is_empty() => bail!(
            "--network {name}: rootless user-defined networks connect containers to each \
             other only; publish ports on the default network (pasta)"
        ),
        name => {
            let net = NetworkStore::open(root)?.find(name)?;
            if !net.resolves_names() {
                no_aliases(&net.name)?;
            }
            crate::networks::check_ip(&net, args.ip)?;
            bridge(net.name)
        }
    };
    Ok(choice)
}

/// Checks at `create` what would otherwise fail only when the container starts or
/// stops: the stop signal, the working directory and the `-e` names.
fn validate(args: &RunArgs) -> Result<()> {
    if let Some(signal) = &args.stop_signal {
        if crate::containers::process::parse_signal(signal).is_err() {
            bail!("invalid --stop-signal {signal:?}: not a signal name or number");
        }
    }
    if let Some(dir) = args.workdir.as_deref().filter(|d| !d.starts_with('/')) {
        bail!("the working directory {dir:?} is invalid: it needs to be an absolute path");
    }
    for item in &args.env {
        if item.is_empty() || item.starts_with('=') {
            bail!("invalid environment variable {item:?}: the name is empty");
        }
    }
    Ok(())
}

/// The flags `inspect` shows as given (see [`HostFlags`]).
fn host_flags(args: &RunArgs) -> HostFlags {
    HostFlags {
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
        dns: args.dns.iter().map(|a| a.to_string()).collect(),
        security_opt: args.security_opt.clone(),
        privileged: args.privileged,
        publish_all: args.publish_all,
        mounts: args.mount.clone(),
    }
}

/// `--add-host HOST:IP` as (host, address).
fn parse_add_hosts(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            let (host, addr) = item
                .split_once(':')
                .with_context(|| format!("invalid --add-host {item:?}: use HOST:IP"))?;
            addr.parse::<std::net::IpAddr>().with_context(|| {
                format!("invalid --add-host {item:?}: {addr:?} is not an IP address")
            })?;
            if host.is_empty() {
                bail!("invalid --add-host {item:?}: empty host name");
            }
            Ok((host.to_string(), addr.to_string()))
        })
        .collect()
}

/// `--restart no|on-failure[:N]|always|unless-stopped`.
pub fn parse_restart(value: &str) -> Result<RestartPolicy> {
    let (name, max) = match value.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (value, None),
    };
    let policy = match (name, max) {
        ("no", None) => RestartPolicy::No,
        ("always", None) => RestartPolicy::Always,
        ("unless-stopped", None) => RestartPolicy::UnlessStopped,
        ("on-failure", max) => RestartPolicy::OnFailure {
            max_retries: max
                .map(|m| m.parse::<u32>())
                .transpose()
                .with_context(|| {
                    format!("invalid --restart {value:?}: the retry count must be a number")
                })?
                .unwrap_or(0),
        },
        (_, Some(_)) => bail!("invalid --restart {value:?}: only on-failure takes a retry count"),
        _ => bail!("invalid --restart {value:?}: use no, on-failure[:N], always or unless-stopped"),
    };
    Ok(policy)
}

/// `--log-opt max-size=SIZE`; returns the rotation size.
fn parse_log_opts(opts: &[String]) -> Result<u64> {
    let mut max_size =
        crate::config::log_size_max().unwrap_or(crate::containers::record::DEFAULT_LOG_MAX_SIZE);
    // The other options are checked with the log driver (see run_flags).
    for opt in opts {
        if let Some(("max-size", v)) = opt.split_once('=') {
            let bytes = units::parse_bytes(v)?;
            if bytes < 4096 {
                bail!("invalid --log-opt {opt:?}: max-size must be at least 4k");
            }
            max_size = bytes as u64;
        }
    }
    Ok(max_size)
}

/// One container being run: everything decided, nothing mounted yet.
struct Job<'a> {
    args: &'a RunArgs,
    containers: &'a ContainerStore,
    record: &'a Record,
    dir: &'a Path,
    /// The storage root (volumes live below it).
    store_root: &'a Path,
    userns: UsernsMode,
    limits: Limits,
    security: Security,
    /// Namespaces shared with the host or other containers.
    shared: sharing::Shared,
    tmpfs: Vec<Mount>,
    /// `-v`, `--mount` and the image's `Volumes`, checked and named.
    planned: Vec<MountRequest>,
    env: Vec<String>,
    workdir: String,
    user: String,
    argv: Vec<String>,
    /// The snapshot is mounted this once and removed with the container (`run
    /// --rm`; `create --rm` mounts it again at `start`).
    mounted_once: bool,
}

impl Job<'_> {
    /// Mounts the root filesystem, builds the spec and saves it as `config.json`.
    fn prepare(&self) -> Result<Spec> {
        let root_owner = self.userns.root_owner();
        let rootfs = self.mount_rootfs(root_owner)?;
        let mut identity = user::resolve(&self.user, &rootfs)?;
        for group in &self.record.options.group_add {
            let gid = user::resolve_group(group, &rootfs)?;
            if !identity.additional_gids.contains(&gid) {
                identity.additional_gids.push(gid);
            }
        }
        let hostname = self.record.hostname.clone();
        let network = match &self.record.network {
            NetworkChoice::Host => NetworkMode::Host,
            // A bridge network is attached once the namespace exists.
            NetworkChoice::None | NetworkChoice::Bridge { .. } => NetworkMode::None,
            NetworkChoice::Container { id } => {
                NetworkMode::Join(crate::networks::shared_netns(self.containers, id)?)
            }
        };
        let hosts = self
            .record
            .extra_hosts
            .iter()
            .map(|(name, addr)| (addr.clone(), name.clone()))
            .collect();
        let mut mounts = etc_files::write(
            self.dir,
            &EtcFiles {
                hostname: &hostname,
                host_network: network == NetworkMode::Host,
                hosts,
                dns: self.args.dns.iter().map(|a| a.to_string()).collect(),
                dns_search: self.record.options.dns_search.clone(),
                dns_options: self.record.options.dns_options.clone(),
                owner: root_owner,
            },
        )?;
        if let NetworkChoice::Container { id } = &self.record.network {
            // The network's files are the other container's, as in Docker.
            crate::networks::share_etc_files(&mut mounts, &self.containers.dir_of(id));
        }
        mounts.extend(self.tmpfs.iter().cloned());
        mounts.extend(self.shared.shm_mount()?);
        mounts.extend(self.attach_volumes(&rootfs, &identity)?);
        // Parents before children, as Docker orders them: `-v x:/etc` goes under the
        // /etc files, not over them.
        mounts.sort_by_key(|m| m.destination().components().count());
        let mut env = self.env.clone();
        if self.args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".to_string());
        }
        let spec = spec_builder::build(&RunSpec {
            rootfs: rootfs.clone(),
            readonly: self.args.read_only,
            args: self.argv.clone(),
            env,
            cwd: self.workdir.clone(),
            user: identity,
            hostname,
            userns: self.userns.clone(),
            network,
            limits: self.limits.clone(),
            mounts,
            terminal: self.args.tty,
            idmap_rootfs: matches!(self.record.rootfs, RootfsSource::Dir(_)),
            security: self.security.clone(),
            namespaces: self.shared.namespaces.clone(),
            domainname: self.record.options.domainname.clone(),
            annotations: self.record.options.annotations.clone(),
            cgroup_path: crate::rootless::cgroup_path(&self.record.id)
                .unwrap_or_else(|| self.record.options.cgroup_path(&self.record.id)),
        })?;
        launch::save_config(self.dir, &spec, !self.record.auto_remove)?;
        Ok(spec)
    }

    /// Volumes and bind mounts, created and seeded as needed (see [`volumes::attach`]).
    fn attach_volumes(&self, rootfs: &Path, identity: &user::Identity) -> Result<Vec<Mount>> {
        if self.planned.is_empty() {
            return Ok(Vec::new());
        }
        // An overlay snapshot shows the image through the container's mapping already;
        // a --rootfs directory shows raw ids, which the runtime maps only when mounting.
        let image = matches!(self.record.rootfs, RootfsSource::Image { .. });
        let (shift, root_owner, user_owner) = match (self.record.id_range, &self.userns) {
            // --userns auto: volumes are idmapped, so they keep the container's own ids.
            (Some(r), _) => (
                match image {
                    true => IdShift::Unmap {
                        uid_start: r.uid_start,
                        gid_start: r.gid_start,
                        count: r.count,
                    },
                    false => IdShift::Keep,
                },
                (0, 0),
                (identity.uid, identity.gid),
            ),
            (
                None,
                &UsernsMode::Private {
                    uid_start,
                    gid_start,
                    count,
                },
            ) if !image => (
                IdShift::Map {
                    uid_start,
                    gid_start,
                    count,
                },
                self.userns.root_owner(),
                self.userns.host_ids(identity.uid, identity.gid),
            ),
            _ => (
                IdShift::Keep,
                self.userns.root_owner(),
                self.userns.host_ids(identity.uid, identity.gid),
            ),
        };
        volumes::attach(
            &volumes::Target {
                store_root: self.store_root,
                rootfs,
                shift,
                root_owner,
                user_owner,
                own_userns: self.userns.has_own_namespace(),
                idmap_volumes: self.record.id_range.is_some(),
            },
            &self.planned,
        )
    }

    /// The container's root: an overlayfs snapshot over the image's layers (idmapped
    /// through the container's id mapping), or the `--rootfs` directory.
    fn mount_rootfs(&self, root_owner: (u32, u32)) -> Result<PathBuf> {
        let layers = match &self.record.rootfs {
            RootfsSource::Dir(dir) => return Ok(dir.clone()),
            RootfsSource::Image { layers } => layers,
        };
        let userns_fd: Option<OwnedFd> = match &self.userns {
            // Rootless layers cannot be idmapped: they already hold the ids the
            // rootless namespace maps.
            UsernsMode::KeepId { .. } => None,
            UsernsMode::Private { .. } => {
                let (uids, gids) = spec_builder::build_id_mappings(&self.userns)?;
                Some(ccrun_runtime::userns::new_userns_fd(&uids, &gids)?)
            }
            UsernsMode::Host => None,
        };
        let merged = Snapshot::new(self.dir)
            .mount(
                layers,
                MountOptions {
                    userns: userns_fd.as_ref().map(|fd| fd.as_fd()),
                    root_owner,
                    volatile: self.mounted_once,
                },
            )
            .context("mounting the container's root filesystem")?;
        Ok(merged)
    }
}

fn resolve_source(global: &GlobalOpts, root: &Path, args: &RunArgs) -> Result<Source> {
    if let Some(dir) = &args.rootfs {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("rootfs {}", dir.display()))?;
        if !dir.is_dir() {
            bail!("rootfs {} is not a directory", dir.display());
        }
        if args.command.is_empty() {
            bail!("no command given: ccrun run --rootfs DIR COMMAND [ARG...]");
        }
        return Ok(Source {
            shown: dir.display().to_string(),
            image_id: None,
            rootfs: RootfsSource::Dir(dir),
            defaults: ImageDefaults::default(),
            healthcheck: None,
            args: args.command.clone(),
        });
    }
    let Some((name, rest)) = args.command.split_first() else {
        bail!("\"ccrun run\" requires at least 1 argument: ccrun run [OPTIONS] IMAGE [COMMAND] [ARG...]");
    };
    let store =
        Store::open(root).with_context(|| format!("opening image store in {}", root.display()))?;
    let found = match args.pull {
        PullPolicy::Always => None,
        _ => crate::config::find_image(name, |n| store.resolve(n))?
            .filter(|image| platform_fits(&image.record.platform, args.platform.as_deref())),
    };
    let image = match found {
        Some(image) => image,
        None if args.pull == PullPolicy::Never => {
            bail!("image {name} not found in the store and --pull=never; pull it first with ccrun pull {name}")
        }
        None => {
            if args.pull == PullPolicy::Missing && !args.more.quiet {
                eprintln!("Unable to find image '{name}' locally");
            }
            pull_in_child(global, name, args.platform.as_deref(), args.more.quiet)?;
            crate::config::find_image(name, |n| store.resolve(n))?
                .with_context(|| format!("image {name} is missing after pulling it"))?
        }
    };
    let healthcheck = match store.read_blob(&image.record.id)? {
        Some(blob) => HealthConfig::from_image_config(&blob)?,
        None => None,
    };
    Ok(Source {
        shown: name.clone(),
        image_id: Some(image.record.id.to_string()),
        healthcheck,
        rootfs: RootfsSource::Image {
            layers: image.layer_dirs.clone(),
        },
        defaults: ImageDefaults::from_config(&image.config),
        args: rest.to_vec(),
    })
}

/// Whether a stored image is of the `--platform` asked for (any, when none is): an
/// image of another platform is pulled rather than run, as Podman does.
fn platform_fits(stored: &str, wanted: Option<&str>) -> bool {
    let parse = |p: &str| p.parse::<ccrun_image::Platform>().ok();
    match (wanted.and_then(parse), parse(stored)) {
        (Some(w), Some(s)) => w.matches(&s.os, &s.architecture, s.variant.as_deref()),
        _ => true,
    }
}

/// Pulls through `ccrun pull` in a child process: pulling uses threads, and the
/// container must be created from a single-threaded process. Progress goes to stderr
/// so that stdout carries only the container's output, as with `docker run`.
pub(crate) fn pull_in_child(
    global: &GlobalOpts,
    name: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<()> {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg("--root").arg(global.store_root());
    cmd.arg("--log-level").arg(&global.log_level);
    cmd.arg("pull");
    if quiet {
        // `pull -q` prints the image name on stdout, which goes to our stderr.
        cmd.arg("-q").stdout(std::process::Stdio::null());
    }
    if let Some(p) = platform {
        cmd.arg("--platform").arg(p);
    }
    cmd.arg("--").arg(name);
    if !quiet {
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("dup stderr")?;
        cmd.stdout(stderr);
    }
    let status = cmd.status().context("starting ccrun pull")?;
    if !status.success() {
        bail!("pulling {name} failed");
    }
    Ok(())
}

/// `--tmpfs PATH[:OPTIONS]` with Docker's default options.
fn tmpfs_mount(item: &str) -> Result<Mount> {
    let (path, opts) = item.split_once(':').unwrap_or((item, ""));
    if !path.starts_with('/') {
        bail!("invalid --tmpfs {item:?}: the path must be absolute");
    }
    let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
    options.extend(opts.split(',').filter(|o| !o.is_empty()).map(String::from));
    Ok(MountBuilder::default()
        .destination(path)
        .typ("tmpfs")
        .source("tmpfs")
        .options(options)
        .build()?)
}
