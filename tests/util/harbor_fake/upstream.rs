//! The fake Harbor in front of a REAL registry (Distribution, [`crate::util::registry`]): the
//! distribution API (`/v2/…`) is forwarded to it byte for byte (its own `Location`s already point
//! back at the fake: the client's `Host` goes with the request), after the checks Harbor's
//! middlewares make on the way, so a client pushing through the fake meets Harbor's refusals:
//!
//! - a repository in a project that does not exist: Harbor's `v2auth` middleware cannot find the
//!   project and answers `401` `UNAUTHORIZED` "project X not found: project X not found" (its
//!   `UnauthorizedError(err).WithMessage(err.Error())` repeats the cause) with
//!   `Www-Authenticate: Basic realm="harbor"`, whatever the method;
//! - storage past the project's quota: Harbor's quota middlewares reserve the bytes before the
//!   request goes on and answer `403` `DENIED` "adding 1.2 KiB of storage resource, which when
//!   updated to current usage of 0 B will exceed the configured upper limit of 1.0 KiB."
//!   (`quota.ResourceOverflow`) — on a blob upload's closing PUT (its `Content-Length`, else the
//!   bytes its PATCHes sent), a cross-repository mount (the blob's size), a manifest PUT (the
//!   manifest plus the blobs it references that the project does not hold yet), and an upload's
//!   POST when the project is already past its limit. A blob the project already holds costs
//!   nothing; `used` grows by what each successful request was charged.
//!
//! The upstream is reached with its own Basic login (htpasswd); the client authenticates to the
//! fake with the fake's users, as with Harbor.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use super::{dechunk, parse_query, unauthorized_v2, Answer, Presented, State};

/// The registry behind the fake: `127.0.0.1:PORT`, plain HTTP, Basic auth.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub host: String,
    pub username: String,
    pub password: String,
}

/// The request as the front needs it.
pub(super) struct Forward<'a> {
    pub(super) method: &'a str,
    /// Path and query as sent (`/v2/…`).
    pub(super) url: &'a str,
    pub(super) path: &'a str,
    pub(super) query: &'a str,
    pub(super) headers: &'a [(String, String)],
    pub(super) body: &'a [u8],
    pub(super) presented: &'a Presented,
}

/// What a request would store, for the quota.
enum Charge {
    None,
    /// Bytes and the digests the project holds once it succeeded.
    Storage(i64, Vec<String>),
}

/// Answers one `/v2/…` request: Harbor's checks, then the upstream's answer.
pub(super) fn forward(state: &State, up: &Upstream, f: &Forward) -> Answer {
    let rest = f.path.trim_start_matches("/v2").trim_start_matches('/');
    let anonymous_read = matches!(f.presented, Presented::None) && f.method == "GET";
    let valid = matches!(f.presented, Presented::Valid(_));
    if !valid && (rest.is_empty() || !anonymous_read) {
        return unauthorized_v2();
    }
    if rest.is_empty() || rest == "_catalog" {
        return send(up, f);
    }
    let Some(name) = repository_of(rest) else {
        return Answer::error(404, "NOT_FOUND", &format!("no route for {}", f.path));
    };
    let project = name.split('/').next().unwrap_or("");
    let known = state.book().by_name(project).map(|p| p.project.public);
    match known {
        None => return project_not_found(project),
        Some(public) if !public && !valid => return unauthorized_v2(),
        _ => {}
    }
    let charge = match charge(state, project, rest, f) {
        Ok(c) => c,
        Err(a) => return a,
    };
    if let Some(uuid) = upload_of(rest).filter(|_| f.method == "PATCH") {
        let mut uploads = state.uploads.lock().unwrap_or_else(|e| e.into_inner());
        *uploads.entry(uuid.to_string()).or_default() += f.body.len() as i64;
    }
    let answer = send(up, f);
    if let (Charge::Storage(bytes, digests), 200..=299) = (charge, answer.status) {
        let mut book = state.book();
        let p = book.by_name_mut(project).expect("checked above");
        p.used += bytes;
        p.blobs.extend(digests);
    }
    answer
}

/// Harbor's answer to any distribution request into a project it does not have.
fn project_not_found(project: &str) -> Answer {
    let m = format!("project {project} not found");
    unauthorized_v2_with(&format!("{m}: {m}"))
}

fn unauthorized_v2_with(message: &str) -> Answer {
    Answer::error(401, "UNAUTHORIZED", message)
        .header("Www-Authenticate", "Basic realm=\"harbor\"")
        .header("Docker-Distribution-Api-Version", "registry/2.0")
}

/// The repository of a distribution path (`proj/app/blobs/…` → `proj/app`).
fn repository_of(rest: &str) -> Option<&str> {
    ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|k| rest.find(k).map(|i| &rest[..i]))
        .min_by_key(|n| n.len())
}

/// The upload session of `…/blobs/uploads/<uuid>`.
fn upload_of(rest: &str) -> Option<&str> {
    let (_, uuid) = rest.rsplit_once("/blobs/uploads/")?;
    Some(uuid).filter(|u| !u.is_empty())
}

