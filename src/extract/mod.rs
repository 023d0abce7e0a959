//! The core of `gdcloud-artifacts extract`: an image's root filesystem rebuilt in a directory,
//! layer by layer, to the tree `umoci unpack` produces; an artifact's files written by title. (An
//! image re-packed as a `docker save` tarball takes these layers too; it is written beside its
//! reader, in `layout::docker_archive`.)
//!
//! Layers come from registries and files we do not trust, so the one promise this module keeps
//! whatever a layer holds (`..`, absolute names, symlinks or hard links that point out, whiteouts
//! of outside paths, a symlink then a write through it): nothing outside the destination is
//! created, changed or removed. Hostile entries are refused by name (tar-slip, see `path.rs`);
//! symlinks are confined to the root the way `filepath-securejoin` does it (CVE-2019-14271,
//! CVE-2018-15664 and their kin). Everything streams: memory does not grow with a layer's size.
//!
//! Files: `path.rs` (name cleaning, resolution inside the root), `whiteout.rs`, `layer/` (one
//! tar stream applied), `entry.rs` (an entry's metadata), `compress.rs` (decoders, digests),
//! `artifact.rs`, `sys.rs` (the system calls `std` lacks).

mod artifact;
pub(crate) mod compress;
mod entry;
mod layer;
mod path;
mod sys;
mod whiteout;

use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use artifact::{write_artifact_files, ANNOTATION_UNPACK};
pub use compress::decompress;

use crate::oci::{Descriptor, Digest};
use compress::HashingReader;
use layer::LayerExtractor;

/// How entries' owners, device nodes and privileges are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Give files the uid/gid the tar says (else they belong to whoever runs us). Default: true
    /// when running as root.
    pub same_owner: bool,
    /// Create character and block devices (else they are skipped, as `umoci --rootless` cannot
    /// make them either). Default: true when running as root.
    pub allow_devices: bool,
    /// Drop what would grant privileges: setuid and setgid bits of non-directories, and
    /// `security.*` / `trusted.*` extended attributes (file capabilities among them). Default:
    /// false, as umoci keeps them.
    pub drop_privileges: bool,
}

impl Default for Options {
    fn default() -> Self {
        let root = sys::is_root();
        Options {
            same_owner: root,
            allow_devices: root,
            drop_privileges: false,
        }
    }
}

impl Options {
    /// For content not to be trusted with root's powers (`extract --rootless`, artifact
    /// archives): files belong to the caller and no device nodes are made, like
    /// `umoci unpack --rootless`; as root, setuid/setgid bits and privileged extended
    /// attributes are dropped too, since the caller's files would be root's.
    pub fn rootless() -> Self {
        Options {
            same_owner: false,
            allow_devices: false,
            drop_privileges: sys::is_root(),
        }
    }
}

/// What [`unpack_rootfs`] did, summed over all layers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files, fifos and device nodes created.
    pub files: u64,
    /// Directory entries applied (created or updated).
    pub dirs: u64,
    /// Symlinks and hard links created.
    pub links: u64,
    /// Whiteout entries applied.
    pub whiteouts: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// One layer to apply: its descriptor (media type, digest, size), the uncompressed digest the
/// image config lists for it, and a reader of the blob's (compressed) bytes.
pub struct Layer<R> {
    pub descriptor: Descriptor,
    /// From the config's `rootfs.diff_ids`; verified on the uncompressed stream when `Some`.
    pub diff_id: Option<Digest>,
    pub reader: R,
}

