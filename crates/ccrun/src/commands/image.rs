//! Image subcommands: pull, images, rmi, login, logout, image inspect.
//! (Owned by the image work; see crates/ccrun-image.)

use crate::cli::GlobalOpts;

/// Image-related subcommands, flattened into the top-level command list.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Pull an image from a registry
    Pull {
        /// Image reference, e.g. alpine, alpine:3.20, ghcr.io/org/app@sha256:…
        reference: String,
    },
}

/// Runs an image subcommand.
pub fn run(_global: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Pull { reference } => anyhow::bail!("pull of {reference}: not implemented yet"),
    }
}
