//! Compression of uncompressed layers on their way to a registry (a `docker save` tarball holds
//! plain tars; `docker push` and `skopeo copy` gzip them, and so do we).
//!
//! The input is cut into fixed-size chunks, each compressed on its own into an independent gzip
//! member (or zstd frame) on a small pool of threads, one per core, and the results are written in
//! order: pigz-style concatenated members are one valid gzip stream (RFC 1952 §2.2), which Go's
//! `compress/gzip` (docker, containerd, skopeo, umoci, podman) and our extract read whole; zstd
//! decoders read concatenated frames likewise (RFC 8878 §3.1).
//!
//! The output is deterministic: the chunk size and level are constants, whatever the number of
//! cores, and no gzip header carries a time or a name. The same layer therefore always yields the
//! same compressed digest, so a second push finds its blobs in the registry (HEAD) and the same
//! manifest digest. Memory stays flat: a layer has at most a few chunks in flight.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use crate::oci::digest::Hasher;
use crate::oci::Digest;

/// Compression of gzip members. zlib-rs at 5 runs about 1.5× faster than at 6 (zlib's and
/// Go's default) for about 1.5% more bytes, still fewer than skopeo's pgzip default makes.
const GZIP_LEVEL: u32 = 5;
/// Incompressible chunks (random data, files already compressed) are stored, not deflated:
/// deflate spends as long failing on them as compressing text, for nothing (pgzip, which skopeo
/// uses, skips them too). The decision samples [`PROBES`] slices of [`PROBE`] bytes at level 1;
/// it depends on the data only, so the output stays deterministic.
const PROBE: usize = 16 << 10;
const PROBES: usize = 4;
/// Sampled bytes must shrink below this fraction (in percent) for the chunk to be deflated.
const PROBE_MAX_PERCENT: usize = 95;
/// zstd's default level, as skopeo's `--dest-compress-format zstd` uses.
const ZSTD_LEVEL: i32 = 3;
/// Input bytes per gzip member: deflate's window is 32 KiB, so restarting it every MiB costs well
/// under 1% of the size.
const GZIP_CHUNK: usize = 1 << 20;
/// Input bytes per zstd frame: zstd looks further back (2 MiB windows at level 3) than deflate.
const ZSTD_CHUNK: usize = 2 << 20;
/// Chunks in flight per layer beyond one per worker, so a worker never waits for the reader.
const SPARE_CHUNKS: usize = 1;
/// Workers counted for the in-flight bound: beyond this, more cores only cost memory.
const MAX_COUNTED_WORKERS: usize = 8;

/// One of the formats a layer can be compressed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Gzip,
    Zstd,
}

impl Codec {
    fn chunk_size(self) -> usize {
        match self {
            Codec::Gzip => GZIP_CHUNK,
            Codec::Zstd => ZSTD_CHUNK,
        }
    }

    /// One independent member (gzip) or frame (zstd) holding `data`.
    fn compress_chunk(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Codec::Gzip => {
                let level = if compressible(data)? {
                    flate2::Compression::new(GZIP_LEVEL)
                } else {
                    flate2::Compression::none()
                };
                gzip_member(data, level)
            }
            Codec::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
        }
    }
}

/// One gzip member: no mtime, no name, "unknown" OS (as Go's writer), so the bytes depend on the
/// data and level only.
fn gzip_member(data: &[u8], level: flate2::Compression) -> io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data)?;
    enc.finish()
}

/// Whether deflating `data` is worth it, from [`PROBES`] evenly spread samples.
fn compressible(data: &[u8]) -> io::Result<bool> {
    if data.len() < PROBE * PROBES {
        return Ok(true);
    }
    let step = (data.len() - PROBE) / (PROBES - 1);
    let mut packed = 0;
    for i in 0..PROBES {
        let slice = &data[i * step..i * step + PROBE];
        let mut enc = flate2::write::DeflateEncoder::new(
            Vec::with_capacity(PROBE + 64),
            flate2::Compression::fast(),
        );
        enc.write_all(slice)?;
        packed += enc.finish()?.len();
    }
    Ok(packed * 100 < PROBE * PROBES * PROBE_MAX_PERCENT)
}

type Job = Box<dyn FnOnce() + Send>;

/// Threads compressing chunks for every layer of a push.
pub(crate) struct Pool {
    jobs: mpsc::Sender<Job>,
    workers: usize,
}

impl Pool {
    pub(crate) fn new(workers: usize) -> io::Result<Pool> {
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..workers {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("compress-{i}"))
                .spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })?;
        }
        Ok(Pool { jobs, workers })
    }

    /// The process's pool: one worker per core.
    pub(crate) fn shared() -> io::Result<&'static Pool> {
        static POOL: OnceLock<Pool> = OnceLock::new();
        if let Some(p) = POOL.get() {
            return Ok(p);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pool = Pool::new(cores)?;
        Ok(POOL.get_or_init(|| pool))
    }

    fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> io::Result<mpsc::Receiver<T>> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| io::Error::other("the compression threads stopped"))?;
        Ok(rx)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The digest and size of what [`compress`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub digest: Digest,
    pub size: u64,
}

