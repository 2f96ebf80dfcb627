//! Outputs (`-o`, `--load`, issue 14 item 2), each read back by a third-party client: an OCI
//! archive and layout by skopeo (`oci-archive:`, `oci:`) and umoci, a Docker archive by
//! `podman load` and then `podman run` (emulated arm64 included), the `type=local` root
//! filesystem compared file by file with umoci's unpacking of the same image, `type=tar` and
//! `dest=-` against it, and the flag errors (unknown keys, one platform, no podman).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{digest_of, run, skopeo_raw, Run, TestContext};

const DOCKERFILE_TAIL: &str = "COPY a.txt /srv/a.txt\n\
RUN echo built > /srv/b.txt && ln -s /srv/a.txt /srv/link && rm /bin/vi && mkdir -p /srv/empty\n\
CMD [\"cat\", \"/srv/a.txt\"]\n";

fn context(ctx: &TestContext) -> PathBuf {
    let df = format!("FROM {}\n{DOCKERFILE_TAIL}", ctx.base);
    ctx.context(
        "ctx",
        &[("Dockerfile", &df), ("a.txt", "from the context\n")],
    )
}

fn checked(c: &mut Command) -> Vec<u8> {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One entry of a tree: kind, mode, owner, and the content or link target.
type Entry = (char, u32, u32, u32, Vec<u8>);

/// Every entry under `root` (not `root` itself), by path relative to it.
fn tree(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = m.file_type();
            let (kind, body) = if ft.is_dir() {
                ('d', Vec::new())
            } else if ft.is_symlink() {
                (
                    'l',
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if ft.is_file() {
                ('f', std::fs::read(&p).unwrap())
            } else {
                ('o', m.rdev().to_le_bytes().to_vec())
            };
            out.insert(rel, (kind, m.mode() & 0o7777, m.uid(), m.gid(), body));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn assert_same_tree(ours: &Path, theirs: &Path) {
    let (a, b) = (tree(ours), tree(theirs));
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "only in {}: {only_a:?}; only in {}: {only_b:?}",
        ours.display(),
        theirs.display()
    );
    for (k, v) in &a {
        assert_eq!(
            v,
            &b[k],
            "{k} differs between {} and {}",
            ours.display(),
            theirs.display()
        );
    }
}

/// The amd64 image of an OCI archive copied by skopeo into a one-image layout, unpacked by
/// umoci: its root filesystem.
fn umoci_rootfs(ctx: &TestContext, archive: &Path, arch: &str) -> PathBuf {
    let single = ctx.dir.path().join(format!("single-{arch}"));
    checked(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--override-arch", arch])
            .arg(format!("oci-archive:{}:latest", archive.display()))
            .arg(format!("oci:{}:img", single.display())),
    );
    let bundle = ctx.dir.path().join(format!("bundle-{arch}"));
    checked(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:img", single.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

#[test]
fn oci_archive_layout_local_and_tar_agree_with_skopeo_and_umoci() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = context(&ctx);
    let d = ctx.dir.path();
    let (archive, layout, local, rootfs_tar) = (
        d.join("out.tar"),
        d.join("layout"),
        d.join("local"),
        d.join("rootfs.tar"),
    );
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=oci,dest={}", archive.display()),
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            "-o",
            &format!("type=local,dest={}", local.display()),
            "-o",
            &format!("type=tar,dest={}", rootfs_tar.display()),
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);
    let index = r.index_digest();
    // skopeo reads the archive's index: the same bytes as the layout's.
    let raw = checked(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:latest", archive.display())),
    );
    assert_eq!(digest_of(&raw), index);
    let raw_dir = checked(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:latest", layout.display())),
    );
    assert_eq!(raw, raw_dir);
    // type=local splits by platform as buildx does, and each tree is the image's root
    // filesystem exactly as umoci unpacks it (whiteouts applied: no /bin/vi).
    let mut split: Vec<String> = std::fs::read_dir(&local)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    split.sort();
    assert_eq!(split, ["linux_amd64", "linux_arm64"]);
    for arch in ["amd64", "arm64"] {
        let ours = local.join(format!("linux_{arch}"));
        assert!(!ours.join("bin/vi").exists());
        assert_eq!(std::fs::read(ours.join("srv/b.txt")).unwrap(), b"built\n");
        assert_same_tree(&ours, &umoci_rootfs(&ctx, &archive, arch));
    }
    // type=tar holds the same trees (extracted by GNU tar).
    let x = d.join("x");
    std::fs::create_dir(&x).unwrap();
    checked(
        Command::new("tar")
            .args(["-x", "--numeric-owner", "-p", "-f"])
            .arg(&rootfs_tar)
            .arg("-C")
            .arg(&x),
    );
    assert_same_tree(&x.join("linux_amd64"), &local.join("linux_amd64"));
}

/// `podman` with a store of the test's own (nothing left in the machine's store).
fn podman(ctx: &TestContext, args: &[&str]) -> Run {
    let mut c = Command::new("podman");
    c.args(args)
        .env("CONTAINERS_STORAGE_CONF", storage_conf(ctx));
    run(c)
}

fn storage_conf(ctx: &TestContext) -> PathBuf {
    let d = ctx.dir.path().join("podman");
    let conf = d.join("storage.conf");
    if !conf.exists() {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            &conf,
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
                d.display()
            ),
        )
        .unwrap();
    }
    conf
}

fn have_podman() -> bool {
    let found = Command::new("podman").arg("--version").output().is_ok();
    if !found && std::env::var_os("CI").is_some() {
        panic!("podman missing under CI: run scripts/test (scripts/lib.sh installs it)");
    }
    found
}

/// `podman run` of an image, with limits this machine's root may set (no CAP_SYS_RESOURCE
/// needed) and no network.
fn podman_run(ctx: &TestContext, image: &str, cmd: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1000:1000",
        image,
    ];
    args.extend_from_slice(cmd);
    let r = podman(ctx, &args);
    r.assert_code(0);
    r.stdout
}

