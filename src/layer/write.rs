//! Capture: an overlayfs upper directory → a deterministic tar stream → compressed (gzip, zstd
//! or not), hashed on the way.
//!
//! Tar format: POSIX ustar headers (IEEE 1003.1-2001 `pax`), with a PAX extended header
//! (`typeflag 'x'`) before an entry only when it needs one: a name or link target longer than
//! the 100-byte ustar fields, ids or sizes too large for their octal fields, and xattrs as
//! `SCHILY.xattr.<name>` records (the spelling GNU tar, libarchive and Go's archive/tar read).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::compression::Compressor;
use super::exact::{ExactEntry, SpecialNode};
use super::xattrs::{get_xattr, list_xattrs};
use super::{
    LayerBlob, LayerError, LayerOptions, OVERLAY_OPAQUE_XATTR, TRUSTED_XATTR_PREFIX,
    WHITEOUT_OPAQUE, WHITEOUT_PREFIX,
};
use crate::oci::DigestWriter;

/// Size of a tar block; headers and data are padded to it.
const BLOCK: usize = 512;
/// Largest value of an 8-byte octal header field (7 digits + NUL): uid, gid.
const MAX_OCTAL_8: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal header field (11 digits + NUL): size, mtime.
const MAX_OCTAL_12: u64 = 0o77_777_777_777;
/// The ustar `name` and `linkname` field width.
const NAME_FIELD: usize = 100;

/// Overlayfs xattrs meaning the upper entry is not self-contained: its data or its directory
/// contents live under another path of a lower layer (kernel overlayfs.rst "Redirect dir",
/// "Metadata only copy up"). A layer made from the upper directory alone would be wrong.
const UNSUPPORTED_OVERLAY_XATTRS: [&str; 2] =
    ["trusted.overlay.redirect", "trusted.overlay.metacopy"];

/// Writes the overlayfs upper directory `upper` as a gzip-compressed OCI layer to `out`.
///
/// Entries are written depth-first, siblings in byte order of their names, a directory before its
/// contents; the directory `upper` itself is not an entry. Each entry keeps its mode (including
/// setuid/setgid/sticky), numeric uid/gid (user and group names left empty), and mtime in whole
/// seconds, clamped to `opts.source_date_epoch` when set; atime and ctime are not recorded.
/// Xattrs are kept as PAX `SCHILY.xattr.*` records (`security.capability`, `user.*`, ...), except
/// the `trusted.*` namespace (overlayfs' own and other host bookkeeping). Files sharing an inode become
/// one regular entry (the first in walk order) and hardlink entries to it. Sockets are skipped
/// (a tar cannot hold them). Overlay whiteouts (character devices 0/0) become empty regular
/// files `.wh.<name>`, and an opaque directory (`trusted.overlay.opaque=y`) is followed by a
/// `<dir>/.wh..wh..opq` entry (image-spec `layer.md` "Whiteouts").
///
/// The tar is compressed as `opts.compression` says, on `opts.threads` threads: gzip in
/// parallel blocks as one standard member with mtime 0, no file name and OS byte 255
/// ("unknown", RFC 1952), or zstd, or not at all; equal trees give equal bytes whatever the
/// thread count. The diff_id (sha256 of the tar), the blob digest and the blob size
/// are computed while streaming; nothing is buffered beyond the compressor's window.
///
/// Errors: [`LayerError::Source`] when a file cannot be read (or changed size while read),
/// [`LayerError::UnsupportedOverlay`] for `redirect`/`metacopy` xattrs, [`LayerError::Write`]
/// when `out` fails.
pub fn write_layer(
    upper: &Path,
    out: impl Write,
    opts: &LayerOptions,
) -> Result<LayerBlob, LayerError> {
    let compressed = DigestWriter::new(out);
    let gz = Compressor::new(compressed, opts.compression, opts.threads).map_err(write_err)?;
    let tar = write_tar(upper, DigestWriter::new(gz), opts)?;
    let (gz, diff_id, _) = tar.finish();
    let compressed = gz.finish().map_err(write_err)?;
    let (mut out, digest, size) = compressed.finish();
    out.flush().map_err(write_err)?;
    Ok(LayerBlob {
        diff_id,
        digest,
        size,
        media_type: opts.compression.media_type().to_string(),
    })
}

