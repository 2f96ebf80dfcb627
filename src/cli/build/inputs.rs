//! buildx's input and step-setting flags of `polyarch build`: `-` read from stdin (a Dockerfile
//! for `-f -`; a context tar or a Dockerfile for the context `-`), and `--add-host`,
//! `--shm-size`, `--ulimit` resolved into the [`RunSettings`] every `RUN` gets, and
//! `--build-context` values.
//!
//! Level 4 (edge). Reads stdin and unpacks a context tar into a temporary directory that lives
//! as long as the [`Staged`] value; builds nothing. Errors are [`UsageError`]s naming the flag.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::flags::{BuildArgs, BuildxArgs};
use crate::cli::{usage, UsageError};
use crate::coordinator::{BuildxInputs, NamedContext};
use crate::executor::{RunSettings, Ulimit};
use crate::plan::{Entitlement, Network};

/// The context and Dockerfile a build uses once `-` is read: the paths given, or files in a
/// temporary directory that is removed when this is dropped.
pub(super) struct Staged {
    /// Holds what came from stdin.
    _dir: Option<tempfile::TempDir>,
    /// The context directory to use.
    pub(super) context: PathBuf,
    /// The Dockerfile to use (`None`: CONTEXT/Dockerfile).
    pub(super) file: Option<PathBuf>,
}

/// Reads what `-` stands for from `stdin` (`docker build` semantics): `-f -` is the Dockerfile;
/// the context `-` is a tar (plain or gzip, recognised by its first bytes) to unpack as the
/// context, with `-f` a path inside it, or else a Dockerfile with an empty context.
///
/// Errors: both `-`, an unreadable stdin or tar, `-f` beside a Dockerfile on stdin.
pub(super) fn stage_stdin(args: &BuildArgs, mut stdin: impl Read) -> Result<Staged, UsageError> {
    let dash = Path::new("-");
    let file_dash = args.file.as_deref() == Some(dash);
    if args.context != dash && !file_dash {
        return Ok(Staged {
            _dir: None,
            context: args.context.clone(),
            file: args.file.clone(),
        });
    }
    if args.context == dash && file_dash {
        return Err(usage(
            "--file",
            "the context and the Dockerfile cannot both be read from stdin (-)",
        ));
    }
    let flag = if file_dash { "--file" } else { "CONTEXT" };
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| usage(flag, format!("cannot read stdin: {e}")))?;
    let dir = tempfile::Builder::new()
        .prefix("polyarch-stdin-")
        .tempdir()
        .map_err(|e| usage(flag, format!("cannot make a temporary directory: {e}")))?;
    let write = |path: &Path, body: &[u8]| {
        std::fs::write(path, body).map_err(|e| usage(flag, format!("{}: {e}", path.display())))
    };
    if file_dash {
        let file = dir.path().join("Dockerfile");
        write(&file, &bytes)?;
        return Ok(Staged {
            _dir: Some(dir),
            context: args.context.clone(),
            file: Some(file),
        });
    }
    let context = dir.path().join("context");
    std::fs::create_dir(&context)
        .map_err(|e| usage(flag, format!("{}: {e}", context.display())))?;
    if let Some(media_type) = tar_media_type(&bytes) {
        crate::layer::unpack_layer(bytes.as_slice(), media_type, &context)
            .map_err(|e| usage(flag, format!("the context tar on stdin: {e}")))?;
        let file = args.file.as_ref().map(|f| context.join(f));
        return Ok(Staged {
            _dir: Some(dir),
            context,
            file,
        });
    }
    if args.file.is_some() {
        return Err(usage(
            "--file",
            "stdin holds a Dockerfile (not a tar): leave out -f, or send a context tar",
        ));
    }
    let file = dir.path().join("Dockerfile");
    write(&file, &bytes)?;
    Ok(Staged {
        _dir: Some(dir),
        context,
        file: Some(file),
    })
}

