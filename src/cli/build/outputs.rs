//! `-o/--output` and `--load` (buildx's exporters and their keys) parsed into the coordinator's
//! [`Output`]s and what they say about pushing (`type=registry`, `type=image,push=true`,
//! `push-by-digest=true`, `name=`).
//!
//! Level 4 (edge). Values only: no file is read or written (a terminal on stdout is looked at,
//! as buildx refuses to write an archive to one). Errors are [`UsageError`]s naming the key
//! and listing the valid ones.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::cli::{usage, UsageError};
use crate::coordinator::{Dest, Output};

/// What the `-o` values and `--load` ask for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct OutputSpecs {
    /// Local outputs, in the order given.
    pub outputs: Vec<Output>,
    /// `type=registry`, or `type=image,push=true`: push (as `--push`).
    pub push: bool,
    /// `push-by-digest=true` on a pushing image output.
    pub push_by_digest: bool,
    /// `name=` values of image and registry outputs (where they push).
    pub names: Vec<String>,
    /// `compression=` / `compression-level=` of an image output, as `--compression` takes.
    pub compression: Option<(String, Option<i32>)>,
    /// `annotation.KEY=V`, `annotation-LEVEL[PLATFORM].KEY=V` keys, in `--annotation`
    /// spelling (`LEVEL[PLATFORM]:KEY=V`).
    pub annotations: Vec<String>,
}

/// BuildKit's exporter annotation keys as `--annotation` values: `annotation.KEY` (the
/// manifests) and `annotation-LEVEL[PLATFORM].KEY`; `None` for any other key.
fn annotation_key(key: &str, value: &str) -> Option<String> {
    if let Some(k) = key.strip_prefix("annotation.") {
        return Some(format!("manifest:{k}={value}"));
    }
    let rest = key.strip_prefix("annotation-")?;
    // The level (with its platform filter) ends at the first `.` after any `]`.
    let search_from = rest.find(']').unwrap_or(0);
    let dot = search_from + rest[search_from..].find('.')?;
    Some(format!("{}:{}={value}", &rest[..dot], &rest[dot + 1..]))
}

/// The keys each exporter takes (buildx's, minus those polyarch cannot honour).
fn valid_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "registry" | "image" => &[
            "type",
            "name",
            "push",
            "push-by-digest",
            "name-canonical",
            "oci-mediatypes",
            "compression",
            "compression-level",
            "force-compression",
            "store",
            "unpack",
        ],
        "oci" => &["type", "dest", "tar", "name", "oci-mediatypes"],
        "docker" => &["type", "dest", "name"],
        "local" | "tar" => &["type", "dest", "platform-split"],
        _ => &[],
    }
}

/// Splits one `-o` value as buildx does (Go's `encoding/csv`): fields separated by commas, a
/// field in double quotes may hold commas (`"name=a,b"`), `""` is a quote inside one.
fn csv_fields(spec: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

fn parse_bool(spec: &str, key: &str, v: &str) -> Result<bool, UsageError> {
    match v {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(usage(
            "--output",
            format!("{spec:?}: {key}={v} is not a boolean (true or false)"),
        )),
    }
}

/// An archive's destination: `dest=-` or no `dest` is stdout, which must not be a terminal
/// (buildx: "refusing to write to console").
fn archive_dest(spec: &str, kind: &str, dest: Option<&String>) -> Result<Dest, UsageError> {
    let dest = Dest::parse(dest.map(String::as_str).unwrap_or("-"));
    if dest == Dest::Stdout && std::io::stdout().is_terminal() {
        return Err(usage(
            "--output",
            format!("{spec:?}: dest file is required for type={kind} (stdout is a terminal: refusing to write an archive to it)"),
        ));
    }
    Ok(dest)
}

/// Parses the `-o` values and `--load` (buildx's spellings). `tags` are the `-t` values (the
/// names of a Docker archive when it has no `name=`), `default_ref` the reference name of an
/// OCI layout without `name=`.
pub(super) fn parse_outputs(
    specs: &[String],
    load: bool,
    tags: &[String],
    default_ref: &str,
) -> Result<OutputSpecs, UsageError> {
    let mut out = OutputSpecs::default();
    for spec in specs {
        parse_one(spec, tags, default_ref, &mut out)?;
    }
    if load {
        out.outputs.push(Output::Load {
            names: tags.to_vec(),
        });
    }
    if out.outputs.iter().filter(|o| o.to_stdout()).count() > 1 {
        return Err(usage(
            "--output",
            "only one output can go to stdout (dest=-)",
        ));
    }
    Ok(out)
}

/// One `key=value` of an `-o` value.
type KeyValue = (String, String);

/// The key=value pairs of one `-o` value (keys lowercased), and its exporter annotation keys
/// in `--annotation` spelling (their case kept: annotation keys are case-sensitive).
fn split_attrs(spec: &str) -> Result<(Vec<KeyValue>, Vec<String>), UsageError> {
    let mut attrs = Vec::new();
    let mut annotations = Vec::new();
    for field in csv_fields(spec) {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        // buildx: a value without `=` is the type when it is the first (`-o type=...` or
        // `-o DIR` for local); here only key=value is taken.
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| usage("--output", format!("{spec:?}: expected key=value pairs")))?;
        match annotation_key(k.trim(), v.trim()) {
            Some(a) => annotations.push(a),
            None => attrs.push((k.trim().to_ascii_lowercase(), v.trim().to_string())),
        }
    }
    Ok((attrs, annotations))
}

