//! `ccrun`: a daemonless container engine with Docker's verbs, flags and exit codes.

mod cli;
mod commands;
mod containers;
mod etc_files;
mod exit;
mod format;
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
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ccrun: {}", exit::one_line(&err));
            exit::code_for(&err)
        }
    };
    std::process::exit(code);
}

/// Keeps `clap::Parser` in scope for `parse_with_docker_exit_codes`.
#[allow(dead_code)]
fn _assert_parser<T: Parser>() {}
