//! A fake Harbor that answers the few endpoints of Harbor's REST API v2.0 that `gdcloud artifacts
//! list-versions` uses, exactly as Harbor's published swagger (`api/v2.0/swagger.yaml` in
//! goharbor/harbor) describes them: `GET /api/v2.0/ping` (`Pong`) and `GET /api/v2.0/projects/
//! {project_name}/repositories/{repository_name}/artifacts` with `page` (default 1), `page_size`
//! (default 10, maximum 100), `with_tag` (default true), `with_accessory`, `q` and `sort`, answering
//! `Artifact` objects (with `Tag`s and `Accessory`s) plus `X-Total-Count` and `Link` (built like
//! Harbor's `BaseAPI.Links`: the request path kept as sent, the query rebuilt with `page` and
//! `page_size`, keys sorted, `rel="prev"` before `rel="next"`, joined by `" , "`), HTTP Basic auth
//! and `{"errors":[{"code","message"}]}` error bodies. It exists because no real Harbor (a dozen
//! containers and a PostgreSQL) can run on the test machines, and because only a server that
//! records what it was asked can prove what our client sends: the double-encoded `repository_name`
//! (`a%252Fb`, the only spelling the fake accepts, as Harbor's router does), the Basic credentials,
//! the `Link` pages it followed. It also answers the distribution API minimally (`/v2/`,
//! `tags/list`, manifests, blobs) with real, digest-verified OCI manifests of each artifact, so
//! `Client::connect` can ping and `--api registry` can be compared on the same data. Every
//! feature it does not implement (other `q` filters, other `sort` keys, other methods) is refused
//! loudly rather than silently ignored. Where Harbor's handler code answers more narrowly than the
//! swagger, [`Missing::LikeHandler`] reproduces it; times can carry the offset of a core running
//! with a local `TZ` ([`HarborConfig::utc_offset_minutes`]); and the next artifact lists can be
//! made to fail ([`HarborFake::fail_next_artifact_lists`]). A small front door on the public port
//! answers a TLS `ClientHello` at once with a plain-HTTP 400 (our client tries `https://` first)
//! and pipes everything else to the tiny_http server.
//!
//! Projects and quotas ([`projects`]): list, head, get and create projects and list their quotas
//! as the swagger says, with a `library` project as every Harbor has. In front of a real registry
//! ([`HarborConfig::upstream`], [`upstream`]) the distribution API is forwarded to it after
//! Harbor's project and quota checks, so pushes meet Harbor's refusals.
#![allow(dead_code)]

mod projects;
mod upstream;

#[allow(unused_imports)]
pub use projects::harbor_project_name;
#[allow(unused_imports)]
pub use upstream::{display_size, Upstream};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Harbor's default administrator and the password its installer ships with.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "Harbor12345";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const COSIGN_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// What Harbor writes for a time never set (`pull_time` of an artifact nobody pulled).
const ZERO_TIME: &str = "0001-01-01T00:00:00.000Z";

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

/// One request the fake saw, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarborRequest {
    pub method: String,
    /// The request target exactly as sent (path and query, still percent-encoded).
    pub url: String,
    /// The raw path, without the query.
    pub path: String,
    /// The raw query, without `?`; empty if none.
    pub query: String,
    /// Whether an `Authorization` header was sent.
    pub auth_present: bool,
    /// The Basic user name decoded from it (whether or not the password was right).
    pub username: Option<String>,
    /// The status the fake answered.
    pub status: u16,
    /// The `rel="next"` target of the `Link` header the fake answered with, if any.
    pub link_next: Option<String>,
}

impl HarborRequest {
    /// Whether this was a `listArtifacts` call.
    pub fn is_artifact_list(&self) -> bool {
        self.path.starts_with("/api/v2.0/projects/") && self.path.ends_with("/artifacts")
    }

