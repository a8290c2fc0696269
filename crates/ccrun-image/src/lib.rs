//! The image layer of ccrun: references, the registry client, the
//! content-addressed store, safe layer unpacking and overlayfs snapshots.
//!
//! The run path uses [`Store::open`] and [`Store::resolve`] to get an image's
//! config and its unpacked layer directories (lowest first); the CLI uses
//! [`pull::pull`] and the other [`Store`] methods.
//!
//! Layers are untrusted input. Unpacking never writes outside the layer directory
//! ([`unpack`]), and what a pull may write is bounded by the free space of the
//! store's filesystem less a margin and, if set, by `CCRUN_MAX_LAYER_SIZE` per layer
//! (bytes, or with a `k`, `m`, `g` or `t` suffix): see [`limits`] for what is
//! counted and why.

pub mod archive;
pub mod auth;
pub mod changes;
pub mod decompress;
pub mod digest;
pub mod error;
mod fsutil;
pub mod gzip;
pub mod import;
pub mod layer_writer;
pub mod layers;
pub mod limits;
pub mod local;
pub mod manifest;
mod partial;
pub mod platform;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod search;
pub mod snapshot;
pub mod store;
pub mod tar_split;
pub mod unpack;

pub use digest::{Digest, HashingWriter};
pub use error::{Error, Result};
pub use fsutil::tree_size;
pub use limits::Limits;
pub use platform::Platform;
pub use pull::{pull, PullOptions, PullProgress};
pub use reference::Reference;
pub use snapshot::Snapshot;
pub use store::{GcStats, Image, ImageRecord, ImageUsage, Removal, Store};
