//! The live terminal view: the frame (`frame.rs`) redrawn in place ten times a second through
//! an `indicatif` bar whose message is the whole frame, until the run ends; then the final view
//! printed once: every step, the failing step's last output lines, or the summary table.
//!
//! Level 4 (edge), under `render/`: owns the redraw thread and the terminal lines it draws;
//! only used when stderr is a terminal.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use console::Term;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::frame::{frame, shows_failure_output, Fit};
use super::model::Model;
use super::summary::summary;

/// How often the view is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// The live view and its redraw thread.
pub(super) struct Tty {
    model: Arc<Mutex<Model>>,
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    ticker: Mutex<Option<JoinHandle<()>>>,
    verb: &'static str,
}

/// The terminal's size as (columns, rows), with a sane default.
fn size() -> (usize, usize) {
    let (rows, cols) = Term::stderr().size();
    (usize::from(cols.max(20)), usize::from(rows.max(5)))
}

impl Tty {
    /// Starts drawing `model` (shared with the sink that feeds it) on stderr.
    pub(super) fn start(model: Arc<Mutex<Model>>, verb: &'static str) -> Tty {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(20));
        if let Ok(style) = ProgressStyle::with_template("{msg}") {
            bar.set_style(style);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (model, bar, stop) = (model.clone(), bar.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (width, rows) = size();
                    // One row is kept free: the cursor sits below the frame.
                    let fit = Fit {
                        width,
                        height: Some(rows - 1),
                    };
                    let text = match model.lock() {
                        Ok(m) => frame(&m, Instant::now(), fit, verb).join("\n"),
                        Err(_) => break,
                    };
                    bar.set_message(text);
                    std::thread::sleep(TICK);
                }
            })
        };
        Tty {
            model,
            bar,
            stop,
            ticker: Mutex::new(Some(ticker)),
            verb,
        }
    }

    /// Stops redrawing, clears the live view and prints the final one: every step, then the
    /// failing step's last output lines, or the summary table. True when it showed a failed
    /// step's output.
    pub(super) fn finish(&self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
        let Ok(m) = self.model.lock() else {
            return false;
        };
        // Nothing was built (a flag refused, a dry run): no view to leave behind.
        if m.groups.is_empty() && m.index.is_none() {
            return false;
        }
        let (width, _) = size();
        let fit = Fit {
            width,
            height: None,
        };
        let mut lines = frame(&m, Instant::now(), fit, self.verb);
        if m.finished.is_some_and(|(code, _)| code == 0) {
            lines.extend(summary(&m));
        }
        let mut err = std::io::stderr().lock();
        for l in lines {
            let _ = writeln!(err, "{l}");
        }
        shows_failure_output(&m)
    }
}
