//! Issue 18 tests for the layer module: every entry kind a tar can hold comes through
//! extraction and writing unchanged; whiteouts and opaque markers in unusual orders mean what
//! image-spec `layer.md` says, checked against the kernel's overlayfs; what the filesystem
//! refuses is reported and written back exactly. Root, real filesystem, temp dirs.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::tests::{is_whiteout, unpack_tar, write_to_vec, Crafted, Overlay};
use super::xattrs::get_xattr;
use super::*;
use crate::oci::MEDIA_TYPE_OCI_LAYER_TAR;

/// VFS_CAP_REVISION_2 with cap_net_raw (bit 13) permitted and effective, as `setcap
/// cap_net_raw+ep` writes it.
const CAP_NET_RAW: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

impl Crafted {
    /// A device node or fifo entry.
    fn node(mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(name.as_bytes(), kind, 0o660, 0, None);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    /// A regular file with its mode and owner, after PAX records (long name, xattrs).
    fn file_pax(mut self, name: &str, mode: u32, owner: u64, pax: &[(&str, &[u8])]) -> Self {
        let mut records: Vec<(&str, &[u8])> = pax.to_vec();
        if name.len() > 100 {
            records.push(("path", name.as_bytes()));
        }
        if !records.is_empty() {
            self.b.append_pax_extensions(records).unwrap();
        }
        let short = &name.as_bytes()[..name.len().min(100)];
        let mut h = Self::header(short, EntryType::Regular, mode, 4, None);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_cksum();
        self.b.append(&h, &b"data"[..]).unwrap();
        self
    }
}

/// One entry of a tar stream, with what a layer must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: Option<String>,
    device: Option<(u32, u32)>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// The entries of an uncompressed tar stream by name (`./` and trailing `/` dropped).
fn entries(tar: &[u8]) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                if let Some(k) = x.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(k.to_string(), x.value_bytes().to_vec());
                }
            }
        }
        let h = e.header();
        let kind = h.entry_type();
        let device = matches!(kind, EntryType::Char | EntryType::Block).then(|| {
            (
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap(),
            )
        });
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let name = name
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let seen = Seen {
            kind,
            mode: h.mode().unwrap() & 0o7777,
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            size: h.size().unwrap(),
            mtime: h.mtime().unwrap(),
            link: e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned()),
            device,
            xattrs,
        };
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        let seen = if kind == EntryType::Link {
            // A hard link's owner, mode and time are its target's (one inode): writers put
            // whatever they like in its header.
            Seen {
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
                ..seen
            }
        } else {
            seen
        };
        out.insert(name, seen);
    }
    out
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn long_name() -> String {
    format!("deep/{}/{}", "l".repeat(120), "n".repeat(60))
}

/// Every kind of entry: devices with numbers, a fifo, a hard-link pair, setuid/setgid/sticky,
/// numeric owners, xattrs (`security.capability`, `user.*`) and a long PAX name.
fn every_kind() -> Vec<u8> {
    Crafted::new()
        .dir("nodes/")
        .node("nodes/null", EntryType::Char, 1, 3)
        .node("nodes/loop7", EntryType::Block, 7, 7)
        .node("nodes/pipe", EntryType::Fifo, 0, 0)
        .file_pax("bin/perl", 0o755, 0, &[])
        .hardlink("bin/perl5.36", "bin/perl")
        .file_pax("bin/su", 0o4755, 0, &[])
        .file_pax("bin/wall", 0o2755, 5, &[])
        .file_pax(
            "bin/ping",
            0o755,
            0,
            &[("SCHILY.xattr.security.capability", &CAP_NET_RAW)],
        )
        .file_pax(
            "bin/tagged",
            0o640,
            1000,
            &[("SCHILY.xattr.user.origin", b"crafted")],
        )
        .file_pax(&long_name(), 0o600, 65534, &[])
        .finish()
}

