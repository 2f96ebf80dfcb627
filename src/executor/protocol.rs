//! What the helper (`polyarch __sandbox`) and the executor that started it say to each other,
//! besides the spec itself (a JSON [`super::SandboxSpec`] on the helper's stdin): the subcommand,
//! the exit status of the helper's own failures and the report lines it writes on stderr.
//!
//! Level 2, the wire format only: formats and parses lines, starts nothing.

use std::io::Write;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::ExecError;
use crate::exit::{Classify, ExitCode};
use crate::layer::ExactEntry;

/// The hidden subcommand that starts the helper (`polyarch __sandbox`).
pub const SANDBOX_SUBCOMMAND: &str = "__sandbox";

/// The helper's exit status when it failed before or instead of running the step (as `docker
/// run` uses 125 for its own errors); a stderr line starting with [`SANDBOX_ERROR_PREFIX`] says
/// why.
pub const SANDBOX_ERROR_STATUS: i32 = 125;

/// `polyarch __sandbox --attach SPEC_FILE REPORT_FILE`: the helper reads its spec from
/// SPEC_FILE, writes its report lines to REPORT_FILE, and leaves stdin, stdout and stderr to the
/// command (`polyarch run`).
pub const SANDBOX_ATTACH_FLAG: &str = "--attach";

/// Where the helper's report lines go when attached (its stderr is the command's then).
static REPORTS: OnceLock<std::fs::File> = OnceLock::new();

/// Sends the helper's report lines to `file` from now on (attached mode). The file is
/// close-on-exec, so the command never sees it.
pub(super) fn report_to(file: std::fs::File) {
    let _ = REPORTS.set(file);
}

/// Writes one report line of the helper: on stderr, or to the attached mode's report file.
pub(super) fn report_line(line: &str) {
    match REPORTS.get() {
        Some(mut f) => {
            let _ = writeln!(f, "{line}");
        }
        None => eprintln!("{line}"),
    }
}

/// Prefix of the helper's own error line on stderr.
pub const SANDBOX_ERROR_PREFIX: &str = "polyarch-sandbox-error: ";

/// Prefix of the helper's report lines on stderr (`snapshotter=<name>`, `fallback=<reason>`,
/// `exact=<json>`), taken out of the step's output by [`super::SandboxExecutor`].
pub const SANDBOX_INFO_PREFIX: &str = "polyarch-sandbox-info: ";

/// Key of the report line for an entry the filesystem could not hold exactly: `exact=` then
/// the [`ExactEntry`] as JSON.
const EXACT_KEY: &str = "exact=";

/// The helper's report line for `e`, prefix included.
pub(super) fn exact_line(e: &ExactEntry) -> String {
    let json = serde_json::to_string(e).unwrap_or_default();
    format!("{SANDBOX_INFO_PREFIX}{EXACT_KEY}{json}")
}

/// Reads an `exact=` report (the text after [`SANDBOX_INFO_PREFIX`]); `None` for other reports.
pub(super) fn parse_exact(info: &str) -> Option<ExactEntry> {
    serde_json::from_str(info.strip_prefix(EXACT_KEY)?).ok()
}

/// The helper's error line after [`SANDBOX_ERROR_PREFIX`]: JSON, so that the class and hint
/// travel with the message whatever characters it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SandboxFailure {
    /// The exit code class ([`ExitCode::code`]).
    pub(super) exit: i32,
    /// Error and causes joined by `: `.
    pub(super) message: String,
    /// Advice, if any.
    #[serde(default)]
    pub(super) hint: Option<String>,
}

impl SandboxFailure {
    /// Builds the line's content from a helper-side error.
    pub(super) fn of(e: &ExecError) -> SandboxFailure {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        SandboxFailure {
            exit: e.exit_code().code(),
            message,
            hint: e.hint(),
        }
    }

    /// Reads a line's content; anything that is not such JSON is a host failure with the text as
    /// its message.
    pub(super) fn parse(line: &str) -> SandboxFailure {
        serde_json::from_str(line).unwrap_or_else(|_| SandboxFailure {
            exit: ExitCode::Host.code(),
            message: line.to_string(),
            hint: None,
        })
    }

    /// The class as an [`ExitCode`]; unknown numbers are host failures.
    pub(super) fn exit_code(&self) -> ExitCode {
        [ExitCode::StepFailed, ExitCode::BadInput, ExitCode::Registry]
            .into_iter()
            .find(|c| c.code() == self.exit)
            .unwrap_or(ExitCode::Host)
    }
}

/// Prints the helper's error line: [`SANDBOX_ERROR_PREFIX`] then a JSON object with the exit
/// code class (`exit`), the message (error and causes joined by `: `) and an optional `hint`.
pub(super) fn report_sandbox_error(e: &ExecError) {
    let failure = SandboxFailure::of(e);
    let line = serde_json::to_string(&failure).unwrap_or_else(|_| failure.message.clone());
    report_line(&format!("{SANDBOX_ERROR_PREFIX}{line}"));
}