    /// The decoded query parameters.
    pub fn params(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }

    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// A tag as Harbor lists it, for computing what a test expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTag {
    pub name: String,
    /// As Harbor writes it: `2024-05-01T10:00:00.000Z`.
    pub push_time: String,
    pub push_time_ms: u64,
    pub digest: String,
}

/// A running fake Harbor on `127.0.0.1:<random port>`; stops (and joins its thread) when dropped.
pub struct HarborFake {
    /// The front door's port (what clients connect to).
    port: u16,
    state: Arc<State>,
    requests: Arc<Mutex<Vec<HarborRequest>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    front: Option<JoinHandle<()>>,
}

struct StoredTag {
    id: i64,
    name: String,
    push_time_ms: u64,
}

struct StoredAccessory {
    id: i64,
    artifact_id: i64,
    digest: String,
    size: u64,
    creation_ms: u64,
}

struct StoredArtifact {
    id: i64,
    digest: String,
    manifest: Vec<u8>,
    config: Vec<u8>,
    config_digest: String,
    push_time_ms: u64,
    created: String,
    cosign_signature: bool,
    tags: Vec<StoredTag>,
    accessories: Vec<StoredAccessory>,
}

struct StoredRepository {
    id: i64,
    project: String,
    /// Inside the project: `team/app`.
    name: String,
    artifacts: Vec<StoredArtifact>,
}

#[derive(Clone)]
struct StoredProject {
    id: i64,
    name: String,
    public: bool,
}

struct State {
    users: Vec<(String, String)>,
    admins: Vec<String>,
    book: Mutex<projects::Book>,
    upstream: Option<Upstream>,
    /// Bytes PATCHed into each upload session (by its id), for the quota of its closing PUT.
    uploads: Mutex<HashMap<String, i64>>,
    /// The size of every blob pushed through the front, for the quota of a mount.
    sizes: Mutex<HashMap<String, i64>>,
    repositories: Vec<StoredRepository>,
    missing: Missing,
    utc_offset_minutes: fn(u64) -> i32,
    /// Statuses to answer the next `listArtifacts` calls with, before serving them normally.
    failures: Mutex<VecDeque<u16>>,
}

impl State {
    fn build(config: HarborConfig) -> State {
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
    fn time(&self, unix_ms: u64) -> String {
        harbor_time_with_offset(unix_ms, (self.utc_offset_minutes)(unix_ms))
    }

    fn project(&self, name: &str) -> Option<StoredProject> {
        self.book().by_name(name).map(|p| p.project.clone())
    }

    fn book(&self) -> std::sync::MutexGuard<'_, projects::Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn blob_sizes(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.sizes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn repository(&self, project: &str, name: &str) -> Option<&StoredRepository> {
        self.repositories
            .iter()
            .find(|r| r.project == project && r.name == name)
    }

    /// `project/name` for the distribution API.
    fn repository_by_full_name(&self, full: &str) -> Option<&StoredRepository> {
        let (project, name) = full.split_once('/')?;
        self.repository(project, name)
    }
}

