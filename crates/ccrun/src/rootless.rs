//! Rootless ccrun: an unprivileged user's ccrun runs as root of one user namespace of
//! that user's (its own uid as root, its `/etc/subuid` and `/etc/subgid` ranges after
//! it), kept by a pause process so that every ccrun of the user, and every container,
//! lives in the same one, as podman does; with its store under `$XDG_DATA_HOME`, its
//! state under `$XDG_RUNTIME_DIR`, and pasta for networking.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use ccrun_runtime::rootless::RootlessMaps;

use crate::commands::run::UsernsArg;
use crate::idranges::Allocation;
use crate::spec_builder::{Limits, UsernsMode};

pub mod network;

/// Set for the processes inside the rootless namespace: the user's uid and gid outside
/// (`UID:GID`), so that children (the monitor's cleanup, a pull) know they are rootless.
pub const ENV_OUTER: &str = "_CCRUN_ROOTLESS";
/// The pause process's pid file (with its start time) in the state root.
const PAUSE_FILE: &str = "pause.pid";

/// Whether this ccrun runs for an unprivileged user (inside its namespace or about to
/// enter it).
pub fn active() -> bool {
    static ACTIVE: OnceLock<bool> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        !nix::unistd::geteuid().is_root()
            || (std::env::var_os(ENV_OUTER).is_some()
                && ccrun_runtime::rootless::in_user_namespace())
    })
}

/// The user's uid and gid on the host.
pub fn outer_ids() -> (u32, u32) {
    let from_env = std::env::var(ENV_OUTER).ok().and_then(|v| {
        let (u, g) = v.split_once(':')?;
        Some((u.parse().ok()?, g.parse().ok()?))
    });
    from_env.unwrap_or_else(|| {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    })
}

/// The rootless state root: `$XDG_RUNTIME_DIR/ccrun`, else `/run/user/UID/ccrun` when
/// that directory exists and is the user's (as podman falls back).
pub fn state_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("ccrun"));
    }
    let (uid, _) = outer_ids();
    let fallback = PathBuf::from(format!("/run/user/{uid}"));
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(&fallback) {
        Ok(m) if m.is_dir() && (m.uid() == uid || (m.uid() == 0 && active() && in_ns())) => {
            Ok(fallback.join("ccrun"))
        }
        _ => bail!(
            "rootless ccrun keeps its runtime state in $XDG_RUNTIME_DIR, which is not set \
             (and {} is not yours): log in through a session that sets it, or set it to a \
             directory of yours, or pass --state DIR",
            fallback.display()
        ),
    }
}

fn in_ns() -> bool {
    ccrun_runtime::rootless::in_user_namespace()
}

/// Makes this process root of the user's rootless namespace: joins the pause process's
/// namespaces, starting the pause process first if there is none. A no-op when already
/// inside. Must run first thing, single-threaded.
pub fn enter(explicit_state: Option<&Path>) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let state = match explicit_state {
        Some(dir) => dir.to_path_buf(),
        None => state_root()?,
    };
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let _ = std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let (uid, gid) = outer_ids();
    let pause = state.join(PAUSE_FILE);
    let pid = match live_pause(&pause) {
        Some(pid) => pid,
        None => {
            let _lock = crate::storage::lock_exclusive(&state.join("pause.lock"))?;
            match live_pause(&pause) {
                Some(pid) => pid,
                None => start_pause(&pause, uid, gid)?,
            }
        }
    };
    join(pid)?;
    let _ = PAUSE_PID.set(pid);
    std::env::set_var(ENV_OUTER, format!("{uid}:{gid}"));
    Ok(())
}

/// The pause process this ccrun joined (set by [`enter`]).
static PAUSE_PID: OnceLock<i32> = OnceLock::new();

/// The pid of the pause process named by `file`, if it still runs.
fn live_pause(file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    ccrun_runtime::state::process_is_alive(pid, start).then_some(pid)
}

