//! Snapshotters: how the helper captures a step's filesystem changes as an overlayfs-style upper
//! directory (the step's diff, which `layer::write_layer` turns into a layer).
//!
//! - **overlay**: the root filesystem is an overlayfs mount (`lowerdir` = the image layers,
//!   `upperdir` = the diff), so the kernel records the changes as they happen.
//! - **copy**: for hosts where overlayfs cannot be mounted (the state directory is on a
//!   filesystem overlayfs refuses as upper, such as overlayfs itself; the kernel lacks it; the
//!   mount is not permitted; or layer paths overlayfs cannot take). Whiteouts are still 0/0
//!   character devices, so on a state directory that refuses those (overlayfs does) a step that
//!   deletes a lower entry fails with the `mknod` error. The merged view of the lower
//!   layers is copied into a scratch directory, the step runs in it exactly as on the overlay
//!   (the same namespaces, `/proc`, `/dev`, `resolv.conf`, and the same removal of mount
//!   points), and afterwards the scratch tree is walked and compared with the lower view to
//!   write the same kind of upper directory: changed entries, whiteouts (character devices 0/0)
//!   for deleted ones, opaque directories (`trusted.overlay.opaque=y`) for directories made anew,
//!   and every parent of a change with its metadata, as overlayfs copy-up leaves them.
//! - **auto** (the default): overlay, and copy when the overlay mount fails with `EPERM`,
//!   `ENODEV`, `EINVAL` or `EOPNOTSUPP`, or the layer paths cannot be given to overlayfs.
//!
//! Known differences, both about files that already had several names (hardlinks) in the lower
//! layers: they stay hardlinks in the copy (as in the image), so writing through one name changes
//! every name and the diff lists all of them, where overlayfs (with `index=off`) breaks the link
//! on copy-up and lists only the written name; and adding yet another name to such a file lists
//! all its names, where overlayfs lists the one linked from. Removing or renaming one of the
//! names lists nothing else, as with overlayfs.
//!
//! The helper tells the executor which snapshotter a step used with a
//! [`super::SANDBOX_INFO_PREFIX`] line on stderr; the executor reports it through tracing.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};
use rustix::fs::{Mode, OFlags, ResolveFlags, Timespec, Timestamps};

use super::{ExecError, SandboxSpec, SANDBOX_INFO_PREFIX};

mod fsops;
mod snapshotter;
mod tree;

#[cfg(test)]
mod tests;

pub use snapshotter::Snapshotter;

/// True for an overlay mount failure that means "overlayfs cannot be used here" rather than
/// "the layers are broken": the mount was refused (`EPERM`), overlayfs is missing (`ENODEV`),
/// the upper filesystem or an option is not supported (`EINVAL`, `EOPNOTSUPP`), or the paths
/// or their number cannot be expressed as overlayfs options. A missing layer directory
/// (`ENOENT`) is not: copying would fail on it too.
pub(super) fn overlay_unavailable(e: &ExecError) -> bool {
    match e {
        ExecError::BadOverlayPath { .. } | ExecError::TooManyLayers { .. } => true,
        ExecError::Sys {
            action: "mount overlay",
            source,
            ..
        } => {
            use rustix::io::Errno;
            [Errno::PERM, Errno::NODEV, Errno::INVAL, Errno::OPNOTSUPP]
                .iter()
                .any(|n| source.raw_os_error() == Some(n.raw_os_error()))
        }
        _ => false,
    }
}

/// Materialises the merged view of image layer directories (`lowers`, top-most first, in
/// overlayfs `lowerdir` form: whiteouts as 0/0 character devices, opaque directories marked)
/// into the existing empty directory `root`: the image's root filesystem as plain files, with
/// owners, modes, xattrs, times, device numbers and hardlinks (for `-o type=local|tar`).
///
/// Errors: [`ExecError::Sys`] naming the path that could not be read or written.
pub fn materialise_rootfs(lowers: &[PathBuf], root: &Path) -> Result<(), ExecError> {
    if lowers.is_empty() {
        return Ok(());
    }
    tree::copy_lowers(lowers, root).map(|_| ())
}

/// A report line of the helper (after [`SANDBOX_INFO_PREFIX`]), parsed by the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Report {
    /// `snapshotter=<name>`: the snapshotter the step used.
    Used(Snapshotter),
    /// `fallback=<reason>`: why overlayfs was not used in `auto` mode.
    Fallback(String),
}

impl Report {
    /// The line the helper prints, prefix included.
    pub(super) fn line(&self) -> String {
        match self {
            Report::Used(s) => format!("{SANDBOX_INFO_PREFIX}snapshotter={s}"),
            Report::Fallback(r) => format!("{SANDBOX_INFO_PREFIX}fallback={r}"),
        }
    }

    /// Parses the text after the prefix; `None` for anything else.
    pub(super) fn parse(text: &str) -> Option<Report> {
        let (key, value) = text.split_once('=')?;
        match key {
            "snapshotter" => value.parse().ok().map(Report::Used),
            "fallback" => Some(Report::Fallback(value.to_string())),
            _ => None,
        }
    }

