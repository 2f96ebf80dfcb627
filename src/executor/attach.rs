//! Attached runs (`polyarch run`): the same helper and sandbox as a `RUN` step, but the command
//! gets this process's stdin, stdout and stderr, and its exit status is the result. The helper
//! reads its spec from a file and writes its own report lines to another
//! ([`super::SANDBOX_ATTACH_FLAG`]), since its stdio belong to the command.
//!
//! Level 2, the coordinator side of the helper boundary, beside `process.rs` (whose report
//! parsing it reuses); it never enters a namespace itself.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Stdio;

use super::process::{status_code, HelperOutput};
use super::protocol::{SANDBOX_ATTACH_FLAG, SANDBOX_SUBCOMMAND};
use super::{ExecError, OutputLine, SandboxExecutor, SandboxSpec, Stream};

impl SandboxExecutor {
    /// Runs `spec` (a [`super::Action::Run`]) with this process's stdin, stdout and stderr
    /// passed to the command, and returns its exit status (128 + n for signal n). The spec and
    /// the helper's report go through files in `work` (private to root, removed by the caller).
    ///
    /// Errors: [`ExecError::Spawn`], [`ExecError::HelperIo`], and the helper's own failures
    /// ([`ExecError::Sandbox`]) as for [`super::Executor::run`].
    pub async fn run_attached(&self, spec: &SandboxSpec, work: &Path) -> Result<i32, ExecError> {
        let io_err = |action| move |source| ExecError::HelperIo { action, source };
        let spec_path = work.join("spec.json");
        let report_path = work.join("report");
        // What every step gets from the executor: its snapshotter, the compiled seccomp filter,
        // the shared network namespace.
        let spec = self
            .with_network(self.with_default_snapshotter(spec))
            .await?;
        let json =
            serde_json::to_vec(spec.as_ref()).map_err(|source| ExecError::BadSpec { source })?;
        let private = |path: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        };
        std::io::Write::write_all(
            &mut private(&spec_path).map_err(io_err("writing the spec"))?,
            &json,
        )
        .map_err(io_err("writing the spec"))?;
        private(&report_path).map_err(io_err("creating the report file"))?;
        // The helper gets no environment: the command's travels in the spec.
        let mut child = tokio::process::Command::new(&self.program)
            .arg(SANDBOX_SUBCOMMAND)
            .arg(SANDBOX_ATTACH_FLAG)
            .arg(&spec_path)
            .arg(&report_path)
            .env_clear()
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let status = child
            .wait()
            .await
            .map_err(io_err("waiting for the helper"))?;
        let report = std::fs::read_to_string(&report_path).map_err(io_err("reading the report"))?;
        let mut output = HelperOutput::new();
        for line in report.lines() {
            output.sort(
                OutputLine {
                    stream: Stream::Stderr,
                    line: line.to_string(),
                },
                &spec.upperdir,
            );
        }
        output.outcome(status_code(status)).map(|o| o.status)
    }
}
