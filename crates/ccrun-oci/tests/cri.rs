//! Kubernetes through the CRI, without a kubelet: Debian's containerd 1.6 with its CRI
//! plugin, driven over the CRI gRPC API (`runtime.v1`, the [`ccrun_cri`] client) the
//! way the kubelet drives it, with two runtime handlers side by side: `ccrun`
//! (`io.containerd.runc.v2` with `BinaryName` = ccrun-oci) and `runc`. Every pod runs
//! the same scenario under each handler, and the results must agree with each other
//! and with what Kubernetes promises.
//!
//! Everything the node needs is private to the test: containerd's root, state, socket
//! and config; a network namespace made for the test in which containerd, its shims,
//! the CNI plugins (Debian's `bridge` + `host-local`, config and IPAM state in the temp
//! dir) and a local `docker-registry` run, so pod networking and image pulls never
//! touch the host's network; images built here from a busybox rootfs with umoci and
//! pushed with skopeo; the pods' cgroup parent. All of it is removed on drop, also on
//! failure: pods through the CRI, then containerd and the registry by PID, leftover
//! shims by the PIDs they recorded, mounts, cgroups and the network namespace.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccrun_cri::v1;
use ccrun_cri::Cri;
use serde_json::Value;

/// The registry's address inside the test's network namespace.
const REGISTRY: &str = "127.0.0.1:5000";
/// The handlers under test, in the order they run.
const HANDLERS: [&str; 2] = ["ccrun", "runc"];
/// The subnet the CNI bridge hands out (inside the test's network namespace only).
const POD_SUBNET_PREFIX: &str = "10.250.0.";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The test's node: a network namespace with a registry and containerd in it.
struct Node {
    dir: tempfile::TempDir,
    /// Name of the network namespace (`ip netns`).
    netns: String,
    /// Name of the pods' cgroup parent, under every hierarchy's root.
    cgroup_root: String,
    registry: Option<Child>,
    containerd: Option<Child>,
    /// /run/containerd did not exist before (the shims put their sockets there).
    created_run_dir: bool,
    /// /var/lib/cni did not exist before (containerd's CNI library caches results
    /// there, whatever the config says).
    created_cni_dir: bool,
    /// Network namespaces of the pods, to remove should the CRI not have.
    pod_netns: std::cell::RefCell<Vec<PathBuf>>,
    cri: Option<Cri>,
}

