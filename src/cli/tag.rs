//! `polyarch tag SRC DST...`: flags and output.
//!
//! Level 4 (edge). Moving the tags is [`crate::retag`]'s.

use super::*;

/// Flags of `polyarch tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image or index already pushed: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.
    #[arg(value_name = "SRC")]
    pub source: String,
    /// New tags: a tag name (`1.2`) or REGISTRY/REPO:TAG of the same repository.
    #[arg(value_name = "DST", required = true)]
    pub destinations: Vec<String>,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "POLYARCH_PROGRESS")]
    pub progress: ProgressMode,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Tags the source under every destination; prints the digest and each tag on stdout.
pub(super) fn run_tag(global: &GlobalArgs, args: &TagArgs) -> Result<(), Failure> {
    let src: Reference = args
        .source
        .parse()
        .map_err(|e: crate::registry::RegistryError| usage("SRC", e.to_string()))?;
    let registry = OciRegistry::new(args.registry.resolve(Some(&src.registry))?)?;
    let progress = render::Progress::start(args.progress, global.verbose, "Tagging")?;
    let sink: std::sync::Arc<dyn Sink> = progress.clone();
    registry.report_retries_to(sink);
    let tagged = runtime().and_then(|rt| {
        let tagged = rt.block_on(crate::retag::tag(
            &registry,
            &src,
            &args.destinations,
            progress.as_ref(),
        ));
        report_requests(&registry, progress.as_ref());
        Ok(tagged?)
    });
    let (digest, result) = match tagged {
        Ok(d) => (Some(d), Ok(())),
        Err(f) => (None, Err(f)),
    };
    progress.finish(result)?;
    if let Some(d) = digest {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{d}");
    }
    Ok(())
}
