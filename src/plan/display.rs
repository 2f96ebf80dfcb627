//! What progress and error lines show for a step: the instruction as the Dockerfile spells it
//! (flags, JSON form and quotes kept, continuation lines joined as BuildKit joins them into its
//! `Original`), the keyword in upper case, and for a RUN with heredocs the first line of the
//! first one (BuildKit's `summarizeHeredoc`: `RUN <<EOF (apt-get update...)`). Variables are
//! shown as written, never expanded, so a value passed with `--build-arg` does not reach the
//! log through the instruction text.
//!
//! The image history keeps BuildKit's `created_by` form instead (see `run.rs`, `config.rs`):
//! that is for the tools that read it; this is for people.
//!
//! Level 0, pure: text in, text out.

use crate::dockerfile::{Instruction, InstructionKind};

/// The text a step of `ins` shows (see the module docs).
pub(super) fn instruction_text(ins: &Instruction) -> String {
    let source = ins.source.trim();
    let (keyword, rest) = source
        .split_once([' ', '\t'])
        .map_or((source, ""), |(k, r)| (k, r));
    let mut text = if rest.is_empty() {
        keyword.to_uppercase()
    } else {
        format!("{} {rest}", keyword.to_uppercase())
    };
    if let InstructionKind::Run { heredocs, .. } = &ins.kind {
        if let Some(first) = heredocs.first() {
            text.push_str(&format!(" ({})", summarize_heredoc(&first.content)));
        }
    }
    text
}

/// BuildKit's `summarizeHeredoc`: the body trimmed, its first line, `...` when more follow.
fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim().replace("\r\n", "\n");
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One instruction of each form and what progress shows for it.
    #[test]
    fn every_instruction_form() {
        let df = "FROM busybox AS base\n\
                  run --mount=type=cache,target=/root/.cache \\\n    pip install -r req.txt\n\
                  RUN [\"python3\", \"-m\", \"venv\", \"/v\"]\n\
                  RUN <<EOF\napt-get update\napt-get install -y curl\nEOF\n\
                  RUN cat <<A > /a\none line\nA\n\
                  COPY --chown=10001:10001 --chmod=0755 [\"src/\", \"/app/\"]\n\
                  COPY <<EOF /etc/motd\nhello\nEOF\n\
                  ADD --checksum=sha256:0000 https://example.com/x.tar /x/\n\
                  EXPOSE 8000/tcp 9000\n\
                  CMD [\"python3\", \"-m\", \"http.server\"]\n\
                  ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                  ENV A=1 \\\n    B=\"two words\"\n\
                  LABEL org.opencontainers.image.title=\"x y\"\n\
                  USER 10001:10001\n\
                  WORKDIR /app\n\
                  HEALTHCHECK --interval=5s CMD curl -f http://localhost/ || exit 1\n\
                  SHELL [\"/bin/bash\", \"-c\"]\n\
                  STOPSIGNAL SIGTERM\n\
                  VOLUME [\"/data\"]\n\
                  ARG UID=10001\n\
                  ONBUILD RUN echo $UID\n\
                  MAINTAINER someone\n";
        let parsed = crate::dockerfile::parse(df, "Dockerfile").unwrap();
        let got: Vec<String> = parsed.stages[0]
            .instructions
            .iter()
            .map(instruction_text)
            .collect();
        let want = [
            "RUN --mount=type=cache,target=/root/.cache     pip install -r req.txt",
            "RUN [\"python3\", \"-m\", \"venv\", \"/v\"]",
            "RUN <<EOF (apt-get update...)",
            "RUN cat <<A > /a (one line)",
            "COPY --chown=10001:10001 --chmod=0755 [\"src/\", \"/app/\"]",
            "COPY <<EOF /etc/motd",
            "ADD --checksum=sha256:0000 https://example.com/x.tar /x/",
            "EXPOSE 8000/tcp 9000",
            "CMD [\"python3\", \"-m\", \"http.server\"]",
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
            "ENV A=1     B=\"two words\"",
            "LABEL org.opencontainers.image.title=\"x y\"",
            "USER 10001:10001",
            "WORKDIR /app",
            "HEALTHCHECK --interval=5s CMD curl -f http://localhost/ || exit 1",
            "SHELL [\"/bin/bash\", \"-c\"]",
            "STOPSIGNAL SIGTERM",
            "VOLUME [\"/data\"]",
            "ARG UID=10001",
            "ONBUILD RUN echo $UID",
            "MAINTAINER someone",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn heredoc_summaries() {
        assert_eq!(summarize_heredoc("\n  one\n"), "one");
        assert_eq!(summarize_heredoc("one\r\ntwo\n"), "one...");
        assert_eq!(summarize_heredoc(""), "");
    }
}