/// Compresses all of `input` into `out` with `codec` on `pool`, hashing what is written;
/// `counted` sees the input bytes as they are read (progress). An empty input still yields one
/// valid (empty) member.
pub(crate) fn compress(
    pool: &Pool,
    codec: Codec,
    input: &mut dyn Read,
    out: &mut dyn Write,
    counted: &dyn Fn(u64),
) -> io::Result<Written> {
    let chunk_size = codec.chunk_size();
    let in_flight = pool.workers.min(MAX_COUNTED_WORKERS) + SPARE_CHUNKS;
    let mut pending: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>> = VecDeque::new();
    let mut hasher = Hasher::new();
    let mut write_next = |pending: &mut VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>| {
        let rx = pending.pop_front().expect("a chunk is pending");
        let bytes = rx
            .recv()
            .map_err(|_| io::Error::other("a compression thread failed"))??;
        out.write_all(&bytes)?;
        hasher.update(&bytes);
        io::Result::Ok(())
    };
    let mut first = true;
    loop {
        let mut chunk = vec![0u8; chunk_size];
        let n = read_full(input, &mut chunk)?;
        if n == 0 && !first {
            break;
        }
        first = false;
        chunk.truncate(n);
        counted(n as u64);
        pending.push_back(pool.submit(move || codec.compress_chunk(&chunk))?);
        while pending.len() >= in_flight {
            write_next(&mut pending)?;
        }
        if n < chunk_size {
            break;
        }
    }
    while !pending.is_empty() {
        write_next(&mut pending)?;
    }
    out.flush()?;
    let size = hasher.len();
    Ok(Written {
        digest: hasher.finish(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text-like bytes spanning several chunks, with a partial last one.
    fn sample(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        while v.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            v.extend_from_slice(format!("line {} value {}\n", x % 1000, x >> 16).as_bytes());
        }
        v.truncate(len);
        v
    }

    fn run(pool: &Pool, codec: Codec, data: &[u8]) -> (Vec<u8>, Written) {
        let mut out = Vec::new();
        let counted = std::sync::atomic::AtomicU64::new(0);
        let w = compress(pool, codec, &mut &data[..], &mut out, &|n| {
            counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(counted.into_inner(), data.len() as u64);
        assert_eq!(w.size, out.len() as u64);
        assert_eq!(w.digest, Digest::sha256_of(&out));
        (out, w)
    }

    fn decompress(codec: Codec, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match codec {
            Codec::Gzip => flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap(),
            Codec::Zstd => zstd::stream::read::Decoder::new(bytes)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap(),
        };
        out
    }

    #[test]
    fn output_is_the_same_whatever_the_worker_count_and_reads_back() {
        let one = Pool::new(1).unwrap();
        let three = Pool::new(3).unwrap();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let data = sample(codec.chunk_size() * 3 + 12345);
            let (a, wa) = run(&one, codec, &data);
            let (b, wb) = run(&three, codec, &data);
            assert_eq!(a, b, "{codec:?}: bytes depend on the worker count");
            assert_eq!(wa, wb);
            assert!(a.len() < data.len() / 2, "{codec:?} did not compress");
            assert_eq!(decompress(codec, &a), data, "{codec:?} round trip");
        }
    }

    #[test]
    fn gzip_members_carry_no_time_or_name() {
        let pool = Pool::new(2).unwrap();
        let data = sample(GZIP_CHUNK + 1);
        let (out, _) = run(&pool, Codec::Gzip, &data);
        assert_eq!(
            &out[..4],
            &[0x1f, 0x8b, 8, 0],
            "deflate, no FNAME/FEXTRA flags"
        );
        assert_eq!(&out[4..8], &[0, 0, 0, 0], "mtime is zero");
        assert_eq!(out[9], 255, "OS unknown");
        // Two members: the second header starts where the first ends.
        let mut d = flate2::read::GzDecoder::new(&out[..]);
        let mut first = Vec::new();
        d.read_to_end(&mut first).unwrap();
        assert_eq!(first.len(), GZIP_CHUNK);
    }

    #[test]
    fn incompressible_chunks_are_stored_and_read_back() {
        let pool = Pool::new(2).unwrap();
        // Pseudo-random bytes (xorshift): deflate cannot shrink them.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut data: Vec<u8> = (0..GZIP_CHUNK * 2)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        data.extend_from_slice(&sample(GZIP_CHUNK));
        let (out, _) = run(&pool, Codec::Gzip, &data);
        assert_eq!(decompress(Codec::Gzip, &out), data);
        // Two stored members (5 bytes of block header per 64 KiB, 18 of gzip framing), then text.
        let stored = 2 * (GZIP_CHUNK + GZIP_CHUNK / 65535 * 5 + 5 + 18);
        assert!(out.len() < stored + GZIP_CHUNK / 3, "{} bytes", out.len());
        assert!(out.len() >= 2 * GZIP_CHUNK, "random bytes shrank?");
        assert!(!compressible(&data[..GZIP_CHUNK]).unwrap());
        assert!(compressible(&data[2 * GZIP_CHUNK..]).unwrap());
    }

    #[test]
    fn empty_and_exact_chunk_inputs() {
        let pool = Pool::new(2).unwrap();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let (out, _) = run(&pool, codec, b"");
            assert!(
                !out.is_empty(),
                "{codec:?}: an empty layer is one empty member"
            );
            assert_eq!(decompress(codec, &out), b"");
            let data = sample(codec.chunk_size() * 2);
            let (out, _) = run(&pool, codec, &data);
            assert_eq!(decompress(codec, &out), data);
        }
    }

    #[test]
    fn read_errors_propagate() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        let pool = Pool::new(1).unwrap();
        let err = compress(&pool, Codec::Gzip, &mut Failing, &mut Vec::new(), &|_| {}).unwrap_err();
        assert_eq!(err.to_string(), "disk gone");
    }
}
