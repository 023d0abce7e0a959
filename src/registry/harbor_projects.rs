//! Harbor projects and their storage quotas, for loading a bundle (issue 11): Harbor refuses
//! pushes into a project that does not exist (`401 UNAUTHORIZED`, "project X not found") and
//! pushes past a project's quota (`403 DENIED`), so both are settled through Harbor's REST API
//! v2.0 before anything is sent. Follows the published swagger (`api/v2.0/swagger.yaml` in
//! goharbor/harbor): `getProject` (`GET /api/v2.0/projects/{project_name_or_id}` with
//! `X-Is-Resource-Name: true`: 200 `Project`, 404), `createProject` (`POST /api/v2.0/projects`
//! with a `ProjectReq`: 201 + `Location`, 409 when the name is taken) and `listQuotas`
//! (`GET /api/v2.0/quotas?reference=project&reference_id=ID`: `[Quota]`). Basic auth with an
//! admin login (listing quotas is a system-admin right); transport, bounded reads and the
//! escaping of Harbor's error text are the registry client's ([`super::harbor`] for the rest
//! of Harbor's API).

use std::collections::BTreeMap;

use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use url::Url;

use super::auth::Credentials;
use super::client::{error_message, Client};
use super::error::Error;
use super::harbor::SEGMENT;
use super::quota::{self, QuotaExceeded, StorageQuota};
use super::transport::read_body;
use crate::text::escape;

/// Harbor's answers here are one project or a handful of quotas.
const ANSWER_LIMIT: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectsError {
    #[error("Harbor at {registry} refused {action} (HTTP {status}): the login is not a Harbor admin; use the harbor-admin login (--credentials-from-cluster) or an admin's --username with --password-stdin")]
    NotAdmin {
        registry: String,
        action: String,
        status: u16,
    },
    #[error("project {projects} does not exist in Harbor at {registry}; create it or load with --create-projects")]
    Missing {
        /// The missing projects, escaped and comma-separated.
        projects: String,
        registry: String,
    },
    #[error("Harbor at {registry} refused to create project {project} (HTTP {status}: {message}); create it in Harbor or load the bundle under another project name")]
    CreateRefused {
        project: String,
        registry: String,
        status: u16,
        message: String,
    },
    #[error("{project} is not a Harbor project name (lower-case letters and digits, single '.', '_' or '-' between them, at most 255 characters); rename it in the bundle")]
    InvalidName { project: String },
    #[error("Harbor at {registry} answered {what} with something else than its API describes: {reason}; check that REGISTRY is the Harbor itself")]
    Unexpected {
        registry: String,
        what: String,
        reason: String,
    },
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    #[error(transparent)]
    Registry(#[from] Error),
}

pub type Result<T> = std::result::Result<T, ProjectsError>;

/// A Harbor project (the swagger's `Project`, the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    /// `metadata.public == "true"`.
    pub public: bool,
}

#[derive(Deserialize)]
struct ProjectJson {
    project_id: i64,
    name: String,
    #[serde(default)]
    metadata: Option<MetadataJson>,
}

#[derive(Deserialize)]
struct MetadataJson {
    #[serde(default)]
    public: Option<String>,
}

#[derive(Deserialize)]
struct QuotaJson {
    #[serde(default)]
    hard: BTreeMap<String, i64>,
    #[serde(default)]
    used: BTreeMap<String, i64>,
}

/// What creating a project came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Created {
    /// 201: this call made it.
    Created,
    /// 409: someone else (another loader) made it first.
    AlreadyExisted,
}

/// Whether `name` is a project name Harbor accepts (`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`, 1 to 255
/// characters, as its project manager checks). Checked before it goes into a URL.
pub fn valid_project_name(name: &str) -> bool {
    let separator = |b: u8| matches!(b, b'.' | b'_' | b'-');
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || separator(c))
        && !separator(b[0])
        && !separator(b[b.len() - 1])
        && !b.windows(2).any(|w| separator(w[0]) && separator(w[1]))
}

fn check_name(name: &str) -> Result<()> {
    if valid_project_name(name) {
        Ok(())
    } else {
        Err(ProjectsError::InvalidName {
            project: escape(name).into_owned(),
        })
    }
}

/// The URL of `path` (with its query) on the registry's origin.
fn api_url(client: &Client, path: &str) -> Result<Url> {
    client.base_url().join(path).map_err(|e| {
        ProjectsError::from(Error::Protocol {
            url: escape(path).into_owned(),
            reason: e.to_string(),
        })
    })
}

/// Headers of an API call: JSON, and the Basic login when the URL is the registry's own origin.
fn headers(client: &Client, creds: &Credentials, url: &Url) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(b) = creds.basic_header() {
        if client
            .policy()
            .registry_may_receive(url, "the Harbor API credentials")
        {
            h.insert(AUTHORIZATION, b);
        }
    }
    h
}

/// Maps a failure answer: 401/403 say the login is not an admin's, the rest keep Harbor's
/// (escaped) error text.
pub(super) async fn failure(
    client: &Client,
    method: &str,
    url: &Url,
    action: &str,
    resp: Response,
) -> ProjectsError {
    match resp.status() {
        s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => ProjectsError::NotAdmin {
            registry: client.registry().to_string(),
            action: action.to_string(),
            status: s.as_u16(),
        },
        _ => client.fail(method, url, action, resp).await.into(),
    }
}