/// Parses one `-o` value into `out`.
fn parse_one(
    spec: &str,
    tags: &[String],
    default_ref: &str,
    out: &mut OutputSpecs,
) -> Result<(), UsageError> {
    let (attrs, annotations) = split_attrs(spec)?;
    let get = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let kind = get("type").cloned().ok_or_else(|| {
        usage(
            "--output",
            format!("{spec:?}: missing type= (registry, image, oci, docker, local, tar)"),
        )
    })?;
    let valid = valid_keys(&kind);
    if valid.is_empty() {
        return Err(usage(
            "--output",
            format!("type={kind} is not supported (supported: registry, image, oci, docker, local, tar)"),
        ));
    }
    if !annotations.is_empty() && matches!(kind.as_str(), "local" | "tar") {
        return Err(usage(
            "--output",
            format!(
                "{spec:?}: type={kind} has no manifests to annotate (valid: {})",
                valid.join(", ")
            ),
        ));
    }
    out.annotations.extend(annotations);
    if let Some((k, _)) = attrs.iter().find(|(k, _)| !valid.contains(&k.as_str())) {
        return Err(usage(
            "--output",
            format!(
                "{spec:?}: unknown key {k:?} for type={kind} (valid: {})",
                valid.join(", ")
            ),
        ));
    }
    let names: Vec<String> = get("name")
        .map(|n| {
            n.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let attrs = Attrs {
        spec,
        kind: &kind,
        pairs: &attrs,
    };
    match kind.as_str() {
        "registry" | "image" => parse_image(&attrs, names, out),
        "oci" => parse_oci(&attrs, &names, default_ref, out),
        "docker" => {
            let names = if names.is_empty() {
                tags.to_vec()
            } else {
                names
            };
            match attrs.get("dest") {
                // buildx's docker exporter without dest loads into the engine: here, podman.
                None => out.outputs.push(Output::Load { names }),
                Some(d) => {
                    let dest = archive_dest(spec, &kind, Some(d))?;
                    out.outputs.push(Output::DockerArchive { dest, names });
                }
            }
            Ok(())
        }
        _ => parse_rootfs(&attrs, out),
    }
}

/// The key=value pairs of one `-o` value, with the value itself and its type for messages.
struct Attrs<'a> {
    spec: &'a str,
    kind: &'a str,
    pairs: &'a [(String, String)],
}

impl Attrs<'_> {
    fn get(&self, k: &str) -> Option<&String> {
        self.pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    fn bool(&self, k: &str) -> Result<Option<bool>, UsageError> {
        self.get(k).map(|v| parse_bool(self.spec, k, v)).transpose()
    }
}

/// `type=registry` / `type=image`: whether and where to push.
fn parse_image(a: &Attrs<'_>, names: Vec<String>, out: &mut OutputSpecs) -> Result<(), UsageError> {
    let spec = a.spec;
    if a.get("oci-mediatypes").is_some_and(|v| v == "false") {
        return Err(usage(
            "--output",
            format!(
                "{spec:?}: oci-mediatypes=false is not supported (polyarch writes OCI media types)"
            ),
        ));
    }
    let push = a.bool("push")?.unwrap_or(a.kind == "registry");
    out.push |= push;
    out.push_by_digest |= a.bool("push-by-digest")?.unwrap_or(false) && push;
    if let Some(c) = a.get("compression") {
        let level = match a.get("compression-level") {
            Some(l) => Some(l.parse::<i32>().map_err(|_| {
                usage(
                    "--output",
                    format!("{spec:?}: compression-level={l} is not a number"),
                )
            })?),
            None => None,
        };
        out.compression = Some((c.clone(), level));
    }
    out.names.extend(names);
    Ok(())
}

/// `type=oci`: a layout directory (`tar=false`) or an archive (`tar=true`; without `tar=`, a
/// dest ending in `.tar`, or stdout).
fn parse_oci(
    a: &Attrs<'_>,
    names: &[String],
    default_ref: &str,
    out: &mut OutputSpecs,
) -> Result<(), UsageError> {
    let spec = a.spec;
    let dest = a.get("dest");
    let tar = match a.bool("tar")? {
        Some(t) => t,
        None => dest.is_none_or(|d| d == "-" || d.ends_with(".tar")),
    };
    let ref_name = names
        .first()
        .and_then(|n| n.rsplit_once(':').filter(|(_, t)| !t.contains('/')))
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| default_ref.to_string());
    if tar {
        let dest = archive_dest(spec, a.kind, dest)?;
        out.outputs.push(Output::OciArchive { dest, ref_name });
    } else {
        let dest = dest
            .filter(|d| *d != "-")
            .ok_or_else(|| usage("--output", format!("{spec:?}: tar=false needs dest=DIR")))?;
        out.outputs.push(Output::OciLayout {
            dest: PathBuf::from(dest),
            ref_name,
        });
    }
    Ok(())
}

