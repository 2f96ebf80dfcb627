//! `polyarch build`: flags, their resolution into a [`BuildRequest`], and the run.

use super::*;
use crate::coordinator::{BuildPlan, NodeState, Nodes};
use crate::node::protocol::WireCredentials;
use crate::schedule::Policy;

/// Flags of `polyarch build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
    /// Target platforms, os/arch[/variant], repeatable and comma-separated (default: this
    /// host's platform; `local` also means it; `all` means every platform the base image offers
    /// that this host can run).
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
    #[arg(long, conflicts_with = "push_by_digest")]
    pub push: bool,
    /// Push the image(s) by digest to this repository, REGISTRY/REPO, and to no tag: one job
    /// of a CI matrix. With several platforms their index is pushed by digest too. Combine the
    /// results with `polyarch merge`.
    #[arg(long, value_name = "REPO")]
    pub push_by_digest: Option<String>,
    /// Write what was pushed as REPO@sha256:... to this file (the image for one platform
    /// pushed by digest, else the index).
    #[arg(long, value_name = "PATH")]
    pub digest_file: Option<PathBuf>,
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
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// How RUN and COPY changes are captured: overlay (overlayfs), copy (copy the layers, then
    /// walk and compare; for hosts where overlayfs cannot be mounted), or auto (overlay, falling
    /// back to copy when the mount is refused).
    #[arg(long, value_enum, default_value_t = Snapshotter::Auto, env = "POLYARCH_SNAPSHOTTER")]
    pub snapshotter: Snapshotter,
    /// Build nodes (--node, --nodes, --ssh-config).
    #[command(flatten)]
    pub nodes: NodeOpts,
    /// Where platforms may run: prefer-native (a node declaring it, natively running ones
    /// first, then this host natively, then this host emulated), native-only (no emulation
    /// here: a platform with neither fails before anything is built, exit 4), local-only.
    #[arg(long, value_enum, default_value_t = NodePolicy::PreferNative, env = "POLYARCH_NODE_POLICY")]
    pub node_policy: NodePolicy,
    /// Print where each platform would run and why (probing this host and the nodes), then
    /// stop: nothing is pulled, built or pushed.
    #[arg(long)]
    pub dry_run: bool,
    /// A secret for `RUN --mount=type=secret`: `id=ID,src=FILE` or `id=ID,env=VAR` (buildx
    /// syntax; `type=file|env` optional; `id=ID` alone reads the variable ID). Repeatable. Never
    /// stored in the image or printed.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
}

/// `--node-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodePolicy {
    /// Nodes that declare the platform, then this host natively, then this host emulated.
    PreferNative,
    /// Nodes, then this host natively; never emulated here.
    NativeOnly,
    /// This host only.
    LocalOnly,
}

impl From<NodePolicy> for Policy {
    fn from(p: NodePolicy) -> Policy {
        match p {
            NodePolicy::PreferNative => Policy::PreferNative,
            NodePolicy::NativeOnly => Policy::NativeOnly,
            NodePolicy::LocalOnly => Policy::LocalOnly,
        }
    }
}

impl ValueEnum for Snapshotter {
    fn value_variants<'a>() -> &'a [Self] {
        &Snapshotter::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

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
    let targets = if args.platforms.is_empty() {
        crate::platform::Targets {
            platforms: vec![Platform::host()],
            all: false,
        }
    } else {
        Platform::parse_targets(args.platforms.iter().map(String::as_str))
            .map_err(|e| usage("--platform", e.to_string()))?
    };
    if targets.platforms.is_empty() && !targets.all {
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
    let push_by_digest = match &args.push_by_digest {
        Some(repo) => {
            let r: Reference = repo.parse().map_err(|e: crate::registry::RegistryError| {
                usage("--push-by-digest", e.to_string())
            })?;
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
            Some(r)
        }
        None => None,
    };
    if args.digest_file.is_some() && !args.push && push_by_digest.is_none() {
        return Err(usage(
            "--digest-file",
            "needs --push or --push-by-digest (nothing is pushed otherwise)",
        ));
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
    // Files written after the build must be writable before it starts, not found missing
    // once the images are pushed.
    for (flag, file) in [
        ("--metadata-file", &args.metadata_file),
        ("--digest-file", &args.digest_file),
    ] {
        if let Some(path) = file {
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
        }
    }
    let mut outputs = Vec::new();
    for spec in &args.outputs {
        outputs.push(parse_output(spec, &ref_name)?);
    }
    if outputs.is_empty() && !args.push && push_by_digest.is_none() {
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
    let mut secrets = BTreeMap::new();
    for spec in &args.secrets {
        let (id, value) = parse_secret(spec)?;
        secrets.insert(id, value);
    }
    Ok(BuildRequest {
        context_dir,
        dockerfile,
        platforms: targets.platforms,
        all_platforms: targets.all,
        build_platform: Platform::host(),
        build_args,
        target: args.target.clone(),
        tags,
        push: args.push,
        push_by_digest,
        outputs,
        source_date_epoch,
        binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        secrets,
    })
}

/// Parses `type=oci,dest=DIR[,name=REF]` (buildx's `--output` syntax).
pub(super) fn parse_output(spec: &str, default_ref: &str) -> Result<Output, UsageError> {
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

/// The metadata file: the keys CI users parse from buildx (`containerimage.digest`, ...) plus
/// the per-platform manifests.
pub(super) fn metadata_json(outcome: &BuildOutcome, req: &BuildRequest) -> serde_json::Value {
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
            "node": i.node.as_deref().unwrap_or("local"),
        })).collect::<Vec<_>>(),
        "warnings": outcome.warnings,
    })
}

