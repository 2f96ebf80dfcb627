//! Variable scopes (Dockerfile reference, "ARG", "Automatic platform ARGs in the global scope",
//! "Using ARG variables"): the automatic platform ARGs, the global scope (the ARGs before the
//! first FROM), and lookups in an ordered list of variables.
//!
//! Level 0: pure, no I/O.

use super::expand::expand;
use super::request::PlanRequest;
use crate::dockerfile::{Dockerfile, DockerfileError, Word};
use crate::platform::Platform;

/// The automatic platform ARGs (Dockerfile reference, "Automatic platform ARGs in the global
/// scope") from the normalised platforms: `linux/arm64/v8` gives `TARGETARCH=arm64`,
/// `TARGETVARIANT=` and `TARGETPLATFORM=linux/arm64`.
pub fn automatic_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(8);
    for (prefix, p) in [
        ("BUILD", build.normalized()),
        ("TARGET", target.normalized()),
    ] {
        out.push((format!("{prefix}PLATFORM"), p.to_string()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant_str().to_string()));
    }
    out
}

/// Sets `name` in `vars`, in place when it is there, else at the end.
pub(super) fn set_var(vars: &mut Vec<(String, Option<String>)>, name: &str, value: Option<String>) {
    match vars.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_string(), value)),
    }
}

/// The value of `name` in `vars`; `None` when absent or unset.
pub(super) fn get_var(vars: &[(String, Option<String>)], name: &str) -> Option<String> {
    vars.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.clone())
}

/// The global scope: automatic platform ARGs, then the ARGs before the first FROM in order. A
/// default is expanded with what is declared above it; a build arg wins over it; a declaration
/// without either keeps an automatic value of the same name.
pub(super) fn global_scope(
    df: &Dockerfile,
    req: &PlanRequest,
) -> Result<Vec<(String, Option<String>)>, DockerfileError> {
    let mut meta: Vec<(String, Option<String>)> =
        automatic_args(&req.target_platform, &req.build_platform)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
    for arg in &df.global_args {
        let value = if let Some(v) = req.build_args.get(&arg.name) {
            Some(v.clone())
        } else if let Some(default) = &arg.default {
            let word = Word {
                text: default.clone(),
                span: arg.span,
            };
            let m = meta.clone();
            Some(expand(df, &word, &|n| get_var(&m, n))?)
        } else {
            get_var(&meta, &arg.name)
        };
        set_var(&mut meta, &arg.name, value);
    }
    Ok(meta)
}
