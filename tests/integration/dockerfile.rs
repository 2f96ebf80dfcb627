//! The Dockerfile people write, end to end on the real registry for linux/amd64 and
//! linux/arm64: cross-compilation stages, shared stage builds, cache mounts, secrets, heredocs,
//! ADD (local archives, URLs from a loopback HTTP server with --checksum), --network=none,
//! ONBUILD triggers, and errors that build nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::harness::{image_files, layout_index, pull_layout, skopeo_raw, Run, TestContext};

const TWO: &str = "linux/amd64,linux/arm64/v8";

/// Runs `polyarch build` for `platforms`, pushing to `tag`, with extra flags and environment.
fn build(
    ctx: &TestContext,
    dir: &Path,
    platforms: &str,
    tag: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Run {
    let mut args = vec!["build", "--platform", platforms, "-t", tag, "--push"];
    args.extend_from_slice(extra);
    args.push(dir.to_str().unwrap());
    ctx.run(&args, envs)
}

/// Every blob of a pulled layout, layers decompressed: (digest file name, bytes).
fn all_blob_bytes(layout: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let raw = std::fs::read(e.path()).unwrap();
        let mut plain = Vec::new();
        if raw.starts_with(&[0x1f, 0x8b]) {
            GzDecoder::new(&raw[..]).read_to_end(&mut plain).unwrap();
        } else {
            plain = raw;
        }
        out.push((e.file_name().to_string_lossy().into_owned(), plain));
    }
    out
}

/// The paths in every layer of every image in a layout.
fn all_layer_paths(layout: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (_, bytes) in all_blob_bytes(layout) {
        let mut ar = tar::Archive::new(&bytes[..]);
        let Ok(entries) = ar.entries() else { continue };
        for e in entries.flatten() {
            if let Ok(p) = e.path() {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

fn text(files: &BTreeMap<String, Vec<u8>>, path: &str) -> String {
    String::from_utf8_lossy(
        files
            .get(path)
            .unwrap_or_else(|| panic!("no {path} in {:?}", files.keys().collect::<Vec<_>>())),
    )
    .into_owned()
}

/// Lines of plain progress output on stderr that mark a stage build starting.
fn stage_starts<'a>(stderr: &'a str, stage: &str) -> Vec<&'a str> {
    let needle = format!("] stage {stage} (");
    stderr.lines().filter(|l| l.contains(&needle)).collect()
}

#[test]
fn build_platform_builder_runs_natively_once_per_target_and_shared_stages_once() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let base = &ctx.base;
    let df = format!(
        "FROM --platform=$BUILDPLATFORM {base} AS build\n\
         ARG TARGETARCH\n\
         RUN mkdir -p /out && uname -m > /out/built-on-$TARGETARCH && echo $TARGETARCH > /out/arch\n\
         \n\
         FROM --platform=$BUILDPLATFORM {base} AS shared\n\
         RUN uname -m > /shared-built-on && date +%s%N > /shared-stamp\n\
         \n\
         FROM {base}\n\
         COPY --from=build /out/ /out/\n\
         COPY --from=shared /shared-built-on /shared-stamp /\n\
         RUN uname -m > /final-arch\n"
    );
    let dir = ctx.context("cross", &[("Dockerfile", &df)]);
    let tag = format!("{}:v1", ctx.repo("cross"));
    let r = build(&ctx, &dir, TWO, &tag, &[], &[]);
    r.assert_code(0);

    // The builder declares TARGETARCH: one build per target, both natively on this host.
    let builds = stage_starts(&r.stderr, "build");
    assert_eq!(builds.len(), 2, "{}", r.stderr);
    for l in &builds {
        assert!(l.starts_with("[linux/amd64]"), "{l}");
        assert!(l.ends_with("runs natively"), "{l}");
    }
    // `shared` uses nothing target-specific: built once for both targets.
    assert_eq!(stage_starts(&r.stderr, "shared").len(), 1, "{}", r.stderr);

    let layout = pull_layout(&ctx, &tag);
    let amd = image_files(&layout, "pulled", "amd64");
    let arm = image_files(&layout, "pulled", "arm64");
    assert_eq!(text(&amd, "out/built-on-amd64"), "x86_64\n");
    assert_eq!(
        text(&arm, "out/built-on-arm64"),
        "x86_64\n",
        "the builder ran natively"
    );
    assert!(!arm.contains_key("out/built-on-amd64"));
    assert_eq!(text(&amd, "out/arch"), "amd64\n");
    assert_eq!(text(&arm, "out/arch"), "arm64\n");
    assert_eq!(
        text(&arm, "final-arch"),
        "aarch64\n",
        "the final stage is emulated"
    );
    assert_eq!(text(&amd, "final-arch"), "x86_64\n");
    assert_eq!(text(&arm, "shared-built-on"), "x86_64\n");
    assert_eq!(
        amd["shared-stamp"], arm["shared-stamp"],
        "both targets got the one shared build"
    );
    // Nothing of the builder stages' own filesystems leaks into the final images.
    assert!(!arm.contains_key("out/../shared-built-on"));
}

#[test]
fn cache_mount_survives_into_a_second_build_but_into_no_layer() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let id = format!("polyarch-test-{}", std::process::id());
    let df = format!(
        "FROM {}\n\
         RUN --mount=type=cache,target=/var/cache/app,id={id} \\\n\
             echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count\n",
        ctx.base
    );
    let dir = ctx.context("cache", &[("Dockerfile", &df)]);
    let state = ctx.dir.path().join("state");
    let state = state.to_str().unwrap();
    let repo = ctx.repo("cache");
    let mut counts = Vec::new();
    for n in 1..=2 {
        let tag = format!("{repo}:v{n}");
        // The step cache would reuse the first run's layer: the second must run the step to
        // show that the cache mount (kept apart from the step cache) survived.
        build(
            &ctx,
            &dir,
            "linux/amd64",
            &tag,
            if n == 2 { &["--no-cache"] } else { &[] },
            &[("POLYARCH_STATE_DIR", state)],
        )
        .assert_code(0);
        let layout = pull_layout(&ctx, &tag);
        let files = image_files(&layout, "pulled", "amd64");
        counts.push(text(&files, "count").trim().to_string());
        let paths = all_layer_paths(&layout);
        assert!(
            !paths.iter().any(|p| p.contains("var/cache/app")),
            "the cache mount reached a layer: {paths:?}"
        );
    }
    assert_eq!(counts, ["1", "2"], "the cache kept the first build's file");
}

