//! The build context as it travels to a node: a zstd-compressed tar of exactly what
//! `.dockerignore` lets `COPY` see, content-addressed by the sha256 of its bytes.
//!
//! Layout: `meta/dockerignore` (the ignore rules the coordinator applied, when there are any),
//! then `root` (the context directory itself) and `root/...` for every visible file, directory,
//! symlink, hard link, device node and fifo, in the order [`BuildContext::resolve_copy`] gives
//! (parents first, names in byte order). Headers carry only what a build reads (permission
//! bits, mtime in seconds, link target, device numbers, xattrs as PAX `SCHILY.xattr.*`) with
//! uid/gid 0 and no names, so the same context gives the same bytes and digest on every run and
//! an unchanged context is not sent again.
//!
//! The node unpacks it into its store (`contexts/<hex>/`) and opens it as a build context with
//! the same ignore rules, so `COPY` there resolves exactly as it does here.
//!
//! Level 2 (node port). Sync file work only: no network, no async.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};

use super::protocol::ContextRef;
use super::NodeError;
use crate::context::{BuildContext, CopyEntry, EntryKind};
use crate::oci::{Digest, DigestWriter};

/// zstd level: fast, and fixed so the bytes (and the digest) are stable.
const ZSTD_LEVEL: i32 = 3;

/// Name of the ignore rules inside the bundle.
pub const IGNORE_ENTRY: &str = "meta/dockerignore";

