//! The command line, shaped like runc's: the global flags come before the command,
//! and the flags that podman/conmon and containerd's shim pass are all accepted.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default state directory, runc's `/run/runc` for ccrun-oci.
pub const DEFAULT_ROOT: &str = "/run/ccrun-oci";

/// The state directory when `--root` is not given: [`DEFAULT_ROOT`] for root; for an
/// unprivileged user `$XDG_RUNTIME_DIR/ccrun-oci`, where runc keeps `runc`, since
/// /run is root's.
fn default_root() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() && !nix::unistd::geteuid().is_root() => {
            PathBuf::from(dir).join("ccrun-oci")
        }
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// A runc-compatible OCI runtime on the ccrun runtime core.
#[derive(Debug, Parser)]
#[command(name = "ccrun-oci", disable_version_flag = true)]
pub struct Cli {
    /// Directory holding the containers' state (default: /run/ccrun-oci, or
    /// $XDG_RUNTIME_DIR/ccrun-oci for an unprivileged user, as runc's)
    #[arg(long, default_value_os_t = default_root())]
    pub root: PathBuf,
    /// Also write log lines (and errors) to this file, as runc does.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of the log lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug lines too.
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: ccrun-oci uses cgroupfs).
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (containerd's shim passes `--rootless=…`); the
    /// runtime decides from the spec's user namespace.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility; checkpointing is not supported.
    #[arg(long)]
    pub criu: Option<String>,
    /// Print the version and exit.
    #[arg(short = 'v', long)]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Log line formats (runc's `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time="…" level=… msg="…"` lines.
    Text,
    /// `{"level":"…","msg":"…","time":"…"}` lines, which conmon and containerd read.
    Json,
}

/// Output formats of `ps` and `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: its init is set up and waits for `start`.
    Create(CreateArgs),
    /// Start a created container's program.
    Start(IdArg),
    /// Create and start a container; without --detach wait for it and exit with its status.
    Run(RunArgs),
    /// Print a container's state as JSON.
    State(IdArg),
    /// Send a signal (default SIGTERM) to a container's init, or with --all to all its processes.
    Kill(KillArgs),
    /// Delete a container and what it holds.
    Delete(DeleteArgs),
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// List a container's processes.
    Ps(PsArgs),
    /// List containers.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Print a container's stats and OOM events as JSON lines.
    Events(EventsArgs),
    /// Write a default config.json into a bundle.
    Spec(SpecArgs),
    /// Print the runtime-spec features JSON.
    Features,
}

impl Command {
    /// The container id the command names, if it names one.
    pub fn id(&self) -> Option<&str> {
        Some(match self {
            Command::Create(a) => &a.id,
            Command::Run(a) => &a.id,
            Command::Start(a) | Command::State(a) | Command::Pause(a) | Command::Resume(a) => &a.id,
            Command::Kill(a) => &a.id,
            Command::Delete(a) => &a.id,
            Command::Exec(a) => &a.id,
            Command::Ps(a) => &a.id,
            Command::Update(a) => &a.id,
            Command::Events(a) => &a.id,
            Command::List(_) | Command::Spec(_) | Command::Features => return None,
        })
    }
}

/// Just a container id.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id.
    pub id: String,
}

/// The flags `create` and `run` share: how the container is made from its bundle.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The bundle directory (config.json and the rootfs).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the master of the container's terminal.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: ccrun never creates a session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds after stdio (3, 4, …) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

/// `create`'s flags.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// How the container is made.
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Accepted for compatibility (`create` always detaches).
    #[arg(short, long, hide = true)]
    pub detach: bool,
    /// Container id.
    pub id: String,
}

/// `run`'s flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// How the container is made.
    #[command(flatten)]
    pub bundle: BundleArgs,
    /// Start the container and exit instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits (foreground only).
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub no_subreaper: bool,
    /// Container id.
    pub id: String,
}

/// `kill`'s arguments.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container, not just its init.
    #[arg(short, long)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

/// `delete`'s arguments.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    /// Container id.
    pub id: String,
}

/// `exec`'s arguments.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A JSON process description (runtime-spec `process`) instead of ARGS and flags.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket that receives the master of the process's terminal.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment variables (NAME=VALUE).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional groups.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Extra capabilities (e.g. CAP_NET_ADMIN).
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many fds after stdio (3, 4, …) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec in a paused container too (the process is frozen until it is resumed).
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container's:
    /// `[CONTROLLER[,CONTROLLER…]:]PATH` (repeatable).
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Container id.
    pub id: String,
    /// The program and its arguments (when no --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `ps`'s arguments.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Container id.
    pub id: String,
    /// Accepted for runc compatibility (runc passes them to ps(1)).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `list`'s arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `update`'s arguments: a runtime-spec `linux.resources` document and/or flags (flags
/// win).
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// JSON `linux.resources` from this file, or `-` for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with a k/m/g suffix).
    #[arg(long)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU CFS quota in microseconds per period (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (e.g. 0-1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (-1 or 0: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Container id.
    pub id: String,
}

/// `events`' arguments.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print stats (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id.
    pub id: String,
}

/// `spec`'s arguments.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// A spec for an unprivileged user: a user namespace mapping the caller to root.
    #[arg(long)]
    pub rootless: bool,
    /// Where to write config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
}
