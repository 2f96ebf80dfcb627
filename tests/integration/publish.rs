//! Publishing as a CI matrix does it, against the real registry: one `polyarch build
//! --push-by-digest` process per platform, then `polyarch merge` of their metadata files; and
//! `polyarch inspect` on every kind of document (OCI index, Docker list, OCI and Docker
//! manifests, attestations), read back independently with skopeo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use polyarch::index::{
    ANNOTATION_REFERENCE_DIGEST, ANNOTATION_REFERENCE_TYPE, ATTESTATION_MANIFEST,
};
use polyarch::oci::{
    self, Descriptor, Digest, ImageIndex, ImageManifest, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
};
use polyarch::platform::Platform;
use polyarch::registry::{OciRegistry, Reference, Registry, RegistryOptions};

use crate::harness::{digest_of, skopeo_raw, Run, TestContext};

/// `skopeo inspect --raw` without the newline skopeo adds.
fn raw(reference: &str) -> Option<Vec<u8>> {
    skopeo_raw(reference).map(|mut b| {
        if b.last() == Some(&b'\n') {
            b.pop();
        }
        b
    })
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// A context whose RUN step makes a layer unique to this test run.
fn matrix_context(ctx: &TestContext, name: &str) -> PathBuf {
    let df = format!(
        "FROM {}\nARG NONCE\nRUN echo \"$NONCE\" > /nonce && uname -m > /arch\n",
        ctx.base
    );
    ctx.context(name, &[("Dockerfile", &df)])
}

/// One matrix job: `polyarch build --platform P --push-by-digest REPO`.
fn matrix_job(ctx: &TestContext, dir: &Path, platform: &str, repo: &str, meta: &Path) -> Run {
    let digest_file = meta.with_extension("digest");
    ctx.run(
        &[
            "build",
            "--platform",
            platform,
            "--build-arg",
            &format!("NONCE={}", repo),
            "--push-by-digest",
            repo,
            "--metadata-file",
            meta.to_str().unwrap(),
            "--digest-file",
            digest_file.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[],
    )
}

#[test]
fn a_ci_matrix_pushes_by_digest_and_merge_publishes_one_index() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = matrix_context(&ctx, "matrix");
    let repo = ctx.repo("matrix");
    let metas = ctx.dir.path().join("metadata");
    std::fs::create_dir_all(&metas).unwrap();

    // Two separate processes, as two CI jobs would run them.
    let mut pushed = BTreeMap::new();
    for (platform, file) in [("linux/amd64", "amd64.json"), ("linux/arm64", "arm64.json")] {
        let meta = metas.join(file);
        matrix_job(&ctx, &dir, platform, &repo, &meta).assert_code(0);
        let m = json(&std::fs::read(&meta).unwrap());
        assert_eq!(m["repository"], repo.as_str());
        assert_eq!(m["image.name"], repo.as_str());
        assert_eq!(m["platform"], platform);
        assert_eq!(m["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
        assert_eq!(m["containerimage.digest"], m["digest"]);
        assert_eq!(m["containerimage.descriptor"]["digest"], m["digest"]);
        assert!(m["containerimage.config.digest"].is_string(), "{m}");
        assert!(m["buildx.build.ref"]
            .as_str()
            .unwrap()
            .starts_with("polyarch/"));
        let digest = m["digest"].as_str().unwrap().to_string();
        assert_eq!(m["reference"].as_str().unwrap(), format!("{repo}@{digest}"));
        let line = std::fs::read_to_string(meta.with_extension("digest")).unwrap();
        assert_eq!(line.trim(), format!("{repo}@{digest}"));
        // Pushed by digest, with the size the metadata says, and to no tag.
        let image = raw(&format!("{repo}@{digest}")).expect("image pushed by digest");
        assert_eq!(image.len() as u64, m["size"].as_u64().unwrap());
        pushed.insert(platform, digest);
    }
    assert!(
        raw(&format!("{repo}:latest")).is_none(),
        "a matrix job pushed a tag"
    );

    // The final job: merge the directory of metadata files.
    let tag = format!("{repo}:v1");
    let merge = |tag: &str, sources: &[&str], extra: &[&str]| {
        let mut args = vec!["merge", "-t", tag];
        args.extend_from_slice(extra);
        args.extend_from_slice(sources);
        ctx.run(&args, &[])
    };
    let all = format!("@{}", metas.display());
    let first = merge(&tag, &[&all], &["--platforms", "linux/amd64,linux/arm64"]);
    first.assert_code(0);
    let index = raw(&tag).expect("tag pushed");
    assert_eq!(digest_of(&index), first.index_digest());
    let v = json(&index);
    assert_eq!(v["mediaType"], MEDIA_TYPE_OCI_INDEX);
    let entries = v["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(entries[0]["digest"], pushed["linux/amd64"].as_str());
    assert_eq!(entries[1]["digest"], pushed["linux/arm64"].as_str());
    assert_eq!(
        entries[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");

    // The same merge again (sources in the other order, by file) gives the same digest.
    let amd = format!("@{}", metas.join("amd64.json").display());
    let arm = format!("@{}", metas.join("arm64.json").display());
    let again = merge(
        &tag,
        &[&arm, &amd],
        &["--platforms", "linux/amd64,linux/arm64"],
    );
    again.assert_code(0);
    assert_eq!(again.index_digest(), first.index_digest());
    assert_eq!(raw(&tag).unwrap(), index);

    // A dry run prints exactly the bytes that were pushed.
    let dry = merge(&tag, &[&all], &["--dry-run"]);
    dry.assert_code(0);
    assert_eq!(dry.stdout.trim_end().as_bytes(), index.as_slice());
    assert!(dry.stderr.contains(&first.index_digest()), "{}", dry.stderr);

    // The arm64 job's file is missing: exit 2 naming linux/arm64, and no tag moves.
    let partial = merge(
        &format!("{repo}:v2"),
        &[&amd],
        &["--platforms", "linux/amd64,linux/arm64"],
    );
    partial.assert_code(2);
    assert!(partial.stderr.contains("linux/arm64"), "{}", partial.stderr);
    assert!(raw(&format!("{repo}:v2")).is_none(), "v2 was pushed");
    let over_v1 = merge(&tag, &[&amd], &["--platforms", "linux/amd64,linux/arm64"]);
    over_v1.assert_code(2);
    assert_eq!(raw(&tag).unwrap(), index, "v1 was changed");

    // --append: amd64 first, then arm64 added to what the tag holds.
    let appended = format!("{repo}:v5");
    merge(&appended, &[&amd], &[]).assert_code(0);
    let grown = merge(&appended, &[&arm], &["--append"]);
    grown.assert_code(0);
    assert_eq!(grown.index_digest(), first.index_digest());
    assert_eq!(raw(&appended).unwrap(), index);

    // No sources at all (an empty artifact directory) is an error, never an empty index.
    let empty = ctx.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let none = merge(
        &format!("{repo}:v3"),
        &[&format!("@{}", empty.display())],
        &[],
    );
    none.assert_code(2);
    assert!(none.stderr.contains("no sources"), "{}", none.stderr);
    assert!(raw(&format!("{repo}:v3")).is_none());

    // The same platform twice needs --replace; the later source then wins.
    let dup = merge(&format!("{repo}:v4"), &[&tag, &amd], &[]);
    dup.assert_code(0); // the same manifest twice is one entry
    let other_amd = ctx.repo("matrix-other");
    let meta_other = ctx.dir.path().join("other-amd64.json");
    matrix_job(&ctx, &dir, "linux/amd64", &other_amd, &meta_other).assert_code(0);
    let other = format!("@{}", meta_other.display());
    let clash = merge(&format!("{repo}:v4"), &[&tag, &other], &[]);
    clash.assert_code(2);
    assert!(clash.stderr.contains("--replace"), "{}", clash.stderr);
    let replaced = merge(&format!("{repo}:v4"), &[&tag, &other], &["--replace"]);
    replaced.assert_code(0);
    let v4 = json(&raw(&format!("{repo}:v4")).unwrap());
    let other_digest = json(&std::fs::read(&meta_other).unwrap())["digest"].clone();
    // The image from another repository of the same registry was mounted into this one.
    assert!(v4["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["digest"] == other_digest));
    assert!(raw(&format!("{repo}@{}", other_digest.as_str().unwrap())).is_some());
}

/// Pushes an attestation manifest about `subject` into `repo` and returns an index of
/// `image` + attestation pushed to `repo:tag`.
async fn push_attested_index(repo: &Reference, tag: &str, image: &Descriptor) -> Digest {
    let client = OciRegistry::new(RegistryOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blob = |name: &str, bytes: &[u8], mt: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        (
            p,
            Descriptor::new(mt, Digest::of(bytes), bytes.len() as u64),
        )
    };
    let (cp, cd) = blob("config", b"{}", "application/vnd.oci.image.config.v1+json");
    let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[]}"#;
    let (lp, ld) = blob("layer", statement, "application/vnd.in-toto+json");
    client.push_blob(repo, &cd, &cp).await.unwrap();
    client.push_blob(repo, &ld, &lp).await.unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: cd,
        layers: vec![ld],
        annotations: None,
    };
    let mb = oci::to_bytes(&m);
    let md = client
        .push_manifest(
            repo,
            &Digest::of(&mb).to_string(),
            &mb,
            MEDIA_TYPE_OCI_MANIFEST,
        )
        .await
        .unwrap();
    let mut att = Descriptor::new(MEDIA_TYPE_OCI_MANIFEST, md, mb.len() as u64);
    att.platform = Some(Platform::new("unknown", "unknown", None));
    att.annotations = Some(BTreeMap::from([
        (
            ANNOTATION_REFERENCE_TYPE.to_string(),
            ATTESTATION_MANIFEST.to_string(),
        ),
        (
            ANNOTATION_REFERENCE_DIGEST.to_string(),
            image.digest.to_string(),
        ),
    ]));
    let idx = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
        manifests: vec![image.clone(), att],
        annotations: None,
    };
    let ib = oci::to_bytes(&idx);
    client
        .push_manifest(repo, tag, &ib, MEDIA_TYPE_OCI_INDEX)
        .await
        .unwrap()
}

#[test]
fn inspect_reads_every_kind_of_document() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = matrix_context(&ctx, "inspect");
    let repo = ctx.repo("inspect");
    let tag = format!("{repo}:v1");
    let built = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64/v8",
            "--build-arg",
            &format!("NONCE={repo}"),
            "-t",
            &tag,
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    built.assert_code(0);
    let index_bytes = raw(&tag).unwrap();
    let index = json(&index_bytes);
    let amd = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let arm = index["manifests"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // OCI index: human, raw and JSON.
    let human = ctx.run(&["inspect", &tag], &[]);
    human.assert_code(0);
    assert!(
        human.stdout.contains(MEDIA_TYPE_OCI_INDEX),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains(&digest_of(&index_bytes)));
    let amd_line = human
        .stdout
        .lines()
        .find(|l| l.contains(&amd))
        .expect("a line for amd64");
    assert!(
        amd_line.trim_start().starts_with("linux/amd64"),
        "{amd_line}"
    );
    assert!(amd_line.contains(MEDIA_TYPE_OCI_MANIFEST));
    let arm_line = human.stdout.lines().find(|l| l.contains(&arm)).unwrap();
    assert!(
        arm_line.trim_start().starts_with("linux/arm64 "),
        "{arm_line}"
    );
    let rawout = ctx.run(&["inspect", "--raw", &tag], &[]);
    rawout.assert_code(0);
    assert_eq!(rawout.stdout.as_bytes(), index_bytes.as_slice());
    let j = ctx.run(&["inspect", "--json", &tag], &[]);
    j.assert_code(0);
    let j = json(j.stdout.as_bytes());
    assert_eq!(j["mediaType"], MEDIA_TYPE_OCI_INDEX);
    assert_eq!(j["digest"], digest_of(&index_bytes).as_str());
    assert_eq!(j["size"], index_bytes.len());
    assert_eq!(j["isIndex"], true);
    assert_eq!(j["manifests"][0]["platform"], "linux/amd64");
    assert_eq!(j["manifests"][1]["platform"], "linux/arm64");
    assert_eq!(j["manifests"][1]["platformRecorded"]["variant"], "v8");
    assert_eq!(j["manifests"][1]["digest"], arm.as_str());
    assert_eq!(j["manifests"][1]["attestation"], false);

    // OCI manifest by digest: platform from its config, and its layers.
    let m = ctx.run(&["inspect", &format!("{repo}@{arm}")], &[]);
    m.assert_code(0);
    assert!(m.stdout.contains("Platform:   linux/arm64"), "{}", m.stdout);
    assert!(m.stdout.contains("Layers ("), "{}", m.stdout);
    let mj = json(
        ctx.run(&["inspect", "--json", &format!("{repo}@{arm}")], &[])
            .stdout
            .as_bytes(),
    );
    assert_eq!(mj["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(mj["platform"], "linux/arm64");
    assert!(mj["layers"].as_array().unwrap().len() >= 2);

    // Docker list, made by merge --format docker.
    let list_tag = format!("{repo}:list");
    ctx.run(&["merge", "-t", &list_tag, "--format", "docker", &tag], &[])
        .assert_code(0);
    let list = ctx.run(&["inspect", "--json", &list_tag], &[]);
    list.assert_code(0);
    let lj = json(list.stdout.as_bytes());
    assert_eq!(
        lj["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(lj["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(&raw(&list_tag).unwrap())["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    // Annotations cannot go into a Docker list.
    let refused = ctx.run(
        &[
            "merge",
            "-t",
            &list_tag,
            "--format",
            "docker",
            "--annotation",
            "index:a=b",
            &tag,
        ],
        &[],
    );
    refused.assert_code(2);

    // Docker manifest: skopeo converts the amd64 image to schema 2.
    let v2s2 = format!("{repo}:v2s2");
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .arg(format!("docker://{repo}@{amd}"))
        .arg(format!("docker://{v2s2}"))
        .status()
        .unwrap();
    assert!(status.success());
    let d = ctx.run(&["inspect", "--json", &v2s2], &[]);
    d.assert_code(0);
    let dj = json(d.stdout.as_bytes());
    assert_eq!(
        dj["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(dj["platform"], "linux/amd64");
    assert_eq!(dj["digest"], digest_of(&raw(&v2s2).unwrap()).as_str());

    // Attestations: marked by inspect, kept by merge unless dropped.
    let reference = Reference::parse(&repo).unwrap();
    let mut image = Descriptor::new(
        MEDIA_TYPE_OCI_MANIFEST,
        amd.parse().unwrap(),
        index["manifests"][0]["size"].as_u64().unwrap(),
    );
    image.platform = Some(Platform::parse("linux/amd64").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(push_attested_index(&reference, "attested", &image));
    let attested = format!("{repo}:attested");
    let a = ctx.run(&["inspect", &attested], &[]);
    a.assert_code(0);
    let att_line = a
        .stdout
        .lines()
        .find(|l| l.contains("unknown/unknown"))
        .unwrap();
    assert!(
        att_line.contains(&format!("(attestation for {amd})")),
        "{att_line}"
    );
    let kept = format!("{repo}:kept");
    ctx.run(
        &["merge", "-t", &kept, &attested, &format!("{repo}@{arm}")],
        &[],
    )
    .assert_code(0);
    assert_eq!(
        json(&raw(&kept).unwrap())["manifests"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let dropped = format!("{repo}:dropped");
    ctx.run(
        &[
            "merge",
            "-t",
            &dropped,
            "--drop-attestations",
            &attested,
            &format!("{repo}@{arm}"),
        ],
        &[],
    )
    .assert_code(0);
    let dv = json(&raw(&dropped).unwrap());
    assert_eq!(dv["manifests"].as_array().unwrap().len(), 2);

    // Annotations on the index and on one platform's entry, shown by inspect.
    let annotated = format!("{repo}:annotated");
    ctx.run(
        &[
            "merge",
            "-t",
            &annotated,
            "--annotation",
            "index:org.opencontainers.image.version=1.2.3",
            "--annotation",
            "manifest-descriptor[linux/arm64]:com.example.cpu=neoverse",
            &tag,
        ],
        &[],
    )
    .assert_code(0);
    let an = ctx.run(&["inspect", &annotated], &[]);
    assert!(
        an.stdout.contains("org.opencontainers.image.version=1.2.3"),
        "{}",
        an.stdout
    );
    assert!(
        an.stdout.contains("com.example.cpu=neoverse"),
        "{}",
        an.stdout
    );
    let anj = json(&raw(&annotated).unwrap());
    assert_eq!(
        anj["manifests"][1]["annotations"]["com.example.cpu"],
        "neoverse"
    );
    assert!(anj["manifests"][0].get("annotations").is_none());

    // A reference that does not exist is bad input (2), not a registry failure.
    let missing = ctx.run(&["inspect", &format!("{repo}:nope")], &[]);
    missing.assert_code(2);
}
