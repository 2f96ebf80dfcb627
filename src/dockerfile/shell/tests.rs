//! Tests of word expansion through the public functions: substitutions, operators, quoting,
//! word splitting, patterns, heredoc bodies and syntax errors.

use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "SP" => Some("x  y".into()),
        "Ü" => Some("umlaut".into()),
        _ => None,
    }
}

fn w(s: &str) -> String {
    expand_word(s, '\\', &env).unwrap()
}

fn ws(s: &str) -> Vec<String> {
    expand_words(s, '\\', &env).unwrap()
}

fn err(s: &str) -> ExpandError {
    expand_word(s, '\\', &env).unwrap_err()
}

#[test]
fn plain_and_braced() {
    assert_eq!(w("$A"), "a");
    assert_eq!(w("${A}"), "a");
    assert_eq!(w("x${A}y"), "xay");
    assert_eq!(w("$A.b"), "a.b");
    assert_eq!(w("$UNSET"), "");
    assert_eq!(w("${UNSET}z"), "z");
    assert_eq!(w("$"), "$");
    assert_eq!(w("a$ b"), "a$ b");
    assert_eq!(w("$1x"), "x");
    assert_eq!(w("$$"), "");
    assert_eq!(w("$Ü"), "umlaut");
}

#[test]
fn modifiers() {
    assert_eq!(w("${A:-d}"), "a");
    assert_eq!(w("${UNSET:-d}"), "d");
    assert_eq!(w("${EMPTY:-d}"), "d");
    assert_eq!(w("${A-d}"), "a");
    assert_eq!(w("${UNSET-d}"), "d");
    assert_eq!(w("${EMPTY-d}"), "");
    assert_eq!(w("${A:+alt}"), "alt");
    assert_eq!(w("${EMPTY:+alt}"), "");
    assert_eq!(w("${UNSET:+alt}"), "");
    assert_eq!(w("${A+alt}"), "alt");
    assert_eq!(w("${EMPTY+alt}"), "alt");
    assert_eq!(w("${UNSET+alt}"), "");
    assert_eq!(w("${UNSET:-${A}/x}"), "a/x");
    assert_eq!(w("${UNSET:-'$A'}"), "$A");
    assert_eq!(w("${UNSET:-\"$A b\"}"), "a b");
    assert_eq!(w("${A:?}"), "a");
    assert_eq!(
        err("${UNSET:?}").message,
        "UNSET: is not allowed to be unset"
    );
    assert_eq!(err("${EMPTY:?need it}").message, "EMPTY: need it");
    assert_eq!(w("${EMPTY?}"), "");
}

#[test]
fn quoting_and_escapes() {
    assert_eq!(w("'$A'"), "$A");
    assert_eq!(w("\"$A\""), "a");
    assert_eq!(w("\"a b\""), "a b");
    assert_eq!(w("\\$A"), "$A");
    assert_eq!(w("\\\\"), "\\");
    assert_eq!(w("a\\"), "a");
    assert_eq!(w("\"\\$A \\\" \\\\ \\n\""), "$A \" \\ \\n");
    assert_eq!(w("'it''s'"), "its");
    assert_eq!(w("'a\\b'"), "a\\b");
    assert_eq!(expand_word("`$A", '`', &env).unwrap(), "$A");
    assert_eq!(expand_word("\\$A", '`', &env).unwrap(), "\\a");
    assert_eq!(expand_word("\"`\"\"", '`', &env).unwrap(), "\"");
}

#[test]
fn word_splitting() {
    assert_eq!(ws("a b  c"), ["a", "b", "c"]);
    assert_eq!(ws("$SP z"), ["x", "y", "z"]);
    assert_eq!(ws("\"$SP\" z"), ["x  y", "z"]);
    assert_eq!(ws("'a b'c"), ["a bc"]);
    assert_eq!(ws("a\\ b"), ["a b"]);
    assert_eq!(ws(""), Vec::<String>::new());
    assert_eq!(w("a  b"), "a  b");
}

fn pv(name: &str) -> Option<String> {
    match name {
        "P" => Some("/usr/local/lib/libfoo.so.1.2".into()),
        "F" => Some("foo.tar.gz".into()),
        "S" => Some("a-b-c-b".into()),
        "U" => Some("äöü.x".into()),
        "STAR" => Some("a*b".into()),
        _ => None,
    }
}

