//! The SBOM statement: the packages installed in an image's root filesystem, found from the
//! dpkg status file (`var/lib/dpkg/status`), apk's installed database (`lib/apk/db/installed`)
//! and Python `*.dist-info/METADATA` files, as an SPDX 2.3 JSON document (spdx.github.io
//! spdx-spec v2.3: clauses 6 creation information, 7 packages, 11 relationships) in an in-toto
//! Statement v1 with predicate type `https://spdx.dev/Document` (BuildKit's).
//!
//! Level 0: pure. The caller reads the files; texts in, canonical JSON bytes out.

use serde_json::{json, Value};

use crate::oci::{self, Digest};

/// The SBOM predicate type (BuildKit's, for SPDX documents).
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";

/// A package found in a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// Which package manager knows it: `deb`, `apk` or `pypi` (the purl type).
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its architecture, when the database records one.
    pub arch: Option<String>,
}

impl Package {
    /// Its package URL (github.com/package-url/purl-spec): `pkg:deb/NAMESPACE/NAME@V?arch=A`,
    /// `pkg:apk/NAMESPACE/NAME@V?arch=A`, `pkg:pypi/NAME@V` (name lowercased, `_` as `-`).
    pub fn purl(&self, distro: &str) -> String {
        match self.kind {
            "pypi" => format!(
                "pkg:pypi/{}@{}",
                self.name.to_lowercase().replace('_', "-"),
                self.version
            ),
            kind => {
                let arch = self
                    .arch
                    .as_deref()
                    .map(|a| format!("?arch={a}"))
                    .unwrap_or_default();
                format!("pkg:{kind}/{distro}/{}@{}{arch}", self.name, self.version)
            }
        }
    }
}

/// Key: value stanzas separated by blank lines (RFC 822 style, continuation lines skipped).
fn stanzas(text: &str, sep: char) -> Vec<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if !line.starts_with([' ', '\t']) {
            if let Some((k, v)) = line.split_once(sep) {
                cur.push((k.trim(), v.trim()));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(s: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    s.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Packages of a dpkg status file that are installed (`Status: install ok installed`).
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    stanzas(text, ':')
        .iter()
        .filter(|s| field(s, "Status").is_some_and(|st| st.ends_with(" installed")))
        .filter_map(|s| {
            Some(Package {
                kind: "deb",
                name: field(s, "Package")?.to_string(),
                version: field(s, "Version")?.to_string(),
                arch: field(s, "Architecture").map(str::to_string),
            })
        })
        .collect()
}

/// Packages of apk's installed database (`P:` name, `V:` version, `A:` architecture).
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    stanzas(text, ':')
        .iter()
        .filter_map(|s| {
            Some(Package {
                kind: "apk",
                name: field(s, "P")?.to_string(),
                version: field(s, "V")?.to_string(),
                arch: field(s, "A").map(str::to_string),
            })
        })
        .collect()
}

/// The package a Python `METADATA` file (core metadata, `Name:` and `Version:` headers)
/// describes.
pub fn parse_python_metadata(text: &str) -> Option<Package> {
    let head: Vec<(&str, &str)> = stanzas(text, ':').into_iter().next()?;
    Some(Package {
        kind: "pypi",
        name: field(&head, "Name")?.to_string(),
        version: field(&head, "Version")?.to_string(),
        arch: None,
    })
}

/// What an SBOM is made from.
#[derive(Debug, Clone)]
pub struct SbomInput {
    /// The image manifest it is about, and its purl.
    pub subject: (Digest, String),
    /// The packages found (sorted and deduplicated by [`sbom`]).
    pub packages: Vec<Package>,
    /// The purl namespace of deb/apk packages (`ID` of `etc/os-release`, else `unknown`).
    pub distro: String,
    /// `creationInfo.created` (RFC 3339).
    pub created: String,
    /// `creationInfo.creators` tool entry: `polyarch-VERSION`.
    pub tool: String,
}

/// What the SBOM says it does not detect (its `creationInfo.comment`).
pub const NOT_DETECTED: &str = "packages are read from the dpkg status file, apk's installed \
database and Python *.dist-info/METADATA only; not detected: rpm, other language ecosystems \
(npm, gems, Go and Rust binaries, jars), files outside any package manager, and licenses";

/// The SBOM statement for `input`, serialised canonically.
pub fn sbom(input: &SbomInput) -> Vec<u8> {
    let mut packages = input.packages.clone();
    packages.sort();
    packages.dedup();
    let spdx_packages: Vec<Value> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "SPDXID": format!("SPDXRef-Package-{}-{i}", p.kind),
                "name": p.name,
                "versionInfo": p.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": p.purl(&input.distro),
                }],
            })
        })
        .collect();
    let relationships: Vec<Value> = spdx_packages
        .iter()
        .map(|p| {
            json!({
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": p["SPDXID"],
            })
        })
        .collect();
    let document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": input.subject.1,
        "documentNamespace": format!("https://polyarch.invalid/spdx/{}", input.subject.0.hex()),
        "creationInfo": {
            "created": input.created,
            "creators": [format!("Tool: {}", input.tool)],
            "comment": NOT_DETECTED,
        },
        "packages": spdx_packages,
        "relationships": relationships,
    });
    oci::to_bytes(&json!({
        "_type": super::STATEMENT_TYPE,
        "subject": [{ "name": input.subject.1, "digest": { "sha256": input.subject.0.hex() } }],
        "predicateType": PREDICATE_SPDX,
        "predicate": document,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_databases() {
        let dpkg = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\nDescription: x\n continued\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n";
        assert_eq!(
            parse_dpkg_status(dpkg),
            vec![Package {
                kind: "deb",
                name: "libc6".into(),
                version: "2.36-9".into(),
                arch: Some("amd64".into())
            }]
        );
        let apk = "C:Q1x\nP:musl\nV:1.2.4-r2\nA:aarch64\n\nP:busybox\nV:1.36.1-r5\nA:aarch64\n";
        assert_eq!(parse_apk_installed(apk).len(), 2);
        let py = parse_python_metadata(
            "Metadata-Version: 2.1\nName: Requests_Toolbelt\nVersion: 1.0.0\n\nlong text: x\n",
        )
        .unwrap();
        assert_eq!(py.purl("x"), "pkg:pypi/requests-toolbelt@1.0.0");
        assert_eq!(
            parse_dpkg_status(dpkg)[0].purl("debian"),
            "pkg:deb/debian/libc6@2.36-9?arch=amd64"
        );
    }
}
