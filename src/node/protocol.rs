//! The worker protocol spoken over the SSH channel between the coordinator and
//! `polyarch worker --stdio` on a node.
//!
//! Every frame is a 4-byte big-endian payload length, one kind byte, then the payload:
//! - `J`: one JSON message ([`ToWorker`] or [`FromWorker`]), at most [`MAX_JSON`] bytes;
//! - `B`: a piece of the build-context bundle, at most [`CHUNK`] bytes;
//! - `E`: the end of the bundle (empty payload).
//!
//! A session: the worker sends [`FromWorker::Hello`] as soon as it starts (so a missing binary,
//! a shell that prints text, or an incompatible version shows up before anything else), the
//! coordinator answers [`ToWorker::Hello`], then sends one request: [`ToWorker::Probe`], or
//! [`ToWorker::Build`] followed by [`ToWorker::Credentials`]. For a build the worker answers
//! [`FromWorker::HaveContext`] (the bundle with that digest is already in its store) or
//! [`FromWorker::NeedContext`] (then `B` frames and one `E` frame follow), streams
//! [`FromWorker::Event`]s, and ends with [`FromWorker::Done`] or [`FromWorker::Failed`].
//!
//! Registry credentials travel only in the [`ToWorker::Credentials`] frame: never in the remote
//! command line, an environment variable, a file or a log line ([`WireCredentials`]' `Debug`
//! hides the password).
//!
//! Level 2 (node port). Frames and messages only: reads and writes the streams it is given,
//! starts nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::oci::{Descriptor, Digest};
use crate::platform::Platform;
use crate::progress::Event;

/// The protocol version. Both sides must speak the same one; it changes whenever a message
/// changes shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// Sent in the worker's hello so that unrelated output on the channel is recognised.
pub const MAGIC: &str = "polyarch-worker";

/// Largest JSON frame accepted (Dockerfile text and events are far smaller).
pub const MAX_JSON: usize = 16 << 20;

/// Size of the bundle pieces sent (and the largest accepted).
pub const CHUNK: usize = 1 << 20;

const KIND_JSON: u8 = b'J';
const KIND_CHUNK: u8 = b'B';
const KIND_END: u8 = b'E';

/// One frame read from the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON message's bytes.
    Json(Vec<u8>),
    /// A piece of the bundle.
    Chunk(Vec<u8>),
    /// The end of the bundle.
    End,
}

/// What went wrong reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The channel failed (closed mid-frame, reset, ...).
    #[error("channel i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a frame header: something other than a polyarch worker is talking.
    #[error("not a polyarch frame (header bytes {header:02x?})")]
    BadHeader {
        /// The five header bytes read.
        header: [u8; 5],
    },
    /// A JSON frame that does not parse as the expected message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// A frame of another kind than the one expected at this point.
    #[error("unexpected {got} frame, expected {expected}")]
    Unexpected {
        /// What arrived.
        got: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

impl Frame {
    fn kind_name(&self) -> &'static str {
        match self {
            Frame::Json(_) => "message",
            Frame::Chunk(_) => "bundle piece",
            Frame::End => "bundle end",
        }
    }
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    frame: &Frame,
) -> std::io::Result<()> {
    let (kind, payload): (u8, &[u8]) = match frame {
        Frame::Json(b) => (KIND_JSON, b),
        Frame::Chunk(b) => (KIND_CHUNK, b),
        Frame::End => (KIND_END, &[]),
    };
    let mut header = [0u8; 5];
    header[..4].copy_from_slice(&(payload.len() as u32).to_be_bytes());
    header[4] = kind;
    w.write_all(&header).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a header. A header that is not
/// one of ours (unknown kind, oversized) is [`FrameError::BadHeader`].
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; 5];
    let mut got = 0;
    while got < header.len() {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        got += n;
    }
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let max = match header[4] {
        KIND_JSON => MAX_JSON,
        KIND_CHUNK => CHUNK,
        KIND_END => 0,
        _ => return Err(FrameError::BadHeader { header }),
    };
    if len > max {
        return Err(FrameError::BadHeader { header });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(match header[4] {
        KIND_JSON => Frame::Json(payload),
        KIND_CHUNK => Frame::Chunk(payload),
        _ => Frame::End,
    }))
}