#[test]
fn every_entry_kind_survives_unpack_and_write() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = every_kind();
    unpack_tar(&tar, tmp.path()).unwrap();
    let root = tmp.path();
    let md = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert!(md("nodes/null").file_type().is_char_device());
    assert_eq!(md("nodes/null").rdev(), rustix::fs::makedev(1, 3));
    assert!(md("nodes/loop7").file_type().is_block_device());
    assert!(md("nodes/pipe").file_type().is_fifo());
    assert_eq!(md("bin/perl").ino(), md("bin/perl5.36").ino());
    assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(md("bin/wall").mode() & 0o7777, 0o2755);
    assert_eq!(
        get_xattr(&root.join("bin/ping"), b"security.capability").unwrap(),
        CAP_NET_RAW
    );
    assert_eq!(md(&long_name()).uid(), 65534);

    // Written back as a layer: the same entries, entry by entry (the implicit `deep/...`
    // parents apart, which the source does not list).
    let (_, gz) = write_to_vec(root, &LayerOptions::default());
    let want = entries(&tar);
    let got = entries(&gunzip(&gz));
    for (name, w) in &want {
        let g = got
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the layer"));
        assert_eq!(g, w, "{name}");
    }
    let extra: Vec<&String> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert_eq!(extra, ["bin", "deep", &format!("deep/{}", "l".repeat(120))]);
}

#[test]
fn trusted_xattrs_never_reach_a_tree_or_a_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Crafted::new()
        .file_pax(
            "f",
            0o644,
            0,
            &[
                ("SCHILY.xattr.trusted.evil", b"x"),
                ("SCHILY.xattr.user.ok", b"y"),
            ],
        )
        .finish();
    unpack_tar(&tar, tmp.path()).unwrap();
    assert!(get_xattr(&tmp.path().join("f"), b"trusted.evil").is_err());
    rustix::fs::lsetxattr(
        tmp.path().join("f"),
        "trusted.host",
        b"z",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let (_, gz) = write_to_vec(tmp.path(), &LayerOptions::default());
    let got = entries(&gunzip(&gz));
    let keys: Vec<&String> = got["f"].xattrs.keys().collect();
    assert_eq!(keys, ["user.ok"]);
}

/// A `user.*` xattr on a symlink cannot exist on Linux (xattr(7)): the extraction reports it,
/// and a layer written from the tree with that report carries it again.
#[test]
fn refused_xattrs_are_reported_and_written_back() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Crafted::new()
        .pax(&[("SCHILY.xattr.user.origin", b"mac")])
        .symlink("link", "target")
        .finish();
    let got = unpack_layer_exact(&tar[..], MEDIA_TYPE_OCI_LAYER_TAR, tmp.path()).unwrap();
    assert_eq!(got.inexact.len(), 1);
    let x = &got.inexact[0];
    assert_eq!(x.path, "link");
    assert_eq!(x.xattrs, vec![(b"user.origin".to_vec(), b"mac".to_vec())]);
    assert!(
        x.describe().contains("xattr user.origin"),
        "{}",
        x.describe()
    );
    assert!(exact_summary(&got.inexact)
        .unwrap()
        .starts_with("1 entry cannot"));

    let opts = LayerOptions {
        exact: got.inexact.clone(),
        ..LayerOptions::default()
    };
    let (_, gz) = write_to_vec(tmp.path(), &opts);
    let layer = entries(&gunzip(&gz));
    assert_eq!(layer["link"].xattrs["user.origin"], b"mac");
    assert_eq!(layer["link"].kind, EntryType::Symlink);
}

/// A placeholder (an empty regular file) for a device node the filesystem refused is written
/// as the node.
#[test]
fn placeholders_are_written_as_their_node() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("dev")).unwrap();
    fs::write(tmp.path().join("dev/null"), b"").unwrap();
    let opts = LayerOptions {
        exact: vec![ExactEntry {
            path: "dev/null".into(),
            node: Some(SpecialNode::Char { major: 1, minor: 3 }),
            xattrs: Vec::new(),
            reason: "mknod: Operation not permitted".into(),
        }],
        ..LayerOptions::default()
    };
    let (_, gz) = write_to_vec(tmp.path(), &opts);
    let layer = entries(&gunzip(&gz));
    assert_eq!(layer["dev/null"].kind, EntryType::Char);
    assert_eq!(layer["dev/null"].device, Some((1, 3)));
}