/// Forks the pause process: it moves into a new user namespace with the user's maps
/// (see [`ccrun_runtime::rootless::enter`]) and then only sleeps, holding it.
fn start_pause(file: &Path, uid: u32, gid: u32) -> Result<i32> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .with_context(|| format!("uid {uid} has no name in the user database"))?;
    let maps = RootlessMaps::for_user(
        &user,
        uid,
        gid,
        Path::new(ccrun_runtime::subid::SUBUID),
        Path::new(ccrun_runtime::subid::SUBGID),
    )?;
    ccrun_runtime::rootless::helper("newuidmap")?;
    ccrun_runtime::rootless::helper("newgidmap")?;
    let (r, w) = nix::unistd::pipe().context("pipe")?;
    // SAFETY: ccrun is single-threaded here; the child only enters the namespace,
    // reports and sleeps.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            // The user's network namespace, owned by the user namespace: where the
            // bridges of the user's networks live (see `in_user_netns`).
            let reply = match ccrun_runtime::rootless::enter(&maps)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("creating the user's network namespace: {e}"))
                }) {
                Ok(()) => "ok".to_string(),
                Err(e) => e,
            };
            let _ = nix::unistd::write(&w, reply.as_bytes());
            drop(w);
            if reply != "ok" {
                // SAFETY: ends the failed child without the parent's destructors.
                unsafe { libc::_exit(1) };
            }
            pause_forever()
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut reply = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut reply);
            if reply != "ok" {
                let _ = nix::sys::wait::waitpid(child, None);
                bail!("{reply}");
            }
            let pid = child.as_raw();
            let start = ccrun_runtime::state::proc_stat(pid).map_or(0, |s| s.0);
            crate::containers::record::write_atomic(file, format!("{pid} {start}\n").as_bytes())?;
            Ok(pid)
        }
    }
}

/// The pause process's life: detached from the caller's session and descriptors.
fn pause_forever() -> ! {
    crate::containers::process::detach_from_caller();
    // SAFETY: closing descriptors this process owns; nothing uses them any more.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    // SAFETY: a NUL-terminated name for prctl.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"ccrun-pause".as_ptr()) };
    loop {
        nix::unistd::pause();
    }
}

/// Runs `f` in the user's network namespace (the pause process's), where the bridges
/// of the user's own networks connect its containers; as root, `f` runs as it is. A
/// thread of its own enters the namespace and ends there: an unprivileged user could
/// not come back to the host's.
pub fn in_user_netns<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if !active() {
        return f();
    }
    let netns = user_netns()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the user's network namespace")?;
                f()
            })
            .join()
            .unwrap_or_else(|_| bail!("the network thread panicked"))
    })
}

/// The user's network namespace: the pause process's.
fn user_netns() -> Result<std::fs::File> {
    let pid = match PAUSE_PID.get() {
        Some(pid) => *pid,
        None => live_pause(&state_root()?.join(PAUSE_FILE))
            .context("the rootless pause process is gone")?,
    };
    let path = format!("/proc/{pid}/ns/net");
    let netns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let own = std::fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    let theirs = netns
        .metadata()
        .with_context(|| format!("reading {path}"))?;
    use std::os::unix::fs::MetadataExt;
    if (own.dev(), own.ino()) == (theirs.dev(), theirs.ino()) {
        bail!(
            "the rootless pause process (pid {pid}) predates user-defined networks and has no \
             network namespace of its own: stop your containers, kill it and try again"
        );
    }
    Ok(netns)
}

/// Joins the user and mount namespaces of the pause process `pid` as their root.
fn join(pid: i32) -> Result<()> {
    use nix::sched::{setns, CloneFlags};
    let open = |kind: &str| {
        let path = format!("/proc/{pid}/ns/{kind}");
        std::fs::File::open(&path).with_context(|| format!("opening {path}"))
    };
    let (user, mnt) = (open("user")?, open("mnt")?);
    // Entering a mount namespace moves us to its root: come back to the same directory.
    let cwd = std::env::current_dir().ok();
    setns(&user, CloneFlags::CLONE_NEWUSER).context("joining the rootless user namespace")?;
    setns(&mnt, CloneFlags::CLONE_NEWNS).context("joining the rootless mount namespace")?;
    if let Some(dir) = cwd {
        std::env::set_current_dir(&dir)
            .with_context(|| format!("returning to {}", dir.display()))?;
    }
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).context("setgid 0")?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid).context("setuid 0")?;
    let _ = nix::unistd::setgroups(&[]);
    Ok(())
}

