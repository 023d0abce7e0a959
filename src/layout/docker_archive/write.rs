//! Writing a `docker save` tarball (`--docker-executable`), which `docker load`, `podman load` and
//! `skopeo … docker-archive:` read.
//!
//! A tar header needs the entry's size before its data, and a layer's uncompressed size is not in
//! any descriptor. So each layer is decompressed once into an unnamed temporary file in `tmp_dir`
//! (hashing it on the way: the diff_id must match the config's, or loaders refuse the archive),
//! then copied into the output. Disk holds one layer at a time; memory holds one buffer.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;

use tar::{EntryType, Header};

use crate::extract::compress::{self, copy, CopyError, HashingReader, COPY_BUFFER};
use crate::extract::{decompress, Error, Layer};
use crate::oci::{Digest, ImageConfig};

use super::{ManifestEntry, MANIFEST_JSON};

/// Writes a `docker save`-format tarball of the image (`config`'s bytes, `layers` in order) to
/// `out`, tagged `repo_tags` (`name:tag`, as the caller wants `docker images` to show them). Each
/// layer's blob digest and diff_id are checked (against `Layer::diff_id` and the config's
/// `rootfs.diff_ids`).
pub fn write_docker_archive<R: Read, W: Write>(
    out: W,
    repo_tags: &[String],
    config: &[u8],
    layers: impl IntoIterator<Item = Result<Layer<R>, Error>>,
    tmp_dir: &Path,
) -> Result<(), Error> {
    let cfg: ImageConfig = serde_json::from_slice(config).map_err(Error::Config)?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(COPY_BUFFER, out));
    let (paths, top) = append_layers(&mut tar, &cfg, layers, tmp_dir)?;
    let config_name = format!("{}.json", Digest::sha256_of(config).hex());
    append_file(&mut tar, &config_name, config)?;
    let manifest = serde_json::to_vec(&[ManifestEntry {
        config: config_name,
        repo_tags: Some(repo_tags.to_vec()),
        layers: paths,
    }])
    .map_err(Error::Config)?;
    append_file(&mut tar, MANIFEST_JSON, &manifest)?;
    if let Some(top) = top {
        append_repositories(&mut tar, repo_tags, &top)?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(Error::Write)
}

/// Appends each layer as `<diff_id hex>/layer.tar` (once, however often the image lists it);
/// returns the layers' entry names in order and the top layer's directory.
fn append_layers<R: Read, W: Write>(
    tar: &mut tar::Builder<W>,
    cfg: &ImageConfig,
    layers: impl IntoIterator<Item = Result<Layer<R>, Error>>,
    tmp_dir: &Path,
) -> Result<(Vec<String>, Option<String>), Error> {
    let mut buf = vec![0; COPY_BUFFER];
    let mut paths = Vec::new();
    let mut dirs = HashSet::new();
    let mut top = None;
    for (i, layer) in layers.into_iter().enumerate() {
        let layer = layer?;
        let config_diff_id = cfg.rootfs.diff_ids.get(i);
        let (mut staged, diff_id, size) = stage(layer, config_diff_id, tmp_dir, &mut buf)?;
        let dir = diff_id.hex().to_string();
        if dirs.insert(dir.clone()) {
            append(
                tar,
                EntryType::Directory,
                &format!("{dir}/"),
                0,
                io::empty(),
            )?;
            staged.rewind().map_err(|source| Error::Io {
                path: tmp_dir.to_path_buf(),
                action: "read the staged layer",
                source,
            })?;
            let data = BufReader::with_capacity(COPY_BUFFER, staged);
            let path = format!("{dir}/layer.tar");
            append(tar, EntryType::Regular, &path, size, data)?;
        }
        paths.push(format!("{dir}/layer.tar"));
        top = Some(dir);
    }
    if paths.len() != cfg.rootfs.diff_ids.len() {
        return Err(Error::LayerCount {
            config: cfg.rootfs.diff_ids.len(),
            layers: paths.len(),
        });
    }
    Ok((paths, top))
}

/// `repositories`, for loaders older than `manifest.json`: each tag names the top layer.
fn append_repositories<W: Write>(
    tar: &mut tar::Builder<W>,
    repo_tags: &[String],
    top: &str,
) -> Result<(), Error> {
    let mut repositories: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (repo, tag) in repo_tags.iter().filter_map(|t| split_tag(t)) {
        repositories.entry(repo).or_default().insert(tag, top);
    }
    if repositories.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(&repositories).map_err(Error::Config)?;
    append_file(tar, "repositories", &json)
}

