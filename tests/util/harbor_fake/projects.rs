//! The fake Harbor's projects and quotas, as Harbor's published swagger describes them
//! (`api/v2.0/swagger.yaml` in goharbor/harbor) and its handlers answer: `listProjects`
//! (`GET /api/v2.0/projects` with `page`, `page_size`, `name`, `public`, `with_detail`),
//! `headProject` (`HEAD /api/v2.0/projects?project_name=`: 200/404, 401 anonymous), `createProject`
//! (`POST /api/v2.0/projects` with a `ProjectReq`: 201 + `Location`, 409 `CONFLICT` "The project
//! named X already exists", 400 for a name Harbor's manager refuses, private unless
//! `metadata.public` says `"true"`, the quota's hard limit from `storage_limit` only when a system
//! admin gives a non-zero one, else `storage_per_project`), `getProject`
//! (`GET /api/v2.0/projects/{project_name_or_id}`, `X-Is-Resource-Name`) and `listQuotas`
//! (`GET /api/v2.0/quotas?reference=project&reference_id=ID`, system admins only: 403 for
//! others). Every project has a quota record, as Harbor makes one per project while
//! `quota_per_project_enable` is on (its default). Anything else these routes could take (proxy
//! cache projects, CVE allowlists, other metadata, `q`, `sort`, `owner`, PUT, DELETE) is refused
//! with a 400/405 naming what the fake does not implement.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{harbor_time, links, parse_query, Answer, Presented, State, StoredProject};

/// A project with what Harbor keeps beside it: owner, creation time, quota, and which blobs
/// (digests) are associated with it (what its quota was charged for).
pub(super) struct ProjectRecord {
    pub(super) project: StoredProject,
    pub(super) owner: String,
    pub(super) creation_ms: u64,
    /// The quota's hard storage limit; -1 is unlimited.
    pub(super) hard: i64,
    pub(super) used: i64,
    pub(super) blobs: BTreeSet<String>,
}

/// Every project of the fake, the built-in `library` first (id 1), in creation order.
pub(super) struct Book {
    pub(super) projects: Vec<ProjectRecord>,
    /// `storage_per_project`, the hard limit new projects get.
    pub(super) default_limit: i64,
    /// Only system admins may create projects (`project_creation_restriction: adminonly`).
    pub(super) only_admin_creates: bool,
    next_id: i64,
    /// Creation times: the fake's clock starts at 2024-05-01 and ticks a second per project.
    clock_ms: u64,
}

impl Book {
    pub(super) fn new(default_limit: i64, only_admin_creates: bool) -> Book {
        let mut b = Book {
            projects: Vec::new(),
            default_limit,
            only_admin_creates,
            next_id: 1,
            clock_ms: 1_714_521_600_000,
        };
        b.add("library", true, "admin", None);
        b
    }

    /// Adds a project (ids ascending from 1); `hard` `None` takes the default limit.
    pub(super) fn add(&mut self, name: &str, public: bool, owner: &str, hard: Option<i64>) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.clock_ms += 1000;
        self.projects.push(ProjectRecord {
            project: StoredProject {
                id,
                name: name.to_string(),
                public,
            },
            owner: owner.to_string(),
            creation_ms: self.clock_ms,
            hard: hard.unwrap_or(self.default_limit),
            used: 0,
            blobs: BTreeSet::new(),
        });
        id
    }

    pub(super) fn by_name(&self, name: &str) -> Option<&ProjectRecord> {
        self.projects.iter().find(|p| p.project.name == name)
    }

    pub(super) fn by_name_mut(&mut self, name: &str) -> Option<&mut ProjectRecord> {
        self.projects.iter_mut().find(|p| p.project.name == name)
    }
}

/// Whether `name` is a project name Harbor's project manager accepts:
/// `^[a-z0-9]+(?:[._-][a-z0-9]+)*$`, 1 to 255 characters.
pub fn harbor_project_name(name: &str) -> bool {
    let sep = |c: char| matches!(c, '.' | '_' | '-');
    name.len() <= 255
        && name.split(sep).all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The request as the projects routes need it.
pub(super) struct Call<'a> {
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) query: &'a str,
    pub(super) headers: &'a [(String, String)],
    pub(super) body: &'a [u8],
    pub(super) presented: &'a Presented,
}

