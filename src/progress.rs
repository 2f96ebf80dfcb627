//! Progress as data: the core emits [`Event`]s and knows nothing of terminals; the CLI picks a
//! renderer (plain lines or JSON lines). `tracing` is for diagnostics, not for this.
//!
//! Level 0: no I/O.

use serde::{Deserialize, Serialize};

use crate::oci::Digest;

/// Which output stream a RUN step's line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One thing that happened during a build, tagged with the platform it belongs to (as its
/// recorded string, e.g. `linux/arm64/v8`) where there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Where a platform's steps will run: `natively`, `emulated through qemu-aarch64`, or
    /// `on node NAME (...)`.
    PlatformPlanned {
        /// The platform.
        platform: String,
        /// How it runs on this host.
        runs: String,
        /// The build node it goes to; `None`: this host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        /// The binfmt_misc handler its programs run through (`qemu-aarch64`); `None`: natively
        /// (or it runs nothing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emulator: Option<String>,
    },
    /// The base image for a platform was resolved.
    BaseResolved {
        /// The platform.
        platform: String,
        /// The base reference as written (after ARG expansion), or `scratch`.
        reference: String,
        /// The manifest digest chosen for this platform; `None` for `scratch`.
        digest: Option<Digest>,
    },
    /// A build stage started (once per distinct stage build: a stage that several target
    /// platforms need with the same inputs is built once).
    StageStarted {
        /// The stage's name, or `stage-N`.
        stage: String,
        /// The platform it runs as.
        platform: String,
        /// The stage build's key (stage, platform, inputs).
        key: String,
        /// How it runs here: `natively` or `emulated through ...`; empty without RUN steps.
        runs: String,
    },
    /// A Dockerfile step started, after its step cache lookup.
    StepStarted {
        /// The platform.
        platform: String,
        /// 1-based step number.
        step: usize,
        /// Number of steps in the stage.
        total: usize,
        /// `file:line` of the instruction.
        location: String,
        /// The instruction text.
        text: String,
        /// The stage's name (`FROM ... AS name`); empty for an unnamed stage.
        #[serde(default)]
        stage: String,
        /// True when the step cache has its result: it is not run (a `StepFinished` with
        /// `cached` follows at once).
        #[serde(default)]
        cached: bool,
        /// Why a step that runs missed the cache, when that is not just the step before it
        /// having run (`no entry for this key`, `--no-cache`, a corrupt entry dropped).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_miss: Option<String>,
    },
    /// One line a RUN step printed.
    Output {
        /// The platform.
        platform: String,
        /// 1-based step number.
        step: usize,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// A Dockerfile step finished successfully.
    StepFinished {
        /// The platform.
        platform: String,
        /// 1-based step number.
        step: usize,
        /// Wall time in milliseconds.
        millis: u64,
        /// The layer it made, if any.
        layer: Option<Digest>,
        /// True when its result came from the step cache (nothing ran).
        #[serde(default)]
        cached: bool,
    },
    /// A blob was uploaded (or found already present).
    BlobPushed {
        /// The platform whose image needed it.
        platform: String,
        /// The blob's digest.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// True when the registry already had it and nothing was sent.
        existed: bool,
        /// True when the registry mounted it from another repository of its own (no upload).
        #[serde(default)]
        mounted: bool,
    },
    /// A platform's image is complete (pushed by digest or stored locally).
    PlatformDone {
        /// The platform.
        platform: String,
        /// The image manifest's digest.
        digest: Digest,
        /// The manifest's size in bytes.
        size: u64,
        /// The image's size in bytes: its config and its (compressed) layers.
        #[serde(default)]
        image_size: u64,
        /// Steps run for it (in every stage it needed; a stage shared with other platforms
        /// counts for each).
        #[serde(default)]
        steps_run: usize,
        /// Steps whose result came from the step cache.
        #[serde(default)]
        steps_cached: usize,
    },
    /// The image index was pushed to a tag.
    IndexPushed {
        /// The full reference of the tag.
        tag: String,
        /// The index digest.
        digest: Digest,
    },
    /// The image was written to an OCI image layout directory.
    LayoutWritten {
        /// The layout directory.
        dest: String,
        /// The reference name recorded in its index.json.
        ref_name: String,
        /// The index digest.
        digest: Digest,
    },
    /// A node dropped while building a platform; the platform is built again elsewhere and
    /// nothing of the broken attempt is used.
    PlatformMoved {
        /// The platform.
        platform: String,
        /// Where it was being built (`node NAME (...)`).
        from: String,
        /// Where it is built now (`node NAME (...)` or `local (...)`).
        to: String,
        /// Why it moved.
        reason: String,
    },
    /// A registry request failed in a retryable way and is sent again after `delay_ms`
    /// (connect errors, resets, timeouts, 408, 429, 5xx; an interrupted chunked upload resumes
    /// from the offset the registry reports).
    RegistryRetry {
        /// The registry (`host[:port]`).
        registry: String,
        /// The request, e.g. `PATCH blob sha256:… to 127.0.0.1:5000/x/y`.
        request: String,
        /// 1-based number of this retry of the request.
        attempt: u32,
        /// Why the previous attempt failed.
        error: String,
        /// How long polyarch waits before sending it again, milliseconds.
        delay_ms: u64,
    },
    /// How many registry requests a command sent and how many of them were retries (emitted
    /// once, at the end, also when the command failed).
    RegistryRequests {
        /// HTTP requests sent to registries and token services, retries included.
        requests: u64,
        /// Of those, requests sent again after a retryable failure.
        retries: u64,
    },
    /// A platform's build was stopped because another platform failed; nothing of it is
    /// published.
    PlatformCancelled {
        /// The platform.
        platform: String,
        /// Why: the failure that stopped the build (its first line).
        reason: String,
    },
    /// Step cache entries were read from a shared cache (`--cache-from`).
    CacheImported {
        /// The cache (`REPO:TAG` or a directory).
        cache: String,
        /// Entries it holds.
        entries: usize,
    },
    /// Step cache entries were exported to a shared cache (`--cache-to`).
    CacheExported {
        /// The cache (`REPO:TAG` or a directory).
        cache: String,
        /// Entries added (0: it had them all, nothing was pushed).
        added: usize,
        /// Entries it holds now.
        total: usize,
        /// Read-modify-write rounds (more than 1: another job wrote in between).
        rounds: usize,
    },
    /// Something worth knowing that is not an error.
    Warning {
        /// The message.
        message: String,
    },
    /// A Dockerfile step failed (its command exited non-zero, or it could not be run); the
    /// platform's build stops, and the build with it.
    StepFailed {
        /// The platform (as in [`Event::StepStarted`]).
        platform: String,
        /// 1-based step number.
        step: usize,
        /// Wall time in milliseconds.
        millis: u64,
        /// The command's exit status, when it ran and exited non-zero.
        status: Option<i32>,
        /// What went wrong, one line.
        message: String,
    },
    /// The command started (emitted by the command line, first).
    BuildStarted {
        /// The target platforms as given (`local`, `all` included).
        platforms: Vec<String>,
        /// The tags the index is for.
        tags: Vec<String>,
    },
    /// The command ended (emitted by the command line, last).
    BuildFinished {
        /// Its exit code (README "Exit codes").
        exit_code: i32,
        /// Wall time since [`Event::BuildStarted`], milliseconds.
        millis: u64,
    },
    /// Why the command failed, as an object (the JSON stream carries nothing else).
    Error {
        /// The error.
        message: String,
        /// Its causes, outermost first.
        causes: Vec<String>,
        /// Advice, if any.
        hint: Option<String>,
        /// The exit code it leads to.
        exit_code: i32,
    },
    /// `--smoke-test` started in a platform's finished image.
    SmokeTestStarted {
        /// The platform.
        platform: String,
        /// The command, as given.
        command: String,
    },
    /// One line the smoke test printed.
    SmokeTestOutput {
        /// The platform.
        platform: String,
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// `--smoke-test` ended in a platform's image; a non-zero status fails the build.
    SmokeTestFinished {
        /// The platform.
        platform: String,
        /// The command's exit status.
        status: i32,
        /// Wall time in milliseconds.
        millis: u64,
    },
    /// A diagnostic line (`-v`) when progress is JSON (the command line makes these from its
    /// `tracing` output, so that the stream holds nothing but JSON).
    Diagnostic {
        /// The formatted line: level, target, message and fields.
        message: String,
    },
}

/// Where events go. Implementations must be cheap: the core calls `emit` from many tasks.
pub trait Sink: Send + Sync {
    /// Records one event.
    fn emit(&self, event: Event);
}

/// A sink that drops everything.
pub struct NullSink;

impl Sink for NullSink {
    fn emit(&self, _event: Event) {}
}

/// A sink that keeps every event in memory, for tests.
#[derive(Default)]
pub struct RecordingSink {
    events: std::sync::Mutex<Vec<Event>>,
}

impl RecordingSink {
    /// A copy of everything recorded so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Sink for RecordingSink {
    fn emit(&self, event: Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event);
        }
    }
}
