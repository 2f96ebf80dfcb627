//! Resolving `polyarch build`'s flags into the validated [`BuildRequest`] the coordinator takes
//! (flags, then settings: uv's habit), with the parsers of `--secret` and `--output` values.
//!
//! Level 4 (edge). Reads what the flags name (the context, the Dockerfile, secret files and
//! variables, `SOURCE_DATE_EPOCH`) to check it; builds, pulls and pushes nothing. Errors are
//! [`UsageError`]s naming the flag and the value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::flags::BuildArgs;
use crate::cli::{usage, UsageError};
use crate::coordinator::{BuildRequest, CacheOptions, Output};
use crate::executor::Sensitive;
use crate::platform::Platform;
use crate::registry::Reference;

/// Parses one `--secret` value and reads the secret (buildx `parseSecret`: `id`, `src` or
/// `source`, `env`, `type=file|env`; without a source, the environment variable named like the
/// id).
pub(super) fn parse_secret(spec: &str) -> Result<(String, Sensitive), UsageError> {
    let mut id = None;
    let mut src = None;
    let mut env = None;
    let mut typ = None;
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| usage("--secret", format!("{spec:?}: expected key=value pairs")))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            "type" => typ = Some(v.to_string()),
            other => {
                return Err(usage(
                    "--secret",
                    format!("{spec:?}: unknown key {other:?} (known: id, src, env, type)"),
                ))
            }
        }
    }
    let id = id
        .or_else(|| {
            src.as_deref()
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
        })
        .or_else(|| env.clone())
        .filter(|i| !i.is_empty())
        .ok_or_else(|| usage("--secret", format!("{spec:?}: missing id=")))?;
    let from_env = match typ.as_deref() {
        Some("env") => true,
        Some("file") => false,
        Some(other) => {
            return Err(usage(
                "--secret",
                format!("{spec:?}: type={other} is not supported (file or env)"),
            ))
        }
        None => src.is_none(),
    };
    if from_env {
        let var = env.or(src).unwrap_or_else(|| id.clone());
        let value = std::env::var_os(&var).ok_or_else(|| {
            usage(
                "--secret",
                format!("secret {id:?}: environment variable {var} is not set"),
            )
        })?;
        Ok((id, Sensitive(value.into_encoded_bytes())))
    } else {
        let path = src.ok_or_else(|| usage("--secret", format!("{spec:?}: missing src=FILE")))?;
        let bytes = std::fs::read(&path).map_err(|e| {
            usage(
                "--secret",
                format!("secret {id:?}: cannot read {path}: {e}"),
            )
        })?;
        Ok((id, Sensitive(bytes)))
    }
}

/// Resolves `polyarch build` flags into a [`BuildRequest`] (flags, then settings: uv's habit).
/// Errors name the flag and the value.
pub fn resolve_build(args: &BuildArgs) -> Result<BuildRequest, UsageError> {
    resolve_at(args, &args.context, args.file.as_ref())
}

