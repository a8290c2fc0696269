//! The layer a COPY or ADD makes, written straight from the files (no container):
//! entries collected by path, hashed for the cache key, then written as a
//! deterministic tarball (sorted paths, no names or access times, hardlinks kept).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ccrun_image::HashingWriter;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, IoContext, Result};

/// Owner, mode and time of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (with setuid, setgid, sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

impl Meta {
    /// The metadata of a file on disk.
    pub fn of(meta: &std::fs::Metadata) -> Meta {
        Meta {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: u64::try_from(meta.mtime()).unwrap_or(0),
        }
    }
}

/// What an entry is and where its content comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory.
    Dir,
    /// A regular file on disk, with its (device, inode) for hardlinks.
    File(PathBuf, (u64, u64)),
    /// A regular file with this content.
    Bytes(Vec<u8>),
    /// A symlink to this target.
    Symlink(PathBuf),
    /// A hardlink to another entry of the layer.
    Link(String),
    /// A device node or fifo.
    Node(tar::EntryType, u32, u32),
}

/// The entries of a layer being made, by path relative to the root (no leading `/`).
#[derive(Debug, Default)]
pub struct LayerFiles {
    entries: BTreeMap<String, (Source, Meta)>,
}

impl LayerFiles {
    /// An empty layer.
    pub fn new() -> LayerFiles {
        LayerFiles::default()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds (or replaces) the entry at `path` (absolute or relative to the root).
    pub fn add(&mut self, path: &str, source: Source, meta: Meta) {
        let key = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        if key.is_empty() {
            return;
        }
        // A directory added again (as a parent) keeps what it was first given.
        if matches!(source, Source::Dir) && self.entries.contains_key(&key) {
            return;
        }
        self.entries.insert(key, (source, meta));
    }

    /// Whether `path` is already an entry.
    pub fn contains(&self, path: &str) -> bool {
        self.entries
            .contains_key(path.trim_start_matches('/').trim_end_matches('/'))
    }

    /// A digest of everything that decides the layer's content except times: paths,
    /// kinds, modes, owners, link targets and file bytes. The cache key part of a
    /// COPY or ADD.
    pub fn content_key(&self) -> Result<String> {
        let mut h = Sha256::new();
        for (path, (source, meta)) in &self.entries {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(format!("{:o} {} {}", meta.mode, meta.uid, meta.gid).as_bytes());
            match source {
                Source::Dir => h.update(b"d"),
                Source::File(p, _) => {
                    h.update(b"f");
                    let mut f = std::fs::File::open(p).ctx("reading", p)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = f.read(&mut buf).ctx("reading", p)?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
                Source::Bytes(b) => {
                    h.update(b"f");
                    h.update(b);
                }
                Source::Symlink(t) => {
                    h.update(b"l");
                    h.update(t.as_os_str().as_encoded_bytes());
                }
                Source::Link(t) => {
                    h.update(b"h");
                    h.update(t.as_bytes());
                }
                Source::Node(kind, major, minor) => {
                    h.update(format!("n{:?}{major}:{minor}", kind).as_bytes());
                }
            }
            h.update([0]);
        }
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Writes the layer tarball to `out`, times clamped to `clamp`; returns its
    /// diff-id and size. Files sharing an inode become hardlinks to the first.
    pub fn write<W: Write>(
        &self,
        out: W,
        clamp: Option<u64>,
    ) -> Result<(ccrun_image::Digest, u64)> {
        let err = |e: std::io::Error| Error::Io {
            context: "writing a layer",
            path: PathBuf::from("-"),
            source: e,
        };
        let mut builder = tar::Builder::new(HashingWriter::new(out));
        let mut first: HashMap<(u64, u64), &str> = HashMap::new();
        for (path, (source, meta)) in &self.entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(meta.mode);
            h.set_uid(meta.uid.into());
            h.set_gid(meta.gid.into());
            h.set_mtime(clamp.map_or(meta.mtime, |c| meta.mtime.min(c)));
            h.set_size(0);
            match source {
                Source::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    builder
                        .append_data(&mut h, format!("{path}/"), std::io::empty())
                        .map_err(err)?;
                }
                Source::File(p, inode) => {
                    if let Some(target) = first.get(inode) {
                        h.set_entry_type(tar::EntryType::Link);
                        builder.append_link(&mut h, path, target).map_err(err)?;
                        continue;
                    }
                    first.insert(*inode, path);
                    let f = std::fs::File::open(p).ctx("reading", p)?;
                    let len = f.metadata().ctx("reading", p)?.len();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(len);
                    builder
                        .append_data(&mut h, path, f.take(len))
                        .map_err(err)?;
                }
                Source::Bytes(b) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(b.len() as u64);
                    builder.append_data(&mut h, path, &b[..]).map_err(err)?;
                }
                Source::Symlink(t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    builder.append_link(&mut h, path, t).map_err(err)?;
                }
                Source::Link(t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    builder.append_link(&mut h, path, t).map_err(err)?;
                }
                Source::Node(kind, major, minor) => {
                    h.set_entry_type(*kind);
                    h.set_device_major(*major).map_err(err)?;
                    h.set_device_minor(*minor).map_err(err)?;
                    builder
                        .append_data(&mut h, path, std::io::empty())
                        .map_err(err)?;
                }
            }
        }
        let hashing = builder.into_inner().map_err(err)?;
        let size = hashing.count();
        let (digest, mut out) = hashing.finish();
        out.flush().map_err(err)?;
        Ok((digest, size))
    }
}

