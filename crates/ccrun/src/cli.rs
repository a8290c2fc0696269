//! Top-level command line: global options and the list of subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands;

/// ccrun — run containers from OCI images, daemonless, with Docker's verbs.
#[derive(Debug, Parser)]
#[command(name = "ccrun", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOpts {
    /// Storage root for images and containers [default: /var/lib/ccrun for root,
    /// $XDG_DATA_HOME/ccrun otherwise]
    #[arg(long, global = true, env = "CCRUN_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Directory for runtime state of running containers [default: /run/ccrun]
    #[arg(long, global = true, env = "CCRUN_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace
    #[arg(
        long,
        global = true,
        env = "CCRUN_LOG",
        default_value = "warn",
        value_name = "LEVEL"
    )]
    pub log_level: String,
}

impl GlobalOpts {
    /// The storage root: flag, env, or the per-user default.
    pub fn store_root(&self) -> PathBuf {
        if let Some(root) = &self.root {
            return root.clone();
        }
        if nix::unistd::geteuid().is_root() {
            return PathBuf::from("/var/lib/ccrun");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        data.join("ccrun")
    }

    /// The runtime state directory (tmpfs, so it vanishes on reboot like the containers do).
    pub fn state_root(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| PathBuf::from("/run/ccrun"))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container
    Run(Box<commands::run::RunArgs>),
    /// Create a container without starting it
    Create(Box<commands::run::RunArgs>),
    /// Start one or more stopped containers
    Start(commands::lifecycle::StartArgs),
    /// Stop one or more running containers (stop signal, then SIGKILL after a timeout)
    Stop(commands::lifecycle::StopArgs),
    /// Send a signal to one or more running containers
    Kill(commands::lifecycle::KillArgs),
    /// Restart one or more containers
    Restart(commands::lifecycle::StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(commands::lifecycle::WaitArgs),
    /// Fetch the logs of a container
    Logs(commands::logs::LogsArgs),
    /// Run a command in a running container
    Exec(Box<commands::exec::ExecArgs>),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCommand),
    /// List a container's published ports
    Port(commands::network::PortArgs),
    /// Settle a container whose process ended (run by its monitor)
    #[command(hide = true, name = "container-cleanup")]
    ContainerCleanup(commands::lifecycle::CleanupArgs),
    /// List containers
    Ps(commands::container::PsArgs),
    /// Remove one or more containers
    Rm(commands::container::RmArgs),
    /// Display detailed information on containers or images
    Inspect(commands::inspect::InspectArgs),
    /// Display the running processes of a container
    Top(commands::top::TopArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(commands::container::ContainerSubcommand),
    /// Manage ccrun: disk usage, pruning
    #[command(subcommand)]
    System(commands::system::SystemSubcommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volume::VolumeSubcommand),
    #[command(flatten)]
    Image(commands::image::ImageCommand),
    /// Attach ccrun's stdin, stdout and stderr to a running container
    Attach(commands::attach::AttachArgs),
    /// Copy files between a container and the host (or a tar stream)
    Cp(commands::cp::CpArgs),
    /// Show the changes to a container's filesystem since it was created
    Diff(commands::diff::DiffArgs),
    /// Write a container's filesystem as a tar archive
    Export(commands::export::ExportArgs),
    /// Display a live stream of containers' resource usage
    Stats(commands::stats::StatsArgs),
    /// Get real time events from the engine's event log
    Events(commands::events::EventsArgs),
    /// Display system-wide information
    Info(commands::info::InfoArgs),
    /// Show the ccrun version information
    Version(commands::info::InfoArgs),
    /// Pause all processes within one or more containers
    Pause(commands::pause::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(commands::pause::PauseArgs),
    /// Rename a container
    Rename(commands::rename::RenameArgs),
    /// Update the resources and restart policy of one or more containers
    Update(commands::update::UpdateArgs),
    /// Show the history of an image
    History(commands::history::HistoryArgs),
}

impl Command {
    /// Whether the command may start a process inside a container (directly, or by
    /// restarting one), so ccrun must first run from a sealed image of itself (see
    /// [`ccrun_runtime::exeseal`]).
    pub fn starts_containers(&self) -> bool {
        use commands::container::ContainerSubcommand as C;
        match self {
            Command::Run(_)
            | Command::Start(_)
            | Command::Restart(_)
            | Command::Exec(_)
            | Command::ContainerCleanup(_) => true,
            Command::Container(sub) => {
                matches!(sub, C::Run(_) | C::Start(_) | C::Restart(_) | C::Exec(_))
            }
            _ => false,
        }
    }
}

impl Cli {
    /// Parses argv; usage errors exit with 125 like Docker's, `--help`/`--version` with 0.
    pub fn parse_with_docker_exit_codes() -> Cli {
        match Cli::try_parse() {
            Ok(cli) => cli,
            Err(err) => {
                let code = if err.use_stderr() { 125 } else { 0 };
                // Printing can only fail on a closed stdout/stderr, where there is nobody to tell.
                let _ = err.print();
                std::process::exit(code);
            }
        }
    }
}

/// Sets up `tracing` output on stderr at the requested level.
pub fn init_logging(global: &GlobalOpts) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
