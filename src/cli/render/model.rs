//! What the live view and the summary know of a run, built from progress events alone: per
//! platform its steps (state, timer, last output lines), where it runs, its upload and smoke
//! test, its image; then the index, the tags and how the run ended.
//!
//! Level 4 (edge), under `render/`: plain data fed by [`Model::apply`] with the time each event
//! arrived. Draws nothing and writes nothing; `frame.rs` and `summary.rs` read it.

use std::collections::VecDeque;
use std::time::Instant;

use crate::oci::Digest;
use crate::progress::{Event, Stream};

/// Output lines kept per step: what a failure shows under its step (the issue asks for 20).
pub(super) const KEPT_LINES: usize = 20;

/// How far a step has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepState {
    /// Started, not finished.
    Running,
    /// Finished after `millis`.
    Done { millis: u64 },
    /// Taken from the step cache.
    Cached,
    /// Failed after `millis`; `status` when its command exited non-zero.
    Failed { millis: u64, status: Option<i32> },
    /// Still running when the build ended (another platform failed, or it was interrupted).
    Canceled { millis: u64 },
}

/// One Dockerfile step of one stage build.
#[derive(Debug, Clone)]
pub(super) struct StepRow {
    /// How progress names the stage build (`linux/amd64`, `linux/amd64 builder`).
    pub label: String,
    /// 1-based step number, of `total` in its stage.
    pub step: usize,
    pub total: usize,
    /// The instruction as progress shows it.
    pub text: String,
    pub started: Instant,
    pub state: StepState,
    /// Its last [`KEPT_LINES`] output lines.
    pub lines: VecDeque<(Stream, String)>,
}

/// Blobs a platform's push has sent or found present.
#[derive(Debug, Clone, Default)]
pub(super) struct Upload {
    /// Blobs handled (sent, present or mounted).
    pub blobs: usize,
    /// Bytes sent so far (finished blobs and the parts of unfinished ones).
    pub sent: u64,
    /// Blobs the registry had already, and blobs it mounted from another repository.
    pub present: usize,
    pub mounted: usize,
    /// When sending began (the platform's last step ended) and the latest progress.
    pub since: Option<Instant>,
    pub latest: Option<Instant>,
    /// Bytes of blobs still being sent: digest, bytes done (a byte-progress event fills this).
    in_flight: Vec<(Digest, u64)>,
}

impl Upload {
    /// Bytes per second since sending began, when anything was sent.
    pub(super) fn rate(&self) -> Option<f64> {
        let (since, latest) = (self.since?, self.latest?);
        let secs = latest.duration_since(since).as_secs_f64();
        (self.sent > 0 && secs > 0.0).then(|| self.sent as f64 / secs)
    }
}

/// The smoke test of one platform.
#[derive(Debug, Clone)]
pub(super) struct Smoke {
    pub command: String,
    pub started: Instant,
    /// Exit status and wall time once it ended.
    pub ended: Option<(i32, u64)>,
    pub lines: VecDeque<(Stream, String)>,
}

/// A platform's finished image.
#[derive(Debug, Clone)]
pub(super) struct Image {
    pub digest: Digest,
    /// Config and layers, bytes.
    pub size: u64,
    pub at: Instant,
    /// Steps run and cached for it, in every stage it needed (a shared stage counts for each
    /// platform that needed it).
    pub steps: (usize, usize),
}

/// Everything about one platform (the first word of a step label).
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub platform: String,
    /// Where it runs: `native`, `qemu-aarch64`, `node arm`; `None` until planned.
    pub runs_on: Option<String>,
    pub first_seen: Instant,
    pub steps: Vec<StepRow>,
    pub upload: Upload,
    pub smoke: Option<Smoke>,
    pub image: Option<Image>,
    /// Lines about the platform moving between nodes.
    pub notes: Vec<String>,
}

impl Group {
    fn new(platform: &str, now: Instant) -> Group {
        Group {
            platform: platform.to_string(),
            runs_on: None,
            first_seen: now,
            steps: Vec::new(),
            upload: Upload::default(),
            smoke: None,
            image: None,
            notes: Vec::new(),
        }
    }

    /// Steps run and steps cached: as its image reports them, else the steps shown under it.
    pub(super) fn counts(&self) -> (usize, usize) {
        if let Some(i) = self.image.as_ref().filter(|i| i.steps != (0, 0)) {
            return i.steps;
        }
        let cached = self
            .steps
            .iter()
            .filter(|s| s.state == StepState::Cached)
            .count();
        let run = self
            .steps
            .iter()
            .filter(|s| matches!(s.state, StepState::Done { .. }))
            .count();
        (run, cached)
    }
}

