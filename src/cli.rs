//! The command line: clap structs close to the flags, one function that resolves them into a
//! validated [`BuildRequest`], the tokio runtime, progress renderers and exit codes.
//!
//! Level 4 (edge). Errors are printed as `error: ...`, their causes as `  caused by: ...`, and
//! advice on a separate `hint: ...` line; the exit code comes from [`Classify`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::coordinator::{self, BuildOutcome, BuildRequest, Deps, Output};
use crate::executor::SandboxExecutor;
use crate::exit::{Classify, ExitCode};
use crate::platform::Platform;
use crate::progress::{Event, Sink, Stream};
use crate::registry::{OciRegistry, Reference, RegistryOptions};
use crate::store::Store;

/// polyarch: build one container image per platform from a Dockerfile and publish them under
/// one tag as an OCI image index.
#[derive(Debug, Parser)]
#[command(name = "polyarch", version, about, long_about = None)]
pub struct Cli {
    /// Options for every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for polyarch's local store (blobs, unpacked layers, temporary step dirs).
    /// Default: /var/lib/polyarch as root, else $XDG_DATA_HOME/polyarch or ~/.local/share/polyarch.
    #[arg(long, global = true, env = "POLYARCH_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log diagnostics (tracing) to stderr: -v info, -vv debug, -vvv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// polyarch's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image for each target platform and publish them as one OCI image index.
    Build(BuildArgs),
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// `plain` (bars are not drawn yet; a TTY gets plain lines too).
    Auto,
    /// One human-readable line per event on stderr.
    Plain,
    /// One JSON object per event on stderr.
    Json,
}

/// Flags of `polyarch build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
    /// Target platforms, os/arch[/variant], repeatable and comma-separated (default: this
    /// host's platform; `local` also means it).
    #[arg(long = "platform", value_name = "PLATFORMS", env = "POLYARCH_PLATFORM")]
    pub platforms: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Name and tag of the image index, REGISTRY/REPO[:TAG]; repeatable.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// A build-time variable, KEY=VALUE (KEY alone takes the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Build this stage (default: the last one).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Push every image by digest, then the index to each tag.
    #[arg(long)]
    pub push: bool,
    /// Write the result locally: `type=oci,dest=DIR` (an OCI image layout). Default when
    /// --push is not given: type=oci,dest=./polyarch-out.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Write the build result (index digest, per-platform digests) as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub metadata_file: Option<PathBuf>,
    /// Progress output on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "POLYARCH_PROGRESS")]
    pub progress: ProgressMode,
    /// Speak plain HTTP (or unverified HTTPS) to this registry host[:port]; loopback
    /// registries always use plain HTTP. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Retries for each registry request that fails in a retryable way (5xx, 429, resets).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub retries: u32,
}

/// A flag value that does not make sense, with the flag named.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct UsageError {
    /// The flag (e.g. `--build-arg`).
    pub flag: String,
    /// What is wrong.
    pub message: String,
}

impl Classify for UsageError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::BadInput
    }
}

fn usage(flag: &str, message: impl Into<String>) -> UsageError {
    UsageError {
        flag: flag.into(),
        message: message.into(),
    }
}

/// The default state directory: /var/lib/polyarch as root, otherwise under the user's data dir.
pub fn default_state_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/polyarch");
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("polyarch");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/polyarch")
}

