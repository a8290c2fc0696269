//! The cgroup v2 device filter: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! generated from the OCI device rules, loaded with `bpf(2)` and attached to the
//! cgroup directory.
//!
//! cgroup v2 has no devices controller; the kernel instead runs every device
//! program attached to the cgroup (and its ancestors) on each device open and
//! `mknod`, and allows the access only if all of them return 1.
//!
//! # Semantics of the generated program
//!
//! The OCI list is evaluated as runc evaluates it: the default is deny, and for
//! each access right the *last* rule that matches the device and mentions that
//! right decides it. The program walks the rules from last to first while keeping
//! the rights still undecided in a register: a matching allow rule clears the rights
//! it grants (access is allowed once nothing is left), and a matching deny rule
//! denies the access if it mentions any right still undecided. Rights nobody
//! decided are denied at the end. So `[deny a, allow c 1:3 rwm, deny c 1:3 w]`
//! lets `/dev/null` be read but not written, and two allow rules for `r` and `w`
//! together allow a read-write open.
//!
//! The program contains only conditional jumps forward, so the verifier accepts
//! any rule list (no unreachable instructions, no loops).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::limits::{DeviceKind, DeviceRule};

// bpf(2) commands (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

// `struct bpf_cgroup_dev_ctx`: access_type (type in the low 16 bits, access in the
// high 16), major, minor; all u32.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEVCG_DEV_BLOCK: i32 = 1;
const DEVCG_DEV_CHAR: i32 = 2;
const DEVCG_ACC_MKNOD: i32 = 1;
const DEVCG_ACC_READ: i32 = 2;
const DEVCG_ACC_WRITE: i32 = 4;

/// Name shown by `bpftool prog` (at most 15 characters of `[A-Za-z0-9_.]`).
const PROG_NAME: &[u8] = b"ccrun_devices";
/// Device programs call no GPL-only helpers, so the project's licence will do.
const LICENSE: &str = "Apache-2.0";
/// Size of the verifier log buffer used to explain a rejected program.
const LOG_SIZE: usize = 1 << 16;
/// Programs attached directly to one cgroup that we look at when replacing ours.
const MAX_QUERY: usize = 64;

/// One eBPF instruction (`struct bpf_insn`), in the kernel's layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble (little endian bitfield).
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes: class | op | source.
const LDX_MEM_W: u8 = 0x01 | 0x60; // BPF_LDX | BPF_MEM | BPF_W (BPF_W is 0)
const ALU32_AND_K: u8 = 0x04 | 0x50; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x04 | 0x70; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0x07 | 0xb0; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JEQ_K: u8 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_JNE_K: u8 = 0x05 | 0x50; // BPF_JMP | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x05 | 0x90; // BPF_JMP | BPF_EXIT

// Registers: R0 return value, R1 context, R2 device type, R3 undecided access
// rights, R4 major, R5 minor, R6 scratch.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

fn access_bits(rule: &DeviceRule) -> i32 {
    let a = rule.access;
    (if a.read { DEVCG_ACC_READ } else { 0 })
        | (if a.write { DEVCG_ACC_WRITE } else { 0 })
        | (if a.mknod { DEVCG_ACC_MKNOD } else { 0 })
}

