//! Image subcommands: pull, images, rmi, login, logout, image inspect/ls/rm; the
//! verbs of other modules (push, tag, save, load, import) are listed here too.
//! The work is done by `ccrun_image`; this module parses flags and prints.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use ccrun_image::auth::{default_config_path, Credentials, DockerConfig};
use ccrun_image::registry::{ClientOptions, RegistryClient};
use ccrun_image::store::{ImageRecord, Removal, Store};
use ccrun_image::{Digest, Platform, PullOptions, PullProgress, Reference};
use indicatif::{ProgressBar, ProgressStyle};

use super::layer_progress::{LayerDisplay, Mode};

use super::inspect::{InspectOpts, ObjectType};
use crate::cli::GlobalOpts;
use crate::containers::cleanup::ContainerUsage;
use crate::containers::ContainerStore;
use crate::format::{human_size, since, string_row, Listing};

/// Image-related subcommands, flattened into the top-level command list.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Download an image from a registry
    Pull(PullArgs),
    /// List images
    Images(ImagesArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageSubcommand),
    /// Log in to a registry (stores credentials in ~/.docker/config.json)
    Login(LoginArgs),
    /// Log out from a registry
    Logout {
        /// Registry host [default: docker.io]
        server: Option<String>,
    },
    /// Upload an image to a registry
    Push(super::push::PushArgs),
    /// Give an image another name
    Tag(super::push::TagArgs),
    /// Write images to a tar archive (docker-archive or oci-archive)
    Save(super::save::SaveArgs),
    /// Load images from a tar archive (docker-archive or oci-archive)
    Load(super::save::LoadArgs),
    /// Make an image from a filesystem tarball
    Import(super::commit::ImportArgs),
}

/// `ccrun image …`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageSubcommand {
    /// Show an image's record, manifest and config as JSON
    Inspect(InspectOpts),
    /// List images
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Remove unused images
    Prune(super::prune::PruneArgs),
    /// Show the history of an image
    History(super::history::HistoryArgs),
    /// Upload an image to a registry
    Push(super::push::PushArgs),
    /// Give an image another name
    Tag(super::push::TagArgs),
    /// Write images to a tar archive (docker-archive or oci-archive)
    Save(super::save::SaveArgs),
    /// Load images from a tar archive (docker-archive or oci-archive)
    Load(super::save::LoadArgs),
    /// Make an image from a filesystem tarball
    Import(super::commit::ImportArgs),
}

/// `--insecure-registry`, shared by the commands that talk to registries.
#[derive(Debug, clap::Args)]
pub struct InsecureRegistries {
    /// Registry to reach over plain HTTP (localhost and 127.0.0.0/8 always are)
    #[arg(
        long = "insecure-registry",
        value_name = "HOST[:PORT]",
        env = "CCRUN_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub registries: Vec<String>,
}

/// Flags of `pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Platform to pull from a multi-platform image, e.g. linux/arm64
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print nothing but the pulled image's name
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub insecure: InsecureRegistries,
    /// How many layers to download and unpack at once
    #[arg(long, env = "CCRUN_PULL_JOBS", default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Flush every layer to disk before committing it (survives power loss; slower)
    #[arg(long, env = "CCRUN_SYNC_LAYERS")]
    pub sync_layers: bool,
    /// Image reference, e.g. alpine, alpine:3.20, ghcr.io/org/app@sha256:…
    pub reference: String,
}

/// Flags of `images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Show all images (ccrun keeps no intermediate images: the same as without -a)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output (dangling=true|false, reference=PATTERN, label=KEY[=VALUE],
    /// before=IMAGE, since=IMAGE); repeatable
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output format: "table", "json" (one object per line, as '{{json .}}'), a Go
    /// template such as '{{.Repository}}:{{.Tag}}', or "table TEMPLATE"
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate image ids
    #[arg(long)]
    pub no_trunc: bool,
    /// Only images of this repository (and tag), e.g. busybox or busybox:1.36
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// Flags of `rmi`.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Remove even if tagged several times or used by containers
    #[arg(short, long)]
    pub force: bool,
    /// Image references or ids
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// Flags of `login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// User name
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password or token (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub insecure: InsecureRegistries,
    /// Registry host [default: docker.io]
    pub server: Option<String>,
}

