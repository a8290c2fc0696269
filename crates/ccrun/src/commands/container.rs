//! Container subcommands that work on records: `ps` and `rm`, and the
//! `ccrun container …` group.

use std::io::Write;

use anyhow::{Context, Result};

use super::inspect::{InspectOpts, ObjectType};
use super::lifecycle::{self, KillArgs, StartArgs, StopArgs, WaitArgs};
use super::prune::ContainerPruneArgs;
use super::top::TopArgs;
use crate::cli::GlobalOpts;
use crate::containers::filter::{self, Filters, Resolved};
use crate::containers::{cleanup, ContainerStore, Record, Status};
use crate::format::{
    docker_time, human_duration, human_size, now_secs, parse_rfc3339, since, string_row, Listing,
};

/// `ccrun container …`.
#[derive(Debug, clap::Subcommand)]
pub enum ContainerSubcommand {
    /// Display detailed information on one or more containers
    Inspect(InspectOpts),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
    /// Run a command in a new container
    Run(Box<super::run::RunArgs>),
    /// Create a container without starting it
    Create(Box<super::run::RunArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Send a signal to one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(WaitArgs),
    /// Fetch the logs of a container
    Logs(super::logs::LogsArgs),
    /// Run a command in a running container
    Exec(Box<super::exec::ExecArgs>),
    /// Attach ccrun's stdin, stdout and stderr to a running container
    Attach(super::attach::AttachArgs),
    /// Copy files between a container and the host (or a tar stream)
    Cp(super::cp::CpArgs),
    /// Show the changes to a container's filesystem since it was created
    Diff(super::diff::DiffArgs),
    /// Write a container's filesystem as a tar archive
    Export(super::export::ExportArgs),
    /// Make a new image from a container's changes
    Commit(super::commit::CommitArgs),
    /// Display a live stream of containers' resource usage
    Stats(super::stats::StatsArgs),
    /// Pause all processes within one or more containers
    Pause(super::pause::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(super::pause::PauseArgs),
    /// Rename a container
    Rename(super::rename::RenameArgs),
    /// Update the resources and restart policy of one or more containers
    Update(super::update::UpdateArgs),
    /// List a container's published ports
    Port(super::network::PortArgs),
}

/// Runs a `container` subcommand.
pub fn run(global: &GlobalOpts, cmd: ContainerSubcommand) -> Result<i32> {
    match cmd {
        ContainerSubcommand::Inspect(opts) => {
            super::inspect::inspect(global, Some(ObjectType::Container), &opts)
        }
        ContainerSubcommand::Ls(args) => ps(global, args),
        ContainerSubcommand::Rm(args) => rm(global, args),
        ContainerSubcommand::Top(args) => super::top::top(global, args),
        ContainerSubcommand::Prune(args) => super::prune::container_prune(global, args),
        ContainerSubcommand::Run(args) => super::run::run(global, *args),
        ContainerSubcommand::Create(args) => super::run::create(global, *args),
        ContainerSubcommand::Start(args) => lifecycle::start(global, args),
        ContainerSubcommand::Stop(args) => lifecycle::stop(global, args),
        ContainerSubcommand::Kill(args) => lifecycle::kill(global, args),
        ContainerSubcommand::Restart(args) => lifecycle::restart(global, args),
        ContainerSubcommand::Wait(args) => lifecycle::wait(global, args),
        ContainerSubcommand::Logs(args) => super::logs::logs(global, args),
        ContainerSubcommand::Exec(args) => super::exec::exec(global, *args),
        ContainerSubcommand::Attach(args) => super::attach::attach(global, args),
        ContainerSubcommand::Cp(args) => super::cp::cp(global, args),
        ContainerSubcommand::Diff(args) => super::diff::diff(global, args),
        ContainerSubcommand::Export(args) => super::export::export(global, args),
        ContainerSubcommand::Commit(args) => super::commit::commit(global, args),
        ContainerSubcommand::Stats(args) => super::stats::stats(global, args),
        ContainerSubcommand::Pause(args) => super::pause::pause(global, args),
        ContainerSubcommand::Unpause(args) => super::pause::unpause(global, args),
        ContainerSubcommand::Rename(args) => super::rename::rename(global, args),
        ContainerSubcommand::Update(args) => super::update::update(global, args),
        ContainerSubcommand::Port(args) => super::network::port(global, args),
    }
}

/// Flags of `ps`.
#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Only display container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output (status=, name=, id=, label=, ancestor=, exited=, publish=, expose=,
    /// network=, volume=, before=, since=, health=); repeatable
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Show the N last created containers (all states)
    #[arg(
        short = 'n',
        long = "last",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub last: Option<i64>,
    /// Show the latest created container (all states)
    #[arg(short, long)]
    pub latest: bool,
    /// Output format: "table", "json" (one object per line, as '{{json .}}'), a Go
    /// template such as '{{.Names}} {{.Label "app"}}', or "table TEMPLATE" for columns
    /// with headers
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Flags of `rm`.
#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Kill and remove a running container
    #[arg(short, long)]
    pub force: bool,
    /// Remove the anonymous volumes of the container too (named volumes are kept)
    #[arg(short, long)]
    pub volumes: bool,
    /// Containers (name, id or unique id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Docker's STATUS column.
pub fn status_text(r: &Record) -> String {
    let ago = |t: &Option<String>| {
        t.as_deref()
            .and_then(parse_rfc3339)
            .map(|s| human_duration(now_secs() - s))
    };
    match r.status {
        Status::Created => "Created".to_string(),
        Status::Running => format!(
            "Up {}{}",
            ago(&r.started_at).unwrap_or_else(|| "for a while".into()),
            if r.paused {
                " (Paused)".to_string()
            } else {
                crate::containers::health::status_suffix(r)
            }
        ),
        Status::Exited => {
            let code = r
                .exit_code
                .map_or_else(|| "unknown".to_string(), |c| c.to_string());
            match ago(&r.finished_at) {
                Some(t) => format!("Exited ({code}) {t} ago"),
                None => format!("Exited ({code})"),
            }
        }
        Status::Dead => "Dead".to_string(),
    }
}

/// Docker's COMMAND column: quoted, cut at 20 characters unless `no_trunc`.
pub fn command_text(r: &Record, no_trunc: bool) -> String {
    let full = r.command.join(" ");
    if no_trunc || full.chars().count() <= 20 {
        format!("\"{full}\"")
    } else {
        let cut: String = full.chars().take(19).collect();
        format!("\"{cut}…\"")
    }
}

/// The fields `ps --format` templates can use, with the column header of each.
const TEMPLATE_FIELDS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// Docker's default `ps` columns.
const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// One container as `ps --format` templates see it (every value a string, as in
/// Docker); `--format json` prints exactly this, as `{{json .}}` does.
fn template_row(r: &Record, id: String, no_trunc: bool) -> serde_json::Value {
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // Docker's MOUNTS: volume names and bind sources.
    let mounts: Vec<&str> = r
        .volume_mounts
        .iter()
        .map(|m| m.name.as_str())
        .chain(
            r.binds
                .iter()
                .filter_map(|b| b.split(':').next())
                .filter(|src| src.starts_with('/')),
        )
        .collect();
    let values = [
        id,
        r.image.clone(),
        command_text(r, no_trunc),
        docker_time(&r.created),
        since(&r.created),
        super::network::ports_text(r),
        r.state_name().to_string(),
        status_text(r),
        // Sizes are only computed by `inspect --size`; Docker shows 0B without --size.
        human_size(0),
        r.name.clone(),
        labels.join(","),
        mounts.join(","),
        filter::network_name(r),
        r.volume_mounts.len().to_string(),
    ];
    string_row(
        TEMPLATE_FIELDS
            .iter()
            .zip(values)
            .map(|((field, _), value)| (*field, value)),
    )
}

/// Resolves what `ps --filter` values name outside the records: images for
/// `ancestor=`, containers for `before=`/`since=`, networks for `network=`.
fn resolve_filters(
    global: &GlobalOpts,
    filters: &Filters,
    store: &ContainerStore,
) -> Result<Resolved> {
    let root = global.store_root();
    let mut resolved = Resolved::default();
    if !filters.ancestors().is_empty() {
        let images = ccrun_image::Store::open(&root).context("opening image store")?;
        resolved.ancestor_ids = filters
            .ancestors()
            .iter()
            .filter_map(|a| images.find(a).ok().flatten())
            .map(|image| image.id.to_string())
            .collect();
    }
    let created_of = |key: &str| -> Result<Option<String>> {
        filters
            .values(key)
            .first()
            .map(|name| {
                store
                    .find(name)
                    .map(|r| r.created)
                    .with_context(|| format!("filter {key}={name}"))
            })
            .transpose()
    };
    resolved.before = created_of("before")?;
    resolved.since = created_of("since")?;
    if filters.has("network") {
        let networks = crate::networks::NetworkStore::open(&root)?;
        resolved.networks = filters
            .values("network")
            .iter()
            .map(|n| networks.find(n).map_or_else(|_| n.clone(), |net| net.name))
            .collect();
    }
    Ok(resolved)
}

/// Runs `ps`.
pub fn ps(global: &GlobalOpts, args: PsArgs) -> Result<i32> {
    let filters = Filters::parse(&args.filter)?;
    let limit = if args.latest {
        Some(1)
    } else {
        args.last.filter(|&n| n >= 0)
    };
    // As in Docker, a status filter or -n/-l looks at containers in every state.
    let all = args.all || filters.has("status") || limit.is_some();
    let store = ContainerStore::open(&global.store_root())?;
    let resolved = resolve_filters(global, &filters, &store)?;
    let mut records: Vec<Record> = store
        .list()?
        .into_iter()
        .filter(|r| all || r.status == Status::Running)
        .filter(|r| filters.matches(r, &resolved))
        .collect();
    if let Some(n) = limit {
        records.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let mut out = std::io::stdout().lock();
    let id = |r: &Record| {
        if args.no_trunc {
            r.id.clone()
        } else {
            r.short_id().to_string()
        }
    };
    if args.quiet {
        for r in &records {
            writeln!(out, "{}", id(r))?;
        }
        return Ok(0);
    }
    let listing = Listing {
        default_table: DEFAULT_TABLE,
        headers: TEMPLATE_FIELDS,
        rows: records
            .iter()
            .map(|r| template_row(r, id(r), args.no_trunc))
            .collect(),
    };
    // `{{.Label "KEY"}}`: one label's value, empty when unset (Docker's method).
    let label = |i: usize, name: &str, args: &[serde_json::Value]| match (name, args) {
        ("Label", [serde_json::Value::String(key)]) => Some(Ok(serde_json::Value::String(
            records[i].labels.get(key).cloned().unwrap_or_default(),
        ))),
        _ => None,
    };
    listing.print_with(&mut out, &args.format, &label)?;
    Ok(0)
}

/// Runs `rm`.
pub fn rm(global: &GlobalOpts, args: RmArgs) -> Result<i32> {
    let store = ContainerStore::open(&global.store_root())?;
    super::for_each_named("remove", &args.containers, |name| {
        let r = match store.find(name) {
            // `rm -f` of a container that is not there is no error, as in Docker.
            Err(e) if args.force && e.is::<crate::containers::store::NoSuchContainer>() => {
                return Ok(())
            }
            found => found?,
        };
        cleanup::remove(&store, &global.state_root(), &r, args.force)?;
        if args.volumes {
            crate::volumes::remove_anonymous(&global.store_root(), &r)?;
        }
        println!("{name}");
        Ok(())
    })?;
    Ok(0)
}