fn p(s: &str) -> String {
    expand_word(s, '\\', &pv).unwrap()
}

#[test]
fn pattern_forms() {
    // Prefix removal: shortest and longest.
    assert_eq!(p("${P#*/}"), "usr/local/lib/libfoo.so.1.2");
    assert_eq!(p("${P##*/}"), "libfoo.so.1.2");
    assert_eq!(p("${F#foo}"), ".tar.gz");
    assert_eq!(p("${F#bar}"), "foo.tar.gz");
    assert_eq!(p("${F#f?o}"), ".tar.gz");
    // Suffix removal.
    assert_eq!(p("${F%.*}"), "foo.tar");
    assert_eq!(p("${F%%.*}"), "foo");
    assert_eq!(p("${P%/*}"), "/usr/local/lib");
    assert_eq!(p("${P%%/*}"), "");
    assert_eq!(p("${U%.x}"), "äöü");
    assert_eq!(p("${U#ä?}"), "ü.x");
    // Replacement: first match (greedy), all matches.
    assert_eq!(p("${S/b/X}"), "a-X-c-b");
    assert_eq!(p("${S//b/X}"), "a-X-c-X");
    assert_eq!(p("${S/b*/X}"), "a-X");
    assert_eq!(p("${S//-/}"), "abcb");
    assert_eq!(p("${S/nomatch/X}"), "a-b-c-b");
    assert_eq!(p("${UNSET//a/b}"), "");
    assert_eq!(p("${UNSET#x}"), "");
    // Escaped wildcards are literal; `\}` and `\/` belong to the syntax.
    assert_eq!(p("${STAR/\\*/+}"), "a+b");
    assert_eq!(p("${STAR#a\\*}"), "b");
    assert_eq!(p("${P/\\/usr/X}"), "X/local/lib/libfoo.so.1.2");
    // Variables in patterns and replacements.
    assert_eq!(p("${F%.${UNSET:-gz}}"), "foo.tar");
    assert_eq!(p("${S//b/${F%%.*}}"), "a-foo-c-foo");
    // Go template expansion in a replace-all: `$$` is `$`.
    assert_eq!(p("${S//b/$$}"), "a--c-");
    assert_eq!(p("${S//b/\\$\\$}"), "a-\\$\\$-c-\\$\\$");
    // Empty matches: Go's ReplaceAllString rules.
    assert_eq!(p("${S//*/_}"), "_");
    assert_eq!(p("${UNSET//*/_}"), "_");
}

#[test]
fn heredoc_bodies_keep_quotes() {
    let h = |s: &str| expand_heredoc(s, &env).unwrap();
    assert_eq!(h("say '$A' \"$A\"\n"), "say 'a' \"a\"\n");
    assert_eq!(h("\\$A \\\\ x\\y"), "$A \\ xy");
    assert_eq!(h("${UNSET:-dflt}"), "dflt");
    assert!(expand_heredoc("${A", &env).is_err());
}

#[test]
fn heredoc_operator_stays_one_word() {
    assert_eq!(ws("cat << EOF x"), ["cat", "<< EOF", "x"]);
    assert_eq!(ws("a < b"), ["a", "<", "b"]);
}

#[test]
fn syntax_errors() {
    assert_eq!(err("${A").message, "syntax error: missing '}'");
    assert_eq!(err("x${}").message, "syntax error: bad substitution");
    assert_eq!(err("x${}").offset, 1);
    assert_eq!(err("${:-a}").message, "syntax error: bad substitution");
    assert_eq!(err("${A:-x").message, "syntax error: missing '}'");
    assert_eq!(
        err("${A:#x}").message,
        "unsupported modifier (:#) in substitution"
    );
    assert_eq!(err("${A/x").message, "syntax error: missing '/' in ${}");
    assert_eq!(err("${A/x/y").message, "syntax error: missing '}'");
    assert_eq!(
        err("${A#\\x}").message,
        "invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
    assert_eq!(
        err("${A:x}").message,
        "unsupported modifier (:x) in substitution"
    );
    assert_eq!(
        err("ab'cd").message,
        "unexpected end of statement while looking for matching single-quote"
    );
    assert_eq!(err("ab'cd").offset, 2);
    assert_eq!(
        err("\"cd").message,
        "unexpected end of statement while looking for matching double-quote"
    );
}
