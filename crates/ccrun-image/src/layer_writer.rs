//! Writing a directory in overlayfs' upper-directory format as an OCI layer tarball:
//! the inverse of [`crate::unpack`].
//!
//! The directory is what a container's `upper/` holds after it ran (or a layer
//! directory of the store, which has the same format): a 0/0 character device is a
//! deleted entry and becomes a `.wh.NAME` whiteout, a directory with
//! `trusted.overlay.opaque=y` replaced everything below it and gets a
//! `.wh..wh..opq` marker, and other `trusted.overlay.*` attributes are overlayfs'
//! bookkeeping and are left out. Hardlinks within the directory stay hardlinks.
//!
//! The output is deterministic: entries in byte order of their paths, no user or
//! group names, no access or change times, and (with [`WriteOptions::clamp_mtime`],
//! i.e. `SOURCE_DATE_EPOCH`) no modification time later than the given one. So the
//! same tree always gives the same diff-id, and writing a layer unpacked from such a
//! tarball gives the same tarball back.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};
use crate::unpack::OPAQUE_XATTR;

/// The prefix of a whiteout entry's name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the entry that makes its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How the owners of the files on disk become the owners recorded in the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owners {
    /// As they are on disk (a store layer, or a container without a user namespace).
    #[default]
    Keep,
    /// Shifted back from a user namespace's host range: host id `start + n` is
    /// recorded as `n`; ids outside the range as the overflow id 65534, as the
    /// container saw them.
    Unshift {
        /// First host uid of the range.
        uid_start: u32,
        /// First host gid of the range.
        gid_start: u32,
        /// Number of ids in the range.
        count: u32,
    },
    /// From a rootless `--userns keep-id` container: on disk (in the rootless user
    /// namespace) 0 is the caller's own `uid`/`gid` inside, ids `1..=own` are the
    /// container's `0..own`, others up to `count` the same ids; the rest 65534.
    KeepId {
        /// The caller's uid, as the container sees it.
        uid: u32,
        /// The caller's gid, as the container sees it.
        gid: u32,
        /// Ids the rootless namespace maps (root included).
        count: u32,
    },
}

/// Container id of id `id` on disk under keep-id (see [`Owners::KeepId`]).
fn unkeep_id(id: u32, own: u32, count: u32) -> u32 {
    match id {
        0 => own,
        _ if id <= own => id - 1,
        _ if id < count => id,
        _ => 65_534,
    }
}

/// On-disk id of container id `id` under keep-id, the inverse of [`unkeep_id`].
fn keep_id(id: u32, own: u32, count: u32) -> u32 {
    match id {
        _ if id == own => 0,
        _ if id < own => id + 1,
        _ if id < count => id,
        _ => 65_534,
    }
}

impl Owners {
    /// The on-disk uid and gid of container ids `uid`/`gid`: the inverse of the
    /// mapping into the layer (65534 for ids outside it).
    pub fn host_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        match *self {
            Owners::Keep => (uid, gid),
            Owners::Unshift {
                uid_start,
                gid_start,
                count,
            } => {
                let shift = |id: u32, start: u32| {
                    if id < count {
                        start.saturating_add(id)
                    } else {
                        65_534
                    }
                };
                (shift(uid, uid_start), shift(gid, gid_start))
            }
            Owners::KeepId {
                uid: own_uid,
                gid: own_gid,
                count,
            } => (keep_id(uid, own_uid, count), keep_id(gid, own_gid, count)),
        }
    }

    /// The uid and gid recorded in the layer (the container's) of files owned by
    /// `uid`/`gid` on disk: the inverse of [`Owners::host_ids`].
    pub fn container_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        match *self {
            Owners::Keep => (uid, gid),
            Owners::Unshift {
                uid_start,
                gid_start,
                count,
            } => {
                let shift = |id: u32, start: u32| match id.checked_sub(start) {
                    Some(n) if n < count => n,
                    _ => 65_534,
                };
                (shift(uid, uid_start), shift(gid, gid_start))
            }
            Owners::KeepId {
                uid: own_uid,
                gid: own_gid,
                count,
            } => (
                unkeep_id(uid, own_uid, count),
                unkeep_id(gid, own_gid, count),
            ),
        }
    }
}

