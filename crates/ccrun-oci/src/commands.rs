//! The lifecycle commands, with runc's checks and messages (podman and containerd
//! match on some of them, e.g. "container does not exist", "container not running").

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ccrun_runtime::{Container, CreateOptions, Error, Forwarder, Status};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::cli::{
    BundleArgs, Cli, Command, CreateArgs, DeleteArgs, Format, KillArgs, ListArgs, PsArgs, RunArgs,
};
use crate::log::Logger;
use crate::{exec, info, relay, resources};

/// Runs `command`; the result is the process's exit code.
pub fn dispatch(cli: &Cli, command: &Command, logger: &mut Logger) -> Result<i32> {
    let root = cli.root.as_path();
    if command.id().is_some_and(str::is_empty) {
        bail!("container id cannot be empty");
    }
    match command {
        Command::Create(args) => create(root, args, logger).map(|_| 0),
        Command::Start(a) => start(root, &a.id).map(|()| 0),
        Command::Run(args) => run(root, args, logger),
        Command::State(a) => state(root, &a.id).map(|()| 0),
        Command::Kill(args) => kill(root, args).map(|()| 0),
        Command::Delete(args) => delete(root, args).map(|()| 0),
        Command::Exec(args) => exec::exec(root, args),
        Command::Ps(args) => ps(root, args).map(|()| 0),
        Command::List(args) => list(root, args).map(|()| 0),
        Command::Pause(a) => pause(root, &a.id).map(|()| 0),
        Command::Resume(a) => resume(root, &a.id).map(|()| 0),
        Command::Update(args) => {
            let mut c = load(root, &args.id)?;
            let res = resources::from_args(args)?;
            logger.debug(&format!("update {}: {res:?}", args.id));
            resources::update(&mut c, &res)
                .with_context(|| format!("updating container {}", args.id))
                .map(|()| 0)
        }
        Command::Events(args) => resources::events(&load(root, &args.id)?, args).map(|()| 0),
        Command::Spec(args) => info::spec(args).map(|()| 0),
        Command::Features => info::features().map(|()| 0),
    }
}

/// Loads container `id`, with runc's message when there is none.
pub fn load(root: &Path, id: &str) -> Result<Container> {
    match Container::load(root, id) {
        Ok(c) => Ok(c),
        Err(Error::NotFound(_)) => bail!("container does not exist"),
        Err(e) => Err(e.into()),
    }
}

/// Where and how to create a container.
struct Creation<'a> {
    bundle: &'a Path,
    id: &'a str,
    console_socket: Option<&'a Path>,
    pid_file: Option<&'a Path>,
    no_pivot: bool,
    /// Fds after stdio (3 …) the container keeps.
    preserve_fds: u32,
    /// Whether this process exits once the container is created or started.
    detach: bool,
}

impl<'a> Creation<'a> {
    fn new(args: &'a BundleArgs, id: &'a str, detach: bool) -> Creation<'a> {
        Creation {
            bundle: &args.bundle,
            id,
            console_socket: args.console_socket.as_deref(),
            pid_file: args.pid_file.as_deref(),
            no_pivot: args.no_pivot,
            preserve_fds: args.preserve_fds,
            detach,
        }
    }
}

fn create(root: &Path, args: &CreateArgs, logger: &mut Logger) -> Result<Container> {
    create_container(root, &Creation::new(&args.bundle, &args.id, true), logger)
}

fn create_container(root: &Path, how: &Creation<'_>, logger: &mut Logger) -> Result<Container> {
    let bundle = how
        .bundle
        .canonicalize()
        .with_context(|| format!("bundle {}", how.bundle.display()))?;
    // Unknown properties are ignored, as the runtime spec says; fields ccrun knows but
    // does not honour are refused here rather than ignored.
    let loaded = ccrun_runtime::spec::load_reporting(&bundle)?;
    for key in &loaded.ignored {
        logger.debug(&format!("config.json: ignoring unknown property {key}"));
    }
    let spec = loaded.value;
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    check_console(terminal, how.console_socket.is_some(), how.detach)?;
    if root.join(how.id).exists() {
        bail!("container with id exists: {}", how.id);
    }
    let mut container = Container::create(CreateOptions {
        id: how.id.to_string(),
        bundle,
        spec,
        state_root: root.to_path_buf(),
        minimal_init: false,
        no_pivot: how.no_pivot,
        stdio: None,
        preserve_fds: how.preserve_fds,
    })?;
    let finish = |c: &mut Container| -> Result<()> {
        if let Some(socket) = how.console_socket {
            c.send_console(socket)?;
        }
        if let Some(path) = how.pid_file {
            write_pid_file(path, c.pid())?;
        }
        Ok(())
    };
    if let Err(e) = finish(&mut container) {
        let _ = container.delete(true);
        return Err(e);
    }
    Ok(container)
}

