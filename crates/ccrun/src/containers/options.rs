//! What `run`/`create` flags beyond the basic ones leave in a container's record: the
//! log driver, namespaces shared with the host or other containers, DNS and hosts
//! settings, the networks a container was connected to later (`network connect`), and
//! the like. Kept in one struct so the record stays readable and old records (without
//! it) load with Docker's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::health::HealthConfig;

/// `--log-driver`: how the container's output is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    /// CRI lines (podman's `k8s-file`), the default.
    #[default]
    K8sFile,
    /// Docker's JSON lines (`{"log":…,"stream":…,"time":…}`).
    JsonFile,
    /// Nothing is stored; `logs` has nothing to read.
    None,
}

impl LogDriver {
    /// The driver's name, as given to `--log-driver`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogDriver::K8sFile => "k8s-file",
            LogDriver::JsonFile => "json-file",
            LogDriver::None => "none",
        }
    }

    /// The log file format the monitor writes, `None` for no log at all.
    pub fn format(self) -> Option<ccrun_monitor::logfile::Format> {
        match self {
            LogDriver::K8sFile => Some(ccrun_monitor::logfile::Format::Cri),
            LogDriver::JsonFile => Some(ccrun_monitor::logfile::Format::Json),
            LogDriver::None => None,
        }
    }
}

/// A network the container joined with `network connect` (besides the one it was
/// created on), attached again at every start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedNetwork {
    /// The network's name.
    pub network: String,
    /// `--ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--alias`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Its interface in the container (`eth1`, …), chosen when it was connected.
    pub ifname: String,
}

/// Settings from the `run`/`create` flags that the record keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// The healthcheck: the image's `HEALTHCHECK` merged with the `--health-*` flags;
    /// `None` with `--no-healthcheck` or when neither gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `--log-driver`.
    pub log_driver: LogDriver,
    /// `--log-opt max-file`: how many log files are kept, the one written included.
    pub log_max_files: u32,
    /// `--log-opt` as given (for `inspect`).
    pub log_opts: BTreeMap<String, String>,
    /// `--detach-keys` (kept for attaching; validated, not used yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detach_keys: Option<String>,
    /// `--annotation`, also put into the runtime spec.
    pub annotations: BTreeMap<String, String>,
    /// `--domainname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// `--dns`, `--dns-search`, `--dns-option` as given.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--link` in Docker's form `/other:/me/alias`.
    pub links: Vec<String>,
    /// `--mac-address`: the MAC of the container's interface on its network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// `--group-add` as given.
    pub group_add: Vec<String>,
    /// `--pid`: `""` (private), `host` or `container:ID`.
    pub pid_mode: String,
    /// `--ipc`: `private`, `shareable`, `none`, `host` or `container:ID`.
    pub ipc_mode: String,
    /// `--uts`: `""` (private), `host` or `container:ID`.
    pub uts_mode: String,
    /// `--cgroupns`: `private` or `host`.
    pub cgroupns_mode: String,
    /// `--cgroup-parent`: the container's cgroup is `<parent>/<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `--volumes-from` as given.
    pub volumes_from: Vec<String>,
    /// `-a`: the streams a foreground run shows (`stdin`, `stdout`, `stderr`);
    /// empty for all of them.
    pub attach: Vec<String>,
    /// `--sig-proxy=false`: a foreground run does not pass signals on.
    pub no_sig_proxy: bool,
    /// Networks added with `network connect`.
    pub networks: Vec<ConnectedNetwork>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            healthcheck: None,
            log_driver: LogDriver::default(),
            log_max_files: DEFAULT_LOG_MAX_FILES,
            log_opts: BTreeMap::new(),
            detach_keys: None,
            annotations: BTreeMap::new(),
            domainname: None,
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            links: Vec::new(),
            mac_address: None,
            group_add: Vec::new(),
            pid_mode: String::new(),
            ipc_mode: "private".to_string(),
            uts_mode: String::new(),
            cgroupns_mode: "private".to_string(),
            cgroup_parent: None,
            volumes_from: Vec::new(),
            attach: Vec::new(),
            no_sig_proxy: false,
            networks: Vec::new(),
        }
    }
}

/// Log files kept unless `--log-opt max-file` says otherwise: the one written and one
/// rotated file, as ccrun always did.
pub const DEFAULT_LOG_MAX_FILES: u32 = 2;

impl RunOptions {
    /// Whether a foreground run shows `stream` (`stdout` or `stderr`).
    pub fn shows(&self, stream: &str) -> bool {
        self.attach.is_empty() || self.attach.iter().any(|s| s == stream)
    }

    /// The container's cgroup path: `/ccrun/<id>`, or `<parent>/<id>` with
    /// `--cgroup-parent`.
    pub fn cgroup_path(&self, id: &str) -> String {
        match &self.cgroup_parent {
            Some(parent) => format!("/{}/{id}", parent.trim_matches('/')),
            None => ccrun_runtime::default_cgroup_path(id),
        }
    }
}
