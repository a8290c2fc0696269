//! `exec`: a new process in a running container through [`Container::exec`], from a
//! `--process` JSON file (what conmon and containerd's shim pass) or from ARGS and
//! flags on top of the container's own `process` (as runc does).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_runtime::{console, Container, ExecOptions, ExecPlacement, Forwarder, Status};
use oci_spec::runtime::{Process, Spec};
use serde_json::{json, Value};

use crate::cli::ExecArgs;
use crate::commands::{check_console, load, write_pid_file};
use crate::relay;

/// Runs `exec`; detached it returns 0 once the process runs, else its exit code.
pub fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    let c = load(root, &args.id)?;
    match c.state.status {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => bail!("cannot exec in a stopped container"),
    }
    let placement = ExecPlacement {
        allow_paused: args.ignore_paused,
        sub_cgroups: args
            .cgroup
            .iter()
            .map(|spec| parse_cgroup(spec))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect(),
    };
    let process = match &args.process {
        Some(path) => read_process(path)?,
        None => process_from_args(&c, args)?,
    };
    let terminal = process.terminal() == Some(true);
    check_console(terminal, args.console_socket.is_some(), args.detach)?;
    let forwarder = if args.detach {
        None
    } else {
        Some(Forwarder::block()?)
    };
    let mut started = c.exec_placed(
        ExecOptions {
            process,
            stdio: None,
            preserve_fds: args.preserve_fds,
        },
        &placement,
    )?;
    let result = (|| -> Result<()> {
        if let Some(socket) = &args.console_socket {
            // Only taken when it goes to the socket: foreground exec relays it below.
            if let Some(master) = started.console.take() {
                console::send_to_socket(socket, std::os::fd::AsFd::as_fd(&master))?;
            }
        }
        if let Some(path) = &args.pid_file {
            write_pid_file(path, started.pid)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(started.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        if forwarder.is_some() {
            let _ = started.wait();
        }
        return Err(e);
    }
    match forwarder {
        // The process is our child; once we exit it is reparented to the caller's
        // subreaper (conmon, the shim), which reaps it.
        None => Ok(0),
        Some(forwarder) => Ok(relay::wait(&forwarder, started.console.take(), started.pid)?.code()),
    }
}

/// runc's `exec --cgroup [CONTROLLER[,CONTROLLER…]:]PATH`: (controller, path) pairs, one
/// with an empty controller for every hierarchy.
fn parse_cgroup(spec: &str) -> Result<Vec<(String, PathBuf)>> {
    let (controllers, path) = match spec.split_once(':') {
        Some((c, p)) => (c, p),
        None => ("", spec),
    };
    if path.is_empty() {
        bail!("--cgroup {spec:?}: no cgroup path");
    }
    Ok(controllers
        .split(',')
        .map(|c| (c.to_string(), PathBuf::from(path)))
        .collect())
}

fn read_process(path: &Path) -> Result<Process> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading process {}", path.display()))?;
    Ok(ccrun_runtime::spec::parse_process(
        &text,
        &path.display().to_string(),
    )?)
}

/// The container's own `process` (env, user, capabilities, rlimits …) with what the
/// command line changes: args, terminal, cwd, extra env, user, groups, caps,
/// no_new_privs.
fn process_from_args(c: &Container, args: &ExecArgs) -> Result<Process> {
    if args.args.is_empty() {
        bail!("exec needs ARGS or --process");
    }
    let config = c.state.bundle.join("config.json");
    let base = match Spec::load(&config) {
        Ok(spec) => spec.process().clone().unwrap_or_default(),
        Err(_) => Process::default(),
    };
    let mut p = serde_json::to_value(&base)?;
    p["args"] = json!(args.args);
    p["terminal"] = json!(args.tty);
    if args.tty {
        if let Some((rows, cols)) = crate::relay::terminal_size(std::io::stdin().as_fd()) {
            p["consoleSize"] = json!({"height": rows, "width": cols});
        }
    }
    if let Some(cwd) = &args.cwd {
        p["cwd"] = json!(cwd);
    }
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for var in &args.env {
        let key = var.split('=').next().unwrap_or(var);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(var.clone());
    }
    p["env"] = json!(env);
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .with_context(|| format!("--user {user}: not UID[:GID]"))?;
        let gid: u32 = match gid {
            Some(g) => g
                .parse()
                .with_context(|| format!("--user {user}: not UID[:GID]"))?,
            None => 0,
        };
        p["user"]["uid"] = json!(uid);
        p["user"]["gid"] = json!(gid);
    }
    if !args.additional_gids.is_empty() {
        p["user"]["additionalGids"] = json!(args.additional_gids);
    }
    if !args.cap.is_empty() {
        if !p["capabilities"].is_object() {
            p["capabilities"] = json!({});
        }
        for set in ["bounding", "effective", "permitted"] {
            let list = &mut p["capabilities"][set];
            if !list.is_array() {
                *list = json!([]);
            }
            if let Value::Array(items) = list {
                for cap in &args.cap {
                    let name = cap.to_ascii_uppercase();
                    let name = if name.starts_with("CAP_") {
                        name
                    } else {
                        format!("CAP_{name}")
                    };
                    if !items.iter().any(|v| v.as_str() == Some(&name)) {
                        items.push(json!(name));
                    }
                }
            }
        }
    }
    if args.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    serde_json::from_value(p).context("building the exec process")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_flags_name_controllers_and_a_path() {
        assert_eq!(
            parse_cgroup("sub").expect("plain"),
            [(String::new(), PathBuf::from("sub"))]
        );
        assert_eq!(
            parse_cgroup("cpu,memory:a/b").expect("controllers"),
            [
                ("cpu".to_string(), PathBuf::from("a/b")),
                ("memory".to_string(), PathBuf::from("a/b"))
            ]
        );
        assert!(parse_cgroup("memory:").is_err());
    }
}
