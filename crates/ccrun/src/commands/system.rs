//! `ccrun system df` (disk usage by images, containers and volumes) and
//! `ccrun system prune`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::{bail, Context, Result};
use ccrun_image::{Digest, ImageRecord, Store};

use super::container::{command_text, status_text};
use super::prune::PruneArgs;
use crate::cli::GlobalOpts;
use crate::containers::{ContainerStore, Record, RootfsSource, Status};
use crate::format::{human_size_df, print_table, since, string_row, Listing};
use crate::volumes::{Volume, VolumeStore};

/// `ccrun system …`.
#[derive(Debug, clap::Subcommand)]
pub enum SystemSubcommand {
    /// Show disk usage
    Df(DfArgs),
    /// Remove stopped containers and unused images
    Prune(PruneArgs),
    /// Display system-wide information
    Info(super::info::InfoArgs),
    /// Get real time events from the engine's event log
    Events(super::events::EventsArgs),
}

/// Flags of `system df`.
#[derive(Debug, clap::Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format: "table", "json" (one object per line, as '{{json .}}'), a Go
    /// template such as '{{.Type}}: {{.Size}}', or "table TEMPLATE"
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// The fields `system df --format` templates use, with their column headers.
const DF_FIELDS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

/// Runs a `system` subcommand.
pub fn run(global: &GlobalOpts, cmd: SystemSubcommand) -> Result<i32> {
    match cmd {
        SystemSubcommand::Df(args) => df(global, args),
        SystemSubcommand::Prune(args) => super::prune::system_prune(global, args),
        SystemSubcommand::Info(args) => super::info::info(global, args),
        SystemSubcommand::Events(args) => super::events::events(global, args),
    }
}

/// Sizes gathered for `df`.
struct Usage {
    images: Vec<ImageRecord>,
    containers: Vec<Record>,
    /// Bytes of each layer any image lists.
    layer_sizes: BTreeMap<Digest, u64>,
    /// Bytes each container wrote (its upper directory).
    container_sizes: Vec<u64>,
    /// Every volume with its size and the number of containers mounting it.
    volumes: Vec<(Volume, u64, usize)>,
}

impl Usage {
    fn gather(global: &GlobalOpts) -> Result<Usage> {
        let root = global.store_root();
        let store = Store::open(&root)
            .with_context(|| format!("opening image store in {}", root.display()))?;
        let images = store.list()?;
        let store_containers = ContainerStore::open(&root)?;
        let containers = store_containers.list()?;
        let mut layer_sizes = BTreeMap::new();
        for layer in images.iter().flat_map(|i| &i.layers) {
            layer_sizes
                .entry(layer.clone())
                .or_insert_with(|| ccrun_image::tree_size(&store.layer_dir(layer)));
        }
        let container_sizes = containers
            .iter()
            .map(|r| ccrun_image::tree_size(&store_containers.dir_of(&r.id).join("upper")))
            .collect();
        let volume_store = VolumeStore::open(&root)?;
        let users = crate::volumes::users(&containers);
        let volumes = volume_store
            .list()?
            .into_iter()
            .map(|v| {
                let size = ccrun_image::tree_size(&volume_store.data_dir(&v.name));
                let links = users.get(v.name.as_str()).map_or(0, Vec::len);
                (v, size, links)
            })
            .collect();
        Ok(Usage {
            images,
            containers,
            layer_sizes,
            container_sizes,
            volumes,
        })
    }

    fn users_of(&self, image: &ImageRecord) -> usize {
        let id = image.id.to_string();
        self.containers
            .iter()
            .filter(|r| r.image_id.as_deref() == Some(id.as_str()))
            .count()
    }

    fn size_of(&self, layers: impl IntoIterator<Item = Digest>) -> u64 {
        layers
            .into_iter()
            .map(|l| self.layer_sizes.get(&l).copied().unwrap_or(0))
            .sum()
    }

    /// Layers (by diff-id hex) that images in use or containers' snapshots stack.
    fn layers_in_use(&self) -> BTreeSet<String> {
        let mut used: BTreeSet<String> = self
            .images
            .iter()
            .filter(|i| self.users_of(i) > 0)
            .flat_map(|i| i.layers.iter().map(|l| l.hex().to_string()))
            .collect();
        for r in &self.containers {
            if let RootfsSource::Image { layers } = &r.rootfs {
                used.extend(
                    layers
                        .iter()
                        .filter_map(|l| l.file_name())
                        .map(|n| n.to_string_lossy().into_owned()),
                );
            }
        }
        used
    }
}

/// `12.5MB (70%)`, or just the size when there is nothing to take a share of.
fn reclaimable(bytes: u64, total: u64) -> String {
    match (bytes * 100).checked_div(total) {
        Some(percent) => format!("{} ({percent}%)", human_size_df(bytes)),
        None => human_size_df(bytes),
    }
}

