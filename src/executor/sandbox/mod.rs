//! The helper side of the executor: namespaces, the overlay mount, the `RUN` child and `COPY`.
//!
//! Runs in `polyarch __sandbox`, single-threaded, as root. Every path inside the image root is
//! handled through directory file descriptors so that symlinks in the image cannot redirect a
//! mount or a write to the host.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Uid};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timestamps};

use super::sandbox_mounts::{self, TempMounts};
use super::snapshot::{ParentTimes, Snapshot};
use super::{Action, CopySpec, ExecError, NetworkMode, RunSpec, SandboxSpec};
use crate::context::{CopyEntry, EntryKind};

/// Docker's default `PATH` for Linux containers, used when the step's environment has none
/// (moby `oci/defaults.go` `DefaultPathEnv`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Device nodes bind-mounted from the host (OCI runtime-spec config-linux.md "Default Devices").
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Symlinks every container gets in `/dev` (OCI runtime-spec runtime-linux.md "Dev symbolic
/// links").
const DEV_LINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

fn sys(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(nix::Error) -> ExecError {
    let path = path.into();
    move |e| ExecError::sys(action, path, io::Error::from(e))
}

fn sys_rx(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(rustix::io::Errno) -> ExecError {
    let path = path.into();
    move |e| ExecError::sys(action, path, io::Error::from(e))
}

/// `/proc/self/fd/N`: a path that names exactly the file behind `fd`, used as a mount target so
/// that no path walk through the image happens at mount time.
pub(super) fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Performs the spec; returns the exit status for the helper process.
pub(super) fn run(spec: &SandboxSpec) -> Result<i32, ExecError> {
    // Modes below are exact; the RUN child restores Docker's 022 before exec.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    // The spec pipe is at EOF; the command reads /dev/null like a detached container.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    let flags = match &spec.action {
        Action::Run(run) => {
            let mut f = CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC;
            if run.network == NetworkMode::None {
                f |= CloneFlags::CLONE_NEWNET;
            }
            f
        }
        Action::Copy(_) => CloneFlags::CLONE_NEWNS,
    };
    unshare(flags).map_err(sys("unshare", "-"))?;
    if flags.contains(CloneFlags::CLONE_NEWNET) {
        sandbox_mounts::loopback_up()?;
    }
    // Nothing mounted below may propagate back to the host's mount namespace
    // (mount_namespaces(7), "MS_PRIVATE").
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("make / rprivate", "/"))?;

    let base = spec
        .workdir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = |prefix: &str| {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&base)
            .map_err(|e| ExecError::sys("create temporary directory", &base, e))
    };
    let merged = tmp(".merged-")?;
    let empty = if spec.lowerdirs.is_empty() {
        Some(tmp(".empty-")?)
    } else {
        None
    };
    let lowers: Vec<&Path> = match &empty {
        Some(e) => vec![e.path()],
        None => spec.lowerdirs.iter().map(PathBuf::as_path).collect(),
    };
    // overlayfs, or the copy snapshotter where overlayfs cannot be mounted (snapshot.rs).
    let snapshot = Snapshot::start(spec, &lowers, merged.path(), || {
        mount_overlay(
            &lowers,
            Some((&spec.upperdir, &spec.workdir)),
            merged.path(),
        )
    })?;

    let mut temps = TempMounts::new(&base);
    let result = match &spec.action {
        Action::Run(run) => run_step(spec, run, merged.path(), snapshot.writes(spec), &mut temps),
        Action::Copy(copy) => copy_step(copy, merged.path(), &mut temps).map(|()| 0),
    };
    // Best effort: a failed unmount leaves an empty directory the caller owns anyway.
    let _ = umount2(merged.path(), MntFlags::MNT_DETACH);
    drop(temps);
    snapshot.finish(spec, result)
}

