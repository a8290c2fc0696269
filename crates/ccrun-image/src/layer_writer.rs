//! A directory in overlayfs' form written as an OCI layer tarball: a container
//! snapshot's upper directory for `commit`, or a stored layer that has no tar-split
//! record for `push` and `save`.
//!
//! overlayfs' deletions become the image spec's whiteouts: a 0/0 character device
//! `NAME` is written as an empty `.wh.NAME`, and a directory marked opaque
//! (`trusted.overlay.opaque=y`, or `user.overlay.opaque=y` on userxattr mounts) is
//! followed by a `.wh..wh..opq` entry. Owners can be shifted back from a user
//! namespace's host range to the ids the container saw ([`Owners::Unshift`]), file
//! capabilities included. overlayfs' own attributes are never written.
//!
//! Entries come in name order, each directory before what it holds; the walk is a
//! loop with a bounded number of open directories, so any depth is fine.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::error::{IoContext, Result};
use crate::fsutil::Cursor;

/// The whiteout prefix of the image spec.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker of the image spec.
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The uid and gid for host ids outside a user namespace's range (the kernel's
/// overflow ids).
const OVERFLOW_ID: u32 = 65_534;

/// How host owners become the owners written into the layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Owners {
    /// As they are on the host.
    #[default]
    AsIs,
    /// Host ids `start..start+count` become `0..count` (a private user namespace's
    /// mapping); host root stays root (only the engine can have made such an entry,
    /// say a mount point, and it is the image's root's), other ids become 65534.
    Unshift {
        /// Host uid of the namespace's root.
        uid_start: u32,
        /// Host gid of the namespace's root.
        gid_start: u32,
        /// How many ids are mapped.
        count: u32,
    },
}

impl Owners {
    fn map(&self, uid: u32, gid: u32) -> (u32, u32) {
        match *self {
            Owners::AsIs => (uid, gid),
            Owners::Unshift {
                uid_start,
                gid_start,
                count,
            } => {
                let shift = |id: u32, start: u32| {
                    if id == 0 {
                        return 0;
                    }
                    id.checked_sub(start)
                        .filter(|i| *i < count)
                        .unwrap_or(OVERFLOW_ID)
                };
                (shift(uid, uid_start), shift(gid, gid_start))
            }
        }
    }
}

/// What to write.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// How to write owners.
    pub owners: Owners,
    /// Paths (relative to the directory, e.g. `etc/hosts`) left out with whatever is
    /// below them: the mount points an engine adds to every container.
    pub exclude: Vec<String>,
}

/// Writes the tree below `dir` (not `dir` itself) as a layer tarball into `out`.
pub fn write<W: Write>(dir: &Path, out: W, options: &Options) -> Result<W> {
    let root = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx("opening", dir)?;
    let mut writer = Writer {
        builder: tar::Builder::new(out),
        options,
        links: HashMap::new(),
    };
    let mut cursor = Cursor::new(root.as_fd());
    // Per directory entered: its path in the archive (with a trailing `/`, empty at
    // the root) and the names still to write, last first.
    let mut stack = vec![(
        Vec::new(),
        sorted_names(cursor.dir().ctx("reading", dir)?, dir)?,
    )];
    while let Some((prefix, pending)) = stack.last_mut() {
        let Some(name) = pending.pop() else {
            stack.pop();
            if !stack.is_empty() {
                cursor.leave();
            }
            continue;
        };
        let mut path = prefix.clone();
        path.extend_from_slice(name.as_bytes());
        if options
            .exclude
            .iter()
            .any(|e| e.trim_matches('/').as_bytes() == path.as_slice())
        {
            continue;
        }
        let parent = cursor
            .dir()
            .ctx("reading", dir.join(OsStr::from_bytes(prefix)))?;
        let shown = dir.join(OsStr::from_bytes(&path));
        if writer.entry(parent, &name, &path, &shown)? {
            cursor.enter(&name).ctx("entering", &shown)?;
            let names = sorted_names(cursor.dir().ctx("reading", &shown)?, &shown)?;
            path.push(b'/');
            stack.push((path, names));
        }
    }
    writer
        .builder
        .into_inner()
        .ctx("finishing the layer of", dir)
}

