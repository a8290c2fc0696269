//! One module per group of subcommands; `dispatch` routes a parsed command line.

pub mod attach;
pub mod build;
pub mod commit;
pub mod container;
pub mod cp;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod health;
pub mod history;
pub mod image;
pub mod info;
pub mod inspect;
pub(crate) mod layer_progress;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod pause;
pub mod prune;
pub mod push;
pub mod rename;
pub mod run;
pub mod run_flags;
pub mod save;
pub mod search;
pub mod sharing;
pub mod stats;
pub mod system;
pub mod top;
pub mod update;
pub mod volume;

use anyhow::{bail, Result};

use crate::cli::{Cli, Command};

/// Runs `f` on each name the user gave, printing Docker's per-object error line for
/// each that fails, and fails after trying them all (`docker rm a b c` style); with
/// one name, its error alone.
pub fn for_each_named(
    what: &str,
    names: &[String],
    mut f: impl FnMut(&str) -> Result<()>,
) -> Result<()> {
    // One name: its error is the one line printed.
    if let [name] = names {
        return f(name);
    }
    let mut failed = Vec::new();
    for name in names {
        if let Err(e) = f(name) {
            eprintln!("Error response: {}", crate::exit::one_line(&e));
            failed.push(name.as_str());
        }
    }
    if !failed.is_empty() {
        bail!("could not {what} {}", failed.join(", "));
    }
    Ok(())
}

/// Runs the chosen subcommand and returns the process exit status.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run::run(&cli.global, *args),
        Command::Create(args) => run::create(&cli.global, *args),
        Command::Start(args) => lifecycle::start(&cli.global, args),
        Command::Stop(args) => lifecycle::stop(&cli.global, args),
        Command::Kill(args) => lifecycle::kill(&cli.global, args),
        Command::Restart(args) => lifecycle::restart(&cli.global, args),
        Command::Wait(args) => lifecycle::wait(&cli.global, args),
        Command::Logs(args) => logs::logs(&cli.global, args),
        Command::Network(cmd) => network::run(&cli.global, cmd),
        Command::Port(args) => network::port(&cli.global, args),
        Command::Exec(args) => exec::exec(&cli.global, *args),
        Command::ContainerCleanup(args) => lifecycle::cleanup(&cli.global, args),
        Command::HealthcheckRun(args) => health::run(&cli.global, args),
        Command::Image(cmd) => image::run(&cli.global, cmd),
        Command::Ps(args) => container::ps(&cli.global, args),
        Command::Rm(args) => container::rm(&cli.global, args),
        Command::Inspect(args) => inspect::inspect(&cli.global, args.kind, &args.opts),
        Command::Top(args) => top::top(&cli.global, args),
        Command::Container(cmd) => container::run(&cli.global, cmd),
        Command::System(cmd) => system::run(&cli.global, cmd),
        Command::Volume(cmd) => volume::run(&cli.global, cmd),
        Command::Completion(args) => crate::completion::completion(&args),
        Command::Man(args) => crate::completion::man(&args),
        Command::Attach(args) => attach::attach(&cli.global, args),
        Command::Cp(args) => cp::cp(&cli.global, args),
        Command::Diff(args) => diff::diff(&cli.global, args),
        Command::Export(args) => export::export(&cli.global, args),
        Command::Stats(args) => stats::stats(&cli.global, args),
        Command::Events(args) => events::events(&cli.global, args),
        Command::Info(args) => info::info(&cli.global, args),
        Command::Version(args) => info::version(args),
        Command::Pause(args) => pause::pause(&cli.global, args),
        Command::Unpause(args) => pause::unpause(&cli.global, args),
        Command::Rename(args) => rename::rename(&cli.global, args),
        Command::Update(args) => update::update(&cli.global, args),
        Command::History(args) => history::history(&cli.global, args),
        Command::Commit(args) => commit::commit(&cli.global, args),
        Command::Build(args) => build::build(&cli.global, *args),
        Command::Builder(cmd) => build::builder(&cli.global, cmd),
        Command::Search(args) => search::search(args),
    }
}

/// `--label KEY=VALUE` (or a bare `KEY`, with an empty value) flags, in order, into
/// the collection the caller keeps them in.
pub fn parse_labels<C: FromIterator<(String, String)>>(items: &[String]) -> Result<C> {
    items
        .iter()
        .map(|l| match l.split_once('=') {
            Some(("", _)) => bail!("invalid label {l:?}: empty key"),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Ok((l.clone(), String::new())),
        })
        .collect()
}
