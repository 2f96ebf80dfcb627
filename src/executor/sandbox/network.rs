//! The network a `RUN` step sees: which network namespace its [`NetworkMode`] asks for, and the
//! loopback interface of a new one.
//!
//! Layer of `sandbox/`: above namespaces; knows nothing of the root filesystem or the command.

use nix::sched::CloneFlags;

use crate::executor::error::ExecError;
use crate::executor::spec::NetworkMode;

/// The namespace flag for `mode`: none for the host's network, `CLONE_NEWNET` for a network
/// namespace of the step's own.
pub(super) fn namespace(mode: NetworkMode) -> CloneFlags {
    match mode {
        NetworkMode::Host => CloneFlags::empty(),
        NetworkMode::None => CloneFlags::CLONE_NEWNET,
    }
}

/// Brings up `lo` in the (new) network namespace, as runc does for `--network=none`
/// (netdevice(7), `SIOCSIFFLAGS`).
pub(super) fn loopback_up() -> Result<(), ExecError> {
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
