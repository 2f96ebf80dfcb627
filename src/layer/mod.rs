//! Layers: a RUN/COPY step's filesystem changes as a deterministic OCI layer, and the safe
//! extraction of any OCI layer into a directory usable as an overlayfs lower layer.
//!
//! Level 1: synchronous file I/O only, no tokio. Both directions stream: a layer is never held
//! in memory, and its digests are computed while the bytes pass through.
//!
//! - [`write_layer`] walks an overlayfs *upper* directory (kernel
//!   `Documentation/filesystems/overlayfs.rst`) and writes a gzip-compressed tar whose bytes
//!   depend only on the tree (sorted walk, numeric ids, no atime/ctime, optional mtime clamp to
//!   `SOURCE_DATE_EPOCH`, fixed gzip header). Overlay whiteouts (0/0 character devices) and opaque
//!   directories (`trusted.overlay.opaque=y`) become OCI whiteouts (image-spec `layer.md`
//!   "Whiteouts"). Entries the directory could not hold exactly ([`ExactEntry`]: a device node
//!   the filesystem refused, xattrs it refused) are written as their source had them.
//! - [`unpack_layer`] does the reverse for any OCI/Docker layer media type: it extracts entries as
//!   if the destination were the root of a chroot (`openat2` with `RESOLVE_IN_ROOT`), so no entry
//!   name, hardlink target or symlink planted by an earlier entry can reach outside it, and turns
//!   OCI whiteouts back into overlay whiteouts.

use std::io;
use std::path::PathBuf;

use crate::exit::{Classify, ExitCode};
use crate::oci::{Descriptor, Digest};

mod compression;
mod exact;
mod pgzip;
mod unpack;
mod write;
mod xattrs;

#[cfg(test)]
mod fidelity_tests;
#[cfg(test)]
mod tests;

pub use compression::{default_threads, Compression, Compressor};
pub use exact::{summary as exact_summary, ExactEntry, SpecialNode};
pub use unpack::{unpack_layer, unpack_layer_exact, Unpacked};
pub use write::{layer_fingerprint, write_layer};
pub use xattrs::file_xattrs;

/// Prefix of an OCI whiteout file name: `.wh.<name>` deletes `<name>` of lower layers
/// (image-spec `layer.md` "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// Name of the OCI opaque-directory marker: `<dir>/.wh..wh..opq` hides every lower-layer entry
/// below `<dir>` (image-spec `layer.md` "Opaque Whiteout").
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";

/// The xattr overlayfs sets on an upper directory that hides the lower directories of the same
/// path (kernel `Documentation/filesystems/overlayfs.rst`, "whiteouts and opaque directories").
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Prefix of the xattrs overlayfs uses for its own bookkeeping; never copied into or out of a
/// layer.
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Prefix of the `trusted` xattr namespace (xattr(7)): only `CAP_SYS_ADMIN` may read or set it,
/// and it holds the host's own bookkeeping (overlayfs, other filesystems), so it is never
/// written into a layer nor set from one (BuildKit and containerd leave it out as well).
pub const TRUSTED_XATTR_PREFIX: &str = "trusted.";

/// How [`write_layer`] writes a layer (default: no mtime clamp, gzip level 6, every core, no
/// exact entries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// `SOURCE_DATE_EPOCH`, seconds since the Unix epoch: when set, every entry's mtime is
    /// `min(mtime, epoch)` so that rebuilding at another time gives the same bytes
    /// (reproducible-builds.org "SOURCE_DATE_EPOCH").
    pub source_date_epoch: Option<u64>,
    /// How the tar is compressed (gzip level 6 by default). The bytes of a layer depend on it,
    /// so it is part of what makes a build reproducible.
    pub compression: Compression,
    /// Threads to compress on (0: every core). The bytes do not depend on it.
    pub threads: usize,
    /// Entries the directory holds differently from what the layer must say (a placeholder for
    /// a device node the filesystem refused, xattrs it could not hold): written as the
    /// [`ExactEntry`] says. Empty by default.
    pub exact: Vec<ExactEntry>,
}

/// A layer blob written by [`write_layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar: the image config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    /// sha256 of the compressed blob: the manifest's layer descriptor digest.
    pub digest: Digest,
    /// Size of the compressed blob, in bytes.
    pub size: u64,
    /// The blob's media type: `application/vnd.oci.image.layer.v1.tar+gzip`, `+zstd`, or
    /// `.tar` uncompressed.
    pub media_type: String,
}

impl LayerBlob {
    /// The manifest layer descriptor for this blob (image-spec `manifest.md` `layers`).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// Errors from writing or extracting a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A file of the directory being captured could not be read.
    #[error("cannot read {path} for the layer: {source}")]
    Source {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The upper directory uses an overlayfs feature whose changes cannot be expressed as a
    /// layer from the upper directory alone (`redirect_dir`, `metacopy`).
    #[error("{path} carries the overlayfs xattr {xattr}: mount the overlay without redirect_dir and metacopy")]
    UnsupportedOverlay {
        /// The entry carrying the xattr.
        path: PathBuf,
        /// The xattr name.
        xattr: String,
    },
    /// The output stream of [`write_layer`] failed.
    #[error("cannot write the layer stream: {source}")]
    Write {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The input stream of [`unpack_layer`] could not be read, decompressed or parsed as tar.
    #[error("cannot read the layer stream: {source}")]
    Read {
        /// The I/O, decompression or tar format error.
        #[source]
        source: io::Error,
    },
    /// A layer media type that names no compression polyarch can read.
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type as given.
        media_type: String,
    },
    /// A tar entry that cannot be placed inside the destination (its name is only `..`, its
    /// hardlink target is missing, a parent is a dangling symlink, ...).
    #[error("unsafe layer entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry name as stored in the tar.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// A tar entry of a type a layer cannot contain.
    #[error("unsupported layer entry {entry:?} of tar type {kind:?}")]
    UnsupportedEntry {
        /// The entry name as stored in the tar.
        entry: String,
        /// The tar type flag.
        kind: char,
    },
    /// The destination directory could not be opened.
    #[error("cannot open the extraction directory {path}: {source}")]
    Destination {
        /// The destination directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Creating an entry inside the destination failed.
    #[error("cannot extract layer entry {entry:?} into {dest}: {source}")]
    Extract {
        /// The entry name as stored in the tar.
        entry: String,
        /// The destination directory.
        dest: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Classify for LayerError {
    fn exit_code(&self) -> ExitCode {
        match self {
            LayerError::Read { .. }
            | LayerError::UnsupportedMediaType { .. }
            | LayerError::UnsafeEntry { .. }
            | LayerError::UnsupportedEntry { .. } => ExitCode::BadInput,
            LayerError::Source { .. }
            | LayerError::UnsupportedOverlay { .. }
            | LayerError::Write { .. }
            | LayerError::Destination { .. }
            | LayerError::Extract { .. } => ExitCode::Host,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LayerError::UnsupportedOverlay { .. } => {
                Some("mount overlayfs with redirect_dir=off,metacopy=off".into())
            }
            _ => None,
        }
    }
}
