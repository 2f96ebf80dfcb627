//! The table printed when a run has finished: per platform where it ran (native, the qemu
//! handler, the node), steps run and cached, time, manifest digest and image size; then the
//! index digest and where it went, then the warnings.
//!
//! Level 4 (edge), under `render/`: text from the [`Model`] only; writes nothing.

use super::frame::{bytes, secs};
use super::model::Model;

/// The summary's lines (empty when no platform produced an image).
pub(super) fn summary(m: &Model) -> Vec<String> {
    let rows: Vec<[String; 6]> = m
        .groups
        .iter()
        .filter_map(|g| {
            let image = g.image.as_ref()?;
            let (run, cached) = g.counts();
            Some([
                g.platform.clone(),
                g.runs_on.clone().unwrap_or_else(|| "local".into()),
                format!("{run}/{cached}"),
                secs(image.at.saturating_duration_since(g.first_seen).as_millis() as u64),
                image.digest.to_string(),
                bytes(image.size),
            ])
        })
        .collect();
    let mut out = Vec::new();
    if rows.is_empty() {
        return out;
    }
    let head = [
        "PLATFORM",
        "RAN ON",
        "RUN/CACHED",
        "TIME",
        "MANIFEST",
        "SIZE",
    ]
    .map(String::from);
    let mut widths = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push(cells.join("  ").trim_end().to_string());
    }
    if let Some(index) = &m.index {
        out.push(format!("index {index}"));
        for d in &m.destinations {
            out.push(format!("  {d}"));
        }
    }
    if let Some((requests, retries)) = m.requests {
        out.push(format!(
            "registry requests: {requests} sent, {retries} of them retries"
        ));
    }
    for w in &m.warnings {
        out.push(format!("warning: {w}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::progress::Event;
    use std::time::Instant;

    #[test]
    fn one_row_per_image_then_the_index() {
        let t0 = Instant::now();
        let mut m = Model::new(t0);
        m.apply(
            &Event::BaseResolved {
                platform: "linux/amd64".into(),
                reference: "scratch".into(),
                digest: None,
            },
            t0,
        );
        m.apply(
            &Event::PlatformPlanned {
                platform: "linux/arm64".into(),
                runs: "emulated through qemu-aarch64".into(),
                node: None,
                emulator: Some("qemu-aarch64".into()),
            },
            t0,
        );
        for p in ["linux/amd64", "linux/arm64"] {
            m.apply(
                &Event::PlatformDone {
                    platform: p.into(),
                    digest: Digest::of(p.as_bytes()),
                    size: 400,
                    image_size: 2_500_000,
                    steps_run: 3,
                    steps_cached: 1,
                },
                t0,
            );
        }
        m.apply(
            &Event::IndexPushed {
                tag: "r/x:1".into(),
                digest: Digest::of(b"i"),
            },
            t0,
        );
        let s = summary(&m);
        assert!(s[0].starts_with("PLATFORM     RAN ON"), "{s:?}");
        assert!(s[1].starts_with("linux/amd64  local "), "{s:?}");
        assert!(s[2].starts_with("linux/arm64  qemu-aarch64"), "{s:?}");
        assert!(s[2].contains(&Digest::of(b"linux/arm64").to_string()));
        assert!(s[2].ends_with("2.5 MB"));
        assert_eq!(s[3], format!("index {}", Digest::of(b"i")));
        assert_eq!(s[4], "  pushed to r/x:1");
    }
}
