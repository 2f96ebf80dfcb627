//! Store tests: blobs, layers and layout export against real files (skopeo reads the layout).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::exit::{Classify, ExitCode};
use crate::layer::{self, write_layer, LayerOptions};
use crate::oci::{
    self, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, RootFs,
    MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST,
};

fn store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("state")).unwrap();
    (tmp, store)
}

fn tmp_is_empty(store: &Store) -> bool {
    fs::read_dir(store.session_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "lock")
        .count()
        == 0
}

/// A small upper directory and its layer blob committed to the store.
fn stored_layer(store: &Store, content: &[u8]) -> layer::LayerBlob {
    let upper = store.temp_dir("upper-").unwrap();
    fs::create_dir(upper.path().join("etc")).unwrap();
    fs::write(upper.path().join("etc/motd"), content).unwrap();
    let mut w = store.blob_writer().unwrap();
    let blob = write_layer(upper.path(), &mut w, &LayerOptions::default()).unwrap();
    let (digest, size) = w.commit(Some(&blob.digest)).unwrap();
    assert_eq!((digest, size), (blob.digest.clone(), blob.size));
    blob
}

#[test]
fn open_creates_the_layout() {
    let (tmp, store) = store();
    for dir in ["blobs/sha256", "layers", "procs"] {
        assert!(tmp.path().join("state").join(dir).is_dir(), "{dir}");
    }
    // Opening again is fine.
    Store::open(store.root()).unwrap();
}

#[test]
fn blobs_round_trip_and_verify() {
    let (_tmp, store) = store();
    let (digest, size) = store.put_bytes(b"hello").unwrap();
    assert_eq!(digest, Digest::of(b"hello"));
    assert_eq!(size, 5);
    assert!(store.has_blob(&digest));
    assert_eq!(store.read_blob(&digest).unwrap(), b"hello");
    let mode = fs::metadata(store.blob_path(&digest))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444);
    // Writing the same content again keeps one copy and succeeds.
    assert_eq!(store.put_bytes(b"hello").unwrap(), (digest.clone(), 5));
    assert!(tmp_is_empty(&store));

    let absent = Digest::of(b"absent");
    assert!(!store.has_blob(&absent));
    let e = store.read_blob(&absent).unwrap_err();
    assert!(matches!(e, StoreError::MissingBlob { .. }), "{e}");
    assert!(matches!(
        store.open_blob(&absent).unwrap_err(),
        StoreError::MissingBlob { .. }
    ));
}

#[test]
fn commit_refuses_the_wrong_digest_and_leaves_nothing() {
    let (_tmp, store) = store();
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"actual").unwrap();
    assert_eq!(w.size(), 6);
    let expected = Digest::of(b"expected");
    let e = w.commit(Some(&expected)).unwrap_err();
    match &e {
        StoreError::DigestMismatch {
            expected: exp,
            found,
        } => {
            assert_eq!(exp, &expected);
            assert_eq!(found, &Digest::of(b"actual"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&expected.to_string()));
    assert_eq!(e.exit_code(), ExitCode::BadInput);
    assert!(!store.has_blob(&Digest::of(b"actual")));
    assert!(tmp_is_empty(&store));
}

#[test]
fn corrupt_blobs_are_detected_on_read() {
    let (_tmp, store) = store();
    let (digest, _) = store.put_bytes(b"{}").unwrap();
    let path = store.blob_path(&digest);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"{\"x\":1}").unwrap();
    let e = store.read_blob(&digest).unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::BadInput);
}

#[test]
fn unpack_blob_once_per_diff_id() {
    let (_tmp, store) = store();
    let blob = stored_layer(&store, b"hi\n");
    assert!(!store.has_layer(&blob.diff_id));
    let dir = store
        .unpack_blob(&blob.digest, &blob.media_type, Some(&blob.diff_id))
        .unwrap();
    assert_eq!(dir, store.layer_dir(&blob.diff_id));
    assert!(store.has_layer(&blob.diff_id));
    assert_eq!(fs::read(dir.join("etc/motd")).unwrap(), b"hi\n");
    // Again, without an expected diff_id: unpacked again, the existing copy is kept.
    fs::write(dir.join("marker"), b"").unwrap();
    let again = store
        .unpack_blob(&blob.digest, &blob.media_type, None)
        .unwrap();
    assert_eq!(again, dir);
    assert!(dir.join("marker").exists());
    assert!(tmp_is_empty(&store));
}