#[test]
fn locked_cache_mounts_serialise_the_concurrent_platforms() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let id = format!("polyarch-locked-{}", std::process::id());
    let df = format!(
        "FROM {}\n\
         ARG TARGETARCH\n\
         RUN --mount=type=cache,target=/c,id={id},sharing=locked \\\n\
             echo start-$TARGETARCH >> /c/log && sleep 1 && echo end-$TARGETARCH >> /c/log && cp /c/log /log\n",
        ctx.base
    );
    let dir = ctx.context("locked", &[("Dockerfile", &df)]);
    let tag = format!("{}:v1", ctx.repo("locked"));
    let state = ctx.dir.path().join("state");
    build(
        &ctx,
        &dir,
        TWO,
        &tag,
        &[],
        &[("POLYARCH_STATE_DIR", state.to_str().unwrap())],
    )
    .assert_code(0);
    let layout = pull_layout(&ctx, &tag);
    let amd = text(&image_files(&layout, "pulled", "amd64"), "log");
    let arm = text(&image_files(&layout, "pulled", "arm64"), "log");
    // Whichever ran second saw the whole run of the first: start/end pairs never interleave.
    let longer = if amd.lines().count() > arm.lines().count() {
        &amd
    } else {
        &arm
    };
    let lines: Vec<&str> = longer.lines().collect();
    assert_eq!(lines.len(), 4, "{longer}");
    for pair in lines.chunks(2) {
        let a = pair[0].strip_prefix("start-").unwrap();
        assert_eq!(pair[1], format!("end-{a}"), "interleaved: {longer}");
    }
}

