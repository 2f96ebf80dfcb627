//! Merge logic against the in-memory registry: what is pushed, copied and refused.

use super::*;
use crate::exit::{Classify, ExitCode};
use crate::index::IndexError;
use crate::oci::{self, Digest, ImageConfig, ImageManifest};
use crate::oci::{MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST};
use crate::progress::NullSink;
use crate::registry::fake::{Call, FakeRegistry};

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// Pushes a one-layer image for `platform` into `repo`; returns its manifest digest.
fn image(fake: &FakeRegistry, repo: &Reference, platform: &str, salt: &str) -> Digest {
    let p = Platform::parse(platform).unwrap();
    let config = ImageConfig {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        ..ImageConfig::default()
    };
    let mut config_desc = fake.insert_blob(repo, &oci::to_bytes(&config));
    config_desc.media_type = MEDIA_TYPE_OCI_CONFIG.into();
    let layer = fake.insert_blob(repo, format!("layer {platform} {salt}").as_bytes());
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: config_desc,
        layers: vec![layer],
        annotations: None,
    };
    fake.insert_manifest(repo, None, &oci::to_bytes(&m), MEDIA_TYPE_OCI_MANIFEST)
}

fn source(repo: &Reference, d: &Digest) -> Source {
    Source {
        reference: repo.with_digest(d),
        origin: format!("{}@{d}", repo.repo_string()),
        platform: None,
    }
}