/// Serialises `msg` as one JSON frame.
pub async fn send<W: AsyncWrite + Unpin + ?Sized, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), FrameError> {
    let bytes = serde_json::to_vec(msg)?;
    write_frame(w, &Frame::Json(bytes)).await?;
    Ok(())
}

/// Reads one JSON frame as `T`; `Ok(None)` on a clean end of stream.
pub async fn recv<R: AsyncRead + Unpin + ?Sized, T: DeserializeOwned>(
    r: &mut R,
) -> Result<Option<T>, FrameError> {
    match read_frame(r).await? {
        None => Ok(None),
        Some(Frame::Json(b)) => Ok(Some(serde_json::from_slice(&b)?)),
        Some(other) => Err(FrameError::Unexpected {
            got: other.kind_name(),
            expected: "message",
        }),
    }
}

/// A user name and password for the registry the worker pushes to. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCredentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for WireCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The build context bundle a job needs: its digest (sha256 of the compressed bytes) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextRef {
    /// sha256 of the bundle's bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// One platform's build, as a node runs it: everything the local build of that platform uses,
/// except the context files (sent as a bundle) and the credentials (their own frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildJob {
    /// The platform to build.
    pub platform: Platform,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The Dockerfile's name as the coordinator shows it (for `file:line` in messages).
    pub dockerfile_name: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--allow`: the entitlements the coordinator's command line grants; the node checks the
    /// Dockerfile against them as a local build does.
    #[serde(default)]
    pub entitlements: Vec<crate::plan::Entitlement>,
    /// `--target`.
    pub target: Option<String>,
    /// `SOURCE_DATE_EPOCH` (seconds).
    pub source_date_epoch: Option<i64>,
    /// The `created` time every image of the build records (RFC 3339).
    pub created: String,
    /// The repository the image is pushed to by digest (`registry/repository`).
    pub push_to: String,
    /// `--insecure-registry` hosts.
    pub insecure_registries: Vec<String>,
    /// Retries per registry request.
    pub retries: u32,
    /// How layers are compressed (`--compression`, `--compression-level`).
    #[serde(default)]
    pub compression: crate::layer::Compression,
    /// The context bundle.
    pub context: ContextRef,
    /// `--smoke-test`: run in the finished image before it is pushed.
    #[serde(default)]
    pub smoke_test: Option<String>,
    /// `--no-cache`: run every step (the node's step cache is still written).
    #[serde(default)]
    pub no_cache: bool,
    /// `--no-cache-filter`: run every step of these stages.
    #[serde(default)]
    pub no_cache_filter: Vec<String>,
    /// `--pull`: read the base image's config from the registry, not the node's store.
    #[serde(default)]
    pub pull: bool,
}

/// Messages from the coordinator to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// The coordinator's side of the handshake.
    Hello {
        /// Its [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Its polyarch version.
        version: String,
    },
    /// Report what the node runs.
    Probe,
    /// Build one platform.
    Build(Box<BuildJob>),
    /// Credentials for the job's `push_to` registry; always sent right after `Build`.
    Credentials {
        /// `None` pushes anonymously.
        credentials: Option<WireCredentials>,
    },
}

/// What the node runs, answered to [`ToWorker::Probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The node's polyarch version.
    pub version: String,
    /// Its host platform.
    pub host: Platform,
    /// The document `polyarch qemu status --json` prints there.
    pub qemu: serde_json::Value,
    /// Builds running on the node right now (workers of any coordinator).
    pub running_builds: usize,
}

impl ProbeReport {
    /// The platforms the node runs natively (its host platform first) and those it runs under
    /// emulation with their handler's name, read from the `qemu status` document.
    pub fn capabilities(&self) -> (Vec<Platform>, Vec<(Platform, String)>) {
        let mut native = vec![self.host.normalized()];
        let mut emulated = Vec::new();
        let rows = self.qemu["platforms"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for row in rows {
            let Some(p) = row["platform"]
                .as_str()
                .and_then(|s| Platform::parse(s).ok())
            else {
                continue;
            };
            match row["runs"].as_str() {
                Some("native") if !native.iter().any(|n| n.same_as(&p)) => native.push(p),
                Some("emulated") => {
                    let handler = row["handler"]["name"]
                        .as_str()
                        .unwrap_or("binfmt_misc")
                        .to_string();
                    emulated.push((p, handler));
                }
                _ => {}
            }
        }
        (native, emulated)
    }
}

/// What a node built: the manifest it pushed by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteImage {
    /// The image manifest's descriptor, with `platform` set.
    pub manifest: Descriptor,
    /// The config blob's digest.
    pub config: Digest,
    /// Steps the node ran (0 from a node that does not say).
    #[serde(default)]
    pub steps_run: usize,
    /// Steps whose result came from the node's step cache.
    #[serde(default)]
    pub steps_cached: usize,
}

