//! `polyarch du` and `polyarch prune`: the state directory's usage by kind, and removing what
//! is least recently used and not in use ([`crate::storage`]).
//!
//! Level 4 (edge): flags, their parsing (`--keep-storage 10GB`, `--filter until=24h`) and the
//! printed tables.

use std::time::Duration;

use super::*;
use crate::storage::{self, PruneOptions, Usage};

/// Flags of `polyarch du`.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// Print JSON (one object per kind) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `polyarch prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also remove the step cache and cache mounts (default: only blobs and unpacked layers no
    /// step cache entry needs, node contexts and leftovers).
    #[arg(long)]
    pub all: bool,
    /// Stop once the state directory takes no more than this (bytes, or with a unit: 512MB,
    /// 10GB, 1.5GiB; units are powers of 1024, as Docker's).
    #[arg(long, value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// `until=DURATION`: only what was last used longer ago than this (e.g. 24h, 90m, 7d,
    /// 1h30m).
    #[arg(long = "filter", value_name = "until=DURATION")]
    pub filters: Vec<String>,
}

/// A size with an optional binary unit (`b`, `k`/`kb`/`kib`, `m`..., `g`..., `t`...).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512MB, 10GB)"))?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit (use B, KB, MB, GB or TB)")),
    };
    Ok((n * mult as f64) as u64)
}

/// A duration as Go writes them, plus days: `24h`, `90m`, `1h30m`, `45s`, `7d`.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 24h, 90m, 7d)");
    let mut total = 0f64;
    let mut num = String::new();
    let mut any = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            _ => return Err(bad()),
        };
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Bytes for people: `0 B`, `12.3 KB`, `4.5 GB` (powers of 1024).
fn human(n: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn open_store(global: &GlobalArgs) -> Result<Store, Failure> {
    let state = global.state_dir.clone().unwrap_or_else(default_state_dir);
    Ok(Store::open(&state)?)
}

/// Runs `polyarch du`.
pub(super) fn run_du(global: &GlobalArgs, args: &DuArgs) -> Result<(), Failure> {
    let store = open_store(global)?;
    let usage: Vec<Usage> = storage::usage(&store);
    let mut out = std::io::stdout().lock();
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&usage).unwrap_or_default()
        );
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<14} {:>7} {:>11} {:>12}",
        "KIND", "ITEMS", "SIZE", "RECLAIMABLE"
    );
    for u in &usage {
        let _ = writeln!(
            out,
            "{:<14} {:>7} {:>11} {:>12}",
            u.kind.name(),
            u.items,
            human(u.size),
            human(u.reclaimable)
        );
    }
    let (size, free) = usage
        .iter()
        .fold((0, 0), |(s, r), u| (s + u.size, r + u.reclaimable));
    let _ = writeln!(
        out,
        "{:<14} {:>7} {:>11} {:>12}",
        "total",
        "",
        human(size),
        human(free)
    );
    Ok(())
}

/// Runs `polyarch prune`.
pub(super) fn run_prune(global: &GlobalArgs, args: &PruneArgs) -> Result<(), Failure> {
    let mut opts = PruneOptions {
        all: args.all,
        ..PruneOptions::default()
    };
    if let Some(s) = &args.keep_storage {
        opts.keep_storage =
            Some(parse_size(s).map_err(|m| Failure::from(usage("--keep-storage", m)))?);
    }
    for f in &args.filters {
        match f.split_once('=') {
            Some(("until", d)) => {
                opts.until = Some(parse_age(d).map_err(|m| Failure::from(usage("--filter", m)))?)
            }
            _ => {
                return Err(Failure::from(usage(
                    "--filter",
                    format!("{f:?}: the only filter is until=DURATION"),
                )))
            }
        }
    }
    let store = open_store(global)?;
    let done = storage::prune(&store, &opts)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "removed {} items, {} freed; {} left",
        done.items,
        human(done.bytes),
        human(done.left)
    );
    if done.in_use > 0 {
        let _ = writeln!(out, "kept {} items a running build uses", done.in_use);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages() {
        assert_eq!(parse_size("10").unwrap(), 10);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("2k").unwrap(), 2048);
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(parse_age("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_age("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86400));
        for bad in ["", "10", "h", "3w"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.5 KB");
    }
}
