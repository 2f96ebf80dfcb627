//! The Dockerfile front end: text → syntax tree with spans → typed instructions grouped into
//! stages. Level 0: pure, no I/O.
//!
//! The grammar follows BuildKit's `frontend/dockerfile/parser` (line handling, parser
//! directives, per-instruction argument forms) and `instructions` (flags, argument counts), as
//! described by the Dockerfile reference (<https://docs.docker.com/reference/dockerfile/>):
//!
//! - parser directives `# escape=` and `# syntax=` (and `# check=`, ignored) on the leading lines;
//! - comments (`#` first non-blank character), also between continuation lines;
//! - line continuation with the escape character, which may be followed by blanks;
//! - JSON (exec) and shell forms; heredocs (`<<EOF`) on RUN, COPY and ADD (also behind ONBUILD)
//!   are kept in the tree;
//! - every instruction of the reference, typed, with its flags checked; unknown words get a
//!   "did you mean" suggestion;
//! - variables are *not* expanded here: the words keep their quotes and escapes and are expanded
//!   by [`crate::plan`] with [`shell`], once the base image's environment is known.
//!
//! Flags that BuildKit only offers in labs syntax or that need a daemon entitlement
//! (`COPY --parents`, `RUN --device`, `ADD --keep-git-dir`) are rejected with the place they
//! occur; `RUN --security` and `--network=host` are parsed here and checked against the build's
//! entitlements by the plan.

use std::fmt;

use serde::Serialize;

mod instructions;
pub mod shell;
mod syntax;

/// A position in a Dockerfile: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A word of an instruction as written (quotes, escapes and `$` references kept), with where it
/// starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    /// The raw text.
    pub text: String,
    /// Where the word starts.
    pub span: Span,
}

/// A parsed Dockerfile: global ARGs (before the first FROM) and the build stages in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// The file name used in messages (`Dockerfile`, `path/to/Dockerfile.prod`).
    pub file: String,
    /// The escape character: `\` or, with `# escape=\``, a backtick.
    pub escape: char,
    /// The `# syntax=` directive, recorded but not acted upon.
    pub syntax: Option<String>,
    /// ARG instructions before the first FROM, visible in FROM lines.
    pub global_args: Vec<ArgDecl>,
    /// Build stages, one per FROM, in file order.
    pub stages: Vec<Stage>,
    /// Non-fatal findings (empty continuation lines), BuildKit style.
    pub warnings: Vec<String>,
    /// The physical lines, for error excerpts.
    #[serde(skip)]
    lines: Vec<String>,
}

/// One `ARG NAME[=default]` declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The variable name.
    pub name: String,
    /// The default as written (unexpanded), `None` when there is no `=`.
    pub default: Option<String>,
    /// Where the declaration starts.
    pub span: Span,
}

/// A build stage: `FROM [--platform=P] base [AS name]` and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The stage name, lower-cased as BuildKit does; `None` without `AS`.
    pub name: Option<String>,
    /// The base: an image reference, `scratch` or an earlier stage's name (raw, unexpanded).
    pub base: Word,
    /// The `--platform` flag value (raw, unexpanded).
    pub platform: Option<Word>,
    /// Where the FROM instruction starts.
    pub span: Span,
    /// The FROM instruction's text (continuation lines joined).
    pub source: String,
    /// The instructions after FROM, in order.
    pub instructions: Vec<Instruction>,
}

/// One instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// Where the instruction keyword starts.
    pub span: Span,
    /// The last physical line the instruction (including heredoc bodies) occupies.
    pub end_line: usize,
    /// The instruction text, continuation lines joined (what BuildKit calls `Original`).
    pub source: String,
    /// What it is.
    pub kind: InstructionKind,
}

/// A command in shell form (run through the shell) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShellOrExec {
    /// Shell form: the text, unexpanded (the shell expands it).
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

