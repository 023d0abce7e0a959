//! What a fake Harbor is started with: projects, repositories and artifacts (OCI images and
//! cosign signatures, generated deterministically so their digests are known up front), users,
//! quotas and where the distribution API goes ([`HarborConfig`]).

use super::*;

/// A tag as the fixture is told about it: its name and when it was pushed (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTag {
    pub name: String,
    pub push_time_ms: u64,
}

/// An artifact in a repository: an OCI image (or a cosign signature pushed the legacy way, as a
/// tagged `sha256-<digest>.sig` image). Its manifest and config are generated deterministically,
/// so [`FakeArtifact::digest`] is known before the server starts.
#[derive(Debug, Clone)]
pub struct FakeArtifact {
    /// Makes the config (and so the digest) unique.
    pub seed: String,
    /// The artifact's `push_time` (when its manifest was first pushed).
    pub push_time_ms: u64,
    /// The image config's `created`.
    pub created: String,
    /// In the order they were attached (tag ids ascending).
    pub tags: Vec<FakeTag>,
    /// Cosign signatures recognised by Harbor (≥ 2.5) as accessories: hidden from the artifact
    /// list, shown in `accessories` with `with_accessory=true`. Creation times in Unix ms.
    pub cosign_accessories: Vec<u64>,
    /// A cosign signature manifest rather than an image.
    pub cosign_signature: bool,
}

impl FakeArtifact {
    /// An untagged linux/amd64 image pushed at `push_time_ms`, built an hour before.
    pub fn image(seed: &str, push_time_ms: u64) -> FakeArtifact {
        FakeArtifact {
            seed: seed.to_string(),
            push_time_ms,
            created: rfc3339_seconds(push_time_ms.saturating_sub(3_600_000)),
            tags: Vec::new(),
            cosign_accessories: Vec::new(),
            cosign_signature: false,
        }
    }

    /// Attaches tag `name`, pushed at `push_time_ms` (may be long after the artifact was pushed:
    /// Harbor's `createTag` API and re-pushes of a known digest do that).
    pub fn tag(mut self, name: &str, push_time_ms: u64) -> FakeArtifact {
        self.tags.push(FakeTag {
            name: name.to_string(),
            push_time_ms,
        });
        self
    }

    /// Sets the image config's `created` (what `--api registry` orders by).
    pub fn created(mut self, rfc3339: &str) -> FakeArtifact {
        self.created = rfc3339.to_string();
        self
    }

    /// Adds a cosign signature that Harbor recognised as an accessory of this artifact.
    pub fn cosign_accessory(mut self, created_ms: u64) -> FakeArtifact {
        self.cosign_accessories.push(created_ms);
        self
    }

    /// A cosign signature of `signed` pushed the legacy way (before Harbor knew accessories, or by
    /// an old cosign): its own artifact, tagged `sha256-<hex>.sig`, pushed at `push_time_ms`.
    pub fn legacy_cosign_signature(signed: &FakeArtifact, push_time_ms: u64) -> FakeArtifact {
        let hex = signed
            .digest()
            .strip_prefix("sha256:")
            .expect("sha256 digest")
            .to_string();
        FakeArtifact {
            // Every signing makes a new signature (ECDSA is randomised), so a new digest.
            seed: format!("cosign signature of {} at {push_time_ms}", signed.digest()),
            push_time_ms,
            created: "0001-01-01T00:00:00Z".to_string(),
            tags: vec![FakeTag {
                name: format!("sha256-{hex}.sig"),
                push_time_ms,
            }],
            cosign_accessories: Vec::new(),
            cosign_signature: true,
        }
    }

    /// The image config's bytes.
    pub fn config_bytes(&self) -> Vec<u8> {
        let config = if self.cosign_signature {
            json!({
                "architecture": "",
                "config": {},
                "created": self.created,
                "history": [{"created": self.created}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(self.seed.as_bytes())]},
            })
        } else {
            json!({
                "architecture": "amd64",
                "config": {"Labels": {"org.example.fake-seed": self.seed}},
                "created": self.created,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": []},
            })
        };
        serde_json::to_vec(&config).expect("config serialises")
    }

    /// The manifest's bytes (an OCI image manifest).
    pub fn manifest_bytes(&self) -> Vec<u8> {
        let config = self.config_bytes();
        let layers = if self.cosign_signature {
            let payload = format!("{{\"critical\":{{\"image\":{:?}}}}}", self.seed);
            json!([{
                "mediaType": COSIGN_LAYER,
                "size": payload.len(),
                "digest": sha256_digest(payload.as_bytes()),
                "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfake"},
            }])
        } else {
            json!([])
        };
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(&config),
                "size": config.len(),
            },
            "layers": layers,
        });
        serde_json::to_vec(&manifest).expect("manifest serialises")
    }

    /// `sha256:<hex>` of [`FakeArtifact::manifest_bytes`].
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest_bytes())
    }
}

