//! OCI lifecycle hooks. Each hook is a program run with its own args and env and the
//! container's state JSON on stdin, killed when it outlives its `timeout`. Where they run:
//! `prestart` and `createRuntime` in the runtime's namespaces once the container's
//! namespaces exist (the init waits for them before `pivot_root`), `createContainer`
//! in the init just after them (path resolved in the runtime's mount namespace, still
//! visible before `pivot_root`), `startContainer` in the init once `start` opened the
//! exec gate (path resolved in the container), `poststart` by `start` once the gate is
//! open, and `poststop` by `delete` after the container is gone. A failing create-time
//! hook fails create; a failing `startContainer` hook ends the container before its
//! program runs (as with runc, `start` has returned by then); `poststart` and
//! `poststop` failures are only warnings, as the runtime spec says. Hooks without
//! `env` that run in the container get its `process.env`.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::state::Status;

/// File in the state directory keeping the hooks `start` and `delete` run, which may be
/// called from another process than `create`.
pub const HOOKS_FILE: &str = "hooks.json";

/// The lifecycle points at which hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Deprecated, run together with (before) `createRuntime`.
    Prestart,
    /// In the runtime's namespaces, after the container's namespaces exist.
    CreateRuntime,
    /// In the container's namespaces, before `pivot_root`.
    CreateContainer,
    /// In the container, after `start`, before the user's program.
    StartContainer,
    /// In the runtime's namespaces, after the user's program started.
    Poststart,
    /// In the runtime's namespaces, after the container was deleted.
    Poststop,
}

impl Stage {
    /// The spec's name of the stage.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    /// The hooks of this stage in `hooks`.
    #[allow(deprecated)] // prestart is deprecated in the spec but still honoured.
    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Stage::Prestart => hooks.prestart(),
            Stage::CreateRuntime => hooks.create_runtime(),
            Stage::CreateContainer => hooks.create_container(),
            Stage::StartContainer => hooks.start_container(),
            Stage::Poststart => hooks.poststart(),
            Stage::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// The state document hooks read on stdin (the runtime spec's state).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState {
    /// The spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Lifecycle status at the time the hook runs.
    pub status: Status,
    /// Host pid of the init (absent once stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Checks the hooks of a spec: absolute paths and positive timeouts.
pub fn validate(hooks: &Hooks) -> Result<()> {
    for stage in [
        Stage::Prestart,
        Stage::CreateRuntime,
        Stage::CreateContainer,
        Stage::StartContainer,
        Stage::Poststart,
        Stage::Poststop,
    ] {
        for (i, hook) in stage.of(hooks).iter().enumerate() {
            let name = format!("hooks.{}[{i}]", stage.name());
            if !hook.path().is_absolute() {
                return Err(Error::InvalidSpec(format!(
                    "{name}.path {} is not absolute",
                    hook.path().display()
                )));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::InvalidSpec(format!(
                    "{name}.timeout must be a positive number of seconds"
                )));
            }
        }
    }
    Ok(())
}

/// True when `hooks` has any hook that runs while the container is created or started
/// (those need the init to stop and wait for them).
pub fn any_during_create(hooks: Option<&Hooks>) -> bool {
    hooks.is_some_and(|h| {
        [
            Stage::Prestart,
            Stage::CreateRuntime,
            Stage::CreateContainer,
            Stage::StartContainer,
        ]
        .iter()
        .any(|s| !s.of(h).is_empty())
    })
}

/// Runs the hooks of `stage` in order; the first failure stops and is returned. A
/// hook without `env` inherits this process's environment.
pub fn run(stage: Stage, hooks: &Hooks, state: &HookState) -> Result<()> {
    run_with_env(stage, hooks, state, None)
}

/// [`run`] for the hooks that run in the container (`createContainer`,
/// `startContainer`): a hook without `env` gets `process_env`, the container's
/// `process.env`, as runc's init (whose environment it is by then) passes it on,
/// rather than the runtime's own host environment.
pub fn run_in_container(
    stage: Stage,
    hooks: &Hooks,
    state: &HookState,
    process_env: &[String],
) -> Result<()> {
    run_with_env(stage, hooks, state, Some(process_env))
}