/// What `--push-by-digest` pushed, for the metadata and digest files: the image for one
/// platform, else the index (buildx's `containerimage.*` keys and plain ones).
pub(super) fn pushed_by_digest(
    outcome: &BuildOutcome,
    repo: &Reference,
) -> crate::metadata::PushedByDigest {
    let platforms: Vec<crate::metadata::PlatformEntry> = outcome
        .images
        .iter()
        .map(|i| crate::metadata::PlatformEntry {
            platform: i.platform.normalized().to_string(),
            digest: i.manifest.digest.clone(),
            size: i.manifest.size,
            media_type: i.manifest.media_type.clone(),
            config: i.config.clone(),
        })
        .collect();
    let (descriptor, config, platform) = match outcome.images.as_slice() {
        [one] => (
            one.manifest.clone(),
            Some(one.config.clone()),
            Some(one.platform.normalized().to_string()),
        ),
        _ => (outcome.index.descriptor(), None, None),
    };
    crate::metadata::PushedByDigest {
        containerimage_digest: descriptor.digest.clone(),
        containerimage_config_digest: config,
        image_name: repo.repo_string(),
        repository: repo.repo_string(),
        reference: format!("{}@{}", repo.repo_string(), descriptor.digest),
        digest: descriptor.digest.clone(),
        size: descriptor.size,
        media_type: descriptor.media_type.clone(),
        platform,
        platforms,
        containerimage_descriptor: descriptor,
    }
}

