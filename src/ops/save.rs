//! `gdcloud artifacts save DIRECTORY [REF...]`: many registry images into ONE OCI image layout, a
//! bundle that `tree` lists and `load` pushes, built on the connected side of an air gap.
//!
//! Each image is named `PROJECT/REPO:TAG` (the registry host dropped, as `tree` and the runbook
//! expect); indexes are kept whole (every platform, exact bytes, so digests and signatures stay
//! valid); with `--with-signatures` the cosign tags and OCI 1.1 referrers come along. All
//! manifests are fetched first; then the blobs of every image, deduplicated by digest, go through
//! pull's resumable transfer (`pull::fetch`), so a blob shared by several images is downloaded
//! and stored once. The layout is pull's too: written fd-relative, never following a symlink,
//! with the pull marker until the end, so an interrupted save run again into the same DIRECTORY
//! keeps its complete blobs and resumes the partial ones. `index.json` is written last.

mod graph;
mod refs;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::layout::{self, Layout};
use crate::oci::{self, Descriptor, Index, ANNOTATION_REF_NAME};
use crate::ops::pull::fetch::{fetch_blob, Fetch};
use crate::progress::Progress;
use crate::registry::{self, Client, ClientOptions};

pub use refs::{parse_ref_list, read_ref_list};

/// What the pull marker of an unfinished save holds: any save may resume it; a pull may not.
pub const SAVE_SOURCE: &str = "gdcloud-artifacts save";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] registry::reference::ReferenceError),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Layout(#[from] layout::Error),
    #[error(transparent)]
    Parse(#[from] oci::ParseError),
    #[error(transparent)]
    Pull(#[from] crate::ops::pull::Error),
    #[error("no images to save: name references as arguments or in --from-file")]
    NoRefs,
    #[error("cannot read the reference list {path}: {source}")]
    ReadList {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{first} and {second} would both be saved as {name} (a bundle names images without their registry host); save them into separate bundles")]
    NameClash {
        name: String,
        first: String,
        second: String,
    },
    #[error(
        "{repository} names more than {limit} manifests below one reference; refusing to save it"
    )]
    TooManyManifests { repository: String, limit: usize },
    #[error("{path} exists and holds something other than an interrupted save: save into a new or empty directory (nothing was changed)")]
    NotEmpty { path: PathBuf },
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub destination: PathBuf,
    /// Registry references (`[HOST/]PROJECT/REPO[:TAG|@DIGEST]`), from arguments and the list.
    pub refs: Vec<String>,
    pub default_registry: Option<String>,
    pub with_signatures: bool,
    pub concurrency: usize,
    pub client: ClientOptions,
}

/// What was saved for one reference.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    pub reference: String,
    /// Its ref name in the bundle.
    pub name: String,
    pub digest: String,
    pub media_type: String,
    /// Manifests and indexes stored for it (signatures and referrers included).
    pub manifests: usize,
    /// Blobs its manifests name (stored once however many images share them).
    pub blobs: usize,
    /// Signature, attestation and SBOM tags saved (`sha256-<hex>.sig`, …).
    pub signatures: Vec<String>,
    pub referrers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub destination: PathBuf,
    pub images: Vec<Saved>,
    /// Distinct blobs in the bundle.
    pub blobs: usize,
    pub bytes_downloaded: u64,
    /// Blobs already complete in DIRECTORY (an earlier, interrupted save).
    pub blobs_present: usize,
    pub foreign_layers_skipped: usize,
}

/// Clients by registry (and plain-HTTP choice), connected once each.
type Clients = HashMap<(String, bool), Client>;

async fn connect(targets: &[refs::Target], opts: &ClientOptions) -> Result<Clients, Error> {
    let mut clients = Clients::new();
    for t in targets {
        let key = (t.reference.registry.clone(), t.reference.plain_http);
        if let std::collections::hash_map::Entry::Vacant(e) = clients.entry(key) {
            e.insert(Client::connect_for(&t.reference, opts).await?);
        }
    }
    Ok(clients)
}

fn client_of<'a>(clients: &'a Clients, t: &refs::Target) -> &'a Client {
    &clients[&(t.reference.registry.clone(), t.reference.plain_http)]
}