/// [`write`] on a thread of its own, as a reader of the tarball. The thread ends when
/// the tarball is written or the reader is dropped; a failure is the reader's error.
pub fn spawn(dir: &Path, options: Options) -> Result<impl Read + Send> {
    // Fail now on a missing directory rather than at the first read.
    rfs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).ctx("opening", dir)?;
    let (tx, rx) = mpsc::sync_channel(8);
    let dir = dir.to_path_buf();
    let thread = std::thread::spawn(move || -> io::Result<()> {
        let out = io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx));
        let mut out = write(&dir, out, &options).map_err(io::Error::other)?;
        out.flush()
    });
    Ok(ChannelReader {
        rx,
        chunk: Vec::new(),
        at: 0,
        thread: Some(thread),
    })
}

struct ChannelWriter(mpsc::SyncSender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => {
                    // The writer is done: its result says whether the tar is whole.
                    return match self.thread.take().map(|t| t.join()) {
                        Some(Ok(Ok(()))) | None => Ok(0),
                        Some(Ok(Err(e))) => Err(e),
                        Some(Err(_)) => Err(io::Error::other("layer writer thread panicked")),
                    };
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn sorted_names(dir: BorrowedFd<'_>, shown: &Path) -> Result<Vec<CString>> {
    let mut names = Vec::new();
    let mut entries = rfs::Dir::read_from(dir).ctx("reading", shown)?;
    while let Some(entry) = entries.read() {
        let name = entry.ctx("reading", shown)?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    // Popped from the end: last name first.
    names.sort_by(|a, b| b.cmp(a));
    Ok(names)
}

struct Writer<'o, W: Write> {
    builder: tar::Builder<W>,
    options: &'o Options,
    /// First archive path of each multiply-linked file, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> Writer<'_, W> {
    /// Writes one entry; returns whether it is a directory to descend into.
    fn entry(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        shown: &Path,
    ) -> Result<bool> {
        let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).ctx("stat", shown)?;
        let (uid, gid) = self.options.owners.map(st.st_uid, st.st_gid);
        let mut header = tar::Header::new_gnu();
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mode(st.st_mode & 0o7777);
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        let archived = Path::new(OsStr::from_bytes(path));
        let kind = FileType::from_raw_mode(st.st_mode);
        match kind {
            FileType::Directory => {
                let fd = rfs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx("opening", shown)?;
                let xattrs = self.xattrs(fd.as_fd(), shown)?;
                let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
                    .iter()
                    .any(|a| rfs::fgetxattr(&fd, *a, &mut [0u8; 1]).is_ok_and(|n| n == 1));
                self.pax(&xattrs, shown)?;
                header.set_entry_type(tar::EntryType::Directory);
                let mut dir_path = path.to_vec();
                dir_path.push(b'/');
                self.builder
                    .append_data(&mut header, OsStr::from_bytes(&dir_path), io::empty())
                    .ctx("archiving", shown)?;
                if opaque {
                    let marker = archived.join(OPAQUE_MARKER);
                    let mut h = marker_header(&header, 0);
                    self.builder
                        .append_data(&mut h, &marker, io::empty())
                        .ctx("archiving", shown)?;
                }
                return Ok(true);
            }
            FileType::CharacterDevice if st.st_rdev == 0 => {
                let mut whiteout = name.to_bytes().to_vec();
                whiteout.splice(0..0, WHITEOUT_PREFIX.bytes());
                let whiteout_path = match archived.parent() {
                    Some(p) => p.join(OsStr::from_bytes(&whiteout)),
                    None => Path::new(OsStr::from_bytes(&whiteout)).to_path_buf(),
                };
                let mut h = marker_header(&header, st.st_mode & 0o777);
                self.builder
                    .append_data(&mut h, &whiteout_path, io::empty())
                    .ctx("archiving", shown)?;
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        header.set_entry_type(tar::EntryType::Link);
                        let target = Path::new(OsStr::from_bytes(first)).to_path_buf();
                        self.builder
                            .append_link(&mut header, archived, target)
                            .ctx("archiving", shown)?;
                        return Ok(false);
                    }
                    self.links.insert(key, path.to_vec());
                }
                let fd = rfs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ctx("opening", shown)?;
                let xattrs = self.xattrs(fd.as_fd(), shown)?;
                self.pax(&xattrs, shown)?;
                let size = u64::try_from(st.st_size).unwrap_or(0);
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                // Exactly the size announced, even if the file changes meanwhile.
                let content = File::from(fd).take(size).chain(io::repeat(0)).take(size);
                self.builder
                    .append_data(&mut header, archived, content)
                    .ctx("archiving", shown)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(parent, name, Vec::new()).ctx("reading", shown)?;
                header.set_entry_type(tar::EntryType::Symlink);
                self.builder
                    .append_link(
                        &mut header,
                        archived,
                        Path::new(OsStr::from_bytes(target.as_bytes())),
                    )
                    .ctx("archiving", shown)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                header.set_entry_type(match kind {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                header
                    .set_device_major(rfs::major(st.st_rdev))
                    .and_then(|()| header.set_device_minor(rfs::minor(st.st_rdev)))
                    .ctx("archiving", shown)?;
                self.builder
                    .append_data(&mut header, archived, io::empty())
                    .ctx("archiving", shown)?;
            }
            // Sockets and anything else have no place in a layer.
            _ => {}
        }
        Ok(false)
    }

    /// The extended attributes to keep: `user.*`, `trusted.*` and
    /// `security.capability`, never overlayfs' own; file capabilities of a user
    /// namespace's root (version 3) become plain ones (version 2) when owners are
    /// unshifted.
    fn xattrs(&self, fd: BorrowedFd<'_>, shown: &Path) -> Result<Vec<(String, Vec<u8>)>> {
        let mut names = vec![0u8; 4096];
        let n = match rfs::flistxattr(fd, &mut names) {
            Ok(n) => n,
            // A filesystem without xattrs has none to keep.
            Err(rustix::io::Errno::NOTSUP) => 0,
            Err(rustix::io::Errno::RANGE) => {
                names = vec![0u8; 64 * 1024];
                rfs::flistxattr(fd, &mut names).ctx("listing xattrs of", shown)?
            }
            Err(e) => return Err(e).ctx("listing xattrs of", shown),
        };
        let mut out = Vec::new();
        for raw in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            let keep = name == "security.capability"
                || ((name.starts_with("user.") || name.starts_with("trusted."))
                    && !name.starts_with("user.overlay.")
                    && !name.starts_with("trusted.overlay."));
            if !keep {
                continue;
            }
            let mut value = vec![0u8; 64 * 1024];
            let len = match rfs::fgetxattr(fd, name, &mut value) {
                Ok(len) => len,
                // Removed meanwhile.
                Err(rustix::io::Errno::NODATA) => continue,
                Err(e) => return Err(e).ctx("reading xattrs of", shown),
            };
            value.truncate(len);
            if name == "security.capability" {
                value = self.capability(value);
            }
            out.push((name.to_string(), value));
        }
        out.sort();
        Ok(out)
    }

    /// A `security.capability` value as the container saw it.
    fn capability(&self, value: Vec<u8>) -> Vec<u8> {
        const REVISION_MASK: u32 = 0xff00_0000;
        const REVISION_2: u32 = 0x0200_0000;
        const REVISION_3: u32 = 0x0300_0000;
        let Owners::Unshift { uid_start, .. } = self.options.owners else {
            return value;
        };
        let word = |i: usize| {
            value
                .get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        match (word(0), word(5)) {
            (Some(magic), Some(root))
                if magic & REVISION_MASK == REVISION_3 && value.len() == 24 =>
            {
                if root != uid_start {
                    // Capabilities for another uid's root: meaningless in the image.
                    return value;
                }
                let magic = (magic & !REVISION_MASK) | REVISION_2;
                let mut v2 = magic.to_le_bytes().to_vec();
                v2.extend_from_slice(&value[4..20]);
                v2
            }
            _ => value,
        }
    }

    /// A PAX extended header carrying `xattrs` for the next entry.
    fn pax(&mut self, xattrs: &[(String, Vec<u8>)], shown: &Path) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        for (name, value) in xattrs {
            let key = format!("SCHILY.xattr.{name}");
            // "LEN KEY=VALUE\n", LEN counting itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_path("PaxHeader").ctx("archiving", shown)?;
        h.set_cksum();
        self.builder
            .append(&h, data.as_slice())
            .ctx("archiving", shown)
    }
}

/// The header of an empty marker entry (whiteout, opaque marker) like `of`.
fn marker_header(of: &tar::Header, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(0);
    h.set_mode(mode);
    h.set_uid(of.uid().unwrap_or(0));
    h.set_gid(of.gid().unwrap_or(0));
    h.set_mtime(of.mtime().unwrap_or(0));
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, u64, Vec<u8>)> {
        let mut archive = tar::Archive::new(tar);
        let mut out = Vec::new();
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let uid = e.header().uid().expect("uid");
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("data");
            out.push((path, kind, uid, data));
        }
        out
    }

    #[test]
    fn whiteouts_opaque_links_owners_and_exclusions() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (mknod, chown, trusted xattrs)");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        std::fs::create_dir_all(d.join("etc/opq")).expect("mkdir");
        std::fs::write(d.join("etc/file"), b"data").expect("write");
        std::fs::hard_link(d.join("etc/file"), d.join("etc/link")).expect("link");
        std::os::unix::fs::symlink("file", d.join("etc/sym")).expect("symlink");
        std::fs::write(d.join("etc/hosts"), b"").expect("write");
        rfs::mknodat(
            rfs::CWD,
            d.join("etc/gone"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .expect("mknod");
        rfs::setxattr(
            d.join("etc/opq"),
            "trusted.overlay.opaque",
            b"y",
            rfs::XattrFlags::empty(),
        )
        .expect("xattr");
        rfs::setxattr(
            d.join("etc/file"),
            "user.note",
            b"kept",
            rfs::XattrFlags::empty(),
        )
        .expect("xattr");
        std::os::unix::fs::chown(d.join("etc/file"), Some(101_000), Some(101_000)).expect("chown");
        std::os::unix::fs::chown(d.join("etc/opq"), Some(100_000), Some(100_000)).expect("chown");
        let options = Options {
            owners: Owners::Unshift {
                uid_start: 100_000,
                gid_start: 100_000,
                count: 65_536,
            },
            exclude: vec!["/etc/hosts".into()],
        };
        let tar = write(d, Vec::new(), &options).expect("write");
        let got = entries(&tar);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/file",
                "etc/.wh.gone",
                "etc/link",
                "etc/opq/",
                "etc/opq/.wh..wh..opq",
                "etc/sym"
            ]
        );
        let file = &got[1];
        assert_eq!(
            (file.1, file.2, file.3.as_slice()),
            (tar::EntryType::Regular, 1000, &b"data"[..])
        );
        assert_eq!(got[3].1, tar::EntryType::Link);
        assert_eq!(got[4].2, 0, "the namespace's root is root");
        assert_eq!(got[0].2, 0, "what host root made stays root's");
        // The xattr went through PAX, overlayfs' did not.
        let mut archive = tar::Archive::new(&tar[..]);
        let mut saw = Vec::new();
        for e in archive.entries().expect("entries") {
            let mut e = e.expect("entry");
            if let Some(exts) = e.pax_extensions().expect("pax") {
                for ext in exts {
                    saw.push(ext.expect("ext").key().expect("key").to_string());
                }
            }
        }
        assert_eq!(saw, ["SCHILY.xattr.user.note"]);
        // And through the thread, the same bytes.
        let mut again = Vec::new();
        spawn(d, options)
            .expect("spawn")
            .read_to_end(&mut again)
            .expect("read");
        assert_eq!(again, tar);
        assert_eq!(
            std::fs::metadata(d.join("etc/file")).expect("stat").uid(),
            101_000
        );
    }

    #[test]
    fn owners_outside_the_range_overflow() {
        let o = Owners::Unshift {
            uid_start: 100_000,
            gid_start: 200_000,
            count: 10,
        };
        assert_eq!(o.map(100_003, 200_009), (3, 9));
        assert_eq!(o.map(7, 200_010), (OVERFLOW_ID, OVERFLOW_ID));
        assert_eq!(o.map(0, 0), (0, 0));
        assert_eq!(Owners::AsIs.map(5, 6), (5, 6));
    }
}
