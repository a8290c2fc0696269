//! `ccrun completion bash|zsh|fish` (clap_complete) and `ccrun man DIR`
//! (clap_mangen): generated from the same command line definition that parses
//! argv, so they never drift from the flags. `scripts/install.sh` installs both.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

/// The shells `completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellName {
    /// bash (bash-completion)
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// Flags of `completion`.
#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish
    #[arg(value_enum)]
    pub shell: ShellName,
}

/// Flags of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing), e.g. /usr/local/share/man/man1
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completion(args: &CompletionArgs) -> Result<i32> {
    let shell = match args.shell {
        ShellName::Bash => Shell::Bash,
        ShellName::Zsh => Shell::Zsh,
        ShellName::Fish => Shell::Fish,
    };
    let mut cmd = crate::cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "ccrun", &mut out);
    out.flush()?;
    Ok(0)
}

/// Writes `ccrun.1` and one page per subcommand (`ccrun-run.1`, `ccrun-volume-ls.1`, …).
pub fn man(args: &ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let cmd = crate::cli::command();
    let written = write_pages(&cmd, "ccrun", &args.dir)?;
    println!("{written} man pages written to {}", args.dir.display());
    Ok(0)
}

/// Writes the page of `cmd` (named `name`) and those of its visible subcommands;
/// returns how many were written.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<usize> {
    let mut text = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_string())
        .render(&mut text)
        .with_context(|| format!("rendering the page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
