//! The network a `RUN` step sees: a new namespace with loopback up (`--network=none`), joining
//! the build's default network namespace, and for that one (netholder.rs holds it) the `pasta`
//! process that gives it outbound access, plus the `resolv.conf` that works through it.
//!
//! `pasta` (Debian's `passt`) runs in the host's network namespace, attached to the step's, and
//! turns the step's connections into the host's own sockets. It is started so that the host's
//! loopback stays out of reach: no mapping of the gateway address to the host's loopback
//! (`--no-map-gw`), no port forwarding in either direction (`-t none -u none -T none -U none`).
//! Only DNS may reach a resolver on the host's loopback, through `--dns-forward` to a link-local
//! address the step's `resolv.conf` names instead.
//!
//! Layer of `sandbox/`: above namespaces; knows nothing of the root filesystem or the command.
//! Runs before any other namespace is entered (pasta must not become a process of a step's PID
//! namespace).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sched::CloneFlags;
use rustix::fs::{Mode, OFlags};

use crate::executor::error::{sys, sys_rx, ExecError};
use crate::executor::spec::NetworkMode;

/// The address DNS queries go to when the host's resolver listens on its loopback: pasta
/// forwards them there (`--dns-forward`), and nothing else.
pub(super) const DNS_FORWARD: &str = "169.254.1.1";

/// True for a `nameserver` address on the host's loopback, which the step cannot reach.
fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The `resolv.conf` a step on the default network gets, from the host's `text`: the same file
/// when every nameserver is reachable through pasta, else one where the loopback nameservers are
/// replaced by a single [`DNS_FORWARD`] line (pasta forwards it to the host's first resolver).
/// `None`: use the host's file as it is.
pub(in crate::executor) fn step_resolv_conf(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut replaced = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") && words.next().is_some_and(is_loopback) {
            if !replaced {
                out.push_str(&format!("nameserver {DNS_FORWARD}\n"));
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    replaced.then_some(out)
}

/// A running pasta attached to the step's network namespace; killed when dropped.
pub(super) struct Pasta {
    child: Child,
    program: std::path::PathBuf,
    /// Its PID file: a line arrives once the namespace is configured.
    ready: Option<std::fs::File>,
    /// Its log (stderr), read when it fails.
    log: OwnedFd,
}

impl Pasta {
    /// Waits until pasta has configured the namespace (the interface, the address, the routes
    /// and loopback): its PID line. The holder (netholder.rs) says `ready` only after this.
    ///
    /// Errors: [`ExecError::Pasta`] with what pasta said when it gave up instead.
    pub(super) fn wait_ready(&mut self) -> Result<(), ExecError> {
        let Some(mut ready) = self.ready.take() else {
            return Ok(());
        };
        // Up to the end of the PID line: pasta keeps descriptor 4 open, so there is no EOF to
        // wait for unless it exits.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") && matches!(ready.read(&mut byte), Ok(1)) {
            line.push(byte[0]);
        }
        if line.ends_with(b"\n") {
            return Ok(());
        }
        // pasta closed the pipe without writing: it gave up. Its log says why.
        let _ = self.child.wait();
        let mut said = String::new();
        if let Ok(log) = self.log.try_clone() {
            let mut log = std::fs::File::from(log);
            let _ = std::io::Seek::rewind(&mut log);
            let _ = log.read_to_string(&mut said);
        }
        Err(ExecError::Pasta {
            program: self.program.clone(),
            message: said.trim().to_string(),
        })
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        // Not waited for: tearing pasta's own namespaces down takes the kernel tens of
        // milliseconds, and the helper exits right after the step; init reaps it.
        let _ = self.child.kill();
    }
}

