//! Issue 18, fidelity: what goes into a build comes out as Docker's tools keep it.
//! - a crafted tar holding one entry of every kind, ADDed `FROM scratch` for two platforms: the
//!   layer tar equals the source entry by entry, and a RUN on top sees each entry with `stat`;
//! - a real Debian minbase root filesystem (mmdebstrap, made by `scripts/test`): every entry of
//!   the source tar is in the layer with the same type and metadata, hard links as hard links;
//! - layers with whiteouts and opaque markers in unusual orders (appended verbatim with umoci):
//!   a RUN on them sees what image-spec layer.md says, with both snapshotters.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use polyarch::oci::ImageManifest;
use tar::{EntryType, Header};

use crate::harness::{layout_index, TestContext};

const TWO: &str = "linux/amd64,linux/arm64/v8";

/// VFS_CAP_REVISION_2 with cap_net_raw permitted and effective (`setcap cap_net_raw+ep`).
const CAP_NET_RAW: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// The long name, which needs a PAX `path` record (over the 100 bytes of ustar's name field).
fn long_name() -> String {
    format!("deep/{}/{}", "l".repeat(110), "n".repeat(70))
}

/// Builds a tar by hand, one ustar header per entry, PAX records where needed.
struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, owner: (u64, u64), size: u64) -> Header {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h
    }

    /// One entry: PAX records first (`path` added for a long name), then the header.
    fn add(mut self, name: &str, mut h: Header, data: &[u8], pax: &[(&str, &[u8])]) -> Self {
        let mut records: Vec<(&str, &[u8])> = pax.to_vec();
        if name.len() > 100 {
            records.push(("path", name.as_bytes()));
        }
        if !records.is_empty() {
            self.0.append_pax_extensions(records).unwrap();
        }
        let short = &name.as_bytes()[..name.len().min(100)];
        h.as_ustar_mut().unwrap().name[..short.len()].copy_from_slice(short);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, name: &str, mode: u32) -> Self {
        let h = Self::header(EntryType::Directory, mode, (0, 0), 0);
        self.add(name, h, &[], &[])
    }

    fn file(self, name: &str, mode: u32, owner: (u64, u64), pax: &[(&str, &[u8])]) -> Self {
        let body = name.as_bytes();
        let h = Self::header(EntryType::Regular, mode, owner, body.len() as u64);
        self.add(name, h, body, pax)
    }

    fn node(self, name: &str, kind: EntryType, mode: u32, dev: (u32, u32)) -> Self {
        let mut h = Self::header(kind, mode, (0, 6), 0);
        h.set_device_major(dev.0).unwrap();
        h.set_device_minor(dev.1).unwrap();
        self.add(name, h, &[], &[])
    }

    fn link(self, name: &str, kind: EntryType, target: &str) -> Self {
        self.link_pax(name, kind, target, &[])
    }

    fn link_pax(self, name: &str, kind: EntryType, target: &str, pax: &[(&str, &[u8])]) -> Self {
        let mut h = Self::header(kind, 0o777, (0, 0), 0);
        h.set_link_name(target).unwrap();
        self.add(name, h, &[], pax)
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A char and a block device, a fifo, a hard-link pair, setuid/setgid/sticky, numeric owners,
/// `security.capability` and `user.*` xattrs, a symlink, and a long name; every directory
/// listed, so the layer must hold exactly these entries.
fn crafted_tar() -> Vec<u8> {
    let long = long_name();
    let (deep, deeper) = long.rsplit_once('/').unwrap().0.split_once('/').unwrap();
    TarBuilder::new()
        .dir("bin/", 0o755)
        .file("bin/perl", 0o755, (0, 0), &[])
        .link("bin/perl5.36", EntryType::Link, "bin/perl")
        .file(
            "bin/ping",
            0o755,
            (0, 0),
            &[("SCHILY.xattr.security.capability", &CAP_NET_RAW)],
        )
        .file("bin/su", 0o4755, (0, 0), &[])
        .file(
            "bin/tagged",
            0o640,
            (1000, 1000),
            &[("SCHILY.xattr.user.origin", b"crafted")],
        )
        .file("bin/wall", 0o2755, (0, 5), &[])
        // Linux refuses `user.*` xattrs on symlinks (xattr(7)): the host cannot hold this one,
        // the layer must still carry it.
        .link_pax(
            "bin/sh",
            EntryType::Symlink,
            "perl",
            &[("SCHILY.xattr.user.origin", b"elsewhere")],
        )
        .dir(&format!("{deep}/"), 0o755)
        .dir(&format!("{deep}/{deeper}/"), 0o700)
        .file(&long, 0o600, (65534, 65534), &[])
        .dir("nodes/", 0o755)
        .node("nodes/null", EntryType::Char, 0o666, (1, 3))
        .node("nodes/pipe", EntryType::Fifo, 0o620, (0, 0))
        .node("nodes/sda", EntryType::Block, 0o660, (8, 0))
        .dir("scratch/", 0o1777)
        .finish()
}

/// One tar entry as a layer must keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    /// Symlink target; for a hard link, the name it links to (compared as groups, below).
    link: Option<String>,
    device: Option<(u32, u32)>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn clean(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

/// Every entry of an uncompressed tar stream by cleaned name (the root itself left out).
fn tar_entries(tar: impl Read) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let name = clean(&e.path().unwrap().to_string_lossy());
        if name.is_empty() || name == "." {
            continue;
        }
        let mut xattrs = BTreeMap::new();
        let mut e = e;
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
        let link = e.link_name().unwrap().map(|l| {
            let l = l.to_string_lossy().into_owned();
            if kind == EntryType::Link {
                clean(&l)
            } else {
                l
            }
        });
        out.insert(
            name,
            Seen {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                size: h.size().unwrap(),
                mtime: h.mtime().unwrap(),
                link,
                device,
                xattrs,
            },
        );
    }
    out
}

