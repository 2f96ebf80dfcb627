//! Tests of opening a build context and of `COPY` source selection against a real tree
//! (files, directories, symlinks in and out of the context, an ignore file).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;
use crate::exit::{Classify, ExitCode};
use std::os::unix::fs::symlink;

/// A context tree:
/// ```text
/// a.txt b.txt c.md dir/{x.txt, sub/y.txt, link -> x.txt, abs -> /etc/passwd}
/// ignored.log build/{out.bin, keep.txt} lnk-dir -> dir  lnk-out -> ../outside
/// ```
fn tree() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("dir/sub")).unwrap();
    std::fs::create_dir_all(ctx.join("build")).unwrap();
    std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
    std::fs::write(tmp.path().join("outside/secret"), "s").unwrap();
    for f in [
        "a.txt",
        "b.txt",
        "c.md",
        "dir/x.txt",
        "dir/sub/y.txt",
        "ignored.log",
        "build/out.bin",
        "build/keep.txt",
    ] {
        std::fs::write(ctx.join(f), f).unwrap();
    }
    std::fs::set_permissions(ctx.join("a.txt"), std::fs::Permissions::from_mode(0o750)).unwrap();
    symlink("x.txt", ctx.join("dir/link")).unwrap();
    symlink("/etc/passwd", ctx.join("dir/abs")).unwrap();
    symlink("dir", ctx.join("lnk-dir")).unwrap();
    symlink("../outside", ctx.join("lnk-out")).unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.log\nbuild\n!build/keep.txt\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    (tmp, ctx)
}

fn open(ctx: &Path) -> BuildContext {
    BuildContext::open(ctx, &ctx.join("Dockerfile")).unwrap()
}

fn dests(entries: &[CopyEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.dest.as_str()).collect()
}

fn srcs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn single_file_to_file_and_to_directory() {
    let (_t, ctx) = tree();
    let c = open(&ctx);
    let e = c.resolve_copy(&srcs(&["a.txt"]), "/app/renamed").unwrap();
    assert_eq!(dests(&e), ["/app/renamed"]);
    assert_eq!(e[0].kind, EntryKind::File);
    assert_eq!(e[0].mode, 0o750);
    assert_eq!(e[0].src, c.root().join("a.txt"));
    let md = std::fs::metadata(ctx.join("a.txt")).unwrap();
    assert_eq!(e[0].mtime, md.mtime());
    let e = c.resolve_copy(&srcs(&["/a.txt"]), "/app/").unwrap();
    assert_eq!(dests(&e), ["/app/a.txt"]);
    let e = c.resolve_copy(&srcs(&["./dir/../a.txt"]), "app").unwrap();
    assert_eq!(dests(&e), ["/app"]);
}

#[test]
fn multiple_sources_make_dest_a_directory() {
    let (_t, ctx) = tree();
    let e = open(&ctx)
        .resolve_copy(&srcs(&["b.txt", "a.txt"]), "/app")
        .unwrap();
    assert_eq!(dests(&e), ["/app/a.txt", "/app/b.txt"]);
}

#[test]
fn directory_copies_contents_with_symlinks_as_links() {
    let (_t, ctx) = tree();
    let e = open(&ctx).resolve_copy(&srcs(&["dir"]), "/srv").unwrap();
    assert_eq!(
        dests(&e),
        [
            "/srv",
            "/srv/abs",
            "/srv/link",
            "/srv/sub",
            "/srv/sub/y.txt",
            "/srv/x.txt"
        ]
    );
    assert_eq!(e[0].kind, EntryKind::Dir);
    assert_eq!(e[1].kind, EntryKind::Symlink("/etc/passwd".into()));
    assert_eq!(e[2].kind, EntryKind::Symlink("x.txt".into()));
    assert_eq!(e[3].kind, EntryKind::Dir);
    // Parents before children everywhere.
    for (i, x) in e.iter().enumerate() {
        for y in &e[i + 1..] {
            assert!(
                !x.dest.starts_with(&format!("{}/", y.dest)),
                "{x:?} after {y:?}"
            );
        }
    }
}

