//! Reading `RUN --mount=...` and `RUN --network=...` into [`RunMount`]s and a [`Network`]
//! (Dockerfile reference "RUN --mount", BuildKit `instructions/commands_runmount.go`
//! `parseMount`, `dockerfile2llb/convert_runmount.go`, `convert_secrets.go`,
//! `convert_runnetwork.go`).
//!
//! Level 0: pure parsing and checking, no I/O. The mount types themselves are step data
//! (`step.rs`).

use super::from::resolve_from;
use super::paths::{go_clean, normalize_path};
use super::step::{CacheSharing, CopyFrom, MountSource, Network, RunMount};
use crate::dockerfile::shell::expand_word;
use crate::dockerfile::{nearest, Dockerfile, DockerfileError, ErrorKind, Word};

/// Splits a CSV record into fields (Go `csvvalue.Fields`: `,` separates, a field starting with
/// `"` is quoted and `""` inside is a quote). `None` for a malformed record.
pub(crate) fn csv_fields(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return None,
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Some(out);
                }
                Some(',') => out.push(field),
                Some(_) => return None,
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Some(out);
                    }
                    Some(',') => break,
                    Some('"') => return None,
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

/// Go's `units.RAMInBytes`: a number with an optional binary unit (`b`, `k`, `m`, `g`, `t`,
/// `p`, optionally followed by `b` or `ib`), case-insensitive.
fn ram_in_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

const MOUNT_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Parses and expands one `--mount` value. `workdir` makes a relative target absolute;
/// `lookup` expands every value except `from`; `stage_index` is the stage the RUN is in.
pub(super) fn parse_mount(
    df: &Dockerfile,
    word: &Word,
    stage_index: usize,
    workdir: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<RunMount, DockerfileError> {
    let fail = |reason: String| {
        df.error_at(
            word.span,
            word.text.chars().count(),
            ErrorKind::InvalidMount {
                value: word.text.clone(),
                reason,
            },
        )
    };
    let fields =
        csv_fields(&word.text).ok_or_else(|| fail("malformed comma-separated list".into()))?;
    #[derive(PartialEq, Clone, Copy)]
    enum Type {
        Bind,
        Cache,
        Tmpfs,
        Secret,
    }
    let mut typ = Type::Bind;
    let mut from: Option<String> = None;
    let mut source = String::new();
    let mut target = String::new();
    let mut readonly: Option<bool> = None;
    let mut id = String::new();
    let mut sharing: Option<CacheSharing> = None;
    let mut required = false;
    let mut size: Option<u64> = None;
    let (mut mode, mut uid, mut gid): (Option<u32>, Option<u32>, Option<u32>) = (None, None, None);
    let mut env: Option<String> = None;
    let parse_bool = |k: &str, v: &str| match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(fail(format!("invalid value for {k}: {v}"))),
    };
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(raw) = value else {
            match key.as_str() {
                "readonly" | "ro" => readonly = Some(true),
                "readwrite" | "rw" => readonly = Some(false),
                "required" if typ == Type::Secret => required = true,
                "required" => {
                    return Err(fail(format!(
                        "unexpected key 'required' for mount type '{}'",
                        type_name(typ)
                    )))
                }
                _ => {
                    return Err(fail(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        // `from` is never expanded (BuildKit: "define alias stage instead").
        let value = if key == "from" {
            raw
        } else {
            expand_word(&raw, df.escape, lookup)
                .map_err(|e| fail(format!("cannot expand {raw:?}: {}", e.message)))?
        };
        fn type_name(t: Type) -> &'static str {
            match t {
                Type::Bind => "bind",
                Type::Cache => "cache",
                Type::Tmpfs => "tmpfs",
                Type::Secret => "secret",
            }
        }
        match key.as_str() {
            "type" => {
                typ = match value.to_ascii_lowercase().as_str() {
                    "bind" => Type::Bind,
                    "cache" => Type::Cache,
                    "tmpfs" => Type::Tmpfs,
                    "secret" => Type::Secret,
                    "ssh" => {
                        return Err(df.error_at(
                            word.span,
                            word.text.chars().count(),
                            ErrorKind::Unsupported {
                                what: "RUN --mount=type=ssh".into(),
                                reason: "polyarch does not forward an SSH agent".into(),
                            },
                        ))
                    }
                    other => {
                        let hint = nearest(other, &["bind", "cache", "tmpfs", "secret", "ssh"])
                            .map(|s| format!(" (did you mean {s}?)"))
                            .unwrap_or_default();
                        return Err(fail(format!("unsupported mount type {other:?}{hint}")));
                    }
                }
            }
            "from" => from = Some(value),
            "source" | "src" => source = value,
            "target" | "dst" | "destination" => target = value,
            "readonly" | "ro" => readonly = Some(parse_bool(&key, &value)?),
            "readwrite" | "rw" => readonly = Some(!parse_bool(&key, &value)?),
            "required" if typ == Type::Secret => required = parse_bool(&key, &value)?,
            "required" => {
                return Err(fail(format!(
                    "unexpected key 'required' for mount type '{}'",
                    type_name(typ)
                )))
            }
            "size" if typ == Type::Tmpfs => {
                size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| fail(format!("invalid value for size: {value}")))?,
                )
            }
            "size" => {
                return Err(fail(format!(
                    "unexpected key 'size' for mount type '{}'",
                    type_name(typ)
                )))
            }
            "id" => id = value,
            "sharing" => {
                sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    other => {
                        return Err(fail(format!(
                            "unsupported sharing value {other:?} (shared, private or locked)"
                        )))
                    }
                })
            }
            "mode" => {
                mode = Some(
                    u32::from_str_radix(&value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| fail(format!("invalid value {value} for mode")))?,
                )
            }
            "uid" => {
                uid = Some(
                    value
                        .parse()
                        .map_err(|_| fail(format!("invalid value {value} for uid")))?,
                )
            }
            "gid" => {
                gid = Some(
                    value
                        .parse()
                        .map_err(|_| fail(format!("invalid value {value} for gid")))?,
                )
            }
            "env" => env = Some(value),
            other => {
                let hint = nearest(other, MOUNT_KEYS)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(fail(format!("unexpected key '{other}' in '{field}'{hint}")));
            }
        }
    }
    let file_info = matches!(typ, Type::Secret | Type::Cache);
    if !file_info && (mode.is_some() || uid.is_some() || gid.is_some()) {
        return Err(fail(
            "mode, uid and gid are only allowed for cache and secret mounts".into(),
        ));
    }
    if sharing.is_some() && typ != Type::Cache {
        return Err(fail("sharing is only allowed for cache mounts".into()));
    }
    let readonly = readonly.unwrap_or(!matches!(typ, Type::Cache | Type::Tmpfs));
    let abs_target = |t: &str| -> Result<String, DockerfileError> {
        if t.is_empty() {
            return Err(fail("a target is required".into()));
        }
        let abs = normalize_path(workdir, t, false);
        if abs == "/" {
            return Err(fail(format!("invalid mount target {abs:?}")));
        }
        Ok(abs)
    };
    Ok(match typ {
        Type::Secret => {
            if from.is_some() {
                return Err(fail("secret mount should not have a from".into()));
            }
            if source.is_empty() && target.is_empty() && id.is_empty() {
                return Err(fail(
                    "invalid secret mount: one of id, source or target is required".into(),
                ));
            }
            if !source.is_empty() && !id.is_empty() {
                return Err(fail("both source and id can't be set".into()));
            }
            let id = if !source.is_empty() {
                source
            } else if !id.is_empty() {
                id
            } else {
                target.rsplit('/').next().unwrap_or_default().to_string()
            };
            let target = if !target.is_empty() {
                Some(abs_target(&target)?)
            } else if env.is_none() {
                let base = id.rsplit('/').next().unwrap_or(&id);
                Some(format!("/run/secrets/{base}"))
            } else {
                None
            };
            RunMount::Secret {
                id,
                target,
                env,
                required,
                mode: mode.unwrap_or(0o400),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
            }
        }
        Type::Tmpfs => {
            if from.is_some() {
                return Err(fail("a tmpfs mount has no from".into()));
            }
            RunMount::Tmpfs {
                target: abs_target(&target)?,
                size,
            }
        }
        Type::Cache => {
            if from.is_some() || !source.is_empty() {
                return Err(df.error_at(
                    word.span,
                    word.text.chars().count(),
                    ErrorKind::Unsupported {
                        what: "a cache mount with from or source".into(),
                        reason: "polyarch cache mounts always start empty".into(),
                    },
                ));
            }
            RunMount::Cache {
                id: if id.is_empty() {
                    // BuildKit: `path.Clean(mount.Target)` of the target as written.
                    go_clean(&target)
                } else {
                    id
                },
                target: abs_target(&target)?,
                sharing: sharing.unwrap_or(CacheSharing::Shared),
                readonly,
                mode: mode.unwrap_or(0o755),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
            }
        }
        Type::Bind => {
            let from = match from {
                None => MountSource::Context,
                Some(f) => match resolve_from(df, stage_index, word, &f, "RUN --mount from")? {
                    CopyFrom::Stage(i) => MountSource::Stage(i),
                    CopyFrom::Image(r) => MountSource::Image(r),
                    CopyFrom::Context => MountSource::Context,
                },
            };
            RunMount::Bind {
                target: abs_target(&target)?,
                from,
                source: normalize_path("/", &source, false),
                readonly,
            }
        }
    })
}

