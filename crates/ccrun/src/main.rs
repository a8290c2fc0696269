//! `ccrun`: a daemonless container engine with Docker's verbs, flags and exit codes.

mod cli;
mod commands;
mod containers;
mod etc_files;
mod events;
mod exit;
mod format;
mod formatted;
mod image_config;
mod networks;
mod relay;
mod security;
mod spec_builder;
mod storage;
mod template;
mod tty;
mod units;
mod user;
mod volumes;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse_with_docker_exit_codes();
    cli::init_logging(&cli.global);
    if let Err(err) = protect_host(&cli) {
        eprintln!("ccrun: {}", exit::one_line(&err));
        std::process::exit(exit::ENGINE_ERROR);
    }
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
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

/// Keeps `clap::Parser` in scope for `parse_with_docker_exit_codes`.
#[allow(dead_code)]
fn _assert_parser<T: Parser>() {}
