//! The store under hostile layers: archives written by an attacker who controls an
//! image (or the registry serving it) and wants to reach outside the layer directory
//! (whiteouts naming `..`), fill the store's filesystem (decompression bombs, sparse
//! files declaring terabytes), or break unpacking and clean-up for everyone after them
//! (trees deeper than the fd limit or the stack allow). Every case must end in a clear
//! error or a correct result, with nothing outside the layer touched.

mod support;

use std::cell::Cell;
use std::fs;
use std::io::{BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ccrun_image::unpack::unpack;
use ccrun_image::{decompress, Digest, ImageRecord, ImageUsage, Limits, Store};
use support::hostile::{deep_tree, gzip_bomb, with_1024_fds, Immutable};
use support::{outer_untouched, run, setup, unpack_limited, Tar, Tmpfs};

#[test]
fn whiteouts_naming_dot_or_dotdot_are_refused() {
    for name in [".wh...", "a/.wh...", ".wh..", "a/.wh..", ".wh."] {
        let (outer, layer) = setup();
        // Another layer still being unpacked next to this one.
        let sibling = outer.path().join("sibling");
        fs::create_dir(&sibling).expect("sibling");
        fs::write(sibling.join("file"), b"mine").expect("sibling file");
        fs::create_dir(layer.join("a")).expect("a");
        fs::write(layer.join("a/kept"), b"x").expect("kept");
        let mut t = Tar::new();
        t.entry(tar::EntryType::Directory, "a/", "", 0o755, b"")
            .file(name, b"");
        let err = run(&t.bytes(), &layer).expect_err(name).to_string();
        assert!(
            err.starts_with("layer test-layer: ")
                && err.contains(name)
                && err.contains("whiteout of"),
            "{name}: {err}"
        );
        assert_eq!(fs::read(sibling.join("file")).expect("sibling"), b"mine");
        assert_eq!(fs::read(layer.join("a/kept")).expect("kept"), b"x");
        fs::remove_dir_all(&sibling).expect("rm sibling");
        outer_untouched(outer.path());
    }
}

#[test]
fn sparse_files_keep_their_holes() {
    let (outer, layer) = setup();
    let head = [b'h'; 512];
    let middle = [b'm'; 100];
    let size = 64 << 20;
    let mut t = Tar::new();
    t.sparse("sparse", size, &[(0, &head), (32 << 20, &middle)]);
    run(&t.bytes(), &layer).expect("unpack");
    let file = fs::File::open(layer.join("sparse")).expect("open");
    let meta = file.metadata().expect("stat");
    assert_eq!(meta.len(), size, "apparent size");
    assert!(
        meta.blocks() * 512 <= 1 << 20,
        "holes were written as zeros: {} bytes allocated",
        meta.blocks() * 512
    );
    let read_at = |offset: u64, len: usize| {
        let mut buf = vec![0xffu8; len];
        file.read_exact_at(&mut buf, offset).expect("read");
        buf
    };
    assert_eq!(read_at(0, 512), head);
    assert_eq!(read_at(32 << 20, 100), middle);
    for hole in [512, 16 << 20, (32 << 20) + 100, size - 4096] {
        assert!(
            read_at(hole, 4096).iter().all(|b| *b == 0),
            "hole at {hole}"
        );
    }
    outer_untouched(outer.path());
}

/// Bytes allocated on disk below `dir` (not following symlinks).
fn allocated(dir: &Path) -> u64 {
    let meta = fs::symlink_metadata(dir).expect("stat");
    let below: u64 = if meta.is_dir() {
        fs::read_dir(dir)
            .expect("ls")
            .map(|e| allocated(&e.expect("entry").path()))
            .sum()
    } else {
        0
    };
    meta.blocks() * 512 + below
}

/// Counts what is read through it.
struct Counting<'a> {
    inner: &'a [u8],
    count: &'a Cell<usize>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n);
        Ok(n)
    }
}

