//! A container as `docker inspect` shows it, built from its record and the OCI
//! `config.json` it was run with (the process, hostname, mounts and cgroup
//! resources actually used).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use serde::Serialize;

use super::record::{RestartPolicy, VolumeMount, LOG_FILE};
use super::{ContainerStore, Record, RootfsSource, Status};

/// Docker's zero time, shown for events that did not happen.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What Docker calls a `ContainerJSON`, limited to what ccrun knows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDetails {
    /// Full id.
    pub id: String,
    /// Creation time.
    pub created: String,
    /// The program run (argv[0]).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Lifecycle state.
    pub state: State,
    /// The image id (empty for `--rootfs` containers).
    pub image: String,
    /// The image as the user named it.
    pub image_name: String,
    /// The container's `/etc/resolv.conf` on the host.
    pub resolv_conf_path: String,
    /// The container's `/etc/hostname` on the host.
    pub hostname_path: String,
    /// The container's `/etc/hosts` on the host.
    pub hosts_path: String,
    /// The container's log file.
    pub log_path: String,
    /// `/name`.
    pub name: String,
    /// Restarts by the restart policy.
    pub restart_count: u32,
    /// Storage driver.
    pub driver: String,
    /// Always `linux`.
    pub platform: String,
    /// SELinux mount label (unused).
    pub mount_label: String,
    /// SELinux process label (unused).
    pub process_label: String,
    /// AppArmor profile (unused).
    pub app_armor_profile: String,
    /// Exec sessions (none tracked).
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    /// How it was set up.
    pub host_config: HostConfig,
    /// Where its filesystem lives.
    pub graph_driver: GraphDriver,
    /// Bytes written by the container (with `--size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    /// Bytes of its whole root filesystem (with `--size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<u64>,
    /// Volumes, bind mounts and tmpfs mounts beyond the standard ones.
    pub mounts: Vec<MountPoint>,
    /// The container's configuration.
    pub config: Config,
    /// Address, gateway, published ports and networks, Docker-style.
    pub network_settings: serde_json::Value,
}

/// `State`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// created, running, exited or dead.
    pub status: &'static str,
    /// Whether its process is alive.
    pub running: bool,
    /// Always false (no pause yet).
    pub paused: bool,
    /// Always false: restarts happen in place.
    pub restarting: bool,
    /// Whether the OOM killer ended it.
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Whether it is dead (ended unobserved).
    pub dead: bool,
    /// Host pid of its init while running, else 0.
    pub pid: i32,
    /// Exit code once it ended (255 when how it ended is unknown).
    pub exit_code: i32,
    /// Why it is dead or failed to start.
    pub error: String,
    /// When its process last started.
    pub started_at: String,
    /// When its process last ended.
    pub finished_at: String,
    /// Healthcheck status, streak and last results (containers with a healthcheck).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::HealthState>,
}

/// Published ports in Docker's shape: `"80/tcp": [{"HostIp": …, "HostPort": …}]`.
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

/// One host binding of a port.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// Host address (`""` or `0.0.0.0`: all).
    pub host_ip: String,
    /// Host port (`""` when it is picked at start).
    pub host_port: String,
}