impl HarborFake {
    /// Starts the fake on `127.0.0.1:<random port>`.
    pub fn start(config: HarborConfig) -> HarborFake {
        let state = Arc::new(State::build(config));
        let server = Arc::new(
            tiny_http::Server::http("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("fake Harbor: cannot bind 127.0.0.1:0: {e}")),
        );
        let inner_port = server
            .server_addr()
            .to_ip()
            .expect("fake Harbor listens on TCP")
            .port();
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fake Harbor: cannot bind 127.0.0.1:0: {e}"));
        let port = listener.local_addr().expect("front door address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let front = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("harbor-fake-door-{port}"))
                .spawn(move || front_door(&listener, inner_port, &stop))
                .expect("spawn fake Harbor front door")
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let requests = Arc::clone(&requests);
            let state = Arc::clone(&state);
            std::thread::Builder::new()
                .name(format!("harbor-fake-{port}"))
                .spawn(move || serve(&server, &state, &requests))
                .expect("spawn fake Harbor thread")
        };
        HarborFake {
            port,
            state,
            requests,
            server,
            thread: Some(thread),
            stop,
            front: Some(front),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, the registry host to put in references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Project `name`'s storage quota as `(hard, used)` bytes, if the project exists.
    pub fn quota(&self, name: &str) -> Option<(i64, i64)> {
        self.state.book().by_name(name).map(|p| (p.hard, p.used))
    }

    /// Whether project `name` is public, if it exists.
    pub fn project_public(&self, name: &str) -> Option<bool> {
        self.state.project(name).map(|p| p.public)
    }

    /// A snapshot of every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<HarborRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `listArtifacts` calls seen so far, in arrival order.
    pub fn artifact_list_requests(&self) -> Vec<HarborRequest> {
        self.requests()
            .into_iter()
            .filter(HarborRequest::is_artifact_list)
            .collect()
    }

    /// Answers the next `listArtifacts` calls with these statuses (e.g. 503, as the nginx in front
    /// of Harbor's core does while it restarts), one call each, before serving normally again.
    pub fn fail_next_artifact_lists(&self, statuses: &[u16]) {
        self.state
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(statuses.iter().copied());
    }

    /// Every tag of `project/repository` that the artifact list shows (accessories excluded), in
    /// no particular order.
    pub fn listed_tags(&self, project: &str, repository: &str) -> Vec<ListedTag> {
        let repo = self
            .state
            .repository(project, repository)
            .unwrap_or_else(|| panic!("no repository {project}/{repository} in the fake"));
        repo.artifacts
            .iter()
            .flat_map(|a| {
                a.tags.iter().map(|t| ListedTag {
                    name: t.name.clone(),
                    push_time: self.state.time(t.push_time_ms),
                    push_time_ms: t.push_time_ms,
                    digest: a.digest.clone(),
                })
            })
            .collect()
    }

    /// Sends `GET path_and_query` over a fresh connection (nothing normalises the path), with
    /// Basic `auth` if given; returns the status, the headers (names lower-cased) and the body.
    pub fn raw_get(
        &self,
        path_and_query: &str,
        auth: Option<(&str, &str)>,
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        self.raw("GET", path_and_query, auth, &[], b"")
    }

    /// [`HarborFake::raw_get`] with any method, extra headers and a body (sent with its
    /// `Content-Length`).
    pub fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        auth: Option<(&str, &str)>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect fake");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut head = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: {}\r\n",
            self.host()
        );
        if let Some((u, p)) = auth {
            head.push_str(&format!(
                "Authorization: Basic {}\r\n",
                STANDARD.encode(format!("{u}:{p}"))
            ));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("send request");
        stream.write_all(body).expect("send body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read response");
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("response has a header end");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let body = raw[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(&body)
        } else {
            body
        };
        (status, headers, body)
    }
}

impl Drop for HarborFake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking `accept` so the front door sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.front.take() {
            let _ = t.join();
        }
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections on the public port. Our client tries `https://` first even on loopback;
/// tiny_http would wait for a request line in the TLS `ClientHello` until the client's read
/// timeout (two minutes), so a handshake is answered at once with a plain-HTTP 400, as an HTTP
/// server does, and everything else is piped to tiny_http unchanged.
fn front_door(listener: &TcpListener, inner_port: u16, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let _ = std::thread::Builder::new()
            .name("harbor-fake-pipe".into())
            .spawn(move || pipe(client, inner_port));
    }
}

fn pipe(client: TcpStream, inner_port: u16) {
    let mut first = [0u8; 1];
    match client.peek(&mut first) {
        Ok(1) if first[0] == 0x16 => {
            let _ = (&client).write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Ok(1) => {}
        _ => return,
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", inner_port)) else {
        return;
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut &client2, &mut &server2);
        let _ = server2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut &server, &mut &client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// What a handler answers.
struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            body: serde_json::to_vec(value).expect("JSON serialises"),
            headers: vec![("Content-Type".into(), "application/json".into())],
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::json(
            status,
            &json!({"errors": [{"code": code, "message": message}]}),
        )
    }

    fn header(mut self, k: &str, v: &str) -> Answer {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// The same status without a body (201, HEAD answers).
    fn no_body(mut self) -> Answer {
        self.body.clear();
        self.headers.clear();
        self
    }
}

/// The credentials a request presented.
enum Presented {
    None,
    Valid(String),
    /// Wrong password, unknown user or not Basic; the user name if one could be decoded.
    Invalid(Option<String>),
}

fn serve(server: &tiny_http::Server, state: &State, log: &Mutex<Vec<HarborRequest>>) {
    let mut request_id = 0u64;
    // `recv` returns an error once `unblock` was called by Drop.
    while let Ok(mut req) = server.recv() {
        request_id += 1;
        let url = req.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (url.clone(), String::new()),
        };
        let method = req.method().as_str().to_string();
        let authorization = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .map(|h| h.value.as_str().to_string());
        let presented = check_auth(state, authorization.as_deref());
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect();
        let mut body = Vec::new();
        if req.as_reader().read_to_end(&mut body).is_err() {
            continue;
        }
        let call = projects::Call {
            method: &method,
            path: &path,
            query: &query,
            headers: &headers,
            body: &body,
            presented: &presented,
        };
        let answer = if let Some(a) = projects::route(state, &call) {
            a
        } else if let Some(up) = state.upstream.as_ref().filter(|_| path.starts_with("/v2")) {
            let f = upstream::Forward {
                method: &method,
                url: &url,
                path: &path,
                query: &query,
                headers: &headers,
                body: &body,
                presented: &presented,
            };
            upstream::forward(state, up, &f)
        } else if method != "GET" {
            Answer::error(405, "METHOD_NOT_ALLOWED", "the fake Harbor only serves GET")
        } else {
            route(state, &path, &query, &presented)
        };
        let link_next = answer
            .headers
            .iter()
            .find(|(k, _)| k == "Link")
            .and_then(|(_, v)| next_of(v));
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(HarborRequest {
                method,
                url: url.clone(),
                path,
                query,
                auth_present: authorization.is_some(),
                username: match &presented {
                    Presented::None => None,
                    Presented::Valid(u) => Some(u.clone()),
                    Presented::Invalid(u) => u.clone(),
                },
                status: answer.status,
                link_next,
            });
        // Whole bodies with their `Content-Length` (a forwarded HEAD keeps the blob's).
        let mut resp = tiny_http::Response::from_data(answer.body)
            .with_status_code(answer.status)
            .with_chunked_threshold(usize::MAX);
        resp.add_header(header("X-Request-Id", &format!("fake-{request_id}")));
        for (k, v) in &answer.headers {
            resp.add_header(header(k, v));
        }
        let _ = req.respond(resp);
    }
}

fn header(k: &str, v: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

fn check_auth(state: &State, authorization: Option<&str>) -> Presented {
    let Some(v) = authorization else {
        return Presented::None;
    };
    let decoded = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
        return Presented::Invalid(None);
    };
    if state.users.iter().any(|(u, p)| u == user && p == password) {
        Presented::Valid(user.to_string())
    } else {
        Presented::Invalid(Some(user.to_string()))
    }
}

fn route(state: &State, path: &str, query: &str, presented: &Presented) -> Answer {
    if path == "/api/v2.0/ping" {
        // `getPing`: anonymous, text/plain `Pong`.
        return Answer {
            status: 200,
            body: b"Pong".to_vec(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v2.0/projects/") {
        // The router splits the once-decoded path on `/`: a raw or single-encoded slash in the
        // repository name makes more segments, which no route matches.
        let segments: Vec<&str> = rest.split('/').collect();
        if let [project, "repositories", repository, "artifacts"] = segments[..] {
            return list_artifacts(state, path, project, repository, query, presented);
        }
        return Answer::error(404, "NOT_FOUND", &format!("no route for {path}"));
    }
    if path == "/v2" || path == "/v2/" {
        return match presented {
            Presented::Valid(_) => Answer::json(200, &json!({})),
            _ => unauthorized_v2(),
        };
    }
    if let Some(rest) = path.strip_prefix("/v2/") {
        return distribution(state, rest, query, presented);
    }
    Answer::error(404, "NOT_FOUND", &format!("no route for {path}"))
}

/// Whether the caller may read `project` (Harbor's rules: Basic credentials must be right when
/// given; a private project needs them).
fn api_access(project: Option<&StoredProject>, presented: &Presented) -> Result<(), Answer> {
    match presented {
        Presented::Invalid(_) => Err(Answer::error(401, "UNAUTHORIZED", "unauthorized")),
        Presented::Valid(_) => Ok(()),
        Presented::None if project.is_some_and(|p| p.public) => Ok(()),
        Presented::None => Err(Answer::error(401, "UNAUTHORIZED", "unauthorized")),
    }
}

fn list_artifacts(
    state: &State,
    path: &str,
    project_raw: &str,
    repository_raw: &str,
    query: &str,
    presented: &Presented,
) -> Answer {
    let injected = state
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop_front();
    if let Some(status) = injected {
        return Answer {
            status,
            body: format!("<html><body><h1>{status}</h1>injected by the test</body></html>")
                .into_bytes(),
            headers: vec![("Content-Type".into(), "text/html".into())],
        };
    }
    let (Some(project_name), Some(once)) =
        (percent_decode(project_raw), percent_decode(repository_raw))
    else {
        return Answer::error(400, "BAD_REQUEST", "invalid percent-encoding in the path");
    };
    // `repository_name`: "If it contains slash, encode it with URL encoding. e.g. a/b -> a%252Fb".
    // The router decoded once; the handler's `unescapePathParams` decodes the second time.
    if once.contains('/') {
        return Answer::error(404, "NOT_FOUND", &format!("no route for {path}"));
    }
    let Some(repository_name) = percent_decode(&once) else {
        return Answer::error(
            400,
            "BAD_REQUEST",
            "invalid percent-encoding in repository_name",
        );
    };
    let project = state.project(&project_name);
    if let Err(a) = api_access(project.as_ref(), presented) {
        return a;
    }

    // Query parameters, validated as go-swagger does for this operation.
    let params = parse_query(query);
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let int = |k: &str, default: i64| -> Result<i64, Answer> {
        match get(k) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<i64>().map_err(|_| {
                Answer::error(
                    422,
                    "UNPROCESSABLE_ENTITY",
                    &format!("{k} in query must be of type int64: \"{v}\""),
                )
            }),
        }
    };
    let boolean = |k: &str, default: bool| -> Result<bool, Answer> {
        match get(k) {
            None | Some("") => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(Answer::error(
                422,
                "UNPROCESSABLE_ENTITY",
                &format!("{k} in query must be of type bool: \"{v}\""),
            )),
        }
    };
    let page = match int("page", 1) {
        Ok(p) => p.max(1),
        Err(a) => return a,
    };
    let page_size = match int("page_size", 10) {
        Ok(s) if s > 100 => {
            return Answer::error(
                422,
                "UNPROCESSABLE_ENTITY",
                "page_size in query should be less than or equal to 100",
            )
        }
        Ok(s) if s < 1 => {
            return Answer::error(
                400,
                "BAD_REQUEST",
                "the fake Harbor does not implement page_size < 1",
            )
        }
        Ok(s) => s,
        Err(a) => return a,
    };
    let (with_tag, with_accessory) =
        match (boolean("with_tag", true), boolean("with_accessory", false)) {
            (Ok(t), Ok(a)) => (t, a),
            (Err(e), _) | (_, Err(e)) => return e,
        };
    for k in [
        "with_label",
        "with_scan_overview",
        "with_sbom_overview",
        "with_signature",
        "with_immutable_status",
    ] {
        if let Err(e) = boolean(k, false) {
            return e;
        }
    }
    let tags_filter = match get("q") {
        None | Some("") => None,
        Some("tags=*") => Some(true),
        Some("tags=nil") => Some(false),
        Some(other) => {
            return Answer::error(
                400,
                "BAD_REQUEST",
                &format!("the fake Harbor does not implement q={other}"),
            )
        }
    };
    // Harbor's default order for artifacts: push_time descending, then id descending.
    let mut sorts = vec![("push_time", true), ("id", true)];
    if let Some(sort) = get("sort").filter(|s| !s.is_empty()) {
        sorts.clear();
        for key in sort.split(',') {
            let (name, desc) = match key.strip_prefix('-') {
                Some(k) => (k, true),
                None => (key, false),
            };
            match name {
                "push_time" => sorts.push(("push_time", desc)),
                "id" => sorts.push(("id", desc)),
                _ => {
                    return Answer::error(
                        400,
                        "BAD_REQUEST",
                        &format!("the fake Harbor does not implement sort={sort}"),
                    )
                }
            }
        }
    }

    let Some(repository) = state.repository(&project_name, &repository_name) else {
        return match (state.missing, project) {
            (Missing::NotFound, None) => Answer::error(
                404,
                "NOT_FOUND",
                &format!("project {project_name} not found"),
            ),
            (Missing::NotFound, Some(_)) => Answer::error(
                404,
                "NOT_FOUND",
                &format!("repository {project_name}/{repository_name} not found"),
            ),
            (Missing::LikeHandler, None) => Answer::error(403, "FORBIDDEN", "forbidden"),
            (Missing::LikeHandler, Some(_)) => {
                Answer::json(200, &json!([])).header("X-Total-Count", "0")
            }
        };
    };
    let project = project.expect("a repository's project exists");

    let mut listed: Vec<&StoredArtifact> = repository
        .artifacts
        .iter()
        .filter(|a| match tags_filter {
            None => true,
            Some(true) => !a.tags.is_empty(),
            Some(false) => a.tags.is_empty(),
        })
        .collect();
    listed.sort_by(|a, b| {
        let mut ord = std::cmp::Ordering::Equal;
        for (key, desc) in &sorts {
            let o = match *key {
                "push_time" => a.push_time_ms.cmp(&b.push_time_ms),
                _ => a.id.cmp(&b.id),
            };
            ord = ord.then(if *desc { o.reverse() } else { o });
        }
        ord
    });
    let total = listed.len() as i64;
    let start = ((page - 1) * page_size).min(total) as usize;
    let end = (page * page_size).min(total) as usize;
    let encoded_repo = double_encode(&repository.name);
    let body: Vec<Value> = listed[start..end]
        .iter()
        .map(|a| {
            artifact_json(
                state,
                a,
                &project,
                repository,
                &encoded_repo,
                with_tag,
                with_accessory,
            )
        })
        .collect();
    let mut answer =
        Answer::json(200, &Value::Array(body)).header("X-Total-Count", &total.to_string());
    let link = links(path, &params, total, page, page_size);
    if !link.is_empty() {
        answer = answer.header("Link", &link);
    }
    answer
}

/// Harbor's `BaseAPI.Links`: the request path as sent; the query re-encoded with `page` and
/// `page_size` set (Go's `Values.Encode` sorts keys) and then query-unescaped.
fn links(path: &str, params: &[(String, String)], total: i64, page: i64, size: i64) -> String {
    let target = |p: i64| {
        let mut q: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in params {
            q.entry(k.clone()).or_default().push(v.clone());
        }
        q.insert("page".into(), vec![p.to_string()]);
        q.insert("page_size".into(), vec![size.to_string()]);
        let query: Vec<String> = q
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}={v}")))
            .collect();
        format!("{path}?{}", query.join("&"))
    };
    let mut out = Vec::new();
    if page > 1 && (page - 1) * size < total {
        out.push(format!("<{}>; rel=\"prev\"", target(page - 1)));
    }
    if size * page < total {
        out.push(format!("<{}>; rel=\"next\"", target(page + 1)));
    }
    out.join(" , ")
}

fn next_of(link: &str) -> Option<String> {
    link.split(" , ").find_map(|l| {
        l.strip_suffix("; rel=\"next\"")
            .map(|t| t.trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

fn artifact_json(
    state: &State,
    a: &StoredArtifact,
    project: &StoredProject,
    repository: &StoredRepository,
    encoded_repo: &str,
    with_tag: bool,
    with_accessory: bool,
) -> Value {
    let tags: Value = if with_tag && !a.tags.is_empty() {
        a.tags
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "repository_id": repository.id,
                    "artifact_id": a.id,
                    "name": t.name,
                    "push_time": state.time(t.push_time_ms),
                    "pull_time": ZERO_TIME,
                    "immutable": false,
                    "signed": false,
                })
            })
            .collect()
    } else {
        Value::Null
    };
    let accessories: Value = if with_accessory {
        a.accessories
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "artifact_id": s.artifact_id,
                    "subject_artifact_id": a.id,
                    "subject_artifact_digest": a.digest,
                    "subject_artifact_repo": format!("{}/{}", repository.project, repository.name),
                    "size": s.size,
                    "digest": s.digest,
                    "type": "signature.cosign",
                    "icon": "",
                    "creation_time": state.time(s.creation_ms),
                })
            })
            .collect()
    } else {
        Value::Null
    };
    let base = format!(
        "/api/v2.0/projects/{}/repositories/{encoded_repo}/artifacts/{}/additions",
        repository.project, a.digest
    );
    json!({
        "id": a.id,
        "type": "IMAGE",
        "media_type": OCI_CONFIG,
        "manifest_media_type": OCI_MANIFEST,
        "project_id": project.id,
        "repository_id": repository.id,
        "digest": a.digest,
        "size": a.manifest.len() + a.config.len(),
        "icon": "",
        "push_time": state.time(a.push_time_ms),
        "pull_time": ZERO_TIME,
        "extra_attrs": if a.cosign_signature {
            json!({"architecture": "", "os": "", "created": a.created, "config": {}})
        } else {
            json!({"architecture": "amd64", "os": "linux", "created": a.created, "config": {}})
        },
        "annotations": null,
        "references": null,
        "tags": tags,
        "addition_links": {
            "build_history": {"href": format!("{base}/build_history"), "absolute": false},
            "vulnerabilities": {"href": format!("{base}/vulnerabilities"), "absolute": false},
        },
        "labels": null,
        "accessories": accessories,
    })
}

