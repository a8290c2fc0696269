//! Builds images from Dockerfiles on the runtime core.
//!
//! [`dockerfile`] parses (directives, continuations, heredocs), [`shell`] expands
//! variables as Docker does, [`ignore`] applies `.dockerignore`, and [`build`] runs
//! the stages the target needs: each RUN in a container that the engine creates
//! (see [`Engine`]), its changes taken from the overlay's upper directory as a layer
//! ([`ccrun_image::layer_writer`]); COPY and ADD layers written straight from the
//! files ([`files`]). Steps are cached by [`cache`]; the image is recorded in the
//! store like a pulled one.

pub mod builder;
pub mod cache;
pub mod config;
pub mod dockerfile;
pub mod error;
pub mod files;
pub mod ignore;
pub mod shell;

pub use builder::{build, duration_ns, Built, Engine, Network, Options, RunStep, StepMount};
pub use cache::Cache;
pub use error::{Error, Result};