/// `HostConfig`: the flags that shaped the container, with Docker's field names and
/// types (fields ccrun has no such setting for keep Docker's zero values).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    /// The `-v` arguments naming a host path or a volume, as given.
    pub binds: Option<Vec<String>>,
    /// Unused (`--cidfile`).
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    /// Log driver and options.
    pub log_config: LogConfig,
    /// `bridge`, a network's name, `host`, `none` or `container:ID`.
    pub network_mode: String,
    /// `-p`: container port → host bindings as asked for.
    pub port_bindings: PortMap,
    /// `--restart`.
    pub restart_policy: RestartPolicyJson,
    /// `--rm`.
    pub auto_remove: bool,
    /// Always empty: volumes use the local driver.
    pub volume_driver: String,
    /// Unused (`--volumes-from`).
    pub volumes_from: Option<Vec<String>>,
    /// Terminal size at creation (unused).
    pub console_size: [u32; 2],
    /// `--cap-add`.
    pub cap_add: Option<Vec<String>>,
    /// `--cap-drop`.
    pub cap_drop: Option<Vec<String>>,
    /// Always `private`: each container has its own cgroup namespace.
    pub cgroupns_mode: String,
    /// `--dns`.
    pub dns: Vec<String>,
    /// Unused (`--dns-option`).
    pub dns_options: Vec<String>,
    /// Unused (`--dns-search`).
    pub dns_search: Vec<String>,
    /// `--add-host`, as `HOST:IP`.
    pub extra_hosts: Option<Vec<String>>,
    /// Unused (`--group-add`).
    pub group_add: Option<Vec<String>>,
    /// Always `private`.
    pub ipc_mode: String,
    /// Unused.
    pub cgroup: String,
    /// Unused (`--link`).
    pub links: Option<Vec<String>>,
    /// `--oom-score-adj`.
    pub oom_score_adj: i32,
    /// Always empty: a PID namespace of its own.
    pub pid_mode: String,
    /// `--privileged`.
    pub privileged: bool,
    /// `-P`.
    pub publish_all_ports: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--security-opt`.
    pub security_opt: Option<Vec<String>>,
    /// `--tmpfs`: destination → options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// Always empty: a UTS namespace of its own.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// `""` (private) or `host`.
    pub userns_mode: String,
    /// Size of `/dev/shm` in bytes.
    pub shm_size: i64,
    /// `--sysctl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<BTreeMap<String, String>>,
    /// The OCI runtime: ccrun's own.
    pub runtime: String,
    /// Always empty (Windows only).
    pub isolation: String,
    /// `--cpu-shares`.
    pub cpu_shares: u64,
    /// `--memory` in bytes (0: unlimited).
    pub memory: i64,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: i64,
    /// Unused (`--cgroup-parent`).
    pub cgroup_parent: String,
    /// Unused (`--blkio-weight`).
    pub blkio_weight: u16,
    /// Unused.
    pub blkio_weight_device: Vec<serde_json::Value>,
    /// Unused.
    pub blkio_device_read_bps: Vec<serde_json::Value>,
    /// Unused.
    pub blkio_device_write_bps: Vec<serde_json::Value>,
    /// Unused.
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Vec<serde_json::Value>,
    /// Unused.
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Vec<serde_json::Value>,
    /// CFS period, when set other than through `--cpus`.
    pub cpu_period: u64,
    /// CFS quota, when set other than through `--cpus`.
    pub cpu_quota: i64,
    /// Unused.
    pub cpu_realtime_period: i64,
    /// Unused.
    pub cpu_realtime_runtime: i64,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`.
    pub cpuset_mems: String,
    /// `--device` mappings.
    pub devices: Vec<serde_json::Value>,
    /// Unused (`--device-cgroup-rule`).
    pub device_cgroup_rules: Option<Vec<String>>,
    /// Unused (`--gpus`).
    pub device_requests: Option<Vec<serde_json::Value>>,
    /// Unused (`--memory-reservation`).
    pub memory_reservation: i64,
    /// `--memory-swap` in bytes (0: unset, -1: unlimited).
    pub memory_swap: i64,
    /// Unused (`--memory-swappiness`).
    pub memory_swappiness: Option<i64>,
    /// Unused (`--oom-kill-disable`).
    pub oom_kill_disable: bool,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// The resource limits the process starts with: `--ulimit`, and the open-files
    /// default ccrun sets (Docker lists only `--ulimit` here).
    pub ulimits: Option<Vec<Ulimit>>,
    /// Unused (Windows only).
    pub cpu_count: i64,
    /// Unused (Windows only).
    pub cpu_percent: i64,
    /// Unused (Windows only).
    #[serde(rename = "IOMaximumIOps")]
    pub io_maximum_iops: u64,
    /// Unused (Windows only).
    #[serde(rename = "IOMaximumBandwidth")]
    pub io_maximum_bandwidth: u64,
    /// `--mount`, in Docker's `{Type, Source, Target, ReadOnly}` shape.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<serde_json::Value>,
    /// Paths masked in `/proc` and `/sys`.
    pub masked_paths: Vec<String>,
    /// Paths made read-only in `/proc` and `/sys`.
    pub readonly_paths: Vec<String>,
    /// `--init`.
    pub init: bool,
}

/// One entry of `HostConfig.Ulimits`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// `nofile`, `nproc`, …
    pub name: String,
    /// Hard limit.
    pub hard: u64,
    /// Soft limit.
    pub soft: u64,
}

/// `HostConfig.LogConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfig {
    /// The log format: CRI lines in a file, as Podman's `k8s-file`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Driver options.
    pub config: BTreeMap<String, String>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicyJson {
    /// no, on-failure, always, unless-stopped.
    pub name: String,
    /// The on-failure limit.
    pub maximum_retry_count: u32,
}

/// `GraphDriver`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    /// `overlay`, or `rootfs` for a `--rootfs` directory used in place.
    pub name: String,
    /// LowerDir, UpperDir, WorkDir, MergedDir (or Dir).
    pub data: BTreeMap<String, String>,
}

