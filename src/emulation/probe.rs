//! Running a probe program (`probe_program.rs`) through the kernel to see what really happens.
//!
//! A probe is started with `argv[0]` set to [`probe_marker`], inside an otherwise empty root
//! directory when this process may `chroot` (root), so the run exercises exactly what a `RUN` step
//! needs: a binfmt_misc handler that matches, is enabled, has its interpreter opened at
//! registration (`F`, since the chroot holds no qemu) and preserves `argv[0]` (`P`).
//!
//! Level 1: one file written under an explicit directory and one process, by path and argv, with
//! a timeout. It reports what happened and must not judge why (that is `support.rs` and
//! `status.rs`).

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::error::EmulationError;
use super::probe_program::{probe_elf_after, probe_marker, CpuCheck};
use super::table::Handler;

/// How a probe is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Inside an empty directory made the root (`chroot`), as a RUN step sees binfmt_misc: a
    /// handler without `F` fails here. Needs root.
    Chroot,
    /// From the host's file system: what a non-root caller can check; a handler's `F` flag is then
    /// judged from its entry.
    Host,
}

impl Isolation {
    /// [`Isolation::Chroot`] when this process is root (effective uid 0), else [`Isolation::Host`].
    pub fn for_this_process() -> Isolation {
        if rustix::process::geteuid().is_root() {
            Isolation::Chroot
        } else {
            Isolation::Host
        }
    }
}

/// What happened when a probe ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// It ran, exited 0 and printed its `argv[0]` back.
    Ran,
    /// It ran and exited 0 but printed something else: `argv[0]` was not preserved (no `P`).
    ArgvLost {
        /// What it printed instead (lossy UTF-8, NULs shown as `\0`).
        printed: String,
    },
    /// The kernel refused to start it (`execve` failed).
    ExecFailed {
        /// The errno, when known (`ENOEXEC` 8: nothing handles the format; `ENOENT` 2: the
        /// interpreter is not found, e.g. inside a chroot without `F`).
        errno: Option<i32>,
        /// The error text.
        message: String,
    },
    /// It started but exited non-zero or was killed by a signal: the interpreter is broken.
    Failed {
        /// `exit status N` or `signal N`.
        status: String,
        /// The last line it printed on stderr, if any.
        stderr: String,
    },
    /// It did not finish within the time limit and was killed.
    TimedOut {
        /// The limit in seconds.
        seconds: u64,
    },
    /// polyarch has no probe program for this handler.
    NoProbe,
}

impl ProbeResult {
    /// True for [`ProbeResult::Ran`].
    pub fn ran(&self) -> bool {
        matches!(self, ProbeResult::Ran)
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            ProbeResult::Ran => "ran, argv[0] preserved".into(),
            ProbeResult::ArgvLost { printed } => {
                format!("ran but argv[0] was not preserved (it saw {printed:?})")
            }
            ProbeResult::ExecFailed { message, .. } => format!("could not start: {message}"),
            ProbeResult::Failed { status, stderr } if stderr.is_empty() => {
                format!("started but ended with {status}")
            }
            ProbeResult::Failed { status, stderr } => {
                format!("started but ended with {status}: {stderr}")
            }
            ProbeResult::TimedOut { seconds } => format!("did not finish within {seconds} s"),
            ProbeResult::NoProbe => "no probe program for this architecture".into(),
        }
    }

    /// A short machine-readable name (`ran`, `argv0-lost`, `exec-failed`, `failed`, `timed-out`,
    /// `no-probe`), used in `polyarch qemu status --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeResult::Ran => "ran",
            ProbeResult::ArgvLost { .. } => "argv0-lost",
            ProbeResult::ExecFailed { .. } => "exec-failed",
            ProbeResult::Failed { .. } => "failed",
            ProbeResult::TimedOut { .. } => "timed-out",
            ProbeResult::NoProbe => "no-probe",
        }
    }
}

/// How long one probe may take (qemu starts in milliseconds; a hung interpreter is broken).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Writes `handler`'s probe into a fresh directory under `work_dir` and runs it through the
/// kernel (so binfmt_misc decides how), isolated as `isolation` says, with [`PROBE_TIMEOUT`].
///
/// Errors only when the probe cannot be set up (the directory or file cannot be written); every
/// outcome of running it is a [`ProbeResult`].
pub fn run_probe(
    handler: &Handler,
    work_dir: &Path,
    isolation: Isolation,
) -> Result<ProbeResult, EmulationError> {
    run_probe_as(handler, work_dir, isolation, &ProbeCpu::default())
}

