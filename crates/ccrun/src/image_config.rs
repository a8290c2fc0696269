//! Applies an image's configuration the way `docker run` does: `Env` merged with
//! `-e`/`--env-file`, `Entrypoint` + `Cmd` under `--entrypoint` and trailing
//! arguments, `WorkingDir`, `User`, `StopSignal`, labels, ports and volumes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::image::ImageConfiguration;

/// The parts of an image config that shape a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// `Env`.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
    /// `ExposedPorts` keys (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// `Volumes` keys.
    pub volumes: Vec<String>,
}

impl ImageDefaults {
    /// Reads the defaults out of an image configuration.
    pub fn from_config(image: &ImageConfiguration) -> ImageDefaults {
        let Some(c) = image.config() else {
            return ImageDefaults::default();
        };
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        ImageDefaults {
            env: c.env().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            working_dir: non_empty(c.working_dir()),
            user: non_empty(c.user()),
            stop_signal: non_empty(c.stop_signal()),
            labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
            exposed_ports: c.exposed_ports().clone().unwrap_or_default(),
            volumes: c.volumes().clone().unwrap_or_default(),
        }
    }
}

/// Docker's rule for the process's argv: the entrypoint (`--entrypoint` replaces the
/// image's, and an empty one clears it) followed by the trailing arguments, or by the
/// image's `Cmd` when there are none — unless `--entrypoint` was given, which drops
/// the image's `Cmd` too.
pub fn command(
    entrypoint_flag: Option<&str>,
    args: &[String],
    image: &ImageDefaults,
) -> Result<Vec<String>> {
    let entrypoint = entrypoint(entrypoint_flag, image)?;
    let cmd = if !args.is_empty() {
        args.to_vec()
    } else if entrypoint_flag.is_some() {
        Vec::new()
    } else {
        image.cmd.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd; give a command");
    }
    Ok(argv)
}

/// The entrypoint part of [`command`]: `--entrypoint` (empty clears it) or the image's.
pub fn entrypoint(entrypoint_flag: Option<&str>, image: &ImageDefaults) -> Result<Vec<String>> {
    Ok(match entrypoint_flag {
        Some("") => Vec::new(),
        Some(e) if e.trim_start().starts_with('[') => serde_json::from_str::<Vec<String>>(e)
            .with_context(|| format!("--entrypoint {e:?} is not a JSON array of strings"))?,
        Some(e) => vec![e.to_string()],
        None => image.entrypoint.clone(),
    })
}

/// `KEY=VALUE` items with later ones replacing earlier ones of the same key, keeping
/// the first position of each key (image env first, then the flags).
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in base.iter().chain(overrides) {
        let key = item.split('=').next().unwrap_or(item);
        match out
            .iter_mut()
            .find(|e| e.split('=').next().unwrap_or(e) == key)
        {
            Some(slot) => *slot = item.clone(),
            None => out.push(item.clone()),
        }
    }
    out
}

/// Reads an `--env-file`: one `KEY=VALUE` (or bare `KEY`, taken from ccrun's
/// environment) per line; blank lines and `#` comments are skipped.
pub fn read_env_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading env file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().unwrap_or(line);
        if key.is_empty() || key.contains(char::is_whitespace) {
            bail!(
                "{}:{}: invalid variable name {key:?}",
                path.display(),
                n + 1
            );
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// Expands bare `KEY` items from ccrun's own environment (dropped when unset), as
/// Docker does for `-e KEY` and env-file lines.
pub fn expand_from_host(items: &[String]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| {
            if item.contains('=') {
                Some(item.clone())
            } else {
                std::env::var(item).ok().map(|v| format!("{item}={v}"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageDefaults {
        ImageDefaults {
            entrypoint: s(entrypoint),
            cmd: s(cmd),
            ..ImageDefaults::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let img = image(&["/entry", "-x"], &["default"]);
        assert_eq!(
            command(None, &[], &img).unwrap(),
            s(&["/entry", "-x", "default"])
        );
        assert_eq!(
            command(None, &s(&["a", "b"]), &img).unwrap(),
            s(&["/entry", "-x", "a", "b"])
        );
        assert_eq!(command(Some("/other"), &[], &img).unwrap(), s(&["/other"]));
        assert_eq!(
            command(Some("/other"), &s(&["z"]), &img).unwrap(),
            s(&["/other", "z"])
        );
        assert_eq!(command(Some(""), &s(&["ls"]), &img).unwrap(), s(&["ls"]));
        assert_eq!(
            command(Some(r#"["sh","-c"]"#), &s(&["echo hi"]), &img).unwrap(),
            s(&["sh", "-c", "echo hi"])
        );
        let cmd_only = image(&[], &["sh"]);
        assert_eq!(command(None, &[], &cmd_only).unwrap(), s(&["sh"]));
        assert_eq!(command(None, &s(&["ls"]), &cmd_only).unwrap(), s(&["ls"]));
        assert!(command(None, &[], &image(&[], &[])).is_err());
        assert!(command(Some(""), &[], &cmd_only).is_err());
    }

    #[test]
    fn flags_override_image_env_in_place() {
        let merged = merge_env(&s(&["PATH=/bin", "A=1", "B=2"]), &s(&["B=3", "C=4", "A=5"]));
        assert_eq!(merged, s(&["PATH=/bin", "A=5", "B=3", "C=4"]));
    }

    #[test]
    fn env_file_skips_comments_and_rejects_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "# comment\n\nA=1\nB=x=y\nBARE\n").unwrap();
        assert_eq!(read_env_file(&good).unwrap(), s(&["A=1", "B=x=y", "BARE"]));
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "MY VAR=1\n").unwrap();
        assert!(read_env_file(&bad).is_err());
    }
}
