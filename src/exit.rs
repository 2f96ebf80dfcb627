//! Exit codes: part of polyarch's interface for every command (README "Exit codes").
//!
//! 0 success, 1 a build step failed, 2 bad input, 3 registry/network/auth failure after retries,
//! 4 the host cannot do it. CI scripts retry on 3 and never on 1 or 2.
//!
//! Level 0: a vocabulary every error type maps into; it imports nothing from the crate, so any
//! module may use it. Exiting the process is `main`'s job, never this module's.

/// The process exit code a failure maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// 0: everything asked for was done.
    Success = 0,
    /// 1: a build step (a `RUN`) exited non-zero or was killed.
    StepFailed = 1,
    /// 2: bad input: flags, platform, Dockerfile, build context, or a malformed image.
    BadInput = 2,
    /// 3: registry, network or authentication failure (after retries): worth retrying.
    Registry = 3,
    /// 4: the host cannot do it: no emulation for a platform, missing privileges or tools.
    Host = 4,
    /// 130: interrupted by SIGINT; the build was cancelled (its steps killed, its temporary
    /// directories removed) and a line says what was and was not pushed. The shell's
    /// convention (128 + the signal's number).
    Interrupted = 130,
    /// 143: stopped by SIGTERM, as for [`ExitCode::Interrupted`] (128 + 15).
    Terminated = 143,
}

impl ExitCode {
    /// The numeric code given to the operating system.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Implemented by every error type that can reach the command line: which exit code it maps to,
/// and an optional piece of advice that the renderer prints as a separate `hint:` line.
pub trait Classify {
    /// The exit code for this failure.
    fn exit_code(&self) -> ExitCode;
    /// Advice on how to fix it, printed apart from the error itself; `None` when there is none.
    fn hint(&self) -> Option<String> {
        None
    }
}
