//! `ccrun exec`: runs a command inside a running container — in all its namespaces
//! and its cgroup, with the environment, working directory and user of its process
//! (from its `config.json`) unless the flags say otherwise — and returns its status.

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context, Result};
use ccrun_runtime::exec::ExecOptions;
use ccrun_runtime::{Container, Forwarder};
use oci_spec::runtime::UserBuilder;

use crate::cli::GlobalOpts;
use crate::containers::launch::load_config;
use crate::containers::{ContainerStore, Status};
use crate::relay::OutputSink;
use crate::{image_config, tty, user};

/// Flags of `exec`.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "ccrun exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    after_help = "Examples:\n  ccrun exec web cat /etc/hostname\n  ccrun exec -it web sh\n  \
                  ccrun exec -e DEBUG=1 -w /tmp -u nobody web env"
)]
pub struct ExecArgs {
    /// Keep stdin open (attach it to the command)
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Run the command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from ccrun's environment)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file (KEY=VALUE lines)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// User to run as: UID, UID:GID, NAME or NAME:GROUP
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Give the command every capability ccrun holds and no seccomp filter
    #[arg(long)]
    pub privileged: bool,
    /// Key sequence for detaching from the command, e.g. ctrl-p,ctrl-q (accepted; see
    /// `run --detach-keys`)
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// The container (name, id or unique id prefix)
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "COMMAND [ARG...]"
    )]
    pub command: Vec<String>,
}

/// Runs `exec`.
pub fn exec(global: &GlobalOpts, args: ExecArgs) -> Result<i32> {
    if let Some(keys) = &args.detach_keys {
        crate::containers::attach::parse_detach_keys(keys)?;
    }
    let interactive = args.interactive && !args.detach;
    if interactive && args.tty && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("the input device is not a TTY; drop -t or run from a terminal");
    }
    let store = ContainerStore::open(&global.store_root())?;
    let record = store.find(&args.container)?;
    if record.status != Status::Running {
        bail!("container {} is not running", record.name);
    }
    let spec = load_config(&store.dir_of(&record.id))?;
    let mut process = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    let mut flag_env = Vec::new();
    for file in &args.env_file {
        flag_env.extend(image_config::read_env_file(file)?);
    }
    flag_env.extend(args.env.iter().cloned());
    let mut env = image_config::merge_env(
        &process.env().clone().unwrap_or_default(),
        &image_config::expand_from_host(&flag_env),
    );
    if args.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".to_string());
    }
    process.set_env(Some(env));
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    if let Some(dir) = &args.workdir {
        process.set_cwd(dir.into());
    }
    if let Some(spec) = &args.user {
        // The container's own /etc/passwd, through its root as its init sees it.
        let root = std::path::PathBuf::from(format!("/proc/{}/root", record.pid));
        let identity = user::resolve(spec, &root)?;
        process.set_user(
            UserBuilder::default()
                .uid(identity.uid)
                .gid(identity.gid)
                .additional_gids(identity.additional_gids)
                .build()?,
        );
    }
    // The process's own capabilities follow its user, as with Docker: the container's
    // bounding set, held only by root.
    let bounding: Vec<_> = if args.privileged {
        // Docker's exec --privileged: every capability, whatever the container has.
        crate::security::capabilities(&[], &[], true)?
    } else {
        process
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().clone())
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    process.set_capabilities(Some(crate::security::capabilities_for_user(
        &bounding,
        process.user().uid(),
    )?));
    let container = Container::load(&global.state_root(), &record.id)
        .with_context(|| format!("container {} has no runtime state", record.name))?;
    let devnull = std::fs::File::open("/dev/null").context("opening /dev/null")?;
    let null = devnull.as_raw_fd();
    // The process gets ccrun's own stdout and stderr when they are pipes or terminals;
    // anything else (a file, a socket) is relayed through pipes of its own, which it
    // may reopen as /dev/stdout in its user namespace, as under Docker.
    let relay = if args.detach || args.tty || [1, 2].into_iter().all(pipe_or_terminal) {
        None
    } else {
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        Some(([out_r, err_r], [out_w, err_w]))
    };
    let (out, err) = relay.as_ref().map_or((1, 2), |(_, [w_out, w_err])| {
        (w_out.as_raw_fd(), w_err.as_raw_fd())
    });
    let stdio = if args.detach {
        Some([null, null, null])
    } else if args.tty {
        None
    } else if interactive {
        Some([0, out, err])
    } else {
        Some([null, out, err])
    };
    // Blocked before the process exists so that no signal meant for it is lost.
    let forwarder = Forwarder::block()?;
    let options = ExecOptions {
        process,
        stdio,
        preserve_fds: 0,
    };
    let mut started = if args.privileged {
        container.exec_unconfined(options)?
    } else {
        container.exec(options)?
    };
    drop(devnull);
    if args.detach {
        return Ok(0);
    }
    if let Some(([out, err], writers)) = relay {
        drop(writers);
        let status = crate::relay::relay_pipes(
            &forwarder,
            out,
            err,
            started.pid,
            &mut OutputSink::stdio_only(),
            true,
        )?;
        return Ok(status.code());
    }
    let status = match started.console.take() {
        Some(master) => {
            tty::sync_window_size(master.as_fd());
            let raw = if interactive {
                tty::RawMode::enter()?
            } else {
                None
            };
            let status = tty::relay(
                &forwarder,
                &master,
                started.pid,
                interactive,
                &mut OutputSink::stdio_only(),
            );
            drop(raw);
            status?
        }
        None => forwarder.forward_until_exit(started.pid)?,
    };
    Ok(status.code())
}

/// Whether fd `fd` is a pipe or a character device (a terminal, /dev/null).
fn pipe_or_terminal(fd: i32) -> bool {
    nix::sys::stat::fstat(fd)
        .is_ok_and(|st| matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFCHR))
}
