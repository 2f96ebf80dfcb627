//! COPY and ADD step resolution (BuildKit `dispatchCopy`, `convert_copy.go`): where the sources
//! come from (`--from`), the sources expanded (heredocs as inline files, URLs for ADD only),
//! the destination made absolute against the working directory, the `--chown`, `--chmod` and
//! `--checksum` flags checked, and the history string.
//!
//! Level 0: pure, no I/O. Which files a source selects is decided when the step runs.

use super::chmod::SymbolicMode;
use super::expand::{expand, expansion_error, invalid};
use super::from::resolve_from;
use super::heredoc::heredoc_body;
use super::paths::normalize_path;
use super::scope::StageState;
use super::step::{CopyFrom, CopyStep, InlineFile, StepKind};
use crate::dockerfile::shell::expand_heredoc;
use crate::dockerfile::{
    heredoc_name, Dockerfile, DockerfileError, ErrorKind, Heredoc, InstructionKind, Word,
};

/// True for an ADD source BuildKit fetches over HTTP: `http://` or `https://`, and not a Git
/// repository (BuildKit `isHTTPSource`).
pub fn is_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && !is_git(s)
}

/// A Git source as BuildKit recognises the common forms (`git@host:repo`, `*.git` URLs,
/// `git://`, `https://host/x.git#ref`).
fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || s.starts_with("ssh://")
        || ((s.starts_with("http://") || s.starts_with("https://"))
            && s.split('#').next().is_some_and(|u| u.ends_with(".git")))
}

/// The inputs of one COPY/ADD.
struct CopyArgs<'a> {
    add: bool,
    from: CopyFrom,
    chown: Option<&'a Word>,
    chmod: Option<&'a Word>,
    link: bool,
    excludes: &'a [Word],
    sources: &'a [Word],
    dest: &'a Word,
    heredocs: &'a [Heredoc],
    checksum: Option<&'a Word>,
    unpack: Option<bool>,
}

/// Resolves a COPY or ADD instruction (`kind`) of stage `stage_index`; `before` gives the
/// variables as they were before it. `in_trigger` is set for an ONBUILD trigger of the base,
/// whose `--from` cannot be checked against the stages (it is then taken as an image).
/// Returns the history string and the step.
///
/// Errors: a `--from` naming a later stage or using a variable; an empty source, a URL source
/// for COPY or from a stage, a Git source; a bad `--chmod` or `--checksum`.
pub(super) fn copy_step(
    df: &Dockerfile,
    st: &StageState,
    before: &dyn Fn(&str) -> Option<String>,
    kind: &InstructionKind,
    stage_index: usize,
    in_trigger: bool,
) -> Result<(String, StepKind), DockerfileError> {
    let args = match kind {
        InstructionKind::Copy {
            from,
            chown,
            chmod,
            link,
            excludes,
            sources,
            dest,
            heredocs,
        } => CopyArgs {
            add: false,
            from: copy_from(df, stage_index, from.as_ref(), in_trigger)?,
            chown: chown.as_ref(),
            chmod: chmod.as_ref(),
            link: *link,
            excludes,
            sources,
            dest,
            heredocs,
            checksum: None,
            unpack: None,
        },
        InstructionKind::Add {
            chown,
            chmod,
            link,
            checksum,
            unpack,
            excludes,
            sources,
            dest,
            heredocs,
        } => CopyArgs {
            add: true,
            from: CopyFrom::Context,
            chown: chown.as_ref(),
            chmod: chmod.as_ref(),
            link: *link,
            excludes,
            sources,
            dest,
            heredocs,
            checksum: checksum.as_ref(),
            unpack: *unpack,
        },
        _ => unreachable!("copy_step resolves COPY and ADD instructions only"),
    };
    resolve_copy(df, st, before, args)
}

/// Where a COPY reads from: the context without `--from`, else the stage or image it names.
fn copy_from(
    df: &Dockerfile,
    stage_index: usize,
    from: Option<&Word>,
    in_trigger: bool,
) -> Result<CopyFrom, DockerfileError> {
    Ok(match from {
        None => CopyFrom::Context,
        Some(w) => resolve_from(df, stage_index, w, &w.text, "COPY --from").or_else(|e| {
            // In a trigger the stage list is the Dockerfile's, not the
            // trigger's one-stage file: resolve against the real one.
            if in_trigger {
                Ok(CopyFrom::Image(w.text.clone()))
            } else {
                Err(e)
            }
        })?,
    })
}

/// Expands and checks every part of a COPY/ADD, in the order BuildKit reports errors:
/// sources, destination, `--chown`, `--chmod`, `--checksum`.
fn resolve_copy(
    df: &Dockerfile,
    st: &StageState,
    before: &dyn Fn(&str) -> Option<String>,
    a: CopyArgs<'_>,
) -> Result<(String, StepKind), DockerfileError> {
    let (srcs, inline) = copy_sources(df, before, &a)?;
    let raw_dest = expand(df, a.dest, before)?;
    // BuildKit `dispatchCopy`: an empty destination is the working directory as a directory
    // (`.`), so a `COPY --link` onto an empty tree puts the file in it, not at its path.
    let dest_abs = normalize_path(
        &st.workdir,
        if raw_dest.is_empty() { "." } else { &raw_dest },
        true,
    );
    let chown = match a.chown {
        Some(w) => Some(expand(df, w, before)?).filter(|s| !s.is_empty()),
        None => None,
    };
    let (chmod_text, chmod_bits, chmod_symbolic) = match a.chmod {
        Some(w) => {
            let (text, bits, symbolic) = chmod_flag(df, before, w)?;
            (Some(text), bits, symbolic)
        }
        None => (None, None, None),
    };
    let checksum = match a.checksum {
        Some(w) => Some(checksum_flag(df, before, w, &srcs, &inline)?),
        None => None,
    };
    let history = CopyHistory {
        add: a.add,
        chown: chown.as_deref(),
        chmod: chmod_text.as_deref(),
        sources: &srcs,
        inline: &inline,
        dest: &raw_dest,
    };
    Ok((
        history.to_string(),
        StepKind::Copy(CopyStep {
            add: a.add,
            from: a.from,
            sources: srcs,
            inline,
            dest: dest_abs,
            chown,
            chmod: chmod_bits,
            chmod_symbolic,
            link: a.link,
            excludes: a.excludes.iter().map(|w| w.text.clone()).collect(),
            unpack: a.unpack,
            checksum,
        }),
    ))
}