#[test]
fn secret_is_readable_in_run_and_absent_from_every_pushed_blob_and_the_logs() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let secret = "s3cr3t-polyarch-value-8d1f";
    // The Dockerfile names only the secret's hash: the value itself must appear nowhere.
    let hash = &crate::harness::digest_of(secret.as_bytes())[7..];
    let df = format!(
        "FROM {}\n\
         RUN --mount=type=secret,id=tok,required \\\n\
             test \"$(sha256sum < /run/secrets/tok | cut -d' ' -f1)\" = {hash} && echo file-ok > /secret-file\n\
         RUN --mount=type=secret,id=tok,env=TOKEN,target=/root/tok \\\n\
             test \"$(printf %s \"$TOKEN\" | sha256sum | cut -d' ' -f1)\" = {hash} && test -f /root/tok && echo env-ok > /secret-env\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /absent\n",
        ctx.base
    );
    let dir = ctx.context("secret", &[("Dockerfile", &df)]);
    let file = ctx.dir.path().join("token.txt");
    std::fs::write(&file, secret).unwrap();
    let tag = format!("{}:v1", ctx.repo("secret"));
    let spec = format!("id=tok,src={}", file.display());
    let r = build(&ctx, &dir, TWO, &tag, &["--secret", &spec], &[]);
    r.assert_code(0);
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));

    let layout = pull_layout(&ctx, &tag);
    for arch in ["amd64", "arm64"] {
        let files = image_files(&layout, "pulled", arch);
        assert_eq!(text(&files, "secret-file"), "file-ok\n");
        assert_eq!(text(&files, "secret-env"), "env-ok\n");
        assert_eq!(text(&files, "absent"), "skipped\n");
        assert!(
            !files
                .keys()
                .any(|k| k.starts_with("run/secrets") || k.starts_with("root/tok")),
            "{arch}: a secret mount point reached a layer"
        );
    }
    let blobs = all_blob_bytes(&layout);
    assert!(blobs.len() >= 6, "config, manifests, index, layers");
    for (name, bytes) in &blobs {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in blob {name}"
        );
    }

    // A required secret that was not given: exit 2, nothing pushed.
    let tag2 = format!("{}:v2", ctx.repo("secret"));
    let r = build(&ctx, &dir, TWO, &tag2, &[], &[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("secret \"tok\" is required"),
        "{}",
        r.stderr
    );
    assert!(skopeo_raw(&tag2).is_none());
}

#[test]
fn heredoc_run_and_copy() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let df = format!(
        "FROM {}\n\
         ARG NAME=world\n\
         COPY <<EOF /etc/greeting\n\
         hello $NAME\n\
         EOF\n\
         COPY --chmod=0600 <<'RAW' <<-TABS /etc/\n\
         hello $NAME\n\
         RAW\n\
         \tindented $NAME\n\
         \tTABS\n\
         RUN <<EOF\n\
         set -e\n\
         cat /etc/greeting > /from-heredoc\n\
         echo \"second line\" >> /from-heredoc\n\
         EOF\n\
         RUN <<EOF\n\
         #!/bin/sh\n\
         echo shebang $(uname -m) > /shebang\n\
         EOF\n\
         RUN cat <<A > /two && cat <<'B' >> /two\n\
         a $NAME\n\
         A\n\
         b $NAME\n\
         B\n\
         COPY --chmod=u+x,go-r <<S /usr/local/bin/s\n\
         #!/bin/sh\n\
         S\n\
         RUN stat -c %a /usr/local/bin/s > /s-mode\n\
         USER nobody\n\
         WORKDIR /srv/app\n\
         RUN stat -c %U /srv/app > /tmp/workdir-owner\n",
        ctx.base
    );
    let dir = ctx.context("heredoc", &[("Dockerfile", &df)]);
    let tag = format!("{}:v1", ctx.repo("heredoc"));
    build(&ctx, &dir, TWO, &tag, &[], &[]).assert_code(0);
    let layout = pull_layout(&ctx, &tag);
    for (arch, machine) in [("amd64", "x86_64"), ("arm64", "aarch64")] {
        let files = image_files(&layout, "pulled", arch);
        assert_eq!(text(&files, "etc/greeting"), "hello world\n");
        assert_eq!(text(&files, "etc/RAW"), "hello $NAME\n");
        assert_eq!(text(&files, "etc/TABS"), "indented world\n");
        assert_eq!(text(&files, "from-heredoc"), "hello world\nsecond line\n");
        assert_eq!(text(&files, "shebang"), format!("shebang {machine}\n"));
        assert_eq!(text(&files, "two"), "a world\nb $NAME\n");
        // A symbolic --chmod applies to the file's own mode (0644 for a heredoc).
        assert_eq!(text(&files, "s-mode"), "700\n");
        // WORKDIR makes its directory, owned by the user, as BuildKit does.
        assert_eq!(text(&files, "tmp/workdir-owner"), "nobody\n");
        assert!(!files.keys().any(|k| k.starts_with("dev/")));
    }
}

