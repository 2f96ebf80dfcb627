//! [`FakeRegistry`]: an in-memory [`Registry`] that records every call, for the tests of the
//! layers above (coordinator, CLI) that must not need a registry process.
//!
//! It keeps the real one's contract: manifests are stored and served as the exact bytes pushed,
//! fetched content is checked against its digest and size, a pushed blob whose bytes do not hash
//! to its descriptor's digest is refused as a registry would (`DIGEST_INVALID`), and a blob
//! already present is not uploaded again. Failures can be queued per kind of call.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::{
    check_manifest_push, manifest_media_type, BlobProgress, BlobPush, GrowingBlob, RawManifest,
    Reference, Registry, RegistryError,
};
use crate::oci::{Descriptor, Digest};

/// One call made to a [`FakeRegistry`], with its arguments in canonical string form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// [`Registry::get_manifest`] of a reference (canonical form).
    GetManifest {
        /// The reference, e.g. `docker.io/library/busybox:1.36`.
        reference: String,
    },
    /// [`Registry::fetch_blob`].
    FetchBlob {
        /// `registry/repository`.
        repo: String,
        /// The blob's digest.
        digest: Digest,
    },
    /// [`Registry::blob_exists`].
    BlobExists {
        /// `registry/repository`.
        repo: String,
        /// The blob's digest.
        digest: Digest,
    },
    /// [`Registry::push_blob`].
    PushBlob {
        /// `registry/repository`.
        repo: String,
        /// The blob's digest.
        digest: Digest,
    },
    /// [`Registry::head_manifest`].
    HeadManifest {
        /// The reference, canonical form.
        reference: String,
    },
    /// [`Registry::copy_blob`].
    CopyBlob {
        /// Source `registry/repository`.
        from: String,
        /// Target `registry/repository`.
        to: String,
        /// The blob's digest.
        digest: Digest,
    },
    /// [`Registry::abandon_upload`].
    AbandonUpload {
        /// The registry.
        registry: String,
        /// The session URL.
        location: String,
    },
    /// [`Registry::push_manifest`].
    PushManifest {
        /// `registry/repository`.
        repo: String,
        /// The tag or digest string pushed to.
        reference: String,
        /// The media type sent.
        media_type: String,
    },
}

impl Call {
    /// Which kind of call this is.
    pub fn kind(&self) -> CallKind {
        match self {
            Call::GetManifest { .. } => CallKind::GetManifest,
            Call::FetchBlob { .. } => CallKind::FetchBlob,
            Call::BlobExists { .. } => CallKind::BlobExists,
            Call::PushBlob { .. } => CallKind::PushBlob,
            Call::PushManifest { .. } => CallKind::PushManifest,
            Call::HeadManifest { .. } => CallKind::HeadManifest,
            Call::CopyBlob { .. } => CallKind::CopyBlob,
            Call::AbandonUpload { .. } => CallKind::AbandonUpload,
        }
    }
}

/// The kinds of [`Registry`] calls, for [`FakeRegistry::fail_next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// [`Registry::get_manifest`].
    GetManifest,
    /// [`Registry::fetch_blob`].
    FetchBlob,
    /// [`Registry::blob_exists`].
    BlobExists,
    /// [`Registry::push_blob`].
    PushBlob,
    /// [`Registry::push_manifest`].
    PushManifest,
    /// [`Registry::head_manifest`].
    HeadManifest,
    /// [`Registry::copy_blob`].
    CopyBlob,
    /// [`Registry::abandon_upload`].
    AbandonUpload,
}

#[derive(Default)]
struct State {
    /// (`registry/repository`, digest) → bytes. The bytes may be a lie (see `insert_blob_as`).
    blobs: HashMap<(String, Digest), Vec<u8>>,
    /// (`registry/repository`, tag or digest string) → (bytes, media type).
    manifests: HashMap<(String, String), (Vec<u8>, String)>,
    calls: Vec<Call>,
    failures: HashMap<CallKind, VecDeque<RegistryError>>,
    /// Tags whose manifest pushes fail (503).
    broken_tags: Vec<String>,
}

/// An in-memory registry. Thread-safe; share it by reference or `Arc`.
#[derive(Default)]
pub struct FakeRegistry {
    state: Mutex<State>,
}

