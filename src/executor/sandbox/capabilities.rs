//! The capabilities a step keeps: Docker's default set in the bounding, permitted, effective and
//! inheritable sets, the ambient set empty, and `no_new_privs`, so that nothing the step executes
//! (setuid binaries, file capabilities) can gain more.
//!
//! Layer of `sandbox/`: used by exec.rs only, in the `RUN` child after every mount is in place
//! (mounting needs `CAP_SYS_ADMIN`, which this drops) and before the user switch, which clears
//! the permitted and effective sets of a non-root user as the kernel does for any setuid
//! (capabilities(7) "Effect of user ID changes on capabilities").

use caps::{CapSet, Capability, CapsHashSet};

use crate::executor::error::ExecError;

/// Docker's default capabilities (moby `oci/caps/defaults.go` `DefaultCapabilities`).
pub(super) const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

#[cfg(test)]
/// The default set as the mask `/proc/PID/status` shows (`CapEff: 00000000a80425fb`).
pub(in crate::executor) fn default_mask() -> u64 {
    DEFAULT_CAPABILITIES
        .iter()
        .fold(0, |m, c| m | (1u64 << c.index()))
}

/// Limits the calling process to [`DEFAULT_CAPABILITIES`]: every other capability leaves the
/// bounding set (so no exec can bring it back), the ambient set is cleared, and the inheritable,
/// permitted and effective sets become exactly the default set. With `insecure`
/// (`RUN --security=insecure`) every capability stays, as in a privileged container.
///
/// Errors: [`ExecError::Sys`] naming the set that could not be changed.
pub(super) fn restrict(insecure: bool) -> Result<(), ExecError> {
    if insecure {
        return Ok(());
    }
    let keep: CapsHashSet = DEFAULT_CAPABILITIES.iter().copied().collect();
    let fail = |what: &'static str| {
        move |e: caps::errors::CapsError| {
            ExecError::sys(what, "-", std::io::Error::other(e.to_string()))
        }
    };
    // The bounding set first: dropping from it needs CAP_SETPCAP, which is kept anyway.
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(fail("drop bounding capability"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(fail("clear ambient capabilities"))?;
    // Effective before permitted: the effective set must stay a subset of the permitted one.
    caps::set(None, CapSet::Effective, &keep).map_err(fail("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(fail("set permitted capabilities"))?;
    caps::set(None, CapSet::Inheritable, &keep).map_err(fail("set inheritable capabilities"))?;
    Ok(())
}

/// Sets `no_new_privs` (prctl(2) `PR_SET_NO_NEW_PRIVS`): execve(2) grants nothing from now on,
/// neither setuid/setgid bits nor file capabilities. Not with `insecure`, as Docker leaves it
/// off for privileged containers.
///
/// Errors: [`ExecError::Sys`] when the prctl fails.
pub(super) fn no_new_privs(insecure: bool) -> Result<(), ExecError> {
    if insecure {
        return Ok(());
    }
    nix::sys::prctl::set_no_new_privs()
        .map_err(|e| ExecError::sys("set no_new_privs", "-", std::io::Error::from(e)))
}