/// [`resolve_build`] with the context and Dockerfile given apart from the flags (what `-`
/// stood for, read from stdin: [`super::inputs::stage_stdin`]).
pub(super) fn resolve_at(
    args: &BuildArgs,
    context: &Path,
    file: Option<&PathBuf>,
) -> Result<BuildRequest, UsageError> {
    let targets = resolve_targets(&args.platforms)?;
    let (context_dir, dockerfile) = resolve_files(context, file)?;
    let build_args = resolve_build_args(&args.build_args)?;
    let specs = super::outputs::parse_outputs(&args.outputs, args.load, &args.tags, "latest")?;
    let (tags, push_by_digest) = resolve_destinations(args, &specs)?;
    let push = args.push || specs.push;
    if push && tags.is_empty() && push_by_digest.is_none() {
        return Err(usage(
            if args.push { "--push" } else { "--output" },
            "needs at least one -t/--tag (or name=) to push to",
        ));
    }
    if args.digest_file.is_some() && !push && push_by_digest.is_none() {
        return Err(usage(
            "--digest-file",
            "needs --push or --push-by-digest (nothing is pushed otherwise)",
        ));
    }
    check_one_repository(&tags)?;
    let ref_name = tags
        .first()
        .and_then(|t| t.tag.clone())
        .unwrap_or_else(|| "latest".into());
    // Files written after the build must be writable before it starts, not found missing
    // once the images are pushed.
    for (flag, file) in [
        ("--metadata-file", &args.metadata_file),
        ("--digest-file", &args.digest_file),
        ("--iidfile", &args.buildx.iidfile),
    ] {
        if let Some(path) = file {
            check_parent_dir(flag, path)?;
        }
    }
    let mut outputs =
        super::outputs::parse_outputs(&args.outputs, args.load, &args.tags, &ref_name)?.outputs;
    if args.outputs.is_empty() && !args.load && !push && push_by_digest.is_none() {
        outputs.push(Output::OciLayout {
            dest: PathBuf::from("polyarch-out"),
            ref_name: ref_name.clone(),
        });
    }
    let source_date_epoch = source_date_epoch()?;
    let compression = resolve_compression(args, &specs)?;
    let mut secrets = BTreeMap::new();
    for spec in &args.secrets {
        let (id, value) = parse_secret(spec)?;
        secrets.insert(id, value);
    }
    let cache = resolve_cache(args)?;
    let pushes = push || push_by_digest.is_some();
    let meta = super::meta::resolve_meta(
        args,
        (&context_dir, &dockerfile),
        &specs.annotations,
        pushes,
    )?;
    Ok(BuildRequest {
        context_dir,
        dockerfile,
        platforms: targets.platforms,
        all_platforms: targets.all,
        build_platform: Platform::host(),
        build_args,
        target: args.target.clone(),
        tags,
        // Pushing by digest moves no tag: that is `push_by_digest`'s alone.
        push: push && push_by_digest.is_none(),
        push_by_digest,
        outputs,
        source_date_epoch,
        compression,
        binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        secrets,
        smoke_test: args.smoke_test.clone(),
        cache,
        entitlements: args.allow.clone(),
        meta,
        buildx: super::inputs::buildx_inputs(args)?,
    })
}

/// `SOURCE_DATE_EPOCH`, seconds, when set and not empty.
fn source_date_epoch() -> Result<Option<i64>, UsageError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.parse::<i64>().map(Some).map_err(|_| {
            usage(
                "SOURCE_DATE_EPOCH",
                format!("{v:?} is not a number of seconds"),
            )
        }),
        _ => Ok(None),
    }
}

/// `--compression`/`--compression-level`, or an image output's `compression=` keys.
fn resolve_compression(
    args: &BuildArgs,
    specs: &super::outputs::OutputSpecs,
) -> Result<crate::layer::Compression, UsageError> {
    let (kind, level) = match &specs.compression {
        Some((kind, level)) => (kind.as_str(), level.or(args.compression_level)),
        None => (args.compression.as_str(), args.compression_level),
    };
    crate::layer::Compression::parse(kind, level).map_err(|e| usage("--compression", e))
}

