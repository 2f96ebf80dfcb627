//! Stage headers and build arguments: `FROM [--platform=P] image [AS name]` with BuildKit's
//! stage-name rule, and `ARG name[=default] ...`.
//!
//! Level 0 (pure). Must not resolve images, platforms or argument values (the planner does).

use super::cx::Cx;
use super::flags::FlagSpec;
use crate::dockerfile::syntax::{fields, parse_words};
use crate::dockerfile::{ArgDecl, DockerfileError, ErrorKind, InstructionKind, Stage};

impl Cx<'_> {
    /// `FROM [--platform=P] image [AS name]`.
    pub(super) fn from(&self) -> Result<Stage, DockerfileError> {
        let mut flags = self.flags(&[("platform", FlagSpec::String)])?;
        let platform = flags.string("platform");
        let f = fields(self.node.args());
        let ok_shape = f.len() == 1 || (f.len() == 3 && f[1].0.eq_ignore_ascii_case("as"));
        if !ok_shape {
            return Err(self.args_err(
                "requires either one or three arguments: FROM [--platform=<platform>] <image> [AS <name>]",
            ));
        }
        let name = if f.len() == 3 {
            let (raw, off) = &f[2];
            let name = raw.to_ascii_lowercase();
            // BuildKit `validStageName`: ^[a-z][a-z0-9-_\.]*$
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                let w = self.word(raw.clone(), *off);
                return Err(self.err_at(
                    w.span,
                    raw.chars().count(),
                    ErrorKind::InvalidStageName { name: raw.clone() },
                ));
            }
            Some(name)
        } else {
            None
        };
        let (base, off) = f[0].clone();
        Ok(Stage {
            name,
            base: self.word(base, off),
            platform,
            span: self.span_at(0),
            source: self.node.text.clone(),
            instructions: Vec::new(),
        })
    }

    /// `ARG name[=default] ...`: one declaration per word, defaults kept unexpanded.
    pub(super) fn arg(&self) -> Result<InstructionKind, DockerfileError> {
        let args = self.node.args();
        self.flags(&[])?;
        let words = parse_words(args, self.df.escape);
        if words.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        let mut decls = Vec::new();
        for (w, off) in words {
            let word = self.word(w.clone(), off);
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w, None),
            };
            if name.is_empty() {
                return Err(self.err_at(
                    word.span,
                    word.text.chars().count(),
                    ErrorKind::Arguments {
                        instruction: "ARG".into(),
                        message: "names can not be blank".into(),
                    },
                ));
            }
            decls.push(ArgDecl {
                name,
                default,
                span: word.span,
            });
        }
        Ok(InstructionKind::Arg(decls))
    }
}