/// A heredoc attached to RUN or COPY (`<<EOF`, `<<-EOF`, `<<"EOF"`), BuildKit
/// `parser.Heredoc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The body: the lines between the instruction and the terminator, each with its `\n`.
    pub content: String,
    /// False when the terminator was quoted: the body is then not expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the terminator line.
    pub chomp: bool,
    /// The file descriptor for `3<<EOF`; 0 when not given.
    pub fd: u32,
}

/// A `key=value` pair of ENV or LABEL, both raw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key as written.
    pub key: Word,
    /// The value as written.
    pub value: Word,
}

/// `HEALTHCHECK CMD ...` with its options (Docker image config `Healthcheck`; durations in
/// nanoseconds as the config stores them, 0 meaning "inherit the default").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthcheckSpec {
    /// The test command: exec form gives `CMD`, shell form `CMD-SHELL`.
    pub command: ShellOrExec,
    /// `--interval`, nanoseconds.
    pub interval: u64,
    /// `--timeout`, nanoseconds.
    pub timeout: u64,
    /// `--start-period`, nanoseconds.
    pub start_period: u64,
    /// `--start-interval`, nanoseconds.
    pub start_interval: u64,
    /// `--retries`.
    pub retries: u32,
}

/// The typed instructions (FROM is the [`Stage`] header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionKind {
    /// `ARG NAME[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `RUN [--mount=...]... [--network=...] cmd` / `RUN ["prog", "arg"]`.
    Run {
        /// The command.
        command: ShellOrExec,
        /// Heredocs named in a shell-form command.
        heredocs: Vec<Heredoc>,
        /// `--mount` values, raw (comma-separated `key=value` lists, parsed by the plan).
        mounts: Vec<Word>,
        /// `--network` value, raw.
        network: Option<Word>,
        /// `--security` value, raw (`sandbox` or `insecure`).
        security: Option<Word>,
    },
    /// `COPY [--from=S] [--chown=U:G] [--chmod=MODE] [--link] [--exclude=P]... src... dest`
    /// (or JSON form).
    Copy {
        /// `--from` (raw; never expanded, as in BuildKit).
        from: Option<Word>,
        /// `--chown` (raw).
        chown: Option<Word>,
        /// `--chmod` (raw).
        chmod: Option<Word>,
        /// `--link`.
        link: bool,
        /// `--exclude` patterns (raw; not expanded, as in BuildKit).
        excludes: Vec<Word>,
        /// Sources, raw, relative to the build context (or heredoc names `<<EOF`).
        sources: Vec<Word>,
        /// Destination, raw.
        dest: Word,
        /// Heredocs used as sources.
        heredocs: Vec<Heredoc>,
    },
    /// `ADD [--chown] [--chmod] [--link] [--checksum=D] [--unpack[=B]] [--exclude=P]... src...
    /// dest`: like COPY, plus URLs and local tar archives (unpacked).
    Add {
        /// `--chown` (raw).
        chown: Option<Word>,
        /// `--chmod` (raw).
        chmod: Option<Word>,
        /// `--link`.
        link: bool,
        /// `--checksum` (raw): the digest a URL's content must have.
        checksum: Option<Word>,
        /// `--unpack`: `None` unless given (local archives unpack by default, URLs do not).
        unpack: Option<bool>,
        /// `--exclude` patterns (raw).
        excludes: Vec<Word>,
        /// Sources, raw: context paths, `http(s)://` URLs or heredoc names.
        sources: Vec<Word>,
        /// Destination, raw.
        dest: Word,
        /// Heredocs used as sources.
        heredocs: Vec<Heredoc>,
    },
    /// `ENV K=V ...` or legacy `ENV K V`.
    Env(Vec<KeyValue>),
    /// `WORKDIR path`.
    Workdir(Word),
    /// `USER user[:group]`.
    User(Word),
    /// `LABEL k=v ...`.
    Label(Vec<KeyValue>),
    /// `EXPOSE port[/proto] ...`, raw words.
    Expose(Vec<Word>),
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `ENTRYPOINT`.
    Entrypoint(ShellOrExec),
    /// `SHELL ["exe", "arg"]`: the shell for later shell-form commands (JSON form only).
    Shell(Vec<String>),
    /// `HEALTHCHECK NONE` (`None`) or `HEALTHCHECK [options] CMD command`.
    Healthcheck(Option<HealthcheckSpec>),
    /// `STOPSIGNAL signal` (raw).
    StopSignal(Word),
    /// `VOLUME ["/a", "/b"]` or `VOLUME /a /b` (raw words).
    Volume(Vec<Word>),
    /// `ONBUILD INSTRUCTION ...`: recorded in the image config, run when the image is a base.
    Onbuild {
        /// The trigger as the config records it: the text after ONBUILD, heredoc bodies
        /// appended (BuildKit `parseOnBuild`).
        expression: String,
        /// The trigger, parsed to check it now.
        trigger: Box<InstructionKind>,
    },
    /// `MAINTAINER name` (deprecated): the image author, and a `maintainer` label.
    Maintainer(Word),
}

