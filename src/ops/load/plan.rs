//! The plan of a load, made before anything is sent: which entries are already in the registry
//! at the same digest (one HEAD of the tag each, no blob looked at: what makes a re-run fast),
//! which images `--verify` refuses, and for the rest which manifests and blobs the registry
//! lacks (HEAD, in the target repository). What is missing, per Harbor project, is what a quota
//! preflight weighs ([`Plan::projects`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{stream, StreamExt};
use serde::Serialize;

use super::bundle::{Entry, Kind, Layouts};
use super::{Error, Options, Status};
use crate::oci::Digest;
use crate::ops::verify::{self, check_layout, Selection};
use crate::registry::reference::valid_tag;
use crate::registry::{Client, Reference, Scope};
use crate::sign::Policy;

/// One entry and what the registry already has of it.
pub(super) struct Item {
    pub(super) entry: Entry,
    /// The repository in the registry (the prefix applied).
    pub(super) repository: String,
    pub(super) status: Status,
    pub(super) reason: Option<String>,
    /// Manifests (by digest) and blobs the target repository already holds.
    pub(super) present: HashSet<Digest>,
}

impl Item {
    /// `REPO:TAG` or `REPO@DIGEST` in the registry.
    pub(super) fn destination(&self) -> String {
        match &self.entry.tag {
            Some(t) => format!("{}:{t}", self.repository),
            None => format!("{}@{}", self.repository, self.entry.root.digest),
        }
    }

    /// The blobs to send (the registry lacks them in this repository).
    pub(super) fn missing_blobs(&self) -> impl Iterator<Item = &crate::oci::Descriptor> {
        self.entry
            .blobs
            .iter()
            .filter(|b| !self.present.contains(&b.digest))
    }

    fn fail(&mut self, status: Status, reason: String) {
        self.status = status;
        self.reason = Some(reason);
    }
}

/// What one Harbor project (the first component of the repositories) would receive.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProjectNeed {
    pub project: String,
    /// Blobs and manifests the project's repositories lack, each counted once per project
    /// (Harbor counts a blob once per project, whichever of its repositories holds it).
    pub new_bytes: u64,
    pub new_blobs: usize,
}

pub struct Plan {
    pub(super) items: Vec<Item>,
    /// Blobs none of the target repositories holds yet: they are uploaded, once.
    pub(super) blobs_to_send: usize,
    pub(super) bytes_to_send: u64,
}

impl Plan {
    /// What each Harbor project would receive, in name order, for the quota preflight.
    pub fn projects(&self) -> Vec<ProjectNeed> {
        let mut per: BTreeMap<&str, (HashSet<&Digest>, ProjectNeed)> = BTreeMap::new();
        for item in self.items.iter().filter(|i| i.status == Status::Planned) {
            let project = project_of(&item.repository);
            let (seen, need) = per.entry(project).or_insert_with(|| {
                (
                    HashSet::new(),
                    ProjectNeed {
                        project: project.to_string(),
                        new_bytes: 0,
                        new_blobs: 0,
                    },
                )
            });
            for b in item.missing_blobs() {
                if seen.insert(&b.digest) {
                    need.new_bytes += b.size;
                    need.new_blobs += 1;
                }
            }
            for (d, _) in &item.entry.manifests {
                if !item.present.contains(&d.digest) && seen.insert(&d.digest) {
                    need.new_bytes += d.size;
                }
            }
        }
        per.into_values().map(|(_, need)| need).collect()
    }
}

/// HEADs in flight per `--concurrency`: they are small requests, and a re-run of a loaded
/// bundle is nothing but them (one per entry), so they go wider than transfers.
const HEADS_PER_TRANSFER: usize = 4;
/// At most this many HEADs at once, whatever `--concurrency` says.
const MAX_HEADS: usize = 64;

fn heads_at_once(concurrency: usize) -> usize {
    (concurrency.max(1) * HEADS_PER_TRANSFER).min(MAX_HEADS)
}

/// Plans the load of `bundle`: HEADs many at a time ([`heads_at_once`]), judges images when
/// `policy`. Nothing is asked of the repositories of `absent` projects (Harbor projects still to
/// be created): everything is new there.
pub(super) async fn make(
    client: &Client,
    entries: Vec<Entry>,
    layouts: &[Layouts],
    prefix: Option<&str>,
    policy: Option<&Policy>,
    absent: &HashSet<String>,
    opts: &Options,
) -> Result<Plan, Error> {
    let items: Vec<Item> = entries
        .into_iter()
        .map(|entry| new_item(entry, prefix))
        .collect();
    let mut items: Vec<Item> = stream::iter(items)
        .map(|item| check_tag(client, item, absent))
        .buffered(heads_at_once(opts.concurrency))
        .collect()
        .await;
    if let Some(policy) = policy {
        for item in items.iter_mut() {
            judge(item, &layouts[item.entry.layout].path, policy, client)?;
        }
    }
    for item in items.iter_mut().filter(|i| i.status == Status::Planned) {
        let source = &layouts[item.entry.layout];
        let missing = item
            .missing_blobs()
            .find(|b| source.blobs.size(&b.digest) != Some(b.size))
            .map(|b| {
                format!(
                    "blob {} ({} bytes) is missing from the layout {} or has another size",
                    b.digest,
                    b.size,
                    source.path.display()
                )
            });
        if let Some(reason) = missing {
            item.fail(Status::Failed, reason);
        }
    }
    let items = check_blobs(client, items, absent, opts.concurrency).await;
    Ok(totals(items))
}