/// The uncompressed layer tars of the image for `arch` in an OCI layout, bottom first.
fn layer_tars(layout: &Path, arch: &str) -> Vec<Vec<u8>> {
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let idx = layout_index(layout, "latest");
    let child = idx
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().map(|p| p.architecture.as_str()) == Some(arch))
        .unwrap_or_else(|| panic!("no {arch} image"));
    let m: ImageManifest = serde_json::from_slice(&blob(&child.digest.to_string())).unwrap();
    m.layers
        .iter()
        .map(|l| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&blob(&l.digest.to_string())[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        })
        .collect()
}

/// The image config of the image for `arch` in an OCI layout, as JSON.
fn image_config(layout: &Path, arch: &str) -> serde_json::Value {
    let blob = |d: &str| std::fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let idx = layout_index(layout, "latest");
    let child = idx
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().map(|p| p.architecture.as_str()) == Some(arch))
        .unwrap();
    let m: ImageManifest = serde_json::from_slice(&blob(&child.digest.to_string())).unwrap();
    serde_json::from_slice(&blob(&m.config.digest.to_string())).unwrap()
}

/// Asserts that every entry of `want` (a source tar) is in `got` (a layer) with the same type
/// and metadata, and that names hard-linked in one are hard-linked in the other (whichever
/// name each writer keeps as the file: BuildKit and polyarch keep the first in sorted order,
/// tar the first it met). A hard link's own header fields are its file's.
fn assert_same_entries(want: &BTreeMap<String, Seen>, got: &BTreeMap<String, Seen>) {
    let group = |m: &BTreeMap<String, Seen>, name: &str| -> String {
        match &m[name] {
            Seen {
                kind: EntryType::Link,
                link: Some(t),
                ..
            } => t.clone(),
            _ => name.to_string(),
        }
    };
    // Names by the file they are (only groups of several names matter).
    let mut want_groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in want.keys() {
        want_groups
            .entry(group(want, name))
            .or_default()
            .push(name.clone());
    }
    want_groups.retain(|_, names| names.len() > 1);
    let mut missing = Vec::new();
    for name in want.keys() {
        if !got.contains_key(name) {
            missing.push(name.clone());
            continue;
        }
        let (wf, gf) = (group(want, name), group(got, name));
        // The file behind each name, whichever name holds it in each tar.
        let (w, g) = (&want[&wf], &got[&gf]);
        assert_eq!(
            (w.kind == EntryType::Link, g.kind == EntryType::Link),
            (false, false),
            "{name}: a link to a link"
        );
        let strip = |s: &Seen| Seen {
            link: (s.kind != EntryType::Link)
                .then(|| s.link.clone())
                .flatten(),
            ..s.clone()
        };
        assert_eq!(strip(g), strip(w), "{name}");
        // Same hard-link group on both sides: every name linked to this one in the source is
        // linked to it in the layer.
        for other in want_groups.get(&wf).into_iter().flatten() {
            assert_eq!(group(got, other), gf, "{name} and {other} are one file");
        }
    }
    assert!(missing.is_empty(), "missing from the layer: {missing:?}");
}

