//! `ccrun-oci`: a runc-compatible OCI runtime command line (create, start, run, state,
//! kill, delete, exec, ps, list, pause, resume, update, events, spec, features) on the
//! same runtime core as the `ccrun` engine ([`ccrun_runtime::Container`]), so podman
//! (`--runtime`), containerd (`BinaryName`), CRI-O and Kubernetes' RuntimeClass can run
//! containers with ccrun.
//!
//! It is a crate and binary of its own rather than the `ccrun` binary dispatching on
//! its name: runc's command line clashes with the engine's (`run`, `exec`, `ps`, `kill`
//! take other flags and positional arguments), the runtime needs none of the engine's
//! image, network and volume code, and a small binary starts faster, which every
//! `create`/`start`/`state` call of a container manager pays for.
//!
//! Container creation and `exec` need a single-threaded process: nothing here starts
//! threads.

mod cli;
mod commands;
mod exec;
mod info;
mod log;
mod relay;
mod resources;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

/// The runtime-spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

/// The current time as RFC 3339 (UTC, whole seconds), as runc's log lines carry it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut logger = log::Logger::open(cli.log.as_deref(), cli.log_format, cli.debug);
    if cli.version {
        println!(
            "ccrun-oci version {}\nspec: {OCI_VERSION}",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    let Some(command) = &cli.command else {
        logger.error("no command given (see --help)");
        return ExitCode::FAILURE;
    };
    if cli.systemd_cgroup {
        logger.error(
            "--systemd-cgroup is not supported: ccrun-oci manages cgroups itself (use the \
             cgroupfs cgroup manager, e.g. podman --cgroup-manager cgroupfs, containerd \
             SystemdCgroup = false)",
        );
        return ExitCode::FAILURE;
    }
    logger.debug(&format!("{command:?}"));
    if matches!(
        command,
        cli::Command::Create(_) | cli::Command::Run(_) | cli::Command::Exec(_)
    ) {
        // Processes that enter the container are clones of this one: they must not be an
        // image of the binary a container could overwrite (CVE-2019-5736).
        if let Err(e) = ccrun_runtime::exeseal::reexec_sealed(&cli.root) {
            logger.error(&e.to_string());
            return ExitCode::FAILURE;
        }
    }
    match commands::dispatch(&cli, command, &mut logger) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            logger.error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