#[test]
fn gzip_bomb_stops_at_the_layer_limit() {
    let (outer, layer) = setup();
    let bomb = gzip_bomb(1 << 30);
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    let read = Cell::new(0);
    let input = BufReader::new(Counting {
        inner: &bomb,
        count: &read,
    });
    // 16 MiB keeps the test fast in debug builds, where inflating runs at ~10 MB/s.
    let meter = Limits::new(&layer, Some(16 << 20))
        .expect("limits")
        .meter("sha256:bomb");
    let decoder = decompress::decoder(input).expect("gzip");
    let err = unpack(decoder, &layer, &meter, &|w| eprintln!("warning: {w}"))
        .expect_err("1 GiB is over 16 MiB");
    assert_eq!(
        err.to_string(),
        "layer sha256:bomb: unpacks to more than 16.0 MiB, the limit set by \
         CCRUN_MAX_LAYER_SIZE; refused"
    );
    let used = allocated(&layer);
    assert!(used <= 16 << 20, "{used} bytes written");
    assert!(
        read.get() < bomb.len() / 4,
        "read {} of {} compressed bytes: reading went on past the limit",
        read.get(),
        bomb.len()
    );
    outer_untouched(outer.path());
}

#[test]
fn sparse_holes_count_against_the_limit_before_they_are_read() {
    let (outer, layer) = setup();
    let tail = [b't'; 512];
    let mut t = Tar::new();
    t.sparse("huge", 1 << 40, &[((1 << 40) - 512, &tail)]);
    let err = unpack_limited(&t.bytes(), &layer, Some(64 << 20)).expect_err("1 TiB of holes");
    let err = err.to_string();
    assert!(
        err.starts_with("layer test-layer: huge: sparse file with ")
            && err.ends_with("the holes of a layer may add up to at most 64.0 MiB, the limit set by CCRUN_MAX_LAYER_SIZE"),
        "{err}"
    );
    assert!(allocated(&layer) < 1 << 20);
    outer_untouched(outer.path());
}

#[test]
fn the_layers_of_a_pull_share_the_free_space() {
    let fs = Tmpfs::mount("64m");
    let limits = Limits::new(fs.dir.path(), None).expect("limits");
    let mut t = Tar::new();
    let tar = t.file("big", &vec![1u8; 40 << 20]).bytes();
    let (a, b) = (fs.dir.path().join("a"), fs.dir.path().join("b"));
    for dir in [&a, &b] {
        fs::create_dir(dir).expect("mkdir");
    }
    let warn = |w: String| eprintln!("warning: {w}");
    unpack(&tar[..], &a, &limits.meter("a"), &warn).expect("the first 40 MiB fit");
    let err = unpack(&tar[..], &b, &limits.meter("b"), &warn).expect_err("80 MiB do not");
    let err = err.to_string();
    assert!(
        err.starts_with("layer b: the layers of this pull unpack to more than 60.")
            && err.contains(&format!("the free space of {}", fs.dir.path().display()))
            && err.ends_with("less a margin of 3.2 MiB; refused"),
        "{err}"
    );
    let left = rustix::fs::statvfs(fs.dir.path()).expect("statvfs");
    assert!(
        left.f_bavail * left.f_frsize >= 3 << 20,
        "the margin was used: {} bytes left",
        left.f_bavail * left.f_frsize
    );
}

/// Containers use nothing: every layer no image lists is garbage.
struct NoContainers;

impl ImageUsage for NoContainers {
    fn containers_using(&self, _image: &ImageRecord) -> ccrun_image::Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn layers_in_use(&self) -> ccrun_image::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
}

/// Names the store directory a re-executed test works in (see [`in_child`]).
const CHILD_ENV: &str = "HOSTILE_LAYERS_CHILD";

/// Runs test `name` again in a child process of this test binary with `RLIMIT_NOFILE`
/// at 1024 (a common default), the child seeing `dir` in [`CHILD_ENV`]; returns
/// whether it passed. The harness process keeps its own limit.
fn in_child(name: &str, dir: &Path) -> bool {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir);
    with_1024_fds(&mut cmd);
    cmd.status().expect("run the test binary").success()
}