/// Runs an image subcommand.
pub fn run(global: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Pull(args) | ImageCommand::Image(ImageSubcommand::Pull(args)) => {
            pull(global, args)
        }
        ImageCommand::Images(args) | ImageCommand::Image(ImageSubcommand::Ls(args)) => {
            images(global, args)
        }
        ImageCommand::Rmi(args) | ImageCommand::Image(ImageSubcommand::Rm(args)) => {
            rmi(global, args)
        }
        ImageCommand::Image(ImageSubcommand::Prune(args)) => {
            super::prune::image_prune(global, args)
        }
        ImageCommand::Image(ImageSubcommand::Inspect(opts)) => {
            super::inspect::inspect(global, Some(ObjectType::Image), &opts)
        }
        ImageCommand::Image(ImageSubcommand::History(args)) => {
            super::history::history(global, args)
        }
        ImageCommand::Push(args) | ImageCommand::Image(ImageSubcommand::Push(args)) => {
            super::push::push(global, args)
        }
        ImageCommand::Tag(args) | ImageCommand::Image(ImageSubcommand::Tag(args)) => {
            super::push::tag(global, args)
        }
        ImageCommand::Save(args) | ImageCommand::Image(ImageSubcommand::Save(args)) => {
            super::save::save(global, args)
        }
        ImageCommand::Load(args) | ImageCommand::Image(ImageSubcommand::Load(args)) => {
            super::save::load(global, args)
        }
        ImageCommand::Import(args) | ImageCommand::Image(ImageSubcommand::Import(args)) => {
            super::commit::import(global, args)
        }
        ImageCommand::Login(args) => login(args),
        ImageCommand::Logout { server } => logout(server),
    }
}

pub(crate) fn open_store(global: &GlobalOpts) -> anyhow::Result<Store> {
    let root = global.store_root();
    Store::open(&root).with_context(|| format!("opening image store in {}", root.display()))
}

/// Runs `pull`: a short name is tried in each unqualified-search registry of the
/// configuration in turn, an alias stands for its target.
fn pull(global: &GlobalOpts, args: PullArgs) -> anyhow::Result<i32> {
    let candidates = crate::config::candidates(&args.reference);
    let mut failures = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        match pull_reference(global, &args, candidate) {
            Ok(code) => return Ok(code),
            Err(e) if i + 1 < candidates.len() => {
                tracing::info!("{candidate}: {}", crate::exit::one_line(&e));
                failures.push(format!("{candidate}: {}", crate::exit::one_line(&e)));
            }
            Err(e) if failures.is_empty() => return Err(e),
            Err(e) => {
                failures.push(format!("{candidate}: {}", crate::exit::one_line(&e)));
                bail!("pulling {}: {}", args.reference, failures.join("; "));
            }
        }
    }
    bail!("pulling {}: no registry to pull from", args.reference)
}

fn pull_reference(global: &GlobalOpts, args: &PullArgs, name: &str) -> anyhow::Result<i32> {
    let reference = Reference::parse(name)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()?;
    let store = open_store(global)?;
    let options = PullOptions {
        platform,
        insecure_registries: crate::config::insecure_registries(&args.insecure.registries),
        jobs: args.jobs,
        sync_layers: args.sync_layers,
        mirrors: crate::config::mirrors(reference.registry()),
    };
    let before = store.find(&reference.to_string()).ok().flatten();
    let display = LayerDisplay::new(args.quiet);
    if !args.quiet {
        let what = reference
            .tag()
            .map_or_else(|| reference.manifest_key(), str::to_string);
        println!("{what}: Pulling from {}", reference.repository());
    }
    let containers = ContainerStore::open(&global.store_root())?;
    let usage = ContainerUsage(&containers);
    let record = ccrun_image::pull(&store, &reference, &options, &display, &usage)
        .with_context(|| format!("pulling {}", familiar(&reference.to_string())))?;
    // Finished layers keep their "Pull complete" lines on screen, as Docker's do.
    crate::events::object(
        &global.store_root(),
        "image",
        "pull",
        &reference.to_string(),
        &reference.to_string(),
    );
    if args.quiet {
        println!("{reference}");
        return Ok(0);
    }
    let shown = familiar(&reference.to_string());
    println!(
        "Digest: {}",
        record
            .index_digest
            .as_ref()
            .unwrap_or(&record.manifest_digest)
    );
    if before.as_ref().is_some_and(|b| b.id == record.id) {
        println!("Status: Image is up to date for {shown}");
    } else {
        println!("Status: Downloaded newer image for {shown}");
    }
    println!("{reference}");
    Ok(0)
}