    fn announce(&self) {
        super::protocol::report_line(&self.line());
    }
}

/// The snapshot of one step, set up by [`Snapshot::start`] and completed by
/// [`Snapshot::finish`].
pub(super) enum Snapshot {
    /// overlayfs is mounted at the merged directory; the kernel writes the upper directory.
    Overlay,
    /// The merged directory holds a copy of the lower view, bind-mounted onto itself so that
    /// detaching it detaches everything the step mounted below it, as for the overlay.
    Copy(Box<CopyState>),
}

/// What the copy snapshotter needs after the step.
pub(super) struct CopyState {
    lowers: Vec<PathBuf>,
    root: PathBuf,
    record: tree::CopyRecord,
    clock: Clock,
}

impl Snapshot {
    /// Prepares `merged` as the step's root filesystem with the snapshotter the spec asks for.
    /// `lowers` are the lower directories, top-most first (never empty); `mount_overlay`
    /// mounts overlayfs at `merged`.
    ///
    /// Errors: the overlay mount's error (with `overlay`, or in `auto` mode when it is not one
    /// that [`overlay_unavailable`] accepts), or a copy failure naming the path.
    pub(super) fn start(
        spec: &SandboxSpec,
        lowers: &[&Path],
        merged: &Path,
        mount_overlay: impl FnOnce() -> Result<(), ExecError>,
    ) -> Result<Snapshot, ExecError> {
        match spec.snapshotter {
            Snapshotter::Overlay => {
                mount_overlay()?;
                Report::Used(Snapshotter::Overlay).announce();
                Ok(Snapshot::Overlay)
            }
            Snapshotter::Copy => Snapshot::start_copy(spec, lowers, merged),
            Snapshotter::Auto => match mount_overlay() {
                Ok(()) => {
                    Report::Used(Snapshotter::Overlay).announce();
                    Ok(Snapshot::Overlay)
                }
                Err(e) if overlay_unavailable(&e) => {
                    Report::Fallback(error_chain(&e)).announce();
                    Snapshot::start_copy(spec, lowers, merged)
                }
                Err(e) => Err(e),
            },
        }
    }

    fn start_copy(
        spec: &SandboxSpec,
        lowers: &[&Path],
        merged: &Path,
    ) -> Result<Snapshot, ExecError> {
        // The diff is written into the upper directory from scratch; an overlay upper that
        // already has content would be part of the view, which the copy does not emulate.
        let not_empty = std::fs::read_dir(&spec.upperdir)
            .map_err(fsops::sys("read upper directory", &spec.upperdir))?
            .next()
            .is_some();
        if not_empty {
            return Err(ExecError::sys(
                "use as the copy snapshotter's upper directory",
                &spec.upperdir,
                io::Error::from(io::ErrorKind::DirectoryNotEmpty),
            ));
        }
        let lowers: Vec<PathBuf> = lowers.iter().map(|p| p.to_path_buf()).collect();
        let record = tree::copy_lowers(&lowers, merged)?;
        let base = merged.parent().unwrap_or(Path::new("/"));
        let clock = Clock::start(base)?;
        mount(
            Some(merged),
            merged,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| ExecError::sys("bind-mount the copied root", merged, io::Error::from(e)))?;
        Report::Used(Snapshotter::Copy).announce();
        Ok(Snapshot::Copy(Box::new(CopyState {
            lowers,
            root: merged.to_path_buf(),
            record,
            clock,
        })))
    }

    /// Where the step's writes land, for removing mount points afterwards: the overlay's upper
    /// directory, or the copied root itself.
    pub(super) fn writes<'a>(&'a self, spec: &'a SandboxSpec) -> &'a Path {
        match self {
            Snapshot::Overlay => &spec.upperdir,
            Snapshot::Copy(c) => &c.root,
        }
    }

    /// Completes the snapshot after the step ran and everything below the merged directory was
    /// detached: for the copy snapshotter, when the step succeeded (`Ok(0)`), writes the diff
    /// into `spec.upperdir`. Returns the step's result, or the diff's error.
    pub(super) fn finish(
        self,
        spec: &SandboxSpec,
        result: Result<i32, ExecError>,
    ) -> Result<i32, ExecError> {
        let Snapshot::Copy(state) = self else {
            return result;
        };
        if !matches!(result, Ok(0)) {
            // A failed step's changes are discarded by the caller; comparing would only cost.
            return result;
        }
        let clock = state.clock.finish()?;
        tree::diff(
            &state.lowers,
            &state.root,
            &spec.upperdir,
            &state.record,
            clock,
        )?;
        result
    }
}

/// The error and its causes joined by `: `, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg.replace('\n', " ")
}

/// The ctime watermark of the copy snapshotter, measured on a marker file on the same
/// filesystem as the copy (timestamps come from the filesystem's clock and granularity).
struct Clock {
    marker: tempfile::NamedTempFile,
    /// ctime of the marker touched after the copy: no copied inode is newer.
    watermark: (i64, u32),
    /// The first marker ctime past the watermark: no change by the step is older.
    past: (i64, u32),
    /// The filesystem clock did not pass the watermark within the wait.
    stuck: bool,
}

