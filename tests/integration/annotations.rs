//! Labels and annotations (issue 14 item 1): `--label`, `BUILDX_GIT_LABELS`, and
//! `--annotation` at buildx's levels (`manifest` by default, `index`, `manifest-descriptor`,
//! `index-descriptor`) with `[PLATFORM]` filters, each read back with `skopeo inspect --raw`
//! (index, manifests, config) and from the OCI layout's `index.json`.

use std::process::Command;

use crate::harness::{skopeo_raw, TestContext};

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn labels_and_annotations_land_where_buildx_puts_them() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\nLABEL from.dockerfile=1 overridden=no\nCOPY a.txt /a.txt\n",
        ctx.base
    );
    let dir = ctx.context("ctx", &[("build/Dockerfile", &df), ("a.txt", "a\n")]);
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "."]);
    git(&dir, &["commit", "-q", "-m", "one"]);
    git(
        &dir,
        &[
            "remote",
            "add",
            "origin",
            "https://user:s3cret@example.com/org/repo.git",
        ],
    );
    let head = git(&dir, &["rev-parse", "HEAD"]);
    let tag = format!("{}:v1", ctx.repo("annotations"));
    let layout = ctx.dir.path().join("layout");
    let dockerfile = dir.join("build/Dockerfile");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-f",
            dockerfile.to_str().unwrap(),
            "-t",
            &tag,
            "--push",
            "-o",
            &format!(
                "type=oci,dest={},tar=false,annotation-index.com.example.FromOutput=yes",
                layout.display()
            ),
            "--label",
            "overridden=yes",
            "--label",
            "com.example.team=build",
            "--annotation",
            "org.opencontainers.image.title=every-manifest",
            "--annotation",
            "manifest[linux/amd64]:com.example.only=amd64",
            "--annotation",
            "index:org.opencontainers.image.description=the index",
            "--annotation",
            "manifest-descriptor[linux/arm64]:com.example.entry=arm",
            "--annotation",
            "index-descriptor:com.example.layout=yes",
            dir.to_str().unwrap(),
        ],
        &[("BUILDX_GIT_LABELS", "1")],
    )
    .assert_code(0);
    let index = json(&skopeo_raw(&tag).expect("pushed"));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.description"],
        "the index"
    );
    // An exporter key (`annotation-index.KEY` on -o), its case kept.
    assert_eq!(index["annotations"]["com.example.FromOutput"], "yes");
    let repo = tag.rsplit_once(':').unwrap().0;
    for entry in index["manifests"].as_array().unwrap() {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        let digest = entry["digest"].as_str().unwrap();
        // manifest-descriptor: on the arm64 entry only.
        assert_eq!(
            entry["annotations"]["com.example.entry"].as_str(),
            (arch == "arm64").then_some("arm"),
            "{entry}"
        );
        let manifest = json(&skopeo_raw(&format!("{repo}@{digest}")).unwrap());
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.title"],
            "every-manifest"
        );
        assert_eq!(
            manifest["annotations"]["com.example.only"].as_str(),
            (arch == "amd64").then_some("amd64"),
            "{manifest}"
        );
        let out = Command::new("skopeo")
            .args(["inspect", "--config", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{repo}@{digest}"))
            .output()
            .unwrap();
        let config = json(&out.stdout);
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["from.dockerfile"], "1");
        assert_eq!(labels["overridden"], "yes", "--label wins over LABEL");
        assert_eq!(labels["com.example.team"], "build");
        assert_eq!(labels["org.opencontainers.image.revision"], head.as_str());
        assert_eq!(
            labels["org.opencontainers.image.source"], "https://example.com/org/repo.git",
            "credentials removed"
        );
        assert_eq!(
            labels["com.docker.image.source.entrypoint"],
            "build/Dockerfile"
        );
    }
    // index-descriptor: the index's entry in the layout's index.json.
    let top = json(&std::fs::read(layout.join("index.json")).unwrap());
    assert_eq!(
        top["manifests"][0]["annotations"]["com.example.layout"],
        "yes"
    );
    // A bad level is exit 2 naming the valid ones.
    let r = ctx.run(
        &[
            "build",
            "-f",
            dockerfile.to_str().unwrap(),
            "--annotation",
            "layer:k=v",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("valid: manifest, index, manifest-descriptor, index-descriptor"),
        "{}",
        r.stderr
    );
}