#[test]
fn whole_context_honours_dockerignore() {
    let (_t, ctx) = tree();
    let e = open(&ctx).resolve_copy(&srcs(&["."]), "/").unwrap();
    let d = dests(&e);
    assert!(d.contains(&"/a.txt"));
    assert!(d.contains(&"/build"), "parent of an exception is kept");
    assert!(d.contains(&"/build/keep.txt"));
    assert!(!d.contains(&"/build/out.bin"));
    assert!(!d.contains(&"/ignored.log"));
    assert!(!d.contains(&"/"), "the root itself is never an entry");
    assert!(
        d.contains(&"/lnk-out"),
        "a symlink inside the tree is copied as a link"
    );
}

#[test]
fn wildcards_follow_go_match() {
    let (_t, ctx) = tree();
    let c = open(&ctx);
    let e = c.resolve_copy(&srcs(&["*.txt"]), "/d/").unwrap();
    assert_eq!(dests(&e), ["/d/a.txt", "/d/b.txt"]);
    let e = c.resolve_copy(&srcs(&["?.md"]), "/d/c.md").unwrap();
    assert_eq!(
        dests(&e),
        ["/d/c.md"],
        "one match keeps the file destination"
    );
    let e = c.resolve_copy(&srcs(&["[ab].txt"]), "/d").unwrap();
    assert_eq!(
        dests(&e),
        ["/d/a.txt", "/d/b.txt"],
        "two matches make a directory"
    );
    let e = c.resolve_copy(&srcs(&["d*/s*/*.txt"]), "/d/").unwrap();
    assert_eq!(dests(&e), ["/d/y.txt"]);
    // BuildKit `AllowEmptyWildcard`: a wildcard matching nothing copies nothing.
    assert!(c
        .resolve_copy(&srcs(&["*.nope"]), "/d/")
        .unwrap()
        .is_empty());
    let e = c.resolve_copy(&srcs(&["*.nope", "a.txt"]), "/d/").unwrap();
    assert_eq!(dests(&e), ["/d/a.txt"]);
    assert!(
        c.resolve_copy(&srcs(&["*.log"]), "/d/").unwrap().is_empty(),
        "ignored files do not match"
    );
    let err = c.resolve_copy(&srcs(&["[x"]), "/d/").unwrap_err();
    assert!(matches!(err, ContextError::BadWildcard { .. }));
}

#[test]
fn dotdot_above_root_is_an_error_naming_the_source() {
    let (_t, ctx) = tree();
    let err = open(&ctx)
        .resolve_copy(&srcs(&["../outside/secret"]), "/x")
        .unwrap_err();
    assert!(matches!(&err, ContextError::OutsideContext { name } if name == "../outside/secret"));
    assert!(err.to_string().contains("../outside/secret"));
    assert_eq!(err.exit_code(), ExitCode::BadInput);
}

#[test]
fn symlinked_sources_are_followed_only_inside() {
    let (_t, ctx) = tree();
    let c = open(&ctx);
    let e = c.resolve_copy(&srcs(&["dir/link"]), "/x").unwrap();
    assert_eq!(e[0].kind, EntryKind::File);
    assert_eq!(e[0].src, c.root().join("dir/x.txt"));
    let e = c.resolve_copy(&srcs(&["lnk-dir/sub"]), "/s").unwrap();
    assert_eq!(dests(&e), ["/s", "/s/y.txt"]);
    let e = c.resolve_copy(&srcs(&["dir/link"]), "/d/").unwrap();
    assert_eq!(dests(&e), ["/d/link"], "the name as written is kept");
    for bad in ["lnk-out/secret", "dir/abs"] {
        let err = c.resolve_copy(&srcs(&[bad]), "/x").unwrap_err();
        assert!(
            matches!(err, ContextError::SymlinkEscapes { .. }),
            "{bad}: {err:?}"
        );
    }
    symlink("loop2", ctx.join("loop1")).unwrap();
    symlink("loop1", ctx.join("loop2")).unwrap();
    let err = c.resolve_copy(&srcs(&["loop1"]), "/x").unwrap_err();
    assert!(matches!(err, ContextError::SymlinkLoop { .. }));
    // An absolute link into the context itself is fine.
    symlink(c.root().join("a.txt"), ctx.join("abs-in")).unwrap();
    let e = c.resolve_copy(&srcs(&["abs-in"]), "/x").unwrap();
    assert_eq!(e[0].src, c.root().join("a.txt"));
}