impl InstructionKind {
    /// The instruction keyword in upper case (`RUN`, `COPY`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Copy { .. } => "COPY",
            InstructionKind::Add { .. } => "ADD",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::Onbuild { .. } => "ONBUILD",
            InstructionKind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// What went wrong, without the location (see [`DockerfileError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// A parser directive with a bad value.
    #[error("invalid parser directive {directive}: {reason}")]
    InvalidDirective {
        /// `escape`, `syntax`, ...
        directive: String,
        /// What is wrong.
        reason: String,
    },
    /// The same parser directive twice.
    #[error("only one {directive} parser directive can be used")]
    DuplicateDirective {
        /// The directive name.
        directive: String,
    },
    /// Nothing but comments and blank lines.
    #[error("file with no instructions")]
    Empty,
    /// Only ARGs, no FROM.
    #[error("no FROM instruction: a Dockerfile needs at least one build stage")]
    NoStage,
    /// An instruction other than ARG before the first FROM.
    #[error("{instruction} before the first FROM: only ARG may come before FROM")]
    BeforeFrom {
        /// The instruction keyword.
        instruction: String,
    },
    /// A word that is no Dockerfile instruction.
    #[error("unknown instruction: {word}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        /// The word as written.
        word: String,
        /// The closest known instruction, if any is close.
        suggestion: Option<String>,
    },
    /// A flag the instruction does not have.
    #[error("unknown flag --{flag} for {instruction}{}", suggestion.as_ref().map(|s| format!(" (did you mean --{s}?)")).unwrap_or_default())]
    UnknownFlag {
        /// The instruction keyword.
        instruction: String,
        /// The flag name without dashes.
        flag: String,
        /// The closest flag of the instruction, if any is close.
        suggestion: Option<String>,
    },
    /// A flag of the instruction that polyarch does not offer.
    #[error("{instruction} --{flag} is not supported: {reason}")]
    UnsupportedFlag {
        /// The instruction keyword.
        instruction: String,
        /// The flag name.
        flag: String,
        /// Why.
        reason: String,
    },
    /// A flag with a missing, repeated or malformed value.
    #[error("invalid flag --{flag} for {instruction}: {reason}")]
    InvalidFlag {
        /// The instruction keyword.
        instruction: String,
        /// The flag name.
        flag: String,
        /// What is wrong.
        reason: String,
    },
    /// Wrong number or shape of arguments.
    #[error("{instruction} {message}")]
    Arguments {
        /// The instruction keyword.
        instruction: String,
        /// E.g. `requires at least one argument`.
        message: String,
    },
    /// An exec-form argument that is not a valid JSON array of strings.
    #[error("invalid JSON array for {instruction}: {reason}")]
    InvalidJson {
        /// The instruction keyword.
        instruction: String,
        /// The JSON error.
        reason: String,
    },
    /// A stage name BuildKit would reject.
    #[error("invalid stage name {name:?}: a name starts with a letter and contains only letters, digits, '-', '_' and '.'")]
    InvalidStageName {
        /// The name as written.
        name: String,
    },
    /// Two stages with one name.
    #[error("duplicate stage name {name:?} (first used on line {first_line})")]
    DuplicateStage {
        /// The name.
        name: String,
        /// Where it was first used.
        first_line: usize,
    },
    /// A heredoc whose terminator never comes.
    #[error("unterminated heredoc {name}")]
    UnterminatedHeredoc {
        /// The terminator word.
        name: String,
    },
    /// A word whose variables cannot be expanded.
    #[error("cannot expand {word:?}: {reason}")]
    Expansion {
        /// The raw word.
        word: String,
        /// The lexer's message.
        reason: String,
    },
    /// A value that is invalid after expansion (EXPOSE port, --chmod mode, --platform, empty
    /// WORKDIR...).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        /// What the value is (`port`, `--chmod`, `platform`, ...).
        what: String,
        /// The value after expansion.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A step asks for more than the build grants (buildx entitlements).
    #[error(
        "{instruction} {flag} needs the {entitlement} entitlement, which this build does not grant"
    )]
    NotEntitled {
        /// The instruction keyword.
        instruction: String,
        /// The flag as written (`--network=host`).
        flag: String,
        /// The entitlement (`network.host`, `security.insecure`).
        entitlement: String,
    },
    /// `--target` names no stage.
    #[error("target stage {target:?} not found (stages: {})", if available.is_empty() { "none named".to_string() } else { available.join(", ") })]
    TargetNotFound {
        /// The requested name.
        target: String,
        /// The named stages.
        available: Vec<String>,
    },
    /// A `--from` (or a mount's `from=`) that names a stage defined later, or the stage itself.
    #[error("{what} {name:?} names the stage defined on line {stage_line}, which does not come before this instruction: a stage can only use earlier stages")]
    LaterStage {
        /// `COPY --from`, `RUN --mount from`.
        what: String,
        /// The name as written.
        name: String,
        /// The line of the stage it names.
        stage_line: usize,
    },
    /// A `--from` value with a variable (BuildKit never expands it).
    #[error(
        "{what} {value:?} cannot use variables: stage dependencies must be known before the build"
    )]
    FromVariable {
        /// `COPY --from`, `RUN --mount from`.
        what: String,
        /// The value as written.
        value: String,
    },
    /// A malformed `RUN --mount` value.
    #[error("invalid --mount {value:?}: {reason}")]
    InvalidMount {
        /// The value after expansion.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An ONBUILD trigger that is not allowed there.
    #[error("{reason}")]
    InvalidTrigger {
        /// What is wrong (BuildKit's wording).
        reason: String,
    },
    /// A feature polyarch does not do.
    #[error("{what} is not supported: {reason}")]
    Unsupported {
        /// The feature.
        what: String,
        /// Why, or what to use instead.
        reason: String,
    },
    /// An ONBUILD trigger of a base image that cannot be parsed or planned.
    #[error("ONBUILD trigger {trigger:?} of the base image failed: {reason}")]
    Trigger {
        /// The trigger text.
        trigger: String,
        /// The error, with its place in the trigger.
        reason: String,
    },
}

