//! Sending a planned load: entries `--concurrency` at a time, blobs of all of them under one
//! limit of `--concurrency` transfers. Each blob goes up once per registry: the first entry that
//! needs it uploads it (through push's [`push_blob`]); an entry of another repository waits for
//! that upload and mounts the blob from there (`POST ?mount=&from=`), uploading it itself only
//! when the registry will not mount. Within an entry, blobs go before manifests and children
//! before their index; cosign tags and referrers go after the images, and only once their image
//! is there: a tag never points at something incomplete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{future, stream, StreamExt};
use tokio::sync::{OnceCell, Semaphore};

use super::bundle::{Kind, Layouts};
use super::plan::{Item, Plan};
use super::Status;
use crate::layout::BlobSource;
use crate::oci::{Descriptor, Digest};
use crate::ops::push::upload::{push_blob, Blob, Outcome, Target};
use crate::progress::Progress;
use crate::registry::{Client, Scope};

/// Blob counts over the whole load.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) uploaded: AtomicUsize,
    pub(super) mounted: AtomicUsize,
    pub(super) skipped: AtomicUsize,
    pub(super) bytes: AtomicU64,
}

/// Who holds a blob in this registry: a repository that has it, or `None` when its upload
/// failed (whoever needs it next tries on its own).
type Holder = Arc<OnceCell<Option<String>>>;

pub(super) struct Sender<'a> {
    pub(super) client: &'a Client,
    pub(super) layouts: &'a [Layouts],
    pub(super) progress: &'a dyn Progress,
    pub(super) chunk_size: u64,
    pub(super) concurrency: usize,
    pub(super) continue_on_error: bool,
    pub(super) counters: Counters,
    holders: Mutex<HashMap<Digest, Holder>>,
    transfers: Semaphore,
    stopped: AtomicBool,
}