#[test]
fn missing_and_ignored_named_sources() {
    let (_t, ctx) = tree();
    let c = open(&ctx);
    for bad in ["nope.txt", "ignored.log", "build/out.bin", "dir/x.txt/more"] {
        let err = c.resolve_copy(&srcs(&[bad]), "/x").unwrap_err();
        assert!(
            matches!(&err, ContextError::NotFound { name } if name == bad),
            "{bad}"
        );
        assert!(err
            .to_string()
            .starts_with("file not found in build context or excluded by .dockerignore"));
    }
    let e = c.resolve_copy(&srcs(&["build/keep.txt"]), "/k").unwrap();
    assert_eq!(dests(&e), ["/k"]);
    let e = c.resolve_copy(&srcs(&["build"]), "/b").unwrap();
    assert_eq!(dests(&e), ["/b", "/b/keep.txt"]);
    assert!(matches!(
        c.resolve_copy(&[], "/x").unwrap_err(),
        ContextError::NoSources
    ));
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    let (_t, ctx) = tree();
    std::fs::create_dir_all(ctx.join("docker")).unwrap();
    let df = ctx.join("docker/app.Dockerfile");
    std::fs::write(&df, "FROM scratch\n").unwrap();
    std::fs::write(ctx.join("docker/app.Dockerfile.dockerignore"), "*.txt\n").unwrap();
    let c = BuildContext::open(&ctx, &df).unwrap();
    assert_eq!(
        c.ignore_file(),
        Some(ctx.join("docker/app.Dockerfile.dockerignore").as_path())
    );
    assert!(c.ignore().is_excluded("a.txt"));
    assert!(
        !c.ignore().is_excluded("ignored.log"),
        "the general file is not merged"
    );
    let c = BuildContext::open(&ctx, &ctx.join("Dockerfile")).unwrap();
    assert!(c.ignore().is_excluded("ignored.log"));
    let err = BuildContext::open(&ctx.join("missing"), &df).unwrap_err();
    assert!(matches!(err, ContextError::Open { .. }));
}

#[test]
fn later_sources_override_earlier_ones() {
    let (_t, ctx) = tree();
    let e = open(&ctx)
        .resolve_copy(&srcs(&["a.txt", "dir/x.txt", "dir/sub/y.txt"]), "/o/")
        .unwrap();
    assert_eq!(dests(&e), ["/o/a.txt", "/o/x.txt", "/o/y.txt"]);
    std::fs::write(ctx.join("x.txt"), "top").unwrap();
    let e = open(&ctx)
        .resolve_copy(&srcs(&["dir/x.txt", "x.txt"]), "/o/")
        .unwrap();
    assert_eq!(e.len(), 1);
    assert!(e[0].src.ends_with("ctx/x.txt"));
}

/// Issue 18: device nodes and fifos are copied as themselves (a socket is left out of a tree),
/// files with several names become one file and hard links to it, and xattrs come along
/// (never `trusted.*`).
#[test]
fn special_files_hard_links_and_xattrs_are_selected() {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("d")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").unwrap();
    std::fs::write(ctx.join("d/a"), "a").unwrap();
    std::fs::hard_link(ctx.join("d/a"), ctx.join("d/b")).unwrap();
    mknodat(
        CWD,
        ctx.join("d/null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    mknodat(
        CWD,
        ctx.join("d/fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    std::fs::set_permissions(ctx.join("d/null"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(ctx.join("d/sock")).unwrap();
    rustix::fs::setxattr(
        ctx.join("d/a"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        ctx.join("d/a"),
        "trusted.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let e = open(&ctx).resolve_copy(&srcs(&["d"]), "/x/").unwrap();
    let got: Vec<(&str, &EntryKind)> = e.iter().map(|e| (e.dest.as_str(), &e.kind)).collect();
    assert_eq!(
        got,
        [
            ("/x", &EntryKind::Dir),
            ("/x/a", &EntryKind::File),
            ("/x/b", &EntryKind::Hardlink("/x/a".into())),
            ("/x/fifo", &EntryKind::Fifo),
            (
                "/x/null",
                &EntryKind::Device {
                    block: false,
                    major: 1,
                    minor: 3
                }
            ),
        ]
    );
    assert_eq!(e[1].xattrs, vec![(b"user.k".to_vec(), b"v".to_vec())]);
    assert_eq!(e[4].mode, 0o666);
    // A named socket is refused with its path.
    let err = open(&ctx)
        .resolve_copy(&srcs(&["d/sock"]), "/s")
        .unwrap_err();
    assert!(err.to_string().contains("socket"), "{err}");
}
