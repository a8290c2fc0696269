//! A container's filesystem from the host, for `cp`, `export` and `diff`: its root
//! (a running container's through `/proc/PID/root`, a stopped one's snapshot mounted
//! in ccrun's private mount namespace), trees written as tar archives and archives
//! unpacked into it, with owners translated through its user namespace mapping.
//!
//! Every path inside the container is resolved with `openat2(RESOLVE_IN_ROOT)` and
//! every entry is reached from an open directory without following symlinks, so
//! nothing the container made (`/etc -> /host/etc`) can lead ccrun outside its root;
//! archives are unpacked below their target directory in the same way.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use ccrun_runtime::sys::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::launch::{enter_private_mount_namespace, load_config, mount_rootfs};
use super::{ContainerStore, Record, RootfsSource, Status};
use crate::spec_builder::UsernsMode;

const RESOLVE: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

/// How the owners ccrun sees on the host relate to the container's own ids:
/// [`UsernsMode::Host`] (the same) without a user namespace or for a stopped
/// `--rootfs` directory (whose raw ids the runtime maps only when it mounts it).
pub type IdMap = UsernsMode;

/// The mapping of the container's private user namespace in `spec`, if it has one.
fn ids_of(spec: &Spec) -> IdMap {
    let Some(linux) = spec.linux() else {
        return UsernsMode::Host;
    };
    let private = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    let first = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| (m.host_id(), m.size()))
    };
    match (
        private,
        first(linux.uid_mappings()),
        first(linux.gid_mappings()),
    ) {
        (true, Some((uid_start, count)), Some((gid_start, gids))) => UsernsMode::Private {
            uid_start,
            gid_start,
            count: count.min(gids),
        },
        _ => UsernsMode::Host,
    }
}

/// How the owners in `record`'s files on the host relate to the container's ids
/// (from its saved runtime spec).
pub fn id_map(store: &ContainerStore, record: &Record) -> Result<IdMap> {
    let spec = load_config(&store.dir_of(&record.id))?;
    Ok(ids_of(&spec))
}

/// A container's root filesystem, open.
pub struct ContainerRoot {
    /// The root directory.
    pub dir: OwnedFd,
    /// How its owners map to the container's ids.
    pub ids: IdMap,
}

impl ContainerRoot {
    /// Opens the root of `record`'s container: the live one while it runs, else its
    /// snapshot, mounted in a private mount namespace that ccrun enters here (so this
    /// must run before ccrun starts any thread).
    pub fn open(store: &ContainerStore, record: &Record) -> Result<ContainerRoot> {
        let dir = store.dir_of(&record.id);
        let spec = load_config(&dir)?;
        let ids = ids_of(&spec);
        let alive = || ccrun_runtime::state::process_is_alive(record.pid, record.pid_start_time);
        if record.status == Status::Running && alive() {
            let path = PathBuf::from(format!("/proc/{}/root", record.pid));
            let root = open_dir_path(&path);
            // Checked after opening: the pid was still the container's then.
            if alive() {
                return Ok(ContainerRoot { dir: root?, ids });
            }
        }
        if record.status == Status::Running {
            // Just ended: its watcher unmounts the snapshot as it settles the record.
            store.wait_settled(&record.id, Some(std::time::Duration::from_secs(10)))?;
        }
        enter_private_mount_namespace()?;
        let merged = mount_rootfs(record, &dir, &spec)?;
        let ids = match record.rootfs {
            RootfsSource::Dir(_) => UsernsMode::Host,
            RootfsSource::Image { .. } => ids,
        };
        Ok(ContainerRoot {
            dir: open_dir_path(&merged)?,
            ids,
        })
    }

    /// Opens `path` (inside the container) as a directory, or `None` when it does
    /// not exist.
    pub fn open_dir(&self, path: &Path) -> Result<Option<OwnedFd>> {
        open_dir_in(self.dir.as_fd(), path)
    }

