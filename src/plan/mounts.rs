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

/// The `--mount` value being read, for errors that point at it.
struct MountWord<'a> {
    df: &'a Dockerfile,
    word: &'a Word,
}

impl MountWord<'_> {
    /// An invalid mount, saying why.
    fn invalid(&self, reason: String) -> DockerfileError {
        self.df.error_at(
            self.word.span,
            self.word.text.chars().count(),
            ErrorKind::InvalidMount {
                value: self.word.text.clone(),
                reason,
            },
        )
    }

    /// A mount polyarch does not support.
    fn unsupported(&self, what: &str, reason: &str) -> DockerfileError {
        self.df.error_at(
            self.word.span,
            self.word.text.chars().count(),
            ErrorKind::Unsupported {
                what: what.into(),
                reason: reason.into(),
            },
        )
    }
}

/// A mount's `type=`.
#[derive(PartialEq, Clone, Copy)]
enum Type {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl Type {
    /// The name as written in `type=`.
    fn name(self) -> &'static str {
        match self {
            Type::Bind => "bind",
            Type::Cache => "cache",
            Type::Tmpfs => "tmpfs",
            Type::Secret => "secret",
            Type::Ssh => "ssh",
        }
    }

    /// Reads a `type=` value (case-insensitive). Errors: unknown types.
    fn parse(at: &MountWord<'_>, value: &str) -> Result<Type, DockerfileError> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "bind" => Type::Bind,
            "cache" => Type::Cache,
            "tmpfs" => Type::Tmpfs,
            "secret" => Type::Secret,
            "ssh" => Type::Ssh,
            other => {
                let hint = nearest(other, &["bind", "cache", "tmpfs", "secret", "ssh"])
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(at.invalid(format!("unsupported mount type {other:?}{hint}")));
            }
        })
    }
}

/// A boolean field value as Go's `strconv.ParseBool` reads it.
fn parse_bool(at: &MountWord<'_>, key: &str, value: &str) -> Result<bool, DockerfileError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(at.invalid(format!("invalid value for {key}: {value}"))),
    }
}

/// The error for a key the mount's type does not take.
fn unexpected_key(at: &MountWord<'_>, key: &str, typ: Type) -> DockerfileError {
    at.invalid(format!(
        "unexpected key '{key}' for mount type '{}'",
        typ.name()
    ))
}

/// The fields of one `--mount` as read (values expanded, `from` not), before they are checked
/// against each other and the type.
struct Fields {
    typ: Type,
    from: Option<String>,
    source: String,
    target: String,
    readonly: Option<bool>,
    id: String,
    sharing: Option<CacheSharing>,
    required: bool,
    size: Option<u64>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    env: Option<String>,
}

