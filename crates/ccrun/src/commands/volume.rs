//! `ccrun volume create|ls|inspect|rm|prune`: the volume store from the command line,
//! with Docker's output shapes.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Result};
use serde::Serialize;

use super::inspect::{InspectOpts, ObjectType};
use super::prune::VolumePruneArgs;
use crate::cli::GlobalOpts;
use crate::containers::{ContainerStore, Record};
use crate::format::{string_row, Listing};
use crate::volumes::{self, Volume, VolumeStore};

/// `ccrun volume …`.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeSubcommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes (not while a container uses them)
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused volumes (anonymous ones unless -a)
    Prune(VolumePruneArgs),
}

/// Flags of `volume create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Volume driver (only "local")
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Set a label (KEY=VALUE)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Driver options (none are supported by ccrun's local driver)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Volume name [default: 64 random hex digits]
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

/// Flags of `volume ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output (dangling=true|false, name=, label=KEY[=VALUE], driver=); repeatable
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output format: "table", "json" (one object per line) or a Go template such as
    /// '{{.Name}} {{.Mountpoint}}', or "table TEMPLATE"
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Flags of `volume inspect`.
#[derive(Debug, clap::Args)]
pub struct VolumeInspectArgs {
    /// Format the output using a Go template, e.g. '{{.Mountpoint}}'
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Volume names
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Flags of `volume rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Do not complain about volumes that do not exist
    #[arg(short, long)]
    pub force: bool,
    /// Volume names
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Runs a `volume` subcommand.
pub fn run(global: &GlobalOpts, cmd: VolumeSubcommand) -> Result<i32> {
    match cmd {
        VolumeSubcommand::Create(args) => create(global, args),
        VolumeSubcommand::Ls(args) => ls(global, args),
        VolumeSubcommand::Inspect(args) => super::inspect::inspect(
            global,
            Some(ObjectType::Volume),
            &InspectOpts {
                format: args.format,
                size: false,
                names: args.names,
            },
        ),
        VolumeSubcommand::Rm(args) => rm(global, args),
        VolumeSubcommand::Prune(args) => super::prune::volume_prune(global, args),
    }
}

/// A volume as `docker volume inspect` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeDetails {
    /// Creation time.
    pub created_at: String,
    /// Always `local`.
    pub driver: String,
    /// Labels (null when none).
    pub labels: Option<BTreeMap<String, String>>,
    /// Its `_data` directory: what containers see.
    pub mountpoint: String,
    /// Name.
    pub name: String,
    /// Driver options (null when none).
    pub options: Option<BTreeMap<String, String>>,
    /// Always `local`.
    pub scope: String,
}

impl VolumeDetails {
    /// The details of `volume` in `store`.
    pub fn new(store: &VolumeStore, volume: &Volume) -> VolumeDetails {
        VolumeDetails {
            created_at: volume.created_at.clone(),
            driver: "local".to_string(),
            labels: (!volume.labels.is_empty()).then(|| volume.labels.clone()),
            mountpoint: store.data_dir(&volume.name).display().to_string(),
            name: volume.name.clone(),
            options: (!volume.options.is_empty()).then(|| volume.options.clone()),
            scope: "local".to_string(),
        }
    }
}

/// The details of volume `name`, if it exists (for `inspect`).
pub fn volume_details(global: &GlobalOpts, name: &str) -> Result<Option<VolumeDetails>> {
    let store = VolumeStore::open(&global.store_root())?;
    Ok(store
        .get(name)?
        .map(|volume| VolumeDetails::new(&store, &volume)))
}

/// Runs `volume create`: prints the name; an existing volume is left as it is.
pub fn create(global: &GlobalOpts, args: CreateArgs) -> Result<i32> {
    if args.driver != "local" {
        bail!(
            "volume driver {:?} is not available: ccrun has only \"local\"",
            args.driver
        );
    }
    if !args.opt.is_empty() {
        bail!("volume options (-o) are not supported by ccrun's local driver");
    }
    let labels: BTreeMap<_, _> = super::parse_labels(&args.label)?;
    let name = match args.name {
        Some(name) => {
            volumes::store::validate_name(&name)?;
            name
        }
        None => crate::containers::store::new_container_id()?,
    };
    let store = VolumeStore::open(&global.store_root())?;
    let lock = store.lock()?;
    if store.get(&name)?.is_none() {
        store.create(&lock, &name, labels)?;
    }
    println!("{name}");
    Ok(0)
}

/// `volume ls --filter`: values of one key are ORed, different keys ANDed.
struct VolumeFilters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl VolumeFilters {
    fn parse(items: &[String]) -> Result<VolumeFilters> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                bail!("invalid filter {item:?}: use KEY=VALUE");
            };
            match key {
                "dangling" => {
                    if !matches!(value, "true" | "false" | "1" | "0") {
                        bail!("invalid filter {item:?}: dangling takes true or false");
                    }
                }
                "name" | "label" | "driver" => {}
                _ => bail!("invalid filter {key:?}: use dangling, name, label or driver"),
            }
            by_key
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        Ok(VolumeFilters { by_key })
    }

    fn matches(&self, volume: &Volume, used: bool) -> bool {
        self.by_key.iter().all(|(key, values)| {
            values.iter().any(|value| match key.as_str() {
                "dangling" => matches!(value.as_str(), "true" | "1") != used,
                "name" => volume.name.contains(value.as_str()),
                "driver" => value == "local",
                "label" => match value.split_once('=') {
                    Some((k, v)) => volume.labels.get(k).is_some_and(|have| have == v),
                    None => volume.labels.contains_key(value.as_str()),
                },
                _ => false,
            })
        })
    }
}

/// The volumes `filters` let through, with whether a container uses each.
fn listed(global: &GlobalOpts, filters: &VolumeFilters) -> Result<(VolumeStore, Vec<Volume>)> {
    let root = global.store_root();
    let store = VolumeStore::open(&root)?;
    let records: Vec<Record> = ContainerStore::open(&root)?.list()?;
    let users = volumes::users(&records);
    let selected = store
        .list()?
        .into_iter()
        .filter(|v| filters.matches(v, users.contains_key(v.name.as_str())))
        .collect();
    Ok((store, selected))
}

/// The fields `volume ls --format` templates use, with their column headers.
const TEMPLATE_FIELDS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Availability", "AVAILABILITY"),
    ("Group", "GROUP"),
    ("Status", "STATUS"),
];

/// One volume as `volume ls` templates and JSON see it (strings, as in Docker).
fn row(store: &VolumeStore, volume: &Volume) -> serde_json::Value {
    let labels: Vec<String> = volume
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let values = [
        volume.name.clone(),
        "local".to_string(),
        "local".to_string(),
        store.data_dir(&volume.name).display().to_string(),
        labels.join(","),
        "N/A".to_string(),
        "N/A".to_string(),
        "N/A".to_string(),
        "N/A".to_string(),
        "N/A".to_string(),
    ];
    string_row(
        TEMPLATE_FIELDS
            .iter()
            .zip(values)
            .map(|((field, _), value)| (*field, value)),
    )
}

/// Runs `volume ls`.
pub fn ls(global: &GlobalOpts, args: LsArgs) -> Result<i32> {
    let filters = VolumeFilters::parse(&args.filter)?;
    let (store, selected) = listed(global, &filters)?;
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for v in &selected {
            writeln!(out, "{}", v.name)?;
        }
        return Ok(0);
    }
    Listing {
        default_table: "table {{.Driver}}\t{{.Name}}",
        headers: TEMPLATE_FIELDS,
        rows: selected.iter().map(|v| row(&store, v)).collect(),
    }
    .print(&mut out, &args.format)?;
    Ok(0)
}

/// Runs `volume rm`: a volume that any container (running or not) mounts stays.
pub fn rm(global: &GlobalOpts, args: RmArgs) -> Result<i32> {
    let root = global.store_root();
    let store = VolumeStore::open(&root)?;
    let containers = ContainerStore::open(&root)?;
    super::for_each_named("remove", &args.names, |name| {
        if remove_one(&store, &containers, name, args.force)? {
            println!("{name}");
        }
        Ok(())
    })?;
    Ok(0)
}

/// Removes volume `name` unless a container uses it; false when it did not exist and
/// `force` says that is fine.
fn remove_one(
    store: &VolumeStore,
    containers: &ContainerStore,
    name: &str,
    force: bool,
) -> Result<bool> {
    let lock = store.lock()?;
    if store.get(name)?.is_none() {
        if force {
            return Ok(false);
        }
        bail!("no such volume: {name}");
    }
    let records = containers.list()?;
    if let Some(users) = volumes::users(&records).get(name) {
        let names: Vec<String> = users
            .iter()
            .map(|r| format!("{} ({})", r.name, r.short_id()))
            .collect();
        bail!(
            "remove {name}: volume is in use by container {}; remove the container first",
            names.join(", ")
        );
    }
    store.remove(&lock, name)?;
    Ok(true)
}