    /// `lstat` of `path` inside the container (its parents resolved inside the root,
    /// a final symlink not followed unless `follow`); `None` when it does not exist.
    pub fn stat(&self, path: &Path, follow: bool) -> Result<Option<rfs::Stat>> {
        let flags = if follow {
            libc::O_PATH
        } else {
            libc::O_PATH | libc::O_NOFOLLOW
        };
        match openat2(self.dir.as_fd(), &in_root(path), flags, 0, RESOLVE) {
            Ok(fd) => Ok(Some(
                rfs::fstat(&fd).with_context(|| format!("stat {}", path.display()))?,
            )),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("resolving {}", path.display())),
        }
    }
}

fn open_dir_path(path: &Path) -> Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", path.display()))
}

/// `path` relative to a root (`.` for the root itself).
fn in_root(path: &Path) -> PathBuf {
    let rel = ccrun_runtime::fsroot::relative(path);
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Opens directory `path` below `root`, resolved inside it; `None` when missing.
fn open_dir_in(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>> {
    match openat2(
        root,
        &in_root(path),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        RESOLVE,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(nix::errno::Errno::ENOTDIR) => bail!("{} is not a directory", path.display()),
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// The names in a directory, without `.` and `..`, sorted.
fn names(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<CString>> {
    let mut out = crate::volumes::seed::names(dir)?;
    out.sort();
    Ok(out)
}

fn mount_id(fd: BorrowedFd<'_>) -> Option<u64> {
    rfs::statx(fd, c"", AtFlags::EMPTY_PATH, rfs::StatxFlags::MNT_ID)
        .ok()
        .map(|s| s.stx_mnt_id)
}

/// Writes trees of a container's filesystem into a tar archive, with owners as the
/// container sees them.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    ids: IdMap,
    /// Stay on the filesystem of the starting directory (`export` of a live root
    /// leaves out `/proc`, volumes and the other mounts; their mount points stay).
    one_filesystem: Option<u64>,
    /// First archive path of each multiply-linked file, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TarWriter<W> {
    /// An archive written to `out`.
    pub fn new(out: W, ids: IdMap) -> TarWriter<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        TarWriter {
            builder,
            ids,
            one_filesystem: None,
            links: HashMap::new(),
        }
    }

    /// Archives everything below the directory `dir` (not the directory itself),
    /// staying on its filesystem.
    pub fn contents(&mut self, dir: BorrowedFd<'_>) -> Result<()> {
        self.one_filesystem = mount_id(dir);
        self.children(dir, Path::new(""))
    }

    /// Archives the entry `name` of directory `parent` (recursively) as `archived`.
    pub fn entry(&mut self, parent: BorrowedFd<'_>, name: &CStr, archived: &Path) -> Result<()> {
        let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat {}", archived.display()))?;
        let mut header = tar::Header::new_gnu();
        let (uid, gid) = self.ids.container_ids(st.st_uid, st.st_gid);
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        header.set_mode(st.st_mode & 0o7777);
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        let what = || format!("archiving {}", archived.display());
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                self.builder
                    .append_data(&mut header, archived, std::io::empty())
                    .with_context(what)?;
                let dir = rfs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(what)?;
                if self.one_filesystem.is_some() && mount_id(dir.as_fd()) != self.one_filesystem {
                    return Ok(());
                }
                self.children(dir.as_fd(), archived)?;
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        header.set_entry_type(tar::EntryType::Link);
                        self.builder
                            .append_link(&mut header, archived, first)
                            .with_context(what)?;
                        return Ok(());
                    }
                    self.links.insert(key, archived.to_path_buf());
                }
                let file = rfs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .with_context(what)?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(u64::try_from(st.st_size).unwrap_or(0));
                // Exactly the size announced, even if the file changes meanwhile.
                let reader = std::fs::File::from(file)
                    .take(u64::try_from(st.st_size).unwrap_or(0))
                    .chain(std::io::repeat(0))
                    .take(u64::try_from(st.st_size).unwrap_or(0));
                self.builder
                    .append_data(&mut header, archived, reader)
                    .with_context(what)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(parent, name, Vec::new()).with_context(what)?;
                header.set_entry_type(tar::EntryType::Symlink);
                self.builder
                    .append_link(
                        &mut header,
                        archived,
                        Path::new(OsStr::from_bytes(target.as_bytes())),
                    )
                    .with_context(what)?;
            }
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                header.set_entry_type(match kind {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                });
                header
                    .set_device_major(rfs::major(st.st_rdev))
                    .and_then(|()| header.set_device_minor(rfs::minor(st.st_rdev)))
                    .with_context(what)?;
                self.builder
                    .append_data(&mut header, archived, std::io::empty())
                    .with_context(what)?;
            }
            // Sockets have no place in an archive.
            _ => {}
        }
        Ok(())
    }

    fn children(&mut self, dir: BorrowedFd<'_>, archived: &Path) -> Result<()> {
        let list = names(dir).with_context(|| format!("reading {}", archived.display()))?;
        for name in list {
            let path = archived.join(OsStr::from_bytes(name.to_bytes()));
            self.entry(dir, &name, &path)?;
        }
        Ok(())
    }

    /// Ends the archive and returns the writer.
    pub fn finish(self) -> Result<W> {
        self.builder.into_inner().context("finishing the archive")
    }
}

