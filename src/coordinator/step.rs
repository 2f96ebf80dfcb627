//! Running one step of a stage, or reusing what it made: its key from the state it runs on,
//! its instruction and what it reads ([`super::step_inputs`]); on a step cache hit its layer
//! and history time as they were; on a miss, prepare what the sandbox does
//! ([`super::actions`]), run it on the stage's layers with its output as progress, turn what it
//! changed into a layer in the store, and record the entry.
//!
//! Level 3 (coordinator), under [`super::stage`]: a step sees only its [`StepScope`]. Must not
//! know the stage table or the other platforms; the registry only through [`super::upload`],
//! which uploads a pushed stage's layer while it is written.

use tempfile::TempDir;

use super::actions;
use super::scope::{StepScope, Upstream};
use super::step_cache::Found;
use super::upload;
use super::*;
use crate::cache::{step_key, Entry, EntryLayer, StepInputs};
use crate::executor::StepOutcome;

/// Bytes of a step's output shown as progress before the rest is clipped (BuildKit's default
/// step log limit is 2 MiB).
const STEP_OUTPUT_LIMIT: usize = 2 << 20;

/// What one step gave its stage.
pub(super) struct StepDone {
    /// Its entry (key, history time, layer) and where the layer's blob can be fetched.
    pub record: StepRecord,
    /// The layer it made, if any.
    pub layer: Option<BuiltLayer>,
    /// True when it came from the step cache.
    pub cached: bool,
}

/// Runs `step` (number `n` of `total` in its stage) on the state keyed `parent`, or reuses
/// what it made from the step cache; `ran_before` says whether the step before it ran (then a
/// plain miss needs no explanation in progress).
///
/// Errors: gathering its key inputs, running it (see [`run_step`]).
pub(super) async fn run_or_reuse<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    (n, total): (usize, usize),
    parent: &CacheKey,
    ran_before: bool,
) -> Result<StepDone, BuildError> {
    let (sh, deps) = (scope.sh, scope.deps);
    let started = Instant::now();
    let scratch = deps
        .store
        .temp_dir("step")
        .map_err(|source| BuildError::Store {
            platform: scope.label.to_string(),
            source,
        })?;
    let key = key_of(scope, step, parent, &scratch).await?;
    let found = match sh.cache.disabled_for(scope.stage_name) {
        Some(why) => Found::Miss {
            reason: why,
            warn: false,
        },
        None => sh.cache.lookup(&key)?,
    };
    let announce = |cached: bool, cache_miss: Option<String>| {
        deps.sink.emit(Event::StepStarted {
            platform: scope.label.to_string(),
            step: n,
            total,
            location: location(sh.dockerfile, step),
            text: step.text.clone(),
            stage: scope.stage_name.unwrap_or_default().to_string(),
            cached,
            cache_miss,
        })
    };
    let done = match found {
        Found::Hit(record) => {
            announce(true, None);
            let layer = record.entry.layer.as_ref().map(|l| BuiltLayer {
                descriptor: l.descriptor(),
                diff_id: l.diff_id.clone(),
                origin: record.origin.clone(),
            });
            StepDone {
                record: *record,
                layer,
                cached: true,
            }
        }
        Found::Miss { reason, warn } => {
            if warn {
                deps.sink.emit(Event::Warning {
                    message: format!(
                        "{}: step {n} at {}: {reason}; running the step again",
                        scope.label,
                        location(sh.dockerfile, step)
                    ),
                });
            }
            announce(false, (warn || !ran_before).then_some(reason));
            match run_and_record(scope, step, n, key, &scratch).await {
                Ok(done) => done,
                Err(e) => {
                    deps.sink.emit(step_failed(scope.label, n, started, &e));
                    return Err(e);
                }
            }
        }
    };
    deps.sink.emit(Event::StepFinished {
        platform: scope.label.to_string(),
        step: n,
        millis: started.elapsed().as_millis() as u64,
        layer: done.layer.as_ref().map(|l| l.descriptor.digest.clone()),
        cached: done.cached,
    });
    // What is left of the step's directory (its inputs, an unpacked archive) is removed in the
    // background: unlinking a whole tree can take seconds on a busy disk.
    let left = scratch.keep();
    if deps.store.discard(&left).is_err() {
        let _ = std::fs::remove_dir_all(&left);
    }
    Ok(done)
}

