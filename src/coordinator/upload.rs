//! Layers uploaded while they are written: a step's layer goes to the store and, chunk by
//! chunk as the compressor writes it, to the push target ([`Registry::push_growing_blob`]), so
//! that a big layer is mostly uploaded when its compression ends. The result of writing a layer
//! stays "the blob is in the store with this digest and diff_id" (what the step cache reuses);
//! the upload is a side effect recorded in [`EarlyUploads`], which the image push consults so
//! that it neither sends the blob again nor reports it as found.
//!
//! Level 3 (coordinator), under [`super::step`]: it tees the layer writer and drives the upload
//! beside it; it must not decide which layers to upload (the stage does) or push manifests.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::*;
use crate::registry::{BlobProgress, GrowingBlob};
use crate::store::BlobWriter;

/// How often (bytes) the writer makes what it wrote readable and says so.
const PUBLISH_EVERY: u64 = 1 << 20;

/// One blob's push to one repository, held by the platform sending it.
type Turn = Arc<tokio::sync::Mutex<()>>;

/// The blobs this build put in each repository, by repository and digest: those uploaded
/// while they were written, and those the image pushes of the platforms sent. Platforms that
/// share a layer (a `COPY --from` of the same bytes, a base layer) push it once: the others
/// wait for that push ([`EarlyUploads::turn`]) and find it done.
#[derive(Default)]
pub(super) struct EarlyUploads {
    done: Mutex<HashSet<(String, Digest)>>,
    pushed: Mutex<HashSet<(String, Digest)>>,
    turns: Mutex<HashMap<(String, Digest), Turn>>,
}

impl EarlyUploads {
    /// Waits until no other platform of this build is pushing `digest` to `repo`; the push
    /// is this caller's until the guard drops.
    pub(super) async fn turn(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            turns
                .entry((repo.repo_string(), digest.clone()))
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }

    /// Records that a platform's image push put `digest` in `repo`.
    pub(super) fn pushed(&self, repo: &Reference, digest: &Digest) {
        if let Ok(mut d) = self.pushed.lock() {
            d.insert((repo.repo_string(), digest.clone()));
        }
    }

    /// Whether another platform's image push put `digest` in `repo` already.
    pub(super) fn was_pushed(&self, repo: &Reference, digest: &Digest) -> bool {
        self.pushed
            .lock()
            .is_ok_and(|d| d.contains(&(repo.repo_string(), digest.clone())))
    }

    /// Records that `repo` has `digest` (uploaded while it was written).
    fn record(&self, repo: &Reference, digest: &Digest) {
        if let Ok(mut d) = self.done.lock() {
            d.insert((repo.repo_string(), digest.clone()));
        }
    }

    /// Whether `digest` was uploaded to `repo` while it was written.
    pub(super) fn has(&self, repo: &Reference, digest: &Digest) -> bool {
        self.done
            .lock()
            .is_ok_and(|d| d.contains(&(repo.repo_string(), digest.clone())))
    }
}

/// A store blob writer that makes its bytes readable every [`PUBLISH_EVERY`] bytes and tells
/// the uploader how far it is.
pub(super) struct Teed {
    inner: BlobWriter,
    tx: watch::Sender<BlobProgress>,
    published: u64,
}

impl Teed {
    /// `inner`, and the blob an uploader reads as it grows.
    pub(super) fn new(inner: BlobWriter) -> io::Result<(Teed, GrowingBlob)> {
        let (file, path) = inner.reader()?;
        let (tx, rx) = watch::channel(BlobProgress::Written(0));
        let blob = GrowingBlob {
            file: Arc::new(file),
            path,
            progress: rx,
        };
        Ok((
            Teed {
                inner,
                tx,
                published: 0,
            },
            blob,
        ))
    }

    /// The store writer back, to commit; what was written is flushed.
    pub(super) fn into_inner(mut self) -> io::Result<(BlobWriter, watch::Sender<BlobProgress>)> {
        self.inner.flush()?;
        Ok((self.inner, self.tx))
    }
}

impl Write for Teed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let size = self.inner.size();
        if size - self.published >= PUBLISH_EVERY {
            self.inner.flush()?;
            self.published = size;
            let _ = self.tx.send(BlobProgress::Written(size));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Uploads `blob` to `target` as it grows and records it; a failed upload is only logged (the
/// image push sends the layer from the store then).
pub(super) async fn follow<R: Registry>(
    registry: &R,
    early: &EarlyUploads,
    target: &Reference,
    blob: GrowingBlob,
) {
    match registry.push_growing_blob(target, blob).await {
        Ok((desc, _)) => early.record(target, &desc.digest),
        Err(e) => tracing::info!(%target, "layer upload while writing failed, pushed later: {e}"),
    }
}