/// runc's rules for terminals: a detached terminal needs somewhere to send it.
pub fn check_console(terminal: bool, socket: bool, detach: bool) -> Result<()> {
    if terminal && detach && !socket {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if !terminal && socket {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }
    Ok(())
}

/// Writes `pid` to `path` atomically (a temporary file in the same directory, then a
/// rename), as runc does, so a reader never sees a partial number.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("pid file {} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        write!(f, "{pid}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("writing pid file {}: {e}", path.display())
    })
}

fn start(root: &Path, id: &str) -> Result<()> {
    let mut c = load(root, id)?;
    match c.state.status {
        Status::Created => Ok(c.start()?),
        Status::Stopped => bail!("cannot start a container that has stopped"),
        _ => bail!("cannot start an already running container"),
    }
}

fn run(root: &Path, args: &RunArgs, logger: &mut Logger) -> Result<i32> {
    // Blocked before the clone so no signal meant for the container is lost.
    let forwarder = if args.detach {
        None
    } else {
        Some(Forwarder::block()?)
    };
    let mut c = create_container(
        root,
        &Creation::new(&args.bundle, &args.id, args.detach),
        logger,
    )?;
    let console = c.take_console();
    if let Err(e) = c.start() {
        let _ = c.delete(true);
        return Err(e.into());
    }
    let Some(forwarder) = forwarder else {
        return Ok(0);
    };
    let status = relay::wait(&forwarder, console, c.pid());
    if !args.keep {
        c.delete(true)?;
    }
    Ok(status?.code())
}

/// The state document runc prints (runtime-spec state plus rootfs, created, owner).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDoc {
    oci_version: String,
    id: String,
    pid: i32,
    status: Status,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    annotations: HashMap<String, String>,
    owner: String,
}

impl StateDoc {
    fn of(c: &Container) -> StateDoc {
        let s = &c.state;
        let owner = s
            .owner
            .parse::<u32>()
            .ok()
            .and_then(|uid| nix::unistd::User::from_uid(uid.into()).ok().flatten())
            .map_or_else(|| s.owner.clone(), |u| u.name);
        StateDoc {
            oci_version: s.oci_version.clone(),
            id: s.id.clone(),
            pid: if s.status == Status::Stopped {
                0
            } else {
                s.pid
            },
            status: s.status,
            bundle: s.bundle.clone(),
            rootfs: s.rootfs.clone(),
            created: s.created.clone(),
            annotations: s.annotations.clone(),
            owner,
        }
    }
}

fn state(root: &Path, id: &str) -> Result<()> {
    let c = load(root, id)?;
    println!("{}", serde_json::to_string_pretty(&StateDoc::of(&c))?);
    Ok(())
}

/// A signal number from a name (`KILL`, `SIGKILL`, `kill`), a real-time signal
/// (`RTMIN`, `SIGRTMIN+3`, `RTMAX-1`) or a number (1 to `SIGRTMAX`), as runc and
/// kill(1) take them.
pub fn parse_signal(text: &str) -> Result<i32> {
    let unknown = || anyhow!("unknown signal {text:?}");
    let valid = |n: i32| (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    if let Ok(n) = text.parse::<i32>() {
        return valid(n).ok_or_else(unknown);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let realtime = |base: i32, rest: &str| -> Option<i32> {
        let n = match rest.as_bytes().first() {
            None => Some(base),
            Some(b'+') => rest[1..].parse::<i32>().ok().map(|n| base + n),
            Some(b'-') => rest[1..].parse::<i32>().ok().map(|n| base - n),
            _ => None,
        }?;
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&n)
            .then_some(n)
    };
    let number = if let Some(rest) = name.strip_prefix("RTMIN") {
        realtime(libc::SIGRTMIN(), rest)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        realtime(libc::SIGRTMAX(), rest)
    } else {
        format!("SIG{name}")
            .parse::<Signal>()
            .ok()
            .map(|s| s as i32)
    };
    number.and_then(valid).ok_or_else(unknown)
}

fn kill(root: &Path, args: &KillArgs) -> Result<()> {
    let signal = parse_signal(&args.signal)?;
    let mut c = load(root, &args.id)?;
    if args.all {
        return resources::kill_all(&c, signal);
    }
    if c.state.status == Status::Stopped {
        bail!("container not running");
    }
    match Signal::try_from(signal) {
        Ok(sig) => Ok(c.kill(sig)?),
        // Real-time signals have no `Signal` value; the state was checked on load
        // (the recorded init, not a process that reused its pid).
        Err(_) => nix::errno::Errno::result(
            // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
            unsafe { libc::kill(c.pid(), signal) },
        )
        .map(drop)
        .with_context(|| format!("kill {}", args.signal)),
    }
}

fn delete(root: &Path, args: &DeleteArgs) -> Result<()> {
    let c = match Container::load(root, &args.id) {
        Ok(c) => c,
        Err(Error::NotFound(_)) => {
            // As runc: a directory without state is debris of an aborted create.
            let dir = root.join(&args.id);
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            if args.force {
                return Ok(());
            }
            bail!("container does not exist");
        }
        Err(e) => return Err(e.into()),
    };
    if !args.force && matches!(c.state.status, Status::Running | Status::Paused) {
        bail!(
            "cannot delete container {} that is not stopped: {}",
            args.id,
            c.state.status
        );
    }
    Ok(c.delete(args.force)?)
}

fn ps(root: &Path, args: &PsArgs) -> Result<()> {
    let c = load(root, &args.id)?;
    let pids = resources::pids(&c)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    // As runc: the host's ps(1) with the given arguments (default `-ef`), its header
    // and the lines of the container's processes.
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}: {}",
            ps_args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!(
        "{}",
        filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?
    );
    Ok(())
}

