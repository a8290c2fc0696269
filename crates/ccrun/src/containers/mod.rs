//! Containers as records: every container has a directory under
//! `<root>/containers/<id>/` holding its record (`container.json`), its OCI
//! `config.json`, the files bind-mounted into it (`hostname`, `hosts`,
//! `resolv.conf`) and its overlayfs snapshot (`upper/`, `work/`, `merged/`).
//! Names are reserved atomically in `<root>/containers/names/`.

pub mod attach;
pub mod cleanup;
pub mod copy;
pub mod details;
pub mod files;
pub mod filter;
pub mod finish;
pub mod health;
pub mod launch;
pub mod monitor;
pub mod names;
pub mod options;
pub mod pause;
pub mod process;
pub mod record;
pub mod stats;
pub mod store;
pub mod update;

pub use record::{Record, RootfsSource, Status};
pub use store::ContainerStore;
