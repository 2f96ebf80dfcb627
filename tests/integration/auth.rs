//! Credentials and TLS against a second real registry the test starts: Debian's
//! docker-registry on a loopback port with TLS (a CA and server certificate made here with
//! openssl) and htpasswd basic auth (a fresh bcrypt password from apache2-utils' htpasswd).
//! Credentials come from Docker's config.json `auths`, from a credential helper on PATH, from
//! `--creds` and from `--password-stdin`; a wrong password is exit 3 and never printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::harness::{digest_of, run, Run, TestContext};
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
  tls:
    certificate: @CERT@
    key: @KEY@
auth:
  htpasswd:
    realm: polyarch-tls
    path: @USERS@
";

/// The TLS + htpasswd registry and what a client needs to reach it.
struct SecureRegistry {
    process: RegistryProcess,
    dir: tempfile::TempDir,
    /// The CA certificate (PEM).
    ca: PathBuf,
    /// A certs.d directory holding `<addr>/ca.crt`.
    certs_d: PathBuf,
    user: String,
    password: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SecureRegistry {
    fn start() -> Option<SecureRegistry> {
        required_tool("openssl")?;
        let htpasswd = required_tool("htpasswd")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A CA, and a server certificate for 127.0.0.1 signed by it.
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=polyarch test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let user = "ci-bot".to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let password = format!("pw{}x{nanos}Zq", std::process::id());
        let out = Command::new(htpasswd)
            .args(["-Bbn", "-C", "4", &user, &password])
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(d.join("users"), &out.stdout).unwrap();
        let process = RegistryProcess::start_custom(
            CONFIG,
            &[
                ("@CERT@", d.join("server.crt").display().to_string()),
                ("@KEY@", d.join("server.key").display().to_string()),
                ("@USERS@", d.join("users").display().to_string()),
            ],
        )?;
        let certs_d = d.join("certs.d");
        std::fs::create_dir_all(certs_d.join(&process.addr)).unwrap();
        std::fs::copy(d.join("ca.crt"), certs_d.join(&process.addr).join("ca.crt")).unwrap();
        Some(SecureRegistry {
            ca: d.join("ca.crt"),
            certs_d,
            process,
            dir,
            user,
            password,
        })
    }

    /// A Docker config directory holding `config_json`.
    fn docker_config(&self, name: &str, config_json: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config_json).unwrap();
        dir
    }

    /// skopeo's view of `reference` (with the CA and the right credentials).
    fn skopeo_raw(&self, reference: &str) -> Option<Vec<u8>> {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--cert-dir"])
            .arg(self.certs_d.join(&self.process.addr))
            .arg("--creds")
            .arg(format!("{}:{}", self.user, self.password))
            .arg(format!("docker://{reference}"))
            .output()
            .unwrap();
        out.status.success().then(|| {
            let mut b = out.stdout;
            if b.last() == Some(&b'\n') {
                b.pop();
            }
            b
        })
    }
}

/// Runs polyarch with no ambient credentials: an empty HOME, no auth-file variables, and
/// `docker_config` as DOCKER_CONFIG.
fn isolated(
    ctx: &TestContext,
    args: &[&str],
    docker_config: &Path,
    path_prefix: Option<&Path>,
    stdin: Option<&str>,
) -> Run {
    let home = ctx.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut c = ctx.command();
    c.args(args)
        .env("HOME", &home)
        .env("DOCKER_CONFIG", docker_config)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("POLYARCH_CREDS");
    if let Some(prefix) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", prefix.display()));
    }
    match stdin {
        None => run(c),
        Some(input) => {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    }
}