/// The header of ps(1)'s output and its lines whose PID column is one of `pids`.
fn filter_ps(output: &str, pids: &[i32]) -> Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|f| f == "PID")
        .ok_or_else(|| anyhow!("couldn't find PID field in ps output"))?;
    let mut text = format!("{header}\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let pid: i32 = line
            .split_whitespace()
            .nth(column)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("unable to parse pid: {line:?}"))?;
        if pids.contains(&pid) {
            text.push_str(line);
            text.push('\n');
        }
    }
    Ok(text)
}

fn list(root: &Path, args: &ListArgs) -> Result<()> {
    let containers = Container::list(root)?;
    if args.quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(());
    }
    match args.format {
        Format::Json => {
            let docs: Vec<StateDoc> = containers.iter().map(StateDoc::of).collect();
            // runc encodes an empty list as `null` (a nil Go slice); clients expect it.
            let docs = (!docs.is_empty()).then_some(docs);
            println!("{}", serde_json::to_string(&docs)?);
        }
        Format::Table => {
            println!(
                "{:<24} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for c in &containers {
                let doc = StateDoc::of(c);
                println!(
                    "{:<24} {:<8} {:<10} {:<40} {:<32} {}",
                    doc.id,
                    doc.pid,
                    doc.status.to_string(),
                    doc.bundle.display(),
                    doc.created,
                    doc.owner
                );
            }
        }
    }
    Ok(())
}

fn pause(root: &Path, id: &str) -> Result<()> {
    let mut c = load(root, id)?;
    if c.state.status != Status::Running {
        bail!("container not running");
    }
    Ok(c.pause()?)
}

fn resume(root: &Path, id: &str) -> Result<()> {
    let mut c = load(root, id)?;
    if c.state.status != Status::Paused {
        bail!("container not paused");
    }
    Ok(c.resume()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("9").expect("9"), libc::SIGKILL);
        assert_eq!(parse_signal("KILL").expect("KILL"), libc::SIGKILL);
        assert_eq!(parse_signal("sigterm").expect("sigterm"), libc::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn real_time_signals_parse() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(parse_signal("RTMIN").expect("RTMIN"), min);
        assert_eq!(parse_signal("SIGRTMIN+3").expect("+3"), min + 3);
        assert_eq!(parse_signal("rtmax-1").expect("-1"), max - 1);
        assert_eq!(parse_signal(&max.to_string()).expect("max"), max);
        assert!(parse_signal("RTMIN+99").is_err());
        assert!(parse_signal("RTMAX+1").is_err());
        assert!(parse_signal("RTMINX").is_err());
    }

    #[test]
    fn ps_output_keeps_the_header_and_the_containers_lines() {
        let out = "UID PID PPID C STIME TTY TIME CMD\n\
                   root 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                   root 42 1 0 10:01 ? 00:00:00 sleep 1000\n";
        assert_eq!(
            filter_ps(out, &[42]).expect("filter"),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:01 ? 00:00:00 sleep 1000\n"
        );
        assert!(filter_ps("UID CMD\n", &[1]).is_err());
    }

    #[test]
    fn detached_terminal_needs_a_socket() {
        let err = check_console(true, false, true).expect_err("no socket");
        assert!(err.to_string().contains("cannot allocate tty"), "{err}");
        assert!(check_console(true, false, false).is_ok());
        assert!(check_console(true, true, true).is_ok());
        assert!(check_console(false, true, true).is_err());
    }

    #[test]
    fn pid_file_is_written_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pid");
        write_pid_file(&path, 1234).expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "1234");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}