/// The sources of a COPY/ADD in order: expanded paths or URLs, and the heredocs they name as
/// inline files (expanded unless the terminator was quoted). A heredoc name with no body is
/// skipped.
fn copy_sources(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    a: &CopyArgs<'_>,
) -> Result<(Vec<String>, Vec<InlineFile>), DockerfileError> {
    let keyword = if a.add { "ADD" } else { "COPY" };
    let mut srcs = Vec::with_capacity(a.sources.len());
    let mut inline = Vec::new();
    for s in a.sources {
        if !a.heredocs.is_empty() {
            if let Some(name) = heredoc_name(&s.text) {
                let Some(doc) = a.heredocs.iter().find(|d| d.name == name) else {
                    continue;
                };
                let mut content = heredoc_body(doc);
                if doc.expand {
                    content =
                        expand_heredoc(&content, before).map_err(|e| expansion_error(df, s, e))?;
                }
                inline.push(InlineFile {
                    name: name.clone(),
                    content,
                });
                continue;
            }
        }
        let v = expand(df, s, before)?;
        if v.is_empty() {
            return Err(invalid(
                df,
                s,
                &format!("{keyword} source"),
                &v,
                "empty after expansion",
            ));
        }
        if is_url(&v) {
            if !a.add {
                return Err(invalid(
                    df,
                    s,
                    "COPY source",
                    &v,
                    "source can't be a URL for COPY (use ADD)",
                ));
            }
            if a.from != CopyFrom::Context {
                return Err(invalid(
                    df,
                    s,
                    "source",
                    &v,
                    "a URL cannot be copied from a stage",
                ));
            }
        } else if a.add && is_git(&v) {
            return Err(df.error_at(
                s.span,
                s.text.chars().count(),
                ErrorKind::Unsupported {
                    what: "ADD from a Git repository".into(),
                    reason: "polyarch fetches only http(s) URLs; clone in a RUN step instead"
                        .into(),
                },
            ));
        }
        srcs.push(v);
    }
    Ok((srcs, inline))
}

/// `--chmod` expanded: the text as written after expansion, and the mode as octal bits or in
/// symbolic form. BuildKit: octal up to 07777, else a symbolic mode; text that looks numeric
/// but is not octal is reported as such.
fn chmod_flag(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    w: &Word,
) -> Result<(String, Option<u32>, Option<SymbolicMode>), DockerfileError> {
    let text = expand(df, w, before)?;
    let (bits, symbolic) =
        match u32::from_str_radix(&text, 8) {
            Ok(bits) if bits <= 0o7777 => (Some(bits), None),
            _ if text.starts_with(|c: char| c.is_ascii_digit()) => return Err(invalid(
                df,
                w,
                "--chmod",
                &text,
                "it should be an octal string between 0 and 07777 or a symbolic mode such as u+x",
            )),
            _ => {
                let mode = SymbolicMode::parse(&text).map_err(|reason| {
                    invalid(
                        df,
                        w,
                        "--chmod",
                        &text,
                        &format!("not a symbolic mode: {reason}"),
                    )
                })?;
                (None, Some(mode))
            }
        };
    Ok((text, bits, symbolic))
}

/// ADD `--checksum` expanded and checked: one HTTP(S) source only, and a `sha256:` digest.
fn checksum_flag(
    df: &Dockerfile,
    before: &dyn Fn(&str) -> Option<String>,
    w: &Word,
    srcs: &[String],
    inline: &[InlineFile],
) -> Result<String, DockerfileError> {
    let text = expand(df, w, before)?;
    if srcs.len() != 1 || !inline.is_empty() {
        return Err(invalid(
            df,
            w,
            "--checksum",
            &text,
            "checksum can't be specified for multiple sources",
        ));
    }
    if !is_url(&srcs[0]) {
        return Err(invalid(
            df,
            w,
            "--checksum",
            &text,
            "checksum requires HTTP(S) sources",
        ));
    }
    let hex = text.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid(
            df,
            w,
            "--checksum",
            &text,
            "expected sha256: followed by 64 lowercase hex digits",
        ));
    }
    Ok(text)
}

/// BuildKit's commit message for a COPY/ADD: the flags `--chown`/`--chmod`, the sources,
/// heredocs as `<<NAME`, the destination as written (expanded), then `# buildkit`.
struct CopyHistory<'a> {
    add: bool,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    sources: &'a [String],
    inline: &'a [InlineFile],
    dest: &'a str,
}

impl std::fmt::Display for CopyHistory<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.add { "ADD" } else { "COPY" })?;
        if let Some(c) = self.chown {
            write!(f, " --chown={c}")?;
        }
        if let Some(t) = self.chmod {
            write!(f, " --chmod={t}")?;
        }
        for s in self.sources {
            write!(f, " {s}")?;
        }
        for file in self.inline {
            write!(f, " <<{}", file.name)?;
        }
        write!(f, " {} # buildkit", self.dest)
    }
}
