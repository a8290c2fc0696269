//! Image subcommands: pull, images, rmi, login, logout, image inspect/ls/rm.
//! The work is done by `ccrun_image`; this module parses flags and prints.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use ccrun_image::auth::{default_config_path, Credentials, DockerConfig};
use ccrun_image::registry::{ClientOptions, RegistryClient};
use ccrun_image::store::{ImageRecord, Removal, Store};
use ccrun_image::{Digest, Platform, PullOptions, PullProgress, Reference};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::inspect::{InspectOpts, ObjectType};
use crate::cli::GlobalOpts;
use crate::containers::cleanup::ContainerUsage;
use crate::containers::ContainerStore;
use crate::format::{human_size, print_table, since};

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
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Output format: "table" or "json" (one object per line)
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Only show image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate image ids
    #[arg(long)]
    pub no_trunc: bool,
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
        ImageCommand::Login(args) => login(args),
        ImageCommand::Logout { server } => logout(server),
    }
}

fn open_store(global: &GlobalOpts) -> anyhow::Result<Store> {
    let root = global.store_root();
    Store::open(&root).with_context(|| format!("opening image store in {}", root.display()))
}

fn pull(global: &GlobalOpts, args: PullArgs) -> anyhow::Result<i32> {
    let reference = Reference::parse(&args.reference)?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse::<Platform>)
        .transpose()?;
    let store = open_store(global)?;
    let options = PullOptions {
        platform,
        insecure_registries: args.insecure.registries,
        jobs: args.jobs,
        sync_layers: args.sync_layers,
    };
    let before = store.find(&reference.to_string()).ok().flatten();
    let display = Display::new(args.quiet);
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
    display.finish();
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

/// Pull progress: bars on a terminal, plain lines otherwise, nothing when quiet.
struct Display {
    mode: Mode,
    layers: Mutex<Vec<(String, Option<ProgressBar>)>>,
}

enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
}

impl Display {
    fn new(quiet: bool) -> Display {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stdout()))
        } else {
            Mode::Lines
        };
        Display {
            mode,
            layers: Mutex::new(Vec::new()),
        }
    }

    fn with_layer(&self, index: usize, f: impl FnOnce(&str, Option<&ProgressBar>)) {
        // A poisoned lock only means another thread panicked mid-update; keep drawing.
        let layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((id, bar)) = layers.get(index) {
            f(id, bar.as_ref());
        }
    }

    fn finish(&self) {
        if let Mode::Bars(multi) = &self.mode {
            let _ = multi.clear();
        }
    }
}

impl PullProgress for Display {
    fn layer(&self, index: usize, digest: &Digest, size: u64, present: bool) {
        let id = digest.hex()[..12].to_string();
        let bar = match &self.mode {
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
                    let style = ProgressStyle::with_template(
                        "{prefix}: {msg:11} [{bar:30}] {bytes:>10}/{total_bytes:10}",
                    )
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                    bar.set_style(style);
                    bar.set_prefix(id.clone());
                    bar.set_message("Downloading");
                    bar.enable_steady_tick(Duration::from_millis(200));
                    Some(bar)
                }
            }
        };
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        if layers.len() <= index {
            layers.resize(index + 1, (String::new(), None));
        }
        layers[index] = (id, bar);
    }

    fn advance(&self, index: usize, bytes: u64) {
        self.with_layer(index, |_, bar| {
            if let Some(bar) = bar {
                bar.inc(bytes);
            }
        });
    }

    fn layer_done(&self, index: usize) {
        self.with_layer(index, |id, bar| match (&self.mode, bar) {
            (_, Some(bar)) => {
                bar.set_message("Pull complete");
                bar.finish();
            }
            (Mode::Lines, None) => println!("{id}: Pull complete"),
            _ => {}
        });
    }

    fn warn(&self, message: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                let _ = multi.println(format!("warning: {message}"));
            }
            _ => eprintln!("warning: {message}"),
        }
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

fn images(global: &GlobalOpts, args: ImagesArgs) -> anyhow::Result<i32> {
    let store = open_store(global)?;
    let records = store.list()?;
    let rows = rows(&records);
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
    match args.format.as_str() {
        "json" => {
            for row in &rows {
                let r = row.record;
                let line = serde_json::json!({
                    "Repository": row.repository,
                    "Tag": row.tag,
                    "Digest": row.digest,
                    "ID": id(r),
                    "CreatedAt": r.created.clone().unwrap_or_default(),
                    "CreatedSince": r.created.as_deref().map(since).unwrap_or_default(),
                    "Size": human_size(r.size),
                    "VirtualSize": r.size,
                    "Platform": r.platform,
                });
                writeln!(out, "{line}")?;
            }
        }
        "table" => {
            let mut table = vec![{
                let mut h = vec!["REPOSITORY", "TAG"];
                if args.digests {
                    h.push("DIGEST");
                }
                h.extend(["IMAGE ID", "CREATED", "SIZE"]);
                h.into_iter().map(str::to_string).collect::<Vec<_>>()
            }];
            for row in &rows {
                let r = row.record;
                let mut cells = vec![row.repository.clone(), row.tag.clone()];
                if args.digests {
                    cells.push(row.digest.clone());
                }
                cells.extend([
                    id(r),
                    r.created
                        .as_deref()
                        .map(since)
                        .unwrap_or_else(|| "N/A".to_string()),
                    human_size(r.size),
                ]);
                table.push(cells);
            }
            print_table(&mut out, &table)?;
        }
        other => bail!("unknown --format {other:?}: use table or json"),
    }
    Ok(0)
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

/// What `inspect` shows of image `name`: its record, manifest and config; `None`
/// when the store has no such image.
pub fn image_json(store: &Store, name: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(image) = store.resolve(name)? else {
        return Ok(None);
    };
    Ok(Some(serde_json::json!({
        "Id": image.record.id,
        "RepoTags": image.record.names.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
        "RepoDigests": image.record.repo_digests.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
        "Created": image.record.created,
        "Platform": image.record.platform,
        "Size": image.record.size,
        "ManifestDigest": image.record.manifest_digest,
        "IndexDigest": image.record.index_digest,
        "Layers": image.record.layers,
        "LayerDirs": image.layer_dirs,
        "Manifest": image.manifest,
        "Config": image.config,
    })))
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
            insecure_registries: args.insecure.registries,
            credentials: Some(creds.clone()),
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
    fn familiar_names() {
        assert_eq!(familiar("docker.io/library/alpine:latest"), "alpine:latest");
    }
}