/// How long to wait for the filesystem's timestamps to pass the watermark (their granularity
/// is a clock tick, a few milliseconds at most).
const CLOCK_WAIT: Duration = Duration::from_secs(2);

impl Clock {
    fn start(dir: &Path) -> Result<Clock, ExecError> {
        let marker = tempfile::Builder::new()
            .prefix(".snapshot-clock-")
            .tempfile_in(dir)
            .map_err(fsops::sys("create clock marker", dir))?;
        let mut clock = Clock {
            watermark: (0, 0),
            past: (0, 0),
            stuck: false,
            marker,
        };
        clock.watermark = clock.touch(0o600)?;
        let deadline = Instant::now() + CLOCK_WAIT;
        let mut mode = 0o644;
        loop {
            let now = clock.touch(mode)?;
            if now > clock.watermark {
                clock.past = now;
                break;
            }
            if Instant::now() > deadline {
                clock.stuck = true;
                clock.past = now;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            mode ^= 0o044;
        }
        Ok(clock)
    }

    /// Changes the marker's mode (which always sets its ctime, chmod(2)) and returns its ctime.
    fn touch(&self, mode: u32) -> Result<(i64, u32), ExecError> {
        let path = self.marker.path();
        rustix::fs::fchmod(self.marker.as_file(), Mode::from_raw_mode(mode))
            .map_err(|e| ExecError::sys("touch clock marker", path, io::Error::from(e)))?;
        let st = fsops::lstat(path).map_err(fsops::sys("stat clock marker", path))?;
        Ok(fsops::ts(&st.stx_ctime))
    }

    /// After the step: the watermark, and whether the clock kept going forward meanwhile.
    fn finish(self) -> Result<tree::ChangeClock, ExecError> {
        let now = self.touch(0o600)?;
        Ok(tree::ChangeClock {
            watermark: self.watermark,
            reliable: !self.stuck && now >= self.past,
        })
    }
}

/// Directory times changed by creating mount points (scaffolding) in them, put back when the
/// scaffolding is removed and the step itself left the directory alone. With the copy
/// snapshotter this keeps, say, `/etc` out of the diff when only `/etc/resolv.conf` was created
/// to mount on; with overlayfs it keeps a copied-up directory's time as copy-up made it.
#[derive(Debug, Default)]
pub(super) struct ParentTimes {
    /// (directory relative to the root, "." for the root; its times before we created
    /// something in it; its mtime right after).
    records: Vec<(String, Timestamps, Timespec)>,
}

fn stat_times(fd: BorrowedFd<'_>) -> Option<(Timestamps, Timespec)> {
    let st = rustix::fs::fstat(fd).ok()?;
    let at = Timespec {
        tv_sec: st.st_atime,
        tv_nsec: st.st_atime_nsec as _,
    };
    let mt = Timespec {
        tv_sec: st.st_mtime,
        tv_nsec: st.st_mtime_nsec as _,
    };
    Some((
        Timestamps {
            last_access: at,
            last_modification: mt,
        },
        mt,
    ))
}

impl ParentTimes {
    /// The times of directory `parent` before creating an entry in it.
    pub(super) fn before(parent: BorrowedFd<'_>) -> Option<Timestamps> {
        stat_times(parent).map(|(t, _)| t)
    }

    /// Records that an entry was created in `parent` (at `rel`) whose times were `before`.
    pub(super) fn record(&mut self, rel: &str, before: Option<Timestamps>, parent: BorrowedFd<'_>) {
        if let (Some(before), Some((_, after))) = (before, stat_times(parent)) {
            let rel = if rel.is_empty() { "." } else { rel };
            self.records.push((rel.to_string(), before, after));
        }
    }

    /// Before the scaffolding is removed: the directories whose mtime is still what our last
    /// creation in them left (the step did not add or remove anything there), with the times
    /// to put back.
    pub(super) fn untouched(&self, root: BorrowedFd<'_>) -> Vec<(String, Timestamps)> {
        let mut out: Vec<(String, Timestamps)> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (rel, _, after) in self.records.iter().rev() {
            if seen.contains(&rel.as_str()) {
                continue;
            }
            seen.push(rel);
            let Some(fd) = open_dir_beneath(root, rel) else {
                continue;
            };
            if stat_times(fd.as_fd()).map(|(_, m)| m) != Some(*after) {
                continue;
            }
            if let Some((_, first, _)) = self.records.iter().find(|r| r.0 == *rel) {
                out.push((rel.clone(), first.clone()));
            }
        }
        out
    }

    /// Puts the times back (best effort: a directory that is gone is skipped).
    pub(super) fn restore(list: &[(String, Timestamps)], root: BorrowedFd<'_>) {
        for (rel, times) in list {
            if let Some(fd) = open_dir_beneath(root, rel) {
                let _ = rustix::fs::futimens(&fd, times);
            }
        }
    }
}

/// Opens directory `rel` below `root` without following any symlink: after the step, the
/// image's tree may hold symlinks anywhere.
fn open_dir_beneath(root: BorrowedFd<'_>, rel: &str) -> Option<std::os::fd::OwnedFd> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()
}