/// Generates the device filter for `rules` (see the module docs for the semantics).
pub(crate) fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>> {
    let mut prog = vec![
        // R2 = device type, R3 = requested access, R4 = major, R5 = minor.
        insn(LDX_MEM_W, R2, R1, CTX_ACCESS_TYPE, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, CTX_ACCESS_TYPE, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, CTX_MAJOR, 0),
        insn(LDX_MEM_W, R5, R1, CTX_MINOR, 0),
    ];
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        // Each match check jumps over the rest of the block when it fails; the jump
        // offsets are patched once the block's length is known.
        let mut skips = Vec::new();
        match rule.kind {
            DeviceKind::All => {}
            DeviceKind::Block => {
                skips.push(block.len());
                block.push(insn(JMP_JNE_K, R2, 0, 0, DEVCG_DEV_BLOCK));
            }
            DeviceKind::Char => {
                skips.push(block.len());
                block.push(insn(JMP_JNE_K, R2, 0, 0, DEVCG_DEV_CHAR));
            }
        }
        for (reg, number) in [(R4, rule.major), (R5, rule.minor)] {
            if let Some(n) = number {
                let imm = i32::try_from(n).map_err(|_| Error::InvalidResource {
                    setting: "devices",
                    reason: format!("device number {n} is out of range"),
                })?;
                skips.push(block.len());
                block.push(insn(JMP_JNE_K, reg, 0, 0, imm));
            }
        }
        let bits = access_bits(rule);
        if rule.allow {
            // The rights this rule grants are decided; allow once none is left.
            block.push(insn(ALU32_AND_K, R3, 0, 0, !bits & 0x7));
            block.push(insn(JMP_JNE_K, R3, 0, 2, 0));
            block.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
            block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        } else {
            // Deny if the rule names any right not decided by a later rule.
            block.push(insn(ALU32_MOV_X, R6, R3, 0, 0));
            block.push(insn(ALU32_AND_K, R6, 0, 0, bits));
            block.push(insn(JMP_JEQ_K, R6, 0, 2, 0));
            block.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
            block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        }
        let len = block.len();
        for at in skips {
            // Jump to the first instruction after the block.
            block[at].off = i16::try_from(len - at - 1).map_err(|_| Error::InvalidResource {
                setting: "devices",
                reason: "device rule block too long".to_string(),
            })?;
        }
        prog.extend(block);
    }
    // Rights no rule decided are denied.
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(prog)
}

/// A zeroed `union bpf_attr`, larger than any kernel's so that fields the kernel
/// writes back (e.g. a newer `query.revision`) always land inside it.
#[repr(C, align(8))]
struct Attr([u8; 256]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 256])
    }

    fn put_u32(&mut self, offset: usize, value: u32) {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    }

    fn put_u64(&mut self, offset: usize, value: u64) {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
    }

    fn get_u32(&self, offset: usize) -> u32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_ne_bytes(bytes)
    }
}

/// Calls `bpf(cmd, attr, sizeof attr)`, returning the non-negative result.
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable buffer of the size passed, zero beyond the
    // fields set, as bpf(2) requires; pointers inside it outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn bpf_fd(cmd: libc::c_long, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this new file descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf_error(op: &'static str, path: &Path, source: io::Error, log: String) -> Error {
    Error::Bpf {
        op,
        path: path.to_path_buf(),
        source,
        log,
    }
}

/// Loads `prog` into the kernel as a cgroup device program.
fn load(prog: &[Insn], path: &Path) -> Result<OwnedFd> {
    let license = CString::new(LICENSE).map_err(|e| {
        bpf_error(
            "loading the device filter",
            path,
            io::Error::other(e),
            String::new(),
        )
    })?;
    let insn_cnt = u32::try_from(prog.len()).map_err(|_| Error::InvalidResource {
        setting: "devices",
        reason: "too many device rules".to_string(),
    })?;
    let attr = |log: Option<&mut Vec<u8>>| {
        let mut attr = Attr::new();
        attr.put_u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
        attr.put_u32(4, insn_cnt);
        attr.put_u64(8, prog.as_ptr() as u64);
        attr.put_u64(16, license.as_ptr() as u64);
        if let Some(log) = log {
            attr.put_u32(24, 1);
            attr.put_u32(28, u32::try_from(log.len()).unwrap_or(u32::MAX));
            attr.put_u64(32, log.as_mut_ptr() as u64);
        }
        attr.0[48..48 + PROG_NAME.len()].copy_from_slice(PROG_NAME);
        attr.put_u32(68, BPF_CGROUP_DEVICE);
        attr
    };
    match bpf_fd(BPF_PROG_LOAD, &mut attr(None)) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Load again with the verifier log on, to say why it was rejected.
            let mut log = vec![0u8; LOG_SIZE];
            let retried = bpf_fd(BPF_PROG_LOAD, &mut attr(Some(&mut log)));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            match retried {
                Ok(fd) => Ok(fd),
                Err(_) => Err(bpf_error(
                    "loading the device filter",
                    path,
                    first,
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(" (verifier: {text})")
                    },
                )),
            }
        }
    }
}