impl PullProgress for LayerDisplay {
    fn layer(&self, index: usize, digest: &Digest, size: u64, present: bool) {
        let id = digest.hex()[..12].to_string();
        let bar = match self.mode() {
            Mode::Quiet => None,
            Mode::Lines => {
                let state = if present {
                    "Already exists"
                } else {
                    "Pulling fs layer"
                };
                println!("{id}: {state}");
                None
            }
            Mode::Bars(multi) => {
                if present {
                    let _ = multi.println(format!("{id}: Already exists"));
                    None
                } else {
                    let bar = multi.add(ProgressBar::new(size));
                    bar.set_style(bar_style(terminal_columns()));
                    bar.set_prefix(id.clone());
                    bar.set_message("Downloading");
                    bar.enable_steady_tick(Duration::from_millis(200));
                    Some(bar)
                }
            }
        };
        self.set_layer(index, id, bar);
    }

    fn advance(&self, index: usize, bytes: u64) {
        LayerDisplay::advance(self, index, bytes);
    }

    fn restart(&self, index: usize) {
        self.with_layer(index, |_, bar| {
            if let Some(bar) = bar {
                bar.set_position(0);
            }
        });
    }

    fn layer_done(&self, index: usize) {
        self.finish(index, "Pull complete");
    }

    fn warn(&self, message: &str) {
        LayerDisplay::warn(self, message);
    }
}

/// The terminal's width in columns (80 when it cannot be told).
pub(crate) fn terminal_columns() -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass, nothing else.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

/// A layer's progress line fitted to `columns`: Docker's `id: Downloading [==>  ]
/// 1.2MB/3.4MB` with the bar taking what is left, and no bar at all when too narrow,
/// so that no line wraps (a wrapped line breaks the redrawing).
pub(crate) fn bar_style(columns: usize) -> ProgressStyle {
    ProgressStyle::with_template(&bar_template(columns))
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The template of [`bar_style`].
fn bar_template(columns: usize) -> String {
    // "0123456789ab: Downloading [" and "] 1023.99 MiB/1023.99 MiB" around the bar,
    // and a column spare: a line as wide as the terminal wraps on some.
    const AROUND: usize = 12 + 2 + 11 + 2 + 2 + 23 + 1;
    if columns >= AROUND + 10 {
        format!(
            "{{prefix}}: {{msg:11}} [{{bar:{}}}] {{bytes}}/{{total_bytes}}",
            (columns - AROUND).min(50)
        )
    } else if columns >= 52 {
        "{prefix}: {msg:11} {bytes}/{total_bytes}".to_string()
    } else {
        "{prefix}: {percent}%".to_string()
    }
}

/// A full name as Docker shows it: `alpine:latest` rather than `docker.io/library/alpine:latest`.
pub(crate) fn familiar(full: &str) -> String {
    match Reference::parse(full) {
        Ok(r) => {
            let mut s = r.familiar_name();
            if let Some(t) = r.tag() {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = r.digest() {
                s.push('@');
                s.push_str(&d.to_string());
            }
            s
        }
        Err(_) => full.to_string(),
    }
}

/// One line of `images`.
pub(crate) struct Row<'a> {
    /// Familiar repository name, or `<none>`.
    pub repository: String,
    /// Tag, or `<none>`.
    pub tag: String,
    /// Repo digest, or `<none>`.
    pub digest: String,
    /// The image.
    pub record: &'a ImageRecord,
}

/// The lines `images` shows: one per tag, newest image first.
pub(crate) fn rows(records: &[ImageRecord]) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    for record in records.iter().rev() {
        let digest_for = |name: &str| {
            record
                .repo_digests
                .iter()
                .filter_map(|d| Reference::parse(d).ok())
                .find(|d| d.name() == name)
                .and_then(|d| d.digest().map(|x| x.to_string()))
                .unwrap_or_else(|| "<none>".to_string())
        };
        let mut any = false;
        for name in &record.names {
            if let Ok(r) = Reference::parse(name) {
                any = true;
                out.push(Row {
                    repository: r.familiar_name(),
                    tag: r.tag().unwrap_or("<none>").to_string(),
                    digest: digest_for(&r.name()),
                    record,
                });
            }
        }
        if !any {
            // Untagged but pulled by digest: show the repository, like Docker does.
            let repo = record
                .repo_digests
                .first()
                .and_then(|d| Reference::parse(d).ok());
            out.push(Row {
                repository: repo
                    .as_ref()
                    .map_or_else(|| "<none>".to_string(), |r| r.familiar_name()),
                tag: "<none>".to_string(),
                digest: repo
                    .and_then(|r| r.digest().map(|d| d.to_string()))
                    .unwrap_or_else(|| "<none>".to_string()),
                record,
            });
        }
    }
    out
}