/// Serves `body` over HTTP on loopback for `requests` requests; returns the URL base.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// A gzip-compressed tar with `dir/`, `dir/file` (uid 1234) and a symlink.
fn small_tar_gz() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = || {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h
    };
    let mut h = header();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_path("dir/").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let data = b"from the archive\n";
    let mut h = header();
    h.set_mode(0o640);
    h.set_uid(1234);
    h.set_gid(1234);
    h.set_size(data.len() as u64);
    h.set_path("dir/file").unwrap();
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    let mut h = header();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    h.set_path("dir/link").unwrap();
    h.set_link_name("file").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn add_unpacks_local_archives_and_fetches_urls_with_checksums() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let payload = b"downloaded over loopback\n".to_vec();
    let digest = crate::harness::digest_of(&payload);
    let url = serve(payload.clone(), 4);
    let df = format!(
        "FROM {}\n\
         ADD bundle.tar.gz /opt/\n\
         ADD --unpack=false bundle.tar.gz /packed/\n\
         ADD --checksum={digest} {url}/files/tool.txt /usr/share/\n\
         ADD {url}/files/plain /plain\n\
         RUN stat -c '%u %a' /opt/dir/file > /owner && stat -c '%a' /usr/share/tool.txt > /url-mode\n",
        ctx.base
    );
    let dir = ctx.context("add", &[("Dockerfile", &df)]);
    std::fs::write(dir.join("bundle.tar.gz"), small_tar_gz()).unwrap();
    let tag = format!("{}:v1", ctx.repo("add"));
    build(&ctx, &dir, "linux/amd64", &tag, &[], &[]).assert_code(0);
    let layout = pull_layout(&ctx, &tag);
    let files = image_files(&layout, "pulled", "amd64");
    assert_eq!(text(&files, "opt/dir/file"), "from the archive\n");
    assert!(files.contains_key("opt/dir/link"));
    assert_eq!(text(&files, "owner"), "1234 640\n", "archive owners kept");
    assert!(files.contains_key("packed/bundle.tar.gz"));
    assert_eq!(
        text(&files, "usr/share/tool.txt"),
        "downloaded over loopback\n"
    );
    assert_eq!(text(&files, "url-mode"), "600\n");
    assert_eq!(files["plain"], payload);

    // A wrong checksum: exit 2, nothing pushed.
    let wrong = format!("sha256:{}", "0".repeat(64));
    let url2 = serve(payload, 1);
    let df = format!("FROM {}\nADD --checksum={wrong} {url2}/x /x\n", ctx.base);
    let dir = ctx.context("add-bad", &[("Dockerfile", &df)]);
    let tag = format!("{}:v2", ctx.repo("add"));
    let r = build(&ctx, &dir, "linux/amd64", &tag, &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("digest mismatch"), "{}", r.stderr);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);
    assert!(skopeo_raw(&tag).is_none());
}

#[test]
fn network_none_has_only_loopback_and_host_reaches_the_registry() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let reg = &ctx.registry;
    let df = format!(
        "FROM {}\n\
         RUN --network=none sh -c 'ip link show lo | grep -q UP && ! ip link | grep -q eth; \
              if wget -q -T 2 -O /dev/null http://{reg}/v2/; then exit 1; fi; echo isolated > /none'\n\
         RUN --network=host wget -q -O /host http://{reg}/v2/\n",
        ctx.base
    );
    let dir = ctx.context("net", &[("Dockerfile", &df)]);
    let tag = format!("{}:v1", ctx.repo("net"));
    // The host's network is an entitlement since issue 12: refused without --allow.
    let r = build(&ctx, &dir, "linux/amd64", &tag, &[], &[]);
    r.assert_code(2);
    assert!(r.stderr.contains("--allow network.host"), "{}", r.stderr);
    build(
        &ctx,
        &dir,
        "linux/amd64",
        &tag,
        &["--allow", "network.host"],
        &[],
    )
    .assert_code(0);
    let layout = pull_layout(&ctx, &tag);
    let files = image_files(&layout, "pulled", "amd64");
    assert_eq!(text(&files, "none"), "isolated\n");
    assert_eq!(text(&files, "host"), "{}");
}

