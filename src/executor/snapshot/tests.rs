//! Snapshotter tests. The pure parts run anywhere; the rest runs as root against the kernel's
//! overlayfs, which is the reference: for the same lower layers and the same changes, the copy
//! snapshotter must produce the layer the overlay snapshotter produces (entries, types, modes,
//! owners, contents, xattrs, whiteouts; with `SOURCE_DATE_EPOCH=0` every mtime is 0, so the
//! diff_ids must be equal too).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};

use super::*;
use crate::executor::{
    Action, CopySpec, Executor, OutputLine, RunSpec, SandboxExecutor, StepOutcome,
};
use crate::layer::{self, LayerOptions};

// ---- pure ----

#[test]
fn snapshotter_names_round_trip() {
    for s in Snapshotter::ALL {
        assert_eq!(s.as_str().parse::<Snapshotter>().unwrap(), s);
        assert_eq!(s.to_string(), s.as_str());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()));
    }
    let err = "fast".parse::<Snapshotter>().unwrap_err();
    assert!(err.contains("auto, overlay, copy"), "{err}");
    assert_eq!(Snapshotter::default(), Snapshotter::Auto);
}

#[test]
fn specs_without_a_snapshotter_mean_auto() {
    let json = r#"{"lowerdirs":[],"upperdir":"/u","workdir":"/w",
        "action":{"Run":{"argv":["true"],"env":[],"cwd":"/","user":null}},"hostname":"h"}"#;
    let spec: SandboxSpec = serde_json::from_str(json).unwrap();
    assert_eq!(spec.snapshotter, Snapshotter::Auto);
}

#[test]
fn report_lines_round_trip() {
    for r in [
        Report::Used(Snapshotter::Copy),
        Report::Used(Snapshotter::Overlay),
        Report::Fallback("mount overlay failed for /m: Invalid argument".into()),
    ] {
        let line = r.line();
        let text = line.strip_prefix(SANDBOX_INFO_PREFIX).unwrap();
        assert_eq!(Report::parse(text), Some(r));
    }
    assert_eq!(Report::parse("snapshotter=zfs"), None);
    assert_eq!(Report::parse("colour=blue"), None);
    assert_eq!(Report::parse("no equals sign"), None);
}

#[test]
fn only_refusals_of_overlayfs_fall_back() {
    let mount_err = |errno: rustix::io::Errno| ExecError::Sys {
        action: "mount overlay",
        path: "/m".into(),
        source: io::Error::from(errno),
    };
    use rustix::io::Errno;
    for e in [Errno::PERM, Errno::NODEV, Errno::INVAL, Errno::OPNOTSUPP] {
        assert!(overlay_unavailable(&mount_err(e)), "{e:?}");
    }
    for e in [Errno::NOENT, Errno::NOMEM, Errno::BUSY] {
        assert!(!overlay_unavailable(&mount_err(e)), "{e:?}");
    }
    assert!(overlay_unavailable(&ExecError::BadOverlayPath {
        path: "/a:b".into()
    }));
    assert!(overlay_unavailable(&ExecError::TooManyLayers {
        layers: 500,
        len: 5000
    }));
    // The same errno from another action is the step's problem, not overlayfs'.
    assert!(!overlay_unavailable(&ExecError::Sys {
        action: "chroot",
        path: "/m".into(),
        source: io::Error::from(Errno::PERM),
    }));
    assert!(!overlay_unavailable(&ExecError::EmptyCommand));
}

// ---- helpers for the real tests ----

/// True when the real tests can run (root, busybox); with `CI` set a missing part is a failure.
fn real_parts() -> bool {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push("root");
    }
    if !Path::new("/usr/bin/busybox").exists() {
        missing.push("/usr/bin/busybox (busybox-static)");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but snapshotter test prerequisites are missing: {missing:?}"
    );
    eprintln!("skipping: missing {missing:?}");
    false
}

fn mkdirs(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
}

