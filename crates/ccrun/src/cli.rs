//! Top-level command line: global options and the list of subcommands.
//!
//! The global options (`--root`, `--state`, `--log-level`) are accepted before or
//! after the subcommand but listed once, in `ccrun --help`, as Docker lists its own.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands;

/// ccrun — run containers from OCI images, daemonless, with Docker's verbs.
#[derive(Debug, Parser)]
#[command(
    name = "ccrun",
    version,
    about,
    long_about = None,
    max_term_width = 100,
    arg_required_else_help = true
)]
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
    /// Directory for runtime state of running containers [default: /run/ccrun for root,
    /// $XDG_RUNTIME_DIR/ccrun otherwise]
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
        if !crate::rootless::active() {
            return PathBuf::from("/var/lib/ccrun");
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        data.join("ccrun")
    }

    /// The runtime state directory (tmpfs, so it vanishes on reboot like the containers
    /// do): `/run/ccrun`, or `$XDG_RUNTIME_DIR/ccrun` rootless.
    pub fn state_root(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| match crate::rootless::active() {
                // Checked when ccrun entered the rootless namespace.
                true => {
                    crate::rootless::state_root().unwrap_or_else(|_| PathBuf::from("/tmp/ccrun"))
                }
                false => PathBuf::from("/run/ccrun"),
            })
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
    /// Run a container's healthcheck once and record the result (run by its monitor)
    #[command(hide = true, name = "healthcheck-run")]
    HealthcheckRun(commands::health::HealthcheckRunArgs),
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
    /// Print a shell completion script (bash, zsh or fish)
    Completion(crate::completion::CompletionArgs),
    /// Write man pages (ccrun.1, ccrun-run.1, …) into a directory
    Man(crate::completion::ManArgs),
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
    /// Make a new image from a container's changes
    Commit(commands::commit::CommitArgs),
    /// Build an image from a Dockerfile
    Build(Box<commands::build::BuildArgs>),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(commands::build::BuilderCommand),
    /// Search a registry for images (Docker Hub, or HOST/TERM for another registry)
    Search(commands::search::SearchArgs),
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
            | Command::ContainerCleanup(_)
            | Command::HealthcheckRun(_)
            | Command::Build(_) => true,
            Command::Container(sub) => {
                matches!(sub, C::Run(_) | C::Start(_) | C::Restart(_) | C::Exec(_))
            }
            _ => false,
        }
    }
}

/// The global options' ids, hidden from every subcommand's help.
const GLOBAL_IDS: [&str; 3] = ["root", "state", "log_level"];

/// The full command line definition: clap's, with the global options shown only at
/// the top (they still work after a subcommand). Completions and man pages use it.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| GLOBAL_IDS.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    with_hidden(cmd, &hidden)
}

/// Gives every subcommand (at any depth) hidden copies of the global options; clap
/// then does not propagate the visible ones into their help.
fn with_hidden(mut cmd: clap::Command, hidden: &[clap::Arg]) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sub| {
            let sub = hidden.iter().fold(sub, |sub, arg| sub.arg(arg.clone()));
            with_hidden(sub, hidden)
        });
    }
    cmd
}

impl Cli {
    /// Parses argv; usage errors exit with 125 like Docker's; `--help`, `--version`
    /// and a bare `ccrun` (which prints the help, as `docker` does) with 0.
    pub fn parse_with_docker_exit_codes() -> Cli {
        let parsed = command()
            .try_get_matches()
            .and_then(|m| Cli::from_arg_matches(&m));
        match parsed {
            Ok(cli) => cli,
            Err(err) => {
                use clap::error::ErrorKind;
                let code = match err.kind() {
                    // Bare `ccrun` or `ccrun volume`: that command's help on stdout,
                    // and success, as `docker` does.
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        print!("{}", err.render());
                        std::process::exit(0);
                    }
                    // The same when global options (from the environment, say) came
                    // without a subcommand.
                    ErrorKind::MissingSubcommand if missing_top_subcommand(&err) => {
                        let _ = command().print_help();
                        std::process::exit(0);
                    }
                    _ if err.use_stderr() => 125,
                    _ => 0,
                };
                if code == 0 {
                    // Printing can only fail on a closed stdout, where there is nobody to tell.
                    let _ = err.print();
                } else {
                    eprintln!("ccrun: {}", usage_error_line(&err));
                }
                std::process::exit(code);
            }
        }
    }
}

/// Whether `err` says `ccrun` itself got no subcommand (not `ccrun volume`).
fn missing_top_subcommand(err: &clap::Error) -> bool {
    matches!(
        err.get(clap::error::ContextKind::InvalidSubcommand),
        Some(clap::error::ContextValue::String(name)) if name == "ccrun"
    )
}

/// A usage error on one line, as ccrun reports every failure: clap's message without
/// its `error: ` prefix, usage and hints, and where to look for help.
fn usage_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    // The message is the first paragraph (a list of missing arguments continues it).
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message} (see --help)")
}

/// `--stop-timeout`, `stop -t`: whole seconds, 0 or more, with the same message
/// whether written `-t -5` or `-t=-5`.
pub fn seconds(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{value:?} is not a number of seconds (a whole number, 0 or more)"))
}

/// Whether to colour what goes to `stream`: only a terminal, and never with
/// `NO_COLOR` set (<https://no-color.org>).
pub fn use_colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Sets up `tracing` output on stderr at the requested level, coloured only on a
/// terminal (a log file gets plain `WARN` lines).
pub fn init_logging(global: &GlobalOpts) {
    let filter = tracing_subscriber::EnvFilter::try_new(&global.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour(&std::io::stderr()))
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

    /// The README's command table (`scripts/command-table.py`) names every command.
    #[test]
    fn readme_lists_every_command() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("<!-- command-table: begin -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- command-table: end -->").next())
            .expect("the README has a command table");
        let missing: Vec<String> = super::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_string())
            .filter(|name| name != "help" && !table.contains(&format!("| `{name}` |")))
            .collect();
        assert!(
            missing.is_empty(),
            "missing from the README's command table (run scripts/command-table.py): {missing:?}"
        );
    }

    #[test]
    fn globals_are_listed_once() {
        let mut cmd = super::command();
        let top = cmd.render_help().to_string();
        assert!(top.contains("--root"), "{top}");
        let ps = cmd
            .find_subcommand_mut("ps")
            .expect("ps")
            .render_help()
            .to_string();
        assert!(
            !ps.contains("--root") && !ps.contains("--log-level"),
            "{ps}"
        );
    }

    #[test]
    fn seconds_refuse_negatives_with_one_message() {
        assert_eq!(super::seconds("5"), Ok(5));
        let e = super::seconds("-5").expect_err("negative");
        assert!(e.contains("0 or more"), "{e}");
    }
}
