//! Instructions that set image metadata or step settings from plain words: ENV and LABEL
//! (`k=v` pairs or the legacy `k v`), WORKDIR, USER, STOPSIGNAL, MAINTAINER, EXPOSE, VOLUME
//! and SHELL.
//!
//! Level 0 (pure). Must not expand variables in the words (the planner does).

use super::cx::Cx;
use crate::dockerfile::syntax::{self, fields, parse_words};
use crate::dockerfile::{DockerfileError, ErrorKind, InstructionKind, KeyValue, Word};

impl Cx<'_> {
    /// ENV/LABEL: `k=v ...` or the legacy `k v` (BuildKit `parseNameVal`).
    pub(super) fn name_val(&self) -> Result<Vec<KeyValue>, DockerfileError> {
        let args = self.node.args();
        let words = parse_words(args, self.df.escape);
        if words.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        if !words[0].0.contains('=') {
            let key_len = args.find(syntax::is_ws).unwrap_or(args.len());
            let value_off = args[key_len..]
                .find(|c: char| !syntax::is_ws(c))
                .map(|o| o + key_len);
            let Some(value_off) = value_off else {
                return Err(self.args_err(format!(
                    "must have two arguments: {} <key>=<value> or the legacy {} <key> <value>",
                    self.keyword, self.keyword
                )));
            };
            return Ok(vec![KeyValue {
                key: self.word(args[..key_len].to_string(), 0),
                value: self.word(args[value_off..].to_string(), value_off),
            }]);
        }
        let mut out = Vec::new();
        for (w, off) in words {
            let Some((k, v)) = w.split_once('=') else {
                let word = self.word(w.clone(), off);
                return Err(self.err_at(
                    word.span,
                    w.chars().count(),
                    ErrorKind::Arguments {
                        instruction: self.keyword.clone(),
                        message: format!(
                            "syntax error: can't find = in {w:?}; must be of the form name=value"
                        ),
                    },
                ));
            };
            if k.is_empty() {
                let word = self.word(w.clone(), off);
                return Err(self.err_at(
                    word.span,
                    w.chars().count(),
                    ErrorKind::Arguments {
                        instruction: self.keyword.clone(),
                        message: "names can not be blank".into(),
                    },
                ));
            }
            out.push(KeyValue {
                key: self.word(k.to_string(), off),
                value: self.word(v.to_string(), off + k.len() + 1),
            });
        }
        Ok(out)
    }

    /// WORKDIR, USER, STOPSIGNAL and MAINTAINER (`kw`): the whole argument text is one word.
    pub(super) fn single_word(&self, kw: &str) -> Result<InstructionKind, DockerfileError> {
        let args = self.node.args();
        self.flags(&[])?;
        if args.is_empty() {
            return Err(self.args_err("requires exactly one argument"));
        }
        let w = self.word(args.to_string(), 0);
        Ok(match kw {
            "WORKDIR" => InstructionKind::Workdir(w),
            "USER" => InstructionKind::User(w),
            "STOPSIGNAL" => InstructionKind::StopSignal(w),
            _ => InstructionKind::Maintainer(w),
        })
    }

    /// `EXPOSE port[/proto] ...`, words as written.
    pub(super) fn expose(&self) -> Result<InstructionKind, DockerfileError> {
        let args = self.node.args();
        self.flags(&[])?;
        let words: Vec<Word> = fields(args)
            .into_iter()
            .map(|(w, off)| self.word(w, off))
            .collect();
        if words.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        Ok(InstructionKind::Expose(words))
    }

    /// `VOLUME path ...` or the JSON form; no path may be blank.
    pub(super) fn volume(&self) -> Result<InstructionKind, DockerfileError> {
        let args = self.node.args();
        self.flags(&[])?;
        let words: Vec<Word> = match self.json_array(args)? {
            Some(list) => list.into_iter().map(|s| self.word(s, 0)).collect(),
            None => fields(args)
                .into_iter()
                .map(|(w, off)| self.word(w, off))
                .collect(),
        };
        if words.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        if let Some(w) = words.iter().find(|w| w.text.trim().is_empty()) {
            return Err(self.err_at(
                w.span,
                1,
                ErrorKind::Arguments {
                    instruction: "VOLUME".into(),
                    message: "specified can not be an empty string".into(),
                },
            ));
        }
        Ok(InstructionKind::Volume(words))
    }

    /// `SHELL ["executable", "parameters"]`: JSON form only, at least one element.
    pub(super) fn shell(&self) -> Result<InstructionKind, DockerfileError> {
        let args = self.node.args();
        self.flags(&[])?;
        Ok(match self.json_array(args)? {
            Some(list) if !list.is_empty() => InstructionKind::Shell(list),
            Some(_) => return Err(self.args_err("requires at least one argument")),
            None => return Err(self.args_err(
                "requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]",
            )),
        })
    }
}