/// One entry of `Mounts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host path: the volume's `_data`, the bind's source (empty for tmpfs).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// `local` (volumes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `ro` or empty.
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// Mount propagation of binds.
    pub propagation: String,
}

/// `Config`: the container's own configuration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Config {
    /// Hostname.
    pub hostname: String,
    /// Domain name (unused).
    pub domainname: String,
    /// `uid:gid` the process runs as, empty for root.
    pub user: String,
    /// `-i`.
    pub attach_stdin: bool,
    /// Always true: `run` attaches stdout.
    pub attach_stdout: bool,
    /// Always true: `run` attaches stderr.
    pub attach_stderr: bool,
    /// Ports the image exposes.
    pub exposed_ports: Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// `-i`.
    pub stdin_once: bool,
    /// The environment.
    pub env: Vec<String>,
    /// The command after the entrypoint (the image's `Cmd` or the arguments given).
    pub cmd: Vec<String>,
    /// The image as given.
    pub image: String,
    /// Volumes the image declares.
    pub volumes: Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>>,
    /// Working directory.
    pub working_dir: String,
    /// The entrypoint (`--entrypoint` or the image's), null when there is none.
    pub entrypoint: Option<Vec<String>>,
    /// Unused (image build triggers).
    pub on_build: Option<Vec<String>>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Stop signal, when the image or `--stop-signal` set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    /// The healthcheck in force (image `HEALTHCHECK` and `--health-*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<super::health::HealthConfig>,
}