fn write(p: &Path, body: &str) {
    if let Some(parent) = p.parent() {
        mkdirs(parent);
    }
    std::fs::write(p, body).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Gives `to` the access and modification times of `from` (to the nanosecond).
fn same_times(from: &Path, to: &Path) {
    let md = std::fs::symlink_metadata(from).unwrap();
    rustix::fs::utimensat(
        CWD,
        to,
        &Timestamps {
            last_access: Timespec {
                tv_sec: md.atime(),
                tv_nsec: md.atime_nsec(),
            },
            last_modification: Timespec {
                tv_sec: md.mtime(),
                tv_nsec: md.mtime_nsec(),
            },
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn setxattr(p: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(p, name, value, XattrFlags::empty()).unwrap();
}

fn whiteout(p: &Path) {
    rustix::fs::mknodat(
        CWD,
        p,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
}

/// Two lower layers exercising the merge rules, in overlayfs `lowerdir` order (top first).
/// The bottom one holds busybox and its applets, so a shell step can run on it.
fn lower_layers(base: &Path) -> Vec<PathBuf> {
    let l1 = base.join("l1");
    let l2 = base.join("l2");
    mkdirs(&l1.join("bin"));
    std::fs::copy("/usr/bin/busybox", l1.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "rm", "mkdir", "chmod", "chown", "ln", "touch", "printf", "echo", "mv", "cp",
        "mkfifo", "test", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", l1.join("bin").join(applet)).unwrap();
    }
    mkdirs(&l1.join("etc"));
    write(&l1.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    write(&l1.join("data/same"), "AAAA");
    write(&l1.join("data/gone"), "gone");
    write(&l1.join("data/mode"), "mode");
    write(&l1.join("data/owner"), "owner");
    write(&l1.join("data/orig"), "orig");
    write(&l1.join("data/target1"), "t1");
    write(&l1.join("data/target2"), "t2");
    write(&l1.join("data/xattr"), "x");
    std::os::unix::fs::symlink("target1", l1.join("data/link")).unwrap();
    write(&l1.join("data/pair-a"), "pair");
    std::fs::hard_link(l1.join("data/pair-a"), l1.join("data/pair-b")).unwrap();
    write(&l1.join("data/suid"), "suid");
    lchown(&l1.join("data/suid"), 1000, 1001);
    chmod(&l1.join("data/suid"), 0o4755);
    setxattr(&l1.join("data/orig"), "user.origin", b"l1");
    rustix::fs::mknodat(
        CWD,
        l1.join("data/null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    write(&l1.join("tree/a/b/c"), "deep");
    write(&l1.join("tree/d"), "d");
    write(&l1.join("swap/inner"), "inner");
    write(&l1.join("filedir"), "a file");
    write(&l1.join("again/old"), "old");
    write(&l1.join("movesrc/m"), "m");
    write(&l1.join("mva/a"), "a");
    write(&l1.join("mvb/b"), "b");
    write(&l1.join("opq/hidden"), "hidden by l2");
    write(&l1.join("merge/from-l1"), "l1");
    write(&l1.join("wh-file"), "whited out by l2");
    write(&l1.join("shadow"), "file hidden by l2's directory");
    write(&l1.join("quiet/untouched"), "u");
    lchown(&l1.join("quiet"), 7, 8);
    chmod(&l1.join("quiet"), 0o750);

    mkdirs(&l2.join("opq"));
    setxattr(&l2.join("opq"), "trusted.overlay.opaque", b"y");
    write(&l2.join("opq/kept"), "kept");
    write(&l2.join("opq/kept2"), "kept2");
    write(&l2.join("merge/from-l2"), "l2");
    whiteout(&l2.join("wh-file"));
    write(&l2.join("shadow/inside"), "dir over file");
    write(&l2.join("data/same-l2"), "l2");
    // Directory times are part of what both snapshotters must agree on.
    for dir in [
        "data", "tree", "tree/a", "tree/a/b", "swap", "again", "movesrc", "mva", "mvb", "opq",
        "merge", "quiet", "etc", "bin",
    ] {
        for l in [&l1, &l2] {
            let p = l.join(dir);
            if p.exists() {
                set_mtime(&p, 1_000_000);
            }
        }
    }
    vec![l2, l1]
}

/// An overlay mount, unmounted on drop (also when an assertion fails).
struct Overlay(PathBuf);

impl Overlay {
    fn mount(target: &Path, options: &str) -> Overlay {
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

fn lowerdir_option(lowers: &[PathBuf]) -> String {
    lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// What one entry of a tree is, for comparing trees (the root itself is left out).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    content: Vec<u8>,
    rdev: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in walk order) sharing this inode, for multiply-linked files.
    link_group: Option<String>,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, Node>,
        inodes: &mut BTreeMap<(u64, u64), String>,
    ) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let (kind, content) = if ft.is_dir() {
                ("dir", Vec::new())
            } else if ft.is_symlink() {
                (
                    "symlink",
                    std::fs::read_link(&p)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec(),
                )
            } else if ft.is_file() {
                ("file", std::fs::read(&p).unwrap())
            } else {
                ("special", Vec::new())
            };
            let link_group = (!ft.is_dir() && md.nlink() > 1).then(|| {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| rel.clone())
                    .clone()
            });
            out.insert(
                rel.clone(),
                Node {
                    kind: kind.into(),
                    mode: md.mode(),
                    uid: md.uid(),
                    gid: md.gid(),
                    mtime: (md.mtime(), md.mtime_nsec()),
                    content,
                    rdev: md.rdev(),
                    xattrs: fsops::xattrs(&p).unwrap(),
                    link_group,
                },
            );
            if ft.is_dir() {
                walk(root, &p, out, inodes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut BTreeMap::new());
    out
}

/// A tree without times (made at different moments on the two sides) and without link groups
/// of one name (overlayfs still counts the lower inode's other, whited-out names).
fn timeless(mut t: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    let mut members: BTreeMap<String, usize> = BTreeMap::new();
    for g in t.values().filter_map(|n| n.link_group.clone()) {
        *members.entry(g).or_default() += 1;
    }
    for n in t.values_mut() {
        n.mtime = (0, 0);
        if n.link_group.as_ref().is_some_and(|g| members[g] == 1) {
            n.link_group = None;
        }
    }
    t
}

/// One tar entry of a layer, everything but times (all 0 with `SOURCE_DATE_EPOCH=0`, checked).
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    path: String,
    kind: String,
    mode: u32,
    uid: u64,
    gid: u64,
    link: Option<String>,
    content: Vec<u8>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// The layer made from `upper` with `SOURCE_DATE_EPOCH=0`: its diff_id and its entries.
fn layer_of(upper: &Path) -> (String, Vec<TarEntry>) {
    let mut bytes = Vec::new();
    let blob = layer::write_layer(
        upper,
        &mut bytes,
        &LayerOptions {
            source_date_epoch: Some(0),
            ..LayerOptions::default()
        },
    )
    .unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut entries = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 0);
        let mut xattrs = Vec::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                if let Some(name) = ext.key().unwrap().strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        entries.push(TarEntry {
            path: e.path().unwrap().display().to_string(),
            kind: format!("{:?}", e.header().entry_type()),
            mode: e.header().mode().unwrap(),
            uid: e.header().uid().unwrap(),
            gid: e.header().gid().unwrap(),
            link: e.link_name().unwrap().map(|l| l.display().to_string()),
            content,
            xattrs,
        });
    }
    (blob.diff_id.to_string(), entries)
}

/// Asserts two layers are the same, entry by entry first (for a readable failure).
fn assert_same_layer(overlay: &(String, Vec<TarEntry>), copy: &(String, Vec<TarEntry>)) {
    let names =
        |l: &(String, Vec<TarEntry>)| l.1.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
    assert_eq!(names(overlay), names(copy), "entry names (overlay, copy)");
    for (o, c) in overlay.1.iter().zip(&copy.1) {
        assert_eq!(o, c, "entry {} (overlay, copy)", o.path);
    }
    assert_eq!(overlay.0, copy.0, "diff_id (overlay, copy)");
}

fn entry<'a>(layer: &'a (String, Vec<TarEntry>), path: &str) -> &'a TarEntry {
    layer.1.iter().find(|e| e.path == path).unwrap_or_else(|| {
        panic!(
            "no {path} in {:#?}",
            layer.1.iter().map(|e| &e.path).collect::<Vec<_>>()
        )
    })
}

// ---- the copy and the diff, against a kernel overlay, without the helper ----

/// The copied root is the overlay's merged view: same names, types, modes, owners, times,
/// contents, device numbers, xattrs and hardlink structure; whiteouts and opaque directories of
/// the lower layers applied.
#[test]
fn copy_materialises_the_merged_view() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    let merged = tmp.path().join("merged");
    let copy = tmp.path().join("copy");
    mkdirs(&merged);
    mkdirs(&copy);
    let want = {
        let _m = Overlay::mount(&merged, &format!("lowerdir={}", lowerdir_option(&lowers)));
        tree(&merged)
    };
    tree::copy_lowers(&lowers, &copy).unwrap();
    let got = tree(&copy);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        assert_eq!(Some(w), got.get(k), "{k}");
    }
    assert!(!got.contains_key("wh-file") && !got.contains_key("opq/hidden"));
    assert_eq!(got["shadow"].kind, "dir");
    assert_eq!(
        got["data/pair-b"].link_group.as_deref(),
        Some("data/pair-a")
    );
    assert_eq!(got["data/suid"].mode & 0o7777, 0o4755);
    assert!(
        !fsops::is_opaque(&copy.join("opq")).unwrap(),
        "overlay xattrs never reach the root"
    );
}

/// The same changes made on an overlay mount and on the copy give the same layer.
#[test]
fn diff_of_the_copy_equals_the_overlay_upper() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    let d = |n: &str| {
        let p = tmp.path().join(n);
        mkdirs(&p);
        p
    };
    let (merged, upper_o, work, copy, upper_c) = (
        d("merged"),
        d("upper-o"),
        d("work"),
        d("copy"),
        d("upper-c"),
    );

    // Changes a RUN step could make; `root` is the root filesystem the step sees.
    let change = |root: &Path| {
        let p = |rel: &str| root.join(rel);
        write(&p("new-file"), "new");
        write(&p("newdir/sub/f"), "x");
        // In place, same size, times put back: only ctime tells.
        write(&p("ref"), "");
        same_times(&p("data/same"), &p("ref"));
        std::fs::OpenOptions::new()
            .write(true)
            .open(p("data/same"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"BBBB"))
            .unwrap();
        same_times(&p("ref"), &p("data/same"));
        std::fs::remove_file(p("ref")).unwrap();
        std::fs::remove_file(p("data/gone")).unwrap();
        std::fs::remove_dir_all(p("tree")).unwrap();
        std::fs::remove_dir_all(p("swap")).unwrap();
        write(&p("swap"), "now a file");
        std::fs::remove_file(p("filedir")).unwrap();
        write(&p("filedir/x"), "now a dir");
        std::fs::remove_dir_all(p("again")).unwrap();
        write(&p("again/fresh"), "fresh");
        chmod(&p("data/mode"), 0o700);
        lchown(&p("data/owner"), 1000, 1001);
        std::fs::remove_file(p("data/link")).unwrap();
        std::os::unix::fs::symlink("target2", p("data/link")).unwrap();
        std::fs::hard_link(p("data/orig"), p("data/hard")).unwrap();
        std::fs::hard_link(p("new-file"), p("new-hard")).unwrap();
        setxattr(&p("data/xattr"), "user.added", b"1");
        std::fs::remove_file(p("opq/kept2")).unwrap();
        write(&p("opq/kept"), "kept, changed");
        write(&p("merge/from-l1"), "l1 changed");
        std::fs::remove_file(p("shadow/inside")).unwrap();
        chmod(&p("etc"), 0o700);
        // One name of a hardlinked pair goes: the other (same inode, new ctime) is unchanged.
        std::fs::remove_file(p("data/pair-b")).unwrap();
    };

    let overlay = {
        let _m = Overlay::mount(
            &merged,
            &format!(
                "lowerdir={},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off,xino=off",
                lowerdir_option(&lowers),
                upper_o.display(),
                work.display()
            ),
        );
        change(&merged);
        tree(&merged)
    };
    let record = tree::copy_lowers(&lowers, &copy).unwrap();
    let clock = Clock::start(tmp.path()).unwrap();
    change(&copy);
    let clock = clock.finish().unwrap();
    assert!(clock.reliable);
    assert_eq!(
        timeless(tree(&copy)),
        timeless(overlay),
        "the copy after the changes is the merged view"
    );
    tree::diff(&lowers, &copy, &upper_c, &record, clock).unwrap();

    let (o, c) = (layer_of(&upper_o), layer_of(&upper_c));
    assert_same_layer(&o, &c);
    // The layer holds the changes (so the comparison is not of two empty layers) and nothing
    // the step left alone.
    assert_eq!(entry(&c, "data/same").content, b"BBBB");
    assert_eq!(entry(&c, "data/.wh.gone").kind, "Regular");
    assert_eq!(entry(&c, ".wh.tree").kind, "Regular");
    assert_eq!(entry(&c, "swap").kind, "Regular");
    assert_eq!(entry(&c, "again/.wh..wh..opq").kind, "Regular");
    assert_eq!(entry(&c, "filedir/.wh..wh..opq").kind, "Regular");
    // The tar names the first name in walk order; `hard` sorts before `orig`.
    assert_eq!(entry(&c, "data/orig").link.as_deref(), Some("data/hard"));
    assert_eq!(entry(&c, "data/mode").mode, 0o700);
    assert_eq!(
        (entry(&c, "data/owner").uid, entry(&c, "data/owner").gid),
        (1000, 1001)
    );
    assert_eq!(entry(&c, "data/link").link.as_deref(), Some("target2"));
    assert_eq!(entry(&c, "etc/").mode, 0o700);
    assert_eq!(entry(&c, "opq/.wh.kept2").kind, "Regular");
    assert_eq!(entry(&c, "data/.wh.pair-b").kind, "Regular");
    assert!(entry(&c, "data/xattr")
        .xattrs
        .contains(&("user.added".into(), b"1".to_vec())));
    for untouched in [
        "quiet/",
        "quiet/untouched",
        "bin/",
        "data/suid",
        "data/pair-a",
        "etc/passwd",
    ] {
        assert!(
            !c.1.iter().any(|e| e.path == untouched),
            "{untouched} is not a change"
        );
    }
}

/// With an unreliable clock, a rewrite keeping size and mtime is still found (by content); with
/// a reliable one the ctime finds it. A watermark in the far future hides every ctime, which
/// shows that the content comparison is what finds it then.
#[test]
fn unreliable_clock_compares_contents() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    write(&lower.join("d/same"), "AAAA");
    write(&lower.join("d/other"), "other");
    std::os::unix::fs::symlink("one", lower.join("d/link")).unwrap();
    let lowers = vec![lower];
    let run = |reliable: bool| {
        let dir = tempfile::tempdir_in(tmp.path()).unwrap();
        let copy = dir.path().join("copy");
        let upper = dir.path().join("upper");
        mkdirs(&copy);
        mkdirs(&upper);
        let record = tree::copy_lowers(&lowers, &copy).unwrap();
        let low = |rel: &str| lowers[0].join(rel);
        std::fs::write(copy.join("d/same"), "BBBB").unwrap();
        same_times(&low("d/same"), &copy.join("d/same"));
        // Same length target, same mtime: only the target differs.
        std::fs::remove_file(copy.join("d/link")).unwrap();
        std::os::unix::fs::symlink("two", copy.join("d/link")).unwrap();
        same_times(&low("d/link"), &copy.join("d/link"));
        same_times(&low("d"), &copy.join("d"));
        let clock = tree::ChangeClock {
            watermark: (i64::MAX, 0),
            reliable,
        };
        tree::diff(&lowers, &copy, &upper, &record, clock).unwrap();
        let mut found = tree(&upper).into_keys().collect::<Vec<_>>();
        found.sort();
        found
    };
    assert_eq!(run(false), ["d", "d/link", "d/same"]);
    assert_eq!(run(true), Vec::<String>::new());
}