/// The BLAKE3 hash (64 lowercase hex digits) of the tar stream [`write_layer`] would write
/// for `upper` with `opts`: equal trees, equal fingerprints, as with the diff_id, but made
/// without compressing and without sha256 (BLAKE3 runs several times faster), so that a
/// caller can find out whether it already made that layer before spending the compression.
///
/// Errors: as [`write_layer`].
pub fn layer_fingerprint(upper: &Path, opts: &LayerOptions) -> Result<String, LayerError> {
    let mut hasher = write_tar(upper, TreeHasher::default(), opts)?;
    hasher.hash_buffered();
    Ok(hasher.hasher.finalize().to_hex().to_string())
}

/// BLAKE3 over what is written, in pieces of [`TreeHasher::PIECE`] hashed on every core (its
/// tree allows it; the tar writer's 64 KiB writes alone would keep it on one).
#[derive(Default)]
struct TreeHasher {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl TreeHasher {
    const PIECE: usize = 4 << 20;

    fn hash_buffered(&mut self) {
        self.hasher.update_rayon(&self.buf);
        self.buf.clear();
    }
}

impl Write for TreeHasher {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(Self::PIECE);
        }
        let n = data.len().min(Self::PIECE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == Self::PIECE {
            self.hash_buffered();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes the tar stream of `upper` to `out`; returns `out`.
fn write_tar<W: Write>(upper: &Path, out: W, opts: &LayerOptions) -> Result<W, LayerError> {
    let mut tar = TarWriter {
        out,
        epoch: opts.source_date_epoch,
        links: HashMap::new(),
        exact: opts
            .exact
            .iter()
            .map(|e| (e.path.trim_matches('/').as_bytes().to_vec(), e))
            .collect(),
        buf: vec![0; 64 * 1024],
    };
    tar.walk(upper, &[])?;
    for left in tar.exact.keys() {
        // The step removed or moved it after it was made: nothing of it is in the layer.
        tracing::debug!(path = %String::from_utf8_lossy(left), "exact entry not in the layer");
    }
    // End of archive: two zero blocks (POSIX ustar).
    tar.out.write_all(&[0; 2 * BLOCK]).map_err(write_err)?;
    Ok(tar.out)
}

fn write_err(source: io::Error) -> LayerError {
    LayerError::Write { source }
}

fn source_err(path: &Path) -> impl FnOnce(io::Error) -> LayerError + '_ {
    move |source| LayerError::Source {
        path: path.to_path_buf(),
        source,
    }
}

/// Xattr (name, value) pairs, sorted by name.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What goes into one tar header (plus its PAX records).
struct EntryMeta {
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<Vec<u8>>,
    device: Option<(u32, u32)>,
    xattrs: Xattrs,
}

impl EntryMeta {
    fn new(kind: EntryType, md: &fs::Metadata, epoch: Option<u64>) -> Self {
        // Negative mtimes (before 1970) are stored as 0: ustar has no sign.
        let mut mtime = u64::try_from(md.mtime()).unwrap_or(0);
        if let Some(epoch) = epoch {
            mtime = mtime.min(epoch);
        }
        EntryMeta {
            kind,
            mode: md.mode() & 0o7777,
            uid: u64::from(md.uid()),
            gid: u64::from(md.gid()),
            mtime,
            size: 0,
            link: None,
            device: None,
            xattrs: Vec::new(),
        }
    }
}

struct TarWriter<'o, W: Write> {
    out: W,
    epoch: Option<u64>,
    /// (st_dev, st_ino) → archive name of the first path seen for a multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Archive name (no trailing `/`) → what the layer must say of it instead of the disk;
    /// taken out as it is used.
    exact: HashMap<Vec<u8>, &'o ExactEntry>,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<'_, W> {
    /// Emits the entries below `dir`, whose archive name prefix is `prefix` (empty or ending
    /// in `/`).
    fn walk(&mut self, dir: &Path, prefix: &[u8]) -> Result<(), LayerError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(source_err(dir))? {
            names.push(entry.map_err(source_err(dir))?.file_name());
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

        for name in names {
            self.entry(dir, prefix, &name)?;
        }
        Ok(())
    }

    /// Emits the entry `name` of `dir` (a directory with everything below it).
    fn entry(&mut self, dir: &Path, prefix: &[u8], name: &OsStr) -> Result<(), LayerError> {
        let path = dir.join(name);
        let md = fs::symlink_metadata(&path).map_err(source_err(&path))?;
        let ft = md.file_type();
        let mut arc = prefix.to_vec();
        arc.extend_from_slice(name.as_bytes());

        if ft.is_socket() {
            // A tar cannot hold a socket; it is recreated by whoever listens on it.
            return Ok(());
        }
        if ft.is_char_device() && md.rdev() == 0 {
            return self.whiteout(prefix, name, &md);
        }

        let (mut xattrs, opaque) = read_xattrs(&path)?;
        let exact = self.exact.remove(&arc);
        if let Some(x) = exact {
            // What the filesystem could not hold, as the source had it.
            for (k, v) in &x.xattrs {
                xattrs.retain(|(name, _)| name != k);
                xattrs.push((k.clone(), v.clone()));
            }
            xattrs.sort();
        }

        if ft.is_dir() {
            return self.directory(&path, arc, &md, xattrs, opaque);
        }
        if let Some(node) = exact.and_then(|x| x.node) {
            if ft.is_file() && md.len() == 0 {
                return self.special(&arc, &md, node, xattrs);
            }
        }

        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                let mut meta = EntryMeta::new(EntryType::Link, &md, self.epoch);
                meta.link = Some(first.clone());
                return self.emit(&arc, &meta, None);
            }
            self.links.insert(key, arc.clone());
        }
        self.non_directory(&path, &arc, &md, xattrs)
    }

