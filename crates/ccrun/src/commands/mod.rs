//! One module per group of subcommands; `dispatch` routes a parsed command line.

pub mod container;
pub mod image;
pub mod inspect;
pub mod prune;
pub mod run;
pub mod system;
pub mod top;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand and returns the process exit status.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(&cli.global, *args),
        Command::Image(cmd) => image::run(&cli.global, cmd),
        Command::Ps(args) => container::ps(&cli.global, args),
        Command::Rm(args) => container::rm(&cli.global, args),
        Command::Inspect(args) => inspect::inspect(&cli.global, args.kind, &args.opts),
        Command::Top(args) => top::top(&cli.global, args),
        Command::Container(cmd) => container::run(&cli.global, cmd),
        Command::System(cmd) => system::run(&cli.global, cmd),
    }
}