fn unauthorized_v2() -> Answer {
    Answer::error(401, "UNAUTHORIZED", "unauthorized: unauthorized")
        .header("WWW-Authenticate", "Basic realm=\"harbor\"")
        .header("Docker-Distribution-API-Version", "registry/2.0")
}

/// The distribution API, minimally: `tags/list` (with `n` and `last`), manifests by tag or
/// digest, blobs (configs only).
fn distribution(state: &State, rest: &str, query: &str, presented: &Presented) -> Answer {
    let (name, kind, reference) = if let Some(name) = rest.strip_suffix("/tags/list") {
        (name, "tags", "")
    } else if let Some((name, r)) = rest.rsplit_once("/manifests/") {
        (name, "manifests", r)
    } else if let Some((name, r)) = rest.rsplit_once("/blobs/") {
        (name, "blobs", r)
    } else {
        return Answer::error(404, "NOT_FOUND", &format!("no route for /v2/{rest}"));
    };
    let project = name.split('/').next().and_then(|p| state.project(p));
    match presented {
        Presented::Valid(_) => {}
        Presented::None if project.is_some_and(|p| p.public) => {}
        _ => return unauthorized_v2(),
    }
    let Some(repository) = state.repository_by_full_name(name) else {
        return Answer::error(
            404,
            "NAME_UNKNOWN",
            &format!("repository name not known to registry: {name}"),
        );
    };
    match kind {
        "tags" => {
            let params = parse_query(query);
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let mut tags: Vec<String> = repository
                .artifacts
                .iter()
                .flat_map(|a| a.tags.iter().map(|t| t.name.clone()))
                .collect();
            tags.sort();
            if let Some(last) = get("last") {
                tags.retain(|t| *t > last);
            }
            let n = get("n").and_then(|n| n.parse::<usize>().ok());
            let mut answer_link = None;
            if let Some(n) = n {
                if tags.len() > n {
                    tags.truncate(n);
                    answer_link = Some(format!(
                        "</v2/{name}/tags/list?last={}&n={n}>; rel=\"next\"",
                        tags[n - 1]
                    ));
                }
            }
            let mut a = Answer::json(200, &json!({"name": name, "tags": tags}));
            if let Some(l) = answer_link {
                a = a.header("Link", &l);
            }
            a
        }
        "manifests" => {
            let found = repository
                .artifacts
                .iter()
                .find(|a| a.digest == reference || a.tags.iter().any(|t| t.name == reference));
            match found {
                Some(a) => Answer {
                    status: 200,
                    body: a.manifest.clone(),
                    headers: vec![
                        ("Content-Type".into(), OCI_MANIFEST.into()),
                        ("Docker-Content-Digest".into(), a.digest.clone()),
                    ],
                },
                None => Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            }
        }
        _ => match repository
            .artifacts
            .iter()
            .find(|a| a.config_digest == reference)
        {
            Some(a) => Answer {
                status: 200,
                body: a.config.clone(),
                headers: vec![
                    ("Content-Type".into(), "application/octet-stream".into()),
                    ("Docker-Content-Digest".into(), a.config_digest.clone()),
                ],
            },
            None => Answer::error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
        },
    }
}