/// The CPU side of a probe run: the qemu CPU model its interpreter gets (`QEMU_CPU` in the
/// probe's environment, qemu-user's documented variable) and the CPU check whose instruction
/// runs first.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeCpu<'a> {
    /// `QEMU_CPU` for the interpreter; `None`: qemu's default model.
    pub model: Option<&'a str>,
    /// The check to run in front of the probe.
    pub check: Option<&'a CpuCheck>,
}

/// [`run_probe`] with a CPU model and check (see [`ProbeCpu`]).
pub fn run_probe_as(
    handler: &Handler,
    work_dir: &Path,
    isolation: Isolation,
    cpu: &ProbeCpu<'_>,
) -> Result<ProbeResult, EmulationError> {
    let Some(elf) = probe_elf_after(handler, cpu.check) else {
        return Ok(ProbeResult::NoProbe);
    };
    let (dir, file) = write_probe(handler, &elf, work_dir)?;
    let root = match isolation {
        Isolation::Host => None,
        Isolation::Chroot => Some(dir.path()),
    };
    let exec = ExecArgs::new(&file, root, cpu.model).map_err(|e| setup_error(&file, e))?;
    let mut child = match spawn_probe(&file, exec) {
        Ok(c) => c,
        Err(e) => {
            return Ok(ProbeResult::ExecFailed {
                errno: e.raw_os_error(),
                message: e.to_string(),
            })
        }
    };
    let status = match wait_with_timeout(&mut child) {
        Ok(s) => s,
        Err(outcome) => return Ok(outcome),
    };
    Ok(exit_outcome(&mut child, status))
}

/// The error for a probe that cannot be set up at `path`.
fn setup_error(path: &Path, source: std::io::Error) -> EmulationError {
    EmulationError::ProbeSetup {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `elf` as an executable file `probe` in a fresh directory under `work_dir` (created when
/// missing); returns the directory, removed when dropped, and the file's path.
fn write_probe(
    handler: &Handler,
    elf: &[u8],
    work_dir: &Path,
) -> Result<(tempfile::TempDir, PathBuf), EmulationError> {
    std::fs::create_dir_all(work_dir).map_err(|e| setup_error(work_dir, e))?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("probe-{}-", handler.name))
        .tempdir_in(work_dir)
        .map_err(|e| setup_error(work_dir, e))?;
    let file = dir.path().join("probe");
    std::fs::write(&file, elf).map_err(|e| setup_error(&file, e))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| setup_error(&file, e))?;
    Ok((dir, file))
}

/// Starts the probe `file` with the prepared `exec` arguments, stdin empty, stdout and stderr
/// piped. Errors when the kernel refuses to start it (or the chroot fails).
fn spawn_probe(file: &Path, exec: ExecArgs) -> std::io::Result<Child> {
    // std runs programs with execvp(3), which glibc retries through /bin/sh when execve(2) fails
    // with ENOEXEC; that would turn "nothing handles this format" into a shell error. So the
    // child makes the execve(2) call itself.
    let mut cmd = Command::new(file);
    // SAFETY: runs in the forked child before std's own exec. It makes only the chroot(2),
    // chdir(2) and execve(2) system calls, on strings and pointer arrays prepared before the fork
    // (no allocation, no locks), all async-signal-safe. execve returns only on failure, which is
    // returned as the spawn error.
    unsafe {
        cmd.pre_exec(move || {
            // The whole value is captured (not its fields one by one), so the closure is Send.
            let exec = &exec;
            if let Some(root) = &exec.root {
                rustix::process::chroot(root.as_c_str())?;
                rustix::process::chdir(c"/")?;
            }
            nix::libc::execve(
                exec.path.as_ptr(),
                exec.argv_ptrs.as_ptr(),
                exec.envp_ptrs.as_ptr(),
            );
            Err(std::io::Error::last_os_error())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
}

/// Waits for the probe for at most [`PROBE_TIMEOUT`], polling. `Err` is the outcome when it did
/// not end by itself: killed after the time limit, or an error while waiting.
fn wait_with_timeout(child: &mut Child) -> Result<ExitStatus, ProbeResult> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Ok(s),
            Ok(None) if started.elapsed() >= PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeResult::TimedOut {
                    seconds: PROBE_TIMEOUT.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => {
                return Err(ProbeResult::Failed {
                    status: format!("an error waiting for it ({e})"),
                    stderr: String::new(),
                })
            }
        }
    }
}

/// What a probe that ended with `status` did: its output is read and compared with the marker.
fn exit_outcome(child: &mut Child, status: ExitStatus) -> ProbeResult {
    let mut out = Vec::new();
    let mut err = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut err);
    }
    if let Some(sig) = status.signal() {
        return ProbeResult::Failed {
            status: format!("signal {sig}"),
            stderr: last_line(&err),
        };
    }
    match status.code() {
        Some(0) if out == probe_marker().as_bytes() => ProbeResult::Ran,
        Some(0) => ProbeResult::ArgvLost {
            printed: String::from_utf8_lossy(&out).replace('\0', "\\0"),
        },
        Some(n) => ProbeResult::Failed {
            status: format!("exit status {n}"),
            stderr: last_line(&err),
        },
        None => ProbeResult::Failed {
            status: "an unknown status".into(),
            stderr: last_line(&err),
        },
    }
}