/// Name of the context root inside the bundle.
pub const ROOT_ENTRY: &str = "root";

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> NodeError + 'a {
    move |source| NodeError::Bundle {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn header(kind: tar::EntryType, mode: u32, mtime: i64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    // tar has no negative times; such files are rare and clamped to the epoch.
    h.set_mtime(mtime.max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h
}

/// Packs `context` into the file `dest` (created or truncated). Returns the bundle's digest and
/// size. Reads every visible file once; nothing is kept in memory.
///
/// Errors: [`NodeError::Context`] when the context cannot be walked, [`NodeError::Bundle`] for
/// I/O on `dest` or a context file.
pub fn pack(context: &BuildContext, dest: &Path) -> Result<ContextRef, NodeError> {
    let file = File::create(dest).map_err(io_err("create", dest))?;
    let hashed = DigestWriter::new(BufWriter::new(file));
    let zst = zstd::Encoder::new(hashed, ZSTD_LEVEL).map_err(io_err("compress", dest))?;
    let mut tar = tar::Builder::new(zst);
    tar.mode(tar::HeaderMode::Deterministic);

    if let Some(ignore) = context.ignore_file() {
        let text = std::fs::read(ignore).map_err(io_err("read", ignore))?;
        let mut h = header(tar::EntryType::Regular, 0o644, 0, text.len() as u64);
        tar.append_data(&mut h, IGNORE_ENTRY, &text[..])
            .map_err(io_err("write", dest))?;
    }
    let root = context.root();
    let md = std::fs::symlink_metadata(root).map_err(io_err("stat", root))?;
    let mut h = header(
        tar::EntryType::Directory,
        md.permissions().mode() & 0o7777,
        md.mtime(),
        0,
    );
    tar.append_data(&mut h, ROOT_ENTRY, io::empty())
        .map_err(io_err("write", dest))?;

    let entries = context
        .resolve_copy(&[".".to_string()], "/")
        .map_err(|e| NodeError::Context(Box::new(e)))?;
    for e in &entries {
        pack_entry(&mut tar, e, dest)?;
    }
    let zst = tar.into_inner().map_err(io_err("write", dest))?;
    let hashed = zst.finish().map_err(io_err("compress", dest))?;
    let (mut buf, digest, size) = hashed.finish();
    buf.flush().map_err(io_err("write", dest))?;
    Ok(ContextRef { digest, size })
}

/// Appends one context entry `e` to the bundle being written to `dest`: its PAX xattr records,
/// then its header (and content).
fn pack_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    e: &CopyEntry,
    dest: &Path,
) -> Result<(), NodeError> {
    let name = format!("{ROOT_ENTRY}{}", e.dest);
    if !e.xattrs.is_empty() {
        // PAX `SCHILY.xattr.*` records for the entry that follows (as GNU tar writes them).
        let records: Vec<(String, &[u8])> = e
            .xattrs
            .iter()
            .map(|(k, v)| {
                let key = format!("SCHILY.xattr.{}", String::from_utf8_lossy(k));
                (key, v.as_slice())
            })
            .collect();
        tar.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
            .map_err(io_err("write", dest))?;
    }
    match &e.kind {
        EntryKind::Dir => {
            let mut h = header(tar::EntryType::Directory, e.mode, e.mtime, 0);
            tar.append_data(&mut h, &name, io::empty())
                .map_err(io_err("write", dest))?;
        }
        EntryKind::File => {
            let f = File::open(&e.src).map_err(io_err("read", &e.src))?;
            let len = f.metadata().map_err(io_err("stat", &e.src))?.len();
            let mut h = header(tar::EntryType::Regular, e.mode, e.mtime, len);
            // A file that changes size while it is packed is an error, not a torn copy.
            let mut limited = f.take(len);
            tar.append_data(&mut h, &name, &mut limited)
                .map_err(io_err("read", &e.src))?;
            if limited.limit() != 0 {
                return Err(NodeError::Bundle {
                    what: "read (it shrank while being packed)",
                    path: e.src.clone(),
                    source: io::ErrorKind::UnexpectedEof.into(),
                });
            }
        }
        EntryKind::Symlink(target) => {
            let mut h = header(tar::EntryType::Symlink, 0o777, e.mtime, 0);
            tar.append_link(&mut h, &name, target)
                .map_err(io_err("write", dest))?;
        }
        EntryKind::Hardlink(first) => {
            let mut h = header(tar::EntryType::Link, e.mode, e.mtime, 0);
            tar.append_link(&mut h, &name, format!("{ROOT_ENTRY}{first}"))
                .map_err(io_err("write", dest))?;
        }
        EntryKind::Device {
            block,
            major,
            minor,
        } => {
            let kind = if *block {
                tar::EntryType::Block
            } else {
                tar::EntryType::Char
            };
            let mut h = header(kind, e.mode, e.mtime, 0);
            h.set_device_major(*major)
                .and_then(|()| h.set_device_minor(*minor))
                .map_err(io_err("write", dest))?;
            tar.append_data(&mut h, &name, io::empty())
                .map_err(io_err("write", dest))?;
        }
        EntryKind::Fifo => {
            let mut h = header(tar::EntryType::Fifo, e.mode, e.mtime, 0);
            tar.append_data(&mut h, &name, io::empty())
                .map_err(io_err("write", dest))?;
        }
    }
    Ok(())
}

/// Checks that a bundle entry name is `meta/dockerignore`, `root` or a plain relative path under
/// `root/` (no `..`, no absolute path).
fn checked_name(name: &Path, digest: &str) -> Result<PathBuf, NodeError> {
    let bad = |reason: String| NodeError::BadBundle {
        digest: digest.to_string(),
        reason,
    };
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return Err(bad(format!("entry {name:?} leaves the bundle"))),
        }
    }
    let ok = out == Path::new(IGNORE_ENTRY)
        || out == Path::new(ROOT_ENTRY)
        || out.starts_with(ROOT_ENTRY);
    if !ok {
        return Err(bad(format!("unexpected entry {name:?}")));
    }
    Ok(out)
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let t = Timespec {
        tv_sec: mtime as i64,
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
    .map_err(io::Error::from)
}

/// Unpacks the bundle file `bundle` (whose digest was already verified) into `dest`, a new empty
/// directory: `dest/root/...` with the packed modes and mtimes, and `dest/meta/dockerignore`.
///
/// Entries are created without following symlinks: a name whose parent is not a real directory
/// made by this bundle is refused ([`NodeError::BadBundle`]).
pub fn unpack(bundle: &Path, digest: &Digest, dest: &Path) -> Result<(), NodeError> {
    let d = digest.to_string();
    let file = File::open(bundle).map_err(io_err("open", bundle))?;
    let zst = zstd::Decoder::new(file).map_err(io_err("decompress", bundle))?;
    let mut ar = tar::Archive::new(zst);
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    let entries = ar.entries().map_err(io_err("read", bundle))?;
    for entry in entries {
        let mut entry = entry.map_err(io_err("read", bundle))?;
        let name = entry.path().map_err(io_err("read", bundle))?.into_owned();
        let rel = checked_name(&name, &d)?;
        let target = dest.join(&rel);
        check_parents(dest, &rel, &name, &d)?;
        let xattrs = pax_xattrs(&mut entry).map_err(io_err("read", bundle))?;
        let at = Place {
            dest,
            target: &target,
            name: &name,
            digest: &d,
            bundle,
        };
        if let Some(dir) = place(&mut entry, &at)? {
            dirs.push(dir);
        }
        for (k, v) in &xattrs {
            rustix::fs::lsetxattr(
                &target,
                std::ffi::OsStr::from_bytes(k),
                v,
                rustix::fs::XattrFlags::empty(),
            )
            .map_err(|e| io_err("set an xattr of", &target)(e.into()))?;
        }
    }
    // Directories last, deepest first: their modes may forbid writing, and creating children
    // changed their mtimes.
    for (dir, mode, mtime) in dirs.iter().rev() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode))
            .map_err(io_err("chmod", dir))?;
        set_mtime(dir, *mtime).map_err(io_err("set mtime of", dir))?;
    }
    Ok(())
}