impl FakeRegistry {
    /// An empty registry.
    pub fn new() -> FakeRegistry {
        FakeRegistry::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent maps behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `call` and returns the error queued for its kind, if any.
    fn enter(&self, call: Call) -> Result<(), RegistryError> {
        let mut state = self.lock();
        let kind = call.kind();
        state.calls.push(call);
        match state.failures.get_mut(&kind).and_then(VecDeque::pop_front) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Makes every manifest push to the tag `tag` fail with HTTP 503 from now on.
    pub fn break_tag(&self, tag: &str) {
        self.lock().broken_tags.push(tag.to_string());
    }

    /// Stores `bytes` as a blob of `repo` and returns its descriptor (media type
    /// `application/octet-stream`).
    pub fn insert_blob(&self, repo: &Reference, bytes: &[u8]) -> Descriptor {
        let digest = Digest::of(bytes);
        self.insert_blob_as(repo, &digest, bytes);
        Descriptor::new("application/octet-stream", digest, bytes.len() as u64)
    }

    /// Stores `bytes` under `digest` whether or not they hash to it: a registry that serves
    /// corrupt content.
    pub fn insert_blob_as(&self, repo: &Reference, digest: &Digest, bytes: &[u8]) {
        self.lock()
            .blobs
            .insert((repo.repo_string(), digest.clone()), bytes.to_vec());
    }

    /// Stores a manifest under its digest and, when given, under `tag`; returns its digest.
    pub fn insert_manifest(
        &self,
        repo: &Reference,
        tag: Option<&str>,
        bytes: &[u8],
        media_type: &str,
    ) -> Digest {
        let digest = Digest::of(bytes);
        let mut state = self.lock();
        let value = (bytes.to_vec(), media_type.to_string());
        state
            .manifests
            .insert((repo.repo_string(), digest.to_string()), value.clone());
        if let Some(tag) = tag {
            state
                .manifests
                .insert((repo.repo_string(), tag.to_string()), value);
        }
        digest
    }

    /// The blob `digest` of `repo`, if stored.
    pub fn blob(&self, repo: &Reference, digest: &Digest) -> Option<Vec<u8>> {
        self.lock()
            .blobs
            .get(&(repo.repo_string(), digest.clone()))
            .cloned()
    }

    /// The manifest stored in `repo` under `reference` (a tag or digest string), if any.
    pub fn manifest(&self, repo: &Reference, reference: &str) -> Option<RawManifest> {
        self.lock()
            .manifests
            .get(&(repo.repo_string(), reference.to_string()))
            .map(|(bytes, media_type)| RawManifest {
                digest: Digest::of(bytes),
                bytes: bytes.clone(),
                media_type: media_type.clone(),
            })
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes the next call of `kind` fail with `err` (queued: several calls fail in turn).
    pub fn fail_next(&self, kind: CallKind, err: RegistryError) {
        self.lock().failures.entry(kind).or_default().push_back(err);
    }
}

impl Registry for FakeRegistry {
    async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest, RegistryError> {
        let what = reference.to_string();
        self.enter(Call::GetManifest {
            reference: what.clone(),
        })?;
        let target = reference.manifest_reference();
        let Some(found) = self.manifest(reference, &target) else {
            return Err(RegistryError::NotFound { reference: what });
        };
        if let Some(expected) = &reference.digest {
            if *expected != found.digest {
                return Err(RegistryError::DigestMismatch {
                    what,
                    expected: expected.clone(),
                    found: found.digest.to_string(),
                });
            }
        }
        manifest_media_type(&found.bytes, None, &what)?;
        Ok(found)
    }

    async fn head_manifest(
        &self,
        reference: &Reference,
    ) -> Result<Option<Descriptor>, RegistryError> {
        self.enter(Call::HeadManifest {
            reference: reference.to_string(),
        })?;
        Ok(self
            .manifest(reference, &reference.manifest_reference())
            .map(|m| m.descriptor()))
    }

    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        desc: &Descriptor,
    ) -> Result<BlobPush, RegistryError> {
        self.enter(Call::CopyBlob {
            from: from.repo_string(),
            to: to.repo_string(),
            digest: desc.digest.clone(),
        })?;
        if self.blob(to, &desc.digest).is_some() {
            return Ok(BlobPush::AlreadyPresent);
        }
        let Some(bytes) = self.blob(from, &desc.digest) else {
            return Err(RegistryError::NotFound {
                reference: format!("blob {} in {}", desc.digest, from.repo_string()),
            });
        };
        self.insert_blob_as(to, &desc.digest, &bytes);
        // One registry mounts; across registries the bytes travel.
        Ok(if from.registry == to.registry {
            BlobPush::Mounted
        } else {
            BlobPush::Uploaded
        })
    }

    async fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        self.enter(Call::FetchBlob {
            repo: repo.repo_string(),
            digest: desc.digest.clone(),
        })?;
        let what = format!("blob {} in {}", desc.digest, repo.repo_string());
        let Some(bytes) = self.blob(repo, &desc.digest) else {
            return Err(RegistryError::NotFound { reference: what });
        };
        if bytes.len() as u64 != desc.size {
            return Err(RegistryError::SizeMismatch {
                what,
                expected: desc.size,
                found: bytes.len() as u64,
            });
        }
        let found = Digest::of(&bytes);
        if found != desc.digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: desc.digest.clone(),
                found: found.to_string(),
            });
        }
        tokio::fs::write(dest, &bytes)
            .await
            .map_err(|source| RegistryError::Io {
                action: "write",
                path: dest.to_path_buf(),
                source,
            })
    }

    async fn abandon_upload(&self, registry: &str, location: &str) -> Result<(), RegistryError> {
        // No sessions are modelled: uploads here are whole, so there is nothing to drop.
        self.enter(Call::AbandonUpload {
            registry: registry.to_string(),
            location: location.to_string(),
        })
    }

    async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        self.enter(Call::BlobExists {
            repo: repo.repo_string(),
            digest: digest.clone(),
        })?;
        Ok(self.blob(repo, digest).is_some())
    }

    async fn push_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<BlobPush, RegistryError> {
        self.enter(Call::PushBlob {
            repo: repo.repo_string(),
            digest: desc.digest.clone(),
        })?;
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| RegistryError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            })?;
        if bytes.len() as u64 != desc.size {
            return Err(RegistryError::BlobFileSize {
                path: path.to_path_buf(),
                expected: desc.size,
                found: bytes.len() as u64,
            });
        }
        if self.blob(repo, &desc.digest).is_some() {
            return Ok(BlobPush::AlreadyPresent);
        }
        if Digest::of(&bytes) != desc.digest {
            // What a registry answers when the upload does not hash to the digest given on
            // commit (distribution-spec "Error Codes": DIGEST_INVALID).
            return Err(RegistryError::Rejected {
                registry: repo.registry.clone(),
                what: format!("blob {} to {}", desc.digest, repo.repo_string()),
                code: "DIGEST_INVALID".into(),
                message: "provided digest did not match uploaded content".into(),
            });
        }
        self.insert_blob_as(repo, &desc.digest, &bytes);
        Ok(BlobPush::Uploaded)
    }

    async fn check_push(&self, _repo: &Reference) -> Result<(), RegistryError> {
        Ok(())
    }

    async fn push_growing_blob(
        &self,
        repo: &Reference,
        mut blob: GrowingBlob,
    ) -> Result<(Descriptor, BlobPush), RegistryError> {
        // Waits for the finished blob, then behaves as `push_blob` of it (recorded as one).
        let desc = loop {
            let now = blob.progress.borrow_and_update().clone();
            match now {
                BlobProgress::Finished(d) => break d,
                BlobProgress::Abandoned(reason) => {
                    return Err(RegistryError::Abandoned {
                        path: blob.path.clone(),
                        reason,
                    })
                }
                BlobProgress::Written(_) => {}
            }
            if blob.progress.changed().await.is_err() {
                return Err(RegistryError::Abandoned {
                    path: blob.path.clone(),
                    reason: "the writer stopped without finishing it".into(),
                });
            }
        };
        let mut bytes = vec![0; desc.size as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*blob.file, &mut bytes, 0).map_err(
            |source| RegistryError::Io {
                action: "read",
                path: blob.path.clone(),
                source,
            },
        )?;
        let dir = tempfile::tempdir().map_err(|source| RegistryError::Io {
            action: "create a temp dir for",
            path: blob.path.clone(),
            source,
        })?;
        let copy = dir.path().join("blob");
        std::fs::write(&copy, &bytes).map_err(|source| RegistryError::Io {
            action: "write",
            path: copy.clone(),
            source,
        })?;
        let pushed = self.push_blob(repo, &desc, &copy).await?;
        Ok((desc, pushed))
    }

    async fn push_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.enter(Call::PushManifest {
            repo: repo.repo_string(),
            reference: reference.to_string(),
            media_type: media_type.to_string(),
        })?;
        let digest = check_manifest_push(repo, reference, bytes)?;
        let tag = (!reference.starts_with("sha256:")).then_some(reference);
        if tag.is_some_and(|t| self.lock().broken_tags.iter().any(|b| b == t)) {
            return Err(RegistryError::Status {
                registry: repo.registry.clone(),
                what: format!("manifest {}:{reference}", repo.repo_string()),
                status: 503,
                body_excerpt: "broken on purpose".into(),
                retry_after_secs: None,
            });
        }
        self.insert_manifest(repo, tag, bytes, media_type);
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};

    fn repo() -> Reference {
        Reference::parse("127.0.0.1:5000/team/app").unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn push_then_fetch_round_trips_and_records() {
        block_on(async {
            let fake = FakeRegistry::new();
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("blob");
            std::fs::write(&src, b"layer bytes").unwrap();
            let desc = Descriptor::new("x", Digest::of(b"layer bytes"), 11);

            assert!(!fake.blob_exists(&repo(), &desc.digest).await.unwrap());
            let first = fake.push_blob(&repo(), &desc, &src).await.unwrap();
            let second = fake.push_blob(&repo(), &desc, &src).await.unwrap();
            assert_eq!(
                (first, second),
                (BlobPush::Uploaded, BlobPush::AlreadyPresent)
            );

            let dest = dir.path().join("out");
            fake.fetch_blob(&repo(), &desc, &dest).await.unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), b"layer bytes");

            let manifest = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
            let d = Digest::of(manifest);
            let pushed = fake
                .push_manifest(&repo(), &d.to_string(), manifest, MEDIA_TYPE_OCI_MANIFEST)
                .await
                .unwrap();
            assert_eq!(pushed, d);
            let index = br#"{"schemaVersion":2,"manifests":[]}"#;
            fake.push_manifest(&repo(), "v1", index, MEDIA_TYPE_OCI_INDEX)
                .await
                .unwrap();
            let got = fake
                .get_manifest(&repo().with_tag("v1").unwrap())
                .await
                .unwrap();
            assert_eq!(got.bytes, index);
            assert_eq!(got.media_type, MEDIA_TYPE_OCI_INDEX);
            assert!(got.is_index());

            let kinds: Vec<CallKind> = fake.calls().iter().map(Call::kind).collect();
            assert_eq!(
                kinds,
                [
                    CallKind::BlobExists,
                    CallKind::PushBlob,
                    CallKind::PushBlob,
                    CallKind::FetchBlob,
                    CallKind::PushManifest,
                    CallKind::PushManifest,
                    CallKind::GetManifest,
                ]
            );
        });
    }

    #[test]
    fn checks_digests_like_a_registry() {
        block_on(async {
            let fake = FakeRegistry::new();
            let dir = tempfile::tempdir().unwrap();
            let claimed = Digest::of(b"good");
            fake.insert_blob_as(&repo(), &claimed, b"evil");
            let desc = Descriptor::new("x", claimed.clone(), 4);
            let dest = dir.path().join("out");
            let err = fake.fetch_blob(&repo(), &desc, &dest).await.unwrap_err();
            assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");

            let src = dir.path().join("blob");
            std::fs::write(&src, b"evil").unwrap();
            let fresh = Reference::parse("127.0.0.1:5000/other").unwrap();
            let err = fake.push_blob(&fresh, &desc, &src).await.unwrap_err();
            assert!(
                matches!(err, RegistryError::Rejected { ref code, .. } if code == "DIGEST_INVALID")
            );

            let err = fake
                .push_manifest(
                    &repo(),
                    &claimed.to_string(),
                    b"{}",
                    MEDIA_TYPE_OCI_MANIFEST,
                )
                .await
                .unwrap_err();
            assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");

            let missing = Reference::parse("127.0.0.1:5000/team/app:nope").unwrap();
            let err = fake.get_manifest(&missing).await.unwrap_err();
            assert!(
                matches!(err, RegistryError::NotFound { ref reference } if reference.contains(":nope"))
            );
        });
    }

    #[test]
    fn queued_failures_fire_once_in_order() {
        block_on(async {
            let fake = FakeRegistry::new();
            let d = Digest::of(b"");
            fake.fail_next(
                CallKind::BlobExists,
                RegistryError::Status {
                    registry: "r".into(),
                    what: "w".into(),
                    status: 503,
                    body_excerpt: String::new(),
                    retry_after_secs: None,
                },
            );
            let err = fake.blob_exists(&repo(), &d).await.unwrap_err();
            assert!(err.is_transient());
            assert!(!fake.blob_exists(&repo(), &d).await.unwrap());
            assert_eq!(fake.calls().len(), 2);
        });
    }
}
