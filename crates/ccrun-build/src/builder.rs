//! Carrying out a parsed Dockerfile: stages, instructions, the cache, and the image.
//!
//! Stages are built one after the other, in Dockerfile order, and only those the
//! target needs (through `FROM stage`, `COPY --from` and `RUN --mount from=`). The
//! builds are sequential on purpose: a RUN step creates a container, and containers
//! are created from a single-threaded process.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ccrun_image::layer_writer::{write_layer, Owners, WriteOptions};
use ccrun_image::local::{self, LocalImage, LocalLayer};
use ccrun_image::snapshot::{MountOptions, Snapshot};
use ccrun_image::{Digest, ImageRecord, Store};

use crate::cache::{self, Cache, CachedLayer, KeyBuilder};
use crate::config::{self, Empty, Healthcheck, History, ImageConfig};
use crate::dockerfile::{self, CommandForm, Dockerfile, Instruction};
use crate::error::{Error, IoContext, Result};
use crate::files::{self, LayerFiles, Meta, Source};
use crate::ignore::Ignore;
use crate::shell;

/// The network of RUN steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// ccrun's default bridge network.
    Bridge,
}

impl std::str::FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Network> {
        match s {
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            "bridge" | "default" => Ok(Network::Bridge),
            other => Err(Error::Context {
                message: format!("unsupported network {other:?}: use none, host or bridge"),
            }),
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct Options {
    /// The storage root (`--root`): the image store and `build/` live below it.
    pub root: PathBuf,
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile's name in messages.
    pub dockerfile_name: String,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// `-t` names.
    pub tags: Vec<String>,
    /// `--build-arg` values (`None`: take it from the environment).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: fetch base images even when stored.
    pub pull: bool,
    /// The network of RUN steps that do not say.
    pub network: Network,
    /// `--label` values for the final image.
    pub labels: BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH`: every time in the image is this or earlier.
    pub source_date_epoch: Option<u64>,
    /// `-q`: no progress, no RUN output (shown only if the step fails).
    pub quiet: bool,
    /// Progress has a terminal (timings are shown).
    pub terminal: bool,
}

/// A mount of a RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMount {
    /// Host directory or file.
    pub source: PathBuf,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// The source holds the container's ids (an image or the context), so it must be
    /// mounted idmapped in a user namespace; a cache directory holds host ids already.
    pub idmap: bool,
    /// A tmpfs rather than a bind mount.
    pub tmpfs: bool,
}

/// One RUN step for the engine to run.
#[derive(Debug)]
pub struct RunStep<'a> {
    /// The image's layer directories, lowest first.
    pub layers: &'a [PathBuf],
    /// The snapshot directory: the engine mounts the overlay with `upper/` here, and
    /// the builder takes `upper/` as the step's layer afterwards.
    pub dir: &'a Path,
    /// The process.
    pub argv: &'a [String],
    /// Its environment.
    pub env: &'a [String],
    /// Its working directory.
    pub cwd: &'a str,
    /// Its user (`name`, `uid`, `uid:gid`, … as `USER` says; empty for root).
    pub user: &'a str,
    /// Its network.
    pub network: Network,
    /// Cache, bind and tmpfs mounts.
    pub mounts: &'a [StepMount],
    /// Where its stdout and stderr go.
    pub output: BorrowedFd<'a>,
}

/// What the container engine provides to the builder.
pub trait Engine {
    /// Makes sure the image `name` is in `store` (pulling it when missing, or always
    /// with `pull`) and returns its id.
    fn image(&mut self, store: &Store, name: &str, pull: bool) -> Result<Digest>;
    /// How the files a RUN step writes are owned on disk (its user namespace).
    fn owners(&self) -> Owners;
    /// Runs a RUN step to its end; returns its exit code. The snapshot must be
    /// unmounted when it returns.
    fn run(&mut self, step: &RunStep<'_>) -> Result<i32>;
}

/// The built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// Its record in the store.
    pub record: ImageRecord,
}

/// A stage being built.
#[derive(Debug, Clone)]
struct Stage {
    config: ImageConfig,
    layers: Vec<LocalLayer>,
    key: String,
    /// ARGs in scope and their values (`None`: declared, no value).
    args: BTreeMap<String, Option<String>>,
    /// CMD came from the base image (an ENTRYPOINT resets it, as in Docker).
    cmd_inherited: bool,
    created: String,
}

struct StageDef<'d> {
    name: Option<String>,
    from: &'d Instruction,
    body: &'d [Instruction],
}

/// Builds the image `opts` describes and records it in the store.
pub fn build(engine: &mut dyn Engine, opts: &Options) -> Result<Built> {
    let df = dockerfile::parse(&opts.dockerfile_name, &opts.dockerfile)?;
    let mut b = Builder::new(engine, opts, &df)?;
    b.run()
}

/// The predefined platform ARGs, for the host (the only platform built for).
fn platform_args() -> BTreeMap<String, Option<String>> {
    let p = ccrun_image::Platform::host();
    let mut out = BTreeMap::new();
    for prefix in ["TARGET", "BUILD"] {
        out.insert(format!("{prefix}PLATFORM"), Some(p.to_string()));
        out.insert(format!("{prefix}OS"), Some(p.os.clone()));
        out.insert(format!("{prefix}ARCH"), Some(p.architecture.clone()));
        out.insert(
            format!("{prefix}VARIANT"),
            Some(p.variant.clone().unwrap_or_default()),
        );
    }
    out
}

struct Builder<'a> {
    engine: &'a mut dyn Engine,
    opts: &'a Options,
    df: &'a Dockerfile,
    store: Store,
    cache: Cache,
    work: PathBuf,
    ignore: Ignore,
    global_args: BTreeMap<String, Option<String>>,
    used_args: BTreeSet<String>,
    stages: Vec<StageDef<'a>>,
    built: BTreeMap<usize, Stage>,
    clamp: Option<u64>,
}

/// An overlay view of some layers (read-only use), unmounted and removed on drop.
struct View {
    snapshot: Snapshot,
    _dir: tempfile::TempDir,
}

impl View {
    fn root(&self) -> PathBuf {
        self.snapshot.merged()
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = self.snapshot.unmount();
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<'a> Builder<'a> {
    fn new(
        engine: &'a mut dyn Engine,
        opts: &'a Options,
        df: &'a Dockerfile,
    ) -> Result<Builder<'a>> {
        if let Some(s) = &df.syntax {
            if !opts.quiet {
                eprintln!("note: # syntax={s} ignored: ccrun has its own Dockerfile frontend");
            }
        }
        let store = Store::open(&opts.root)?;
        let work = opts.root.join("build").join("work");
        std::fs::create_dir_all(&work).ctx("creating", &work)?;
        let ignore = match std::fs::read_to_string(opts.context.join(".dockerignore")) {
            Ok(text) => Ignore::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(e).ctx("reading", opts.context.join(".dockerignore")),
        };
        // Global ARGs come before the first FROM; stages start at each FROM.
        let mut global_args = platform_args();
        let mut i = 0;
        let ins = &df.instructions;
        while i < ins.len() && ins[i].keyword != "FROM" {
            if ins[i].keyword != "ARG" {
                return Err(step_err(
                    df,
                    &ins[i],
                    "only ARG may come before the first FROM".into(),
                ));
            }
            i += 1;
        }
        let mut builder = Builder {
            engine,
            opts,
            df,
            store,
            cache: Cache::new(&opts.root),
            work,
            ignore,
            global_args: BTreeMap::new(),
            used_args: BTreeSet::new(),
            stages: Vec::new(),
            built: BTreeMap::new(),
            clamp: opts.source_date_epoch,
        };
        for arg in &ins[..i] {
            let lookup = |n: &str| global_args.get(n).cloned().flatten();
            let declared = builder.parse_arg(arg, &lookup)?;
            for (name, default) in declared {
                let value = builder.arg_value(&name, default);
                global_args.insert(name, value);
            }
        }
        builder.global_args = global_args;
        while i < ins.len() {
            let from = &ins[i];
            let mut j = i + 1;
            while j < ins.len() && ins[j].keyword != "FROM" {
                j += 1;
            }
            let words = shell::split_raw(&from.args, df.escape);
            let name = match words.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
                _ => {
                    return Err(step_err(
                        df,
                        from,
                        "expected FROM [--platform=P] IMAGE [AS NAME]".into(),
                    ))
                }
            };
            builder.stages.push(StageDef {
                name,
                from,
                body: &ins[i + 1..j],
            });
            i = j;
        }
        if builder.stages.is_empty() {
            return Err(Error::Syntax {
                file: df.file.clone(),
                line: 1,
                column: 1,
                message: "no FROM instruction".into(),
            });
        }
        Ok(builder)
    }

    /// A build arg's value: `--build-arg`, else the default.
    fn arg_value(&mut self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(v) = self.opts.build_args.get(name) {
            self.used_args.insert(name.to_string());
            return Some(v.clone());
        }
        default
    }

    /// `ARG a[=default] b …` → names and expanded defaults.
    fn parse_arg(
        &self,
        ins: &Instruction,
        vars: &dyn shell::Vars,
    ) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        for w in shell::split_raw(&ins.args, self.df.escape) {
            match w.split_once('=') {
                Some((k, v)) => {
                    let v = shell::word(v, self.df.escape, vars)
                        .map_err(|e| step_err(self.df, ins, e))?;
                    out.push((k.to_string(), Some(v)));
                }
                None => out.push((w, None)),
            }
        }
        Ok(out)
    }

    fn stage_index(&self, reference: &str, before: usize) -> Option<usize> {
        let lower = reference.to_ascii_lowercase();
        if let Ok(n) = reference.parse::<usize>() {
            return (n < before).then_some(n);
        }
        self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    /// Stages `target` needs, itself included.
    fn needed(&self, target: usize) -> Result<BTreeSet<usize>> {
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if !need.insert(s) {
                continue;
            }
            let def = &self.stages[s];
            let global = |n: &str| self.global_args.get(n).cloned().flatten();
            let base = shell::split_raw(&def.from.args, self.df.escape)
                .first()
                .map(|w| shell::word(w, self.df.escape, &global))
                .transpose()
                .map_err(|e| step_err(self.df, def.from, e))?
                .unwrap_or_default();
            if let Some(i) = self.stage_index(&base, s) {
                todo.push(i);
            }
            for ins in def.body {
                let mut refs: Vec<String> = Vec::new();
                if let Some(v) = ins.flag("from").and_then(|f| f.value.clone()) {
                    refs.push(v);
                }
                for f in ins.flags.iter().filter(|f| f.name == "mount") {
                    for part in f.value.as_deref().unwrap_or("").split(',') {
                        if let Some(v) = part.strip_prefix("from=") {
                            refs.push(v.to_string());
                        }
                    }
                }
                for r in refs {
                    if let Some(i) = self.stage_index(&r, s) {
                        todo.push(i);
                    }
                }
            }
        }
        Ok(need)
    }

    fn run(&mut self) -> Result<Built> {
        let target = match &self.opts.target {
            Some(t) => self
                .stage_index(t, self.stages.len())
                .ok_or_else(|| Error::Context {
                    message: format!("target stage {t:?} could not be found"),
                })?,
            None => self.stages.len() - 1,
        };
        let needed = self.needed(target)?;
        for s in needed.iter().copied() {
            let stage = self.build_stage(s)?;
            self.built.insert(s, stage);
        }
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k))
            .collect();
        if !unused.is_empty() && !self.opts.quiet {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "[Warning] One or more build-args [{}] were not consumed",
                names.join(" ")
            );
        }
        let stage = self.built.remove(&target).ok_or_else(|| Error::Context {
            message: "the target stage was not built".into(),
        })?;
        self.finish(stage)
    }

    fn say(&self, line: &str) {
        if !self.opts.quiet {
            eprintln!("{line}");
        }
    }

    fn build_stage(&mut self, index: usize) -> Result<Stage> {
        let def_from = self.stages[index].from;
        let body = self.stages[index].body;
        let label = match (&self.stages[index].name, self.stages.len()) {
            (_, 1) => String::new(),
            (Some(n), _) => format!("{n} "),
            (None, _) => format!("stage-{index} "),
        };
        let total = body.len() + 1;
        let mut stage = self.from(def_from, index, &format!("[{label}1/{total}]"))?;
        let mut step = 1;
        for ins in body {
            step += 1;
            let tag = format!("[{label}{step}/{total}]");
            self.instruction(&mut stage, ins, &tag, index)?;
        }
        Ok(stage)
    }

    fn from(&mut self, ins: &Instruction, index: usize, tag: &str) -> Result<Stage> {
        let global = self.global_args.clone();
        let lookup = |n: &str| global.get(n).cloned().flatten();
        if let Some(p) = ins.flag("platform").and_then(|f| f.value.clone()) {
            let p =
                shell::word(&p, self.df.escape, &lookup).map_err(|e| step_err(self.df, ins, e))?;
            self.check_platform(&p)
                .map_err(|m| step_err(self.df, ins, m))?;
        }
        let raw = shell::split_raw(&ins.args, self.df.escape);
        let image = shell::word(
            raw.first().map(String::as_str).unwrap_or(""),
            self.df.escape,
            &lookup,
        )
        .map_err(|e| step_err(self.df, ins, e))?;
        self.say(&format!("{tag} FROM {image}"));
        let mut stage = if let Some(i) = self.stage_index(&image, index) {
            let mut s = self
                .built
                .get(&i)
                .cloned()
                .ok_or_else(|| step_err(self.df, ins, "stage not built".into()))?;
            s.args = BTreeMap::new();
            s.cmd_inherited = true;
            s
        } else if image == "scratch" {
            let p = ccrun_image::Platform::host();
            Stage {
                config: ImageConfig {
                    architecture: p.architecture,
                    os: p.os,
                    variant: p.variant,
                    ..ImageConfig::default()
                },
                layers: Vec::new(),
                key: KeyBuilder::new("scratch").finish(),
                args: BTreeMap::new(),
                cmd_inherited: false,
                created: self.timestamp(),
            }
        } else {
            if image.is_empty() {
                return Err(step_err(self.df, ins, "no image given".into()));
            }
            let id = self.engine.image(&self.store, &image, self.opts.pull)?;
            self.base_stage(&id)
                .map_err(|e| step_err(self.df, ins, e.to_string()))?
        };
        // ONBUILD triggers of the base run now, and are not inherited.
        if let Some(triggers) = stage.config.config.on_build.take() {
            for t in triggers {
                let parsed = dockerfile::parse(&self.df.file, &t)?;
                for trigger in &parsed.instructions {
                    if matches!(trigger.keyword.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
                        return Err(step_err(
                            self.df,
                            ins,
                            format!("{} is not allowed as an ONBUILD trigger", trigger.keyword),
                        ));
                    }
                    let shown = format!("{tag} ONBUILD");
                    let mut located = trigger.clone();
                    located.line = ins.line;
                    self.instruction(&mut stage, &located, &shown, index)?;
                }
            }
        }
        Ok(stage)
    }

    fn check_platform(&self, p: &str) -> std::result::Result<(), String> {
        let host = ccrun_image::Platform::host();
        let wanted: ccrun_image::Platform =
            p.parse().map_err(|e: ccrun_image::Error| e.to_string())?;
        if host.matches(&wanted.os, &wanted.architecture, wanted.variant.as_deref()) {
            Ok(())
        } else {
            Err(format!(
                "platform {p} is not this host's ({host}): ccrun builds without emulation"
            ))
        }
    }

    fn base_stage(&mut self, id: &Digest) -> Result<Stage> {
        let image = self
            .store
            .resolve(&id.to_string())?
            .ok_or_else(|| Error::Engine(format!("image {id} is not in the store")))?;
        let blob = self
            .store
            .read_blob(id)?
            .ok_or_else(|| Error::Engine(format!("config of {id} is missing")))?;
        let config: ImageConfig = serde_json::from_slice(&blob).map_err(|e| Error::Context {
            message: format!("config of {id}: {e}"),
        })?;
        let mut layers = Vec::new();
        for diff_id in &image.record.layers {
            layers.push(LocalLayer {
                diff_id: diff_id.clone(),
                size: self.layer_size(diff_id)?,
            });
        }
        Ok(Stage {
            cmd_inherited: config.config.cmd.is_some(),
            created: config.created.clone().unwrap_or_else(|| self.timestamp()),
            config,
            layers,
            key: KeyBuilder::new("image").part(id.to_string()).finish(),
            args: BTreeMap::new(),
        })
    }

    /// The size of a stored layer's tarball (the manifest names it), measured once by
    /// writing it to nowhere and remembered under `build/sizes/`.
    fn layer_size(&self, diff_id: &Digest) -> Result<u64> {
        let dir = self.opts.root.join("build").join("sizes");
        let path = dir.join(diff_id.hex());
        if let Some(n) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return Ok(n);
        }
        let written = write_layer(
            &self.store.layer_dir(diff_id),
            std::io::sink(),
            &WriteOptions::default(),
        )?;
        std::fs::create_dir_all(&dir).ctx("creating", &dir)?;
        std::fs::write(&path, written.size.to_string()).ctx("writing", &path)?;
        Ok(written.size)
    }

    fn timestamp(&self) -> String {
        config::rfc3339(self.clamp.unwrap_or_else(now_secs))
    }

    /// ENV of the stage, then ARGs not shadowed by it: what expansion and RUN see.
    fn env_and_args(&self, stage: &Stage) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        for (k, v) in &stage.args {
            if let Some(v) = v {
                vars.insert(k.clone(), v.clone());
            }
        }
        for e in stage.config.config.env.iter().flatten() {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    fn expand(&self, stage: &Stage, ins: &Instruction, text: &str) -> Result<String> {
        let vars = self.env_and_args(stage);
        shell::word(text, self.df.escape, &|n: &str| vars.get(n).cloned())
            .map_err(|e| step_err(self.df, ins, e))
    }

    fn expand_words(&self, stage: &Stage, ins: &Instruction, text: &str) -> Result<Vec<String>> {
        let vars = self.env_and_args(stage);
        shell::words(text, self.df.escape, &|n: &str| vars.get(n).cloned())
            .map_err(|e| step_err(self.df, ins, e))
    }

    fn instruction(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        tag: &str,
        index: usize,
    ) -> Result<()> {
        let known_flags: &[&str] = match ins.keyword.as_str() {
            "RUN" => &["mount", "network", "security"],
            "COPY" => &["from", "chown", "chmod", "link"],
            "ADD" => &["chown", "chmod", "link", "checksum"],
            "HEALTHCHECK" => &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            _ => &[],
        };
        if let Some(f) = ins
            .flags
            .iter()
            .find(|f| !known_flags.contains(&f.name.as_str()))
        {
            return Err(step_err(
                self.df,
                ins,
                format!("unknown flag: --{}", f.name),
            ));
        }
        match ins.keyword.as_str() {
            "RUN" => return self.run_step(stage, ins, tag, index),
            "COPY" | "ADD" => return self.copy_step(stage, ins, tag, index),
            "WORKDIR" => return self.workdir(stage, ins, tag),
            _ => {}
        }
        self.say(&format!("{tag} {}", shorten(&ins.text())));
        let escape = self.df.escape;
        match ins.keyword.as_str() {
            "ARG" => {
                let vars = self.env_and_args(stage);
                let lookup = |n: &str| vars.get(n).cloned();
                for (name, default) in self.parse_arg(ins, &lookup)? {
                    let default =
                        default.or_else(|| self.global_args.get(&name).cloned().flatten());
                    let value = self.arg_value(&name, default);
                    stage.args.insert(name, value);
                }
            }
            "ENV" | "LABEL" => {
                let pairs = self.pairs(stage, ins)?;
                let c = &mut stage.config.config;
                if ins.keyword == "ENV" {
                    let env = c.env.get_or_insert_with(Vec::new);
                    for (k, v) in pairs {
                        env.retain(|e| e.split_once('=').map_or(e.as_str(), |p| p.0) != k);
                        env.push(format!("{k}={v}"));
                    }
                } else {
                    let labels = c.labels.get_or_insert_with(BTreeMap::new);
                    labels.extend(pairs);
                }
            }
            "CMD" => {
                stage.config.config.cmd = Some(command(&stage.config, ins));
                stage.cmd_inherited = false;
            }
            "ENTRYPOINT" => {
                let ep = command(&stage.config, ins);
                let c = &mut stage.config.config;
                c.entrypoint = Some(ep);
                if stage.cmd_inherited {
                    c.cmd = None;
                    stage.cmd_inherited = false;
                }
            }
            "SHELL" => match ins.command_form() {
                CommandForm::Exec(v) if !v.is_empty() => stage.config.config.shell = Some(v),
                _ => {
                    return Err(step_err(
                        self.df,
                        ins,
                        "SHELL requires the exec form: SHELL [\"executable\", \"parameters\"]"
                            .into(),
                    ))
                }
            },
            "USER" => {
                let u = self.expand(stage, ins, &ins.args)?;
                stage.config.config.user = Some(u);
            }
            "EXPOSE" => {
                let words = self.expand_words(stage, ins, &ins.args)?;
                let ports = stage
                    .config
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for w in words {
                    for p in expose(&w).map_err(|m| step_err(self.df, ins, m))? {
                        ports.insert(p, Empty {});
                    }
                }
            }
            "VOLUME" => {
                let list = match ins.command_form() {
                    CommandForm::Exec(v) => v
                        .iter()
                        .map(|v| self.expand(stage, ins, v))
                        .collect::<Result<Vec<_>>>()?,
                    CommandForm::Shell(_) => self.expand_words(stage, ins, &ins.args)?,
                };
                let vols = stage
                    .config
                    .config
                    .volumes
                    .get_or_insert_with(BTreeMap::new);
                for v in list.into_iter().filter(|v| !v.is_empty()) {
                    vols.insert(v, Empty {});
                }
            }
            "STOPSIGNAL" => {
                let s = self.expand(stage, ins, &ins.args)?;
                stage.config.config.stop_signal = Some(s);
            }
            "MAINTAINER" => stage.config.author = Some(ins.args.clone()),
            "ONBUILD" => {
                let trigger = ins.args.trim();
                let kw = trigger
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(step_err(
                        self.df,
                        ins,
                        format!("{kw} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                stage
                    .config
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(trigger.to_string());
            }
            "HEALTHCHECK" => {
                let hc = healthcheck(ins, escape).map_err(|m| step_err(self.df, ins, m))?;
                stage.config.config.healthcheck = Some(hc);
            }
            other => {
                return Err(step_err(
                    self.df,
                    ins,
                    format!("{other} is not allowed here"),
                ))
            }
        }
        // Metadata steps make no layer; their key still chains (through what they
        // made of the config, so an ARG value matters only where it is used), and the
        // cache keeps when they first ran so that a cached build gives the same image.
        let effect = serde_json::to_string(&stage.config).map_err(|e| Error::Context {
            message: format!("encoding the image config: {e}"),
        })?;
        let key = KeyBuilder::new(&stage.key)
            .part(ins.text())
            .part(effect)
            .finish();
        let created = self.cached_time(&key)?;
        self.history(stage, &ins.text(), created, None);
        stage.key = key;
        Ok(())
    }

    /// ENV and LABEL pairs: `k=v …` or the old `k v`.
    fn pairs(&self, stage: &Stage, ins: &Instruction) -> Result<Vec<(String, String)>> {
        let raw = shell::split_raw(&ins.args, self.df.escape);
        let mut out = Vec::new();
        if !raw.is_empty() && !raw[0].contains('=') {
            // The legacy form: one name, the rest is the value.
            let rest = ins.args.trim_start()[raw[0].len()..].trim();
            if rest.is_empty() {
                return Err(step_err(
                    self.df,
                    ins,
                    format!("{} names must be followed by a value", ins.keyword),
                ));
            }
            out.push((raw[0].clone(), self.expand(stage, ins, rest)?));
            return Ok(out);
        }
        for w in raw {
            let Some((k, v)) = w.split_once('=') else {
                return Err(step_err(
                    self.df,
                    ins,
                    format!("{}: expected KEY=VALUE, got {w:?}", ins.keyword),
                ));
            };
            let k = self.expand(stage, ins, k)?;
            if k.is_empty() {
                return Err(step_err(self.df, ins, "empty key".into()));
            }
            out.push((k, self.expand(stage, ins, v)?));
        }
        Ok(out)
    }

    fn cached_time(&self, key: &str) -> Result<String> {
        if !self.opts.no_cache {
            if let Some(e) = self.cache.get(key) {
                if e.layer.is_none() {
                    return Ok(e.created);
                }
            }
        }
        let created = self.timestamp();
        self.cache.put(
            key,
            &cache::Entry {
                layer: None,
                created: created.clone(),
            },
        )?;
        Ok(created)
    }

    fn history(
        &self,
        stage: &mut Stage,
        created_by: &str,
        created: String,
        layer: Option<LocalLayer>,
    ) {
        stage.config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(created_by.to_string()),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer: layer.is_none(),
            author: None,
        });
        if let Some(l) = layer {
            stage.config.rootfs.diff_ids.push(l.diff_id.to_string());
            stage.layers.push(l);
        }
        stage.created = created;
    }

    /// On a cache hit for `key`: says `shown` is CACHED, adds the cached layer to the
    /// stage with its history entry `created_by`, and moves the stage to `key`.
    /// Returns whether there was a hit.
    fn reuse_cached(&self, stage: &mut Stage, key: &str, shown: &str, created_by: &str) -> bool {
        let Some((l, created)) = self.cached_layer(key) else {
            return false;
        };
        self.say(&format!("{shown} CACHED"));
        let layer = LocalLayer {
            diff_id: l.diff_id,
            size: l.size,
        };
        self.history(stage, created_by, created, Some(layer));
        stage.key = key.to_string();
        true
    }

    /// A cached layer for `key`, if it is usable.
    fn cached_layer(&self, key: &str) -> Option<(CachedLayer, String)> {
        if self.opts.no_cache {
            return None;
        }
        let e = self.cache.get(key)?;
        let l = e.layer?;
        self.store.has_layer(&l.diff_id).then_some((l, e.created))
    }

    fn layer_dirs(&self, stage: &Stage) -> Vec<PathBuf> {
        stage
            .layers
            .iter()
            .map(|l| self.store.layer_dir(&l.diff_id))
            .collect()
    }

    fn view(&self, layers: &[PathBuf]) -> Result<View> {
        let dir = tempfile::Builder::new()
            .prefix("view-")
            .tempdir_in(&self.work)
            .ctx("creating a directory in", &self.work)?;
        let snapshot = Snapshot::new(dir.path());
        snapshot.mount(layers, MountOptions::default())?;
        Ok(View {
            snapshot,
            _dir: dir,
        })
    }

    /// Adds `files` as a layer (unless empty): tar in the work dir, then into the store.
    fn commit_files(&self, files: &LayerFiles, key: &str) -> Result<Option<LocalLayer>> {
        if files.is_empty() {
            return Ok(None);
        }
        let mut tar = tempfile::tempfile_in(&self.work).ctx("creating a file in", &self.work)?;
        let (_, size) = files.write(std::io::BufWriter::new(&mut tar), self.clamp)?;
        tar.rewind().ctx("rewinding", &self.work)?;
        let lock = self.store.lock()?;
        let diff_id = local::store_layer(&self.store, &lock, &mut tar)?;
        let layer = LocalLayer { diff_id, size };
        self.remember(key, &layer)?;
        Ok(Some(layer))
    }

    fn remember(&self, key: &str, layer: &LocalLayer) -> Result<()> {
        self.cache.put(
            key,
            &cache::Entry {
                layer: Some(CachedLayer {
                    diff_id: layer.diff_id.clone(),
                    size: layer.size,
                }),
                created: self.timestamp(),
            },
        )
    }

    fn workdir(&mut self, stage: &mut Stage, ins: &Instruction, tag: &str) -> Result<()> {
        let dir = self.expand(stage, ins, &ins.args)?;
        let prev = stage
            .config
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into());
        let path = clean_abs(&if dir.starts_with('/') {
            dir
        } else {
            format!("{prev}/{dir}")
        });
        stage.config.config.working_dir = Some(path.clone());
        let key = KeyBuilder::new(&stage.key)
            .part("WORKDIR")
            .part(&path)
            .part(stage.config.config.user.clone().unwrap_or_default())
            .finish();
        let text = ins.text();
        if self.reuse_cached(stage, &key, &format!("{tag} {text}"), &text) {
            return Ok(());
        }
        self.say(&format!("{tag} {text}"));
        let view = self.view(&self.layer_dirs(stage))?;
        let mut files = LayerFiles::new();
        if !view.root().join(path.trim_start_matches('/')).is_dir() {
            let user = stage.config.config.user.clone().unwrap_or_default();
            let (uid, gid) =
                resolve_owner(&view.root(), &user).map_err(|m| step_err(self.df, ins, m))?;
            let meta = Meta {
                mode: 0o755,
                uid,
                gid,
                mtime: now_secs(),
            };
            add_parents(&mut files, &view.root(), &format!("{path}/x"), meta);
        }
        drop(view);
        let layer = self.commit_files(&files, &key)?;
        if layer.is_none() {
            self.cached_time(&key)?;
        }
        self.history(stage, &text, self.timestamp(), layer);
        stage.key = key;
        Ok(())
    }

    fn run_step(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        tag: &str,
        index: usize,
    ) -> Result<()> {
        let shell = stage
            .config
            .config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let argv: Vec<String> = match ins.command_form() {
            CommandForm::Exec(v) if ins.heredocs.is_empty() => v,
            _ => {
                let text = ins.args.trim();
                let script = match ins.heredocs.as_slice() {
                    [] => text.to_string(),
                    [only] if text == only.marker => only.content.clone(),
                    docs => {
                        let mut s = text.to_string();
                        s.push('\n');
                        for d in docs {
                            s.push_str(&d.content);
                            s.push_str(&d.name);
                            s.push('\n');
                        }
                        s
                    }
                };
                shell.iter().cloned().chain([script]).collect()
            }
        };
        if argv.is_empty() {
            return Err(step_err(self.df, ins, "empty command".into()));
        }
        let mut network = self.opts.network;
        let mut mounts = Vec::new();
        let mut views = Vec::new();
        for f in &ins.flags {
            let value = f.value.clone().unwrap_or_default();
            match f.name.as_str() {
                "network" => {
                    network = value
                        .parse()
                        .map_err(|e: Error| step_err(self.df, ins, e.to_string()))?
                }
                "security" if value == "sandbox" => {}
                "security" => return Err(step_err(
                    self.df,
                    ins,
                    "--security=insecure is refused: build steps run in ccrun's default sandbox"
                        .into(),
                )),
                "mount" => {
                    let value = self.expand(stage, ins, &value)?;
                    let (m, view) = self
                        .run_mount(&value, index)
                        .map_err(|m| step_err(self.df, ins, m))?;
                    mounts.push(m);
                    views.extend(view);
                }
                _ => {}
            }
        }
        let vars = self.env_and_args(stage);
        let env: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let shown = format!("RUN {}", shorten(&argv_text(&argv)));
        let key = KeyBuilder::new(&stage.key)
            .part("RUN")
            .part(argv.join("\0"))
            .part(env.join("\0"))
            .part(format!("{mounts:?} {network:?}"))
            .finish();
        let created_by = format!("RUN {}", argv_text(&argv));
        if self.reuse_cached(stage, &key, &format!("{tag} {shown}"), &created_by) {
            return Ok(());
        }
        self.say(&format!("{tag} {shown}"));
        let started = Instant::now();
        let layers = self.layer_dirs(stage);
        let dir = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&self.work)
            .ctx("creating a directory in", &self.work)?;
        let snapshot = Snapshot::new(dir.path());
        // With -q the output is kept, to be shown only if the step fails.
        let mut kept = if self.opts.quiet {
            Some(tempfile::tempfile_in(&self.work).ctx("creating a file in", &self.work)?)
        } else {
            None
        };
        let stderr = std::io::stderr();
        let output = match &kept {
            Some(f) => f.as_fd(),
            None => stderr.as_fd(),
        };
        let cwd = stage
            .config
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into());
        let user = stage.config.config.user.clone().unwrap_or_default();
        let result = self.engine.run(&RunStep {
            layers: &layers,
            dir: dir.path(),
            argv: &argv,
            env: &env,
            cwd: &cwd,
            user: &user,
            network,
            mounts: &mounts,
            output,
        });
        drop(views);
        let code = match result {
            Ok(code) => code,
            Err(e) => {
                let _ = snapshot.remove();
                return Err(e);
            }
        };
        if code != 0 {
            let _ = snapshot.remove();
            if let Some(f) = kept.as_mut() {
                let mut text = String::new();
                let _ = f
                    .rewind()
                    .and_then(|()| f.read_to_string(&mut text).map(|_| ()));
                eprint!("{text}");
            }
            return Err(Error::RunFailed {
                file: self.df.file.clone(),
                line: ins.line,
                command: argv_text(&argv),
                code,
            });
        }
        let upper = snapshot.upper();
        drop_mount_points(&upper, &layers, &mounts);
        let captured = (|| {
            let lock = self.store.lock()?;
            let written = local::capture_layer(
                &self.store,
                &lock,
                &upper,
                &WriteOptions {
                    owners: self.engine.owners(),
                    clamp_mtime: self.clamp,
                },
            )?;
            let layer = (written.entries > 0).then_some(LocalLayer {
                diff_id: written.diff_id,
                size: written.size,
            });
            match &layer {
                Some(l) => self.remember(&key, l)?,
                None => {
                    self.cached_time(&key)?;
                }
            }
            Ok::<_, Error>(layer)
        })();
        let _ = snapshot.remove();
        let layer = captured?;
        if self.opts.terminal && !self.opts.quiet {
            eprintln!("{tag} DONE {:.1}s", started.elapsed().as_secs_f64());
        }
        self.history(
            stage,
            &format!("RUN {}", argv_text(&argv)),
            self.timestamp(),
            layer,
        );
        stage.key = key;
        Ok(())
    }

    /// `--mount=type=cache|bind|tmpfs,…` of a RUN.
    fn run_mount(
        &mut self,
        spec: &str,
        index: usize,
    ) -> std::result::Result<(StepMount, Option<View>), String> {
        let mut opts = BTreeMap::new();
        for part in spec.split(',') {
            let (k, v) = part.split_once('=').unwrap_or((part, "true"));
            opts.insert(k.trim().to_string(), v.trim().to_string());
        }
        let kind = opts.get("type").cloned().unwrap_or_else(|| "bind".into());
        let target = opts
            .get("target")
            .or_else(|| opts.get("dst"))
            .or_else(|| opts.get("destination"))
            .cloned()
            .ok_or_else(|| format!("--mount={spec}: a target is needed"))?;
        let flag = |k: &str| opts.get(k).is_some_and(|v| v != "false");
        let readonly = flag("ro") || flag("readonly");
        match kind.as_str() {
            "cache" => {
                let id = opts.get("id").cloned().unwrap_or_else(|| target.clone());
                let name = KeyBuilder::new("cache-mount").part(&id).finish();
                let dir = cache::mounts_dir(&self.opts.root.join("build")).join(&name[..32]);
                if !dir.exists() {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                    let mode = opts
                        .get("mode")
                        .map_or(Ok(0o755), |m| u32::from_str_radix(m, 8))
                        .map_err(|_| "bad cache mount mode".to_string())?;
                    let uid: u32 = opts
                        .get("uid")
                        .map_or(Ok(0), |v| v.parse())
                        .map_err(|_| "bad cache mount uid".to_string())?;
                    let gid: u32 = opts
                        .get("gid")
                        .map_or(Ok(0), |v| v.parse())
                        .map_err(|_| "bad cache mount gid".to_string())?;
                    let (huid, hgid) = host_ids(self.engine.owners(), uid, gid);
                    std::os::unix::fs::chown(&dir, Some(huid), Some(hgid))
                        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| e.to_string())?;
                }
                Ok((
                    StepMount {
                        source: dir,
                        target,
                        readonly,
                        idmap: false,
                        tmpfs: false,
                    },
                    None,
                ))
            }
            "tmpfs" => Ok((
                StepMount {
                    source: PathBuf::new(),
                    target,
                    readonly: false,
                    idmap: false,
                    tmpfs: true,
                },
                None,
            )),
            "bind" => {
                let source = opts
                    .get("source")
                    .or_else(|| opts.get("src"))
                    .cloned()
                    .unwrap_or_default();
                let rw = flag("rw") || flag("readwrite");
                let (root, view) = match opts.get("from") {
                    None => (self.opts.context.clone(), None),
                    Some(from) => {
                        let layers = match self.stage_index(from, index) {
                            Some(i) => {
                                let s = self
                                    .built
                                    .get(&i)
                                    .ok_or_else(|| format!("stage {from} not built"))?;
                                self.layer_dirs(s)
                            }
                            None => {
                                let id = self
                                    .engine
                                    .image(&self.store, from, false)
                                    .map_err(|e| e.to_string())?;
                                let image = self
                                    .store
                                    .resolve(&id.to_string())
                                    .map_err(|e| e.to_string())?
                                    .ok_or_else(|| format!("image {from} is missing"))?;
                                image.layer_dirs
                            }
                        };
                        let v = self.view(&layers).map_err(|e| e.to_string())?;
                        (v.root(), Some(v))
                    }
                };
                let path = inside(&root, &source)?;
                if rw {
                    // Writes would land in the source: BuildKit discards them, ccrun refuses.
                    return Err(
                        "--mount=type=bind,rw is not supported; bind mounts are read-only".into(),
                    );
                }
                Ok((
                    StepMount {
                        source: path,
                        target,
                        readonly: true,
                        idmap: true,
                        tmpfs: false,
                    },
                    view,
                ))
            }
            "secret" | "ssh" => Err(format!(
                "--mount=type={kind} is not supported (ccrun build has no --secret or --ssh)"
            )),
            other => Err(format!("unknown mount type {other:?}")),
        }
    }

    fn copy_step(
        &mut self,
        stage: &mut Stage,
        ins: &Instruction,
        tag: &str,
        index: usize,
    ) -> Result<()> {
        let add = ins.keyword == "ADD";
        let mut words = match ins.command_form() {
            CommandForm::Exec(v) if ins.heredocs.is_empty() => v
                .iter()
                .map(|w| self.expand(stage, ins, w))
                .collect::<Result<Vec<_>>>()?,
            _ => self.expand_words(stage, ins, &ins.args)?,
        };
        if words.len() < 2 {
            return Err(step_err(self.df, ins, format!("{} requires at least two arguments, but only one was provided. Destination could not be determined", ins.keyword)));
        }
        let dest_word = words.pop().unwrap_or_default();
        let workdir = stage
            .config
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into());
        let dest_is_dir_syntax = dest_word.ends_with('/') || dest_word == "." || dest_word == "..";
        let dest = clean_abs(&if dest_word.starts_with('/') {
            dest_word.clone()
        } else {
            format!("{workdir}/{dest_word}")
        });
        let chmod = match ins.flag("chmod").and_then(|f| f.value.clone()) {
            Some(m) => Some(u32::from_str_radix(&m, 8).map_err(|_| {
                step_err(
                    self.df,
                    ins,
                    format!("invalid --chmod={m}: octal mode expected"),
                )
            })?),
            None => None,
        };
        let from = ins.flag("from").and_then(|f| f.value.clone());
        let view = self.view(&self.layer_dirs(stage))?;
        let chown = match ins.flag("chown").and_then(|f| f.value.clone()) {
            Some(c) => {
                let c = self.expand(stage, ins, &c)?;
                Some(resolve_owner(&view.root(), &c).map_err(|m| step_err(self.df, ins, m))?)
            }
            None => None,
        };
        // Where sources come from: the context, an earlier stage or an image.
        let (src_root, src_view) = match &from {
            None => (self.opts.context.clone(), None),
            Some(f) => {
                let layers =
                    match self.stage_index(f, index) {
                        Some(i) => self.layer_dirs(self.built.get(&i).ok_or_else(|| {
                            step_err(self.df, ins, format!("stage {f} not built"))
                        })?),
                        None => {
                            let id = self.engine.image(&self.store, f, self.opts.pull)?;
                            self.store
                                .resolve(&id.to_string())?
                                .map(|i| i.layer_dirs)
                                .unwrap_or_default()
                        }
                    };
                let v = self.view(&layers)?;
                (v.root(), Some(v))
            }
        };
        let from_context = from.is_none();
        let now = self.clamp.unwrap_or_else(now_secs);
        let mut files = LayerFiles::new();
        let multiple = words.len() > 1 || words.iter().any(|w| has_wildcard(w));
        let dest_exists_dir = view.root().join(dest.trim_start_matches('/')).is_dir();
        let into_dir = dest_is_dir_syntax || dest_exists_dir || multiple;
        if multiple && !dest_is_dir_syntax && !dest_exists_dir {
            return Err(step_err(self.df, ins, format!("when using {} with more than one source file, the destination must be a directory and end with a /", ins.keyword)));
        }
        let parent_meta = Meta {
            mode: 0o755,
            uid: chown.map_or(0, |c| c.0),
            gid: chown.map_or(0, |c| c.1),
            mtime: now,
        };
        let meta_for = |md: &std::fs::Metadata| {
            let mut m = Meta::of(md);
            if from_context {
                (m.uid, m.gid) = (0, 0);
            }
            if let Some((u, g)) = chown {
                (m.uid, m.gid) = (u, g);
            }
            if let Some(c) = chmod {
                m.mode = c;
            }
            m
        };
        let mut added_any = false;
        for src in &words {
            // A heredoc named as a source is a file with its content.
            if let Some(doc) = ins.heredocs.iter().find(|d| {
                d.name
                    == src
                        .trim_start_matches("<<-")
                        .trim_start_matches("<<")
                        .trim_matches(|c| c == '"' || c == '\'')
            }) {
                let content = if doc.expand {
                    self.expand(stage, ins, &doc.content)?
                } else {
                    doc.content.clone()
                };
                let target = if into_dir {
                    format!("{dest}/{}", doc.name)
                } else {
                    dest.clone()
                };
                add_parents(&mut files, &view.root(), &target, parent_meta);
                files.add(
                    &target,
                    Source::Bytes(content.into_bytes()),
                    Meta {
                        mode: chmod.unwrap_or(0o644),
                        uid: parent_meta.uid,
                        gid: parent_meta.gid,
                        mtime: now,
                    },
                );
                added_any = true;
                continue;
            }
            if add && (src.starts_with("http://") || src.starts_with("https://")) {
                let checksum = ins.flag("checksum").and_then(|f| f.value.clone());
                let body =
                    fetch(src, checksum.as_deref()).map_err(|m| step_err(self.df, ins, m))?;
                let name = src
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("download")
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("download")
                    .to_string();
                let target = if into_dir {
                    format!("{dest}/{name}")
                } else {
                    dest.clone()
                };
                add_parents(&mut files, &view.root(), &target, parent_meta);
                files.add(
                    &target,
                    Source::Bytes(body),
                    Meta {
                        mode: chmod.unwrap_or(0o600),
                        uid: parent_meta.uid,
                        gid: parent_meta.gid,
                        mtime: now,
                    },
                );
                added_any = true;
                continue;
            }
            if src.contains("://") || src.starts_with("git@") {
                return Err(step_err(
                    self.df,
                    ins,
                    format!(
                        "{src}: only http(s) URLs are supported ({} of git repositories is not)",
                        ins.keyword
                    ),
                ));
            }
            let matches = self
                .sources(&src_root, src, from_context)
                .map_err(|m| step_err(self.df, ins, m))?;
            for rel in matches {
                let path = src_root.join(&rel);
                let md = std::fs::metadata(&path).ctx("reading", &path)?;
                let keep = |p: &Path| {
                    !from_context || !self.ignore.excludes(&rel.join(p).to_string_lossy())
                };
                if md.is_dir() {
                    add_parents(&mut files, &view.root(), &format!("{dest}/x"), parent_meta);
                    let mut m = meta_for(&md);
                    if let Some(existing) = existing_meta(&view.root(), &dest) {
                        m = existing;
                    }
                    files.add(&dest, Source::Dir, m);
                    add_children(&mut files, &path, &dest, &meta_for, &keep)?;
                } else {
                    let name = rel
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let target = if into_dir {
                        format!("{dest}/{name}")
                    } else {
                        dest.clone()
                    };
                    if add && from_context {
                        if let Some(()) =
                            self.extract(&mut files, &path, &dest, &view.root(), parent_meta)?
                        {
                            added_any = true;
                            continue;
                        }
                    }
                    add_parents(&mut files, &view.root(), &target, parent_meta);
                    // The source path itself is followed if a symlink, as Docker does.
                    let real = path.canonicalize().ctx("resolving", &path)?;
                    let rmd = std::fs::metadata(&real).ctx("reading", &real)?;
                    use std::os::unix::fs::MetadataExt;
                    files.add(
                        &target,
                        Source::File(real.clone(), (rmd.dev(), rmd.ino())),
                        meta_for(&rmd),
                    );
                }
                added_any = true;
            }
        }
        // The views stay mounted until the layer is written: files are read from them.
        drop(view);
        if !added_any {
            return Err(step_err(
                self.df,
                ins,
                "no source files were specified".into(),
            ));
        }
        let text = ins.text();
        let key = KeyBuilder::new(&stage.key)
            .part(&ins.keyword)
            .part(&text)
            .part(files.content_key()?)
            .finish();
        if self.reuse_cached(stage, &key, &format!("{tag} {}", shorten(&text)), &text) {
            return Ok(());
        }
        self.say(&format!("{tag} {}", shorten(&text)));
        let layer = self.commit_files(&files, &key)?;
        drop(src_view);
        self.history(stage, &text, self.timestamp(), layer);
        stage.key = key;
        Ok(())
    }

    /// Paths (relative to `root`) a COPY source names: the path itself, or what its
    /// wildcards match. Context paths must stay inside the context and not be
    /// excluded by `.dockerignore`.
    fn sources(
        &self,
        root: &Path,
        src: &str,
        from_context: bool,
    ) -> std::result::Result<Vec<PathBuf>, String> {
        let rel = clean_rel(src).ok_or_else(|| format!("{src}: outside the build context"))?;
        let describe = if from_context {
            "build context"
        } else {
            "source stage"
        };
        if !has_wildcard(&rel) {
            let path = root.join(&rel);
            // Followed symlinks must not leave the root either.
            let real = path
                .canonicalize()
                .map_err(|_| format!("{src}: not found in the {describe}"))?;
            let real_root = root.canonicalize().map_err(|e| e.to_string())?;
            if !real.starts_with(&real_root) {
                return Err(format!("{src}: outside the {describe}"));
            }
            if from_context && !rel.is_empty() && self.ignore.excludes(&rel) {
                return Err(format!("{src}: excluded by .dockerignore"));
            }
            return Ok(vec![PathBuf::from(rel)]);
        }
        let pattern = regex::Regex::new(&glob_regex(&rel)).map_err(|e| format!("{src}: {e}"))?;
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        let depth = rel.split('/').count();
        while let Some(dir) = stack.pop() {
            let Ok(entries) = files::sorted_dir(&root.join(&dir)) else {
                continue;
            };
            for e in entries {
                let p = dir.join(e.file_name());
                let s = p.to_string_lossy().into_owned();
                if pattern.is_match(&s) && !(from_context && self.ignore.excludes(&s)) {
                    out.push(p.clone());
                }
                if p.components().count() < depth && e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                }
            }
        }
        out.sort();
        if out.is_empty() {
            return Err(format!("{src}: no source files matched in the {describe}"));
        }
        Ok(out)
    }

    /// ADD of a local tar archive (plain, gzip or zstd): its entries go under `dest`.
    /// Anything else is not an archive (`None`) and is copied as a file.
    fn extract(
        &self,
        files: &mut LayerFiles,
        path: &Path,
        dest: &str,
        view_root: &Path,
        parent: Meta,
    ) -> Result<Option<()>> {
        let mut f = std::fs::File::open(path).ctx("opening", path)?;
        let mut magic = [0u8; 4];
        let n = f.read(&mut magic).ctx("reading", path)?;
        f.rewind().ctx("reading", path)?;
        let reader: Box<dyn Read> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            Box::new(flate2::read::GzDecoder::new(f))
        } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            Box::new(zstd::stream::read::Decoder::new(f).ctx("reading", path)?)
        } else {
            let mut block = [0u8; 512];
            let mut probe = std::fs::File::open(path).ctx("opening", path)?;
            if probe.read_exact(&mut block).is_err() || &block[257..262] != b"ustar" {
                return Ok(None);
            }
            Box::new(f)
        };
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(_) => return Ok(None),
        };
        add_parents(files, view_root, &format!("{dest}/x"), parent);
        if !files.contains(dest) {
            files.add(
                dest,
                Source::Dir,
                existing_meta(view_root, dest).unwrap_or(parent),
            );
        }
        for entry in entries {
            let mut entry = entry.ctx("reading archive", path)?;
            let name = entry
                .path()
                .ctx("reading archive", path)?
                .to_string_lossy()
                .into_owned();
            let Some(rel) = clean_rel(&name) else {
                continue;
            };
            if rel.is_empty() {
                continue;
            }
            let target = format!("{dest}/{rel}");
            let h = entry.header();
            let meta = Meta {
                mode: h.mode().unwrap_or(0o644) & 0o7777,
                uid: h.uid().unwrap_or(0) as u32,
                gid: h.gid().unwrap_or(0) as u32,
                mtime: h.mtime().unwrap_or(0),
            };
            let link = entry
                .link_name()
                .ctx("reading archive", path)?
                .map(|l| l.to_path_buf());
            let source = match h.entry_type() {
                tar::EntryType::Directory => Source::Dir,
                tar::EntryType::Symlink => Source::Symlink(link.unwrap_or_default()),
                tar::EntryType::Link => {
                    let t = link
                        .map(|l| l.to_string_lossy().into_owned())
                        .and_then(|l| clean_rel(&l))
                        .unwrap_or_default();
                    Source::Link(format!("{}/{t}", dest.trim_start_matches('/')))
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut buf = Vec::new();
                    entry.read_to_end(&mut buf).ctx("reading archive", path)?;
                    Source::Bytes(buf)
                }
                _ => continue,
            };
            add_parents(files, view_root, &target, parent);
            files.add(&target, source, meta);
        }
        Ok(Some(()))
    }

    fn finish(&mut self, mut stage: Stage) -> Result<Built> {
        if !self.opts.labels.is_empty() {
            stage
                .config
                .config
                .labels
                .get_or_insert_with(BTreeMap::new)
                .extend(self.opts.labels.clone());
        }
        stage.config.created = Some(stage.created.clone());
        let p = ccrun_image::Platform::host();
        stage.config.architecture = p.architecture;
        stage.config.os = p.os;
        stage.config.variant = p.variant;
        let bytes = serde_json::to_vec(&stage.config).map_err(|e| Error::Context {
            message: format!("encoding the image config: {e}"),
        })?;
        let lock = self.store.lock()?;
        let record = local::commit_image(
            &self.store,
            &lock,
            &LocalImage {
                config: &bytes,
                layers: &stage.layers,
                names: &self.opts.tags,
            },
        )?;
        drop(lock);
        self.say(&format!("writing image {} done", record.id));
        for n in &record.names {
            self.say(&format!("naming to {n} done"));
        }
        Ok(Built { record })
    }
}

/// Host uid/gid of container ids under `owners`.
fn host_ids(owners: Owners, uid: u32, gid: u32) -> (u32, u32) {
    match owners {
        Owners::Keep => (uid, gid),
        Owners::Unshift {
            uid_start,
            gid_start,
            ..
        } => (uid_start + uid, gid_start + gid),
        Owners::KeepId { .. } => owners.host_ids(uid, gid),
    }
}

fn step_err(df: &Dockerfile, ins: &Instruction, message: String) -> Error {
    Error::Step {
        file: df.file.clone(),
        line: ins.line,
        instruction: shorten(&ins.text()),
        message,
    }
}

fn shorten(text: &str) -> String {
    let one_line = text.replace('\n', "\\n");
    if one_line.chars().count() > 80 {
        let cut: String = one_line.chars().take(77).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

fn argv_text(argv: &[String]) -> String {
    argv.join(" ")
}

/// CMD/ENTRYPOINT/HEALTHCHECK command: exec form as is, shell form under the shell.
fn command(config: &ImageConfig, ins: &Instruction) -> Vec<String> {
    match ins.command_form() {
        CommandForm::Exec(v) => v,
        CommandForm::Shell(s) => {
            let shell = config
                .config
                .shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            shell.into_iter().chain([s]).collect()
        }
    }
}

fn healthcheck(ins: &Instruction, _escape: char) -> std::result::Result<Healthcheck, String> {
    let args = ins.args.trim();
    let (kw, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
    let mut hc = Healthcheck::default();
    match kw.to_ascii_uppercase().as_str() {
        "NONE" if rest.trim().is_empty() && ins.flags.is_empty() => {
            hc.test = vec!["NONE".into()];
            return Ok(hc);
        }
        "NONE" => return Err("HEALTHCHECK NONE takes no other arguments".into()),
        "CMD" => {}
        _ => return Err("HEALTHCHECK expects CMD or NONE".into()),
    }
    let rest = rest.trim();
    if rest.is_empty() {
        return Err("HEALTHCHECK CMD needs a command".into());
    }
    hc.test = match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) if rest.starts_with('[') => std::iter::once("CMD".to_string()).chain(v).collect(),
        _ => vec!["CMD-SHELL".into(), rest.to_string()],
    };
    for f in &ins.flags {
        let v = f.value.clone().unwrap_or_default();
        match f.name.as_str() {
            "retries" => {
                hc.retries = Some(v.parse().map_err(|_| format!("invalid --retries={v}"))?)
            }
            name => {
                let ns = duration_ns(&v).ok_or_else(|| format!("invalid --{name}={v}"))?;
                match name {
                    "interval" => hc.interval = Some(ns),
                    "timeout" => hc.timeout = Some(ns),
                    "start-period" => hc.start_period = Some(ns),
                    _ => hc.start_interval = Some(ns),
                }
            }
        }
    }
    Ok(hc)
}

/// A Go duration (`30s`, `1m30s`, `1.5s`, `500ms`, `1h`) in nanoseconds, as Docker's
/// `HEALTHCHECK` options and `--health-*` flags take it; `None` when it is not one or
/// does not fit.
pub fn duration_ns(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    (total.is_finite() && total <= i64::MAX as f64).then_some(total as i64)
}

/// `80`, `80/udp`, `8000-8002/tcp` → `80/tcp` … keys.
fn expose(w: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = w.split_once('/').unwrap_or((w, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol in EXPOSE {w}"));
    }
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let lo: u16 = lo
        .parse()
        .map_err(|_| format!("invalid port in EXPOSE {w}"))?;
    let hi: u16 = hi
        .parse()
        .map_err(|_| format!("invalid port in EXPOSE {w}"))?;
    if hi < lo {
        return Err(format!("invalid port range in EXPOSE {w}"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// An absolute path, cleaned (`/a/./b/../c` → `/a/c`).
fn clean_abs(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    format!("/{}", out.join("/"))
}

/// A relative path cleaned, or `None` if it climbs out of its root.
fn clean_rel(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            x => out.push(x),
        }
    }
    Some(out.join("/"))
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` pattern as a regular expression.
fn glob_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    for c in pattern.chars() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' | ']' | '^' | '-' => re.push(c),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// The path `rel` inside `root`, refusing to leave it.
fn inside(root: &Path, rel: &str) -> std::result::Result<PathBuf, String> {
    let cleaned = clean_rel(rel).ok_or_else(|| format!("{rel}: outside the source"))?;
    let path = root.join(&cleaned);
    let real = path
        .canonicalize()
        .map_err(|_| format!("{rel}: not found"))?;
    let real_root = root.canonicalize().map_err(|e| e.to_string())?;
    if !real.starts_with(&real_root) {
        return Err(format!("{rel}: outside the source"));
    }
    Ok(real)
}

/// The metadata of `path` in the stage's view, as the layer records it.
fn existing_meta(view_root: &Path, path: &str) -> Option<Meta> {
    let md = std::fs::symlink_metadata(view_root.join(path.trim_start_matches('/'))).ok()?;
    md.is_dir().then(|| Meta::of(&md))
}

/// Adds the parent directories of `target`: as they are in the stage when they exist
/// there (so the layer does not change them), else with `created`.
fn add_parents(files: &mut LayerFiles, view_root: &Path, target: &str, created: Meta) {
    let parts: Vec<&str> = target.trim_matches('/').split('/').collect();
    let mut path = String::new();
    for part in &parts[..parts.len().saturating_sub(1)] {
        path.push('/');
        path.push_str(part);
        if files.contains(&path) {
            continue;
        }
        let meta = existing_meta(view_root, &path).unwrap_or(created);
        files.add(&path, Source::Dir, meta);
    }
}

fn add_children(
    files: &mut LayerFiles,
    dir: &Path,
    dest: &str,
    meta: &dyn Fn(&std::fs::Metadata) -> Meta,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<()> {
    for e in files::sorted_dir(dir)? {
        let rel = PathBuf::from(e.file_name());
        let child_dest = format!(
            "{}/{}",
            dest.trim_end_matches('/'),
            e.file_name().to_string_lossy()
        );
        if keep(&rel) {
            files::add_tree(files, &e.path(), &child_dest, meta, &|r: &Path| {
                keep(&rel.join(r))
            })?;
        } else if e.file_type().ctx("reading", e.path())?.is_dir() {
            let sub_keep = |r: &Path| keep(&rel.join(r));
            let mut sub = LayerFiles::new();
            add_children(&mut sub, &e.path(), &child_dest, meta, &sub_keep)?;
            if !sub.is_empty() {
                let md = std::fs::symlink_metadata(e.path()).ctx("reading", e.path())?;
                files.add(&child_dest, Source::Dir, meta(&md));
                add_children(files, &e.path(), &child_dest, meta, &sub_keep)?;
            }
        }
    }
    Ok(())
}

/// `user[:group]` (names or numbers) as ids, from the stage's /etc/passwd and
/// /etc/group. A user alone takes its primary group (its own id if numeric and
/// unknown).
fn resolve_owner(root: &Path, spec: &str) -> std::result::Result<(u32, u32), String> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
    let passwd = read("etc/passwd");
    let group = read("etc/group");
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let find = |text: &str, name: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| {
                f.first().map(String::as_str) == Some(name)
                    || f.get(2).map(String::as_str) == Some(name)
            })
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (
            n,
            find(&passwd, user)
                .and_then(|f| f.get(3).and_then(|g| g.parse().ok()))
                .unwrap_or(n),
        ),
        Err(_) => {
            let f = find(&passwd, user).ok_or_else(|| {
                format!("unable to find user {user}: no matching entries in passwd file")
            })?;
            let uid = f
                .get(2)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("bad passwd entry for {user}"))?;
            let gid = f.get(3).and_then(|v| v.parse().ok()).unwrap_or(uid);
            (uid, gid)
        }
    };
    let gid = match grp {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find(&group, g)
                .and_then(|f| f.get(2).and_then(|v| v.parse().ok()))
                .ok_or_else(|| {
                    format!("unable to find group {g}: no matching entries in group file")
                })?,
        },
    };
    Ok((uid, gid))
}

