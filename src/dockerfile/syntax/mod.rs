//! The syntax layer: physical lines → parser directives → logical lines (continuations
//! joined, comments dropped) → nodes `KEYWORD [--flags] args` with spans, heredoc bodies
//! attached. Follows BuildKit `frontend/dockerfile/parser/parser.go` (`Parse`,
//! `trimContinuationCharacter`, `splitCommand`, `extractBuilderFlags`, `heredocsFromLine`).

use super::{make_error, DockerfileError, ErrorKind, Heredoc, Span};

/// The whole file as nodes.
pub(crate) struct Tree {
    pub lines: Vec<String>,
    pub escape: char,
    pub syntax: Option<String>,
    pub nodes: Vec<Node>,
    pub warnings: Vec<String>,
}

/// A piece of the logical line taken from one physical line.
#[derive(Debug, Clone)]
struct Seg {
    /// Byte offset in the logical text where the piece starts.
    off: usize,
    /// 1-based physical line.
    line: usize,
    /// Byte offset in the physical line where the piece starts.
    byte_col: usize,
}

/// A `--name[=value]` flag as written, quotes removed (BuildKit `extractBuilderFlags`).
#[derive(Debug, Clone)]
pub(crate) struct RawFlag {
    /// The flag word without the leading `--`.
    pub text: String,
    /// Byte offset of the `--` in the logical text.
    pub off: usize,
}

/// One instruction: its logical line and where each part came from.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The keyword as written (`run`, `RUN`, ...).
    pub keyword: String,
    /// The logical line, continuation lines joined, trimmed.
    pub text: String,
    /// Flags before the arguments.
    pub flags: Vec<RawFlag>,
    /// Byte offset of the arguments in `text` (`text.len()` when there are none).
    pub args_off: usize,
    /// Last physical line (heredoc bodies included).
    pub end_line: usize,
    /// Heredoc bodies, in the order named.
    pub heredocs: Vec<Heredoc>,
    segs: Vec<Seg>,
}

impl Node {
    /// The arguments after the flags.
    pub fn args(&self) -> &str {
        &self.text[self.args_off..]
    }

    /// The position of byte offset `off` of the logical text in the physical file.
    pub fn span_at(&self, off: usize, lines: &[String]) -> Span {
        let seg = self
            .segs
            .iter()
            .rev()
            .find(|s| s.off <= off)
            .unwrap_or(&self.segs[0]);
        let byte_col = seg.byte_col + (off - seg.off);
        let line = lines.get(seg.line - 1).map_or("", String::as_str);
        let column = line
            .get(..byte_col.min(line.len()))
            .map_or(byte_col, |p| p.chars().count())
            + 1;
        Span {
            line: seg.line,
            column,
        }
    }

    /// The span of the keyword (the instruction's span).
    pub fn span(&self, lines: &[String]) -> Span {
        self.span_at(0, lines)
    }

    /// The instruction after `ONBUILD` as a node of its own, with spans still pointing into the
    /// file and the heredoc bodies attached. `None` when there is nothing after ONBUILD.
    pub fn trigger(&self) -> Option<Node> {
        let args = self.args();
        if args.is_empty() {
            return None;
        }
        let base = self.args_off;
        let kw_len = args.find(is_ws).unwrap_or(args.len());
        let rest_off = args[kw_len..]
            .find(|c: char| !is_ws(c))
            .map_or(args.len(), |o| kw_len + o);
        let (flags, args_off) = extract_flags(args, rest_off);
        // Re-base the segments so that offset 0 is the trigger's keyword.
        let mut segs: Vec<Seg> = Vec::new();
        for s in &self.segs {
            let end = s.off;
            if end <= base {
                segs.clear();
                segs.push(Seg {
                    off: 0,
                    line: s.line,
                    byte_col: s.byte_col + (base - s.off),
                });
            } else {
                segs.push(Seg {
                    off: s.off - base,
                    line: s.line,
                    byte_col: s.byte_col,
                });
            }
        }
        Some(Node {
            keyword: args[..kw_len].to_string(),
            text: args.to_string(),
            flags,
            args_off,
            end_line: self.end_line,
            heredocs: self.heredocs.clone(),
            segs,
        })
    }
}

