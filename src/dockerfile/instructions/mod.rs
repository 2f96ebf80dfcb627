//! Nodes → typed instructions grouped into stages (BuildKit `frontend/dockerfile/instructions/
//! parse.go`): argument forms per instruction, flag validation, stage names.

use super::syntax::{self, fields, parse_words, Node, Tree};
use super::{
    make_error, ArgDecl, Dockerfile, DockerfileError, ErrorKind, HealthcheckSpec, Instruction,
    InstructionKind, KeyValue, ShellOrExec, Span, Stage, Word, INSTRUCTIONS,
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
    let mut first_node: Option<Span> = None;
    for node in &tree.nodes {
        let cx = Cx {
            df: &df,
            node,
            keyword: node.keyword.to_ascii_uppercase(),
        };
        let span = node.span(&df.lines);
        first_node.get_or_insert(span);
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
        // Point at the first instruction: the file has only ARGs.
        let span = first_node.unwrap_or(Span { line: 0, column: 0 });
        let width = df.source_line(span.line).trim().chars().count();
        return Err(df.error_at(span, width, ErrorKind::NoStage));
    }
    Ok(df)
}

/// Parses the text of one ONBUILD trigger from a base image's config (`RUN make`, `COPY . /x`,
/// heredoc bodies appended) into an instruction. `file` names it in errors.
pub(crate) fn parse_trigger(text: &str, file: &str) -> Result<Instruction, DockerfileError> {
    let tree = syntax::parse(text, file)?;
    let df = Dockerfile {
        file: file.to_string(),
        escape: tree.escape,
        syntax: None,
        global_args: Vec::new(),
        stages: Vec::new(),
        warnings: Vec::new(),
        lines: tree.lines,
    };
    let node = tree
        .nodes
        .first()
        .ok_or_else(|| df.error_file(ErrorKind::Empty))?;
    let cx = Cx {
        df: &df,
        node,
        keyword: node.keyword.to_ascii_uppercase(),
    };
    if tree.nodes.len() > 1 || matches!(cx.keyword.as_str(), "FROM" | "ONBUILD" | "MAINTAINER") {
        return Err(cx.keyword_err(ErrorKind::InvalidTrigger {
            reason: format!(
                "{} isn't allowed as an ONBUILD trigger",
                if tree.nodes.len() > 1 {
                    "more than one instruction".to_string()
                } else {
                    cx.keyword.clone()
                }
            ),
        }));
    }
    let kind = cx.instruction()?;
    Ok(Instruction {
        span: node.span(&df.lines),
        end_line: node.end_line,
        source: node.text.clone(),
        kind,
    })
}

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest of `known` within a third of the word's length (at least 1 edit), compared in
/// upper case; failing that, the one the word is a prefix of (3 characters at least).
pub(crate) fn nearest(word: &str, known: &[&str]) -> Option<String> {
    let up = word.to_ascii_uppercase();
    let limit = (up.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (distance(&up, &k.to_ascii_uppercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.to_string())
        .or_else(|| {
            (up.chars().count() >= 3)
                .then(|| {
                    known
                        .iter()
                        .find(|k| k.to_ascii_uppercase().starts_with(&up))
                        .map(|k| k.to_string())
                })
                .flatten()
        })
}

/// The closest known instruction.
fn suggest(word: &str) -> Option<String> {
    nearest(word, INSTRUCTIONS)
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
struct Flag {
    name: String,
    /// `None` for a bare boolean flag.
    value: Option<Word>,
    span: Span,
    width: usize,
}

/// The flags of one instruction, validated against its spec.
struct Flags(Vec<Flag>);

impl Flags {
    fn string(&mut self, name: &str) -> Option<Word> {
        let i = self.0.iter().position(|f| f.name == name)?;
        self.0.remove(i).value
    }

    fn strings(&mut self, name: &str) -> Vec<Word> {
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

/// Go's `time.ParseDuration`, in nanoseconds; negative durations are rejected.
pub(crate) fn parse_go_duration(s: &str) -> Result<u64, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {orig:?}");
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("duration {orig:?} is negative"));
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {orig:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        let n: f64 = num.parse().map_err(|_| bad())?;
        total += n * scale;
    }
    if total > u64::MAX as f64 / 2.0 {
        return Err(format!("time: invalid duration {orig:?} (too large)"));
    }
    Ok(total.round() as u64)
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

    fn flag_err(&self, f: &Flag, reason: impl Into<String>) -> DockerfileError {
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
    fn flags(&self, spec: &[(&str, FlagSpec)]) -> Result<Flags, DockerfileError> {
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
    fn bool_flag(flags: &mut Flags, name: &str) -> Option<bool> {
        let i = flags.0.iter().position(|f| f.name == name)?;
        let f = flags.0.remove(i);
        Some(f.value.is_none_or(|v| parse_bool(&v.text).unwrap_or(false)))
    }

    /// `FROM [--platform=P] image [AS name]`.
    fn from(&self) -> Result<Stage, DockerfileError> {
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

    fn instruction(&self) -> Result<InstructionKind, DockerfileError> {
        let kw = self.keyword.as_str();
        if !INSTRUCTIONS.contains(&kw) {
            return Err(self.keyword_err(ErrorKind::UnknownInstruction {
                word: self.node.keyword.clone(),
                suggestion: suggest(&self.node.keyword),
            }));
        }
        let args = self.node.args();
        Ok(match kw {
            "FROM" => {
                // Only reached for ONBUILD FROM: a stage header elsewhere is handled by `build`.
                return Err(self.keyword_err(ErrorKind::InvalidTrigger {
                    reason: "FROM isn't allowed as an ONBUILD trigger".into(),
                }));
            }
            "RUN" => {
                let mut flags = self.flags(&[
                    ("mount", FlagSpec::Strings),
                    ("network", FlagSpec::String),
                    (
                        "security",
                        FlagSpec::Unsupported(
                            "insecure steps need a daemon entitlement polyarch does not grant",
                        ),
                    ),
                    (
                        "device",
                        FlagSpec::Unsupported("CDI devices are a BuildKit labs feature"),
                    ),
                ])?;
                let command = self.maybe_json()?;
                InstructionKind::Run {
                    command,
                    heredocs: self.node.heredocs.clone(),
                    mounts: flags.strings("mount"),
                    network: flags.string("network"),
                }
            }
            "CMD" => InstructionKind::Cmd(self.no_flags_then(Self::maybe_json)?),
            "ENTRYPOINT" => InstructionKind::Entrypoint(self.no_flags_then(Self::maybe_json)?),
            "COPY" => self.copy()?,
            "ADD" => self.add()?,
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
            "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" => {
                self.flags(&[])?;
                if args.is_empty() {
                    return Err(self.args_err("requires exactly one argument"));
                }
                let w = self.word(args.to_string(), 0);
                match kw {
                    "WORKDIR" => InstructionKind::Workdir(w),
                    "USER" => InstructionKind::User(w),
                    "STOPSIGNAL" => InstructionKind::StopSignal(w),
                    _ => InstructionKind::Maintainer(w),
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
            "VOLUME" => {
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
                InstructionKind::Volume(words)
            }
            "SHELL" => {
                self.flags(&[])?;
                match self.json_array(args)? {
                    Some(list) if !list.is_empty() => InstructionKind::Shell(list),
                    Some(_) => return Err(self.args_err("requires at least one argument")),
                    None => {
                        return Err(self.args_err(
                            "requires the arguments to be in JSON form: SHELL [\"executable\", \"parameters\"]",
                        ))
                    }
                }
            }
            "HEALTHCHECK" => self.healthcheck()?,
            "ONBUILD" => self.onbuild()?,
            _ => unreachable!("every instruction in INSTRUCTIONS is handled above"),
        })
    }

    fn no_flags_then<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, DockerfileError>,
    ) -> Result<T, DockerfileError> {
        self.flags(&[])?;
        f(self)
    }

    /// `ONBUILD INSTRUCTION ...` (BuildKit `parseOnBuild`): the trigger is checked now and
    /// recorded as text.
    fn onbuild(&self) -> Result<InstructionKind, DockerfileError> {
        self.flags(&[])?;
        let Some(sub) = self.node.trigger() else {
            return Err(self.args_err("requires at least one argument"));
        };
        let inner = Cx {
            df: self.df,
            node: &sub,
            keyword: sub.keyword.to_ascii_uppercase(),
        };
        match inner.keyword.as_str() {
            "ONBUILD" => {
                return Err(inner.keyword_err(ErrorKind::InvalidTrigger {
                    reason: "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                }))
            }
            "MAINTAINER" | "FROM" => {
                return Err(inner.keyword_err(ErrorKind::InvalidTrigger {
                    reason: format!("{} isn't allowed as an ONBUILD trigger", inner.keyword),
                }))
            }
            _ => {}
        }
        let trigger = inner.instruction()?;
        let mut expression = self.node.args().to_string();
        for doc in &self.node.heredocs {
            expression.push('\n');
            expression.push_str(&doc.content);
            expression.push_str(&doc.name);
        }
        Ok(InstructionKind::Onbuild {
            expression,
            trigger: Box::new(trigger),
        })
    }

    /// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
    /// [--start-interval=D] [--retries=N] CMD command` (BuildKit `parseHealthcheck`; durations
    /// are Go durations of at least 1ms, or 0).
    fn healthcheck(&self) -> Result<InstructionKind, DockerfileError> {
        let args = self.node.args();
        let type_len = args.find(syntax::is_ws).unwrap_or(args.len());
        let typ = args[..type_len].to_ascii_uppercase();
        let rest_off = args[type_len..]
            .find(|c: char| !syntax::is_ws(c))
            .map_or(args.len(), |o| type_len + o);
        if typ.is_empty() {
            return Err(self.args_err("requires at least one argument"));
        }
        if typ == "NONE" {
            self.flags(&[])?;
            if rest_off < args.len() {
                return Err(self.args_err("NONE takes no arguments"));
            }
            return Ok(InstructionKind::Healthcheck(None));
        }
        let mut flags = self.flags(&[
            ("interval", FlagSpec::String),
            ("timeout", FlagSpec::String),
            ("start-period", FlagSpec::String),
            ("start-interval", FlagSpec::String),
            ("retries", FlagSpec::String),
        ])?;
        if typ != "CMD" {
            let w = self.word(args[..type_len].to_string(), 0);
            return Err(self.err_at(
                w.span,
                type_len,
                ErrorKind::Arguments {
                    instruction: "HEALTHCHECK".into(),
                    message: format!(
                        "unknown type {:?} (write HEALTHCHECK CMD <command> or HEALTHCHECK NONE)",
                        &args[..type_len]
                    ),
                },
            ));
        }
        let cmd_text = &args[rest_off..];
        let command = match self.json_array_at(cmd_text, rest_off)? {
            Some(list) => ShellOrExec::Exec(list),
            None => ShellOrExec::Shell(cmd_text.to_string()),
        };
        let empty = match &command {
            ShellOrExec::Exec(v) => v.is_empty(),
            ShellOrExec::Shell(s) => s.is_empty(),
        };
        if empty {
            return Err(self.args_err("is missing a command after CMD"));
        }
        let mut duration = |name: &str| -> Result<u64, DockerfileError> {
            let Some(w) = flags.string(name) else {
                return Ok(0);
            };
            let invalid = |reason: String| {
                self.err_at(
                    w.span,
                    w.text.chars().count(),
                    ErrorKind::InvalidFlag {
                        instruction: "HEALTHCHECK".into(),
                        flag: name.to_string(),
                        reason,
                    },
                )
            };
            let d = parse_go_duration(&w.text).map_err(invalid)?;
            if d != 0 && d < 1_000_000 {
                return Err(invalid("cannot be less than 1ms".into()));
            }
            Ok(d)
        };
        let interval = duration("interval")?;
        let timeout = duration("timeout")?;
        let start_period = duration("start-period")?;
        let start_interval = duration("start-interval")?;
        let retries = match flags.string("retries") {
            None => 0,
            Some(w) => w.text.parse::<u32>().map_err(|_| {
                self.err_at(
                    w.span,
                    w.text.chars().count(),
                    ErrorKind::InvalidFlag {
                        instruction: "HEALTHCHECK".into(),
                        flag: "retries".into(),
                        reason: format!("{:?} is not a non-negative number", w.text),
                    },
                )
            })?,
        };
        Ok(InstructionKind::Healthcheck(Some(HealthcheckSpec {
            command,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        })))
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
        self.json_array_at(args, 0)
    }

    /// [`Cx::json_array`] for text starting at byte `base` of the arguments.
    fn json_array_at(
        &self,
        args: &str,
        base: usize,
    ) -> Result<Option<Vec<String>>, DockerfileError> {
        if !args.starts_with('[') {
            return Ok(None);
        }
        let invalid = |off: usize, reason: String| {
            let off = off.min(args.len());
            self.err_at(
                self.span_at(self.node.args_off + base + off),
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
    fn copy(&self) -> Result<InstructionKind, DockerfileError> {
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
    fn add(&self) -> Result<InstructionKind, DockerfileError> {
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

/// The terminator named by a heredoc source word (`<<EOF`, `<<-"EOF"`), `None` for other words.
pub(crate) fn heredoc_name(word: &str) -> Option<String> {
    syntax::heredoc_word_name(word)
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
                heredocs: vec![],
                mounts: vec![],
                network: None,
            }
        );
        assert_eq!(
            one("run [\"echo\", \"a b\"]"),
            InstructionKind::Run {
                command: ShellOrExec::Exec(vec!["echo".into(), "a b".into()]),
                heredocs: vec![],
                mounts: vec![],
                network: None,
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
        let e = err("FROM a\nCOPY --parents a b\n");
        assert!(
            matches!(&*e.kind, ErrorKind::UnsupportedFlag { flag, .. } if flag == "parents"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (2, 6));
        let e = err("FROM a\nCOPY --link=maybe a b\n");
        assert!(e.to_string().contains("expecting a boolean value"), "{e}");
        match one("COPY --link --exclude=*.md --exclude=tmp a b") {
            InstructionKind::Copy { link, excludes, .. } => {
                assert!(link);
                assert_eq!(texts(&excludes), ["*.md", "tmp"]);
            }
            other => panic!("{other:?}"),
        }
        match one("COPY --link=false a b") {
            InstructionKind::Copy { link, .. } => assert!(!link),
            other => panic!("{other:?}"),
        }
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
        let e = err("FROM a\nRUN x\n\nADD a\n");
        assert_eq!(
            e.to_string(),
            "Dockerfile:4:1: ADD requires at least two arguments: one or more sources and a destination\n    ADD a\n    ^^^"
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
            "Dockerfile:1:1: no FROM instruction: a Dockerfile needs at least one build stage\n    ARG A\n    ^^^^^"
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
        let e = err("FROM a\nRUN --security=insecure make\n");
        assert_eq!(
            e.to_string().lines().next().unwrap(),
            "Dockerfile:2:5: RUN --security is not supported: insecure steps need a daemon entitlement polyarch does not grant"
        );
        let e = err("FROM a\nENV --x=1 A=1\n");
        assert_eq!(
            *e.kind,
            ErrorKind::UnknownFlag {
                instruction: "ENV".into(),
                flag: "x".into(),
                suggestion: None,
            }
        );
        let e = err("FROM --plat=x a\n");
        assert_eq!(
            *e.kind,
            ErrorKind::UnknownFlag {
                instruction: "FROM".into(),
                flag: "plat".into(),
                suggestion: Some("platform".into()),
            }
        );
        let e = err("FROM a\nRUN --mont=type=cache,target=/x make\n");
        assert!(e.to_string().contains("(did you mean --mount?)"), "{e}");
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
        let e = err("FROM a\n\tVOLUMES /x\n");
        assert!(
            e.to_string().ends_with("\n    \tVOLUMES /x\n    \t^^^^^^^"),
            "{e:?}"
        );
    }

    #[test]
    fn add_flags_and_forms() {
        match one("ADD --checksum=sha256:abc --unpack --chown=1 https://h/x.tgz /x/") {
            InstructionKind::Add {
                checksum,
                unpack,
                chown,
                sources,
                dest,
                ..
            } => {
                assert_eq!(checksum.unwrap().text, "sha256:abc");
                assert_eq!(unpack, Some(true));
                assert_eq!(chown.unwrap().text, "1");
                assert_eq!(texts(&sources), ["https://h/x.tgz"]);
                assert_eq!(dest.text, "/x/");
            }
            other => panic!("{other:?}"),
        }
        match one("ADD a.tar /") {
            InstructionKind::Add { unpack, link, .. } => {
                assert_eq!(unpack, None);
                assert!(!link);
            }
            other => panic!("{other:?}"),
        }
        let e = err("FROM a\nADD --from=x a b\n");
        assert!(e.to_string().contains("unknown flag --from for ADD"), "{e}");
        let e = err("FROM a\nADD --keep-git-dir a b\n");
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn heredoc_sources_and_runs() {
        let df = parse(
            "FROM a\nCOPY <<one <<\"two\" /etc/\nfirst $X\none\nsecond $X\ntwo\nRUN <<EOF\necho hi\nEOF\n",
            "Dockerfile",
        )
        .unwrap();
        match &df.stages[0].instructions[0].kind {
            InstructionKind::Copy {
                sources, heredocs, ..
            } => {
                assert_eq!(texts(sources), ["<<one", "<<\"two\""]);
                assert_eq!(heredocs.len(), 2);
                assert!(heredocs[0].expand && !heredocs[1].expand);
                assert_eq!(heredocs[1].content, "second $X\n");
            }
            other => panic!("{other:?}"),
        }
        let e = err("FROM a\nCOPY x <<EOF\nbody\nEOF\n");
        assert!(
            e.to_string()
                .contains("cannot accept a heredoc as a destination"),
            "{e}"
        );
    }

    #[test]
    fn config_instructions() {
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-ec\"]"),
            InstructionKind::Shell(vec!["/bin/bash".into(), "-ec".into()])
        );
        let e = err("FROM a\nSHELL /bin/bash -c\n");
        assert!(e.to_string().contains("JSON form"), "{e}");
        assert_eq!(one("HEALTHCHECK NONE"), InstructionKind::Healthcheck(None));
        match one("HEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://x/") {
            InstructionKind::Healthcheck(Some(h)) => {
                assert_eq!(h.interval, 300_000_000_000);
                assert_eq!(h.timeout, 3_000_000_000);
                assert_eq!(h.retries, 3);
                assert_eq!(h.command, ShellOrExec::Shell("curl -f http://x/".into()));
            }
            other => panic!("{other:?}"),
        }
        match one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]") {
            InstructionKind::Healthcheck(Some(h)) => assert_eq!(
                h.command,
                ShellOrExec::Exec(vec!["/bin/check".into(), "-q".into()])
            ),
            other => panic!("{other:?}"),
        }
        for (bad, msg) in [
            (
                "HEALTHCHECK --interval=1us CMD x",
                "cannot be less than 1ms",
            ),
            ("HEALTHCHECK --interval=5 CMD x", "missing unit"),
            (
                "HEALTHCHECK --retries=-1 CMD x",
                "not a non-negative number",
            ),
            ("HEALTHCHECK NONE x", "NONE takes no arguments"),
            ("HEALTHCHECK PING x", "unknown type"),
            ("HEALTHCHECK CMD", "missing a command"),
        ] {
            let e = err(&format!("FROM a\n{bad}\n"));
            assert!(e.to_string().contains(msg), "{bad}: {e}");
        }
        match one("VOLUME [\"/data\", \"/logs\"]") {
            InstructionKind::Volume(v) => assert_eq!(texts(&v), ["/data", "/logs"]),
            other => panic!("{other:?}"),
        }
        match one("VOLUME /a $B") {
            InstructionKind::Volume(v) => assert_eq!(texts(&v), ["/a", "$B"]),
            other => panic!("{other:?}"),
        }
        match one("STOPSIGNAL SIGKILL") {
            InstructionKind::StopSignal(w) => assert_eq!(w.text, "SIGKILL"),
            other => panic!("{other:?}"),
        }
        match one("MAINTAINER Jane Doe <jane@example.com>") {
            InstructionKind::Maintainer(w) => assert_eq!(w.text, "Jane Doe <jane@example.com>"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn onbuild_triggers() {
        match one("ONBUILD RUN echo hi") {
            InstructionKind::Onbuild {
                expression,
                trigger,
            } => {
                assert_eq!(expression, "RUN echo hi");
                assert!(matches!(*trigger, InstructionKind::Run { .. }));
            }
            other => panic!("{other:?}"),
        }
        let df = parse("FROM a\nONBUILD COPY <<EOF /x\nbody\nEOF\n", "Dockerfile").unwrap();
        match &df.stages[0].instructions[0].kind {
            InstructionKind::Onbuild { expression, .. } => {
                assert_eq!(expression, "COPY <<EOF /x\nbody\nEOF")
            }
            other => panic!("{other:?}"),
        }
        let e = err("FROM a\nONBUILD ONBUILD RUN x\n");
        assert!(e.to_string().contains("Chaining ONBUILD"), "{e}");
        assert_eq!((e.line, e.column), (2, 9));
        let e = err("FROM a\nONBUILD FROM x\n");
        assert!(e.to_string().contains("FROM isn't allowed"), "{e}");
        let e = err("FROM a\nONBUILD  RUNN x\n");
        assert_eq!((e.line, e.column), (2, 10));
        assert!(e.to_string().contains("did you mean RUN?"), "{e}");
        let e = err("FROM a\nONBUILD\n");
        assert!(e.to_string().contains("at least one argument"), "{e}");
        let t = parse_trigger("RUN make \\\n  install", "t").unwrap();
        assert!(matches!(t.kind, InstructionKind::Run { .. }));
        assert!(parse_trigger("FROM x", "t").is_err());
        assert!(parse_trigger("RUN a\nRUN b", "t").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
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