pub(super) fn run_build(global: &GlobalArgs, args: &BuildArgs) -> Result<(), Failure> {
    let req = resolve_build(args)?;
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    let store = Store::open(&state)?;
    let destination = req
        .push_by_digest
        .as_ref()
        .or(req.tags.first().filter(|_| req.push))
        .map(|r| r.registry.clone());
    let options = args.registry.resolve(destination.as_deref())?;
    let registry = OciRegistry::new(options.clone())?;
    let set = args.nodes.resolve()?;
    let transport = if set.nodes.is_empty() {
        None
    } else {
        Some(NodeOpts::transport(&set)?)
    };
    let executor = SandboxExecutor::current_exe()?.with_snapshotter(args.snapshotter);
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
    let rt = runtime()?;
    // Credentials for the registry pushed to, handed to build nodes over their SSH channel
    // only: the explicit ones (--creds), else the same lookup the registry client makes.
    let credentials = match (&destination, transport.is_some()) {
        (Some(dest), true) => match options.auth.get(dest) {
            Some(c) => Some(c.clone()),
            None => rt
                .block_on(options.credential_sources.lookup(dest))
                .map_err(|source| crate::registry::RegistryError::Credentials {
                    registry: dest.clone(),
                    source: Box::new(source),
                })?,
        },
        _ => None,
    };
    let nodes = Nodes {
        set,
        policy: args.node_policy.into(),
        transport,
        credentials: credentials.map(|c| WireCredentials {
            username: c.username,
            password: c.password,
        }),
        insecure_registries: options.insecure.clone(),
        retries: options.retries,
    };
    if args.dry_run {
        let plan = rt.block_on(coordinator::plan(&req, &deps, &nodes))?;
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{}", plan_text(&plan));
        return Ok(());
    }
    // SIGINT/SIGTERM cancel the build: dropping its future kills every sandbox helper
    // (kill_on_drop; their steps die with them) and removes the step directories, and no tag
    // has moved, since the index is pushed last.
    let outcome = rt.block_on(async {
        tokio::select! {
            r = coordinator::build_with(&req, &deps, &nodes) => r.map_err(Failure::from),
            sig = interrupted() => Err(Failure {
                message: format!("interrupted by {sig}: the build was cancelled and nothing was published"),
                causes: vec![],
                hint: None,
                code: ExitCode::Interrupted,
            }),
        }
    })?;
    let by_digest = req
        .push_by_digest
        .as_ref()
        .map(|repo| pushed_by_digest(&outcome, repo));
    let write = |path: &Path, body: &[u8], what: &str| {
        write_file_atomic(path, body).map_err(|e| Failure {
            message: format!("cannot write {what} {}: {e}", path.display()),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })
    };
    if let Some(path) = &args.metadata_file {
        let value = match &by_digest {
            Some(p) => serde_json::to_value(p).unwrap_or_default(),
            None => metadata_json(&outcome, &req),
        };
        let body = serde_json::to_vec_pretty(&value).unwrap_or_default();
        write(path, &body, "metadata file")?;
    }
    if let Some(path) = &args.digest_file {
        let line = match (&by_digest, req.tags.first()) {
            (Some(p), _) => p.reference.clone(),
            (None, Some(tag)) => format!("{}@{}", tag.repo_string(), outcome.index.digest),
            (None, None) => String::new(),
        };
        write(path, format!("{line}\n").as_bytes(), "digest file")?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "index {}", outcome.index.digest);
    if let Some(p) = &by_digest {
        let _ = writeln!(out, "  pushed {}", p.reference);
    }
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

/// Resolves when the process receives SIGINT or SIGTERM, with the signal's name. Pending forever
/// when the handlers cannot be installed (the default disposition then still ends the process).
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// The `--dry-run` report: per platform where it runs, why, and the fallback; then the nodes.
pub(super) fn plan_text(plan: &BuildPlan) -> String {
    let mut s = format!("plan (--node-policy {}):\n", plan.schedule.policy);
    for pl in &plan.schedule.placements {
        s.push_str(&format!(
            "  {:<16} {}\n",
            pl.platform.to_string(),
            pl.first().describe()
        ));
        s.push_str(&format!("  {:<16}   why: {}\n", "", pl.why));
        let fallback = pl
            .fallback()
            .map(|p| p.describe())
            .unwrap_or_else(|| "none (the build fails if it drops)".into());
        if pl.first().node().is_some() {
            s.push_str(&format!("  {:<16}   if the node drops: {fallback}\n", ""));
        }
    }
    if !plan.nodes.is_empty() {
        s.push_str("nodes:\n");
        for n in &plan.nodes {
            let state = match &n.state {
                NodeState::Ready {
                    version,
                    running_builds,
                    used_for,
                    ..
                } => format!(
                    "polyarch {version}, {running_builds} build(s) running, limit {}, used for {}",
                    n.spec.limit,
                    if used_for.is_empty() {
                        "nothing".to_string()
                    } else {
                        used_for
                            .iter()
                            .map(|(p, r)| format!("{p} ({})", r.describe()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
                NodeState::Unreachable { error } => format!("left out: {error}"),
                NodeState::NotProbed { why } => format!("not used: {why}"),
            };
            s.push_str(&format!(
                "  {:<12} {:<32} {state}\n",
                n.spec.name,
                n.spec.address()
            ));
        }
    }
    for note in &plan.notes {
        s.push_str(&format!("note: {note}\n"));
    }
    s
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
        let (_, v) = parse_secret("id=POLYARCH_TEST_SECRET_VAR").unwrap();
        assert_eq!(v.0, b"from-env");
        assert!(parse_secret("id=x,src=/nonexistent/file").is_err());
        assert!(parse_secret("id=x,env=POLYARCH_TEST_UNSET_VAR_123").is_err());
        assert!(parse_secret("id=x,type=ssh").is_err());
        assert!(parse_secret("nonsense").is_err());
        // Debug output never shows the value.
        assert!(!format!("{v:?}").contains("from-env"));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