// ---- through the sandbox helper ----

fn executor() -> SandboxExecutor {
    SandboxExecutor {
        network: Default::default(),
        program: std::env::current_exe().unwrap(),
        timeout: Some(Duration::from_secs(120)),
        snapshotter: Snapshotter::Auto,
    }
}

/// A step's scratch directories (upper, work) next to the shared lowers.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(base: &Path) -> Scratch {
        let dir = tempfile::tempdir_in(base).unwrap();
        mkdirs(&dir.path().join("upper"));
        mkdirs(&dir.path().join("work"));
        Scratch { dir }
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    fn spec(&self, lowers: &[PathBuf], action: Action, snapshotter: Snapshotter) -> SandboxSpec {
        SandboxSpec {
            lowerdirs: lowers.to_vec(),
            upperdir: self.upper(),
            workdir: self.dir.path().join("work"),
            action,
            hostname: "snapshot-test".into(),
            snapshotter,
        }
    }
}

async fn run(spec: &SandboxSpec) -> (StepOutcome, Vec<OutputLine>) {
    let mut lines = Vec::new();
    let out = executor()
        .run(spec, |l| lines.push(l))
        .await
        .unwrap_or_else(|e| panic!("{e}: {e:?}"));
    (out, lines)
}

fn sh(script: &str) -> Action {
    Action::Run(RunSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: None,
        ..RunSpec::default()
    })
}

