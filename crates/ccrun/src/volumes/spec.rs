//! Parsing `-v`/`--volume` and `--mount` the way Docker does (plus Podman's `U`),
//! into what each asks for: a bind mount of a host path, a named or anonymous volume,
//! or a tmpfs.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Bind propagation modes Docker accepts.
const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// What one `-v` or `--mount` (or an image's `Volumes` entry) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A host path bind-mounted into the container.
    Bind(BindRequest),
    /// A volume from the volume store.
    Volume(VolumeRequest),
    /// A fresh tmpfs (`--mount type=tmpfs`).
    Tmpfs(TmpfsRequest),
}

/// A bind mount of a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRequest {
    /// Host path (absolute).
    pub source: PathBuf,
    /// Path in the container (absolute, clean).
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// Podman's `U`: chown the source recursively to the container's user first.
    pub chown: bool,
    /// Mount propagation (`rprivate` unless given).
    pub propagation: String,
    /// Recursive bind (Docker's default; `bind-nonrecursive` turns it off).
    pub recursive: bool,
    /// `idmap`: mounted with the container's user-namespace mapping, so host owners
    /// appear as themselves inside and the container's writes land with them.
    pub idmap: bool,
}

/// A named or anonymous volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// Volume name; `None` for an anonymous volume until [`super::plan`] names it.
    pub name: Option<String>,
    /// Made for this container: no name was given.
    pub anonymous: bool,
    /// Path in the container (absolute, clean).
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// `nocopy`/`volume-nocopy`: do not seed a new volume from the image.
    pub nocopy: bool,
    /// Podman's `U`: chown the volume recursively to the container's user first.
    pub chown: bool,
    /// `volume-label`s given to the volume if this creates it.
    pub labels: BTreeMap<String, String>,
}

/// A tmpfs from `--mount type=tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsRequest {
    /// Path in the container (absolute, clean).
    pub destination: String,
    /// `tmpfs-size` in bytes.
    pub size: Option<i64>,
    /// `tmpfs-mode` (octal).
    pub mode: Option<u32>,
    /// Mounted read-only.
    pub readonly: bool,
}

impl MountRequest {
    /// Path in the container.
    pub fn destination(&self) -> &str {
        match self {
            MountRequest::Bind(b) => &b.destination,
            MountRequest::Volume(v) => &v.destination,
            MountRequest::Tmpfs(t) => &t.destination,
        }
    }

    /// An anonymous volume at `destination` (image `Volumes`).
    pub fn anonymous(destination: &str) -> Result<MountRequest> {
        Ok(MountRequest::Volume(VolumeRequest {
            name: None,
            anonymous: true,
            destination: destination_path(destination)?,
            readonly: false,
            nocopy: false,
            chown: false,
            labels: BTreeMap::new(),
        }))
    }
}

/// A clean absolute container path: `.` and `..` resolved lexically, no trailing `/`;
/// `/` itself is refused.
pub fn destination_path(path: &str) -> Result<String> {
    if !path.starts_with('/') {
        bail!("invalid mount destination {path:?}: it must be an absolute path");
    }
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        bail!("invalid mount destination {path:?}: it can't be '/'");
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Parses `-v`: `/ctr` (anonymous volume), `NAME:/ctr[:OPTS]` (named volume) or
/// `/host:/ctr[:OPTS]` (bind), where OPTS is a comma list of `ro`/`rw`, `z`/`Z`
/// (accepted, ignored: ccrun does not use SELinux labels), `U`, `nocopy` (volumes) and
/// a propagation mode (binds).
pub fn parse_volume_flag(spec: &str) -> Result<MountRequest> {
    let invalid = || format!("invalid volume specification: {spec:?}");
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, mode] => (Some(*src), *dst, *mode),
        _ => bail!("{}: too many colons", invalid()),
    };
    if source == Some("") || destination.is_empty() {
        bail!("{}: empty path", invalid());
    }
    let destination = destination_path(destination).with_context(invalid)?;
    let mut readonly = None;
    let mut label = None;
    let mut propagation = None;
    let (mut chown, mut nocopy, mut idmap) = (false, false, false);
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        let slot = match opt {
            "ro" | "rw" => &mut readonly,
            "z" | "Z" => &mut label,
            p if PROPAGATIONS.contains(&p) => &mut propagation,
            "U" => {
                chown = true;
                continue;
            }
            "idmap" => {
                idmap = true;
                continue;
            }
            "nocopy" => {
                nocopy = true;
                continue;
            }
            _ => bail!("{}: unknown option {opt:?}", invalid()),
        };
        if slot.replace(opt).is_some() {
            bail!("{}: conflicting options in {mode:?}", invalid());
        }
    }
    if label.is_some() {
        warn_selinux();
    }
    let readonly = readonly == Some("ro");
    match source.map(host_path) {
        Some(Some(src)) => {
            if nocopy {
                bail!("{}: nocopy applies to volumes, not bind mounts", invalid());
            }
            Ok(MountRequest::Bind(BindRequest {
                source: src?,
                destination,
                readonly,
                chown,
                propagation: propagation.unwrap_or("rprivate").to_string(),
                recursive: true,
                idmap,
            }))
        }
        _ => {
            if idmap {
                bail!("{}: idmap applies to bind mounts", invalid());
            }
            if let Some(p) = propagation {
                bail!(
                    "{}: propagation {p:?} applies to bind mounts only",
                    invalid()
                );
            }
            if let Some(name) = source {
                super::store::validate_name(name).with_context(invalid)?;
            }
            Ok(MountRequest::Volume(VolumeRequest {
                name: source.map(String::from),
                anonymous: source.is_none(),
                destination,
                readonly,
                nocopy,
                chown,
                labels: BTreeMap::new(),
            }))
        }
    }
}

