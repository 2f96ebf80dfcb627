//! Plain progress: one line per event, prefixed with its platform (`[linux/arm64] #2/3 ...`),
//! appended as events arrive (for logs and pipes), and the summary table at the end.
//!
//! Level 4 (edge), under `render/`: formats events and writes lines to stderr; decides nothing.

use crate::progress::{Event, Stream};

/// The line an event prints in plain mode; `None` for events shown otherwise.
pub(super) fn plain_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::PlatformPlanned { platform, runs, .. } => format!("[{platform}] runs {runs}"),
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
        other => return outcome_line(other),
    })
}

/// The plain line of a result, a failure, a smoke test or the end of the run.
fn outcome_line(e: &Event) -> Option<String> {
    Some(match e {
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
        Event::PlatformMoved {
            platform,
            from,
            to,
            reason,
        } => format!("[{platform}] {from} dropped mid-build: {reason}; retrying on {to}"),
        Event::PlatformCancelled { platform, reason } => {
            format!("[{platform}] cancelled: {reason}")
        }
        Event::RegistryRetry { .. } | Event::RegistryRequests { .. } => registry_line(e)?,
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
        Event::StepFailed {
            platform,
            step,
            millis,
            message,
            ..
        } => format!("[{platform}] #{step} ERROR after {millis} ms: {message}"),
        Event::SmokeTestStarted { platform, command } => {
            format!("[{platform}] smoke test: {command}")
        }
        Event::SmokeTestOutput {
            platform,
            stream,
            line,
        } => {
            let s = if *stream == Stream::Stderr { "!" } else { "|" };
            format!("[{platform}] smoke {s} {line}")
        }
        Event::SmokeTestFinished {
            platform,
            status,
            millis,
        } => match status {
            0 => format!("[{platform}] smoke test passed in {millis} ms"),
            s => format!("[{platform}] smoke test FAILED with exit status {s} after {millis} ms"),
        },
        Event::BuildFinished { exit_code, millis } => {
            format!(
                "finished in {} (exit {exit_code})",
                super::frame::secs(*millis)
            )
        }
        Event::Diagnostic { message } => message.clone(),
        // The command line prints the error itself, and says nothing when it starts.
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
