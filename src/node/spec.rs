//! Node declarations: `--node NAME=ssh://[USER@]HOST[:PORT][?platforms=P1,P2&limit=N&polyarch=PATH]`
//! and the TOML nodes file (`--nodes FILE`, example in `manifests/nodes/nodes.toml`).
//!
//! Level 2 (node port). Parsing only; no connection is made here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::NodeError;
use crate::platform::Platform;

/// One declared node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its name (letters, digits, `.`, `_`, `-`; not `local`, which means this host).
    pub name: String,
    /// The ssh user; `None` leaves it to the ssh config (or the local user name).
    pub user: Option<String>,
    /// Host name or address (an ssh config `Host` alias works too).
    pub host: String,
    /// The ssh port; `None` leaves it to the ssh config (or 22).
    pub port: Option<u16>,
    /// The platforms it is used for; `None`: the ones it runs natively.
    pub platforms: Option<Vec<Platform>>,
    /// Builds it takes at once (default 1).
    pub limit: usize,
    /// The polyarch program on the node; `None`: `polyarch`, found on the PATH there.
    pub polyarch: Option<String>,
}

impl NodeSpec {
    /// `ssh://[user@]host[:port]`, for messages (never with the query).
    pub fn address(&self) -> String {
        let mut s = String::from("ssh://");
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('@');
        }
        if self.host.contains(':') {
            s.push_str(&format!("[{}]", self.host));
        } else {
            s.push_str(&self.host);
        }
        if let Some(p) = self.port {
            s.push_str(&format!(":{p}"));
        }
        s
    }

    /// The host as ssh's known_hosts names it: `host`, or `[host]:port` for a port other than 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    /// The program run on the node.
    pub fn program(&self) -> &str {
        self.polyarch.as_deref().unwrap_or("polyarch")
    }
}

/// Every declared node, plus the ssh config file to use for all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSet {
    /// The nodes, in declaration order (`--nodes` file first, then each `--node`).
    pub nodes: Vec<NodeSpec>,
    /// `ssh -F FILE` for every connection; `None`: ssh's defaults (`~/.ssh/config`).
    pub ssh_config: Option<PathBuf>,
}

impl NodeSet {
    /// Adds `node`, refusing a second node with the same name.
    pub fn push(&mut self, node: NodeSpec) -> Result<(), NodeError> {
        if self.nodes.iter().any(|n| n.name == node.name) {
            return Err(NodeError::DuplicateName { name: node.name });
        }
        self.nodes.push(node);
        Ok(())
    }

    /// The node named `name`.
    pub fn get(&self, name: &str) -> Result<&NodeSpec, NodeError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| NodeError::UnknownNode {
                name: name.to_string(),
                known: if self.nodes.is_empty() {
                    "none; use --node or --nodes".into()
                } else {
                    self.nodes
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            })
    }
}

fn invalid(input: &str, reason: impl Into<String>) -> NodeError {
    NodeError::InvalidSpec {
        input: input.to_string(),
        reason: reason.into(),
    }
}

fn check_name(input: &str, name: &str) -> Result<(), NodeError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(invalid(
            input,
            format!(
                "node name {name:?}: use letters, digits, '.', '_' and '-', starting with a \
                 letter or digit"
            ),
        ));
    }
    if name == "local" {
        return Err(invalid(
            input,
            "the node name \"local\" is reserved for this host",
        ));
    }
    Ok(())
}

fn parse_platforms(input: &str, list: &[&str]) -> Result<Vec<Platform>, NodeError> {
    let mut out: Vec<Platform> = Vec::new();
    for s in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let p = Platform::parse(s).map_err(|e| invalid(input, format!("platforms: {e}")))?;
        if !out.iter().any(|q| q.same_as(&p)) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(invalid(input, "platforms: the list is empty"));
    }
    Ok(out)
}

fn parse_limit(input: &str, v: &str) -> Result<usize, NodeError> {
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(invalid(
            input,
            format!("limit={v:?}: give the number of builds the node takes at once (1 or more)"),
        )),
    }
}