/// Everything that can go wrong; each variant names the layer (by digest), the tar entry or the
/// path involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("layer {layer}: refusing tar entry {entry:?}: {reason}; the image is corrupt or malicious, do not use it")]
    HostileEntry {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    #[error("layer {layer}: {source}; the image is corrupt or malicious, do not use it")]
    HostileRecords {
        layer: String,
        #[source]
        source: crate::tar_limit::RecordsTooLarge,
    },
    #[error("layer {layer}: tar entry {entry:?} has unsupported type {kind:?}; only files, directories, links, fifos and devices can be extracted")]
    UnsupportedEntry {
        layer: String,
        entry: String,
        kind: char,
    },
    #[error("layer {layer}: tar entry {entry:?} holds {actual} bytes but its header says {expected}; the layer is truncated, pull the image again")]
    ShortEntry {
        layer: String,
        entry: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {layer}: tar entry {entry:?}: cannot {action}: {source}")]
    Entry {
        layer: String,
        entry: String,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: reading the layer: {source}; the blob is corrupt or truncated, pull the image again")]
    Read {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: {what} digest is {actual} but {expected} was expected; the blob is corrupt, pull the image again")]
    Digest {
        layer: String,
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer}: the blob is {actual} bytes but its descriptor says {expected}; the blob is corrupt, pull the image again")]
    Size {
        layer: String,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported layer media type {media_type:?}: only tar, tar+gzip and tar+zstd layers can be extracted")]
    MediaType { media_type: String },
    #[error("artifact layer {layer}: refusing title {title:?}: {reason}; the artifact is malformed or malicious, do not use it")]
    Title {
        layer: String,
        title: String,
        reason: &'static str,
    },
    #[error("destination {} is not an empty directory: choose a new or empty directory", path.display())]
    NotEmpty { path: PathBuf },
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("image config: {0}; the config blob is corrupt")]
    Config(#[source] serde_json::Error),
    #[error(
        "image config lists {config} diff_ids but {layers} layers were given; the image is corrupt"
    )]
    LayerCount { config: usize, layers: usize },
    #[error("writing the docker archive: {0}; check the space left where it is written")]
    Write(#[source] io::Error),
    /// A failure of the caller's, for a layer (a blob that cannot be opened, a media type it
    /// refuses), carried through the `layers` iterator.
    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Applies every layer in order into `root`, which is created if absent and must otherwise be an
/// empty directory. Each layer is decompressed by media type, its blob digest and size and (when
/// given) its diff_id verified. On error, what was built under `root` is removed (and `root`
/// itself when we created it); nothing outside `root` is touched.
pub fn unpack_rootfs<R: Read + Send>(
    root: &Path,
    layers: impl IntoIterator<Item = Result<Layer<R>, Error>>,
    opts: &Options,
) -> Result<UnpackStats, Error> {
    let guard = RootGuard::prepare(root)?;
    let mut stats = UnpackStats::default();
    for layer in layers {
        unpack_layer(&guard.dir, layer?, opts, &mut stats, None)?;
    }
    guard.disarm();
    Ok(stats)
}

/// Applies one uncompressed tar stream onto the existing directory `root`; `layer_name` names it
/// in errors. Unlike [`unpack_rootfs`], nothing is verified or cleaned up.
pub fn apply_layer(
    root: &Path,
    tar_stream: impl Read,
    opts: &Options,
    layer_name: &str,
) -> Result<(), Error> {
    let root = RootDir::open(root)?;
    let mut stats = UnpackStats::default();
    LayerExtractor::new(&root, opts, layer_name, &mut stats, None)?.apply(tar_stream)?;
    Ok(())
}

/// Decompresses, applies and verifies one layer; `prefix` restricts entries to a subtree
/// (artifact directories).
pub(crate) fn unpack_layer<R: Read + Send>(
    root: &RootDir,
    layer: Layer<R>,
    opts: &Options,
    stats: &mut UnpackStats,
    prefix: Option<&Path>,
) -> Result<(), Error> {
    let name = layer.descriptor.digest.to_string();
    let Layer {
        descriptor,
        diff_id: expected_diff_id,
        reader,
    } = layer;
    // Two stages on two cores: this thread applies the tar while a second one reads, hashes and
    // decompresses the blob (the CPU-heavy half). A small bounded queue keeps memory flat.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(PIPE_DEPTH);
        let producer = scope.spawn({
            let name = name.clone();
            let descriptor = &descriptor;
            let expected_diff_id = expected_diff_id.as_ref();
            move || -> Result<(Digest, u64, Digest), Error> {
                let mut blob = HashingReader::new(reader, Some(&descriptor.digest));
                let diff_id = {
                    let stream = decompress(&descriptor.media_type, &mut blob).map_err(|e| {
                        Error::Layer {
                            layer: name.clone(),
                            source: Box::new(e),
                        }
                    })?;
                    let mut tar = HashingReader::new(stream, expected_diff_id);
                    loop {
                        let mut buf = vec![0u8; PIPE_CHUNK];
                        let n = match read_full(&mut tar, &mut buf) {
                            Ok(n) => n,
                            Err(e) => {
                                let kind = e.kind();
                                let _ = tx.send(Err(io::Error::new(kind, e.to_string())));
                                return Err(Error::Read {
                                    layer: name,
                                    source: e,
                                });
                            }
                        };
                        if n == 0 {
                            break;
                        }
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            // The extractor stopped (it has its own error to report).
                            break;
                        }
                    }
                    tar.finish().1
                };
                blob.drain().map_err(|source| Error::Read {
                    layer: name.clone(),
                    source,
                })?;
                let (_, digest, size) = blob.finish();
                Ok((digest, size, diff_id))
            }
        });
        let mut pipe = PipeReader {
            rx,
            current: Vec::new(),
            pos: 0,
        };
        let applied =
            LayerExtractor::new(root, opts, &name, stats, prefix).and_then(|x| x.apply(&mut pipe));
        let drained = applied.and_then(|()| {
            io::copy(&mut pipe, &mut io::sink())
                .map(|_| ())
                .map_err(|source| Error::Read {
                    layer: name.clone(),
                    source,
                })
        });
        drop(pipe);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(Error::Read {
                layer: name.clone(),
                source: io::Error::other("the decompression thread panicked"),
            })
        });
        // The extractor's error explains more than the producer's "receiver gone".
        drained?;
        let (digest, size, diff_id) = produced?;
        compress::check_blob(&descriptor, digest, size)?;
        compress::check_diff_id(&descriptor, expected_diff_id.as_ref(), diff_id)
    })
}

