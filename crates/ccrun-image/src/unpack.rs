//! Safe unpacking of one layer tarball into its own directory.
//!
//! Every path is resolved component by component from an open directory fd with
//! `O_NOFOLLOW`, so nothing from the archive is ever followed: an entry below a
//! symlink, a `..` component or a hardlink to something outside the layer is an
//! error, never a write outside the layer directory (the class of bug behind
//! RUSTSEC-2021-0080; we only use the `tar` crate to parse headers, never its
//! `unpack`). Existing entries are unlinked before being replaced, so a hardlink
//! planted earlier in the archive cannot be written through either.
//!
//! Whiteouts are recorded, not applied, in overlayfs' own format: `.wh.NAME`
//! becomes a 0/0 character device `NAME`, and `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory. That keeps layers independent of
//! each other, so they can be unpacked in parallel and stacked as lower dirs.

use std::ffi::{CStr, CString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, Cursor};
use crate::limits::{Meter, Metered, ENTRY_COST};

/// The prefix of a whiteout file name in a layer tarball.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The deepest path a layer may hold, in components. Linux itself has no limit, but
/// a path beyond `PATH_MAX` (4096 bytes: at most 2048 components) can only be
/// reached step by step, no real image comes near it, and every entry is resolved
/// from the layer root, so depth only costs. This is four times what `PATH_MAX`
/// allows.
pub const MAX_DEPTH: usize = 8192;
/// The name of the opaque-directory marker.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Its name for overlayfs mounted in a user namespace (`userxattr`): rootless
/// unpacking may not set `trusted.*` attributes.
pub const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// The opaque marker this process writes and its overlays read.
pub fn opaque_xattr() -> &'static str {
    if ccrun_runtime::rootless::in_user_namespace() {
        USER_OPAQUE_XATTR
    } else {
        OPAQUE_XATTR
    }
}

/// Told the path (relative to the layer directory) and size of each regular file's
/// content just before it is read: see [`unpack_observed`].
pub type OnFile<'f> = &'f dyn Fn(&[u8], u64);

/// What an unpack produced, for progress reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Entries written.
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

/// Unpacks the (already decompressed) tar stream `input` into the existing empty
/// directory `dest`. `meter` names the layer in errors and counts what it may write
/// (see [`crate::limits`]): every byte read from `input` and every entry. `warn`
/// receives non-fatal problems such as device nodes we may not create. Reads `input`
/// to its end, past the end-of-archive marker too: what follows is part of the
/// layer's diff-id, and must not be an unmetered way to make us work.
pub fn unpack<R: Read>(
    input: R,
    dest: &Path,
    meter: &Meter,
    warn: &dyn Fn(String),
) -> Result<UnpackStats> {
    unpack_observed(input, dest, meter, warn, None)
}

/// [`unpack`], telling `on_file` the path (relative to `dest`) and size of each
/// regular file's content just before it is read from `input`, so that a
/// [`crate::tar_split::Recorder`] can leave it out of its record.
pub fn unpack_observed<R: Read>(
    input: R,
    dest: &Path,
    meter: &Meter,
    warn: &dyn Fn(String),
    on_file: Option<OnFile<'_>>,
) -> Result<UnpackStats> {
    let result = unpack_metered(meter.reader(input), dest, meter, warn, on_file);
    match (result, meter.exceeded()) {
        // The tar reader wraps our error in its own words: say it plainly.
        (Err(_), Some(over)) => Err(over),
        (result, _) => result,
    }
}