/// Where the build pushes: the `-t` tags (with `--tag-semver`'s) and the `name=` of image
/// outputs; `--push-by-digest REPO`, or `push-by-digest=true` on an image output (its name
/// without the tag, which buildx's `name-canonical` records).
fn resolve_destinations(
    args: &BuildArgs,
    specs: &super::outputs::OutputSpecs,
) -> Result<(Vec<Reference>, Option<Reference>), UsageError> {
    let mut names = args.tags.clone();
    if !specs.push_by_digest {
        for n in &specs.names {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let tags = with_semver_tags(resolve_tags(&names)?, args.tag_semver.as_deref())?;
    let by_digest = match (&args.push_by_digest, specs.push_by_digest) {
        (Some(repo), _) => Some(repo.clone()),
        (None, true) => {
            let name = specs
                .names
                .first()
                .ok_or_else(|| usage("--output", "push-by-digest=true needs name=REPO"))?;
            let r: Reference = name
                .parse()
                .map_err(|e: crate::registry::RegistryError| usage("--output", e.to_string()))?;
            Some(r.repo_string())
        }
        (None, false) => None,
    };
    let push_by_digest = match by_digest {
        Some(repo) => Some(resolve_push_by_digest(&repo, &tags)?),
        None => None,
    };
    Ok((tags, push_by_digest))
}

/// The step cache flags: `--no-cache`, `--no-cache-filter`, `--pull`, `--cache-from`,
/// `--cache-to` (buildx's spellings, see [`crate::shared_cache`]).
fn resolve_cache(args: &BuildArgs) -> Result<CacheOptions, UsageError> {
    let mut import = Vec::new();
    for spec in &args.cache_from {
        import.push(
            crate::shared_cache::parse_source(spec)
                .map_err(|e| usage("--cache-from", e.to_string()))?,
        );
    }
    let mut export = Vec::new();
    for spec in &args.cache_to {
        export.push(
            crate::shared_cache::parse_target(spec)
                .map_err(|e| usage("--cache-to", e.to_string()))?,
        );
    }
    let no_cache_filter: Vec<String> = args
        .no_cache_filter
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(CacheOptions {
        no_cache: args.no_cache,
        no_cache_filter,
        pull: args.pull,
        import,
        export,
    })
}

/// `--platform` values: this host's platform when none is given.
fn resolve_targets(platforms: &[String]) -> Result<crate::platform::Targets, UsageError> {
    let targets = if platforms.is_empty() {
        crate::platform::Targets {
            platforms: vec![Platform::host()],
            all: false,
        }
    } else {
        Platform::parse_targets(platforms.iter().map(String::as_str))
            .map_err(|e| usage("--platform", e.to_string()))?
    };
    if targets.platforms.is_empty() && !targets.all {
        return Err(usage("--platform", "no platform given"));
    }
    Ok(targets)
}

/// The context directory (canonical) and the Dockerfile (`-f`, else `CONTEXT/Dockerfile`),
/// both checked to exist.
fn resolve_files(context: &Path, file: Option<&PathBuf>) -> Result<(PathBuf, PathBuf), UsageError> {
    let context_dir = std::fs::canonicalize(context).map_err(|e| {
        usage(
            "CONTEXT",
            format!("build context {}: {e}", context.display()),
        )
    })?;
    if !context_dir.is_dir() {
        return Err(usage(
            "CONTEXT",
            format!("{} is not a directory", context.display()),
        ));
    }
    let dockerfile = match file {
        Some(f) => f.clone(),
        None => context_dir.join("Dockerfile"),
    };
    if !dockerfile.is_file() {
        let fix = match file {
            Some(_) => "check the path given to -f/--file",
            None => "give one with -f/--file",
        };
        return Err(usage(
            "--file",
            format!("no Dockerfile at {} ({fix})", dockerfile.display()),
        ));
    }
    Ok((context_dir, dockerfile))
}

/// `--build-arg` values: `KEY=VALUE`, or `KEY` alone for the environment's value (left out
/// when the variable is not set, as Docker does).
fn resolve_build_args(build_args: &[String]) -> Result<BTreeMap<String, String>, UsageError> {
    let mut out = BTreeMap::new();
    for a in build_args {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(usage("--build-arg", format!("{a:?}: empty name"))),
            None => {
                // Docker: `--build-arg NAME` takes the value from the environment, if set.
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// `-t/--tag` values: references without a digest.
fn resolve_tags(tags: &[String]) -> Result<Vec<Reference>, UsageError> {
    let mut out = Vec::new();
    for t in tags {
        let r: Reference = t
            .parse()
            .map_err(|e: crate::registry::RegistryError| usage("--tag", e.to_string()))?;
        if r.digest.is_some() {
            return Err(usage(
                "--tag",
                format!("{t}: a tag cannot name a digest; give REPO[:TAG]"),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// `--tag-semver VERSION`: each `-t` repository also gets the tags the version gives
/// ([`crate::tagging::semver_tags`]); a `-t` without a tag gets only those.
fn with_semver_tags(
    tags: Vec<Reference>,
    version: Option<&str>,
) -> Result<Vec<Reference>, UsageError> {
    let Some(version) = version else {
        return Ok(tags);
    };
    if tags.is_empty() {
        return Err(usage(
            "--tag-semver",
            "needs -t REPO naming where the tags go",
        ));
    }
    let names =
        crate::tagging::semver_tags(version).map_err(|e| usage("--tag-semver", e.to_string()))?;
    let mut out: Vec<Reference> = Vec::new();
    for t in &tags {
        let mut these: Vec<Reference> = t.tag.is_some().then(|| t.clone()).into_iter().collect();
        for n in &names {
            these.push(
                t.with_tag(n)
                    .map_err(|e| usage("--tag-semver", e.to_string()))?,
            );
        }
        for r in these {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// `--push-by-digest REPO`: a repository without tag or digest, and no `-t/--tag` beside it.
fn resolve_push_by_digest(repo: &str, tags: &[Reference]) -> Result<Reference, UsageError> {
    let r: Reference = repo
        .parse()
        .map_err(|e: crate::registry::RegistryError| usage("--push-by-digest", e.to_string()))?;
    if r.tag.is_some() || r.digest.is_some() {
        return Err(usage(
            "--push-by-digest",
            format!("{repo}: give a repository, REGISTRY/REPO, without tag or digest"),
        ));
    }
    if !tags.is_empty() {
        return Err(usage(
            "--push-by-digest",
            "pushes to no tag: leave out -t/--tag (tag the merged index with polyarch merge)",
        ));
    }
    Ok(r)
}

/// All tags of one build name one repository on one registry.
fn check_one_repository(tags: &[Reference]) -> Result<(), UsageError> {
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
    Ok(())
}

/// The directory `path` (given with `flag`) will be written in exists.
fn check_parent_dir(flag: &str, path: &Path) -> Result<(), UsageError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(usage(
            flag,
            format!(
                "{}: directory {} does not exist",
                path.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "s3cr3t").unwrap();
        let (id, v) = parse_secret(&format!("id=tok,src={}", f.display())).unwrap();
        assert_eq!((id.as_str(), v.0.as_slice()), ("tok", b"s3cr3t".as_slice()));
        let (id, _) = parse_secret(&format!("src={}", f.display())).unwrap();
        assert_eq!(id, "tok");
        std::env::set_var("POLYARCH_TEST_SECRET_VAR", "from-env");
        let (id, v) = parse_secret("id=x,env=POLYARCH_TEST_SECRET_VAR").unwrap();
        assert_eq!((id.as_str(), v.0.as_slice()), ("x", b"from-env".as_slice()));
        let (id, v) = parse_secret("type=env,id=y,env=POLYARCH_TEST_SECRET_VAR").unwrap();
        assert_eq!((id.as_str(), v.0.as_slice()), ("y", b"from-env".as_slice()));
        let (_, v) = parse_secret("id=POLYARCH_TEST_SECRET_VAR").unwrap();
        assert_eq!(v.0, b"from-env");
        assert!(parse_secret("id=x,src=/nonexistent/file").is_err());
        assert!(parse_secret("id=x,env=POLYARCH_TEST_UNSET_VAR_123").is_err());
        assert!(parse_secret("id=x,type=ssh").is_err());
        assert!(parse_secret("nonsense").is_err());
        // Debug output never shows the value.
        assert!(!format!("{v:?}").contains("from-env"));
    }
}