impl Call<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn user(&self) -> Option<&str> {
        match self.presented {
            Presented::Valid(u) => Some(u),
            _ => None,
        }
    }
}

/// Answers the projects, quotas and configurations routes; `None` for any other path.
pub(super) fn route(state: &State, call: &Call) -> Option<Answer> {
    let answer = match (call.path, call.method) {
        ("/api/v2.0/projects", "GET") => list(state, call),
        ("/api/v2.0/projects", "HEAD") => head(state, call),
        ("/api/v2.0/projects", "POST") => create(state, call),
        ("/api/v2.0/quotas", "GET") => quotas(state, call),
        ("/api/v2.0/configurations", _) => super::configurations::route(state, call),
        ("/api/v2.0/projects" | "/api/v2.0/quotas", m) => not_implemented(m, call.path),
        (p, m) => {
            let one = p
                .strip_prefix("/api/v2.0/projects/")
                .filter(|r| !r.contains('/'));
            let quota = p.strip_prefix("/api/v2.0/quotas/").is_some();
            match (one, m) {
                (Some(id), "GET") => get(state, call, id),
                (Some(_), m) => not_implemented(m, p),
                (None, m) if quota => not_implemented(m, p),
                (None, _) => return None,
            }
        }
    };
    Some(answer)
}

fn not_implemented(method: &str, path: &str) -> Answer {
    Answer::error(
        405,
        "METHOD_NOT_ALLOWED",
        &format!("the fake Harbor does not implement {method} {path}"),
    )
}

fn unauthorized() -> Answer {
    Answer::error(401, "UNAUTHORIZED", "unauthorized")
}

/// Refuses query parameters the fake does not implement.
fn refuse_params(params: &[(String, String)], known: &[&str]) -> Result<(), Answer> {
    match params.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(Answer::error(
            400,
            "BAD_REQUEST",
            &format!("the fake Harbor does not implement the query parameter {k}"),
        )),
        None => Ok(()),
    }
}

fn is_admin(state: &State, call: &Call) -> bool {
    call.user()
        .is_some_and(|u| state.admins.iter().any(|a| a == u))
}

/// Whether the caller may read `p` (public, a system admin, or its owner: the fake's members).
fn may_read(state: &State, call: &Call, p: &ProjectRecord) -> bool {
    p.project.public || is_admin(state, call) || call.user() == Some(p.owner.as_str())
}

/// The swagger's `Project`.
fn project_json(state: &State, call: &Call, p: &ProjectRecord) -> Value {
    let time = harbor_time(p.creation_ms);
    let owner_id = if p.owner == "admin" { 1 } else { 2 };
    let roles: Vec<i64> = if call.user() == Some(p.owner.as_str()) {
        vec![1]
    } else {
        vec![]
    };
    let repo_count = state
        .repositories
        .iter()
        .filter(|r| r.project == p.project.name)
        .count();
    json!({
        "project_id": p.project.id,
        "owner_id": owner_id,
        "name": p.project.name,
        "registry_id": 0,
        "creation_time": time,
        "update_time": time,
        "deleted": false,
        "owner_name": p.owner,
        "togglable": true,
        "current_user_role_id": roles.first().copied().unwrap_or(0),
        "current_user_role_ids": roles,
        "repo_count": repo_count,
        "metadata": {"public": p.project.public.to_string()},
        "cve_allowlist": {
            "id": 0, "project_id": p.project.id, "items": [],
            "creation_time": time, "update_time": time,
        },
    })
}

