//! From a planned step to what the sandbox does: the executor [`Action`], the layers it runs
//! on, and the cache directories it holds while it runs.
//!
//! Level 3 (coordinator), under [`super::step`]: reads other stages and images only through
//! the step's [`StepScope`] ([`Upstream`]), never the stage table. Does not run the step.

use std::path::Path;

use super::direct_add::{self, Direct, MadeUpper};
use super::scope::{StepScope, Upstream};
use super::sources::{self, CacheLease, SourceError};
use super::*;
use crate::context::{CopyEntry, Ignore};
use crate::dockerfile::ErrorKind;
use crate::executor::{LayerSource, Mount, NetworkMode, Sensitive};
use crate::plan::{CopyFrom, CopyStep, Entitlement, MountSource, Network, RunMount, Security};

/// A step ready to run.
pub(super) struct Prepared {
    /// What the helper does.
    pub action: Action,
    /// The layers it runs on, top-most first (empty for `COPY --link`).
    pub lowerdirs: Vec<PathBuf>,
    /// Cache directories in use until the step is over.
    pub leases: Vec<CacheLease>,
    /// The step's upper directory, already made without the sandbox (an archive ADDed onto an
    /// empty tree, see [`super::direct_add`]): nothing is left to run.
    pub made: Option<MadeUpper>,
}

/// The directories of `layers` in overlayfs order (top-most first), materialised, with the
/// store's anchor directory below them when one of them holds whiteouts (see
/// [`Store::lowerdirs`]).
async fn dirs<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    layers: &[BuiltLayer],
) -> Result<Vec<PathBuf>, BuildError> {
    let dirs = super::materialise::dirs(scope.deps, scope.label, layers).await?;
    Ok(scope.deps.store.lowerdirs(dirs))
}

/// Prepares `step`; `None` for config-only steps. `inputs` is a scratch directory that lives
/// until the step is over (heredoc files, downloads, unpacked archives).
pub(super) async fn prepare<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    inputs: &Path,
) -> Result<Option<Prepared>, BuildError> {
    let (sh, layers) = (scope.sh, scope.layers);
    match &step.kind {
        StepKind::Run {
            argv,
            env,
            workdir,
            user,
            mounts,
            network,
            security,
        } => {
            // BuildKit: `--network=default` (and no flag) is the build's network (`--network`).
            let network = match (network, sh.req.buildx.default_network) {
                (Network::Default, Some(build_wide)) => build_wide,
                (own, _) => *own,
            };
            entitled(scope, step, network, *security)?;
            let mut run = RunMounts {
                mounts: Vec::with_capacity(mounts.len()),
                env: env.clone(),
                leases: Vec::new(),
            };
            for m in mounts {
                run.add(scope, step, m, inputs).await?;
            }
            let mut spec = RunSpec {
                argv: argv.clone(),
                env: run.env,
                cwd: workdir.clone(),
                user: user.clone(),
                mounts: run.mounts,
                network: network_mode(network),
                netns: None,
                seccomp: None,
                insecure: *security == Security::Insecure,
                settings: sh.req.buildx.run_settings.clone(),
                ..RunSpec::default()
            };
            // PER_LINUX32 and the qemu CPU model of the stage's platform (issue 16).
            crate::run::set_platform(&mut spec, scope.platform);
            Ok(Some(Prepared {
                action: Action::Run(spec),
                lowerdirs: dirs(scope, layers).await?,
                leases: run.leases,
                made: None,
            }))
        }
        StepKind::Workdir { path, user } if path != "/" => {
            // BuildKit `dispatchWorkdir`: `mkdir -p` with mode 0755, owned by the user.
            let mtime = sh.req.source_date_epoch.unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            });
            Ok(Some(Prepared {
                action: Action::Copy(CopySpec {
                    entries: vec![crate::context::CopyEntry {
                        src: inputs.to_path_buf(),
                        dest: path.clone(),
                        kind: crate::context::EntryKind::Dir,
                        mode: 0o755,
                        mtime,
                        owner: None,
                        xattrs: Vec::new(),
                    }],
                    chown: user.clone(),
                    ..CopySpec::default()
                }),
                lowerdirs: dirs(scope, layers).await?,
                leases: Vec::new(),
                made: None,
            }))
        }
        StepKind::Copy(c) => prepare_copy(scope, step, c, inputs).await.map(Some),
        _ => Ok(None),
    }
}