/// The progress event for step `n` of `label` that failed with `e` after starting at
/// `started`: the command's status when it ran and exited non-zero, and the error's first line.
fn step_failed(label: &str, n: usize, started: Instant, e: &BuildError) -> Event {
    let status = match e {
        BuildError::StepFailed { status, .. } => Some(*status),
        _ => None,
    };
    Event::StepFailed {
        platform: label.to_string(),
        step: n,
        millis: started.elapsed().as_millis() as u64,
        status,
        message: e.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

/// The key of `step` on the state `parent`: its inputs gathered into `scratch/inputs`.
async fn key_of<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    parent: &CacheKey,
    scratch: &TempDir,
) -> Result<CacheKey, BuildError> {
    let inputs = scratch.path().join("inputs");
    std::fs::create_dir_all(&inputs).map_err(|source| BuildError::Store {
        platform: scope.label.to_string(),
        source: StoreError::Io {
            action: "create directory",
            path: inputs.clone(),
            source,
        },
    })?;
    let sources = super::step_inputs::gather(scope, step, &inputs).await?;
    let c = scope.sh.req.compression;
    let compression = (c != layer::Compression::default()).then(|| c.label());
    Ok(step_key(&StepInputs {
        parent,
        platform: &scope.platform.normalized().to_string(),
        created_by: &step.created_by,
        step: &step.kind,
        sources: &sources,
        source_date_epoch: scope.sh.req.source_date_epoch,
        compression: compression.as_deref(),
    }))
}

/// Runs `step` (a cache miss) and records what it made under `key`; a failure to record is
/// only a warning.
async fn run_and_record<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    n: usize,
    key: CacheKey,
    scratch: &TempDir,
) -> Result<StepDone, BuildError> {
    let sh = scope.sh;
    let layer = run_step(scope, step, n, scratch).await?;
    let entry = Entry {
        key,
        created: sh.created.clone(),
        created_by: step.created_by.clone(),
        layer: layer.as_ref().map(|l| EntryLayer {
            media_type: l.descriptor.media_type.clone(),
            digest: l.descriptor.digest.clone(),
            size: l.descriptor.size,
            diff_id: l.diff_id.clone(),
        }),
    };
    if let Err(e) = sh.cache.record(&entry) {
        scope.deps.sink.emit(Event::Warning {
            message: format!("cannot record step {n} in the step cache: {e}"),
        });
    }
    Ok(StepDone {
        record: StepRecord {
            entry,
            origin: None,
        },
        layer,
        cached: false,
    })
}

/// Runs `step`, the `n`th of its stage, in `scope`, with `scratch` as its work directory
/// (its `inputs/` already made); returns the layer it made, or `None` for config-only steps
/// and steps that changed nothing.
///
/// Errors: preparing its inputs, running it (a non-zero exit is [`BuildError::StepFailed`]),
/// or writing its layer to the store.
async fn run_step<R: Registry, E: Executor, U: Upstream>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    n: usize,
    scratch: &TempDir,
) -> Result<Option<BuiltLayer>, BuildError> {
    let (sh, deps) = (scope.sh, scope.deps);
    let pname = scope.label.to_string();
    let store_err = |source| BuildError::Store {
        platform: pname.clone(),
        source,
    };
    let inputs = scratch.path().join("inputs");
    let Some(prepared) = actions::prepare(scope, step, &inputs).await? else {
        return Ok(None);
    };
    let upper = scratch.path().join("upper");
    let exact = match prepared.made {
        // Made without the sandbox (an archive ADDed onto an empty tree).
        Some(made) => {
            std::fs::rename(&made.dir, &upper).map_err(|source| {
                store_err(StoreError::Io {
                    action: "move into place",
                    path: made.dir.clone(),
                    source,
                })
            })?;
            made.exact
        }
        None => sandboxed(scope, step, n, prepared, scratch.path()).await?,
    };
    let made = if dir_is_empty(&upper) {
        None
    } else {
        if let Some(summary) = layer::exact_summary(&exact) {
            // Once per step, never per entry (issue 18).
            deps.sink.emit(Event::Warning {
                message: format!("[{pname}] {}: {summary}", location(sh.dockerfile, step)),
            });
        }
        Some(write_layer(scope, &upper, exact).await?)
    };
    Ok(made)
}