/// Removes from a RUN's upper directory the empty files and directories the runtime
/// made only as mount points (`/proc`, `/etc/hosts`, a cache mount's target, …) where
/// the image had nothing, as BuildKit leaves them out of the layer.
fn drop_mount_points(upper: &Path, layers: &[PathBuf], mounts: &[StepMount]) {
    let mut candidates: Vec<String> = [
        "proc",
        "sys",
        "dev",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "run",
        "tmp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    candidates.extend(
        mounts
            .iter()
            .map(|m| m.target.trim_matches('/').to_string()),
    );
    for c in candidates {
        // The mount point and the parents made for it.
        let mut rel = PathBuf::from(&c);
        loop {
            if rel.as_os_str().is_empty()
                || layers
                    .iter()
                    .any(|l| l.join(&rel).symlink_metadata().is_ok())
            {
                break;
            }
            let path = upper.join(&rel);
            let Ok(md) = path.symlink_metadata() else {
                break;
            };
            let removed = if md.is_dir() {
                std::fs::remove_dir(&path).is_ok()
            } else {
                md.is_file() && md.len() == 0 && std::fs::remove_file(&path).is_ok()
            };
            if !removed {
                break;
            }
            match rel.parent() {
                Some(p) => rel = p.to_path_buf(),
                None => break,
            }
        }
    }
}