/// The executor's network for a step's `--network`: `default` is a namespace apart from the
/// host's with pasta.
fn network_mode(network: Network) -> NetworkMode {
    match network {
        Network::Default => NetworkMode::Private,
        Network::None => NetworkMode::None,
        Network::Host => NetworkMode::Host,
    }
}

/// Checks a RUN step against the build's entitlements once more, now that it is resolved: the
/// plan checked the Dockerfile's own instructions, this also covers ONBUILD triggers of a base
/// image, which are only known after the pull.
///
/// Errors: [`ErrorKind::NotEntitled`] at the step's line.
fn entitled<R, E, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    network: Network,
    security: Security,
) -> Result<(), BuildError> {
    let needs = [
        (network == Network::Host).then_some((Entitlement::NetworkHost, "--network=host")),
        (security == Security::Insecure)
            .then_some((Entitlement::SecurityInsecure, "--security=insecure")),
    ];
    for (e, flag) in needs.into_iter().flatten() {
        if !scope.sh.req.entitlements.contains(&e) {
            return Err(BuildError::Dockerfile(scope.sh.dockerfile.error_at(
                step.span,
                3,
                ErrorKind::NotEntitled {
                    instruction: "RUN".into(),
                    flag: flag.into(),
                    entitlement: e.name().into(),
                },
            )));
        }
    }
    Ok(())
}

/// Prepares a COPY or ADD: an archive ADDed onto an empty tree is unpacked straight into the
/// step's upper directory ([`direct_add`]); anything else becomes the helper's copy.
async fn prepare_copy<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    c: &crate::plan::CopyStep,
    inputs: &Path,
) -> Result<Prepared, BuildError> {
    let (sh, layers) = (scope.sh, scope.layers);
    // `--link` (without --chmod, as BuildKit) copies onto an empty tree: the layer holds
    // only what was copied, whatever the earlier layers have at the destination.
    let lowerdirs = if c.link && c.chmod.is_none() && c.chmod_symbolic.is_none() {
        Vec::new()
    } else {
        dirs(scope, layers).await?
    };
    let epoch = sh.req.source_date_epoch;
    let (action, made) = if direct_add::eligible(c, lowerdirs.is_empty(), epoch) {
        match direct(scope, step, c, inputs).await? {
            Direct::Made(made) => (Action::Copy(CopySpec::default()), Some(made)),
            Direct::Entries(entries) => (
                Action::Copy(CopySpec {
                    entries,
                    ..CopySpec::default()
                }),
                None,
            ),
            Direct::No => (copy_action(scope, step, c, inputs).await?, None),
        }
    } else {
        (copy_action(scope, step, c, inputs).await?, None)
    };
    Ok(Prepared {
        action,
        lowerdirs,
        leases: Vec::new(),
        made,
    })
}

/// [`direct_add::try_direct`] on a blocking thread, its errors located at `step`.
async fn direct<R, E, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    c: &crate::plan::CopyStep,
    inputs: &Path,
) -> Result<Direct, BuildError> {
    let (ctx, c2, inputs) = (scope.sh.context.clone(), c.clone(), inputs.to_path_buf());
    tokio::task::spawn_blocking(move || direct_add::try_direct(&ctx, &c2, &inputs))
        .await
        .map_err(|e| BuildError::Internal(e.to_string()))?
        .map_err(|source| BuildError::Source {
            platform: scope.label.to_string(),
            location: location(scope.sh.dockerfile, step),
            source,
        })
}