/// The user namespace mode of `arg`, and for `private` and `auto` ccrun's allocation;
/// rootless ccrun has no ranges to give out, only the user's own.
pub fn userns_mode(arg: UsernsArg) -> Result<(UsernsMode, Option<Allocation>)> {
    match (arg, active()) {
        (UsernsArg::Host, _) => Ok((UsernsMode::Host, None)),
        (UsernsArg::Private | UsernsArg::Auto, true) => bail!(
            "--userns {}: rootless containers run in your own subordinate ids; use the \
             default (--userns host: your uid is the container's root) or --userns keep-id",
            if arg == UsernsArg::Auto {
                "auto"
            } else {
                "private"
            }
        ),
        (UsernsArg::Private, false) => {
            let allocation = Allocation::ensure()?;
            Ok((allocation.private()?, None))
        }
        (UsernsArg::Auto, false) => {
            let allocation = Allocation::ensure()?;
            // Until the container's own range is assigned (with its record).
            Ok((allocation.private()?, Some(allocation)))
        }
        (UsernsArg::KeepId, false) => {
            bail!("--userns keep-id is for rootless ccrun (your own uid inside)")
        }
        (UsernsArg::KeepId, true) => {
            let (uid, gid) = outer_ids();
            let count = namespace_size()?;
            if u64::from(uid.max(gid)) >= u64::from(count) {
                bail!(
                    "--userns keep-id: your uid {uid} is beyond the {count} ids your \
                     subordinate ranges give; add more to /etc/subuid and /etc/subgid"
                );
            }
            Ok((UsernsMode::KeepId { uid, gid, count }, None))
        }
    }
}

/// How many ids the rootless namespace maps (root included).
fn namespace_size() -> Result<u32> {
    let count = |file: &str| -> Result<u64> {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let maps =
            ccrun_runtime::userns::parse_map(&text).with_context(|| format!("parsing {file}"))?;
        Ok(maps.iter().map(|m| u64::from(m.size())).sum())
    };
    let n = count("/proc/self/uid_map")?.min(count("/proc/self/gid_map")?);
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Refuses cgroup limits a rootless container could not have: they need cgroup v2 with
/// a subtree delegated to the user (see [`delegated_cgroup`]), not silently nothing.
pub fn check_limits(limits: &Limits) -> Result<()> {
    if !active() || *limits == Limits::default() || delegated_cgroup().is_some() {
        return Ok(());
    }
    bail!(
        "rootless containers cannot have resource limits here (--memory, --cpus, \
         --pids-limit, …): they need cgroup v2 with a subtree delegated to you (a systemd \
         user session), and this host {}; run without limits, or as root",
        if is_pure_v2() {
            "delegates no cgroup to you"
        } else {
            "uses cgroup v1 (or hybrid)"
        }
    )
}

fn is_pure_v2() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The cgroup (a path in the v2 hierarchy) delegated to the user: the highest ancestor
/// of ccrun's own cgroup that belongs to the user (root of the rootless namespace) and
/// whose `cgroup.procs` and `cgroup.subtree_control` are the user's, as systemd
/// delegates `user@UID.service`. None on v1 and hybrid hosts.
pub fn delegated_cgroup() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !active() || !is_pure_v2() {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .to_string();
    let root = Path::new("/sys/fs/cgroup");
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        let dir = root.join(&prefix[1..]);
        let ours = |name: &str| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.uid() == 0);
        if ours("") && ours("cgroup.procs") && ours("cgroup.subtree_control") {
            return Some(prefix);
        }
    }
    None
}

/// The cgroup path of container `id` when rootless: under the delegated subtree, else
/// the usual one (which the runtime then cannot create, and goes without).
pub fn cgroup_path(id: &str) -> Option<String> {
    delegated_cgroup().map(|base| format!("{base}/ccrun/{id}"))
}
