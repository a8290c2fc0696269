//! `ccrun`: a daemonless container engine with Docker's verbs, flags and exit codes.

mod cli;
mod commands;
mod completion;
mod config;
mod containers;
mod etc_files;
mod events;
mod exit;
mod format;
mod formatted;
mod idranges;
mod image_config;
mod networks;
mod relay;
mod rootless;
mod security;
mod spec_builder;
mod storage;
mod template;
mod tty;
mod units;
mod user;
mod volumes;

fn main() {
    let cli = cli::Cli::parse_with_docker_exit_codes();
    cli::init_logging(&cli.global);
    if !cli.command.starts_containers() {
        // A listing cut short by `| head` ends quietly, as other CLIs do; commands
        // that relay a container's output keep EPIPE as an error they handle.
        exit::die_quietly_on_sigpipe();
    }
    use cli::Command;
    // Completions and man pages only describe ccrun: no storage, no configuration.
    let generated_docs = matches!(cli.command, Command::Completion(_) | Command::Man(_));
    // The monitor's cleanup must settle a container even after someone broke the file.
    let read_config = !generated_docs && !matches!(cli.command, Command::ContainerCleanup(_));
    let checked = match generated_docs {
        true => Ok(()),
        // An unprivileged user's ccrun first becomes root of that user's namespace.
        false => rootless::enter(cli.global.state.as_deref()).and_then(|()| protect_host(&cli)),
    }
    .and_then(|()| match read_config {
        true => config::init(),
        false => Ok(()),
    });
    if let Err(err) = checked {
        eprintln!("ccrun: {}", exit::one_line(&err));
        std::process::exit(exit::ENGINE_ERROR);
    }
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) if exit::is_broken_pipe(&err) => exit::BROKEN_PIPE,
        Err(err) => {
            eprintln!("ccrun: {}", exit::one_line(&err));
            exit::code_for(&err)
        }
    };
    std::process::exit(code);
}

/// Before anything else: no descriptor the caller left open may reach a container or
/// the monitor (only those ccrun passes on purpose lose close-on-exec), commands that
/// put processes into containers run from a sealed image of ccrun, which a container
/// cannot overwrite through `/proc/PID/exe` (CVE-2019-5736), and the storage root is
/// closed to other host users.
fn protect_host(cli: &cli::Cli) -> anyhow::Result<()> {
    ccrun_runtime::process::close_fds_on_exec(0)?;
    if cli.command.starts_containers() {
        ccrun_runtime::exeseal::reexec_sealed(&cli.global.state_root())?;
    }
    storage::make_private_root(&cli.global.store_root())
}