/// The entries of `dir` in byte order of their names.
pub fn sorted_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ctx("listing", dir)?
        .collect::<std::io::Result<_>>()
        .ctx("listing", dir)?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// Adds the file-system entry at `src` (not followed if a symlink) as `dest`, and
/// everything below it if it is a directory. `meta` turns each entry's metadata on
/// disk into what the layer records (owners, `--chmod`); `keep` says whether a path
/// relative to `src` is copied (`.dockerignore`).
pub fn add_tree(
    files: &mut LayerFiles,
    src: &Path,
    dest: &str,
    meta: &dyn Fn(&std::fs::Metadata) -> Meta,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<()> {
    let mut stack = vec![(src.to_path_buf(), dest.to_string(), PathBuf::new())];
    while let Some((path, dest, rel)) = stack.pop() {
        let md = std::fs::symlink_metadata(&path).ctx("reading", &path)?;
        let ft = md.file_type();
        let m = meta(&md);
        if ft.is_dir() {
            files.add(&dest, Source::Dir, m);
            let mut children = Vec::new();
            for e in sorted_dir(&path)? {
                let child_rel = rel.join(e.file_name());
                if !keep(&child_rel) {
                    // An excluded directory may still hold re-included files.
                    if e.file_type().ctx("reading", e.path())?.is_dir() {
                        children.push((e.path(), child_rel, true));
                    }
                    continue;
                }
                children.push((e.path(), child_rel, false));
            }
            for (child, child_rel, excluded) in children.into_iter().rev() {
                let name = child.file_name().map(|n| n.to_string_lossy().into_owned());
                let child_dest = format!(
                    "{}/{}",
                    dest.trim_end_matches('/'),
                    name.unwrap_or_default()
                );
                if excluded {
                    add_reincluded(files, &child, &child_dest, &child_rel, meta, keep)?;
                } else {
                    stack.push((child, child_dest, child_rel));
                }
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).ctx("reading link", &path)?;
            files.add(&dest, Source::Symlink(target), m);
        } else if ft.is_file() {
            files.add(&dest, Source::File(path.clone(), (md.dev(), md.ino())), m);
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets
            };
            let rdev = md.rdev();
            let (major, minor) = (libc::major(rdev), libc::minor(rdev));
            files.add(&dest, Source::Node(kind, major, minor), m);
        }
    }
    Ok(())
}

/// Inside an excluded directory: the entries an exception re-includes, with their
/// parent directories.
fn add_reincluded(
    files: &mut LayerFiles,
    dir: &Path,
    dest: &str,
    rel: &Path,
    meta: &dyn Fn(&std::fs::Metadata) -> Meta,
    keep: &dyn Fn(&Path) -> bool,
) -> Result<()> {
    for e in sorted_dir(dir)? {
        let child_rel = rel.join(e.file_name());
        let child_dest = format!("{dest}/{}", e.file_name().to_string_lossy());
        let is_dir = e.file_type().ctx("reading", e.path())?.is_dir();
        if keep(&child_rel) {
            // Parents of a re-included entry are copied too, as Docker does.
            let md = std::fs::symlink_metadata(dir).ctx("reading", dir)?;
            files.add(dest, Source::Dir, meta(&md));
            add_tree(files, &e.path(), &child_dest, meta, &|r| {
                keep(&child_rel.join(r))
            })?;
        } else if is_dir {
            add_reincluded(files, &e.path(), &child_dest, &child_rel, meta, keep)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_hardlinks_and_stable_keys() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("skip")).expect("mkdir");
        std::fs::write(src.join("a"), b"1").expect("write");
        std::fs::hard_link(src.join("a"), src.join("b")).expect("link");
        std::fs::write(src.join("skip/x"), b"2").expect("write");
        std::fs::write(src.join("skip/keep"), b"3").expect("write");
        let root = |md: &std::fs::Metadata| Meta {
            uid: 0,
            gid: 0,
            ..Meta::of(md)
        };
        let keep = |p: &Path| p != Path::new("skip") && p != Path::new("skip/x");
        let mut files = LayerFiles::new();
        add_tree(&mut files, &src, "/app", &root, &keep).expect("add");
        let names: Vec<&String> = files.entries.keys().collect();
        assert_eq!(
            names,
            ["app", "app/a", "app/b", "app/skip", "app/skip/keep"]
        );
        let key = files.content_key().expect("key");
        let mut out = Vec::new();
        files.write(&mut out, Some(5)).expect("write");
        let mut archive = tar::Archive::new(&out[..]);
        let kinds: Vec<tar::EntryType> = archive
            .entries()
            .expect("entries")
            .map(|e| e.expect("entry").header().entry_type())
            .collect();
        assert_eq!(kinds[2], tar::EntryType::Link);
        std::fs::write(src.join("skip/x"), b"changed").expect("write");
        let mut again = LayerFiles::new();
        add_tree(&mut again, &src, "/app", &root, &keep).expect("add");
        assert_eq!(
            again.content_key().expect("key"),
            key,
            "excluded file changes nothing"
        );
        std::fs::write(src.join("a"), b"changed").expect("write");
        let mut changed = LayerFiles::new();
        add_tree(&mut changed, &src, "/app", &root, &keep).expect("add");
        assert_ne!(changed.content_key().expect("key"), key);
    }
}
