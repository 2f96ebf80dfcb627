//! Parallel gzip: [`ParallelGzip`] compresses its input in fixed blocks of [`BLOCK`] bytes on
//! several threads and writes one standard gzip member (RFC 1952) whose bytes do not depend on
//! the number of threads.
//!
//! The method is pigz's: each block is raw deflate (RFC 1951) primed with the last 32 KiB of
//! the input before it as its dictionary, ended by a sync flush (an empty stored block, so the
//! next block starts on a byte boundary), the last one by a final block. Each block's CRC-32 is
//! computed by the thread that compresses it (crc32fast, with the CPU's carry-less multiply
//! where there is one) and the CRCs are combined in input order (zlib's `crc32_combine`), so
//! the writing thread only copies input. A block's bytes depend only
//! on the input and the level, so 1 or 16 threads give the same stream, and a layer digest stays
//! a function of its content. An input that fits one block gives exactly what flate2's
//! `GzEncoder` gives (same header, one deflate stream), so small layers keep their digests.
//!
//! Level 1: threads and memory only, no file or network I/O of its own; it writes to the
//! `Write` it is given. At most two blocks per thread are in flight, so memory stays bounded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes of input per block.
pub const BLOCK: usize = 1 << 20;

/// The deflate window: a block's dictionary is this much of the input before it.
const WINDOW: usize = 32 << 10;

/// One block to compress, and where its result goes.
struct Job {
    dict: Vec<u8>,
    input: Vec<u8>,
    last: bool,
    reply: Sender<io::Result<Block>>,
}

/// A compressed block and the CRC-32 of its input.
type Block = (Vec<u8>, crc32fast::Hasher);

/// A gzip writer compressing on `threads` threads; see the module header.
pub struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    block: Vec<u8>,
    dict: Vec<u8>,
    /// CRC-32 of the input written so far, and its length (RFC 1952 `ISIZE` is it mod 2^32).
    crc: crc32fast::Hasher,
    amount: u64,
    /// Results in input order.
    pending: VecDeque<Receiver<io::Result<Block>>>,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
}

impl<W: Write> ParallelGzip<W> {
    /// A writer to `out` at `level` (0-9) on `threads` threads (at least 1; 1 compresses on
    /// the calling thread). Writes the gzip header at once: mtime 0, no name, XFL as flate2
    /// sets it, OS 255 ("unknown").
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        let level = level.min(9);
        let xfl = if level >= 9 {
            2
        } else if level <= 1 {
            4
        } else {
            0
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        let threads = threads.max(1);
        let (jobs, workers) = if threads > 1 {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let workers = (0..threads)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::spawn(move || loop {
                        let job = match rx.lock().map(|r| r.recv()) {
                            Ok(Ok(job)) => job,
                            _ => return,
                        };
                        let _ = job
                            .reply
                            .send(block(level, &job.dict, &job.input, job.last));
                    })
                })
                .collect();
            (Some(tx), workers)
        } else {
            (None, Vec::new())
        };
        Ok(ParallelGzip {
            out,
            level,
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            amount: 0,
            pending: VecDeque::new(),
            jobs,
            workers,
            threads,
        })
    }

    /// Hands the current block to a worker (or compresses it here) and starts the next.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.dict);
        // The next block's dictionary: the end of this block, preceded by the end of the one
        // before when this one is shorter than the window.
        let mut next = Vec::with_capacity(WINDOW);
        if input.len() < WINDOW {
            next.extend_from_slice(&dict[dict.len().saturating_sub(WINDOW - input.len())..]);
        }
        next.extend_from_slice(&input[input.len().saturating_sub(WINDOW)..]);
        self.dict = next;
        let (reply, result) = mpsc::channel();
        match &self.jobs {
            Some(jobs) => {
                let job = Job {
                    dict,
                    input,
                    last,
                    reply,
                };
                jobs.send(job)
                    .map_err(|_| io::Error::other("a gzip worker stopped"))?;
            }
            None => {
                let _ = reply.send(block(self.level, &dict, &input, last));
            }
        }
        self.pending.push_back(result);
        while self.pending.len() >= 2 * self.threads {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest block in flight and writes it.
    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let (bytes, crc) = rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker stopped"))??;
            self.crc.combine(&crc);
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Compresses what is left, writes the trailer (CRC-32 and length mod 2^32, RFC 1952) and
    /// returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        trailer[4..].copy_from_slice(&(self.amount as u32).to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A full block goes only when more input follows: the last block is always the one
        // `finish` ends, so an input of exactly one block is one deflate stream.
        if self.block.len() == BLOCK && !buf.is_empty() {
            self.dispatch(false)?;
        }
        let n = (BLOCK - self.block.len()).min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        self.amount += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One block compressed ([`deflate_block`]) and its input's CRC-32.
fn block(level: u32, dict: &[u8], input: &[u8], last: bool) -> io::Result<Block> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    Ok((deflate_block(level, dict, input, last)?, crc))
}

/// One block as raw deflate at `level` with `dict` as its preset dictionary: ended by a sync
/// flush, or by the final block when `last`.
fn deflate_block(level: u32, dict: &[u8], input: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 1024);
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity() / 2 + 1024);
        }
        let before = c.total_in();
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once all input is in and output space is left over.
            _ => !last && consumed == input.len() && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Mixed input: runs of text and pseudo-random bytes, across several blocks.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while out.len() < len {
            if (out.len() / 70_000) % 2 == 0 {
                out.extend_from_slice(b"polyarch layers compress well when they repeat. ");
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut w = ParallelGzip::new(Vec::new(), level, threads).unwrap();
        // Odd write sizes, to cross block edges mid-write.
        for piece in data.chunks(77_777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn the_same_bytes_on_one_thread_or_several_and_a_standard_stream() {
        let data = sample(3 * BLOCK + 12_345);
        let one = gzip(&data, 6, 1);
        assert_eq!(one, gzip(&data, 6, 2), "1 and 2 threads differ");
        assert_eq!(one, gzip(&data, 6, 5), "1 and 5 threads differ");
        // Any gzip reader reads it back (one member, checked CRC and length).
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data);
        assert!(one.len() < data.len());
        // The level matters.
        assert_ne!(one, gzip(&data, 1, 2));
    }

    #[test]
    fn one_block_gives_what_flate2_gives() {
        for data in [Vec::new(), b"hello\n".to_vec(), sample(BLOCK)] {
            let mut e = flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(Vec::new(), Compression::new(6));
            e.write_all(&data).unwrap();
            assert!(
                e.finish().unwrap() == gzip(&data, 6, 2),
                "{} bytes",
                data.len()
            );
        }
    }
}
