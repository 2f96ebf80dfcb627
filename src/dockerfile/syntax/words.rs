//! Splitting a logical line into words the way BuildKit's parser does: the blank class,
//! leading `--flag` words, quote-aware words that keep their quotes and escapes, plain
//! whitespace fields, and whether arguments are a JSON array.
//!
//! Level 0 (pure, no I/O). Must not expand variables (that is `shell`) nor know which
//! instruction the words belong to.

/// Whitespace as BuildKit's `reWhitespace` (`[\t\v\f\r ]`).
pub(crate) fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// A `--name[=value]` flag as written, quotes removed (BuildKit `extractBuilderFlags`).
#[derive(Debug, Clone)]
pub(crate) struct RawFlag {
    /// The flag word without the leading `--`.
    pub text: String,
    /// Byte offset of the `--` in the logical text.
    pub off: usize,
}

/// Leading `--flag[=value]` words (BuildKit `extractBuilderFlags`): quotes removed, `\`
/// escapes the next character, a lone `--` ends the flags. Returns the flags and the byte offset
/// where the arguments start.
pub(super) fn extract_flags(text: &str, start: usize) -> (Vec<RawFlag>, usize) {
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

/// True when `args` is a JSON array (of anything), as BuildKit's `parseJSON` decides.
pub(crate) fn is_json_array(args: &str) -> bool {
    args.trim_start().starts_with('[')
        && serde_json::from_str::<Vec<serde_json::Value>>(args).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
