//! Extraction: a layer stream → decompress → hash → tar entries placed inside a root directory
//! that they cannot leave.
//!
//! Every name is resolved relative to the destination as if it were `/` of a chroot:
//! parent directories through `openat2(2)` with `RESOLVE_IN_ROOT` (so `..`, absolute names and
//! symlinks planted by earlier entries, absolute or relative, all stay inside) and
//! `RESOLVE_NO_MAGICLINKS`; the final component is created with `*at` calls relative to that
//! parent's descriptor, never through a symlink (`O_NOFOLLOW`, `O_EXCL`, `AT_SYMLINK_NOFOLLOW`).
//! The `tar` crate only parses the stream; its `unpack` (host-path canonicalisation) is not used.
//!
//! Level 1, synchronous file I/O. Files, bottom up: `root.rs` (the destination, names resolved
//! inside it, the errors that name an entry), `attrs.rs` (owner, mode, mtime and xattrs, read
//! and applied), `whiteout.rs` (OCI whiteouts into overlayfs form), `extract.rs` (one function
//! per entry type, directory mtimes last); this file reads the stream: decompression, hashing
//! and the tar entries in order.

mod attrs;
mod extract;
mod root;
mod whiteout;

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{ExactEntry, LayerError};
use crate::oci::Digest;
use extract::Extractor;
use root::{read_err, Root};

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Maps a layer media type to its compression: OCI `application/vnd.oci.image.layer.v1.tar`
/// `[+gzip|+zstd]` (also the `nondistributable` variants, image-spec `layer.md`) and Docker
/// `application/vnd.docker.image.rootfs[.foreign].diff.tar[.gzip]`.
fn compression_of(media_type: &str) -> Result<Compression, LayerError> {
    let mt = media_type.split(';').next().unwrap_or("").trim();
    let known = mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.");
    let compression = if !known {
        None
    } else if mt.ends_with("tar+gzip") || mt.ends_with(".tar.gzip") {
        Some(Compression::Gzip)
    } else if mt.ends_with("tar+zstd") || mt.ends_with(".tar.zstd") {
        Some(Compression::Zstd)
    } else if mt.ends_with(".tar") {
        Some(Compression::None)
    } else {
        None
    };
    compression.ok_or_else(|| LayerError::UnsupportedMediaType {
        media_type: media_type.to_string(),
    })
}

/// A `Read` adapter hashing (sha256) every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Extracts the layer read from `reader` (compressed as `media_type` says: tar, tar+gzip,
/// tar+zstd, OCI or Docker spelling) into `dest`, an existing and normally empty directory, and
/// returns the layer's diff_id: the sha256 of the whole uncompressed stream, read to its end.
///
/// Placement is confined to `dest` whatever the entries say (see the module docs): `..` cannot
/// climb above it, absolute names are rooted at it, and symlinks made by earlier entries are
/// followed only within it. An existing entry is replaced by a new one of the same name, except
/// that a directory meeting a directory is kept and takes the new metadata. Mode (with
/// setuid/setgid/sticky), numeric uid/gid (`lchown`), mtime, xattrs (except `trusted.*`,
/// which a layer must not be able to set), device nodes and fifos are preserved. Missing parent
/// directories are created (mode 0755, owned by the caller).
///
/// OCI whiteouts become overlayfs form, so `dest` can be an overlay lowerdir as is
/// (image-spec `layer.md` "Whiteouts", kernel `overlayfs.rst`): `.wh.<name>` becomes a 0/0
/// character device `<name>` (skipped when `<name>` already came from this same layer, which a
/// whiteout never hides; a directory of this layer of that name is made opaque instead, and so
/// is a directory this layer makes over its own whiteout, since the whiteout deleted the lower
/// one), `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory wherever it comes in
/// the stream, and other `.wh..wh.*` names (aufs bookkeeping) are ignored. Needs root (mknod,
/// trusted xattrs, chown).
///
/// Errors: [`LayerError::UnsupportedMediaType`], [`LayerError::Read`] for a corrupt or truncated
/// stream, [`LayerError::UnsafeEntry`] for an entry that cannot be placed inside `dest` (a name
/// that is only `..`, a missing hardlink target, a parent that is a file or a dangling symlink),
/// [`LayerError::UnsupportedEntry`] for tar types a layer cannot hold, and
/// [`LayerError::Destination`] / [`LayerError::Extract`] for host failures.
pub fn unpack_layer(
    reader: impl Read,
    media_type: &str,
    dest: &Path,
) -> Result<Digest, LayerError> {
    let unpacked = unpack_layer_exact(reader, media_type, dest)?;
    if let Some(summary) = super::exact_summary(&unpacked.inexact) {
        // Once per layer: the layer blob keeps every entry; only the unpacked copy that steps
        // run on lacks these.
        tracing::warn!(dest = %dest.display(), "{summary}");
    }
    Ok(unpacked.diff_id)
}

/// What [`unpack_layer_exact`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The layer's diff_id (sha256 of the uncompressed stream).
    pub diff_id: Digest,
    /// Entries the destination's filesystem could not hold exactly (a device node it refused,
    /// now an empty regular file with the entry's owner, mode and mtime; xattrs it refused), in
    /// stream order, paths relative to `dest`.
    pub inexact: Vec<ExactEntry>,
    /// The directories (relative to `dest`, `""` for `dest` itself, sorted) in which the layer
    /// put a whiteout. overlayfs lists a whiteout in a directory that only one layer of the
    /// stack has (its readdir passes such a directory through unmerged), so whoever stacks
    /// layers needs them (see `Store::lowerdirs`).
    pub whiteout_dirs: Vec<String>,
    /// Whether the stream held any `.wh.` entry (a whiteout, an opaque marker, aufs
    /// bookkeeping): without one, the tree is the same in lowerdir and upperdir form.
    pub has_whiteouts: bool,
}

/// [`unpack_layer`], also returning the entries the filesystem could not hold exactly instead
/// of logging them: where `mknod` is refused (`EPERM`, `EOPNOTSUPP`, `EINVAL`) an empty regular
/// file stands in for the node, and xattrs the filesystem does not support (or `user.*` on a
/// symlink, which Linux forbids) are left off; both are listed in [`Unpacked::inexact`] so a
/// caller that writes the tree into a layer again can keep them exactly.
///
/// Errors: as [`unpack_layer`].
pub fn unpack_layer_exact(
    reader: impl Read,
    media_type: &str,
    dest: &Path,
) -> Result<Unpacked, LayerError> {
    let compression = compression_of(media_type)?;
    let root = Root::open(dest)?;
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        // Multi-member: a gzip stream may be several concatenated members (RFC 1952 2.2), as
        // parallel compressors write.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader).map_err(read_err)?),
    };
    let mut hashed = HashingReader {
        inner: decoded,
        hasher: Sha256::new(),
    };
    let mut extractor = Extractor::new(root);
    {
        let mut archive = tar::Archive::new(&mut hashed);
        for entry in archive.entries().map_err(read_err)? {
            let mut entry = entry.map_err(read_err)?;
            extractor.entry(&mut entry)?;
        }
    }
    // The diff_id covers the whole uncompressed stream, including the end-of-archive blocks and
    // any padding after them, exactly as a registry client would hash it.
    io::copy(&mut hashed, &mut io::sink()).map_err(read_err)?;
    extractor.finish()?;
    Ok(Unpacked {
        diff_id: Digest::from_hasher(hashed.hasher),
        inexact: extractor.inexact,
        whiteout_dirs: extractor
            .whiteout_dirs
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect(),
        has_whiteouts: extractor.has_whiteouts,
    })
}
