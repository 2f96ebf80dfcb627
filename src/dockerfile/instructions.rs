//! Nodes → typed instructions grouped into stages (BuildKit `frontend/dockerfile/instructions/
//! parse.go`): argument forms per instruction, flag validation, stage names.

use super::syntax::{self, fields, parse_words, Node, Tree};
use super::{
    make_error, ArgDecl, Dockerfile, DockerfileError, ErrorKind, Instruction, InstructionKind,
    KeyValue, ShellOrExec, Span, Stage, Word, SUPPORTED_INSTRUCTIONS, UNSUPPORTED_INSTRUCTIONS,
};

/// Builds the typed Dockerfile from the syntax tree.
pub(crate) fn build(tree: Tree, file: &str) -> Result<Dockerfile, DockerfileError> {
    let mut df = Dockerfile {
        file: file.to_string(),
        escape: tree.escape,
        syntax: tree.syntax,
        global_args: Vec::new(),
        stages: Vec::new(),
        warnings: tree.warnings,
        lines: tree.lines,
    };
    for node in &tree.nodes {
        let cx = Cx {
            df: &df,
            node,
            keyword: node.keyword.to_ascii_uppercase(),
        };
        let span = node.span(&df.lines);
        if cx.keyword == "FROM" {
            let stage = cx.from()?;
            if let Some(name) = &stage.name {
                if let Some(first) = df.stages.iter().find(|s| s.name.as_ref() == Some(name)) {
                    return Err(cx.err_at(
                        stage.span,
                        node.text.chars().count(),
                        ErrorKind::DuplicateStage {
                            name: name.clone(),
                            first_line: first.span.line,
                        },
                    ));
                }
            }
            df.stages.push(stage);
            continue;
        }
        let kind = cx.instruction()?;
        if df.stages.is_empty() {
            match kind {
                InstructionKind::Arg(args) => df.global_args.extend(args),
                kind => {
                    return Err(cx.err_at(
                        span,
                        node.keyword.chars().count(),
                        ErrorKind::BeforeFrom {
                            instruction: kind.keyword().to_string(),
                        },
                    ))
                }
            }
            continue;
        }
        let instruction = Instruction {
            span,
            end_line: node.end_line,
            source: node.text.clone(),
            kind,
        };
        if let Some(stage) = df.stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    if df.stages.is_empty() {
        return Err(df.error_file(ErrorKind::NoStage));
    }
    Ok(df)
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known instruction within a third of the word's length (at least 1 edit).
fn suggest(word: &str) -> Option<String> {
    let up = word.to_ascii_uppercase();
    let limit = (up.chars().count() / 3).max(1);
    SUPPORTED_INSTRUCTIONS
        .iter()
        .chain(UNSUPPORTED_INSTRUCTIONS)
        .map(|k| (distance(&up, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.to_string())
}

/// Per-node context for building one instruction.
struct Cx<'a> {
    df: &'a Dockerfile,
    node: &'a Node,
    keyword: String,
}

/// How a flag is declared for an instruction (BuildKit `BFlags`).
#[derive(Clone, Copy, PartialEq)]
enum FlagSpec {
    /// A string flag polyarch implements.
    String,
    /// A flag of the instruction polyarch does not implement yet.
    Later,
}

/// A flag found on the instruction.
struct Flag {
    name: String,
    value: Word,
}

impl Cx<'_> {
    fn err_at(&self, span: Span, width: usize, kind: ErrorKind) -> DockerfileError {
        make_error(&self.df.file, &self.df.lines, span, width, kind)
    }

    fn span_at(&self, off: usize) -> Span {
        self.node.span_at(off, &self.df.lines)
    }

    fn keyword_err(&self, kind: ErrorKind) -> DockerfileError {
        self.err_at(self.span_at(0), self.node.keyword.chars().count(), kind)
    }

    fn args_err(&self, message: impl Into<String>) -> DockerfileError {
        self.keyword_err(ErrorKind::Arguments {
            instruction: self.keyword.clone(),
            message: message.into(),
        })
    }

    /// A word at byte offset `off` of the arguments.
    fn word(&self, text: String, off: usize) -> Word {
        Word {
            span: self.span_at(self.node.args_off + off),
            text,
        }
    }

    /// Validates the flags against `spec` and returns them.
    fn flags(&self, spec: &[(&str, FlagSpec)]) -> Result<Vec<Flag>, DockerfileError> {
        let mut out: Vec<Flag> = Vec::new();
        for raw in &self.node.flags {
            let (name, value) = match raw.text.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (raw.text.clone(), None),
            };
            let span = self.span_at(raw.off);
            let width = raw.text.chars().count() + 2;
            let lname = name.to_ascii_lowercase();
            match spec.iter().find(|(n, _)| *n == lname) {
                None => {
                    return Err(self.err_at(
                        span,
                        width,
                        ErrorKind::UnknownFlag {
                            instruction: self.keyword.clone(),
                            flag: name,
                        },
                    ))
                }
                Some((_, FlagSpec::Later)) => {
                    return Err(self.err_at(
                        span,
                        width,
                        ErrorKind::UnsupportedFlag {
                            instruction: self.keyword.clone(),
                            flag: lname,
                        },
                    ))
                }
                Some((_, FlagSpec::String)) => {
                    let invalid = |reason: &str| {
                        self.err_at(
                            span,
                            width,
                            ErrorKind::InvalidFlag {
                                instruction: self.keyword.clone(),
                                flag: lname.clone(),
                                reason: reason.to_string(),
                            },
                        )
                    };
                    if out.iter().any(|f| f.name == lname) {
                        return Err(invalid("given more than once"));
                    }
                    let Some(value) = value else {
                        return Err(invalid("missing a value (write --flag=value)"));
                    };
                    out.push(Flag {
                        name: lname.clone(),
                        value: Word {
                            text: value,
                            span: self.span_at(raw.off + 3 + name.len()),
                        },
                    });
                }
            }
        }
        Ok(out)
    }

    fn take_flag(flags: &mut Vec<Flag>, name: &str) -> Option<Word> {
        let i = flags.iter().position(|f| f.name == name)?;
        Some(flags.remove(i).value)
    }

    /// `FROM [--platform=P] image [AS name]`.
    fn from(&self) -> Result<Stage, DockerfileError> {
        let mut flags = self.flags(&[("platform", FlagSpec::String)])?;
        let platform = Self::take_flag(&mut flags, "platform");
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
            // BuildKit `validateDefinitionDescription`/`stageNameRegexp`: ^[a-z][a-z0-9-_\.]*$
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

    fn instruction(&self) -> Result<InstructionKind, DockerfileError> {
        let kw = self.keyword.as_str();
        if UNSUPPORTED_INSTRUCTIONS.contains(&kw) {
            return Err(self.keyword_err(ErrorKind::UnsupportedInstruction {
                instruction: kw.to_string(),
            }));
        }
        if !SUPPORTED_INSTRUCTIONS.contains(&kw) {
            return Err(self.keyword_err(ErrorKind::UnknownInstruction {
                word: self.node.keyword.clone(),
                suggestion: suggest(&self.node.keyword),
            }));
        }
        let args = self.node.args();
        Ok(match kw {
            "RUN" => {
                self.flags(&[
                    ("mount", FlagSpec::Later),
                    ("network", FlagSpec::Later),
                    ("security", FlagSpec::Later),
                    ("device", FlagSpec::Later),
                ])?;
                let command = self.maybe_json()?;
                InstructionKind::Run {
                    command,
                    heredocs: self.node.heredocs.clone(),
                }
            }
            "CMD" => InstructionKind::Cmd(self.no_flags_then(Self::maybe_json)?),
            "ENTRYPOINT" => InstructionKind::Entrypoint(self.no_flags_then(Self::maybe_json)?),
            "COPY" => self.copy()?,
            "ENV" => InstructionKind::Env(self.no_flags_then(Self::name_val)?),
            "LABEL" => InstructionKind::Label(self.no_flags_then(Self::name_val)?),
            "ARG" => {
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
                InstructionKind::Arg(decls)
            }
            "WORKDIR" | "USER" => {
                self.flags(&[])?;
                if args.is_empty() {
                    return Err(self.args_err("requires exactly one argument"));
                }
                let w = self.word(args.to_string(), 0);
                if kw == "WORKDIR" {
                    InstructionKind::Workdir(w)
                } else {
                    InstructionKind::User(w)
                }
            }
            "EXPOSE" => {
                self.flags(&[])?;
                let words: Vec<Word> = fields(args)
                    .into_iter()
                    .map(|(w, off)| self.word(w, off))
                    .collect();
                if words.is_empty() {
                    return Err(self.args_err("requires at least one argument"));
                }
                InstructionKind::Expose(words)
            }
            _ => unreachable!("every supported instruction is handled above"),
        })
    }

    fn no_flags_then<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, DockerfileError>,
    ) -> Result<T, DockerfileError> {
        self.flags(&[])?;
        f(self)
    }

    /// Shell or exec form (BuildKit `parseMaybeJSON`). Text that is clearly meant as a JSON
    /// array (`[` then a string followed by `,` or `]`) but does not parse is an error here;
    /// BuildKit would silently run it through the shell, which is never what was meant.
    fn maybe_json(&self) -> Result<ShellOrExec, DockerfileError> {
        let args = self.node.args();
        if args.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        match self.json_array(args)? {
            Some(list) => Ok(ShellOrExec::Exec(list)),
            None => Ok(ShellOrExec::Shell(args.to_string())),
        }
    }

    /// `Some(list)` for a JSON array of strings, `None` for text that is not meant as JSON.
    fn json_array(&self, args: &str) -> Result<Option<Vec<String>>, DockerfileError> {
        if !args.starts_with('[') {
            return Ok(None);
        }
        let invalid = |off: usize, reason: String| {
            let off = off.min(args.len());
            self.err_at(
                self.span_at(self.node.args_off + off),
                1,
                ErrorKind::InvalidJson {
                    instruction: self.keyword.clone(),
                    reason,
                },
            )
        };
        match serde_json::from_str::<Vec<serde_json::Value>>(args) {
            Ok(values) => {
                let mut out = Vec::with_capacity(values.len());
                for v in values {
                    match v {
                        serde_json::Value::String(s) => out.push(s),
                        other => {
                            return Err(invalid(
                                0,
                                format!("arrays must contain strings only, found {other}"),
                            ))
                        }
                    }
                }
                Ok(Some(out))
            }
            Err(e) if looks_like_json(args) => {
                // serde_json counts columns in bytes on a single line; at the end of input
                // point just past the text.
                let off = if e.is_eof() {
                    args.len()
                } else {
                    e.column().saturating_sub(1)
                };
                let msg = e.to_string();
                let reason = msg
                    .split(" at line ")
                    .next()
                    .unwrap_or(msg.as_str())
                    .to_string();
                Err(invalid(off, reason))
            }
            Err(_) => Ok(None),
        }
    }

    /// `COPY [flags] src... dest` or the JSON form.
    fn copy(&self) -> Result<InstructionKind, DockerfileError> {
        let mut flags = self.flags(&[
            ("from", FlagSpec::String),
            ("chown", FlagSpec::String),
            ("chmod", FlagSpec::String),
            ("link", FlagSpec::Later),
            ("parents", FlagSpec::Later),
            ("exclude", FlagSpec::Later),
        ])?;
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
        Ok(InstructionKind::Copy {
            from: Self::take_flag(&mut flags, "from"),
            chown: Self::take_flag(&mut flags, "chown"),
            chmod: Self::take_flag(&mut flags, "chmod"),
            sources: words,
            dest,
            heredocs: self.node.heredocs.clone(),
        })
    }

    /// ENV/LABEL: `k=v ...` or the legacy `k v` (BuildKit `parseNameVal`).
    fn name_val(&self) -> Result<Vec<KeyValue>, DockerfileError> {
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
}

/// True when `args` is evidently an attempt at a JSON array: `[`, blanks, then either `]` or a
/// double-quoted string followed by `,`, `]` or the end. `[ "$A" = x ]` (a shell test) is not.
fn looks_like_json(args: &str) -> bool {
    let Some(rest) = args.strip_prefix('[') else {
        return false;
    };
    let rest = rest.trim_start();
    if rest.starts_with(']') {
        return true;
    }
    let Some(body) = rest.strip_prefix('"') else {
        return false;
    };
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let after = body[i + 1..].trim_start();
                return after.is_empty() || after.starts_with(',') || after.starts_with(']');
            }
            _ => {}
        }
    }
    // An unterminated string right after `[`.
    true
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    fn one(text: &str) -> InstructionKind {
        let df = parse(&format!("FROM scratch\n{text}\n"), "Dockerfile").unwrap();
        df.stages[0].instructions[0].kind.clone()
    }

    fn err(text: &str) -> DockerfileError {
        parse(text, "Dockerfile").unwrap_err()
    }

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn stages_and_global_args() {
        let df = parse(
            "ARG V=1 W\nARG X\nfrom --platform=$BUILDPLATFORM alpine:$V AS Build\nRUN a\nFROM build\n",
            "Dockerfile",
        )
        .unwrap();
        let names: Vec<&str> = df.global_args.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["V", "W", "X"]);
        assert_eq!(df.global_args[0].default.as_deref(), Some("1"));
        assert_eq!(df.global_args[1].default, None);
        assert_eq!(df.global_args[1].span, Span { line: 1, column: 9 });
        assert_eq!(df.stages.len(), 2);
        let s = &df.stages[0];
        assert_eq!(s.name.as_deref(), Some("build"));
        assert_eq!(s.base.text, "alpine:$V");
        assert_eq!(
            s.base.span,
            Span {
                line: 3,
                column: 32
            }
        );
        assert_eq!(s.platform.as_ref().unwrap().text, "$BUILDPLATFORM");
        assert_eq!(s.instructions.len(), 1);
        assert_eq!(df.stages[1].base.text, "build");
        assert_eq!(df.stage_index("BUILD"), Some(0));
    }

    #[test]
    fn run_cmd_entrypoint_forms() {
        assert_eq!(
            one("RUN echo \"hi there\" && ls"),
            InstructionKind::Run {
                command: ShellOrExec::Shell("echo \"hi there\" && ls".into()),
                heredocs: vec![]
            }
        );
        assert_eq!(
            one("run [\"echo\", \"a b\"]"),
            InstructionKind::Run {
                command: ShellOrExec::Exec(vec!["echo".into(), "a b".into()]),
                heredocs: vec![]
            }
        );
        // A shell test starting with `[` is shell form.
        assert!(matches!(
            one("RUN [ \"$A\" = x ] && echo yes"),
            InstructionKind::Run {
                command: ShellOrExec::Shell(_),
                ..
            }
        ));
        assert!(matches!(
            one("RUN [ -f /x ]"),
            InstructionKind::Run {
                command: ShellOrExec::Shell(_),
                ..
            }
        ));
        assert_eq!(
            one("CMD []"),
            InstructionKind::Cmd(ShellOrExec::Exec(vec![]))
        );
        assert_eq!(
            one("ENTRYPOINT [\"/bin/app\", \"--flag\"]"),
            InstructionKind::Entrypoint(ShellOrExec::Exec(vec![
                "/bin/app".into(),
                "--flag".into()
            ]))
        );
        assert_eq!(
            one("CMD echo $HOME"),
            InstructionKind::Cmd(ShellOrExec::Shell("echo $HOME".into()))
        );
    }

    #[test]
    fn bad_json() {
        let e = err("FROM a\nCMD [\"echo\", \"hi\"\n");
        assert_eq!(e.line, 2);
        assert!(matches!(*e.kind, ErrorKind::InvalidJson { .. }), "{e}");
        let e = err("FROM a\nRUN [\"echo\", 1]\n");
        assert!(
            e.to_string().contains("arrays must contain strings only"),
            "{e}"
        );
        // Single quotes are not JSON: BuildKit runs it through the shell, so do we.
        assert_eq!(
            one("ENTRYPOINT ['single', 'quotes']"),
            InstructionKind::Entrypoint(ShellOrExec::Shell("['single', 'quotes']".into()))
        );
        let e = err("FROM a\nRUN [\"a\",\n");
        assert_eq!((e.line, e.column), (2, 10), "{e}");
    }

    #[test]
    fn copy_forms_and_flags() {
        match one("COPY --chown=app:app --chmod=0755 a b* /dst/") {
            InstructionKind::Copy {
                from,
                chown,
                chmod,
                sources,
                dest,
                ..
            } => {
                assert_eq!(from, None);
                assert_eq!(chown.unwrap().text, "app:app");
                assert_eq!(chmod.unwrap().text, "0755");
                assert_eq!(texts(&sources), ["a", "b*"]);
                assert_eq!(dest.text, "/dst/");
            }
            other => panic!("{other:?}"),
        }
        match one("COPY [\"a b\", \"c\", \"/d\"]") {
            InstructionKind::Copy { sources, dest, .. } => {
                assert_eq!(texts(&sources), ["a b", "c"]);
                assert_eq!(dest.text, "/d");
            }
            other => panic!("{other:?}"),
        }
        match one("COPY --from=build /out /in") {
            InstructionKind::Copy { from, .. } => assert_eq!(from.unwrap().text, "build"),
            other => panic!("{other:?}"),
        }
        let e = err("FROM a\nCOPY onlyone\n");
        assert!(
            e.to_string()
                .contains("COPY requires at least two arguments"),
            "{e}"
        );
        let e = err("FROM a\nCOPY --link a b\n");
        assert_eq!(
            *e.kind,
            ErrorKind::UnsupportedFlag {
                instruction: "COPY".into(),
                flag: "link".into()
            }
        );
        assert_eq!((e.line, e.column), (2, 6));
        let e = err("FROM a\nCOPY --chown a b\n");
        assert!(e.to_string().contains("missing a value"), "{e}");
        let e = err("FROM a\nCOPY --chown=a --chown=b a b\n");
        assert!(e.to_string().contains("given more than once"), "{e}");
    }

    #[test]
    fn env_label_arg_forms() {
        match one("ENV A=1 B=\"two words\" C='$x'") {
            InstructionKind::Env(kv) => {
                let pairs: Vec<(&str, &str)> = kv
                    .iter()
                    .map(|p| (p.key.text.as_str(), p.value.text.as_str()))
                    .collect();
                assert_eq!(pairs, [("A", "1"), ("B", "\"two words\""), ("C", "'$x'")]);
                assert_eq!(
                    kv[1].value.span,
                    Span {
                        line: 2,
                        column: 11
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        match one("ENV LEGACY  some value here") {
            InstructionKind::Env(kv) => {
                assert_eq!(kv[0].key.text, "LEGACY");
                assert_eq!(kv[0].value.text, "some value here");
            }
            other => panic!("{other:?}"),
        }
        match one("LABEL org.opencontainers.image.title=\"My app\" version=1") {
            InstructionKind::Label(kv) => assert_eq!(kv.len(), 2),
            other => panic!("{other:?}"),
        }
        let e = err("FROM a\nENV ONLY\n");
        assert!(e.to_string().contains("ENV must have two arguments"), "{e}");
        let e = err("FROM a\nENV A=1 B\n");
        assert!(e.to_string().contains("can't find = in \"B\""), "{e}");
        assert_eq!(e.column, 9);
        match one("ARG A B=2 C=") {
            InstructionKind::Arg(a) => {
                let got: Vec<(&str, Option<&str>)> = a
                    .iter()
                    .map(|d| (d.name.as_str(), d.default.as_deref()))
                    .collect();
                assert_eq!(got, [("A", None), ("B", Some("2")), ("C", Some(""))]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_with_locations() {
        let e = err("FROM a\nRUN x\n\nADD a b\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:4:1: unsupported instruction ADD: polyarch does not implement it yet\n    ADD a b\n    ^^^"
        );
        let e = err("FROM a\n  COPPY a b\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:2:3: unknown instruction: COPPY (did you mean COPY?)\n      COPPY a b\n      ^^^^^"
        );
        let e = err("FROM a\nXYZZY a\n");
        assert_eq!(
            *e.kind,
            ErrorKind::UnknownInstruction {
                word: "XYZZY".into(),
                suggestion: None
            }
        );
        let e = err("FROM a\nentrypiont x\n");
        assert!(e.to_string().contains("did you mean ENTRYPOINT?"), "{e}");
        let e = err("RUN x\nFROM a\n");
        assert_eq!(
            *e.kind,
            ErrorKind::BeforeFrom {
                instruction: "RUN".into()
            }
        );
        let e = err("ARG A\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile: no FROM instruction: a Dockerfile needs at least one build stage"
        );
        let e = err("FROM a b\n");
        assert!(
            e.to_string()
                .contains("FROM requires either one or three arguments"),
            "{e}"
        );
        let e = err("FROM a AS 1x\n");
        assert!(matches!(*e.kind, ErrorKind::InvalidStageName { .. }));
        assert_eq!(e.column, 11);
        let e = err("FROM a AS x\nFROM b AS X\n");
        assert_eq!(
            *e.kind,
            ErrorKind::DuplicateStage {
                name: "x".into(),
                first_line: 1
            }
        );
        let e = err("FROM a\nRUN --mount=type=cache,target=/x make\n");
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            "Dockerfile:2:5: RUN --mount is not supported yet"
        );
        let e = err("FROM a\nENV --x=1 A=1\n");
        assert_eq!(
            *e.kind,
            ErrorKind::UnknownFlag {
                instruction: "ENV".into(),
                flag: "x".into()
            }
        );
        let e = err("FROM --plat=x a\n");
        assert_eq!(
            *e.kind,
            ErrorKind::UnknownFlag {
                instruction: "FROM".into(),
                flag: "plat".into()
            }
        );
        let e = err("FROM a\nEXPOSE\n");
        assert!(
            e.to_string()
                .contains("EXPOSE requires at least one argument"),
            "{e}"
        );
        let e = err("FROM a\nWORKDIR\n");
        assert!(
            e.to_string()
                .contains("WORKDIR requires exactly one argument"),
            "{e}"
        );
    }

    #[test]
    fn tab_indented_caret() {
        let e = err("FROM a\n\tVOLUME /x\n");
        assert!(
            e.to_string().ends_with("\n    \tVOLUME /x\n    \t^^^^^^"),
            "{e:?}"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("RUNN").as_deref(), Some("RUN"));
        assert_eq!(suggest("wrokdir").as_deref(), Some("WORKDIR"));
        assert_eq!(suggest("cpy").as_deref(), Some("COPY"));
        assert_eq!(suggest("FOO"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