/// How to write a layer.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// How owners on disk map to owners in the layer.
    pub owners: Owners,
    /// Modification times later than this (seconds since the epoch) are written as
    /// this, for reproducible layers (`SOURCE_DATE_EPOCH`).
    pub clamp_mtime: Option<u64>,
}

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// The digest of the tarball: the layer's diff-id.
    pub diff_id: Digest,
    /// Bytes of tarball.
    pub size: u64,
    /// Entries written (whiteouts and opaque markers included).
    pub entries: u64,
}

/// Writes the tree under `dir` (not `dir` itself) as an uncompressed layer tarball
/// to `out`, returning its diff-id and size. Sockets are left out, as Docker does.
pub fn write_layer<W: Write>(dir: &Path, out: W, opts: &WriteOptions) -> Result<WrittenLayer> {
    write_layer_excluding(dir, out, opts, &[])
}

/// [`write_layer`] without the entries at the paths `exclude` (relative to `dir`,
/// e.g. `etc/hosts`) and what is below them: the mount points an engine adds to
/// a container, which `commit` leaves out as Docker does.
pub fn write_layer_excluding<W: Write>(
    dir: &Path,
    out: W,
    opts: &WriteOptions,
    exclude: &[PathBuf],
) -> Result<WrittenLayer> {
    let mut writer = Writer {
        builder: tar::Builder::new(HashingWriter::new(out)),
        opts,
        links: HashMap::new(),
        entries: 0,
        root: dir,
    };
    // Depth-first in byte order of the names, without recursion (a tree may be deep).
    let mut stack: Vec<PathBuf> = sorted_children(dir, Path::new(""))?;
    stack.reverse();
    while let Some(rel) = stack.pop() {
        if exclude.contains(&rel) {
            continue;
        }
        let is_dir = writer.entry(&rel)?;
        if is_dir {
            let mut children = sorted_children(&dir.join(&rel), &rel)?;
            children.reverse();
            stack.extend(children);
        }
    }
    let hashing = writer
        .builder
        .into_inner()
        .map_err(|e| write_error(dir, e))?;
    let size = hashing.count();
    let (diff_id, mut out) = hashing.finish();
    out.flush().map_err(|e| write_error(dir, e))?;
    Ok(WrittenLayer {
        diff_id,
        size,
        entries: writer.entries,
    })
}

/// The entries of `dir` as paths relative to the layer root (`rel/NAME`), in byte order.
fn sorted_children(dir: &Path, rel: &Path) -> Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ctx("listing", dir)? {
        names.push(entry.ctx("listing", dir)?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| rel.join(n)).collect())
}

/// The header of a whiteout or opaque marker: an empty root-owned file.
fn marker_header() -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(0);
    header.set_mtime(0);
    header
}

fn write_error(dir: &Path, source: std::io::Error) -> Error {
    Error::Io {
        context: "writing a layer of",
        path: dir.to_path_buf(),
        source,
    }
}

struct Writer<'a, W: Write> {
    builder: tar::Builder<HashingWriter<W>>,
    opts: &'a WriteOptions,
    /// (device, inode) of multiply-linked files already written → their path.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
    root: &'a Path,
}