impl ContainerDetails {
    /// Gathers what `inspect` shows about `record`; `size` adds SizeRw and SizeRootFs.
    pub fn build(store: &ContainerStore, record: &Record, size: bool) -> Result<ContainerDetails> {
        let dir = store.dir_of(&record.id);
        let spec = load_spec(&dir)?;
        let process = spec.as_ref().and_then(|s| s.process().as_ref());
        let file_in_dir = |name: &str| {
            let path = dir.join(name);
            if path.exists() {
                path.display().to_string()
            } else {
                String::new()
            }
        };
        let (sizes, graph_driver) = match &record.rootfs {
            RootfsSource::Image { layers } => (
                size.then(|| {
                    let rw = ccrun_image::tree_size(&dir.join("upper"));
                    let lower: u64 = layers.iter().map(|l| ccrun_image::tree_size(l)).sum();
                    (rw, rw + lower)
                }),
                overlay_driver(&dir, layers),
            ),
            RootfsSource::Dir(path) => (
                size.then(|| (0, ccrun_image::tree_size(path))),
                GraphDriver {
                    name: "rootfs".to_string(),
                    data: BTreeMap::from([("Dir".to_string(), path.display().to_string())]),
                },
            ),
        };
        let user = process
            .map(|p| (p.user().uid(), p.user().gid()))
            .filter(|&ids| ids != (0, 0))
            .map(|(uid, gid)| format!("{uid}:{gid}"))
            .unwrap_or_default();
        Ok(ContainerDetails {
            id: record.id.clone(),
            created: record.created.clone(),
            path: record.command.first().cloned().unwrap_or_default(),
            args: record.command.iter().skip(1).cloned().collect(),
            state: state(record),
            image: record.image_id.clone().unwrap_or_default(),
            image_name: record.image.clone(),
            resolv_conf_path: file_in_dir("resolv.conf"),
            hostname_path: file_in_dir("hostname"),
            hosts_path: file_in_dir("hosts"),
            log_path: dir.join(LOG_FILE).display().to_string(),
            name: format!("/{}", record.name),
            restart_count: record.restart_count,
            driver: graph_driver.name.clone(),
            platform: "linux".to_string(),
            mount_label: String::new(),
            process_label: String::new(),
            app_armor_profile: String::new(),
            exec_ids: None,
            host_config: host_config(record, spec.as_ref()),
            graph_driver,
            size_rw: sizes.map(|s| s.0),
            size_root_fs: sizes.map(|s| s.1),
            mounts: spec
                .as_ref()
                .map(|s| user_mounts(s, &dir, &record.volume_mounts))
                .unwrap_or_default(),
            config: Config {
                hostname: spec
                    .as_ref()
                    .and_then(|s| s.hostname().clone())
                    .unwrap_or_default(),
                domainname: String::new(),
                user,
                attach_stdin: record.interactive,
                attach_stdout: true,
                attach_stderr: true,
                exposed_ports: empty_objects(&record.exposed_ports),
                tty: record.tty,
                open_stdin: record.interactive,
                stdin_once: record.interactive,
                env: process.and_then(|p| p.env().clone()).unwrap_or_default(),
                // Records from before the split have the whole command in `Cmd`.
                cmd: record
                    .command
                    .get(record.entrypoint.len()..)
                    .unwrap_or_default()
                    .to_vec(),
                image: record.image.clone(),
                volumes: empty_objects(&declared_volumes(record)),
                working_dir: process
                    .map(|p| p.cwd().display().to_string())
                    .unwrap_or_default(),
                entrypoint: (!record.entrypoint.is_empty()).then(|| record.entrypoint.clone()),
                on_build: None,
                labels: record.labels.clone(),
                stop_signal: record.stop_signal.clone(),
                stop_timeout: record.stop_timeout,
                healthcheck: record.options.healthcheck.clone(),
            },
            network_settings: network_settings(
                record,
                &crate::networks::memberships_of(store, record)?,
            ),
        })
    }
}

