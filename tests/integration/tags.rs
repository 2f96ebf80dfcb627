//! Tags: `--tag-semver` for a release, a pre-release and a `v` prefix (read back with skopeo),
//! and `polyarch tag` through a recording proxy in front of the real registry, which shows that
//! no blob is requested: the manifest is read once and put under each new tag.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::harness::{digest_of, skopeo_raw, TestContext};

/// A pass-through HTTP proxy that records each request line (one request per connection).
struct Recorder {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, up) = (requests.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (seen, up) = (seen.clone(), up.clone());
                std::thread::spawn(move || forward(client, &seen, &up));
            }
        });
        Recorder { addr, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn forward(mut client: TcpStream, seen: &Mutex<Vec<String>>, upstream: &str) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let (mut head, mut length) = (String::new(), 0u64);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if head.is_empty() {
            seen.lock().unwrap().push(line.trim_end().to_string());
        }
        if !lower.starts_with("connection:") {
            head.push_str(&line);
        }
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    head.push_str("Connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err()
        || std::io::copy(&mut (&mut reader).take(length), &mut up).is_err()
    {
        return;
    }
    let _ = std::io::copy(&mut up, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

#[test]
fn semver_tags_and_tagging_without_blobs() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let repo = ctx.repo("semver");
    let build = |name: &str, version: &str| {
        let dir = ctx.context(
            name,
            &[
                ("Dockerfile", "FROM scratch\nCOPY v.txt /v.txt\n"),
                ("v.txt", name),
            ],
        );
        let r = ctx.run(
            &[
                "build",
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                &repo,
                "--tag-semver",
                version,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[],
        );
        r.assert_code(0);
        r.index_digest()
    };
    let tag_digest = |tag: &str| skopeo_raw(&format!("{repo}:{tag}")).map(|b| digest_of(&b));

    // A release with a `v`: the full version, major.minor, major and latest.
    let release = build("release", "v1.2.3");
    for t in ["1.2.3", "1.2", "1", "latest"] {
        assert_eq!(tag_digest(t).as_deref(), Some(release.as_str()), "{t}");
    }
    assert_eq!(tag_digest("v1.2.3"), None);
    // A pre-release: only itself; the release's tags stay.
    let rc = build("rc", "1.3.0-rc.1");
    assert_eq!(tag_digest("1.3.0-rc.1").as_deref(), Some(rc.as_str()));
    assert_eq!(tag_digest("1.3"), None);
    for t in ["1.2", "1", "latest"] {
        assert_eq!(tag_digest(t).as_deref(), Some(release.as_str()), "{t}");
    }
    // Not a version: exit 2, nothing pushed.
    let dir = ctx.dir.path().join("release");
    let r = ctx.run(
        &[
            "build",
            "-t",
            &repo,
            "--tag-semver",
            "1.2",
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("--tag-semver"), "{}", r.stderr);

    // `polyarch tag` through the recorder: one manifest GET, one PUT per tag, no blob.
    let proxy = Recorder::start(&ctx.registry);
    let via = repo.replacen(&ctx.registry, &proxy.addr, 1);
    let r = ctx.run(
        &[
            "tag",
            &format!("{via}:1.2.3"),
            "stable",
            &format!("{via}:1.2.3-final"),
        ],
        &[],
    );
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), release);
    for t in ["stable", "1.2.3-final"] {
        assert_eq!(tag_digest(t).as_deref(), Some(release.as_str()), "{t}");
    }
    let requests = proxy.requests();
    assert!(
        requests.iter().all(|l| !l.contains("/blobs/")),
        "{requests:#?}"
    );
    let puts: Vec<&String> = requests.iter().filter(|l| l.starts_with("PUT ")).collect();
    assert_eq!(puts.len(), 2, "{requests:#?}");
    assert!(
        puts.iter().all(|l| l.contains("/manifests/")),
        "{requests:#?}"
    );
    // Another repository would need blobs: refused before anything moves.
    let r = ctx.run(
        &[
            "tag",
            &format!("{repo}:1.2.3"),
            &format!("{}:x", ctx.repo("other")),
        ],
        &[],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("moves no blob"), "{}", r.stderr);
}
