//! The test harness: a `TestContext` per test (temp dirs, registry address, unique repository
//! names), running the binary, and reading pushed images back with skopeo.

use std::collections::BTreeMap;
use std::io::Read;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use flate2::read::GzDecoder;
use polyarch::oci::{ImageIndex, ImageManifest};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The machine's binfmt_misc registrations are global: builds run RUN steps through them while
/// some tests change them. Builds hold this shared ([`TestContext::run`] does it for `build`),
/// tests that register or remove handlers hold it exclusively ([`BinfmtRestore`]), so the two
/// never overlap. Do not nest guards in one test (a waiting writer would block the inner one).
static BINFMT: RwLock<()> = RwLock::new(());

/// A shared hold on the machine's binfmt_misc registrations, for running builds.
pub fn binfmt_shared() -> RwLockReadGuard<'static, ()> {
    BINFMT.read().unwrap_or_else(|e| e.into_inner())
}

/// The machine's binfmt_misc directory.
pub const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// Exclusive hold on the machine's binfmt_misc registrations that puts them back as they were
/// when dropped, also when the test panics: entries added are removed, entries removed or
/// changed are registered again (disabled ones disabled again).
pub struct BinfmtRestore {
    before: Vec<polyarch::emulation::BinfmtEntry>,
    _exclusive: RwLockWriteGuard<'static, ()>,
}

impl BinfmtRestore {
    /// Waits for running builds to finish, then records the current registrations.
    pub fn take() -> BinfmtRestore {
        let exclusive = BINFMT.write().unwrap_or_else(|e| e.into_inner());
        let before = polyarch::emulation::read_entries(Path::new(BINFMT_DIR))
            .expect("read binfmt_misc entries");
        BinfmtRestore {
            before,
            _exclusive: exclusive,
        }
    }
}

impl Drop for BinfmtRestore {
    fn drop(&mut self) {
        let dir = Path::new(BINFMT_DIR);
        let now = polyarch::emulation::read_entries(dir).unwrap_or_default();
        let write = |path: PathBuf, text: &str| {
            let r = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|mut f| f.write_all(text.as_bytes()));
            if let Err(e) = r {
                eprintln!(
                    "restoring binfmt_misc: writing {text:?} to {}: {e}",
                    path.display()
                );
            }
        };
        for e in &now {
            if !self.before.contains(e) {
                write(dir.join(&e.name), "-1");
            }
        }
        for e in &self.before {
            if !now.contains(e) {
                write(dir.join("register"), &e.register_line());
                if !e.enabled {
                    write(dir.join(&e.name), "0");
                }
            }
        }
    }
}

/// A private binfmt_misc instance (Linux 6.7+ mounts one per user namespace): a user and mount
/// namespace held open by a `sleep` we start, with binfmt_misc mounted over
/// /proc/sys/fs/binfmt_misc inside. Commands entered into it (nsenter) see and change only that
/// instance, so tests can remove handlers, even aarch64's, without touching the machine's.
pub struct PrivateBinfmt {
    holder: Child,
}