/// The container's `config.json`, if it got that far.
fn load_spec(dir: &Path) -> Result<Option<Spec>> {
    let path = dir.join("config.json");
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn state(record: &Record) -> State {
    let ended = matches!(record.status, Status::Exited | Status::Dead);
    State {
        status: record.state_name(),
        running: record.status == Status::Running,
        paused: record.state_name() == "paused",
        restarting: false,
        oom_killed: record.oom_killed,
        dead: record.status == Status::Dead,
        pid: if record.status == Status::Running {
            record.pid
        } else {
            0
        },
        exit_code: if ended {
            record.exit_code.unwrap_or(255)
        } else {
            0
        },
        error: record.error.clone().unwrap_or_default(),
        started_at: record
            .started_at
            .clone()
            .unwrap_or_else(|| ZERO_TIME.to_string()),
        finished_at: match (&record.finished_at, ended) {
            (Some(t), true) => t.clone(),
            _ => ZERO_TIME.to_string(),
        },
        health: health(record),
    }
}

/// `State.Health`: the record's, or `starting` for a running container whose first
/// check has not been recorded yet.
fn health(record: &Record) -> Option<super::health::HealthState> {
    record.options.healthcheck.as_ref()?;
    match (&record.health, record.status) {
        (Some(h), _) => Some(h.clone()),
        (None, Status::Running) => Some(super::health::HealthState::starting()),
        (None, _) => None,
    }
}

fn overlay_driver(dir: &Path, layers: &[PathBuf]) -> GraphDriver {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let mut data = BTreeMap::new();
    data.insert("LowerDir".to_string(), lower.join(":"));
    for (key, sub) in [
        ("UpperDir", "upper"),
        ("WorkDir", "work"),
        ("MergedDir", "merged"),
    ] {
        data.insert(key.to_string(), dir.join(sub).display().to_string());
    }
    GraphDriver {
        name: "overlay".to_string(),
        data,
    }
}

/// `{"8080/tcp": {}}` from a list, or null when empty, as Docker shows ports and volumes.
fn empty_objects(
    keys: &[String],
) -> Option<BTreeMap<String, serde_json::Map<String, serde_json::Value>>> {
    (!keys.is_empty()).then(|| {
        keys.iter()
            .map(|k| (k.clone(), serde_json::Map::new()))
            .collect()
    })
}

/// `Config.Volumes`: the image's `Volumes` and the anonymous `-v /path` ones.
fn declared_volumes(record: &Record) -> Vec<String> {
    let mut paths = record.volumes.clone();
    for m in record.volume_mounts.iter().filter(|m| m.anonymous) {
        if !paths
            .iter()
            .any(|p| p.trim_end_matches('/') == m.destination)
        {
            paths.push(m.destination.clone());
        }
    }
    paths
}

fn restart_policy(policy: RestartPolicy) -> RestartPolicyJson {
    let (name, maximum_retry_count) = match policy {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::OnFailure { max_retries } => ("on-failure", max_retries),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
    };
    RestartPolicyJson {
        name: name.to_string(),
        maximum_retry_count,
    }
}

fn host_config(record: &Record, spec: Option<&Spec>) -> HostConfig {
    let linux = spec.and_then(|s| s.linux().as_ref());
    let resources = linux.and_then(|l| l.resources().as_ref());
    let memory = resources.and_then(|r| r.memory().as_ref());
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    let has_namespace = |kind: LinuxNamespaceType| {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == kind))
    };
    let quota = cpu.and_then(|c| c.quota()).unwrap_or(0);
    let period = cpu.and_then(|c| c.period()).unwrap_or(0);
    let nano_cpus = if quota > 0 && period > 0 {
        (quota as i128 * 1_000_000_000 / period as i128) as i64
    } else {
        0
    };
    let tmpfs: BTreeMap<String, String> = spec
        .and_then(|s| s.mounts().as_ref())
        .into_iter()
        .flatten()
        .filter(|m| is_user_tmpfs(m))
        .map(|m| {
            let options = m.options().clone().unwrap_or_default();
            // ccrun puts nosuid,nodev,noexec first; Docker shows only what was asked for.
            let asked = options
                .strip_prefix(&TMPFS_DEFAULTS.map(String::from))
                .unwrap_or(&options);
            (m.destination().display().to_string(), asked.join(","))
        })
        .collect();
    let mut log_options = BTreeMap::new();
    log_options.insert("max-size".to_string(), record.log_max_size.to_string());
    log_options.extend(record.options.log_opts.clone());
    let flags = &record.host_flags;
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let process = spec.and_then(|s| s.process().as_ref());
    let sysctls = linux.and_then(|l| l.sysctl().clone()).unwrap_or_default();
    let shm_size = spec
        .and_then(|s| s.mounts().as_ref())
        .into_iter()
        .flatten()
        .find(|m| m.destination() == Path::new("/dev/shm") && m.typ().as_deref() == Some("tmpfs"))
        .and_then(|m| {
            m.options()
                .iter()
                .flatten()
                .find_map(|o| o.strip_prefix("size="))
                .and_then(|size| crate::units::parse_bytes(size).ok())
        })
        .unwrap_or(0);
    HostConfig {
        binds: (!record.binds.is_empty()).then(|| record.binds.clone()),
        container_id_file: String::new(),
        log_config: LogConfig {
            kind: record.options.log_driver.as_str().to_string(),
            config: log_options,
        },
        network_mode: match &record.network {
            super::record::NetworkChoice::Bridge { network, .. } => network.clone(),
            super::record::NetworkChoice::Container { id } => format!("container:{id}"),
            _ if has_namespace(LinuxNamespaceType::Network) => "none".to_string(),
            _ => "host".to_string(),
        },
        port_bindings: port_bindings(record),
        restart_policy: restart_policy(record.restart_policy),
        auto_remove: record.auto_remove,
        volume_driver: String::new(),
        volumes_from: None,
        console_size: [0, 0],
        cap_add: non_empty(&flags.cap_add),
        cap_drop: non_empty(&flags.cap_drop),
        cgroupns_mode: "private".to_string(),
        dns: flags.dns.clone(),
        dns_options: Vec::new(),
        dns_search: Vec::new(),
        extra_hosts: (!record.extra_hosts.is_empty()).then(|| {
            record
                .extra_hosts
                .iter()
                .map(|(host, ip)| format!("{host}:{ip}"))
                .collect()
        }),
        group_add: None,
        ipc_mode: "private".to_string(),
        cgroup: String::new(),
        links: None,
        oom_score_adj: process.and_then(|p| p.oom_score_adj()).unwrap_or(0),
        pid_mode: String::new(),
        privileged: flags.privileged,
        publish_all_ports: flags.publish_all,
        readonly_rootfs: spec
            .and_then(|s| s.root().as_ref())
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        security_opt: non_empty(&flags.security_opt),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        uts_mode: String::new(),
        userns_mode: if spec.is_some() && !has_namespace(LinuxNamespaceType::User) {
            "host"
        } else {
            ""
        }
        .to_string(),
        shm_size,
        sysctls: (!sysctls.is_empty()).then(|| sysctls.into_iter().collect()),
        runtime: "ccrun".to_string(),
        isolation: String::new(),
        cpu_shares: cpu.and_then(|c| c.shares()).unwrap_or(0),
        memory: memory.and_then(|m| m.limit()).unwrap_or(0),
        nano_cpus,
        cgroup_parent: String::new(),
        blkio_weight: 0,
        blkio_weight_device: Vec::new(),
        blkio_device_read_bps: Vec::new(),
        blkio_device_write_bps: Vec::new(),
        blkio_device_read_iops: Vec::new(),
        blkio_device_write_iops: Vec::new(),
        // `--cpus` sets quota and period; Docker shows those only for --cpu-quota/--cpu-period.
        cpu_period: if nano_cpus > 0 { 0 } else { period },
        cpu_quota: if nano_cpus > 0 { 0 } else { quota },
        cpu_realtime_period: 0,
        cpu_realtime_runtime: 0,
        cpuset_cpus: cpu.and_then(|c| c.cpus().clone()).unwrap_or_default(),
        cpuset_mems: cpu.and_then(|c| c.mems().clone()).unwrap_or_default(),
        devices: Vec::new(),
        device_cgroup_rules: None,
        device_requests: None,
        memory_reservation: 0,
        memory_swap: memory.and_then(|m| m.swap()).unwrap_or(0),
        memory_swappiness: None,
        oom_kill_disable: false,
        pids_limit: resources.and_then(|r| r.pids().as_ref()).map(|p| p.limit()),
        ulimits: process.and_then(|p| p.rlimits().as_ref()).map(|limits| {
            limits
                .iter()
                .map(|l| Ulimit {
                    name: format!("{:?}", l.typ())
                        .trim_start_matches("Rlimit")
                        .to_lowercase(),
                    hard: l.hard(),
                    soft: l.soft(),
                })
                .collect()
        }),
        cpu_count: 0,
        cpu_percent: 0,
        io_maximum_iops: 0,
        io_maximum_bandwidth: 0,
        mounts: flags.mounts.iter().map(|m| mount_flag_json(m)).collect(),
        masked_paths: linux
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default(),
        readonly_paths: linux
            .and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default(),
        init: record.init,
    }
}