#[test]
fn docker_archive_and_load_run_in_podman() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    if !have_podman() {
        return;
    }
    let dir = context(&ctx);
    let name = format!("{}:v1", ctx.repo("outputs-docker"));
    let archive = ctx.dir.path().join("arm64.tar");
    // Emulated arm64 as a Docker archive, loaded by podman and run through qemu.
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/arm64",
            "-t",
            &name,
            "-o",
            &format!("type=docker,dest={}", archive.display()),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let loaded = podman(&ctx, &["load", "-i", archive.to_str().unwrap()]);
    loaded.assert_code(0);
    assert!(loaded.stdout.contains(&name), "{}", loaded.stdout);
    assert_eq!(podman_run(&ctx, &name, &[]), "from the context\n");
    assert_eq!(podman_run(&ctx, &name, &["uname", "-m"]), "aarch64\n");
    assert_eq!(podman_run(&ctx, &name, &["cat", "/srv/b.txt"]), "built\n");
    // --load: the same through podman itself, for amd64.
    let native = format!("{}:native", ctx.repo("outputs-load"));
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &native,
            "--load",
            dir.to_str().unwrap(),
        ],
        &[(
            "CONTAINERS_STORAGE_CONF",
            storage_conf(&ctx).to_str().unwrap(),
        )],
    );
    r.assert_code(0);
    assert_eq!(podman_run(&ctx, &native, &["uname", "-m"]), "x86_64\n");
    // Several platforms cannot go into one Docker archive: exit 2 before anything is built.
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            "type=docker,dest=x.tar",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("holds one platform"), "{}", r.stderr);
}