/// Parses `ssh://[USER@]HOST[:PORT]` (IPv6 addresses in brackets) into (user, host, port).
fn parse_address(
    input: &str,
    url: &str,
) -> Result<(Option<String>, String, Option<u16>), NodeError> {
    let rest = url.strip_prefix("ssh://").ok_or_else(|| {
        invalid(
            input,
            format!("{url:?} is not an ssh:// address (expected ssh://[USER@]HOST[:PORT])"),
        )
    })?;
    if rest.contains('/') {
        return Err(invalid(
            input,
            "an ssh:// address has no path (expected ssh://[USER@]HOST[:PORT])",
        ));
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
        Some(_) => return Err(invalid(input, "empty user name before '@'")),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| invalid(input, "unclosed '[' in the host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid(input, format!("unexpected {p:?} after the host")))?,
            ),
        };
        (h.to_string(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(invalid(
            input,
            "no host (expected ssh://[USER@]HOST[:PORT])",
        ));
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            invalid(input, format!("port {p:?} is not a number from 1 to 65535"))
        })?),
    };
    Ok((user, host, port))
}

/// Parses one `--node NAME=ssh://[USER@]HOST[:PORT][?platforms=P1,P2&limit=N&polyarch=PATH]`.
///
/// Errors ([`NodeError::InvalidSpec`], exit 2) quote the value and say what is wrong.
pub fn parse_node_arg(input: &str) -> Result<NodeSpec, NodeError> {
    let (name, url) = input.split_once('=').ok_or_else(|| {
        invalid(
            input,
            "expected NAME=ssh://[USER@]HOST[:PORT][?platforms=P1,P2]",
        )
    })?;
    check_name(input, name)?;
    let (addr, query) = match url.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (url, None),
    };
    let (user, host, port) = parse_address(input, addr)?;
    let mut node = NodeSpec {
        name: name.to_string(),
        user,
        host,
        port,
        platforms: None,
        limit: 1,
        polyarch: None,
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| invalid(input, format!("{pair:?}: expected key=value")))?;
        match k {
            "platforms" => {
                node.platforms = Some(parse_platforms(input, &v.split(',').collect::<Vec<_>>())?)
            }
            "limit" => node.limit = parse_limit(input, v)?,
            "polyarch" if !v.is_empty() => node.polyarch = Some(v.to_string()),
            other => {
                return Err(invalid(
                    input,
                    format!("unknown setting {other:?} (known: platforms, limit, polyarch)"),
                ))
            }
        }
    }
    Ok(node)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    name: String,
    address: String,
    platforms: Option<Vec<String>>,
    limit: Option<usize>,
    polyarch: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesFile {
    ssh_config: Option<PathBuf>,
    #[serde(default)]
    node: Vec<FileNode>,
}

