//! Stage builds: each needed stage of each target platform, built once per [`StageKey`] and
//! awaited by every platform (and every later stage) that needs it.
//!
//! A stage's build is a once-cell in a per-build map: the first platform that asks runs the
//! build, the others wait for the same result (and one of them takes over if the first is
//! cancelled). A `FROM --platform=$BUILDPLATFORM` builder that
//! declares no target-dependent ARG therefore runs once for all target platforms; one that
//! declares `ARG TARGETARCH` runs once per target architecture, natively each time.
//!
//! Level 3 (coordinator), under [`super::image`]: runs each step through [`super::step`] and
//! applies config-only ones with [`super::config`]. Must not write manifests or push.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::{FutureExt, LocalBoxFuture};
use tokio::sync::OnceCell;

use super::base::pull_base;
use super::config::{apply_config, ensure_path};
use super::scope::{StepScope, Upstream};
use super::sources::CacheMounts;
use super::step::{run_or_reuse, StepDone};
use super::*;
use crate::cache::{base_key, state_after, BaseInput};
use crate::plan::{StageGraph, StageKey};

type StageResult = Result<Arc<BuiltStage>, Arc<BuildError>>;
type Cell = Arc<OnceCell<StageResult>>;

/// The per-build table of stage builds and pulled images.
pub(super) struct Stages<'a, R, E> {
    pub sh: &'a Shared<'a>,
    pub deps: &'a Deps<R, E>,
    pub caches: CacheMounts,
    builds: Mutex<HashMap<StageKey, Cell>>,
    images: Mutex<HashMap<(String, String), Cell>>,
}

/// The cell for `key` in `map`, made when missing.
fn cell<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, Cell>>, key: K) -> Cell {
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .clone()
}

/// Turns a shared failure back into an error (unwrapped when nobody else holds it).
pub(super) fn unshare(e: Arc<BuildError>) -> BuildError {
    Arc::try_unwrap(e).unwrap_or_else(BuildError::Shared)
}

impl<'a, R: Registry, E: Executor> Stages<'a, R, E> {
    pub(super) fn new(sh: &'a Shared<'a>, deps: &'a Deps<R, E>) -> Self {
        Stages {
            sh,
            deps,
            caches: CacheMounts::new(deps.store.root()),
            builds: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
        }
    }

