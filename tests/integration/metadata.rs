//! The metadata file as buildx writes it (issue 14 item 5): `containerimage.digest`,
//! `containerimage.descriptor`, `containerimage.config.digest`, `image.name`,
//! `buildx.build.ref`, and `buildx.build.warnings` as objects (rule, description, location,
//! buildx's base64 `short`), checked against what skopeo reads from the registry.

use base64::Engine as _;

use crate::harness::{digest_of, skopeo_raw, TestContext};

#[test]
fn metadata_file_has_buildx_keys_and_warning_objects() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!("FROM {}\nARG API_TOKEN=x\nCOPY a.txt /a.txt\n", ctx.base);
    let dir = ctx.context("ctx", &[("Dockerfile", &df), ("a.txt", "a\n")]);
    let tag = format!("{}:v1", ctx.repo("metadata"));
    let meta = ctx.dir.path().join("meta.json");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &tag,
            "--push",
            "--build-arg",
            "NOT_USED=1",
            "--metadata-file",
            meta.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let raw = skopeo_raw(&tag).expect("pushed");
    assert_eq!(m["containerimage.digest"], digest_of(&raw).as_str());
    assert_eq!(
        m["containerimage.descriptor"]["digest"],
        m["containerimage.digest"]
    );
    assert_eq!(m["containerimage.descriptor"]["size"], raw.len());
    assert!(m["containerimage.config.digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(m["image.name"], tag.as_str());
    assert!(m["buildx.build.ref"]
        .as_str()
        .unwrap()
        .starts_with("polyarch/"));
    let warnings = m["buildx.build.warnings"].as_array().expect("warnings");
    let secret = warnings
        .iter()
        .find(|w| w["rule"] == "SecretsUsedInArgOrEnv")
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert_eq!(secret["location"]["line"], 2);
    assert_eq!(secret["range"][0]["start"]["line"], 2);
    assert!(secret["description"]
        .as_str()
        .unwrap()
        .contains("API_TOKEN"));
    let short = base64::engine::general_purpose::STANDARD
        .decode(secret["short"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(short).unwrap().contains("API_TOKEN"));
    let unused = warnings
        .iter()
        .find(|w| w["description"].as_str().unwrap_or("").contains("NOT_USED"))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(unused["rule"].is_null() && unused["location"].is_null());
    // An unnamed build writes no image.name (as buildx).
    let meta2 = ctx.dir.path().join("meta2.json");
    let out = ctx.dir.path().join("out");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=oci,dest={},tar=false", out.display()),
            "--metadata-file",
            meta2.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let m2: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta2).unwrap()).unwrap();
    assert!(m2.get("image.name").is_none(), "{m2}");
}