/// Runs the prepared step in the sandbox on `scratch/upper` (and `scratch/work`); returns the
/// entries the filesystem could not hold exactly.
///
/// Errors: running it (a non-zero exit is [`BuildError::StepFailed`]).
async fn sandboxed<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    n: usize,
    prepared: actions::Prepared,
    scratch: &Path,
) -> Result<Vec<layer::ExactEntry>, BuildError> {
    let pname = scope.label.to_string();
    let upper = scratch.join("upper");
    let work = scratch.join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|source| BuildError::Store {
            platform: pname.clone(),
            source: StoreError::Io {
                action: "create directory",
                path: d.to_path_buf(),
                source,
            },
        })?;
    }
    let spec = SandboxSpec {
        lowerdirs: prepared.lowerdirs,
        upperdir: upper,
        workdir: work,
        action: prepared.action,
        hostname: "polyarch".into(),
        snapshotter: Snapshotter::Auto,
    };
    let outcome = execute(scope, step, n, &spec).await?;
    // Cache directories are released (unlocked) as soon as the step is over.
    drop(prepared.leases);
    if outcome.status != 0 {
        return Err(BuildError::StepFailed {
            platform: pname,
            step: n,
            location: location(scope.sh.dockerfile, step),
            instruction: step.text.clone(),
            status: outcome.status,
            tail: outcome.tail,
        });
    }
    Ok(outcome.exact)
}

/// Runs `spec` in the sandbox, its output shown as progress of step `n` (clipped past
/// [`STEP_OUTPUT_LIMIT`]); returns how it ended.
async fn execute<R: Registry, E: Executor, U>(
    scope: &StepScope<'_, R, E, U>,
    step: &Step,
    n: usize,
    spec: &SandboxSpec,
) -> Result<StepOutcome, BuildError> {
    let pname = scope.label.to_string();
    let sink = scope.deps.sink.clone();
    let p2 = pname.clone();
    // Progress output is capped per step, as BuildKit caps step logs: a step that prints
    // hundreds of megabytes must not flood the terminal or a CI log. The executor still keeps
    // the tail of the output for the error message.
    let mut shown = 0usize;
    let outcome = scope
        .deps
        .executor
        .run(spec, move |line| {
            if shown > STEP_OUTPUT_LIMIT {
                return;
            }
            // Each line also costs its rendered prefix (`[platform] #n | `), about 32 bytes.
            shown += line.line.len() + 32;
            let text = if shown > STEP_OUTPUT_LIMIT {
                format!(
                    "[output clipped: this step printed more than {} MiB; the rest is not shown]",
                    STEP_OUTPUT_LIMIT >> 20
                )
            } else {
                line.line
            };
            sink.emit(Event::Output {
                platform: p2.clone(),
                step: n,
                stream: line.stream,
                line: text,
            })
        })
        .await
        .map_err(|source| BuildError::Exec {
            platform: pname.clone(),
            step: n,
            location: location(scope.sh.dockerfile, step),
            source,
        })?;
    if let Some(snapshotter) = outcome.snapshotter {
        tracing::debug!(platform = %pname, step = n, %snapshotter, "step changes captured");
    }
    Ok(outcome)
}

