//! `ccrun build` and `ccrun builder prune`: the command line over [`ccrun_build`],
//! and the engine side of a build: base images through `ccrun pull` (in a child, as
//! `run` does), and each RUN step in a container on the runtime core with `run`'s
//! defaults (private user namespace with idmapped layers, Docker's capabilities and
//! seccomp profile).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_build::{Engine, Network, RunStep};
use ccrun_image::layer_writer::Owners;
use ccrun_image::snapshot::{MountOptions, Snapshot};
use ccrun_image::{Digest, Store};
use ccrun_runtime::{Container, CreateOptions};
use oci_spec::runtime::{Mount, MountBuilder};

use crate::cli::GlobalOpts;
use crate::containers::cleanup::ContainerUsage;
use crate::containers::ContainerStore;
use crate::etc_files::{self, EtcFiles};
use crate::security::{Flags as SecurityFlags, Security};
use crate::spec_builder::{self, NetworkMode, RunSpec, UsernsMode};

/// `ccrun build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag (NAME[:TAG]); may be repeated
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads it from stdin)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A build argument, KEY=VALUE (or KEY, taken from the environment)
    #[arg(long = "build-arg", value_name = "ARG")]
    pub build_arg: Vec<String>,
    /// The stage to build (default: the last)
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Do not use the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull base images even when they are stored
    #[arg(long)]
    pub pull: bool,
    /// Network of RUN steps: host or none
    #[arg(long, default_value = "host", value_name = "MODE")]
    pub network: String,
    /// Set a label on the image (KEY=VALUE)
    #[arg(long, value_name = "LABEL")]
    pub label: Vec<String>,
    /// Platform to build for (only this host's: ccrun does not emulate)
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image id to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// The build context: a directory, or `-` for a tar archive (or a Dockerfile) on stdin
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

/// `ccrun builder`.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache
    Prune(BuilderPruneArgs),
}

