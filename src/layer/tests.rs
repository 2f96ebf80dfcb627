//! Tests for layer writing and extraction. They run as root on a real filesystem (mknod,
//! trusted xattrs, chown), in temp dirs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};
use tar::{EntryType, Header};

use super::xattrs::{get_xattr, list_xattrs};
use super::*;
use crate::exit::{Classify, ExitCode};
use crate::oci::{
    MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_OCI_LAYER_GZIP, MEDIA_TYPE_OCI_LAYER_TAR,
    MEDIA_TYPE_OCI_LAYER_ZSTD,
};

// ---------------------------------------------------------------------------------------------
// Crafting tar streams with raw names (the tar crate's `set_path` refuses `..` and `/`).

pub(super) struct Crafted {
    pub(super) b: tar::Builder<Vec<u8>>,
}

impl Crafted {
    pub(super) fn new() -> Self {
        Crafted {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub(super) fn header(
        name: &[u8],
        kind: EntryType,
        mode: u32,
        size: u64,
        link: Option<&[u8]>,
    ) -> Header {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        h
    }

    pub(super) fn file(mut self, name: &str, data: &[u8]) -> Self {
        let h = Self::header(
            name.as_bytes(),
            EntryType::Regular,
            0o644,
            data.len() as u64,
            None,
        );
        self.b.append(&h, data).unwrap();
        self
    }

    pub(super) fn dir(mut self, name: &str) -> Self {
        let h = Self::header(name.as_bytes(), EntryType::Directory, 0o755, 0, None);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub(super) fn symlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::header(
            name.as_bytes(),
            EntryType::Symlink,
            0o777,
            0,
            Some(target.as_bytes()),
        );
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub(super) fn hardlink(mut self, name: &str, target: &str) -> Self {
        let h = Self::header(
            name.as_bytes(),
            EntryType::Link,
            0o644,
            0,
            Some(target.as_bytes()),
        );
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub(super) fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub(super) fn unpack_tar(tar: &[u8], dest: &Path) -> Result<crate::oci::Digest, LayerError> {
    unpack_layer(tar, MEDIA_TYPE_OCI_LAYER_TAR, dest)
}

/// `tmp/<a>/<b>/dest`, so that `../..` from dest is still inside `tmp` and can be checked.
fn nested_dest(tmp: &Path) -> PathBuf {
    let dest = tmp.join("a/b/dest");
    fs::create_dir_all(&dest).unwrap();
    dest
}

fn assert_unsafe(r: Result<crate::oci::Digest, LayerError>, entry: &str) {
    match r {
        Err(e @ LayerError::UnsafeEntry { .. }) => {
            assert_eq!(e.exit_code(), ExitCode::BadInput);
            let LayerError::UnsafeEntry { entry: got, .. } = &e else {
                unreachable!()
            };
            assert_eq!(got, entry, "{e}");
        }
        other => panic!("expected UnsafeEntry for {entry:?}, got {other:?}"),
    }
}

pub(super) fn is_whiteout(path: &Path) -> bool {
    let md = fs::symlink_metadata(path).unwrap();
    md.file_type().is_char_device() && md.rdev() == 0
}

// ---------------------------------------------------------------------------------------------
// Unsafe names.

#[test]
fn dotdot_and_absolute_names_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = nested_dest(tmp.path());
    let tar = Crafted::new()
        .file("../../etc/x", b"x")
        .file("/abs/path", b"abs")
        .file("a/../../../b", b"b")
        .finish();
    unpack_tar(&tar, &dest).unwrap();
    assert_eq!(fs::read(dest.join("etc/x")).unwrap(), b"x");
    assert_eq!(fs::read(dest.join("abs/path")).unwrap(), b"abs");
    assert_eq!(fs::read(dest.join("b")).unwrap(), b"b");
    assert!(!tmp.path().join("a/etc").exists());
    assert!(!tmp.path().join("etc").exists());
    assert!(!tmp.path().join("b").exists());
}

#[test]
fn symlinks_from_earlier_entries_resolve_inside_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = nested_dest(tmp.path());
    // A unique name: if confinement failed, this would land in the host's /etc.
    let probe = format!("polyarch-escape-{}", std::process::id());
    let tar = Crafted::new()
        .dir("etc/")
        .symlink("link", "/etc")
        .file(&format!("link/{probe}"), b"inside")
        .symlink("up", "../../..")
        .file("up/escaped", b"inside")
        .finish();
    unpack_tar(&tar, &dest).unwrap();
    assert_eq!(fs::read(dest.join("etc").join(&probe)).unwrap(), b"inside");
    assert!(!Path::new("/etc").join(&probe).exists());
    assert_eq!(fs::read(dest.join("escaped")).unwrap(), b"inside");
    assert!(!tmp.path().join("escaped").exists());
    assert!(!tmp.path().join("a/escaped").exists());
}

#[test]
fn symlink_to_a_host_directory_is_not_followed_out() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let dest = nested_dest(tmp.path());
    let tar = Crafted::new()
        .symlink("out", outside.to_str().unwrap())
        .file("out/x", b"no")
        .finish();
    // Inside the root, `out` points at a directory that does not exist there.
    assert_unsafe(unpack_tar(&tar, &dest), "out/x");
    assert!(!outside.join("x").exists());
}

#[test]
fn final_symlink_is_replaced_not_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"original").unwrap();
    let dest = nested_dest(tmp.path());
    let tar = Crafted::new()
        .symlink("s", victim.to_str().unwrap())
        .file("s", b"replaced")
        .symlink("up", "../../../victim")
        .file("up", b"replaced")
        .finish();
    unpack_tar(&tar, &dest).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert!(fs::symlink_metadata(dest.join("s")).unwrap().is_file());
    assert_eq!(fs::read(dest.join("up")).unwrap(), b"replaced");
}