/// The whole run as the renderers see it.
#[derive(Debug, Clone)]
pub(super) struct Model {
    pub started: Instant,
    /// Platforms in the order they first appeared.
    pub groups: Vec<Group>,
    /// Stage builds seen (label, number of steps), for the header's total.
    stages: Vec<(String, usize)>,
    /// The index digest and where it went (tags, `REPO@digest`, layout directories).
    pub index: Option<Digest>,
    pub destinations: Vec<String>,
    pub warnings: Vec<String>,
    /// The latest registry retry (what failed, which attempt), and the registry request count
    /// at the end: requests sent, of them retries.
    pub retry: Option<String>,
    pub requests: Option<(u64, u64)>,
    /// Exit code and wall time once the run ended.
    pub finished: Option<(i32, u64)>,
}

/// The platform a progress label belongs to: `linux/amd64 builder` → `linux/amd64`.
fn platform_of(label: &str) -> &str {
    label.split(' ').next().unwrap_or(label)
}

/// Text from the build (instructions, output, commands, warnings) as the terminal may show
/// it: control characters escaped, so nothing can move the cursor in the live view.
fn shown(text: &str) -> String {
    super::escape::escape_controls(text)
}

fn push_line(lines: &mut VecDeque<(Stream, String)>, stream: Stream, line: &str) {
    if lines.len() == KEPT_LINES {
        lines.pop_front();
    }
    lines.push_back((stream, shown(line)));
}

impl Model {
    pub(super) fn new(started: Instant) -> Model {
        Model {
            started,
            groups: Vec::new(),
            stages: Vec::new(),
            index: None,
            destinations: Vec::new(),
            warnings: Vec::new(),
            retry: None,
            requests: None,
            finished: None,
        }
    }

    /// Steps finished (done or cached) and steps known (of every stage build seen so far).
    pub(super) fn step_counts(&self) -> (usize, usize) {
        let done = self
            .groups
            .iter()
            .flat_map(|g| &g.steps)
            .filter(|s| matches!(s.state, StepState::Done { .. } | StepState::Cached))
            .count();
        (done, self.stages.iter().map(|(_, n)| n).sum())
    }

    /// The group of `platform`, made when new.
    fn group(&mut self, platform: &str, now: Instant) -> &mut Group {
        let platform = platform_of(platform);
        let i = match self.groups.iter().position(|g| g.platform == platform) {
            Some(i) => i,
            None => {
                self.groups.push(Group::new(platform, now));
                self.groups.len() - 1
            }
        };
        &mut self.groups[i]
    }

    fn step(&mut self, label: &str, step: usize) -> Option<&mut StepRow> {
        let g = self
            .groups
            .iter_mut()
            .find(|g| g.platform == platform_of(label))?;
        g.steps
            .iter_mut()
            .rev()
            .find(|s| s.label == label && s.step == step)
    }

    /// Takes in one event that arrived at `now`.
    pub(super) fn apply(&mut self, event: &Event, now: Instant) {
        match event {
            Event::PlatformPlanned {
                platform,
                node,
                emulator,
                ..
            } => {
                self.group(platform, now).runs_on = Some(match (node, emulator) {
                    (Some(n), _) => format!("node {n}"),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "native".into(),
                });
            }
            Event::BaseResolved { platform, .. } => {
                self.group(platform, now);
            }
            Event::StepStarted {
                platform,
                step,
                total,
                text,
                ..
            } => self.step_started(platform, *step, *total, text, now),
            Event::Output {
                platform,
                step,
                stream,
                line,
            } => {
                if let Some(s) = self.step(platform, *step) {
                    push_line(&mut s.lines, *stream, line);
                }
            }
            Event::StepFinished {
                platform,
                step,
                millis,
                cached,
                ..
            } => {
                if let Some(s) = self.step(platform, *step) {
                    s.state = if *cached {
                        StepState::Cached
                    } else {
                        StepState::Done { millis: *millis }
                    };
                }
                let g = self.group(platform, now);
                g.upload.since = Some(now);
            }
            Event::StepFailed {
                platform,
                step,
                millis,
                status,
                ..
            } => {
                if let Some(s) = self.step(platform, *step) {
                    s.state = StepState::Failed {
                        millis: *millis,
                        status: *status,
                    };
                }
            }
            Event::BlobPushed {
                platform,
                digest,
                size,
                existed,
                mounted,
            } => self.blob_pushed(platform, digest, *size, (*existed, *mounted), now),
            _ => self.apply_outcome(event, now),
        }
    }

