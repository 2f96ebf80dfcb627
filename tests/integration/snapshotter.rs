//! The copy snapshotter end to end: the same two-platform build captured by overlayfs and by
//! copy-and-compare (`POLYARCH_SNAPSHOTTER=copy`) pushes the same files and, with
//! `SOURCE_DATE_EPOCH=0`, the same index digest.

use crate::harness::{digest_of, image_files, pull_layout, skopeo_raw, TestContext};

const TWO: &str = "linux/amd64,linux/arm64/v8";

/// Steps that make every kind of change: the second RUN works on what the COPY and the first
/// RUN made (so the copy snapshotter also reads its own earlier layers as lowers, with their
/// whiteouts and opaque directories), and deletes from the base image.
const STEPS: &str = r#"COPY files/ /data/
RUN set -e; mkdir -p /tree/a/b && echo deep > /tree/a/b/c \
 && echo gone > /data/gone && mkdir /swap && echo i > /swap/inner \
 && echo f > /filedir && mkdir /again && echo old > /again/old \
 && ln -s target1 /data/link && echo orig > /data/orig && echo AAAA > /data/same \
 && echo m > /data/mode && echo o > /data/owner
RUN set -e; echo new > /new-file \
 && touch -r /data/same /ref && printf 'BBBB\n' > /data/same && touch -r /ref /data/same && rm /ref \
 && rm /data/gone && rm -rf /tree && rm -rf /swap && echo file > /swap \
 && rm /filedir && mkdir /filedir && echo in > /filedir/x \
 && rm -rf /again && mkdir /again && echo fresh > /again/n \
 && chmod 700 /data/mode && chown 1000:1000 /data/owner \
 && ln -sf target2 /data/link && ln /data/orig /data/hard && ln /new-file /new-hard \
 && rm /bin/vi && echo appended >> /data/from-context.txt \
 && uname -m > /arch
RUN rm -rf /again && mkdir /again && echo third > /again/n && rm /new-hard
"#;

#[test]
fn copy_snapshotter_builds_the_same_image_as_overlay() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!("FROM {}\n{STEPS}", ctx.base);
    let dir = ctx.context(
        "ctx",
        &[
            ("Dockerfile", &df),
            ("files/from-context.txt", "context\n"),
            ("files/sub/nested.txt", "nested\n"),
        ],
    );
    let repo = ctx.repo("snapshotter");
    let build = |snapshotter: &str| {
        let tag = format!("{repo}:{snapshotter}");
        let state = ctx.dir.path().join(format!("state-{snapshotter}"));
        let r = ctx.run(
            &[
                "-vv",
                "build",
                "--platform",
                TWO,
                "-t",
                &tag,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[
                ("SOURCE_DATE_EPOCH", "0"),
                ("POLYARCH_SNAPSHOTTER", snapshotter),
                ("POLYARCH_STATE_DIR", state.to_str().unwrap()),
            ],
        );
        r.assert_code(0);
        // The snapshotter each step used is reported through tracing (debug level): four
        // layer-making steps per platform, all with the one asked for.
        let used = |name: &str| r.stderr.matches(&format!("snapshotter={name}")).count();
        assert_eq!(used(snapshotter), 2 * 4, "{}", r.stderr);
        let other = if snapshotter == "copy" {
            "overlay"
        } else {
            "copy"
        };
        assert_eq!(used(other), 0, "{}", r.stderr);
        (tag, r.index_digest())
    };
    let (overlay_tag, overlay_digest) = build("overlay");
    let (copy_tag, copy_digest) = build("copy");

    let overlay = pull_layout(&ctx, &overlay_tag);
    let copy = pull_layout(&ctx, &copy_tag);
    for arch in ["amd64", "arm64"] {
        let want = image_files(&overlay, "pulled", arch);
        let got = image_files(&copy, "pulled", arch);
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "{arch}: paths (overlay, copy)"
        );
        assert_eq!(want, got, "{arch}: contents (overlay, copy)");
        // The changes are there (the comparison is not of two empty images).
        assert_eq!(got["data/same"], b"BBBB\n");
        assert_eq!(got["swap"], b"file\n");
        assert_eq!(got["filedir/x"], b"in\n");
        assert_eq!(got["again/n"], b"third\n");
        assert_eq!(got["data/from-context.txt"], b"context\nappended\n");
        assert_eq!(got["data/sub/nested.txt"], b"nested\n");
        for gone in [
            "tree/a/b/c",
            "data/gone",
            "again/old",
            "swap/inner",
            "bin/vi",
            "new-hard",
        ] {
            assert!(!got.contains_key(gone), "{arch}: {gone} was deleted");
        }
        assert!(got.contains_key("bin/sh"), "{arch}: the base is there");
    }
    assert_eq!(image_files(&copy, "pulled", "arm64")["arch"], b"aarch64\n");
    assert_eq!(
        overlay_digest, copy_digest,
        "index digests differ between the overlay and the copy build"
    );
    assert_eq!(
        digest_of(&skopeo_raw(&overlay_tag).unwrap()),
        digest_of(&skopeo_raw(&copy_tag).unwrap())
    );
}