/// Mounts overlayfs (read-write with an upper and work directory, else read-only). Options per
/// the kernel's Documentation/filesystems/overlayfs.rst:
/// `redirect_dir=off` and `metacopy=off` keep the upper directory a plain tree of changed files
/// (no redirect xattrs, no metadata-only copies) that a layer differ can read; `index=off` and
/// `xino=off` avoid state tied to this mount.
pub(super) fn mount_overlay(
    lowers: &[&Path],
    upper_work: Option<(&Path, &Path)>,
    merged: &Path,
) -> Result<(), ExecError> {
    let mut paths: Vec<&Path> = lowers.to_vec();
    if let Some((upper, work)) = upper_work {
        paths.push(upper);
        paths.push(work);
    }
    for p in &paths {
        let s = p.as_os_str().to_string_lossy();
        if s.contains([',', ':', '\\']) {
            return Err(ExecError::BadOverlayPath {
                path: p.to_path_buf(),
            });
        }
    }
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    // Without an upper directory the overlay is read-only (overlayfs.rst "Multiple lower
    // layers").
    let options = match upper_work {
        Some((upper, work)) => format!(
            "lowerdir={lower},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off,xino=off",
            upper.to_string_lossy(),
            work.to_string_lossy()
        ),
        None => format!("lowerdir={lower},redirect_dir=off,metacopy=off,xino=off"),
    };
    // mount(2) copies at most one page of option data.
    if options.len() >= 4096 {
        return Err(ExecError::TooManyLayers {
            layers: lowers.len(),
            len: options.len(),
        });
    }
    mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(sys("mount overlay", merged))
}

/// What a mount point needed inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    Dir,
    File,
}

/// Paths created in (or copied up into) the upper directory only to hang mounts on; removed again
/// after the step.
#[derive(Debug, Default)]
pub(super) struct Scaffolding {
    /// Created by us, in creation order: (relative path, kind).
    created: Vec<(String, Want)>,
    /// Directories that existed only in a lower layer and were copied up because we created
    /// something inside them: (relative path, mode, uid, gid) as they were.
    copied_up: Vec<(String, u32, u32, u32)>,
    /// Times of the directories we created something in, to put back.
    parent_times: ParentTimes,
}

