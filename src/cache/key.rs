//! Step cache keys: a versioned canonical JSON of everything that can change a step's result
//! (and nothing else), hashed with sha256.
//!
//! Level 0 inside the cache room: pure values, no I/O. The coordinator gathers the inputs
//! (selected files' digests, upstream stages' keys, resolved image digests) and calls
//! [`step_key`]; nothing here reads a file or a registry.
//!
//! The chain: a stage starts from a [`base_key`] (the resolved base manifest digest, `scratch`,
//! or an earlier stage's result). Each step's key covers the *state* it runs on: the key of the
//! last filesystem step (RUN, COPY, ADD, WORKDIR) before it together with the layer that step
//! made ([`state_after`]). So when a step runs again and makes a different layer (a `RUN
//! date`), every step after it misses too, and an image never mixes a new layer with layers
//! built on an older one; while a config-only step (ENV, ARG, LABEL, ...) moves no state, and
//! reaches later steps only through their own expanded instruction (a RUN's environment).

use serde::{Deserialize, Serialize};

use crate::oci::Digest;
use crate::plan::StepKind;

/// The version of the key format. Bumped whenever what a key covers changes, or what a step
/// makes from the same inputs (2: 32-bit personality and CPU model per platform, COPY owners
/// and modes as BuildKit's), so that entries made by another version are never taken for this
/// one's.
pub const KEY_VERSION: u32 = 2;

/// A step cache key, or the key of a state (a stage's start or result): `sha256:<hex>` of the
/// canonical inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CacheKey(pub Digest);

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "base", rename_all = "snake_case")]
pub enum BaseInput<'a> {
    /// `FROM scratch`.
    Scratch,
    /// An image: the manifest digest resolved for the stage's platform in this build (so a
    /// moved tag invalidates), never the tag.
    Image {
        /// The platform's image manifest digest.
        manifest: &'a Digest,
    },
    /// An earlier stage: the key of its result ([`state_after`] of its last step).
    Stage {
        /// That stage's result key.
        result: &'a CacheKey,
    },
}

/// Something a step reads besides the state it runs on, in the order the step names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum SourceInput {
    /// Files of the build context: the digest of exactly the selected entries (after
    /// `.dockerignore` and `--exclude`): names, types, modes, owners, link targets and
    /// contents, never mtimes (see [`super::hash`]).
    Context {
        /// The selection's digest.
        selection: Digest,
    },
    /// The filesystem of an earlier stage or of an image (`COPY --from`, `RUN
    /// --mount=from=`): the key of that stage's result, or an image's [`base_key`] (its
    /// manifest digest for the platform, resolved in this build).
    Filesystem {
        /// The stage's result key, or the image's base key.
        result: CacheKey,
    },
    /// A secret a `RUN` mounts: whether it was given (`--secret`), never its value (as
    /// BuildKit, secret contents are not part of the key: a changed secret does not run the
    /// step again). Whether it was given changes what the step sees (an optional secret
    /// missing, a required one failing the step), so that is covered.
    Secret {
        /// The secret's id.
        id: String,
        /// Whether the build was given it.
        given: bool,
    },
    /// The build's `--network` for a `RUN` without its own (BuildKit keys on the exec's
    /// network mode); left out without `--network`.
    DefaultNetwork {
        /// `default`, `none` or `host`.
        network: crate::plan::Network,
    },
    /// An SSH agent a `RUN` mounts (`type=ssh`): whether it was given (`--ssh`), never the
    /// socket's path or the agent's keys, as for a secret.
    Ssh {
        /// The agent's id.
        id: String,
        /// Whether the build was given it.
        given: bool,
    },
    /// An `ADD <url>` without `--checksum`: the digest of what was downloaded (BuildKit's
    /// HTTP source keys on the content too). With `--checksum` the checksum is part of the
    /// instruction and nothing is downloaded to compute the key.
    Url {
        /// The URL.
        url: String,
        /// The content's hash ([`super::ContentHash`]).
        content: super::ContentHash,
    },
    /// A `RUN`'s settings from the command line when any is given (`--add-host`,
    /// `--shm-size`, `--ulimit`; BuildKit's `ExecOp` meta holds them, so its key covers them):
    /// left out otherwise, so keys without them stay as they were.
    RunSettings {
        /// `(name, address)` pairs.
        extra_hosts: Vec<(String, String)>,
        /// `/dev/shm` bytes.
        shm_size: Option<u64>,
        /// `(name, soft, hard)` limits.
        ulimits: Vec<(String, u64, u64)>,
    },
}

/// Everything a step's key covers.
#[derive(Debug, Clone, Serialize)]
pub struct StepInputs<'a> {
    /// The state the step runs on: [`state_after`] the last filesystem step before it, or
    /// the stage's [`base_key`].
    pub parent: &'a CacheKey,
    /// The platform the step runs as, normalised, variant included (`linux/arm64/v8`).
    pub platform: &'a str,
    /// The history text the step records (`RUN |1 A=1 /bin/sh -c make # buildkit`); a hit
    /// replays it, so it must match.
    pub created_by: &'a str,
    /// The instruction after expansion: argv, the environment and build args it sees, its
    /// working directory, user, flags (`--chown`, `--chmod`, `--link`, `--exclude`,
    /// `--checksum`), mounts and their options (a secret's id and target, never its value;
    /// a cache mount's id, never its contents), network.
    pub step: &'a StepKind,
    /// What it reads besides the state, in order.
    pub sources: &'a [SourceInput],
    /// `SOURCE_DATE_EPOCH`: it clamps the mtimes written into layers and sets `created`.
    pub source_date_epoch: Option<i64>,
    /// How the step's layer is compressed (`zstd:3`, `gzip:9`, `uncompressed`) when it is not
    /// the default gzip level 6 (issue 13), which leaves it out so default keys stay as they
    /// were: another compression makes other layer bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'a str>,
}