/// What the request would add to the project's storage, refused (403 `DENIED`) when it does
/// not fit, as Harbor's quota middlewares do.
fn charge(state: &State, project: &str, rest: &str, f: &Forward) -> Result<Charge, Answer> {
    let params = parse_query(f.query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (bytes, digests) = match f.method {
        "POST" if rest.ends_with("/blobs/uploads/") || rest.ends_with("/blobs/uploads") => {
            match param("mount") {
                None => (0, vec![]),
                Some(d) => {
                    let size = state.blob_sizes().get(&d).copied();
                    match size {
                        Some(s) if !holds(state, project, &d) => (s, vec![d]),
                        _ => return Ok(Charge::None),
                    }
                }
            }
        }
        "PUT" if upload_of(rest).is_some() => {
            let Some(digest) = param("digest") else {
                return Ok(Charge::None);
            };
            let uuid = upload_of(rest).expect("matched");
            let patched = {
                let uploads = state.uploads.lock().unwrap_or_else(|e| e.into_inner());
                uploads.get(uuid).copied().unwrap_or(0)
            };
            let put = f.body.len() as i64;
            state.blob_sizes().insert(digest.clone(), patched + put);
            // Harbor charges the closing PUT's Content-Length, else what the PATCHes sent.
            let size = if put > 0 { put } else { patched };
            if size == 0 || holds(state, project, &digest) {
                return Ok(Charge::Storage(0, vec![digest]));
            }
            (size, vec![digest])
        }
        "PUT" if rest.contains("/manifests/") => manifest_charge(state, project, f.body),
        _ => return Ok(Charge::None),
    };
    let book = state.book();
    let p = book.by_name(project).expect("checked by the caller");
    if p.hard != -1 && p.used + bytes > p.hard {
        return Err(Answer::error(
            403,
            "DENIED",
            &format!(
                "adding {} of storage resource, which when updated to current usage of {} will exceed the configured upper limit of {}.",
                display_size(bytes),
                display_size(p.used),
                display_size(p.hard)
            ),
        ));
    }
    Ok(Charge::Storage(bytes, digests))
}

fn holds(state: &State, project: &str, digest: &str) -> bool {
    state
        .book()
        .by_name(project)
        .is_some_and(|p| p.blobs.contains(digest))
}

/// A manifest PUT costs the manifest and the blobs it references that the project does not hold
/// (foreign layers excepted); nothing when the project holds the manifest already.
fn manifest_charge(state: &State, project: &str, body: &[u8]) -> (i64, Vec<String>) {
    let digest = super::sha256_digest(body);
    if holds(state, project, &digest) {
        return (0, vec![]);
    }
    let mut bytes = body.len() as i64;
    let mut digests = vec![digest];
    let manifest: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut refs: Vec<&Value> = Vec::new();
    refs.extend(manifest.get("config"));
    for k in ["layers", "manifests"] {
        refs.extend(
            manifest
                .get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    for r in refs {
        let (Some(d), Some(size)) = (r["digest"].as_str(), r["size"].as_i64()) else {
            continue;
        };
        let foreign = r["mediaType"]
            .as_str()
            .is_some_and(|m| m.contains("foreign") || m.contains("nondistributable"));
        if !foreign && !holds(state, project, d) {
            bytes += size;
            digests.push(d.to_string());
        }
    }
    (bytes, digests)
}

/// Harbor's `byteCountToDisplaySize`: `512 B`, `1.0 KiB`, `1.2 GiB`.
pub fn display_size(value: i64) -> String {
    if value < 1024 {
        return format!("{value} B");
    }
    let (mut div, mut exp) = (1024i64, 0usize);
    let mut n = value / 1024;
    while n >= 1024 {
        div *= 1024;
        exp += 1;
        n /= 1024;
    }
    format!(
        "{:.1} {}iB",
        value as f64 / div as f64,
        &"KMGTPE"[exp..exp + 1]
    )
}

/// Sends the request to the upstream as HTTP/1.1 (`Connection: close`) with its login, and
/// turns its answer into the fake's.
fn send(up: &Upstream, f: &Forward) -> Answer {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&up.host)
        .unwrap_or_else(|e| panic!("fake Harbor: cannot reach the upstream {}: {e}", up.host));
    let mut head = format!("{} {} HTTP/1.1\r\n", f.method, f.url);
    let skip = [
        "authorization",
        "connection",
        "content-length",
        "transfer-encoding",
        "expect",
        "keep-alive",
    ];
    for (k, v) in f.headers {
        if !skip.contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let login = STANDARD.encode(format!("{}:{}", up.username, up.password));
    head.push_str(&format!("Authorization: Basic {login}\r\n"));
    if !f.body.is_empty() || matches!(f.method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", f.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(f.body));
    let mut raw = Vec::new();
    if sent.is_err() || stream.read_to_end(&mut raw).is_err() {
        return Answer::error(
            502,
            "UNKNOWN",
            "the fake's upstream registry broke the exchange",
        );
    }
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::error(502, "UNKNOWN", "the fake's upstream answered no HTTP head");
    };
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let mut headers = Vec::new();
    let mut chunked = false;
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.eq_ignore_ascii_case("chunked");
        } else if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("keep-alive") {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let body = &raw[split + 4..];
    let body = if f.method == "HEAD" {
        Vec::new()
    } else if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Answer {
        status,
        body,
        headers,
    }
}