impl PrivateBinfmt {
    /// Creates the namespaces and mounts binfmt_misc in them. Panics when that is impossible.
    pub fn new() -> PrivateBinfmt {
        let ns = PrivateBinfmt::unmounted();
        let r = run(ns.command("mount", &["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR]));
        assert_eq!(r.code, 0, "mounting a private binfmt_misc: {}", r.stderr);
        ns
    }

    /// The namespaces with an empty directory (a tmpfs) where binfmt_misc would be mounted, as
    /// on a machine where nobody mounted it.
    pub fn unmounted() -> PrivateBinfmt {
        let holder = Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--mount",
                "--",
                "sleep",
                "3600",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let pid = holder.id();
        let me = std::fs::read_link("/proc/self/ns/user").unwrap();
        let started = std::time::Instant::now();
        // Wait until unshare has entered its namespaces and written its uid map.
        loop {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
            let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap_or_default();
            if ns.is_some_and(|n| n != me) && !map.trim().is_empty() {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "unshare did not create a user namespace"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let ns = PrivateBinfmt { holder };
        let r = run(ns.command("mount", &["-t", "tmpfs", "tmpfs", BINFMT_DIR]));
        assert_eq!(r.code, 0, "hiding binfmt_misc: {}", r.stderr);
        ns
    }

    /// `program args...` inside the namespaces (as their root).
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.holder.id().to_string())
            .args(["--user", "--mount", "--"])
            .arg(program)
            .args(args);
        c
    }

    /// polyarch inside the namespaces, with its own state directory under the test's.
    pub fn polyarch(&self, ctx: &TestContext, args: &[&str]) -> Run {
        let mut c = self.command(env!("CARGO_BIN_EXE_polyarch"), args);
        c.env_remove("SOURCE_DATE_EPOCH")
            .env("POLYARCH_PROGRESS", "plain")
            .env("POLYARCH_STATE_DIR", ctx.dir.path().join("ns-state"));
        run(c)
    }

    /// Writes `text` into a file of the private binfmt_misc (`register`, an entry) in one write.
    pub fn write(&self, file: &str, text: &str) {
        let path = format!("{BINFMT_DIR}/{file}");
        let mut c = self.command("tee", &[&path]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("nsenter tee");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writing {text:?} to {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateBinfmt {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Per-test state: a temp dir, the registry and base image names.
pub struct TestContext {
    pub dir: tempfile::TempDir,
    pub registry: String,
    pub base: String,
}

/// What a finished `polyarch` run printed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The index digest printed on the first stdout line (`index sha256:...`).
    pub fn index_digest(&self) -> String {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix("index "))
            .unwrap_or_else(|| panic!("no index digest in stdout:\n{}", self.stdout))
            .trim()
            .to_string()
    }
}

impl TestContext {
    /// A context, or `None` (test skipped) when the real parts are not set up and `CI` is
    /// unset. With `CI` set, missing parts are a failure.
    pub fn new() -> Option<TestContext> {
        let registry = std::env::var("POLYARCH_TEST_REGISTRY").ok();
        let base = std::env::var("POLYARCH_TEST_BASE").ok();
        match (registry, base) {
            (Some(registry), Some(base)) => Some(TestContext {
                dir: tempfile::tempdir().expect("temp dir"),
                registry,
                base,
            }),
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!("POLYARCH_TEST_REGISTRY/POLYARCH_TEST_BASE unset under CI: run scripts/test");
                }
                eprintln!("skipped: real parts not set up (run scripts/test)");
                None
            }
        }
    }

    /// A repository name no other test uses: REGISTRY/test/NAME-PID-N.
    pub fn repo(&self, name: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        format!("{}/test/{name}-{}-{n}", self.registry, std::process::id())
    }

    /// Writes a build context with the given files; returns its directory.
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.dir.path().join(name);
        for (path, body) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, body).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    /// The polyarch binary with a clean environment for the build, and a state directory of
    /// the test's own (steps cached by another test never stand in for this one's).
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_polyarch"));
        c.env_remove("SOURCE_DATE_EPOCH");
        c.env("POLYARCH_PROGRESS", "plain");
        c.env("POLYARCH_STATE_DIR", self.dir.path().join("state"));
        c
    }

    /// Runs polyarch with `args` (and `envs`); a `build` or `run` holds [`binfmt_shared`] while
    /// it runs.
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let _shared = matches!(args.first(), Some(&"build" | &"run")).then(binfmt_shared);
        self.run_unlocked(args, envs)
    }

    /// Runs polyarch without taking the binfmt_misc lock (for tests that hold it exclusively).
    pub fn run_unlocked(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let mut c = self.command();
        c.args(args);
        for (k, v) in envs {
            c.env(k, v);
        }
        run(c)
    }
}

/// Runs a command, capturing its output.
pub fn run(mut c: Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("spawn");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `skopeo inspect --raw` of a reference on the loopback registry; `None` when it does not exist.
pub fn skopeo_raw(reference: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo must be installed (scripts/test installs it)");
    out.status.success().then_some(out.stdout)
}

/// sha256 of bytes, as `sha256:<hex>`.
pub fn digest_of(bytes: &[u8]) -> String {
    polyarch::oci::Digest::of(bytes).to_string()
}

/// Copies a pushed index with every platform into an OCI layout with skopeo (an independent
/// client) and returns the layout directory.
pub fn pull_layout(ctx: &TestContext, reference: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dest = ctx.dir.path().join(format!("pulled-{n}"));
    let status = Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false", "--quiet"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:pulled", dest.display()))
        .status()
        .expect("skopeo");
    assert!(status.success(), "skopeo copy --all {reference} failed");
    dest
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// The image index stored in an OCI layout under `ref_name`.
pub fn layout_index(layout: &Path, ref_name: &str) -> ImageIndex {
    let top: ImageIndex =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = top
        .manifests
        .iter()
        .find(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .map(String::as_str)
                == Some(ref_name)
        })
        .unwrap_or_else(|| panic!("no {ref_name} in index.json"));
    serde_json::from_slice(&blob(layout, &d.digest.to_string())).unwrap()
}

/// The files of the image for `arch` in a layout, flattened over its layers (later layers win,
/// OCI whiteouts remove): path (without leading `./` or `/`) → contents (empty for non-files).
pub fn image_files(layout: &Path, ref_name: &str, arch: &str) -> BTreeMap<String, Vec<u8>> {
    platform_files(layout, ref_name, arch, None)
}

/// [`image_files`] of the image whose platform has `arch` and, when given, `variant` (the arm
/// variants of one index).
pub fn platform_files(
    layout: &Path,
    ref_name: &str,
    arch: &str,
    variant: Option<&str>,
) -> BTreeMap<String, Vec<u8>> {
    let idx = layout_index(layout, ref_name);
    let child = idx
        .manifests
        .iter()
        .find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.architecture.as_str() == arch
                    && variant.is_none_or(|v| p.variant.as_deref() == Some(v))
            })
        })
        .unwrap_or_else(|| panic!("no {arch} {variant:?} manifest"));
    let m: ImageManifest =
        serde_json::from_slice(&blob(layout, &child.digest.to_string())).unwrap();
    let mut files = BTreeMap::new();
    for l in &m.layers {
        let gz = blob(layout, &l.digest.to_string());
        let mut ar = tar::Archive::new(GzDecoder::new(&gz[..]));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let path = path
                .trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string();
            let name = path.rsplit('/').next().unwrap_or("");
            if let Some(gone) = name.strip_prefix(".wh.") {
                let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                if gone == ".wh..opq" {
                    files.retain(|k: &String, _| !k.starts_with(&format!("{parent}/")));
                } else {
                    let full = if parent.is_empty() {
                        gone.to_string()
                    } else {
                        format!("{parent}/{gone}")
                    };
                    files.retain(|k: &String, _| k != &full && !k.starts_with(&format!("{full}/")));
                }
                continue;
            }
            // A non-directory replaces whatever was there, a directory's contents included
            // (image-spec layer.md "Changeset over existing files").
            if !e.header().entry_type().is_dir() {
                files.retain(|k: &String, _| !k.starts_with(&format!("{path}/")));
            }
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            files.insert(path, body);
        }
    }
    files
}