    /// An overlay whiteout `name` (in the directory of archive prefix `prefix`) as its OCI form.
    fn whiteout(
        &mut self,
        prefix: &[u8],
        name: &OsStr,
        md: &fs::Metadata,
    ) -> Result<(), LayerError> {
        // overlayfs.rst: "A whiteout is created as a character device with 0/0 device
        // number". OCI form: an empty regular file `.wh.<name>` (layer.md "Whiteouts").
        // Whiteouts may share one inode (overlayfs links them to a shared whiteout), so
        // they never take part in hardlink detection.
        let mut wh = prefix.to_vec();
        wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
        wh.extend_from_slice(name.as_bytes());
        let meta = EntryMeta::new(EntryType::Regular, md, self.epoch);
        self.emit(&wh, &meta, None)
    }

    /// A directory entry `arc` (then its opaque marker, if any), then everything below it.
    fn directory(
        &mut self,
        path: &Path,
        mut arc: Vec<u8>,
        md: &fs::Metadata,
        xattrs: Xattrs,
        opaque: bool,
    ) -> Result<(), LayerError> {
        arc.push(b'/');
        let mut meta = EntryMeta::new(EntryType::Directory, md, self.epoch);
        meta.xattrs = xattrs;
        self.emit(&arc, &meta, None)?;
        if opaque {
            // layer.md "Opaque Whiteout": the marker follows its directory.
            let mut marker = arc.clone();
            marker.extend_from_slice(WHITEOUT_OPAQUE.as_bytes());
            let mut meta = EntryMeta::new(EntryType::Regular, md, self.epoch);
            meta.mode = 0o644;
            meta.uid = 0;
            meta.gid = 0;
            self.emit(&marker, &meta, None)?;
        }
        self.walk(path, &arc)
    }

