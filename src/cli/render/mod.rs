//! Progress renderers, chosen by `--progress` (`POLYARCH_PROGRESS`): the live terminal view
//! (`tty.rs`, redrawn in place, BuildKit's layout), plain lines (`plain.rs`), JSON lines
//! (`json.rs`), or nothing (`quiet`). All of them read [`Event`]s only; the live view and the
//! summary table (`summary.rs`) share one [`model::Model`] built from them.
//!
//! Level 4 (edge). Renders the events it is given: decides nothing about the build.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use super::*;

mod escape;
mod frame;
mod json;

pub(super) use json::DiagnosticWriter;
mod model;
mod plain;
mod summary;
mod tty;

use model::Model;

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// `tty` when stderr is a terminal (and `TERM` is not `dumb`, and no `-v`), else `plain`.
    Auto,
    /// A live view redrawn in place: a header with the elapsed time and steps done, one line per
    /// step per platform with its timer, running steps' last output lines, uploads; then a
    /// summary table. Needs a terminal on stderr.
    Tty,
    /// One human-readable line per event, then the summary table.
    Plain,
    /// One JSON object per event (README "Progress as JSON"); errors too.
    Json,
    /// Nothing but errors.
    Quiet,
}

/// Whether a failure has been written as a JSON `error` event already (then the command line
/// does not print it again as text: the JSON stream holds nothing else).
static ERROR_SHOWN: AtomicBool = AtomicBool::new(false);

/// True once `--progress json` has written the command's error as an event.
pub(super) fn error_shown() -> bool {
    ERROR_SHOWN.load(Ordering::SeqCst)
}

/// The renderer of a mode.
enum Kind {
    Tty(tty::Tty),
    Plain,
    Json,
    Quiet,
}

/// The progress renderer of one command: a [`Sink`] for the core's events, started before the
/// work and finished after it.
pub(super) struct Progress {
    kind: Kind,
    model: Arc<Mutex<Model>>,
    out: Mutex<std::io::Stderr>,
    started: Instant,
}

impl ProgressMode {
    /// The mode to use: `auto` decided by whether stderr is a terminal (and `-v` not given:
    /// diagnostics would tear the live view). Errors: `tty` without a terminal.
    pub(super) fn resolve(self, verbose: u8) -> Result<ProgressMode, UsageError> {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        Ok(match self {
            ProgressMode::Auto if terminal && verbose == 0 => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            ProgressMode::Tty if !terminal => {
                return Err(usage(
                    "--progress",
                    "tty needs a terminal on stderr (TERM not dumb); use auto or plain",
                ))
            }
            other => other,
        })
    }
}

impl Progress {
    /// Starts the renderer for `mode` (see [`ProgressMode::resolve`]); the live view's header
    /// says `verb` (`Building`).
    pub(super) fn start(
        mode: ProgressMode,
        verbose: u8,
        verb: &'static str,
    ) -> Result<Arc<Progress>, UsageError> {
        let started = Instant::now();
        let model = Arc::new(Mutex::new(Model::new(started)));
        let kind = match mode.resolve(verbose)? {
            ProgressMode::Tty => Kind::Tty(tty::Tty::start(model.clone(), verb)),
            ProgressMode::Json => Kind::Json,
            ProgressMode::Quiet => Kind::Quiet,
            ProgressMode::Plain | ProgressMode::Auto => Kind::Plain,
        };
        Ok(Arc::new(Progress {
            kind,
            model,
            out: Mutex::new(std::io::stderr()),
            started,
        }))
    }

    /// Ends the run's progress: the error (as an event) when `result` is one, the
    /// `build_finished` event with the exit code, then the final view or summary. Returns
    /// `result`; after the live view showed the failing step's output, its error without the
    /// copy of that output it carries.
    pub(super) fn finish(&self, result: Result<(), Failure>) -> Result<(), Failure> {
        let exit_code = match &result {
            Ok(()) => 0,
            Err(f) => {
                self.emit(Event::Error {
                    message: f.message.clone(),
                    causes: f.causes.clone(),
                    hint: f.hint.clone(),
                    exit_code: f.code.code(),
                });
                f.code.code()
            }
        };
        self.emit(Event::BuildFinished {
            exit_code,
            millis: self.started.elapsed().as_millis() as u64,
        });
        let shown_output = match &self.kind {
            Kind::Tty(t) => t.finish(),
            Kind::Plain if exit_code == 0 => {
                let lines = self.model.lock().map(|m| summary::summary(&m));
                self.write_lines(lines.unwrap_or_default());
                false
            }
            Kind::Json if exit_code != 0 => {
                ERROR_SHOWN.store(true, Ordering::SeqCst);
                false
            }
            _ => false,
        };
        if shown_output {
            return result.map_err(without_output);
        }
        result
    }

    fn write_lines(&self, lines: Vec<String>) {
        if let Ok(mut out) = self.out.lock() {
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
    }
}

/// `f` without the step output a failed step's error carries (`output (last lines):`, see
/// [`crate::coordinator::BuildError::StepFailed`] and `SmokeTestFailed`), for when the live view
/// has shown it.
fn without_output(mut f: Failure) -> Failure {
    if let Some(i) = f.message.find("\n  output (last lines):") {
        f.message.truncate(i);
    }
    f
}

impl Sink for Progress {
    fn emit(&self, event: Event) {
        if let Ok(mut m) = self.model.lock() {
            m.apply(&event, Instant::now());
        }
        let line = match self.kind {
            Kind::Json => json::line(&event, SystemTime::now()),
            Kind::Plain => match plain::plain_line(&event) {
                Some(l) => escape::escape_controls(&l),
                None => return,
            },
            Kind::Tty(_) | Kind::Quiet => return,
        };
        self.write_lines(vec![line]);
    }
}
