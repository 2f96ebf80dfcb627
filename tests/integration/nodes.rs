//! Build nodes over SSH, against real parts on loopback: private `sshd` instances from Debian's
//! openssh-server (each with its own host key, port, log and polyarch state directory), the
//! system `ssh` client with a generated user key and known_hosts, a `docker-registry` with
//! htpasswd auth started per test, and skopeo as an independent reader.
//!
//! How a node finds polyarch: its sshd sets `PATH` and `POLYARCH_STATE_DIR` for sessions
//! (`SetEnv` in its sshd_config), and the PATH starts with a per-node directory holding a
//! `polyarch` wrapper script that records its arguments and environment, tees the worker's
//! stderr to a log, and runs the binary under test. Nodes are declared the way users do:
//! `--node NAME=ssh://root@127.0.0.1:PORT?platforms=...` with `--ssh-config` naming the key and
//! known_hosts (ssh reads `~/.ssh` from the password database, not `$HOME`).
//!
//! When `CI` is set, a missing sshd, htpasswd or docker-registry fails the test instead of
//! skipping it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::harness::{binfmt_shared, digest_of, run, Run, TestContext};

/// The path of `tool`, or `None` to skip; panics when `CI` is set and it is missing.
fn required(tool: &str) -> Option<PathBuf> {
    match which::which(tool).or_else(|_| which::which(format!("/usr/sbin/{tool}"))) {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{tool} is required when CI is set (scripts/test installs it)")
        }
        Err(_) => {
            eprintln!("skipped: {tool} not installed (run scripts/test)");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "polyarch-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success(), "ssh-keygen {}", path.display());
}

/// Every process below `pid` (children first found through /proc), deepest last.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten();
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            out.push(c);
            out.extend(descendants(c));
        }
    }
    out
}

/// One private sshd acting as a build node.
pub struct SshNode {
    pub name: String,
    pub port: u16,
    /// The node's own directory: config, host key, `bin/`, `state/`, `log/`.
    pub dir: PathBuf,
    sshd: Option<Child>,
}

impl SshNode {
    /// Starts sshd for node `name` under `root/<name>`. With `with_polyarch` false the node's
    /// PATH has no polyarch (a machine where it is not installed).
    fn start(root: &Path, name: &str, authorized_keys: &Path, with_polyarch: bool) -> SshNode {
        let sshd = required("sshd").expect("sshd");
        let dir = root.join(name);
        for d in ["bin", "state", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        keygen(&dir.join("host_key"));
        if with_polyarch {
            let wrapper = format!(
                "#!/bin/sh\n\
                 # Records how the node's polyarch is started, then runs the binary under test.\n\
                 printf '%s\\n' \"$*\" >> {log}/argv\n\
                 env >> {log}/env\n\
                 POLYARCH_LOG=trace; export POLYARCH_LOG\n\
                 {{ {bin} \"$@\" 2>&1 1>&3 3>&- | tee -a {log}/worker.stderr >&2 3>&-; }} 3>&1\n",
                log = dir.join("log").display(),
                bin = env!("CARGO_BIN_EXE_polyarch"),
            );
            let path = dir.join("bin/polyarch");
            std::fs::write(&path, wrapper).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {dir}/host_key\n\
                 AuthorizedKeysFile {keys}\n\
                 PermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile {dir}/sshd.pid\n\
                 LogLevel DEBUG3\n\
                 SetEnv PATH={dir}/bin:/usr/local/bin:/usr/bin:/bin POLYARCH_STATE_DIR={dir}/state\n",
                dir = dir.display(),
                keys = authorized_keys.display(),
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(dir.join("log/sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let node = SshNode {
            name: name.to_string(),
            port,
            dir,
            sshd: Some(child),
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut banner = String::new();
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if BufReader::new(s).read_line(&mut banner).is_ok() && banner.starts_with("SSH-") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "sshd for node {} did not answer on port {}: {}",
            self.name,
            self.port,
            std::fs::read_to_string(self.dir.join("log/sshd.log")).unwrap_or_default()
        );
    }

    /// `NAME=ssh://root@127.0.0.1:PORT?platforms=P`.
    pub fn arg(&self, platforms: &str) -> String {
        format!(
            "{}=ssh://root@127.0.0.1:{}?platforms={platforms}",
            self.name, self.port
        )
    }

    /// Kills this node's sshd and everything it started (its sessions, their workers and
    /// sandboxes): the node drops off the network mid-build.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.sshd.take() {
            let mut all = vec![child.id()];
            all.extend(descendants(child.id()));
            for pid in &all {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait();
        }
    }

    /// The lines the node's polyarch was started with.
    pub fn argv_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/argv")).unwrap_or_default()
    }
}

impl Drop for SshNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Nodes sharing one user key, known_hosts and ssh config.
pub struct Farm {
    pub root: PathBuf,
    pub ssh_config: PathBuf,
    pub known_hosts: PathBuf,
    authorized_keys: PathBuf,
}

impl Farm {
    fn new(ctx: &TestContext) -> Option<Farm> {
        required("sshd")?;
        required("ssh")?;
        let root = ctx.dir.path().join("farm");
        std::fs::create_dir_all(&root).unwrap();
        let key = root.join("user_key");
        keygen(&key);
        let authorized_keys = root.join("authorized_keys");
        std::fs::copy(root.join("user_key.pub"), &authorized_keys).unwrap();
        let known_hosts = root.join("known_hosts");
        std::fs::write(&known_hosts, "").unwrap();
        let ssh_config = root.join("ssh_config");
        std::fs::write(
            &ssh_config,
            format!(
                "Host 127.0.0.1\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n",
                key.display(),
                known_hosts.display()
            ),
        )
        .unwrap();
        Some(Farm {
            root,
            ssh_config,
            known_hosts,
            authorized_keys,
        })
    }

