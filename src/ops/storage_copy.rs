//! `gdcloud storage cp` and `ls`: objects between S3 and local files, fast and safe.
//!
//! Downloads run as parallel ranged GETs pinned to the object's ETag, written in place into a hidden
//! temp file beside the target with a small sidecar recording the finished parts, so an interrupted
//! download resumes where it stopped; the file takes its final name only when complete and checked
//! (size always, MD5 when the ETag is a plain MD5). Uploads above the part size go multipart and are
//! aborted on failure, leaving no orphaned parts. Object keys never write outside DESTINATION.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use serde::{Deserialize, Serialize};

mod dest;

use super::storage_config::S3Settings;
use crate::http::TlsOptions;
use crate::progress::Progress;
use crate::s3::{self, CompletedPart, ObjectEntry};
use crate::text::Escaped;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    S3(Box<s3::Error>),
    #[error("{0} is not a location: use s3://BUCKET/KEY or a local path")]
    Location(String),
    #[error("object key {:?} would be written outside {} ({reason}); refused", Escaped(.key), shown(.dest))]
    HostileKey {
        key: String,
        dest: PathBuf,
        reason: &'static str,
    },
    #[error("copying several sources needs a directory (or an s3://BUCKET/PREFIX/) as DESTINATION, not {0}")]
    NotADirectory(String),
    #[error(transparent)]
    Destination(#[from] dest::Refusal),
    #[error("{0}: copy between S3 and local files only (one side must be s3://…)")]
    Unsupported(String),
    #[error("{} is a directory: add -r to copy it", shown(.path))]
    NeedsRecursive { path: PathBuf },
    #[error("{action} {}: {source}", shown(.path))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what} does not match the object ({detail}); the partial download was removed, run the command again", shown(.path))]
    Verify {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("{failed} of {total} copies failed (first: {first})")]
    SomeFailed {
        failed: usize,
        total: usize,
        first: String,
    },
}

/// A path for a message: it holds object keys, so control characters are made visible.
pub(crate) fn shown(p: &Path) -> std::borrow::Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    crate::text::escape_bytes(p.as_os_str().as_bytes())
}

impl From<s3::Error> for Error {
    fn from(e: s3::Error) -> Self {
        Error::S3(Box::new(e))
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub sources: Vec<String>,
    pub destination: String,
    pub recursive: bool,
    pub no_clobber: bool,
    pub continue_on_error: bool,
    pub concurrency: usize,
    pub part_size: u64,
    pub settings: S3Settings,
    pub insecure: bool,
    pub log_http: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub source: String,
    pub destination: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub source: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub copied: Vec<Item>,
    /// Targets left alone because of `-n`.
    pub skipped: Vec<Item>,
    pub failed: Vec<Failure>,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    S3 { bucket: String, key: String },
    Local(PathBuf),
}

fn parse_location(s: &str) -> Result<Location, Error> {
    if let Some(rest) = s.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Location(s.to_string()));
        }
        return Ok(Location::S3 {
            bucket: bucket.to_string(),
            key: key.to_string(),
        });
    }
    if s.contains("://") || s.is_empty() {
        return Err(Error::Location(s.to_string()));
    }
    Ok(Location::Local(PathBuf::from(s)))
}

/// `rel` (an object key, or its part below a prefix) as a path inside `dest`, or why it cannot be.
pub fn confined(dest: &Path, key: &str, rel: &str) -> Result<PathBuf, Error> {
    let hostile = |reason| Error::HostileKey {
        key: key.to_string(),
        dest: dest.to_path_buf(),
        reason,
    };
    if rel.is_empty() {
        return Err(hostile("it names no file"));
    }
    if rel.starts_with('/') {
        return Err(hostile("it is an absolute path"));
    }
    let path = Path::new(rel);
    let mut out = dest.to_path_buf();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(hostile("it climbs with ..")),
            _ => return Err(hostile("it is an absolute path")),
        }
    }
    if rel.contains('\0') {
        return Err(hostile("it holds a NUL byte"));
    }
    Ok(out)
}

