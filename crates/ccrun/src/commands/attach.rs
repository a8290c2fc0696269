//! `ccrun attach CONTAINER`: ccrun's stdio joined to a running container's, through
//! its monitor (see [`crate::containers::attach`]).

use anyhow::{Context, Result};

use crate::cli::GlobalOpts;
use crate::containers::attach::{self, Options};
use crate::containers::ContainerStore;

/// Flags of `attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Keys that detach, leaving the container running [default: ctrl-p,ctrl-q]
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Do not attach stdin
    #[arg(long)]
    pub no_stdin: bool,
    /// Forward the signals ccrun receives to the container (--sig-proxy=false: don't)
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub sig_proxy: bool,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Runs `attach`: returns the container's exit code, or 0 when detached.
pub fn attach(global: &GlobalOpts, args: AttachArgs) -> Result<i32> {
    let detach_keys = attach::parse_detach_keys(
        args.detach_keys
            .as_deref()
            .unwrap_or(attach::DEFAULT_DETACH_KEYS),
    )?;
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    attach::check_attachable(&record)?;
    let stdin = record.interactive && !args.no_stdin;
    if stdin && record.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!("the input device is not a TTY; use --no-stdin or run from a terminal");
    }
    let stream = attach::connect(&store.dir_of(&record.id), stdin).with_context(|| {
        format!(
            "container {} offers no attach socket (it runs in the foreground of another ccrun)",
            record.name
        )
    })?;
    let opts = Options {
        stdin,
        tty: record.tty,
        detach_keys,
        sig_proxy: args.sig_proxy,
        eof_ends_input: false,
    };
    let outcome = attach::relay(&stream, &record, &opts)?;
    attach::finish(&store, &record, outcome)
}