/// `listProjects`: anonymous callers see public projects, admins all, others also their own.
fn list(state: &State, call: &Call) -> Answer {
    let params = parse_query(call.query);
    let known = ["page", "page_size", "name", "public", "with_detail"];
    if let Err(a) = refuse_params(&params, &known) {
        return a;
    }
    if matches!(call.presented, Presented::Invalid(_)) {
        return unauthorized();
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Ok(page), Ok(size)) = (
        get("page").unwrap_or("1").parse::<i64>(),
        get("page_size").unwrap_or("10").parse::<i64>(),
    ) else {
        return Answer::error(
            422,
            "UNPROCESSABLE_ENTITY",
            "page and page_size must be int64",
        );
    };
    if page < 1 || !(1..=100).contains(&size) {
        return Answer::error(
            422,
            "UNPROCESSABLE_ENTITY",
            "page >= 1, 1 <= page_size <= 100",
        );
    }
    let public = match get("public") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => {
            return Answer::error(
                422,
                "UNPROCESSABLE_ENTITY",
                &format!("public in query must be of type boolean: \"{v}\""),
            )
        }
    };
    let book = state.book();
    let matching: Vec<&ProjectRecord> = book
        .projects
        .iter()
        .filter(|p| may_read(state, call, p))
        .filter(|p| get("name").is_none_or(|n| p.project.name.contains(n)))
        .filter(|p| public.is_none_or(|v| p.project.public == v))
        .collect();
    let total = matching.len() as i64;
    let page_items: Vec<Value> = matching
        .iter()
        .skip(((page - 1) * size) as usize)
        .take(size as usize)
        .map(|p| project_json(state, call, p))
        .collect();
    let mut a =
        Answer::json(200, &Value::Array(page_items)).header("X-Total-Count", &total.to_string());
    let link = links(call.path, &params, total, page, size);
    if !link.is_empty() {
        a = a.header("Link", &link);
    }
    a
}

/// `headProject`: authenticated callers only; 200 when the name exists, else 404.
fn head(state: &State, call: &Call) -> Answer {
    let params = parse_query(call.query);
    if let Err(a) = refuse_params(&params, &["project_name"]) {
        return a;
    }
    let Some((_, name)) = params.iter().find(|(k, _)| k == "project_name") else {
        return Answer::error(
            422,
            "UNPROCESSABLE_ENTITY",
            "project_name in query is required",
        );
    };
    if call.user().is_none() {
        return unauthorized();
    }
    if state.book().by_name(name).is_some() {
        Answer::json(200, &Value::Null).no_body()
    } else {
        Answer::error(404, "NOT_FOUND", &format!("project {name} not found"))
    }
}

/// `getProject` by name (`X-Is-Resource-Name: true`, or a non-integer) or by id.
fn get(state: &State, call: &Call, raw: &str) -> Answer {
    let by_name = call
        .header("X-Is-Resource-Name")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let Some(key) = super::percent_decode(raw) else {
        return Answer::error(400, "BAD_REQUEST", "invalid percent-encoding in the path");
    };
    if matches!(call.presented, Presented::Invalid(_)) {
        return unauthorized();
    }
    let book = state.book();
    let found = match key.parse::<i64>() {
        Ok(id) if !by_name => book.projects.iter().find(|p| p.project.id == id),
        _ => book.by_name(&key),
    };
    match found {
        Some(p) if may_read(state, call, p) => Answer::json(200, &project_json(state, call, p)),
        _ if call.user().is_none() => unauthorized(),
        Some(_) => Answer::error(403, "FORBIDDEN", "forbidden"),
        None => Answer::error(404, "NOT_FOUND", &format!("project {key} not found")),
    }
}