fn basename(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

enum Job {
    Download {
        bucket: String,
        key: String,
        /// The directory the user named (DESTINATION, or the parent of a file DESTINATION);
        /// `target` is inside it, and nothing is written outside it.
        root: PathBuf,
        target: PathBuf,
    },
    Upload {
        path: PathBuf,
        bucket: String,
        key: String,
    },
    /// A listed object whose key would land outside DESTINATION: refused, and reported like a
    /// failed copy so `-c` still copies the rest.
    Refused {
        bucket: String,
        key: String,
        error: Option<Error>,
    },
}

impl Job {
    fn source(&self) -> String {
        match self {
            Job::Download { bucket, key, .. } | Job::Refused { bucket, key, .. } => {
                format!("s3://{bucket}/{key}")
            }
            Job::Upload { path, .. } => path.display().to_string(),
        }
    }
    fn destination(&self) -> String {
        match self {
            Job::Download { target, .. } => target.display().to_string(),
            Job::Refused { .. } => String::new(),
            Job::Upload { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

async fn list_all(
    client: &s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectEntry>, Error> {
    Ok(client.list_all(bucket, prefix, None).await?.objects)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let t = e.file_type().map_err(io_err("inspect", &p))?;
        if t.is_dir() {
            walk(&p, out)?;
        } else if t.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// What to copy where, one job per object or file.
async fn plan(client: &s3::Client, opts: &Options) -> Result<Vec<Job>, Error> {
    let dest = parse_location(&opts.destination)?;
    let many = opts.sources.len() > 1 || opts.recursive;
    let mut jobs = Vec::new();
    for src in &opts.sources {
        match (parse_location(src)?, &dest) {
            (Location::S3 { bucket, key }, Location::Local(dir)) => {
                if opts.recursive {
                    let prefix = if key.is_empty() || key.ends_with('/') {
                        key.clone()
                    } else {
                        format!("{key}/")
                    };
                    for obj in list_all(client, &bucket, &prefix).await? {
                        if obj.key.ends_with('/') {
                            continue;
                        }
                        match confined(dir, &obj.key, &obj.key[prefix.len()..]) {
                            Ok(target) => jobs.push(Job::Download {
                                bucket: bucket.clone(),
                                key: obj.key,
                                root: dir.clone(),
                                target,
                            }),
                            Err(e) => jobs.push(Job::Refused {
                                bucket: bucket.clone(),
                                key: obj.key,
                                error: Some(e),
                            }),
                        }
                    }
                } else {
                    let into_dir = dir.is_dir() || opts.destination.ends_with('/') || many;
                    let (root, target) = if into_dir {
                        (dir.clone(), confined(dir, &key, basename(&key))?)
                    } else {
                        // The key's own name is not used, but a hostile one is still refused.
                        confined(Path::new("."), &key, basename(&key))?;
                        let parent = dir
                            .parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new("."));
                        (parent.to_path_buf(), dir.clone())
                    };
                    jobs.push(Job::Download {
                        bucket,
                        key,
                        root,
                        target,
                    });
                }
            }
            (Location::Local(path), Location::S3 { bucket, key }) => {
                let prefix_like = key.is_empty() || key.ends_with('/') || many;
                if path.is_dir() {
                    if !opts.recursive {
                        return Err(Error::NeedsRecursive { path });
                    }
                    let base = if key.is_empty() || key.ends_with('/') {
                        key.clone()
                    } else {
                        format!("{key}/")
                    };
                    let mut files = Vec::new();
                    walk(&path, &mut files)?;
                    for f in files {
                        let rel = f
                            .strip_prefix(&path)
                            .unwrap_or(&f)
                            .to_string_lossy()
                            .replace('\\', "/");
                        jobs.push(Job::Upload {
                            path: f.clone(),
                            bucket: bucket.clone(),
                            key: format!("{base}{rel}"),
                        });
                    }
                } else {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let key = if prefix_like {
                        format!(
                            "{}{}{name}",
                            key,
                            if key.is_empty() || key.ends_with('/') {
                                ""
                            } else {
                                "/"
                            }
                        )
                    } else {
                        key.clone()
                    };
                    jobs.push(Job::Upload {
                        path,
                        bucket: bucket.clone(),
                        key,
                    });
                }
            }
            (Location::Local(_), Location::Local(_))
            | (Location::S3 { .. }, Location::S3 { .. }) => {
                return Err(Error::Unsupported(src.clone()))
            }
        }
    }
    if opts.sources.len() > 1 {
        if let Location::Local(d) = &dest {
            if !d.is_dir() && !opts.destination.ends_with('/') {
                return Err(Error::NotADirectory(opts.destination.clone()));
            }
        }
    }
    Ok(jobs)
}

pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let tls = TlsOptions {
        insecure: opts.insecure,
        ca_files: opts.settings.ca_file.iter().cloned().collect(),
        log_http: opts.log_http,
    };
    let client = s3::Client::new(
        &opts.settings.endpoint,
        &opts.settings.access_key_id,
        opts.settings.secret_access_key.clone(),
        None,
        &tls,
    )?;
    let jobs = plan(&client, opts).await?;
    let mut report = Report::default();
    let total = jobs.len();
    for mut job in jobs {
        let result = match &mut job {
            Job::Download {
                bucket,
                key,
                root,
                target,
            } => download(&client, bucket, key, root, target, opts, progress).await,
            Job::Upload { path, bucket, key } => {
                upload(&client, path, bucket, key, opts, progress).await
            }
            Job::Refused { error, .. } => Err(error.take().expect("a refused job holds its error")),
        };
        let item = |bytes| Item {
            source: job.source(),
            destination: job.destination(),
            bytes,
        };
        match result {
            Ok(Some(n)) => {
                report.bytes += n;
                report.copied.push(item(n));
            }
            Ok(None) => report.skipped.push(item(0)),
            Err(e) if opts.continue_on_error => report.failed.push(Failure {
                source: job.source(),
                error: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    progress.finish();
    if !report.failed.is_empty() && !opts.continue_on_error {
        let first = report.failed[0].error.clone();
        return Err(Error::SomeFailed {
            failed: report.failed.len(),
            total,
            first,
        });
    }
    Ok(report)
}

/// Which parts of a download are done, beside the temp file, so a re-run resumes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    etag: String,
    size: u64,
    part_size: u64,
    done: Vec<bool>,
}

const PART_ATTEMPTS: u32 = 4;

/// The smallest part worth a request of its own (aws-cli's default chunk size): below it the
/// per-request cost outweighs what one more parallel stream brings.
const MIN_PART: u64 = 8 << 20;

/// S3's limits on multipart uploads: parts of at least 5 MiB (but the last), at most 10,000 parts.
const MIN_UPLOAD_PART: u64 = 5 << 20;
const MAX_UPLOAD_PARTS: u64 = 10_000;

/// The part size for `size` bytes: enough parts to keep `concurrency` streams busy, none larger
/// than `max_part` (`--part-size-mib`) and none smaller than [`MIN_PART`] (or `max_part`, when the
/// user asked for smaller parts). A whole number of MiB, so parts line up with page-cache pages.
fn part_size_for(size: u64, concurrency: usize, max_part: u64) -> u64 {
    let even = size
        .div_ceil(concurrency.max(1) as u64)
        .next_multiple_of(1 << 20);
    even.clamp(MIN_PART.min(max_part), max_part)
}

/// [`part_size_for`] within S3's multipart limits.
fn upload_part_size(size: u64, concurrency: usize, max_part: u64) -> u64 {
    part_size_for(size, concurrency, max_part.max(MIN_UPLOAD_PART))
        .max(size.div_ceil(MAX_UPLOAD_PARTS).next_multiple_of(1 << 20))
}

/// Downloads one object; `None` when `-n` left an existing target alone.
///
/// Everything written goes through [`dest::Dir`], relative to the open destination directory:
/// see there why no path is trusted.
async fn download(
    client: &s3::Client,
    bucket: &str,
    key: &str,
    root: &Path,
    target: &Path,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Option<u64>, Error> {
    // A look only, to skip the transfer: the rename below enforces -n.
    if opts.no_clobber && target.symlink_metadata().is_ok() {
        return Ok(None);
    }
    let info = client.head_object(bucket, key).await?;
    let rel = target.strip_prefix(root).unwrap_or(target);
    let name = rel.file_name().ok_or_else(|| Error::HostileKey {
        key: key.to_string(),
        dest: root.to_path_buf(),
        reason: "it names no file",
    })?;
    let dir = dest::Dir::open_named(root)?.subdir(rel.parent().unwrap_or(Path::new("")))?;
    let (partial_name, sidecar_name) = dest::temp_names(name);
    let partial = dir.path_of(&partial_name);
    let part_size = part_size_for(info.size, opts.concurrency, opts.part_size.max(1 << 20));
    let parts_of = |part_size: u64| info.size.div_ceil(part_size).max(1) as usize;
    // A resumed download keeps the parts it started with, whatever the flags are now. Only
    // regular files of ours are taken up again; anything else under these names is refused.
    let old_sidecar = dir.open_own(&sidecar_name)?;
    let old_partial = dir.open_own(&partial_name)?;
    let resumed = match (old_sidecar, old_partial) {
        (Some(sidecar), Some(file)) => crate::bounded::read(&sidecar, crate::bounded::STATE, "")
            .ok()
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok())
            .filter(|s| {
                s.etag == info.etag
                    && s.size == info.size
                    && s.part_size >= 1
                    && s.done.len() == parts_of(s.part_size)
            })
            .map(|state| (state, file, sidecar)),
        _ => None,
    };
    let (state, file, sidecar) = match resumed {
        Some(r) => r,
        None => {
            dir.remove(&partial_name);
            dir.remove(&sidecar_name);
            let file = dir.create_new(&partial_name)?;
            let sidecar = dir.create_new(&sidecar_name)?;
            let state = Sidecar {
                etag: info.etag.clone(),
                size: info.size,
                part_size,
                done: vec![false; parts_of(part_size)],
            };
            (state, file, sidecar)
        }
    };
    let part_size = state.part_size;
    let parts = state.done.len();
    file.set_len(info.size).map_err(io_err("size", &partial))?;
    let file = Arc::new(file);
    // The sidecar is rewritten in place under the lock, one part at a time.
    let state = Arc::new(Mutex::new((state, sidecar)));
    let label = crate::text::escape(&name.to_string_lossy()).into_owned();
    let bar = progress.blob(&label.chars().take(20).collect::<String>(), info.size);
    progress.expect(info.size);
    let todo: Vec<usize> = {
        let s = state.lock().expect("not poisoned");
        (0..parts).filter(|i| !s.0.done[*i]).collect()
    };
    bar.skip((parts - todo.len()) as u64 * part_size.min(info.size));
    let results: Vec<Result<u64, Error>> = stream::iter(todo)
        .map(|i| {
            let file = file.clone();
            let state = state.clone();
            let etag = info.etag.clone();
            let bar = &bar;
            let partial = &partial;
            async move {
                let start = i as u64 * part_size;
                let end = (start + part_size).min(info.size);
                if end == start {
                    return Ok(0);
                }
                let mut attempt = 0;
                let mut offset = start;
                loop {
                    let outcome: Result<(), Error> = async {
                        let dl = client
                            .get_range_if_match(bucket, key, offset, end - 1, &etag)
                            .await?;
                        let body = dl.into_stream();
                        let mut body = std::pin::pin!(body);
                        let mut floor = s3::RateFloor::new(bucket, key);
                        loop {
                            let chunk = tokio::select! {
                                biased;
                                c = body.next() => c,
                                r = floor.tick() => { r?; continue; }
                            };
                            let Some(chunk) = chunk else { break };
                            let chunk = chunk?;
                            file.write_all_at(&chunk, offset)
                                .map_err(io_err("write", partial))?;
                            offset += chunk.len() as u64;
                            floor.add(chunk.len());
                            bar.inc(chunk.len() as u64);
                        }
                        Ok(())
                    }
                    .await;
                    match outcome {
                        Ok(()) if offset >= end => break,
                        Ok(()) | Err(Error::S3(_)) if attempt + 1 < PART_ATTEMPTS => {
                            attempt += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt))
                                .await;
                        }
                        Ok(()) => {
                            return Err(Error::Verify {
                                path: partial.to_path_buf(),
                                what: "length",
                                detail: format!("part {i} ended early"),
                            })
                        }
                        Err(e) => return Err(e),
                    }
                }
                let mut s = state.lock().expect("not poisoned");
                s.0.done[i] = true;
                let snapshot = serde_json::to_vec(&s.0).expect("sidecar serializes");
                let _ =
                    s.1.write_all_at(&snapshot, 0)
                        .and_then(|()| s.1.set_len(snapshot.len() as u64));
                Ok(end - start)
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut transferred = 0;
    for r in results {
        transferred += r?;
    }
    bar.done();
    drop(state);
    let file = Arc::try_unwrap(file).map_err(|_| Error::Verify {
        path: partial.clone(),
        what: "state",
        detail: "still in use".into(),
    })?;
    let partial2 = partial.clone();
    let etag = info.etag.clone();
    let size = info.size;
    let verified = tokio::task::spawn_blocking(move || verify(file, &partial2, size, &etag))
        .await
        .map_err(|e| Error::Io {
            action: "verify",
            path: partial.clone(),
            source: std::io::Error::other(e.to_string()),
        })
        .and_then(|r| r);
    if let Err(e) = verified {
        dir.remove(&partial_name);
        dir.remove(&sidecar_name);
        return Err(e);
    }
    // rename(2) replaces the entry under the final name, a symlink included, never its target.
    match dir.rename(&partial_name, name, opts.no_clobber) {
        Ok(()) => {}
        Err(e) if opts.no_clobber && e.kind() == std::io::ErrorKind::AlreadyExists => {
            dir.remove(&partial_name);
            dir.remove(&sidecar_name);
            return Ok(None);
        }
        Err(e) => return Err(io_err("rename into place", target)(e)),
    }
    dir.remove(&sidecar_name);
    Ok(Some(transferred))
}

/// Size always; MD5 when the ETag is a plain MD5 (single-part uploads); then fsync.
fn verify(file: std::fs::File, path: &Path, size: u64, etag: &str) -> Result<(), Error> {
    let len = file.metadata().map_err(io_err("inspect", path))?.len();
    if len != size {
        return Err(Error::Verify {
            path: path.to_path_buf(),
            what: "size",
            detail: format!("{len} bytes, expected {size}"),
        });
    }
    let plain = etag.trim_matches('"');
    if plain.len() == 32 && plain.bytes().all(|b| b.is_ascii_hexdigit()) {
        use md5::{Digest, Md5};
        let mut hasher = Md5::new();
        let mut f = &file;
        f.seek(SeekFrom::Start(0)).map_err(io_err("read", path))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let got = hex::encode(hasher.finalize());
        if !got.eq_ignore_ascii_case(plain) {
            return Err(Error::Verify {
                path: path.to_path_buf(),
                what: "MD5",
                detail: format!("{got}, expected {plain}"),
            });
        }
    }
    file.sync_all().map_err(io_err("sync", path))
}

/// The MD5 of `len` bytes of `path` from `offset`, sent as `Content-MD5` so that the server
/// refuses bytes changed on the way (`BadDigest`), as aws-cli and rclone have it checked. The
/// bytes are read again for the upload, from the page cache.
async fn md5_of(path: &Path, offset: u64, len: u64) -> Result<[u8; 16], Error> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 16]> {
        use md5::{Digest, Md5};
        let mut file = std::fs::File::open(&owned)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; crate::body::PIECE];
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was being uploaded",
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        Ok(hasher.finalize().into())
    })
    .await
    .expect("hashing does not panic")
    .map_err(io_err("read", path))
}

/// `len` bytes of `path` from `offset`.
fn file_stream(
    path: PathBuf,
    offset: u64,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static {
    crate::body::from_reader(
        move || {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        },
        Some(len),
        |_| {},
    )
}

async fn upload(
    client: &s3::Client,
    path: &Path,
    bucket: &str,
    key: &str,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Option<u64>, Error> {
    let meta = std::fs::metadata(path).map_err(io_err("read", path))?;
    if meta.is_dir() {
        return Err(Error::NeedsRecursive {
            path: path.to_path_buf(),
        });
    }
    let size = meta.len();
    if opts.no_clobber {
        match client.head_object(bucket, key).await {
            Ok(_) => return Ok(None),
            Err(s3::Error::NoSuchKey { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let label = crate::text::escape(basename(key)).into_owned();
    let bar = progress.blob(&label.chars().take(20).collect::<String>(), size);
    progress.expect(size);
    // Up to the part-size cap, one PUT: its ETag is the plain MD5 a later download can check,
    // and servers that hash an upload serially (s3s-fs; many appliances) take it fastest.
    if size <= opts.part_size.max(MIN_UPLOAD_PART) {
        let md5 = md5_of(path, 0, size).await?;
        client
            .put_object(
                bucket,
                key,
                s3::Upload {
                    stream: file_stream(path.to_path_buf(), 0, size),
                    len: size,
                    md5: Some(md5),
                },
            )
            .await?;
        bar.inc(size);
        bar.done();
        return Ok(Some(size));
    }
    let part_size = upload_part_size(size, opts.concurrency, opts.part_size);
    let upload_id = client.create_multipart(bucket, key).await?;
    let parts = size.div_ceil(part_size);
    let results: Vec<Result<CompletedPart, Error>> = stream::iter(0..parts)
        .map(|i| {
            let upload_id = upload_id.clone();
            let bar = &bar;
            async move {
                let start = i * part_size;
                let len = part_size.min(size - start);
                let md5 = md5_of(path, start, len).await?;
                let mut attempt = 0;
                loop {
                    match client
                        .upload_part(
                            bucket,
                            key,
                            &upload_id,
                            (i + 1) as u32,
                            s3::Upload {
                                stream: file_stream(path.to_path_buf(), start, len),
                                len,
                                md5: Some(md5),
                            },
                        )
                        .await
                    {
                        Ok(etag) => {
                            bar.inc(len);
                            return Ok(CompletedPart {
                                part_number: (i + 1) as u32,
                                etag,
                            });
                        }
                        Err(e)
                            if attempt + 1 < PART_ATTEMPTS
                                && !matches!(e, s3::Error::Refused { .. }) =>
                        {
                            attempt += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt))
                                .await;
                        }
                        Err(e) => return Err(Error::from(e)),
                    }
                }
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut done = Vec::new();
    let mut failure = None;
    for r in results {
        match r {
            Ok(p) => done.push(p),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let completed = match failure {
        None => {
            done.sort_by_key(|p| p.part_number);
            client
                .complete_multipart(bucket, key, &upload_id, &done)
                .await
                .map_err(Error::from)
        }
        Some(e) => Err(e),
    };
    if let Err(e) = completed {
        // No orphaned parts: they cost storage and are invisible in listings.
        let _ = client.abort_multipart(bucket, key, &upload_id).await;
        return Err(e);
    }
    bar.done();
    Ok(Some(size))
}

/// One line of `ls`.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub key: String,
    pub size: Option<u64>,
    pub last_modified: Option<String>,
    /// A common prefix (a "directory"), not an object.
    pub prefix: bool,
}

pub async fn ls(
    settings: &S3Settings,
    url: &str,
    recursive: bool,
    insecure: bool,
    log_http: bool,
) -> Result<Vec<Listed>, Error> {
    let Location::S3 { bucket, key } = parse_location(url)? else {
        return Err(Error::Location(url.to_string()));
    };
    let tls = TlsOptions {
        insecure,
        ca_files: settings.ca_file.iter().cloned().collect(),
        log_http,
    };
    let client = s3::Client::new(
        &settings.endpoint,
        &settings.access_key_id,
        settings.secret_access_key.clone(),
        None,
        &tls,
    )?;
    let page = client
        .list_all(&bucket, &key, (!recursive).then_some("/"))
        .await?;
    let mut out = Vec::new();
    for p in page.common_prefixes {
        out.push(Listed {
            key: p,
            size: None,
            last_modified: None,
            prefix: true,
        });
    }
    for o in page.objects {
        out.push(Listed {
            key: o.key,
            size: Some(o.size),
            last_modified: o
                .last_modified
                .map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            prefix: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn part_sizes_keep_streams_busy_within_bounds() {
        // Large objects: the --part-size-mib cap.
        assert_eq!(part_size_for(1024 * MIB, 8, 64 * MIB), 64 * MIB);
        // Mid-size objects: split across the streams, not fetched whole on one.
        assert_eq!(part_size_for(64 * MIB, 8, 64 * MIB), 8 * MIB);
        assert_eq!(part_size_for(100 * MIB, 8, 64 * MIB), 13 * MIB);
        // Small objects: one part of at least MIN_PART.
        assert_eq!(part_size_for(3 * MIB, 8, 64 * MIB), 8 * MIB);
        assert_eq!(part_size_for(0, 8, 64 * MIB), 8 * MIB);
        // A user asking for parts below MIN_PART gets them.
        assert_eq!(part_size_for(64 * MIB, 8, MIB), MIB);
        assert_eq!(part_size_for(64 * MIB, 1, 16 * MIB), 16 * MIB);
    }

    #[test]
    fn upload_parts_respect_s3_limits() {
        assert_eq!(upload_part_size(64 * MIB, 8, MIB), 5 * MIB);
        // 5 TiB, S3's largest object, in at most 10,000 parts.
        let size = 5 * 1024 * 1024 * MIB;
        let part = upload_part_size(size, 8, 64 * MIB);
        assert!(size.div_ceil(part) <= MAX_UPLOAD_PARTS, "{part}");
        assert_eq!(part % MIB, 0);
    }

    #[test]
    fn keys_stay_inside() {
        let d = Path::new("/dest");
        assert_eq!(
            confined(d, "a/b", "a/b").unwrap(),
            PathBuf::from("/dest/a/b")
        );
        assert!(confined(d, "../x", "../x").is_err());
        assert!(confined(d, "a/../../x", "a/../../x").is_err());
        assert!(confined(d, "/etc/passwd", "/etc/passwd").is_err());
        assert!(confined(d, "", "").is_err());
        assert_eq!(confined(d, "./a", "./a").unwrap(), PathBuf::from("/dest/a"));
    }

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("s3://b/k/x").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "k/x".into()
            }
        );
        assert_eq!(
            parse_location("s3://b").unwrap(),
            Location::S3 {
                bucket: "b".into(),
                key: "".into()
            }
        );
        assert!(parse_location("s3:///k").is_err());
        assert!(parse_location("gs://b/k").is_err());
        assert_eq!(
            parse_location("out/x").unwrap(),
            Location::Local("out/x".into())
        );
    }
}
