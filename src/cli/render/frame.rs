//! The live view as lines of text, BuildKit's way: a header `[+] Building 12.3s (14/20)`, then
//! per platform one line per step with its own timer (the running steps' last output lines
//! under them, finished steps collapsed to their line), its upload and smoke test.
//!
//! Level 4 (edge), under `render/`: a pure function of the [`Model`], the time and the
//! terminal's size. Writes nothing; `tty.rs` puts the lines on the screen.

use std::time::Instant;

use console::{measure_text_width, style, truncate_str};

use super::model::{Group, Model, Smoke, StepRow, StepState, Upload};
use crate::progress::Stream;

/// Output lines shown under a running step (BuildKit shows 6).
const LIVE_LINES: usize = 6;

/// How the frame should fit the terminal.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fit {
    /// Columns; lines are cut to this width (a wrapped line would break redrawing in place).
    pub width: usize,
    /// Rows available; `None`: no limit (the final view, printed once).
    pub height: Option<usize>,
}

/// Seconds with one decimal, as BuildKit shows timers.
pub(super) fn secs(millis: u64) -> String {
    format!("{:.1}s", millis as f64 / 1000.0)
}

/// Bytes for people: `512 B`, `12.3 kB`, `4.1 MB` (decimal units, as registries report).
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

fn millis_since(then: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(then).as_millis() as u64
}

/// `left` and `timer` on one line of `width` columns, the timer at the right edge.
fn with_timer(left: &str, timer: &str, width: usize) -> String {
    let room = width.saturating_sub(timer.len() + 1).max(10);
    let left = truncate_str(left, room, "…");
    let pad = room.saturating_sub(measure_text_width(&left));
    format!("{left}{} {timer}", " ".repeat(pad))
}

/// The header: elapsed time and steps finished of steps known.
fn header(m: &Model, now: Instant, verb: &str) -> String {
    let (done, total) = m.step_counts();
    let (millis, end) = match m.finished {
        Some((0, millis)) => (millis, " FINISHED"),
        Some((_, millis)) => (millis, " ERROR"),
        None => (millis_since(m.started, now), ""),
    };
    format!("[+] {verb} {} ({done}/{total}){end}", secs(millis))
}

/// One step's line: state, `[label n/total]`, the instruction, and its timer.
fn step_line(s: &StepRow, now: Instant, width: usize) -> String {
    let name = format!("[{} {}/{}] {}", s.label, s.step, s.total, s.text);
    let (tag, millis) = match s.state {
        StepState::Running => ("", Some(millis_since(s.started, now))),
        StepState::Done { millis } => ("", Some(millis)),
        StepState::Cached => ("CACHED ", None),
        StepState::Failed { millis, .. } => ("ERROR ", Some(millis)),
        StepState::Canceled { millis } => ("CANCELED ", Some(millis)),
    };
    let timer = millis.map(secs).unwrap_or_default();
    let line = with_timer(&format!(" => {tag}{name}"), &timer, width);
    match s.state {
        StepState::Running => line,
        StepState::Failed { .. } => style(line).red().to_string(),
        StepState::Canceled { .. } => style(line).yellow().to_string(),
        StepState::Done { .. } | StepState::Cached => style(line).blue().to_string(),
    }
}

/// Output lines as shown under their step: ` => => # line` (stderr lines marked `!`).
fn output_lines<'a>(
    lines: impl Iterator<Item = &'a (Stream, String)>,
    width: usize,
) -> Vec<String> {
    lines
        .map(|(stream, l)| {
            let mark = if *stream == Stream::Stderr { "!" } else { "#" };
            truncate_str(&format!(" => => {mark} {l}"), width, "…").into_owned()
        })
        .collect()
}

