//! The store under hostile layers: archives written by an attacker who controls an
//! image (or the registry serving it) and wants to reach outside the layer directory
//! (whiteouts naming `..`), fill the store's filesystem (decompression bombs, sparse
//! files declaring terabytes), or break unpacking and clean-up for everyone after them
//! (trees deeper than the fd limit or the stack allow). Every case must end in a clear
//! error or a correct result, with nothing outside the layer touched.

mod support;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use ccrun_image::unpack::unpack;
use support::{outer_untouched, setup, Tar};

fn run(tar: &[u8], dest: &Path) -> ccrun_image::Result<()> {
    unpack(tar, dest, "test-layer", &|w| eprintln!("warning: {w}")).map(|_| ())
}

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
            err.starts_with("layer test-layer: ") && err.contains(name),
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