/// `ccrun builder prune`.
#[derive(Debug, clap::Args)]
pub struct BuilderPruneArgs {
    /// Accepted for Docker's sake: the whole cache is removed either way
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `ccrun builder …`.
pub fn builder(global: &GlobalOpts, cmd: BuilderCommand) -> Result<i32> {
    match cmd {
        BuilderCommand::Prune(args) => {
            if !args.force
                && !super::prune::confirm("WARNING! This will remove all build cache.\n")?
            {
                return Ok(0);
            }
            let bytes = prune_cache(global)?;
            println!(
                "Total reclaimed space: {}",
                crate::format::human_size(bytes)
            );
            Ok(0)
        }
    }
}

/// Removes the build cache and the layers only it kept; returns the bytes freed.
pub fn prune_cache(global: &GlobalOpts) -> Result<u64> {
    let root = global.store_root();
    let cache = ccrun_build::Cache::new(&root);
    cache.prune().context("removing the build cache")?;
    let store = Store::open(&root)?;
    let containers = ContainerStore::open(&root)?;
    let lock = store.lock()?;
    let stats = store.gc(&lock, &ContainerUsage(&containers))?;
    Ok(stats.bytes)
}

/// Runs `ccrun build`.
pub fn build(global: &GlobalOpts, args: BuildArgs) -> Result<i32> {
    let network: Network = args.network.parse()?;
    if network == Network::Bridge {
        bail!("--network bridge is not supported for builds: use host (the default) or none");
    }
    if let Some(p) = &args.platform {
        let wanted: ccrun_image::Platform = p.parse()?;
        let host = ccrun_image::Platform::host();
        if !host.matches(&wanted.os, &wanted.architecture, wanted.variant.as_deref()) {
            bail!("--platform {p}: ccrun builds only for this host ({host}), without emulation");
        }
    }
    for tag in &args.tags {
        ccrun_image::Reference::parse(tag).with_context(|| format!("invalid tag {tag:?}"))?;
    }
    let labels: BTreeMap<String, String> = super::parse_labels(&args.label)?;
    let mut build_args = BTreeMap::new();
    for a in &args.build_arg {
        match a.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<u64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v}: not a number of seconds"))?,
        ),
        _ => None,
    };
    crate::containers::launch::enter_private_mount_namespace()?;
    let root = global.store_root();
    // First, so that a new storage root gets its searchable modes.
    let _containers = ContainerStore::open(&root)?;
    let work = root.join("build").join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let mut stdin_dockerfile = None;
    let (context, _context_dir) = if args.context == "-" {
        let dir = tempfile::Builder::new()
            .prefix("context-")
            .tempdir_in(&work)
            .context("creating a context directory")?;
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .context("reading the context from stdin")?;
        if is_tar(&input) {
            unpack_context(&input, dir.path())?;
        } else {
            stdin_dockerfile =
                Some(String::from_utf8(input).context("the Dockerfile on stdin is not UTF-8")?);
        }
        (dir.path().to_path_buf(), Some(dir))
    } else {
        let dir = PathBuf::from(&args.context);
        let dir = dir
            .canonicalize()
            .with_context(|| format!("build context {}", args.context))?;
        if !dir.is_dir() {
            bail!("build context {} is not a directory", args.context);
        }
        (dir, None)
    };
    let (dockerfile_name, dockerfile) = match (&args.file, stdin_dockerfile) {
        (Some(f), _) if f.as_os_str() == "-" => {
            if args.context == "-" {
                bail!("the context and the Dockerfile cannot both come from stdin");
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            ("Dockerfile".to_string(), text)
        }
        (Some(f), _) => {
            let path = if f.is_absolute() || args.context == "-" {
                context.join(f.strip_prefix("/").unwrap_or(f))
            } else {
                f.clone()
            };
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the Dockerfile {}", path.display()))?;
            (f.display().to_string(), text)
        }
        (None, Some(text)) => ("Dockerfile".to_string(), text),
        (None, None) => {
            let path = context.join("Dockerfile");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the Dockerfile {}", path.display()))?;
            ("Dockerfile".to_string(), text)
        }
    };
    let opts = ccrun_build::Options {
        root: root.clone(),
        context,
        dockerfile_name,
        dockerfile,
        tags: args.tags.clone(),
        build_args,
        target: args.target.clone(),
        no_cache: args.no_cache,
        pull: args.pull,
        network,
        labels,
        source_date_epoch,
        quiet: args.quiet,
        terminal: std::io::stderr().is_terminal(),
    };
    // RUN steps use ccrun's shared private range (or, configured so and for rootless
    // ccrun, the caller's own user namespace): a build step is no container of the
    // store's, so it holds no range of its own.
    let shared = if crate::config::userns() == Some("host") || crate::rootless::active() {
        super::run::UsernsArg::Host
    } else {
        super::run::UsernsArg::Private
    };
    let (userns, _) = crate::rootless::userns_mode(shared)?;
    let mut engine = CcrunEngine {
        global,
        userns,
        quiet: args.quiet,
    };
    match ccrun_build::build(&mut engine, &opts) {
        Ok(built) => {
            let id = built.record.id.to_string();
            if let Some(f) = &args.iidfile {
                std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
            }
            println!("{id}");
            Ok(0)
        }
        Err(e @ ccrun_build::Error::RunFailed { code, .. }) => {
            // The RUN's own exit code, as podman does; ccrun's own failures are 125.
            eprintln!("ccrun: {e}");
            Ok(code)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `bytes` start like a tar archive (plain, gzip or zstd).
fn is_tar(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || bytes.get(257..262) == Some(b"ustar")
}

/// Unpacks a context archive: the tar crate's `unpack` refuses entries that would
/// land outside `dest` (`..`, absolute paths, through symlinks).
fn unpack_context(bytes: &[u8], dest: &Path) -> Result<()> {
    let reader: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(bytes).context("reading the context")?)
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive
        .unpack(dest)
        .context("unpacking the context from stdin")
}

/// The engine side of a build.
struct CcrunEngine<'a> {
    global: &'a GlobalOpts,
    userns: UsernsMode,
    quiet: bool,
}

impl Engine for CcrunEngine<'_> {
    fn image(&mut self, store: &Store, name: &str, pull: bool) -> ccrun_build::Result<Digest> {
        let find = || crate::config::find_image(name, |n| store.find(n));
        let found = if pull { None } else { find()? };
        if let Some(record) = found {
            return Ok(record.id);
        }
        super::run::pull_in_child(self.global, name, None, self.quiet)
            .map_err(|e| ccrun_build::Error::Engine(format!("{e:#}")))?;
        find()?.map(|r| r.id).ok_or_else(|| {
            ccrun_build::Error::Engine(format!("image {name} is missing after pulling it"))
        })
    }

    fn owners(&self) -> Owners {
        self.userns.owners()
    }

    fn run(&mut self, step: &RunStep<'_>) -> ccrun_build::Result<i32> {
        let snapshot = Snapshot::new(step.dir);
        let result = self.run_in(step, &snapshot);
        let _ = snapshot.unmount();
        result.map_err(|e| ccrun_build::Error::Engine(format!("{e:#}")))
    }
}

