//! The fake's state: the artifacts as Harbor stores them (ids, tags, accessories), the projects
//! book, and the upload bookkeeping of the front.

use super::*;

pub(super) struct StoredTag {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) push_time_ms: u64,
}

pub(super) struct StoredAccessory {
    pub(super) id: i64,
    pub(super) artifact_id: i64,
    pub(super) digest: String,
    pub(super) size: u64,
    pub(super) creation_ms: u64,
}

pub(super) struct StoredArtifact {
    pub(super) id: i64,
    pub(super) digest: String,
    pub(super) manifest: Vec<u8>,
    pub(super) config: Vec<u8>,
    pub(super) config_digest: String,
    pub(super) push_time_ms: u64,
    pub(super) created: String,
    pub(super) cosign_signature: bool,
    pub(super) tags: Vec<StoredTag>,
    pub(super) accessories: Vec<StoredAccessory>,
}

pub(super) struct StoredRepository {
    pub(super) id: i64,
    pub(super) project: String,
    /// Inside the project: `team/app`.
    pub(super) name: String,
    pub(super) artifacts: Vec<StoredArtifact>,
}

#[derive(Clone)]
pub(super) struct StoredProject {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) public: bool,
}

pub(super) struct State {
    pub(super) users: Vec<(String, String)>,
    pub(super) admins: Vec<String>,
    pub(super) book: Mutex<projects::Book>,
    pub(super) upstream: Option<Upstream>,
    /// Bytes PATCHed into each upload session (by its id), for the quota of its closing PUT.
    pub(super) uploads: Mutex<HashMap<String, i64>>,
    /// The size of every blob pushed through the front, for the quota of a mount.
    pub(super) sizes: Mutex<HashMap<String, i64>>,
    pub(super) repositories: Vec<StoredRepository>,
    pub(super) missing: Missing,
    pub(super) utc_offset_minutes: fn(u64) -> i32,
    /// Statuses to answer the next `listArtifacts` calls with, before serving them normally.
    pub(super) failures: Mutex<VecDeque<u16>>,
}

impl State {
    pub(super) fn build(config: HarborConfig) -> State {
        let (mut repository_id, mut artifact_id) = (0i64, 0);
        let (mut tag_id, mut accessory_id) = (0i64, 0i64);
        // Project 1 is Harbor's built-in `library`.
        let mut book = projects::Book::new(config.storage_per_project, config.only_admin_creates);
        let mut repositories = Vec::new();
        for p in config.projects {
            book.add(&p.name, p.public, ADMIN, p.storage_limit);
            for r in p.repositories {
                repository_id += 1;
                let mut artifacts = Vec::new();
                for a in r.artifacts {
                    artifact_id += 1;
                    let id = artifact_id;
                    let manifest = a.manifest_bytes();
                    let config = a.config_bytes();
                    let tags = a
                        .tags
                        .iter()
                        .map(|t| {
                            tag_id += 1;
                            StoredTag {
                                id: tag_id,
                                name: t.name.clone(),
                                push_time_ms: t.push_time_ms,
                            }
                        })
                        .collect();
                    let accessories = a
                        .cosign_accessories
                        .iter()
                        .map(|&ms| {
                            artifact_id += 1;
                            accessory_id += 1;
                            let sig = FakeArtifact::legacy_cosign_signature(&a, ms);
                            StoredAccessory {
                                id: accessory_id,
                                artifact_id,
                                digest: sig.digest(),
                                size: sig.manifest_bytes().len() as u64,
                                creation_ms: ms,
                            }
                        })
                        .collect();
                    artifacts.push(StoredArtifact {
                        id,
                        digest: sha256_digest(&manifest),
                        config_digest: sha256_digest(&config),
                        manifest,
                        config,
                        push_time_ms: a.push_time_ms,
                        created: a.created.clone(),
                        cosign_signature: a.cosign_signature,
                        tags,
                        accessories,
                    });
                }
                repositories.push(StoredRepository {
                    id: repository_id,
                    project: p.name.clone(),
                    name: r.name,
                    artifacts,
                });
            }
        }
        State {
            users: config.users,
            admins: config.admins,
            book: Mutex::new(book),
            upstream: config.upstream,
            uploads: Mutex::new(HashMap::new()),
            sizes: Mutex::new(HashMap::new()),
            repositories,
            missing: config.missing,
            utc_offset_minutes: config.utc_offset_minutes,
            failures: Mutex::new(VecDeque::new()),
        }
    }

    /// A time as this Harbor writes it.
    pub(super) fn time(&self, unix_ms: u64) -> String {
        harbor_time_with_offset(unix_ms, (self.utc_offset_minutes)(unix_ms))
    }

    pub(super) fn project(&self, name: &str) -> Option<StoredProject> {
        self.book().by_name(name).map(|p| p.project.clone())
    }

    pub(super) fn book(&self) -> std::sync::MutexGuard<'_, projects::Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn blob_sizes(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn repository(&self, project: &str, name: &str) -> Option<&StoredRepository> {
        self.repositories
            .iter()
            .find(|r| r.project == project && r.name == name)
    }

    /// `project/name` for the distribution API.
    pub(super) fn repository_by_full_name(&self, full: &str) -> Option<&StoredRepository> {
        let (project, name) = full.split_once('/')?;
        self.repository(project, name)
    }
}
