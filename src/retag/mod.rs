//! `polyarch tag SRC DST...`: more tags for an image or index that is already pushed, as
//! crane's `tag` does: the manifest is read once (GET, digest checked) and put under each new
//! tag (PUT of the same bytes, the digest the registry answers checked); no blob is read,
//! uploaded or mounted, so the destinations must be tags of SRC's repository.
//!
//! Level 3, over the [`Registry`] port. Moves only the tags named.

use crate::exit::{Classify, ExitCode};
use crate::oci::{Digest, OciError};
use crate::progress::{Event, Sink};
use crate::registry::{Reference, Registry, RegistryError};

/// Why tagging failed.
#[derive(Debug, thiserror::Error)]
pub enum RetagError {
    /// A destination is not a tag of the source's repository.
    #[error("{dst}: polyarch tag moves no blob, so a new tag must be in {repo} (use `polyarch merge -t {dst} {src}` to copy)")]
    OtherRepository {
        /// The destination as given.
        dst: String,
        /// The source's repository.
        repo: String,
        /// The source.
        src: String,
    },
    /// A destination is not a tag name or a reference.
    #[error("{dst}: not a tag or REGISTRY/REPO:TAG ({source})")]
    BadDestination {
        /// As given.
        dst: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// Reading the source or putting a tag failed (after retries).
    #[error("{what}: {source}")]
    Registry {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: RegistryError,
    },
    /// The registry stored other bytes than were sent.
    #[error(transparent)]
    Digest(#[from] OciError),
}

impl Classify for RetagError {
    fn exit_code(&self) -> ExitCode {
        match self {
            RetagError::OtherRepository { .. } | RetagError::BadDestination { .. } => {
                ExitCode::BadInput
            }
            RetagError::Registry { source, .. } => source.exit_code(),
            RetagError::Digest(e) => e.exit_code(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            RetagError::Registry { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// A destination as given: a bare tag (`1.2`) is a tag of `src`'s repository; anything else a
/// reference that must name a tag there.
///
/// Errors: [`RetagError::BadDestination`], [`RetagError::OtherRepository`].
pub fn destination(src: &Reference, dst: &str) -> Result<Reference, RetagError> {
    let bad = |source| RetagError::BadDestination {
        dst: dst.to_string(),
        source,
    };
    let r = if dst.contains('/') || dst.contains('@') {
        dst.parse::<Reference>().map_err(bad)?
    } else {
        src.with_tag(dst).map_err(bad)?
    };
    if r.registry != src.registry || r.repository != src.repository || r.tag.is_none() {
        return Err(RetagError::OtherRepository {
            dst: dst.to_string(),
            repo: src.repo_string(),
            src: src.to_string(),
        });
    }
    Ok(r)
}

/// Puts the manifest `src` names under each of `dsts` (see [`destination`]); returns its
/// digest. Progress: one [`Event::IndexPushed`] per tag.
///
/// Errors: see [`RetagError`]; destinations are all checked before any tag moves.
pub async fn tag<R: Registry>(
    registry: &R,
    src: &Reference,
    dsts: &[String],
    sink: &dyn Sink,
) -> Result<Digest, RetagError> {
    let targets = dsts
        .iter()
        .map(|d| destination(src, d))
        .collect::<Result<Vec<_>, _>>()?;
    let raw = registry
        .get_manifest(src)
        .await
        .map_err(|source| RetagError::Registry {
            what: format!("read {src}"),
            source,
        })?;
    for t in &targets {
        let name = t.tag.clone().unwrap_or_default();
        let stored = registry
            .push_manifest(t, &name, &raw.bytes, &raw.media_type)
            .await
            .map_err(|source| RetagError::Registry {
                what: format!("tag {t}"),
                source,
            })?;
        raw.digest.verify(&stored, format!("manifest tagged {t}"))?;
        sink.emit(Event::IndexPushed {
            tag: t.to_string(),
            digest: raw.digest.clone(),
        });
    }
    Ok(raw.digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::MEDIA_TYPE_OCI_INDEX;
    use crate::progress::RecordingSink;
    use crate::registry::fake::FakeRegistry;

    #[test]
    fn tags_move_by_manifest_only_and_stay_in_the_repository() {
        let fake = FakeRegistry::new();
        let repo = Reference::parse("127.0.0.1:5000/x/y").unwrap();
        let d = fake.insert_manifest(
            &repo,
            Some("1.2.3"),
            b"{\"manifests\":[]}",
            MEDIA_TYPE_OCI_INDEX,
        );
        let src = repo.with_tag("1.2.3").unwrap();
        let sink = RecordingSink::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = rt
            .block_on(tag(
                &fake,
                &src,
                &["stable".into(), "127.0.0.1:5000/x/y:1".into()],
                &sink,
            ))
            .unwrap();
        assert_eq!(got, d);
        assert_eq!(sink.events().len(), 2);
        let e = destination(&src, "127.0.0.1:5000/x/z:1").unwrap_err();
        assert!(matches!(e, RetagError::OtherRepository { .. }));
        assert_eq!(e.exit_code(), ExitCode::BadInput);
    }
}