impl<'a> Sender<'a> {
    pub(super) fn new(
        client: &'a Client,
        layouts: &'a [Layouts],
        progress: &'a dyn Progress,
        chunk_size: u64,
        concurrency: usize,
        continue_on_error: bool,
    ) -> Sender<'a> {
        Sender {
            client,
            layouts,
            progress,
            chunk_size,
            concurrency: concurrency.max(1),
            continue_on_error,
            counters: Counters::default(),
            holders: Mutex::new(HashMap::new()),
            transfers: Semaphore::new(concurrency.max(1)),
            stopped: AtomicBool::new(false),
        }
    }

    /// Sends every planned item: images first, then what follows them.
    pub(super) async fn run(&self, plan: &mut Plan) {
        // What the plan found in a repository can be mounted from there.
        for item in &plan.items {
            for d in &item.present {
                let holder = self.holder(d);
                let _ = holder.set(Some(item.repository.clone()));
            }
        }
        for item in plan.items.iter().filter(|i| i.status == Status::Planned) {
            for b in item.missing_blobs() {
                self.progress.expect(b.size);
            }
        }
        let images = plan
            .items
            .iter_mut()
            .filter(|i| i.entry.kind == Kind::Image)
            .collect();
        self.send_all(images).await;
        let mut failed = HashMap::new();
        for item in plan.items.iter() {
            if !matches!(item.status, Status::Failed | Status::Refused) {
                continue;
            }
            for (d, _) in &item.entry.manifests {
                let key = (item.repository.clone(), d.digest.clone());
                failed.insert(key, (item.status, item.entry.name()));
            }
        }
        let followers = plan
            .items
            .iter_mut()
            .filter(|i| i.entry.kind != Kind::Image);
        let mut ready = Vec::new();
        for item in followers {
            let subject = match &item.entry.kind {
                Kind::Signature(d) | Kind::Referrer(d) => d.clone(),
                Kind::Image => continue,
            };
            if item.status != Status::Planned {
                continue;
            }
            match failed.get(&(item.repository.clone(), subject)) {
                Some((status, name)) => {
                    item.status = *status;
                    item.reason = Some(format!("it belongs to {name}, which was not loaded"));
                }
                None => ready.push(item),
            }
        }
        self.send_all(ready).await;
        self.progress.finish();
    }

    async fn send_all(&self, items: Vec<&mut Item>) {
        stream::iter(items)
            .for_each_concurrent(self.concurrency, |item| async move {
                if item.status != Status::Planned {
                    return;
                }
                if self.stopped.load(Ordering::SeqCst) {
                    item.status = Status::Failed;
                    item.reason = Some(
                        "not loaded: the load stopped at the first failure \
                         (--continue-on-error goes on past it)"
                            .into(),
                    );
                    return;
                }
                match self.send_item(item).await {
                    Ok(()) => item.status = Status::Pushed,
                    Err(reason) => {
                        item.status = Status::Failed;
                        item.reason = Some(reason);
                        if !self.continue_on_error {
                            self.stopped.store(true, Ordering::SeqCst);
                        }
                    }
                }
            })
            .await;
    }

    /// Blobs, then the manifests the registry lacks (children by digest, the root under its
    /// tag).
    async fn send_item(&self, item: &Item) -> Result<(), String> {
        let source = &self.layouts[item.entry.layout].blobs;
        let blobs = item
            .missing_blobs()
            .map(|b| self.blob(&item.repository, b, source));
        for r in future::join_all(blobs).await {
            r?;
        }
        let repo = &item.repository;
        let (root, children) = item
            .entry
            .manifests
            .split_last()
            .expect("an entry has its root manifest");
        for (d, bytes) in children {
            if item.present.contains(&d.digest) {
                continue;
            }
            let digest = d.digest.to_string();
            self.client
                .put_manifest(repo, &digest, &d.media_type, bytes.clone())
                .await
                .map_err(|e| e.to_string())?;
        }
        let (d, bytes) = root;
        let reference = item.entry.tag.clone().unwrap_or(d.digest.to_string());
        self.client
            .put_manifest(repo, &reference, &d.media_type, bytes.clone())
            .await
            .map_err(|e| e.to_string())
    }

    fn holder(&self, digest: &Digest) -> Holder {
        let mut holders = self.holders.lock().expect("the holder map is not poisoned");
        holders.entry(digest.clone()).or_default().clone()
    }

    /// One blob into `repo`: uploaded by the first entry that needs it, mounted by the others.
    async fn blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        source: &Arc<dyn BlobSource>,
    ) -> Result<(), String> {
        if self.stopped.load(Ordering::SeqCst) {
            return Err("the load stopped at the first failure".into());
        }
        let holder = self.holder(&desc.digest);
        let mut mine = None;
        let held = holder
            .get_or_init(|| async {
                let r = self.transfer(repo, desc, source, None).await;
                let held = r.is_ok().then(|| repo.to_string());
                mine = Some(r);
                held
            })
            .await
            .clone();
        if let Some(r) = mine {
            return r;
        }
        match held {
            Some(from) if from == repo => {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                let bar = self.progress.blob(&desc.digest.short(), desc.size);
                bar.skip(desc.size);
                bar.done();
                Ok(())
            }
            from => self.transfer(repo, desc, source, from.as_deref()).await,
        }
    }

    async fn transfer(
        &self,
        repo: &str,
        desc: &Descriptor,
        source: &Arc<dyn BlobSource>,
        mount_from: Option<&str>,
    ) -> Result<(), String> {
        let _permit = self
            .transfers
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let scope = match mount_from {
            Some(from) => Scope::push_mount(repo, from),
            None => Scope::push(repo),
        };
        let target = Target {
            client: self.client,
            repo,
            mount_from,
            scope: &scope,
            chunk_size: self.chunk_size,
            head_first: false,
        };
        let blob = Blob {
            desc: desc.clone(),
            codec: None,
        };
        let pushed = push_blob(&target, &blob, source.clone(), self.progress)
            .await
            .map_err(|e| e.to_string())?;
        let c = &self.counters;
        match pushed.outcome {
            Outcome::Uploaded(n) => {
                c.uploaded.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Outcome::Mounted => {
                c.mounted.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Skipped => {
                c.skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