/// The step of the issue's list, as a shell script.
const STEP: &str = "set -e
echo new > /new-file
mkdir -p /newdir/sub && echo x > /newdir/sub/f
touch -r /data/same /ref && printf BBBB > /data/same && touch -r /ref /data/same && rm /ref
rm /data/gone
rm -rf /tree
rm -rf /swap && echo file > /swap
rm /filedir && mkdir /filedir && echo in > /filedir/x
rm -rf /again && mkdir /again && echo fresh > /again/n
chmod 700 /data/mode
chown 1000:1001 /data/owner
ln -sf target2 /data/link
ln /data/orig /data/hard
ln /new-file /new-hard
mv /movesrc /moved
rm -rf /mvb && mv /mva /mvb
rm /opq/kept2 && echo more >> /opq/kept
echo changed > /merge/from-l1
mkfifo /fifo
rm /data/pair-b
test -c /dev/null && test -e /proc/self/stat
";

/// The same RUN step through the helper, captured by overlayfs and by the copy snapshotter,
/// gives the same layer; each reports the snapshotter it used.
#[tokio::test]
async fn run_step_gives_the_same_layer_with_both_snapshotters() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    let mut layers = Vec::new();
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let scratch = Scratch::new(tmp.path());
        let (out, lines) = run(&scratch.spec(&lowers, sh(STEP), snapshotter)).await;
        assert_eq!(out.status, 0, "{snapshotter}: {lines:?}");
        assert_eq!(out.snapshotter, Some(snapshotter));
        assert!(
            lines
                .iter()
                .all(|l| !l.line.starts_with(SANDBOX_INFO_PREFIX)),
            "reports are not step output: {lines:?}"
        );
        if snapshotter == Snapshotter::Copy {
            let work = std::fs::read_dir(scratch.dir.path().join("work"))
                .unwrap()
                .count();
            assert_eq!(work, 0, "no overlay was mounted");
        }
        layers.push(layer_of(&scratch.upper()));
    }
    assert_same_layer(&layers[0], &layers[1]);
    let c = &layers[1];
    assert_eq!(entry(c, "data/same").content, b"BBBB");
    assert_eq!(entry(c, "data/.wh.gone").kind, "Regular");
    assert_eq!(entry(c, "mvb/.wh..wh..opq").kind, "Regular");
    assert_eq!(entry(c, "mvb/a").content, b"a");
    assert_eq!(entry(c, ".wh.movesrc").kind, "Regular");
    assert_eq!(entry(c, "fifo").kind, "Fifo");
    assert_eq!(entry(c, "new-hard").link.as_deref(), Some("new-file"));
    assert_eq!(entry(c, "data/.wh.pair-b").kind, "Regular");
    assert!(!c.1.iter().any(|e| e.path == "data/pair-a"));
    for gone in ["proc/", "dev/", "etc/", "etc/resolv.conf", "ref", ".wh.ref"] {
        assert!(!c.1.iter().any(|e| e.path == gone), "{gone} is scaffolding");
    }
}