/// The layer media type whose reader unpacks `bytes` when they are a tar: gzip by its magic
/// (RFC 1952 2.3.1), a plain tar by `ustar` at offset 257 (POSIX pax "ustar Interchange
/// Format"); `None` for anything else.
fn tar_media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Some(crate::oci::MEDIA_TYPE_OCI_LAYER_GZIP);
    }
    if bytes.get(257..262) == Some(b"ustar".as_slice()) {
        return Some(crate::oci::MEDIA_TYPE_OCI_LAYER_TAR);
    }
    None
}

/// Named contexts, SSH agents, `RUN` settings and network from buildx's flags, and whether
/// the target platform is implicit (no `--platform`). `--network host` needs
/// `--allow network.host`.
pub(super) fn buildx_inputs(all: &BuildArgs) -> Result<BuildxInputs, UsageError> {
    let args = &all.buildx;
    let default_network = match args.network.as_deref() {
        None => None,
        Some("none") => Some(Network::None),
        Some("host") if !all.allow.contains(&Entitlement::NetworkHost) => {
            return Err(usage(
                "--network",
                "host needs --allow network.host (steps would reach the host's network)",
            ))
        }
        Some("host") => Some(Network::Host),
        Some(_) => Some(Network::Default),
    };
    Ok(BuildxInputs {
        run_settings: run_settings(args)?,
        named_contexts: named_contexts(&args.build_contexts)?,
        ssh: ssh_agents(&args.ssh)?,
        implicit_platform: all.platforms.is_empty(),
        default_network,
    })
}

/// `--add-host`, `--shm-size` and `--ulimit` as the [`RunSettings`] of every `RUN`.
fn run_settings(args: &BuildxArgs) -> Result<RunSettings, UsageError> {
    let mut settings = RunSettings::default();
    for h in &args.add_hosts {
        settings.extra_hosts.push(parse_add_host(h)?);
    }
    if let Some(s) = &args.shm_size {
        settings.shm_size = Some(parse_size(s).ok_or_else(|| {
            usage(
                "--shm-size",
                format!("{s:?}: expected bytes or a number with b, k, m or g (e.g. 128m)"),
            )
        })?);
    }
    for u in &args.ulimits {
        settings.ulimits.push(parse_ulimit(u)?);
    }
    Ok(settings)
}

/// `--build-context NAME=SOURCE` values ([`NamedContext::parse`]); a name given twice is an
/// error.
fn named_contexts(specs: &[String]) -> Result<BTreeMap<String, NamedContext>, UsageError> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (name, value) = spec
            .split_once('=')
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .ok_or_else(|| usage("--build-context", format!("{spec:?}: expected NAME=SOURCE")))?;
        let ctx = NamedContext::parse(value)
            .map_err(|e| usage("--build-context", format!("{name}: {e}")))?;
        if out.insert(name.to_string(), ctx).is_some() {
            return Err(usage("--build-context", format!("{name} is given twice")));
        }
    }
    Ok(out)
}

/// `--ssh` values (buildx `ParseSSH`): `ID` alone is the agent of `$SSH_AUTH_SOCK`, `ID=PATH`
/// the agent listening on the socket PATH. buildx also takes private key files (it runs an
/// agent of its own for them): refused here, naming the fix.
fn ssh_agents(specs: &[String]) -> Result<BTreeMap<String, PathBuf>, UsageError> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = BTreeMap::new();
    for spec in specs {
        let (id, path) = match spec.split_once('=') {
            Some((id, p)) => (id, PathBuf::from(p)),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK").ok_or_else(|| {
                    usage(
                        "--ssh",
                        format!("{spec}: SSH_AUTH_SOCK is not set (start ssh-agent, or give {spec}=SOCKET)"),
                    )
                })?;
                (spec.as_str(), PathBuf::from(sock))
            }
        };
        if id.is_empty() || path.as_os_str().is_empty() || path.to_string_lossy().contains(',') {
            return Err(usage(
                "--ssh",
                format!("{spec:?}: expected ID or ID=SOCKET (one agent socket; key files are not loaded)"),
            ));
        }
        let meta = std::fs::metadata(&path)
            .map_err(|e| usage("--ssh", format!("{id}: {}: {e}", path.display())))?;
        if !meta.file_type().is_socket() {
            return Err(usage(
                "--ssh",
                format!(
                    "{id}: {} is not an agent socket (key files are not loaded: add the key to \
                     ssh-agent with ssh-add and give its socket)",
                    path.display()
                ),
            ));
        }
        if out.insert(id.to_string(), path).is_some() {
            return Err(usage("--ssh", format!("{id} is given twice")));
        }
    }
    Ok(out)
}

