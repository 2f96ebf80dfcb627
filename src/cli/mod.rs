//! The command line: clap structs close to the flags, functions that resolve them into
//! validated requests ([`crate::coordinator::BuildRequest`], [`crate::merge::MergeRequest`]),
//! the tokio runtime, progress renderers and exit codes.
//!
//! Level 4 (edge). Errors are printed as `error: ...`, their causes as `  caused by: ...`, and
//! advice on a separate `hint: ...` line; the exit code comes from [`Classify`].

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::coordinator::{self, Deps};
use crate::executor::SandboxExecutor;
use crate::exit::{Classify, ExitCode};
use crate::platform::Platform;
use crate::progress::{Event, Sink};
use crate::registry::{OciRegistry, Reference, RegistryOptions};
use crate::store::Store;

mod build;
mod docs;
mod inspect;
mod merge;
mod node;
mod qemu;
mod registry;
mod render;
mod run;
mod storage;
mod tag;
mod template;
mod worker;

use build::run_build;
pub use build::{resolve_build, BuildArgs};
pub use inspect::InspectArgs;
pub use merge::MergeArgs;
pub use node::{NodeAction, NodeArgs, NodeOpts};
pub use registry::{parse_duration, RegistryArgs, Secret};
pub use render::ProgressMode;
pub use run::RunArgs;
pub use storage::{DuArgs, PruneArgs};
pub use tag::TagArgs;
pub use worker::WorkerArgs;

/// polyarch: build one container image per platform from a Dockerfile and publish them under
/// one tag as an OCI image index.
#[derive(Debug, Parser)]
#[command(name = "polyarch", version, about, long_about = None, after_help = docs::EXIT_CODES)]
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
    Build(Box<BuildArgs>),
    /// Show, install and remove the qemu-user emulators (binfmt_misc handlers) that run foreign
    /// platforms' programs.
    Qemu(qemu::QemuArgs),
    /// Stitch images already pushed (e.g. by a CI matrix) into one index and push it to tags.
    Merge(MergeArgs),
    /// Show what an image (in a registry or an OCI layout) is: index entries per platform, or a
    /// manifest's config, layers and history.
    Inspect(InspectArgs),
    /// Run an image (from a registry or an OCI layout) in the sandbox RUN steps use, emulated
    /// where needed; stdin, stdout, stderr and the exit status are the command's.
    Run(RunArgs),
    /// Add tags to an image or index already pushed, by manifest only (no blob moves).
    Tag(TagArgs),
    /// List and check build nodes: machines reached over SSH that build some platforms.
    Node(NodeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completion(docs::CompletionArgs),
    /// Print polyarch's man page (roff) on stdout.
    Man,
    /// Show what the state directory holds, by kind (blobs, unpacked layers, step cache,
    /// cache mounts, contexts), and what `prune --all` could free now.
    Du(DuArgs),
    /// Remove what the state directory holds, least recently used first, never what a running
    /// build uses.
    Prune(PruneArgs),
    /// The node's end of a build node session (started by `polyarch build` over SSH; speaks
    /// the worker protocol on stdin/stdout).
    #[command(hide = true)]
    Worker(WorkerArgs),
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

/// Tells progress how many registry requests `registry` sent and how many were retries.
fn report_requests(registry: &OciRegistry, sink: &dyn Sink) {
    let stats = registry.stats();
    if stats.requests > 0 {
        sink.emit(Event::RegistryRequests {
            requests: stats.requests,
            retries: stats.retries,
        });
    }
}

/// A multi-threaded tokio runtime for a command (the library does not pick one).
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            message: format!("cannot start the async runtime: {e}"),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })
}

/// Diagnostics (`-v`) on stderr: as text, or with `--progress json` as `diagnostic` events.
fn init_tracing(verbose: u8, json: bool) {
    // Without -v nothing but progress and errors reaches stderr: what a user must know is a
    // progress warning or an error, never a diagnostic line.
    let level = match verbose {
        0 => "off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // The TLS verifier logs each failed verification at ERROR; polyarch reports it itself.
    let filter = tracing_subscriber::EnvFilter::try_from_env("POLYARCH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},rustls_platform_verifier=off"))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder
            .with_writer(render::DiagnosticWriter)
            .with_ansi(false)
            .without_time()
            .try_init()
    } else {
        builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// Entry point of the binary; returns the process exit code.
///
/// `polyarch __sandbox` (hidden) is dispatched first, before any thread or runtime exists: it is
/// the re-executed helper that runs one step inside new namespaces; so is `polyarch __network`,
/// which holds a build's default network namespace with pasta attached.
pub fn main() -> i32 {
    if std::env::args_os().nth(1).is_some_and(|a| a == "__sandbox") {
        return crate::executor::sandbox_main();
    }
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == crate::executor::NETWORK_SUBCOMMAND)
    {
        return crate::executor::network_main();
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
    let json = match &cli.command {
        Command::Build(a) => a.progress == ProgressMode::Json,
        Command::Merge(a) => a.progress == ProgressMode::Json,
        Command::Tag(a) => a.progress == ProgressMode::Json,
        _ => false,
    };
    init_tracing(cli.global.verbose, json);
    let result = match &cli.command {
        // The command's own exit status is polyarch's.
        Command::Run(args) => {
            return run::run_image(&cli.global, args).unwrap_or_else(|f| report_failure(&f))
        }
        Command::Build(args) => run_build(&cli.global, args),
        Command::Qemu(args) => qemu::run_qemu(&cli.global, args),
        Command::Merge(args) => merge::run_merge(args),
        Command::Inspect(args) => inspect::run_inspect(&cli.global, args),
        Command::Node(args) => node::run_node(&cli.global, args),
        Command::Du(args) => storage::run_du(&cli.global, args),
        Command::Prune(args) => storage::run_prune(&cli.global, args),
        Command::Worker(args) => worker::run_worker(&cli.global, args),
        Command::Tag(args) => tag::run_tag(&cli.global, args),
        Command::Completion(args) => docs::completion(args),
        Command::Man => docs::man(),
    };
    match result {
        Ok(()) => 0,
        // `--progress json` wrote it as an event: the stream holds nothing but JSON.
        Err(f) if render::error_shown() => f.code.code(),
        Err(f) => report_failure(&f),
    }
}

/// Prints a failure (`error:`, `caused by:`, `hint:`) and returns its exit code.
fn report_failure(f: &Failure) -> i32 {
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
