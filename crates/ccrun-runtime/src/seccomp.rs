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
//!
//! Building a filter as large as Docker's default profile with libseccomp and
//! generating its BPF cost more than the rest of a container's start, so, as crun does,
//! the generated program is cached: under the runtime's state root, keyed by the
//! SHA-256 of the profile, libseccomp's version and API level and the kernel release
//! (what the generated code depends on), and loaded with `seccomp(2)` directly. Filters
//! that notify an agent are not cached: libseccomp must load those to hand back the
//! notify fd.

use std::io::Write;
use std::path::{Path, PathBuf};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
    ScmpVersion,
};
use nix::errno::Errno;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Name of the cache directory under a state root (a dot name: never a container id).
pub const CACHE_DIR: &str = ".seccomp-cache";

/// Size of one classic BPF instruction (`struct sock_filter`).
const INSN_SIZE: usize = std::mem::size_of::<libc::sock_filter>();

/// A compiled filter, ready to load.
pub enum Filter {
    /// The generated BPF program and the `seccomp(2)` flags to load it with.
    Program {
        /// The instructions.
        code: Vec<libc::sock_filter>,
        /// `SECCOMP_FILTER_FLAG_*`.
        flags: libc::c_ulong,
    },
    /// A libseccomp context, for a filter that notifies a seccomp agent.
    Notifying(ScmpFilterContext),
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Program { code, flags } => f
                .debug_struct("Program")
                .field("instructions", &code.len())
                .field("flags", flags)
                .finish(),
            Filter::Notifying(_) => f.write_str("Notifying"),
        }
    }
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

/// Compiles `linux.seccomp`, through the program cache in `cache_dir` when given (a
/// cache that cannot be read or written only costs the compilation).
pub fn compile(spec: &LinuxSeccomp, cache_dir: Option<&Path>) -> Result<Filter> {
    let notifies = spec.default_action() == LinuxSeccompAction::ScmpActNotify
        || spec
            .syscalls()
            .iter()
            .flatten()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    let flags = load_flags(spec);
    let cached = match cache_dir {
        Some(dir) if !notifies => Some(dir.join(cache_key(spec)?)),
        _ => None,
    };
    if let Some(code) = cached.as_deref().and_then(read_program) {
        return Ok(Filter::Program { code, flags });
    }
    let ctx = build(spec)?;
    if notifies {
        return Ok(Filter::Notifying(ctx));
    }
    let code = export(&ctx)?;
    if let Some(path) = &cached {
        if let Err(e) = write_program(path, &code) {
            tracing::debug!(
                "seccomp: not caching the program at {}: {e}",
                path.display()
            );
        }
    }
    Ok(Filter::Program { code, flags })
}

/// The flags libseccomp would load the filter with, from the spec's `flags`.
fn load_flags(spec: &LinuxSeccomp) -> libc::c_ulong {
    spec.flags()
        .iter()
        .flatten()
        .map(|flag| match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        })
        .fold(0, |acc, f| acc | f)
}

/// The cache file name of `spec`'s program: everything the generated code depends on.
fn cache_key(spec: &LinuxSeccomp) -> Result<String> {
    let profile =
        serde_json::to_vec(spec).map_err(|e| invalid(format!("encoding the profile: {e}")))?;
    let version = ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(&profile);
    hash.update(format!(
        "\0{version}\0{}\0{kernel}\0{}",
        libseccomp::get_api(),
        std::env::consts::ARCH
    ));
    let digest = hash.finalize();
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + ".bpf")
}

/// Generates the BPF program of a built filter.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let mut file = tempfile_in_memory()?;
    ctx.export_bpf(&file)
        .map_err(lib_err("generating the BPF program"))?;
    let mut bytes = Vec::new();
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| Error::Setup(format!("reading the generated seccomp program: {e}")))?;
    decode(&bytes).ok_or_else(|| Error::Setup("libseccomp generated a malformed program".into()))
}

