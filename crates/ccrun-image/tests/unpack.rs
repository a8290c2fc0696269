//! Layer unpacking: OCI semantics, and hostile archives that must not escape.

mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use ccrun_image::unpack::OPAQUE_XATTR;
use support::{outer_untouched, run, setup, Tar};

#[test]
fn unpacks_by_oci_rules() {
    let (_outer, layer) = setup();
    let mut t = Tar::new();
    t.entry(tar::EntryType::Directory, "etc/", "", 0o755, b"")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .entry(tar::EntryType::Regular, "bin/su", "", 0o4755, b"suid")
        .entry(
            tar::EntryType::Symlink,
            "bin/sh",
            "/bin/busybox",
            0o777,
            b"",
        )
        .entry(
            tar::EntryType::Link,
            "etc/passwd.lnk",
            "etc/passwd",
            0o644,
            b"",
        )
        .file("etc/.wh.shadow", b"")
        .entry(tar::EntryType::Directory, "opt/", "", 0o1777, b"")
        .file("opt/.wh..wh..opq", b"")
        .entry(tar::EntryType::Fifo, "run/fifo", "", 0o600, b"")
        .file("/abs/file", b"absolute");
    run(&t.bytes(), &layer).expect("unpack");

    assert_eq!(
        fs::read(layer.join("etc/passwd")).expect("passwd").len(),
        26
    );
    let su = fs::metadata(layer.join("bin/su")).expect("su");
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).expect("link").to_str(),
        Some("/bin/busybox")
    );
    let a = fs::metadata(layer.join("etc/passwd")).expect("a");
    let b = fs::metadata(layer.join("etc/passwd.lnk")).expect("b");
    assert_eq!(a.ino(), b.ino(), "hardlink shares the inode");
    assert_eq!(a.mtime(), 1_600_000_000);
    let wh = fs::symlink_metadata(layer.join("etc/shadow")).expect("whiteout");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    assert!(!layer.join("etc/.wh.shadow").exists());
    let opt = fs::metadata(layer.join("opt")).expect("opt");
    assert_eq!(opt.permissions().mode() & 0o7777, 0o1777);
    let opaque = rustix::fs::getxattr(layer.join("opt"), OPAQUE_XATTR, &mut [0u8; 4]);
    assert_eq!(opaque.ok(), Some(1), "opaque xattr set");
    assert!(fs::symlink_metadata(layer.join("run/fifo"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    assert_eq!(fs::read(layer.join("abs/file")).expect("abs"), b"absolute");
}

#[test]
fn refuses_dotdot() {
    let (outer, layer) = setup();
    let err = run(
        Tar::new().file("a/../../evil", b"x").bytes().as_slice(),
        &layer,
    )
    .expect_err("..");
    assert!(err.to_string().contains("escapes"), "{err}");
    outer_untouched(outer.path());
}

#[test]
fn refuses_write_through_symlink() {
    let (outer, layer) = setup();
    let target = outer.path().to_str().expect("utf8").to_string();
    let mut t = Tar::new();
    t.entry(tar::EntryType::Symlink, "link", &target, 0o777, b"")
        .file("link/evil", b"x");
    let err = run(&t.bytes(), &layer).expect_err("through symlink");
    assert!(err.to_string().contains("symlink"), "{err}");
    outer_untouched(outer.path());
}

#[test]
fn replaces_symlink_instead_of_writing_through_it() {
    let (outer, layer) = setup();
    let secret = outer.path().join("secret");
    let mut t = Tar::new();
    t.entry(
        tar::EntryType::Symlink,
        "s",
        secret.to_str().expect("utf8"),
        0o777,
        b"",
    )
    .file("s", b"overwritten?");
    run(&t.bytes(), &layer).expect("unpack");
    assert_eq!(fs::read(layer.join("s")).expect("s"), b"overwritten?");
    outer_untouched(outer.path());
}

#[test]
fn refuses_hardlink_escape() {
    let (outer, layer) = setup();
    let secret = outer.path().join("secret");
    for target in ["../secret", secret.to_str().expect("utf8")] {
        let mut t = Tar::new();
        t.entry(tar::EntryType::Link, "h", target, 0o644, b"")
            .file("h2", b"x");
        assert!(run(&t.bytes(), &layer).is_err(), "hardlink to {target}");
        outer_untouched(outer.path());
        assert!(!layer.join("h").exists());
    }
    // A hardlink through a symlink to the outside is refused too.
    let mut t = Tar::new();
    t.entry(
        tar::EntryType::Symlink,
        "out",
        outer.path().to_str().expect("utf8"),
        0o777,
        b"",
    )
    .entry(tar::EntryType::Link, "h", "out/secret", 0o644, b"");
    assert!(run(&t.bytes(), &layer).is_err());
    outer_untouched(outer.path());
}

#[test]
fn hardlink_is_not_written_through() {
    let (outer, layer) = setup();
    let mut t = Tar::new();
    t.file("a", b"original")
        .entry(tar::EntryType::Link, "b", "a", 0o644, b"")
        .file("b", b"replaced");
    run(&t.bytes(), &layer).expect("unpack");
    assert_eq!(fs::read(layer.join("a")).expect("a"), b"original");
    assert_eq!(fs::read(layer.join("b")).expect("b"), b"replaced");
    outer_untouched(outer.path());
}

#[test]
fn ignores_overlay_xattrs_from_the_archive() {
    let (_outer, layer) = setup();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([
        ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
        ("SCHILY.xattr.user.ok", &b"1"[..]),
    ])
    .expect("pax");
    let mut h = tar::Header::new_ustar();
    h.set_path("d").expect("path");
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, &b""[..]).expect("append");
    run(&b.into_inner().expect("tar"), &layer).expect("unpack");
    let mut buf = [0u8; 16];
    assert!(rustix::fs::getxattr(layer.join("d"), "trusted.overlay.redirect", &mut buf).is_err());
}