/// `NAME:IP` or `NAME=IP` (buildx `toBuildkitExtraHosts`); the address must be an IP address
/// (IPv6 may be in brackets). `host-gateway` needs a Docker daemon and is refused.
fn parse_add_host(spec: &str) -> Result<(String, String), UsageError> {
    let (name, ip) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| usage("--add-host", format!("{spec:?}: expected NAME:IP")))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip == "host-gateway" {
        return Err(usage(
            "--add-host",
            format!("{spec:?}: host-gateway is a Docker daemon's address; give an IP address"),
        ));
    }
    let address: std::net::IpAddr = ip.parse().map_err(|_| {
        usage(
            "--add-host",
            format!("{spec:?}: {ip:?} is not an IP address"),
        )
    })?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
        return Err(usage("--add-host", format!("{spec:?}: invalid host name")));
    }
    Ok((name.to_string(), address.to_string()))
}

/// A size as Docker's `units.RAMInBytes`: a number with an optional `b`, `k`, `m`, `g`, `t`
/// suffix (binary multiples, `kb`/`kib` alike, any case).
fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    let number: f64 = num.parse().ok()?;
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    let bytes = number * (1u64 << shift) as f64;
    (bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `NAME=SOFT[:HARD]` (Docker's `units.ParseUlimit`): a known name, limits as numbers or -1
/// (unlimited), soft not above hard; without `:HARD` both are SOFT.
fn parse_ulimit(spec: &str) -> Result<Ulimit, UsageError> {
    let bad = |why: String| usage("--ulimit", format!("{spec:?}: {why}"));
    let (name, values) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected NAME=SOFT[:HARD]".into()))?;
    if !Ulimit::NAMES.contains(&name) {
        return Err(bad(format!(
            "unknown limit {name:?} (known: {})",
            Ulimit::NAMES.join(", ")
        )));
    }
    let number = |v: &str| -> Result<u64, UsageError> {
        match v {
            "-1" => Ok(u64::MAX),
            _ => v
                .parse::<u64>()
                .map_err(|_| bad(format!("{v:?} is not a number or -1"))),
        }
    };
    let (soft, hard) = match values.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => (number(values)?, number(values)?),
    };
    if soft > hard {
        return Err(bad("the soft limit is above the hard limit".into()));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_specs() {
        assert_eq!(
            parse_add_host("db:10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_add_host("db=10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_add_host("v6:[::1]").unwrap(),
            ("v6".into(), "::1".into())
        );
        assert_eq!(
            parse_add_host("v6=fe80::1").unwrap(),
            ("v6".into(), "fe80::1".into())
        );
        assert!(parse_add_host("db").is_err());
        assert!(parse_add_host("db:nothost").is_err());
        assert!(parse_add_host("db:host-gateway").is_err());
        assert!(parse_add_host(":1.2.3.4").is_err());
    }

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(parse_size("128m"), Some(128 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64kb"), Some(64 << 10));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("m"), None);
    }

    #[test]
    fn ulimit_specs() {
        let u = parse_ulimit("nofile=512:1024").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 512, 1024));
        let u = parse_ulimit("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (u64::MAX, u64::MAX));
        assert!(parse_ulimit("nofile=2048:1024").is_err());
        assert!(parse_ulimit("files=1").is_err());
        assert!(parse_ulimit("nofile").is_err());
        assert!(parse_ulimit("nofile=lots").is_err());
    }

    #[test]
    fn tar_detection() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(tar_media_type(&tar).is_some());
        assert!(tar_media_type(&[0x1f, 0x8b, 8]).is_some());
        assert!(tar_media_type(b"FROM busybox\n").is_none());
    }
}
