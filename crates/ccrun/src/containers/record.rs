//! One container's record: what it was created from and what happened to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// File name of the record inside the container directory.
pub const RECORD_FILE: &str = "container.json";

/// Lifecycle status, as `docker ps` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up, never started.
    Created,
    /// Its process is alive.
    Running,
    /// Its process ended (see `exit_code`).
    Exited,
    /// Its process ended unobserved (its monitor was gone), see `error`.
    Dead,
}

impl Status {
    /// The lowercase name Docker uses (`created`, `running`, `exited`, `dead`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// `--restart`: what the monitor does when the container's process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    /// Never restart (default).
    #[default]
    No,
    /// Restart when it exits with a non-zero code, at most `max_retries` times (0: no limit).
    OnFailure {
        /// Restart limit; 0 means unlimited.
        max_retries: u32,
    },
    /// Always restart, unless stopped by `ccrun stop`/`kill`.
    Always,
    /// Like `always`; kept distinct for Docker compatibility of `inspect`.
    UnlessStopped,
}

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsSource {
    /// An image's layers (lowest first) under an overlayfs snapshot in the container dir.
    Image {
        /// Unpacked layer directories, lowest first.
        layers: Vec<PathBuf>,
    },
    /// A directory given with `--rootfs`, used in place.
    Dir(PathBuf),
}

/// Everything ccrun knows about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The image as the user named it (or the `--rootfs` directory).
    pub image: String,
    /// The image id (config digest), for images.
    pub image_id: Option<String>,
    /// The process's argv.
    pub command: Vec<String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Current status.
    pub status: Status,
    /// PID of the container's init while running (host pid namespace).
    pub pid: i32,
    /// Its start time (from /proc), to tell a reused pid apart.
    pub pid_start_time: u64,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// When its process started.
    pub started_at: Option<String>,
    /// When its process ended.
    pub finished_at: Option<String>,
    /// Root filesystem source.
    pub rootfs: RootfsSource,
    /// `--rm`: remove when it exits.
    pub auto_remove: bool,
    /// Signal that stops it (image `StopSignal` or `--stop-signal`).
    pub stop_signal: Option<String>,
    /// Labels (image labels overridden by `--label`).
    pub labels: BTreeMap<String, String>,
    /// Ports the image exposes (recorded for port publishing).
    pub exposed_ports: Vec<String>,
    /// Volumes the image declares (recorded for volume handling).
    pub volumes: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `--init`: a minimal init is PID 1.
    #[serde(default)]
    pub init: bool,
    /// `--restart`.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// How often the monitor restarted it.
    #[serde(default)]
    pub restart_count: u32,
    /// Set by `stop`/`kill` so that the restart policy leaves it stopped.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// `--stop-timeout`: seconds between the stop signal and SIGKILL [default: 10].
    #[serde(default)]
    pub stop_timeout: Option<u32>,
    /// PID of the process watching it (the monitor, or a foreground ccrun) while running.
    #[serde(default)]
    pub monitor_pid: i32,
    /// Its start time, to tell a reused pid apart.
    #[serde(default)]
    pub monitor_start_time: u64,
    /// Why the container is dead, or why its last start failed.
    #[serde(default)]
    pub error: Option<String>,
    /// `--network`, `--ip`, `-p`.
    #[serde(default)]
    pub network: NetworkChoice,
    /// Where it is attached while it runs (address, veth, published ports).
    #[serde(default)]
    pub attachment: Option<ccrun_net::Attachment>,
    /// The hostname (for `/etc/hosts`).
    #[serde(default)]
    pub hostname: String,
    /// `--add-host` entries (name, address) for `/etc/hosts`.
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--log-opt max-size`: rotate the log file at this size (bytes).
    #[serde(default = "default_log_max_size")]
    pub log_max_size: u64,
    /// The volumes mounted into it (named and anonymous), in mount order.
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    /// The `-v` arguments that named a source (host path or volume), as given; Docker
    /// shows them as `HostConfig.Binds`.
    #[serde(default)]
    pub binds: Vec<String>,
    /// The leading words of `command` that are the entrypoint (the rest is the image's
    /// `Cmd` or the arguments), shown apart by `inspect` as Docker does.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Flags kept only to be shown by `inspect` (see [`HostFlags`]).
    #[serde(default)]
    pub host_flags: HostFlags,
    /// The other `run`/`create` settings (see [`super::options`]).
    #[serde(default)]
    pub options: super::options::RunOptions,
    /// Healthcheck state of the current or last run (see [`super::health`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::HealthState>,
    /// Frozen by `pause` (while running).
    #[serde(default)]
    pub paused: bool,
    /// Its own host id range under `--userns auto`: allocated with the record under
    /// the store lock, released with it (see [`crate::idranges`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_range: Option<crate::idranges::IdRange>,
}

/// Flags as given that `inspect` shows in `HostConfig`: the spec holds their effect
/// but not their spelling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostFlags {
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `-P`.
    pub publish_all: bool,
    /// `--mount`, as given.
    pub mounts: Vec<String>,
}

/// A volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Where it is mounted in the container.
    pub destination: String,
    /// Made for this container (image `Volumes`, `-v /path`): `rm -v` and `--rm`
    /// remove it with the container.
    pub anonymous: bool,
    /// Mounted read-only.
    pub readonly: bool,
}

/// `--network`: how the container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum NetworkChoice {
    /// The host's network namespace (records from before networking have this).
    #[default]
    Host,
    /// A namespace of its own with loopback only.
    None,
    /// A namespace of its own on a bridge network.
    Bridge {
        /// The network's name.
        network: String,
        /// `--ip`.
        ip: Option<std::net::Ipv4Addr>,
        /// `-p` and `-P` (host port 0: picked when the container starts).
        ports: Vec<ccrun_net::PortMapping>,
        /// `--network-alias`: more names its peers find it by.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        aliases: Vec<String>,
    },
    /// Another container's network namespace (`container:NAME`).
    Container {
        /// That container's id.
        id: String,
    },
}

/// Docker's default stop timeout.
pub const DEFAULT_STOP_TIMEOUT: u32 = 10;

/// Log files rotate at 10 MiB unless `--log-opt max-size` says otherwise.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 << 20;

fn default_log_max_size() -> u64 {
    DEFAULT_LOG_MAX_SIZE
}

/// File name of the container's log (CRI format, see `ccrun_monitor::logfile`).
pub const LOG_FILE: &str = "container.log";

/// File name of the exit file the monitor writes when the process ends.
pub const EXIT_FILE: &str = "exit";

impl Record {
    /// The first 12 hex digits, as Docker shows ids.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Docker's state word: `paused` for a paused running container, else the status.
    pub fn state_name(&self) -> &'static str {
        if self.paused && self.status == Status::Running {
            "paused"
        } else {
            self.status.as_str()
        }
    }

    /// Loads the record from a container directory.
    pub fn load(dir: &Path) -> Result<Record> {
        let path = dir.join(RECORD_FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the record atomically (temp file, fsync, rename). A `--rm` container's
    /// record is not fsynced: it is removed when the container ends, and one a crash
    /// left behind only says that the container died.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).context("serialising the record")?;
        replace_file(&dir.join(RECORD_FILE), &bytes, !self.auto_remove)
    }
}

/// Replaces `path` with `bytes` so readers see the old or the new content, never a mix,
/// and the new content is on disk when it returns.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file(path, bytes, true)
}

/// Replaces `path` with `bytes` so readers see the old or the new content, never a mix;
/// with `durable` the content is flushed to disk first (an fsync, a journal commit:
/// milliseconds on a busy disk), so that a crash cannot leave an empty file either.
pub fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))
}
