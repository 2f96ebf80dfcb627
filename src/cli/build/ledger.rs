//! What a build pushed so far, kept from its progress events, for the line an interrupted
//! build prints (issue 13: "a line saying what was and was not pushed").
//!
//! Level 4 (edge): a [`Sink`] that passes every event on to the renderer and remembers the
//! pushes; it decides nothing about the build.

use std::sync::{Arc, Mutex};

use crate::progress::{Event, Sink};

/// Pushes seen so far.
#[derive(Default)]
struct Seen {
    blobs: usize,
    images: Vec<String>,
    tags: Vec<String>,
}

/// A sink that forwards to `inner` and records pushes.
pub(super) struct Ledger {
    inner: Arc<dyn Sink>,
    seen: Mutex<Seen>,
}

impl Ledger {
    /// A ledger in front of `inner`.
    pub(super) fn new(inner: Arc<dyn Sink>) -> Ledger {
        Ledger {
            inner,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// What was and was not pushed, given the build's `platforms` and `tags` (none when it
    /// pushes to none).
    pub(super) fn summary(&self, platforms: &[String], tags: &[String], pushes: bool) -> String {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !pushes {
            return "nothing is pushed by this build".into();
        }
        let missing: Vec<&String> = platforms
            .iter()
            .filter(|p| !seen.images.contains(p))
            .collect();
        let mut s = format!(
            "pushed by digest: {} blob(s), the image(s) of {}; not pushed: the image(s) of {}; ",
            seen.blobs,
            list(seen.images.iter()),
            list(missing.into_iter()),
        );
        let unmoved: Vec<&String> = tags.iter().filter(|t| !seen.tags.contains(t)).collect();
        if seen.tags.is_empty() {
            s.push_str("no tag was moved");
        } else {
            s.push_str(&format!(
                "tags moved: {}; tags not moved: {}",
                list(seen.tags.iter()),
                list(unmoved.into_iter())
            ));
        }
        s
    }
}

fn list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Sink for Ledger {
    fn emit(&self, event: Event) {
        if let Ok(mut seen) = self.seen.lock() {
            match &event {
                Event::BlobPushed { existed: false, .. } => seen.blobs += 1,
                Event::PlatformDone { platform, .. } => seen.images.push(platform.clone()),
                Event::IndexPushed { tag, .. } => seen.tags.push(tag.clone()),
                _ => {}
            }
        }
        self.inner.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::progress::NullSink;

    #[test]
    fn says_what_was_and_was_not_pushed() {
        let l = Ledger::new(Arc::new(NullSink));
        let d = Digest::of(b"x");
        l.emit(Event::BlobPushed {
            platform: "linux/amd64".into(),
            digest: d.clone(),
            size: 1,
            existed: false,
            mounted: false,
        });
        l.emit(Event::PlatformDone {
            platform: "linux/amd64".into(),
            digest: d,
            size: 1,
            image_size: 0,
            steps_run: 1,
            steps_cached: 0,
        });
        let platforms = ["linux/amd64".to_string(), "linux/arm64".to_string()];
        let tags = ["r/a:1".to_string(), "r/a:latest".to_string()];
        assert_eq!(
            l.summary(&platforms, &tags, true),
            "pushed by digest: 1 blob(s), the image(s) of linux/amd64; not pushed: the \
             image(s) of linux/arm64; no tag was moved"
        );
        assert_eq!(
            l.summary(&platforms, &tags, false),
            "nothing is pushed by this build"
        );
    }
}