/// The lines step 1 printed for `platform` in plain progress output: its stdout (`|`), and
/// with `stderr` also its stderr (`!`).
fn step_lines(progress: &str, platform: &str, stderr: bool) -> Vec<String> {
    let out = format!("[{platform}] #1 | ");
    let err = format!("[{platform}] #1 ! ");
    progress
        .lines()
        .filter_map(|l| {
            l.strip_prefix(&out)
                .or_else(|| l.strip_prefix(&err).filter(|_| stderr))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn add_keeps_every_kind_of_tar_entry_on_two_platforms() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let tar = crafted_tar();
    let df = format!(
        "FROM scratch AS crafted\nADD crafted.tar /\n\
         FROM crafted\n\
         RUN --mount=type=bind,from={base},target=/bb [\"/bb/bin/busybox\", \"sh\", \"-c\", \
         \"cd / && /bb/bin/busybox stat -c '%n|%F|%a|%u|%g|%s|%t:%T|%h' \
         bin/perl bin/perl5.36 bin/ping bin/su bin/tagged bin/wall bin/sh nodes/null \
         nodes/pipe nodes/sda deep/*/* && /bb/bin/busybox stat -c '%n|%F|%a' scratch \
         && /bb/bin/busybox stat -c %i bin/perl bin/perl5.36\"]\n",
        base = ctx.base
    );
    let dir = ctx.context("crafted", &[("Dockerfile", &df)]);
    std::fs::write(dir.join("crafted.tar"), &tar).unwrap();
    let out = ctx.dir.path().join("out");
    let state = ctx.dir.path().join("state");
    let r = ctx.run(
        &[
            "build",
            "--platform",
            TWO,
            "-o",
            &format!("type=oci,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
        &[("POLYARCH_STATE_DIR", state.to_str().unwrap())],
    );
    r.assert_code(0);
    // Said once per platform's step, naming the entry.
    // (The plain renderer repeats every warning once more after the summary: count distinct
    // lines.)
    let mut said: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("cannot be represented"))
        .collect();
    said.sort_unstable();
    said.dedup();
    assert_eq!(said.len(), 2, "{}", r.stderr);
    assert!(
        said.iter()
            .all(|l| l.contains("/bin/sh (xattr user.origin")),
        "{said:?}"
    );

    let want = tar_entries(&tar[..]);
    let mut digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        // The RUN made no change: the image's one layer is the ADD's.
        let layers = layer_tars(&out, arch);
        assert_eq!(layers.len(), 1, "{arch}");
        let got = tar_entries(&layers[0][..]);
        assert_same_entries(&want, &got);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{arch}: nothing added, nothing dropped"
        );
        assert_eq!(got["bin/perl5.36"].kind, EntryType::Link);
        digests.push(polyarch::oci::Digest::of(&layers[0]).to_string());
        // A `FROM scratch` image has BuildKit's default PATH in its config (issue 18 item 3).
        let config = image_config(&out, arch);
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!([
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ]),
            "{arch}"
        );
    }
    assert_eq!(digests[0], digests[1], "the same layer on both platforms");

    let long = long_name();
    for platform in ["linux/amd64", "linux/arm64/v8"] {
        let lines = step_lines(&r.stderr, platform, false);
        let expect = [
            "bin/perl|regular file|755|0|0|8|0:0|2".to_string(),
            "bin/perl5.36|regular file|755|0|0|8|0:0|2".to_string(),
            "bin/ping|regular file|755|0|0|8|0:0|1".to_string(),
            "bin/su|regular file|4755|0|0|6|0:0|1".to_string(),
            "bin/tagged|regular file|640|1000|1000|10|0:0|1".to_string(),
            "bin/wall|regular file|2755|0|5|8|0:0|1".to_string(),
            "bin/sh|symbolic link|777|0|0|4|0:0|1".to_string(),
            "nodes/null|character special file|666|0|6|0|1:3|1".to_string(),
            "nodes/pipe|fifo|620|0|6|0|0:0|1".to_string(),
            "nodes/sda|block special file|660|0|6|0|8:0|1".to_string(),
            format!("{long}|regular file|600|65534|65534|{}|0:0|1", long.len()),
            "scratch|directory|1777".to_string(),
        ];
        assert_eq!(lines[..expect.len()], expect, "{platform}: {}", r.stderr);
        let inodes = &lines[expect.len()..];
        assert_eq!(inodes.len(), 2, "{platform}: {lines:?}");
        assert_eq!(inodes[0], inodes[1], "{platform}: one inode for both names");
    }

    // The same tar ADDed onto a base image (the sandboxed copy, not an unpack into an empty
    // tree): the layer holds the same entries under the destination.
    std::fs::write(
        dir.join("Dockerfile.onbase"),
        format!(
            "FROM {}
ADD crafted.tar /crafted/
",
            ctx.base
        ),
    )
    .unwrap();
    let out2 = ctx.dir.path().join("out-onbase");
    let onbase = dir.join("Dockerfile.onbase");
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-f",
            onbase.to_str().unwrap(),
            "-o",
            &format!("type=oci,dest={}", out2.display()),
            dir.to_str().unwrap(),
        ],
        &[("POLYARCH_STATE_DIR", state.to_str().unwrap())],
    );
    r.assert_code(0);
    let mut said: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("cannot be represented"))
        .collect();
    said.dedup();
    assert_eq!(said.len(), 1, "{}", r.stderr);
    let layers = layer_tars(&out2, "amd64");
    let top = tar_entries(&layers.last().unwrap()[..]);
    let moved: BTreeMap<String, Seen> = top
        .iter()
        .filter_map(|(k, v)| {
            let k = k.strip_prefix("crafted/")?;
            let mut v = v.clone();
            if v.kind == EntryType::Link {
                v.link = v.link.map(|l| l.trim_start_matches("crafted/").to_string());
            }
            Some((k.to_string(), v))
        })
        .collect();
    assert_same_entries(&want, &moved);
}