/// `createProject` with a `ProjectReq`.
fn create(state: &State, call: &Call) -> Answer {
    let Some(user) = call.user() else {
        return unauthorized();
    };
    let admin = is_admin(state, call);
    let req: Value = match serde_json::from_slice(call.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Answer::error(400, "BAD_REQUEST", "parsing project body from \"\" failed"),
    };
    for key in req.as_object().expect("object").keys() {
        if !["project_name", "public", "metadata", "storage_limit"].contains(&key.as_str()) {
            return Answer::error(
                400,
                "BAD_REQUEST",
                &format!("the fake Harbor does not implement ProjectReq.{key}"),
            );
        }
    }
    let name = req["project_name"].as_str().unwrap_or("").to_string();
    let public = match project_public(&req) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let mut book = state.book();
    if book.only_admin_creates && !admin {
        return Answer::error(403, "FORBIDDEN", "Only system admin can create project");
    }
    let hard = match req.get("storage_limit").and_then(Value::as_i64) {
        Some(n) if admin && n != 0 => {
            if n < -1 || n == i64::MAX {
                return Answer::error(400, "BAD_REQUEST", "invalid storage_limit");
            }
            n
        }
        _ => book.default_limit,
    };
    if name.is_empty() || name.len() > 255 {
        return Answer::error(
            400,
            "BAD_REQUEST",
            &format!("Project name {name} is illegal in length. (greater than 255 or less than 1)"),
        );
    }
    if !harbor_project_name(&name) {
        return Answer::error(
            400,
            "BAD_REQUEST",
            "project name is not in lower case or contains illegal characters",
        );
    }
    if book.by_name(&name).is_some() {
        return Answer::error(
            409,
            "CONFLICT",
            &format!("The project named {name} already exists"),
        );
    }
    let id = book.add(&name, public, user, Some(hard));
    let in_location = call
        .header("X-Resource-Name-In-Location")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let location = if in_location {
        format!("{}/{name}", call.path)
    } else {
        format!("{}/{id}", call.path)
    };
    Answer::json(201, &Value::Null)
        .no_body()
        .header("Location", &location)
}

/// `metadata.public` ("true"/"false", default "false"), or the deprecated `public` boolean.
fn project_public(req: &Value) -> Result<bool, Answer> {
    let meta = req.get("metadata").cloned().unwrap_or(json!({}));
    let Some(meta) = meta.as_object() else {
        return Err(Answer::error(
            400,
            "BAD_REQUEST",
            "metadata must be an object",
        ));
    };
    if let Some(k) = meta.keys().find(|k| *k != "public") {
        return Err(Answer::error(
            400,
            "BAD_REQUEST",
            &format!("the fake Harbor does not implement metadata.{k}"),
        ));
    }
    let value = match (
        meta.get("public"),
        req.get("public").and_then(Value::as_bool),
    ) {
        (Some(Value::String(s)), _) if !s.is_empty() => s.clone(),
        (_, Some(b)) => b.to_string(),
        _ => "false".to_string(),
    };
    match value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        v => Err(Answer::error(
            400,
            "BAD_REQUEST",
            &format!("metadata.public should only be 'true' or 'false', but got: '{v}'"),
        )),
    }
}

/// `listQuotas`, system admins only.
fn quotas(state: &State, call: &Call) -> Answer {
    let params = parse_query(call.query);
    let known = ["page", "page_size", "reference", "reference_id"];
    if let Err(a) = refuse_params(&params, &known) {
        return a;
    }
    if call.user().is_none() {
        return unauthorized();
    }
    if !is_admin(state, call) {
        return Answer::error(403, "FORBIDDEN", "forbidden");
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Ok(page), Ok(size)) = (
        get("page").unwrap_or("1").parse::<i64>(),
        get("page_size").unwrap_or("10").parse::<i64>(),
    ) else {
        return Answer::error(
            422,
            "UNPROCESSABLE_ENTITY",
            "page and page_size must be int64",
        );
    };
    let book = state.book();
    let matching: Vec<Value> = book
        .projects
        .iter()
        .filter(|_| get("reference").is_none_or(|r| r.is_empty() || r == "project"))
        .filter(|p| {
            get("reference_id").is_none_or(|r| r.is_empty() || r == p.project.id.to_string())
        })
        .map(|p| {
            let time = harbor_time(p.creation_ms);
            json!({
                "id": p.project.id,
                "ref": {"id": p.project.id, "name": p.project.name, "owner_name": p.owner},
                "hard": {"storage": p.hard},
                "used": {"storage": p.used},
                "creation_time": time,
                "update_time": time,
            })
        })
        .collect();
    let total = matching.len() as i64;
    let page_items: Vec<Value> = matching
        .into_iter()
        .skip(((page.max(1) - 1) * size.max(1)) as usize)
        .take(size.max(1) as usize)
        .collect();
    Answer::json(200, &Value::Array(page_items)).header("X-Total-Count", &total.to_string())
}