/// The fields `images --format` templates use, with their column headers.
const IMAGE_FIELDS: &[(&str, &str)] = &[
    ("Containers", "CONTAINERS"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedSince", "CREATED"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("SharedSize", "SHARED SIZE"),
    ("Size", "SIZE"),
    ("Tag", "TAG"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

fn images(global: &GlobalOpts, args: ImagesArgs) -> anyhow::Result<i32> {
    let store = open_store(global)?;
    let records = store.list()?;
    let mut filters = ImageFilters::parse(&args.filter, &store)?;
    if let Some(repo) = &args.repository {
        // `images REPO[:TAG]` is a reference filter ANDed with the others, as in Docker.
        filters.repository = Some(repo.clone());
    }
    let labels = |record: &ImageRecord| -> BTreeMap<String, String> {
        store
            .resolve(&record.id.to_string())
            .ok()
            .flatten()
            .and_then(|image| image.config.config().clone())
            .and_then(|c| c.labels().clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default()
    };
    let rows: Vec<Row<'_>> = rows(&records)
        .into_iter()
        .filter(|row| filters.matches(row, &labels))
        .collect();
    let id = |r: &ImageRecord| {
        if args.no_trunc {
            r.id.to_string()
        } else {
            r.id.hex()[..12].to_string()
        }
    };
    let mut out = std::io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for row in &rows {
            let i = id(row.record);
            if !seen.contains(&i) {
                writeln!(out, "{i}")?;
                seen.push(i);
            }
        }
        return Ok(0);
    }
    let template_rows = rows
        .iter()
        .map(|row| {
            let r = row.record;
            let created = r.created.as_deref();
            let values = [
                "N/A".to_string(),
                created.map(crate::format::docker_time).unwrap_or_default(),
                created.map_or_else(|| "N/A".to_string(), since),
                row.digest.clone(),
                id(r),
                row.repository.clone(),
                "N/A".to_string(),
                human_size(r.size),
                row.tag.clone(),
                "N/A".to_string(),
                human_size(r.size),
            ];
            string_row(IMAGE_FIELDS.iter().zip(values).map(|((f, _), v)| (*f, v)))
        })
        .collect();
    let default_table = if args.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    Listing {
        default_table,
        headers: IMAGE_FIELDS,
        rows: template_rows,
    }
    .print(&mut out, &args.format)?;
    Ok(0)
}

/// `images --filter`: values of one key are ORed, different keys ANDed, as in Docker.
#[derive(Default)]
struct ImageFilters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<String>,
    /// (created time, pull time) of the `before=` image.
    before: Option<(String, u64)>,
    /// (created time, pull time) of the `since=` image.
    since: Option<(String, u64)>,
    /// `images REPO[:TAG]`.
    repository: Option<String>,
}

/// When an image was made, for `before=`/`since=`: its `created` time, ties (as
/// between reproducible builds) broken by the order of pulls.
fn age_key(record: &ImageRecord) -> (String, u64) {
    (record.created.clone().unwrap_or_default(), record.pulled_at)
}

impl ImageFilters {
    fn parse(items: &[String], store: &Store) -> anyhow::Result<ImageFilters> {
        let mut f = ImageFilters::default();
        for item in items {
            let Some((key, value)) = item.split_once('=') else {
                bail!("bad format of filter {item:?} (expected name=value)");
            };
            let image_age = || -> anyhow::Result<(String, u64)> {
                let record = store
                    .find(value)?
                    .with_context(|| format!("filter {key}: no such image: {value}"))?;
                Ok(age_key(&record))
            };
            match key {
                "dangling" => {
                    f.dangling = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => bail!("invalid filter 'dangling={value}': use true or false"),
                    })
                }
                "reference" => f.references.push(value.to_string()),
                "label" => f.labels.push(value.to_string()),
                "before" => f.before = Some(image_age()?),
                "since" => f.since = Some(image_age()?),
                _ => bail!(
                    "invalid filter '{key}': ccrun images supports dangling, reference, label, before and since"
                ),
            }
        }
        Ok(f)
    }

    fn matches(
        &self,
        row: &Row<'_>,
        labels: &dyn Fn(&ImageRecord) -> BTreeMap<String, String>,
    ) -> bool {
        let tagged = row.tag != "<none>";
        let shown = format!("{}:{}", row.repository, row.tag);
        let reference_matches =
            |pattern: &str| tagged && (glob(pattern, &row.repository) || glob(pattern, &shown));
        let age = age_key(row.record);
        self.dangling
            .is_none_or(|d| d == row.record.names.is_empty())
            && (self.references.is_empty() || self.references.iter().any(|p| reference_matches(p)))
            && self
                .repository
                .as_deref()
                .is_none_or(|repo| repository_matches(repo, row))
            && self.before.as_ref().is_none_or(|b| age < *b)
            && self.since.as_ref().is_none_or(|s| age > *s)
            && (self.labels.is_empty() || {
                let have = labels(row.record);
                self.labels.iter().any(|l| match l.split_once('=') {
                    Some((k, v)) => have.get(k).is_some_and(|x| x == v),
                    None => have.contains_key(l),
                })
            })
    }
}

