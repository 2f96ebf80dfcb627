//! Shared cache export against an in-memory registry where another writer's stale push lands
//! right after ours (a race a real registry cannot be made to lose on demand): the export reads
//! back, finds its entries gone, merges again and keeps both writers' entries.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::cache::artifact::{CacheConfig, MEDIA_TYPE_CACHE_CONFIG};
use crate::cache::{CacheKey, EntryLayer};
use crate::oci::{self, Descriptor, Digest, MEDIA_TYPE_OCI_MANIFEST};
use crate::registry::fake::FakeRegistry;
use crate::registry::{BlobPush, RawManifest};

/// A registry where, right after our first manifest push to a tag, another job's push (made
/// from what the tag held before ours) replaces it.
struct Racing {
    inner: FakeRegistry,
    stale: (Vec<u8>, String),
    raced: AtomicBool,
}

impl Registry for Racing {
    async fn get_manifest(&self, r: &Reference) -> Result<RawManifest, RegistryError> {
        self.inner.get_manifest(r).await
    }
    async fn fetch_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        self.inner.fetch_blob(repo, desc, dest).await
    }
    async fn head_manifest(&self, r: &Reference) -> Result<Option<Descriptor>, RegistryError> {
        self.inner.head_manifest(r).await
    }
    async fn copy_blob(
        &self,
        from: &Reference,
        to: &Reference,
        desc: &Descriptor,
    ) -> Result<BlobPush, RegistryError> {
        self.inner.copy_blob(from, to, desc).await
    }
    async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        self.inner.blob_exists(repo, digest).await
    }
    async fn abandon_upload(&self, registry: &str, location: &str) -> Result<(), RegistryError> {
        self.inner.abandon_upload(registry, location).await
    }
    async fn check_push(&self, repo: &Reference) -> Result<(), RegistryError> {
        self.inner.check_push(repo).await
    }
    async fn push_growing_blob(
        &self,
        repo: &Reference,
        blob: crate::registry::GrowingBlob,
    ) -> Result<(Descriptor, BlobPush), RegistryError> {
        self.inner.push_growing_blob(repo, blob).await
    }
    async fn push_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
    ) -> Result<BlobPush, RegistryError> {
        self.inner.push_blob(repo, desc, path).await
    }
    async fn push_manifest(
        &self,
        repo: &Reference,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let d = self
            .inner
            .push_manifest(repo, reference, bytes, media_type)
            .await?;
        if !reference.starts_with("sha256:") && !self.raced.swap(true, Ordering::SeqCst) {
            let (stale, mt) = &self.stale;
            self.inner.insert_manifest(repo, Some(reference), stale, mt);
        }
        Ok(d)
    }
}

fn entry(name: &str, layer: Option<&Descriptor>) -> Entry {
    Entry {
        key: CacheKey(Digest::of(name.as_bytes())),
        created: "2024-01-01T00:00:00Z".into(),
        created_by: format!("RUN {name}"),
        layer: layer.map(|d| EntryLayer {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            diff_id: Digest::of(name.as_bytes()),
        }),
    }
}

#[tokio::test]
async fn a_stale_push_after_ours_is_detected_and_merged_again() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let repo: Reference = "reg.example/app:cache".parse().unwrap();
    let inner = FakeRegistry::new();
    // The other job's cache: one entry, its config and layer blob in the repository.
    let theirs_layer = inner.insert_blob(&repo, b"their layer");
    let theirs = CacheConfig::new([entry("theirs", Some(&theirs_layer))]);
    let cfg = inner.insert_blob(&repo, &theirs.to_bytes());
    let stale_manifest = oci::to_bytes(&theirs.manifest(Descriptor::new(
        MEDIA_TYPE_CACHE_CONFIG,
        cfg.digest,
        cfg.size,
    )));
    let registry = Racing {
        inner,
        stale: (stale_manifest, MEDIA_TYPE_OCI_MANIFEST.into()),
        raced: AtomicBool::new(false),
    };
    // Ours: a layer in the local store and a config-only step.
    let (ours_digest, ours_size) = store.put_bytes(b"our layer").unwrap();
    let ours_layer = Descriptor::new(
        crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP,
        ours_digest,
        ours_size,
    );
    let ours = [
        ExportEntry {
            entry: entry("ours", Some(&ours_layer)),
            origin: None,
        },
        ExportEntry {
            entry: entry("ours-config", None),
            origin: None,
        },
    ];
    let target = CacheTarget {
        location: CacheLocation::Registry(repo.clone()),
        mode: ExportMode::Max,
        ignore_error: false,
    };
    let done = export(&registry, &store, &target, &ours).await.unwrap();
    assert_eq!(done.rounds, 2, "the lost round is noticed");
    assert_eq!(done.total, 3);
    let source = CacheSource {
        location: CacheLocation::Registry(repo.clone()),
    };
    let got = import(&registry, &store, &source).await.unwrap().unwrap();
    let names: Vec<String> = got.iter().map(|e| e.entry.created_by.clone()).collect();
    for n in ["RUN theirs", "RUN ours", "RUN ours-config"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    assert!(registry.inner.blob(&repo, &ours_layer.digest).is_some());
    // Exporting again pushes no manifest: the tag has every entry.
    let before = registry.inner.calls().len();
    let again = export(&registry, &store, &target, &ours).await.unwrap();
    assert_eq!((again.added, again.rounds), (0, 1));
    assert!(registry.inner.calls()[before..]
        .iter()
        .all(|c| c.kind() != crate::registry::fake::CallKind::PushManifest));
}