/// A RUN step's mounts as the executor takes them, in the step's order, with the environment
/// they change (`RUN --mount=type=secret,env=`) and the cache directories they hold.
struct RunMounts {
    mounts: Vec<Mount>,
    env: Vec<String>,
    leases: Vec<CacheLease>,
}

impl RunMounts {
    /// Adds the mount `m` of `step`.
    async fn add<R: Registry, E: Executor, U: Upstream>(
        &mut self,
        scope: &StepScope<'_, R, E, U>,
        step: &Step,
        m: &RunMount,
        inputs: &Path,
    ) -> Result<(), BuildError> {
        let sh = scope.sh;
        let source_err = |source: SourceError| BuildError::Source {
            platform: scope.label.to_string(),
            location: location(sh.dockerfile, step),
            source,
        };
        match m {
            RunMount::Bind {
                target,
                from,
                source,
                readonly,
            } => {
                let lowerdirs = match from {
                    MountSource::Context => context_view(scope, source, inputs, step).await?,
                    MountSource::Stage(i) => {
                        dirs(scope, &scope.upstream.stage(*i).await?.layers).await?
                    }
                    MountSource::Image(r) => {
                        dirs(scope, &scope.upstream.image(r).await?.layers).await?
                    }
                };
                self.mounts.push(Mount::Layers {
                    lowerdirs,
                    subpath: if matches!(from, MountSource::Context)
                        && sh.context.ignore_file().is_some()
                    {
                        // The filtered copy holds just the source, at its root.
                        "/".into()
                    } else {
                        source.clone()
                    },
                    target: target.clone(),
                    readonly: *readonly,
                });
            }
            RunMount::Cache {
                target,
                id,
                sharing,
                readonly,
                mode,
                uid,
                gid,
            } => {
                let caches = scope.caches.clone();
                let (id, sharing, mode, uid, gid) = (id.clone(), *sharing, *mode, *uid, *gid);
                // `locked` may wait for another platform's step: off the runtime.
                let lease = tokio::task::spawn_blocking(move || {
                    caches.acquire(&id, sharing, mode, uid, gid)
                })
                .await
                .map_err(|e| BuildError::Internal(e.to_string()))?
                .map_err(source_err)?;
                self.mounts.push(Mount::Bind {
                    source: lease.path.clone(),
                    target: target.clone(),
                    readonly: *readonly,
                });
                self.leases.push(lease);
            }
            RunMount::Ssh {
                id,
                target,
                required,
            } => match sh.req.buildx.ssh.get(id) {
                Some(socket) => self.mounts.push(Mount::Socket {
                    source: socket.clone(),
                    target: target.clone(),
                }),
                None if *required => {
                    return Err(source_err(SourceError::MissingSsh { id: id.clone() }))
                }
                None => {}
            },
            RunMount::Tmpfs { .. } | RunMount::Secret { .. } | RunMount::File { .. } => {
                self.add_value(&sh.req.secrets, m).map_err(source_err)?
            }
        }
        Ok(())
    }

    /// Adds a mount made of values, with nothing to read: a tmpfs, a file, or a secret (as a
    /// file, an environment variable or both; left out when it was not given and is optional).
    fn add_value(
        &mut self,
        secrets: &BTreeMap<String, Sensitive>,
        m: &RunMount,
    ) -> Result<(), SourceError> {
        match m {
            RunMount::Tmpfs { target, size } => self.mounts.push(Mount::Tmpfs {
                target: target.clone(),
                size: *size,
            }),
            RunMount::Secret {
                id,
                target,
                env: env_name,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(value) = secrets.get(id) else {
                    if *required {
                        return Err(SourceError::MissingSecret { id: id.clone() });
                    }
                    return Ok(());
                };
                if let Some(t) = target {
                    self.mounts.push(Mount::File {
                        target: t.clone(),
                        content: value.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    });
                }
                if let Some(name) = env_name {
                    self.env
                        .retain(|e| e.split_once('=').map(|(k, _)| k) != Some(name));
                    self.env
                        .push(format!("{name}={}", String::from_utf8_lossy(&value.0)));
                }
            }
            RunMount::File {
                target,
                content,
                mode,
            } => self.mounts.push(Mount::File {
                target: target.clone(),
                content: Sensitive(content.clone().into_bytes()),
                mode: *mode,
                uid: 0,
                gid: 0,
            }),
            // Read by `add`.
            RunMount::Bind { .. } | RunMount::Cache { .. } | RunMount::Ssh { .. } => {}
        }
        Ok(())
    }
}