/// Who owns what an archive unpacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// These host ids.
    Fixed(u32, u32),
    /// The archive's ids, mapped to host ids.
    Archive(IdMap),
}

/// How the first component of archive paths is renamed while unpacking (`cp`
/// naming its destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// Unpacked as archived.
    None,
    /// The first component `from` becomes `to`.
    Top {
        /// The archived name.
        from: OsString,
        /// The name in the target.
        to: OsString,
    },
    /// The first component `from` goes: its contents land in the target (`SRC/.`).
    Contents {
        /// The archived name.
        from: OsString,
    },
}

/// The filesystem ids of the calling thread switched to other host ids (and its
/// file capabilities kept), until dropped.
struct FsIds;

impl FsIds {
    /// Creates files as host (`uid`, `gid`): an idmapped mount (a live `--rootfs`
    /// container's root) refuses to create files for ids outside its mapping, such
    /// as host root.
    fn switch(uid: u32, gid: u32) -> Result<FsIds> {
        // SAFETY: setfsuid/setfsgid only change the calling thread's filesystem ids;
        // they are switched back on drop.
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
        }
        let guard = FsIds;
        ccrun_runtime::caps::raise_effective().context("keeping capabilities")?;
        Ok(guard)
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        // SAFETY: as in `switch`; back to root, which restores the file capabilities.
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    }
}

/// Unpacks tar archives below a target directory: every entry is resolved inside
/// it, existing non-directories are replaced, directories merged.
pub struct Unpacker {
    target: OwnedFd,
    owner: Owner,
    rename: Rename,
    /// Host ids to create files as (see [`FsIds`]).
    create_as: Option<(u32, u32)>,
    /// Directory modes, set once their contents are in (a read-only directory
    /// could not take them).
    dir_modes: Vec<(PathBuf, u32)>,
}

impl Unpacker {
    /// Unpacks below the directory `target`.
    pub fn new(target: OwnedFd, owner: Owner, rename: Rename) -> Unpacker {
        Unpacker {
            target,
            owner,
            rename,
            create_as: None,
            dir_modes: Vec::new(),
        }
    }

    /// Creates files as the container's root (`ids` mapping container root to the
    /// host), which any mount of the container's root accepts.
    pub fn creating_as_container_root(mut self, ids: IdMap) -> Unpacker {
        if let UsernsMode::Private { .. } = ids {
            self.create_as = Some(ids.root_owner());
        }
        self
    }