#[test]
fn hardlink_target_outside_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("a/outside");
    let dest = nested_dest(tmp.path());
    fs::write(&outside, b"secret").unwrap();
    fs::write(tmp.path().join("outside"), b"secret").unwrap();
    let tar = Crafted::new().hardlink("h", "../../outside").finish();
    assert_unsafe(unpack_tar(&tar, &dest), "h");
    assert_eq!(fs::metadata(&outside).unwrap().nlink(), 1);
    assert_eq!(fs::metadata(tmp.path().join("outside")).unwrap().nlink(), 1);
    assert!(!dest.join("h").exists());

    // A target reached through a symlink to a host path is resolved inside the root too.
    let dest2 = tmp.path().join("dest2");
    fs::create_dir(&dest2).unwrap();
    let tar = Crafted::new()
        .symlink("d", tmp.path().to_str().unwrap())
        .hardlink("h", "d/outside")
        .finish();
    assert_unsafe(unpack_tar(&tar, &dest2), "h");
    assert_eq!(fs::metadata(tmp.path().join("outside")).unwrap().nlink(), 1);
}

#[test]
fn hardlinks_inside_work() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Crafted::new()
        .file("a/f", b"data")
        .hardlink("b/g", "a/f")
        .hardlink("/c", "/a/../a/f")
        .finish();
    unpack_tar(&tar, tmp.path()).unwrap();
    let ino = fs::metadata(tmp.path().join("a/f")).unwrap().ino();
    assert_eq!(fs::metadata(tmp.path().join("b/g")).unwrap().ino(), ino);
    assert_eq!(fs::metadata(tmp.path().join("c")).unwrap().ino(), ino);
}