/// A bind mount's host path: absolute as given, or relative to the working directory
/// when it starts with `./` or `../` (or is `.` or `..`), as Docker 23+ and podman
/// resolve it; `None` for anything else, which names a volume.
fn host_path(source: &str) -> Option<Result<PathBuf>> {
    let relative =
        matches!(source, "." | "..") || source.starts_with("./") || source.starts_with("../");
    if source.starts_with('/') {
        Some(Ok(PathBuf::from(source)))
    } else if relative {
        Some(
            std::env::current_dir()
                .map(|cwd| clean(&cwd.join(source)))
                .context("resolving a relative bind source against the working directory"),
        )
    } else {
        None
    }
}

/// `path` without `.` and `..` components (lexically, as Docker does).
fn clean(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// A boolean `--mount` value: bare key, `true`/`1` or `false`/`0`.
fn flag_value(key: &str, value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => bail!("invalid value {v:?} for {key}: use true or false"),
    }
}

/// Parses `--mount type=bind|volume|tmpfs,src=…,dst=…[,ro][,readonly][,bind-propagation=…]
/// [,bind-nonrecursive][,volume-nocopy][,volume-label=K=V][,tmpfs-size=…][,tmpfs-mode=…][,U]`.
pub fn parse_mount_flag(spec: &str) -> Result<MountRequest> {
    let invalid = || format!("invalid --mount {spec:?}");
    let mut kind = "volume".to_string();
    let mut source = None;
    let mut target = None;
    let mut readonly = false;
    let mut chown = false;
    let mut idmap = false;
    let mut propagation = None;
    let mut recursive = true;
    let mut nocopy = false;
    let mut labels = BTreeMap::new();
    let mut size = None;
    let mut mode = None;
    // The families of type-specific options used, to refuse mixing them.
    let mut families: Vec<&str> = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (field.trim(), None),
        };
        let key_lower = key.to_ascii_lowercase();
        let required = || value.with_context(|| format!("{}: {key} needs a value", invalid()));
        if let Some(prefix) = ["bind", "volume", "tmpfs"]
            .into_iter()
            .find(|p| key_lower.starts_with(&format!("{p}-")))
        {
            families.push(prefix);
        }
        match key_lower.as_str() {
            "type" => kind = required()?.to_string(),
            "source" | "src" => source = Some(required()?.to_string()),
            "destination" | "dst" | "target" => target = Some(required()?.to_string()),
            "readonly" | "ro" => readonly = flag_value(key, value)?,
            "u" | "chown" => chown = flag_value(key, value)?,
            "idmap" => idmap = flag_value(key, value)?,
            "bind-propagation" => {
                let p = required()?;
                if !PROPAGATIONS.contains(&p) {
                    bail!("{}: unknown bind-propagation {p:?}", invalid());
                }
                propagation = Some(p.to_string());
            }
            "bind-nonrecursive" => recursive = !flag_value(key, value)?,
            "volume-nocopy" => nocopy = flag_value(key, value)?,
            "volume-label" => {
                let label = required()?;
                let (k, v) = label.split_once('=').unwrap_or((label, ""));
                labels.insert(k.to_string(), v.to_string());
            }
            "volume-driver" => {
                if required()? != "local" {
                    bail!("{}: only the local volume driver exists", invalid());
                }
            }
            "tmpfs-size" => size = Some(crate::units::parse_bytes(required()?)?),
            "tmpfs-mode" => {
                let m = required()?;
                mode = Some(u32::from_str_radix(m, 8).with_context(|| {
                    format!("{}: tmpfs-mode {m:?} is not an octal mode", invalid())
                })?);
            }
            // Docker accepts these for other platforms; SELinux labels are not used.
            "consistency" | "relabel" => {}
            _ => bail!("{}: unknown option {key:?}", invalid()),
        }
    }
    let target = target.with_context(|| format!("{}: dst (target) is required", invalid()))?;
    let destination = destination_path(&target).with_context(invalid)?;
    if let Some(f) = families.iter().find(|f| **f != kind) {
        bail!("{}: {f}-* options don't apply to type={kind}", invalid());
    }
    match kind.as_str() {
        "bind" => {
            let source = source.with_context(|| format!("{}: src is required", invalid()))?;
            let Some(source) = host_path(&source) else {
                bail!(
                    "{}: the bind source {source:?} must be an absolute path or start with ./ or ../",
                    invalid()
                );
            };
            Ok(MountRequest::Bind(BindRequest {
                source: source?,
                destination,
                readonly,
                chown,
                propagation: propagation.unwrap_or_else(|| "rprivate".to_string()),
                recursive,
                idmap,
            }))
        }
        "volume" | "tmpfs" if idmap => bail!("{}: idmap applies to bind mounts", invalid()),
        "volume" => {
            if let Some(name) = &source {
                super::store::validate_name(name).with_context(invalid)?;
            }
            Ok(MountRequest::Volume(VolumeRequest {
                anonymous: source.is_none(),
                name: source,
                destination,
                readonly,
                nocopy,
                chown,
                labels,
            }))
        }
        "tmpfs" => {
            if source.is_some() {
                bail!("{}: a tmpfs takes no src", invalid());
            }
            if chown {
                bail!("{}: U applies to bind mounts and volumes", invalid());
            }
            Ok(MountRequest::Tmpfs(TmpfsRequest {
                destination,
                size,
                mode,
                readonly,
            }))
        }
        other => bail!(
            "{}: unknown type {other:?} (use bind, volume or tmpfs)",
            invalid()
        ),
    }
}