#[test]
fn copy_from_stages_and_images_with_link_exclude_chown_and_bind_mounts() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let base = &ctx.base;
    let df = format!(
        "FROM {base} AS src\n\
         RUN mkdir -p /data/sub && echo keep > /data/keep.txt && echo drop > /data/drop.md \
             && echo deep > /data/sub/deep.txt && ln -s keep.txt /data/link && chown -R nobody /data\n\
         \n\
         FROM {base}\n\
         COPY --from=src --exclude=*.md /data/ /copied/\n\
         COPY --from=src --chown=root:nogroup /data/keep.txt /owned\n\
         COPY --link --from=src /data/sub /linked/\n\
         COPY --from={base} /bin/busybox /from-image\n\
         COPY --exclude=ignored.* . /ctx/\n\
         RUN --mount=type=bind,from=src,source=/data,target=/mnt/data \\\n\
             --mount=type=bind,target=/mnt/ctx \\\n\
             --mount=type=tmpfs,target=/scratch \\\n\
             cat /mnt/data/keep.txt /mnt/ctx/a.txt > /bound && touch /scratch/x && \\\n\
             stat -c '%U' /copied/keep.txt > /copied-owner && stat -c '%U:%G' /owned > /owned-owner \\\n\
             && if touch /mnt/data/new 2>/dev/null; then echo writable > /ro; else echo read-only > /ro; fi\n",
    );
    let dir = ctx.context(
        "copyfrom",
        &[
            ("Dockerfile", &df),
            ("a.txt", "context a\n"),
            ("ignored.txt", "x\n"),
            ("secret.key", "k\n"),
            (".dockerignore", "secret.key\n"),
        ],
    );
    let tag = format!("{}:v1", ctx.repo("copyfrom"));
    build(&ctx, &dir, TWO, &tag, &[], &[]).assert_code(0);
    let layout = pull_layout(&ctx, &tag);
    for arch in ["amd64", "arm64"] {
        let f = image_files(&layout, "pulled", arch);
        assert_eq!(text(&f, "copied/keep.txt"), "keep\n");
        assert!(!f.contains_key("copied/drop.md"), "--exclude");
        assert_eq!(text(&f, "copied/sub/deep.txt"), "deep\n");
        assert!(f.contains_key("copied/link"));
        assert_eq!(
            text(&f, "copied-owner"),
            "nobody\n",
            "COPY --from keeps owners"
        );
        assert_eq!(text(&f, "owned-owner"), "root:nogroup\n");
        assert_eq!(text(&f, "linked/deep.txt"), "deep\n");
        assert!(f.contains_key("from-image"));
        assert_eq!(text(&f, "ctx/a.txt"), "context a\n");
        assert!(!f.contains_key("ctx/ignored.txt"), "--exclude");
        assert!(!f.contains_key("ctx/secret.key"), ".dockerignore");
        assert_eq!(text(&f, "bound"), "keep\ncontext a\n");
        assert_eq!(text(&f, "ro"), "read-only\n");
        assert!(!f
            .keys()
            .any(|k| k.starts_with("mnt/") || k.starts_with("scratch/")));
    }
    // The busybox of each platform's base, not the host's.
    let idx = layout_index(&layout, "pulled");
    assert_eq!(idx.manifests.len(), 2);
}

