//! `ccrun push IMAGE [DESTINATION]` and `ccrun tag SOURCE TARGET`: images to
//! registries (the work is [`ccrun_image::push`]), with Docker's progress lines.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ccrun_image::push::{PushOptions, PushProgress};
use ccrun_image::Reference;
use indicatif::ProgressBar;

use super::image::{bar_style, familiar, open_store, terminal_columns, InsecureRegistries};
use super::layer_progress::{plain_style, LayerDisplay, Mode};
use crate::cli::GlobalOpts;

/// Flags of `push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Push every tag of the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Print only the pushed name
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub insecure: InsecureRegistries,
    /// Upload layers larger than SIZE in chunks of SIZE while they are compressed
    /// (PATCH requests, resumed where the registry says after a failure); 0 sends
    /// every layer in one request once it is compressed
    #[arg(long, default_value = "8m", value_name = "SIZE", value_parser = size)]
    pub chunk_size: u64,
    /// How many layers to push at once
    #[arg(long, env = "CCRUN_PUSH_JOBS", default_value_t = 3, value_name = "N")]
    pub jobs: usize,
    /// gzip level of the layers compressed for the push: 1 (fastest) to 9 (smallest)
    #[arg(long, default_value_t = ccrun_image::gzip::DEFAULT_LEVEL, value_name = "LEVEL",
          value_parser = clap::value_parser!(u32).range(1..=9))]
    pub compression_level: u32,
    /// The image: a name in the store, e.g. registry.example:5000/app:1.0
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
    /// Push it under this name instead of its own (podman's DESTINATION)
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
}

fn size(value: &str) -> Result<u64, String> {
    crate::units::parse_bytes(value)
        .map_err(|e| e.to_string())
        .and_then(|n| u64::try_from(n).map_err(|_| format!("{value:?}: not a size")))
}

/// Runs `push`.
pub fn push(global: &GlobalOpts, args: PushArgs) -> Result<i32> {
    let store = open_store(global)?;
    let given = Reference::parse(&args.image)?;
    let explicit_tag = args
        .image
        .rsplit('/')
        .next()
        .is_some_and(|l| l.contains(':'));
    let mut pushes: Vec<(String, Reference)> = Vec::new();
    if args.all_tags {
        if explicit_tag || given.digest().is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        if args.destination.is_some() {
            bail!("--all-tags pushes an image's own names: no DESTINATION");
        }
        let repo = given.name();
        let mut names: Vec<String> = store
            .list()?
            .into_iter()
            .flat_map(|r| r.names)
            .filter(|n| Reference::parse(n).is_ok_and(|r| r.name() == repo))
            .collect();
        names.sort();
        if names.is_empty() {
            bail!("no tags of {} in the store", familiar(&repo));
        }
        for n in names {
            let r = Reference::parse(&n)?;
            pushes.push((n, r));
        }
    } else {
        if !explicit_tag && given.digest().is_none() && !args.quiet {
            println!("Using default tag: latest");
        }
        let target = match &args.destination {
            Some(d) => Reference::parse(d)?,
            None => given.clone(),
        };
        pushes.push((given.to_string(), target));
    }
    let options = PushOptions {
        insecure_registries: crate::config::insecure_registries(&args.insecure.registries),
        chunk_size: args.chunk_size,
        jobs: args.jobs.max(1),
        compression_level: args.compression_level,
    };
    if !args.quiet {
        let first = &pushes[0].1;
        println!("The push refers to repository [{}]", first.name());
    }
    for (source, target) in &pushes {
        if store.find(source)?.is_none() {
            bail!("no such image: {}", familiar(source));
        }
        let display = LayerDisplay::new(args.quiet);
        let pushed = ccrun_image::push::push(&store, source, target, &options, &display)
            .with_context(|| format!("pushing {}", familiar(&target.to_string())))?;
        crate::events::object(
            &global.store_root(),
            "image",
            "push",
            &pushed.config.to_string(),
            &target.to_string(),
        );
        if args.quiet {
            println!("{}", familiar(&target.to_string()));
        } else {
            let key = target
                .tag()
                .map_or_else(|| target.manifest_key(), str::to_string);
            println!("{key}: digest: {} size: {}", pushed.digest, pushed.size);
        }
    }
    Ok(0)
}

impl PushProgress for LayerDisplay {
    fn layer(&self, index: usize, id: &str) {
        let bar = match self.mode() {
            Mode::Quiet => None,
            Mode::Lines => {
                println!("{id}: Preparing");
                None
            }
            Mode::Bars(multi) => {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(plain_style());
                bar.set_prefix(id.to_string());
                bar.set_message("Preparing");
                Some(bar)
            }
        };
        self.set_layer(index, id.to_string(), bar);
    }

    fn exists(&self, index: usize) {
        self.finish(index, "Layer already exists");
    }

    fn mounted(&self, index: usize, from: &str) {
        self.finish(index, &format!("Mounted from {from}"));
    }

    fn uploading(&self, index: usize, size: Option<u64>) {
        self.with_layer(index, |_, bar| {
            if let Some(bar) = bar {
                match size {
                    Some(size) => bar.set_length(size),
                    None => bar.unset_length(),
                }
                bar.set_style(bar_style(terminal_columns()));
                bar.set_message("Pushing");
                bar.enable_steady_tick(Duration::from_millis(200));
            }
        });
    }

    fn advance(&self, index: usize, bytes: u64) {
        LayerDisplay::advance(self, index, bytes);
    }

    fn pushed(&self, index: usize) {
        self.finish(index, "Pushed");
    }

    fn warn(&self, message: &str) {
        LayerDisplay::warn(self, message);
    }
}

/// Flags of `tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The image: a name or id in the store
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// Runs `tag`.
pub fn tag(global: &GlobalOpts, args: TagArgs) -> Result<i32> {
    let store = open_store(global)?;
    let target = Reference::parse(&args.target)?;
    let lock = store.lock()?;
    let record = store.tag(&lock, &args.source, &target)?;
    crate::events::object(
        &global.store_root(),
        "image",
        "tag",
        &record.id.to_string(),
        &target.to_string(),
    );
    Ok(0)
}