/// The Debian minbase tar `scripts/test` makes (`POLYARCH_TEST_ROOTFS_TAR`); `None` skips the
/// test unless `CI` is set.
fn rootfs_tar() -> Option<PathBuf> {
    match std::env::var_os("POLYARCH_TEST_ROOTFS_TAR") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("POLYARCH_TEST_ROOTFS_TAR unset under CI: run scripts/test")
        }
        None => {
            eprintln!("skipped: no Debian root filesystem tar (run scripts/test)");
            None
        }
    }
}

/// amd64 only: the crafted tar above covers two platforms, and a second 170 MB ADD would cost
/// CI time without covering more.
#[test]
fn add_keeps_a_debian_root_filesystem() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some(src) = rootfs_tar() else {
        return;
    };
    let dir = ctx.context(
        "rootfs",
        &[("Dockerfile", "FROM scratch\nADD rootfs.tar /\n")],
    );
    if std::fs::hard_link(&src, dir.join("rootfs.tar")).is_err() {
        std::fs::copy(&src, dir.join("rootfs.tar")).unwrap();
    }
    let out = ctx.dir.path().join("out");
    let state = ctx.dir.path().join("state");
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
        &[("POLYARCH_STATE_DIR", state.to_str().unwrap())],
    );
    r.assert_code(0);
    let want = tar_entries(std::fs::File::open(&src).unwrap());
    let kinds = |k: EntryType| want.values().filter(|s| s.kind == k).count();
    assert!(kinds(EntryType::Char) >= 8, "a minbase /dev has 8 devices");
    assert!(kinds(EntryType::Link) >= 2, "perl's hard links");
    let layers = layer_tars(&out, "amd64");
    assert_eq!(layers.len(), 1);
    let got = tar_entries(&layers[0][..]);
    assert_same_entries(&want, &got);
    assert_eq!(got.len(), want.len(), "no entry added");
}