/// Fetches an `ADD` URL, checking `--checksum=sha256:…` when given.
fn fetch(url: &str, checksum: Option<&str>) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let response = ureq::get(url)
        .call()
        .map_err(|e| format!("fetching {url}: {e}"))?;
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if let Some(want) = checksum {
        let want: Digest = want
            .parse()
            .map_err(|e: ccrun_image::Error| e.to_string())?;
        let got = Digest::of(&body);
        if got != want {
            return Err(format!("checksum of {url} is {got}, not {want}"));
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(clean_abs("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_rel("../x"), None);
        assert_eq!(clean_rel("./a/../b").as_deref(), Some("b"));
        assert_eq!(duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("5x"), None);
        assert_eq!(
            expose("8000-8001/udp").expect("expose"),
            ["8000/udp", "8001/udp"]
        );
        assert!(expose("80/foo").is_err());
        assert!(regex::Regex::new(&glob_regex("src/*.rs"))
            .expect("re")
            .is_match("src/a.rs"));
        assert!(!regex::Regex::new(&glob_regex("*.rs"))
            .expect("re")
            .is_match("src/a.rs"));
    }

    #[test]
    fn owners_from_passwd() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("etc")).expect("mkdir");
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(tmp.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        assert_eq!(resolve_owner(tmp.path(), "app"), Ok((1000, 1001)));
        assert_eq!(resolve_owner(tmp.path(), "app:staff"), Ok((1000, 50)));
        assert_eq!(resolve_owner(tmp.path(), "7"), Ok((7, 7)));
        assert_eq!(resolve_owner(tmp.path(), "7:8"), Ok((7, 8)));
        assert!(resolve_owner(tmp.path(), "ghost").is_err());
    }
}