/// A COPY step through the helper gives the same layer with both snapshotters.
#[tokio::test]
async fn copy_step_gives_the_same_layer_with_both_snapshotters() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    let ctx = tmp.path().join("ctx");
    write(&ctx.join("src/a.sh"), "#!/bin/sh\n");
    write(&ctx.join("src/sub/b"), "b");
    std::os::unix::fs::symlink("a.sh", ctx.join("src/link")).unwrap();
    write(&ctx.join("one"), "one");
    let bc = crate::context::BuildContext::open(&ctx, &ctx.join("Dockerfile")).unwrap();
    let mut entries = bc.resolve_copy(&["src".into()], "/app").unwrap();
    entries.extend(bc.resolve_copy(&["one".into()], "/data/one").unwrap());
    entries.extend(bc.resolve_copy(&["one".into()], "/data/same").unwrap());
    let action = Action::Copy(CopySpec {
        entries,
        chown: Some("1000:1001".into()),
        chmod: None,
        ..CopySpec::default()
    });
    let mut layers = Vec::new();
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let scratch = Scratch::new(tmp.path());
        let (out, lines) = run(&scratch.spec(&lowers, action.clone(), snapshotter)).await;
        assert_eq!(out.status, 0, "{snapshotter}: {lines:?}");
        assert_eq!(out.snapshotter, Some(snapshotter));
        layers.push(layer_of(&scratch.upper()));
    }
    assert_same_layer(&layers[0], &layers[1]);
    assert_eq!(entry(&layers[1], "data/same").content, b"one");
    assert_eq!(entry(&layers[1], "app/link").link.as_deref(), Some("a.sh"));
}