    /// The built stage for `sel` (a selection of `graph`), building it if no platform has yet.
    pub(super) fn stage(
        &'a self,
        sel: &Selection,
        graph: &Arc<StageGraph>,
    ) -> LocalBoxFuture<'a, Result<Arc<BuiltStage>, BuildError>> {
        let cell = cell(&self.builds, sel.key.clone());
        let sel = sel.clone();
        let graph = graph.clone();
        async move {
            cell.get_or_init(|| async move {
                self.build_stage(sel, graph)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            })
            .await
            .clone()
            .map_err(unshare)
        }
        .boxed_local()
    }

    /// The stage built under `key` in this build, if it was built (and succeeded).
    pub(super) fn built(&self, key: &StageKey) -> Option<Arc<BuiltStage>> {
        let map = self.builds.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)?.get()?.as_ref().ok().cloned()
    }

    /// Every stage built (and succeeded) in this build.
    pub(super) fn all_built(&self) -> Vec<Arc<BuiltStage>> {
        let map = self.builds.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&StageKey> = map.keys().collect();
        keys.sort_by_key(|k| k.to_string());
        keys.into_iter()
            .filter_map(|k| map.get(k)?.get()?.as_ref().ok().cloned())
            .collect()
    }

    /// The stage `index` as the stage of `sel` needs it: from the graph, or selected now (a
    /// stage only an ONBUILD trigger names).
    pub(super) async fn dependency(
        &'a self,
        sel: &Selection,
        graph: &Arc<StageGraph>,
        index: usize,
    ) -> Result<Arc<BuiltStage>, BuildError> {
        if let Some(dep) = graph.get(index) {
            return self.stage(dep, graph).await;
        }
        let sub = Arc::new(sel.select_dependency(self.sh.dockerfile, index)?);
        let dep = sub
            .get(index)
            .cloned()
            .ok_or_else(|| BuildError::Internal(format!("stage {index} not selected")))?;
        self.stage(&dep, &sub).await
    }

    /// An image's config and layers for `platform`, pulled once per build.
    pub(super) fn image(
        &'a self,
        reference: &str,
        platform: &Platform,
    ) -> LocalBoxFuture<'a, Result<Arc<BuiltStage>, BuildError>> {
        let cell = cell(
            &self.images,
            (reference.to_string(), platform.normalized().to_string()),
        );
        let reference = reference.to_string();
        let platform = platform.clone();
        async move {
            cell.get_or_init(|| async move {
                let pull = self.sh.cache.options().pull;
                let pulled = match super::named::context_name(&reference) {
                    Some(name) => super::named::load(self.deps, self.sh.req, &platform, name).await,
                    None => pull_base(self.deps, &platform, &reference, pull).await,
                };
                pulled
                    .map(|b| {
                        let result = base_key(
                            &BaseInput::Image {
                                manifest: &b.manifest,
                            },
                            &platform.normalized().to_string(),
                        );
                        Arc::new(BuiltStage {
                            config: b.config,
                            layers: b.layers,
                            result,
                            steps: Vec::new(),
                            run: 0,
                            cached: 0,
                        })
                    })
                    .map_err(Arc::new)
            })
            .await
            .clone()
            .map_err(unshare)
        }
        .boxed_local()
    }

    /// Builds one stage: its base, then its steps (ONBUILD triggers of the base first), each
    /// run or reused from the step cache.
    async fn build_stage(
        &'a self,
        sel: Selection,
        graph: Arc<StageGraph>,
    ) -> Result<BuiltStage, BuildError> {
        let sh = self.sh;
        let df = sh.dockerfile;
        let label = platform_label(&sel, &graph, df);
        self.announce(&sel)?;
        let (mut config, mut layers, mut state) = self.base(&sel, &graph, &label).await?;
        config.architecture = sel.platform.architecture.clone();
        config.os = sel.platform.os.clone();
        config.variant = sel.platform.variant.clone();
        config.os_version = sel.platform.os_version.clone();
        ensure_path(&mut config);
        let base = base_config(&config);
        // Triggers run in this stage and never carry over (BuildKit clears them).
        config.config.on_build = None;
        let plan = sel.resolve(df, &base)?;
        let upstream = StageUpstream {
            stages: self,
            sel: &sel,
            graph: &graph,
        };
        let upload_to = pushed_stage(sh, &sel, &graph)
            .then(|| push_target(sh.req).cloned())
            .flatten();
        let mut done = BuiltStage {
            config: ImageConfig::default(),
            layers: Vec::new(),
            result: state.clone(),
            steps: Vec::with_capacity(plan.steps.len()),
            run: 0,
            cached: 0,
        };
        let mut ran_before = false;
        for (i, step) in plan.steps.iter().enumerate() {
            let scope = StepScope {
                sh,
                deps: self.deps,
                caches: &self.caches,
                upstream: &upstream,
                label: &label,
                platform: &sel.platform,
                stage_name: sel.stage_name.as_deref(),
                layers: &layers,
                upload_to: upload_to.as_ref(),
            };
            let StepDone {
                record,
                layer,
                cached,
            } = run_or_reuse(&scope, step, (i + 1, plan.steps.len()), &state, ran_before).await?;
            ran_before = !cached;
            if cached {
                done.cached += 1;
            } else {
                done.run += 1;
            }
            // Only steps that work on the filesystem move the state later steps run on: a
            // config-only step (ENV, ARG, LABEL...) reaches the steps after it through their
            // own instruction (a RUN's environment, a COPY's resolved paths), so a changed
            // LABEL or an ARG no later COPY reads does not run those again (BuildKit's rule).
            if step.creates_layer() {
                state = state_after(
                    &record.entry.key,
                    record.entry.layer.as_ref().map(|l| &l.diff_id),
                );
            }
            record_step(&mut config, &mut layers, step, layer, &record.entry.created);
            done.steps.push(record);
        }
        done.config = config;
        done.layers = layers;
        done.result = state;
        Ok(done)
    }

    /// Tells progress the stage starts, and how its RUN steps run here (natively or through
    /// which emulator; nothing when it has none).
    fn announce(&self, sel: &Selection) -> Result<(), BuildError> {
        let df = self.sh.dockerfile;
        let stage_label = sel
            .stage_name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", sel.stage_index));
        let has_run = df.stages[sel.stage_index]
            .instructions
            .iter()
            .any(|i| matches!(i.kind, InstructionKind::Run { .. }));
        let runs = if has_run {
            match emulation::classify(&sel.platform, &self.sh.req.binfmt_dir)? {
                Support::Native => "natively".to_string(),
                Support::Emulated { handler, .. } => match sel.platform.qemu_cpu() {
                    Some(cpu) => format!("emulated through {handler} (cpu {cpu})"),
                    None => format!("emulated through {handler}"),
                },
            }
        } else {
            String::new()
        };
        self.deps.sink.emit(Event::StageStarted {
            stage: stage_label,
            platform: sel.platform.to_string(),
            key: sel.key.to_string(),
            runs,
        });
        Ok(())
    }

    /// The config and layers the stage starts from, and the key of that state: none for
    /// `scratch`, a pulled image's, or an earlier stage's.
    async fn base(
        &'a self,
        sel: &Selection,
        graph: &Arc<StageGraph>,
        label: &str,
    ) -> Result<(ImageConfig, Vec<BuiltLayer>, CacheKey), BuildError> {
        let platform = sel.platform.normalized().to_string();
        Ok(match &sel.base {
            BaseImage::Scratch => {
                self.deps.sink.emit(Event::BaseResolved {
                    platform: label.to_string(),
                    reference: "scratch".into(),
                    digest: None,
                });
                let key = base_key(&BaseInput::Scratch, &platform);
                (ImageConfig::default(), Vec::new(), key)
            }
            BaseImage::Image(reference) => {
                let img = self.image(reference, &sel.platform).await?;
                (img.config.clone(), img.layers.clone(), img.result.clone())
            }
            BaseImage::Stage(i) => {
                let parent = self.dependency(sel, graph, *i).await?;
                let key = base_key(
                    &BaseInput::Stage {
                        result: &parent.result,
                    },
                    &platform,
                );
                (parent.config.clone(), parent.layers.clone(), key)
            }
        })
    }
}

