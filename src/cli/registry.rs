//! Registry flags shared by `build`, `merge` and `inspect` (one flattened clap struct), and
//! their resolution into [`RegistryOptions`].
//!
//! Level 4 (edge). Reads standard input for `--password-stdin` and nothing else: makes no
//! registry request.

use std::io::Read;
use std::str::FromStr;
use std::time::Duration;

use super::*;
use crate::registry::{CredentialSources, Credentials};

/// A flag value that must never be printed (`Debug` shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// Parses a duration: `500ms`, `2s`, `1m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m)"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Parses a size: bytes, or with a suffix `KiB`, `MiB`, `GiB` (also `K`, `M`, `G`, `KB`,
/// `MB`, `GB`, all powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 32MiB, 4M, 1048576)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("{s:?} is not a size (e.g. 32MiB, 4M, 1048576)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// The registry flags as clap parses them (their doc comments are the help); [`RegistryArgs`]
/// adds where `--creds` came from.
#[derive(Debug, Clone, Args)]
struct RegistryFlags {
    /// Credentials for the registry written to (inspect: read from), USER:PASSWORD, or USER
    /// with --password-stdin. Other registries use docker/podman login files and helpers.
    #[arg(
        long,
        value_name = "USER[:PASSWORD]",
        env = "POLYARCH_CREDS",
        hide_env_values = true
    )]
    creds: Option<Secret>,
    /// Read the password for --creds USER from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Also trust the CA certificates in this PEM file, for every registry. Repeatable.
    #[arg(long = "ca-cert", value_name = "FILE")]
    ca_certs: Vec<PathBuf>,
    /// Docker-style certificates directory: DIR/HOST[:PORT]/*.crt are trusted for that
    /// registry (default: /etc/docker/certs.d and /etc/containers/certs.d).
    #[arg(long, value_name = "DIR", env = "POLYARCH_CERTS_DIR")]
    certs_dir: Option<PathBuf>,
    /// Allow plain HTTP or an unverified certificate for this registry host[:port]; loopback
    /// registries may always use plain HTTP. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
    /// Retries of each registry request that failed in a retryable way (connect errors, resets,
    /// timeouts, 408, 429, 5xx); an interrupted chunked upload resumes where the registry
    /// stopped, which counts as a retry of that chunk.
    #[arg(long, default_value_t = 8, value_name = "N", env = "POLYARCH_RETRIES")]
    retries: u32,
    /// First delay between retries (doubled each time, with jitter, up to 30s; at least what
    /// a Retry-After header asks).
    #[arg(long, default_value = "500ms", value_name = "DURATION", value_parser = parse_duration, env = "POLYARCH_RETRY_DELAY")]
    retry_delay: Duration,
    /// The longest one registry request may take until its answer starts (its body sent
    /// included); then it is a timeout, retried.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration, env = "POLYARCH_REQUEST_TIMEOUT")]
    request_timeout: Duration,
    /// No registry request is retried later than this after the command started: past it, the
    /// next failure ends the command (exit 3).
    #[arg(long, default_value = "30m", value_name = "DURATION", value_parser = parse_duration, env = "POLYARCH_REGISTRY_DEADLINE")]
    registry_deadline: Duration,
    /// Size of the chunks blobs are uploaded in (and the most of a layer written but not yet
    /// sent), e.g. 32MiB, 4MiB, 1048576.
    #[arg(long, default_value = "32MiB", value_name = "SIZE", value_parser = parse_size, env = "POLYARCH_CHUNK_SIZE")]
    chunk_size: u64,
    /// Registry operations in flight at once per registry.
    #[arg(long, default_value_t = 4, value_name = "N")]
    jobs: usize,
}

/// How polyarch talks to registries: credentials, TLS, retries, concurrency (the flags of
/// [`RegistryFlags`], plus whether `--creds` came from `POLYARCH_CREDS`).
#[derive(Debug, Clone)]
pub struct RegistryArgs {
    /// `--creds` / `POLYARCH_CREDS`: USER:PASSWORD, or USER with `--password-stdin`.
    pub creds: Option<Secret>,
    /// True when `creds` came from the `POLYARCH_CREDS` environment variable rather than the
    /// command line: then a command that writes to no registry ignores it instead of refusing.
    pub creds_from_env: bool,
    /// `--password-stdin`.
    pub password_stdin: bool,
    /// `--ca-cert` files.
    pub ca_certs: Vec<PathBuf>,
    /// `--certs-dir`.
    pub certs_dir: Option<PathBuf>,
    /// `--insecure-registry` hosts.
    pub insecure_registries: Vec<String>,
    /// `--retries`.
    pub retries: u32,
    /// `--retry-delay`.
    pub retry_delay: Duration,
    /// `--request-timeout`.
    pub request_timeout: Duration,
    /// `--registry-deadline`, from the command's start.
    pub registry_deadline: Duration,
    /// `--chunk-size`, bytes.
    pub chunk_size: u64,
    /// `--jobs`.
    pub jobs: usize,
}

impl clap::FromArgMatches for RegistryArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let f = RegistryFlags::from_arg_matches(m)?;
        Ok(RegistryArgs {
            creds: f.creds,
            creds_from_env: m.value_source("creds") == Some(clap::parser::ValueSource::EnvVariable),
            password_stdin: f.password_stdin,
            ca_certs: f.ca_certs,
            certs_dir: f.certs_dir,
            insecure_registries: f.insecure_registries,
            retries: f.retries,
            retry_delay: f.retry_delay,
            request_timeout: f.request_timeout,
            registry_deadline: f.registry_deadline,
            chunk_size: f.chunk_size,
            jobs: f.jobs,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = RegistryArgs::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for RegistryArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RegistryFlags::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RegistryFlags::augment_args_for_update(cmd)
    }
}