/// The lower layer of the whiteout tests: `d/old`, `e/old`, `f`, `g/old`, `o/old`, `p/old`.
fn lower() -> Vec<u8> {
    Crafted::new()
        .dir("d/")
        .file("d/old", b"old")
        .dir("e/")
        .file("e/old", b"old")
        .file("f", b"file")
        .dir("g/")
        .file("g/old", b"old")
        .dir("o/")
        .file("o/old", b"old")
        .dir("p/")
        .file("p/old", b"old")
        .finish()
}

/// Whiteouts and opaque markers in orders no sorted writer produces, and whiteouts of names no
/// lower layer has: stacked on the lower layer under the kernel's overlayfs, the merged view is
/// what layer.md says, and no `.wh.` name or 0/0 device shows.
#[test]
fn whiteouts_in_any_order_mean_what_layer_md_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    };
    let (low, up, merged) = (dir("low"), dir("up"), dir("merged"));
    unpack_tar(&lower(), &low).unwrap();
    let top = Crafted::new()
        // The whiteout first, then a directory of the same name with new contents.
        .file(".wh.d", b"")
        .dir("d/")
        .file("d/new", b"new")
        // The directory and its contents first, then the whiteout: the same meaning.
        .dir("e/")
        .file("e/new", b"new")
        .file(".wh.e", b"")
        // A whiteout, then a file of the same name (a file of this layer).
        .file(".wh.f", b"")
        .file("f", b"again")
        // A whiteout, then a child without its directory entry.
        .file(".wh.g", b"")
        .file("g/new", b"new")
        // The opaque marker before its directory's entry and after a child.
        .file("o/.wh..wh..opq", b"")
        .dir("o/")
        .file("p/new", b"new")
        .file("p/.wh..wh..opq", b"")
        // Whiteouts of names no lower layer has, one in a directory that no layer has.
        .file(".wh.never", b"")
        .file("nowhere/.wh.never", b"")
        .finish();
    let got = unpack_layer_exact(&top[..], MEDIA_TYPE_OCI_LAYER_TAR, &up).unwrap();
    assert!(is_whiteout(&up.join("never")));
    assert!(is_whiteout(&up.join("nowhere/never")));
    assert_eq!(got.whiteout_dirs, ["", "nowhere"]);
    // What the store's anchor layer does (`Store::lowerdirs`): the directories holding
    // whiteouts, empty, below every layer, so overlayfs merges them and lists no whiteout.
    let anchor = dir("anchor");
    for d in &got.whiteout_dirs {
        fs::create_dir_all(anchor.join(d)).unwrap();
    }
    let _m = Overlay::mount(
        &merged,
        &format!(
            "lowerdir={}:{}:{}",
            up.display(),
            low.display(),
            anchor.display()
        ),
    );
    let mut seen = Vec::new();
    collect(&merged, &merged, &mut seen);
    seen.sort();
    assert_eq!(
        seen,
        ["d", "d/new", "e", "e/new", "f", "g", "g/new", "nowhere", "o", "p", "p/new"]
    );
    assert_eq!(fs::read(merged.join("f")).unwrap(), b"again");
}

/// Every path below `dir` relative to `root`; panics on a `.wh.` name or a 0/0 device.
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!rel.contains(".wh."), "{rel} shows");
        let md = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(
            !(md.file_type().is_char_device() && md.rdev() == 0),
            "{rel} is a 0/0 device"
        );
        out.push(rel);
        if md.is_dir() {
            collect(root, &path, out);
        }
    }
}

/// Header checks of the crafting helpers themselves: a header for a device carries its numbers.
#[test]
fn crafted_devices_carry_their_numbers() {
    let tar = Crafted::new().node("n", EntryType::Char, 4, 64).finish();
    let got = entries(&tar);
    assert_eq!(got["n"].device, Some((4, 64)));
    let _ = Header::new_gnu();
}
