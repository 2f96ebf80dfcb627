//! `WWW-Authenticate` challenges (RFC 9110 section 11.6.1) as registries send them: `Basic
//! realm="..."` and the Docker token scheme's `Bearer realm="...",service="...",scope="..."`
//! (distribution `docs/spec/auth/token.md`).
//!
//! Pure: no I/O.

/// One authentication challenge from a `401 Unauthorized` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic: send `Authorization: Basic base64(user:password)`.
    Basic {
        /// The protection space, for messages.
        realm: String,
    },
    /// A bearer token to be fetched from `realm` for `service` and `scope`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to send (may be empty).
        service: String,
        /// Scopes the registry asked for (`repository:NAME:pull,push`), possibly none.
        scopes: Vec<String>,
    },
}

/// Parses a `WWW-Authenticate` value; `None` for schemes polyarch does not speak.
///
/// Handles quoted strings with `\` escapes, unquoted tokens, and several parameters separated
/// by commas. When several challenges are given in one header, the first Basic or Bearer wins.
pub fn parse(header: &str) -> Option<Challenge> {
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = match rest.find(' ') {
            Some(i) => (&rest[..i], rest[i + 1..].trim_start()),
            None => (rest, ""),
        };
        let (params, next) = parse_params(after);
        let get = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic {
                realm: get("realm").unwrap_or_default(),
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm = get("realm")?;
            let scopes = get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            return Some(Challenge::Bearer {
                realm,
                service: get("service").unwrap_or_default(),
                scopes,
            });
        }
        rest = next;
    }
    None
}

/// Parses `k=v, k="v", ...` up to the start of the next challenge (a token followed by a space
/// rather than `=`); returns the parameters and the rest.
fn parse_params(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut params = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        let Some(eq) = s.find('=') else {
            return (params, s);
        };
        let key = &s[..eq];
        if key.contains(' ') || key.is_empty() {
            // The next challenge's scheme.
            return (params, s);
        }
        let after = &s[eq + 1..];
        let (value, rest) = if let Some(q) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(e);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.push((key.trim().to_string(), value));
        s = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer() {
        assert_eq!(
            parse(r#"Basic realm="polyarch-test""#),
            Some(Challenge::Basic {
                realm: "polyarch-test".into()
            })
        );
        assert_eq!(
            parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: "registry.docker.io".into(),
                scopes: vec!["repository:library/busybox:pull".into()],
            })
        );
        // Unquoted values, odd spacing, escapes, two scopes.
        assert_eq!(
            parse(
                r#"bearer realm=http://127.0.0.1:1/t , service="a\"b",scope="repository:x:pull repository:y:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: "a\"b".into(),
                scopes: vec!["repository:x:pull".into(), "repository:y:pull,push".into()],
            })
        );
    }

    #[test]
    fn unknown_schemes_are_skipped() {
        assert_eq!(parse("Negotiate"), None);
        assert_eq!(parse(""), None);
        assert_eq!(
            parse(r#"Digest realm="x", nonce="y", Basic realm="z""#),
            Some(Challenge::Basic { realm: "z".into() })
        );
        // Bearer without a realm cannot be followed.
        assert_eq!(parse(r#"Bearer service="x""#), None);
    }
}
