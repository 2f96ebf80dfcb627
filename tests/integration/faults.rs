//! Fault injection: a small HTTP proxy between polyarch and the real registry that answers a
//! seeded share of requests with 500, 502 or 503, resets another share of connections (half
//! before the request reaches the registry, half after it was answered there, so the answer is
//! lost), and delays some (a real registry cannot be made to fail on demand, so this is the one
//! fake part). With 20% 5xx and 5% resets, a two-platform build+push of three 10 MiB layers
//! succeeds ten times in ten, and `build --push-by-digest` + `merge` succeed; with every
//! request failing, the command exits 3 within its deadline and the tag is untouched.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{pull_layout, skopeo_raw, Run, TestContext};

/// How the proxy treats requests; shared with its threads and changed by the test.
struct Policy {
    /// Share of requests answered 500, 502 or 503, per mille.
    share: AtomicU32,
    /// Share of connections reset, per mille (after the 5xx share).
    resets: AtomicU32,
    /// Whether another tenth of the requests is delayed (a delay is not a failure).
    delays: AtomicBool,
    /// xorshift state.
    rng: AtomicU64,
    requests: AtomicU32,
    failures: AtomicU32,
    /// Requests answered by the registry whose answer the proxy dropped.
    lost_answers: AtomicU32,
    /// The request lines seen, in order.
    lines: std::sync::Mutex<Vec<String>>,
}