/// Bytes per piece handed between the two stages, and pieces in flight.
const PIPE_CHUNK: usize = 256 * 1024;
const PIPE_DEPTH: usize = 8;

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The extractor's end of the pipe: a `Read` over the pieces the producer sends.
struct PipeReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.recv() {
                Ok(Ok(piece)) => {
                    self.current = piece;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The destination, opened once: every later operation is relative to this fd (through
/// `pathrs::Root`, `*at` calls on fds it resolved, or `/proc/self/fd`), so renaming or replacing
/// the path (or anything under it) while we work cannot send a write elsewhere.
pub(crate) struct RootDir {
    /// As the caller named it, for messages (and to remove a root we created).
    pub(crate) path: PathBuf,
    root: pathrs::Root,
    /// `/proc/self/fd/N` of the root, where `path::resolve` looks names up.
    pub(crate) lookup: PathBuf,
}

impl RootDir {
    pub(crate) fn open(path: &Path) -> Result<RootDir, Error> {
        let err = |source| Error::Io {
            path: path.to_path_buf(),
            action: "open the destination",
            source,
        };
        // Followed as the caller named it, once; a directory or nothing.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(err)?;
        let root = pathrs::Root::from_fd(std::os::fd::OwnedFd::from(file));
        let lookup = sys::proc_path(root.as_fd());
        Ok(RootDir {
            path: path.to_path_buf(),
            root,
            lookup,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// An `O_PATH` fd of the directory `rel` (relative, cleaned), resolved inside the root by
    /// `pathrs`: `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` where the kernel has it, else
    /// pathrs' userspace resolver that checks each step. The last component is not followed.
    pub(crate) fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let handle = self.root.resolve_nofollow(rel).map_err(|e| {
            let kind = match e.kind() {
                pathrs::error::ErrorKind::OsError(Some(n)) => {
                    io::Error::from_raw_os_error(n).kind()
                }
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, e.to_string())
        })?;
        let fd = OwnedFd::from(handle);
        if !sys::stat_fd(fd.as_fd())?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(fd)
    }
}

/// Owns the destination while layers are applied: removes what was built if dropped armed,
/// through the root's fd (never by a path that could have been replaced meanwhile).
struct RootGuard {
    dir: RootDir,
    created: bool,
    armed: bool,
}

impl RootGuard {
    fn prepare(root: &Path) -> Result<RootGuard, Error> {
        let io_err = |action, source| Error::Io {
            path: root.to_path_buf(),
            action,
            source,
        };
        let created = match fs::symlink_metadata(root) {
            Ok(m) if m.is_dir() => false,
            // A symlink to a directory: allowed, checked once opened.
            Ok(m) if m.file_type().is_symlink() => false,
            Ok(_) => {
                return Err(Error::NotEmpty {
                    path: root.to_path_buf(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(root).map_err(|e| io_err("create the destination", e))?;
                true
            }
            Err(e) => return Err(io_err("inspect the destination", e)),
        };
        let dir = RootDir::open(root)?;
        let mut entries =
            fs::read_dir(&dir.lookup).map_err(|e| io_err("read the destination", e))?;
        if entries.next().is_some() {
            return Err(Error::NotEmpty {
                path: root.to_path_buf(),
            });
        }
        Ok(RootGuard {
            dir,
            created,
            armed: true,
        })
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(entries) = fs::read_dir(&self.dir.lookup) {
            for entry in entries.flatten() {
                let _ = sys::remove_at(self.dir.fd(), &entry.file_name());
            }
        }
        if self.created {
            // Only ever removes an empty directory.
            let _ = fs::remove_dir(&self.dir.path);
        }
    }
}
