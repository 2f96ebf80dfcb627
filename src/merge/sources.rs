//! The images to merge as given on the command line: a reference (`REPO@DIGEST`, `REPO:TAG`),
//! a metadata file written by `polyarch build --metadata-file` (`@FILE`), or a directory of
//! them (`@DIR`), each turned into a [`Source`].
//!
//! Level 3, sync file reads only (the metadata files). It must not talk to a registry: what a
//! source holds is found out later (`resolve`).

use std::path::{Path, PathBuf};

use super::error::MergeError;
use crate::metadata;
use crate::platform::Platform;
use crate::registry::Reference;

/// One source as given on the command line, resolved to a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What to fetch.
    pub reference: Reference,
    /// Where it came from, for messages: the argument, or the metadata file's path.
    pub origin: String,
    /// The platform a metadata file says the image is for; checked against the image.
    pub platform: Option<Platform>,
}

/// Expands one source argument: `@FILE` (a metadata file), `@DIR` (every `*.json` in it, by
/// name), or a reference (`REPO@DIGEST`, `REPO:TAG`).
pub fn read_sources(arg: &str) -> Result<Vec<Source>, MergeError> {
    let Some(path) = arg.strip_prefix('@') else {
        let reference = Reference::parse(arg).map_err(|source| MergeError::BadReference {
            origin: arg.to_string(),
            source: Box::new(source),
        })?;
        return Ok(vec![Source {
            reference,
            origin: arg.to_string(),
            platform: None,
        }]);
    };
    let path = Path::new(path);
    let read_err = |source| MergeError::ReadSource {
        path: path.to_path_buf(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.push(read_metadata_file(&f)?);
        }
        return Ok(out);
    }
    Ok(vec![read_metadata_file(path)?])
}

/// One metadata file as a [`Source`]: its reference and, when it names one, its platform.
fn read_metadata_file(path: &Path) -> Result<Source, MergeError> {
    let bytes = std::fs::read(path).map_err(|source| MergeError::ReadSource {
        path: path.to_path_buf(),
        source,
    })?;
    let found = metadata::read_source(&bytes).map_err(|source| MergeError::Metadata {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    let reference =
        Reference::parse(&found.reference).map_err(|source| MergeError::BadReference {
            origin: origin.clone(),
            source: Box::new(source),
        })?;
    let platform = match found.platform {
        Some(p) => Some(
            Platform::parse(&p).map_err(|source| MergeError::BadPlatform {
                origin: origin.clone(),
                source,
            })?,
        ),
        None => None,
    };
    Ok(Source {
        reference,
        origin,
        platform,
    })
}