/// Ids of the device programs attached directly to the cgroup `dir`.
fn attached(dir: &OwnedFd, path: &Path) -> Result<Vec<u32>> {
    let mut ids = [0u32; MAX_QUERY];
    let mut attr = Attr::new();
    attr.put_u32(0, dir.as_raw_fd().unsigned_abs());
    attr.put_u32(4, BPF_CGROUP_DEVICE);
    attr.put_u64(16, ids.as_mut_ptr() as u64);
    attr.put_u32(24, MAX_QUERY as u32);
    bpf(BPF_PROG_QUERY, &mut attr)
        .map_err(|e| bpf_error("listing the device programs", path, e, String::new()))?;
    let count = (attr.get_u32(24) as usize).min(MAX_QUERY);
    Ok(ids[..count].to_vec())
}

fn prog_fd(id: u32, path: &Path) -> Result<OwnedFd> {
    let mut attr = Attr::new();
    attr.put_u32(0, id);
    bpf_fd(BPF_PROG_GET_FD_BY_ID, &mut attr)
        .map_err(|e| bpf_error("opening an attached device program", path, e, String::new()))
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Loads the filter for `rules` and attaches it to the cgroup directory `path`,
/// replacing the program(s) a previous call attached there, so that applying
/// again (an update) leaves exactly one ccrun filter in force.
///
/// Every program attached directly to a container's cgroup is taken to be ours:
/// nothing else attaches to a cgroup ccrun created.
pub(crate) fn apply(path: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = program(rules)?;
    let dir = open_dir(path)?;
    let new = load(&prog, path)?;
    let old: Vec<OwnedFd> = attached(&dir, path)?
        .into_iter()
        .map(|id| prog_fd(id, path))
        .collect::<Result<_>>()?;
    let mut attr = Attr::new();
    attr.put_u32(0, dir.as_raw_fd().unsigned_abs());
    attr.put_u32(4, new.as_raw_fd().unsigned_abs());
    attr.put_u32(8, BPF_CGROUP_DEVICE);
    if let [only] = old.as_slice() {
        // Swap atomically: no moment with both filters or with none.
        attr.put_u32(12, BPF_F_ALLOW_MULTI | BPF_F_REPLACE);
        attr.put_u32(16, only.as_raw_fd().unsigned_abs());
        tracing::debug!(path = %path.display(), "replacing the device filter");
        match bpf(BPF_PROG_ATTACH, &mut attr) {
            Ok(_) => return Ok(()),
            // Kernels before 5.6 lack BPF_F_REPLACE: attach, then detach below.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!("BPF_F_REPLACE refused; attaching then detaching instead");
                attr.put_u32(16, 0);
            }
            Err(e) => {
                return Err(bpf_error(
                    "replacing the device filter",
                    path,
                    e,
                    String::new(),
                ))
            }
        }
    }
    attr.put_u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|e| bpf_error("attaching the device filter", path, e, String::new()))?;
    // Until the old ones are gone both apply, which only ever denies more.
    for fd in &old {
        let mut attr = Attr::new();
        attr.put_u32(0, dir.as_raw_fd().unsigned_abs());
        attr.put_u32(4, fd.as_raw_fd().unsigned_abs());
        attr.put_u32(8, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_DETACH, &mut attr).map_err(|e| {
            bpf_error(
                "detaching the previous device filter",
                path,
                e,
                String::new(),
            )
        })?;
    }
    Ok(())
}

