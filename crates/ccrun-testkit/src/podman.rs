//! A podman that keeps everything in one directory: storage, run root, events,
//! volumes and network definitions, so a test writes no global podman state.

use std::path::Path;

/// Writes `storage.conf` (vfs, graph and run roots under `dir`) and
/// `containers.conf` (cgroupfs, file events, k8s-file logs, no default ulimits:
/// podman 4.3 as root asks for more than this host allows) into `dir`; point podman
/// at them with `CONTAINERS_STORAGE_CONF` and `CONTAINERS_CONF`.
pub fn write_private_config(dir: &Path) {
    std::fs::create_dir_all(dir.join("networks")).expect("mkdir networks");
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            dir.display()
        ),
    )
    .expect("storage.conf");
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[containers]\nlog_driver = \"k8s-file\"\ndefault_ulimits = []\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{0}/events.log\"\ntmp_dir = \"{0}/tmp\"\n\
             volume_path = \"{0}/volumes\"\n[network]\nnetwork_config_dir = \"{0}/networks\"\n",
            dir.display()
        ),
    )
    .expect("containers.conf");
}