/// `z`/`Z` relabel for SELinux; ccrun sets no SELinux labels, so say so where it matters.
fn warn_selinux() {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        tracing::warn!("SELinux is enabled, but ccrun does not relabel volumes: z/Z are ignored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(src: &str, dst: &str, ro: bool) -> MountRequest {
        MountRequest::Bind(BindRequest {
            source: src.into(),
            destination: dst.into(),
            readonly: ro,
            chown: false,
            propagation: "rprivate".into(),
            recursive: true,
            idmap: false,
        })
    }

    fn volume(name: Option<&str>, dst: &str) -> VolumeRequest {
        VolumeRequest {
            name: name.map(String::from),
            anonymous: name.is_none(),
            destination: dst.into(),
            readonly: false,
            nocopy: false,
            chown: false,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn volume_flag_forms() {
        assert_eq!(
            parse_volume_flag("/data").expect("anon"),
            MountRequest::Volume(volume(None, "/data"))
        );
        assert_eq!(
            parse_volume_flag("cache:/var/cache/").expect("named"),
            MountRequest::Volume(volume(Some("cache"), "/var/cache"))
        );
        assert_eq!(
            parse_volume_flag("/srv:/srv:ro,Z").expect("bind"),
            bind("/srv", "/srv", true)
        );
        assert_eq!(
            parse_volume_flag("/srv:/x/./y/../z:rw").expect("bind"),
            bind("/srv", "/x/z", false)
        );
        let MountRequest::Bind(b) = parse_volume_flag("/a:/b:U,rshared").expect("bind") else {
            panic!("not a bind");
        };
        assert!(b.chown);
        assert_eq!(b.propagation, "rshared");
        let MountRequest::Volume(v) = parse_volume_flag("vol:/b:nocopy,ro").expect("vol") else {
            panic!("not a volume");
        };
        assert!(v.nocopy && v.readonly);
        let MountRequest::Bind(b) = parse_volume_flag("/a:/b:idmap,ro").expect("bind") else {
            panic!("not a bind");
        };
        assert!(b.idmap && b.readonly);
    }

    #[test]
    fn relative_bind_sources_resolve_against_the_working_directory() {
        let cwd = std::env::current_dir().expect("cwd");
        let MountRequest::Bind(b) =
            parse_volume_flag("./html:/usr/share/nginx/html").expect("bind")
        else {
            panic!("not a bind");
        };
        assert_eq!(b.source, cwd.join("html"));
        let MountRequest::Bind(b) = parse_volume_flag("../x/./y:/y").expect("bind") else {
            panic!("not a bind");
        };
        assert_eq!(b.source, clean(&cwd.join("../x/y")));
        let MountRequest::Bind(b) = parse_mount_flag("type=bind,src=.,dst=/w,idmap").expect("bind")
        else {
            panic!("not a bind");
        };
        assert_eq!(b.source, cwd);
        assert!(b.idmap);
        // Without ./ it still names a volume.
        assert!(matches!(
            parse_volume_flag("html:/x").expect("volume"),
            MountRequest::Volume(_)
        ));
        assert!(parse_volume_flag("vol:/x:idmap").is_err());
        assert!(parse_mount_flag("type=volume,src=v,dst=/x,idmap").is_err());
        assert!(parse_mount_flag("type=bind,src=rel,dst=/x").is_err());
    }

    #[test]
    fn volume_flag_errors() {
        for bad in [
            "relative:dir",
            "a:/b:c:d",
            "/a:/b:rx",
            "/a:/b:ro,rw",
            "/a:/b:z,Z",
            ":/b",
            "/a:",
            "/a:/",
            "x:/b",
            "bad/name:/b",
            "vol:/b:rshared",
            "/a:/b:nocopy",
        ] {
            assert!(parse_volume_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_flag_forms() {
        assert_eq!(
            parse_mount_flag("type=bind,src=/h,dst=/c,readonly").expect("bind"),
            bind("/h", "/c", true)
        );
        assert_eq!(
            parse_mount_flag("type=bind,source=/h,target=/c,ro=false").expect("bind"),
            bind("/h", "/c", false)
        );
        let MountRequest::Volume(v) =
            parse_mount_flag("src=v1,dst=/d,volume-nocopy,volume-label=a=b").expect("volume")
        else {
            panic!("not a volume");
        };
        assert_eq!(v.name.as_deref(), Some("v1"));
        assert!(v.nocopy);
        assert_eq!(v.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(
            parse_mount_flag("type=volume,dst=/anon").expect("anon"),
            MountRequest::Volume(volume(None, "/anon"))
        );
        assert_eq!(
            parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770").expect("tmpfs"),
            MountRequest::Tmpfs(TmpfsRequest {
                destination: "/t".into(),
                size: Some(1 << 20),
                mode: Some(0o1770),
                readonly: false,
            })
        );
        let MountRequest::Bind(b) =
            parse_mount_flag("type=bind,src=/h,dst=/c,bind-nonrecursive,U").expect("bind")
        else {
            panic!("not a bind");
        };
        assert!(!b.recursive && b.chown);
    }

    #[test]
    fn mount_flag_errors() {
        for bad in [
            "type=bind,dst=/c",
            "type=bind,src=rel,dst=/c",
            "type=bind,src=/h",
            "type=tmpfs,src=x,dst=/t",
            "type=tmpfs,dst=/t,tmpfs-mode=9",
            "type=bind,src=/h,dst=/c,volume-nocopy",
            "type=volume,src=/abs,dst=/c",
            "type=nfs,dst=/c",
            "type=bind,src=/h,dst=/c,bogus=1",
            "type=bind,src=/h,dst=/c,bind-propagation=sideways",
            "type=volume,dst=/c,bind-propagation=rshared,volume-nocopy",
        ] {
            assert!(parse_mount_flag(bad).is_err(), "{bad}");
        }
    }
}