/// The upload line of a platform: blobs, bytes sent, what the registry had, and the rate.
/// `done`: the platform's image is complete, so is its push.
fn upload_line(platform: &str, u: &Upload, done: bool, now: Instant, width: usize) -> String {
    let mut text = format!(
        " => [{platform}] {}: {} blob{}, {} sent",
        if done { "pushed" } else { "pushing" },
        u.blobs,
        if u.blobs == 1 { "" } else { "s" },
        bytes(u.sent)
    );
    if u.present > 0 {
        text.push_str(&format!(", {} present", u.present));
    }
    if u.mounted > 0 {
        text.push_str(&format!(", {} mounted", u.mounted));
    }
    if let Some(rate) = u.rate() {
        text.push_str(&format!(", {}/s", bytes(rate as u64)));
    }
    let timer = match (u.since, u.latest) {
        (Some(a), Some(b)) => secs(millis_since(a, b)),
        (Some(a), None) => secs(millis_since(a, now)),
        _ => String::new(),
    };
    style(with_timer(&text, &timer, width)).blue().to_string()
}

fn smoke_line(platform: &str, s: &Smoke, now: Instant, width: usize) -> String {
    let (tag, millis) = match s.ended {
        None => ("", millis_since(s.started, now)),
        Some((0, millis)) => ("", millis),
        Some((status, millis)) => {
            let text = format!(
                " => ERROR [{platform}] smoke test: {} (exit status {status})",
                s.command
            );
            return style(with_timer(&text, &secs(millis), width))
                .red()
                .to_string();
        }
    };
    let line = with_timer(
        &format!(" => {tag}[{platform}] smoke test: {}", s.command),
        &secs(millis),
        width,
    );
    if s.ended.is_some() {
        style(line).blue().to_string()
    } else {
        line
    }
}

/// A platform's lines. `collapse`: finished steps of a platform shrink to one line.
fn group_lines(g: &Group, now: Instant, fit: Fit, collapse: bool) -> Vec<String> {
    let mut out = Vec::new();
    let finished = |s: &&StepRow| matches!(s.state, StepState::Done { .. } | StepState::Cached);
    let done: Vec<&StepRow> = g.steps.iter().filter(finished).collect();
    if collapse && done.len() > 1 {
        let cached = done.iter().filter(|s| s.state == StepState::Cached).count();
        let millis: u64 = done
            .iter()
            .map(|s| match s.state {
                StepState::Done { millis } => millis,
                _ => 0,
            })
            .sum();
        let text = format!(
            " => [{}] {} steps done ({cached} cached)",
            g.platform,
            done.len()
        );
        out.push(
            style(with_timer(&text, &secs(millis), fit.width))
                .blue()
                .to_string(),
        );
    }
    for s in &g.steps {
        if collapse && done.len() > 1 && finished(&s) {
            continue;
        }
        out.push(step_line(s, now, fit.width));
        match s.state {
            StepState::Running => {
                let skip = s.lines.len().saturating_sub(LIVE_LINES);
                out.extend(output_lines(s.lines.iter().skip(skip), fit.width));
            }
            // The final view: a failed step's last output lines right under it.
            StepState::Failed { .. } if fit.height.is_none() => {
                out.extend(output_lines(s.lines.iter(), fit.width));
            }
            _ => {}
        }
    }
    for n in &g.notes {
        out.push(truncate_str(&format!(" => [{}] {n}", g.platform), fit.width, "…").into_owned());
    }
    if let Some(s) = &g.smoke {
        out.push(smoke_line(&g.platform, s, now, fit.width));
        match s.ended {
            None => {
                let skip = s.lines.len().saturating_sub(LIVE_LINES);
                out.extend(output_lines(s.lines.iter().skip(skip), fit.width));
            }
            Some((status, _)) if status != 0 && fit.height.is_none() => {
                out.extend(output_lines(s.lines.iter(), fit.width));
            }
            _ => {}
        }
    }
    if g.upload.blobs > 0 {
        out.push(upload_line(
            &g.platform,
            &g.upload,
            g.image.is_some(),
            now,
            fit.width,
        ));
    }
    out
}

