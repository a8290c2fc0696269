//! Hostile layer archives that are cheap to make: decompression bombs and trees
//! deeper than the fd limit or a thread's stack. Shared with the engine's tests
//! (`crates/ccrun/tests/hostile_images.rs` includes this file), which push them to
//! a registry.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A GNU header for an entry of `size` bytes owned by root, path not yet set.
pub fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A gzip stream of a tar holding one file of `zeros` zero bytes (a multiple of 512),
/// written as many gzip members (which decoders must accept, as some tools write
/// them) so that the 1 MiB member of zeros is compressed once and repeated: about
/// 1000 times smaller than what it unpacks to, and fast to build even unoptimized.
pub fn gzip_bomb(zeros: u64) -> Vec<u8> {
    let mut header = header(tar::EntryType::Regular, 0o644, zeros);
    header.set_path("zeros").expect("path");
    header.set_cksum();
    let mut out = gzip(header.as_bytes());
    let chunk = 1 << 20;
    let member = gzip(&vec![0u8; chunk]);
    // The file, then at least the two zero blocks that end the archive.
    for _ in 0..(zeros + 1024).div_ceil(chunk as u64) {
        out.extend_from_slice(&member);
    }
    out
}

/// One gzip member of `data`, compressed as well as gzip can (about 1000:1 for zeros).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// The path of the file at the bottom of [`deep_tree`]: `depth` directories `d`.
pub fn deep_path(depth: usize) -> String {
    format!("{}file", "d/".repeat(depth))
}

/// An uncompressed tar with a file `depth` directories down (paths as GNU long
/// names). Every `dir_every`-th directory also has an entry of its own (mode 0750),
/// as `tar` writes them; the others are implied by the paths below them. (An entry
/// for each level would make the archive quadratic in the depth, slow to unpack in a
/// debug build, without testing more.)
pub fn deep_tree(depth: usize, dir_every: Option<usize>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |kind: tar::EntryType, path: &str, mode: u32, data: &[u8]| {
        let mut h = header(kind, mode, data.len() as u64);
        b.append_data(&mut h, path, data).expect("append");
    };
    if let Some(every) = dir_every {
        for level in (every..=depth).step_by(every) {
            add(tar::EntryType::Directory, &"d/".repeat(level), 0o750, b"");
        }
    }
    add(tar::EntryType::Regular, &deep_path(depth), 0o644, b"bottom");
    b.into_inner().expect("tar")
}

/// `chattr +i` on a file, which even root cannot then remove; undone on drop wherever
/// the file has moved below `root` meanwhile (a store moves layers aside).
pub struct Immutable {
    name: std::ffi::OsString,
    root: PathBuf,
}

impl Immutable {
    /// Makes `path` immutable; `root` is where to look for it on drop.
    pub fn set(path: &Path, root: &Path) -> Immutable {
        let out = Command::new("chattr")
            .arg("+i")
            .arg(path)
            .output()
            .expect("chattr");
        assert!(
            out.status.success(),
            "chattr +i (needs a filesystem with the immutable flag, as ext4): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Immutable {
            name: path.file_name().expect("name").to_owned(),
            root: root.to_path_buf(),
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let found = Command::new("find")
            .arg(&self.root)
            .arg("-name")
            .arg(&self.name)
            .output()
            .expect("find");
        for line in String::from_utf8_lossy(&found.stdout).lines() {
            let _ = Command::new("chattr").arg("-i").arg(line).status();
        }
    }
}

/// Makes `cmd` run with `RLIMIT_NOFILE` at 1024, a common default (the test process
/// keeps its own).
pub fn with_1024_fds(cmd: &mut Command) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe, and only lowers the child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}
