//! The registry port against real parts: Debian's `docker-registry` (distribution 2.8) started
//! per test on a free loopback port, with `skopeo` as an independent reader, plus a tiny scripted
//! HTTP server for retry behaviour a real registry cannot be made to show on demand.
//!
//! When `CI` is set, a missing `docker-registry` or `skopeo` fails the test instead of skipping.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use polyarch::exit::{Classify, ExitCode};
use polyarch::oci::{
    self, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_LAYER_GZIP, MEDIA_TYPE_OCI_MANIFEST,
};
use polyarch::platform::Platform;
use polyarch::registry::{
    BlobPush, Credentials, OciRegistry, Reference, Registry, RegistryError, RegistryOptions,
};

/// A `docker-registry serve` process, killed on drop.
pub(crate) struct RegistryProcess {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub(crate) addr: String,
    /// Its storage root (inside `_dir`).
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl RegistryProcess {
    /// Starts an open registry, or returns `None` (skip) when the binary is missing outside CI.
    fn start() -> Option<RegistryProcess> {
        RegistryProcess::start_with(include_str!("../fixtures/registry/config.yml.in"))
    }

    /// Starts a registry with htpasswd basic auth (see `fixtures/registry/htpasswd`).
    fn start_with_auth() -> Option<RegistryProcess> {
        RegistryProcess::start_with(include_str!("../fixtures/registry/config-auth.yml.in"))
    }

    fn start_with(template: &str) -> Option<RegistryProcess> {
        RegistryProcess::start_custom(template, &[])
    }

    /// Starts a registry from a config `template` with `@ROOT@`, `@ADDR@`, `@HTPASSWD@` and
    /// the extra `replacements` filled in.
    pub(crate) fn start_custom(
        template: &str,
        replacements: &[(&str, String)],
    ) -> Option<RegistryProcess> {
        let bin = required_tool("docker-registry")?;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("storage");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let htpasswd =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/registry/htpasswd");
        let config = dir.path().join("config.yml");
        let mut text = template
            .replace("@ROOT@", &root.display().to_string())
            .replace("@ADDR@", &addr)
            .replace("@HTPASSWD@", &htpasswd.display().to_string());
        for (k, v) in replacements {
            text = text.replace(k, v);
        }
        std::fs::write(&config, text).expect("write config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let process = RegistryProcess {
            child,
            addr,
            root,
            _dir: dir,
        };
        process.wait_ready();
        Some(process)
    }

    /// Polls `GET /v2/` until it answers 200, or 401 when auth is on (distribution-spec
    /// "Determining support"), or 400 when it speaks TLS (Go's answer to plain HTTP there).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(&self.addr) {
                let request = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && (answer.starts_with("HTTP/1.1 200")
                        || answer.starts_with("HTTP/1.1 401")
                        || answer.starts_with("HTTP/1.0 400"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self._dir.path().join("registry.log"));
        panic!(
            "docker-registry at {} never became ready: {log:?}",
            self.addr
        );
    }

    fn repo(&self, path: &str) -> Reference {
        Reference::parse(&format!("{}/{path}", self.addr)).expect("reference")
    }

    /// What the registry has logged so far (its stdout and stderr).
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where distribution's filesystem driver keeps a blob's bytes.
    fn blob_data_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `tool`, or `None` to skip; panics when `CI` is set and it is missing.
pub(crate) fn required_tool(tool: &str) -> Option<PathBuf> {
    match which::which(tool) {
        Ok(path) => Some(path),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{tool} is required when CI is set (apt-get install {tool})")
        }
        Err(_) => {
            eprintln!("skipping: {tool} not installed");
            None
        }
    }
}

fn test_options() -> RegistryOptions {
    RegistryOptions {
        retries: 4,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..RegistryOptions::default()
    }
}

fn client() -> OciRegistry {
    OciRegistry::new(test_options()).expect("client")
}

/// `len` deterministic, incompressible-looking bytes (xorshift).
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `bytes` to `dir/name` and returns the path and a descriptor of `media_type`.
fn blob_file(dir: &Path, name: &str, bytes: &[u8], media_type: &str) -> (PathBuf, Descriptor) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write blob");
    let desc = Descriptor::new(media_type, Digest::of(bytes), bytes.len() as u64);
    (path, desc)
}

