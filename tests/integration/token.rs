//! Bearer token auth against the real registry: Debian's docker-registry with `auth: token`
//! (distribution `docs/spec/auth/token.md`) and a small token service in the test that checks
//! a Basic password and issues RS256 JWTs (x5c header) signed with an openssl-made key. (A
//! token that expires mid-push is shown with a scripted registry in `registry.rs`: this
//! registry accepts expired tokens for a minute of clock-skew leeway.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use base64::Engine as _;

use crate::harness::{digest_of, skopeo_raw, TestContext};
use crate::preflight::{marker_build, stopped_before_any_step};
use crate::registry::{required_tool, RegistryProcess};

const CONFIG: &str = "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: @ROOT@
  delete:
    enabled: true
http:
  addr: @ADDR@
auth:
  token:
    realm: @REALM@
    service: polyarch-registry
    issuer: polyarch-test-issuer
    rootcertbundle: @CERT@
";

const USER: &str = "robot";
const PASSWORD: &str = "t0ken-pa55";
/// A second account whose tokens only ever grant `pull`.
const READER: &str = "reader";
const READER_PASSWORD: &str = "read-0nly-pa55";
/// Token lifetime, seconds.
const LIFETIME: u64 = 60;

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Percent-decoding of a query value.
fn unescape(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Signs `input` with RS256 (PKCS#1 v1.5, SHA-256) by openssl.
fn sign(key: &Path, input: &str) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The token service: one thread, answers `GET /token?service=..&scope=..`.
struct TokenService {
    realm: String,
    issued: Arc<AtomicU32>,
    refused: Arc<AtomicU32>,
}

impl TokenService {
    fn start(key: PathBuf, cert_der: Vec<u8>) -> TokenService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let issued = Arc::new(AtomicU32::new(0));
        let refused = Arc::new(AtomicU32::new(0));
        let (i, r) = (issued.clone(), refused.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                answer(stream, &key, &cert_der, &i, &r);
            }
        });
        TokenService {
            realm,
            issued,
            refused,
        }
    }
}

fn answer(stream: TcpStream, key: &Path, cert_der: &[u8], issued: &AtomicU32, refused: &AtomicU32) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut auth = None;
    let mut length = 0u64;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
    let target = line.split(' ').nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let mut service = String::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("scope", v)) => scopes.push(unescape(v)),
            Some(("service", v)) => service = unescape(v),
            _ => {}
        }
    }
    let basic = |user: &str, password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let reader = auth.as_deref() == Some(basic(READER, READER_PASSWORD).as_str());
    let expected = basic(USER, PASSWORD);
    if !(reader || auth.as_deref() == Some(expected.as_str())) || service != "polyarch-registry" {
        refused.fetch_add(1, Ordering::SeqCst);
        let _ = writer.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 20\r\nConnection: close\r\n\r\nwrong user/password\n",
        );
        return;
    }
    // Grant what is asked (`repository:<name>:<actions>`); the reader only ever gets `pull`.
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| !reader || *a == "pull")
                .collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = issued.fetch_add(1, Ordering::SeqCst);
    let header = serde_json::json!({
        "typ": "JWT", "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let claims = serde_json::json!({
        "iss": "polyarch-test-issuer", "sub": USER, "aud": "polyarch-registry",
        "exp": now + LIFETIME, "nbf": now - 1, "iat": now, "jti": format!("t{n}-{now}"),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let jwt = format!("{input}.{}", b64url(&sign(key, &input)));
    let body = serde_json::json!({"token": jwt, "expires_in": LIFETIME}).to_string();
    let _ = write!(
        writer,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn bearer_tokens_from_a_token_service_are_used() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    if required_tool("openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "sign.key",
            "-out",
            "sign.crt",
            "-days",
            "2",
            "-subj",
            "/CN=polyarch token signer",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let der = Command::new("openssl")
        .args(["x509", "-in", "sign.crt", "-outform", "DER"])
        .current_dir(d)
        .output()
        .unwrap()
        .stdout;
    let tokens = TokenService::start(d.join("sign.key"), der);
    let Some(reg) = RegistryProcess::start_custom(
        CONFIG,
        &[
            ("@REALM@", tokens.realm.clone()),
            ("@CERT@", d.join("sign.crt").display().to_string()),
        ],
    ) else {
        return;
    };
    let home = ctx.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |args: &[&str]| {
        let mut c = ctx.command();
        c.args(args)
            .env("HOME", &home)
            .env("DOCKER_CONFIG", &home)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("POLYARCH_CREDS");
        crate::harness::run(c)
    };
    let creds = format!("{USER}:{PASSWORD}");
    let tag = format!("{}/team/app:v1", reg.addr);

    // Copy the two-platform base into the token registry: blob checks (pull scope), uploads and
    // manifest pushes (pull,push scope), each with a token from the service.
    let merged = run(&["merge", "--creds", &creds, "-t", &tag, &ctx.base]);
    merged.assert_code(0);
    let issued = tokens.issued.load(Ordering::SeqCst);
    assert!(issued >= 2, "only {issued} tokens were issued");
    // skopeo has no token-service credentials here, so read back with polyarch (verified
    // digests), and compare with the source's entries read by skopeo from the open registry.
    let back = run(&["inspect", "--raw", "--creds", &creds, &tag]);
    back.assert_code(0);
    assert_eq!(digest_of(back.stdout.as_bytes()), merged.index_digest());
    let source: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&ctx.base).unwrap()).unwrap();
    let copied: serde_json::Value = serde_json::from_str(&back.stdout).unwrap();
    assert_eq!(
        copied["manifests"][0]["digest"],
        source["manifests"][0]["digest"]
    );
    assert_eq!(
        copied["manifests"][1]["digest"],
        source["manifests"][1]["digest"]
    );

    // A wrong password is refused by the token service: exit 3, the password not shown.
    let wrong = run(&[
        "inspect",
        "--creds",
        &format!("{USER}:not-the-pa55word"),
        &tag,
    ]);
    wrong.assert_code(3);
    assert!(
        !wrong.stderr.contains("not-the-pa55word"),
        "{}",
        wrong.stderr
    );
    assert!(tokens.refused.load(Ordering::SeqCst) >= 1);

    // Pre-flight: a token without the push scope stops a build before any step runs, naming
    // the scope asked for.
    let (dir, state) = marker_build(&ctx, "token-preflight");
    let reader = run(&[
        "build",
        "--state-dir",
        state.to_str().unwrap(),
        "--retries",
        "1",
        "--creds",
        &format!("{READER}:{READER_PASSWORD}"),
        "-t",
        &format!("{}/team/app:preflight", reg.addr),
        "--push",
        dir.to_str().unwrap(),
    ]);
    stopped_before_any_step(
        &reader,
        &state,
        &[
            &reg.addr,
            "may not push",
            "repository:team/app:pull,push",
            "hint: use an account with push rights",
        ],
    );
}