/// The whole view. With a height, finished steps are collapsed per platform when everything
/// does not fit, and the top lines dropped when even that does not.
pub(super) fn frame(m: &Model, now: Instant, fit: Fit, verb: &str) -> Vec<String> {
    let draw = |collapse: bool| {
        let mut lines = vec![header(m, now, verb)];
        for g in &m.groups {
            lines.extend(group_lines(g, now, fit, collapse));
        }
        if let (Some(r), None) = (&m.retry, m.finished) {
            lines.push(
                style(truncate_str(&format!(" => {r}"), fit.width, "…"))
                    .yellow()
                    .to_string(),
            );
        }
        lines
    };
    let lines = draw(false);
    let Some(height) = fit.height else {
        return lines;
    };
    if lines.len() <= height {
        return lines;
    }
    let mut lines = draw(true);
    if lines.len() > height {
        let cut = lines.len() - height.max(2);
        lines.drain(1..=cut);
    }
    lines
}

/// Whether the final view shows a failure's output (a failed step's or smoke test's lines).
pub(super) fn shows_failure_output(m: &Model) -> bool {
    m.failed_step().is_some_and(|s| !s.lines.is_empty())
        || m.groups.iter().any(|g| {
            g.smoke
                .as_ref()
                .is_some_and(|s| s.ended.is_some_and(|(st, _)| st != 0) && !s.lines.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Event;
    use std::time::Duration;

    fn plain(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| console::strip_ansi_codes(l).into_owned())
            .collect()
    }

    #[test]
    fn header_steps_and_timers() {
        let t0 = Instant::now();
        let mut m = Model::new(t0);
        for p in ["linux/amd64", "linux/arm64"] {
            m.apply(
                &Event::StepStarted {
                    platform: p.into(),
                    step: 1,
                    total: 2,
                    location: "Dockerfile:2".into(),
                    text: "RUN sleep 1".into(),
                    stage: "stage-0".into(),
                    cached: false,
                    cache_miss: None,
                },
                t0,
            );
        }
        m.apply(
            &Event::Output {
                platform: "linux/arm64".into(),
                step: 1,
                stream: Stream::Stdout,
                line: "working".into(),
            },
            t0,
        );
        let now = t0 + Duration::from_millis(2300);
        let fit = Fit {
            width: 80,
            height: Some(40),
        };
        let lines = plain(&frame(&m, now, fit, "Building"));
        assert_eq!(lines[0], "[+] Building 2.3s (0/4)");
        assert!(lines[1].starts_with(" => [linux/amd64 1/2] RUN sleep 1"));
        assert!(lines[1].ends_with(" 2.3s"), "{:?}", lines[1]);
        assert_eq!(lines[1].len(), 80);
        assert_eq!(lines[3], " => => # working");
        // Failed, in the final view: its kept lines right under its line.
        m.apply(
            &Event::StepFailed {
                platform: "linux/arm64".into(),
                step: 1,
                millis: 2000,
                status: Some(3),
                message: "failed".into(),
            },
            now,
        );
        let end = plain(&frame(
            &m,
            now,
            Fit {
                width: 80,
                height: None,
            },
            "Building",
        ));
        assert!(
            end[2].starts_with(" => ERROR [linux/arm64 1/2] RUN sleep 1"),
            "{end:?}"
        );
        assert_eq!(end[3], " => => # working");
        assert!(shows_failure_output(&m));
        // Too little room: the top lines go, the header stays.
        let small = plain(&frame(
            &m,
            now,
            Fit {
                width: 80,
                height: Some(2),
            },
            "Building",
        ));
        assert_eq!(small.len(), 2);
        assert!(small[0].starts_with("[+] Building"));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345), "12.3 kB");
        assert_eq!(bytes(4_100_000), "4.1 MB");
        assert_eq!(secs(12_345), "12.3s");
    }
}