fn open_path_dir(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

impl Scaffolding {
    /// Makes sure `rel` exists in the merged root as `want`, creating missing components.
    /// Returns an `O_PATH` descriptor for it, or `None` when the image has something else there
    /// (a symlink or another file type): then that mount is skipped rather than following an
    /// image symlink onto the host.
    pub(super) fn ensure(
        &mut self,
        root: BorrowedFd<'_>,
        upper: BorrowedFd<'_>,
        rel: &str,
        want: Want,
    ) -> Result<Option<OwnedFd>, ExecError> {
        let comps: Vec<&str> = rel.split('/').collect();
        let mut cur = open_path_dir(root, ".").map_err(sys_rx("open merged root", "/"))?;
        let mut pending_copy_up: Vec<(String, u32, u32, u32)> = Vec::new();
        for (i, comp) in comps.iter().enumerate() {
            let prefix = comps[..=i].join("/");
            let last = i + 1 == comps.len();
            let kind = if last { want } else { Want::Dir };
            match rustix::fs::statat(&cur, *comp, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    let ft = FileType::from_raw_mode(st.st_mode);
                    let ok = match kind {
                        Want::Dir => ft == FileType::Directory,
                        Want::File => ft == FileType::RegularFile,
                    };
                    if !ok {
                        return Ok(None);
                    }
                    if kind == Want::Dir
                        && rustix::fs::statat(upper, prefix.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                            .is_err()
                    {
                        pending_copy_up.push((
                            prefix.clone(),
                            st.st_mode & 0o7777,
                            st.st_uid,
                            st.st_gid,
                        ));
                    }
                }
                Err(rustix::io::Errno::NOENT) => {
                    // Creating here copies every lower-only ancestor up into the upper directory.
                    for c in pending_copy_up.drain(..) {
                        if !self.copied_up.iter().any(|x| x.0 == c.0) {
                            self.copied_up.push(c);
                        }
                    }
                    let before = ParentTimes::before(cur.as_fd());
                    match kind {
                        Want::Dir => rustix::fs::mkdirat(&cur, *comp, Mode::from_raw_mode(0o755))
                            .map_err(sys_rx("create mount point", prefix.clone()))?,
                        Want::File => {
                            rustix::fs::openat(
                                &cur,
                                *comp,
                                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                                Mode::from_raw_mode(0o644),
                            )
                            .map_err(sys_rx("create mount point", prefix.clone()))?;
                        }
                    }
                    self.parent_times
                        .record(&comps[..i].join("/"), before, cur.as_fd());
                    self.created.push((prefix.clone(), kind));
                }
                Err(e) => return Err(sys_rx("stat mount point", prefix)(e)),
            }
            let next = if last && want == Want::File {
                rustix::fs::openat(
                    &cur,
                    *comp,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
            } else {
                open_path_dir(cur.as_fd(), comp)
            };
            cur = next.map_err(sys_rx("open mount point", prefix))?;
        }
        Ok(Some(cur))
    }

    /// Removes what [`Scaffolding::ensure`] left in the upper directory, newest first: files we
    /// created if still empty, directories if empty, copied-up directories if empty, unchanged
    /// in mode and owner and not opaque. Runs after the overlay is unmounted.
    fn remove_from_upper(&self, upper: &Path) {
        let Ok(upper_fd) = rustix::fs::open(
            upper,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        let untouched = self.parent_times.untouched(upper_fd.as_fd());
        for (rel, kind) in self.created.iter().rev() {
            let Ok(st) = rustix::fs::statat(&upper_fd, rel.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            match kind {
                Want::File if ft == FileType::RegularFile && st.st_size == 0 => {
                    let _ = rustix::fs::unlinkat(&upper_fd, rel.as_str(), AtFlags::empty());
                }
                Want::Dir if ft == FileType::Directory => {
                    // Fails with ENOTEMPTY when the step put something there: then it stays.
                    let _ = rustix::fs::unlinkat(&upper_fd, rel.as_str(), AtFlags::REMOVEDIR);
                }
                _ => {}
            }
        }
        ParentTimes::restore(&untouched, upper_fd.as_fd());
        for (rel, mode, uid, gid) in self.copied_up.iter().rev() {
            let Ok(st) = rustix::fs::statat(&upper_fd, rel.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let same = FileType::from_raw_mode(st.st_mode) == FileType::Directory
                && st.st_mode & 0o7777 == *mode
                && st.st_uid == *uid
                && st.st_gid == *gid;
            if !same || is_opaque(upper_fd.as_fd(), rel) {
                continue;
            }
            let _ = rustix::fs::unlinkat(&upper_fd, rel.as_str(), AtFlags::REMOVEDIR);
        }
    }
}

/// True when an upper directory is marked opaque (overlayfs.rst "whiteouts and opaque
/// directories"): removing it would make the lower contents reappear.
fn is_opaque(upper: BorrowedFd<'_>, rel: &str) -> bool {
    let Ok(fd) = rustix::fs::openat(
        upper,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return true;
    };
    let mut buf = [0u8; 8];
    rustix::fs::fgetxattr(&fd, "trusted.overlay.opaque", &mut buf[..]).is_ok()
}

fn bind(source: &Path, target: BorrowedFd<'_>, what: &'static str) -> Result<(), ExecError> {
    mount(
        Some(source),
        &fd_path(target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(what, source))
}

/// Mounts a tmpfs `/dev` with the default devices, `/dev/pts`, `/dev/shm` and the usual links.
fn setup_dev(root: BorrowedFd<'_>, dev: OwnedFd) -> Result<(), ExecError> {
    mount(
        Some("tmpfs"),
        &fd_path(dev.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )
    .map_err(sys("mount tmpfs", "/dev"))?;
    drop(dev);
    // Re-open: the old descriptor names the directory under the new tmpfs.
    let dev = open_path_dir(root, "dev").map_err(sys_rx("open", "/dev"))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let fd = rustix::fs::openat(
            &dev,
            *name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(sys_rx("create device mount point", host.clone()))?;
        drop(fd);
        let target = rustix::fs::openat(
            &dev,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_rx("open device mount point", host.clone()))?;
        bind(&host, target.as_fd(), "bind-mount device")?;
    }
    for (dir, mode) in [("pts", 0o755), ("shm", 0o1777)] {
        rustix::fs::mkdirat(&dev, dir, Mode::from_raw_mode(mode))
            .map_err(sys_rx("create", format!("/dev/{dir}")))?;
    }
    let pts = open_path_dir(dev.as_fd(), "pts").map_err(sys_rx("open", "/dev/pts"))?;
    // A private devpts instance (Documentation/filesystems/devpts.rst, "newinstance").
    mount(
        Some("devpts"),
        &fd_path(pts.as_fd()),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(sys("mount devpts", "/dev/pts"))?;
    let shm = open_path_dir(dev.as_fd(), "shm").map_err(sys_rx("open", "/dev/shm"))?;
    mount(
        Some("shm"),
        &fd_path(shm.as_fd()),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(sys("mount tmpfs", "/dev/shm"))?;
    for (name, target) in DEV_LINKS {
        rustix::fs::symlinkat(*target, &dev, *name)
            .map_err(sys_rx("create symlink", format!("/dev/{name}")))?;
    }
    Ok(())
}

/// The RUN path: scaffolding and mounts in the helper, then a child that becomes PID 1 of the new
/// PID namespace and execs the command; the helper waits, cleans up and returns the status.
///
/// `writes` is where the step's writes land (the overlay's upper directory, or the copied root):
/// mount points created there are removed again afterwards.
fn run_step(
    spec: &SandboxSpec,
    run: &RunSpec,
    merged: &Path,
    writes: &Path,
    temps: &mut TempMounts,
) -> Result<i32, ExecError> {
    if run.argv.is_empty() {
        return Err(ExecError::EmptyCommand);
    }
    let root = rustix::fs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open merged root", merged))?;
    let upper = rustix::fs::open(
        writes,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open upper directory", writes))?;
    let mut scaffold = Scaffolding::default();
    let result = (|| {
        let proc_fd = scaffold.ensure(root.as_fd(), upper.as_fd(), "proc", Want::Dir)?;
        if let Some(dev) = scaffold.ensure(root.as_fd(), upper.as_fd(), "dev", Want::Dir)? {
            setup_dev(root.as_fd(), dev)?;
        }
        let host_resolv = Path::new("/etc/resolv.conf");
        if host_resolv.exists() {
            if let Some(target) =
                scaffold.ensure(root.as_fd(), upper.as_fd(), "etc/resolv.conf", Want::File)?
            {
                bind(host_resolv, target.as_fd(), "bind-mount resolv.conf")?;
                drop(target);
                // A bind mount's read-only flag needs a remount (mount(2), "MS_REMOUNT"), on the
                // new mount: re-open the path (checked free of symlinks by `ensure`).
                let mounted = rustix::fs::openat(
                    &root,
                    "etc/resolv.conf",
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys_rx("open", "/etc/resolv.conf"))?;
                mount(
                    None::<&str>,
                    &fd_path(mounted.as_fd()),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(sys("remount read-only", "/etc/resolv.conf"))?;
            }
        }
        sandbox_mounts::apply(
            &run.mounts,
            root.as_fd(),
            upper.as_fd(),
            &mut scaffold,
            temps,
        )?;
        if !spec.hostname.is_empty() {
            nix::unistd::sethostname(&spec.hostname).map_err(sys("sethostname", "-"))?;
        }
        // SAFETY: the helper is single-threaded (sandbox_main runs before any runtime), so the
        // child may use any function, not only async-signal-safe ones.
        match unsafe { nix::unistd::fork() }.map_err(sys("fork", "-"))? {
            ForkResult::Child => {
                let status = match child(run, merged, proc_fd.is_some()) {
                    Ok(never) => match never {},
                    Err(ChildError::Exec { status, message }) => {
                        eprintln!("{message}");
                        status
                    }
                    Err(ChildError::Setup(e)) => {
                        super::report_sandbox_error(&e);
                        super::SANDBOX_ERROR_STATUS
                    }
                };
                std::process::exit(status);
            }
            ForkResult::Parent { child } => loop {
                match waitpid(child, None) {
                    Ok(WaitStatus::Exited(_, code)) => break Ok(code),
                    Ok(WaitStatus::Signaled(_, sig, _)) => break Ok(128 + sig as i32),
                    Ok(_) | Err(nix::Error::EINTR) => continue,
                    Err(e) => break Err(sys("waitpid", "-")(e)),
                }
            },
        }
    })();
    drop(root);
    // Detaching the overlay detaches everything mounted below it (umount(2), MNT_DETACH).
    let _ = umount2(merged, MntFlags::MNT_DETACH);
    scaffold.remove_from_upper(writes);
    result
}

/// Gives the command default signal dispositions and an empty signal mask, as runc does: an
/// ignored disposition survives execve(2) (signal(7)), and the Rust runtime ignores SIGPIPE, so
/// without this `yes | head -c 1` would spin on EPIPE forever instead of dying of SIGPIPE.
fn reset_signals() -> Result<(), ExecError> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow};
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code.
        unsafe { sigaction(sig, &default) }.map_err(sys("sigaction", sig.as_str()))?;
    }
    // Real-time signals are outside `Signal`; the C library refuses its reserved ones (EINVAL),
    // which is fine: only ignored dispositions matter here.
    for signum in nix::libc::SIGRTMIN()..=nix::libc::SIGRTMAX() {
        // SAFETY: SIG_DFL runs no handler code; errors are deliberately ignored.
        unsafe { nix::libc::signal(signum, nix::libc::SIG_DFL) };
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(sys("sigprocmask", "-"))?;
    Ok(())
}

/// Why the RUN child did not exec.
enum ChildError {
    /// The command cannot be executed: a step failure with a shell-like status (126, 127).
    Exec { status: i32, message: String },
    /// The sandbox could not be set up.
    Setup(ExecError),
}

impl From<ExecError> for ChildError {
    fn from(e: ExecError) -> Self {
        ChildError::Setup(e)
    }
}

/// In the child: PID 1 of the new PID namespace.
fn child(
    run: &RunSpec,
    merged: &Path,
    mount_proc: bool,
) -> Result<std::convert::Infallible, ChildError> {
    // If the helper is killed (a cancelled build), take the whole step down with it.
    nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL)).map_err(sys("prctl", "-"))?;
    reset_signals()?;
    if mount_proc {
        // proc shows the mounting process's PID namespace, so the child mounts it.
        let target = merged.join("proc");
        mount(
            Some("proc"),
            &target,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(sys("mount proc", target))?;
    }
    nix::unistd::chroot(merged).map_err(sys("chroot", merged))?;
    nix::unistd::chdir("/").map_err(sys("chdir", "/"))?;
    let cwd = if run.cwd.is_empty() { "/" } else { &run.cwd };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(|e| ExecError::sys("create working directory", cwd, e))?;
    nix::unistd::chdir(cwd).map_err(sys("chdir", cwd))?;
    let (uid, gid, groups) = match &run.user {
        None => (0, 0, vec![0]),
        Some(u) => {
            let passwd = std::fs::read_to_string("/etc/passwd").ok();
            let group = std::fs::read_to_string("/etc/group").ok();
            resolve_run_user(u, passwd.as_deref(), group.as_deref())?
        }
    };
    let groups: Vec<Gid> = groups.into_iter().map(Gid::from_raw).collect();
    nix::unistd::setgroups(&groups).map_err(sys("setgroups", "-"))?;
    nix::unistd::setgid(Gid::from_raw(gid)).map_err(sys("setgid", "-"))?;
    nix::unistd::setuid(Uid::from_raw(uid)).map_err(sys("setuid", "-"))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));

    let path_env = run
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let argv0 = &run.argv[0];
    let program = find_program(argv0, path_env).ok_or_else(|| ChildError::Exec {
        status: 127,
        message: format!("exec: {argv0:?}: executable file not found in $PATH"),
    })?;
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| ChildError::Exec {
            status: 127,
            message: format!("exec: argument {s:?} contains a NUL byte"),
        })
    };
    let prog =
        CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| ChildError::Exec {
            status: 127,
            message: format!("exec: {argv0:?}: NUL in path"),
        })?;
    let args = run
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    // Variables may hold secrets (`--mount=type=secret,env=`): an error names only the key.
    let env = run
        .env
        .iter()
        .map(|kv| {
            CString::new(kv.as_str()).map_err(|_| ChildError::Exec {
                status: 127,
                message: format!(
                    "exec: environment variable {:?} contains a NUL byte",
                    kv.split('=').next().unwrap_or("")
                ),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let err = match nix::unistd::execve(&prog, &args, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let status = if err == nix::Error::ENOENT { 127 } else { 126 };
    Err(ChildError::Exec {
        status,
        message: format!("exec {}: {}", program.display(), io::Error::from(err)),
    })
}

/// `execvp`-style lookup: a name with `/` is used as is; otherwise the first executable regular
/// file among the `PATH` entries (an empty entry is the working directory).
pub(super) fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        let md = std::fs::metadata(&candidate).ok()?;
        let executable =
            md.is_file() && rustix::fs::access(&candidate, rustix::fs::Access::EXEC_OK).is_ok();
        executable.then_some(candidate)
    })
}

/// A passwd line: (name, uid, gid).
fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        Some((
            *f.first()?,
            f.get(2)?.parse().ok()?,
            f.get(3)?.parse().ok()?,
        ))
    })
}

/// A group line: (name, gid, members).
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let members = f
            .get(3)
            .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        Some((*f.first()?, f.get(2)?.parse().ok()?, members))
    })
}

