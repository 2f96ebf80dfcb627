//! JSON progress (`--progress json`): one object a line on stderr, each an [`Event`] with an
//! envelope: `version` ([`SCHEMA_VERSION`]), `time` (RFC 3339, UTC, milliseconds) and, for the
//! events of a step, `vertex` (`<platform label>#<step>`, the same for the step's started,
//! output, finished and failed events). The schema is `tests/fixtures/progress/events.schema.json`
//! and the README's "Progress as JSON"; errors are objects too, so the stream holds nothing but
//! JSON.
//!
//! Level 4 (edge), under `render/`: serialises events and writes lines; decides nothing.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::progress::Event;

/// The version of the event format; raised when a field changes meaning or goes away (new
/// events and new fields do not raise it).
pub(super) const SCHEMA_VERSION: u32 = 1;

/// Where `tracing` writes with `--progress json -v`: each diagnostic line becomes a
/// `diagnostic` event on stderr.
pub(in crate::cli) struct DiagnosticWriter;

/// One diagnostic's writer (tracing formats each event, then writes it whole).
pub(in crate::cli) struct DiagnosticLine;

impl std::io::Write for DiagnosticLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let mut err = std::io::stderr().lock();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let event = Event::Diagnostic {
                message: l.to_string(),
            };
            writeln!(err, "{}", line(&event, SystemTime::now()))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DiagnosticWriter {
    type Writer = DiagnosticLine;

    fn make_writer(&'a self) -> DiagnosticLine {
        DiagnosticLine
    }
}

/// The step an event belongs to, as a vertex id: `<platform label>#<step>`.
fn vertex(event: &Event) -> Option<String> {
    match event {
        Event::StepStarted { platform, step, .. }
        | Event::Output { platform, step, .. }
        | Event::StepFinished { platform, step, .. }
        | Event::StepFailed { platform, step, .. } => Some(format!("{platform}#{step}")),
        _ => None,
    }
}