fn request(tag: &str, sources: Vec<Source>) -> MergeRequest {
    MergeRequest {
        tags: vec![r(tag)],
        sources,
        format: IndexFormat::Oci,
        annotations: vec![],
        platforms: vec![],
        replace: false,
        drop_attestations: false,
        append: false,
        dry_run: false,
        visibility_timeout: Duration::from_millis(300),
        jobs: 4,
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

fn tag_pushes(fake: &FakeRegistry) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::PushManifest { reference, .. } if !reference.starts_with("sha256:") => {
                Some(reference)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn two_matrix_images_become_one_index_in_platforms_order() {
    let fake = FakeRegistry::new();
    let repo = r("127.0.0.1:5000/team/app");
    let amd = image(&fake, &repo, "linux/amd64", "");
    let arm = image(&fake, &repo, "linux/arm64/v8", "");
    // Sources in the "wrong" order: --platforms decides the order.
    let mut req = request(
        "127.0.0.1:5000/team/app:v1",
        vec![source(&repo, &arm), source(&repo, &amd)],
    );
    req.platforms = vec![
        Platform::parse("linux/amd64").unwrap(),
        Platform::parse("linux/arm64").unwrap(),
    ];
    let out = run(merge(&req, &fake, &NullSink)).unwrap();
    let idx = &out.index.index;
    assert_eq!(idx.media_type.as_deref(), Some(MEDIA_TYPE_OCI_INDEX));
    assert_eq!(idx.manifests[0].digest, amd);
    assert_eq!(idx.manifests[1].digest, arm);
    assert_eq!(
        idx.manifests[1].platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8"
    );
    assert_eq!(out.pushed_tags, vec!["127.0.0.1:5000/team/app:v1"]);
    assert_eq!(fake.manifest(&repo, "v1").unwrap().digest, out.index.digest);
    assert_eq!(out.blobs_copied, 0);
    // The same merge again gives the same bytes.
    let again = run(merge(&req, &fake, &NullSink)).unwrap();
    assert_eq!(again.index.bytes, out.index.bytes);
}

#[test]
fn a_missing_platform_or_no_source_pushes_nothing() {
    let fake = FakeRegistry::new();
    let repo = r("127.0.0.1:5000/team/app");
    let amd = image(&fake, &repo, "linux/amd64", "");
    let mut req = request("127.0.0.1:5000/team/app:v1", vec![source(&repo, &amd)]);
    req.platforms = vec![
        Platform::parse("linux/amd64").unwrap(),
        Platform::parse("linux/arm64/v8").unwrap(),
        Platform::parse("linux/s390x").unwrap(),
    ];
    let err = run(merge(&req, &fake, &NullSink)).unwrap_err();
    match &err {
        MergeError::MissingPlatforms { missing, found } => {
            assert_eq!(missing, &["linux/arm64", "linux/s390x"]);
            assert_eq!(found, &["linux/amd64"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert!(err.to_string().contains("linux/arm64"));
    assert!(tag_pushes(&fake).is_empty());
    let empty = request("127.0.0.1:5000/team/app:v1", vec![]);
    let err = run(merge(&empty, &fake, &NullSink)).unwrap_err();
    assert!(matches!(err, MergeError::NoSources));
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert!(tag_pushes(&fake).is_empty());
}

#[test]
fn duplicates_need_replace_and_sources_elsewhere_are_mounted_or_copied() {
    let fake = FakeRegistry::new();
    let target = r("127.0.0.1:5000/team/app");
    let sibling = r("127.0.0.1:5000/team/ci-scratch");
    let other = r("ghcr.io/someone/app");
    let amd_old = image(&fake, &target, "linux/amd64", "old");
    let amd_new = image(&fake, &sibling, "linux/amd64", "new");
    let arm = image(&fake, &other, "linux/arm64", "");
    let sources = vec![
        source(&target, &amd_old),
        source(&sibling, &amd_new),
        source(&other, &arm),
    ];
    let req = request("127.0.0.1:5000/team/app:v2", sources.clone());
    let err = run(merge(&req, &fake, &NullSink)).unwrap_err();
    assert!(
        matches!(err, MergeError::Index(IndexError::DuplicatePlatform { .. })),
        "{err:?}"
    );
    assert!(tag_pushes(&fake).is_empty());

    let mut req = request("127.0.0.1:5000/team/app:v2", sources);
    req.replace = true;
    let out = run(merge(&req, &fake, &NullSink)).unwrap();
    let digests: Vec<&Digest> = out
        .index
        .index
        .manifests
        .iter()
        .map(|d| &d.digest)
        .collect();
    assert_eq!(digests, [&amd_new, &arm]);
    // Config and layer of each foreign image went into the target, then its manifest; the
    // amd64 config is the same blob as the old amd64 image's, already there.
    assert_eq!(out.blobs_copied, 3);
    assert!(fake.manifest(&target, &amd_new.to_string()).is_some());
    assert!(fake.manifest(&target, &arm.to_string()).is_some());
    let copies: Vec<(String, String)> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::CopyBlob { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert!(copies.contains(&(sibling.repo_string(), target.repo_string())));
    assert!(copies.contains(&(other.repo_string(), target.repo_string())));
}

#[test]
fn annotations_formats_append_and_dry_run() {
    let fake = FakeRegistry::new();
    let repo = r("127.0.0.1:5000/team/app");
    let amd = image(&fake, &repo, "linux/amd64", "");
    let arm = image(&fake, &repo, "linux/arm64", "");
    let mut req = request("127.0.0.1:5000/team/app:v3", vec![source(&repo, &amd)]);
    req.annotations = vec![
        parse_annotation("index:org.opencontainers.image.version=3").unwrap(),
        parse_annotation("manifest-descriptor[linux/amd64]:com.example.note=x86").unwrap(),
    ];
    req.dry_run = true;
    let out = run(merge(&req, &fake, &NullSink)).unwrap();
    let text = String::from_utf8(out.index.bytes.clone()).unwrap();
    assert!(
        text.contains(r#""annotations":{"com.example.note":"x86"}"#),
        "{text}"
    );
    assert!(text.ends_with(r#""annotations":{"org.opencontainers.image.version":"3"}}"#));
    assert!(tag_pushes(&fake).is_empty(), "a dry run pushed");

    // A platform not in the index, and annotations in a Docker list, are refused.
    req.annotations = vec![parse_annotation("manifest-descriptor[linux/arm64]:k=v").unwrap()];
    let err = run(merge(&req, &fake, &NullSink)).unwrap_err();
    assert!(
        matches!(err, MergeError::AnnotationPlatform { .. }),
        "{err:?}"
    );
    req.annotations = vec![parse_annotation("k=v").unwrap()];
    req.format = IndexFormat::Docker;
    let err = run(merge(&req, &fake, &NullSink)).unwrap_err();
    assert!(
        matches!(
            err,
            MergeError::Index(IndexError::AnnotationsInDockerList { .. })
        ),
        "{err:?}"
    );

    // Push amd64 as a Docker list, then --append arm64 to it.
    req.annotations.clear();
    req.dry_run = false;
    run(merge(&req, &fake, &NullSink)).unwrap();
    let mut more = request("127.0.0.1:5000/team/app:v3", vec![source(&repo, &arm)]);
    more.append = true;
    more.format = IndexFormat::Docker;
    let out = run(merge(&more, &fake, &NullSink)).unwrap();
    let digests: Vec<&Digest> = out
        .index
        .index
        .manifests
        .iter()
        .map(|d| &d.digest)
        .collect();
    assert_eq!(digests, [&amd, &arm]);
    assert_eq!(
        fake.manifest(&repo, "v3").unwrap().media_type,
        crate::oci::MEDIA_TYPE_DOCKER_LIST
    );
}

#[test]
fn a_metadata_platform_must_match_the_image() {
    let fake = FakeRegistry::new();
    let repo = r("127.0.0.1:5000/team/app");
    let amd = image(&fake, &repo, "linux/amd64", "");
    let mut s = source(&repo, &amd);
    s.platform = Some(Platform::parse("linux/arm64").unwrap());
    let err = run(merge(
        &request("127.0.0.1:5000/team/app:v1", vec![s]),
        &fake,
        &NullSink,
    ))
    .unwrap_err();
    assert!(
        matches!(err, MergeError::PlatformMismatch { .. }),
        "{err:?}"
    );
    // A source that does not exist is not found (bad input), at once.
    let gone = source(&repo, &Digest::of(b"never pushed"));
    let err = run(merge(
        &request("127.0.0.1:5000/team/app:v1", vec![gone]),
        &fake,
        &NullSink,
    ))
    .unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err:?}");
}

#[test]
fn annotation_syntax() {
    assert_eq!(
        parse_annotation("a.b=c=d").unwrap(),
        Annotation {
            target: AnnotationTarget::Index,
            key: "a.b".into(),
            value: "c=d".into()
        }
    );
    assert_eq!(
        parse_annotation("manifest-descriptor:k=v").unwrap().target,
        AnnotationTarget::Descriptor(None)
    );
    assert_eq!(
        parse_annotation("index:url=http://x:1/").unwrap().value,
        "http://x:1/"
    );
    for bad in [
        "manifest:k=v",
        "novalue",
        "index:=v",
        "manifest-descriptor[nope]:k=v",
    ] {
        assert!(parse_annotation(bad).is_err(), "{bad}");
    }
}