/// `type=local` (a directory) and `type=tar` (a file or stdout), with `platform-split`.
fn parse_rootfs(a: &Attrs<'_>, out: &mut OutputSpecs) -> Result<(), UsageError> {
    let spec = a.spec;
    let split = a.bool("platform-split")?;
    if a.kind == "local" {
        let dest = a.get("dest").filter(|d| *d != "-").ok_or_else(|| {
            usage(
                "--output",
                format!("{spec:?}: type=local needs dest=DIR (a directory; use type=tar,dest=- for stdout)"),
            )
        })?;
        out.outputs.push(Output::Local {
            dest: PathBuf::from(dest),
            split,
        });
    } else {
        let dest = archive_dest(spec, a.kind, a.get("dest"))?;
        out.outputs.push(Output::Tar { dest, split });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> Result<OutputSpecs, UsageError> {
        parse_outputs(&[spec.to_string()], false, &["r/a:v1".to_string()], "v1")
    }

    #[test]
    fn csv_quotes_keep_commas() {
        assert_eq!(
            csv_fields(r#"type=image,"name=a,b",push=true"#),
            vec!["type=image", "name=a,b", "push=true"]
        );
    }

    #[test]
    fn each_exporter_parses() {
        assert_eq!(
            one("type=oci,dest=out").unwrap().outputs,
            vec![Output::OciLayout {
                dest: "out".into(),
                ref_name: "v1".into()
            }]
        );
        assert_eq!(
            one("type=oci,dest=out.tar,name=x/y:v2").unwrap().outputs,
            vec![Output::OciArchive {
                dest: Dest::File("out.tar".into()),
                ref_name: "v2".into()
            }]
        );
        assert_eq!(
            one("type=oci,dest=out,tar=true").unwrap().outputs,
            vec![Output::OciArchive {
                dest: Dest::File("out".into()),
                ref_name: "v1".into()
            }]
        );
        assert_eq!(
            one("type=docker,dest=i.tar").unwrap().outputs,
            vec![Output::DockerArchive {
                dest: Dest::File("i.tar".into()),
                names: vec!["r/a:v1".into()]
            }]
        );
        assert_eq!(
            one("type=docker").unwrap().outputs,
            vec![Output::Load {
                names: vec!["r/a:v1".into()]
            }]
        );
        assert_eq!(
            one("type=local,dest=d,platform-split=true")
                .unwrap()
                .outputs,
            vec![Output::Local {
                dest: "d".into(),
                split: Some(true)
            }]
        );
        assert_eq!(
            one("type=tar,dest=r.tar").unwrap().outputs,
            vec![Output::Tar {
                dest: Dest::File("r.tar".into()),
                split: None
            }]
        );
        let reg = one("type=registry,name=r/b:v3").unwrap();
        assert!(reg.push && reg.outputs.is_empty());
        assert_eq!(reg.names, vec!["r/b:v3".to_string()]);
        let img =
            one("type=image,name=r/b,push=true,push-by-digest=true,name-canonical=true").unwrap();
        assert!(img.push && img.push_by_digest);
        let kept = one("type=image,name=r/b,push=false").unwrap();
        assert!(!kept.push);
    }

    #[test]
    fn exporter_annotation_keys() {
        let o = one("type=image,name=r/b,annotation.org.opencontainers.image.title=T,annotation-index.Key=v,annotation-manifest[linux/arm64].a.b=c").unwrap();
        assert_eq!(
            o.annotations,
            vec![
                "manifest:org.opencontainers.image.title=T".to_string(),
                "index:Key=v".to_string(),
                "manifest[linux/arm64]:a.b=c".to_string(),
            ]
        );
        assert!(one("type=local,dest=d,annotation.k=v").is_err());
    }

    #[test]
    fn bad_specs_name_the_valid_keys() {
        let e = one("type=oci,dest=x,color=red").unwrap_err().to_string();
        assert!(
            e.contains("unknown key \"color\"") && e.contains("valid: type, dest, tar"),
            "{e}"
        );
        assert!(one("type=cacheonly").is_err());
        assert!(one("dest=x").is_err());
        assert!(one("type=local").is_err());
        assert!(one("type=local,dest=-").is_err());
        assert!(one("type=oci,dest=x,tar=maybe").is_err());
        let two = parse_outputs(
            &["type=tar,dest=-".into(), "type=oci,dest=-".into()],
            false,
            &[],
            "latest",
        );
        assert!(two.is_err());
    }
}