/// Moves the helper into a new network namespace and, for the default network, starts pasta
/// for it (from the host's namespace); [`Pasta::wait_ready`] waits for it to finish. Returns
/// the running pasta, or `None` for `--network=none` (loopback only, brought up here).
///
/// Errors: the namespace calls ([`ExecError::Sys`]); pasta failing to start
/// ([`ExecError::Pasta`]).
pub(super) fn enter(
    mode: NetworkMode,
    pasta: Option<&Path>,
    dns_forward: bool,
) -> Result<Option<Pasta>, ExecError> {
    let host = rustix::fs::open(
        "/proc/self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open", "/proc/self/ns/net"))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare", "-"))?;
    loopback_up()?;
    if mode != NetworkMode::Private {
        return Ok(None);
    }
    let program = pasta.ok_or(ExecError::NoPasta)?;
    let step = rustix::fs::open(
        "/proc/self/ns/net",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys_rx("open", "/proc/self/ns/net"))?;
    start_pasta(program, &host, &step, dns_forward).map(Some)
}

/// Starts `program` (pasta) in the host's network namespace `host`, attached to `step`; pasta
/// writes its PID file (a pipe here) only once the namespace is configured.
fn start_pasta(
    program: &Path,
    host: &OwnedFd,
    step: &OwnedFd,
    dns_forward: bool,
) -> Result<Pasta, ExecError> {
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe", "-"))?;
    let log = rustix::fs::memfd_create("pasta-log", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(sys_rx("memfd_create", "pasta-log"))?;
    let mut cmd = Command::new(program);
    // The namespace arrives as descriptor 3, the readiness pipe as 4: pasta runs as root
    // (`--runas 0`) so that it may open them; it drops its other privileges itself.
    cmd.args([
        "--config-net",
        "--foreground",
        "--quiet",
        "--runas",
        "0",
        "--no-map-gw",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--netns",
        "/proc/self/fd/3",
        "--pid",
        "/proc/self/fd/4",
    ]);
    if dns_forward {
        cmd.args(["--dns-forward", DNS_FORWARD]);
    }
    let fds = [host.as_raw_fd(), step.as_raw_fd(), ready_w.as_raw_fd()];
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            log.try_clone()
                .map_err(|e| ExecError::sys("dup", "pasta-log", e))?,
        ));
    // SAFETY: only async-signal-safe calls (setns, fcntl, dup2, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            let [host, step, ready] = fds;
            if libc::setns(host, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Out of the way of 3 and 4 first, whatever numbers they had.
            let step_hi = libc::fcntl(step, libc::F_DUPFD, 100);
            let ready_hi = libc::fcntl(ready, libc::F_DUPFD, 100);
            if step_hi < 0
                || ready_hi < 0
                || libc::dup2(step_hi, 3) < 0
                || libc::dup2(ready_hi, 4) < 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| ExecError::Pasta {
        program: program.to_path_buf(),
        message: e.to_string(),
    })?;
    drop(ready_w);
    Ok(Pasta {
        child,
        program: program.to_path_buf(),
        ready: Some(std::fs::File::from(ready_r)),
        log,
    })
}

/// Moves the helper into the network namespace at `netns` (the build's default network, held
/// by netholder.rs) with setns(2).
///
/// Errors: no namespace given, or it cannot be opened or entered (its holder is gone).
pub(super) fn join(netns: Option<&Path>) -> Result<(), ExecError> {
    let netns = netns.ok_or_else(|| ExecError::Pasta {
        program: "pasta".into(),
        message: "no network namespace was given for the step's default network".into(),
    })?;
    let fd = rustix::fs::open(netns, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(sys_rx("open network namespace", netns))?;
    nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(sys("setns", netns))
}

/// Brings up `lo` in the (new) network namespace, as runc does for `--network=none`
/// (netdevice(7), `SIOCSIFFLAGS`).
fn loopback_up() -> Result<(), ExecError> {
    use nix::libc;
    // SAFETY: plain socket/ioctl calls on a zeroed, correctly sized `ifreq`; the descriptor is
    // closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(ExecError::sys(
                "socket",
                "lo",
                std::io::Error::last_os_error(),
            ));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            let r2 = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if r2 != 0 {
                return Err(ExecError::sys("bring up", "lo", err));
            }
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        Err(ExecError::sys("read flags of", "lo", err))
    }
}
