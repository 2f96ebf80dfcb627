//! Publishing the stitched index: pushing it to every tag, then reading each tag back until it
//! serves what was pushed (waiting out read-after-write lag; anything else, such as a
//! concurrent push, is an error).
//!
//! Level 3 (orchestration over the [`Registry`] port). It runs last, once every child is in
//! place; it must not copy content or change the index.

use std::time::{Duration, Instant};

use super::error::{reg_err, MergeError};
use super::wait::pause;
use super::MergeRequest;
use crate::index::StitchedIndex;
use crate::progress::{Event, Sink};
use crate::registry::Registry;

/// Pushes `stitched` to each of `req`'s tags (`latest` when a tag names none), then reads every
/// tag back; returns the tags as `repo:tag`, in order.
///
/// Errors: [`MergeError::Registry`], [`MergeError::TagMismatch`] when a tag still serves
/// something else after `req.visibility_timeout`.
pub(super) async fn to_tags<R: Registry>(
    registry: &R,
    req: &MergeRequest,
    stitched: &StitchedIndex,
    sink: &dyn Sink,
) -> Result<Vec<String>, MergeError> {
    let media_type = req.format.media_type();
    let mut pushed_tags = Vec::new();
    for tag in &req.tags {
        let name = tag.tag.clone().unwrap_or_else(|| "latest".into());
        let shown = format!("{}:{name}", tag.repo_string());
        registry
            .push_manifest(tag, &name, &stitched.bytes, media_type)
            .await
            .map_err(reg_err(format!("push {shown}")))?;
        pushed_tags.push(shown);
    }
    // Read every tag back: it must serve what was pushed (a registry that lags is waited for;
    // one that serves something else, e.g. a concurrent push, is an error).
    for (tag, shown) in req.tags.iter().zip(&pushed_tags) {
        let deadline = Instant::now() + req.visibility_timeout;
        let mut wait = Duration::from_millis(100);
        loop {
            let got = registry
                .get_manifest(tag)
                .await
                .map_err(reg_err(format!("read back {shown}")))?;
            if got.digest == stitched.digest {
                break;
            }
            if !pause(deadline, &mut wait).await {
                return Err(MergeError::TagMismatch {
                    tag: shown.clone(),
                    expected: stitched.digest.clone(),
                    found: got.digest.to_string(),
                });
            }
        }
        sink.emit(Event::IndexPushed {
            tag: shown.clone(),
            digest: stitched.digest.clone(),
        });
    }
    Ok(pushed_tags)
}
