//! `linux.seccomp`: the spec's profile compiled to a BPF filter with libseccomp.
//!
//! The filter is compiled by the caller before it forks, so a bad profile is an error
//! of `create` (or `exec`), and loaded by the container's process as late as it can:
//! see [`crate::security`]. Like runc, syscall names libseccomp does not know on this
//! architecture are skipped, rules whose action is the default action are left out,
//! and several conditions on the same argument become separate rules (libseccomp ANDs
//! the conditions of one rule, which could never match for one argument).
//!
//! `SCMP_ACT_NOTIFY` hands matching syscalls to a seccomp agent: after loading, the
//! filter's notify fd goes to the agent listening on `listenerPath` (see
//! [`crate::security`]).

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

/// A compiled filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    ctx: ScmpFilterContext,
    /// Some rule (or the default) notifies a seccomp agent.
    notifies: bool,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidSpec(format!("seccomp: {}", msg.into()))
}

fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<ScmpAction> {
    use LinuxSeccompAction as A;
    let errno = || -> Result<i32> {
        let e = errno_ret.unwrap_or(libc::EPERM as u32);
        if e > u32::from(u16::MAX) {
            return Err(invalid(format!("errnoRet {e} is out of range")));
        }
        Ok(e as i32)
    };
    Ok(match action {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno()?),
        A::ScmpActTrace => ScmpAction::Trace(errno()? as u16),
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => ScmpAction::Notify,
    })
}

fn arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// The libseccomp condition of one argument rule. For `SCMP_CMP_MASKED_EQ` the spec's
/// `value` is the mask and `valueTwo` the value the masked argument must equal.
fn condition(arg: &oci_spec::runtime::LinuxSeccompArg) -> Result<ScmpArgCompare> {
    use LinuxSeccompOperator as O;
    if arg.index() > 5 {
        return Err(invalid(format!(
            "argument index {} is out of range (0-5)",
            arg.index()
        )));
    }
    let (op, datum) = match arg.op() {
        O::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        O::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        O::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        O::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        O::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        O::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        O::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

fn lib_err(what: &str) -> impl Fn(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| invalid(format!("{what}: {e}"))
}

/// Compiles `linux.seccomp`.
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    let default = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib_err("creating the filter"))?;
    // We set no_new_privs ourselves, when the spec asks for it.
    ctx.set_ctl_nnp(false)
        .map_err(lib_err("clearing the no_new_privs attribute"))?;
    for a in spec.architectures().iter().flatten() {
        let a = arch(*a);
        if ctx.is_arch_present(a).unwrap_or(false) {
            continue;
        }
        ctx.add_arch(a)
            .map_err(lib_err(&format!("adding architecture {a:?}")))?;
    }
    for flag in spec.flags().iter().flatten() {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(lib_err(&format!("flag {flag}")))?;
    }
    let mut notifies = default == ScmpAction::Notify;
    if notifies {
        return Err(invalid(
            "SCMP_ACT_NOTIFY cannot be the default action (the agent's own syscalls would wait for it)",
        ));
    }
    for rule in spec.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        notifies |= act == ScmpAction::Notify;
        let conditions = rule
            .args()
            .iter()
            .flatten()
            .map(condition)
            .collect::<Result<Vec<_>>>()?;
        let args = rule.args().as_deref().unwrap_or(&[]);
        let same_index_twice = args
            .iter()
            .enumerate()
            .any(|(i, a)| args[..i].iter().any(|b| b.index() == a.index()));
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: syscall {name} is unknown on this architecture: skipped");
                continue;
            };
            let what = format!("rule for {name}");
            if conditions.is_empty() {
                ctx.add_rule(act, syscall).map_err(lib_err(&what))?;
            } else if same_index_twice {
                for c in &conditions {
                    ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))
                        .map_err(lib_err(&what))?;
                }
            } else {
                ctx.add_rule_conditional(act, syscall, &conditions)
                    .map_err(lib_err(&what))?;
            }
        }
    }
    if notifies && spec.listener_path().is_none() {
        return Err(invalid(
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the seccomp agent's socket)",
        ));
    }
    Ok(Filter { ctx, notifies })
}

impl Filter {
    /// Loads the filter into the calling process (and what it execs). Without
    /// `no_new_privs` this needs `CAP_SYS_ADMIN`.
    pub fn load(&self) -> Result<()> {
        self.ctx
            .load()
            .map_err(|e| Error::Setup(format!("loading the seccomp filter: {e}")))
    }

    /// True when the filter hands syscalls to a seccomp agent.
    pub fn notifies(&self) -> bool {
        self.notifies
    }

    /// The notify fd of the loaded filter (only with [`Filter::notifies`]).
    pub fn notify_fd(&self) -> Result<std::os::fd::RawFd> {
        self.ctx
            .get_notify_fd()
            .map_err(|e| Error::Setup(format!("getting the seccomp notify fd: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("profile")
    }

    #[test]
    fn compiles_actions_conditions_and_skips_unknown_names() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[
                  {"names":["mkdirat","no_such_syscall"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                  {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
                     {"index":0,"value":8,"op":"SCMP_CMP_EQ"},{"index":0,"value":9,"op":"SCMP_CMP_EQ"}]},
                  {"names":["clone"],"action":"SCMP_ACT_KILL_PROCESS","args":[
                     {"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
                  {"names":["kill"],"action":"SCMP_ACT_TRAP"},
                  {"names":["tkill"],"action":"SCMP_ACT_LOG"},
                  {"names":["ptrace"],"action":"SCMP_ACT_TRACE"},
                  {"names":["reboot"],"action":"SCMP_ACT_KILL"}]}"#,
        );
        compile(&p).expect("compile");
    }

    #[test]
    fn notify_and_bad_arguments_are_refused() {
        let err = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("listenerPath"), "{err}");
        let filter = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .expect("compile");
        assert!(filter.notifies());
        let err = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap_err();
        assert!(err.to_string().contains("index 7"), "{err}");
    }
}
