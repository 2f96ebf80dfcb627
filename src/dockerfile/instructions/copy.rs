//! COPY and ADD: their flags (`--from`, `--chown`, `--chmod`, `--link`, `--exclude`,
//! `--checksum`, `--unpack`), sources and destination in JSON or word form, and heredoc sources.
//!
//! Level 0 (pure). Must not resolve sources against a build context (that is `context`).

use super::cx::Cx;
use super::flags::FlagSpec;
use crate::dockerfile::syntax::{self, fields};
use crate::dockerfile::{DockerfileError, ErrorKind, InstructionKind, Word};

impl Cx<'_> {
    /// Sources and destination of COPY/ADD: JSON form, or whitespace-separated words (BuildKit
    /// `parseMaybeJSONToList`). A heredoc cannot be the destination.
    fn sources_and_dest(&self) -> Result<(Vec<Word>, Word), DockerfileError> {
        let args = self.node.args();
        let mut words: Vec<Word> = match self.json_array(args)? {
            // JSON form: every element starts at the array.
            Some(list) => list.into_iter().map(|s| self.word(s, 0)).collect(),
            None => fields(args)
                .into_iter()
                .map(|(w, off)| self.word(w, off))
                .collect(),
        };
        if words.len() < 2 {
            return Err(self.args_err(
                "requires at least two arguments: one or more sources and a destination",
            ));
        }
        let dest = words
            .pop()
            .unwrap_or_else(|| unreachable!("checked len >= 2"));
        if !self.node.heredocs.is_empty() && heredoc_name(&dest.text).is_some() {
            return Err(self.err_at(
                dest.span,
                dest.text.chars().count(),
                ErrorKind::Arguments {
                    instruction: self.keyword.clone(),
                    message: "cannot accept a heredoc as a destination".into(),
                },
            ));
        }
        Ok((words, dest))
    }

    /// `COPY [flags] src... dest` or the JSON form.
    pub(super) fn copy(&self) -> Result<InstructionKind, DockerfileError> {
        let mut flags = self.flags(&[
            ("from", FlagSpec::String),
            ("chown", FlagSpec::String),
            ("chmod", FlagSpec::String),
            ("link", FlagSpec::Bool),
            ("exclude", FlagSpec::Strings),
            (
                "parents",
                FlagSpec::Unsupported("it is a BuildKit labs feature (docker/dockerfile:1-labs)"),
            ),
        ])?;
        let (sources, dest) = self.sources_and_dest()?;
        Ok(InstructionKind::Copy {
            from: flags.string("from"),
            chown: flags.string("chown"),
            chmod: flags.string("chmod"),
            link: Self::bool_flag(&mut flags, "link").unwrap_or(false),
            excludes: flags.strings("exclude"),
            sources,
            dest,
            heredocs: self.node.heredocs.clone(),
        })
    }

    /// `ADD [flags] src... dest` or the JSON form.
    pub(super) fn add(&self) -> Result<InstructionKind, DockerfileError> {
        let mut flags = self.flags(&[
            ("chown", FlagSpec::String),
            ("chmod", FlagSpec::String),
            ("link", FlagSpec::Bool),
            ("checksum", FlagSpec::String),
            ("unpack", FlagSpec::Bool),
            ("exclude", FlagSpec::Strings),
            (
                "keep-git-dir",
                FlagSpec::Unsupported("polyarch does not fetch Git sources"),
            ),
        ])?;
        let (sources, dest) = self.sources_and_dest()?;
        Ok(InstructionKind::Add {
            chown: flags.string("chown"),
            chmod: flags.string("chmod"),
            link: Self::bool_flag(&mut flags, "link").unwrap_or(false),
            checksum: flags.string("checksum"),
            unpack: Self::bool_flag(&mut flags, "unpack"),
            excludes: flags.strings("exclude"),
            sources,
            dest,
            heredocs: self.node.heredocs.clone(),
        })
    }
}

/// The terminator named by a heredoc source word (`<<EOF`, `<<-"EOF"`), `None` for other words.
pub(crate) fn heredoc_name(word: &str) -> Option<String> {
    syntax::heredoc_word_name(word)
}