#[test]
fn deep_layer_unpacks_measures_and_is_removed_with_1024_fds() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        // On a tmpfs: ext4 takes seconds to make and remove 5000 directories when
        // its inode allocator is busy, and the fd and stack use is the same anywhere.
        let root = Tmpfs::mount("256m");
        assert!(
            in_child(
                "deep_layer_unpacks_measures_and_is_removed_with_1024_fds",
                root.dir.path()
            ),
            "the child failed: see its output above"
        );
        return;
    };
    let store = Store::open(Path::new(&dir)).expect("store");
    let diff_id = Digest::of(b"deep");
    let layer = store.layer_dir(&diff_id);
    fs::create_dir(&layer).expect("layer dir");
    let tar = deep_tree(5000, Some(50));
    let meter = Limits::new(&layer, None).expect("limits").meter("deep");
    unpack(&tar[..], &layer, &meter, &|w| eprintln!("warning: {w}")).expect("unpack");
    // Below PATH_MAX the modes are there; the bottom is only reachable step by step.
    let explicit = fs::metadata(layer.join("d/".repeat(50))).expect("stat");
    assert_eq!(explicit.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        ccrun_image::tree_size(&layer),
        6,
        "the bottom file's 6 bytes"
    );
    let lock = store.lock().expect("lock");
    let freed = store.gc(&lock, &NoContainers).expect("gc");
    assert_eq!((freed.layers, freed.bytes), (1, 6));
    assert!(!layer.exists());
    assert!(support::names(&store.dir().join("tmp")).is_empty());
}

#[test]
fn a_layer_deeper_than_the_limit_is_refused() {
    let (outer, layer) = setup();
    let err = run(&deep_tree(30_000, None), &layer).expect_err("30000 deep");
    let err = err.to_string();
    assert!(
        err.starts_with("layer test-layer: d/d/d/")
            && err.ends_with("30001 levels deep; at most 8192 are allowed"),
        "{}",
        &err[err.len().saturating_sub(200)..]
    );
    outer_untouched(outer.path());
}

#[test]
fn deep_debris_in_tmp_does_not_block_the_store() {
    // On a tmpfs: 30000 directories take ext4 mounted with `discard` a minute.
    let root = Tmpfs::mount("256m");
    let store = Store::open(root.dir.path()).expect("store");
    // What a crashed unpack of a 30000-deep layer left, made step by step.
    let mut dir = fs::File::open(store.dir().join("tmp")).expect("tmp");
    for name in ["layer-debris"]
        .into_iter()
        .chain(std::iter::repeat_n("d", 30_000))
    {
        rustix::fs::mkdirat(&dir, name, rustix::fs::Mode::from_raw_mode(0o755)).expect("mkdir");
        dir = fs::File::from(
            rustix::fs::openat(
                &dir,
                name,
                rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .expect("open"),
        );
    }
    drop(dir);
    drop(store.lock().expect("the lock clears tmp"));
    assert!(support::names(&store.dir().join("tmp")).is_empty());
}

#[test]
fn gc_goes_on_past_a_layer_it_cannot_remove_and_reports_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = Store::open(root.path()).expect("store");
    let layers: Vec<Digest> = (0..3).map(|i| Digest::of(&[i])).collect();
    for d in &layers {
        fs::create_dir_all(store.layer_dir(d).join("etc")).expect("layer");
        fs::write(store.layer_dir(d).join("etc/file"), b"data").expect("file");
    }
    let stuck = store.layer_dir(&layers[1]).join("etc/file");
    let immutable = Immutable::set(&stuck, store.dir());
    let lock = store.lock().expect("lock");
    let err = store.gc(&lock, &NoContainers).expect_err("one layer stays");
    let text = err.to_string();
    assert!(
        text.starts_with("could not remove 1 of the unused objects (the others were removed): ")
            && text.contains(layers[1].hex())
            && text.contains("Operation not permitted"),
        "{text}"
    );
    let ccrun_image::Error::GcIncomplete { freed, failures } = &err else {
        panic!("not a GcIncomplete: {err:?}");
    };
    assert_eq!((freed.layers, failures.len()), (2, 1));
    assert!(
        support::names(&store.dir().join("layers")).is_empty(),
        "the stuck layer is out of the store"
    );
    drop(lock);
    // Until the file can go, every lock warns about it and goes on.
    drop(store.lock().expect("debris does not block the lock"));
    drop(immutable);
    drop(store.lock().expect("lock"));
    assert!(support::names(&store.dir().join("tmp")).is_empty());
}
