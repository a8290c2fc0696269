//! Device rules a runtime adds to the spec's own, as runc and crun do.
//!
//! Bundles written by `runc spec`, podman and containerd start
//! `linux.resources.devices` with "deny everything" and rely on the runtime to
//! allow the standard devices (and every entry of `linux.devices`) after it. The
//! runtime appends [`default_allowed_devices`] and [`allow_device`] for each
//! `linux.devices` entry to the spec's list before calling [`crate::Cgroup::apply`].

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// runc's default allow list: `mknod` of any device (the node is useless without
/// an access rule), /dev/null, random, full, tty, zero, urandom, the pty slaves
/// (136:*), /dev/ptmx and /dev/net/tun.
pub fn default_allowed_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// The rule allowing full access to a device of `linux.devices` (what runc adds
/// for each), or `None` for a FIFO, which the device cgroup does not govern.
pub fn allow_device(device: &LinuxDevice) -> Option<LinuxDeviceCgroup> {
    match device.typ() {
        LinuxDeviceType::P => None,
        typ => Some(rule(typ, Some(device.major()), Some(device.minor()), "rwm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use oci_spec::runtime::LinuxResourcesBuilder;

    #[test]
    fn defaults_are_valid_rules() {
        let r = LinuxResourcesBuilder::default()
            .devices(default_allowed_devices())
            .build()
            .unwrap();
        let limits = Limits::from_oci(&r).unwrap();
        let v1: Vec<String> = limits.devices.iter().map(|d| d.as_v1()).collect();
        assert_eq!(v1[0], "c *:* m");
        assert_eq!(v1[2], "c 1:3 rwm");
        assert_eq!(v1[8], "c 136:* rwm");
    }
}