    /// A device node or fifo that a placeholder (an empty regular file with its owner, mode and
    /// mtime) stands for on disk, as entry `arc`.
    fn special(
        &mut self,
        arc: &[u8],
        md: &fs::Metadata,
        node: SpecialNode,
        xattrs: Xattrs,
    ) -> Result<(), LayerError> {
        let (kind, device) = match node {
            SpecialNode::Char { major, minor } => (EntryType::Char, Some((major, minor))),
            SpecialNode::Block { major, minor } => (EntryType::Block, Some((major, minor))),
            SpecialNode::Fifo => (EntryType::Fifo, None),
        };
        let mut meta = EntryMeta::new(kind, md, self.epoch);
        meta.device = device;
        meta.xattrs = xattrs;
        self.emit(arc, &meta, None)
    }

    /// A regular file, symlink, device or fifo (first name of its inode) as entry `arc`.
    fn non_directory(
        &mut self,
        path: &Path,
        arc: &[u8],
        md: &fs::Metadata,
        xattrs: Xattrs,
    ) -> Result<(), LayerError> {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            EntryType::Regular
        } else if ft.is_symlink() {
            EntryType::Symlink
        } else if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else {
            EntryType::Fifo
        };
        let mut meta = EntryMeta::new(kind, md, self.epoch);
        meta.xattrs = xattrs;
        match kind {
            EntryType::Regular => {
                meta.size = md.len();
                let file = File::open(path).map_err(source_err(path))?;
                self.emit(arc, &meta, Some((file, path)))?;
            }
            EntryType::Symlink => {
                let target = fs::read_link(path).map_err(source_err(path))?;
                meta.link = Some(target.as_os_str().as_bytes().to_vec());
                self.emit(arc, &meta, None)?;
            }
            EntryType::Char | EntryType::Block => {
                let rdev = md.rdev();
                meta.device = Some((rustix::fs::major(rdev), rustix::fs::minor(rdev)));
                self.emit(arc, &meta, None)?;
            }
            _ => self.emit(arc, &meta, None)?,
        }
        Ok(())
    }

    /// Writes one entry: an optional PAX extended header, the ustar header, then `data` (exactly
    /// `meta.size` bytes) padded to a block.
    fn emit(
        &mut self,
        name: &[u8],
        meta: &EntryMeta,
        data: Option<(File, &Path)>,
    ) -> Result<(), LayerError> {
        let mut pax = Vec::new();
        let mut header = Header::new_ustar();
        let fields = header
            .as_ustar_mut()
            .expect("Header::new_ustar makes a ustar header");
        if name.len() > NAME_FIELD {
            pax_record(&mut pax, b"path", name);
        }
        copy_field(&mut fields.name, name);
        if let Some(link) = &meta.link {
            if link.len() > NAME_FIELD {
                pax_record(&mut pax, b"linkpath", link);
            }
            copy_field(&mut fields.linkname, link);
        }
        // uname/gname stay empty: ids are numeric only, so the host's /etc/passwd cannot leak
        // into the bytes.
        header.set_entry_type(meta.kind);
        header.set_mode(meta.mode);
        header.set_uid(clamped_id(&mut pax, b"uid", meta.uid, MAX_OCTAL_8));
        header.set_gid(clamped_id(&mut pax, b"gid", meta.gid, MAX_OCTAL_8));
        header.set_size(clamped_id(&mut pax, b"size", meta.size, MAX_OCTAL_12));
        header.set_mtime(clamped_id(&mut pax, b"mtime", meta.mtime, MAX_OCTAL_12));
        if let Some((major, minor)) = meta.device {
            header
                .set_device_major(major)
                .and_then(|()| header.set_device_minor(minor))
                .map_err(write_err)?;
        }
        for (key, value) in &meta.xattrs {
            let mut k = b"SCHILY.xattr.".to_vec();
            k.extend_from_slice(key);
            pax_record(&mut pax, &k, value);
        }
        header.set_cksum();

        if !pax.is_empty() {
            let mut ph = Header::new_ustar();
            // A fixed name keeps the bytes independent of the process (GNU tar's default
            // `%d/PaxHeaders.%p/%f` embeds the pid).
            copy_field(
                &mut ph.as_ustar_mut().expect("ustar header").name,
                b"PaxHeaders/entry",
            );
            ph.set_entry_type(EntryType::XHeader);
            ph.set_mode(0o644);
            ph.set_uid(0);
            ph.set_gid(0);
            ph.set_mtime(0);
            ph.set_size(pax.len() as u64);
            ph.set_cksum();
            self.out.write_all(ph.as_bytes()).map_err(write_err)?;
            self.out.write_all(&pax).map_err(write_err)?;
            self.pad(pax.len() as u64)?;
        }
        self.out.write_all(header.as_bytes()).map_err(write_err)?;

        if let Some((file, path)) = data {
            let mut reader = file.take(meta.size);
            let mut copied = 0u64;
            loop {
                let n = match reader.read(&mut self.buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(source_err(path)(e)),
                };
                self.out.write_all(&self.buf[..n]).map_err(write_err)?;
                copied += n as u64;
            }
            if copied != meta.size {
                // The header already promised `size` bytes; a shorter body would corrupt every
                // following entry.
                return Err(source_err(path)(io::Error::other(format!(
                    "file shrank from {} to {copied} bytes while being read",
                    meta.size
                ))));
            }
            self.pad(copied)?;
        }
        Ok(())
    }

    fn pad(&mut self, len: u64) -> Result<(), LayerError> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0; BLOCK][..BLOCK - rem])
                .map_err(write_err)?;
        }
        Ok(())
    }
}

