//! Stage keys: two target platforms whose selections of a stage have equal keys (same stage,
//! same resolved platform, same base, same values for the ARGs the stage declares, same build
//! args, same dependencies) get the same result, so the coordinator builds the stage once and
//! shares it. Shown as `name/platform/hash`.
//!
//! Level 0: pure, no I/O.

use super::graph::{Selection, StageKey};
use super::scope::get_var;
use crate::dockerfile::{Dockerfile, InstructionKind};

/// The key of `sel` (whose own `key` is not read): a digest of the inputs that can differ
/// between target platforms, namely the values the ARGs declared in the stage can take from the
/// global scope and the build args, the base, the platform, the dependencies' keys and the
/// images the stage reads from.
pub(super) fn stage_key(df: &Dockerfile, sel: &Selection) -> StageKey {
    let stage_index = sel.stage_index;
    let stage = &df.stages[stage_index];
    let req = &sel.request;
    let mut arg_inputs: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for ins in &stage.instructions {
        if let InstructionKind::Arg(decls) = &ins.kind {
            for d in decls {
                arg_inputs.push((
                    d.name.clone(),
                    req.build_args.get(&d.name).cloned(),
                    get_var(&sel.meta, &d.name),
                ));
            }
        }
    }
    let inputs = serde_json::json!({
        "stage": stage_index,
        "platform": sel.platform.normalized().to_string(),
        "base": sel.base,
        "args": arg_inputs,
        "build_args": req.build_args,
        "deps": sel.dep_keys,
        "images": sel.images,
    });
    let digest = crate::oci::Digest::of(inputs.to_string().as_bytes());
    StageKey(format!(
        "{}/{}/{}",
        stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{stage_index}")),
        sel.platform.normalized(),
        &digest.hex()[..12]
    ))
}