/// Mount points the helper makes (/proc, /dev, /etc/resolv.conf, the working directory's
/// parents) leave nothing behind with either snapshotter, also in a directory that existed
/// (the copied /etc keeps its time).
#[tokio::test]
async fn a_step_that_changes_nothing_leaves_an_empty_upper() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    for snapshotter in [Snapshotter::Overlay, Snapshotter::Copy] {
        let scratch = Scratch::new(tmp.path());
        let (out, lines) =
            run(&scratch.spec(&lowers, sh("cat /etc/passwd >/dev/null"), snapshotter)).await;
        assert_eq!(out.status, 0, "{snapshotter}: {lines:?}");
        let left: Vec<_> = std::fs::read_dir(scratch.upper())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{snapshotter}: {left:?}");
    }
}

/// `auto` uses the copy snapshotter when overlayfs cannot take the layer paths (a `:` in a
/// lower directory's name), and the result is right.
#[tokio::test]
async fn auto_falls_back_when_paths_cannot_be_overlay_options() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut lowers = lower_layers(tmp.path());
    let odd = tmp.path().join("layer:with,colon");
    std::fs::rename(&lowers[1], &odd).unwrap();
    lowers[1] = odd;
    let scratch = Scratch::new(tmp.path());
    let (out, lines) = run(&scratch.spec(
        &lowers,
        sh("rm /data/gone; echo hi > /hi"),
        Snapshotter::Auto,
    ))
    .await;
    assert_eq!(out.status, 0, "{lines:?}");
    assert_eq!(out.snapshotter, Some(Snapshotter::Copy));
    let mut found: Vec<_> = tree(&scratch.upper()).into_keys().collect();
    found.sort();
    assert_eq!(found, ["data", "data/gone", "hi"]);

    // Forcing overlayfs fails with the mount's reason instead.
    let scratch = Scratch::new(tmp.path());
    let err = executor()
        .run(
            &scratch.spec(&lowers, sh("true"), Snapshotter::Overlay),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("overlayfs directory"), "{err}");
}

