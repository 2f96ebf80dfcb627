//! `build --smoke-test CMD`: the release gate. CMD runs in each platform's finished image (its
//! layers, environment, working directory and user; its entrypoint left out) in the same
//! sandbox as a `RUN` step, emulated where the step would be, before the image is pushed; a
//! non-zero exit fails the build (exit 1), so no tag moves.
//!
//! Level 3 (coordinator), under [`super::image`]: runs one command through the [`Executor`]
//! (the `RUN` path) with its output as progress. Must not push or change the image.

use super::*;
use crate::run::{image_command, set_platform, shell_or_exec};

/// Runs the build's smoke test, if it has one, in the image made of `config` and `layers`
/// (base first) for `pname`.
///
/// Errors: [`BuildError::SmokeTestFailed`] for a non-zero exit, [`BuildError::Exec`] when the
/// sandbox could not run it, [`BuildError::Store`] for its scratch directories.
pub(super) async fn smoke_test<R: Registry, E: Executor>(
    sh: &Shared<'_>,
    deps: &Deps<R, E>,
    pname: &str,
    config: &ImageConfig,
    layers: &[BuiltLayer],
) -> Result<(), BuildError> {
    let Some(command) = &sh.req.smoke_test else {
        return Ok(());
    };
    let store_err = |source| BuildError::Store {
        platform: pname.to_string(),
        source,
    };
    let scratch = deps.store.temp_dir("smoke").map_err(store_err)?;
    let (upper, work) = (scratch.path().join("upper"), scratch.path().join("work"));
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|source| {
            store_err(StoreError::Io {
                action: "create directory",
                path: d.clone(),
                source,
            })
        })?;
    }
    let argv = shell_or_exec(command);
    let mut run = image_command(config, &argv, true).unwrap_or_default();
    set_platform(&mut run, &config.platform());
    // Layers reused from a cache or a base image are unpacked now if the store lacks them.
    let lowerdirs = super::materialise::dirs(deps, pname, layers).await?;
    let spec = SandboxSpec {
        lowerdirs,
        upperdir: upper,
        workdir: work,
        action: Action::Run(run),
        hostname: "polyarch".into(),
        snapshotter: Snapshotter::Auto,
    };
    deps.sink.emit(Event::SmokeTestStarted {
        platform: pname.to_string(),
        command: command.clone(),
    });
    let started = Instant::now();
    let sink = deps.sink.clone();
    let p = pname.to_string();
    let outcome = deps
        .executor
        .run(&spec, move |line| {
            sink.emit(Event::SmokeTestOutput {
                platform: p.clone(),
                stream: line.stream,
                line: line.line,
            })
        })
        .await
        .map_err(|source| BuildError::Exec {
            platform: pname.to_string(),
            step: 0,
            location: "--smoke-test".into(),
            source,
        })?;
    deps.sink.emit(Event::SmokeTestFinished {
        platform: pname.to_string(),
        status: outcome.status,
        millis: started.elapsed().as_millis() as u64,
    });
    if outcome.status != 0 {
        return Err(BuildError::SmokeTestFailed {
            platform: pname.to_string(),
            command: command.clone(),
            status: outcome.status,
            tail: outcome.tail,
        });
    }
    Ok(())
}
