//! How a layer's tar stream is compressed: [`Compression`] (gzip, zstd or none, with a level;
//! buildx's `compression=` and `compression-level=`), the OCI media type each gives
//! (image-spec `media-types.md`), and [`Compressor`], the `Write` that does it on several
//! threads with bytes that do not depend on their number.
//!
//! Level 1: compression only, to the `Write` it is given; no file or network I/O of its own.

use std::io::{self, Write};

use super::pgzip::ParallelGzip;
use crate::oci::{MEDIA_TYPE_OCI_LAYER_GZIP, MEDIA_TYPE_OCI_LAYER_TAR, MEDIA_TYPE_OCI_LAYER_ZSTD};

/// A layer's compression and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Compression {
    /// gzip (RFC 1952) at level 0-9 (default 6), compressed in parallel blocks ([`super::pgzip`]).
    Gzip {
        /// 0 (store) to 9 (best).
        level: u32,
    },
    /// zstd (RFC 8878) at level 1-22 (default 3), multi-threaded with at least one worker so
    /// that the bytes do not depend on the thread count (zstd.h, `ZSTD_c_nbWorkers`).
    Zstd {
        /// 1 (fast) to 22 (best).
        level: i32,
    },
    /// The tar as it is.
    Uncompressed,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// `gzip`, `zstd` or `uncompressed` at `level` (the kind's default when `None`).
    ///
    /// Errors: a message naming what is wrong (an unknown kind, a level out of range).
    pub fn parse(kind: &str, level: Option<i32>) -> Result<Compression, String> {
        match kind {
            "gzip" => match level.unwrap_or(6) {
                l @ 0..=9 => Ok(Compression::Gzip { level: l as u32 }),
                l => Err(format!("gzip levels are 0 to 9, not {l}")),
            },
            "zstd" => match level.unwrap_or(3) {
                l @ 1..=22 => Ok(Compression::Zstd { level: l }),
                l => Err(format!("zstd levels are 1 to 22, not {l}")),
            },
            "uncompressed" => match level {
                None => Ok(Compression::Uncompressed),
                Some(_) => Err("an uncompressed layer has no level".into()),
            },
            other => Err(format!(
                "{other:?} is not a compression: gzip, zstd or uncompressed"
            )),
        }
    }

    /// `gzip:6`, `zstd:3` or `uncompressed`: how the step cache tells compressions apart.
    pub fn label(&self) -> String {
        match self {
            Compression::Gzip { level } => format!("gzip:{level}"),
            Compression::Zstd { level } => format!("zstd:{level}"),
            Compression::Uncompressed => "uncompressed".into(),
        }
    }

    /// The OCI layer media type of a tar compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => MEDIA_TYPE_OCI_LAYER_GZIP,
            Compression::Zstd { .. } => MEDIA_TYPE_OCI_LAYER_ZSTD,
            Compression::Uncompressed => MEDIA_TYPE_OCI_LAYER_TAR,
        }
    }
}

/// The number of threads to compress on when none is asked for: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A `Write` that compresses into `W` as [`Compression`] says.
pub enum Compressor<W: Write> {
    /// gzip in parallel blocks.
    Gzip(ParallelGzip<W>),
    /// zstd.
    Zstd(zstd::stream::Encoder<'static, W>),
    /// No compression.
    Plain(W),
}

impl<W: Write> Compressor<W> {
    /// A compressor into `out` on `threads` threads (0: every core).
    pub fn new(out: W, compression: Compression, threads: usize) -> io::Result<Compressor<W>> {
        let threads = if threads == 0 {
            default_threads()
        } else {
            threads
        };
        Ok(match compression {
            Compression::Gzip { level } => {
                Compressor::Gzip(ParallelGzip::new(out, level, threads)?)
            }
            Compression::Zstd { level } => {
                let mut e = zstd::stream::Encoder::new(out, level)?;
                // At least one worker: the output is then the same for any number of them.
                e.multithread(threads as u32)?;
                Compressor::Zstd(e)
            }
            Compression::Uncompressed => Compressor::Plain(out),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
            Compressor::Plain(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
            Compressor::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
            Compressor::Plain(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], c: Compression, threads: usize) -> Vec<u8> {
        let mut w = Compressor::new(Vec::new(), c, threads).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_the_thread_count() {
        let mut data = Vec::new();
        let mut x = 7u64;
        while data.len() < 9 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&(x % 7).to_le_bytes());
        }
        let c = Compression::Zstd { level: 3 };
        let one = compress(&data, c, 1);
        assert_eq!(one, compress(&data, c, 2));
        let mut back = Vec::new();
        zstd::stream::read::Decoder::new(&one[..])
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        assert_eq!(compress(b"tar", Compression::Uncompressed, 2), b"tar");
    }

    #[test]
    fn kinds_levels_and_media_types() {
        assert_eq!(
            Compression::parse("gzip", None),
            Ok(Compression::Gzip { level: 6 })
        );
        assert_eq!(
            Compression::parse("zstd", Some(19)),
            Ok(Compression::Zstd { level: 19 })
        );
        assert!(Compression::parse("gzip", Some(10)).is_err());
        assert!(Compression::parse("zstd", Some(0)).is_err());
        assert!(Compression::parse("uncompressed", Some(1)).is_err());
        assert!(Compression::parse("brotli", None).is_err());
        assert_eq!(
            Compression::parse("zstd", None).unwrap().media_type(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(
            Compression::Uncompressed.media_type(),
            "application/vnd.oci.image.layer.v1.tar"
        );
    }
}
