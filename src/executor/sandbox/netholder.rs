//! The network holder (`polyarch __network PASTA`): the process that owns the network namespace
//! a build's `RUN` steps share on the default network, with pasta attached to it. Starting pasta
//! costs tens of milliseconds, so it is done once per build (per executor), not per step; each
//! step's helper joins the namespace (`setns`) through `/proc/HOLDER/ns/net`.
//!
//! Protocol: prints `ready` on stdout once pasta has configured the namespace (or a
//! [`crate::executor::SANDBOX_ERROR_PREFIX`] line on stderr and exits
//! [`SANDBOX_ERROR_STATUS`]), then waits for its stdin to close (the executor is gone) and ends,
//! pasta with it. Dies with its parent too (`PR_SET_PDEATHSIG`).
//!
//! Layer of `sandbox/`, beside the helper's entry point: uses network.rs only; must be called
//! before any other thread exists (unshare(2) of a network namespace).

use std::io::{Read, Write};
use std::path::Path;

use super::{network, HOST_RESOLV_CONF};
use crate::executor::error::ExecError;
use crate::executor::protocol::{report_sandbox_error, SANDBOX_ERROR_STATUS};
use crate::executor::spec::NetworkMode;

/// The hidden subcommand that starts the holder.
pub const NETWORK_SUBCOMMAND: &str = "__network";

/// Entry point of `polyarch __network PASTA`; returns the process exit status.
pub fn network_main() -> i32 {
    let pasta = std::env::args_os().nth(2);
    let result = nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL))
        .map_err(|e| ExecError::sys("prctl", "-", std::io::Error::from(e)))
        .and_then(|()| hold(pasta.as_deref().map(Path::new)));
    match result {
        Ok(()) => 0,
        Err(e) => {
            report_sandbox_error(&e);
            SANDBOX_ERROR_STATUS
        }
    }
}

fn hold(pasta: Option<&Path>) -> Result<(), ExecError> {
    let dns_forward = std::fs::read_to_string(HOST_RESOLV_CONF)
        .ok()
        .and_then(|t| network::step_resolv_conf(&t))
        .is_some();
    let mut running = network::enter(NetworkMode::Private, pasta, dns_forward)?;
    if let Some(p) = running.as_mut() {
        p.wait_ready()?;
    }
    let mut out = std::io::stdout();
    writeln!(out, "ready").map_err(|e| ExecError::sys("write", "stdout", e))?;
    out.flush()
        .map_err(|e| ExecError::sys("write", "stdout", e))?;
    // Until the executor closes its end (or dies, and the death signal comes).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(running);
    Ok(())
}