/// Reads and parses a JSON answer.
async fn json<T: serde::de::DeserializeOwned>(
    client: &Client,
    resp: Response,
    what: &str,
) -> Result<T> {
    let body = read_body(resp, ANSWER_LIMIT, what, "GET").await?;
    serde_json::from_slice(&body).map_err(|e| ProjectsError::Unexpected {
        registry: client.registry().to_string(),
        what: what.to_string(),
        reason: escape(&e.to_string()).into_owned(),
    })
}

/// Project `name`, or `None` when Harbor has none by that name (`getProject`, by name).
pub async fn project(client: &Client, creds: &Credentials, name: &str) -> Result<Option<Project>> {
    check_name(name)?;
    let path = format!("api/v2.0/projects/{}", utf8_percent_encode(name, SEGMENT));
    let url = api_url(client, &path)?;
    let mut h = headers(client, creds, &url);
    h.insert("X-Is-Resource-Name", HeaderValue::from_static("true"));
    let resp = client.send_raw(Method::GET, url.clone(), h).await?;
    let action = format!("reading project {name}");
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Ok(None),
        _ => return Err(failure(client, "GET", &url, &action, resp).await),
    }
    let p: ProjectJson = json(client, resp, &format!("project {name}")).await?;
    if p.name != name {
        return Err(ProjectsError::Unexpected {
            registry: client.registry().to_string(),
            what: format!("project {name}"),
            reason: format!("it named project {}", escape(&p.name)),
        });
    }
    Ok(Some(Project {
        id: p.project_id,
        public: p.metadata.and_then(|m| m.public).as_deref() == Some("true"),
        name: p.name,
    }))
}

/// Creates private project `name` with Harbor's default storage limit (`createProject`:
/// `metadata.public = "false"`, `storage_limit` left out). A 409 means another loader made it
/// first, which is as good.
pub async fn create_project(client: &Client, creds: &Credentials, name: &str) -> Result<Created> {
    check_name(name)?;
    let url = api_url(client, "api/v2.0/projects")?;
    let mut h = headers(client, creds, &url);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::json!({"project_name": name, "metadata": {"public": "false"}});
    let body = Bytes::from(serde_json::to_vec(&body).expect("JSON serialises"));
    let resp = client
        .send_raw_body(Method::POST, url.clone(), h, body)
        .await?;
    match resp.status() {
        StatusCode::CREATED => Ok(Created::Created),
        StatusCode::CONFLICT => Ok(Created::AlreadyExisted),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(failure(
            client,
            "POST",
            &url,
            &format!("creating project {name}"),
            resp,
        )
        .await),
        s => Err(ProjectsError::CreateRefused {
            project: name.to_string(),
            registry: client.registry().to_string(),
            status: s.as_u16(),
            message: error_message(resp).await,
        }),
    }
}

/// The storage quota of project `project_id` (`listQuotas`), or `None` when Harbor keeps no
/// storage quota for it (nothing to check).
pub async fn storage_quota(
    client: &Client,
    creds: &Credentials,
    project_id: i64,
) -> Result<Option<StorageQuota>> {
    let path = format!("api/v2.0/quotas?reference=project&reference_id={project_id}");
    let url = api_url(client, &path)?;
    let resp = client
        .send_raw(Method::GET, url.clone(), headers(client, creds, &url))
        .await?;
    let action = format!("reading the quota of project {project_id}");
    if resp.status() != StatusCode::OK {
        return Err(failure(client, "GET", &url, &action, resp).await);
    }
    let quotas: Vec<QuotaJson> =
        json(client, resp, &format!("the quota of project {project_id}")).await?;
    Ok(quotas.into_iter().find_map(|q| {
        let hard = *q.hard.get("storage")?;
        Some(StorageQuota {
            hard,
            used: q.used.get("storage").copied().unwrap_or(0),
        })
    }))
}

/// Harbor's `storage_per_project` (`getConfigurations`, admin only): the hard limit a project
/// gets when it is created; -1 (unlimited) when Harbor does not say.
pub async fn default_storage_limit(client: &Client, creds: &Credentials) -> Result<i64> {
    #[derive(Deserialize)]
    struct Item {
        value: i64,
    }
    #[derive(Deserialize)]
    struct Configurations {
        #[serde(default)]
        storage_per_project: Option<Item>,
    }
    let url = api_url(client, "api/v2.0/configurations")?;
    let resp = client
        .send_raw(Method::GET, url.clone(), headers(client, creds, &url))
        .await?;
    if resp.status() != StatusCode::OK {
        let action = "reading the system configuration";
        return Err(failure(client, "GET", &url, action, resp).await);
    }
    let c: Configurations = json(client, resp, "the system configuration").await?;
    Ok(c.storage_per_project.map_or(quota::UNLIMITED, |i| i.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_as_harbor_checks_them() {
        for ok in ["app", "a", "team-1", "a.b_c-d", "0day", &"x".repeat(255)] {
            assert!(valid_project_name(ok), "{ok}");
        }
        let long = "x".repeat(256);
        for bad in [
            "", "App", "a b", "-a", "a-", "a--b", "a._b", "a/b", "ä", "a%2F", "..", &long,
        ] {
            assert!(!valid_project_name(bad), "{bad}");
        }
    }

    #[test]
    fn errors_are_one_line_and_say_what_to_do() {
        let e = ProjectsError::Missing {
            projects: "app, web".into(),
            registry: "harbor.example.com".into(),
        };
        assert_eq!(
            e.to_string(),
            "project app, web does not exist in Harbor at harbor.example.com; create it or load with --create-projects"
        );
        let e = ProjectsError::InvalidName {
            project: escape("a\u{1b}[2J").into_owned(),
        };
        assert!(!e.to_string().contains('\u{1b}'), "{e}");
        assert!(!e.to_string().contains('\n'));
    }
}
