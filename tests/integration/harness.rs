//! The test harness: a `TestContext` per test (temp dirs, registry address, unique repository
//! names), running the binary, and reading pushed images back with skopeo.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::read::GzDecoder;
use polyarch::oci::{ImageIndex, ImageManifest};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

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

    /// The polyarch binary with a clean environment for the build.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_polyarch"));
        c.env_remove("SOURCE_DATE_EPOCH");
        c.env("POLYARCH_PROGRESS", "plain");
        c
    }

    /// Runs polyarch with `args` (and `envs`).
    pub fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
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
    let idx = layout_index(layout, ref_name);
    let child = idx
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().map(|p| p.architecture.as_str()) == Some(arch))
        .unwrap_or_else(|| panic!("no {arch} manifest"));
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