pub async fn run(opts: &Options, progress: &dyn Progress) -> Result<Report, Error> {
    let targets = refs::targets(&opts.refs, opts.default_registry.as_deref())?;
    // Refuse a DIRECTORY that is not ours before any network traffic.
    Layout::check_for_pull(&opts.destination, SAVE_SOURCE).map_err(not_ours)?;
    let clients = connect(&targets, &opts.client).await?;
    let concurrency = opts.concurrency.max(1);
    let collected: Vec<graph::Collected> = stream::iter(&targets)
        .map(|t| async {
            let c = graph::collect(client_of(&clients, t), t, opts.with_signatures).await?;
            progress.notice(&format!("{}: {} manifests", t.reference, c.manifests.len()));
            Ok::<_, Error>(c)
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let layout = Layout::create_for_pull(&opts.destination, SAVE_SOURCE)?;

    // One list of blobs for the whole bundle: each digest once, fetched from the first
    // repository that names it.
    let mut seen = HashSet::new();
    let mut plan: Vec<(&Client, &str, &Descriptor)> = Vec::new();
    for (t, c) in targets.iter().zip(&collected) {
        for d in &c.blobs {
            if seen.insert(d.digest.clone()) {
                plan.push((client_of(&clients, t), &t.reference.repository, d));
            }
        }
    }
    for (_, _, d) in &plan {
        progress.expect(d.size);
    }
    let fetched: Vec<Fetch> = stream::iter(&plan)
        .map(|(client, repo, d)| fetch_blob(client, repo, &layout, d, progress))
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    write_manifests(&layout, &collected)?;
    layout.write_index(&bundle_index(&collected))?;
    layout.finish_pull()?;
    progress.finish();

    let (mut bytes_downloaded, mut blobs_present) = (0, 0);
    for f in fetched {
        match f {
            Fetch::Present => blobs_present += 1,
            Fetch::Downloaded(n) => bytes_downloaded += n,
        }
    }
    Ok(Report {
        destination: opts.destination.clone(),
        images: targets.iter().zip(&collected).map(saved).collect(),
        blobs: plan.len(),
        bytes_downloaded,
        blobs_present,
        foreign_layers_skipped: collected.iter().map(|c| c.foreign).sum(),
    })
}

/// A non-empty DIRECTORY, or one an interrupted pull left: layout's words are pull's.
fn not_ours(e: layout::Error) -> Error {
    match e {
        layout::Error::NotEmpty { path } | layout::Error::OtherPull { path, .. } => {
            Error::NotEmpty { path }
        }
        e => e.into(),
    }
}

fn saved((t, c): (&refs::Target, &graph::Collected)) -> Saved {
    let top = c.top.as_ref().expect("collect sets the top manifest");
    Saved {
        reference: t.reference.to_string(),
        name: t.name.clone(),
        digest: top.digest.to_string(),
        media_type: top.media_type.clone(),
        manifests: c.manifests.len(),
        blobs: c.blobs.len(),
        signatures: c.signatures.clone(),
        referrers: c.referrers,
    }
}

/// Writes every manifest once (already verified in memory); whatever an earlier run left under
/// a name is replaced, not trusted.
fn write_manifests(layout: &Layout, collected: &[graph::Collected]) -> Result<(), Error> {
    let mut written = HashSet::new();
    for m in collected.iter().flat_map(|c| &c.manifests) {
        if written.insert(m.digest.clone()) {
            let d = layout.write_blob(&m.bytes)?;
            debug_assert_eq!(d, m.digest);
        }
    }
    Ok(())
}

/// The bundle's `index.json`: the images in the order asked, then their signatures and
/// referrers; one entry per ref name (the first wins: two images of one repository share their
/// signature tags' names only when they share the digest) and per unnamed digest.
fn bundle_index(collected: &[graph::Collected]) -> Index {
    let mut index = Index::empty();
    let mut names = HashSet::new();
    let mut unnamed = HashSet::new();
    let (images, rest): (Vec<_>, Vec<_>) = collected
        .iter()
        .flat_map(|c| c.entries.iter().enumerate())
        .partition(|(i, _)| *i == 0);
    for (_, d) in images.into_iter().chain(rest) {
        let fresh = match d.annotation(ANNOTATION_REF_NAME) {
            Some(n) => names.insert(n.to_string()),
            None => unnamed.insert(d.digest.clone()),
        };
        if fresh {
            index.manifests.push(d.clone());
        }
    }
    index
}