#[test]
fn credentials_from_config_helper_flags_over_tls() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some(reg) = SecureRegistry::start() else {
        return;
    };
    let addr = reg.process.addr.clone();
    let ca = reg.ca.to_str().unwrap().to_string();
    let tag = format!("{addr}/team/app:v1");
    let no_config = reg.docker_config("none", "{}");

    // 1. config.json `auths`: the base image (two platforms) is copied from the open registry
    //    into the TLS one and tagged there.
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", reg.user, reg.password));
    let auths = reg.docker_config(
        "auths",
        &format!(r#"{{"auths":{{"https://{addr}":{{"auth":"{b64}"}}}}}}"#),
    );
    let merged = isolated(
        &ctx,
        &["merge", "--ca-cert", &ca, "-t", &tag, &ctx.base],
        &auths,
        None,
        None,
    );
    merged.assert_code(0);
    let index = reg.skopeo_raw(&tag).expect("skopeo reads the pushed index");
    assert_eq!(digest_of(&index), merged.index_digest());

    // 2. A credential helper on PATH, named in credHelpers; the CA from a certs.d directory.
    let bin = ctx.dir.path().join("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = ctx.dir.path().join("helper.log");
    let script = format!(
        "#!/bin/sh\nread -r url || true\necho \"$1 $url\" >> {log}\n\
         if [ \"$1\" = get ] && [ \"$url\" = '{addr}' ]; then\n\
         printf '{{\"ServerURL\":\"%s\",\"Username\":\"{}\",\"Secret\":\"{}\"}}' \"$url\"\n\
         else echo 'credentials not found in native keychain'; exit 1; fi\n",
        reg.user,
        reg.password,
        log = log.display()
    );
    let helper = bin.join("docker-credential-polyarchtest");
    std::fs::write(&helper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helped = reg.docker_config(
        "helped",
        &format!(r#"{{"credHelpers":{{"{addr}":"polyarchtest"}}}}"#),
    );
    let certs_d = reg.certs_d.to_str().unwrap().to_string();
    let inspected = isolated(
        &ctx,
        &["inspect", "--certs-dir", &certs_d, "--raw", &tag],
        &helped,
        Some(&bin),
        None,
    );
    inspected.assert_code(0);
    assert_eq!(inspected.stdout.as_bytes(), index.as_slice());
    let asked = std::fs::read_to_string(&log).unwrap();
    assert!(asked.contains(&format!("get {addr}")), "{asked}");

    // 3. --creds, on a build that pushes by digest; a RUN step prints its environment, which
    //    must not hold the password (nor may any output or the metadata file).
    let creds = format!("{}:{}", reg.user, reg.password);
    let df = format!("FROM {}\nRUN env; echo args: \"$@\"\n", ctx.base);
    let dir = ctx.context("auth-build", &[("Dockerfile", &df)]);
    let meta = ctx.dir.path().join("auth-meta.json");
    let built = isolated(
        &ctx,
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64",
            "--creds",
            &creds,
            "--ca-cert",
            &ca,
            "--push-by-digest",
            &format!("{addr}/team/app"),
            "--metadata-file",
            meta.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        &no_config,
        None,
        None,
    );
    built.assert_code(0);
    assert!(
        built.stderr.contains("PATH="),
        "the RUN env was not shown:\n{}",
        built.stderr
    );
    for text in [
        &built.stdout,
        &built.stderr,
        &std::fs::read_to_string(&meta).unwrap(),
    ] {
        assert!(
            !text.contains(&reg.password),
            "the password leaked:\n{text}"
        );
    }
    let pushed = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&meta).unwrap())
        .unwrap()["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reg.skopeo_raw(&pushed).is_some());

    // 4. --password-stdin.
    let piped = isolated(
        &ctx,
        &[
            "inspect",
            "--ca-cert",
            &ca,
            "--creds",
            &reg.user,
            "--password-stdin",
            &tag,
        ],
        &no_config,
        None,
        Some(&format!("{}\n", reg.password)),
    );
    piped.assert_code(0);
    assert!(piped.stdout.contains("linux/arm64"), "{}", piped.stdout);

    // 5. A wrong password: exit 3, the password nowhere in the output, the tag unchanged.
    let wrong = "Wr0ng-s3cret-value";
    let refused = isolated(
        &ctx,
        &[
            "merge",
            "--ca-cert",
            &ca,
            "--creds",
            &format!("{}:{wrong}", reg.user),
            "-t",
            &tag,
            &pushed,
        ],
        &no_config,
        None,
        None,
    );
    refused.assert_code(3);
    assert!(
        refused.stderr.contains("unauthorized"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(wrong) && !refused.stdout.contains(wrong));
    assert_eq!(reg.skopeo_raw(&tag).unwrap(), index);

    // 6. No credentials at all: exit 3, saying none are configured.
    let anonymous = isolated(
        &ctx,
        &["inspect", "--ca-cert", &ca, &tag],
        &no_config,
        None,
        None,
    );
    anonymous.assert_code(3);
    assert!(
        anonymous.stderr.contains("no credentials")
            || anonymous.stderr.contains("none are configured"),
        "{}",
        anonymous.stderr
    );

    // 7. Without the CA the certificate is not trusted: exit 3 with a hint about --ca-cert.
    let untrusted = isolated(
        &ctx,
        &[
            "inspect",
            "--certs-dir",
            "/nonexistent",
            "--creds",
            &creds,
            &tag,
        ],
        &no_config,
        None,
        None,
    );
    untrusted.assert_code(3);
    assert!(untrusted.stderr.contains("TLS"), "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.contains("--ca-cert"),
        "{}",
        untrusted.stderr
    );
    assert!(!untrusted.stderr.contains(&reg.password));
}

#[test]
fn preflight_names_an_untrusted_certificate_and_a_refused_password() {
    let Some(ctx) = TestContext::new() else {
        return;
    };
    let Some(reg) = SecureRegistry::start() else {
        return;
    };
    let addr = reg.process.addr.clone();
    let ca = reg.ca.to_str().unwrap().to_string();
    let tag = format!("{addr}/team/app:preflight");
    let no_config = reg.docker_config("preflight", "{}");
    let (dir, state) = marker_build(&ctx, "tls-preflight");
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--state-dir",
            state.to_str().unwrap(),
            "--retries",
            "1",
            "--retry-delay",
            "10ms",
            "-t",
            &tag,
            "--push",
        ];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        isolated(&ctx, &args, &no_config, None, None)
    };
    let good = format!("{}:{}", reg.user, reg.password);
    // The registry's CA is not trusted: the cause is TLS verification, the fix trusting the
    // CA (not --insecure-registry: the registry does speak TLS).
    let untrusted = build(&["--creds", &good]);
    stopped_before_any_step(
        &untrusted,
        &state,
        &[
            &addr,
            "its TLS certificate (subject CN=127.0.0.1) does not verify",
            "hint: trust the registry's CA",
        ],
    );
    assert!(
        !untrusted.stderr.contains("--insecure-registry"),
        "{}",
        untrusted.stderr
    );
    // A wrong password: refused, and never printed.
    let wrong = format!("{}:wrong-pa55word", reg.user);
    let refused = build(&["--ca-cert", &ca, "--creds", &wrong]);
    stopped_before_any_step(
        &refused,
        &state,
        &[&addr, "credentials are refused", "hint: give credentials"],
    );
    assert!(!refused.stderr.contains("wrong-pa55word"));
}