#[tokio::test]
async fn push_and_pull_an_image_index_that_skopeo_reads_back() {
    let Some(registry) = RegistryProcess::start() else {
        return;
    };
    let Some(skopeo) = required_tool("skopeo") else {
        return;
    };
    let client = client();
    let repo = registry.repo("polyarch/round-trip");
    let dir = tempfile::tempdir().unwrap();

    // A layer of a few MiB, pushed from a file.
    let layer_bytes = pseudo_random(3 * 1024 * 1024 + 17, 0x9e37_79b9_7f4a_7c15);
    let (layer_path, layer) =
        blob_file(dir.path(), "layer", &layer_bytes, MEDIA_TYPE_OCI_LAYER_GZIP);
    assert!(!client.blob_exists(&repo, &layer.digest).await.unwrap());
    assert_eq!(
        client.push_blob(&repo, &layer, &layer_path).await.unwrap(),
        BlobPush::Uploaded
    );
    assert!(client.blob_exists(&repo, &layer.digest).await.unwrap());
    assert_eq!(
        client.push_blob(&repo, &layer, &layer_path).await.unwrap(),
        BlobPush::AlreadyPresent
    );

    // Config and manifest, the manifest pushed by digest.
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..ImageConfig::default()
    };
    let config_bytes = oci::to_bytes(&config);
    let (config_path, config_desc) =
        blob_file(dir.path(), "config", &config_bytes, MEDIA_TYPE_OCI_CONFIG);
    client
        .push_blob(&repo, &config_desc, &config_path)
        .await
        .unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: config_desc,
        layers: vec![layer.clone()],
        annotations: None,
    };
    let manifest_bytes = oci::to_bytes(&manifest);
    let manifest_digest = Digest::of(&manifest_bytes);
    let pushed = client
        .push_manifest(
            &repo,
            &manifest_digest.to_string(),
            &manifest_bytes,
            MEDIA_TYPE_OCI_MANIFEST,
        )
        .await
        .unwrap();
    assert_eq!(pushed, manifest_digest);

    // The index, pushed to a tag.
    let mut entry = Descriptor::new(
        MEDIA_TYPE_OCI_MANIFEST,
        manifest_digest.clone(),
        manifest_bytes.len() as u64,
    );
    entry.platform = Some(Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        os_version: None,
        variant: None,
    });
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_INDEX.into()),
        manifests: vec![entry],
        annotations: None,
    };
    let index_bytes = oci::to_bytes(&index);
    let index_digest = client
        .push_manifest(&repo, "v1", &index_bytes, MEDIA_TYPE_OCI_INDEX)
        .await
        .unwrap();
    assert_eq!(index_digest, Digest::of(&index_bytes));

    // Back by tag: same bytes, media type and digest.
    let got = client
        .get_manifest(&repo.with_tag("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(got.bytes, index_bytes);
    assert_eq!(got.media_type, MEDIA_TYPE_OCI_INDEX);
    assert_eq!(got.digest, index_digest);
    assert!(got.is_index());

    // And the child by digest.
    let child = client
        .get_manifest(&repo.with_digest(&manifest_digest))
        .await
        .unwrap();
    assert_eq!(child.bytes, manifest_bytes);
    assert_eq!(child.media_type, MEDIA_TYPE_OCI_MANIFEST);

    // The layer streams back to a file intact.
    let fetched = dir.path().join("fetched");
    client.fetch_blob(&repo, &layer, &fetched).await.unwrap();
    assert!(std::fs::read(&fetched).unwrap() == layer_bytes);

    // An independent client sees exactly the bytes we pushed.
    let out = Command::new(skopeo)
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/polyarch/round-trip:v1", registry.addr))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // skopeo ends its output with a newline of its own.
    let raw = out.stdout.strip_suffix(b"\n").unwrap_or(&out.stdout);
    assert!(
        raw == index_bytes.as_slice(),
        "skopeo read {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_digest_is_refused() {
    let Some(registry) = RegistryProcess::start() else {
        return;
    };
    let client = client();
    let repo = registry.repo("polyarch/lies");
    let dir = tempfile::tempdir().unwrap();
    let bytes = pseudo_random(256 * 1024, 7);
    let (path, desc) = blob_file(dir.path(), "blob", &bytes, MEDIA_TYPE_OCI_LAYER_GZIP);
    client.push_blob(&repo, &desc, &path).await.unwrap();

    // Corrupt the stored bytes (same length): the registry now serves content that does not
    // hash to the digest it is asked for.
    let data = registry.blob_data_path(&desc.digest);
    let mut stored = std::fs::read(&data).expect("stored blob");
    stored[1000] ^= 0xff;
    std::fs::write(&data, &stored).unwrap();

    let dest = dir.path().join("fetched");
    let err = client.fetch_blob(&repo, &desc, &dest).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch {
            expected, found, ..
        } => {
            assert_eq!(expected, &desc.digest);
            assert_eq!(found, &Digest::of(&stored).to_string());
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert_eq!(err.exit_code(), ExitCode::Registry);
    assert!(!dest.exists(), "an unverified blob was left behind");

    // A descriptor that lies about the size fails before anything is trusted.
    let mut short = desc.clone();
    short.size -= 1;
    let err = client.fetch_blob(&repo, &short, &dest).await.unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err:?}");

    // A file whose length is not the descriptor's is not uploaded.
    let err = client.push_blob(&repo, &short, &path).await.unwrap_err();
    assert!(matches!(err, RegistryError::BlobFileSize { .. }), "{err:?}");

    // Pushing a manifest under another document's digest is refused before sending.
    let err = client
        .push_manifest(
            &repo,
            &desc.digest.to_string(),
            b"{}",
            MEDIA_TYPE_OCI_MANIFEST,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_content_is_not_found_and_bad_input() {
    let Some(registry) = RegistryProcess::start() else {
        return;
    };
    let client = client();
    let repo = registry.repo("polyarch/missing");
    let err = client
        .get_manifest(&repo.with_tag("nope").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("polyarch/missing:nope"), "{err}");
    assert_eq!(err.exit_code(), ExitCode::BadInput);

    let digest = Digest::of(b"never pushed");
    assert!(!client.blob_exists(&repo, &digest).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let desc = Descriptor::new(MEDIA_TYPE_OCI_LAYER_GZIP, digest, 12);
    let err = client
        .fetch_blob(&repo, &desc, &dir.path().join("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");

    // A manifest naming a blob the repository lacks: the registry's code, message and
    // detail are quoted, the detail being the missing digest, with the repository named.
    let missing = Digest::of(b"a config nobody pushed");
    let manifest = oci::to_bytes(&ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_OCI_MANIFEST.into()),
        config: Descriptor::new(MEDIA_TYPE_OCI_CONFIG, missing.clone(), 22),
        layers: Vec::new(),
        annotations: None,
    });
    let err = client
        .push_manifest(&repo, "v1", &manifest, MEDIA_TYPE_OCI_MANIFEST)
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("MANIFEST_BLOB_UNKNOWN: blob unknown to registry")
            && shown.contains(&format!(
                "refers to blob {missing}, which {} does not have",
                repo.repo_string()
            )),
        "{shown}"
    );
    assert_eq!(err.exit_code(), ExitCode::Registry);
}

#[tokio::test]
async fn basic_auth_is_sent_and_refusals_are_unauthorized() {
    let Some(registry) = RegistryProcess::start_with_auth() else {
        return;
    };
    let repo = registry.repo("polyarch/private");
    let dir = tempfile::tempdir().unwrap();
    let (path, desc) = blob_file(
        dir.path(),
        "blob",
        b"secret layer",
        MEDIA_TYPE_OCI_LAYER_GZIP,
    );
    let with = |password: &str| {
        let mut options = test_options();
        options.auth.insert(
            registry.addr.clone(),
            Credentials {
                username: "polyarch".into(),
                password: password.into(),
            },
        );
        OciRegistry::new(options).unwrap()
    };

    for (who, client) in [("anonymous", client()), ("wrong password", with("nope"))] {
        let err = client.push_blob(&repo, &desc, &path).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { ref registry, .. } if *registry == repo.registry),
            "{who}: {err:?}"
        );
        assert_eq!(err.exit_code(), ExitCode::Registry);
        assert!(!err.to_string().contains("nope"), "{err}");
    }

    let client = with("s3cret-pa55");
    assert_eq!(
        client.push_blob(&repo, &desc, &path).await.unwrap(),
        BlobPush::Uploaded
    );
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    client
        .push_manifest(&repo, "v1", index, MEDIA_TYPE_OCI_INDEX)
        .await
        .unwrap();
    let got = client
        .get_manifest(&repo.with_tag("v1").unwrap())
        .await
        .unwrap();
    assert_eq!(got.bytes, index);
    let dest = dir.path().join("fetched");
    client.fetch_blob(&repo, &desc, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"secret layer");
}

/// Peak resident memory of this process, bytes (`VmHWM`, proc(5)).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

#[tokio::test]
async fn large_blobs_stream_with_flat_memory() {
    let Some(registry) = RegistryProcess::start() else {
        return;
    };
    let client = client();
    let repo = registry.repo("polyarch/large");
    let dir = tempfile::tempdir().unwrap();
    const SIZE: u64 = 128 * 1024 * 1024;
    // A sparse file of zeros; its digest from coreutils keeps the test's own hashing fast.
    let path = dir.path().join("big");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(SIZE))
        .unwrap();
    let sum = Command::new("sha256sum").arg(&path).output().unwrap();
    let hex = String::from_utf8(sum.stdout).unwrap();
    let digest: Digest = format!("sha256:{}", &hex[..64]).parse().unwrap();
    let desc = Descriptor::new(MEDIA_TYPE_OCI_LAYER_GZIP, digest, SIZE);

    // Reset the peak so that only what follows counts ("5" to clear_refs, proc(5)).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss();
    assert_eq!(
        client.push_blob(&repo, &desc, &path).await.unwrap(),
        BlobPush::Uploaded
    );
    let dest = dir.path().join("fetched");
    client.fetch_blob(&repo, &desc, &dest).await.unwrap();
    let grown = peak_rss().saturating_sub(before);
    eprintln!("peak memory grew by {} KiB", grown >> 10);
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), SIZE);
    // Holding the blob would cost 128 MiB; streaming costs a few buffers (about 3 MiB here).
    assert!(
        grown < 32 * 1024 * 1024,
        "peak memory grew by {} MiB",
        grown >> 20
    );
}

