//! "Did you mean": the closest known word to a misspelt instruction or flag (edit distance
//! with adjacent transpositions, or a prefix).
//!
//! Level 0 (pure). Must not build errors (callers put the suggestion in theirs).

use crate::dockerfile::INSTRUCTIONS;

/// Edit distance with adjacent transpositions (optimal string alignment), for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest of `known` within a third of the word's length (at least 1 edit), compared in
/// upper case; failing that, the one the word is a prefix of (3 characters at least).
pub(crate) fn nearest(word: &str, known: &[&str]) -> Option<String> {
    let up = word.to_ascii_uppercase();
    let limit = (up.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (distance(&up, &k.to_ascii_uppercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.to_string())
        .or_else(|| {
            (up.chars().count() >= 3)
                .then(|| {
                    known
                        .iter()
                        .find(|k| k.to_ascii_uppercase().starts_with(&up))
                        .map(|k| k.to_string())
                })
                .flatten()
        })
}

/// The closest known instruction.
pub(super) fn suggest(word: &str) -> Option<String> {
    nearest(word, INSTRUCTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest("RUNN").as_deref(), Some("RUN"));
        assert_eq!(suggest("wrokdir").as_deref(), Some("WORKDIR"));
        assert_eq!(suggest("cpy").as_deref(), Some("COPY"));
        assert_eq!(suggest("FOO"), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
