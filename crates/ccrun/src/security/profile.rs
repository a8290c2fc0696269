//! Seccomp profiles in Docker's format: an OCI `linux.seccomp` plus `archMap` and rule
//! groups that apply only with some capabilities, on some architectures or from some
//! kernel version on. [`render`] turns one into the spec's `linux.seccomp` for a given
//! container. ccrun's default profile (`default-seccomp.json`, an allow-list
//! equivalent to Docker's) and `--security-opt seccomp=FILE` files both use it.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSyscall, LinuxSyscallBuilder,
};
use serde::Deserialize;

/// ccrun's default profile.
pub const DEFAULT_PROFILE: &str = include_str!("default-seccomp.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    listener_path: Option<std::path::PathBuf>,
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older single-name form.
    name: Option<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// What a profile is rendered for.
#[derive(Debug, Clone)]
pub struct Target {
    /// The container's capabilities (its bounding set).
    pub caps: Vec<Capability>,
    /// libseccomp's name of the native architecture (`amd64`, `arm64`, …).
    pub arch: String,
    /// Kernel version (major, minor).
    pub kernel: (u32, u32),
}

impl Target {
    /// This host, for a container with `caps`.
    pub fn host(caps: Vec<Capability>) -> Target {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64le",
            other => other,
        }
        .to_string();
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Target {
            caps,
            arch,
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }

    fn native_scmp_arch(&self) -> Option<Arch> {
        Some(match self.arch.as_str() {
            "amd64" => Arch::ScmpArchX86_64,
            "arm64" => Arch::ScmpArchAarch64,
            "ppc64le" => Arch::ScmpArchPpc64le,
            "s390x" => Arch::ScmpArchS390x,
            "riscv64" => Arch::ScmpArchRiscv64,
            _ => return None,
        })
    }
}

/// `major.minor` of a kernel release such as `6.1.0-18-amd64`.
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn has_cap(target: &Target, name: &str) -> Result<bool> {
    let cap = ccrun_runtime::caps::parse(name)?;
    Ok(target.caps.contains(&cap))
}

impl Condition {
    /// True when every part of an `includes` holds.
    fn all_hold(&self, target: &Target) -> Result<bool> {
        for c in &self.caps {
            if !has_cap(target, c)? {
                return Ok(false);
            }
        }
        if !self.arches.is_empty() && !self.arches.contains(&target.arch) {
            return Ok(false);
        }
        if let Some(min) = &self.min_kernel {
            let min = parse_kernel(min)
                .with_context(|| format!("invalid minKernel {min:?} in the seccomp profile"))?;
            if target.kernel < min {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True when any part of an `excludes` holds.
    fn any_holds(&self, target: &Target) -> Result<bool> {
        for c in &self.caps {
            if has_cap(target, c)? {
                return Ok(true);
            }
        }
        Ok(self.arches.contains(&target.arch))
    }
}

/// Renders the profile in `json` for `target`.
pub fn render(json: &str, target: &Target) -> Result<LinuxSeccomp> {
    let profile: Profile = serde_json::from_str(json).context("parsing the seccomp profile")?;
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        bail!("the seccomp profile has both architectures and archMap: use one");
    }
    let mut arches = profile.architectures.clone();
    if arches.is_empty() {
        if let Some(native) = target.native_scmp_arch() {
            for m in profile.arch_map.iter().filter(|m| m.architecture == native) {
                arches.push(m.architecture);
                arches.extend(m.sub_architectures.iter().flatten().copied());
            }
        }
    }
    let mut syscalls: Vec<LinuxSyscall> = Vec::new();
    for rule in &profile.syscalls {
        if !rule.includes.all_hold(target)? || rule.excludes.any_holds(target)? {
            continue;
        }
        let mut names = rule.names.clone();
        names.extend(rule.name.clone());
        if names.is_empty() {
            bail!("a seccomp profile rule has no syscall names");
        }
        let mut b = LinuxSyscallBuilder::default()
            .names(names)
            .action(rule.action);
        if let Some(e) = rule.errno_ret {
            b = b.errno_ret(e);
        }
        if !rule.args.is_empty() {
            b = b.args(rule.args.clone());
        }
        syscalls.push(b.build()?);
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(profile.default_action);
    seccomp.set_default_errno_ret(profile.default_errno_ret);
    if !arches.is_empty() {
        seccomp.set_architectures(Some(arches));
    }
    if !profile.flags.is_empty() {
        seccomp.set_flags(Some(profile.flags));
    }
    seccomp.set_listener_path(profile.listener_path);
    seccomp.set_listener_metadata(profile.listener_metadata);
    seccomp.set_syscalls(Some(syscalls));
    Ok(seccomp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[Capability]) -> Target {
        Target {
            caps: caps.to_vec(),
            arch: "amd64".into(),
            kernel: (6, 1),
        }
    }

    fn allowed(s: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn default_profile_follows_the_capabilities() {
        let s = render(DEFAULT_PROFILE, &target(&[Capability::Chown])).expect("render");
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
        );
        for blocked in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "kexec_load",
            "bpf",
            "open_by_handle_at",
            "keyctl",
            "add_key",
            "perf_event_open",
        ] {
            assert!(allowed(&s, blocked).is_empty(), "{blocked} allowed");
        }
        // clone only without namespace flags; ptrace on kernels from 4.8.
        let clone = allowed(&s, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0].args().as_ref().expect("args")[0].value(),
            0x7E02_0000
        );
        assert_eq!(allowed(&s, "ptrace").len(), 1);
        assert_eq!(allowed(&s, "arch_prctl").len(), 1);
        assert!(allowed(&s, "s390_runtime_instr").is_empty());
        assert_eq!(allowed(&s, "personality").len(), 5);

        let admin = render(DEFAULT_PROFILE, &target(&[Capability::SysAdmin])).expect("render");
        for name in ["mount", "unshare", "setns", "clone"] {
            let rules = allowed(&admin, name);
            assert_eq!(rules.len(), 1, "{name}");
            assert!(rules[0].args().is_none(), "{name}");
        }
        let old = Target {
            kernel: (4, 4),
            ..target(&[])
        };
        assert!(allowed(&render(DEFAULT_PROFILE, &old).expect("render"), "ptrace").is_empty());
    }

    #[test]
    fn oci_profiles_pass_through() {
        let s = render(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
            &target(&[]),
        )
        .expect("render");
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64][..])
        );
        assert_eq!(allowed(&s, "mkdir")[0].errno_ret(), Some(13));
        assert!(render("{", &target(&[])).is_err());
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(parse_kernel("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("x"), None);
    }
}