#[test]
fn names_that_cannot_be_placed_are_errors_naming_the_entry() {
    for (tar, entry) in [
        (Crafted::new().file("..", b"x").finish(), ".."),
        (Crafted::new().file("a/..", b"x").finish(), "a/.."),
        (Crafted::new().file("./", b"x").finish(), "./"),
        (Crafted::new().hardlink("h", "missing").finish(), "h"),
        (Crafted::new().hardlink("h", "..").finish(), "h"),
        (
            Crafted::new().file("f", b"").file("f/g", b"").finish(),
            "f/g",
        ),
        (
            Crafted::new()
                .symlink("loop", "loop")
                .file("loop/x", b"")
                .finish(),
            "loop/x",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        assert_unsafe(unpack_tar(&tar, tmp.path()), entry);
    }
}

#[test]
fn existing_entries_are_replaced_as_tar_does() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Crafted::new()
        .file("a", b"file")
        .dir("a/")
        .dir("b/")
        .file("b/child", b"x")
        .file("b", b"now a file")
        .dir("c/")
        .file("c/kept", b"x")
        .dir("c/")
        .finish();
    unpack_tar(&tar, tmp.path()).unwrap();
    assert!(tmp.path().join("a").is_dir());
    assert_eq!(fs::read(tmp.path().join("b")).unwrap(), b"now a file");
    assert!(tmp.path().join("c/kept").is_file());
}

#[test]
fn root_entry_sets_the_root_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Crafted::header(b"./", EntryType::Directory, 0o750, 0, None);
    h.set_uid(42);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let tar = Crafted { b }.file("f", b"x").finish();
    unpack_tar(&tar, &dest).unwrap();
    let md = fs::metadata(&dest).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert_eq!(md.uid(), 42);
    assert_eq!(md.mtime(), 1_000_000, "set after its children were added");
}

// ---------------------------------------------------------------------------------------------
// Whiteouts.

#[test]
fn oci_whiteouts_become_overlay_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Crafted::new()
        .dir("a/")
        .file("a/keep", b"k")
        .file("a/.wh.gone", b"")
        .file("a/.wh.keep", b"") // same layer: does not hide `a/keep`
        .dir("a/c/")
        .file("a/c/.wh..wh..opq", b"")
        .file("a/c/new", b"n")
        .file(".wh.top", b"")
        .file("x/y/.wh.z", b"") // parents not in the layer
        .file("x/.wh..wh.plnk", b"") // aufs bookkeeping: ignored
        .finish();
    unpack_tar(&tar, tmp.path()).unwrap();
    let root = tmp.path();
    assert!(is_whiteout(&root.join("a/gone")));
    assert!(is_whiteout(&root.join("top")));
    assert!(is_whiteout(&root.join("x/y/z")));
    assert_eq!(fs::read(root.join("a/keep")).unwrap(), b"k");
    assert_eq!(
        get_xattr(&root.join("a/c"), OVERLAY_OPAQUE_XATTR.as_bytes()).unwrap(),
        b"y"
    );
    assert!(get_xattr(&root.join("a"), OVERLAY_OPAQUE_XATTR.as_bytes()).is_err());
    assert_eq!(fs::read(root.join("a/c/new")).unwrap(), b"n");
    assert!(!root.join("a/c/.wh..wh..opq").exists());
    assert!(!root.join("x/plnk").exists());
    assert!(!root.join("x/.wh..wh.plnk").exists());
}

#[test]
fn layer_cannot_set_overlay_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Crafted::new()
        .pax(&[
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.ok", b"kept"),
        ])
        .dir("d/")
        .finish();
    unpack_tar(&tar, tmp.path()).unwrap();
    let d = tmp.path().join("d");
    let names = list_xattrs(&d).unwrap();
    assert_eq!(names, vec![b"user.ok".to_vec()]);
    assert_eq!(get_xattr(&d, b"user.ok").unwrap(), b"kept");
}

// ---------------------------------------------------------------------------------------------
// Round trip through write_layer.

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn setxattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).unwrap();
}