/// Number of device programs attached directly to the cgroup `path` (for tests).
pub(crate) fn attached_count(path: &Path) -> Result<usize> {
    let dir = open_dir(path)?;
    Ok(attached(&dir, path)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Access;

    fn rule(allow: bool, kind: DeviceKind, major: Option<u32>, minor: Option<u32>) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: Access::ALL,
        }
    }

    /// Runs the generated program the way the kernel would, for one access.
    /// Only the instructions `program` emits are interpreted.
    fn run(prog: &[Insn], dev_type: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | dev_type, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let dst = usize::from(i.regs & 0xf);
            let src = usize::from(i.regs >> 4);
            let imm = i.imm as u32 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[i.off as usize / 4]),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & imm as u32) as u64,
                ALU32_RSH_K => r[dst] = (r[dst] as u32 >> imm) as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                ALU64_MOV_K => r[dst] = i.imm as i64 as u64,
                JMP_JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JMP_JEQ_K | JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    const CHAR: u32 = 2;
    const BLOCK: u32 = 1;
    const R: u32 = 2;
    const W: u32 = 4;
    const M: u32 = 1;

    #[test]
    fn empty_list_denies_everything() {
        let p = program(&[]).unwrap();
        assert_eq!(run(&p, CHAR, R, 1, 3), 0);
        assert_eq!(run(&p, BLOCK, W, 8, 0), 0);
    }

    #[test]
    fn deny_all_then_allow_one_device() {
        let mut null = rule(true, DeviceKind::Char, Some(1), Some(3));
        null.access = Access {
            read: true,
            write: true,
            mknod: false,
        };
        let p = program(&[rule(false, DeviceKind::All, None, None), null]).unwrap();
        assert_eq!(run(&p, CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, CHAR, R | W, 1, 3), 1);
        assert_eq!(run(&p, CHAR, M, 1, 3), 0);
        assert_eq!(run(&p, CHAR, R, 1, 5), 0);
        assert_eq!(run(&p, BLOCK, R, 1, 3), 0);
    }

    #[test]
    fn last_matching_rule_wins_per_right() {
        let mut deny_write = rule(false, DeviceKind::Char, Some(1), Some(3));
        deny_write.access = Access {
            read: false,
            write: true,
            mknod: false,
        };
        let rules = [
            rule(false, DeviceKind::All, None, None),
            rule(true, DeviceKind::Char, Some(1), None),
            deny_write,
        ];
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, CHAR, W, 1, 3), 0);
        assert_eq!(run(&p, CHAR, R | W, 1, 3), 0);
        assert_eq!(run(&p, CHAR, W, 1, 5), 1);

        // Re-allowing after the deny wins again.
        let mut rules = rules.to_vec();
        rules.push(rule(true, DeviceKind::Char, Some(1), Some(3)));
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, CHAR, R | W, 1, 3), 1);
    }

    #[test]
    fn allow_all_then_deny_block_devices() {
        let rules = [
            rule(true, DeviceKind::All, None, None),
            rule(false, DeviceKind::Block, None, None),
        ];
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, CHAR, R | W | M, 4, 64), 1);
        assert_eq!(run(&p, BLOCK, R, 8, 0), 0);
    }

    #[test]
    fn rights_granted_by_separate_rules_add_up() {
        let mut read = rule(true, DeviceKind::Char, Some(1), Some(3));
        read.access = Access {
            read: true,
            write: false,
            mknod: false,
        };
        let mut write = read;
        write.access = Access {
            read: false,
            write: true,
            mknod: false,
        };
        let p = program(&[read, write]).unwrap();
        assert_eq!(run(&p, CHAR, R | W, 1, 3), 1);
        assert_eq!(run(&p, CHAR, M, 1, 3), 0);
    }
}
