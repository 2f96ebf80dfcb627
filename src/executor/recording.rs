//! [`RecordingExecutor`], the fake [`Executor`] for tests: records every spec and plays back
//! scripted outcomes.
//!
//! Level 2, no I/O: nothing is run.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::outcome::{OutputLine, StepOutcome, TAIL_LINES};
use super::spec::SandboxSpec;
use super::{ExecError, Executor};

/// A scripted result for [`RecordingExecutor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripted {
    /// Lines fed to the callback, in order.
    pub lines: Vec<OutputLine>,
    /// The exit status to report.
    pub status: i32,
}

/// A fake [`Executor`] that records every spec and plays back scripted outcomes in order
/// (status 0 and no output once the script is exhausted).
#[derive(Debug, Default)]
pub struct RecordingExecutor {
    calls: Mutex<Vec<SandboxSpec>>,
    script: Mutex<VecDeque<Scripted>>,
}

impl RecordingExecutor {
    /// An executor whose every step succeeds silently.
    pub fn new() -> RecordingExecutor {
        RecordingExecutor::default()
    }

    /// Appends a scripted outcome for the next unscripted call.
    pub fn push(&self, status: i32, lines: Vec<OutputLine>) {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Scripted { lines, status });
    }

    /// The specs run so far, in call order.
    pub fn calls(&self) -> Vec<SandboxSpec> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Executor for RecordingExecutor {
    async fn run<F>(&self, spec: &SandboxSpec, mut on_line: F) -> Result<StepOutcome, ExecError>
    where
        F: FnMut(OutputLine) + Send,
    {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(spec.clone());
        let scripted = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or(Scripted {
                lines: Vec::new(),
                status: 0,
            });
        let skip = scripted.lines.len().saturating_sub(TAIL_LINES);
        let tail = scripted.lines[skip..]
            .iter()
            .map(|l| l.line.clone())
            .collect();
        for line in scripted.lines {
            on_line(line);
        }
        Ok(StepOutcome {
            status: scripted.status,
            tail,
            snapshotter: None,
            exact: Vec::new(),
        })
    }
}