/// Resolves `polyarch build` flags into a [`BuildRequest`] (flags, then settings: uv's habit).
/// Errors name the flag and the value.
pub fn resolve_build(args: &BuildArgs) -> Result<BuildRequest, UsageError> {
    let platforms = if args.platforms.is_empty() {
        vec![Platform::host()]
    } else {
        Platform::parse_list(args.platforms.iter().map(String::as_str))
            .map_err(|e| usage("--platform", e.to_string()))?
    };
    if platforms.is_empty() {
        return Err(usage("--platform", "no platform given"));
    }
    let context_dir = std::fs::canonicalize(&args.context).map_err(|e| {
        usage(
            "CONTEXT",
            format!("build context {}: {e}", args.context.display()),
        )
    })?;
    if !context_dir.is_dir() {
        return Err(usage(
            "CONTEXT",
            format!("{} is not a directory", args.context.display()),
        ));
    }
    let dockerfile = match &args.file {
        Some(f) => f.clone(),
        None => context_dir.join("Dockerfile"),
    };
    if !dockerfile.is_file() {
        return Err(usage(
            "--file",
            format!(
                "no Dockerfile at {} (give one with -f/--file)",
                dockerfile.display()
            ),
        ));
    }
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                build_args.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(usage("--build-arg", format!("{a:?}: empty name"))),
            None => {
                // Docker: `--build-arg NAME` takes the value from the environment, if set.
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let mut tags = Vec::new();
    for t in &args.tags {
        let r: Reference = t
            .parse()
            .map_err(|e: crate::registry::RegistryError| usage("--tag", e.to_string()))?;
        if r.digest.is_some() {
            return Err(usage(
                "--tag",
                format!("{t}: a tag cannot name a digest; give REPO[:TAG]"),
            ));
        }
        tags.push(r);
    }
    if args.push && tags.is_empty() {
        return Err(usage("--push", "needs at least one -t/--tag to push to"));
    }
    if let Some(first) = tags.first() {
        if let Some(other) = tags.iter().find(|t| t.registry != first.registry) {
            return Err(usage(
                "--tag",
                format!(
                    "tags on two registries ({} and {}) are not supported in one build",
                    first.registry, other.registry
                ),
            ));
        }
        if let Some(other) = tags.iter().find(|t| t.repository != first.repository) {
            return Err(usage(
                "--tag",
                format!(
                    "tags in two repositories ({} and {}) are not supported in one build",
                    first.repo_string(),
                    other.repo_string()
                ),
            ));
        }
    }
    let ref_name = tags
        .first()
        .and_then(|t| t.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let mut outputs = Vec::new();
    for spec in &args.outputs {
        outputs.push(parse_output(spec, &ref_name)?);
    }
    if outputs.is_empty() && !args.push {
        outputs.push(Output::OciLayout {
            dest: PathBuf::from("polyarch-out"),
            ref_name: ref_name.clone(),
        });
    }
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(v.parse::<i64>().map_err(|_| {
            usage(
                "SOURCE_DATE_EPOCH",
                format!("{v:?} is not a number of seconds"),
            )
        })?),
        _ => None,
    };
    Ok(BuildRequest {
        context_dir,
        dockerfile,
        platforms,
        build_platform: Platform::host(),
        build_args,
        target: args.target.clone(),
        tags,
        push: args.push,
        outputs,
        source_date_epoch,
        binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
    })
}

/// Parses `type=oci,dest=DIR[,name=REF]` (buildx's `--output` syntax).
fn parse_output(spec: &str, default_ref: &str) -> Result<Output, UsageError> {
    let mut kind = None;
    let mut dest = None;
    let mut name = None;
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| usage("--output", format!("{spec:?}: expected key=value pairs")))?;
        match k.trim() {
            "type" => kind = Some(v.trim().to_string()),
            "dest" => dest = Some(PathBuf::from(v.trim())),
            "name" => name = Some(v.trim().to_string()),
            other => {
                return Err(usage(
                    "--output",
                    format!("{spec:?}: unknown key {other:?} (known: type, dest, name)"),
                ))
            }
        }
    }
    match kind.as_deref() {
        Some("oci") => {}
        Some(other) => {
            return Err(usage(
                "--output",
                format!("type={other} is not supported (supported: type=oci)"),
            ))
        }
        None => return Err(usage("--output", format!("{spec:?}: missing type=oci"))),
    }
    let dest = dest.ok_or_else(|| usage("--output", format!("{spec:?}: missing dest=DIR")))?;
    Ok(Output::OciLayout {
        dest,
        ref_name: name.unwrap_or_else(|| default_ref.to_string()),
    })
}

/// Renders progress events as plain lines or JSON lines on stderr.
struct Renderer {
    mode: ProgressMode,
    out: Mutex<std::io::Stderr>,
}

impl Sink for Renderer {
    fn emit(&self, event: Event) {
        let line = match self.mode {
            ProgressMode::Json => serde_json::to_string(&event).unwrap_or_default(),
            ProgressMode::Plain | ProgressMode::Auto => match plain_line(&event) {
                Some(l) => l,
                None => return,
            },
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn plain_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::PlatformPlanned { platform, runs } => format!("[{platform}] runs {runs}"),
        Event::BaseResolved {
            platform,
            reference,
            digest,
        } => match digest {
            Some(d) => format!("[{platform}] base {reference} -> {d}"),
            None => format!("[{platform}] base {reference}"),
        },
        Event::StepStarted {
            platform,
            step,
            total,
            location,
            text,
        } => format!("[{platform}] #{step}/{total} {location}: {text}"),
        Event::Output {
            platform,
            step,
            stream,
            line,
        } => {
            let s = if *stream == Stream::Stderr { "!" } else { "|" };
            format!("[{platform}] #{step} {s} {line}")
        }
        Event::StepFinished {
            platform,
            step,
            millis,
            layer,
        } => match layer {
            Some(l) => format!("[{platform}] #{step} done in {millis} ms, layer {l}"),
            None => format!("[{platform}] #{step} done in {millis} ms"),
        },
        Event::BlobPushed {
            platform,
            digest,
            size,
            existed,
        } => {
            if *existed {
                format!("[{platform}] blob {digest} already present")
            } else {
                format!("[{platform}] pushed blob {digest} ({size} bytes)")
            }
        }
        Event::PlatformDone {
            platform, digest, ..
        } => format!("[{platform}] image {digest}"),
        Event::IndexPushed { tag, digest } => format!("pushed index {digest} to {tag}"),
        Event::LayoutWritten {
            dest,
            ref_name,
            digest,
        } => format!("wrote OCI layout {dest} ({ref_name} -> {digest})"),
        Event::Warning { message } => format!("warning: {message}"),
    })
}