fn lookup_group(g: &str, group: Option<&str>) -> Result<u32, ExecError> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    group_entries(group.unwrap_or(""))
        .find(|(name, _, _)| *name == g)
        .map(|(_, gid, _)| gid)
        .ok_or_else(|| ExecError::UnknownUser {
            what: "group",
            name: g.to_string(),
            file: "group",
        })
}

/// Resolves a `USER` value the way runc's `user.GetExecUser` does: a name must exist in passwd; a
/// number need not (then gid 0); without an explicit group the primary group comes from passwd
/// and supplementary groups are those listing the user in /etc/group; with one, it is the only
/// group. Returns (uid, gid, supplementary groups).
pub(super) fn resolve_run_user(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32, Vec<u32>), ExecError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries: Vec<(&str, u32, u32)> = passwd_entries(passwd.unwrap_or("")).collect();
    let found = match user.parse::<u32>() {
        Ok(uid) => entries
            .iter()
            .find(|e| e.1 == uid)
            .copied()
            .or(Some(("", uid, 0))),
        Err(_) => entries.iter().find(|e| e.0 == user).copied(),
    };
    let (name, uid, primary) = found.ok_or_else(|| ExecError::UnknownUser {
        what: "user",
        name: user.to_string(),
        file: "passwd",
    })?;
    match grp {
        Some(g) if !g.is_empty() => {
            let gid = lookup_group(g, group)?;
            Ok((uid, gid, vec![gid]))
        }
        _ => {
            let mut groups = vec![primary];
            if !name.is_empty() {
                for (_, gid, members) in group_entries(group.unwrap_or("")) {
                    if members.contains(&name) && !groups.contains(&gid) {
                        groups.push(gid);
                    }
                }
            }
            Ok((uid, primary, groups))
        }
    }
}