/// The `from=` of every `--mount` of a RUN, without expanding anything else (BuildKit checks
/// `from` at parse time and never expands it).
pub(super) fn mount_froms(mounts: &[Word]) -> Vec<(Word, String)> {
    let mut out = Vec::new();
    for m in mounts {
        for field in csv_fields(&m.text).unwrap_or_default() {
            if let Some((k, v)) = field.split_once('=') {
                if k.eq_ignore_ascii_case("from") {
                    out.push((m.clone(), v.to_string()));
                }
            }
        }
    }
    out
}

/// Parses `--network=` (not expanded, as in BuildKit).
pub(super) fn parse_network(df: &Dockerfile, word: &Word) -> Result<Network, DockerfileError> {
    match word.text.as_str() {
        "default" => Ok(Network::Default),
        "none" => Ok(Network::None),
        "host" => Ok(Network::Host),
        other => Err(df.error_at(
            word.span,
            word.text.chars().count(),
            ErrorKind::InvalidValue {
                what: "--network".into(),
                value: other.to_string(),
                reason: "use default, none or host".into(),
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv() {
        assert_eq!(csv_fields("a,b=c").unwrap(), ["a", "b=c"]);
        assert_eq!(
            csv_fields("\"target=/a,b\",x").unwrap(),
            ["target=/a,b", "x"]
        );
        assert_eq!(csv_fields("\"a\"\"b\"").unwrap(), ["a\"b"]);
        assert_eq!(csv_fields("").unwrap(), [""]);
        assert!(csv_fields("\"open").is_none());
        assert!(csv_fields("a\"b").is_none());
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1GiB"), Some(1 << 30));
        assert_eq!(ram_in_bytes("10kb"), Some(10 << 10));
        assert_eq!(ram_in_bytes("512"), Some(512));
        assert_eq!(ram_in_bytes("x"), None);
    }
}