/// What planning needs to know of the base's config: its environment, working directory,
/// user, shell and ONBUILD triggers.
fn base_config(config: &ImageConfig) -> BaseConfig {
    let c = &config.config;
    BaseConfig {
        env: c.env.clone().unwrap_or_default(),
        working_dir: c.working_dir.clone(),
        user: c.user.clone(),
        shell: c.shell.clone(),
        on_build: c.on_build.clone().unwrap_or_default(),
        env_unknown: false,
    }
}

/// Adds what a step made to the stage: its layer (and diff_id), or else its change to the
/// config; then its history entry, `created` at `created`.
fn record_step(
    config: &mut ImageConfig,
    layers: &mut Vec<BuiltLayer>,
    step: &Step,
    made: Option<BuiltLayer>,
    created: &str,
) {
    let made_layer = made.is_some();
    if let Some(layer) = made {
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        layers.push(layer);
    } else {
        apply_config(config, &step.kind);
    }
    if matches!(step.kind, StepKind::Workdir { .. }) && made_layer {
        // WORKDIR both makes its directory (a layer when it was missing) and sets the
        // config.
        apply_config(config, &step.kind);
    }
    if step.in_history() {
        config.history.push(History {
            created: Some(created.to_string()),
            created_by: Some(step.created_by.clone()),
            comment: Some("polyarch".into()),
            empty_layer: !made_layer,
        });
    }
}

/// The other stages and images as one stage of the table reads them: stages selected for its
/// graph (or for it alone, when only an ONBUILD trigger names them), images for its platform.
struct StageUpstream<'s, 'a, R, E> {
    stages: &'a Stages<'a, R, E>,
    sel: &'s Selection,
    graph: &'s Arc<StageGraph>,
}

impl<R: Registry, E: Executor> Upstream for StageUpstream<'_, '_, R, E> {
    async fn stage(&self, index: usize) -> Result<Arc<BuiltStage>, BuildError> {
        self.stages.dependency(self.sel, self.graph, index).await
    }

    async fn image(&self, reference: &str) -> Result<Arc<BuiltStage>, BuildError> {
        self.stages.image(reference, &self.sel.platform).await
    }
}

/// Whether `sel`'s layers end up in the pushed image of `graph`'s target: the target stage and
/// the stages it starts `FROM` on the same platform, when the build pushes.
fn pushed_stage(sh: &Shared<'_>, sel: &Selection, graph: &StageGraph) -> bool {
    if push_target(sh.req).is_none() {
        return false;
    }
    let target = graph.target();
    let mut at = target;
    loop {
        if at.stage_index == sel.stage_index && at.platform.same_as(&sel.platform) {
            return true;
        }
        match &at.base {
            BaseImage::Stage(i) => match graph.get(*i) {
                Some(next) if next.platform.same_as(&target.platform) => at = next,
                _ => return false,
            },
            _ => return false,
        }
    }
}

/// How progress names a stage's steps: the target platform for the target stage that runs as
/// the target, otherwise the platform it runs as and the stage's name (`linux/amd64 build`).
pub(super) fn platform_label(sel: &Selection, graph: &StageGraph, df: &Dockerfile) -> String {
    let is_target = graph.target().stage_index == sel.stage_index;
    if is_target && df.stages[sel.stage_index].platform.is_none() {
        sel.platform.to_string()
    } else {
        let name = sel
            .stage_name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", sel.stage_index));
        format!("{} {name}", sel.platform)
    }
}