/// One scripted answer: status, headers and body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// A minimal HTTP/1.1 server on loopback: answers `/v2/` with 200 and every other request
/// with the next scripted answer (404 when the script runs out); records request lines.
struct ScriptedServer {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
    /// The `Authorization` header of each recorded request.
    auths: Arc<Mutex<Vec<Option<String>>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl ScriptedServer {
    fn start(script: Vec<Answer>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let auths = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (seen, seen_auth, all) = (requests.clone(), auths.clone(), script.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, seen_auth, script) = (seen.clone(), seen_auth.clone(), all.clone());
                std::thread::spawn(move || serve(stream, &seen, &seen_auth, &script));
            }
        });
        ScriptedServer {
            addr,
            requests,
            auths,
            script,
        }
    }

    /// Replaces the answers still to be given.
    fn replace_script(&self, script: Vec<Answer>) {
        *self.script.lock().unwrap() = VecDeque::from(script);
    }

    /// The `Authorization` headers of the requests, in order.
    fn auths(&self) -> Vec<Option<String>> {
        self.auths.lock().unwrap().clone()
    }

    /// Request lines other than `GET /v2/`.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<String>>,
    seen_auth: &Mutex<Vec<Option<String>>>,
    script: &Mutex<VecDeque<Answer>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request = line.trim_end().to_string();
        // Headers: keep Authorization, and skip a body of Content-Length bytes.
        let mut auth = None;
        let mut length = 0u64;
        let mut range = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    auth = Some(v.trim().to_string());
                } else if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("content-range") {
                    range = Some(v.trim().to_string());
                }
            }
        }
        let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
        // Uploads are recorded with what they carry: `[range R]` and `[N bytes]`.
        let mut request = request;
        if let Some(r) = range {
            request.push_str(&format!(" [range {r}]"));
        }
        if request.starts_with("PUT ") || request.starts_with("PATCH ") {
            request.push_str(&format!(" [{length} bytes]"));
        }
        let (status, headers, body) = if request.starts_with("GET /v2/ ") {
            (200, vec![], b"{}".to_vec())
        } else {
            seen.lock().unwrap().push(request.clone());
            seen_auth.lock().unwrap().push(auth);
            script.lock().unwrap().pop_front().unwrap_or((
                404,
                vec![],
                b"{\"errors\":[{\"code\":\"NOT_FOUND\"}]}".to_vec(),
            ))
        };
        let mut head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let head_only = request.starts_with("HEAD ");
        if writer.write_all(head.as_bytes()).is_err()
            || (!head_only && writer.write_all(&body).is_err())
        {
            return;
        }
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_final_ones_are_not() {
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let ok: Answer = (
        200,
        vec![
            ("Content-Type", MEDIA_TYPE_OCI_INDEX.into()),
            ("Docker-Content-Digest", Digest::of(index).to_string()),
        ],
        index.to_vec(),
    );
    let unavailable: Answer = (503, vec![], b"busy".to_vec());
    let limited: Answer = (429, vec![], b"slow down".to_vec());
    let server = ScriptedServer::start(vec![unavailable.clone(), limited, ok]);
    let client = client();
    let reference = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let got = client.get_manifest(&reference).await.unwrap();
    assert_eq!(got.bytes, index);
    assert_eq!(got.media_type, MEDIA_TYPE_OCI_INDEX);
    assert_eq!(server.requests().len(), 3, "{:?}", server.requests());

    // 404 and 401 are answered once.
    let server = ScriptedServer::start(vec![(401, vec![], b"who are you".to_vec())]);
    let reference = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let err = client.get_manifest(&reference).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 1);
    let err = client.get_manifest(&reference).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert_eq!(server.requests().len(), 2);

    // Retries give up after `retries` more attempts with the last error.
    let server = ScriptedServer::start(vec![unavailable; 10]);
    let reference = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let err = client.get_manifest(&reference).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(server.requests().len(), 1 + 4);

    // A registry that is not there is a transport failure (exit 3), after retries.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let reference = Reference::parse(&format!("{addr}/x/y:1")).unwrap();
    let err = client.get_manifest(&reference).await.unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err:?}");
    assert_eq!(err.exit_code(), ExitCode::Registry);
}