fn unpack_metered<R: Read>(
    mut input: Metered<'_, R>,
    dest: &Path,
    meter: &Meter,
    warn: &dyn Fn(String),
    on_file: Option<OnFile<'_>>,
) -> Result<UnpackStats> {
    let layer = meter.layer();
    let root = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx("opening layer directory", dest)?;
    let mut tree = Tree {
        root,
        layer: layer.to_string(),
        cache: None,
        dirs: Vec::new(),
        is_root: rustix::process::geteuid().is_root(),
        warn,
        warned_chown: false,
        on_file,
    };
    let mut stats = UnpackStats::default();
    {
        let mut archive = tar::Archive::new(&mut input);
        let entries = archive
            .entries()
            .map_err(|e| tree.bad(format!("reading archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| tree.bad(format!("reading archive: {e}")))?;
            meter.charge(ENTRY_COST)?;
            let written = tree.entry(&mut entry, meter)?;
            stats.entries += 1;
            stats.bytes += written;
        }
    }
    tree.finish_dirs()?;
    io::copy(&mut input, &mut io::sink()).map_err(|source| Error::Stream {
        what: format!("layer {layer}"),
        source,
    })?;
    Ok(stats)
}

/// Metadata of one archive entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// A directory whose mode and mtime are set after all its children are written.
struct PendingDir {
    /// Its components joined by `/` (empty for the layer root): one string, not one
    /// per component, or a deep chain of directories would take memory quadratic in
    /// its depth.
    path: Vec<u8>,
    mode: u32,
    mtime: Timespec,
}

/// The layer being written: its root fd and a cache of the last parent directory.
struct Tree<'w> {
    root: OwnedFd,
    layer: String,
    /// The last resolved parent directory: its components joined with `/`, how many
    /// there are, its fd. Only we write below `root`, so a cached fd can only go
    /// stale by a removal, which clears the cache.
    cache: Option<(Vec<u8>, usize, OwnedFd)>,
    dirs: Vec<PendingDir>,
    is_root: bool,
    warn: &'w dyn Fn(String),
    warned_chown: bool,
    /// See [`unpack_observed`].
    on_file: Option<OnFile<'w>>,
}

impl Tree<'_> {
    fn bad(&self, message: String) -> Error {
        Error::UnsafeLayer {
            layer: self.layer.clone(),
            message,
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, meter: &Meter) -> Result<u64> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = abbreviate(&raw_path);
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(0);
        }
        let comps = self.components(&raw_path, &shown)?;
        let meta = self.meta(entry, &shown)?;
        let Some((name, parents)) = comps.split_last() else {
            // The layer root itself ("./"): only its metadata can be applied.
            if kind.is_dir() {
                self.dirs.push(PendingDir {
                    path: Vec::new(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            return Ok(0);
        };
        let name_bytes = *name;
        let name = &cstring(name, &shown, self)?;
        if name_bytes == OPAQUE_MARKER {
            let parent = self.parent(parents, &shown)?;
            let xattr = opaque_xattr();
            return rfs::fsetxattr(&parent, xattr, b"y", XattrFlags::empty())
                .map(|_| 0)
                .map_err(|e| {
                    self.bad(format!("{shown}: marking directory opaque ({xattr}): {e}"))
                });
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(WHITEOUT_PREFIX) {
                // Other AUFS metadata (.wh..wh.plnk etc.) has no meaning for us.
                return Ok(0);
            }
            self.check_whiteout(hidden, &shown)?;
            let hidden = cstring(hidden, &shown, self)?;
            return self.whiteout(parents, &hidden, &shown).map(|_| 0);
        }
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous | T::GNUSparse => {
                let sparse = kind == T::GNUSparse;
                if sparse {
                    // The tar reader fills holes in: the real size less what the
                    // archive holds. Counted before a byte of them is read.
                    let stored = entry.header().entry_size().unwrap_or(0);
                    meter.charge_holes(&shown, entry.size().saturating_sub(stored))?;
                } else if let Some(on_file) = self.on_file {
                    // What the archive holds of a sparse file is not its content on
                    // disk: that stays in the tar-split record as raw bytes.
                    on_file(&comps.join(&b'/'), entry.size());
                }
                self.file(parents, name, entry, sparse, &meta, &shown)
            }
            T::Directory => self.dir(parents, name, &meta, &shown).map(|_| 0),
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(format!("{shown}: symlink without target")))?
                    .into_owned();
                self.symlink(parents, name, &target, &meta, &shown)
                    .map(|_| 0)
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.bad(format!("{shown}: hardlink without target")))?
                    .into_owned();
                self.hardlink(parents, name, &target, &shown).map(|_| 0)
            }
            T::Char | T::Block | T::Fifo => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let ft = match kind {
                    T::Char => FileType::CharacterDevice,
                    T::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                self.node(parents, name, ft, rfs::makedev(major, minor), &meta, &shown)
                    .map(|_| 0)
            }
            other => {
                (self.warn)(format!(
                    "{shown}: skipping unsupported tar entry type {other:?}"
                ));
                Ok(0)
            }
        }
    }

    /// Refuses a whiteout whose target, the name after `.wh.`, is not a plain name in
    /// the entry's directory: `.wh...` would name the layer's parent (and clearing it
    /// would delete the layers unpacking next to this one), `.wh..` the directory
    /// itself, `.wh.` nothing. (The opaque marker needs no such check: it marks the
    /// directory it is in, which is resolved like any entry's parent.)
    fn check_whiteout(&self, target: &[u8], shown: &str) -> Result<()> {
        if matches!(target, b"" | b"." | b"..") || target.contains(&b'/') {
            return Err(self.bad(format!(
                "{shown}: whiteout of {:?}, which is not a name in its directory",
                String::from_utf8_lossy(target)
            )));
        }
        Ok(())
    }

    /// Splits a path into components: `.` and a leading `/` dropped (absolute paths
    /// are taken relative to the layer root, as Docker does), `..` refused, and
    /// paths deeper than [`MAX_DEPTH`] refused.
    /// They borrow from `raw`: paths are split for every entry, and a deep path has
    /// thousands of components.
    fn components<'p>(&self, raw: &'p [u8], shown: &str) -> Result<Vec<&'p [u8]>> {
        if raw.contains(&0) {
            return Err(self.bad(format!("{shown}: NUL byte in name")));
        }
        let mut out = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(self.bad(format!("{shown}: path escapes the layer (\"..\")"))),
                c => out.push(c),
            }
            if out.len() > MAX_DEPTH {
                let depth = raw.split(|b| *b == b'/').filter(|c| !c.is_empty()).count();
                return Err(self.bad(format!(
                    "{shown}: {depth} levels deep; at most {MAX_DEPTH} are allowed"
                )));
            }
        }
        Ok(out)
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
        let h = entry.header();
        let bad = |what: &str| self.bad(format!("{shown}: invalid {what} in header"));
        let mut uid = h.uid().map_err(|_| bad("uid"))?;
        let mut gid = h.gid().map_err(|_| bad("gid"))?;
        let mode = h.mode().map_err(|_| bad("mode"))? & 0o7777;
        let mut mtime = Timespec {
            tv_sec: h.mtime().map_err(|_| bad("mtime"))? as i64,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions().map_err(|_| bad("PAX header"))? {
            for ext in exts {
                let ext = ext.map_err(|_| bad("PAX header"))?;
                let Ok(key) = ext.key() else { continue };
                let value = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok())
                };
                match key {
                    "uid" => uid = num().ok_or_else(|| bad("PAX uid"))?,
                    "gid" => gid = num().ok_or_else(|| bad("PAX gid"))?,
                    "mtime" => {
                        let v = std::str::from_utf8(value).map_err(|_| bad("PAX mtime"))?;
                        let (s, frac) = v.split_once('.').unwrap_or((v, ""));
                        mtime.tv_sec = s.parse().map_err(|_| bad("PAX mtime"))?;
                        let digits: String =
                            frac.chars().chain("000000000".chars()).take(9).collect();
                        mtime.tv_nsec = digits.parse().unwrap_or(0);
                    }
                    k => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            // overlayfs' own attributes would let a layer redirect or
                            // hide paths in other layers; only we may set those.
                            if name.starts_with("trusted.overlay.")
                                || name.starts_with("user.overlay.")
                            {
                                (self.warn)(format!("{shown}: ignoring overlayfs xattr {name}"));
                                continue;
                            }
                            if let Ok(n) = CString::new(name) {
                                xattrs.push((n, value.to_vec()));
                            }
                        }
                    }
                }
            }
        }
        let id = |v: u64, what: &str| -> Result<u32> {
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| self.bad(format!("{shown}: {what} {v} out of range")))
        };
        Ok(Meta {
            mode,
            uid: id(uid, "uid")?,
            gid: id(gid, "gid")?,
            mtime,
            xattrs,
        })
    }

    /// Opens `path` below the root as a directory without following symlinks,
    /// creating missing directories when `create` is set.
    fn walk(&self, path: &[&[u8]], create: bool, shown: &str) -> Result<OwnedFd> {
        self.walk_from(self.root.as_fd(), path, create, shown)
    }

    /// [`Tree::walk`] from the directory `start` below the root.
    fn walk_from(
        &self,
        start: BorrowedFd<'_>,
        path: &[&[u8]],
        create: bool,
        shown: &str,
    ) -> Result<OwnedFd> {
        let mut cur = rustix::io::dup(start).ctx("duplicating fd of", shown)?;
        for c in path {
            let c = &cstring(c, shown, self)?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rfs::openat(&cur, c.as_c_str(), flags, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(&cur, c.as_c_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(self.bad(format!("{shown}: creating parent {c:?}: {e}")))
                        }
                    }
                    rfs::openat(&cur, c.as_c_str(), flags, Mode::empty())
                }
                other => other,
            };
            cur = match next {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(self.bad(format!(
                    "{shown}: {c:?} is a symlink or not a directory; refusing to write through it"
                )))
                }
                Err(e) => return Err(self.bad(format!("{shown}: resolving {c:?}: {e}"))),
            };
        }
        Ok(cur)
    }

    /// The parent directory of an entry, created if missing, from the cache when possible.
    /// Returned as its own fd so that `self` stays free for error reporting.
    fn parent(&mut self, parents: &[&[u8]], shown: &str) -> Result<OwnedFd> {
        let key = parents.join(&b'/');
        let opened = match &self.cache {
            Some((cached, _, _)) if *cached == key => None,
            // Below the cached directory (an archive lists a directory before what is
            // in it): on from there rather than from the root.
            Some((cached, depth, fd))
                if cached.is_empty()
                    || (key.starts_with(cached) && key.get(cached.len()) == Some(&b'/')) =>
            {
                Some(self.walk_from(fd.as_fd(), &parents[*depth..], true, shown)?)
            }
            _ => Some(self.walk(parents, true, shown)?),
        };
        if let Some(fd) = opened {
            self.cache = Some((key, parents.len(), fd));
        }
        match &self.cache {
            Some((_, _, fd)) => rustix::io::dup(fd).ctx("duplicating fd of", shown),
            None => Err(self.bad(format!("{shown}: internal error resolving parent"))),
        }
    }

    /// Removes whatever is at `name` in `parent` (a whole tree for a directory),
    /// so the new entry is created fresh and nothing old is written through.
    fn clear(&mut self, parents: &[&[u8]], name: &CStr, keep_dir: bool, shown: &str) -> Result<()> {
        let parent = self.parent(parents, shown)?;
        match rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.bad(format!("{shown}: inspecting existing entry: {e}"))),
            Ok(st) if keep_dir && FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Ok(())
            }
            Ok(_) => {}
        }
        self.cache = None;
        fsutil::remove_at(parent.as_fd(), name)
            .map(|_| ())
            .map_err(|e| self.bad(format!("{shown}: replacing existing entry: {e}")))
    }

    fn file<R: Read>(
        &mut self,
        parents: &[&[u8]],
        name: &CStr,
        data: &mut R,
        sparse: bool,
        meta: &Meta,
        shown: &str,
    ) -> Result<u64> {
        self.clear(parents, name, false, shown)?;
        let parent = self.parent(parents, shown)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&parent, name, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| self.bad(format!("{shown}: creating file: {e}")))?;
        let mut file = std::fs::File::from(fd);
        let written = if sparse {
            copy_sparse(data, &file)
        } else {
            copy(data, &mut file)
        }
        .map_err(|e| self.bad(format!("{shown}: writing: {e}")))?;
        let fd = file.as_fd();
        self.chown(|u, g| rfs::fchown(fd, u, g), meta, shown)?;
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| self.bad(format!("{shown}: chmod: {e}")))?;
        self.xattrs(fd, meta, shown);
        rfs::futimens(fd, &times(meta))
            .map_err(|e| self.bad(format!("{shown}: setting times: {e}")))?;
        Ok(written)
    }

    fn dir(&mut self, parents: &[&[u8]], name: &CStr, meta: &Meta, shown: &str) -> Result<()> {
        self.clear(parents, name, true, shown)?;
        let parent = self.parent(parents, shown)?;
        match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(self.bad(format!("{shown}: mkdir: {e}"))),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&parent, name, flags, Mode::empty())
            .map_err(|e| self.bad(format!("{shown}: opening directory: {e}")))?;
        self.chown(|u, g| rfs::fchown(&fd, u, g), meta, shown)?;
        self.xattrs(fd.as_fd(), meta, shown);
        let mut path = parents.join(&b'/');
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.to_bytes());
        // Its entries usually come next: a chain of directories costs one open each,
        // not a walk from the root each.
        self.cache = Some((path.clone(), parents.len() + 1, fd));
        self.dirs.push(PendingDir {
            path,
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn symlink(
        &mut self,
        parents: &[&[u8]],
        name: &CStr,
        target: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<()> {
        self.clear(parents, name, false, shown)?;
        let target = cstring(target, shown, self)?;
        let parent = self.parent(parents, shown)?;
        // The target is stored verbatim and never followed here; it is resolved only
        // later, inside the container's root.
        rfs::symlinkat(target.as_c_str(), &parent, name)
            .map_err(|e| self.bad(format!("{shown}: symlink: {e}")))?;
        self.chown(
            |u, g| rfs::chownat(&parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
            meta,
            shown,
        )?;
        rfs::utimensat(&parent, name, &times(meta), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.bad(format!("{shown}: setting times: {e}")))
    }

    fn hardlink(
        &mut self,
        parents: &[&[u8]],
        name: &CStr,
        target: &[u8],
        shown: &str,
    ) -> Result<()> {
        let target_comps = self.components(target, &format!("{shown}: hardlink target"))?;
        let Some((target_name, target_parents)) = target_comps.split_last() else {
            return Err(self.bad(format!("{shown}: hardlink to the layer root")));
        };
        let target_name = &cstring(target_name, shown, self)?;
        // The target must already exist in this layer, reached without following symlinks.
        let target_dir = self.walk(target_parents, false, shown)?;
        match rfs::statat(
            &target_dir,
            target_name.as_c_str(),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {}
            Ok(_) => return Err(self.bad(format!("{shown}: hardlink to a directory"))),
            Err(e) => {
                return Err(self.bad(format!("{shown}: hardlink target not in this layer: {e}")))
            }
        }
        if target_parents == parents && target_name.as_c_str() == name {
            return Ok(());
        }
        self.clear(parents, name, false, shown)?;
        let parent = self.parent(parents, shown)?;
        // No AT_SYMLINK_FOLLOW: a symlink target is linked as the symlink itself.
        rfs::linkat(
            &target_dir,
            target_name.as_c_str(),
            &parent,
            name,
            AtFlags::empty(),
        )
        .map_err(|e| self.bad(format!("{shown}: hardlink: {e}")))
    }

    fn node(
        &mut self,
        parents: &[&[u8]],
        name: &CStr,
        ft: FileType,
        dev: u64,
        meta: &Meta,
        shown: &str,
    ) -> Result<()> {
        self.clear(parents, name, false, shown)?;
        let parent = self.parent(parents, shown)?;
        match rfs::mknodat(&parent, name, ft, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(Errno::PERM) => {
                (self.warn)(format!(
                    "{shown}: skipping device node or fifo: not permitted"
                ));
                return Ok(());
            }
            Err(e) => return Err(self.bad(format!("{shown}: mknod: {e}"))),
        }
        self.chown(
            |u, g| rfs::chownat(&parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW),
            meta,
            shown,
        )?;
        // We just created this node ourselves, so chmodat cannot be redirected by a symlink.
        rfs::chmodat(
            &parent,
            name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(|e| self.bad(format!("{shown}: chmod: {e}")))?;
        rfs::utimensat(&parent, name, &times(meta), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.bad(format!("{shown}: setting times: {e}")))
    }

    /// Records `.wh.NAME` as the overlayfs whiteout for NAME: a 0/0 character device.
    fn whiteout(&mut self, parents: &[&[u8]], hidden: &CStr, shown: &str) -> Result<()> {
        self.clear(parents, hidden, false, shown)?;
        let parent = self.parent(parents, shown)?;
        rfs::mknodat(
            &parent,
            hidden,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(|e| {
            self.bad(format!(
                "{shown}: creating overlay whiteout (needs CAP_MKNOD): {e}"
            ))
        })
    }

    fn chown(
        &mut self,
        f: impl FnOnce(Option<Uid>, Option<Gid>) -> rustix::io::Result<()>,
        meta: &Meta,
        shown: &str,
    ) -> Result<()> {
        match f(Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid))) {
            Ok(()) => Ok(()),
            // Unprivileged unpacks keep our own ids; say so once rather than fail.
            Err(Errno::PERM | Errno::INVAL) if !self.is_root => {
                if !self.warned_chown {
                    self.warned_chown = true;
                    (self.warn)(
                        "not root: file ownership from the image is not preserved".to_string(),
                    );
                }
                Ok(())
            }
            Err(e) => Err(self.bad(format!("{shown}: chown {}:{}: {e}", meta.uid, meta.gid))),
        }
    }

    fn xattrs(&mut self, fd: BorrowedFd<'_>, meta: &Meta, shown: &str) {
        for (name, value) in &meta.xattrs {
            if let Err(e) = rfs::fsetxattr(fd, name.as_c_str(), value, XattrFlags::empty()) {
                (self.warn)(format!("{shown}: cannot set xattr {name:?}: {e}"));
            }
        }
    }

    /// Applies directory modes and mtimes last: writing children changes a
    /// directory's mtime, and a read-only mode would stop us writing them.
    /// Children come after their parents in an archive, so in reverse each directory
    /// is next to the one before: the cursor moves a level or two, not from the root.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        let mut cursor = Cursor::new(self.root.as_fd());
        for d in dirs.iter().rev() {
            let shown = abbreviate(&d.path);
            let path: Vec<&[u8]> = d
                .path
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            // Re-resolve without following anything: a later entry may have replaced
            // the directory by a symlink, which must not be chmod'ed through.
            if cursor.go_to(&path).is_err() {
                continue;
            }
            let Ok(fd) = cursor.dir() else {
                continue;
            };
            rfs::fchmod(fd, Mode::from_raw_mode(d.mode))
                .map_err(|e| self.bad(format!("{shown}: chmod: {e}")))?;
            let t = Timestamps {
                last_access: d.mtime,
                last_modification: d.mtime,
            };
            rfs::futimens(fd, &t).map_err(|e| self.bad(format!("{shown}: setting times: {e}")))?;
        }
        Ok(())
    }
}

fn times(meta: &Meta) -> Timestamps {
    Timestamps {
        last_access: meta.mtime,
        last_modification: meta.mtime,
    }
}

/// A path for messages: whole if short, else its start and end around an ellipsis,
/// so that a hostile 60 KB name still makes a one-line error.
fn abbreviate(path: &[u8]) -> String {
    const KEEP: usize = 100;
    if path.len() <= 2 * KEEP + 20 {
        return String::from_utf8_lossy(path).into_owned();
    }
    format!(
        "{}…{}",
        String::from_utf8_lossy(&path[..KEEP]),
        String::from_utf8_lossy(&path[path.len() - KEEP..])
    )
}

fn cstring(bytes: &[u8], shown: &str, tree: &Tree<'_>) -> Result<CString> {
    CString::new(bytes).map_err(|_| tree.bad(format!("{shown}: NUL byte in name")))
}

/// Writes a GNU sparse entry so that its holes stay holes: the tar reader hands
/// them to us as runs of zeros, and every all-zero block is skipped instead of
/// written, the length being set at the end for a trailing hole. Returns the bytes
/// actually written.
fn copy_sparse<R: Read + ?Sized>(r: &mut R, file: &std::fs::File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    /// The hole granularity: a page, the allocation unit of every filesystem we use.
    const BLOCK: usize = 4096;
    let mut buf = vec![0u8; 256 * BLOCK];
    let (mut offset, mut written) = (0u64, 0u64);
    loop {
        // Whole buffers keep the blocks aligned with the file's pages.
        let n = read_full(r, &mut buf)?;
        if n == 0 {
            break;
        }
        for block in buf[..n].chunks(BLOCK) {
            // No early exit: the OR of a whole block vectorizes, a search does not.
            if block.iter().fold(0, |acc, b| acc | b) != 0 {
                file.write_all_at(block, offset)?;
                written += block.len() as u64;
            }
            offset += block.len() as u64;
        }
    }
    file.set_len(offset)?;
    Ok(written)
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `io::copy` with a larger buffer: layer files are often big.
fn copy<R: Read + ?Sized, W: Write>(r: &mut R, w: &mut W) -> io::Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}