/// An upper directory with every kind of entry a RUN step can leave, each mtime `base + i`.
fn make_upper(root: &Path, base: i64) {
    let p = |s: &str| root.join(s);
    fs::create_dir(root).unwrap();
    fs::create_dir(p("bin")).unwrap();
    fs::write(p("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
    lchown(&p("bin/tool"), 1234, 5678);
    chmod(&p("bin/tool"), 0o4755);
    fs::hard_link(p("bin/tool"), p("bin/hard")).unwrap();
    fs::create_dir(p("tmp")).unwrap();
    chmod(&p("tmp"), 0o1777);
    fs::create_dir(p("shared")).unwrap();
    chmod(&p("shared"), 0o2775);
    lchown(&p("shared"), 0, 50);
    fs::create_dir(p("opq")).unwrap();
    setxattr(&p("opq"), OVERLAY_OPAQUE_XATTR, b"y");
    fs::write(p("opq/f"), b"only this").unwrap();
    rustix::fs::mknodat(
        CWD,
        p("gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    // overlayfs may hardlink whiteouts to one shared inode: they must still be whiteouts.
    fs::hard_link(p("gone"), p("opq/gone-too")).unwrap();
    std::os::unix::fs::symlink("/bin/tool", p("lnk")).unwrap();
    let long_target = format!("/{}", "t".repeat(180));
    std::os::unix::fs::symlink(&long_target, p("long-link")).unwrap();
    rustix::fs::mknodat(
        CWD,
        p("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        p("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        CWD,
        p("blk"),
        FileType::BlockDevice,
        Mode::from_raw_mode(0o660),
        rustix::fs::makedev(7, 0),
    )
    .unwrap();
    // mknod applies the umask: set the modes explicitly.
    chmod(&p("fifo"), 0o640);
    chmod(&p("null"), 0o666);
    chmod(&p("blk"), 0o660);
    fs::create_dir_all(p("deep/nested/dirs")).unwrap();
    let long_name = format!("deep/nested/dirs/{}", "n".repeat(150));
    fs::write(p(&long_name), vec![7u8; 70_000]).unwrap();
    fs::write(p("attrs"), b"x").unwrap();
    setxattr(&p("attrs"), "user.test", b"hello");
    setxattr(&p("attrs"), "trusted.overlay.origin", b"\x00\xfb-overlay");
    fs::write(p("empty"), b"").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(p("sock")).unwrap();

    // mtimes last, deepest first, so creating children does not change them again.
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|b| std::cmp::Reverse(b.components().count()));
    for path in &all {
        let i = path.as_os_str().len() as i64;
        set_mtime(path, base + i);
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let md = fs::symlink_metadata(&path).unwrap();
        out.push(path.clone());
        if md.is_dir() {
            collect(&path, out);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    rdev: u64,
    content: Vec<u8>,
    link: PathBuf,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What a lowerdir means to overlayfs: every entry with its metadata, content and xattrs
/// (without overlayfs bookkeeping other than the opaque flag). Sockets are left out.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut all = Vec::new();
    collect(root, &mut all);
    let mut out = BTreeMap::new();
    for path in all {
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        if ft.is_socket() {
            continue;
        }
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "fifo"
        };
        let mut xattrs: Vec<_> = list_xattrs(&path)
            .unwrap()
            .into_iter()
            .filter(|n| {
                !n.starts_with(OVERLAY_XATTR_PREFIX.as_bytes())
                    || n == OVERLAY_OPAQUE_XATTR.as_bytes()
            })
            .map(|n| {
                let v = get_xattr(&path, &n).unwrap();
                (n, v)
            })
            .collect();
        xattrs.sort();
        out.insert(
            path.strip_prefix(root).unwrap().to_path_buf(),
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                rdev: md.rdev(),
                content: if ft.is_file() {
                    fs::read(&path).unwrap()
                } else {
                    Vec::new()
                },
                link: if ft.is_symlink() {
                    fs::read_link(&path).unwrap()
                } else {
                    PathBuf::new()
                },
                xattrs,
            },
        );
    }
    out
}

pub(super) fn write_to_vec(upper: &Path, opts: &LayerOptions) -> (LayerBlob, Vec<u8>) {
    let mut buf = Vec::new();
    let blob = write_layer(upper, &mut buf, opts).unwrap();
    (blob, buf)
}

#[test]
fn round_trip_preserves_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    make_upper(&upper, 1_600_000_000);
    let (blob, bytes) = write_to_vec(&upper, &LayerOptions::default());
    assert_eq!(blob.media_type, MEDIA_TYPE_OCI_LAYER_GZIP);
    assert_eq!(blob.size, bytes.len() as u64);
    assert_eq!(blob.digest, crate::oci::Digest::of(&bytes));
    assert_eq!(blob.descriptor().digest, blob.digest);

    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let diff_id = unpack_layer(&bytes[..], MEDIA_TYPE_OCI_LAYER_GZIP, &out).unwrap();
    assert_eq!(diff_id, blob.diff_id);

    let want = snapshot(&upper);
    let got = snapshot(&out);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, node) in &want {
        assert_eq!(Some(node), got.get(path), "{}", path.display());
    }
    assert!(!out.join("sock").exists());
    assert_eq!(
        fs::metadata(out.join("bin/tool")).unwrap().ino(),
        fs::metadata(out.join("bin/hard")).unwrap().ino()
    );
    assert!(is_whiteout(&out.join("opq/gone-too")));
}

#[test]
fn uncompressed_and_zstd_layers_give_the_same_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    make_upper(&upper, 1_000);
    let (blob, gz) = write_to_vec(&upper, &LayerOptions::default());
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(crate::oci::Digest::of(&tar), blob.diff_id);
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
    for (media_type, bytes) in [
        (MEDIA_TYPE_OCI_LAYER_TAR, &tar),
        (MEDIA_TYPE_OCI_LAYER_ZSTD, &zst),
        (MEDIA_TYPE_DOCKER_LAYER_GZIP, &gz),
    ] {
        let out = tempfile::tempdir().unwrap();
        let diff_id = unpack_layer(&bytes[..], media_type, out.path()).unwrap();
        assert_eq!(diff_id, blob.diff_id, "{media_type}");
        assert_eq!(snapshot(out.path()).len(), snapshot(&upper).len());
    }
}

#[test]
fn bad_streams_and_media_types_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let e = unpack_layer(
        &b"not gzip at all"[..],
        MEDIA_TYPE_OCI_LAYER_GZIP,
        tmp.path(),
    )
    .unwrap_err();
    assert!(matches!(e, LayerError::Read { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::BadInput);
    let e = unpack_layer(&b""[..], "application/json", tmp.path()).unwrap_err();
    assert!(matches!(e, LayerError::UnsupportedMediaType { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::BadInput);
}

#[test]
fn the_diff_id_covers_the_whole_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let mut tar = Crafted::new().file("f", b"x").finish();
    // Extra zero blocks after the end-of-archive marker are part of the blob's content.
    tar.extend_from_slice(&[0; 4096]);
    let diff_id = unpack_tar(&tar, tmp.path()).unwrap();
    assert_eq!(diff_id, crate::oci::Digest::of(&tar));
}

#[test]
fn redirect_dir_uppers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("moved")).unwrap();
    setxattr(&upper.join("moved"), "trusted.overlay.redirect", b"/orig");
    let e = write_layer(&upper, std::io::sink(), &LayerOptions::default()).unwrap_err();
    assert!(matches!(e, LayerError::UnsupportedOverlay { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Host);
}

// ---------------------------------------------------------------------------------------------
// Determinism.

#[test]
fn writing_is_deterministic_and_clamps_mtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    make_upper(&a, 1_700_000_000);
    make_upper(&b, 1_500_000_000);

    let opts = LayerOptions::default();
    let (first, _) = write_to_vec(&a, &opts);
    let (second, _) = write_to_vec(&a, &opts);
    assert_eq!(first, second);
    let (other, _) = write_to_vec(&b, &opts);
    assert_ne!(
        first.diff_id, other.diff_id,
        "mtimes differ without a clamp"
    );

    let clamp = LayerOptions {
        source_date_epoch: Some(0),
        ..LayerOptions::default()
    };
    let (ca, _) = write_to_vec(&a, &clamp);
    let (cb, _) = write_to_vec(&b, &clamp);
    assert_eq!(ca, cb);

    // A clamp above every mtime changes nothing.
    let high = LayerOptions {
        source_date_epoch: Some(4_000_000_000),
        ..LayerOptions::default()
    };
    assert_eq!(write_to_vec(&a, &high).0, first);
}

/// A tiny fixed tree with a pinned digest: a change here means the compression backend (flate2
/// features pulled in by another dependency), the gzip header or the tar format changed, and
/// every layer digest polyarch produces with it.
#[test]
fn pinned_digest_of_a_tiny_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    fs::create_dir_all(root.join("d")).unwrap();
    fs::write(root.join("d/hello"), b"hello\n").unwrap();
    std::os::unix::fs::symlink("d/hello", root.join("l")).unwrap();
    for (path, mode) in [("d", 0o755), ("d/hello", 0o644)] {
        chmod(&root.join(path), mode);
    }
    for path in ["d", "d/hello", "l"] {
        lchown(&root.join(path), 0, 0);
    }
    let opts = LayerOptions {
        source_date_epoch: Some(0),
        ..LayerOptions::default()
    };
    let (blob, _) = write_to_vec(&root, &opts);
    assert_eq!(
        blob.diff_id.to_string(),
        "sha256:740854c6ceade7c4a969f526d697dcdb8347a68d421b897377dde645ca7a279e",
        "tar format changed"
    );
    assert_eq!(
        blob.digest.to_string(),
        // Issue 13: gzip goes through `pgzip` (each block deflated in one call), no longer through
        // flate2's streaming encoder fed by the tar writer's small writes.
        "sha256:681ab491fd38b367aee32ca2e94a8708b223edb6af57d02b1c5af38a8898be37",
        "gzip bytes changed"
    );
    assert_eq!(blob.size, 131);
}

// ---------------------------------------------------------------------------------------------
// An independent reader.

#[test]
fn gnu_tar_reads_our_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    make_upper(&upper, 1_600_000_000);
    let path = tmp.path().join("layer.tar.gz");
    let mut file = fs::File::create(&path).unwrap();
    let blob = write_layer(&upper, &mut file, &LayerOptions::default()).unwrap();
    file.flush().unwrap();
    drop(file);
    assert_eq!(fs::metadata(&path).unwrap().len(), blob.size);

    let out = std::process::Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&path)
        .output()
        .expect("GNU tar is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    let long_name = format!("deep/nested/dirs/{}", "n".repeat(150));
    for want in [
        "-rwsr-xr-x 1234/5678",
        " bin/hard\n",
        "bin/tool link to bin/hard",
        "drwxrwxrwt",
        " tmp/\n",
        " .wh.gone\n",
        "opq/.wh..wh..opq",
        " opq/.wh.gone-too\n",
        "lnk -> /bin/tool",
        "crw-rw-rw- 0/0",
        "1,3",
        "brw-rw----",
        "prw-r-----",
        &long_name,
    ] {
        assert!(listing.contains(want), "{want:?} not in:\n{listing}");
    }
    assert!(!listing.contains("sock"), "{listing}");
    let names: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(names[0], "attrs");
    assert!(names
        .iter()
        .all(|n| !n.starts_with('/') && !n.contains("PaxHeaders")));
}

