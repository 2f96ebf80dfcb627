//! Instruction flags (`--name[=value]`, BuildKit `BFlags`): each instruction declares the flags
//! it takes; unknown ones get a suggestion, unsupported ones say why, repeated or valueless
//! ones are refused, booleans follow Go's `strconv.ParseBool`.
//!
//! Level 0 (pure). Must not give flags a meaning (the instruction's own file does).

use super::cx::Cx;
use super::suggest::nearest;
use crate::dockerfile::{DockerfileError, ErrorKind, Span, Word};

/// How a flag is declared for an instruction (BuildKit `BFlags`).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum FlagSpec {
    /// `--name=value`, at most once.
    String,
    /// `--name=value`, repeatable.
    Strings,
    /// `--name` or `--name=true|false`.
    Bool,
    /// A flag of the instruction polyarch does not offer (labs syntax, entitlements).
    Unsupported(&'static str),
}

/// A flag found on the instruction.
pub(super) struct Flag {
    name: String,
    /// `None` for a bare boolean flag.
    value: Option<Word>,
    span: Span,
    width: usize,
}

/// The flags of one instruction, validated against its spec.
pub(super) struct Flags(Vec<Flag>);

impl Flags {
    /// Takes the value of the single-valued flag `name`, if given.
    pub(super) fn string(&mut self, name: &str) -> Option<Word> {
        let i = self.0.iter().position(|f| f.name == name)?;
        self.0.remove(i).value
    }

    /// Takes every value of the repeatable flag `name`, in order.
    pub(super) fn strings(&mut self, name: &str) -> Vec<Word> {
        let mut out = Vec::new();
        while let Some(i) = self.0.iter().position(|f| f.name == name) {
            out.extend(self.0.remove(i).value);
        }
        out
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl Cx<'_> {
    /// [`ErrorKind::InvalidFlag`] pointing at flag `f`.
    pub(super) fn flag_err(&self, f: &Flag, reason: impl Into<String>) -> DockerfileError {
        self.err_at(
            f.span,
            f.width,
            ErrorKind::InvalidFlag {
                instruction: self.keyword.clone(),
                flag: f.name.clone(),
                reason: reason.into(),
            },
        )
    }

    /// Validates the flags against `spec` and returns them.
    pub(super) fn flags(&self, spec: &[(&str, FlagSpec)]) -> Result<Flags, DockerfileError> {
        let mut out: Vec<Flag> = Vec::new();
        for raw in &self.node.flags {
            let (name, value) = match raw.text.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (raw.text.clone(), None),
            };
            let span = self.span_at(raw.off);
            let width = raw.text.chars().count() + 2;
            let lname = name.to_ascii_lowercase();
            let Some((_, kind)) = spec.iter().find(|(n, _)| *n == lname) else {
                let known: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                return Err(self.err_at(
                    span,
                    width,
                    ErrorKind::UnknownFlag {
                        instruction: self.keyword.clone(),
                        flag: name.clone(),
                        suggestion: nearest(&name, &known).map(|s| s.to_ascii_lowercase()),
                    },
                ));
            };
            let flag = Flag {
                name: lname.clone(),
                value: value.map(|v| Word {
                    text: v,
                    span: self.span_at(raw.off + 3 + name.len()),
                }),
                span,
                width,
            };
            match kind {
                FlagSpec::Unsupported(reason) => {
                    return Err(self.err_at(
                        span,
                        width,
                        ErrorKind::UnsupportedFlag {
                            instruction: self.keyword.clone(),
                            flag: lname,
                            reason: reason.to_string(),
                        },
                    ))
                }
                FlagSpec::String | FlagSpec::Strings => {
                    if *kind == FlagSpec::String && out.iter().any(|f| f.name == lname) {
                        return Err(self.flag_err(&flag, "given more than once"));
                    }
                    if flag.value.is_none() {
                        return Err(self.flag_err(&flag, "missing a value (write --flag=value)"));
                    }
                }
                FlagSpec::Bool => {
                    if out.iter().any(|f| f.name == lname) {
                        return Err(self.flag_err(&flag, "given more than once"));
                    }
                    if let Some(v) = &flag.value {
                        if parse_bool(&v.text).is_none() {
                            return Err(self.flag_err(
                                &flag,
                                format!(
                                    "expecting a boolean value (true or false), not {:?}",
                                    v.text
                                ),
                            ));
                        }
                    }
                }
            }
            out.push(flag);
        }
        Ok(Flags(out))
    }

    /// A boolean flag: `None` when absent, `--x` is true, `--x=false` false.
    pub(super) fn bool_flag(flags: &mut Flags, name: &str) -> Option<bool> {
        let i = flags.0.iter().position(|f| f.name == name)?;
        let f = flags.0.remove(i);
        Some(f.value.is_none_or(|v| parse_bool(&v.text).unwrap_or(false)))
    }

    /// Checks that the instruction has no flags, then parses it with `f`.
    pub(super) fn no_flags_then<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, DockerfileError>,
    ) -> Result<T, DockerfileError> {
        self.flags(&[])?;
        f(self)
    }
}