/// The build context as a mount source: the context directory itself, or, when an ignore file
/// applies, a copy of just `source` holding only what it allows.
async fn context_view<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    source: &str,
    inputs: &Path,
    step: &Step,
) -> Result<Vec<PathBuf>, BuildError> {
    let (sh, label) = (scope.sh, scope.label);
    if sh.context.ignore_file().is_none() {
        return Ok(vec![sh.context.root().to_path_buf()]);
    }
    let entries = sh
        .context
        .resolve_copy(&[source.to_string()], "/")
        .map_err(|e| BuildError::Context {
            platform: label.to_string(),
            location: location(sh.dockerfile, step),
            source: Box::new(e),
        })?;
    let view = inputs.join("context-view");
    let work = inputs.join("context-work");
    for d in [&view, &work] {
        std::fs::create_dir_all(d).map_err(|source| BuildError::Store {
            platform: label.to_string(),
            source: StoreError::Io {
                action: "create directory",
                path: d.clone(),
                source,
            },
        })?;
    }
    let spec = SandboxSpec {
        lowerdirs: Vec::new(),
        upperdir: view.clone(),
        workdir: work,
        action: Action::Copy(CopySpec {
            entries,
            ..CopySpec::default()
        }),
        hostname: "polyarch".into(),
        snapshotter: Snapshotter::Auto,
    };
    let outcome = scope
        .deps
        .executor
        .run(&spec, |_| {})
        .await
        .map_err(|source| BuildError::Exec {
            platform: label.to_string(),
            step: 0,
            location: location(sh.dockerfile, step),
            source,
        })?;
    outcome.into_result().map_err(|source| BuildError::Exec {
        platform: label.to_string(),
        step: 0,
        location: location(sh.dockerfile, step),
        source,
    })?;
    Ok(vec![view])
}

/// The executor action of a COPY or ADD.
async fn copy_action<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    c: &CopyStep,
    inputs: &Path,
) -> Result<Action, BuildError> {
    let (sh, label, layers) = (scope.sh, scope.label, scope.layers);
    let loc = location(sh.dockerfile, step);
    let source_err = |source: SourceError| BuildError::Source {
        platform: label.to_string(),
        location: loc.clone(),
        source,
    };
    let context_err = |e: ContextError| BuildError::Context {
        platform: label.to_string(),
        location: loc.clone(),
        source: Box::new(e),
    };
    let epoch = sh.req.source_date_epoch;
    let created_secs = epoch.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let n_sources = c.sources.len() + c.inline.len();
    let dir_forced = n_sources > 1;
    let excludes = Ignore::from_patterns(&c.excludes, Path::new(&format!("{loc} --exclude")))
        .map_err(context_err)?;
    let (mut entries, from_layers) =
        copy_sources(scope, step, c, inputs, &excludes, dir_forced).await?;
    if !c.inline.is_empty() {
        let list = sources::inline_entries(&c.inline, inputs, &c.dest, dir_forced, created_secs)
            .map_err(source_err)?;
        entries.extend(list);
    }
    // With SOURCE_DATE_EPOCH, copied files get clamped mtimes already in the rootfs, not only
    // in the layer tar: later RUN steps (`ls -l`, make) then see the same times whatever the
    // context's mtimes were, and the build stays reproducible.
    if let Some(epoch) = epoch {
        for e in &mut entries {
            e.mtime = e.mtime.min(epoch);
        }
    }
    let ids_from = if c.link && c.chmod.is_none() && c.chmod_symbolic.is_none() && c.chown.is_some()
    {
        Some(dirs(scope, layers).await?)
    } else {
        None
    };
    Ok(Action::Copy(CopySpec {
        entries,
        chown: c.chown.clone(),
        chmod: c.chmod,
        chmod_symbolic: c.chmod_symbolic.clone(),
        from_layers,
        ids_from,
    }))
}