/// The repository `entry` goes into: `prefix/` before its own.
pub(super) fn repository_of(entry: &Entry, prefix: Option<&str>) -> String {
    match prefix {
        Some(p) => format!("{p}/{}", entry.repository),
        None => entry.repository.clone(),
    }
}

/// A repository's Harbor project: its first component.
pub(super) fn project_of(repository: &str) -> &str {
    repository.split('/').next().unwrap_or("")
}

fn new_item(entry: Entry, prefix: Option<&str>) -> Item {
    let repository = repository_of(&entry, prefix);
    let mut item = Item {
        repository,
        status: Status::Planned,
        reason: None,
        present: HashSet::new(),
        entry,
    };
    if let Some(problem) = item.entry.problem.clone() {
        item.fail(Status::Failed, problem);
    } else if Reference::parse(&format!("localhost/{}", item.repository), None).is_err() {
        let reason = format!(
            "{} is not a valid repository name (lowercase letters, digits, . _ - and /)",
            crate::text::escape(&item.repository)
        );
        item.fail(Status::Failed, reason);
    } else if let Some(tag) = item.entry.tag.as_deref().filter(|t| !valid_tag(t)) {
        let reason = format!(
            "{} is not a valid tag (letters, digits, . _ -, at most 128)",
            crate::text::escape(tag)
        );
        item.fail(Status::Failed, reason);
    }
    item
}

/// One HEAD of the tag (or digest): an entry already there at the same digest is skipped whole.
async fn check_tag(client: &Client, mut item: Item, absent: &HashSet<String>) -> Item {
    if item.status != Status::Planned || absent.contains(project_of(&item.repository)) {
        return item;
    }
    let root = item.entry.root.digest.to_string();
    let reference = item.entry.tag.clone().unwrap_or(root);
    match client.manifest_digest(&item.repository, &reference).await {
        Ok(Some(d)) if d == item.entry.root.digest => {
            item.status = Status::Skipped;
            item.reason = Some("already there at the same digest".into());
        }
        Ok(_) => {}
        Err(e) => item.fail(Status::Failed, e.to_string()),
    }
    item
}