/// `event` as one line of JSON with its envelope, at `now`.
pub(super) fn line(event: &Event, now: SystemTime) -> String {
    let mut object = match serde_json::to_value(event) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    };
    object.insert("version".into(), SCHEMA_VERSION.into());
    object.insert(
        "time".into(),
        humantime::format_rfc3339_millis(now).to_string().into(),
    );
    if let Some(v) = vertex(event) {
        object.insert("vertex".into(), v.into());
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::progress::Stream;

    /// Stops compiling when an event is added: add it to [`every_event`] and to the schema.
    fn _every_kind_is_listed(e: &Event) {
        match e {
            Event::BuildStarted { .. }
            | Event::PlatformPlanned { .. }
            | Event::BaseResolved { .. }
            | Event::StageStarted { .. }
            | Event::StepStarted { .. }
            | Event::Output { .. }
            | Event::StepFinished { .. }
            | Event::StepFailed { .. }
            | Event::BlobPushed { .. }
            | Event::SmokeTestStarted { .. }
            | Event::SmokeTestOutput { .. }
            | Event::SmokeTestFinished { .. }
            | Event::PlatformDone { .. }
            | Event::PlatformMoved { .. }
            | Event::PlatformCancelled { .. }
            | Event::RegistryRetry { .. }
            | Event::RegistryRequests { .. }
            | Event::CacheImported { .. }
            | Event::CacheExported { .. }
            | Event::IndexPushed { .. }
            | Event::LayoutWritten { .. }
            | Event::Warning { .. }
            | Event::Error { .. }
            | Event::BuildFinished { .. }
            | Event::Diagnostic { .. } => {}
        }
    }

    /// One of every event, as the schema must accept them.
    fn every_event() -> Vec<Event> {
        let d = Digest::of(b"x");
        let p = || "linux/arm64".to_string();
        vec![
            Event::BuildStarted {
                platforms: vec![p()],
                tags: vec!["r/x:1".into()],
            },
            Event::PlatformPlanned {
                platform: p(),
                runs: "emulated through qemu-aarch64".into(),
                node: None,
                emulator: Some("qemu-aarch64".into()),
            },
            Event::BaseResolved {
                platform: p(),
                reference: "scratch".into(),
                digest: None,
            },
            Event::StageStarted {
                stage: "build".into(),
                platform: p(),
                key: "k".into(),
                runs: String::new(),
            },
            Event::StepStarted {
                platform: p(),
                step: 1,
                total: 2,
                location: "Dockerfile:2".into(),
                text: "RUN true".into(),
                stage: "stage-0".into(),
                cached: false,
                cache_miss: None,
            },
            Event::Output {
                platform: p(),
                step: 1,
                stream: Stream::Stderr,
                line: "x".into(),
            },
            Event::StepFinished {
                platform: p(),
                step: 1,
                millis: 3,
                layer: Some(d.clone()),
                cached: false,
            },
            Event::StepFailed {
                platform: p(),
                step: 2,
                millis: 3,
                status: Some(1),
                message: "failed".into(),
            },
            Event::BlobPushed {
                platform: p(),
                digest: d.clone(),
                size: 5,
                existed: false,
                mounted: true,
            },
            Event::SmokeTestStarted {
                platform: p(),
                command: "true".into(),
            },
            Event::SmokeTestOutput {
                platform: p(),
                stream: Stream::Stdout,
                line: "ok".into(),
            },
            Event::SmokeTestFinished {
                platform: p(),
                status: 0,
                millis: 4,
            },
            Event::PlatformDone {
                platform: p(),
                digest: d.clone(),
                size: 5,
                image_size: 50,
                steps_run: 2,
                steps_cached: 1,
            },
            Event::PlatformMoved {
                platform: p(),
                from: "node a".into(),
                to: "local".into(),
                reason: "gone".into(),
            },
            Event::PlatformCancelled {
                platform: p(),
                reason: "[linux/amd64] step 2 failed".into(),
            },
            Event::IndexPushed {
                tag: "r/x:1".into(),
                digest: d.clone(),
            },
            Event::LayoutWritten {
                dest: "out".into(),
                ref_name: "latest".into(),
                digest: d,
            },
            Event::RegistryRetry {
                registry: "127.0.0.1:5000".into(),
                request: "PATCH blob".into(),
                attempt: 1,
                error: "503".into(),
                delay_ms: 500,
            },
            Event::RegistryRequests {
                requests: 9,
                retries: 1,
            },
            Event::CacheImported {
                cache: "r/cache:1".into(),
                entries: 3,
            },
            Event::CacheExported {
                cache: "r/cache:1".into(),
                added: 1,
                total: 4,
                rounds: 1,
            },
            Event::Warning {
                message: "w".into(),
            },
            Event::Error {
                message: "e".into(),
                causes: vec!["c".into()],
                hint: None,
                exit_code: 1,
            },
            Event::BuildFinished {
                exit_code: 1,
                millis: 9,
            },
            Event::Diagnostic {
                message: "INFO polyarch: x".into(),
            },
        ]
    }

    #[test]
    fn every_event_matches_the_documented_schema() {
        let schema: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/progress/events.schema.json"
        ))
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let events = every_event();
        for e in &events {
            let text = line(e, SystemTime::UNIX_EPOCH);
            let v: Value = serde_json::from_str(&text).unwrap();
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{text}: {errors:?}");
            assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
            assert_eq!(v["version"], SCHEMA_VERSION);
        }
        // Every kind of event the schema lists is one polyarch has (and the other way round).
        let listed: Vec<&str> = schema["$defs"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('_'))
            .map(String::as_str)
            .collect();
        let mut kinds: Vec<String> = events
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["event"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        kinds.sort();
        let mut listed: Vec<String> = listed.into_iter().map(String::from).collect();
        listed.sort();
        assert_eq!(kinds, listed);
        // A step's events share one vertex id.
        let v: Value = serde_json::from_str(&line(&events[5], SystemTime::UNIX_EPOCH)).unwrap();
        assert_eq!(v["vertex"], "linux/arm64#1");
        // Something that is not an event is refused.
        let bad = serde_json::json!({"version": 1, "time": "x", "event": "nope"});
        assert!(!validator.is_valid(&bad));
    }
}
