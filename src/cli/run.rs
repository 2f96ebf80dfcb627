//! `polyarch run [--platform P] IMAGE [ARG...]`: flags, and the exit status passed through.
//!
//! Level 4 (edge). Resolves flags and picks the runtime, registry client, store and executor;
//! pulling and running is [`crate::run`]'s.

use super::*;
use crate::image::Location;
use crate::run::{self, RunRequest};

/// Flags of `polyarch run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The platform to run (an index's entry for it), os/arch[/variant]; default this host's.
    /// A foreign one runs through its qemu-user binfmt_misc handler, as RUN steps do.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Run ARGs as the whole command, without the image's ENTRYPOINT.
    #[arg(long)]
    pub no_entrypoint: bool,
    /// The image: REGISTRY/REPO[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF] or a local
    /// layout path.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The command's arguments, after the ENTRYPOINT (default: the image's CMD).
    #[arg(
        value_name = "ARG",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs the image; `Ok(status)` is the command's exit status, to exit with.
pub(super) fn run_image(global: &GlobalArgs, args: &RunArgs) -> Result<i32, Failure> {
    let location = Location::parse(&args.image)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(|e| usage("--platform", e.to_string()))?,
        None => Platform::host(),
    };
    let host = match &location {
        Location::Registry(r) => Some(r.registry.clone()),
        _ => None,
    };
    let registry = OciRegistry::new(args.registry.resolve(host.as_deref())?)?;
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Store::open(&state)?;
    let executor = SandboxExecutor::current_exe()?;
    let req = RunRequest {
        location,
        platform,
        args: args.args.clone(),
        replace_entrypoint: args.no_entrypoint,
        binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
    };
    Ok(runtime()?.block_on(run::run(&req, &registry, &store, &executor))?)
}