/// A repository, named inside its project (`app`, `team/app`).
#[derive(Debug, Clone)]
pub struct FakeRepository {
    pub name: String,
    pub artifacts: Vec<FakeArtifact>,
}

impl FakeRepository {
    pub fn new(name: &str, artifacts: Vec<FakeArtifact>) -> FakeRepository {
        FakeRepository {
            name: name.to_string(),
            artifacts,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeProject {
    pub name: String,
    /// Public projects can be read anonymously; private ones answer 401 without credentials.
    pub public: bool,
    pub repositories: Vec<FakeRepository>,
    /// The quota's hard storage limit in bytes (-1 unlimited); `None`: `storage_per_project`.
    pub storage_limit: Option<i64>,
}

impl FakeProject {
    pub fn private(name: &str, repositories: Vec<FakeRepository>) -> FakeProject {
        FakeProject {
            name: name.to_string(),
            public: false,
            repositories,
            storage_limit: None,
        }
    }

    /// Sets the project's storage quota (bytes; -1 unlimited).
    pub fn with_quota(mut self, hard: i64) -> FakeProject {
        self.storage_limit = Some(hard);
        self
    }

    pub fn public(name: &str, repositories: Vec<FakeRepository>) -> FakeProject {
        FakeProject {
            public: true,
            ..FakeProject::private(name, repositories)
        }
    }
}

/// How the artifact list answers for a project or repository that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missing {
    /// 404 `NOT_FOUND`, one of the answers the swagger lists for `listArtifacts`.
    #[default]
    NotFound,
    /// What Harbor's `ListArtifacts` handler actually does: it only filters artifacts by
    /// repository name, so an unknown repository in a known project is `200 []` with
    /// `X-Total-Count: 0`; an unknown project fails the permission check (403, or 401 when
    /// anonymous).
    LikeHandler,
}

#[derive(Debug, Clone)]
pub struct HarborConfig {
    /// `(username, password)` pairs accepted by Basic auth.
    pub users: Vec<(String, String)>,
    pub projects: Vec<FakeProject>,
    pub missing: Missing,
    /// The UTC offset (minutes) Harbor writes a given instant (Unix ms) with: 0 (`Z`) for a core
    /// running in UTC, as the installer and chart set it up; a function of the instant for one
    /// running with a local `TZ` that has daylight saving time.
    pub utc_offset_minutes: fn(u64) -> i32,
    /// The users among `users` that are system admins (may list quotas, set `storage_limit`).
    pub admins: Vec<String>,
    /// `storage_per_project`: the hard limit of new projects (-1, Harbor's default: unlimited).
    pub storage_per_project: i64,
    /// `project_creation_restriction: adminonly` (Harbor's default lets every user create).
    pub only_admin_creates: bool,
    /// A real registry the distribution API is forwarded to (see [`upstream`]); `None`: the
    /// fake's own minimal read-only distribution API over the configured artifacts.
    pub upstream: Option<Upstream>,
}

/// Harbor in UTC: every time ends in `Z`.
pub fn utc(_unix_ms: u64) -> i32 {
    0
}

impl HarborConfig {
    /// The given projects, user `admin` / `Harbor12345`, 404 for unknown repositories.
    pub fn new(projects: Vec<FakeProject>) -> HarborConfig {
        HarborConfig {
            users: vec![(ADMIN.to_string(), ADMIN_PASSWORD.to_string())],
            projects,
            missing: Missing::NotFound,
            utc_offset_minutes: utc,
            admins: vec![ADMIN.to_string()],
            storage_per_project: -1,
            only_admin_creates: false,
            upstream: None,
        }
    }
}