/// The execve(2) arguments of a probe, prepared before the fork: the program (`/probe` inside
/// the chroot, else its host path), argv (just the marker) and the environment (one padding
/// variable, so that a 20-byte read of a shorter `argv[0]` stays inside the strings on the stack).
struct ExecArgs {
    path: CString,
    root: Option<CString>,
    _strings: Vec<CString>,
    argv_ptrs: Vec<*const std::ffi::c_char>,
    envp_ptrs: Vec<*const std::ffi::c_char>,
}

// SAFETY: the raw pointers point into the heap buffers of `_strings`, owned by the same value
// and never mutated; the value is only read (in the forked child).
unsafe impl Send for ExecArgs {}
// SAFETY: as above; shared access is read-only.
unsafe impl Sync for ExecArgs {}

impl ExecArgs {
    fn new(file: &Path, root: Option<&Path>, cpu: Option<&str>) -> std::io::Result<ExecArgs> {
        let cstr = |b: &[u8]| CString::new(b).map_err(std::io::Error::other);
        let path = match root {
            Some(_) => cstr(b"/probe")?,
            None => cstr(file.as_os_str().as_bytes())?,
        };
        let root = root.map(|r| cstr(r.as_os_str().as_bytes())).transpose()?;
        let mut strings = vec![
            cstr(probe_marker().as_bytes())?,
            cstr(format!("POLYARCH_PROBE_PAD={}", "x".repeat(64)).as_bytes())?,
        ];
        if let Some(cpu) = cpu {
            strings.push(cstr(format!("QEMU_CPU={cpu}").as_bytes())?);
        }
        let argv_ptrs = vec![strings[0].as_ptr(), std::ptr::null()];
        let mut envp_ptrs: Vec<*const std::ffi::c_char> =
            strings[1..].iter().map(|s| s.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        Ok(ExecArgs {
            path,
            root,
            _strings: strings,
            argv_ptrs,
            envp_ptrs,
        })
    }
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulation::table::handler_for;
    use crate::platform::Platform;

    #[test]
    fn the_native_probe_runs_on_the_host_and_keeps_argv0() {
        // No emulation involved: the host's own architecture runs its probe directly.
        let host = Platform::host();
        let Some(h) = handler_for(&host) else { return };
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            run_probe(h, dir.path(), Isolation::Host).unwrap(),
            ProbeResult::Ran
        );
        if Isolation::for_this_process() == Isolation::Chroot {
            assert_eq!(
                run_probe(h, dir.path(), Isolation::Chroot).unwrap(),
                ProbeResult::Ran
            );
        }
    }

    #[test]
    fn describe_and_kind() {
        let r = ProbeResult::ExecFailed {
            errno: Some(8),
            message: "Exec format error (os error 8)".into(),
        };
        assert_eq!(r.kind(), "exec-failed");
        assert!(r.describe().contains("Exec format error"));
        assert!(!r.ran());
        assert_eq!(last_line(b"a\nqemu: boom\n\n"), "qemu: boom");
    }
}
