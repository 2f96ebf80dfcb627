//! Heredocs (`<<EOF` on RUN, COPY and ADD in shell form, also behind ONBUILD): which words
//! open one, what their terminator is, and reading their bodies from the lines that follow
//! (BuildKit `heredocsFromLine`, `reHeredoc`, shell lexer `processPossibleHeredoc`).
//!
//! Level 0 (pure, no I/O). Must not expand the bodies (that is `shell`).

use super::node::Node;
use super::words::{extract_flags, is_json_array, is_ws, parse_words};
use crate::dockerfile::{make_error, DockerfileError, ErrorKind, Heredoc};

/// Reads the bodies of the heredocs `node` opens from physical line index `*i` on, attaching
/// them to `node` in the order named and moving `*i` and `node.end_line` past the last
/// terminator. Errors: [`ErrorKind::UnterminatedHeredoc`], pointing at the opener.
pub(super) fn read_heredocs(
    node: &mut Node,
    lines: &[String],
    i: &mut usize,
    escape: char,
    file: &str,
) -> Result<(), DockerfileError> {
    for (word, off) in heredoc_words(node.args(), escape) {
        let Some(mut doc) = heredoc_word(&word) else {
            continue;
        };
        let mut terminated = false;
        while *i < lines.len() {
            let body_line = &lines[*i];
            *i += 1;
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
            let span = node.span_at(node.args_off + off, lines);
            return Err(make_error(
                file,
                lines,
                span,
                word.chars().count(),
                ErrorKind::UnterminatedHeredoc { name: doc.name },
            ));
        }
        node.end_line = *i;
        node.heredocs.push(doc);
    }
    Ok(())
}

/// True for RUN, COPY and ADD in shell form, directly or as an ONBUILD trigger.
pub(super) fn can_contain_heredoc(node: &Node) -> bool {
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