/// Parses a nodes file's text (`path` names it in errors and anchors a relative `ssh_config`).
///
/// ```toml
/// ssh_config = "ssh_config"          # optional: ssh -F for every node
/// [[node]]
/// name = "arm"
/// address = "ssh://builder@arm1.example.com"
/// platforms = ["linux/arm64"]        # optional: default what it runs natively
/// limit = 2                          # optional: builds at once, default 1
/// polyarch = "/usr/local/bin/polyarch"   # optional: default `polyarch` on its PATH
/// ```
pub fn parse_nodes_file(text: &str, path: &Path) -> Result<NodeSet, NodeError> {
    let file: NodesFile = toml::from_str(text).map_err(|e| NodeError::NodesFile {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut set = NodeSet {
        nodes: Vec::new(),
        ssh_config: file.ssh_config.map(|c| {
            if c.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(c)
            } else {
                c
            }
        }),
    };
    for n in file.node {
        let label = format!("{} in {}", n.name, path.display());
        check_name(&label, &n.name)?;
        let (user, host, port) = parse_address(&label, &n.address)?;
        let platforms = match &n.platforms {
            None => None,
            Some(list) => Some(parse_platforms(
                &label,
                &list.iter().map(String::as_str).collect::<Vec<_>>(),
            )?),
        };
        let limit = match n.limit {
            None => 1,
            Some(l) => parse_limit(&label, &l.to_string())?,
        };
        set.push(NodeSpec {
            name: n.name,
            user,
            host,
            port,
            platforms,
            limit,
            polyarch: n.polyarch.filter(|p| !p.is_empty()),
        })?;
    }
    Ok(set)
}

/// Reads and parses the nodes file at `path` (see [`parse_nodes_file`]).
pub fn load_nodes_file(path: &Path) -> Result<NodeSet, NodeError> {
    let text = std::fs::read_to_string(path).map_err(|source| NodeError::ReadNodesFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse_nodes_file(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_args_parse_with_user_port_and_settings() {
        let n = parse_node_arg(
            "arm=ssh://builder@10.0.0.5:2222?platforms=linux/arm64,linux/arm/v7&limit=3&polyarch=/opt/bin/polyarch",
        )
        .unwrap();
        assert_eq!(n.name, "arm");
        assert_eq!(n.user.as_deref(), Some("builder"));
        assert_eq!(n.host, "10.0.0.5");
        assert_eq!(n.port, Some(2222));
        assert_eq!(n.limit, 3);
        assert_eq!(n.program(), "/opt/bin/polyarch");
        let ps: Vec<String> = n.platforms.unwrap().iter().map(|p| p.to_string()).collect();
        assert_eq!(ps, ["linux/arm64", "linux/arm/v7"]);

        let n = parse_node_arg("b=ssh://host-b").unwrap();
        assert_eq!(
            (&n.user, n.port, n.limit, &n.platforms),
            (&None, None, 1, &None)
        );
        assert_eq!(n.address(), "ssh://host-b");
        let n = parse_node_arg("v6=ssh://root@[::1]:22").unwrap();
        assert_eq!(n.host, "::1");
        assert_eq!(n.address(), "ssh://root@[::1]:22");
        assert_eq!(n.known_hosts_name(), "::1");
        let n = parse_node_arg("p=ssh://127.0.0.1:2201").unwrap();
        assert_eq!(n.known_hosts_name(), "[127.0.0.1]:2201");
    }

    #[test]
    fn bad_node_args_say_what_is_wrong() {
        for (input, says) in [
            ("arm", "expected NAME=ssh://"),
            ("arm=10.0.0.5", "not an ssh:// address"),
            ("arm=ssh://", "no host"),
            ("arm=ssh://h:99999", "port \"99999\""),
            ("arm=ssh://h/path", "no path"),
            ("arm=ssh://h?platforms=linux/nonsense/x/y", "platforms:"),
            ("arm=ssh://h?platforms=", "the list is empty"),
            ("arm=ssh://h?limit=0", "limit=\"0\""),
            ("arm=ssh://h?color=red", "unknown setting \"color\""),
            ("local=ssh://h", "reserved for this host"),
            ("-x=ssh://h", "node name"),
            ("a b=ssh://h", "node name"),
        ] {
            let e = parse_node_arg(input).unwrap_err();
            assert!(e.to_string().contains(says), "{input}: {e}");
            assert_eq!(
                crate::exit::Classify::exit_code(&e),
                crate::exit::ExitCode::BadInput
            );
        }
    }

    #[test]
    fn nodes_file_parses_and_resolves_ssh_config_next_to_it() {
        let text = r#"
            ssh_config = "ssh_config"
            [[node]]
            name = "arm"
            address = "ssh://builder@arm1.example.com"
            platforms = ["linux/arm64"]
            limit = 2
            [[node]]
            name = "x86"
            address = "ssh://x86.example.com:2200"
            polyarch = "/usr/local/bin/polyarch"
        "#;
        let set = parse_nodes_file(text, Path::new("/etc/polyarch/nodes.toml")).unwrap();
        assert_eq!(
            set.ssh_config.as_deref(),
            Some(Path::new("/etc/polyarch/ssh_config"))
        );
        assert_eq!(set.nodes.len(), 2);
        assert_eq!(set.nodes[0].limit, 2);
        assert_eq!(set.nodes[1].port, Some(2200));
        assert_eq!(set.nodes[1].platforms, None);
        assert_eq!(set.get("x86").unwrap().program(), "/usr/local/bin/polyarch");
        let e = set.get("ppc").unwrap_err();
        assert!(e.to_string().contains("declared: arm, x86"), "{e}");
    }

    #[test]
    fn nodes_file_errors_name_the_file() {
        let p = Path::new("nodes.toml");
        let e = parse_nodes_file("[[node]]\nname = \"a\"\n", p).unwrap_err();
        assert!(e.to_string().starts_with("nodes file nodes.toml:"), "{e}");
        assert!(e.to_string().contains("address"), "{e}");
        let e = parse_nodes_file(
            "[[node]]\nname = \"a\"\naddress = \"ssh://h\"\nspeed = 3\n",
            p,
        )
        .unwrap_err();
        assert!(e.to_string().contains("speed"), "{e}");
        let twice = "[[node]]\nname = \"a\"\naddress = \"ssh://h\"\n[[node]]\nname = \"a\"\naddress = \"ssh://g\"\n";
        let e = parse_nodes_file(twice, p).unwrap_err();
        assert!(matches!(e, NodeError::DuplicateName { .. }), "{e:?}");
    }

    #[test]
    fn the_example_nodes_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/nodes/nodes.toml");
        let set = load_nodes_file(&path).unwrap();
        assert!(!set.nodes.is_empty());
    }
}