fn run_with_env(
    stage: Stage,
    hooks: &Hooks,
    state: &HookState,
    default_env: Option<&[String]>,
) -> Result<()> {
    let list = stage.of(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(state)
        .map_err(|e| Error::Setup(format!("encoding state for hooks: {e}")))?;
    for (i, hook) in list.iter().enumerate() {
        run_one(hook, &json, default_env).map_err(|msg| {
            Error::Setup(format!(
                "{} hook #{i} ({}): {msg}",
                stage.name(),
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

/// Runs the hooks of a stage whose failures the spec makes warnings.
pub fn run_warn(stage: Stage, hooks: &Hooks, state: &HookState) {
    if let Err(e) = run(stage, hooks, state) {
        tracing::warn!("{e}");
        eprintln!("ccrun: warning: {e}");
    }
}

fn run_one(
    hook: &Hook,
    state: &[u8],
    default_env: Option<&[String]>,
) -> std::result::Result<(), String> {
    let path = hook.path();
    let mut cmd = Command::new(path);
    let args = hook.args().as_deref().unwrap_or(&[]);
    match args.split_first() {
        Some((argv0, rest)) => {
            cmd.arg0(argv0).args(rest);
        }
        None => {
            cmd.arg0(path);
        }
    }
    // Without `env` the hook inherits the environment of the process running it: the
    // runtime's, or in the container the process's (see `run_in_container`).
    if let Some(env) = hook.env().as_deref().or(default_env) {
        cmd.env_clear();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; that is its business.
        let _ = stdin.write_all(state);
    }
    let status = match hook.timeout() {
        None => child.wait().map_err(|e| format!("waiting: {e}"))?,
        Some(secs) => {
            let deadline = Instant::now() + Duration::from_secs(secs.unsigned_abs());
            let mut pause = Duration::from_millis(1);
            loop {
                match child.try_wait().map_err(|e| format!("waiting: {e}"))? {
                    Some(status) => break status,
                    None if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("timed out after {secs}s"));
                    }
                    None => {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(20));
                    }
                }
            }
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("failed: {status}"))
    }
}

/// Saves the hooks that run after `create` (poststart, poststop) in the state directory.
pub fn save(state_dir: &Path, hooks: &Hooks) -> Result<()> {
    let path = state_dir.join(HOOKS_FILE);
    let bytes = serde_json::to_vec(hooks).map_err(|source| Error::State {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, bytes).map_err(|e| Error::io("writing", &path, e))
}

/// The hooks saved by [`save`], if any.
pub fn load(state_dir: &Path) -> Result<Option<Hooks>> {
    let path = state_dir.join(HOOKS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::State { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{HookBuilder, HooksBuilder};

    fn state() -> HookState {
        HookState {
            oci_version: "1.2.0".into(),
            id: "c1".into(),
            status: Status::Creating,
            pid: Some(42),
            bundle: "/b".into(),
            annotations: HashMap::new(),
        }
    }

    fn sh(script: &str, timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default().path("/bin/sh").args(vec![
            "sh".into(),
            "-c".into(),
            script.into(),
        ]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().expect("hook")
    }

    #[test]
    fn hook_reads_state_on_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let hooks = HooksBuilder::default()
            .create_runtime(vec![sh(&format!("cat > {}", out.display()), None)])
            .build()
            .expect("hooks");
        run(Stage::CreateRuntime, &hooks, &state()).expect("run");
        let text = std::fs::read_to_string(out).expect("out");
        assert_eq!(
            text,
            r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b"}"#
        );
    }

    #[test]
    fn failing_and_slow_hooks_fail() {
        let hooks = HooksBuilder::default()
            .create_runtime(vec![sh("exit 3", None)])
            .poststart(vec![sh("sleep 5", Some(1))])
            .build()
            .expect("hooks");
        let err = run(Stage::CreateRuntime, &hooks, &state()).expect_err("exit 3");
        assert!(err.to_string().contains("createRuntime hook #0"), "{err}");
        let start = Instant::now();
        let err = run(Stage::Poststart, &hooks, &state()).expect_err("timeout");
        assert!(err.to_string().contains("timed out after 1s"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn hooks_in_the_container_get_the_process_env_unless_they_have_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("env");
        let dump = sh(&format!("env > {}", out.display()), None);
        let mut own = dump.clone();
        own.set_env(Some(vec!["OWN=1".into()]));
        let process_env = ["FROM_PROCESS=yes".to_string(), "PATH=/bin".to_string()];
        for (hook, want, unwanted) in [
            (dump, "FROM_PROCESS=yes", "OWN=1"),
            (own, "OWN=1", "FROM_PROCESS=yes"),
        ] {
            let hooks = HooksBuilder::default()
                .start_container(vec![hook])
                .build()
                .expect("hooks");
            run_in_container(Stage::StartContainer, &hooks, &state(), &process_env).expect("run");
            let env = std::fs::read_to_string(&out).expect("env");
            assert!(env.lines().any(|l| l == want), "{env}");
            assert!(!env.lines().any(|l| l == unwanted), "{env}");
            assert!(!env.contains("CARGO"), "the runtime's env leaked: {env}");
        }
    }

    #[test]
    fn relative_paths_and_zero_timeouts_are_invalid() {
        let rel = HookBuilder::default().path("hook").build().expect("hook");
        let hooks = HooksBuilder::default()
            .poststop(vec![rel])
            .build()
            .expect("hooks");
        assert!(validate(&hooks).is_err());
        let hooks = HooksBuilder::default()
            .poststop(vec![sh("true", Some(0))])
            .build()
            .expect("hooks");
        assert!(validate(&hooks).is_err());
    }
}
