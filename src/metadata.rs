//! The metadata file `polyarch build --metadata-file` writes when it pushes by digest, and the
//! reading side `polyarch merge @FILE` uses: which image went where.
//!
//! Level 0: pure (bytes in, values out). The keys are those CI users already parse from
//! `docker buildx build --metadata-file` (`containerimage.digest`,
//! `containerimage.descriptor`, `containerimage.config.digest`, `image.name`) plus plain ones
//! (`repository`, `digest`, `size`, `mediaType`, `platform`, `reference`). The reader also takes
//! buildx's own files (`image.name` + `containerimage.digest`).

use serde::{Deserialize, Serialize};

use crate::oci::{Descriptor, Digest};

/// One platform's image within a pushed result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformEntry {
    /// The platform, normalised (`linux/arm64`, `linux/arm/v7`).
    pub platform: String,
    /// The image manifest's digest.
    pub digest: Digest,
    /// The image manifest's size, bytes.
    pub size: u64,
    /// The image manifest's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The config blob's digest.
    pub config: Digest,
}

/// What `polyarch build --push-by-digest REPO --metadata-file F` writes to `F`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedByDigest {
    /// buildx's `buildx.build.ref`: `BUILDER/NODE/REF` of the build that pushed it.
    #[serde(
        rename = "buildx.build.ref",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub build_ref: Option<String>,
    /// The digest of what was pushed: the image manifest for one platform, else the index.
    #[serde(rename = "containerimage.digest")]
    pub containerimage_digest: Digest,
    /// Its descriptor (with the platform for one platform).
    #[serde(rename = "containerimage.descriptor")]
    pub containerimage_descriptor: Descriptor,
    /// The config blob's digest (one platform only).
    #[serde(
        rename = "containerimage.config.digest",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub containerimage_config_digest: Option<Digest>,
    /// The repository, as buildx writes it for push-by-digest (no tag).
    #[serde(rename = "image.name")]
    pub image_name: String,
    /// `registry/repository` pushed to.
    pub repository: String,
    /// `repository@digest`: what `polyarch merge` reads.
    pub reference: String,
    /// Same as `containerimage.digest`.
    pub digest: Digest,
    /// Size in bytes of what was pushed.
    pub size: u64,
    /// Media type of what was pushed.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The normalised platform, for one platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Every platform's image, in `--platform` order.
    pub platforms: Vec<PlatformEntry>,
}

/// A source named by a metadata file: what to fetch and what platform it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSource {
    /// `registry/repository@sha256:...`.
    pub reference: String,
    /// The normalised platform the file records, if it records one.
    pub platform: Option<String>,
}

/// Why a metadata file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Zero bytes: typically a matrix job that failed before writing it.
    #[error("the file is empty")]
    Empty,
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// None of the known key sets is there.
    #[error(
        "no image in it: expected `reference`, `repository` + `digest`, or buildx's \
         `image.name` + `containerimage.digest`"
    )]
    NoImage,
    /// A digest value that is not `sha256:<64 hex>`.
    #[error("bad digest {0:?}")]
    BadDigest(String),
}

/// Reads the image a metadata file names.
///
/// Keys, first match wins: `reference`; `repository` + `digest`; `image.name` (the first of a
/// comma-separated list, tag dropped) + `containerimage.digest`.
pub fn read_source(bytes: &[u8]) -> Result<MetadataSource, MetadataError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(MetadataError::Empty);
    }
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| MetadataError::NotJson(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| MetadataError::NotJson("not an object".into()))?;
    let s = |k: &str| {
        obj.get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let platform = s("platform").map(str::to_string);
    let check = |d: &str| {
        d.parse::<Digest>()
            .map(|_| ())
            .map_err(|_| MetadataError::BadDigest(d.to_string()))
    };
    if let Some(r) = s("reference") {
        if let Some((_, d)) = r.split_once('@') {
            check(d)?;
        }
        return Ok(MetadataSource {
            reference: r.to_string(),
            platform,
        });
    }
    if let (Some(repo), Some(d)) = (s("repository"), s("digest")) {
        check(d)?;
        return Ok(MetadataSource {
            reference: format!("{repo}@{d}"),
            platform,
        });
    }
    if let (Some(names), Some(d)) = (s("image.name"), s("containerimage.digest")) {
        check(d)?;
        let first = names.split(',').next().unwrap_or(names).trim();
        // Drop a tag: a `:` after the last `/` (a registry port comes before it).
        let name = match first.rfind(':') {
            Some(i) if i > first.rfind('/').unwrap_or(0) => &first[..i],
            _ => first,
        };
        let name = name.split('@').next().unwrap_or(name);
        return Ok(MetadataSource {
            reference: format!("{name}@{d}"),
            platform,
        });
    }
    Err(MetadataError::NoImage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn ours_and_buildx_files() {
        let ours = format!(
            r#"{{"reference":"127.0.0.1:5000/a/b@{D}","repository":"127.0.0.1:5000/a/b","digest":"{D}","platform":"linux/arm64"}}"#
        );
        let got = read_source(ours.as_bytes()).unwrap();
        assert_eq!(got.reference, format!("127.0.0.1:5000/a/b@{D}"));
        assert_eq!(got.platform.as_deref(), Some("linux/arm64"));
        let plain = format!(r#"{{"repository":"reg:5000/a","digest":"{D}"}}"#);
        assert_eq!(
            read_source(plain.as_bytes()).unwrap().reference,
            format!("reg:5000/a@{D}")
        );
        let buildx = format!(
            r#"{{"containerimage.digest":"{D}","image.name":"reg:5000/team/app:v1,reg:5000/team/app:latest"}}"#
        );
        assert_eq!(
            read_source(buildx.as_bytes()).unwrap().reference,
            format!("reg:5000/team/app@{D}")
        );
        let untagged = format!(r#"{{"containerimage.digest":"{D}","image.name":"reg:5000/app"}}"#);
        assert_eq!(
            read_source(untagged.as_bytes()).unwrap().reference,
            format!("reg:5000/app@{D}")
        );
    }

    #[test]
    fn unusable_files() {
        assert_eq!(read_source(b"").unwrap_err(), MetadataError::Empty);
        assert_eq!(read_source(b" \n").unwrap_err(), MetadataError::Empty);
        assert!(matches!(
            read_source(b"{").unwrap_err(),
            MetadataError::NotJson(_)
        ));
        assert!(matches!(
            read_source(b"[]").unwrap_err(),
            MetadataError::NotJson(_)
        ));
        assert_eq!(read_source(b"{}").unwrap_err(), MetadataError::NoImage);
        assert!(matches!(
            read_source(br#"{"repository":"r/a","digest":"sha256:12"}"#).unwrap_err(),
            MetadataError::BadDigest(_)
        ));
    }
}