#[test]
fn unpack_blob_checks_the_diff_id() {
    let (_tmp, store) = store();
    let blob = stored_layer(&store, b"hi\n");
    let wrong = Digest::of(b"wrong");
    let e = store
        .unpack_blob(&blob.digest, &blob.media_type, Some(&wrong))
        .unwrap_err();
    assert!(matches!(e, StoreError::DiffIdMismatch { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::BadInput);
    assert!(!store.has_layer(&wrong));
    assert!(!store.has_layer(&blob.diff_id));
    assert!(tmp_is_empty(&store));

    let e = store
        .unpack_blob(&blob.digest, "application/octet-stream", None)
        .unwrap_err();
    assert!(matches!(e, StoreError::Unpack { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::BadInput);
}

#[test]
fn concurrent_unpackers_all_succeed() {
    let (_tmp, store) = store();
    let blob = stored_layer(&store, &vec![b'x'; 1 << 20]);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.unpack_blob(&blob.digest, &blob.media_type, None)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        assert_eq!(r.unwrap(), store.layer_dir(&blob.diff_id));
    }
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        1
    );
    assert!(tmp_is_empty(&store));
}

#[test]
fn adopt_layer_dir_moves_or_drops() {
    let (_tmp, store) = store();
    let diff_id = Digest::of(b"some layer");
    let first = store.temp_dir("upper-").unwrap().keep();
    fs::write(first.join("f"), b"first").unwrap();
    let dir = store.adopt_layer_dir(&first, &diff_id).unwrap();
    assert_eq!(dir, store.layer_dir(&diff_id));
    assert!(!first.exists());
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"first");

    let second = store.temp_dir("upper-").unwrap().keep();
    fs::write(second.join("f"), b"second").unwrap();
    assert_eq!(store.adopt_layer_dir(&second, &diff_id).unwrap(), dir);
    assert!(!second.exists());
    assert_eq!(fs::read(dir.join("f")).unwrap(), b"first");
    // The dropped copy is removed in the background (discard.rs).
    let started = std::time::Instant::now();
    while !tmp_is_empty(&store) {
        assert!(started.elapsed().as_secs() < 30, "the discarded copy stays");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let missing = store.root().join("no-such-dir");
    let e = store
        .adopt_layer_dir(&missing, &Digest::of(b"other"))
        .unwrap_err();
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    assert_eq!(e.exit_code(), ExitCode::Host);
    assert!(tmp_is_empty(&store));
}

/// Assembles config + one layer + manifest in the store; returns the manifest descriptor and
/// the blobs it needs.
fn stored_image(store: &Store, content: &[u8]) -> (Descriptor, Vec<Digest>) {
    let layer = stored_layer(store, content);
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            diff_ids: vec![layer.diff_id.clone()],
            ..RootFs::default()
        },
        ..ImageConfig::default()
    };
    let (config_digest, config_size) = store.put_bytes(&oci::to_bytes(&config)).unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, config_digest.clone(), config_size),
        layers: vec![layer.descriptor()],
        annotations: None,
    };
    let (digest, size) = store.put_bytes(&oci::to_bytes(&manifest)).unwrap();
    (
        Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, digest, size),
        vec![config_digest, layer.digest],
    )
}