impl Node {
    fn start() -> Node {
        ccrun_testkit::require_root();
        let version = Command::new("containerd").arg("--version").output();
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "containerd is needed for the CRI test (scripts/deps.sh installs it): {version:?}"
        );
        let dir = tempfile::Builder::new()
            .prefix("ccrun-cri-")
            .tempdir()
            .expect("tempdir");
        let mut node = Node {
            dir,
            netns: format!("ccrun-cri-{}", std::process::id()),
            cgroup_root: format!("ccrun-cri-{}", std::process::id()),
            registry: None,
            containerd: None,
            created_run_dir: !Path::new("/run/containerd").exists(),
            created_cni_dir: !Path::new("/var/lib/cni").exists(),
            pod_netns: Default::default(),
            cri: None,
        };
        run_ok(Command::new("ip").args(["netns", "add", &node.netns]));
        run_ok(Command::new("ip").args(["-n", &node.netns, "link", "set", "lo", "up"]));
        node.start_registry();
        node.push_images();
        node.start_containerd();
        node
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.netns)
    }

    /// `program` run inside the test's network namespace (only that: the mount
    /// namespace stays the host's, so containerd's mounts are where the test sees them).
    fn in_netns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns_path()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// A daemon in the network namespace with its output in `log`, killed (SIGKILL) if
    /// the test process dies first.
    fn spawn_daemon(&self, mut cmd: Command, log: &str) -> Child {
        let log = File::create(self.path(log)).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        ccrun_testkit::die_with_parent(&mut cmd);
        cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    /// A TCP connection to `addr` inside the network namespace: a thread joins it to
    /// make the socket, which keeps the namespace it was made in.
    fn connect(&self, addr: &str) -> std::io::Result<TcpStream> {
        let ns = File::open(self.netns_path())?;
        let addr = addr.to_string();
        std::thread::spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            TcpStream::connect(addr)
        })
        .join()
        .map_err(|_| std::io::Error::other("connecting thread panicked"))?
    }

    fn start_registry(&mut self) {
        let storage = self.path("registry");
        std::fs::create_dir_all(&storage).expect("mkdir");
        let config = self.path("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {REGISTRY}\n  secret: ccrun-cri-test\n",
                storage.display()
            ),
        )
        .expect("registry config");
        let mut cmd = self.in_netns("docker-registry");
        cmd.arg("serve").arg(&config);
        self.registry = Some(self.spawn_daemon(cmd, "registry.log"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            use std::io::{Read, Write};
            if let Ok(mut s) = self.connect(REGISTRY) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                std::fs::read_to_string(self.path("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `busybox:1` (cmd `sh`) and `pause:1` (the pod sandbox image: sleeps), built
    /// from a busybox rootfs with umoci as an image build tool would, pushed with
    /// skopeo.
    fn push_images(&self) {
        let rootfs = ccrun_testkit::Rootfs::busybox();
        let layout = self.path("layout");
        run_ok(
            Command::new("umoci")
                .arg("init")
                .arg("--layout")
                .arg(&layout),
        );
        for (name, config) in [
            ("busybox", vec!["--config.cmd", "sh"]),
            (
                "pause",
                vec![
                    "--config.entrypoint",
                    "/bin/sleep",
                    "--config.cmd",
                    "2147483647",
                ],
            ),
        ] {
            let image = format!("{}:{name}", layout.display());
            run_ok(Command::new("umoci").args(["new", "--image", &image]));
            run_ok(
                Command::new("umoci")
                    .args(["insert", "--image", &image])
                    .arg(rootfs.path())
                    .arg("/"),
            );
            run_ok(
                Command::new("umoci")
                    .args(["config", "--image", &image])
                    .args(&config),
            );
            run_ok(
                self.in_netns("skopeo")
                    .args(["copy", "--quiet", "--dest-tls-verify=false"])
                    .arg(format!("oci:{image}"))
                    .arg(format!("docker://{REGISTRY}/{name}:1")),
            );
        }
    }

    /// containerd with the CRI plugin: handlers `runc` and `ccrun`, each with a state
    /// root in the temp dir; CNI from Debian's plugins with config and IPAM state here.
    fn start_containerd(&mut self) {
        let d = self.dir.path().display().to_string();
        let cni = self.path("cni");
        std::fs::create_dir_all(&cni).expect("mkdir");
        std::fs::write(
            cni.join("10-ccrun-cri.conflist"),
            format!(
                r#"{{"cniVersion": "0.4.0", "name": "{net}", "plugins": [
                    {{"type": "bridge", "bridge": "cricni0", "isGateway": true, "ipMasq": false,
                      "ipam": {{"type": "host-local", "dataDir": "{d}/ipam",
                                "ranges": [[{{"subnet": "{POD_SUBNET_PREFIX}0/24"}}]]}}}}]}}"#,
                net = self.netns,
            ),
        )
        .expect("cni config");
        let ccrun_oci = support::bin().display().to_string();
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[metrics]
  address = ""
[{cri}]
  sandbox_image = "{REGISTRY}/pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Pod sandboxes ask for oom_score_adj -998, which needs CAP_SYS_RESOURCE (runc and
  # ccrun-oci alike fail without it); this clamps it to containerd's own.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "runc"
        Root = "{d}/runc-root"
        SystemdCgroup = false
    [{cri}.containerd.runtimes.ccrun]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.ccrun.options]
        BinaryName = "{ccrun_oci}"
        Root = "{d}/ccrun-root"
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  [{cri}.registry.mirrors."{REGISTRY}"]
    endpoint = ["http://{REGISTRY}"]
"#
        );
        std::fs::write(self.path("containerd.toml"), config).expect("config");
        let mut cmd = self.in_netns("containerd");
        cmd.arg("--config").arg(self.path("containerd.toml"));
        self.containerd = Some(self.spawn_daemon(cmd, "containerd.log"));
        let socket = self.path("containerd.sock");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = socket
                .exists()
                .then(|| Cri::connect(&socket, Duration::from_secs(60)).ok())
                .flatten()
                .and_then(|cri| {
                    let req = v1::VersionRequest {
                        version: "v1".into(),
                    };
                    let ok = cri
                        .runtime(|mut c| async move { c.version(req).await })
                        .is_ok();
                    ok.then_some(cri)
                });
            if let Some(cri) = ready {
                self.cri = Some(cri);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default()
    }

    fn cri(&self) -> &Cri {
        self.cri.as_ref().expect("CRI connection")
    }

    fn containerd_pid(&self) -> i32 {
        self.containerd.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Removes every pod containerd still has (best effort, on the way out).
    fn remove_pods(&self) {
        let Some(cri) = &self.cri else { return };
        let Ok(list) = cri.runtime(|mut c| async move {
            c.list_pod_sandbox(v1::ListPodSandboxRequest::default())
                .await
        }) else {
            return;
        };
        for pod in list.items {
            let id = pod.id.clone();
            let _ = cri.runtime(|mut c| async move {
                c.stop_pod_sandbox(v1::StopPodSandboxRequest { pod_sandbox_id: id })
                    .await
            });
            let _ = cri.runtime(|mut c| async move {
                c.remove_pod_sandbox(v1::RemovePodSandboxRequest {
                    pod_sandbox_id: pod.id,
                })
                .await
            });
        }
    }

    /// Kills the shims that are left, by the PIDs they recorded in containerd's state.
    fn kill_shims(&self) {
        let tasks = self.path("state/io.containerd.runtime.v2.task");
        for ns in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            for task in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let pid = std::fs::read_to_string(task.path().join("shim.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok());
                if let Some(pid) = pid.filter(|p| *p > 1) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }

    /// Deletes what the runtimes still hold under their private roots.
    fn delete_runtime_state(&self) {
        for (binary, root) in [
            (support::bin(), self.path("ccrun-root/k8s.io")),
            (PathBuf::from("runc"), self.path("runc-root/k8s.io")),
        ] {
            for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
                let _ = Command::new(&binary)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force"])
                    .arg(entry.file_name())
                    .output();
            }
        }
    }

    fn remove_cgroups(&self) {
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let top = hierarchy.path().join(&self.cgroup_root);
            if top.is_dir() {
                remove_cgroup_tree(&top);
            }
        }
    }
}

