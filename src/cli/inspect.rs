//! `polyarch inspect IMAGE`: flags and the renderings (human, `--raw`, `--config`, `--json`,
//! `--format`).
//!
//! Level 4 (edge). Renders only: reading and checking what the image points at is
//! [`crate::inspect`]'s.

use super::runtime;
use super::*;
use crate::image::{Location, Source};
use crate::inspect::{self, InspectOptions, Inspection};

/// Flags of `polyarch inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: REGISTRY/REPO[:TAG|@DIGEST] (or docker://...), oci:DIR[:REF],
    /// oci-archive:FILE[:REF], or a local path (a layout directory or an archive; never looked
    /// up on Docker Hub). Layouts are read with no network.
    #[arg(value_name = "IMAGE")]
    pub reference: String,
    /// For an index: describe this platform's image (os/arch[/variant]).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Print the manifest or index exactly as served (its sha256 is the digest).
    #[arg(long, conflicts_with_all = ["json", "config", "format"])]
    pub raw: bool,
    /// Print the image's config blob exactly as stored (with --platform for an index).
    #[arg(long, conflicts_with_all = ["json", "format"])]
    pub config: bool,
    /// Print a stable JSON description (mediaType, digest, size, manifests or
    /// platform/config/layers/history, annotations).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Render a Go template over the JSON description with Go's field names:
    /// `{{.Digest}}`, `{{range .Layers}}{{.Size}} {{end}}`, `{{json .History}}`.
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
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
    history_lines(i, &mut line);
    if !i.annotations.is_empty() {
        line(String::new());
        line("Annotations:".into());
        for (k, v) in &i.annotations {
            line(format!("  {k}={v}"));
        }
    }
    s
}

/// The history section of the human view: each entry with its time, the size of the layer it
/// made (`-` for none) and the instruction.
fn history_lines(i: &Inspection, line: &mut impl FnMut(String)) {
    let (Some(history), Some(layers)) = (&i.history, &i.layers) else {
        return;
    };
    line(String::new());
    line(format!("History ({}):", history.len()));
    let mut sizes = layers.iter().map(|l| l.size);
    for h in history {
        let size = if h.empty_layer {
            "-".to_string()
        } else {
            sizes.next().map(|s| s.to_string()).unwrap_or_default()
        };
        let by = h.created_by.as_deref().unwrap_or("");
        let by = by.strip_suffix(" # buildkit").unwrap_or(by);
        line(format!(
            "  {:<20}  {size:>9}  {by}",
            h.created.as_deref().unwrap_or("-")
        ));
    }
}

pub(super) fn run_inspect(global: &GlobalArgs, args: &InspectArgs) -> Result<(), Failure> {
    let location = Location::parse(&args.reference)?;
    let platform = args
        .platform
        .as_deref()
        .map(Platform::parse)
        .transpose()
        .map_err(|e| usage("--platform", e.to_string()))?;
    let registry_host = match &location {
        Location::Registry(r) => Some(r.registry.clone()),
        _ => None,
    };
    let registry = OciRegistry::new(args.registry.resolve(registry_host.as_deref())?)?;
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    // The store lives as long as its temporary directory (its process session holds it).
    let store = Store::open(&state)?;
    let work = store.temp_dir("inspect")?;
    let source = Source::open(&location, &registry, work.path())?;
    let opts = InspectOptions {
        platform,
        config: !args.raw,
    };
    let found = runtime()?.block_on(inspect::inspect(&source, &opts))?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        let _ = out.write_all(&found.raw);
    } else if args.config {
        let Some(config) = &found.config_raw else {
            return Err(usage(
                "--config",
                format!("{} is an index: name the image with --platform", found.name),
            )
            .into());
        };
        let _ = out.write_all(config);
    } else if args.json {
        let _ = serde_json::to_writer_pretty(&mut out, &found);
        let _ = writeln!(out);
    } else if let Some(t) = &args.format {
        let value = serde_json::to_value(&found).unwrap_or_default();
        let text = super::template::render(t, &value).map_err(|e| usage("--format", e))?;
        let _ = out.write_all(text.as_bytes());
    } else {
        let _ = out.write_all(render_human(&found).as_bytes());
    }
    Ok(())
}
