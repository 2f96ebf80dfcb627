//! OCI whiteouts turned into overlayfs form, so that the extracted layer can be an overlayfs
//! lower directory as is (image-spec `layer.md` "Whiteouts", kernel `overlayfs.rst`).
//!
//! Level of `unpack/`: above the root and the attributes; creates only whiteout devices and the
//! opaque xattr.

use rustix::fs::{AtFlags, FileType, Mode, XattrFlags};
use rustix::io::Errno;

use super::attrs::{AtKind, Attrs, Shortfall, Target};
use super::root::{os, Root};
use crate::layer::{LayerError, OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX};

/// An OCI whiteout entry `<parents>/.wh.<hidden>`, turned into overlayfs form.
pub(super) fn whiteout(
    root: &Root<'_>,
    entry: &str,
    parents: &[&[u8]],
    hidden: &[u8],
    attrs: &Attrs,
) -> Result<Shortfall, LayerError> {
    let dir = root.parent(entry, parents)?;
    if hidden == &WHITEOUT_OPAQUE.as_bytes()[WHITEOUT_PREFIX.len()..] {
        // overlayfs.rst: "A directory is made opaque by setting the xattr
        // trusted.overlay.opaque to y".
        return rustix::fs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
            .map(|()| Shortfall::default())
            .map_err(|e| root.extract_err(entry, e));
    }
    if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
        // `.wh..wh.*` other than the opaque marker is aufs metadata (layer.md reserves the
        // prefix); it means nothing to overlayfs.
        return Ok(Shortfall::default());
    }
    if hidden.is_empty() || hidden == b"." || hidden == b".." {
        return Err(root.unsafe_entry(entry, "whiteout of an invalid name"));
    }
    let name = os(hidden);
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        // layer.md: "Whiteout files MUST only apply to resources in lower/parent layers. Files
        // that are present in the same layer as a whiteout file can only be hidden by whiteout
        // files in subsequent layers." The entry of this layer stays; a directory of this layer
        // must still hide the lower one's contents, which overlayfs does for an opaque one.
        Ok(st) => {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                root.mark_opaque(&dir, name)
                    .map_err(|e| root.extract_err(entry, e))?;
            }
            return Ok(Shortfall::default());
        }
        Err(Errno::NOENT) => {}
        Err(e) => return Err(root.extract_err(entry, e)),
    }
    // overlayfs.rst: "A whiteout is created as a character device with 0/0 device number".
    rustix::fs::mknodat(
        &dir,
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .map_err(|e| root.extract_err(entry, e))?;
    let attrs = Attrs {
        xattrs: Vec::new(),
        ..*attrs
    };
    attrs.apply(
        root,
        entry,
        Target::At {
            dir: &dir,
            name,
            kind: AtKind::Other,
        },
    )
}