/// Checks that every parent of `rel` is a directory (never a symlink) inside `dest` already
/// made by the bundle (`meta/` is made here).
fn check_parents(dest: &Path, rel: &Path, name: &Path, d: &str) -> Result<(), NodeError> {
    // Every parent must be a directory (never a symlink) inside `dest`.
    let mut parent = dest.to_path_buf();
    for c in rel.parent().into_iter().flat_map(|p| p.components()) {
        parent.push(c);
        match std::fs::symlink_metadata(&parent) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(NodeError::BadBundle {
                    digest: d.to_string(),
                    reason: format!("entry {name:?} lies under a non-directory"),
                })
            }
            Err(_) if rel.starts_with("meta") => {
                std::fs::create_dir(&parent).map_err(io_err("create", &parent))?;
            }
            Err(_) => {
                return Err(NodeError::BadBundle {
                    digest: d.to_string(),
                    reason: format!("entry {name:?} comes before its directory"),
                })
            }
        }
    }
    Ok(())
}

/// Where a bundle entry goes, for [`place`].
struct Place<'a> {
    dest: &'a Path,
    target: &'a Path,
    name: &'a Path,
    digest: &'a str,
    bundle: &'a Path,
}

/// Creates one bundle entry at `at.target`; returns a directory with its mode and mtime (set
/// after its children).
fn place<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    at: &Place<'_>,
) -> Result<Option<(PathBuf, u32, u64)>, NodeError> {
    let h = entry.header();
    let mode = h.mode().map_err(io_err("read", at.bundle))? & 0o7777;
    let mtime = h.mtime().map_err(io_err("read", at.bundle))?;
    match h.entry_type() {
        tar::EntryType::Directory => {
            std::fs::create_dir(at.target).map_err(io_err("create", at.target))?;
            return Ok(Some((at.target.to_path_buf(), mode, mtime)));
        }
        tar::EntryType::Regular => {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(at.target)
                .map_err(io_err("create", at.target))?;
            io::copy(entry, &mut out).map_err(io_err("write", at.target))?;
            drop(out);
            std::fs::set_permissions(at.target, std::fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", at.target))?;
            set_mtime(at.target, mtime).map_err(io_err("set mtime of", at.target))?;
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(io_err("read", at.bundle))?
                .ok_or_else(|| NodeError::BadBundle {
                    digest: at.digest.to_string(),
                    reason: format!("symlink {:?} without a target", at.name),
                })?
                .into_owned();
            std::os::unix::fs::symlink(&link, at.target).map_err(io_err("create", at.target))?;
            set_mtime(at.target, mtime).map_err(io_err("set mtime of", at.target))?;
        }
        tar::EntryType::Link => {
            let first = entry
                .link_name()
                .map_err(io_err("read", at.bundle))?
                .map(|l| checked_name(&l, at.digest))
                .transpose()?
                .ok_or_else(|| NodeError::BadBundle {
                    digest: at.digest.to_string(),
                    reason: format!("hard link {:?} without a target", at.name),
                })?;
            let first = at.dest.join(first);
            let is_file = std::fs::symlink_metadata(&first).is_ok_and(|m| m.is_file());
            if !is_file {
                return Err(NodeError::BadBundle {
                    digest: at.digest.to_string(),
                    reason: format!("hard link {:?} does not point at an earlier file", at.name),
                });
            }
            std::fs::hard_link(&first, at.target).map_err(io_err("link", at.target))?;
        }
        kind @ (tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) => {
            make_node(h, kind, at, mode)?;
            set_mtime(at.target, mtime).map_err(io_err("set mtime of", at.target))?;
        }
        other => {
            return Err(NodeError::BadBundle {
                digest: at.digest.to_string(),
                reason: format!("entry {:?} has unsupported type {other:?}", at.name),
            })
        }
    }
    Ok(None)
}

/// A device node or fifo of type `kind` (numbers from `h`) at `at.target`, with `mode`.
fn make_node(
    h: &tar::Header,
    kind: tar::EntryType,
    at: &Place<'_>,
    mode: u32,
) -> Result<(), NodeError> {
    let ft = match kind {
        tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
        tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
        _ => rustix::fs::FileType::Fifo,
    };
    let dev = if ft == rustix::fs::FileType::Fifo {
        0
    } else {
        let major = h.device_major().map_err(io_err("read", at.bundle))?;
        let minor = h.device_minor().map_err(io_err("read", at.bundle))?;
        rustix::fs::makedev(major.unwrap_or(0), minor.unwrap_or(0))
    };
    rustix::fs::mknodat(CWD, at.target, ft, rustix::fs::Mode::empty(), dev)
        .map_err(|e| io_err("create", at.target)(e.into()))?;
    std::fs::set_permissions(at.target, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("chmod", at.target))
}

/// The `SCHILY.xattr.*` records of a bundle entry (name, value).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                out.push((k.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("src/deep")).unwrap();
        std::fs::create_dir_all(r.join("secret")).unwrap();
        std::fs::write(r.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        std::fs::write(r.join("src/main.c"), "int main(){}\n").unwrap();
        std::fs::write(r.join("src/deep/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            r.join("src/deep/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(r.join("secret/key"), "do not send").unwrap();
        std::fs::write(r.join("notes.log"), "ignored").unwrap();
        std::fs::write(r.join(".dockerignore"), "secret\n*.log\n").unwrap();
        symlink("src/main.c", r.join("link")).unwrap();
        for p in [
            "src/main.c",
            "src/deep/run.sh",
            "Dockerfile",
            "src/deep",
            "src",
            ".",
        ] {
            set_mtime(&r.join(p), 1_000_000).unwrap();
        }
        set_mtime(&r.join("link"), 1_000_001).unwrap();
        t
    }

    fn listing(root: &Path) -> Vec<String> {
        let ctx = BuildContext::open(root, &root.join("Dockerfile")).unwrap();
        ctx.resolve_copy(&[".".to_string()], "/")
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {:?} {:o} {}", e.dest, e.kind, e.mode, e.mtime))
            .collect()
    }

    #[test]
    fn pack_is_deterministic_and_unpacks_to_the_same_context() {
        let t = tree();
        let ctx = BuildContext::open(t.path(), &t.path().join("Dockerfile")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let a = pack(&ctx, &out.path().join("a")).unwrap();
        let b = pack(&ctx, &out.path().join("b")).unwrap();
        assert_eq!(a, b, "same context, same bundle");
        assert_eq!(
            std::fs::read(out.path().join("a")).unwrap(),
            std::fs::read(out.path().join("b")).unwrap()
        );
        assert_eq!(
            Digest::of(&std::fs::read(out.path().join("a")).unwrap()),
            a.digest
        );

        let dest = out.path().join("unpacked");
        std::fs::create_dir(&dest).unwrap();
        unpack(&out.path().join("a"), &a.digest, &dest).unwrap();
        // Excluded files never left this machine.
        assert!(!dest.join("root/secret").exists());
        assert!(!dest.join("root/notes.log").exists());
        assert_eq!(
            std::fs::read_to_string(dest.join(IGNORE_ENTRY)).unwrap(),
            "secret\n*.log\n"
        );
        // Opened with the same rules, the unpacked context lists what the original does, with
        // the same modes and mtimes.
        std::fs::copy(
            dest.join(IGNORE_ENTRY),
            out.path().join("Dockerfile.dockerignore"),
        )
        .unwrap();
        let root = dest.join(ROOT_ENTRY);
        let there = BuildContext::open(&root, &out.path().join("Dockerfile")).unwrap();
        let remote: Vec<String> = there
            .resolve_copy(&[".".to_string()], "/")
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {:?} {:o} {}", e.dest, e.kind, e.mode, e.mtime))
            .collect();
        assert_eq!(remote, listing(t.path()));
        assert_eq!(
            std::fs::symlink_metadata(&root).unwrap().mtime(),
            std::fs::symlink_metadata(t.path()).unwrap().mtime()
        );

        // A changed file changes the digest; a change in an ignored file does not.
        std::fs::write(t.path().join("notes.log"), "still ignored").unwrap();
        let c = pack(&ctx, &out.path().join("c")).unwrap();
        assert_eq!(c.digest, a.digest);
        std::fs::write(t.path().join("src/main.c"), "int main(){return 1;}\n").unwrap();
        set_mtime(&t.path().join("src/main.c"), 1_000_000).unwrap();
        let d = pack(&ctx, &out.path().join("d")).unwrap();
        assert_ne!(d.digest, a.digest);
    }

    /// Issue 18: hard links, device nodes, fifos and xattrs of the context reach the node as
    /// they are here.
    #[test]
    fn special_files_travel_to_the_node() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::write(r.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(r.join("a"), "a").unwrap();
        std::fs::hard_link(r.join("a"), r.join("b")).unwrap();
        let fifo = rustix::fs::FileType::Fifo;
        rustix::fs::mknodat(CWD, r.join("p"), fifo, rustix::fs::Mode::empty(), 0).unwrap();
        let chr = rustix::fs::FileType::CharacterDevice;
        let dev = rustix::fs::makedev(1, 3);
        rustix::fs::mknodat(CWD, r.join("null"), chr, rustix::fs::Mode::empty(), dev).unwrap();
        let flags = rustix::fs::XattrFlags::empty();
        rustix::fs::setxattr(r.join("a"), "user.k", b"v", flags).unwrap();
        let ctx = BuildContext::open(r, &r.join("Dockerfile")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let a = pack(&ctx, &out.path().join("a")).unwrap();
        let dest = out.path().join("unpacked");
        std::fs::create_dir(&dest).unwrap();
        unpack(&out.path().join("a"), &a.digest, &dest).unwrap();
        let md = |n: &str| std::fs::symlink_metadata(dest.join("root").join(n)).unwrap();
        assert_eq!(md("a").ino(), md("b").ino());
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &md("p").file_type()
        ));
        assert_eq!(md("null").rdev(), dev);
        let got = crate::layer::file_xattrs(&dest.join("root/a")).unwrap();
        assert_eq!(got, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    }

    #[test]
    fn hostile_bundles_are_refused() {
        let out = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        let make = |entries: &[(&str, tar::EntryType, &str)]| -> PathBuf {
            n.set(n.get() + 1);
            let path = out.path().join(format!("b{}", n.get()));
            let f = File::create(&path).unwrap();
            let mut tar = tar::Builder::new(zstd::Encoder::new(f, 3).unwrap().auto_finish());
            for (name, kind, body) in entries {
                let mut h = header(*kind, 0o755, 0, body.len() as u64);
                if *kind == tar::EntryType::Symlink {
                    h.set_size(0);
                    tar.append_link(&mut h, name, body).unwrap();
                } else {
                    // Raw names so that `..` reaches the archive as written.
                    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                    h.set_cksum();
                    tar.append(&h, body.as_bytes()).unwrap();
                }
            }
            tar.into_inner().unwrap();
            path
        };
        let d = Digest::of(b"x");
        let cases: Vec<(PathBuf, &str)> = vec![
            (
                make(&[("root/../../etc/x", tar::EntryType::Regular, "x")]),
                "leaves the bundle",
            ),
            (
                make(&[
                    ("root", tar::EntryType::Directory, ""),
                    ("root/l", tar::EntryType::Symlink, "/etc"),
                    ("root/l/passwd", tar::EntryType::Regular, "x"),
                ]),
                "under a non-directory",
            ),
            (
                make(&[
                    ("root", tar::EntryType::Directory, ""),
                    ("root/a/b", tar::EntryType::Regular, "x"),
                ]),
                "before its directory",
            ),
            (
                make(&[("other", tar::EntryType::Regular, "x")]),
                "unexpected entry",
            ),
        ];
        for (i, (bundle, says)) in cases.iter().enumerate() {
            let dest = out.path().join(format!("u{i}"));
            std::fs::create_dir(&dest).unwrap();
            let e = unpack(bundle, &d, &dest).unwrap_err();
            assert!(e.to_string().contains(says), "{says}: {e}");
        }
        assert!(!Path::new("/etc/x").exists());
    }
}
