//! What a step gives back: its output lines as they arrive ([`OutputLine`]) and how it ended
//! ([`StepOutcome`]).
//!
//! Level 2, plain data: no I/O.

use serde::{Deserialize, Serialize};

use super::snapshot::Snapshotter;
use super::ExecError;
use crate::layer::ExactEntry;
use crate::progress::Stream;

/// How many output lines [`StepOutcome::tail`] keeps.
pub const TAIL_LINES: usize = 30;

/// One line of a step's output, without its line terminator (invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLine {
    /// Where it came from.
    pub stream: Stream,
    /// The text.
    pub line: String,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Exit status: the command's exit code, or 128 + signal number when it was killed.
    pub status: i32,
    /// The last [`TAIL_LINES`] lines of output (both streams, in arrival order).
    pub tail: Vec<String>,
    /// The snapshotter the helper reports having used (`overlay` or `copy`); `None` when it
    /// reported none (a fake executor, or a failure before the root filesystem was set up).
    pub snapshotter: Option<Snapshotter>,
    /// Entries the step made that the filesystem could not hold exactly (a placeholder for a
    /// device node, xattrs it refused): the layer writer keeps them as they should be.
    pub exact: Vec<ExactEntry>,
}

impl StepOutcome {
    /// True for status 0.
    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// `Ok(self)` for status 0, otherwise [`ExecError::StepFailed`] carrying status and tail.
    pub fn into_result(self) -> Result<StepOutcome, ExecError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ExecError::StepFailed {
                status: self.status,
                tail: self.tail,
            })
        }
    }
}