/// A build that failed on the node, as the node's polyarch reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteFailure {
    /// The error message.
    pub message: String,
    /// Its causes, outermost first.
    pub causes: Vec<String>,
    /// Advice, if any.
    pub hint: Option<String>,
    /// The exit code it maps to.
    pub exit_code: i32,
}

/// Messages from the worker to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's side of the handshake, sent first.
    Hello {
        /// Always [`MAGIC`].
        magic: String,
        /// Its [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Its polyarch version.
        version: String,
        /// Its host platform.
        host: Platform,
    },
    /// The answer to [`ToWorker::Probe`].
    Probe(Box<ProbeReport>),
    /// The bundle is in the node's store already: nothing is sent.
    HaveContext,
    /// Send the bundle.
    NeedContext,
    /// A progress event of the build.
    Event(Event),
    /// The build succeeded and the image was pushed by digest.
    Done(RemoteImage),
    /// The build failed (or the request was refused).
    Failed(RemoteFailure),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_end_cleanly() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            send(
                &mut a,
                &ToWorker::Hello {
                    protocol: PROTOCOL_VERSION,
                    version: "1.2.3".into(),
                },
            )
            .await
            .unwrap();
            write_frame(&mut a, &Frame::Chunk(vec![7; 300]))
                .await
                .unwrap();
            write_frame(&mut a, &Frame::End).await.unwrap();
        });
        let hello: ToWorker = recv(&mut b).await.unwrap().unwrap();
        assert_eq!(
            hello,
            ToWorker::Hello {
                protocol: 1,
                version: "1.2.3".into()
            }
        );
        assert_eq!(
            read_frame(&mut b).await.unwrap(),
            Some(Frame::Chunk(vec![7; 300]))
        );
        assert_eq!(read_frame(&mut b).await.unwrap(), Some(Frame::End));
        writer.await.unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap(), None);
    }

    #[tokio::test]
    async fn text_on_the_channel_is_not_a_frame() {
        let mut text: &[u8] = b"Welcome to node-a!\n";
        match read_frame(&mut text).await {
            Err(FrameError::BadHeader { header }) => assert_eq!(&header, b"Welco"),
            other => panic!("{other:?}"),
        }
        // A header announcing more than a chunk may hold is refused before allocating.
        let mut big: &[u8] = &[0xff, 0xff, 0xff, 0xff, b'B'];
        assert!(matches!(
            read_frame(&mut big).await,
            Err(FrameError::BadHeader { .. })
        ));
        // Cut mid-frame: an i/o error, not a clean end.
        let mut cut: &[u8] = &[0, 0, 0, 9, b'J', b'{'];
        assert!(matches!(read_frame(&mut cut).await, Err(FrameError::Io(_))));
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let c = WireCredentials {
            username: "ci".into(),
            password: "hunter2-secret".into(),
        };
        let msg = ToWorker::Credentials {
            credentials: Some(c),
        };
        let shown = format!("{msg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("ci"), "{shown}");
    }

    #[test]
    fn probe_capabilities_come_from_the_qemu_status_document() {
        let report = ProbeReport {
            version: "0.1.0".into(),
            host: Platform::parse("linux/amd64").unwrap(),
            qemu: serde_json::json!({
                "platforms": [
                    {"platform": "linux/arm64", "runs": "emulated", "handler": {"name": "qemu-aarch64"}},
                    {"platform": "linux/386", "runs": "native", "handler": null},
                    {"platform": "linux/amd64", "runs": "native", "handler": null},
                    {"platform": "linux/riscv64", "runs": "no", "handler": null},
                ]
            }),
            running_builds: 0,
        };
        let (native, emulated) = report.capabilities();
        let native: Vec<String> = native.iter().map(|p| p.to_string()).collect();
        assert_eq!(native, ["linux/amd64", "linux/386"]);
        assert_eq!(emulated.len(), 1);
        assert_eq!(emulated[0].0.to_string(), "linux/arm64");
        assert_eq!(emulated[0].1, "qemu-aarch64");
    }
}
