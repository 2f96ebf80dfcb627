//! Reading a file's extended attributes (xattr(7)) without following a final symlink: the
//! primitives the layer writer uses, and the set a copy of the file should carry.
//!
//! Level 1, file metadata only. Must not set xattrs (the sandbox and the extraction do).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::TRUSTED_XATTR_PREFIX;

/// The xattrs (name, value) a copy of `path` carries into a layer, sorted by name: every
/// namespace (`security.capability`, `user.*`, `system.posix_acl_*`, ...) but `trusted.*`
/// (host bookkeeping, overlayfs' own). A filesystem without xattr support has none; one removed
/// between listing and reading is left out.
///
/// Errors: the `llistxattr`/`lgetxattr` error.
pub fn file_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match list_xattrs(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if name.starts_with(TRUSTED_XATTR_PREFIX.as_bytes()) {
            continue;
        }
        match get_xattr(path, &name) {
            Ok(value) => out.push((name, value)),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// `llistxattr(2)`: the xattr names of `path`, not following a final symlink.
pub(super) fn list_xattrs(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    loop {
        let size = rustix::fs::llistxattr_query(path)?;
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            // The list grew between the two calls: ask again.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `lgetxattr(2)`: the value of xattr `name` of `path`, not following a final symlink.
pub(super) fn get_xattr(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let name = std::ffi::OsStr::from_bytes(name);
    loop {
        let size = rustix::fs::lgetxattr_query(path, name)?;
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