    /// The path an archive entry lands at, relative to the target; `None` to skip.
    fn place(&self, archived: &Path) -> Result<Option<PathBuf>> {
        let mut parts = Vec::new();
        for c in archived.components() {
            match c {
                Component::Normal(n) => parts.push(n.to_os_string()),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    bail!("archive entry {} leaves its directory", archived.display())
                }
            }
        }
        match &self.rename {
            Rename::None => {}
            Rename::Top { from, to } => {
                if parts.first() == Some(from) {
                    parts[0] = to.clone();
                }
            }
            Rename::Contents { from } => {
                if parts.first() == Some(from) {
                    parts.remove(0);
                }
            }
        }
        Ok((!parts.is_empty()).then(|| parts.iter().collect()))
    }

    fn owner_of(&self, header: &tar::Header) -> (u32, u32) {
        match &self.owner {
            Owner::Fixed(uid, gid) => (*uid, *gid),
            Owner::Archive(ids) => {
                let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok());
                let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok());
                ids.host_ids(uid.unwrap_or(0), gid.unwrap_or(0))
            }
        }
    }

    /// Unpacks every entry of `archive`.
    pub fn unpack(mut self, archive: impl Read) -> Result<()> {
        let _ids = self
            .create_as
            .map(|(uid, gid)| FsIds::switch(uid, gid))
            .transpose()?;
        let mut archive = tar::Archive::new(archive);
        for entry in archive.entries().context("reading the archive")? {
            let mut entry = entry.context("reading the archive")?;
            let archived = entry.path().context("reading the archive")?.into_owned();
            let Some(path) = self.place(&archived)? else {
                // The target itself (`.`, or a renamed top directory): only its mode.
                continue;
            };
            self.unpack_entry(&mut entry, &path)
                .with_context(|| format!("unpacking {}", path.display()))?;
        }
        for (path, mode) in self.dir_modes.iter().rev() {
            if let Ok(Some(dir)) = open_dir_in(self.target.as_fd(), path) {
                let _ = rfs::fchmod(&dir, Mode::from_raw_mode(*mode));
            }
        }
        Ok(())
    }

    fn unpack_entry(&mut self, entry: &mut tar::Entry<impl Read>, path: &Path) -> Result<()> {
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = self.owner_of(&header);
        let name = CString::new(
            path.file_name()
                .context("an entry without a name")?
                .as_bytes(),
        )
        .context("a name with a NUL byte")?;
        let parent_path = path.parent().unwrap_or(Path::new(""));
        let parent = match open_dir_in(self.target.as_fd(), parent_path)? {
            Some(dir) => dir,
            None => {
                ccrun_runtime::fsroot::mkdir_all(self.target.as_fd(), parent_path, 0o755)?;
                open_dir_in(self.target.as_fd(), parent_path)?
                    .context("the parent directory vanished")?
            }
        };
        let kind = header.entry_type();
        let existing = rfs::statat(&parent, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir =
            existing.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !(kind == tar::EntryType::Directory && existing_dir) {
            let flags = if existing_dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            rfs::unlinkat(&parent, name.as_c_str(), flags)
                .context("replacing what is there (a non-empty directory cannot be)")?;
        }
        let mtime = header.mtime().unwrap_or(0);
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: i64::try_from(mtime).unwrap_or(0),
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: i64::try_from(mtime).unwrap_or(0),
                tv_nsec: 0,
            },
        };
        // The entry itself, never what a symlink names.
        let chown_entry = || {
            rfs::chownat(
                &parent,
                name.as_c_str(),
                Some(rfs::Uid::from_raw(uid)),
                Some(rfs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
        };
        match kind {
            tar::EntryType::Directory => {
                match rfs::mkdirat(&parent, name.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                chown_entry()?;
                self.dir_modes.push((path.to_path_buf(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let file = rfs::openat(
                    &parent,
                    name.as_c_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut file = std::fs::File::from(file);
                std::io::copy(entry, &mut file)?;
                rfs::fchown(
                    &file,
                    Some(rfs::Uid::from_raw(uid)),
                    Some(rfs::Gid::from_raw(gid)),
                )?;
                // After the chown, which clears set-id bits.
                rfs::fchmod(&file, Mode::from_raw_mode(mode))?;
                rfs::futimens(&file, &times)?;
            }
            tar::EntryType::Symlink => {
                let target = header
                    .link_name()
                    .context("reading the link target")?
                    .context("a symlink without a target")?;
                rfs::symlinkat(target.as_os_str(), &parent, name.as_c_str())?;
                chown_entry()?;
            }
            tar::EntryType::Link => {
                let target = header
                    .link_name()
                    .context("reading the link target")?
                    .context("a hard link without a target")?;
                let Some(target) = self.place(&target)? else {
                    bail!("a hard link to the target directory");
                };
                let source = openat2(
                    self.target.as_fd(),
                    &target,
                    libc::O_PATH | libc::O_NOFOLLOW,
                    0,
                    RESOLVE,
                )
                .with_context(|| format!("resolving the link target {}", target.display()))?;
                rfs::linkat(&source, c"", &parent, name.as_c_str(), AtFlags::EMPTY_PATH)?;
            }
            kind @ (tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) => {
                let file_type = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rfs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rfs::mknodat(
                    &parent,
                    name.as_c_str(),
                    file_type,
                    Mode::from_raw_mode(mode),
                    dev,
                )?;
                chown_entry()?;
            }
            // pax headers and GNU long names are read by the tar crate itself;
            // anything else has no file to become.
            other => tracing::warn!("skipping {} ({other:?})", path.display()),
        }
        Ok(())
    }
}

/// One change of `diff`: `A`dded, `C`hanged or `D`eleted, and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `A`, `C` or `D`.
    pub kind: char,
    /// Absolute path in the container.
    pub path: String,
}

/// Paths the engine itself puts into every container (mount points of its standard
/// mounts and of the files it bind-mounts); Docker's diff leaves them out too.
pub const ENGINE_PATHS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/.dockerenv",
];

/// The changes of a container made from an image: what its snapshot's upper
/// directory holds, compared with the image's layers (whiteouts are deletions).
pub fn diff(store: &ContainerStore, record: &Record) -> Result<Vec<Change>> {
    let RootfsSource::Image { layers } = &record.rootfs else {
        bail!(
            "container {} runs on a --rootfs directory: it has no snapshot to compare",
            record.name
        );
    };
    let upper = ccrun_image::Snapshot::new(&store.dir_of(&record.id)).upper();
    let upper = open_dir_path(&upper)?;
    let layers = layers
        .iter()
        .map(|l| open_dir_path(l))
        .collect::<Result<Vec<_>>>()?;
    let mut changes = Vec::new();
    walk_upper(upper.as_fd(), Path::new("/"), &layers, &mut changes)?;
    // Directories copied up only because the engine touched a path below them.
    let kept: Vec<Change> = changes
        .iter()
        .filter(|c| !ENGINE_PATHS.contains(&c.path.as_str()))
        .cloned()
        .collect();
    let has_below = |dir: &str| {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        kept.iter().any(|c| c.path.starts_with(&prefix))
    };
    Ok(kept
        .iter()
        .filter(|c| c.kind != 'C' || !is_dir_change(&changes, c) || has_below(&c.path))
        .cloned()
        .collect())
}

fn is_dir_change(all: &[Change], change: &Change) -> bool {
    let prefix = format!("{}/", change.path);
    all.iter().any(|c| c.path.starts_with(&prefix))
}

/// Whether `path` exists in the image's layers (lowest first): the highest layer
/// that has it or a whiteout of it decides.
fn in_layers(layers: &[OwnedFd], path: &Path) -> bool {
    let rel = in_root(path);
    for layer in layers.iter().rev() {
        // Never through a symlink, which could name host paths.
        match openat2(
            layer.as_fd(),
            &rel,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            ccrun_runtime::sys::RESOLVE_BENEATH | ccrun_runtime::sys::RESOLVE_NO_SYMLINKS,
        ) {
            Ok(fd) => return !rfs::fstat(&fd).is_ok_and(|st| is_whiteout(&st)),
            Err(_) => continue,
        }
    }
    false
}

fn is_whiteout(st: &rfs::Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn walk_upper(
    dir: BorrowedFd<'_>,
    path: &Path,
    layers: &[OwnedFd],
    out: &mut Vec<Change>,
) -> Result<()> {
    for name in names(dir).with_context(|| format!("reading {}", path.display()))? {
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        let st = rfs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat {}", child.display()))?;
        let shown = child.to_string_lossy().into_owned();
        if is_whiteout(&st) {
            out.push(Change {
                kind: 'D',
                path: shown,
            });
            continue;
        }
        let kind = if in_layers(layers, &child) { 'C' } else { 'A' };
        out.push(Change { kind, path: shown });
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = rfs::openat(
                dir,
                &name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("opening {}", child.display()))?;
            walk_upper(sub.as_fd(), &child, layers, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_both_ways() {
        let ids = UsernsMode::Private {
            uid_start: 100_000,
            gid_start: 200_000,
            count: 65_536,
        };
        assert_eq!(ids.host_ids(0, 1), (100_000, 200_001));
        assert_eq!(ids.container_ids(100_005, 200_000), (5, 0));
        assert_eq!(ids.container_ids(0, 0), (65_534, 65_534));
        assert_eq!(UsernsMode::Host.container_ids(7, 8), (7, 8));
    }

    #[test]
    fn archives_unpack_inside_their_target_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d")).expect("mkdir");
        std::fs::write(src.join("d/f"), b"data").expect("write");
        std::os::unix::fs::symlink("/etc", src.join("d/escape")).expect("symlink");
        std::fs::hard_link(src.join("d/f"), src.join("d/g")).expect("link");
        let dir = open_dir_path(&src).expect("open");
        let mut writer = TarWriter::new(Vec::new(), UsernsMode::Host);
        writer
            .entry(dir.as_fd(), c"d", Path::new("d"))
            .expect("archive");
        let mut archive = writer.finish().expect("finish");
        // A hostile entry written through the symlink must land below the target.
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_data(&mut header, "new/escape/owned", &b"x"[..])
            .expect("append");
        let hostile = builder.into_inner().expect("finish");
        archive.truncate(archive.len() - 1024);
        archive.extend(hostile);

        let dst = tmp.path().join("dst");
        // The target's own /etc, which the link names when resolved inside it.
        std::fs::create_dir_all(dst.join("etc")).expect("mkdir");
        let rename = Rename::Top {
            from: "d".into(),
            to: "new".into(),
        };
        Unpacker::new(
            open_dir_path(&dst).expect("open"),
            Owner::Fixed(0, 0),
            rename,
        )
        .unpack(&archive[..])
        .expect("unpack");
        assert_eq!(std::fs::read(dst.join("new/f")).expect("read"), b"data");
        assert_eq!(
            std::fs::read_link(dst.join("new/escape")).expect("link"),
            Path::new("/etc")
        );
        assert!(dst.join("etc/owned").exists(), "resolved inside the target");
        assert!(!Path::new("/etc/owned").exists(), "escaped the target");
        use std::os::unix::fs::MetadataExt;
        let (f, g) = (
            std::fs::metadata(dst.join("new/f")).expect("stat"),
            std::fs::metadata(dst.join("new/g")).expect("stat"),
        );
        assert_eq!(f.ino(), g.ino(), "hard link kept");
    }
}
