//! Artifact mode: layers carrying an `org.opencontainers.image.title` annotation are files, written
//! as `<root>/<title>` — what `oras pull` does. A title comes from the manifest, which we do not
//! trust any more than a tar name: it must be a plain relative path (no `..`, no leading `/`, no
//! NUL), and its parent is resolved inside the root like a tar entry's, so a symlink left by an
//! earlier layer cannot carry a write outside.
//!
//! A tar (`+gzip`, `+zstd`) layer annotated `io.deis.oras.content.unpack: "true"` is ORAS's packed
//! directory: its entries are named `<title>/…` and are extracted, with every check of `layer.rs`,
//! into `<root>/<title>`; an entry outside `<title>/` is refused, as `oras` refuses it.
//!
//! On error, what this call wrote is removed, each path re-checked component by component so the
//! removal itself never follows a symlink a hostile layer planted.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::compress::{self, CopyError, HashingReader, COPY_BUFFER};
use super::layer::RealFs;
use super::path::{self, ResolveError};
use super::{sys, unpack_layer, Error, Layer, Options, UnpackStats};
use crate::oci::{Compression, ANNOTATION_TITLE};

/// ORAS's annotation for a layer that is a packed directory.
pub const ANNOTATION_UNPACK: &str = "io.deis.oras.content.unpack";

/// Writes each titled layer as `root/<title>` (`root` is created if absent; existing files are
/// never overwritten); layers without a title are skipped. Returns the paths written, in order.
pub fn write_artifact_files<R: Read + Send>(
    root: &Path,
    layers: impl IntoIterator<Item = Result<Layer<R>, Error>>,
) -> Result<Vec<PathBuf>, Error> {
    let io_err = |action, source| Error::Io {
        path: root.to_path_buf(),
        action,
        source,
    };
    fs::create_dir_all(root).map_err(|e| io_err("create the destination", e))?;
    let root = fs::canonicalize(root).map_err(|e| io_err("open the destination", e))?;
    let mut guard = Guard {
        root: &root,
        written: Vec::new(),
    };
    let mut titles = HashSet::new();
    let mut out = Vec::new();
    for layer in layers {
        let layer = layer?;
        let Some(title) = layer.descriptor.annotation(ANNOTATION_TITLE) else {
            continue;
        };
        let title = title.to_string();
        let name = layer.descriptor.digest.to_string();
        let refuse = |reason| Error::Title {
            layer: name.clone(),
            title: title.clone(),
            reason,
        };
        let clean = clean_title(&title).map_err(refuse)?;
        if !titles.insert(clean.clone()) {
            return Err(refuse("another layer has the same title"));
        }
        let (dir, file) = path::split(&clean).expect("a clean title is not empty");
        let unpack = layer.descriptor.annotation(ANNOTATION_UNPACK) == Some("true")
            && Compression::of_media_type(&layer.descriptor.media_type).is_some();
        let parent = resolve_parent(&root, dir, !unpack).map_err(|source| Error::Io {
            path: root.join(&clean),
            action: "resolve the title's directory",
            source,
        })?;
        let rel = parent.join(file);
        if fs::symlink_metadata(root.join(&rel)).is_ok() {
            return Err(refuse("a file by that name already exists"));
        }
        guard.written.push(rel.clone());
        if unpack {
            let opts = Options::rootless();
            let mut stats = UnpackStats::default();
            unpack_layer(
                &super::RootDir::open(&root)?,
                layer,
                &opts,
                &mut stats,
                Some(&clean),
            )?;
        } else {
            write_blob(&root.join(&rel), layer)?;
        }
        out.push(root.join(&rel));
    }
    guard.written.clear();
    Ok(out)
}

/// A title as a clean relative path: `a/b.txt`, `./a//b` are fine; `..`, `/etc/x`, NUL and empty
/// components-only titles are not.
fn clean_title(title: &str) -> Result<PathBuf, &'static str> {
    if title.contains('\0') {
        return Err("the title contains a NUL byte");
    }
    if title.starts_with('/') {
        return Err("the title is an absolute path");
    }
    if title.split('/').any(|c| c == "..") {
        return Err("the title contains \"..\"");
    }
    match path::clean(title.as_bytes()) {
        Ok(p) if p.as_os_str().is_empty() => Err("the title names no file"),
        Ok(p) => Ok(p),
        Err(_) => Err("the title names no file"),
    }
}

/// Resolves `dir` inside `root` (symlinks confined); with `create`, makes what is missing.
fn resolve_parent(root: &Path, dir: &Path, create: bool) -> io::Result<PathBuf> {
    let resolved = path::resolve(&mut RealFs(root), dir).map_err(ResolveError::into_io)?;
    if create && !resolved.complete() {
        let mut cur: PathBuf = resolved.path.iter().take(resolved.existing).collect();
        for part in resolved.path.iter().skip(resolved.existing) {
            cur.push(part);
            fs::create_dir(root.join(&cur))?;
        }
    }
    Ok(resolved.path)
}

/// Writes a blob as-is (no decompression), checking its digest and size; a bad blob is removed.
fn write_blob<R: Read>(dest: &Path, layer: Layer<R>) -> Result<(), Error> {
    let name = layer.descriptor.digest.to_string();
    let io_err = |action, source| Error::Io {
        path: dest.to_path_buf(),
        action,
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dest)
        .map_err(|e| io_err("create the file", e))?;
    let mut blob = HashingReader::new(layer.reader, Some(&layer.descriptor.digest));
    match compress::copy(&mut blob, &mut file, &mut vec![0; COPY_BUFFER]) {
        Ok(_) => {}
        Err(CopyError::Read(source)) => {
            return Err(Error::Read {
                layer: name,
                source,
            })
        }
        Err(CopyError::Write(e)) => return Err(io_err("write the file", e)),
    }
    let (_, digest, size) = blob.finish();
    compress::check_blob(&layer.descriptor, digest, size)
}

/// Removes, on error, what this call wrote.
struct Guard<'a> {
    root: &'a Path,
    written: Vec<PathBuf>,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        for rel in self.written.iter().rev() {
            remove_confined(self.root, rel);
        }
    }
}

/// Removes `root/rel` only if no component on the way is (any longer) a symlink or a non-directory.
fn remove_confined(root: &Path, rel: &Path) {
    let mut cur = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(part) = part else {
            return;
        };
        cur.push(part);
        let Ok(m) = fs::symlink_metadata(&cur) else {
            return;
        };
        if i + 1 == parts.len() {
            let _ = if m.is_dir() {
                sys::remove_tree(&cur)
            } else {
                fs::remove_file(&cur)
            };
        } else if !m.is_dir() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        for (t, want) in [
            ("a.txt", "a.txt"),
            ("dir/a.txt", "dir/a.txt"),
            ("./a//b", "a/b"),
        ] {
            assert_eq!(clean_title(t), Ok(PathBuf::from(want)), "{t}");
        }
        for t in [
            "",
            ".",
            "./",
            "../x",
            "a/../../x",
            "a/../b",
            "/etc/x",
            "a\0b",
            "..",
        ] {
            assert!(clean_title(t).is_err(), "{t:?}");
        }
    }

    #[test]
    fn removal_never_follows_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("f"), "keep").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        remove_confined(&root, Path::new("a/f"));
        assert!(outside.join("f").exists());
        fs::create_dir(root.join("d")).unwrap();
        fs::write(root.join("d/f"), "x").unwrap();
        remove_confined(&root, Path::new("d/f"));
        assert!(!root.join("d/f").exists());
    }
}