/// Turns a step's upper dir into a layer: tar, compress and hash it into the store (uploading
/// it to the push target meanwhile when the stage is pushed, see [`super::upload`]), and adopt
/// the directory as the layer's unpacked form. `exact` are the entries the directory could not
/// hold exactly, written into the layer as they should be. The same layer made by another
/// platform (or process) is compressed once: the tar is hashed first (cheap), then, holding
/// that layer's lock, the blob made before is taken, or made.
async fn write_layer<R: Registry, E, U>(
    scope: &StepScope<'_, R, E, U>,
    upper: &Path,
    exact: Vec<layer::ExactEntry>,
) -> Result<BuiltLayer, BuildError> {
    let pname = scope.label;
    let store = scope.deps.store.clone();
    let opts = LayerOptions {
        source_date_epoch: scope.sh.req.source_date_epoch.map(|e| e.max(0) as u64),
        compression: scope.sh.req.compression,
        threads: 0,
        exact,
    };
    let label = opts.compression.label();
    let store_err = |source| BuildError::Store {
        platform: pname.to_string(),
        source,
    };
    // The step's overlay is volatile (its unmount did not wait for the disk): the directory
    // becomes a layer of the store, so its data is written out now, meanwhile, and waited for
    // before the layer is recorded.
    let synced = sync_in_background(upper);
    let made_before = made_before(&store, upper, &opts, &label)
        .await
        .map_err(|e| with_platform(e, pname))?;
    // Held until the blob is recorded: another platform making the same layer waits for it.
    let (_lock, fingerprint, blob) = made_before;
    if let Some(blob) = blob {
        synced.await.map_err(store_err)?;
        return Ok(BuiltLayer {
            descriptor: Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size),
            diff_id: blob.diff_id.clone(),
            origin: None,
        });
    }
    // write_layer hashes the compressed stream it writes: the store need not hash it again.
    let writer = store.blob_writer_hashed_by_caller().map_err(store_err)?;
    let (teed, growing) = match scope.upload_to {
        Some(_) => {
            let (teed, blob) = upload::Teed::new(writer).map_err(|source| {
                store_err(StoreError::Io {
                    action: "open for the upload",
                    path: store.root().join("tmp"),
                    source,
                })
            })?;
            (Ok(teed), Some(blob))
        }
        None => (Err(writer), None),
    };
    // Tar, compress and hash on a blocking thread: plain `Write` code (STYLE habit 9).
    let upper2 = upper.to_path_buf();
    let store2 = store.clone();
    let compress =
        tokio::task::spawn_blocking(move || compress_into(&store2, &upper2, &opts, teed));
    let follow = async {
        if let (Some(target), Some(blob)) = (scope.upload_to, growing) {
            upload::follow(&scope.deps.registry, &scope.sh.early, target, blob).await;
        }
    };
    let (written, ()) = tokio::join!(compress, follow);
    let (blob, _dir) = written
        .map_err(|e| BuildError::Internal(e.to_string()))?
        .map_err(|e| with_platform(e, pname))?;
    synced.await.map_err(store_err)?;
    store.record_layer_blob(&blob, &label).map_err(store_err)?;
    store
        .record_layer_tar(&fingerprint, &blob.diff_id)
        .map_err(store_err)?;
    Ok(BuiltLayer {
        descriptor: Descriptor::new(blob.media_type.clone(), blob.digest.clone(), blob.size),
        diff_id: blob.diff_id.clone(),
        origin: None,
    })
}