impl<W: Write> Writer<'_, W> {
    /// Writes the entry at `rel`; returns whether it is a directory to descend into.
    fn entry(&mut self, rel: &Path) -> Result<bool> {
        let path = self.root.join(rel);
        let meta = fs::symlink_metadata(&path).ctx("reading", &path)?;
        let ft = meta.file_type();
        let mut header = tar::Header::new_gnu();
        let (uid, gid) = self.opts.owners.container_ids(meta.uid(), meta.gid());
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mode(meta.mode() & 0o7777);
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        header.set_mtime(self.opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
        header.set_size(0);
        if ft.is_char_device() && meta.rdev() == 0 {
            // A whiteout: the entry was deleted.
            let name = rel.file_name().unwrap_or_default();
            let mut wh = std::ffi::OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            let wh_path = rel.with_file_name(wh);
            // Fixed metadata: only the name means something, and the whiteout's own
            // owner and time on disk depend on who deleted the entry and when.
            let mut header = marker_header();
            self.append(&mut header, &wh_path, &[][..], &path)?;
            return Ok(false);
        }
        if ft.is_socket() {
            return Ok(false);
        }
        let xattrs = self.xattrs(&path)?;
        let opaque = ft.is_dir()
            && xattrs
                .iter()
                .any(|(k, v)| k == OPAQUE_XATTR && v.as_slice() == b"y");
        let kept: Vec<(String, Vec<u8>)> = xattrs
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .collect();
        if !kept.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = kept
                .into_iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
                .collect();
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| write_error(&path, e))?;
        }
        if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            let mut name = rel.as_os_str().to_os_string();
            name.push("/");
            self.append(&mut header, Path::new(&name), &[][..], &path)?;
            if opaque {
                let mut marker = marker_header();
                self.append(&mut marker, &rel.join(OPAQUE_MARKER), &[][..], &path)?;
            }
            return Ok(true);
        }
        if ft.is_symlink() {
            let target = fs::read_link(&path).ctx("reading link", &path)?;
            header.set_entry_type(tar::EntryType::Symlink);
            self.builder
                .append_link(&mut header, rel, &target)
                .map_err(|e| write_error(&path, e))?;
            self.entries += 1;
            return Ok(false);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    header.set_entry_type(tar::EntryType::Link);
                    self.builder
                        .append_link(&mut header, rel, &first)
                        .map_err(|e| write_error(&path, e))?;
                    self.entries += 1;
                    return Ok(false);
                }
                self.links.insert(key, rel.to_path_buf());
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = fs::File::open(&path).ctx("opening", &path)?;
            self.append(&mut header, rel, file, &path)?;
            return Ok(false);
        }
        if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            header.set_entry_type(kind);
            let rdev = meta.rdev();
            header
                .set_device_major(libc::major(rdev))
                .and_then(|()| header.set_device_minor(libc::minor(rdev)))
                .map_err(|e| write_error(&path, e))?;
            self.append(&mut header, rel, &[][..], &path)?;
        }
        Ok(false)
    }

    fn append(
        &mut self,
        header: &mut tar::Header,
        name: &Path,
        data: impl std::io::Read,
        shown: &Path,
    ) -> Result<()> {
        self.builder
            .append_data(header, name, data)
            .map_err(|e| write_error(shown, e))?;
        self.entries += 1;
        Ok(())
    }

    /// Extended attributes of `path` (not followed), with a v3 file capability
    /// (which names the host id of a user namespace's root) written as v2, which
    /// any root may use, as containers-storage does.
    fn xattrs(&self, path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let names = match list_xattrs(path) {
            Ok(names) => names,
            Err(rustix::io::Errno::NOTSUP) => return Ok(out),
            Err(e) => return Err(e).ctx("listing xattrs of", path),
        };
        for name in names {
            let mut value = match get_xattr(path, &name) {
                Ok(v) => v,
                Err(rustix::io::Errno::NODATA) => continue,
                Err(e) => return Err(e).ctx("reading xattr of", path),
            };
            let name = String::from_utf8_lossy(name.as_bytes()).into_owned();
            if name == "security.capability" && value.len() == 24 {
                // VFS_CAP_REVISION_3 → _2: drop the root id, set the revision.
                value.truncate(20);
                value[3] = 0x02;
            }
            out.push((name, value));
        }
        out.sort();
        Ok(out)
    }
}