/// Copies `value` into a fixed-width header field, truncated; a PAX record carries the full value
/// when it does not fit.
fn copy_field(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Returns `value` when it fits its octal field, else adds a PAX record and returns 0.
fn clamped_id(pax: &mut Vec<u8>, key: &[u8], value: u64, max: u64) -> u64 {
    if value <= max {
        value
    } else {
        pax_record(pax, key, value.to_string().as_bytes());
        0
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record
/// including its own digits (POSIX pax "pax Extended Header").
fn pax_record(pax: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    pax.extend_from_slice(len.to_string().as_bytes());
    pax.push(b' ');
    pax.extend_from_slice(key);
    pax.push(b'=');
    pax.extend_from_slice(value);
    pax.push(b'\n');
}

/// The xattrs of `path` (not following a symlink) to store in the layer, sorted by name, without
/// the `trusted.*` namespace; and whether it is an opaque overlay directory.
fn read_xattrs(path: &Path) -> Result<(Xattrs, bool), LayerError> {
    let names = match list_xattrs(path) {
        Ok(names) => names,
        // A filesystem without xattr support has none to keep.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok((Vec::new(), false))
        }
        Err(e) => return Err(source_err(path)(e)),
    };
    let mut out = Vec::new();
    let mut opaque = false;
    for name in names {
        if let Some(bad) = UNSUPPORTED_OVERLAY_XATTRS
            .iter()
            .find(|x| x.as_bytes() == name.as_slice())
        {
            return Err(LayerError::UnsupportedOverlay {
                path: path.to_path_buf(),
                xattr: (*bad).to_string(),
            });
        }
        if name == OVERLAY_OPAQUE_XATTR.as_bytes() {
            // "y" marks an opaque directory; other values ("x", kernel 6.7+) only flag
            // xattr-whiteouts inside and do not hide the lower directory.
            opaque = get_xattr(path, &name).map_err(source_err(path))? == b"y";
            continue;
        }
        if name.starts_with(TRUSTED_XATTR_PREFIX.as_bytes()) {
            // overlayfs' own and any other `trusted.*`: host bookkeeping, not the file's.
            continue;
        }
        let value = get_xattr(path, &name).map_err(source_err(path))?;
        out.push((name, value));
    }
    out.sort();
    Ok((out, opaque))
}