/// `--mount type=…,src=…,dst=…,readonly` in Docker's `HostConfig.Mounts` shape.
fn mount_flag_json(flag: &str) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for item in flag.split(',') {
        let (key, value) = item.split_once('=').unwrap_or((item, "true"));
        let (field, value) = match key {
            "type" => ("Type", serde_json::Value::from(value)),
            "source" | "src" => ("Source", value.into()),
            "target" | "destination" | "dst" => ("Target", value.into()),
            "readonly" | "ro" => ("ReadOnly", (value == "true" || value == "1").into()),
            _ => continue,
        };
        out.insert(field.to_string(), value);
    }
    serde_json::Value::Object(out)
}

/// `HostConfig.PortBindings`: the `-p` ports as asked for (host port `""` when
/// it is picked at start).
fn port_bindings(record: &Record) -> PortMap {
    let mut map = PortMap::new();
    if let super::record::NetworkChoice::Bridge { ports, .. } = &record.network {
        for m in ports {
            map.entry(format!("{}/{}", m.container_port, m.protocol.as_str()))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    host_port: if m.host_port == 0 {
                        String::new()
                    } else {
                        m.host_port.to_string()
                    },
                });
        }
    }
    map
}

/// The options ccrun gives every `--tmpfs` before the user's own.
const TMPFS_DEFAULTS: [&str; 3] = ["nosuid", "nodev", "noexec"];