fn list_xattrs(path: &Path) -> rustix::io::Result<Vec<std::ffi::OsString>> {
    let mut buf = vec![0u8; 1024];
    loop {
        match rustix::fs::llistxattr(path, &mut buf) {
            Ok(n) => {
                return Ok(buf[..n]
                    .split(|b| *b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| OsStr::from_bytes(n).to_os_string())
                    .collect())
            }
            Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

fn get_xattr(path: &Path, name: &OsStr) -> rustix::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 16, 0),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keep_id_owners_are_recorded_as_the_container_saw_them() {
        // The caller is 1000 inside; the rootless namespace maps 65536 ids.
        let owners = Owners::KeepId {
            uid: 1000,
            gid: 1000,
            count: 65_536,
        };
        // On disk 0 is the caller, 1 is the container's root, 1001 is 1001.
        assert_eq!(owners.container_ids(0, 0), (1000, 1000));
        assert_eq!(owners.container_ids(1, 1), (0, 0));
        assert_eq!(owners.container_ids(1000, 1000), (999, 999));
        assert_eq!(owners.container_ids(1001, 5000), (1001, 5000));
        assert_eq!(owners.container_ids(70_000, 70_000), (65_534, 65_534));
        for id in [0, 1, 999, 1000, 1001, 65_535] {
            let (u, g) = owners.host_ids(id, id);
            assert_eq!(owners.container_ids(u, g), (id, id), "round trip of {id}");
        }
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u64, String)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let link = e
                    .link_name()
                    .expect("link name")
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                (
                    e.path().expect("path").display().to_string(),
                    e.header().entry_type(),
                    e.header().uid().expect("uid"),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn whiteouts_opaque_dirs_links_and_owners() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("upper");
        fs::create_dir_all(dir.join("etc/opaque")).expect("mkdir");
        fs::write(dir.join("etc/file"), b"data").expect("write");
        fs::hard_link(dir.join("etc/file"), dir.join("etc/link")).expect("link");
        std::os::unix::fs::symlink("file", dir.join("etc/sym")).expect("symlink");
        std::os::unix::fs::chown(dir.join("etc/file"), Some(101_000), Some(101_000))
            .expect("chown");
        // A whiteout as overlayfs makes it, and an opaque directory.
        let dev = rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("etc/gone").as_path(),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        );
        dev.expect("mknod whiteout (needs root)");
        rustix::fs::setxattr(
            dir.join("etc/opaque").as_path(),
            OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .expect("set opaque xattr (needs root)");
        let opts = WriteOptions {
            owners: Owners::Unshift {
                uid_start: 100_000,
                gid_start: 100_000,
                count: 65_536,
            },
            clamp_mtime: Some(1),
        };
        let mut out = Vec::new();
        let written = write_layer(&dir, &mut out, &opts).expect("write layer");
        assert_eq!(written.diff_id, Digest::of(&out));
        assert_eq!(written.size, out.len() as u64);
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/file",
                "etc/.wh.gone",
                "etc/link",
                "etc/opaque/",
                "etc/opaque/.wh..wh..opq",
                "etc/sym"
            ]
        );
        assert_eq!(got[1].2, 1000, "owner unshifted");
        assert_eq!(
            (got[3].1, got[3].3.as_str()),
            (tar::EntryType::Link, "etc/file")
        );
        assert_eq!(
            (got[6].1, got[6].3.as_str()),
            (tar::EntryType::Symlink, "file")
        );

        // Unpacked again and rewritten as a store layer: the same bytes.
        let store_layer = tmp.path().join("layer");
        fs::create_dir(&store_layer).expect("mkdir");
        let limits = Limits::new(tmp.path(), None).expect("limits");
        crate::unpack::unpack(&out[..], &store_layer, &limits.meter("t"), &|_| {}).expect("unpack");
        let mut again = Vec::new();
        let opts = WriteOptions {
            owners: Owners::Keep,
            clamp_mtime: Some(1),
        };
        let rewritten = write_layer(&store_layer, &mut again, &opts).expect("rewrite");
        assert_eq!(entries(&again), entries(&out));
        assert_eq!(rewritten.diff_id, written.diff_id);
    }

    #[test]
    fn mtimes_are_clamped_and_modes_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("x"), b"1").expect("write");
        fs::set_permissions(tmp.path().join("x"), fs::Permissions::from_mode(0o4755))
            .expect("chmod");
        let mut out = Vec::new();
        let opts = WriteOptions {
            owners: Owners::Keep,
            clamp_mtime: Some(42),
        };
        write_layer(tmp.path(), &mut out, &opts).expect("write");
        let mut archive = tar::Archive::new(&out[..]);
        let entry = archive
            .entries()
            .expect("entries")
            .next()
            .expect("one entry")
            .expect("entry");
        assert_eq!(entry.header().mtime().expect("mtime"), 42);
        assert_eq!(entry.header().mode().expect("mode"), 0o4755);
    }
}