/// Starts writing the filesystem holding `upper` to disk (syncfs(2)) on a blocking thread;
/// the returned future ends when it is written. Errors: [`StoreError::Io`].
fn sync_in_background(
    upper: &Path,
) -> impl std::future::Future<Output = Result<(), crate::store::StoreError>> {
    // Opened now: the directory may be moved into the store before the thread runs.
    let dir = std::fs::File::open(upper);
    let upper = upper.to_path_buf();
    let io = move |e: std::io::Error| crate::store::StoreError::Io {
        action: "sync the layer directory",
        path: upper.clone(),
        source: e,
    };
    let dir = dir.map_err(io.clone());
    let task =
        tokio::task::spawn_blocking(move || rustix::fs::syncfs(&dir?).map_err(|e| io(e.into())));
    async move {
        task.await.map_err(|e| crate::store::StoreError::Io {
            action: "sync the layer directory",
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// The blob made before for the layer in `upper` with `opts`' compression (labelled `label`),
/// found by the BLAKE3 fingerprint of its tar stream ([`layer::layer_fingerprint`], which the
/// caller records with the diff_id once it has made the blob), and the layer's lock, held by
/// the caller until its own blob is recorded. When there is one, `upper` is adopted as that
/// layer's unpacked form.
async fn made_before(
    store: &Store,
    upper: &Path,
    opts: &LayerOptions,
    label: &str,
) -> Result<(crate::store::LayerLock, String, Option<layer::LayerBlob>), BuildError> {
    let (store, upper, opts, label) = (
        store.clone(),
        upper.to_path_buf(),
        opts.clone(),
        label.to_string(),
    );
    let store_err = |source| BuildError::Store {
        platform: String::new(),
        source,
    };
    tokio::task::spawn_blocking(move || {
        let fingerprint =
            layer::layer_fingerprint(&upper, &opts).map_err(|source| BuildError::Layer {
                platform: String::new(),
                source,
            })?;
        let lock = store.lock_layer_tar(&fingerprint).map_err(store_err)?;
        let blob = store.layer_blob_by_tar(&fingerprint, &label);
        if let Some(blob) = &blob {
            store
                .adopt_layer_dir(&upper, &blob.diff_id)
                .map_err(store_err)?;
        }
        Ok((lock, fingerprint, blob))
    })
    .await
    .map_err(|e| BuildError::Internal(e.to_string()))?
}

/// Writes `upper` as a layer into the store through `out` (teed to an upload, or straight),
/// commits it, and adopts `upper` as its unpacked form. A teed writer tells the upload the
/// blob is finished as soon as its last byte is readable.
fn compress_into(
    store: &Store,
    upper: &Path,
    opts: &LayerOptions,
    out: Result<upload::Teed, crate::store::BlobWriter>,
) -> Result<(layer::LayerBlob, PathBuf), BuildError> {
    let layer_err = |source| BuildError::Layer {
        platform: String::new(),
        source,
    };
    let store_err = |source| BuildError::Store {
        platform: String::new(),
        source,
    };
    let (blob, w) = match out {
        Ok(mut teed) => {
            let blob = layer::write_layer(upper, &mut teed, opts).map_err(layer_err)?;
            let (w, tx) = teed
                .into_inner()
                .map_err(|source| layer_err(LayerError::Write { source }))?;
            let _ = tx.send(crate::registry::BlobProgress::Finished(Descriptor::new(
                blob.media_type.clone(),
                blob.digest.clone(),
                blob.size,
            )));
            (blob, w)
        }
        Err(mut w) => (
            layer::write_layer(upper, &mut w, opts).map_err(layer_err)?,
            w,
        ),
    };
    w.commit(Some(&blob.digest)).map_err(store_err)?;
    let dir = store
        .adopt_layer_dir(upper, &blob.diff_id)
        .map_err(store_err)?;
    Ok((blob, dir))
}

pub(super) fn with_platform(e: BuildError, p: &str) -> BuildError {
    match e {
        BuildError::Store { source, .. } => BuildError::Store {
            platform: p.into(),
            source,
        },
        BuildError::Layer { source, .. } => BuildError::Layer {
            platform: p.into(),
            source,
        },
        other => other,
    }
}

pub(super) fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}