/// Runs `program args` and asserts it succeeded.
fn must(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lower layer, then a layer with whiteouts and opaque markers in orders no sorted writer
/// makes, and whiteouts of paths no lower layer has.
fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
    let f = |b: TarBuilder, n: &str| b.file(n, 0o644, (0, 0), &[]);
    let mut lower = TarBuilder::new();
    for d in ["d/", "e/", "g/", "o/", "p/", "w/"] {
        lower = lower.dir(d, 0o755);
    }
    for n in [
        "d/old", "e/old", "f", "g/old", "o/old", "p/old", "w/keep", "w/gone",
    ] {
        lower = f(lower, n);
    }
    let wh = |b: TarBuilder, n: &str| b.file(n, 0o644, (0, 0), &[]);
    let mut top = TarBuilder::new();
    top = wh(top, ".wh.d").dir("d/", 0o755);
    top = f(top, "d/new");
    top = f(top.dir("e/", 0o755), "e/new");
    top = wh(top, ".wh.e");
    top = wh(top, ".wh.f");
    let h = TarBuilder::header(EntryType::Regular, 0o644, (0, 0), 6);
    top = top.add("f", h, b"again\n", &[]);
    top = f(wh(top, ".wh.g"), "g/new");
    top = wh(top, "o/.wh..wh..opq").dir("o/", 0o755);
    top = wh(f(top, "p/new"), "p/.wh..wh..opq");
    top = wh(wh(top, "w/.wh.gone"), "w/.wh.never-was");
    top = wh(wh(top, ".wh.never"), "nowhere/.wh.never");
    top = wh(top, "bin/.wh.vi");
    (lower.finish(), top.finish())
}