fn skopeo_inspect(layout: &Path, reference: &str) -> serde_json::Value {
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{reference}", layout.display()))
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn skopeo_reads_the_oci_layout() {
    let (tmp, store) = store();
    let (manifest, blobs) = stored_image(&store, b"one\n");
    let layout = tmp.path().join("layout");
    store
        .write_oci_layout(&layout, &manifest, "v1", &blobs)
        .unwrap();
    assert_eq!(
        fs::read(layout.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let info = skopeo_inspect(&layout, "v1");
    assert_eq!(info["Digest"], manifest.digest.to_string());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"][0], blobs[1].to_string());
    // Hardlinked, not copied.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(layout.join("blobs/sha256").join(blobs[1].hex()))
            .unwrap()
            .ino(),
        fs::metadata(store.blob_path(&blobs[1])).unwrap().ino()
    );

    // A second ref keeps the first; re-writing a ref replaces its entry.
    let (other, other_blobs) = stored_image(&store, b"two\n");
    store
        .write_oci_layout(&layout, &other, "v2", &other_blobs)
        .unwrap();
    store
        .write_oci_layout(&layout, &other, "v1", &other_blobs)
        .unwrap();
    let index: ImageIndex =
        oci::from_bytes(&fs::read(layout.join("index.json")).unwrap(), "index").unwrap();
    assert_eq!(index.media_type.as_deref(), Some(MEDIA_TYPE_OCI_INDEX));
    assert_eq!(index.manifests.len(), 2);
    assert!(index.manifests.iter().all(|d| d.digest == other.digest));
    assert_eq!(
        skopeo_inspect(&layout, "v1")["Digest"],
        other.digest.to_string()
    );
    assert_eq!(
        skopeo_inspect(&layout, "v2")["Digest"],
        other.digest.to_string()
    );
    // Writing again leaves no blob nothing refers to: the first image's own blobs are gone,
    // the second's all there.
    let has = |d: &Digest| layout.join("blobs/sha256").join(d.hex()).is_file();
    assert!(!has(&manifest.digest));
    for b in &blobs {
        assert_eq!(has(b), other_blobs.contains(b), "{b}");
    }
    assert!(has(&other.digest) && other_blobs.iter().all(has));
    assert_eq!(
        fs::read_dir(layout.join("blobs/sha256")).unwrap().count(),
        other_blobs.len() + 1
    );
}

#[test]
fn layout_export_names_missing_blobs_and_bad_indexes() {
    let (tmp, store) = store();
    let (manifest, blobs) = stored_image(&store, b"x");
    let absent = Digest::of(b"absent");
    let layout = tmp.path().join("layout");
    let e = store
        .write_oci_layout(&layout, &manifest, "v1", std::slice::from_ref(&absent))
        .unwrap_err();
    assert!(e.to_string().contains(&absent.to_string()), "{e}");
    assert!(!layout.join("index.json").exists());

    fs::write(layout.join("index.json"), b"not json").unwrap();
    let e = store
        .write_oci_layout(&layout, &manifest, "v1", &blobs)
        .unwrap_err();
    assert!(matches!(e, StoreError::MalformedIndex { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::BadInput);
}

/// A layer whose whiteouts lie in directories it alone may have gets an anchor layer below it
/// (issue 18): those directories, empty, made once and reused.
#[test]
fn layers_with_whiteouts_get_an_anchor_below() {
    let (_tmp, store) = store();
    let upper = store.temp_dir("upper-").unwrap();
    fs::create_dir_all(upper.path().join("nowhere/deeper")).unwrap();
    for w in ["nowhere/deeper/gone", "top-gone"] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.path().join(w),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
    }
    let mut w = store.blob_writer().unwrap();
    let blob = write_layer(upper.path(), &mut w, &LayerOptions::default()).unwrap();
    w.commit(Some(&blob.digest)).unwrap();
    drop(upper);
    let with = store
        .unpack_blob(&blob.digest, &blob.media_type, Some(&blob.diff_id))
        .unwrap();
    let plain = stored_layer(&store, b"plain\n");
    let plain = store
        .unpack_blob(&plain.digest, &plain.media_type, Some(&plain.diff_id))
        .unwrap();

    assert_eq!(store.lowerdirs(vec![plain.clone()]), vec![plain.clone()]);
    let dirs = store.lowerdirs(vec![with.clone(), plain.clone()]);
    assert_eq!(dirs.len(), 3);
    assert_eq!(dirs[..2], [with.clone(), plain.clone()]);
    let anchor = &dirs[2];
    assert!(anchor.join("nowhere/deeper").is_dir());
    assert_eq!(
        fs::read_dir(anchor.join("nowhere/deeper")).unwrap().count(),
        0
    );
    assert_eq!(store.lowerdirs(vec![with, plain])[2], *anchor, "made once");
    assert!(tmp_is_empty(&store));
}

/// The blob made from a layer is recorded, so the same layer made again (another platform)
/// takes it instead of compressing again; the lock serialises the two.
#[test]
fn layer_blobs_are_recorded_once_made() {
    let (_tmp, store) = store();
    let blob = stored_layer(&store, b"same\n");
    assert!(
        store.layer_blob(&blob.diff_id, "gzip:6").is_none(),
        "no layer yet"
    );
    let upper = store.temp_dir("upper-").unwrap();
    fs::write(upper.path().join("f"), b"x").unwrap();
    let dir = upper.keep();
    store.adopt_layer_dir(&dir, &blob.diff_id).unwrap();
    assert!(
        store.layer_blob(&blob.diff_id, "gzip:6").is_none(),
        "not recorded yet"
    );
    store.record_layer_blob(&blob, "gzip:6").unwrap();
    assert_eq!(
        store.layer_blob(&blob.diff_id, "gzip:6"),
        Some(blob.clone())
    );

    let fp = "ab".repeat(32);
    let lock = store.lock_layer_tar(&fp).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = store.clone();
    let id = fp.clone();
    let t = std::thread::spawn(move || {
        let _l = s2.lock_layer_tar(&id).unwrap();
        tx.send(()).unwrap();
    });
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(200))
        .is_err());
    drop(lock);
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    t.join().unwrap();
    // Found by its tar's fingerprint once that is recorded; only hex fingerprints are names.
    assert!(store.layer_blob_by_tar(&fp, "gzip:6").is_none());
    store.record_layer_tar(&fp, &blob.diff_id).unwrap();
    assert_eq!(store.layer_blob_by_tar(&fp, "gzip:6"), Some(blob.clone()));
    assert!(store.layer_blob_by_tar(&fp, "zstd:3").is_none());
    assert!(store.record_layer_tar("../x", &blob.diff_id).is_err());
    assert!(store.lock_layer_tar("../x").is_err());
    assert!(store.layer_blob_by_tar("../x", "gzip:6").is_none());
    drop(store.lock_layer_tar(&fp).unwrap());
    // A recorded blob that is gone is not offered.
    fs::remove_file(store.blob_path(&blob.digest)).unwrap();
    assert!(store.layer_blob(&blob.diff_id, "gzip:6").is_none());
    assert!(store.layer_blob_by_tar(&fp, "gzip:6").is_none());
}

/// A blob whose writer hashes it itself is named by the digest given at commit, which it
/// needs; the store's own writer checks it.
#[test]
fn a_blob_hashed_by_its_caller_is_named_by_the_given_digest() {
    let (_tmp, store) = store();
    let bytes = b"layer bytes";
    let digest = Digest::of(bytes);
    let mut w = store.blob_writer_hashed_by_caller().unwrap();
    w.write_all(bytes).unwrap();
    assert_eq!(w.size(), bytes.len() as u64);
    assert_eq!(
        w.commit(Some(&digest)).unwrap(),
        (digest.clone(), bytes.len() as u64)
    );
    assert_eq!(store.read_blob(&digest).unwrap(), bytes);
    let mut w = store.blob_writer_hashed_by_caller().unwrap();
    w.write_all(bytes).unwrap();
    assert!(w.commit(None).is_err(), "no digest to name it by");
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"other").unwrap();
    assert!(matches!(
        w.commit(Some(&digest)),
        Err(StoreError::DigestMismatch { .. })
    ));
}
