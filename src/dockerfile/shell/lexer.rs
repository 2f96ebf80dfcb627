//! The walk through a word (BuildKit `shell/lex.go` `processStopOn`): characters, escapes,
//! quotes and `$` handed to their readers, and BuildKit's word splitting of the result.
//!
//! Level 0 (pure). Must not implement the quoting rules or the `${}` operators themselves
//! (`quote.rs`, `substitute.rs`).

use super::{ExpandError, Lookup, MAX_EXPANSION};

/// Word accumulator with BuildKit's splitting rules (`wordsStruct`).
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

/// The lexer over one word: where it is, the escape character, how variables are looked up,
/// and the modes that heredoc bodies and `${}` patterns need.
pub(super) struct Lexer<'a> {
    pub(super) chars: Vec<(usize, char)>,
    pub(super) pos: usize,
    pub(super) len: usize,
    pub(super) escape: char,
    pub(super) lookup: Lookup<'a>,
    /// Quotes are ordinary characters (heredoc bodies).
    pub(super) skip_quotes: bool,
    /// Escape characters are kept in the output (inside `${V#p}`, `${V%p}`, `${V/p/r}`, whose
    /// patterns interpret backslashes themselves).
    pub(super) raw_escapes: bool,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `text`.
    pub(super) fn new(text: &str, escape: char, lookup: Lookup<'a>) -> Self {
        Lexer {
            chars: text.char_indices().collect(),
            pos: 0,
            len: text.len(),
            escape,
            lookup,
            skip_quotes: false,
            raw_escapes: false,
        }
    }

    /// The next character, not consumed.
    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    /// Consumes and returns the next character.
    pub(super) fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Byte offset of the next character in the word (its length at the end).
    pub(super) fn offset(&self) -> usize {
        self.chars.get(self.pos).map_or(self.len, |&(o, _)| o)
    }

    /// An [`ExpandError`] at byte `offset`.
    pub(super) fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExpandError> {
        Err(ExpandError {
            offset,
            message: message.into(),
        })
    }

    /// [`Lexer::process_stop_on`] with escapes kept raw for its duration.
    pub(super) fn process_stop_on_raw(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let saved = self.raw_escapes;
        self.raw_escapes = true;
        let r = self.process_stop_on(stop);
        self.raw_escapes = saved;
        r
    }

    /// Processes up to the end of input, or up to and including `stop` (then it is an error to
    /// reach the end first). Returns the joined word and the split words.
    pub(super) fn process_stop_on(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '\'' if !self.skip_quotes => {
                    let s = self.single_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '"' if !self.skip_quotes => {
                    let start = self.offset();
                    let s = self.double_quote()?;
                    if result.len() + s.len() > MAX_EXPANSION {
                        return Self::err(start, "expansion exceeds 1 MiB");
                    }
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '$' => {
                    let start = self.offset();
                    let s = self.dollar()?;
                    if result.len() + s.len() > MAX_EXPANSION {
                        return Self::err(start, "expansion exceeds 1 MiB");
                    }
                    words.add_string(&s);
                    result.push_str(&s);
                }
                '<' => {
                    let s = self.possible_heredoc();
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape character makes the next one literal; at the end of the
                        // word it is dropped (BuildKit `processStopOn`).
                        match self.next() {
                            Some(escaped) => {
                                words.add_raw_char(escaped);
                                result.push(escaped);
                            }
                            None => break,
                        }
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Self::err(
                self.offset(),
                format!("unexpected end of statement while looking for matching {c}"),
            ),
            None => Ok((result, words.finish())),
        }
    }

    /// `<`: a lone `<` is a character; `<<` keeps the blanks after it so that `<< EOF` stays
    /// one word.
    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            self.next();
            out.push(c);
        }
        out
    }
}