/// Removes a cgroup directory and its children, deepest first (only empty cgroups can
/// go; a busy one stays and is reported by the test's own checks).
fn remove_cgroup_tree(dir: &Path) {
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&child.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for Node {
    fn drop(&mut self) {
        self.remove_pods();
        self.cri = None;
        if let Some(mut containerd) = self.containerd.take() {
            let pid = nix::unistd::Pid::from_raw(containerd.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while containerd.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = containerd.kill();
            let _ = containerd.wait();
        }
        self.kill_shims();
        self.delete_runtime_state();
        if let Some(mut registry) = self.registry.take() {
            let _ = registry.kill();
            let _ = registry.wait();
        }
        for netns in self.pod_netns.borrow().iter() {
            let _ = nix::mount::umount2(netns, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(netns);
        }
        support::unmount_under(self.dir.path());
        self.remove_cgroups();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        // Only empty directories: anything else is not ours to remove.
        if self.created_run_dir {
            for d in ["/run/containerd/s", "/run/containerd"] {
                let _ = std::fs::remove_dir(d);
            }
        }
        if self.created_cni_dir {
            for d in ["/var/lib/cni/results", "/var/lib/cni"] {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// One field of a verbose status's `info` JSON.
fn info(map: &HashMap<String, String>) -> Value {
    serde_json::from_str(map.get("info").map_or("{}", String::as_str)).expect("info JSON")
}

/// What a pod's containers showed; compared across handlers.
#[derive(Debug, PartialEq)]
struct Observed {
    exec_sync: (String, String, i32),
    tty: (bool, String),
    secure: Vec<String>,
    privileged_caps: String,
    logs: Vec<String>,
    stop_exit_codes: (i32, i32),
    userns: String,
}

/// The pod scenario under `handler`, as the kubelet would run it.
fn run_pod(node: &Node, handler: &str) -> Observed {
    let cri = node.cri();
    let uid = format!("uid-{handler}-{}", std::process::id());
    let log_dir = node.path(&format!("pods/default_pod-{handler}_{uid}"));
    let cgroup_parent = format!("/{}/pod{uid}", node.cgroup_root);
    let id_map = |host_id| v1::IdMapping {
        host_id,
        container_id: 0,
        length: 65536,
    };
    let sandbox_config = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: format!("pod-{handler}"),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: format!("pod-{handler}"),
        log_directory: log_dir.display().to_string(),
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(v1::NamespaceOption {
                    network: v1::NamespaceMode::Pod as i32,
                    pid: v1::NamespaceMode::Container as i32,
                    ipc: v1::NamespaceMode::Pod as i32,
                    // `hostUsers: false`: a user namespace for the pod. containerd
                    // 1.6 predates the field and ignores it (checked below).
                    userns_options: Some(v1::UserNamespace {
                        mode: v1::NamespaceMode::Pod as i32,
                        uids: vec![id_map(200_000)],
                        gids: vec![id_map(200_000)],
                    }),
                    ..Default::default()
                }),
                // The pod may run privileged containers.
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };

    // RunPodSandbox with the handler, as a RuntimeClass makes the kubelet ask.
    let req = v1::RunPodSandboxRequest {
        config: Some(sandbox_config.clone()),
        runtime_handler: handler.into(),
    };
    let sandbox = cri
        .runtime(|mut c| async move { c.run_pod_sandbox(req).await })
        .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}\n{}", node.log()))
        .pod_sandbox_id;
    let status_req = v1::PodSandboxStatusRequest {
        pod_sandbox_id: sandbox.clone(),
        verbose: true,
    };
    let status = cri
        .runtime(|mut c| async move { c.pod_sandbox_status(status_req).await })
        .expect("PodSandboxStatus");
    let pod = status.status.expect("sandbox status");
    assert_eq!(pod.state, v1::PodSandboxState::SandboxReady as i32);
    let pod_ip = pod.network.map(|n| n.ip).unwrap_or_default();
    assert!(
        pod_ip.starts_with(POD_SUBNET_PREFIX),
        "pod IP {pod_ip:?} from the CNI bridge"
    );
    let sandbox_info = info(&status.info);
    assert_eq!(sandbox_info["runtimeHandler"], handler, "{sandbox_info}");
    if let Some(path) = sandbox_info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["type"] == "network")
        .and_then(|n| n["path"].as_str())
    {
        // Cleaned up by RemovePodSandbox; remembered in case the test fails first.
        node.pod_netns.borrow_mut().push(PathBuf::from(path));
    }

    // PullImage from the local registry.
    let pull = v1::PullImageRequest {
        image: Some(v1::ImageSpec {
            image: format!("{REGISTRY}/busybox:1"),
            ..Default::default()
        }),
        sandbox_config: Some(sandbox_config.clone()),
        ..Default::default()
    };
    let image_ref = cri
        .images(|mut c| async move { c.pull_image(pull).await })
        .unwrap_or_else(|e| panic!("PullImage: {e}\n{}", node.log()))
        .image_ref;
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");

    let create = |name: &str, command: &[&str], mut linux: v1::LinuxContainerConfig| -> String {
        // As the kubelet: every container gets the pod's namespace options (without
        // them containerd would share the pod's PID namespace).
        linux
            .security_context
            .get_or_insert_with(Default::default)
            .namespace_options = Some(v1::NamespaceOption {
            network: v1::NamespaceMode::Pod as i32,
            pid: v1::NamespaceMode::Container as i32,
            ipc: v1::NamespaceMode::Pod as i32,
            ..Default::default()
        });
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image: image_ref.clone(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}/0.log"),
            linux: Some(linux),
            ..Default::default()
        };
        let req = v1::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox_config.clone()),
        };
        let id = cri
            .runtime(|mut c| async move { c.create_container(req).await })
            .unwrap_or_else(|e| panic!("CreateContainer {name} ({handler}): {e}"))
            .container_id;
        let req = v1::StartContainerRequest {
            container_id: id.clone(),
        };
        cri.runtime(|mut c| async move { c.start_container(req).await })
            .unwrap_or_else(|e| panic!("StartContainer {name} ({handler}): {e}"));
        id
    };
    // Resources as the kubelet sets them for limits cpu 500m / memory 64Mi, requests
    // cpu 250m, in a burstable pod.
    let resources = v1::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 256,
        memory_limit_in_bytes: 64 << 20,
        oom_score_adj: 900,
        ..Default::default()
    };
    let app = create(
        "app",
        &[
            "sh",
            "-c",
            "echo out-line; echo err-line >&2; trap 'echo got-term; exit 0' TERM; \
             while :; do sleep 0.1; done",
        ],
        v1::LinuxContainerConfig {
            resources: Some(resources.clone()),
            ..Default::default()
        },
    );
    let secure = create(
        "secure",
        &["sleep", "1000"],
        v1::LinuxContainerConfig {
            resources: Some(resources.clone()),
            security_context: Some(v1::LinuxContainerSecurityContext {
                run_as_user: Some(v1::Int64Value { value: 1000 }),
                run_as_group: Some(v1::Int64Value { value: 1000 }),
                readonly_rootfs: true,
                no_new_privs: true,
                capabilities: Some(v1::Capability {
                    add_capabilities: vec!["NET_BIND_SERVICE".into()],
                    drop_capabilities: vec!["ALL".into()],
                    ..Default::default()
                }),
                seccomp: Some(v1::SecurityProfile {
                    profile_type: v1::security_profile::ProfileType::RuntimeDefault as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        },
    );
    let privileged = create(
        "priv",
        &["sleep", "1000"],
        v1::LinuxContainerConfig {
            security_context: Some(v1::LinuxContainerSecurityContext {
                privileged: true,
                ..Default::default()
            }),
            ..Default::default()
        },
    );

    let exec_sync = |id: &str, cmd: &[&str]| -> v1::ExecSyncResponse {
        let req = v1::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 20,
        };
        cri.runtime(|mut c| async move { c.exec_sync(req).await })
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?} ({handler}): {e}"))
    };
    let sh = |id: &str, script: &str| -> String {
        let out = exec_sync(id, &["sh", "-c", script]);
        assert_eq!(out.exit_code, 0, "{script}: {}", text(&out.stderr));
        text(&out.stdout)
    };

    // ExecSync: output and exit status come back separately.
    let out = exec_sync(
        &app,
        &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 3"],
    );
    let exec_result = (text(&out.stdout), text(&out.stderr), out.exit_code);
    assert_eq!(
        exec_result,
        ("exec-out\n".into(), "exec-err\n".into(), 3),
        "{handler}"
    );

    // The pod's network and IPC namespaces are shared by its containers, and are
    // neither the host's nor containerd's; the pod's address is on eth0.
    let ns_of = |id: &str| sh(id, "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc");
    let app_ns = ns_of(&app);
    assert_eq!(app_ns, ns_of(&secure), "{handler}: shared net and ipc");
    let host_net = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let node_net =
        std::fs::read_link(format!("/proc/{}/ns/net", node.containerd_pid())).expect("netns");
    for other in [&host_net, &node_net] {
        assert!(
            !app_ns.contains(&other.display().to_string()),
            "{handler}: the pod shares a namespace it should not: {app_ns}"
        );
    }
    let addr = sh(&app, "ip -4 addr show eth0");
    assert!(
        addr.contains(&format!("inet {pod_ip}/")),
        "{handler}: {addr}"
    );
    assert_eq!(sh(&app, "hostname"), format!("pod-{handler}\n"));

    // Exec with a terminal through containerd's streaming server, as `kubectl exec
    // -it` reaches it through the kubelet.
    let req = v1::ExecRequest {
        container_id: app.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "tty; read line; echo got $line; exit 5".into(),
        ],
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
    };
    let url = cri
        .runtime(|mut c| async move { c.exec(req).await })
        .expect("Exec")
        .url;
    let tty = exec_on_terminal(node, &url);
    assert!(tty.0, "{handler}: exec -t exit status: {tty:?}");

    // ContainerStatus.
    let status = container_status(cri, &app);
    let s = status.status.as_ref().expect("status");
    assert_eq!(s.state, v1::ContainerState::ContainerRunning as i32);
    assert!(s.started_at > 0);
    // The image by the repository digest it was pulled with.
    assert!(
        s.image_ref
            .starts_with(&format!("{REGISTRY}/busybox@sha256:")),
        "{}",
        s.image_ref
    );
    assert_eq!(s.log_path, log_dir.join("app/0.log").display().to_string());
    let app_pid = info(&status.info)["pid"].as_i64().expect("pid");

    // The pod's cgroup parent and the container's limits, as the kubelet set them.
    let secure_pid = info(&container_status(cri, &secure).info)["pid"]
        .as_i64()
        .expect("pid");
    let memory = support::cgroup_file(secure_pid, "memory", "memory.limit_in_bytes");
    assert!(
        memory.display().to_string().contains(&cgroup_parent),
        "{handler}: {} is not under the pod's cgroup parent {cgroup_parent}",
        memory.display()
    );
    let cgroup_value = |pid: i64, controller: &str, file: &str| {
        std::fs::read_to_string(support::cgroup_file(pid, controller, file))
            .expect("cgroup file")
            .trim()
            .to_string()
    };
    assert_eq!(
        cgroup_value(secure_pid, "memory", "memory.limit_in_bytes"),
        "67108864"
    );
    assert_eq!(cgroup_value(secure_pid, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(
        cgroup_value(secure_pid, "cpu", "cpu.cfs_period_us"),
        "100000"
    );
    assert_eq!(cgroup_value(secure_pid, "cpu", "cpu.shares"), "256");
    let oom = std::fs::read_to_string(format!("/proc/{secure_pid}/oom_score_adj"))
        .expect("oom_score_adj");
    assert_eq!(oom.trim(), "900", "{handler}");

    // securityContext: runAsUser/Group, readOnlyRootFilesystem, capabilities (drop
    // ALL, add NET_BIND_SERVICE = bit 10), allowPrivilegeEscalation false, seccomp
    // RuntimeDefault (mode 2: filter).
    let secure_view: Vec<String> = sh(
        &secure,
        "id -u; id -g; grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         touch /probe 2>&1 || true",
    )
    .lines()
    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
    .collect();
    for want in [
        "1000",
        "CapBnd: 0000000000000400",
        "NoNewPrivs: 1",
        "Seccomp: 2",
    ] {
        assert!(
            secure_view.iter().any(|l| l == want),
            "{handler}: no {want:?} in {secure_view:?}"
        );
    }
    assert!(
        secure_view
            .iter()
            .any(|l| l.contains("Read-only file system")),
        "{handler}: the root is writable: {secure_view:?}"
    );
    // A privileged container has every capability the host's root has.
    let privileged_caps = sh(&privileged, "grep ^CapEff: /proc/self/status");
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    let own_caps = own
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .expect("CapEff");
    assert_eq!(privileged_caps.trim(), own_caps.trim(), "{handler}");
    // containerd 1.6 has no user namespaces for pods: `userns_options` is ignored and
    // the container runs in the host's user namespace.
    let userns = sh(&secure, "cat /proc/self/uid_map")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(userns, "0 0 4294967295", "{handler}");

    // Logs in the CRI format at the path the kubelet gave.
    let log_path = log_dir.join("app/0.log");
    let log_lines = |want: &str| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .lines()
                .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
                .collect();
            if lines.iter().any(|l| l == want) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{handler}: no {want:?} in {}: {lines:?}",
                log_path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    log_lines("stdout F out-line");
    log_lines("stderr F err-line");

    // UpdateContainerResources reaches the live cgroup.
    let req = v1::UpdateContainerResourcesRequest {
        container_id: app.clone(),
        linux: Some(v1::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 128 << 20,
            ..Default::default()
        }),
        ..Default::default()
    };
    cri.runtime(|mut c| async move { c.update_container_resources(req).await })
        .unwrap_or_else(|e| panic!("UpdateContainerResources ({handler}): {e}"));
    assert_eq!(
        cgroup_value(app_pid, "memory", "memory.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(cgroup_value(app_pid, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cgroup_value(app_pid, "cpu", "cpu.shares"), "512");

    // ListContainers / ListPodSandbox.
    let listed = list_containers(cri, &sandbox);
    let mut names: Vec<String> = listed
        .iter()
        .filter_map(|c| c.metadata.as_ref().map(|m| m.name.clone()))
        .collect();
    names.sort();
    assert_eq!(names, ["app", "priv", "secure"], "{handler}");
    assert!(listed
        .iter()
        .all(|c| c.state == v1::ContainerState::ContainerRunning as i32));
    let pods = list_pods(cri);
    let listed_pod = pods.iter().find(|p| p.id == sandbox).expect("pod listed");
    assert_eq!(listed_pod.state, v1::PodSandboxState::SandboxReady as i32);

    // StopContainer with a grace period: a container that handles SIGTERM exits by
    // itself, one that ignores it (sh as PID 1) is killed when the period ends.
    let stop = |id: &str, timeout: i64| -> (Duration, v1::ContainerStatus) {
        let started = Instant::now();
        let req = v1::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        cri.runtime(|mut c| async move { c.stop_container(req).await })
            .unwrap_or_else(|e| panic!("StopContainer ({handler}): {e}"));
        let took = started.elapsed();
        let status = container_status(cri, id).status.expect("status");
        assert_eq!(
            status.state,
            v1::ContainerState::ContainerExited as i32,
            "{handler}"
        );
        (took, status)
    };
    let (took, app_stopped) = stop(&app, 10);
    assert!(
        took < Duration::from_secs(8),
        "{handler}: TERM took {took:?}"
    );
    // stdout and stderr are copied separately: their relative order may vary.
    let mut logs = log_lines("stdout F got-term");
    logs.sort();
    assert_eq!(app_stopped.exit_code, 0, "{handler}: {app_stopped:?}");
    let (took, priv_stopped) = stop(&privileged, 2);
    assert!(
        took >= Duration::from_millis(1500),
        "{handler}: killed before the grace period ended ({took:?})"
    );
    assert_eq!(priv_stopped.exit_code, 137, "{handler}: {priv_stopped:?}");

    // StopPodSandbox stops what is left; RemovePodSandbox removes it all.
    let req = v1::StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    };
    cri.runtime(|mut c| async move { c.stop_pod_sandbox(req).await })
        .unwrap_or_else(|e| panic!("StopPodSandbox ({handler}): {e}"));
    assert_eq!(
        container_status(cri, &secure).status.expect("status").state,
        v1::ContainerState::ContainerExited as i32
    );
    let pods = list_pods(cri);
    let listed_pod = pods.iter().find(|p| p.id == sandbox).expect("pod listed");
    assert_eq!(
        listed_pod.state,
        v1::PodSandboxState::SandboxNotready as i32
    );
    let req = v1::RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    };
    cri.runtime(|mut c| async move { c.remove_pod_sandbox(req).await })
        .unwrap_or_else(|e| panic!("RemovePodSandbox ({handler}): {e}"));
    assert!(list_pods(cri).iter().all(|p| p.id != sandbox));
    let left = list_containers(cri, &sandbox);
    assert!(left.is_empty(), "{handler}: {left:?}");
    // The runtime's own state is gone too.
    let root = node.path(&format!("{handler}-root/k8s.io"));
    let state = ccrun_testkit::container_state_dirs(&root);
    assert!(state.is_empty(), "{handler}: state left: {state:?}");

    Observed {
        exec_sync: exec_result,
        tty,
        secure: secure_view,
        privileged_caps,
        logs,
        stop_exit_codes: (app_stopped.exit_code, priv_stopped.exit_code),
        userns,
    }
}

fn container_status(cri: &Cri, id: &str) -> v1::ContainerStatusResponse {
    let req = v1::ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: true,
    };
    cri.runtime(|mut c| async move { c.container_status(req).await })
        .expect("ContainerStatus")
}

fn list_containers(cri: &Cri, sandbox: &str) -> Vec<v1::Container> {
    let filter = v1::ListContainersRequest {
        filter: Some(v1::ContainerFilter {
            pod_sandbox_id: sandbox.to_string(),
            ..Default::default()
        }),
    };
    cri.runtime(|mut c| async move { c.list_containers(filter).await })
        .expect("ListContainers")
        .containers
}

fn list_pods(cri: &Cri) -> Vec<v1::PodSandbox> {
    cri.runtime(|mut c| async move {
        c.list_pod_sandbox(v1::ListPodSandboxRequest::default())
            .await
    })
    .expect("ListPodSandbox")
    .items
}

/// Runs the exec behind `url` (containerd's streaming server) over a WebSocket with
/// Kubernetes' `v4.channel.k8s.io` protocol: one byte of channel (0 stdin, 1 stdout,
/// 3 the final status) before each message. Types a line once the terminal answered
/// and returns (the status said exit code 5, the terminal's output).
fn exec_on_terminal(node: &Node, url: &str) -> (bool, String) {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;
    let rest = url.strip_prefix("http://").expect("streaming URL is http");
    let (host, path) = rest.split_once('/').expect("streaming URL path");
    let stream = node.connect(host).expect("connect to the streaming server");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut request = format!("ws://{host}/{path}")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tungstenite::http::HeaderValue::from_static("v4.channel.k8s.io"),
    );
    let (mut ws, _) = tungstenite::client(request, stream).expect("WebSocket handshake");
    let mut output = String::new();
    let mut typed = false;
    loop {
        let message = ws
            .read()
            .unwrap_or_else(|e| panic!("exec stream: {e}; got {output:?}"));
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => panic!("exec stream closed without a status; got {output:?}"),
            _ => continue,
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            1 => {
                output.push_str(&String::from_utf8_lossy(payload));
                if !typed && output.contains("/dev/pts/") {
                    ws.send(Message::binary(b"\x00hello\n".to_vec()))
                        .expect("send stdin");
                    typed = true;
                }
            }
            3 => {
                let status: Value = serde_json::from_slice(payload).expect("status JSON");
                let code_5 = status["reason"] == "NonZeroExitCode"
                    && status["details"]["causes"][0]["message"] == "5";
                assert!(
                    output.contains("got hello"),
                    "no echo of the typed line: {output:?} ({status})"
                );
                let _ = ws.close(None);
                // The pty's device number varies; what the program said does not.
                let said = output
                    .lines()
                    .filter(|l| l.contains("got "))
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("\n");
                return (code_5, said);
            }
            _ => {}
        }
    }
}

#[test]
fn pods_run_through_the_cri_with_ccrun_and_runc_alike() {
    let node = Node::start();
    let mut seen = Vec::new();
    for handler in HANDLERS {
        seen.push((handler, run_pod(&node, handler)));
    }
    let (first, reference) = &seen[0];
    for (handler, observed) in &seen[1..] {
        assert_eq!(
            observed, reference,
            "{handler} and {first} differ in what the pod's containers saw"
        );
    }
}