#[test]
fn whiteouts_in_unusual_orders_with_both_snapshotters() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // The base for amd64, then two layers appended verbatim by umoci, pushed by skopeo.
    let layout = ctx.dir.path().join("layout");
    let l = layout.display().to_string();
    must(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--override-arch=amd64",
            "--override-os=linux",
            &format!("docker://{}", ctx.base),
            &format!("oci:{l}:base"),
        ],
    );
    let (lower, top) = whiteout_layers();
    for (name, bytes) in [("lower.tar", &lower), ("top.tar", &top)] {
        std::fs::write(ctx.dir.path().join(name), bytes).unwrap();
    }
    let lower_tar = ctx.dir.path().join("lower.tar");
    let top_tar = ctx.dir.path().join("top.tar");
    must(
        "umoci",
        &[
            "raw",
            "add-layer",
            "--image",
            &format!("{l}:base"),
            "--tag",
            "wh",
            lower_tar.to_str().unwrap(),
        ],
    );
    must(
        "umoci",
        &[
            "raw",
            "add-layer",
            "--image",
            &format!("{l}:wh"),
            top_tar.to_str().unwrap(),
        ],
    );
    let image = format!("{}:wh", ctx.repo("whiteouts"));
    must(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{l}:wh"),
            &format!("docker://{image}"),
        ],
    );

    let script = "set -e; find /d /e /f /g /o /p /w /nowhere | sort; cat /f; \
                  ls -la /nowhere /o /w | grep -v '^total'; \
                  if ls /bin/vi /never 2>/dev/null; then exit 3; fi; \
                  find / -xdev -name '.wh.*' | grep . && exit 4; echo end";
    let df = format!("FROM {image}\nRUN {script}\n");
    let dir = ctx.context("wh", &[("Dockerfile", &df)]);
    let mut outputs = Vec::new();
    for snapshotter in ["overlay", "copy"] {
        let state = ctx.dir.path().join(format!("state-{snapshotter}"));
        let out = ctx.dir.path().join(format!("out-{snapshotter}"));
        let r = ctx.run(
            &[
                "build",
                "--platform",
                "linux/amd64",
                "-o",
                &format!("type=oci,dest={}", out.display()),
                dir.to_str().unwrap(),
            ],
            &[
                ("POLYARCH_STATE_DIR", state.to_str().unwrap()),
                ("POLYARCH_SNAPSHOTTER", snapshotter),
            ],
        );
        r.assert_code(0);
        let lines = step_lines(&r.stderr, "linux/amd64", true);
        assert_eq!(
            lines.last().map(String::as_str),
            Some("end"),
            "{snapshotter}"
        );
        assert_eq!(
            lines[..14],
            [
                "/d", "/d/new", "/e", "/e/new", "/f", "/g", "/g/new", "/nowhere", "/o", "/p",
                "/p/new", "/w", "/w/keep", "again"
            ],
            "{snapshotter}: {}",
            r.stderr
        );
        for l in &lines {
            assert!(
                !l.contains('?') && !l.contains(".wh."),
                "{snapshotter}: {l}"
            );
        }
        // `ls -la` of /nowhere and /o: only `.` and `..`; of /w: `keep` only.
        let names: Vec<String> = lines[14..]
            .iter()
            .map(|l| l.split_whitespace().last().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            names,
            [
                "/nowhere:",
                ".",
                "..",
                "",
                "/o:",
                ".",
                "..",
                "",
                "/w:",
                ".",
                "..",
                "keep",
                "end"
            ],
            "{snapshotter}: {lines:?}"
        );
        outputs.push(names);
    }
    assert_eq!(outputs[0], outputs[1], "both snapshotters see the same");
}

/// Issue 18 item 4: progress and error lines show the instruction as written (flags and JSON
/// form kept, continuation lines joined), and when one platform fails the other gets a line
/// saying it was cancelled and why.
#[test]
fn progress_shows_instructions_as_written_and_cancelled_platforms() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\n\
         RUN --network=none \\\n  echo \"start\" && uname -m\n\
         EXPOSE 8000/tcp\n\
         CMD [\"python3\", \"-m\", \"http.server\"]\n\
         RUN if [ \"$(uname -m)\" = x86_64 ]; then exit 3; else sleep 60; fi\n",
        ctx.base
    );
    let dir = ctx.context("cancel", &[("Dockerfile", &df)]);
    let started = std::time::Instant::now();
    let r = ctx.run(
        &[
            "build",
            "--platform",
            TWO,
            "-o",
            &format!("type=oci,dest={}", ctx.dir.path().join("out").display()),
            dir.to_str().unwrap(),
        ],
        &[(
            "POLYARCH_STATE_DIR",
            ctx.dir.path().join("state").to_str().unwrap(),
        )],
    );
    r.assert_code(1);
    assert!(started.elapsed().as_secs() < 50, "arm64 was not stopped");
    let file = dir.join("Dockerfile").display().to_string();
    for line in [
        format!("[linux/amd64] #1/4 {file}:2: RUN --network=none   echo \"start\" && uname -m"),
        format!("[linux/amd64] #2/4 {file}:4: EXPOSE 8000/tcp"),
        format!("[linux/amd64] #3/4 {file}:5: CMD [\"python3\", \"-m\", \"http.server\"]"),
    ] {
        assert!(
            // The first step may add why the step cache missed: `... (cache miss: ...)`.
            r.stderr
                .lines()
                .any(|l| l == line || l.starts_with(&format!("{line} ("))),
            "no {line:?} in\n{}",
            r.stderr
        );
    }
    let failed = "RUN if [ \"$(uname -m)\" = x86_64 ]; then exit 3; else sleep 60; fi";
    let cancelled = r
        .stderr
        .lines()
        .find(|l| l.starts_with("[linux/arm64/v8] cancelled: "))
        .unwrap_or_else(|| panic!("no cancelled line for arm64:\n{}", r.stderr));
    assert!(
        cancelled.contains("linux/amd64") && cancelled.contains(failed),
        "{cancelled}"
    );
    assert!(
        !r.stderr.contains("# buildkit") && !r.stderr.contains("/bin/sh -c"),
        "history text shown:\n{}",
        r.stderr
    );
    assert!(r.stderr.contains(&format!("{file}:6")), "{}", r.stderr);
}

