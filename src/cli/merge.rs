//! `polyarch merge`: flags, their resolution into a [`MergeRequest`], and the run.
//!
//! Level 4 (edge). The stitching and pushing are [`crate::merge`]'s, not done here.

use std::time::Duration;

use super::runtime;
use super::*;
use crate::index::IndexFormat;
use crate::merge::{self, MergeRequest};

/// The document `polyarch merge` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// An OCI image index.
    Oci,
    /// A Docker manifest list (no annotations, no attestations).
    Docker,
}

/// Flags of `polyarch merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Where the index goes, REGISTRY/REPO[:TAG]; repeatable.
    #[arg(short = 't', long = "tag", value_name = "REF", required = true)]
    pub tags: Vec<String>,
    /// What to merge, in order: REPO@DIGEST, REPO:TAG, @FILE (a --metadata-file written by
    /// `polyarch build --push-by-digest`, or by buildx) or @DIR (every *.json in it, by name).
    /// Indexes are flattened into their entries.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The document written.
    #[arg(long, value_enum, default_value_t = Format::Oci)]
    pub format: Format,
    /// Only these platforms, comma-separated or repeated (buildx's spelling; `--platforms` is
    /// an alias): images of other platforms and the attestation manifests about them are left
    /// out, and each one listed must be there, else nothing is pushed (exit 2). Entries keep
    /// the order of the sources.
    #[arg(
        long = "platform",
        visible_alias = "platforms",
        value_name = "PLATFORMS",
        value_delimiter = ','
    )]
    pub platforms: Vec<String>,
    /// An annotation: index:KEY=VALUE (or KEY=VALUE) on the index,
    /// manifest-descriptor[PLATFORM]:KEY=VALUE on that platform's entry (no [PLATFORM]: on
    /// every image entry). Repeatable. Not with --format docker.
    #[arg(long = "annotation", value_name = "SPEC")]
    pub annotations: Vec<String>,
    /// When two sources have an image for the same platform, the later one wins (else that is
    /// an error).
    #[arg(long)]
    pub replace: bool,
    /// Leave attestation manifests (unknown/unknown entries) out.
    #[arg(long)]
    pub drop_attestations: bool,
    /// Start from what the first tag holds now, and add the sources to it.
    #[arg(long)]
    pub append: bool,
    /// Print the index JSON (stdout) and its digest (stderr); push nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for what this merge mounted, copied or tagged to become visible
    /// (read-after-write lag), e.g. 30s. Sources are looked up once: a missing one fails at
    /// once.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub visibility_timeout: Duration,
    /// Write the result (index digest, descriptor, tags) as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub metadata_file: Option<PathBuf>,
    /// Progress output on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, env = "POLYARCH_PROGRESS")]
    pub progress: ProgressMode,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Resolves `polyarch merge` flags into a [`MergeRequest`]; reads metadata files.
pub fn resolve_merge(args: &MergeArgs) -> Result<MergeRequest, Failure> {
    let mut tags = Vec::new();
    for t in &args.tags {
        let r: Reference = t
            .parse()
            .map_err(|e: crate::registry::RegistryError| usage("--tag", e.to_string()))?;
        if r.digest.is_some() {
            return Err(usage("--tag", format!("{t}: give REPO[:TAG], not a digest")).into());
        }
        tags.push(r);
    }
    let mut sources = Vec::new();
    for s in &args.sources {
        sources.extend(merge::read_sources(s)?);
    }
    let platforms = Platform::parse_list(args.platforms.iter().map(String::as_str))
        .map_err(|e| usage("--platform", e.to_string()))?;
    let annotations = args
        .annotations
        .iter()
        .map(|a| merge::parse_annotation(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MergeRequest {
        tags,
        sources,
        format: match args.format {
            Format::Oci => IndexFormat::Oci,
            Format::Docker => IndexFormat::Docker,
        },
        annotations,
        platforms,
        replace: args.replace,
        drop_attestations: args.drop_attestations,
        append: args.append,
        dry_run: args.dry_run,
        visibility_timeout: args.visibility_timeout,
        jobs: args.registry.jobs,
    })
}

pub(super) fn run_merge(args: &MergeArgs) -> Result<(), Failure> {
    let progress = super::render::Progress::start(args.progress, 0, "Merging")?;
    let merged = resolve_merge(args).and_then(|req| {
        let destination = req.tags.first().map(|t| t.registry.clone());
        let registry = OciRegistry::new(args.registry.resolve(destination.as_deref())?)?;
        let sink: Arc<dyn Sink> = progress.clone();
        registry.report_retries_to(sink);
        let outcome = runtime()?.block_on(merge::merge(&req, &registry, progress.as_ref()));
        report_requests(&registry, progress.as_ref());
        Ok((req, outcome?))
    });
    let (merged, result) = match merged {
        Ok(m) => (Some(m), Ok(())),
        Err(f) => (None, Err(f)),
    };
    progress.finish(result)?;
    let Some((req, outcome)) = merged else {
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    if req.dry_run {
        let _ = out.write_all(&outcome.index.bytes);
        let _ = writeln!(out);
        eprintln!(
            "dry run: index {} ({} bytes, {}); nothing pushed",
            outcome.index.digest,
            outcome.index.bytes.len(),
            outcome.index.descriptor().media_type
        );
        return Ok(());
    }
    if let Some(path) = &args.metadata_file {
        let body = serde_json::to_vec_pretty(&serde_json::json!({
            "containerimage.digest": outcome.index.digest.to_string(),
            "containerimage.descriptor": outcome.index.descriptor(),
            "image.name": outcome.pushed_tags.join(","),
            "pushed": outcome.pushed_tags,
        }))
        .unwrap_or_default();
        write_file_atomic(path, &body).map_err(|e| Failure {
            message: format!("cannot write metadata file {}: {e}", path.display()),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })?;
    }
    let _ = writeln!(out, "index {}", outcome.index.digest);
    for t in &outcome.pushed_tags {
        let _ = writeln!(out, "  pushed to {t}");
    }
    for d in &outcome.index.index.manifests {
        let platform = d
            .platform
            .as_ref()
            .map(|p| p.normalized().to_string())
            .unwrap_or_default();
        let _ = writeln!(out, "  {platform:<16} {}", d.digest);
    }
    Ok(())
}
