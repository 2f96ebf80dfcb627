//! Go's `time.ParseDuration`, as HEALTHCHECK's duration flags take it.
//!
//! Level 0 (pure). Must not decide which durations an instruction accepts.

/// Go's `time.ParseDuration`, in nanoseconds; negative durations are rejected.
pub(crate) fn parse_go_duration(s: &str) -> Result<u64, String> {
    let orig = s;
    let bad = || format!("time: invalid duration {orig:?}");
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("duration {orig:?} is negative"));
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {orig:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {orig:?}")),
        };
        let n: f64 = num.parse().map_err(|_| bad())?;
        total += n * scale;
    }
    if total > u64::MAX as f64 / 2.0 {
        return Err(format!("time: invalid duration {orig:?} (too large)"));
    }
    Ok(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("-1s").is_err());
        assert!(parse_go_duration("1x").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
    }
}