/// Where a COPY or ADD takes its files from (heredocs apart): entries from the build context
/// (ADD URLs downloaded and, with `--unpack`, unpacked; local paths selected, archives ADD
/// unpacks), or the layers of a stage or image (`--from`) to copy out of.
async fn copy_sources<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    c: &CopyStep,
    inputs: &Path,
    excludes: &Ignore,
    dir_forced: bool,
) -> Result<(Vec<CopyEntry>, Option<LayerSource>), BuildError> {
    let sh = scope.sh;
    let source_err = |source: SourceError| BuildError::Source {
        platform: scope.label.to_string(),
        location: location(sh.dockerfile, step),
        source,
    };
    let epoch = sh.req.source_date_epoch;
    let layer_source = |lowerdirs: Vec<PathBuf>| LayerSource {
        lowerdirs,
        sources: c.sources.clone(),
        dest: c.dest.clone(),
        excludes: c.excludes.clone(),
        max_mtime: epoch,
    };
    match &c.from {
        CopyFrom::Context => {
            let (urls, paths): (Vec<&String>, Vec<&String>) =
                c.sources.iter().partition(|s| crate::plan::is_url(s));
            let mut entries = url_entries(&urls, c, inputs, dir_forced)
                .await
                .map_err(source_err)?;
            if !paths.is_empty() {
                let paths: Vec<String> = paths.into_iter().cloned().collect();
                let dest = if dir_forced && !c.dest.ends_with('/') {
                    format!("{}/", c.dest)
                } else {
                    c.dest.clone()
                };
                let unpack = c.add && c.unpack.unwrap_or(true);
                let ctx = sh.context.clone();
                let work = inputs.join("archives");
                let ex = excludes.clone();
                let got = tokio::task::spawn_blocking(move || {
                    sources::context_entries(&ctx, &paths, &dest, &ex, unpack, &work)
                })
                .await
                .map_err(|e| BuildError::Internal(e.to_string()))?
                .map_err(source_err)?;
                entries.extend(got);
            }
            Ok((entries, None))
        }
        CopyFrom::Stage(i) => {
            let src = scope.upstream.stage(*i).await?;
            Ok((
                Vec::new(),
                Some(layer_source(dirs(scope, &src.layers).await?)),
            ))
        }
        CopyFrom::Image(r) => {
            let src = scope.upstream.image(r).await?;
            Ok((
                Vec::new(),
                Some(layer_source(dirs(scope, &src.layers).await?)),
            ))
        }
    }
}

/// The entries of ADD's URL sources: each downloaded into its own directory under `inputs`
/// (verified against `--checksum`), and unpacked when `--unpack` asks and it is an archive.
async fn url_entries(
    urls: &[&String],
    c: &CopyStep,
    inputs: &Path,
    dir_forced: bool,
) -> Result<Vec<CopyEntry>, SourceError> {
    let mut entries = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let dir = inputs.join(format!("url-{i}"));
        std::fs::create_dir_all(&dir).map_err(|source| SourceError::Io {
            action: "create",
            path: dir.clone(),
            source,
        })?;
        // Downloaded already when the step's key was computed (no --checksum).
        let e = match super::step_inputs::prefetched(&dir) {
            Some(e) => e,
            None => {
                sources::fetch_url(url, c.checksum.as_deref(), &dir, &c.dest, dir_forced).await?
            }
        };
        if c.unpack == Some(true) {
            if let Some(mt) = sources::archive_media_type(&e.src)? {
                entries.extend(sources::unpack_entries(&e.src, mt, &dir, &c.dest)?);
                continue;
            }
        }
        entries.push(e);
    }
    Ok(entries)
}
