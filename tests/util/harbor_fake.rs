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
//! Projects and quotas ([`projects`]): list, head, get and create projects, list their quotas and
//! read `storage_per_project` ([`configurations`]) as the swagger says, with a `library` project
//! as every Harbor has. In front of a real registry ([`HarborConfig::upstream`], [`upstream`])
//! the distribution API is forwarded to it after Harbor's project and quota checks, so pushes
//! meet Harbor's refusals.
#![allow(dead_code)]

mod artifacts;
mod configurations;
mod distribution;
mod fixture;
mod projects;
mod server;
mod state;
mod upstream;
mod wire;

pub use fixture::*;
pub use wire::*;
#[allow(unused_imports)]
use {artifacts::*, distribution::*, server::*, state::*};

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