/// The canonical bytes of `value` under `kind`, with the key version: compact JSON, fields in
/// declaration order (the structs above), maps sorted.
fn canonical<T: Serialize>(kind: &str, value: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Versioned<'a, T> {
        v: u32,
        kind: &'a str,
        inputs: &'a T,
    }
    serde_json::to_vec(&Versioned {
        v: KEY_VERSION,
        kind,
        inputs: value,
    })
    .expect("key inputs always serialise")
}

/// The key a stage starting from `base` on `platform` (normalised) starts with.
pub fn base_key(base: &BaseInput<'_>, platform: &str) -> CacheKey {
    #[derive(Serialize)]
    struct Base<'a> {
        platform: &'a str,
        #[serde(flatten)]
        base: &'a BaseInput<'a>,
    }
    CacheKey(Digest::of(&canonical("base", &Base { platform, base })))
}

/// The key of a step: sha256 of the canonical JSON of `inputs`.
pub fn step_key(inputs: &StepInputs<'_>) -> CacheKey {
    CacheKey(Digest::of(&canonical("step", inputs)))
}

/// The state after the step keyed `key` made the layer with diff_id `layer` (`None`: no
/// layer). Steps are chained through this, so what a step made is part of every later key.
pub fn state_after(key: &CacheKey, layer: Option<&Digest>) -> CacheKey {
    #[derive(Serialize)]
    struct State<'a> {
        step: &'a CacheKey,
        layer: Option<&'a Digest>,
    }
    CacheKey(Digest::of(&canonical("state", &State { step: key, layer })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn env_step(value: &str) -> StepKind {
        StepKind::Env(vec![("A".into(), value.into())])
    }

    #[test]
    fn keys_change_with_each_input_and_only_with_them() {
        let parent = base_key(&BaseInput::Image { manifest: &d('a') }, "linux/amd64");
        let step = env_step("1");
        let inputs = StepInputs {
            parent: &parent,
            platform: "linux/amd64",
            created_by: "ENV A=1",
            step: &step,
            sources: &[],
            source_date_epoch: None,
            compression: None,
        };
        let k = step_key(&inputs);
        assert_eq!(
            k,
            step_key(&inputs.clone()),
            "the same inputs give the same key"
        );
        // Issue 13: another compression makes other layer bytes, hence another key.
        assert_ne!(
            k,
            step_key(&StepInputs {
                compression: Some("zstd:3"),
                ..inputs.clone()
            })
        );
        let other_parent = base_key(&BaseInput::Image { manifest: &d('b') }, "linux/amd64");
        let step2 = env_step("2");
        let src = [SourceInput::Context { selection: d('c') }];
        let variants = [
            StepInputs {
                parent: &other_parent,
                ..inputs.clone()
            },
            StepInputs {
                platform: "linux/arm64/v8",
                ..inputs.clone()
            },
            StepInputs {
                created_by: "ENV A=2",
                ..inputs.clone()
            },
            StepInputs {
                step: &step2,
                ..inputs.clone()
            },
            StepInputs {
                sources: &src,
                ..inputs.clone()
            },
            StepInputs {
                source_date_epoch: Some(0),
                ..inputs.clone()
            },
        ];
        let mut seen = vec![k];
        for v in &variants {
            let kv = step_key(v);
            assert!(!seen.contains(&kv), "{v:?} must give a new key");
            seen.push(kv);
        }
    }

    #[test]
    fn bases_and_states_are_distinct() {
        let scratch = base_key(&BaseInput::Scratch, "linux/amd64");
        assert_ne!(scratch, base_key(&BaseInput::Scratch, "linux/arm64/v8"));
        let img = base_key(&BaseInput::Image { manifest: &d('a') }, "linux/amd64");
        assert_ne!(scratch, img);
        let stage = base_key(&BaseInput::Stage { result: &img }, "linux/amd64");
        assert_ne!(stage, img);
        assert_ne!(state_after(&img, None), state_after(&img, Some(&d('e'))));
        assert_ne!(
            state_after(&img, Some(&d('e'))),
            state_after(&img, Some(&d('f')))
        );
    }

    #[test]
    fn the_canonical_form_is_pinned() {
        // A change here changes every key in every cache: bump KEY_VERSION with it.
        let parent = CacheKey(d('a'));
        let step = env_step("1");
        let k = step_key(&StepInputs {
            parent: &parent,
            platform: "linux/amd64",
            created_by: "ENV A=1",
            step: &step,
            sources: &[SourceInput::Filesystem {
                result: CacheKey(d('b')),
            }],
            source_date_epoch: None,
            compression: None,
        });
        let text = String::from_utf8(canonical(
            "step",
            &StepInputs {
                parent: &parent,
                platform: "linux/amd64",
                created_by: "ENV A=1",
                step: &step,
                sources: &[SourceInput::Filesystem {
                    result: CacheKey(d('b')),
                }],
                source_date_epoch: None,
                compression: None,
            },
        ))
        .unwrap();
        assert_eq!(
            text,
            format!(
                "{{\"v\":2,\"kind\":\"step\",\"inputs\":{{\"parent\":\"{}\",\"platform\":\
                 \"linux/amd64\",\"created_by\":\"ENV A=1\",\"step\":{{\"env\":[[\"A\",\"1\"]]}},\
                 \"sources\":[{{\"from\":\"filesystem\",\"result\":\"{}\"}}],\"source_date_epoch\":\
                 null}}}}",
                d('a'),
                d('b')
            )
        );
        assert_eq!(k, CacheKey(Digest::of(text.as_bytes())));
    }
}
