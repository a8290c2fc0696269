//! `ccrun commit CONTAINER [REPOSITORY[:TAG]]` and `ccrun import FILE|URL|-
//! [REPOSITORY[:TAG]]`: new images from a container's changes or a filesystem
//! tarball (the work is [`ccrun_image::import`]).

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ccrun_image::import::{Container, Options};
use ccrun_image::layer_writer::WriteOptions;
use ccrun_image::{Reference, Snapshot};
use serde_json::{json, Map, Value};

use super::image::open_store;
use crate::cli::GlobalOpts;
use crate::containers::details::ContainerDetails;
use crate::containers::files::{self, ENGINE_PATHS};
use crate::containers::{ContainerStore, Record, RootfsSource, Status};

/// Flags of `commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// A Dockerfile instruction to apply to the image's config (CMD, ENTRYPOINT,
    /// ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL); repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message (the history entry's comment)
    #[arg(short, long)]
    pub message: Option<String>,
    /// Freeze the container's processes while its files are read
    #[arg(
        short,
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub pause: bool,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// Flags of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A Dockerfile instruction to apply to the image's config; repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Commit message (the history entry's comment)
    #[arg(short, long)]
    pub message: Option<String>,
    /// A tarball (plain, gzip or zstd): a file, `-` for standard input, or an
    /// http(s) URL
    #[arg(value_name = "FILE|URL|-")]
    pub source: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

fn options(
    changes: Vec<String>,
    message: Option<String>,
    author: Option<String>,
    repository: Option<&str>,
) -> Result<Options> {
    Ok(Options {
        changes,
        message,
        author,
        name: repository.map(Reference::parse).transpose()?,
    })
}

/// Runs `commit`.
pub fn commit(global: &GlobalOpts, args: CommitArgs) -> Result<i32> {
    let containers = ContainerStore::open(&global.store_root())?;
    let record = containers.find(&args.container)?;
    if !matches!(record.rootfs, RootfsSource::Image { .. }) {
        bail!(
            "container {} runs on a --rootfs directory: it has no image to commit onto",
            record.name
        );
    }
    let parent = record
        .image_id
        .as_deref()
        .map(ccrun_image::Digest::parse)
        .transpose()?
        .with_context(|| format!("container {} has no image id", record.name))?;
    let options = options(
        args.changes,
        args.message,
        args.author,
        args.repository.as_deref(),
    )?;
    // Checked before anything is frozen.
    let mut probe = json!({});
    ccrun_image::changes::apply(&mut probe, &options.changes)?;

    let store = open_store(global)?;
    let parent_config = store
        .read_blob(&parent)?
        .with_context(|| format!("the image of container {} is gone", record.name))?;
    let dir = containers.dir_of(&record.id);
    let upper = Snapshot::new(&dir).upper();
    // A container never started has no upper directory yet: nothing changed.
    let empty = tempfile::tempdir().context("creating an empty directory")?;
    let upper = if upper.is_dir() {
        upper
    } else {
        empty.path().to_path_buf()
    };
    let owners = files::id_map(&containers, &record)?.owners();
    let container = Container {
        parent: &parent,
        upper: &upper,
        write: WriteOptions {
            owners,
            clamp_mtime: None,
        },
        exclude: ENGINE_PATHS
            .iter()
            .map(|p| PathBuf::from(p.trim_start_matches('/')))
            .collect(),
        run: run_config(&containers, &record, &parent_config)?,
        created_by: shell_words(&record.command),
    };

    let lock = store.lock()?;
    let frozen = args.pause && record.status == Status::Running && !record.paused;
    if frozen {
        crate::containers::pause::pause(global, &containers, &record)
            .with_context(|| format!("pausing {} for the commit", record.name))?;
    }
    let committed = ccrun_image::import::commit(&store, &lock, &container, &options);
    if frozen {
        let thawed = containers
            .get(&record.id)?
            .map(|r| crate::containers::pause::unpause(global, &containers, &r))
            .transpose();
        if let Err(e) = thawed {
            eprintln!(
                "warning: unpausing {}: {}",
                record.name,
                crate::exit::one_line(&e)
            );
        }
    }
    drop(lock);
    let image = committed.with_context(|| format!("committing {}", record.name))?;
    crate::events::container(
        &global.store_root(),
        "commit",
        &record,
        &[("comment", options.message.clone().unwrap_or_default())],
    );
    println!("{}", image.id);
    Ok(0)
}

/// The container's settings that go into the new image's config, as Docker's
/// commit takes them from the container: its environment (less what the engine
/// adds on its own), command, entrypoint, working directory, labels, ports and
/// volumes. The user stays the image's (ccrun records only the numeric ids a `-u`
/// resolved to).
fn run_config(
    store: &ContainerStore,
    record: &Record,
    parent_config: &[u8],
) -> Result<Map<String, Value>> {
    let details = ContainerDetails::build(store, record, false)?;
    let config = details.config;
    let parent: Value = serde_json::from_slice(parent_config).context("the image's config")?;
    let parent_env: Vec<&str> = parent["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let in_parent = |name: &str| {
        parent_env
            .iter()
            .any(|e| e.split_once('=').map_or(*e, |(k, _)| k) == name)
    };
    let env: Vec<String> = config
        .env
        .into_iter()
        .filter(|e| {
            let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            name != "HOSTNAME" && (!matches!(name, "HOME" | "TERM") || in_parent(name))
        })
        .collect();
    let mut run = Map::new();
    run.insert("Env".into(), json!(env));
    run.insert(
        "Cmd".into(),
        if config.cmd.is_empty() {
            Value::Null
        } else {
            json!(config.cmd)
        },
    );
    run.insert("Entrypoint".into(), json!(config.entrypoint));
    if !config.working_dir.is_empty() {
        run.insert("WorkingDir".into(), json!(config.working_dir));
    }
    if !config.labels.is_empty() {
        run.insert("Labels".into(), json!(config.labels));
    }
    if let Some(ports) = config.exposed_ports {
        run.insert("ExposedPorts".into(), json!(ports));
    }
    if let Some(volumes) = config.volumes {
        run.insert("Volumes".into(), json!(volumes));
    }
    if let Some(signal) = config.stop_signal {
        run.insert("StopSignal".into(), json!(signal));
    }
    Ok(run)
}

/// A command line as a shell would read it back: words with spaces or quotes
/// single-quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `import`.
pub fn import(global: &GlobalOpts, args: ImportArgs) -> Result<i32> {
    let options = options(args.changes, args.message, None, args.repository.as_deref())?;
    let mut probe = json!({});
    ccrun_image::changes::apply(&mut probe, &options.changes)?;
    let store = open_store(global)?;
    let source = args.source.as_str();
    let input: Box<dyn Read> = if source == "-" {
        if std::io::stdin().is_terminal() {
            bail!(
                "cowardly refusing to read an archive from a terminal; pipe one in or name a file"
            );
        }
        Box::new(std::io::stdin().lock())
    } else if source.starts_with("http://") || source.starts_with("https://") {
        Box::new(ccrun_image::import::fetch(source)?)
    } else {
        Box::new(std::fs::File::open(source).with_context(|| format!("opening {source}"))?)
    };
    let image = ccrun_image::import::import(&store, input, source, &options)
        .with_context(|| format!("importing {source}"))?;
    crate::events::object(
        &global.store_root(),
        "image",
        "import",
        &image.id.to_string(),
        source,
    );
    println!("{}", image.id);
    Ok(0)
}