/// `--verify`: an image is judged before anything is sent; what follows an image (its `.sig`)
/// is judged with it.
fn judge(
    item: &mut Item,
    path: &std::path::Path,
    policy: &Policy,
    client: &Client,
) -> Result<(), Error> {
    if item.status != Status::Planned || item.entry.kind != Kind::Image {
        return Ok(());
    }
    let name = item.entry.ref_name.as_deref();
    let registry = client.registry();
    let verdicts = match check_layout(path, name, policy, &Selection::default(), Some(registry)) {
        Ok(v) => v,
        Err(verify::Error::Trust(e)) => {
            item.fail(Status::Refused, e.to_string());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(v) = verdicts.iter().find(|v| !v.verified) {
        item.fail(Status::Refused, v.reason.clone());
    } else if let Some(v) = verdicts.first() {
        item.reason = Some(format!("verified: {}", v.reason));
    }
    Ok(())
}

/// HEADs what planned entries need, each manifest and blob once per repository: a child
/// manifest already there spares its blobs the question.
async fn check_blobs(
    client: &Client,
    mut items: Vec<Item>,
    absent: &HashSet<String>,
    concurrency: usize,
) -> Vec<Item> {
    let mut questions: Vec<(String, Digest, bool)> = Vec::new();
    let mut asked = HashSet::new();
    let asking =
        |i: &&Item| i.status == Status::Planned && !absent.contains(project_of(&i.repository));
    for item in items.iter().filter(asking) {
        let children = &item.entry.manifests[..item.entry.manifests.len().saturating_sub(1)];
        let blobs = item.entry.blobs.iter().map(|b| (&b.digest, false));
        for (digest, is_manifest) in children.iter().map(|(d, _)| (&d.digest, true)).chain(blobs) {
            if asked.insert((item.repository.clone(), digest.clone())) {
                questions.push((item.repository.clone(), digest.clone(), is_manifest));
            }
        }
    }
    let answers: Vec<((String, Digest), Result<bool, String>)> = stream::iter(questions)
        .map(|(repo, digest, is_manifest)| async move {
            let scope = Scope::push(&repo);
            let r = if is_manifest {
                client
                    .manifest_digest(&repo, &digest.to_string())
                    .await
                    .map(|d| d.is_some())
            } else {
                client
                    .blob_exists(&repo, &digest, &scope)
                    .await
                    .map(|s| s.is_some())
            };
            ((repo, digest), r.map_err(|e| e.to_string()))
        })
        .buffer_unordered(heads_at_once(concurrency))
        .collect()
        .await;
    let answers: HashMap<(String, Digest), Result<bool, String>> = answers.into_iter().collect();
    for item in items.iter_mut().filter(|i| i.status == Status::Planned) {
        let mut failure = None;
        for (d, _) in &item.entry.manifests {
            match answers.get(&(item.repository.clone(), d.digest.clone())) {
                Some(Ok(true)) => {
                    item.present.insert(d.digest.clone());
                }
                Some(Err(e)) => failure = Some(e.clone()),
                _ => {}
            }
        }
        for b in &item.entry.blobs {
            match answers.get(&(item.repository.clone(), b.digest.clone())) {
                Some(Ok(true)) => {
                    item.present.insert(b.digest.clone());
                }
                Some(Err(e)) => failure = Some(e.clone()),
                _ => {}
            }
        }
        if let Some(e) = failure {
            item.fail(Status::Failed, e);
        }
    }
    spare_blobs_of_present_children(&mut items);
    items
}

/// The blobs of a child manifest the registry already has are there too (a registry accepts a
/// manifest only when its blobs are): they are not sent again.
fn spare_blobs_of_present_children(items: &mut [Item]) {
    for item in items.iter_mut().filter(|i| i.status == Status::Planned) {
        for (d, bytes) in &item.entry.manifests {
            if !item.present.contains(&d.digest) {
                continue;
            }
            if let Ok(crate::oci::AnyManifest::Image(m)) =
                crate::oci::AnyManifest::parse(Some(&d.media_type), bytes)
            {
                for b in std::iter::once(&m.config).chain(&m.layers) {
                    item.present.insert(b.digest.clone());
                }
            }
        }
    }
}

/// The blobs to upload: those none of the target repositories holds, once each.
fn totals(items: Vec<Item>) -> Plan {
    let held: HashSet<&Digest> = items.iter().flat_map(|i| i.present.iter()).collect();
    let mut counted = HashSet::new();
    let (mut blobs, mut bytes) = (0, 0);
    for item in items.iter().filter(|i| i.status == Status::Planned) {
        for b in item.missing_blobs() {
            if !held.contains(&b.digest) && counted.insert(b.digest.clone()) {
                blobs += 1;
                bytes += b.size;
            }
        }
    }
    Plan {
        items,
        blobs_to_send: blobs,
        bytes_to_send: bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Descriptor;

    fn desc(content: &[u8]) -> Descriptor {
        Descriptor {
            media_type: crate::oci::OCI_LAYER_GZIP.into(),
            digest: Digest::sha256_of(content),
            size: content.len() as u64,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    fn item(repository: &str, blobs: &[&[u8]], present: &[&[u8]]) -> Item {
        let manifest = desc(repository.as_bytes());
        Item {
            entry: Entry {
                repository: repository.into(),
                tag: Some("1".into()),
                ref_name: None,
                layout: 0,
                root: manifest.clone(),
                kind: Kind::Image,
                manifests: vec![(manifest, repository.as_bytes().to_vec())],
                blobs: blobs.iter().map(|b| desc(b)).collect(),
                problem: None,
            },
            repository: repository.into(),
            status: Status::Planned,
            reason: None,
            present: present.iter().map(|b| Digest::sha256_of(b)).collect(),
        }
    }

    #[test]
    fn a_blob_is_sent_once_and_weighed_once_per_project() {
        let mut skipped = item("c/app", &[b"zzzzzzz"], &[]);
        skipped.status = Status::Skipped;
        let plan = totals(vec![
            item("a/one", &[b"base", b"x"], &[]),
            item("a/two", &[b"base", b"yy"], &[b"yy"]),
            item("b/three", &[b"base", b"yy"], &[]),
            skipped,
        ]);
        // base and x go up; yy is in a/two already and is mounted from there into b/three.
        assert_eq!((plan.blobs_to_send, plan.bytes_to_send), (2, 5));
        let need = |p: &str| {
            plan.projects()
                .into_iter()
                .find(|n| n.project == p)
                .map(|n| (n.new_blobs, n.new_bytes))
        };
        // Project a: base and x once (4 + 1 bytes), and its two manifests ("a/one", "a/two").
        assert_eq!(need("a"), Some((2, 5 + 10)));
        // Project b: base and yy (Harbor counts a mounted blob in each project), its manifest.
        assert_eq!(need("b"), Some((2, 6 + 7)));
        assert_eq!(
            need("c"),
            None,
            "nothing goes into a skipped entry's project"
        );
    }
}