/// Whitespace as BuildKit's `reWhitespace` (`[\t\v\f\r ]`).
pub(crate) fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// `# name = value` on a leading line (BuildKit `reDirectives`).
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let first = rest.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, rest) = rest.split_at(name_len);
    let value = rest.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

/// Removes a trailing continuation (escape + blanks), unless the escape is itself escaped.
/// Returns the text and whether the line continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(body) = t.strip_suffix(escape) {
        // BuildKit's regex: `([^\\])\\[ \t]*$|^\\[ \t]*$`.
        if body.is_empty() || !body.ends_with(escape) {
            return (body, true);
        }
    }
    (line, false)
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Splits `text` into physical lines without line endings; a final newline ends the last line.
fn split_lines(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    if text.ends_with('\n') || text.is_empty() {
        lines.pop();
    }
    lines
}

pub(crate) fn parse(text: &str, file: &str) -> Result<Tree, DockerfileError> {
    let lines = split_lines(text);
    let err = |line: usize, col: usize, width: usize, kind: ErrorKind| {
        make_error(file, &lines, Span { line, column: col }, width, kind)
    };

    // Parser directives: only on the leading lines; the first other line (a comment, a blank
    // line or an instruction) ends them. Unknown directive names count as comments.
    let mut escape = '\\';
    let mut syntax_directive = None;
    let mut seen: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        // BuildKit `DirectiveParser.ParseLine`: the `#` must be the line's first character.
        let Some((name, value)) = directive(raw) else {
            break;
        };
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        let col = 1;
        if seen.contains(&name) {
            return Err(err(
                i + 1,
                col,
                raw.trim().chars().count(),
                ErrorKind::DuplicateDirective { directive: name },
            ));
        }
        seen.push(name.clone());
        match name.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(err(
                            i + 1,
                            col,
                            raw.trim().chars().count(),
                            ErrorKind::InvalidDirective {
                                directive: name,
                                reason: format!("escape token {value:?} is neither ` nor \\"),
                            },
                        ))
                    }
                }
            }
            "syntax" => {
                notes.push(format!(
                    "{file}:{}: parser directive syntax={value} is ignored: polyarch reads \
                     Dockerfiles with its own front end (BuildKit's current syntax)",
                    i + 1
                ));
                syntax_directive = Some(value)
            }
            _ => notes.push(format!(
                "{file}:{}: parser directive check={value} is ignored: polyarch runs no build checks",
                i + 1
            )),
        }
    }

    let mut nodes = Vec::new();
    let mut warnings = notes;
    let mut i = 0;
    while i < lines.len() {
        let raw = &lines[i];
        i += 1;
        let start_line = i;
        let lead = raw.len() - raw.trim_start().len();
        let first = &raw[lead..];
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let (content, mut cont) = trim_continuation(first, escape);
        let mut text = content.to_string();
        let mut segs = vec![Seg {
            off: 0,
            line: start_line,
            byte_col: lead,
        }];
        let mut end_line = start_line;
        let mut empty_continuation = false;
        while cont && i < lines.len() {
            let raw = &lines[i];
            i += 1;
            end_line = i;
            // Comment lines inside a continuation are dropped; blank ones too (with a warning).
            if is_comment(raw) {
                continue;
            }
            if raw.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            // Leading blanks of continuation lines are kept, as in BuildKit.
            let (content, c) = trim_continuation(raw, escape);
            segs.push(Seg {
                off: text.len(),
                line: i,
                byte_col: 0,
            });
            text.push_str(content);
            cont = c;
        }
        let text = text
            .trim_end_matches(|c: char| c.is_whitespace())
            .to_string();
        if text.is_empty() {
            continue;
        }
        if empty_continuation {
            warnings.push(format!(
                "{file}:{start_line}: empty continuation line found in: {text} (empty \
                 continuation lines will become errors in a future release)"
            ));
        }
        let kw_len = text.find(is_ws).unwrap_or(text.len());
        let keyword = text[..kw_len].to_string();
        let rest_off = text[kw_len..]
            .find(|c: char| !is_ws(c))
            .map_or(text.len(), |o| kw_len + o);
        let (flags, args_off) = extract_flags(&text, rest_off);
        let mut node = Node {
            keyword,
            text,
            flags,
            args_off,
            end_line,
            heredocs: Vec::new(),
            segs,
        };

        // Heredocs: RUN, COPY and ADD in shell form, also as an ONBUILD trigger (BuildKit
        // `canContainHeredoc`, `heredocCompoundDirectives`).
        if can_contain_heredoc(&node) && node.text.contains("<<") {
            for (word, off) in heredoc_words(node.args(), escape) {
                let Some(mut doc) = heredoc_word(&word) else {
                    continue;
                };
                let mut terminated = false;
                while i < lines.len() {
                    let body_line = &lines[i];
                    i += 1;
                    let candidate = if doc.chomp {
                        body_line.trim_start_matches('\t')
                    } else {
                        body_line.as_str()
                    };
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(body_line);
                    doc.content.push('\n');
                }
                if !terminated {
                    let span = node.span_at(node.args_off + off, &lines);
                    return Err(make_error(
                        file,
                        &lines,
                        span,
                        word.chars().count(),
                        ErrorKind::UnterminatedHeredoc { name: doc.name },
                    ));
                }
                node.end_line = i;
                node.heredocs.push(doc);
            }
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(make_error(
            file,
            &lines,
            Span { line: 0, column: 0 },
            0,
            ErrorKind::Empty,
        ));
    }
    Ok(Tree {
        lines,
        escape,
        syntax: syntax_directive,
        nodes,
        warnings,
    })
}

