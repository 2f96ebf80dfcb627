//! What polyarch says about itself: shell completion scripts (`polyarch completion SHELL`,
//! clap_complete), the man page (`polyarch man`, clap_mangen, roff on stdout), and the exit
//! codes shown at the end of `--help`.
//!
//! Level 4 (edge): generates text from the clap definition; knows nothing of builds.

use clap::CommandFactory;
use clap_complete::Shell;

use super::*;

/// The exit codes every command keeps (README "Exit codes"), for `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    a build step or the smoke test failed (a RUN exited non-zero); retrying will not help
  2    bad input: flags, platform, Dockerfile, build context, a malformed or unsafe image
  3    registry, network or auth failure after retries; retrying may help
  4    the host cannot do it: no emulation for a platform, missing privileges or tools
  130  interrupted by SIGINT or SIGTERM: nothing was published
polyarch run exits with the command's own status.";

/// Flags of `polyarch completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// Prints the completion script for `args.shell` on stdout (e.g. `polyarch completion bash >
/// /etc/bash_completion.d/polyarch`).
pub(super) fn completion(args: &CompletionArgs) -> Result<(), Failure> {
    let mut cmd = Cli::command();
    // Into memory first: the generator panics on a write error (a closed pipe).
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "polyarch", &mut out);
    let _ = std::io::stdout().lock().write_all(&out);
    Ok(())
}

/// Prints the man page (roff) on stdout (e.g. `polyarch man > polyarch.1`).
pub(super) fn man() -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| Failure {
            message: format!("cannot render the man page: {e}"),
            causes: vec![],
            hint: None,
            code: ExitCode::Host,
        })?;
    let _ = std::io::stdout().lock().write_all(&out);
    Ok(())
}