/// A Dockerfile error with its location and the offending source line.
///
/// Display: `file:line:col: message`, then the source line and a caret line under the
/// offending text; `file: message` when the error concerns the whole file (line 0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DockerfileError {
    /// The file name.
    pub file: String,
    /// 1-based line; 0 when the error has no particular place.
    pub line: usize,
    /// 1-based column in characters; 0 with line 0.
    pub column: usize,
    /// How many characters the caret underlines (at least 1).
    pub width: usize,
    /// The offending physical line, without its line ending.
    pub source_line: String,
    /// What is wrong (boxed to keep `Result`s small).
    pub kind: Box<ErrorKind>,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.kind);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.kind
        )?;
        // Keep tabs in the caret prefix so the caret lines up under tab-indented text.
        let prefix: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(
            f,
            "\n    {}\n    {}{}",
            self.source_line,
            prefix,
            "^".repeat(self.width.max(1))
        )
    }
}

impl crate::exit::Classify for DockerfileError {
    fn exit_code(&self) -> crate::exit::ExitCode {
        crate::exit::ExitCode::BadInput
    }

    fn hint(&self) -> Option<String> {
        match self.kind.as_ref() {
            ErrorKind::UnknownInstruction { .. } => Some(format!(
                "Dockerfile instructions: {}",
                INSTRUCTIONS.join(", ")
            )),
            ErrorKind::FromVariable { .. } => Some(
                "declare the image in a stage (`ARG IMG` before the first FROM, `FROM $IMG AS src`) and use --from=src"
                    .into(),
            ),
            ErrorKind::LaterStage { .. } => {
                Some("move the stage it names above this instruction".into())
            }
            ErrorKind::TargetNotFound { .. } => {
                Some("name a stage with `FROM image AS name` and pass --target name".into())
            }
            ErrorKind::NotEntitled { entitlement, .. } => Some(format!(
                "if you trust this Dockerfile, allow it on the command line: polyarch build --allow \
                 {entitlement} ..."
            )),
            ErrorKind::Arguments { .. } | ErrorKind::InvalidJson { .. } => Some(
                "see https://docs.docker.com/reference/dockerfile/ for the instruction's forms"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Every Dockerfile instruction (Dockerfile reference), all accepted by this front end.
pub const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

impl Dockerfile {
    /// Makes an error pointing at `span`, underlining `width` characters, with the source line.
    pub(crate) fn error_at(&self, span: Span, width: usize, kind: ErrorKind) -> DockerfileError {
        make_error(&self.file, &self.lines, span, width, kind)
    }

    /// Makes an error about the whole file (no line).
    pub(crate) fn error_file(&self, kind: ErrorKind) -> DockerfileError {
        make_error(
            &self.file,
            &self.lines,
            Span { line: 0, column: 0 },
            0,
            kind,
        )
    }

    /// The physical line `line` (1-based), or `""`.
    pub fn source_line(&self, line: usize) -> &str {
        line.checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .map_or("", String::as_str)
    }

    /// Finds a stage by name (case-insensitive), returning its index.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(name.as_str()))
    }
}

pub(crate) fn make_error(
    file: &str,
    lines: &[String],
    span: Span,
    width: usize,
    kind: ErrorKind,
) -> DockerfileError {
    let source_line = span
        .line
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .cloned()
        .unwrap_or_default();
    // Do not underline past the end of the line (a word may continue on the next line).
    let room = source_line
        .chars()
        .count()
        .saturating_sub(span.column.saturating_sub(1));
    DockerfileError {
        file: file.to_string(),
        line: span.line,
        column: span.column,
        width: width.min(room).max(1),
        source_line,
        kind: Box::new(kind),
    }
}

/// Parses Dockerfile text. `file` names it in spans and messages.
///
/// Errors: any syntax error, an unsupported or unknown instruction, an instruction before the
/// first FROM, a file without FROM; each with its line and column.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile, DockerfileError> {
    let tree = syntax::parse(text, file)?;
    instructions::build(tree, file)
}

/// Parses one ONBUILD trigger as recorded in a base image's config (`RUN make`, heredoc bodies
/// appended). `file` names it in messages.
///
/// Errors: a syntax error, an unknown instruction, more than one instruction, or FROM, ONBUILD
/// and MAINTAINER, which cannot be triggers.
pub fn parse_trigger(text: &str, file: &str) -> Result<Instruction, DockerfileError> {
    instructions::parse_trigger(text, file)
}

/// The terminator named by a COPY/ADD heredoc source word (`<<EOF`, `<<-'EOF'`), `None` when
/// the word is an ordinary path.
pub fn heredoc_name(word: &str) -> Option<String> {
    instructions::heredoc_name(word)
}

/// Go's `time.ParseDuration` in nanoseconds (negative durations rejected), as HEALTHCHECK flags
/// use it.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    instructions::parse_go_duration(text)
}

/// The closest of `known` to `word` (case-insensitive edit distance within a third of its
/// length), for "did you mean" hints.
pub fn nearest(word: &str, known: &[&str]) -> Option<String> {
    instructions::nearest(word, known)
}
