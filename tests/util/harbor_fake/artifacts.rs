//! `listArtifacts`, as the swagger and Harbor's handler answer it: paging with `Link` and
//! `X-Total-Count`, `q`/`sort` (the parts implemented, the rest refused), `Artifact` objects.

use super::*;

pub(super) fn list_artifacts(
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
pub(super) fn links(
    path: &str,
    params: &[(String, String)],
    total: i64,
    page: i64,
    size: i64,
) -> String {
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

pub(super) fn next_of(link: &str) -> Option<String> {
    link.split(" , ").find_map(|l| {
        l.strip_suffix("; rel=\"next\"")
            .map(|t| t.trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

pub(super) fn artifact_json(
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