    /// The events about results, smoke tests and the run's end.
    fn apply_outcome(&mut self, event: &Event, now: Instant) {
        match event {
            Event::PlatformDone {
                platform,
                digest,
                size,
                image_size,
                steps_run,
                steps_cached,
            } => {
                self.group(platform, now).image = Some(Image {
                    digest: digest.clone(),
                    size: if *image_size > 0 { *image_size } else { *size },
                    at: now,
                    steps: (*steps_run, *steps_cached),
                });
            }
            Event::IndexPushed { tag, digest } => {
                self.index = Some(digest.clone());
                self.destinations.push(format!("pushed to {tag}"));
            }
            Event::LayoutWritten {
                dest,
                ref_name,
                digest,
            } => {
                self.index = Some(digest.clone());
                self.destinations
                    .push(format!("wrote OCI layout {dest} ({ref_name})"));
            }
            Event::PlatformMoved {
                platform,
                from,
                to,
                reason,
            } => {
                self.group(platform, now).notes.push(format!(
                    "{from} dropped mid-build: {reason}; retrying on {to}"
                ));
            }
            Event::PlatformCancelled { platform, reason } => {
                self.group(platform, now)
                    .notes
                    .push(shown(&format!("cancelled: {reason}")));
            }
            Event::Warning { message } => self.warnings.push(shown(message)),
            Event::SmokeTestStarted { .. }
            | Event::SmokeTestOutput { .. }
            | Event::SmokeTestFinished { .. } => self.apply_smoke(event, now),
            Event::BuildFinished { exit_code, millis } => self.finish(*exit_code, *millis),
            Event::RegistryRetry {
                registry,
                request,
                attempt,
                error,
                delay_ms,
            } => {
                self.retry = Some(shown(&format!(
                    "registry {registry}: {request} failed ({error}); retry {attempt} in {delay_ms} ms"
                )));
            }
            Event::RegistryRequests { requests, retries } => {
                self.requests = Some((*requests, *retries));
            }
            _ => {}
        }
    }

    /// The smoke test's events.
    fn apply_smoke(&mut self, event: &Event, now: Instant) {
        match event {
            Event::SmokeTestStarted { platform, command } => {
                self.group(platform, now).smoke = Some(Smoke {
                    command: shown(command),
                    started: now,
                    ended: None,
                    lines: VecDeque::new(),
                });
            }
            Event::SmokeTestOutput {
                platform,
                stream,
                line,
            } => {
                if let Some(s) = self.group(platform, now).smoke.as_mut() {
                    push_line(&mut s.lines, *stream, line);
                }
            }
            Event::SmokeTestFinished {
                platform,
                status,
                millis,
            } => {
                if let Some(s) = self.group(platform, now).smoke.as_mut() {
                    s.ended = Some((*status, *millis));
                }
            }
            _ => {}
        }
    }

    fn step_started(&mut self, label: &str, step: usize, total: usize, text: &str, now: Instant) {
        if !self.stages.iter().any(|(l, _)| l == label) {
            self.stages.push((label.to_string(), total));
        }
        self.group(label, now).steps.push(StepRow {
            label: label.to_string(),
            step,
            total,
            text: shown(text),
            started: now,
            state: StepState::Running,
            lines: VecDeque::new(),
        });
    }

    /// A blob of `platform`'s push is complete: sent, or `(existed, mounted)`.
    fn blob_pushed(
        &mut self,
        platform: &str,
        digest: &Digest,
        size: u64,
        (existed, mounted): (bool, bool),
        now: Instant,
    ) {
        let u = &mut self.group(platform, now).upload;
        u.blobs += 1;
        if existed {
            u.present += 1;
        } else if mounted {
            u.mounted += 1;
        } else {
            Self::bytes_sent(u, digest, size, now);
        }
        u.in_flight.retain(|(d, _)| d != digest);
    }

    /// `done` bytes of blob `digest` have been sent (a blob's total when it completes; a
    /// byte-progress event gives the parts).
    fn bytes_sent(u: &mut Upload, digest: &Digest, done: u64, now: Instant) {
        let before = match u.in_flight.iter_mut().find(|(d, _)| d == digest) {
            Some((_, b)) => std::mem::replace(b, done),
            None => {
                u.in_flight.push((digest.clone(), done));
                0
            }
        };
        u.sent += done.saturating_sub(before);
        u.since.get_or_insert(now);
        u.latest = Some(now);
    }