/// Resolves `COPY --chown`: names through passwd/group, a missing group is the same number as
/// the user (Dockerfile reference, "COPY --chown").
pub(super) fn resolve_chown(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), ExecError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => passwd_entries(passwd.unwrap_or(""))
            .find(|e| e.0 == user)
            .map(|e| e.1)
            .ok_or_else(|| ExecError::UnknownUser {
                what: "user",
                name: user.to_string(),
                file: "passwd",
            })?,
    };
    let gid = match grp {
        Some(g) if !g.is_empty() => lookup_group(g, group)?,
        _ => uid,
    };
    Ok((uid, gid))
}

fn in_root(root: BorrowedFd<'_>, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Reads a file of the image (`etc/passwd`) with every path component resolved inside it.
fn read_in_root(root: BorrowedFd<'_>, rel: &str) -> Option<String> {
    let fd = in_root(root, rel, OFlags::RDONLY).ok()?;
    std::io::read_to_string(std::fs::File::from(fd)).ok()
}

/// `mkdir -p` of `rel` inside the root: missing directories are created 0755 root:root. Symlinks
/// on the way are followed inside the root, and a dangling one gets its target created (as
/// Docker does for `COPY x /link/` when `/link` points nowhere yet). Returns an `O_PATH`
/// descriptor of the (resolved) directory.
pub(super) fn mkdir_p(root: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd, ExecError> {
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
    match in_root(root, rel, dir_flags) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(sys_rx("open directory", format!("/{rel}"))(e)),
    }
    // Symlinks resolved (dangling ones to their targets), so every component created below is a
    // plain name in a real directory.
    let resolved = sandbox_mounts::resolve_in_root(root, rel)?;
    let comps: Vec<&str> = resolved.split('/').filter(|c| !c.is_empty()).collect();
    let mut cur = in_root(root, ".", dir_flags).map_err(sys_rx("open root", "/"))?;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match in_root(root, &prefix, dir_flags) {
            Ok(fd) => cur = fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, comps[i], Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(sys_rx("create directory", format!("/{prefix}"))(e)),
                }
                cur = in_root(root, &prefix, dir_flags)
                    .map_err(sys_rx("open directory", format!("/{prefix}")))?;
            }
            Err(e) => return Err(sys_rx("open directory", format!("/{prefix}"))(e)),
        }
    }
    Ok(cur)
}