/// Issue 18 item 5: merge keeps the order of its sources (an image followed by its attestation
/// manifest), and `--platform` (`--platforms` its alias) leaves out the other platforms'
/// images together with the attestation manifests about them. Against the real registry.
#[test]
fn merge_keeps_source_order_and_filters_attestations_with_their_images() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    use polyarch::oci::Descriptor;
    use polyarch::platform::Platform;
    use polyarch::registry::Reference;
    let repo = ctx.repo("merge-order");
    ctx.run(&["merge", "-t", &format!("{repo}:base"), &ctx.base], &[])
        .assert_code(0);
    let base: serde_json::Value =
        serde_json::from_slice(&crate::harness::skopeo_raw(&format!("{repo}:base")).unwrap())
            .unwrap();
    let entry = |arch: &str| {
        let e = base["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap()
            .clone();
        let mut d = Descriptor::new(
            e["mediaType"].as_str().unwrap(),
            e["digest"].as_str().unwrap().parse().unwrap(),
            e["size"].as_u64().unwrap(),
        );
        d.platform = Some(Platform::parse(&format!("linux/{arch}")).unwrap());
        d
    };
    let (amd, arm) = (entry("amd64"), entry("arm64"));
    let reference = Reference::parse(&repo).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::publish::push_attested_index(&reference, "amd", &amd));
    rt.block_on(crate::publish::push_attested_index(&reference, "arm", &arm));
    let merged = |tag: &str, args: &[&str]| -> Vec<(String, String)> {
        let target = format!("{repo}:{tag}");
        let mut a = vec!["merge", "-t", &target];
        a.extend_from_slice(args);
        ctx.run(&a, &[]).assert_code(0);
        let v: serde_json::Value =
            serde_json::from_slice(&crate::harness::skopeo_raw(&target).unwrap()).unwrap();
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let p = &m["platform"];
                let subject = m["annotations"]["vnd.docker.reference.digest"]
                    .as_str()
                    .map(|s| format!(" of {s}"))
                    .unwrap_or_default();
                (
                    format!(
                        "{}/{}{subject}",
                        p["os"].as_str().unwrap(),
                        p["architecture"].as_str().unwrap()
                    ),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (amd_s, arm_s) = (format!("{repo}:amd"), format!("{repo}:arm"));
    let kinds = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    let att = |d: &Descriptor| format!("unknown/unknown of {}", d.digest);
    assert_eq!(
        kinds(&merged("both", &[&amd_s, &arm_s])),
        [
            "linux/amd64".to_string(),
            att(&amd),
            "linux/arm64".into(),
            att(&arm)
        ]
    );
    assert_eq!(
        kinds(&merged("reversed", &[&arm_s, &amd_s])),
        [
            "linux/arm64".to_string(),
            att(&arm),
            "linux/amd64".into(),
            att(&amd)
        ]
    );
    assert_eq!(
        kinds(&merged(
            "arm-only",
            &["--platform", "linux/arm64", &amd_s, &arm_s]
        )),
        ["linux/arm64".to_string(), att(&arm)]
    );
    assert_eq!(
        kinds(&merged(
            "alias",
            &["--platforms", "linux/amd64", &amd_s, &arm_s]
        )),
        ["linux/amd64".to_string(), att(&amd)]
    );
}
