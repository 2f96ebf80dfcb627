//! Tests of the syntax layer through [`parse`]: continuations, comments, directives, flags,
//! heredocs, line endings.

use super::*;
use crate::dockerfile::{ErrorKind, Span};

fn nodes(text: &str) -> Vec<Node> {
    parse(text, "Dockerfile").unwrap().nodes
}

#[test]
fn continuation_and_comments() {
    let t = "# a comment\nRUN apt-get update && \\\n# inside\n    apt-get install \\  \n\n  foo\nCMD x\n";
    let tree = parse(t, "Dockerfile").unwrap();
    let n = &tree.nodes;
    assert_eq!(n.len(), 2);
    assert_eq!(n[0].text, "RUN apt-get update &&     apt-get install   foo");
    assert_eq!((n[0].span(&tree.lines).line, n[0].end_line), (2, 6));
    assert_eq!(n[0].args(), "apt-get update &&     apt-get install   foo");
    assert_eq!(n[1].span(&tree.lines).line, 7);
    assert_eq!(tree.warnings.len(), 1, "empty continuation line");
    // The offset of "foo" maps back to line 6, column 3.
    let off = n[0].text.find("foo").unwrap();
    assert_eq!(n[0].span_at(off, &tree.lines), Span { line: 6, column: 3 });
    let off = n[0].text.find("install").unwrap();
    assert_eq!(
        n[0].span_at(off, &tree.lines),
        Span {
            line: 4,
            column: 13
        }
    );
}

#[test]
fn escaped_escape_does_not_continue() {
    let n = nodes("RUN echo a\\\\\nRUN echo b\n");
    assert_eq!(n.len(), 2);
    assert_eq!(n[0].args(), "echo a\\\\");
    let n = nodes("RUN echo \\\n\\\nb");
    assert_eq!(n[0].text, "RUN echo b");
}

#[test]
fn escape_directive() {
    let tree = parse(
        "# escape=`\n# syntax=docker/dockerfile:1\nRUN a `\n  b\\\n",
        "D",
    )
    .unwrap();
    assert_eq!(tree.escape, '`');
    assert_eq!(tree.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(tree.nodes[0].text, "RUN a   b\\");
    // A directive after a comment is a comment.
    let tree = parse("# hello\n# escape=`\nRUN a `\nRUN b\n", "D").unwrap();
    assert_eq!(tree.escape, '\\');
    assert_eq!(tree.nodes.len(), 2);
    let e = parse("# escape=`\n# ESCAPE=\\\nFROM x\n", "D")
        .err()
        .unwrap();
    assert_eq!(e.line, 2);
    assert!(matches!(*e.kind, ErrorKind::DuplicateDirective { .. }));
    let e = parse("# escape=x\nFROM x\n", "D").err().unwrap();
    assert!(matches!(*e.kind, ErrorKind::InvalidDirective { .. }));
    // A directive must start the line: indented, it is a comment.
    let tree = parse(" # escape=`\nRUN a `\nRUN b\n", "D").unwrap();
    assert_eq!(tree.escape, '\\');
    // Spaces around the name and `=`, any case; syntax and check leave a note.
    let tree = parse("#  ESCAPE  =  `\n#check=error=true\nRUN a\n", "D").unwrap();
    assert_eq!(tree.escape, '`');
    assert_eq!(tree.warnings.len(), 1);
    assert!(tree.warnings[0].contains("check=error=true is ignored"));
    // An unknown directive ends the directives.
    let tree = parse("# foo=bar\n# escape=`\nRUN a\n", "D").unwrap();
    assert_eq!(tree.escape, '\\');
}

#[test]
fn flags_are_split_off() {
    let n = nodes("COPY --chown=\"a b\" --chmod=755 src dst\nRUN -- --x\nFROM --platform=$P img\n");
    let f: Vec<&str> = n[0].flags.iter().map(|f| f.text.as_str()).collect();
    assert_eq!(f, ["chown=a b", "chmod=755"]);
    assert_eq!(n[0].args(), "src dst");
    assert!(n[1].flags.is_empty());
    assert_eq!(n[1].args(), "--x");
    assert_eq!(n[2].flags[0].text, "platform=$P");
    assert_eq!(n[2].args(), "img");
}

#[test]
fn heredocs_are_attached() {
    let t = "RUN <<EOF\necho hi\n  RUN not an instruction\nEOF\nCOPY <<-'END' /x\n\tbody $X\n\tEND\nRUN [\"a\", \"<<b\"]\n";
    let n = nodes(t);
    assert_eq!(n.len(), 3);
    assert_eq!(n[0].heredocs[0].name, "EOF");
    assert_eq!(
        n[0].heredocs[0].content,
        "echo hi\n  RUN not an instruction\n"
    );
    assert!(n[0].heredocs[0].expand);
    assert_eq!(n[0].end_line, 4);
    let d = &n[1].heredocs[0];
    assert_eq!((d.name.as_str(), d.chomp, d.expand), ("END", true, false));
    assert_eq!(d.content, "\tbody $X\n");
    assert!(n[2].heredocs.is_empty());
    let e = parse("RUN cat <<EOF\nno end\n", "D").err().unwrap();
    assert_eq!((e.line, e.column), (1, 9));
    assert!(matches!(*e.kind, ErrorKind::UnterminatedHeredoc { .. }));
}

#[test]
fn continuation_at_end_of_file() {
    let n = nodes("FROM a\nRUN echo \\\n# trailing comment\n");
    assert_eq!(n[1].text, "RUN echo");
    assert_eq!(n[1].end_line, 3);
}

#[test]
fn crlf_bom_and_empty() {
    let n = nodes("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n");
    assert_eq!(n[1].text, "RUN b  c");
    let e = parse("# only a comment\n\n", "D").err().unwrap();
    assert_eq!(*e.kind, ErrorKind::Empty);
    assert_eq!(e.to_string(), "D: file with no instructions");
}