#[tokio::test]
async fn a_registry_serving_other_bytes_than_its_digest_header_is_refused() {
    let index = br#"{"schemaVersion":2,"manifests":[]}"#;
    let server = ScriptedServer::start(vec![(
        200,
        vec![("Docker-Content-Digest", Digest::of(b"other").to_string())],
        index.to_vec(),
    )]);
    let reference = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let err = client().get_manifest(&reference).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );

    // Fetched by digest, the body must hash to it even without a header.
    let server = ScriptedServer::start(vec![(200, vec![], index.to_vec())]);
    let wanted = Digest::of(b"something else");
    let reference = Reference::parse(&format!("{}/x/y@{wanted}", server.addr)).unwrap();
    let err = client().get_manifest(&reference).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { ref expected, .. } if *expected == wanted),
        "{err:?}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let ok: Answer = (200, vec![], index.to_vec());
    let server = ScriptedServer::start(vec![
        (
            429,
            vec![("Retry-After", "1".into())],
            b"slow down".to_vec(),
        ),
        ok,
    ]);
    let reference = Reference::parse(&format!("{}/x/y:1", server.addr)).unwrap();
    let started = Instant::now();
    client().get_manifest(&reference).await.unwrap();
    // The client's own backoff is 10-50 ms here: only Retry-After explains a full second.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried after {:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_settled_by_asking_for_the_blob() {
    // The commit's answer is lost (503) although the registry stored the blob: the PUT is sent
    // again on its own, the registry no longer knows the session (404), and a HEAD finds the
    // blob. Nothing is uploaded twice and no new session is opened.
    let server = ScriptedServer::start(vec![
        (404, vec![], Vec::new()),
        (
            202,
            vec![("Location", "/v2/x/y/blobs/uploads/u1".into())],
            Vec::new(),
        ),
        (503, vec![], b"lost".to_vec()),
        (
            404,
            vec![],
            br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}"#
                .to_vec(),
        ),
        (200, vec![], Vec::new()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (path, desc) = blob_file(dir.path(), "blob", b"layer", MEDIA_TYPE_OCI_LAYER_GZIP);
    let repo = Reference::parse(&format!("{}/x/y", server.addr)).unwrap();
    let client = client();
    assert_eq!(
        client.push_blob(&repo, &desc, &path).await.unwrap(),
        BlobPush::Uploaded
    );
    let methods: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(methods, ["HEAD", "POST", "PUT", "PUT", "HEAD"]);
    assert_eq!(client.stats().retries, 1);
}

/// The scripted answers of an upload session that accepts one chunk.
fn chunk_taken(session: &str, n: u32) -> Answer {
    (
        202,
        vec![("Location", format!("/v2/x/y/blobs/uploads/{session}?n={n}"))],
        Vec::new(),
    )
}

#[tokio::test]
async fn a_failed_chunk_resumes_from_the_registrys_offset_or_in_a_new_session() {
    let options = RegistryOptions {
        chunk_size: 4,
        ..test_options()
    };
    let client = OciRegistry::new(options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, desc) = blob_file(dir.path(), "blob", b"0123456789", MEDIA_TYPE_OCI_LAYER_GZIP);

    // The second PATCH fails after the registry took two of its bytes: the session's state
    // (GET, `Range: 0-5`) says so, and the rest goes from byte 6 on, in the closing PUT.
    let server = ScriptedServer::start(vec![
        (404, vec![], Vec::new()),
        chunk_taken("u1", 0),
        chunk_taken("u1", 1),
        (503, vec![], b"broke off".to_vec()),
        (
            204,
            vec![
                ("Range", "0-5".into()),
                ("Location", "/v2/x/y/blobs/uploads/u1?n=2".into()),
            ],
            Vec::new(),
        ),
        (201, vec![], Vec::new()),
    ]);
    let repo = Reference::parse(&format!("{}/x/y", server.addr)).unwrap();
    assert_eq!(
        client.push_blob(&repo, &desc, &path).await.unwrap(),
        BlobPush::Uploaded
    );
    let requests = server.requests();
    let shown: Vec<String> = requests
        .iter()
        .map(|r| {
            let (method, rest) = r.split_once(' ').unwrap();
            let path = rest.split(' ').next().unwrap();
            let tail = rest.split_once(" HTTP/1.1").map(|(_, t)| t).unwrap_or("");
            format!("{method} {}{tail}", path.split('?').next().unwrap())
        })
        .collect();
    assert_eq!(
        shown,
        [
            format!("HEAD /v2/x/y/blobs/{}", desc.digest),
            "POST /v2/x/y/blobs/uploads/".into(),
            "PATCH /v2/x/y/blobs/uploads/u1 [range 0-3] [4 bytes]".into(),
            "PATCH /v2/x/y/blobs/uploads/u1 [range 4-7] [4 bytes]".into(),
            "GET /v2/x/y/blobs/uploads/u1".into(),
            "PUT /v2/x/y/blobs/uploads/u1 [4 bytes]".into(),
        ],
        "{requests:?}"
    );
    assert!(requests[5].contains("n=2") && requests[5].contains("digest=sha256"));

    // Here the registry lost the session (404 on the upload URL): a new one starts from 0.
    let server = ScriptedServer::start(vec![
        (404, vec![], Vec::new()),
        chunk_taken("u1", 0),
        chunk_taken("u1", 1),
        (503, vec![], b"broke off".to_vec()),
        (
            404,
            vec![],
            br#"{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown"}]}"#
                .to_vec(),
        ),
        chunk_taken("u2", 0),
        chunk_taken("u2", 1),
        chunk_taken("u2", 2),
        (201, vec![], Vec::new()),
    ]);
    let repo = Reference::parse(&format!("{}/x/y", server.addr)).unwrap();
    assert_eq!(
        client.push_blob(&repo, &desc, &path).await.unwrap(),
        BlobPush::Uploaded
    );
    let requests = server.requests();
    let methods: Vec<&str> = requests
        .iter()
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["HEAD", "POST", "PATCH", "PATCH", "GET", "POST", "PATCH", "PATCH", "PUT"],
        "{requests:?}"
    );
    assert!(requests[6].contains("u2") && requests[6].contains("[range 0-3]"));
    assert!(requests[8].contains("u2") && requests[8].ends_with("[2 bytes]"));
}

