//! Attestations (issue 14 item 4): `--provenance mode=max` attaches an SLSA
//! provenance v1 statement per image exactly as BuildKit does (an `unknown/unknown` manifest
//! after each image, annotated with the reference type and the image's digest, whose layer is
//! an `application/vnd.in-toto+json` statement annotated with its predicate type), read back
//! with skopeo and validated against the in-toto Statement v1 and SLSA provenance v1 schemas
//! shipped in `tests/fixtures/attestations/`; it redacts secret-looking build args, is the same
//! with `SOURCE_DATE_EPOCH` on a rebuild, and `merge`, `inspect` and `--metadata-file` keep it;
//! `--sbom` attaches an SPDX 2.3 document of the dpkg, apk and Python packages, validated
//! against the SPDX 2.3 schema shipped there.

use crate::harness::{pull_layout, skopeo_raw, TestContext};

fn validate(schema: &str, v: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{v}");
}

fn blob(layout: &std::path::Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

#[test]
fn provenance_is_attached_as_buildkit_attaches_it_and_validates() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!("FROM {}\nARG API_TOKEN\nCOPY a.txt /a.txt\n", ctx.base);
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("a.txt", "a\n")]);
    let tag = format!("{}:v1", ctx.repo("provenance"));
    let meta = ctx.dir.path().join("meta.json");
    let build = |tag: &str| {
        ctx.run(
            &[
                "build",
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                tag,
                "--push",
                "--provenance",
                "mode=max",
                "--build-arg",
                "API_TOKEN=hunter2",
                "--build-arg",
                "VERSION=1.2",
                "--metadata-file",
                meta.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        )
    };
    build(&tag).assert_code(0);
    let raw = skopeo_raw(&tag).expect("pushed");
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{index}");
    let layout = pull_layout(&ctx, &tag);
    for pair in entries.chunks(2) {
        let (image, att) = (&pair[0], &pair[1]);
        assert_eq!(att["platform"]["os"], "unknown");
        assert_eq!(att["platform"]["architecture"], "unknown");
        assert_eq!(
            att["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(
            att["annotations"]["vnd.docker.reference.digest"],
            image["digest"]
        );
        let m: serde_json::Value =
            serde_json::from_slice(&blob(&layout, att["digest"].as_str().unwrap())).unwrap();
        let layer = &m["layers"][0];
        assert_eq!(layer["mediaType"], "application/vnd.in-toto+json");
        assert_eq!(
            layer["annotations"]["in-toto.io/predicate-type"],
            "https://slsa.dev/provenance/v1"
        );
        let bytes = blob(&layout, layer["digest"].as_str().unwrap());
        assert!(
            !String::from_utf8_lossy(&bytes).contains("hunter2"),
            "secret leaked"
        );
        let st: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        validate(
            include_str!("../fixtures/attestations/in-toto-statement-v1.schema.json"),
            &st,
        );
        validate(
            include_str!("../fixtures/attestations/slsa-provenance-v1.schema.json"),
            &st["predicate"],
        );
        let hex = image["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        assert_eq!(st["subject"][0]["digest"]["sha256"], hex);
        let def = &st["predicate"]["buildDefinition"];
        assert_eq!(
            def["externalParameters"]["request"]["args"]["build-arg:VERSION"],
            "1.2"
        );
        assert_eq!(
            def["externalParameters"]["request"]["args"]["build-arg:API_TOKEN"],
            "<redacted>"
        );
        let deps = def["resolvedDependencies"].as_array().unwrap();
        assert!(deps.iter().any(|d| d["uri"] == "context"), "{deps:?}");
        assert!(
            deps.iter()
                .any(|d| d["uri"].as_str().unwrap().starts_with("pkg:docker/")
                    && d["digest"]["sha256"].is_string()),
            "{deps:?}"
        );
        assert!(def["internalParameters"]["dockerfile"]
            .as_str()
            .unwrap()
            .contains("COPY a.txt"));
        assert_eq!(
            st["predicate"]["runDetails"]["metadata"]["startedOn"],
            "2023-11-14T22:13:20Z"
        );
    }
    // The metadata file names each image's attestation.
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    assert_eq!(m["platforms"][0]["attestation"], entries[1]["digest"]);
    // With SOURCE_DATE_EPOCH a rebuild (to the same name: the subject's purl names it) gives
    // the same index, attestations included.
    build(&tag).assert_code(0);
    assert_eq!(
        String::from_utf8(skopeo_raw(&tag).unwrap()).unwrap(),
        String::from_utf8(raw.clone()).unwrap()
    );
    // merge keeps them; inspect marks them.
    let merged = format!("{}:merged", ctx.repo("provenance"));
    ctx.run(&["merge", "-t", &merged, &tag], &[]).assert_code(0);
    let v: serde_json::Value = serde_json::from_slice(&skopeo_raw(&merged).unwrap()).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 4);
    let r = ctx.run(&["inspect", &tag], &[]);
    r.assert_code(0);
    assert!(
        r.stdout.contains("(attestation for sha256:"),
        "{}",
        r.stdout
    );
    // A one-platform build with provenance pushes an index (the image and its attestation).
    let one = format!("{}:one", ctx.repo("provenance"));
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &one,
            "--push",
            "--provenance=true",
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let v: serde_json::Value = serde_json::from_slice(&skopeo_raw(&one).unwrap()).unwrap();
    assert_eq!(v["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    // buildx's SBOM generator images are not run: exit 2, saying so.
    let r = ctx.run(
        &[
            "build",
            "--attest",
            "type=sbom,generator=img",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("no generator= image"), "{}", r.stderr);
}

#[test]
fn sbom_lists_dpkg_apk_and_python_packages_and_validates() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nCOPY status /var/lib/dpkg/status\nCOPY installed /lib/apk/db/installed\n\
         COPY METADATA /usr/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA\n\
         COPY os-release /etc/os-release\n\
         RUN mkdir -p /usr/local/lib/python3.11 && ln -s /etc /usr/local/lib/python3.11/site-packages\n",
        ctx.base
    );
    let status = "Package: libc6\nStatus: install ok installed\nPriority: optional\nArchitecture: arm64\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n shared libraries\n\nPackage: removed\nStatus: deinstall ok config-files\nVersion: 1.0\n";
    let apk = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:aarch64\nS:1\n\nP:zlib\nV:1.3-r0\nA:aarch64\n";
    let metadata =
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: HTTP\n\nbody\n";
    let dir = ctx.context(
        "sbom",
        &[
            ("Dockerfile", &df),
            ("status", status),
            ("installed", apk),
            ("METADATA", metadata),
            ("os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
        ],
    );
    let out = ctx.dir.path().join("layout");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/arm64",
            "--sbom=true",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let index = crate::harness::layout_index(&out, "latest");
    let att = index
        .manifests
        .iter()
        .find(|d| polyarch::index::is_attestation(d))
        .expect("an attestation manifest");
    let m: serde_json::Value =
        serde_json::from_slice(&blob(&out, &att.digest.to_string())).unwrap();
    let layer = &m["layers"][0];
    assert_eq!(
        layer["annotations"]["in-toto.io/predicate-type"],
        "https://spdx.dev/Document"
    );
    let st: serde_json::Value =
        serde_json::from_slice(&blob(&out, layer["digest"].as_str().unwrap())).unwrap();
    validate(
        include_str!("../fixtures/attestations/in-toto-statement-v1.schema.json"),
        &st,
    );
    validate(
        include_str!("../fixtures/attestations/spdx-2.3.schema.json"),
        &st["predicate"],
    );
    let purls: Vec<&str> = st["predicate"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["externalRefs"][0]["referenceLocator"].as_str().unwrap())
        .collect();
    assert_eq!(
        purls,
        [
            "pkg:apk/debian/musl@1.2.4-r2?arch=aarch64",
            "pkg:apk/debian/zlib@1.3-r0?arch=aarch64",
            "pkg:deb/debian/libc6@2.36-9+deb12u4?arch=arm64",
            "pkg:pypi/requests@2.31.0",
        ],
        "the symlinked site-packages is not followed"
    );
    assert!(st["predicate"]["creationInfo"]["comment"]
        .as_str()
        .unwrap()
        .contains("not detected"));
}

#[test]
fn a_push_attaches_min_provenance_by_default_and_an_unchanged_rebuild_keeps_the_tag() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!("FROM {}\nCOPY a.txt /a.txt\n", ctx.base);
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("a.txt", "a\n")]);
    let build = |tag: &str, no_default: &str| {
        let r = ctx.run(
            &[
                "build",
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                tag,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[("BUILDX_NO_DEFAULT_ATTESTATIONS", no_default)],
        );
        r.assert_code(0);
        skopeo_raw(tag).expect("pushed")
    };
    // The default as buildx's: mode=min provenance after each image.
    let tag = format!("{}:v1", ctx.repo("default-provenance"));
    let first = build(&tag, "");
    let index: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{index}");
    let layout = pull_layout(&ctx, &tag);
    for pair in entries.chunks(2) {
        let att = &pair[1];
        assert_eq!(
            att["annotations"]["vnd.docker.reference.digest"],
            pair[0]["digest"]
        );
        let m: serde_json::Value =
            serde_json::from_slice(&blob(&layout, att["digest"].as_str().unwrap())).unwrap();
        let st: serde_json::Value =
            serde_json::from_slice(&blob(&layout, m["layers"][0]["digest"].as_str().unwrap()))
                .unwrap();
        validate(
            include_str!("../fixtures/attestations/slsa-provenance-v1.schema.json"),
            &st["predicate"],
        );
        let predicate = &st["predicate"];
        assert_eq!(
            predicate["buildDefinition"]["internalParameters"]["mode"],
            "min"
        );
        assert!(
            predicate["runDetails"].get("metadata").is_none(),
            "no build times without SOURCE_DATE_EPOCH: {st}"
        );
    }
    // An index with attestations is a base like any other: each platform takes its image.
    let child = ctx.context(
        "child",
        &[("Dockerfile", &format!("FROM {tag}\nRUN cat /a.txt\n"))],
    );
    let out = format!(
        "type=oci,dest={}",
        ctx.dir.path().join("child-out").display()
    );
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &out,
            child.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    // Nothing changed: the same index, so the tag does not move.
    assert_eq!(
        build(&tag, "0"),
        first,
        "an unchanged rebuild moved the tag"
    );
    // buildx's switch turns the default off.
    let plain = build(&format!("{}:v2", ctx.repo("default-provenance")), "1");
    let index: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

#[test]
fn one_platform_pushed_by_digest_keeps_its_provenance_and_names_it_in_the_metadata() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!("FROM {}\nCOPY a.txt /a.txt\n", ctx.base);
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("a.txt", "a\n")]);
    let repo = ctx.repo("by-digest-provenance");
    let meta = ctx.dir.path().join("meta.json");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/arm64",
            "--push-by-digest",
            &repo,
            "--provenance=mode=min",
            "--metadata-file",
            meta.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let digest = meta["containerimage.digest"].as_str().unwrap();
    // The job's result is the image with its attestation: an index, pushed by digest.
    let raw = skopeo_raw(&format!("{repo}@{digest}")).expect("the index was pushed");
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(entries[0]["platform"]["architecture"], "arm64");
    assert_eq!(
        entries[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    // The provenance names the Dockerfile relative to the context, never a host path.
    let layout = pull_layout(&ctx, &format!("{repo}@{digest}"));
    let m: serde_json::Value =
        serde_json::from_slice(&blob(&layout, entries[1]["digest"].as_str().unwrap())).unwrap();
    let st: serde_json::Value =
        serde_json::from_slice(&blob(&layout, m["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        st["predicate"]["buildDefinition"]["externalParameters"]["configSource"]["path"],
        "Dockerfile"
    );
}