/// Harbor's repository-name encoding in a path: URL-encode, then URL-encode again.
pub fn double_encode(name: &str) -> String {
    percent_encode(&percent_encode(name))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Strict percent-decoding of a path segment: `None` on a malformed escape (Go answers 400).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `a=b&c=d` with `+` as space.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let d = |s: &str| {
                let s = s.replace('+', " ");
                percent_decode(&s).unwrap_or(s)
            };
            (d(k), d(v))
        })
        .collect()
}

fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = rest.get(start + size + 2..).unwrap_or(&[]);
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A time the way Harbor's API writes it (go-openapi `strfmt.DateTime`, RFC 3339 with
/// milliseconds) from a core running in UTC: `2024-05-01T10:00:00.000Z`.
pub fn harbor_time(unix_ms: u64) -> String {
    harbor_time_with_offset(unix_ms, 0)
}

/// The same from a core whose local time is `offset_minutes` from UTC:
/// `2024-10-27T02:30:00.000+02:00` (`Z` for 0).
pub fn harbor_time_with_offset(unix_ms: u64, offset_minutes: i32) -> String {
    let local = (unix_ms as i64 + i64::from(offset_minutes) * 60_000) as u64;
    let secs = rfc3339_seconds(local);
    let zone = if offset_minutes == 0 {
        "Z".to_string()
    } else {
        let (sign, m) = if offset_minutes < 0 {
            ('-', -offset_minutes)
        } else {
            ('+', offset_minutes)
        };
        format!("{sign}{:02}:{:02}", m / 60, m % 60)
    };
    format!("{}.{:03}{zone}", secs.trim_end_matches('Z'), local % 1000)
}

/// `2024-05-01T10:00:00Z` (whole seconds, UTC) of a Unix time in milliseconds.
pub fn rfc3339_seconds(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(t).to_string()
}