impl Fields {
    /// Reads every field of the CSV record in order (a later field overrides an earlier one);
    /// `lookup` expands every value except `from` ("define alias stage instead", BuildKit).
    fn read(
        at: &MountWord<'_>,
        fields: Vec<String>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Fields, DockerfileError> {
        let mut f = Fields {
            typ: Type::Bind,
            from: None,
            source: String::new(),
            target: String::new(),
            readonly: None,
            id: String::new(),
            sharing: None,
            required: false,
            size: None,
            mode: None,
            uid: None,
            gid: None,
            env: None,
        };
        for field in fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
                None => (field.to_ascii_lowercase(), None),
            };
            let Some(raw) = value else {
                f.set_flag(at, &key, &field)?;
                continue;
            };
            let value = if key == "from" {
                raw
            } else {
                expand_word(&raw, at.df.escape, lookup)
                    .map_err(|e| at.invalid(format!("cannot expand {raw:?}: {}", e.message)))?
            };
            f.set(at, &key, value, &field)?;
        }
        Ok(f)
    }

    /// A field without `=`: `ro`/`readonly`, `rw`/`readwrite`, `required` (secrets only).
    fn set_flag(
        &mut self,
        at: &MountWord<'_>,
        key: &str,
        field: &str,
    ) -> Result<(), DockerfileError> {
        match key {
            "readonly" | "ro" => self.readonly = Some(true),
            "readwrite" | "rw" => self.readonly = Some(false),
            "required" if matches!(self.typ, Type::Secret | Type::Ssh) => self.required = true,
            "required" => return Err(unexpected_key(at, key, self.typ)),
            _ => {
                return Err(at.invalid(format!("invalid field '{field}' must be a key=value pair")))
            }
        }
        Ok(())
    }

    /// A `key=value` field, `key` lower-cased, `value` expanded.
    fn set(
        &mut self,
        at: &MountWord<'_>,
        key: &str,
        value: String,
        field: &str,
    ) -> Result<(), DockerfileError> {
        let number = |what: &str, parsed: Option<u32>| {
            parsed.ok_or_else(|| at.invalid(format!("invalid value {value} for {what}")))
        };
        match key {
            "type" => self.typ = Type::parse(at, &value)?,
            "from" => self.from = Some(value),
            "source" | "src" => self.source = value,
            "target" | "dst" | "destination" => self.target = value,
            "readonly" | "ro" => self.readonly = Some(parse_bool(at, key, &value)?),
            "readwrite" | "rw" => self.readonly = Some(!parse_bool(at, key, &value)?),
            "required" if matches!(self.typ, Type::Secret | Type::Ssh) => {
                self.required = parse_bool(at, key, &value)?
            }
            "size" if self.typ == Type::Tmpfs => {
                self.size = Some(
                    ram_in_bytes(&value)
                        .ok_or_else(|| at.invalid(format!("invalid value for size: {value}")))?,
                )
            }
            "required" | "size" => return Err(unexpected_key(at, key, self.typ)),
            "id" => self.id = value,
            "sharing" => {
                self.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    other => {
                        return Err(at.invalid(format!(
                            "unsupported sharing value {other:?} (shared, private or locked)"
                        )))
                    }
                })
            }
            "mode" => {
                let mode = u32::from_str_radix(&value, 8).ok().filter(|m| *m <= 0o7777);
                self.mode = Some(number("mode", mode)?);
            }
            "uid" => self.uid = Some(number("uid", value.parse().ok())?),
            "gid" => self.gid = Some(number("gid", value.parse().ok())?),
            "env" => self.env = Some(value),
            other => {
                let hint = nearest(other, MOUNT_KEYS)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(at.invalid(format!("unexpected key '{other}' in '{field}'{hint}")));
            }
        }
        Ok(())
    }
}

/// A mount target made absolute against `workdir`; empty and `/` are refused.
fn abs_target(at: &MountWord<'_>, workdir: &str, t: &str) -> Result<String, DockerfileError> {
    if t.is_empty() {
        return Err(at.invalid("a target is required".into()));
    }
    let abs = normalize_path(workdir, t, false);
    if abs == "/" {
        return Err(at.invalid(format!("invalid mount target {abs:?}")));
    }
    Ok(abs)
}