/// Whether a mount is one of Docker's standard ones (`/proc`, `/dev`, …).
fn is_standard(m: &Mount) -> bool {
    crate::spec_builder::default_mounts()
        .unwrap_or_default()
        .iter()
        .any(|d| d.destination() == m.destination() && d.typ() == m.typ())
}

fn is_user_tmpfs(m: &Mount) -> bool {
    m.typ().as_deref() == Some("tmpfs") && !is_standard(m)
}

/// Volumes (the bind mounts of a volume's `_data` that `volumes` lists), bind mounts
/// (other than the `/etc` files ccrun writes into the container's directory) and tmpfs
/// mounts beyond the standard ones, in Docker's shape.
fn user_mounts(spec: &Spec, dir: &Path, volumes: &[VolumeMount]) -> Vec<MountPoint> {
    let Some(mounts) = spec.mounts() else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter_map(|m| {
            let options = m.options().clone().unwrap_or_default();
            let rw = !options.iter().any(|o| o == "ro");
            let is_bind = m.typ().as_deref() == Some("bind")
                || options.iter().any(|o| o == "bind" || o == "rbind");
            let source = m.source().clone().unwrap_or_default();
            let destination = m.destination().display().to_string();
            let volume = volumes
                .iter()
                .find(|v| is_bind && v.destination == destination);
            if let Some(volume) = volume {
                return Some(MountPoint {
                    kind: "volume".to_string(),
                    name: Some(volume.name.clone()),
                    source: source.display().to_string(),
                    destination,
                    driver: Some("local".to_string()),
                    mode: if rw { String::new() } else { "ro".to_string() },
                    rw,
                    propagation: String::new(),
                });
            }
            let (kind, propagation) = if is_bind {
                if source.starts_with(dir) {
                    return None;
                }
                let propagation = options
                    .iter()
                    .find(|o| {
                        matches!(
                            o.as_str(),
                            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
                        )
                    })
                    .cloned()
                    .unwrap_or_else(|| "rprivate".to_string());
                ("bind", propagation)
            } else if is_user_tmpfs(m) {
                ("tmpfs", String::new())
            } else {
                return None;
            };
            Some(MountPoint {
                kind: kind.to_string(),
                name: None,
                source: if kind == "bind" {
                    source.display().to_string()
                } else {
                    String::new()
                },
                destination,
                driver: None,
                mode: if rw { String::new() } else { "ro".to_string() },
                rw,
                propagation,
            })
        })
        .collect()
}