fn tempfile_in_memory() -> Result<std::fs::File> {
    let fd = nix::sys::memfd::memfd_create(
        c"ccrun-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| Error::sys("memfd_create for the seccomp program", e))?;
    Ok(std::fs::File::from(fd))
}

/// Instructions from their bytes; `None` unless a whole, non-empty number of them.
fn decode(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(INSN_SIZE)
        || bytes.len() / INSN_SIZE > u16::MAX as usize
    {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSN_SIZE)
            .map(|b| libc::sock_filter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect(),
    )
}

fn encode(code: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(code.len() * INSN_SIZE);
    for insn in code {
        out.extend_from_slice(&insn.code.to_ne_bytes());
        out.extend_from_slice(&[insn.jt, insn.jf]);
        out.extend_from_slice(&insn.k.to_ne_bytes());
    }
    out
}

fn read_program(path: &Path) -> Option<Vec<libc::sock_filter>> {
    decode(&std::fs::read(path).ok()?)
}

/// Writes the program atomically (temp file, rename), so a concurrent reader sees the
/// whole program or none.
fn write_program(path: &Path, code: &[libc::sock_filter]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&encode(code)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The cache directory under `state_root`.
pub fn cache_dir(state_root: &Path) -> PathBuf {
    state_root.join(CACHE_DIR)
}

/// Builds the libseccomp filter of `spec`.
fn build(spec: &LinuxSeccomp) -> Result<ScmpFilterContext> {
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
    Ok(ctx)
}

impl Filter {
    /// Loads the filter into the calling process (and what it execs). Without
    /// `no_new_privs` this needs `CAP_SYS_ADMIN`. Async-signal-safe for a program.
    pub fn load(&self) -> Result<()> {
        match self {
            Filter::Program { code, flags } => {
                let prog = libc::sock_fprog {
                    // `decode` and libseccomp keep programs under u16::MAX instructions.
                    len: code.len() as libc::c_ushort,
                    filter: code.as_ptr() as *mut libc::sock_filter,
                };
                // SAFETY: `prog` points at `code`, which outlives the call; the kernel
                // copies the program.
                let ret = unsafe {
                    libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        *flags,
                        &prog as *const libc::sock_fprog,
                    )
                };
                Errno::result(ret)
                    .map(drop)
                    .map_err(|e| Error::Setup(format!("loading the seccomp filter: {e}")))
            }
            Filter::Notifying(ctx) => ctx
                .load()
                .map_err(|e| Error::Setup(format!("loading the seccomp filter: {e}"))),
        }
    }

    /// True when the filter hands syscalls to a seccomp agent.
    pub fn notifies(&self) -> bool {
        matches!(self, Filter::Notifying(_))
    }

    /// The notify fd of the loaded filter (only with [`Filter::notifies`]).
    pub fn notify_fd(&self) -> Result<std::os::fd::RawFd> {
        match self {
            Filter::Notifying(ctx) => ctx
                .get_notify_fd()
                .map_err(|e| Error::Setup(format!("getting the seccomp notify fd: {e}"))),
            Filter::Program { .. } => Err(Error::Setup(
                "the seccomp filter does not notify an agent".into(),
            )),
        }
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
        compile(&p, None).expect("compile");
    }

    fn program(filter: &Filter) -> Vec<u8> {
        match filter {
            Filter::Program { code, .. } => encode(code),
            Filter::Notifying(_) => panic!("expected a program"),
        }
    }

    #[test]
    fn programs_are_cached_and_a_damaged_entry_is_regenerated() {
        let cache = tempfile::tempdir().expect("tempdir");
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let first = compile(&p, Some(cache.path())).expect("compile");
        let entries: Vec<_> = std::fs::read_dir(cache.path())
            .expect("cache dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(std::fs::read(&entries[0]).expect("entry"), program(&first));
        assert!(
            matches!(first, Filter::Program { flags, .. } if flags == libc::SECCOMP_FILTER_FLAG_LOG)
        );

        // A hit is the same program; a different profile is another entry.
        assert_eq!(
            program(&compile(&p, Some(cache.path())).expect("hit")),
            program(&first)
        );
        let mut other = p.clone();
        other.set_default_errno_ret(Some(2));
        let second = compile(&other, Some(cache.path())).expect("compile other");
        assert_ne!(program(&second), program(&first));
        assert_eq!(std::fs::read_dir(cache.path()).expect("dir").count(), 2);

        // A torn or foreign file is not trusted: the program is generated again.
        std::fs::write(&entries[0], b"garbage").expect("damage");
        assert_eq!(
            program(&compile(&p, Some(cache.path())).expect("regenerated")),
            program(&first)
        );
        assert_eq!(std::fs::read(&entries[0]).expect("entry"), program(&first));
    }

    #[test]
    fn notify_and_bad_arguments_are_refused() {
        let err = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ), None)
        .unwrap_err();
        assert!(err.to_string().contains("listenerPath"), "{err}");
        let filter = compile(
            &profile(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
            ),
            None,
        )
        .expect("compile");
        assert!(filter.notifies());
        let err = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ), None)
        .unwrap_err();
        assert!(err.to_string().contains("index 7"), "{err}");
    }
}