#[test]
fn load_without_podman_and_bad_output_keys_fail_clearly() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = context(&ctx);
    // No podman on the PATH: exit 4, naming the fix, before anything is built.
    let empty = ctx.dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "--load",
            dir.to_str().unwrap(),
        ],
        &[("PATH", empty.to_str().unwrap())],
    );
    r.assert_code(4);
    assert!(r.stderr.contains("--load needs podman"), "{}", r.stderr);
    assert!(r.stderr.contains("apt-get install podman"), "{}", r.stderr);
    assert!(!r.stderr.contains("#1"), "a step ran: {}", r.stderr);
    // An unknown key lists the valid ones for that type (exit 2).
    let r = ctx.run(
        &[
            "build",
            "-o",
            "type=local,dest=x,compress=yes",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(
        r.stderr.contains(
            "unknown key \"compress\" for type=local (valid: type, dest, platform-split)"
        ),
        "{}",
        r.stderr
    );
    let r = ctx.run(
        &["build", "-o", "type=s3,bucket=b", dir.to_str().unwrap()],
        &[],
    );
    r.assert_code(2);
    assert!(
        r.stderr
            .contains("supported: registry, image, oci, docker, local, tar"),
        "{}",
        r.stderr
    );
}

#[test]
fn tar_to_stdout_and_registry_outputs() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = context(&ctx);
    // dest=-: the root filesystem tar is all stdout holds.
    let mut c = ctx.command();
    c.args([
        "build",
        "--platform",
        "linux/amd64",
        "-o",
        "type=tar,dest=-",
    ])
    .arg(&dir);
    let out = {
        let _shared = crate::harness::binfmt_shared();
        c.output().unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&out.stdout[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name == "srv/a.txt" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert_eq!(s, "from the context\n");
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "srv/a.txt"), "{names:?}");
    assert!(!names.iter().any(|n| n == "bin/vi"));
    // type=registry,name=R pushes as --push does; type=image,push-by-digest=true pushes by
    // digest only (docker/build-push-action's matrix recipe).
    let repo = ctx.repo("outputs-registry");
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=registry,name={repo}:v1"),
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);
    let raw = skopeo_raw(&format!("{repo}:v1")).expect("tag pushed");
    assert_eq!(digest_of(&raw), r.index_digest());
    let meta = ctx.dir.path().join("meta.json");
    let repo2 = ctx.repo("outputs-bydigest");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-o",
            &format!(
                "type=image,\"name={repo2}\",push-by-digest=true,name-canonical=true,push=true"
            ),
            "--metadata-file",
            meta.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let digest = m["containerimage.digest"].as_str().unwrap();
    assert!(skopeo_raw(&format!("{repo2}@{digest}")).is_some());
    assert!(
        skopeo_raw(&format!("{repo2}:latest")).is_none(),
        "no tag moves"
    );
}

// Issue 14 item 6: a one-platform build pushes what buildx pushes, the image manifest alone
// (an index only when `index:` annotations need one); several platforms an index.
#[test]
fn a_single_platform_push_is_a_manifest_as_buildx_pushes_it() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let dir = context(&ctx);
    let tag = format!("{}:one", ctx.repo("single"));
    let digest_file = ctx.dir.path().join("digest");
    let r = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &tag,
            "--push",
            "--digest-file",
            digest_file.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(0);
    let raw = skopeo_raw(&tag).expect("pushed");
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    let manifest = digest_of(&raw);
    assert!(
        r.stdout.contains(&format!("linux/amd64      {manifest}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("tags name manifest {manifest}")),
        "{}",
        r.stdout
    );
    let line = std::fs::read_to_string(&digest_file).unwrap();
    assert!(line.trim().ends_with(&manifest), "{line}");
    // An index: annotation needs an index, so the tag gets one.
    let tag2 = format!("{}:indexed", ctx.repo("single"));
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64",
            "-t",
            &tag2,
            "--push",
            "--annotation",
            "index:com.example.k=v",
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let v: serde_json::Value = serde_json::from_slice(&skopeo_raw(&tag2).unwrap()).unwrap();
    assert_eq!(v["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        v["manifests"][0]["digest"],
        manifest.as_str(),
        "the same image"
    );
}