/// `auto` falls back when the kernel refuses the mount: here the scratch directories are on an
/// overlayfs, which overlayfs does not accept as an upper directory (EINVAL).
#[tokio::test]
async fn auto_falls_back_when_the_kernel_refuses_overlayfs() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    let d = |n: &str| {
        let p = tmp.path().join(n);
        mkdirs(&p);
        p
    };
    let (host_lower, host_upper, host_work, state) =
        (d("host-lower"), d("host-upper"), d("host-work"), d("state"));
    let _state_fs = Overlay::mount(
        &state,
        &format!(
            "lowerdir={},upperdir={},workdir={}",
            host_lower.display(),
            host_upper.display(),
            host_work.display()
        ),
    );
    let scratch = Scratch::new(&state);

    let err = executor()
        .run(
            &scratch.spec(&lowers, sh("true"), Snapshotter::Overlay),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("mount overlay") && err.to_string().contains("Invalid argument"),
        "{err}"
    );

    let scratch = Scratch::new(&state);
    let (out, lines) = run(&scratch.spec(
        &lowers,
        sh("echo hi > /hi && chmod 600 /data/mode && mkdir -p /var/cache && echo c > /var/cache/c"),
        Snapshotter::Auto,
    ))
    .await;
    assert_eq!(out.status, 0, "{lines:?}");
    assert_eq!(out.snapshotter, Some(Snapshotter::Copy));
    let layer = layer_of(&scratch.upper());
    let names: Vec<_> = layer.1.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "data/",
            "data/mode",
            "hi",
            "var/",
            "var/cache/",
            "var/cache/c"
        ]
    );
    assert_eq!(entry(&layer, "data/mode").mode, 0o600);
}

/// A failed step with the copy snapshotter reports its status and writes no diff.
#[tokio::test]
async fn failed_steps_keep_their_status() {
    if !real_parts() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = lower_layers(tmp.path());
    let scratch = Scratch::new(tmp.path());
    let (out, _) = run(&scratch.spec(&lowers, sh("echo x > /x; exit 7"), Snapshotter::Copy)).await;
    assert_eq!(out.status, 7);
    assert_eq!(out.snapshotter, Some(Snapshotter::Copy));
    assert_eq!(std::fs::read_dir(scratch.upper()).unwrap().count(), 0);
}