/// True when `args` is a JSON array (of anything), as BuildKit's `parseJSON` decides.
pub(crate) fn is_json_array(args: &str) -> bool {
    args.trim_start().starts_with('[')
        && serde_json::from_str::<Vec<serde_json::Value>>(args).is_ok()
}

/// True for RUN, COPY and ADD in shell form, directly or as an ONBUILD trigger.
fn can_contain_heredoc(node: &Node) -> bool {
    let mut kw = node.keyword.to_ascii_lowercase();
    let mut args = node.args();
    if kw == "onbuild" {
        let end = args.find(is_ws).unwrap_or(args.len());
        kw = args[..end].to_ascii_lowercase();
        args = args[end..].trim_start_matches(is_ws);
        // The trigger's own flags come before its arguments.
        let (_, off) = extract_flags(args, 0);
        args = &args[off..];
    }
    matches!(kw.as_str(), "run" | "copy" | "add") && !is_json_array(args)
}

/// The words of a line as BuildKit's heredoc scan sees them: [`parse_words`], except that `<<`
/// followed by blanks stays one word with what follows (`<< EOF`, shell lexer
/// `processPossibleHeredoc`).
fn heredoc_words(args: &str, escape: char) -> Vec<(String, usize)> {
    let words = parse_words(args, escape);
    let mut out: Vec<(String, usize)> = Vec::with_capacity(words.len());
    let mut it = words.into_iter().peekable();
    while let Some((w, off)) = it.next() {
        let opener = w
            .strip_suffix("<<")
            .is_some_and(|fd| fd.chars().all(|c| c.is_ascii_digit()));
        match it.peek() {
            Some((next, next_off)) if opener => {
                let joined = format!("{w}{}{next}", &args[off + w.len()..*next_off]);
                it.next();
                out.push((joined, off));
            }
            _ => out.push((w, off)),
        }
    }
    out
}

/// The terminator of a heredoc source word, `None` when the word opens no heredoc.
pub(crate) fn heredoc_word_name(word: &str) -> Option<String> {
    heredoc_word(word).map(|d| d.name)
}

