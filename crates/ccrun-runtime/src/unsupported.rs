//! The one list of runtime-spec fields that ccrun parses but does not honour. A spec
//! that sets any of them is refused with the field's name, rather than run with the
//! field silently ignored. When a field becomes supported, its line goes.

use oci_spec::runtime::{Process, Spec};

use crate::error::{Error, Result};

/// JSON paths of the fields `spec` sets that ccrun does not honour.
pub fn fields_set(spec: &Spec) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            out.push(name);
        }
    };
    note(spec.solaris().is_some(), "solaris");
    note(spec.windows().is_some(), "windows");
    note(spec.vm().is_some(), "vm");
    note(spec.zos().is_some(), "zos");
    if let Some(l) = spec.linux() {
        note(l.intel_rdt().is_some(), "linux.intelRdt");
        note(
            l.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.netDevices",
        );
        note(
            l.mount_label().as_ref().is_some_and(|s| !s.is_empty()),
            "linux.mountLabel",
        );
    }
    if let Some(p) = spec.process() {
        out.extend(process_fields_set(p));
    }
    out
}

/// JSON paths of the fields of a process (the spec's, or one given to exec) that ccrun
/// does not honour.
pub fn process_fields_set(p: &Process) -> Vec<&'static str> {
    let mut out = Vec::new();
    if p.command_line().is_some() {
        out.push("process.commandLine");
    }
    // Windows only: on Linux the user is its uid and gid.
    if p.user().username().is_some() {
        out.push("process.user.username");
    }
    out
}

/// Fails when the process given to exec sets a field ccrun does not honour, naming it.
pub fn check_process(p: &Process) -> Result<()> {
    refuse(process_fields_set(p))
}

/// Fails when `spec` sets a field ccrun does not honour, naming it.
pub fn check(spec: &Spec) -> Result<()> {
    refuse(fields_set(spec))
}

fn refuse(set: Vec<&'static str>) -> Result<()> {
    if set.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidSpec(format!(
        "{} not supported by ccrun",
        set.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_fields_are_named() {
        let spec = crate::spec::parse(
            r#"{"ociVersion": "1.2.0", "root": {"path": "r"},
                "linux": {"intelRdt": {"closID": "x"}}, "vm": {"kernel": {"path": "/k"}}}"#,
        )
        .expect("parse");
        assert_eq!(fields_set(&spec), vec!["vm", "linux.intelRdt"]);
        let err = check(&spec).expect_err("unsupported").to_string();
        assert!(err.contains("vm, linux.intelRdt not supported"), "{err}");
    }

    #[test]
    fn plain_spec_passes() {
        check(&Spec::default()).expect("default spec");
    }
}