/// Decompresses a layer into an unnamed temporary file, verifying it; returns the file, the
/// diff_id and the uncompressed size.
fn stage<R: Read>(
    layer: Layer<R>,
    config_diff_id: Option<&Digest>,
    tmp_dir: &Path,
    buf: &mut [u8],
) -> Result<(File, Digest, u64), Error> {
    let name = layer.descriptor.digest.to_string();
    let mut staged = tempfile::tempfile_in(tmp_dir).map_err(|source| Error::Io {
        path: tmp_dir.to_path_buf(),
        action: "create a temporary file",
        source,
    })?;
    let expected = layer.diff_id.as_ref().or(config_diff_id);
    let mut blob = HashingReader::new(layer.reader, Some(&layer.descriptor.digest));
    let (diff_id, size) = {
        let stream =
            decompress(&layer.descriptor.media_type, &mut blob).map_err(|e| Error::Layer {
                layer: name.clone(),
                source: Box::new(e),
            })?;
        let mut plain = HashingReader::new(stream, expected);
        match copy(&mut plain, &mut staged, buf) {
            Ok(_) => {}
            Err(CopyError::Read(source)) => {
                return Err(Error::Read {
                    layer: name,
                    source,
                })
            }
            Err(CopyError::Write(source)) => {
                return Err(Error::Io {
                    path: tmp_dir.to_path_buf(),
                    action: "stage the layer",
                    source,
                })
            }
        }
        let (_, digest, size) = plain.finish();
        (digest, size)
    };
    blob.drain().map_err(|source| Error::Read {
        layer: name.clone(),
        source,
    })?;
    let (_, digest, blob_size) = blob.finish();
    compress::check_blob(&layer.descriptor, digest, blob_size)?;
    compress::check_diff_id(&layer.descriptor, layer.diff_id.as_ref(), diff_id.clone())?;
    compress::check_diff_id(&layer.descriptor, config_diff_id, diff_id.clone())?;
    Ok((staged, diff_id, size))
}

/// A regular file of `bytes`.
fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<(), Error> {
    append(tar, EntryType::Regular, path, bytes.len() as u64, bytes)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    kind: EntryType,
    path: &str,
    size: u64,
    data: impl Read,
) -> Result<(), Error> {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    tar.append_data(&mut header, path, data)
        .map_err(Error::Write)
}
/// `name:tag` → (`name`, `tag`); a missing tag is `latest`; digest references have no place in
/// `repositories`.
fn split_tag(reference: &str) -> Option<(&str, &str)> {
    if reference.contains('@') || reference.is_empty() {
        return None;
    }
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_start..].rfind(':') {
        Some(i) => Some((
            &reference[..name_start + i],
            &reference[name_start + i + 1..],
        )),
        None => Some((reference, "latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{Descriptor, OCI_LAYER_GZIP};

    #[test]
    fn tags() {
        assert_eq!(split_tag("alpine:3"), Some(("alpine", "3")));
        assert_eq!(
            split_tag("localhost:5000/a/b:v1"),
            Some(("localhost:5000/a/b", "v1"))
        );
        assert_eq!(
            split_tag("localhost:5000/a"),
            Some(("localhost:5000/a", "latest"))
        );
        assert_eq!(split_tag("a@sha256:00"), None);
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn archive_layout_and_checks() {
        let layer_tar = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            b.append_data(&mut h, "hi.txt", &b"hi"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let blob = gz(&layer_tar);
        let diff_id = Digest::sha256_of(&layer_tar);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        );
        let desc = Descriptor {
            media_type: OCI_LAYER_GZIP.into(),
            digest: Digest::sha256_of(&blob),
            size: blob.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        };
        let tmp = tempfile::tempdir().unwrap();
        let layer = |diff_id: Option<Digest>| {
            Ok(Layer {
                descriptor: desc.clone(),
                diff_id,
                reader: &blob[..],
            })
        };
        let mut out = Vec::new();
        write_docker_archive(
            &mut out,
            &["example/app:v1".to_string()],
            config.as_bytes(),
            [layer(Some(diff_id.clone()))],
            tmp.path(),
        )
        .unwrap();
        let mut names = Vec::new();
        let mut manifest = String::new();
        for e in tar::Archive::new(&out[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "manifest.json" {
                e.read_to_string(&mut manifest).unwrap();
            }
            if name.ends_with("layer.tar") {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                assert_eq!(data, layer_tar);
            }
            names.push(name);
        }
        let hex = diff_id.hex();
        let cfg_hex = Digest::sha256_of(config.as_bytes()).hex().to_string();
        assert_eq!(
            names,
            [
                format!("{hex}/"),
                format!("{hex}/layer.tar"),
                format!("{cfg_hex}.json"),
                "manifest.json".into(),
                "repositories".into()
            ]
        );
        assert_eq!(
            manifest,
            format!(
                r#"[{{"Config":"{cfg_hex}.json","RepoTags":["example/app:v1"],"Layers":["{hex}/layer.tar"]}}]"#
            )
        );

        // A wrong diff_id is refused.
        let wrong = Digest::sha256_of(b"other");
        let err = write_docker_archive(
            Vec::new(),
            &[],
            config.as_bytes(),
            [layer(Some(wrong))],
            tmp.path(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Digest { .. }), "{err}");
        // So is a layer count the config does not list.
        let err = write_docker_archive(
            Vec::new(),
            &[],
            config.as_bytes(),
            [layer(None), layer(None)],
            tmp.path(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::LayerCount { .. }), "{err}");
    }
}