fn df(global: &GlobalOpts, args: DfArgs) -> Result<i32> {
    let usage = Usage::gather(global)?;
    let mut out = std::io::stdout().lock();
    if args.verbose {
        if args.format != "table" {
            bail!("--format with --verbose is not supported: use one of them");
        }
        return df_verbose(&mut out, &usage);
    }
    let images_total = usage.size_of(usage.layer_sizes.keys().cloned());
    let in_use = usage.layers_in_use();
    let images_reclaimable = usage.size_of(
        usage
            .layer_sizes
            .keys()
            .filter(|l| !in_use.contains(l.hex()))
            .cloned(),
    );
    let active_images = usage
        .images
        .iter()
        .filter(|i| usage.users_of(i) > 0)
        .count();
    let containers_total: u64 = usage.container_sizes.iter().sum();
    let containers_reclaimable: u64 = usage
        .containers
        .iter()
        .zip(&usage.container_sizes)
        .filter(|(r, _)| r.status != Status::Running)
        .map(|(_, s)| s)
        .sum();
    let running = usage
        .containers
        .iter()
        .filter(|r| r.status == Status::Running)
        .count();
    let volumes_total: u64 = usage.volumes.iter().map(|(_, size, _)| size).sum();
    let volumes_active = usage.volumes.iter().filter(|(_, _, links)| *links > 0);
    let volumes_reclaimable: u64 = usage
        .volumes
        .iter()
        .filter(|(_, _, links)| *links == 0)
        .map(|(_, size, _)| size)
        .sum();
    let lines = [
        (
            "Images",
            usage.images.len(),
            active_images,
            images_total,
            images_reclaimable,
        ),
        (
            "Containers",
            usage.containers.len(),
            running,
            containers_total,
            containers_reclaimable,
        ),
        (
            "Local Volumes",
            usage.volumes.len(),
            volumes_active.count(),
            volumes_total,
            volumes_reclaimable,
        ),
        ("Build Cache", 0, 0, 0, 0),
    ];
    let rows = lines
        .into_iter()
        .map(|(kind, total, active, size, free)| {
            let values = [
                kind.to_string(),
                total.to_string(),
                active.to_string(),
                human_size_df(size),
                reclaimable(free, size),
            ];
            string_row(DF_FIELDS.iter().zip(values).map(|((f, _), v)| (*f, v)))
        })
        .collect();
    Listing {
        default_table: "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        headers: DF_FIELDS,
        rows,
    }
    .print(&mut out, &args.format)?;
    Ok(0)
}

fn df_verbose(out: &mut impl Write, usage: &Usage) -> Result<i32> {
    writeln!(out, "Images space usage:\n")?;
    let mut table = vec![[
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ]
    .map(String::from)
    .to_vec()];
    for row in super::image::rows(&usage.images) {
        let image = row.record;
        let size = usage.size_of(image.layers.iter().cloned());
        let shared = usage.size_of(
            image
                .layers
                .iter()
                .filter(|l| {
                    usage
                        .images
                        .iter()
                        .any(|other| other.id != image.id && other.layers.contains(l))
                })
                .cloned(),
        );
        table.push(vec![
            row.repository.clone(),
            row.tag.clone(),
            image.id.hex()[..12].to_string(),
            image
                .created
                .as_deref()
                .map(since)
                .unwrap_or_else(|| "N/A".to_string()),
            human_size_df(size),
            human_size_df(shared),
            human_size_df(size - shared),
            usage.users_of(image).to_string(),
        ]);
    }
    print_table(out, &table)?;
    writeln!(out, "\nContainers space usage:\n")?;
    let mut table = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
        "STATUS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for (r, size) in usage.containers.iter().zip(&usage.container_sizes) {
        table.push(vec![
            r.short_id().to_string(),
            r.image.clone(),
            command_text(r, false),
            r.volume_mounts.len().to_string(),
            human_size_df(*size),
            since(&r.created),
            status_text(r),
            r.name.clone(),
        ]);
    }
    print_table(out, &table)?;
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    let mut table = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
    for (volume, size, links) in &usage.volumes {
        table.push(vec![
            volume.name.clone(),
            links.to_string(),
            human_size_df(*size),
        ]);
    }
    print_table(out, &table)?;
    writeln!(out, "\nBuild cache usage: 0B\n")?;
    print_table(
        out,
        &[[
            "CACHE ID",
            "CACHE TYPE",
            "SIZE",
            "CREATED",
            "LAST USED",
            "USAGE",
            "SHARED",
        ]
        .map(String::from)
        .to_vec()],
    )?;
    Ok(0)
}