impl RegistryArgs {
    /// The options for the registry client; `--creds` applies to `destination` (the registry
    /// written to, or read by inspect). Reads standard input for `--password-stdin`.
    pub fn resolve(&self, destination: Option<&str>) -> Result<RegistryOptions, UsageError> {
        if self.jobs == 0 {
            return Err(usage("--jobs", "must be at least 1"));
        }
        if self.chunk_size < 1 << 20 {
            return Err(usage("--chunk-size", "must be at least 1MiB"));
        }
        let mut auth = BTreeMap::new();
        // A CI job may export POLYARCH_CREDS for every command; one that writes to no registry
        // (a local build) ignores it. An explicit --creds that cannot apply is still refused.
        let creds = if self.creds_from_env && destination.is_none() && !self.password_stdin {
            if self.creds.is_some() {
                tracing::debug!(
                    "POLYARCH_CREDS is set but this command writes to no registry: ignored"
                );
            }
            &None
        } else {
            &self.creds
        };
        match (creds, self.password_stdin) {
            (None, true) => {
                return Err(usage(
                    "--password-stdin",
                    "needs --creds USER to go with it",
                ))
            }
            (None, false) => {}
            (Some(Secret(c)), stdin) => {
                let (user, password) =
                    match (c.split_once(':'), stdin) {
                        (Some(_), true) => return Err(usage(
                            "--creds",
                            "give only USER with --password-stdin (the password comes from stdin)",
                        )),
                        (Some((u, p)), false) => (u.to_string(), p.to_string()),
                        (None, true) => {
                            let mut p = String::new();
                            std::io::stdin()
                                .read_to_string(&mut p)
                                .map_err(|e| usage("--password-stdin", e.to_string()))?;
                            (c.clone(), p.trim_end_matches(['\n', '\r']).to_string())
                        }
                        (None, false) => {
                            return Err(usage(
                                "--creds",
                                "expected USER:PASSWORD (or USER with --password-stdin)",
                            ))
                        }
                    };
                if user.is_empty() || password.is_empty() {
                    return Err(usage(
                        "--creds",
                        "the user name and password must not be empty",
                    ));
                }
                let Some(registry) = destination else {
                    return Err(usage(
                        "--creds",
                        "applies to the registry written to, and this command writes to none; \
                         log in with docker or podman for registries that are only read",
                    ));
                };
                auth.insert(
                    registry.to_string(),
                    Credentials {
                        username: user,
                        password,
                    },
                );
            }
        }
        Ok(self.options(auth))
    }

    /// The client options with `auth` as the explicit credentials.
    fn options(&self, auth: BTreeMap<String, Credentials>) -> RegistryOptions {
        let defaults = RegistryOptions::default();
        RegistryOptions {
            insecure: self.insecure_registries.clone(),
            retries: self.retries,
            auth,
            credential_sources: CredentialSources::from_env(),
            ca_certs: self.ca_certs.clone(),
            certs_dirs: match &self.certs_dir {
                Some(d) => vec![d.clone()],
                None => defaults.certs_dirs.clone(),
            },
            jobs: self.jobs,
            min_backoff: self.retry_delay,
            max_backoff: defaults.max_backoff.max(self.retry_delay),
            deadline: Some(std::time::Instant::now() + self.registry_deadline),
            request_timeout: self.request_timeout,
            chunk_size: self.chunk_size,
            ..defaults
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_size("32MiB").unwrap(), 32 << 20);
        assert_eq!(parse_size("4M").unwrap(), 4 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn creds_go_to_the_destination_and_never_show() {
        let args = RegistryArgs {
            creds: Some(Secret("me:pa:ss".into())),
            creds_from_env: false,
            password_stdin: false,
            ca_certs: vec![],
            certs_dir: None,
            insecure_registries: vec![],
            retries: 4,
            retry_delay: Duration::from_millis(500),
            request_timeout: Duration::from_secs(300),
            registry_deadline: Duration::from_secs(1800),
            chunk_size: 32 << 20,
            jobs: 4,
        };
        assert!(!format!("{args:?}").contains("pa:ss"));
        let o = args.resolve(Some("reg:5000")).unwrap();
        assert_eq!(o.auth["reg:5000"].password, "pa:ss");
        let err = args.resolve(None).unwrap_err();
        assert!(!err.to_string().contains("pa:ss"));
        let no_password = RegistryArgs {
            creds: Some(Secret("me".into())),
            ..args.clone()
        };
        assert!(no_password.resolve(Some("r")).is_err());
        // Regression (user review): POLYARCH_CREDS exported for a local build (no destination)
        // refused the build; from the environment it is ignored, as a flag it is still refused.
        let from_env = RegistryArgs {
            creds_from_env: true,
            ..args.clone()
        };
        assert!(from_env.resolve(None).unwrap().auth.is_empty());
        assert_eq!(
            from_env.resolve(Some("r")).unwrap().auth["r"].username,
            "me"
        );
        // From the command line, the source is the flag.
        let m = RegistryArgs::augment_args(clap::Command::new("t"))
            .try_get_matches_from(["t", "--creds", "a:b"])
            .unwrap();
        let parsed = <RegistryArgs as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert!(parsed.creds.is_some() && !parsed.creds_from_env);
        let stdin_alone = RegistryArgs {
            creds: None,
            password_stdin: true,
            ..args
        };
        assert!(stdin_alone.resolve(Some("r")).is_err());
    }
}