/// Docker's `NetworkSettings`: the address on the network, the gateway, the ports
/// (published ones with their host bindings while it runs, exposed ones as null) and
/// the network the container is attached to.
fn network_settings(
    record: &Record,
    memberships: &[crate::networks::Membership],
) -> serde_json::Value {
    let mut ports = PortMap::new();
    for port in &record.exposed_ports {
        let key = if port.contains('/') {
            port.clone()
        } else {
            format!("{port}/tcp")
        };
        ports.insert(key, None);
    }
    let (ip, gateway, prefix) = match &record.attachment {
        Some(a) => {
            for m in &a.ports {
                ports
                    .entry(format!("{}/{}", m.container_port, m.protocol.as_str()))
                    .or_insert(None)
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: m
                            .host_ip
                            .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
                        host_port: m.host_port.to_string(),
                    });
            }
            (a.ip.to_string(), a.gateway.to_string(), a.prefix_len)
        }
        None => (String::new(), String::new(), 0),
    };
    let endpoint = record
        .attachment
        .as_ref()
        .map(|a| a.host_veth.clone())
        .unwrap_or_default();
    let mut networks = serde_json::Map::new();
    for m in memberships {
        let primary = record
            .attachment
            .as_ref()
            .filter(|a| a.network == m.network.name);
        // Docker lists the container's name, its short id and its aliases on
        // user-defined networks; the default bridge has no names.
        let aliases = (m.network.name != crate::networks::DEFAULT_NETWORK).then(|| {
            let mut names = vec![record.name.clone(), short_id(&record.id)];
            names.extend(m.aliases.iter().cloned());
            names
        });
        let (ip, prefix, gateway, mac) = match m.ip {
            Some(ip) => (
                ip.to_string(),
                m.network.subnet.prefix_len(),
                primary.map_or_else(|| m.network.gateway.to_string(), |a| a.gateway.to_string()),
                crate::networks::mac_of(record, &m.network.name, ip),
            ),
            None => (String::new(), 0, String::new(), String::new()),
        };
        networks.insert(
            m.network.name.clone(),
            serde_json::json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": aliases,
                "NetworkID": m.network.id,
                "EndpointID": primary.map(|a| a.host_veth.clone()).unwrap_or_default(),
                "Gateway": gateway,
                "IPAddress": ip,
                "IPPrefixLen": prefix,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": mac,
                "DriverOpts": null,
            }),
        );
    }
    let mac = record
        .attachment
        .as_ref()
        .map(|a| crate::networks::mac_of(record, &a.network, a.ip))
        .unwrap_or_default();
    serde_json::json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": "",
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": endpoint,
        "Gateway": gateway,
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "MacAddress": mac,
        "Networks": networks,
    })
}

/// Docker's short id: the first 12 hex digits.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::MountBuilder;

    fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dest)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .expect("mount")
    }

    #[test]
    fn only_user_binds_and_tmpfs_are_listed() {
        let dir = Path::new("/var/lib/ccrun/containers/abc");
        let mut mounts = crate::spec_builder::default_mounts().expect("defaults");
        mounts.push(mount(
            "/etc/hosts",
            "bind",
            "/var/lib/ccrun/containers/abc/hosts",
            &["rbind", "rprivate"],
        ));
        mounts.push(mount("/data", "bind", "/srv/data", &["rbind", "ro"]));
        mounts.push(mount(
            "/scratch",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "noexec", "size=64m"],
        ));
        let mut spec = Spec::default();
        spec.set_mounts(Some(mounts));
        let listed = user_mounts(&spec, dir, &[]);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(
            (
                listed[0].kind.as_str(),
                listed[0].source.as_str(),
                listed[0].rw,
                listed[0].mode.as_str(),
                listed[0].propagation.as_str()
            ),
            ("bind", "/srv/data", false, "ro", "rprivate")
        );
        assert_eq!(
            (
                listed[1].kind.as_str(),
                listed[1].destination.as_str(),
                listed[1].rw
            ),
            ("tmpfs", "/scratch", true)
        );
    }

    #[test]
    fn volumes_are_listed_as_volumes() {
        let dir = Path::new("/var/lib/ccrun/containers/abc");
        let mut spec = Spec::default();
        spec.set_mounts(Some(vec![
            mount(
                "/data",
                "bind",
                "/var/lib/ccrun/volumes/cache/_data",
                &["rbind", "rprivate", "ro"],
            ),
            mount("/src", "bind", "/home/me/src", &["rbind", "rprivate"]),
        ]));
        let volumes = [VolumeMount {
            name: "cache".into(),
            destination: "/data".into(),
            anonymous: false,
            readonly: true,
        }];
        let listed = user_mounts(&spec, dir, &volumes);
        let json = serde_json::to_value(&listed).expect("json");
        assert_eq!(
            json[0],
            serde_json::json!({
                "Type": "volume", "Name": "cache",
                "Source": "/var/lib/ccrun/volumes/cache/_data", "Destination": "/data",
                "Driver": "local", "Mode": "ro", "RW": false, "Propagation": ""
            })
        );
        assert_eq!(json[1]["Type"], "bind");
        assert!(json[1].get("Name").is_none());
    }
}
