//! `COPY --chmod` in symbolic form (`u+x`, `go-w`, `a=rX`), as chmod(1) and BuildKit
//! (`dchapes-mode`, a port of BSD `setmode(3)`) read it: comma-separated clauses `[ugoa]*` then
//! one or more `[-+=]` each followed by permissions `[rwxXst]*` or a copy of one class `[ugo]`.
//! Without a class the clause applies to all classes, masked by the umask 022 (POSIX chmod).
//!
//! Level 0: pure, no I/O (the mode is applied to a number, never to a file).

use serde::{Deserialize, Serialize};

/// A parsed symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolicMode(Vec<Clause>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Clause {
    /// Bits of the classes named (0 = none named: all, umask applies).
    who: u32,
    actions: Vec<(char, Perms)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Perms {
    /// `r`, `w`, `x`, `X`, `s`, `t` letters.
    Letters(String),
    /// Copy of the class `u`, `g` or `o`.
    Copy(char),
}

const UMASK: u32 = 0o022;

fn class_bits(c: char) -> u32 {
    match c {
        'u' => 0o4700,
        'g' => 0o2070,
        'o' => 0o1007,
        _ => 0o7777,
    }
}

impl SymbolicMode {
    /// Parses `spec`. Errors: an empty clause, an unknown character, a clause without `+`, `-`
    /// or `=`.
    pub fn parse(spec: &str) -> Result<SymbolicMode, String> {
        let mut clauses = Vec::new();
        for part in spec.split(',') {
            let chars: Vec<char> = part.chars().collect();
            let mut i = 0;
            let mut who = 0;
            while i < chars.len() && "ugoa".contains(chars[i]) {
                who |= class_bits(chars[i]);
                i += 1;
            }
            let mut actions = Vec::new();
            while i < chars.len() {
                let op = chars[i];
                if !"+-=".contains(op) {
                    return Err(format!("unexpected {op:?} in {part:?}"));
                }
                i += 1;
                if i < chars.len() && "ugo".contains(chars[i]) {
                    actions.push((op, Perms::Copy(chars[i])));
                    i += 1;
                    continue;
                }
                let start = i;
                while i < chars.len() && "rwxXst".contains(chars[i]) {
                    i += 1;
                }
                actions.push((op, Perms::Letters(chars[start..i].iter().collect())));
            }
            if actions.is_empty() {
                return Err(format!("{part:?} has no +, - or ="));
            }
            clauses.push(Clause { who, actions });
        }
        Ok(SymbolicMode(clauses))
    }

    /// The permission bits `mode` becomes; `is_dir` makes `X` apply.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let mut mode = mode & 0o7777;
        for c in &self.0 {
            let (who, mask) = if c.who == 0 {
                (0o7777, !UMASK)
            } else {
                (c.who, 0o7777)
            };
            for (op, perms) in &c.actions {
                let bits = match perms {
                    Perms::Copy(class) => {
                        let shift = match class {
                            'u' => 6,
                            'g' => 3,
                            _ => 0,
                        };
                        let b = (mode >> shift) & 0o7;
                        b << 6 | b << 3 | b
                    }
                    Perms::Letters(l) => l.chars().fold(0, |acc, ch| {
                        acc | match ch {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || mode & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        }
                    }),
                };
                let effective = bits & who & mask;
                match op {
                    '+' => mode |= effective,
                    '-' => mode &= !effective,
                    _ => mode = (mode & !who) | effective,
                }
            }
        }
        mode & 0o7777
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(spec: &str, mode: u32, dir: bool) -> u32 {
        SymbolicMode::parse(spec).unwrap().apply(mode, dir)
    }

    #[test]
    fn clauses_apply_like_chmod() {
        assert_eq!(ap("go-w", 0o666, false), 0o644);
        assert_eq!(ap("u=rw,g=r,o=r", 0o666, false), 0o644);
        assert_eq!(
            ap("a+X", 0o666, false),
            0o666,
            "X needs an x bit or a directory"
        );
        assert_eq!(ap("a+X", 0o124, true), 0o135);
        assert_eq!(ap("a+X", 0o744, false), 0o755);
        assert_eq!(ap("u+rw,g+r,o-x,o+w", 0o124, true), 0o766);
        assert_eq!(ap("+x", 0o644, false), 0o755);
        assert_eq!(
            ap("=rw", 0o777, false),
            0o644,
            "the umask applies without a class"
        );
        assert_eq!(ap("g=u", 0o740, false), 0o770);
        assert_eq!(ap("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(ap("o=", 0o777, false), 0o770);
        assert_eq!(ap("u-x+w", 0o500, false), 0o600);
        for bad in ["", "u", "u+q", "z+x", "u+x,"] {
            assert!(SymbolicMode::parse(bad).is_err(), "{bad}");
        }
    }
}
