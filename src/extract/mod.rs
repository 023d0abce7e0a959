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
//! `artifact.rs`, `pipe.rs` (a layer decompressed on a second core), `root.rs` (the destination,
//! held by fd, and the guard that removes a half-built one), `sys.rs` (the system calls `std`
//! lacks).

mod artifact;
pub(crate) mod compress;
mod entry;
mod layer;
mod path;
mod pipe;
mod root;
mod sys;
mod whiteout;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use artifact::{write_artifact_files, ANNOTATION_UNPACK};
pub use compress::decompress;

use crate::oci::{Descriptor, Digest};
use layer::LayerExtractor;
pub(crate) use root::RootDir;
use root::RootGuard;

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
        let root = crate::fs::is_root();
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
            drop_privileges: crate::fs::is_root(),
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
    // Two stages on two cores (see `pipe`): this thread applies the tar while a second one
    // decompresses.
    std::thread::scope(|scope| {
        let (tx, mut pipe) = pipe::pipe();
        let producer = scope.spawn(|| {
            pipe::produce(
                reader,
                &descriptor,
                expected_diff_id.as_ref(),
                name.clone(),
                tx,
            )
        });
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