// ---------------------------------------------------------------------------------------------
// Against the kernel's overlayfs.

/// An overlay mount, unmounted on drop (also when an assertion fails).
pub(super) struct Overlay(PathBuf);

impl Overlay {
    pub(super) fn mount(target: &Path, options: &str) -> Overlay {
        let data = std::ffi::CString::new(options).unwrap();
        rustix::mount::mount(
            "overlay",
            target,
            "overlay",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .unwrap_or_else(|e| panic!("mount overlay {options}: {e}"));
        Overlay(target.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// A RUN step's changes captured from a real overlay upper dir, unpacked, and stacked as a
/// lowerdir on the base give the same merged view the step saw.
#[test]
fn overlay_upper_round_trips_through_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir(&p).unwrap();
        p
    };
    let (base, upper, work, merged, step, merged2) = (
        dir("base"),
        dir("upper"),
        dir("work"),
        dir("merged"),
        dir("step"),
        dir("merged2"),
    );
    let tar = Crafted::new()
        .dir("etc/")
        .file("etc/keep", b"keep")
        .file("etc/gone", b"gone")
        .dir("var/")
        .dir("var/cache/")
        .file("var/cache/old", b"old")
        .file("var/cache/old2", b"old2")
        .finish();
    unpack_tar(&tar, &base).unwrap();

    let want = {
        let _m = Overlay::mount(
            &merged,
            &format!(
                "lowerdir={},upperdir={},workdir={}",
                base.display(),
                upper.display(),
                work.display()
            ),
        );
        fs::remove_file(merged.join("etc/gone")).unwrap();
        fs::remove_dir_all(merged.join("var/cache")).unwrap();
        fs::create_dir(merged.join("var/cache")).unwrap();
        fs::write(merged.join("var/cache/new"), b"new").unwrap();
        fs::write(merged.join("etc/added"), b"added").unwrap();
        chmod(&merged.join("etc/keep"), 0o600);
        snapshot(&merged)
    };
    assert!(is_whiteout(&upper.join("etc/gone")));
    assert_eq!(
        get_xattr(&upper.join("var/cache"), OVERLAY_OPAQUE_XATTR.as_bytes()).unwrap(),
        b"y"
    );

    let (blob, bytes) = write_to_vec(&upper, &LayerOptions::default());
    assert_eq!(
        unpack_layer(&bytes[..], &blob.media_type, &step).unwrap(),
        blob.diff_id
    );
    let _m = Overlay::mount(
        &merged2,
        &format!("lowerdir={}:{}", step.display(), base.display()),
    );
    let got = snapshot(&merged2);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    assert_eq!(want, got);
    assert!(!merged2.join("var/cache/old").exists());
    assert!(!merged2.join("etc/gone").exists());
}

/// Issue 13: a layer's bytes do not depend on how many threads compress it, for gzip and zstd;
/// and each compression gets its own OCI media type.
#[test]
fn layer_bytes_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(&upper).unwrap();
    // About 5 MiB over several files: text runs and pseudo-random runs, several gzip blocks.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for n in 0..5 {
        let mut data = Vec::new();
        while data.len() < 1 << 20 {
            if data.len() % 300_000 < 150_000 {
                data.extend_from_slice(b"mixed compressible content, line after line\n");
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.extend_from_slice(&x.to_le_bytes());
            }
        }
        fs::write(upper.join(format!("f{n}")), &data).unwrap();
    }
    for compression in [
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
        Compression::Uncompressed,
    ] {
        let opts = |threads| LayerOptions {
            source_date_epoch: Some(0),
            compression,
            threads,
            exact: Vec::new(),
        };
        let (one, bytes) = write_to_vec(&upper, &opts(1));
        let (two, _) = write_to_vec(&upper, &opts(2));
        assert_eq!(one, two, "{compression:?}: 1 and 2 threads differ");
        assert_eq!(one.media_type, compression.media_type());
        assert_eq!(one.size, bytes.len() as u64);
        if compression == Compression::Uncompressed {
            assert_eq!(one.digest, one.diff_id);
            // The fingerprint is the BLAKE3 of that same tar stream (more than one piece of
            // it: the tree hash of big writes must equal the plain one).
            assert!(bytes.len() > 4 << 20);
            assert_eq!(
                layer_fingerprint(&upper, &opts(1)).unwrap(),
                blake3::hash(&bytes).to_hex().to_string()
            );
        }
    }
}