    /// Starts a node and adds its host key to known_hosts.
    fn node(&self, name: &str, with_polyarch: bool) -> SshNode {
        let node = SshNode::start(&self.root, name, &self.authorized_keys, with_polyarch);
        let key = std::fs::read_to_string(node.dir.join("host_key.pub")).unwrap();
        let mut kh = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.known_hosts)
            .unwrap();
        writeln!(kh, "[127.0.0.1]:{} {}", node.port, key.trim()).unwrap();
        node
    }

    fn ssh_config_arg(&self) -> String {
        self.ssh_config.display().to_string()
    }
}

/// A `docker-registry` with htpasswd auth and a password made up for this test run.
pub struct AuthRegistry {
    child: Child,
    pub addr: String,
    pub user: String,
    pub password: String,
    /// A `DOCKER_CONFIG` directory whose config.json has the credentials.
    pub docker_config: PathBuf,
}

impl AuthRegistry {
    fn start(ctx: &TestContext) -> Option<AuthRegistry> {
        let bin = required("docker-registry")?;
        let htpasswd_bin = required("htpasswd")?;
        let dir = ctx.dir.path().join("auth-registry");
        std::fs::create_dir_all(&dir).unwrap();
        let user = "builder".to_string();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let password = format!("Pw-{}-{nanos}-never-leak", std::process::id());
        // The password goes to htpasswd on stdin, not on its command line.
        let mut h = Command::new(htpasswd_bin)
            .args(["-iBn", "-C", "4", &user])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("htpasswd");
        h.stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        let out = h.wait_with_output().unwrap();
        assert!(out.status.success(), "htpasswd failed");
        std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            include_str!("../fixtures/registry/config-auth.yml.in")
                .replace("@ROOT@", &dir.join("storage").display().to_string())
                .replace("@ADDR@", &addr)
                .replace("@HTPASSWD@", &dir.join("htpasswd").display().to_string()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry");
        let docker_config = ctx.dir.path().join("docker-config");
        std::fs::create_dir_all(&docker_config).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        std::fs::write(
            docker_config.join("config.json"),
            serde_json::json!({"auths": {&addr: {"auth": auth}}}).to_string(),
        )
        .unwrap();
        let reg = AuthRegistry {
            child,
            addr,
            user,
            password,
            docker_config,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = TcpStream::connect(&reg.addr).ok().and_then(|mut s| {
                let req = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    reg.addr
                );
                s.write_all(req.as_bytes()).ok()?;
                let mut a = String::new();
                s.read_to_string(&mut a).ok()?;
                a.starts_with("HTTP/1.1 401").then_some(())
            });
            if ok.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "auth registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    fn repo(&self, name: &str) -> String {
        format!(
            "{}/nodes/{name}-{}-{}",
            self.addr,
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        )
    }

    /// `skopeo inspect --raw` with the credentials (the test's own client), `None` if absent.
    fn raw(&self, reference: &str) -> Option<Vec<u8>> {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--creds"])
            .arg(format!("{}:{}", self.user, self.password))
            .arg(format!("docker://{reference}"))
            .output()
            .expect("skopeo");
        out.status.success().then_some(out.stdout)
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything a node test needs; `None` when the real parts are missing outside CI.
struct Setup {
    ctx: TestContext,
    farm: Farm,
    registry: AuthRegistry,
}

fn setup() -> Option<Setup> {
    let ctx = TestContext::new()?;
    let farm = Farm::new(&ctx)?;
    let registry = AuthRegistry::start(&ctx)?;
    Some(Setup {
        ctx,
        farm,
        registry,
    })
}

impl Setup {
    /// A build context: FROM the test base, a COPY and a RUN that sleeps `sleep` seconds.
    fn context(&self, sleep: u32) -> PathBuf {
        let df = format!(
            "FROM {}\nCOPY greeting.txt /etc/greeting\nRUN sleep {sleep} && uname -m > /arch && cat /etc/greeting > /copied\n",
            self.ctx.base
        );
        self.ctx.context(
            &format!("ctx-{sleep}"),
            &[
                ("Dockerfile", df.as_str()),
                ("greeting.txt", "hello from a node\n"),
                (".dockerignore", "secret.txt\n"),
                ("secret.txt", "never sent\n"),
            ],
        )
    }

    /// `polyarch build` args for `platforms` to `tag` with the farm's ssh config.
    fn build_args(&self, platforms: &str, tag: &str, extra: &[String], dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "build".into(),
            "--platform".into(),
            platforms.into(),
            "-t".into(),
            tag.into(),
            "--push".into(),
            "--ssh-config".into(),
            self.farm.ssh_config_arg(),
        ];
        a.extend(extra.iter().cloned());
        a.push(dir.display().to_string());
        a
    }

    fn env(&self, state: &str) -> Vec<(String, String)> {
        vec![
            ("SOURCE_DATE_EPOCH".into(), "0".into()),
            (
                "DOCKER_CONFIG".into(),
                self.registry.docker_config.display().to_string(),
            ),
            (
                "POLYARCH_STATE_DIR".into(),
                self.ctx.dir.path().join(state).display().to_string(),
            ),
        ]
    }

    fn run(&self, args: &[String], env: &[(String, String)]) -> Run {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.ctx.run(&a, &e)
    }

    /// A local build (no nodes) of `dir` for `platforms`; returns the index digest.
    fn local_digest(&self, platforms: &str, dir: &Path) -> String {
        let tag = format!("{}:local", self.registry.repo("local"));
        let args = self.build_args(platforms, &tag, &[], dir);
        let r = self.run(&args, &self.env("state-local"));
        r.assert_code(0);
        r.index_digest()
    }
}

fn metadata_nodes(path: &Path) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    v["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["platform"].as_str().unwrap().to_string(),
                p["node"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const TWO: &str = "linux/amd64,linux/arm64";

#[test]
fn two_nodes_push_the_same_index_as_a_local_build_and_record_who_built_what() {
    let Some(s) = setup() else { return };
    let arm = s.farm.node("arm", true);
    let amd = s.farm.node("amd", true);
    let dir = s.context(0);
    let tag = format!("{}:nodes", s.registry.repo("two"));
    let meta = s.ctx.dir.path().join("meta.json");
    let extra = vec![
        "--node".into(),
        arm.arg("linux/arm64"),
        "--node".into(),
        amd.arg("linux/amd64"),
        "--metadata-file".into(),
        meta.display().to_string(),
        "-v".into(),
    ];
    let args = s.build_args(TWO, &tag, &extra, &dir);
    let r = s.run(&args, &s.env("state-coordinator"));
    r.assert_code(0);
    // The plan said where and why: arm64 runs only under emulation on node arm (this machine is
    // x86_64), and is used as declared.
    assert!(
        r.stderr.contains(&format!(
            "[linux/arm64] runs on node arm (ssh://root@127.0.0.1:{}), emulated through qemu-aarch64 there",
            arm.port
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!(
            "[linux/amd64] runs on node amd (ssh://root@127.0.0.1:{}), natively there",
            amd.port
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("sending the build context"),
        "{}",
        r.stderr
    );
    // The metadata file records which node built each platform.
    assert_eq!(
        metadata_nodes(&meta),
        [
            ("linux/amd64".to_string(), "amd".to_string()),
            ("linux/arm64".to_string(), "arm".to_string())
        ]
    );
    // The tag holds an OCI index of the two images, as skopeo reads it.
    let raw = s.registry.raw(&tag).expect("the tag exists");
    assert_eq!(digest_of(&raw), r.index_digest());
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["mediaType"], "application/vnd.oci.image.index.v1+json");
    let m = v["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0]["platform"],
        serde_json::json!({"architecture": "amd64", "os": "linux"})
    );
    assert_eq!(
        m[1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    // Each node ran `polyarch worker --stdio` twice (probe, build), nothing else.
    for n in [&arm, &amd] {
        assert_eq!(
            n.argv_log(),
            "worker --stdio\nworker --stdio\n",
            "node {}",
            n.name
        );
        // The context the node got holds what .dockerignore lets through, nothing more.
        let contexts: Vec<PathBuf> = std::fs::read_dir(n.dir.join("state/contexts"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(contexts.len(), 1, "{contexts:?}");
        assert!(contexts[0].join("root/greeting.txt").is_file());
        assert!(!contexts[0].join("root/secret.txt").exists());
    }

    // With SOURCE_DATE_EPOCH=0 the index equals a local build's of the same context.
    assert_eq!(s.local_digest(TWO, &dir), r.index_digest());

    // The same context again: the nodes have it and nothing is sent.
    let tag2 = format!("{}:again", s.registry.repo("two"));
    let args = s.build_args(TWO, &tag2, &extra, &dir);
    let again = s.run(&args, &s.env("state-coordinator"));
    again.assert_code(0);
    assert_eq!(again.index_digest(), r.index_digest());
    assert_eq!(
        again
            .stderr
            .matches("the node has the build context already")
            .count(),
        2,
        "{}",
        again.stderr
    );
    assert!(
        !again.stderr.contains("sending the build context"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_node_that_drops_mid_build_hands_its_platform_to_the_next_candidate() {
    let Some(s) = setup() else { return };
    let mut arm = s.farm.node("arm", true);
    let amd = s.farm.node("amd", true);
    let dir = s.context(6);
    let tag = format!("{}:fallback", s.registry.repo("drop"));
    let meta = s.ctx.dir.path().join("meta.json");
    let extra = vec![
        "--node".into(),
        arm.arg("linux/arm64"),
        "--node".into(),
        amd.arg("linux/amd64"),
        "--metadata-file".into(),
        meta.display().to_string(),
    ];
    let args = s.build_args(TWO, &tag, &extra, &dir);
    let _shared = binfmt_shared();
    let mut cmd = s.ctx.command();
    cmd.args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in s.env("state-coordinator") {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("polyarch build");
    let stderr = child.stderr.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Read progress until node arm runs the RUN step, then pull the plug on it.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("node arm never started its RUN step:\n{log}"));
        log.push_str(&line);
        log.push('\n');
        if line.starts_with("[linux/arm64] #2/2") {
            break;
        }
    }
    // While it runs, `node ls` counts the build on node arm.
    let mut c = s.ctx.command();
    c.args(["node", "ls", "--json", "--ssh-config"])
        .arg(&s.farm.ssh_config)
        .args(["--node", &arm.arg("linux/arm64")]);
    let ls = run(c);
    ls.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert_eq!(v[0]["name"], "arm");
    assert_eq!(v[0]["reachable"], true);
    assert_eq!(v[0]["running_builds"], 1, "{}", ls.stdout);
    arm.kill();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    log.extend(rx.try_iter().map(|l| l + "\n"));
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    assert_eq!(status.code(), Some(0), "{out}\n{log}");
    // The log says where the platform went.
    let moved = log
        .lines()
        .find(|l| l.contains("dropped mid-build"))
        .unwrap_or_else(|| panic!("no fallback line:\n{log}"));
    assert!(
        moved.starts_with(
            "[linux/arm64] node arm (emulated through qemu-aarch64 there) dropped mid-build:"
        ) && moved.ends_with("retrying on local (emulated through qemu-aarch64)"),
        "{moved}"
    );
    assert_eq!(
        metadata_nodes(&meta),
        [
            ("linux/amd64".to_string(), "amd".to_string()),
            ("linux/arm64".to_string(), "local".to_string())
        ]
    );
    // Nothing of the broken attempt reached the index: it is exactly a local build's.
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("index "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(digest_of(&s.registry.raw(&tag).unwrap()), digest);
    drop(_shared);
    assert_eq!(s.local_digest(TWO, &dir), digest);
}

#[test]
fn the_plan_shows_where_and_why_and_native_only_stops_before_building() {
    let Some(s) = setup() else { return };
    let arm = s.farm.node("arm", true);
    let amd = s.farm.node("amd", true);
    let dir = s.context(0);
    let tag = format!("{}:plan", s.registry.repo("plan"));
    // --dry-run: the plan, nothing pushed. The nodes come from a nodes file this time.
    let nodes_file = s.farm.root.join("nodes.toml");
    std::fs::write(
        &nodes_file,
        format!(
            "[[node]]\nname = \"arm\"\naddress = \"ssh://root@127.0.0.1:{}\"\nplatforms = [\"linux/arm64\"]\n\n\
             [[node]]\nname = \"amd\"\naddress = \"ssh://root@127.0.0.1:{}\"\nplatforms = [\"linux/amd64\"]\nlimit = 2\n",
            arm.port, amd.port
        ),
    )
    .unwrap();
    let extra = vec![
        "--nodes".into(),
        nodes_file.display().to_string(),
        "--dry-run".into(),
    ];
    let args = s.build_args("linux/amd64,linux/arm64,linux/s390x", &tag, &extra, &dir);
    let r = s.run(&args, &s.env("state-coordinator"));
    r.assert_code(0);
    let amd_line = format!(
        "polyarch {}, 0 build(s) running, limit 2, used for linux/amd64 (natively)",
        env!("CARGO_PKG_VERSION")
    );
    for want in [
        amd_line.as_str(),
        "linux/amd64      node amd (natively there)",
        "why: node amd declares it and runs it natively",
        "linux/arm64      node arm (emulated through qemu-aarch64 there)",
        "why: node arm declares it; it runs it only under emulation there (qemu-aarch64), used as declared",
        "if the node drops: local (emulated through qemu-aarch64)",
        "linux/s390x      local (emulated through qemu-s390x)",
        "why: no node declares it; this host runs it under emulation (qemu-s390x)",
    ] {
        assert!(r.stdout.contains(want), "missing {want:?} in:\n{}", r.stdout);
    }
    assert!(s.registry.raw(&tag).is_none(), "a dry run pushed something");

    // native-only with no node for arm64 (and no native arm64 here): exit 4 naming it, before
    // anything is built or pushed.
    let extra = vec![
        "--node".into(),
        amd.arg("linux/amd64"),
        "--node-policy".into(),
        "native-only".into(),
    ];
    let args = s.build_args(TWO, &tag, &extra, &dir);
    let r = s.run(&args, &s.env("state-coordinator"));
    r.assert_code(4);
    assert!(
        r.stderr.contains(
            "--node-policy native-only: no node and no native support here for linux/arm64"
        ),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("#1/"),
        "something was built:\n{}",
        r.stderr
    );
    assert!(s.registry.raw(&tag).is_none());
    // Only the probe ran on node amd.
    assert_eq!(amd.argv_log(), "worker --stdio\nworker --stdio\n");
}

#[test]
fn a_wrong_host_key_or_a_missing_binary_names_the_node_and_the_fix() {
    let Some(s) = setup() else { return };
    let amd = s.farm.node("amd", true);
    let bare = s.farm.node("bare", false);
    let node_check = |name: &str, node: &str, ssh_config: &Path| -> Run {
        let mut c = s.ctx.command();
        c.args(["node", "check", name, "--ssh-config"])
            .arg(ssh_config)
            .args(["--node", node]);
        run(c)
    };
    // Both usable as far as ssh goes: amd answers, bare has no polyarch.
    let ok = node_check("amd", &amd.arg("linux/amd64"), &s.farm.ssh_config);
    ok.assert_code(0);
    assert!(ok.stdout.starts_with("node amd ("), "{}", ok.stdout);
    assert!(
        ok.stdout.contains("used for: linux/amd64 (natively)"),
        "{}",
        ok.stdout
    );

    let r = node_check("bare", &bare.arg("linux/amd64"), &s.farm.ssh_config);
    r.assert_code(4);
    assert!(
        r.stderr
            .contains("error: node bare: `polyarch` was not found there"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: install polyarch on node bare")
            && r.stderr.contains("?polyarch=/path/to/polyarch"),
        "{}",
        r.stderr
    );

    // known_hosts with another key for node amd.
    let other = s.farm.root.join("other_key");
    keygen(&other);
    let wrong_kh = s.farm.root.join("known_hosts_wrong");
    std::fs::write(
        &wrong_kh,
        format!(
            "[127.0.0.1]:{} {}",
            amd.port,
            std::fs::read_to_string(other.with_extension("pub")).unwrap()
        ),
    )
    .unwrap();
    let wrong_config = s.farm.root.join("ssh_config_wrong");
    std::fs::write(
        &wrong_config,
        std::fs::read_to_string(&s.farm.ssh_config)
            .unwrap()
            .replace(
                &s.farm.known_hosts.display().to_string(),
                &wrong_kh.display().to_string(),
            ),
    )
    .unwrap();
    let r = node_check("amd", &amd.arg("linux/amd64"), &wrong_config);
    r.assert_code(4);
    assert!(
        r.stderr.contains(&format!(
            "error: node amd (ssh://root@127.0.0.1:{}): host key verification failed",
            amd.port
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("ssh-keygen -R '[127.0.0.1]:{}'", amd.port)),
        "{}",
        r.stderr
    );
    // A build with that node stops before building anything, with the same message.
    let dir = s.context(0);
    let tag = format!("{}:hostkey", s.registry.repo("keys"));
    let args = vec![
        "build".to_string(),
        "--platform".into(),
        "linux/amd64".into(),
        "-t".into(),
        tag.clone(),
        "--push".into(),
        "--ssh-config".into(),
        wrong_config.display().to_string(),
        "--node".into(),
        amd.arg("linux/amd64"),
        dir.display().to_string(),
    ];
    let r = s.run(&args, &s.env("state-coordinator"));
    r.assert_code(4);
    assert!(
        r.stderr.contains("host key verification failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("#1/"), "{}", r.stderr);
    assert!(s.registry.raw(&tag).is_none());

    // `node ls` lists both, with what is wrong and how to fix it.
    let mut c = s.ctx.command();
    c.args(["node", "ls", "--ssh-config"])
        .arg(&s.farm.ssh_config)
        .args([
            "--node",
            &amd.arg("linux/amd64"),
            "--node",
            &bare.arg("linux/amd64"),
        ]);
    let ls = run(c);
    ls.assert_code(0);
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", ls.stdout);
    assert!(
        lines[1].starts_with("amd ")
            && lines[1].contains(" yes ")
            && lines[1].contains("linux/amd64"),
        "{}",
        ls.stdout
    );
    assert!(
        lines[2].starts_with("bare ") && lines[2].contains(" yes "),
        "{}",
        ls.stdout
    );
    assert!(
        ls.stdout
            .contains("node bare: `polyarch` was not found there"),
        "{}",
        ls.stdout
    );
}

/// Every file under `dir` (recursively, not following symlinks) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if md.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[test]
fn the_registry_password_travels_only_inside_the_ssh_channel() {
    let Some(s) = setup() else { return };
    let arm = s.farm.node("arm", true);
    let amd = s.farm.node("amd", true);
    let dir = s.context(0);
    let tag = format!("{}:secret", s.registry.repo("secret"));
    let extra = vec![
        "--node".into(),
        arm.arg("linux/arm64"),
        "--node".into(),
        amd.arg("linux/amd64"),
        "-vvv".into(),
    ];
    let args = s.build_args(TWO, &tag, &extra, &dir);
    // The coordinator logs everything it can (-vvv); the nodes' workers log at trace level
    // (POLYARCH_LOG=trace in their wrapper) and their sshd at DEBUG3.
    let r = s.run(&args, &s.env("state-coordinator"));
    r.assert_code(0);
    // The nodes pushed with the password (they have no other way to get it: no config there),
    // so it did reach them...
    assert!(s.registry.raw(&tag).is_some());
    let secret = s.registry.password.clone();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", s.registry.user, secret));
    // ...and the search below does find it where it is on purpose.
    let control = s.ctx.dir.path().join("control");
    std::fs::write(&control, format!("x{secret}x")).unwrap();
    assert_eq!(
        files_containing(s.ctx.dir.path(), secret.as_bytes()),
        std::slice::from_ref(&control)
    );
    std::fs::remove_file(&control).unwrap();
    for needle in [secret.as_bytes(), basic.as_bytes()] {
        let shown = String::from_utf8_lossy(needle).into_owned();
        // Not in the remote command lines or the workers' environment.
        for n in [&arm, &amd] {
            assert!(
                n.argv_log().lines().all(|l| l == "worker --stdio"),
                "{}",
                n.argv_log()
            );
            let env = std::fs::read_to_string(n.dir.join("log/env")).unwrap();
            assert!(
                !env.contains(&shown),
                "node {}: password in the worker's environment",
                n.name
            );
            assert!(env.contains("POLYARCH_STATE_DIR="), "the env log works");
            // Not in the worker's log, the sshd log, or any file left in the node's directory
            // (its state: contexts, blobs, layers, temporary files).
            let log = std::fs::read_to_string(n.dir.join("log/worker.stderr")).unwrap();
            assert!(
                log.contains("TRACE") || log.contains("DEBUG"),
                "the worker log is verbose"
            );
            assert!(
                files_containing(&n.dir, needle).is_empty(),
                "node {}: {:?}",
                n.name,
                files_containing(&n.dir, needle)
            );
        }
        // Not in the coordinator's output at -vvv.
        assert!(
            !r.stderr.contains(&shown),
            "password in the coordinator's log"
        );
        assert!(!r.stdout.contains(&shown));
        // Nowhere in the test's directory either (coordinator state, context, logs), except the
        // Docker config the credentials came from (base64 there).
        let hits: Vec<PathBuf> = files_containing(s.ctx.dir.path(), needle)
            .into_iter()
            .filter(|p| !p.starts_with(&s.registry.docker_config))
            .collect();
        assert!(hits.is_empty(), "{hits:?}");
    }
    // The coordinator's log is verbose enough to have shown it, had it been logged.
    assert!(
        r.stderr.contains("DEBUG") || r.stderr.contains("TRACE"),
        "{}",
        r.stderr
    );
}

// Issue 12, item 8: a node runs its steps in the same sandbox as a local build (the worker uses
// the same executor): Docker's capabilities, no_new_privs, the seccomp filter, the step's own
// network through pasta; and it is sent the coordinator's entitlements, so RUN --network=host
// needs --allow there too.
#[test]
fn a_node_runs_steps_in_the_same_sandbox() {
    let Some(s) = setup() else { return };
    let amd = s.farm.node("amd", true);
    let df = format!(
        "FROM {}\nRUN grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status && ip -o link | grep -c eth0\n\
         RUN --network=host true\n",
        s.ctx.base
    );
    let dir = s.ctx.context("sandboxed", &[("Dockerfile", df.as_str())]);
    let tag = format!("{}:sandboxed", s.registry.repo("sandboxed"));
    let extra = vec![
        "--node".into(),
        amd.arg("linux/amd64"),
        "--node-policy".into(),
        "native-only".into(),
        "--allow".into(),
        "network.host".into(),
    ];
    let args = s.build_args("linux/amd64", &tag, &extra, &dir);
    let r = s.run(&args, &s.env("state-coordinator"));
    r.assert_code(0);
    assert!(
        r.stderr.contains("[linux/amd64] runs on node amd"),
        "{}",
        r.stderr
    );
    for want in [
        "| CapEff:\t00000000a80425fb",
        "| NoNewPrivs:\t1",
        "| Seccomp:\t2",
    ] {
        assert!(r.stderr.contains(want), "no {want:?} in\n{}", r.stderr);
    }
}