/// `images REPO[:TAG]`: the repository, and the tag when one is given.
fn repository_matches(repo: &str, row: &Row<'_>) -> bool {
    let has_tag = repo
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    match Reference::parse(repo) {
        Ok(r) if has_tag => familiar(&r.to_string()) == format!("{}:{}", row.repository, row.tag),
        Ok(r) => r.familiar_name() == row.repository,
        Err(_) => false,
    }
}

/// Go's `path.Match` for reference patterns: `*` matches within one path element,
/// `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(&p, &t)
}

fn rmi(global: &GlobalOpts, args: RmiArgs) -> anyhow::Result<i32> {
    let store = open_store(global)?;
    let containers = ContainerStore::open(&global.store_root())?;
    let lock = store.lock()?;
    let mut failures = Vec::new();
    for name in &args.images {
        match store.remove(&lock, name, args.force, &ContainerUsage(&containers)) {
            Ok(actions) => {
                for a in actions {
                    match a {
                        Removal::Untagged(n) => {
                            println!("Untagged: {}", familiar(&n));
                            crate::events::object(&global.store_root(), "image", "untag", &n, &n);
                        }
                        Removal::Deleted(id) => {
                            println!("Deleted: {id}");
                            let id = id.to_string();
                            crate::events::object(
                                &global.store_root(),
                                "image",
                                "delete",
                                &id,
                                &id,
                            );
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("Error response: {e}");
                failures.push(name.clone());
            }
        }
    }
    let freed = store
        .gc(&lock, &ContainerUsage(&containers))
        .context("removing unused layers")?;
    tracing::info!("removed {} layers and {} blobs", freed.layers, freed.blobs);
    if !failures.is_empty() {
        bail!("could not remove {}", failures.join(", "));
    }
    Ok(0)
}

/// What `inspect` shows of image `name`, in the shape of Docker's `ImageInspect`;
/// `None` when the store has no such image.
pub fn image_json(store: &Store, name: &str) -> anyhow::Result<Option<InOrder>> {
    let Some(image) = store.resolve(name)? else {
        return Ok(None);
    };
    let record = &image.record;
    let config = &image.config;
    let run = config.config().clone().unwrap_or_default();
    let empty_objects = |keys: &Option<Vec<String>>| {
        keys.as_ref().filter(|k| !k.is_empty()).map(|keys| {
            keys.iter()
                .map(|k| (k.clone(), serde_json::json!({})))
                .collect::<serde_json::Map<_, _>>()
        })
    };
    let lower: Vec<String> = image
        .layer_dirs
        .iter()
        .rev()
        .map(|d| d.display().to_string())
        .collect();
    let (arch, variant) = (config.architecture().to_string(), config.variant().clone());
    let json = serde_json::json!({
        "Id": record.id,
        "RepoTags": record.names.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
        "RepoDigests": record.repo_digests.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": config.history().as_ref().and_then(|h| h.last()).and_then(|h| h.comment().clone()).unwrap_or_default(),
        "Created": record.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": config.author().clone().unwrap_or_default(),
        "Config": {
            "Hostname": "",
            "Domainname": "",
            "User": run.user().clone().unwrap_or_default(),
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "ExposedPorts": empty_objects(run.exposed_ports()),
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": run.env(),
            "Cmd": run.cmd(),
            "Image": "",
            "Volumes": empty_objects(run.volumes()),
            "WorkingDir": run.working_dir().clone().unwrap_or_default(),
            "Entrypoint": run.entrypoint(),
            "OnBuild": null,
            "Labels": run.labels(),
            "StopSignal": run.stop_signal(),
        },
        "Architecture": arch,
        "Variant": variant,
        "Os": config.os().to_string(),
        "Size": record.size,
        "VirtualSize": record.size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": { "LowerDir": lower.join(":") },
        },
        "RootFS": {
            "Type": "layers",
            "Layers": config.rootfs().diff_ids(),
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    // Docker's field order; it leaves out a variant the image does not have.
    const ORDER: [&str; 17] = [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "DockerVersion",
        "Author",
        "Config",
        "Architecture",
        "Variant",
        "Os",
        "Size",
        "VirtualSize",
        "GraphDriver",
        "RootFS",
        "Metadata",
    ];
    Ok(Some(InOrder(
        ORDER
            .iter()
            .filter(|k| **k != "Variant" || variant.is_some())
            .map(|k| (*k, json[*k].clone()))
            .collect(),
    )))
}

/// A JSON object whose fields serialize in the given order (Docker's), where a
/// `serde_json` map would sort them.
pub struct InOrder(Vec<(&'static str, serde_json::Value)>);

impl serde::Serialize for InOrder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn registry_arg(server: Option<String>) -> anyhow::Result<String> {
    let server = server.unwrap_or_else(|| ccrun_image::reference::DOCKER_HUB.to_string());
    // Accept what people paste: URLs and Docker Hub's historical names.
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if host.is_empty() {
        bail!("invalid registry {server:?}");
    }
    Ok(match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => {
            ccrun_image::reference::DOCKER_HUB.to_string()
        }
        _ => host,
    })
}

fn config_path() -> anyhow::Result<std::path::PathBuf> {
    default_config_path().context("neither DOCKER_CONFIG nor HOME is set: cannot find config.json")
}

fn login(args: LoginArgs) -> anyhow::Result<i32> {
    let registry = registry_arg(args.server)?;
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = match (args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt("Password: ", true)?,
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password are required");
    }
    let creds = Credentials { username, password };
    RegistryClient::check_login(
        &registry,
        &ClientOptions {
            insecure_registries: crate::config::insecure_registries(&args.insecure.registries),
            credentials: Some(creds.clone()),
            mirrors: Vec::new(),
        },
    )
    .with_context(|| format!("logging in to {registry}"))?;
    let path = config_path()?;
    let mut config = DockerConfig::load(&path)?;
    config.set(&registry, &creds);
    config.save()?;
    println!("Login Succeeded");
    Ok(0)
}

fn logout(server: Option<String>) -> anyhow::Result<i32> {
    let registry = registry_arg(server)?;
    let path = config_path()?;
    let mut config = DockerConfig::load(&path)?;
    if config.remove(&registry) {
        config.save()?;
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}

/// Reads one line from the terminal, without echo for passwords.
fn prompt(label: &str, secret: bool) -> anyhow::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "cannot prompt for {}: standard input is not a terminal",
            label.trim_end_matches([':', ' '])
        );
    }
    eprint!("{label}");
    std::io::stderr().flush()?;
    let saved = if secret {
        let saved = tcgetattr(&stdin).context("reading terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning off echo")?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_fit_the_terminal() {
        for columns in [20, 39, 40, 59, 60, 61, 80, 200] {
            // The template with its widest values in place.
            let line = bar_template(columns)
                .replace("{prefix}", "0123456789ab")
                .replace("{msg:11}", "Downloading")
                .replace("{bytes}", "1023.99 MiB")
                .replace("{total_bytes}", "1023.99 MiB")
                .replace("{percent}", "100");
            let bar = line.find("{bar:").map(|i| {
                let len: usize = line[i + 5..]
                    .split('}')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("bar width");
                (line[i..].find('}').expect("end") + 1, len)
            });
            let width = line.chars().count() + bar.map_or(0, |(tag, len)| len - tag);
            assert!(
                width < columns.max(20),
                "{columns} columns: {width}: {line}"
            );
        }
        assert!(bar_template(80).contains("{bar:"));
        assert!(!bar_template(50).contains("{bar:"));
    }

    #[test]
    fn reference_globs_stay_within_path_elements() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:1", "busybox:1"));
        assert!(glob("test/*", "test/busybox"));
        assert!(!glob("*", "test/busybox"));
        assert!(!glob("busybox", "busybox2"));
        assert!(glob("b?sybox", "busybox"));
    }

    #[test]
    fn familiar_names() {
        assert_eq!(familiar("docker.io/library/alpine:latest"), "alpine:latest");
    }
}