impl Policy {
    fn next(&self) -> u64 {
        let mut x = self.rng.load(Ordering::SeqCst);
        loop {
            let mut y = x;
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            match self
                .rng
                .compare_exchange(x, y, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return y,
                Err(seen) => x = seen,
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Status(u16),
    /// Reset before the request reaches the registry.
    Reset,
    /// Forward the request, then reset instead of passing the answer on.
    LoseAnswer,
    Delay,
}

struct FaultProxy {
    addr: String,
    policy: Arc<Policy>,
}

impl FaultProxy {
    /// A proxy to `upstream` answering `share_per_mille` of the requests with 5xx and
    /// resetting `resets_per_mille` of the connections, drawn from `seed`.
    fn start(upstream: &str, share_per_mille: u32, resets_per_mille: u32, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let policy = Arc::new(Policy {
            share: AtomicU32::new(share_per_mille),
            resets: AtomicU32::new(resets_per_mille),
            delays: AtomicBool::new(true),
            rng: AtomicU64::new(seed | 1),
            requests: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            lost_answers: AtomicU32::new(0),
            lines: std::sync::Mutex::new(Vec::new()),
        });
        let (p, up) = (policy.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (p, up) = (p.clone(), up.clone());
                std::thread::spawn(move || handle(stream, &p, &up));
            }
        });
        FaultProxy { addr, policy }
    }

    fn set(&self, share_per_mille: u32, resets_per_mille: u32, delays: bool) {
        self.policy.share.store(share_per_mille, Ordering::SeqCst);
        self.policy.resets.store(resets_per_mille, Ordering::SeqCst);
        self.policy.delays.store(delays, Ordering::SeqCst);
    }

    fn lines(&self) -> Vec<String> {
        self.policy.lines.lock().unwrap().clone()
    }

    fn lost_answers(&self) -> u32 {
        self.policy.lost_answers.load(Ordering::SeqCst)
    }

    fn failures(&self) -> u32 {
        self.policy.failures.load(Ordering::SeqCst)
    }

    fn requests(&self) -> u32 {
        self.policy.requests.load(Ordering::SeqCst)
    }
}

/// One connection, one request (answers say `Connection: close`).
fn handle(mut client: TcpStream, policy: &Policy, upstream: &str) {
    policy.requests.fetch_add(1, Ordering::SeqCst);
    let roll = policy.next() % 1000;
    let share = u64::from(policy.share.load(Ordering::SeqCst));
    let resets = u64::from(policy.resets.load(Ordering::SeqCst));
    let fault = if roll < share {
        const FAILURES: [Fault; 3] = [Fault::Status(500), Fault::Status(502), Fault::Status(503)];
        Some(FAILURES[(policy.next() % 3) as usize])
    } else if roll < share + resets {
        Some(if policy.next() % 2 == 0 {
            Fault::Reset
        } else {
            Fault::LoseAnswer
        })
    } else if policy.delays.load(Ordering::SeqCst) && roll < share + resets + 100 {
        Some(Fault::Delay)
    } else {
        None
    };
    if matches!(
        fault,
        Some(Fault::Status(_) | Fault::Reset | Fault::LoseAnswer)
    ) {
        policy.failures.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(Fault::Reset) = fault {
        // Read a little and close with the rest unread: the kernel answers with RST.
        let mut byte = [0u8; 1];
        let _ = client.read(&mut byte);
        return;
    }
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    let mut length = 0u64;
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
        if lower.starts_with("connection:") {
            continue;
        }
        head.push(line);
    }
    if let Some(first) = head.first() {
        policy
            .lines
            .lock()
            .unwrap()
            .push(first.trim_end().to_string());
    }
    match fault {
        Some(Fault::Status(status)) => {
            let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
            let body =
                format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected {status}"}}]}}"#);
            let _ = write!(
                client,
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Some(Fault::Delay) => std::thread::sleep(Duration::from_millis(300)),
        _ => {}
    }
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let mut request = head.concat();
    request.push_str("Connection: close\r\n\r\n");
    if up.write_all(request.as_bytes()).is_err() {
        return;
    }
    if std::io::copy(&mut (&mut reader).take(length), &mut up).is_err() {
        return;
    }
    if let Some(Fault::LoseAnswer) = fault {
        // The registry did the work; its answer never reaches the client.
        let _ = std::io::copy(&mut up, &mut std::io::sink());
        policy.lost_answers.fetch_add(1, Ordering::SeqCst);
        // Closed without an answer: the client sees the connection end mid-exchange.
        return;
    }
    let _ = std::io::copy(&mut up, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

/// A build of `platform` pushed by digest through the proxy.
fn job(
    ctx: &TestContext,
    dir: &Path,
    platform: &str,
    repo: &str,
    meta: &Path,
    retries: &[&str],
) -> Run {
    let mut args = vec![
        "build",
        "--platform",
        platform,
        "--push-by-digest",
        repo,
        "--metadata-file",
        meta.to_str().unwrap(),
    ];
    args.extend_from_slice(retries);
    args.push(dir.to_str().unwrap());
    ctx.run(&args, &[])
}

#[test]
fn a_fifth_of_requests_failing_is_survived_and_all_failing_exits_3() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let proxy = FaultProxy::start(&ctx.registry, 200, 50, 0x5eed_1234_abcd);
    let path = ctx
        .repo("faults")
        .strip_prefix(&format!("{}/", ctx.registry))
        .unwrap()
        .to_string();
    let via = format!("{}/{path}", proxy.addr);
    let direct = format!("{}/{path}", ctx.registry);
    // The base image is read through the proxy too.
    let base = ctx.base.replacen(&ctx.registry, &proxy.addr, 1);
    let df = format!("FROM {base}\nARG NONCE\nRUN echo \"$NONCE\" > /nonce\n");
    let dir = ctx.context("faults", &[("Dockerfile", &df)]);
    let patient = ["--retries", "12", "--retry-delay", "20ms", "--build-arg"];
    let nonce = format!("NONCE={path}");
    let mut retries: Vec<&str> = patient.to_vec();
    retries.push(&nonce);

    let amd = ctx.dir.path().join("amd64.json");
    let arm = ctx.dir.path().join("arm64.json");
    job(&ctx, &dir, "linux/amd64", &via, &amd, &retries).assert_code(0);
    job(&ctx, &dir, "linux/arm64", &via, &arm, &retries).assert_code(0);
    let tag = format!("{via}:v1");
    let merged = ctx.run(
        &[
            "merge",
            "--retries",
            "12",
            "--retry-delay",
            "20ms",
            "--platforms",
            "linux/amd64,linux/arm64",
            "-t",
            &tag,
            &format!("@{}", amd.display()),
            &format!("@{}", arm.display()),
        ],
        &[],
    );
    merged.assert_code(0);
    // About a fifth (the draws are seeded; thread timing only reorders them).
    assert!(
        proxy.failures() * 100 >= proxy.requests() * 12,
        "only {} of {} requests failed",
        proxy.failures(),
        proxy.requests()
    );
    eprintln!(
        "{} of {} requests failed on purpose",
        proxy.failures(),
        proxy.requests()
    );
    // What skopeo reads straight from the registry is the merged index of both images.
    let index = skopeo_raw(&format!("{direct}:v1")).expect("the tag exists");
    let v: serde_json::Value = serde_json::from_slice(&index).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "{v}");
    for (i, meta) in [&amd, &arm].into_iter().enumerate() {
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
        assert_eq!(v["manifests"][i]["digest"], m["digest"]);
    }

    // Every request fails: exit 3 within the retry budget, and the tag does not move.
    proxy.set(1000, 0, false);
    let started = Instant::now();
    let refused = ctx.run(
        &[
            "merge",
            "--retries",
            "2",
            "--retry-delay",
            "50ms",
            "-t",
            &tag,
            &format!("@{}", amd.display()),
        ],
        &[],
    );
    refused.assert_code(3);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        skopeo_raw(&format!("{direct}:v1")).unwrap() == index,
        "the tag moved"
    );
    let failed_build = job(
        &ctx,
        &dir,
        "linux/amd64",
        &via,
        &ctx.dir.path().join("never.json"),
        &["--retries", "2", "--retry-delay", "50ms"],
    );
    failed_build.assert_code(3);
    assert!(!ctx.dir.path().join("never.json").exists());
}

/// The json progress events of a run's stderr.
fn events(run: &Run) -> Vec<serde_json::Value> {
    run.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

#[test]
fn a_two_platform_push_through_a_flaky_registry_succeeds_ten_times_in_ten() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // 20% of the requests answered 5xx, 5% of the connections reset (half of them after the
    // registry did the work), seeded.
    let proxy = FaultProxy::start(&ctx.registry, 200, 50, 0x0dd_f00d_2026);
    let path = ctx
        .repo("flaky")
        .strip_prefix(&format!("{}/", ctx.registry))
        .unwrap()
        .to_string();
    let via = format!("{}/{path}", proxy.addr);
    let direct = format!("{}/{path}", ctx.registry);
    let base = ctx.base.replacen(&ctx.registry, &proxy.addr, 1);
    // Three layers of 10 MiB each that gzip cannot shrink, new on every run.
    let df = format!(
        "FROM {base}\nARG RUN_ID\n\
         RUN head -c 10485760 /dev/urandom > /a\n\
         RUN head -c 10485760 /dev/urandom > /b\n\
         RUN head -c 10485760 /dev/urandom > /c && echo \"$RUN_ID\" > /run-id\n"
    );
    let dir = ctx.context("flaky", &[("Dockerfile", &df)]);
    let mut retried = 0;
    for i in 0..10 {
        let tag = format!("{via}:r{i}");
        let run_id = format!("RUN_ID={path}-{i}");
        let run = ctx.run(
            &[
                "build",
                "--progress",
                "json",
                "--platform",
                "linux/amd64,linux/arm64",
                "--retries",
                "10",
                "--retry-delay",
                "20ms",
                "--chunk-size",
                "4MiB",
                "--build-arg",
                &run_id,
                "-t",
                &tag,
                "--push",
                dir.to_str().unwrap(),
            ],
            &[],
        );
        run.assert_code(0);
        // The request counts and the retries are in the json progress.
        let events = events(&run);
        let summary = events
            .iter()
            .find(|e| e["event"] == "registry_requests")
            .unwrap_or_else(|| panic!("no registry_requests event:\n{}", run.stderr));
        let retries = events
            .iter()
            .filter(|e| e["event"] == "registry_retry")
            .count() as u64;
        assert!(summary["requests"].as_u64().unwrap() > 10, "{summary}");
        assert_eq!(summary["retries"].as_u64().unwrap(), retries, "{summary}");
        retried += retries;
        // What an independent client reads straight from the registry is complete: skopeo
        // copies every manifest and blob of the index and checks their digests.
        let layout = pull_layout(&ctx, &format!("{direct}:r{i}"));
        let index = crate::harness::layout_index(&layout, "pulled");
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(
            run.index_digest(),
            crate::harness::digest_of(&skopeo_raw(&format!("{direct}:r{i}")).unwrap())
        );
        for m in &index.manifests {
            let bytes = std::fs::read(
                layout
                    .join("blobs/sha256")
                    .join(m.digest.to_string().trim_start_matches("sha256:")),
            )
            .unwrap();
            let manifest: polyarch::oci::ImageManifest = serde_json::from_slice(&bytes).unwrap();
            let big = manifest
                .layers
                .iter()
                .filter(|l| l.size >= 10 << 20)
                .count();
            assert_eq!(big, 3, "{manifest:?}");
        }
    }
    eprintln!(
        "{} of {} requests failed on purpose ({} answers lost); polyarch retried {retried}",
        proxy.failures(),
        proxy.requests(),
        proxy.lost_answers()
    );
    assert!(retried > 0 && proxy.lost_answers() > 0);

    // Every request fails: exit 3 within the deadline, and the tag does not move.
    let before = skopeo_raw(&format!("{direct}:r9")).unwrap();
    proxy.set(1000, 0, false);
    let started = Instant::now();
    let refused = ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--retries",
            "100",
            "--retry-delay",
            "50ms",
            "--registry-deadline",
            "4s",
            "--build-arg",
            "RUN_ID=never",
            "-t",
            &format!("{via}:r9"),
            "--push",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    refused.assert_code(3);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "gave up after {took:?}");
    assert!(
        skopeo_raw(&format!("{direct}:r9")).unwrap() == before,
        "the tag moved"
    );
}

#[test]
fn a_build_reads_its_base_index_once() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    // A proxy that fails nothing, to count what reaches the registry.
    let proxy = FaultProxy::start(&ctx.registry, 0, 0, 1);
    proxy.set(0, 0, false);
    let base = ctx.base.replacen(&ctx.registry, &proxy.addr, 1);
    let df = format!("FROM {base}\nCOPY a /a\n");
    let dir = ctx.context("index-once", &[("Dockerfile", &df), ("a", "a\n")]);
    let out = ctx.dir.path().join("index-once-out");
    ctx.run(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64,linux/arm/v7",
            "-o",
            &format!("type=oci,dest={}", out.display()),
            dir.to_str().unwrap(),
        ],
        &[],
    )
    .assert_code(0);
    let tag = base.rsplit_once(':').unwrap().1;
    let index_reads: Vec<String> = proxy
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("GET ") && l.contains(&format!("/manifests/{tag} ")))
        .collect();
    assert_eq!(index_reads.len(), 1, "{index_reads:?}");
}
