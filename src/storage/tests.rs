//! Storage tests on real state directories: least recently used first, `--keep-storage`,
//! `until`, what default prune keeps, items a live session claimed, cache mounts in use.
//! (Leftovers of a killed process: `tests/integration/storage.rs`, with a real SIGKILL.)

use std::fs;
use std::time::{Duration, SystemTime};

use super::*;
use crate::cache::{CacheKey, Entries, Entry, EntryLayer};
use crate::oci::Digest;

fn set_mtime(path: &std::path::Path, ago_secs: u64) {
    let t = SystemTime::now() - Duration::from_secs(ago_secs);
    let f = fs::File::open(path).unwrap();
    f.set_modified(t).unwrap();
}

/// A blob of `size` bytes last used `ago` seconds ago.
fn blob(store: &Store, size: usize, seed: u8, ago: u64) -> Digest {
    let (d, _) = store.put_bytes(&vec![seed; size]).unwrap();
    set_mtime(&store.blob_path(&d), ago);
    d
}

#[test]
fn least_recently_used_first_until_keep_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let old = blob(&store, 1000, 1, 3000);
    let mid = blob(&store, 1000, 2, 2000);
    let new = blob(&store, 1000, 3, 1000);
    let done = prune(
        &store,
        &PruneOptions {
            keep_storage: Some(1500),
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert_eq!((done.items, done.bytes, done.left), (2, 2000, 1000));
    assert!(!store.has_blob(&old) && !store.has_blob(&mid) && store.has_blob(&new));
    // until: only what is older than the duration.
    let older = blob(&store, 10, 4, 7200);
    let done = prune(
        &store,
        &PruneOptions {
            until: Some(Duration::from_secs(3600)),
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert_eq!(done.items, 1);
    assert!(!store.has_blob(&older) && store.has_blob(&new));
}

#[test]
fn default_prune_keeps_the_step_cache_and_all_takes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let layer = blob(&store, 100, 1, 100);
    let loose = blob(&store, 100, 2, 100);
    let entries = Entries::open(&store).unwrap();
    let e = Entry {
        key: CacheKey(Digest::of(b"k")),
        created: "2024-01-01T00:00:00Z".into(),
        created_by: "RUN x".into(),
        layer: Some(EntryLayer {
            media_type: crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP.into(),
            digest: layer.clone(),
            size: 100,
            diff_id: Digest::of(b"diff"),
        }),
    };
    entries.put(&e).unwrap();
    let mounts = tmp.path().join("cache-mounts/abc");
    fs::create_dir_all(mounts.join("data")).unwrap();
    fs::write(mounts.join("lock"), "").unwrap();
    prune(&store, &PruneOptions::default()).unwrap();
    assert!(store.has_blob(&layer), "an entry's layer blob is kept");
    assert!(!store.has_blob(&loose), "a blob no entry needs goes");
    assert!(mounts.is_dir(), "cache mounts stay without --all");
    let u = usage(&store);
    assert_eq!(
        u.iter().find(|u| u.kind == Kind::StepCache).unwrap().items,
        1
    );

    // A cache mount whose lock a build holds survives --all.
    let held = fs::File::open(mounts.join("lock")).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
    let done = prune(
        &store,
        &PruneOptions {
            all: true,
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert!(mounts.is_dir() && done.in_use == 1);
    assert!(!store.has_blob(&layer));
    assert_eq!(entries.get(&e.key).unwrap(), crate::cache::Lookup::Missing);
    drop(held);
    prune(
        &store,
        &PruneOptions {
            all: true,
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert!(!mounts.exists());
}

#[test]
fn what_a_live_session_claimed_and_its_work_in_progress_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let pruner = Store::open(tmp.path()).unwrap();
    let old = blob(&pruner, 10, 1, 5000);
    let claimed = blob(&pruner, 10, 2, 5000);
    // Another process (a second session on the same directory) starts and claims one blob.
    let build = Store::open(tmp.path()).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(build.claim_blob(&claimed).unwrap());
    let work = build.temp_dir("step").unwrap();
    fs::write(work.path().join("x"), "in progress").unwrap();
    let done = prune(
        &pruner,
        &PruneOptions {
            all: true,
            ..PruneOptions::default()
        },
    )
    .unwrap();
    assert!(!pruner.has_blob(&old));
    assert!(pruner.has_blob(&claimed), "claimed by a live session");
    assert_eq!(done.in_use, 1);
    assert!(
        work.path().join("x").is_file(),
        "a live session's work is never touched"
    );
}