#[test]
fn onbuild_triggers_run_when_the_image_is_a_base() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let parent_tag = format!("{}:v1", ctx.repo("onbuild-parent"));
    let df = format!(
        "FROM {}\n\
         ONBUILD ARG TARGETARCH\n\
         ONBUILD RUN echo triggered-$TARGETARCH > /triggered\n\
         ONBUILD COPY marker /marker\n\
         MAINTAINER Jane Doe <jane@example.com>\n\
         STOPSIGNAL SIGQUIT\n\
         VOLUME /data\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         HEALTHCHECK --interval=30s --retries=2 CMD true\n",
        ctx.base
    );
    let dir = ctx.context("parent", &[("Dockerfile", &df)]);
    build(&ctx, &dir, TWO, &parent_tag, &[], &[]).assert_code(0);
    // The config records everything (skopeo reads it back).
    let layout = pull_layout(&ctx, &parent_tag);
    let idx = layout_index(&layout, "pulled");
    let manifest: polyarch::oci::ImageManifest = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&idx.manifests[0].digest.to_string()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&manifest.config.digest.to_string()[7..]),
        )
        .unwrap(),
    )
    .unwrap();
    let c = &config["config"];
    assert_eq!(c["OnBuild"].as_array().unwrap().len(), 3, "{config}");
    assert_eq!(c["StopSignal"], "SIGQUIT");
    assert_eq!(c["Volumes"]["/data"], serde_json::json!({}));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["Labels"]["maintainer"], "Jane Doe <jane@example.com>");
    assert_eq!(config["author"], "Jane Doe <jane@example.com>");

    let child = format!("FROM {parent_tag}\nRUN cat /triggered /marker > /both\n");
    let dir = ctx.context("child", &[("Dockerfile", &child), ("marker", "marked\n")]);
    let tag = format!("{}:v1", ctx.repo("onbuild-child"));
    build(&ctx, &dir, TWO, &tag, &[], &[]).assert_code(0);
    let layout = pull_layout(&ctx, &tag);
    assert_eq!(
        text(&image_files(&layout, "pulled", "arm64"), "both"),
        "triggered-arm64\nmarked\n"
    );
    assert_eq!(
        text(&image_files(&layout, "pulled", "amd64"), "both"),
        "triggered-amd64\nmarked\n"
    );
}

#[test]
fn dockerfile_errors_exit_2_with_a_caret_and_build_nothing() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            "mount",
            "RUN --mount=type=cahce,target=/x true\n",
            "Dockerfile:2:13: invalid --mount \"type=cahce,target=/x\": unsupported mount type \"cahce\" (did you mean cache?)",
        ),
        (
            "later",
            "COPY --from=later /x /x\nFROM scratch AS later\nCOPY --from=0 /x /y\n",
            "Dockerfile:2:13: COPY --from \"later\" names the stage defined on line 3",
        ),
        (
            "unknown",
            "HEALTHCHEK CMD true\n",
            "Dockerfile:2:1: unknown instruction: HEALTHCHEK (did you mean HEALTHCHECK?)",
        ),
    ];
    for (name, body, want) in cases {
        let df = format!("FROM {}\n{body}", ctx.base);
        let dir = ctx.context(name, &[("Dockerfile", &df)]);
        let tag = format!("{}:v1", ctx.repo(name));
        let state = ctx.dir.path().join(format!("state-{name}"));
        let r = build(
            &ctx,
            &dir,
            TWO,
            &tag,
            &[],
            &[("POLYARCH_STATE_DIR", state.to_str().unwrap())],
        );
        r.assert_code(2);
        assert!(r.stderr.contains(want), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("^"), "{name}: no caret: {}", r.stderr);
        assert!(skopeo_raw(&tag).is_none(), "{name}: something was pushed");
        // Nothing was pulled or built: the store has no layers.
        let layers: Vec<PathBuf> = std::fs::read_dir(state.join("layers"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(layers.is_empty(), "{name}: {layers:?}");
    }
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let base = &ctx.base;
    let df = format!(
        "FROM {base} AS broken\n\
         RUN exit 3\n\
         \n\
         FROM {base} AS dep\n\
         RUN echo dep > /dep\n\
         \n\
         FROM {base} AS wanted\n\
         COPY --from=dep /dep /dep\n\
         RUN echo wanted > /wanted\n\
         \n\
         FROM broken\n"
    );
    let dir = ctx.context("target", &[("Dockerfile", &df)]);
    let tag = format!("{}:v1", ctx.repo("target"));
    let r = build(&ctx, &dir, TWO, &tag, &["--target", "WANTED"], &[]);
    r.assert_code(0);
    assert!(stage_starts(&r.stderr, "broken").is_empty(), "{}", r.stderr);
    let layout = pull_layout(&ctx, &tag);
    let files = image_files(&layout, "pulled", "arm64");
    assert_eq!(text(&files, "dep"), "dep\n");
    assert_eq!(text(&files, "wanted"), "wanted\n");
    // The last stage needs `broken`: its failing step fails the build (exit 1).
    let tag2 = format!("{}:v2", ctx.repo("target"));
    let r = build(&ctx, &dir, TWO, &tag2, &[], &[]);
    r.assert_code(1);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);
    assert!(skopeo_raw(&tag2).is_none());
}