/// The COPY path: creates each entry in the merged root.
fn copy_step(copy: &CopySpec, merged: &Path, temps: &mut TempMounts) -> Result<(), ExecError> {
    let root = rustix::fs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open merged root", merged))?;
    let chown = match &copy.chown {
        None => None,
        Some(c) => {
            // Names mean what the image's passwd and group say; `--link` copies onto an empty
            // tree, so they are read from the image's own layers then.
            let ids_root = match &copy.ids_from {
                Some(layers) => {
                    let view = temps.layers(layers, false)?;
                    rustix::fs::open(
                        &view,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(sys_rx("open image layers", &view))?
                }
                None => root
                    .try_clone()
                    .map_err(|e| ExecError::sys("dup", merged, e))?,
            };
            Some(resolve_chown(
                c,
                read_in_root(ids_root.as_fd(), "etc/passwd").as_deref(),
                read_in_root(ids_root.as_fd(), "etc/group").as_deref(),
            )?)
        }
    };
    let mut entries: Vec<CopyEntry> = Vec::new();
    if let Some(src) = &copy.from_layers {
        // COPY --from: resolve the sources inside the source stage as it would see them, with
        // its owners kept (BuildKit copies from a stage without resetting them).
        let view = temps.layers(&src.lowerdirs, false)?;
        let tree = crate::context::BuildContext::rootfs(&view).map_err(|source| {
            ExecError::CopySource {
                source: Box::new(source),
            }
        })?;
        let excludes = crate::context::Ignore::from_patterns(&src.excludes, Path::new("--exclude"))
            .map_err(|source| ExecError::CopySource {
                source: Box::new(source),
            })?;
        let mut found = tree
            .resolve_copy_with(&src.sources, &src.dest, &excludes)
            .map_err(|source| ExecError::CopySource {
                source: Box::new(source),
            })?;
        for e in &mut found {
            if let Ok(md) = std::fs::symlink_metadata(&e.src) {
                use std::os::unix::fs::MetadataExt;
                e.owner = Some((md.uid(), md.gid()));
            }
            if let Some(max) = src.max_mtime {
                e.mtime = e.mtime.min(max);
            }
        }
        entries = found;
    }
    entries.extend(copy.entries.iter().cloned());
    let mut created_dirs: Vec<(String, i64)> = Vec::new();
    for entry in &entries {
        let (uid, gid) = chown.or(entry.owner).unwrap_or((0, 0));
        let rel = entry.dest.trim_start_matches('/');
        if rel.is_empty() {
            continue;
        }
        let (parent_rel, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", rel),
        };
        let parent = mkdir_p(root.as_fd(), parent_rel)?;
        let mode = match (&copy.chmod, &copy.chmod_symbolic) {
            (Some(bits), _) => *bits,
            (None, Some(sym)) => sym.apply(entry.mode, entry.kind == EntryKind::Dir),
            (None, None) => entry.mode,
        };
        let existing = rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_type = existing.map(|st| FileType::from_raw_mode(st.st_mode));
        match &entry.kind {
            EntryKind::File => {
                // An existing directory at a file destination receives the file under its own
                // name (BuildKit copy semantics).
                let (dir, name) = if existing_type == Some(FileType::Directory) {
                    let dir = open_path_dir(parent.as_fd(), name)
                        .map_err(sys_rx("open directory", entry.dest.clone()))?;
                    let base = entry
                        .src
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (dir, base)
                } else {
                    (parent, name.to_string())
                };
                write_file(entry, dir.as_fd(), &name, mode, uid, gid)?;
            }
            EntryKind::Dir => {
                let is_dir_in_root = existing.is_some()
                    && in_root(root.as_fd(), rel, OFlags::PATH | OFlags::DIRECTORY).is_ok();
                if is_dir_in_root {
                    // Existing directories keep their metadata (e.g. COPY into /usr/bin).
                    continue;
                }
                if existing.is_some() {
                    // A file (or a link not leading to a directory) is never replaced by a
                    // directory: BuildKit's copy fails "cannot copy to non-directory", and
                    // WORKDIR's `mkdir -p` fails with ENOTDIR/EEXIST.
                    return Err(ExecError::CopyConflict {
                        dest: entry.dest.clone(),
                        reason: "it is a file in the image, not a directory".into(),
                    });
                }
                rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                    .map_err(sys_rx("create directory", entry.dest.clone()))?;
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(sys_rx("open directory", entry.dest.clone()))?;
                set_owner_mode(fd.as_fd(), uid, gid, mode, &entry.dest)?;
                created_dirs.push((rel.to_string(), entry.mtime));
            }
            EntryKind::Symlink(target) => {
                match existing_type {
                    Some(FileType::Directory) => {
                        return Err(ExecError::CopyConflict {
                            dest: entry.dest.clone(),
                            reason: "a directory is in the way of a symlink".into(),
                        })
                    }
                    Some(_) => rustix::fs::unlinkat(&parent, name, AtFlags::empty())
                        .map_err(sys_rx("replace", entry.dest.clone()))?,
                    None => {}
                }
                rustix::fs::symlinkat(target.as_str(), &parent, name)
                    .map_err(sys_rx("create symlink", entry.dest.clone()))?;
                rustix::fs::chownat(
                    &parent,
                    name,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(sys_rx("chown", entry.dest.clone()))?;
                rustix::fs::utimensat(
                    &parent,
                    name,
                    &times(entry.mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(sys_rx("set mtime", entry.dest.clone()))?;
            }
        }
    }
    // Directory mtimes last, deepest first: creating children changed them.
    for (rel, mtime) in created_dirs.iter().rev() {
        let fd = in_root(
            root.as_fd(),
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        )
        .map_err(sys_rx("open directory", format!("/{rel}")))?;
        rustix::fs::futimens(&fd, &times(*mtime))
            .map_err(sys_rx("set mtime", format!("/{rel}")))?;
    }
    Ok(())
}

fn times(mtime: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// chown before chmod: chown clears setuid/setgid bits (chown(2)).
fn set_owner_mode(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    mode: u32,
    dest: &str,
) -> Result<(), ExecError> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(sys_rx("chown", dest))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777)).map_err(sys_rx("chmod", dest))
}

/// Streams one file into `dir/name`, replacing whatever non-directory is there (a symlink there
/// is replaced, never followed).
fn write_file(
    entry: &CopyEntry,
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), ExecError> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            return Err(ExecError::CopyConflict {
                dest: entry.dest.clone(),
                reason: "a directory is in the way of a file".into(),
            })
        }
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(sys_rx("replace", entry.dest.clone()))?,
        Err(_) => {}
    }
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nofollow())
        .open(&entry.src)
        .map_err(|e| ExecError::sys("open source", &entry.src, e))?;
    let out = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(sys_rx("create file", entry.dest.clone()))?;
    let mut out = std::fs::File::from(out);
    io::copy(&mut src, &mut out).map_err(|e| ExecError::sys("copy", &entry.src, e))?;
    set_owner_mode(out.as_fd(), uid, gid, mode, &entry.dest)?;
    rustix::fs::futimens(&out, &times(entry.mtime)).map_err(sys_rx("set mtime", entry.dest.clone()))
}

/// `O_NOFOLLOW` as the raw flag `OpenOptionsExt::custom_flags` takes.
fn libc_o_nofollow() -> i32 {
    OFlags::NOFOLLOW.bits() as i32
}
