//! The image-config instructions: their values checked as Docker checks them (EXPOSE port
//! specs).
//!
//! Level 0: pure, no I/O.

/// Parses one EXPOSE item `port[-port][/proto]` into `port/proto` entries (docker
/// `nat.ParsePortSpecs`; ranges are expanded as BuildKit does).
pub(crate) fn expose_ports(spec: &str) -> Result<Vec<String>, String> {
    if spec.contains(':') {
        return Err("EXPOSE does not publish ports: write port[/protocol]".into());
    }
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("unknown protocol {proto:?}: use tcp, udp or sctp"));
    }
    let num = |s: &str| -> Result<u32, String> {
        match s.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n),
            _ => Err(format!("{s:?} is not a port number between 1 and 65535")),
        }
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(ports)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("range {lo}-{hi} ends before it starts"));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}
