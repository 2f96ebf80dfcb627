//! Progress renderers: plain lines or JSON lines on stderr.
//!
//! Level 4 (edge). Renders the events it is given: decides nothing about the build.

use super::*;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// `plain` (bars are not drawn yet; a TTY gets plain lines too).
    Auto,
    /// One human-readable line per event on stderr.
    Plain,
    /// One JSON object per event on stderr.
    Json,
}

/// Renders progress events as plain lines or JSON lines on stderr.
pub(super) struct Renderer {
    pub(super) mode: ProgressMode,
    pub(super) out: Mutex<std::io::Stderr>,
}

impl Sink for Renderer {
    fn emit(&self, event: Event) {
        let line = match self.mode {
            ProgressMode::Json => serde_json::to_string(&event).unwrap_or_default(),
            ProgressMode::Plain | ProgressMode::Auto => match plain_line(&event) {
                Some(l) => escape_controls(&l),
                None => return,
            },
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// `line` with every control character but TAB written as an escape (`\x1b`, `\u{9b}`), so
/// that nothing a Dockerfile or a build argument carries (a value with ESC sequences, a
/// carriage return) can move the cursor, rewrite earlier lines or hide text in a terminal or
/// CI log. JSON progress is escaped by the JSON encoder already.
pub(super) fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => out.push(c),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn plain_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::PlatformPlanned { platform, runs } => format!("[{platform}] runs {runs}"),
        Event::BaseResolved {
            platform,
            reference,
            digest,
        } => match digest {
            Some(d) => format!("[{platform}] base {reference} -> {d}"),
            None => format!("[{platform}] base {reference}"),
        },
        Event::StageStarted {
            stage,
            platform,
            key,
            runs,
        } => {
            if runs.is_empty() {
                format!("[{platform}] stage {stage} ({key})")
            } else {
                format!("[{platform}] stage {stage} ({key}), runs {runs}")
            }
        }
        Event::StepStarted { .. } | Event::Output { .. } | Event::StepFinished { .. } => {
            return step_line(e)
        }
        Event::BlobPushed {
            platform,
            digest,
            size,
            existed,
            mounted,
        } => {
            if *existed {
                format!("[{platform}] blob {digest} already present")
            } else if *mounted {
                format!("[{platform}] mounted blob {digest} from another repository")
            } else {
                format!("[{platform}] pushed blob {digest} ({size} bytes)")
            }
        }
        Event::PlatformDone {
            platform,
            digest,
            steps_run,
            steps_cached,
            ..
        } => format!("[{platform}] image {digest} ({steps_run} steps run, {steps_cached} cached)"),
        Event::IndexPushed { tag, digest } => format!("pushed index {digest} to {tag}"),
        Event::LayoutWritten {
            dest,
            ref_name,
            digest,
        } => format!("wrote OCI layout {dest} ({ref_name} -> {digest})"),
        Event::PlatformMoved { .. }
        | Event::PlatformCancelled { .. }
        | Event::RegistryRetry { .. }
        | Event::RegistryRequests { .. }
        | Event::CacheImported { .. }
        | Event::CacheExported { .. }
        | Event::Warning { .. } => return notice_line(e),
    })
}

/// Lines about the build as a whole rather than a step: a platform moved or cancelled, a
/// registry request retried, a shared cache read or written, a warning.
fn notice_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::PlatformMoved {
            platform,
            from,
            to,
            reason,
        } => format!("[{platform}] {from} dropped mid-build: {reason}; retrying on {to}"),
        Event::RegistryRetry { .. } | Event::RegistryRequests { .. } => registry_line(e)?,
        Event::PlatformCancelled { platform, reason } => {
            format!("[{platform}] cancelled: {reason}")
        }
        Event::CacheImported { cache, entries } => {
            format!("cache {cache}: {entries} step entries imported")
        }
        Event::CacheExported {
            cache,
            added,
            total,
            rounds,
        } => match (added, rounds) {
            (0, _) => format!("cache {cache}: has every step already ({total} entries)"),
            (_, 1) => format!("cache {cache}: exported {added} step entries ({total} in all)"),
            _ => format!(
                "cache {cache}: exported {added} step entries ({total} in all), merged with \
                 other jobs' in {rounds} rounds"
            ),
        },
        Event::Warning { message } => format!("warning: {message}"),
        _ => return None,
    })
}

/// The plain line of a step event: started (or `CACHED`), a line of its output, finished.
fn step_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::StepStarted {
            platform,
            step,
            text,
            cached: true,
            ..
        } => format!("[{platform}] #{step} CACHED {text}"),
        Event::StepStarted {
            platform,
            step,
            total,
            location,
            text,
            cache_miss,
            ..
        } => match cache_miss {
            Some(why) => {
                format!("[{platform}] #{step}/{total} {location}: {text} (cache miss: {why})")
            }
            None => format!("[{platform}] #{step}/{total} {location}: {text}"),
        },
        Event::Output {
            platform,
            step,
            stream,
            line,
        } => {
            let s = if *stream == Stream::Stderr { "!" } else { "|" };
            format!("[{platform}] #{step} {s} {line}")
        }
        // A cached step was said in full when it started.
        Event::StepFinished { cached: true, .. } => return None,
        Event::StepFinished {
            platform,
            step,
            millis,
            layer,
            ..
        } => match layer {
            Some(l) => format!("[{platform}] #{step} done in {millis} ms, layer {l}"),
            None => format!("[{platform}] #{step} done in {millis} ms"),
        },
        _ => return None,
    })
}

/// The plain line of a registry event (retries and the request count).
fn registry_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::RegistryRetry {
            registry,
            request,
            attempt,
            error,
            delay_ms,
        } => format!(
            "registry {registry}: {request} failed ({error}); retry {attempt} in {delay_ms} ms"
        ),
        Event::RegistryRequests { requests, retries } => {
            format!("registry requests: {requests} sent, {retries} of them retries")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    // Issue 12: a build-arg value with terminal escapes or a carriage return is shown escaped
    // in plain progress, never raw.
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("RUN echo \u{1b}[2Jx\ry\u{9b}\tz"),
            "RUN echo \\x1b[2Jx\\x0dy\\u{9b}\tz"
        );
        assert_eq!(escape_controls("plain ünïcode"), "plain ünïcode");
    }
}
