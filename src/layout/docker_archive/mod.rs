//! `docker save` tarballs (docker-archive), both ways: [`read`] opens one as a local image for
//! push and extract, [`write`] re-packs an image as one for `extract --docker-executable`. The
//! format (moby `image/tarexport`, containers/image `docker/internal/tarfile`):
//!
//! ```text
//! <diff_id hex>/layer.tar   each layer, uncompressed (its name is its diff_id, when we write it)
//! <config hex>.json         the image config, byte for byte
//! manifest.json             [{"Config": …, "RepoTags": […], "Layers": […]}]
//! repositories              {"name": {"tag": "<top layer dir>"}}, for older loaders
//! ```
//!
//! Both halves live here so the format is described (and `manifest.json` modelled) once. The
//! writer takes what `extract` takes (its `Layer`s, decoders and digest checks), so this module
//! imports `extract`, never the other way round.

mod read;
mod write;

use serde::{Deserialize, Serialize};

pub(crate) use read::open;
pub use write::write_docker_archive;

/// The archive's index of images.
const MANIFEST_JSON: &str = "manifest.json";

/// One image of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    /// The config's entry name.
    config: String,
    /// `name:tag` references; `null` or absent for an untagged image.
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    /// The layer tars' entry names, base layer first.
    #[serde(default)]
    layers: Vec<String>,
}