#[tokio::test]
async fn bearer_tokens_are_fetched_per_scope_and_refreshed_when_refused() {
    let challenge = |addr: &str, scope: &str| -> Answer {
        (
            401,
            vec![(
                "WWW-Authenticate",
                format!(r#"Bearer realm="http://{addr}/token",service="svc",scope="{scope}""#),
            )],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"token\"}]}".to_vec(),
        )
    };
    let token = |t: &str| -> Answer {
        (
            200,
            vec![],
            format!(r#"{{"token":"{t}","expires_in":300}}"#).into_bytes(),
        )
    };
    // The server must know its own address for the realm: start it with an empty script and
    // fill the script in afterwards.
    let server = ScriptedServer::start(vec![]);
    let a = server.addr.clone();
    let script = vec![
        challenge(&a, "repository:x/y:pull"), // HEAD blob, anonymous
        token("t-pull"),                      // GET /token (pull)
        (404, vec![], Vec::new()),            // HEAD blob with t-pull
        token("t-push"),                      // GET /token (pull,push)
        (
            202,
            vec![("Location", "/v2/x/y/blobs/uploads/u1".into())],
            Vec::new(),
        ), // POST
        challenge(&a, "repository:x/y:pull,push"), // PUT: the token expired mid-push
        token("t-fresh"),                     // GET /token again
        (201, vec![], Vec::new()),            // PUT with the fresh token
    ];
    server.replace_script(script);
    let mut options = test_options();
    options.auth.insert(
        a.clone(),
        Credentials {
            username: "u".into(),
            password: "p".into(),
        },
    );
    let client = OciRegistry::new(options).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, desc) = blob_file(
        dir.path(),
        "blob",
        b"bearer layer",
        MEDIA_TYPE_OCI_LAYER_GZIP,
    );
    let repo = Reference::parse(&format!("{a}/x/y")).unwrap();
    assert_eq!(
        client.push_blob(&repo, &desc, &path).await.unwrap(),
        BlobPush::Uploaded
    );
    let requests = server.requests();
    let methods: Vec<&str> = requests
        .iter()
        .map(|r| r.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["HEAD", "GET", "HEAD", "GET", "POST", "PUT", "GET", "PUT"],
        "{requests:?}"
    );
    assert!(
        requests[1].contains("service=svc")
            && requests[1].contains("scope=repository%3Ax%2Fy%3Apull"),
        "{}",
        requests[1]
    );
    assert!(requests[3].contains("pull%2Cpush"), "{}", requests[3]);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("u:p")
    );
    let auths = server.auths();
    assert_eq!(
        auths,
        [
            None,
            Some(basic.clone()),
            Some("Bearer t-pull".into()),
            Some(basic.clone()),
            Some("Bearer t-push".into()),
            Some("Bearer t-push".into()),
            Some(basic),
            Some("Bearer t-fresh".into()),
        ]
    );
}