    /// The run ended: steps still running were cancelled.
    fn finish(&mut self, exit_code: i32, millis: u64) {
        let end = self.started + std::time::Duration::from_millis(millis);
        for s in self.groups.iter_mut().flat_map(|g| g.steps.iter_mut()) {
            if s.state == StepState::Running {
                s.state = StepState::Canceled {
                    millis: end.saturating_duration_since(s.started).as_millis() as u64,
                };
            }
        }
        self.finished = Some((exit_code, millis));
    }

    /// The step that failed first, if any, with its platform.
    pub(super) fn failed_step(&self) -> Option<&StepRow> {
        self.groups
            .iter()
            .flat_map(|g| &g.steps)
            .find(|s| matches!(s.state, StepState::Failed { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn started(platform: &str, step: usize, total: usize, text: &str) -> Event {
        Event::StepStarted {
            platform: platform.into(),
            step,
            total,
            location: "Dockerfile:2".into(),
            text: text.into(),
            stage: "stage-0".into(),
            cached: false,
            cache_miss: None,
        }
    }

    #[test]
    fn steps_group_by_platform_and_count() {
        let t0 = Instant::now();
        let mut m = Model::new(t0);
        m.apply(&started("linux/amd64", 1, 2, "RUN a"), t0);
        m.apply(&started("linux/arm64 builder", 1, 1, "RUN b"), t0);
        m.apply(&started("linux/arm64", 1, 2, "RUN a"), t0);
        m.apply(
            &Event::StepFinished {
                platform: "linux/amd64".into(),
                step: 1,
                millis: 5,
                layer: None,
                cached: false,
            },
            t0,
        );
        m.apply(
            &Event::StepFinished {
                platform: "linux/arm64 builder".into(),
                step: 1,
                millis: 5,
                layer: None,
                cached: true,
            },
            t0,
        );
        assert_eq!(m.groups.len(), 2);
        assert_eq!(m.groups[1].steps.len(), 2);
        assert_eq!(m.step_counts(), (2, 5));
        assert_eq!(m.groups[0].counts(), (1, 0));
        assert_eq!(m.groups[1].counts(), (0, 1));
        m.apply(
            &Event::BuildFinished {
                exit_code: 1,
                millis: 10,
            },
            t0,
        );
        assert!(matches!(
            m.groups[1].steps[1].state,
            StepState::Canceled { .. }
        ));
    }

    #[test]
    fn terminal_controls_never_reach_the_view() {
        let t0 = Instant::now();
        let mut m = Model::new(t0);
        m.apply(&started("linux/amd64", 1, 1, "RUN echo \u{1b}[2J"), t0);
        m.apply(
            &Event::Output {
                platform: "linux/amd64".into(),
                step: 1,
                stream: Stream::Stdout,
                line: "a\rb\u{1b}[1A".into(),
            },
            t0,
        );
        let s = &m.groups[0].steps[0];
        assert_eq!(s.text, "RUN echo \\x1b[2J");
        assert_eq!(s.lines[0].1, "a\\x0db\\x1b[1A");
    }

    #[test]
    fn output_keeps_the_last_lines_and_uploads_count_bytes() {
        let t0 = Instant::now();
        let mut m = Model::new(t0);
        m.apply(&started("linux/amd64", 1, 1, "RUN seq 100"), t0);
        for i in 0..100 {
            m.apply(
                &Event::Output {
                    platform: "linux/amd64".into(),
                    step: 1,
                    stream: Stream::Stdout,
                    line: i.to_string(),
                },
                t0,
            );
        }
        let lines = &m.groups[0].steps[0].lines;
        assert_eq!(lines.len(), KEPT_LINES);
        assert_eq!(lines.front().unwrap().1, "80");
        let t1 = t0 + Duration::from_secs(2);
        m.apply(
            &Event::BlobPushed {
                platform: "linux/amd64".into(),
                digest: Digest::of(b"a"),
                size: 4_000_000,
                existed: false,
                mounted: false,
            },
            t1,
        );
        m.apply(
            &Event::BlobPushed {
                platform: "linux/amd64".into(),
                digest: Digest::of(b"b"),
                size: 7,
                existed: true,
                mounted: false,
            },
            t1,
        );
        let u = &m.groups[0].upload;
        assert_eq!((u.blobs, u.sent, u.present), (2, 4_000_000, 1));
    }
}