impl CcrunEngine<'_> {
    fn run_in(&self, step: &RunStep<'_>, snapshot: &Snapshot) -> Result<i32> {
        let root_owner = self.userns.root_owner();
        let userns_fd: Option<OwnedFd> = match &self.userns {
            UsernsMode::Private { .. } => {
                let (uids, gids) = spec_builder::build_id_mappings(&self.userns)?;
                Some(ccrun_runtime::userns::new_userns_fd(&uids, &gids)?)
            }
            UsernsMode::Host | UsernsMode::KeepId { .. } => None,
        };
        let rootfs = snapshot
            .mount(
                step.layers,
                MountOptions {
                    userns: userns_fd.as_ref().map(|fd| fd.as_fd()),
                    root_owner,
                    volatile: false,
                },
            )
            .context("mounting the build step's root filesystem")?;
        let identity = crate::user::resolve(step.user, &rootfs)?;
        let id = crate::containers::store::new_container_id()?;
        let hostname = id[..12].to_string();
        let host_network = step.network == Network::Host;
        let etc = step.dir.join("etc");
        std::fs::create_dir_all(&etc).with_context(|| format!("creating {}", etc.display()))?;
        let mut mounts = etc_files::write(
            &etc,
            &EtcFiles {
                hostname: &hostname,
                host_network,
                hosts: Vec::new(),
                dns: Vec::new(),
                dns_search: Vec::new(),
                dns_options: Vec::new(),
                owner: root_owner,
            },
        )?;
        for m in step.mounts {
            mounts.push(step_mount(m, &self.userns)?);
        }
        mounts.sort_by_key(|m| m.destination().components().count());
        let security = Security::from_flags(&SecurityFlags {
            shared_network: host_network,
            ..SecurityFlags::default()
        })?;
        let spec = spec_builder::build(&RunSpec {
            rootfs,
            readonly: false,
            args: step.argv.to_vec(),
            env: step.env.to_vec(),
            cwd: step.cwd.to_string(),
            user: identity,
            hostname,
            userns: self.userns.clone(),
            network: if host_network {
                NetworkMode::Host
            } else {
                NetworkMode::None
            },
            limits: Default::default(),
            mounts,
            terminal: false,
            idmap_rootfs: false,
            security,
            namespaces: Default::default(),
            domainname: None,
            annotations: Default::default(),
            cgroup_path: ccrun_runtime::default_cgroup_path(&format!("build-{id}")),
        })?;
        let devnull = std::fs::File::open("/dev/null").context("opening /dev/null")?;
        let out = step.output.as_raw_fd();
        let container = Container::create(CreateOptions {
            id: format!("build-{id}"),
            bundle: step.dir.to_path_buf(),
            spec,
            state_root: self.global.state_root(),
            minimal_init: false,
            no_pivot: false,
            stdio: Some([devnull.as_raw_fd(), out, out]),
            preserve_fds: 0,
        })?;
        drop(devnull);
        let mut container = container;
        let status = container.start().and_then(|()| container.wait());
        if status.is_err() {
            let _ = container.kill(nix::sys::signal::Signal::SIGKILL);
            let _ = container.wait();
        }
        let deleted = container.delete(true);
        let status = status?;
        deleted?;
        Ok(status.code())
    }
}

/// A RUN step's mount as a spec mount: a read-only bind (idmapped when it shows an
/// image's or the context's ids through a user namespace), a cache directory, or a
/// tmpfs.
fn step_mount(m: &ccrun_build::StepMount, userns: &UsernsMode) -> Result<Mount> {
    let mut b = MountBuilder::default().destination(&m.target);
    if m.tmpfs {
        b = b.typ("tmpfs").source("tmpfs").options(vec![
            "nosuid".into(),
            "nodev".into(),
            "mode=1777".into(),
        ]);
    } else {
        let mut options = vec!["rbind".to_string()];
        if m.readonly {
            options.push("ro".into());
        }
        if m.idmap && matches!(userns, UsernsMode::Private { .. }) {
            options.push("idmap".into());
        }
        b = b.typ("bind").source(&m.source).options(options);
    }
    Ok(b.build()?)
}
