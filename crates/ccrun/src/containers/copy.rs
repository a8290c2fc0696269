//! `cp` between a container and the host (or a tar stream), with Docker's rules for
//! where a copy lands, on top of [`super::files`]: a tree is archived on one side and
//! unpacked on the other, so both directions share one safe path.

use std::ffi::{CString, OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, FileType};

use super::files::{ContainerRoot, Owner, Rename, TarWriter, Unpacker};

/// How many symlinks `-L` follows before giving up.
const MAX_LINKS: usize = 40;

/// `cp`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// `-L`: follow a symlink given as the source.
    pub follow: bool,
    /// `-a`: keep the source's owners.
    pub archive: bool,
}

/// A copy's source or destination path, as Docker reads it.
struct Spot<'a> {
    path: &'a Path,
    /// The last component, `None` for `/`.
    name: Option<OsString>,
    /// `PATH/.`: the contents of a directory rather than the directory.
    contents: bool,
    /// `PATH/`: must be a directory.
    dir_only: bool,
}

impl<'a> Spot<'a> {
    fn new(text: &'a str) -> Spot<'a> {
        let path = Path::new(text);
        Spot {
            path,
            name: path.file_name().map(OsStr::to_os_string),
            contents: text.ends_with("/.") || text == ".",
            dir_only: text.ends_with('/'),
        }
    }

    fn parent(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// Where an archive of `name` (a directory when `src_is_dir`) unpacks for `dest`,
/// given what `dest` is now (`None`: missing, else whether it is a directory):
/// (the directory to unpack in, how names change). Docker's rules: into an existing
/// directory; over an existing file, or as a new entry, under the destination's
/// name.
fn landing(
    dest: &Spot<'_>,
    existing: Option<bool>,
    name: &OsStr,
    src_is_dir: bool,
    src_contents: bool,
) -> Result<(PathBuf, Rename)> {
    let renamed = |to: &OsString| Rename::Top {
        from: name.to_os_string(),
        to: to.clone(),
    };
    match existing {
        Some(true) if src_contents => Ok((
            dest.path.to_path_buf(),
            Rename::Contents {
                from: name.to_os_string(),
            },
        )),
        Some(true) => Ok((dest.path.to_path_buf(), Rename::None)),
        Some(false) if src_is_dir => bail!(
            "cannot copy a directory to the file {}",
            dest.path.display()
        ),
        Some(false) | None if dest.dir_only => {
            bail!(
                "the destination directory {} does not exist",
                dest.path.display()
            )
        }
        Some(false) | None => match &dest.name {
            Some(to) => Ok((dest.parent().to_path_buf(), renamed(to))),
            None => bail!("invalid destination {}", dest.path.display()),
        },
    }
}

/// Copies `src` out of the container into `out` as a tar archive (owners as the
/// container sees them); `follow` (`-L`) follows a final symlink. Returns whether
/// the source is a directory.
pub fn archive_from(
    root: &ContainerRoot,
    src: &str,
    follow: bool,
    out: impl Write,
) -> Result<bool> {
    let spot = Spot::new(src);
    let mut tar = TarWriter::new(out, root.ids.clone());
    let Some(name) = spot.name.clone().filter(|_| !spot.contents || src != "/.") else {
        // The whole root: its own filesystem, as `export` has it.
        tar.contents(root.dir.as_fd())?;
        tar.finish()?;
        return Ok(true);
    };
    let (parent, entry) = resolve(root, spot.parent(), &name, follow)?;
    let st = rfs::statat(&parent, entry.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("no such file or directory in the container: {src}"))?;
    tar.entry(parent.as_fd(), &entry, Path::new(&name))
        .with_context(|| format!("copying {src}"))?;
    tar.finish()?.flush().context("writing the archive")?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// The directory holding `parent/name` in the container and the name there, after
/// following a final symlink (inside the root) when `follow`.
fn resolve(
    root: &ContainerRoot,
    parent: &Path,
    name: &OsStr,
    follow: bool,
) -> Result<(OwnedFd, CString)> {
    let mut parent = parent.to_path_buf();
    let mut name = name.to_os_string();
    for _ in 0..MAX_LINKS {
        let dir = root
            .open_dir(&parent)?
            .with_context(|| format!("no such directory in the container: {}", parent.display()))?;
        let entry = CString::new(name.as_bytes()).context("a path with a NUL byte")?;
        let link = rfs::statat(&dir, entry.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
        if !follow || !link {
            return Ok((dir, entry));
        }
        let target = rfs::readlinkat(&dir, entry.as_c_str(), Vec::new())?;
        let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
        let next = parent.join(&target);
        parent = next.parent().unwrap_or(Path::new("/")).to_path_buf();
        match next.file_name() {
            Some(n) => name = n.to_os_string(),
            None => bail!("the link {} names a directory's parent", target.display()),
        }
    }
    bail!("too many levels of symbolic links")
}

/// Copies `src` out of the container to the host path `dest`; with `archive` (`-a`)
/// the files keep the container's owners, else they belong to the caller.
pub fn copy_out(root: &ContainerRoot, src: &str, dest: &str, opts: Options) -> Result<()> {
    let Options { follow, archive } = opts;
    let source = Spot::new(src);
    let Some(name) = source.name.clone() else {
        bail!("copying the whole root filesystem to a directory: use ccrun export");
    };
    let dest = Spot::new(dest);
    let existing = std::fs::metadata(dest.path).ok().map(|m| m.is_dir());
    // The source's kind decides the rules, before anything is written.
    let (parent, entry) = resolve(root, source.parent(), &name, follow)?;
    let st = rfs::statat(&parent, entry.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        .with_context(|| format!("no such file or directory in the container: {src}"))?;
    let src_is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    let (target, rename) = landing(&dest, existing, &name, src_is_dir, source.contents)?;
    let target_dir = rfs::open(
        &target,
        rfs::OFlags::RDONLY | rfs::OFlags::DIRECTORY | rfs::OFlags::CLOEXEC,
        rfs::Mode::empty(),
    )
    .with_context(|| format!("no such directory: {}", target.display()))?;
    let owner = if archive {
        Owner::Archive(crate::spec_builder::UsernsMode::Host)
    } else {
        let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
        Owner::Fixed(uid.as_raw(), gid.as_raw())
    };
    through_pipe(
        |out| archive_from(root, src, follow, out).map(|_| ()),
        |input| Unpacker::new(target_dir, owner, rename).unpack(input),
    )
}

/// Copies the host path `src` (`-`: a tar archive on stdin) into the container at
/// `dest`; files belong to the container's root unless `archive` (`-a`) keeps the
/// source's owners.
pub fn copy_in(root: &ContainerRoot, src: &str, dest: &str, opts: Options) -> Result<()> {
    let Options { follow, archive } = opts;
    let owner = if archive {
        Owner::Archive(root.ids.clone())
    } else {
        let (uid, gid) = root.ids.root_owner();
        Owner::Fixed(uid, gid)
    };
    let dest_spot = Spot::new(dest);
    let existing = root
        .stat(dest_spot.path, true)?
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
    if src == "-" {
        if existing != Some(true) {
            bail!("the destination {dest} must be an existing directory for an archive");
        }
        let target = root
            .open_dir(dest_spot.path)?
            .context("the destination vanished")?;
        return Unpacker::new(target, owner, Rename::None)
            .creating_as_container_root(root.ids.clone())
            .unpack(std::io::stdin().lock());
    }
    let source = Spot::new(src);
    let src_path = if source.contents {
        source.parent()
    } else {
        source.path
    };
    let meta = if follow {
        std::fs::metadata(src_path)
    } else {
        std::fs::symlink_metadata(src_path)
    }
    .with_context(|| format!("no such file or directory: {src}"))?;
    let name = std::fs::canonicalize(src_path)
        .ok()
        .and_then(|p| p.file_name().map(OsStr::to_os_string))
        .or_else(|| src_path.file_name().map(OsStr::to_os_string))
        .unwrap_or_else(|| OsString::from("root"));
    let (target, rename) = landing(&dest_spot, existing, &name, meta.is_dir(), source.contents)?;
    let target = root
        .open_dir(&target)?
        .with_context(|| format!("no such directory in the container: {}", target.display()))?;
    through_pipe(
        |out| {
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(follow);
            tar.mode(tar::HeaderMode::Complete);
            if meta.is_dir() {
                tar.append_dir_all(&name, src_path)
            } else {
                tar.append_path_with_name(src_path, &name)
            }
            .with_context(|| format!("reading {src}"))?;
            tar.into_inner().context("finishing the archive")?;
            Ok(())
        },
        |input| {
            Unpacker::new(target, owner, rename)
                .creating_as_container_root(root.ids.clone())
                .unpack(input)
        },
    )
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs `produce` on a thread writing into a pipe that `consume` reads here.
fn through_pipe(
    produce: impl FnOnce(std::io::PipeWriter) -> Result<()> + Send,
    consume: impl FnOnce(std::io::PipeReader) -> Result<()>,
) -> Result<()> {
    let (reader, writer) = std::io::pipe().context("pipe")?;
    std::thread::scope(|s| {
        let producer = s.spawn(move || produce(writer));
        let consumed = consume(reader);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the archiving thread panicked")));
        match (consumed, produced) {
            (Ok(()), produced) => produced,
            // A consumer that stopped early closed the pipe: the producer's broken
            // pipe only echoes the consumer's error.
            (Err(e), Err(p)) if !is_broken_pipe(&p) => Err(p.context(format!("{e:#}"))),
            (Err(e), _) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn land(
        dest: &str,
        existing: Option<bool>,
        dir: bool,
        contents: bool,
    ) -> Result<(PathBuf, Rename)> {
        landing(&Spot::new(dest), existing, OsStr::new("src"), dir, contents)
    }

    #[test]
    fn docker_landing_rules() {
        assert_eq!(
            land("/d", Some(true), false, false).expect("into dir"),
            ("/d".into(), Rename::None)
        );
        let (at, rename) = land("/d/f", Some(false), false, false).expect("over file");
        assert_eq!(at, PathBuf::from("/d"));
        assert_eq!(
            rename,
            Rename::Top {
                from: "src".into(),
                to: "f".into()
            }
        );
        let (at, _) = land("/new", None, true, false).expect("new dir");
        assert_eq!(at, PathBuf::from("/"));
        assert!(land("/f", Some(false), true, false).is_err());
        assert!(land("/missing/", None, false, false).is_err());
        let (_, rename) = land("/d", Some(true), true, true).expect("contents");
        assert_eq!(rename, Rename::Contents { from: "src".into() });
    }
}