/// The metadata file: the keys CI users parse from buildx (`containerimage.digest`, ...) plus
/// the per-platform manifests.
fn metadata_json(outcome: &BuildOutcome, req: &BuildRequest) -> serde_json::Value {
    serde_json::json!({
        "containerimage.digest": outcome.index.digest.to_string(),
        "containerimage.descriptor": outcome.index.descriptor(),
        "image.name": req.tags.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
        "pushed": outcome.pushed_tags,
        "platforms": outcome.images.iter().map(|i| serde_json::json!({
            "platform": i.platform.to_string(),
            "digest": i.manifest.digest.to_string(),
            "size": i.manifest.size,
            "mediaType": i.manifest.media_type,
            "config": i.config.to_string(),
        })).collect::<Vec<_>>(),
        "warnings": outcome.warnings,
    })
}

/// A failure of any command, boxed with its exit code and hint.
struct Failure {
    message: String,
    causes: Vec<String>,
    hint: Option<String>,
    code: ExitCode,
}

impl<E: Classify + std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        let mut causes = Vec::new();
        let mut src = e.source();
        let message = e.to_string();
        while let Some(s) = src {
            let t = s.to_string();
            if !message.contains(&t) {
                causes.push(t);
            }
            src = s.source();
        }
        Failure {
            message,
            causes,
            hint: e.hint(),
            code: e.exit_code(),
        }
    }
}

fn run_build(global: &GlobalArgs, args: &BuildArgs) -> Result<(), Failure> {
    let req = resolve_build(args)?;
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Store::open(&state)?;
    let registry = OciRegistry::new(RegistryOptions {
        insecure: args.insecure_registries.clone(),
        retries: args.retries,
        ..RegistryOptions::default()
    })?;
    let executor = SandboxExecutor::current_exe()?;
    let sink: Arc<dyn Sink> = Arc::new(Renderer {
        mode: args.progress,
        out: Mutex::new(std::io::stderr()),
    });
    let deps = Deps {
        registry,
        executor,
        store,
        sink,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            message: format!("cannot start the async runtime: {e}"),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })?;
    let outcome = rt.block_on(coordinator::build(&req, &deps))?;
    if let Some(path) = &args.metadata_file {
        let body = serde_json::to_vec_pretty(&metadata_json(&outcome, &req)).unwrap_or_default();
        write_file_atomic(path, &body).map_err(|e| Failure {
            message: format!("cannot write metadata file {}: {e}", path.display()),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "index {}", outcome.index.digest);
    for t in &outcome.pushed_tags {
        let _ = writeln!(out, "  pushed to {t}");
    }
    for i in &outcome.images {
        let _ = writeln!(
            out,
            "  {:<16} {}",
            i.platform.to_string(),
            i.manifest.digest
        );
    }
    Ok(())
}

fn write_file_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(body)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("POLYARCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Entry point of the binary; returns the process exit code.
///
/// `polyarch __sandbox` (hidden) is dispatched first, before any thread or runtime exists: it is
/// the re-executed helper that runs one step inside new namespaces.
pub fn main() -> i32 {
    if std::env::args_os().nth(1).is_some_and(|a| a == "__sandbox") {
        return crate::executor::sandbox_main();
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::BadInput.code()
            } else {
                0
            };
        }
    };
    init_tracing(cli.global.verbose);
    let result = match &cli.command {
        Command::Build(args) => run_build(&cli.global, args),
    };
    match result {
        Ok(()) => 0,
        Err(f) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {}", f.message);
            for c in &f.causes {
                let _ = writeln!(err, "  caused by: {c}");
            }
            if let Some(h) = &f.hint {
                let _ = writeln!(err, "hint: {h}");
            }
            f.code.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_spec_parsing() {
        assert_eq!(
            parse_output("type=oci,dest=out", "v1").unwrap(),
            Output::OciLayout {
                dest: "out".into(),
                ref_name: "v1".into()
            }
        );
        assert!(parse_output("type=docker,dest=x", "v1").is_err());
        assert!(parse_output("type=oci", "v1").is_err());
        assert!(parse_output("dest=x", "v1").is_err());
        assert!(parse_output("type=oci,dest=x,color=red", "v1").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
