//! HEALTHCHECK (BuildKit `parseHealthcheck`): `NONE`, or `CMD` with its command and the
//! interval, timeout, start-period, start-interval and retries flags.
//!
//! Level 0 (pure). Must not apply the defaults an image config gets (the planner does).

use super::cx::Cx;
use super::duration::parse_go_duration;
use super::flags::{FlagSpec, Flags};
use crate::dockerfile::syntax;
use crate::dockerfile::{
    DockerfileError, ErrorKind, HealthcheckSpec, InstructionKind, ShellOrExec,
};

impl Cx<'_> {
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
    /// [--start-interval=D] [--retries=N] CMD command` (BuildKit `parseHealthcheck`; durations
    /// are Go durations of at least 1ms, or 0).
    pub(super) fn healthcheck(&self) -> Result<InstructionKind, DockerfileError> {
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
        let command = self.healthcheck_command(&args[rest_off..], rest_off)?;
        let interval = self.duration_flag(&mut flags, "interval")?;
        let timeout = self.duration_flag(&mut flags, "timeout")?;
        let start_period = self.duration_flag(&mut flags, "start-period")?;
        let start_interval = self.duration_flag(&mut flags, "start-interval")?;
        let retries = self.retries_flag(&mut flags)?;
        Ok(InstructionKind::Healthcheck(Some(HealthcheckSpec {
            command,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        })))
    }

    /// The command after `CMD`, in exec or shell form; `rest_off` is where `cmd_text` starts in
    /// the arguments. Errors: malformed JSON, no command at all.
    fn healthcheck_command(
        &self,
        cmd_text: &str,
        rest_off: usize,
    ) -> Result<ShellOrExec, DockerfileError> {
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
        Ok(command)
    }

    /// The duration flag `name` in nanoseconds, 0 when absent. Errors: not a Go duration, or
    /// below 1ms without being 0.
    fn duration_flag(&self, flags: &mut Flags, name: &str) -> Result<u64, DockerfileError> {
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
    }

    /// `--retries=N`, 0 when absent. Errors: not a non-negative 32-bit number.
    fn retries_flag(&self, flags: &mut Flags) -> Result<u32, DockerfileError> {
        Ok(match flags.string("retries") {
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
        })
    }
}
