//! The image layer of ccrun: references, the registry client, the
//! content-addressed store, safe layer unpacking and overlayfs snapshots.
//!
//! The run path uses [`Store::open`] and [`Store::resolve`] to get an image's
//! config and its unpacked layer directories (lowest first); the CLI uses
//! [`pull::pull`] and the other [`Store`] methods.

pub mod auth;
pub mod decompress;
pub mod digest;
pub mod error;
mod fsutil;
pub mod manifest;
pub mod platform;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{Error, Result};
pub use fsutil::tree_size;
pub use platform::Platform;
pub use pull::{pull, PullOptions, PullProgress};
pub use reference::Reference;
pub use snapshot::Snapshot;
pub use store::{GcStats, Image, ImageRecord, ImageUsage, Removal, Store};
