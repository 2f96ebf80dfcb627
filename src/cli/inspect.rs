//! `polyarch inspect REF`: flags and the three renderings (human, `--raw`, `--json`).
//!
//! Level 4 (edge). Renders only: reading and checking what the reference points at is
//! [`crate::inspect`]'s.

use super::runtime;
use super::*;
use crate::inspect::{self, Inspection};

/// Flags of `polyarch inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image, REGISTRY/REPO[:TAG|@DIGEST].
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Print the manifest or index exactly as the registry served it (its sha256 is the
    /// digest).
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// Print a stable JSON description (mediaType, digest, size, manifests or config/layers,
    /// annotations).
    #[arg(long)]
    pub json: bool,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// The human view: the document, then one line per entry (or the config and layers), then
/// annotations.
pub fn render_human(i: &Inspection) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("Name:       {}", i.name));
    line(format!("MediaType:  {}", i.media_type));
    line(format!("Digest:     {}", i.digest));
    line(format!("Size:       {}", i.size));
    if let Some(children) = &i.manifests {
        line(String::new());
        line(format!("Manifests ({}):", children.len()));
        let width = children
            .iter()
            .map(|c| c.platform.len())
            .max()
            .unwrap_or(0)
            .max(8);
        for c in children {
            let platform = if c.platform.is_empty() {
                "-"
            } else {
                &c.platform
            };
            let mut l = format!(
                "  {platform:<width$}  {}  {:>9}  {}",
                c.digest, c.size, c.media_type
            );
            if c.attestation {
                match &c.attestation_for {
                    Some(d) => l.push_str(&format!("  (attestation for {d})")),
                    None => l.push_str("  (attestation)"),
                }
            }
            line(l);
            for (k, v) in &c.annotations {
                line(format!("  {:width$}    {k}={v}", ""));
            }
        }
    }
    if let Some(p) = &i.platform {
        line(format!("Platform:   {p}"));
    }
    if let Some(c) = &i.config {
        line(format!(
            "Config:     {}  {}  {}",
            c.digest, c.size, c.media_type
        ));
    }
    if let Some(layers) = &i.layers {
        line(String::new());
        line(format!("Layers ({}):", layers.len()));
        for l in layers {
            line(format!("  {}  {:>9}  {}", l.digest, l.size, l.media_type));
        }
    }
    if !i.annotations.is_empty() {
        line(String::new());
        line("Annotations:".into());
        for (k, v) in &i.annotations {
            line(format!("  {k}={v}"));
        }
    }
    s
}

pub(super) fn run_inspect(args: &InspectArgs) -> Result<(), Failure> {
    let reference: Reference = args
        .reference
        .parse()
        .map_err(|e: crate::registry::RegistryError| usage("REF", e.to_string()))?;
    let registry = OciRegistry::new(args.registry.resolve(Some(&reference.registry))?)?;
    let found = runtime()?.block_on(inspect::inspect(&registry, &reference, !args.raw))?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        let _ = out.write_all(&found.raw);
    } else if args.json {
        let _ = serde_json::to_writer_pretty(&mut out, &found);
        let _ = writeln!(out);
    } else {
        let _ = out.write_all(render_human(&found).as_bytes());
    }
    Ok(())
}