/// Parses and expands one `--mount` value. `workdir` makes a relative target absolute;
/// `lookup` expands every value except `from`; `stage_index` is the stage the RUN is in.
pub(super) fn parse_mount(
    df: &Dockerfile,
    word: &Word,
    stage_index: usize,
    workdir: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<RunMount, DockerfileError> {
    let at = MountWord { df, word };
    let fields = csv_fields(&word.text)
        .ok_or_else(|| at.invalid("malformed comma-separated list".into()))?;
    let f = Fields::read(&at, fields, lookup)?;
    let file_info = matches!(f.typ, Type::Secret | Type::Cache | Type::Ssh);
    if !file_info && (f.mode.is_some() || f.uid.is_some() || f.gid.is_some()) {
        return Err(at.invalid(
            "mode, uid and gid are only allowed for cache, secret and ssh mounts".into(),
        ));
    }
    if f.sharing.is_some() && f.typ != Type::Cache {
        return Err(at.invalid("sharing is only allowed for cache mounts".into()));
    }
    let readonly = f
        .readonly
        .unwrap_or(!matches!(f.typ, Type::Cache | Type::Tmpfs));
    match f.typ {
        Type::Secret => secret_mount(&at, workdir, f),
        Type::Ssh => ssh_mount(&at, workdir, f),
        Type::Tmpfs => {
            if f.from.is_some() {
                return Err(at.invalid("a tmpfs mount has no from".into()));
            }
            Ok(RunMount::Tmpfs {
                target: abs_target(&at, workdir, &f.target)?,
                size: f.size,
            })
        }
        Type::Cache => cache_mount(&at, workdir, f, readonly),
        Type::Bind => bind_mount(&at, stage_index, workdir, f, readonly),
    }
}

/// `type=secret` (BuildKit `convert_secrets.go`): the id is `source`, else `id`, else the
/// target's file name; the file is the target, else `/run/secrets/<id>` unless only `env=` is
/// wanted.
fn secret_mount(at: &MountWord<'_>, workdir: &str, f: Fields) -> Result<RunMount, DockerfileError> {
    if f.from.is_some() {
        return Err(at.invalid("secret mount should not have a from".into()));
    }
    if f.source.is_empty() && f.target.is_empty() && f.id.is_empty() {
        return Err(
            at.invalid("invalid secret mount: one of id, source or target is required".into())
        );
    }
    if !f.source.is_empty() && !f.id.is_empty() {
        return Err(at.invalid("both source and id can't be set".into()));
    }
    let id = if !f.source.is_empty() {
        f.source
    } else if !f.id.is_empty() {
        f.id
    } else {
        f.target.rsplit('/').next().unwrap_or_default().to_string()
    };
    let target = if !f.target.is_empty() {
        Some(abs_target(at, workdir, &f.target)?)
    } else if f.env.is_none() {
        let base = id.rsplit('/').next().unwrap_or(&id);
        Some(format!("/run/secrets/{base}"))
    } else {
        None
    };
    Ok(RunMount::Secret {
        id,
        target,
        env: f.env,
        required: f.required,
        mode: f.mode.unwrap_or(0o400),
        uid: f.uid.unwrap_or(0),
        gid: f.gid.unwrap_or(0),
    })
}

/// `type=ssh` (BuildKit `dispatchSSH`): no `from` or `source`; the id defaults to `default`;
/// an empty target is filled in by the caller (`/run/buildkit/ssh_agent.N`). `mode`, `uid` and
/// `gid` are read but the agent's socket is bound as it is.
fn ssh_mount(at: &MountWord<'_>, workdir: &str, f: Fields) -> Result<RunMount, DockerfileError> {
    if f.from.is_some() || !f.source.is_empty() {
        return Err(at.invalid("ssh does not support source or from".into()));
    }
    let target = if f.target.is_empty() {
        String::new()
    } else {
        abs_target(at, workdir, &f.target)?
    };
    Ok(RunMount::Ssh {
        id: if f.id.is_empty() {
            "default".into()
        } else {
            f.id
        },
        target,
        required: f.required,
    })
}

/// `type=cache`: always starts empty (no `from` or `source`); the id defaults to the target as
/// written, cleaned (BuildKit: `path.Clean(mount.Target)`).
fn cache_mount(
    at: &MountWord<'_>,
    workdir: &str,
    f: Fields,
    readonly: bool,
) -> Result<RunMount, DockerfileError> {
    if f.from.is_some() || !f.source.is_empty() {
        return Err(at.unsupported(
            "a cache mount with from or source",
            "polyarch cache mounts always start empty",
        ));
    }
    Ok(RunMount::Cache {
        id: if f.id.is_empty() {
            go_clean(&f.target)
        } else {
            f.id
        },
        target: abs_target(at, workdir, &f.target)?,
        sharing: f.sharing.unwrap_or(CacheSharing::Shared),
        readonly,
        mode: f.mode.unwrap_or(0o755),
        uid: f.uid.unwrap_or(0),
        gid: f.gid.unwrap_or(0),
    })
}

/// `type=bind`: files from the context, an earlier stage or an image (`from=`, checked as
/// `COPY --from` is), `source` inside it.
fn bind_mount(
    at: &MountWord<'_>,
    stage_index: usize,
    workdir: &str,
    f: Fields,
    readonly: bool,
) -> Result<RunMount, DockerfileError> {
    let from = match f.from {
        None => MountSource::Context,
        Some(v) => match resolve_from(at.df, stage_index, at.word, &v, "RUN --mount from")? {
            CopyFrom::Stage(i) => MountSource::Stage(i),
            CopyFrom::Image(r) => MountSource::Image(r),
            CopyFrom::Context => MountSource::Context,
        },
    };
    Ok(RunMount::Bind {
        target: abs_target(at, workdir, &f.target)?,
        from,
        source: normalize_path("/", &f.source, false),
        readonly,
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