/// A heredoc opener `[fd]<<[-][blanks]WORD` (BuildKit `reHeredoc` `^(\d*)<<(-?)\s*([^<]*)$`,
/// `heredocFromMatch`). The terminator is the word with quotes removed and escapes applied;
/// any quoting turns expansion off.
fn heredoc_word(word: &str) -> Option<Heredoc> {
    let lt = word.find("<<")?;
    let (fd, rest) = word.split_at(lt);
    if !fd.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let rest = &rest[2..];
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(|c: char| c.is_whitespace());
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let mut name = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                quoted = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, '\\') | (Some('"'), '\\') => match chars.next() {
                Some(n) => name.push(n),
                None => break,
            },
            // Blanks outside quotes would make two words: not a heredoc.
            (None, c) if c.is_whitespace() => return None,
            (_, c) => name.push(c),
        }
    }
    if quote.is_some() || name.is_empty() {
        return None;
    }
    Some(Heredoc {
        expand: !quoted,
        name,
        content: String::new(),
        chomp,
        fd: fd.parse().unwrap_or(0),
    })
}

/// Leading `--flag[=value]` words (BuildKit `extractBuilderFlags`): quotes removed, `\`
/// escapes the next character, a lone `--` ends the flags. Returns the flags and the byte offset
/// where the arguments start.
fn extract_flags(text: &str, start: usize) -> (Vec<RawFlag>, usize) {
    let mut flags = Vec::new();
    let chars: Vec<(usize, char)> = text[start..]
        .char_indices()
        .map(|(o, c)| (o + start, c))
        .collect();
    let mut k = 0;
    loop {
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        if k >= chars.len() {
            return (flags, text.len());
        }
        let word_start = chars[k].0;
        if !text[word_start..].starts_with("--") {
            return (flags, word_start);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while k < chars.len() {
            let c = chars[k].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if k + 1 < chars.len() {
                        k += 1;
                        word.push(chars[k].1);
                    }
                }
                _ => word.push(c),
            }
            k += 1;
        }
        if word == "--" {
            let rest = chars[k..]
                .iter()
                .find(|(_, c)| !c.is_whitespace())
                .map_or(text.len(), |&(o, _)| o);
            return (flags, rest);
        }
        flags.push(RawFlag {
            text: word[2..].to_string(),
            off: word_start,
        });
    }
}

/// Splits on whitespace, keeping quoted blanks inside words and keeping quotes and escapes in
/// the words (BuildKit `parseWords`). Returns each word with its byte offset in `rest`.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<(String, usize)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut word_start = 0;
    let mut in_word = false;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut it = rest.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        if !in_word {
            if ch.is_whitespace() {
                continue;
            }
            in_word = true;
            word_start = pos;
        }
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push((std::mem::take(&mut word), word_start));
                    }
                    word.clear();
                    blank_ok = false;
                    in_word = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    match it.next() {
                        // A trailing escape is dropped.
                        None => continue,
                        Some((_, n)) => {
                            word.push(ch);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                // Inside double quotes the escape keeps the next character (even a quote) in
                // the word; inside single quotes nothing is special.
                if ch == escape && q != '\'' {
                    match it.next() {
                        None => {
                            quote = None;
                            continue;
                        }
                        Some((_, n)) => {
                            word.push(ch);
                            word.push(n);
                            continue;
                        }
                    }
                }
                word.push(ch);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push((word, word_start));
    }
    words
}

/// Splits on BuildKit's whitespace class, no quote handling (`parseStringsWhitespaceDelimited`).
pub(crate) fn fields(rest: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in rest.char_indices() {
        match (is_ws(c), start) {
            (true, Some(s)) => {
                out.push((rest[s..i].to_string(), s));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((rest[s..].to_string(), s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let n =
            nodes("COPY --chown=\"a b\" --chmod=755 src dst\nRUN -- --x\nFROM --platform=$P img\n");
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
    fn words() {
        let w: Vec<String> = parse_words(r#"a="x y" b='c d' e\ f  g"#, '\\')
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        assert_eq!(w, [r#"a="x y""#, "b='c d'", r"e\ f", "g"]);
        let offs: Vec<usize> = parse_words("  ab  cd", '\\').iter().map(|w| w.1).collect();
        assert_eq!(offs, [2, 6]);
        assert_eq!(parse_words("\"\"", '\\')[0].0, "\"\"");
        let f: Vec<String> = fields("a  \"b c\"\td").into_iter().map(|f| f.0).collect();
        assert_eq!(f, ["a", "\"b", "c\"", "d"]);
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
}
